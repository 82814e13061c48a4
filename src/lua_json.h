/*
 * lua_json.h - the JSON bridge: Lua values <-> cJSON, and coffer.json.
 *
 * Owns the one conversion between cJSON trees and Lua values that every
 * caller uses (engines' data, storage:get_json/put_json, coffer.json,
 * Lua policies' paths), the coffer.json.* functions, and the resource
 * box in which every C function of the `coffer` module (lua_api.c,
 * here) holds C resources while it may raise. Does not own JSON text
 * parsing (json.c) nor the rest of the `coffer` module (lua_api.h).
 * The hot paths that skip the tree (storage:get_json/put_json,
 * coffer.json.decode/encode) are in lua_json_text.h and must give what
 * the tree paths here give.
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
 */
#ifndef COFFER_LUA_JSON_H
#define COFFER_LUA_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <lua.h>

#include "buf.h"
#include "util.h"

/* Nesting limit for JSON in both directions (and Lua tables converted). */
#define LUA_JSON_MAX_DEPTH 128

/*
 * Creates the JSON metatables (array and object markers, null, big
 * number, resource box) and pushes the coffer.json table. Once per
 * state, before anything below, under a pcall. [-0, +1, m]
 */
void lua_json_open(lua_State *L);

/*
 * Pushes a cJSON value as Lua (see the table above). Raises past
 * LUA_JSON_MAX_DEPTH. item may be NULL (pushes coffer.json.null).
 * [-0, +1, e]
 */
void lua_json_push(lua_State *L, const cJSON *item);

/*
 * Converts the Lua value at idx into a new cJSON tree stored in *out (the
 * caller frees it with cJSON_Delete). *out is only written on success; a
 * value that cannot be encoded raises, and nothing leaks because the
 * partial tree is owned by a collectable box until it is complete.
 * [-0, +0, e]
 */
void lua_json_to(lua_State *L, int idx, cJSON **out);

/* Marks the table at idx to encode as a JSON array. [-0, +0, -] */
void lua_json_mark_array(lua_State *L, int idx);

/* True if the value at idx is coffer.json.null. [-0, +0, -] */
bool lua_json_is_null(lua_State *L, int idx);

/*
 * True if the value at idx has the metatable the registry holds under
 * key (a marker: JSON array/object, coffer.error). Never raises.
 * [-0, +0, -]
 */
bool lua_json_has_marker(lua_State *L, int idx, const void *key);

/* ---- the resource box -------------------------------------------------- */

/*
 * A GC-owned holder for C resources (Prosody's managed pointer). Created
 * empty before anything is acquired; whatever it holds when it is
 * collected is wiped and freed, so a raise never leaks. Release it
 * explicitly on the success path.
 */
struct lua_json_box {
    cJSON *json;
    char *text;      /* from cJSON_Print*, freed with cJSON_free */
    size_t text_len;
    struct buf b;
    struct strvec sv;
};

/* Pushes a new empty box. [-0, +1, m] */
struct lua_json_box *lua_json_box_new(lua_State *L);

/* Wipes and frees what the box holds; it stays usable. [-0, +0, -] */
void lua_json_box_release(struct lua_json_box *box);

/*
 * Encodes the Lua value at idx as compact JSON text: box->json holds the
 * tree, box->text/text_len the text. Raises on values JSON cannot hold
 * (functions, NaN, cycles, too deep). [-0, +0, e]
 */
void lua_json_encode(lua_State *L, int idx, struct lua_json_box *box);

/* ---- for lua_json_text.c (the direct text paths) only ------------------ */

/* Array or object for the table at idx; *n = its length. [-0, +0, -] */
bool lua_json__table_is_array(lua_State *L, int idx, lua_Integer *n);
/* The literal of a coffer.json.number at idx, or NULL. [-0, +0, -] */
const char *lua_json__bignum(lua_State *L, int idx);
/* Pushes coffer.json.null. [-0, +1, -] */
void lua_json__push_null(lua_State *L);
/* Pushes the valid number literal lit[0..len) as decoding gives it. */
void lua_json__push_literal(lua_State *L, const char *lit, size_t len);

#endif
