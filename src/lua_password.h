/*
 * lua_password.h - coffer.password: passwords from Vault password
 * policies (sys/policies/password), for engines.
 *
 * Lua sees (docs/PLUGIN_API.md has the reference):
 *
 *   pw, err = coffer.password.generate(policy_name)
 *
 * A password, or nil and Vault's words ("no password policy found",
 * "stored password policy is invalid: ...", "timed out generating
 * string"). A name that is not a string raises. The policy is read from
 * storage at each call, so a changed or deleted policy applies at once.
 */
#ifndef COFFER_LUA_PASSWORD_H
#define COFFER_LUA_PASSWORD_H

#include <lua.h>

/*
 * Adds coffer.password to the `coffer` table at the top of the stack.
 * Called once per state by lua_api_open. [-0, +0, m]
 */
void lua_password_open(lua_State *L);

#endif
