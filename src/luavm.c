/*
 * luavm.c - Lua states: building, sandboxing, and calling into engines.
 *
 * Owns: one lua_State per thread (a pthread key whose destructor closes
 * it), the capped allocator, the sandbox (which libraries, which globals),
 * the script loader and `require`, the deadline hook, and the one call
 * protocol luavm_handle() uses. Does not own the `coffer` module
 * (lua_api.c, lua_json.c), the engine DSL (lua/coffer/framework.lua) or
 * Lua policies (luavm_policy.c, which shares this file's internals
 * through luavm_int.h and runs as the bootstrap's last step).
 *
 * A state's life:
 *
 *   lua_newstate(vm_alloc)          allocator with a byte cap
 *   lua_pcall(vm_bootstrap)         everything below runs protected
 *     open base/string/table/math/utf8/coroutine into a private table G
 *     coffer = lua_api_open()       + require/load/print wrappers
 *     require "framework"           lua/coffer/framework.lua, then the
 *                                   rest of lua/coffer/<name>.lua
 *     coffer.engine = framework.engine
 *     freeze G                      nested tables become read-only proxies
 *     run lua/engines/<x>.lua, lua/auth/<x>.lua (registration flag set)
 *     cfg.bootstrap_step            Lua policies (luavm_policy.c)
 *   luavm_handle: pcall(vm_run)     build req, framework.dispatch(type, req),
 *                                   convert the returned table
 *
 * Every script runs in its own _ENV table: reads fall through to G and
 * raise for names G does not have; writes raise ("undeclared global").
 */
#include "luavm.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "buf.h"
#include "lease.h"
#include "log.h"
#include "lua_api.h"
#include "lua_json.h"
#include "luavm_int.h"
#include "mount.h"
#include "storage.h"
#include "token.h"
#include "util.h"

#define VM_DEFAULT_MEMORY ((size_t)64 * 1024 * 1024)
#define VM_DEFAULT_TIMEOUT 10.0
#define VM_MAX_SCRIPT ((size_t)4 * 1024 * 1024)
#define VM_NAMES_MT "coffer.vm.names"

/* Registry keys: addresses of these statics. */
static char key_globals;   /* G: the table every _ENV reads through */
static char key_env_mt;    /* metatable shared by all script _ENVs */
static char key_modules;   /* require cache: name -> value (false = loading) */
static char key_dispatch;  /* framework.dispatch */
static char key_framework; /* the framework module table */

static struct {
    bool ready;
    char *lua_dir;
    char *plugin_dir; /* NULL = none */
    luavm_bootstrap_fn bootstrap_step; /* NULL = none */
    struct storage *storage;
    size_t memory_limit;
    double call_timeout;
    struct strvec engines; /* sorted names registered at bootstrap */
    struct strvec auths;   /* auth method types, sorted */
    struct strvec logins;  /* "<type>\037<pattern>": unauthenticated paths */
    pthread_key_t key;
} g;

/* ========================================================= allocation == */

/*
 * The allocator (HAProxy hlua_alloc without atomics: a state is used by
 * one thread). Growth past the cap returns NULL and Lua raises "not enough
 * memory"; shrinking never fails.
 */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct vm *vm = ud;
    size_t old = ptr != NULL ? osize : 0;
    void *p;

    if (nsize == 0) {
        free(ptr);
        vm->allocated -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > vm->limit - vm->allocated)
        return NULL;
    p = realloc(ptr, nsize);
    if (p == NULL)
        return nsize <= old ? ptr : NULL;
    vm->allocated = vm->allocated - old + nsize;
    return p;
}

static int vm_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);

    log_error("lua: unprotected error: %s", msg != NULL ? msg : "?");
    abort();
    return 0;
}

struct vm *luavm__of(lua_State *L)
{
    void *ud = NULL;

    lua_getallocf(L, &ud);
    return ud;
}

/*
 * Count hook: raises once the call's deadline has passed, then re-arms
 * itself to fire on every instruction so a pcall in the script cannot
 * swallow the timeout (Redis luaMaskCountHook).
 */
void luavm__hook(lua_State *L, lua_Debug *ar)
{
    struct vm *vm = luavm__of(L);
    char msg[128];

    (void)ar;
    if (time_mono() < vm->deadline)
        return;
    vm->timed_out = true;
    lua_sethook(L, luavm__hook, LUA_MASKCOUNT, 1);
    if (vm->by_request)
        snprintf(msg, sizeof(msg), "context deadline exceeded (the "
                                   "request ran longer than "
                                   "max_request_duration)");
    else
        snprintf(msg, sizeof(msg), "script timed out after %.1f seconds",
                 g.call_timeout);
    luaL_error(L, "%s", msg);
}

/*
 * Arms the deadline of a call: budget seconds, or what is left of the
 * request's max_request_duration if that is sooner (request.h), so a
 * script that resumes after a long wait (a database call returning at
 * its statement timeout) stops at the next check instead of running on.
 * The clock is read once per LUAVM_HOOK_COUNT instructions, as before.
 */
static void vm_arm(struct vm *vm, double budget, bool request_bound)
{
    int64_t left = request_bound ? request_budget_left_ms() : -1;
    double now = time_mono();

    vm->timed_out = false;
    vm->by_request = left >= 0 && (double)left / 1000.0 < budget;
    vm->deadline = now + (vm->by_request ? (double)left / 1000.0 : budget);
    lua_sethook(vm->L, luavm__hook, LUA_MASKCOUNT, LUAVM_HOOK_COUNT);
}

static void vm_disarm(struct vm *vm)
{
    vm->deadline = INFINITY;
    lua_sethook(vm->L, luavm__hook, LUA_MASKCOUNT, LUAVM_HOOK_COUNT);
}

/*
 * Message handler: typed errors pass through untouched so their status
 * survives; everything else becomes "message + traceback" for the log.
 * [-1, +1, m]
 */
