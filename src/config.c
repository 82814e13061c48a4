/*
 * config.c - the server configuration file: Lua that reads like HCL.
 *
 * The file runs once, in a lua_State of its own that is closed before
 * config_load returns. Nothing from it reaches the worker states.
 *
 *   listener "tcp" { address = "127.0.0.1:8200", tls_disable = true }
 *   \______/ \___/ \_______________________________________________/
 *   builtin   (1)   (2) the returned block function, called with a table
 *
 * (1) listener("tcp") checks the type and that it is the first listener,
 *     and returns a block function bound to the block kind.
 * (2) The block function checks every key of its table against the
 *     kind's key list and copies the values into struct coffer_config.
 *
 * A top-level assignment such as `max_lease_ttl = "768h"` goes through
 * the __newindex of the chunk's _ENV, which checks the key and the value
 * in the same way. Reading an unknown name raises too, so a misspelt
 * `lisener "tcp" {...}` says "unknown name" rather than "attempt to call
 * a nil value".
 *
 * Errors are raised at the point of the call or assignment with
 * luaL_where(L, 1), so they read "FILE:LINE: ...". Every key of a block
 * table reports the line where the block starts: a table constructor
 * keeps no line per field.
 *
 * The sandbox: base functions without load/dofile/pcall/rawset/
 * metatables, plus string, table and math; text chunks only; an
 * allocator with a cap that wipes what it frees (the file may hold a
 * database password); a count hook with an instruction budget. The hook
 * does not run inside C functions, so string.rep and pattern matching are
 * bounded by the memory cap, not the budget: a configuration file is
 * trusted to be an operator's file, the sandbox catches mistakes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "lua_http.h"
#include "util.h"

/* Validates a declared audit device (audit.c's, set by server.c). */
static config_audit_check_fn audit_check;

void config_set_audit_check(config_audit_check_fn fn)
{
    audit_check = fn;
}

#define CONFIG_MAX_FILE_SIZE ((size_t)1024 * 1024)
#define CONFIG_MEMORY_LIMIT ((size_t)8 * 1024 * 1024)
#define CONFIG_HOOK_COUNT 1000
/* A real configuration runs a few hundred instructions. */
#define CONFIG_MAX_INSTRUCTIONS 1000000UL

/* ======================================================== key tables == */

enum value_kind {
    V_STRING = 1,   /* a non-empty string */
    V_SECRET,       /* like V_STRING; the value is never echoed */
    V_ADDRESS,      /* "host:port" */
    V_URL,          /* http:// or https:// */
    V_LOGLEVEL,     /* a name log_level_parse knows */
    V_IDENT,        /* an SQL name: table or schema.table */
    V_DURATION,     /* "768h" or whole seconds -> int64_t */
    V_BOOL,         /* true/false, 0/1 or "true"/"false" -> bool */
    V_WORKERS,      /* 1..CONFIG_MAX_WORKERS -> unsigned int */
    V_SIZE,         /* a positive integer -> size_t */
    V_COUNT,        /* 1..CONFIG_MAX_CONNECTIONS -> unsigned int */
    V_LUA_MEMORY,   /* bytes, CONFIG_LUA_MEMORY_MIN..MAX -> size_t */
    V_LUA_TIMEOUT,  /* a duration, 1s..CONFIG_LUA_TIMEOUT_MAX -> int64_t */
    V_LUA_BUDGET,   /* instructions, CONFIG_LUA_BUDGET_MIN..MAX -> uint64_t */
    V_URL_LIST,     /* { "https://host[:port][/prefix]", ... } -> url list */
    V_LOGFORMAT,    /* "standard" or "json" */
    V_METRIC_NAME,  /* [A-Za-z_][A-Za-z0-9_.]*, at most 64 characters */
    V_CACHE_SIZE,   /* entries, 0..CONFIG_CACHE_SIZE_MAX -> size_t */
    V_NICE,         /* a nice value, 0..19 -> int */
};

struct key_spec {
    const char *name;
    enum value_kind kind;
    size_t offset; /* into the struct the block fills */
    bool required;
};

#define TOP(field) offsetof(struct coffer_config, field)
#define LST(field) offsetof(struct config_listener, field)
#define STO(field) offsetof(struct config_storage_settings, field)

/* top_keys[TOP_DEFAULT_LEASE_TTL] is default_lease_ttl. */
#define TOP_DEFAULT_LEASE_TTL 0
static const struct key_spec top_keys[] = {
    {"default_lease_ttl", V_DURATION, TOP(default_lease_ttl), false},
    {"max_lease_ttl", V_DURATION, TOP(max_lease_ttl), false},
    {"plugin_directory", V_STRING, TOP(plugin_directory), false},
    {"policy_directory", V_STRING, TOP(policy_directory), false},
    {"log_level", V_LOGLEVEL, TOP(log_level), false},
    {"log_format", V_LOGFORMAT, TOP(log_format), false},
    {"api_addr", V_URL, TOP(api_addr), false},
    {"cluster_addr", V_URL, TOP(cluster_addr), false},
    /* The CA a standby trusts when forwarding (Coffer-specific). */
    {"cluster_ca_file", V_STRING, TOP(cluster_ca_file), false},
    /* HA standbys redirect (307) instead of forwarding (Coffer's name). */
    {"disable_request_forwarding", V_BOOL, TOP(disable_request_forwarding),
     false},
    /* HA standbys forward reads too (OpenBao's name). */
    {"disable_standby_reads", V_BOOL, TOP(disable_standby_reads), false},
    /* Reads that cannot wait run on the I/O threads (Coffer-specific). */
    {"http_inline_reads", V_BOOL, TOP(http_inline_reads), false},
    {"kv_native_reads", V_BOOL, TOP(kv_native_reads), false},
    {"ui", V_BOOL, TOP(ui), false},
    {"disable_mlock", V_BOOL, TOP(disable_mlock), false},
    {"workers", V_WORKERS, TOP(workers), false},
    /* Failed logins allowed per second and per client address, and the
     * burst before 429s start (Coffer-specific; 1..1024). */
    {"login_rate_limit", V_WORKERS, TOP(login_rate_limit), false},
    {"login_rate_burst", V_WORKERS, TOP(login_rate_burst), false},
    /* How long a request may run; the listener's max_request_duration
     * wins. Vault's name, and the short one as an alias. */
    {"default_max_request_duration", V_DURATION,
     TOP(default_max_request_duration), false},
    {"max_request_duration", V_DURATION, TOP(default_max_request_duration),
     false},
    /* The Lua runtime's limits (Coffer-specific): memory per Lua state,
     * time per engine call, instructions per Lua policy check. */
    {"lua_memory_limit", V_LUA_MEMORY, TOP(lua_memory_limit), false},
    {"lua_call_timeout", V_LUA_TIMEOUT, TOP(lua_call_timeout), false},
    {"lua_policy_budget", V_LUA_BUDGET, TOP(lua_policy_budget), false},
    /* The URLs Lua plugins may call (coffer.http; Coffer-specific). */
    {"plugin_http_allowed", V_URL_LIST, TOP(plugin_http_allowed), false},
    /* Whether PUT sys/audit/<path> may enable devices (OpenBao's name;
     * default true here, as in Vault: see config.h). */
    {"unsafe_allow_api_audit_creation", V_BOOL,
     TOP(unsafe_allow_api_audit_creation), false},
    /* The read cache in front of storage (Vault's names; 0 = default). */
    {"cache_size", V_CACHE_SIZE, TOP(cache_size), false},
    {"disable_cache", V_BOOL, TOP(disable_cache), false},
    /* Parsed token entries (Coffer-specific; 0 = default 4096). */
    {"token_cache_size", V_CACHE_SIZE, TOP(token_cache_size), false},
    /* Nice steps of the revocation workers below requests
     * (Coffer-specific; default 10). */
    {"lease_revocation_nice", V_NICE, TOP(lease_revocation_nice), false},
};

