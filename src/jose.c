/*
 * jose.c - JWS/JWT verification, JWK sets and X.509 chains over OpenSSL 3.
 *
 * See jose.h for what this file promises. Chapters: algorithms;
 * base64url; keys; JWK; PEM; keysets; JWS; claims. The X.509 part is
 * jose_x509.c (it shares the PEM reader declared in jose.h).
 *
 * A note on the OpenSSL error queue: it is per thread and every failed
 * call pushes onto it. Each public function that calls OpenSSL clears it
 * on the way out, so a worker thread does not accumulate stale errors
 * that a later, unrelated caller would report.
 */
#include "jose.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "json.h"

/* Header and claims nest no deeper than this. */
#define JOSE_HEADER_DEPTH 16
#define JOSE_CLAIMS_DEPTH 64
#define JOSE_KID_MAX 1024

/* ========================================================= algorithms == */

static const struct {
    const char *name;
    enum jose_alg alg;
} alg_names[] = {
    {"RS256", JOSE_RS256}, {"RS384", JOSE_RS384}, {"RS512", JOSE_RS512},
    {"PS256", JOSE_PS256}, {"PS384", JOSE_PS384}, {"PS512", JOSE_PS512},
    {"ES256", JOSE_ES256}, {"ES384", JOSE_ES384}, {"ES512", JOSE_ES512},
    {"EdDSA", JOSE_EDDSA},
};

enum jose_alg jose_alg_from_name(const char *name)
{
    if (name == NULL)
        return JOSE_ALG_INVALID;
    for (size_t i = 0; i < ARRAY_LEN(alg_names); i++) {
        if (strcmp(alg_names[i].name, name) == 0)
            return alg_names[i].alg;
    }
    return JOSE_ALG_INVALID;
}

const char *jose_alg_name(enum jose_alg alg)
{
    for (size_t i = 0; i < ARRAY_LEN(alg_names); i++) {
        if (alg_names[i].alg == alg)
            return alg_names[i].name;
    }
    return "?";
}

static bool alg_is_rsa(enum jose_alg a)
{
    return a >= JOSE_RS256 && a <= JOSE_PS512;
}

static bool alg_is_pss(enum jose_alg a)
{
    return a >= JOSE_PS256 && a <= JOSE_PS512;
}

static bool alg_is_ec(enum jose_alg a)
{
    return a >= JOSE_ES256 && a <= JOSE_ES512;
}

/* The digest of an RSA or ECDSA alg (EdDSA has none: NULL). */
static const EVP_MD *alg_md(enum jose_alg a)
{
    switch (a) {
    case JOSE_RS256: case JOSE_PS256: case JOSE_ES256:
        return EVP_sha256();
    case JOSE_RS384: case JOSE_PS384: case JOSE_ES384:
        return EVP_sha384();
    case JOSE_RS512: case JOSE_PS512: case JOSE_ES512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

/* The curve an ES alg requires, and the size of r (and of s) in bytes. */
static int alg_curve(enum jose_alg a, size_t *half)
{
    switch (a) {
    case JOSE_ES256:
        *half = 32;
        return NID_X9_62_prime256v1;
    case JOSE_ES384:
        *half = 48;
        return NID_secp384r1;
    case JOSE_ES512:
        *half = 66;
        return NID_secp521r1;
    default:
        *half = 0;
        return NID_undef;
    }
}

/*
 * An attacker-chosen string made safe for a message: printable ASCII
 * only, at most 32 characters.
 */
static const char *printable(const char *s, char *buf, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; s != NULL && s[i] != '\0' && j + 4 < n && i < 32; i++)
        buf[j++] = isprint((unsigned char)s[i]) ? s[i] : '?';
    if (s != NULL && strlen(s) > 32 && j + 4 < n) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

/* ========================================================== base64url == */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int jose_b64url_decode_into(const char *in, size_t len, unsigned char *out,
                            size_t *out_len)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t j = 0;

    *out_len = 0;
    if (len % 4 == 1)
        return COFFER_EINVAL;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return COFFER_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[j++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1u;
        }
    }
    /* Leftover bits must be zero, or two texts would give one value. */
    if (acc != 0)
        return COFFER_EINVAL;
    *out_len = j;
    return COFFER_OK;
}

int jose_b64url_decode(const char *in, size_t len, unsigned char **out,
                       size_t *out_len)
{
    unsigned char *buf = xmalloc(JOSE_B64URL_DECODED_MAX(len) + 1);

    *out = NULL;
    if (jose_b64url_decode_into(in, len, buf, out_len) != 0) {
        free(buf);
        return COFFER_EINVAL;
    }
    buf[*out_len] = '\0';
    *out = buf;
    return COFFER_OK;
}

