/*
 * luavm_policy.h - Lua policies: loading them into every state and
 * running their check functions.
 *
 * A Lua policy is a file <x>.lua in the config's policy_directory that
 * returns
 *   { name = "...", paths = { [pattern] = {capabilities = {...}} },
 *     check = function(req) ... end }
 * The paths compile like HCL rules (policy.c, which gets this file's
 * functions as its struct policy_lua_provider); check runs per request
 * in the calling thread's Lua state under an instruction budget.
 */
#ifndef COFFER_LUAVM_POLICY_H
#define COFFER_LUAVM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <lua.h>

#include "common.h"
#include "request.h"

struct token;

/*
 * The Lua policies of the published code snapshot: an array of {name,
 * file, check (bool), paths (object)}. NULL before luavm_global_init.
 * Owned by the snapshot: read it only while no reload can publish
 * (policy_init, under the state lock held for writing).
 */
const cJSON *luavm_policy_list(void);

/*
 * Runs the check function of Lua policy `name` for req (t is the token)
 * in the calling thread's state, under a small instruction budget.
 * 0 = allow; COFFER_EPERM = the check said no (reason in why);
 * COFFER_EINTERNAL = it failed (error, budget, non-boolean): deny.
 */
int luavm_policy_check(const char *name, const struct request *req,
                       const struct token *t, struct errbuf *why);

/* ---- start-up (core.c) ----------------------------------------------- */

/*
 * Policy checks get an instruction budget rather than the engines'
 * wall-clock deadline: a check is a few comparisons, and a budget is
 * deterministic. The config's lua_policy_budget overrides it.
 */
#define LUAVM_POLICY_BUDGET_DEFAULT 100000

/*
 * Where the policies are (policy_dir, copied; NULL = none) and the
 * instruction budget of one check (0 = the default). Call before
 * luavm_global_init.
 */
void luavm_policy_configure(const char *policy_dir, uint64_t budget);

/*
 * The bootstrap step (struct luavm_config.bootstrap_step) that loads the
 * policies into every new state, keeping name -> check in its registry;
 * in the scratch state it also fills the list of the snapshot being
 * validated (luavm_code_policies). Raises "file: message" on a bad policy. [-0, +0, e]
 */
void luavm_policy_bootstrap(lua_State *L, bool scratch);

/* Frees the directory; after luavm_global_shutdown. */
void luavm_policy_release(void);

#endif
