/*
 * test_jose.c - JWS verification, JWK sets, claims and X.509 (src/jose.c).
 *
 * Every key, token and certificate is made here with OpenSSL, at run
 * time: RSA 2048 (and 1024, to be refused), P-256, P-384, P-521, Ed25519.
 * Tokens are signed the way a JOSE library does (ECDSA as raw r || s,
 * PSS with a salt as long as the hash), then each refusal the header
 * promises is tried one by one: alg none, HS256 with the public key as
 * the secret, key/alg mismatches, crit, wrong segment counts, padding,
 * duplicate members, short signatures, tampered payloads, leeway edges.
 */
#include "../../src/jose.c"

#include <openssl/hmac.h>
#include <openssl/x509v3.h>

#include "../../src/buf.h"

#include "harness.h"

/* ------------------------------------------------------------ helpers -- */

static EVP_PKEY *rsa2048, *rsa1024, *p256, *p384, *p521, *ed25519, *other;

static void make_keys(void)
{
    rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    COFFER_ASSERT(rsa2048 && rsa1024 && p256 && p384 && p521 && ed25519 &&
                  other);
}

static void free_keys(void)
{
    EVP_PKEY_free(rsa2048);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(p521);
    EVP_PKEY_free(ed25519);
    EVP_PKEY_free(other);
}

static char *b64s(const char *s)
{
    return jose_b64url_encode(s, strlen(s), NULL);
}

/* Signs data as alg with pkey, in JOSE form. *len gets the size. */
static unsigned char *sign_raw(EVP_PKEY *pkey, enum jose_alg alg,
                               const char *data, size_t dlen, size_t *len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = alg_md(alg);
    unsigned char *sig;
    size_t n = 0;

    COFFER_ASSERT(EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey) == 1);
    if (alg_is_pss(alg)) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    COFFER_ASSERT(EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)data,
                                 dlen) == 1);
    sig = xmalloc(n);
    COFFER_ASSERT(EVP_DigestSign(ctx, sig, &n, (const unsigned char *)data,
                                 dlen) == 1);
    EVP_MD_CTX_free(ctx);
    if (alg_is_ec(alg)) {
        size_t half;
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        unsigned char *raw;
        alg_curve(alg, &half);
        raw = xmalloc(2 * half);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, (int)half);
        ECDSA_SIG_free(es);
        free(sig);
        sig = raw;
        n = 2 * half;
    }
    *len = n;
    return sig;
}

/* header.payload.signature from JSON texts, signed as alg with pkey. */
static char *make_jwt_as(EVP_PKEY *pkey, enum jose_alg alg, const char *hdr,
                         const char *claims)
{
    char *h = b64s(hdr), *c = b64s(claims), *s, *out;
    size_t in_len = strlen(h) + 1 + strlen(c), sig_len;
    char *input = xmalloc(in_len + 1);
    unsigned char *sig;

    snprintf(input, in_len + 1, "%s.%s", h, c);
    sig = sign_raw(pkey, alg, input, in_len, &sig_len);
    s = jose_b64url_encode(sig, sig_len, NULL);
    out = xmalloc(in_len + strlen(s) + 2);
    snprintf(out, in_len + strlen(s) + 2, "%s.%s", input, s);
    free(h);
    free(c);
    free(s);
    free(sig);
    free(input);
    return out;
}

/* A token with the default header {"alg": alg[, "kid": kid]}. */
static char *make_jwt(EVP_PKEY *pkey, enum jose_alg alg, const char *kid,
                      const char *claims)
{
    char hdr[256];

    if (kid != NULL)
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\"}",
                 jose_alg_name(alg), kid);
    else
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
                 jose_alg_name(alg));
    return make_jwt_as(pkey, alg, hdr, claims);
}

static struct jose_key *key_of(EVP_PKEY *pkey)
{
    struct jose_key *k = NULL;
    struct errbuf err;

    COFFER_ASSERT(jose_key_from_pkey(pkey, &k, &err) == 0);
    return k;
}

/* Parses and verifies token with one key; the error text in err. */
static int verify1(const char *token, const struct jose_key *key,
                   unsigned allowed, struct errbuf *err)
{
    struct jose_jws jws;
    int rc;

    errbuf_clear(err);
    rc = jose_jws_parse(&jws, token, strlen(token), err);
    if (rc == 0) {
        rc = jose_jws_verify(&jws, &key, 1, allowed, err);
        jose_jws_release(&jws);
    }
    return rc;
}

/* Claims text as a tree, checked with opts. */
static int claims1(const char *claims, const struct jose_claims_opts *o,
                   struct errbuf *err)
{
    cJSON *c = json_parse(claims, strlen(claims), 64, false, NULL);
    int rc;

    COFFER_ASSERT(c != NULL);
    errbuf_clear(err);
    rc = jose_claims_check(c, o, err);
    cJSON_Delete(c);
    return rc;
}

static char *bn_b64(EVP_PKEY *pkey, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;

    COFFER_ASSERT(EVP_PKEY_get_bn_param(pkey, param, &bn) == 1);
    n = pad > 0 ? pad : BN_num_bytes(bn);
    BN_bn2binpad(bn, buf, n);
    BN_free(bn);
    return jose_b64url_encode(buf, (size_t)n, NULL);
}

/* The public JWK of pkey with kid and extra members ("" or ",..."). */
static char *jwk_of(EVP_PKEY *pkey, const char *kid, const char *extra)
{
    char *out = xmalloc(4096), *a = NULL, *b = NULL;
    int type = EVP_PKEY_get_base_id(pkey);

    if (type == EVP_PKEY_RSA) {
        a = bn_b64(pkey, OSSL_PKEY_PARAM_RSA_N, 0);
        b = bn_b64(pkey, OSSL_PKEY_PARAM_RSA_E, 0);
        snprintf(out, 4096, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\","
                 "\"e\":\"%s\"%s}", kid, a, b, extra);
    } else if (type == EVP_PKEY_EC) {
        int curve = pkey_curve(pkey);
        int size = curve == NID_X9_62_prime256v1 ? 32
                   : curve == NID_secp384r1      ? 48 : 66;
        a = bn_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_X, size);
        b = bn_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, size);
        snprintf(out, 4096, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"%s\","
                 "\"x\":\"%s\",\"y\":\"%s\"%s}", kid,
                 size == 32 ? "P-256" : size == 48 ? "P-384" : "P-521", a, b,
                 extra);
    } else {
        unsigned char raw[64];
        size_t n = sizeof(raw);
        COFFER_ASSERT(EVP_PKEY_get_raw_public_key(pkey, raw, &n) == 1);
        a = jose_b64url_encode(raw, n, NULL);
        snprintf(out, 4096, "{\"kty\":\"OKP\",\"kid\":\"%s\",\"crv\":"
                 "\"Ed25519\",\"x\":\"%s\"%s}", kid, a, extra);
    }
    free(a);
    free(b);
    return out;
}

