/*
 * test_db_pg.c - the PostgreSQL driver against a real, scratch PostgreSQL.
 *
 * No mocks: the test creates its own cluster (pg_scratch.h: initdb into a
 * mkdtemp dir, SCRAM password auth, a free TCP port on 127.0.0.1 and a
 * unix socket in the same dir), runs every case against it and removes it
 * at the end, through a watchdog even if this process crashes.
 */
#include "../../src/db_pg.c"

#include <stdatomic.h>

#include "harness.h"
#include "pg_scratch.h"

/* ========================================================= helpers == */

static struct db_pool_config config_of(const char *conninfo)
{
    struct db_pool_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.conninfo = conninfo;
    cfg.connect_timeout = 5;
    return cfg;
}

/* Configures key with the good TCP URL and extra settings. */
static int configure_main(const char *key, int max_open, double timeout)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;
    int rc;

    tcp_url(url, sizeof(url), PG_PASSWORD);
    cfg = config_of(url);
    cfg.max_open = max_open;
    if (timeout > 0)
        cfg.connect_timeout = timeout;
    rc = db_pool_configure(key, &cfg, false, &err);
    if (rc != 0)
        fprintf(stdout, "  configure %s: %s\n", key, err.message);
    return rc;
}

/* Runs sql on c and returns cell (0,0) as a new string ("" if none). */
static char *scalar(struct db_conn *c, const char *sql)
{
    struct db_result res;
    struct db_error err;
    char *out = NULL;

    if (db_exec(c, sql, 0, NULL, &res, &err) != 0) {
        fprintf(stdout, "  %s: %s\n", sql, err.message);
        return xstrdup("");
    }
    if (res.nrows > 0 && res.ncols > 0 && res.cells[0] != NULL)
        out = xstrdup(res.cells[0]);
    db_result_release(&res);
    return out != NULL ? out : xstrdup("");
}

static bool exec_ok(struct db_conn *c, const char *sql)
{
    struct db_error err;

    if (db_exec(c, sql, 0, NULL, NULL, &err) == 0)
        return true;
    fprintf(stdout, "  %s: %s\n", sql, err.message);
    return false;
}

static struct dbpool *peek_pool(const char *key)
{
    return dbpool_find(&pg_ops, key);
}

/* ================================================ configure/verify == */

TEST(configure_verify_good)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;
    struct dbpool *p;

    tcp_url(url, sizeof(url), PG_PASSWORD);
    cfg = config_of(url);
    CHECK_EQ_INT(db_pool_configure("verify/good", &cfg, true, &err), 0);
    CHECK_EQ_INT(err.klass, DB_OK);
    CHECK(db_pool_exists("verify/good"));
    p = peek_pool("verify/good");
    CHECK(p != NULL);
    if (p != NULL) {
        /* The verified connection is kept, and defaults are filled. */
        CHECK_EQ_INT(p->nidle, 1);
        CHECK_EQ_INT(p->max_open, 4);
        CHECK_EQ_INT(p->max_idle, 4);
    }
    db_pool_remove("verify/good");
    CHECK(!db_pool_exists("verify/good"));
    db_pool_remove("verify/good"); /* missing is fine */
}

TEST(configure_verify_bad_password)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;

    tcp_url(url, sizeof(url), "Wr0ng-s3cret");
    cfg = config_of(url);
    CHECK(db_pool_configure("verify/badpw", &cfg, true, &err) != 0);
    CHECK_EQ_INT(err.klass, DB_ERR_AUTH);
    CHECK_STREQ(err.sqlstate, "28P01");
    CHECK(strstr(err.message, "password authentication failed") != NULL);
    CHECK(strstr(err.message, "Wr0ng-s3cret") == NULL);
    CHECK(strchr(err.message, '\n') == NULL);
    CHECK(!db_pool_exists("verify/badpw"));
}

TEST(configure_verify_no_database)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;

    snprintf(url, sizeof(url),
             "postgresql://postgres:%s@127.0.0.1:%d/nosuchdb?sslmode=disable",
             PG_PASSWORD, pg.port);
    cfg = config_of(url);
    CHECK(db_pool_configure("verify/nodb", &cfg, true, &err) != 0);
    CHECK_EQ_INT(err.klass, DB_ERR_AUTH);
    CHECK_STREQ(err.sqlstate, "3D000");
    CHECK(strstr(err.message, PG_PASSWORD) == NULL);
}

TEST(configure_verify_unreachable)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;
    double t0 = time_mono();

    snprintf(url, sizeof(url),
             "postgresql://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable",
             PG_PASSWORD, free_port());
    cfg = config_of(url);
    CHECK(db_pool_configure("verify/down", &cfg, true, &err) != 0);
    CHECK_EQ_INT(err.klass, DB_ERR_UNREACHABLE);
    CHECK_STREQ(err.sqlstate, "");
    CHECK(strstr(err.message, "127.0.0.1") != NULL);
    CHECK(strstr(err.message, PG_PASSWORD) == NULL);
    CHECK(time_mono() - t0 < 5);
    CHECK(!db_pool_exists("verify/down"));
    /* Without verify the pool is created; using it fails the same way. */
    CHECK_EQ_INT(db_pool_configure("verify/down", &cfg, false, &err), 0);
    CHECK(db_acquire("verify/down", &err) == NULL);
    CHECK_EQ_INT(err.klass, DB_ERR_UNREACHABLE);
    CHECK_EQ_INT(peek_pool("verify/down")->nopen, 0); /* slot given back */
    db_pool_remove("verify/down");
}

