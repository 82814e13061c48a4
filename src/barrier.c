/*
 * barrier.c - encryption at rest (see barrier.h for the envelope).
 *
 * Owns: the keyring (in locked memory), the encrypting storage view and the
 * one-shot seal/open helpers. It does not own the root key's life outside
 * a call (seal.c does), nor the physical backend (borrowed).
 *
 * Concurrency. Two locks:
 *
 *   lock   rwlock, writer-preferring. Readers are the data path: every
 *          encryption and decryption runs under it, so the keyring cannot
 *          be wiped or swapped under a running cipher. Writers are seal,
 *          unseal, initialise and the swap at the end of a rotation.
 *   admin  mutex serialising key management (initialise, unseal, seal,
 *          rotate), so that a rotation can persist the new keyring without
 *          holding `lock` across storage I/O.
 *
 * Storage I/O never happens under `lock` (Vault's barrier does the same):
 * a put encrypts under the read lock, releases it, then writes; a get reads,
 * then takes the read lock to decrypt. A rotation writes the new keyring
 * before it installs it, so no value is ever stored under a term that is
 * not yet on disk.
 *
 * Cipher contexts. Setting up an EVP_CIPHER_CTX costs more than sealing a
 * 200-byte value (PERF_NOTES: 1.2 us reused against 3.2 us fresh), so the
 * barrier keeps a pool of contexts. Each remembers the term it was keyed
 * for; a context keyed for the right term only gets a new nonce, which
 * also skips the AES key expansion. A context is taken and given back
 * under the read lock, so when seal holds the write lock every context is
 * in the pool and seal frees them all (OpenSSL wipes the key schedule).
 *
 * Nonces are 96 random bits per write (drawn from RAND_bytes in batches,
 * see slot_nonce). NIST SP 800-38D bounds random
 * nonces to 2^32 messages per key; key-status reports the count since the
 * term was installed so an operator can rotate long before that.
 */
#include "barrier.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "buf.h"
#include "crypto.h"
#include "log.h"
#include "storage.h"

#define KEYRING_KEY "core/keyring"

/* Envelope: | version | term (4, BE) | nonce (12) | ciphertext | tag (16) | */
#define ENV_VERSION 0x01
#define NONCE_LEN 12
#define TAG_LEN 16
#define NONCE_BATCH 64 /* nonces drawn per RAND_bytes call */
#define ENV_HDR_LEN (1 + 4 + NONCE_LEN)
#define ENV_OVERHEAD (ENV_HDR_LEN + TAG_LEN)
/* EVP takes int lengths; leave room for the envelope. */
#define ENV_MAX_PLAIN ((size_t)INT_MAX - 64)

/* Serialised keyring: | version | count (4) | count x term entry | */
#define KR_VERSION 0x01
#define KR_HDR_LEN (1 + 4)
#define KR_ENTRY_LEN (4 + 8 + BARRIER_KEY_LEN)

/* Keys the seal owns; they are stored as given, not encrypted. */
static const char *const passthrough_keys[] = {
    "core/seal-config",
    "core/root-key",
};

/* ============================================== locked memory ====== */

/*
 * Key material lives in its own anonymous mapping, locked against swap
 * (mlock) and left out of core dumps (MADV_DONTDUMP). The mapping starts
 * with a small header recording its size and whether the lock took, so
 * freeing needs only the pointer:
 *
 *   | secmem_hdr (32 bytes) | caller's bytes ... | unused to page end |
 *
 * A process without CAP_IPC_LOCK and a small RLIMIT_MEMLOCK may be
 * refused; we then log once and go on with unlocked (still wiped) memory.
 */
struct secmem_hdr {
    size_t total;
    int locked;
};
#define SECMEM_HDR_LEN 32

static atomic_flag mlock_warned = ATOMIC_FLAG_INIT;

/* Returns zeroed memory for n bytes; aborts on out-of-memory like xmalloc. */
static void *secmem_alloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t total;
    struct secmem_hdr hdr;
    unsigned char *p;

    COFFER_ASSERT(n <= SIZE_MAX - SECMEM_HDR_LEN - page);
    total = (n + SECMEM_HDR_LEN + page - 1) / page * page;
    p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        log_error("barrier: cannot map %zu bytes for key material", total);
        abort();
    }
    hdr.total = total;
    hdr.locked = mlock(p, total) == 0;
    if (!hdr.locked && !atomic_flag_test_and_set(&mlock_warned))
        log_warn("barrier: mlock refused; key material may be swapped "
                 "(raise RLIMIT_MEMLOCK or grant CAP_IPC_LOCK)");
#ifdef MADV_DONTDUMP
    if (madvise(p, total, MADV_DONTDUMP) != 0)
        log_debug("barrier: madvise(MADV_DONTDUMP) refused");
#endif
    memcpy(p, &hdr, sizeof(hdr));
    return p + SECMEM_HDR_LEN;
}

