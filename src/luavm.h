/*
 * luavm.h - Lua states: building, sandboxing, and calling into engines.
 *
 * Each thread that serves requests owns one lua_State, created on its first
 * request and closed when the thread exits. Lua code is never shared
 * between threads. States are built from a code snapshot: the text of
 * every script, read from disk at once and validated by running the
 * whole bootstrap in a scratch state, so a broken script stops the
 * server at start-up (or is refused at reload) with "file:line: message"
 * rather than failing on the first request.
 *
 * Scripts come from every .lua file in <lua_dir>/coffer/ (the framework),
 * then <lua_dir>/engines/ (secret engines) and <lua_dir>/auth/ (auth
 * methods), then the plugin directory (<name>.lua, or a folder
 * <name>/init.lua whose require() looks in <name>/ first), then the
 * config's bootstrap step (Lua policies, luavm_policy.h). Files named
 * *_test.lua are never loaded.
 *
 * Reload: luavm_code_load reads and validates a new snapshot; publishing
 * it bumps a generation. Each thread compares its state's generation at
 * the start of every call and rebuilds from the new snapshot when stale,
 * so calls in flight finish on the old code and later calls run the new.
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
struct strvec;

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

/* ---- reload (sys_plugins.c) ------------------------------------------ */

/*
 * A code snapshot (luavm_int.h): immutable, reference-counted. The
 * snapshot functions below and the lookups after them live in
 * luavm_code.c; luavm_code_load, which builds a scratch state, in luavm.c.
 */
struct luavm_code;

/*
 * Reads every script from disk into a new snapshot and runs the whole
 * bootstrap on it in a scratch state. Returns the snapshot (a reference
 * for the caller), or NULL with "file:line: message" in err. Nothing
 * the running server uses changes. Call serialised (one reload at a
 * time), after luavm_global_init.
 */
struct luavm_code *luavm_code_load(struct errbuf *err);

/* A reference to the published snapshot (NULL before init). */
struct luavm_code *luavm_code_current(void);

/* Drops a reference (NULL is fine). */
void luavm_code_put(struct luavm_code *c);

/*
 * Publishes c (taking the caller's reference): states are rebuilt from
 * it at their thread's next call. Returns its generation (1 = the code
 * loaded at start-up). Serialised like luavm_code_load.
 */
uint64_t luavm_code_publish(struct luavm_code *c);

/*
 * Marks c (or NULL: none) as the code a reload is checking: until it is
 * published or unstaged, luavm_engine_exists and luavm_auth_exists (the
 * router's type check) answer true only for types both codes register,
 * so no mount can be enabled with a type the reload drops after the
 * reload looked at the mounts. c stays the caller's; unstage it before
 * dropping it. Serialised like luavm_code_load.
 */
void luavm_code_stage(struct luavm_code *c);

/* The published generation. */
uint64_t luavm_generation(void);

/*
 * SHA-256 of the published code's script <lua_dir>/<rel> (e.g.
 * "engines/kv.lua") into out, and that code's generation into *gen.
 * false if no code is published or it has no such script.
 */
bool luavm_code_digest(const char *rel, unsigned char out[32], uint64_t *gen);

/* Whether c registered an auth method (auth) or engine of this type. */
bool luavm_code_has_type(const struct luavm_code *c, bool auth,
                         const char *type);

/*
 * Appends to out every "<engine>\037<secret type>" that old declared
 * (e:secret) and c does not.
 */
void luavm_code_lost_secrets(const struct luavm_code *old,
                             const struct luavm_code *c, struct strvec *out);

/* The Lua policies c found: [{name, file, check, paths}], owned by c. */
const cJSON *luavm_code_policies(const struct luavm_code *c);

/* How many scripts c holds. */
size_t luavm_code_files(const struct luavm_code *c);

/* ---- lookups (router, auth) ------------------------------------------- */

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

/*
 * Lua calls stopped by their time/instruction deadline and calls that
 * failed at their memory cap, since start (sys/metrics reads them).
 */
void luavm_budget_overruns(uint64_t *time, uint64_t *memory);

#endif
