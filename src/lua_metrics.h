/*
 * lua_metrics.h - coffer.metrics: counters a Lua engine reports in
 * sys/metrics (stored by metrics_plugin.c).
 */
#ifndef COFFER_LUA_METRICS_H
#define COFFER_LUA_METRICS_H

#include <lua.h>

/*
 * Adds coffer.metrics to the `coffer` table at the top of the stack.
 * Called once per state by lua_api_open. [-0, +0, m]
 */
void lua_metrics_open(lua_State *L);

#endif
