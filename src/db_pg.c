/*
 * db_pg.c - the PostgreSQL driver: connection pools, statements,
 * transactions (libpq).
 *
 * Owns: the global table of pools, every PGconn Coffer opens, and the
 * translation of libpq/PostgreSQL failures into struct db_error. Does not
 * own: what the statements say (the Lua engines build them), connection
 * URL templating (the database engine fills credentials before calling
 * db_pool_configure), retry policy (callers decide from err->klass).
 *
 * Locking. One global mutex guards the table (a short list: one pool per
 * database config). Each pool has its own mutex and condition variable
 * guarding its idle list and counters. Order: global, then pool; never
 * the other way. No lock is held while talking to the server: connecting
 * costs ~15 ms of SCRAM (PERF_NOTES.md), so opening, closing and queries
 * all happen outside the pool lock. The only I/O under a pool lock is a
 * non-blocking poll()/PQconsumeInput on an idle connection.
 *
 * Lifetimes. The table holds one reference on each pool, every lent
 * connection holds one more. Replacing or removing a pool marks it closed,
 * closes its idle connections and drops the table's reference; connections
 * still lent keep the pool alive and are closed when they come back.
 *
 *     idle list (LIFO) <-- db_release -- lent --> db_exec ...
 *          |                                ^
 *          +----------- db_acquire ---------+
 *                  (or open a new one while nopen < max_open,
 *                   or wait on the condvar until connect_timeout)
 *
 * The idle list is a stack so that the busy head is reused and the tail
 * ages out through idle_timeout when traffic drops.
 */
#include "db_pg.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "log.h"
#include "util.h"

#define DEFAULT_MAX_OPEN 4
#define DEFAULT_IDLE_TIMEOUT 300.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define REDACTED "xxxxx"

struct db_pool;

struct db_conn {
    PGconn *pg;
    struct db_pool *pool;
    double created;     /* time_mono() when connected */
    double idle_since;  /* time_mono() when last returned */
    bool broken;        /* never reuse: link lost or server said FATAL */
    struct db_conn *next; /* idle list link */
};