size_t jose_b64url_encode_into(const void *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t i = 0, j = 0;

    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[j++] = alphabet[v >> 18];
        out[j++] = alphabet[(v >> 12) & 63];
        out[j++] = alphabet[(v >> 6) & 63];
        out[j++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        out[j++] = alphabet[p[i] >> 2];
        out[j++] = alphabet[(p[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
        out[j++] = alphabet[v >> 10];
        out[j++] = alphabet[(v >> 4) & 63];
        out[j++] = alphabet[(v & 15) << 2];
    }
    return j;
}

char *jose_b64url_encode(const void *in, size_t len, size_t *out_len)
{
    char *out = xmalloc(JOSE_B64URL_ENCODED_MAX(len) + 1);
    size_t n = jose_b64url_encode_into(in, len, out);

    out[n] = '\0';
    if (out_len != NULL)
        *out_len = n;
    return out;
}

/* =============================================================== keys == */

struct jose_key {
    EVP_PKEY *pkey;
    char *kid;          /* NULL if none */
    enum jose_alg alg;  /* the JWK's "alg", or JOSE_ALG_INVALID */
    int type;           /* EVP_PKEY_RSA, _EC, _ED25519, _ED448 */
    int bits;           /* RSA modulus size */
    int curve;          /* EC: the curve's NID */
};

/* The NID of an EC key's named curve, or NID_undef. */
static int pkey_curve(const EVP_PKEY *pkey)
{
    char name[64];
    size_t len = 0;

    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name,
                                       sizeof(name), &len) != 1)
        return NID_undef;
    return OBJ_sn2nid(name);
}

int jose_key_from_pkey(EVP_PKEY *pkey, struct jose_key **out,
                       struct errbuf *err)
{
    struct jose_key *k;
    int type = EVP_PKEY_get_base_id(pkey);
    int bits = 0, curve = NID_undef;

    *out = NULL;
    switch (type) {
    case EVP_PKEY_RSA:
        bits = EVP_PKEY_get_bits(pkey);
        if (bits < JOSE_RSA_MIN_BITS || bits > JOSE_RSA_MAX_BITS) {
            errbuf_set(err, "RSA key of %d bits (from %d to %d supported)",
                       bits, JOSE_RSA_MIN_BITS, JOSE_RSA_MAX_BITS);
            return COFFER_EUNSUPPORTED;
        }
        break;
    case EVP_PKEY_EC:
        curve = pkey_curve(pkey);
        if (curve != NID_X9_62_prime256v1 && curve != NID_secp384r1 &&
            curve != NID_secp521r1) {
            errbuf_set(err, "unsupported elliptic curve");
            return COFFER_EUNSUPPORTED;
        }
        break;
    case EVP_PKEY_ED25519:
    case EVP_PKEY_ED448:
        break;
    default:
        errbuf_set(err, "unsupported key type");
        return COFFER_EUNSUPPORTED;
    }
    if (EVP_PKEY_up_ref(pkey) != 1) {
        errbuf_set(err, "out of memory");
        return COFFER_ENOMEM;
    }
    k = xcalloc(1, sizeof(*k));
    k->pkey = pkey;
    k->type = type;
    k->bits = bits;
    k->curve = curve;
    *out = k;
    return COFFER_OK;
}

void jose_key_free(struct jose_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key->kid);
    free(key);
}

const char *jose_key_kid(const struct jose_key *key)
{
    return key->kid;
}

void jose_key_describe(const struct jose_key *key, char *out, size_t n)
{
    switch (key->type) {
    case EVP_PKEY_RSA:
        snprintf(out, n, "RSA %d", key->bits);
        break;
    case EVP_PKEY_EC:
        snprintf(out, n, "EC %s",
                 key->curve == NID_X9_62_prime256v1 ? "P-256"
                 : key->curve == NID_secp384r1      ? "P-384"
                                                    : "P-521");
        break;
    case EVP_PKEY_ED25519:
        snprintf(out, n, "Ed25519");
        break;
    default:
        snprintf(out, n, "Ed448");
        break;
    }
}

bool jose_key_fits(const struct jose_key *key, enum jose_alg alg)
{
    size_t half;

    if (key->alg != JOSE_ALG_INVALID && key->alg != alg)
        return false;
    if (alg_is_rsa(alg))
        return key->type == EVP_PKEY_RSA;
    if (alg_is_ec(alg))
        return key->type == EVP_PKEY_EC && key->curve == alg_curve(alg, &half);
    if (alg == JOSE_EDDSA)
        return key->type == EVP_PKEY_ED25519 || key->type == EVP_PKEY_ED448;
    return false;
}

/* ================================================================ JWK == */

/*
 * The base64url member name of jwk, decoded, of 1..max bytes. *out is
 * new (free()). 0 or COFFER_EINVAL with err set.
 */
static int jwk_bytes(const cJSON *jwk, const char *name, size_t max,
                     unsigned char **out, size_t *len, struct errbuf *err)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(jwk, name);

    *out = NULL;
    if (!cJSON_IsString(m)) {
        errbuf_set(err, "missing or non-string \"%s\"", name);
        return COFFER_EINVAL;
    }
    if (jose_b64url_decode(m->valuestring, strlen(m->valuestring), out,
                           len) != 0) {
        errbuf_set(err, "\"%s\" is not base64url", name);
        return COFFER_EINVAL;
    }
    if (*len == 0 || *len > max) {
        errbuf_set(err, "\"%s\" has a wrong size", name);
        free(*out);
        *out = NULL;
        return COFFER_EINVAL;
    }
    return COFFER_OK;
}

