/*
 * policy_params.h - Vault's parameter constraints, private to policy.c.
 */
#ifndef COFFER_POLICY_PARAMS_H
#define COFFER_POLICY_PARAMS_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "policy_hcl.h"

/* Which constraint failed (for the explain trace). */
struct param_fail {
    const char *rule;   /* "required_parameters", ... */
    char name[128];     /* the parameter */
};

/*
 * Vault's parameter checks for read/create/update/patch (VAULT_API 7.2):
 * true when data passes p's required, denied and allowed parameters.
 * Else false with the reason in why and, when pf is given, the
 * parameter and the constraint in pf.
 */
bool policy_params_ok(const struct policy_perms *p, const cJSON *data,
                      struct errbuf *why, struct param_fail *pf);

#endif
