/*
 * sys.h - the sys/ backend, written in C.
 *
 * Health, seal status, leader, init status, secret and auth mounts, and
 * the internal UI mount lookup the Vault CLI's "kv" commands depend on.
 */
#ifndef COFFER_SYS_H
#define COFFER_SYS_H

#include <stdbool.h>

#include "request.h"

/* True for sys/ paths that need no token (health, seal-status, ...). */
bool sys_is_unauthenticated(const char *path);

/* True for sys/ paths that use a token when given but need none. */
bool sys_is_token_optional(const char *path);

/* Handles a request whose path starts with "sys/". */
void sys_handle(struct request *req, struct response *resp);

/* Set once at start-up: what sys/seal-status reports as storage_type. */
void sys_set_storage_type(const char *name);

#endif