static int vm_msgh(lua_State *L)
{
    const char *msg;

    if (lua_api_is_error(L, 1))
        return 1;
    msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") &&
            lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)",
                                  luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* ============================================================ sandbox == */

/* Raises msg with the position of the Lua code that called us. */
static int vm_raise_at_caller(lua_State *L, const char *fmt, const char *name)
{
    luaL_where(L, 1);
    lua_pushfstring(L, fmt, name);
    lua_concat(L, 2);
    return lua_error(L);
}

/* _ENV __index: G's value, or an error for a name nobody declared. */
static int l_vm_env_index(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_globals);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return 1;
    if (lua_type(L, 2) != LUA_TSTRING)
        return 1;
    return vm_raise_at_caller(L, "attempt to read undeclared global '%s'",
                              lua_tostring(L, 2));
}

/* _ENV __newindex: scripts keep their state in locals. */
static int l_vm_env_newindex(lua_State *L)
{
    return vm_raise_at_caller(L, "assignment to undeclared global '%s'",
                              lua_type(L, 2) == LUA_TSTRING
                                  ? lua_tostring(L, 2)
                                  : luaL_typename(L, 2));
}

/* __newindex of a frozen table. */
static int l_vm_frozen_newindex(lua_State *L)
{
    return vm_raise_at_caller(L, "attempt to modify read-only table "
                                 "(field '%s')",
                              lua_type(L, 2) == LUA_TSTRING
                                  ? lua_tostring(L, 2)
                                  : luaL_typename(L, 2));
}

/* __pairs of a frozen table: iterate the original. upvalues: next, orig */
static int l_vm_frozen_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushnil(L);
    return 3;
}

/* rawset that refuses frozen tables and script environments. */
static int l_vm_rawset(lua_State *L)
{
    lua_CFunction ni = NULL;

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (lua_getmetatable(L, 1)) {
        lua_getfield(L, -1, "__newindex");
        ni = lua_tocfunction(L, -1);
        lua_pop(L, 2);
    }
    if (ni == l_vm_frozen_newindex || ni == l_vm_env_newindex)
        return luaL_error(L, "attempt to modify a read-only table");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* Pushes a fresh script environment. [-0, +1, m] */
static void push_env(lua_State *L)
{
    lua_newtable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_env_mt);
    lua_setmetatable(L, -2);
}

/*
 * load(chunk [, chunkname [, mode [, env]]]): text only, whatever mode
 * says, and never the real globals: without env the chunk gets a fresh
 * sandbox environment. Returns the function, or nil, message.
 */
static int l_vm_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int has_env = !lua_isnoneornil(L, 4);

    if (has_env)
        luaL_checktype(L, 4, LUA_TTABLE);
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env)
        lua_pushvalue(L, 4);
    else
        push_env(L);
    lua_setupvalue(L, -2, 1);
    return 1;
}

/* print(...): to the log at info level, tab-separated like Lua's. */
static int l_vm_print(lua_State *L)
{
    int n = lua_gettop(L), i;
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    log_info("lua: print: %s", lua_tostring(L, -1));
    return 0;
}

/* ============================================================ loading == */

/* Reads path into b. 0, or a COFFER_E* code with errno-style words. */
static int read_file(const char *path, struct buf *b, struct errbuf *err)
{
    struct file_error why;
    int rc = file_read(path, b, &why);

    if (rc == COFFER_ETOOBIG)
        errbuf_set(err, "%s: script too large", path);
    else if (rc != 0 && strcmp(why.op, "open") == 0)
        errbuf_set(err, "cannot open %s: %s", path, strerror(why.errnum));
    else if (rc != 0)
        errbuf_set(err, "cannot read %s", path);
    return rc;
}

/*
 * Loads <root>/<rel> as text with chunk name "@<root>/<rel>" and a fresh
 * _ENV; pushes the chunk. The file buffer is released before any raise.
 * Returns false (nothing pushed) only if the file does not exist and
 * missing_ok. [-0, +(0|1), e]
 */
bool luavm__load_path(lua_State *L, const char *root, const char *rel,
                      bool missing_ok)
{
    struct errbuf err;
    struct buf b;
    int top = lua_gettop(L), rc, status = LUA_OK;

    lua_pushfstring(L, "%s/%s", root, rel);  /* top+1: file */
    lua_pushfstring(L, "@%s/%s", root, rel); /* top+2: chunk name */
    buf_init(&b, VM_MAX_SCRIPT);
    rc = read_file(lua_tostring(L, top + 1), &b, &err);
    if (rc == 0) /* protected: pushes the chunk or the message */
        status = luaL_loadbufferx(L, b.ptr != NULL ? b.ptr : "", b.len,
                                  lua_tostring(L, top + 2), "t");
    buf_release(&b);
    if (rc == COFFER_ENOTFOUND && missing_ok) {
        lua_settop(L, top);
        return false;
    }
    if (rc != 0)
        luaL_error(L, "%s", err.msg);
    if (status != LUA_OK)
        lua_error(L); /* a syntax error already says file:line */
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    push_env(L);
    lua_setupvalue(L, -2, 1);
    return true;
}

/* luavm__load_path under <lua_dir>. [-0, +(0|1), e] */
static bool vm_load_file(lua_State *L, const char *rel, bool missing_ok)
{
    return luavm__load_path(L, g.lua_dir, rel, missing_ok);
}

/* Module names are plain identifiers: no dots, slashes or "..". */
static bool valid_module_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    }
    return true;
}

/*
 * require(name): loads lua/coffer/<name>.lua once per state ("coffer."
 * prefix optional) through the same text-only loader. Nothing else: no
 * package.path, no C modules. [-1, +1, e]
 */
