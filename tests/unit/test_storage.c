/*
 * test_storage.c - the storage interface over the in-memory backend.
 *
 * These are the contract tests every backend must pass (sqlite and
 * postgresql later run the same list): get/put/delete, one-level listing
 * with "dir/" folders in sorted order, all-or-nothing batches,
 * delete_prefix, and many threads writing at once.
 */
#include "../../src/storage.c"

#include <pthread.h>

#include "harness.h"

static void put_str(struct storage *s, const char *key, const char *val)
{
    int rc = storage_put(s, key, val, strlen(val));

    if (rc != 0)
        harness_fail(__FILE__, __LINE__, "storage_put(%s) = %d", key, rc);
}

/* Returns 1 if key holds exactly val. */
static int has(struct storage *s, const char *key, const char *val)
{
    struct buf b;
    int ok;

    buf_init(&b, 0);
    ok = storage_get(s, key, &b) == 0 && b.len == strlen(val) &&
         (b.len == 0 || memcmp(b.ptr, val, b.len) == 0);
    buf_release(&b);
    return ok;
}

static int missing(struct storage *s, const char *key)
{
    struct buf b;
    int rc;

    buf_init(&b, 0);
    rc = storage_get(s, key, &b);
    buf_release(&b);
    return rc == COFFER_ENOTFOUND;
}

/* Lists prefix and compares with a comma-joined expectation ("" = none). */
static void check_list(struct storage *s, const char *prefix,
                       const char *want, const char *file, int line)
{
    struct strvec sv;
    struct buf got;
    int rc;

    strvec_init(&sv);
    buf_init(&got, 0);
    rc = storage_list(s, prefix, &sv);
    for (size_t i = 0; i < sv.n; i++) {
        if (i > 0)
            buf_append_str(&got, ",");
        buf_append_str(&got, sv.v[i]);
    }
    if (rc != 0 || strcmp(got.ptr ? got.ptr : "", want) != 0)
        harness_fail(file, line, "storage_list(\"%s\") = %d [%s], want [%s]",
                     prefix, rc, got.ptr ? got.ptr : "", want);
    buf_release(&got);
    strvec_release(&sv);
}
#define CHECK_LIST(s, prefix, want) check_list(s, prefix, want, __FILE__, __LINE__)

TEST(get_put_delete)
{
    struct storage *s = storage_inmem_new();

    CHECK(s != NULL);
    CHECK(missing(s, "core/mounts"));
    put_str(s, "core/mounts", "v1");
    CHECK(has(s, "core/mounts", "v1"));
    put_str(s, "core/mounts", "version two");
    CHECK(has(s, "core/mounts", "version two"));
    CHECK_EQ_INT(storage_delete(s, "core/mounts"), 0);
    CHECK(missing(s, "core/mounts"));
    /* Deleting a missing key succeeds. */
    CHECK_EQ_INT(storage_delete(s, "core/mounts"), 0);
    CHECK_EQ_INT(storage_delete(s, "never/was"), 0);
    storage_free(s);
}

TEST(values_are_bytes)
{
    struct storage *s = storage_inmem_new();
    static const unsigned char bin[] = {0, 1, 2, 0, 255, 0};
    unsigned char *large = xmalloc(1 << 20);
    struct buf b;

    CHECK_EQ_INT(storage_put(s, "bin", bin, sizeof(bin)), 0);
    buf_init(&b, 0);
    CHECK_EQ_INT(storage_get(s, "bin", &b), 0);
    CHECK_EQ_INT(b.len, sizeof(bin));
    if (b.len == sizeof(bin))
        CHECK_MEMEQ(b.ptr, bin, sizeof(bin));
    buf_release(&b);

    /* An empty value exists and is distinct from a missing key. */
    CHECK_EQ_INT(storage_put(s, "empty", "", 0), 0);
    CHECK(has(s, "empty", ""));

    for (size_t i = 0; i < (1 << 20); i++)
        large[i] = (unsigned char)(i * 31);
    CHECK_EQ_INT(storage_put(s, "large", large, 1 << 20), 0);
    buf_init(&b, 0);
    CHECK_EQ_INT(storage_get(s, "large", &b), 0);
    CHECK_EQ_INT(b.len, 1 << 20);
    if (b.len == (1 << 20))
        CHECK_MEMEQ(b.ptr, large, 1 << 20);
    buf_release(&b);

    /* The store keeps its own copy. */
    large[0] ^= 0xff;
    buf_init(&b, 0);
    CHECK_EQ_INT(storage_get(s, "large", &b), 0);
    CHECK(b.len > 0 && (unsigned char)b.ptr[0] != large[0]);
    buf_release(&b);
    free(large);
    storage_free(s);
}

