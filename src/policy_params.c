/*
 * policy_params.c - Vault's parameter constraints (acl.go): required,
 * denied and allowed parameters with their value globs.
 *
 * Owns only the check of one merged rule against a request's data; the
 * rule lookup and the rest of the decision are policy.c's. A failed
 * check names the constraint in the explain trace when one is given.
 */
#include "policy_params.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"

/* Vault's GlobbedStringsMatch: leading and/or trailing '*'. */
static bool glob_match(const char *pat, const char *s)
{
    size_t pl = strlen(pat), sl = strlen(s);

    if (pl >= 2 && pat[0] == '*' && pat[pl - 1] == '*') {
        char *mid = xstrndup(pat + 1, pl - 2);
        bool ok = strstr(s, mid) != NULL;
        free(mid);
        return ok;
    }
    if (pl >= 1 && pat[0] == '*')
        return sl >= pl - 1 && strcmp(s + sl - (pl - 1), pat + 1) == 0;
    if (pl >= 1 && pat[pl - 1] == '*')
        return strncmp(s, pat, pl - 1) == 0;
    return strcmp(pat, s) == 0;
}

static bool value_in_list(const cJSON *v, const cJSON *list)
{
    const cJSON *e;

    if (cJSON_GetArraySize(list) == 0)
        return true;
    cJSON_ArrayForEach(e, list) {
        if (cJSON_IsString(e) && cJSON_IsString(v)) {
            if (glob_match(e->valuestring, v->valuestring))
                return true;
        } else if (cJSON_IsNumber(e) && cJSON_IsRaw(v)) {
            double d;
            if (json_number_exact(v->valuestring, strlen(v->valuestring),
                                  &d) && d == e->valuedouble)
                return true;
        } else if (cJSON_Compare(e, v, true)) {
            return true;
        }
    }
    return false;
}

/* Looks key up lower-cased in a params object. */
static const cJSON *param_get(const cJSON *params, const char *key)
{
    char low[256];
    size_t i;

    for (i = 0; key[i] != '\0' && i + 1 < sizeof(low); i++)
        low[i] = (char)tolower((unsigned char)key[i]);
    low[i] = '\0';
    if (key[i] != '\0')
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(params, low);
}

static bool has_key_ci(const cJSON *data, const char *name)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, data) {
        if (strcasecmp(e->string, name) == 0)
            return true;
    }
    return false;
}

/* Names the failed constraint in pf (explain); false, for returning. */
static bool param_failed(struct param_fail *pf, const char *rule,
                         const char *name)
{
    if (pf != NULL) {
        pf->rule = rule;
        snprintf(pf->name, sizeof(pf->name), "%s", name);
    }
    return false;
}

bool policy_params_ok(const struct policy_perms *p, const cJSON *data,
                      struct errbuf *why, struct param_fail *pf)
{
    const cJSON *e, *list;
    bool all_allowed;

    for (size_t i = 0; i < p->required.n; i++) {
        if (data == NULL || !has_key_ci(data, p->required.v[i])) {
            errbuf_set(why, "required parameter \"%s\" missing",
                       p->required.v[i]);
            return param_failed(pf, "required_parameters",
                                p->required.v[i]);
        }
    }
    if (data == NULL || data->child == NULL)
        return true;
    if (p->denied != NULL && p->denied->child != NULL) {
        if (cJSON_GetObjectItemCaseSensitive(p->denied, "*") != NULL) {
            errbuf_set(why, "all parameters are denied");
            return param_failed(pf, "denied_parameters", "*");
        }
        cJSON_ArrayForEach(e, data) {
            list = param_get(p->denied, e->string);
            if (list != NULL && value_in_list(e, list)) {
                errbuf_set(why, "parameter \"%s\" is denied", e->string);
                return param_failed(pf, "denied_parameters", e->string);
            }
        }
    }
    if (p->allowed == NULL || p->allowed->child == NULL)
        return true;
    all_allowed = cJSON_GetObjectItemCaseSensitive(p->allowed, "*") != NULL;
    if (all_allowed && cJSON_GetArraySize(p->allowed) == 1)
        return true;
    cJSON_ArrayForEach(e, data) {
        list = param_get(p->allowed, e->string);
        if (list == NULL && !all_allowed) {
            errbuf_set(why, "parameter \"%s\" is not allowed", e->string);
            return param_failed(pf, "allowed_parameters", e->string);
        }
        if (list != NULL && !value_in_list(e, list)) {
            errbuf_set(why, "value of parameter \"%s\" is not allowed",
                       e->string);
            return param_failed(pf, "allowed_parameters", e->string);
        }
    }
    return true;
}
