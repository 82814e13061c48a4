/*
 * test_storage_pg_scan.c - the postgresql backend's scan, which fetches
 * the next page while the callback works through the current one, against
 * a real, scratch PostgreSQL (pg_scratch.h): every row once and in order
 * when the callback itself reads storage, many scans at once (more than
 * may keep a connection: none waits on another), a callback that stops
 * with a page in flight, and the kept connection killed mid-scan (the
 * scan carries on with a page of its own). A connection left busy would
 * leak from the pool of 16: the cases repeat more often than that.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "buf.h"
#include "harness.h"
#include "pg_scratch.h"
#include "storage.h"

#define ROWS 2600 /* five full pages and part of a sixth */

static char url[256];

static struct storage *filled(const char *table)
{
    struct errbuf err;
    struct storage *s = storage_pg_open(url, table, &err);
    struct storage_op ops[100];
    char keys[100][32];

    if (s == NULL) {
        fprintf(stdout, "  storage_pg_open: %s\n", err.msg);
        return NULL;
    }
    for (int b = 0; b < ROWS / 100; b++) {
        for (int i = 0; i < 100; i++) {
            snprintf(keys[i], sizeof(keys[i]), "p/k%05d", b * 100 + i);
            ops[i] = (struct storage_op){STORAGE_OP_PUT, keys[i], keys[i],
                                         strlen(keys[i])};
        }
        COFFER_ASSERT(storage_batch(s, ops, 100) == 0);
    }
    return s;
}

struct walk {
    struct storage *s;
    int seen;
    int bad;
    int stop_at;   /* return 7 at this row (-1: never) */
    int kill_at;   /* kill every coffer session at this row (-1: never) */
};

/* Kills every session of the store's but this one's: the kept one too. */
static void kill_sessions(void)
{
    PGconn *conn = PQconnectdb(url);
    PGresult *res = PQexec(conn, "SELECT pg_terminate_backend(pid) FROM "
                                 "pg_stat_activity WHERE application_name = "
                                 "'coffer' AND pid <> pg_backend_pid()");

    COFFER_ASSERT(PQresultStatus(res) == PGRES_TUPLES_OK);
    PQclear(res);
    PQfinish(conn);
}

static int walk_one(void *arg, const char *key, const void *value,
                    size_t len)
{
    struct walk *w = arg;
    char want[32];
    struct buf again;

    snprintf(want, sizeof(want), "p/k%05d", w->seen);
    if (strcmp(key, want) != 0 || len != strlen(want) ||
        memcmp(value, want, len) != 0)
        w->bad++;
    if (w->seen == w->kill_at)
        kill_sessions();
    /* The callback reads storage itself: the pool must serve it. */
    buf_init(&again, 0);
    if (w->seen % 97 == 0 &&
        (storage_get(w->s, key, &again) != 0 || again.len != len))
        w->bad++;
    buf_release(&again);
    return w->seen++ == w->stop_at ? 7 : 0;
}

TEST(every_row_once_in_order)
{
    struct storage *s = filled("scan_a");
    struct walk w = {s, 0, 0, -1, -1};

    if (s == NULL)
        return;
    CHECK_EQ_INT(storage_scan(s, "p/", walk_one, &w), 0);
    CHECK_EQ_INT(w.seen, ROWS);
    CHECK_EQ_INT(w.bad, 0);
    storage_free(s);
}

TEST(a_stop_with_a_page_in_flight)
{
    struct storage *s = filled("scan_b");
    struct walk w;
    struct buf v;

    if (s == NULL)
        return;
    for (int i = 0; i < 20; i++) {
        w = (struct walk){s, 0, 0, 777 + i * 90, -1};
        CHECK_EQ_INT(storage_scan(s, "p/", walk_one, &w), 7);
        CHECK_EQ_INT(w.seen, 778 + i * 90);
    }
    buf_init(&v, 0);
    CHECK_EQ_INT(storage_get(s, "p/k00001", &v), 0); /* still usable */
    buf_release(&v);
    w = (struct walk){s, 0, 0, -1, -1};
    CHECK_EQ_INT(storage_scan(s, "p/", walk_one, &w), 0);
    CHECK_EQ_INT(w.seen, ROWS);
    storage_free(s);
}

TEST(the_kept_connection_killed_mid_scan)
{
    struct storage *s = filled("scan_c");
    struct walk w;

    if (s == NULL)
        return;
    for (int i = 0; i < 3; i++) {
        w = (struct walk){s, 0, 0, -1, 600 + i * 500};
        CHECK_EQ_INT(storage_scan(s, "p/", walk_one, &w), 0);
        CHECK_EQ_INT(w.seen, ROWS);
        CHECK_EQ_INT(w.bad, 0);
    }
    storage_free(s);
}

static void *scan_thread(void *arg)
{
    struct walk *w = arg;

    if (storage_scan(w->s, "p/", walk_one, w) != 0)
        w->bad++;
    return NULL;
}

TEST(more_scans_at_once_than_keep_connections)
{
    enum { N = 12 }; /* 4 may keep a connection */
    struct storage *s = filled("scan_d");
    struct walk w[N];
    pthread_t t[N];

    if (s == NULL)
        return;
    for (int i = 0; i < N; i++) {
        w[i] = (struct walk){s, 0, 0, -1, -1};
        COFFER_ASSERT(pthread_create(&t[i], NULL, scan_thread, &w[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(w[i].seen, ROWS);
        CHECK_EQ_INT(w[i].bad, 0);
    }
    storage_free(s);
}

TEST(cluster_setup)
{
    CHECK(pg.up);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    if (cluster_up() != 0) {
        fprintf(stdout, "cannot start a scratch PostgreSQL in %s\n", pg.dir);
        show_logs();
    }
    RUN(cluster_setup);
    if (pg.up) {
        tcp_url(url, sizeof(url), PG_PASSWORD);
        RUN(every_row_once_in_order);
        RUN(a_stop_with_a_page_in_flight);
        RUN(the_kept_connection_killed_mid_scan);
        RUN(more_scans_at_once_than_keep_connections);
    }
    cluster_down();
    return HARNESS_DONE();
}
