/*
 * db_pg_stats.h - the database pools' counts, for sys/metrics.
 *
 * Its own header so that metrics.c can read them and db_pg.c need not
 * know about metrics (no include cycle). Defined in db_pg.c.
 */
#ifndef COFFER_DB_PG_STATS_H
#define COFFER_DB_PG_STATS_H

struct db_pool_stats {
    const char *key;  /* the pool's name, valid during the callback */
    int open, idle, in_use, waiting, max_open;
};

/*
 * Calls fn once per pool, with the pool table locked: fn must not call
 * back into the driver.
 */
void db_pool_stats_each(void (*fn)(void *arg, const struct db_pool_stats *s),
                        void *arg);

#endif
