/*
 * luavm_int.h - what luavm.c, luavm_code.c and luavm_policy.c share,
 * and nothing else includes.
 *
 * A code snapshot (struct luavm_code) and the script loader that reads
 * from it (luavm_code.c); a thread's Lua state (struct vm), the one
 * protected-call protocol (luavm__protected / luavm__unprotect), the
 * sandbox's script environment and the helpers that build request
 * tables (luavm.c). The double underscore marks them as internal to the
 * luavm subsystem (STYLE 7): the public contract is luavm.h and
 * luavm_policy.h.
 */
#ifndef COFFER_LUAVM_INT_H
#define COFFER_LUAVM_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <lua.h>

#include "util.h"

struct lua_api_ctx;
struct mount;
struct request;
struct token;

/*
 * Instructions between deadline checks. HAProxy measured 1,000-10,000 as
 * the useful range; one time_mono() per 10,000 instructions costs well
 * under 1% of a request here.
 */
#define LUAVM_HOOK_COUNT 10000

/* One script of a code snapshot, as read from disk. */
struct luavm_file {
    char *path;  /* "<root>/<name>.lua": the chunk name without its '@' */
    char *text;
    size_t len;
};

/*
 * A code snapshot: the text of every script the states run (lua/coffer,
 * lua/engines, lua/auth, the plugin directory and its folders, the
 * policy directory), read from disk at once, plus what its scratch
 * bootstrap registered. States are built from a snapshot, never from
 * the files, so every thread runs exactly the code that was validated
 * even if the files change again. Immutable once published; each state
 * holds a reference (a runtime require reads from it).
 */
struct luavm_code {
    atomic_uint refs;
    uint64_t gen;              /* set when published */
    struct luavm_file *files;  /* sorted by path */
    size_t nfiles, cap, bytes;
    struct strvec engines;     /* sorted engine names */
    struct strvec auths;       /* sorted auth method types */
    struct strvec logins;      /* "<type>\037<pattern>": no token needed */
    struct strvec secrets;     /* "<engine>\037<secret type>", sorted */
    cJSON *policies;           /* [{name, file, check, paths}] */
};

/* One thread's state. Only its thread touches it. */
struct vm {
    lua_State *L;
    size_t allocated; /* bytes the state holds now */
    size_t limit;     /* cap on allocated */
    double deadline;  /* time_mono() limit of the running call */
    bool by_request;  /* the deadline is the request's, not the call's */
    bool timed_out;
    uint64_t gen;     /* call counter, stamps storage handles */
    struct luavm_code *code; /* the snapshot it was built from (a ref) */
    unsigned depth;   /* protected calls running: never swap under one */
    uint64_t failed;  /* code generation this thread failed to build */
};

/*
 * The calling thread's state, built on first use. NULL before
 * luavm_global_init or when building it fails (logged).
 */
struct vm *luavm__get(void);

/* The vm a state belongs to (its allocator's userdata). */
struct vm *luavm__of(lua_State *L);

/*
 * The deadline count hook, installed every LUAVM_HOOK_COUNT instructions
 * while any call runs; a caller that replaced it puts it back with
 * lua_sethook(L, luavm__hook, LUA_MASKCOUNT, LUAVM_HOOK_COUNT).
 */
void luavm__hook(lua_State *L, lua_Debug *ar);

/*
 * The one protected call: runs fn(ud) under lua_pcall in vm's state with
 * ctx installed, the deadline armed and the message handler below it.
 * Leaves the error object (if any) at the top and returns the lua_pcall
 * status; *base is the stack height to give luavm__unprotect.
 */
int luavm__protected(struct vm *vm, struct lua_api_ctx *ctx,
                     lua_CFunction fn, void *ud, int *base);

/* Ends a protected call: aborts leases left pending, releases the
 * storage lock, restores the stack to base and clears the context. */
void luavm__unprotect(struct vm *vm, struct lua_api_ctx *ctx, int base);

/* Whether luavm_global_init has finished (and shutdown not begun). */
bool luavm__ready(void);

/* The configured lua_dir, and plugin_dir (NULL = none). */
const char *luavm__lua_dir(void);
const char *luavm__plugin_dir(void);

/* Pushes a fresh script _ENV: reads fall through to the sandbox's
 * globals, writes raise. [-0, +1, m] */
void luavm__push_env(lua_State *L);

/*
 * The sorted .lua file names of <root>/<dir> ("." = root itself) in the
 * state's code snapshot, pushed as a userdata that owns them (freed
 * with it). [-0, +1, e]
 */
struct strvec *luavm__list_scripts(lua_State *L, const char *root,
                                   const char *dir);

/* ---- code snapshots and the script loader (luavm_code.c) ------------- */

/*
 * Reads every script the states run into a new snapshot (one reference
 * for the caller): lua/coffer, lua/engines, lua/auth, the plugin
 * directory with its folders, and the policy directory. NULL with the
 * reason in err.
 */
struct luavm_code *luavm__code_read(struct errbuf *err);

/* Takes a reference to c (drop it with luavm_code_put); returns c. */
struct luavm_code *luavm__code_ref(struct luavm_code *c);

/* The file of c at path, or NULL (c may be NULL). */
const struct luavm_file *luavm__code_find(const struct luavm_code *c,
                                          const char *path);

/* Drops the published snapshot (shutdown, or a failed init). */
void luavm__code_unpublish(void);

/*
 * Registry key of the require cache (file path -> value, false while
 * loading); the sandbox creates the table, require fills it.
 */
extern char luavm__key_modules;

/*
 * Compiles f as text with chunk name "@<path>" and pushes it with a
 * fresh _ENV; a script of a plugin folder (folder not NULL) gets a
 * require that looks in folder first. [-0, +1, e]
 */
void luavm__load_chunk(lua_State *L, const struct luavm_file *f,
                       const char *folder);

/*
 * Loads <root>/<rel> from the state's code snapshot as text in a fresh
 * _ENV and pushes the chunk. Returns false (nothing pushed) only if the
 * file does not exist and missing_ok. [-0, +(0|1), e]
 */
bool luavm__load_path(lua_State *L, const char *root, const char *rel,
                      bool missing_ok);

/*
 * The global require(name): lua/coffer/<name>.lua from the state's
 * snapshot, loaded once per state. [-1, +1, e]
 */
int luavm__require(lua_State *L);

/* t[k] = v on the table at the top (NULL gives ""). [-0, +0, e] */
void luavm__set_str(lua_State *L, const char *k, const char *v);
void luavm__set_int(lua_State *L, const char *k, int64_t v);

/* Pushes a JSON object, or an empty table for anything else. [-0, +1, e] */
void luavm__push_object(lua_State *L, const cJSON *obj);
/* The mount table handlers and lease callbacks see. [-0, +1, e] */
void luavm__push_mount(lua_State *L, const struct mount *m);

/* Pushes req.token: display_name, accessor, policies, meta... [-0, +1, e] */
void luavm__push_token(lua_State *L, const struct token *t);

/*
 * Pushes the request table that handlers and Lua policy checks share:
 * id, operation, path (relative to m), full_path, mount_path, time,
 * client_addr, data, token (t, when not NULL). m may be NULL (no
 * mount): path is then the full path and mount_path "". [-0, +1, e]
 */
void luavm__push_request_base(lua_State *L, const struct request *req,
                              const struct mount *m, const struct token *t);

/* The policy directory luavm_policy.c reads (or NULL), for snapshots. */
const char *luavm__policy_dir(void);

#endif
