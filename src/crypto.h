/*
 * crypto.h - randomness, identifiers, hashes, constant-time comparison.
 *
 * All randomness comes from OpenSSL's CSPRNG. Identifier formats:
 *
 *   base62 id     24 chars of [0-9A-Za-z]            lease suffixes, accessors
 *   token         "hvs." + 24 base62 chars            service tokens
 *   uuid          8-4-4-4-12 lowercase hex, v4         request ids, mount uuids
 */
#ifndef COFFER_CRYPTO_H
#define COFFER_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_ID_LEN 24
#define CRYPTO_UUID_LEN 36

/* Fills buf with n random bytes. Returns 0 or COFFER_EINTERNAL. */
int crypto_random(void *buf, size_t n);
/* Writes n random base62 characters plus a NUL into out (n+1 bytes). */
int crypto_random_base62(char *out, size_t n);
/*
 * Writes a random v4 UUID into out (at least 37 bytes). The bytes come
 * from a per-thread buffer of CSPRNG output (one RAND_bytes per 32 uuids),
 * wiped as taken and refilled after a fork: as unpredictable as
 * crypto_random, so uuids may serve as secrets (approle secret_ids).
 */
int crypto_uuid(char *out);
/* Writes n random lowercase hex characters plus a NUL. */
int crypto_random_hex(char *out, size_t n);

/* SHA-256 of data into out[32]. */
void crypto_sha256(const void *data, size_t len, unsigned char out[32]);
/* HMAC-SHA256 into out[32]. */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
                        size_t len, unsigned char out[32]);
/*
 * PBKDF2-HMAC-SHA256 (RFC 8018) of password and salt with `iterations`
 * rounds into out[outlen]. Deliberately slow: the password hash of
 * userpass. 0, or COFFER_EINVAL for iterations < 1 or outlen 0 (or when
 * OpenSSL fails). CPU-bound; never raises.
 */
int crypto_pbkdf2_sha256(const void *password, size_t plen, const void *salt,
                         size_t slen, unsigned int iterations,
                         unsigned char *out, size_t outlen);
/*
 * The SCRAM-SHA-256 verifier of a password as PostgreSQL stores it
 * (RFC 5802 / 7677; pg_authid.rolpassword):
 * "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64.
 * PostgreSQL prepares a password with SASLprep before hashing it; for
 * ASCII that is the identity, so only ASCII passwords (no NUL) are taken,
 * else COFFER_EINVAL (a verifier of unprepared text would refuse the
 * password at login). out holds CRYPTO_SCRAM_VERIFIER_MAX bytes. The
 * _salted form takes the 16-byte salt (tests); the other draws it.
 */
#define CRYPTO_SCRAM_VERIFIER_MAX 192
#define CRYPTO_SCRAM_ITERATIONS 4096
int crypto_scram_sha256_verifier(const char *password, size_t plen,
                                 char out[CRYPTO_SCRAM_VERIFIER_MAX]);
int crypto_scram_sha256_verifier_salted(const char *password, size_t plen,
                                        const unsigned char salt[16],
                                        unsigned int iterations,
                                        char out[CRYPTO_SCRAM_VERIFIER_MAX]);
/* Lowercase hex encoding of n bytes into out (2n+1 bytes). */
void crypto_hex(const unsigned char *in, size_t n, char *out);

/* Constant-time equality of two byte strings (length leaks, content not). */
bool crypto_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Overwrites memory in a way the compiler cannot elide. */
void crypto_wipe(void *p, size_t n);

#endif
