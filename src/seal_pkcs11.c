/*
 * seal_pkcs11.c - the PKCS#11 (HSM) auto-unseal seal (see seal_pkcs11.h).
 *
 * The standard PKCS#11 v2.40 types come from p11-kit's header (Debian
 * libp11-kit-dev); the module itself is whatever lib names, loaded with
 * dlopen, so Coffer links against no HSM library.
 */
#include "seal_pkcs11.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <p11-kit-1/p11-kit/pkcs11.h>

#include "barrier.h"
#include "crypto.h"
#include "log.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define DEK_LEN 32     /* RSA-OAEP: the software AES-256 data key */
#define AES_KEY_LEN 32 /* generate_key: AES-256 */
#define RSA_BITS 3072  /* generate_key: RSA-3072 */
#define LABEL_MAX 128
#define KEY_ID_MAX 64
#define PIN_MAX 255
#define TOKEN_LABEL_LEN 32 /* CK_TOKEN_INFO.label, blank padded */
#define RSA_CT_MAX 1024    /* an 8192-bit modulus */
#define AAD_PREFIX "coffer/seal/pkcs11/v1"

struct seal_pkcs11 {
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    bool finalize; /* we initialised the module, so we finalise it */
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE session;
    bool session_open;
    bool logged_in;
    CK_MECHANISM_TYPE mech;
    bool oaep_sha1; /* rsa_oaep_hash = "sha1" */
    CK_OBJECT_HANDLE key; /* AES key, or RSA private key */
    CK_OBJECT_HANDLE pub; /* RSA public key */
    char key_label[LABEL_MAX + 1];
    uint8_t key_id[KEY_ID_MAX];
    size_t key_id_len;
    /* One logged-in session serves every operation, one at a time. */
    pthread_mutex_t mu;
    struct seal_wrapper wrapper; /* what seal.c calls */
};

/* ============================================================ errors == */

