/*
 * db_pg.c - the PostgreSQL driver: connection pools, statements,
 * transactions (libpq).
 *
 * Owns: every PGconn Coffer opens, and the translation of libpq/PostgreSQL
 * failures into struct db_error. Does not own: the pools and their
 * lending rules (db_pool.c, given this driver's operations: connect,
 * alive check, clean, close), what the statements say (the Lua engines
 * build them), connection URL templating (the database engine fills
 * credentials before calling db_pool_configure), retry policy (callers
 * decide from err->klass).
 *
 * No lock is held while talking to the server: connecting costs ~15 ms
 * of SCRAM (PERF_NOTES.md). The only I/O under a pool lock is the alive
 * check, a non-blocking poll()/PQconsumeInput on an idle connection.
 */
#include "db_pg.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "db_pg_conninfo.h"
#include "db_pg_stats.h"
#include "log.h"
#include "request.h"
#include "util.h"

/* After a statement's deadline: how long the cancel may take to land. */
#define CANCEL_GRACE 1.0
/* Cancel requests in flight at once (each a short-lived thread). */
#define MAX_CANCELS 16

/* A lent connection; the pool's head first (db_pool.h). */
struct db_conn {
    struct dbpool_conn base;
    PGconn *pg;
};

static const struct dbpool_ops pg_ops;

/* ============================================================ errors == */

static void err_set(struct db_error *err, enum db_error_class klass,
                    const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void err_set(struct db_error *err, enum db_error_class klass,
                    const char *sqlstate, const char *fmt, ...)
{
    va_list ap;

    err->klass = klass;
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s",
             sqlstate != NULL ? sqlstate : "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static void copy_libpq_message(char *dst, size_t n, const char *src);

/*
 * Sets err to prefix + text, where text came from libpq or the server and
 * may quote the connection string or a password: it is scrubbed whole,
 * before it is cut to the size of the message.
 */
static void err_set_text(struct db_error *err, enum db_error_class klass,
                         const char *sqlstate, const char *prefix,
                         const char *text, const struct dbpool *p);
/*
 * Copies a libpq message: drops the trailing newline libpq always adds and
 * joins the lines of multi-host attempts with "; ".
 */
static void copy_libpq_message(char *dst, size_t n, const char *src)
{
    size_t o = 0, len;

    if (src == NULL)
        src = "";
    len = strlen(src);
    while (len > 0 && (src[len - 1] == '\n' || src[len - 1] == ' '))
        len--;
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        if (src[i] != '\n') {
            dst[o++] = src[i];
        } else if (o + 3 < n) {
            dst[o++] = ';';
            dst[o++] = ' ';
        }
    }
    dst[o] = '\0';
}

static void err_set_text(struct db_error *err, enum db_error_class klass,
                         const char *sqlstate, const char *prefix,
                         const char *text, const struct dbpool *p)
{
    char *clean = dbpool_scrub(p, text);
    size_t used;

    err_set(err, klass, sqlstate, "%s", prefix != NULL ? prefix : "");
    used = strlen(err->message);
    copy_libpq_message(err->message + used, sizeof(err->message) - used,
                       clean);
    secure_free_str(clean);
}

/*
 * Decides what a caller does with a failed statement, from its SQLSTATE.
 * An empty state means libpq itself gave up (no server answer).
 */
static enum db_error_class classify_sqlstate(const char *state,
                                             const char *msg, bool link_bad)
{
    if (link_bad)
        return DB_ERR_UNREACHABLE;
    if (state == NULL || state[0] == '\0')
        return DB_ERR_INTERNAL;
    if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
        strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0)
        return DB_ERR_UNREACHABLE;
    /* statement_timeout on the server, or our cancel after the deadline. */
    if (strcmp(state, "57014") == 0)
        return DB_ERR_TIMEOUT;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
        strcmp(state, "55P03") == 0)
        return DB_ERR_TRANSIENT;
    /* Concurrent GRANTs on one object: a retry succeeds (PERF_NOTES.md). */
    if (strcmp(state, "XX000") == 0 && msg != NULL &&
        strstr(msg, "tuple concurrently updated") != NULL)
        return DB_ERR_TRANSIENT;
    if (strncmp(state, "28", 2) == 0 || strcmp(state, "3D000") == 0)
        return DB_ERR_AUTH;
    return DB_ERR_SQL;
}

