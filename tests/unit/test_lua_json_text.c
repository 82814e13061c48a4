/*
 * test_lua_json_text.c - the direct JSON paths against the tree paths.
 *
 * lua_json_text.h promises that decoding text straight onto the Lua stack
 * gives what json_parse + lua_json_push gave, and that writing a Lua value
 * straight as text gives what lua_json_to + json_write_value gave: same
 * values (integer or float subtype, big-number literals, null and array
 * markers), same refusals and error texts, same bytes. Each test here runs
 * both paths on the same input and compares: hand-picked corner cases
 * first, then thousands of random documents and random Lua values (a
 * fixed seed, so a failure reproduces).
 */
#include "../../src/lua_json_text.c"

#include <lualib.h>

#include "harness.h"

/* ---- the four paths as Lua functions ---------------------------------- */

/* old_dec(text) -> value | nil, message (json_parse + lua_json_push) */
static int old_dec(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct errbuf err;
    struct lua_json_box *box = lua_json_box_new(L);

    box->json = json_parse(s, len, LUA_JSON_MAX_DEPTH, false, &err);
    if (box->json == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_json_push(L, box->json);
    lua_json_box_release(box);
    return 1;
}

/* new_dec(text) -> value | nil, message (lua_json_decode_text) */
static int new_dec(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct errbuf err;
    int top = lua_gettop(L);

    if (lua_json_decode_text(L, s, len, LUA_JSON_MAX_DEPTH, &err) != 0) {
        if (lua_gettop(L) != top)
            return luaL_error(L, "decode failed but left the stack changed");
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    if (lua_gettop(L) != top + 1)
        return luaL_error(L, "decode pushed %d values",
                          lua_gettop(L) - top);
    return 1;
}

/* old_enc(value) -> text (lua_json_to + json_write_value); raises */
static int old_enc(lua_State *L)
{
    struct lua_json_box *box;
    struct json_writer w;
    cJSON *tree = NULL;

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    box = lua_json_box_new(L);
    buf_init(&box->b, BUF_MAX_DEFAULT);
    lua_json_to(L, 1, &tree);
    box->json = tree;
    json_write_init(&w, &box->b);
    json_write_value(&w, tree);
    lua_pushlstring(L, box->b.ptr != NULL ? box->b.ptr : "", box->b.len);
    lua_json_box_release(box);
    return 1;
}

/* new_enc(value) -> text (lua_json_write_text); raises */
static int new_enc(lua_State *L)
{
    struct lua_json_box *box;
    struct json_writer w;

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    box = lua_json_box_new(L);
    buf_init(&box->b, BUF_MAX_DEFAULT);
    json_write_init(&w, &box->b);
    lua_json_write_text(L, 1, &w);
    if (lua_gettop(L) != 2)
        return luaL_error(L, "write changed the stack");
    lua_pushlstring(L, box->b.ptr != NULL ? box->b.ptr : "", box->b.len);
    lua_json_box_release(box);
    return 1;
}

/* A state with coffer.json as the global `json` and the four paths. */
static lua_State *state(void)
{
    lua_State *L = luaL_newstate();

    luaL_openlibs(L);
    lua_json_open(L);
    lua_json_text_open(L);
    lua_setglobal(L, "json");
    lua_register(L, "old_dec", old_dec);
    lua_register(L, "new_dec", new_dec);
    lua_register(L, "old_enc", old_enc);
    lua_register(L, "new_enc", new_enc);
    return L;
}

/* ---- the comparisons, in Lua ------------------------------------------ */

static const char lib[] =
    "function same(a, b, path)\n"
    "  local ta, tb = type(a), type(b)\n"
    "  if ta ~= tb then return false, path .. ': ' .. ta .. ' vs ' .. tb end\n"
    "  if ta == 'number' then\n"
    "    if math.type(a) ~= math.type(b) then\n"
    "      return false, path .. ': subtype ' .. math.type(a) end\n"
    "    if a ~= b or (a == 0 and 1 / a ~= 1 / b) then\n"
    "      return false, path .. ': ' .. a .. ' vs ' .. b end\n"
    "    return true\n"
    "  elseif ta == 'userdata' then\n"
    "    if rawequal(a, b) then return true end\n"
    "    if rawequal(a, json.null) or rawequal(b, json.null) then\n"
    "      return false, path .. ': null vs not' end\n"
    "    if getmetatable(a) ~= getmetatable(b) or\n"
    "       tostring(a) ~= tostring(b) then\n"
    "      return false, path .. ': ' .. tostring(a) .. ' vs ' .. tostring(b)\n"
    "    end\n"
    "    return true\n"
    "  elseif ta ~= 'table' then\n"
    "    if a ~= b then return false, path .. ': value' end\n"
    "    return true\n"
    "  end\n"
    "  if getmetatable(a) ~= getmetatable(b) then\n"
    "    return false, path .. ': marker' end\n"
    "  local n = 0\n"
    "  for k, v in pairs(a) do\n"
    "    n = n + 1\n"
    "    local ok, why = same(v, rawget(b, k), path .. '.' .. tostring(k))\n"
    "    if not ok then return false, why end\n"
    "  end\n"
    "  for _ in pairs(b) do n = n - 1 end\n"
    "  if n ~= 0 then return false, path .. ': member count' end\n"
    "  return true\n"
    "end\n"
    "function check_dec(text)\n"
    "  local a, ea = old_dec(text)\n"
    "  local b, eb = new_dec(text)\n"
    "  if a == nil or b == nil then\n"
    "    if a ~= nil or b ~= nil or ea ~= eb then\n"
    "      return false, string.format('%q: %s | %s', text, tostring(ea),\n"
    "                                  tostring(eb))\n"
    "    end\n"
    "    return true, nil\n"
    "  end\n"
    "  local ok, why = same(a, b, '$')\n"
    "  if not ok then return false, string.format('%q: %s', text, why) end\n"
    "  return true, b\n"
    "end\n"
    "function check_enc(v, what)\n"
    "  local ok1, r1 = pcall(old_enc, v)\n"
    "  local ok2, r2 = pcall(new_enc, v)\n"
    "  if ok1 ~= ok2 or r1 ~= r2 then\n"
    "    return false, string.format('%s: %s %s | %s %s', what or '?',\n"
    "        tostring(ok1), tostring(r1), tostring(ok2), tostring(r2))\n"
    "  end\n"
    "  return true, ok1\n"
    "end\n";

/* Runs chunk (after lib) in a fresh state; it returns true or a message. */
static void run_lua(const char *chunk)
{
    lua_State *L = state();

    if (luaL_dostring(L, lib) != LUA_OK) {
        CHECK(!lua_tostring(L, -1));
    } else if (luaL_dostring(L, chunk) != LUA_OK) {
        fprintf(stderr, "lua error: %s\n", lua_tostring(L, -1));
        CHECK(!"the chunk raised");
    } else if (!lua_isboolean(L, -1) || !lua_toboolean(L, -1)) {
        fprintf(stderr, "mismatch: %s\n", lua_tostring(L, -1));
        CHECK(!"old and new paths differ");
    }
    lua_close(L);
}

/* ---- hand-picked documents -------------------------------------------- */

TEST(decode_corner_cases)
{
    run_lua(
        "local docs = {\n"
        "  '0', '-0', '1', '-1', '42', '0.5', '1.0', '1e3', '1E+3', '1e-07',\n"
        "  '0.1', '9007199254740993', '12345678901234567890', '0.10',\n"
        "  '-9223372036854775808', '9223372036854775807',\n"
        "  '9223372036854775808', '-9223372036854775809', '1e400',\n"
        "  '-1e400', '123456789012345', '1234567890123456', '-0.0', '0e0',\n"
        "  '1.7976931348623157e308', '5e-324', '2.5e-324', '3.14159',\n"
        "  '100000000000000000000000000000000000000000000000000000000000000"
        "00000000000', '1e22', '1e21', '1e15', '1e16', '-123.456e-7',\n"
        "  '01', '1.', '.5', '-', '+1', '1e', '1e+', '--1', '0x10', 'NaN',\n"
        "  'true', 'false', 'null', 'tru', 'nul', 'falsey', 'True', 'nulll',\n"
        "  '\"\"', '\"abc\"', '\"\\\\u0041\"', '\"\\\\ud83d\\\\ude00\"',\n"
        "  '\"\\\\ud83d\"', '\"\\\\ude00\"', '\"\\\\ud83d\\\\u0041\"',\n"
        "  '\"\\\\ud83dx\"', '\"\\\\ud83d\\\\ud83d\\\\ude00\"',\n"
        "  '\"\\\\u0000\"', '\"a\\\\u0000b\"', '\"\\\\uZZZZ\"', '\"\\\\u12\"',\n"
        "  '\"\\\\u12', '\"\\\\x\"', '\"\\\\/\\\\b\\\\f\\\\n\\\\r\\\\t\\\\\"\"',\n"
        "  '\"\\\\', '\"abc', '\"\\195\\169\"', '\"\\255\"', '\"\\195\"',\n"
        "  '\"\\237\\160\\128\"', '\"\\244\\144\\128\\128\"',\n"
        "  '\"\\224\\128\\128\"', '\"a\\1b\"', '\"a\\0b\"', '\"\\127\"',\n"
        "  '\"' .. string.rep('x\\255', 300) .. '\"',\n"
        "  '\"' .. string.rep('\\\\u00e9', 100) .. '\"',\n"
        "  '[]', '{}', '[1,2,3]', '[1,]', '[,1]', '[1 2]', '{\"a\":1,}',\n"
        "  '{\"a\" 1}', '{a:1}', '{\"a\":1,\"a\":2}', '{\"a\":{},\"a\":[]}',\n"
        "  '{\"\":null}', '[null,null]', ' \\t\\n\\r[ 1 , { } ] \\n',\n"
        "  '[1]x', '[1] [2]', '', '   ', '\\f1', '1\\f', '[\"a\"\\0]',\n"
        "  '{\"a\":1', '[1', '{\"a\"', '{\"a\":', '{', '[', ']', '}',\n"
        "  '{\"\\\\u00e9\":1, \"\\195\\169\":2}', '{\"k\\255\":1}',\n"
        "  '{\"1\":1,\"2\":2}', '[[[[]]]]', '{\"a\":[{\"b\":[1,{\"c\":null}]}]}',\n"
        "}\n"
        "for _, d in ipairs(docs) do\n"
        "  local ok, why = check_dec(d)\n"
        "  if not ok then return why end\n"
        "end\n"
        "-- arrays and objects around the 32-member chunk\n"
        "for n = 28, 70 do\n"
        "  local a, o = {}, {}\n"
        "  for i = 1, n do\n"
        "    a[i] = tostring(i % 7 == 0 and i * 1000000000000 or i)\n"
        "    o[i] = string.format('\"k%d\":%d', i % 40, i)\n"
        "  end\n"
        "  for _, d in ipairs({'[' .. table.concat(a, ',') .. ']',\n"
        "                      '{' .. table.concat(o, ',') .. '}'}) do\n"
        "    local ok, why = check_dec(d)\n"
        "    if not ok then return why end\n"
        "  end\n"
        "end\n"
        "-- nesting at and past the limit (128)\n"
        "for _, n in ipairs({127, 128, 129, 200}) do\n"
        "  for _, d in ipairs({string.rep('[', n) .. string.rep(']', n),\n"
        "      string.rep('{\"a\":', n) .. '1' .. string.rep('}', n),\n"
        "      string.rep('[', n)}) do\n"
        "    local ok, why = check_dec(d)\n"
        "    if not ok then return why end\n"
        "  end\n"
        "end\n"
        "return true\n");
}

/* The values themselves, not only old == new: a broken pair must fail. */
TEST(decode_values)
{
    run_lua(
        "local v = new_dec('{\"a\":1,\"b\":1.5,\"c\":\"1.0\",\"a\":3,'\n"
        "  .. '\"d\":[1.0,-0,null,\"\\\\ud83d\\\\ude00\"],\"e\":12345678901234567}')\n"
        "if math.type(v.a) ~= 'integer' or v.a ~= 3 then return 'a' end\n"
        "if math.type(v.b) ~= 'float' then return 'b' end\n"
        "if getmetatable(v.d) == nil or #v.d ~= 4 then return 'array' end\n"
        "if tostring(v.d[1]) ~= '1.0' or tostring(v.d[2]) ~= '-0' then\n"
        "  return 'bignums' end\n"
        "if v.d[3] ~= json.null then return 'null' end\n"
        "if v.d[4] ~= '\\240\\159\\152\\128' then return 'surrogates' end\n"
        "if math.type(v.e) ~= 'integer' or v.e ~= 12345678901234567 then\n"
        "  return 'int64' end\n"
        "local x, err = new_dec('[1,]')\n"
        "if x ~= nil or err ~= 'invalid JSON at byte 3: unexpected character'\n"
        "  then return 'error text: ' .. tostring(err) end\n"
        "local s = json.decode('\"' .. string.rep('\\\\u00e9', 200) .. '\"')\n"
        "if s ~= string.rep('\\195\\169', 200) then return 'long escape' end\n"
        "return true\n");
}

TEST(encode_corner_cases)
{
    run_lua(
        "local self = {}; self.me = self\n"
        "local deep = function(n) local t = {} local c = t\n"
        "  for i = 1, n do c.x = {} c = c.x end return t end\n"
        "local cases = {\n"
        "  {}, {1, 2, 3}, {1, nil, 3}, {[2] = 1}, {[0] = 1, 2}, {a = 1, 1},\n"
        "  json.array({}), json.object({}), json.array({1, 2, x = 3}),\n"
        "  json.object({1, 2}), {json.null, n = json.null}, {nil},\n"
        "  {[1] = 'int', ['1'] = 'str'}, {[1.5] = 'f', [2^60] = 'big'},\n"
        "  {[1e300] = 1, [-0.0] = 2, [0.1] = 3},\n"
        "  {b = 1, a = 2, c = {z = 1, y = {x = 1, w = 2}}},\n"
        "  {['a\\0b'] = 1}, {'a\\0b'}, {[true] = 1}, {[{}] = 1},\n"
        "  {0.1 + 0.2, -0.0, 1e300, 1e15, 1e16, 2^53, 123456789012345.6,\n"
        "   5e-324, 1/3, -1/3, 2147483647, 2147483648, -2147483648,\n"
        "   -2147483649, math.maxinteger, math.mininteger, 3.0, -2^63},\n"
        "  {0/0}, {1/0}, {-1/0}, {print}, {coroutine.create(print)},\n"
        "  {json.number('1.0'), json.number('12345678901234567890'),\n"
        "   json.number('-0')},\n"
        "  {'\"\\\\\\b\\f\\n\\r\\t\\1\\31\\127\\195\\169\\255'},\n"
        "  self, deep(126), deep(127), deep(128), deep(200),\n"
        "  {a = print, b = 0/0}, {x = {y = {z = {print}}}},\n"
        "  'plain', 42, 1.5, true, json.null, 0/0, print,\n"
        "}\n"
        "local big = {}\n"
        "for i = 1, 3000 do big['k' .. (i * 7919 % 3001)] = i end\n"
        "cases[#cases + 1] = big\n"
        "for i, v in ipairs(cases) do\n"
        "  local ok, why = check_enc(v, 'case ' .. i)\n"
        "  if not ok then return why end\n"
        "end\n"
        "local ok, why = check_enc(nil, 'nil')\n"
        "if not ok then return why end\n"
        "if new_enc({b = {1, 2}, a = json.null, c = json.array({})}) ~=\n"
        "   '{\"a\":null,\"b\":[1,2],\"c\":[]}' then return 'bytes' end\n"
        "if json.encode({x = 2^40, y = 0.5}) ~= '{\"x\":1099511627776,\"y\":0.5}'\n"
        "  then return 'coffer.json.encode' end\n"
        "return true\n");
}

/* ---- random documents and values --------------------------------------- */

static const char random_lib[] =
    "local R = math.random\n"
    "local function pick(t) return t[R(#t)] end\n"
    "local nums = {'0','-0','1','-1','0.5','1.0','1e3','1e-07','0.1',\n"
    "  '9007199254740993','12345678901234567890','9223372036854775808',\n"
    "  '1e400','-0.0','01','1.','-','1e','0.10','2.5e-324','1E+2'}\n"
    "local strs = {'a','\\\\u0041','\\\\ud83d\\\\ude00','\\\\ud83d',\n"
    "  '\\\\ude00','\\\\u0000','\\\\uZZ','\\\\n','\\\\x','\\195\\169','\\255',\n"
    "  '\\237\\160\\128','\\1','\\0','\\127','\\\\\"','\\\\/','xyz'}\n"
    "local ws = {'', '', '', ' ', '\\n', '\\t', '\\r', '\\f'}\n"
    "local function rnum()\n"
    "  if R(3) == 1 then return pick(nums) end\n"
    "  local s = R(4) == 1 and '-' or ''\n"
    "  s = s .. (R(4) == 1 and '0' or tostring(R(1, 9)))\n"
    "  for _ = 1, R(0, R(2) == 1 and 3 or 22) do s = s .. R(0, 9) end\n"
    "  if R(3) == 1 then s = s .. '.' .. R(0, 999999) end\n"
    "  if R(4) == 1 then s = s .. pick({'e','E','e+','e-'}) .. R(0, 400) end\n"
    "  return s\n"
    "end\n"
    "local function rstr()\n"
    "  local t = {}\n"
    "  for i = 1, R(0, R(30) == 1 and 120 or 5) do t[i] = pick(strs) end\n"
    "  return '\"' .. table.concat(t) .. '\"'\n"
    "end\n"
    "local keys = {'\"a\"','\"b\"','\"c\"','\"\"','\"\\\\u0061\"','\"k\\255\"'}\n"
    "function rdoc(d)\n"
    "  local c = R(d > 4 and 4 or 6)\n"
    "  local w = pick(ws)\n"
    "  if c == 1 then return w .. rnum() end\n"
    "  if c == 2 then return w .. rstr() end\n"
    "  if c == 3 then return w .. pick({'true','false','null'}) end\n"
    "  if c == 4 then return w .. pick({'[]','{}','[ ]','{ }'}) end\n"
    "  local n, t = R(0, (d < 2 and R(8) == 1) and 70 or 4), {}\n"
    "  for i = 1, n do\n"
    "    if c == 5 then t[i] = rdoc(d + 1)\n"
    "    else t[i] = pick(ws) .. (R(2) == 1 and pick(keys) or rstr()) ..\n"
    "      pick(ws) .. ':' .. rdoc(d + 1) end\n"
    "  end\n"
    "  local o, e = c == 5 and '[' or '{', c == 5 and ']' or '}'\n"
    "  return w .. o .. table.concat(t, ',') .. pick(ws) .. e\n"
    "end\n"
    "local noise = {'', ',', ']', '}', '\"', ':', '\\\\', '0', '-', 'e',\n"
    "  ' ', '\\0', '[', '{', 'n', '.'}\n"
    "function mutate(s)\n"
    "  local c, i = R(5), R(0, #s)\n"
    "  if c == 1 then return s:sub(1, i) end\n"
    "  if c == 2 then return s:sub(1, i) .. s:sub(i + 2) end\n"
    "  if c == 3 then return s:sub(1, i) .. pick(noise) .. s:sub(i + 1) end\n"
    "  if c == 4 then return s .. pick(noise) end\n"
    "  return s:sub(1, i) .. pick(noise) .. s:sub(i + 2)\n"
    "end\n"
    "local function rkey()\n"
    "  local c = R(12)\n"
    "  if c == 1 then return R(-3, 40) end\n"
    "  if c == 2 then return pick({1.5, -0.25, 2^60, 1e300, 0.1}) end\n"
    "  if c == 3 then return pick({'1', '2', '', 'a\\0', '\\255'}) end\n"
    "  if c == 4 and R(20) == 1 then return true end\n"
    "  return pick({'a','b','c','aa','B','_','x y','\\195\\169'})\n"
    "end\n"
    "function rval(d)\n"
    "  local c = R(d > 4 and 7 or 11)\n"
    "  if c == 1 then return R(-1000000, 1000000) end\n"
    "  if c == 2 then return pick({2^31, -2^31 - 1, 2147483647,\n"
    "    2147483648, math.maxinteger - R(0, 3), math.mininteger, 0, -1}) end\n"
    "  if c == 3 then\n"
    "    if R(60) == 1 then return pick({0/0, 1/0, -1/0}) end\n"
    "    return pick({R() * 10 ^ R(-30, 30), 0.1 + 0.2, -0.0, 1e15, 1e16,\n"
    "      123456789012345.6, 2.0^53, -2.0^63, 1/3, 5e-324, 3.0}) end\n"
    "  if c == 4 then\n"
    "    local t = {}\n"
    "    for i = 1, R(0, 6) do t[i] = pick({'a', '\"', '\\\\', '\\1',\n"
    "      '\\n', '\\195\\169', '\\255', '\\127', '/', R(60) == 1 and '\\0'\n"
    "      or 'z'}) end\n"
    "    return table.concat(t) end\n"
    "  if c == 5 then return R(2) == 1 end\n"
    "  if c == 6 then\n"
    "    if R(40) == 1 then return print end\n"
    "    return pick({json.null, json.number('1.0'), json.number('-0'),\n"
    "      json.number('1e400')}) end\n"
    "  if c == 7 then return pick({{}, json.array({}), json.object({})}) end\n"
    "  local t = {}\n"
    "  if c == 8 then\n"
    "    for i = 1, R(0, d < 2 and 40 or 4) do t[i] = rval(d + 1) end\n"
    "  elseif c == 9 then for _ = 1, R(0, 8) do t[rkey()] = rval(d + 1) end\n"
    "  elseif c == 10 then\n"
    "    for i = 1, R(0, 5) do t[i] = rval(d + 1) end\n"
    "    if R(3) == 1 then t[R(1, 8)] = nil end\n"
    "    if R(3) == 1 then t[R(0, 9)] = rval(d + 1) end\n"
    "  else\n"
    "    for _ = 1, R(0, 6) do t[pick({'a','b','c','d','e','f','g'})] =\n"
    "      rval(d + 1) end\n"
    "  end\n"
    "  if R(8) == 1 then setmetatable(t, getmetatable(json.array({}))) end\n"
    "  if R(8) == 1 then setmetatable(t, getmetatable(json.object({}))) end\n"
    "  return t\n"
    "end\n";

TEST(random_documents)
{
    char chunk[sizeof(random_lib) + 1024];

    snprintf(chunk, sizeof(chunk), "%s%s", random_lib,
             "math.randomseed(14)\n"
             "local valid, invalid = 0, 0\n"
             "for i = 1, 20000 do\n"
             "  local d = rdoc(0)\n"
             "  if i % 3 == 0 then d = mutate(d) end\n"
             "  local ok, v = check_dec(d)\n"
             "  if not ok then return v end\n"
             "  if v == nil then invalid = invalid + 1 else\n"
             "    valid = valid + 1\n"
             "    local ok2, why = check_enc(v, d)\n"
             "    if not ok2 then return why end\n"
             "  end\n"
             "end\n"
             "if valid < 5000 or invalid < 2000 then\n"
             "  return 'too few of one kind: ' .. valid .. '/' .. invalid end\n"
             "return true\n");
    run_lua(chunk);
}

TEST(random_values)
{
    char chunk[sizeof(random_lib) + 1024];

    snprintf(chunk, sizeof(chunk), "%s%s", random_lib,
             "math.randomseed(1414)\n"
             "local good, bad = 0, 0\n"
             "for i = 1, 20000 do\n"
             "  local ok, encoded = check_enc(rval(0), 'value ' .. i)\n"
             "  if not ok then return encoded end\n"
             "  if encoded then good = good + 1 else bad = bad + 1 end\n"
             "end\n"
             "if good < 5000 or bad < 500 then\n"
             "  return 'too few of one kind: ' .. good .. '/' .. bad end\n"
             "return true\n");
    run_lua(chunk);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(decode_corner_cases);
    RUN(decode_values);
    RUN(encode_corner_cases);
    RUN(random_documents);
    RUN(random_values);
    return HARNESS_DONE();
}
