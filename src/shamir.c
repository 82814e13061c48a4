/*
 * shamir.c - Shamir's secret sharing over GF(2^8), compatible with Vault's
 * shamir package (same field, same share layout, same rules).
 *
 * Owns: field arithmetic, splitting and recombining. It does not own the
 * seal configuration (seal.c validates the request and reports Vault's
 * "invalid seal configuration: <reason>"; the reasons come from here).
 *
 * The field is GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1
 * (0x11b). Each byte of the secret is the constant term of its own random
 * polynomial of degree threshold - 1; a share is that polynomial evaluated
 * at one x for every byte, followed by x:
 *
 *   +-----+-----+-----+---------+-----+
 *   | y_1 | y_2 | ... | y_len   |  x  |     x in 1..255, distinct per split
 *   +-----+-----+-----+---------+-----+
 *
 * Side channels: Vault multiplies with log/exp tables, i.e. lookups indexed
 * by secret bytes, whose timing depends on the cache. We multiply with a
 * branch-free shift-and-add (8 rounds with masks) and invert with a^254,
 * so no branch and no memory address depends on a secret byte. It costs a
 * few hundred nanoseconds per split or combine of a 32-byte key, which is
 * nothing next to an HTTP round trip. x values are public (they are in the
 * share) and are handled with ordinary code.
 */
#include "shamir.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* ====================================================== GF(2^8) ==== */

/* Addition and subtraction are both XOR. */
static uint8_t gf_add(uint8_t a, uint8_t b)
{
    return (uint8_t)(a ^ b);
}

/*
 * Russian-peasant multiplication, constant time: every round runs, and
 * the conditional add and the reduction are masks, not branches.
 */
static uint8_t gf_mul(uint8_t a, uint8_t b)
{
    unsigned int aa = a, bb = b, r = 0;

    for (int i = 0; i < 8; i++) {
        r ^= aa & (0u - (bb & 1u));
        bb >>= 1;
        /* multiply aa by x, reducing by 0x11b when bit 7 carries out */
        aa = ((aa << 1) ^ (0x1bu & (0u - ((aa >> 7) & 1u)))) & 0xffu;
    }
    return (uint8_t)r;
}

/*
 * Multiplicative inverse as a^254 (a^255 = 1 for a != 0), by a fixed
 * square-and-multiply chain. gf_inv(0) is 0, which callers never rely on.
 */
static uint8_t gf_inv(uint8_t a)
{
    uint8_t a2 = gf_mul(a, a);      /* a^2 */
    uint8_t a3 = gf_mul(a2, a);     /* a^3 */
    uint8_t a6 = gf_mul(a3, a3);    /* a^6 */
    uint8_t a12 = gf_mul(a6, a6);   /* a^12 */
    uint8_t a15 = gf_mul(a12, a3);  /* a^15 */
    uint8_t a30 = gf_mul(a15, a15); /* a^30 */
    uint8_t a60 = gf_mul(a30, a30); /* a^60 */
    uint8_t a63 = gf_mul(a60, a3);  /* a^63 */
    uint8_t a126 = gf_mul(a63, a63);
    uint8_t a127 = gf_mul(a126, a); /* a^127 */

    return gf_mul(a127, a127); /* a^254 */
}

/* a / b; b must not be 0 (callers divide by differences of distinct x). */
static uint8_t gf_div(uint8_t a, uint8_t b)
{
    COFFER_ASSERT(b != 0);
    return gf_mul(a, gf_inv(b));
}

/* Horner evaluation of coef[0] + coef[1] x + ... + coef[degree] x^degree. */
static uint8_t poly_eval(const uint8_t *coef, int degree, uint8_t x)
{
    uint8_t acc = coef[degree];

    for (int i = degree - 1; i >= 0; i--)
        acc = gf_add(gf_mul(acc, x), coef[i]);
    return acc;
}

/* ======================================================= split ====== */

/*
 * Vault's SealConfig.Validate, in its order and with its words, so that
 * sys/init can answer "invalid seal configuration: <reason>" verbatim.
 */
int shamir_check_config(int parts, int threshold, struct errbuf *err)
{
    const char *why = NULL;

    if (parts < 1)
        why = "shares must be at least one";
    else if (threshold < 1)
        why = "threshold must be at least one";
    else if (parts > 1 && threshold == 1)
        why = "threshold must be greater than one for multiple shares";
    else if (parts > SHAMIR_MAX_PARTS)
        why = "shares must be less than 256";
    else if (threshold > SHAMIR_MAX_PARTS)
        why = "threshold must be less than 256";
    else if (threshold > parts)
        why = "threshold cannot be larger than shares";
    if (why == NULL)
        return 0;
    errbuf_set(err, "%s", why);
    return COFFER_EINVAL;
}

/* A uniform random index in [0, n) for 1 <= n <= 256, by rejection. */
static int random_below(unsigned int n, unsigned int *out)
{
    unsigned int limit = 256u - (256u % n); /* largest multiple of n */
    unsigned char c;

    do {
        if (RAND_bytes(&c, 1) != 1)
            return COFFER_EINTERNAL;
    } while (c >= limit);
    *out = c % n;
    return 0;
}

