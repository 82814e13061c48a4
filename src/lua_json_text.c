/*
 * lua_json_text.c - JSON text <-> Lua values in one pass (lua_json_text.h).
 *
 * Why: a KV read used to parse the stored text into a cJSON tree, copy
 * the tree into Lua tables, turn the reply back into a tree and print it:
 * four passes and an allocation per value each way. Here the decoder
 * pushes values as it reads them and the writer prints tables as it
 * walks them.
 *
 * Both halves are copies of behaviour defined elsewhere, on purpose: the
 * decoder repeats json.c's grammar, error texts and byte offsets (json.c
 * keeps them static; keep the two in step), the writer repeats
 * lua_json.c's conversion rules. Refusals the writer meets are not
 * reported here: it gives up and the tree path runs again to raise the
 * very error it always raised, so error texts cannot drift.
 *
 * Chapters: decoding (strings, numbers, containers, entry point);
 * writing (scalars, tables, entry point).
 */
#include "lua_json_text.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "crypto.h"
#include "json.h"
#include "lua_json.h"
#include "util.h"

/* ========================================================== decoding == */

struct dec {
    lua_State *L;
    const char *start;
    const char *p;
    const char *end;
    int max_depth;
    struct errbuf *err;
    bool failed;
};

/* Values collected on the stack before their table is made (exact size). */
#define DEC_CHUNK 32

/* Escaped strings up to this size are decoded on the C stack. */
#define DEC_SMALL 256

static void fail_at(struct dec *d, const char *at, const char *why)
{
    if (d->failed)
        return;
    d->failed = true;
    if (d->err != NULL)
        errbuf_set(d->err, "invalid JSON at byte %zu: %s",
                   (size_t)(at - d->start), why);
}

