/*
 * fuzz_jose.c - the JOSE and X.509 readers (src/jose.c, src/jose_x509.c).
 *
 * Byte 0 picks the reader, the rest is its input:
 *   0  a compact JWS: parsed, then verified against a JWKS of fixed keys
 *      (RSA 2048, P-256, Ed25519, made once at start-up) and its claims
 *      checked, as coffer.jose.verify does;
 *   1  a JWKS document; a set that parses has its kids looked up and
 *      verifies a fixed token;
 *   2  a single JWK;
 *   3  PEM text as a public key (parse_pem);
 *   4  PEM text as a certificate (x509.parse), then as leaf, CA bundle
 *      and intermediates of a chain check;
 *   5  base64url text.
 * Oracles beyond the sanitizers:
 *   - base64url is canonical: a text that decodes re-encodes to itself,
 *     and decoded bytes re-encode and decode to themselves;
 *   - a parsed JWS has object header and claims, a signing input that is
 *     a strict prefix of the token, and an "alg" that is a string;
 *   - no input ever verifies with an "alg" outside the ten we support,
 *     and a JWKS never holds more than JOSE_JWKS_MAX_KEYS keys.
 */
#include <openssl/evp.h>

#include "../../src/jose.h"
#include "../../src/json.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jose_key *fixed_keys[3];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    EVP_PKEY *pk[3];
    struct errbuf err;

    (void)argc;
    (void)argv;
    fuzz_quiet();
    pk[0] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    pk[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    pk[2] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    for (int i = 0; i < 3; i++) {
        FUZZ_CHECK(pk[i] != NULL);
        FUZZ_CHECK(jose_key_from_pkey(pk[i], &fixed_keys[i], &err) == 0);
        EVP_PKEY_free(pk[i]);
    }
    return 0;
}

/* A token signed by none of our keys, for JWKS inputs to verify. */
static const char fixed_token[] =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImEifQ.eyJzdWIiOiJ4In0."
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAA";

static bool passes(const cJSON *claims, const struct jose_claims_opts *o)
{
    struct errbuf err;

    return jose_claims_check(claims, o, &err) == 0;
}

static void check_claims(const cJSON *claims)
{
    static const char *const auds[] = {"vault"};
    struct jose_claims_opts o;
    bool plain, loose;

    jose_claims_opts_init(&o);
    plain = passes(claims, &o);
    /* allow_missing_times only loosens the checks, require_exp only
     * tightens them. */
    o.allow_missing_times = true;
    loose = passes(claims, &o);
    FUZZ_CHECK(!plain || loose);
    o.require_exp = true;
    FUZZ_CHECK(!passes(claims, &o) || loose);
    o.require_exp = false;
    o.allow_missing_times = false;
    o.issuer = "https://issuer";
    o.subject = "s";
    o.audiences = auds;
    o.n_audiences = 1;
    o.clock_skew_leeway = -5;
    (void)passes(claims, &o);
}

static void fuzz_jws(const char *text, size_t len)
{
    const struct jose_key *keys[3] = {fixed_keys[0], fixed_keys[1],
                                      fixed_keys[2]};
    struct jose_jws jws;
    struct errbuf err;

    if (jose_jws_parse(&jws, text, len, &err) != 0)
        return;
    FUZZ_CHECK(cJSON_IsObject(jws.header) && cJSON_IsObject(jws.claims));
    FUZZ_CHECK(jws.signing_len < len && jws.alg_name != NULL);
    FUZZ_CHECK(memcmp(jws.token, text, len) == 0);
    if (jose_jws_verify(&jws, keys, 3, JOSE_ALGS_ALL, &err) == 0)
        FUZZ_CHECK(jws.alg != JOSE_ALG_INVALID);
    check_claims(jws.claims);
    jose_jws_release(&jws);
}

