/*
 * storage_sqlite.c - the embedded default backend: one SQLite file.
 *
 * Owns: the database file (plus its -wal and -shm companions), a small pool
 * of connections to it, and the SQL behind the storage vtable. It does not
 * encrypt: values arrive already sealed by the barrier.
 *
 * Durability. The file runs in WAL mode with synchronous=FULL, so every
 * commit is fsync'd to the WAL before it is acknowledged. A kill -9 (or a
 * power cut) at any moment leaves either the old or the new state of each
 * transaction, never a mix; the next open replays the WAL. A batch is one
 * BEGIN IMMEDIATE ... COMMIT transaction (or part of one, see below).
 *
 * Group commit. Each commit costs an fsync, and writers of one store are
 * serialised anyway, so concurrent writers share commits (LevelDB's writer
 * queue): every put, delete and batch joins a FIFO queue of waiting
 * writers. The writer at the head is the leader: it takes the queue's
 * first writers (at most SQ_GROUP_MAX_WRITERS, and SQ_GROUP_MAX_BYTES of
 * keys and values unless the leader alone is bigger), applies each one's
 * ops inside its own SAVEPOINT of one transaction, commits once, and only
 * then hands each writer its own result and wakes it. A writer whose op
 * fails is rolled back to its savepoint alone: its ops leave no trace and
 * the others' still commit. Writers arriving meanwhile queue up and the
 * next head leads them as the next group. A lone writer finds the queue
 * empty, leads a group of one at once: no timer, no added latency.
 *
 *     queue:  [L w2 w3] w4 w5      L commits {L,w2,w3}: one fsync
 *     then:   [w4 w5]              w4 leads the next group
 *
 * Durability is unchanged: no writer is acknowledged before the COMMIT
 * holding its ops has returned, i.e. been fsync'd to the WAL; a crash
 * before that loses the whole group, none of which was acknowledged, and a
 * crash after keeps all of it, so each batch stays all-or-nothing. If an
 * error ends the whole transaction (sqlite rolls back by itself on I/O
 * errors, a full disk or no memory) or the commit fails, every writer of
 * the group that had no error of its own gets COFFER_EIO: none of its ops
 * was kept.
 *
 * Schema (one table; the key is the primary key of a WITHOUT ROWID table,
 * so rows live in the key's b-tree in bytewise key order):
 *
 *     CREATE TABLE coffer_kv (key TEXT PRIMARY KEY NOT NULL,
 *                             value BLOB NOT NULL) WITHOUT ROWID;
 *     PRAGMA user_version = 1;
 *
 * Threads. Each connection is used by one thread at a time and so is opened
 * SQLITE_OPEN_NOMUTEX; a mutex-protected free list hands them out and new
 * ones are opened on demand. In WAL mode readers on their own connections
 * run alongside the writer, which one shared FULLMUTEX connection would
 * serialise. Writers of one store queue in the group-commit queue, not
 * in sqlite's busy handler, which polls with sleeps. Measured with 8
 * threads on a 2-CPU VM (bench_threads in test_storage_sqlite.c, medians
 * of 4-5 runs; one shared connection behind a mutex stands in for
 * FULLMUTEX):
 *
 *                          gets only   10% puts   50% puts
 *     one connection         ~250k      ~45k       ~23k    ops/s
 *     pool, busy handler     ~650k      ~50k       ~24k
 *     pool + write_lock      ~650k      ~65k       ~28k
 *
 * Puts are bounded by the fsync of each commit (synchronous=FULL), which
 * group commit now shares between concurrent writers: with 16 threads
 * putting, 7-11 writes share a commit and puts/s went from ~3.5k (one
 * commit each) to ~20k on the same VM (test_storage_sqlite.c's
 * commits_per_write_drop_under_concurrency prints the figures; write_lock
 * above is the mutex the group-commit queue replaced).
 *
 * Listing. Keys under a prefix are one contiguous range of the b-tree. A
 * list walks that range, and each time it meets a key inside a sub-folder
 * "name/" it records the folder and seeks past the whole sub-tree (to
 * prefix + "name0", '0' being '/' + 1), so the cost is one seek per child,
 * not one row per descendant: a folder with three children holding a
 * million keys lists in microseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "storage.h"

/* How long a writer waits for another writer's transaction to finish. */
#define SQ_BUSY_TIMEOUT_MS 10000
/* Idle connections kept open; more are closed when handed back. */
#define SQ_MAX_IDLE 16
#define SQ_SCHEMA_VERSION 1
/*
 * Bounds of one commit group: a group holds its writers' memory and the
 * leader's latency grows with it, and past a few dozen writers the shared
 * fsync is already a small part of the commit.
 */
