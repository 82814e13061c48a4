/*
 * storage_pg_ha.c - the postgresql backend's HA ops: the lock row (taken
 * FOR UPDATE, renewed, released; the fence every write of storage_pg.c
 * checks), the node registry for sys/ha-status, and the change channel's
 * listen and sync calls. The tables and the failure modes are described
 * at the top of storage_pg.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "storage.h"
#include "storage_pg_internal.h"
#include "storage_pg_notify.h"

/*
 * The lock's connection, (re)opened on demand, with timeouts so that a
 * takeover waiting on a stuck writer, or a dead server, cannot hold the
 * HA thread for long. Caller holds ha_mu. NULL (logged) on failure.
 */
static PGconn *ha_conn(struct pg_store *s)
{
    struct errbuf err;

    if (s->ha_conn != NULL && PQstatus(s->ha_conn) == CONNECTION_OK)
        return s->ha_conn;
    PQfinish(s->ha_conn);
    s->ha_conn = storage_pg_connect(s->conninfo, &err);
    if (s->ha_conn == NULL) {
        storage_pg_log("HA lock: connect", NULL, err.msg);
        return NULL;
    }
    if (storage_pg_exec(s->ha_conn, "SET lock_timeout = '2s'") != 0 ||
        storage_pg_exec(s->ha_conn, "SET statement_timeout = '4s'") != 0) {
        PQfinish(s->ha_conn);
        s->ha_conn = NULL;
    }
    return s->ha_conn;
}

static void fence_set(struct pg_store *s, const char *holder)
{
    pthread_mutex_lock(&s->lock);
    snprintf(s->fence, sizeof(s->fence), "%s", holder);
    pthread_mutex_unlock(&s->lock);
}

/* Runs one statement with text parameters; the caller clears the result. */
static PGresult *ha_exec(PGconn *conn, const char *fmt, const char *table,
                         int n, const char *const *params)
{
    struct buf sql;
    PGresult *res;

    buf_init(&sql, BUF_MAX_DEFAULT);
    COFFER_ASSERT(buf_appendf(&sql, fmt, table) == 0);
    res = PQexecParams(conn, sql.ptr, n, NULL, params, NULL, NULL, 0);
    buf_release(&sql);
    return res;
}

/* The lock connection's own session, as the lock row records it. */
#define HA_SESSION_PID "pg_backend_pid()"
#define HA_SESSION_START                                                     \
    "(SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())"

/*
 * In one transaction: lock the row FOR UPDATE (which waits for fenced
 * writes in flight), then renew it if claim holds it and it has not
 * expired, or take it if it is missing, expired, or held by a node whose
 * lock session is gone.
 *
 * The row records the holder's lock session (backend pid and start
 * time). When a holder's process dies, PostgreSQL ends its sessions at
 * once, so a contender that finds the recorded session missing from
 * pg_stat_activity knows the holder is gone and need not wait for
 * valid_until; a paused holder keeps its session, and only expiry frees
 * its row. A claim whose own lock expired does not get it back: its node
 * may have missed writes meanwhile, so it must step down and come back
 * as a new tenure.
 */