static int l_vm_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);

    if (strncmp(name, "coffer.", 7) == 0)
        name += 7;
    if (!valid_module_name(name))
        return luaL_error(L, "module '%s' not found", lua_tostring(L, 1));
    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_modules); /* 2 */
    if (lua_getfield(L, 2, name) != LUA_TNIL) {
        if (lua_toboolean(L, -1) == 0 && lua_isboolean(L, -1))
            return luaL_error(L, "module '%s' required while loading", name);
        return 1;
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 0);
    lua_setfield(L, 2, name);
    lua_pushfstring(L, "coffer/%s.lua", name);
    if (!vm_load_file(L, lua_tostring(L, -1), true))
        return luaL_error(L, "module '%s' not found", name);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);
    return 1;
}

/* ========================================================== bootstrap == */

static int l_vm_names_gc(lua_State *L)
{
    strvec_release(luaL_checkudata(L, 1, VM_NAMES_MT));
    return 0;
}

/*
 * Pushes a collectable vector of the *.lua names in <lua_dir>/<dir>,
 * sorted. A missing directory gives an empty vector. [-0, +1, e]
 */
struct strvec *luavm__list_scripts(lua_State *L, const char *root,
                                   const char *dir)
{
    struct strvec *sv = lua_newuserdatauv(L, sizeof(*sv), 0);
    const char *path;
    struct dirent *de;
    DIR *d;

    strvec_init(sv);
    luaL_setmetatable(L, VM_NAMES_MT);
    path = lua_pushfstring(L, "%s/%s", root, dir);
    d = opendir(path);
    lua_pop(L, 1); /* path stays valid: nothing runs until closedir */
    if (d == NULL) {
        if (errno != ENOENT)
            luaL_error(L, "cannot open %s/%s: %s", root, dir,
                       strerror(errno));
        return sv;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' && str_has_suffix(de->d_name, ".lua"))
            strvec_push(sv, de->d_name);
    }
    closedir(d);
    strvec_sort(sv);
    return sv;
}

static struct strvec *list_scripts(lua_State *L, const char *dir)
{
    return luavm__list_scripts(L, g.lua_dir, dir);
}

/* Runs every script of <root>/<dir> in name order. [-0, +0, e] */
static void run_scripts_in(lua_State *L, const char *root, const char *dir)
{
    struct strvec *sv = luavm__list_scripts(L, root, dir);
    size_t i;

    for (i = 0; i < sv->n; i++) {
        lua_pushfstring(L, "%s/%s", dir, sv->v[i]);
        luavm__load_path(L, root, lua_tostring(L, -1), false);
        lua_remove(L, -2);
        lua_call(L, 0, 0);
    }
    lua_pop(L, 1);
}

/* require()s every lua/coffer/<name>.lua after the framework. [-0, +0, e] */
static void require_framework(lua_State *L)
{
    struct strvec *sv;
    size_t i;

    lua_pushcfunction(L, l_vm_require);
    lua_pushliteral(L, "framework");
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1) || lua_getfield(L, -1, "dispatch") !=
                                   LUA_TFUNCTION)
        luaL_error(L, "%s/coffer/framework.lua must return a table with "
                      "dispatch()", g.lua_dir);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_dispatch);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_framework);
    sv = list_scripts(L, "coffer");
    for (i = 0; i < sv->n; i++) {
        lua_pushcfunction(L, l_vm_require);
        lua_pushlstring(L, sv->v[i], strlen(sv->v[i]) - 4); /* no .lua */
        lua_call(L, 1, 0);
    }
    lua_pop(L, 1);
}

/* Adds G[name] = module opened by f. [-0, +0, e] */
static void open_lib(lua_State *L, int G, const char *name, lua_CFunction f)
{
    luaL_requiref(L, name, f, 0);
    lua_setfield(L, G, name);
}

/* Copies the safe base functions from the real globals into G. */
static void open_base(lua_State *L, int G)
{
    static const char *const keep[] = {
        "assert", "error", "getmetatable", "ipairs", "next", "pairs",
        "pcall", "rawequal", "rawget", "rawlen", "select", "setmetatable",
        "tonumber", "tostring", "type", "xpcall", "_VERSION",
    };
    size_t i;

    luaL_requiref(L, "_G", luaopen_base, 1);
    for (i = 0; i < ARRAY_LEN(keep); i++) {
        lua_getfield(L, -1, keep[i]);
        lua_setfield(L, G, keep[i]);
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_vm_load);
    lua_setfield(L, G, "load");
    lua_pushcfunction(L, l_vm_print);
    lua_setfield(L, G, "print");
    lua_pushcfunction(L, l_vm_require);
    lua_setfield(L, G, "require");
    lua_pushcfunction(L, l_vm_rawset);
    lua_setfield(L, G, "rawset");
}

/* Builds G and the registry tables; leaves nothing on the stack. */
static void open_sandbox(lua_State *L)
{
    int G;

    luaL_newmetatable(L, VM_NAMES_MT);
    lua_pushcfunction(L, l_vm_names_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    lua_newtable(L);
    G = lua_gettop(L);
    open_base(L, G);
    open_lib(L, G, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, G, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, G, LUA_MATHLIBNAME, luaopen_math);
    open_lib(L, G, LUA_UTF8LIBNAME, luaopen_utf8);
    open_lib(L, G, LUA_COLIBNAME, luaopen_coroutine);
    lua_api_open(L);
    lua_setfield(L, G, "coffer");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_globals);

    /* Scripts must not reach the string library through "". */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, l_vm_env_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_vm_env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_env_mt);

    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_modules);
}

/*
 * Replaces every table value inside the table at idx with a read-only
 * proxy of it, recursively. The proxies read through to the originals.
 * [-0, +0, e]
 */