/* The CK_RV codes a user can act on, by name; others as hex. */
static const char *rv_text(CK_RV rv, char *buf, size_t cap)
{
    static const struct {
        CK_RV rv;
        const char *text;
    } names[] = {
        {CKR_PIN_INCORRECT, "wrong PIN (CKR_PIN_INCORRECT)"},
        {CKR_PIN_LOCKED, "the PIN is locked (CKR_PIN_LOCKED)"},
        {CKR_PIN_LEN_RANGE, "wrong PIN length (CKR_PIN_LEN_RANGE)"},
        {CKR_PIN_EXPIRED, "the PIN has expired (CKR_PIN_EXPIRED)"},
        {CKR_USER_PIN_NOT_INITIALIZED,
         "the token's user PIN is not set (CKR_USER_PIN_NOT_INITIALIZED)"},
        {CKR_SLOT_ID_INVALID, "no such slot (CKR_SLOT_ID_INVALID)"},
        {CKR_TOKEN_NOT_PRESENT, "no token in the slot (CKR_TOKEN_NOT_PRESENT)"},
        {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
        {CKR_MECHANISM_INVALID,
         "the token does not support the mechanism (CKR_MECHANISM_INVALID)"},
        {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
        {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED,
         "the key may not be used for this (CKR_KEY_FUNCTION_NOT_PERMITTED)"},
        {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
        {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
        {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
        {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
        {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].rv == rv)
            return names[i].text;
    }
    snprintf(buf, cap, "CK_RV 0x%08lx", (unsigned long)rv);
    return buf;
}

/* Sets "<what>: <rv>" in err; returns code. */
static int fail_rv(struct errbuf *err, int code, CK_RV rv, const char *what)
{
    char buf[32];

    errbuf_set(err, "%s: %s", what, rv_text(rv, buf, sizeof(buf)));
    return code;
}

/* ========================================================== settings == */

/* key_id: hex (an optional 0x), into p->key_id. */
static int parse_key_id(struct seal_pkcs11 *p, const char *s,
                        struct errbuf *err)
{
    size_t n;
    char hex[3] = {0};

    if (s == NULL)
        return 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    n = strlen(s);
    if (n == 0 || n % 2 != 0 || n / 2 > KEY_ID_MAX) {
        errbuf_set(err, "key_id must be an even number of hex digits "
                        "(at most %d bytes)", KEY_ID_MAX);
        return COFFER_EINVAL;
    }
    for (size_t i = 0; i < n; i += 2) {
        if (!isxdigit((unsigned char)s[i]) ||
            !isxdigit((unsigned char)s[i + 1])) {
            errbuf_set(err, "key_id must be hex digits");
            return COFFER_EINVAL;
        }
        hex[0] = s[i];
        hex[1] = s[i + 1];
        p->key_id[i / 2] = (uint8_t)strtoul(hex, NULL, 16);
    }
    p->key_id_len = n / 2;
    return 0;
}

/* A whole unsigned number, decimal or 0x hex. */
static bool parse_ulong(const char *s, unsigned long *out)
{
    char *end = NULL;

    if (s == NULL || !isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    *out = strtoul(s, &end, 0);
    return errno == 0 && end != s && *end == '\0';
}

static const char *mech_name(CK_MECHANISM_TYPE m)
{
    return m == CKM_RSA_PKCS_OAEP ? "CKM_RSA_PKCS_OAEP" : "CKM_AES_GCM";
}

static const char *oaep_hash_name(const struct seal_pkcs11 *p)
{
    return p->oaep_sha1 ? "sha1" : "sha256";
}

static int parse_oaep_hash(struct seal_pkcs11 *p, const char *s,
                           struct errbuf *err)
{
    if (s != NULL && strcmp(s, "sha1") != 0 && strcmp(s, "sha256") != 0) {
        errbuf_set(err, "rsa_oaep_hash must be \"sha256\" or \"sha1\"");
        return COFFER_EINVAL;
    }
    p->oaep_sha1 = s != NULL && strcmp(s, "sha1") == 0;
    return 0;
}

static int parse_mechanism(struct seal_pkcs11 *p, const char *s,
                           struct errbuf *err)
{
    unsigned long v = 0;

    if (s == NULL || strcmp(s, "CKM_AES_GCM") == 0)
        v = CKM_AES_GCM;
    else if (strcmp(s, "CKM_RSA_PKCS_OAEP") == 0)
        v = CKM_RSA_PKCS_OAEP;
    else if (!parse_ulong(s, &v))
        v = 0;
    if (v != CKM_AES_GCM && v != CKM_RSA_PKCS_OAEP) {
        errbuf_set(err, "mechanism \"%.64s\" is not supported (want "
                        "CKM_AES_GCM = 0x1087 or CKM_RSA_PKCS_OAEP = 0x0009)",
                   s);
        return COFFER_EINVAL;
    }
    p->mech = v;
    return 0;
}

/* ============================================================ module == */

static int load_module(struct seal_pkcs11 *p, const char *lib,
                       struct errbuf *err)
{
    CK_C_INITIALIZE_ARGS args;
    CK_C_GetFunctionList get_list;
    void *sym;
    CK_RV rv;

    if (lib == NULL || lib[0] == '\0') {
        errbuf_set(err, "lib is required: the path of the HSM's PKCS#11 "
                        "module");
        return COFFER_EINVAL;
    }
    p->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        errbuf_set(err, "cannot load the PKCS#11 module (lib): %.180s",
                   dlerror());
        return COFFER_EINVAL;
    }
    sym = dlsym(p->dl, "C_GetFunctionList");
    if (sym == NULL) {
        errbuf_set(err, "lib \"%.128s\" is not a PKCS#11 module (no "
                        "C_GetFunctionList)", lib);
        return COFFER_EINVAL;
    }
    memcpy(&get_list, &sym, sizeof(get_list));
    rv = get_list(&p->f);
    if (rv != CKR_OK || p->f == NULL)
        return fail_rv(err, COFFER_EINVAL, rv, "C_GetFunctionList failed");
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK; /* the server is threaded */
    rv = p->f->C_Initialize(&args);
    if (rv == CKR_OK)
        p->finalize = true;
    else if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
        return fail_rv(err, COFFER_EINVAL, rv,
                       "initialising the PKCS#11 module failed (for "
                       "SoftHSM, check SOFTHSM2_CONF)");
    return 0;
}

/* CK_TOKEN_INFO.label is 32 bytes padded with blanks. */
static bool label_is(const unsigned char label[TOKEN_LABEL_LEN],
                     const char *want)
{
    size_t n = strlen(want), i;

    if (n > TOKEN_LABEL_LEN || memcmp(label, want, n) != 0)
        return false;
    for (i = n; i < TOKEN_LABEL_LEN; i++) {
        if (label[i] != ' ' && label[i] != '\0')
            return false;
    }
    return true;
}

static int slot_by_label(struct seal_pkcs11 *p, const char *want,
                         struct errbuf *err)
{
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    CK_TOKEN_INFO ti;
    CK_RV rv;
    int rc = COFFER_EINVAL;

    rv = p->f->C_GetSlotList(CK_TRUE, NULL, &n);
    if (rv == CKR_OK && n > 0) {
        slots = xcalloc(n, sizeof(*slots));
        rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
    }
    if (rv != CKR_OK) {
        rc = fail_rv(err, COFFER_EINVAL, rv, "listing the slots failed");
        goto out;
    }
    for (CK_ULONG i = 0; i < n; i++) {
        if (p->f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
            label_is(ti.label, want)) {
            p->slot = slots[i];
            rc = 0;
            goto out;
        }
    }
    errbuf_set(err, "no token labelled \"%.64s\" (token_label) among the "
                    "%lu token(s) of the module", want, (unsigned long)n);
out:
    free(slots);
    return rc;
}

static int find_slot(struct seal_pkcs11 *p, const char *slot,
                     const char *token_label, struct errbuf *err)
{
    unsigned long id = 0;
    CK_TOKEN_INFO ti;
    CK_RV rv;
    char what[96];

    if ((slot == NULL) == (token_label == NULL)) {
        errbuf_set(err, "give slot or token_label (one of them) to pick "
                        "the token");
        return COFFER_EINVAL;
    }
    if (token_label != NULL)
        return slot_by_label(p, token_label, err);
    if (!parse_ulong(slot, &id)) {
        errbuf_set(err, "slot must be a number (decimal or 0x hex), as a "
                        "string: slot = \"0\"");
        return COFFER_EINVAL;
    }
    p->slot = id;
    rv = p->f->C_GetTokenInfo(p->slot, &ti);
    if (rv != CKR_OK) {
        snprintf(what, sizeof(what), "slot %lu not usable", id);
        return fail_rv(err, COFFER_EINVAL, rv, what);
    }
    return 0;
}

/* The PIN: the environment wins over the file, as Vault's VAULT_HSM_PIN. */
static const char *pin_source(const char *configured)
{
    static const char *const vars[] = {"COFFER_HSM_PIN", "BAO_HSM_PIN",
                                       "VAULT_HSM_PIN"};
    const char *v;

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        v = getenv(vars[i]);
        if (v != NULL && v[0] != '\0')
            return v;
    }
    return configured;
}

/*
 * Opens the session and logs in. The PIN copy and the configured PIN are
 * wiped at once (the environment's copy is the operator's to manage).
 */
static int open_login(struct seal_pkcs11 *p, char *configured_pin,
                      struct errbuf *err)
{
    const char *src = pin_source(configured_pin);
    char pin[PIN_MAX + 1];
    size_t n = src != NULL ? strlen(src) : 0;
    CK_RV rv;

    if (n == 0 || n > PIN_MAX) {
        errbuf_set(err, "pin is required (1 to %d characters; or set "
                        "COFFER_HSM_PIN)", PIN_MAX);
        return COFFER_EINVAL;
    }
    rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                             NULL, NULL, &p->session);
    if (rv != CKR_OK)
        return fail_rv(err, COFFER_EINVAL, rv,
                       "opening a session on the token failed");
    p->session_open = true;
    memcpy(pin, src, n + 1);
    rv = p->f->C_Login(p->session, CKU_USER, (CK_UTF8CHAR_PTR)pin,
                       (CK_ULONG)n);
    crypto_wipe(pin, sizeof(pin));
    if (configured_pin != NULL)
        crypto_wipe(configured_pin, strlen(configured_pin));
    if (rv == CKR_OK)
        p->logged_in = true;
    else if (rv != CKR_USER_ALREADY_LOGGED_IN)
        return fail_rv(err, COFFER_EPERM, rv,
                       "logging in to the token failed");
    return 0;
}

static int check_mechanism(struct seal_pkcs11 *p, struct errbuf *err)
{
    CK_MECHANISM_INFO mi;
    CK_RV rv = p->f->C_GetMechanismInfo(p->slot, p->mech, &mi);
    char what[96];

    snprintf(what, sizeof(what), "mechanism %s unusable on the token",
             mech_name(p->mech));
    if (rv != CKR_OK)
        return fail_rv(err, COFFER_EINVAL, rv, what);
    if ((mi.flags & (CKF_ENCRYPT | CKF_DECRYPT)) !=
        (CKF_ENCRYPT | CKF_DECRYPT)) {
        errbuf_set(err, "%s: the token cannot encrypt and decrypt with it",
                   what);
        return COFFER_EINVAL;
    }
    return 0;
}

/* ============================================================== keys == */

/* Up to two objects of class/type with the key's label (and id). */
static CK_RV find_objects(struct seal_pkcs11 *p, CK_OBJECT_CLASS cls,
                          CK_KEY_TYPE type, CK_OBJECT_HANDLE found[2],
                          CK_ULONG *n)
{
    CK_ATTRIBUTE t[4] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_LABEL, p->key_label, strlen(p->key_label)},
        {CKA_ID, p->key_id, p->key_id_len},
    };
    CK_ULONG nt = p->key_id_len > 0 ? 4 : 3;
    CK_RV rv = p->f->C_FindObjectsInit(p->session, t, nt);

    *n = 0;
    if (rv != CKR_OK)
        return rv;
    rv = p->f->C_FindObjects(p->session, found, 2, n);
    (void)p->f->C_FindObjectsFinal(p->session);
    return rv;
}

static int generate_aes(struct seal_pkcs11 *p, struct errbuf *err)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG len = AES_KEY_LEN;
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ATTRIBUTE t[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_LABEL, p->key_label, strlen(p->key_label)},
        {CKA_ID, p->key_id, p->key_id_len},
    };
    CK_ULONG nt = sizeof(t) / sizeof(t[0]) - (p->key_id_len > 0 ? 0 : 1);
    CK_RV rv = p->f->C_GenerateKey(p->session, &gen, t, nt, &p->key);

    if (rv != CKR_OK)
        return fail_rv(err, COFFER_EINVAL, rv,
                       "generating the AES key (generate_key) failed");
    log_info("seal: generated the AES-256 key \"%s\" in the HSM "
             "(non-extractable)", p->key_label);
    return 0;
}