/* Builds a public EVP_PKEY of type name from params. NULL on failure. */
static EVP_PKEY *pkey_fromdata(const char *name, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
    EVP_PKEY *pkey = NULL;

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* RSA from "n" and "e". */
static int jwk_rsa(const cJSON *jwk, EVP_PKEY **out, struct errbuf *err)
{
    unsigned char *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    int rc;

    *out = NULL;
    rc = jwk_bytes(jwk, "n", JOSE_RSA_MAX_BITS / 8 + 1, &n, &nlen, err);
    if (rc == 0)
        rc = jwk_bytes(jwk, "e", 8, &e, &elen, err);
    if (rc != 0)
        goto out;
    bn_n = BN_bin2bn(n, (int)nlen, NULL);
    bn_e = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    rc = COFFER_EINVAL;
    if (bn_n == NULL || bn_e == NULL || bld == NULL) {
        errbuf_set(err, "out of memory");
        goto out;
    }
    /* An even or tiny exponent is never a real RSA key. */
    if (!BN_is_odd(bn_e) || BN_is_one(bn_e) || !BN_is_odd(bn_n)) {
        errbuf_set(err, "not an RSA public key");
        goto out;
    }
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
        (*out = pkey_fromdata("RSA", bld)) == NULL) {
        errbuf_set(err, "not an RSA public key");
        goto out;
    }
    rc = COFFER_OK;
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return rc;
}

/* The OpenSSL group name and coordinate size of a JOSE "crv". */
static const char *ec_group(const char *crv, size_t *size)
{
    if (strcmp(crv, "P-256") == 0) {
        *size = 32;
        return "prime256v1";
    }
    if (strcmp(crv, "P-384") == 0) {
        *size = 48;
        return "secp384r1";
    }
    if (strcmp(crv, "P-521") == 0) {
        *size = 66;
        return "secp521r1";
    }
    return NULL;
}

/* True if OpenSSL accepts pkey's public part (a point on its curve). */
static bool pkey_public_ok(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;

    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* EC from "crv", "x", "y" (each exactly the curve's size, RFC 7518 6.2.1). */
static int jwk_ec(const cJSON *jwk, const char *crv, EVP_PKEY **out,
                  struct errbuf *err)
{
    unsigned char *x = NULL, *y = NULL, *point = NULL;
    size_t size = 0, xlen = 0, ylen = 0;
    const char *group = ec_group(crv, &size);
    OSSL_PARAM_BLD *bld = NULL;
    int rc;

    *out = NULL;
    if (group == NULL) {
        errbuf_set(err, "unsupported curve");
        return COFFER_EUNSUPPORTED;
    }
    rc = jwk_bytes(jwk, "x", size, &x, &xlen, err);
    if (rc == 0)
        rc = jwk_bytes(jwk, "y", size, &y, &ylen, err);
    if (rc != 0)
        goto out;
    rc = COFFER_EINVAL;
    if (xlen != size || ylen != size) {
        errbuf_set(err, "coordinates of a wrong size for %s", crv);
        goto out;
    }
    point = xmalloc(1 + 2 * size);
    point[0] = 0x04; /* uncompressed: 04 || x || y */
    memcpy(point + 1, x, size);
    memcpy(point + 1 + size, y, size);
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                         1 + 2 * size) != 1 ||
        (*out = pkey_fromdata("EC", bld)) == NULL || !pkey_public_ok(*out)) {
        EVP_PKEY_free(*out);
        *out = NULL;
        errbuf_set(err, "not a point on %s", crv);
        goto out;
    }
    rc = COFFER_OK;
out:
    OSSL_PARAM_BLD_free(bld);
    free(point);
    free(x);
    free(y);
    return rc;
}

/* OKP from "crv" and "x": Ed25519 or Ed448 (X25519/X448 are not for JWS). */
static int jwk_okp(const cJSON *jwk, const char *crv, EVP_PKEY **out,
                   struct errbuf *err)
{
    unsigned char *x = NULL;
    size_t xlen = 0, size;
    int type, rc;

    *out = NULL;
    if (strcmp(crv, "Ed25519") == 0) {
        type = EVP_PKEY_ED25519;
        size = 32;
    } else if (strcmp(crv, "Ed448") == 0) {
        type = EVP_PKEY_ED448;
        size = 57;
    } else {
        errbuf_set(err, "unsupported curve");
        return COFFER_EUNSUPPORTED;
    }
    rc = jwk_bytes(jwk, "x", size, &x, &xlen, err);
    if (rc != 0)
        return rc;
    rc = COFFER_EINVAL;
    if (xlen != size) {
        errbuf_set(err, "\"x\" has a wrong size for %s", crv);
    } else {
        *out = EVP_PKEY_new_raw_public_key(type, NULL, x, xlen);
        if (*out == NULL)
            errbuf_set(err, "not an %s public key", crv);
        else
            rc = COFFER_OK;
    }
    free(x);
    return rc;
}

/*
 * The members that say whether a JWK is meant for verifying signatures:
 * "use", "key_ops", "alg". *alg receives the JWK's algorithm (or
 * INVALID). 0, EINVAL (wrong types) or EUNSUPPORTED (not for us).
 */
