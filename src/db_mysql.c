/*
 * db_mysql.c - the MySQL/MariaDB driver over MariaDB Connector/C (see
 * db_mysql.h for the contract).
 *
 * Layout: DSN parsing, errors, connecting, pools and lending (the same
 * rules as db_pg.c: max_open, max_idle, max_waiting, idle timeout,
 * lifetime, dead connections dropped when taken), statements.
 *
 * Why KILL QUERY rather than the read timeout alone: a read timeout only
 * stops the client; the server would go on running the statement (holding
 * its locks) on a connection nobody reads. The read timeout stays as the
 * backstop for the answers after the first (a script's later results),
 * and MariaDB's max_statement_time bounds each statement on the server.
 */
#include "db_mysql.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "db_pg_conninfo.h"
#include "log.h"
#include "request.h"
#include "util.h"

#define DEFAULT_MAX_OPEN 4
#define DEFAULT_IDLE_TIMEOUT 300.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_STATEMENT_TIMEOUT 30.0
/* How long a KILL QUERY may take to land, and the read timeout's margin. */
#define CANCEL_GRACE 1.0
#define READ_GRACE 2.0
/* Where the server enforces the limit, it gets this long to do so (with
   its own, clearer error) before the client cancels. */
#define SERVER_FIRST 0.3
/* A caller beyond max_waiting waits at most this long. */
#define OVERFLOW_WAIT 0.5
#define MAX_PARAMS 64

/* Server errors that are not in every mysqld_error.h. */
#define MY_ER_STATEMENT_TIMEOUT 1969      /* MariaDB max_statement_time */
#define MY_ER_QUERY_TIMEOUT 3024          /* MySQL max_execution_time */
#define MY_ER_CONNECTION_KILLED 1927
#define MY_ER_ACCOUNT_LOCKED_MARIADB 4151
#define MY_ER_ACCOUNT_LOCKED_MYSQL 3118
#define MY_ER_ACCESS_DENIED_NO_PASSWORD 1698
#define MY_ER_MUST_CHANGE_PASSWORD_LOGIN 1862

enum tls_mode { TLS_OFF = 0, TLS_PREFERRED, TLS_SKIP_VERIFY, TLS_VERIFY };

struct dsn {
    char *user, *pass, *host, *socket, *db, *charset;
    unsigned int port;
    enum tls_mode tls;
};

struct dbmy_pool;

struct dbmy_conn {
    MYSQL *m;
    struct dbmy_pool *pool;
    double created;
    double idle_since;
    bool broken;
    bool server_limit;  /* the server enforces statement_timeout itself */
    struct dbmy_conn *next;
};