static int generate_rsa(struct seal_pkcs11 *p, struct errbuf *err)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = RSA_BITS;
    CK_BYTE exponent[] = {0x01, 0x00, 0x01};
    CK_MECHANISM gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_MODULUS_BITS, &bits, sizeof(bits)},
        {CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)},
        {CKA_LABEL, p->key_label, strlen(p->key_label)},
        {CKA_ID, p->key_id, p->key_id_len},
    };
    CK_ATTRIBUTE priv[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_LABEL, p->key_label, strlen(p->key_label)},
        {CKA_ID, p->key_id, p->key_id_len},
    };
    CK_ULONG drop = p->key_id_len > 0 ? 0 : 1;
    CK_RV rv = p->f->C_GenerateKeyPair(
        p->session, &gen, pub, sizeof(pub) / sizeof(pub[0]) - drop, priv,
        sizeof(priv) / sizeof(priv[0]) - drop, &p->pub, &p->key);

    if (rv != CKR_OK)
        return fail_rv(err, COFFER_EINVAL, rv,
                       "generating the RSA key pair (generate_key) failed");
    log_info("seal: generated the RSA-%d key pair \"%s\" in the HSM "
             "(private key non-extractable)", RSA_BITS, p->key_label);
    return 0;
}

/* Exactly one object, or a message saying what is wrong. */
static int one_object(struct seal_pkcs11 *p, CK_OBJECT_CLASS cls,
                      CK_KEY_TYPE type, const char *what,
                      CK_OBJECT_HANDLE *out, bool *missing,
                      struct errbuf *err)
{
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    CK_RV rv = find_objects(p, cls, type, found, &n);

