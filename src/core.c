/*
 * core.c - the request pipeline.
 *
 *   1. path checks (printable, not empty)
 *   2. token: X-Vault-Token or Bearer, looked up in token.c
 *   3. policy: may this token run this operation on this path
 *   4. router: longest-prefix mount
 *   5. backend: sys/ and auth/token/ in C, everything else in Lua
 *   6. render: Vault's envelope, 204, or {"errors": [...]}
 *
 * Owns the order of those steps and the envelope rules, and wires the
 * subsystems together at start-up (core_init). Owns no state: whether
 * the server is sealed, and the lock a request holds while it runs, are
 * lifecycle.c's.
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "barrier.h"
#include "cubbyhole.h"
#include "forward.h"
#include "ha.h"
#include "json.h"
#include "json_write.h"
#include "kv_read.h"
#include "lease_standby.h"
#include "lifecycle.h"
#include "log.h"
#include "luavm.h"
#include "luavm_policy.h"
#include "metrics.h"
#include "policy.h"
#include "policy_explain.h"
#include "router.h"
#include "storage.h"
#include "sys.h"
#include "sys_ha.h"
#include "sys_seal.h"
#include "token.h"
#include "wrapping.h"

/* ========================================================= start, stop == */

/* Router and ACL learn what the Lua runtime provides through hooks. */
/* HA: a standby redirects (307) instead of forwarding. */
static bool redirect_standby_requests;
/* How long a standby waits to hear the changes of a request it
 * forwarded (ha_standby_sync) before it drops its caches instead. */
#define STANDBY_SYNC_MS 1000
/* The label of the key that signs a forwarded client address. */
#define FORWARD_KEY_LABEL "coffer/ha-forward/v1"

static bool lua_type_exists(enum mount_class klass, const char *type)
{
    return klass == MOUNT_AUTH ? luavm_auth_exists(type)
                               : luavm_engine_exists(type);
}

static const struct policy_lua_provider lua_policies = {
    .list = luavm_policy_list,
    .check = luavm_policy_check,
};

int core_init(const struct core_config *cfg, char **root_token,
              char **unseal_key, struct errbuf *err)
{
    struct lifecycle_config life = {
        .dev_mode = cfg->dev_mode,
        .dev_root_token_id = cfg->dev_root_token_id,
        .physical = cfg->physical,
        .lease_workers = cfg->lease_workers,
        .lease_retry_base = cfg->lease_retry_base,
        .lease_retry_max = cfg->lease_retry_max,
        .tick_interval = cfg->tick_interval,
        .ha = cfg->ha,
    };

    redirect_standby_requests = cfg->disable_request_forwarding;
    struct luavm_config lcfg = {.lua_dir = cfg->lua_dir,
                                .plugin_dir = cfg->plugin_dir,
                                .memory_limit = cfg->lua_memory_limit,
                                .call_timeout = cfg->lua_call_timeout,
                                .bootstrap_step = luavm_policy_bootstrap};
    int rc;

    *root_token = NULL;
    *unseal_key = NULL;
    lifecycle_setup(&life);
    lcfg.storage = barrier_storage(lifecycle_barrier());
    kv_read_configure(lcfg.storage);
    lease_standby_configure(lcfg.storage); /* a standby's lease index */
    luavm_policy_configure(cfg->policy_dir, cfg->lua_policy_budget);
    rc = luavm_global_init(&lcfg, err);
    if (rc != 0)
        return rc;
    router_set_type_check(lua_type_exists);
    policy_set_lua_provider(&lua_policies);
    auth_configure(cfg->login_rate, cfg->login_burst);
    sys_set_storage_type(cfg->physical->backend->name);
    cubbyhole_configure(lcfg.storage, token_exists_hmac);
    token_set_created_hook(metrics_token_created);
    if (cfg->dev_mode)
        rc = lifecycle_dev_bootstrap(root_token, unseal_key, err);
    return rc;
}

void core_shutdown(void)
{
    lifecycle_teardown();
    luavm_thread_release();
    luavm_global_shutdown();
    luavm_policy_release();
    auth_shutdown();
}