struct dbmy_pool {
    char *key;
    char *dsn_text;        /* secret: wiped on free */
    struct dsn dsn;        /* secret: wiped on free */
    struct strvec secrets; /* longest first */
    int max_open, max_idle, max_waiting;
    double max_lifetime, idle_timeout, connect_timeout, statement_timeout;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct dbmy_conn *idle;
    int nidle, nopen, nwaiting;
    double last_timeout;
    int refs;
    bool closed;
    struct dbmy_pool *next; /* guarded by table_mu */
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dbmy_pool *table;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

/* mysql_library_init is not thread-safe: run it once, before any thread
   calls mysql_init. */
static void lib_init(void)
{
    if (mysql_library_init(0, NULL, NULL) != 0)
        log_warn("db_mysql: mysql_library_init failed");
}

/* ============================================================== DSN == */

static void dsn_release(struct dsn *d)
{
    secure_free_str(d->user);
    secure_free_str(d->pass);
    free(d->host);
    free(d->socket);
    free(d->db);
    free(d->charset);
    memset(d, 0, sizeof(*d));
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Where the address part begins: after the last '@' that is followed by
   tcp(, unix( or '/'; the user-info ends there. -1 when there is none. */
static long dsn_at(const char *s)
{
    long at = -1;

    for (long i = 0; s[i] != '\0'; i++) {
        if (s[i] == '@' && (starts_with(s + i + 1, "tcp(") ||
                            starts_with(s + i + 1, "unix(") ||
                            s[i + 1] == '/'))
            at = i;
    }
    return at;
}

static int dsn_address(struct dsn *d, const char *addr, size_t n,
                       const char **why)
{
    const char *colon;
    char *host;

    if (n == 0) {
        *why = "empty address in tcp()";
        return -1;
    }
    host = xstrndup(addr, n);
    if (host[0] == '[') {
        char *end = strchr(host, ']');
        if (end == NULL) {
            free(host);
            *why = "unterminated [IPv6 address]";
            return -1;
        }
        *end = '\0';
        colon = end[1] == ':' ? end + 1 : NULL;
        memmove(host, host + 1, strlen(host + 1) + 1);
    } else {
        char *c = strrchr(host, ':');
        colon = c;
        if (c != NULL)
            *c = '\0';
    }
    d->port = 3306;
    if (colon != NULL) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end != '\0' || port <= 0 || port > 65535) {
            free(host);
            *why = "invalid port in tcp()";
            return -1;
        }
        d->port = (unsigned int)port;
    }
    d->host = host;
    return 0;
}

static int dsn_param(struct dsn *d, const char *k, const char *v,
                     const char **why)
{
    if (strcmp(k, "tls") == 0) {
        if (strcmp(v, "true") == 0)
            d->tls = TLS_VERIFY;
        else if (strcmp(v, "skip-verify") == 0)
            d->tls = TLS_SKIP_VERIFY;
        else if (strcmp(v, "preferred") == 0)
            d->tls = TLS_PREFERRED;
        else if (strcmp(v, "false") == 0)
            d->tls = TLS_OFF;
        else {
            *why = "tls must be true, skip-verify, preferred or false";
            return -1;
        }
        return 0;
    }
    if (strcmp(k, "charset") == 0 && v[0] != '\0' &&
        strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(v)) {
        free(d->charset);
        d->charset = xstrdup(v);
        return 0;
    }
    *why = "unsupported connection parameter (supported: tls, charset)";
    return -1;
}

static int dsn_params(struct dsn *d, const char *q, const char **why)
{
    char *copy = xstrdup(q), *save = NULL, *kv;
    int rc = 0;

    for (kv = strtok_r(copy, "&", &save); kv != NULL && rc == 0;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq == NULL) {
            *why = "connection parameter without '='";
            rc = -1;
            break;
        }
        *eq = '\0';
        rc = dsn_param(d, kv, eq + 1, why);
    }
    free(copy);
    return rc;
}

/*
 * Parses [user[:pass]@][tcp(addr)|unix(path)]/[db][?params]. On failure
 * *why says what is wrong, without quoting the string (it holds the
 * password).
 */
static int dsn_parse(const char *s, struct dsn *d, const char **why)
{
    long at = dsn_at(s);
    const char *rest = at >= 0 ? s + at + 1 : s, *close, *q;
    int rc = 0;

    memset(d, 0, sizeof(*d));
    if (at >= 0) {
        const char *colon = memchr(s, ':', (size_t)at);
        size_t ulen = colon != NULL ? (size_t)(colon - s) : (size_t)at;
        d->user = xstrndup(s, ulen);
        if (colon != NULL)
            d->pass = xstrndup(colon + 1, (size_t)(s + at - colon - 1));
    }
    if (starts_with(rest, "tcp(") || starts_with(rest, "unix(")) {
        bool unix_sock = rest[0] == 'u';
        const char *open = strchr(rest, '(') + 1;
        close = strchr(open, ')');
        if (close == NULL) {
            *why = "unterminated address: expected tcp(host:port) or "
                   "unix(/path)";
            rc = -1;
        } else if (unix_sock) {
            d->socket = xstrndup(open, (size_t)(close - open));
            if (d->socket[0] != '/') {
                *why = "unix() needs an absolute socket path";
                rc = -1;
            }
        } else {
            rc = dsn_address(d, open, (size_t)(close - open), why);
        }
        rest = close != NULL ? close + 1 : rest;
    } else if (rest[0] == '/') {
        d->host = xstrdup("127.0.0.1");
        d->port = 3306;
    } else {
        *why = "expected [user:password@]tcp(host:port)/ or "
               "unix(/path/to/socket)/";
        rc = -1;
    }
    if (rc == 0 && rest[0] != '/') {
        *why = "missing '/' after the address";
        rc = -1;
    }
    if (rc == 0) {
        q = strchr(rest + 1, '?');
        d->db = xstrndup(rest + 1, q != NULL ? (size_t)(q - rest - 1)
                                             : strlen(rest + 1));
        d->charset = xstrdup("utf8mb4");
        if (q != NULL)
            rc = dsn_params(d, q + 1, why);
    }
    if (rc != 0)
        dsn_release(d);
    return rc;
}

/*
 * A PostgreSQL key/value string can hold "@/" or "@tcp(" inside a value
 * (password=p@/x): it is told apart by its "key=" before any ':', which a
 * DSN's user name cannot hold. Getting this wrong would leave a libpq
 * password unredacted.
 */
bool dbmy_looks_like_dsn(const char *s)
{
    long at;
    size_t user_len;

    if (s == NULL || starts_with(s, "postgres"))
        return false;
    if (starts_with(s, "tcp(") || starts_with(s, "unix("))
        return true;
    at = dsn_at(s);
    if (at < 0)
        return false;
    user_len = strcspn(s, ":");
    if (user_len > (size_t)at)
        user_len = (size_t)at;
    for (size_t i = 0; i < user_len; i++) {
        if (s[i] == '=' || s[i] == ' ' || s[i] == '\t' || s[i] == '\n' ||
            s[i] == '\'')
            return false;
    }
    return true;
}

static bool is_template(const char *s, size_t n)
{
    return n >= 4 && s[0] == '{' && s[1] == '{' && s[n - 1] == '}' &&
           s[n - 2] == '}';
}

/* The span of the literal password in dsn (taken to be a DSN: the
 * caller knows, or guessed with dbmy_looks_like_dsn): *off and *len, or
 * false. */
static bool dsn_password_span(const char *dsn, size_t *off, size_t *len)
{
    long at = dsn != NULL ? dsn_at(dsn) : -1;
    const char *colon;

    if (at < 0)
        return false;
    colon = memchr(dsn, ':', (size_t)at);
    if (colon == NULL || colon + 1 == dsn + at)
        return false;
    *off = (size_t)(colon + 1 - dsn);
    *len = (size_t)(dsn + at - colon - 1);
    return !is_template(colon + 1, *len);
}

char *dbmy_redact_dsn(const char *dsn)
{
    size_t off, len;
    char *out;

    if (dsn == NULL)
        return NULL;
    if (!dsn_password_span(dsn, &off, &len))
        return xstrdup(dsn);
    out = xmalloc(strlen(dsn) - len + 6);
    memcpy(out, dsn, off);
    memcpy(out + off, "xxxxx", 5);
    memcpy(out + off + 5, dsn + off + len, strlen(dsn + off + len) + 1);
    return out;
}

bool dbmy_dsn_has_password(const char *dsn)
{
    size_t off, len;

    return dsn != NULL && dsn_password_span(dsn, &off, &len);
}

/* =========================================================== errors == */

static void err_clear(struct db_error *err)
{
    err->klass = DB_OK;
    err->sqlstate[0] = '\0';
    err->message[0] = '\0';
}

static void err_set(struct db_error *err, enum db_error_class klass,
                    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(struct db_error *err, enum db_error_class klass,
                    const char *fmt, ...)
{
    va_list ap;

    err->klass = klass;
    err->sqlstate[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static bool is_client_error(unsigned int code)
{
    return code >= 2000 && code < 3000;
}

/* The class of a failed call; at_connect: the server refused a login. */
static enum db_error_class classify(unsigned int code, bool at_connect)
{
    switch (code) {
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
        return DB_ERR_TRANSIENT;
    case MY_ER_STATEMENT_TIMEOUT:
    case MY_ER_QUERY_TIMEOUT:
    case ER_QUERY_INTERRUPTED:
        return DB_ERR_TIMEOUT;
    case ER_SERVER_SHUTDOWN:
    case MY_ER_CONNECTION_KILLED:
    case ER_CON_COUNT_ERROR:
    case ER_TOO_MANY_USER_CONNECTIONS:
        return DB_ERR_UNREACHABLE;
    case ER_ACCESS_DENIED_ERROR:
    case ER_DBACCESS_DENIED_ERROR:
    case ER_BAD_DB_ERROR:
    case ER_NOT_SUPPORTED_AUTH_MODE:
    case MY_ER_ACCESS_DENIED_NO_PASSWORD:
    case MY_ER_MUST_CHANGE_PASSWORD_LOGIN:
    case MY_ER_ACCOUNT_LOCKED_MARIADB:
    case MY_ER_ACCOUNT_LOCKED_MYSQL:
        return at_connect ? DB_ERR_AUTH : DB_ERR_SQL;
    case CR_OUT_OF_MEMORY:
        return DB_ERR_INTERNAL;
    default:
        break;
    }
    if (is_client_error(code))
        return DB_ERR_UNREACHABLE;
    return at_connect ? DB_ERR_UNREACHABLE : DB_ERR_SQL;
}

/*
 * Fills err from the last failure on m: "Error <code> (<state>): <words>"
 * with every secret of the pool scrubbed, the whole message before it is
 * cut to size.
 */
static void err_from_mysql(struct db_error *err, MYSQL *m,
                           const struct dbmy_pool *p, bool at_connect,
                           const char *prefix)
{
    unsigned int code = mysql_errno(m);
    const char *state = mysql_sqlstate(m);
    char *text, *clean;
    size_t n;

    n = strlen(mysql_error(m)) + 64;
    text = xmalloc(n);
    if (is_client_error(code))
        snprintf(text, n, "%s", mysql_error(m));
    else
        snprintf(text, n, "Error %u (%s): %s", code, state, mysql_error(m));
    clean = db__scrub_text(text, p != NULL ? p->dsn_text : NULL,
                           p != NULL ? &p->secrets : NULL);
    err->klass = classify(code, at_connect);
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s",
             is_client_error(code) ? "" : state);
    snprintf(err->message, sizeof(err->message), "%s%s",
             prefix != NULL ? prefix : "", clean);
    secure_free_str(clean);
    secure_free_str(text);
}

/* ========================================================= deadlines == */

static double deadline_after(double timeout)
{
    int64_t left = request_budget_left_ms();

    if (left >= 0 && (double)left / 1000.0 < timeout)
        timeout = (double)left / 1000.0;
    return time_mono() + timeout;
}

static bool budget_spent(void)
{
    return request_budget_left_ms() == 0;
}

/* Waits until fd is readable or deadline passes: 1 ready, 0 timeout,
   -1 error. */
static int wait_readable(int fd, double deadline)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    for (;;) {
        double left = deadline - time_mono();
        int n;

        if (left <= 0)
            return 0;
        n = poll(&pfd, 1, (int)ceil(left * 1000));
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

static void timespec_of(double t, struct timespec *ts)
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

/* ========================================================= connecting == */

static unsigned int whole_seconds(double s)
{
    double c = ceil(s);

    return c < 1 ? 1 : c > 86400 ? 86400 : (unsigned int)c;
}

static void set_tls(MYSQL *m, enum tls_mode tls)
{
    my_bool on = 1, off = 0;

    switch (tls) {
    case TLS_OFF:
        mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &off);
        break;
    case TLS_PREFERRED:
        mysql_ssl_set(m, NULL, NULL, NULL, NULL, NULL);
        break;
    case TLS_SKIP_VERIFY:
        mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &on);
        mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &off);
        break;
    case TLS_VERIFY:
        mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &on);
        mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
        break;
    }
}

