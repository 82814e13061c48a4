/*
 * luavm.h - Lua states: building, sandboxing, and calling into engines.
 *
 * Each thread that serves requests owns one lua_State, created on its first
 * request from the same scripts and closed when the thread exits. Lua code is
 * never shared between threads. luavm_global_init() first runs the whole
 * bootstrap once in a scratch state, so a broken script stops the server at
 * start-up with "file:line: message" rather than on the first request.
 *
 * Scripts come from every .lua file in <lua_dir>/coffer/ (the framework),
 * then <lua_dir>/engines/ (secret engines) and <lua_dir>/auth/ (auth
 * methods), then the plugin directory, then the config's bootstrap step
 * (Lua policies, luavm_policy.h).
 */
#ifndef COFFER_LUAVM_H
#define COFFER_LUAVM_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "request.h"

struct lua_State;
struct mount;
struct storage;

/*
 * A last step of every state's bootstrap, run protected after the
 * engines and auth methods loaded (Lua policies: luavm_policy.h).
 * scratch is true for the one state luavm_global_init validates with.
 * May raise; the state is then refused. [-0, +0, e]
 */
typedef void (*luavm_bootstrap_fn)(struct lua_State *L, bool scratch);

struct luavm_config {
    const char *lua_dir;         /* directory holding coffer/ and engines/ */
    const char *plugin_dir;      /* extra engines/auth methods, or NULL */
    struct storage *storage;     /* borrowed; outlives every state */
    size_t memory_limit;         /* bytes per state, 0 = default */
    double call_timeout;         /* seconds per engine call, 0 = default */
    luavm_bootstrap_fn bootstrap_step; /* or NULL */
};

/*
 * Validates every script in a scratch state and records the engine names.
 * Must be called once before any other luavm function. Returns 0, or a
 * COFFER_E* code with "file:line: message" in err.
 */
int luavm_global_init(const struct luavm_config *cfg, struct errbuf *err);

/* Frees what luavm_global_init allocated; call after all threads stopped. */
void luavm_global_shutdown(void);

/* True if a Lua script registered a secret engine with this type name. */
bool luavm_engine_exists(const char *type);

/* True if a Lua script registered an auth method (coffer.auth{}) of type. */
bool luavm_auth_exists(const char *type);

/*
 * True if rel (a path relative to an auth mount of this type) is one of
 * the method's login paths, which need no token: the patterns its
 * a:login(...) routes declared: "login" exactly, or "login/" followed
 * by anything when the pattern has a capture (stored as a trailing '*').
 * Pure lookup in what the scratch bootstrap recorded.
 */
bool luavm_auth_is_login(const char *type, const char *rel);

/*
 * Asks the engine of mount m whether the target of a write exists, for
 * Vault's create/update distinction: 1 exists, 0 does not, -1 the route
 * has no existence check (or it failed): the write counts as an update.
 */
int luavm_exists(const struct mount *m, struct request *req);

/*
 * Runs req against the engine of mount m in the calling thread's state and
 * fills resp. Never fails outright: a script error becomes a 500 with a
 * generic message in resp and a log line with the traceback.
 */
void luavm_handle(const struct mount *m, struct request *req,
                  struct response *resp);

/*
 * luavm_handle for an unauthenticated login request (auth.c): the request
 * table carries req.login = true and the framework lets it reach only the
 * method's login routes.
 */
void luavm_handle_login(const struct mount *m, struct request *req,
                        struct response *resp);

/*
 * Lease callbacks for the expiration manager (struct lease_ops). They run
 * the secret's "revoke" or "renew" function that the engine of mount m
 * declared with e:secret(type, {...}), in the calling thread's state.
 * record is the lease record (id, secret_type, internal, ...). Return 0,
 * or an error code with the engine's words in err.
 */
int luavm_lease_revoke(const struct mount *m, const cJSON *record,
                       struct errbuf *err);
int luavm_lease_renew(const struct mount *m, const cJSON *record,
                      int64_t expire_unix, struct errbuf *err);

/*
 * Runs the periodic function the engine of mount m registered with
 * e:periodic, if any, in the calling thread's state. Errors are logged.
 */
void luavm_periodic(const struct mount *m);

/*
 * Closes the calling thread's state, if it has one. Threads that exit get
 * theirs closed automatically; this is for the main thread.
 */
void luavm_thread_release(void);

#endif
