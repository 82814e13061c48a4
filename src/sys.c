/*
 * sys.c - the sys/ backend.
 *
 * Owns the wire format of the system endpoints and dispatches sys/; the
 * lease endpoints are sys_leases.c, the policy ones sys_policy.c, the
 * plugin reload sys_plugins.c. The
 * state they report lives elsewhere: mounts in router.c, tokens in
 * token.c, leases in lease.c. Endpoints that
 * Vault serves outside its logical router (health, seal-status, leader,
 * init) answer bare JSON through resp->raw.
 */
#include "sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barrier.h"
#include "lifecycle.h"
#include "lease.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "router.h"
#include "sys_audit.h"
#include "sys_ha.h"
#include "sys_leases.h"
#include "sys_plugins.h"
#include "sys_password_policy.h"
#include "sys_policy.h"
#include "token.h"
#include "util.h"
#include "wrapping.h"

bool sys_is_token_optional(const char *path)
{
    return strcmp(path, "sys/internal/ui/mounts") == 0 ||
           str_has_prefix(path, "sys/internal/ui/mounts/") ||
           (strcmp(path, "sys/metrics") == 0 && metrics_unauthenticated());
}

/* ============================================================== mounts == */

static void reply_errbuf(struct response *resp, const struct errbuf *err)
{
    response_error(resp, 400, "%s", err->msg);
}

static void tune_read(enum mount_class klass, const char *path,
                      struct response *resp)
{
    char full[1024];
    const struct mount *m;
    int64_t def, max;
    cJSON *o;

    snprintf(full, sizeof(full), "%s%s/", klass == MOUNT_AUTH ? "auth/" : "",
             path);
    m = router_match(full);
    if (m == NULL || strcmp(m->path, full) != 0) {
        response_error(resp, 400, "cannot fetch sysview for path \"%s\"",
                       full);
        router_mount_put(m);
        return;
    }
    mount_resolve_ttl(m, 0, 0, &def, &max);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "description", m->description);
    cJSON_AddNumberToObject(o, "default_lease_ttl", (double)def);
    cJSON_AddNumberToObject(o, "max_lease_ttl", (double)max);
    cJSON_AddBoolToObject(o, "force_no_cache", false);
    if (m->options != NULL)
        cJSON_AddItemToObject(o, "options", cJSON_Duplicate(m->options, 1));
    if (klass == MOUNT_AUTH)
        cJSON_AddStringToObject(o, "token_type", "default-service");
    resp->data = o;
    router_mount_put(m);
}

static void mount_read(enum mount_class klass, const char *path,
                       struct response *resp)
{
    char full[1024];
    const struct mount *m;

    snprintf(full, sizeof(full), "%s%s/", klass == MOUNT_AUTH ? "auth/" : "",
             path);
    if (klass == MOUNT_SECRET && strcmp(full, "cubbyhole/") == 0) {
        cJSON *all = router_list_json(MOUNT_SECRET); /* listed, not routed */
        resp->data = cJSON_DetachItemFromObjectCaseSensitive(all, full);
        cJSON_Delete(all);
        return;
    }
    m = router_match(full);
    if (m == NULL || strcmp(m->path, full) != 0) {
        response_error(resp, 400, "No secret engine mount at %s",
                       full + (klass == MOUNT_AUTH ? 5 : 0));
        router_mount_put(m);
        return;
    }
    resp->data = router_mount_json(m);
    router_mount_put(m);
}

/* Splits "<path>/tune" off; returns true if rest named a tune endpoint. */
static bool split_tune(char *rest)
{
    size_t n = strlen(rest);

    while (n > 0 && rest[n - 1] == '/')
        rest[--n] = '\0';
    if (n >= 5 && strcmp(rest + n - 5, "/tune") == 0) {
        rest[n - 5] = '\0';
        return true;
    }
    return false;
}

/*
 * Unmounting revokes every lease the mount issued first, synchronously as
 * Vault does: if one cannot be revoked the mount stays, so nothing it
 * created is forgotten.
 */
static int disable_mount(enum mount_class klass, const char *path,
                         struct errbuf *err)
{
    char prefix[1024];
    size_t n;

    snprintf(prefix, sizeof(prefix), "%s%s", klass == MOUNT_AUTH ? "auth/" : "",
             path);
    n = strlen(prefix);
    while (n > 0 && prefix[n - 1] == '/')
        prefix[--n] = '\0';
    if (n > 0 && strcmp(prefix, "sys") != 0 &&
        lease_revoke_prefix(prefix, false, err) != 0)
        return COFFER_EIO;
    return router_disable(klass, path, err);
}

