/*
 * test_seal_static.c - the static auto-unseal seal: key sources (good and
 * hostile), AES-GCM wrapping (round trip, wrong key, tampering, moved or
 * relabelled blobs), rotation through previous_key, and seal.c's auto
 * flows over an in-memory barrier: init with recovery shares, auto-unseal,
 * re-wrapping on rotation, recovery shares after a seal, and threads
 * unsealing and sealing at once.
 */
#include "../../src/seal_static.c"

#include <pthread.h>
#include <sys/stat.h>

#include "barrier.h"
#include "harness.h"
#include "seal.h"
#include "storage.h"

#define HEX1 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX2 "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
/* base64 of the 32 bytes 0x00..0x1f */
#define B64_1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static char tmpdir[64];

static void write_file(const char *name, const void *data, size_t n,
                       mode_t mode, char *path, size_t cap)
{
    FILE *f;

    snprintf(path, cap, "%s/%s", tmpdir, name);
    unlink(path);
    f = fopen(path, "wb");
    if (f == NULL)
        return;
    fwrite(data, 1, n, f);
    fclose(f);
    chmod(path, mode);
}

static bool decodes(const char *source, uint8_t key[32], struct errbuf *err)
{
    errbuf_clear(err);
    return seal_static_decode_key("current_key", source, key, err) == 0;
}

/* ======================================================= key sources == */

TEST(direct_hex_and_base64)
{
    uint8_t key[32], want[32];
    struct errbuf err;

    for (int i = 0; i < 32; i++)
        want[i] = (uint8_t)i;
    CHECK(decodes(HEX1, key, &err));
    CHECK(memcmp(key, want, 32) == 0);
    memset(key, 0, sizeof(key));
    CHECK(decodes(B64_1, key, &err));
    CHECK(memcmp(key, want, 32) == 0);
    /* Upper-case hex is hex too. */
    CHECK(decodes("000102030405060708090A0B0C0D0E0F101112131415161718191A1B"
                  "1C1D1E1F", key, &err));
    CHECK(memcmp(key, want, 32) == 0);
}

TEST(direct_bad_lengths_and_garbage)
{
    static const char *const bad[] = {
        "", "00", HEX1 "00", /* 33 bytes */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
        "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", /* 31 bytes */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", /* no padding */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd!h8=",
        "hunter2", "file://", "env://",
    };
    uint8_t key[32];
    struct errbuf err;

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        CHECK(!decodes(bad[i], key, &err));
        CHECK(strstr(err.msg, "current_key") != NULL);
    }
}

TEST(file_sources)
{
    uint8_t raw[32], key[32];
    char path[128], src[160];
    struct errbuf err;

    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)(0xa0 + i);
    /* 32 raw bytes (openssl rand -out FILE 32), mode 0600 and 0400. */
    write_file("raw.key", raw, 32, 0600, path, sizeof(path));
    snprintf(src, sizeof(src), "file://%s", path);
    CHECK(decodes(src, key, &err));
    CHECK(memcmp(key, raw, 32) == 0);
    chmod(path, 0400);
    CHECK(decodes(src, key, &err));
    /* Group-readable is allowed (a shared service group). */
    chmod(path, 0640);
    CHECK(decodes(src, key, &err));
    /* Hex text with a trailing newline. */
    write_file("hex.key", HEX1 "\n", 65, 0600, path, sizeof(path));
    snprintf(src, sizeof(src), "file://%s", path);
    CHECK(decodes(src, key, &err));
    CHECK(key[0] == 0 && key[31] == 0x1f);
    /* base64 text. */
    write_file("b64.key", B64_1 "\r\n", 46, 0600, path, sizeof(path));
    snprintf(src, sizeof(src), "file://%s", path);
    CHECK(decodes(src, key, &err));
    CHECK(key[0] == 0 && key[31] == 0x1f);
}

