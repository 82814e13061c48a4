/*
 * luavm_lease.c - the batched lease callback (see luavm_lease.h).
 *
 * It uses luavm's one protected-call protocol (luavm_int.h) like the
 * one-lease callbacks in luavm.c: the Lua side runs under lua_pcall with
 * the call's deadline armed and the context installed, and every verdict
 * is copied into C inside that protected call, since reading Lua values
 * may raise.
 */
#include "luavm_lease.h"

#include <stdbool.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_api.h"
#include "lua_ctx.h"
#include "luavm_int.h"
#include "mount.h"

struct batch_call {
    const struct mount *m;
    const cJSON *const *records;
    size_t n;
    int *rcs;
    struct errbuf *errs;
    bool declined; /* the engine has no revoke_batch: nothing was done */
};

/* errbuf gets the first line of msg. */
static void set_words(struct errbuf *e, const char *msg)
{
    if (msg == NULL || msg[0] == '\0')
        msg = "revocation failed";
    errbuf_set(e, "%.*s", (int)strcspn(msg, "\n"), msg);
}

/*
 * Calls the function below its nargs arguments; an error goes on up as
 * it is (the surrounding call is protected already). [-(nargs+1), +1, e]
 */
static void call_one(lua_State *L, int nargs)
{
    if (lua_pcall(L, nargs, 1, 0) != LUA_OK)
        lua_error(L);
}

/* The leases as Lua sees them: records plus mount and storage. [-0, +1, e] */
static void push_leases(lua_State *L, const struct batch_call *c)
{
    lua_createtable(L, (int)c->n, 0);
    luavm__push_mount(L, c->m);
    lua_api_push_storage(L, c->m->storage_prefix, LUA_API_CTX(L)->gen);
    for (size_t i = 0; i < c->n; i++) {
        luavm__push_object(L, c->records[i]);
        lua_pushvalue(L, -3);
        lua_setfield(L, -2, "mount");
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "storage");
        lua_rawseti(L, -4, (lua_Integer)i + 1);
    }
    lua_pop(L, 2);
}

/*
 * Under lua_pcall: out = framework.lease_revoke_batch(type, leases), and
 * out[i] (true, or the error text) into rcs[i]/errs[i]. Argument 1: the
 * struct batch_call.
 */
static int run_batch(lua_State *L)
{
    struct batch_call *c = lua_touserdata(L, 1);

    lua_pushcfunction(L, luavm__require);
    lua_pushliteral(L, "framework");
    call_one(L, 1);
    lua_getfield(L, -1, "lease_revoke_batch");
    lua_pushstring(L, c->m->type);
    push_leases(L, c);
    call_one(L, 2);
    if (lua_isnil(L, -1)) {
        c->declined = true;
        return 0;
    }
    if (!lua_istable(L, -1))
        return luaL_error(L, "lease_revoke_batch returned no list");
    for (size_t i = 0; i < c->n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        if (lua_isboolean(L, -1) && lua_toboolean(L, -1)) {
            c->rcs[i] = 0;
        } else {
            c->rcs[i] = COFFER_EIO;
            set_words(&c->errs[i], lua_type(L, -1) == LUA_TSTRING
                                       ? lua_tostring(L, -1) : NULL);
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Every lease failed with the words of the error at the top of L. */
static void fail_all(lua_State *L, const struct batch_call *c)
{
    const char *msg = lua_api_is_error(L, -1) ? "the engine raised an error"
                                              : lua_tostring(L, -1);

    for (size_t i = 0; i < c->n; i++) {
        c->rcs[i] = COFFER_EIO;
        set_words(&c->errs[i], msg);
    }
}

int luavm_lease_revoke_batch(struct storage *storage, const struct mount *m,
                             const cJSON *const *records, size_t n,
                             int *rcs, struct errbuf *errs)
{
    struct batch_call call = {.m = m, .records = records, .n = n,
                              .rcs = rcs, .errs = errs};
    struct lua_api_ctx ctx = {.storage = storage, .mount = m};
    struct vm *vm = luavm__get();
    int base, status;

    for (size_t i = 0; i < n; i++) {
        rcs[i] = COFFER_EIO;
        errbuf_clear(&errs[i]);
    }
    if (vm == NULL || !lua_checkstack(vm->L, 16)) {
        for (size_t i = 0; i < n; i++)
            errbuf_set(&errs[i], "no Lua state for this thread");
        return COFFER_EINTERNAL;
    }
    status = luavm__protected(vm, &ctx, run_batch, &call, &base);
    if (status != LUA_OK)
        fail_all(vm->L, &call);
    luavm__unprotect(vm, &ctx, base);
    if (status == LUA_OK && call.declined)
        return COFFER_EUNSUPPORTED;
    return status == LUA_OK ? 0 : COFFER_EIO;
}
