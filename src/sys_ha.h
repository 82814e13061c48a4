/*
 * sys_ha.h - HTTP side of high availability (ha.h): sys/leader's body,
 * sys/ha-status, sys/step-down, and what the pipeline asks to send a
 * standby's clients to the active node.
 */
#ifndef COFFER_SYS_HA_H
#define COFFER_SYS_HA_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "request.h"

/* sys/leader's body (unauthenticated, answered by every node). */
cJSON *sys_ha_leader_json(void);

/* HA is on and this node is not the active one. */
bool sys_ha_is_standby(void);

/*
 * Copies the active node's api_addr into out. COFFER_ENOTFOUND when no
 * other node is known to be active, COFFER_ETOOBIG if n is too small.
 */
int sys_ha_leader_address(char *out, size_t n);

/* rel is the path under "sys/": "ha-status" and "step-down". */
bool sys_ha_handles(const char *rel);
void sys_ha_handle(struct request *req, const char *rel,
                   struct response *resp);

#endif