static int jwk_purpose(const cJSON *jwk, enum jose_alg *alg,
                       struct errbuf *err)
{
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(jwk, "use");
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(jwk, "key_ops");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
    const cJSON *op;
    bool verify = false;
    char tmp[48];

    *alg = JOSE_ALG_INVALID;
    if (use != NULL && !cJSON_IsString(use)) {
        errbuf_set(err, "\"use\" is not a string");
        return COFFER_EINVAL;
    }
    if (use != NULL && strcmp(use->valuestring, "sig") != 0) {
        errbuf_set(err, "key use is not \"sig\"");
        return COFFER_EUNSUPPORTED;
    }
    if (ops != NULL) {
        if (!cJSON_IsArray(ops)) {
            errbuf_set(err, "\"key_ops\" is not an array");
            return COFFER_EINVAL;
        }
        cJSON_ArrayForEach(op, ops) {
            if (!cJSON_IsString(op)) {
                errbuf_set(err, "\"key_ops\" holds a non-string");
                return COFFER_EINVAL;
            }
            verify = verify || strcmp(op->valuestring, "verify") == 0;
        }
        if (!verify) {
            errbuf_set(err, "\"key_ops\" does not include \"verify\"");
            return COFFER_EUNSUPPORTED;
        }
    }
    if (a != NULL) {
        if (!cJSON_IsString(a)) {
            errbuf_set(err, "\"alg\" is not a string");
            return COFFER_EINVAL;
        }
        *alg = jose_alg_from_name(a->valuestring);
        if (*alg == JOSE_ALG_INVALID) {
            errbuf_set(err, "unsupported algorithm: %s",
                       printable(a->valuestring, tmp, sizeof(tmp)));
            return COFFER_EUNSUPPORTED;
        }
    }
    return COFFER_OK;
}

/* Private-key members: a public key set must never carry them. */
static bool jwk_has_private(const cJSON *jwk)
{
    static const char *const names[] = {"d", "p", "q", "dp", "dq", "qi",
                                        "oth"};

    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (cJSON_GetObjectItemCaseSensitive(jwk, names[i]) != NULL)
            return true;
    }
    return false;
}

/* The key material of jwk by its kty. */
static int jwk_pkey(const cJSON *jwk, const char *kty, EVP_PKEY **out,
                    struct errbuf *err)
{
    const cJSON *crv = cJSON_GetObjectItemCaseSensitive(jwk, "crv");

    *out = NULL;
    if (strcmp(kty, "RSA") == 0)
        return jwk_rsa(jwk, out, err);
    if (strcmp(kty, "EC") != 0 && strcmp(kty, "OKP") != 0) {
        errbuf_set(err, "unsupported key type");
        return COFFER_EUNSUPPORTED;
    }
    if (!cJSON_IsString(crv)) {
        errbuf_set(err, "missing or non-string \"crv\"");
        return COFFER_EINVAL;
    }
    if (strcmp(kty, "EC") == 0)
        return jwk_ec(jwk, crv->valuestring, out, err);
    return jwk_okp(jwk, crv->valuestring, out, err);
}

int jose_key_from_jwk(const cJSON *jwk, struct jose_key **out,
                      struct errbuf *err)
{
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jwk, "kid");
    EVP_PKEY *pkey = NULL;
    enum jose_alg alg;
    int rc;

    *out = NULL;
    if (!cJSON_IsObject(jwk)) {
        errbuf_set(err, "not a JSON object");
        rc = COFFER_EINVAL;
        goto out;
    }
    if (!cJSON_IsString(kty)) {
        errbuf_set(err, "missing or non-string \"kty\"");
        rc = COFFER_EINVAL;
        goto out;
    }
    if (kid != NULL &&
        (!cJSON_IsString(kid) || strlen(kid->valuestring) > JOSE_KID_MAX)) {
        errbuf_set(err, "\"kid\" is not a string (of at most %d bytes)",
                   JOSE_KID_MAX);
        rc = COFFER_EINVAL;
        goto out;
    }
    rc = jwk_purpose(jwk, &alg, err);
    if (rc != 0)
        goto out;
    if (strcmp(kty->valuestring, "oct") == 0) {
        errbuf_set(err, "symmetric keys are not accepted");
        rc = COFFER_EUNSUPPORTED;
        goto out;
    }
    if (jwk_has_private(jwk)) {
        errbuf_set(err, "private key material in a public key");
        rc = COFFER_EINVAL;
        goto out;
    }
    rc = jwk_pkey(jwk, kty->valuestring, &pkey, err);
    if (rc == 0)
        rc = jose_key_from_pkey(pkey, out, err);
    if (rc == 0 && alg != JOSE_ALG_INVALID && !jose_key_fits(*out, alg)) {
        errbuf_set(err, "\"alg\" %s does not fit the key", jose_alg_name(alg));
        jose_key_free(*out);
        *out = NULL;
        rc = COFFER_EINVAL;
    }
    if (rc == 0) {
        (*out)->alg = alg;
        (*out)->kid = kid != NULL ? xstrdup(kid->valuestring) : NULL;
    }
out:
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

/* ================================================================ PEM == */

