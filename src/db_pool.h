/*
 * db_pool.h - the connection pool every database driver lends from, and
 * the types the drivers share (struct db_error, db_pool_config,
 * db_result).
 *
 * One table of pools for all drivers: a pool is named by a caller-chosen
 * key (the database engine uses "<mount uuid>/<config name>") and belongs
 * to one driver, given as a small table of operations (struct
 * dbpool_ops). Configuring a key replaces whatever pool had it, of any
 * driver; a driver asking for a key held by another driver's pool is told
 * there is none. The pool owns the rules that are the same for every
 * database: max_open, max_idle, max_waiting (callers beyond it wait
 * briefly or are refused), idle timeout, lifetime, dead idle connections
 * dropped when taken, waiting with a deadline, statement counts for
 * sys/metrics, replacing and closing. The driver owns connecting, the
 * liveness test, cleaning a returned connection, and what a failure means.
 *
 * Locking: one table mutex, then a mutex per pool; never the other way.
 * No lock is held while a driver talks to its server, except the ops'
 * `alive`, which must not block.
 *
 * Lifetimes: the table holds one reference on each pool, every lent
 * connection one more. A replaced or removed pool is marked closed, its
 * idle connections are closed and lent ones are closed when returned.
 *
 * Every deadline is capped by the remaining budget of the request the
 * calling thread serves (request_budget_left_ms).
 */
#ifndef COFFER_DB_POOL_H
#define COFFER_DB_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "util.h"

enum db_error_class {
    DB_OK = 0,
    DB_ERR_UNREACHABLE = 1, /* cannot connect / connection lost: retry later */
    DB_ERR_TRANSIENT = 2,   /* serialization, deadlock, lock: retry now */
    DB_ERR_AUTH = 3,        /* bad password, no such role/database */
    DB_ERR_SQL = 4,         /* syntax, permission, constraint: caller's fault */
    DB_ERR_INTERNAL = 5,
    DB_ERR_TIMEOUT = 6,     /* a deadline passed; the call was cancelled */
    DB_ERR_BUSY = 7,        /* too many callers already wait on this pool */
};

struct db_error {
    enum db_error_class klass;
    char sqlstate[6];
    char message[512];
};

struct db_pool_config {
    const char *conninfo;      /* URL, key=value string or DSN, credentials
                                  filled */
    int max_open;              /* default 4 */
    int max_idle;              /* default = max_open, capped to it */
    int64_t max_lifetime;      /* seconds, 0 = unlimited */
    int64_t idle_timeout;      /* seconds an idle connection is kept, 0 = 300 */
    double connect_timeout;    /* seconds, 0 = 10; also the pool wait */
    double statement_timeout;  /* seconds, 0 = 30 */
    int max_waiting;           /* callers waiting for a connection,
                                  0 = max_open / 2 (at least 1) */
    const char *const *secrets; /* more strings to scrub from messages */
    int nsecrets;
    /* MySQL's TLS fields as Vault names them: PEM text of the CA
       (tls_ca) and of the client certificate + key (tls_certificate_key),
       NULL when not set; tls_server_name, tls_skip_verify. */
    const char *tls_ca;
    const char *tls_cert_key;
    const char *tls_server_name;
    bool tls_skip_verify;
};

/* A result: rows of text cells (NULL for SQL NULL). */
struct db_result {
    int nrows;
    int ncols;
    char **colnames;   /* ncols entries */
    char **cells;      /* nrows * ncols entries, row-major */
    int64_t affected;  /* rows affected by the last command */
};

struct dbpool;

/* The head of every driver connection (its first member). */
struct dbpool_conn {
    struct dbpool *pool;
    double created;        /* time_mono() when connected */
    double idle_since;     /* time_mono() when last returned */
    bool broken;           /* never reuse: link lost, state unknown */
    struct dbpool_conn *next; /* idle list link */
};

struct dbpool_ops {
    const char *driver;    /* "postgresql", "mysql": a metrics label */
    /*
     * Checks cfg and fills p->data (the driver's own state, e.g. a parsed
     * DSN) and p->secrets (strings to scrub from messages). Returns 0, or
     * COFFER_EINVAL with err filled; p is then freed (free_data is called
     * with whatever p->data holds).
     */
    int (*prepare)(struct dbpool *p, const struct db_pool_config *cfg,
                   struct db_error *err);
    void (*free_data)(void *data);
    /*
     * Opens one connection, blocking up to p->connect_timeout (capped by
     * the request budget). Returns it (the pool fills the head's pool,
     * created and idle_since) or NULL with err filled. Called unlocked.
     */
    struct dbpool_conn *(*open)(struct dbpool *p, struct db_error *err);
    void (*close)(struct dbpool_conn *c);
    /* Whether an idle connection is still usable; must not block (it is
       called with the pool locked). */
    bool (*alive)(struct dbpool_conn *c);
    /* Ends whatever transaction a returned connection is in, or marks it
       broken. Called unlocked. */
    void (*make_clean)(struct dbpool_conn *c);
};