static void freeze_members(lua_State *L, int idx, int depth)
{
    luaL_checkstack(L, 8, "freeze");
    if (depth > 8)
        return;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -1) == LUA_TTABLE && lua_getmetatable(L, -1) == 0) {
            freeze_members(L, lua_gettop(L), depth + 1);
            lua_newtable(L);                       /* proxy */
            lua_createtable(L, 0, 4);              /* its metatable */
            lua_pushvalue(L, -3);
            lua_setfield(L, -2, "__index");
            lua_pushcfunction(L, l_vm_frozen_newindex);
            lua_setfield(L, -2, "__newindex");
            lua_getglobal(L, "next");              /* the real globals */
            lua_pushvalue(L, -4);
            lua_pushcclosure(L, l_vm_frozen_pairs, 2);
            lua_setfield(L, -2, "__pairs");
            lua_pushliteral(L, "locked");
            lua_setfield(L, -2, "__metatable");
            lua_setmetatable(L, -2);
            lua_pushvalue(L, -3);                  /* key */
            lua_insert(L, -2);
            lua_rawset(L, idx);                    /* orig[key] = proxy */
        } else if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pop(L, 1);                         /* the metatable */
        }
        lua_pop(L, 1);
    }
}

/* Copies the framework's engine names into sv (scratch bootstrap only). */
static void collect_engines(lua_State *L, struct strvec *sv)
{
    lua_Integer i, n;

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_framework);
    if (lua_getfield(L, -1, "engine_names") != LUA_TFUNCTION)
        luaL_error(L, "framework.engine_names is missing");
    lua_call(L, 0, 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) == LUA_TSTRING)
            strvec_push(sv, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    strvec_sort(sv);
}

/*
 * Copies the framework's auth methods into g.auths and their login paths
 * into g.logins (scratch bootstrap only). framework.auth_methods() returns
 * { {name = "userpass", login = {"login/..."}}, ... }. [-0, +0, e]
 */
static void collect_auths(lua_State *L)
{
    lua_Integer i, j, n, m;

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_framework);
    if (lua_getfield(L, -1, "auth_methods") != LUA_TFUNCTION)
        luaL_error(L, "framework.auth_methods is missing");
    lua_call(L, 0, 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_getfield(L, -1, "name");
        lua_getfield(L, -2, "login");
        strvec_push(&g.auths, luaL_checkstring(L, -2));
        m = (lua_Integer)lua_rawlen(L, -1);
        for (j = 1; j <= m; j++) {
            lua_rawgeti(L, -1, j);
            lua_pushfstring(L, "%s\037%s", lua_tostring(L, -3),
                            luaL_checkstring(L, -1));
            strvec_push(&g.logins, lua_tostring(L, -1));
            lua_pop(L, 2);
        }
        lua_pop(L, 3);
    }
    lua_pop(L, 2);
    strvec_sort(&g.auths);
}

/*
 * The whole bootstrap, run under lua_pcall (lua.c pmain). Argument 1 is a
 * light userdata: the strvec to fill with engine names, or NULL.
 */
static int vm_bootstrap(lua_State *L)
{
    struct strvec *engines = lua_touserdata(L, 1);

    lua_gc(L, LUA_GCGEN, 0, 0);
    open_sandbox(L);
    require_framework(L);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_globals);
    lua_getfield(L, -1, "coffer");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_framework);
    lua_getfield(L, -1, "engine");
    lua_setfield(L, -3, "engine");
    lua_getfield(L, -1, "auth");
    lua_setfield(L, -3, "auth");
    lua_pop(L, 2);
    freeze_members(L, lua_gettop(L), 0);
    lua_pop(L, 1);

    run_scripts_in(L, g.lua_dir, "engines");
    run_scripts_in(L, g.lua_dir, "auth");
    /* The operator's own engines and auth methods (plugin_directory). */
    if (g.plugin_dir != NULL)
        run_scripts_in(L, g.plugin_dir, ".");
    if (g.bootstrap_step != NULL)
        g.bootstrap_step(L, engines != NULL);
    if (engines != NULL) {
        collect_engines(L, engines);
        collect_auths(L);
    }
    return 0;
}

/* Copies the first line of the error at the top into err. */
static void error_first_line(lua_State *L, struct errbuf *err)
{
    const char *msg = lua_tostring(L, -1);
    size_t n;

    if (msg == NULL) {
        errbuf_set(err, "%s", lua_api_is_error(L, -1)
                                  ? "a script raised a coffer.error at load "
                                    "time"
                                  : "a script failed with a non-string error");
        return;
    }
    n = strcspn(msg, "\n");
    errbuf_set(err, "%.*s", (int)n, msg);
}

static void vm_free(void *p)
{
    struct vm *vm = p;

    if (vm == NULL)
        return;
    lua_close(vm->L);
    free(vm);
}

/*
 * Builds a state and runs the bootstrap. Returns the new vm (free with
 * vm_free), or NULL with "file:line: message" in err.
 */
static struct vm *vm_new(struct strvec *engines, struct errbuf *err)
{
    struct lua_api_ctx ctx = {.loading = true, .storage = g.storage};
    struct vm *vm = xcalloc(1, sizeof(*vm));
    int status;

    vm->limit = g.memory_limit;
    vm->deadline = INFINITY;
    vm->L = lua_newstate(vm_alloc, vm);
    if (vm->L == NULL) {
        errbuf_set(err, "cannot create a Lua state");
        free(vm);
        return NULL;
    }
    lua_atpanic(vm->L, vm_panic);
    LUA_API_CTX(vm->L) = &ctx;
    /* Building a state is the server's work, not the request's that
       happens to need it first: it gets the plain call timeout. */
    vm_arm(vm, g.call_timeout, false);
    lua_pushcfunction(vm->L, vm_msgh);
    lua_pushcfunction(vm->L, vm_bootstrap);
    lua_pushlightuserdata(vm->L, engines);
    status = lua_pcall(vm->L, 1, 0, 1);
    vm_disarm(vm);
    LUA_API_CTX(vm->L) = NULL;
    if (status != LUA_OK) {
        error_first_line(vm->L, err);
        log_debug("lua: bootstrap failed: %s",
                  lua_tostring(vm->L, -1) ? lua_tostring(vm->L, -1) : "?");
        vm_free(vm);
        return NULL;
    }
    lua_settop(vm->L, 0);
    lua_gc(vm->L, LUA_GCCOLLECT);
    return vm;
}

/* The calling thread's state, created on first use; NULL if that fails. */
struct vm *luavm__get(void)
{
    struct errbuf err;
    struct vm *vm;

