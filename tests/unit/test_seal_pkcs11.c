/*
 * test_seal_pkcs11.c - the PKCS#11 seal against SoftHSM2 on a throw-away
 * token: settings refused before the module is touched, generate_key then
 * finding the same key again after a full unload, AES-GCM and RSA-OAEP
 * round trips through the seal_wrapper interface, labels and tampering
 * refused, and many threads wrapping and unwrapping on the one session.
 * Without softhsm2 installed the HSM cases are skipped (said on stdout).
 */
#include "../../src/seal_pkcs11.c"

#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define LIB "/usr/lib/softhsm/libsofthsm2.so"
#define PIN "7788-1234"
#define THREADS 8
#define ROUNDS 300

static char tmpdir[64];

/* A SoftHSM config and a token labelled "unit"; false if unavailable. */
static bool make_token(void)
{
    char path[128], cmd[256];
    FILE *f;

    if (access(LIB, R_OK) != 0 || system("command -v softhsm2-util "
                                         ">/dev/null 2>&1") != 0)
        return false;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/coffer-p11-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return false;
    snprintf(path, sizeof(path), "%s/tokens", tmpdir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/softhsm2.conf", tmpdir);
    f = fopen(path, "w");
    if (f == NULL)
        return false;
    fprintf(f, "directories.tokendir = %s/tokens\nobjectstore.backend = "
               "file\nlog.level = ERROR\n", tmpdir);
    fclose(f);
    setenv("SOFTHSM2_CONF", path, 1);
    unsetenv("COFFER_HSM_PIN");
    unsetenv("BAO_HSM_PIN");
    unsetenv("VAULT_HSM_PIN");
    snprintf(cmd, sizeof(cmd), "softhsm2-util --init-token --free --label "
             "unit --pin %s --so-pin 0000-%s >/dev/null", PIN, PIN);
    return system(cmd) == 0;
}

static struct seal_pkcs11 *open_seal(const char *mech, const char *label,
                                     bool generate, struct errbuf *err)
{
    char pin[] = PIN;
    struct seal_pkcs11_config c = {LIB,   NULL, "unit", pin, label, NULL,
                                   mech, "sha1", generate};
    struct seal_pkcs11 *p = seal_pkcs11_new(&c, err);

    /* the configured PIN is wiped whatever happened after the login */
    if (p != NULL)
        CHECK(pin[0] == '\0');
    return p;
}

TEST(settings_refused_with_words)
{
    struct errbuf err;
    char pin[] = PIN;
    struct seal_pkcs11_config c = {LIB,  NULL, "unit", pin, "k", NULL,
                                   NULL, NULL, false};

    c.key_label = NULL;
    CHECK(seal_pkcs11_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, "key_label is required") != NULL);
    c.key_label = "bad\"label";
    CHECK(seal_pkcs11_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, "quote") != NULL);
    c.key_label = "k";
    c.key_id = "0x1";
    CHECK(seal_pkcs11_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, "key_id must be") != NULL);
    c.key_id = NULL;
    c.mechanism = "CKM_DES3_CBC";
    CHECK(seal_pkcs11_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, "is not supported") != NULL);
    c.mechanism = "4231"; /* CKM_AES_GCM in decimal */
    c.rsa_oaep_hash = "md5";
    CHECK(seal_pkcs11_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, "rsa_oaep_hash") != NULL);
    c.rsa_oaep_hash = NULL;
    c.lib = "/nonexistent/libp11.so";
    CHECK(seal_pkcs11_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, "cannot load the PKCS#11 module") != NULL);
    c.lib = NULL;
    CHECK(seal_pkcs11_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, "lib is required") != NULL);
    CHECK(strstr(err.msg, PIN) == NULL);
}

/* wrap then unwrap through the interface seal.c uses */
static int round_trip(const struct seal_wrapper *w, const char *label,
                      const uint8_t *in, size_t n, struct errbuf *err)
{
    uint8_t out[64];
    size_t len = 0;
    bool rewrap = true;
    char *blob = NULL;
    int rc = w->wrap(w->ctx, label, in, n, &blob, err);

    if (rc == 0)
        rc = w->unwrap(w->ctx, label, blob, strlen(blob), out, sizeof(out),
                       &len, &rewrap, err);
    if (rc == 0 && (len != n || memcmp(in, out, n) != 0 || rewrap))
        rc = -1;
    free(blob);
    return rc;
}