/* ============================================================= render == */

void reply_release(struct reply *r)
{
    if (r->body != NULL)
        secure_free(r->body, r->len);
    free(r->location);
    memset(r, 0, sizeof(*r));
}

/*
 * A reply body is written straight into one buffer (json_write.h:
 * cJSON's text without printing a copy first); body_end adds the
 * trailing newline Vault sends, and a reply past the buffer ceiling
 * (64 MiB) becomes a 500.
 */
#define BODY_RESERVE 1024

static void body_begin(struct buf *b, struct json_writer *w)
{
    buf_init(b, 0);
    buf_reserve(b, BODY_RESERVE);
    json_write_init(w, b);
}

static void body_end(struct reply *out, struct buf *b, struct json_writer *w)
{
    if (w->rc == 0)
        w->rc = buf_append(b, "\n", 1);
    if (w->rc != 0) {
        static const char too_big[] =
            "{\"errors\":[\"the response is too large to send\"]}\n";
        buf_release(b);
        out->status = 500;
        out->body = xstrdup(too_big);
        out->len = sizeof(too_big) - 1;
        return;
    }
    out->body = buf_detach(b, &out->len);
}

/* Takes ownership of json. */
static void set_body(struct reply *out, cJSON *json)
{
    struct buf b;
    struct json_writer w;

    body_begin(&b, &w);
    json_write_value(&w, json);
    cJSON_Delete(json);
    body_end(out, &b, &w);
}

void core_error_reply(struct reply *out, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *errs = cJSON_AddArrayToObject(o, "errors");

    if (msg != NULL)
        cJSON_AddItemToArray(errs, cJSON_CreateString(msg));
    out->status = status;
    set_body(out, o);
}

static cJSON *take(cJSON **p)
{
    cJSON *v = *p;

    *p = NULL;
    return v;
}

static bool is_empty_list(const cJSON *data)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(data, "keys");

    return !cJSON_IsArray(keys) || cJSON_GetArraySize(keys) == 0;
}

/* A string member as cJSON_AddStringToObject adds it (none for NULL). */
static void put_member_string(struct json_writer *w, const char *key,
                              const char *value)
{
    if (value != NULL)
        json_write_kv_string(w, key, value);
}

/* A member holding a tree, or null. */
static void put_member_tree(struct json_writer *w, const char *key,
                            const cJSON *value)
{
    json_write_key(w, key);
    json_write_value(w, value);
}

/*
 * Vault's envelope, written member by member instead of built as a tree
 * and printed: the same bytes, without an allocation per member. Takes
 * data, warnings and auth out of resp and frees them, as before.
 */
static void render_envelope(struct request *req, struct response *resp,
                            struct reply *out)
{
    cJSON *data = take(&resp->data);
    cJSON *warnings = take(&resp->warnings);
    cJSON *auth = take(&resp->auth);
    const cJSON *it;
    struct buf b;
    struct json_writer w;

    body_begin(&b, &w);
    json_write_open(&w, '{');
    put_member_string(&w, "request_id", req->id);
    put_member_string(&w, "lease_id",
                      resp->lease_id ? resp->lease_id : "");
    json_write_key(&w, "renewable");
    json_write_bool(&w, resp->renewable);
    json_write_kv_number(&w, "lease_duration",
                         (double)resp->lease_duration);
    if (resp->inject_top && cJSON_IsObject(data)) {
        cJSON_ArrayForEach(it, data) {
            if (it->string != NULL)
                put_member_tree(&w, it->string, it);
        }
    }
    put_member_tree(&w, "data", data);
    put_member_tree(&w, "wrap_info", NULL);
    put_member_tree(&w, "warnings", warnings);
    put_member_tree(&w, "auth", auth);
    put_member_string(&w, "mount_type", req->mount ? req->mount->type : "");
    json_write_close(&w, '}');
    cJSON_Delete(data);
    cJSON_Delete(warnings);
    cJSON_Delete(auth);
    out->status = resp->status ? resp->status : 200;
    body_end(out, &b, &w);
}