static void fuzz_jwks(const char *text, size_t len)
{
    struct jose_keyset *ks = NULL;
    const struct jose_key *cand[JOSE_JWKS_MAX_KEYS];
    struct jose_jws jws;
    struct errbuf err;
    size_t n;

    if (jose_jwks_parse(text, len, &ks, &err) != 0) {
        FUZZ_CHECK(ks == NULL);
        return;
    }
    FUZZ_CHECK(jose_keyset_len(ks) >= 1 &&
               jose_keyset_len(ks) <= JOSE_JWKS_MAX_KEYS);
    n = jose_keyset_select(ks, "a", cand, JOSE_JWKS_MAX_KEYS);
    FUZZ_CHECK(jose_jws_parse(&jws, fixed_token, strlen(fixed_token),
                              &err) == 0);
    (void)jose_jws_verify(&jws, cand, n, JOSE_ALGS_ALL, &err);
    n = jose_keyset_select(ks, NULL, cand, JOSE_JWKS_MAX_KEYS);
    FUZZ_CHECK(n == jose_keyset_len(ks));
    (void)jose_jws_verify(&jws, cand, n, JOSE_ALGS_ALL, &err);
    jose_jws_release(&jws);
    jose_keyset_free(ks);
}

static void fuzz_jwk(const char *text, size_t len)
{
    cJSON *j = json_parse(text, len, 16, false, NULL);
    struct jose_key *k = NULL;
    struct errbuf err;
    char desc[64];

    if (j == NULL)
        return;
    if (jose_key_from_jwk(j, &k, &err) == 0) {
        jose_key_describe(k, desc, sizeof(desc));
        jose_key_free(k);
    } else {
        FUZZ_CHECK(k == NULL);
    }
    cJSON_Delete(j);
}

static void fuzz_pem_key(const char *text, size_t len)
{
    struct jose_key *k = NULL;
    struct errbuf err;

    if (jose_key_from_pem(text, len, &k, &err) == 0)
        jose_key_free(k);
    else
        FUZZ_CHECK(k == NULL);
}

static void fuzz_x509(const char *text, size_t len)
{
    struct jose_x509_info info;
    struct jose_x509_verify_opts o;
    struct errbuf err;

    if (jose_x509_parse(text, len, &info, &err) == 0) {
        FUZZ_CHECK(info.subject != NULL && info.serial != NULL);
        jose_x509_info_release(&info);
    }
    memset(&o, 0, sizeof(o));
    o.ca_pem = text;
    o.ca_len = len;
    o.intermediates_pem = text;
    o.intermediates_len = len;
    o.dns_name = "a.example";
    o.purpose = JOSE_PURPOSE_SERVER;
    (void)jose_x509_verify(text, len, &o, &err);
}

static void fuzz_b64(const char *text, size_t len)
{
    unsigned char *out = NULL, *back = NULL;
    size_t n = 0, m = 0, elen = 0;
    char *enc;

    if (jose_b64url_decode(text, len, &out, &n) == 0) {
        enc = jose_b64url_encode(out, n, &elen);
        FUZZ_CHECK(elen == len && memcmp(enc, text, len) == 0);
        free(enc);
        free(out);
    } else {
        FUZZ_CHECK(out == NULL);
    }
    enc = jose_b64url_encode(text, len, &elen);
    FUZZ_CHECK(jose_b64url_decode(enc, elen, &back, &m) == 0);
    FUZZ_CHECK(m == len && (len == 0 || memcmp(back, text, len) == 0));
    free(back);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    size_t len;

    if (size < 1)
        return 0;
    len = size - 1;
    /* An exact-size copy: the readers must not look past len. */
    text = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data + 1, len);
    switch (data[0] % 6) {
    case 0:
        fuzz_jws(text, len);
        break;
    case 1:
        fuzz_jwks(text, len);
        break;
    case 2:
        fuzz_jwk(text, len);
        break;
    case 3:
        fuzz_pem_key(text, len);
        break;
    case 4:
        fuzz_x509(text, len);
        break;
    default:
        fuzz_b64(text, len);
        break;
    }
    free(text);
    return 0;
}
