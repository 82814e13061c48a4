/*
 * jose.h - JWS/JWT verification, JWK sets, X.509 chains: the C core under
 * coffer.jose and coffer.x509 (lua_jose.c is the Lua side; nothing here
 * touches Lua).
 *
 * Owns the parsing and the plumbing: strict base64url, compact JWS
 * splitting, JWK -> EVP_PKEY, the choice of key for an algorithm, claim
 * checks (iss, sub, aud, and exp/nbf/iat by hashicorp/cap's rules), PEM
 * keys and certificates (jose_x509.c). Every cryptographic decision is
 * OpenSSL's: signatures go through EVP_DigestVerify, chains through
 * X509_verify_cert, host names through X509_VERIFY_PARAM_set1_host.
 * Nothing here is re-implemented.
 *
 * The threat model is a hostile token (and, less so, a hostile JWKS
 * endpoint), so the readers are strict and bounded:
 *   - a JWS is exactly three non-empty base64url segments (no padding, no
 *     '+' '/' or whitespace, no stray bits), at most JOSE_JWT_MAX bytes;
 *   - header and claims are JSON objects with no duplicate member names
 *     (parsers that disagree on duplicates are a classic bypass);
 *   - "alg" must be an asymmetric algorithm we know: "none" and every
 *     HS* are refused outright, so a public key can never be used as an
 *     HMAC secret (algorithm confusion); a "crit" header is refused (we
 *     implement no extension); embedded keys ("jwk", "jku", "x5u", "x5c")
 *     are never used to choose a key;
 *   - the key must fit the algorithm: RSA (>= 2048 bits) for RS and PS,
 *     the matching curve for ES256/ES384/ES512, Ed25519/Ed448 for EdDSA;
 *     a JWK's own "alg", "use" and "key_ops" are honoured;
 *   - ES signatures must be exactly 2 * the curve's size (JOSE's raw
 *     r || s, turned into DER for OpenSSL).
 *
 * Ownership: every struct returned by a *_new / *_parse function is owned
 * by the caller and freed with the matching *_free / *_release. Error
 * messages go into a struct errbuf and never contain key material or the
 * token. Nothing here raises; allocation failures abort (xmalloc), except
 * OpenSSL's own, which are reported as errors.
 */
#ifndef COFFER_JOSE_H
#define COFFER_JOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/types.h>

#include "common.h"
#include "util.h"

#define JOSE_JWT_MAX (64 * 1024)       /* bytes of a compact JWS */
#define JOSE_JWKS_MAX (256 * 1024)     /* bytes of a JWKS document */
#define JOSE_JWKS_MAX_KEYS 100
#define JOSE_PEM_MAX (64 * 1024)       /* one key or one certificate */
#define JOSE_BUNDLE_MAX (1024 * 1024)  /* a CA bundle or a chain */
#define JOSE_BUNDLE_MAX_CERTS 500
#define JOSE_RSA_MIN_BITS 2048
#define JOSE_RSA_MAX_BITS 16384

/* The JWS algorithms we verify. 0 is "none of them". */
enum jose_alg {
    JOSE_ALG_INVALID = 0,
    JOSE_RS256 = 1,
    JOSE_RS384,
    JOSE_RS512,
    JOSE_PS256,
    JOSE_PS384,
    JOSE_PS512,
    JOSE_ES256,
    JOSE_ES384,
    JOSE_ES512,
    JOSE_EDDSA,
    JOSE_ALG_END,
};

/* A bit per algorithm, for "allowed" sets. */
#define JOSE_ALG_BIT(a) (1u << (unsigned)(a))
#define JOSE_ALGS_ALL                                                        \
    (((1u << (unsigned)JOSE_ALG_END) - 1u) & ~JOSE_ALG_BIT(JOSE_ALG_INVALID))

/* The algorithm named name ("RS256", ...), or JOSE_ALG_INVALID. */
enum jose_alg jose_alg_from_name(const char *name);

/* The JOSE name of a valid alg ("RS256"); "?" for anything else. */
const char *jose_alg_name(enum jose_alg alg);

