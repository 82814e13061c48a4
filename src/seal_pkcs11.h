/*
 * seal_pkcs11.h - auto-unseal with a key kept in an HSM, through its
 * PKCS#11 module (Vault Enterprise's and OpenBao's seal "pkcs11"):
 *
 *     seal "pkcs11" {
 *       lib          = "/usr/lib/softhsm/libsofthsm2.so",
 *       token_label  = "coffer",          -- or slot = "0"
 *       pin          = "1234",            -- or env COFFER_HSM_PIN
 *       key_label    = "coffer-root-key",
 *       key_id       = "0a1b",            -- optional, hex CKA_ID
 *       mechanism    = "CKM_AES_GCM",     -- or "0x1087", "CKM_RSA_PKCS_OAEP"
 *       rsa_oaep_hash = "sha256",         -- RSA-OAEP only; or "sha1"
 *       generate_key = true,              -- create the key if missing
 *     }
 *
 * The module is loaded with dlopen and initialised once (OS locking); one
 * session is logged in at start-up and kept, guarded by a mutex. The PIN
 * is wiped as soon as the login is done and never logged; every failure
 * names what to fix (module, slot or token, PIN, key, mechanism).
 *
 * CKM_AES_GCM (the default) encrypts in the HSM with an AES key found by
 * key_label (and key_id). CKM_RSA_PKCS_OAEP (rsa_oaep_hash) is envelope
 * encryption: a fresh AES-256 data key encrypts the value in software
 * (AES-GCM) and the HSM's RSA public key wraps the data key; only the
 * private key in the HSM can open it. The wrapped value is JSON:
 *
 *     {"mechanism":"CKM_AES_GCM","key_label":"...","ciphertext":"<b64>"}
 *     (+ "wrapped_key":"<b64>","rsa_oaep_hash":"sha256" for RSA-OAEP)
 *
 * with the caller's label and the key label bound in as associated data.
 */
#ifndef COFFER_SEAL_PKCS11_H
#define COFFER_SEAL_PKCS11_H

#include <stdbool.h>

#include "common.h"
#include "seal_wrap.h"

/* The stanza's settings (borrowed strings; NULL = not given). */
struct seal_pkcs11_config {
    const char *lib;
    const char *slot;        /* decimal or 0x hex slot id */
    const char *token_label; /* instead of slot */
    char *pin; /* wiped after the login; COFFER_HSM_PIN, BAO_HSM_PIN or
                  VAULT_HSM_PIN in the environment wins */
    const char *key_label;
    const char *key_id;      /* hex CKA_ID */
    const char *mechanism;   /* name or number; NULL = CKM_AES_GCM */
    const char *rsa_oaep_hash; /* "sha256" (NULL) or "sha1" (SoftHSM 2.6) */
    bool generate_key;
};

struct seal_pkcs11;

/*
 * Loads the module, finds the token, logs in and finds (or, with
 * generate_key, creates) the key. c->pin is wiped. NULL with the reason
 * in err.
 */
struct seal_pkcs11 *seal_pkcs11_new(const struct seal_pkcs11_config *c,
                                    struct errbuf *err);

/* Logs out, closes the session, finalises and unloads. NULL is fine. */
void seal_pkcs11_free(struct seal_pkcs11 *p);

/* p's wrap/unwrap for seal_set_wrapper (type "pkcs11"); lives with p. */
const struct seal_wrapper *seal_pkcs11_wrapper(const struct seal_pkcs11 *p);

#endif
