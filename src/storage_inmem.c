/*
 * storage_inmem.c - the in-memory backend used by dev mode.
 *
 * A sorted array of entries behind a reader/writer lock: lookups are a
 * binary search, listing a prefix is a binary search plus a scan of the
 * contiguous run of keys that share it. Inserts move memory, which is fine
 * for the sizes dev mode sees; the persistent backends live elsewhere.
 * Values are wiped when replaced or deleted: they may be secrets.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "storage.h"

struct entry {
    char *key;
    unsigned char *value;
    size_t len;
};

struct inmem {
    pthread_rwlock_t lock;
    struct entry *v;
    size_t n;
    size_t cap;
};

static void entry_release(struct entry *e)
{
    free(e->key);
    secure_free(e->value, e->len);
}

/* Index of the first entry whose key is >= key. */
static size_t lower_bound(const struct inmem *m, const char *key)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->v[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool found_at(const struct inmem *m, size_t i, const char *key)
{
    return i < m->n && strcmp(m->v[i].key, key) == 0;
}

static int inmem_get(void *ctx, const char *key, struct buf *out)
{
    struct inmem *m = ctx;
    int rc = COFFER_ENOTFOUND;
    size_t i;

    pthread_rwlock_rdlock(&m->lock);
    i = lower_bound(m, key);
    if (found_at(m, i, key))
        rc = buf_append(out, m->v[i].value, m->v[i].len);
    pthread_rwlock_unlock(&m->lock);
    return rc;
}

/* Caller holds the write lock. */
static void put_locked(struct inmem *m, const char *key, const void *value,
                       size_t len)
{
    size_t i = lower_bound(m, key);
    unsigned char *copy = xmalloc(len == 0 ? 1 : len);

    memcpy(copy, value, len);
    if (found_at(m, i, key)) {
        secure_free(m->v[i].value, m->v[i].len);
        m->v[i].value = copy;
        m->v[i].len = len;
        return;
    }
    if (m->n == m->cap) {
        m->cap = m->cap == 0 ? 64 : m->cap * 2;
        m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
    }
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*m->v));
    m->v[i].key = xstrdup(key);
    m->v[i].value = copy;
    m->v[i].len = len;
    m->n++;
}

static void del_locked(struct inmem *m, const char *key)
{
    size_t i = lower_bound(m, key);

    if (!found_at(m, i, key))
        return;
    entry_release(&m->v[i]);
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(*m->v));
    m->n--;
}

static int inmem_put(void *ctx, const char *key, const void *value,
                     size_t len)
{
    struct inmem *m = ctx;

    pthread_rwlock_wrlock(&m->lock);
    put_locked(m, key, value, len);
    pthread_rwlock_unlock(&m->lock);
    return 0;
}

static int inmem_del(void *ctx, const char *key)
{
    struct inmem *m = ctx;

    pthread_rwlock_wrlock(&m->lock);
    del_locked(m, key);
    pthread_rwlock_unlock(&m->lock);
    return 0;
}

/*
 * Keys under the prefix are contiguous in sorted order, and so are all keys
 * under one sub-folder, so a folder name only has to be compared with the
 * last one emitted.
 */
static int inmem_list(void *ctx, const char *prefix, struct strvec *out)
{
    struct inmem *m = ctx;
    size_t plen = strlen(prefix);
    char *last_dir = NULL;

    pthread_rwlock_rdlock(&m->lock);
    for (size_t i = lower_bound(m, prefix); i < m->n; i++) {
        const char *rest = m->v[i].key;
        const char *slash;

        if (strncmp(rest, prefix, plen) != 0)
            break;
        rest += plen;
        slash = strchr(rest, '/');
        if (slash == NULL) {
            strvec_push(out, rest);
            continue;
        }
        size_t dlen = (size_t)(slash - rest) + 1;
        if (last_dir != NULL && strlen(last_dir) == dlen &&
            memcmp(last_dir, rest, dlen) == 0)
            continue;
        last_dir = xstrndup(rest, dlen);
        strvec_push_owned(out, last_dir);
    }
    pthread_rwlock_unlock(&m->lock);
    strvec_sort(out);
    return 0;
}

static int inmem_batch(void *ctx, const struct storage_op *ops, size_t n)
{
    struct inmem *m = ctx;

    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind != STORAGE_OP_PUT && ops[i].kind != STORAGE_OP_DELETE)
            return COFFER_EINVAL;
    }
    /* Memory cannot fail halfway (xmalloc aborts), so one lock is atomic. */
    pthread_rwlock_wrlock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind == STORAGE_OP_PUT)
            put_locked(m, ops[i].key, ops[i].value, ops[i].len);
        else
            del_locked(m, ops[i].key);
    }
    pthread_rwlock_unlock(&m->lock);
    return 0;
}

/*
 * Copies the matching entries out under the read lock, then calls fn
 * without it, so that fn may use the storage itself.
 */
static int inmem_scan(void *ctx, const char *prefix, storage_scan_fn fn,
                      void *arg)
{
    struct inmem *m = ctx;
    size_t plen = strlen(prefix), n = 0, first;
    struct entry *copy;
    int rc = 0;

    pthread_rwlock_rdlock(&m->lock);
    first = lower_bound(m, prefix);
    while (first + n < m->n && strncmp(m->v[first + n].key, prefix, plen) == 0)
        n++;
    copy = xcalloc(n + 1, sizeof(*copy));
    for (size_t i = 0; i < n; i++) {
        const struct entry *e = &m->v[first + i];
        copy[i].key = xstrdup(e->key);
        copy[i].value = xmalloc(e->len + 1);
        memcpy(copy[i].value, e->value, e->len);
        copy[i].len = e->len;
    }
    pthread_rwlock_unlock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = fn(arg, copy[i].key, copy[i].value, copy[i].len);
        entry_release(&copy[i]);
    }
    free(copy);
    return rc;
}

static void inmem_close(void *ctx)
{
    struct inmem *m = ctx;

    for (size_t i = 0; i < m->n; i++)
        entry_release(&m->v[i]);
    free(m->v);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

static const struct storage_backend inmem_backend = {
    .name = "inmem",
    .may_block = false,
    .get = inmem_get,
    .put = inmem_put,
    .del = inmem_del,
    .list = inmem_list,
    .batch = inmem_batch,
    .scan = inmem_scan,
    .close = inmem_close,
};

struct storage *storage_inmem_new(void)
{
    struct storage *s = xcalloc(1, sizeof(*s));
    struct inmem *m = xcalloc(1, sizeof(*m));

    pthread_rwlock_init(&m->lock, NULL);
    s->backend = &inmem_backend;
    s->ctx = m;
    return s;
}
