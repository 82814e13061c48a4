/*
 * ratelimit.c - token buckets keyed by client address (see ratelimit.h).
 *
 * A small chained hash table; the whole table sits behind one mutex
 * because a login costs a PBKDF2 run, which dwarfs any contention here.
 * Taking a token is one step under that mutex (look and pay together):
 * a separate look and a later pay let every concurrent attempt see the
 * same full bucket, so 64 parallel guesses got far past a burst of 10.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define NBUCKETS 1024
#define KEY_MAX 64

struct entry {
    char key[KEY_MAX];
    double tokens;
    double last;   /* time of the last refill */
    struct entry *next;
};

struct ratelimit {
    pthread_mutex_t mu;
    double rate, burst;
    size_t max_keys, n;
    struct entry *slots[NBUCKETS];
};

struct ratelimit *ratelimit_new(double rate, double burst, size_t max_keys)
{
    struct ratelimit *rl = xcalloc(1, sizeof(*rl));

    pthread_mutex_init(&rl->mu, NULL);
    rl->rate = rate;
    rl->burst = burst < 1 ? 1 : burst;
    rl->max_keys = max_keys > 0 ? max_keys : 4096;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct entry *e = rl->slots[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

static size_t slot_of(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *key != '\0'; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h % NBUCKETS;
}

static void refill(const struct ratelimit *rl, struct entry *e, double now)
{
    if (now > e->last) {
        e->tokens += (now - e->last) * rl->rate;
        if (e->tokens > rl->burst)
            e->tokens = rl->burst;
        e->last = now;
    }
}

/* Makes room for one more entry: drops full buckets, else the oldest. */
static void evict_locked(struct ratelimit *rl, double now)
{
    struct entry **oldest = NULL;

    for (size_t i = 0; i < NBUCKETS; i++) {
        struct entry **pp = &rl->slots[i];
        while (*pp != NULL) {
            struct entry *e = *pp;
            refill(rl, e, now);
            if (e->tokens >= rl->burst) {
                *pp = e->next;
                free(e);
                rl->n--;
                continue;
            }
            if (oldest == NULL || e->last < (*oldest)->last)
                oldest = pp;
            pp = &e->next;
        }
    }
    if (rl->n >= rl->max_keys && oldest != NULL) {
        struct entry *e = *oldest;
        *oldest = e->next;
        free(e);
        rl->n--;
    }
}

/* The bucket of key, created full when create is set. Holds rl->mu. */
static struct entry *find_locked(struct ratelimit *rl, const char *key,
                                 double now, bool create)
{
    char k[KEY_MAX];
    size_t slot;
    struct entry *e;

    snprintf(k, sizeof(k), "%s", key != NULL ? key : "");
    slot = slot_of(k);
    for (e = rl->slots[slot]; e != NULL; e = e->next) {
        if (strcmp(e->key, k) == 0) {
            refill(rl, e, now);
            return e;
        }
    }
    if (!create)
        return NULL;
    if (rl->n >= rl->max_keys)
        evict_locked(rl, now);
    e = xcalloc(1, sizeof(*e));
    memcpy(e->key, k, sizeof(k));
    e->tokens = rl->burst;
    e->last = now;
    e->next = rl->slots[slot];
    rl->slots[slot] = e;
    rl->n++;
    return e;
}

bool ratelimit_take(struct ratelimit *rl, const char *key, double now)
{
    struct entry *e;
    bool ok;

    if (rl == NULL || rl->rate <= 0)
        return true;
    pthread_mutex_lock(&rl->mu);
    e = find_locked(rl, key, now, true);
    ok = e->tokens >= 1.0;
    if (ok)
        e->tokens -= 1.0;
    pthread_mutex_unlock(&rl->mu);
    return ok;
}

void ratelimit_refund(struct ratelimit *rl, const char *key, double now)
{
    struct entry *e;

    if (rl == NULL || rl->rate <= 0)
        return;
    pthread_mutex_lock(&rl->mu);
    /* Evicted meanwhile: the bucket came back full, nothing to return. */
    e = find_locked(rl, key, now, false);
    if (e != NULL) {
        e->tokens += 1.0;
        if (e->tokens > rl->burst)
            e->tokens = rl->burst;
    }
    pthread_mutex_unlock(&rl->mu);
}

size_t ratelimit_size(struct ratelimit *rl)
{
    size_t n;

    pthread_mutex_lock(&rl->mu);
    n = rl->n;
    pthread_mutex_unlock(&rl->mu);
    return n;
}
