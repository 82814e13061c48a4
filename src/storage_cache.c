/*
 * storage_cache.c - a sharded LRU of decrypted get results in front of
 * the logical storage. See storage_cache.h for the staleness rule.
 *
 * Layout: STORAGE_CACHE_SHARDS shards chosen by the key's hash, each a
 * mutex, a chained hash table, an LRU list (head = most recent), counts of
 * entries and bytes, a generation and a count of writes in flight. No
 * call holds two shard locks, and no lock is held across an inner call.
 */
#include "storage_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "crypto.h"
#include "storage.h"
#include "util.h"

#define STORAGE_CACHE_SHARDS 64 /* power of two */
#define MIN_BUCKETS 16

/*
 * Only the race test's proof build turns this off (-D
 * STORAGE_CACHE_TEST_NO_GEN_CHECK), to show that its checker catches the
 * stale fills the generation check prevents.
 */
#ifdef STORAGE_CACHE_TEST_NO_GEN_CHECK
#define GUARD_FILLS 0
#else
#define GUARD_FILLS 1
#endif

/* LRU links; first in struct entry, so a link is its entry. */
struct lru_link {
    struct lru_link *prev, *next;
};

struct entry {
    struct lru_link link;       /* LRU list; must stay first */
    struct entry *hnext;        /* hash chain */
    uint64_t hash;
    uint8_t *value;             /* NULL when !found or empty */
    size_t vlen;
    size_t cost;                /* bytes charged to the shard */
    bool found;
    size_t klen;
    char key[];
};

struct shard {
    pthread_mutex_t lock;
    struct entry **buckets;
    size_t mask;       /* buckets - 1 */
    struct lru_link lru; /* sentinel: lru.next = newest, lru.prev = oldest */
    size_t n, bytes;
    size_t max_n, max_bytes;
    uint64_t gen;      /* bumped at each write's begin and end */
    unsigned writers;  /* writes in flight on this shard */
    bool enabled;
    char pad[64];      /* keeps neighbouring shards' locks apart */
};

struct storage_cache {
    struct storage front;  /* backend = cache_backend, ctx = this */
    struct storage *inner; /* where misses and writes go */
    struct storage own;    /* interposed: s's former backend and ctx */
    struct storage *interposed; /* the storage taken over, or NULL */
    size_t max_value;
    struct shard shards[STORAGE_CACHE_SHARDS];
};

static atomic_uint_fast64_t stat_hits;
static atomic_uint_fast64_t stat_misses;
static atomic_uint_fast64_t stat_entries;

static struct {
    pthread_mutex_t lock;
    size_t entries;
    bool disabled;
} settings = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Keys written around the barrier or refused by it: never cached. */
static const char *const uncached_keys[] = {
    "core/seal-config",
    "core/root-key",
    "core/keyring",
};

void storage_cache_configure(size_t entries, bool disabled)
{
    pthread_mutex_lock(&settings.lock);
    settings.entries = entries;
    settings.disabled = disabled;
    pthread_mutex_unlock(&settings.lock);
}

void storage_cache_settings(size_t *entries, bool *disabled)
{
    pthread_mutex_lock(&settings.lock);
    *entries = settings.entries;
    *disabled = settings.disabled;
    pthread_mutex_unlock(&settings.lock);
}

void storage_cache_stats(uint64_t *hits, uint64_t *misses, uint64_t *entries)
{
    if (hits != NULL)
        *hits = atomic_load(&stat_hits);
    if (misses != NULL)
        *misses = atomic_load(&stat_misses);
    if (entries != NULL)
        *entries = atomic_load(&stat_entries);
}

/* ======================================================= one shard == */

