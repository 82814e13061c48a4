/*
 * db_mysql.c - the MySQL/MariaDB driver over MariaDB Connector/C (see
 * db_mysql.h for the contract).
 *
 * Layout: DSN parsing, errors, connecting, the pool operations (the
 * lending rules themselves are db_pool.c's, shared with db_pg.c),
 * statements.
 *
 * Why KILL QUERY rather than the read timeout alone: a read timeout only
 * stops the client; the server would go on running the statement (holding
 * its locks) on a connection nobody reads. So every statement, the later
 * ones of a script too, is waited for with poll() until its deadline; the
 * read timeout stays as a backstop, and MariaDB's max_statement_time
 * bounds each statement on the server.
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
#include "db_mysql_tls.h"
#include "db_pool.h"
#include "log.h"
#include "request.h"
#include "util.h"

/* How long a KILL QUERY may take to land, and the read timeout's margin. */
#define CANCEL_GRACE 1.0
#define READ_GRACE 2.0
/* Where the server enforces the limit, it gets this long to do so (with
   its own, clearer error) before the client cancels. */
#define SERVER_FIRST 0.3
/* A caller beyond max_waiting waits at most this long. */
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

/* A lent connection; the pool's head first (db_pool.h). */
struct dbmy_conn {
    struct dbpool_conn base;
    MYSQL *m;
    bool server_limit;  /* the server enforces statement_timeout itself */
};

/* A pool's own data (its ops data): the parsed DSN and TLS material. */
struct my_pool {
    struct dsn dsn;
    struct dbmy_tls tls;
};

static const struct dsn *dsn_of(const struct dbpool *p)
{
    return &((const struct my_pool *)p->data)->dsn;
}

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
    if (strcmp(k, "charset") == 0) {
        /* Only character sets in which no byte of a multi-byte character
         * is ASCII: in GBK, SJIS, Big5 or CP932 a trailing byte can be a
         * backslash, and quoting that does not know it can be escaped. */
        static const char *const safe[] = {"utf8mb4", "utf8mb3", "utf8",
                                           "latin1", "ascii", "binary"};
        for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++) {
            if (strcmp(v, safe[i]) == 0) {
                free(d->charset);
                d->charset = xstrdup(v);
                return 0;
            }
        }
        *why = "charset must be utf8mb4, utf8mb3, utf8, latin1, ascii or "
               "binary";
        return -1;
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

#define err_set db_error_set

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
                           const struct dbpool *p, bool at_connect,
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
    clean = dbpool_scrub(p, text);
    err->klass = classify(code, at_connect);
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s",
             is_client_error(code) ? "" : state);
    snprintf(err->message, sizeof(err->message), "%s%s",
             prefix != NULL ? prefix : "", clean);
    secure_free_str(clean);
    secure_free_str(text);
}

/* ========================================================= deadlines == */

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
 * The memory files of tls_ca / tls_certificate_key (db_mysql_tls.h).
 * Connector/C checks the chain whenever it has a CA, so tls_skip_verify
 * (verify nothing, as Go's InsecureSkipVerify) leaves the CA out.
 */
static void set_tls_files(MYSQL *m, const struct dbmy_tls *t)
{
    if (t->ca_fd >= 0 && !t->skip_verify)
        mysql_options(m, MYSQL_OPT_SSL_CA, t->ca_path);
    if (t->cert_fd >= 0) {
        mysql_options(m, MYSQL_OPT_SSL_CERT, t->cert_path);
        mysql_options(m, MYSQL_OPT_SSL_KEY, t->cert_path);
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
static MYSQL *handle_new(const struct dbpool *p, double connect_timeout)
{
    MYSQL *m;
    unsigned int ct = whole_seconds(connect_timeout);
    unsigned int rt = whole_seconds(p->statement_timeout + READ_GRACE);
    unsigned int proto = dsn_of(p)->socket != NULL ? MYSQL_PROTOCOL_SOCKET
                                               : MYSQL_PROTOCOL_TCP;

    pthread_once(&lib_once, lib_init);
    m = mysql_init(NULL);
    if (m == NULL)
        return NULL;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &rt);
    mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, dsn_of(p)->charset);
    mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &(unsigned int){0});
    /* For the later results of a script (next_result); blocking calls
       keep working on such a handle. */
    mysql_options(m, MYSQL_OPT_NONBLOCK, 0);
    set_tls(m, dsn_of(p)->tls);
    set_tls_files(m, &((const struct my_pool *)p->data)->tls);
    mysql_optionsv(m, MARIADB_OPT_RESTRICTED_AUTH, auth_plugins(dsn_of(p)->tls));
    return m;
}