TEST(get_appends_and_respects_ceiling)
{
    struct storage *s = storage_inmem_new();
    struct buf b;

    put_str(s, "k", "value");
    buf_init(&b, 0);
    buf_append_str(&b, "prefix:");
    CHECK_EQ_INT(storage_get(s, "k", &b), 0);
    CHECK_STREQ(b.ptr, "prefix:value");
    buf_release(&b);

    buf_init(&b, 3);
    CHECK_EQ_INT(storage_get(s, "k", &b), COFFER_ETOOBIG);
    CHECK(b.ptr == NULL);
    buf_release(&b);
    storage_free(s);
}

TEST(list_one_level_sorted)
{
    struct storage *s = storage_inmem_new();
    /* Inserted out of order on purpose. */
    static const char *const keys[] = {
        "logical/u1/zeta", "logical/u1/b/c", "logical/u1/alpha",
        "logical/u1/b/d/e", "logical/u1/b/d/f", "logical/u1/b-x",
        "logical/u1/b0", "logical/u1/Upper", "logical/u2/other",
        "core/mounts", "logical/u1/a/deep/er/still",
    };

    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        put_str(s, keys[i], "x");
    CHECK_LIST(s, "", "core/,logical/");
    CHECK_LIST(s, "logical/", "u1/,u2/");
    CHECK_LIST(s, "logical/u1/", "Upper,a/,alpha,b-x,b/,b0,zeta");
    CHECK_LIST(s, "logical/u1/b/", "c,d/");
    CHECK_LIST(s, "logical/u1/b/d/", "e,f");
    CHECK_LIST(s, "logical/u1/a/", "deep/");
    CHECK_LIST(s, "logical/u3/", "");
    CHECK_LIST(s, "nothing/", "");

    /* A folder disappears with its last key. */
    CHECK_EQ_INT(storage_delete(s, "logical/u1/b/c"), 0);
    CHECK_EQ_INT(storage_delete(s, "logical/u1/b/d/e"), 0);
    CHECK_EQ_INT(storage_delete(s, "logical/u1/b/d/f"), 0);
    CHECK_LIST(s, "logical/u1/", "Upper,a/,alpha,b-x,b0,zeta");
    storage_free(s);
}

TEST(list_key_and_folder_same_name)
{
    struct storage *s = storage_inmem_new();

    /* Vault allows "foo" and "foo/bar" side by side: both are listed. */
    put_str(s, "kv/foo", "1");
    put_str(s, "kv/foo/bar", "2");
    CHECK_LIST(s, "kv/", "foo,foo/");
    CHECK(has(s, "kv/foo", "1"));
    storage_free(s);
}

TEST(list_appends_to_caller_vector)
{
    struct storage *s = storage_inmem_new();
    struct strvec sv;

    put_str(s, "p/a", "1");
    strvec_init(&sv);
    strvec_push(&sv, "already");
    CHECK_EQ_INT(storage_list(s, "p/", &sv), 0);
    CHECK_EQ_INT(sv.n, 2);
    CHECK(strvec_contains(&sv, "already"));
    CHECK(strvec_contains(&sv, "a"));
    strvec_release(&sv);
    storage_free(s);
}