int jose_pem_each(const char *text, size_t len, jose_pem_block_fn fn,
                  void *arg, size_t *count, struct errbuf *err)
{
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    int rc = COFFER_OK;

    *count = 0;
    if (bio == NULL) {
        errbuf_set(err, "out of memory");
        return COFFER_ENOMEM;
    }
    for (;;) {
        char *label = NULL, *header = NULL;
        unsigned char *der = NULL;
        long der_len = 0;
        unsigned long e;

        if (PEM_read_bio(bio, &label, &header, &der, &der_len) != 1) {
            e = ERR_peek_last_error();
            /* "no start line" at the end is the normal way out. */
            if (ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
                errbuf_set(err, "damaged PEM block");
                rc = COFFER_EINVAL;
            }
            break;
        }
        (*count)++;
        rc = fn(arg, label, der, der_len, err);
        OPENSSL_free(label);
        OPENSSL_free(header);
        OPENSSL_free(der);
        if (rc != 0)
            break;
    }
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

X509 *jose_der_cert(const unsigned char *der, long der_len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, der_len);

    if (x != NULL && p != der + der_len) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

/* What the block callback of jose_key_from_pem fills in. */
struct pem_key_state {
    EVP_PKEY *pkey;
};

static int pem_key_block(void *arg, const char *label,
                         const unsigned char *der, long der_len,
                         struct errbuf *err)
{
    struct pem_key_state *st = arg;
    const unsigned char *p = der;
    X509 *x = NULL;

    if (st->pkey != NULL) {
        errbuf_set(err, "more than one PEM block");
        return COFFER_EINVAL;
    }
    if (strcmp(label, "PUBLIC KEY") == 0) {
        st->pkey = d2i_PUBKEY(NULL, &p, der_len);
    } else if (strcmp(label, "RSA PUBLIC KEY") == 0) {
        st->pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, der_len);
    } else if (strcmp(label, "CERTIFICATE") == 0) {
        x = jose_der_cert(der, der_len);
        if (x != NULL) {
            st->pkey = X509_get_pubkey(x);
            p = der + der_len;
        }
        X509_free(x);
    } else {
        errbuf_set(err, "PEM block is not a public key or a certificate");
        return COFFER_EINVAL;
    }
    if (st->pkey == NULL || p != der + der_len) {
        errbuf_set(err, "unreadable %s", label);
        return COFFER_EINVAL;
    }
    return COFFER_OK;
}

int jose_key_from_pem(const char *pem, size_t len, struct jose_key **out,
                      struct errbuf *err)
{
    struct pem_key_state st = {NULL};
    size_t count = 0;
    int rc;

    *out = NULL;
    if (len > JOSE_PEM_MAX) {
        errbuf_set(err, "PEM text too large");
        return COFFER_EINVAL;
    }
    rc = jose_pem_each(pem, len, pem_key_block, &st, &count, err);
    if (rc == 0 && count == 0) {
        errbuf_set(err, "no PEM block found");
        rc = COFFER_EINVAL;
    }
    if (rc == 0)
        rc = jose_key_from_pkey(st.pkey, out, err);
    EVP_PKEY_free(st.pkey);
    ERR_clear_error();
    return rc;
}

/* ============================================================ keysets == */

struct jose_keyset {
    struct jose_key **keys;
    size_t n;
};

int jose_jwks_from_json(const cJSON *root, struct jose_keyset **out,
                        struct errbuf *err)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    const cJSON *jwk;
    struct jose_keyset *ks = NULL;
    struct errbuf kerr;
    size_t i = 0;
    int count, rc = COFFER_OK;

    *out = NULL;
    if (!cJSON_IsObject(root) || !cJSON_IsArray(keys)) {
        errbuf_set(err, "jwks: not an object with a \"keys\" array");
        return COFFER_EINVAL;
    }
    count = cJSON_GetArraySize(keys);
    if (count > JOSE_JWKS_MAX_KEYS) {
        errbuf_set(err, "jwks: more than %d keys", JOSE_JWKS_MAX_KEYS);
        return COFFER_EINVAL;
    }
    ks = xcalloc(1, sizeof(*ks));
    ks->keys = xcalloc((size_t)count + 1, sizeof(*ks->keys));
    cJSON_ArrayForEach(jwk, keys) {
        struct jose_key *k = NULL;
        int krc = jose_key_from_jwk(jwk, &k, &kerr);
        i++;
        if (krc == COFFER_EUNSUPPORTED)
            continue; /* not a signature key of ours: skip it */
        if (krc != 0) {
            errbuf_set(err, "jwks: key %zu: %s", i, kerr.msg);
            rc = COFFER_EINVAL;
            break;
        }
        ks->keys[ks->n++] = k;
    }
    if (rc == 0 && ks->n == 0) {
        errbuf_set(err, "jwks: no usable signature key");
        rc = COFFER_EINVAL;
    }
    if (rc != 0) {
        jose_keyset_free(ks);
        ks = NULL;
    }
    *out = ks;
    return rc;
}

int jose_jwks_parse(const char *text, size_t len, struct jose_keyset **out,
                    struct errbuf *err)
{
    struct errbuf jerr;
    cJSON *root;
    int rc;

