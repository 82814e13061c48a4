/*
 * sys_seal.c - the endpoints Vault serves outside its router: health,
 * seal-status, leader, init, unseal and seal.
 *
 * They answer bare JSON (no envelope) and work while sealed. init, unseal
 * and seal decide when the server's state changes; lifecycle.c makes the
 * change, taking the state lock, which is why core.c runs these
 * endpoints outside it.
 */
#include "sys_seal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "barrier.h"
#include "crypto.h"
#include "fields.h"
#include "lifecycle.h"
#include "log.h"
#include "seal.h"
#include "sys_ha.h"
#include "sys_rekey.h"
#include "token.h"
#include "util.h"

/*
 * Serialises init with the auto-unseal attempts: the init endpoint opens,
 * seals and reopens the barrier, and an attempt in between would start
 * the subsystems under it.
 */
static pthread_mutex_t auto_mu = PTHREAD_MUTEX_INITIALIZER;
/* Serialises seal migrations (sys/unseal with migrate): each holds the
 * HA lock for its writes, one hold per node. Taken before auto_mu. */
static pthread_mutex_t migrate_mu = PTHREAD_MUTEX_INITIALIZER;
/*
 * Set (under auto_mu) once this process has been unsealed: from then on
 * the start-up poller stops, so a node sealed by sys/seal stays sealed.
 */
static bool unsealed_once;
static const char *storage_type = "inmem";
void sys_set_storage_type(const char *name)
{
    storage_type = name;
}

/*
 * The cluster's id and name (sys/health, sys/seal-status), derived from
 * the root key: the same on every node of an HA cluster and after every
 * restart, as Vault's stored ones are. Empty while sealed.
 */
static void add_cluster_identity(cJSON *o)
{
    uint8_t k[32];
    char id[40], name[64];

    if (barrier_derive_key(lifecycle_barrier(), "coffer/cluster-id", k) != 0)
        return;
    k[6] = (uint8_t)((k[6] & 0x0f) | 0x40); /* shaped as a v4 uuid */
    k[8] = (uint8_t)((k[8] & 0x3f) | 0x80);
    snprintf(id, sizeof(id),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9],
             k[10], k[11], k[12], k[13], k[14], k[15]);
    snprintf(name, sizeof(name), "coffer-cluster-%02x%02x%02x%02x", k[16],
             k[17], k[18], k[19]);
    crypto_wipe(k, sizeof(k));
    cJSON_AddStringToObject(o, "cluster_name", name);
    cJSON_AddStringToObject(o, "cluster_id", id);
}


/* ====================================================== status family == */

/* Unsealed: active, or (HA) standing by with the barrier open. */
static bool node_unsealed(void)
{
    return lifecycle_is_active() || lifecycle_is_standby();
}

static void add_version(cJSON *o)
{
    cJSON_AddStringToObject(o, "version", COFFER_VAULT_COMPAT_VERSION);
}

/* Reads an integer status code parameter, Vault-style. */
static int code_param(const cJSON *data, const char *name, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, name);
    int64_t n;

    *out = def;
    if (v == NULL)
        return 0;
    if (cJSON_IsNumber(v)) {
        *out = (int)v->valueint;
        return 0;
    }
    if (!cJSON_IsString(v) || int64_parse(v->valuestring, &n) != 0 ||
        n < 100 || n > 999)
        return -1;
    *out = (int)n;
    return 0;
}

static int bool_param(const cJSON *data, const char *name, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, name);

    *out = false;
    if (v == NULL)
        return 0;
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    if (cJSON_IsString(v) && v->valuestring[0] == '\0') {
        *out = true;
        return 0;
    }
    return cJSON_IsString(v) ? (bool_parse(v->valuestring, out) == 0 ? 0 : -1)
                             : -1;
}

