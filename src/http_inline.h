/*
 * http_inline.h - which requests may run on an HTTP I/O thread.
 *
 * A request that may wait (a database, another server, a token use's
 * fsync, a socket audit device) must run on a request worker, so that it
 * never stalls the other connections of an I/O thread. The reads that
 * provably cannot wait run inline instead, saving the hand-off (http.c).
 */
#ifndef COFFER_HTTP_INLINE_H
#define COFFER_HTTP_INLINE_H

#include <stdbool.h>

#include "request.h"

/*
 * True if req (built, not yet run) cannot wait: http_inline.c lists the
 * rules. May look the token up (no use taken) on a first sight of it.
 */
bool http_inline_eligible(const struct request *req);

/*
 * Whether reads that cannot wait run inline at all. On by default;
 * process-wide, for the next request (the configuration file, tests).
 */
void http_set_inline_reads(bool on);

#endif