/*
 * libpq reports a failed connection as text only: the server's FATAL
 * SQLSTATE is not reachable through the public API. Recognise the
 * authentication failures by their (English) wording; anything else means
 * "try again later".
 */
static const struct {
    const char *needle;
    const char *sqlstate;
} auth_markers[] = {
    {"password authentication failed", "28P01"},
    {"no password supplied", "28P01"},
    {"authentication failed", "28000"},
    {"no pg_hba.conf entry", "28000"},
    {"pg_hba.conf rejects", "28000"},
    {"is not permitted to log in", "28000"},
    {"permission denied for database", "42501"},
};

static void conn_close(struct dbpool_conn *base);

static void classify_connect_failure(PGconn *pg, const struct dbpool *p,
                                     struct db_error *err)
{
    const char *msg = pg != NULL ? PQerrorMessage(pg) : "out of memory";
    const char *state = "";
    enum db_error_class klass = DB_ERR_UNREACHABLE;

    for (size_t i = 0; i < ARRAY_LEN(auth_markers); i++) {
        if (strstr(msg, auth_markers[i].needle) != NULL) {
            klass = DB_ERR_AUTH;
            state = auth_markers[i].sqlstate;
            break;
        }
    }
    if (klass == DB_ERR_UNREACHABLE && strstr(msg, "does not exist") != NULL) {
        if (strstr(msg, "FATAL:  database \"") != NULL) {
            klass = DB_ERR_AUTH;
            state = "3D000";
        } else if (strstr(msg, "FATAL:  role \"") != NULL) {
            klass = DB_ERR_AUTH;
            state = "28000";
        }
    }
    err_set_text(err, klass, state, NULL, msg, p);
}

/* ======================================================= connections == */

/*
 * Server notices would go to stderr by default (DROP ROLE IF EXISTS says
 * "skipping"). Log them at debug level instead. A FATAL arriving as a
 * notice is the server explaining why it is about to hang up (shutdown,
 * pg_terminate_backend): the connection must not be lent again.
 */
static void notice_receiver(void *arg, const PGresult *res)
{
    struct db_conn *c = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        c->base.broken = true;
    log_debug("db: server %s: %s", sev != NULL ? sev : "notice",
              msg != NULL ? msg : "");
}

/* ------------------------------------------------------- deadlines -- */

enum wait_result {
    WAIT_READY = 1,
    WAIT_TIMEOUT = 2,
    WAIT_ERROR = 3,
};

/* Waits until pg's socket can be read (or written) or deadline passes. */
static enum wait_result sock_wait(PGconn *pg, bool rd, bool wr,
                                  double deadline)
{
    struct pollfd pfd;
    double left;
    int n;

    for (;;) {
        pfd.fd = PQsocket(pg);
        pfd.events = (short)((rd ? POLLIN : 0) | (wr ? POLLOUT : 0));
        pfd.revents = 0;
        if (pfd.fd < 0)
            return WAIT_ERROR;
        left = deadline - time_mono();
        if (left <= 0)
            return WAIT_TIMEOUT;
        n = poll(&pfd, 1, left > 60 ? 60000 : (int)ceil(left * 1000));
        if (n > 0)
            return WAIT_READY;
        if (n < 0 && errno != EINTR)
            return WAIT_ERROR;
    }
}

/* time_mono() seconds as a timespec (the condition variables here wait
   on CLOCK_MONOTONIC). */
/* ---------------------------------------------------------- cancel -- */

/*
 * PQcancel opens a new connection to the server and blocks until the
 * server closes it, with no timeout of its own: against a hung network it
 * could block a worker for minutes. So it runs on a short-lived detached
 * thread, and the caller only waits CANCEL_GRACE for the statement's
 * answer. Whoever finishes last frees the job.
 */
struct cancel_job {
    PGcancel *cancel;
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    bool done;          /* PQcancel has returned (or never ran) */
    int refs;
};

