/*
 * token_cache.c - a sharded LRU of parsed token entries. See token_cache.h
 * for the staleness rule.
 *
 * Layout: TOKEN_CACHE_SHARDS shards chosen by the key's hash, each a
 * mutex, a chained hash table, an LRU list (head = most recent), a count,
 * a bound, a generation and a count of writes in flight. No call holds
 * two shard locks.
 */
#include "token_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define TOKEN_CACHE_SHARDS 16 /* power of two */
#define MIN_BUCKETS 16

/* LRU links; first in struct tc_entry, so a link is its entry. */
struct tc_link {
    struct tc_link *prev, *next;
};

struct tc_entry {
    struct tc_link link;     /* must stay first */
    struct tc_entry *hnext;  /* hash chain */
    uint64_t hash;
    void *value;
    char key[];
};

struct tc_shard {
    pthread_mutex_t lock;
    struct tc_entry **buckets;
    size_t mask;         /* buckets - 1 */
    struct tc_link lru;  /* sentinel: lru.next = newest, lru.prev = oldest */
    size_t n, max_n;     /* max_n 0 = hold nothing */
    uint64_t gen;        /* bumped at each write's begin and end */
    unsigned writers;    /* writes in flight on this shard */
    char pad[64];        /* keeps neighbouring shards' locks apart */
};

static struct tc_shard shards[TOKEN_CACHE_SHARDS];
static pthread_once_t shards_once = PTHREAD_ONCE_INIT;
static const struct token_cache_ops *value_ops;
static atomic_uint_fast64_t stat_hits, stat_misses, stat_entries;

/* FNV-1a over the key: the shard from the top bits, the bucket below. */
static uint64_t key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ull;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static struct tc_shard *shard_of(uint64_t hash)
{
    return &shards[hash >> 60 & (TOKEN_CACHE_SHARDS - 1)];
}

/* Bucket count for a bound: a power of two at least max_n. */
static size_t buckets_for(size_t max_n)
{
    size_t b = MIN_BUCKETS;

    while (b < max_n)
        b *= 2;
    return b;
}

/* Gives s an empty table for max_n entries. Caller holds s->lock. */
static void shard_size(struct tc_shard *s, size_t max_n)
{
    size_t nb = buckets_for(max_n);

    free(s->buckets);
    s->buckets = xcalloc(nb, sizeof(*s->buckets));
    s->mask = nb - 1;
    s->max_n = max_n;
}

static void shards_init(void)
{
    for (size_t i = 0; i < TOKEN_CACHE_SHARDS; i++) {
        struct tc_shard *s = &shards[i];

        pthread_mutex_init(&s->lock, NULL);
        s->lru.prev = s->lru.next = &s->lru;
        shard_size(s, TOKEN_CACHE_DEFAULT_ENTRIES / TOKEN_CACHE_SHARDS);
    }
}

static void ensure_init(void)
{
    pthread_once(&shards_once, shards_init);
}

void token_cache_set_ops(const struct token_cache_ops *ops)
{
    ensure_init();
    if (value_ops != ops) /* set again at every unseal: no write then */
        value_ops = ops;
}

/* ======================================================= one shard == */

static void lru_unlink(struct tc_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
}

static void lru_push_front(struct tc_shard *s, struct tc_link *l)
{
    l->prev = &s->lru;
    l->next = s->lru.next;
    s->lru.next->prev = l;
    s->lru.next = l;
}

