/*
 * test_barrier.c - the encrypting view over the in-memory backend.
 *
 * The view must behave as a storage backend (round trips of every op),
 * the physical bytes must hide every value, any tampering (a moved value,
 * a flipped byte, a cut) must fail to open rather than return data, the
 * keyring must survive rotation, sealing and a restart, and the whole
 * thing must hold under threads rotating and sealing while others work.
 * The last test prints a micro-benchmark (not asserted).
 */
#include "../../src/barrier.c"

#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>

#include "harness.h"
#include "util.h"

static const uint8_t root_key[BARRIER_KEY_LEN] =
    "0123456789abcdef0123456789abcde";

struct fixture {
    struct storage *phys;
    struct barrier *b;
    struct storage *view;
};

static void setup(struct fixture *f)
{
    struct errbuf err;

    f->phys = storage_inmem_new();
    f->b = barrier_new(f->phys);
    f->view = barrier_storage(f->b);
    if (barrier_initialize(f->b, root_key, &err) != 0)
        harness_fail(__FILE__, __LINE__, "initialize: %s", err.msg);
}

static void teardown(struct fixture *f)
{
    barrier_free(f->b);
    storage_free(f->phys);
}

static void put_str(struct storage *s, const char *key, const char *val)
{
    int rc = storage_put(s, key, val, strlen(val));

    if (rc != 0)
        harness_fail(__FILE__, __LINE__, "put(%s) = %d", key, rc);
}

/* Returns the get status; on 0 compares with want (NULL: don't care). */
static int get_cmp(struct storage *s, const char *key, const char *want,
                   int *same)
{
    struct buf b;
    int rc;

    buf_init(&b, 0);
    rc = storage_get(s, key, &b);
    if (same != NULL)
        *same = rc == 0 && want != NULL && b.len == strlen(want) &&
                memcmp(b.ptr, want, b.len) == 0;
    buf_release(&b);
    return rc;
}

static bool has(struct storage *s, const char *key, const char *want)
{
    int same = 0;

    return get_cmp(s, key, want, &same) == 0 && same;
}

static int get_rc(struct storage *s, const char *key)
{
    return get_cmp(s, key, NULL, NULL);
}

/* Reads a physical value into a new buffer. */
static uint8_t *phys_get(struct fixture *f, const char *key, size_t *len)
{
    struct buf b;
    char *p;

    buf_init(&b, 0);
    if (storage_get(f->phys, key, &b) != 0) {
        buf_release(&b);
        return NULL;
    }
    p = buf_detach(&b, len);
    return (uint8_t *)p;
}

static void phys_put(struct fixture *f, const char *key, const void *v,
                     size_t len)
{
    CHECK_EQ_INT(storage_put(f->phys, key, v, len), 0);
}

/* =============================================== round trips ====== */

struct collect {
    struct strvec keys;
    struct strvec vals;
    int stop_after; /* 0: never */
};

static int collect_fn(void *arg, const char *key, const void *value,
                      size_t len)
{
    struct collect *c = arg;

    strvec_push(&c->keys, key);
    strvec_push_owned(&c->vals, xstrndup(value, len));
    if (c->stop_after > 0 && (int)c->keys.n >= c->stop_after)
        return 42;
    return 0;
}

static void collect_init(struct collect *c)
{
    strvec_init(&c->keys);
    strvec_init(&c->vals);
    c->stop_after = 0;
}

static void collect_release(struct collect *c)
{
    strvec_release(&c->keys);
    strvec_release(&c->vals);
}

TEST(get_put_delete)
{
    struct fixture f;
    struct buf b;

    setup(&f);
    CHECK(barrier_initialized(f.b));
    CHECK(!barrier_sealed(f.b));
    put_str(f.view, "secret/a", "alpha");
    put_str(f.view, "secret/b", "");
    CHECK(has(f.view, "secret/a", "alpha"));
    CHECK(has(f.view, "secret/b", ""));
    put_str(f.view, "secret/a", "alpha-2");
    CHECK(has(f.view, "secret/a", "alpha-2"));
    CHECK_EQ_INT(get_rc(f.view, "secret/none"), COFFER_ENOTFOUND);
    CHECK_EQ_INT(storage_delete(f.view, "secret/a"), 0);
    CHECK_EQ_INT(get_rc(f.view, "secret/a"), COFFER_ENOTFOUND);
    CHECK_EQ_INT(storage_delete(f.view, "secret/a"), 0);

    /* get appends to what the caller already has */
    buf_init(&b, 0);
    CHECK_EQ_INT(buf_append_str(&b, "prefix:"), 0);
    put_str(f.view, "x", "value");
    CHECK_EQ_INT(storage_get(f.view, "x", &b), 0);
    CHECK_STREQ(b.ptr, "prefix:value");
    buf_release(&b);

    /* binary values with NULs survive */
    {
        uint8_t bin[300];
        struct buf out;
        for (size_t i = 0; i < sizeof(bin); i++)
            bin[i] = (uint8_t)(i * 7);
        CHECK_EQ_INT(storage_put(f.view, "bin", bin, sizeof(bin)), 0);
        buf_init(&out, 0);
        CHECK_EQ_INT(storage_get(f.view, "bin", &out), 0);
        CHECK_EQ_INT(out.len, sizeof(bin));
        CHECK_MEMEQ(out.ptr, bin, sizeof(bin));
        buf_release(&out);
    }
    teardown(&f);
}

