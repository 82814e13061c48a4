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
#include "seal_static.h"
#include "seal_wrap.h"
#include "shamir.h"
#include "storage.h"

#define CONFIG_KEY "core/seal-config"
#define ROOT_KEY "core/root-key"
#define RECOVERY_KEY "core/recovery-key"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct barrier *barrier;
static struct storage *physical;
/* The shares of the attempt under way, kept only until it completes. */
static uint8_t given[SHAMIR_MAX_PARTS][SEAL_SHARE_LEN];
static int ngiven;
static char nonce[CRYPTO_UUID_LEN + 1];
/* The auto seal (static or pkcs11); NULL = Shamir. Set before any
 * request. static_wrapper backs seal_set_static. */
static const struct seal_wrapper *autoseal;
static struct seal_wrapper static_wrapper;
/* Its stanza says disabled = true: migrate from it to Shamir. */
static bool static_disabled;

/*
 * Seal migration (Vault's sys/unseal with migrate=true), decided by the
 * configured seal against the stored one: to the static seal while the
 * storage still holds a Shamir seal, back to Shamir while a disabled
 * static seal's storage is still static.
 */
enum migration { MIGRATE_NONE, MIGRATE_TO_AUTO, MIGRATE_TO_SHAMIR };

/* core/seal-config as stored. type is "shamir" when the field is absent. */
struct stored_config {
    char type[16];
    int shares, threshold;                   /* the barrier's */
    int recovery_shares, recovery_threshold; /* auto seal only */
};

static void forget_shares_locked(void);

/* A static seal that is in use (configured and not disabled). */
static bool auto_active(void)
{
    return autoseal != NULL && !static_disabled;
}

void seal_setup(struct barrier *b, struct storage *phys)
{
    barrier = b;
    physical = phys;
    /* Shares wait here between unseal calls: keep them out of swap. */
    if (mlock(given, sizeof(given)) != 0)
        log_debug("seal: cannot lock the share buffer in memory");
}

/* ============================================================= config == */

static int json_int(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(v) ? v->valueint : 0;
}

