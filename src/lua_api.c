/*
 * lua_api.c - the `coffer` Lua module: everything a script may call.
 *
 * Owns the C side of coffer.time, coffer.crypto, coffer.net, coffer.log,
 * the typed errors, req.storage and the lease handles. Does not own
 * coffer.json and the Lua <-> cJSON conversion (lua_json.c), states, the
 * sandbox or the call protocol (luavm.c), nor the engine DSL
 * (lua/coffer/<name>.lua).
 *
 * Every Lua-callable function here follows STYLE 3.4: check arguments with
 * luaL_check* first; hold C resources (cJSON trees, buffers, string
 * vectors) only inside a collectable "resource box" userdata (struct
 * lua_json_box, lua_json.h), so that a
 * raise at any point frees them through __gc; release them explicitly on
 * the success path. Stack effects use the Lua manual's [-o, +p, x] notation.
 *
 * Chapters: time; crypto; log; errors; storage; leases; pbkdf2, net;
 * open; storage locks.
 */
#include "lua_api.h"

#include <limits.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "cidr.h"
#include "common.h"
#include "crypto.h"
#include "json.h"
#include "lease.h"
#include "log.h"
#include "lua_db.h"
#include "lua_http.h"
#include "lua_jose.h"
#include "lua_metrics.h"
#include "lua_password.h"
#include "lua_json.h"
#include "lua_json_text.h"
#include "mount.h"
#include "request.h"
#include "storage.h"
#include "token.h"
#include "util.h"

/* Registry keys: the addresses of these statics (OpenResty init_registry). */
static char key_error_mt;

#define STORAGE_MT "coffer.storage"
#define ERROR_MT "coffer.error"
#define LEASE_MT "coffer.lease"

#define RANDOM_MAX_BYTES ((lua_Integer)1024 * 1024)
#define BASE62_MAX_CHARS ((lua_Integer)4096)

/* =============================================================== time == */

/* coffer.time.now() -> float unix seconds. [-0, +1, -] */
static int l_time_now(lua_State *L)
{
    struct timespec ts = time_now();

    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* coffer.time.now_rfc3339() -> "2024-05-01T10:00:00.123456789Z". */
static int l_time_now_rfc3339(lua_State *L)
{
    char out[64];

    time_format_rfc3339(time_now(), out, sizeof(out));
    lua_pushstring(L, out);
    return 1;
}

/* coffer.time.format_rfc3339(secs) -> RFC3339 UTC with nanoseconds. */
static int l_time_format_rfc3339(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    lua_Number whole = floor(secs);
    struct timespec ts;
    char out[64];
    long ns;

    luaL_argcheck(L, isfinite(secs) && secs >= 0 && secs < 253402300800.0, 1,
                  "time out of range");
    ns = lround((secs - whole) * 1e9);
    if (ns > 999999999)
        ns = 999999999;
    ts.tv_sec = (time_t)whole;
    ts.tv_nsec = ns;
    time_format_rfc3339(ts, out, sizeof(out));
    lua_pushstring(L, out);
    return 1;
}

/*
 * coffer.time.parse_duration(v) -> seconds, or nil, reason. Accepts
 * integers, digit strings, Go durations and "<n>d"; nil, null and ""
 * are 0 (Vault's ParseDurationSecond). [-1, +1|2, -]
 */
static int l_time_parse_duration(lua_State *L)
{
    struct errbuf err;
    int64_t secs = 0;
    lua_Number d;

    errbuf_clear(&err);
    if (lua_isinteger(L, 1)) {
        secs = lua_tointeger(L, 1);
        if (secs < 0)
            errbuf_set(&err, "cannot parse duration: negative values are "
                             "not allowed");
    } else if (lua_type(L, 1) == LUA_TNUMBER) {
        d = lua_tonumber(L, 1);
        if (!isfinite(d) || d < 0 || d > 9.2e18)
            errbuf_set(&err, "cannot parse duration from %g", d);
        else
            secs = (int64_t)d;
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        duration_parse(lua_tostring(L, 1), &secs, &err);
    } else if (!lua_isnoneornil(L, 1) && !lua_json_is_null(L, 1)) {
        errbuf_set(&err, "cannot parse a duration from a %s",
                   luaL_typename(L, 1));
    }
    if (err.msg[0] != '\0') {
        lua_pushnil(L);
        lua_pushstring(L, err.msg);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)secs);
    return 1;
}

/* coffer.time.format_duration(secs) -> Go style "1h0m0s". [-1, +1, e] */
static int l_time_format_duration(lua_State *L)
{
    lua_Integer secs = (lua_Integer)floor(luaL_checknumber(L, 1));
    char out[64];

    if (secs < 0) {
        out[0] = '-';
        duration_format_go(-(int64_t)secs, out + 1, sizeof(out) - 1);
    } else {
        duration_format_go((int64_t)secs, out, sizeof(out));
    }
    lua_pushstring(L, out);
    return 1;
}

/* ============================================================= crypto == */