/* The slot that points at key's entry (or at the chain's NULL end). */
static struct tc_entry **find_slot(struct tc_shard *s, uint64_t hash,
                                   const char *key)
{
    struct tc_entry **slot = &s->buckets[hash & s->mask];

    while (*slot != NULL &&
           ((*slot)->hash != hash || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->hnext;
    return slot;
}

/* Unlinks and frees the entry *slot points at. Caller holds s->lock. */
static void drop_slot(struct tc_shard *s, struct tc_entry **slot)
{
    struct tc_entry *e = *slot;

    *slot = e->hnext;
    lru_unlink(&e->link);
    s->n--;
    atomic_fetch_sub(&stat_entries, 1);
    value_ops->release(e->value);
    free(e);
}

static void drop_key(struct tc_shard *s, uint64_t hash, const char *key)
{
    struct tc_entry **slot = find_slot(s, hash, key);

    if (*slot != NULL)
        drop_slot(s, slot);
}

/* Drops the least recently used entry. Caller holds s->lock; s->n > 0. */
static void evict_oldest(struct tc_shard *s)
{
    struct tc_entry *old = (struct tc_entry *)s->lru.prev;

    drop_key(s, old->hash, old->key);
}

static void shard_empty(struct tc_shard *s)
{
    while (s->n > 0)
        evict_oldest(s);
}

/* ========================================================== the API == */

void token_cache_resize(size_t entries)
{
    size_t per = (entries + TOKEN_CACHE_SHARDS - 1) / TOKEN_CACHE_SHARDS;

    ensure_init();
    for (size_t i = 0; i < TOKEN_CACHE_SHARDS; i++) {
        struct tc_shard *s = &shards[i];

        pthread_mutex_lock(&s->lock);
        shard_empty(s);
        s->gen++;
        shard_size(s, per);
        pthread_mutex_unlock(&s->lock);
    }
}

uint64_t token_cache_generation(const char *key)
{
    struct tc_shard *s;
    uint64_t gen;

    ensure_init();
    s = shard_of(key_hash(key));
    pthread_mutex_lock(&s->lock);
    gen = s->gen;
    pthread_mutex_unlock(&s->lock);
    return gen;
}

void *token_cache_get(const char *key)
{
    uint64_t hash;
    struct tc_shard *s;
    struct tc_entry *e;
    void *copy = NULL;

    ensure_init();
    hash = key_hash(key);
    s = shard_of(hash);
    pthread_mutex_lock(&s->lock);
    e = *find_slot(s, hash, key);
    if (e != NULL) {
        lru_unlink(&e->link);
        lru_push_front(s, &e->link);
        copy = value_ops->copy(e->value);
    }
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(copy != NULL ? &stat_hits : &stat_misses, 1);
    return copy;
}

bool token_cache_fill(const char *key, const void *v, uint64_t gen)
{
    size_t klen = strlen(key);
    uint64_t hash;
    struct tc_shard *s;
    struct tc_entry *e = xmalloc(sizeof(*e) + klen + 1);
    struct tc_entry **slot;
    bool installed = false;

    ensure_init();
    hash = key_hash(key);
    s = shard_of(hash);
    e->hash = hash;
    e->hnext = NULL;
    e->value = value_ops->copy(v);
    memcpy(e->key, key, klen + 1);
    pthread_mutex_lock(&s->lock);
    slot = find_slot(s, hash, key);
    if (s->gen == gen && s->writers == 0 && s->max_n > 0 && *slot == NULL) {
        if (s->n >= s->max_n) {
            evict_oldest(s);
            slot = find_slot(s, hash, key); /* the chain may have moved */
        }
        *slot = e;
        lru_push_front(s, &e->link);
        s->n++;
        atomic_fetch_add(&stat_entries, 1);
        installed = true;
    }
    pthread_mutex_unlock(&s->lock);
    if (!installed) {
        value_ops->release(e->value);
        free(e);
    }
    return installed;
}

void token_cache_write_begin(const char *key)
{
    uint64_t hash;
    struct tc_shard *s;

    ensure_init();
    hash = key_hash(key);
    s = shard_of(hash);
    pthread_mutex_lock(&s->lock);
    s->writers++;
    s->gen++;
    drop_key(s, hash, key);
    pthread_mutex_unlock(&s->lock);
}

void token_cache_write_end(const char *key)
{
    uint64_t hash;
    struct tc_shard *s;

    ensure_init();
    hash = key_hash(key);
    s = shard_of(hash);
    pthread_mutex_lock(&s->lock);
    COFFER_ASSERT(s->writers > 0);
    s->writers--;
    s->gen++;
    drop_key(s, hash, key);
    pthread_mutex_unlock(&s->lock);
}

void token_cache_clear(void)
{
    ensure_init();
    for (size_t i = 0; i < TOKEN_CACHE_SHARDS; i++) {
        struct tc_shard *s = &shards[i];

        pthread_mutex_lock(&s->lock);
        shard_empty(s);
        s->gen++;
        pthread_mutex_unlock(&s->lock);
    }
}

void token_cache_stats(uint64_t *hits, uint64_t *misses, uint64_t *entries)
{
    if (hits != NULL)
        *hits = atomic_load(&stat_hits);
    if (misses != NULL)
        *misses = atomic_load(&stat_misses);
    if (entries != NULL)
        *entries = atomic_load(&stat_entries);
}
