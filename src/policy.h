/*
 * policy.h - ACL policies: the policy store and access decisions.
 *
 * Policies are Vault HCL (or JSON) text stored under "sys/policy/<name>"
 * in the barrier, plus Lua policies loaded from policies/<x>.lua and the
 * config's policy_directory (read-only). `root` is implicit and allows
 * everything; `default` is written at first activation, editable, and
 * cannot be deleted.
 *
 * A token's policy set (sorted names) compiles once into a merged ACL:
 * an exact-path hash table, a prefix table probed by length (longest
 * `*` glob), and a short list of `+` patterns. Merged ACLs are cached by
 * policy set and dropped whenever any policy changes (generation count).
 * Evaluation follows VAULT_API.md 7.2; sudo paths follow 7.3.
 *
 * Every function is thread-safe. Text arguments are borrowed; functions
 * returning char * or filling a strvec hand ownership to the caller.
 */
#ifndef COFFER_POLICY_H
#define COFFER_POLICY_H

#include <stdbool.h>

#include "common.h"
#include "request.h"
#include "util.h"

struct storage;
struct token;

/* ---- lifecycle (lifecycle.c, when the barrier is unsealed) ----------- */

/*
 * Where Lua policies come from (the Lua runtime, set by core.c at
 * start-up, before policy_init). list: the policies found at start-up,
 * an array of {name, file, check (bool), paths (object)}, owned by the
 * provider. check: runs policy `name`'s check function for req (t is the
 * token); 0 = allow, COFFER_EPERM = the check said no (reason in why),
 * anything else = it failed: deny. Without a provider there are no Lua
 * policies.
 */
struct policy_lua_provider {
    const cJSON *(*list)(void);
    int (*check)(const char *name, const struct request *req,
                 const struct token *t, struct errbuf *why);
};
/* p is borrowed and must outlive the server (a static table). */
void policy_set_lua_provider(const struct policy_lua_provider *p);


/*
 * Loads every stored policy, writes `default` if missing and compiles the
 * Lua policies the provider lists. 0, or COFFER_E* with words in err.
 */
int policy_init(struct storage *logical, struct errbuf *err);
void policy_shutdown(void);

/*
 * Replaces every Lua policy with those of list (a reload's new code:
 * [{name, file, check, paths}], borrowed). All compile first: on an
 * error nothing changes and err says "file: message". Cached ACLs are
 * dropped, so the next request is decided by the new rules.
 * COFFER_ESEALED when the policies are not loaded.
 */
int policy_reload_lua(const cJSON *list, struct errbuf *err);

/* ---- the store (sys_policy.c) ----------------------------------------- */

/*
 * Validates and stores policy `name` (already lower-cased). On a parse
 * error returns COFFER_EINVAL with the detail in err (callers prefix
 * "failed to parse policy: "); COFFER_EPERM for root and Lua policies.
 */
int policy_write(const char *name, const char *text, struct errbuf *err);
/* *text = a new copy of the stored text ("" for root); COFFER_ENOTFOUND. */
int policy_read(const char *name, char **text);
/* COFFER_EPERM (words in err) for root, default and Lua policies. */
int policy_delete(const char *name, struct errbuf *err);
/* Every policy name, sorted, without root. */
void policy_names(struct strvec *out);

/* ---- decisions (core.c and handlers) ---------------------------------- */

/*
 * The pipeline's question: may t run req (path, op, data)? Applies the
 * capability for req->op, sudo for sudo paths, parameter constraints and
 * the Lua check functions of t's policies. 0 when allowed; COFFER_EPERM
 * when denied, with the reason (for the log, never the client) in why.
 */
int policy_check(const struct token *t, const struct request *req,
                 struct errbuf *why);

/* Capability check only (no parameters, no Lua checks). */
bool policy_allows(const struct token *t, const char *path, enum req_op op);

/* True when t holds sudo on path (root tokens always do). */
bool policy_has_sudo(const struct token *t, const char *path);

/* True for Vault's sudo-protected ("root") paths, VAULT_API 7.3. */
bool policy_path_needs_sudo(const char *path, enum req_op op);

/*
 * t's capabilities on path as sorted names (sys/capabilities): ["root"]
 * for root tokens, ["deny"] when nothing applies.
 */
void policy_capabilities(const struct token *t, const char *path,
                         struct strvec *out);

/* Vault's default policy text (VAULT_API 3.8). */
extern const char policy_default_text[];

#endif
