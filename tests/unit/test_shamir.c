/*
 * test_shamir.c - GF(2^8) arithmetic against known values, and the
 * properties that matter for the seal: any threshold-sized subset of the
 * shares recombines the secret, fewer do not, bad parameters and bad
 * shares are refused with Vault's words.
 */
#include "../../src/shamir.c"

#include <stdlib.h>

#include "harness.h"

/* Textbook multiplication with branches: the reference for gf_mul. */
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
    unsigned int r = 0, aa = a;

    while (b != 0) {
        if (b & 1)
            r ^= aa;
        aa <<= 1;
        if (aa & 0x100)
            aa ^= 0x11b;
        b >>= 1;
    }
    return (uint8_t)r;
}

/* FIPS-197 section 4.2 and Vault's field tests. */
TEST(gf_known_vectors)
{
    CHECK_EQ_INT(gf_mul(0x57, 0x83), 0xc1); /* FIPS-197 4.2 */
    CHECK_EQ_INT(gf_mul(0x57, 0x13), 0xfe); /* FIPS-197 4.2.1 */
    CHECK_EQ_INT(gf_mul(0x57, 0x02), 0xae); /* xtime chain, 4.2.1 */
    CHECK_EQ_INT(gf_mul(0x57, 0x04), 0x47);
    CHECK_EQ_INT(gf_mul(0x57, 0x08), 0x8e);
    CHECK_EQ_INT(gf_mul(0x57, 0x10), 0x07);
    CHECK_EQ_INT(gf_inv(0x53), 0xca); /* {53}{ca} = {01}, FIPS-197 5.1.1 */
    CHECK_EQ_INT(gf_inv(0x01), 0x01);
    CHECK_EQ_INT(gf_add(16, 16), 0); /* Vault TestField_Add */
    CHECK_EQ_INT(gf_add(3, 4), 7);
    CHECK_EQ_INT(gf_mul(3, 7), 9); /* Vault TestField_Mult */
    CHECK_EQ_INT(gf_mul(3, 0), 0);
    CHECK_EQ_INT(gf_mul(0, 3), 0);
    CHECK_EQ_INT(gf_div(0, 7), 0); /* Vault TestField_Divide */
    CHECK_EQ_INT(gf_div(3, 3), 1);
    CHECK_EQ_INT(gf_div(6, 3), 2);
}

/* Every product and quotient of the field, against the reference. */
TEST(gf_exhaustive)
{
    int bad_mul = 0, bad_div = 0, bad_inv = 0;

    for (int a = 0; a < 256; a++) {
        for (int b = 0; b < 256; b++) {
            uint8_t p = gf_mul((uint8_t)a, (uint8_t)b);
            if (p != ref_mul((uint8_t)a, (uint8_t)b) ||
                p != gf_mul((uint8_t)b, (uint8_t)a))
                bad_mul++;
            if (b != 0 && gf_div(p, (uint8_t)b) != a)
                bad_div++;
        }
        if (a != 0 && gf_mul((uint8_t)a, gf_inv((uint8_t)a)) != 1)
            bad_inv++;
    }
    CHECK_EQ_INT(bad_mul, 0);
    CHECK_EQ_INT(bad_div, 0);
    CHECK_EQ_INT(bad_inv, 0);
    CHECK_EQ_INT(gf_inv(0), 0);
}

/* Shares made by hand: f(x) = 0x42 + x, so f(1) = 0x43, f(2) = 0x40. */
TEST(combine_hand_vector)
{
    const uint8_t s1[] = {0x43, 0x01}, s2[] = {0x40, 0x02};
    const uint8_t *shares[] = {s1, s2};
    const uint8_t *rev[] = {s2, s1};
    uint8_t out = 0;
    struct errbuf err;

    CHECK_EQ_INT(shamir_combine(shares, 2, 2, &out, &err), 0);
    CHECK_EQ_INT(out, 0x42);
    out = 0;
    CHECK_EQ_INT(shamir_combine(rev, 2, 2, &out, &err), 0);
    CHECK_EQ_INT(out, 0x42);
    CHECK_EQ_INT(poly_eval((const uint8_t[]){0x42, 0x01}, 1, 2), 0x40);
    /* f(x) = 7 + 0x57 x + 0x83 x^2 at x = 1 is 7 ^ 0x57 ^ 0x83 */
    CHECK_EQ_INT(poly_eval((const uint8_t[]){0x07, 0x57, 0x83}, 2, 1),
                 0x07 ^ 0x57 ^ 0x83);
}