static bool handle_connect(MYSQL *m, const struct dbpool *p)
{
    const struct dsn *d = dsn_of(p);

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
                 "max_statement_time = %.3f", c->base.pool->statement_timeout);
    else
        snprintf(sql, sizeof(sql), "SET time_zone = '+00:00'");
    if (mysql_real_query(c->m, sql, strlen(sql)) != 0) {
        err_from_mysql(err, c->m, c->base.pool, false,
                       "setting up the session failed: ");
        return COFFER_EIO;
    }
    return 0;
}

static void conn_close(struct dbpool_conn *base)
{
    struct dbmy_conn *c = (struct dbmy_conn *)base;

    if (c == NULL)
        return;
    mysql_close(c->m);
    free(c);
}

/* ops.open: connects and sets the session up, or NULL with err. */
static struct dbpool_conn *conn_open(struct dbpool *p, struct db_error *err)
{
    struct dbmy_conn *c = xcalloc(1, sizeof(*c));
    double limit = dbpool_deadline_after(p->connect_timeout) - time_mono();

    c->base.pool = p;
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
        conn_close(&c->base);
        return NULL;
    }
    if (session_setup(c, err) != 0) {
        conn_close(&c->base);
        return NULL;
    }
    return &c->base;
}

/*
 * ops.alive. An idle connection has nothing to read: if its socket is
 * readable, the server closed it (restart, wait_timeout, KILL) or sent
 * something we did not ask for. Either way it cannot be trusted. No
 * round trip.
 */
static bool conn_alive(struct dbpool_conn *base)
{
    struct dbmy_conn *c = (struct dbmy_conn *)base;
    struct pollfd pfd = {.events = POLLIN};

    if (c->base.broken)
        return false;
    pfd.fd = (int)mysql_get_socket(c->m);
    if (pfd.fd < 0)
        return false;
    return poll(&pfd, 1, 0) == 0;
}

static bool in_transaction(MYSQL *m)
{
    unsigned int status = 0;

    if (mariadb_get_infov(m, MARIADB_CONNECTION_SERVER_STATUS, &status) != 0)
        return true;
    return (status & SERVER_STATUS_IN_TRANS) != 0;
}

/* ops.make_clean: a returned connection never carries a transaction. */
static void conn_make_clean(struct dbpool_conn *base)
{
    struct dbmy_conn *c = (struct dbmy_conn *)base;

    if (!c->base.broken && in_transaction(c->m))
        dbmy_rollback(c);
}

/* ============================================================= pools == */

static void pool_free_data(void *data)
{
    struct my_pool *mp = data;

    if (mp != NULL) {
        dsn_release(&mp->dsn);
        dbmy_tls_release(&mp->tls);
        free(mp);
    }
}

/* ops.prepare: parses the DSN; its password and the caller's secrets are
   what messages are scrubbed of. */
static int pool_prepare(struct dbpool *p, const struct db_pool_config *cfg,
                        struct db_error *err)
{
    struct my_pool *mp = xcalloc(1, sizeof(*mp));
    struct dsn *d = &mp->dsn;
    const char *why = NULL;
    const char *extra[10];
    int nextra = 0;

    mp->tls.ca_fd = mp->tls.cert_fd = -1;
    p->data = mp;
    if (dsn_parse(cfg->conninfo, d, &why) != 0) {
        err_set(err, DB_ERR_SQL, "invalid connection_url: %s", why);
        return COFFER_EINVAL;
    }
    if (d->pass != NULL && d->pass[0] != '\0')
        extra[nextra++] = d->pass;
    for (int i = 0; i < cfg->nsecrets && nextra < 10; i++)
        extra[nextra++] = cfg->secrets[i];
    /* Not a libpq string: only the extra secrets are collected. */
    db__secrets_collect(&p->secrets, "", extra, nextra);
    if (dbmy_tls_prepare(&mp->tls, cfg, d->socket != NULL ? NULL : d->host,
                         err) != 0)
        return COFFER_EINVAL;
    /* Given PEM material, TLS is required whatever tls= said (Vault). */
    if (mp->tls.custom)
        d->tls = mp->tls.skip_verify ? TLS_SKIP_VERIFY : TLS_VERIFY;
    return 0;
}

