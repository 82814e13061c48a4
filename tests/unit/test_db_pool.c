/*
 * test_db_pool.c - the generic connection pool (src/db_pool.c) with fake
 * drivers: no database needed. The drivers' own tests (test_db_pg.c,
 * test_db_mysql.c, tests/integration/test_database*.py) cover the pool
 * behind real servers.
 */
#include "../../src/db_pool.c"

#include <stdatomic.h>
#include <unistd.h>

#include "db_pg_stats.h"
#include "harness.h"

struct fake_conn {
    struct dbpool_conn base;
    bool dead;           /* what alive() reports */
    bool in_tx;          /* make_clean ends it */
};

static atomic_int opened, closed, cleaned, fail_open;

static int fake_prepare(struct dbpool *p, const struct db_pool_config *cfg,
                        struct db_error *err)
{
    if (strcmp(cfg->conninfo, "bad") == 0) {
        db_error_set(err, DB_ERR_SQL, "invalid connection string");
        return COFFER_EINVAL;
    }
    p->data = xstrdup("driver data");
    return 0;
}

static struct dbpool_conn *fake_open(struct dbpool *p, struct db_error *err)
{
    struct fake_conn *c;

    (void)p;
    if (atomic_load(&fail_open)) {
        db_error_set(err, DB_ERR_UNREACHABLE, "connection refused");
        return NULL;
    }
    c = xcalloc(1, sizeof(*c));
    atomic_fetch_add(&opened, 1);
    return &c->base;
}

static void fake_close(struct dbpool_conn *c)
{
    atomic_fetch_add(&closed, 1);
    free(c);
}

static bool fake_alive(struct dbpool_conn *c)
{
    return !((struct fake_conn *)c)->dead;
}

static void fake_clean(struct dbpool_conn *c)
{
    struct fake_conn *f = (struct fake_conn *)c;

    atomic_fetch_add(&cleaned, 1);
    f->in_tx = false;
}

static const struct dbpool_ops ops_a = {
    .driver = "fake-a", .prepare = fake_prepare, .free_data = free,
    .open = fake_open, .close = fake_close, .alive = fake_alive,
    .make_clean = fake_clean,
};
static const struct dbpool_ops ops_b = {
    .driver = "fake-b", .prepare = fake_prepare, .free_data = free,
    .open = fake_open, .close = fake_close, .alive = fake_alive,
    .make_clean = fake_clean,
};

static struct db_pool_config cfg_of(int max_open, double connect_timeout)
{
    struct db_pool_config cfg = {0};

    cfg.conninfo = "fake://x";
    cfg.max_open = max_open;
    cfg.connect_timeout = connect_timeout;
    return cfg;
}

TEST(configure_replace_remove)
{
    struct db_pool_config cfg = cfg_of(2, 1);
    struct db_error err;

    CHECK_EQ_INT(dbpool_configure(&ops_a, "k", &cfg, false, &err), 0);
    CHECK(dbpool_exists(&ops_a, "k"));
    CHECK(!dbpool_exists(&ops_b, "k"));
    CHECK_STREQ(dbpool_driver_of("k"), "fake-a");
    cfg.conninfo = "bad";
    CHECK_EQ_INT(dbpool_configure(&ops_a, "k", &cfg, false, &err),
                 COFFER_EINVAL);
    CHECK_EQ_INT(err.klass, DB_ERR_SQL);
    CHECK(dbpool_exists(&ops_a, "k")); /* the old pool stays */
    cfg.conninfo = "";
    CHECK_EQ_INT(dbpool_configure(&ops_a, "k", &cfg, false, &err),
                 COFFER_EINVAL);
    /* The same key under another driver replaces it: one key, one pool. */
    cfg.conninfo = "fake://y";
    CHECK_EQ_INT(dbpool_configure(&ops_b, "k", &cfg, false, &err), 0);
    CHECK_STREQ(dbpool_driver_of("k"), "fake-b");
    CHECK(dbpool_acquire(&ops_a, "k", &err) == NULL);
    CHECK_EQ_INT(err.klass, DB_ERR_INTERNAL);
    dbpool_remove(&ops_a, "k"); /* not ops_a's: left alone */
    CHECK(dbpool_exists(NULL, "k"));
    dbpool_remove(&ops_b, "k");
    CHECK(!dbpool_exists(NULL, "k"));
}