static int key_from_jwk_text(const char *text, struct jose_key **k,
                             struct errbuf *err)
{
    cJSON *j = json_parse(text, strlen(text), 16, false, NULL);
    int rc;

    COFFER_ASSERT(j != NULL);
    errbuf_clear(err);
    rc = jose_key_from_jwk(j, k, err);
    cJSON_Delete(j);
    return rc;
}

static char *pem_pubkey(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    char *out;

    PEM_write_bio_PUBKEY(bio, pkey);
    n = BIO_get_mem_data(bio, &data);
    out = xstrndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

#define NOW 1700000000.0

/* --------------------------------------------------------- base64url -- */

TEST(b64url_roundtrip_and_strictness)
{
    unsigned char in[40], *out = NULL;
    size_t n = 0;

    for (size_t len = 0; len < sizeof(in); len++) {
        char *e;
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 37 + len);
        e = jose_b64url_encode(in, len, NULL);
        CHECK(strchr(e, '=') == NULL);
        CHECK_EQ_INT(jose_b64url_decode(e, strlen(e), &out, &n), 0);
        CHECK_EQ_INT(n, len);
        CHECK(len == 0 || memcmp(out, in, len) == 0);
        free(out);
        free(e);
    }
    CHECK_EQ_INT(jose_b64url_decode("QQ", 2, &out, &n), 0);
    CHECK_STREQ((char *)out, "A");
    free(out);
    CHECK_EQ_INT(jose_b64url_decode("_-8", 3, &out, &n), 0);
    CHECK_EQ_INT(n, 2);
    free(out);
    /* Padding, the standard alphabet, whitespace, a dangling char, stray
     * bits ("QR" is "A" with a non-zero unused bit). */
    CHECK_EQ_INT(jose_b64url_decode("QQ==", 4, &out, &n), COFFER_EINVAL);
    CHECK_EQ_INT(jose_b64url_decode("a+b/", 4, &out, &n), COFFER_EINVAL);
    CHECK_EQ_INT(jose_b64url_decode("QQ\n", 3, &out, &n), COFFER_EINVAL);
    CHECK_EQ_INT(jose_b64url_decode("QUJDR", 5, &out, &n), COFFER_EINVAL);
    CHECK_EQ_INT(jose_b64url_decode("QR", 2, &out, &n), COFFER_EINVAL);
    CHECK_EQ_INT(jose_b64url_decode("QUJ\0", 4, &out, &n), COFFER_EINVAL);
    CHECK(out == NULL);
}

/* ------------------------------------------------------- valid tokens -- */

TEST(every_algorithm_verifies)
{
    static const struct {
        enum jose_alg alg;
        EVP_PKEY **key;
    } cases[] = {
        {JOSE_RS256, &rsa2048}, {JOSE_RS384, &rsa2048},
        {JOSE_RS512, &rsa2048}, {JOSE_PS256, &rsa2048},
        {JOSE_PS384, &rsa2048}, {JOSE_PS512, &rsa2048},
        {JOSE_ES256, &p256},    {JOSE_ES384, &p384},
        {JOSE_ES512, &p521},    {JOSE_EDDSA, &ed25519},
    };
    struct errbuf err;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct jose_key *k = key_of(*cases[i].key);
        struct jose_key *wrong = key_of(other);
        char *t = make_jwt(*cases[i].key, cases[i].alg, NULL,
                           "{\"sub\":\"x\",\"exp\":1700000100}");
        int rc = verify1(t, k, JOSE_ALGS_ALL, &err);
        if (rc != 0)
            harness_fail(__FILE__, __LINE__, "%s: %s",
                         jose_alg_name(cases[i].alg), err.msg);
        /* Only the chosen algorithm passes when it alone is allowed. */
        CHECK_EQ_INT(verify1(t, k, JOSE_ALG_BIT(cases[i].alg), &err), 0);
        CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL &
                                       ~JOSE_ALG_BIT(cases[i].alg), &err),
                     COFFER_EUNSUPPORTED);
        CHECK(strncmp(err.msg, "algorithm not allowed", 21) == 0);
        if (alg_is_rsa(cases[i].alg)) {
            CHECK_EQ_INT(verify1(t, wrong, JOSE_ALGS_ALL, &err),
                         COFFER_EPERM);
            CHECK_STREQ(err.msg, "signature does not verify");
        }
        free(t);
        jose_key_free(k);
        jose_key_free(wrong);
    }
}

TEST(tampered_payload_and_signature)
{
    struct jose_key *k = key_of(p256);
    char *t = make_jwt(p256, JOSE_ES256, NULL, "{\"sub\":\"alice\"}");
    char *dot = strchr(t, '.');
    char *evil = b64s("{\"sub\":\"admin\"}");
    char *forged = xmalloc(strlen(t) + strlen(evil) + 1);
    struct errbuf err;
    char *sig = strrchr(t, '.') + 1;

    /* Swap the payload and keep the signature. */
    snprintf(forged, strlen(t) + strlen(evil) + 1, "%.*s.%s%s",
             (int)(dot - t), t, evil, strrchr(t, '.'));
    CHECK_EQ_INT(verify1(forged, k, JOSE_ALGS_ALL, &err), COFFER_EPERM);
    CHECK_STREQ(err.msg, "signature does not verify");
    /* Flip one bit of the signature (first char stays in the alphabet). */
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EPERM);
    free(forged);
    free(evil);
    free(t);
    jose_key_free(k);
}

