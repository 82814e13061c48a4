/*
 * sys_plugins.c - reloading the Lua code: the sys/plugins/reload/backend
 * endpoint and the reload both it and SIGHUP run.
 *
 * Owns the order of a reload and its refusals; the snapshot and the
 * per-thread states are luavm.c's, the Lua policies' table policy.c's.
 *
 *   luavm_code_load      read every script, bootstrap it in a scratch
 *                        state (errors say file:line)
 *   luavm_code_stage     from here new mounts need a type both codes have
 *   check_mounts         every Lua mount's type is still registered
 *   check_leases         an engine that drops a secret type has no live
 *                        lease of that type (its revoke would be gone)
 *   policy_reload_lua    compile the new Lua policies, then swap them
 *   luavm_code_publish   new calls build their state from the new code
 *
 * Until the last step, the running code is untouched; the policy swap
 * comes before the code swap because it is the one that can still fail.
 * Coffer's Lua code is one consistent snapshot (modules are shared), so
 * every reload reloads everything: `plugin` and `mounts` are checked
 * as Vault checks them and only select what the answer reports.
 */
#include "sys_plugins.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barrier.h"
#include "json.h"
#include "lifecycle.h"
#include "log.h"
#include "luavm.h"
#include "mount.h"
#include "policy.h"
#include "router.h"
#include "storage.h"
#include "util.h"

/* Where lease records live (lease.h: sys/expire/id/<lease id>). */
#define LEASE_ID_PREFIX "sys/expire/id/"

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

/* ============================================================ checks == */

/* Refuses code that no longer registers the type of a Lua mount. */
static int check_mounts(const struct luavm_code *c, struct errbuf *err)
{
    size_t n = 0, i;
    const struct mount **all = router_snapshot(&n);
    int rc = 0;

    for (i = 0; i < n; i++) {
        const struct mount *m = all[i];
        bool auth = m->klass == MOUNT_AUTH;
        if (rc == 0 && m->impl == MOUNT_IMPL_LUA &&
            !luavm_code_has_type(c, auth, m->type)) {
            errbuf_set(err, "mount %s uses %s type \"%s\", which the new "
                            "code does not register",
                       m->path, auth ? "auth method" : "secret engine",
                       m->type);
            rc = COFFER_EINVAL;
        }
        router_mount_put(m);
    }
    free(all);
    return rc;
}

struct lease_probe {
    const char *secret_type;
    const char *mount_uuid;
    char *found; /* the first matching lease id */
};

/* storage_scan callback: stops at the first lease of the probed type. */
static int probe_one(void *arg, const char *key, const void *value,
                     size_t len)
{
    struct lease_probe *p = arg;
    cJSON *rec = json_parse(value, len, 64, false, NULL);
    int hit;

    hit = rec != NULL &&
          strcmp(json_get_str(rec, "secret_type", ""), p->secret_type) == 0 &&
          strcmp(json_get_str(rec, "mount_uuid", p->mount_uuid),
                 p->mount_uuid) == 0;
    cJSON_Delete(rec);
    if (hit)
        p->found = xstrdup(key + strlen(LEASE_ID_PREFIX));
    return hit;
}

/*
 * For one lost "<engine>\037<type>": the first live lease of that type
 * on a mount of that engine, as a new string, or NULL.
 */
static char *live_lease_of(const char *lost, const struct mount **all,
                           size_t n)
{
    struct storage *s = barrier_storage(lifecycle_barrier());
    const char *sep = strchr(lost, '\037');
    size_t elen = (size_t)(sep - lost);
    struct lease_probe p = {.secret_type = sep + 1};
    char prefix[1200];

    for (size_t i = 0; i < n && p.found == NULL; i++) {
        if (all[i]->impl != MOUNT_IMPL_LUA || all[i]->klass != MOUNT_SECRET ||
            strlen(all[i]->type) != elen ||
            strncmp(all[i]->type, lost, elen) != 0)
            continue;
        snprintf(prefix, sizeof(prefix), LEASE_ID_PREFIX "%s", all[i]->path);
        p.mount_uuid = all[i]->uuid;
        (void)storage_scan(s, prefix, probe_one, &p);
    }
    return p.found;
}

