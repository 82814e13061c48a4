/*
 * storage_pg_notify.h - the postgresql backend's change channel (HA): what
 * the active announces with pg_notify, and the standby's LISTEN
 * connection that hears it (see storage_pg.c for where it is sent).
 *
 * Payloads: keys separated by '\n', or a marker starting with \x01 (no
 * key a payload carries has a control byte, so neither can be mistaken
 * for the other). A batch too large for one payload goes as several,
 * each under PostgreSQL's limit of 8000 bytes, all sent by one statement
 * in the batch's own transaction (standbys hear them on commit only).
 * Only a key the channel cannot carry (a control byte, or too long) or a
 * batch naming more than PG_NOTIFY_TOTAL_MAX bytes of keys sends the
 * flush marker: anything may have changed.
 */
#ifndef COFFER_STORAGE_PG_NOTIFY_H
#define COFFER_STORAGE_PG_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "storage.h"

struct errbuf;

/* One payload's bytes at most (PostgreSQL refuses 8000 and more). */
#define PG_NOTIFY_MAX 7000
/* A batch's keys, in bytes, beyond which one flush is cheaper. */
#define PG_NOTIFY_TOTAL_MAX (1024 * 1024)
#define PG_NOTIFY_FLUSH "\001flush"
#define PG_NOTIFY_SYNC "\001sync "
/* Between the payloads of one notify statement's parameter (below
 * 0x20, so never inside a key or marker a payload carries). */
#define PG_NOTIFY_SEP "\036"
#define PG_NOTIFY_SEP_SQL "chr(30)"

/* Defined in storage_pg.c, shared with this file. */
void storage_pg_log(const char *what, const char *key, const char *msg);
int storage_pg_check(PGconn *conn, PGresult *res, ExecStatusType want,
                     const char *what, const char *key);
int storage_pg_exec(PGconn *conn, const char *sql);

/* The payload announcing one key: the key, or the flush marker. */
const char *pg_notify_key_payload(const char *key);

/*
 * A batch's keys as payloads joined by PG_NOTIFY_SEP (the notify
 * statement's parameter), or the flush marker. Caller frees.
 */
char *pg_notify_batch_payloads(const struct storage_op *ops, size_t n);

/* The sync payload for marker, or NULL if the channel cannot carry it.
 * Caller frees. */
char *pg_notify_sync_payload(const char *marker);

/* The change channel of table (already checked: letters, digits, '_'
 * and one '.'): "<table>_changes", or a hashed name if that is too long. */
void pg_notify_channel_name(const char *table, char out[64]);

/* Opens the listening connection (TCP keepalives); NULL with words in err. */
typedef PGconn *(*pg_listen_connect_fn)(void *arg, struct errbuf *err);

/* The standby's listener; the listening thread's alone. */
struct pg_listener {
    PGconn *conn;                /* NULL: not listening */
    const char *channel;
    pg_listen_connect_fn connect;
    void *connect_arg;
};

/*
 * The storage_ha_ops.listen contract: opens the connection if needed
 * (then reports a flush: what came before went unheard), waits up to
 * timeout_ms and reports what arrived; timeout_ms < 0 closes it.
 * COFFER_EIO when the connection is lost (closed, so the next call
 * reopens it).
 */
int pg_listener_poll(struct pg_listener *l, int timeout_ms,
                     storage_change_fn fn, void *arg);

void pg_listener_close(struct pg_listener *l);

#endif