    *missing = false;
    if (rv != CKR_OK)
        return fail_rv(err, COFFER_EINVAL, rv, "searching the token failed");
    if (n == 1) {
        *out = found[0];
        return 0;
    }
    if (n == 0) {
        *missing = true;
        errbuf_set(err, "no %s labelled \"%s\"%s on the token (key_label; "
                        "create it, or set generate_key = true)", what,
                   p->key_label, p->key_id_len > 0 ? " with that key_id" : "");
    } else {
        errbuf_set(err, "more than one %s is labelled \"%s\": set key_id "
                        "to pick one", what, p->key_label);
    }
    return COFFER_EINVAL;
}

/* The RSA pair; generated only when neither half exists. */
static int find_rsa(struct seal_pkcs11 *p, bool generate,
                    struct errbuf *err)
{
    bool priv_missing = false, pub_missing = false;
    int rc = one_object(p, CKO_PRIVATE_KEY, CKK_RSA, "RSA private key",
                        &p->key, &priv_missing, err);

    if (rc == 0)
        return one_object(p, CKO_PUBLIC_KEY, CKK_RSA, "RSA public key",
                          &p->pub, &pub_missing, err);
    if (!priv_missing || !generate)
        return rc;
    if (one_object(p, CKO_PUBLIC_KEY, CKK_RSA, "RSA public key", &p->pub,
                   &pub_missing, err) == 0 || !pub_missing) {
        errbuf_set(err, "an RSA public key labelled \"%s\" exists without "
                        "its private key: remove it or fix key_label",
                   p->key_label);
        return COFFER_EINVAL;
    }
    return generate_rsa(p, err);
}

static int find_keys(struct seal_pkcs11 *p, bool generate,
                     struct errbuf *err)
{
    bool missing = false;
    int rc;

