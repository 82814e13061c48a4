/*
 * test_storage_cache.c - the read cache in front of storage.
 *
 * The storage contract (storage_contract.h) runs over a cache put in
 * place in front of inmem; then the cache's own cases: hits and misses,
 * invalidation by every write (also a write that fails), the bounds, the
 * uncached keys, switching off, and two races: many threads putting,
 * deleting and getting few keys through a slow inner store (a get must
 * never return a value older than the same thread's last acknowledged
 * write of that key), and fills racing with switching the cache off (no
 * entry may survive it).
 *
 * Proof that the race checker bites: build this file with
 * -DSTORAGE_CACHE_TEST_NO_GEN_CHECK (fills skip the generation check) and
 * stale_fill_race fails.
 */
#include "../../src/storage_cache.c"

#include "storage_contract.h"

#include <stdatomic.h>

/* ============================================ an instrumented inner == */

/*
 * Wraps inmem: counts gets, can fail writes after applying them (the
 * value on disk is then unknown to the caller), and can stall a get
 * between reading and returning (the stale-fill window).
 */
struct probe {
    struct storage *real;
    atomic_int gets;
    atomic_bool fail_writes;
    atomic_bool slow;
    atomic_uint seed;
};

static int probe_get(void *ctx, const char *key, struct buf *out)
{
    struct probe *p = ctx;
    int rc = storage_get(p->real, key, out);

    atomic_fetch_add(&p->gets, 1);
    if (atomic_load(&p->slow)) {
        unsigned r = atomic_fetch_add(&p->seed, 2654435761u) >> 7;

        if (r % 4 == 0)
            usleep(r % 50);
        else
            sched_yield();
    }
    return rc;
}

static int probe_put(void *ctx, const char *key, const void *v, size_t n)
{
    struct probe *p = ctx;
    int rc = storage_put(p->real, key, v, n);

    return rc == 0 && atomic_load(&p->fail_writes) ? COFFER_EINTERNAL : rc;
}

static int probe_del(void *ctx, const char *key)
{
    struct probe *p = ctx;
    int rc = storage_delete(p->real, key);

    return rc == 0 && atomic_load(&p->fail_writes) ? COFFER_EINTERNAL : rc;
}

static int probe_list(void *ctx, const char *prefix, struct strvec *out)
{
    return storage_list(((struct probe *)ctx)->real, prefix, out);
}

static int probe_batch(void *ctx, const struct storage_op *ops, size_t n)
{
    struct probe *p = ctx;
    int rc = storage_batch(p->real, ops, n);

    return rc == 0 && atomic_load(&p->fail_writes) ? COFFER_EINTERNAL : rc;
}

static int probe_scan(void *ctx, const char *prefix, storage_scan_fn fn,
                      void *arg)
{
    return storage_scan(((struct probe *)ctx)->real, prefix, fn, arg);
}

static void probe_close(void *ctx)
{
    struct probe *p = ctx;

    storage_free(p->real);
    free(p);
}

static const struct storage_backend probe_backend = {
    .name = "probe",
    .get = probe_get,
    .put = probe_put,
    .del = probe_del,
    .list = probe_list,
    .batch = probe_batch,
    .scan = probe_scan,
    .close = probe_close,
};

static struct storage *probe_new(struct probe **out)
{
    struct storage *s = xcalloc(1, sizeof(*s));
    struct probe *p = xcalloc(1, sizeof(*p));

    p->real = storage_inmem_new();
    atomic_init(&p->seed, 12345);
    s->backend = &probe_backend;
    s->ctx = p;
    *out = p;
    return s;
}

/* A cache (enabled) over a new probe; free with cache_done. */
struct fixture {
    struct storage *inner;
    struct probe *probe;
    struct storage_cache *cache;
    struct storage *s;
};

static void fixture_init(struct fixture *f,
                         const struct storage_cache_limits *lim)
{
    f->inner = probe_new(&f->probe);
    f->cache = storage_cache_new(f->inner, lim);
    f->s = storage_cache_storage(f->cache);
    storage_cache_enable(f->cache, true);
}

static void fixture_done(struct fixture *f)
{
    storage_cache_free(f->cache);
    storage_free(f->inner);
}

static uint64_t entries_now(void)
{
    uint64_t n = 0;

    storage_cache_stats(NULL, NULL, &n);
    return n;
}

/* ======================================================== contract == */