static void handle_health(struct request *req, struct response *resp)
{
    static const char *const codes[] = {
        "activecode", "standbycode", "drsecondarycode",
        "performancestandbycode", "sealedcode", "uninitcode",
    };
    int active_code, sealed_code, uninit_code, standby_code, ignored;
    struct seal_status st;
    bool flag, active, standby, standby_ok = false;
    cJSON *o;

    if (req->op != OP_READ && req->op != OP_HEAD) {
        response_empty_error(resp, 405);
        return;
    }
    if (code_param(req->data, "activecode", 200, &active_code) != 0)
        goto bad;
    for (size_t i = 1; i < ARRAY_LEN(codes); i++) {
        if (code_param(req->data, codes[i], 0, &ignored) != 0)
            goto bad;
    }
    if (bool_param(req->data, "standbyok", &flag) != 0 ||
        bool_param(req->data, "perfstandbyok", &flag) != 0)
        goto bad;
    seal_get_status(&st);
    active = lifecycle_is_active();
    standby = lifecycle_is_standby();
    if (code_param(req->data, "sealedcode", 503, &sealed_code) != 0 ||
        code_param(req->data, "uninitcode", 501, &uninit_code) != 0 ||
        code_param(req->data, "standbycode", 429, &standby_code) != 0 ||
        bool_param(req->data, "standbyok", &standby_ok) != 0)
        goto bad;
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "initialized", st.initialized);
    cJSON_AddBoolToObject(o, "sealed", !active && !standby);
    cJSON_AddBoolToObject(o, "standby", standby);
    cJSON_AddBoolToObject(o, "performance_standby", false);
    cJSON_AddStringToObject(o, "replication_performance_mode", "disabled");
    cJSON_AddStringToObject(o, "replication_dr_mode", "disabled");
    cJSON_AddNumberToObject(o, "server_time_utc", (double)time_now().tv_sec);
    add_version(o);
    if (active || standby)
        add_cluster_identity(o);
    resp->raw = o;
    if (!st.initialized)
        resp->status = uninit_code;
    else if (active)
        resp->status = active_code;
    else if (standby)
        resp->status = standby_ok ? active_code : standby_code;
    else
        resp->status = sealed_code;
    resp->no_body = req->op == OP_HEAD;
    return;
bad:
    response_empty_error(resp, 400);
}

/* The seal-status document (also the reply of every sys/unseal call). */
static cJSON *seal_status_json(void)
{
    struct seal_status st;
    bool active = node_unsealed();
    cJSON *o = cJSON_CreateObject();

    seal_get_status(&st);
    cJSON_AddStringToObject(o, "type", st.type);
    cJSON_AddBoolToObject(o, "initialized", st.initialized);
    cJSON_AddBoolToObject(o, "sealed", !active);
    cJSON_AddNumberToObject(o, "t", st.threshold);
    cJSON_AddNumberToObject(o, "n", st.shares);
    cJSON_AddNumberToObject(o, "progress", active ? 0 : st.progress);
    cJSON_AddStringToObject(o, "nonce", active ? "" : st.nonce);
    add_version(o);
    cJSON_AddStringToObject(o, "build_date", "");
    cJSON_AddBoolToObject(o, "migration", !active && st.migration);
    if (active)
        add_cluster_identity(o);
    cJSON_AddBoolToObject(o, "recovery_seal", st.recovery_seal);
    cJSON_AddStringToObject(o, "storage_type", storage_type);
    return o;
}

static void handle_seal_status(struct request *req, struct response *resp)
{
    if (req->op != OP_READ) {
        response_empty_error(resp, 405);
        return;
    }
    resp->raw = seal_status_json();
}

static void handle_leader(struct request *req, struct response *resp)
{
    if (req->op != OP_READ) {
        response_empty_error(resp, 405);
        return;
    }
    resp->raw = sys_ha_leader_json();
}


/* ================================================================ init == */

/*
 * Vault's validateInitParameters: the barrier's parameters with an auto
 * seal, or the recovery ones with Shamir, are refused by name.
 */
static int check_applicable(const cJSON *data, bool auto_seal,
                            struct response *resp)
{
    static const char *const barrier_ints[] = {"secret_shares",
                                               "secret_threshold"};
    static const char *const recovery_ints[] = {"recovery_shares",
                                                "recovery_threshold"};
    const char *const *ints = auto_seal ? barrier_ints : recovery_ints;
    const char *keys = auto_seal ? "pgp_keys" : "recovery_pgp_keys";
    char names[128] = "";
    int64_t v;
    bool given;

