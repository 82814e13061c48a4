/*
 * lua_db.h - coffer.db: the PostgreSQL driver (db_pg.c) as seen from Lua.
 *
 *   coffer.db.drivers()                     -> {"postgresql"}
 *   coffer.db.configure(key, cfg, verify)   -> true | nil, err
 *   coffer.db.remove(key)                   -> nothing
 *   coffer.db.exists(key)                   -> boolean
 *   coffer.db.quote_ident(name)             -> "name" with quotes doubled
 *   coffer.db.acquire(key)                  -> conn | nil, err
 *   coffer.db.redact_conninfo(s)            -> s with passwords "xxxxx",
 *                                              had_literal_password
 *   conn:exec(sql [, params])               -> result | nil, err
 *   conn:quote_ident(s) / conn:quote_literal(s) -> quoted | nil, err
 *   conn:begin() / conn:commit()            -> true | nil, err
 *   conn:rollback() / conn:release()        -> nothing
 *
 * cfg = { driver (default "postgresql"), conninfo, max_open, max_idle, max_waiting, max_lifetime,
 *         idle_timeout, connect_timeout, statement_timeout (seconds),
 *         secrets = { strings to scrub from messages } }. params is a sequence (params.n, if set, counts
 * trailing nils); values become text, nil and coffer.json.null become SQL
 * NULL. result = { rows = { {col = "text" | nil, ...}, ... },
 * columns = {...}, affected = n }. err = { class = "unreachable" |
 * "transient" | "auth" | "sql" | "internal" | "timeout" | "busy",
 * sqlstate, message }.
 *
 * A conn is a userdata that returns itself to the pool when released,
 * closed (`local c <close> = ...`) or collected, so a script error never
 * strands a connection.
 */
#ifndef COFFER_LUA_DB_H
#define COFFER_LUA_DB_H

#include <lua.h>

/*
 * Creates the coffer.dbconn metatable and sets field "db" of the table at
 * the top of the stack. [-0, +0, m]
 */
void lua_db_open(lua_State *L);

#endif
