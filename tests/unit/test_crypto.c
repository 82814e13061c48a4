/*
 * test_crypto.c - identifiers, hashes and constant-time comparison.
 *
 * Identifier formats are on the wire (tokens, accessors, request ids), so
 * their alphabet and length are checked on many samples; hashes are checked
 * against published vectors (FIPS 180-2, RFC 4231).
 */
#include "../../src/crypto.c"

#include <ctype.h>
#include <stdint.h>

#include "harness.h"

static int is_base62(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

static void hex_of(const unsigned char *in, size_t n, char *out)
{
    crypto_hex(in, n, out);
}

TEST(random_fills_and_differs)
{
    unsigned char a[32], b[32];

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    CHECK_EQ_INT(crypto_random(a, sizeof(a)), 0);
    CHECK_EQ_INT(crypto_random(b, sizeof(b)), 0);
    CHECK(memcmp(a, b, sizeof(a)) != 0);
    CHECK_EQ_INT(crypto_random(a, 0), 0);
}

TEST(base62_alphabet_and_length)
{
    char id[CRYPTO_ID_LEN + 2];
    int seen[256];
    int distinct = 0;

    memset(seen, 0, sizeof(seen));
    for (int round = 0; round < 500; round++) {
        memset(id, '#', sizeof(id));
        CHECK_EQ_INT(crypto_random_base62(id, CRYPTO_ID_LEN), 0);
        CHECK_EQ_INT(strlen(id), CRYPTO_ID_LEN);
        CHECK(id[CRYPTO_ID_LEN + 1] == '#'); /* wrote n+1 bytes, no more */
        if (!is_base62(id, CRYPTO_ID_LEN)) {
            harness_fail(__FILE__, __LINE__, "not base62: %s", id);
            break;
        }
        for (int i = 0; i < CRYPTO_ID_LEN; i++)
            seen[(unsigned char)id[i]]++;
    }
    for (int c = 0; c < 256; c++)
        distinct += seen[c] > 0;
    /* 12000 draws from 62 symbols: every symbol shows up. */
    CHECK_EQ_INT(distinct, 62);
}

TEST(base62_other_lengths_and_uniqueness)
{
    char a[65], b[65];

    CHECK_EQ_INT(crypto_random_base62(a, 0), 0);
    CHECK_STREQ(a, "");
    CHECK_EQ_INT(crypto_random_base62(a, 1), 0);
    CHECK_EQ_INT(strlen(a), 1);
    CHECK_EQ_INT(crypto_random_base62(a, 64), 0);
    CHECK_EQ_INT(crypto_random_base62(b, 64), 0);
    CHECK_EQ_INT(strlen(a), 64);
    CHECK(is_base62(a, 64));
    CHECK(strcmp(a, b) != 0);
}

static int is_uuid_v4(const char *u)
{
    if (strlen(u) != CRYPTO_UUID_LEN)
        return 0;
    for (int i = 0; i < CRYPTO_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)u[i]) ||
                   isupper((unsigned char)u[i])) {
            return 0;
        }
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

TEST(uuid_format)
{
    char u[CRYPTO_UUID_LEN + 1], v[CRYPTO_UUID_LEN + 1];

    for (int i = 0; i < 200; i++) {
        CHECK_EQ_INT(crypto_uuid(u), 0);
        if (!is_uuid_v4(u)) {
            harness_fail(__FILE__, __LINE__, "not a v4 uuid: %s", u);
            break;
        }
    }
    CHECK_EQ_INT(crypto_uuid(v), 0);
    CHECK(strcmp(u, v) != 0);
}

TEST(random_hex)
{
    char h[130];

    memset(h, '#', sizeof(h));
    CHECK_EQ_INT(crypto_random_hex(h, 8), 0);
    CHECK_EQ_INT(strlen(h), 8);
    CHECK(h[9] == '#');
    for (int i = 0; i < 8; i++)
        CHECK(strchr("0123456789abcdef", h[i]) != NULL && h[i] != '\0');
    CHECK_EQ_INT(crypto_random_hex(h, 7), 0); /* odd lengths too */
    CHECK_EQ_INT(strlen(h), 7);
    CHECK_EQ_INT(crypto_random_hex(h, 128), 0);
    CHECK_EQ_INT(strlen(h), 128);
}