static void render(struct request *req, struct response *resp,
                   struct reply *out)
{
    bool nothing = resp->data == NULL && resp->auth == NULL &&
                   resp->warnings == NULL && resp->lease_id == NULL;

    if (resp->errors != NULL) {
        cJSON *o = cJSON_CreateObject(), *extra = take(&resp->raw);
        cJSON_AddItemToObject(o, "errors", take(&resp->errors));
        /* A 403's explanation (authorise): members beside "errors". */
        while (cJSON_IsObject(extra) && extra->child != NULL) {
            cJSON *m = cJSON_DetachItemViaPointer(extra, extra->child);
            cJSON_AddItemToObject(o, m->string, m);
        }
        cJSON_Delete(extra);
        out->status = resp->status ? resp->status : 400;
        set_body(out, o);
    } else if (resp->text != NULL) {
        out->status = resp->status ? resp->status : 200;
        out->len = strlen(resp->text);
        out->body = resp->text;
        resp->text = NULL;
        out->content_type = "text/plain; version=0.0.4";
    } else if (resp->raw != NULL) {
        out->status = resp->status ? resp->status : 200;
        if (resp->no_body)
            cJSON_Delete(take(&resp->raw));
        else
            set_body(out, take(&resp->raw));
    } else if (req->op == OP_LIST && resp->status == 0 &&
               is_empty_list(resp->data)) {
        core_error_reply(out, 404, NULL);
    } else if (nothing && resp->status == 0) {
        if (req->op == OP_READ || req->op == OP_LIST)
            core_error_reply(out, 404, NULL);
        else
            out->status = 204;
    } else if (nothing && resp->no_body) {
        out->status = resp->status;
    } else {
        render_envelope(req, resp, out);
    }
}

/* Renders a deep copy of resp, which stays whole for its audit entry. */
static void render_copy(struct request *req, const struct response *resp,
                        struct reply *out)
{
    struct response c = *resp;

    c.data = cJSON_Duplicate(resp->data, 1);
    c.warnings = cJSON_Duplicate(resp->warnings, 1);
    c.auth = cJSON_Duplicate(resp->auth, 1);
    c.errors = cJSON_Duplicate(resp->errors, 1);
    c.raw = cJSON_Duplicate(resp->raw, 1);
    c.text = resp->text != NULL ? xstrdup(resp->text) : NULL;
    c.lease_id = resp->lease_id != NULL ? xstrdup(resp->lease_id) : NULL;
    render(req, &c, out);
    json_delete_wiped(c.data);
    json_delete_wiped(c.auth);
    json_delete_wiped(c.raw);
    c.data = c.auth = c.raw = NULL;
    response_release(&c);
}

/*
 * A request that asked for wrapping: a reply that renders as 200 with a
 * JSON body goes behind a wrapping token (wrapping.c) and resp becomes
 * the envelope, before the response's audit entry, so that entry holds
 * wrap_info and not the wrapped secret (Vault's rule).
 */
static void wrap_response(struct request *req, struct response *resp)
{
    struct reply inner;
    cJSON *env;

    if (!wrapping_wanted(req) || resp->errors != NULL)
        return;
    memset(&inner, 0, sizeof(inner));
    render_copy(req, resp, &inner);
    if (inner.status == 200 && inner.content_type == NULL &&
        inner.body != NULL) {
        env = wrapping_wrap(req, inner.body);
        json_delete_wiped(resp->data); /* the secret now lives wrapped */
        json_delete_wiped(resp->auth);
        json_delete_wiped(resp->raw);
        resp->data = resp->auth = resp->raw = NULL;
        response_release(resp);
        response_init(resp);
        if (env != NULL)
            resp->raw = env;
        else
            response_error(resp, 500, "internal error");
    }
    reply_release(&inner);
}

/* =========================================================== pipeline == */