    if (p->mech == CKM_RSA_PKCS_OAEP)
        return find_rsa(p, generate, err);
    rc = one_object(p, CKO_SECRET_KEY, CKK_AES, "AES key", &p->key,
                    &missing, err);
    return rc != 0 && missing && generate ? generate_aes(p, err) : rc;
}

/* ========================================================= lifecycle == */

static int self_test(struct seal_pkcs11 *p, struct errbuf *err);
static int pkcs11_wrap(void *ctx, const char *label, const uint8_t *plain,
                       size_t len, char **blob, struct errbuf *err);
static int pkcs11_unwrap(void *ctx, const char *label, const char *blob,
                         size_t blob_len, uint8_t *plain, size_t cap,
                         size_t *len, bool *rewrap, struct errbuf *err);
static const char *pkcs11_key_name(const void *ctx);

struct seal_pkcs11 *seal_pkcs11_new(const struct seal_pkcs11_config *c,
                                    struct errbuf *err)
{
    struct seal_pkcs11 *p = xcalloc(1, sizeof(*p));
    int rc;

    pthread_mutex_init(&p->mu, NULL);
    p->wrapper = (struct seal_wrapper){"pkcs11", p, pkcs11_wrap,
                                       pkcs11_unwrap, pkcs11_key_name};
    rc = seal_wrap_check_name("key_label", c->key_label, LABEL_MAX, err);
    if (rc == 0) {
        snprintf(p->key_label, sizeof(p->key_label), "%s", c->key_label);
        rc = parse_key_id(p, c->key_id, err);
    }
    if (rc == 0)
        rc = parse_mechanism(p, c->mechanism, err);
    if (rc == 0)
        rc = parse_oaep_hash(p, c->rsa_oaep_hash, err);
    if (rc == 0)
        rc = load_module(p, c->lib, err);
    if (rc == 0)
        rc = find_slot(p, c->slot, c->token_label, err);
    if (rc == 0)
        rc = check_mechanism(p, err);
    if (rc == 0)
        rc = open_login(p, c->pin, err);
    if (rc == 0)
        rc = find_keys(p, c->generate_key, err);
    if (rc == 0)
        rc = self_test(p, err);
    if (rc != 0) {
        seal_pkcs11_free(p);
        p = NULL;
    }
    return p;
}

void seal_pkcs11_free(struct seal_pkcs11 *p)
{
    if (p == NULL)
        return;
    if (p->logged_in)
        (void)p->f->C_Logout(p->session);
    if (p->session_open)
        (void)p->f->C_CloseSession(p->session);
    if (p->finalize)
        (void)p->f->C_Finalize(NULL);
    if (p->dl != NULL)
        dlclose(p->dl);
    pthread_mutex_destroy(&p->mu);
    crypto_wipe(p, sizeof(*p));
    free(p);
}

/* ======================================================== operations == */

/* One C_Encrypt or C_Decrypt, serialised on the session. */
static CK_RV hsm_crypt(struct seal_pkcs11 *p, bool enc, CK_MECHANISM *m,
                       CK_OBJECT_HANDLE key, const uint8_t *in, size_t len,
                       uint8_t *out, CK_ULONG *out_len)
{
    CK_RV rv;

    pthread_mutex_lock(&p->mu);
    rv = enc ? p->f->C_EncryptInit(p->session, m, key)
             : p->f->C_DecryptInit(p->session, m, key);
    if (rv == CKR_OK && enc)
        rv = p->f->C_Encrypt(p->session, (CK_BYTE_PTR)in, (CK_ULONG)len, out,
                             out_len);
    else if (rv == CKR_OK)
        rv = p->f->C_Decrypt(p->session, (CK_BYTE_PTR)in, (CK_ULONG)len, out,
                             out_len);
    pthread_mutex_unlock(&p->mu);
    return rv;
}

/* "coffer/seal/pkcs11/v1\n<mechanism>\n<label>\n<key label>" */
static char *make_aad(const struct seal_pkcs11 *p, const char *label)
{
    size_t n = sizeof(AAD_PREFIX) + strlen(label) + strlen(p->key_label) +
               32;
    char *aad = xmalloc(n);

    snprintf(aad, n, "%s\n%s\n%s\n%s", AAD_PREFIX, mech_name(p->mech), label,
             p->key_label);
    return aad;
}

