/*
 * luavm.c - Lua states: building, sandboxing, and calling into engines.
 *
 * Owns: one lua_State per thread (a pthread key whose destructor closes
 * it) rebuilt when its code snapshot is stale, the capped allocator,
 * the sandbox (which libraries, which globals), the bootstrap, the
 * deadline hook, and the one call protocol luavm_handle() uses. Does
 * not own the code snapshots, the script loader or `require`
 * (luavm_code.c), the `coffer` module (lua_api.c, lua_json.c), the
 * engine DSL (lua/coffer/framework.lua) or Lua policies
 * (luavm_policy.c, which runs as the bootstrap's last step). Both other
 * luavm files share this file's internals through luavm_int.h.
 *
 * A state's life:
 *
 *   luavm__code_read                every script's text -> a snapshot
 *   lua_newstate(vm_alloc)          allocator with a byte cap, holding a
 *                                   reference to the snapshot
 *   lua_pcall(vm_bootstrap)         everything below runs protected
 *     open base/string/table/math/utf8/coroutine into a private table G
 *     coffer = lua_api_open()       + require/load/print wrappers
 *     require "framework"           lua/coffer/framework.lua, then the
 *                                   rest of lua/coffer/<name>.lua
 *     coffer.engine = framework.engine
 *     freeze G                      nested tables become read-only proxies
 *     run lua/engines/<x>.lua, lua/auth/<x>.lua (registration flag set)
 *     run plugin_dir/<x>.lua and plugin_dir/<x>/init.lua
 *     cfg.bootstrap_step            Lua policies (luavm_policy.c)
 *   luavm_handle: pcall(vm_run)     build req, framework.dispatch(type, req),
 *                                   convert the returned table
 *
 * Every script runs in its own _ENV table: reads fall through to G and
 * raise for names G does not have; writes raise ("undeclared global").
 *
 * Reload (sys_plugins.c): a new snapshot is read and validated by a
 * scratch bootstrap, then published (luavm_code.c) with the next
 * generation. luavm__get compares its state's generation with the
 * published one (one atomic load) at the start of every call and
 * rebuilds a stale state from the published snapshot; a call in flight
 * keeps its state to the end, and a thread that cannot build the new
 * code keeps its old state (logged) rather than failing requests.
 */
#include "luavm.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

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
#define VM_NAMES_MT "coffer.vm.names"

/* Registry keys: addresses of these statics (the require cache's is
   luavm__key_modules, luavm_code.c). */
static char key_globals;   /* G: the table every _ENV reads through */
static char key_env_mt;    /* metatable shared by all script _ENVs */
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
    pthread_key_t key;
} g;

/* What luavm_code.c reads of the configuration (luavm_int.h). */
bool luavm__ready(void)
{
    return g.ready;
}

const char *luavm__lua_dir(void)
{
    return g.lua_dir;
}

const char *luavm__plugin_dir(void)
{
    return g.plugin_dir;
}

/* ========================================================= allocation == */

/*
 * The VM whose allocator refused growth during its current call on this
 * thread (a state is used by one thread at a time; vm_arm clears it). A
 * refusal alone is no overrun (Lua retries after a full GC); a call that
 * then fails counts as one (luavm__protected).
 */
static _Thread_local const struct vm *refused_vm;

/* Calls stopped by their deadline / failed at their memory cap. */
static _Atomic uint64_t overruns_time, overruns_memory;

void luavm_budget_overruns(uint64_t *time, uint64_t *memory)
{
    *time = atomic_load(&overruns_time);
    *memory = atomic_load(&overruns_memory);
}

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
    if (nsize > old && nsize - old > vm->limit - vm->allocated) {
        refused_vm = vm;
        return NULL;
    }
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
    if (!vm->timed_out) /* re-armed below: count the call once */
        atomic_fetch_add(&overruns_time, 1);
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
    refused_vm = NULL;
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

/*
 * G's __index: reached only for a name G does not hold. Every _ENV reads
 * through G as a plain table (its __index is G itself), so a declared
 * global costs the VM one table lookup and no C call; a name nobody
 * declared is an error.
 */
