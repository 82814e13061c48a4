/*
 * crypto.c - randomness, identifiers, hashes, constant-time comparison.
 */
/* The SHA256_* state API (see crypto_hmac_sha256). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "crypto.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/rand.h>

#include "common.h"

static const char base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int crypto_random(void *buf, size_t n)
{
    if (n > 0 && RAND_bytes(buf, (int)n) != 1)
        return COFFER_EINTERNAL;
    return 0;
}

/*
 * Rejection sampling: bytes >= 248 (the largest multiple of 62 that fits)
 * are thrown away so that every character is equally likely.
 */
int crypto_random_base62(char *out, size_t n)
{
    unsigned char pool[64];
    size_t have = 0, used = 0, i = 0;

    while (i < n) {
        if (used == have) {
            if (crypto_random(pool, sizeof(pool)) != 0)
                return COFFER_EINTERNAL;
            have = sizeof(pool);
            used = 0;
        }
        unsigned char c = pool[used++];
        if (c < 248)
            out[i++] = base62[c % 62];
    }
    out[n] = '\0';
    OPENSSL_cleanse(pool, sizeof(pool));
    return 0;
}

/*
 * UUIDs are taken from a per-thread buffer of CSPRNG output filled by one
 * RAND_bytes call: a request id then costs a copy instead of a trip
 * through OpenSSL's DRBG locks (about 7,000 instructions each). The bytes
 * are still the CSPRNG's, so ids stay unpredictable; uuids also serve as
 * secrets (approle secret_ids, audit salts), so each 16 bytes are wiped
 * from the buffer as they are taken, and what is left is only bytes no
 * one has seen yet. A forked child must not hand out its parent's bytes:
 * the atfork hook bumps uuid_fork_gen and every thread's buffer refills.
 */
#define UUID_POOL 512 /* a multiple of 16 */

struct uuid_pool {
    unsigned char bytes[UUID_POOL];
    size_t used;       /* bytes taken (and wiped) so far */
    unsigned gen;      /* uuid_fork_gen when filled */
};

static _Thread_local struct uuid_pool uuid_pool = {.used = UUID_POOL};
static atomic_uint uuid_fork_gen;
static pthread_once_t uuid_once = PTHREAD_ONCE_INIT;

static void uuid_on_fork_child(void)
{
    atomic_fetch_add(&uuid_fork_gen, 1);
}

static void uuid_setup(void)
{
    COFFER_ASSERT(pthread_atfork(NULL, NULL, uuid_on_fork_child) == 0);
}

/* Copies 16 fresh random bytes into b and wipes them from the pool. */
static int uuid_take(unsigned char b[16])
{
    struct uuid_pool *p = &uuid_pool;
    unsigned gen;

    pthread_once(&uuid_once, uuid_setup);
    gen = atomic_load(&uuid_fork_gen);
    if (p->used + 16 > UUID_POOL || p->gen != gen) {
        OPENSSL_cleanse(p->bytes, sizeof(p->bytes));
        p->used = UUID_POOL;
        if (crypto_random(p->bytes, sizeof(p->bytes)) != 0)
            return COFFER_EINTERNAL;
        p->used = 0;
        p->gen = gen;
    }
    memcpy(b, p->bytes + p->used, 16);
    OPENSSL_cleanse(p->bytes + p->used, 16);
    p->used += 16;
    return 0;
}

int crypto_uuid(char *out)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char b[16];
    size_t o = 0;

    if (uuid_take(b) != 0)
        return COFFER_EINTERNAL;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = digits[b[i] >> 4];
        out[o++] = digits[b[i] & 0x0f];
    }
    out[o] = '\0';
    OPENSSL_cleanse(b, sizeof(b));
    return 0;
}

int crypto_random_hex(char *out, size_t n)
{
    unsigned char b[64];
    size_t bytes = (n + 1) / 2;
    char hex[129];

    if (bytes > sizeof(b))
        return COFFER_EINVAL;
    if (crypto_random(b, bytes) != 0)
        return COFFER_EINTERNAL;
    crypto_hex(b, bytes, hex);
    memcpy(out, hex, n);
    out[n] = '\0';
    return 0;
}

void crypto_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int outlen = 32;

    COFFER_ASSERT(EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) ==
                  1);
}

/*
 * HMAC-SHA256 on the hot paths (the token id of every request, the fields
 * of every audit entry) MACs many short values under the same one or two
 * keys. HMAC() fetches the digest and builds a context per call, and even
 * a reused EVP_MAC_CTX duplicates a digest context in every final (7,800
 * instructions for a 40-byte value, measured). The keyed inner and outer
 * SHA-256 states are plain structs: each thread keeps them for the last
 * key it saw, and a MAC is then two copies and the two compressions RFC
 * 2104 needs (about 2,500 instructions). The SHA256_* functions are
 * deprecated in OpenSSL 3 in favour of EVP, which has no way to copy a
 * state without an allocation; they stay in the 3.x ABI.
 */
#define HMAC_BLOCK 64

struct hmac_cache {
    SHA256_CTX inner, outer; /* after the key's ipad / opad block */
    size_t keylen;
    bool keyed;
    unsigned char key[HMAC_BLOCK];
};

static pthread_key_t hmac_cache_key;
static pthread_once_t hmac_cache_once = PTHREAD_ONCE_INIT;
static bool hmac_cache_ok;

static void hmac_cache_free(void *p)
{
    OPENSSL_cleanse(p, sizeof(struct hmac_cache));
    free(p);
}

