/*
 * db_mysql.h - the MySQL/MariaDB driver: connection pools, statements,
 * transactions (MariaDB Connector/C, libmariadb).
 *
 * The same shape and contract as the PostgreSQL driver (db_pg.h): its
 * struct db_error, db_result and db_pool_config, pools named by a
 * caller-chosen key, a connection lent to one thread at a time, dead
 * connections discarded and replaced, the same error classes and return
 * conventions (0 or a negative COFFER_E* code, err filled, err may be
 * NULL). The pools themselves are db_pool.c's, one table for both
 * drivers: configuring a key replaces the pool of either driver.
 *
 * Connection string: the Go driver's DSN that Vault takes,
 *   [user[:password]@][tcp(host[:port])|unix(/path/to/socket)]/[dbname][?k=v&...]
 * The password runs from the first ':' to the last '@' before the
 * address, so it may hold ':' and '@'. Parameters: tls=true|skip-verify|
 * preferred|false, charset=<name> (default utf8mb4); anything else is
 * refused (the Go driver would SET it as a session variable).
 *
 * Parameters of dbmy_exec are '?' placeholders, filled on the client:
 * each value becomes a quoted literal made by mysql_real_escape_string on
 * the connection (which knows its charset and NO_BACKSLASH_ESCAPES), or
 * NULL. A '?' inside a quoted string, a `quoted identifier` or a comment
 * is not a placeholder. dbmy_exec runs one statement: text after a ';'
 * is refused (scripts go through dbmy_exec_script).
 *
 * Errors: "Error <code> (<SQLSTATE>): <server words>", as the Go driver
 * prints them, scrubbed of every password of the pool. Classes:
 *   unreachable  client errors 2xxx (CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR,
 *                CR_SERVER_GONE_ERROR, CR_SERVER_LOST, ...), server
 *                shutdown, connection killed, too many connections;
 *   transient    ER_LOCK_DEADLOCK (1213), ER_LOCK_WAIT_TIMEOUT (1205);
 *   auth         at connect: ER_ACCESS_DENIED_ERROR (1045), 1044, 1049,
 *                1251, 1698, 1862, a locked account;
 *   timeout      a statement over its limit (1969, 3024, 1317 after our
 *                KILL QUERY), or a deadline of ours;
 *   sql          the rest (syntax, privileges, CREATE USER of an existing
 *                user, ...).
 *
 * Time limits. Connect, read and write timeouts are set with mysql_options
 * (connect_timeout; statement_timeout + grace). A statement is sent
 * without waiting and its first answer is awaited with poll() until the
 * statement deadline (statement_timeout, capped by the request's budget);
 * on expiry the statement is cancelled with KILL QUERY sent from a second,
 * short-lived connection, and the connection is kept only if the server
 * confirms the interruption within a grace second. Each later statement
 * of a script gets the same deadline and cancellation (Connector/C's
 * non-blocking next-result calls, polled). MariaDB also enforces the limit
 * itself (session max_statement_time).
 *
 * TLS material as PEM text (tls_ca, tls_certificate_key of struct
 * db_pool_config): see db_mysql_tls.h.
 */
#ifndef COFFER_DB_MYSQL_H
#define COFFER_DB_MYSQL_H

#include <stdbool.h>
#include <stddef.h>

#include "db_pg.h"

struct dbmy_conn; /* a connection lent from a pool */

/* As db_pool_configure. A DSN that cannot be parsed is DB_ERR_SQL. */
int dbmy_pool_configure(const char *key, const struct db_pool_config *cfg,
                        bool verify, struct db_error *err);
void dbmy_pool_remove(const char *key);
bool dbmy_pool_exists(const char *key);
void dbmy_shutdown(void);

/* As db_acquire / db_release. */
struct dbmy_conn *dbmy_acquire(const char *key, struct db_error *err);
void dbmy_release(struct dbmy_conn *c);

/* As db_exec, with '?' placeholders (see above). */
int dbmy_exec(struct dbmy_conn *c, const char *sql, int nparams,
              const char *const *params, struct db_result *res,
              struct db_error *err);
/*
 * Runs ';'-separated statements in one round trip (CLIENT_MULTI_STATEMENTS)
 * and drains every result. The server stops at the first failing one and
 * that is the error reported. Not atomic: MySQL commits DDL (CREATE USER,
 * GRANT) implicitly, so statements before the failing one stay done.
 */
int dbmy_exec_script(struct dbmy_conn *c, const char *sql,
                     struct db_error *err);

int dbmy_begin(struct dbmy_conn *c, struct db_error *err);
int dbmy_commit(struct dbmy_conn *c, struct db_error *err);
void dbmy_rollback(struct dbmy_conn *c);

/*
 * Quotes s (n bytes): a literal '...' through mysql_real_escape_string
 * (a string, so it can name an account 'u'@'h'), or an identifier `...`
 * with backticks doubled. A NUL byte is refused. ('?' parameters are hex
 * literals instead: values only.) The caller frees the result with secure_free_str.
 */
char *dbmy_escape(struct dbmy_conn *c, const char *s, size_t n, bool literal,
                  struct db_error *err);

/*
 * The DSN with a literal password replaced by "xxxxx" (a templated
 * {{password}} is kept); and whether it holds one. The string is taken to
 * be a DSN. dbmy_looks_like_dsn guesses, from the text alone, whether a
 * string is in the Go DSN form rather than a PostgreSQL URL or key/value
 * string; when the driver is known, go by the driver.
 */
char *dbmy_redact_dsn(const char *dsn);
bool dbmy_dsn_has_password(const char *dsn);
bool dbmy_looks_like_dsn(const char *s);

#endif