static bool path_printable(const char *p)
{
    for (; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

/* Runs the backend that owns the mount. */
static void dispatch(struct request *req, struct response *resp)
{
    const struct mount *m = req->mount;
    size_t mlen = strlen(m->path);

    req->rel_path = strlen(req->path) >= mlen ? req->path + mlen : "";
    switch (m->impl) {
    case MOUNT_IMPL_SYSTEM: sys_handle(req, resp); break;
    case MOUNT_IMPL_TOKEN: token_handle(req, resp); break;
    case MOUNT_IMPL_LUA: /* kv reads in C when exact (kv_read.h) */
        if (!kv_read_handle(m, req, resp))
            luavm_handle(m, req, resp);
        break;
    }
}

/*
 * Vault's existence check: a write (PUT/POST) to a path whose engine says
 * the target does not exist is a create, which a policy may grant apart
 * from update. Runs before the ACL check, like Vault's.
 */
static void classify_write(struct request *req)
{
    const struct mount *m;

    if (req->op != OP_UPDATE)
        return;
    m = router_match(req->path);
    if (m != NULL && m->impl == MOUNT_IMPL_LUA) {
        size_t mlen = strlen(m->path);
        req->rel_path = strlen(req->path) >= mlen ? req->path + mlen : "";
        if (luavm_exists(m, req) == 0)
            req->op = OP_CREATE;
        req->rel_path = NULL;
    }
    router_mount_put(m);
}

/*
 * Authenticates and authorises; on refusal resp holds the error. A
 * use-limited token's use is taken last, atomically with a fresh read of
 * its entry, before the backend runs: of parallel requests on a token's
 * last use exactly one gets through. A denied request takes no use.
 */
static void authorise(struct request *req, struct response *resp)
{
    struct token *t = lifecycle_request_token(req);
    struct errbuf why;

    if (t == NULL) {
        response_error(resp, 403, "permission denied");
        return;
    }
    req->token = t;
    classify_write(req);
    if (policy_check(t, req, &why) != 0) {
        log_debug("policy: %s %s denied: %s", req_op_name(req->op),
                  req->path, why.msg);
        response_multierror(resp, 403, "permission denied");
        /* X-Coffer-Explain: warnings + explain join the error body. */
        if (req->explain)
            resp->raw = policy_explain_denied(t, req);
        return;
    }
    if (token_use(t) != 0)
        response_multierror(resp, 403, "permission denied");
}

/*
 * Token-optional paths (sys/internal/ui/mounts): without a token the
 * backend answers for an anonymous caller; a token that is given must be
 * one the caller may use here, CIDR bindings included (Vault refuses
 * with permission denied). No use is taken, as in Vault.
 */
static int optional_token(struct request *req, struct response *resp)
{
    if (req->client_token == NULL || req->client_token[0] == '\0')
        return 0;
    req->token = lifecycle_request_token(req);
    if (req->token == NULL) {
        response_multierror(resp, 403, "permission denied");
        return -1;
    }
    return 0;
}

/*
 * The request took its token's last use: the token goes now, and with it
 * every lease it obtained, this request's included. A leased secret is
 * then not handed out (Vault's rule and message).
 */
static void finish_last_use(struct request *req, struct response *resp)
{
    token_finish_use(req->token);
    if (resp->errors == NULL && resp->lease_id != NULL &&
        resp->lease_id[0] != '\0') {
        response_release(resp);
        response_init(resp);
        response_error(resp, 400, "Secret cannot be returned; token had one "
                                  "use left, so leased credentials were "
                                  "immediately revoked.");
    }
}

/* Routes an authorised request to its mount's backend. */
static void route(struct request *req, struct response *resp)
{
    const struct mount *m;

    m = router_match(req->path); /* cubbyhole/ too: its listing entry */
    if (cubbyhole_handles(req->path)) { /* per token, outside the table */
        req->mount = m; /* for metrics and the audit entries */
        cubbyhole_handle(req->token ? req->token->id_hmac : NULL, req,
                         resp);
        return;
    }

    if (m == NULL) {
        response_error(resp, 404, "no handler for route \"%s\". route entry "
                                  "not found.", req->path);
        return;
    }
    req->mount = m;
    if ((req->op == OP_CREATE || req->op == OP_UPDATE ||
         req->op == OP_PATCH) && str_has_suffix(req->path, "/")) {
        response_error(resp, 400, "cannot write to a path ending in '/'");
        return;
    }
    dispatch(req, resp);
}

/*
 * Runs the pipeline. The token and mount it resolves stay in req (owned
 * by the caller, released after rendering, which needs the mount type).
 */
static void run(struct request *req, struct response *resp)
{
    if (req->op == OP_HEAD) {
        response_empty_error(resp, 405);
        return;
    }
    if (wrapping_intercepts(req)) { /* checks the wrapping token itself */
        if (audit_log_request(req, resp) == 0)
            wrapping_handle(req, resp);
        return;
    }
    if (sys_is_token_optional(req->path)) {
        if (optional_token(req, resp) == 0 &&
            audit_log_request(req, resp) == 0)
            sys_handle(req, resp);
        return;
    }
    if (auth_is_login(req)) { /* auth/<mount>/login...: no token needed */
        if (audit_log_request(req, resp) == 0) /* fails closed */
            auth_login(req, resp);
        return;
    }
    authorise(req, resp);
    if (audit_log_request(req, resp) == 0 && resp->errors == NULL)
        route(req, resp);
    if (req->token != NULL && req->token->last_use)
        finish_last_use(req, resp);
}

/* ================================================================= HA == */

/*
 * The one rule for what a standby answers itself (OpenBao's standby
 * reads): a read that needs no write. The path is a read of the built-in
 * kv engine (GET or LIST; kv_read.c's native path included), a token's
 * lookup-self, or a sys/ read that only shows memory (mounts, policies);
 * the request is not wrapped (a wrapping token is a write) and not one
 * a standby already forwarded; the token resolves here and has no use
 * limit (taking a use is a write). Audit devices were loaded read-only
 * with the rest (lifecycle.c) and log locally. Anything else, and
 * anything while the standby cannot hear the active's changes (nothing
 * loaded), goes to the active. Caller holds the state lock.
 */
static bool standby_read_path(const struct request *req)
{
    const char *p = req->path;
    const struct mount *m;
    bool kv;

    if (req->op == OP_READ &&
        (strcmp(p, "auth/token/lookup-self") == 0 ||
         strcmp(p, "sys/mounts") == 0 || strcmp(p, "sys/policy") == 0 ||
         str_has_prefix(p, "sys/policy/") ||
         str_has_prefix(p, "sys/policies/acl/")))
        return true;
    if (req->op == OP_LIST && (strcmp(p, "sys/policy/") == 0 ||
                               strcmp(p, "sys/policies/acl/") == 0))
        return true;
    if (req->op != OP_READ && req->op != OP_LIST)
        return false;
    m = router_match(p);
    kv = m != NULL && m->impl == MOUNT_IMPL_LUA && strcmp(m->type, "kv") == 0;
    router_mount_put(m);
    return kv;
}

static bool standby_serves(const struct request *req)
{
    struct token *t = NULL;
    bool ok = false;

    if (req->forwarded_for != NULL || req->wrap_ttl != 0 ||
        !lifecycle_standby_reads())
        return false;
    if (lifecycle_enter_reads() && standby_read_path(req)) {
        t = lifecycle_request_token(req);
        ok = t != NULL && t->num_uses == 0;
    }
    lifecycle_leave();
    token_free(t);
    return ok;
}

/*
 * On a standby: the request goes to the active node, forwarded (its
 * reply relayed) or, with disable_request_forwarding, redirected. Vault's
 * text when no active node is known.
 */
static void send_to_active(struct request *req, struct reply *out)
{
    char leader[256];
    uint8_t key[32];
    struct forward_reply fr = {0};
    struct errbuf err;

    /* One hop only: a request a standby already forwarded is never sent
     * on again (two standbys with stale views would bounce it). */
    if (req->forwarded_for != NULL) {
        core_error_reply(out, 503, "a forwarded request reached a node that "
                                   "is not active (the active node is "
                                   "changing): retry");
        return;
    }
    if (sys_ha_leader_address(leader, sizeof(leader)) != 0) {
        core_error_reply(out, 503, "local node not active but active "
                                   "cluster node not found");
        return;
    }
    if (redirect_standby_requests) {
        out->status = 307;
        out->location = forward_redirect_url(leader, req);
        return;
    }
    if (barrier_derive_key(lifecycle_barrier(), FORWARD_KEY_LABEL, key) != 0) {
        core_error_reply(out, 503, "Vault is sealed");
        return;
    }
    request_budget_begin();
    if (forward_request(leader, req, key, request_budget_left_ms(), &fr,
                        &err) != 0) {
        log_warn("ha: %s", err.msg);
        core_error_reply(out, 503, err.msg);
    } else {
        out->status = fr.status;
        out->body = fr.body;
        out->len = fr.len;
        out->location = fr.location;
        out->content_type = fr.text_plain ? "text/plain; charset=utf-8" : NULL;
        /* Whatever the active wrote for it is heard here before the
         * client can read it back through this node. */
        if (lifecycle_standby_reads())
            (void)ha_standby_sync(STANDBY_SYNC_MS);
    }
    request_budget_end();
    crypto_wipe(key, sizeof(key));
}

/*
 * On the active: a request a standby forwarded carries its client's
 * address, signed; only a valid signature replaces the address the
 * connection came from (the standby's). Anything else is ignored.
 */
static void trust_forwarded_addr(struct request *req)
{
    uint8_t key[32];
    char addr[sizeof(req->remote_addr)];

    if (req->forwarded_for == NULL ||
        barrier_derive_key(lifecycle_barrier(), FORWARD_KEY_LABEL, key) != 0)
        return;
    if (forward_verify_client_addr(req->forwarded_for, key, req->op,
                                   req->path, addr, sizeof(addr)))
        memcpy(req->remote_addr, addr, sizeof(addr));
    else
        log_warn("ignoring an %s header whose signature does not hold "
                 "(from %s)", FORWARD_HEADER, req->remote_addr);
    crypto_wipe(key, sizeof(key));
}

void core_handle(struct request *req, struct reply *out)
{
    struct response resp;
    struct metrics_req mr = {0};

    memset(out, 0, sizeof(*out));
    response_init(&resp);
    if (crypto_uuid(req->id) != 0) {
        core_error_reply(out, 500, "internal error");
        return;
    }
    if (!path_printable(req->path)) {
        core_error_reply(out, 400, "invalid path: contains non-printable "
                                   "characters");
        return;
    }
    if (req->op == OP_LIST && sys_seal_handles(req->path)) {
        /* Vault serves these outside its router: LIST is just a verb. */
        core_error_reply(out, 405, NULL);
        return;
    }
    if (req->op == OP_LIST && !str_has_suffix(req->path, "/")) {
        size_t n = strlen(req->path);
        req->path = xrealloc(req->path, n + 2);
        req->path[n] = '/';
        req->path[n + 1] = '\0';
    }
    /* Log lines this thread writes from here on carry the request id. */
    log_set_request_id(req->id);
    mr.start = time_mono();
    if (sys_seal_handles(req->path)) {
        /* Outside the state lock: these change or report the state. */
        sys_seal_handle(req, &resp);
        render(req, &resp, out);
    } else if (lifecycle_is_standby() && !standby_serves(req)) {
        send_to_active(req, out);
    } else {
        /* Active, sealed, or a standby serving a read (standby_serves) */
        bool active = lifecycle_enter_reads();

        request_budget_begin();
        if (active)
            trust_forwarded_addr(req);
        if (active)
            run(req, &resp);
        else
            response_error(&resp, 503, "Vault is sealed");
        metrics_capture(&mr, req, &resp); /* before wrapping takes auth */
        if (active)
            wrap_response(req, &resp);
        if (active) /* the response entry; fails closed (500) */
            audit_log_response(req, &resp);
        render(req, &resp, out);
        token_free((struct token *)req->token);
        router_mount_put(req->mount);
        req->token = NULL;
        req->mount = NULL;
        request_budget_end();
        lifecycle_leave();
    }
    log_debug("%s %s %s -> %d", req->id, req_op_name(req->op), req->path,
              out->status);
    metrics_note_request(req, out->status, &mr);
    log_set_request_id(NULL);
    response_release(&resp);
}