TEST(file_refusals)
{
    uint8_t raw[600] = {0}, key[32];
    char path[128], src[160];
    struct errbuf err;

    /* World-readable, world-writable and group-writable key files. */
    write_file("open.key", raw, 32, 0644, path, sizeof(path));
    snprintf(src, sizeof(src), "file://%s", path);
    CHECK(!decodes(src, key, &err));
    CHECK(strstr(err.msg, "0644") != NULL);
    chmod(path, 0602);
    CHECK(!decodes(src, key, &err));
    chmod(path, 0620);
    CHECK(!decodes(src, key, &err));
    /* Wrong sizes: 31 and 33 raw bytes, a big file. */
    write_file("short.key", raw, 31, 0600, path, sizeof(path));
    snprintf(src, sizeof(src), "file://%s", path);
    CHECK(!decodes(src, key, &err));
    write_file("long.key", raw, 33, 0600, path, sizeof(path));
    snprintf(src, sizeof(src), "file://%s", path);
    CHECK(!decodes(src, key, &err));
    write_file("big.key", raw, sizeof(raw), 0600, path, sizeof(path));
    snprintf(src, sizeof(src), "file://%s", path);
    CHECK(!decodes(src, key, &err));
    CHECK(strstr(err.msg, "too big") != NULL);
    /* Missing, a directory, a relative path, a FIFO (must not hang). */
    snprintf(src, sizeof(src), "file://%s/missing.key", tmpdir);
    CHECK(!decodes(src, key, &err));
    CHECK(strstr(err.msg, "cannot open") != NULL);
    snprintf(src, sizeof(src), "file://%s", tmpdir);
    CHECK(!decodes(src, key, &err));
    CHECK(!decodes("file://relative.key", key, &err));
    CHECK(strstr(err.msg, "absolute") != NULL);
    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    unlink(path);
    if (mkfifo(path, 0600) == 0) {
        snprintf(src, sizeof(src), "file://%s", path);
        CHECK(!decodes(src, key, &err));
        CHECK(strstr(err.msg, "not a regular file") != NULL);
    }
}

TEST(env_sources)
{
    uint8_t key[32];
    struct errbuf err;

    setenv("H5_SEAL_KEY", HEX2, 1);
    CHECK(decodes("env://H5_SEAL_KEY", key, &err));
    CHECK(key[0] == 0xff && key[31] == 0x1f);
    setenv("H5_SEAL_KEY", B64_1 "\n", 1);
    CHECK(decodes("env://H5_SEAL_KEY", key, &err));
    CHECK(key[0] == 0);
    setenv("H5_SEAL_KEY", "abcd", 1);
    CHECK(!decodes("env://H5_SEAL_KEY", key, &err));
    unsetenv("H5_SEAL_KEY");
    CHECK(!decodes("env://H5_SEAL_KEY", key, &err));
    CHECK(strstr(err.msg, "H5_SEAL_KEY") != NULL);
}

TEST(messages_never_hold_key_material)
{
    uint8_t key[32];
    struct errbuf err;
    char almost[80];

    /* A 63-character key (one short) must not be echoed back. */
    snprintf(almost, sizeof(almost), "%.63s", HEX1);
    CHECK(!decodes(almost, key, &err));
    CHECK(strstr(err.msg, "0a0b0c") == NULL);
    setenv("H5_SEAL_KEY", almost, 1);
    CHECK(!decodes("env://H5_SEAL_KEY", key, &err));
    CHECK(strstr(err.msg, "0a0b0c") == NULL);
    unsetenv("H5_SEAL_KEY");
}

TEST(new_checks_ids)
{
    struct errbuf err;
    struct seal_static *s;

    s = seal_static_new("k1", HEX1, NULL, NULL, &err);
    CHECK(s != NULL);
    CHECK(strcmp(seal_static_current_id(s), "k1") == 0);
    seal_static_free(s);
    CHECK(seal_static_new("", HEX1, NULL, NULL, &err) == NULL);
    CHECK(seal_static_new(NULL, HEX1, NULL, NULL, &err) == NULL);
    CHECK(seal_static_new("k\"1", HEX1, NULL, NULL, &err) == NULL);
    CHECK(seal_static_new("k\n1", HEX1, NULL, NULL, &err) == NULL);
    CHECK(seal_static_new("k1", HEX1, "k0", NULL, &err) == NULL);
    CHECK(seal_static_new("k1", HEX1, NULL, HEX2, &err) == NULL);
    CHECK(strstr(err.msg, "together") != NULL);
    /* One id naming two different keys is a mistake. */
    CHECK(seal_static_new("k1", HEX1, "k1", HEX2, &err) == NULL);
    s = seal_static_new("k1", HEX1, "k1", HEX1, &err);
    CHECK(s != NULL);
    seal_static_free(s);
    /* A bad previous key is refused too. */
    CHECK(seal_static_new("k1", HEX1, "k0", "abc", &err) == NULL);
    CHECK(strstr(err.msg, "previous_key") != NULL);
}