/* Vault TestInterpolate_Rand: every intercept through three points. */
TEST(interpolate_every_byte)
{
    int bad = 0;

    for (int v = 0; v < 256; v++) {
        uint8_t coef[3] = {(uint8_t)v, 0, 0};
        uint8_t sh[3][2], out = 0;
        const uint8_t *p[3] = {sh[0], sh[1], sh[2]};
        struct errbuf err;

        CHECK(RAND_bytes(coef + 1, 2) == 1);
        for (int i = 0; i < 3; i++) {
            sh[i][1] = (uint8_t)(i + 1);
            sh[i][0] = poly_eval(coef, 2, sh[i][1]);
        }
        if (shamir_combine(p, 3, 2, &out, &err) != 0 || out != v)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

/*
 * Tries every subset of the n shares (n <= 12): those of size >= t give
 * the secret back, those of size t - 1 do not. Returns failures.
 */
static int check_subsets(const uint8_t *secret, size_t len,
                         const uint8_t *all, int n, int t)
{
    const uint8_t *pick[12];
    uint8_t got[64];
    struct errbuf err;
    int failures = 0;

    for (unsigned int mask = 1; mask < (1u << n); mask++) {
        int k = 0, same;

        for (int i = 0; i < n; i++) {
            if (mask & (1u << i))
                pick[k++] = all + (size_t)i * (len + 1);
        }
        if (k < t - 1)
            continue;
        if (shamir_combine(pick, k, len + 1, got, &err) != 0) {
            failures++;
            continue;
        }
        same = memcmp(got, secret, len) == 0;
        if ((k >= t && !same) || (k < t && same))
            failures++;
    }
    return failures;
}

TEST(split_combine_all_subsets)
{
    uint8_t secret[32], shares[10 * 33];
    struct errbuf err;
    int failures = 0;

    for (int n = 1; n <= 10; n++) {
        for (int t = (n == 1 ? 1 : 2); t <= n; t++) {
            CHECK(RAND_bytes(secret, sizeof(secret)) == 1);
            CHECK_EQ_INT(shamir_split(secret, sizeof(secret), n, t, shares,
                                      &err), 0);
            failures += check_subsets(secret, sizeof(secret), shares, n, t);
        }
    }
    CHECK_EQ_INT(failures, 0);
}

/* Share layout: len + 1 bytes, x last, every x distinct and non-zero. */
TEST(split_share_layout)
{
    static uint8_t shares[255 * 17];
    uint8_t secret[16] = "0123456789abcdef";
    bool seen[256] = {false};
    struct errbuf err;
    int dup = 0;

    CHECK_EQ_INT(shamir_split(secret, 16, 255, 255, shares, &err), 0);
    for (int i = 0; i < 255; i++) {
        uint8_t x = shares[i * 17 + 16];
        if (x == 0 || seen[x])
            dup++;
        seen[x] = true;
    }
    CHECK_EQ_INT(dup, 0);
    /* a share is not the secret (it would be only with tiny probability) */
    CHECK(memcmp(shares, secret, 16) != 0);
}

/* Big splits: random threshold-sized subsets in a random order. */
TEST(split_combine_large)
{
    static const int cases[][2] = {{255, 255}, {255, 2}, {200, 100},
                                   {50, 49},   {17, 3},  {5, 3}};
    static uint8_t shares[255 * 33];
    const uint8_t *pick[255];
    uint8_t secret[32], got[32];
    struct errbuf err;
    int failures = 0;

    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        int n = cases[c][0], t = cases[c][1];
        int idx[255];

        CHECK(RAND_bytes(secret, sizeof(secret)) == 1);
        CHECK_EQ_INT(shamir_split(secret, 32, n, t, shares, &err), 0);
        for (int round = 0; round < 5; round++) {
            for (int i = 0; i < n; i++)
                idx[i] = i;
            for (int i = n - 1; i > 0; i--) {
                int j = rand() % (i + 1), tmp = idx[i];
                idx[i] = idx[j];
                idx[j] = tmp;
            }
            for (int i = 0; i < t; i++)
                pick[i] = shares + (size_t)idx[i] * 33;
            if (shamir_combine(pick, t, 33, got, &err) != 0 ||
                memcmp(got, secret, 32) != 0)
                failures++;
            if (t > 1 && shamir_combine(pick, t - 1, 33, got, &err) == 0 &&
                memcmp(got, secret, 32) == 0)
                failures++;
        }
    }
    CHECK_EQ_INT(failures, 0);
}

/* One byte secrets and long secrets both work. */
TEST(split_lengths)
{
    static uint8_t secret[1000], shares[3 * 1001], got[1000];
    size_t lens[] = {1, 2, 31, 32, 33, 1000};
    struct errbuf err;

    for (size_t c = 0; c < ARRAY_LEN(lens); c++) {
        size_t len = lens[c];
        const uint8_t *pick[2];

        CHECK(RAND_bytes(secret, (int)len) == 1);
        CHECK_EQ_INT(shamir_split(secret, len, 3, 2, shares, &err), 0);
        pick[0] = shares + 2 * (len + 1);
        pick[1] = shares;
        CHECK_EQ_INT(shamir_combine(pick, 2, len + 1, got, &err), 0);
        CHECK_MEMEQ(got, secret, len);
    }
}

/* VAULT_API.md 2.3: the seal-configuration rules, with Vault's reasons. */
static const struct {
    int parts, threshold;
    const char *why;
} bad_configs[] = {
    {0, 0, "shares must be at least one"},
    {-1, 1, "shares must be at least one"},
    {3, 0, "threshold must be at least one"},
    {5, 1, "threshold must be greater than one for multiple shares"},
    {2, 1, "threshold must be greater than one for multiple shares"},
    {256, 3, "shares must be less than 256"},
    {300, 256, "shares must be less than 256"},
    {255, 256, "threshold must be less than 256"},
    {3, 4, "threshold cannot be larger than shares"},
    {1, 2, "threshold cannot be larger than shares"},
    {5, 300, "threshold must be less than 256"}, /* before "larger" */
    {INT32_MAX, INT32_MAX, "shares must be less than 256"},
    {INT32_MIN, 2, "shares must be at least one"},
};

/* The rules alone, as sys/init checks them before anything is made. */
TEST(check_config_rules)
{
    struct errbuf err;

    for (size_t i = 0; i < ARRAY_LEN(bad_configs); i++) {
        errbuf_clear(&err);
        CHECK_EQ_INT(shamir_check_config(bad_configs[i].parts,
                                         bad_configs[i].threshold, &err),
                     COFFER_EINVAL);
        CHECK_STREQ(err.msg, bad_configs[i].why);
    }
    CHECK_EQ_INT(shamir_check_config(1, 1, &err), 0);
    CHECK_EQ_INT(shamir_check_config(2, 2, &err), 0);
    CHECK_EQ_INT(shamir_check_config(5, 3, &err), 0);
    CHECK_EQ_INT(shamir_check_config(SHAMIR_MAX_PARTS, SHAMIR_MAX_PARTS,
                                     &err), 0);
    CHECK_EQ_INT(shamir_check_config(SHAMIR_MAX_PARTS, 2, &err), 0);
}

TEST(split_invalid_parameters)
{
    uint8_t secret[4] = {1, 2, 3, 4}, out[255 * 5];
    struct errbuf err;

    for (size_t i = 0; i < ARRAY_LEN(bad_configs); i++) {
        CHECK_EQ_INT(shamir_split(secret, 4, bad_configs[i].parts,
                                  bad_configs[i].threshold, out, &err),
                     COFFER_EINVAL);
        CHECK_STREQ(err.msg, bad_configs[i].why);
    }
    CHECK_EQ_INT(shamir_split(secret, 0, 3, 2, out, &err), COFFER_EINVAL);
    CHECK_STREQ(err.msg, "cannot split an empty secret");
    CHECK_EQ_INT(shamir_split(NULL, 4, 3, 2, out, &err), COFFER_EINVAL);
    /* the boundaries that are allowed */
    CHECK_EQ_INT(shamir_split(secret, 4, 1, 1, out, &err), 0);
    CHECK_EQ_INT(shamir_split(secret, 4, 255, 255, out, &err), 0);
    CHECK_EQ_INT(shamir_split(secret, 4, 2, 2, out, &err), 0);
}

/* A one-share split is the secret plus an x; combining it gives it back. */
TEST(split_one_share)
{
    uint8_t secret[8] = "k3y-byte", share[9], got[8];
    const uint8_t *pick[1] = {share};
    struct errbuf err;

    CHECK_EQ_INT(shamir_split(secret, 8, 1, 1, share, &err), 0);
    CHECK_MEMEQ(share, secret, 8);
    CHECK(share[8] != 0);
    CHECK_EQ_INT(shamir_combine(pick, 1, 9, got, &err), 0);
    CHECK_MEMEQ(got, secret, 8);
}

TEST(combine_invalid)
{
    uint8_t secret[4] = {9, 8, 7, 6}, shares[3 * 5], got[4];
    uint8_t zero_x[5] = {1, 2, 3, 4, 0};
    const uint8_t *pick[3];
    struct errbuf err;

    CHECK_EQ_INT(shamir_split(secret, 4, 3, 2, shares, &err), 0);
    pick[0] = shares;
    pick[1] = shares;
    CHECK_EQ_INT(shamir_combine(pick, 2, 5, got, &err), COFFER_EINVAL);
    CHECK_STREQ(err.msg, "duplicate share detected");

    /* a different share carrying the same x is a duplicate too */
    {
        uint8_t copy[5];
        memcpy(copy, shares + 5, 5);
        copy[4] = shares[4];
        pick[1] = copy;
        CHECK_EQ_INT(shamir_combine(pick, 2, 5, got, &err), COFFER_EINVAL);
        CHECK_STREQ(err.msg, "duplicate share detected");
    }
    pick[1] = zero_x;
    CHECK_EQ_INT(shamir_combine(pick, 2, 5, got, &err), COFFER_EINVAL);
    CHECK_EQ_INT(shamir_combine(pick, 0, 5, got, &err), COFFER_EINVAL);
    CHECK_EQ_INT(shamir_combine(pick, 2, 1, got, &err), COFFER_EINVAL);
    CHECK_STREQ(err.msg, "shares must be at least two bytes");
    CHECK_EQ_INT(shamir_combine(NULL, 2, 5, got, &err), COFFER_EINVAL);
    pick[1] = NULL;
    CHECK_EQ_INT(shamir_combine(pick, 2, 5, got, &err), COFFER_EINVAL);
}

/* A flipped bit in one share gives a wrong secret, not an error. */
TEST(combine_corrupted_share_gives_wrong_secret)
{
    uint8_t secret[32], shares[3 * 33], got[32];
    const uint8_t *pick[2] = {shares, shares + 33};
    struct errbuf err;

    CHECK(RAND_bytes(secret, 32) == 1);
    CHECK_EQ_INT(shamir_split(secret, 32, 3, 2, shares, &err), 0);
    shares[5] ^= 0x10;
    CHECK_EQ_INT(shamir_combine(pick, 2, 33, got, &err), 0);
    CHECK(memcmp(got, secret, 32) != 0);
    CHECK(got[5] != secret[5]);
    CHECK_MEMEQ(got, secret, 5);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    srand(1234);
    RUN(gf_known_vectors);
    RUN(gf_exhaustive);
    RUN(combine_hand_vector);
    RUN(interpolate_every_byte);
    RUN(split_combine_all_subsets);
    RUN(split_share_layout);
    RUN(split_combine_large);
    RUN(split_lengths);
    RUN(check_config_rules);
    RUN(split_invalid_parameters);
    RUN(split_one_share);
    RUN(combine_invalid);
    RUN(combine_corrupted_share_gives_wrong_secret);
    return HARNESS_DONE();
}
