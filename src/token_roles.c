/*
 * token_roles.c - token roles: auth/token/roles/<name> and their storage
 * (token/role/<name>). A role presets what auth/token/create/<role>
 * issues; token_endpoints.c applies it.
 */
#include "token.h"
#include "token_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "fields.h"
#include "lease.h"
#include "json.h"
#include "log.h"
#include "mount.h"
#include "policy.h"
#include "router.h"
#include "storage.h"

/* ============================================================== roles == */

void token_role_init(struct role *r)
{
    memset(r, 0, sizeof(*r));
    strvec_init(&r->allowed);
    strvec_init(&r->disallowed);
    strvec_init(&r->allowed_glob);
    strvec_init(&r->disallowed_glob);
    strvec_init(&r->bound_cidrs);
    r->renewable = true;
    r->path_suffix = xstrdup("");
    r->token_type = xstrdup("default-service");
}

void token_role_release(struct role *r)
{
    strvec_release(&r->allowed);
    strvec_release(&r->disallowed);
    strvec_release(&r->allowed_glob);
    strvec_release(&r->disallowed_glob);
    strvec_release(&r->bound_cidrs);
    free(r->path_suffix);
    free(r->token_type);
    memset(r, 0, sizeof(*r));
}

/*
 * A role name becomes a storage key (token/role/<name>) and part of every
 * token path it issues (auth/token/create/<name>): a safe alphabet, and
 * never "." or "..", which storage would read as a relative path.
 */
bool token_role_name_valid(const char *name)
{
    if (name[0] == '\0' || strlen(name) > 128)
        return false;
    for (const char *c = name; *c != '\0'; c++) {
        if (!isalnum((unsigned char)*c) && strchr("-_.@", *c) == NULL)
            return false;
    }
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Non-strings are skipped: a stored role was written by role_save. */
static void strvec_from_json(struct strvec *sv, const cJSON *arr)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, arr) {
        if (cJSON_IsString(it))
            strvec_push(sv, it->valuestring);
    }
}

/* Loads token/role/<name>; 0, COFFER_ENOTFOUND or another error. */
int token_role_load(const char *name, struct role *r)
{
    char key[192];
    struct buf stored;
    cJSON *o = NULL;
    char *v;
    int rc;

    token_role_init(r);
    snprintf(key, sizeof(key), "token/role/%s", name);
    buf_init(&stored, 0);
    rc = storage_get(token_storage(), key, &stored);
    if (rc == 0) {
        o = cJSON_Parse(stored.ptr);
        if (!cJSON_IsObject(o))
            rc = COFFER_EINVAL;
    }
    if (rc == 0) {
        strvec_from_json(&r->allowed,
                         cJSON_GetObjectItemCaseSensitive(o, "allowed"));
        strvec_from_json(&r->disallowed,
                         cJSON_GetObjectItemCaseSensitive(o, "disallowed"));
        strvec_from_json(&r->allowed_glob,
                         cJSON_GetObjectItemCaseSensitive(o, "allowed_glob"));
        strvec_from_json(&r->disallowed_glob, cJSON_GetObjectItemCaseSensitive(
                                                  o, "disallowed_glob"));
        strvec_from_json(&r->bound_cidrs,
                         cJSON_GetObjectItemCaseSensitive(o, "bound_cidrs"));
        r->orphan = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "orphan"));
        r->renewable =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "renewable"));
        r->no_default_policy = cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(o, "no_default_policy"));
        r->period = json_get_int(o, "period", 0);
        r->explicit_max_ttl = json_get_int(o, "explicit_max_ttl", 0);
        r->num_uses = json_get_int(o, "num_uses", 0);
        v = token_json_str(o, "path_suffix");
        if (v != NULL) {
            free(r->path_suffix);
            r->path_suffix = v;
        }
        v = token_json_str(o, "token_type");
        if (v != NULL) {
            free(r->token_type);
            r->token_type = v;
        }
    }
    cJSON_Delete(o);
    buf_release(&stored);
    return rc;
}

/*
 * The stored shape uses short internal names (allowed, period, ...), not
 * the API's token_* names, so renaming an API field never migrates data.
 */
