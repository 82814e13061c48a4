/*
 * db_pool.c - the connection pool shared by the database drivers (see
 * db_pool.h for the contract).
 *
 * Owns: the one table of pools, the lending rules, the counts for
 * sys/metrics (db_pool_stats_each, db_pg_stats.h). Does not own: a
 * connection's bytes (the driver's ops), retry policy (callers).
 *
 *     idle list (LIFO) <-- dbpool_release -- lent --> statements ...
 *          |                                    ^
 *          +----------- dbpool_acquire ---------+
 *                  (or open a new one while nopen < max_open,
 *                   or wait on the condvar until connect_timeout)
 */
#include "db_pool.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_pg_conninfo.h"
#include "db_pg_stats.h"
#include "log.h"
#include "request.h"

#define DEFAULT_MAX_OPEN 4
#define DEFAULT_IDLE_TIMEOUT 300.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_STATEMENT_TIMEOUT 30.0
#define MAX_TIMEOUT 86400.0
/* A caller beyond max_waiting waits at most this long. */
#define OVERFLOW_WAIT 0.5

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dbpool *table;

/* ============================================================ errors == */

void db_error_clear(struct db_error *err)
{
    err->klass = DB_OK;
    err->sqlstate[0] = '\0';
    err->message[0] = '\0';
}

