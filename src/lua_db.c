/*
 * lua_db.c - coffer.db, the Lua face of the database drivers, db_pg.c
 * ("postgresql") and db_mysql.c ("mysql") (see lua_db.h).
 *
 * Drivers: a small table of functions per driver (struct driver). The
 * pools of every driver live in one table (db_pool.c), a key in one pool
 * of one driver at a time (configuring it replaces whatever pool had it),
 * so acquire finds the driver by the key, and a connection userdata
 * remembers its driver for every method.
 *
 * Resource rule: every C resource is owned by a userdata before anything
 * that can raise runs. A connection lives in a "coffer.dbconn" userdata
 * whose __gc/__close releases it; a query result lives in a result box
 * while it is converted to Lua tables, so an out-of-memory error during
 * conversion cannot leak or leave secrets in unwiped memory.
 */
#include "lua_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "common.h"
#include "db_mysql.h"
#include "db_pg.h"
#include "db_pool.h"

#define CONN_MT "coffer.dbconn"
#define DB_DRIVER_POSTGRESQL "postgresql"
#define DB_DRIVER_MYSQL "mysql"
#define RESULT_MT "coffer.dbresult"
#define MAX_PARAMS 64

/* One driver's functions, with the connection as an opaque pointer. */
struct driver {
    const char *name;
    int (*configure)(const char *key, const struct db_pool_config *cfg,
                     bool verify, struct db_error *err);
    void *(*acquire)(const char *key, struct db_error *err);
    void (*release)(void *c);
    int (*exec)(void *c, const char *sql, int nparams,
                const char *const *params, struct db_result *res,
                struct db_error *err);
    int (*exec_script)(void *c, const char *sql, struct db_error *err);
    int (*begin)(void *c, struct db_error *err);
    int (*commit)(void *c, struct db_error *err);
    void (*rollback)(void *c);
    char *(*escape)(void *c, const char *s, size_t n, bool literal,
                    struct db_error *err);
};

/* Adapters from the drivers' typed connections to void *. */
static void *pg_acquire(const char *key, struct db_error *err)
{ return db_acquire(key, err); }
static void pg_release(void *c) { db_release(c); }
static int pg_exec(void *c, const char *sql, int n, const char *const *p,
                   struct db_result *res, struct db_error *err)
{ return db_exec(c, sql, n, p, res, err); }
static int pg_exec_script(void *c, const char *sql, struct db_error *err)
{ return db_exec_script(c, sql, err); }
static int pg_begin(void *c, struct db_error *err) { return db_begin(c, err); }
static int pg_commit(void *c, struct db_error *err)
{ return db_commit(c, err); }
static void pg_rollback(void *c) { db_rollback(c); }
static char *pg_escape(void *c, const char *s, size_t n, bool literal,
                       struct db_error *err)
{ return db_escape(c, s, n, literal, err); }

static void *my_acquire(const char *key, struct db_error *err)
{ return dbmy_acquire(key, err); }
static void my_release(void *c) { dbmy_release(c); }
static int my_exec(void *c, const char *sql, int n, const char *const *p,
                   struct db_result *res, struct db_error *err)
{ return dbmy_exec(c, sql, n, p, res, err); }
static int my_exec_script(void *c, const char *sql, struct db_error *err)
{ return dbmy_exec_script(c, sql, err); }
static int my_begin(void *c, struct db_error *err)
{ return dbmy_begin(c, err); }
static int my_commit(void *c, struct db_error *err)
{ return dbmy_commit(c, err); }
static void my_rollback(void *c) { dbmy_rollback(c); }
static char *my_escape(void *c, const char *s, size_t n, bool literal,
                       struct db_error *err)
{ return dbmy_escape(c, s, n, literal, err); }

static const struct driver drivers[] = {
    {DB_DRIVER_POSTGRESQL, db_pool_configure, pg_acquire, pg_release, pg_exec, pg_exec_script,
     pg_begin, pg_commit, pg_rollback, pg_escape},
    {DB_DRIVER_MYSQL, dbmy_pool_configure, my_acquire, my_release, my_exec, my_exec_script,
     my_begin, my_commit, my_rollback, my_escape},
};
#define NDRIVERS (sizeof(drivers) / sizeof(drivers[0]))

