/*
 * storage_pg_notify.c - the postgresql backend's change channel: payloads
 * the active sends and the standby's listener (see storage_pg_notify.h).
 */
#include "storage_pg_notify.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "common.h"

/* ========================================================= sending == */

static bool key_notifiable(const char *key)
{
    size_t n = strlen(key);

    if (n == 0 || n > PG_NOTIFY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)key[i] < 0x20)
            return false;
    }
    return true;
}

const char *pg_notify_key_payload(const char *key)
{
    return key_notifiable(key) ? key : PG_NOTIFY_FLUSH;
}

/*
 * Appends key to b: after '\n' within the current payload (which began
 * at *start), or as a new payload when it would pass PG_NOTIFY_MAX.
 */
static int append_key(struct buf *b, size_t *start, const char *key)
{
    size_t klen = strlen(key);

    if (b->len == 0)
        return buf_append(b, key, klen);
    if (b->len - *start + 1 + klen > PG_NOTIFY_MAX) {
        *start = b->len + 1;
        return buf_appendf(b, "%s%s", PG_NOTIFY_SEP, key);
    }
    return buf_appendf(b, "\n%s", key);
}

char *pg_notify_batch_payloads(const struct storage_op *ops, size_t n)
{
    struct buf b;
    size_t start = 0;
    bool ok = true;

    buf_init(&b, BUF_MAX_DEFAULT);
    for (size_t i = 0; ok && i < n; i++) {
        ok = key_notifiable(ops[i].key) &&
             b.len + strlen(ops[i].key) + 1 <= PG_NOTIFY_TOTAL_MAX &&
             append_key(&b, &start, ops[i].key) == 0;
    }
    if (!ok || b.len == 0) {
        buf_release(&b);
        return xstrdup(PG_NOTIFY_FLUSH);
    }
    return buf_detach(&b, NULL);
}

char *pg_notify_sync_payload(const char *marker)
{
    struct buf b;

    if (!key_notifiable(marker))
        return NULL;
    buf_init(&b, BUF_MAX_DEFAULT);
    if (buf_appendf(&b, "%s%s", PG_NOTIFY_SYNC, marker) != 0) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b, NULL);
}

void pg_notify_channel_name(const char *table, char out[64])
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */

    if (strlen(table) + sizeof("_changes") <= 64) {
        snprintf(out, 64, "%s_changes", table);
        return;
    }
    for (const char *p = table; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(out, 64, "coffer_changes_%016llx", (unsigned long long)h);
}

/* ======================================================= listening == */

/* Reports one payload: a marker, or its keys one by one. */
static void report_payload(const char *payload, storage_change_fn fn,
                           void *arg)
{
    size_t slen = strlen(PG_NOTIFY_SYNC);
    char *copy, *save = NULL;

    if (payload[0] == '\001') {
        if (strncmp(payload, PG_NOTIFY_SYNC, slen) == 0)
            fn(arg, STORAGE_CHANGE_SYNC, payload + slen);
        else
            fn(arg, STORAGE_CHANGE_FLUSH, NULL);
        return;
    }
    copy = xstrdup(payload);
    for (char *k = strtok_r(copy, "\n", &save); k != NULL;
         k = strtok_r(NULL, "\n", &save))
        fn(arg, STORAGE_CHANGE_KEY, k);
    free(copy);
}

/* Opens the listening connection; FLUSH: what came before is unheard. */
static int listen_open(struct pg_listener *l, storage_change_fn fn,
                       void *arg)
{
    struct errbuf err;
    struct buf sql;
    int rc;

    l->conn = l->connect(l->connect_arg, &err);
    if (l->conn == NULL) {
        storage_pg_log("change listener: connect", NULL, err.msg);
        return COFFER_EIO;
    }
    buf_init(&sql, BUF_MAX_DEFAULT);
    COFFER_ASSERT(buf_appendf(&sql, "LISTEN \"%s\"", l->channel) == 0);
    rc = storage_pg_exec(l->conn, sql.ptr);
    buf_release(&sql);
    if (rc != 0) {
        pg_listener_close(l);
        return rc;
    }
    fn(arg, STORAGE_CHANGE_FLUSH, NULL);
    return 0;
}

/* Waits for the socket to be readable; -1 on error, 0 on timeout. */
static int listen_wait(PGconn *conn, int timeout_ms)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    int n;

    if (pfd.fd < 0)
        return -1;
    do {
        n = poll(&pfd, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    return n;
}

void pg_listener_close(struct pg_listener *l)
{
    PQfinish(l->conn);
    l->conn = NULL;
}

int pg_listener_poll(struct pg_listener *l, int timeout_ms,
                     storage_change_fn fn, void *arg)
{
    PGnotify *note;
    int rc = 0;

    if (timeout_ms < 0 ||
        (l->conn != NULL && PQstatus(l->conn) != CONNECTION_OK)) {
        pg_listener_close(l);
        return timeout_ms < 0 ? 0 : COFFER_EIO;
    }
    if (l->conn == NULL)
        return listen_open(l, fn, arg);
    if (listen_wait(l->conn, timeout_ms) < 0 ||
        PQconsumeInput(l->conn) == 0) {
        storage_pg_log("change listener", NULL, PQerrorMessage(l->conn));
        rc = COFFER_EIO;
    }
    while ((note = PQnotifies(l->conn)) != NULL) {
        report_payload(note->extra, fn, arg);
        PQfreemem(note);
    }
    if (rc != 0 || PQstatus(l->conn) != CONNECTION_OK) {
        pg_listener_close(l);
        rc = COFFER_EIO;
    }
    return rc;
}
