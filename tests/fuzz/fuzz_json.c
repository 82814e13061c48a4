/*
 * fuzz_json.c - the strict JSON reader (src/json.c).
 *
 * The input is parsed as a request body would be (byte 0 picks trailing
 * text allowed or not, and the depth limit). Oracles beyond the
 * sanitizers:
 *   - a parsed tree printed by cJSON parses again, strictly, and prints
 *     to the same text (what Coffer stores is what it reads back);
 *   - json_write_value writes that same text, byte for byte (json_write.h's
 *     promise: audit entries read like cJSON's output);
 *   - every number literal in the input's comma-separated pieces prints
 *     back as the same text through json_number_new (json.h's promise),
 *     compares equal to itself, and compares antisymmetrically with the
 *     next piece;
 *   - the direct Lua paths (lua_json_text.h) agree with the tree paths:
 *     decoding the input with lua_json_decode_text gives the same Lua
 *     value (or the same error text) as json_parse + lua_json_push, and
 *     writing that value with lua_json_write_text gives the same bytes as
 *     lua_json_to + json_write_value.
 */
#include <math.h>

#include <lauxlib.h>
#include <lualib.h>

#include "../../src/json.h"
#include "../../src/json_write.h"
#include "../../src/lua_json.h"
#include "../../src/lua_json_text.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One Lua state for every input, with `same` (deep, exact equality). */
static lua_State *lua;

static const char same_lua[] =
    "local null = ...\n"
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    return math.type(a) == math.type(b) and a == b and\n"
    "           (a ~= 0 or 1 / a == 1 / b)\n"
    "  elseif type(a) == 'userdata' then\n"
    "    if rawequal(a, b) then return true end\n"
    "    return not rawequal(a, null) and not rawequal(b, null) and\n"
    "           getmetatable(a) == getmetatable(b) and\n"
    "           tostring(a) == tostring(b)\n"
    "  elseif type(a) ~= 'table' then\n"
    "    return a == b\n"
    "  end\n"
    "  if getmetatable(a) ~= getmetatable(b) then return false end\n"
    "  local n = 0\n"
    "  for k, v in pairs(a) do\n"
    "    n = n + 1\n"
    "    if not same(v, rawget(b, k)) then return false end\n"
    "  end\n"
    "  for _ in pairs(b) do n = n - 1 end\n"
    "  return n == 0\n"
    "end\n"
    "return same\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    lua = luaL_newstate();
    FUZZ_CHECK(lua != NULL);
    luaL_openlibs(lua);
    lua_json_open(lua);
    lua_json_text_open(lua);
    lua_setglobal(lua, "json");
    FUZZ_CHECK(luaL_loadstring(lua, same_lua) == LUA_OK);
    lua_json__push_null(lua);
    FUZZ_CHECK(lua_pcall(lua, 1, 1, 0) == LUA_OK);
    lua_setglobal(lua, "same");
    return 0;
}

/* Under lua_pcall: text (1) both ways; pushes ok, value, ok, value. */
static int decode_both(lua_State *L)
{
    size_t len;
    const char *text = lua_tolstring(L, 1, &len);
    int depth = (int)lua_tointeger(L, 2);
    struct errbuf err1, err2;
    struct lua_json_box *box = lua_json_box_new(L); /* 3 */

    box->json = json_parse(text, len, depth, false, &err1);
    if (box->json != NULL) {
        lua_pushboolean(L, 1);
        lua_json_push(L, box->json);
    } else {
        lua_pushboolean(L, 0);
        lua_pushstring(L, err1.msg);
    }
    lua_json_box_release(box);
    if (lua_json_decode_text(L, text, len, depth, &err2) == 0) {
        lua_pushboolean(L, 1);
        lua_insert(L, -2);
    } else {
        lua_pushboolean(L, 0);
        lua_pushstring(L, err2.msg);
    }
    return 4;
}

/* Under lua_pcall: the value (1) written both ways; pushes two texts. */
static int encode_both(lua_State *L)
{
    struct lua_json_box *box = lua_json_box_new(L); /* 2 */
    struct json_writer w;
    cJSON *tree = NULL;

    buf_init(&box->b, BUF_MAX_DEFAULT);
    lua_json_to(L, 1, &tree);
    box->json = tree;
    json_write_init(&w, &box->b);
    json_write_value(&w, tree);
    FUZZ_CHECK(w.rc == 0);
    lua_pushlstring(L, box->b.ptr != NULL ? box->b.ptr : "", box->b.len);
    lua_json_box_release(box);
    buf_init(&box->b, BUF_MAX_DEFAULT);
    json_write_init(&w, &box->b);
    lua_json_write_text(L, 1, &w);
    FUZZ_CHECK(w.rc == 0 && lua_gettop(L) == 3);
    lua_pushlstring(L, box->b.ptr != NULL ? box->b.ptr : "", box->b.len);
    lua_json_box_release(box);
    return 2;
}

