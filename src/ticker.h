/*
 * ticker.h - periodic work of engines (static role rotation).
 *
 * One thread calls each Lua engine's periodic function (registered with
 * e:periodic) every `interval` seconds, mount by mount, in its own
 * lua_State, and runs the lease manager's requested tidy passes. A slow
 * engine delays the next tick, never a request.
 */
#ifndef COFFER_TICKER_H
#define COFFER_TICKER_H

#include "common.h"

/* Starts the thread. interval <= 0 means 5 seconds, Vault's default. */
int ticker_start(double interval, struct errbuf *err);
/* Stops it; waits for a tick in progress to finish. */
void ticker_stop(void);

#endif