static int role_save(const char *name, const struct role *r)
{
    char key[192];
    cJSON *o = cJSON_CreateObject();
    char *text;
    int rc;

    cJSON_AddItemToObject(o, "allowed", token_policies_json(&r->allowed));
    cJSON_AddItemToObject(o, "disallowed", token_policies_json(&r->disallowed));
    cJSON_AddItemToObject(o, "allowed_glob", token_policies_json(&r->allowed_glob));
    cJSON_AddItemToObject(o, "disallowed_glob",
                          token_policies_json(&r->disallowed_glob));
    cJSON_AddItemToObject(o, "bound_cidrs", token_policies_json(&r->bound_cidrs));
    cJSON_AddBoolToObject(o, "orphan", r->orphan);
    cJSON_AddBoolToObject(o, "renewable", r->renewable);
    cJSON_AddBoolToObject(o, "no_default_policy", r->no_default_policy);
    cJSON_AddNumberToObject(o, "period", (double)r->period);
    cJSON_AddNumberToObject(o, "explicit_max_ttl",
                            (double)r->explicit_max_ttl);
    cJSON_AddNumberToObject(o, "num_uses", (double)r->num_uses);
    cJSON_AddStringToObject(o, "path_suffix", r->path_suffix);
    cJSON_AddStringToObject(o, "token_type", r->token_type);
    text = cJSON_PrintUnformatted(o);
    snprintf(key, sizeof(key), "token/role/%s", name);
    rc = storage_put(token_storage(), key, text, strlen(text));
    free(text);
    cJSON_Delete(o);
    return rc;
}

/* A list field of a role: "token_<name>" or the legacy "<name>". */
static int role_list_field(const cJSON *d, const char *name,
                           const char *legacy, struct strvec *out,
                           struct response *resp)
{
    struct strvec v;
    bool given = false;
    int rc;

    strvec_init(&v);
    rc = field_strlist(d, name, &v, &given, resp);
    if (rc == 0 && !given && legacy != NULL)
        rc = field_strlist(d, legacy, &v, &given, resp);
    if (rc == 0 && given) {
        strvec_release(out);
        *out = v;
        strvec_init(&v);
        /* As Vault stores them: the allowed list sanitised like any
         * policy list, the others only normalised. */
        if (strcmp(name, "allowed_policies") == 0)
            token_sanitize_policies(out);
        else if (strcmp(name, "token_bound_cidrs") != 0)
            token_normalise_names(out);
    }
    strvec_release(&v);
    return rc;
}

/* A duration of a role: "token_<name>" wins over the legacy "<name>". */
static int role_duration(const cJSON *d, const char *name, const char *legacy,
                         int64_t *out, struct response *resp)
{
    bool given = false;

    if (field_duration(d, name, out, &given, resp) != 0)
        return -1;
    if (!given && field_duration(d, legacy, out, &given, resp) != 0)
        return -1;
    if (*out < 0) {
        response_error(resp, 400, "%s must not be negative", name);
        return -1;
    }
    return 0;
}

static int role_parse(const cJSON *d, struct role *r, struct response *resp)
{
    const char *suffix = NULL, *type = NULL;
    bool given;

    if (role_list_field(d, "allowed_policies", NULL, &r->allowed, resp) ||
        role_list_field(d, "disallowed_policies", NULL, &r->disallowed,
                        resp) ||
        role_list_field(d, "allowed_policies_glob", NULL, &r->allowed_glob,
                        resp) ||
        role_list_field(d, "disallowed_policies_glob", NULL,
                        &r->disallowed_glob, resp) ||
        role_list_field(d, "token_bound_cidrs", "bound_cidrs",
                        &r->bound_cidrs, resp) ||
        field_bool(d, "orphan", &r->orphan, &given, resp) ||
        field_bool(d, "renewable", &r->renewable, &given, resp) ||
        field_bool(d, "token_no_default_policy", &r->no_default_policy,
                   &given, resp) ||
        role_duration(d, "token_period", "period", &r->period, resp) ||
        role_duration(d, "token_explicit_max_ttl", "explicit_max_ttl",
                      &r->explicit_max_ttl, resp) ||
        field_int(d, "token_num_uses", &r->num_uses, &given, resp) ||
        field_string(d, "path_suffix", &suffix, resp) ||
        field_string(d, "token_type", &type, resp))
        return -1;
    if (r->num_uses < 0) {
        response_error(resp, 400, "token_num_uses cannot be negative");
        return -1;
    }
    if (suffix != NULL) {
        /* The suffix is appended to the token's path, which prefix
         * revocation (revoke-prefix auth/token/create/<role>/) walks. */
        if (strstr(suffix, "..") != NULL) {
            response_error(resp, 400, "path_suffix cannot contain '..'");
            return -1;
        }
        free(r->path_suffix);
        r->path_suffix = xstrdup(suffix);
    }
    /* Batch tokens do not exist here; refusing beats a silent service token. */
    if (type != NULL && type[0] != '\0') {
        if (strcmp(type, "service") != 0 && strcmp(type, "default") != 0 &&
            strcmp(type, "default-service") != 0) {
            response_error(resp, 400, "unsupported token type \"%s\": only "
                                      "service tokens are supported", type);
            return -1;
        }
        free(r->token_type);
        r->token_type = xstrdup(type);
    }
    return 0;
}

