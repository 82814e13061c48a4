/*
 * seal.h - the keys that open the barrier: init, unseal shares, seal.
 *
 * At init, two random 32-byte keys are made. The root key opens the
 * barrier's keyring; the unseal key opens the root key, and is itself
 * only ever held as Shamir shares by the operators:
 *
 *   operators' shares --shamir--> unseal key --AES-GCM--> root key
 *                                                            |
 *                                          barrier keyring <-+--> values
 *
 *   physical storage   core/seal-config   {"secret_shares":5,"secret_threshold":3}
 *                      core/root-key      root key sealed with the unseal key
 *
 * Unsealing collects shares until the threshold is met, recombines the
 * unseal key, opens the root key and hands it to the barrier. Every key
 * is wiped as soon as it has been used. Thread-safe.
 *
 * With an auto-unseal seal (seal "static", seal_static.h) the root key is
 * wrapped by the configured key instead, and the shares are recovery
 * shares of a recovery key that is stored sealed with the root key:
 *
 *   core/seal-config   {"type":"static","secret_shares":1,...,
 *                       "recovery_shares":5,"recovery_threshold":3}
 *   core/root-key      {"key_id":"...","ciphertext":"..."} (static key)
 *   core/recovery-key  recovery key sealed with the root key
 *
 * The server unseals itself with the static key (seal_auto_unseal); after
 * a sys/seal, recovery shares unseal it again (Vault: the recombined
 * recovery key is verified, then the stored root key is used).
 */
#ifndef COFFER_SEAL_H
#define COFFER_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "crypto.h"

struct barrier;
struct storage;

#define SEAL_KEY_LEN 32
#define SEAL_SHARE_LEN (SEAL_KEY_LEN + 1)

/* Binds the seal to the barrier and its physical storage (both borrowed). */
void seal_setup(struct barrier *b, struct storage *physical);

/*
 * Initialises: makes the keys, creates the barrier's keyring (leaving the
 * barrier unsealed, so the caller can write the first mounts and root
 * token), stores the seal config and the sealed root key, and splits the
 * unseal key into shares. shares_out receives `shares` shares of
 * SEAL_SHARE_LEN bytes each (a new buffer; free with secure_free).
 * Refuses invalid parameters with Vault's texts ("invalid seal
 * configuration: ...") and a second init ("Vault is already initialized").
 */
int seal_init(int shares, int threshold, uint8_t **shares_out,
              struct errbuf *err);

/*
 * Auto seal: initialises as seal_init, but the shares are recovery shares
 * and the root key is wrapped by the static key. The barrier is left
 * unsealed. Vault's texts: "recovery configuration must specify a
 * positive number of shares", "invalid recovery configuration: ...".
 */
int seal_init_recovery(int shares, int threshold, uint8_t **shares_out,
                       struct errbuf *err);

/*
 * Makes the seal an auto-unseal one with these keys (borrowed; they must
 * outlive the server). Call before any request; NULL = Shamir.
 */
struct seal_static;
void seal_set_static(const struct seal_static *s);
/*
 * The same for any auto seal (seal_wrap.h; seal "pkcs11"): w is
 * borrowed and must outlive the server. NULL = Shamir.
 */
struct seal_wrapper;
void seal_set_wrapper(const struct seal_wrapper *w);
/*
 * The static seal's stanza says disabled = true (Vault/OpenBao): its keys
 * only open a stored static seal to migrate it to Shamir, and the server
 * otherwise acts as a Shamir one. Call with seal_set_static.
 */
void seal_set_static_disabled(bool disabled);
/* A static seal that is configured and not disabled. */
bool seal_is_auto(void);
/* "static", "pkcs11" or "shamir": the configured seal's type. */
const char *seal_type_name(void);

/*
 * Auto seal: opens the root key with the static key and unseals the
 * barrier (a no-op if it is unsealed). A root key wrapped by previous_key
 * is wrapped again with current_key. 0, COFFER_ENOTFOUND while not
 * initialised, or COFFER_E* with the reason in err (wrong key, unknown
 * key id, a stored seal of another type).
 */
int seal_auto_unseal(struct errbuf *err);

/*
 * Adds one share (raw bytes). When the threshold is reached, recombines,
 * unseals the barrier and sets *unsealed. During a seal migration
 * (seal_status.migration; the caller checks Vault's migrate flag) the
 * shares are those of the stored seal, and at the threshold the seal is
 * migrated in one storage batch before unsealing:
 *   Shamir -> static: the root key is wrapped with the static key, the
 *     unseal key becomes the recovery key (same shares, same counts);
 *   static (disabled) -> Shamir: the recovery key becomes the unseal key
 *     wrapping the root key; the stored recovery key is deleted. A share already given in this
 * attempt is ignored. A set of shares that does not open the root key
 * resets the attempt and fails with "Unseal failed, invalid key".
 */
int seal_submit_share(const uint8_t *share, size_t len, bool *unsealed,
                      struct errbuf *err);

/* Forgets the shares given so far. */
void seal_reset_progress(void);

struct seal_status {
    bool initialized;
    bool recovery_seal; /* an auto seal is configured (in use) */
    bool migration;     /* the stored seal is to be migrated at unseal */
    char type[16];      /* seal-status "type" (Vault's rule, seal.c) */
    int threshold;   /* t: of the shares that open the stored seal */
    int shares;      /* n */
    int progress;
    char nonce[CRYPTO_UUID_LEN + 1]; /* "" when no attempt is under way */
};
void seal_get_status(struct seal_status *out);

/*
 * Decodes a share given as hex or base64 into out (SEAL_DECODED_MAX
 * bytes). Any length decodes; seal_submit_share judges it. 0, or
 * COFFER_EINVAL with Vault's text in err.
 */
#define SEAL_DECODED_MAX 128
int seal_decode_share(const char *text, uint8_t *out, size_t *len,
                      struct errbuf *err);

/* ====================================== operator commands (sys_rekey.c) == */

/*
 * The shares that authorise generate-root and rekey: the unseal key's
 * (Shamir) or the recovery key's (auto seal). *threshold and *shares are
 * their stored counts. 0, or COFFER_ENOTFOUND when not initialised.
 */
int seal_key_config(int *threshold, int *shares);

/*
 * Recombines n shares (SEAL_SHARE_LEN bytes each) and checks that they
 * rebuild the unseal key (it opens the stored root key) or the recovery
 * key (it matches the stored one). 0, or COFFER_EPERM with Vault's
 * words in err. Only while unsealed.
 */
int seal_verify_shares(const uint8_t *const *parts, int n,
                       struct errbuf *err);

/*
 * Rekey: after checking the n old shares as seal_verify_shares does,
 * makes a new unseal key (Shamir: it wraps the root key again) or a new
 * recovery key (auto seal: stored sealed with the root key), splits it
 * into new_shares shares with new_threshold, and stores the new key and
 * config in one storage batch. *shares_out: new_shares * SEAL_SHARE_LEN
 * bytes (free with secure_free). The old shares stop working at once.
 * 0, or COFFER_E* with words in err.
 */
int seal_rekey(const uint8_t *const *parts, int n, int new_shares,
               int new_threshold, uint8_t **shares_out, struct errbuf *err);

#endif