/*
 * The authentication methods a connection may use. A server (or whoever
 * sits between) can ask for any method; some hand it the password:
 * mysql_clear_password always, sha256_password and caching_sha2_password
 * by encrypting it with a public key the server itself sends when there
 * is no verified TLS. So without verified TLS only the challenge-response
 * methods, which never reveal the password (as Vault's driver refuses
 * clear text and public-key retrieval by default); with it, the SHA-256
 * ones too (MySQL 8's default users).
 */
static const char *auth_plugins(enum tls_mode tls)
{
    return tls == TLS_VERIFY ? "mysql_native_password,client_ed25519,"
                               "caching_sha2_password,sha256_password"
                             : "mysql_native_password,client_ed25519";
}

/* A configured handle, not yet connected. */
static MYSQL *handle_new(const struct dbmy_pool *p, double connect_timeout)
{
    MYSQL *m;
    unsigned int ct = whole_seconds(connect_timeout);
    unsigned int rt = whole_seconds(p->statement_timeout + READ_GRACE);
    unsigned int proto = p->dsn.socket != NULL ? MYSQL_PROTOCOL_SOCKET
                                               : MYSQL_PROTOCOL_TCP;

    pthread_once(&lib_once, lib_init);
    m = mysql_init(NULL);
    if (m == NULL)
        return NULL;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &rt);
    mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, p->dsn.charset);
    mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &(unsigned int){0});
    set_tls(m, p->dsn.tls);
    mysql_optionsv(m, MARIADB_OPT_RESTRICTED_AUTH, auth_plugins(p->dsn.tls));
    return m;
}