/* Wipes, unlocks and unmaps memory from secmem_alloc. NULL is fine. */
static void secmem_free(void *q)
{
    unsigned char *p;
    struct secmem_hdr hdr;

    if (q == NULL)
        return;
    p = (unsigned char *)q - SECMEM_HDR_LEN;
    memcpy(&hdr, p, sizeof(hdr));
    OPENSSL_cleanse(p, hdr.total);
    if (hdr.locked && munlock(p, hdr.total) != 0)
        log_debug("barrier: munlock failed");
    if (munmap(p, hdr.total) != 0)
        log_error("barrier: munmap of key material failed");
}

/* ==================================================== keyring ====== */

struct term_key {
    uint32_t term;
    int64_t install_time; /* unix seconds */
    uint8_t key[BARRIER_KEY_LEN];
};

/*
 * One secmem mapping. Terms are in ascending order; the last one is the
 * active (encrypting) term. The root key is kept to re-seal the keyring
 * when a rotation adds a term.
 */
struct keyring {
    uint8_t root_key[BARRIER_KEY_LEN];
    size_t n;
    struct term_key terms[];
};

static struct keyring *keyring_alloc(size_t n)
{
    struct keyring *kr;

    COFFER_ASSERT(n < SIZE_MAX / sizeof(struct term_key) - 1);
    kr = secmem_alloc(sizeof(*kr) + n * sizeof(struct term_key));
    kr->n = n;
    return kr;
}

static const struct term_key *keyring_active(const struct keyring *kr)
{
    return &kr->terms[kr->n - 1];
}

/* The key for term, or NULL. The active term is by far the most common. */
static const struct term_key *keyring_find(const struct keyring *kr,
                                           uint32_t term)
{
    for (size_t i = kr->n; i > 0; i--) {
        if (kr->terms[i - 1].term == term)
            return &kr->terms[i - 1];
    }
    return NULL;
}

