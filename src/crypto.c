/*
 * crypto.c - randomness, identifiers, hashes, constant-time comparison.
 */
#include "crypto.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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

int crypto_uuid(char *out)
{
    unsigned char b[16];

    if (crypto_random(b, sizeof(b)) != 0)
        return COFFER_EINTERNAL;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, CRYPTO_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
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

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
                        size_t len, unsigned char out[32])
{
    unsigned int outlen = 32;

    COFFER_ASSERT(HMAC(EVP_sha256(), key, (int)keylen, data, len, out,
                       &outlen) != NULL);
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
