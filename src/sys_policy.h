/*
 * sys_policy.h - the policy and capabilities endpoints of sys/.
 *
 * sys.c dispatches here; the policy store and decisions are policy.c.
 */
#ifndef COFFER_SYS_POLICY_H
#define COFFER_SYS_POLICY_H

#include <stdbool.h>

#include "request.h"

/* True for rel (the path after "sys/") served here. */
bool sys_policy_handles(const char *rel);

/* Handles sys/policy*, sys/policies/acl*, sys/capabilities*. */
void sys_policy_handle(struct request *req, const char *rel,
                       struct response *resp);

#endif