static atomic_int cancels_in_flight;

static void cancel_job_unref(struct cancel_job *j)
{
    bool last;

    pthread_mutex_lock(&j->mu);
    last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) {
        PQfreeCancel(j->cancel);
        pthread_cond_destroy(&j->done_cv);
        pthread_mutex_destroy(&j->mu);
        free(j);
    }
}

static void cancel_job_finish(struct cancel_job *j)
{
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_broadcast(&j->done_cv);
    pthread_mutex_unlock(&j->mu);
}

/*
 * Waits until j's PQcancel has returned, at most until deadline. A cancel
 * still travelling could land on the connection's next statement (another
 * request's CREATE ROLE), so a connection whose cancel has not finished
 * must not be reused. Returns whether it finished.
 */
static bool cancel_job_wait(struct cancel_job *j, double deadline)
{
    struct timespec ts;
    bool done;

    dbpool_timespec_of(deadline, &ts);
    pthread_mutex_lock(&j->mu);
    while (!j->done &&
           pthread_cond_timedwait(&j->done_cv, &j->mu, &ts) == 0)
        ;
    done = j->done;
    pthread_mutex_unlock(&j->mu);
    return done;
}

static void *cancel_main(void *arg)
{
    struct cancel_job *j = arg;
    char msg[256];

    if (PQcancel(j->cancel, msg, (int)sizeof(msg)) == 0)
        log_debug("db: cancel request failed: %s", msg);
    atomic_fetch_sub(&cancels_in_flight, 1);
    cancel_job_finish(j);
    cancel_job_unref(j);
    return NULL;
}

/*
 * Asks the server to cancel c's running statement; never blocks. Returns
 * the job (the caller's reference: cancel_job_wait, then unref), or NULL
 * when no cancel was sent (too many in flight).
 */
static struct cancel_job *conn_send_cancel(struct db_conn *c)
{
    struct cancel_job *j;
    pthread_condattr_t cattr;
    pthread_attr_t attr;
    pthread_t th;

    if (atomic_fetch_add(&cancels_in_flight, 1) >= MAX_CANCELS) {
        atomic_fetch_sub(&cancels_in_flight, 1);
        return NULL;
    }
    j = xcalloc(1, sizeof(*j));
    j->cancel = PQgetCancel(c->pg);
    j->refs = 2;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC); /* timespec_of */
    pthread_cond_init(&j->done_cv, &cattr);
    pthread_condattr_destroy(&cattr);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (j->cancel == NULL ||
        pthread_create(&th, &attr, cancel_main, j) != 0) {
        atomic_fetch_sub(&cancels_in_flight, 1);
        j->refs = 1;
        j->done = true;
    }
    pthread_attr_destroy(&attr);
    return j;
}

/* --------------------------------------------------------- round trip -- */

static bool result_failed(const PGresult *r)
{
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        return false;
    default:
        return true;
    }
}

/*
 * Reads every result of the query in flight until deadline. Returns the
 * one to report (the first failure, else the last result), or NULL with
 * *timed_out set, or NULL when the link failed (PQerrorMessage says why).
 * Never blocks past the deadline: PQgetResult is only called when libpq
 * holds a whole result.
 */
static PGresult *collect_results(struct db_conn *c, double deadline,
                                 bool *timed_out)
{
    PGresult *keep = NULL, *r;
    enum wait_result w;
    ExecStatusType st;

    for (;;) {
        while (PQisBusy(c->pg)) {
            w = sock_wait(c->pg, true, false, deadline);
            if (w == WAIT_TIMEOUT) {
                *timed_out = true;
                goto fail;
            }
            if (w == WAIT_ERROR ||
                (PQconsumeInput(c->pg) == 0 &&
                 PQstatus(c->pg) != CONNECTION_BAD))
                goto fail;
        }
        r = PQgetResult(c->pg);
        if (r == NULL)
            break;
        st = PQresultStatus(r);
        if (keep != NULL && result_failed(keep)) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT ||
            st == PGRES_COPY_BOTH)
            break; /* no end in sight: exec_raw breaks the connection */
    }
    return keep;
fail:
    PQclear(keep);
    return NULL;
}