TEST(configure_sslmode_passed_through)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;

    /* The scratch server has no SSL: require must fail, not be ignored. */
    snprintf(url, sizeof(url),
             "postgresql://postgres:%s@127.0.0.1:%d/postgres?sslmode=require",
             PG_PASSWORD, pg.port);
    cfg = config_of(url);
    CHECK(db_pool_configure("verify/ssl", &cfg, true, &err) != 0);
    CHECK_EQ_INT(err.klass, DB_ERR_UNREACHABLE);
    CHECK(strstr(err.message, "SSL") != NULL);
}

/* Malformed strings fail at configure time, and never echo the password. */
TEST(configure_malformed_conninfo)
{
    static const char *const bad[] = {
        /* libpq refuses timezone as a URI parameter (VAULT_API.md 6.1) */
        "postgresql://postgres:S3cretPW@127.0.0.1/db?timezone=UTC",
        /* these two errors quote the URI / the token itself */
        "postgresql://postgres:S3cretPW@[::1/postgres",
        "postgresql://postgres:S3cret%zzPW@127.0.0.1/postgres",
        "host=127.0.0.1 password=S3cretPW nonsense=1",
    };
    struct db_pool_config cfg;
    struct db_error err;

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cfg = config_of(bad[i]);
        CHECK_EQ_INT(db_pool_configure("bad", &cfg, false, &err),
                     COFFER_EINVAL);
        CHECK_EQ_INT(err.klass, DB_ERR_SQL);
        CHECK(str_has_prefix(err.message, "invalid connection string: "));
        CHECK(strstr(err.message, "S3cret") == NULL);
        CHECK(!db_pool_exists("bad"));
    }
    cfg = config_of(bad[0]);
    db_pool_configure("bad", &cfg, false, &err);
    CHECK(strstr(err.message, "timezone") != NULL);
    cfg = config_of("");
    CHECK_EQ_INT(db_pool_configure("bad", &cfg, false, &err), COFFER_EINVAL);
}

/* ======================================================= statements == */

