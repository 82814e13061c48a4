/*
 * db_pg_stats.h - the database pools' counts, for sys/metrics.
 *
 * Its own header so that metrics.c can read them and db_pg.c need not
 * know about metrics (no include cycle). Defined in db_pool.c; covers
 * the pools of every driver.
 */
#ifndef COFFER_DB_PG_STATS_H
#define COFFER_DB_PG_STATS_H

#include <stdint.h>

struct db_pool_stats {
    const char *key;  /* the pool's name, valid during the callback */
    const char *driver; /* "postgresql", "mysql" */
    int open, idle, in_use, waiting, max_open;
    /* Statements run (every one through the driver, failed ones too),
       their latency in ms, and how many failed. */
    uint64_t statements, statement_errors;
    double statement_sum_ms, statement_min_ms, statement_max_ms;
};

/*
 * Calls fn once per pool, with the pool table locked: fn must not call
 * back into the driver.
 */
void db_pool_stats_each(void (*fn)(void *arg, const struct db_pool_stats *s),
                        void *arg);

#endif