static const struct key_spec listener_keys[] = {
    {"address", V_ADDRESS, LST(address), false},
    {"tls_cert_file", V_STRING, LST(tls_cert_file), false},
    {"tls_key_file", V_STRING, LST(tls_key_file), false},
    {"tls_disable", V_BOOL, LST(tls_disable), false},
    {"max_request_size", V_SIZE, LST(max_request_size), false},
    {"max_request_duration", V_DURATION, LST(max_request_duration), false},
    {"http_read_header_timeout", V_DURATION, LST(http_read_header_timeout),
     false},
    {"http_read_timeout", V_DURATION, LST(http_read_timeout), false},
    {"http_idle_timeout", V_DURATION, LST(http_idle_timeout), false},
    {"max_connections", V_COUNT, LST(max_connections), false},
    {"max_connections_per_ip", V_COUNT, LST(max_connections_per_ip), false},
};

#define TEL(field) offsetof(struct config_telemetry, field)
static const struct key_spec telemetry_keys[] = {
    {"metrics_prefix", V_METRIC_NAME, TEL(metrics_prefix), false},
    {"prometheus_retention_time", V_DURATION, TEL(prometheus_retention_time),
     false},
    {"unauthenticated_metrics_access", V_BOOL,
     TEL(unauthenticated_metrics_access), false},
    {"disable_hostname", V_BOOL, TEL(disable_hostname), false},
};

static const struct key_spec sqlite_keys[] = {
    {"path", V_STRING, STO(sqlite_path), true},
};

static const struct key_spec pg_keys[] = {
    {"connection_url", V_SECRET, STO(pg_connection_url), true},
    {"table", V_IDENT, STO(pg_table), false},
    {"ha_enabled", V_BOOL, STO(ha_enabled), false},
    {"ha_table", V_IDENT, STO(ha_table), false},
    {"ha_lock_ttl", V_DURATION, STO(ha_lock_ttl), false},
};

#define SEA(field) offsetof(struct config_seal, field)
static const struct key_spec static_seal_keys[] = {
    {"current_key_id", V_STRING, SEA(current_key_id), true},
    {"current_key", V_SECRET, SEA(current_key), true},
    {"previous_key_id", V_STRING, SEA(previous_key_id), false},
    {"previous_key", V_SECRET, SEA(previous_key), false},
    {"disabled", V_BOOL, SEA(disabled), false},
};

/* Vault/OpenBao's names; slot and mechanism are strings ("0", "0x1087"). */
static const struct key_spec pkcs11_seal_keys[] = {
    {"lib", V_STRING, SEA(lib), true},
    {"slot", V_STRING, SEA(slot), false},
    {"token_label", V_STRING, SEA(token_label), false},
    {"pin", V_SECRET, SEA(pin), false},
    {"key_label", V_STRING, SEA(key_label), true},
    {"key_id", V_STRING, SEA(key_id), false},
    {"mechanism", V_STRING, SEA(mechanism), false},
    {"rsa_oaep_hash", V_STRING, SEA(rsa_oaep_hash), false},
    {"generate_key", V_BOOL, SEA(generate_key), false},
    {"disabled", V_BOOL, SEA(disabled), false},
};

enum block_word {
    BLOCK_LISTENER = 1,
    BLOCK_STORAGE = 2,
};

struct block_kind {
    enum block_word word;
    const char *type;
    const struct key_spec *keys;
    size_t nkeys;
    enum config_storage storage;
};

static const struct block_kind blocks[] = {
    {BLOCK_LISTENER, "tcp", listener_keys, ARRAY_LEN(listener_keys),
     CONFIG_STORAGE_NONE},
    {BLOCK_STORAGE, "inmem", NULL, 0, CONFIG_STORAGE_INMEM},
    {BLOCK_STORAGE, "sqlite", sqlite_keys, ARRAY_LEN(sqlite_keys),
     CONFIG_STORAGE_SQLITE},
    {BLOCK_STORAGE, "postgresql", pg_keys, ARRAY_LEN(pg_keys),
     CONFIG_STORAGE_POSTGRESQL},
};

/* Names a configuration might reach for, with a clearer refusal. */
static const char *const unavailable[] = {
    "io", "os", "require", "dofile", "loadfile", "load", "loadstring",
    "package", "debug", "pcall", "xpcall", "collectgarbage", "print",
    "rawset", "rawget", "rawequal", "rawlen", "setmetatable",
    "getmetatable", "coroutine", "utf8", "_G",
};

/* ============================================================ context == */

/*
 * One load. It is the allocator's userdata, so every Lua-facing function
 * finds it with lua_getallocf.
 */
struct load_ctx {
    struct coffer_config *out;
    size_t allocated;
    unsigned long instructions;
    int top_line[ARRAY_LEN(top_keys)]; /* 0 = not set yet */
    int listener_line;                 /* 0 = no listener block yet */
    int storage_line;
    int listener_pending;              /* line of a block without a body */
    int storage_pending;
    int telemetry_line;                /* 0 = no telemetry block yet */
    int seal_pending;                  /* line of a seal without a body */
    int audit_pending;                 /* line of an audit without a body */
};

static struct load_ctx *ctx_of(lua_State *L)
{
    void *ud = NULL;

    lua_getallocf(L, &ud);
    return ud;
}

/*
 * A capped allocator that wipes every block it gives back: the file may
 * hold a database password, and it lives in Lua strings until the state
 * closes.
 */
static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct load_ctx *ctx = ud;
    size_t old = ptr != NULL ? osize : 0;
    void *p;

    if (nsize == 0) {
        secure_free(ptr, old);
        ctx->allocated -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > CONFIG_MEMORY_LIMIT - ctx->allocated)
        return NULL;
    p = malloc(nsize); /* not xmalloc: Lua handles NULL */
    if (p == NULL)
        return nsize <= old ? ptr : NULL;
    if (old > 0) {
        memcpy(p, ptr, old < nsize ? old : nsize);
        secure_free(ptr, old);
    }
    ctx->allocated = ctx->allocated - old + nsize;
    return p;
}

/* ============================================================= errors == */

/* Raises "FILE:LINE: <message>" for the function at level. [-0, +1, v] */
static int raise_at(lua_State *L, int level, const char *fmt, ...)
{
    va_list ap;

    luaL_where(L, level);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    return lua_error(L);
}

/* The current line of the function at level, or 0. */
static int line_at(lua_State *L, int level)
{
    lua_Debug ar;

    if (lua_getstack(L, level, &ar) == 0 ||
        lua_getinfo(L, "l", &ar) == 0)
        return 0;
    return ar.currentline > 0 ? ar.currentline : 0;
}