static struct storage *fresh_cached(void)
{
    struct storage *s = storage_inmem_new();

    storage_cache_enable(storage_cache_interpose(s, NULL), true);
    return s;
}

/* ==================================================== basic cases == */

TEST(hit_after_miss)
{
    struct fixture f;
    uint64_t h0, m0, h1, m1;

    fixture_init(&f, NULL);
    put_str(f.s, "k", "v1");
    storage_cache_stats(&h0, &m0, NULL);
    CHECK(has(f.s, "k", "v1"));
    CHECK(has(f.s, "k", "v1"));
    CHECK(has(f.s, "k", "v1"));
    storage_cache_stats(&h1, &m1, NULL);
    CHECK_EQ_INT(atomic_load(&f.probe->gets), 1);
    CHECK_EQ_INT(m1 - m0, 1);
    CHECK_EQ_INT(h1 - h0, 2);
    /* Not found is remembered too. */
    CHECK(missing(f.s, "nope"));
    CHECK(missing(f.s, "nope"));
    CHECK_EQ_INT(atomic_load(&f.probe->gets), 2);
    /* An empty value is a value. */
    put_str(f.s, "empty", "");
    CHECK(has(f.s, "empty", ""));
    CHECK(has(f.s, "empty", ""));
    CHECK_EQ_INT(atomic_load(&f.probe->gets), 3);
    fixture_done(&f);
}

TEST(get_appends_after_existing_content)
{
    struct fixture f;
    struct buf b;

    fixture_init(&f, NULL);
    put_str(f.s, "k", "value");
    buf_init(&b, 0);
    buf_append_str(&b, "x:");
    CHECK_EQ_INT(storage_get(f.s, "k", &b), 0); /* miss */
    CHECK_EQ_INT(storage_get(f.s, "k", &b), 0); /* hit */
    CHECK_STREQ(b.ptr, "x:valuevalue");
    buf_release(&b);
    fixture_done(&f);
}

TEST(writes_invalidate)
{
    struct fixture f;
    struct storage_op ops[2];

    fixture_init(&f, NULL);
    put_str(f.s, "a", "1");
    put_str(f.s, "b", "1");
    CHECK(has(f.s, "a", "1"));
    CHECK(has(f.s, "b", "1"));
    CHECK(missing(f.s, "c"));
    put_str(f.s, "a", "2");
    CHECK(has(f.s, "a", "2"));
    CHECK_EQ_INT(storage_delete(f.s, "a"), 0);
    CHECK(missing(f.s, "a"));
    ops[0] = (struct storage_op){STORAGE_OP_PUT, "c", "3", 1};
    ops[1] = (struct storage_op){STORAGE_OP_DELETE, "b", NULL, 0};
    CHECK_EQ_INT(storage_batch(f.s, ops, 2), 0);
    CHECK(has(f.s, "c", "3"));
    CHECK(missing(f.s, "b"));
    CHECK_EQ_INT(storage_delete_prefix(f.s, ""), 0);
    CHECK(missing(f.s, "c"));
    fixture_done(&f);
}

/* A write the inner store reports as failed may still have landed. */
TEST(failed_write_still_invalidates)
{
    struct fixture f;
    struct storage_op op = {STORAGE_OP_PUT, "k", "4", 1};

    fixture_init(&f, NULL);
    put_str(f.s, "k", "1");
    CHECK(has(f.s, "k", "1"));
    atomic_store(&f.probe->fail_writes, true);
    CHECK(storage_put(f.s, "k", "2", 1) != 0);
    atomic_store(&f.probe->fail_writes, false);
    CHECK(has(f.s, "k", "2"));
    atomic_store(&f.probe->fail_writes, true);
    CHECK(storage_delete(f.s, "k") != 0);
    atomic_store(&f.probe->fail_writes, false);
    CHECK(missing(f.s, "k"));
    atomic_store(&f.probe->fail_writes, true);
    CHECK(storage_batch(f.s, &op, 1) != 0);
    atomic_store(&f.probe->fail_writes, false);
    CHECK(has(f.s, "k", "4"));
    fixture_done(&f);
}