static int ha_acquire_tx(PGconn *conn, struct pg_store *s,
                         const struct storage_ha_claim *c, int ttl_ms,
                         bool *held)
{
    char ttl[32];
    const char *p[5] = {c->holder, c->node_id, c->api_addr,
                        c->cluster_addr != NULL ? c->cluster_addr : "", ttl};
    const char *sql = NULL;
    PGresult *res;
    bool row, mine, live, gone;
    int rc;

    snprintf(ttl, sizeof(ttl), "%d milliseconds", ttl_ms);
    rc = storage_pg_exec(conn, "BEGIN");
    if (rc != 0)
        return rc;
    res = ha_exec(conn,
                  "SELECT l.holder = $1, l.valid_until > now(), NOT EXISTS "
                  "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = "
                  "l.holder_pid AND a.backend_start = l.holder_started) "
                  "FROM %s l WHERE l.ha_key = 'leader' FOR UPDATE OF l",
                  s->ha_table, 1, p);
    rc = storage_pg_check(conn, res, PGRES_TUPLES_OK, "HA lock", NULL);
    if (rc != 0)
        goto out;
    row = PQntuples(res) == 1;
    mine = row && PQgetvalue(res, 0, 0)[0] == 't';
    live = row && PQgetvalue(res, 0, 1)[0] == 't';
    gone = row && PQgetvalue(res, 0, 2)[0] == 't';
    PQclear(res);
    res = NULL;
    if (!row)
        sql = "INSERT INTO %s (ha_key, holder, node_id, api_addr, "
              "cluster_addr, acquired, valid_until, holder_pid, "
              "holder_started) VALUES ('leader', $1, $2, $3, $4, now(), "
              "now() + $5::interval, " HA_SESSION_PID ", " HA_SESSION_START
              ") ON CONFLICT (ha_key) DO NOTHING";
    else if (mine && live)
        sql = "UPDATE %s SET valid_until = now() + $5::interval, "
              "holder_pid = " HA_SESSION_PID ", holder_started = "
              HA_SESSION_START " WHERE ha_key = 'leader' AND holder = $1 "
              "AND $2::text IS NOT NULL AND $3::text IS NOT NULL "
              "AND $4::text IS NOT NULL";
    else if (!mine && (!live || gone))
        sql = "UPDATE %s SET holder = $1, node_id = $2, api_addr = $3, "
              "cluster_addr = $4, acquired = now(), "
              "valid_until = now() + $5::interval, holder_pid = "
              HA_SESSION_PID ", holder_started = " HA_SESSION_START
              " WHERE ha_key = 'leader'";
    if (sql != NULL) {
        res = ha_exec(conn, sql, s->ha_table, 5, p);
        rc = storage_pg_check(conn, res, PGRES_COMMAND_OK, "HA lock", NULL);
        if (rc == 0)
            *held = strcmp(PQcmdTuples(res), "1") == 0;
    }
    if (rc == 0)
        rc = storage_pg_exec(conn, "COMMIT");
out:
    PQclear(res);
    if (rc != 0) {
        *held = false;
        if (PQtransactionStatus(conn) != PQTRANS_IDLE)
            (void)storage_pg_exec(conn, "ROLLBACK");
    }
    return rc;
}

static int pg_ha_acquire(void *ctx, const struct storage_ha_claim *claim,
                         int ttl_ms, bool *held)
{
    struct pg_store *s = ctx;
    PGconn *conn;
    int rc = COFFER_EIO;

    *held = false;
    if (claim->holder == NULL || strlen(claim->holder) >= sizeof(s->fence))
        return COFFER_EINVAL;
    pthread_mutex_lock(&s->ha_mu);
    conn = ha_conn(s);
    if (conn != NULL)
        rc = ha_acquire_tx(conn, s, claim, ttl_ms, held);
    pthread_mutex_unlock(&s->ha_mu);
    /* Not known to hold it = not allowed to write. */
    if (rc == 0 && *held)
        fence_set(s, claim->holder);
    else
        (void)storage_pg_fence_clear(s, claim->holder);
    return rc;
}

static int pg_ha_release(void *ctx, const char *holder)
{
    struct pg_store *s = ctx;
    const char *params[1] = {holder};
    PGconn *conn;
    PGresult *res = NULL;
    int rc = COFFER_EIO;

    /* Writes stop first: a release must not race a write of ours. */
    (void)storage_pg_fence_clear(s, holder);
    pthread_mutex_lock(&s->ha_mu);
    conn = ha_conn(s);
    if (conn != NULL) {
        res = ha_exec(conn,
                      "DELETE FROM %s WHERE ha_key = 'leader' AND holder = $1",
                      s->ha_table, 1, params);
        rc = storage_pg_check(conn, res, PGRES_COMMAND_OK, "HA release", NULL);
    }
    PQclear(res);
    pthread_mutex_unlock(&s->ha_mu);
    return rc;
}

static void copy_col(char *dst, size_t n, const PGresult *res, int col)
{
    snprintf(dst, n, "%s", PQgetvalue(res, 0, col));
}

