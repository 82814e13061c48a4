/*
 * seal.c - init, unseal shares and the root key (see seal.h).
 */
#include "seal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "barrier.h"
#include "buf.h"
#include "log.h"
#include "shamir.h"
#include "storage.h"

#define CONFIG_KEY "core/seal-config"
#define ROOT_KEY "core/root-key"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct barrier *barrier;
static struct storage *physical;
/* The shares of the attempt under way, kept only until it completes. */
static uint8_t given[SHAMIR_MAX_PARTS][SEAL_SHARE_LEN];
static int ngiven;
static char nonce[CRYPTO_UUID_LEN + 1];

void seal_setup(struct barrier *b, struct storage *phys)
{
    barrier = b;
    physical = phys;
    /* Shares wait here between unseal calls: keep them out of swap. */
    if (mlock(given, sizeof(given)) != 0)
        log_debug("seal: cannot lock the share buffer in memory");
}

/* ============================================================= config == */

static int read_config(int *shares, int *threshold)
{
    struct buf stored;
    cJSON *o;
    int rc;

    *shares = *threshold = 0;
    buf_init(&stored, 4096);
    rc = storage_get(physical, CONFIG_KEY, &stored);
    if (rc == 0) {
        o = cJSON_ParseWithLength(stored.ptr, stored.len);
        *shares = cJSON_GetObjectItemCaseSensitive(o, "secret_shares")
                      ? cJSON_GetObjectItemCaseSensitive(o, "secret_shares")
                            ->valueint
                      : 0;
        *threshold =
            cJSON_GetObjectItemCaseSensitive(o, "secret_threshold")
                ? cJSON_GetObjectItemCaseSensitive(o, "secret_threshold")
                      ->valueint
                : 0;
        cJSON_Delete(o);
        if (*shares <= 0 || *threshold <= 0 || *threshold > *shares)
            rc = COFFER_EINVAL;
    }
    buf_release(&stored);
    return rc;
}

/* Vault's SealConfig.Validate (shamir.c keeps the one copy), its words
 * prefixed as sys/init answers them. */
static int check_params(int shares, int threshold, struct errbuf *err)
{
    struct errbuf why;
    int rc = shamir_check_config(shares, threshold, &why);

    if (rc != 0)
        errbuf_set(err, "invalid seal configuration: %s", why.msg);
    return rc;
}

/* =============================================================== init == */

/* Stores the config and the root key sealed with the unseal key. */
static int store_seal(int shares, int threshold, const uint8_t *unseal_key,
                      const uint8_t *root_key, struct errbuf *err)
{
    char config[96];
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    struct storage_op ops[2];
    int rc;

    snprintf(config, sizeof(config),
             "{\"secret_shares\":%d,\"secret_threshold\":%d}", shares,
             threshold);
    rc = barrier_seal_value(unseal_key, ROOT_KEY, root_key, SEAL_KEY_LEN,
                            &sealed, &sealed_len);
    if (rc != 0) {
        errbuf_set(err, "sealing the root key failed");
        return rc;
    }
    ops[0] = (struct storage_op){STORAGE_OP_PUT, CONFIG_KEY, config,
                                 strlen(config)};
    ops[1] = (struct storage_op){STORAGE_OP_PUT, ROOT_KEY, sealed,
                                 sealed_len};
    rc = storage_batch(physical, ops, 2);
    if (rc != 0)
        errbuf_set(err, "storing the seal failed: %s", coffer_strerror(rc));
    secure_free(sealed, sealed_len);
    return rc;
}

int seal_init(int shares, int threshold, uint8_t **shares_out,
              struct errbuf *err)
{
    uint8_t *keys = NULL;
    uint8_t *secrets = NULL; /* unseal key | root key, in locked memory */
    int rc;

    *shares_out = NULL;
    rc = check_params(shares, threshold, err);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&mu);
    if (barrier_initialized(barrier)) {
        errbuf_set(err, "Vault is already initialized");
        rc = COFFER_EEXIST;
        goto out;
    }
    secrets = xmalloc(2 * SEAL_KEY_LEN);
    keys = xmalloc((size_t)shares * SEAL_SHARE_LEN);
    /* Best effort: keep the fresh keys out of swap while they live. */
    if (mlock(secrets, 2 * SEAL_KEY_LEN) != 0 ||
        mlock(keys, (size_t)shares * SEAL_SHARE_LEN) != 0)
        log_debug("seal: cannot lock the new keys in memory");
    rc = crypto_random(secrets, 2 * SEAL_KEY_LEN);
    if (rc == 0)
        rc = shamir_split(secrets, SEAL_KEY_LEN, shares, threshold, keys,
                          err);
    /* The sealed root key first, the keyring last: the keyring is what
     * makes the server count as initialised, so a crash in between leaves
     * a server that can simply be initialised again. */
    if (rc == 0)
        rc = store_seal(shares, threshold, secrets, secrets + SEAL_KEY_LEN,
                        err);
    if (rc == 0)
        rc = barrier_initialize(barrier, secrets + SEAL_KEY_LEN, err);
    if (rc == 0) {
        *shares_out = keys;
        keys = NULL;
        log_info("seal: initialized with %d shares, threshold %d", shares,
                 threshold);
    }
out:
    pthread_mutex_unlock(&mu);
    if (secrets != NULL) {
        crypto_wipe(secrets, 2 * SEAL_KEY_LEN);
        munlock(secrets, 2 * SEAL_KEY_LEN);
    }
    secure_free(secrets, 2 * SEAL_KEY_LEN);
    secure_free(keys, (size_t)shares * SEAL_SHARE_LEN);
    return rc;
}

/* ============================================================= unseal == */