    if (!g.ready)
        return NULL;
    vm = pthread_getspecific(g.key);
    if (vm != NULL)
        return vm;
    vm = vm_new(NULL, &err);
    if (vm == NULL) {
        log_error("lua: cannot build this thread's state: %s", err.msg);
        return NULL;
    }
    if (pthread_setspecific(g.key, vm) != 0) {
        log_error("lua: cannot attach a state to this thread");
        vm_free(vm);
        return NULL;
    }
    return vm;
}

/* Frees what luavm_global_init copied or collected. */
static void globals_release(void)
{
    strvec_release(&g.engines);
    strvec_release(&g.auths);
    strvec_release(&g.logins);
    free(g.lua_dir);
    g.lua_dir = NULL;
    free(g.plugin_dir);
    g.plugin_dir = NULL;
}

int luavm_global_init(const struct luavm_config *cfg, struct errbuf *err)
{
    struct vm *vm;
    int rc;

    if (g.ready) {
        errbuf_set(err, "luavm: already initialised");
        return COFFER_EINVAL;
    }
    g.lua_dir = xstrdup(cfg->lua_dir != NULL ? cfg->lua_dir : "lua");
    g.plugin_dir = cfg->plugin_dir != NULL ? xstrdup(cfg->plugin_dir) : NULL;
    g.bootstrap_step = cfg->bootstrap_step;
    g.storage = cfg->storage;
    g.memory_limit = cfg->memory_limit != 0 ? cfg->memory_limit
                                            : VM_DEFAULT_MEMORY;
    g.call_timeout = cfg->call_timeout > 0 ? cfg->call_timeout
                                           : VM_DEFAULT_TIMEOUT;
    strvec_init(&g.engines);
    strvec_init(&g.auths);
    strvec_init(&g.logins);
    vm = vm_new(&g.engines, err);
    if (vm == NULL) {
        rc = COFFER_EINVAL;
        goto fail;
    }
    vm_free(vm);
    rc = pthread_key_create(&g.key, vm_free);
    if (rc != 0) {
        errbuf_set(err, "luavm: pthread_key_create: %s", strerror(rc));
        rc = COFFER_EINTERNAL;
        goto fail;
    }
    g.ready = true;
    return 0;
fail:
    globals_release();
    return rc;
}

void luavm_thread_release(void)
{
    struct vm *vm;

    if (!g.ready)
        return;
    vm = pthread_getspecific(g.key);
    if (vm != NULL) {
        pthread_setspecific(g.key, NULL);
        vm_free(vm);
    }
}

void luavm_global_shutdown(void)
{
    if (!g.ready)
        return;
    luavm_thread_release();
    pthread_key_delete(g.key);
    globals_release();
    g.ready = false;
}

bool luavm_engine_exists(const char *type)
{
    return g.ready && type != NULL && strvec_contains(&g.engines, type);
}

bool luavm_auth_exists(const char *type)
{
    return g.ready && type != NULL && strvec_contains(&g.auths, type);
}

bool luavm_auth_is_login(const char *type, const char *rel)
{
    size_t tn, rn, pn;

    if (!g.ready || type == NULL || rel == NULL)
        return false;
    tn = strlen(type);
    rn = strlen(rel);
    if (rn > 0 && rel[rn - 1] == '/')
        rn--; /* "login/" is "login" */
    for (size_t i = 0; i < g.logins.n; i++) {
        const char *e = g.logins.v[i], *pat;
        if (strncmp(e, type, tn) != 0 || e[tn] != '\037')
            continue;
        pat = e + tn + 1;
        pn = strlen(pat);
        if (pn > 0 && pat[pn - 1] == '*') {
            if (rn >= pn - 1 && strncmp(rel, pat, pn - 1) == 0)
                return true;
        } else if (rn == pn && strncmp(rel, pat, pn) == 0) {
            return true;
        }
    }
    return false;
}

/* ============================================================ calling == */

/*
 * One call of luavm_handle. The staged fields are owned here until they
 * are moved into the response, so a raise half-way through converting
 * the result leaks nothing (they are freed in vm_call_release).
 */
struct vm_call {
    const struct mount *m;
    struct request *req;
    cJSON *data, *warnings, *raw, *auth, *errors;
    char *lease_id;
    int status;
    int64_t lease_duration;
    bool renewable;
    bool no_body;
    bool login;      /* an unauthenticated login request (auth.c) */
};

static void vm_call_release(struct vm_call *call)
{
    cJSON_Delete(call->data);
    cJSON_Delete(call->warnings);
    cJSON_Delete(call->raw);
    cJSON_Delete(call->auth);
    cJSON_Delete(call->errors);
    call->data = call->warnings = call->raw = call->auth = NULL;
    call->errors = NULL;
    free(call->lease_id);
    call->lease_id = NULL;
}

void luavm__set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v != NULL ? v : "");
    lua_setfield(L, -2, k);
}