/* Sends a query without blocking; false when libpq refused or the link
 * failed (*timed_out tells a deadline apart). */
static bool send_query(struct db_conn *c, const char *sql, int nparams,
                       const char *const *params, bool script,
                       double deadline, bool *timed_out)
{
    enum wait_result w;
    int f;

    if (script ? PQsendQuery(c->pg, sql) == 0
               : PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL,
                                   NULL, 0) == 0)
        return false;
    while ((f = PQflush(c->pg)) == 1) {
        w = sock_wait(c->pg, true, true, deadline);
        if (w == WAIT_TIMEOUT)
            *timed_out = true;
        if (w != WAIT_READY || PQconsumeInput(c->pg) == 0)
            return false;
    }
    return f == 0;
}

/*
 * Runs one query with a deadline. On expiry the statement is cancelled
 * and its answer awaited CANCEL_GRACE more: if it comes (an error, or a
 * success that won the race) the connection stays usable and that answer
 * is returned; if not, the connection is marked broken (closing it ends
 * the session, and with it the statement and its transaction, as soon as
 * the server notices). NULL with *timed_out, or NULL on a link failure.
 */
static PGresult *roundtrip(struct db_conn *c, const char *sql, int nparams,
                           const char *const *params, bool script,
                           double deadline, bool *timed_out)
{
    struct cancel_job *cancel;
    PGresult *r = NULL;
    double grace;

    *timed_out = false;
    if (!send_query(c, sql, nparams, params, script, deadline, timed_out)) {
        c->base.broken = c->base.broken || *timed_out ||
                    PQstatus(c->pg) != CONNECTION_OK;
        return NULL;
    }
    r = collect_results(c, deadline, timed_out);
    if (r != NULL || !*timed_out)
        return r;
    cancel = conn_send_cancel(c);
    grace = time_mono() + CANCEL_GRACE;
    r = collect_results(c, grace, timed_out);
    /* The statement may have answered before the cancel landed: then the
       connection is reusable only once the cancel cannot land any more. */
    if (cancel != NULL) {
        if (!cancel_job_wait(cancel, grace))
            c->base.broken = true;
        cancel_job_unref(cancel);
    }
    if (r == NULL) {
        c->base.broken = true;
        *timed_out = true;
        return NULL;
    }
    /* The server answered in time after all: report what it said. */
    *timed_out = result_failed(r) &&
                 PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL &&
                 strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014") == 0;
    return r;
}

/* Fills err for a call that ran out of time after `limit` seconds. */
static void timeout_error(struct db_conn *c, double limit,
                          struct db_error *err)
{
    dbpool_note_timeout(c->base.pool);
    if (dbpool_budget_spent())
        err_set(err, DB_ERR_TIMEOUT, "57014",
                "the request ran out of time (max_request_duration) while "
                "waiting for the database; the statement was cancelled");
    else
        err_set(err, DB_ERR_TIMEOUT, "57014",
                "the database did not answer within %gs "
                "(statement_timeout); the statement was cancelled", limit);
}

/* ---------------------------------------------------------- connecting -- */

/*
 * Makes sure the session runs in UTC. Normally the options we pass at
 * connect time already did it; a conninfo with its own "options" overrides
 * ours, so check what the server reports and SET it otherwise.
 */
static int session_set_utc(struct db_conn *c, double deadline,
                           struct db_error *err)
{
    const char *tz = PQparameterStatus(c->pg, "TimeZone");
    PGresult *res = NULL;
    bool timed_out = false;
    int rc = 0;

    if (tz != NULL && strcmp(tz, "UTC") == 0)
        return 0;
    res = roundtrip(c, "SET TimeZone TO 'UTC'", 0, NULL, true, deadline,
                    &timed_out);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        err_set_text(err, timed_out ? DB_ERR_TIMEOUT : DB_ERR_UNREACHABLE, "",
                     NULL, PQerrorMessage(c->pg), c->base.pool);
        rc = COFFER_EIO;
    }
    PQclear(res);
    return rc;
}