/*
 * Count hook: raises once the budget is spent, then fires on every
 * instruction so nothing can absorb the error. In a hook, level 0 is the
 * running Lua function.
 */
static void config_hook(lua_State *L, lua_Debug *ar)
{
    struct load_ctx *ctx = ctx_of(L);

    (void)ar;
    ctx->instructions += CONFIG_HOOK_COUNT;
    if (ctx->instructions <= CONFIG_MAX_INSTRUCTIONS)
        return;
    lua_sethook(L, config_hook, LUA_MASKCOUNT, 1);
    raise_at(L, 0, "the configuration did not finish within %d "
                   "instructions (an endless loop?)",
             (int)CONFIG_MAX_INSTRUCTIONS);
}

/* ============================================================= values == */

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = xstrdup(s);
}

/* Raises "<what><key>: expected <want>, got <type>". [-0, +1, v] */
static int type_error(lua_State *L, const char *what, const char *key,
                      const char *want, int idx)
{
    return raise_at(L, 1, "%s%s: expected %s, got %s", what, key, want,
                    luaL_typename(L, idx));
}

/* A name Prometheus accepts once its dots become underscores. */
static bool is_metric_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Checks the string at idx; returns it. [-0, +0, v] */
static const char *check_string(lua_State *L, int idx, const char *what,
                                const char *key)
{
    size_t len;
    const char *s;

    if (lua_type(L, idx) != LUA_TSTRING)
        type_error(L, what, key, "string", idx);
    s = lua_tolstring(L, idx, &len);
    if (len == 0)
        raise_at(L, 1, "%s%s: must not be empty", what, key);
    if (strlen(s) != len)
        raise_at(L, 1, "%s%s: contains a NUL byte", what, key);
    return s;
}

static bool is_sql_name(const char *s)
{
    size_t part = 0;
    int dots = 0;

    for (; *s != '\0'; s++) {
        if (*s == '.' && part > 0 && dots == 0) {
            dots++;
            part = 0;
            continue;
        }
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              *s == '_' || (part > 0 && *s >= '0' && *s <= '9')))
            return false;
        if (++part > 63)
            return false;
    }
    return part > 0;
}

static void check_duration(lua_State *L, int idx, const char *what,
                           const char *key, int64_t *dst)
{
    struct errbuf err = {{0}};
    lua_Integer n;
    int isnum = 0;

    if (lua_type(L, idx) == LUA_TNUMBER) {
        n = lua_tointegerx(L, idx, &isnum);
        if (isnum == 0 || n < 0)
            raise_at(L, 1, "%s%s: invalid duration %s", what, key,
                     luaL_tolstring(L, idx, NULL));
        *dst = (int64_t)n;
        return;
    }
    if (lua_type(L, idx) != LUA_TSTRING)
        type_error(L, what, key, "a duration such as \"768h\"", idx);
    if (duration_parse(lua_tostring(L, idx), dst, &err) != 0)
        raise_at(L, 1, "%s%s: invalid duration \"%s\"", what, key,
                 lua_tostring(L, idx));
}

static void check_bool(lua_State *L, int idx, const char *what,
                       const char *key, bool *dst)
{
    lua_Integer n;
    int isnum = 0;

    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        *dst = lua_toboolean(L, idx) != 0;
        return;
    case LUA_TNUMBER: /* HCL habit: tls_disable = 1 */
        n = lua_tointegerx(L, idx, &isnum);
        if (isnum == 0 || (n != 0 && n != 1))
            raise_at(L, 1, "%s%s: invalid boolean %s", what, key,
                     luaL_tolstring(L, idx, NULL));
        *dst = n == 1;
        return;
    case LUA_TSTRING: /* HCL habit: tls_disable = "true" */
        if (bool_parse(lua_tostring(L, idx), dst) != 0)
            raise_at(L, 1, "%s%s: invalid boolean \"%s\"", what, key,
                     lua_tostring(L, idx));
        return;
    default:
        type_error(L, what, key, "boolean", idx);
    }
}

static lua_Integer check_integer(lua_State *L, int idx, const char *what,
                                 const char *key, lua_Integer min,
                                 lua_Integer max)
{
    lua_Integer n;
    int isnum = 0;

    if (lua_type(L, idx) != LUA_TNUMBER)
        type_error(L, what, key, "integer", idx);
    n = lua_tointegerx(L, idx, &isnum);
    if (isnum == 0 || n < min || n > max)
        raise_at(L, 1, "%s%s: expected an integer from %I to %I, got %s",
                 what, key, min, max, luaL_tolstring(L, idx, NULL));
    return n;
}

/*
 * plugin_http_allowed = { "https://kubernetes.default.svc", ... }: a
 * sequence of entries lua_http_allow_check accepts ({} refuses every
 * URL). [-0, +0, v]
 */
static void check_url_list(lua_State *L, int idx, const char *what,
                           const char *key, struct config_url_list *dst)
{
    struct errbuf err = {{0}};
    lua_Integer n;
    size_t pairs = 0;

    if (lua_type(L, idx) != LUA_TTABLE)
        type_error(L, what, key, "a list of URLs such as { "
                   "\"https://host:port\" }", idx);
    n = (lua_Integer)lua_rawlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        pairs++;
        lua_pop(L, 1);
    }
    if ((lua_Integer)pairs != n)
        raise_at(L, 1, "%s%s: expected a list of URLs, got a table with "
                       "named keys", what, key);
    if (n > LUA_HTTP_ALLOW_MAX)
        raise_at(L, 1, "%s%s: more than %d entries", what, key,
                 LUA_HTTP_ALLOW_MAX);
    strvec_release(&dst->urls);
    for (lua_Integer i = 1; i <= n; i++) {
        const char *s;

        lua_rawgeti(L, idx, i);
        if (lua_type(L, -1) != LUA_TSTRING)
            raise_at(L, 1, "%s%s[%I]: expected a URL string, got %s", what,
                     key, i, luaL_typename(L, -1));
        s = lua_tostring(L, -1);
        if (strlen(s) != lua_rawlen(L, -1) ||
            lua_http_allow_check(s, &err) != 0)
            raise_at(L, 1, "%s%s[%I]: invalid entry \"%s\": %s", what, key,
                     i, s, err.msg[0] != '\0' ? err.msg : "contains a NUL "
                     "byte");
        strvec_push(&dst->urls, s);
        lua_pop(L, 1);
    }
    dst->set = true;
}

/*
 * Checks the value at idx against spec and stores it at base + offset.
 * what is "" for top-level keys and `listener "tcp": ` inside a block.
 * [-0, +0, v]
 */