/* coffer.crypto.random_bytes(n) -> n random bytes. [-1, +1, e] */
static int l_crypto_random_bytes(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_Buffer b;
    char *p;

    luaL_argcheck(L, n >= 0 && n <= RANDOM_MAX_BYTES, 1, "out of range");
    p = luaL_buffinitsize(L, &b, (size_t)n);
    if (crypto_random(p, (size_t)n) != 0)
        return luaL_error(L, "random generator failed");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* coffer.crypto.random_base62(n) -> n chars of [0-9A-Za-z]. [-1, +1, e] */
static int l_crypto_random_base62(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_Buffer b;
    char *p;

    luaL_argcheck(L, n >= 1 && n <= BASE62_MAX_CHARS, 1, "out of range");
    p = luaL_buffinitsize(L, &b, (size_t)n + 1);
    if (crypto_random_base62(p, (size_t)n) != 0)
        return luaL_error(L, "random generator failed");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* coffer.crypto.uuid() -> random v4 UUID. [-0, +1, e] */
static int l_crypto_uuid(lua_State *L)
{
    char out[CRYPTO_UUID_LEN + 1];

    if (crypto_uuid(out) != 0)
        return luaL_error(L, "random generator failed");
    lua_pushstring(L, out);
    return 1;
}

/* coffer.crypto.sha256_hex(s) -> 64 lowercase hex chars. [-1, +1, m] */
static int l_crypto_sha256_hex(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char digest[32];
    char hex[65];

    crypto_sha256(s, len, digest);
    crypto_hex(digest, sizeof(digest), hex);
    lua_pushstring(L, hex);
    return 1;
}

/* coffer.crypto.hmac_sha256_hex(key, s) -> hex MAC. [-2, +1, m] */
static int l_crypto_hmac_sha256_hex(lua_State *L)
{
    size_t klen, len;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *s = luaL_checklstring(L, 2, &len);
    unsigned char mac[32];
    char hex[65];

    crypto_hmac_sha256(key, klen, s, len, mac);
    crypto_hex(mac, sizeof(mac), hex);
    crypto_wipe(mac, sizeof(mac));
    lua_pushstring(L, hex);
    return 1;
}

/* coffer.crypto.equal(a, b) -> boolean, in constant time. [-2, +1, e] */
/*
 * coffer.time.format_utc(strftime_format, unix_seconds) -> string in UTC.
 * The format is checked against a short list so that a script cannot ask
 * strftime for locale-dependent or unbounded output. [-2, +1, e]
 */
static int l_time_format_utc(lua_State *L)
{
    const char *fmt = luaL_checkstring(L, 1);
    lua_Number t = luaL_optnumber(L, 2, (lua_Number)time_now().tv_sec);
    time_t secs = (time_t)floor(t);
    struct tm tm;
    char out[256];
    size_t n;

    for (const char *p = fmt; *p != '\0'; p++) {
        if (*p == '%' && strchr("YmdHMSjzZ%", p[1] ? p[1] : ' ') == NULL)
            return luaL_argerror(L, 1, "unsupported conversion");
        if (*p == '%')
            p++;
    }
    gmtime_r(&secs, &tm);
    n = strftime(out, sizeof(out), fmt, &tm);
    if (n == 0 && fmt[0] != '\0')
        return luaL_argerror(L, 1, "format too long");
    lua_pushlstring(L, out, n);
    return 1;
}

/*
 * coffer.time.sleep(seconds): blocks this thread (at most 5 s). Used by
 * engines to back off before retrying a database conflict. [-1, +0, e]
 */
static int l_time_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    struct timespec ts;

    luaL_argcheck(L, secs >= 0 && secs <= 5, 1, "between 0 and 5 seconds");
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((secs - (lua_Number)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
    return 0;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * coffer.crypto.random_string(n, alphabet) -> n characters drawn uniformly
 * from alphabet (at most 256 distinct bytes), by rejection sampling so
 * that no character is favoured. [-2, +1, e]
 */
static int l_crypto_random_string(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    size_t alen;
    const char *alphabet = luaL_checklstring(L, 2, &alen);
    unsigned char pool[256];
    size_t used = sizeof(pool), limit;
    luaL_Buffer b;

    luaL_argcheck(L, n >= 0 && n <= 4096, 1, "between 0 and 4096");
    luaL_argcheck(L, alen > 0 && alen <= 256, 2, "1 to 256 characters");
    limit = 256 - 256 % alen; /* bytes >= limit would bias the draw */
    luaL_buffinit(L, &b);
    for (lua_Integer i = 0; i < n;) {
        if (used == sizeof(pool)) {
            if (crypto_random(pool, sizeof(pool)) != 0)
                return luaL_error(L, "random number generator failed");
            used = 0;
        }
        if (pool[used] < limit) {
            luaL_addchar(&b, alphabet[pool[used] % alen]);
            i++;
        }
        used++;
    }
    crypto_wipe(pool, sizeof(pool));
    luaL_pushresult(&b);
    return 1;
}

/* coffer.crypto.base64_encode(s) -> standard base64. [-1, +1, m] */
static int l_crypto_base64_encode(lua_State *L)
{
    size_t n;
    const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        luaL_addchar(&b, b64_alphabet[(v >> 18) & 63]);
        luaL_addchar(&b, b64_alphabet[(v >> 12) & 63]);
        luaL_addchar(&b, i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=');
        luaL_addchar(&b, i + 2 < n ? b64_alphabet[v & 63] : '=');
    }
    luaL_pushresult(&b);
    return 1;
}

static int b64_value(int c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;

    return p ? (int)(p - b64_alphabet) : -1;
}

/*
 * coffer.crypto.base64_decode(s) -> bytes, or nil if s is not valid
 * padded standard base64. [-1, +1, m]
 */
static int l_crypto_base64_decode(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;

    if (n % 4 != 0) {
        lua_pushnil(L);
        return 1;
    }
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = in[i + k] == '=' && i + 4 == n && k >= 2 ? 0
                                                          : b64_value(in[i + k]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0 ||
            (in[i + 2] == '=' && in[i + 3] != '=')) {
            luaL_pushresult(&b);
            lua_pop(L, 1);
            lua_pushnil(L);
            return 1;
        }
        luaL_addchar(&b, (char)((v[0] << 2) | (v[1] >> 4)));
        if (in[i + 2] != '=')
            luaL_addchar(&b, (char)(((v[1] & 15) << 4) | (v[2] >> 2)));
        if (in[i + 3] != '=')
            luaL_addchar(&b, (char)(((v[2] & 3) << 6) | v[3]));
    }
    luaL_pushresult(&b);
    return 1;
}

static int l_crypto_equal(lua_State *L)
{
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);

    lua_pushboolean(L, crypto_equal(a, alen, b, blen));
    return 1;
}

/* ================================================================ log == */

/* Logs the message at 1 tagged with the request id. [-0, +0, e] */
static int log_from_lua(lua_State *L, enum log_level level)
{
    struct lua_api_ctx *ctx = LUA_API_CTX(L);
    const char *msg = luaL_tolstring(L, 1, NULL);

    if (ctx != NULL && ctx->req != NULL)
        LOG_AT(level, "lua: [%s] %s", ctx->req->id, msg);
    else
        LOG_AT(level, "lua: %s", msg);
    return 0;
}

static int l_log_error(lua_State *L)
{
    return log_from_lua(L, LOG_LEVEL_ERROR);
}

static int l_log_warn(lua_State *L)
{
    return log_from_lua(L, LOG_LEVEL_WARN);
}

static int l_log_info(lua_State *L)
{
    return log_from_lua(L, LOG_LEVEL_INFO);
}

static int l_log_debug(lua_State *L)
{
    return log_from_lua(L, LOG_LEVEL_DEBUG);
}

/* ============================================================= errors == */

/*
 * A typed error is a table {status = <int>, errors = {<string>...}} whose
 * metatable is the registered "coffer.error" (its __name). luavm.c turns
 * one into resp->status and resp->errors; anything else raised is a 500.
 */

/* Pushes a new error with at most one message. [-0, +1, m] */
static void push_error(lua_State *L, int status, const char *msg)
{
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, msg != NULL ? 1 : 0, 0);
    if (msg != NULL) {
        lua_pushstring(L, msg);
        lua_rawseti(L, -2, 1);
    }
    lua_json_mark_array(L, -1);
    lua_setfield(L, -2, "errors");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_error_mt);
    lua_setmetatable(L, -2);
}