void luavm__set_int(lua_State *L, const char *k, int64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

/* Pushes a JSON object (or an empty table for NULL). [-0, +1, e] */
void luavm__push_object(lua_State *L, const cJSON *obj)
{
    if (obj != NULL && cJSON_IsObject(obj))
        lua_json_push(L, obj);
    else
        lua_newtable(L);
}

/* req.mount [-0, +1, e] */
static void push_mount(lua_State *L, const struct mount *m)
{
    int64_t def = 0, max = 0;

    mount_resolve_ttl(m, 0, 0, &def, &max);
    lua_createtable(L, 0, 9);
    luavm__set_str(L, "path", m->path);
    luavm__set_str(L, "type", m->type);
    luavm__set_str(L, "uuid", m->uuid);
    luavm__set_str(L, "accessor", m->accessor);
    luavm__set_str(L, "description", m->description);
    luavm__push_object(L, m->options);
    lua_setfield(L, -2, "options");
    luavm__set_int(L, "default_lease_ttl", def);
    luavm__set_int(L, "max_lease_ttl", max);
    lua_pushboolean(L, m->local);
    lua_setfield(L, -2, "local");
}

/* req.token [-0, +1, e] */
void luavm__push_token(lua_State *L, const struct token *t)
{
    size_t i;

    lua_createtable(L, 0, 6);
    luavm__set_str(L, "display_name", t->display_name);
    luavm__set_str(L, "accessor", t->accessor);
    luavm__set_str(L, "entity_id", t->entity_id);
    luavm__set_str(L, "type", t->type);
    lua_createtable(L, (int)t->policies.n, 0);
    for (i = 0; i < t->policies.n; i++) {
        lua_pushstring(L, t->policies.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_json_mark_array(L, -1);
    lua_setfield(L, -2, "policies");
    luavm__push_object(L, t->meta);
    lua_setfield(L, -2, "meta");
}

/*
 * The request table handed to framework.dispatch:
 *   {id, operation, path, data, client_addr, mount = {...},
 *    token = {...} or nil, storage = <coffer.storage>,
 *    pending_lease = <function>}
 * [-0, +1, e]
 */
static void push_request(lua_State *L, const struct vm_call *call)
{
    const struct request *req = call->req;
    const struct mount *m = call->m;

    lua_createtable(L, 0, 8);
    luavm__set_str(L, "id", req->id);
    luavm__set_str(L, "operation", req_op_name(req->op));
    luavm__set_str(L, "path", req->rel_path);
    luavm__set_str(L, "client_addr", req->remote_addr);
    luavm__push_object(L, req->data);
    lua_setfield(L, -2, "data");
    push_mount(L, m);
    lua_setfield(L, -2, "mount");
    if (req->token != NULL) {
        luavm__push_token(L, req->token);
        lua_setfield(L, -2, "token");
    }
    lua_api_push_storage(L, m->storage_prefix, LUA_API_CTX(L)->gen);
    lua_setfield(L, -2, "storage");
    lua_api_push_lease_factory(L);
    lua_setfield(L, -2, "pending_lease");
    if (call->login) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "login");
    }
    lua_api_push_lease_helpers(L);
}

/* Converts field k of the response at idx into *out (a new tree or NULL). */
static void stage_json(lua_State *L, int idx, const char *k, cJSON **out)
{
    if (lua_getfield(L, idx, k) != LUA_TNIL)
        lua_json_to(L, -1, out);
    lua_pop(L, 1);
}

/* warnings must be a list of strings; an empty table means none. */
static void stage_warnings(lua_State *L, int idx, struct vm_call *call)
{
    const cJSON *w;

    stage_json(L, idx, "warnings", &call->warnings);
    if (call->warnings == NULL)
        return;
    if (cJSON_IsObject(call->warnings) && call->warnings->child == NULL) {
        cJSON_Delete(call->warnings);
        call->warnings = NULL;
        return;
    }
    if (!cJSON_IsArray(call->warnings))
        luaL_error(L, "response warnings must be a list of strings");
    cJSON_ArrayForEach(w, call->warnings) {
        if (!cJSON_IsString(w))
            luaL_error(L, "response warnings must be a list of strings");
    }
}

/* Checks every key of the response table at idx is one we know. */
static void check_response_keys(lua_State *L, int idx)
{
    static const char *const known[] = {
        "data", "warnings", "status", "lease_duration", "renewable", "raw",
        "auth", "no_body", "lease_id",
    };
    size_t i;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        for (i = 0; i < ARRAY_LEN(known); i++) {
            if (lua_type(L, -1) == LUA_TSTRING &&
                strcmp(lua_tostring(L, -1), known[i]) == 0)
                break;
        }
        if (i == ARRAY_LEN(known))
            luaL_error(L, "engine response has an unknown field '%s'",
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                      : luaL_typename(L, -1));
    }
}

/*
 * Converts what the engine returned: nil (nothing set), or a table with
 * data, warnings, status, lease_duration, renewable, raw, auth, no_body,
 * lease_id. Anything else raises, which becomes a 500. [-0, +0, e]
 */
static void stage_response(lua_State *L, int idx, struct vm_call *call)
{
    lua_Integer n;

    if (lua_isnil(L, idx))
        return;
    if (!lua_istable(L, idx))
        luaL_error(L, "engine returned a %s; expected a response table or "
                      "nil", luaL_typename(L, idx));
    check_response_keys(L, idx);
    if (lua_getfield(L, idx, "status") != LUA_TNIL) {
        n = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -1) || n < 100 || n > 599)
            luaL_error(L, "response status must be an HTTP status code");
        call->status = (int)n;
    }
    if (lua_getfield(L, idx, "lease_duration") != LUA_TNIL) {
        n = lua_tointeger(L, -1);
        if (!lua_isinteger(L, -1) || n < 0)
            luaL_error(L, "response lease_duration must be whole seconds");
        call->lease_duration = (int64_t)n;
    }
    if (lua_getfield(L, idx, "renewable") != LUA_TNIL) {
        if (!lua_isboolean(L, -1))
            luaL_error(L, "response renewable must be a boolean");
        call->renewable = lua_toboolean(L, -1);
    }
    if (lua_getfield(L, idx, "no_body") != LUA_TNIL) {
        if (!lua_isboolean(L, -1))
            luaL_error(L, "response no_body must be a boolean");
        call->no_body = lua_toboolean(L, -1);
    }
    if (lua_getfield(L, idx, "lease_id") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "response lease_id must be a string");
        call->lease_id = xstrdup(lua_tostring(L, -1));
    }
    lua_pop(L, 5);
    stage_json(L, idx, "data", &call->data);
    stage_json(L, idx, "raw", &call->raw);
    stage_json(L, idx, "auth", &call->auth);
    stage_warnings(L, idx, call);
}

/*
 * Under lua_pcall: framework.exists(type, req); stores the answer in
 * call->status (1 exists, 0 missing, -1 no check). [-0, +0, e]
 */