/* ----------------------------------------------------------- refusals -- */

TEST(alg_none_and_hmac_are_refused)
{
    struct jose_key *k = key_of(rsa2048);
    char *pem = pem_pubkey(rsa2048);
    char *h = b64s("{\"alg\":\"none\"}"), *c = b64s("{\"sub\":\"a\"}");
    char *h2 = b64s("{\"alg\":\"HS256\"}");
    char tok[4096], input[2048];
    unsigned char mac[32];
    unsigned int mlen = 0;
    char *m;
    struct errbuf err;

    snprintf(tok, sizeof(tok), "%s.%s.AAAA", h, c);
    CHECK_EQ_INT(verify1(tok, k, JOSE_ALGS_ALL, &err), COFFER_EUNSUPPORTED);
    CHECK_STREQ(err.msg, "unsupported algorithm: none");
    /* "none" with an empty signature: not even three non-empty parts. */
    snprintf(tok, sizeof(tok), "%s.%s.", h, c);
    CHECK_EQ_INT(verify1(tok, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    /* HS256 keyed with the PEM of the public key: algorithm confusion. */
    snprintf(input, sizeof(input), "%s.%s", h2, c);
    HMAC(EVP_sha256(), pem, (int)strlen(pem), (unsigned char *)input,
         strlen(input), mac, &mlen);
    m = jose_b64url_encode(mac, mlen, NULL);
    snprintf(tok, sizeof(tok), "%s.%s", input, m);
    CHECK_EQ_INT(verify1(tok, k, JOSE_ALGS_ALL, &err), COFFER_EUNSUPPORTED);
    CHECK_STREQ(err.msg, "unsupported algorithm: HS256");
    CHECK(jose_alg_from_name("HS256") == JOSE_ALG_INVALID);
    CHECK(jose_alg_from_name("none") == JOSE_ALG_INVALID);
    CHECK(jose_alg_from_name("rs256") == JOSE_ALG_INVALID);
    free(m);
    free(h);
    free(h2);
    free(c);
    free(pem);
    jose_key_free(k);
}

TEST(key_must_fit_the_algorithm)
{
    struct jose_key *rsa = key_of(rsa2048), *ec384 = key_of(p384);
    struct jose_key *ed = key_of(ed25519), *ec256 = key_of(p256);
    char *es256 = make_jwt(p256, JOSE_ES256, NULL, "{}");
    char *rs256 = make_jwt(rsa2048, JOSE_RS256, NULL, "{}");
    struct jose_key *k = NULL;
    struct errbuf err;

    CHECK_EQ_INT(verify1(es256, rsa, JOSE_ALGS_ALL, &err),
                 COFFER_EUNSUPPORTED);
    CHECK_STREQ(err.msg, "no key for algorithm ES256");
    CHECK_EQ_INT(verify1(es256, ec384, JOSE_ALGS_ALL, &err),
                 COFFER_EUNSUPPORTED);
    CHECK_EQ_INT(verify1(es256, ed, JOSE_ALGS_ALL, &err),
                 COFFER_EUNSUPPORTED);
    CHECK_EQ_INT(verify1(rs256, ec256, JOSE_ALGS_ALL, &err),
                 COFFER_EUNSUPPORTED);
    CHECK_EQ_INT(verify1(es256, ec256, JOSE_ALGS_ALL, &err), 0);
    /* RSA under 2048 bits is not a key we use. */
    CHECK_EQ_INT(jose_key_from_pkey(rsa1024, &k, &err), COFFER_EUNSUPPORTED);
    CHECK(strstr(err.msg, "1024") != NULL);
    CHECK(k == NULL);
    free(es256);
    free(rs256);
    jose_key_free(rsa);
    jose_key_free(ec384);
    jose_key_free(ed);
    jose_key_free(ec256);
}

TEST(crit_and_header_shape)
{
    struct jose_key *k = key_of(p256);
    struct errbuf err;
    char *t;

    t = make_jwt_as(p256, JOSE_ES256,
                    "{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}", "{}");
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EUNSUPPORTED);
    CHECK(strstr(err.msg, "crit") != NULL);
    free(t);
    /* Duplicate "alg": two parsers could read two algorithms. */
    t = make_jwt_as(p256, JOSE_ES256,
                    "{\"alg\":\"HS256\",\"alg\":\"ES256\"}", "{}");
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "duplicate") != NULL);
    free(t);
    t = make_jwt_as(p256, JOSE_ES256, "{\"alg\":\"ES256\"}",
                    "{\"sub\":\"a\",\"sub\":\"admin\"}");
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    free(t);
    t = make_jwt_as(p256, JOSE_ES256, "[\"ES256\"]", "{}");
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "header is not a JSON object") != NULL);
    free(t);
    t = make_jwt_as(p256, JOSE_ES256, "{\"alg\":\"ES256\"}", "\"claims\"");
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    free(t);
    t = make_jwt_as(p256, JOSE_ES256, "{\"alg\":\"ES256\"}", "{} x");
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    free(t);
    t = make_jwt_as(p256, JOSE_ES256, "{\"typ\":\"JWT\"}", "{}");
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    free(t);
    t = make_jwt_as(p256, JOSE_ES256, "{\"alg\":\"ES256\",\"kid\":7}", "{}");
    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    free(t);
    jose_key_free(k);
}