/* Raises a new error with Vault's multierror rendering of msg. */
static int raise_multierror(lua_State *L, int status, const char *msg)
{
    lua_pushfstring(L, MULTIERROR_FMT, msg);
    push_error(L, status, lua_tostring(L, -1));
    return lua_error(L);
}

bool lua_api_is_error(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TTABLE &&
           lua_json_has_marker(L, idx, &key_error_mt);
}

/* Copies errors (nil, a string or a list of strings) into the table at -1. */
static void error_copy_messages(lua_State *L, int arg)
{
    lua_Integer i, n;

    if (lua_type(L, arg) == LUA_TSTRING) {
        lua_pushvalue(L, arg);
        lua_rawseti(L, -2, 1);
        return;
    }
    if (lua_isnil(L, arg))
        return;
    luaL_argcheck(L, lua_type(L, arg) == LUA_TTABLE, 1,
                  "errors must be a string or a list of strings");
    n = (lua_Integer)lua_rawlen(L, arg);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, arg, i) != LUA_TSTRING)
            luaL_argerror(L, 1, "errors must be a list of strings");
        lua_rawseti(L, -2, i);
    }
}

/*
 * coffer.error{status = 400, errors = {"msg"}} -> a new error object (not
 * raised: raise it with error()). [-1, +1, e]
 */
static int l_error_new(lua_State *L)
{
    lua_Integer status;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "status");
    status = luaL_optinteger(L, 2, 500);
    luaL_argcheck(L, status >= 400 && status <= 599, 1,
                  "status must be an HTTP error status");
    lua_getfield(L, 1, "errors"); /* 3 */
    push_error(L, (int)status, NULL);
    lua_getfield(L, -1, "errors");
    error_copy_messages(L, 3);
    lua_pop(L, 1);
    return 1;
}

/* coffer.bad_request(msg): raises 400 {"errors":[msg]}. */
static int l_error_bad_request(lua_State *L)
{
    const char *msg = luaL_checkstring(L, 1);

    push_error(L, 400, msg);
    return lua_error(L);
}

/* coffer.not_found(): raises Vault's 404 {"errors":[]}. */
static int l_error_not_found(lua_State *L)
{
    push_error(L, 404, NULL);
    return lua_error(L);
}

/* coffer.forbidden([msg]): raises 403, "permission denied" by default. */
static int l_error_forbidden(lua_State *L)
{
    const char *msg = luaL_optstring(L, 1, "permission denied");

    push_error(L, 403, msg);
    return lua_error(L);
}

/* coffer.unsupported_path(): raises 404 ME("unsupported path"). */
static int l_error_unsupported_path(lua_State *L)
{
    return raise_multierror(L, 404, "unsupported path");
}

/* coffer.unsupported_operation(): raises 405 ME("unsupported operation"). */
static int l_error_unsupported_operation(lua_State *L)
{
    return raise_multierror(L, 405, "unsupported operation");
}

/*
 * coffer.internal(msg): raises 500 with the multierror rendering, which is
 * what Vault shows when a handler fails without a response.
 */