static const struct dbpool_ops my_ops = {
    .driver = "mysql",
    .prepare = pool_prepare,
    .free_data = pool_free_data,
    .open = conn_open,
    .close = conn_close,
    .alive = conn_alive,
    .make_clean = conn_make_clean,
};

int dbmy_pool_configure(const char *key, const struct db_pool_config *cfg,
                        bool verify, struct db_error *err)
{
    return dbpool_configure(&my_ops, key, cfg, verify, err);
}

void dbmy_pool_remove(const char *key)
{
    dbpool_remove(&my_ops, key);
}

bool dbmy_pool_exists(const char *key)
{
    return dbpool_exists(&my_ops, key);
}

void dbmy_shutdown(void)
{
    dbpool_shutdown(&my_ops);
}

struct dbmy_conn *dbmy_acquire(const char *key, struct db_error *err)
{
    return (struct dbmy_conn *)dbpool_acquire(&my_ops, key, err);
}

void dbmy_release(struct dbmy_conn *c)
{
    dbpool_release(c != NULL ? &c->base : NULL);
}

/* ======================================================= statements == */

/* Marks the connection broken when the failure lost the link. */
static void exec_failed(struct dbmy_conn *c, struct db_error *err)
{
    err_from_mysql(err, c->m, c->base.pool, false, "");
    if (err->klass == DB_ERR_UNREACHABLE || err->klass == DB_ERR_INTERNAL)
        c->base.broken = true;
}

/*
 * Cancels the statement running on c: KILL QUERY <its thread id> from a
 * second connection with the pool's credentials. Best effort; true when
 * the server took the KILL.
 */
static bool kill_query(struct dbmy_conn *c)
{
    MYSQL *k = handle_new(c->base.pool, CANCEL_GRACE);
    char sql[64];
    bool ok = false;

    if (k == NULL)
        return false;
    snprintf(sql, sizeof(sql), "KILL QUERY %lu", mysql_thread_id(c->m));
    if (handle_connect(k, c->base.pool))
        ok = mysql_real_query(k, sql, strlen(sql)) == 0;
    mysql_close(k);
    return ok;
}

/* Fills err for a statement cancelled after limit seconds. */
static void timeout_error(struct db_error *err, double limit)
{
    if (dbpool_budget_spent())
        err_set(err, DB_ERR_TIMEOUT, "the request ran out of time "
                "(max_request_duration) while the database ran a statement; "
                "it was cancelled");
    else
        err_set(err, DB_ERR_TIMEOUT, "canceling statement due to statement "
                "timeout (%gs)", limit);
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
        c->base.broken = true;
    else if (mysql_read_query_result(c->m) == 0)
        mysql_free_result(mysql_store_result(c->m));
    if (!c->base.broken && mysql_errno(c->m) != 0 &&
        classify(mysql_errno(c->m), false) == DB_ERR_UNREACHABLE)
        c->base.broken = true;
    /* A script may have more results queued: this link is done. */
    if (!c->base.broken && mysql_more_results(c->m))
        c->base.broken = true;
    dbpool_note_timeout(c->base.pool);
    timeout_error(err, limit);
}

/*
 * Sends sql and waits for its first answer until the statement deadline.
 * 0 with the first result ready to read, or COFFER_EIO with err filled.
 */
static int send_and_wait(struct dbmy_conn *c, const char *sql, size_t len,
                         struct db_error *err)
{
    double limit = c->base.pool->statement_timeout;
    double deadline = dbpool_deadline_after(limit + (c->server_limit ? SERVER_FIRST
                                                              : 0));
    int w;

