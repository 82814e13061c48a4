/*
 * lua_json_text.h - JSON text <-> Lua values in one pass, no cJSON tree.
 *
 * Owns the two hot-path shortcuts of the Lua bridge: decoding stored JSON
 * text straight onto the Lua stack (storage:get_json, coffer.json.decode)
 * and writing a Lua value straight as JSON text. Both are defined by the
 * tree paths they replace and must stay indistinguishable from them:
 *
 *   lua_json_decode_text == json_parse(strict) + lua_json_push
 *   lua_json_write_text  == lua_json_to + json_write_value
 *
 * (same values, same refusals, same error texts, same bytes; the unit
 * test test_lua_json_text.c and tests/fuzz/fuzz_json.c compare them).
 * The conversion rules themselves stay in lua_json.h; the grammar in
 * json.h.
 */
#ifndef COFFER_LUA_JSON_TEXT_H
#define COFFER_LUA_JSON_TEXT_H

#include <stddef.h>

#include <lua.h>

#include "common.h"
#include "json_write.h"
#include "lua_json.h"

/*
 * Decodes text[0..len) (exactly one value, only whitespace after it) and
 * pushes it as lua_json_push would push json_parse's tree. At most
 * max_depth arrays/objects nest (clamped as json_parse clamps it).
 * Returns 0 with the value pushed, or -1 with nothing pushed and err set
 * to json_parse's message (err may be NULL). Raises only on
 * out-of-memory. Every C copy of decoded bytes is wiped. [-0, +(0|1), m]
 */
int lua_json_decode_text(lua_State *L, const char *text, size_t len,
                         int max_depth, struct errbuf *err);

/*
 * Adds decode and encode (the direct paths) to the coffer.json table at the top
 * of the stack, after lua_json_open made it. [-0, +0, m]
 */
void lua_json_text_open(lua_State *L);

/*
 * Writes the Lua value at idx through w, byte for byte what
 * json_write_value writes for lua_json_to's tree of it. Raises as
 * lua_json_to does (functions, NaN, NUL bytes, cycles, too deep); the
 * caller's buffer must then be wiped by whoever owns it (keep it in a
 * lua_json_box). [-0, +0, e]
 */
void lua_json_write_text(lua_State *L, int idx, struct json_writer *w);

/*
 * lua_json_encode (lua_json.h) without the tree: box->text/text_len get
 * the same compact text (freed by lua_json_box_release); box->json stays
 * NULL. [-0, +0, e]
 */
void lua_json_encode_text(lua_State *L, int idx, struct lua_json_box *box);

#endif