TEST(exec_params_and_cells)
{
    const char *params[] = {"41", "h\xc3\xa9llo 'x'", NULL};
    struct db_result res;
    struct db_error err;
    struct db_conn *c = NULL;
    char *tz = NULL, *app = NULL;

    CHECK_EQ_INT(configure_main("exec", 0, 0), 0);
    c = db_acquire("exec", &err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    CHECK_EQ_INT(db_exec(c, "SELECT $1::int + 1 AS n, $2::text AS s, "
                            "$3::text AS nul",
                         3, params, &res, &err),
                 0);
    CHECK_EQ_INT(res.nrows, 1);
    CHECK_EQ_INT(res.ncols, 3);
    CHECK_EQ_INT(res.affected, 1);
    if (res.nrows == 1 && res.ncols == 3) {
        CHECK_STREQ(res.colnames[0], "n");
        CHECK_STREQ(res.colnames[2], "nul");
        CHECK_STREQ(res.cells[0], "42");
        CHECK_STREQ(res.cells[1], "h\xc3\xa9llo 'x'");
        CHECK(res.cells[2] == NULL);
    }
    db_result_release(&res);
    CHECK_EQ_INT(res.nrows, 0);
    db_result_release(&res); /* twice is harmless */

    /* Session settings every connection gets. */
    tz = scalar(c, "SHOW TimeZone");
    app = scalar(c, "SELECT current_setting('application_name')");
    CHECK_STREQ(tz, "UTC");
    CHECK_STREQ(app, "coffer");

    CHECK(exec_ok(c, "CREATE TEMP TABLE t (id int)"));
    CHECK_EQ_INT(db_exec(c, "INSERT INTO t SELECT generate_series(1, 5)", 0,
                         NULL, &res, &err),
                 0);
    CHECK_EQ_INT(res.affected, 5);
    CHECK_EQ_INT(res.nrows, 0);
    db_result_release(&res);
    CHECK_EQ_INT(db_exec(c, "SELECT id FROM t ORDER BY id", 0, NULL, &res,
                         &err),
                 0);
    CHECK_EQ_INT(res.nrows, 5);
    if (res.nrows == 5)
        CHECK_STREQ(res.cells[4], "5");
    db_result_release(&res);
    CHECK_EQ_INT(db_exec(c, "", 0, NULL, NULL, &err), 0);
    CHECK_EQ_INT(db_exec(c, "SELECT 1", 1, NULL, NULL, &err), COFFER_EINVAL);
    CHECK(exec_ok(c, "DROP TABLE t"));
    free(tz);
    free(app);
    db_release(c);
    db_pool_remove("exec");
}

TEST(exec_sql_error)
{
    struct db_result res;
    struct db_error err;
    struct db_conn *c;
    char *v;

    CHECK_EQ_INT(configure_main("sqlerr", 0, 0), 0);
    c = db_acquire("sqlerr", &err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    CHECK_EQ_INT(db_exec(c, "SELEC 1", 0, NULL, &res, &err), COFFER_EIO);
    CHECK_EQ_INT(err.klass, DB_ERR_SQL);
    CHECK_STREQ(err.sqlstate, "42601");
    CHECK_STREQ(err.message, "syntax error at or near \"SELEC\"");
    CHECK_EQ_INT(res.nrows, 0);
    db_result_release(&res);
    CHECK(db_exec(c, "SELECT 1/0", 0, NULL, NULL, &err) != 0);
    CHECK_STREQ(err.sqlstate, "22012");
    CHECK_STREQ(err.message, "division by zero");
    /* The connection is still fine afterwards. */
    v = scalar(c, "SELECT 7");
    CHECK_STREQ(v, "7");
    free(v);
    CHECK(!c->base.broken);
    db_release(c);
    db_pool_remove("sqlerr");
}

/* Error classes come from the SQLSTATE (table-driven). */
TEST(classify_table)
{
    static const struct {
        const char *state;
        const char *msg;
        enum db_error_class klass;
    } cases[] = {
        {"40001", "could not serialize access", DB_ERR_TRANSIENT},
        {"40P01", "deadlock detected", DB_ERR_TRANSIENT},
        {"55P03", "could not obtain lock", DB_ERR_TRANSIENT},
        {"XX000", "tuple concurrently updated", DB_ERR_TRANSIENT},
        {"XX000", "cache lookup failed", DB_ERR_SQL},
        {"08006", "connection failure", DB_ERR_UNREACHABLE},
        {"08P01", "protocol violation", DB_ERR_UNREACHABLE},
        {"57P01", "terminating connection", DB_ERR_UNREACHABLE},
        {"57P02", "crash shutdown", DB_ERR_UNREACHABLE},
        {"57P03", "cannot connect now", DB_ERR_UNREACHABLE},
        {"28P01", "password authentication failed", DB_ERR_AUTH},
        {"28000", "role does not exist", DB_ERR_AUTH},
        {"3D000", "database does not exist", DB_ERR_AUTH},
        {"42601", "syntax error", DB_ERR_SQL},
        {"42501", "permission denied", DB_ERR_SQL},
        {"23505", "duplicate key", DB_ERR_SQL},
        {"54000", "row is too big", DB_ERR_SQL},
        {"", "no state from libpq", DB_ERR_INTERNAL},
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        CHECK_EQ_INT(classify_sqlstate(cases[i].state, cases[i].msg, false),
                     cases[i].klass);
    CHECK_EQ_INT(classify_sqlstate("42601", "x", true), DB_ERR_UNREACHABLE);
}

/* A real lock conflict is TRANSIENT (retry now), not the caller's fault. */
TEST(exec_lock_not_available_is_transient)
{
    struct db_error err;
    struct db_conn *a = NULL, *b = NULL;

    CHECK_EQ_INT(configure_main("lock", 2, 0), 0);
    a = db_acquire("lock", &err);
    b = db_acquire("lock", &err);
    CHECK(a != NULL && b != NULL);
    if (a != NULL && b != NULL) {
        /*
         * A row lock held by a, taken by b with NOWAIT (which applies to
         * row locks only; lock_timeout bounds the test if that changes).
         */
        CHECK(exec_ok(a, "CREATE TABLE IF NOT EXISTS lk (id int)"));
        CHECK(exec_ok(a, "INSERT INTO lk VALUES (1)"));
        CHECK(exec_ok(b, "SET lock_timeout = '2s'"));
        CHECK(exec_ok(a, "BEGIN"));
        CHECK(exec_ok(a, "SELECT * FROM lk FOR UPDATE"));
        CHECK(db_exec(b, "SELECT * FROM lk FOR UPDATE NOWAIT", 0,
                      NULL, NULL, &err) != 0);
        CHECK_EQ_INT(err.klass, DB_ERR_TRANSIENT);
        CHECK_STREQ(err.sqlstate, "55P03");
        db_rollback(a);
        CHECK(exec_ok(a, "DROP TABLE lk"));
    }
    db_release(a);
    db_release(b);
    db_pool_remove("lock");
}

/* ===================================================== transactions == */

TEST(transactions)
{
    struct db_error err;
    struct db_conn *c;
    char *v;
    int pid1, pid2;

    CHECK_EQ_INT(configure_main("tx", 1, 0), 0);
    c = db_acquire("tx", &err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    CHECK(exec_ok(c, "CREATE TABLE tx_t (v text)"));
    CHECK_EQ_INT(db_begin(c, &err), 0);
    CHECK(exec_ok(c, "INSERT INTO tx_t VALUES ('rolled back')"));
    db_rollback(c);
    db_rollback(c); /* outside a transaction: nothing to do */
    CHECK_EQ_INT(db_begin(c, &err), 0);
    CHECK(exec_ok(c, "INSERT INTO tx_t VALUES ('committed')"));
    CHECK_EQ_INT(db_commit(c, &err), 0);
    v = scalar(c, "SELECT string_agg(v, ',') FROM tx_t");
    CHECK_STREQ(v, "committed");
    free(v);

    /* COMMIT after an error rolls back: that must not look like success. */
    CHECK_EQ_INT(db_begin(c, &err), 0);
    CHECK(exec_ok(c, "INSERT INTO tx_t VALUES ('lost')"));
    CHECK(db_exec(c, "SELEC", 0, NULL, NULL, &err) != 0);
    CHECK(db_commit(c, &err) != 0);
    CHECK_EQ_INT(err.klass, DB_ERR_SQL);
    CHECK_STREQ(err.sqlstate, "25P02");
    CHECK_EQ_INT(PQtransactionStatus(c->pg), PQTRANS_IDLE);

    /* Returned mid-transaction: rolled back, never lent out dirty. */
    v = scalar(c, "SELECT pg_backend_pid()");
    pid1 = (int)strtol(v, NULL, 10);
    free(v);
    CHECK_EQ_INT(db_begin(c, &err), 0);
    CHECK(exec_ok(c, "INSERT INTO tx_t VALUES ('dirty')"));
    db_release(c);
    c = db_acquire("tx", &err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    v = scalar(c, "SELECT pg_backend_pid()");
    pid2 = (int)strtol(v, NULL, 10);
    free(v);
    CHECK_EQ_INT(pid1, pid2); /* same connection, reused clean */
    CHECK_EQ_INT(PQtransactionStatus(c->pg), PQTRANS_IDLE);
    v = scalar(c, "SELECT string_agg(v, ',') FROM tx_t");
    CHECK_STREQ(v, "committed");
    free(v);
    CHECK(exec_ok(c, "DROP TABLE tx_t"));
    db_release(c);
    db_pool_remove("tx");
}

/* ============================================================ pool == */

static atomic_int in_use, max_in_use, worker_failures;

static void *pool_worker(void *arg)
{
    struct db_error err;
    struct db_conn *c;
    int now, seen;

    (void)arg;
    for (int i = 0; i < 3; i++) {
        c = db_acquire("limits", &err);
        if (c == NULL) {
            atomic_fetch_add(&worker_failures, 1);
            continue;
        }
        now = atomic_fetch_add(&in_use, 1) + 1;
        seen = atomic_load(&max_in_use);
        while (now > seen && !atomic_compare_exchange_weak(&max_in_use, &seen,
                                                           now))
            ;
        if (db_exec(c, "SELECT pg_sleep(0.05)", 0, NULL, NULL, &err) != 0)
            atomic_fetch_add(&worker_failures, 1);
        atomic_fetch_sub(&in_use, 1);
        db_release(c);
    }
    return NULL;
}

TEST(pool_limits)
{
    char url[300];
    struct db_pool_config cfg;
    struct db_error err;
    struct db_conn *a, *b, *c;
    pthread_t th[4];
    char *v;
    double t0;

    /* Our own application_name, to count this pool's backends. */
    snprintf(url, sizeof(url),
             "postgresql://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable"
             "&application_name=coffer-limits",
             PG_PASSWORD, pg.port);
    cfg = config_of(url);
    cfg.max_open = 2;
    CHECK_EQ_INT(db_pool_configure("limits", &cfg, false, &err), 0);
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, pool_worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(atomic_load(&worker_failures), 0);
    CHECK(atomic_load(&max_in_use) <= 2);
    CHECK_EQ_INT(peek_pool("limits")->nopen, 2);
    CHECK_EQ_INT(peek_pool("limits")->nidle, 2);

    /* The server agrees: two backends only. */
    CHECK_EQ_INT(configure_main("limits/probe", 1, 0), 0);
    c = db_acquire("limits/probe", &err);
    CHECK(c != NULL);
    if (c != NULL) {
        v = scalar(c, "SELECT count(*) FROM pg_stat_activity "
                      "WHERE application_name = 'coffer-limits'");
        CHECK_STREQ(v, "2");
        free(v);
    }
    db_release(c);
    db_pool_remove("limits/probe");

    /* All lent: the next borrower waits connect_timeout, then gives up. */
    cfg.connect_timeout = 1;
    CHECK_EQ_INT(db_pool_configure("limits", &cfg, false, &err), 0);
    a = db_acquire("limits", &err);
    b = db_acquire("limits", &err);
    CHECK(a != NULL && b != NULL);
    t0 = time_mono();
    CHECK(db_acquire("limits", &err) == NULL);
    CHECK(time_mono() - t0 >= 0.9 && time_mono() - t0 < 3);
    CHECK_EQ_INT(err.klass, DB_ERR_TIMEOUT);
    CHECK_STREQ(err.message, "timed out after 1s waiting for a database "
                             "connection (all 2 are in use)");
    db_release(a);
    db_release(b);
    db_pool_remove("limits");
}

TEST(pool_max_idle)
{
    struct db_error err;
    struct db_conn *a, *b;
    char url[256];
    struct db_pool_config cfg;

    tcp_url(url, sizeof(url), PG_PASSWORD);
    cfg = config_of(url);
    cfg.max_open = 3;
    cfg.max_idle = 1;
    CHECK_EQ_INT(db_pool_configure("idle", &cfg, false, &err), 0);
    a = db_acquire("idle", &err);
    b = db_acquire("idle", &err);
    CHECK(a != NULL && b != NULL);
    db_release(a);
    db_release(b); /* one too many idle: closed */
    CHECK_EQ_INT(peek_pool("idle")->nidle, 1);
    CHECK_EQ_INT(peek_pool("idle")->nopen, 1);
    cfg.max_idle = 10; /* capped to max_open */
    CHECK_EQ_INT(db_pool_configure("idle", &cfg, false, &err), 0);
    CHECK_EQ_INT(peek_pool("idle")->max_idle, 3);
    db_pool_remove("idle");
}

static int backend_pid(const char *key)
{
    struct db_error err;
    struct db_conn *c = db_acquire(key, &err);
    char *v;
    int pid = -1;

    if (c == NULL)
        return -1;
    v = scalar(c, "SELECT pg_backend_pid()");
    pid = (int)strtol(v, NULL, 10);
    free(v);
    db_release(c);
    return pid;
}

/* idle_timeout and max_lifetime retire connections. */
TEST(pool_expiry)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;
    int p1, p2, p3;

    tcp_url(url, sizeof(url), PG_PASSWORD);
    cfg = config_of(url);
    cfg.idle_timeout = 1;
    CHECK_EQ_INT(db_pool_configure("expiry", &cfg, false, &err), 0);
    p1 = backend_pid("expiry");
    p2 = backend_pid("expiry");
    CHECK(p1 > 0);
    CHECK_EQ_INT(p1, p2);
    usleep(1100 * 1000);
    p3 = backend_pid("expiry");
    CHECK(p3 > 0 && p3 != p1);

    cfg.idle_timeout = 0;
    cfg.max_lifetime = 1;
    CHECK_EQ_INT(db_pool_configure("expiry", &cfg, false, &err), 0);
    p1 = backend_pid("expiry");
    usleep(1100 * 1000);
    p2 = backend_pid("expiry");
    CHECK(p1 > 0 && p2 > 0 && p1 != p2);
    db_pool_remove("expiry");
}

/* ===================================================== reconnection == */

/* Runs SELECT 1 on key; returns the error class (DB_OK on success). */
static enum db_error_class select1(const char *key)
{
    struct db_error err;
    struct db_conn *c = db_acquire(key, &err);
    enum db_error_class k;

    if (c == NULL)
        return err.klass;
    k = db_exec(c, "SELECT 1", 0, NULL, NULL, &err) == 0 ? DB_OK : err.klass;
    db_release(c);
    return k;
}

TEST(reconnect_after_terminate)
{
    struct db_error err;
    struct db_conn *a = NULL, *b = NULL;
    char sql[128], *v;
    int pid;

    CHECK_EQ_INT(configure_main("term", 2, 0), 0);
    a = db_acquire("term", &err);
    b = db_acquire("term", &err);
    CHECK(a != NULL && b != NULL);
    if (a == NULL || b == NULL)
        goto out;
    v = scalar(a, "SELECT pg_backend_pid()");
    pid = (int)strtol(v, NULL, 10);
    free(v);
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    CHECK(exec_ok(b, sql));
    usleep(100 * 1000);
    /* The lent connection learns it the hard way, and is marked broken. */
    CHECK(db_exec(a, "SELECT 1", 0, NULL, NULL, &err) != 0);
    CHECK_EQ_INT(err.klass, DB_ERR_UNREACHABLE);
    CHECK(a->base.broken);
    CHECK(strstr(err.message, PG_PASSWORD) == NULL);
    db_release(a);
    a = NULL;
    CHECK_EQ_INT(peek_pool("term")->nopen, 1);
    CHECK_EQ_INT(select1("term"), DB_OK);
out:
    db_release(a);
    db_release(b);
    db_pool_remove("term");
}

TEST(reconnect_after_restart)
{
    enum db_error_class k;

    CHECK_EQ_INT(configure_main("restart", 2, 0), 0);
    CHECK_EQ_INT(select1("restart"), DB_OK);
    CHECK_EQ_INT(pg_tool("pg_ctl -D %s/data -l %s/server.log -m fast -w "
                         "-t 60 restart",
                         pg.dir, pg.dir),
                 0);
    /* The first use may still meet the dead link; the next one heals. */
    k = select1("restart");
    CHECK(k == DB_OK || k == DB_ERR_UNREACHABLE);
    if (k != DB_OK)
        CHECK_EQ_INT(select1("restart"), DB_OK);
    CHECK_EQ_INT(select1("restart"), DB_OK);
    db_pool_remove("restart");
}

/* ===================================================== unix sockets == */

TEST(unix_socket)
{
    char ci[2][300];
    struct db_pool_config cfg;
    struct db_error err;
    struct db_result res;
    struct db_conn *c;

    snprintf(ci[0], sizeof(ci[0]),
             "host=%s port=%d user=postgres password=%s dbname=postgres",
             pg.dir, pg.port, PG_PASSWORD);
    snprintf(ci[1], sizeof(ci[1]),
             "postgresql://postgres:%s@/postgres?host=%s&port=%d",
             PG_PASSWORD, pg.dir, pg.port);
    for (int i = 0; i < 2; i++) {
        cfg = config_of(ci[i]);
        CHECK_EQ_INT(db_pool_configure("unix", &cfg, true, &err), 0);
        if (err.klass != DB_OK)
            fprintf(stdout, "  %s\n", err.message);
        c = db_acquire("unix", &err);
        CHECK(c != NULL);
        if (c == NULL)
            continue;
        /* inet_server_addr() is NULL over a unix socket. */
        CHECK_EQ_INT(db_exec(c, "SELECT inet_server_addr()", 0, NULL, &res,
                             &err),
                     0);
        CHECK(res.nrows == 1 && res.cells[0] == NULL);
        db_result_release(&res);
        db_release(c);
    }
    db_pool_remove("unix");
}

/* ================================================== replace/remove == */

TEST(pool_replace_while_lent)
{
    struct db_error err;
    struct db_conn *old_c, *new_c;
    struct dbpool *old_p;
    char *v;

    CHECK_EQ_INT(configure_main("replace", 2, 0), 0);
    old_c = db_acquire("replace", &err);
    CHECK(old_c != NULL);
    if (old_c == NULL)
        return;
    old_p = old_c->base.pool;
    CHECK_EQ_INT(configure_main("replace", 3, 0), 0);
    CHECK(peek_pool("replace") != old_p);
    CHECK(old_p->closed);
    /* The lent connection of the old pool still works... */
    v = scalar(old_c, "SELECT 'still here'");
    CHECK_STREQ(v, "still here");
    free(v);
    new_c = db_acquire("replace", &err);
    CHECK(new_c != NULL && new_c->base.pool != old_p);
    db_release(new_c);
    /* ...and is closed on return, freeing the old pool (valgrind). */
    db_release(old_c);
    CHECK_EQ_INT(peek_pool("replace")->nidle, 1);

    /* Removal while lent works the same way. */
    old_c = db_acquire("replace", &err);
    CHECK(old_c != NULL);
    db_pool_remove("replace");
    CHECK(!db_pool_exists("replace"));
    CHECK(exec_ok(old_c, "SELECT 1"));
    db_release(old_c);
    CHECK(db_acquire("replace", &err) == NULL);
    CHECK_EQ_INT(err.klass, DB_ERR_INTERNAL);
}

static void *replace_waiter(void *arg)
{
    struct db_error err;
    struct db_conn *c = db_acquire("wake", &err);

    *(bool *)arg = c != NULL;
    db_release(c);
    return NULL;
}

/* A borrower waiting on a full pool moves to the replacement at once. */
TEST(pool_replace_wakes_waiter)
{
    struct db_error err;
    struct db_conn *held;
    pthread_t th;
    bool got = false;
    double t0;

    CHECK_EQ_INT(configure_main("wake", 1, 5), 0);
    held = db_acquire("wake", &err);
    CHECK(held != NULL);
    t0 = time_mono();
    pthread_create(&th, NULL, replace_waiter, &got);
    usleep(200 * 1000);
    CHECK_EQ_INT(configure_main("wake", 1, 5), 0);
    pthread_join(th, NULL);
    CHECK(got);
    CHECK(time_mono() - t0 < 3);
    db_release(held);
    db_pool_remove("wake");
}

TEST(quote_ident)
{
    char *q;

    q = db_quote_ident("plain");
    CHECK_STREQ(q, "\"plain\"");
    free(q);
    q = db_quote_ident("a\"b\"\"c");
    CHECK_STREQ(q, "\"a\"\"b\"\"\"\"c\"");
    free(q);
    q = db_quote_ident("");
    CHECK_STREQ(q, "\"\"");
    free(q);
    CHECK(db_quote_ident(NULL) == NULL);
}

/* ======================================================= redaction == */

TEST(redact_conninfo_forms)
{
    static const struct {
        const char *in;
        const char *out;
        bool has;
    } cases[] = {
        /* URLs: user-info, encoded, templated, query parameters. */
        {"postgres://u:p%40ss@h/db", "postgres://u:xxxxx@h/db", true},
        {"postgresql://u:pw@/db?host=/tmp",
         "postgresql://u:xxxxx@/db?host=/tmp", true},
        {"postgresql://u@h/db", "postgresql://u@h/db", false},
        {"postgresql://u:@h/db", "postgresql://u:@h/db", false},
        {"postgresql://{{username}}:{{password}}@h/db",
         "postgresql://{{username}}:{{password}}@h/db", false},
        {"postgresql://h/db?password=x&sslmode=disable",
         "postgresql://h/db?password=xxxxx&sslmode=disable", true},
        {"postgresql://h/db?sslpassword=k",
         "postgresql://h/db?sslpassword=xxxxx", true},
        /* An unescaped '@' or '&' in the password: all of it goes. */
        {"postgresql://u:Pa55@W0rd@h:5432/db",
         "postgresql://u:xxxxx@h:5432/db", true},
        {"postgresql://h/db?password=a&b&sslmode=require",
         "postgresql://h/db?password=xxxxx&sslmode=require", true},
        {"postgresql://h1:1,h2:2/db?pass%77ord=z",
         "postgresql://h1:1,h2:2/db?pass%77ord=xxxxx", true},
        /* Key/value: plain, spaced, quoted with escapes, unterminated. */
        {"host=h password=KVSecretPW user=u", "host=h password=xxxxx user=u",
         true},
        {"host=h password = KVSecretPW", "host=h password = xxxxx", true},
        {"password='it\\'s \"KV\" pw\\\\' host=h", "password=xxxxx host=h",
         true},
        {"host=h password='never closed host=x", "host=h password=xxxxx",
         true},
        {"password=a\\ b host=h", "password=xxxxx host=h", true},
        /* Words libpq would take as keywords stay with the password. */
        {"password=Secret Fragment host=h", "password=xxxxx host=h", true},
        {"password=ab'cd efgh", "password=xxxxx", true},
        {"host=h password={{password}}", "host=h password={{password}}",
         false},
        {"host=h password='{{password}}'", "host=h password='{{password}}'",
         false},
        {"host=h password=", "host=h password=", false},
        {"host=h sslpassword=k user=u", "host=h sslpassword=xxxxx user=u",
         true},
        {"passfile=/tmp/pgpass host=h", "passfile=/tmp/pgpass host=h", false},
        /* A dbname that is itself a connection string. */
        {"dbname='host=h password=inner' user=u", "dbname=xxxxx user=u",
         true},
        {"dbname=postgresql://u:pw@h/db", "dbname=xxxxx", true},
        {"dbname=plain user=u", "dbname=plain user=u", false},
        {"", "", false},
        {"password", "password", false},
        {"=password=x", "=password=x", false},
    };
    char *out;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        out = db_redact_conninfo(cases[i].in);
        if (strcmp(out, cases[i].out) != 0)
            fprintf(stdout, "  case %zu: %s\n", i, cases[i].in);
        CHECK_STREQ(out, cases[i].out);
        CHECK_EQ_INT(db_conninfo_has_password(cases[i].in), cases[i].has);
        secure_free_str(out);
    }
    CHECK(db_redact_conninfo(NULL) == NULL);
}

/* Scrubs msg as a pool configured with conninfo (and extra) would. */
static char *scrub_as(const char *conninfo, const char *extra,
                      const char *msg)
{
    struct strvec sv;
    const char *ex[1] = {extra};
    char *out;

    strvec_init(&sv);
    db__secrets_collect(&sv, conninfo, ex, extra != NULL ? 1 : 0);
    out = db__scrub_text(msg, conninfo, &sv);
    db__secrets_wipe(&sv);
    return out;
}

TEST(scrub_messages)
{
    static const struct {
        const char *conninfo, *extra, *msg, *out;
    } cases[] = {
        /* libpq quoting the words after a password with a space. */
        {"host=h password=abc def", NULL,
         "missing \"=\" after \"def\" in connection info string",
         "missing \"=\" after \"xxxxx\" in connection info string"},
        {"host=h password='it\\'s secret", NULL,
         "unterminated quoted string: it's secret",
         "unterminated quoted string: xxxxx"},
        {"postgresql://u:Pa55@W0rd@h/db", NULL,
         "could not translate host name \"W0rd@h\"",
         "could not translate host name \"xxxxx@h\""},
        {"postgresql://u:p%40ss@h/db", NULL, "p@ss and p%40ss",
         "xxxxx and xxxxx"},
        /* The whole string, then the extra secrets from the engine. */
        {"host=h password=pw", NULL, "bad: host=h password=pw",
         "bad: <connection string>"},
        {"postgresql://u:{{password}}@h/db", "RootPW", "auth RootPW failed",
         "auth xxxxx failed"},
        /* Short words are not scrubbed on their own (too many false hits). */
        {"host=h password=ab cd", NULL, "ab cd; cd", "xxxxx; cd"},
        {"host=h", NULL, "nothing secret", "nothing secret"},
    };
    char *out;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        out = scrub_as(cases[i].conninfo, cases[i].extra, cases[i].msg);
        CHECK_STREQ(out, cases[i].out);
        secure_free_str(out);
    }
}

TEST(error_messages_scrubbed_before_truncation)
{
    char big[2048];
    struct db_pool_config cfg;
    struct db_error err;
    struct dbpool *p;
    size_t n = 0;

    /* A password straddling the 512-byte cut must not leave a prefix. */
    cfg = config_of("host=h password=Zq9SecretTail77");
    CHECK_EQ_INT(db_pool_configure("scrub", &cfg, false, &err), 0);
    p = peek_pool("scrub");
    CHECK(p != NULL);
    if (p == NULL)
        return;
    while (n < 500)
        big[n++] = 'a';
    snprintf(big + n, sizeof(big) - n, "Zq9SecretTail77 and more");
    err_set_text(&err, DB_ERR_SQL, "", "x: ", big, p);
    CHECK(strstr(err.message, "Zq9") == NULL);
    CHECK(strstr(err.message, "xxxxx") != NULL);
    db_pool_remove("scrub");
}

TEST(configure_errors_do_not_leak)
{
    static const char *const bad[] = {
        "host=127.0.0.1 port=1 password=Secret Fragment",
        "host=127.0.0.1 port=1 password='Unterminated Secret",
        "postgresql://u@127.0.0.1:1/db?password=Q&S3cr3tZ",
        "postgresql://u:Pa55@W0rdZ@127.0.0.1:1/db",
    };
    static const char *const words[] = {"Fragment", "Unterminated",
                                        "S3cr3tZ", "W0rdZ"};
    struct db_pool_config cfg;
    struct db_error err;

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cfg = config_of(bad[i]);
        cfg.connect_timeout = 2;
        CHECK(db_pool_configure("leak", &cfg, true, &err) != 0);
        if (strstr(err.message, words[i]) != NULL)
            fprintf(stdout, "  leaked: %s\n", err.message);
        CHECK(strstr(err.message, words[i]) == NULL);
        CHECK(strstr(err.message, "Secret") == NULL);
    }
    db_pool_remove("leak");
}

/* ========================================================= deadlines == */

TEST(statement_timeout_server_and_client)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;
    struct db_conn *c;
    double t0;

    tcp_url(url, sizeof(url), PG_PASSWORD);
    cfg = config_of(url);
    cfg.statement_timeout = 1;
    CHECK_EQ_INT(db_pool_configure("stmt", &cfg, false, &err), 0);
    c = db_acquire("stmt", &err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    /* The server's own statement_timeout, set at connect time. */
    t0 = time_mono();
    CHECK(db_exec(c, "SELECT pg_sleep(5)", 0, NULL, NULL, &err) != 0);
    CHECK(time_mono() - t0 < 2);
    CHECK_EQ_INT(err.klass, DB_ERR_TIMEOUT);
    CHECK_STREQ(err.sqlstate, "57014");
    CHECK(!c->base.broken);
    /* Without it, the client deadline cancels the statement. */
    CHECK(exec_ok(c, "SET statement_timeout = 0"));
    t0 = time_mono();
    CHECK(db_exec_script(c, "SELECT pg_sleep(5)", &err) != 0);
    CHECK(time_mono() - t0 < 3);
    CHECK_EQ_INT(err.klass, DB_ERR_TIMEOUT);
    CHECK(strstr(err.message, "statement_timeout") != NULL);
    /* The cancel landed: the session answers again. */
    CHECK(!c->base.broken);
    if (!c->base.broken) {
        char *one = scalar(c, "SELECT 1");
        CHECK_STREQ(one, "1");
        free(one);
    }
    db_release(c);
    db_pool_remove("stmt");
}

TEST(request_budget_caps_statements)
{
    char url[256];
    struct db_pool_config cfg;
    struct db_error err;
    struct db_conn *c;
    double t0;

    tcp_url(url, sizeof(url), PG_PASSWORD);
    cfg = config_of(url);
    cfg.statement_timeout = 30;
    CHECK_EQ_INT(db_pool_configure("budget", &cfg, false, &err), 0);
    c = db_acquire("budget", &err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    request_budget_configure(800);
    request_budget_begin();
    t0 = time_mono();
    CHECK(db_exec(c, "SELECT pg_sleep(5)", 0, NULL, NULL, &err) != 0);
    CHECK(time_mono() - t0 < 2.5);
    CHECK_EQ_INT(err.klass, DB_ERR_TIMEOUT);
    CHECK(strstr(err.message, "max_request_duration") != NULL);
    /* Spent: waiting for a connection fails at once too. */
    db_release(c);
    t0 = time_mono();
    c = db_acquire("budget", &err);
    CHECK(time_mono() - t0 < 0.5);
    request_budget_end();
    request_budget_configure(0);
    db_release(c);
    db_pool_remove("budget");
}

TEST(connect_timeout_silent_server)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    struct db_pool_config cfg;
    struct db_error err;
    char url[128];
    double t0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* Listening but never accepting: the kernel completes the TCP
     * handshake, and then nobody ever says a word. */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(fd, 16) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    snprintf(url, sizeof(url),
             "postgresql://u:pw@127.0.0.1:%d/db?sslmode=disable",
             ntohs(a.sin_port));
    cfg = config_of(url);
    cfg.connect_timeout = 1;
    t0 = time_mono();
    CHECK(db_pool_configure("silent", &cfg, true, &err) != 0);
    CHECK(time_mono() - t0 < 2);
    CHECK_EQ_INT(err.klass, DB_ERR_TIMEOUT);
    CHECK(strstr(err.message, "connect_timeout") != NULL);
    close(fd);
}

struct waiter_arg {
    const char *key;
    enum db_error_class klass;
    double took;
};

static void *pool_waiter(void *arg)
{
    struct waiter_arg *w = arg;
    struct db_error err;
    double t0 = time_mono();
    struct db_conn *c = db_acquire(w->key, &err);

    w->took = time_mono() - t0;
    w->klass = c != NULL ? DB_OK : err.klass;
    db_release(c);
    return NULL;
}

TEST(pool_waiters_are_bounded)
{
    struct waiter_arg w1 = {"bound", DB_OK, 0}, w2 = {"bound", DB_OK, 0};
    struct db_pool_config cfg;
    struct db_error err;
    struct db_conn *held;
    struct dbpool *p;
    pthread_t t1, t2;
    char url[256];
    double t0;

    tcp_url(url, sizeof(url), PG_PASSWORD);
    cfg = config_of(url);
    cfg.max_open = 1;
    cfg.max_waiting = 1;
    cfg.connect_timeout = 3;
    CHECK_EQ_INT(db_pool_configure("bound", &cfg, false, &err), 0);
    held = db_acquire("bound", &err);
    CHECK(held != NULL);
    pthread_create(&t1, NULL, pool_waiter, &w1);
    usleep(200 * 1000);
    /* Over the bound on a healthy pool: a brief wait, then BUSY. */
    pthread_create(&t2, NULL, pool_waiter, &w2);
    pthread_join(t2, NULL);
    CHECK_EQ_INT(w2.klass, DB_ERR_BUSY);
    CHECK(w2.took < 1.0);
    /* After a timeout on this pool, refused at once. */
    p = peek_pool("bound");
    if (p != NULL) {
        pthread_mutex_lock(&p->mu);
        p->last_timeout = time_mono();
        pthread_mutex_unlock(&p->mu);
    }
    t0 = time_mono();
    CHECK(db_acquire("bound", &err) == NULL);
    CHECK_EQ_INT(err.klass, DB_ERR_BUSY);
    CHECK(time_mono() - t0 < 0.1);
    /* The admitted waiter times out after connect_timeout... */
    pthread_join(t1, NULL);
    CHECK_EQ_INT(w1.klass, DB_ERR_TIMEOUT);
    CHECK(w1.took > 2.5 && w1.took < 4);
    db_release(held);
    /* ...and once the connection is back, all is well. */
    held = db_acquire("bound", &err);
    CHECK(held != NULL);
    db_release(held);
    db_pool_remove("bound");
}

TEST(escape_by_server_rules)
{
    struct db_error err;
    struct db_conn *c;
    char *q;

    CHECK_EQ_INT(configure_main("esc", 1, 0), 0);
    c = db_acquire("esc", &err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    q = db_escape(c, "a\"b", 3, false, &err);
    CHECK_STREQ(q, "\"a\"\"b\"");
    secure_free_str(q);
    q = db_escape(c, "it's", 4, true, &err);
    CHECK_STREQ(q, "'it''s'");
    secure_free_str(q);
    q = db_escape(c, "a\\b'", 4, true, &err);
    CHECK_STREQ(q, " E'a\\\\b'''");
    secure_free_str(q);
    q = db_escape(c, "\xff\xfe", 2, true, &err); /* not UTF-8 */
    CHECK(q == NULL);
    CHECK_EQ_INT(err.klass, DB_ERR_SQL);
    q = db_escape(c, "a\0b", 3, false, &err);
    CHECK(q == NULL);
    db_release(c);
    db_pool_remove("esc");
}

TEST(cluster_setup)
{
    CHECK(pg.up);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(quote_ident);
    RUN(classify_table);
    RUN(redact_conninfo_forms);
    RUN(scrub_messages);
    RUN(error_messages_scrubbed_before_truncation);
    if (cluster_up() != 0) {
        fprintf(stdout, "cannot start a scratch PostgreSQL in %s\n", pg.dir);
        show_logs();
    }
    RUN(cluster_setup);
    if (pg.up) {
        RUN(configure_verify_good);
        RUN(configure_verify_bad_password);
        RUN(configure_verify_no_database);
        RUN(configure_verify_unreachable);
        RUN(configure_sslmode_passed_through);
        RUN(configure_malformed_conninfo);
        RUN(exec_params_and_cells);
        RUN(exec_sql_error);
        RUN(exec_lock_not_available_is_transient);
        RUN(transactions);
        RUN(pool_limits);
        RUN(pool_max_idle);
        RUN(pool_expiry);
        RUN(reconnect_after_terminate);
        RUN(unix_socket);
        RUN(pool_replace_while_lent);
        RUN(pool_replace_wakes_waiter);
        RUN(reconnect_after_restart);
        RUN(configure_errors_do_not_leak);
        RUN(statement_timeout_server_and_client);
        RUN(request_budget_caps_statements);
        RUN(connect_timeout_silent_server);
        RUN(pool_waiters_are_bounded);
        RUN(escape_by_server_rules);
    }
    db_shutdown();
    cluster_down();
    return HARNESS_DONE();
}