/* FNV-1a: keys are short paths; the shard and bucket come from it. */
static uint64_t key_hash(const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)key[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static bool is_uncached(const char *key)
{
    for (size_t i = 0; i < ARRAY_LEN(uncached_keys); i++) {
        if (strcmp(key, uncached_keys[i]) == 0)
            return true;
    }
    return false;
}

static struct shard *shard_of(struct storage_cache *c, uint64_t h)
{
    return &c->shards[h & (STORAGE_CACHE_SHARDS - 1)];
}

static size_t bucket_of(const struct shard *sh, uint64_t h)
{
    return (size_t)(h >> 8) & sh->mask;
}

/*
 * About one bucket per entry the shard can hold: the entry bound, or the
 * byte bound over the smallest entry if that is lower (so a huge
 * cache_size does not allocate buckets the byte bound never fills).
 */
static void shard_init(struct shard *sh, size_t max_n, size_t max_bytes)
{
    size_t fit = max_bytes / sizeof(struct entry);
    size_t want = max_n < fit ? max_n : fit;
    size_t nb = MIN_BUCKETS;

    while (nb < want && nb < ((size_t)1 << 30))
        nb <<= 1;
    COFFER_ASSERT(pthread_mutex_init(&sh->lock, NULL) == 0);
    sh->buckets = xcalloc(nb, sizeof(*sh->buckets));
    sh->mask = nb - 1;
    sh->lru.next = sh->lru.prev = &sh->lru;
    sh->max_n = max_n;
    sh->max_bytes = max_bytes;
}

/* The secret goes first; the entry (its key too) is wiped as well. */
static void entry_free(struct entry *e)
{
    if (e->value != NULL)
        secure_free(e->value, e->vlen);
    secure_free(e, sizeof(*e) + e->klen + 1);
}

/* A new, unlinked entry holding a copy of value (found) or nothing. */
static struct entry *entry_new(const char *key, size_t klen, uint64_t h,
                               const void *value, size_t vlen, bool found)
{
    struct entry *e = xcalloc(1, sizeof(*e) + klen + 1);

    memcpy(e->key, key, klen);
    e->klen = klen;
    e->hash = h;
    e->found = found;
    if (found && vlen > 0) {
        e->value = xmalloc(vlen);
        memcpy(e->value, value, vlen);
        e->vlen = vlen;
    }
    e->cost = sizeof(*e) + klen + 1 + e->vlen;
    return e;
}

static struct entry *shard_find(struct shard *sh, const char *key,
                                size_t klen, uint64_t h)
{
    struct entry *e = sh->buckets[bucket_of(sh, h)];

    while (e != NULL && (e->hash != h || e->klen != klen ||
                         memcmp(e->key, key, klen) != 0))
        e = e->hnext;
    return e;
}

static struct entry *oldest(struct shard *sh)
{
    return (struct entry *)sh->lru.prev; /* link is the first member */
}

static void lru_unlink(struct entry *e)
{
    e->link.prev->next = e->link.next;
    e->link.next->prev = e->link.prev;
}

static void lru_push_front(struct shard *sh, struct entry *e)
{
    e->link.next = sh->lru.next;
    e->link.prev = &sh->lru;
    sh->lru.next->prev = &e->link;
    sh->lru.next = &e->link;
}

/* Unlinks e from its chain and the LRU, uncharges it and wipes it. */
static void shard_drop(struct shard *sh, struct entry *e)
{
    struct entry **pp = &sh->buckets[bucket_of(sh, e->hash)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(e);
    sh->n--;
    sh->bytes -= e->cost;
    atomic_fetch_sub(&stat_entries, 1);
    entry_free(e);
}

static void shard_drop_key(struct shard *sh, const char *key, size_t klen,
                           uint64_t h)
{
    struct entry *e = shard_find(sh, key, klen, h);

    if (e != NULL)
        shard_drop(sh, e);
}

static void shard_clear(struct shard *sh)
{
    while (sh->lru.prev != &sh->lru)
        shard_drop(sh, oldest(sh));
}

/* Adds e (replacing an entry for the same key), then evicts the oldest. */
static void shard_insert(struct shard *sh, struct entry *e)
{
    size_t b = bucket_of(sh, e->hash);

    shard_drop_key(sh, e->key, e->klen, e->hash);
    e->hnext = sh->buckets[b];
    sh->buckets[b] = e;
    lru_push_front(sh, e);
    sh->n++;
    sh->bytes += e->cost;
    atomic_fetch_add(&stat_entries, 1);
    while (sh->n > sh->max_n || sh->bytes > sh->max_bytes)
        shard_drop(sh, oldest(sh));
}

/* ============================================================= get == */

/*
 * A miss's permission to fill: taken under the shard lock before the
 * inner read. Filling is allowed only if no write was in flight then.
 */
struct fill_ticket {
    bool allowed;
    uint64_t gen;
};

/*
 * Answers from the shard if it can (1: *rc is the answer), else hands out
 * a fill ticket (0).
 */
static int shard_lookup(struct shard *sh, const char *key, size_t klen,
                        uint64_t h, struct buf *out, int *rc,
                        struct fill_ticket *t)
{
    struct entry *e;
    int hit = 0;

    pthread_mutex_lock(&sh->lock);
    e = sh->enabled ? shard_find(sh, key, klen, h) : NULL;
    if (e != NULL) {
        lru_unlink(e);
        lru_push_front(sh, e);
        *rc = !e->found ? COFFER_ENOTFOUND
                        : buf_append(out, e->value != NULL ? e->value
                                                           : (const void *)"",
                                     e->vlen);
        hit = 1;
    } else {
        t->allowed = sh->enabled && (!GUARD_FILLS || sh->writers == 0);
        t->gen = sh->gen;
    }
    pthread_mutex_unlock(&sh->lock);
    return hit;
}

/*
 * Installs e if nothing on the shard changed since the ticket was taken
 * (see storage_cache.h); otherwise e is wiped. Takes e either way.
 */
static void shard_fill(struct shard *sh, const struct fill_ticket *t,
                       struct entry *e)
{
    bool ok;

    pthread_mutex_lock(&sh->lock);
    ok = sh->enabled &&
         (!GUARD_FILLS || (sh->gen == t->gen && sh->writers == 0));
    if (ok)
        shard_insert(sh, e);
    pthread_mutex_unlock(&sh->lock);
    if (!ok)
        entry_free(e);
}

static int cache_get(void *ctx, const char *key, struct buf *out)
{
    struct storage_cache *c = ctx;
    size_t klen = strlen(key);
    uint64_t h = key_hash(key, klen);
    struct shard *sh = shard_of(c, h);
    struct fill_ticket t = {0};
    size_t start = out->len;
    int rc = 0;

    if (is_uncached(key))
        return storage_get(c->inner, key, out);
    if (shard_lookup(sh, key, klen, h, out, &rc, &t)) {
        atomic_fetch_add_explicit(&stat_hits, 1, memory_order_relaxed);
        return rc;
    }
    atomic_fetch_add_explicit(&stat_misses, 1, memory_order_relaxed);
    rc = storage_get(c->inner, key, out);
    if (t.allowed && rc == 0 && out->len - start <= c->max_value)
        shard_fill(sh, &t,
                   entry_new(key, klen, h,
                             out->len > start ? out->ptr + start : NULL,
                             out->len - start, true));
    else if (t.allowed && rc == COFFER_ENOTFOUND)
        shard_fill(sh, &t, entry_new(key, klen, h, NULL, 0, false));
    return rc;
}

/* ========================================================== writes == */

/*
 * A write on key begins: fills that took their ticket before now are
 * refused, and the cached value goes.
 */
static void write_begin(struct storage_cache *c, const char *key)
{
    size_t klen = strlen(key);
    uint64_t h = key_hash(key, klen);
    struct shard *sh = shard_of(c, h);

    pthread_mutex_lock(&sh->lock);
    sh->writers++;
    sh->gen++;
    shard_drop_key(sh, key, klen, h);
    pthread_mutex_unlock(&sh->lock);
}

/*
 * The write ended, done or failed: drop again what a fill may have put
 * in between, and refuse fills that read during the write.
 */
static void write_end(struct storage_cache *c, const char *key)
{
    size_t klen = strlen(key);
    uint64_t h = key_hash(key, klen);
    struct shard *sh = shard_of(c, h);

    pthread_mutex_lock(&sh->lock);
    COFFER_ASSERT(sh->writers > 0);
    sh->writers--;
    sh->gen++;
    shard_drop_key(sh, key, klen, h);
    pthread_mutex_unlock(&sh->lock);
}

static int cache_put(void *ctx, const char *key, const void *value,
                     size_t len)
{
    struct storage_cache *c = ctx;
    int rc;

    write_begin(c, key);
    rc = storage_put(c->inner, key, value, len);
    write_end(c, key);
    return rc;
}

static int cache_del(void *ctx, const char *key)
{
    struct storage_cache *c = ctx;
    int rc;

    write_begin(c, key);
    rc = storage_delete(c->inner, key);
    write_end(c, key);
    return rc;
}

static int cache_batch(void *ctx, const struct storage_op *ops, size_t n)
{
    struct storage_cache *c = ctx;
    int rc;

    for (size_t i = 0; i < n; i++)
        write_begin(c, ops[i].key);
    rc = storage_batch(c->inner, ops, n);
    for (size_t i = 0; i < n; i++)
        write_end(c, ops[i].key);
    return rc;
}

void storage_cache_invalidate(struct storage_cache *c, const char *key)
{
    if (c == NULL || key == NULL)
        return;
    write_begin(c, key);
    write_end(c, key);
}

/* ==================================================== pass-through == */

static int cache_list(void *ctx, const char *prefix, struct strvec *out)
{
    struct storage_cache *c = ctx;

    return storage_list(c->inner, prefix, out);
}

static int cache_scan(void *ctx, const char *prefix, storage_scan_fn fn,
                      void *arg)
{
    struct storage_cache *c = ctx;

    return storage_scan(c->inner, prefix, fn, arg);
}

static void cache_release(struct storage_cache *c)
{
    for (size_t i = 0; i < STORAGE_CACHE_SHARDS; i++) {
        free(c->shards[i].buckets);
        pthread_mutex_destroy(&c->shards[i].lock);
    }
    free(c);
}

/*
 * storage_free on an interposed storage: its owner is done with it, so
 * the cache goes with the backend it took over. The front of a cache made
 * by storage_cache_new is the cache's own: storage_cache_free releases it.
 */
static void cache_close(void *ctx)
{
    struct storage_cache *c = ctx;

    if (c->interposed == NULL)
        return;
    storage_cache_enable(c, false);
    c->own.backend->close(c->own.ctx);
    cache_release(c);
}

static const struct storage_backend cache_backend = {
    .name = "cache",
    .get = cache_get,
    .put = cache_put,
    .del = cache_del,
    .list = cache_list,
    .batch = cache_batch,
    .scan = cache_scan,
    .close = cache_close,
};

/* ======================================================= lifecycle == */

static size_t or_default(size_t v, size_t dflt)
{
    return v != 0 ? v : dflt;
}

struct storage_cache *storage_cache_new(struct storage *inner,
                                        const struct storage_cache_limits *lim)
{
    struct storage_cache *c = xcalloc(1, sizeof(*c));
    size_t entries = or_default(lim ? lim->max_entries : 0,
                                STORAGE_CACHE_DEFAULT_ENTRIES);
    size_t bytes = or_default(lim ? lim->max_bytes : 0,
                              STORAGE_CACHE_DEFAULT_BYTES);
    size_t per_n = (entries + STORAGE_CACHE_SHARDS - 1) / STORAGE_CACHE_SHARDS;
    size_t per_b = (bytes + STORAGE_CACHE_SHARDS - 1) / STORAGE_CACHE_SHARDS;

    COFFER_ASSERT(inner != NULL);
    c->front.backend = &cache_backend;
    c->front.ctx = c;
    c->inner = inner;
    c->max_value = or_default(lim ? lim->max_value : 0,
                              STORAGE_CACHE_MAX_VALUE);
    for (size_t i = 0; i < STORAGE_CACHE_SHARDS; i++)
        shard_init(&c->shards[i], per_n, per_b);
    return c;
}

struct storage *storage_cache_storage(struct storage_cache *c)
{
    return &c->front;
}

struct storage_cache *storage_cache_interpose(
    struct storage *s, const struct storage_cache_limits *lim)
{
    struct storage_cache *c;

    COFFER_ASSERT(s != NULL);
    c = storage_cache_new(s, lim);
    c->own = *s;
    c->inner = &c->own;
    c->interposed = s;
    *s = c->front;
    return c;
}

void storage_cache_enable(struct storage_cache *c, bool on)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < STORAGE_CACHE_SHARDS; i++) {
        struct shard *sh = &c->shards[i];

        pthread_mutex_lock(&sh->lock);
        sh->enabled = on;
        sh->gen++; /* a fill holding an older ticket is refused */
        if (!on)
            shard_clear(sh);
        pthread_mutex_unlock(&sh->lock);
    }
}

void storage_cache_free(struct storage_cache *c)
{
    if (c == NULL)
        return;
    storage_cache_enable(c, false);
    if (c->interposed != NULL)
        *c->interposed = c->own;
    cache_release(c);
}