TEST(list_batch_scan)
{
    struct fixture f;
    struct strvec sv;
    struct collect c;
    struct storage_op ops[] = {
        {STORAGE_OP_PUT, "kv/one", "1", 1},
        {STORAGE_OP_PUT, "kv/two", "22", 2},
        {STORAGE_OP_PUT, "kv/dir/three", "333", 3},
        {STORAGE_OP_DELETE, "kv/gone", NULL, 0},
    };

    setup(&f);
    put_str(f.view, "kv/gone", "soon");
    CHECK_EQ_INT(storage_batch(f.view, ops, ARRAY_LEN(ops)), 0);
    CHECK(has(f.view, "kv/one", "1"));
    CHECK(has(f.view, "kv/two", "22"));
    CHECK(has(f.view, "kv/dir/three", "333"));
    CHECK_EQ_INT(get_rc(f.view, "kv/gone"), COFFER_ENOTFOUND);

    strvec_init(&sv);
    CHECK_EQ_INT(storage_list(f.view, "kv/", &sv), 0);
    CHECK_EQ_INT(sv.n, 3);
    if (sv.n == 3) {
        CHECK_STREQ(sv.v[0], "dir/");
        CHECK_STREQ(sv.v[1], "one");
        CHECK_STREQ(sv.v[2], "two");
    }
    strvec_release(&sv);

    collect_init(&c);
    CHECK_EQ_INT(storage_scan(f.view, "kv/", collect_fn, &c), 0);
    CHECK_EQ_INT(c.keys.n, 3);
    if (c.keys.n == 3) {
        CHECK_STREQ(c.keys.v[0], "kv/dir/three");
        CHECK_STREQ(c.vals.v[0], "333");
        CHECK_STREQ(c.keys.v[1], "kv/one");
        CHECK_STREQ(c.vals.v[1], "1");
        CHECK_STREQ(c.vals.v[2], "22");
    }
    collect_release(&c);

    /* the callback's stop value comes back */
    collect_init(&c);
    c.stop_after = 2;
    CHECK_EQ_INT(storage_scan(f.view, "kv/", collect_fn, &c), 42);
    CHECK_EQ_INT(c.keys.n, 2);
    collect_release(&c);

    /* scanning "" skips the keyring instead of calling it corrupt */
    collect_init(&c);
    CHECK_EQ_INT(storage_scan(f.view, "", collect_fn, &c), 0);
    CHECK(!strvec_contains(&c.keys, KEYRING_KEY));
    CHECK_EQ_INT(c.keys.n, 3);
    collect_release(&c);

    /* delete_prefix goes through list and delete of the view */
    CHECK_EQ_INT(storage_delete_prefix(f.view, "kv/"), 0);
    CHECK_EQ_INT(get_rc(f.view, "kv/dir/three"), COFFER_ENOTFOUND);
    teardown(&f);
}

/* ======================================== what reaches storage ====== */

struct find_state {
    const char *const *needles;
    size_t n;
    int hits;
    int values;
};

static int find_fn(void *arg, const char *key, const void *value, size_t len)
{
    struct find_state *st = arg;

    (void)key;
    st->values++;
    for (size_t i = 0; i < st->n; i++) {
        if (memmem(value, len, st->needles[i], strlen(st->needles[i])) !=
            NULL)
            st->hits++;
    }
    return 0;
}