/*
 * Connects without blocking past deadline (libpq's own connect_timeout
 * only applies to blocking connects, and never covers a server that
 * accepts TCP and then says nothing). Returns the PGconn, in whatever
 * state it reached; *timed_out tells a deadline from a refusal.
 */
static PGconn *connect_until(const char *const *keys, const char *const *vals,
                             double deadline, bool *timed_out)
{
    PGconn *pg = PQconnectStartParams(keys, vals, 1);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    enum wait_result w;

    *timed_out = false;
    if (pg == NULL || PQstatus(pg) == CONNECTION_BAD)
        return pg;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        w = sock_wait(pg, st == PGRES_POLLING_READING,
                      st == PGRES_POLLING_WRITING, deadline);
        if (w == WAIT_TIMEOUT) {
            *timed_out = true;
            break;
        }
        if (w == WAIT_ERROR)
            break;
        st = PQconnectPoll(pg);
    }
    return pg;
}

/*
 * Opens one connection for pool p (ops.open). Blocks until the connect
 * timeout (or the request's budget) at most; called without any lock.
 */
static struct dbpool_conn *conn_open(struct dbpool *p, struct db_error *err)
{
    char timeout_str[16], options[96];
    /*
     * Our defaults come before "dbname": libpq expands the conninfo given
     * as dbname in place and later values win, so whatever the conninfo
     * says itself (connect_timeout, options, application_name) prevails.
     */
    const char *keys[] = {"connect_timeout", "fallback_application_name",
                          "client_encoding", "options", "dbname", NULL};
    const char *vals[] = {timeout_str, "coffer", "UTF8", options,
                          p->conninfo, NULL};
    double limit = p->connect_timeout;
    double deadline = dbpool_deadline_after(limit);
    PGconn *pg = NULL;
    struct db_conn *c = NULL;
    bool timed_out = false;

    /* libpq takes whole seconds (and treats 1 as 2). */
    snprintf(timeout_str, sizeof(timeout_str), "%d", (int)ceil(limit));
    /*
     * The server enforces the statement limit by itself (a cancel may not
     * get through); the client's deadline leaves it a moment to do so.
     */
    snprintf(options, sizeof(options),
             "-c TimeZone=UTC -c statement_timeout=%lld",
             (long long)ceil(p->statement_timeout * 1000));
    pg = connect_until(keys, vals, deadline, &timed_out);
    if (timed_out) {
        if (dbpool_budget_spent())
            err_set(err, DB_ERR_TIMEOUT, "", "the request ran out of time "
                    "(max_request_duration) while connecting to the "
                    "database");
        else
            err_set(err, DB_ERR_TIMEOUT, "", "timed out after %gs "
                    "connecting to the database (connect_timeout)", limit);
        goto out;
    }
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        classify_connect_failure(pg, p, err);
        goto out;
    }
    c = xcalloc(1, sizeof(*c));
    c->base.pool = p;
    c->pg = pg;
    pg = NULL;
    /* c outlives pg, so it can be the receiver's argument. */
    PQsetNoticeReceiver(c->pg, notice_receiver, c);
    if (PQsetnonblocking(c->pg, 1) != 0 ||
        session_set_utc(c, deadline, err) != 0) {
        if (err->klass == DB_OK)
            err_set(err, DB_ERR_INTERNAL, "", "cannot make the database "
                    "connection non-blocking");
        conn_close(&c->base);
        c = NULL;
    }
out:
    if (pg != NULL)
        PQfinish(pg);
    return c != NULL ? &c->base : NULL;
}

static void conn_close(struct dbpool_conn *base)
{
    struct db_conn *c = (struct db_conn *)base;

    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c);
}

/*
 * Checks an idle connection without blocking (ops.alive). PQstatus alone
 * only knows what the last call saw; a server restart is noticed by
 * reading what the server sent meanwhile (a FATAL notice, then EOF).
 */
static bool conn_alive(struct dbpool_conn *base)
{
    struct db_conn *c = (struct db_conn *)base;
    struct pollfd pfd;
    int n;

    if (c->base.broken || PQstatus(c->pg) != CONNECTION_OK)
        return false;
    pfd.fd = PQsocket(c->pg);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd < 0)
        return false;
    n = poll(&pfd, 1, 0);
    if (n < 0)
        return false;
    if (n > 0 && PQconsumeInput(c->pg) == 0)
        return false;
    return !c->base.broken && PQstatus(c->pg) == CONNECTION_OK &&
           PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