TEST(generate_then_find_again)
{
    struct errbuf err;
    const struct seal_wrapper *w;
    struct seal_pkcs11 *p = open_seal(NULL, "gen", false, &err);
    uint8_t key[32] = {1, 2, 3};
    char *blob = NULL;
    uint8_t out[32];
    size_t len = 0;
    bool rewrap;

    CHECK(p == NULL);
    CHECK(strstr(err.msg, "no AES key labelled \"gen\"") != NULL);
    p = open_seal(NULL, "gen", true, &err);
    CHECK(p != NULL);
    if (p == NULL)
        return;
    w = seal_pkcs11_wrapper(p);
    CHECK_STREQ(w->type, "pkcs11");
    CHECK_STREQ(w->key_name(w->ctx), "gen");
    CHECK_EQ_INT(w->wrap(w->ctx, "core/root-key", key, sizeof(key), &blob,
                        &err), 0);
    seal_pkcs11_free(p);
    /* unloaded and loaded again: the same key, not a second one */
    p = open_seal("CKM_AES_GCM", "gen", true, &err);
    CHECK(p != NULL);
    if (p == NULL || blob == NULL) {
        seal_pkcs11_free(p);
        free(blob);
        return;
    }
    w = seal_pkcs11_wrapper(p);
    CHECK_EQ_INT(w->unwrap(w->ctx, "core/root-key", blob, strlen(blob), out,
                          sizeof(out), &len, &rewrap, &err), 0);
    CHECK_MEMEQ(out, key, sizeof(key));
    /* moved to another slot of storage: refused */
    CHECK_EQ_INT(w->unwrap(w->ctx, "core/recovery-key", blob, strlen(blob),
                          out, sizeof(out), &len, &rewrap, &err),
                 COFFER_EPERM);
    CHECK(strstr(err.msg, "does not open with the HSM key") != NULL);
    /* too small a buffer: refused, not overflowed */
    CHECK_EQ_INT(w->unwrap(w->ctx, "core/root-key", blob, strlen(blob), out,
                          16, &len, &rewrap, &err), COFFER_EPERM);
    free(blob);
    seal_pkcs11_free(p);
}

TEST(tampering_and_garbage)
{
    struct errbuf err;
    const struct seal_wrapper *w;
    struct seal_pkcs11 *p = open_seal(NULL, "tamper", true, &err);
    uint8_t key[32] = {9}, out[32];
    static const char *const junk[] = {
        "", "{", "[]", "{\"mechanism\":1}",
        "{\"mechanism\":\"CKM_AES_GCM\",\"key_label\":\"tamper\","
        "\"ciphertext\":\"AAAA\"}",
        "{\"mechanism\":\"CKM_AES_GCM\",\"key_label\":\"tamper\","
        "\"ciphertext\":\"%%%%\"}",
    };
    size_t len = 0;
    bool rewrap;
    char *blob = NULL, *b64;

    CHECK(p != NULL);
    if (p == NULL)
        return;
    w = seal_pkcs11_wrapper(p);
    CHECK_EQ_INT(w->wrap(w->ctx, "x", key, sizeof(key), &blob, &err), 0);
    /* every base64 character of the ciphertext flipped in turn */
    b64 = strstr(blob, "\"ciphertext\":\"") + 14;
    for (size_t i = 0; b64[i + 2] != '"'; i++) {
        char saved = b64[i];

        b64[i] = saved == 'A' ? 'B' : 'A';
        CHECK(w->unwrap(w->ctx, "x", blob, strlen(blob), out, sizeof(out),
                       &len, &rewrap, &err) != 0);
        b64[i] = saved;
    }
    CHECK_EQ_INT(w->unwrap(w->ctx, "x", blob, strlen(blob), out, sizeof(out),
                          &len, &rewrap, &err), 0);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        CHECK_EQ_INT(w->unwrap(w->ctx, "x", junk[i], strlen(junk[i]), out,
                              sizeof(out), &len, &rewrap, &err),
                     COFFER_EPERM);
    free(blob);
    seal_pkcs11_free(p);
}

TEST(rsa_oaep_round_trip)
{
    struct errbuf err;
    const struct seal_wrapper *w;
    struct seal_pkcs11 *p = open_seal("0x0009", "rsa", true, &err);
    uint8_t key[32] = {7, 7, 7};

    CHECK(p != NULL);
    if (p == NULL)
        return;
    w = seal_pkcs11_wrapper(p);
    CHECK_EQ_INT(round_trip(w, "core/root-key", key, sizeof(key), &err),
                 0);
    seal_pkcs11_free(p);
}

struct worker {
    const struct seal_wrapper *w;
    int failures;
};

static void *hammer(void *arg)
{
    struct worker *k = arg;
    uint8_t key[32];
    struct errbuf err;

    for (int i = 0; i < ROUNDS; i++) {
        if (crypto_random(key, sizeof(key)) != 0 ||
            round_trip(k->w, "core/root-key", key, sizeof(key), &err) != 0)
            k->failures++;
    }
    return NULL;
}

TEST(threads_share_the_session)
{
    struct errbuf err;
    const struct seal_wrapper *w;
    struct seal_pkcs11 *p = open_seal(NULL, "threads", true, &err);
    struct worker k[THREADS];
    pthread_t t[THREADS];

    CHECK(p != NULL);
    if (p == NULL)
        return;
    w = seal_pkcs11_wrapper(p);
    for (int i = 0; i < THREADS; i++) {
        k[i] = (struct worker){w, 0};
        pthread_create(&t[i], NULL, hammer, &k[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(k[i].failures, 0);
    }
    seal_pkcs11_free(p);
}

int main(int argc, char **argv)
{
    char cmd[96];

    HARNESS_INIT(argc, argv);
    if (!make_token()) {
        printf("skipping the HSM cases: softhsm2 is not installed "
               "(apt-get install softhsm2)\n");
        RUN(settings_refused_with_words);
        return HARNESS_DONE();
    }
    RUN(settings_refused_with_words);
    RUN(generate_then_find_again);
    RUN(tampering_and_garbage);
    RUN(rsa_oaep_round_trip);
    RUN(threads_share_the_session);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmpdir);
    return HARNESS_DONE();
}