TEST(physical_bytes_hide_values)
{
    static const char *const secrets[] = {
        "hunter2-very-secret-password",
        "hvs.CAESIJ2k7i8kTOKENTOKENTOKEN",
        "postgres-role-password-XYZ",
    };
    struct fixture f;
    struct find_state st = {secrets, ARRAY_LEN(secrets), 0, 0};
    struct storage_op op = {STORAGE_OP_PUT, "db/creds", secrets[2],
                            strlen(secrets[2])};
    uint8_t *raw;
    size_t len = 0;

    setup(&f);
    put_str(f.view, "secret/data/app", secrets[0]);
    put_str(f.view, "sys/token/id/abc", secrets[1]);
    CHECK_EQ_INT(storage_batch(f.view, &op, 1), 0);
    CHECK_EQ_INT(storage_scan(f.phys, "", find_fn, &st), 0);
    CHECK_EQ_INT(st.hits, 0);
    CHECK_EQ_INT(st.values, 4); /* three values and the keyring */

    /* the envelope: version 1, term 1, length = plaintext + 33 */
    raw = phys_get(&f, "secret/data/app", &len);
    CHECK(raw != NULL);
    if (raw != NULL) {
        CHECK_EQ_INT(len, strlen(secrets[0]) + ENV_OVERHEAD);
        CHECK_EQ_INT(raw[0], 1);
        CHECK_EQ_INT(get_be32(raw + 1), 1);
    }
    free(raw);

    /* the same value twice encrypts differently (fresh nonce) */
    {
        uint8_t *r1, *r2;
        size_t l1 = 0, l2 = 0;
        put_str(f.view, "n/1", "same");
        put_str(f.view, "n/2", "same");
        r1 = phys_get(&f, "n/1", &l1);
        r2 = phys_get(&f, "n/2", &l2);
        CHECK(r1 != NULL && r2 != NULL && l1 == l2);
        if (r1 != NULL && r2 != NULL)
            CHECK(memcmp(r1 + 5, r2 + 5, NONCE_LEN) != 0);
        free(r1);
        free(r2);
    }
    teardown(&f);
}

TEST(passthrough_and_reserved_keys)
{
    struct fixture f;
    struct storage_op op = {STORAGE_OP_PUT, KEYRING_KEY, "x", 1};

    setup(&f);
    put_str(f.view, "core/seal-config", "{\"secret_shares\":1}");
    {
        size_t len = 0;
        uint8_t *raw = phys_get(&f, "core/seal-config", &len);
        CHECK(raw != NULL && len == 19 && memcmp(raw, "{\"secret", 8) == 0);
        free(raw);
    }
    CHECK(has(f.view, "core/seal-config", "{\"secret_shares\":1}"));
    /* the keyring cannot be read, overwritten or deleted through the view */
    CHECK_EQ_INT(get_rc(f.view, KEYRING_KEY), COFFER_EPERM);
    CHECK_EQ_INT(storage_put(f.view, KEYRING_KEY, "x", 1), COFFER_EPERM);
    CHECK_EQ_INT(storage_delete(f.view, KEYRING_KEY), COFFER_EPERM);
    CHECK_EQ_INT(storage_batch(f.view, &op, 1), COFFER_EPERM);
    teardown(&f);
}

/* Runs fn with stderr captured; returns what was logged (caller frees). */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/coffer-barrier-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    struct buf b;
    char chunk[512];
    ssize_t n;

    COFFER_ASSERT(fd != -1 && saved != -1);
    unlink(path);
    fflush(stderr);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    buf_init(&b, 0);
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        n = read(fd, chunk, sizeof(chunk));
        if (n <= 0)
            break;
        COFFER_ASSERT(buf_append(&b, chunk, (size_t)n) == 0);
    }
    close(fd);
    if (b.ptr == NULL)
        return xstrdup("");
    return buf_detach(&b, NULL);
}

/* ================================================== tampering ====== */

TEST(moved_value_fails_to_open)
{
    struct fixture f;
    uint8_t *raw;
    size_t len = 0;

    setup(&f);
    put_str(f.view, "secret/a", "value of a");
    raw = phys_get(&f, "secret/a", &len);
    CHECK(raw != NULL);
    if (raw != NULL)
        phys_put(&f, "secret/b", raw, len);
    free(raw);
    CHECK_EQ_INT(get_rc(f.view, "secret/b"), COFFER_EINTERNAL);
    CHECK(has(f.view, "secret/a", "value of a"));
    teardown(&f);
}

struct flip_job {
    struct fixture *f;
    uint8_t *raw;
    size_t len;
    int opened, wrong_rc, leftover;
};

static void run_flips(void *arg)
{
    struct flip_job *j = arg;

    for (size_t i = 0; i < j->len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            struct buf b;
            int rc;

            j->raw[i] ^= (uint8_t)(1u << bit);
            phys_put(j->f, "k", j->raw, j->len);
            j->raw[i] ^= (uint8_t)(1u << bit);
            buf_init(&b, 0);
            rc = storage_get(j->f->view, "k", &b);
            if (rc == 0)
                j->opened++;
            else if (rc != COFFER_EINTERNAL)
                j->wrong_rc++;
            if (b.len != 0)
                j->leftover++; /* unauthenticated bytes must not remain */
            buf_release(&b);
        }
    }
}

