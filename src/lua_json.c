/*
 * lua_json.c - the JSON bridge: Lua values <-> cJSON trees, and the
 * coffer.json table.
 *
 * Owns the conversion rules of lua_json.h (null, array and object
 * markers, exact big numbers as coffer.json.number), the resource box
 * every C function of the `coffer` module holds its C resources in, and
 * the Lua-callable coffer.json.* functions but decode and encode (those
 * go through lua_json_text.c, which is held to the tree paths here).
 * Does not own the rest of the `coffer` module (lua_api.c) nor JSON text
 * parsing (json.c).
 *
 * Functions here follow the same rules as lua_api.c (STYLE 3.4): check
 * arguments first, hold C resources only inside a box so a raise frees
 * them, and document stack effects as [-o, +p, x].
 */
#include "lua_json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "crypto.h"
#include "json.h"

/* Registry keys: the addresses of these statics (OpenResty init_registry). */
static char key_array_mt;
static char key_object_mt;
static char key_null;

#define BOX_MT "coffer.cbox"
#define NULL_MT "coffer.json.null"
#define NUMBER_MT "coffer.json.number"


/* ======================================================= resource box == */

void lua_json_box_release(struct lua_json_box *box)
{
    json_delete_wiped(box->json); /* values may be secrets */
    box->json = NULL;
    if (box->text != NULL) {
        crypto_wipe(box->text, box->text_len);
        cJSON_free(box->text);
        box->text = NULL;
        box->text_len = 0;
    }
    buf_release(&box->b);
    strvec_release(&box->sv);
}

/* __gc and __close of a box. [-0, +0, -] */
static int l_box_gc(lua_State *L)
{
    struct lua_json_box *box = luaL_checkudata(L, 1, BOX_MT);

    lua_json_box_release(box);
    return 0;
}

/* Pushes a new empty box. [-0, +1, m] */
struct lua_json_box *lua_json_box_new(lua_State *L)
{
    struct lua_json_box *box = lua_newuserdatauv(L, sizeof(*box), 0);

    memset(box, 0, sizeof(*box));
    buf_init(&box->b, 0);
    strvec_init(&box->sv);
    luaL_setmetatable(L, BOX_MT);
    return box;
}

/* =============================================================== JSON == */

bool lua_json_is_null(lua_State *L, int idx)
{
    bool yes;

    if (lua_type(L, idx) != LUA_TUSERDATA)
        return false;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_null);
    yes = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return yes;
}

/* True if the value at idx has the metatable stored under key. [-0,+0,-] */
bool lua_json_has_marker(lua_State *L, int idx, const void *key)
{
    bool yes;

    if (!lua_getmetatable(L, idx))
        return false;
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

/* Links item under parent (or makes it the box's root). [-0, +0, e] */
static cJSON *json_attach(lua_State *L, struct lua_json_box *box,
                          cJSON *parent, const char *key, cJSON *item)
{
    if (item == NULL)
        luaL_error(L, "not enough memory");
    if (parent == NULL) {
        box->json = item;
    } else if (key == NULL) {
        if (!cJSON_AddItemToArray(parent, item)) {
            cJSON_Delete(item);
            luaL_error(L, "not enough memory");
        }
    } else if (!cJSON_AddItemToObject(parent, key, item)) {
        cJSON_Delete(item);
        luaL_error(L, "not enough memory");
    }
    return item;
}

/*
 * Integers within 32 bits are ordinary cJSON numbers; larger ones become
 * raw digits, because cJSON would print them through %g and lose digits.
 * [-0, +0, e]
 */
static cJSON *json_number(lua_State *L, int idx)
{
    char digits[32];
    lua_Integer i;
    lua_Number d;

    if (lua_isinteger(L, idx)) {
        i = lua_tointeger(L, idx);
        if (i >= INT_MIN && i <= INT_MAX)
            return cJSON_CreateNumber((double)i);
        snprintf(digits, sizeof(digits), LUA_INTEGER_FMT, i);
        return cJSON_CreateRaw(digits);
    }
    d = lua_tonumber(L, idx);
    if (!isfinite(d))
        luaL_error(L, "cannot encode a non-finite number as JSON");
    return cJSON_CreateNumber(d);
}

/* Decides array or object for the table at idx (see lua_api.h). */
bool lua_json__table_is_array(lua_State *L, int idx, lua_Integer *n)
{
    lua_Integer count = 0, len;
    bool seq = true;

    *n = 0;
    if (lua_json_has_marker(L, idx, &key_array_mt)) {
        *n = (lua_Integer)lua_rawlen(L, idx);
        return true;
    }
    if (lua_json_has_marker(L, idx, &key_object_mt))
        return false;
    len = (lua_Integer)lua_rawlen(L, idx);
    if (len == 0)
        return false;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        count++;
        if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 ||
            lua_tointeger(L, -2) > len)
            seq = false;
        lua_pop(L, 1);
    }
    *n = len;
    return seq && count == len;
}

