/*
 * storage_pg_internal.h - what the postgresql backend's files share:
 * the store and its connection pool (storage_pg.c) and the HA lock, node
 * registry and change channel ops (storage_pg_ha.c). Not for other
 * modules: they reach the backend through storage.h.
 */
#ifndef COFFER_STORAGE_PG_INTERNAL_H
#define COFFER_STORAGE_PG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "storage.h"
#include "storage_pg_notify.h"

struct errbuf;

struct pg_conn {
    PGconn *conn;
    struct pg_conn *next;
};

struct pg_store {
    char *conninfo;   /* may hold a password: wiped on close */
    char *table;      /* quoted, ready for SQL: "public"."coffer_kv" */
    pthread_mutex_t lock; /* guards idle, nidle, nopen, fence */
    pthread_cond_t freed;
    struct pg_conn *idle;
    size_t nidle;
    size_t nopen;
    size_t nprefetch; /* connections scans keep across pages */
    /* HA only: the lock table, quoted, and the claim writes are fenced
     * with ("" = none: writes fail). */
    char *ha_table;
    char *nodes_table; /* HA only: "<table>_nodes", quoted */
    char fence[128];
    /* HA only: the lock's own connection (acquire, renew, release). */
    pthread_mutex_t ha_mu;
    PGconn *ha_conn;
    /* HA only: the change channel, and the connection that LISTENs on
     * it (the listening thread's alone). */
    char channel[64];
    struct pg_listener listener;
};


typedef int (*pg_op_fn)(PGconn *conn, void *arg);

/* A new connection with the backend's timeouts, or NULL with err set. */
PGconn *storage_pg_connect(const char *conninfo, struct errbuf *err);

/*
 * Runs op on a pooled connection. If the connection turns out dead and
 * came from the pool, runs it once more on a fresh one.
 */
int storage_pg_with_conn(struct pg_store *s, pg_op_fn op, void *arg);

/*
 * Forgets holder as the fence (if it still is): writes fail from now on.
 * True if it was the fence.
 */
bool storage_pg_fence_clear(struct pg_store *s, const char *holder);

/* Announces payload on the change channel (in the current transaction). */
int storage_pg_send_notify(PGconn *conn, const char *payload);

/* The HA ops of a store opened with storage_pg_open_ha. */
extern const struct storage_ha_ops storage_pg_ha_ops;

#endif
