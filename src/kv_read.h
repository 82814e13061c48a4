/*
 * kv_read.h - reads of the built-in kv engine, answered in C.
 *
 * A GET of <mount>/<path> (kv v1) or <mount>/data/<path> (kv v2,
 * optionally ?version=N) on a mount of the built-in kv engine is answered
 * here, from the same storage the Lua engine reads, with the response the
 * engine would give: the same tree in struct response, so that audit,
 * wrapping, metrics and rendering see exactly what they see for the Lua
 * path. Everything kv_read.c cannot answer exactly (another operation or
 * route, other query parameters, a stored value the Lua round trip would
 * reorder or reformat, a storage error) is left to the engine.
 *
 * Replaces only the engine's handler call (core.c's dispatch): the token,
 * the ACL check, audit and metrics run as for any request.
 */
#ifndef COFFER_KV_READ_H
#define COFFER_KV_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "mount.h"
#include "request.h"

struct storage;

/* The storage the Lua engines read (the barrier's); set once at start. */
void kv_read_configure(struct storage *s);

/*
 * Whether native reads run at all: on by default, unless the environment
 * has COFFER_KV_NATIVE_READS=0 (or "false"/"off") at the first request;
 * process-wide, for the next request (a configuration switch, tests).
 */
void kv_read_set_enabled(bool on);

/*
 * Answers req (routed to m, req->rel_path set) into resp and returns true,
 * or returns false with resp untouched: the Lua engine must run.
 */
bool kv_read_handle(const struct mount *m, const struct request *req,
                    struct response *resp);

/* Reads answered here since start (for tests and metrics). */
uint64_t kv_read_served(void);

#endif