/*
 * Ends whatever transaction a returned connection is still in, so the
 * next borrower never inherits it (ops.make_clean). Marks the connection
 * broken when that cannot be done.
 */
static void conn_make_clean(struct dbpool_conn *base)
{
    struct db_conn *c = (struct db_conn *)base;
    PGTransactionStatusType ts;

    if (c->base.broken || PQstatus(c->pg) != CONNECTION_OK) {
        c->base.broken = true;
        return;
    }
    ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
        db_rollback(c);
    else if (ts != PQTRANS_IDLE)
        c->base.broken = true; /* ACTIVE/UNKNOWN: a query is mid-flight */
    if (!c->base.broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        c->base.broken = true;
}

/* ============================================================= pools == */

/*
 * ops.prepare: collects the passwords to scrub and parses the conninfo
 * now, so that a malformed one is refused at configure time. libpq's
 * complaint quotes the string: it is scrubbed like any other.
 */
static int pool_prepare(struct dbpool *p, const struct db_pool_config *cfg,
                        struct db_error *err)
{
    PQconninfoOption *opts = NULL;
    char *errmsg = NULL;
    int rc = 0;

    db__secrets_collect(&p->secrets, cfg->conninfo, cfg->secrets,
                        cfg->nsecrets);
    opts = PQconninfoParse(p->conninfo, &errmsg);
    if (opts == NULL) {
        err_set_text(err, DB_ERR_SQL, "", "invalid connection string: ",
                     errmsg != NULL ? errmsg : "out of memory", p);
        rc = COFFER_EINVAL;
    }
    /*
     * libpq's own copies may hold the password; PQconninfoFree does not
     * wipe. We cannot reach into them safely, so free promptly instead.
     */
    PQconninfoFree(opts);
    PQfreemem(errmsg);
    return rc;
}

static const struct dbpool_ops pg_ops = {
    .driver = "postgresql",
    .prepare = pool_prepare,
    .free_data = NULL,
    .open = conn_open,
    .close = conn_close,
    .alive = conn_alive,
    .make_clean = conn_make_clean,
};

int db_pool_configure(const char *key, const struct db_pool_config *cfg,
                      bool verify, struct db_error *err)
{
    return dbpool_configure(&pg_ops, key, cfg, verify, err);
}

void db_pool_remove(const char *key)
{
    dbpool_remove(&pg_ops, key);
}

bool db_pool_exists(const char *key)
{
    return dbpool_exists(&pg_ops, key);
}

void db_shutdown(void)
{
    dbpool_shutdown(&pg_ops);
}

struct db_conn *db_acquire(const char *key, struct db_error *err)
{
    return (struct db_conn *)dbpool_acquire(&pg_ops, key, err);
}

void db_release(struct db_conn *c)
{
    dbpool_release(c != NULL ? &c->base : NULL);
}

/* ======================================================= statements == */

static void result_init(struct db_result *res)
{
    memset(res, 0, sizeof(*res));
}

void db_result_release(struct db_result *res)
{
    size_t n;

    if (res == NULL)
        return;
    n = (size_t)res->nrows * (size_t)res->ncols;
    for (size_t i = 0; res->cells != NULL && i < n; i++)
        secure_free_str(res->cells[i]);
    for (int i = 0; res->colnames != NULL && i < res->ncols; i++)
        free(res->colnames[i]);
    free(res->cells);
    free(res->colnames);
    result_init(res);
}

/*
 * Copies every cell of r into res, wiping each value inside the PGresult
 * as it goes: the caller PQclears it right after, and libpq does not
 * wipe (rows may hold passwords).
 */
static void result_copy(PGresult *r, struct db_result *res)
{
    const char *tuples = PQcmdTuples(r);
    int nrows = PQntuples(r), ncols = PQnfields(r);
    char *v;

    res->affected = tuples[0] != '\0' ? strtoll(tuples, NULL, 10) : 0;
    res->nrows = nrows;
    res->ncols = ncols;
    res->colnames = xcalloc((size_t)ncols, sizeof(char *));
    res->cells = xcalloc((size_t)nrows * (size_t)ncols, sizeof(char *));
    for (int j = 0; j < ncols; j++)
        res->colnames[j] = xstrdup(PQfname(r, j));
    for (int i = 0; i < nrows; i++) {
        for (int j = 0; j < ncols; j++) {
            if (PQgetisnull(r, i, j))
                continue;
            v = PQgetvalue(r, i, j);
            res->cells[(size_t)i * (size_t)ncols + (size_t)j] =
                xstrndup(v, (size_t)PQgetlength(r, i, j));
            explicit_bzero(v, (size_t)PQgetlength(r, i, j));
        }
    }
}

/* Fills err from a failed statement and marks a lost link broken. */
static void exec_failure(struct db_conn *c, const PGresult *r,
                         struct db_error *err)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE)
                                  : NULL;
    const char *primary =
        r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    bool link_bad = PQstatus(c->pg) != CONNECTION_OK;
    enum db_error_class klass = classify_sqlstate(state, primary, link_bad);
    char *joined = NULL;

    if (primary == NULL) {
        joined = xstrdup(r != NULL ? PQresultErrorMessage(r)
                                   : PQerrorMessage(c->pg));
        primary = joined;
    }
    err_set_text(err, klass, state, NULL, primary, c->base.pool);
    if (err->message[0] == '\0')
        snprintf(err->message, sizeof(err->message),
                 "the database connection failed");
    if (klass == DB_ERR_UNREACHABLE)
        c->base.broken = true;
    secure_free_str(joined);
}