static int json_cmp_keys(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a;
    const cJSON *y = *(const cJSON *const *)b;

    return strcmp(x->string, y->string);
}

/* Sorts an object's members by key, as Go's encoder emits them. */
static void json_sort_object(cJSON *obj)
{
    cJSON **v, *c;
    size_t n = 0, i;

    for (c = obj->child; c != NULL; c = c->next)
        n++;
    if (n < 2)
        return;
    v = xcalloc(n, sizeof(*v));
    for (i = 0, c = obj->child; c != NULL; c = c->next)
        v[i++] = c;
    qsort(v, n, sizeof(*v), json_cmp_keys);
    obj->child = v[0];
    for (i = 0; i < n; i++) {
        v[i]->prev = i == 0 ? v[n - 1] : v[i - 1]; /* cJSON: head->prev = tail */
        v[i]->next = i + 1 < n ? v[i + 1] : NULL;
    }
    free(v);
}

static void to_json_value(lua_State *L, int idx, int depth,
                          struct lua_json_box *box, cJSON *parent,
                          const char *key);

/* Key of the pair at -2 as a C string in kbuf or the Lua string. */
static const char *json_object_key(lua_State *L, char *kbuf, size_t n)
{
    size_t len;
    const char *k;

    if (lua_type(L, -2) == LUA_TSTRING) {
        k = lua_tolstring(L, -2, &len);
        if (strlen(k) != len)
            luaL_error(L, "cannot encode a JSON key containing a NUL byte");
        return k;
    }
    if (lua_isinteger(L, -2)) {
        snprintf(kbuf, n, LUA_INTEGER_FMT, lua_tointeger(L, -2));
        return kbuf;
    }
    if (lua_type(L, -2) == LUA_TNUMBER) {
        snprintf(kbuf, n, "%.14g", lua_tonumber(L, -2));
        return kbuf;
    }
    luaL_error(L, "cannot encode a table key of type %s as JSON",
               luaL_typename(L, -2));
    return NULL;
}

/* [-0, +0, e] */
static void to_json_table(lua_State *L, int idx, int depth,
                          struct lua_json_box *box, cJSON *parent,
                          const char *key)
{
    char kbuf[64];
    lua_Integer n, i;
    cJSON *item;

    if (depth >= LUA_JSON_MAX_DEPTH)
        luaL_error(L, "cannot encode JSON nested deeper than %d levels "
                      "(or a table that contains itself)",
                   LUA_JSON_MAX_DEPTH);
    luaL_checkstack(L, 4, "JSON nesting");
    if (lua_json__table_is_array(L, idx, &n)) {
        item = json_attach(L, box, parent, key, cJSON_CreateArray());
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            to_json_value(L, lua_gettop(L), depth + 1, box, item, NULL);
            lua_pop(L, 1);
        }
        return;
    }
    item = json_attach(L, box, parent, key, cJSON_CreateObject());
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        to_json_value(L, lua_gettop(L), depth + 1, box, item,
                      json_object_key(L, kbuf, sizeof(kbuf)));
        lua_pop(L, 1);
    }
    json_sort_object(item);
}

/* Converts the value at absolute index idx. [-0, +0, e] */
static void to_json_value(lua_State *L, int idx, int depth,
                          struct lua_json_box *box, cJSON *parent,
                          const char *key)
{
    const char *s;
    size_t len;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        json_attach(L, box, parent, key, cJSON_CreateNull());
        break;
    case LUA_TBOOLEAN:
        json_attach(L, box, parent, key,
                    cJSON_CreateBool(lua_toboolean(L, idx)));
        break;
    case LUA_TNUMBER:
        json_attach(L, box, parent, key, json_number(L, idx));
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len)
            luaL_error(L, "cannot encode a string containing a NUL byte");
        json_attach(L, box, parent, key, cJSON_CreateString(s));
        break;
    case LUA_TTABLE:
        to_json_table(L, idx, depth, box, parent, key);
        break;
    default:
        s = luaL_testudata(L, idx, NUMBER_MT);
        if (s != NULL) {
            /* a checked literal: printed verbatim */
            json_attach(L, box, parent, key, cJSON_CreateRaw(s));
            break;
        }
        if (!lua_json_is_null(L, idx))
            luaL_error(L, "cannot encode a %s value as JSON",
                       luaL_typename(L, idx));
        json_attach(L, box, parent, key, cJSON_CreateNull());
        break;
    }
}

