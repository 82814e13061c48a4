/*
 * sys_password_policy.h - the sys/policies/password endpoints.
 *
 * sys.c dispatches here; the language, generator and storage are
 * password_policy.c.
 */
#ifndef COFFER_SYS_PASSWORD_POLICY_H
#define COFFER_SYS_PASSWORD_POLICY_H

#include <stdbool.h>

#include "request.h"

/* True for rel (the path after "sys/") served here. */
bool sys_password_policy_handles(const char *rel);

/* Handles sys/policies/password[/<name>[/generate]]. */
void sys_password_policy_handle(struct request *req, const char *rel,
                                struct response *resp);

#endif