static int l_vm_undeclared_global(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
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
void luavm__push_env(lua_State *L)
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
        luavm__push_env(L);
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

/* ========================================================== bootstrap == */

static int l_vm_names_gc(lua_State *L)
{
    strvec_release(luaL_checkudata(L, 1, VM_NAMES_MT));
    return 0;
}

/*
 * Pushes a collectable vector of the *.lua names in <root>/<dir> ("."
 * = root itself) of the state's code snapshot, sorted. [-0, +1, e]
 */
struct strvec *luavm__list_scripts(lua_State *L, const char *root,
                                   const char *dir)
{
    const struct luavm_code *c = luavm__of(L)->code;
    struct strvec *sv = lua_newuserdatauv(L, sizeof(*sv), 0);
    const char *prefix;
    size_t n;

    strvec_init(sv);
    luaL_setmetatable(L, VM_NAMES_MT);
    prefix = strcmp(dir, ".") == 0 ? lua_pushfstring(L, "%s/", root)
                                   : lua_pushfstring(L, "%s/%s/", root, dir);
    n = strlen(prefix);
    for (size_t i = 0; c != NULL && i < c->nfiles; i++) {
        const char *p = c->files[i].path;
        if (strncmp(p, prefix, n) == 0 && strchr(p + n, '/') == NULL)
            strvec_push(sv, p + n);
    }
    lua_pop(L, 1);
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

/*
 * Runs the plugin directory in path order: each <name>.lua, and each
 * folder's <name>/init.lua with a require that looks in <name>/ first.
 * The folder's other scripts are its modules; a folder of scripts
 * without an init.lua is a mistake worth stopping for. [-0, +0, e]
 */
static void run_plugins(lua_State *L)
{
    const struct luavm_code *c = luavm__of(L)->code;
    const char *prefix = lua_pushfstring(L, "%s/", g.plugin_dir);
    size_t n = strlen(prefix);

    for (size_t i = 0; i < c->nfiles; i++) {
        const struct luavm_file *f = &c->files[i];
        const char *slash;

        if (strncmp(f->path, prefix, n) != 0)
            continue;
        slash = strchr(f->path + n, '/');
        if (slash == NULL) {
            luavm__load_chunk(L, f, NULL);
            lua_call(L, 0, 0);
            continue;
        }
        lua_pushlstring(L, f->path, (size_t)(slash - f->path)); /* folder */
        if (strcmp(slash + 1, "init.lua") == 0) {
            luavm__load_chunk(L, f, lua_tostring(L, -1));
            lua_call(L, 0, 0);
        } else if (luavm__code_find(
                       c, lua_pushfstring(L, "%s/init.lua",
                                          lua_tostring(L, -1))) == NULL) {
            luaL_error(L, "%s: a plugin folder needs an init.lua", f->path);
        } else {
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* require()s every lua/coffer/<name>.lua after the framework. [-0, +0, e] */
static void require_framework(lua_State *L)
{
    struct strvec *sv;
    size_t i;

    lua_pushcfunction(L, luavm__require);
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
        lua_pushcfunction(L, luavm__require);
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
    lua_pushcfunction(L, luavm__require);
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
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_vm_undeclared_global);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, G);

    /* Scripts must not reach the string library through "". */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    lua_createtable(L, 0, 3);
    lua_pushvalue(L, G);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_vm_env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_env_mt);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_globals);

    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &luavm__key_modules);
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
 * Copies the framework's auth methods into c->auths and their login
 * paths into c->logins (scratch bootstrap only). framework.auth_methods()
 * returns { {name = "userpass", login = {"login/..."}}, ... }. [-0, +0, e]
 */
static void collect_auths(lua_State *L, struct luavm_code *c)
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
        strvec_push(&c->auths, luaL_checkstring(L, -2));
        m = (lua_Integer)lua_rawlen(L, -1);
        for (j = 1; j <= m; j++) {
            lua_rawgeti(L, -1, j);
            lua_pushfstring(L, "%s\037%s", lua_tostring(L, -3),
                            luaL_checkstring(L, -1));
            strvec_push(&c->logins, lua_tostring(L, -1));
            lua_pop(L, 2);
        }
        lua_pop(L, 3);
    }
    lua_pop(L, 2);
    strvec_sort(&c->auths);
}

/*
 * Copies the secret types each engine declared (e:secret) into
 * c->secrets as "<engine>\037<type>", for the reload's check that no
 * live lease loses its revoke function. A framework without
 * secret_types() declares none. [-0, +0, e]
 */
static void collect_secrets(lua_State *L, struct luavm_code *c)
{
    lua_Integer i, n;

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_framework);
    if (lua_getfield(L, -1, "secret_types") != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return;
    }
    lua_call(L, 0, 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        luaL_checktype(L, -1, LUA_TTABLE);
        n = (lua_Integer)lua_rawlen(L, -1);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            lua_pushfstring(L, "%s\037%s", luaL_checkstring(L, -3),
                            luaL_checkstring(L, -1));
            strvec_push(&c->secrets, lua_tostring(L, -1));
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    strvec_sort(&c->secrets);
}