/* Bit flips anywhere in the envelope (header, nonce, body, tag) are caught. */
TEST(flipped_byte_fails_to_open)
{
    struct fixture f;
    struct flip_job j = {0};
    char *logged;

    setup(&f);
    put_str(f.view, "k", "sixteen byte val");
    j.f = &f;
    j.raw = phys_get(&f, "k", &j.len);
    CHECK(j.raw != NULL);
    if (j.raw != NULL) {
        logged = capture_stderr(run_flips, &j);
        CHECK(strstr(logged, "barrier: k: ") != NULL);
        CHECK(strstr(logged, "sixteen") == NULL);
        free(logged);
        /* the original still opens: the context pool recovers */
        phys_put(&f, "k", j.raw, j.len);
    }
    CHECK_EQ_INT(j.opened, 0);
    CHECK_EQ_INT(j.wrong_rc, 0);
    CHECK_EQ_INT(j.leftover, 0);
    CHECK(has(f.view, "k", "sixteen byte val"));
    free(j.raw);
    teardown(&f);
}

struct cut_job {
    struct fixture *f;
    const uint8_t *raw;
    size_t len;
    int opened;
};

static void run_cuts(void *arg)
{
    struct cut_job *j = arg;

    for (size_t cut = 0; cut < j->len; cut++) {
        phys_put(j->f, "k", j->raw, cut);
        if (get_rc(j->f->view, "k") != COFFER_EINTERNAL)
            j->opened++;
    }
}

TEST(truncated_value_fails_to_open)
{
    struct fixture f;
    struct cut_job j = {0};
    uint8_t *raw;
    size_t len = 0;
    char *logged;

    setup(&f);
    put_str(f.view, "k", "a value that will be cut short");
    raw = phys_get(&f, "k", &len);
    CHECK(raw != NULL);
    if (raw != NULL) {
        uint8_t *longer = xmalloc(len + 1);

        j = (struct cut_job){&f, raw, len, 0};
        logged = capture_stderr(run_cuts, &j);
        CHECK(strstr(logged, "barrier: k: value is truncated") != NULL);
        free(logged);
        /* an extra byte at the end is caught too */
        memcpy(longer, raw, len);
        longer[len] = 0;
        phys_put(&f, "k", longer, len + 1);
        CHECK_EQ_INT(get_rc(f.view, "k"), COFFER_EINTERNAL);
        free(longer);
    }
    CHECK_EQ_INT(j.opened, 0);
    free(raw);
    teardown(&f);
}

struct scan_job {
    struct fixture *f;
    struct collect *c;
    int rc;
};

static void run_scan(void *arg)
{
    struct scan_job *j = arg;

    j->rc = storage_scan(j->f->view, "lease/", collect_fn, j->c);
}

/* Issue 4: a bad value is reported by key and the rest still loads. */
TEST(scan_skips_corrupted_values)
{
    struct fixture f;
    struct collect c;
    struct scan_job job;
    uint8_t *raw;
    size_t len = 0;
    char key[32], val[32], *logged;

    setup(&f);
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "lease/%d", i);
        snprintf(val, sizeof(val), "lease-secret-%d", i);
        put_str(f.view, key, val);
    }
    raw = phys_get(&f, "lease/1", &len);
    CHECK(raw != NULL);
    if (raw != NULL) {
        raw[len - 1] ^= 1;
        phys_put(&f, "lease/1", raw, len); /* flipped tag */
        phys_put(&f, "lease/4", raw, 10);  /* truncated */
    }
    free(raw);
    phys_put(&f, "lease/5", "plain text", 10); /* never encrypted */

    collect_init(&c);
    job.f = &f;
    job.c = &c;
    logged = capture_stderr(run_scan, &job);
    CHECK_EQ_INT(job.rc, 0);
    CHECK_EQ_INT(c.keys.n, 3);
    if (c.keys.n == 3) {
        CHECK_STREQ(c.keys.v[0], "lease/0");
        CHECK_STREQ(c.vals.v[0], "lease-secret-0");
        CHECK_STREQ(c.keys.v[1], "lease/2");
        CHECK_STREQ(c.keys.v[2], "lease/3");
        CHECK_STREQ(c.vals.v[2], "lease-secret-3");
    }
    CHECK(strstr(logged, "lease/1") != NULL);
    CHECK(strstr(logged, "message authentication failed") != NULL);
    CHECK(strstr(logged, "lease/4") != NULL);
    CHECK(strstr(logged, "lease/5") != NULL);
    CHECK(strstr(logged, "lease-secret") == NULL);
    CHECK(strstr(logged, "plain text") == NULL);
    free(logged);
    collect_release(&c);
    teardown(&f);
}