/* Fills tk with a new random key for term, installed now. */
static int term_key_make(struct term_key *tk, uint32_t term)
{
    tk->term = term;
    tk->install_time = (int64_t)time(NULL);
    return RAND_bytes(tk->key, BARRIER_KEY_LEN) == 1 ? 0 : COFFER_EINTERNAL;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/*
 * The keyring as stored (before sealing with the root key under AAD
 * "core/keyring"; integers big-endian):
 *
 *   +------+-----------+------------------------------------------+
 *   | 0x01 | count (4) | entry 1 | entry 2 | ... | entry count     |
 *   +------+-----------+------------------------------------------+
 *   entry: | term (4) | install time, unix s (8, signed) | key (32) |
 *
 * Terms are strictly ascending; the last one encrypts. Writes into out,
 * which holds keyring_wire_len(kr) bytes.
 */
static size_t keyring_wire_len(const struct keyring *kr)
{
    return KR_HDR_LEN + kr->n * KR_ENTRY_LEN;
}

static void keyring_encode(const struct keyring *kr, uint8_t *out)
{
    out[0] = KR_VERSION;
    put_be32(out + 1, (uint32_t)kr->n);
    out += KR_HDR_LEN;
    for (size_t i = 0; i < kr->n; i++, out += KR_ENTRY_LEN) {
        put_be32(out, kr->terms[i].term);
        put_be64(out + 4, (uint64_t)kr->terms[i].install_time);
        memcpy(out + 12, kr->terms[i].key, BARRIER_KEY_LEN);
    }
}

/* A new keyring from its wire form, or NULL if it is malformed. */
static struct keyring *keyring_decode(const uint8_t *in, size_t len,
                                      const uint8_t *root_key)
{
    struct keyring *kr;
    uint32_t n;

    if (len < KR_HDR_LEN || in[0] != KR_VERSION)
        return NULL;
    n = get_be32(in + 1);
    if (n == 0 || (len - KR_HDR_LEN) / KR_ENTRY_LEN != n ||
        (len - KR_HDR_LEN) % KR_ENTRY_LEN != 0)
        return NULL;
    kr = keyring_alloc(n);
    memcpy(kr->root_key, root_key, BARRIER_KEY_LEN);
    in += KR_HDR_LEN;
    for (uint32_t i = 0; i < n; i++, in += KR_ENTRY_LEN) {
        struct term_key *tk = &kr->terms[i];

        tk->term = get_be32(in);
        tk->install_time = (int64_t)get_be64(in + 4);
        memcpy(tk->key, in + 12, BARRIER_KEY_LEN);
        if (tk->term == 0 || (i > 0 && tk->term <= kr->terms[i - 1].term)) {
            secmem_free(kr);
            return NULL;
        }
    }
    return kr;
}

/* ============================================ AES-256-GCM core ====== */

/*
 * A pooled context. `keyed` and `term` say which key its schedule holds;
 * GCM runs AES forwards in both directions, so one schedule serves
 * encryption and decryption.
 */
struct cipher_slot {
    EVP_CIPHER_CTX *ctx;
    uint32_t term;
    bool keyed;
    unsigned int nonce_left; /* unused nonces at the front of nonces[] */
    unsigned int nonce_gen;  /* fork_gen when nonces[] was filled */
    uint8_t nonces[NONCE_BATCH * NONCE_LEN];
    struct cipher_slot *next;
};

/*
 * Nonces come from RAND_bytes in batches: a 12-byte RAND_bytes call costs
 * about 0.65 us, half of a whole seal+open of 200 bytes, while 768 bytes
 * cost 0.8 us. Each nonce is still fresh CSPRNG output used once. A forked
 * child would inherit the parent's unused nonces and reuse them under the
 * same key, which breaks GCM; the atfork hook bumps fork_gen so every slot
 * refills after a fork.
 */
static atomic_uint fork_gen;
static pthread_once_t fork_hook_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void fork_hook_install(void)
{
    COFFER_ASSERT(pthread_atfork(NULL, NULL, on_fork_child) == 0);
}

static int slot_nonce(struct cipher_slot *s, uint8_t *out)
{
    unsigned int gen = atomic_load(&fork_gen);

    if (s->nonce_left == 0 || s->nonce_gen != gen) {
        if (RAND_bytes(s->nonces, sizeof(s->nonces)) != 1)
            return COFFER_EINTERNAL;
        s->nonce_left = NONCE_BATCH;
        s->nonce_gen = gen;
    }
    s->nonce_left--;
    memcpy(out, s->nonces + (size_t)s->nonce_left * NONCE_LEN, NONCE_LEN);
    return 0;
}

/*
 * Starts an operation: a context already keyed for term only takes the
 * new nonce; otherwise it is (re)keyed. cipher NULL means a fresh
 * one-shot context (then the built-in cipher object is used).
 */
static int slot_begin(struct cipher_slot *s, const EVP_CIPHER *cipher,
                      const struct term_key *tk, const uint8_t *nonce,
                      int enc)
{
    int ok;

    if (s->keyed && s->term == tk->term) {
        ok = EVP_CipherInit_ex(s->ctx, NULL, NULL, NULL, nonce, enc);
    } else {
        ok = EVP_CipherInit_ex(s->ctx, cipher ? cipher : EVP_aes_256_gcm(),
                               NULL, tk->key, nonce, enc);
    }
    s->keyed = ok == 1;
    s->term = tk->term;
    return ok == 1 ? 0 : COFFER_EINTERNAL;
}

/*
 * Seals len bytes of in into out (len + ENV_OVERHEAD bytes) as the
 * envelope of barrier.h, with a fresh random nonce.
 */
static int gcm_seal(struct cipher_slot *s, const EVP_CIPHER *cipher,
                    const struct term_key *tk, const char *aad,
                    const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t *nonce = out + 5, *ct = out + ENV_HDR_LEN, *tag = ct + len;
    size_t aadlen = strlen(aad);
    int outl = 0, finl = 0;

    if (len > ENV_MAX_PLAIN || aadlen > INT_MAX)
        return COFFER_ETOOBIG;
    out[0] = ENV_VERSION;
    put_be32(out + 1, tk->term);
    if (slot_nonce(s, nonce) != 0)
        return COFFER_EINTERNAL;
    if (slot_begin(s, cipher, tk, nonce, 1) != 0)
        return COFFER_EINTERNAL;
    if ((aadlen > 0 &&
         EVP_EncryptUpdate(s->ctx, NULL, &outl, (const uint8_t *)aad,
                           (int)aadlen) != 1) ||
        (len > 0 && EVP_EncryptUpdate(s->ctx, ct, &outl, in, (int)len) != 1) ||
        EVP_EncryptFinal_ex(s->ctx, ct + outl, &finl) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, tag) != 1) {
        s->keyed = false;
        return COFFER_EINTERNAL;
    }
    return 0;
}

/*
 * Opens ctlen bytes of ct into out (ctlen bytes; out may equal ct) with
 * nonce and tag from the envelope. COFFER_EPERM when the tag does not
 * verify; out then holds unauthenticated bytes that the caller wipes.
 */
static int gcm_open(struct cipher_slot *s, const EVP_CIPHER *cipher,
                    const struct term_key *tk, const char *aad,
                    const uint8_t *nonce, const uint8_t *ct, size_t ctlen,
                    const uint8_t *tag, uint8_t *out)
{
    size_t aadlen = strlen(aad);
    uint8_t tagbuf[TAG_LEN];
    int outl = 0, finl = 0, rc = 0;

    if (ctlen > ENV_MAX_PLAIN || aadlen > INT_MAX)
        return COFFER_ETOOBIG;
    memcpy(tagbuf, tag, TAG_LEN); /* SET_TAG takes a non-const pointer */
    if (slot_begin(s, cipher, tk, nonce, 0) != 0)
        return COFFER_EINTERNAL;
    if ((aadlen > 0 &&
         EVP_DecryptUpdate(s->ctx, NULL, &outl, (const uint8_t *)aad,
                           (int)aadlen) != 1) ||
        (ctlen > 0 &&
         EVP_DecryptUpdate(s->ctx, out, &outl, ct, (int)ctlen) != 1) ||
        EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tagbuf) !=
            1) {
        rc = COFFER_EINTERNAL;
    } else if (EVP_DecryptFinal_ex(s->ctx, out + outl, &finl) != 1) {
        rc = COFFER_EPERM;
    }
    if (rc != 0)
        s->keyed = false; /* start from a clean context next time */
    return rc;
}