static const struct driver *driver_named(const char *name)
{
    for (size_t i = 0; i < NDRIVERS; i++) {
        if (strcmp(drivers[i].name, name) == 0)
            return &drivers[i];
    }
    return NULL;
}

/* The driver of the pool named key, or NULL. */
static const struct driver *driver_of_key(const char *key)
{
    const char *name = dbpool_driver_of(key);

    return name != NULL ? driver_named(name) : NULL;
}

struct conn_ud {
    void *conn; /* NULL once released */
    const struct driver *drv;
};

struct result_box {
    struct db_result res;
    bool live;
};

static const char *class_name(enum db_error_class k)
{
    switch (k) {
    case DB_OK: return "ok";
    case DB_ERR_UNREACHABLE: return "unreachable";
    case DB_ERR_TRANSIENT: return "transient";
    case DB_ERR_AUTH: return "auth";
    case DB_ERR_SQL: return "sql";
    case DB_ERR_INTERNAL: return "internal";
    case DB_ERR_TIMEOUT: return "timeout";
    case DB_ERR_BUSY: return "busy";
    }
    return "internal";
}

/* Pushes nil and the error table; returns 2. [-0, +2, m] */
static int push_db_error(lua_State *L, const struct db_error *e)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, class_name(e->klass));
    lua_setfield(L, -2, "class");
    lua_pushstring(L, e->sqlstate);
    lua_setfield(L, -2, "sqlstate");
    lua_pushstring(L, e->message);
    lua_setfield(L, -2, "message");
    return 2;
}

/* ========================================================== configure == */

static lua_Integer opt_int_field(lua_State *L, int idx, const char *name,
                                 lua_Integer def)
{
    lua_Integer v;
    int isnum;

    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    v = lua_tointegerx(L, -1, &isnum);
    if (!isnum)
        luaL_error(L, "db config field '%s' must be an integer", name);
    lua_pop(L, 1);
    return v;
}

/*
 * The string field name of the table at idx, or NULL when absent; the
 * value stays on the stack (the C string lives as long as it does).
 */
static const char *opt_str_field(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1))
        return NULL;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "coffer.db.configure: %s must be a string", name);
    return lua_tostring(L, -1);
}

static double opt_num_field(lua_State *L, int idx, const char *name)
{
    double v;
    int isnum;

    lua_getfield(L, idx, name);
    v = lua_isnil(L, -1) ? 0 : (double)lua_tonumberx(L, -1, &isnum);
    if (!lua_isnil(L, -1) && !isnum)
        luaL_error(L, "db config field '%s' must be a number", name);
    lua_pop(L, 1);
    return v;
}

#define MAX_SECRETS 8

/*
 * Collects cfg.secrets (a sequence of strings) into out, pointing into
 * the Lua strings, which stay on the stack until return. [-0, +n, e]
 */
static int collect_secrets(lua_State *L, int idx, const char **out)
{
    int n = 0;

    lua_getfield(L, idx, "secrets");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        for (int i = 1; i <= MAX_SECRETS; i++) {
            lua_rawgeti(L, t, i);
            if (lua_type(L, -1) != LUA_TSTRING) {
                lua_pop(L, 1);
                break;
            }
            out[n++] = lua_tostring(L, -1); /* stays on the stack */
        }
    }
    return n;
}