#define SQ_GROUP_MAX_WRITERS 256
#define SQ_GROUP_MAX_BYTES (8u << 20)

enum sq_stmt {
    ST_GET = 0,
    ST_PUT,
    ST_DEL,
    ST_KEYS,       /* keys in [lo, hi) */
    ST_KEYS_OPEN,  /* keys >= lo: the prefix has no successor */
    ST_SCAN,       /* keys and values in [lo, hi) */
    ST_SCAN_OPEN,
    ST_BEGIN_READ,
    ST_BEGIN_WRITE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,    /* one per writer of a group */
    ST_ROLLBACK_TO,
    ST_RELEASE,
    ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_GET] = "SELECT value FROM coffer_kv WHERE key = ?1",
    [ST_PUT] = "INSERT INTO coffer_kv (key, value) VALUES (?1, ?2) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [ST_DEL] = "DELETE FROM coffer_kv WHERE key = ?1",
    [ST_KEYS] = "SELECT key FROM coffer_kv WHERE key >= ?1 AND key < ?2 "
                "ORDER BY key",
    [ST_KEYS_OPEN] = "SELECT key FROM coffer_kv WHERE key >= ?1 ORDER BY key",
    [ST_SCAN] = "SELECT key, value FROM coffer_kv "
                "WHERE key >= ?1 AND key < ?2 ORDER BY key",
    [ST_SCAN_OPEN] = "SELECT key, value FROM coffer_kv WHERE key >= ?1 "
                     "ORDER BY key",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT coffer_w",
    [ST_ROLLBACK_TO] = "ROLLBACK TO coffer_w",
    [ST_RELEASE] = "RELEASE coffer_w",
};

struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
    struct sq_conn *next;
};

struct sq_store {
    char *path;
    pthread_mutex_t lock; /* guards idle, nidle, nbusy */
    struct sq_conn *idle;
    size_t nidle;
    size_t nbusy;
    /*
     * The group-commit queue (see the top of the file). Writers of this
     * store queue here rather than in sqlite's busy handler, which polls
     * with sleeps of 1 ms and more; busy_timeout still covers writers in
     * other processes or stores.
     */
    pthread_mutex_t gc_lock; /* guards everything below */
    struct sq_writer *q_head, *q_tail;
    uint64_t n_commits; /* groups led, i.e. transactions */
    uint64_t n_writes;  /* writers acknowledged in them, either result */
};

/*
 * One put, delete or batch waiting in the queue; it lives on the writer's
 * stack until done is set. The leader reads ops and sets rc without
 * gc_lock (the writer sleeps meanwhile); done is set under it.
 */
struct sq_writer {
    const struct storage_op *ops;
    size_t n;
    size_t bytes; /* keys and values, for SQ_GROUP_MAX_BYTES */
    int rc;
    bool done;
    pthread_cond_t wake;
    struct sq_writer *next;
};

/* ===================================================== connections == */