static void store_value(lua_State *L, int idx, const struct key_spec *spec,
                        void *base, const char *what)
{
    char *field = (char *)base + spec->offset;
    const char *s;
    char host[256];
    uint16_t port;

    switch (spec->kind) {
    case V_STRING:
    case V_SECRET:
        set_str((char **)field, check_string(L, idx, what, spec->name));
        break;
    case V_ADDRESS:
        s = check_string(L, idx, what, spec->name);
        if (http_parse_address(s, host, &port) != 0)
            raise_at(L, 1, "%s%s: invalid address \"%s\" (want host:port)",
                     what, spec->name, s);
        set_str((char **)field, s);
        break;
    case V_URL:
        s = check_string(L, idx, what, spec->name);
        if (!str_has_prefix(s, "http://") && !str_has_prefix(s, "https://"))
            raise_at(L, 1, "%s%s: invalid URL \"%s\" (want "
                           "https://host:port)", what, spec->name, s);
        set_str((char **)field, s);
        break;
    case V_LOGLEVEL:
        s = check_string(L, idx, what, spec->name);
        if (log_level_parse(s) < 0)
            raise_at(L, 1, "%s%s: unknown level \"%s\" (want trace, debug, "
                           "info, warn or error)", what, spec->name, s);
        set_str((char **)field, s);
        break;
    case V_IDENT:
        s = check_string(L, idx, what, spec->name);
        if (!is_sql_name(s))
            raise_at(L, 1, "%s%s: invalid table name \"%s\" (want letters, "
                           "digits and _, or schema.table)",
                     what, spec->name, s);
        set_str((char **)field, s);
        break;
    case V_DURATION:
        check_duration(L, idx, what, spec->name, (int64_t *)field);
        break;
    case V_BOOL:
        check_bool(L, idx, what, spec->name, (bool *)field);
        break;
    case V_WORKERS:
        *(unsigned int *)field = (unsigned int)check_integer(
            L, idx, what, spec->name, 1, CONFIG_MAX_WORKERS);
        break;
    case V_NICE:
        *(int *)field = (int)check_integer(L, idx, what, spec->name, 0, 19);
        break;
    case V_SIZE:
        *(size_t *)field = (size_t)check_integer(L, idx, what, spec->name, 1,
                                                 LUA_MAXINTEGER);
        break;
    case V_COUNT:
        *(unsigned int *)field = (unsigned int)check_integer(
            L, idx, what, spec->name, 1, CONFIG_MAX_CONNECTIONS);
        break;
    case V_LUA_MEMORY:
        *(size_t *)field = (size_t)check_integer(
            L, idx, what, spec->name, CONFIG_LUA_MEMORY_MIN,
            CONFIG_LUA_MEMORY_MAX);
        break;
    case V_LUA_TIMEOUT:
        check_duration(L, idx, what, spec->name, (int64_t *)field);
        if (*(int64_t *)field < 1 ||
            *(int64_t *)field > CONFIG_LUA_TIMEOUT_MAX)
            raise_at(L, 1, "%s%s: must be from 1s to %ds", what, spec->name,
                     CONFIG_LUA_TIMEOUT_MAX);
        break;
    case V_LUA_BUDGET:
        *(uint64_t *)field = (uint64_t)check_integer(
            L, idx, what, spec->name, CONFIG_LUA_BUDGET_MIN,
            CONFIG_LUA_BUDGET_MAX);
        break;
    case V_URL_LIST:
        check_url_list(L, idx, what, spec->name,
                       (struct config_url_list *)field);
        break;
    case V_LOGFORMAT:
        s = check_string(L, idx, what, spec->name);
        if (strcmp(s, "standard") != 0 && strcmp(s, "json") != 0)
            raise_at(L, 1, "%s%s: unknown format \"%s\" (want standard or "
                           "json)", what, spec->name, s);
        set_str((char **)field, s);
        break;
    case V_CACHE_SIZE:
        *(size_t *)field = (size_t)check_integer(L, idx, what, spec->name, 0,
                                                 CONFIG_CACHE_SIZE_MAX);
        break;
    case V_METRIC_NAME:
        s = check_string(L, idx, what, spec->name);
        if (!is_metric_name(s))
            raise_at(L, 1, "%s%s: invalid metrics prefix \"%s\" (want "
                           "letters, digits, _ and ., at most 64, not "
                           "starting with a digit)", what, spec->name, s);
        set_str((char **)field, s);
        break;
    }
}

static const struct key_spec *find_key(const struct key_spec *keys,
                                       size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    }
    return NULL;
}

/*
 * Stores every key = value of the table at index 1 into base by keys;
 * what prefixes errors, block names it in "unknown key". [-0, +0, v]
 */
static void store_block(lua_State *L, const struct key_spec *keys, size_t n,
                        void *base, const char *what, const char *block)
{
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const struct key_spec *spec;

        if (lua_type(L, -2) != LUA_TSTRING)
            raise_at(L, 1, "%sunexpected value without a key (want "
                           "key = value)", what);
        spec = find_key(keys, n, lua_tostring(L, -2));
        if (spec == NULL)
            raise_at(L, 1, "unknown key \"%s\" in %s", lua_tostring(L, -2),
                     block);
        store_value(L, lua_gettop(L), spec, base, what);
        lua_pop(L, 1);
    }
}

/* ============================================================= blocks == */

static const char *word_name(enum block_word w)
{
    return w == BLOCK_LISTENER ? "listener" : "storage";
}

/* Listener rules that span keys; fills defaults. [-0, +0, v] */
static void finish_listener(lua_State *L, struct config_listener *l)
{
    if (l->address == NULL)
        l->address = xstrdup(CONFIG_DEFAULT_ADDRESS);
    if (l->max_request_size == 0)
        l->max_request_size = CONFIG_DEFAULT_MAX_REQUEST_SIZE;
    if (l->tls_disable) {
        /* tls_disable wins, as in Vault: the files are not read. */
        free(l->tls_cert_file);
        free(l->tls_key_file);
        l->tls_cert_file = NULL;
        l->tls_key_file = NULL;
        return;
    }
    if (l->tls_cert_file == NULL || l->tls_key_file == NULL)
        raise_at(L, 1, "listener \"tcp\": tls_cert_file and tls_key_file "
                       "are required unless tls_disable = true");
}

/*
 * The block function that listener "T" / storage "T" return.
 * Upvalues: 1 = index into blocks[], 2 = true once the body was given.
 * [-0, +0, v]
 */
static int l_config_block(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    const struct block_kind *b =
        &blocks[lua_tointeger(L, lua_upvalueindex(1))];
    const char *what;
    char block[64];
    void *base;

    what = lua_pushfstring(L, "%s \"%s\": ", word_name(b->word), b->type);
    if (lua_type(L, 1) != LUA_TTABLE)
        raise_at(L, 1, "%sexpected a { ... } block, got %s", what,
                 luaL_typename(L, 1));
    if (lua_toboolean(L, lua_upvalueindex(2)))
        raise_at(L, 1, "%sthe block was given twice", what);
    lua_pushboolean(L, 1);
    lua_replace(L, lua_upvalueindex(2));

    if (b->word == BLOCK_LISTENER) {
        base = &ctx->out->listener;
        ctx->listener_pending = 0;
    } else {
        base = &ctx->out->storage;
        ctx->storage_pending = 0;
    }

    snprintf(block, sizeof(block), "%s \"%s\"", word_name(b->word), b->type);
    store_block(L, b->keys, b->nkeys, base, what, block);

    for (size_t i = 0; i < b->nkeys; i++) {
        lua_getfield(L, 1, b->keys[i].name);
        if (b->keys[i].required && lua_isnil(L, -1))
            raise_at(L, 1, "%s%s is required", what, b->keys[i].name);
        lua_pop(L, 1);
    }
    if (b->word == BLOCK_LISTENER)
        finish_listener(L, base);
    return 0;
}