/*
 * Refuses code that drops a secret type (e:secret) an engine declared
 * while a lease of that type is live: its revocation would have no
 * function to run. Scans storage only for the types that disappear.
 */
static int check_leases(const struct luavm_code *old,
                        const struct luavm_code *c, struct errbuf *err)
{
    struct strvec lost;
    const struct mount **all = NULL;
    size_t n = 0, i;
    char *id = NULL;
    int rc = 0;

    strvec_init(&lost);
    luavm_code_lost_secrets(old, c, &lost);
    if (lost.n > 0)
        all = router_snapshot(&n);
    for (i = 0; i < lost.n && id == NULL; i++)
        id = live_lease_of(lost.v[i], all, n);
    if (id != NULL) {
        const char *t = strchr(lost.v[i - 1], '\037');
        errbuf_set(err, "secret type \"%s\" of engine \"%.*s\" is gone from "
                        "the new code, but lease %s still needs it",
                   t + 1, (int)(t - lost.v[i - 1]), lost.v[i - 1], id);
        rc = COFFER_EINVAL;
    }
    for (i = 0; i < n; i++)
        router_mount_put(all[i]);
    free(all);
    free(id);
    strvec_release(&lost);
    return rc;
}

/* ============================================================ reload == */

int sys_plugins_reload(uint64_t *gen, struct errbuf *err)
{
    struct luavm_code *c, *old;
    double started = time_mono();
    int rc;

    errbuf_clear(err);
    *gen = 0;
    pthread_mutex_lock(&reload_lock);
    c = luavm_code_load(err);
    if (c == NULL) {
        pthread_mutex_unlock(&reload_lock);
        log_error("plugins: reload refused, the running code stays: %s",
                  err->msg);
        return COFFER_EINVAL;
    }
    old = luavm_code_current();
    luavm_code_stage(c);
    rc = check_mounts(c, err);
    if (rc == 0)
        rc = check_leases(old, c, err);
    if (rc == 0)
        rc = policy_reload_lua(luavm_code_policies(c), err);
    if (rc == 0) {
        size_t files = luavm_code_files(c);
        *gen = luavm_code_publish(c);
        c = NULL;
        log_info("plugins: reloaded %zu scripts as generation %llu in "
                 "%.1f ms", files, (unsigned long long)*gen,
                 (time_mono() - started) * 1000.0);
    } else {
        luavm_code_stage(NULL);
        log_error("plugins: reload refused, the running code stays: %s",
                  err->msg);
    }
    luavm_code_put(c);
    luavm_code_put(old);
    pthread_mutex_unlock(&reload_lock);
    return rc;
}

/* ========================================================== endpoint == */

/* A mount path as Vault normalises it: no leading '/', one trailing. */
static char *mount_key(const char *s)
{
    size_t n;
    char *out;

    while (*s == '/')
        s++;
    n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    out = xmalloc(n + 2);
    memcpy(out, s, n);
    out[n] = '/';
    out[n + 1] = '\0';
    return out;
}

/*
 * mounts: a list of strings, or one comma-separated string (Vault's
 * CommaStringSlice). Appends the normalised paths to out; false (with
 * words in err) for anything else.
 */
static bool parse_mounts(const cJSON *v, struct strvec *out,
                         struct errbuf *err)
{
    const cJSON *it;

    if (v == NULL || cJSON_IsNull(v))
        return true;
    if (cJSON_IsString(v)) {
        char *copy = xstrdup(v->valuestring), *save = NULL, *tok;
        for (tok = strtok_r(copy, ",", &save); tok != NULL;
             tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            if (*tok != '\0')
                strvec_push_owned(out, mount_key(tok));
        }
        free(copy);
        return true;
    }
    if (!cJSON_IsArray(v)) {
        errbuf_set(err, "mounts must be a list of mount paths");
        return false;
    }
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsString(it)) {
            errbuf_set(err, "mounts must be a list of mount paths");
            return false;
        }
        if (it->valuestring[0] != '\0')
            strvec_push_owned(out, mount_key(it->valuestring));
    }
    return true;
}

