/*
 * policy_hcl.h - Vault policy text: parsing, formatting, compiling.
 *
 * Private to policy.c, sys_policy.c, cli_policy.c and the tests. The
 * parser reads the subset of HCL 1 that policies use (and JSON, which is
 * the same tree written with ':' and quoted keys):
 *
 *   body   := { item [','] }
 *   item   := key { key } ( ('=' | ':') value | object )
 *   key    := IDENT | STRING
 *   value  := STRING | NUMBER | true | false | HEREDOC | list | object
 *   list   := '[' [ value { ',' value } [','] ] ']'
 *   object := '{' body '}'
 *
 * `path "a" { ... }` is the same as `path = { "a" = { ... } }`; repeated
 * keys are kept in order (an object is a multimap). Comments: #, //, and
 * / * * /. Every error message names the line it was found on.
 *
 * Ownership: every function returning a pointer returns a new object the
 * caller frees with the matching _free (or free() for strings).
 */
#ifndef COFFER_POLICY_HCL_H
#define COFFER_POLICY_HCL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "util.h"

/* Capability bits. */
enum {
    PCAP_CREATE = 1u << 0,
    PCAP_READ = 1u << 1,
    PCAP_UPDATE = 1u << 2,
    PCAP_DELETE = 1u << 3,
    PCAP_LIST = 1u << 4,
    PCAP_PATCH = 1u << 5,
    PCAP_SUDO = 1u << 6,
    PCAP_DENY = 1u << 7,
};

/* What one path rule grants; merged rules have the same shape. */
struct policy_perms {
    unsigned caps;
    cJSON *allowed;          /* object: lower-cased key -> array, or NULL */
    cJSON *denied;           /* same */
    struct strvec required;  /* lower-cased names */
    int64_t min_wrap;        /* seconds, 0 = unset */
    int64_t max_wrap;
};

struct policy_rule {
    char *path;              /* pattern, leading '/' stripped */
    int line;                /* where it was written (0 = from Lua) */
    struct policy_perms perms;
};

/* A parsed policy: its rules in the order written. */
struct policy {
    struct policy_rule *rules;
    size_t n, cap;
};

/*
 * Parses HCL or JSON policy text. Returns the policy, or NULL with the
 * detail (naming the line) in err; callers add "failed to parse policy: ".
 */
struct policy *policy_parse(const char *text, struct errbuf *err);

/*
 * Compiles a JSON object {pattern: {capabilities = [...], ...}} (what a
 * Lua policy's `paths` table converts to). NULL with words in err.
 */
struct policy *policy_from_paths(const cJSON *paths, struct errbuf *err);

void policy_free(struct policy *p);

/*
 * Reads HCL/JSON text with the same reader into a JSON tree (an object;
 * repeated keys kept, in order; numbers as doubles), for other HCL
 * grammars (password_policy.c). NULL with "line N: ..." in err.
 */
cJSON *policy_hcl_to_json(const char *text, struct errbuf *err);

/* Reformats HCL/JSON policy text as canonical HCL (comments are lost). */
char *policy_format(const char *text, struct errbuf *err);

/* Renders compiled rules as HCL (for Lua policies read over the API). */
char *policy_render(const struct policy *p);

/* Names of the capability bits in caps, sorted, appended to out. */
void policy_cap_names(unsigned caps, struct strvec *out);

void policy_perms_release(struct policy_perms *p);
/* Merges src into dst with Vault's rules (VAULT_API 7.2). */
void policy_perms_merge(struct policy_perms *dst,
                        const struct policy_perms *src);

#endif