/* ------------------------------------------------------- base64url ---- */

/*
 * Decodes unpadded base64url (RFC 7515 section 2) strictly: only
 * [A-Za-z0-9_-], no '=', a length that is not 1 mod 4, and zero bits in
 * the last character's unused positions (one text per byte string).
 * On success *out is a new buffer of *out_len bytes plus a NUL (free()),
 * and 0 is returned; otherwise COFFER_EINVAL and *out is NULL.
 */
int jose_b64url_decode(const char *in, size_t len, unsigned char **out,
                       size_t *out_len);

/* The same into out, which has room for JOSE_B64URL_DECODED_MAX(len)
 * bytes; *out_len receives the count. 0 or COFFER_EINVAL. */
int jose_b64url_decode_into(const char *in, size_t len, unsigned char *out,
                            size_t *out_len);
#define JOSE_B64URL_DECODED_MAX(len) ((len) / 4 * 3 + 2)

/* Encodes as unpadded base64url. Returns a new NUL-terminated string
 * (free()); *out_len (may be NULL) receives its length. */
char *jose_b64url_encode(const void *in, size_t len, size_t *out_len);

/* The same into out (room for JOSE_B64URL_ENCODED_MAX(len), no NUL
 * written); returns the length. */
size_t jose_b64url_encode_into(const void *in, size_t len, char *out);
#define JOSE_B64URL_ENCODED_MAX(len) (((len) + 2) / 3 * 4)

/* ------------------------------------------------------------ keys ---- */

/* A public key usable for JWS verification. Opaque outside jose.c. */
struct jose_key;

/*
 * Makes a key from one JWK (a cJSON object). Returns 0 and *out, or:
 *   COFFER_EINVAL       malformed (bad base64url, wrong sizes, a point
 *                       off the curve, private members present, ...);
 *   COFFER_EUNSUPPORTED not a signature key we can use: "use" other than
 *                       "sig", "key_ops" without "verify", kty "oct",
 *                       an unknown kty or curve, RSA under 2048 bits.
 * err says why in both cases. jwk is borrowed.
 */
int jose_key_from_jwk(const cJSON *jwk, struct jose_key **out,
                      struct errbuf *err);

/*
 * Makes a key from PEM text holding exactly one block: "PUBLIC KEY",
 * "RSA PUBLIC KEY" or "CERTIFICATE" (its subject key). 0 and *out, or
 * COFFER_EINVAL / COFFER_EUNSUPPORTED with err set.
 */
int jose_key_from_pem(const char *pem, size_t len, struct jose_key **out,
                      struct errbuf *err);

/*
 * Wraps an OpenSSL public key (a reference is taken; the caller keeps
 * its own). Same type checks as the JWK path. 0 / COFFER_EUNSUPPORTED.
 */
int jose_key_from_pkey(EVP_PKEY *pkey, struct jose_key **out,
                       struct errbuf *err);

void jose_key_free(struct jose_key *key);

/* The key's "kid" (NULL if it has none). Borrowed from the key. */
const char *jose_key_kid(const struct jose_key *key);

/* "RSA 2048", "EC P-256", "Ed25519" - for __tostring and messages. */
void jose_key_describe(const struct jose_key *key, char *out, size_t n);

/* True if key can verify alg (type, curve, size, and its own "alg"). */
bool jose_key_fits(const struct jose_key *key, enum jose_alg alg);

/* ------------------------------------------------------------- PEM ---- */

/* Called by jose_pem_each for one block; non-zero stops the walk. */
typedef int (*jose_pem_block_fn)(void *arg, const char *label,
                                 const unsigned char *der, long der_len,
                                 struct errbuf *err);

/*
 * Calls fn for each PEM block of text[0..len), in order, with its label
 * and DER bytes; stops at the first non-zero return and returns it.
 * Returns 0 after the last block, or COFFER_EINVAL (err set) if a block
 * is damaged. *count receives the number of blocks seen. (Shared by the
 * key reader in jose.c and the certificate readers in jose_x509.c.)
 */
int jose_pem_each(const char *text, size_t len, jose_pem_block_fn fn,
                  void *arg, size_t *count, struct errbuf *err);