/* ========================================================== wrapping == */

static int unwrap(const struct seal_static *s, const char *label,
                  const char *blob, uint8_t out[64], size_t *len,
                  bool *prev, struct errbuf *err)
{
    errbuf_clear(err);
    return seal_static_unwrap(s, label, blob, strlen(blob), out, 64, len,
                              prev, err);
}

TEST(wrap_round_trip_and_fresh_nonce)
{
    struct errbuf err;
    struct seal_static *s = seal_static_new("k1", HEX1, NULL, NULL, &err);
    const uint8_t plain[32] = "the root key, thirty-two bytes!";
    char *a = NULL, *b = NULL;
    uint8_t out[64];
    size_t len = 0;
    bool prev = true;

    CHECK(seal_static_wrap(s, "core/root-key", plain, 32, &a) == 0);
    CHECK(seal_static_wrap(s, "core/root-key", plain, 32, &b) == 0);
    CHECK(a != NULL && b != NULL && strcmp(a, b) != 0);
    CHECK(strstr(a, "\"key_id\":\"k1\"") != NULL);
    CHECK(strstr(a, "the root key") == NULL);
    CHECK(unwrap(s, "core/root-key", a, out, &len, &prev, &err) == 0);
    CHECK(len == 32 && memcmp(out, plain, 32) == 0 && !prev);
    /* Another label (slot) does not open it. */
    CHECK(unwrap(s, "core/recovery-key", a, out, &len, &prev, &err) ==
          COFFER_EPERM);
    free(a);
    free(b);
    seal_static_free(s);
}

TEST(wrong_key_and_tampering)
{
    struct errbuf err;
    struct seal_static *s = seal_static_new("k1", HEX1, NULL, NULL, &err);
    struct seal_static *other = seal_static_new("k1", HEX2, NULL, NULL, &err);
    struct seal_static *k2 = seal_static_new("k2", HEX1, NULL, NULL, &err);
    const uint8_t plain[32] = {1, 2, 3};
    char *blob = NULL, *copy, *p;
    uint8_t out[64];
    size_t len;
    bool prev;

    CHECK(seal_static_wrap(s, "core/root-key", plain, 32, &blob) == 0);
    /* Same id, other key: refused with a clear reason. */
    CHECK(unwrap(other, "core/root-key", blob, out, &len, &prev, &err) ==
          COFFER_EPERM);
    CHECK(strstr(err.msg, "does not open") != NULL);
    /* Same key under another id: the blob names k1, which k2 lacks. */
    CHECK(unwrap(k2, "core/root-key", blob, out, &len, &prev, &err) ==
          COFFER_EPERM);
    CHECK(strstr(err.msg, "neither") != NULL);
    /* Relabelling the blob as k2 fails authentication (id is in the AAD). */
    copy = xstrdup(blob);
    p = strstr(copy, "\"k1\"");
    if (p != NULL)
        p[2] = '2';
    CHECK(unwrap(k2, "core/root-key", copy, out, &len, &prev, &err) ==
          COFFER_EPERM);
    free(copy);
    /* Every single-character change to the ciphertext is refused. */
    p = strstr(blob, "\"ciphertext\":\"");
    for (size_t i = (size_t)(p - blob) + 14; p && blob[i] != '"'; i++) {
        char saved = blob[i];
        blob[i] = saved == 'A' ? 'B' : 'A';
        CHECK(unwrap(s, "core/root-key", blob, out, &len, &prev, &err) != 0);
        blob[i] = saved;
    }
    CHECK(unwrap(s, "core/root-key", blob, out, &len, &prev, &err) == 0);
    /* Malformed blobs. */
    CHECK(unwrap(s, "core/root-key", "", out, &len, &prev, &err) != 0);
    CHECK(unwrap(s, "core/root-key", "{}", out, &len, &prev, &err) != 0);
    CHECK(unwrap(s, "core/root-key", "{\"key_id\":\"k1\",\"ciphertext\":"
                 "\"AAAA\"}", out, &len, &prev, &err) != 0);
    CHECK(unwrap(s, "core/root-key", "{\"key_id\":1,\"ciphertext\":[]}",
                 out, &len, &prev, &err) != 0);
    free(blob);
    seal_static_free(s);
    seal_static_free(other);
    seal_static_free(k2);
}