    for (size_t i = 0; i < 2; i++) {
        v = 0;
        if (field_int(data, ints[i], &v, &given, resp) != 0)
            return -1;
        if (v != 0)
            snprintf(names + strlen(names), sizeof(names) - strlen(names),
                     "%s%s", names[0] ? "," : "", ints[i]);
    }
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(data, keys)) > 0)
        snprintf(names + strlen(names), sizeof(names) - strlen(names),
                 "%s%s", names[0] ? "," : "", keys);
    if (names[0] == '\0')
        return 0;
    response_error(resp, 400, "parameters %s not applicable to seal type %s",
                   names, seal_type_name());
    return -1;
}

/* Reads a pair of share counts; -1 with the response set on a bad one. */
static int share_params(const cJSON *data, const char *shares_name,
                        const char *threshold_name, int64_t *shares,
                        int64_t *threshold, const char *what,
                        struct response *resp)
{
    bool given;

    *shares = *threshold = 0;
    if (field_int(data, shares_name, shares, &given, resp) != 0 ||
        field_int(data, threshold_name, threshold, &given, resp) != 0)
        return -1;
    if (*shares < 0 || *shares > 255 || *threshold < 0 || *threshold > 255) {
        response_error(resp, 400, "invalid %s configuration: shares and "
                                  "threshold must be between 1 and 255",
                       what);
        return -1;
    }
    return 0;
}

/* Auto seal: unseals with the seal's key and starts. auto_mu held. */
static int auto_unseal_locked(struct errbuf *err)
{
    int rc = seal_auto_unseal(err);

    if (rc == 0 && !node_unsealed())
        rc = lifecycle_activate(err);
    if (rc == 0)
        unsealed_once = true;
    return rc;
}

static void init_reply(struct response *resp, const uint8_t *keys, int n,
                       const char *root)
{
    const char *names[2] = {"keys", "keys_base64"};
    cJSON *empty;

    resp->raw = cJSON_CreateObject();
    if (seal_is_auto()) {
        for (size_t i = 0; i < 2; i++) {
            empty = cJSON_CreateArray();
            cJSON_AddItemToObject(resp->raw, names[i], empty);
        }
        names[0] = "recovery_keys";
        names[1] = "recovery_keys_base64";
    }
    cJSON_AddItemToObject(resp->raw, names[0], sys_rekey_shares_json(keys, n, false));
    cJSON_AddItemToObject(resp->raw, names[1], sys_rekey_shares_json(keys, n, true));
    cJSON_AddStringToObject(resp->raw, "root_token", root);
}

static void init_vault(struct request *req, struct response *resp)
{
    bool auto_seal = seal_is_auto();
    int64_t shares = 0, threshold = 0;
    uint8_t *keys = NULL;
    char *root = NULL;
    struct errbuf err;
    int rc;

    errbuf_clear(&err);
    if (check_applicable(req->data, auto_seal, resp) != 0)
        return;
    if (!auto_seal &&
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(req->data,
                                                            "pgp_keys")) > 0) {
        response_error(resp, 400, "pgp_keys are not supported");
        return;
    }
    if (auto_seal &&
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
            req->data, "recovery_pgp_keys")) > 0) {
        response_error(resp, 400, "recovery_pgp_keys are not supported");
        return;
    }
    if (share_params(req->data, auto_seal ? "recovery_shares" : "secret_shares",
                     auto_seal ? "recovery_threshold" : "secret_threshold",
                     &shares, &threshold, auto_seal ? "recovery" : "seal",
                     resp) != 0)
        return;
    pthread_mutex_lock(&auto_mu);
    rc = lifecycle_init_begin(&err);
    if (rc != 0) {
        response_error(resp, 503, "%s", err.msg);
        goto out;
    }
    rc = auto_seal ? seal_init_recovery((int)shares, (int)threshold, &keys,
                                        &err)
                   : seal_init((int)shares, (int)threshold, &keys, &err);
    if (rc != 0) {
        response_error(resp, 400, "%s", err.msg);
        goto out;
    }
    /* The barrier is open now: the first mounts and the root token go in,
     * then it is sealed again, as Vault leaves a freshly initialised
     * server. */
    if (lifecycle_init_root_token(&root, &err) != 0) {
        response_error(resp, 500, "%s", err.msg);
        goto out;
    }
    /* An auto seal then unseals at once (Vault). The keys are answered
     * even if that fails: they cannot be had again. */
    lifecycle_init_end();
    if (auto_seal && auto_unseal_locked(&err) != 0)
        log_error("seal: initialized, but auto-unseal failed: %s", err.msg);
    init_reply(resp, keys, (int)shares, root);