static bool handle_connect(MYSQL *m, const struct dbmy_pool *p)
{
    const struct dsn *d = &p->dsn;

    return mysql_real_connect(m, d->socket != NULL ? "localhost" : d->host,
                              d->user, d->pass,
                              d->db != NULL && d->db[0] != '\0' ? d->db
                                                                : NULL,
                              d->port, d->socket,
                              CLIENT_MULTI_STATEMENTS |
                                  CLIENT_MULTI_RESULTS) != NULL;
}

/*
 * Session settings: UTC, and on MariaDB the server-side statement limit
 * (MySQL has no such limit for DDL; the client deadline covers it).
 */
static int session_setup(struct dbmy_conn *c, struct db_error *err)
{
    char sql[128];

    c->server_limit = mariadb_connection(c->m);
    if (c->server_limit)
        snprintf(sql, sizeof(sql), "SET time_zone = '+00:00', "
                 "max_statement_time = %.3f", c->pool->statement_timeout);
    else
        snprintf(sql, sizeof(sql), "SET time_zone = '+00:00'");
    if (mysql_real_query(c->m, sql, strlen(sql)) != 0) {
        err_from_mysql(err, c->m, c->pool, false,
                       "setting up the session failed: ");
        return COFFER_EIO;
    }
    return 0;
}

static void conn_close(struct dbmy_conn *c)
{
    if (c == NULL)
        return;
    mysql_close(c->m);
    free(c);
}

static void conn_close_list(struct dbmy_conn *list)
{
    while (list != NULL) {
        struct dbmy_conn *next = list->next;
        conn_close(list);
        list = next;
    }
}

static struct dbmy_conn *conn_open(struct dbmy_pool *p, struct db_error *err)
{
    struct dbmy_conn *c = xcalloc(1, sizeof(*c));
    double limit = deadline_after(p->connect_timeout) - time_mono();

    c->pool = p;
    if (limit <= 0) {
        err_set(err, DB_ERR_TIMEOUT, "the request ran out of time "
                "(max_request_duration) before connecting to the database");
        free(c);
        return NULL;
    }
    c->m = handle_new(p, limit);
    if (c->m == NULL) {
        err_set(err, DB_ERR_INTERNAL, "out of memory");
        free(c);
        return NULL;
    }
    if (!handle_connect(c->m, p)) {
        err_from_mysql(err, c->m, p, true, "");
        conn_close(c);
        return NULL;
    }
    if (session_setup(c, err) != 0) {
        conn_close(c);
        return NULL;
    }
    c->created = time_mono();
    c->idle_since = c->created;
    return c;
}

/*
 * An idle connection has nothing to read: if its socket is readable, the
 * server closed it (restart, wait_timeout, KILL) or sent something we did
 * not ask for. Either way it cannot be trusted. No round trip.
 */
static bool conn_alive(struct dbmy_conn *c)
{
    struct pollfd pfd = {.events = POLLIN};

    if (c->broken)
        return false;
    pfd.fd = (int)mysql_get_socket(c->m);
    if (pfd.fd < 0)
        return false;
    return poll(&pfd, 1, 0) == 0;
}

static bool conn_expired(const struct dbmy_pool *p, const struct dbmy_conn *c,
                         double now)
{
    if (p->max_lifetime > 0 && now - c->created >= p->max_lifetime)
        return true;
    return now - c->idle_since >= p->idle_timeout;
}

/* ============================================================= pools == */

static void pool_free(struct dbmy_pool *p)
{
    if (p == NULL)
        return;
    conn_close_list(p->idle);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    secure_free_str(p->dsn_text);
    dsn_release(&p->dsn);
    db__secrets_wipe(&p->secrets);
    free(p->key);
    free(p);
}