struct db_pool {
    char *key;
    /*
     * Secrets: the connection string and the passwords found in it, kept
     * only so that error messages can be scrubbed of them. Wiped on free.
     */
    char *conninfo;
    char *password;      /* as libpq decodes it; NULL if none */
    char *raw_password;  /* as written in a URL (maybe %-encoded); or NULL */
    char timeout_str[16]; /* libpq connect_timeout, whole seconds */
    int max_open;
    int max_idle;
    double max_lifetime;  /* 0 = unlimited */
    double idle_timeout;
    double connect_timeout;

    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;    /* a connection or a slot came free, or closed */
    struct db_conn *idle;
    int nidle;
    int nopen;            /* idle + lent + being opened */
    int refs;             /* table + lent connections + acquirers */
    bool closed;          /* replaced or removed: no new lending */
    struct db_pool *next; /* table link, guarded by table_mu */
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct db_pool *table;

/* ============================================================ errors == */

static void err_clear(struct db_error *err)
{
    err->klass = DB_OK;
    err->sqlstate[0] = '\0';
    err->message[0] = '\0';
}

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

/*
 * Replaces every occurrence of secret in msg (a buffer of size n) by repl,
 * truncating if the result does not fit. The scratch copy is wiped: it may
 * hold pieces of the secret.
 */
static void redact(char *msg, size_t n, const char *secret, const char *repl)
{
    char out[sizeof(((struct db_error *)0)->message)];
    size_t slen, rlen, o = 0;
    const char *p = msg;

    if (secret == NULL || secret[0] == '\0' || n > sizeof(out))
        return;
    slen = strlen(secret);
    rlen = strlen(repl);
    while (o + 1 < n && *p != '\0') {
        if (strncmp(p, secret, slen) == 0) {
            size_t k = rlen < n - 1 - o ? rlen : n - 1 - o;
            memcpy(out + o, repl, k);
            o += k;
            p += slen;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    memcpy(msg, out, o + 1);
    explicit_bzero(out, sizeof(out));
}

/* Scrubs the connection string and its passwords out of err->message. */
static void err_scrub(struct db_error *err, const struct db_pool *p)
{
    if (p == NULL)
        return;
    redact(err->message, sizeof(err->message), p->conninfo,
           "<connection string>");
    redact(err->message, sizeof(err->message), p->raw_password, REDACTED);
    redact(err->message, sizeof(err->message), p->password, REDACTED);
}

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

static void classify_connect_failure(PGconn *pg, const struct db_pool *p,
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
    err_set(err, klass, state, "%s", "");
    copy_libpq_message(err->message, sizeof(err->message), msg);
    err_scrub(err, p);
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
        c->broken = true;
    log_debug("db: server %s: %s", sev != NULL ? sev : "notice",
              msg != NULL ? msg : "");
}

/*
 * Makes sure the session runs in UTC. Normally the options we pass at
 * connect time already did it; a conninfo with its own "options" overrides
 * ours, so check what the server reports and SET it otherwise.
 */
static int session_set_utc(PGconn *pg, struct db_error *err)
{
    const char *tz = PQparameterStatus(pg, "TimeZone");
    PGresult *res = NULL;
    int rc = 0;

    if (tz != NULL && strcmp(tz, "UTC") == 0)
        return 0;
    res = PQexec(pg, "SET TimeZone TO 'UTC'");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        err_set(err, DB_ERR_UNREACHABLE, "", "%s", "");
        copy_libpq_message(err->message, sizeof(err->message),
                           PQerrorMessage(pg));
        rc = COFFER_EIO;
    }
    PQclear(res);
    return rc;
}

/*
 * Opens one connection for pool p. Blocks up to the connect timeout; call
 * it without holding any lock. Returns a new connection (not yet counted
 * anywhere, holding no pool reference) or NULL with err filled.
 */
static struct db_conn *conn_open(struct db_pool *p, struct db_error *err)
{
    /*
     * Our defaults come before "dbname": libpq expands the conninfo given
     * as dbname in place and later values win, so whatever the conninfo
     * says itself (connect_timeout, options, application_name) prevails.
     */
    const char *keys[] = {"connect_timeout", "fallback_application_name",
                          "client_encoding", "options", "dbname", NULL};
    const char *vals[] = {p->timeout_str, "coffer", "UTF8",
                          "-c TimeZone=UTC", p->conninfo, NULL};
    PGconn *pg = NULL;
    struct db_conn *c = NULL;

    pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        classify_connect_failure(pg, p, err);
        goto out;
    }
    c = xcalloc(1, sizeof(*c));
    c->pool = p;
    c->created = time_mono();
    /* c outlives pg, so it can be the receiver's argument. */
    PQsetNoticeReceiver(pg, notice_receiver, c);
    if (session_set_utc(pg, err) != 0) {
        err_scrub(err, p);
        free(c);
        c = NULL;
        goto out;
    }
    c->pg = pg;
    pg = NULL;
    log_debug("db: %s: opened a connection", p->key);
out:
    if (pg != NULL)
        PQfinish(pg);
    return c;
}

static void conn_close(struct db_conn *c)
{
    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c);
}

static void conn_close_list(struct db_conn *list)
{
    struct db_conn *next;

    for (; list != NULL; list = next) {
        next = list->next;
        conn_close(list);
    }
}

/*
 * Checks an idle connection without blocking. PQstatus alone only knows
 * what the last call saw; a server restart is noticed by reading what the
 * server sent meanwhile (a FATAL notice, then EOF).
 */
static bool conn_alive(struct db_conn *c)
{
    struct pollfd pfd;
    int n;

    if (c->broken || PQstatus(c->pg) != CONNECTION_OK)
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
    return !c->broken && PQstatus(c->pg) == CONNECTION_OK &&
           PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

static bool conn_expired(const struct db_pool *p, const struct db_conn *c,
                         double now)
{
    if (p->max_lifetime > 0 && now - c->created >= p->max_lifetime)
        return true;
    return now - c->idle_since >= p->idle_timeout;
}

/* ============================================================= pools == */

/*
 * Finds the password in a URL as the user wrote it (postgresql://u:PW@h),
 * percent-encoding and all, because libpq's parse errors quote the raw
 * text. Returns a new string or NULL.
 */
static char *url_raw_password(const char *conninfo)
{
    const char *p, *end, *colon;

    if (!str_has_prefix(conninfo, "postgresql://") &&
        !str_has_prefix(conninfo, "postgres://"))
        return NULL;
    p = strstr(conninfo, "://") + 3;
    end = p + strcspn(p, "@/?");
    if (*end != '@')
        return NULL;
    colon = memchr(p, ':', (size_t)(end - p));
    if (colon == NULL || colon + 1 == end)
        return NULL;
    return xstrndup(colon + 1, (size_t)(end - colon - 1));
}

/*
 * Parses the conninfo now, so a malformed one is refused at configure
 * time, and keeps its password for scrubbing messages.
 */
static int pool_parse_conninfo(struct db_pool *p, struct db_error *err)
{
    PQconninfoOption *opts = NULL, *o;
    char *errmsg = NULL;
    int rc = 0;

    opts = PQconninfoParse(p->conninfo, &errmsg);
    if (opts == NULL) {
        err_set(err, DB_ERR_SQL, "", "invalid connection string: %s", "");
        copy_libpq_message(err->message + strlen(err->message),
                           sizeof(err->message) - strlen(err->message),
                           errmsg != NULL ? errmsg : "out of memory");
        rc = COFFER_EINVAL;
        goto out;
    }
    for (o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL &&
            o->val[0] != '\0')
            p->password = xstrdup(o->val);
    }
out:
    /*
     * libpq's own copies may hold the password; PQconninfoFree does not
     * wipe. We cannot reach into them safely, so free promptly instead.
     */
    PQconninfoFree(opts);
    PQfreemem(errmsg);
    return rc;
}

