/*
 * sys_rekey.c - generate-root and rekey (see sys_rekey.h).
 *
 * Each operation is one attempt at a time: started with a PUT (a nonce
 * is made), fed shares with update PUTs carrying that nonce, finished
 * when the threshold of the seal's shares (seal_key_config) is reached:
 *
 *   generate-root  the shares are checked (seal_verify_shares), a root
 *                  token is minted and answered as base64 (unpadded,
 *                  standard alphabet, as Vault's roottoken.EncodeToken)
 *                  of token XOR otp; the otp (28 base62 characters, a
 *                  root token's length) was answered at the start.
 *   rekey          seal_rekey checks the shares and stores a new key;
 *                  its new shares are answered once.
 *
 * A share already given is ignored; a set that does not verify fails
 * the update and forgets the shares given (the attempt stays, with its
 * nonce). Wording and shapes are Vault 1.14's.
 */
#include "sys_rekey.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/evp.h>

#include "audit.h"
#include "crypto.h"
#include "fields.h"
#include "lifecycle.h"
#include "log.h"
#include "seal.h"
#include "shamir.h"
#include "token.h"
#include "util.h"

/* Vault 1.14: TokenLength (24) + TokenPrefixLength (4). */
#define OTP_LEN 28

enum kind { GENROOT, REKEY, REKEY_RECOVERY, NKINDS };

struct attempt {
    bool started;
    char nonce[CRYPTO_UUID_LEN + 1];
    uint8_t given[SHAMIR_MAX_PARTS][SEAL_SHARE_LEN];
    int ngiven;
    char otp[OTP_LEN + 1]; /* generate-root */
    int new_shares;        /* rekey */
    int new_threshold;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct attempt attempts[NKINDS];
static bool locked_in_memory;

/* The shares wait here between requests: keep them out of swap. mu held. */
static void lock_memory_locked(void)
{
    if (locked_in_memory)
        return;
    locked_in_memory = true;
    if (mlock(attempts, sizeof(attempts)) != 0)
        log_debug("rekey: cannot lock the share buffers in memory");
}

static void cancel_locked(struct attempt *a)
{
    crypto_wipe(a, sizeof(*a));
}

void sys_rekey_reset(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < NKINDS; i++)
        cancel_locked(&attempts[i]);
    pthread_mutex_unlock(&mu);
}

static int required_shares(void)
{
    int threshold = 0, shares = 0;

    seal_key_config(&threshold, &shares);
    return threshold;
}

/* ============================================================= shares == */

/*
 * The share in the body's "key", checked against the attempt's nonce
 * (what names the operation in the message).
 * 0, or -1 with resp set. mu held.
 */
static int take_share(const struct attempt *a, const cJSON *data,
                      const char *what, const char *not_started,
                      uint8_t *share,
                      size_t *len, struct response *resp)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(data, "key");
    const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(data, "nonce");
    struct errbuf err;

    errbuf_clear(&err);
    if (!cJSON_IsString(key) || key->valuestring[0] == '\0') {
        response_error(resp, 400, "'key' must be specified in request body "
                                  "as JSON");
        return -1;
    }
    if (!a->started) {
        response_error(resp, 400, "%s", not_started);
        return -1;
    }
    if (!cJSON_IsString(nonce) ||
        !crypto_equal(nonce->valuestring, strlen(nonce->valuestring),
                      a->nonce, strlen(a->nonce))) {
        /* Vault's words; the nonce is no secret (the status shows it). */
        response_error(resp, 400, "incorrect nonce supplied; nonce for "
                                  "this %s operation is \"%s\"", what,
                       a->nonce);
        return -1;
    }
    if (seal_decode_share(key->valuestring, share, len, &err) != 0) {
        response_error(resp, 400, "%s", err.msg);
        return -1;
    }
    if (*len != SEAL_SHARE_LEN) {
        response_error(resp, 400, "invalid key: key is %s than %s %d bytes",
                       *len < SEAL_SHARE_LEN ? "shorter" : "longer",
                       *len < SEAL_SHARE_LEN ? "minimum" : "maximum",
                       SEAL_SHARE_LEN);
        return -1;
    }
    return 0;
}

/*
 * Adds the share unless already given. True once the threshold is
 * reached, parts then pointing at the shares. mu held.
 */
static bool add_share(struct attempt *a, const uint8_t *share, int required,
                      const uint8_t **parts)
{
    for (int i = 0; i < a->ngiven; i++) {
        if (crypto_equal(a->given[i], SEAL_SHARE_LEN, share, SEAL_SHARE_LEN))
            return false; /* Vault ignores a repeated share */
    }
    if (a->ngiven < SHAMIR_MAX_PARTS)
        memcpy(a->given[a->ngiven++], share, SEAL_SHARE_LEN);
    if (a->ngiven < required)
        return false;
    for (int i = 0; i < a->ngiven; i++)
        parts[i] = a->given[i];
    return true;
}