/* coffer.db.configure(key, cfg, verify) [-0, +1|2, e] */
static int l_db_configure(lua_State *L)
{
    const char *key = luaL_checkstring(L, 1);
    struct db_pool_config cfg = {0};
    const char *secrets[MAX_SECRETS];
    struct db_error err;
    const struct driver *drv = &drivers[0];
    bool verify;

    luaL_checktype(L, 2, LUA_TTABLE);
    verify = lua_toboolean(L, 3);
    lua_getfield(L, 2, "driver");
    if (!lua_isnil(L, -1)) {
        drv = driver_named(luaL_checkstring(L, -1));
        if (drv == NULL)
            return luaL_error(L, "coffer.db.configure: unknown driver '%s'",
                              lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "conninfo");
    cfg.conninfo = luaL_checkstring(L, -1); /* stays on the stack */
    cfg.max_open = (int)opt_int_field(L, 2, "max_open", 0);
    cfg.max_idle = (int)opt_int_field(L, 2, "max_idle", 0);
    cfg.max_waiting = (int)opt_int_field(L, 2, "max_waiting", 0);
    cfg.max_lifetime = opt_int_field(L, 2, "max_lifetime", 0);
    cfg.idle_timeout = opt_int_field(L, 2, "idle_timeout", 0);
    cfg.connect_timeout = opt_num_field(L, 2, "connect_timeout");
    cfg.statement_timeout = opt_num_field(L, 2, "statement_timeout");
    /* MySQL's TLS material (db_mysql_tls.h); ignored by PostgreSQL. */
    cfg.tls_ca = opt_str_field(L, 2, "tls_ca");
    cfg.tls_cert_key = opt_str_field(L, 2, "tls_certificate_key");
    cfg.tls_server_name = opt_str_field(L, 2, "tls_server_name");
    lua_getfield(L, 2, "tls_skip_verify");
    cfg.tls_skip_verify = lua_toboolean(L, -1);
    luaL_checkstack(L, MAX_SECRETS + 4, "db config secrets");
    cfg.nsecrets = collect_secrets(L, 2, secrets);
    cfg.secrets = secrets;
    /* Replaces the key's pool whichever driver had it. */
    if (drv->configure(key, &cfg, verify, &err) != 0)
        return push_db_error(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/*
 * A box owning one C string that holds a secret: its __gc wipes and frees
 * it, so a memory error while the string is pushed cannot leak it.
 */
#define SECRET_MT "coffer.dbsecret"

struct secret_box {
    char *s;
};

static int l_secret_gc(lua_State *L)
{
    struct secret_box *box = luaL_checkudata(L, 1, SECRET_MT);

    secure_free_str(box->s);
    box->s = NULL;
    return 0;
}

/* Pushes an empty box. [-0, +1, m] */
static struct secret_box *push_secret_box(lua_State *L)
{
    struct secret_box *box = lua_newuserdatauv(L, sizeof(*box), 0);

    box->s = NULL;
    luaL_setmetatable(L, SECRET_MT);
    return box;
}

/* Pushes the boxed string, then wipes it and drops the box. [-1, +1, m] */
static void push_boxed_string(lua_State *L, struct secret_box *box)
{
    lua_pushstring(L, box->s);
    secure_free_str(box->s);
    box->s = NULL;
    lua_remove(L, -2);
}

/*
 * coffer.db.redact_conninfo(s [, driver]) -> s with its passwords as
 * "xxxxx", and whether it held a literal one. [-0, +2, m]
 */
static int l_db_redact_conninfo(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    const char *driver = luaL_optstring(L, 2, NULL);
    struct secret_box *box = push_secret_box(L);
    /* The form is the driver's when the caller names it; a guess from
     * the text alone can take a DSN whose user name holds a space or a
     * '=' for a libpq string and leave its password in place. */
    bool mysql = driver != NULL ? strcmp(driver, "mysql") == 0
                                : dbmy_looks_like_dsn(s);

    box->s = mysql ? dbmy_redact_dsn(s) : db_redact_conninfo(s);
    push_boxed_string(L, box);
    lua_pushboolean(L, mysql ? dbmy_dsn_has_password(s)
                             : db_conninfo_has_password(s));
    return 2;
}

/* coffer.db.remove(key) [-0, +0, e] */
static int l_db_remove(lua_State *L)
{
    dbpool_remove(NULL, luaL_checkstring(L, 1));
    return 0;
}

/* coffer.db.exists(key) [-0, +1, e] */
static int l_db_exists(lua_State *L)
{
    lua_pushboolean(L, dbpool_exists(NULL, luaL_checkstring(L, 1)));
    return 1;
}

/*
 * coffer.db.quote_ident(name): the same rule as db_quote_ident, built in
 * a luaL_Buffer so that nothing needs freeing if it raises. [-0, +1, e]
 */
static int l_db_quote_ident(lua_State *L)
{
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    luaL_addchar(&b, '"');
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '"')
            luaL_addchar(&b, '"');
        luaL_addchar(&b, name[i]);
    }
    luaL_addchar(&b, '"');
    luaL_pushresult(&b);
    return 1;
}

/* ======================================================== connections == */

static struct conn_ud *check_conn(lua_State *L)
{
    struct conn_ud *ud = luaL_checkudata(L, 1, CONN_MT);

    if (ud->conn == NULL)
        luaL_error(L, "database connection already released");
    return ud;
}

/* coffer.db.acquire(key) [-0, +1|2, e] */
static int l_db_acquire(lua_State *L)
{
    const char *key = luaL_checkstring(L, 1);
    struct conn_ud *ud;
    struct db_error err;

    /* The box exists before the connection does, so nothing can leak. */
    ud = lua_newuserdatauv(L, sizeof(*ud), 0);
    ud->conn = NULL;
    ud->drv = NULL;
    luaL_setmetatable(L, CONN_MT);
    ud->drv = driver_of_key(key);
    if (ud->drv == NULL) {
        err.klass = DB_ERR_INTERNAL;
        err.sqlstate[0] = '\0';
        snprintf(err.message, sizeof(err.message),
                 "no database connection is configured for %s", key);
        return push_db_error(L, &err);
    }
    ud->conn = ud->drv->acquire(key, &err);
    if (ud->conn == NULL)
        return push_db_error(L, &err);
    return 1;
}

/* conn:release(), __gc and __close [-0, +0, -] */
static int l_conn_release(lua_State *L)
{
    struct conn_ud *ud = luaL_checkudata(L, 1, CONN_MT);

    if (ud->conn != NULL) {
        ud->drv->release(ud->conn);
        ud->conn = NULL;
    }
    return 0;
}

static int l_conn_tostring(lua_State *L)
{
    struct conn_ud *ud = luaL_checkudata(L, 1, CONN_MT);

    lua_pushstring(L, ud->conn ? "coffer.dbconn (open)"
                               : "coffer.dbconn (released)");
    return 1;
}

static int l_result_gc(lua_State *L)
{
    struct result_box *box = luaL_checkudata(L, 1, RESULT_MT);

    if (box->live) {
        db_result_release(&box->res);
        box->live = false;
    }
    return 0;
}

/*
 * Pushes {rows, columns, affected} built from the boxed result.
 * [-0, +1, m]
 */
static void push_result(lua_State *L, const struct db_result *r)
{
    lua_createtable(L, 0, 3);
    lua_createtable(L, r->ncols, 0);
    for (int c = 0; c < r->ncols; c++) {
        lua_pushstring(L, r->colnames[c]);
        lua_rawseti(L, -2, c + 1);
    }
    lua_setfield(L, -2, "columns");
    lua_createtable(L, r->nrows, 0);
    for (int i = 0; i < r->nrows; i++) {
        lua_createtable(L, 0, r->ncols);
        for (int c = 0; c < r->ncols; c++) {
            const char *cell = r->cells[(size_t)i * (size_t)r->ncols +
                                        (size_t)c];
            if (cell == NULL)
                continue;
            lua_pushstring(L, cell);
            lua_setfield(L, -2, r->colnames[c]);
        }
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "rows");
    lua_pushinteger(L, (lua_Integer)r->affected);
    lua_setfield(L, -2, "affected");
}

/*
 * Collects params into C strings that point into Lua strings kept alive
 * on the stack (tostring results are pushed and stay until return).
 */
static int collect_params(lua_State *L, int idx, const char **out)
{
    lua_Integer n;

    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "n");
    n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (lua_Integer)lua_rawlen(L, idx);
    lua_pop(L, 1);
    if (n < 0 || n > MAX_PARAMS)
        luaL_error(L, "too many statement parameters (at most %d)",
                   MAX_PARAMS);
    luaL_checkstack(L, (int)n + 2, "too many statement parameters");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        if (lua_isnil(L, -1) || lua_type(L, -1) == LUA_TUSERDATA) {
            out[i - 1] = NULL; /* nil or coffer.json.null */
        } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
            out[i - 1] = lua_toboolean(L, -1) ? "true" : "false";
        } else {
            out[i - 1] = luaL_tolstring(L, -1, NULL);
        }
        /* Leave the value (and tostring result) on the stack. */
    }
    return (int)n;
}