/* =================================================== key terms ====== */

TEST(rotate_keeps_old_terms)
{
    struct fixture f;
    struct barrier_key_status ks;
    struct errbuf err;
    uint8_t *raw;
    size_t len = 0;

    setup(&f);
    CHECK_EQ_INT(barrier_key_status(f.b, &ks), 0);
    CHECK_EQ_INT(ks.term, 1);
    CHECK(ks.install_time > 0 && ks.install_time <= time(NULL));
    CHECK_EQ_INT(ks.encryptions, 0);
    put_str(f.view, "old", "written under term 1");
    put_str(f.view, "old2", "also term 1");
    CHECK_EQ_INT(barrier_key_status(f.b, &ks), 0);
    CHECK_EQ_INT(ks.encryptions, 2);

    CHECK_EQ_INT(barrier_rotate(f.b, &err), 0);
    CHECK_EQ_INT(barrier_rotate(f.b, &err), 0);
    CHECK_EQ_INT(barrier_key_status(f.b, &ks), 0);
    CHECK_EQ_INT(ks.term, 3);
    CHECK_EQ_INT(ks.encryptions, 0);
    put_str(f.view, "new", "written under term 3");
    CHECK_EQ_INT(barrier_key_status(f.b, &ks), 0);
    CHECK_EQ_INT(ks.encryptions, 1);
    raw = phys_get(&f, "new", &len);
    CHECK(raw != NULL && get_be32(raw + 1) == 3);
    free(raw);
    raw = phys_get(&f, "old", &len);
    CHECK(raw != NULL && get_be32(raw + 1) == 1);
    free(raw);
    CHECK(has(f.view, "old", "written under term 1"));
    CHECK(has(f.view, "new", "written under term 3"));

    /* the rotated keyring is what was persisted */
    barrier_seal(f.b);
    CHECK_EQ_INT(barrier_unseal(f.b, root_key, &err), 0);
    CHECK_EQ_INT(barrier_key_status(f.b, &ks), 0);
    CHECK_EQ_INT(ks.term, 3);
    CHECK(has(f.view, "old", "written under term 1"));
    CHECK(has(f.view, "new", "written under term 3"));
    teardown(&f);
}

TEST(sealed_refuses_everything)
{
    struct fixture f;
    struct strvec sv;
    struct collect c;
    struct buf b;
    struct barrier_key_status ks;
    struct errbuf err;
    struct storage_op op = {STORAGE_OP_PUT, "a", "1", 1};

    setup(&f);
    put_str(f.view, "a", "1");
    barrier_seal(f.b);
    CHECK(barrier_sealed(f.b));
    CHECK(barrier_initialized(f.b));
    buf_init(&b, 0);
    CHECK_EQ_INT(storage_get(f.view, "a", &b), COFFER_ESEALED);
    CHECK_EQ_INT(storage_get(f.view, "missing", &b), COFFER_ESEALED);
    CHECK_EQ_INT(storage_get(f.view, "core/seal-config", &b), COFFER_ESEALED);
    buf_release(&b);
    CHECK_EQ_INT(storage_put(f.view, "a", "2", 1), COFFER_ESEALED);
    CHECK_EQ_INT(storage_put(f.view, "core/root-key", "2", 1),
                 COFFER_ESEALED);
    CHECK_EQ_INT(storage_delete(f.view, "a"), COFFER_ESEALED);
    CHECK_EQ_INT(storage_batch(f.view, &op, 1), COFFER_ESEALED);
    strvec_init(&sv);
    CHECK_EQ_INT(storage_list(f.view, "", &sv), COFFER_ESEALED);
    strvec_release(&sv);
    collect_init(&c);
    CHECK_EQ_INT(storage_scan(f.view, "", collect_fn, &c), COFFER_ESEALED);
    CHECK_EQ_INT(c.keys.n, 0);
    collect_release(&c);
    CHECK_EQ_INT(barrier_rotate(f.b, &err), COFFER_ESEALED);
    CHECK_EQ_INT(barrier_key_status(f.b, &ks), COFFER_ESEALED);
    barrier_seal(f.b); /* twice is fine */

    CHECK_EQ_INT(barrier_unseal(f.b, root_key, &err), 0);
    CHECK(!barrier_sealed(f.b));
    CHECK(has(f.view, "a", "1"));
    CHECK_EQ_INT(barrier_unseal(f.b, root_key, &err), 0); /* no-op */
    teardown(&f);
}

