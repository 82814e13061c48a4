/*
 * sys_policy.c - sys/policy, sys/policies/acl and sys/capabilities*.
 *
 * Owns the wire format of the policy endpoints (VAULT_API 2.9, 2.11).
 * The policies themselves live in policy.c.
 *
 *   sys/policy                 GET/LIST  keys + policies (top level too)
 *   sys/policy/<name>          GET {name, rules}, PUT policy|rules, DELETE
 *   sys/policies/acl           LIST      keys
 *   sys/policies/acl/<name>    GET {name, policy}, PUT policy, DELETE
 *   sys/capabilities[-self|-accessor]    PUT/POST
 */
#include "sys_policy.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "policy.h"
#include "token.h"
#include "util.h"

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * Go's base64.StdEncoding.DecodeString: padded, no whitespace. Returns a
 * new string, or NULL when s is not base64 (then it is policy text).
 */
static char *b64_decode_strict(const char *s)
{
    size_t n = strlen(s), i, o = 0;
    char *out;

    if (n == 0 || n % 4 != 0)
        return NULL;
    out = xmalloc(n / 4 * 3 + 1);
    for (i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = b64val((unsigned char)s[i + k])) <
                                      0) {
                free(out);
                return NULL;
            }
        }
        out[o++] = (char)(v[0] << 2 | v[1] >> 4);
        if (pad < 2)
            out[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
        if (pad < 1)
            out[o++] = (char)((v[2] & 3) << 6 | v[3]);
    }
    out[o] = '\0';
    if (strlen(out) != o) { /* embedded NUL: not text */
        free(out);
        return NULL;
    }
    return out;
}