/* ==================================================== barrier ====== */

struct barrier {
    struct storage view; /* backend = barrier_backend, ctx = this */
    struct storage *physical;

    pthread_rwlock_t lock;
    pthread_mutex_t admin;
    struct keyring *kr; /* NULL while sealed; under lock */
    atomic_bool sealed; /* fast-path hint; kr == NULL is the truth */
    atomic_bool initialized_seen;
    atomic_uint_fast64_t encryptions;

    EVP_CIPHER *cipher; /* AES-256-GCM, fetched once */
    pthread_mutex_t pool_lock;
    struct cipher_slot *pool;
};

static struct cipher_slot *slot_take(struct barrier *b)
{
    struct cipher_slot *s;

    pthread_mutex_lock(&b->pool_lock);
    s = b->pool;
    if (s != NULL)
        b->pool = s->next;
    pthread_mutex_unlock(&b->pool_lock);
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->ctx = EVP_CIPHER_CTX_new();
        COFFER_ASSERT(s->ctx != NULL);
    }
    return s;
}

static void slot_give(struct barrier *b, struct cipher_slot *s)
{
    pthread_mutex_lock(&b->pool_lock);
    s->next = b->pool;
    b->pool = s;
    pthread_mutex_unlock(&b->pool_lock);
}

/* Frees every pooled context; EVP_CIPHER_CTX_free wipes the schedule. */
static void pool_flush(struct barrier *b)
{
    struct cipher_slot *s, *next;

    pthread_mutex_lock(&b->pool_lock);
    s = b->pool;
    b->pool = NULL;
    pthread_mutex_unlock(&b->pool_lock);
    for (; s != NULL; s = next) {
        next = s->next;
        EVP_CIPHER_CTX_free(s->ctx);
        free(s);
    }
}

static bool is_passthrough(const char *key)
{
    for (size_t i = 0; i < ARRAY_LEN(passthrough_keys); i++) {
        if (strcmp(key, passthrough_keys[i]) == 0)
            return true;
    }
    return false;
}

/* The keyring is the barrier's own: the view neither reads nor writes it. */
static bool is_reserved(const char *key)
{
    return strcmp(key, KEYRING_KEY) == 0;
}

/*
 * Encrypts value for key with the active term. *out is a new buffer of
 * *out_len bytes (ciphertext; the caller frees it). ESEALED if sealed.
 */
static int seal_for_key(struct barrier *b, const char *key, const void *value,
                        size_t len, uint8_t **out, size_t *out_len)
{
    struct cipher_slot *s;
    uint8_t *ct;
    int rc;

    *out = NULL;
    if (len > ENV_MAX_PLAIN)
        return COFFER_ETOOBIG;
    ct = xmalloc(len + ENV_OVERHEAD);
    pthread_rwlock_rdlock(&b->lock);
    if (b->kr == NULL) {
        rc = COFFER_ESEALED;
    } else {
        s = slot_take(b);
        rc = gcm_seal(s, b->cipher, keyring_active(b->kr), key, value, len,
                      ct);
        slot_give(b, s);
    }
    pthread_rwlock_unlock(&b->lock);
    if (rc != 0) {
        free(ct);
        return rc;
    }
    atomic_fetch_add_explicit(&b->encryptions, 1, memory_order_relaxed);
    *out = ct;
    *out_len = len + ENV_OVERHEAD;
    return 0;
}

/*
 * Opens the stored value env for key and appends the plaintext to out.
 * The ciphertext is copied into out and decrypted in place, so the
 * plaintext exists only in the caller's buffer. On failure out is as it
 * was (unauthenticated bytes wiped) and the reason is logged with the key,
 * never the value: COFFER_EINTERNAL for a value that does not open,
 * COFFER_ESEALED, or COFFER_ETOOBIG from out's ceiling (out released).
 */