static int l_error_internal(lua_State *L)
{
    const char *msg = luaL_checkstring(L, 1);

    return raise_multierror(L, 500, msg);
}

/* coffer.is_error(v) -> boolean. [-1, +1, -] */
static int l_error_is(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, lua_api_is_error(L, 1));
    return 1;
}

/* __tostring: "coffer.error 400: first message". [-1, +1, m] */
static int l_error_tostring(lua_State *L)
{
    lua_Integer status;

    lua_settop(L, 1);
    lua_getfield(L, 1, "status");
    status = lua_tointeger(L, 2);
    lua_getfield(L, 1, "errors");
    if (lua_type(L, 3) != LUA_TTABLE || lua_rawgeti(L, 3, 1) != LUA_TSTRING)
        lua_pushfstring(L, "coffer.error %I", status);
    else
        lua_pushfstring(L, "coffer.error %I: %s", status, lua_tostring(L, -1));
    return 1;
}

/*
 * coffer.assert_load_time(): raises "registration is only allowed at load
 * time" unless the state is bootstrapping. The framework calls it from
 * every registration function; the message points at the script's line.
 */
static int l_api_assert_load_time(lua_State *L)
{
    struct lua_api_ctx *ctx = LUA_API_CTX(L);

    if (ctx != NULL && ctx->loading)
        return 0;
    luaL_where(L, 2); /* 1 is the framework, 2 the script calling it */
    lua_pushliteral(L, "registration is only allowed at load time");
    lua_concat(L, 2);
    return lua_error(L);
}

/* ============================================================ storage == */

/*
 * req.storage: a view of the mount's storage. Every key is prefixed with
 * the mount's storage_prefix here in C, so an engine can only reach its
 * own keys. A handle only works during the call that created it.
 *
 *   userdata "coffer.storage": | gen (call number) | prefix "logical/<uuid>/" |
 */
struct storage_handle {
    uint64_t gen;
    char prefix[];
};

void lua_api_push_storage(lua_State *L, const char *prefix, uint64_t gen)
{
    size_t len = strlen(prefix);
    struct storage_handle *h =
        lua_newuserdatauv(L, sizeof(*h) + len + 1, 0);

    h->gen = gen;
    memcpy(h->prefix, prefix, len + 1);
    luaL_setmetatable(L, STORAGE_MT);
}

/* Checks arg 1 and that its request is the running one. [-0, +0, e] */
static struct storage_handle *storage_check(lua_State *L,
                                            struct storage **s)
{
    struct storage_handle *h = luaL_checkudata(L, 1, STORAGE_MT);
    struct lua_api_ctx *ctx = LUA_API_CTX(L);

    if (ctx == NULL || ctx->gen != h->gen || ctx->storage == NULL)
        luaL_error(L, "storage handle used outside of its request");
    *s = ctx->storage;
    return h;
}

/* True if path has a ".." segment. */
static bool has_dotdot(const char *p)
{
    const char *seg = p;

    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash != NULL ? (size_t)(slash - seg) : strlen(seg);

        if (n == 2 && seg[0] == '.' && seg[1] == '.')
            return true;
        if (slash == NULL)
            return false;
        seg = slash + 1;
    }
}

/*
 * Validates the key at arg and pushes prefix..key. Keys with "..", a
 * leading "/" or a NUL byte raise a 400 typed error. [-0, +1, e]
 */
static const char *storage_key(lua_State *L, struct storage_handle *h,
                               int arg)
{
    size_t len;
    const char *key = luaL_checklstring(L, arg, &len);

    if (strlen(key) != len || key[0] == '/' || has_dotdot(key)) {
        push_error(L, 400, "relative paths not supported");
        lua_error(L);
    }
    return lua_pushfstring(L, "%s%s", h->prefix, key);
}

static int storage_fail(lua_State *L, const char *what, int rc)
{
    return luaL_error(L, "storage %s failed: %s", what, coffer_strerror(rc));
}

/* storage:get(key) -> string or nil. [-2, +1, e] */
static int l_storage_get(lua_State *L)
{
    struct storage *s;
    struct storage_handle *h = storage_check(L, &s);
    const char *key = storage_key(L, h, 2);
    struct lua_json_box *box = lua_json_box_new(L);
    int rc = storage_get(s, key, &box->b);

    if (rc == COFFER_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != 0)
        return storage_fail(L, "get", rc);
    lua_pushlstring(L, box->b.ptr != NULL ? box->b.ptr : "", box->b.len);
    buf_release(&box->b);
    return 1;
}

/* storage:get_json(key) -> decoded value or nil. [-2, +1, e] */
static int l_storage_get_json(lua_State *L)
{
    struct storage *s;
    struct storage_handle *h = storage_check(L, &s);
    const char *key = storage_key(L, h, 2);
    struct lua_json_box *box = lua_json_box_new(L);
    int rc = storage_get(s, key, &box->b);

    if (rc == COFFER_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != 0)
        return storage_fail(L, "get", rc);
    /* straight from the text to Lua values (lua_json_text.h) */
    if (box->b.ptr == NULL ||
        lua_json_decode_text(L, box->b.ptr, box->b.len, LUA_JSON_MAX_DEPTH,
                             NULL) != 0) {
        buf_release(&box->b);
        return luaL_error(L, "stored value is not valid JSON");
    }
    buf_release(&box->b);
    return 1;
}