void lua_json_to(lua_State *L, int idx, cJSON **out)
{
    struct lua_json_box *box;

    idx = lua_absindex(L, idx);
    box = lua_json_box_new(L);
    to_json_value(L, idx, 0, box, NULL, NULL);
    *out = box->json;
    box->json = NULL;
    lua_pop(L, 1);
}

const char *lua_json__bignum(lua_State *L, int idx)
{
    return luaL_testudata(L, idx, NUMBER_MT);
}

void lua_json__push_null(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_null);
}

void lua_json_encode(lua_State *L, int idx, struct lua_json_box *box)
{
    idx = lua_absindex(L, idx);
    to_json_value(L, idx, 0, box, NULL, NULL);
    box->text = cJSON_PrintUnformatted(box->json);
    if (box->text == NULL)
        luaL_error(L, "not enough memory");
    box->text_len = strlen(box->text);
}

void lua_json_mark_array(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_array_mt);
    lua_setmetatable(L, idx);
}

/* Integral numbers within int64 stay integers. [-0, +1, -] */
static void push_json_number(lua_State *L, double d)
{
    if (d == floor(d) && d >= -9223372036854775808.0 &&
        d < 9223372036854775808.0)
        lua_pushinteger(L, (lua_Integer)d);
    else
        lua_pushnumber(L, d);
}

/* Pushes a new coffer.json.number holding lit[0..len). [-0, +1, m] */
static void push_json_bignum(lua_State *L, const char *lit, size_t len)
{
    char *p = lua_newuserdatauv(L, len + 1, 0);

    memcpy(p, lit, len);
    p[len] = '\0';
    luaL_setmetatable(L, NUMBER_MT);
}

/*
 * Pushes the valid, NUL-terminated number literal lit as the most
 * ordinary Lua value that gives the same literal back (lua_api.h): an
 * exact double as push_json_number does, a plain integer within int64
 * as an integer, anything else as a coffer.json.number. [-0, +1, m]
 */
static void push_json_literal(lua_State *L, const char *lit, size_t len)
{
    double d;
    int64_t v;

    if (json_number_exact(lit, len, &d))
        push_json_number(L, d);
    else if (strpbrk(lit, ".eE") == NULL && strcmp(lit, "-0") != 0 &&
             int64_parse(lit, &v) == 0)
        lua_pushinteger(L, (lua_Integer)v);
    else
        push_json_bignum(L, lit, len);
}

void lua_json__push_literal(lua_State *L, const char *lit, size_t len)
{
    char text[64];

    /* json_number_exact and int64_parse refuse anything this long */
    if (len >= sizeof(text)) {
        push_json_bignum(L, lit, len);
        return;
    }
    memcpy(text, lit, len);
    text[len] = '\0';
    push_json_literal(L, text, len);
}

/*
 * Raw items are number literals, from json_parse or from our own encoder.
 * Anything else (nothing makes one today) is passed on as text.
 */
static void push_json_raw(lua_State *L, const char *raw)
{
    size_t len = strlen(raw);

    if (json_number_literal(raw, len))
        push_json_literal(L, raw, len);
    else
        lua_pushstring(L, raw);
}

static void push_json_value(lua_State *L, const cJSON *item, int depth);

/* [-0, +1, e] */
static void push_json_container(lua_State *L, const cJSON *item, int depth)
{
    const cJSON *c;
    int n = cJSON_GetArraySize(item);
    lua_Integer i = 1;

    if (depth >= LUA_JSON_MAX_DEPTH)
        luaL_error(L, "JSON nested deeper than %d levels",
                   LUA_JSON_MAX_DEPTH);
    luaL_checkstack(L, 4, "JSON nesting");
    if (cJSON_IsArray(item)) {
        lua_createtable(L, n, 0);
        for (c = item->child; c != NULL; c = c->next) {
            push_json_value(L, c, depth + 1);
            lua_rawseti(L, -2, i++);
        }
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_array_mt);
        lua_setmetatable(L, -2);
        return;
    }
    lua_createtable(L, 0, n);
    for (c = item->child; c != NULL; c = c->next) {
        lua_pushstring(L, c->string);
        push_json_value(L, c, depth + 1);
        lua_rawset(L, -3);
    }
}