static void pool_init_limits(struct dbmy_pool *p,
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
    p->connect_timeout = cfg->connect_timeout > 0 ? cfg->connect_timeout
                                                  : DEFAULT_CONNECT_TIMEOUT;
    if (p->connect_timeout > 86400)
        p->connect_timeout = 86400;
    p->statement_timeout = cfg->statement_timeout > 0
                               ? cfg->statement_timeout
                               : DEFAULT_STATEMENT_TIMEOUT;
    if (p->statement_timeout > 86400)
        p->statement_timeout = 86400;
}

static struct dbmy_pool *pool_new(const char *key,
                                  const struct db_pool_config *cfg,
                                  struct db_error *err)
{
    struct dbmy_pool *p = xcalloc(1, sizeof(*p));
    pthread_condattr_t attr;
    const char *why = NULL;
    const char *extra[10];
    int nextra = 0;

    p->key = xstrdup(key);
    p->dsn_text = xstrdup(cfg->conninfo);
    strvec_init(&p->secrets);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&p->mu, NULL);
    p->refs = 1;
    pool_init_limits(p, cfg);
    if (dsn_parse(cfg->conninfo, &p->dsn, &why) != 0) {
        err_set(err, DB_ERR_SQL, "invalid connection_url: %s", why);
        pool_free(p);
        return NULL;
    }
    if (p->dsn.pass != NULL && p->dsn.pass[0] != '\0')
        extra[nextra++] = p->dsn.pass;
    for (int i = 0; i < cfg->nsecrets && nextra < 10; i++)
        extra[nextra++] = cfg->secrets[i];
    /* Not a libpq string: only the extra secrets are collected. */
    db__secrets_collect(&p->secrets, "", extra, nextra);
    return p;
}

static void pool_unref(struct dbmy_pool *p)
{
    bool last;

    pthread_mutex_lock(&p->mu);
    last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        pool_free(p);
}

static struct dbmy_pool *pool_lookup(const char *key)
{
    struct dbmy_pool *p;

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

static struct dbmy_pool *table_unlink_locked(const char *key)
{
    for (struct dbmy_pool **pp = &table; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            struct dbmy_pool *p = *pp;
            *pp = p->next;
            p->next = NULL;
            return p;
        }
    }
    return NULL;
}

/* Closes the idle connections of an unlinked pool and drops the table's
   reference; lent ones close as they come back. */