/* storage:put(key, value). [-3, +0, e] */
static int l_storage_put(lua_State *L)
{
    struct storage *s;
    struct storage_handle *h = storage_check(L, &s);
    size_t len;
    const char *value = luaL_checklstring(L, 3, &len);
    const char *key = storage_key(L, h, 2);
    int rc = storage_put(s, key, value, len);

    if (rc != 0)
        return storage_fail(L, "put", rc);
    return 0;
}

/* storage:put_json(key, value): stores coffer.json.encode(value). */
static int l_storage_put_json(lua_State *L)
{
    struct storage *s;
    struct storage_handle *h = storage_check(L, &s);
    const char *key;
    struct lua_json_box *box;
    int rc;

    luaL_checkany(L, 3);
    key = storage_key(L, h, 2);
    box = lua_json_box_new(L);
    lua_json_encode_text(L, 3, box);
    rc = storage_put(s, key, box->text, box->text_len);
    lua_json_box_release(box);
    if (rc != 0)
        return storage_fail(L, "put", rc);
    return 0;
}

/* storage:delete(key); deleting a missing key succeeds. [-2, +0, e] */
static int l_storage_delete(lua_State *L)
{
    struct storage *s;
    struct storage_handle *h = storage_check(L, &s);
    const char *key = storage_key(L, h, 2);
    int rc = storage_delete(s, key);

    if (rc != 0)
        return storage_fail(L, "delete", rc);
    return 0;
}

/*
 * storage:list(prefix) -> array of immediate children, sorted, folders
 * as "name/"; an empty array when there is nothing. [-2, +1, e]
 */