static int open_for_key(struct barrier *b, const char *key, const uint8_t *env,
                        size_t len, struct buf *out)
{
    const struct term_key *tk;
    struct cipher_slot *s;
    size_t old = out->len, ctlen;
    uint32_t term;
    int rc;

    if (len < ENV_OVERHEAD) {
        log_error("barrier: %s: value is truncated (%zu bytes)", key, len);
        return COFFER_EINTERNAL;
    }
    if (env[0] != ENV_VERSION) {
        log_error("barrier: %s: unknown envelope version %u", key, env[0]);
        return COFFER_EINTERNAL;
    }
    term = get_be32(env + 1);
    ctlen = len - ENV_OVERHEAD;
    rc = buf_append(out, env + ENV_HDR_LEN, ctlen);
    if (rc != 0)
        return rc;

    pthread_rwlock_rdlock(&b->lock);
    tk = b->kr != NULL ? keyring_find(b->kr, term) : NULL;
    if (b->kr == NULL) {
        rc = COFFER_ESEALED;
    } else if (tk == NULL) {
        rc = COFFER_ENOTFOUND;
    } else {
        s = slot_take(b);
        rc = gcm_open(s, b->cipher, tk, key, env + 5,
                      (uint8_t *)out->ptr + old, ctlen, env + len - TAG_LEN,
                      (uint8_t *)out->ptr + old);
        slot_give(b, s);
    }
    pthread_rwlock_unlock(&b->lock);

    if (rc == 0)
        return 0;
    OPENSSL_cleanse(out->ptr + old, ctlen);
    out->len = old;
    out->ptr[old] = '\0';
    if (rc == COFFER_ENOTFOUND)
        log_error("barrier: %s: no key for term %u", key, term);
    else if (rc == COFFER_EPERM)
        log_error("barrier: %s: cipher: message authentication failed", key);
    else if (rc != COFFER_ESEALED)
        log_error("barrier: %s: decryption failed", key);
    return rc == COFFER_ESEALED ? rc : COFFER_EINTERNAL;
}

/* ================================================ storage view ====== */

static bool view_sealed(struct barrier *b)
{
    return atomic_load_explicit(&b->sealed, memory_order_acquire);
}

static int view_get(void *ctx, const char *key, struct buf *out)
{
    struct barrier *b = ctx;
    struct buf raw;
    int rc;

    if (view_sealed(b))
        return COFFER_ESEALED;
    if (is_reserved(key))
        return COFFER_EPERM;
    buf_init(&raw, 0);
    rc = storage_get(b->physical, key, &raw);
    if (rc == 0 && is_passthrough(key))
        rc = buf_append(out, raw.ptr, raw.len);
    else if (rc == 0)
        rc = open_for_key(b, key, (const uint8_t *)raw.ptr, raw.len, out);
    buf_release(&raw);
    return rc;
}

static int view_put(void *ctx, const char *key, const void *value, size_t len)
{
    struct barrier *b = ctx;
    uint8_t *ct = NULL;
    size_t ctlen = 0;
    int rc;

    if (view_sealed(b))
        return COFFER_ESEALED;
    if (is_reserved(key))
        return COFFER_EPERM;
    if (is_passthrough(key))
        return storage_put(b->physical, key, value, len);
    rc = seal_for_key(b, key, value, len, &ct, &ctlen);
    if (rc == 0)
        rc = storage_put(b->physical, key, ct, ctlen);
    free(ct);
    return rc;
}

static int view_del(void *ctx, const char *key)
{
    struct barrier *b = ctx;

    if (view_sealed(b))
        return COFFER_ESEALED;
    if (is_reserved(key))
        return COFFER_EPERM;
    return storage_delete(b->physical, key);
}

/* Keys are not secret (Vault's barrier lists through as well). */
static int view_list(void *ctx, const char *prefix, struct strvec *out)
{
    struct barrier *b = ctx;

    if (view_sealed(b))
        return COFFER_ESEALED;
    return storage_list(b->physical, prefix, out);
}

/* Encrypts every PUT, then hands the whole batch down in one call. */
static int view_batch(void *ctx, const struct storage_op *ops, size_t n)
{
    struct barrier *b = ctx;
    struct storage_op *enc = NULL;
    uint8_t **cts = NULL;
    size_t done = 0;
    int rc = 0;

    if (view_sealed(b))
        return COFFER_ESEALED;
    for (size_t i = 0; i < n; i++) {
        if (is_reserved(ops[i].key))
            return COFFER_EPERM;
    }
    enc = xcalloc(n + 1, sizeof(*enc));
    cts = xcalloc(n + 1, sizeof(*cts));
    for (done = 0; done < n; done++) {
        enc[done] = ops[done];
        if (ops[done].kind != STORAGE_OP_PUT || is_passthrough(ops[done].key))
            continue;
        rc = seal_for_key(b, ops[done].key, ops[done].value, ops[done].len,
                          &cts[done], &enc[done].len);
        if (rc != 0)
            goto out;
        enc[done].value = cts[done];
    }
    rc = storage_batch(b->physical, enc, n);
out:
    for (size_t i = 0; i < done; i++)
        free(cts[i]);
    free(cts);
    free(enc);
    return rc;
}

struct scan_state {
    struct barrier *b;
    storage_scan_fn fn;
    void *arg;
    struct buf plain;
};

/*
 * Decrypts one scanned value and passes it on. A value that does not open
 * is logged by key and skipped, so one bad record cannot stop a start-up
 * restore; sealing during the scan stops it with COFFER_ESEALED.
 */
