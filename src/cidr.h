/*
 * cidr.h - does an address fall inside a CIDR block (IPv4 or IPv6)?
 *
 * Used by auth methods for CIDR bindings (coffer.net.cidr_match). A bare
 * address is a /32 (/128). IPv4-mapped IPv6 addresses ("::ffff:1.2.3.4")
 * match IPv4 blocks, since a dual-stack listener reports them that way.
 */
#ifndef COFFER_CIDR_H
#define COFFER_CIDR_H

#include <stdbool.h>

/*
 * Sets *match. Returns 0, or COFFER_EINVAL when cidr or addr is not a
 * valid block or address (then *match is false). Pure; never raises.
 */
int cidr_match(const char *cidr, const char *addr, bool *match);

#endif