static int l_storage_list(lua_State *L)
{
    struct storage *s;
    struct storage_handle *h = storage_check(L, &s);
    const char *key = storage_key(L, h, 2);
    struct lua_json_box *box = lua_json_box_new(L);
    int rc = storage_list(s, key, &box->sv);
    size_t i;

    if (rc != 0 && rc != COFFER_ENOTFOUND)
        return storage_fail(L, "list", rc);
    lua_createtable(L, (int)box->sv.n, 0);
    for (i = 0; i < box->sv.n; i++) {
        lua_pushstring(L, box->sv.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_json_mark_array(L, -1);
    strvec_release(&box->sv);
    return 1;
}

static int l_storage_tostring(lua_State *L)
{
    struct storage_handle *h = luaL_checkudata(L, 1, STORAGE_MT);

    lua_pushfstring(L, "coffer.storage (%s)", h->prefix);
    return 1;
}

/* ============================================================= leases == */

/*
 * Crash-safe issuance (DESIGN "Leases"): an engine records a pending lease
 * holding what revocation needs *before* it creates anything outside
 * Coffer, then issues it with the secret:
 *
 *   local lease = req:pending_lease("creds", { username = u })
 *   ... create the user ...
 *   return lease:issue({ username = u, password = p },
 *                      { ttl = 3600, max_ttl = 0, renewable = true })
 *
 * issue() returns a response table {data, lease_id, lease_duration,
 * renewable}. A lease still pending when the call ends (the script raised
 * or forgot to issue) is aborted by luavm.c through ctx->pending.
 *
 *   userdata "coffer.lease": | gen | pending (owned) | done |
 *
 * The handle keeps lease.c's pending record from pending_lease to issue,
 * so that issue() does not read it back from storage (issue 14).
 */
struct lease_handle {
    uint64_t gen;
    struct lease_pending *p; /* NULL until created */
    bool done;               /* issued or aborted */
};

static int l_lease_gc(lua_State *L)
{
    struct lease_handle *h = luaL_checkudata(L, 1, LEASE_MT);

    lease_pending_free(h->p);
    h->p = NULL;
    return 0;
}

/* Removes id from the call's pending list. */
static void pending_forget(struct lua_api_ctx *ctx, const char *id)
{
    size_t i;

    for (i = 0; i < ctx->pending.n; i++) {
        if (strcmp(ctx->pending.v[i], id) == 0) {
            free(ctx->pending.v[i]);
            ctx->pending.v[i] = ctx->pending.v[--ctx->pending.n];
            return;
        }
    }
}

static struct lease_handle *lease_check(lua_State *L, struct lua_api_ctx **c)
{
    struct lease_handle *h = luaL_checkudata(L, 1, LEASE_MT);
    struct lua_api_ctx *ctx = LUA_API_CTX(L);

    if (ctx == NULL || ctx->gen != h->gen || ctx->mount == NULL ||
        h->p == NULL)
        luaL_error(L, "lease used outside of its request");
    if (h->done)
        luaL_error(L, "lease was already issued or aborted");
    *c = ctx;
    return h;
}

/* req:pending_lease(secret_type, internal) -> lease. [-3, +1, e] */
static int l_lease_pending(lua_State *L)
{
    struct lua_api_ctx *ctx = LUA_API_CTX(L);
    const char *type = luaL_checkstring(L, 2);
    struct lease_handle *h;
    struct errbuf err;
    cJSON *internal = NULL;
    int rc;

    luaL_checkany(L, 3);
    if (ctx == NULL || ctx->req == NULL || ctx->mount == NULL)
        return luaL_error(L, "pending_lease is only available in a request");
    h = lua_newuserdatauv(L, sizeof(*h), 0);
    h->gen = ctx->gen;
    h->p = NULL;
    h->done = false;
    luaL_setmetatable(L, LEASE_MT);
    lua_json_to(L, 3, &internal);
    /* nothing below raises until lease.c has taken internal over */
    rc = lease_create_pending(ctx->mount, ctx->req->path, type, internal,
                              ctx->req->token != NULL
                                  ? ctx->req->token->id_hmac
                                  : NULL,
                              ctx->req->token != NULL
                                  ? ctx->req->token->accessor
                                  : NULL,
                              &h->p, &err);
    if (rc != 0)
        return raise_multierror(L, 500, err.msg);
    strvec_push(&ctx->pending, lease_pending_id(h->p));
    return 1;
}

/* lease:issue(data, {ttl, max_ttl, renewable}) -> response. [-3, +1, e] */
static int l_lease_issue(lua_State *L)
{
    struct lua_api_ctx *ctx;
    struct lease_handle *h = lease_check(L, &ctx);
    lua_Integer ttl, max_ttl;
    bool renewable;
    int64_t granted = 0;
    struct errbuf err;

    luaL_checkany(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    if (lua_isnil(L, 3)) {
        lua_newtable(L);
        lua_replace(L, 3);
    }
    lua_getfield(L, 3, "ttl");
    ttl = luaL_optinteger(L, -1, 0);
    lua_getfield(L, 3, "max_ttl");
    max_ttl = luaL_optinteger(L, -1, 0);
    lua_getfield(L, 3, "renewable");
    renewable = lua_isnil(L, -1) ? true : lua_toboolean(L, -1);
    luaL_argcheck(L, ttl >= 0 && max_ttl >= 0, 3, "negative TTL");
    if (lease_activate(h->p, ctx->mount, ttl, max_ttl, renewable, &granted,
                       &err) != 0)
        return raise_multierror(L, 500, err.msg);
    h->done = true;
    pending_forget(ctx, lease_pending_id(h->p));
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "data");
    lua_pushstring(L, lease_pending_id(h->p));
    lua_setfield(L, -2, "lease_id");
    lua_pushinteger(L, (lua_Integer)granted);
    lua_setfield(L, -2, "lease_duration");
    lua_pushboolean(L, renewable);
    lua_setfield(L, -2, "renewable");
    return 1;
}

/* lease:abort(): revokes a pending lease now (idempotent revoke). */
static int l_lease_abort(lua_State *L)
{
    struct lua_api_ctx *ctx;
    struct lease_handle *h = lease_check(L, &ctx);

    h->done = true;
    pending_forget(ctx, lease_pending_id(h->p));
    lease_abort(lease_pending_id(h->p));
    return 0;
}

/* lease:id() -> the lease id. */
static int l_lease_id(lua_State *L)
{
    struct lease_handle *h = luaL_checkudata(L, 1, LEASE_MT);

    lua_pushstring(L, h->p != NULL ? lease_pending_id(h->p) : "");
    return 1;
}

/*
 * req:lease_ttl(ttl, max_ttl) -> ttl, max: what lease:issue will grant,
 * so an engine can put the expiry into what it creates. [-3, +2, e]
 */
static int l_lease_ttl(lua_State *L)
{
    struct lua_api_ctx *ctx = LUA_API_CTX(L);
    lua_Integer ttl = luaL_optinteger(L, 2, 0);
    lua_Integer max = luaL_optinteger(L, 3, 0);
    int64_t out_ttl, out_max;

    if (ctx == NULL || ctx->mount == NULL)
        return luaL_error(L, "lease_ttl is only available in a request");
    luaL_argcheck(L, ttl >= 0 && max >= 0, 2, "negative TTL");
    mount_resolve_ttl(ctx->mount, ttl, max, &out_ttl, &out_max);
    lua_pushinteger(L, (lua_Integer)out_ttl);
    lua_pushinteger(L, (lua_Integer)out_max);
    return 2;
}

/*
 * req:count_leases(secret_type, key, value) -> number of live leases of
 * this mount under <mount>/<secret_type>/ whose internal[key] == value.
 * [-4, +1, e]
 */
static int l_lease_count(lua_State *L)
{
    struct lua_api_ctx *ctx = LUA_API_CTX(L);
    const char *type = luaL_checkstring(L, 2);
    const char *key = luaL_checkstring(L, 3);
    const char *value = luaL_checkstring(L, 4);
    char prefix[1024];
    size_t count = 0;

    if (ctx == NULL || ctx->mount == NULL)
        return luaL_error(L, "count_leases is only available in a request");
    snprintf(prefix, sizeof(prefix), "%s%s/", ctx->mount->path, type);
    if (lease_count_matching(prefix, key, value, &count) != 0)
        return raise_multierror(L, 500, "counting leases failed");
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
}

/*
 * req:lease_values(secret_type, key) -> {[internal[key]] = true, ...} over
 * every lease (pending included) of this mount under <mount>/<type>/.
 * [-3, +1, e]
 */
static int l_lease_values(lua_State *L)
{
    struct lua_api_ctx *ctx = LUA_API_CTX(L);
    const char *type = luaL_checkstring(L, 2);
    const char *key = luaL_checkstring(L, 3);
    char prefix[1024];
    struct strvec vals;
    int rc;

    if (ctx == NULL || ctx->mount == NULL)
        return luaL_error(L, "lease_values is only available in a request");
    snprintf(prefix, sizeof(prefix), "%s%s/", ctx->mount->path, type);
    strvec_init(&vals);
    rc = lease_collect_values(prefix, key, &vals);
    if (rc == 0 && lua_checkstack(L, 4)) {
        lua_createtable(L, 0, (int)vals.n);
        for (size_t i = 0; i < vals.n; i++) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, vals.v[i]);
        }
    }
    strvec_release(&vals);
    if (rc != 0)
        return raise_multierror(L, 500, "listing leases failed");
    return 1;
}