static int scan_one(void *arg, const char *key, const void *value, size_t len)
{
    struct scan_state *st = arg;
    int rc;

    if (is_reserved(key))
        return 0;
    if (is_passthrough(key))
        return st->fn(st->arg, key, value, len);
    rc = open_for_key(st->b, key, value, len, &st->plain);
    if (rc == COFFER_ESEALED)
        return rc;
    if (rc != 0) {
        log_error("barrier: scan: skipping %s (%s)", key,
                  coffer_strerror(rc));
        buf_reset(&st->plain);
        return 0;
    }
    rc = st->fn(st->arg, key, st->plain.ptr ? st->plain.ptr : "",
                st->plain.len);
    buf_reset(&st->plain); /* wipes the plaintext */
    return rc;
}

static int view_scan(void *ctx, const char *prefix, storage_scan_fn fn,
                     void *arg)
{
    struct barrier *b = ctx;
    struct scan_state st = {.b = b, .fn = fn, .arg = arg};
    int rc;

    if (view_sealed(b))
        return COFFER_ESEALED;
    buf_init(&st.plain, 0);
    rc = storage_scan(b->physical, prefix, scan_one, &st);
    buf_release(&st.plain);
    return rc;
}

/* The view is part of the barrier; barrier_free releases it. */
static void view_close(void *ctx)
{
    (void)ctx;
}

static const struct storage_backend barrier_backend = {
    .name = "barrier",
    .get = view_get,
    .put = view_put,
    .del = view_del,
    .list = view_list,
    .batch = view_batch,
    .scan = view_scan,
    .close = view_close,
};

/* ============================================ key management ====== */

struct barrier *barrier_new(struct storage *physical)
{
    struct barrier *b = xcalloc(1, sizeof(*b));
    pthread_rwlockattr_t attr;

    COFFER_ASSERT(physical != NULL);
    pthread_once(&fork_hook_once, fork_hook_install);
    b->view.backend = &barrier_backend;
    b->view.ctx = b;
    b->physical = physical;
    /* Writer preference: a seal must not starve behind busy readers. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    COFFER_ASSERT(pthread_rwlock_init(&b->lock, &attr) == 0);
    pthread_rwlockattr_destroy(&attr);
    COFFER_ASSERT(pthread_mutex_init(&b->admin, NULL) == 0);
    COFFER_ASSERT(pthread_mutex_init(&b->pool_lock, NULL) == 0);
    atomic_init(&b->sealed, true);
    atomic_init(&b->initialized_seen, false);
    atomic_init(&b->encryptions, 0);
    b->cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    COFFER_ASSERT(b->cipher != NULL);
    return b;
}

void barrier_free(struct barrier *b)
{
    if (b == NULL)
        return;
    barrier_seal(b);
    pool_flush(b);
    EVP_CIPHER_free(b->cipher);
    pthread_mutex_destroy(&b->pool_lock);
    pthread_mutex_destroy(&b->admin);
    pthread_rwlock_destroy(&b->lock);
    free(b);
}

struct storage *barrier_storage(struct barrier *b)
{
    return &b->view;
}

bool barrier_initialized(struct barrier *b)
{
    struct buf raw;
    int rc;

    if (atomic_load(&b->initialized_seen))
        return true;
    buf_init(&raw, 0);
    rc = storage_get(b->physical, KEYRING_KEY, &raw);
    buf_release(&raw);
    if (rc == 0)
        atomic_store(&b->initialized_seen, true);
    return rc == 0;
}

bool barrier_sealed(struct barrier *b)
{
    return view_sealed(b);
}

/*
 * Installs kr (taking ownership) as the live keyring and unseals. Under
 * admin. Any pooled context is dropped first: it may hold another
 * keyring's schedule.
 */
static void install_keyring(struct barrier *b, struct keyring *kr)
{
    struct keyring *old;

    pthread_rwlock_wrlock(&b->lock);
    pool_flush(b);
    old = b->kr;
    b->kr = kr;
    atomic_store_explicit(&b->encryptions, 0, memory_order_relaxed);
    atomic_store_explicit(&b->sealed, false, memory_order_release);
    pthread_rwlock_unlock(&b->lock);
    secmem_free(old);
}

/* Seals kr with its root key and writes it to "core/keyring". */
static int persist_keyring(struct barrier *b, const struct keyring *kr,
                           struct errbuf *err)
{
    size_t wire_len = keyring_wire_len(kr);
    uint8_t *wire = secmem_alloc(wire_len);
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    int rc;

    keyring_encode(kr, wire);
    rc = barrier_seal_value(kr->root_key, KEYRING_KEY, wire, wire_len,
                            &sealed, &sealed_len);
    if (rc != 0) {
        errbuf_set(err, "sealing the keyring failed");
        goto out;
    }
    rc = storage_put(b->physical, KEYRING_KEY, sealed, sealed_len);
    if (rc != 0)
        errbuf_set(err, "storing the keyring failed: %s", coffer_strerror(rc));
out:
    free(sealed); /* ciphertext */
    secmem_free(wire);
    return rc;
}

int barrier_initialize(struct barrier *b, const uint8_t *root_key,
                       struct errbuf *err)
{
    struct keyring *kr = NULL;
    struct buf raw;
    int rc;

