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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fields.h"
#include "lifecycle.h"
#include "log.h"
#include "seal.h"
#include "token.h"
#include "util.h"

static const char *storage_type = "inmem";
static char cluster_id[CRYPTO_UUID_LEN + 1];
static char cluster_name[64];

void sys_set_storage_type(const char *name)
{
    storage_type = name;
}

static void ensure_cluster_identity(void)
{
    char hex[9];

    /* Set once, racing writers would write equally valid values. */
    if (cluster_id[0] != '\0')
        return;
    if (crypto_uuid(cluster_id) != 0 || crypto_random_hex(hex, 8) != 0)
        return;
    snprintf(cluster_name, sizeof(cluster_name), "coffer-cluster-%s", hex);
}


/* ====================================================== status family == */

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
    int active_code, sealed_code, uninit_code, ignored;
    struct seal_status st;
    bool flag, active;
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
    if (code_param(req->data, "sealedcode", 503, &sealed_code) != 0 ||
        code_param(req->data, "uninitcode", 501, &uninit_code) != 0)
        goto bad;
    ensure_cluster_identity();
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "initialized", st.initialized);
    cJSON_AddBoolToObject(o, "sealed", !active);
    cJSON_AddBoolToObject(o, "standby", false);
    cJSON_AddBoolToObject(o, "performance_standby", false);
    cJSON_AddStringToObject(o, "replication_performance_mode", "disabled");
    cJSON_AddStringToObject(o, "replication_dr_mode", "disabled");
    cJSON_AddNumberToObject(o, "server_time_utc", (double)time_now().tv_sec);
    add_version(o);
    if (active) {
        cJSON_AddStringToObject(o, "cluster_name", cluster_name);
        cJSON_AddStringToObject(o, "cluster_id", cluster_id);
    }
    resp->raw = o;
    resp->status = !st.initialized ? uninit_code
                                   : (!active ? sealed_code : active_code);
    resp->no_body = req->op == OP_HEAD;
    return;
bad:
    response_empty_error(resp, 400);
}

/* The seal-status document (also the reply of every sys/unseal call). */
static cJSON *seal_status_json(void)
{
    struct seal_status st;
    bool active = lifecycle_is_active();
    cJSON *o = cJSON_CreateObject();

    seal_get_status(&st);
    ensure_cluster_identity();
    cJSON_AddStringToObject(o, "type", "shamir");
    cJSON_AddBoolToObject(o, "initialized", st.initialized);
    cJSON_AddBoolToObject(o, "sealed", !active);
    cJSON_AddNumberToObject(o, "t", st.threshold);
    cJSON_AddNumberToObject(o, "n", st.shares);
    cJSON_AddNumberToObject(o, "progress", active ? 0 : st.progress);
    cJSON_AddStringToObject(o, "nonce", active ? "" : st.nonce);
    add_version(o);
    cJSON_AddStringToObject(o, "build_date", "");
    cJSON_AddBoolToObject(o, "migration", false);
    if (active) {
        cJSON_AddStringToObject(o, "cluster_name", cluster_name);
        cJSON_AddStringToObject(o, "cluster_id", cluster_id);
    }
    cJSON_AddBoolToObject(o, "recovery_seal", false);
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
    cJSON *o;

    if (req->op != OP_READ) {
        response_empty_error(resp, 405);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ha_enabled", false);
    cJSON_AddBoolToObject(o, "is_self", false);
    cJSON_AddStringToObject(o, "active_time", "0001-01-01T00:00:00Z");
    cJSON_AddStringToObject(o, "leader_address", "");
    cJSON_AddStringToObject(o, "leader_cluster_address", "");
    cJSON_AddBoolToObject(o, "performance_standby", false);
    cJSON_AddNumberToObject(o, "performance_standby_last_remote_wal", 0);
    resp->raw = o;
}


/* ================================================================ init == */

static cJSON *encode_shares(const uint8_t *shares, int n, bool base64)
{
    cJSON *arr = cJSON_CreateArray();
    char text[2 * SEAL_SHARE_LEN + 8];

    for (int i = 0; i < n; i++) {
        const uint8_t *share = shares + (size_t)i * SEAL_SHARE_LEN;
        if (base64)
            EVP_EncodeBlock((unsigned char *)text, share, SEAL_SHARE_LEN);
        else
            crypto_hex(share, SEAL_SHARE_LEN, text);
        cJSON_AddItemToArray(arr, cJSON_CreateString(text));
    }
    crypto_wipe(text, sizeof(text));
    return arr;
}

static void init_vault(struct request *req, struct response *resp)
{
    int64_t shares = 0, threshold = 0;
    bool given;
    uint8_t *keys = NULL;
    char *root = NULL;
    struct errbuf err;

    errbuf_clear(&err);
    if (field_int(req->data, "secret_shares", &shares, &given, resp) != 0 ||
        field_int(req->data, "secret_threshold", &threshold, &given, resp) !=
            0)
        return;
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(req->data,
                                                            "pgp_keys")) > 0) {
        response_error(resp, 400, "pgp_keys are not supported");
        return;
    }
    if (shares < 0 || shares > 255 || threshold < 0 || threshold > 255) {
        response_error(resp, 400, "invalid seal configuration: shares and "
                                  "threshold must be between 1 and 255");
        return;
    }
    if (seal_init((int)shares, (int)threshold, &keys, &err) != 0) {
        response_error(resp, 400, "%s", err.msg);
        return;
    }
    /* The barrier is open now: the first mounts and the root token go in,
     * then it is sealed again, as Vault leaves a freshly initialised
     * server. */
    if (lifecycle_init_root_token(&root, &err) != 0) {
        response_error(resp, 500, "%s", err.msg);
        goto out;
    }
    resp->raw = cJSON_CreateObject();
    cJSON_AddItemToObject(resp->raw, "keys",
                          encode_shares(keys, (int)shares, false));
    cJSON_AddItemToObject(resp->raw, "keys_base64",
                          encode_shares(keys, (int)shares, true));
    cJSON_AddStringToObject(resp->raw, "root_token", root);
out:
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
    bool reset = false, given;
    struct seal_status st;

    if (req->op != OP_UPDATE && req->op != OP_CREATE) {
        response_empty_error(resp, 405);
        return;
    }
    if (field_bool(req->data, "reset", &reset, &given, resp) != 0)
        return;
    seal_get_status(&st);
    if (!st.initialized) {
        response_error(resp, 400, "Vault is not initialized");
        return;
    }
    if (reset) {
        if (lifecycle_is_active()) {
            response_error(resp, 400, "vault is unsealed");
            return;
        }
        seal_reset_progress();
    } else if (!cJSON_IsString(key) || key->valuestring[0] == '\0') {
        response_error(resp, 400, "'key' must be specified in request body "
                                  "as JSON, or 'reset' set to true");
        return;
    } else if (!lifecycle_is_active() &&
               unseal_with(key->valuestring, resp) != 0) {
        return;
    }
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
    log_info("core: sealed by request %s", req->id);
    resp->status = 204;
    resp->no_body = true;
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

bool sys_seal_handles(const char *path)
{
    for (size_t i = 0; i < ARRAY_LEN(endpoints); i++) {
        if (strcmp(path, endpoints[i].path) == 0)
            return true;
    }
    return false;
}

void sys_seal_handle(struct request *req, struct response *resp)
{
    for (size_t i = 0; i < ARRAY_LEN(endpoints); i++) {
        if (strcmp(req->path, endpoints[i].path) == 0) {
            endpoints[i].fn(req, resp);
            return;
        }
    }
    response_empty_error(resp, 404);
}
