/*
 * storage_pg.c - the postgresql backend: one table, reached with libpq.
 *
 * Owns: a small pool of libpq connections (not db_pg.c's pools, which
 * belong to the database secret engine), the table it creates if missing,
 * and the SQL behind the storage vtable. Values arrive already sealed by
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
 * High availability (later): the lock will live in a sibling table
 * "<table>_lock" (key text PRIMARY KEY, holder text, expires timestamptz,
 * like Vault's vault_ha_locks) created next to this one, or in a session
 * advisory lock keyed on the table's name. Table names are limited to 48
 * characters so that suffix and the index's always fit in 63.
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
 * once, and the callback runs with no connection held.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "storage.h"

#define PG_MAX_OPEN 16
#define PG_MAX_IDLE 8
#define PG_SCAN_PAGE 500
#define PG_TABLE_PART_MAX 48
#define PG_TEXTOID 25
#define PG_BYTEAOID 17

struct pg_conn {
    PGconn *conn;
    struct pg_conn *next;
};

struct pg_store {
    char *conninfo;   /* may hold a password: wiped on close */
    char *table;      /* quoted, ready for SQL: "public"."coffer_kv" */
    pthread_mutex_t lock; /* guards idle, nidle, nopen */
    pthread_cond_t freed;
    struct pg_conn *idle;
    size_t nidle;
    size_t nopen;
};

/* ============================================================= SQL == */

enum pg_stmt {
    PS_GET = 0,
    PS_PUT,
    PS_DEL,
    PS_LIST,      /* $1 folder, $2 prefix, $3 upper bound */
    PS_LIST_OPEN, /* no upper bound */
    PS_SCAN,      /* $1 lower bound, $2 prefix, $3 upper bound */
    PS_SCAN_OPEN,
    PS__COUNT
};

static const char *const stmt_name[PS__COUNT] = {
    "coffer_get", "coffer_put", "coffer_del", "coffer_list",
    "coffer_list_open", "coffer_scan", "coffer_scan_open",
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
};

static const int stmt_nparams[PS__COUNT] = {
    [PS_GET] = 1, [PS_PUT] = 4, [PS_DEL] = 1, [PS_LIST] = 3,
    [PS_LIST_OPEN] = 2, [PS_SCAN] = 3, [PS_SCAN_OPEN] = 2,
};

/* Builds a statement's text for this table; the caller frees it. */
static char *stmt_text(const struct pg_store *s, enum pg_stmt which)
{
    struct buf b;

    buf_init(&b, BUF_MAX_DEFAULT);
    COFFER_ASSERT(buf_appendf(&b, stmt_fmt[which], s->table) == 0);
    return buf_detach(&b, NULL);
}

/* libpq messages end in a newline; log lines do not. */
static void log_pg(const char *what, const char *key, const char *msg)
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
static int check_res(PGconn *conn, PGresult *res, ExecStatusType want,
                     const char *what, const char *key)
{
    if (res != NULL && PQresultStatus(res) == want)
        return 0;
    log_pg(what, key, res != NULL ? PQresultErrorMessage(res)
                                  : PQerrorMessage(conn));
    return COFFER_EIO;
}