    errbuf_clear(err);
    buf_init(&raw, 0);
    pthread_mutex_lock(&b->admin);
    rc = storage_get(b->physical, KEYRING_KEY, &raw);
    if (rc == 0) {
        errbuf_set(err, "barrier is already initialized");
        rc = COFFER_EEXIST;
        goto out;
    }
    if (rc != COFFER_ENOTFOUND) {
        errbuf_set(err, "reading the keyring failed: %s", coffer_strerror(rc));
        goto out;
    }
    kr = keyring_alloc(1);
    memcpy(kr->root_key, root_key, BARRIER_KEY_LEN);
    rc = term_key_make(&kr->terms[0], 1);
    if (rc != 0) {
        errbuf_set(err, "random number generator failed");
        goto out;
    }
    rc = persist_keyring(b, kr, err);
    if (rc != 0)
        goto out;
    atomic_store(&b->initialized_seen, true);
    install_keyring(b, kr);
    kr = NULL;
    log_info("barrier: initialized with term 1");
out:
    pthread_mutex_unlock(&b->admin);
    secmem_free(kr);
    buf_release(&raw);
    return rc;
}

/* Reads and opens the stored keyring with root_key. Caller holds admin. */
static int load_keyring(struct barrier *b, const uint8_t *root_key,
                        struct keyring **out, struct errbuf *err)
{
    struct buf raw;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int rc;

    *out = NULL;
    buf_init(&raw, 0);
    rc = storage_get(b->physical, KEYRING_KEY, &raw);
    if (rc != 0) {
        errbuf_set(err, rc == COFFER_ENOTFOUND
                            ? "barrier is not initialized"
                            : "reading the keyring failed");
        goto out;
    }
    rc = barrier_open_value(root_key, KEYRING_KEY, raw.ptr, raw.len, &plain,
                            &plain_len);
    if (rc != 0) {
        errbuf_set(err, "the root key does not open the keyring");
        rc = COFFER_EPERM;
        goto out;
    }
    *out = keyring_decode(plain, plain_len, root_key);
    if (*out == NULL) {
        log_error("barrier: %s: keyring is malformed", KEYRING_KEY);
        errbuf_set(err, "the keyring is malformed");
        rc = COFFER_EINTERNAL;
    }
out:
    secure_free(plain, plain_len);
    buf_release(&raw);
    return rc;
}

int barrier_unseal(struct barrier *b, const uint8_t *root_key,
                   struct errbuf *err)
{
    struct keyring *kr = NULL;
    int rc = 0;

