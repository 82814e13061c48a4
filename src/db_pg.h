/*
 * db_pg.h - the PostgreSQL driver: connection pools, statements,
 * transactions (libpq).
 *
 * A pool (db_pool.h, shared with the MySQL driver) is named by a
 * caller-chosen key (the database engine uses "<mount uuid>/<config
 * name>") and created from a libpq connection string or URL. Pools are shared by every thread; a connection is lent
 * to one thread at a time. A connection whose server went away is
 * discarded and replaced on the next use, so a PostgreSQL restart heals
 * by itself.
 *
 * Errors are reported in struct db_error: the SQLSTATE ("" if the server
 * was never reached), a message safe to show a client (the password of the
 * connection is never in it), and a class deciding what a caller does.
 *
 * Conventions for every function below: int-returning ones return 0 or a
 * negative COFFER_E* code (COFFER_EINVAL for bad arguments or a malformed
 * connection string, COFFER_EIO for anything the database did) and fill
 * err; err may be NULL when the caller does not need the words. All
 * functions are thread-safe; a struct db_conn is used by one thread at a
 * time. Every session runs with TimeZone UTC, client_encoding UTF8 and
 * application_name "coffer" unless the connection string sets its own.
 *
 * Connection failures carry no SQLSTATE in libpq: they are classified from
 * the server's (English) wording; an unrecognised one is UNREACHABLE.
 *
 * Time limits. No call waits without a deadline: connecting (connect_timeout,
 * non-blocking connect), running a statement (statement_timeout, sent
 * without blocking and polled; on expiry the statement is cancelled with
 * PQcancel and the connection is dropped unless the server confirms the
 * cancel at once; the same timeout is also the session's server-side
 * statement_timeout), and waiting for a pooled connection. On a thread
 * serving a request every deadline is also capped by the request's
 * remaining budget (request_budget_left_ms). At most max_open calls run and
 * max_waiting wait per pool; a caller beyond that waits briefly and fails
 * with DB_ERR_BUSY, at once when the pool timed out recently, so one stalled
 * database cannot hold every worker thread of the server.
 *
 * Secrets. Every password found in the connection string (URL user-info,
 * ?password= and sslpassword=, key/value password=, quoted or not, and
 * anything a malformed string lets libpq mistake for another word) plus
 * the extra secrets a caller names is scrubbed from every message.
 * Finding them, and db_redact_conninfo / db_conninfo_has_password for
 * the engines, live in db_pg_conninfo.h, which this header includes.
 */
#ifndef COFFER_DB_PG_H
#define COFFER_DB_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "db_pg_conninfo.h"
#include "db_pool.h"

struct db_conn; /* a connection lent from a pool */

/*
 * Creates or replaces the pool named key. Replacing closes the idle
 * connections of the old pool; lent ones are closed when returned.
 * When verify is true, opens one connection now and fails if it cannot
 * (the old pool, if any, is then left in place); the connection is kept
 * as the new pool's first idle one. A connection string libpq cannot
 * parse fails with DB_ERR_SQL whatever verify says. Borrows cfg. Blocks
 * up to the connect timeout when verifying.
 */
int db_pool_configure(const char *key, const struct db_pool_config *cfg,
                      bool verify, struct db_error *err);
/* Closes and forgets the pool (reset, config delete). Missing is fine. */
void db_pool_remove(const char *key);
bool db_pool_exists(const char *key);
void db_shutdown(void);

/*
 * Borrows a connection, waiting up to the connect timeout (capped by the
 * request's budget) when all are lent: then DB_ERR_TIMEOUT "timed out
 * after Ns waiting for a database connection (all N are in use)"; or
 * DB_ERR_BUSY at once (or after a brief wait) when max_waiting callers
 * already wait. Blocks up to the connect timeout when it opens one.
 * Returns NULL with err filled on failure; an unknown key is
 * DB_ERR_INTERNAL. The caller gives it back with db_release.
 */
struct db_conn *db_acquire(const char *key, struct db_error *err);
/*
 * Returns it to its pool. A connection still inside a transaction is rolled
 * back first; a broken one, or one of a replaced pool, is closed. NULL is
 * fine. The connection must not be used afterwards.
 */
void db_release(struct db_conn *c);

/*
 * Runs one statement with text parameters ($1, $2, ...; NULL = SQL NULL).
 * res may be NULL when rows are not needed; otherwise the caller frees it
 * with db_result_release (on failure it is left empty, and releasing it is
 * harmless). DB_ERR_UNREACHABLE marks the connection broken: release it
 * and acquire another. DB_ERR_TRANSIENT means retry the whole transaction.
 */
int db_exec(struct db_conn *c, const char *sql, int nparams,
            const char *const *params, struct db_result *res,
            struct db_error *err);
/* Wipes and frees the cells; res is then empty. NULL is fine. */
void db_result_release(struct db_result *res);

/*
 * Runs a string of parameterless statements separated by ';' in one round
 * trip (libpq's simple query protocol). Without explicit BEGIN/COMMIT in
 * it, PostgreSQL runs the whole string as one transaction: all of it
 * commits, or none of it (the error is that of the failing statement).
 * Returns 0 or COFFER_EIO with err filled, like db_exec.
 */
int db_exec_script(struct db_conn *c, const char *sql, struct db_error *err);

int db_begin(struct db_conn *c, struct db_error *err);
/*
 * Commits. A transaction that had already failed is rolled back by the
 * server: that is reported as DB_ERR_SQL, SQLSTATE 25P02.
 */
int db_commit(struct db_conn *c, struct db_error *err);
/* Never fails from the caller's point of view; a broken link is closed. */
void db_rollback(struct db_conn *c);

/*
 * Quotes an identifier: "name" with embedded quotes doubled. Returns a new
 * string the caller frees, or NULL for a NULL name.
 */
char *db_quote_ident(const char *name);

/*
 * Quotes s (n bytes) for SQL by the server's own rules, through libpq's
 * PQescapeLiteral (literal) or PQescapeIdentifier, which know the
 * session's encoding and standard_conforming_strings. Returns a new string
 * the caller frees with secure_free_str, or NULL with err filled (bytes
 * that are not valid in the client encoding, an embedded NUL).
 */
char *db_escape(struct db_conn *c, const char *s, size_t n, bool literal,
                struct db_error *err);

#endif
