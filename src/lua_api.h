/*
 * lua_api.h - the `coffer` Lua module: everything a script may call.
 *
 * Owns: the C functions behind coffer.time, coffer.crypto, coffer.net,
 * coffer.log, the typed errors (coffer.error and its helpers) and the
 * per-request storage handle (req.storage). It does not own lua_States,
 * the sandbox or the call protocol; luavm.c does.
 *
 * The JSON bridge (Lua values <-> cJSON, coffer.json and its rules) is
 * lua_json.h's; lua_api_open puts its table in as coffer.json.
 *
 * The per-call context (struct lua_api_ctx, LUA_API_CTX) is lua_ctx.h's.
 */
#ifndef COFFER_LUA_API_H
#define COFFER_LUA_API_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <lua.h>

#include "lua_ctx.h"
#include "util.h"

struct mount;
struct request;
struct storage;

/*
 * Releases the storage lock the call still holds, if any (luavm calls it
 * when a call ends, whatever the script did). Never raises.
 */
void lua_api_release_lock(struct lua_api_ctx *ctx);

/*
 * Creates the metatables (error, storage, lease, lock; lua_json_open the
 * JSON ones) and pushes a new `coffer` table. Call once per state, under a pcall.
 * [-0, +1, m]
 */
void lua_api_open(lua_State *L);

/*
 * Pushes a storage handle bound to prefix (a mount's storage_prefix) and
 * to call number gen: it refuses to work once that call has ended.
 * [-0, +1, m]
 */
void lua_api_push_storage(lua_State *L, const char *prefix, uint64_t gen);

/*
 * Pushes req:pending_lease as a C function (for the request table).
 * [-0, +1, -]
 */
void lua_api_push_lease_factory(lua_State *L);

/*
 * Sets lease_ttl and count_leases on the request table at the top.
 * [-0, +0, m]
 */
void lua_api_push_lease_helpers(lua_State *L);

/*
 * True if the value at idx is a coffer.error. Never allocates or raises,
 * so it is safe outside a protected call. [-0, +0, -]
 */
bool lua_api_is_error(lua_State *L, int idx);

#endif