static void pool_free(struct db_pool *p)
{
    if (p == NULL)
        return;
    conn_close_list(p->idle);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    secure_free_str(p->conninfo);
    secure_free_str(p->password);
    secure_free_str(p->raw_password);
    free(p->key);
    free(p);
}

static void pool_init_limits(struct db_pool *p,
                             const struct db_pool_config *cfg)
{
    double timeout;

    p->max_open = cfg->max_open > 0 ? cfg->max_open : DEFAULT_MAX_OPEN;
    p->max_idle = cfg->max_idle > 0 ? cfg->max_idle : p->max_open;
    if (p->max_idle > p->max_open)
        p->max_idle = p->max_open;
    p->max_lifetime = cfg->max_lifetime > 0 ? (double)cfg->max_lifetime : 0;
    p->idle_timeout = cfg->idle_timeout > 0 ? (double)cfg->idle_timeout
                                            : DEFAULT_IDLE_TIMEOUT;
    timeout = cfg->connect_timeout > 0 ? cfg->connect_timeout
                                       : DEFAULT_CONNECT_TIMEOUT;
    p->connect_timeout = timeout;
    /* libpq takes whole seconds (and treats 1 as 2). */
    snprintf(p->timeout_str, sizeof(p->timeout_str), "%d",
             timeout > 86400 ? 86400 : (int)ceil(timeout));
}

/* Creates a pool (refs = 1, the table's) or returns NULL with err set. */
static struct db_pool *pool_new(const char *key,
                                const struct db_pool_config *cfg,
                                struct db_error *err)
{
    struct db_pool *p = xcalloc(1, sizeof(*p));
    pthread_condattr_t attr;

    p->key = xstrdup(key);
    p->conninfo = xstrdup(cfg->conninfo);
    p->raw_password = url_raw_password(cfg->conninfo);
    p->refs = 1;
    pool_init_limits(p, cfg);
    /* Waits use monotonic deadlines: wall-clock jumps must not matter. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&p->mu, NULL);
    if (pool_parse_conninfo(p, err) != 0) {
        err_scrub(err, p);
        pool_free(p);
        return NULL;
    }
    return p;
}

static void pool_unref(struct db_pool *p)
{
    bool last;

    pthread_mutex_lock(&p->mu);
    COFFER_ASSERT(p->refs > 0);
    last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        pool_free(p);
}

/* Looks key up and takes a reference, or returns NULL. */
static struct db_pool *pool_lookup(const char *key)
{
    struct db_pool *p;

    pthread_mutex_lock(&table_mu);
    for (p = table; p != NULL; p = p->next) {
        if (strcmp(p->key, key) == 0)
            break;
    }
    if (p != NULL) {
        pthread_mutex_lock(&p->mu);
        p->refs++;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&table_mu);
    return p;
}

/* Unlinks key from the table; the caller owns the table's reference. */
static struct db_pool *table_unlink_locked(const char *key)
{
    struct db_pool **pp, *p;

    for (pp = &table; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            p = *pp;
            *pp = p->next;
            p->next = NULL;
            return p;
        }
    }
    return NULL;
}

/*
 * Retires a pool already unlinked from the table: wakes its waiters (they
 * look the key up again), closes the idle connections and drops the
 * table's reference. Lent connections are closed as they come back.
 */
static void pool_retire(struct db_pool *p)
{
    struct db_conn *idle;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    idle = p->idle;
    p->idle = NULL;
    p->nopen -= p->nidle;
    p->nidle = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    conn_close_list(idle);
    pool_unref(p);
}

