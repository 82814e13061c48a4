/*
 * storage_pg.c - the postgresql backend: one table, reached with libpq.
 *
 * Owns: a small pool of libpq connections (not db_pg.c's pools, which
 * belong to the database secret engine), the table it creates if missing,
 * and the SQL behind the storage vtable. The HA ops (lock, node registry,
 * the change channel's calls) are storage_pg_ha.c's; the two share
 * storage_pg_internal.h. Values arrive already sealed by
 * the barrier; this file never sees plaintext.
 *
 * Table (default name coffer_kv; "schema.table" is allowed):
 *
 *     key    text COLLATE "C" PRIMARY KEY   full key, "logical/u1/a/b"
 *     path   text COLLATE "C" NOT NULL      its folder, "logical/u1/a/"
 *     name   text COLLATE "C" NOT NULL      the last segment, "b"
 *     value  bytea NOT NULL
 *     INDEX <table>_path_idx ON (path, name)
 *
 * COLLATE "C" makes every comparison bytewise, whatever the database's
 * locale, so keys sort as they do in the other backends. path/name follow
 * Vault's postgresql backend, but listing does not read every descendant
 * as Vault's does: the keys directly in a folder are one range of the
 * (path, name) index, and its sub-folders are found with a loose index
 * scan over path (a recursive CTE that seeks past each sub-folder to
 * "name0"), one probe per sub-folder however many keys it holds.
 *
 * High availability (storage_pg_open_ha): the lock is one row of a sibling
 * table, by default "<table>_lock":
 *
 *     ha_key text PRIMARY KEY ('leader'), holder, node_id, api_addr,
 *     cluster_addr text, acquired, valid_until timestamptz
 *
 * Its times are PostgreSQL's clock (now()), the one clock every node
 * shares. Taking the lock locks the row FOR UPDATE first; every write is
 * fenced by reading the row FOR KEY SHARE in the same statement (or at
 * the start of a batch's transaction) and checking that the holder is
 * this tenure's and valid_until is ahead. The two lock modes conflict, so
 * a takeover waits for writes in flight and any write that starts after
 * it sees the new holder and fails; renewing (an UPDATE of valid_until,
 * FOR NO KEY UPDATE) does not wait for writes. Table names are limited to
 * 48 characters so that the suffixes always fit in 63.
 *
 * Every node, active or standing by, also registers in "<table>_nodes"
 * (node_id PRIMARY KEY, hostname, api_addr, cluster_addr, version,
 * last_echo timestamptz by now()) for sys/ha-status. Those statements
 * touch that table only and are not fenced: a standby holds no lock,
 * and a stale row can only make a listing wrong, never data.
 *
 * Change notification (HA): each fenced write, delete and batch also
 * calls pg_notify on "<table>_changes" in its own transaction, so
 * standbys hear it on commit only; the payloads and the listener are
 * storage_pg_notify.c's. The listener is a connection of its own with TCP
 * keepalives (a dead server is noticed in seconds). Cost: PostgreSQL
 * serialises the commits of transactions that notify (one lock per
 * database, held through the commit's WAL flush).
 *
 * Connections. Open on demand up to PG_MAX_OPEN, idle ones kept in a
 * mutex-protected list. No call holds two. A connection that fails with
 * CONNECTION_BAD is closed with every idle one (after a server restart
 * they are all dead), and the call is retried once on a fresh connection
 * if the dead one came from the pool. Every operation is idempotent
 * (upserts and deletes), so a retry after a lost COMMIT reply is safe.
 *
 * Keys are text, so they must be valid UTF-8 (the server refuses others
 * with an error); the sqlite and inmem backends take any bytes.
 *
 * Scans read pages of PG_SCAN_PAGE rows in key order (keyset paging:
 * "key >= last || chr(1)"), so a million keys are never materialised at
 * once. While the callback works through one page the next is already
 * being fetched on a connection the scan keeps (prefetch_get: only one
 * taken without waiting, and by at most PG_PREFETCH_MAX scans, so the
 * callback, which may read storage, always finds the rest of the pool);
 * without one, the callback runs with no connection held.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "storage.h"
#include "storage_pg_internal.h"
#include "storage_pg_notify.h"

#define PG_MAX_OPEN 16
#define PG_MAX_IDLE 8
#define PG_SCAN_PAGE 500
/* Scans that may keep a connection across pages at once (prefetch_get). */
#define PG_PREFETCH_MAX (PG_MAX_OPEN / 4)
#define PG_TABLE_PART_MAX 48
#define PG_TEXTOID 25
#define PG_BYTEAOID 17

/* ============================================================= SQL == */

enum pg_stmt {
    PS_GET = 0,
    PS_PUT,
    PS_DEL,
    PS_LIST,      /* $1 folder, $2 prefix, $3 upper bound */
    PS_LIST_OPEN, /* no upper bound */
    PS_SCAN,      /* $1 lower bound, $2 prefix, $3 upper bound */
    PS_SCAN_OPEN,
    PS_PUT_FENCED, /* PS_PUT's $1..$4, $5 the holder; one row: fence ok */
    PS_DEL_FENCED, /* $1 key, $2 the holder; one row: fence ok */
    PS_FENCE,      /* $1 the holder; in a batch's transaction */
    PS_NOTIFY,     /* $1 payloads joined by PG_NOTIFY_SEP; HA only, never
                    * fenced */
    PS__COUNT
};

static const char *const stmt_name[PS__COUNT] = {
    "coffer_get", "coffer_put", "coffer_del", "coffer_list",
    "coffer_list_open", "coffer_scan", "coffer_scan_open",
    "coffer_put_fenced", "coffer_del_fenced", "coffer_fence",
    "coffer_notify",
};