/* Finds blocks[] for word and the type at index 1. [-0, +0, v] */
static size_t find_block(lua_State *L, enum block_word word)
{
    const char *type;

    if (lua_type(L, 1) != LUA_TSTRING)
        raise_at(L, 1, "%s: expected a type name, as in %s", word_name(word),
                 word == BLOCK_LISTENER ? "listener \"tcp\" { ... }"
                                        : "storage \"sqlite\" { ... }");
    type = lua_tostring(L, 1);
    for (size_t i = 0; i < ARRAY_LEN(blocks); i++) {
        if (blocks[i].word == word && strcmp(blocks[i].type, type) == 0)
            return i;
    }
    if (word == BLOCK_LISTENER)
        raise_at(L, 1, "unknown listener type \"%s\" (only \"tcp\" is "
                       "supported)", type);
    raise_at(L, 1, "unknown storage type \"%s\" (want inmem, sqlite or "
                   "postgresql)", type);
    return 0;
}

/* Pushes the block function for blocks[i]. [-0, +1, m] */
static int push_block_fn(lua_State *L, size_t i)
{
    lua_pushinteger(L, (lua_Integer)i);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, l_config_block, 2);
    return 1;
}

/* listener "tcp" -> block function. [-0, +1, v] */
static int l_config_listener(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    size_t i = find_block(L, BLOCK_LISTENER);

    if (ctx->listener_line != 0)
        raise_at(L, 1, "a second listener block (the first is at line %d): "
                       "only one listener is supported for now",
                 ctx->listener_line);
    ctx->listener_line = line_at(L, 1);
    ctx->listener_pending = ctx->listener_line;
    return push_block_fn(L, i);
}

/* storage "sqlite" -> block function. [-0, +1, v] */
static int l_config_storage(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    size_t i = find_block(L, BLOCK_STORAGE);

    if (ctx->storage_line != 0)
        raise_at(L, 1, "a second storage block (the first is at line %d): "
                       "exactly one is allowed", ctx->storage_line);
    ctx->storage_line = line_at(L, 1);
    ctx->storage_pending = ctx->storage_line;
    ctx->out->storage.type = blocks[i].storage;
    return push_block_fn(L, i);
}

/* telemetry { ... } (no type name, as in Vault). [-0, +0, v] */
static int l_config_telemetry(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    const char *what = "telemetry: ";

    if (lua_type(L, 1) != LUA_TTABLE)
        raise_at(L, 1, "%sexpected a { ... } block, got %s", what,
                 luaL_typename(L, 1));
    if (ctx->telemetry_line != 0)
        raise_at(L, 1, "a second telemetry block (the first is at line %d)",
                 ctx->telemetry_line);
    ctx->telemetry_line = line_at(L, 1);
    store_block(L, telemetry_keys, ARRAY_LEN(telemetry_keys),
                &ctx->out->telemetry, what, "telemetry");
    return 0;
}

/* =============================================================== seal == */

/* Raises unless every required key of the table was given. [-0, +0, v] */
static void check_required(lua_State *L, const struct key_spec *keys,
                           size_t n, const void *base, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (keys[i].required &&
            *(char *const *)((const char *)base + keys[i].offset) == NULL)
            raise_at(L, 1, "%s%s is required", what, keys[i].name);
    }
}

/* seal "pkcs11": slot or token_label picks the token. [-0, +0, v] */
static void store_pkcs11_seal(lua_State *L, struct config_seal *seal)
{
    const char *what = "seal \"pkcs11\": ";

    store_block(L, pkcs11_seal_keys, ARRAY_LEN(pkcs11_seal_keys), seal,
                what, "seal \"pkcs11\"");
    check_required(L, pkcs11_seal_keys, ARRAY_LEN(pkcs11_seal_keys), seal,
                   what);
    if ((seal->slot == NULL) == (seal->token_label == NULL))
        raise_at(L, 1, "%sgive slot or token_label (one of them)", what);
}

/*
 * The block function of seal "static" or "pkcs11". Upvalue 1: true once
 * the body was given. Keys are checked here; seal_static.h and
 * seal_pkcs11.h read them at start-up. [-0, +0, v]
 */
static int l_config_seal_body(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    struct config_seal *seal = &ctx->out->seal;
    bool pkcs11 = strcmp(seal->type, "pkcs11") == 0;
    const char *what = pkcs11 ? "seal \"pkcs11\": " : "seal \"static\": ";

    if (lua_type(L, 1) != LUA_TTABLE)
        raise_at(L, 1, "%sexpected a { ... } block, got %s", what,
                 luaL_typename(L, 1));
    if (lua_toboolean(L, lua_upvalueindex(1)))
        raise_at(L, 1, "%sthe block was given twice", what);
    lua_pushboolean(L, 1);
    lua_replace(L, lua_upvalueindex(1));
    ctx->seal_pending = 0;
    if (pkcs11) {
        store_pkcs11_seal(L, seal);
        return 0;
    }
    store_block(L, static_seal_keys, ARRAY_LEN(static_seal_keys), seal,
                what, "seal \"static\"");
    check_required(L, static_seal_keys, ARRAY_LEN(static_seal_keys), seal,
                   what);
    if ((seal->previous_key == NULL) != (seal->previous_key_id == NULL))
        raise_at(L, 1, "%sprevious_key and previous_key_id go together: "
                       "give both or neither", what);
    return 0;
}

/* seal "static" | "pkcs11" -> block function. [-0, +1, v] */
static int l_config_seal(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    const char *t;

    if (ctx->out->seal.line != 0)
        raise_at(L, 1, "a second seal block (the first is at line %d): "
                       "exactly one is allowed", ctx->out->seal.line);
    if (lua_type(L, 1) != LUA_TSTRING)
        raise_at(L, 1, "seal: expected a type name, as in seal \"static\" "
                       "{ ... }");
    t = lua_tostring(L, 1);
    if (strcmp(t, "static") != 0 && strcmp(t, "pkcs11") != 0)
        raise_at(L, 1, "unknown seal type \"%s\" (want static or pkcs11)",
                 t);
    ctx->out->seal.line = line_at(L, 1) > 0 ? line_at(L, 1) : 1;
    ctx->seal_pending = ctx->out->seal.line;
    set_str(&ctx->out->seal.type, t);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, l_config_seal_body, 1);
    return 1;
}

/* ============================================================== audit == */

/*
 * audit "TYPE" "PATH" { ... } (OpenBao's declarative audit stanza), also
 * audit "TYPE" { ... } with the type as the path, as the API's default:
 *
 *   audit "file" "main" {
 *     description = "...", ["local"] = false,
 *     options = { file_path = "/var/log/coffer/audit.log", mode = "0600" },
 *   }
 *
 * Option keys may also be written directly in the block. Every value is
 * checked now (audit_check_declaration), so a bad declaration stops the
 * server at start-up with the file and line; the device itself is
 * opened at unseal.
 */

/* Copies one option value as the string the API would keep. [-0,+0,v] */
static void audit_option(lua_State *L, int idx, const char *what,
                         const char *key, cJSON *options)
{
    char num[64];

    if (cJSON_GetObjectItemCaseSensitive(options, key) != NULL)
        raise_at(L, 1, "%soption %s is given twice", what, key);
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        cJSON_AddStringToObject(options, key, check_string(L, idx, what,
                                                           key));
        break;
    case LUA_TBOOLEAN:
        cJSON_AddStringToObject(options, key,
                                lua_toboolean(L, idx) ? "true" : "false");
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(num, sizeof(num), "%lld",
                     (long long)lua_tointeger(L, idx));
        else
            snprintf(num, sizeof(num), "%.15g", lua_tonumber(L, idx));
        cJSON_AddStringToObject(options, key, num);
        break;
    default:
        type_error(L, what, key, "a string, number or boolean", idx);
    }
}