out:
    lifecycle_init_end();
    pthread_mutex_unlock(&auto_mu);
    secure_free(keys, (size_t)shares * SEAL_SHARE_LEN);
    secure_free_str(root);
}

static void handle_init(struct request *req, struct response *resp)
{
    struct seal_status st;

    if (req->op == OP_READ) {
        seal_get_status(&st);
        resp->raw = cJSON_CreateObject();
        cJSON_AddBoolToObject(resp->raw, "initialized", st.initialized);
        return;
    }
    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_empty_error(resp, 405);
        return;
    }
    init_vault(req, resp);
}

/* ============================================================== unseal == */

static int unseal_with(const char *key, struct response *resp)
{
    uint8_t share[SEAL_DECODED_MAX];
    size_t len = 0;
    bool unsealed = false;
    struct errbuf err;
    int rc;

    errbuf_clear(&err);
    rc = seal_decode_share(key, share, &len, &err);
    if (rc == 0)
        rc = seal_submit_share(share, len, &unsealed, &err);
    crypto_wipe(share, sizeof(share));
    if (rc == 0 && unsealed) {
        pthread_mutex_lock(&auto_mu);
        unsealed_once = true;
        pthread_mutex_unlock(&auto_mu);
        rc = lifecycle_activate(&err);
        if (rc != 0) {
            log_error("core: unsealed, but starting up failed: %s", err.msg);
            response_error(resp, 500, "%s", err.msg);
            return rc;
        }
    }
    if (rc != 0)
        response_error(resp, 400, "%s", err.msg);
    return rc;
}

static void handle_unseal(struct request *req, struct response *resp)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(req->data, "key");
    bool reset = false, migrate = false, migrating, given;
    struct seal_status st;
    int rc;

    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_empty_error(resp, 405);
        return;
    }
    if (field_bool(req->data, "reset", &reset, &given, resp) != 0 ||
        field_bool(req->data, "migrate", &migrate, &given, resp) != 0)
        return;
    seal_get_status(&st);
    if (!st.initialized) {
        response_error(resp, 400, "Vault is not initialized");
        return;
    }
    if (reset) {
        if (node_unsealed()) {
            response_error(resp, 400, "vault is unsealed");
            return;
        }
        seal_reset_progress();
        resp->raw = seal_status_json();
        return;
    }
    /* Vault's checks, in its order: the flag must match the mode. */
    migrating = st.migration && !node_unsealed();
    if (!migrate && migrating) {
        response_error(resp, 400, "'migrate' parameter must be set true in "
                                  "JSON body when in seal migration mode");
        return;
    }
    if (migrate && !migrating) {
        response_error(resp, 400, "'migrate' parameter set true in JSON body "
                                  "when not in seal migration mode");
        return;
    }
    if (!cJSON_IsString(key) || key->valuestring[0] == '\0') {
        response_error(resp, 400, "'key' must be specified in request body "
                                  "as JSON, or 'reset' set to true");
        return;
    }
    /* A migration rewrites the stored seal: on HA storage only a holder
     * of the lock may write, as for sys/init. One migration at a time:
     * the hold is one per node. */
    if (migrating) {
        struct errbuf err;

        pthread_mutex_lock(&migrate_mu);
        if (lifecycle_init_begin(&err) != 0) {
            pthread_mutex_unlock(&migrate_mu);
            response_error(resp, 503, "%s", err.msg);
            return;
        }
    }
    rc = !node_unsealed() ? unseal_with(key->valuestring, resp) : 0;
    if (migrating) {
        lifecycle_init_end();
        pthread_mutex_unlock(&migrate_mu);
    }
    if (rc != 0)
        return;
    resp->raw = seal_status_json();
}

/* ================================================================ seal == */

static void handle_seal(struct request *req, struct response *resp)
{
    struct token *t;

    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_empty_error(resp, 405);
        return;
    }
    if (lifecycle_is_standby()) {
        /* As Vault: only the active node can be sealed. */
        response_error(resp, 400, "this node is an HA standby: seal the "
                                  "active node, or stop this one");
        return;
    }
    if (!lifecycle_is_active()) {
        response_error(resp, 503, "Vault is sealed");
        return;
    }
    t = lifecycle_lookup_token(req);
    if (t == NULL || !t->is_root) {
        token_free(t);
        response_error(resp, 403, "permission denied");
        return;
    }
    token_free(t);
    lifecycle_seal();
    sys_rekey_reset(); /* attempts under way end with the seal (Vault) */
    log_info("core: sealed by request %s", req->id);
    resp->status = 204;
    resp->no_body = true;
}