/* conn:exec(sql [, params]) [-0, +1|2, e] */
static int l_conn_exec(lua_State *L)
{
    struct conn_ud *ud = check_conn(L);
    const char *sql = luaL_checkstring(L, 2);
    const char *params[MAX_PARAMS];
    struct result_box *box;
    struct db_error err;
    int n = collect_params(L, 3, params);

    box = lua_newuserdatauv(L, sizeof(*box), 0);
    box->live = false;
    luaL_setmetatable(L, RESULT_MT);
    if (ud->drv->exec(ud->conn, sql, n, params, &box->res, &err) != 0)
        return push_db_error(L, &err);
    box->live = true;
    push_result(L, &box->res);
    db_result_release(&box->res);
    box->live = false;
    return 1;
}

/*
 * conn:exec_script(sql): parameterless statements separated by ';', run
 * in one round trip and, unless sql has its own BEGIN/COMMIT, as one
 * transaction. [-0, +1|2, e]
 */
static int l_conn_exec_script(lua_State *L)
{
    struct conn_ud *ud = check_conn(L);
    const char *sql = luaL_checkstring(L, 2);
    struct db_error err;

    if (ud->drv->exec_script(ud->conn, sql, &err) != 0)
        return push_db_error(L, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int tx_reply(lua_State *L, int rc, const struct db_error *err)
{
    if (rc != 0)
        return push_db_error(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/*
 * conn:quote_ident(s) / conn:quote_literal(s): s quoted by the server's
 * own rules (PQescapeIdentifier / PQescapeLiteral), or nil, err.
 * [-0, +1|2, e]
 */
static int conn_escape(lua_State *L, bool literal)
{
    struct conn_ud *ud = check_conn(L);
    size_t n;
    const char *v = luaL_checklstring(L, 2, &n);
    struct secret_box *box = push_secret_box(L);
    struct db_error err;

    box->s = ud->drv->escape(ud->conn, v, n, literal, &err);
    if (box->s == NULL)
        return push_db_error(L, &err);
    push_boxed_string(L, box);
    return 1;
}

static int l_conn_quote_ident(lua_State *L)
{
    return conn_escape(L, false);
}

static int l_conn_quote_literal(lua_State *L)
{
    return conn_escape(L, true);
}

/* conn:begin() [-0, +1|2, e] */
static int l_conn_begin(lua_State *L)
{
    struct conn_ud *ud = check_conn(L);
    struct db_error err;

    return tx_reply(L, ud->drv->begin(ud->conn, &err), &err);
}

/* conn:commit() [-0, +1|2, e] */
static int l_conn_commit(lua_State *L)
{
    struct conn_ud *ud = check_conn(L);
    struct db_error err;

    return tx_reply(L, ud->drv->commit(ud->conn, &err), &err);
}

/* conn:rollback() [-0, +0, e] */
static int l_conn_rollback(lua_State *L)
{
    struct conn_ud *ud = check_conn(L);

    ud->drv->rollback(ud->conn);
    return 0;
}

static const luaL_Reg conn_methods[] = {
    {"exec", l_conn_exec},         {"exec_script", l_conn_exec_script},
    {"begin", l_conn_begin},
    {"quote_ident", l_conn_quote_ident},
    {"quote_literal", l_conn_quote_literal},
    {"commit", l_conn_commit},     {"rollback", l_conn_rollback},
    {"release", l_conn_release},   {NULL, NULL},
};

static const luaL_Reg conn_metamethods[] = {
    {"__gc", l_conn_release},
    {"__close", l_conn_release},
    {"__tostring", l_conn_tostring},
    {NULL, NULL},
};

/* coffer.db.drivers() -> the names of the C drivers built in. */
static int l_db_drivers(lua_State *L)
{
    lua_createtable(L, (int)NDRIVERS, 0);
    for (size_t i = 0; i < NDRIVERS; i++) {
        lua_pushstring(L, drivers[i].name);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static const luaL_Reg db_functions[] = {
    {"drivers", l_db_drivers},
    {"configure", l_db_configure}, {"remove", l_db_remove},
    {"exists", l_db_exists},       {"quote_ident", l_db_quote_ident},
    {"acquire", l_db_acquire},
    {"redact_conninfo", l_db_redact_conninfo},
    {NULL, NULL},
};

void lua_db_open(lua_State *L)
{
    luaL_newmetatable(L, CONN_MT);
    luaL_setfuncs(L, conn_metamethods, 0);
    luaL_newlib(L, conn_methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "coffer.dbconn");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    luaL_newmetatable(L, RESULT_MT);
    lua_pushcfunction(L, l_result_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_result_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newmetatable(L, SECRET_MT);
    lua_pushcfunction(L, l_secret_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_secret_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newlib(L, db_functions);
    lua_setfield(L, -2, "db");
}
