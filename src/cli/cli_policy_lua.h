/*
 * cli_policy_lua.h - `coffer policy test` for a Lua policy file: an
 * in-memory dev core (no listener) whose policy_directory holds only
 * that file, so its paths and check run through the server's own code.
 */
#ifndef COFFER_CLI_POLICY_LUA_H
#define COFFER_CLI_POLICY_LUA_H

#include "../common.h"

/*
 * Boots the core with FILE as the only Lua policy. 0 with *name (a new
 * string) the policy's name; else COFFER_E* with words in err.
 */
int cli_policy_lua_boot(const char *file, char **name, struct errbuf *err);

/* Stops the core and removes the scratch directory. */
void cli_policy_lua_shutdown(void);

#endif