/* options = { key = value, ... } into options. [-0, +0, v] */
static void audit_options_table(lua_State *L, int idx, const char *what,
                                cJSON *options)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        type_error(L, what, "options", "a { key = value } table", idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            raise_at(L, 1, "%soptions: unexpected value without a key "
                           "(want key = value)", what);
        audit_option(L, lua_gettop(L), what, lua_tostring(L, -2), options);
        lua_pop(L, 1);
    }
}

/* Fills d from the block table at index 1. [-0, +0, v] */
static void audit_fill(lua_State *L, const char *what,
                       struct config_audit_device *d)
{
    struct errbuf err = {{0}};

    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        const char *key;

        if (lua_type(L, -2) != LUA_TSTRING)
            raise_at(L, 1, "%sunexpected value without a key (want "
                           "key = value)", what);
        key = lua_tostring(L, -2);
        if (strcmp(key, "description") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING)
                type_error(L, what, key, "string", lua_gettop(L));
            set_str(&d->description, lua_tostring(L, -1));
        } else if (strcmp(key, "local") == 0) {
            check_bool(L, lua_gettop(L), what, key, &d->local);
        } else if (strcmp(key, "options") == 0) {
            audit_options_table(L, lua_gettop(L), what, d->options);
        } else {
            audit_option(L, lua_gettop(L), what, key, d->options);
        }
        lua_pop(L, 1);
    }
    if (audit_check != NULL && audit_check(d->type, d->options, &err) != 0)
        raise_at(L, 1, "%s%s", what, err.msg);
}

/*
 * A device path as the API would take it: no empty, "." or ".."
 * segments, no control characters.
 */
static bool is_audit_path(const char *p)
{
    size_t seg = 0;
    const char *start = p;

    if (*p == '\0' || *p == '/')
        return false;
    for (const char *c = p;; c++) {
        if (*c == '/' || *c == '\0') {
            if ((seg == 0 && *c == '/') ||
                (seg == 1 && start[0] == '.') ||
                (seg == 2 && start[0] == '.' && start[1] == '.'))
                return false;
            if (*c == '\0')
                return true;
            seg = 0;
            start = c + 1;
            continue;
        }
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
        seg++;
    }
}

/* "main" and "main/" name the same device, as in audit.c. */
static bool same_audit_path(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);

    while (na > 0 && a[na - 1] == '/')
        na--;
    while (nb > 0 && b[nb - 1] == '/')
        nb--;
    return na == nb && memcmp(a, b, na) == 0;
}

/* Records audit "type" "path" with the block table at index 1. [-0,+0,v] */
static void audit_block(lua_State *L, const char *type, const char *path,
                        int line)
{
    struct load_ctx *ctx = ctx_of(L);
    struct coffer_config *c = ctx->out;
    struct config_audit_device *d;
    const char *what = lua_pushfstring(L, "audit \"%s\" \"%s\": ", type,
                                       path);

    if (lua_type(L, 1) != LUA_TTABLE)
        raise_at(L, 1, "%sexpected a { ... } block, got %s", what,
                 luaL_typename(L, 1));
    for (size_t i = 0; i < c->naudit; i++) {
        if (same_audit_path(c->audit[i].path, path))
            raise_at(L, 1, "%sa second audit device at path \"%s\" (the "
                           "first is at line %d)", what, path,
                     c->audit[i].line);
    }
    ctx->audit_pending = 0;
    c->audit = xrealloc(c->audit, (c->naudit + 1) * sizeof(*c->audit));
    d = &c->audit[c->naudit++];
    memset(d, 0, sizeof(*d));
    d->type = xstrdup(type);
    d->path = xstrdup(path);
    d->description = xstrdup("");
    d->options = cJSON_CreateObject();
    d->line = line;
    audit_fill(L, what, d);
}

/*
 * The block function of audit "T" "P". Upvalues: 1 = type, 2 = path,
 * 3 = the block's line, 0 once the body was given. [-0, +0, v]
 */
static int l_config_audit_body(lua_State *L)
{
    int line = (int)lua_tointeger(L, lua_upvalueindex(3));

    if (line == 0)
        raise_at(L, 1, "audit \"%s\" \"%s\": the block was given twice",
                 lua_tostring(L, lua_upvalueindex(1)),
                 lua_tostring(L, lua_upvalueindex(2)));
    lua_pushinteger(L, 0);
    lua_replace(L, lua_upvalueindex(3));
    audit_block(L, lua_tostring(L, lua_upvalueindex(1)),
                lua_tostring(L, lua_upvalueindex(2)), line);
    return 0;
}

/*
 * audit "T" -> f; f "P" -> block function, or f { ... } (path = type).
 * Upvalues: 1 = type, 2 = line, 0 once used. [-0, +1, v]
 */
static int l_config_audit_path(lua_State *L)
{
    int line = (int)lua_tointeger(L, lua_upvalueindex(2));
    const char *type = lua_tostring(L, lua_upvalueindex(1));
    const char *p;

    if (line == 0)
        raise_at(L, 1, "audit \"%s\": the path was given twice", type);
    lua_pushinteger(L, 0);
    lua_replace(L, lua_upvalueindex(2));
    if (lua_type(L, 1) == LUA_TTABLE) { /* audit "file" { ... } */
        audit_block(L, type, type, line);
        return 0;
    }
    if (lua_type(L, 1) != LUA_TSTRING)
        raise_at(L, 1, "audit \"%s\": expected a path or a { ... } block, "
                       "got %s", type, luaL_typename(L, 1));
    p = lua_tostring(L, 1);
    if (strlen(p) != lua_rawlen(L, 1) || !is_audit_path(p))
        raise_at(L, 1, "audit \"%s\": invalid path \"%s\"", type, p);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushinteger(L, line);
    lua_pushcclosure(L, l_config_audit_body, 3);
    return 1;
}

/* audit "file" -> path function. [-0, +1, v] */
static int l_config_audit(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    const char *t;

    if (ctx->audit_pending != 0)
        raise_at(L, 1, "the audit device at line %d has no { ... } block",
                 ctx->audit_pending);
    if (lua_type(L, 1) != LUA_TSTRING)
        raise_at(L, 1, "audit: expected a type name, as in audit \"file\" "
                       "\"main\" { ... }");
    t = lua_tostring(L, 1);
    if (strcmp(t, "file") != 0 && strcmp(t, "socket") != 0 &&
        strcmp(t, "syslog") != 0)
        raise_at(L, 1, "unknown audit device type \"%s\" (want file, "
                       "socket or syslog)", t);
    ctx->audit_pending = line_at(L, 1);
    lua_settop(L, 1);
    lua_pushinteger(L, ctx->audit_pending > 0 ? ctx->audit_pending : 1);
    lua_pushcclosure(L, l_config_audit_path, 2);
    return 1;
}

/* ======================================================= environment == */