    *out = NULL;
    if (len > JOSE_JWKS_MAX) {
        errbuf_set(err, "jwks: larger than %d bytes", JOSE_JWKS_MAX);
        return COFFER_EINVAL;
    }
    root = json_parse(text, len, JOSE_HEADER_DEPTH, false, &jerr);
    if (root == NULL) {
        errbuf_set(err, "jwks: %s", jerr.msg);
        return COFFER_EINVAL;
    }
    rc = jose_jwks_from_json(root, out, err);
    cJSON_Delete(root);
    return rc;
}

void jose_keyset_free(struct jose_keyset *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->n; i++)
        jose_key_free(ks->keys[i]);
    free(ks->keys);
    free(ks);
}

size_t jose_keyset_len(const struct jose_keyset *ks)
{
    return ks->n;
}

const struct jose_key *jose_keyset_key(const struct jose_keyset *ks, size_t i)
{
    return i < ks->n ? ks->keys[i] : NULL;
}

size_t jose_keyset_select(const struct jose_keyset *ks, const char *kid,
                          const struct jose_key **out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < ks->n && n < max; i++) {
        const char *k = ks->keys[i]->kid;
        if (kid == NULL || (k != NULL && strcmp(k, kid) == 0))
            out[n++] = ks->keys[i];
    }
    return n;
}

/* ================================================================ JWS == */

void jose_jws_init(struct jose_jws *jws)
{
    memset(jws, 0, sizeof(*jws));
}

void jose_jws_release(struct jose_jws *jws)
{
    free(jws->token);
    cJSON_Delete(jws->header);
    cJSON_Delete(jws->claims);
    free(jws->sig);
    jose_jws_init(jws);
}

/*
 * Parses one decoded segment as a JSON object. A second, lenient parse by
 * cJSON keeps duplicate members where ours keeps the last: if the member
 * counts differ, a name appears twice, and the token is refused (two
 * readers of it could disagree on "alg" or "sub").
 */
static int segment_object(const unsigned char *text, size_t len, int depth,
                          const char *what, cJSON **out, struct errbuf *err)
{
    struct errbuf jerr;
    cJSON *strict = json_parse((const char *)text, len, depth, false, &jerr);
    cJSON *lenient = NULL;

    *out = NULL;
    if (strict == NULL) {
        errbuf_set(err, "malformed token: %s is not valid JSON", what);
        return COFFER_EINVAL;
    }
    if (!cJSON_IsObject(strict)) {
        errbuf_set(err, "malformed token: %s is not a JSON object", what);
        cJSON_Delete(strict);
        return COFFER_EINVAL;
    }
    lenient = cJSON_ParseWithLength((const char *)text, len);
    if (lenient != NULL &&
        cJSON_GetArraySize(lenient) != cJSON_GetArraySize(strict)) {
        errbuf_set(err, "malformed token: duplicate member in the %s", what);
        cJSON_Delete(lenient);
        cJSON_Delete(strict);
        return COFFER_EINVAL;
    }
    cJSON_Delete(lenient);
    *out = strict;
    return COFFER_OK;
}

/* Splits token at its two dots; false unless exactly three non-empty parts. */
static bool split3(const char *token, size_t len, size_t *d1, size_t *d2)
{
    const char *p1 = memchr(token, '.', len), *p2;

    if (p1 == NULL)
        return false;
    p2 = memchr(p1 + 1, '.', len - (size_t)(p1 + 1 - token));
    if (p2 == NULL || memchr(p2 + 1, '.', len - (size_t)(p2 + 1 - token)))
        return false;
    *d1 = (size_t)(p1 - token);
    *d2 = (size_t)(p2 - token);
    return *d1 > 0 && *d2 > *d1 + 1 && *d2 + 1 < len;
}

/* Checks the header members that parse() promises: "alg" and "kid". */
static int header_members(struct jose_jws *jws, struct errbuf *err)
{
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(jws->header, "alg");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(jws->header, "kid");

    if (!cJSON_IsString(alg)) {
        errbuf_set(err, "malformed token: missing or non-string \"alg\"");
        return COFFER_EINVAL;
    }
    if (kid != NULL && !cJSON_IsString(kid)) {
        errbuf_set(err, "malformed token: non-string \"kid\"");
        return COFFER_EINVAL;
    }
    jws->alg_name = alg->valuestring;
    jws->alg = jose_alg_from_name(alg->valuestring);
    jws->kid = kid != NULL ? kid->valuestring : NULL;
    return COFFER_OK;
}

int jose_jws_parse(struct jose_jws *jws, const char *token, size_t len,
                   struct errbuf *err)
{
    unsigned char *hdr = NULL, *payload = NULL;
    size_t d1 = 0, d2 = 0, hlen = 0, plen = 0;
    int rc = COFFER_EINVAL;