/*
 * %1$s is the quoted table. In PS_LIST, $1 is the folder part of the
 * prefix (up to its last '/'), $2 the prefix and $3 its successor; a
 * prefix that does not end in '/' lists the children of $1 that start
 * with the rest, trimmed, as the other backends do.
 */
#define LIST_SQL(BOUND)                                                      \
    "WITH RECURSIVE dirs(p) AS ("                                            \
    " (SELECT path FROM %1$s WHERE path >= $2" BOUND                         \
    "   AND path <> $1 AND starts_with(path, $2) ORDER BY path LIMIT 1)"     \
    " UNION ALL"                                                             \
    " SELECT (SELECT path FROM %1$s WHERE path >= $1 ||"                     \
    "    split_part(substr(d.p, length($1) + 1), '/', 1) || '0'" BOUND       \
    "    AND starts_with(path, $2) ORDER BY path LIMIT 1)"                   \
    " FROM dirs d WHERE d.p IS NOT NULL)"                                    \
    "SELECT child FROM ("                                                    \
    " SELECT substr(name, length($2) - length($1) + 1) AS child"             \
    " FROM %1$s WHERE path = $1"                                             \
    "  AND starts_with(name, substr($2, length($1) + 1))"                    \
    " UNION ALL"                                                             \
    " SELECT substr(split_part(substr(p, length($1) + 1), '/', 1),"          \
    "   length($2) - length($1) + 1) || '/'"                                 \
    " FROM dirs WHERE p IS NOT NULL) c "                                     \
    "ORDER BY child COLLATE \"C\""

#define SCAN_SQL(BOUND)                                                      \
    "SELECT key, value FROM %1$s WHERE key >= $1" BOUND                      \
    " AND starts_with(key, $2) ORDER BY key LIMIT " PG_STR(PG_SCAN_PAGE)
#define PG_STR2(x) #x
#define PG_STR(x) PG_STR2(x)

/*
 * %2$s is the quoted lock table. count(*) is 1 when the fence holds.
 * %3$s is the change channel (ident_ok's alphabet and '.', so it can sit
 * in a literal): a fenced write that changed a row announces its payload
 * there, in its own transaction, so standbys hear it on commit only.
 */
#define FENCE_CTE(HOLDER)                                                    \
    "WITH f AS (SELECT 1 FROM %2$s WHERE ha_key = 'leader' AND holder = "   \
    HOLDER " AND valid_until > now() FOR KEY SHARE)"

static const char *const stmt_fmt[PS__COUNT] = {
    [PS_GET] = "SELECT value FROM %1$s WHERE key = $1",
    [PS_PUT] = "INSERT INTO %1$s (key, path, name, value) "
               "VALUES ($1, $2, $3, $4) "
               "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    [PS_DEL] = "DELETE FROM %1$s WHERE key = $1",
    [PS_LIST] = LIST_SQL(" AND path < $3"),
    [PS_LIST_OPEN] = LIST_SQL(""),
    [PS_SCAN] = SCAN_SQL(" AND key < $3"),
    [PS_SCAN_OPEN] = SCAN_SQL(""),
    [PS_PUT_FENCED] = FENCE_CTE("$5") ", w AS (INSERT INTO %1$s "
                      "(key, path, name, value) SELECT $1, $2, $3, $4 FROM f "
                      "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value "
                      "RETURNING 1) SELECT count(*), (SELECT max(pg_notify("
                      "'%3$s', $6)::text) FROM w) FROM f",
    [PS_DEL_FENCED] = FENCE_CTE("$2") ", d AS (DELETE FROM %1$s WHERE key = "
                      "$1 AND EXISTS (SELECT 1 FROM f) RETURNING 1) "
                      "SELECT count(*), (SELECT max(pg_notify('%3$s', $3)"
                      "::text) FROM d) FROM f",
    [PS_FENCE] = FENCE_CTE("$1") " SELECT count(*) FROM f",
    [PS_NOTIFY] = "SELECT max(pg_notify('%3$s', p)::text) FROM "
                  "unnest(string_to_array($1, " PG_NOTIFY_SEP_SQL ")) p",
};

static const int stmt_nparams[PS__COUNT] = {
    [PS_GET] = 1, [PS_PUT] = 4, [PS_DEL] = 1, [PS_LIST] = 3,
    [PS_LIST_OPEN] = 2, [PS_SCAN] = 3, [PS_SCAN_OPEN] = 2,
    [PS_PUT_FENCED] = 6, [PS_DEL_FENCED] = 3, [PS_FENCE] = 1,
    [PS_NOTIFY] = 1,
};

/* Prepared only with HA on (they name the lock table or the channel). */
static bool stmt_is_ha(enum pg_stmt which)
{
    return which == PS_PUT_FENCED || which == PS_DEL_FENCED ||
           which == PS_FENCE || which == PS_NOTIFY;
}

/* Builds a statement's text for this table; the caller frees it. */
static char *stmt_text(const struct pg_store *s, enum pg_stmt which)
{
    struct buf b;

    buf_init(&b, BUF_MAX_DEFAULT);
    COFFER_ASSERT(buf_appendf(&b, stmt_fmt[which], s->table,
                              s->ha_table != NULL ? s->ha_table : "",
                              s->channel) == 0);
    return buf_detach(&b, NULL);
}

