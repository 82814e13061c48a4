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

/* Set once at start-up: what sys/seal-status reports as storage_type. */
void sys_set_storage_type(const char *name);

#endif
