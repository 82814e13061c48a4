/*
 * wrapping.c - response wrapping (wrapping.h).
 *
 * Storage follows Vault's: the wrapping token's cubbyhole holds
 *   response   {"response": "<the inner reply as JSON text>"}
 *   wrapinfo   {"creation_ttl": <ns>, "creation_time": "...",
 *               "creation_path": "..."}
 * The client token of a wrapping token exists only in the envelope sent
 * to the client; the store keeps its HMAC, like every token's.
 */
#include "wrapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "cubbyhole.h"
#include "json.h"
#include "lifecycle.h"
#include "log.h"
#include "mount.h"
#include "policy.h"
#include "router.h"
#include "token.h"
#include "token_internal.h"
#include "util.h"

#define WRAP_POLICY "response-wrapping"
#define WRAP_INVALID "wrapping token is not valid or does not exist"
#define NS_PER_SEC 1000000000.0

bool wrapping_intercepts(const struct request *req)
{
    return strcmp(req->path, "sys/wrapping/unwrap") == 0 ||
           strcmp(req->path, "sys/wrapping/lookup") == 0 ||
           strcmp(req->path, "sys/wrapping/rewrap") == 0;
}

/* ------------------------------------------------------------ create -- */

/*
 * The accessor Vault reports as wrapped_accessor: a wrapped token's, or
 * an AppRole secret-id's. Copies it into out ("" when there is none).
 */
static void wrapped_accessor(const char *inner, const char *path,
                             char *out, size_t n)
{
    cJSON *o = json_parse(inner, strlen(inner), JSON_MAX_DEPTH, true, NULL);
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(o, "auth");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    const char *acc = json_get_str(auth, "accessor", NULL);

    if (acc == NULL && str_has_prefix(path, "auth/"))
        acc = json_get_str(data, "secret_id_accessor", NULL);
    snprintf(out, n, "%s", acc != NULL ? acc : "");
    json_delete_wiped(o);
}

/* Writes the reply and its creation facts into t's cubbyhole. */
static int store_inner(const struct token *t, const char *inner,
                       const char *created)
{
    cJSON *resp = cJSON_CreateObject();
    cJSON *info = cJSON_CreateObject();
    int rc;

    cJSON_AddStringToObject(resp, "response", inner);
    cJSON_AddNumberToObject(info, "creation_ttl",
                            (double)t->creation_ttl * NS_PER_SEC);
    cJSON_AddStringToObject(info, "creation_time", created);
    cJSON_AddStringToObject(info, "creation_path", t->path);
    rc = cubbyhole_put(t->id_hmac, "response", resp);
    if (rc == 0)
        rc = cubbyhole_put(t->id_hmac, "wrapinfo", info);
    json_delete_wiped(resp);
    cJSON_Delete(info);
    return rc;
}

static cJSON *envelope(const char *client, const struct token *t,
                       const char *created, const char *accessor)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *wi;

    cJSON_AddStringToObject(o, "request_id", "");
    cJSON_AddStringToObject(o, "lease_id", "");
    cJSON_AddBoolToObject(o, "renewable", false);
    cJSON_AddNumberToObject(o, "lease_duration", 0);
    cJSON_AddNullToObject(o, "data");
    wi = cJSON_AddObjectToObject(o, "wrap_info");
    cJSON_AddStringToObject(wi, "token", client);
    cJSON_AddStringToObject(wi, "accessor", t->accessor);
    cJSON_AddNumberToObject(wi, "ttl", (double)t->creation_ttl);
    cJSON_AddStringToObject(wi, "creation_time", created);
    cJSON_AddStringToObject(wi, "creation_path", t->path);
    if (accessor[0] != '\0')
        cJSON_AddStringToObject(wi, "wrapped_accessor", accessor);
    cJSON_AddNullToObject(o, "warnings");
    cJSON_AddNullToObject(o, "auth");
    return o;
}

/*
 * Makes a wrapping token holding inner (a rendered reply) and returns
 * Vault's envelope for it, or NULL with nothing of it left behind.
 */
static cJSON *wrap_text(const char *inner, int64_t ttl, const char *path)
{
    struct token *t = token_entry_new();
    const struct mount *m = router_match("auth/token/");
    char *client = token_mint(t, NULL);
    char created[64], accessor[128];
    cJSON *env = NULL;
    int rc = client != NULL && m != NULL ? 0 : COFFER_EINTERNAL;

    strvec_push(&t->policies, WRAP_POLICY);
    t->display_name = xstrdup("");
    t->path = xstrdup(path);
    t->num_uses = 1;
    t->ttl = t->creation_ttl = t->explicit_max_ttl = ttl;
    t->expire_time = t->creation_time + ttl;
    t->orphan = true;
    time_format_rfc3339(t->issue_time, created, sizeof(created));
    wrapped_accessor(inner, path, accessor, sizeof(accessor));
    if (rc == 0)
        rc = token_persist_new(t, m);
    if (rc == 0 && store_inner(t, inner, created) != 0) {
        token_revoke_tree(t->id_hmac, t->accessor, NULL);
        rc = COFFER_EINTERNAL;
    }
    if (rc == 0)
        env = envelope(client, t, created, accessor);
    else
        log_error("wrapping: could not create a wrapping token for %s (%d)",
                  path, rc);
    router_mount_put(m);
    secure_free_str(client);
    token_free(t);
    return env;
}

bool wrapping_wanted(const struct request *req)
{
    return req->wrap_ttl > 0 &&
           strcmp(req->path, "sys/wrapping/rewrap") != 0;
}

cJSON *wrapping_wrap(const struct request *req, const char *body)
{
    return wrap_text(body, req->wrap_ttl, req->path);
}

/* -------------------------------------------------------- sys/wrapping -- */