/* Runs a command with no parameters and no rows. */
static int exec_cmd(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int rc = check_res(conn, res, PGRES_COMMAND_OK, sql, NULL);

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
 * Opens a bare connection. conninfo goes last, so its own settings win
 * over these defaults. NULL with words in err.
 */
static PGconn *connect_raw(const char *conninfo, struct errbuf *err)
{
    static const char *const keys[] = {"application_name", "connect_timeout",
                                       "dbname", NULL};
    const char *vals[] = {"coffer", "10", conninfo, NULL};
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

    c->conn = connect_raw(s->conninfo, err);
    if (c->conn == NULL)
        goto fail;
    for (size_t i = 0; i < PS__COUNT; i++) {
        Oid types[4] = {PG_TEXTOID, PG_TEXTOID, PG_TEXTOID, PG_BYTEAOID};
        char *sql = stmt_text(s, (enum pg_stmt)i);
        PGresult *res = PQprepare(c->conn, stmt_name[i], sql,
                                  stmt_nparams[i], types);
        bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;

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

/*
 * Takes an idle connection (*fresh = false) or opens one (*fresh =
 * true), waiting while PG_MAX_OPEN are lent out. NULL (logged) on
 * failure. Blocks.
 */
static struct pg_conn *conn_get(struct pg_store *s, bool *fresh)
{
    struct pg_conn *c = NULL;
    struct errbuf err;

    pthread_mutex_lock(&s->lock);
    while (s->idle == NULL && s->nopen >= PG_MAX_OPEN)
        pthread_cond_wait(&s->freed, &s->lock);
    if (s->idle != NULL) {
        c = s->idle;
        s->idle = c->next;
        s->nidle--;
    } else {
        s->nopen++;
    }
    pthread_mutex_unlock(&s->lock);
    *fresh = c == NULL;
    if (c != NULL)
        return c;
    c = conn_open(s, &err);
    if (c == NULL) {
        log_pg("connect", NULL, err.msg);
        pthread_mutex_lock(&s->lock);
        s->nopen--;
        pthread_cond_signal(&s->freed);
        pthread_mutex_unlock(&s->lock);
    }
    return c;
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

typedef int (*pg_op_fn)(PGconn *conn, void *arg);

/*
 * Runs op on a pooled connection. If the connection turns out dead and
 * came from the pool, runs it once more on a fresh one.
 */
static int with_conn(struct pg_store *s, pg_op_fn op, void *arg)
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
    int rc = check_res(conn, res, PGRES_TUPLES_OK, "get", a->key);

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

    return with_conn(ctx, op_get, &a);
}

static int do_put(PGconn *conn, const char *key, const void *value,
                  size_t len)
{
    size_t flen = folder_len(key);
    char *folder = NULL;
    const char *params[4];
    int lengths[4] = {0, 0, 0, 0};
    int formats[4] = {0, 0, 0, 1}; /* the value goes as binary bytea */
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
    res = PQexecPrepared(conn, stmt_name[PS_PUT], 4, params, lengths,
                         formats, 1);
    rc = check_res(conn, res, PGRES_COMMAND_OK, "put", key);
    PQclear(res);
    free(folder);
    return rc;
}

static int do_del(PGconn *conn, const char *key)
{
    const char *params[1] = {key};
    PGresult *res = PQexecPrepared(conn, stmt_name[PS_DEL], 1, params, NULL,
                                   NULL, 1);
    int rc = check_res(conn, res, PGRES_COMMAND_OK, "delete", key);

    PQclear(res);
    return rc;
}

struct put_arg {
    const char *key;
    const void *value;
    size_t len;
};

static int op_put(PGconn *conn, void *argp)
{
    struct put_arg *a = argp;

    return do_put(conn, a->key, a->value, a->len);
}

static int pg_put(void *ctx, const char *key, const void *value, size_t len)
{
    struct put_arg a = {key, value, len};

    if (key == NULL || (value == NULL && len > 0))
        return COFFER_EINVAL;
    return with_conn(ctx, op_put, &a);
}

static int op_del(PGconn *conn, void *argp)
{
    return do_del(conn, argp);
}

static int pg_del(void *ctx, const char *key)
{
    if (key == NULL)
        return COFFER_EINVAL;
    return with_conn(ctx, op_del, (void *)key);
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
    rc = check_res(conn, res, PGRES_TUPLES_OK, "list", a->prefix);
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
    int rc = with_conn(ctx, op_list, &a);

    /* A retried list must not leave the first attempt's half behind. */
    while (rc != 0 && out->n > n0)
        free(out->v[--out->n]);
    return rc;
}

struct batch_arg {
    const struct storage_op *ops;
    size_t n;
};

static int op_batch(PGconn *conn, void *argp)
{
    struct batch_arg *a = argp;
    int rc = exec_cmd(conn, "BEGIN");

    for (size_t i = 0; rc == 0 && i < a->n; i++) {
        const struct storage_op *op = &a->ops[i];

        if (op->key == NULL) {
            rc = COFFER_EINVAL;
        } else if (op->kind == STORAGE_OP_PUT) {
            rc = op->value == NULL && op->len > 0
                     ? COFFER_EINVAL
                     : do_put(conn, op->key, op->value, op->len);
        } else if (op->kind == STORAGE_OP_DELETE) {
            rc = do_del(conn, op->key);
        } else {
            log_error("storage/pg: batch: op %zu has unknown kind %d", i,
                      (int)op->kind);
            rc = COFFER_EINVAL;
        }
    }
    if (rc == 0)
        rc = exec_cmd(conn, "COMMIT");
    if (rc != 0 && PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) != PQTRANS_IDLE)
        (void)exec_cmd(conn, "ROLLBACK");
    return rc;
}

static int pg_batch(void *ctx, const struct storage_op *ops, size_t n)
{
    struct batch_arg a = {ops, n};

    if (n == 0)
        return 0;
    return with_conn(ctx, op_batch, &a);
}

struct page_arg {
    const char *lo;
    const char *prefix;
    const char *hi;
    PGresult *res; /* out: the page */
};

static int op_page(PGconn *conn, void *argp)
{
    struct page_arg *a = argp;
    const char *params[3] = {a->lo, a->prefix, a->hi};
    int rc;

    a->res = PQexecPrepared(conn,
                            stmt_name[a->hi != NULL ? PS_SCAN : PS_SCAN_OPEN],
                            a->hi != NULL ? 3 : 2, params, NULL, NULL, 1);
    rc = check_res(conn, a->res, PGRES_TUPLES_OK, "scan", a->prefix);
    if (rc != 0) {
        PQclear(a->res);
        a->res = NULL;
    }
    return rc;
}

static int pg_scan(void *ctx, const char *prefix, storage_scan_fn fn,
                   void *arg)
{
    struct page_arg a = {NULL, prefix, NULL, NULL};
    char *hi = prefix_successor(prefix);
    char *lo = xstrdup(prefix);
    int rc = 0, rows = PG_SCAN_PAGE;

    a.hi = hi;
    while (rc == 0 && rows == PG_SCAN_PAGE) {
        a.lo = lo;
        rc = with_conn(ctx, op_page, &a);
        if (rc != 0)
            break;
        rows = PQntuples(a.res);
        for (int i = 0; rc == 0 && i < rows; i++)
            rc = fn(arg, PQgetvalue(a.res, i, 0), PQgetvalue(a.res, i, 1),
                    (size_t)PQgetlength(a.res, i, 1));
        if (rows > 0) {
            /* Next page: keys above the last, i.e. >= last || chr(1). */
            const char *last = PQgetvalue(a.res, rows - 1, 0);
            size_t n = strlen(last);

            free(lo);
            lo = xmalloc(n + 2);
            memcpy(lo, last, n);
            lo[n] = '\x01';
            lo[n + 1] = '\0';
        }
        PQclear(a.res);
        a.res = NULL;
    }
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
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->lock);
    secure_free_str(s->conninfo);
    free(s->table);
    free(s);
}

static const struct storage_backend pg_backend = {
    .name = "postgresql",
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

/* Creates the table and index if missing, one node at a time. */
static int create_table(PGconn *conn, const char *table, const char *quoted,
                        const char *index, struct errbuf *err)
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
    if (exec_cmd(conn, "BEGIN") != 0)
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

struct storage *storage_pg_open(const char *conninfo, const char *table,
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
    s->conninfo = xstrdup(conninfo);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->freed, NULL);
    /* The table must exist before conn_open prepares statements on it. */
    c = xcalloc(1, sizeof(*c));
    c->conn = connect_raw(conninfo, err);
    if (c->conn == NULL)
        goto fail;
    if (create_table(c->conn, table, s->table, index, err) != 0)
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
    st->backend = &pg_backend;
    st->ctx = s;
    return st;
fail:
    conn_close(c);
    free(index);
    if (s->conninfo != NULL) {
        pthread_cond_destroy(&s->freed);
        pthread_mutex_destroy(&s->lock);
    }
    secure_free_str(s->conninfo);
    free(s->table);
    free(s);
    return NULL;
}