/*
 * _ENV.__index(env, name): a builtin, a setting assigned earlier (so
 * `max_lease_ttl = default_lease_ttl` works), nil for a setting not set
 * yet, or an error. Upvalues: 1 = builtins, 2 = settings. [-0, +1, v]
 */
static int l_config_index(lua_State *L)
{
    const char *name;

    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL)
        return 1;
    if (lua_type(L, 2) != LUA_TSTRING)
        return raise_at(L, 1, "unknown name");
    name = lua_tostring(L, 2);
    if (find_key(top_keys, ARRAY_LEN(top_keys), name) != NULL)
        return 1; /* nil */
    for (size_t i = 0; i < ARRAY_LEN(unavailable); i++) {
        if (strcmp(unavailable[i], name) == 0)
            return raise_at(L, 1, "\"%s\" is not available in a "
                                  "configuration file", name);
    }
    return raise_at(L, 1, "unknown name \"%s\"", name);
}

/*
 * _ENV.__newindex(env, key, value): a top-level setting.
 * Upvalues: 1 = builtins, 2 = settings. [-0, +0, v]
 */
static int l_config_newindex(lua_State *L)
{
    struct load_ctx *ctx = ctx_of(L);
    const struct key_spec *spec;
    const char *name;
    size_t i;

    if (lua_type(L, 2) != LUA_TSTRING)
        return raise_at(L, 1, "unknown key (settings are names)");
    name = lua_tostring(L, 2);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return raise_at(L, 1, "cannot assign to the built-in \"%s\"", name);
    lua_pop(L, 1);
    spec = find_key(top_keys, ARRAY_LEN(top_keys), name);
    if (spec == NULL)
        return raise_at(L, 1, "unknown key \"%s\"", name);
    i = (size_t)(spec - top_keys);
    if (ctx->top_line[i] != 0)
        return raise_at(L, 1, "%s is set twice (first at line %d)", name,
                        ctx->top_line[i]);
    store_value(L, 3, spec, ctx->out, "");
    ctx->top_line[i] = line_at(L, 1);
    lua_settop(L, 3);
    lua_rawset(L, lua_upvalueindex(2));
    return 0;
}

/* Copies G[name] for each name into the table at t. [-0, +0, -] */
static void copy_fields(lua_State *L, int G, int t, const char *const *names,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lua_getfield(L, G, names[i]);
        lua_setfield(L, t, names[i]);
    }
}

/*
 * Builds the chunk's _ENV (run under lua_pcall). [-0, +1, m]
 *
 *   env = {} with metatable { __index, __newindex, __metatable }
 *   builtins = { assert, error, ..., string, table, math, listener, storage }
 *   settings = { [key] = value as written }
 */
static int config_setup(lua_State *L)
{
    static const char *const base[] = {
        "assert", "error", "ipairs", "next", "pairs", "select",
        "tonumber", "tostring", "type", "_VERSION",
    };
    static const luaL_Reg libs[] = {
        {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math},
    };
    int builtins, settings;

    lua_newtable(L);
    builtins = lua_gettop(L);
    luaL_requiref(L, "_G", luaopen_base, 1);
    copy_fields(L, lua_gettop(L), builtins, base, ARRAY_LEN(base));
    lua_pop(L, 1);
    for (size_t i = 0; i < ARRAY_LEN(libs); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 0);
        lua_setfield(L, builtins, libs[i].name);
    }
    lua_pushcfunction(L, l_config_listener);
    lua_setfield(L, builtins, "listener");
    lua_pushcfunction(L, l_config_storage);
    lua_setfield(L, builtins, "storage");
    lua_pushcfunction(L, l_config_telemetry);
    lua_setfield(L, builtins, "telemetry");
    lua_pushcfunction(L, l_config_audit);
    lua_setfield(L, builtins, "audit");
    lua_pushcfunction(L, l_config_seal);
    lua_setfield(L, builtins, "seal");

    lua_newtable(L);
    settings = lua_gettop(L);

    lua_newtable(L); /* env */
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, builtins);
    lua_pushvalue(L, settings);
    lua_pushcclosure(L, l_config_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, builtins);
    lua_pushvalue(L, settings);
    lua_pushcclosure(L, l_config_newindex, 2);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    return 1;
}

/* ============================================================ loading == */

/*
 * Reads the configuration file into file (buf_init'ed by the caller with
 * the size ceiling). Only regular files: a directory or a FIFO given by
 * mistake should fail with a clear message, not hang or read garbage.
 */
static int read_config_file(const char *path, struct buf *file,
                            struct errbuf *err)
{
    struct file_error why;
    struct stat st;
    int rc;

    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        errbuf_set(err, "%s: not a regular file", path);
        return COFFER_EIO;
    }
    rc = file_read(path, file, &why);
    if (rc == COFFER_ETOOBIG)
        errbuf_set(err, "%s: larger than %zu bytes; not a configuration "
                        "file?", path, CONFIG_MAX_FILE_SIZE);
    else if (rc != 0)
        errbuf_set(err, "%s: cannot %s: %s", path, why.op,
                   strerror(why.errnum));
    /* One code for every unreadable file, as config_load promises. */
    return rc == COFFER_ENOTFOUND ? COFFER_EIO : rc;
}

/* Copies the error on top of the stack into err. */
static void lua_error_to(lua_State *L, int status, const char *path,
                         struct errbuf *err)
{
    const char *msg = lua_tostring(L, -1);

    if (status == LUA_ERRMEM)
        errbuf_set(err, "%s: the configuration needs more than %zu MiB of "
                        "memory", path, CONFIG_MEMORY_LIMIT >> 20);
    else if (msg == NULL)
        errbuf_set(err, "%s: raised a %s value instead of a message", path,
                   luaL_typename(L, -1));
    else
        errbuf_set(err, "%s", msg);
}

/* The two top-level names of one setting may not both be given. */
static bool duration_alias_twice(const struct load_ctx *ctx, const char *path,
                                 struct errbuf *err)
{
    size_t a = (size_t)(find_key(top_keys, ARRAY_LEN(top_keys),
                                 "default_max_request_duration") - top_keys);
    size_t b = (size_t)(find_key(top_keys, ARRAY_LEN(top_keys),
                                 "max_request_duration") - top_keys);

    if (ctx->top_line[a] == 0 || ctx->top_line[b] == 0)
        return false;
    errbuf_set(err, "%s:%d: max_request_duration is set twice: as "
                    "default_max_request_duration at line %d and as "
                    "max_request_duration at line %d", path,
               ctx->top_line[b], ctx->top_line[a], ctx->top_line[b]);
    return true;
}

/* Whole-file rules, checked after the chunk ran. */
static int check_whole(const struct load_ctx *ctx, const char *path,
                       struct errbuf *err)
{
    const struct coffer_config *c = ctx->out;
    char d[32], m[32];

