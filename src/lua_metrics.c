/*
 * lua_metrics.c - coffer.metrics.incr(name, labels [, by]).
 *
 * An engine counts its own events (the database engine: issuance refused
 * by a lease limit) into sys/metrics. Guards, since a plugin is not
 * trusted to keep metrics sane:
 *  - the name's first segment must be the calling mount's type
 *    ("database.lease_limit.refused" from a database mount), so a plugin
 *    cannot fake a core metric; [a-z0-9_] segments joined by dots;
 *  - at most METRICS_PLUGIN_MAX_LABELS - 1 labels of its own, [a-z0-9_]
 *    keys, string values cut at METRICS_PLUGIN_VALUE_MAX - 1 bytes; the
 *    label "mount" (the mount's path) is always added by Coffer;
 *  - the number of series is bounded (metrics_plugin.c).
 * Misuse raises.
 */
#include "lua_metrics.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_ctx.h"
#include "metrics_plugin.h"
#include "mount.h"

#define OWN_LABELS (METRICS_PLUGIN_MAX_LABELS - 1)
#define MAX_BY 1000000

static bool is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* [a-z0-9_]+ segments joined by single dots. */
static bool valid_name(const char *s)
{
    bool fresh = true;

    for (; *s != '\0'; s++) {
        if (*s == '.' && !fresh)
            fresh = true;
        else if (is_word_char(*s))
            fresh = false;
        else
            return false;
    }
    return !fresh;
}

/* name starts with "<type>." */
static bool under_type(const char *name, const char *type)
{
    size_t n = strlen(type);

    return n > 0 && strncmp(name, type, n) == 0 && name[n] == '.';
}

static bool valid_key(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n >= METRICS_PLUGIN_KEY_MAX || strcmp(k, "mount") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_word_char(k[i]))
            return false;
    }
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The labels table into keys/values (sorted by key, so that one label
 * set is one series whatever the table's order), after "mount". The
 * strings stay valid while the table is on the stack. Returns the count.
 */
static int read_labels(lua_State *L, int idx, const char *mount,
                       const char **keys, const char **values)
{
    const char *own[OWN_LABELS];
    int n = 0;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "coffer.metrics.incr: labels are strings");
        if (!valid_key(lua_tostring(L, -2)))
            luaL_error(L, "coffer.metrics.incr: bad label name (up to 15 of "
                          "[a-z0-9_], not \"mount\")");
        if (n == OWN_LABELS)
            luaL_error(L, "coffer.metrics.incr: at most %d labels",
                       OWN_LABELS);
        own[n++] = lua_tostring(L, -2);
        lua_pop(L, 1);
    }
    qsort(own, (size_t)n, sizeof(own[0]), cmp_str);
    keys[0] = "mount";
    values[0] = mount;
    for (int i = 0; i < n; i++) {
        keys[i + 1] = own[i];
        lua_getfield(L, idx, own[i]);
        values[i + 1] = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays alive in the table */
    }
    return n + 1;
}

/* coffer.metrics.incr(name, labels [, by]) [-3, +0, e] */
static int l_incr(lua_State *L)
{
    const struct lua_api_ctx *ctx = LUA_API_CTX(L);
    const char *name = luaL_checkstring(L, 1);
    lua_Integer by = luaL_optinteger(L, 3, 1);
    const char *keys[METRICS_PLUGIN_MAX_LABELS];
    const char *values[METRICS_PLUGIN_MAX_LABELS];
    int n;

    if (ctx == NULL || ctx->mount == NULL)
        return luaL_error(L, "coffer.metrics.incr is only available to a "
                             "mounted engine");
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    else {
        lua_newtable(L);
        lua_replace(L, 2);
    }
    if (strlen(name) >= METRICS_PLUGIN_NAME_MAX || !valid_name(name) ||
        !under_type(name, ctx->mount->type))
        return luaL_error(L, "coffer.metrics.incr: the name must be "
                             "\"%s.<name>\" ([a-z0-9_] and dots, under %d "
                             "characters)", ctx->mount->type,
                          METRICS_PLUGIN_NAME_MAX);
    luaL_argcheck(L, by >= 1 && by <= MAX_BY, 3, "1 to 1000000");
    n = read_labels(L, 2, ctx->mount->path, keys, values);
    metrics_plugin_incr(name, n, keys, values, (uint64_t)by);
    return 0;
}

static const luaL_Reg metrics_funcs[] = {
    {"incr", l_incr},
    {NULL, NULL},
};

void lua_metrics_open(lua_State *L)
{
    luaL_newlib(L, metrics_funcs);
    lua_setfield(L, -2, "metrics");
}