TEST(bounds)
{
    struct storage_cache_limits lim = {.max_entries = 128,
                                       .max_bytes = 64 * 1024,
                                       .max_value = 1000};
    struct fixture f;
    uint64_t before = entries_now();
    char key[32], big[2000];
    int gets;

    fixture_init(&f, &lim);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "k/%d", i);
        put_str(f.s, key, "v");
        CHECK(has(f.s, key, "v"));
    }
    /* 128 entries over 64 shards: 2 per shard. */
    CHECK(entries_now() - before <= 128);
    CHECK(entries_now() - before > 0);
    /* Too big to keep: every get reads the inner store. */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    put_str(f.s, "big", big);
    gets = atomic_load(&f.probe->gets);
    CHECK(has(f.s, "big", big));
    CHECK(has(f.s, "big", big));
    CHECK_EQ_INT(atomic_load(&f.probe->gets) - gets, 2);
    fixture_done(&f);
    CHECK_EQ_INT(entries_now(), before);
}

TEST(byte_bound)
{
    struct storage_cache_limits lim = {.max_entries = 100000,
                                       .max_bytes = 64 * 1024,
                                       .max_value = 900};
    struct fixture f;
    uint64_t before = entries_now();
    char key[32], val[801];

    memset(val, 'y', 800);
    val[800] = '\0';
    fixture_init(&f, &lim);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k/%d", i);
        put_str(f.s, key, val);
        CHECK(has(f.s, key, val));
    }
    /* 1 KiB per shard holds one such entry at most. */
    CHECK(entries_now() - before <= 64);
    for (size_t i = 0; i < STORAGE_CACHE_SHARDS; i++)
        CHECK(f.cache->shards[i].bytes <= f.cache->shards[i].max_bytes);
    fixture_done(&f);
}

TEST(uncached_keys_read_through)
{
    struct fixture f;

    fixture_init(&f, NULL);
    put_str(f.s, "core/seal-config", "{}");
    CHECK(has(f.s, "core/seal-config", "{}"));
    CHECK(has(f.s, "core/seal-config", "{}"));
    CHECK(missing(f.s, "core/root-key"));
    CHECK(missing(f.s, "core/root-key"));
    CHECK_EQ_INT(atomic_load(&f.probe->gets), 4);
    /* Written behind the cache's back (as seal.c does): seen at once. */
    put_str(f.probe->real, "core/seal-config", "{\"x\":1}");
    CHECK(has(f.s, "core/seal-config", "{\"x\":1}"));
    fixture_done(&f);
}

TEST(disabled_passes_through_and_wipes)
{
    struct fixture f;
    uint64_t before = entries_now();
    struct shard *sh;

    fixture_init(&f, NULL);
    put_str(f.s, "k", "secret");
    CHECK(has(f.s, "k", "secret"));
    CHECK_EQ_INT(entries_now() - before, 1);
    sh = shard_of(f.cache, key_hash("k", 1));
    storage_cache_enable(f.cache, false);
    CHECK_EQ_INT(entries_now(), before);
    CHECK(sh->lru.next == &sh->lru);
    CHECK(has(f.s, "k", "secret"));
    CHECK(has(f.s, "k", "secret"));
    CHECK_EQ_INT(atomic_load(&f.probe->gets), 3);
    CHECK_EQ_INT(entries_now(), before);
    storage_cache_enable(f.cache, true);
    CHECK(has(f.s, "k", "secret"));
    CHECK(has(f.s, "k", "secret"));
    CHECK_EQ_INT(atomic_load(&f.probe->gets), 4);
    fixture_done(&f);
    CHECK_EQ_INT(entries_now(), before);
}

TEST(interpose_and_restore)
{
    struct storage *s = storage_inmem_new();
    const struct storage_backend *orig = s->backend;
    struct storage_cache *c = storage_cache_interpose(s, NULL);

    CHECK(s->backend == &cache_backend);
    storage_cache_enable(c, true);
    put_str(s, "k", "v");
    CHECK(has(s, "k", "v"));
    storage_cache_free(c);
    CHECK(s->backend == orig);
    CHECK(has(s, "k", "v"));
    storage_free(s);
}

/* ========================================================== races == */

#define RACE_THREADS 8
#define RACE_KEYS 3