void lua_api_push_lease_factory(lua_State *L)
{
    lua_pushcfunction(L, l_lease_pending);
}

void lua_api_push_lease_helpers(lua_State *L)
{
    lua_pushcfunction(L, l_lease_ttl);
    lua_setfield(L, -2, "lease_ttl");
    lua_pushcfunction(L, l_lease_count);
    lua_setfield(L, -2, "count_leases");
    lua_pushcfunction(L, l_lease_values);
    lua_setfield(L, -2, "lease_values");
}

/*
 * coffer.crypto.scram_sha256(password) -> the SCRAM-SHA-256 verifier
 * PostgreSQL stores for it (a fresh salt, 4096 rounds), or nil, message
 * when the password is not ASCII: PostgreSQL's SASLprep would prepare it
 * differently and the password would be refused at login. [-1, +(1|2), e]
 */
static int l_crypto_scram_sha256(lua_State *L)
{
    size_t plen;
    const char *pw = luaL_checklstring(L, 1, &plen);
    char out[CRYPTO_SCRAM_VERIFIER_MAX];
    int rc = crypto_scram_sha256_verifier(pw, plen, out);

    if (rc == COFFER_EINVAL) {
        luaL_pushfail(L);
        lua_pushliteral(L, "a SCRAM-SHA-256 verifier needs a non-empty "
                           "ASCII password");
        return 2;
    }
    if (rc != 0)
        return luaL_error(L, "scram_sha256 failed: no randomness");
    lua_pushstring(L, out);
    crypto_wipe(out, sizeof(out));
    return 1;
}

/* ======================================================= pbkdf2, net == */

#define PBKDF2_MAX_ITERATIONS 10000000

/*
 * coffer.crypto.pbkdf2(password, salt, iterations [, bytes = 32]) -> hex
 * PBKDF2-HMAC-SHA256, for password hashes (userpass). Slow on purpose:
 * the instruction hook does not run inside it, so iterations are capped.
 * [-4, +1, e]
 */
static int l_crypto_pbkdf2(lua_State *L)
{
    size_t plen, slen;
    const char *pw = luaL_checklstring(L, 1, &plen);
    const char *salt = luaL_checklstring(L, 2, &slen);
    lua_Integer iters = luaL_checkinteger(L, 3);
    lua_Integer bytes = luaL_optinteger(L, 4, 32);
    unsigned char out[64];
    char hex[2 * sizeof(out) + 1];
    int rc;

    luaL_argcheck(L, iters >= 1 && iters <= PBKDF2_MAX_ITERATIONS, 3,
                  "out of range");
    luaL_argcheck(L, bytes >= 16 && bytes <= (lua_Integer)sizeof(out), 4,
                  "out of range");
    rc = crypto_pbkdf2_sha256(pw, plen, salt, slen, (unsigned int)iters, out,
                              (size_t)bytes);
    if (rc == 0)
        crypto_hex(out, (size_t)bytes, hex);
    crypto_wipe(out, sizeof(out));
    if (rc != 0)
        return luaL_error(L, "pbkdf2 failed");
    lua_pushstring(L, hex);
    crypto_wipe(hex, sizeof(hex));
    return 1;
}

/*
 * coffer.net.cidr_match(cidr, addr) -> boolean, or nil, message when
 * either is malformed. [-2, +(1|2), e]
 */
static int l_net_cidr_match(lua_State *L)
{
    const char *cidr = luaL_checkstring(L, 1);
    const char *addr = luaL_checkstring(L, 2);
    bool match = false;

    if (cidr_match(cidr, addr, &match) != 0) {
        luaL_pushfail(L);
        lua_pushfstring(L, "invalid CIDR block or address: %s, %s", cidr,
                        addr);
        return 2;
    }
    lua_pushboolean(L, match);
    return 1;
}

static const luaL_Reg net_funcs[] = {
    {"cidr_match", l_net_cidr_match},
    {NULL, NULL},
};

/* =============================================================== open == */

static const luaL_Reg time_funcs[] = {
    {"now", l_time_now},
    {"now_rfc3339", l_time_now_rfc3339},
    {"format_rfc3339", l_time_format_rfc3339},
    {"parse_duration", l_time_parse_duration},
    {"format_duration", l_time_format_duration},
    {"format_utc", l_time_format_utc},
    {"sleep", l_time_sleep},
    {NULL, NULL},
};

static const luaL_Reg crypto_funcs[] = {
    {"random_bytes", l_crypto_random_bytes},
    {"random_base62", l_crypto_random_base62},
    {"uuid", l_crypto_uuid},
    {"sha256_hex", l_crypto_sha256_hex},
    {"hmac_sha256_hex", l_crypto_hmac_sha256_hex},
    {"equal", l_crypto_equal},
    {"random_string", l_crypto_random_string},
    {"base64_encode", l_crypto_base64_encode},
    {"base64_decode", l_crypto_base64_decode},
    {"pbkdf2", l_crypto_pbkdf2},
    {"scram_sha256", l_crypto_scram_sha256},
    {NULL, NULL},
};

static const luaL_Reg log_funcs[] = {
    {"error", l_log_error}, {"warn", l_log_warn},
    {"info", l_log_info},   {"debug", l_log_debug},
    {NULL, NULL},
};