TEST(segments_padding_and_alphabet)
{
    struct jose_key *k = key_of(p256);
    char *t = make_jwt(p256, JOSE_ES256, NULL, "{\"a\":1}");
    size_t n = strlen(t);
    char buf[1024];
    struct errbuf err;

    CHECK_EQ_INT(verify1(t, k, JOSE_ALGS_ALL, &err), 0);
    snprintf(buf, sizeof(buf), "%s.", t);
    CHECK_EQ_INT(verify1(buf, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "three") != NULL);
    snprintf(buf, sizeof(buf), "%s.AAAA", t);
    CHECK_EQ_INT(verify1(buf, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(t, '.') - t), t);
    CHECK_EQ_INT(verify1(buf, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    snprintf(buf, sizeof(buf), "%s=", t);
    CHECK_EQ_INT(verify1(buf, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    snprintf(buf, sizeof(buf), " %s", t);
    CHECK_EQ_INT(verify1(buf, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    snprintf(buf, sizeof(buf), "%s", t);
    buf[n - 3] = '+';
    CHECK_EQ_INT(verify1(buf, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    CHECK_EQ_INT(verify1("", k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    CHECK_EQ_INT(verify1("..", k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    CHECK_EQ_INT(verify1("a..b", k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    free(t);
    jose_key_free(k);
}

TEST(es_signature_of_the_wrong_length)
{
    struct jose_key *k = key_of(p256);
    char *t = make_jwt(p256, JOSE_ES256, NULL, "{}");
    char *dot = strrchr(t, '.');
    unsigned char *sig = NULL, *der = NULL;
    size_t n = 0;
    char buf[1024], *s;
    struct errbuf err;
    int der_len = 0;

    CHECK_EQ_INT(jose_b64url_decode(dot + 1, strlen(dot + 1), &sig, &n), 0);
    CHECK_EQ_INT(n, 64);
    /* 63 bytes: r || s with one byte dropped. */
    s = jose_b64url_encode(sig, 63, NULL);
    snprintf(buf, sizeof(buf), "%.*s.%s", (int)(dot - t), t, s);
    CHECK_EQ_INT(verify1(buf, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "signature length") != NULL);
    free(s);
    /* The DER form OpenSSL would accept is not JOSE's. */
    CHECK_EQ_INT(ecdsa_der(sig, 32, &der, &der_len), 0);
    s = jose_b64url_encode(der, (size_t)der_len, NULL);
    snprintf(buf, sizeof(buf), "%.*s.%s", (int)(dot - t), t, s);
    CHECK(verify1(buf, k, JOSE_ALGS_ALL, &err) != 0);
    free(s);
    OPENSSL_free(der);
    free(sig);
    free(t);
    jose_key_free(k);
}

TEST(oversized_token)
{
    struct jose_key *k = key_of(p256);
    size_t n = JOSE_JWT_MAX + 1;
    char *big = xmalloc(n + 1);
    struct errbuf err;

    memset(big, 'A', n);
    big[10] = '.';
    big[20] = '.';
    big[n] = '\0';
    CHECK_EQ_INT(verify1(big, k, JOSE_ALGS_ALL, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "longer") != NULL);
    free(big);
    jose_key_free(k);
}

/* ------------------------------------------------------------- claims -- */

#define MSG_NBF "invalid not before (nbf) claim: token not yet valid"
#define MSG_EXP "invalid expiration time (exp) claim: token is expired"
#define MSG_IAT "invalid issued at (iat) claim: token issued in the future"
#define MSG_NONE "no issued at (iat), not before (nbf), or expiration " \
                 "time (exp) claims in token"

/* claims1 on text printed from a format with up to three times. */
static int claimsf(const struct jose_claims_opts *o, struct errbuf *err,
                   const char *fmt, double a, double b, double c)
{
    char text[256];

    snprintf(text, sizeof(text), fmt, a, b, c);
    return claims1(text, o, err);
}

TEST(present_exp_gets_only_the_skew)
{
    struct jose_claims_opts o;
    struct errbuf err;

    jose_claims_opts_init(&o);
    o.now = NOW;
    /* 60 s of skew, and expiration_leeway plays no part. */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW - 60, 0, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW - 61, 0, 0),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_EXP);
    o.expiration_leeway = 100000;
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW - 61, 0, 0),
                 COFFER_EPERM);
    /* A present nbf: the skew only, not_before_leeway plays no part. */
    o.not_before_leeway = 100000;
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f,\"nbf\":%.0f}", NOW + 900,
                         NOW + 60, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f,\"nbf\":%.0f}", NOW + 900,
                         NOW + 61, 0), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_NBF);
    /* iat: the skew (with an nbf of its own: a missing one would be iat
     * and refuse first, as "not yet valid"). */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f,\"nbf\":%.0f,\"iat\":%.0f}",
                         NOW + 900, NOW, NOW + 60), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f,\"nbf\":%.0f,\"iat\":%.0f}",
                         NOW + 900, NOW, NOW + 61), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_IAT);
    /* No skew (a negative one counts as none): the edges are exact. */
    o.clock_skew_leeway = -5;
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW, 0, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW - 1, 0, 0),
                 COFFER_EPERM);
    o.now = NOW + 0.5; /* a fraction of a second past exp is past it */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW, 0, 0),
                 COFFER_EPERM);
    o.now = NOW;
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f,\"nbf\":%.0f}", NOW + 5,
                         NOW + 1, 0), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_NBF);
    /* Fractions are cut off (cap's int64 seconds). */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.1f}", NOW + 0.9, 0, 0), 0);
    o.now = NOW + 1.5; /* before 1.9, but past the whole second 1 */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.1f}", NOW + 1.9, 0, 0),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_EXP);
}