static void pool_retire(struct dbmy_pool *p)
{
    struct dbmy_conn *idle;

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

int dbmy_pool_configure(const char *key, const struct db_pool_config *cfg,
                        bool verify, struct db_error *err)
{
    struct db_error scratch;
    struct dbmy_pool *p = NULL, *old;
    struct dbmy_conn *c;
    int rc = 0;

    if (err == NULL)
        err = &scratch;
    err_clear(err);
    if (key == NULL || cfg == NULL || cfg->conninfo == NULL ||
        cfg->conninfo[0] == '\0') {
        err_set(err, DB_ERR_INTERNAL, "connection string is empty");
        return COFFER_EINVAL;
    }
    p = pool_new(key, cfg, err);
    if (p == NULL)
        return COFFER_EINVAL;
    if (verify) {
        c = conn_open(p, err);
        if (c == NULL) {
            pool_free(p);
            return COFFER_EIO;
        }
        p->idle = c;
        p->nidle = 1;
        p->nopen = 1;
    }
    pthread_mutex_lock(&table_mu);
    old = table_unlink_locked(key);
    p->next = table;
    table = p;
    pthread_mutex_unlock(&table_mu);
    pool_retire(old);
    return rc;
}

void dbmy_pool_remove(const char *key)
{
    struct dbmy_pool *p;

    if (key == NULL)
        return;
    pthread_mutex_lock(&table_mu);
    p = table_unlink_locked(key);
    pthread_mutex_unlock(&table_mu);
    pool_retire(p);
}

bool dbmy_pool_exists(const char *key)
{
    struct dbmy_pool *p;

    pthread_mutex_lock(&table_mu);
    for (p = table; p != NULL; p = p->next) {
        if (strcmp(p->key, key) == 0)
            break;
    }
    pthread_mutex_unlock(&table_mu);
    return p != NULL;
}

void dbmy_shutdown(void)
{
    struct dbmy_pool *list, *next;

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

/* ========================================================== lending == */

enum checkout { CHECKOUT_TAKEN = 1, CHECKOUT_OPEN, CHECKOUT_CLOSED,
                CHECKOUT_TIMEOUT, CHECKOUT_BUSY };

/* Drops expired and dead idle connections onto *dead; pops a live one. */
static struct dbmy_conn *pool_pop_idle_locked(struct dbmy_pool *p,
                                              struct dbmy_conn **dead)
{
    struct dbmy_conn **pp = &p->idle, *c, *found = NULL;
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

/*
 * max_waiting callers wait until their deadline; one more waits
 * OVERFLOW_WAIT at most, or is refused at once when a call on this pool
 * timed out recently (a stalled database must not hold every worker).
 * Returns 0 refuse, 1 wait, 2 wait briefly. Called locked.
 */
static int pool_admit_locked(struct dbmy_pool *p, double *deadline)
{
    double now = time_mono();

    if (p->nwaiting < p->max_waiting)
        return 1;
    if (p->last_timeout > 0 && now - p->last_timeout < p->statement_timeout)
        return 0;
    if (*deadline > now + OVERFLOW_WAIT)
        *deadline = now + OVERFLOW_WAIT;
    return 2;
}

static enum checkout pool_checkout(struct dbmy_pool *p, double deadline,
                                   struct dbmy_conn **out)
{
    struct dbmy_conn *dead = NULL;
    struct timespec ts;
    enum checkout r;
    int admitted = 0;
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
            admitted = pool_admit_locked(p, &deadline);
            if (admitted == 0) {
                r = CHECKOUT_BUSY;
                break;
            }
            waiting = true;
            p->nwaiting++;
            timespec_of(deadline, &ts);
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            r = admitted == 2 ? CHECKOUT_BUSY : CHECKOUT_TIMEOUT;
            break;
        }
    }
    if (waiting)
        p->nwaiting--;
    if (dead != NULL)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    conn_close_list(dead);
    return r;
}

static void pool_slot_free(struct dbmy_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->nopen--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void checkout_error(struct dbmy_pool *p, enum checkout r,
                           struct db_error *err)
{
    if (r == CHECKOUT_BUSY)
        err_set(err, DB_ERR_BUSY, "the database is not keeping up: all "
                "%d connections are in use and %d requests are already "
                "waiting; try again later", p->max_open, p->max_waiting);
    else if (budget_spent())
        err_set(err, DB_ERR_TIMEOUT, "the request ran out of time "
                "(max_request_duration) while waiting for a database "
                "connection");
    else
        err_set(err, DB_ERR_TIMEOUT, "timed out after %gs waiting for a "
                "database connection (all %d are in use)",
                p->connect_timeout, p->max_open);
}

struct dbmy_conn *dbmy_acquire(const char *key, struct db_error *err)
{
    struct db_error scratch;
    struct dbmy_pool *p = NULL;
    struct dbmy_conn *c = NULL;
    double deadline = 0;
    enum checkout r;

    if (err == NULL)
        err = &scratch;
    err_clear(err);
    for (;;) {
        p = pool_lookup(key);
        if (p == NULL) {
            err_set(err, DB_ERR_INTERNAL,
                    "no database connection is configured for %s", key);
            break;
        }
        if (deadline == 0)
            deadline = deadline_after(p->connect_timeout);
        r = pool_checkout(p, deadline, &c);
        if (r == CHECKOUT_CLOSED) {
            pool_unref(p);
            p = NULL;
            continue;
        }
        if (r == CHECKOUT_TIMEOUT || r == CHECKOUT_BUSY) {
            checkout_error(p, r, err);
        } else if (r == CHECKOUT_OPEN) {
            c = conn_open(p, err);
            if (c == NULL)
                pool_slot_free(p);
        }
        break;
    }
    if (c == NULL && p != NULL)
        pool_unref(p);
    return c;
}

static bool in_transaction(MYSQL *m)
{
    unsigned int status = 0;

    if (mariadb_get_infov(m, MARIADB_CONNECTION_SERVER_STATUS, &status) != 0)
        return true;
    return (status & SERVER_STATUS_IN_TRANS) != 0;
}

void dbmy_release(struct dbmy_conn *c)
{
    struct dbmy_pool *p;
    bool keep;

    if (c == NULL)
        return;
    p = c->pool;
    if (!c->broken && in_transaction(c->m))
        dbmy_rollback(c);
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

/* Marks the connection broken when the failure lost the link. */
static void exec_failed(struct dbmy_conn *c, struct db_error *err)
{
    err_from_mysql(err, c->m, c->pool, false, "");
    if (err->klass == DB_ERR_UNREACHABLE || err->klass == DB_ERR_INTERNAL)
        c->broken = true;
}

/*
 * Cancels the statement running on c: KILL QUERY <its thread id> from a
 * second connection with the pool's credentials. Best effort; true when
 * the server took the KILL.
 */
static bool kill_query(struct dbmy_conn *c)
{
    MYSQL *k = handle_new(c->pool, CANCEL_GRACE);
    char sql[64];
    bool ok = false;

    if (k == NULL)
        return false;
    snprintf(sql, sizeof(sql), "KILL QUERY %lu", mysql_thread_id(c->m));
    if (handle_connect(k, c->pool))
        ok = mysql_real_query(k, sql, strlen(sql)) == 0;
    mysql_close(k);
    return ok;
}

/*
 * The statement's deadline passed: cancel it and keep the connection only
 * if the server answers within CANCEL_GRACE (then the answer, normally
 * ER_QUERY_INTERRUPTED, is read and dropped).
 */
static void statement_timed_out(struct dbmy_conn *c, double limit,
                                struct db_error *err)
{
    int fd = (int)mysql_get_socket(c->m);

    if (!kill_query(c) || wait_readable(fd, time_mono() + CANCEL_GRACE) != 1)
        c->broken = true;
    else if (mysql_read_query_result(c->m) == 0)
        mysql_free_result(mysql_store_result(c->m));
    if (!c->broken && mysql_errno(c->m) != 0 &&
        classify(mysql_errno(c->m), false) == DB_ERR_UNREACHABLE)
        c->broken = true;
    /* A script may have more results queued: this link is done. */
    if (!c->broken && mysql_more_results(c->m))
        c->broken = true;
    pthread_mutex_lock(&c->pool->mu);
    c->pool->last_timeout = time_mono();
    pthread_mutex_unlock(&c->pool->mu);
    if (budget_spent())
        err_set(err, DB_ERR_TIMEOUT, "the request ran out of time "
                "(max_request_duration) while the database ran a statement; "
                "it was cancelled");
    else
        err_set(err, DB_ERR_TIMEOUT, "canceling statement due to statement "
                "timeout (%gs)", limit);
}

/*
 * Sends sql and waits for its first answer until the statement deadline.
 * 0 with the first result ready to read, or COFFER_EIO with err filled.
 */
static int send_and_wait(struct dbmy_conn *c, const char *sql, size_t len,
                         struct db_error *err)
{
    double limit = c->pool->statement_timeout;
    double deadline = deadline_after(limit + (c->server_limit ? SERVER_FIRST
                                                              : 0));
    int w;

    if (c->broken) {
        err_set(err, DB_ERR_UNREACHABLE, "the database connection was lost");
        return COFFER_EIO;
    }
    if (mysql_send_query(c->m, sql, (unsigned long)len) != 0) {
        exec_failed(c, err);
        return COFFER_EIO;
    }
    w = wait_readable((int)mysql_get_socket(c->m), deadline);
    if (w == 0) {
        statement_timed_out(c, limit, err);
        return COFFER_EIO;
    }
    if (w < 0 || mysql_read_query_result(c->m) != 0) {
        if (w < 0)
            c->broken = true;
        exec_failed(c, err);
        return COFFER_EIO;
    }
    return 0;
}

/* Copies a result set into res, wiping the library's copy of each cell
   (rows may hold passwords). */
static void result_copy(MYSQL_RES *r, struct db_result *res)
{
    unsigned int ncols = mysql_num_fields(r);
    MYSQL_FIELD *fields = mysql_fetch_fields(r);
    size_t nrows = (size_t)mysql_num_rows(r), i = 0;
    MYSQL_ROW row;

    res->ncols = (int)ncols;
    res->nrows = (int)nrows;
    res->colnames = xcalloc(ncols > 0 ? ncols : 1, sizeof(char *));
    res->cells = xcalloc(nrows * ncols > 0 ? nrows * ncols : 1,
                         sizeof(char *));
    for (unsigned int j = 0; j < ncols; j++)
        res->colnames[j] = xstrdup(fields[j].name);
    while ((row = mysql_fetch_row(r)) != NULL && i < nrows) {
        unsigned long *lens = mysql_fetch_lengths(r);
        for (unsigned int j = 0; j < ncols; j++) {
            if (row[j] == NULL)
                continue;
            res->cells[i * ncols + j] = xstrndup(row[j], lens[j]);
            explicit_bzero(row[j], lens[j]);
        }
        i++;
    }
}

/*
 * Reads every result of the statement(s) already answered: the first row
 * set goes to res (if not NULL), the others are dropped. Stops at the
 * first failure, which is what the server stopped at.
 */
static int drain_results(struct dbmy_conn *c, struct db_result *res,
                         struct db_error *err)
{
    bool have = false;
    int st;

    do {
        MYSQL_RES *r = mysql_store_result(c->m);
        if (r != NULL) {
            if (res != NULL && !have) {
                result_copy(r, res);
                have = true;
            }
            mysql_free_result(r);
        } else if (mysql_field_count(c->m) != 0) {
            exec_failed(c, err);
            return COFFER_EIO;
        } else if (res != NULL && !have) {
            res->affected = (int64_t)mysql_affected_rows(c->m);
        }
        st = mysql_next_result(c->m);
        if (st > 0) {
            exec_failed(c, err);
            return COFFER_EIO;
        }
    } while (st == 0);
    return 0;
}

/* ---------------------------------------------------- placeholders -- */

/*
 * Length of the quoted or commented span starting at s[i], or 0 when s[i]
 * starts none. Strings '..' and "..": backslash escapes and doubled
 * quotes; `identifiers`: doubled backticks; -- and # to end of line;
 * block comments.
 */
static size_t skip_span(const char *s, size_t i, size_t n)
{
    size_t j = i + 1;
    char q = s[i];

    if (q == '\'' || q == '"' || q == '`') {
        while (j < n) {
            if (q != '`' && s[j] == '\\' && j + 1 < n) {
                j += 2;
            } else if (s[j] == q) {
                if (j + 1 < n && s[j + 1] == q)
                    j += 2;
                else
                    return j + 1 - i;
            } else {
                j++;
            }
        }
        return n - i;
    }
    if (q == '#' || (q == '-' && j < n && s[j] == '-' &&
                     (j + 1 >= n || s[j + 1] == ' ' || s[j + 1] == '\t' ||
                      s[j + 1] == '\n'))) {
        while (j < n && s[j] != '\n')
            j++;
        return j - i;
    }
    if (q == '/' && j < n && s[j] == '*') {
        const char *end = strstr(s + j + 1, "*/");
        return end != NULL ? (size_t)(end + 2 - (s + i)) : n - i;
    }
    return 0;
}

static void append(char **buf, size_t *len, size_t *cap, const char *s,
                   size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap + n + 1) * 2;
        char *nb = xmalloc(ncap);
        if (*buf != NULL) {
            memcpy(nb, *buf, *len);
            explicit_bzero(*buf, *cap);
            free(*buf);
        }
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Appends v as a quoted literal (or NULL), escaped for this connection. */
static void append_literal(struct dbmy_conn *c, char **buf, size_t *len,
                           size_t *cap, const char *v)
{
    size_t n;
    char *q;

    if (v == NULL) {
        append(buf, len, cap, "NULL", 4);
        return;
    }
    n = strlen(v);
    q = xmalloc(2 * n + 3);
    q[0] = '\'';
    n = mysql_real_escape_string(c->m, q + 1, v, (unsigned long)n);
    q[n + 1] = '\'';
    append(buf, len, cap, q, n + 2);
    explicit_bzero(q, n + 2);
    free(q);
}

/*
 * Builds the statement to send: every '?' outside quotes and comments
 * replaced by the next parameter. Refuses a count mismatch and a second
 * statement. Returns a new string (freed with secure_free_str) or NULL.
 */
static char *interpolate(struct dbmy_conn *c, const char *sql, int nparams,
                         const char *const *params, size_t *outlen,
                         struct db_error *err)
{
    size_t n = strlen(sql), i = 0, start = 0, len = 0, cap = 0;
    char *buf = NULL;
    int used = 0;

    append(&buf, &len, &cap, "", 0);
    while (i < n) {
        size_t span = skip_span(sql, i, n);
        if (span > 0) {
            i += span;
        } else if (sql[i] == '?') {
            append(&buf, &len, &cap, sql + start, i - start);
            if (used >= nparams) {
                err_set(err, DB_ERR_SQL, "the statement has more '?' "
                        "placeholders than the %d parameters given", nparams);
                secure_free_str(buf);
                return NULL;
            }
            append_literal(c, &buf, &len, &cap, params[used++]);
            start = ++i;
        } else if (sql[i] == ';' && sql[i + 1 + strspn(sql + i + 1,
                                                        " \t\r\n")] != '\0') {
            err_set(err, DB_ERR_SQL, "exec runs one statement; use "
                    "exec_script for several");
            secure_free_str(buf);
            return NULL;
        } else {
            i++;
        }
    }
    append(&buf, &len, &cap, sql + start, n - start);
    if (used != nparams) {
        err_set(err, DB_ERR_SQL, "the statement has %d '?' placeholders "
                "but %d parameters were given", used, nparams);
        secure_free_str(buf);
        return NULL;
    }
    *outlen = len;
    return buf;
}

static void result_init(struct db_result *res)
{
    if (res != NULL)
        memset(res, 0, sizeof(*res));
}

int dbmy_exec(struct dbmy_conn *c, const char *sql, int nparams,
              const char *const *params, struct db_result *res,
              struct db_error *err)
{
    struct db_error scratch;
    char *text = NULL;
    size_t len = 0;
    int rc = COFFER_EINVAL;

    if (err == NULL)
        err = &scratch;
    err_clear(err);
    result_init(res);
    if (c == NULL || sql == NULL || nparams < 0 || nparams > MAX_PARAMS ||
        (nparams > 0 && params == NULL)) {
        err_set(err, DB_ERR_INTERNAL, "bad arguments to exec");
        return COFFER_EINVAL;
    }
    text = interpolate(c, sql, nparams, params, &len, err);
    if (text != NULL) {
        rc = send_and_wait(c, text, len, err);
        if (rc == 0)
            rc = drain_results(c, res, err);
    }
    secure_free_str(text);
    if (rc != 0)
        db_result_release(res);
    return rc;
}

int dbmy_exec_script(struct dbmy_conn *c, const char *sql,
                     struct db_error *err)
{
    struct db_error scratch;
    int rc;

    if (err == NULL)
        err = &scratch;
    err_clear(err);
    if (c == NULL || sql == NULL) {
        err_set(err, DB_ERR_INTERNAL, "bad arguments to exec_script");
        return COFFER_EINVAL;
    }
    rc = send_and_wait(c, sql, strlen(sql), err);
    if (rc == 0)
        rc = drain_results(c, NULL, err);
    return rc;
}

int dbmy_begin(struct dbmy_conn *c, struct db_error *err)
{
    return dbmy_exec_script(c, "START TRANSACTION", err);
}

int dbmy_commit(struct dbmy_conn *c, struct db_error *err)
{
    return dbmy_exec_script(c, "COMMIT", err);
}

void dbmy_rollback(struct dbmy_conn *c)
{
    if (c == NULL || c->broken)
        return;
    if (dbmy_exec_script(c, "ROLLBACK", NULL) != 0)
        c->broken = true;
}

char *dbmy_escape(struct dbmy_conn *c, const char *s, size_t n, bool literal,
                  struct db_error *err)
{
    struct db_error scratch;
    char *out;
    size_t o = 0;

    if (err == NULL)
        err = &scratch;
    err_clear(err);
    if (memchr(s, '\0', n) != NULL) {
        err_set(err, DB_ERR_SQL, "a NUL byte cannot be quoted");
        return NULL;
    }
    out = xmalloc(2 * n + 3);
    if (literal) {
        out[0] = '\'';
        o = 1 + mysql_real_escape_string(c->m, out + 1, s, (unsigned long)n);
        out[o++] = '\'';
    } else {
        out[o++] = '`';
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '`')
                out[o++] = '`';
            out[o++] = s[i];
        }
        out[o++] = '`';
    }
    out[o] = '\0';
    return out;
}