static void push_json_value(lua_State *L, const cJSON *item, int depth)
{
    if (item == NULL || cJSON_IsNull(item) || cJSON_IsInvalid(item))
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_null);
    else if (cJSON_IsBool(item))
        lua_pushboolean(L, cJSON_IsTrue(item));
    else if (cJSON_IsNumber(item))
        push_json_number(L, item->valuedouble);
    else if (cJSON_IsString(item))
        lua_pushstring(L, item->valuestring);
    else if (cJSON_IsRaw(item))
        push_json_raw(L, item->valuestring);
    else
        push_json_container(L, item, depth);
}

void lua_json_push(lua_State *L, const cJSON *item)
{
    push_json_value(L, item, 0);
}

/* Shared by array() and object(): marks (or creates) a table. */
static int json_mark(lua_State *L, const void *key)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (lua_getmetatable(L, 1)) {
            if (!lua_json_has_marker(L, 1, &key_array_mt) &&
                !lua_json_has_marker(L, 1, &key_object_mt))
                return luaL_argerror(L, 1, "table already has a metatable");
            lua_pop(L, 1);
        }
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    lua_setmetatable(L, 1);
    return 1;
}

/* coffer.json.array([t]) -> t, encoded as a JSON array even when empty. */
static int l_json_array(lua_State *L)
{
    return json_mark(L, &key_array_mt);
}

/* coffer.json.object([t]) -> t, encoded as a JSON object. */
static int l_json_object(lua_State *L)
{
    return json_mark(L, &key_object_mt);
}

/* coffer.json.is_array(t) -> boolean. [-1, +1, -] */
static int l_json_is_array(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE &&
                           lua_json_has_marker(L, 1, &key_array_mt));
    return 1;
}

static int l_null_tostring(lua_State *L)
{
    lua_pushliteral(L, "null");
    return 1;
}

/*
 * coffer.json.number(v) -> the value json.decode would give for the
 * literal v (integer, float or coffer.json.number), or fail (nil) when
 * the string v is not one JSON number literal. Numbers and
 * coffer.json.number values come back unchanged. [-1, +1, m]
 */
static int l_json_number(lua_State *L)
{
    size_t len;
    const char *s;

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    if (lua_type(L, 1) == LUA_TNUMBER || luaL_testudata(L, 1, NUMBER_MT))
        return 1;
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_typeerror(L, 1, "string or number");
    s = lua_tolstring(L, 1, &len);
    if (!json_number_literal(s, len)) {
        luaL_pushfail(L);
        return 1;
    }
    push_json_literal(L, s, len);
    return 1;
}

/*
 * coffer.json.tonumber(v) -> tonumber(v), except that a
 * coffer.json.number becomes the nearest Lua number (an integer when
 * Lua reads its literal as one, else a float, possibly inf): the way to
 * do arithmetic on one, accepting the rounding. [-1, +1, m]
 */
static int l_json_tonumber(lua_State *L)
{
    const char *lit;

    luaL_checkany(L, 1);
    lit = luaL_testudata(L, 1, NUMBER_MT);
    if (lit != NULL && lua_stringtonumber(L, lit) != 0)
        return 1;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_settop(L, 1);
        return 1;
    }
    if (lua_type(L, 1) == LUA_TSTRING &&
        lua_stringtonumber(L, lua_tostring(L, 1)) != 0)
        return 1;
    luaL_pushfail(L);
    return 1;
}

/* coffer.json.is_number(v) -> true for numbers and coffer.json.number. */
static int l_json_is_number(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, lua_type(L, 1) == LUA_TNUMBER ||
                           luaL_testudata(L, 1, NUMBER_MT) != NULL);
    return 1;
}

/* __tostring of coffer.json.number: the literal. [-0, +1, m] */
static int l_number_tostring(lua_State *L)
{
    lua_pushstring(L, luaL_checkudata(L, 1, NUMBER_MT));
    return 1;
}

/* __concat: as for numbers, either side may be a string or a number. */
static int l_number_concat(lua_State *L)
{
    const char *lit;
    int i;

    for (i = 1; i <= 2; i++) {
        lit = luaL_testudata(L, i, NUMBER_MT);
        if (lit != NULL) {
            lua_pushstring(L, lit);
        } else if (lua_type(L, i) == LUA_TNUMBER ||
                   lua_type(L, i) == LUA_TSTRING) {
            lua_pushvalue(L, i);
            lua_tostring(L, -1);
        } else {
            return luaL_error(L, "attempt to concatenate a %s value",
                              luaL_typename(L, i));
        }
    }
    lua_concat(L, 2);
    return 1;
}

/* Arithmetic metamethods: refuse with a pointer to the explicit way. */
static int l_number_arith(lua_State *L)
{
    return luaL_error(L, "attempt to perform arithmetic on a "
                         "coffer.json.number (use coffer.json.tonumber)");
}

