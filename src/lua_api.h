/*
 * lua_api.h - the `coffer` Lua module: everything a script may call.
 *
 * Owns: the C functions behind coffer.json, coffer.time, coffer.crypto,
 * coffer.log, the typed errors (coffer.error and its helpers) and the
 * per-request storage handle (req.storage). It does not own lua_States,
 * the sandbox or the call protocol; luavm.c does.
 *
 * JSON <-> Lua, decided once for every caller:
 *
 *   JSON            Lua
 *   null            coffer.json.null (a unique userdata; nil would vanish
 *                   from tables). Encoding nil also gives null.
 *   true/false      boolean
 *   number          integer when integral and within int64, else float,
 *                   as long as that gives back the same literal; any
 *                   other literal is a coffer.json.number (see below)
 *   string          string
 *   [...]           table marked with coffer.json.array (so [] survives)
 *   {...}           plain table
 *
 * Numbers are kept literally, like Go's json.Number (VAULT_API.md 1.4).
 * json.c turns a literal into a cJSON number only when nothing is lost
 * and into a cJSON_Raw holding the text otherwise (json_number_exact);
 * Lua gets:
 *   "42", "0.5", "1e-07"          integer / float (they print back alike)
 *   "9007199254740993"            integer (a plain integer within int64)
 *   "12345678901234567890", "1.0", "1e3", "-0", "0.10", "1e400"
 *                                 a coffer.json.number userdata holding
 *                                 the literal; encoding writes it back
 *                                 verbatim.
 * A coffer.json.number has __tostring (the literal), __concat, exact
 * __eq/__lt/__le (by decimal value, against numbers too: 1e400 > 2^1023,
 * "1.0" == "1e0"), and raises on arithmetic: call coffer.json.tonumber(v)
 * to get the nearest Lua number and accept the rounding. type() says
 * "userdata", so `v == 5` is false; compare with < or tonumber instead.
 * coffer.json.number(s) builds the value decode would give for literal
 * s, coffer.json.is_number(v) is true for numbers and big numbers.
 *
 * Encoding a table: marked with coffer.json.array(t) -> array; marked with
 * coffer.json.object(t) -> object; otherwise a non-empty sequence 1..n is
 * an array and anything else, including the EMPTY table, is an object.
 * Object keys come out sorted, as Go's encoder does. Integers beyond
 * 32 bits are written digit for digit. Floats go through cJSON's printer
 * (%1.15g when that reads back within an epsilon, else %1.17g), so a
 * float *computed* in Lua, such as 0.1 + 0.2, may lose its last digit;
 * decoded floats are exact by construction. Depth is capped both ways.
 *
 * Per-call context: luavm.c points lua_getextraspace(L) at a struct
 * lua_api_ctx for the duration of each protected call and clears it after.
 */
#ifndef COFFER_LUA_API_H
#define COFFER_LUA_API_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <lua.h>

#include "util.h"

struct mount;
struct request;
struct storage;

/* Nesting limit for JSON in both directions (and Lua tables converted). */
#define LUA_API_JSON_MAX_DEPTH 128

struct lua_api_ctx {
    bool loading;                /* bootstrap: registration allowed */
    uint64_t gen;                /* call number; stale storage handles fail */
    const struct mount *mount;   /* NULL outside a request */
    const struct request *req;   /* NULL outside a request */
    struct storage *storage;     /* borrowed from the luavm config */
    struct strvec pending;       /* lease ids created but not yet issued:
                                    luavm aborts them when the call ends */
    int lock_stripe;             /* storage lock held by this call, or -1 */
};

/*
 * Releases the storage lock the call still holds, if any (luavm calls it
 * when a call ends, whatever the script did). Never raises.
 */
void lua_api_release_lock(struct lua_api_ctx *ctx);

/* The context of the running call, or NULL between calls. */
#define LUA_API_CTX(L) (*(struct lua_api_ctx **)lua_getextraspace(L))

/*
 * Creates the metatables (error, storage, json markers, resource box) and
 * pushes a new `coffer` table. Call once per state, under a pcall.
 * [-0, +1, m]
 */
void lua_api_open(lua_State *L);

/*
 * Pushes a cJSON value as Lua (see the table above). Raises past
 * LUA_API_JSON_MAX_DEPTH. item may be NULL (pushes coffer.json.null).
 * [-0, +1, e]
 */
void lua_api_push_json(lua_State *L, const cJSON *item);

/*
 * Converts the Lua value at idx into a new cJSON tree stored in *out (the
 * caller frees it with cJSON_Delete). *out is only written on success; a
 * value that cannot be encoded raises, and nothing leaks because the
 * partial tree is owned by a collectable box until it is complete.
 * [-0, +0, e]
 */
void lua_api_to_json(lua_State *L, int idx, cJSON **out);

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

/* Marks the table at idx to encode as a JSON array. [-0, +0, -] */
void lua_api_mark_array(lua_State *L, int idx);

/*
 * True if the value at idx is a coffer.error. Never allocates or raises,
 * so it is safe outside a protected call. [-0, +0, -]
 */
bool lua_api_is_error(lua_State *L, int idx);

#endif