int db_pool_configure(const char *key, const struct db_pool_config *cfg,
                      bool verify, struct db_error *err)
{
    struct db_error scratch;
    struct db_pool *p = NULL, *old = NULL;
    struct db_conn *c = NULL;
    int rc = 0;

    if (err == NULL)
        err = &scratch;
    err_clear(err);
    if (key == NULL || cfg == NULL || cfg->conninfo == NULL ||
        cfg->conninfo[0] == '\0') {
        err_set(err, DB_ERR_INTERNAL, "", "connection string is empty");
        rc = COFFER_EINVAL;
        goto out;
    }
    p = pool_new(key, cfg, err);
    if (p == NULL) {
        rc = COFFER_EINVAL;
        goto out;
    }
    if (verify) {
        c = conn_open(p, err);
        if (c == NULL) {
            rc = COFFER_EIO;
            goto out;
        }
        /* Keep the verified connection: it cost a SCRAM handshake. */
        c->idle_since = time_mono();
        p->idle = c;
        p->nidle = 1;
        p->nopen = 1;
    }
    pthread_mutex_lock(&table_mu);
    old = table_unlink_locked(key);
    p->next = table;
    table = p;
    pthread_mutex_unlock(&table_mu);
    p = NULL;
    pool_retire(old);
out:
    pool_free(p);
    return rc;
}

void db_pool_remove(const char *key)
{
    struct db_pool *p;

    if (key == NULL)
        return;
    pthread_mutex_lock(&table_mu);
    p = table_unlink_locked(key);
    pthread_mutex_unlock(&table_mu);
    pool_retire(p);
}

bool db_pool_exists(const char *key)
{
    struct db_pool *p;

    pthread_mutex_lock(&table_mu);
    for (p = table; p != NULL; p = p->next) {
        if (strcmp(p->key, key) == 0)
            break;
    }
    pthread_mutex_unlock(&table_mu);
    return p != NULL;
}

void db_shutdown(void)
{
    struct db_pool *list, *next;

    pthread_mutex_lock(&table_mu);
    list = table;
    table = NULL;
    pthread_mutex_unlock(&table_mu);
    for (; list != NULL; list = next) {
        next = list->next;
        list->next = NULL;
        pool_retire(list);
    }
}

/* ========================================================= lending == */

enum checkout {
    CHECKOUT_TAKEN = 1,   /* an idle connection was lent */
    CHECKOUT_OPEN = 2,    /* a slot was reserved: open a new connection */
    CHECKOUT_CLOSED = 3,  /* the pool was retired: look the key up again */
    CHECKOUT_TIMEOUT = 4,
};

/*
 * Moves idle connections that expired or died onto *dead (closed later,
 * outside the lock), then pops the first healthy one. Called locked.
 */
static struct db_conn *pool_pop_idle_locked(struct db_pool *p,
                                            struct db_conn **dead)
{
    struct db_conn **pp = &p->idle, *c, *found = NULL;
    double now = time_mono();

    while (*pp != NULL) {
        c = *pp;
        if (conn_expired(p, c, now) || (found == NULL && !conn_alive(c))) {
            *pp = c->next;
            c->next = *dead;
            *dead = c;
            p->nidle--;
            p->nopen--;
        } else if (found == NULL) {
            *pp = c->next;
            c->next = NULL;
            p->nidle--;
            found = c;
        } else {
            pp = &c->next;
        }
    }
    return found;
}

static enum checkout pool_checkout(struct db_pool *p, double deadline,
                                   struct db_conn **out)
{
    struct db_conn *dead = NULL;
    struct timespec ts;
    enum checkout r;

    *out = NULL;
    ts.tv_sec = (time_t)deadline;
    ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->closed) {
            r = CHECKOUT_CLOSED;
            break;
        }
        *out = pool_pop_idle_locked(p, &dead);
        if (*out != NULL) {
            r = CHECKOUT_TAKEN;
            break;
        }
        if (p->nopen < p->max_open) {
            p->nopen++;
            r = CHECKOUT_OPEN;
            break;
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            r = CHECKOUT_TIMEOUT;
            break;
        }
    }
    /* Slots freed by dropping dead connections may serve other waiters. */
    if (dead != NULL)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    conn_close_list(dead);
    return r;
}