/* Forgets the shares given, keeping the attempt. mu held. */
static void forget_shares_locked(struct attempt *a)
{
    crypto_wipe(a->given, sizeof(a->given));
    a->ngiven = 0;
}

static const char *data_string(const cJSON *data, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, name);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* ====================================================== generate-root == */

static cJSON *genroot_status(const struct attempt *a, const char *encoded,
                             const char *otp)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddBoolToObject(o, "started", a->started || encoded[0] != '\0');
    cJSON_AddStringToObject(o, "nonce", a->nonce);
    cJSON_AddNumberToObject(o, "progress", a->ngiven);
    cJSON_AddNumberToObject(o, "required", required_shares());
    cJSON_AddStringToObject(o, "encoded_token", encoded);
    cJSON_AddStringToObject(o, "encoded_root_token", encoded);
    cJSON_AddStringToObject(o, "pgp_fingerprint", "");
    cJSON_AddStringToObject(o, "otp", otp);
    cJSON_AddNumberToObject(o, "otp_length", OTP_LEN);
    cJSON_AddBoolToObject(o, "complete", encoded[0] != '\0');
    return o;
}

static void genroot_start(struct request *req, struct response *resp)
{
    struct attempt *a = &attempts[GENROOT];
    const char *otp = data_string(req->data, "otp");
    bool generated = otp[0] == '\0';

    if (data_string(req->data, "pgp_key")[0] != '\0') {
        response_error(resp, 400, "pgp_key is not supported: use the "
                                  "server-generated otp");
        return;
    }
    if (!generated && strlen(otp) != OTP_LEN) {
        response_error(resp, 400, "OTP string is wrong length");
        return;
    }
    pthread_mutex_lock(&mu);
    lock_memory_locked();
    if (a->started) {
        response_error(resp, 400, "root generation already in progress");
    } else if (crypto_uuid(a->nonce) != 0 ||
               (generated && crypto_random_base62(a->otp, OTP_LEN) != 0)) {
        cancel_locked(a);
        response_error(resp, 500, "the random generator failed");
    } else {
        if (!generated)
            memcpy(a->otp, otp, OTP_LEN + 1);
        a->started = true;
        resp->raw = genroot_status(a, "", generated ? a->otp : "");
        log_info("rekey: root token generation started");
    }
    pthread_mutex_unlock(&mu);
}

/* base64 (standard alphabet, unpadded) of token XOR otp into out. */
static int encode_token(const char *token, const char *otp, char *out)
{
    uint8_t x[OTP_LEN];
    size_t n;

    if (strlen(token) != OTP_LEN)
        return COFFER_EINTERNAL;
    for (size_t i = 0; i < OTP_LEN; i++)
        x[i] = (uint8_t)(token[i] ^ otp[i]);
    n = (size_t)EVP_EncodeBlock((unsigned char *)out, x, OTP_LEN);
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    crypto_wipe(x, sizeof(x));
    return 0;
}

/* The threshold is reached: verify, mint, encode. mu held. */
static void genroot_finish(struct attempt *a, const uint8_t *const *parts,
                           struct response *resp)
{
    char encoded[2 * OTP_LEN];
    char *token = NULL;
    struct errbuf err;
    int rc;

    errbuf_clear(&err);
    rc = seal_verify_shares(parts, a->ngiven, &err);
    forget_shares_locked(a);
    if (rc != 0) {
        response_error(resp, 400, "%s", err.msg);
        return;
    }
    rc = token_create_root(NULL, &token);
    if (rc == 0)
        rc = encode_token(token, a->otp, encoded);
    if (rc != 0) {
        response_error(resp, 500, "creating the root token failed: %s",
                       coffer_strerror(rc));
    } else {
        resp->raw = genroot_status(a, encoded, "");
        cJSON_ReplaceItemInObject(resp->raw, "progress",
                                  cJSON_CreateNumber(required_shares()));
        log_info("rekey: a new root token was generated");
        cancel_locked(a);
    }
    secure_free_str(token);
    crypto_wipe(encoded, sizeof(encoded));
}

static void genroot_update(struct request *req, struct response *resp)
{
    struct attempt *a = &attempts[GENROOT];
    const uint8_t *parts[SHAMIR_MAX_PARTS];
    uint8_t share[SEAL_DECODED_MAX];
    size_t len = 0;

    pthread_mutex_lock(&mu);
    if (take_share(a, req->data, "root generation",
                   "no root generation in progress", share, &len,
                   resp) == 0) {
        if (add_share(a, share, required_shares(), parts))
            genroot_finish(a, parts, resp);
        else
            resp->raw = genroot_status(a, "", "");
    }
    pthread_mutex_unlock(&mu);
    crypto_wipe(share, sizeof(share));
}

