/*
 * lua_jose.h - coffer.jose, coffer.x509 and the SHA-2/HMAC helpers of coffer.crypto, over OpenSSL.
 */
#ifndef COFFER_LUA_JOSE_H
#define COFFER_LUA_JOSE_H

#include <lua.h>

/*
 * Adds this module's functions to the `coffer` table at the top of the
 * stack. Called once per state by lua_api_open, under a pcall.
 * [-0, +0, m]
 */
void lua_jose_open(lua_State *L);

#endif