static void forget_shares_locked(void)
{
    crypto_wipe(given, sizeof(given));
    ngiven = 0;
    nonce[0] = '\0';
}

void seal_reset_progress(void)
{
    pthread_mutex_lock(&mu);
    forget_shares_locked();
    pthread_mutex_unlock(&mu);
}

/* Opens the root key with the recombined unseal key and unseals. */
static int open_with(const uint8_t *unseal_key, struct errbuf *err)
{
    struct buf stored;
    uint8_t *root = NULL;
    size_t root_len = 0;
    int rc;

    buf_init(&stored, 4096);
    rc = storage_get(physical, ROOT_KEY, &stored);
    if (rc != 0) {
        errbuf_set(err, "reading the root key failed: %s",
                   coffer_strerror(rc));
        goto out;
    }
    rc = barrier_open_value(unseal_key, ROOT_KEY, stored.ptr, stored.len,
                            &root, &root_len);
    if (rc != 0 || root_len != SEAL_KEY_LEN) {
        errbuf_set(err, "Unseal failed, invalid key");
        rc = COFFER_EPERM;
        goto out;
    }
    rc = barrier_unseal(barrier, root, err);
out:
    secure_free(root, root_len);
    buf_release(&stored);
    return rc;
}

static bool already_given_locked(const uint8_t *share, size_t len)
{
    for (int i = 0; i < ngiven; i++) {
        if (crypto_equal(given[i], SEAL_SHARE_LEN, share, len))
            return true;
    }
    return false;
}

int seal_submit_share(const uint8_t *share, size_t len, bool *unsealed,
                      struct errbuf *err)
{
    uint8_t unseal_key[SEAL_KEY_LEN];
    const uint8_t *parts[SHAMIR_MAX_PARTS];
    int shares, threshold, rc;

    *unsealed = false;
    if (len != SEAL_SHARE_LEN) {
        errbuf_set(err, "invalid key: key is %s than %s %d bytes",
                   len < SEAL_SHARE_LEN ? "shorter" : "longer",
                   len < SEAL_SHARE_LEN ? "minimum" : "maximum",
                   SEAL_SHARE_LEN);
        return COFFER_EINVAL;
    }
    pthread_mutex_lock(&mu);
    rc = read_config(&shares, &threshold);
    if (rc != 0 || !barrier_initialized(barrier)) {
        errbuf_set(err, "Vault is not initialized");
        rc = COFFER_EINVAL;
        goto out;
    }
    if (!barrier_sealed(barrier) || already_given_locked(share, len))
        goto out; /* Vault ignores a repeated share */
    if (ngiven == 0)
        crypto_uuid(nonce);
    memcpy(given[ngiven++], share, SEAL_SHARE_LEN);
    if (ngiven < threshold)
        goto out;
    for (int i = 0; i < ngiven; i++)
        parts[i] = given[i];
    rc = shamir_combine(parts, ngiven, SEAL_SHARE_LEN, unseal_key, err);
    if (rc == 0)
        rc = open_with(unseal_key, err);
    crypto_wipe(unseal_key, sizeof(unseal_key));
    forget_shares_locked();
    if (rc == 0) {
        *unsealed = true;
        log_info("seal: unsealed");
    } else if (rc == COFFER_EINVAL) {
        errbuf_set(err, "Unseal failed, invalid key");
    }
out:
    pthread_mutex_unlock(&mu);
    return rc;
}

void seal_get_status(struct seal_status *out)
{
    pthread_mutex_lock(&mu);
    memset(out, 0, sizeof(*out));
    out->initialized = read_config(&out->shares, &out->threshold) == 0 &&
                       barrier_initialized(barrier);
    if (!out->initialized)
        out->shares = out->threshold = 0;
    out->progress = ngiven;
    snprintf(out->nonce, sizeof(out->nonce), "%s", nonce);
    pthread_mutex_unlock(&mu);
}

/* ============================================================ decoding == */

static int decode_hex(const char *text, size_t n, uint8_t *out, size_t *len)
{
    static const char digits[] = "0123456789abcdef";

    if (n == 0 || n % 2 != 0 || n / 2 > SEAL_DECODED_MAX)
        return COFFER_EINVAL;
    for (size_t i = 0; i < n; i += 2) {
        const char *hi = strchr(digits, tolower((unsigned char)text[i]));
        const char *lo = strchr(digits, tolower((unsigned char)text[i + 1]));
        if (hi == NULL || lo == NULL || text[i] == '\0' || text[i + 1] == '\0')
            return COFFER_EINVAL;
        out[i / 2] = (uint8_t)(((hi - digits) << 4) | (lo - digits));
    }
    *len = n / 2;
    return 0;
}

static int decode_base64(const char *text, size_t n, uint8_t *out,
                         size_t *len)
{
    uint8_t tmp[SEAL_DECODED_MAX + 3];
    int got;
    size_t pad = 0;

    if (n == 0 || n % 4 != 0 || n / 4 * 3 > SEAL_DECODED_MAX)
        return COFFER_EINVAL;
    got = EVP_DecodeBlock(tmp, (const unsigned char *)text, (int)n);
    if (got < 0)
        return COFFER_EINVAL;
    while (pad < 2 && text[n - 1 - pad] == '=')
        pad++;
    *len = (size_t)got - pad;
    memcpy(out, tmp, *len);
    crypto_wipe(tmp, sizeof(tmp));
    return 0;
}

int seal_decode_share(const char *text, uint8_t *out, size_t *len,
                      struct errbuf *err)
{
    size_t n = strlen(text);

    if (decode_hex(text, n, out, len) == 0 ||
        decode_base64(text, n, out, len) == 0)
        return 0;
    errbuf_set(err, "'key' must be a valid hex or base64 string");
    return COFFER_EINVAL;
}