/* libpq messages end in a newline; log lines do not. */
void storage_pg_log(const char *what, const char *key, const char *msg)
{
    size_t n = strlen(msg);

    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    log_error("storage/pg: %s%s%s: %.*s", what, key != NULL ? " " : "",
              key != NULL ? key : "", (int)n, msg);
}

/*
 * Checks a result. Returns 0 if its status is want, else logs the
 * server's words and returns COFFER_EIO. Does not clear res.
 */
int storage_pg_check(PGconn *conn, PGresult *res, ExecStatusType want,
                     const char *what, const char *key)
{
    if (res != NULL && PQresultStatus(res) == want)
        return 0;
    storage_pg_log(what, key, res != NULL ? PQresultErrorMessage(res)
                                  : PQerrorMessage(conn));
    return COFFER_EIO;
}

/* Runs a command with no parameters and no rows. */
int storage_pg_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int rc = storage_pg_check(conn, res, PGRES_COMMAND_OK, sql, NULL);

    PQclear(res);
    return rc;
}

/* ===================================================== connections == */

/* Sets err to "what: msg" without libpq's trailing newline. */
static void err_pg(struct errbuf *err, const char *what, const char *msg)
{
    size_t n = strlen(msg);

    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    errbuf_set(err, "%s: %.*s", what, (int)n, msg);
}

/* "relation already exists, skipping" and such: not worth stderr. */
static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    log_debug("storage/pg: server notice: %s", msg);
}

/*
 * Opens a bare connection. conninfo goes last (dbname, expanded), so its
 * own settings win over the defaults before it. NULL with words in err.
 */