TEST(verify_keeps_the_first_connection)
{
    struct db_pool_config cfg = cfg_of(2, 1);
    struct db_error err;
    struct dbpool_conn *c;
    int before = atomic_load(&opened);

    atomic_store(&fail_open, 1);
    CHECK_EQ_INT(dbpool_configure(&ops_a, "v", &cfg, true, &err), COFFER_EIO);
    CHECK_EQ_INT(err.klass, DB_ERR_UNREACHABLE);
    CHECK(!dbpool_exists(NULL, "v"));
    atomic_store(&fail_open, 0);
    CHECK_EQ_INT(dbpool_configure(&ops_a, "v", &cfg, true, &err), 0);
    CHECK_EQ_INT(atomic_load(&opened), before + 1);
    c = dbpool_acquire(&ops_a, "v", &err);
    CHECK(c != NULL);
    CHECK_EQ_INT(atomic_load(&opened), before + 1); /* reused */
    dbpool_release(c);
    dbpool_remove(&ops_a, "v");
}

TEST(dead_and_dirty_connections)
{
    struct db_pool_config cfg = cfg_of(2, 1);
    struct db_error err;
    struct dbpool_conn *c, *d;
    int cl, op;

    CHECK_EQ_INT(dbpool_configure(&ops_a, "d", &cfg, false, &err), 0);
    c = dbpool_acquire(&ops_a, "d", &err);
    ((struct fake_conn *)c)->in_tx = true;
    cl = atomic_load(&cleaned);
    dbpool_release(c);
    CHECK_EQ_INT(atomic_load(&cleaned), cl + 1);
    /* Died while idle: dropped when taken, a new one opened. */
    ((struct fake_conn *)c)->dead = true;
    cl = atomic_load(&closed);
    op = atomic_load(&opened);
    d = dbpool_acquire(&ops_a, "d", &err);
    CHECK(d != NULL);
    CHECK_EQ_INT(atomic_load(&closed), cl + 1);
    CHECK_EQ_INT(atomic_load(&opened), op + 1); /* (c's memory may be d's) */
    /* Broken when returned: closed, never lent again. */
    d->broken = true;
    dbpool_release(d);
    CHECK_EQ_INT(atomic_load(&closed), cl + 2);
    CHECK_EQ_INT(dbpool_find(&ops_a, "d")->nopen, 0);
    dbpool_remove(&ops_a, "d");
}

TEST(waiting_timeout_and_busy)
{
    struct db_pool_config cfg = cfg_of(1, 0.3);
    struct db_error err;
    struct dbpool_conn *held, *c;
    double t0;

    cfg.max_waiting = 1;
    CHECK_EQ_INT(dbpool_configure(&ops_a, "w", &cfg, false, &err), 0);
    held = dbpool_acquire(&ops_a, "w", &err);
    CHECK(held != NULL);
    t0 = time_mono();
    c = dbpool_acquire(&ops_a, "w", &err);
    CHECK(c == NULL);
    CHECK_EQ_INT(err.klass, DB_ERR_TIMEOUT);
    CHECK(strstr(err.message, "all 1 are in use") != NULL);
    CHECK(time_mono() - t0 >= 0.25 && time_mono() - t0 < 2);
    /* Over max_waiting right after a timeout: refused at once. */
    dbpool_find(&ops_a, "w")->nwaiting = 1;
    dbpool_note_timeout(dbpool_find(&ops_a, "w"));
    t0 = time_mono();
    CHECK(dbpool_acquire(&ops_a, "w", &err) == NULL);
    CHECK_EQ_INT(err.klass, DB_ERR_BUSY);
    CHECK(time_mono() - t0 < 0.1);
    dbpool_find(&ops_a, "w")->nwaiting = 0;
    dbpool_release(held);
    dbpool_remove(&ops_a, "w");
}