TEST(previous_key_opens_and_says_so)
{
    struct errbuf err;
    struct seal_static *old = seal_static_new("k1", HEX1, NULL, NULL, &err);
    struct seal_static *rot = seal_static_new("k2", HEX2, "k1", HEX1, &err);
    const uint8_t plain[32] = {9, 9, 9};
    char *blob = NULL, *blob2 = NULL;
    uint8_t out[64];
    size_t len;
    bool prev = false;

    CHECK(seal_static_wrap(old, "core/root-key", plain, 32, &blob) == 0);
    CHECK(unwrap(rot, "core/root-key", blob, out, &len, &prev, &err) == 0);
    CHECK(prev && len == 32 && memcmp(out, plain, 32) == 0);
    /* The rotated seal wraps with the current key. */
    CHECK(seal_static_wrap(rot, "core/root-key", plain, 32, &blob2) == 0);
    CHECK(strstr(blob2, "\"k2\"") != NULL);
    CHECK(unwrap(rot, "core/root-key", blob2, out, &len, &prev, &err) == 0);
    CHECK(!prev);
    CHECK(unwrap(old, "core/root-key", blob2, out, &len, &prev, &err) != 0);
    free(blob);
    free(blob2);
    seal_static_free(old);
    seal_static_free(rot);
}

/* ====================================================== seal.c flows == */

struct node {
    struct storage *phys;
    struct barrier *b;
};

static void node_up(struct node *n, struct storage *phys,
                    const struct seal_static *s)
{
    n->phys = phys;
    n->b = barrier_new(phys);
    seal_setup(n->b, phys);
    seal_set_static(s);
}

static void node_down(struct node *n)
{
    barrier_free(n->b);
    seal_set_static(NULL);
}

static char *stored_root_blob(struct storage *phys)
{
    struct buf b;
    char *s;

    buf_init(&b, 4096);
    if (storage_get(phys, "core/root-key", &b) != 0) {
        buf_release(&b);
        return xstrdup("");
    }
    s = xstrndup(b.ptr, b.len);
    buf_release(&b);
    return s;
}

TEST(init_recovery_checks)
{
    struct errbuf err;
    struct seal_static *s = seal_static_new("k1", HEX1, NULL, NULL, &err);
    struct storage *phys = storage_inmem_new();
    struct node n;
    uint8_t *shares = NULL;

    node_up(&n, phys, s);
    CHECK(seal_is_auto() && strcmp(seal_type_name(), "static") == 0);
    CHECK(seal_init_recovery(0, 0, &shares, &err) == COFFER_EINVAL);
    CHECK(strcmp(err.msg, "recovery configuration must specify a positive "
                          "number of shares") == 0);
    CHECK(seal_init_recovery(3, 4, &shares, &err) == COFFER_EINVAL);
    CHECK(strncmp(err.msg, "invalid recovery configuration: ", 32) == 0);
    CHECK(seal_init(3, 2, &shares, &err) == COFFER_EINVAL);
    CHECK(seal_auto_unseal(&err) == COFFER_ENOTFOUND);
    CHECK(shares == NULL);
    node_down(&n);
    storage_free(phys);
    seal_static_free(s);
}