static int vm_run_exists(lua_State *L)
{
    struct vm_call *call = lua_touserdata(L, 1);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_framework);
    lua_getfield(L, -1, "exists");
    lua_pushstring(L, call->m->type);
    push_request(L, call);
    lua_call(L, 2, 1);
    call->status = lua_isnil(L, -1) ? -1 : (lua_toboolean(L, -1) ? 1 : 0);
    return 0;
}

/* Runs one request under lua_pcall. Argument 1: the struct vm_call. */
static int vm_run(lua_State *L)
{
    struct vm_call *call = lua_touserdata(L, 1);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_dispatch);
    lua_pushstring(L, call->m->type);
    push_request(L, call);
    lua_call(L, 2, 1);
    stage_response(L, lua_gettop(L), call);
    return 0;
}

/*
 * Converts a typed error (argument 2) into call->status/errors, under a
 * second lua_pcall because reading a table may raise. Argument 1: call.
 */
static int vm_typed_error(lua_State *L)
{
    struct vm_call *call = lua_touserdata(L, 1);
    const cJSON *e;
    lua_Integer status;

    lua_getfield(L, 2, "status");
    status = lua_tointeger(L, -1);
    call->status = status >= 400 && status <= 599 ? (int)status : 500;
    stage_json(L, 2, "errors", &call->errors);
    if (call->errors == NULL || (cJSON_IsObject(call->errors) &&
                                 call->errors->child == NULL)) {
        cJSON_Delete(call->errors);
        call->errors = cJSON_CreateArray();
    }
    if (call->errors == NULL || !cJSON_IsArray(call->errors))
        return luaL_error(L, "coffer.error errors must be a list of strings");
    cJSON_ArrayForEach(e, call->errors) {
        if (!cJSON_IsString(e))
            return luaL_error(L, "coffer.error errors must be strings");
    }
    return 0;
}

/* Moves the staged result into resp. */
static void vm_apply(struct vm_call *call, struct response *resp)
{
    cJSON *w;

    if (call->status != 0)
        resp->status = call->status;
    resp->lease_duration = call->lease_duration;
    resp->renewable = call->renewable;
    resp->no_body = call->no_body;
    if (call->lease_id != NULL) {
        free(resp->lease_id);
        resp->lease_id = call->lease_id;
        call->lease_id = NULL;
    }
    resp->data = call->data;
    resp->raw = call->raw;
    resp->auth = call->auth;
    call->data = call->raw = call->auth = NULL;
    if (call->warnings == NULL)
        return;
    if (resp->warnings == NULL) {
        resp->warnings = call->warnings;
        call->warnings = NULL;
        return;
    }
    while ((w = cJSON_DetachItemFromArray(call->warnings, 0)) != NULL)
        cJSON_AddItemToArray(resp->warnings, w);
}

/*
 * A failed call: a typed error becomes its status and messages; anything
 * else a generic 500 for the client and the full story for the log.
 * Runs with the error object at the top of the stack.
 */
static void vm_fail(struct vm *vm, struct vm_call *call, int status,
                    struct response *resp)
{
    lua_State *L = vm->L;
    const char *msg;

    if (status == LUA_ERRRUN && lua_api_is_error(L, -1)) {
        lua_pushcfunction(L, vm_typed_error);
        lua_pushlightuserdata(L, call);
        lua_pushvalue(L, -3);
        if (lua_pcall(L, 2, 0, 0) == LUA_OK) {
            cJSON_Delete(resp->errors);
            resp->errors = call->errors;
            resp->status = call->status;
            call->errors = NULL;
            return;
        }
    }
    msg = lua_tostring(L, -1);
    log_error("lua: request %s: %s %s%s: %s%s", call->req->id,
              req_op_name(call->req->op), call->m->path,
              call->req->rel_path != NULL ? call->req->rel_path : "",
              vm->timed_out ? "(timeout) " : "",
              msg != NULL ? msg : "(non-string error)");
    response_error(resp, 500, "internal error");
}

/*
 * Runs fn(ud) under lua_pcall in vm's state with ctx installed, the
 * deadline armed and the message handler below it. Leaves the error
 * object (if any) at the top; returns the lua_pcall status. The caller
 * restores the stack to *base afterwards.
 */
int luavm__protected(struct vm *vm, struct lua_api_ctx *ctx,
                     lua_CFunction fn, void *ud, int *base)
{
    int status;

    *base = lua_gettop(vm->L);
    ctx->gen = ++vm->gen;
    strvec_init(&ctx->pending);
    ctx->lock_stripe = -1;
    LUA_API_CTX(vm->L) = ctx;
    vm_arm(vm, g.call_timeout, true);
    lua_pushcfunction(vm->L, vm_msgh);
    lua_pushcfunction(vm->L, fn);
    lua_pushlightuserdata(vm->L, ud);
    status = lua_pcall(vm->L, 1, 0, *base + 1);
    vm_disarm(vm);
    return status;
}

/* Ends a call: aborts leases left pending, clears the context. */
void luavm__unprotect(struct vm *vm, struct lua_api_ctx *ctx, int base)
{
    size_t i;

    for (i = 0; i < ctx->pending.n; i++) {
        log_warn("lua: aborting lease %s left pending by the engine",
                 ctx->pending.v[i]);
        lease_abort(ctx->pending.v[i]);
    }
    strvec_release(&ctx->pending);
    lua_api_release_lock(ctx);
    lua_settop(vm->L, base);
    LUA_API_CTX(vm->L) = NULL;
}

static void handle(const struct mount *m, struct request *req,
                   struct response *resp, bool login)
{
    struct vm_call call = {.m = m, .req = req, .login = login};
    struct lua_api_ctx ctx = {.storage = g.storage, .mount = m, .req = req};
    struct vm *vm = luavm__get();
    int base, status;