    if (c->base.broken) {
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
            c->base.broken = true;
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
 * Runs a suspended non-blocking call of Connector/C (status from its
 * _start) to its end, waiting on the socket until deadline. Returns 0
 * done, or 1 when the deadline passed first (the call is still pending).
 */
static int finish_async(struct dbmy_conn *c, int status, int *st,
                        double deadline)
{
    while (status != 0) {
        struct pollfd pfd = {.fd = (int)mysql_get_socket(c->m)};
        double left = deadline - time_mono();
        int n;

        if (left <= 0)
            return 1;
        pfd.events = (short)(((status & MYSQL_WAIT_READ) ? POLLIN : 0) |
                             ((status & MYSQL_WAIT_WRITE) ? POLLOUT : 0) |
                             ((status & MYSQL_WAIT_EXCEPT) ? POLLPRI : 0));
        n = poll(&pfd, 1, (int)ceil(left * 1000));
        if (n < 0 && errno != EINTR)
            return 1;
        status = mysql_next_result_cont(st, c->m,
                                        n > 0 ? MYSQL_WAIT_READ |
                                                    MYSQL_WAIT_WRITE
                                              : MYSQL_WAIT_TIMEOUT);
    }
    return 0;
}

/*
 * Moves to the next result of a script, each statement under its own
 * statement deadline as the first one is (send_and_wait): a later
 * statement that overruns is cancelled with KILL QUERY too, rather than
 * left running on the server behind a read timeout (MySQL has no server
 * limit for it, and a script may lift MariaDB's with SET
 * max_statement_time). *st as mysql_next_result's. 0, or COFFER_EIO with
 * err filled.
 */
static int next_result(struct dbmy_conn *c, int *st, struct db_error *err)
{
    double limit = c->base.pool->statement_timeout;
    double deadline = dbpool_deadline_after(limit + (c->server_limit
                                                         ? SERVER_FIRST
                                                         : 0));

    *st = -1;
    if (!mysql_more_results(c->m))
        return 0;
    if (finish_async(c, mysql_next_result_start(st, c->m), st,
                     deadline) != 0) {
        /* Keep the link only if the server owns up to the KILL at once. */
        if (!kill_query(c) ||
            finish_async(c, MYSQL_WAIT_READ, st,
                         time_mono() + CANCEL_GRACE) != 0 ||
            mysql_more_results(c->m))
            c->base.broken = true;
        dbpool_note_timeout(c->base.pool);
        timeout_error(err, limit);
        return COFFER_EIO;
    }
    if (*st > 0) {
        exec_failed(c, err);
        return COFFER_EIO;
    }
    return 0;
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
        if (next_result(c, &st, err) != 0)
            return COFFER_EIO;
    } while (st == 0);
    return 0;
}

/* ---------------------------------------------------- placeholders -- */

/*
 * Length of the quoted or commented span starting at s[i], or 0 when s[i]
 * starts none. Strings '..' and "..": doubled quotes, and backslash
 * escapes unless the session has NO_BACKSLASH_ESCAPES (backslash false);
 * `identifiers`: doubled backticks; -- and # to end of line; block
 * comments. An executable comment (/x!..x/, MariaDB's /x M!..x/, with an
 * optional version) is code the server runs: only its opening marker is
 * skipped, so a '?' inside it is a placeholder as the server sees it.
 */
static size_t skip_span(const char *s, size_t i, size_t n, bool backslash)
{
    size_t j = i + 1;
    char q = s[i];

    if (q == '\'' || q == '"' || q == '`') {
        while (j < n) {
            if (q != '`' && backslash && s[j] == '\\' && j + 1 < n) {
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
                     (j + 1 >= n || (unsigned char)s[j + 1] <= ' '))) {
        while (j < n && s[j] != '\n')
            j++;
        return j - i;
    }
    if (q == '/' && j < n && s[j] == '*') {
        const char *end;
        size_t k = j + 1;

        if (k < n && s[k] == 'M')
            k++;
        if (k < n && s[k] == '!') {
            for (k++; k < n && s[k] >= '0' && s[k] <= '9'; k++)
                ;
            return k - i;
        }
        end = strstr(s + j + 1, "*/");
        return end != NULL ? (size_t)(end + 2 - (s + i)) : n - i;
    }
    return 0;
}

/* Whether this session treats backslash as an escape in strings. */
static bool backslash_escapes(struct dbmy_conn *c)
{
    unsigned int status = 0;

    if (mariadb_get_infov(c->m, MARIADB_CONNECTION_SERVER_STATUS,
                          &status) != 0)
        return true;
    return (status & SERVER_STATUS_NO_BACKSLASH_ESCAPES) == 0;
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

/*
 * v (n bytes) as a hexadecimal string literal with its character set,
 * _utf8mb4 X'...', into out (room for HEX_LITERAL_MAX(n) bytes); returns
 * its length. The literal is hex digits only, so no quoting rule of the
 * session (its character set, NO_BACKSLASH_ESCAPES) can make a value's
 * bytes end it and run as SQL.
 */
#define HEX_LITERAL_PREFIX "_utf8mb4 X'"
#define HEX_LITERAL_MAX(n) (2 * (n) + sizeof(HEX_LITERAL_PREFIX) + 1)

static size_t hex_literal(const char *v, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = sizeof(HEX_LITERAL_PREFIX) - 1;

    memcpy(out, HEX_LITERAL_PREFIX, o);
    for (size_t i = 0; i < n; i++) {
        out[o++] = hex[(unsigned char)v[i] >> 4];
        out[o++] = hex[(unsigned char)v[i] & 15];
    }
    out[o++] = '\'';
    out[o] = '\0';
    return o;
}

/* Appends v as a hex literal (hex_literal), or NULL. */
static void append_literal(char **buf, size_t *len, size_t *cap,
                           const char *v)
{
    size_t n, o;
    char *q;

    if (v == NULL) {
        append(buf, len, cap, "NULL", 4);
        return;
    }
    n = strlen(v);
    q = xmalloc(HEX_LITERAL_MAX(n));
    o = hex_literal(v, n, q);
    append(buf, len, cap, q, o);
    explicit_bzero(q, o);
    free(q);
}

/*
 * Whether a '?' sits inside an executable comment that names a server
 * version (/x!50700 .. x/, /x M!100100 .. x/): whether the server runs or
 * skips it depends on version rules of its own (MariaDB skips some MySQL
 * versions it is above), so a placeholder there is refused.
 */
static bool gated_placeholder(const char *sql)
{
    for (const char *p = strstr(sql, "/*"); p != NULL; p = strstr(p, "/*")) {
        const char *q = p + 2, *end;

        if (*q == 'M')
            q++;
        p += 2;
        if (*q != '!' || q[1] < '0' || q[1] > '9')
            continue;
        end = strstr(q, "*/");
        if (memchr(q, '?', end != NULL ? (size_t)(end - q) : strlen(q)))
            return true;
    }
    return false;
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
    bool backslash = backslash_escapes(c);

    if (gated_placeholder(sql)) {
        err_set(err, DB_ERR_SQL, "a '?' inside a version-gated comment "
                "(/*!NNNNN ... */) is refused: the server may skip it");
        return NULL;
    }
    append(&buf, &len, &cap, "", 0);
    while (i < n) {
        size_t span = skip_span(sql, i, n, backslash);
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
            append_literal(&buf, &len, &cap, params[used++]);
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

/*
 * Sends sql, reads every result, and counts the statement (its latency
 * and outcome) for sys/metrics.
 */
static int run_counted(struct dbmy_conn *c, const char *sql, size_t len,
                       struct db_result *res, struct db_error *err)
{
    double start = time_mono();
    int rc = send_and_wait(c, sql, len, err);

    if (rc == 0)
        rc = drain_results(c, res, err);
    dbpool_note_statement(c->base.pool, (time_mono() - start) * 1000.0,
                          rc != 0);
    return rc;
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
    db_error_clear(err);
    result_init(res);
    if (c == NULL || sql == NULL || nparams < 0 || nparams > MAX_PARAMS ||
        (nparams > 0 && params == NULL)) {
        err_set(err, DB_ERR_INTERNAL, "bad arguments to exec");
        return COFFER_EINVAL;
    }
    text = interpolate(c, sql, nparams, params, &len, err);
    if (text != NULL)
        rc = run_counted(c, text, len, res, err);
    secure_free_str(text);
    if (rc != 0)
        db_result_release(res);
    return rc;
}

int dbmy_exec_script(struct dbmy_conn *c, const char *sql,
                     struct db_error *err)
{
    struct db_error scratch;

    if (err == NULL)
        err = &scratch;
    db_error_clear(err);
    if (c == NULL || sql == NULL) {
        err_set(err, DB_ERR_INTERNAL, "bad arguments to exec_script");
        return COFFER_EINVAL;
    }
    return run_counted(c, sql, strlen(sql), NULL, err);
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
    if (c == NULL || c->base.broken)
        return;
    if (dbmy_exec_script(c, "ROLLBACK", NULL) != 0)
        c->base.broken = true;
}

char *dbmy_escape(struct dbmy_conn *c, const char *s, size_t n, bool literal,
                  struct db_error *err)
{
    struct db_error scratch;
    char *out;
    size_t o = 0;

    if (err == NULL)
        err = &scratch;
    db_error_clear(err);
    if (memchr(s, '\0', n) != NULL) {
        err_set(err, DB_ERR_SQL, "a NUL byte cannot be quoted");
        return NULL;
    }
    out = xmalloc(2 * n + 3);
    if (literal) {
        /* A quoted string, not a hex literal: account names ('u'@'h')
         * must be strings. The pool's character sets have no ASCII
         * trail bytes (dsn_param), so the escaping holds. */
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
