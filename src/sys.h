/*
 * sys.h - the sys/ backend, written in C.
 *
 * Secret and auth mounts, metrics, key rotation, and the internal UI
 * mount lookup the Vault CLI's "kv" commands depend on; sys_handle
 * dispatches the lease endpoints to sys_leases.c and the policy ones to
 * sys_policy.c. The seal endpoints (health, seal-status, init, unseal,
 * seal) are in sys_seal.c: they run outside the router.
 */
#ifndef COFFER_SYS_H
#define COFFER_SYS_H

#include <stdbool.h>

#include "request.h"

/* True for sys/ paths that use a token when given but need none. */
bool sys_is_token_optional(const char *path);

/* Handles a request whose path starts with "sys/". */
void sys_handle(struct request *req, struct response *resp);


#endif