static char *lower_dup(const char *s)
{
    char *d = xstrdup(s);

    for (char *p = d; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static void list_policies(bool legacy, struct response *resp)
{
    struct strvec names;
    cJSON *keys = cJSON_CreateArray();

    strvec_init(&names);
    policy_names(&names);
    for (size_t i = 0; i < names.n; i++)
        cJSON_AddItemToArray(keys, cJSON_CreateString(names.v[i]));
    cJSON_AddItemToArray(keys, cJSON_CreateString("root"));
    strvec_release(&names);
    resp->data = cJSON_CreateObject();
    if (legacy) {
        cJSON_AddItemToObject(resp->data, "policies",
                              cJSON_Duplicate(keys, 1));
        resp->inject_top = true;
    }
    cJSON_AddItemToObject(resp->data, "keys", keys);
}

static void read_policy(const char *name, bool legacy, struct response *resp)
{
    char *text = NULL;

    if (policy_read(name, &text) != 0) {
        response_empty_error(resp, 404);
        return;
    }
    resp->data = cJSON_CreateObject();
    cJSON_AddStringToObject(resp->data, "name", name);
    cJSON_AddStringToObject(resp->data, legacy ? "rules" : "policy", text);
    resp->inject_top = legacy;
    free(text);
}

static void write_policy(struct request *req, const char *raw_name,
                         const char *name, bool legacy,
                         struct response *resp)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(req->data, "policy");
    const char *text = cJSON_IsString(f) ? f->valuestring : "";
    char *decoded;
    struct errbuf err;
    int rc;

    if (legacy && text[0] == '\0') {
        f = cJSON_GetObjectItemCaseSensitive(req->data, "rules");
        if (cJSON_IsString(f) && f->valuestring[0] != '\0') {
            text = f->valuestring;
            response_warn(resp, "'rules' is deprecated, please use 'policy' "
                                "instead");
        }
    }
    if (text[0] == '\0') {
        response_error(resp, 400, "'policy' parameter not supplied or empty");
        return;
    }
    if (strcmp(raw_name, name) != 0)
        response_warn(resp, "policy name was converted to %s", name);
    decoded = b64_decode_strict(text);
    errbuf_clear(&err);
    rc = policy_write(name, decoded != NULL ? decoded : text, &err);
    free(decoded);
    if (rc == COFFER_EINVAL)
        response_error(resp, 400, "failed to parse policy: %s", err.msg);
    else if (rc == COFFER_EPERM)
        response_error(resp, 400, "%s", err.msg);
    else if (rc != 0)
        response_multierror(resp, 500, "%s", err.msg);
}

static void policy_path(struct request *req, const char *raw_name,
                        bool legacy, struct response *resp)
{
    char *name = lower_dup(raw_name);
    struct errbuf err;

    switch (req->op) {
    case OP_READ:
        read_policy(name, legacy, resp);
        break;
    case OP_CREATE:
    case OP_UPDATE:
        write_policy(req, raw_name, name, legacy, resp);
        break;
    case OP_DELETE:
        errbuf_clear(&err);
        if (policy_delete(name, &err) != 0)
            response_error(resp, 400, "%s", err.msg);
        break;
    default:
        response_multierror(resp, 405, "unsupported operation");
        break;
    }
    free(name);
}

/* ======================================================== capabilities == */

static void capabilities(struct request *req, const char *which,
                         struct response *resp)
{
    struct strvec paths;
    struct token *other = NULL;
    const struct token *t = req->token;
    cJSON *data;
    bool given;

    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    strvec_init(&paths);
    if (field_strlist(req->data, "paths", &paths, &given, resp) != 0 ||
        field_strlist(req->data, "path", &paths, &given, resp) != 0)
        goto out;
    if (strcmp(which, "capabilities") == 0) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(req->data, "token");
        other = cJSON_IsString(f) ? token_lookup(f->valuestring, false)
                                  : NULL;
        if (other == NULL) {
            response_error(resp, 400, "invalid token");
            goto out;
        }
        t = other;
    } else if (strcmp(which, "capabilities-accessor") == 0) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(req->data,
                                                          "accessor");
        other = cJSON_IsString(f) ? token_lookup_accessor(f->valuestring)
                                  : NULL;
        if (other == NULL) {
            response_error(resp, 400, "invalid accessor");
            goto out;
        }
        t = other;
    }
    if (paths.n == 0) {
        response_error(resp, 400, "paths must be supplied");
        goto out;
    }
    if (t == NULL) {
        response_error(resp, 400, "invalid token");
        goto out;
    }
    data = cJSON_CreateObject();
    for (size_t i = 0; i < paths.n; i++) {
        struct strvec caps;
        cJSON *arr = cJSON_CreateArray();

        strvec_init(&caps);
        policy_capabilities(t, paths.v[i], &caps);
        for (size_t k = 0; k < caps.n; k++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(caps.v[k]));
        if (paths.n == 1)
            cJSON_AddItemToObject(data, "capabilities",
                                  cJSON_Duplicate(arr, 1));
        if (cJSON_GetObjectItemCaseSensitive(data, paths.v[i]) == NULL)
            cJSON_AddItemToObject(data, paths.v[i], arr);
        else
            cJSON_Delete(arr);
        strvec_release(&caps);
    }
    resp->data = data;
    resp->inject_top = true;
out:
    token_free(other);
    strvec_release(&paths);
}

/* ============================================================ dispatch == */

bool sys_policy_handles(const char *rel)
{
    return strcmp(rel, "policy") == 0 || str_has_prefix(rel, "policy/") ||
           strcmp(rel, "policies/acl") == 0 ||
           str_has_prefix(rel, "policies/acl/") ||
           strcmp(rel, "capabilities") == 0 ||
           strcmp(rel, "capabilities-self") == 0 ||
           strcmp(rel, "capabilities-accessor") == 0;
}

void sys_policy_handle(struct request *req, const char *rel,
                       struct response *resp)
{
    if (str_has_prefix(rel, "capabilities")) {
        capabilities(req, rel, resp);
    } else if (strcmp(rel, "policy") == 0 || strcmp(rel, "policy/") == 0) {
        if (req->op == OP_READ || req->op == OP_LIST)
            list_policies(true, resp);
        else
            response_multierror(resp, 405, "unsupported operation");
    } else if (str_has_prefix(rel, "policy/")) {
        policy_path(req, rel + strlen("policy/"), true, resp);
    } else if (strcmp(rel, "policies/acl") == 0 ||
               strcmp(rel, "policies/acl/") == 0) {
        if (req->op == OP_LIST)
            list_policies(false, resp);
        else
            response_multierror(resp, 405, "unsupported operation");
    } else {
        policy_path(req, rel + strlen("policies/acl/"), false, resp);
    }
}