void db_error_set(struct db_error *err, enum db_error_class klass,
                  const char *fmt, ...)
{
    va_list ap;

    err->klass = klass;
    err->sqlstate[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

char *dbpool_scrub(const struct dbpool *p, const char *text)
{
    return db__scrub_text(text, p != NULL ? p->conninfo : NULL,
                          p != NULL ? &p->secrets : NULL);
}

/* ========================================================= deadlines == */

double dbpool_deadline_after(double timeout)
{
    int64_t left = request_budget_left_ms();

    if (left >= 0 && (double)left / 1000.0 < timeout)
        timeout = (double)left / 1000.0;
    return time_mono() + timeout;
}

bool dbpool_budget_spent(void)
{
    return request_budget_left_ms() == 0;
}

void dbpool_timespec_of(double t, struct timespec *ts)
{
    struct timespec now;
    double wait = t - time_mono();

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (wait < 0)
        wait = 0;
    ts->tv_sec = now.tv_sec + (time_t)wait;
    ts->tv_nsec = now.tv_nsec + (long)((wait - floor(wait)) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ======================================================= connections == */

static void pool_close_list(const struct dbpool_ops *ops,
                            struct dbpool_conn *list)
{
    struct dbpool_conn *next;

    for (; list != NULL; list = next) {
        next = list->next;
        ops->close(list);
    }
}

static bool pool_conn_expired(const struct dbpool *p, const struct dbpool_conn *c,
                         double now)
{
    if (p->max_lifetime > 0 && now - c->created >= p->max_lifetime)
        return true;
    return now - c->idle_since >= p->idle_timeout;
}

/* Opens one connection of p and fills its head, or NULL with err. */
static struct dbpool_conn *pool_conn_open(struct dbpool *p, struct db_error *err)
{
    struct dbpool_conn *c = p->ops->open(p, err);

    if (c != NULL) {
        c->pool = p;
        c->created = time_mono();
        c->idle_since = c->created;
        c->next = NULL;
        log_debug("db: %s: opened a connection", p->key);
    }
    return c;
}

/* ============================================================= pools == */

static void pool_free(struct dbpool *p)
{
    if (p == NULL)
        return;
    pool_close_list(p->ops, p->idle);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    if (p->ops->free_data != NULL)
        p->ops->free_data(p->data);
    secure_free_str(p->conninfo);
    db__secrets_wipe(&p->secrets);
    free(p->key);
    free(p);
}

static double capped(double v, double dflt)
{
    v = v > 0 ? v : dflt;
    return v > MAX_TIMEOUT ? MAX_TIMEOUT : v;
}

static void pool_init_limits(struct dbpool *p,
                             const struct db_pool_config *cfg)
{
    p->max_open = cfg->max_open > 0 ? cfg->max_open : DEFAULT_MAX_OPEN;
    p->max_idle = cfg->max_idle > 0 ? cfg->max_idle : p->max_open;
    if (p->max_idle > p->max_open)
        p->max_idle = p->max_open;
    p->max_waiting = cfg->max_waiting > 0 ? cfg->max_waiting
                     : p->max_open / 2 > 0 ? p->max_open / 2 : 1;
    p->max_lifetime = cfg->max_lifetime > 0 ? (double)cfg->max_lifetime : 0;
    p->idle_timeout = cfg->idle_timeout > 0 ? (double)cfg->idle_timeout
                                            : DEFAULT_IDLE_TIMEOUT;
    p->connect_timeout = capped(cfg->connect_timeout,
                                DEFAULT_CONNECT_TIMEOUT);
    p->statement_timeout = capped(cfg->statement_timeout,
                                  DEFAULT_STATEMENT_TIMEOUT);
}

/* Creates a pool (refs = 1, the table's) or returns NULL with err set. */
static struct dbpool *pool_new(const struct dbpool_ops *ops, const char *key,
                               const struct db_pool_config *cfg,
                               struct db_error *err)
{
    struct dbpool *p = xcalloc(1, sizeof(*p));
    pthread_condattr_t attr;

    p->ops = ops;
    p->key = xstrdup(key);
    p->conninfo = xstrdup(cfg->conninfo);
    strvec_init(&p->secrets);
    p->refs = 1;
    pool_init_limits(p, cfg);
    /* Waits use monotonic deadlines: wall-clock jumps must not matter. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&p->mu, NULL);
    if (ops->prepare(p, cfg, err) != 0) {
        pool_free(p);
        return NULL;
    }
    return p;
}

static void pool_unref(struct dbpool *p)
{
    bool last;

    pthread_mutex_lock(&p->mu);
    COFFER_ASSERT(p->refs > 0);
    last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        pool_free(p);
}

static struct dbpool *table_find_locked(const struct dbpool_ops *ops,
                                        const char *key)
{
    struct dbpool *p;

    for (p = table; p != NULL; p = p->next) {
        if (strcmp(p->key, key) == 0)
            break;
    }
    return p != NULL && (ops == NULL || p->ops == ops) ? p : NULL;
}

/* Looks key up among ops' pools and takes a reference, or NULL. */
static struct dbpool *pool_lookup(const struct dbpool_ops *ops,
                                  const char *key)
{
    struct dbpool *p;

    pthread_mutex_lock(&table_mu);
    p = table_find_locked(ops, key);
    if (p != NULL) {
        pthread_mutex_lock(&p->mu);
        p->refs++;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&table_mu);
    return p;
}

/* Unlinks key (if ops' or, ops NULL, anyone's); the caller owns the
   table's reference. */
static struct dbpool *table_unlink_locked(const struct dbpool_ops *ops,
                                          const char *key)
{
    struct dbpool **pp, *p;

    for (pp = &table; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            p = *pp;
            if (ops != NULL && p->ops != ops)
                return NULL;
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
static void pool_retire(struct dbpool *p)
{
    struct dbpool_conn *idle;

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
    pool_close_list(p->ops, idle);
    pool_unref(p);
}

int dbpool_configure(const struct dbpool_ops *ops, const char *key,
                     const struct db_pool_config *cfg, bool verify,
                     struct db_error *err)
{
    struct db_error scratch;
    struct dbpool *p = NULL, *old = NULL;
    struct dbpool_conn *c = NULL;
    int rc = 0;

    if (err == NULL)
        err = &scratch;
    db_error_clear(err);
    if (key == NULL || cfg == NULL || cfg->conninfo == NULL ||
        cfg->conninfo[0] == '\0') {
        db_error_set(err, DB_ERR_INTERNAL, "connection string is empty");
        rc = COFFER_EINVAL;
        goto out;
    }
    p = pool_new(ops, key, cfg, err);
    if (p == NULL) {
        rc = COFFER_EINVAL;
        goto out;
    }
    if (verify) {
        c = pool_conn_open(p, err);
        if (c == NULL) {
            rc = COFFER_EIO;
            goto out;
        }
        /* Keep the verified connection: it cost a handshake. */
        p->idle = c;
        p->nidle = 1;
        p->nopen = 1;
    }
    pthread_mutex_lock(&table_mu);
    old = table_unlink_locked(NULL, key);
    p->next = table;
    table = p;
    pthread_mutex_unlock(&table_mu);
    p = NULL;
    pool_retire(old);
out:
    pool_free(p);
    return rc;
}

void dbpool_remove(const struct dbpool_ops *ops, const char *key)
{
    struct dbpool *p;

    if (key == NULL)
        return;
    pthread_mutex_lock(&table_mu);
    p = table_unlink_locked(ops, key);
    pthread_mutex_unlock(&table_mu);
    pool_retire(p);
}

bool dbpool_exists(const struct dbpool_ops *ops, const char *key)
{
    bool found;

    pthread_mutex_lock(&table_mu);
    found = table_find_locked(ops, key) != NULL;
    pthread_mutex_unlock(&table_mu);
    return found;
}

struct dbpool *dbpool_find(const struct dbpool_ops *ops, const char *key)
{
    struct dbpool *p;

    pthread_mutex_lock(&table_mu);
    p = table_find_locked(ops, key);
    pthread_mutex_unlock(&table_mu);
    return p;
}

const char *dbpool_driver_of(const char *key)
{
    struct dbpool *p;
    const char *name;

    pthread_mutex_lock(&table_mu);
    p = table_find_locked(NULL, key);
    name = p != NULL ? p->ops->driver : NULL;
    pthread_mutex_unlock(&table_mu);
    return name;
}

/*
 * Each pool's counts for sys/metrics (db_pg_stats.h). Table lock
 * then pool lock, the order every other walker of the table uses.
 */
void db_pool_stats_each(void (*fn)(void *arg, const struct db_pool_stats *s),
                        void *arg)
{
    pthread_mutex_lock(&table_mu);
    for (struct dbpool *p = table; p != NULL; p = p->next) {
        struct db_pool_stats st = {.key = p->key, .driver = p->ops->driver};
        pthread_mutex_lock(&p->mu);
        st.open = p->nopen;
        st.idle = p->nidle;
        st.in_use = p->nopen - p->nidle;
        st.waiting = p->nwaiting;
        st.statements = p->nstatements;
        st.statement_errors = p->nstatement_errors;
        st.statement_sum_ms = p->stmt_sum_ms;
        st.statement_min_ms = p->stmt_min_ms;
        st.statement_max_ms = p->stmt_max_ms;
        st.max_open = p->max_open;
        pthread_mutex_unlock(&p->mu);
        fn(arg, &st);
    }
    pthread_mutex_unlock(&table_mu);
}

void dbpool_shutdown(const struct dbpool_ops *ops)
{
    struct dbpool **pp, *mine = NULL, *p;

    pthread_mutex_lock(&table_mu);
    for (pp = &table; *pp != NULL;) {
        p = *pp;
        if (ops == NULL || p->ops == ops) {
            *pp = p->next;
            p->next = mine;
            mine = p;
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&table_mu);
    while (mine != NULL) {
        p = mine;
        mine = p->next;
        p->next = NULL;
        pool_retire(p);
    }
}

void dbpool_note_statement(struct dbpool *p, double ms, bool failed)
{
    pthread_mutex_lock(&p->mu);
    if (p->nstatements == 0 || ms < p->stmt_min_ms)
        p->stmt_min_ms = ms;
    if (p->nstatements == 0 || ms > p->stmt_max_ms)
        p->stmt_max_ms = ms;
    p->nstatements++;
    p->stmt_sum_ms += ms;
    if (failed)
        p->nstatement_errors++;
    pthread_mutex_unlock(&p->mu);
}

void dbpool_note_timeout(struct dbpool *p)
{
    pthread_mutex_lock(&p->mu);
    p->last_timeout = time_mono();
    pthread_mutex_unlock(&p->mu);
}

/* ========================================================== lending == */

enum checkout {
    CHECKOUT_TAKEN = 1,   /* an idle connection was lent */
    CHECKOUT_OPEN = 2,    /* a slot was reserved: open a new connection */
    CHECKOUT_CLOSED = 3,  /* the pool was retired: look the key up again */
    CHECKOUT_TIMEOUT = 4,
    CHECKOUT_BUSY = 5,    /* too many waiters already */
};

/*
 * Moves idle connections that expired or died onto *dead (closed later,
 * outside the lock), then pops the first healthy one. Called locked.
 */
static struct dbpool_conn *pool_pop_idle_locked(struct dbpool *p,
                                                struct dbpool_conn **dead)
{
    struct dbpool_conn **pp = &p->idle, *c, *found = NULL;
    double now = time_mono();

    while (*pp != NULL) {
        c = *pp;
        if (pool_conn_expired(p, c, now) ||
            (found == NULL && (c->broken || !p->ops->alive(c)))) {
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

/*
 * Called locked by a caller about to wait. Up to max_waiting callers wait
 * until the deadline; one more is either refused at once, when a call on
 * this pool timed out recently (the database is stalled: waiting would
 * only hold a worker thread), or waits OVERFLOW_WAIT at most (a healthy
 * but busy pool frees a connection within milliseconds).
 */
enum admission {
    ADMIT_WAIT = 1,     /* wait until the caller's deadline */
    ADMIT_BRIEFLY = 2,  /* over max_waiting: wait OVERFLOW_WAIT at most */
    ADMIT_REFUSE = 3,
};

static enum admission pool_admit_waiter_locked(struct dbpool *p,
                                               double *deadline)
{
    double now = time_mono();

    if (p->nwaiting < p->max_waiting)
        return ADMIT_WAIT;
    if (p->last_timeout > 0 && now - p->last_timeout < p->statement_timeout)
        return ADMIT_REFUSE;
    if (*deadline > now + OVERFLOW_WAIT)
        *deadline = now + OVERFLOW_WAIT;
    return ADMIT_BRIEFLY;
}

static enum checkout pool_checkout(struct dbpool *p, double deadline,
                                   struct dbpool_conn **out)
{
    struct dbpool_conn *dead = NULL;
    struct timespec ts;
    enum checkout r;
    enum admission admitted = ADMIT_REFUSE;
    bool waiting = false;

    *out = NULL;
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
        if (!waiting) {
            admitted = pool_admit_waiter_locked(p, &deadline);
            if (admitted == ADMIT_REFUSE) {
                r = CHECKOUT_BUSY;
                break;
            }
            waiting = true;
            p->nwaiting++;
            dbpool_timespec_of(deadline, &ts);
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            r = admitted == ADMIT_BRIEFLY ? CHECKOUT_BUSY : CHECKOUT_TIMEOUT;
            break;
        }
    }
    if (waiting)
        p->nwaiting--;
    /* Slots freed by dropping dead connections may serve other waiters. */
    if (dead != NULL)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pool_close_list(p->ops, dead);
    return r;
}

/* Gives back a slot reserved by CHECKOUT_OPEN whose connect failed. */
static void pool_slot_free(struct dbpool *p)
{
    pthread_mutex_lock(&p->mu);
    p->nopen--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void checkout_error(const struct dbpool *p, enum checkout r,
                           struct db_error *err)
{
    if (r == CHECKOUT_BUSY) {
        db_error_set(err, DB_ERR_BUSY, "the database is not keeping up: "
                     "all %d connections are in use and %d requests are "
                     "already waiting; try again later", p->max_open,
                     p->max_waiting);
    } else if (dbpool_budget_spent()) {
        db_error_set(err, DB_ERR_TIMEOUT, "the request ran out of time "
                     "(max_request_duration) while waiting for a database "
                     "connection");
    } else {
        db_error_set(err, DB_ERR_TIMEOUT, "timed out after %gs waiting for "
                     "a database connection (all %d are in use)",
                     p->connect_timeout, p->max_open);
    }
}

struct dbpool_conn *dbpool_acquire(const struct dbpool_ops *ops,
                                   const char *key, struct db_error *err)
{
    struct db_error scratch;
    struct dbpool *p = NULL;
    struct dbpool_conn *c = NULL;
    double deadline = 0;
    enum checkout r;

    if (err == NULL)
        err = &scratch;
    db_error_clear(err);
    for (;;) {
        p = key != NULL ? pool_lookup(ops, key) : NULL;
        if (p == NULL) {
            db_error_set(err, DB_ERR_INTERNAL, "no database connection is "
                         "configured for %s", key != NULL ? key : "(null)");
            break;
        }
        if (deadline == 0)
            deadline = dbpool_deadline_after(p->connect_timeout);
        r = pool_checkout(p, deadline, &c);
        if (r == CHECKOUT_CLOSED) {
            /* Replaced while we waited: the new pool serves us. */
            pool_unref(p);
            p = NULL;
            continue;
        }
        if (r == CHECKOUT_TIMEOUT || r == CHECKOUT_BUSY) {
            checkout_error(p, r, err);
        } else if (r == CHECKOUT_OPEN) {
            c = pool_conn_open(p, err);
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

void dbpool_release(struct dbpool_conn *c)
{
    struct dbpool *p;
    bool keep;

    if (c == NULL)
        return;
    p = c->pool;
    if (!c->broken)
        p->ops->make_clean(c);
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
        p->ops->close(c);
    pool_unref(p);
}
