/*
 * policy.h - access control decisions for the request pipeline.
 *
 * The pipeline asks one question per request: may this token perform this
 * operation on this path, and does the path need sudo. The root policy
 * allows everything. Other tokens get the rules of their policies; until
 * ACL policies can be written (sys/policies/acl), the only non-root policy
 * with rules is the built-in "default" one, which lets a token look
 * itself up, renew and revoke itself.
 */
#ifndef COFFER_POLICY_H
#define COFFER_POLICY_H

#include <stdbool.h>

#include "request.h"

struct token;

/* True when t may run op on path (path is the logical path, no /v1/). */
bool policy_allows(const struct token *t, const char *path, enum req_op op);

/* True when t holds sudo on path (root tokens always do). */
bool policy_has_sudo(const struct token *t, const char *path);

#endif
