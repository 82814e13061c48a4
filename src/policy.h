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

#include <cjson/cJSON.h>

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
/* The file a Lua policy was loaded from (a new copy), or NULL when name is
 * not a Lua policy. */
char *policy_lua_file(const char *name);
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
/*
 * Whether t may do anything under mount path `mount` (ending in '/'), as
 * Vault's sys/internal/ui/mounts decides which mounts a token sees: a
 * rule that allows something (no deny) on the mount path itself, on a
 * path under it (exact or glob), or a `+` pattern that can match under it.
 */
bool policy_mount_visible(const struct token *t, const char *mount);

/* True for Vault's sudo-protected ("root") paths, VAULT_API 7.3. */
bool policy_path_needs_sudo(const char *path, enum req_op op);

/*
 * t's capabilities on path as sorted names (sys/capabilities): ["root"]
 * for root tokens, ["deny"] when nothing applies.
 */
void policy_capabilities(const struct token *t, const char *path,
                         struct strvec *out);

/* Vault's default policy text (VAULT_API 3.8), policy_default.c. */
extern const char policy_default_text[];

/* ---- explain (policy_explain.c) --------------------------------------- */

/*
 * A trace of one decision, filled by the same code that decides real
 * requests (policy_check): which step decided, the rule it used and
 * every other rule whose pattern matched the path. Strings point into
 * the ACL the trace holds a reference to; release with
 * policy_trace_release.
 */
enum policy_step {
    PSTEP_ALLOW,      /* every check passed */
    PSTEP_NO_ACL,     /* policies not loaded (sealed) */
    PSTEP_NO_RULE,    /* no rule matches the path */
    PSTEP_DENY,       /* the rule holds deny */
    PSTEP_NO_CAP,     /* the rule lacks the operation's capability */
    PSTEP_SUDO,       /* sudo path, the rule lacks sudo */
    PSTEP_PARAM,      /* a parameter constraint failed */
    PSTEP_WRAP,       /* wrapping TTL outside the rule's bounds */
    PSTEP_LUA,        /* a Lua policy's check said no or failed */
};

/* Why a matching rule was not the one used (VAULT_API 7.2 order). */
enum policy_lost {
    PLOST_NONE,       /* the decisive rule */
    PLOST_EXACT,      /* an exact rule applies */
    PLOST_WILDCARD,   /* the winner's first wildcard comes later */
    PLOST_PREFIX,     /* a rule without a trailing '*' beats a prefix */
    PLOST_PLUS,       /* fewer '+' segments */
    PLOST_LENGTH,     /* longer pattern */
    PLOST_LEXICAL,    /* equal; the lexically larger pattern wins */
};

enum policy_kind { PKIND_EXACT, PKIND_GLOB, PKIND_SEGMENT };

/* One policy's rule merged into an ACL entry. */
struct policy_src {
    const char *policy;  /* the policy's name */
    int line;            /* of its `path` block; 0 = unknown (Lua) */
    unsigned caps;       /* PCAP_* bits written in that rule */
};

/* One pattern of the ACL that matches the path. */
struct policy_hit {
    const char *pattern;
    enum policy_kind kind;
    unsigned caps;                 /* merged over its sources */
    const struct policy_src *src;
    size_t nsrc;
    enum policy_lost lost;         /* PLOST_NONE for the decisive rule */
};

struct policy_trace {
    enum policy_step step;
    struct policy_hit *hits;       /* decisive first (when one matched) */
    size_t nhits;
    bool decisive;                 /* hits[0] is the rule used */
    struct policy_hit closest;     /* no rule matched: the pattern sharing
                                      the longest prefix (pattern NULL if
                                      there is none) */
    bool sudo_required;
    char param[128];               /* PSTEP_PARAM: the parameter */
    const char *param_rule;        /* "required_parameters", ... */
    cJSON *lua;                    /* [{policy,file,line,result,reason}] */
    void *acl;                     /* the reference keeping strings alive */
};

/*
 * Decides req like policy_check and traces it: for token t, or (t NULL)
 * for the sorted, de-duplicated policy set names. Same return and why
 * as policy_check. tr is filled either way.
 */
int policy_trace(const struct token *t, const struct strvec *names,
                 const struct request *req, struct policy_trace *tr,
                 struct errbuf *why);

/*
 * The same for one parsed policy that is not stored (coffer policy
 * test): name is what the trace calls it. No Lua checks run.
 */
struct policy;
int policy_trace_one(const struct policy *p, const char *name,
                     const struct request *req, struct policy_trace *tr,
                     struct errbuf *why);

void policy_trace_release(struct policy_trace *tr);

#endif