static void conn_close(struct sq_conn *c)
{
    int rc;

    if (c == NULL)
        return;
    for (size_t i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(c->st[i]);
    rc = sqlite3_close(c->db);
    if (rc != SQLITE_OK)
        log_error("storage/sqlite: close: %s", sqlite3_errstr(rc));
    free(c);
}

/* Runs one statement with no result rows on a bare handle. */
static int exec_sql(sqlite3 *db, const char *sql, struct errbuf *err)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    errbuf_set(err, "%s: %s", sql, msg != NULL ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return COFFER_EIO;
}

/*
 * Opens one connection with this backend's settings and statements.
 * NULL with words in err on failure.
 */
static struct sq_conn *conn_open(const char *path, struct errbuf *err)
{
    struct sq_conn *c = xcalloc(1, sizeof(*c));
    int rc;

    rc = sqlite3_open_v2(path, &c->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        errbuf_set(err, "open %s: %s", path,
                   c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
    /* synchronous is per connection: every one of them must say FULL. */
    if (exec_sql(c->db, "PRAGMA synchronous=FULL", err) != 0)
        goto fail;
    for (size_t i = 0; i < ST__COUNT; i++) {
        rc = sqlite3_prepare_v3(c->db, stmt_sql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL);
        if (rc != SQLITE_OK) {
            errbuf_set(err, "prepare: %s", sqlite3_errmsg(c->db));
            goto fail;
        }
    }
    return c;
fail:
    conn_close(c);
    return NULL;
}

/* Takes an idle connection or opens one; NULL (logged) on failure. */
static struct sq_conn *conn_get(struct sq_store *s)
{
    struct sq_conn *c;
    struct errbuf err;

    pthread_mutex_lock(&s->lock);
    c = s->idle;
    if (c != NULL) {
        s->idle = c->next;
        s->nidle--;
    }
    s->nbusy++;
    pthread_mutex_unlock(&s->lock);
    if (c != NULL)
        return c;
    c = conn_open(s->path, &err);
    if (c == NULL) {
        log_error("storage/sqlite: %s", err.msg);
        pthread_mutex_lock(&s->lock);
        s->nbusy--;
        pthread_mutex_unlock(&s->lock);
    }
    return c;
}

/* Hands c back. Its statements must all be reset. */
static void conn_put(struct sq_store *s, struct sq_conn *c)
{
    pthread_mutex_lock(&s->lock);
    s->nbusy--;
    if (s->nidle < SQ_MAX_IDLE) {
        c->next = s->idle;
        s->idle = c;
        s->nidle++;
        c = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    conn_close(c);
}

/* ====================================================== statements == */

/* Logs sqlite's words for a failure and returns COFFER_EIO. */
static int sq_fail(struct sq_conn *c, const char *what, const char *key)
{
    log_error("storage/sqlite: %s%s%s: %s", what, key != NULL ? " " : "",
              key != NULL ? key : "", sqlite3_errmsg(c->db));
    return COFFER_EIO;
}

/*
 * Unbinds and resets a statement. Text and blobs are bound SQLITE_STATIC
 * (no copy of possibly large values), so this must run before the
 * caller's buffers go away.
 */
static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no rows; resets it. */
static int step_done(struct sq_conn *c, enum sq_stmt which, const char *key)
{
    sqlite3_stmt *st = c->st[which];
    int rc = sqlite3_step(st);

    if (rc != SQLITE_DONE) {
        /* reset repeats the error, and fills errmsg for sq_fail */
        sqlite3_reset(st);
        rc = sq_fail(c, stmt_sql[which], key);
    } else {
        rc = 0;
    }
    stmt_done(st);
    return rc;
}

static int bind_key(sqlite3_stmt *st, int idx, const char *key, size_t len)
{
    if (len > INT_MAX)
        return SQLITE_TOOBIG;
    return sqlite3_bind_text(st, idx, key, (int)len, SQLITE_STATIC);
}

static int do_put(struct sq_conn *c, const char *key, const void *value,
                  size_t len)
{
    sqlite3_stmt *st = c->st[ST_PUT];

    if (key == NULL || (value == NULL && len > 0))
        return COFFER_EINVAL;
    /* A NULL blob would be SQL NULL; an empty value is a zero-length blob. */
    if (bind_key(st, 1, key, strlen(key)) != SQLITE_OK ||
        sqlite3_bind_blob64(st, 2, len > 0 ? value : "", len,
                            SQLITE_STATIC) != SQLITE_OK) {
        stmt_done(st);
        return sq_fail(c, "put", key);
    }
    return step_done(c, ST_PUT, key);
}

static int do_del(struct sq_conn *c, const char *key)
{
    if (key == NULL)
        return COFFER_EINVAL;
    if (bind_key(c->st[ST_DEL], 1, key, strlen(key)) != SQLITE_OK) {
        stmt_done(c->st[ST_DEL]);
        return sq_fail(c, "delete", key);
    }
    return step_done(c, ST_DEL, key);
}

/*
 * The smallest string greater than every string that starts with prefix:
 * drop trailing 0xff bytes and increment the last one. Returns a new string
 * (the caller frees it), or NULL when there is none (the prefix is empty or
 * all 0xff): then the range is open-ended.
 */
static char *prefix_successor(const char *prefix)
{
    size_t n = strlen(prefix);
    char *hi;

    while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
        n--;
    if (n == 0)
        return NULL;
    hi = xstrndup(prefix, n);
    hi[n - 1] = (char)((unsigned char)hi[n - 1] + 1);
    return hi;
}

/* ========================================================= vtable == */

static int sq_get(void *ctx, const char *key, struct buf *out)
{
    struct sq_store *s = ctx;
    struct sq_conn *c = conn_get(s);
    sqlite3_stmt *st;
    int rc;

    if (c == NULL)
        return COFFER_EIO;
    st = c->st[ST_GET];
    if (bind_key(st, 1, key, strlen(key)) != SQLITE_OK) {
        rc = sq_fail(c, "get", key);
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *v = sqlite3_column_blob(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);

        rc = buf_append(out, len > 0 ? v : "", len);
    } else if (rc == SQLITE_DONE) {
        rc = COFFER_ENOTFOUND;
    } else {
        sqlite3_reset(st);
        rc = sq_fail(c, "get", key);
    }
out:
    stmt_done(st);
    conn_put(s, c);
    return rc;
}

/*
 * Walks [lo, hi) in key order. A key without '/' after the prefix is a
 * child; a key with one is inside a sub-folder, which is recorded once and
 * then skipped with a fresh seek to prefix + "name0". Keys sort bytewise
 * and the folder's name is a prefix of all its keys, so the output comes
 * out sorted without a sort. The walk runs in one read transaction so that
 * the re-seeks see a single snapshot.
 */
static int list_range(struct sq_conn *c, const char *prefix, struct strvec *out)
{
    size_t plen = strlen(prefix);
    char *hi = prefix_successor(prefix);
    sqlite3_stmt *st = c->st[hi != NULL ? ST_KEYS : ST_KEYS_OPEN];
    struct buf lo;
    int rc;

    buf_init(&lo, BUF_MAX_DEFAULT);
    rc = buf_append(&lo, prefix, plen);
    if (rc != 0)
        goto out;
    if (bind_key(st, 1, lo.ptr, lo.len) != SQLITE_OK ||
        (hi != NULL && bind_key(st, 2, hi, strlen(hi)) != SQLITE_OK)) {
        rc = sq_fail(c, "list", prefix);
        goto out;
    }
    for (;;) {
        const char *key, *rest, *slash;
        size_t klen, dlen;

        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            rc = 0;
            break;
        }
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            rc = sq_fail(c, "list", prefix);
            break;
        }
        key = (const char *)sqlite3_column_text(st, 0);
        klen = (size_t)sqlite3_column_bytes(st, 0);
        /* The range guarantees the prefix; this only guards memchr. */
        if (key == NULL || klen < plen || memcmp(key, prefix, plen) != 0)
            continue;
        rest = key + plen;
        slash = memchr(rest, '/', klen - plen);
        if (slash == NULL) {
            strvec_push(out, rest);
            continue;
        }
        dlen = (size_t)(slash - rest) + 1;
        strvec_push_owned(out, xstrndup(rest, dlen));
        /*
         * Seek past "prefix name/...": the next candidate is "name0".
         * The reset invalidates key and rest, so the name is taken from
         * the copy just pushed.
         */
        sqlite3_reset(st);
        buf_reset(&lo);
        if (buf_append(&lo, prefix, plen) != 0 ||
            buf_append(&lo, out->v[out->n - 1], dlen - 1) != 0 ||
            buf_append(&lo, "0", 1) != 0) {
            rc = COFFER_ETOOBIG;
            break;
        }
        if (bind_key(st, 1, lo.ptr, lo.len) != SQLITE_OK) {
            rc = sq_fail(c, "list", prefix);
            break;
        }
    }
out:
    stmt_done(st);
    buf_release(&lo);
    free(hi);
    return rc;
}

static int sq_list(void *ctx, const char *prefix, struct strvec *out)
{
    struct sq_store *s = ctx;
    struct sq_conn *c = conn_get(s);
    int rc;

    if (c == NULL)
        return COFFER_EIO;
    rc = step_done(c, ST_BEGIN_READ, NULL);
    if (rc == 0) {
        rc = list_range(c, prefix, out);
        if (step_done(c, rc == 0 ? ST_COMMIT : ST_ROLLBACK, NULL) != 0)
            rc = rc == 0 ? COFFER_EIO : rc;
    }
    conn_put(s, c);
    return rc;
}

/* Applies ops in order inside an open write transaction. */
static int apply_ops(struct sq_conn *c, const struct storage_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc;

        switch (ops[i].kind) {
        case STORAGE_OP_PUT:
            rc = do_put(c, ops[i].key, ops[i].value, ops[i].len);
            break;
        case STORAGE_OP_DELETE:
            rc = do_del(c, ops[i].key);
            break;
        default:
            log_error("storage/sqlite: batch: op %zu has unknown kind %d", i,
                      (int)ops[i].kind);
            rc = COFFER_EINVAL;
            break;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ==================================================== group commit == */

static size_t ops_bytes(const struct storage_op *ops, size_t n)
{
    size_t bytes = 0;

    for (size_t i = 0; i < n; i++) {
        bytes += ops[i].key != NULL ? strlen(ops[i].key) : 0;
        bytes += ops[i].kind == STORAGE_OP_PUT ? ops[i].len : 0;
    }
    return bytes;
}

/*
 * The last writer of the group the head leads: the longest run from the
 * head within the bounds, and at least the head. Under gc_lock.
 */
static struct sq_writer *group_last(struct sq_store *s)
{
    struct sq_writer *last = s->q_head;
    size_t writers = 1, bytes = last->bytes;

    while (last->next != NULL && writers < SQ_GROUP_MAX_WRITERS &&
           bytes + last->next->bytes <= SQ_GROUP_MAX_BYTES) {
        last = last->next;
        writers++;
        bytes += last->bytes;
    }
    return last;
}

/* Gives every writer of [first, last] that has no error of its own rc. */
static void group_fail(struct sq_writer *first, struct sq_writer *last,
                       int rc)
{
    for (struct sq_writer *w = first;; w = w->next) {
        if (w->rc == 0)
            w->rc = rc;
        if (w == last)
            break;
    }
}

/*
 * Applies one writer's ops inside the open transaction, in a savepoint
 * when it shares the transaction, so that its failure undoes only its own
 * ops. Returns nonzero when the transaction can no longer be committed
 * (sqlite ended it, or a savepoint statement failed).
 */
static int apply_writer(struct sq_conn *c, struct sq_writer *w, bool alone)
{
    if (alone) {
        w->rc = apply_ops(c, w->ops, w->n);
        return sqlite3_get_autocommit(c->db) ? COFFER_EIO : 0;
    }
    w->rc = step_done(c, ST_SAVEPOINT, NULL);
    if (w->rc != 0)
        return w->rc;
    w->rc = apply_ops(c, w->ops, w->n);
    if (sqlite3_get_autocommit(c->db))
        return COFFER_EIO;
    if (w->rc != 0 && step_done(c, ST_ROLLBACK_TO, NULL) != 0)
        return COFFER_EIO;
    return step_done(c, ST_RELEASE, NULL);
}

/*
 * Runs the group [first, last] as one transaction and sets each writer's
 * rc; nobody is woken here. A lone single-op writer runs its statement in
 * autocommit mode, as before group commit. The writers' ops stay bound
 * (SQLITE_STATIC) only while their owners sleep: every statement is reset
 * before this returns.
 */
static void group_commit(struct sq_store *s, struct sq_writer *first,
                         struct sq_writer *last)
{
    bool alone = first == last;
    struct sq_conn *c = conn_get(s);
    int rc;

    if (c == NULL) {
        group_fail(first, last, COFFER_EIO);
        return;
    }
    if (alone && first->n == 1) {
        first->rc = apply_ops(c, first->ops, 1);
        goto out;
    }
    /* IMMEDIATE takes the write lock now (waiting via busy_timeout), so
     * the transaction cannot fail later on a lock upgrade. */
    rc = step_done(c, ST_BEGIN_WRITE, NULL);
    if (rc != 0) {
        group_fail(first, last, rc);
        goto out;
    }
    for (struct sq_writer *w = first;; w = w->next) {
        rc = apply_writer(c, w, alone);
        if (rc != 0 || w == last)
            break;
    }
    if (rc != 0) {
        if (!alone)
            log_error("storage/sqlite: a commit group of writers was "
                      "rolled back as a whole");
    } else if (alone && first->rc != 0) {
        rc = first->rc;
    } else {
        rc = step_done(c, ST_COMMIT, NULL);
    }
    if (rc != 0) {
        if (!sqlite3_get_autocommit(c->db))
            (void)step_done(c, ST_ROLLBACK, NULL);
        group_fail(first, last, alone ? rc : COFFER_EIO);
    }
out:
    conn_put(s, c);
}

/*
 * Ends the group [head, last] under gc_lock: each writer gets its result
 * and is woken, and the next head, if any, is woken to lead.
 */
static void group_finish(struct sq_store *s, struct sq_writer *last)
{
    struct sq_writer *w;

    s->n_commits++;
    do {
        w = s->q_head;
        s->q_head = w->next;
        w->done = true;
        s->n_writes++;
        pthread_cond_signal(&w->wake);
    } while (w != last);
    if (s->q_head == NULL)
        s->q_tail = NULL;
    else
        pthread_cond_signal(&s->q_head->wake);
}

/*
 * Every write goes through here: queue, then either get the result a
 * leader set, or become the leader of the next group. Returns only after
 * the commit holding the ops returned (or failed).
 */
static int sq_write(struct sq_store *s, const struct storage_op *ops,
                    size_t n)
{
    struct sq_writer w = {.ops = ops, .n = n, .bytes = ops_bytes(ops, n)};

    pthread_cond_init(&w.wake, NULL);
    pthread_mutex_lock(&s->gc_lock);
    if (s->q_tail != NULL)
        s->q_tail->next = &w;
    else
        s->q_head = &w;
    s->q_tail = &w;
    while (!w.done && s->q_head != &w)
        pthread_cond_wait(&w.wake, &s->gc_lock);
    if (!w.done) {
        struct sq_writer *last = group_last(s);

        /*
         * Without the lock while committing: others append to the tail
         * (they only write the tail's next), and the leader stops at last
         * without following last->next.
         */
        pthread_mutex_unlock(&s->gc_lock);
        group_commit(s, &w, last);
        pthread_mutex_lock(&s->gc_lock);
        group_finish(s, last);
    }
    pthread_mutex_unlock(&s->gc_lock);
    pthread_cond_destroy(&w.wake);
    return w.rc;
}

static int sq_put(void *ctx, const char *key, const void *value, size_t len)
{
    struct storage_op op = {STORAGE_OP_PUT, key, value, len};

    return sq_write(ctx, &op, 1);
}

static int sq_del(void *ctx, const char *key)
{
    struct storage_op op = {STORAGE_OP_DELETE, key, NULL, 0};

    return sq_write(ctx, &op, 1);
}

static int sq_batch(void *ctx, const struct storage_op *ops, size_t n)
{
    if (n == 0)
        return 0;
    return sq_write(ctx, ops, n);
}

/*
 * One statement over [prefix, successor) streams rows in key order; fn
 * runs between steps. The connection stays checked out meanwhile, so fn
 * may use the storage (it gets another connection) but a scan of a
 * million keys holds one read snapshot open for its whole length.
 */
static int sq_scan(void *ctx, const char *prefix, storage_scan_fn fn,
                   void *arg)
{
    struct sq_store *s = ctx;
    struct sq_conn *c = conn_get(s);
    char *hi = NULL;
    sqlite3_stmt *st;
    int rc;

    if (c == NULL)
        return COFFER_EIO;
    hi = prefix_successor(prefix);
    st = c->st[hi != NULL ? ST_SCAN : ST_SCAN_OPEN];
    if (bind_key(st, 1, prefix, strlen(prefix)) != SQLITE_OK ||
        (hi != NULL && bind_key(st, 2, hi, strlen(hi)) != SQLITE_OK)) {
        rc = sq_fail(c, "scan", prefix);
        goto out;
    }
    for (;;) {
        const char *key;
        const void *v;
        size_t len;

        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            rc = 0;
            break;
        }
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            rc = sq_fail(c, "scan", prefix);
            break;
        }
        key = (const char *)sqlite3_column_text(st, 0);
        v = sqlite3_column_blob(st, 1);
        len = (size_t)sqlite3_column_bytes(st, 1);
        rc = fn(arg, key != NULL ? key : "", len > 0 ? v : "", len);
        if (rc != 0)
            break;
    }
out:
    stmt_done(st);
    conn_put(s, c);
    free(hi);
    return rc;
}

static void sq_close(void *ctx)
{
    struct sq_store *s = ctx;

    if (s == NULL)
        return;
    COFFER_ASSERT(s->nbusy == 0);
    while (s->idle != NULL) {
        struct sq_conn *c = s->idle;

        s->idle = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&s->lock);
    COFFER_ASSERT(s->q_head == NULL);
    pthread_mutex_destroy(&s->gc_lock);
    free(s->path);
    free(s);
}

static const struct storage_backend sqlite_backend = {
    .name = "sqlite",
    .may_block = false, /* a local file */
    .get = sq_get,
    .put = sq_put,
    .del = sq_del,
    .list = sq_list,
    .batch = sq_batch,
    .scan = sq_scan,
    .close = sq_close,
};

/* ============================================================ open == */

/*
 * Creates the file with mode 0600 before SQLite sees it: SQLite would
 * create it 0644 (less the umask), and it gives the -wal and -shm files
 * the main file's mode. A new file's directory entry is fsync'd. An
 * existing file readable by others is only warned about: the values are
 * ciphertext, and the operator may have reasons.
 */
static int create_file(const char *path, struct errbuf *err)
{
    struct stat stt;
    bool created = true;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd == -1 && errno == EEXIST) {
        created = false;
        fd = open(path, O_RDWR | O_CLOEXEC);
    }
    if (fd == -1) {
        errbuf_set(err, "open %s: %s", path, strerror(errno));
        return COFFER_EIO;
    }
    if (fstat(fd, &stt) == 0 && (stt.st_mode & 077) != 0)
        log_warn("storage/sqlite: %s is accessible by group or others "
                 "(mode %03o); 0600 is recommended", path,
                 (unsigned)(stt.st_mode & 0777));
    if (close(fd) != 0) {
        errbuf_set(err, "close %s: %s", path, strerror(errno));
        return COFFER_EIO;
    }
    if (created) {
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        int dfd;

        if (slash == NULL)
            memcpy(dir, ".", 2);
        else if (slash == dir)
            slash[1] = '\0';
        else
            slash[0] = '\0';
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd != -1) {
            if (fsync(dfd) != 0)
                log_warn("storage/sqlite: fsync %s: %s", dir, strerror(errno));
            close(dfd);
        }
        free(dir);
    }
    return 0;
}

