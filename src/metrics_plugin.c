/*
 * metrics_plugin.c - the counters of Lua engines (see metrics_plugin.h).
 *
 * A small table under one mutex: an increment is a linear search of at
 * most METRICS_PLUGIN_MAX_SERIES entries, made only on the events a
 * plugin counts (a refused issuance, say), never per request.
 */
#include "metrics_plugin.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_plugin_series series[METRICS_PLUGIN_MAX_SERIES + 1];
static size_t nseries;

static bool same(const struct metrics_plugin_series *s, const char *name,
                 int nlabels, const char *const *keys,
                 const char *const *values)
{
    if (s->nlabels != nlabels || strcmp(s->name, name) != 0)
        return false;
    for (int i = 0; i < nlabels; i++) {
        if (strcmp(s->key[i], keys[i]) != 0 ||
            strncmp(s->value[i], values[i], METRICS_PLUGIN_VALUE_MAX - 1) != 0)
            return false;
    }
    return true;
}

static void fill(struct metrics_plugin_series *s, const char *name,
                 int nlabels, const char *const *keys,
                 const char *const *values)
{
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->nlabels = nlabels;
    for (int i = 0; i < nlabels; i++) {
        snprintf(s->key[i], sizeof(s->key[i]), "%s", keys[i]);
        snprintf(s->value[i], sizeof(s->value[i]), "%s", values[i]);
    }
}

/* The series of name and labels, created if there is room; the last
   slot ("other", labelled so) when there is none. Caller holds mu. */
static struct metrics_plugin_series *slot(const char *name, int nlabels,
                                          const char *const *keys,
                                          const char *const *values)
{
    static const char *const other_key[1] = {"series"};
    static const char *const other_val[1] = {"other"};
    struct metrics_plugin_series *s;

    for (size_t i = 0; i < nseries; i++) {
        if (same(&series[i], name, nlabels, keys, values))
            return &series[i];
    }
    if (nseries < METRICS_PLUGIN_MAX_SERIES) {
        s = &series[nseries++];
        fill(s, name, nlabels, keys, values);
        return s;
    }
    s = &series[METRICS_PLUGIN_MAX_SERIES];
    if (s->name[0] == '\0')
        fill(s, "plugin.other", 1, other_key, other_val);
    return s;
}

int metrics_plugin_incr(const char *name, int nlabels,
                        const char *const *keys, const char *const *values,
                        uint64_t by)
{
    if (nlabels < 0 || nlabels > METRICS_PLUGIN_MAX_LABELS)
        return -1;
    pthread_mutex_lock(&mu);
    slot(name, nlabels, keys, values)->count += by;
    pthread_mutex_unlock(&mu);
    return 0;
}

void metrics_plugin_each(void (*fn)(void *arg,
                                    const struct metrics_plugin_series *s),
                         void *arg)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i <= METRICS_PLUGIN_MAX_SERIES; i++) {
        if (series[i].count > 0)
            fn(arg, &series[i]);
    }
    pthread_mutex_unlock(&mu);
}
