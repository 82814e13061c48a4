/*
 * sys_plugins.h - reloading the Lua code on a running server:
 * PUT/POST sys/plugins/reload/backend and SIGHUP (server.c).
 *
 * A reload reads every Lua engine, auth method, Lua policy and
 * lua/coffer module from disk into a new code snapshot, validates it in
 * a scratch state, refuses it if a mounted type or the revoke function
 * of a live lease would disappear, replaces the Lua policies, then
 * publishes the code: each thread's next call runs it (luavm.h).
 * Nothing else changes: no lease, token or mount is touched.
 */
#ifndef COFFER_SYS_PLUGINS_H
#define COFFER_SYS_PLUGINS_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "request.h"

/* True for rel (the path after "sys/") served here. */
bool sys_plugins_handles(const char *rel);

/* Handles sys/plugins/reload/backend. */
void sys_plugins_handle(struct request *req, const char *rel,
                        struct response *resp);

/*
 * Reloads all Lua code. The caller holds the state lock for reading
 * with the server active (lifecycle_enter returned true). Reloads are
 * serialised. Returns 0 with the new generation in *gen, or an error
 * with the reason ("file:line: message", or the mount or lease that
 * would lose its code) in err; the running code is then unchanged.
 */
int sys_plugins_reload(uint64_t *gen, struct errbuf *err);

#endif