TEST(batch_applies_all)
{
    struct storage *s = storage_inmem_new();
    struct storage_op ops[4];

    put_str(s, "gone", "old");
    put_str(s, "kept", "old");
    ops[0] = (struct storage_op){STORAGE_OP_PUT, "new/a", "A", 1};
    ops[1] = (struct storage_op){STORAGE_OP_PUT, "kept", "updated", 7};
    ops[2] = (struct storage_op){STORAGE_OP_DELETE, "gone", NULL, 0};
    ops[3] = (struct storage_op){STORAGE_OP_DELETE, "never", NULL, 0};
    CHECK_EQ_INT(storage_batch(s, ops, 4), 0);
    CHECK(has(s, "new/a", "A"));
    CHECK(has(s, "kept", "updated"));
    CHECK(missing(s, "gone"));
    CHECK_EQ_INT(storage_batch(s, ops, 0), 0);

    /* Ops apply in order: the last op on a key wins. */
    ops[0] = (struct storage_op){STORAGE_OP_PUT, "x", "1", 1};
    ops[1] = (struct storage_op){STORAGE_OP_DELETE, "x", NULL, 0};
    ops[2] = (struct storage_op){STORAGE_OP_PUT, "y", "1", 1};
    ops[3] = (struct storage_op){STORAGE_OP_PUT, "y", "2", 1};
    CHECK_EQ_INT(storage_batch(s, ops, 4), 0);
    CHECK(missing(s, "x"));
    CHECK(has(s, "y", "2"));
    storage_free(s);
}

TEST(batch_all_or_nothing)
{
    struct storage *s = storage_inmem_new();
    struct storage_op ops[3];
    int rc;

    put_str(s, "a", "before");
    put_str(s, "b", "before");
    ops[0] = (struct storage_op){STORAGE_OP_PUT, "a", "after", 5};
    ops[1] = (struct storage_op){STORAGE_OP_DELETE, "b", NULL, 0};
    ops[2] = (struct storage_op){(enum storage_op_kind)99, "c", "x", 1};
    rc = storage_batch(s, ops, 3);
    CHECK(rc < 0);
    CHECK(has(s, "a", "before"));
    CHECK(has(s, "b", "before"));
    CHECK(missing(s, "c"));
    storage_free(s);
}

/* ---------------------------------------------------- delete_prefix -- */

TEST(delete_prefix_removes_subtree_only)
{
    struct storage *s = storage_inmem_new();

    put_str(s, "logical/m1/a", "1");
    put_str(s, "logical/m1/b/c", "1");
    put_str(s, "logical/m1/b/d/e", "1");
    put_str(s, "logical/m1/b/d/f/g/h", "1");
    put_str(s, "logical/m10/a", "keep");  /* shares the string prefix */
    put_str(s, "logical/m1x", "keep");
    put_str(s, "logical/m2/a", "keep");
    CHECK_EQ_INT(storage_delete_prefix(s, "logical/m1/"), 0);
    CHECK_LIST(s, "logical/", "m10/,m1x,m2/");
    CHECK_LIST(s, "logical/m1/", "");
    CHECK(missing(s, "logical/m1/b/d/f/g/h"));
    CHECK(has(s, "logical/m10/a", "keep"));
    CHECK(has(s, "logical/m2/a", "keep"));
    /* Nothing there: fine. */
    CHECK_EQ_INT(storage_delete_prefix(s, "logical/m1/"), 0);
    CHECK_EQ_INT(storage_delete_prefix(s, "nothing/"), 0);
    storage_free(s);
}

TEST(delete_prefix_many_keys)
{
    struct storage *s = storage_inmem_new();
    char key[64];

    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "big/%d/%d", i % 37, i);
        put_str(s, key, "v");
    }
    put_str(s, "bigger", "keep");
    CHECK_EQ_INT(storage_delete_prefix(s, "big/"), 0);
    CHECK_LIST(s, "", "bigger");
    storage_free(s);
}

/* -------------------------------------------------------- threads -- */

#define NTHREADS 8
#define NKEYS 500

struct writer {
    struct storage *s;
    int id;
    int errors;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char key[64], val[64];

    for (int i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof(key), "t/%d/k%04d", w->id, i);
        snprintf(val, sizeof(val), "%d:%d", w->id, i);
        if (storage_put(w->s, key, val, strlen(val)) != 0)
            w->errors++;
        /* Some churn: delete and re-put every tenth key. */
        if (i % 10 == 0) {
            if (storage_delete(w->s, key) != 0)
                w->errors++;
            if (storage_put(w->s, key, val, strlen(val)) != 0)
                w->errors++;
        }
    }
    return NULL;
}