TEST(init_unseal_seal_recover)
{
    struct errbuf err;
    struct seal_static *s = seal_static_new("k1", HEX1, NULL, NULL, &err);
    struct storage *phys = storage_inmem_new();
    struct seal_status st;
    struct node n;
    uint8_t *shares = NULL, bad[SEAL_SHARE_LEN];
    char *blob;
    bool unsealed = false;

    node_up(&n, phys, s);
    seal_get_status(&st);
    CHECK(!st.initialized && st.recovery_seal &&
          strcmp(st.type, "static") == 0);
    CHECK(seal_init_recovery(3, 2, &shares, &err) == 0);
    CHECK(shares != NULL && !barrier_sealed(n.b));
    seal_get_status(&st);
    CHECK(st.initialized && st.threshold == 2 && st.shares == 3 &&
          strcmp(st.type, "shamir") == 0);
    /* Neither the root key nor the recovery key is in storage in clear:
     * the wrapped root names its key and nothing else. */
    blob = stored_root_blob(phys);
    CHECK(strncmp(blob, "{\"key_id\":\"k1\",\"ciphertext\":", 28) == 0);
    free(blob);
    barrier_seal(n.b);
    CHECK(seal_auto_unseal(&err) == 0);
    CHECK(!barrier_sealed(n.b));
    CHECK(seal_auto_unseal(&err) == 0); /* idempotent */
    /* Sealed again: recovery shares unseal; a wrong set does not. */
    barrier_seal(n.b);
    memcpy(bad, shares, SEAL_SHARE_LEN);
    bad[5] ^= 0x55;
    CHECK(seal_submit_share(bad, SEAL_SHARE_LEN, &unsealed, &err) == 0);
    CHECK(seal_submit_share(shares + SEAL_SHARE_LEN, SEAL_SHARE_LEN,
                            &unsealed, &err) != 0);
    CHECK(!unsealed && barrier_sealed(n.b));
    CHECK(strcmp(err.msg, "Unseal failed, invalid key") == 0);
    CHECK(seal_submit_share(shares, SEAL_SHARE_LEN, &unsealed, &err) == 0);
    CHECK(!unsealed);
    CHECK(seal_submit_share(shares + 2 * SEAL_SHARE_LEN, SEAL_SHARE_LEN,
                            &unsealed, &err) == 0);
    CHECK(unsealed && !barrier_sealed(n.b));
    secure_free(shares, 3 * SEAL_SHARE_LEN);
    node_down(&n);
    storage_free(phys);
    seal_static_free(s);
}

TEST(rotation_rewraps_and_wrong_key_stays_sealed)
{
    struct errbuf err;
    struct seal_static *k1 = seal_static_new("k1", HEX1, NULL, NULL, &err);
    struct seal_static *rot = seal_static_new("k2", HEX2, "k1", HEX1, &err);
    struct seal_static *k2 = seal_static_new("k2", HEX2, NULL, NULL, &err);
    struct storage *phys = storage_inmem_new();
    struct node n;
    uint8_t *shares = NULL;
    char *blob;

    node_up(&n, phys, k1);
    CHECK(seal_init_recovery(1, 1, &shares, &err) == 0);
    CHECK(storage_put(barrier_storage(n.b), "probe", "v", 1) == 0);
    node_down(&n);
    /* Only the new key: the blob names k1, so it stays sealed. */
    node_up(&n, phys, k2);
    CHECK(seal_auto_unseal(&err) == COFFER_EPERM);
    CHECK(strstr(err.msg, "\"k1\"") != NULL);
    CHECK(barrier_sealed(n.b));
    node_down(&n);
    /* New and previous: unseals and re-wraps with k2. */
    node_up(&n, phys, rot);
    CHECK(seal_auto_unseal(&err) == 0);
    CHECK(!barrier_sealed(n.b));
    blob = stored_root_blob(phys);
    CHECK(strstr(blob, "\"key_id\":\"k2\"") != NULL);
    free(blob);
    node_down(&n);
    /* Now the new key alone works, the old one alone does not. */
    node_up(&n, phys, k2);
    CHECK(seal_auto_unseal(&err) == 0);
    {
        struct buf v;
        buf_init(&v, 16);
        CHECK(storage_get(barrier_storage(n.b), "probe", &v) == 0);
        CHECK(v.len == 1 && v.ptr[0] == 'v');
        buf_release(&v);
    }
    node_down(&n);
    node_up(&n, phys, k1);
    CHECK(seal_auto_unseal(&err) != 0 && barrier_sealed(n.b));
    node_down(&n);
    /* A Shamir configuration on auto-sealed storage is told why. */
    node_up(&n, phys, NULL);
    {
        bool unsealed;
        CHECK(seal_submit_share(shares, SEAL_SHARE_LEN, &unsealed, &err) !=
              0);
        CHECK(strstr(err.msg, "static") != NULL);
    }
    node_down(&n);
    secure_free(shares, SEAL_SHARE_LEN);
    storage_free(phys);
    seal_static_free(k1);
    seal_static_free(rot);
    seal_static_free(k2);
}