    if (ctx->listener_pending != 0) {
        errbuf_set(err, "%s:%d: listener \"tcp\" has no { ... } block",
                   path, ctx->listener_pending);
        return COFFER_EINVAL;
    }
    if (ctx->storage_pending != 0) {
        errbuf_set(err, "%s:%d: storage \"%s\" has no { ... } block", path,
                   ctx->storage_pending, config_storage_name(c->storage.type));
        return COFFER_EINVAL;
    }
    if (ctx->audit_pending != 0) {
        errbuf_set(err, "%s:%d: audit device has no { ... } block", path,
                   ctx->audit_pending);
        return COFFER_EINVAL;
    }
    if (ctx->seal_pending != 0) {
        errbuf_set(err, "%s:%d: seal \"%s\" has no { ... } block", path,
                   ctx->seal_pending, c->seal.type);
        return COFFER_EINVAL;
    }
    if (ctx->storage_line == 0) {
        errbuf_set(err, "%s: no storage block; add one, e.g. storage "
                        "\"sqlite\" { path = \"/var/lib/coffer/coffer.db\" }",
                   path);
        return COFFER_EINVAL;
    }
    if (ctx->listener_line == 0) {
        errbuf_set(err, "%s: no listener block; add one, e.g. listener "
                        "\"tcp\" { address = \"127.0.0.1:8200\", ... }",
                   path);
        return COFFER_EINVAL;
    }
    if (duration_alias_twice(ctx, path, err))
        return COFFER_EINVAL;
    if (c->storage.ha_enabled && c->api_addr == NULL) {
        errbuf_set(err, "%s:%d: ha_enabled needs api_addr: the address "
                        "clients are sent to when this node is active, e.g. "
                        "api_addr = \"https://coffer-1.internal:8200\"",
                   path, ctx->storage_line);
        return COFFER_EINVAL;
    }
    if (c->storage.ha_lock_ttl != 0 &&
        (c->storage.ha_lock_ttl < 3 || c->storage.ha_lock_ttl > 300)) {
        errbuf_set(err, "%s:%d: ha_lock_ttl must be between 3s and 300s",
                   path, ctx->storage_line);
        return COFFER_EINVAL;
    }
    if (c->default_lease_ttl > 0 && c->max_lease_ttl > 0 &&
        c->default_lease_ttl > c->max_lease_ttl) {
        duration_format_short(c->default_lease_ttl, d, sizeof(d));
        duration_format_short(c->max_lease_ttl, m, sizeof(m));
        errbuf_set(err, "%s:%d: default_lease_ttl (%s) is greater than "
                        "max_lease_ttl (%s)", path,
                   ctx->top_line[TOP_DEFAULT_LEASE_TTL], d, m);
        return COFFER_EINVAL;
    }
    return 0;
}

/* Runs buf in a fresh sandboxed state, filling ctx->out. */
static int run_chunk(struct load_ctx *ctx, const char *path,
                     const char *buf, size_t len, struct errbuf *err)
{
    lua_State *L;
    char *chunkname;
    int status;
    int rc = COFFER_EINVAL;

    L = lua_newstate(config_alloc, ctx);
    if (L == NULL) {
        errbuf_set(err, "%s: cannot create a Lua state", path);
        return COFFER_ENOMEM;
    }
    chunkname = xmalloc(strlen(path) + 2);
    chunkname[0] = '@';
    memcpy(chunkname + 1, path, strlen(path) + 1);

    lua_pushcfunction(L, config_setup);
    status = lua_pcall(L, 0, 1, 0);
    if (status != LUA_OK) {
        lua_error_to(L, status, path, err);
        rc = status == LUA_ERRMEM ? COFFER_ENOMEM : COFFER_EINTERNAL;
        goto out;
    }
    if (len > 0 && buf[0] == LUA_SIGNATURE[0]) {
        errbuf_set(err, "%s: precompiled Lua is not accepted; use the "
                        "source text", path);
        goto out;
    }
    status = luaL_loadbufferx(L, buf, len, chunkname, "t");
    if (status != LUA_OK) {
        lua_error_to(L, status, path, err); /* Lua's "FILE:LINE: ..." */
        goto out;
    }
    lua_pushvalue(L, -2);
    lua_setupvalue(L, -2, 1); /* _ENV; a main chunk always has it */
    lua_pushvalue(L, -1);     /* stack: env chunk chunk */
    lua_sethook(L, config_hook, LUA_MASKCOUNT, CONFIG_HOOK_COUNT);
    status = lua_pcall(L, 0, 0, 0);
    if (status != LUA_OK) {
        lua_error_to(L, status, path, err);
        goto out;
    }
    /* `_ENV = {}` would have sent later settings to an unchecked table. */
    lua_getupvalue(L, -1, 1);
    if (!lua_rawequal(L, -1, -3)) {
        errbuf_set(err, "%s: the configuration replaced _ENV; assign the "
                        "settings directly", path);
        goto out;
    }
    rc = check_whole(ctx, path, err);
out:
    lua_close(L);
    free(chunkname);
    return rc;
}

int config_load(const char *path, struct coffer_config *out,
                struct errbuf *err)
{
    struct load_ctx ctx;
    struct buf file;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&ctx, 0, sizeof(ctx));
    ctx.out = out;
    buf_init(&file, CONFIG_MAX_FILE_SIZE);
    rc = read_config_file(path, &file, err);
    if (rc != 0)
        goto out;
    out->path = xstrdup(path);
    out->unsafe_allow_api_audit_creation = true; /* Vault's behaviour */
    out->http_inline_reads = true;
    out->kv_native_reads = true;
    out->ui = true;
    out->lease_revocation_nice = -1; /* unset: lease_expire.c's default */
    rc = run_chunk(&ctx, path, file.ptr != NULL ? file.ptr : "", file.len,
                   err);
out:
    buf_release(&file);
    if (rc != 0)
        config_release(out);
    return rc;
}

void config_release(struct coffer_config *c)
{
    if (c == NULL)
        return;
    free(c->path);
    free(c->listener.address);
    free(c->listener.tls_cert_file);
    free(c->listener.tls_key_file);
    free(c->storage.sqlite_path);
    secure_free_str(c->storage.pg_connection_url);
    free(c->storage.pg_table);
    free(c->plugin_directory);
    free(c->policy_directory);
    free(c->log_level);
    free(c->log_format);
    free(c->telemetry.metrics_prefix);
    free(c->api_addr);
    free(c->cluster_addr);
    free(c->cluster_ca_file);
    free(c->storage.ha_table);
    free(c->seal.type);
    free(c->seal.current_key_id);
    secure_free_str(c->seal.current_key);
    free(c->seal.previous_key_id);
    secure_free_str(c->seal.previous_key);
    free(c->seal.lib);
    free(c->seal.slot);
    free(c->seal.token_label);
    secure_free_str(c->seal.pin);
    free(c->seal.key_label);
    free(c->seal.key_id);
    free(c->seal.mechanism);
    free(c->seal.rsa_oaep_hash);
    strvec_release(&c->plugin_http_allowed.urls);
    for (size_t i = 0; i < c->naudit; i++) {
        free(c->audit[i].type);
        free(c->audit[i].path);
        free(c->audit[i].description);
        cJSON_Delete(c->audit[i].options);
    }
    free(c->audit);
    memset(c, 0, sizeof(*c));
}

const char *config_storage_name(enum config_storage type)
{
    switch (type) {
    case CONFIG_STORAGE_INMEM:
        return "inmem";
    case CONFIG_STORAGE_SQLITE:
        return "sqlite";
    case CONFIG_STORAGE_POSTGRESQL:
        return "postgresql";
    case CONFIG_STORAGE_NONE:
        break;
    }
    return "none";
}