struct stat_seen {
    int n;
    char driver[16];
    int open, idle;
    uint64_t statements, errors;
};

static void stat_cb(void *arg, const struct db_pool_stats *s)
{
    struct stat_seen *seen = arg;

    if (strcmp(s->key, "s") != 0)
        return;
    seen->n++;
    snprintf(seen->driver, sizeof(seen->driver), "%s", s->driver);
    seen->open = s->open;
    seen->idle = s->idle;
    seen->statements = s->statements;
    seen->errors = s->statement_errors;
}

TEST(stats_cover_every_driver)
{
    struct db_pool_config cfg = cfg_of(3, 1);
    struct db_error err;
    struct stat_seen seen = {0};
    struct dbpool_conn *c;

    CHECK_EQ_INT(dbpool_configure(&ops_b, "s", &cfg, false, &err), 0);
    c = dbpool_acquire(&ops_b, "s", &err);
    dbpool_note_statement(c->pool, 2.0, false);
    dbpool_note_statement(c->pool, 4.0, true);
    db_pool_stats_each(stat_cb, &seen);
    CHECK_EQ_INT(seen.n, 1);
    CHECK_STREQ(seen.driver, "fake-b");
    CHECK_EQ_INT(seen.open, 1);
    CHECK_EQ_INT(seen.idle, 0);
    CHECK_EQ_INT((int)seen.statements, 2);
    CHECK_EQ_INT((int)seen.errors, 1);
    dbpool_release(c);
    dbpool_shutdown(&ops_a); /* another driver's shutdown: kept */
    CHECK(dbpool_exists(&ops_b, "s"));
    dbpool_shutdown(&ops_b);
    CHECK(!dbpool_exists(NULL, "s"));
}

/* Many threads borrow, sometimes break, while the pool is replaced. */
static atomic_int lent_now, lent_max, failures;

static void *hammer(void *arg)
{
    struct db_error err;

    (void)arg;
    for (int i = 0; i < 400; i++) {
        struct dbpool_conn *c = dbpool_acquire(&ops_a, "h", &err);
        int now;

        if (c == NULL) {
            atomic_fetch_add(&failures, 1);
            continue;
        }
        now = atomic_fetch_add(&lent_now, 1) + 1;
        if (now > atomic_load(&lent_max))
            atomic_store(&lent_max, now);
        if (i % 7 == 0)
            c->broken = true;
        atomic_fetch_sub(&lent_now, 1);
        dbpool_release(c);
    }
    return NULL;
}

TEST(threads_and_replacement)
{
    struct db_pool_config cfg = cfg_of(3, 5);
    struct db_error err;
    pthread_t th[8];
    int o0 = atomic_load(&opened), c0 = atomic_load(&closed);

    cfg.max_waiting = 8;
    CHECK_EQ_INT(dbpool_configure(&ops_a, "h", &cfg, false, &err), 0);
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, hammer, NULL);
    for (int r = 0; r < 20; r++) {
        usleep(2000);
        CHECK_EQ_INT(dbpool_configure(&ops_a, "h", &cfg, false, &err), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(atomic_load(&failures), 0);
    CHECK(dbpool_find(&ops_a, "h")->nopen <= 3);
    dbpool_remove(&ops_a, "h");
    /* Every connection opened was closed: none leaked, none twice. */
    CHECK_EQ_INT(atomic_load(&opened) - o0, atomic_load(&closed) - c0);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(configure_replace_remove);
    RUN(verify_keeps_the_first_connection);
    RUN(dead_and_dirty_connections);
    RUN(waiting_timeout_and_busy);
    RUN(stats_cover_every_driver);
    RUN(threads_and_replacement);
    return HARNESS_DONE();
}
