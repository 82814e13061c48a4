/*
 * storage.c - the storage interface: dispatch to a backend, and the helpers
 * built on top of the five primitive operations.
 */
#include "storage.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Set by the first call that reaches a may_block backend; never cleared. */
static atomic_bool blocking_used;

/* Notes a call on s (relaxed: a hint read on the request path). */
static void note_backend(const struct storage *s)
{
    if (s->backend->may_block &&
        !atomic_load_explicit(&blocking_used, memory_order_relaxed))
        atomic_store(&blocking_used, true);
}

bool storage_blocking_in_use(void)
{
    return atomic_load_explicit(&blocking_used, memory_order_relaxed);
}

void storage_free(struct storage *s)
{
    if (s == NULL)
        return;
    s->backend->close(s->ctx);
    free(s);
}

int storage_get(struct storage *s, const char *key, struct buf *out)
{
    note_backend(s);
    return s->backend->get(s->ctx, key, out);
}

int storage_put(struct storage *s, const char *key, const void *value,
                size_t len)
{
    note_backend(s);
    return s->backend->put(s->ctx, key, value, len);
}

int storage_delete(struct storage *s, const char *key)
{
    note_backend(s);
    return s->backend->del(s->ctx, key);
}

int storage_list(struct storage *s, const char *prefix, struct strvec *out)
{
    note_backend(s);
    return s->backend->list(s->ctx, prefix, out);
}

int storage_batch(struct storage *s, const struct storage_op *ops, size_t n)
{
    note_backend(s);
    return s->backend->batch(s->ctx, ops, n);
}

int storage_scan(struct storage *s, const char *prefix, storage_scan_fn fn,
                 void *arg)
{
    note_backend(s);
    return s->backend->scan(s->ctx, prefix, fn, arg);
}

int storage_delete_prefix(struct storage *s, const char *prefix)
{
    struct strvec keys;
    size_t plen = strlen(prefix);
    int rc;

    strvec_init(&keys);
    rc = storage_list(s, prefix, &keys);
    for (size_t i = 0; rc == 0 && i < keys.n; i++) {
        size_t klen = strlen(keys.v[i]);
        char *full = xmalloc(plen + klen + 1);

        memcpy(full, prefix, plen);
        memcpy(full + plen, keys.v[i], klen + 1);
        if (klen > 0 && keys.v[i][klen - 1] == '/')
            rc = storage_delete_prefix(s, full);
        else
            rc = storage_delete(s, full);
        free(full);
    }
    strvec_release(&keys);
    return rc;
}

const struct storage_ha_ops *storage_ha(const struct storage *s)
{
    return s != NULL ? s->backend->ha : NULL;
}