static const luaL_Reg coffer_funcs[] = {
    {"error", l_error_new},
    {"bad_request", l_error_bad_request},
    {"not_found", l_error_not_found},
    {"forbidden", l_error_forbidden},
    {"unsupported_path", l_error_unsupported_path},
    {"unsupported_operation", l_error_unsupported_operation},
    {"internal", l_error_internal},
    {"is_error", l_error_is},
    {"assert_load_time", l_api_assert_load_time},
    {NULL, NULL},
};

/* ===================================================== storage locks == */

/*
 * storage:lock(key) serialises read-modify-write sequences on one key
 * (KV v2 versions and check-and-set) across worker threads. Keys hash onto
 * a fixed set of mutexes; a call may hold one lock at a time, so two
 * scripts can never wait for each other in opposite orders. The lock is a
 * to-be-closed value:
 *
 *   local lock <close> = req.storage:lock("metadata/" .. path)
 *
 * and luavm releases a lock still held when the call ends (error, timeout,
 * or a script that forgot <close>).
 */
#define LOCK_STRIPES 256
#define LOCK_MT "coffer.storage.lock"

static pthread_mutex_t lock_stripes[LOCK_STRIPES];
static pthread_once_t lock_stripes_once = PTHREAD_ONCE_INIT;

static void init_lock_stripes(void)
{
    for (int i = 0; i < LOCK_STRIPES; i++)
        COFFER_ASSERT(pthread_mutex_init(&lock_stripes[i], NULL) == 0);
}

struct lock_handle {
    uint64_t gen;
    int stripe;
};

static int stripe_of(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *key != '\0'; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return (int)(h % LOCK_STRIPES);
}

void lua_api_release_lock(struct lua_api_ctx *ctx)
{
    if (ctx != NULL && ctx->lock_stripe >= 0) {
        pthread_mutex_unlock(&lock_stripes[ctx->lock_stripe]);
        ctx->lock_stripe = -1;
    }
}

/* storage:lock(key) -> lock. [-2, +1, e] */
static int l_storage_lock(lua_State *L)
{
    struct storage *s;
    struct storage_handle *h = storage_check(L, &s);
    const char *key = storage_key(L, h, 2);
    struct lua_api_ctx *ctx = LUA_API_CTX(L);
    struct lock_handle *lk;

    /* One lock per thread at a time, counting the calls this one runs
       inside (a revoke run by lease:abort() in a handler that holds a
       lock): two locks could deadlock, on themselves or with another
       thread taking them in the other order. */
    for (const struct lua_api_ctx *c = ctx; c != NULL; c = c->outer) {
        if (c->lock_stripe >= 0)
            return luaL_error(L, "storage:lock: this request already holds "
                                 "a lock (one at a time)");
    }
    pthread_once(&lock_stripes_once, init_lock_stripes);
    lk = lua_newuserdatauv(L, sizeof(*lk), 0); /* before locking: may raise */
    lk->gen = ctx->gen;
    lk->stripe = stripe_of(key);
    luaL_setmetatable(L, LOCK_MT);
    pthread_mutex_lock(&lock_stripes[lk->stripe]);
    ctx->lock_stripe = lk->stripe;
    return 1;
}

/* lock:unlock(), __close and __gc: only the holding call's lock. */
static int l_lock_release(lua_State *L)
{
    struct lock_handle *lk = luaL_checkudata(L, 1, LOCK_MT);
    struct lua_api_ctx *ctx = LUA_API_CTX(L);

    if (ctx != NULL && ctx->gen == lk->gen && ctx->lock_stripe == lk->stripe)
        lua_api_release_lock(ctx);
    return 0;
}

static const luaL_Reg storage_methods[] = {
    {"get", l_storage_get},         {"get_json", l_storage_get_json},
    {"put", l_storage_put},         {"put_json", l_storage_put_json},
    {"delete", l_storage_delete},   {"list", l_storage_list},
    {"lock", l_storage_lock},       {NULL, NULL},
};

static const luaL_Reg lease_methods[] = {
    {"issue", l_lease_issue}, {"abort", l_lease_abort},
    {"id", l_lease_id},       {NULL, NULL},
};

/* Creates every metatable and anchors the markers in the registry. */
static void open_metatables(lua_State *L)
{
    luaL_newmetatable(L, LEASE_MT);
    luaL_newlib(L, lease_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_lease_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    luaL_newmetatable(L, LOCK_MT);
    lua_pushcfunction(L, l_lock_release);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_lock_release);
    lua_setfield(L, -2, "__gc");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_lock_release);
    lua_setfield(L, -2, "unlock");
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    luaL_newmetatable(L, STORAGE_MT);
    luaL_newlib(L, storage_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_storage_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    luaL_newmetatable(L, ERROR_MT);
    lua_pushcfunction(L, l_error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_error_mt);

}

void lua_api_open(lua_State *L)
{
    open_metatables(L);
    luaL_newlib(L, coffer_funcs);

    lua_json_open(L);
    lua_json_text_open(L);
    lua_setfield(L, -2, "json");
    luaL_newlib(L, time_funcs);
    lua_setfield(L, -2, "time");
    luaL_newlib(L, crypto_funcs);
    lua_setfield(L, -2, "crypto");
    luaL_newlib(L, log_funcs);
    lua_setfield(L, -2, "log");
    luaL_newlib(L, net_funcs);
    lua_setfield(L, -2, "net");
    lua_pushliteral(L, COFFER_VERSION);
    lua_setfield(L, -2, "version");
    lua_db_open(L);
    lua_http_open(L);
    lua_jose_open(L);
    lua_metrics_open(L);
    lua_password_open(L);
}