struct dbpool {
    const struct dbpool_ops *ops;
    char *key;
    void *data;            /* the driver's, freed by ops->free_data */
    char *conninfo;        /* secret: kept to scrub messages; wiped */
    struct strvec secrets; /* secret: longest first; wiped */
    int max_open, max_idle, max_waiting;
    double max_lifetime;   /* 0 = unlimited */
    double idle_timeout, connect_timeout, statement_timeout;

    /* The pool module's own, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* a connection or a slot came free, or closed */
    struct dbpool_conn *idle; /* LIFO: the busy head is reused */
    int nidle;
    int nopen;             /* idle + lent + being opened */
    int nwaiting;
    double last_timeout;   /* time_mono() of the last call that timed out */
    uint64_t nstatements, nstatement_errors;
    double stmt_sum_ms, stmt_min_ms, stmt_max_ms;
    int refs;
    bool closed;
    struct dbpool *next;   /* table link, guarded by the table lock */
};

/*
 * Creates or replaces the pool named key (of any driver). With verify,
 * opens one connection first and fails if it cannot (the old pool stays);
 * the connection is kept as the first idle one. An empty connection string
 * is DB_ERR_INTERNAL / COFFER_EINVAL; what prepare refuses is
 * COFFER_EINVAL; a failed verification COFFER_EIO.
 */
int dbpool_configure(const struct dbpool_ops *ops, const char *key,
                     const struct db_pool_config *cfg, bool verify,
                     struct db_error *err);
/* Closes and forgets key if ops' driver holds it. Missing is fine. */
void dbpool_remove(const struct dbpool_ops *ops, const char *key);
/* Whether ops' driver holds key (any driver when ops is NULL). */
bool dbpool_exists(const struct dbpool_ops *ops, const char *key);
/* The driver name of the pool named key, or NULL. */
const char *dbpool_driver_of(const char *key);
/* The pool named key (ops' driver, any when NULL) without taking a
   reference, or NULL: for tests and diagnostics only; valid while the
   pool stays configured. */
struct dbpool *dbpool_find(const struct dbpool_ops *ops, const char *key);
/* Retires every pool of ops' driver. */
void dbpool_shutdown(const struct dbpool_ops *ops);

/*
 * Borrows a connection of ops' pool named key: an idle live one, a new
 * one while fewer than max_open are open, or after waiting up to the
 * connect timeout: then DB_ERR_TIMEOUT, or DB_ERR_BUSY when max_waiting
 * callers already wait. NULL with err filled on failure.
 */
struct dbpool_conn *dbpool_acquire(const struct dbpool_ops *ops,
                                   const char *key, struct db_error *err);
/* Cleans (ops->make_clean) and returns c; closes it when it is broken,
   too old, over max_idle or of a retired pool. NULL is fine. */
void dbpool_release(struct dbpool_conn *c);

/* Counts one statement for sys/metrics; and notes a timed-out call (the
   pool then refuses overflow waiters for a while). */
void dbpool_note_statement(struct dbpool *p, double ms, bool failed);
void dbpool_note_timeout(struct dbpool *p);

/* text scrubbed of p's connection string and secrets (p may be NULL).
   The caller frees it with secure_free_str. */
char *dbpool_scrub(const struct dbpool *p, const char *text);

/* The deadline (time_mono) of a wait of at most timeout seconds, capped
   by the calling thread's request budget; and whether that budget is what
   ran out. */
double dbpool_deadline_after(double timeout);
bool dbpool_budget_spent(void);
/* The CLOCK_MONOTONIC timespec of the time_mono() instant t (for
   pthread_cond_timedwait on a condvar with that clock). */
struct timespec;
void dbpool_timespec_of(double t, struct timespec *ts);

void db_error_clear(struct db_error *err);
/* Sets err's class and message; sqlstate empty. */
void db_error_set(struct db_error *err, enum db_error_class klass,
                  const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