static int pg_ha_leader(void *ctx, struct storage_ha_leader *out)
{
    struct pg_store *s = ctx;
    PGconn *conn;
    PGresult *res = NULL;
    int rc = COFFER_EIO;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->ha_mu);
    conn = ha_conn(s);
    if (conn != NULL) {
        res = ha_exec(conn,
                      "SELECT node_id, holder, api_addr, cluster_addr, "
                      "extract(epoch FROM acquired)::float8, "
                      "valid_until > now() FROM %s WHERE ha_key = 'leader'",
                      s->ha_table, 0, NULL);
        rc = storage_pg_check(conn, res, PGRES_TUPLES_OK, "HA leader", NULL);
    }
    if (rc == 0 && PQntuples(res) == 1) {
        copy_col(out->node_id, sizeof(out->node_id), res, 0);
        copy_col(out->holder, sizeof(out->holder), res, 1);
        copy_col(out->api_addr, sizeof(out->api_addr), res, 2);
        copy_col(out->cluster_addr, sizeof(out->cluster_addr), res, 3);
        out->acquired_unix = strtod(PQgetvalue(res, 0, 4), NULL);
        out->held = PQgetvalue(res, 0, 5)[0] == 't';
    }
    PQclear(res);
    pthread_mutex_unlock(&s->ha_mu);
    return rc;
}

/* Formats fmt with %1$s the nodes table and %2$s the lock table. */
static PGresult *nodes_exec(PGconn *conn, const struct pg_store *s,
                            const char *fmt, int n, const char *const *params)
{
    struct buf sql;
    PGresult *res;

    buf_init(&sql, BUF_MAX_DEFAULT);
    COFFER_ASSERT(buf_appendf(&sql, fmt, s->nodes_table, s->ha_table) == 0);
    res = PQexecParams(conn, sql.ptr, n, NULL, params, NULL, NULL, 0);
    buf_release(&sql);
    return res;
}

/* Upserts self's row, then forgets rows silent for forget_ms: two
 * statements on the lock connection, neither fenced. */
static int pg_ha_echo(void *ctx, const struct storage_ha_node *self,
                      int forget_ms)
{
    struct pg_store *s = ctx;
    char forget[32];
    const char *p[5] = {self->node_id, self->hostname, self->api_addr,
                        self->cluster_addr, self->version};
    const char *fp[1] = {forget};
    PGconn *conn;
    PGresult *res = NULL;
    int rc = COFFER_EIO;

    snprintf(forget, sizeof(forget), "%d milliseconds", forget_ms);
    pthread_mutex_lock(&s->ha_mu);
    conn = ha_conn(s);
    if (conn != NULL) {
        res = nodes_exec(conn, s,
                         "INSERT INTO %1$s (node_id, hostname, api_addr, "
                         "cluster_addr, version, last_echo) VALUES ($1, $2, "
                         "$3, $4, $5, now()) ON CONFLICT (node_id) DO UPDATE "
                         "SET hostname = $2, api_addr = $3, cluster_addr = "
                         "$4, version = $5, last_echo = now()",
                         5, p);
        rc = storage_pg_check(conn, res, PGRES_COMMAND_OK, "HA echo", NULL);
        PQclear(res);
        res = NULL;
    }
    if (rc == 0) {
        res = nodes_exec(conn, s,
                         "DELETE FROM %1$s WHERE last_echo < now() - "
                         "$1::interval",
                         1, fp);
        rc = storage_pg_check(conn, res, PGRES_COMMAND_OK, "HA forget", NULL);
    }
    PQclear(res);
    pthread_mutex_unlock(&s->ha_mu);
    return rc;
}

static int pg_ha_leave(void *ctx, const char *node_id)
{
    struct pg_store *s = ctx;
    const char *p[1] = {node_id};
    PGconn *conn;
    PGresult *res = NULL;
    int rc = COFFER_EIO;

    pthread_mutex_lock(&s->ha_mu);
    conn = ha_conn(s);
    if (conn != NULL) {
        res = nodes_exec(conn, s, "DELETE FROM %1$s WHERE node_id = $1", 1,
                         p);
        rc = storage_pg_check(conn, res, PGRES_COMMAND_OK, "HA leave", NULL);
    }
    PQclear(res);
    pthread_mutex_unlock(&s->ha_mu);
    return rc;
}