void wrapping_handle_wrap(const struct request *req, struct response *resp)
{
    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    if (req->wrap_ttl <= 0) {
        response_error(resp, 400, "endpoint requires response wrapping to "
                                  "be used");
        return;
    }
    resp->data = cJSON_IsObject(req->data) ? cJSON_Duplicate(req->data, 1)
                                           : cJSON_CreateObject();
}

/*
 * The wrapping token named by the request: the body's "token", else the
 * X-Vault-Token. NULL with resp set (Vault's texts). *in_body tells the
 * caller that the request's own token (if any) is someone else's.
 */
static const char *token_of(const struct request *req, bool *in_body,
                            struct response *resp)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req->data, "token");

    *in_body = false;
    if (v != NULL && !cJSON_IsString(v)) {
        response_error(resp, 403, "error validating wrapping token: could "
                                  "not decode token in request body");
        return NULL;
    }
    if (v != NULL && v->valuestring[0] == '\0') {
        response_error(resp, 403, "error validating wrapping token: empty "
                                  "token in request body");
        return NULL;
    }
    if (v != NULL) {
        *in_body = req->client_token == NULL ||
                   strcmp(req->client_token, v->valuestring) != 0;
        return v->valuestring;
    }
    if (req->client_token == NULL || req->client_token[0] == '\0') {
        response_error(resp, 403, "error validating wrapping token: token "
                                  "is empty");
        return NULL;
    }
    return req->client_token;
}

/* A live token whose one policy is response-wrapping, or NULL. */
static struct token *wrap_token_find(const char *client)
{
    struct token *t = token_lookup(client, false);

    if (t != NULL && (t->policies.n != 1 ||
                      strcmp(t->policies.v[0], WRAP_POLICY) != 0)) {
        token_free(t);
        t = NULL;
    }
    return t;
}

/* Takes the token's only use: of racing callers exactly one gets it. */
static struct token *wrap_token_take(const char *client,
                                     struct response *resp)
{
    struct token *t = wrap_token_find(client);

    if (t == NULL || token_use(t) != 0) {
        token_free(t);
        response_error(resp, 400, WRAP_INVALID);
        return NULL;
    }
    return t;
}

/* With the wrapping token in the body, the caller's token is the auth. */
static int caller_allowed(const struct request *req, struct response *resp)
{
    struct token *t = lifecycle_request_token(req);
    struct errbuf why;
    int rc = -1;

    if (t != NULL && policy_check(t, req, &why) == 0)
        rc = 0;
    else
        response_multierror(resp, 403, "permission denied");
    token_free(t);
    return rc;
}

/* The stored inner reply text of t (a new string) or NULL. */
static char *stored_reply(const struct token *t)
{
    cJSON *o = cubbyhole_get(t->id_hmac, "response");
    const char *s = json_get_str(o, "response", NULL);
    char *out = s != NULL ? xstrdup(s) : NULL;

    json_delete_wiped(o);
    return out;
}

static void do_unwrap(const char *client, struct response *resp)
{
    struct token *t = wrap_token_take(client, resp);
    char *inner;

    if (t == NULL)
        return;
    inner = stored_reply(t);
    token_revoke_tree(t->id_hmac, t->accessor, NULL);
    if (inner != NULL)
        resp->raw = json_parse(inner, strlen(inner), JSON_MAX_DEPTH, true,
                               NULL);
    if (resp->raw == NULL)
        response_error(resp, 500, "internal error");
    secure_free_str(inner);
    token_free(t);
}

static void do_lookup(const char *client, struct response *resp)
{
    struct token *t = wrap_token_find(client);
    cJSON *info;

    if (t == NULL) {
        response_error(resp, 400, WRAP_INVALID);
        return;
    }
    info = cubbyhole_get(t->id_hmac, "wrapinfo");
    if (!cJSON_IsObject(info)) {
        response_error(resp, 500, "internal error");
    } else {
        resp->data = cJSON_CreateObject();
        /* TTL and path from the token entry: the same, and typed. */
        cJSON_AddNumberToObject(resp->data, "creation_ttl",
                                (double)t->creation_ttl);
        cJSON_AddStringToObject(resp->data, "creation_time",
                                json_get_str(info, "creation_time", ""));
        cJSON_AddStringToObject(resp->data, "creation_path",
                                t->path != NULL ? t->path : "");
    }
    cJSON_Delete(info);
    token_free(t);
}

/* A new token with the old one's reply, TTL and path; the old one goes. */
static void do_rewrap(const char *client, struct response *resp)
{
    struct token *t = wrap_token_take(client, resp);
    char *inner;

    if (t == NULL)
        return;
    inner = stored_reply(t);
    if (inner != NULL)
        resp->raw = wrap_text(inner, t->creation_ttl, t->path);
    token_revoke_tree(t->id_hmac, t->accessor, NULL);
    if (resp->raw == NULL)
        response_error(resp, 500, "internal error");
    secure_free_str(inner);
    token_free(t);
}

void wrapping_handle(struct request *req, struct response *resp)
{
    bool lookup = strcmp(req->path, "sys/wrapping/lookup") == 0;
    bool in_body;
    const char *client;

    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    if (lookup && cJSON_GetObjectItemCaseSensitive(req->data, "token") ==
                      NULL &&
        (req->client_token == NULL || req->client_token[0] == '\0')) {
        response_error(resp, 400, "missing \"token\" value in input");
        return;
    }
    client = token_of(req, &in_body, resp);
    if (client == NULL)
        return;
    if (lookup)
        do_lookup(client, resp);
    else if (in_body && caller_allowed(req, resp) != 0)
        return;
    else if (strcmp(req->path, "sys/wrapping/unwrap") == 0)
        do_unwrap(client, resp);
    else
        do_rewrap(client, resp);
}