TEST(missing_exp_and_nbf_are_derived)
{
    struct jose_claims_opts o;
    struct errbuf err;

    jose_claims_opts_init(&o);
    o.now = NOW;
    o.clock_skew_leeway = 10;
    o.expiration_leeway = 100;
    o.not_before_leeway = 50;
    /* exp = iat + 100; the skew on top: valid up to iat + 110. */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f}", NOW - 110, 0, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f}", NOW - 111, 0, 0),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_EXP);
    /* exp = max(iat, nbf) + 100: the later one counts, either way round. */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f,\"nbf\":%.0f}", NOW - 500,
                         NOW - 110, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f,\"nbf\":%.0f}", NOW - 500,
                         NOW - 111, 0), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_EXP);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"nbf\":%.0f,\"iat\":%.0f}", NOW - 500,
                         NOW - 110, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"nbf\":%.0f}", NOW - 111, 0, 0),
                 COFFER_EPERM);
    /* A missing nbf is iat: iat + skew decides, as "not yet valid". */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f,\"iat\":%.0f}", NOW + 900,
                         NOW + 11, 0), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_NBF);
    /* ... else exp - not_before_leeway (50): with exp = now + 61, nbf =
     * now + 11, past the 10 s of skew; with now + 60, nbf = now + 10. */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW + 60, 0, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW + 61, 0, 0),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_NBF);
    o.not_before_leeway = -1; /* none: nbf = exp */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW + 10, 0, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW + 11, 0, 0),
                 COFFER_EPERM);
    /* A negative expiration leeway: exp = iat exactly. */
    o.expiration_leeway = -1;
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f}", NOW - 10, 0, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f}", NOW - 11, 0, 0),
                 COFFER_EPERM);
    /* A claim of 0 is a missing one (cap's zero NumericDate). */
    o.expiration_leeway = 100;
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":0,\"iat\":%.0f}", NOW - 50, 0,
                         0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":0.5,\"iat\":%.0f}", NOW - 50, 0,
                         0), 0);
    /* The order of the checks: nbf, then exp, then iat. */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"nbf\":%.0f,\"exp\":%.0f,\"iat\":%.0f}",
                         NOW + 500, NOW - 500, NOW + 500), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_NBF);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"nbf\":%.0f,\"exp\":%.0f,\"iat\":%.0f}",
                         NOW - 500, NOW - 500, NOW + 500), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_EXP);
    /* The defaults: 150 s for a missing exp, 60 s of skew. */
    jose_claims_opts_init(&o);
    o.now = NOW;
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f}", NOW - 210, 0, 0), 0);
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f}", NOW - 211, 0, 0),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_EXP);
}

TEST(time_claims_missing_or_malformed)
{
    struct jose_claims_opts o;
    struct errbuf err;

    jose_claims_opts_init(&o);
    o.now = NOW;
    CHECK(!o.require_exp && !o.allow_missing_times);
    CHECK_EQ_INT(claims1("{\"sub\":\"a\"}", &o, &err), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_NONE);
    CHECK_EQ_INT(claims1("{\"exp\":0,\"nbf\":0,\"iat\":0}", &o, &err),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_NONE);
    o.allow_missing_times = true;
    CHECK_EQ_INT(claims1("{\"sub\":\"a\"}", &o, &err), 0);
    CHECK_EQ_INT(claims1("{\"exp\":0}", &o, &err), 0);
    /* ... but a present one is still checked. */
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW - 61, 0, 0),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_EXP);
    /* require_exp wins over both. */
    o.require_exp = true;
    CHECK_EQ_INT(claims1("{\"sub\":\"a\"}", &o, &err), COFFER_EPERM);
    CHECK_STREQ(err.msg, "missing expiration (exp) claim");
    CHECK_EQ_INT(claimsf(&o, &err, "{\"iat\":%.0f}", NOW, 0, 0),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, "missing expiration (exp) claim");
    CHECK_EQ_INT(claimsf(&o, &err, "{\"exp\":%.0f}", NOW, 0, 0), 0);
    /* Big literals are numbers; strings and overflows are malformed. */
    CHECK_EQ_INT(claims1("{\"exp\":1e300,\"iat\":1}", &o, &err), 0);
    CHECK_EQ_INT(claims1("{\"exp\":1.0}", &o, &err), COFFER_EPERM);
    CHECK_STREQ(err.msg, MSG_EXP);
    CHECK_EQ_INT(claims1("{\"exp\":\"2099\"}", &o, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "not a number") != NULL);
    CHECK_EQ_INT(claims1("{\"exp\":4e10,\"iat\":1e999}", &o, &err),
                 COFFER_EINVAL);
    CHECK_EQ_INT(claims1("{\"exp\":4e10,\"nbf\":null}", &o, &err),
                 COFFER_EINVAL);
}

TEST(issuer_audience_subject)
{
    static const char *const auds[] = {"vault", "other"};
    struct jose_claims_opts o;
    struct errbuf err;

    jose_claims_opts_init(&o);
    o.now = NOW;
    o.allow_missing_times = true;
    o.issuer = "https://issuer.example";
    o.audiences = auds;
    o.n_audiences = 2;
    o.subject = "repo:x";
    CHECK_EQ_INT(claims1("{\"iss\":\"https://issuer.example\",\"aud\":"
                         "\"vault\",\"sub\":\"repo:x\"}", &o, &err), 0);
    CHECK_EQ_INT(claims1("{\"iss\":\"https://issuer.example\",\"aud\":"
                         "[\"x\",\"other\"],\"sub\":\"repo:x\"}", &o, &err),
                 0);
    CHECK_EQ_INT(claims1("{\"iss\":\"https://issuer.example/\",\"aud\":"
                         "\"vault\",\"sub\":\"repo:x\"}", &o, &err),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, "invalid issuer (iss) claim");
    CHECK_EQ_INT(claims1("{\"aud\":\"vault\",\"sub\":\"repo:x\"}", &o, &err),
                 COFFER_EPERM);
    CHECK_EQ_INT(claims1("{\"iss\":\"https://issuer.example\",\"aud\":"
                         "[\"x\"],\"sub\":\"repo:x\"}", &o, &err),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, "invalid audience (aud) claim: audience claim "
                         "does not match any expected audience");
    CHECK_EQ_INT(claims1("{\"iss\":\"https://issuer.example\",\"aud\":"
                         "[\"vault\",1],\"sub\":\"repo:x\"}", &o, &err),
                 COFFER_EPERM);
    CHECK_EQ_INT(claims1("{\"iss\":\"https://issuer.example\","
                         "\"sub\":\"repo:x\"}", &o, &err), COFFER_EPERM);
    CHECK_EQ_INT(claims1("{\"iss\":\"https://issuer.example\",\"aud\":"
                         "\"vault\",\"sub\":\"repo:y\"}", &o, &err),
                 COFFER_EPERM);
    CHECK_STREQ(err.msg, "invalid subject (sub) claim");
    o.n_audiences = 0; /* not checked at all */
    CHECK_EQ_INT(claims1("{\"iss\":\"https://issuer.example\","
                         "\"sub\":\"repo:x\"}", &o, &err), 0);
}

/* ---------------------------------------------------------------- JWK -- */