/* One DER certificate, all of der consumed; NULL if it is not one.
 * X509_free() the result. */
X509 *jose_der_cert(const unsigned char *der, long der_len);

/* ---------------------------------------------------------- keysets ---- */

struct jose_keyset;

/*
 * Parses a JWKS ({"keys": [...]}) from text (at most JOSE_JWKS_MAX bytes)
 * or from a tree (borrowed). Keys that are not for signatures or of an
 * unsupported type are skipped (a provider's JWKS may mix in encryption
 * keys); a malformed key fails the whole set, and so does a set left with
 * no usable key. 0 and *out, or COFFER_EINVAL with err set.
 */
int jose_jwks_parse(const char *text, size_t len, struct jose_keyset **out,
                    struct errbuf *err);
int jose_jwks_from_json(const cJSON *root, struct jose_keyset **out,
                        struct errbuf *err);

void jose_keyset_free(struct jose_keyset *ks);
size_t jose_keyset_len(const struct jose_keyset *ks);
/* The i-th key (i < len), borrowed from the set. */
const struct jose_key *jose_keyset_key(const struct jose_keyset *ks,
                                       size_t i);

/*
 * The keys of ks worth trying for a token with this kid (NULL: none in
 * the header): with a kid, only keys carrying that kid; without, all.
 * Writes at most max borrowed pointers to out and returns the count;
 * 0 with a kid means "unknown kid".
 */
size_t jose_keyset_select(const struct jose_keyset *ks, const char *kid,
                          const struct jose_key **out, size_t max);

/* ------------------------------------------------------------- JWS ---- */

/*
 * A parsed compact JWS. Fields are valid after a successful
 * jose_jws_parse and until jose_jws_release.
 */
struct jose_jws {
    char *token;            /* own copy: the signing input is its prefix */
    size_t signing_len;     /* length of "header.payload" */
    cJSON *header;
    cJSON *claims;
    const char *alg_name;   /* borrowed from header */
    enum jose_alg alg;      /* JOSE_ALG_INVALID if not one we verify */
    const char *kid;        /* borrowed from header; NULL if absent */
    unsigned char *sig;
    size_t sig_len;
};

void jose_jws_init(struct jose_jws *jws);
void jose_jws_release(struct jose_jws *jws);

/*
 * Splits and decodes a compact JWS into jws (initialised, empty). Checks
 * the shape only: three segments, strict base64url, header and payload
 * JSON objects without duplicate members, "alg" a string, "kid" a string
 * if present. Does not look at the algorithm's value, nor verify
 * anything. 0, or COFFER_EINVAL with err set (jws is then released).
 */
int jose_jws_parse(struct jose_jws *jws, const char *token, size_t len,
                   struct errbuf *err);

/*
 * The checks of jose_jws_verify that need no key: no "crit", an "alg" we
 * verify and that is in allowed, an ES signature of the right size. Run
 * before choosing keys, so that a hopeless token never reads as "unknown
 * kid" (which makes callers refresh their JWKS). 0 or an error as below.
 */
int jose_jws_check_header(const struct jose_jws *jws, unsigned allowed,
                          struct errbuf *err);

/*
 * Verifies jws's signature with the first of keys[0..n) that fits its
 * algorithm and verifies. The algorithm must be in allowed (JOSE_ALG_BIT
 * set), no "crit" header may be present. Returns 0, or COFFER_EINVAL /
 * COFFER_EUNSUPPORTED / COFFER_EPERM ("signature does not verify") with
 * err set. Keys are borrowed.
 */
int jose_jws_verify(const struct jose_jws *jws,
                    const struct jose_key *const *keys, size_t n,
                    unsigned allowed, struct errbuf *err);

/* ----------------------------------------------------------- claims ---- */