    errbuf_clear(err);
    pthread_mutex_lock(&b->admin);
    /* As Vault: unsealing an unsealed barrier is a no-op. */
    if (view_sealed(b))
        rc = load_keyring(b, root_key, &kr, err);
    if (kr != NULL) {
        atomic_store(&b->initialized_seen, true);
        install_keyring(b, kr);
        log_info("barrier: unsealed, active term %u",
                 keyring_active(kr)->term);
    }
    pthread_mutex_unlock(&b->admin);
    return rc;
}

int barrier_reload(struct barrier *b, struct errbuf *err)
{
    uint8_t *root_key = secmem_alloc(BARRIER_KEY_LEN);
    struct keyring *kr = NULL;
    int rc = 0;

    errbuf_clear(err);
    pthread_mutex_lock(&b->admin);
    pthread_rwlock_rdlock(&b->lock);
    if (b->kr == NULL)
        rc = COFFER_ESEALED;
    else
        memcpy(root_key, b->kr->root_key, BARRIER_KEY_LEN);
    pthread_rwlock_unlock(&b->lock);
    if (rc != 0)
        errbuf_set(err, "Vault is sealed");
    else
        rc = load_keyring(b, root_key, &kr, err);
    if (kr != NULL) {
        install_keyring(b, kr);
        log_info("barrier: keyring reloaded, active term %u",
                 keyring_active(kr)->term);
    }
    pthread_mutex_unlock(&b->admin);
    secmem_free(root_key);
    return rc;
}

int barrier_derive_key(struct barrier *b, const char *label,
                       uint8_t out[32])
{
    int rc = 0;

    pthread_rwlock_rdlock(&b->lock);
    if (b->kr == NULL)
        rc = COFFER_ESEALED;
    else
        crypto_hmac_sha256(b->kr->root_key, BARRIER_KEY_LEN, label,
                           strlen(label), out);
    pthread_rwlock_unlock(&b->lock);
    return rc;
}

void barrier_seal(struct barrier *b)
{
    struct keyring *old;

    pthread_mutex_lock(&b->admin);
    pthread_rwlock_wrlock(&b->lock);
    old = b->kr;
    b->kr = NULL;
    atomic_store_explicit(&b->sealed, true, memory_order_release);
    pool_flush(b); /* every slot is home: no reader holds one */
    pthread_rwlock_unlock(&b->lock);
    pthread_mutex_unlock(&b->admin);
    secmem_free(old);
}

/*
 * Copies the keyring with one more term, persists the copy, and only then
 * installs it, so a value is never written under an unsaved term. The
 * data path runs on during the write; admin keeps other key changes out.
 */
int barrier_rotate(struct barrier *b, struct errbuf *err)
{
    struct keyring *kr = NULL, *old;
    uint32_t term = 0;
    int rc = 0;

    errbuf_clear(err);
    pthread_mutex_lock(&b->admin);
    pthread_rwlock_rdlock(&b->lock);
    if (b->kr == NULL) {
        rc = COFFER_ESEALED;
    } else if (keyring_active(b->kr)->term == UINT32_MAX) {
        rc = COFFER_EINTERNAL;
    } else {
        kr = keyring_alloc(b->kr->n + 1);
        memcpy(kr->root_key, b->kr->root_key, BARRIER_KEY_LEN);
        memcpy(kr->terms, b->kr->terms, b->kr->n * sizeof(struct term_key));
        term = keyring_active(b->kr)->term + 1;
    }
    pthread_rwlock_unlock(&b->lock);
    if (rc != 0) {
        errbuf_set(err, "%s", rc == COFFER_ESEALED ? "Vault is sealed"
                                                   : "no more key terms");
        goto out;
    }
    rc = term_key_make(&kr->terms[kr->n - 1], term);
    if (rc != 0) {
        errbuf_set(err, "random number generator failed");
        goto out;
    }
    rc = persist_keyring(b, kr, err);
    if (rc != 0)
        goto out;

    pthread_rwlock_wrlock(&b->lock);
    old = b->kr;
    b->kr = kr;
    atomic_store_explicit(&b->encryptions, 0, memory_order_relaxed);
    pthread_rwlock_unlock(&b->lock);
    kr = old; /* freed below */
    log_info("barrier: rotated to term %u", term);
out:
    pthread_mutex_unlock(&b->admin);
    secmem_free(kr);
    return rc;
}

int barrier_key_status(struct barrier *b, struct barrier_key_status *out)
{
    const struct term_key *tk;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&b->lock);
    if (b->kr == NULL) {
        rc = COFFER_ESEALED;
    } else {
        tk = keyring_active(b->kr);
        out->term = tk->term;
        out->install_time = (time_t)tk->install_time;
        out->encryptions =
            atomic_load_explicit(&b->encryptions, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&b->lock);
    return rc;
}

/* ============================================== one-shot values ====== */

/* A one-shot term-0 key in locked memory, and a fresh context. */
static int oneshot_begin(struct cipher_slot *s, struct term_key **tk,
                         const uint8_t *key)
{
    memset(s, 0, sizeof(*s));
    s->ctx = EVP_CIPHER_CTX_new();
    if (s->ctx == NULL)
        return COFFER_ENOMEM;
    *tk = secmem_alloc(sizeof(**tk));
    (*tk)->term = 0;
    memcpy((*tk)->key, key, BARRIER_KEY_LEN);
    return 0;
}

static void oneshot_end(struct cipher_slot *s, struct term_key *tk)
{
    EVP_CIPHER_CTX_free(s->ctx);
    secmem_free(tk);
}

int barrier_seal_value(const uint8_t *key, const char *aad, const void *in,
                       size_t len, uint8_t **out, size_t *out_len)
{
    struct cipher_slot s;
    struct term_key *tk = NULL;
    uint8_t *env;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (len > ENV_MAX_PLAIN)
        return COFFER_ETOOBIG;
    rc = oneshot_begin(&s, &tk, key);
    if (rc != 0)
        return rc;
    env = xmalloc(len + ENV_OVERHEAD);
    rc = gcm_seal(&s, NULL, tk, aad ? aad : "", in, len, env);
    oneshot_end(&s, tk);
    if (rc != 0) {
        free(env);
        return rc;
    }
    *out = env;
    *out_len = len + ENV_OVERHEAD;
    return 0;
}

int barrier_open_value(const uint8_t *key, const char *aad, const void *in,
                       size_t len, uint8_t **out, size_t *out_len)
{
    const uint8_t *env = in;
    struct cipher_slot s;
    struct term_key *tk = NULL;
    uint8_t *plain;
    size_t ctlen;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (env == NULL || len < ENV_OVERHEAD || env[0] != ENV_VERSION ||
        get_be32(env + 1) != 0)
        return COFFER_EPERM;
    ctlen = len - ENV_OVERHEAD;
    rc = oneshot_begin(&s, &tk, key);
    if (rc != 0)
        return rc;
    plain = xmalloc(ctlen + 1);
    rc = gcm_open(&s, NULL, tk, aad ? aad : "", env + 5, env + ENV_HDR_LEN,
                  ctlen, env + len - TAG_LEN, plain);
    oneshot_end(&s, tk);
    if (rc != 0) {
        secure_free(plain, ctlen + 1);
        return rc;
    }
    *out = plain;
    *out_len = ctlen;
    return 0;
}