/* Gives back a slot reserved by CHECKOUT_OPEN whose connect failed. */
static void pool_slot_free(struct db_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->nopen--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

struct db_conn *db_acquire(const char *key, struct db_error *err)
{
    struct db_error scratch;
    struct db_pool *p = NULL;
    struct db_conn *c = NULL;
    double deadline = 0;
    enum checkout r;

    if (err == NULL)
        err = &scratch;
    err_clear(err);
    for (;;) {
        p = pool_lookup(key);
        if (p == NULL) {
            err_set(err, DB_ERR_INTERNAL, "",
                    "no database connection is configured for %s", key);
            break;
        }
        if (deadline == 0)
            deadline = time_mono() + p->connect_timeout;
        r = pool_checkout(p, deadline, &c);
        if (r == CHECKOUT_CLOSED) {
            /* Replaced while we waited: the new pool serves us. */
            pool_unref(p);
            p = NULL;
            continue;
        }
        if (r == CHECKOUT_TIMEOUT) {
            err_set(err, DB_ERR_UNREACHABLE, "",
                    "timed out waiting for a database connection");
        } else if (r == CHECKOUT_OPEN) {
            c = conn_open(p, err);
            if (c == NULL)
                pool_slot_free(p);
        }
        break;
    }
    /* A lent connection keeps the reference taken by pool_lookup. */
    if (c == NULL && p != NULL)
        pool_unref(p);
    return c;
}

/*
 * Ends whatever transaction a returned connection is still in, so the
 * next borrower never inherits it. Marks the connection broken when that
 * cannot be done.
 */
static void conn_make_clean(struct db_conn *c)
{
    PGTransactionStatusType ts;

    if (c->broken || PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = true;
        return;
    }
    ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
        db_rollback(c);
    else if (ts != PQTRANS_IDLE)
        c->broken = true; /* ACTIVE/UNKNOWN: a query is mid-flight */
    if (!c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        c->broken = true;
}

void db_release(struct db_conn *c)
{
    struct db_pool *p;
    bool keep;

    if (c == NULL)
        return;
    p = c->pool;
    conn_make_clean(c);
    pthread_mutex_lock(&p->mu);
    c->idle_since = time_mono();
    keep = !p->closed && !c->broken && p->nidle < p->max_idle &&
           !(p->max_lifetime > 0 &&
             c->idle_since - c->created >= p->max_lifetime);
    if (keep) {
        c->next = p->idle;
        p->idle = c;
        p->nidle++;
    } else {
        p->nopen--;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (!keep)
        conn_close(c);
    pool_unref(p);
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

    err_set(err, klass, state, "%s", "");
    if (primary != NULL)
        snprintf(err->message, sizeof(err->message), "%s", primary);
    else
        copy_libpq_message(err->message, sizeof(err->message),
                           r != NULL ? PQresultErrorMessage(r)
                                     : PQerrorMessage(c->pg));
    if (err->message[0] == '\0')
        snprintf(err->message, sizeof(err->message),
                 "the database connection failed");
    err_scrub(err, c->pool);
    if (klass == DB_ERR_UNREACHABLE)
        c->broken = true;
}

/*
 * Runs one statement, or with script (and no parameters) a string of
 * statements in one round trip. Returns the successful (last) result (the
 * caller copies what it needs and PQclears it at once) or NULL with err
 * filled.
 */
static PGresult *exec_raw(struct db_conn *c, const char *sql, int nparams,
                          const char *const *params, bool script,
                          struct db_error *err)
{
    PGresult *r = NULL;

    if (c == NULL || sql == NULL || nparams < 0 ||
        (nparams > 0 && params == NULL)) {
        err_set(err, DB_ERR_INTERNAL, "", "invalid statement arguments");
        return NULL;
    }
    if (c->broken) {
        err_set(err, DB_ERR_UNREACHABLE, "",
                "the database connection was lost");
        return NULL;
    }
    if (script)
        r = PQexec(c->pg, sql);
    else
        r = PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        return r;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
        /* The session is now stuck in COPY mode: never reuse it. */
        c->broken = true;
        err_set(err, DB_ERR_SQL, "", "COPY is not supported");
        break;
    default:
        exec_failure(c, r, err);
        break;
    }
    PQclear(r);
    return NULL;
}

int db_exec(struct db_conn *c, const char *sql, int nparams,
            const char *const *params, struct db_result *res,
            struct db_error *err)
{
    struct db_error scratch;
    PGresult *r;

    if (err == NULL)
        err = &scratch;
    err_clear(err);
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
    err_clear(err);
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
    err_clear(err);
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

    if (c == NULL || c->broken || PQstatus(c->pg) != CONNECTION_OK) {
        if (c != NULL)
            c->broken = true;
        return;
    }
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
        return;
    r = PQexec(c->pg, "ROLLBACK");
    if (PQresultStatus(r) != PGRES_COMMAND_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        c->broken = true;
    PQclear(r);
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