TEST(jwk_members_are_honoured)
{
    struct jose_key *k = NULL;
    struct errbuf err;
    char *j;
    char *es256 = make_jwt(p256, JOSE_ES256, NULL, "{}");
    char *rs256 = make_jwt(rsa2048, JOSE_RS256, NULL, "{}");

    j = jwk_of(p256, "a", "");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), 0);
    CHECK_STREQ(jose_key_kid(k), "a");
    CHECK_EQ_INT(verify1(es256, k, JOSE_ALGS_ALL, &err), 0);
    jose_key_free(k);
    free(j);
    j = jwk_of(p256, "a", ",\"use\":\"enc\"");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), COFFER_EUNSUPPORTED);
    free(j);
    j = jwk_of(p256, "a", ",\"use\":\"sig\",\"key_ops\":[\"sign\"]");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), COFFER_EUNSUPPORTED);
    free(j);
    j = jwk_of(p256, "a", ",\"key_ops\":[\"sign\",\"verify\"]");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), 0);
    jose_key_free(k);
    free(j);
    j = jwk_of(p256, "a", ",\"d\":\"AAAA\"");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "private") != NULL);
    free(j);
    /* A key marked for one algorithm serves no other. */
    j = jwk_of(rsa2048, "r", ",\"alg\":\"PS256\"");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), 0);
    CHECK_EQ_INT(verify1(rs256, k, JOSE_ALGS_ALL, &err), COFFER_EUNSUPPORTED);
    jose_key_free(k);
    free(j);
    j = jwk_of(p256, "a", ",\"alg\":\"ES384\"");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), COFFER_EINVAL);
    free(j);
    j = jwk_of(p256, "a", ",\"alg\":\"HS256\"");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), COFFER_EUNSUPPORTED);
    free(j);
    j = jwk_of(rsa1024, "small", "");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), COFFER_EUNSUPPORTED);
    free(j);
    j = jwk_of(ed25519, "e", "");
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), 0);
    jose_key_free(k);
    free(j);
    CHECK_EQ_INT(key_from_jwk_text("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}", &k,
                                   &err), COFFER_EUNSUPPORTED);
    CHECK_EQ_INT(key_from_jwk_text("{\"kty\":\"EC\",\"crv\":\"P-256\","
                                   "\"x\":\"AQ\",\"y\":\"AQ\"}", &k, &err),
                 COFFER_EINVAL);
    CHECK_EQ_INT(key_from_jwk_text("{\"kty\":\"OKP\",\"crv\":\"X25519\","
                                   "\"x\":\"AQ\"}", &k, &err),
                 COFFER_EUNSUPPORTED);
    /* A 17-bit modulus is no key of ours; an even one is no RSA key. */
    CHECK_EQ_INT(key_from_jwk_text("{\"kty\":\"RSA\",\"n\":\"AQAB\","
                                   "\"e\":\"AQAB\"}", &k, &err),
                 COFFER_EUNSUPPORTED);
    CHECK_EQ_INT(key_from_jwk_text("{\"kty\":\"RSA\",\"n\":\"AQAA\","
                                   "\"e\":\"AQAB\"}", &k, &err),
                 COFFER_EINVAL);
    CHECK_EQ_INT(key_from_jwk_text("{\"kid\":\"x\"}", &k, &err),
                 COFFER_EINVAL);
    free(es256);
    free(rs256);
}

TEST(ec_point_off_the_curve)
{
    struct jose_key *k = NULL;
    struct errbuf err;
    char *j = jwk_of(p256, "a", "");
    char *y = strstr(j, "\"y\":\"") + 5;

    /* Change y: (x, y') is almost surely not on P-256. */
    y[5] = y[5] == 'A' ? 'B' : 'A';
    CHECK_EQ_INT(key_from_jwk_text(j, &k, &err), COFFER_EINVAL);
    CHECK(k == NULL);
    free(j);
}

TEST(jwks_kid_selection)
{
    char *ja = jwk_of(rsa2048, "a", ",\"use\":\"sig\"");
    char *jb = jwk_of(p256, "b", "");
    char *jc = jwk_of(ed25519, "c", "");
    char *jenc = jwk_of(p384, "enc", ",\"use\":\"enc\"");
    char text[16384];
    struct jose_keyset *ks = NULL;
    const struct jose_key *cand[8];
    struct errbuf err;
    struct jose_jws jws;
    char *t;

    snprintf(text, sizeof(text), "{\"keys\":[%s,%s,%s,%s,"
             "{\"kty\":\"oct\",\"k\":\"AAAA\"},{\"kty\":\"XYZ\"}]}", ja, jb,
             jc, jenc);
    CHECK_EQ_INT(jose_jwks_parse(text, strlen(text), &ks, &err), 0);
    CHECK_EQ_INT(jose_keyset_len(ks), 3);
    CHECK_EQ_INT(jose_keyset_select(ks, "b", cand, 8), 1);
    CHECK_STREQ(jose_key_kid(cand[0]), "b");
    CHECK_EQ_INT(jose_keyset_select(ks, "zzz", cand, 8), 0);
    CHECK_EQ_INT(jose_keyset_select(ks, "enc", cand, 8), 0);
    CHECK_EQ_INT(jose_keyset_select(ks, NULL, cand, 8), 3);
    /* kid b names the EC key: a token signed by it verifies... */
    t = make_jwt(p256, JOSE_ES256, "b", "{}");
    CHECK_EQ_INT(jose_jws_parse(&jws, t, strlen(t), &err), 0);
    CHECK_STREQ(jws.kid, "b");
    CHECK_EQ_INT(jose_keyset_select(ks, jws.kid, cand, 8), 1);
    CHECK_EQ_INT(jose_jws_verify(&jws, cand, 1, JOSE_ALGS_ALL, &err), 0);
    jose_jws_release(&jws);
    free(t);
    /* ...but kid a with an EC signature finds no key for it. */
    t = make_jwt(p256, JOSE_ES256, "a", "{}");
    CHECK_EQ_INT(jose_jws_parse(&jws, t, strlen(t), &err), 0);
    CHECK_EQ_INT(jose_keyset_select(ks, jws.kid, cand, 8), 1);
    CHECK_EQ_INT(jose_jws_verify(&jws, cand, 1, JOSE_ALGS_ALL, &err),
                 COFFER_EUNSUPPORTED);
    jose_jws_release(&jws);
    free(t);
    jose_keyset_free(ks);

    /* A malformed key fails the set; no usable key fails it too. */
    snprintf(text, sizeof(text), "{\"keys\":[%s,{\"kty\":\"EC\","
             "\"crv\":\"P-256\",\"x\":\"A\",\"y\":\"A\"}]}", ja);
    CHECK_EQ_INT(jose_jwks_parse(text, strlen(text), &ks, &err),
                 COFFER_EINVAL);
    CHECK(strstr(err.msg, "key 2") != NULL);
    snprintf(text, sizeof(text), "{\"keys\":[%s]}", jenc);
    CHECK_EQ_INT(jose_jwks_parse(text, strlen(text), &ks, &err),
                 COFFER_EINVAL);
    CHECK_EQ_INT(jose_jwks_parse("[]", 2, &ks, &err), COFFER_EINVAL);
    CHECK_EQ_INT(jose_jwks_parse("{\"keys\":{}}", 11, &ks, &err),
                 COFFER_EINVAL);
    CHECK_EQ_INT(jose_jwks_parse("{\"keys\":[", 9, &ks, &err), COFFER_EINVAL);
    CHECK(ks == NULL);
    free(ja);
    free(jb);
    free(jc);
    free(jenc);
}