TEST(unseal_and_initialize_errors)
{
    struct fixture f;
    struct errbuf err;
    uint8_t wrong[BARRIER_KEY_LEN];
    struct storage *phys = storage_inmem_new();
    struct barrier *fresh = barrier_new(phys);

    /* not initialised yet */
    CHECK(!barrier_initialized(fresh));
    CHECK(barrier_sealed(fresh));
    CHECK_EQ_INT(barrier_unseal(fresh, root_key, &err), COFFER_ENOTFOUND);
    CHECK(barrier_sealed(fresh));
    barrier_free(fresh);
    storage_free(phys);

    setup(&f);
    CHECK_EQ_INT(barrier_initialize(f.b, root_key, &err), COFFER_EEXIST);
    barrier_seal(f.b);
    CHECK_EQ_INT(barrier_initialize(f.b, root_key, &err), COFFER_EEXIST);
    memcpy(wrong, root_key, sizeof(wrong));
    wrong[31] ^= 1;
    CHECK_EQ_INT(barrier_unseal(f.b, wrong, &err), COFFER_EPERM);
    CHECK(barrier_sealed(f.b));
    CHECK(strstr(err.msg, "root key") != NULL);
    CHECK_EQ_INT(barrier_unseal(f.b, root_key, &err), 0);
    teardown(&f);
}

/* A second barrier over the same storage is a restarted server. */
TEST(restart_reopens_keyring)
{
    struct fixture f;
    struct barrier *again;
    struct errbuf err;
    struct barrier_key_status ks;

    setup(&f);
    put_str(f.view, "kept", "across restarts");
    CHECK_EQ_INT(barrier_rotate(f.b, &err), 0);
    put_str(f.view, "kept2", "term two");
    barrier_free(f.b);

    again = barrier_new(f.phys);
    CHECK(barrier_initialized(again));
    CHECK(barrier_sealed(again));
    CHECK_EQ_INT(barrier_unseal(again, root_key, &err), 0);
    CHECK(has(barrier_storage(again), "kept", "across restarts"));
    CHECK(has(barrier_storage(again), "kept2", "term two"));
    CHECK_EQ_INT(barrier_key_status(again, &ks), 0);
    CHECK_EQ_INT(ks.term, 2);
    barrier_free(again);
    storage_free(f.phys);
}

/* A tampered keyring does not unseal; the error names no key material. */
TEST(tampered_keyring_refused)
{
    struct fixture f;
    struct errbuf err;
    uint8_t *raw;
    size_t len = 0;

    setup(&f);
    barrier_seal(f.b);
    raw = phys_get(&f, KEYRING_KEY, &len);
    CHECK(raw != NULL);
    if (raw != NULL) {
        CHECK_EQ_INT(len, KR_HDR_LEN + KR_ENTRY_LEN + ENV_OVERHEAD);
        CHECK_EQ_INT(get_be32(raw + 1), 0); /* sealed as term 0 */
        raw[len / 2] ^= 0x80;
        phys_put(&f, KEYRING_KEY, raw, len);
    }
    free(raw);
    CHECK_EQ_INT(barrier_unseal(f.b, root_key, &err), COFFER_EPERM);
    teardown(&f);
}

TEST(keyring_decode_rejects_malformed)
{
    uint8_t wire[KR_HDR_LEN + 2 * KR_ENTRY_LEN] = {0};
    struct keyring *kr;

    wire[0] = KR_VERSION;
    put_be32(wire + 1, 2);
    put_be32(wire + KR_HDR_LEN, 1);
    put_be32(wire + KR_HDR_LEN + KR_ENTRY_LEN, 2);
    kr = keyring_decode(wire, sizeof(wire), root_key);
    CHECK(kr != NULL);
    if (kr != NULL) {
        CHECK_EQ_INT(kr->n, 2);
        CHECK_EQ_INT(keyring_active(kr)->term, 2);
        CHECK(keyring_find(kr, 1) != NULL);
        CHECK(keyring_find(kr, 3) == NULL);
    }
    secmem_free(kr);
    CHECK(keyring_decode(wire, sizeof(wire) - 1, root_key) == NULL);
    CHECK(keyring_decode(wire, KR_HDR_LEN, root_key) == NULL);
    put_be32(wire + KR_HDR_LEN + KR_ENTRY_LEN, 1); /* not ascending */
    CHECK(keyring_decode(wire, sizeof(wire), root_key) == NULL);
    put_be32(wire + KR_HDR_LEN + KR_ENTRY_LEN, 2);
    put_be32(wire + 1, 0); /* empty */
    CHECK(keyring_decode(wire, KR_HDR_LEN, root_key) == NULL);
    put_be32(wire + 1, 0x40000000u); /* count larger than the bytes */
    CHECK(keyring_decode(wire, sizeof(wire), root_key) == NULL);
    wire[0] = 2;
    CHECK(keyring_decode(wire, sizeof(wire), root_key) == NULL);
}

