/*
 * seal_static.h - OpenBao's static auto-unseal seal: a 32-byte AES-256-GCM
 * key from the configuration that wraps the root key.
 *
 *     seal "static" {
 *       current_key_id  = "2026-12",
 *       current_key     = "file:///etc/coffer/unseal-2026-12.key",
 *       previous_key_id = "2026-06",                    -- optional
 *       previous_key    = "env://COFFER_OLD_UNSEAL_KEY", -- with its id
 *     }
 *
 * A key is written as file:///path (the file holds the 32 raw bytes, or
 * their hex or base64 text), env://VAR (hex or base64 text), or directly
 * as 64 hex characters or 44 base64 characters. A key file that other
 * users may read or anyone but its owner may write is refused, as is a
 * key of any length but 32 bytes.
 *
 * A wrapped value is JSON text that names the key that wrapped it:
 *
 *     {"key_id":"2026-12","ciphertext":"<base64 nonce(12) | ct | tag(16)>"}
 *
 * with the key id and the caller's label bound in as associated data, so
 * a blob cannot be relabelled or moved to another slot. Unwrapping picks
 * the key by id; one wrapped by the previous key tells the caller, which
 * wraps it again with the current key (rotation).
 *
 * The keys live in locked memory and are wiped by seal_static_free. No
 * message ever contains key material. Thread-safe after creation (the
 * struct is read-only).
 */
#ifndef COFFER_SEAL_STATIC_H
#define COFFER_SEAL_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "seal_wrap.h"

#define SEAL_STATIC_KEY_LEN 32
#define SEAL_STATIC_ID_MAX 128

struct seal_static;

/*
 * Decodes one key source (see above) into key. what names the setting in
 * messages ("current_key"). 0, or COFFER_EINVAL with the reason in err.
 */
int seal_static_decode_key(const char *what, const char *source,
                           uint8_t key[SEAL_STATIC_KEY_LEN],
                           struct errbuf *err);

/*
 * Loads the keys. prev_id and prev are both NULL or both set. NULL with
 * the reason in err on any bad id or key.
 */
struct seal_static *seal_static_new(const char *cur_id, const char *cur,
                                    const char *prev_id, const char *prev,
                                    struct errbuf *err);

/* Wipes and frees. NULL is fine. */
void seal_static_free(struct seal_static *s);

const char *seal_static_current_id(const struct seal_static *s);

/*
 * Wraps len bytes with the current key into *blob (a new NUL-terminated
 * JSON string; free with free()). label is bound as associated data.
 * 0 or COFFER_EINTERNAL.
 */
int seal_static_wrap(const struct seal_static *s, const char *label,
                     const uint8_t *plain, size_t len, char **blob);

/*
 * Unwraps a blob into plain (cap bytes), *len its length. *by_previous
 * says the previous key opened it. 0, or COFFER_EPERM with the reason in
 * err (unknown key id, wrong key, tampered or malformed blob).
 */
int seal_static_unwrap(const struct seal_static *s, const char *label,
                       const char *blob, size_t blob_len, uint8_t *plain,
                       size_t cap, size_t *len, bool *by_previous,
                       struct errbuf *err);

/* Fills w (type "static") so that seal.c wraps with s (borrowed). */
void seal_static_wrapper(const struct seal_static *s,
                         struct seal_wrapper *w);

#endif