/* framework.<name> copied to coffer.<name> before the scripts run. */
static const char *const registration_functions[] = {
    "engine", "auth", "database_plugin", "policy", NULL,
};

/*
 * The whole bootstrap, run under lua_pcall (lua.c pmain), from the
 * state's code snapshot. Argument 1 is a light userdata, non-NULL for
 * the scratch state, which also records what the scripts registered
 * into its snapshot.
 */
static int vm_bootstrap(lua_State *L)
{
    bool scratch = lua_touserdata(L, 1) != NULL;
    struct luavm_code *c = luavm__of(L)->code;

    lua_gc(L, LUA_GCGEN, 0, 0);
    open_sandbox(L);
    require_framework(L);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_globals);
    lua_getfield(L, -1, "coffer");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_framework);
    /* The registration functions: one style for every kind of plugin. */
    for (const char *const *k = registration_functions; *k != NULL; k++) {
        lua_getfield(L, -1, *k);
        lua_setfield(L, -3, *k);
    }
    lua_pop(L, 2);
    freeze_members(L, lua_gettop(L), 0);
    lua_pop(L, 1);

    run_scripts_in(L, g.lua_dir, "engines");
    run_scripts_in(L, g.lua_dir, "auth");
    /* The operator's own engines and auth methods (plugin_directory). */
    if (g.plugin_dir != NULL)
        run_plugins(L);
    if (g.bootstrap_step != NULL)
        g.bootstrap_step(L, scratch);
    if (scratch) {
        collect_engines(L, &c->engines);
        collect_auths(L, c);
        collect_secrets(L, c);
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
    luavm_code_put(vm->code);
    free(vm);
}

/*
 * Builds a state from code and runs the bootstrap. Returns the new vm
 * (free with vm_free; it holds a reference to code), or NULL with
 * "file:line: message" in err.
 */
static struct vm *vm_new(struct luavm_code *code, bool scratch,
                         struct errbuf *err)
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
    vm->code = luavm__code_ref(code);
    lua_atpanic(vm->L, vm_panic);
    LUA_API_CTX(vm->L) = &ctx;
    /* Building a state is the server's work, not the request's that
       happens to need it first: it gets the plain call timeout. */
    vm_arm(vm, g.call_timeout, false);
    lua_pushcfunction(vm->L, vm_msgh);
    lua_pushcfunction(vm->L, vm_bootstrap);
    lua_pushlightuserdata(vm->L, scratch ? vm : NULL);
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

/*
 * Builds this thread's state from the published snapshot. On failure
 * the thread keeps old (its previous state, possibly NULL), and does
 * not retry the same generation on every call.
 */
static struct vm *vm_rebuild(struct vm *old, uint64_t gen)
{
    struct luavm_code *c = luavm_code_current();
    struct errbuf err;
    struct vm *vm = vm_new(c, false, &err);

    luavm_code_put(c);
    if (vm == NULL) {
        log_error("lua: cannot build this thread's state: %s", err.msg);
        if (old != NULL)
            old->failed = gen;
        return old;
    }
    if (pthread_setspecific(g.key, vm) != 0) {
        log_error("lua: cannot attach a state to this thread");
        vm_free(vm);
        return old;
    }
    vm_free(old);
    return vm;
}

/*
 * The calling thread's state, created on first use and rebuilt when a
 * reload published newer code: the check is one atomic load. A state
 * running a call (a nested call on this thread) is never swapped, so
 * the outer call finishes on the code it started with.
 */
struct vm *luavm__get(void)
{
    struct vm *vm;
    uint64_t gen;

    if (!g.ready)
        return NULL;
    vm = pthread_getspecific(g.key);
    gen = luavm_generation();
    if (vm != NULL &&
        (vm->code->gen == gen || vm->depth > 0 || vm->failed == gen))
        return vm;
    return vm_rebuild(vm, gen);
}

/* Frees what luavm_global_init copied or collected. */
static void globals_release(void)
{
    luavm__code_unpublish();
    free(g.lua_dir);
    g.lua_dir = NULL;
    free(g.plugin_dir);
    g.plugin_dir = NULL;
}

struct luavm_code *luavm_code_load(struct errbuf *err)
{
    struct luavm_code *c = luavm__code_read(err);
    struct vm *vm;