/*
 * The operand at i as a JSON number literal in buf (exact: a float is
 * expanded to every digit it has). Returns NULL for NaN and raises for
 * a value that is not a number. [-0, +0, v]
 */
static const char *order_operand(lua_State *L, int i, char *buf, size_t n,
                                 size_t *len)
{
    const char *lit = luaL_testudata(L, i, NUMBER_MT);
    lua_Number d;

    if (lit != NULL) {
        *len = lua_rawlen(L, i) - 1;
        return lit;
    }
    if (lua_isinteger(L, i)) {
        *len = (size_t)snprintf(buf, n, LUA_INTEGER_FMT, lua_tointeger(L, i));
        return buf;
    }
    if (lua_type(L, i) != LUA_TNUMBER)
        luaL_error(L, "attempt to compare %s with %s", luaL_typename(L, 1),
                   luaL_typename(L, 2));
    d = lua_tonumber(L, i);
    if (isnan(d))
        return NULL;
    if (isinf(d)) {
        /* beyond any literal, which is finite however long it is */
        *len = (size_t)snprintf(buf, n, "%s", d > 0 ? "1e999999999999999999"
                                                    : "-1e999999999999999999");
        return buf;
    }
    /* 767 significant digits hold any double exactly (glibc prints all) */
    *len = (size_t)snprintf(buf, n, "%.766e", (double)d);
    return buf;
}

/* Compares operands 1 and 2 exactly; false if either is NaN. [-0,+0,v] */
static bool number_order(lua_State *L, int *cmp)
{
    char a[800], b[800];
    const char *x, *y;
    size_t xl = 0, yl = 0;

    x = order_operand(L, 1, a, sizeof(a), &xl);
    y = order_operand(L, 2, b, sizeof(b), &yl);
    if (x == NULL || y == NULL)
        return false;
    *cmp = json_number_cmp(x, xl, y, yl);
    return true;
}

static int l_number_lt(lua_State *L)
{
    int cmp = 0;

    lua_pushboolean(L, number_order(L, &cmp) && cmp < 0);
    return 1;
}

static int l_number_le(lua_State *L)
{
    int cmp = 0;

    lua_pushboolean(L, number_order(L, &cmp) && cmp <= 0);
    return 1;
}

/* __eq: Lua calls it only for two userdata; equal by value ("1.0" == "1e0"). */
static int l_number_eq(lua_State *L)
{
    const char *x = luaL_testudata(L, 1, NUMBER_MT);
    const char *y = luaL_testudata(L, 2, NUMBER_MT);

    lua_pushboolean(L, x != NULL && y != NULL &&
                           json_number_cmp(x, lua_rawlen(L, 1) - 1, y,
                                           lua_rawlen(L, 2) - 1) == 0);
    return 1;
}

/* Creates the coffer.json.number metatable. [-0, +0, m] */
static void open_json_number(lua_State *L)
{
    static const luaL_Reg meta[] = {
        {"__tostring", l_number_tostring}, {"__concat", l_number_concat},
        {"__eq", l_number_eq},             {"__lt", l_number_lt},
        {"__le", l_number_le},             {"__add", l_number_arith},
        {"__sub", l_number_arith},         {"__mul", l_number_arith},
        {"__div", l_number_arith},         {"__mod", l_number_arith},
        {"__pow", l_number_arith},         {"__unm", l_number_arith},
        {"__idiv", l_number_arith},        {NULL, NULL},
    };

    luaL_newmetatable(L, NUMBER_MT);
    luaL_setfuncs(L, meta, 0);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

/* =============================================================== open == */

static const luaL_Reg json_funcs[] = {
    {"array", l_json_array},     {"object", l_json_object},
    {"is_array", l_json_is_array}, {"number", l_json_number},
    {"tonumber", l_json_tonumber}, {"is_number", l_json_is_number},
    {NULL, NULL},
};

void lua_json_open(lua_State *L)
{
    luaL_newmetatable(L, BOX_MT);
    lua_pushcfunction(L, l_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_box_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    luaL_newmetatable(L, "coffer.json.array");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_array_mt);
    luaL_newmetatable(L, "coffer.json.object");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_object_mt);

    lua_newuserdatauv(L, 0, 0);
    luaL_newmetatable(L, NULL_MT);
    lua_pushcfunction(L, l_null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_null);

    open_json_number(L);

    luaL_newlib(L, json_funcs); /* decode, encode: lua_json_text_open */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_null);
    lua_setfield(L, -2, "null");
}