static void hmac_cache_setup(void)
{
    hmac_cache_ok = pthread_key_create(&hmac_cache_key, hmac_cache_free) == 0;
}

/* This thread's cache, or NULL when none can be had (one-shot then). */
static struct hmac_cache *hmac_cache_get(void)
{
    struct hmac_cache *c;

    pthread_once(&hmac_cache_once, hmac_cache_setup);
    if (!hmac_cache_ok)
        return NULL;
    c = pthread_getspecific(hmac_cache_key);
    if (c != NULL)
        return c;
    c = xcalloc(1, sizeof(*c));
    if (pthread_setspecific(hmac_cache_key, c) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

/* Keys the cache with key (at most a block: longer keys are hashed). */
static void hmac_cache_key_with(struct hmac_cache *c, const void *key,
                                size_t keylen)
{
    unsigned char pad[HMAC_BLOCK];

    if (c->keyed && c->keylen == keylen &&
        CRYPTO_memcmp(c->key, key, keylen) == 0)
        return;
    memset(pad, 0x36, sizeof(pad));
    for (size_t i = 0; i < keylen; i++)
        pad[i] ^= ((const unsigned char *)key)[i];
    SHA256_Init(&c->inner);
    SHA256_Update(&c->inner, pad, sizeof(pad));
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] ^= 0x36 ^ 0x5c;
    SHA256_Init(&c->outer);
    SHA256_Update(&c->outer, pad, sizeof(pad));
    OPENSSL_cleanse(pad, sizeof(pad));
    memcpy(c->key, key, keylen);
    c->keylen = keylen;
    c->keyed = true;
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
                        size_t len, unsigned char out[32])
{
    struct hmac_cache *c = keylen <= HMAC_BLOCK ? hmac_cache_get() : NULL;
    unsigned int outlen = 32;
    SHA256_CTX ctx;

    if (c == NULL) {
        COFFER_ASSERT(HMAC(EVP_sha256(), key, (int)keylen, data, len, out,
                           &outlen) != NULL);
        return;
    }
    hmac_cache_key_with(c, key, keylen);
    ctx = c->inner;
    SHA256_Update(&ctx, data, len);
    SHA256_Final(out, &ctx);
    ctx = c->outer;
    SHA256_Update(&ctx, out, 32);
    SHA256_Final(out, &ctx);
    OPENSSL_cleanse(&ctx, sizeof(ctx));
}

void crypto_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

bool crypto_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return false;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

void crypto_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

int crypto_pbkdf2_sha256(const void *password, size_t plen, const void *salt,
                         size_t slen, unsigned int iterations,
                         unsigned char *out, size_t outlen)
{
    if (iterations < 1 || outlen == 0 || plen > INT32_MAX ||
        slen > INT32_MAX || outlen > INT32_MAX || iterations > INT32_MAX)
        return COFFER_EINVAL;
    if (PKCS5_PBKDF2_HMAC(plen ? password : "", (int)plen,
                          slen ? salt : (const void *)"", (int)slen,
                          (int)iterations, EVP_sha256(), (int)outlen,
                          out) != 1)
        return COFFER_EINVAL;
    return 0;
}

int crypto_scram_sha256_verifier_salted(const char *password, size_t plen,
                                        const unsigned char salt[16],
                                        unsigned int iterations,
                                        char out[CRYPTO_SCRAM_VERIFIER_MAX])
{
    unsigned char salted[32], client_key[32], stored_key[32], server_key[32];
    char salt64[32], stored64[48], server64[48];
    int rc = COFFER_EINVAL, n;

    if (plen == 0 || iterations < 1 || iterations > 100000000)
        return COFFER_EINVAL;
    for (size_t i = 0; i < plen; i++)
        if (password[i] == '\0' || (unsigned char)password[i] >= 0x80)
            return COFFER_EINVAL;
    if (crypto_pbkdf2_sha256(password, plen, salt, 16, iterations, salted,
                             sizeof(salted)) != 0)
        goto done;
    crypto_hmac_sha256(salted, sizeof(salted), "Client Key", 10, client_key);
    crypto_sha256(client_key, sizeof(client_key), stored_key);
    crypto_hmac_sha256(salted, sizeof(salted), "Server Key", 10, server_key);
    EVP_EncodeBlock((unsigned char *)salt64, salt, 16);
    EVP_EncodeBlock((unsigned char *)stored64, stored_key, 32);
    EVP_EncodeBlock((unsigned char *)server64, server_key, 32);
    n = snprintf(out, CRYPTO_SCRAM_VERIFIER_MAX, "SCRAM-SHA-256$%u:%s$%s:%s",
                 iterations, salt64, stored64, server64);
    if (n > 0 && n < CRYPTO_SCRAM_VERIFIER_MAX)
        rc = 0;
done:
    crypto_wipe(salted, sizeof(salted));
    crypto_wipe(client_key, sizeof(client_key));
    crypto_wipe(stored_key, sizeof(stored_key));
    crypto_wipe(server_key, sizeof(server_key));
    crypto_wipe(stored64, sizeof(stored64));
    crypto_wipe(server64, sizeof(server64));
    return rc;
}

int crypto_scram_sha256_verifier(const char *password, size_t plen,
                                 char out[CRYPTO_SCRAM_VERIFIER_MAX])
{
    unsigned char salt[16];

    if (crypto_random(salt, sizeof(salt)) != 0)
        return COFFER_EINTERNAL;
    return crypto_scram_sha256_verifier_salted(password, plen, salt,
                                               CRYPTO_SCRAM_ITERATIONS, out);
}