TEST(concurrent_puts)
{
    struct storage *s = storage_inmem_new();
    pthread_t th[NTHREADS];
    struct writer w[NTHREADS];
    struct strvec sv;
    int bad = 0;

    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct writer){s, i, 0};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(w[i].errors, 0);
    }
    strvec_init(&sv);
    CHECK_EQ_INT(storage_list(s, "t/", &sv), 0);
    CHECK_EQ_INT(sv.n, NTHREADS);
    strvec_release(&sv);
    for (int t = 0; t < NTHREADS; t++) {
        char prefix[32];

        snprintf(prefix, sizeof(prefix), "t/%d/", t);
        strvec_init(&sv);
        CHECK_EQ_INT(storage_list(s, prefix, &sv), 0);
        CHECK_EQ_INT(sv.n, NKEYS);
        strvec_release(&sv);
        for (int i = 0; i < NKEYS; i++) {
            char key[64], val[64];

            snprintf(key, sizeof(key), "t/%d/k%04d", t, i);
            snprintf(val, sizeof(val), "%d:%d", t, i);
            bad += !has(s, key, val);
        }
    }
    CHECK_EQ_INT(bad, 0);
    storage_free(s);
}

/*
 * A batch must be seen whole by other threads. The writer stores the same
 * counter under "b" then "a" in one batch; a reader that reads "b" first
 * and "a" second must never find a < b. Applying the ops one at a time
 * without a lock would let it see the new "b" with the old "a".
 */
struct batch_race {
    struct storage *s;
    volatile int stop;
    int violations;
    int reads;
};

static long read_counter(struct storage *s, const char *key)
{
    struct buf b;
    long v = -1;

    buf_init(&b, 0);
    if (storage_get(s, key, &b) == 0 && b.ptr != NULL)
        v = strtol(b.ptr, NULL, 10);
    buf_release(&b);
    return v;
}

static void *batch_reader(void *arg)
{
    struct batch_race *r = arg;

    while (!r->stop) {
        long b = read_counter(r->s, "b");
        long a = read_counter(r->s, "a");

        r->reads++;
        if (a < b)
            r->violations++;
    }
    return NULL;
}

TEST(batch_is_atomic_for_readers)
{
    struct batch_race r;
    pthread_t th[1];
    char val[32];

    r.s = storage_inmem_new();
    r.stop = 0;
    r.violations = 0;
    r.reads = 0;
    put_str(r.s, "a", "0");
    put_str(r.s, "b", "0");
    CHECK_EQ_INT(pthread_create(&th[0], NULL, batch_reader, &r), 0);
    for (int i = 1; i <= 20000; i++) {
        struct storage_op ops[2];

        snprintf(val, sizeof(val), "%d", i);
        ops[0] = (struct storage_op){STORAGE_OP_PUT, "b", val, strlen(val)};
        ops[1] = (struct storage_op){STORAGE_OP_PUT, "a", val, strlen(val)};
        if (storage_batch(r.s, ops, 2) != 0) {
            harness_fail(__FILE__, __LINE__, "storage_batch failed");
            break;
        }
    }
    r.stop = 1;
    pthread_join(th[0], NULL);
    CHECK_EQ_INT(r.violations, 0);
    CHECK(has(r.s, "a", "20000"));
    CHECK(has(r.s, "b", "20000"));
    storage_free(r.s);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(get_put_delete);
    RUN(values_are_bytes);
    RUN(get_appends_and_respects_ceiling);
    RUN(list_one_level_sorted);
    RUN(list_key_and_folder_same_name);
    RUN(list_appends_to_caller_vector);
    RUN(batch_applies_all);
    RUN(batch_all_or_nothing);
    RUN(delete_prefix_removes_subtree_only);
    RUN(delete_prefix_many_keys);
    RUN(concurrent_puts);
    RUN(batch_is_atomic_for_readers);
    return HARNESS_DONE();
}
