/*
 * lua_password.c - coffer.password.generate for engines (see the header).
 *
 * The storage is the running call's (lua_ctx.h): the barrier's logical
 * view in the server; a call with none (outside a request, a plugin test
 * without storage) gets nil and a reason rather than a crash.
 */
#include "lua_password.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "crypto.h"
#include "lua_ctx.h"
#include "password_policy.h"

/* coffer.password.generate(name) -> password | nil, err */
static int l_generate(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    const struct lua_api_ctx *ctx = LUA_API_CTX(L);
    struct errbuf err;
    char *pw = NULL;

    if (strlen(name) != len) { /* "a\0b" must not read policy "a" */
        lua_pushnil(L);
        lua_pushliteral(L, "no password policy found");
        return 2;
    }
    if (ctx == NULL || ctx->storage == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "password policies are not available here");
        return 2;
    }
    errbuf_clear(&err);
    if (pwpolicy_generate_named(ctx->storage, name, &pw, &err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushstring(L, pw);
    crypto_wipe(pw, strlen(pw));
    free(pw);
    return 1;
}

static const luaL_Reg password_funcs[] = {
    {"generate", l_generate},
    {NULL, NULL},
};

void lua_password_open(lua_State *L)
{
    luaL_newlib(L, password_funcs);
    lua_setfield(L, -2, "password");
}