    jose_jws_init(jws);
    if (len > JOSE_JWT_MAX) {
        errbuf_set(err, "malformed token: longer than %d bytes", JOSE_JWT_MAX);
        goto out;
    }
    if (!split3(token, len, &d1, &d2)) {
        errbuf_set(err, "malformed token: expected three non-empty "
                        "dot-separated segments");
        goto out;
    }
    if (jose_b64url_decode(token, d1, &hdr, &hlen) != 0 ||
        jose_b64url_decode(token + d1 + 1, d2 - d1 - 1, &payload, &plen) != 0 ||
        jose_b64url_decode(token + d2 + 1, len - d2 - 1, &jws->sig,
                           &jws->sig_len) != 0) {
        errbuf_set(err, "malformed token: a segment is not unpadded base64url");
        goto out;
    }
    rc = segment_object(hdr, hlen, JOSE_HEADER_DEPTH, "header", &jws->header,
                        err);
    if (rc == 0)
        rc = segment_object(payload, plen, JOSE_CLAIMS_DEPTH, "claims",
                            &jws->claims, err);
    if (rc == 0)
        rc = header_members(jws, err);
    if (rc == 0) {
        jws->token = xstrndup(token, len);
        jws->signing_len = d2;
    }
out:
    free(hdr);
    free(payload);
    if (rc != 0)
        jose_jws_release(jws);
    return rc;
}

/* JOSE's raw ECDSA r || s as DER, for OpenSSL. *der is OPENSSL_free'd. */
static int ecdsa_der(const unsigned char *sig, size_t half,
                     unsigned char **der, int *der_len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
    int rc = COFFER_ENOMEM;

    *der = NULL;
    if (es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* es owns them now */
        *der_len = i2d_ECDSA_SIG(es, der);
        if (*der_len > 0)
            rc = COFFER_OK;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return rc;
}

/* The signature length an alg and key demand (0: no constraint known). */
static size_t expected_sig_len(enum jose_alg alg, const struct jose_key *key)
{
    size_t half;

    if (alg_is_ec(alg)) {
        alg_curve(alg, &half);
        return 2 * half;
    }
    if (alg == JOSE_EDDSA)
        return key->type == EVP_PKEY_ED25519 ? 64 : 114;
    return (size_t)EVP_PKEY_get_size(key->pkey);
}

/* One EVP_DigestVerify of jws with key: true only if it verifies. */
static bool verify_with(const struct jose_jws *jws, const struct jose_key *key)
{
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = alg_md(jws->alg);
    const unsigned char *sig = jws->sig;
    unsigned char *der = NULL;
    size_t sig_len = jws->sig_len, half = 0;
    int der_len = 0;
    bool ok = false;

    if (md_ctx == NULL || jws->sig_len != expected_sig_len(jws->alg, key))
        goto out;
    if (alg_is_ec(jws->alg)) {
        alg_curve(jws->alg, &half);
        if (ecdsa_der(jws->sig, half, &der, &der_len) != 0)
            goto out;
        sig = der;
        sig_len = (size_t)der_len;
    }
    if (EVP_DigestVerifyInit(md_ctx, &pctx, md, NULL, key->pkey) != 1)
        goto out;
    if (alg_is_pss(jws->alg) &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1))
        goto out;
    ok = EVP_DigestVerify(md_ctx, sig, sig_len,
                          (const unsigned char *)jws->token,
                          jws->signing_len) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md_ctx);
    return ok;
}

int jose_jws_check_header(const struct jose_jws *jws, unsigned allowed,
                          struct errbuf *err)
{
    char tmp[48];

    if (cJSON_GetObjectItemCaseSensitive(jws->header, "crit") != NULL) {
        errbuf_set(err, "unsupported critical header (crit)");
        return COFFER_EUNSUPPORTED;
    }
    if (jws->alg == JOSE_ALG_INVALID) {
        errbuf_set(err, "unsupported algorithm: %s",
                   printable(jws->alg_name, tmp, sizeof(tmp)));
        return COFFER_EUNSUPPORTED;
    }
    if ((allowed & JOSE_ALG_BIT(jws->alg)) == 0) {
        errbuf_set(err, "algorithm not allowed: %s", jose_alg_name(jws->alg));
        return COFFER_EUNSUPPORTED;
    }
    if (alg_is_ec(jws->alg) &&
        jws->sig_len != expected_sig_len(jws->alg, NULL)) {
        errbuf_set(err, "invalid signature length for %s",
                   jose_alg_name(jws->alg));
        return COFFER_EINVAL;
    }
    return COFFER_OK;
}

int jose_jws_verify(const struct jose_jws *jws,
                    const struct jose_key *const *keys, size_t n,
                    unsigned allowed, struct errbuf *err)
{
    size_t tried = 0;
    int rc = jose_jws_check_header(jws, allowed, err);

    if (rc != 0)
        goto out;
    rc = COFFER_EPERM;
    for (size_t i = 0; i < n; i++) {
        if (!jose_key_fits(keys[i], jws->alg))
            continue;
        tried++;
        if (verify_with(jws, keys[i])) {
            rc = COFFER_OK;
            goto out;
        }
    }
    if (tried == 0) {
        errbuf_set(err, "no key for algorithm %s", jose_alg_name(jws->alg));
        rc = COFFER_EUNSUPPORTED;
    } else {
        errbuf_set(err, "signature does not verify");
    }
out:
    ERR_clear_error();
    return rc;
}

/* ============================================================= claims == */

