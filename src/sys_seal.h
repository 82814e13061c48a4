/*
 * sys_seal.h - health, seal-status, leader, init, unseal and seal.
 *
 * These work in every state (uninitialised, sealed, active) and answer
 * bare JSON. core.c sends requests here without taking the state lock
 * (lifecycle.h): init, unseal and seal are what change the state.
 */
#ifndef COFFER_SYS_SEAL_H
#define COFFER_SYS_SEAL_H

#include <stdbool.h>

#include "request.h"

/* True for the paths handled here ("sys/health", "sys/unseal", ...). */
bool sys_seal_handles(const char *path);
void sys_seal_handle(struct request *req, struct response *resp);

/*
 * Auto-unseal (seal "static"): tries once now, so a restarted node is
 * unsealed before it listens; while that fails (not initialised yet, the
 * storage unreachable, a wrong key) a thread tries again every 2 s until
 * one attempt succeeds, logging each new reason once. After that first
 * success it stops: a node sealed by sys/seal stays sealed until a
 * restart or recovery shares (Vault). No-op with a Shamir seal.
 */
void sys_seal_auto_unseal_start(void);
/* Stops that thread; call before core_shutdown. Idempotent. */
void sys_seal_auto_unseal_stop(void);

/* Set once at start-up: what sys/seal-status reports as storage_type. */
void sys_set_storage_type(const char *name);

#endif