struct nodes_arg {
    const struct pg_store *s;
    const char *stale;
    struct storage_ha_node *out;
    size_t n;
};

/* A pool connection: listing is a plain read, and must not queue behind
 * the lock thread's connection. */
static int op_nodes(PGconn *conn, void *arg)
{
    struct nodes_arg *a = arg;
    const char *p[1] = {a->stale};
    PGresult *res;
    int rc;

    res = nodes_exec(conn, a->s,
                     "SELECT n.node_id, n.hostname, n.api_addr, "
                     "n.cluster_addr, n.version, "
                     "extract(epoch FROM n.last_echo)::float8, "
                     "EXISTS (SELECT 1 FROM %2$s l WHERE l.ha_key = 'leader' "
                     "AND l.node_id = n.node_id AND l.valid_until > now()) "
                     "AS active FROM %1$s n WHERE n.last_echo >= now() - "
                     "$1::interval ORDER BY active DESC, n.api_addr, "
                     "n.node_id LIMIT 1000",
                     1, p);
    rc = storage_pg_check(conn, res, PGRES_TUPLES_OK, "HA nodes", NULL);
    if (rc == 0) {
        a->n = (size_t)PQntuples(res);
        a->out = xcalloc(a->n > 0 ? a->n : 1, sizeof(*a->out));
        for (int i = 0; i < (int)a->n; i++) {
            struct storage_ha_node *d = &a->out[i];

            snprintf(d->node_id, sizeof(d->node_id), "%s",
                     PQgetvalue(res, i, 0));
            snprintf(d->hostname, sizeof(d->hostname), "%s",
                     PQgetvalue(res, i, 1));
            snprintf(d->api_addr, sizeof(d->api_addr), "%s",
                     PQgetvalue(res, i, 2));
            snprintf(d->cluster_addr, sizeof(d->cluster_addr), "%s",
                     PQgetvalue(res, i, 3));
            snprintf(d->version, sizeof(d->version), "%s",
                     PQgetvalue(res, i, 4));
            d->last_echo_unix = strtod(PQgetvalue(res, i, 5), NULL);
            d->active = PQgetvalue(res, i, 6)[0] == 't';
        }
    }
    PQclear(res);
    return rc;
}

static int pg_ha_nodes(void *ctx, int stale_ms, struct storage_ha_node **out,
                       size_t *n)
{
    char stale[32];
    struct nodes_arg a = {ctx, stale, NULL, 0};
    int rc;

    snprintf(stale, sizeof(stale), "%d milliseconds", stale_ms);
    rc = storage_pg_with_conn(ctx, op_nodes, &a);
    if (rc != 0) {
        free(a.out);
        a.out = NULL;
        a.n = 0;
    }
    *out = a.out;
    *n = a.n;
    return rc;
}

static int pg_ha_listen(void *ctx, int timeout_ms, storage_change_fn fn,
                        void *arg)
{
    struct pg_store *s = ctx;

    return pg_listener_poll(&s->listener, timeout_ms, fn, arg);
}

static int op_sync_post(PGconn *conn, void *arg)
{
    return storage_pg_send_notify(conn, arg);
}

static int pg_ha_sync_post(void *ctx, const char *marker)
{
    char *payload = pg_notify_sync_payload(marker);
    int rc = COFFER_EINVAL;

    if (payload != NULL)
        rc = storage_pg_with_conn(ctx, op_sync_post, payload);
    free(payload);
    return rc;
}

const struct storage_ha_ops storage_pg_ha_ops = {
    .acquire = pg_ha_acquire,
    .release = pg_ha_release,
    .leader = pg_ha_leader,
    .echo = pg_ha_echo,
    .leave = pg_ha_leave,
    .nodes = pg_ha_nodes,
    .listen = pg_ha_listen,
    .sync_post = pg_ha_sync_post,
};