static void skip_space(struct dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' ||
                             *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

/* ---- strings ---------------------------------------------------------- */

/* json.c's decoder at d->p; a failure fails the decoder. */
static size_t decode_string(struct dec *d, char *out, const char **stop)
{
    const char *why = NULL;
    size_t n = json_decode_string(d->p, d->end, out, stop, &why);

    if (n == SIZE_MAX)
        fail_at(d, *stop, why);
    return n;
}

/* Bytes a string can hold as they are: printable ASCII but '"' and '\\'. */
static const bool plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/*
 * Pushes the string at d->p (on the opening quote). Plain ASCII without
 * escapes, the usual case, goes straight from the text; anything else is
 * decoded into a scratch copy that is wiped once Lua has its own.
 */
static bool push_string(struct dec *d)
{
    lua_State *L = d->L;
    const char *s = ++d->p, *p = s, *stop = NULL;
    char small[DEC_SMALL], *out;
    size_t n;

    while (p < d->end && plain[(unsigned char)*p])
        p++;
    if (p < d->end && *p == '"') {
        lua_pushlstring(L, s, (size_t)(p - s));
        d->p = p + 1;
        return true;
    }
    n = decode_string(d, NULL, &stop);
    if (n == SIZE_MAX)
        return false;
    out = n <= sizeof(small) ? small : lua_newuserdatauv(L, n, 0);
    decode_string(d, out, &stop);
    lua_pushlstring(L, out, n);
    crypto_wipe(out, n);
    if (out != small)
        lua_remove(L, -2);
    d->p = stop + 1;
    return true;
}

/* ---- numbers and words ---------------------------------------------- */


/*
 * A plain integer literal of at most 15 digits: what json_number_exact
 * accepts first and push_json_number turns into an integer, without the
 * round trip through a double. Anything else takes the general path.
 */
static bool push_small_integer(lua_State *L, const char *s, size_t len)
{
    size_t i = s[0] == '-' ? 1 : 0, digits = len - i;
    lua_Integer v = 0;

    if (digits == 0 || digits > 15 || (s[i] == '0' && (digits > 1 || i)))
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    lua_pushinteger(L, s[0] == '-' ? -v : v);
    return true;
}

static bool push_number(struct dec *d)
{
    size_t n = json_scan_number(d->p, d->end);

    if (n == 0) {
        fail_at(d, d->p, "unexpected character");
        return false;
    }
    if (!push_small_integer(d->L, d->p, n))
        lua_json__push_literal(d->L, d->p, n);
    d->p += n;
    return true;
}

/* true, false, null (json.c's parse_word: every word is tried). */
static bool push_word(struct dec *d)
{
    size_t left = (size_t)(d->end - d->p);

    if (left >= 4 && memcmp(d->p, "true", 4) == 0) {
        lua_pushboolean(d->L, 1);
        d->p += 4;
    } else if (left >= 5 && memcmp(d->p, "false", 5) == 0) {
        lua_pushboolean(d->L, 0);
        d->p += 5;
    } else if (left >= 4 && memcmp(d->p, "null", 4) == 0) {
        lua_json__push_null(d->L);
        d->p += 4;
    } else {
        fail_at(d, d->p, "invalid literal");
        return false;
    }
    return true;
}

/* ---- containers ------------------------------------------------------- */

static bool push_value(struct dec *d, int depth);

/*
 * Moves the n values (arrays) or n key/value pairs (objects) above base
 * into the table at base, made on the first call with room for n.
 */
static void flush(lua_State *L, int base, int n, bool array,
                  lua_Integer *next)
{
    int i, first = base + 1;

    if (lua_type(L, base) != LUA_TTABLE) {
        lua_createtable(L, array ? n : 0, array ? 0 : n);
        lua_replace(L, base);
    }
    for (i = 0; i < n; i++) {
        if (array) {
            lua_pushvalue(L, first + i);
            lua_rawseti(L, base, (*next)++);
        } else {
            lua_pushvalue(L, first + 2 * i);
            lua_pushvalue(L, first + 2 * i + 1);
            lua_rawset(L, base); /* a repeated key: the last one wins */
        }
    }
    lua_settop(L, base);
}

/* After a member or element: ',' continues, close ends. */
static int next_or_close(struct dec *d, char close, const char *why)
{
    skip_space(d);
    if (d->p < d->end && *d->p == ',') {
        d->p++;
        return 1;
    }
    if (d->p < d->end && *d->p == close) {
        d->p++;
        return 0;
    }
    fail_at(d, d->p, why);
    return -1;
}

static bool push_member(struct dec *d, int depth)
{
    skip_space(d);
    if (d->p >= d->end || *d->p != '"') {
        fail_at(d, d->p, "expected a string for an object key");
        return false;
    }
    if (!push_string(d))
        return false;
    skip_space(d);
    if (d->p >= d->end || *d->p != ':') {
        fail_at(d, d->p, "expected ':' after object key");
        return false;
    }
    d->p++;
    return push_value(d, depth);
}

/*
 * An array or object at d->p; depth counts it. Up to DEC_CHUNK members
 * wait on the stack, so a small container gets a table of its exact size
 * (no rehash while it fills).
 */
static bool push_container(struct dec *d, int depth)
{
    lua_State *L = d->L;
    bool array = *d->p == '[';
    char close = array ? ']' : '}';
    int base, held = 0, more;
    lua_Integer next = 1;

    if (!lua_checkstack(L, 2 * DEC_CHUNK + 8))
        luaL_error(L, "stack overflow (JSON nesting)");
    lua_pushnil(L); /* the table's slot */
    base = lua_gettop(L);
    d->p++;
    skip_space(d);
    if (d->p < d->end && *d->p == close) {
        d->p++;
        more = 0;
    } else {
        do {
            if (!(array ? push_value(d, depth) : push_member(d, depth)))
                return false;
            if (++held == DEC_CHUNK) {
                flush(L, base, held, array, &next);
                held = 0;
            }
            more = next_or_close(d, close, array
                                               ? "expected ',' or ']' in array"
                                               : "expected ',' or '}' in "
                                                 "object");
        } while (more == 1);
        if (more < 0)
            return false;
    }
    flush(L, base, held, array, &next);
    if (array)
        lua_json_mark_array(L, base);
    return true;
}

/* One value after optional whitespace; depth = enclosing levels. */
static bool push_value(struct dec *d, int depth)
{
    skip_space(d);
    if (d->p >= d->end) {
        fail_at(d, d->p, "unexpected end of input");
        return false;
    }
    switch (*d->p) {
    case '{':
    case '[':
        if (depth >= d->max_depth) {
            fail_at(d, d->p, "nested too deeply");
            return false;
        }
        return push_container(d, depth + 1);
    case '"':
        return push_string(d);
    case 't':
    case 'f':
    case 'n':
        return push_word(d);
    default:
        return push_number(d);
    }
}

int lua_json_decode_text(lua_State *L, const char *text, size_t len,
                         int max_depth, struct errbuf *err)
{
    struct dec d;
    int top = lua_gettop(L);

    memset(&d, 0, sizeof(d));
    d.L = L;
    d.start = d.p = text;
    d.end = text + len;
    d.err = err;
    d.max_depth = max_depth > JSON_DEPTH_LIMIT ? JSON_DEPTH_LIMIT : max_depth;
    if (err != NULL)
        errbuf_clear(err);
    if (push_value(&d, 0)) {
        skip_space(&d);
        if (d.p < d.end)
            fail_at(&d, d.p, "data after the value");
    }
    if (d.failed) {
        lua_settop(L, top);
        return -1;
    }
    return 0;
}

/* Largest JSON text coffer.json.decode accepts (Vault's request cap). */
#define JSON_MAX_TEXT ((size_t)32 * 1024 * 1024)

/*
 * coffer.json.decode(text) -> value, or nil, message for text that is not
 * exactly one JSON value (json.h: strict, numbers kept exact; only
 * whitespace may follow the value). [-1, +1|2, e]
 */
static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct errbuf err;

    if (len > JSON_MAX_TEXT) {
        lua_pushnil(L);
        lua_pushliteral(L, "JSON text too large");
        return 2;
    }
    if (lua_json_decode_text(L, s, len, LUA_JSON_MAX_DEPTH, &err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    return 1;
}

static int l_json_encode(lua_State *L);

void lua_json_text_open(lua_State *L)
{
    lua_pushcfunction(L, l_json_decode);
    lua_setfield(L, -2, "decode");
    lua_pushcfunction(L, l_json_encode);
    lua_setfield(L, -2, "encode");
}

/* =========================================================== writing == */

/* A member of the object being written: its name and its value's slot. */
struct member {
    const char *key; /* a Lua string kept on the stack, or NULL: kbuf */
    int slot;
    char kbuf[40];   /* a number key as lua_json.c spells it */
};

struct wr {
    lua_State *L;
    struct json_writer *w;
    struct member *m; /* members of every open object, innermost last */
    size_t n, cap;
};

static const char *member_key(const struct member *m)
{
    return m->key != NULL ? m->key : m->kbuf;
}

/* lua_json.c's json_cmp_keys; both sorts are glibc's stable merge sort. */
static int member_cmp(const void *a, const void *b)
{
    return strcmp(member_key(a), member_key(b));
}

static bool write_value(struct wr *st, int idx, int depth);

static bool write_number(struct wr *st, int idx)
{
    char digits[32];
    lua_Integer i;
    lua_Number d;

    if (lua_isinteger(st->L, idx)) {
        i = lua_tointeger(st->L, idx);
        if (i >= INT_MIN && i <= INT_MAX) {
            json_write_number(st->w, (double)i);
        } else {
            snprintf(digits, sizeof(digits), LUA_INTEGER_FMT, i);
            json_write_raw(st->w, digits);
        }
        return true;
    }
    d = lua_tonumber(st->L, idx);
    if (!isfinite(d))
        return false;
    json_write_number(st->w, d);
    return true;
}

/* Room for one more member; false past what the stack can hold. */
static bool member_add(struct wr *st)
{
    if (st->n == st->cap) {
        st->cap = st->cap == 0 ? 16 : 2 * st->cap;
        st->m = xrealloc(st->m, st->cap * sizeof(*st->m));
    }
    return lua_checkstack(st->L, 4) != 0;
}

/* Records the pair at -2/-1 as member st->m[st->n] (lua_json.c's keys). */
static bool member_record(struct wr *st)
{
    lua_State *L = st->L;
    struct member *m = &st->m[st->n];
    size_t len;

    m->key = NULL;
    m->slot = lua_gettop(L);
    if (lua_type(L, -2) == LUA_TSTRING) {
        m->key = lua_tolstring(L, -2, &len);
        if (strlen(m->key) != len)
            return false;
    } else if (lua_isinteger(L, -2)) {
        snprintf(m->kbuf, sizeof(m->kbuf), LUA_INTEGER_FMT,
                 lua_tointeger(L, -2));
    } else if (lua_type(L, -2) == LUA_TNUMBER) {
        snprintf(m->kbuf, sizeof(m->kbuf), "%.14g", lua_tonumber(L, -2));
    } else {
        return false;
    }
    st->n++;
    return true;
}

/*
 * An object: every pair stays on the stack (the key anchors its string,
 * the value is written from its slot) while the names are sorted, as
 * lua_json.c sorts its tree.
 */
static bool write_object(struct wr *st, int idx, int depth)
{
    lua_State *L = st->L;
    int base = lua_gettop(L);
    size_t first = st->n, i;
    bool ok = true;

    lua_pushnil(L);
    while (ok && lua_next(L, idx) != 0) {
        ok = member_add(st) && member_record(st);
        lua_pushvalue(L, -2); /* the key again, for lua_next */
    }
    if (ok) {
        if (st->n - first > 1)
            qsort(st->m + first, st->n - first, sizeof(*st->m), member_cmp);
        json_write_open(st->w, '{');
        for (i = first; ok && i < st->n; i++) {
            json_write_key(st->w, member_key(&st->m[i]));
            ok = write_value(st, st->m[i].slot, depth + 1);
        }
        json_write_close(st->w, '}');
    }
    st->n = first;
    lua_settop(L, base);
    return ok;
}

static bool write_table(struct wr *st, int idx, int depth)
{
    lua_State *L = st->L;
    lua_Integer n, i;
    bool ok = true;

    if (depth >= LUA_JSON_MAX_DEPTH || !lua_checkstack(L, 8))
        return false;
    if (!lua_json__table_is_array(L, idx, &n))
        return write_object(st, idx, depth);
    json_write_open(st->w, '[');
    for (i = 1; ok && i <= n; i++) {
        lua_rawgeti(L, idx, i);
        ok = write_value(st, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    json_write_close(st->w, ']');
    return ok;
}

/* The value at absolute index idx; false where lua_json_to raises. */
static bool write_value(struct wr *st, int idx, int depth)
{
    lua_State *L = st->L;
    const char *s;
    size_t len;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        json_write_null(st->w);
        return true;
    case LUA_TBOOLEAN:
        json_write_bool(st->w, lua_toboolean(L, idx));
        return true;
    case LUA_TNUMBER:
        return write_number(st, idx);
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len)
            return false;
        json_write_string(st->w, s);
        return true;
    case LUA_TTABLE:
        return write_table(st, idx, depth);
    default:
        s = lua_json__bignum(L, idx);
        if (s != NULL)
            json_write_raw(st->w, s);
        else if (lua_json_is_null(L, idx))
            json_write_null(st->w);
        else
            return false;
        return true;
    }
}

/*
 * Where the direct walk gives up, the tree path redoes the value: it
 * raises the error it always raised (or, should the two ever disagree,
 * writes what it would have written).
 */
static void write_by_tree(lua_State *L, int idx, struct json_writer *w)
{
    cJSON *tree = NULL;

    lua_json_to(L, idx, &tree);
    json_write_value(w, tree);
    json_delete_wiped(tree);
}

void lua_json_write_text(lua_State *L, int idx, struct json_writer *w)
{
    struct wr st;
    struct buf *out = w->out;
    size_t len0 = out->len;
    bool comma0 = w->comma, ok;
    int top = lua_gettop(L);

    memset(&st, 0, sizeof(st));
    st.L = L;
    st.w = w;
    idx = lua_absindex(L, idx);
    ok = write_value(&st, idx, 0);
    free(st.m);
    lua_settop(L, top);
    if (ok || w->rc != 0)
        return;
    /* undo the partial text, then let the tree path decide */
    if (out->ptr != NULL) {
        crypto_wipe(out->ptr + len0, out->len - len0);
        out->len = len0;
        out->ptr[len0] = '\0';
    }
    w->comma = comma0;
    write_by_tree(L, idx, w);
}

void lua_json_encode_text(lua_State *L, int idx, struct lua_json_box *box)
{
    struct json_writer w;

    idx = lua_absindex(L, idx);
    buf_release(&box->b);
    buf_init(&box->b, BUF_MAX_DEFAULT);
    json_write_init(&w, &box->b);
    lua_json_write_text(L, idx, &w);
    if (w.rc != 0)
        luaL_error(L, "cannot encode JSON larger than %d MiB",
                   (int)(BUF_MAX_DEFAULT >> 20));
    box->text = buf_detach(&box->b, &box->text_len);
    if (box->text == NULL) { /* nothing written cannot happen; stay safe */
        box->text = xstrdup("");
        box->text_len = 0;
    }
}

/* coffer.json.encode(value) -> string. [-1, +1, e] */
static int l_json_encode(lua_State *L)
{
    struct lua_json_box *box;

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    box = lua_json_box_new(L);
    lua_json_encode_text(L, 1, box);
    lua_pushlstring(L, box->text, box->text_len);
    lua_json_box_release(box);
    return 1;
}

