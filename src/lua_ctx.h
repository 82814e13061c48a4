/*
 * lua_ctx.h - the context of the Lua call running in a state.
 *
 * luavm.c points lua_getextraspace(L) at a struct lua_api_ctx for the
 * duration of each protected call and clears it after; the C libraries
 * Lua sees (lua_api.c, lua_http.c, ...) read it. It is a header of its
 * own, with no .c, so that those libraries depend on it and not on each
 * other.
 */
#ifndef COFFER_LUA_CTX_H
#define COFFER_LUA_CTX_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include <lua.h>

#include "util.h"

struct mount;
struct request;
struct storage;

struct lua_api_ctx {
    bool loading;                /* bootstrap: registration allowed */
    uint64_t gen;                /* call number; stale storage handles fail */
    const struct mount *mount;   /* NULL outside a request */
    const struct request *req;   /* NULL outside a request */
    struct storage *storage;     /* borrowed from the luavm config */
    struct strvec pending;       /* lease ids created but not yet issued:
                                    luavm aborts them when the call ends */
    int lock_stripe;             /* storage lock held by this call, or -1 */
    struct lua_api_ctx *outer;   /* the call this one runs inside (on the
                                    same thread), or NULL */
    double deadline;             /* time_mono() limit of the running call
                                    (luavm's call timeout or the request's
                                    budget); 0 = none */
};

/* The context of the running call, or NULL between calls. */
#define LUA_API_CTX(L) (*(struct lua_api_ctx **)lua_getextraspace(L))

/*
 * Milliseconds left before the running call's deadline (0 when passed),
 * or -1 when the call has none. C functions that block (coffer.http) cap
 * their waits with it: the instruction hook cannot stop C code.
 */
static inline int64_t lua_ctx_call_left_ms(lua_State *L)
{
    const struct lua_api_ctx *ctx = LUA_API_CTX(L);
    double left;

    if (ctx == NULL || ctx->deadline <= 0 || !isfinite(ctx->deadline))
        return -1;
    left = (ctx->deadline - time_mono()) * 1000.0;
    return left > 0 ? (int64_t)left : 0;
}

#endif