/* ============================================= one-shot values ====== */

TEST(seal_value_open_value)
{
    uint8_t key[32], other[32], *sealed = NULL, *plain = NULL;
    size_t slen = 0, plen = 0;
    const char msg[] = "the root key, 32 bytes long.....";

    memset(key, 0xab, sizeof(key));
    memset(other, 0xab, sizeof(other));
    other[0] = 0;
    CHECK_EQ_INT(barrier_seal_value(key, "core/root-key", msg, 32, &sealed,
                                    &slen), 0);
    CHECK_EQ_INT(slen, 32 + ENV_OVERHEAD);
    CHECK(sealed != NULL && sealed[0] == 1 && get_be32(sealed + 1) == 0);
    CHECK(memmem(sealed, slen, msg, 8) == NULL);
    CHECK_EQ_INT(barrier_open_value(key, "core/root-key", sealed, slen,
                                    &plain, &plen), 0);
    CHECK_EQ_INT(plen, 32);
    if (plain != NULL)
        CHECK_MEMEQ(plain, msg, 32);
    secure_free(plain, plen);

    CHECK_EQ_INT(barrier_open_value(other, "core/root-key", sealed, slen,
                                    &plain, &plen), COFFER_EPERM);
    CHECK(plain == NULL);
    CHECK_EQ_INT(barrier_open_value(key, "core/other", sealed, slen, &plain,
                                    &plen), COFFER_EPERM);
    CHECK_EQ_INT(barrier_open_value(key, "core/root-key", sealed, slen - 1,
                                    &plain, &plen), COFFER_EPERM);
    CHECK_EQ_INT(barrier_open_value(key, "core/root-key", sealed, 3, &plain,
                                    &plen), COFFER_EPERM);
    sealed[4] = 1; /* term 1: not a one-shot value */
    CHECK_EQ_INT(barrier_open_value(key, "core/root-key", sealed, slen,
                                    &plain, &plen), COFFER_EPERM);
    secure_free(sealed, slen);

    /* empty plaintext and NULL aad */
    CHECK_EQ_INT(barrier_seal_value(key, NULL, "", 0, &sealed, &slen), 0);
    CHECK_EQ_INT(slen, ENV_OVERHEAD);
    CHECK_EQ_INT(barrier_open_value(key, "", sealed, slen, &plain, &plen), 0);
    CHECK_EQ_INT(plen, 0);
    secure_free(plain, plen + 1);
    secure_free(sealed, slen);
}

/* A forked child must not reuse the parent's batched nonces. */
TEST(fork_refills_nonces)
{
    struct cipher_slot s = {0};
    uint8_t first[NONCE_LEN], parent[NONCE_LEN], child[NONCE_LEN];
    int fds[2], status = 0;
    pid_t pid;

    pthread_once(&fork_hook_once, fork_hook_install);
    CHECK_EQ_INT(slot_nonce(&s, first), 0);
    CHECK_EQ_INT(s.nonce_left, NONCE_BATCH - 1);
    CHECK_EQ_INT(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        ssize_t w;
        close(fds[0]);
        if (slot_nonce(&s, child) != 0)
            _exit(1);
        w = write(fds[1], child, NONCE_LEN);
        _exit(w == NONCE_LEN ? 0 : 1);
    }
    CHECK(pid > 0);
    close(fds[1]);
    CHECK_EQ_INT(read(fds[0], child, NONCE_LEN), NONCE_LEN);
    close(fds[0]);
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ_INT(slot_nonce(&s, parent), 0);
    CHECK(memcmp(parent, child, NONCE_LEN) != 0);
    CHECK(memcmp(parent, first, NONCE_LEN) != 0);
}

/* =============================================== concurrency ====== */

#define WORKERS 4
#define ROUNDS 3000

struct worker {
    struct fixture *f;
    int id;
    int bad;
    int sealed_seen;
    bool tolerate_sealed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char key[48], val[64];