/* Vault's read shape: both the token_* names and their legacy aliases. */
static cJSON *role_json(const char *name, const struct role *r)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddStringToObject(d, "name", name);
    cJSON_AddItemToObject(d, "allowed_policies", token_policies_json(&r->allowed));
    cJSON_AddItemToObject(d, "disallowed_policies",
                          token_policies_json(&r->disallowed));
    cJSON_AddItemToObject(d, "allowed_policies_glob",
                          token_policies_json(&r->allowed_glob));
    cJSON_AddItemToObject(d, "disallowed_policies_glob",
                          token_policies_json(&r->disallowed_glob));
    cJSON_AddItemToObject(d, "allowed_entity_aliases", cJSON_CreateArray());
    cJSON_AddBoolToObject(d, "orphan", r->orphan);
    cJSON_AddBoolToObject(d, "renewable", r->renewable);
    cJSON_AddStringToObject(d, "path_suffix", r->path_suffix);
    cJSON_AddNumberToObject(d, "token_period", (double)r->period);
    cJSON_AddNumberToObject(d, "period", (double)r->period);
    cJSON_AddNumberToObject(d, "token_explicit_max_ttl",
                            (double)r->explicit_max_ttl);
    cJSON_AddNumberToObject(d, "explicit_max_ttl",
                            (double)r->explicit_max_ttl);
    cJSON_AddItemToObject(d, "token_bound_cidrs",
                          token_policies_json(&r->bound_cidrs));
    cJSON_AddStringToObject(d, "token_type", r->token_type);
    cJSON_AddBoolToObject(d, "token_no_default_policy", r->no_default_policy);
    cJSON_AddNumberToObject(d, "token_num_uses", (double)r->num_uses);
    return d;
}

/*
 * Role writes are read-modify-write (an update keeps the fields it does
 * not name): one at a time, so two updates never lose each other's.
 */
static pthread_mutex_t role_lock = PTHREAD_MUTEX_INITIALIZER;

void token_handle_role(struct request *req, const char *name,
                        struct response *resp)
{
    char key[192];
    struct role r;
    int rc;

    if (!token_role_name_valid(name)) {
        response_error(resp, 400, "invalid role name");
        return;
    }
    pthread_mutex_lock(&role_lock);
    rc = token_role_load(name, &r);
    switch (req->op) {
    case OP_READ:
        if (rc == 0)
            resp->data = role_json(name, &r);
        break;
    case OP_CREATE:
    case OP_UPDATE:
        if (rc != 0 && rc != COFFER_ENOTFOUND) {
            response_error(resp, 500, "failed to read the role");
            break;
        }
        if (role_parse(req->data, &r, resp) == 0 && role_save(name, &r) != 0)
            response_error(resp, 500, "failed to save the role");
        break;
    case OP_DELETE:
        snprintf(key, sizeof(key), "token/role/%s", name);
        if (storage_delete(token_storage(), key) != 0 && rc == 0)
            response_error(resp, 500, "failed to delete the role");
        break;
    default:
        response_multierror(resp, 405, "unsupported operation");
        break;
    }
    pthread_mutex_unlock(&role_lock);
    token_role_release(&r);
}

void token_handle_role_list(struct response *resp)
{
    struct strvec keys;

    strvec_init(&keys);
    if (storage_list(token_storage(), "token/role/", &keys) != 0)
        response_error(resp, 500, "failed to list roles");
    else
        response_keys(resp, &keys);
    strvec_release(&keys);
}

