/*
 * luavm_policy.c - Lua policies: loading them into every state and
 * running their check functions.
 *
 * Owns the policy step of each state's bootstrap (the registry table
 * name -> check function, and in the scratch state the list policy.c
 * compiles, kept in the code snapshot being validated) and the
 * per-request check call with its instruction budget.
 * Does not own states, the sandbox or the protected call (luavm.c,
 * shared through luavm_int.h), nor the ACL (policy.c).
 */
#include "luavm_policy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "log.h"
#include "lua_api.h"
#include "lua_json.h"
#include "luavm.h"
#include "luavm_int.h"
#include "router.h"
#include "util.h"

/* ============================================================ loading == */

/*
 * Lua policies: the *.lua files of the config's policy_directory (none
 * are built in; examples/policies/ holds examples). Each file returns
 *   { name = "...", paths = { [pattern] = {capabilities = {...}} },
 *     check = function(req) ... end }
 * Every state keeps name -> check in the registry (key_policies); the
 * scratch bootstrap also copies name, paths, whether a check exists and
 * the line it starts on into its code snapshot's policy list for policy.c, which compiles the
 * paths like HCL rules.
 */
static char key_policies;

static struct {
    char *dir;       /* policy_directory, or NULL */
    int budget;      /* instructions per check */
} pg;

const char *luavm__policy_dir(void)
{
    return pg.dir;
}

/*
 * Calls framework.<name>() and leaves nresults values (the framework
 * marks where a policy file starts and ends, for coffer.policy).
 * [-0, +nresults, e]
 */
static void policy_file_hook(lua_State *L, const char *name, int nresults)
{
    lua_pushcfunction(L, luavm__require);
    lua_pushliteral(L, "framework");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_call(L, 0, nresults);
}

/*
 * Loads every policy script of <root>; collect appends to list (the
 * scratch state's snapshot). [-0,+0,e]
 */
static void load_policy_dir(lua_State *L, const char *root, cJSON *list)
{
    bool collect = list != NULL;

    struct strvec *sv = luavm__list_scripts(L, root, ".");
    int reg;
    size_t i;

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_policies);
    reg = lua_gettop(L);
    for (i = 0; i < sv->n; i++) {
        const char *file = lua_pushfstring(L, "%s/%s", root, sv->v[i]);
        int t;

        policy_file_hook(L, "begin_policy_file", 0);
        luavm__load_path(L, root, sv->v[i], false);
        lua_call(L, 0, 1);
        policy_file_hook(L, "end_policy_file", 1);
        /* coffer.policy{...} in the file, or the table it returned. */
        if (lua_isnil(L, -2)) {
            lua_remove(L, -2);
        } else if (lua_isnil(L, -1) || lua_rawequal(L, -1, -2)) {
            lua_pop(L, 1);
        } else {
            luaL_error(L, "%s: call coffer.policy{...} or return the policy "
                          "table, not both", file);
        }
        t = lua_gettop(L);
        if (!lua_istable(L, t))
            luaL_error(L, "%s: a policy script must call coffer.policy{...} "
                          "(or return a table)", file);
        if (lua_getfield(L, t, "name") == LUA_TNIL) {
            lua_pop(L, 1);
            lua_pushlstring(L, sv->v[i], strlen(sv->v[i]) - 4);
        } else if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
            luaL_error(L, "%s: policy name must be a non-empty string",
                       file);
        }
        if (lua_rawget(L, reg) == LUA_TNIL) /* reg[name] */
            lua_pop(L, 1);
        else
            luaL_error(L, "%s: a Lua policy with this name already exists",
                       file);
        lua_getfield(L, t, "name");
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, sv->v[i], strlen(sv->v[i]) - 4);
        }
        lua_getfield(L, t, "check");
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            luaL_error(L, "%s: check must be a function", file);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushboolean(L, 0);
        }
        lua_rawset(L, reg); /* reg[name] = check or false */
        if (collect) {
            cJSON *paths = NULL, *e = cJSON_CreateObject();
            lua_getfield(L, t, "name");
            cJSON_AddStringToObject(e, "name", lua_isstring(L, -1)
                                                   ? lua_tostring(L, -1)
                                                   : "");
            if (!lua_isstring(L, -1)) {
                cJSON_Delete(e);
                e = cJSON_CreateObject();
                lua_pushlstring(L, sv->v[i], strlen(sv->v[i]) - 4);
                cJSON_AddStringToObject(e, "name", lua_tostring(L, -1));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            cJSON_AddStringToObject(e, "file", file);
            lua_getfield(L, t, "check");
            cJSON_AddBoolToObject(e, "check", lua_isfunction(L, -1));
            if (lua_isfunction(L, -1)) { /* where explain points to */
                lua_Debug ar;
                lua_pushvalue(L, -1);
                if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0)
                    cJSON_AddNumberToObject(e, "check_line", ar.linedefined);
            }
            lua_pop(L, 1);
            cJSON_AddItemToArray(list, e); /* owned before any raise */
            if (lua_getfield(L, t, "paths") != LUA_TNIL) {
                if (!lua_istable(L, -1))
                    luaL_error(L, "%s: paths must be a table", file);
                lua_json_to(L, -1, &paths);
                cJSON_AddItemToObject(e, "paths", paths);
            }
            lua_pop(L, 1);
        }
        lua_settop(L, reg);
    }
    lua_pop(L, 2); /* reg, sv */
}