void jose_claims_opts_init(struct jose_claims_opts *o)
{
    struct timespec ts = time_now();

    memset(o, 0, sizeof(*o));
    o->now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    o->clock_skew_leeway = 60;
    o->expiration_leeway = 150;
    o->not_before_leeway = 150;
    o->require_exp = false;
    o->allow_missing_times = false;
}

/*
 * A NumericDate claim in whole seconds (cap reads it as an int64, so a
 * fraction is cut off); 0 when it is absent, which is also what cap makes
 * of a claim whose value is 0. A present one must be a finite JSON number
 * (a big literal such as 1e10 is read by strtod).
 */
static int claim_time(const cJSON *claims, const char *name, double *v,
                      struct errbuf *err)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(claims, name);
    double d = 0;
    bool ok = c == NULL;

    if (cJSON_IsNumber(c)) {
        d = c->valuedouble;
        ok = true;
    } else if (cJSON_IsRaw(c) && c->valuestring != NULL &&
               json_number_literal(c->valuestring, strlen(c->valuestring))) {
        d = strtod(c->valuestring, NULL);
        ok = true;
    }
    /* Neither NaN nor an overflowed literal has a place on the clock. */
    if (!ok || !(d - d == 0)) {
        errbuf_set(err, "malformed token: \"%s\" is not a number", name);
        return COFFER_EINVAL;
    }
    *v = trunc(d);
    return COFFER_OK;
}

static double leeway(int64_t s)
{
    return s > 0 ? (double)s : 0.0;
}

/*
 * cap's rules (jose.h): a missing exp or nbf is derived from the others,
 * then now is compared with the clock skew as the only tolerance.
 */
static int check_times(const cJSON *claims, const struct jose_claims_opts *o,
                       struct errbuf *err)
{
    double exp = 0, nbf = 0, iat = 0, skew = leeway(o->clock_skew_leeway);
    int rc;

    rc = claim_time(claims, "exp", &exp, err);
    if (rc == 0)
        rc = claim_time(claims, "nbf", &nbf, err);
    if (rc == 0)
        rc = claim_time(claims, "iat", &iat, err);
    if (rc != 0)
        return rc;
    if (exp == 0 && o->require_exp) {
        errbuf_set(err, "missing expiration (exp) claim");
        return COFFER_EPERM;
    }
    if (exp == 0 && nbf == 0 && iat == 0) {
        if (o->allow_missing_times)
            return COFFER_OK;
        errbuf_set(err, "no issued at (iat), not before (nbf), or "
                        "expiration time (exp) claims in token");
        return COFFER_EPERM;
    }
    if (exp == 0)
        exp = (iat > nbf ? iat : nbf) + leeway(o->expiration_leeway);
    if (nbf == 0)
        nbf = iat != 0 ? iat : exp - leeway(o->not_before_leeway);
    if (o->now + skew < nbf) {
        errbuf_set(err, "invalid not before (nbf) claim: token not yet valid");
        return COFFER_EPERM;
    }
    if (o->now - skew > exp) {
        errbuf_set(err, "invalid expiration time (exp) claim: token is "
                        "expired");
        return COFFER_EPERM;
    }
    if (o->now + skew < iat) {
        errbuf_set(err, "invalid issued at (iat) claim: token issued in the "
                        "future");
        return COFFER_EPERM;
    }
    return COFFER_OK;
}

static bool audience_wanted(const struct jose_claims_opts *o, const char *s)
{
    for (size_t i = 0; i < o->n_audiences; i++) {
        if (strcmp(o->audiences[i], s) == 0)
            return true;
    }
    return false;
}

/* aud (a string or an array of strings) names one of o->audiences. */
static bool audience_ok(const cJSON *claims, const struct jose_claims_opts *o)
{
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
    const cJSON *a;
    bool found = false;

    if (cJSON_IsString(aud))
        return audience_wanted(o, aud->valuestring);
    if (!cJSON_IsArray(aud))
        return false;
    cJSON_ArrayForEach(a, aud) {
        if (!cJSON_IsString(a))
            return false; /* a malformed list matches nothing */
        found = found || audience_wanted(o, a->valuestring);
    }
    return found;
}

/* The string claim name equals want. */
static bool string_claim_is(const cJSON *claims, const char *name,
                            const char *want)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(claims, name);

    return cJSON_IsString(c) && strcmp(c->valuestring, want) == 0;
}

int jose_claims_check(const cJSON *claims, const struct jose_claims_opts *o,
                      struct errbuf *err)
{
    if (o->issuer != NULL && !string_claim_is(claims, "iss", o->issuer)) {
        errbuf_set(err, "invalid issuer (iss) claim");
        return COFFER_EPERM;
    }
    if (o->subject != NULL && !string_claim_is(claims, "sub", o->subject)) {
        errbuf_set(err, "invalid subject (sub) claim");
        return COFFER_EPERM;
    }
    if (o->n_audiences > 0 && !audience_ok(claims, o)) {
        errbuf_set(err, "invalid audience (aud) claim: audience claim does "
                        "not match any expected audience");
        return COFFER_EPERM;
    }
    return check_times(claims, o, err);
}