static void handle_mount_path(enum mount_class klass, struct request *req,
                              const char *rest_in, struct response *resp)
{
    char *rest = xstrdup(rest_in);
    bool tune = split_tune(rest);
    struct errbuf err;
    int rc = 0;

    if (klass == MOUNT_AUTH && req->op != OP_READ &&
        !policy_has_sudo(req->token, req->path)) {
        response_multierror(resp, 403, "permission denied");
        goto out;
    }
    switch (req->op) {
    case OP_READ:
        if (tune)
            tune_read(klass, rest, resp);
        else
            mount_read(klass, rest, resp);
        break;
    case OP_CREATE:
    case OP_UPDATE:
        if (tune)
            rc = router_tune(klass, rest, req->data, &err);
        else
            rc = router_enable(klass, rest, req->data, &err);
        break;
    case OP_DELETE:
        if (tune)
            response_multierror(resp, 405, "unsupported operation");
        else
            rc = disable_mount(klass, rest, &err);
        break;
    default:
        response_multierror(resp, 405, "unsupported operation");
    }
    if (rc != 0)
        reply_errbuf(resp, &err);
out:
    free(rest);
}

static void handle_mount_list(enum mount_class klass, struct request *req,
                              struct response *resp)
{
    if (req->op != OP_READ && req->op != OP_LIST) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    resp->data = router_list_json(klass);
    resp->inject_top = true;
}

/*
 * sys/internal/ui/mounts/<path>: which mount serves a path, for the Vault
 * CLI's kv commands. Only shown to tokens that can reach that mount.
 */
static void handle_ui_mount(struct request *req, const char *rest,
                            struct response *resp)
{
    const struct mount *m = router_match(rest);
    const struct token *t = req->token;
    bool visible = false;

    if (m != NULL && t != NULL) {
        visible = t->is_root || policy_allows(t, rest, OP_READ) ||
                  policy_allows(t, m->path, OP_LIST);
    }
    if (!visible) {
        response_error(resp, 403, "preflight capability check returned 403, "
                                  "please ensure client's policies grant "
                                  "access to path \"%s/\"", rest);
        router_mount_put(m);
        return;
    }
    resp->data = router_mount_json(m);
    cJSON_AddStringToObject(resp->data, "path", m->path);
    router_mount_put(m);
}

/* The mounts of one class that t may use something under (Vault's
 * hasMountAccess); no token sees none. */
static cJSON *visible_mounts(const struct token *t, enum mount_class klass)
{
    cJSON *all = router_list_json(klass), *m = all != NULL ? all->child
                                                            : NULL;

    while (m != NULL) {
        cJSON *next = m->next;
        char path[512];
        int n = snprintf(path, sizeof(path), "%s%s",
                         klass == MOUNT_AUTH ? "auth/" : "", m->string);

        if (t == NULL || n < 0 || (size_t)n >= sizeof(path) ||
            !policy_mount_visible(t, path))
            cJSON_Delete(cJSON_DetachItemViaPointer(all, m));
        m = next;
    }
    return all;
}

static void handle_ui_mounts_list(struct request *req, struct response *resp)
{
    resp->data = cJSON_CreateObject();
    cJSON_AddItemToObject(resp->data, "auth",
                          visible_mounts(req->token, MOUNT_AUTH));
    cJSON_AddItemToObject(resp->data, "secret",
                          visible_mounts(req->token, MOUNT_SECRET));
}

/* ============================================================== keyring == */

/* sys/rotate (PUT, sudo) and sys/key-status (GET). */
static void handle_rotate(struct request *req, struct response *resp)
{
    struct errbuf err;

    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    if (!policy_has_sudo(req->token, req->path)) {
        response_multierror(resp, 403, "permission denied");
        return;
    }
    if (barrier_rotate(lifecycle_barrier(), &err) != 0)
        response_error(resp, 500, "%s", err.msg);
}

static void handle_key_status(struct request *req, struct response *resp)
{
    struct barrier_key_status ks;
    char when[64];

    if (req->op != OP_READ) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    if (barrier_key_status(lifecycle_barrier(), &ks) != 0) {
        response_error(resp, 500, "reading the key status failed");
        return;
    }
    time_format_rfc3339((struct timespec){ks.install_time, 0}, when,
                        sizeof(when));
    resp->data = cJSON_CreateObject();
    cJSON_AddNumberToObject(resp->data, "term", ks.term);
    cJSON_AddStringToObject(resp->data, "install_time", when);
    cJSON_AddNumberToObject(resp->data, "encryptions",
                            (double)ks.encryptions);
    resp->inject_top = true;
}

/* ============================================================= metrics == */

