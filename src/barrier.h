/*
 * barrier.h - encryption at rest: every value is sealed with AES-256-GCM
 * before it reaches a physical backend.
 *
 * The barrier is itself a storage backend (storage.h) wrapped around the
 * physical one, so callers see plain values and backends see only this:
 *
 *   | 0x01 | term (4, big-endian) | nonce (12) | ciphertext | tag (16) |
 *
 * (33 bytes more than the plaintext.)
 *
 * The additional authenticated data is the storage key, so a value moved
 * to another key, or altered by one byte, fails to open ("cipher: message
 * authentication failed" for that key) instead of returning wrong data.
 * The nonce is random per write. A value that does not open is logged
 * with its key (never its value): get returns COFFER_EINTERNAL, scan skips
 * it and goes on.
 *
 * Keys: a keyring of terms (1, 2, ...), the newest encrypts, any opens.
 * The keyring is stored at "core/keyring", sealed with the root key (AAD
 * "core/keyring"). The root key never reaches storage in the clear: seal.c
 * keeps it sealed with the unseal key. The values at exactly
 * "core/seal-config" and "core/root-key" pass through unencrypted (they
 * are the seal's own, already protected or public). "core/keyring" is the
 * barrier's own: the view refuses to get, put or delete it (COFFER_EPERM)
 * and scan skips it. list passes through: keys are not secret.
 *
 * While sealed every operation of the view fails with COFFER_ESEALED
 * (the seal reads its own keys from the physical storage). Key material
 * lives in memory locked against swapping (mlock; a refusal is logged
 * once) and is wiped on seal. All functions are thread-safe; seal and
 * rotate may run while requests do.
 */
#ifndef COFFER_BARRIER_H
#define COFFER_BARRIER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

struct storage;

#define BARRIER_KEY_LEN 32

/* Creates a sealed barrier over physical (borrowed; must outlive it). */
struct barrier *barrier_new(struct storage *physical);
/* Seals (wiping keys) and frees. */
void barrier_free(struct barrier *b);

/*
 * The logical view: a struct storage whose values are encrypted on the way
 * down and verified and decrypted on the way up. Owned by the barrier:
 * never storage_free it; barrier_free releases it.
 */
struct storage *barrier_storage(struct barrier *b);

/*
 * True if a keyring exists in physical storage (the vault is initialised).
 * Reads storage until the answer is true, then remembers it.
 */
bool barrier_initialized(struct barrier *b);
bool barrier_sealed(struct barrier *b);

/*
 * Creates the first keyring (term 1) and stores it sealed with root_key
 * (borrowed; the barrier keeps a copy in locked memory while unsealed).
 * Leaves the barrier unsealed. COFFER_EEXIST if already initialised, or
 * the storage error; words in err.
 */
int barrier_initialize(struct barrier *b, const uint8_t *root_key,
                       struct errbuf *err);
/*
 * Opens the stored keyring with root_key. 0 (also when already unsealed,
 * as Vault), COFFER_EPERM if it does not open, COFFER_ENOTFOUND if not
 * initialised, COFFER_EINTERNAL if it opens but is malformed.
 */
int barrier_unseal(struct barrier *b, const uint8_t *root_key,
                   struct errbuf *err);
/*
 * Reads the stored keyring again with the root key the barrier holds, for
 * an HA standby taking over: the active may have rotated since it
 * unsealed. COFFER_ESEALED, or as barrier_unseal.
 */
int barrier_reload(struct barrier *b, struct errbuf *err);
/*
 * A 32-byte key for label (HMAC-SHA256 of the label under the root key):
 * the same on every node that unsealed the same storage, and never the
 * root key itself. Used to sign what one node tells another (HA request
 * forwarding). COFFER_ESEALED while sealed.
 */
int barrier_derive_key(struct barrier *b, const char *label,
                       uint8_t out[32]);
/*
 * Wipes the keyring from memory; the view then refuses every operation.
 * Waits for operations already decrypting to finish. Idempotent.
 */
void barrier_seal(struct barrier *b);

/*
 * Adds a new term and makes it the encryption key (sys/rotate). The new
 * keyring is stored before it is used. COFFER_ESEALED, or the storage
 * error, with words in err.
 */
int barrier_rotate(struct barrier *b, struct errbuf *err);

struct barrier_key_status {
    uint32_t term;
    time_t install_time;
    uint64_t encryptions; /* values sealed with the active term since it
                             was installed or unsealed in this process */
};
/* Fills out; COFFER_ESEALED while sealed. */
int barrier_key_status(struct barrier *b, struct barrier_key_status *out);

/*
 * Seals or opens one value with a raw 32-byte key (the seal uses it for the
 * root key under the unseal key). Same envelope, term 0; aad NULL is "".
 * New buffers in *out (caller frees with secure_free(*out, *out_len)).
 * 0, or COFFER_EPERM when the value is malformed, not term 0 or fails to
 * authenticate (wrong key or aad); COFFER_ETOOBIG past 2 GiB.
 */
int barrier_seal_value(const uint8_t *key, const char *aad, const void *in,
                       size_t len, uint8_t **out, size_t *out_len);
int barrier_open_value(const uint8_t *key, const char *aad, const void *in,
                       size_t len, uint8_t **out, size_t *out_len);

#endif
