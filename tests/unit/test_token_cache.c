/*
 * test_token_cache.c - the parsed-token cache: bound, LRU, invalidation,
 * and the generation rule under threads (no fill ever installs a value a
 * write has replaced).
 *
 * Values here are small structs {key, version}; the real ones are struct
 * token copies (token.c).
 */
#include "../../src/token_cache.c"

#include <stdio.h>

#include "harness.h"

struct val {
    char key[32];
    uint64_t version;
};

static atomic_long live_vals;

static void *val_copy(const void *v)
{
    struct val *c = xmalloc(sizeof(*c));

    memcpy(c, v, sizeof(*c));
    atomic_fetch_add(&live_vals, 1);
    return c;
}

static void val_release(void *v)
{
    if (v != NULL)
        atomic_fetch_sub(&live_vals, 1);
    free(v);
}

static const struct token_cache_ops ops = {val_copy, val_release};

static void setup(size_t entries)
{
    token_cache_set_ops(&ops);
    token_cache_resize(entries);
}

static struct val mk(const char *key, uint64_t version)
{
    struct val v;

    memset(&v, 0, sizeof(v));
    snprintf(v.key, sizeof(v.key), "%s", key);
    v.version = version;
    return v;
}

TEST(fill_get_copy)
{
    struct val v = mk("aa", 1), *got;

    setup(64);
    CHECK(token_cache_get("aa") == NULL);
    CHECK(token_cache_fill("aa", &v, token_cache_generation("aa")));
    got = token_cache_get("aa");
    CHECK(got != NULL && got != &v && got->version == 1);
    val_release(got);
    /* a second fill of a present key is refused, the first value stays */
    v.version = 2;
    CHECK(!token_cache_fill("aa", &v, token_cache_generation("aa")));
    got = token_cache_get("aa");
    CHECK(got != NULL && got->version == 1);
    val_release(got);
    token_cache_clear();
    CHECK(token_cache_get("aa") == NULL);
    CHECK_EQ_INT(atomic_load(&live_vals), 0);
}

TEST(write_drops_and_refuses_overlapping_fill)
{
    struct val v = mk("bb", 1), *got;
    uint64_t gen;

    setup(64);
    CHECK(token_cache_fill("bb", &v, token_cache_generation("bb")));
    /* a reader noted the generation, then a write began and ended */
    gen = token_cache_generation("bb");
    token_cache_write_begin("bb");
    CHECK(token_cache_get("bb") == NULL); /* dropped at begin */
    /* a fill while the write is in flight is refused, whatever gen */
    CHECK(!token_cache_fill("bb", &v, token_cache_generation("bb")));
    token_cache_write_end("bb");
    CHECK(!token_cache_fill("bb", &v, gen)); /* overlapped: refused */
    CHECK(token_cache_get("bb") == NULL);
    v.version = 2;
    CHECK(token_cache_fill("bb", &v, token_cache_generation("bb")));
    got = token_cache_get("bb");
    CHECK(got != NULL && got->version == 2);
    val_release(got);
    token_cache_clear();
    CHECK_EQ_INT(atomic_load(&live_vals), 0);
}

TEST(clear_refuses_fill_that_began_before)
{
    struct val v = mk("cc", 1);
    uint64_t gen;

    setup(64);
    gen = token_cache_generation("cc");
    token_cache_clear();
    CHECK(!token_cache_fill("cc", &v, gen));
    CHECK(token_cache_get("cc") == NULL);
}

TEST(bounded_lru)
{
    char key[32];
    uint64_t entries = 0;
    struct val v, *got;

    setup(TOKEN_CACHE_SHARDS * 4); /* 4 a shard */
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        v = mk(key, (uint64_t)i);
        token_cache_fill(key, &v, token_cache_generation(key));
        /* keep k0 recent: it must survive every eviction in its shard */
        got = token_cache_get("k0");
        CHECK(got != NULL);
        val_release(got);
    }
    token_cache_stats(NULL, NULL, &entries);
    CHECK(entries <= TOKEN_CACHE_SHARDS * 4);
    CHECK(entries >= TOKEN_CACHE_SHARDS * 2);
    token_cache_resize(0); /* off: nothing is held */
    v = mk("k0", 0);
    CHECK(!token_cache_fill("k0", &v, token_cache_generation("k0")));
    CHECK(token_cache_get("k0") == NULL);
    token_cache_stats(NULL, NULL, &entries);
    CHECK_EQ_INT(entries, 0);
    CHECK_EQ_INT(atomic_load(&live_vals), 0);
}

/*
 * The race: a "store" holds the current version of a few keys. Writers
 * bump a version inside write_begin/end; readers note the generation,
 * read the store (slowly), fill. A checker then requires every cache hit
 * to be no older than the version current when the get began: a stale
 * fill would show up as a hit older than a write that had returned.
 */
#define RACE_KEYS 4
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t store_version[RACE_KEYS];
static atomic_int race_stale;
static atomic_int race_stop;

static uint64_t store_read(int k)
{
    uint64_t v;

    pthread_mutex_lock(&store_lock);
    v = store_version[k];
    pthread_mutex_unlock(&store_lock);
    return v;
}

static void *race_writer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char key[8];

    for (int i = 0; i < 20000; i++) {
        int k = (int)(rand_r(&seed) % RACE_KEYS);

        snprintf(key, sizeof(key), "r%d", k);
        token_cache_write_begin(key);
        pthread_mutex_lock(&store_lock);
        store_version[k]++;
        pthread_mutex_unlock(&store_lock);
        token_cache_write_end(key);
    }
    return NULL;
}

static void *race_reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char key[8];

    while (!atomic_load(&race_stop)) {
        int k = (int)(rand_r(&seed) % RACE_KEYS);
        uint64_t floor, gen;
        struct val *got, v;

        snprintf(key, sizeof(key), "r%d", k);
        floor = store_read(k); /* every write before this has returned */
        got = token_cache_get(key);
        if (got != NULL) {
            if (got->version < floor)
                atomic_fetch_add(&race_stale, 1);
            val_release(got);
            continue;
        }
        gen = token_cache_generation(key);
        v = mk(key, store_read(k));
        if (rand_r(&seed) % 4 == 0)
            sched_yield(); /* widen the window between read and fill */
        token_cache_fill(key, &v, gen);
    }
    return NULL;
}

TEST(generation_race_never_serves_stale)
{
    pthread_t w[2], r[4];

    setup(64);
    memset(store_version, 0, sizeof(store_version));
    atomic_store(&race_stale, 0);
    atomic_store(&race_stop, 0);
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&r[i], NULL, race_reader, (void *)(i + 11));
    for (uintptr_t i = 0; i < 2; i++)
        pthread_create(&w[i], NULL, race_writer, (void *)(i + 1));
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    atomic_store(&race_stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(r[i], NULL);
    CHECK_EQ_INT(atomic_load(&race_stale), 0);
    /* after the last write, the next read is the last version */
    for (int k = 0; k < RACE_KEYS; k++) {
        char key[8];
        struct val *got;

        snprintf(key, sizeof(key), "r%d", k);
        got = token_cache_get(key);
        CHECK(got == NULL || got->version == store_version[k]);
        val_release(got);
    }
    token_cache_clear();
    CHECK_EQ_INT(atomic_load(&live_vals), 0);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(fill_get_copy);
    RUN(write_drops_and_refuses_overlapping_fill);
    RUN(clear_refuses_fill_that_began_before);
    RUN(bounded_lru);
    RUN(generation_race_never_serves_stale);
    return HARNESS_DONE();
}