/* The client-side deadline of a statement on this thread. */
static double statement_deadline(const struct dbpool *p, double *limit)
{
    /* A moment past the server's own statement_timeout, so that it
     * normally speaks first and the connection stays usable. */
    *limit = p->statement_timeout;
    return dbpool_deadline_after(p->statement_timeout + 0.25);
}

/* exec_raw without the counting (below). */
static PGresult *exec_checked(struct db_conn *c, const char *sql,
                              int nparams, const char *const *params,
                              bool script, struct db_error *err)
{
    PGresult *r = NULL;
    bool timed_out = false;
    double limit, deadline;

    if (c == NULL || sql == NULL || nparams < 0 ||
        (nparams > 0 && params == NULL)) {
        err_set(err, DB_ERR_INTERNAL, "", "invalid statement arguments");
        return NULL;
    }
    if (c->base.broken) {
        err_set(err, DB_ERR_UNREACHABLE, "",
                "the database connection was lost");
        return NULL;
    }
    deadline = statement_deadline(c->base.pool, &limit);
    r = roundtrip(c, sql, nparams, params, script, deadline, &timed_out);
    if (timed_out) {
        timeout_error(c, limit, err);
        PQclear(r);
        return NULL;
    }
    if (r == NULL) {
        exec_failure(c, NULL, err);
        c->base.broken = true;
        err->klass = DB_ERR_UNREACHABLE;
        return NULL;
    }
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        return r;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
        /* The session is now stuck in COPY mode: never reuse it. */
        c->base.broken = true;
        err_set(err, DB_ERR_SQL, "", "COPY is not supported");
        break;
    default:
        exec_failure(c, r, err);
        break;
    }
    PQclear(r);
    return NULL;
}

/*
 * Runs one statement, or with script (and no parameters) a string of
 * statements in one round trip, within the statement deadline. Returns
 * the successful (last) result (the caller copies what it needs and
 * PQclears it at once) or NULL with err filled. Every statement a plugin
 * runs passes here: its latency and outcome are counted per pool.
 */
static PGresult *exec_raw(struct db_conn *c, const char *sql, int nparams,
                          const char *const *params, bool script,
                          struct db_error *err)
{
    double start = time_mono();
    PGresult *r = exec_checked(c, sql, nparams, params, script, err);

    if (c != NULL)
        dbpool_note_statement(c->base.pool, (time_mono() - start) * 1000.0,
                            r == NULL);
    return r;
}