/*
 * What jose_claims_check compares against. The time rules are those of
 * hashicorp/cap's jwt.Validator (what Vault's JWT auth applies):
 *   - exp, nbf and iat are whole seconds (a fraction is cut off); one that
 *     is absent or 0 is "missing";
 *   - require_exp and exp missing: "missing expiration (exp) claim";
 *   - all three missing: "no issued at (iat), not before (nbf), or
 *     expiration time (exp) claims in token", unless allow_missing_times
 *     (cap's ValidateAllowMissingIatNbfExp), which then skips the time
 *     checks;
 *   - a missing exp is max(iat, nbf) + expiration_leeway; a missing nbf is
 *     iat if present, else exp - not_before_leeway;
 *   - then, in this order: "invalid not before (nbf) claim: token not yet
 *     valid" if now + clock_skew < nbf; "invalid expiration time (exp)
 *     claim: token is expired" if now - clock_skew > exp; "invalid issued
 *     at (iat) claim: token issued in the future" if now + clock_skew < iat.
 * So a present exp gets only the clock skew; expiration_leeway and
 * not_before_leeway only size the claims a token leaves out. Leeways are
 * literal seconds and a negative one counts as 0 (Vault's role config,
 * where 0 means "the default", is mapped by the caller). iss, sub and aud
 * are checked first, in that order, with cap's texts.
 */
struct jose_claims_opts {
    double now;
    int64_t clock_skew_leeway;  /* default 60 */
    int64_t expiration_leeway;  /* default 150 */
    int64_t not_before_leeway;  /* default 150 */
    bool require_exp;           /* default false (cap's rules) */
    bool allow_missing_times;   /* default false */
    const char *issuer;         /* NULL: not checked */
    const char *subject;        /* NULL: not checked */
    const char *const *audiences; /* n_audiences == 0: not checked */
    size_t n_audiences;
};

/* Fills o with the defaults above and now = the current time. */
void jose_claims_opts_init(struct jose_claims_opts *o);

/* Checks claims (borrowed) against o. 0, or with err set COFFER_EPERM
 * (refused) or COFFER_EINVAL (a time claim that is not a number). */
int jose_claims_check(const cJSON *claims, const struct jose_claims_opts *o,
                      struct errbuf *err);

/* ------------------------------------------------- X.509 (jose_x509.c) -- */

/* What coffer.x509.parse returns, in C. */
struct jose_x509_info {
    char *subject;      /* RFC 2253 order, as Go's pkix.Name prints */
    char *issuer;
    char *serial;       /* colon-separated lowercase hex, as Vault shows */
    int64_t not_before;
    int64_t not_after;
    bool is_ca;
    struct strvec dns_names; /* subjectAltName entries, in order */
    struct strvec ips;       /* "10.0.0.1", "::1" */
    struct strvec uris;
    struct strvec emails;
    EVP_PKEY *pkey;     /* the subject key (a reference we own) */
};

void jose_x509_info_release(struct jose_x509_info *info);

/*
 * Parses PEM text holding exactly one CERTIFICATE into info (zeroed by
 * the call). 0, or COFFER_EINVAL with err set (info then released).
 */
int jose_x509_parse(const char *pem, size_t len, struct jose_x509_info *info,
                    struct errbuf *err);

enum jose_x509_purpose {
    JOSE_PURPOSE_ANY = 0,
    JOSE_PURPOSE_CLIENT = 1,
    JOSE_PURPOSE_SERVER = 2,
};

struct jose_x509_verify_opts {
    const char *ca_pem;          /* required: the trust anchors */
    size_t ca_len;
    const char *intermediates_pem; /* may be NULL */
    size_t intermediates_len;
    bool has_now;
    int64_t now;                 /* with has_now: verify at this time */
    const char *dns_name;        /* NULL: no host name check */
    enum jose_x509_purpose purpose;
};

/*
 * Verifies the first certificate of leaf_pem (further certificates in it
 * join the intermediates) up to one of o->ca_pem's certificates, each of
 * which is a trust anchor (as Go's x509 roots are, so a CA bundle may
 * name an intermediate). 0, or COFFER_EINVAL (unreadable input) /
 * COFFER_EPERM (does not verify, with OpenSSL's reason) with err set.
 */
int jose_x509_verify(const char *leaf_pem, size_t len,
                     const struct jose_x509_verify_opts *o,
                     struct errbuf *err);

#endif