static char *b64_encode(const uint8_t *in, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

/* Strict-enough base64 into a new buffer; NULL if malformed. */
static uint8_t *b64_decode(const char *b64, size_t *len)
{
    size_t n = strlen(b64), pad = 0;
    uint8_t *raw;
    int got;

    if (n == 0 || n % 4 != 0 || n > (size_t)INT32_MAX / 2)
        return NULL;
    raw = xmalloc(n / 4 * 3 + 1);
    got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    while (pad < 2 && b64[n - 1 - pad] == '=')
        pad++;
    if (got < 0 || (size_t)got < pad) {
        free(raw);
        return NULL;
    }
    *len = (size_t)got - pad;
    return raw;
}

/* AES-GCM in the HSM: raw = nonce | ciphertext | tag. */
static int wrap_gcm(struct seal_pkcs11 *p, const char *aad,
                    const uint8_t *plain, size_t len, uint8_t **raw,
                    size_t *raw_len, struct errbuf *err)
{
    CK_GCM_PARAMS gp;
    CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof(gp)};
    CK_ULONG out_len = len + TAG_LEN;
    CK_RV rv;

    *raw_len = NONCE_LEN + len + TAG_LEN;
    *raw = xmalloc(*raw_len);
    if (crypto_random(*raw, NONCE_LEN) != 0) {
        errbuf_set(err, "no randomness for the nonce");
        return COFFER_EINTERNAL;
    }
    gp = (CK_GCM_PARAMS){*raw, NONCE_LEN, NONCE_LEN * 8, (CK_BYTE_PTR)aad,
                         strlen(aad), TAG_LEN * 8};
    rv = hsm_crypt(p, true, &m, p->key, plain, len, *raw + NONCE_LEN,
                   &out_len);
    if (rv == CKR_OK && out_len != len + TAG_LEN)
        rv = CKR_FUNCTION_FAILED;
    if (rv != CKR_OK)
        return fail_rv(err, COFFER_EINTERNAL, rv,
                       "encrypting with the HSM key failed");
    return 0;
}

static int unwrap_gcm(struct seal_pkcs11 *p, const char *aad,
                      const uint8_t *raw, size_t raw_len, uint8_t *plain,
                      size_t cap, size_t *len, struct errbuf *err)
{
    CK_GCM_PARAMS gp;
    CK_MECHANISM m = {CKM_AES_GCM, &gp, sizeof(gp)};
    CK_ULONG out_len;
    uint8_t *tmp;
    CK_RV rv;

    if (raw_len < NONCE_LEN + TAG_LEN || raw_len - NONCE_LEN - TAG_LEN > cap)
        return COFFER_EPERM;
    out_len = raw_len - NONCE_LEN;
    tmp = xmalloc(out_len);
    gp = (CK_GCM_PARAMS){(CK_BYTE_PTR)raw, NONCE_LEN, NONCE_LEN * 8,
                         (CK_BYTE_PTR)aad, strlen(aad), TAG_LEN * 8};
    rv = hsm_crypt(p, false, &m, p->key, raw + NONCE_LEN,
                   raw_len - NONCE_LEN, tmp, &out_len);
    if (rv == CKR_OK && out_len == raw_len - NONCE_LEN - TAG_LEN) {
        memcpy(plain, tmp, out_len);
        *len = out_len;
    } else if (rv == CKR_OK) {
        rv = CKR_ENCRYPTED_DATA_INVALID;
    }
    secure_free(tmp, raw_len - NONCE_LEN);
    if (rv != CKR_OK)
        fail_rv(err, COFFER_EPERM, rv, "decrypting with the HSM key failed");
    return rv == CKR_OK ? 0 : COFFER_EPERM;
}

/* SoftHSM 2.6 knows only SHA-1 for OAEP (rsa_oaep_hash = "sha1"). */
static CK_RSA_PKCS_OAEP_PARAMS oaep_params(const struct seal_pkcs11 *p)
{
    if (p->oaep_sha1)
        return (CK_RSA_PKCS_OAEP_PARAMS){CKM_SHA_1, CKG_MGF1_SHA1,
                                         CKZ_DATA_SPECIFIED, NULL, 0};
    return (CK_RSA_PKCS_OAEP_PARAMS){CKM_SHA256, CKG_MGF1_SHA256,
                                     CKZ_DATA_SPECIFIED, NULL, 0};
}

/*
 * RSA-OAEP envelope: a fresh data key seals the value in software
 * (barrier_seal_value, AES-256-GCM with aad) and the HSM's public key
 * wraps the data key into *wrapped (raw bytes).
 */
static int wrap_rsa(struct seal_pkcs11 *p, const char *aad,
                    const uint8_t *plain, size_t len, uint8_t **raw,
                    size_t *raw_len, uint8_t *wrapped, CK_ULONG *wrapped_len,
                    struct errbuf *err)
{
    CK_RSA_PKCS_OAEP_PARAMS op = oaep_params(p);
    CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &op, sizeof(op)};
    uint8_t dek[DEK_LEN];
    CK_RV rv;
    int rc = crypto_random(dek, sizeof(dek));

    if (rc == 0)
        rc = barrier_seal_value(dek, aad, plain, len, raw, raw_len);
    if (rc != 0) {
        errbuf_set(err, "sealing with the data key failed");
        crypto_wipe(dek, sizeof(dek));
        return COFFER_EINTERNAL;
    }
    rv = hsm_crypt(p, true, &m, p->pub, dek, sizeof(dek), wrapped,
                   wrapped_len);
    crypto_wipe(dek, sizeof(dek));
    if (rv != CKR_OK)
        return fail_rv(err, COFFER_EINTERNAL, rv,
                       "encrypting with the HSM public key failed");
    return 0;
}