    if (c == NULL)
        return NULL;
    vm = vm_new(c, true, err);
    if (vm == NULL) {
        luavm_code_put(c);
        return NULL;
    }
    vm_free(vm);
    return c;
}

int luavm_global_init(const struct luavm_config *cfg, struct errbuf *err)
{
    struct luavm_code *c;
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
    c = luavm_code_load(err);
    if (c == NULL) {
        rc = COFFER_EINVAL;
        goto fail;
    }
    luavm_code_publish(c);
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

/* req.mount, and a lease's mount (luavm_lease.c) [-0, +1, e] */
void luavm__push_mount(lua_State *L, const struct mount *m)
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
 * The fields handlers and Lua policy checks share (luavm_int.h). The
 * mount-relative path is computed here from the full path, not taken
 * from req->rel_path, because a policy check runs before routing.
 */
void luavm__push_request_base(lua_State *L, const struct request *req,
                              const struct mount *m, const struct token *t)
{
    const char *full = req->path != NULL ? req->path : "";
    size_t mlen = m != NULL ? strlen(m->path) : 0;

    lua_createtable(L, 0, 16);
    luavm__set_str(L, "id", req->id);
    luavm__set_str(L, "operation", req_op_name(req->op));
    luavm__set_str(L, "path", strlen(full) >= mlen ? full + mlen : "");
    luavm__set_str(L, "full_path", full);
    luavm__set_str(L, "mount_path", m != NULL ? m->path : "");
    luavm__set_int(L, "time", (int64_t)time_now().tv_sec);
    luavm__set_str(L, "client_addr", req->remote_addr);
    luavm__push_object(L, req->data);
    lua_setfield(L, -2, "data");
    if (t != NULL) {
        luavm__push_token(L, t);
        lua_setfield(L, -2, "token");
    }
}

/*
 * The request table handed to framework.dispatch: the shared fields
 * (luavm__push_request_base; path is req->rel_path, as core.c cuts it
 * the same way), plus
 *   mount = {...}, storage = <coffer.storage>, pending_lease = <function>,
 *   login = true for an unauthenticated login request
 * [-0, +1, e]
 */
static void push_request(lua_State *L, const struct vm_call *call)
{
    const struct request *req = call->req;
    const struct mount *m = call->m;

    luavm__push_request_base(L, req, m, req->token);
    luavm__push_mount(L, m);
    lua_setfield(L, -2, "mount");
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
    bool outer_by_request = vm->by_request;
    int status;

    *base = lua_gettop(vm->L);
    /* A call may run inside another on the same thread: lease:abort()
       runs the engine's revoke while the handler that called it waits.
       The inner call gets its own context and gives the outer one back,
       with its deadline, when it ends (luavm__unprotect). */
    ctx->outer = LUA_API_CTX(vm->L);
    ctx->gen = ++vm->gen;
    strvec_init(&ctx->pending);
    ctx->lock_stripe = -1;
    LUA_API_CTX(vm->L) = ctx;
    vm_arm(vm, g.call_timeout, true);
    if (ctx->outer != NULL && ctx->outer->deadline > 0 &&
        ctx->outer->deadline < vm->deadline)
        vm->deadline = ctx->outer->deadline; /* never outlive the caller */
    ctx->deadline = vm->deadline;
    lua_pushcfunction(vm->L, vm_msgh);
    lua_pushcfunction(vm->L, fn);
    lua_pushlightuserdata(vm->L, ud);
    vm->depth++;
    status = lua_pcall(vm->L, 1, 0, *base + 1);
    vm->depth--;
    if (status != LUA_OK && refused_vm == vm) { /* failed at its cap */
        atomic_fetch_add(&overruns_memory, 1);
        refused_vm = NULL;
    }
    if (ctx->outer != NULL) {
        vm->deadline = ctx->outer->deadline > 0 ? ctx->outer->deadline
                                                : INFINITY;
        vm->by_request = outer_by_request;
    } else {
        vm_disarm(vm);
    }
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
    LUA_API_CTX(vm->L) = ctx->outer;
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
    luavm__push_mount(L, c->m);
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
    luavm__push_mount(L, m);
    lua_setfield(L, -2, "mount");
    lua_api_push_storage(L, m->storage_prefix, LUA_API_CTX(L)->gen);
    lua_setfield(L, -2, "storage");
    lua_api_push_lease_helpers(L); /* count_leases, lease_values */
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
