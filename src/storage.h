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

#include <stdbool.h>
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

/*
 * High availability: several nodes share one physical storage, and one
 * of them, the holder of a lock kept in the storage itself, is active.
 * A claim names the holder: `holder` is new for every tenure (a node that
 * loses the lock and takes it again gets a new one), so a write left over
 * from an earlier tenure can never pass as the current one.
 */
struct storage_ha_claim {
    const char *holder;       /* "<node_id>/<tenure uuid>" */
    const char *node_id;
    const char *api_addr;
    const char *cluster_addr; /* "" if none */
};

/* What the lock row says, for sys/leader. Strings are copied in. */
struct storage_ha_leader {
    bool held;                /* a holder whose lock has not expired */
    char node_id[64];
    char holder[128];
    char api_addr[256];
    char cluster_addr[256];
    double acquired_unix;     /* when the current holder took it */
};

/*
 * One node's registration (sys/ha-status). Every node, active or not,
 * echoes its row; rows are keyed by node_id (new at every start). The
 * strings reach SQL as parameters only, and ha.c checks them first.
 */
struct storage_ha_node {
    char node_id[64];
    char hostname[128];
    char api_addr[256];
    char cluster_addr[256];
    char version[64];
    double last_echo_unix;    /* by the storage's clock */
    bool active;              /* names the live lock holder */
};

/*
 * Change notification between nodes (HA): what a standby's listener
 * hears. KEY: the active committed a write or delete of `what`. FLUSH:
 * anything may have changed (a batch of many keys, a key the channel
 * cannot carry, or a listening connection that was (re)opened or lost, so
 * that something may have been missed; `what` is NULL). SYNC: a marker a
 * node posted (sync_post); every change committed before it was posted
 * has been reported before it.
 */
enum storage_change_kind {
    STORAGE_CHANGE_KEY = 1,
    STORAGE_CHANGE_FLUSH = 2,
    STORAGE_CHANGE_SYNC = 3,
};

typedef void (*storage_change_fn)(void *arg, enum storage_change_kind kind,
                                  const char *what);

/*
 * The lock interface of a backend that several nodes can share (only
 * postgresql). Writes through a backend with HA switched on are fenced:
 * each one checks, in the same statement or transaction, that the lock
 * is still held by the claim that last acquired it, and fails with
 * COFFER_ESTANDBY otherwise; a takeover waits for fenced writes in
 * flight, so no write of an old holder lands after a new one took over.
 */
struct storage_ha_ops {
    /*
     * Takes the lock for claim if it is free or expired, or renews it if
     * claim already holds it, for ttl_ms measured by the storage's clock.
     * *held says whether claim holds it now; on success writes are fenced
     * with claim->holder, on loss they fail from then on.
     */
    int (*acquire)(void *ctx, const struct storage_ha_claim *claim,
                   int ttl_ms, bool *held);
    /* Gives the lock up if claim->holder has it; writes fail from now. */
    int (*release)(void *ctx, const char *holder);
    /* Reads the lock row. */
    int (*leader)(void *ctx, struct storage_ha_leader *out);
    /*
     * Registration, never fenced (standbys hold no lock) and touching
     * nothing but the nodes table. echo upserts self's row with the
     * storage's now() and deletes rows silent for forget_ms; leave
     * deletes self's row; nodes lists rows that echoed within stale_ms
     * (an array the caller frees), active one first.
     */
    int (*echo)(void *ctx, const struct storage_ha_node *self,
                int forget_ms);
    int (*leave)(void *ctx, const char *node_id);
    int (*nodes)(void *ctx, int stale_ms, struct storage_ha_node **out,
                 size_t *n);
    /*
     * Change notification. Every fenced write, delete and batch also
     * announces its keys in the same transaction (delivered on commit
     * only). listen waits up to timeout_ms on a connection of its own
     * (opened on demand; its opening reports FLUSH) and reports what
     * arrived through fn; an error closes it, and the caller must take
     * it that anything may have been missed until the next opening.
     * timeout_ms < 0 closes it (the active does not listen). One thread
     * only. sync_post announces marker (printable ASCII, no control
     * bytes), after every change committed before.
     */
    int (*listen)(void *ctx, int timeout_ms, storage_change_fn fn,
                  void *arg);
    int (*sync_post)(void *ctx, const char *marker);
};

struct storage_backend {
    const char *name;
    /*
     * True for a backend whose calls may wait on something other than the
     * local disk (a network database): the HTTP layer then never runs a
     * request on its I/O threads (storage_blocking_in_use).
     */
    bool may_block;
    /* NULL unless the backend was opened with HA on. */
    const struct storage_ha_ops *ha;
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
/*
 * The same with HA on: the lock lives in ha_table (default
 * "<table>_lock"), created if missing, and writes are fenced (see struct
 * storage_ha_ops). Until the first acquire, every write fails with
 * COFFER_ESTANDBY.
 */
struct storage *storage_pg_open_ha(const char *conninfo, const char *table,
                                   const char *ha_table, struct errbuf *err);
/* The backend's lock interface, or NULL. */
const struct storage_ha_ops *storage_ha(const struct storage *s);
void storage_free(struct storage *s);

/*
 * True once any call went to a backend that may block (may_block) in this
 * process: sticky, because the physical storage is chosen once at start-up
 * and read (seal configuration) before the first request is served.
 */
bool storage_blocking_in_use(void);

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