/* The scratch state alone collects the list policy.c compiles. */
void luavm_policy_bootstrap(lua_State *L, bool scratch)
{
    struct luavm_code *c = luavm__of(L)->code;

    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_policies);
    if (pg.dir != NULL)
        load_policy_dir(L, pg.dir, scratch ? c->policies : NULL);
}

void luavm_policy_configure(const char *policy_dir, uint64_t budget)
{
    luavm_policy_release();
    pg.dir = policy_dir != NULL ? xstrdup(policy_dir) : NULL;
    pg.budget = budget > 0 && budget <= INT_MAX ? (int)budget
                                                : LUAVM_POLICY_BUDGET_DEFAULT;
}

void luavm_policy_release(void)
{
    free(pg.dir);
    pg.dir = NULL;
}

/*
 * The published snapshot's list. The reference is dropped before
 * returning: the list stays valid because policy.c reads it only while
 * the server activates, which a reload (it holds the state lock for
 * reading) cannot overlap; a reload hands policy.c its own list.
 */
const cJSON *luavm_policy_list(void)
{
    struct luavm_code *c = luavm_code_current();
    const cJSON *list = luavm_code_policies(c);

    luavm_code_put(c);
    return list;
}

/* ====================================================== policy checks == */

/*
 * The budget hook (LUAVM_POLICY_BUDGET_DEFAULT, luavm_policy.h) fires once
 * the budget is spent and then on every instruction, so a pcall in the
 * check cannot absorb it.
 */
struct vm_check {
    const char *name;
    const struct request *req;
    const struct mount *m;   /* the mount req->path falls in, or NULL */
    const struct token *t;
    bool allowed;
    char reason[200];
};

static void vm_budget_hook(lua_State *L, lua_Debug *ar)
{
    struct vm *vm = luavm__of(L);

    (void)ar;
    vm->timed_out = true;
    lua_sethook(L, vm_budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "policy check exceeded %d instructions", pg.budget);
}

/*
 * Under lua_pcall: check(req) with the fields handlers see
 * (luavm__push_request_base): id, operation, path (relative to the
 * mount), full_path, mount_path, time, client_addr, data, token. The
 * check runs before routing, so the mount is looked up here. The result
 * must be a boolean; false may come with a reason string.
 */
static int vm_run_check(lua_State *L)
{
    struct vm_check *c = lua_touserdata(L, 1);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_policies);
    if (lua_getfield(L, -1, c->name) != LUA_TFUNCTION)
        return luaL_error(L, "policy %s has no check function", c->name);
    luavm__push_request_base(L, c->req, c->m, c->t);
    lua_sethook(L, vm_budget_hook, LUA_MASKCOUNT, pg.budget);
    lua_call(L, 1, 2);
    lua_sethook(L, luavm__hook, LUA_MASKCOUNT, LUAVM_HOOK_COUNT);
    if (!lua_isboolean(L, -2))
        return luaL_error(L, "check returned a %s; expected a boolean",
                          luaL_typename(L, -2));
    c->allowed = lua_toboolean(L, -2);
    if (!c->allowed && lua_type(L, -1) == LUA_TSTRING)
        snprintf(c->reason, sizeof(c->reason), "%s", lua_tostring(L, -1));
    return 0;
}

int luavm_policy_check(const char *name, const struct request *req,
                       const struct token *t, struct errbuf *why)
{
    struct vm_check c = {.name = name, .req = req, .t = t};
    struct lua_api_ctx ctx = {.req = req};
    struct vm *vm = luavm__get();
    const char *msg;
    int base, status;

    if (vm == NULL || !lua_checkstack(vm->L, 8)) {
        errbuf_set(why, "policy %s: no Lua state", name);
        log_error("policy: check of %s denied: no Lua state", name);
        return COFFER_EINTERNAL;
    }
    c.m = req->mount != NULL ? req->mount : router_match(req->path);
    status = luavm__protected(vm, &ctx, vm_run_check, &c, &base);
    if (c.m != req->mount)
        router_mount_put(c.m);
    if (status != LUA_OK) {
        msg = lua_api_is_error(vm->L, -1) ? "a typed error"
                                          : lua_tostring(vm->L, -1);
        errbuf_set(why, "policy %s: check failed", name);
        log_error("policy: check of %s failed, denying %s %s: %s%.*s", name,
                  req_op_name(req->op), req->path,
                  vm->timed_out ? "(budget) " : "",
                  msg != NULL ? (int)strcspn(msg, "\n") : 18,
                  msg != NULL ? msg : "(non-string error)");
        luavm__unprotect(vm, &ctx, base);
        return COFFER_EINTERNAL;
    }
    luavm__unprotect(vm, &ctx, base);
    if (!c.allowed) {
        errbuf_set(why, "policy %s: %s", name,
                   c.reason[0] != '\0' ? c.reason : "check returned false");
        log_info("policy: %s denied %s %s: %s", name, req_op_name(req->op),
                 req->path, c.reason[0] != '\0' ? c.reason : "(no reason)");
        return COFFER_EPERM;
    }
    return 0;
}