/*
 * sys/metrics: go-metrics' JSON shape, or Prometheus text with
 * ?format=prometheus (metrics.c). Failing revocations show here as well
 * as in the log and in sys/leases?type=irrevocable.
 */
static void handle_metrics(struct request *req, struct response *resp)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(req->data, "format");
    bool prom = cJSON_IsString(fmt) &&
                strcmp(fmt->valuestring, "prometheus") == 0;

    if (req->op != OP_READ) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    metrics_render(prom, &resp->raw, &resp->text);
}

/* ============================================================= loggers == */

/* The loggers sys/loggers lists: the module tags log lines carry. */
static const char *const logger_names[] = {
    "audit", "core", "database", "http", "lease", "lua", "policy", "seal",
    "storage", "token",
};

/*
 * sys/loggers (Vault's API; sudo): GET lists every logger's level, POST
 * {"level": ...} sets it for all, DELETE restores the configured level.
 * Coffer has one level for every module, so sys/loggers/<name> is
 * refused rather than silently changing them all.
 */
static void handle_loggers(struct request *req, const char *rel,
                           struct response *resp)
{
    const char *level = json_get_str(req->data, "level", "");
    int lv;

    if (!policy_has_sudo(req->token, req->path)) {
        response_multierror(resp, 403, "permission denied");
        return;
    }
    if (strcmp(rel, "loggers") != 0) {
        response_error(resp, 400, "setting the level of one logger is not "
                                  "supported; use sys/loggers");
        return;
    }
    switch (req->op) {
    case OP_READ:
        resp->data = cJSON_CreateObject();
        for (size_t i = 0; i < ARRAY_LEN(logger_names); i++)
            cJSON_AddStringToObject(resp->data, logger_names[i],
                                    log_level_name(log_current_level));
        break;
    case OP_CREATE:
    case OP_UPDATE:
        if (level[0] == '\0') {
            response_error(resp, 400, "level is empty");
            return;
        }
        lv = log_level_parse(level);
        if (lv < 0) {
            response_error(resp, 400, "invalid level provided: %s", level);
            return;
        }
        log_set_level((enum log_level)lv);
        log_info("core: log level set to %s", log_level_name(lv));
        break;
    case OP_DELETE:
        log_set_level(log_configured_level());
        log_info("core: log level restored to %s",
                 log_level_name(log_configured_level()));
        break;
    default:
        response_multierror(resp, 405, "unsupported operation");
    }
}

/* ============================================================ dispatch == */

void sys_handle(struct request *req, struct response *resp)
{
    const char *rel = req->path + strlen("sys/");

    if (strcmp(rel, "mounts") == 0 || strcmp(rel, "mounts/") == 0)
        handle_mount_list(MOUNT_SECRET, req, resp);
    else if (str_has_prefix(rel, "mounts/"))
        handle_mount_path(MOUNT_SECRET, req, rel + strlen("mounts/"), resp);
    else if (strcmp(rel, "auth") == 0 || strcmp(rel, "auth/") == 0)
        handle_mount_list(MOUNT_AUTH, req, resp);
    else if (str_has_prefix(rel, "auth/"))
        handle_mount_path(MOUNT_AUTH, req, rel + strlen("auth/"), resp);
    else if (strcmp(rel, "rotate") == 0)
        handle_rotate(req, resp);
    else if (strcmp(rel, "key-status") == 0)
        handle_key_status(req, resp);
    else if (strcmp(rel, "metrics") == 0)
        handle_metrics(req, resp);
    else if (strcmp(rel, "loggers") == 0 || str_has_prefix(rel, "loggers/"))
        handle_loggers(req, rel, resp);
    else if (strcmp(rel, "wrapping/wrap") == 0)
        wrapping_handle_wrap(req, resp);
    else if (sys_leases_handles(rel))
        sys_leases_handle(req, rel, resp);
    else if (sys_policy_handles(rel))
        sys_policy_handle(req, rel, resp);
    else if (sys_password_policy_handles(rel))
        sys_password_policy_handle(req, rel, resp);
    else if (sys_plugins_handles(rel))
        sys_plugins_handle(req, rel, resp);
    else if (sys_audit_handles(rel))
        sys_audit_handle(req, rel, resp);
    else if (sys_ha_handles(rel))
        sys_ha_handle(req, rel, resp);
    else if (strcmp(rel, "internal/ui/mounts") == 0)
        handle_ui_mounts_list(req, resp);
    else if (str_has_prefix(rel, "internal/ui/mounts/"))
        handle_ui_mount(req, rel + strlen("internal/ui/mounts/"), resp);
    else
        response_multierror(resp, 404, "unsupported path");
}
