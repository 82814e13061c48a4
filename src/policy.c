/*
 * policy.c - access control decisions.
 *
 * Holds the built-in default policy as a table. The HCL/Lua policy
 * compiler of a later change replaces the table lookup with compiled rules
 * for every policy a token carries; the two questions the pipeline asks
 * stay the same.
 */
#include "policy.h"

#include <string.h>

#include "common.h"
#include "token.h"
#include "util.h"

enum cap {
    CAP_CREATE = 1 << 0,
    CAP_READ = 1 << 1,
    CAP_UPDATE = 1 << 2,
    CAP_DELETE = 1 << 3,
    CAP_LIST = 1 << 4,
    CAP_PATCH = 1 << 5,
};

struct rule {
    const char *path; /* a trailing '*' makes it a prefix glob */
    unsigned caps;
};

/* Vault's default policy, minus the identity paths Coffer lacks. */
static const struct rule default_policy[] = {
    {"auth/token/lookup-self", CAP_READ | CAP_UPDATE},
    {"auth/token/renew-self", CAP_UPDATE},
    {"auth/token/revoke-self", CAP_UPDATE},
    {"sys/capabilities-self", CAP_UPDATE},
    {"sys/internal/ui/resultant-acl", CAP_READ},
    {"sys/renew", CAP_UPDATE},
    {"sys/leases/renew", CAP_UPDATE},
    {"sys/leases/lookup", CAP_UPDATE},
    {"cubbyhole/*", CAP_CREATE | CAP_READ | CAP_UPDATE | CAP_DELETE |
                        CAP_LIST},
    {"sys/wrapping/wrap", CAP_UPDATE},
    {"sys/wrapping/lookup", CAP_UPDATE},
    {"sys/wrapping/unwrap", CAP_UPDATE},
    {"sys/tools/hash", CAP_UPDATE},
    {"sys/tools/hash/*", CAP_UPDATE},
};

static unsigned op_cap(enum req_op op)
{
    switch (op) {
    case OP_READ: return CAP_READ;
    case OP_CREATE: return CAP_CREATE;
    case OP_UPDATE: return CAP_UPDATE;
    case OP_DELETE: return CAP_DELETE;
    case OP_LIST: return CAP_LIST;
    case OP_PATCH: return CAP_PATCH;
    case OP_HEAD: return CAP_READ;
    }
    return 0;
}

static bool rule_matches(const struct rule *r, const char *path)
{
    size_t n = strlen(r->path);

    if (n > 0 && r->path[n - 1] == '*')
        return strncmp(path, r->path, n - 1) == 0;
    return strcmp(path, r->path) == 0;
}

bool policy_allows(const struct token *t, const char *path, enum req_op op)
{
    unsigned need = op_cap(op);

    if (t->is_root)
        return true;
    if (!strvec_contains(&t->policies, "default"))
        return false;
    for (size_t i = 0; i < ARRAY_LEN(default_policy); i++) {
        if (rule_matches(&default_policy[i], path) &&
            (default_policy[i].caps & need) != 0)
            return true;
    }
    return false;
}

bool policy_has_sudo(const struct token *t, const char *path)
{
    (void)path;
    return t->is_root;
}
