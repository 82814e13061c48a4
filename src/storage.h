/*
 * storage.h - the key/value interface everything persistent goes through.
 *
 * Keys are '/'-separated strings ("core/mounts", "logical/<uuid>/foo").
 * Values are opaque bytes. A backend is a table of function pointers
 * (curl's vtls style); storage_inmem.c is the dev-mode backend, and the
 * sqlite/postgresql backends and the encrypting barrier slot in under the
 * same calls without touching callers.
 *
 * All functions are thread-safe. They return 0 on success or a negative
 * COFFER_E* code; storage_get returns COFFER_ENOTFOUND for a missing key.
 *
 * Listing follows Vault's physical backends: storage_list(prefix) returns
 * the immediate children of prefix, sorted, with sub-folders as "name/".
 */
#ifndef COFFER_STORAGE_H
#define COFFER_STORAGE_H

#include <stddef.h>

#include "buf.h"
#include "common.h"
#include "util.h"

enum storage_op_kind {
    STORAGE_OP_PUT = 1,
    STORAGE_OP_DELETE = 2,
};

struct storage_op {
    enum storage_op_kind kind;
    const char *key;
    const void *value; /* PUT only */
    size_t len;        /* PUT only */
};

/*
 * Called by scan for each key (full key) and value, in key order. Return
 * 0 to go on, anything else to stop the scan with that value.
 */
typedef int (*storage_scan_fn)(void *arg, const char *key, const void *value,
                               size_t len);

struct storage_backend {
    const char *name;
    int (*get)(void *ctx, const char *key, struct buf *out);
    int (*put)(void *ctx, const char *key, const void *value, size_t len);
    int (*del)(void *ctx, const char *key);
    int (*list)(void *ctx, const char *prefix, struct strvec *out);
    /* All or nothing: either every op is applied or none is. */
    int (*batch)(void *ctx, const struct storage_op *ops, size_t n);
    /*
     * Visits every key starting with prefix, at any depth, in key order,
     * with its value: one pass instead of a list per folder, for start-up
     * restores of millions of entries. Writes during a scan may or may not
     * be seen.
     */
    int (*scan)(void *ctx, const char *prefix, storage_scan_fn fn, void *arg);
    void (*close)(void *ctx);
};

struct storage {
    const struct storage_backend *backend;
    void *ctx;
};

/* Creates the in-memory backend. The caller frees it with storage_free. */
struct storage *storage_inmem_new(void);

/*
 * Opens (creating if missing) the sqlite backend: one file, WAL mode,
 * fsync'd commits. NULL with words in err on failure.
 */
struct storage *storage_sqlite_open(const char *path, struct errbuf *err);

/*
 * Opens the postgresql backend on conninfo (URL or key=value), using
 * table (created if missing; default "coffer_kv"). NULL with words in err.
 */
struct storage *storage_pg_open(const char *conninfo, const char *table,
                                struct errbuf *err);
void storage_free(struct storage *s);

/* Appends the value to out (which the caller initialised). */
int storage_get(struct storage *s, const char *key, struct buf *out);
int storage_put(struct storage *s, const char *key, const void *value,
                size_t len);
/* Deleting a missing key succeeds. */
int storage_delete(struct storage *s, const char *key);
/* Appends the immediate children of prefix to out (initialised by caller). */
int storage_list(struct storage *s, const char *prefix, struct strvec *out);
int storage_batch(struct storage *s, const struct storage_op *ops, size_t n);
/* Deletes every key that starts with prefix, depth first. */
int storage_delete_prefix(struct storage *s, const char *prefix);
/* Visits every key under prefix with its value (see the scan op). */
int storage_scan(struct storage *s, const char *prefix, storage_scan_fn fn,
                 void *arg);

#endif