TEST(jwks_limits)
{
    struct buf b;
    struct jose_keyset *ks = NULL;
    struct errbuf err;
    char *j = jwk_of(p256, "k", "");
    size_t len;
    char *text;

    buf_init(&b, 1 << 20);
    buf_append_str(&b, "{\"keys\":[");
    for (int i = 0; i <= JOSE_JWKS_MAX_KEYS; i++) {
        if (i > 0)
            buf_append_str(&b, ",");
        buf_append_str(&b, j);
    }
    buf_append_str(&b, "]}");
    text = buf_detach(&b, &len);
    CHECK_EQ_INT(jose_jwks_parse(text, len, &ks, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "more than 100") != NULL);
    CHECK_EQ_INT(jose_jwks_parse(text, JOSE_JWKS_MAX + 1, &ks, &err),
                 COFFER_EINVAL);
    free(text);
    free(j);
}

/* ---------------------------------------------------------------- PEM -- */

TEST(pem_keys)
{
    char *pem = pem_pubkey(rsa2048);
    char *two;
    struct jose_key *k = NULL;
    struct errbuf err;
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    char *rs = make_jwt(rsa2048, JOSE_RS256, NULL, "{}");

    CHECK_EQ_INT(jose_key_from_pem(pem, strlen(pem), &k, &err), 0);
    CHECK_EQ_INT(verify1(rs, k, JOSE_ALGS_ALL, &err), 0);
    jose_key_free(k);
    /* PKCS#1 "RSA PUBLIC KEY". */
    {
        unsigned char *der = NULL;
        int dl = i2d_PublicKey(rsa2048, &der);
        CHECK(dl > 0);
        PEM_write_bio(bio, "RSA PUBLIC KEY", "", der, dl);
        OPENSSL_free(der);
    }
    n = BIO_get_mem_data(bio, &data);
    CHECK_EQ_INT(jose_key_from_pem(data, (size_t)n, &k, &err), 0);
    CHECK_EQ_INT(verify1(rs, k, JOSE_ALGS_ALL, &err), 0);
    jose_key_free(k);
    /* A private key is not accepted as a public one. */
    BIO_reset(bio);
    PEM_write_bio_PrivateKey(bio, p256, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(bio, &data);
    CHECK_EQ_INT(jose_key_from_pem(data, (size_t)n, &k, &err), COFFER_EINVAL);
    BIO_free(bio);
    /* Two blocks, none, garbage. */
    two = xmalloc(2 * strlen(pem) + 1);
    snprintf(two, 2 * strlen(pem) + 1, "%s%s", pem, pem);
    CHECK_EQ_INT(jose_key_from_pem(two, strlen(two), &k, &err), COFFER_EINVAL);
    CHECK_EQ_INT(jose_key_from_pem("hello", 5, &k, &err), COFFER_EINVAL);
    pem[40] = '*';
    CHECK(jose_key_from_pem(pem, strlen(pem), &k, &err) != 0);
    CHECK(k == NULL);
    free(two);
    free(pem);
    free(rs);
    pem = pem_pubkey(rsa1024);
    CHECK_EQ_INT(jose_key_from_pem(pem, strlen(pem), &k, &err),
                 COFFER_EUNSUPPORTED);
    free(pem);
}

/* -------------------------------------------------------------- X.509 -- */

/* A certificate for subject cn, signed by (issuer, ikey), or self-signed. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
                       EVP_PKEY *ikey, bool ca, const char *san,
                       long from_days, long to_days)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    static long serial = 4096;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer)
                                           : X509_get_subject_name(x));
    X509_time_adj_ex(X509_getm_notBefore(x), (int)from_days, 0, NULL);
    X509_time_adj_ex(X509_getm_notAfter(x), (int)to_days, 0, NULL);
    X509_set_pubkey(x, key);
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (san != NULL) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, ikey != NULL ? ikey : key, EVP_sha256());
    return x;
}

static char *cert_pem(X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    PEM_write_bio_X509(bio, x);
    n = BIO_get_mem_data(bio, &data);
    out = xstrndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

TEST(x509_chain_verification)
{
    X509 *ca = make_cert(rsa2048, "Test CA", NULL, NULL, true, NULL, -60, 30);
    X509 *ca2 = make_cert(other, "Other CA", NULL, NULL, true, NULL, -1, 30);
    X509 *inter = make_cert(p384, "Inter", ca, rsa2048, true, NULL, -1, 30);
    X509 *leaf = make_cert(p256, "leaf", inter, p384, false,
                           "DNS:api.example.com,IP:10.1.2.3", -1, 10);
    X509 *old = make_cert(p256, "old", ca, rsa2048, false,
                          "DNS:api.example.com", -30, -1);
    char *ca_pem = cert_pem(ca), *ca2_pem = cert_pem(ca2);
    char *inter_pem = cert_pem(inter), *leaf_pem = cert_pem(leaf);
    char *old_pem = cert_pem(old);
    struct jose_x509_verify_opts o;
    struct errbuf err;

    memset(&o, 0, sizeof(o));
    o.ca_pem = ca_pem;
    o.ca_len = strlen(ca_pem);
    o.intermediates_pem = inter_pem;
    o.intermediates_len = strlen(inter_pem);
    o.dns_name = "api.example.com";
    CHECK_EQ_INT(jose_x509_verify(leaf_pem, strlen(leaf_pem), &o, &err), 0);
    o.dns_name = "10.1.2.3";
    CHECK_EQ_INT(jose_x509_verify(leaf_pem, strlen(leaf_pem), &o, &err), 0);
    /* Host name mismatch. */
    o.dns_name = "evil.example.com";
    CHECK_EQ_INT(jose_x509_verify(leaf_pem, strlen(leaf_pem), &o, &err),
                 COFFER_EPERM);
    CHECK(strstr(err.msg, "mismatch") != NULL);
    o.dns_name = NULL;
    /* Without the intermediate: no path. */
    o.intermediates_pem = NULL;
    CHECK_EQ_INT(jose_x509_verify(leaf_pem, strlen(leaf_pem), &o, &err),
                 COFFER_EPERM);
    /* The intermediate as the trust anchor (Go's roots semantics). */
    o.ca_pem = inter_pem;
    o.ca_len = strlen(inter_pem);
    CHECK_EQ_INT(jose_x509_verify(leaf_pem, strlen(leaf_pem), &o, &err), 0);
    /* Another CA. */
    o.ca_pem = ca2_pem;
    o.ca_len = strlen(ca2_pem);
    o.intermediates_pem = inter_pem;
    CHECK_EQ_INT(jose_x509_verify(leaf_pem, strlen(leaf_pem), &o, &err),
                 COFFER_EPERM);
    CHECK(strstr(err.msg, "verify failed") != NULL);
    /* Expired, and valid again when checked at an earlier time. */
    o.ca_pem = ca_pem;
    o.ca_len = strlen(ca_pem);
    CHECK_EQ_INT(jose_x509_verify(old_pem, strlen(old_pem), &o, &err),
                 COFFER_EPERM);
    CHECK(strstr(err.msg, "expired") != NULL);
    o.has_now = true; /* the CA is valid then too: it starts 60 days ago */
    o.now = (int64_t)time(NULL) - 10 * 86400;
    CHECK_EQ_INT(jose_x509_verify(old_pem, strlen(old_pem), &o, &err), 0);

    o.has_now = false;
    /* Purposes: a CA:FALSE leaf without EKU passes both. */
    o.purpose = JOSE_PURPOSE_SERVER;
    CHECK_EQ_INT(jose_x509_verify(leaf_pem, strlen(leaf_pem), &o, &err), 0);
    /* Bad inputs. */
    CHECK_EQ_INT(jose_x509_verify("junk", 4, &o, &err), COFFER_EINVAL);
    o.ca_pem = "junk";
    o.ca_len = 4;
    CHECK_EQ_INT(jose_x509_verify(leaf_pem, strlen(leaf_pem), &o, &err),
                 COFFER_EINVAL);
    free(ca_pem);
    free(ca2_pem);
    free(inter_pem);
    free(leaf_pem);
    free(old_pem);
    X509_free(ca);
    X509_free(ca2);
    X509_free(inter);
    X509_free(leaf);
    X509_free(old);
}