/*
 * Picks parts distinct x values from 1..255: a Fisher-Yates shuffle of
 * 1..255 (Vault takes a random permutation the same way), first parts.
 */
static int random_xs(uint8_t *xs, int parts)
{
    uint8_t perm[SHAMIR_MAX_PARTS];

    for (int i = 0; i < SHAMIR_MAX_PARTS; i++)
        perm[i] = (uint8_t)(i + 1);
    for (int i = SHAMIR_MAX_PARTS - 1; i > 0; i--) {
        unsigned int j;
        uint8_t t;

        if (random_below((unsigned int)i + 1, &j) != 0)
            return COFFER_EINTERNAL;
        t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    memcpy(xs, perm, (size_t)parts);
    return 0;
}

int shamir_split(const uint8_t *secret, size_t len, int parts, int threshold,
                 uint8_t *out, struct errbuf *err)
{
    uint8_t xs[SHAMIR_MAX_PARTS];
    uint8_t coef[SHAMIR_MAX_PARTS];
    size_t share_len;
    int rc;

    errbuf_clear(err);
    rc = shamir_check_config(parts, threshold, err);
    if (rc != 0)
        return rc;
    if (secret == NULL || len == 0) {
        errbuf_set(err, "cannot split an empty secret");
        return COFFER_EINVAL;
    }
    if (len > (SIZE_MAX / SHAMIR_MAX_PARTS) - 1 || out == NULL) {
        errbuf_set(err, "secret too large");
        return COFFER_EINVAL;
    }
    share_len = len + 1;
    if (random_xs(xs, parts) != 0) {
        errbuf_set(err, "random number generator failed");
        return COFFER_EINTERNAL;
    }

    rc = 0;
    for (size_t k = 0; k < len; k++) {
        coef[0] = secret[k];
        if (threshold > 1 && RAND_bytes(coef + 1, threshold - 1) != 1) {
            errbuf_set(err, "random number generator failed");
            rc = COFFER_EINTERNAL;
            goto out;
        }
        for (int i = 0; i < parts; i++)
            out[(size_t)i * share_len + k] =
                poly_eval(coef, threshold - 1, xs[i]);
    }
    for (int i = 0; i < parts; i++)
        out[(size_t)i * share_len + len] = xs[i];

out:
    OPENSSL_cleanse(coef, sizeof(coef));
    if (rc != 0)
        OPENSSL_cleanse(out, (size_t)parts * share_len);
    return rc;
}

/* ===================================================== combine ====== */

/*
 * Lagrange interpolation at x = 0. For share i the basis value is
 *
 *   l_i(0) = prod_{j != i} (0 - x_j) / (x_i - x_j)
 *          = prod_{j != i}  x_j      / (x_i ^ x_j)      (char. 2)
 *
 * which depends only on the public x values, so it is computed once per
 * share; then every secret byte is sum_i y_i[k] * l_i(0).
 */
int shamir_combine(const uint8_t *const *shares, int n, size_t share_len,
                   uint8_t *out, struct errbuf *err)
{
    uint8_t basis[SHAMIR_MAX_PARTS];
    uint8_t xs[SHAMIR_MAX_PARTS];
    bool seen[256] = {false};
    size_t len;

    errbuf_clear(err);
    if (shares == NULL || out == NULL || n < 1) {
        errbuf_set(err, "at least one share is needed");
        return COFFER_EINVAL;
    }
    if (n > SHAMIR_MAX_PARTS) {
        errbuf_set(err, "too many shares");
        return COFFER_EINVAL;
    }
    if (share_len < 2) {
        errbuf_set(err, "shares must be at least two bytes");
        return COFFER_EINVAL;
    }
    len = share_len - 1;
    for (int i = 0; i < n; i++) {
        if (shares[i] == NULL) {
            errbuf_set(err, "missing share");
            return COFFER_EINVAL;
        }
        xs[i] = shares[i][len];
        /* x = 0 would be the secret itself; no split produces it */
        if (xs[i] == 0) {
            errbuf_set(err, "invalid share: x coordinate is zero");
            return COFFER_EINVAL;
        }
        if (seen[xs[i]]) {
            errbuf_set(err, "duplicate share detected");
            return COFFER_EINVAL;
        }
        seen[xs[i]] = true;
    }

    for (int i = 0; i < n; i++) {
        uint8_t num = 1, den = 1;

        for (int j = 0; j < n; j++) {
            if (j == i)
                continue;
            num = gf_mul(num, xs[j]);
            den = gf_mul(den, gf_add(xs[i], xs[j]));
        }
        basis[i] = gf_div(num, den);
    }
    for (size_t k = 0; k < len; k++) {
        uint8_t acc = 0;

        for (int i = 0; i < n; i++)
            acc = gf_add(acc, gf_mul(shares[i][k], basis[i]));
        out[k] = acc;
    }
    return 0;
}