/* Every named mount must exist, as Vault requires. */
static bool mounts_exist(const struct strvec *mounts, struct errbuf *err)
{
    for (size_t i = 0; i < mounts->n; i++) {
        const struct mount *m = router_match(mounts->v[i]);
        bool ok = m != NULL && strcmp(m->path, mounts->v[i]) == 0;
        router_mount_put(m);
        if (!ok) {
            errbuf_set(err, "cannot fetch mount entry on \"%s\"",
                       mounts->v[i]);
            return false;
        }
    }
    return true;
}

/* Whether the published code registers an engine or auth method name. */
static bool registered(const char *name)
{
    struct luavm_code *c = luavm_code_current();
    bool ok = luavm_code_has_type(c, false, name) ||
              luavm_code_has_type(c, true, name);

    luavm_code_put(c);
    return ok;
}

/*
 * PUT/POST sys/plugins/reload/backend {"plugin": name} or {"mounts":
 * [...]} (exactly one), optional "scope": "" or "global". Vault answers
 * 200 {"data": {"reload_id": <request id>}}, 202 for a global scope (a
 * single node has nothing to fan out to, so it is reloaded here too).
 * A refused reload is a 400 with the reason. A `plugin` that names no
 * registered type is not an error (as in Vault) but gets a warning.
 */
static void handle_reload(struct request *req, struct response *resp)
{
    const cJSON *plugin = cJSON_GetObjectItemCaseSensitive(req->data,
                                                           "plugin");
    const char *scope = json_get_str(req->data, "scope", "");
    struct strvec mounts;
    struct errbuf err;
    uint64_t gen;
    bool named;

    strvec_init(&mounts);
    if (plugin != NULL && !cJSON_IsNull(plugin) && !cJSON_IsString(plugin)) {
        response_error(resp, 400, "plugin must be a string");
        goto out;
    }
    named = cJSON_IsString(plugin) && plugin->valuestring[0] != '\0';
    if (!parse_mounts(cJSON_GetObjectItemCaseSensitive(req->data, "mounts"),
                      &mounts, &err)) {
        response_error(resp, 400, "%s", err.msg);
        goto out;
    }
    if (scope[0] != '\0' && strcmp(scope, "global") != 0) {
        response_error(resp, 400, "reload scope must be omitted or 'global'");
        goto out;
    }
    if (named && mounts.n > 0) {
        response_error(resp, 400, "plugin and mounts cannot be set at the "
                                  "same time");
        goto out;
    }
    if (!named && mounts.n == 0) {
        response_error(resp, 400, "plugin or mounts must be provided");
        goto out;
    }
    if (!mounts_exist(&mounts, &err) || sys_plugins_reload(&gen, &err) != 0) {
        response_error(resp, 400, "%s", err.msg);
        goto out;
    }
    if (named && !registered(plugin->valuestring))
        response_warn(resp, "no plugin named \"%s\" is registered; the "
                            "Lua code was reloaded", plugin->valuestring);
    resp->data = cJSON_CreateObject();
    cJSON_AddStringToObject(resp->data, "reload_id", req->id);
    if (strcmp(scope, "global") == 0)
        resp->status = 202;
out:
    strvec_release(&mounts);
}

bool sys_plugins_handles(const char *rel)
{
    return strcmp(rel, "plugins/reload/backend") == 0;
}

void sys_plugins_handle(struct request *req, const char *rel,
                        struct response *resp)
{
    (void)rel;
    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    if (!policy_has_sudo(req->token, req->path)) {
        response_multierror(resp, 403, "permission denied");
        return;
    }
    handle_reload(req, resp);
}