static PGconn *connect_params(const char *const *keys,
                              const char *const *vals, struct errbuf *err)
{
    PGconn *conn = PQconnectdbParams(keys, vals, 1);

    if (conn == NULL) {
        errbuf_set(err, "connect: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        err_pg(err, "connect", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    if (PQsetClientEncoding(conn, "UTF8") != 0) {
        err_pg(err, "set client encoding", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

PGconn *storage_pg_connect(const char *conninfo, struct errbuf *err)
{
    static const char *const keys[] = {"application_name", "connect_timeout",
                                       "dbname", NULL};
    const char *vals[] = {"coffer", "10", conninfo, NULL};

    return connect_params(keys, vals, err);
}

/*
 * The change listener's: a dead peer must end it within seconds (TCP
 * keepalives and a user timeout), since a standby that cannot hear the
 * active must stop serving from its caches.
 */
static PGconn *connect_listen(const char *conninfo, struct errbuf *err)
{
    static const char *const keys[] = {
        "application_name", "connect_timeout", "keepalives",
        "keepalives_idle", "keepalives_interval", "keepalives_count",
        "tcp_user_timeout", "dbname", NULL};
    const char *vals[] = {"coffer", "10", "1", "1", "1", "2", "3000",
                          conninfo, NULL};

    return connect_params(keys, vals, err);
}

static void conn_close(struct pg_conn *c)
{
    if (c == NULL)
        return;
    PQfinish(c->conn);
    free(c);
}

/* Connects and prepares the statements. NULL with words in err. */
static struct pg_conn *conn_open(const struct pg_store *s, struct errbuf *err)
{
    struct pg_conn *c = xcalloc(1, sizeof(*c));

    c->conn = storage_pg_connect(s->conninfo, err);
    if (c->conn == NULL)
        goto fail;
    for (size_t i = 0; i < PS__COUNT; i++) {
        Oid types[6] = {PG_TEXTOID, PG_TEXTOID, PG_TEXTOID, PG_BYTEAOID,
                        PG_TEXTOID, PG_TEXTOID};
        char *sql;
        PGresult *res;
        bool ok;

        if (stmt_is_ha((enum pg_stmt)i) && s->ha_table == NULL)
            continue;
        sql = stmt_text(s, (enum pg_stmt)i);
        res = PQprepare(c->conn, stmt_name[i], sql, stmt_nparams[i], types);
        ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;

        if (!ok)
            err_pg(err, stmt_name[i],
                   res != NULL ? PQresultErrorMessage(res)
                               : PQerrorMessage(c->conn));
        PQclear(res);
        free(sql);
        if (!ok)
            goto fail;
    }
    return c;
fail:
    conn_close(c);
    return NULL;
}

/* Takes an idle connection, or NULL if none. Caller holds lock. */
static struct pg_conn *idle_take_locked(struct pg_store *s)
{
    struct pg_conn *c = s->idle;

    if (c != NULL) {
        s->idle = c->next;
        s->nidle--;
    }
    return c;
}

/*
 * Opens a connection for a slot already counted in nopen (and in
 * nprefetch when prefetch), giving the slot back on failure (logged).
 */
static struct pg_conn *conn_open_slot(struct pg_store *s, bool prefetch)
{
    struct errbuf err;
    struct pg_conn *c = conn_open(s, &err);

    if (c == NULL) {
        storage_pg_log("connect", NULL, err.msg);
        pthread_mutex_lock(&s->lock);
        s->nopen--;
        if (prefetch)
            s->nprefetch--;
        pthread_cond_signal(&s->freed);
        pthread_mutex_unlock(&s->lock);
    }
    return c;
}

/*
 * Takes an idle connection (*fresh = false) or opens one (*fresh =
 * true), waiting while PG_MAX_OPEN are lent out. NULL (logged) on
 * failure. Blocks.
 */
static struct pg_conn *conn_get(struct pg_store *s, bool *fresh)
{
    struct pg_conn *c;

    pthread_mutex_lock(&s->lock);
    while (s->idle == NULL && s->nopen >= PG_MAX_OPEN)
        pthread_cond_wait(&s->freed, &s->lock);
    c = idle_take_locked(s);
    if (c == NULL)
        s->nopen++;
    pthread_mutex_unlock(&s->lock);
    *fresh = c == NULL;
    return c != NULL ? c : conn_open_slot(s, false);
}

/*
 * Hands c back. A connection that is not idle and healthy is closed; a
 * dead one also takes every idle connection with it.
 */
static void conn_put(struct pg_store *s, struct pg_conn *c)
{
    struct pg_conn *doomed = NULL;
    bool ok = PQstatus(c->conn) == CONNECTION_OK &&
              PQtransactionStatus(c->conn) == PQTRANS_IDLE;

    pthread_mutex_lock(&s->lock);
    if (ok && s->nidle < PG_MAX_IDLE) {
        c->next = s->idle;
        s->idle = c;
        s->nidle++;
    } else {
        c->next = NULL;
        doomed = c;
        s->nopen--;
        if (PQstatus(c->conn) == CONNECTION_BAD) {
            c->next = s->idle;
            s->nopen -= s->nidle;
            s->idle = NULL;
            s->nidle = 0;
        }
    }
    pthread_cond_broadcast(&s->freed);
    pthread_mutex_unlock(&s->lock);
    while (doomed != NULL) {
        struct pg_conn *next = doomed->next;

        conn_close(doomed);
        doomed = next;
    }
}

/* See storage_pg_internal.h. */
int storage_pg_with_conn(struct pg_store *s, pg_op_fn op, void *arg)
{
    int rc = COFFER_EIO;

    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = false, dead;
        struct pg_conn *c = conn_get(s, &fresh);

        if (c == NULL)
            return COFFER_EIO;
        rc = op(c->conn, arg);
        dead = rc != 0 && PQstatus(c->conn) == CONNECTION_BAD;
        conn_put(s, c);
        if (!dead || fresh)
            break;
        log_warn("storage/pg: connection lost; retrying on a new one");
    }
    return rc;
}

/* ====================================================== operations == */

/*
 * Splits a key into its folder and name: "a/b/c" -> "a/b/", "c";
 * "top" -> "", "top". Returns the folder's length; name = key + it.
 */
static size_t folder_len(const char *key)
{
    const char *slash = strrchr(key, '/');

    return slash == NULL ? 0 : (size_t)(slash - key) + 1;
}

struct get_arg {
    const char *key;
    struct buf *out;
};

static int op_get(PGconn *conn, void *argp)
{
    struct get_arg *a = argp;
    const char *params[1] = {a->key};
    PGresult *res = PQexecPrepared(conn, stmt_name[PS_GET], 1, params, NULL,
                                   NULL, 1);
    int rc = storage_pg_check(conn, res, PGRES_TUPLES_OK, "get", a->key);

    if (rc == 0 && PQntuples(res) == 0)
        rc = COFFER_ENOTFOUND;
    else if (rc == 0)
        rc = buf_append(a->out, PQgetvalue(res, 0, 0),
                        (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
    return rc;
}

static int pg_get(void *ctx, const char *key, struct buf *out)
{
    struct get_arg a = {key, out};

    return storage_pg_with_conn(ctx, op_get, &a);
}

/*
 * The claim writes are fenced with, copied into out (HA only). Returns
 * COFFER_ESTANDBY when there is none: this node does not hold the lock.
 */
static int fence_get(struct pg_store *s, char out[static 128])
{
    pthread_mutex_lock(&s->lock);
    memcpy(out, s->fence, 128);
    pthread_mutex_unlock(&s->lock);
    return out[0] != '\0' ? 0 : COFFER_ESTANDBY;
}

/* See storage_pg_internal.h. */
bool storage_pg_fence_clear(struct pg_store *s, const char *holder)
{
    bool was = false;

    pthread_mutex_lock(&s->lock);
    if (strcmp(s->fence, holder) == 0) {
        s->fence[0] = '\0';
        was = true;
    }
    pthread_mutex_unlock(&s->lock);
    return was;
}

/* The storage refused a write of ours: the lock is no longer ours. */
static void fence_lost(struct pg_store *s, const char *holder)
{
    if (storage_pg_fence_clear(s, holder))
        log_warn("storage/pg: a write was refused: this node no longer "
                 "holds the HA lock");
}

/*
 * Checks a fenced statement's result: one row, count 1. Returns 0,
 * COFFER_ESTANDBY (the lock is not ours) or COFFER_EIO (logged).
 */
static int check_fenced(PGconn *conn, PGresult *res, const char *what,
                        const char *key)
{
    int rc = storage_pg_check(conn, res, PGRES_TUPLES_OK, what, key);

    if (rc == 0 && (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 8 ||
                    memcmp(PQgetvalue(res, 0, 0), "\0\0\0\0\0\0\0\1", 8) != 0))
        rc = COFFER_ESTANDBY;
    return rc;
}

/* fence: the holder to check in the same statement, or NULL for none. */
static int do_put(PGconn *conn, const char *key, const void *value,
                  size_t len, const char *fence)
{
    size_t flen = folder_len(key);
    char *folder = NULL;
    const char *params[6];
    int lengths[6] = {0, 0, 0, 0, 0, 0};
    int formats[6] = {0, 0, 0, 1, 0, 0}; /* the value goes as binary bytea */
    PGresult *res;
    int rc;

    if (len > INT32_MAX)
        return COFFER_ETOOBIG;
    folder = xstrndup(key, flen);
    params[0] = key;
    params[1] = folder;
    params[2] = key + flen;
    params[3] = len > 0 ? value : "";
    lengths[3] = (int)len;
    params[4] = fence;
    params[5] = pg_notify_key_payload(key);
    if (fence != NULL) {
        res = PQexecPrepared(conn, stmt_name[PS_PUT_FENCED], 6, params,
                             lengths, formats, 1);
        rc = check_fenced(conn, res, "put", key);
    } else {
        res = PQexecPrepared(conn, stmt_name[PS_PUT], 4, params, lengths,
                             formats, 1);
        rc = storage_pg_check(conn, res, PGRES_COMMAND_OK, "put", key);
    }
    PQclear(res);
    free(folder);
    return rc;
}

static int do_del(PGconn *conn, const char *key, const char *fence)
{
    const char *params[3] = {key, fence, pg_notify_key_payload(key)};
    PGresult *res;
    int rc;

    if (fence != NULL) {
        res = PQexecPrepared(conn, stmt_name[PS_DEL_FENCED], 3, params, NULL,
                             NULL, 1);
        rc = check_fenced(conn, res, "delete", key);
    } else {
        res = PQexecPrepared(conn, stmt_name[PS_DEL], 1, params, NULL, NULL,
                             1);
        rc = storage_pg_check(conn, res, PGRES_COMMAND_OK, "delete", key);
    }
    PQclear(res);
    return rc;
}

/* Inside a transaction: the fence for every statement that follows. */
static int do_fence(PGconn *conn, const char *fence)
{
    const char *params[1] = {fence};
    PGresult *res = PQexecPrepared(conn, stmt_name[PS_FENCE], 1, params,
                                   NULL, NULL, 1);
    int rc = check_fenced(conn, res, "fence", NULL);

    PQclear(res);
    return rc;
}

struct put_arg {
    const char *key;
    const void *value;
    size_t len;
    const char *fence;
};

static int op_put(PGconn *conn, void *argp)
{
    struct put_arg *a = argp;

    return do_put(conn, a->key, a->value, a->len, a->fence);
}

/*
 * Runs a write op, fenced when HA is on; a refused fence means the lock
 * is gone, and every later write fails at once.
 */
static int with_write_conn(struct pg_store *s, pg_op_fn op, void *arg,
                           const char **fence_slot)
{
    char fence[128];
    int rc;

    if (s->ha_table == NULL)
        return storage_pg_with_conn(s, op, arg);
    rc = fence_get(s, fence);
    if (rc != 0)
        return rc;
    *fence_slot = fence;
    rc = storage_pg_with_conn(s, op, arg);
    *fence_slot = NULL;
    if (rc == COFFER_ESTANDBY)
        fence_lost(s, fence);
    return rc;
}

static int pg_put(void *ctx, const char *key, const void *value, size_t len)
{
    struct put_arg a = {key, value, len, NULL};

    if (key == NULL || (value == NULL && len > 0))
        return COFFER_EINVAL;
    return with_write_conn(ctx, op_put, &a, &a.fence);
}

struct del_arg {
    const char *key;
    const char *fence;
};

static int op_del(PGconn *conn, void *argp)
{
    struct del_arg *a = argp;

    return do_del(conn, a->key, a->fence);
}

static int pg_del(void *ctx, const char *key)
{
    struct del_arg a = {key, NULL};

    if (key == NULL)
        return COFFER_EINVAL;
    return with_write_conn(ctx, op_del, &a, &a.fence);
}

/*
 * The smallest string above every string that starts with prefix, for an
 * index range: drop the trailing characters that are not ASCII (so the
 * result stays valid UTF-8) and increment the last byte. The range may then
 * be wider than the prefix; the queries also test starts_with. NULL (no
 * upper bound) when nothing is left. The caller frees the result.
 */
static char *prefix_successor(const char *prefix)
{
    size_t n = strlen(prefix);
    char *hi;

    while (n > 0 && (unsigned char)prefix[n - 1] >= 0x7f)
        n--;
    if (n == 0)
        return NULL;
    hi = xstrndup(prefix, n);
    hi[n - 1]++;
    return hi;
}

struct list_arg {
    const char *prefix;
    struct strvec *out;
};

static int op_list(PGconn *conn, void *argp)
{
    struct list_arg *a = argp;
    char *folder = xstrndup(a->prefix, folder_len(a->prefix));
    char *hi = prefix_successor(a->prefix);
    const char *params[3] = {folder, a->prefix, hi};
    PGresult *res;
    int rc;

    res = PQexecPrepared(conn, stmt_name[hi != NULL ? PS_LIST : PS_LIST_OPEN],
                         hi != NULL ? 3 : 2, params, NULL, NULL, 1);
    rc = storage_pg_check(conn, res, PGRES_TUPLES_OK, "list", a->prefix);
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        strvec_push(a->out, PQgetvalue(res, i, 0));
    PQclear(res);
    free(hi);
    free(folder);
    return rc;
}

static int pg_list(void *ctx, const char *prefix, struct strvec *out)
{
    struct list_arg a = {prefix, out};
    size_t n0 = out->n;
    int rc = storage_pg_with_conn(ctx, op_list, &a);

    /* A retried list must not leave the first attempt's half behind. */
    while (rc != 0 && out->n > n0)
        free(out->v[--out->n]);
    return rc;
}

/* See storage_pg_internal.h. */
int storage_pg_send_notify(PGconn *conn, const char *payload)
{
    const char *params[1] = {payload};
    PGresult *res = PQexecPrepared(conn, stmt_name[PS_NOTIFY], 1, params,
                                   NULL, NULL, 0);
    int rc = storage_pg_check(conn, res, PGRES_TUPLES_OK, "notify", NULL);

    PQclear(res);
    return rc;
}

struct batch_arg {
    const struct storage_op *ops;
    size_t n;
    const char *fence;
};

static int op_batch(PGconn *conn, void *argp)
{
    struct batch_arg *a = argp;
    int rc = storage_pg_exec(conn, "BEGIN");

    /* One fence for the whole transaction: the row lock lasts to COMMIT. */
    if (rc == 0 && a->fence != NULL)
        rc = do_fence(conn, a->fence);
    for (size_t i = 0; rc == 0 && i < a->n; i++) {
        const struct storage_op *op = &a->ops[i];

        if (op->key == NULL) {
            rc = COFFER_EINVAL;
        } else if (op->kind == STORAGE_OP_PUT) {
            rc = op->value == NULL && op->len > 0
                     ? COFFER_EINVAL
                     : do_put(conn, op->key, op->value, op->len, NULL);
        } else if (op->kind == STORAGE_OP_DELETE) {
            rc = do_del(conn, op->key, NULL);
        } else {
            log_error("storage/pg: batch: op %zu has unknown kind %d", i,
                      (int)op->kind);
            rc = COFFER_EINVAL;
        }
    }
    if (rc == 0 && a->fence != NULL) { /* HA: standbys hear it on COMMIT */
        char *payload = pg_notify_batch_payloads(a->ops, a->n);

        rc = storage_pg_send_notify(conn, payload);
        free(payload);
    }
    if (rc == 0)
        rc = storage_pg_exec(conn, "COMMIT");
    if (rc != 0 && PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) != PQTRANS_IDLE)
        (void)storage_pg_exec(conn, "ROLLBACK");
    return rc;
}

static int pg_batch(void *ctx, const struct storage_op *ops, size_t n)
{
    struct batch_arg a = {ops, n, NULL};

    if (n == 0)
        return 0;
    return with_write_conn(ctx, op_batch, &a, &a.fence);
}

struct page_arg {
    const char *lo;
    const char *prefix;
    const char *hi;
    PGresult *res; /* out: the page */
};

/* Sends a page's query without waiting for it (libpq's async API). */
static int page_send(PGconn *conn, const struct page_arg *a)
{
    const char *params[3] = {a->lo, a->prefix, a->hi};
    enum pg_stmt which = a->hi != NULL ? PS_SCAN : PS_SCAN_OPEN;

    if (PQsendQueryPrepared(conn, stmt_name[which], a->hi != NULL ? 3 : 2,
                            params, NULL, NULL, 1) == 0) {
        storage_pg_log("scan", a->prefix, PQerrorMessage(conn));
        return COFFER_EIO;
    }
    return 0;
}

/* Collects the page page_send asked for into a->res, draining the
 * connection (it is idle again whatever happened). */
static int page_recv(PGconn *conn, struct page_arg *a)
{
    PGresult *res;
    int rc = COFFER_EIO;

    a->res = NULL;
    while ((res = PQgetResult(conn)) != NULL) {
        if (a->res == NULL) {
            a->res = res;
            rc = storage_pg_check(conn, res, PGRES_TUPLES_OK, "scan",
                                  a->prefix);
        } else {
            PQclear(res);
        }
    }
    if (rc != 0) {
        PQclear(a->res);
        a->res = NULL;
    }
    return rc;
}

static int op_page(PGconn *conn, void *argp)
{
    struct page_arg *a = argp;
    int rc = page_send(conn, a);

    return rc == 0 ? page_recv(conn, a) : rc;
}

/*
 * A connection the scan may keep across pages, so that the next page is
 * fetched while the callback works through this one. Taken only if one
 * is idle or may be opened without waiting, and by at most
 * PG_PREFETCH_MAX scans at once, so the callbacks (which may read
 * storage themselves) always find the rest of the pool. NULL: none.
 */
static struct pg_conn *prefetch_get(struct pg_store *s)
{
    struct pg_conn *c = NULL;
    bool open_one = false;

    pthread_mutex_lock(&s->lock);
    if (s->nprefetch < PG_PREFETCH_MAX) {
        c = idle_take_locked(s);
        open_one = c == NULL && s->nopen < PG_MAX_OPEN;
        s->nopen += open_one;
        s->nprefetch += c != NULL || open_one;
    }
    pthread_mutex_unlock(&s->lock);
    return open_one ? conn_open_slot(s, true) : c;
}

static void prefetch_put(struct pg_store *s, struct pg_conn *c)
{
    pthread_mutex_lock(&s->lock);
    s->nprefetch--;
    pthread_mutex_unlock(&s->lock);
    conn_put(s, c);
}

/* Keys above last, for the next page: last || chr(1). Caller frees. */
static char *key_after(const char *last)
{
    size_t n = strlen(last);
    char *lo = xmalloc(n + 2);

    memcpy(lo, last, n);
    lo[n] = '\x01';
    lo[n + 1] = '\0';
    return lo;
}

/*
 * One page: the one prefetched on pf (if any; a failure there falls back
 * to a fetch of its own, which retries on a fresh connection), else
 * fetched now.
 */
static int page_get(struct pg_store *s, struct pg_conn **pf, bool sent,
                    struct page_arg *a)
{
    int rc;

    if (sent) {
        rc = page_recv((*pf)->conn, a);
        if (rc == 0)
            return 0;
        prefetch_put(s, *pf);
        *pf = NULL;
    }
    return storage_pg_with_conn(s, op_page, a);
}

static int pg_scan(void *ctx, const char *prefix, storage_scan_fn fn,
                   void *arg)
{
    struct pg_store *s = ctx;
    struct page_arg a = {NULL, prefix, NULL, NULL};
    struct pg_conn *pf = prefetch_get(s);
    char *hi = prefix_successor(prefix);
    char *lo = xstrdup(prefix);
    bool sent = false;
    int rc = 0, rows = PG_SCAN_PAGE;

    a.hi = hi;
    while (rc == 0 && rows == PG_SCAN_PAGE) {
        a.lo = lo;
        rc = page_get(s, &pf, sent, &a);
        sent = false;
        if (rc != 0)
            break;
        rows = PQntuples(a.res);
        if (rows > 0) {
            free(lo);
            lo = key_after(PQgetvalue(a.res, rows - 1, 0));
        }
        /* The next page is on its way while fn works through this one. */
        if (rows == PG_SCAN_PAGE && pf != NULL) {
            struct page_arg next = {lo, prefix, hi, NULL};

            sent = page_send(pf->conn, &next) == 0;
        }
        for (int i = 0; rc == 0 && i < rows; i++)
            rc = fn(arg, PQgetvalue(a.res, i, 0), PQgetvalue(a.res, i, 1),
                    (size_t)PQgetlength(a.res, i, 1));
        PQclear(a.res);
        a.res = NULL;
    }
    if (sent) { /* stopped early: the page in flight is not wanted */
        a.lo = lo;
        if (page_recv(pf->conn, &a) == 0)
            PQclear(a.res);
    }
    if (pf != NULL)
        prefetch_put(s, pf);
    free(lo);
    free(hi);
    return rc;
}

static void pg_close(void *ctx)
{
    struct pg_store *s = ctx;

    if (s == NULL)
        return;
    COFFER_ASSERT(s->nopen == s->nidle);
    while (s->idle != NULL) {
        struct pg_conn *c = s->idle;

        s->idle = c->next;
        conn_close(c);
    }
    PQfinish(s->ha_conn);
    pg_listener_close(&s->listener);
    pthread_mutex_destroy(&s->ha_mu);
    free(s->ha_table);
    free(s->nodes_table);
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->lock);
    secure_free_str(s->conninfo);
    free(s->table);
    free(s);
}

/* ====================================================== listener == */

/* The listener's connection opener. */
static PGconn *listen_connect(void *arg, struct errbuf *err)
{
    const struct pg_store *s = arg;

    return connect_listen(s->conninfo, err);
}

static const struct storage_backend pg_backend_ha = {
    .name = "postgresql",
    .may_block = true, /* every call is a network round trip */
    .ha = &storage_pg_ha_ops,
    .get = pg_get,
    .put = pg_put,
    .del = pg_del,
    .list = pg_list,
    .batch = pg_batch,
    .scan = pg_scan,
    .close = pg_close,
};

static const struct storage_backend pg_backend = {
    .name = "postgresql",
    .may_block = true, /* every call is a network round trip */
    .get = pg_get,
    .put = pg_put,
    .del = pg_del,
    .list = pg_list,
    .batch = pg_batch,
    .scan = pg_scan,
    .close = pg_close,
};

/* ============================================================ open == */

static bool ident_ok(const char *s, size_t n)
{
    if (n == 0 || n > PG_TABLE_PART_MAX ||
        !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
          s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    return true;
}

/*
 * Validates "table" or "schema.table" (letters, digits and '_', not
 * starting with a digit, at most 48 characters each) and sets *quoted to
 * the double-quoted form and *index to the index's bare name. Both are
 * new strings. COFFER_EINVAL with words in err.
 */
static int table_names(const char *table, char **quoted, char **index,
                       struct errbuf *err)
{
    const char *dot = strchr(table, '.');
    const char *base = dot != NULL ? dot + 1 : table;
    struct buf q, ix;

    if ((dot != NULL && !ident_ok(table, (size_t)(dot - table))) ||
        !ident_ok(base, strlen(base))) {
        errbuf_set(err, "invalid table name \"%.64s\": use letters, digits "
                   "and '_' (not first), at most %d characters, optionally "
                   "schema.table", table, PG_TABLE_PART_MAX);
        return COFFER_EINVAL;
    }
    buf_init(&q, BUF_MAX_DEFAULT);
    buf_init(&ix, BUF_MAX_DEFAULT);
    if (dot != NULL)
        buf_appendf(&q, "\"%.*s\".", (int)(dot - table), table);
    buf_appendf(&q, "\"%s\"", base);
    buf_appendf(&ix, "\"%s_path_idx\"", base);
    *quoted = buf_detach(&q, NULL);
    *index = buf_detach(&ix, NULL);
    return 0;
}

/*
 * Creates the table and index, and the HA lock and nodes tables if
 * ha_quoted is not NULL, if missing, one node at a time.
 */
static int create_table(PGconn *conn, const char *table, const char *quoted,
                        const char *index, const char *ha_quoted,
                        const char *nodes_quoted, struct errbuf *err)
{
    const char *params[1] = {table};
    PGresult *res = NULL;
    struct buf sql;
    int rc = COFFER_EIO;

    buf_init(&sql, BUF_MAX_DEFAULT);
    buf_appendf(&sql,
                "CREATE TABLE IF NOT EXISTS %s ("
                " key text COLLATE \"C\" PRIMARY KEY,"
                " path text COLLATE \"C\" NOT NULL,"
                " name text COLLATE \"C\" NOT NULL,"
                " value bytea NOT NULL);"
                "CREATE INDEX IF NOT EXISTS %s ON %s (path, name)",
                quoted, index, quoted);
    if (ha_quoted != NULL)
        buf_appendf(&sql,
                    ";CREATE TABLE IF NOT EXISTS %s ("
                    " ha_key text COLLATE \"C\" PRIMARY KEY,"
                    " holder text NOT NULL,"
                    " node_id text NOT NULL,"
                    " api_addr text NOT NULL,"
                    " cluster_addr text NOT NULL,"
                    " acquired timestamptz NOT NULL,"
                    " valid_until timestamptz NOT NULL,"
                    " holder_pid integer,"
                    " holder_started timestamptz);"
                    "CREATE TABLE IF NOT EXISTS %s ("
                    " node_id text COLLATE \"C\" PRIMARY KEY,"
                    " hostname text NOT NULL,"
                    " api_addr text NOT NULL,"
                    " cluster_addr text NOT NULL,"
                    " version text NOT NULL,"
                    " last_echo timestamptz NOT NULL)",
                    ha_quoted, nodes_quoted);
    if (storage_pg_exec(conn, "BEGIN") != 0)
        goto out;
    /* Two nodes starting at once would race on IF NOT EXISTS. */
    res = PQexecParams(conn, "SELECT pg_advisory_xact_lock(hashtext($1))", 1,
                       NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        goto out;
    PQclear(res);
    res = PQexec(conn, sql.ptr);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        goto out;
    PQclear(res);
    res = PQexec(conn, "COMMIT");
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        err_pg(err, "create table",
               res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        PQclear(PQexec(conn, "ROLLBACK"));
    }
    PQclear(res);
    buf_release(&sql);
    return rc;
}

/*
 * The quoted nodes table, "<table>_nodes" next to table (already
 * checked: parts of at most 48 characters, so the name fits in 63).
 */
static char *nodes_table_name(const char *table)
{
    const char *dot = strchr(table, '.');
    struct buf b;

    buf_init(&b, BUF_MAX_DEFAULT);
    if (dot != NULL)
        buf_appendf(&b, "\"%.*s\".", (int)(dot - table), table);
    buf_appendf(&b, "\"%s_nodes\"", dot != NULL ? dot + 1 : table);
    return buf_detach(&b, NULL);
}

/* The quoted lock table: ha_table, or "<table>_lock" next to table. */
static int ha_table_name(const char *table, const char *ha_table,
                         char **quoted, struct errbuf *err)
{
    char *index = NULL, *name = NULL;
    int rc;

    if (ha_table == NULL || ha_table[0] == '\0') {
        struct buf b;

        buf_init(&b, BUF_MAX_DEFAULT);
        buf_appendf(&b, "%s_lock", table);
        name = buf_detach(&b, NULL);
        ha_table = name;
    }
    rc = table_names(ha_table, quoted, &index, err);
    free(index);
    free(name);
    return rc;
}

static struct storage *open_store(const char *conninfo, const char *table,
                                  bool ha, const char *ha_table,
                                  struct errbuf *err)
{
    struct storage *st = NULL;
    struct pg_store *s = NULL;
    struct pg_conn *c = NULL;
    char *index = NULL;
    PQconninfoOption *opts = NULL;
    char *perr = NULL;

    if (table == NULL || table[0] == '\0')
        table = "coffer_kv";
    if (conninfo == NULL) {
        errbuf_set(err, "postgresql storage needs a connection_url");
        return NULL;
    }
    /* Parse first: a malformed URL gets libpq's words, not a timeout. */
    opts = PQconninfoParse(conninfo, &perr);
    if (opts == NULL) {
        err_pg(err, "connection_url", perr != NULL ? perr : "out of memory");
        PQfreemem(perr);
        return NULL;
    }
    PQconninfoFree(opts);
    s = xcalloc(1, sizeof(*s));
    if (table_names(table, &s->table, &index, err) != 0)
        goto fail;
    if (ha && ha_table_name(table, ha_table, &s->ha_table, err) != 0)
        goto fail;
    if (ha) {
        s->nodes_table = nodes_table_name(table);
        pg_notify_channel_name(table, s->channel);
        s->listener.channel = s->channel;
        s->listener.connect = listen_connect;
        s->listener.connect_arg = s;
    }
    s->conninfo = xstrdup(conninfo);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->freed, NULL);
    pthread_mutex_init(&s->ha_mu, NULL);
    /* The table must exist before conn_open prepares statements on it. */
    c = xcalloc(1, sizeof(*c));
    c->conn = storage_pg_connect(conninfo, err);
    if (c->conn == NULL)
        goto fail;
    if (create_table(c->conn, table, s->table, index, s->ha_table,
                     s->nodes_table, err) != 0)
        goto fail;
    conn_close(c);
    c = conn_open(s, err);
    if (c == NULL)
        goto fail;
    s->idle = c;
    s->nidle = 1;
    s->nopen = 1;
    free(index);
    st = xcalloc(1, sizeof(*st));
    st->backend = ha ? &pg_backend_ha : &pg_backend;
    st->ctx = s;
    return st;
fail:
    conn_close(c);
    free(index);
    if (s->conninfo != NULL) {
        pthread_cond_destroy(&s->freed);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->ha_mu);
    }
    secure_free_str(s->conninfo);
    free(s->table);
    free(s->ha_table);
    free(s->nodes_table);
    free(s);
    return NULL;
}

struct storage *storage_pg_open(const char *conninfo, const char *table,
                                struct errbuf *err)
{
    return open_store(conninfo, table, false, NULL, err);
}

struct storage *storage_pg_open_ha(const char *conninfo, const char *table,
                                   const char *ha_table, struct errbuf *err)
{
    return open_store(conninfo, table, true, ha_table, err);
}