TEST(hex_encoding)
{
    static const unsigned char in[] = {0x00, 0x01, 0xab, 0xff, 0x7f};
    char out[11];

    hex_of(in, sizeof(in), out);
    CHECK_STREQ(out, "0001abff7f");
    hex_of(in, 0, out);
    CHECK_STREQ(out, "");
}

struct sha_case {
    const char *in;
    const char *hex;
};

static const struct sha_case sha_cases[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
};

TEST(sha256_vectors)
{
    for (size_t i = 0; i < ARRAY_LEN(sha_cases); i++) {
        unsigned char md[32];
        char hex[65];

        crypto_sha256(sha_cases[i].in, strlen(sha_cases[i].in), md);
        hex_of(md, 32, hex);
        CHECK_STREQ(hex, sha_cases[i].hex);
    }
}

TEST(hmac_sha256_rfc4231)
{
    unsigned char md[32];
    char hex[65];
    unsigned char key1[20];
    unsigned char key3[20], data3[50];

    /* Test case 2: a key shorter than the block. */
    crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, md);
    hex_of(md, 32, hex);
    CHECK_STREQ(hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* Test case 1. */
    memset(key1, 0x0b, sizeof(key1));
    crypto_hmac_sha256(key1, sizeof(key1), "Hi There", 8, md);
    hex_of(md, 32, hex);
    CHECK_STREQ(hex,
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    /* Test case 3: binary key and data. */
    memset(key3, 0xaa, sizeof(key3));
    memset(data3, 0xdd, sizeof(data3));
    crypto_hmac_sha256(key3, sizeof(key3), data3, sizeof(data3), md);
    hex_of(md, 32, hex);
    CHECK_STREQ(hex,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
}

TEST(hmac_long_key)
{
    /* RFC 4231 test case 6: a 131-byte key is hashed first. */
    unsigned char key[131];
    unsigned char md[32];
    char hex[65];
    static const char data[] =
        "Test Using Larger Than Block-Size Key - Hash Key First";

    memset(key, 0xaa, sizeof(key));
    crypto_hmac_sha256(key, sizeof(key), data, strlen(data), md);
    hex_of(md, 32, hex);
    CHECK_STREQ(hex,
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/*
 * The per-thread keyed context must give what a fresh HMAC gives whatever
 * the order of keys: same key twice, a key that is a prefix of the last,
 * an empty message, and threads interleaving their own keys.
 */
static void one_shot(const void *k, size_t kn, const void *d, size_t dn,
                     unsigned char out[32])
{
    unsigned int n = 32;

    HMAC(EVP_sha256(), k, (int)kn, d, dn, out, &n);
}

static int hmac_matches_one_shot(unsigned seed)
{
    static const char *keys[] = {"salt-a", "salt-ab", "salt-a", "", "x"};
    unsigned char a[32], b[32];
    char msg[64];

    for (unsigned i = 0; i < 400; i++) {
        const char *k = keys[(i * 7 + seed) % 5];
        size_t mn = (size_t)snprintf(msg, sizeof(msg), "v%u-%u", seed, i);
        if (i % 11 == 0)
            mn = 0;
        crypto_hmac_sha256(k, strlen(k), msg, mn, a);
        one_shot(k, strlen(k), msg, mn, b);
        if (memcmp(a, b, 32) != 0)
            return 0;
    }
    return 1;
}

static void *hmac_thread(void *arg)
{
    return hmac_matches_one_shot((unsigned)(uintptr_t)arg) ? arg : NULL;
}

TEST(hmac_cached_context_matches_one_shot)
{
    pthread_t t[4];
    void *ok[4];

    CHECK(hmac_matches_one_shot(99));
    for (uintptr_t i = 0; i < 4; i++)
        CHECK_EQ_INT(pthread_create(&t[i], NULL, hmac_thread,
                                    (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], &ok[i]);
        CHECK(ok[i] == (void *)(uintptr_t)(i + 1));
    }
}

TEST(equal_constant_time_contract)
{
    CHECK(crypto_equal("abc", 3, "abc", 3));
    CHECK(!crypto_equal("abc", 3, "abd", 3));
    CHECK(!crypto_equal("abc", 3, "abcd", 4));
    CHECK(!crypto_equal("abcd", 4, "abc", 3));
    CHECK(crypto_equal("", 0, "", 0));
    CHECK(crypto_equal("a\0b", 3, "a\0b", 3));
    CHECK(!crypto_equal("a\0b", 3, "a\0c", 3));
    CHECK(!crypto_equal("x", 1, "", 0));
}

TEST(wipe_overwrites)
{
    unsigned char secret[16];
    int left = 0;

    memset(secret, 0x5a, sizeof(secret));
    crypto_wipe(secret, sizeof(secret));
    for (size_t i = 0; i < sizeof(secret); i++)
        left += secret[i] == 0x5a;
    CHECK_EQ_INT(left, 0);
    crypto_wipe(secret, 0);
}

/* RFC 7914 section 11 (PBKDF2-HMAC-SHA256 vectors). */
TEST(pbkdf2_sha256_vectors)
{
    unsigned char out[64];
    char hex[129];

    CHECK_EQ_INT(crypto_pbkdf2_sha256("passwd", 6, "salt", 4, 1, out, 64), 0);
    hex_of(out, 64, hex);
    CHECK_STREQ(hex, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d"
                     "57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1"
                     "e30bd509112041d3a19783");
    CHECK_EQ_INT(crypto_pbkdf2_sha256("Password", 8, "NaCl", 4, 80000, out,
                                      64), 0);
    hex_of(out, 64, hex);
    CHECK_STREQ(hex, "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08"
                     "876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebb"
                     "a1d078478f62b397f33c8d");
    CHECK_EQ_INT(crypto_pbkdf2_sha256("p", 1, "s", 1, 0, out, 32),
                 COFFER_EINVAL);
    CHECK_EQ_INT(crypto_pbkdf2_sha256("p", 1, "s", 1, 1, out, 0),
                 COFFER_EINVAL);
}

/*
 * The SCRAM-SHA-256 verifier PostgreSQL stores, against one computed with
 * Python's hashlib/hmac from RFC 5802's definitions (salt 00..0f, 4096
 * rounds); the integration tests log in to a real PostgreSQL with it.
 */
TEST(scram_sha256_verifier)
{
    unsigned char salt[16];
    char out[CRYPTO_SCRAM_VERIFIER_MAX], again[CRYPTO_SCRAM_VERIFIER_MAX];

    for (int i = 0; i < 16; i++)
        salt[i] = (unsigned char)i;
    CHECK_EQ_INT(crypto_scram_sha256_verifier_salted("pencil", 6, salt, 4096,
                                                     out), 0);
    CHECK_STREQ(out, "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$"
                     "zHCdol2044/ZyWzPLi7oxApCkamKw9Z+E4U/QApd/5Y=:"
                     "dd5peBOitVnLNFu7VmwP+HiDaaw4OUCv396eVCWhYiE=");
    /* A fresh salt each time: two verifiers of one password differ. */
    CHECK_EQ_INT(crypto_scram_sha256_verifier("pencil", 6, out), 0);
    CHECK_EQ_INT(crypto_scram_sha256_verifier("pencil", 6, again), 0);
    CHECK(strncmp(out, "SCRAM-SHA-256$4096:", 19) == 0);
    CHECK(strcmp(out, again) != 0);
    /* Not ASCII (SASLprep would change it), a NUL, or empty: refused. */
    CHECK_EQ_INT(crypto_scram_sha256_verifier("p\xc3\xa9ncil", 7, out),
                 COFFER_EINVAL);
    CHECK_EQ_INT(crypto_scram_sha256_verifier("pen\0cil", 7, out),
                 COFFER_EINVAL);
    CHECK_EQ_INT(crypto_scram_sha256_verifier("", 0, out), COFFER_EINVAL);
    CHECK_EQ_INT(crypto_scram_sha256_verifier_salted("pencil", 6, salt, 0,
                                                     out), COFFER_EINVAL);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(random_fills_and_differs);
    RUN(base62_alphabet_and_length);
    RUN(base62_other_lengths_and_uniqueness);
    RUN(uuid_format);
    RUN(random_hex);
    RUN(hex_encoding);
    RUN(sha256_vectors);
    RUN(hmac_sha256_rfc4231);
    RUN(hmac_long_key);
    RUN(hmac_cached_context_matches_one_shot);
    RUN(equal_constant_time_contract);
    RUN(wipe_overwrites);
    RUN(pbkdf2_sha256_vectors);
    RUN(scram_sha256_verifier);
    return HARNESS_DONE();
}