/*
 * Puts the file in WAL mode and creates the table. journal_mode=WAL is
 * persistent in the file; the first connection sets it once.
 */
static int init_schema(const char *path, struct errbuf *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = COFFER_EIO, version = -1;
    const char *mode;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        errbuf_set(err, "open %s: %s", path,
                   db != NULL ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, SQ_BUSY_TIMEOUT_MS);
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        errbuf_set(err, "%s: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    mode = (const char *)sqlite3_column_text(st, 0);
    if (mode == NULL || strcmp(mode, "wal") != 0) {
        errbuf_set(err, "%s: cannot enable WAL mode (journal_mode is %s)",
                   path, mode != NULL ? mode : "unknown");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        errbuf_set(err, "%s: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    version = sqlite3_column_int(st, 0);
    if (version > SQ_SCHEMA_VERSION) {
        errbuf_set(err, "%s: schema version %d is newer than this Coffer "
                   "understands (%d)", path, version, SQ_SCHEMA_VERSION);
        goto out;
    }
    if (exec_sql(db,
                 "BEGIN IMMEDIATE;"
                 "CREATE TABLE IF NOT EXISTS coffer_kv ("
                 " key TEXT PRIMARY KEY NOT NULL,"
                 " value BLOB NOT NULL) WITHOUT ROWID;"
                 "PRAGMA user_version = 1;"
                 "COMMIT",
                 err) != 0) {
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    if (db != NULL && sqlite3_close(db) != SQLITE_OK && rc == 0) {
        errbuf_set(err, "close %s: %s", path, sqlite3_errmsg(db));
        rc = COFFER_EIO;
    }
    return rc;
}

struct storage *storage_sqlite_open(const char *path, struct errbuf *err)
{
    struct storage *st = NULL;
    struct sq_store *s = NULL;
    struct sq_conn *c = NULL;

    if (path == NULL || path[0] == '\0') {
        errbuf_set(err, "sqlite storage needs a path");
        return NULL;
    }
    if (sqlite3_threadsafe() == 0) {
        errbuf_set(err, "libsqlite3 was built without thread support");
        return NULL;
    }
    if (create_file(path, err) != 0 || init_schema(path, err) != 0)
        return NULL;
    /* One connection now, so a bad file fails here and not on first use. */
    c = conn_open(path, err);
    if (c == NULL)
        return NULL;
    s = xcalloc(1, sizeof(*s));
    s->path = xstrdup(path);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->gc_lock, NULL);
    s->idle = c;
    s->nidle = 1;
    st = xcalloc(1, sizeof(*st));
    st->backend = &sqlite_backend;
    st->ctx = s;
    return st;
}
