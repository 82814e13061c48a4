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
 *   sys/policies/explain[-self]          PUT/POST (policy_explain.h)
 */
#include "sys_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "policy.h"
#include "policy_explain.h"
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
    /* Coffer's own: a Lua policy says so (read-only; its rules as HCL). */
    text = legacy ? NULL : policy_lua_file(name);
    if (text != NULL) {
        cJSON_AddBoolToObject(resp->data, "lua", true);
        cJSON_AddStringToObject(resp->data, "file", text);
        free(text);
    }
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

/* ============================================================= explain == */

#define EXPLAIN_PATH_MAX 4096

/* The one selector of sys/policies/explain: token, accessor or policies. */
static int explain_subject(const cJSON *in, struct token **other,
                           struct strvec *names, struct response *resp)
{
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(in, "token");
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(in, "accessor");
    const cJSON *pol = cJSON_GetObjectItemCaseSensitive(in, "policies");
    bool given;

    if ((tok != NULL) + (acc != NULL) + (pol != NULL) != 1) {
        response_error(resp, 400, "exactly one of token, accessor or "
                                  "policies must be supplied");
        return -1;
    }
    if (tok != NULL) {
        *other = cJSON_IsString(tok) ? token_lookup(tok->valuestring, false)
                                     : NULL;
        if (*other == NULL)
            response_error(resp, 400, "invalid token");
        return *other != NULL ? 0 : -1;
    }
    if (acc != NULL) {
        *other = cJSON_IsString(acc)
                     ? token_lookup_accessor(acc->valuestring) : NULL;
        if (*other == NULL)
            response_error(resp, 400, "invalid accessor");
        return *other != NULL ? 0 : -1;
    }
    if (field_strlist(in, "policies", names, &given, resp) != 0)
        return -1;
    for (size_t i = 0; i < names->n; i++) {
        char *low = lower_dup(names->v[i]);
        free(names->v[i]);
        names->v[i] = low;
    }
    strvec_sort(names);
    strvec_uniq(names);
    if (names->n == 0 || names->v[0][0] == '\0') {
        response_error(resp, 400, "policies must name at least one policy");
        return -1;
    }
    return 0;
}

/* path, operation, data and remote_addr of the request to explain. */
static int explain_request(const cJSON *in, const struct request *caller,
                           struct request *q, struct response *resp)
{
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(in, "path");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(in, "operation");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    const cJSON *addr = cJSON_GetObjectItemCaseSensitive(in, "remote_addr");
    const char *p;

    if (!cJSON_IsString(path) || path->valuestring[0] == '\0') {
        response_error(resp, 400, "path must be supplied as a string");
        return -1;
    }
    if (strlen(path->valuestring) > EXPLAIN_PATH_MAX) {
        response_error(resp, 400, "path is longer than %d bytes",
                       EXPLAIN_PATH_MAX);
        return -1;
    }
    if (!cJSON_IsString(op) || !policy_explain_op(op->valuestring, &q->op)) {
        response_error(resp, 400, "operation must be one of create, read, "
                                  "update, delete, list, patch");
        return -1;
    }
    if (data != NULL && !cJSON_IsObject(data) && !cJSON_IsNull(data)) {
        response_error(resp, 400, "data must be a JSON object");
        return -1;
    }
    if (addr != NULL && (!cJSON_IsString(addr) ||
                         strlen(addr->valuestring) >= sizeof(q->remote_addr))) {
        response_error(resp, 400, "remote_addr must be an address string");
        return -1;
    }
    for (p = path->valuestring; *p == '/'; p++)
        ;
    if (*p == '\0') {
        response_error(resp, 400, "path must be supplied as a string");
        return -1;
    }
    q->path = xstrdup(p);
    q->data = cJSON_IsObject(data) ? cJSON_Duplicate(data, 1)
                                   : cJSON_CreateObject();
    snprintf(q->remote_addr, sizeof(q->remote_addr), "%s",
             addr != NULL ? addr->valuestring : caller->remote_addr);
    memcpy(q->id, caller->id, sizeof(q->id));
    return 0;
}

/* A warning for each name of the set that is not a policy (no rules). */
static void warn_unknown(const struct strvec *names, struct response *resp)
{
    for (size_t i = 0; i < names->n; i++) {
        char *text = NULL;
        if (strcmp(names->v[i], "root") != 0 &&
            policy_read(names->v[i], &text) == COFFER_ENOTFOUND)
            response_warn(resp, "policy \"%s\" does not exist; it grants "
                                "nothing", names->v[i]);
        free(text);
    }
}

/*
 * sys/policies/explain (sudo: any token or policy set) and
 * sys/policies/explain-self (the calling token only: it takes no
 * selector, so it tells a token nothing about another one).
 */
static void explain(struct request *req, bool self, struct response *resp)
{
    struct request q;
    struct token *other = NULL;
    struct strvec names;
    const cJSON *in = req->data;

    request_init(&q);
    strvec_init(&names);
    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_multierror(resp, 405, "unsupported operation");
        goto out;
    }
    if (self && (cJSON_GetObjectItemCaseSensitive(in, "token") != NULL ||
                 cJSON_GetObjectItemCaseSensitive(in, "accessor") != NULL ||
                 cJSON_GetObjectItemCaseSensitive(in, "policies") != NULL)) {
        response_error(resp, 400, "explain-self explains the calling token; "
                                  "use sys/policies/explain for token, "
                                  "accessor or policies");
        goto out;
    }
    if (self && req->token == NULL) {
        response_error(resp, 400, "invalid token");
        goto out;
    }
    if (explain_request(in, req, &q, resp) != 0 ||
        (!self && explain_subject(in, &other, &names, resp) != 0))
        goto out;
    q.token = self ? req->token : other;
    resp->data = policy_explain(q.token, &names, &q, !self);
    warn_unknown(q.token != NULL ? &q.token->policies : &names, resp);
out:
    q.token = NULL;
    token_free(other);
    strvec_release(&names);
    request_release(&q);
}

/* ============================================================ dispatch == */

bool sys_policy_handles(const char *rel)
{
    return strcmp(rel, "policy") == 0 || str_has_prefix(rel, "policy/") ||
           strcmp(rel, "policies/acl") == 0 ||
           str_has_prefix(rel, "policies/acl/") ||
           strcmp(rel, "capabilities") == 0 ||
           strcmp(rel, "capabilities-self") == 0 ||
           strcmp(rel, "capabilities-accessor") == 0 ||
           strcmp(rel, "policies/explain") == 0 ||
           strcmp(rel, "policies/explain-self") == 0;
}

void sys_policy_handle(struct request *req, const char *rel,
                       struct response *resp)
{
    if (str_has_prefix(rel, "capabilities")) {
        capabilities(req, rel, resp);
    } else if (str_has_prefix(rel, "policies/explain")) {
        explain(req, strcmp(rel, "policies/explain-self") == 0, resp);
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
