/*
 * sys_leases.h - the lease endpoints of sys/ (VAULT_API 8).
 *
 * sys.c dispatches here; the leases themselves and the expiration
 * manager are lease.c and lease_expire.c, which know nothing of HTTP or
 * policies.
 */
#ifndef COFFER_SYS_LEASES_H
#define COFFER_SYS_LEASES_H

#include <stdbool.h>

#include "request.h"

/*
 * True for rel (the path after "sys/") served here: sys/leases/... and
 * the older sys/renew, sys/revoke, sys/revoke-prefix, sys/revoke-force.
 */
bool sys_leases_handles(const char *rel);

/* Handles a path for which sys_leases_handles is true. */
void sys_leases_handle(struct request *req, const char *rel,
                       struct response *resp);

#endif