struct racer {
    struct storage *s;
    int id;
    double seconds;
    long ops;
    long stale;
    long errors;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Values are "<thread>:<seq>", seq rising per thread. last[k] is the seq
 * of this thread's last acknowledged write (put or delete) of key k: a
 * value "<me>:<s>" with s < last[k] was overwritten or deleted by a write
 * that has returned, and only this thread writes such values, so reading
 * it is a stale read.
 */
static void *racer_main(void *arg)
{
    struct racer *r = arg;
    long last[RACE_KEYS] = {0};
    long seq = 0;
    unsigned rnd = (unsigned)r->id * 7919u + 1;
    double end = now_s() + r->seconds;
    struct buf b;

    buf_init(&b, 0);
    while ((r->ops & 255) != 0 || now_s() < end) {
        int k, op, rc;
        char key[16], val[32];

        rnd = rnd * 1103515245u + 12345u;
        k = (int)((rnd >> 8) % RACE_KEYS);
        op = (int)((rnd >> 16) % 8);
        snprintf(key, sizeof(key), "race/%d", k);
        r->ops++;
        if (op == 0) { /* put, then read back */
            seq++;
            snprintf(val, sizeof(val), "%d:%ld", r->id, seq);
            rc = storage_put(r->s, key, val, strlen(val));
            if (rc == 0)
                last[k] = seq;
            else
                r->errors++;
        } else if (op == 1) {
            seq++;
            rc = storage_delete(r->s, key);
            if (rc == 0)
                last[k] = seq;
            else
                r->errors++;
        }
        buf_reset(&b);
        rc = storage_get(r->s, key, &b);
        if (rc == 0) {
            int who = -1;
            long s = -1;

            if (sscanf(b.ptr, "%d:%ld", &who, &s) != 2)
                r->errors++;
            else if (who == r->id && s < last[k])
                r->stale++;
        } else if (rc != COFFER_ENOTFOUND) {
            r->errors++;
        }
    }
    buf_release(&b);
    return NULL;
}

TEST(stale_fill_race)
{
    struct fixture f;
    pthread_t th[RACE_THREADS];
    struct racer r[RACE_THREADS];
    long ops = 0, stale = 0, errors = 0;
    const char *secs = getenv("RACE_SECONDS");

    fixture_init(&f, NULL);
    atomic_store(&f.probe->slow, true);
    for (int i = 0; i < RACE_THREADS; i++) {
        r[i] = (struct racer){.s = f.s, .id = i,
                              .seconds = secs ? atof(secs) : 1.5};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        ops += r[i].ops;
        stale += r[i].stale;
        errors += r[i].errors;
    }
    printf("  stale_fill_race: %ld ops, %ld stale reads, %ld errors\n", ops,
           stale, errors);
    CHECK_EQ_INT(stale, 0);
    CHECK_EQ_INT(errors, 0);
    CHECK(ops > 1000);
    fixture_done(&f);
}

struct filler {
    struct storage *s;
    atomic_bool stop;
};

static void *filler_main(void *arg)
{
    struct filler *fl = arg;
    struct buf b;
    char key[16];
    unsigned i = 0;

    buf_init(&b, 0);
    while (!atomic_load(&fl->stop)) {
        snprintf(key, sizeof(key), "f/%u", i++ % 64);
        buf_reset(&b);
        (void)storage_get(fl->s, key, &b);
    }
    buf_release(&b);
    return NULL;
}

/* Sealing: once switched off, no fill in flight may leave a value. */
TEST(disable_races_with_fills)
{
    struct fixture f;
    struct filler fl;
    pthread_t th[4];
    uint64_t before = entries_now();
    int left = 0;
    char key[16];

    fixture_init(&f, NULL);
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof(key), "f/%d", i);
        put_str(f.s, key, "secret");
    }
    atomic_store(&f.probe->slow, true);
    fl.s = f.s;
    atomic_init(&fl.stop, false);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(pthread_create(&th[i], NULL, filler_main, &fl), 0);
    for (int round = 0; round < 200; round++) {
        storage_cache_enable(f.cache, true);
        usleep(500);
        storage_cache_enable(f.cache, false);
        usleep(200); /* fills that were in flight finish now */
        left += entries_now() != before;
    }
    atomic_store(&fl.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(left, 0);
    fixture_done(&f);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    contract = (struct contract_backend){"cache+inmem", fresh_cached, 20000};
    contract_run();
    RUN(hit_after_miss);
    RUN(get_appends_after_existing_content);
    RUN(writes_invalidate);
    RUN(failed_write_still_invalidates);
    RUN(bounds);
    RUN(byte_bound);
    RUN(uncached_keys_read_through);
    RUN(disabled_passes_through_and_wipes);
    RUN(interpose_and_restore);
    RUN(stale_fill_race);
    RUN(disable_races_with_fills);
    return HARNESS_DONE();
}