TEST(x509_parse_fields)
{
    X509 *x = make_cert(p256, "svc", NULL, NULL, true,
                        "DNS:a.example,DNS:b.example,IP:::1,"
                        "URI:spiffe://t/x,email:me@example.com", 0, 2);
    char *pem = cert_pem(x);
    struct jose_x509_info info;
    struct jose_key *k = NULL;
    struct errbuf err;

    CHECK_EQ_INT(jose_x509_parse(pem, strlen(pem), &info, &err), 0);
    CHECK_STREQ(info.subject, "CN=svc");
    CHECK_STREQ(info.issuer, "CN=svc");
    CHECK(info.is_ca);
    CHECK_EQ_INT(info.dns_names.n, 2);
    CHECK_STREQ(info.dns_names.v[1], "b.example");
    CHECK_EQ_INT(info.ips.n, 1);
    CHECK_STREQ(info.ips.v[0], "::1");
    CHECK_STREQ(info.uris.v[0], "spiffe://t/x");
    CHECK_STREQ(info.emails.v[0], "me@example.com");
    CHECK(info.not_after - info.not_before == 2 * 86400);
    CHECK(strlen(info.serial) >= 2 && strchr(info.serial, ':') != NULL);
    CHECK_EQ_INT(jose_key_from_pkey(info.pkey, &k, &err), 0);
    jose_key_free(k);
    jose_x509_info_release(&info);
    /* The same certificate as a key source for parse_pem. */
    CHECK_EQ_INT(jose_key_from_pem(pem, strlen(pem), &k, &err), 0);
    jose_key_free(k);
    CHECK_EQ_INT(jose_x509_parse("nope", 4, &info, &err), COFFER_EINVAL);
    free(pem);
    X509_free(x);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    make_keys();
    RUN(b64url_roundtrip_and_strictness);
    RUN(every_algorithm_verifies);
    RUN(tampered_payload_and_signature);
    RUN(alg_none_and_hmac_are_refused);
    RUN(key_must_fit_the_algorithm);
    RUN(crit_and_header_shape);
    RUN(segments_padding_and_alphabet);
    RUN(es_signature_of_the_wrong_length);
    RUN(oversized_token);
    RUN(present_exp_gets_only_the_skew);
    RUN(missing_exp_and_nbf_are_derived);
    RUN(time_claims_missing_or_malformed);
    RUN(issuer_audience_subject);
    RUN(jwk_members_are_honoured);
    RUN(ec_point_off_the_curve);
    RUN(jwks_kid_selection);
    RUN(jwks_limits);
    RUN(pem_keys);
    RUN(x509_chain_verification);
    RUN(x509_parse_fields);
    free_keys();
    return HARNESS_DONE();
}