TEST(shamir_storage_refuses_static_config)
{
    struct errbuf err;
    struct seal_static *k1 = seal_static_new("k1", HEX1, NULL, NULL, &err);
    struct storage *phys = storage_inmem_new();
    uint8_t *shares = NULL;
    struct node n;

    node_up(&n, phys, NULL);
    CHECK(seal_init(1, 1, &shares, &err) == 0);
    node_down(&n);
    node_up(&n, phys, k1);
    CHECK(seal_auto_unseal(&err) == COFFER_EINVAL);
    CHECK(strstr(err.msg, "migrating") != NULL);
    CHECK(barrier_sealed(n.b));
    node_down(&n);
    secure_free(shares, SEAL_SHARE_LEN);
    storage_free(phys);
    seal_static_free(k1);
}

/* Threads unseal, seal and read the status at once, many times. */
static struct barrier *race_barrier;
static void *race_unsealer(void *arg)
{
    struct errbuf err;
    struct seal_status st;

    (void)arg;
    for (int i = 0; i < 300; i++) {
        if (seal_auto_unseal(&err) != 0)
            return (void *)1;
        seal_get_status(&st);
        if (!st.initialized)
            return (void *)1;
    }
    return NULL;
}

static void *race_sealer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 300; i++)
        barrier_seal(race_barrier);
    return NULL;
}

TEST(threads_unseal_and_seal)
{
    struct errbuf err;
    struct seal_static *rot = seal_static_new("k2", HEX2, "k1", HEX1, &err);
    struct seal_static *k1 = seal_static_new("k1", HEX1, NULL, NULL, &err);
    struct storage *phys = storage_inmem_new();
    pthread_t th[5];
    void *res;
    uint8_t *shares = NULL;
    struct node n;
    char *blob;

    node_up(&n, phys, k1);
    CHECK(seal_init_recovery(2, 2, &shares, &err) == 0);
    node_down(&n);
    /* Rotation under contention: exactly one valid blob results. */
    node_up(&n, phys, rot);
    race_barrier = n.b;
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, race_unsealer, NULL);
    pthread_create(&th[4], NULL, race_sealer, NULL);
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], &res);
        CHECK(res == NULL);
    }
    CHECK(seal_auto_unseal(&err) == 0 && !barrier_sealed(n.b));
    blob = stored_root_blob(phys);
    CHECK(strstr(blob, "\"k2\"") != NULL);
    free(blob);
    node_down(&n);
    secure_free(shares, 2 * SEAL_SHARE_LEN);
    storage_free(phys);
    seal_static_free(rot);
    seal_static_free(k1);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/coffer-seal-static-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    RUN(direct_hex_and_base64);
    RUN(direct_bad_lengths_and_garbage);
    RUN(file_sources);
    RUN(file_refusals);
    RUN(env_sources);
    RUN(messages_never_hold_key_material);
    RUN(new_checks_ids);
    RUN(wrap_round_trip_and_fresh_nonce);
    RUN(wrong_key_and_tampering);
    RUN(previous_key_opens_and_says_so);
    RUN(init_recovery_checks);
    RUN(init_unseal_seal_recover);
    RUN(rotation_rewraps_and_wrong_key_stays_sealed);
    RUN(shamir_storage_refuses_static_config);
    RUN(threads_unseal_and_seal);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return HARNESS_DONE();
}