/* ========================================================= auto-unseal == */

#define AUTO_RETRY_SECONDS 2

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running;
    bool stop;
} poller = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/*
 * One attempt. last holds the reason the previous attempt failed, so a
 * reason is logged once, not every 2 s.
 */
static int auto_attempt(struct errbuf *last)
{
    struct errbuf err;
    int rc;

    errbuf_clear(&err);
    pthread_mutex_lock(&auto_mu);
    rc = unsealed_once ? 0 : auto_unseal_locked(&err);
    pthread_mutex_unlock(&auto_mu);
    if (rc != 0 && strcmp(err.msg, last->msg) != 0) {
        if (rc == COFFER_ENOTFOUND)
            log_info("seal: not initialized yet; waiting for sys/init to "
                     "unseal with the %s seal", seal_type_name());
        else
            log_error("seal: auto-unseal failed (sealed; retrying every "
                      "%d s): %s", AUTO_RETRY_SECONDS, err.msg);
        *last = err;
    }
    return rc;
}

/* Waits up to the retry interval; false once asked to stop. */
static bool poller_wait(void)
{
    struct timespec until;
    bool go_on;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += AUTO_RETRY_SECONDS;
    pthread_mutex_lock(&poller.mu);
    while (!poller.stop &&
           pthread_cond_timedwait(&poller.cv, &poller.mu, &until) != ETIMEDOUT)
        ;
    go_on = !poller.stop;
    pthread_mutex_unlock(&poller.mu);
    return go_on;
}

static void *poller_main(void *arg)
{
    struct errbuf last;

    (void)arg;
    errbuf_clear(&last);
    while (poller_wait()) {
        if (auto_attempt(&last) == 0)
            break;
    }
    return NULL;
}

void sys_seal_auto_unseal_start(void)
{
    struct errbuf last;

    if (!seal_is_auto())
        return;
    errbuf_clear(&last);
    if (auto_attempt(&last) == 0)
        return;
    pthread_mutex_lock(&poller.mu);
    poller.stop = false;
    poller.running = pthread_create(&poller.thread, NULL, poller_main,
                                    NULL) == 0;
    pthread_mutex_unlock(&poller.mu);
    if (!poller.running)
        log_error("seal: cannot start the auto-unseal thread");
}

void sys_seal_auto_unseal_stop(void)
{
    pthread_mutex_lock(&poller.mu);
    poller.stop = true;
    pthread_cond_broadcast(&poller.cv);
    pthread_mutex_unlock(&poller.mu);
    if (poller.running)
        pthread_join(poller.thread, NULL);
    poller.running = false;
}

/* ============================================================ dispatch == */

static const struct {
    const char *path;
    void (*fn)(struct request *, struct response *);
} endpoints[] = {
    {"sys/health", handle_health},     {"sys/seal-status", handle_seal_status},
    {"sys/leader", handle_leader},     {"sys/init", handle_init},
    {"sys/unseal", handle_unseal},     {"sys/seal", handle_seal},
};

/*
 * generate-root and rekey (sys_rekey.c) ride along, except on an HA
 * standby, where core.c then forwards them to the active node.
 */
bool sys_seal_handles(const char *path)
{
    if (sys_rekey_handles(path))
        return !lifecycle_is_standby();
    for (size_t i = 0; i < ARRAY_LEN(endpoints); i++) {
        if (strcmp(path, endpoints[i].path) == 0)
            return true;
    }
    return false;
}

void sys_seal_handle(struct request *req, struct response *resp)
{
    if (sys_rekey_handles(req->path)) {
        sys_rekey_handle(req, resp);
        return;
    }
    for (size_t i = 0; i < ARRAY_LEN(endpoints); i++) {
        if (strcmp(req->path, endpoints[i].path) == 0) {
            endpoints[i].fn(req, resp);
            return;
        }
    }
    response_empty_error(resp, 404);
}
