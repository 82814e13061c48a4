/*
 * plugin_test.h - "coffer plugin test PATH": a plugin's tests, run
 * in-process against a dev core (in-memory storage, unsealed, root
 * token), without HTTP.
 *
 * The harness boots the real core the way `coffer server -dev` does
 * (core_init in dev mode, the plugin's folder as plugin directory), mounts
 * the engine and auth types the plugin registers, and runs each
 * *_test.lua file in a Lua state of its own that has the sandbox's
 * libraries, `coffer`, and a test module passed as the chunk's argument
 * (`local t = ...`). Requests go through core_handle: token lookup, ACL,
 * routing, the engine, leases. docs: the comment at the top of
 * plugin_test.c and docs/PLUGIN_API.md.
 */
#ifndef COFFER_PLUGIN_TEST_H
#define COFFER_PLUGIN_TEST_H

/*
 * Runs `coffer plugin ...` (argv[1] is "plugin"). Prints TAP-like lines
 * ("ok N - name", "not ok N - name: file:line: message") and a final
 * "N passed, N failed". Returns the exit status: 0 when every case
 * passed, 1 on a failed case, a load error or a usage error.
 */
int plugin_test_main(int argc, char **argv);

#endif
