/*
 * metrics_plugin.h - counters that Lua engines bump (coffer.metrics.incr,
 * lua_metrics.c), rendered by sys/metrics with the built-in ones.
 *
 * Its own module so that metrics.c reads them without knowing about Lua,
 * and lua_metrics.c feeds them without knowing about rendering. Bounded:
 * at most METRICS_PLUGIN_MAX_SERIES name + label sets; increments of a
 * set that does not fit go to one "other" series, so a plugin cannot
 * grow the metrics without bound.
 */
#ifndef COFFER_METRICS_PLUGIN_H
#define COFFER_METRICS_PLUGIN_H

#include <stdint.h>

#define METRICS_PLUGIN_MAX_SERIES 256
#define METRICS_PLUGIN_MAX_LABELS 4
#define METRICS_PLUGIN_NAME_MAX 64
#define METRICS_PLUGIN_KEY_MAX 16
#define METRICS_PLUGIN_VALUE_MAX 96

struct metrics_plugin_series {
    char name[METRICS_PLUGIN_NAME_MAX];
    int nlabels;
    char key[METRICS_PLUGIN_MAX_LABELS][METRICS_PLUGIN_KEY_MAX];
    char value[METRICS_PLUGIN_MAX_LABELS][METRICS_PLUGIN_VALUE_MAX];
    uint64_t count;
};

/*
 * Adds by to the counter name{keys[i]=values[i]}. The caller checked the
 * name and keys (lua_metrics.c); longer values are cut. 0 or -1 when
 * nlabels is out of range.
 */
int metrics_plugin_incr(const char *name, int nlabels,
                        const char *const *keys, const char *const *values,
                        uint64_t by);

/* Calls fn once per series with a count, under the table's lock. */
void metrics_plugin_each(void (*fn)(void *arg,
                                    const struct metrics_plugin_series *s),
                         void *arg);

#endif