/* The direct paths against the tree paths (see the top of the file). */
static void check_lua_paths(const char *text, size_t len, int depth)
{
    lua_State *L = lua;

    lua_settop(L, 0);
    lua_pushcfunction(L, decode_both);
    lua_pushlstring(L, text, len);
    lua_pushinteger(L, depth);
    FUZZ_CHECK(lua_pcall(L, 2, 4, 0) == LUA_OK);
    FUZZ_CHECK(lua_toboolean(L, 1) == lua_toboolean(L, 3));
    if (!lua_toboolean(L, 1)) {
        if (strcmp(lua_tostring(L, 2), lua_tostring(L, 4)) != 0)
            fprintf(stderr, "fuzz: errors %s | %s\n", lua_tostring(L, 2),
                    lua_tostring(L, 4));
        FUZZ_CHECK(strcmp(lua_tostring(L, 2), lua_tostring(L, 4)) == 0);
        lua_settop(L, 0);
        return;
    }
    lua_getglobal(L, "same");
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 4);
    FUZZ_CHECK(lua_pcall(L, 2, 1, 0) == LUA_OK);
    FUZZ_CHECK(lua_toboolean(L, -1));
    lua_settop(L, 0);
    lua_pushcfunction(L, encode_both);
    lua_json_decode_text(L, text, len, depth, NULL);
    FUZZ_CHECK(lua_pcall(L, 1, 2, 0) == LUA_OK);
    if (strcmp(lua_tostring(L, 1), lua_tostring(L, 2)) != 0)
        fprintf(stderr, "fuzz: tree wrote %s, direct %s\n",
                lua_tostring(L, 1), lua_tostring(L, 2));
    FUZZ_CHECK(lua_rawequal(L, 1, 2));
    lua_settop(L, 0);
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static void check_writer_matches(const cJSON *tree, const char *printed)
{
    struct buf b;
    struct json_writer w;

    buf_init(&b, BUF_MAX_DEFAULT);
    json_write_init(&w, &b);
    json_write_value(&w, tree);
    FUZZ_CHECK(w.rc == 0);
    if (strcmp(b.ptr != NULL ? b.ptr : "", printed) != 0)
        fprintf(stderr, "fuzz: writer gave %s, cJSON %s\n", b.ptr, printed);
    FUZZ_CHECK(strcmp(b.ptr != NULL ? b.ptr : "", printed) == 0);
    buf_release(&b);
}

static void check_roundtrip(const char *text, size_t len, int depth,
                            bool trailing)
{
    struct errbuf err;
    cJSON *t1 = json_parse(text, len, depth, trailing, &err);
    cJSON *t2;
    char *p1, *p2;

    if (t1 == NULL) {
        FUZZ_CHECK(strncmp(err.msg, "invalid JSON at byte ", 21) == 0);
        return;
    }
    p1 = cJSON_PrintUnformatted(t1);
    FUZZ_CHECK(p1 != NULL);
    check_writer_matches(t1, p1);
    t2 = json_parse(p1, strlen(p1), JSON_DEPTH_LIMIT, false, &err);
    if (t2 == NULL)
        fprintf(stderr, "fuzz: reparse of %s failed: %s\n", p1, err.msg);
    FUZZ_CHECK(t2 != NULL);
    p2 = cJSON_PrintUnformatted(t2);
    FUZZ_CHECK(p2 != NULL && strcmp(p1, p2) == 0);
    free(p1);
    free(p2);
    json_delete_wiped(t1);
    cJSON_Delete(t2);
}

static void check_number(const char *a, size_t alen, const char *b,
                         size_t blen)
{
    cJSON *item;
    char *printed;
    double d;

    if (!json_number_literal(a, alen))
        return;
    FUZZ_CHECK(json_number_cmp(a, alen, a, alen) == 0);
    if (json_number_exact(a, alen, &d))
        FUZZ_CHECK(isfinite(d));
    item = json_number_new(a, alen);
    FUZZ_CHECK(item != NULL);
    printed = cJSON_PrintUnformatted(item);
    FUZZ_CHECK(printed != NULL && strlen(printed) == alen &&
               memcmp(printed, a, alen) == 0);
    free(printed);
    cJSON_Delete(item);
    if (b != NULL && json_number_literal(b, blen))
        FUZZ_CHECK(sign(json_number_cmp(a, alen, b, blen)) ==
                   -sign(json_number_cmp(b, blen, a, alen)));
}

static void check_numbers(const char *s, size_t n)
{
    const char *end = s + n, *prev = NULL;
    size_t prev_len = 0;

    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t len = comma ? (size_t)(comma - s) : (size_t)(end - s);
        if (prev != NULL)
            check_number(prev, prev_len, s, len);
        prev = s;
        prev_len = len;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    if (prev != NULL)
        check_number(prev, prev_len, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    int depth;

    if (size < 1)
        return 0;
    /* An exact-size copy: the reader must not look past len. */
    text = malloc(size - 1 > 0 ? size - 1 : 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data + 1, size - 1);
    depth = (data[0] & 2) ? JSON_MAX_DEPTH : 1 + (data[0] >> 2) % 8;
    check_roundtrip(text, size - 1, depth, data[0] & 1);
    if (!(data[0] & 1))
        check_lua_paths(text, size - 1, depth);
    if (size - 1 <= 4096)
        check_numbers(text, size - 1);
    free(text);
    return 0;
}