static int unwrap_rsa(struct seal_pkcs11 *p, const char *aad,
                      const uint8_t *raw, size_t raw_len,
                      const uint8_t *wrapped, size_t wrapped_len,
                      uint8_t *plain, size_t cap, size_t *len,
                      struct errbuf *err)
{
    CK_RSA_PKCS_OAEP_PARAMS op = oaep_params(p);
    CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &op, sizeof(op)};
    uint8_t dek[RSA_CT_MAX];
    CK_ULONG dek_len = sizeof(dek);
    uint8_t *out = NULL;
    size_t out_len = 0;
    CK_RV rv;
    int rc = COFFER_EPERM;

    rv = hsm_crypt(p, false, &m, p->key, wrapped, wrapped_len, dek,
                   &dek_len);
    if (rv != CKR_OK) {
        fail_rv(err, COFFER_EPERM, rv,
                "decrypting with the HSM private key failed");
    } else if (dek_len == DEK_LEN &&
               barrier_open_value(dek, aad, raw, raw_len, &out,
                                  &out_len) == 0 &&
               out_len <= cap) {
        memcpy(plain, out, out_len);
        *len = out_len;
        rc = 0;
    }
    crypto_wipe(dek, sizeof(dek));
    secure_free(out, out_len);
    return rc;
}

/* {"mechanism":..., "key_label":..., "ciphertext":..., ["wrapped_key"]} */
static char *blob_json(const struct seal_pkcs11 *p, const uint8_t *raw,
                       size_t raw_len, const uint8_t *wrapped,
                       size_t wrapped_len)
{
    cJSON *o = cJSON_CreateObject();
    char *ct = b64_encode(raw, raw_len), *wk = NULL, *out;

    cJSON_AddStringToObject(o, "mechanism", mech_name(p->mech));
    cJSON_AddStringToObject(o, "key_label", p->key_label);
    cJSON_AddStringToObject(o, "ciphertext", ct);
    if (wrapped != NULL) {
        wk = b64_encode(wrapped, wrapped_len);
        cJSON_AddStringToObject(o, "wrapped_key", wk);
        cJSON_AddStringToObject(o, "rsa_oaep_hash", oaep_hash_name(p));
    }
    out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    free(ct);
    free(wk);
    return out;
}

static int pkcs11_wrap(void *ctx, const char *label, const uint8_t *plain,
                       size_t len, char **blob, struct errbuf *err)
{
    struct seal_pkcs11 *p = ctx;
    char *aad = make_aad(p, label);
    uint8_t *raw = NULL, wrapped[RSA_CT_MAX];
    size_t raw_len = 0;
    CK_ULONG wrapped_len = sizeof(wrapped);
    int rc;

    *blob = NULL;
    if (p->mech == CKM_AES_GCM)
        rc = wrap_gcm(p, aad, plain, len, &raw, &raw_len, err);
    else
        rc = wrap_rsa(p, aad, plain, len, &raw, &raw_len, wrapped,
                      &wrapped_len, err);
    if (rc == 0)
        *blob = blob_json(p, raw, raw_len,
                          p->mech == CKM_AES_GCM ? NULL : wrapped,
                          wrapped_len);
    if (rc == 0 && *blob == NULL) {
        errbuf_set(err, "encoding the wrapped %s failed", label);
        rc = COFFER_EINTERNAL;
    }
    free(aad);
    secure_free(raw, raw_len);
    return rc;
}

/* The blob was made by this seal's mechanism and key label. */
static int check_blob(const struct seal_pkcs11 *p, const char *label,
                      const cJSON *mech, const cJSON *key_label,
                      const cJSON *hash, struct errbuf *err)
{
    if (strcmp(mech->valuestring, mech_name(p->mech)) != 0) {
        errbuf_set(err, "the %s is wrapped with %.32s, but the seal's "
                        "mechanism is %s", label, mech->valuestring,
                   mech_name(p->mech));
        return COFFER_EPERM;
    }
    if (strcmp(key_label->valuestring, p->key_label) != 0) {
        errbuf_set(err, "the %s is wrapped with the HSM key \"%.64s\", but "
                        "key_label is \"%.64s\"", label,
                   key_label->valuestring, p->key_label);
        return COFFER_EPERM;
    }
    if (p->mech == CKM_RSA_PKCS_OAEP &&
        (!cJSON_IsString(hash) ||
         strcmp(hash->valuestring, oaep_hash_name(p)) != 0)) {
        errbuf_set(err, "the %s is wrapped with another rsa_oaep_hash than "
                        "the configured \"%s\"", label, oaep_hash_name(p));
        return COFFER_EPERM;
    }
    return 0;
}