int db_exec(struct db_conn *c, const char *sql, int nparams,
            const char *const *params, struct db_result *res,
            struct db_error *err)
{
    struct db_error scratch;
    PGresult *r;

    if (err == NULL)
        err = &scratch;
    db_error_clear(err);
    if (res != NULL)
        result_init(res);
    r = exec_raw(c, sql, nparams, params, false, err);
    if (r == NULL)
        return err->klass == DB_ERR_INTERNAL ? COFFER_EINVAL : COFFER_EIO;
    if (res != NULL)
        result_copy(r, res);
    PQclear(r);
    return 0;
}

int db_exec_script(struct db_conn *c, const char *sql, struct db_error *err)
{
    struct db_error scratch;
    PGresult *r;

    if (err == NULL)
        err = &scratch;
    db_error_clear(err);
    r = exec_raw(c, sql, 0, NULL, true, err);
    if (r == NULL)
        return err->klass == DB_ERR_INTERNAL ? COFFER_EINVAL : COFFER_EIO;
    PQclear(r);
    return 0;
}

int db_begin(struct db_conn *c, struct db_error *err)
{
    return db_exec(c, "BEGIN", 0, NULL, NULL, err);
}

int db_commit(struct db_conn *c, struct db_error *err)
{
    struct db_error scratch;
    PGresult *r;
    int rc = 0;

    if (err == NULL)
        err = &scratch;
    db_error_clear(err);
    r = exec_raw(c, "COMMIT", 0, NULL, false, err);
    if (r == NULL)
        return COFFER_EIO;
    /*
     * COMMIT of a transaction that already failed "succeeds" with the tag
     * ROLLBACK. Nothing was committed: a caller must not believe it was.
     */
    if (strcmp(PQcmdStatus(r), "ROLLBACK") == 0) {
        err_set(err, DB_ERR_SQL, "25P02",
                "the transaction was aborted by an earlier error and has "
                "been rolled back");
        rc = COFFER_EIO;
    }
    PQclear(r);
    return rc;
}

void db_rollback(struct db_conn *c)
{
    PGresult *r = NULL;
    bool timed_out = false;

    if (c == NULL || c->base.broken || PQstatus(c->pg) != CONNECTION_OK) {
        if (c != NULL)
            c->base.broken = true;
        return;
    }
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
        return;
    /*
     * Not capped by the request budget: a ROLLBACK that cannot run closes
     * the connection, which rolls back too, but costs a reconnect.
     */
    r = roundtrip(c, "ROLLBACK", 0, NULL, true,
                  time_mono() + (c->base.pool->statement_timeout < 5
                                     ? c->base.pool->statement_timeout : 5),
                  &timed_out);
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        c->base.broken = true;
    PQclear(r);
}

char *db_escape(struct db_conn *c, const char *s, size_t n, bool literal,
                struct db_error *err)
{
    struct db_error scratch;
    char *q, *out = NULL;

    if (err == NULL)
        err = &scratch;
    db_error_clear(err);
    if (c == NULL || c->pg == NULL || s == NULL || memchr(s, '\0', n)) {
        err_set(err, DB_ERR_SQL, "", "cannot quote a value holding a NUL "
                "byte");
        return NULL;
    }
    q = literal ? PQescapeLiteral(c->pg, s, n)
                : PQescapeIdentifier(c->pg, s, n);
    if (q == NULL) {
        /* libpq's message names the problem, never the value. */
        err_set_text(err, DB_ERR_SQL, "", "cannot quote a value: ",
                     PQerrorMessage(c->pg), c->base.pool);
        return NULL;
    }
    out = xstrdup(q);
    explicit_bzero(q, strlen(q));
    PQfreemem(q);
    return out;
}

char *db_quote_ident(const char *name)
{
    size_t n = 2, o = 0;
    char *out;

    if (name == NULL)
        return NULL;
    for (const char *s = name; *s != '\0'; s++)
        n += *s == '"' ? 2 : 1;
    out = xmalloc(n + 1);
    out[o++] = '"';
    for (const char *s = name; *s != '\0'; s++) {
        out[o++] = *s;
        if (*s == '"')
            out[o++] = '"';
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