    if (vm == NULL || !lua_checkstack(vm->L, 8)) {
        response_error(resp, 500, "internal error");
        return;
    }
    status = luavm__protected(vm, &ctx, vm_run, &call, &base);
    if (status == LUA_OK)
        vm_apply(&call, resp);
    else
        vm_fail(vm, &call, status, resp);
    vm_call_release(&call);
    luavm__unprotect(vm, &ctx, base);
}

int luavm_exists(const struct mount *m, struct request *req)
{
    struct vm_call call = {.m = m, .req = req, .status = -1};
    struct lua_api_ctx ctx = {.storage = g.storage, .mount = m, .req = req};
    struct vm *vm = luavm__get();
    int base, status;

    if (vm == NULL || !lua_checkstack(vm->L, 8))
        return -1;
    status = luavm__protected(vm, &ctx, vm_run_exists, &call, &base);
    if (status != LUA_OK) {
        log_warn("lua: existence check for %s failed; treating the write "
                 "as an update", req->path);
        call.status = -1;
    }
    luavm__unprotect(vm, &ctx, base);
    return call.status;
}

void luavm_handle(const struct mount *m, struct request *req,
                  struct response *resp)
{
    handle(m, req, resp, false);
}

void luavm_handle_login(const struct mount *m, struct request *req,
                        struct response *resp)
{
    handle(m, req, resp, true);
}

/* ============================================================= leases == */

struct vm_lease_call {
    const struct mount *m;
    const cJSON *record;
    const char *action; /* "revoke" or "renew" */
    int64_t expire;
};

/*
 * Under lua_pcall: framework.lease_call(type, action, lease, expire) where
 * lease is the record plus mount and storage (revocation usually needs the
 * engine's own config). Argument 1: the struct vm_lease_call.
 */
static int vm_run_lease(lua_State *L)
{
    struct vm_lease_call *c = lua_touserdata(L, 1);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_framework);
    lua_getfield(L, -1, "lease_call");
    lua_pushstring(L, c->m->type);
    lua_pushstring(L, c->action);
    luavm__push_object(L, c->record);
    push_mount(L, c->m);
    lua_setfield(L, -2, "mount");
    lua_api_push_storage(L, c->m->storage_prefix, LUA_API_CTX(L)->gen);
    lua_setfield(L, -2, "storage");
    lua_pushinteger(L, (lua_Integer)c->expire);
    lua_call(L, 4, 0);
    return 0;
}

/* The engine's words for a failed lease call, into err. */
static void lease_error_words(struct vm *vm, struct errbuf *err)
{
    lua_State *L = vm->L;
    struct vm_call tmp = {0};
    const char *msg;

    if (lua_api_is_error(L, -1)) {
        lua_pushcfunction(L, vm_typed_error);
        lua_pushlightuserdata(L, &tmp);
        lua_pushvalue(L, -3);
        if (lua_pcall(L, 2, 0, 0) == LUA_OK && tmp.errors != NULL &&
            cJSON_GetArraySize(tmp.errors) > 0)
            errbuf_set(err, "%s",
                       cJSON_GetArrayItem(tmp.errors, 0)->valuestring);
        else
            errbuf_set(err, "engine failed with status %d", tmp.status);
        vm_call_release(&tmp);
        return;
    }
    msg = lua_tostring(L, -1);
    log_debug("lua: lease call failed: %s", msg != NULL ? msg : "?");
    errbuf_set(err, "%.*s", msg != NULL ? (int)strcspn(msg, "\n") : 1,
               msg != NULL ? msg : "?");
}

static int vm_lease(const struct mount *m, const cJSON *record,
                    const char *action, int64_t expire, struct errbuf *err)
{
    struct vm_lease_call call = {.m = m, .record = record, .action = action,
                                 .expire = expire};
    struct lua_api_ctx ctx = {.storage = g.storage, .mount = m};
    struct vm *vm = luavm__get();
    int base, status;

    errbuf_clear(err);
    if (vm == NULL || !lua_checkstack(vm->L, 8)) {
        errbuf_set(err, "no Lua state for this thread");
        return COFFER_EINTERNAL;
    }
    status = luavm__protected(vm, &ctx, vm_run_lease, &call, &base);
    if (status != LUA_OK)
        lease_error_words(vm, err);
    luavm__unprotect(vm, &ctx, base);
    return status == LUA_OK ? 0 : COFFER_EIO;
}

int luavm_lease_revoke(const struct mount *m, const cJSON *record,
                       struct errbuf *err)
{
    return vm_lease(m, record, "revoke", 0, err);
}

int luavm_lease_renew(const struct mount *m, const cJSON *record,
                      int64_t expire_unix, struct errbuf *err)
{
    return vm_lease(m, record, "renew", expire_unix, err);
}

/* ========================================================== periodic == */

/*
 * Under lua_pcall: framework.periodic_call(type, {mount, storage}).
 * Argument 1: the mount.
 */
static int vm_run_periodic(lua_State *L)
{
    const struct mount *m = lua_touserdata(L, 1);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_framework);
    lua_getfield(L, -1, "periodic_call");
    lua_pushstring(L, m->type);
    lua_createtable(L, 0, 2);
    push_mount(L, m);
    lua_setfield(L, -2, "mount");
    lua_api_push_storage(L, m->storage_prefix, LUA_API_CTX(L)->gen);
    lua_setfield(L, -2, "storage");
    lua_call(L, 2, 0);
    return 0;
}

void luavm_periodic(const struct mount *m)
{
    struct lua_api_ctx ctx = {.storage = g.storage, .mount = m};
    struct vm *vm = luavm__get();
    const char *msg;
    int base;

    if (vm == NULL || !lua_checkstack(vm->L, 8))
        return;
    if (luavm__protected(vm, &ctx, vm_run_periodic, (void *)m, &base) !=
        LUA_OK) {
        msg = lua_api_is_error(vm->L, -1) ? "a typed error"
                                          : lua_tostring(vm->L, -1);
        log_error("lua: periodic function of %s failed: %s", m->path,
                  msg != NULL ? msg : "(non-string error)");
    }
    luavm__unprotect(vm, &ctx, base);
}