static int pkcs11_unwrap(void *ctx, const char *label, const char *blob,
                         size_t blob_len, uint8_t *plain, size_t cap,
                         size_t *len, bool *rewrap, struct errbuf *err)
{
    struct seal_pkcs11 *p = ctx;
    cJSON *o = cJSON_ParseWithLength(blob, blob_len);
    const cJSON *mech = cJSON_GetObjectItemCaseSensitive(o, "mechanism");
    const cJSON *kl = cJSON_GetObjectItemCaseSensitive(o, "key_label");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(o, "ciphertext");
    const cJSON *wk = cJSON_GetObjectItemCaseSensitive(o, "wrapped_key");
    uint8_t *raw = NULL, *wrapped = NULL;
    size_t raw_len = 0, wrapped_len = 0;
    char *aad = NULL;
    int rc = COFFER_EPERM;

    *len = 0;
    *rewrap = false;
    if (!cJSON_IsString(mech) || !cJSON_IsString(kl) ||
        !cJSON_IsString(ct) ||
        (raw = b64_decode(ct->valuestring, &raw_len)) == NULL ||
        (p->mech == CKM_RSA_PKCS_OAEP &&
         (!cJSON_IsString(wk) ||
          (wrapped = b64_decode(wk->valuestring, &wrapped_len)) == NULL))) {
        errbuf_set(err, "the wrapped %s in storage is malformed", label);
        goto out;
    }
    rc = check_blob(p, label, mech, kl,
                    cJSON_GetObjectItemCaseSensitive(o, "rsa_oaep_hash"), err);
    if (rc != 0)
        goto out;
    aad = make_aad(p, label);
    if (p->mech == CKM_AES_GCM)
        rc = unwrap_gcm(p, aad, raw, raw_len, plain, cap, len, err);
    else
        rc = unwrap_rsa(p, aad, raw, raw_len, wrapped, wrapped_len, plain,
                        cap, len, err);
    if (rc != 0) {
        crypto_wipe(plain, cap);
        errbuf_set(err, "the %s does not open with the HSM key \"%s\" "
                        "(wrong key, or the stored value was altered)",
                   label, p->key_label);
    }
out:
    free(aad);
    secure_free(raw, raw_len);
    free(wrapped);
    cJSON_Delete(o);
    return rc;
}

static const char *pkcs11_key_name(const void *ctx)
{
    const struct seal_pkcs11 *p = ctx;

    return p->key_label;
}

const struct seal_wrapper *seal_pkcs11_wrapper(const struct seal_pkcs11 *p)
{
    return &p->wrapper;
}

/*
 * One wrap and unwrap of random bytes at start-up, so that a key without
 * the right usage or parameters the token refuses (SoftHSM 2.6's OAEP
 * knows SHA-1 only) stop the start, not a later sys/init.
 */
static int self_test(struct seal_pkcs11 *p, struct errbuf *err)
{
    uint8_t in[DEK_LEN], out[DEK_LEN];
    size_t len = 0;
    bool rewrap;
    char *blob = NULL;
    struct errbuf why;
    int rc = crypto_random(in, sizeof(in));

    if (rc == 0)
        rc = pkcs11_wrap(p, "self-test", in, sizeof(in), &blob, &why);
    if (rc == 0)
        rc = pkcs11_unwrap(p, "self-test", blob, strlen(blob), out,
                           sizeof(out), &len, &rewrap, &why);
    if (rc == 0 && (len != sizeof(in) ||
                    !crypto_equal(in, sizeof(in), out, len))) {
        errbuf_set(&why, "the round trip gave other bytes");
        rc = COFFER_EINTERNAL;
    }
    if (rc != 0)
        errbuf_set(err, "the HSM key fails a test wrap: %.150s%s", why.msg,
                   p->mech == CKM_RSA_PKCS_OAEP && !p->oaep_sha1
                       ? " (SoftHSM needs rsa_oaep_hash = \"sha1\")"
                       : "");
    crypto_wipe(in, sizeof(in));
    crypto_wipe(out, sizeof(out));
    free(blob);
    return rc == 0 ? 0 : COFFER_EINVAL;
}