static void handle_genroot_attempt(struct request *req,
                                   struct response *resp)
{
    if (req->op == OP_READ) {
        pthread_mutex_lock(&mu);
        resp->raw = genroot_status(&attempts[GENROOT], "", "");
        pthread_mutex_unlock(&mu);
    } else if (req->op == OP_UPDATE || req->op == OP_CREATE) {
        genroot_start(req, resp);
    } else if (req->op == OP_DELETE) {
        pthread_mutex_lock(&mu);
        cancel_locked(&attempts[GENROOT]);
        pthread_mutex_unlock(&mu);
        resp->status = 204;
        resp->no_body = true;
    } else {
        response_empty_error(resp, 405);
    }
}

static void handle_genroot_update(struct request *req,
                                  struct response *resp)
{
    if (req->op == OP_UPDATE || req->op == OP_CREATE)
        genroot_update(req, resp);
    else
        response_empty_error(resp, 405);
}

/* ============================================================== rekey == */

static enum kind rekey_kind(const char *path)
{
    return strncmp(path, "sys/rekey-recovery-key/", 23) == 0 ? REKEY_RECOVERY
                                                              : REKEY;
}

static cJSON *rekey_status(const struct attempt *a)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "nonce", a->nonce);
    cJSON_AddBoolToObject(o, "started", a->started);
    cJSON_AddNumberToObject(o, "t", a->new_threshold);
    cJSON_AddNumberToObject(o, "n", a->new_shares);
    cJSON_AddNumberToObject(o, "progress", a->ngiven);
    cJSON_AddNumberToObject(o, "required", required_shares());
    cJSON_AddNullToObject(o, "pgp_fingerprints");
    cJSON_AddBoolToObject(o, "backup", false);
    cJSON_AddBoolToObject(o, "verification_required", false);
    return o;
}

/*
 * The kind must fit the seal: the barrier's shares with Shamir, the
 * recovery shares with an auto seal. 0, or -1 with resp set.
 */
static int check_kind(enum kind k, struct response *resp)
{
    if (k == REKEY_RECOVERY && !seal_is_auto()) {
        response_error(resp, 400, "recovery rekeying is not supported by "
                                  "the %s seal", seal_type_name());
        return -1;
    }
    if (k == REKEY && seal_is_auto()) {
        response_error(resp, 400, "the %s seal has no unseal shares to "
                                  "rekey: use sys/rekey-recovery-key",
                       seal_type_name());
        return -1;
    }
    return 0;
}

static int rekey_params(const cJSON *data, int64_t *shares,
                        int64_t *threshold, struct response *resp)
{
    bool given, flag = false;
    struct errbuf why;

    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(data,
                                                            "pgp_keys")) > 0) {
        response_error(resp, 400, "pgp_keys are not supported");
        return -1;
    }
    if (field_bool(data, "backup", &flag, &given, resp) != 0)
        return -1;
    if (flag) {
        response_error(resp, 400, "backup is not supported (it needs "
                                  "pgp_keys)");
        return -1;
    }
    if (field_bool(data, "require_verification", &flag, &given, resp) != 0)
        return -1;
    if (flag) {
        response_error(resp, 400, "require_verification is not supported");
        return -1;
    }
    *shares = *threshold = 0;
    if (field_int(data, "secret_shares", shares, &given, resp) != 0 ||
        field_int(data, "secret_threshold", threshold, &given, resp) != 0)
        return -1;
    errbuf_clear(&why);
    if (*shares < 0 || *shares > SHAMIR_MAX_PARTS || *threshold < 0 ||
        *threshold > SHAMIR_MAX_PARTS ||
        shamir_check_config((int)*shares, (int)*threshold, &why) != 0) {
        response_error(resp, 400, "invalid rekey configuration: %s",
                       why.msg[0] != '\0' ? why.msg
                                          : "shares and threshold must be "
                                            "between 1 and 255");
        return -1;
    }
    return 0;
}

static void rekey_start(enum kind k, struct request *req,
                        struct response *resp)
{
    struct attempt *a = &attempts[k];
    int64_t shares, threshold;

    if (rekey_params(req->data, &shares, &threshold, resp) != 0)
        return;
    pthread_mutex_lock(&mu);
    lock_memory_locked();
    if (a->started) {
        response_error(resp, 400, "rekey already in progress");
    } else if (crypto_uuid(a->nonce) != 0) {
        cancel_locked(a);
        response_error(resp, 500, "the random generator failed");
    } else {
        a->started = true;
        a->new_shares = (int)shares;
        a->new_threshold = (int)threshold;
        resp->raw = rekey_status(a);
        log_info("rekey: %s rekey started", k == REKEY ? "barrier"
                                                       : "recovery");
    }
    pthread_mutex_unlock(&mu);
}

