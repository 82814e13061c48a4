/*
 * luavm_int.h - what luavm.c shares with luavm_policy.c, and nothing
 * else includes.
 *
 * A thread's Lua state (struct vm), the one protected-call protocol
 * (luavm__protected / luavm__unprotect), the script loader and the
 * helpers that build request tables. The double underscore marks them
 * as internal to the luavm subsystem (STYLE 7): the public contract is
 * luavm.h and luavm_policy.h.
 */
#ifndef COFFER_LUAVM_INT_H
#define COFFER_LUAVM_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <lua.h>

struct lua_api_ctx;
struct strvec;
struct token;

/*
 * Instructions between deadline checks. HAProxy measured 1,000-10,000 as
 * the useful range; one time_mono() per 10,000 instructions costs well
 * under 1% of a request here.
 */
#define LUAVM_HOOK_COUNT 10000

/* One thread's state. Only its thread touches it. */
struct vm {
    lua_State *L;
    size_t allocated; /* bytes the state holds now */
    size_t limit;     /* cap on allocated */
    double deadline;  /* time_mono() limit of the running call */
    bool by_request;  /* the deadline is the request's, not the call's */
    bool timed_out;
    uint64_t gen;     /* call counter, stamps storage handles */
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

/*
 * The sorted .lua file names of <root>/<dir>, pushed as a userdata that
 * owns them (freed with it). [-0, +1, e]
 */
struct strvec *luavm__list_scripts(lua_State *L, const char *root,
                                   const char *dir);

/*
 * Loads <root>/<rel> as text in a fresh _ENV and pushes the chunk.
 * Returns false (nothing pushed) only if the file does not exist and
 * missing_ok. [-0, +(0|1), e]
 */
bool luavm__load_path(lua_State *L, const char *root, const char *rel,
                      bool missing_ok);

/* t[k] = v on the table at the top (NULL gives ""). [-0, +0, e] */
void luavm__set_str(lua_State *L, const char *k, const char *v);
void luavm__set_int(lua_State *L, const char *k, int64_t v);

/* Pushes a JSON object, or an empty table for anything else. [-0, +1, e] */
void luavm__push_object(lua_State *L, const cJSON *obj);

/* Pushes req.token: display_name, accessor, policies, meta... [-0, +1, e] */
void luavm__push_token(lua_State *L, const struct token *t);

#endif