static int read_config(struct stored_config *c)
{
    struct buf stored;
    const cJSON *type;
    cJSON *o;
    int rc;

    memset(c, 0, sizeof(*c));
    snprintf(c->type, sizeof(c->type), "shamir");
    buf_init(&stored, 4096);
    rc = storage_get(physical, CONFIG_KEY, &stored);
    if (rc == 0) {
        o = cJSON_ParseWithLength(stored.ptr, stored.len);
        c->shares = json_int(o, "secret_shares");
        c->threshold = json_int(o, "secret_threshold");
        c->recovery_shares = json_int(o, "recovery_shares");
        c->recovery_threshold = json_int(o, "recovery_threshold");
        type = cJSON_GetObjectItemCaseSensitive(o, "type");
        if (cJSON_IsString(type))
            snprintf(c->type, sizeof(c->type), "%s", type->valuestring);
        cJSON_Delete(o);
        if (c->shares <= 0 || c->threshold <= 0 || c->threshold > c->shares)
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
static int store_shamir(int shares, int threshold, const uint8_t *unseal_key,
                        const uint8_t *root_key, struct errbuf *err)
{
    char config[96];
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    struct storage_op ops[3];
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
    /* After a migration from an auto seal its recovery key goes in the
     * same batch (deleting a missing key is a no-op at init). */
    ops[2] = (struct storage_op){STORAGE_OP_DELETE, RECOVERY_KEY, NULL, 0};
    rc = storage_batch(physical, ops, 3);
    if (rc != 0)
        errbuf_set(err, "storing the seal failed: %s", coffer_strerror(rc));
    secure_free(sealed, sealed_len);
    return rc;
}

/* core/seal-config of an auto seal with these recovery counts. */
static void auto_config(char *out, size_t cap, int shares, int threshold)
{
    snprintf(out, cap,
             "{\"type\":\"%s\",\"secret_shares\":1,"
             "\"secret_threshold\":1,\"stored_shares\":1,"
             "\"recovery_shares\":%d,\"recovery_threshold\":%d}",
             autoseal->type, shares, threshold);
}

/*
 * Auto seal: the root key wrapped by the static key, and the recovery key
 * (whose shares the operators hold) sealed with the root key, so that it
 * is only readable once the static key opened the root key.
 */
static int store_auto(int shares, int threshold, const uint8_t *recovery_key,
                      const uint8_t *root_key, struct errbuf *err)
{
    char config[192];
    char *wrapped = NULL;
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    struct storage_op ops[3];
    int rc;

    auto_config(config, sizeof(config), shares, threshold);
    rc = autoseal->wrap(autoseal->ctx, ROOT_KEY, root_key, SEAL_KEY_LEN,
                        &wrapped, err);
    if (rc != 0)
        goto out;
    rc = barrier_seal_value(root_key, RECOVERY_KEY, recovery_key,
                            SEAL_KEY_LEN, &sealed, &sealed_len);
    if (rc != 0) {
        errbuf_set(err, "sealing the root key failed");
        goto out;
    }
    ops[0] = (struct storage_op){STORAGE_OP_PUT, CONFIG_KEY, config,
                                 strlen(config)};
    ops[1] = (struct storage_op){STORAGE_OP_PUT, ROOT_KEY, wrapped,
                                 strlen(wrapped)};
    ops[2] = (struct storage_op){STORAGE_OP_PUT, RECOVERY_KEY, sealed,
                                 sealed_len};
    rc = storage_batch(physical, ops, 3);
    if (rc != 0)
        errbuf_set(err, "storing the seal failed: %s", coffer_strerror(rc));
out:
    secure_free_str(wrapped);
    secure_free(sealed, sealed_len);
    return rc;
}

/*
 * Makes the keys, splits the first (unseal or recovery key) into shares,
 * stores the seal and creates the keyring with the second (root key).
 * secrets holds both keys; keys receives the shares.
 */
static int init_locked(int shares, int threshold, uint8_t *secrets,
                       uint8_t *keys, struct errbuf *err)
{
    int rc = crypto_random(secrets, 2 * SEAL_KEY_LEN);

    if (rc == 0)
        rc = shamir_split(secrets, SEAL_KEY_LEN, shares, threshold, keys,
                          err);
    /* The sealed root key first, the keyring last: the keyring is what
     * makes the server count as initialised, so a crash in between leaves
     * a server that can simply be initialised again. */
    if (rc == 0 && auto_active())
        rc = store_auto(shares, threshold, secrets, secrets + SEAL_KEY_LEN,
                        err);
    else if (rc == 0)
        rc = store_shamir(shares, threshold, secrets, secrets + SEAL_KEY_LEN,
                          err);
    if (rc == 0)
        rc = barrier_initialize(barrier, secrets + SEAL_KEY_LEN, err);
    return rc;
}

static int initialize(int shares, int threshold, uint8_t **shares_out,
                      struct errbuf *err)
{
    uint8_t *keys = NULL;
    uint8_t *secrets = NULL; /* unseal/recovery key | root key, locked */
    int rc;

    *shares_out = NULL;
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
    rc = init_locked(shares, threshold, secrets, keys, err);
    if (rc == 0) {
        *shares_out = keys;
        keys = NULL;
        log_info("seal: initialized with %d %sshares, threshold %d", shares,
                 auto_active() ? "recovery " : "", threshold);
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

int seal_init(int shares, int threshold, uint8_t **shares_out,
              struct errbuf *err)
{
    int rc;

    *shares_out = NULL;
    if (auto_active()) {
        errbuf_set(err, "seal \"%s\" takes recovery shares",
                   autoseal->type);
        return COFFER_EINVAL;
    }
    rc = check_params(shares, threshold, err);
    return rc == 0 ? initialize(shares, threshold, shares_out, err) : rc;
}

int seal_init_recovery(int shares, int threshold, uint8_t **shares_out,
                       struct errbuf *err)
{
    struct errbuf why;
    int rc;

    *shares_out = NULL;
    if (!auto_active()) {
        errbuf_set(err, "recovery shares need an auto-unseal seal");
        return COFFER_EINVAL;
    }
    if (shares < 1) {
        errbuf_set(err, "recovery configuration must specify a positive "
                        "number of shares");
        return COFFER_EINVAL;
    }
    rc = shamir_check_config(shares, threshold, &why);
    if (rc != 0) {
        errbuf_set(err, "invalid recovery configuration: %s", why.msg);
        return rc;
    }
    return initialize(shares, threshold, shares_out, err);
}

/* ========================================================= auto seal == */

void seal_set_static(const struct seal_static *s)
{
    if (s != NULL)
        seal_static_wrapper(s, &static_wrapper);
    seal_set_wrapper(s != NULL ? &static_wrapper : NULL);
}

void seal_set_wrapper(const struct seal_wrapper *w)
{
    autoseal = w;
}

void seal_set_static_disabled(bool disabled)
{
    static_disabled = disabled;
}

bool seal_is_auto(void)
{
    return auto_active();
}

const char *seal_type_name(void)
{
    return auto_active() ? autoseal->type : "shamir";
}

static enum migration migration_of(const struct stored_config *c)
{
    bool stored_static =
        autoseal != NULL && strcmp(c->type, autoseal->type) == 0;

    if (auto_active() && strcmp(c->type, "shamir") == 0)
        return MIGRATE_TO_AUTO;
    if (autoseal != NULL && static_disabled && stored_static)
        return MIGRATE_TO_SHAMIR;
    return MIGRATE_NONE;
}

/* The stored seal must be the configured one, or be migrated from. */
static int check_type(const struct stored_config *c, struct errbuf *err)
{
    if (strcmp(c->type, seal_type_name()) == 0 ||
        migration_of(c) != MIGRATE_NONE)
        return 0;
    if (auto_active())
        errbuf_set(err, "the stored seal is %s but the configuration has "
                        "seal \"%s\"", c->type, autoseal->type);
    else if (autoseal != NULL)
        errbuf_set(err, "the stored seal is \"%s\": the disabled seal "
                        "\"%s\" can only be migrated from", c->type,
                   autoseal->type);
    else
        errbuf_set(err, "the stored seal is \"%s\": the configuration "
                        "needs its seal \"%s\" stanza", c->type, c->type);
    return COFFER_EINVAL;
}

/*
 * Rotation: wraps the root key again with the current key. Failing only
 * costs another rewrap at the next start, so it is a warning.
 */
static void rewrap_root(const uint8_t *root)
{
    char *wrapped = NULL;
    struct errbuf err;
    int rc = autoseal->wrap(autoseal->ctx, ROOT_KEY, root, SEAL_KEY_LEN,
                            &wrapped, &err);

    if (rc == 0)
        rc = storage_put(physical, ROOT_KEY, wrapped, strlen(wrapped));
    if (rc == 0)
        log_info("seal: the root key is now wrapped with key id \"%s\" "
                 "(it was wrapped with previous_key)",
                 autoseal->key_name(autoseal->ctx));
    else
        log_warn("seal: re-wrapping the root key with current_key failed: "
                 "%s", coffer_strerror(rc));
    secure_free_str(wrapped);
}

/* Opens the root key with the static key into root[SEAL_KEY_LEN]. */
static int unwrap_root(uint8_t *root, struct errbuf *err)
{
    struct buf stored;
    bool previous = false;
    size_t len = 0;
    int rc;

    buf_init(&stored, 4096);
    rc = storage_get(physical, ROOT_KEY, &stored);
    if (rc != 0)
        errbuf_set(err, "reading the root key failed: %s",
                   coffer_strerror(rc));
    if (rc == 0)
        rc = autoseal->unwrap(autoseal->ctx, ROOT_KEY, stored.ptr,
                              stored.len, root, SEAL_KEY_LEN, &len,
                              &previous, err);
    if (rc == 0 && len != SEAL_KEY_LEN) {
        errbuf_set(err, "the unwrapped root key has the wrong length");
        rc = COFFER_EPERM;
    }
    if (rc == 0 && previous)
        rewrap_root(root);
    buf_release(&stored);
    return rc;
}

int seal_auto_unseal(struct errbuf *err)
{
    uint8_t root[SEAL_KEY_LEN];
    struct stored_config c;
    int rc;

    if (!auto_active()) {
        errbuf_set(err, "no auto-unseal seal is configured");
        return COFFER_EINVAL;
    }
    pthread_mutex_lock(&mu);
    if (!barrier_initialized(barrier) || read_config(&c) != 0) {
        errbuf_set(err, "Vault is not initialized");
        rc = COFFER_ENOTFOUND;
        goto out;
    }
    rc = 0;
    if (!barrier_sealed(barrier))
        goto out;
    rc = check_type(&c, err);
    if (rc == 0 && migration_of(&c) != MIGRATE_NONE) {
        errbuf_set(err, "seal migration is pending: migrating from %s "
                        "needs its shares given to sys/unseal with "
                        "\"migrate\": true", c.type);
        rc = COFFER_EINVAL;
    }
    if (rc == 0)
        rc = unwrap_root(root, err);
    if (rc == 0)
        rc = barrier_unseal(barrier, root, err);
    crypto_wipe(root, sizeof(root));
    if (rc == 0) {
        forget_shares_locked();
        log_info("seal: unsealed with seal \"%s\" (key \"%s\")",
                 autoseal->type, autoseal->key_name(autoseal->ctx));
    }
out:
    pthread_mutex_unlock(&mu);
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

/*
 * Reads the key sealed at slot (named what in errors) and opens it with
 * key into out[SEAL_KEY_LEN]. COFFER_EPERM (no words) when key does not
 * open it.
 */
static int open_sealed_key(const char *slot, const char *what,
                           const uint8_t *key, uint8_t *out,
                           struct errbuf *err)
{
    struct buf stored;
    uint8_t *opened = NULL;
    size_t opened_len = 0;
    int rc;

    buf_init(&stored, 4096);
    rc = storage_get(physical, slot, &stored);
    if (rc != 0)
        errbuf_set(err, "reading the %s failed: %s", what,
                   coffer_strerror(rc));
    if (rc == 0 && (barrier_open_value(key, slot, stored.ptr, stored.len,
                                       &opened, &opened_len) != 0 ||
                    opened_len != SEAL_KEY_LEN))
        rc = COFFER_EPERM;
    if (rc == 0)
        memcpy(out, opened, SEAL_KEY_LEN);
    secure_free(opened, opened_len);
    buf_release(&stored);
    return rc;
}

/*
 * Shamir: opens the stored root key with an unseal key into
 * root[SEAL_KEY_LEN]. COFFER_EPERM (no words) when the key is wrong.
 */
static int open_root(const uint8_t *unseal_key, uint8_t *root,
                     struct errbuf *err)
{
    return open_sealed_key(ROOT_KEY, "root key", unseal_key, root, err);
}

/* Opens the root key with the recombined unseal key and unseals. */
static int open_with(const uint8_t *unseal_key, struct errbuf *err)
{
    uint8_t root[SEAL_KEY_LEN];
    int rc = open_root(unseal_key, root, err);

    if (rc == COFFER_EPERM)
        errbuf_set(err, "Unseal failed, invalid key");
    if (rc == 0)
        rc = barrier_unseal(barrier, root, err);
    crypto_wipe(root, sizeof(root));
    return rc;
}

/*
 * Auto seal, sealed by sys/seal: the recombined recovery key must match
 * the stored one (Vault's VerifyRecoveryKey), then the static key opens
 * the root key.
 */
static int open_with_recovery(const uint8_t *recovery_key,
                              struct errbuf *err)
{
    uint8_t root[SEAL_KEY_LEN];
    struct buf stored;
    uint8_t *expected = NULL;
    size_t expected_len = 0;
    int rc;

    buf_init(&stored, 4096);
    rc = unwrap_root(root, err);
    if (rc == 0)
        rc = storage_get(physical, RECOVERY_KEY, &stored);
    if (rc == 0)
        rc = barrier_open_value(root, RECOVERY_KEY, stored.ptr, stored.len,
                                &expected, &expected_len);
    if (rc == 0 && !crypto_equal(expected, expected_len, recovery_key,
                                 SEAL_KEY_LEN))
        rc = COFFER_EPERM;
    if (rc != 0 && err->msg[0] == '\0')
        errbuf_set(err, "Unseal failed, invalid key");
    if (rc == 0)
        rc = barrier_unseal(barrier, root, err);
    crypto_wipe(root, sizeof(root));
    secure_free(expected, expected_len);
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

/* The stored seal counts recovery shares (an auto seal). */
static bool stored_auto(const struct stored_config *c)
{
    return strcmp(c->type, "shamir") != 0;
}

/* The number of shares that opens the stored seal (unseal or recovery);
 * during a migration, the seal migrated from. */
static int unseal_threshold(const struct stored_config *c)
{
    return stored_auto(c) ? c->recovery_threshold : c->threshold;
}

/*
 * Shamir -> static: the recombined unseal key opens the root key, which
 * is wrapped with the static key; the old unseal key becomes the recovery
 * key (Vault), so the operators' shares keep working. One batch.
 */
static int migrate_to_auto(const struct stored_config *c,
                           const uint8_t *unseal_key, struct errbuf *err)
{
    uint8_t root[SEAL_KEY_LEN];
    int rc = open_root(unseal_key, root, err);

    if (rc == COFFER_EPERM)
        errbuf_set(err, "Unseal failed, invalid key");
    if (rc == 0)
        rc = store_auto(c->shares, c->threshold, unseal_key, root, err);
    if (rc == 0)
        rc = barrier_unseal(barrier, root, err);
    crypto_wipe(root, sizeof(root));
    if (rc == 0)
        log_info("seal: migrated from Shamir to seal \"%s\" (key "
                 "\"%s\"); the unseal shares are now recovery shares",
                 autoseal->type, autoseal->key_name(autoseal->ctx));
    return rc;
}

static int check_recovery(const uint8_t *root, const uint8_t *key,
                          struct errbuf *err);

/*
 * static -> Shamir: the static key opens the root key, the recombined
 * recovery key must be the stored one and becomes the unseal key that
 * wraps the root key; the recovery key is dropped. One batch.
 */
static int migrate_to_shamir(const struct stored_config *c,
                             const uint8_t *recovery_key, struct errbuf *err)
{
    uint8_t root[SEAL_KEY_LEN];
    int rc = unwrap_root(root, err);

    if (rc == 0 && check_recovery(root, recovery_key, err) != 0) {
        errbuf_set(err, "Unseal failed, invalid key");
        rc = COFFER_EPERM;
    }
    if (rc == 0)
        rc = store_shamir(c->recovery_shares, c->recovery_threshold,
                          recovery_key, root, err);
    if (rc == 0)
        rc = barrier_unseal(barrier, root, err);
    crypto_wipe(root, sizeof(root));
    if (rc == 0)
        log_info("seal: migrated from seal \"%s\" to Shamir; the "
                 "recovery shares are now unseal shares", c->type);
    return rc;
}

/* Opens the stored seal with the recombined key, migrating if pending. */
static int open_stored(const struct stored_config *c, const uint8_t *key,
                       struct errbuf *err)
{
    switch (migration_of(c)) {
    case MIGRATE_TO_AUTO:
        return migrate_to_auto(c, key, err);
    case MIGRATE_TO_SHAMIR:
        return migrate_to_shamir(c, key, err);
    case MIGRATE_NONE:
        break;
    }
    return auto_active() ? open_with_recovery(key, err) : open_with(key, err);
}

int seal_submit_share(const uint8_t *share, size_t len, bool *unsealed,
                      struct errbuf *err)
{
    uint8_t key[SEAL_KEY_LEN];
    const uint8_t *parts[SHAMIR_MAX_PARTS];
    struct stored_config c;
    int rc;

    *unsealed = false;
    if (len != SEAL_SHARE_LEN) {
        errbuf_set(err, "invalid key: key is %s than %s %d bytes",
                   len < SEAL_SHARE_LEN ? "shorter" : "longer",
                   len < SEAL_SHARE_LEN ? "minimum" : "maximum",
                   SEAL_SHARE_LEN);
        return COFFER_EINVAL;
    }
    pthread_mutex_lock(&mu);
    rc = read_config(&c);
    if (rc != 0 || !barrier_initialized(barrier)) {
        errbuf_set(err, "Vault is not initialized");
        rc = COFFER_EINVAL;
        goto out;
    }
    if (!barrier_sealed(barrier) || already_given_locked(share, len))
        goto out; /* Vault ignores a repeated share */
    rc = check_type(&c, err);
    if (rc != 0 || unseal_threshold(&c) < 1) {
        if (rc == 0)
            errbuf_set(err, "the stored recovery configuration is invalid");
        rc = COFFER_EINVAL;
        goto out;
    }
    if (ngiven == 0)
        crypto_uuid(nonce);
    memcpy(given[ngiven++], share, SEAL_SHARE_LEN);
    if (ngiven < unseal_threshold(&c))
        goto out;
    for (int i = 0; i < ngiven; i++)
        parts[i] = given[i];
    errbuf_clear(err);
    rc = shamir_combine(parts, ngiven, SEAL_SHARE_LEN, key, err);
    if (rc == 0)
        rc = open_stored(&c, key, err);
    crypto_wipe(key, sizeof(key));
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
    struct stored_config c;

    pthread_mutex_lock(&mu);
    memset(out, 0, sizeof(*out));
    out->initialized = read_config(&c) == 0 && barrier_initialized(barrier);
    out->recovery_seal = auto_active();
    out->migration = out->initialized && migration_of(&c) != MIGRATE_NONE;
    /* Vault: once initialised, an auto seal shows its recovery config,
     * whose type is shamir; before that, the barrier seal's type. */
    snprintf(out->type, sizeof(out->type), "%s",
             out->initialized ? "shamir" : seal_type_name());
    /* The counts of the shares that open the stored seal. */
    if (out->initialized && stored_auto(&c)) {
        out->shares = c.recovery_shares;
        out->threshold = c.recovery_threshold;
    } else if (out->initialized) {
        out->shares = c.shares;
        out->threshold = c.threshold;
    }
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

/* ================================================= operator commands == */

int seal_key_config(int *threshold, int *shares)
{
    struct stored_config c;
    int rc;

    *threshold = *shares = 0;
    pthread_mutex_lock(&mu);
    rc = read_config(&c) == 0 && barrier_initialized(barrier)
             ? 0
             : COFFER_ENOTFOUND;
    if (rc == 0) {
        *threshold = unseal_threshold(&c);
        *shares = stored_auto(&c) ? c.recovery_shares : c.shares;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

/* Auto seal: the stored recovery key matches key. */
static int check_recovery(const uint8_t *root, const uint8_t *key,
                          struct errbuf *err)
{
    uint8_t expected[SEAL_KEY_LEN];
    int rc = open_sealed_key(RECOVERY_KEY, "recovery key", root, expected,
                             err);

    if (rc == 0 && !crypto_equal(expected, SEAL_KEY_LEN, key, SEAL_KEY_LEN))
        rc = COFFER_EPERM;
    crypto_wipe(expected, sizeof(expected));
    return rc;
}

/*
 * Recombines the shares and checks the key they make; the root key is
 * left in root[SEAL_KEY_LEN]. mu held, the barrier unsealed.
 */
static int verify_locked(const uint8_t *const *parts, int n, uint8_t *root,
                         struct errbuf *err)
{
    uint8_t key[SEAL_KEY_LEN];
    struct errbuf why;
    int rc;

    errbuf_clear(&why);
    rc = shamir_combine(parts, n, SEAL_SHARE_LEN, key, &why);
    if (rc == 0 && auto_active()) {
        rc = unwrap_root(root, &why);
        if (rc == 0)
            rc = check_recovery(root, key, &why);
    } else if (rc == 0) {
        rc = open_root(key, root, &why);
    }
    crypto_wipe(key, sizeof(key));
    if (rc != 0) {
        crypto_wipe(root, SEAL_KEY_LEN);
        errbuf_set(err, "%s key verification failed: %s",
                   auto_active() ? "recovery" : "root",
                   why.msg[0] != '\0' ? why.msg : "invalid key");
        rc = COFFER_EPERM;
    }
    return rc;
}

static int check_unsealed_locked(struct errbuf *err)
{
    if (barrier_initialized(barrier) && !barrier_sealed(barrier))
        return 0;
    errbuf_set(err, "Vault is sealed");
    return COFFER_ESEALED;
}

int seal_verify_shares(const uint8_t *const *parts, int n,
                       struct errbuf *err)
{
    uint8_t root[SEAL_KEY_LEN];
    int rc;

    pthread_mutex_lock(&mu);
    rc = check_unsealed_locked(err);
    if (rc == 0)
        rc = verify_locked(parts, n, root, err);
    crypto_wipe(root, sizeof(root));
    pthread_mutex_unlock(&mu);
    return rc;
}

/* Auto seal: the new recovery config and key, in one batch. */
static int store_recovery(int shares, int threshold,
                          const uint8_t *recovery_key, const uint8_t *root,
                          struct errbuf *err)
{
    char config[192];
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    struct storage_op ops[2];
    int rc;

    auto_config(config, sizeof(config), shares, threshold);
    rc = barrier_seal_value(root, RECOVERY_KEY, recovery_key, SEAL_KEY_LEN,
                            &sealed, &sealed_len);
    if (rc != 0) {
        errbuf_set(err, "sealing the recovery key failed");
        return rc;
    }
    ops[0] = (struct storage_op){STORAGE_OP_PUT, CONFIG_KEY, config,
                                 strlen(config)};
    ops[1] = (struct storage_op){STORAGE_OP_PUT, RECOVERY_KEY, sealed,
                                 sealed_len};
    rc = storage_batch(physical, ops, 2);
    if (rc != 0)
        errbuf_set(err, "storing the new keys failed: %s",
                   coffer_strerror(rc));
    secure_free(sealed, sealed_len);
    return rc;
}

/* Makes, splits and stores the new key. mu held, root the root key. */
static int rekey_locked(const uint8_t *root, int shares, int threshold,
                        uint8_t *keys, struct errbuf *err)
{
    uint8_t fresh[SEAL_KEY_LEN];
    int rc = crypto_random(fresh, sizeof(fresh));

    if (rc != 0)
        errbuf_set(err, "the random generator failed");
    if (rc == 0)
        rc = shamir_split(fresh, SEAL_KEY_LEN, shares, threshold, keys, err);
    if (rc == 0 && auto_active())
        rc = store_recovery(shares, threshold, fresh, root, err);
    else if (rc == 0)
        rc = store_shamir(shares, threshold, fresh, root, err);
    crypto_wipe(fresh, sizeof(fresh));
    return rc;
}

int seal_rekey(const uint8_t *const *parts, int n, int new_shares,
               int new_threshold, uint8_t **shares_out, struct errbuf *err)
{
    uint8_t root[SEAL_KEY_LEN];
    uint8_t *keys = NULL;
    size_t keys_len = 0;
    struct errbuf why;
    int rc;

    *shares_out = NULL;
    rc = shamir_check_config(new_shares, new_threshold, &why);
    if (rc != 0) {
        errbuf_set(err, "invalid %s configuration: %s",
                   auto_active() ? "recovery" : "seal", why.msg);
        return rc;
    }
    keys_len = (size_t)new_shares * SEAL_SHARE_LEN;
    keys = xmalloc(keys_len);
    if (mlock(keys, keys_len) != 0)
        log_debug("seal: cannot lock the new shares in memory");
    pthread_mutex_lock(&mu);
    rc = check_unsealed_locked(err);
    if (rc == 0)
        rc = verify_locked(parts, n, root, err);
    if (rc == 0)
        rc = rekey_locked(root, new_shares, new_threshold, keys, err);
    crypto_wipe(root, sizeof(root));
    pthread_mutex_unlock(&mu);
    if (rc == 0) {
        log_info("seal: rekeyed: %d %sshares, threshold %d", new_shares,
                 auto_active() ? "recovery " : "", new_threshold);
        *shares_out = keys;
        keys = NULL;
    }
    secure_free(keys, keys_len);
    return rc;
}