cJSON *sys_rekey_shares_json(const uint8_t *shares, int n, bool base64)
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

/* The threshold is reached: the new key and its shares. mu held. */
static void rekey_finish(struct attempt *a, const uint8_t *const *parts,
                         struct response *resp)
{
    uint8_t *keys = NULL;
    int n = a->new_shares;
    struct errbuf err;
    cJSON *o;
    int rc;

    errbuf_clear(&err);
    rc = seal_rekey(parts, a->ngiven, n, a->new_threshold, &keys, &err);
    forget_shares_locked(a);
    if (rc != 0) {
        response_error(resp, rc == COFFER_EPERM || rc == COFFER_EINVAL ? 400
                                                                      : 500,
                       "%s", err.msg);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "nonce", a->nonce);
    cJSON_AddBoolToObject(o, "complete", true);
    cJSON_AddItemToObject(o, "keys", sys_rekey_shares_json(keys, n, false));
    cJSON_AddItemToObject(o, "keys_base64", sys_rekey_shares_json(keys, n, true));
    cJSON_AddNullToObject(o, "pgp_fingerprints");
    cJSON_AddBoolToObject(o, "backup", false);
    cJSON_AddBoolToObject(o, "verification_required", false);
    cJSON_AddStringToObject(o, "verification_nonce", "");
    resp->raw = o;
    cancel_locked(a);
    secure_free(keys, (size_t)n * SEAL_SHARE_LEN);
}

static void rekey_update(enum kind k, struct request *req,
                         struct response *resp)
{
    struct attempt *a = &attempts[k];
    const uint8_t *parts[SHAMIR_MAX_PARTS];
    uint8_t share[SEAL_DECODED_MAX];
    size_t len = 0;

    pthread_mutex_lock(&mu);
    if (take_share(a, req->data, "rekey",
                   k == REKEY ? "no barrier rekey in progress"
                              : "no recovery rekey in progress",
                   share, &len, resp) == 0) {
        if (add_share(a, share, required_shares(), parts))
            rekey_finish(a, parts, resp);
        else
            resp->raw = rekey_status(a);
    }
    pthread_mutex_unlock(&mu);
    crypto_wipe(share, sizeof(share));
}

static void handle_rekey_init(struct request *req, struct response *resp)
{
    enum kind k = rekey_kind(req->path);

    if (check_kind(k, resp) != 0)
        return;
    if (req->op == OP_READ) {
        pthread_mutex_lock(&mu);
        resp->raw = rekey_status(&attempts[k]);
        pthread_mutex_unlock(&mu);
    } else if (req->op == OP_UPDATE || req->op == OP_CREATE) {
        rekey_start(k, req, resp);
    } else if (req->op == OP_DELETE) {
        pthread_mutex_lock(&mu);
        cancel_locked(&attempts[k]);
        pthread_mutex_unlock(&mu);
        resp->status = 204;
        resp->no_body = true;
    } else {
        response_empty_error(resp, 405);
    }
}

static void handle_rekey_update(struct request *req, struct response *resp)
{
    enum kind k = rekey_kind(req->path);

    if (req->op != OP_UPDATE && req->op != OP_CREATE)
        response_empty_error(resp, 405);
    else if (check_kind(k, resp) == 0)
        rekey_update(k, req, resp);
}

/* ============================================================ dispatch == */

static const struct {
    const char *path;
    void (*fn)(struct request *, struct response *);
} endpoints[] = {
    {"sys/generate-root/attempt", handle_genroot_attempt},
    {"sys/generate-root/update", handle_genroot_update},
    {"sys/rekey/init", handle_rekey_init},
    {"sys/rekey/update", handle_rekey_update},
    {"sys/rekey-recovery-key/init", handle_rekey_init},
    {"sys/rekey-recovery-key/update", handle_rekey_update},
};

bool sys_rekey_handles(const char *path)
{
    for (size_t i = 0; i < ARRAY_LEN(endpoints); i++) {
        if (strcmp(path, endpoints[i].path) == 0)
            return true;
    }
    return false;
}

/*
 * Only while active, holding the state lock for reading: a seal waits
 * for a rekey's storage batch, and the token store is up for the root
 * token. Audited as Vault does, fail closed like every request: the
 * shares given, the new keys and the encoded token reach the log only
 * as HMACs.
 */
void sys_rekey_handle(struct request *req, struct response *resp)
{
    bool active = lifecycle_enter();

    if (!active) {
        response_error(resp, 503, "Vault is sealed");
    } else if (audit_log_request(req, resp) == 0) {
        for (size_t i = 0; i < ARRAY_LEN(endpoints); i++) {
            if (strcmp(req->path, endpoints[i].path) == 0)
                endpoints[i].fn(req, resp);
        }
        (void)audit_log_response(req, resp);
    }
    lifecycle_leave();
}