    for (int i = 0; i < ROUNDS; i++) {
        int rc, same = 0;

        snprintf(key, sizeof(key), "w%d/k%d", w->id, i % 50);
        snprintf(val, sizeof(val), "worker %d round %d", w->id, i);
        rc = storage_put(w->f->view, key, val, strlen(val));
        if (rc == COFFER_ESEALED && w->tolerate_sealed) {
            w->sealed_seen++;
            continue;
        }
        if (rc != 0) {
            w->bad++;
            continue;
        }
        rc = get_cmp(w->f->view, key, val, &same);
        if (rc == COFFER_ESEALED && w->tolerate_sealed)
            w->sealed_seen++;
        else if (rc != 0 || !same)
            w->bad++;
    }
    return NULL;
}

static void run_workers(struct fixture *f, bool tolerate_sealed,
                        void (*meddle)(struct fixture *, int), int times)
{
    pthread_t th[WORKERS];
    struct worker w[WORKERS];
    int bad = 0;

    for (int i = 0; i < WORKERS; i++) {
        w[i] = (struct worker){f, i, 0, 0, tolerate_sealed};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < times; i++)
        meddle(f, i);
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
    }
    CHECK_EQ_INT(bad, 0);
}

static void do_rotate(struct fixture *f, int i)
{
    struct errbuf err;

    (void)i;
    CHECK_EQ_INT(barrier_rotate(f->b, &err), 0);
    usleep(500);
}

static void do_seal_cycle(struct fixture *f, int i)
{
    struct errbuf err;

    (void)i;
    usleep(300);
    barrier_seal(f->b);
    usleep(100);
    CHECK_EQ_INT(barrier_unseal(f->b, root_key, &err), 0);
}

TEST(concurrent_rotate)
{
    struct fixture f;
    struct barrier_key_status ks;

    setup(&f);
    run_workers(&f, false, do_rotate, 20);
    CHECK_EQ_INT(barrier_key_status(f.b, &ks), 0);
    CHECK_EQ_INT(ks.term, 21);
    CHECK(has(f.view, "w0/k0", "worker 0 round 2950"));
    teardown(&f);
}

TEST(concurrent_seal_unseal)
{
    struct fixture f;

    setup(&f);
    run_workers(&f, true, do_seal_cycle, 20);
    CHECK(!barrier_sealed(f.b));
    teardown(&f);
}

/* ================================================= benchmark ====== */

/* Not asserted: prints microseconds per encrypt+decrypt of 200 bytes. */
TEST(bench_200_bytes)
{
    enum { N = 50000 };
    struct fixture f;
    uint8_t value[200], *ct = NULL;
    size_t ctlen = 0;
    struct buf out;
    double t0, t1, t2;

    setup(&f);
    memset(value, 'v', sizeof(value));
    buf_init(&out, 0);
    t0 = time_mono();
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(seal_for_key(f.b, "logical/abc/secret", value,
                                  sizeof(value), &ct, &ctlen), 0);
        buf_reset(&out);
        CHECK_EQ_INT(open_for_key(f.b, "logical/abc/secret", ct, ctlen, &out),
                     0);
        free(ct);
    }
    t1 = time_mono();
    for (int i = 0; i < N / 5; i++) {
        CHECK_EQ_INT(storage_put(f.view, "logical/abc/secret", value,
                                 sizeof(value)), 0);
        buf_reset(&out);
        CHECK_EQ_INT(storage_get(f.view, "logical/abc/secret", &out), 0);
    }
    t2 = time_mono();
    CHECK_EQ_INT(out.len, sizeof(value));
    printf("bench: AES-256-GCM encrypt+decrypt of 200 bytes: %.2f us/op; "
           "put+get through barrier+inmem: %.2f us/op\n",
           (t1 - t0) * 1e6 / N, (t2 - t1) * 1e6 / (N / 5));
    buf_release(&out);
    teardown(&f);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    log_set_level(LOG_LEVEL_WARN);
    RUN(get_put_delete);
    RUN(list_batch_scan);
    RUN(physical_bytes_hide_values);
    RUN(passthrough_and_reserved_keys);
    RUN(moved_value_fails_to_open);
    RUN(flipped_byte_fails_to_open);
    RUN(truncated_value_fails_to_open);
    RUN(scan_skips_corrupted_values);
    RUN(rotate_keeps_old_terms);
    RUN(sealed_refuses_everything);
    RUN(unseal_and_initialize_errors);
    RUN(restart_reopens_keyring);
    RUN(tampered_keyring_refused);
    RUN(keyring_decode_rejects_malformed);
    RUN(seal_value_open_value);
    RUN(fork_refills_nonces);
    RUN(concurrent_rotate);
    RUN(concurrent_seal_unseal);
    RUN(bench_200_bytes);
    return HARNESS_DONE();
}
