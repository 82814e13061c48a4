/*
 * policy.c - the policy store and access decisions.
 *
 * Owns: the named policies (text + compiled rules, in memory after
 * activation and in the barrier under sys/policy/<name>), the merged ACL
 * per token policy set and its cache, and the evaluation rules. Does not
 * own the policy language (policy_hcl.c), the HTTP endpoints
 * (sys_policy.c) or Lua policies: their list and check functions come
 * from a provider set at start-up (struct policy_lua_provider).
 *
 * A merged ACL, built once per policy set and generation:
 *
 *   exact   hash(pattern)            -> perms   "secret/data/a"
 *   prefix  hash(pattern minus the star) -> perms "secret/data/<star>"
 *           plen[i] = 1 when some prefix has length i
 *   plus    short list, matched by segment       "secret/+/config"
 *
 * Lookup of a path: one probe in `exact`; then one probe per prefix
 * length that exists (hashes computed incrementally over the path, so
 * the path is read once), keeping the longest; then each `+` pattern.
 * Rules with the same pattern string in several policies were merged
 * when the ACL was built (VAULT_API 7.2).
 *
 * Locking: pl.lock (rwlock) guards the policy table and the ACL cache.
 * ACLs are immutable once built and reference-counted, so a request keeps
 * using its ACL after a policy change drops it from the cache.
 */
#include "policy.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "policy_hcl.h"
#include "storage.h"
#include "token.h"

#define POLICY_PREFIX "sys/policy/"
#define ACL_CACHE_SLOTS 512 /* power of two; cleared when half full */

const char policy_default_text[] =
    "# Allow tokens to look up their own properties\n"
    "path \"auth/token/lookup-self\" {\n"
    "    capabilities = [\"read\"]\n"
    "}\n"
    "\n"
    "# Allow tokens to renew themselves\n"
    "path \"auth/token/renew-self\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow tokens to revoke themselves\n"
    "path \"auth/token/revoke-self\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow a token to look up its own capabilities on a path\n"
    "path \"sys/capabilities-self\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow a token to look up its own entity by id or name\n"
    "path \"identity/entity/id/{{identity.entity.id}}\" {\n"
    "  capabilities = [\"read\"]\n"
    "}\n"
    "path \"identity/entity/name/{{identity.entity.name}}\" {\n"
    "  capabilities = [\"read\"]\n"
    "}\n"
    "\n"
    "\n"
    "# Allow a token to look up its resultant ACL from all policies. This "
    "is useful\n"
    "# for UIs. It is an internal path because the format may change at "
    "any time\n"
    "# based on how the internal ACL features and capabilities change.\n"
    "path \"sys/internal/ui/resultant-acl\" {\n"
    "    capabilities = [\"read\"]\n"
    "}\n"
    "\n"
    "# Allow a token to renew a lease via lease_id in the request body; "
    "old path for\n"
    "# old clients, new path for newer\n"
    "path \"sys/renew\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "path \"sys/leases/renew\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow looking up lease properties. This requires knowing the lease "
    "ID ahead\n"
    "# of time and does not divulge any sensitive information.\n"
    "path \"sys/leases/lookup\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow a token to manage its own cubbyhole\n"
    "path \"cubbyhole/*\" {\n"
    "    capabilities = [\"create\", \"read\", \"update\", \"delete\", "
    "\"list\"]\n"
    "}\n"
    "\n"
    "# Allow a token to wrap arbitrary values in a response-wrapping token\n"
    "path \"sys/wrapping/wrap\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow a token to look up the creation time and TTL of a given\n"
    "# response-wrapping token\n"
    "path \"sys/wrapping/lookup\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow a token to unwrap a response-wrapping token. This is a "
    "convenience to\n"
    "# avoid client token swapping since this is also part of the response "
    "wrapping\n"
    "# policy.\n"
    "path \"sys/wrapping/unwrap\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow general purpose tools\n"
    "path \"sys/tools/hash\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "path \"sys/tools/hash/*\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow checking the status of a Control Group request if the user has "
    "the\n"
    "# accessor\n"
    "path \"sys/control-group/request\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow a token to make requests to the Authorization Endpoint for "
    "OIDC providers.\n"
    "path \"identity/oidc/provider/+/authorize\" {\n"
    "    capabilities = [\"read\", \"update\"]\n"
    "}\n";

/* ========================================================= merged ACL == */

struct acl_ent {
    char *pat;        /* the pattern as written */
    size_t len;       /* strlen(pat) */
    size_t klen;      /* bytes hashed: len, or len - 1 for prefixes */
    uint64_t hash;    /* of pat[0..klen) */
    int wc_pos;       /* first '+' segment or the trailing '*' */
    int nplus;        /* '+' segments */
    bool prefix;      /* ends with '*' */
    struct policy_perms perms;
};

struct htab {
    struct acl_ent **slot;
    size_t mask; /* slots - 1; 0 slots when mask == 0 and slot == NULL */
};

struct acl {
    atomic_int refs;
    uint64_t gen;
    struct htab exact, prefix;
    unsigned char *plen;   /* plen[i]: a prefix of length i exists */
    size_t max_plen;
    struct acl_ent **plus;
    size_t nplus;
    struct pgroup *pg;     /* `+` patterns by literal prefix before '+' */
    size_t pg_mask;
    struct acl_ent **all;  /* owns every entry */
    size_t nall;
    struct strvec checks;  /* Lua policies with a check function */
};

/* `+` patterns sharing the literal text before their first '+'. */
struct pgroup {
    const char *prefix; /* points into the first member's pattern */
    size_t len;
    uint64_t hash;
    struct acl_ent **v;
    size_t n, cap;
};

#define FNV_OFF 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = FNV_OFF;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
    return h;
}

static void htab_init(struct htab *t, size_t n)
{
    size_t slots = 8;

    while (slots < n * 2)
        slots *= 2;
    t->slot = xcalloc(slots, sizeof(*t->slot));
    t->mask = slots - 1;
}

static void htab_put(struct htab *t, struct acl_ent *e)
{
    size_t i = (size_t)e->hash & t->mask;

    while (t->slot[i] != NULL)
        i = (i + 1) & t->mask;
    t->slot[i] = e;
}

static struct acl_ent *htab_get(const struct htab *t, uint64_t h,
                                const char *k, size_t n)
{
    size_t i = (size_t)h & t->mask;
    struct acl_ent *e;

    while ((e = t->slot[i]) != NULL) {
        if (e->hash == h && e->klen == n && memcmp(e->pat, k, n) == 0)
            return e;
        i = (i + 1) & t->mask;
    }
    return NULL;
}

/* Fills wc_pos, nplus, prefix; returns true for a `+` pattern. */
static bool classify(struct acl_ent *e)
{
    const char *p = e->pat;
    size_t i = 0;

    e->prefix = e->len > 0 && p[e->len - 1] == '*';
    e->wc_pos = e->prefix ? (int)e->len - 1 : (int)e->len;
    e->nplus = 0;
    while (i <= e->len) {
        size_t j = i;
        while (j < e->len && p[j] != '/')
            j++;
        if (j - i == 1 && p[i] == '+') {
            if (e->nplus == 0 && (int)i < e->wc_pos)
                e->wc_pos = (int)i;
            e->nplus++;
        }
        i = j + 1;
    }
    return e->nplus > 0;
}

static void acl_free(struct acl *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nall; i++) {
        free(a->all[i]->pat);
        policy_perms_release(&a->all[i]->perms);
        free(a->all[i]);
    }
    free(a->all);
    free(a->exact.slot);
    free(a->prefix.slot);
    free(a->plen);
    free(a->plus);
    for (size_t i = 0; a->pg != NULL && i <= a->pg_mask; i++)
        free(a->pg[i].v);
    free(a->pg);
    strvec_release(&a->checks);
    free(a);
}

static void acl_put(struct acl *a)
{
    if (a != NULL && atomic_fetch_sub(&a->refs, 1) == 1)
        acl_free(a);
}

/*
 * Builds the merged ACL of n compiled policies. Rules with the same
 * pattern string merge (capabilities union, deny wins, parameters).
 */
static struct acl *acl_build(struct policy *const *pols, size_t n)
{
    struct acl *a = xcalloc(1, sizeof(*a));
    struct htab byname;
    size_t total = 0, nex = 0, npre = 0, i, k, cap;

    atomic_init(&a->refs, 1);
    strvec_init(&a->checks);
    for (i = 0; i < n; i++)
        total += pols[i] != NULL ? pols[i]->n : 0;
    htab_init(&byname, total);
    cap = total > 0 ? total : 1;
    a->all = xcalloc(cap, sizeof(*a->all));
    for (i = 0; i < n; i++) {
        if (pols[i] == NULL)
            continue;
        for (k = 0; k < pols[i]->n; k++) {
            const struct policy_rule *r = &pols[i]->rules[k];
            size_t len = strlen(r->path);
            uint64_t h = fnv(r->path, len);
            struct acl_ent *e = htab_get(&byname, h, r->path, len);

            if (e == NULL) {
                e = xcalloc(1, sizeof(*e));
                e->pat = xstrdup(r->path);
                e->len = e->klen = len;
                e->hash = h;
                strvec_init(&e->perms.required);
                htab_put(&byname, e);
                a->all[a->nall++] = e;
            }
            policy_perms_merge(&e->perms, &r->perms);
        }
    }
    free(byname.slot);
    /* Classify; prefixes are keyed without their '*'. */
    for (i = 0; i < a->nall; i++) {
        struct acl_ent *e = a->all[i];
        if (classify(e))
            a->nplus++;
        else if (e->prefix)
            npre++;
        else
            nex++;
    }
    htab_init(&a->exact, nex);
    htab_init(&a->prefix, npre);
    a->plus = xcalloc(a->nplus > 0 ? a->nplus : 1, sizeof(*a->plus));
    a->nplus = 0;
    for (i = 0; i < a->nall; i++) {
        struct acl_ent *e = a->all[i];
        if (e->nplus > 0) {
            a->plus[a->nplus++] = e;
        } else if (e->prefix) {
            e->klen = e->len - 1;
            e->hash = fnv(e->pat, e->klen);
            if (e->klen + 1 > a->max_plen)
                a->max_plen = e->klen + 1;
            htab_put(&a->prefix, e);
        } else {
            htab_put(&a->exact, e);
        }
    }
    /* Group `+` patterns by their literal prefix (ends at a '/'). */
    {
        size_t slots = 8;
        while (slots < a->nplus * 2)
            slots *= 2;
        a->pg = xcalloc(slots, sizeof(*a->pg));
        a->pg_mask = slots - 1;
        for (i = 0; i < a->nplus; i++) {
            struct acl_ent *e = a->plus[i];
            size_t len = (size_t)e->wc_pos;
            uint64_t h = fnv(e->pat, len);
            size_t j = (size_t)h & a->pg_mask;
            struct pgroup *g;

            while (a->pg[j].prefix != NULL &&
                   !(a->pg[j].hash == h && a->pg[j].len == len &&
                     memcmp(a->pg[j].prefix, e->pat, len) == 0))
                j = (j + 1) & a->pg_mask;
            g = &a->pg[j];
            if (g->prefix == NULL) {
                g->prefix = e->pat;
                g->len = len;
                g->hash = h;
            }
            if (g->n == g->cap) {
                g->cap = g->cap ? g->cap * 2 : 4;
                g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
            }
            g->v[g->n++] = e;
        }
    }
    (void)k;
    a->plen = xcalloc(a->max_plen + 1, 1);
    for (i = 0; i < a->nall; i++) {
        if (a->all[i]->nplus == 0 && a->all[i]->prefix)
            a->plen[a->all[i]->klen] = 1;
    }
    return a;
}

/* Longest `*` rule whose prefix starts path[0..n). */
static const struct acl_ent *acl_longest_prefix(const struct acl *a,
                                                const char *path, size_t n)
{
    const struct acl_ent *best = NULL, *e;
    uint64_t h = FNV_OFF;
    size_t i, lim = n < a->max_plen ? n : a->max_plen - 1;

    if (a->max_plen == 0)
        return NULL;
    for (i = 0;; i++) {
        if (a->plen[i] && (e = htab_get(&a->prefix, h, path, i)) != NULL)
            best = e;
        if (i >= lim)
            break;
        h = (h ^ (unsigned char)path[i]) * FNV_PRIME;
    }
    return best;
}

/* Segment match of a `+` pattern against path[0..n). */
static bool plus_match(const struct acl_ent *e, const char *path, size_t n)
{
    const char *p = e->pat, *pend = e->pat + e->len;
    const char *s = path, *send = path + n;

    for (;;) {
        const char *pe = memchr(p, '/', (size_t)(pend - p));
        const char *se = memchr(s, '/', (size_t)(send - s));
        bool last = pe == NULL;

        if (pe == NULL)
            pe = pend;
        if (se == NULL)
            se = send;
        if (last && e->prefix) {
            size_t k = (size_t)(pe - p) - 1; /* without '*' */
            if (k == 1 && p[0] == '+')
                return true; /* unreachable: "+*" is rejected */
            return (size_t)(se - s) >= k && memcmp(s, p, k) == 0;
        }
        if (!(pe - p == 1 && p[0] == '+') &&
            !(pe - p == se - s && memcmp(p, s, (size_t)(pe - p)) == 0))
            return false;
        if (last)
            return se == send;
        if (se == send)
            return false;
        p = pe + 1;
        s = se + 1;
    }
}

/* Vault's wcPathDescr ordering: true when a is more specific than b. */
static bool more_specific(const struct acl_ent *a, const struct acl_ent *b)
{
    if (a->wc_pos != b->wc_pos)
        return a->wc_pos > b->wc_pos;
    if (a->prefix != b->prefix)
        return !a->prefix;
    if (a->nplus != b->nplus)
        return a->nplus < b->nplus;
    if (a->len != b->len)
        return a->len > b->len;
    return strcmp(a->pat, b->pat) > 0;
}

static const struct pgroup *pgroup_get(const struct acl *a, uint64_t h,
                                       const char *k, size_t n)
{
    size_t j = (size_t)h & a->pg_mask;

    while (a->pg[j].prefix != NULL) {
        if (a->pg[j].hash == h && a->pg[j].len == n &&
            memcmp(a->pg[j].prefix, k, n) == 0)
            return &a->pg[j];
        j = (j + 1) & a->pg_mask;
    }
    return NULL;
}

/*
 * The best of the longest `*` rule and the matching `+` rules. Only the
 * `+` groups whose literal prefix is a prefix of path ending at a '/'
 * (or empty) are tried, so a lookup costs one probe per path segment.
 */
static const struct acl_ent *acl_nonexact(const struct acl *a,
                                          const char *path, size_t n)
{
    const struct acl_ent *best = acl_longest_prefix(a, path, n);
    uint64_t h = FNV_OFF;

    if (a->nplus == 0)
        return best;
    for (size_t i = 0;; i++) {
        if (i == 0 || path[i - 1] == '/') {
            const struct pgroup *g = pgroup_get(a, h, path, i);
            for (size_t k = 0; g != NULL && k < g->n; k++) {
                const struct acl_ent *e = g->v[k];
                if (plus_match(e, path, n) &&
                    (best == NULL || more_specific(e, best)))
                    best = e;
            }
        }
        if (i >= n)
            break;
        h = (h ^ (unsigned char)path[i]) * FNV_PRIME;
    }
    return best;
}

/*
 * The one rule that applies to path (VAULT_API 7.2), or NULL. As in
 * Vault 1.14's AllowOperation: the exact rule; for LIST also the exact
 * rule without the trailing '/'; then the `*` and `+` rules against the
 * full path. The glob and `+` rules are never tried on the path without
 * its slash: "secret/metadata/private" would then match the glob
 * "secret/metadata/" + '*' while the deny on "secret/metadata/private/"
 * + '*' was never looked at, and a LIST would slip past it.
 */
static const struct acl_ent *acl_match(const struct acl *a, const char *path,
                                       bool list)
{
    size_t n = strlen(path);
    const struct acl_ent *e = htab_get(&a->exact, fnv(path, n), path, n);

    if (e == NULL && list && n > 0 && path[n - 1] == '/')
        e = htab_get(&a->exact, fnv(path, n - 1), path, n - 1);
    if (e == NULL)
        e = acl_nonexact(a, path, n);
    return e;
}

/* ========================================================= parameters == */

/* Vault's GlobbedStringsMatch: leading and/or trailing '*'. */
static bool glob_match(const char *pat, const char *s)
{
    size_t pl = strlen(pat), sl = strlen(s);

    if (pl >= 2 && pat[0] == '*' && pat[pl - 1] == '*') {
        char *mid = xstrndup(pat + 1, pl - 2);
        bool ok = strstr(s, mid) != NULL;
        free(mid);
        return ok;
    }
    if (pl >= 1 && pat[0] == '*')
        return sl >= pl - 1 && strcmp(s + sl - (pl - 1), pat + 1) == 0;
    if (pl >= 1 && pat[pl - 1] == '*')
        return strncmp(s, pat, pl - 1) == 0;
    return strcmp(pat, s) == 0;
}

static bool value_in_list(const cJSON *v, const cJSON *list)
{
    const cJSON *e;

    if (cJSON_GetArraySize(list) == 0)
        return true;
    cJSON_ArrayForEach(e, list) {
        if (cJSON_IsString(e) && cJSON_IsString(v)) {
            if (glob_match(e->valuestring, v->valuestring))
                return true;
        } else if (cJSON_IsNumber(e) && cJSON_IsRaw(v)) {
            double d;
            if (json_number_exact(v->valuestring, strlen(v->valuestring),
                                  &d) && d == e->valuedouble)
                return true;
        } else if (cJSON_Compare(e, v, true)) {
            return true;
        }
    }
    return false;
}

/* Looks key up lower-cased in a params object. */
static const cJSON *param_get(const cJSON *params, const char *key)
{
    char low[256];
    size_t i;

    for (i = 0; key[i] != '\0' && i + 1 < sizeof(low); i++)
        low[i] = (char)tolower((unsigned char)key[i]);
    low[i] = '\0';
    if (key[i] != '\0')
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(params, low);
}

static bool has_key_ci(const cJSON *data, const char *name)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, data) {
        if (strcasecmp(e->string, name) == 0)
            return true;
    }
    return false;
}

/* Vault's parameter checks (acl.go), for read/create/update/patch. */
static bool params_ok(const struct policy_perms *p, const cJSON *data,
                      struct errbuf *why)
{
    const cJSON *e, *list;
    bool all_allowed;

    for (size_t i = 0; i < p->required.n; i++) {
        if (data == NULL || !has_key_ci(data, p->required.v[i])) {
            errbuf_set(why, "required parameter \"%s\" missing",
                       p->required.v[i]);
            return false;
        }
    }
    if (data == NULL || data->child == NULL)
        return true;
    if (p->denied != NULL && p->denied->child != NULL) {
        if (cJSON_GetObjectItemCaseSensitive(p->denied, "*") != NULL) {
            errbuf_set(why, "all parameters are denied");
            return false;
        }
        cJSON_ArrayForEach(e, data) {
            list = param_get(p->denied, e->string);
            if (list != NULL && value_in_list(e, list)) {
                errbuf_set(why, "parameter \"%s\" is denied", e->string);
                return false;
            }
        }
    }
    if (p->allowed == NULL || p->allowed->child == NULL)
        return true;
    all_allowed = cJSON_GetObjectItemCaseSensitive(p->allowed, "*") != NULL;
    if (all_allowed && cJSON_GetArraySize(p->allowed) == 1)
        return true;
    cJSON_ArrayForEach(e, data) {
        list = param_get(p->allowed, e->string);
        if (list == NULL && !all_allowed) {
            errbuf_set(why, "parameter \"%s\" is not allowed", e->string);
            return false;
        }
        if (list != NULL && !value_in_list(e, list)) {
            errbuf_set(why, "value of parameter \"%s\" is not allowed",
                       e->string);
            return false;
        }
    }
    return true;
}

static unsigned op_cap(enum req_op op)
{
    switch (op) {
    case OP_READ: return PCAP_READ;
    case OP_CREATE: return PCAP_CREATE;
    case OP_UPDATE: return PCAP_UPDATE;
    case OP_DELETE: return PCAP_DELETE;
    case OP_LIST: return PCAP_LIST;
    case OP_PATCH: return PCAP_PATCH;
    case OP_HEAD: return PCAP_READ;
    }
    return 0;
}

/*
 * The whole ACL decision for one request against a merged ACL: rule,
 * capability, sudo, parameters, wrapping. 0 or COFFER_EPERM with why.
 */
static int acl_check(const struct acl *a, const char *path, enum req_op op,
                     const cJSON *data, int64_t wrap_ttl, struct errbuf *why)
{
    const struct acl_ent *e = acl_match(a, path, op == OP_LIST);
    const struct policy_perms *p;

    if (e == NULL) {
        errbuf_set(why, "no policy rule matches \"%s\"", path);
        return COFFER_EPERM;
    }
    p = &e->perms;
    if (p->caps & PCAP_DENY) {
        errbuf_set(why, "rule \"%s\" denies", e->pat);
        return COFFER_EPERM;
    }
    if ((p->caps & op_cap(op)) == 0) {
        errbuf_set(why, "rule \"%s\" does not grant %s", e->pat,
                   req_op_name(op));
        return COFFER_EPERM;
    }
    if (policy_path_needs_sudo(path, op) && (p->caps & PCAP_SUDO) == 0) {
        errbuf_set(why, "\"%s\" needs sudo", path);
        return COFFER_EPERM;
    }
    if ((op == OP_READ || op == OP_CREATE || op == OP_UPDATE ||
         op == OP_PATCH) && !params_ok(p, data, why))
        return COFFER_EPERM;
    if ((p->min_wrap > 0 || p->max_wrap > 0) &&
        (wrap_ttl <= 0 || (p->min_wrap > 0 && wrap_ttl < p->min_wrap) ||
         (p->max_wrap > 0 && wrap_ttl > p->max_wrap) ||
         (p->max_wrap > 0 && p->max_wrap < p->min_wrap))) {
        /* Vault: the rule simply does not grant it (no special text). */
        errbuf_set(why, "rule \"%s\": wrap TTL %lld outside its bounds",
                   e->pat, (long long)wrap_ttl);
        return COFFER_EPERM;
    }
    return 0;
}

/* ============================================================== store == */

struct named {
    char *name;
    char *text;            /* stored text; NULL for Lua policies */
    struct policy *pol;
    bool lua;
    bool has_check;
};

static struct {
    pthread_rwlock_t lock;
    bool ready;
    struct storage *s;
    struct named *v;       /* sorted by name */
    size_t n, cap;
    uint64_t gen;
    struct {
        char *key;   /* policy set, or \001<token id>/<count> */
        struct acl *acl;
    } cache[ACL_CACHE_SLOTS];
    size_t ncache;
} pl = {.lock = PTHREAD_RWLOCK_INITIALIZER};

/* Lua check names of the ACL being built; only under the write lock. */
static struct strvec a_checks_scratch;

static struct named *find_named(const char *name)
{
    size_t lo = 0, hi = pl.n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(pl.v[mid].name, name);
        if (c == 0)
            return &pl.v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Inserts or replaces; takes ownership of text and pol. Write lock. */
static void put_named(const char *name, char *text, struct policy *pol,
                      bool lua, bool has_check)
{
    struct named *e = find_named(name);
    size_t i;

    if (e != NULL) {
        free(e->text);
        policy_free(e->pol);
    } else {
        if (pl.n == pl.cap) {
            pl.cap = pl.cap ? pl.cap * 2 : 16;
            pl.v = xrealloc(pl.v, pl.cap * sizeof(*pl.v));
        }
        for (i = pl.n; i > 0 && strcmp(pl.v[i - 1].name, name) > 0; i--)
            pl.v[i] = pl.v[i - 1];
        e = &pl.v[i];
        pl.n++;
        e->name = xstrdup(name);
    }
    e->text = text;
    e->pol = pol;
    e->lua = lua;
    e->has_check = has_check;
}

static void drop_named(const char *name)
{
    struct named *e = find_named(name);
    size_t i;

    if (e == NULL)
        return;
    i = (size_t)(e - pl.v);
    free(e->name);
    free(e->text);
    policy_free(e->pol);
    memmove(&pl.v[i], &pl.v[i + 1], (pl.n - i - 1) * sizeof(*pl.v));
    pl.n--;
}

/* Drops every cached ACL. Write lock. */
static void cache_clear(void)
{
    for (size_t i = 0; i < ACL_CACHE_SLOTS; i++) {
        acl_put(pl.cache[i].acl);
        free(pl.cache[i].key);
        pl.cache[i].acl = NULL;
        pl.cache[i].key = NULL;
    }
    pl.ncache = 0;
}

/* A policy changed: new generation, no cached ACL survives. */
static void changed(void)
{
    pl.gen++;
    cache_clear();
}

/* "a\nb\nc" for sorted names: a new string, its length in *len. */
static char *set_key(const struct strvec *names, size_t *len)
{
    size_t n = 1, used = 0;
    char *out;

    for (size_t i = 0; i < names->n; i++)
        n += strlen(names->v[i]) + 1;
    out = xmalloc(n);
    for (size_t i = 0; i < names->n; i++) {
        size_t k = strlen(names->v[i]);
        if (i > 0)
            out[used++] = '\n';
        memcpy(out + used, names->v[i], k);
        used += k;
    }
    out[used] = '\0';
    *len = used;
    return out;
}

/* The slot holding key, or the empty slot where it would go. */
static struct acl *cache_find(const char *key, size_t len, size_t *slot)
{
    size_t i = (size_t)fnv(key, len) & (ACL_CACHE_SLOTS - 1);

    while (pl.cache[i].key != NULL) {
        if (strcmp(pl.cache[i].key, key) == 0)
            break;
        i = (i + 1) & (ACL_CACHE_SLOTS - 1);
    }
    *slot = i;
    return pl.cache[i].acl;
}

/* Adds key -> a (taking a new reference). Write lock. */
static void cache_add(const char *key, size_t len, struct acl *a)
{
    size_t slot;

    if (cache_find(key, len, &slot) != NULL)
        return;
    if (pl.ncache >= ACL_CACHE_SLOTS / 2) {
        cache_clear();
        (void)cache_find(key, len, &slot);
    }
    atomic_fetch_add(&a->refs, 1);
    pl.cache[slot].key = xstrdup(key);
    pl.cache[slot].acl = a;
    pl.ncache++;
}

/* A cached ACL for key, with a new reference, or NULL. Any lock. */
static struct acl *cache_get(const char *key, size_t len)
{
    size_t slot;
    struct acl *a = pl.ready ? cache_find(key, len, &slot) : NULL;

    if (a != NULL)
        atomic_fetch_add(&a->refs, 1);
    return a;
}

/* The merged ACL of a sorted policy set (a reference), or NULL. */
static struct acl *acl_for(const struct strvec *names)
{
    size_t len, i;
    char *key = set_key(names, &len);
    struct acl *a;
    struct policy **pols;
    bool ready;

    pthread_rwlock_rdlock(&pl.lock);
    ready = pl.ready;
    a = cache_get(key, len);
    pthread_rwlock_unlock(&pl.lock);
    if (a != NULL || !ready)
        goto out;

    pthread_rwlock_wrlock(&pl.lock);
    a = cache_get(key, len);
    if (a == NULL && pl.ready) {
        pols = xcalloc(names->n + 1, sizeof(*pols));
        for (i = 0; i < names->n; i++) {
            struct named *e = find_named(names->v[i]);
            pols[i] = e != NULL ? e->pol : NULL;
            if (e != NULL && e->has_check)
                strvec_push(&a_checks_scratch, e->name);
        }
        a = acl_build(pols, names->n);
        free(pols);
        a->checks = a_checks_scratch;
        strvec_init(&a_checks_scratch);
        a->gen = pl.gen;
        cache_add(key, len, a);
    }
    pthread_rwlock_unlock(&pl.lock);
out:
    free(key);
    return a;
}

/*
 * The merged ACL of t's policies. A token's policy set never changes
 * after creation, so the ACL is also cached under the token's id: a
 * token with a thousand policies does not rebuild (or even join) the
 * names of its set on every request.
 */
static struct acl *acl_for_token(const struct token *t)
{
    char key[192];
    int len;
    struct acl *a;

    if (t->id_hmac == NULL)
        return acl_for(&t->policies);
    len = snprintf(key, sizeof(key), "\001%.128s/%zu", t->id_hmac,
                   t->policies.n);
    pthread_rwlock_rdlock(&pl.lock);
    a = cache_get(key, (size_t)len);
    pthread_rwlock_unlock(&pl.lock);
    if (a != NULL)
        return a;
    a = acl_for(&t->policies);
    if (a == NULL)
        return NULL;
    pthread_rwlock_wrlock(&pl.lock);
    if (pl.ready && a->gen == pl.gen)
        cache_add(key, (size_t)len, a);
    pthread_rwlock_unlock(&pl.lock);
    return a;
}

/* ===================================================== load and store == */

static int store_put(const char *name, const char *text)
{
    cJSON *o = cJSON_CreateObject();
    char *js, key[512];
    int rc;

    snprintf(key, sizeof(key), POLICY_PREFIX "%s", name);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "policy", text);
    js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    rc = storage_put(pl.s, key, js, strlen(js));
    free(js);
    return rc;
}

/* Reads and compiles one stored policy into the table. Write lock. */
static int load_one(const char *name, struct errbuf *err)
{
    char key[512];
    struct buf b;
    cJSON *o = NULL;
    const cJSON *text;
    struct policy *pol;
    int rc;

    snprintf(key, sizeof(key), POLICY_PREFIX "%s", name);
    buf_init(&b, BUF_MAX_DEFAULT);
    rc = storage_get(pl.s, key, &b);
    if (rc == 0)
        o = json_parse(b.ptr != NULL ? b.ptr : "", b.len, 64, false, NULL);
    buf_release(&b);
    if (rc != 0)
        return rc;
    text = cJSON_GetObjectItemCaseSensitive(o, "policy");
    if (!cJSON_IsString(text)) {
        cJSON_Delete(o);
        errbuf_set(err, "policy %s: stored entry is corrupt", name);
        return COFFER_EIO;
    }
    pol = policy_parse(text->valuestring, err);
    if (pol == NULL) {
        /* Written by an older parser? Keep the server up; deny by it. */
        log_error("policy: stored policy %s does not parse: %s", name,
                  err->msg);
        pol = xcalloc(1, sizeof(*pol));
    }
    put_named(name, xstrdup(text->valuestring), pol, false, false);
    cJSON_Delete(o);
    return 0;
}

static const struct policy_lua_provider *lua_provider;

void policy_set_lua_provider(const struct policy_lua_provider *p)
{
    lua_provider = p;
}

/* Lua policies compiled but not yet in the table. */
struct lua_batch {
    struct named *v;
    size_t n;
};

static void batch_release(struct lua_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->v[i].name);
        policy_free(b->v[i].pol);
    }
    free(b->v);
    b->v = NULL;
    b->n = 0;
}

/*
 * Compiles every Lua policy of list ([{name, file, check, paths}]) into
 * b, touching nothing shared, so that a reload can refuse a bad policy
 * while the old ones keep serving. 0, or COFFER_EINVAL with "file:
 * message" in err (b then empty).
 */
static int compile_lua(const cJSON *list, struct lua_batch *b,
                       struct errbuf *err)
{
    const cJSON *e;

    b->v = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*b->v));
    b->n = 0;
    cJSON_ArrayForEach(e, list) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(e, "paths");
        const cJSON *check = cJSON_GetObjectItemCaseSensitive(e, "check");
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(e, "file");
        struct policy *pol;
        struct errbuf perr;

        if (!cJSON_IsString(name))
            continue;
        if (strcmp(name->valuestring, "root") == 0) {
            errbuf_set(err, "%s: a Lua policy cannot be named root",
                       cJSON_IsString(file) ? file->valuestring : "?");
            batch_release(b);
            return COFFER_EINVAL;
        }
        pol = paths != NULL ? policy_from_paths(paths, &perr)
                            : xcalloc(1, sizeof(struct policy));
        if (pol == NULL) {
            errbuf_set(err, "%s: %s",
                       cJSON_IsString(file) ? file->valuestring : "?",
                       perr.msg);
            batch_release(b);
            return COFFER_EINVAL;
        }
        b->v[b->n++] = (struct named){.name = xstrdup(name->valuestring),
                                      .pol = pol, .lua = true,
                                      .has_check = cJSON_IsTrue(check)};
    }
    return 0;
}

/* Moves the batch into the table (emptying it). Write lock. */
static void install_lua(struct lua_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        put_named(b->v[i].name, NULL, b->v[i].pol, true, b->v[i].has_check);
        free(b->v[i].name);
        b->v[i].pol = NULL;
    }
    b->n = 0;
    batch_release(b);
}

/* Drops every Lua policy from the table. Write lock. */
static void drop_lua(void)
{
    size_t i = 0;

    while (i < pl.n) {
        if (pl.v[i].lua)
            drop_named(pl.v[i].name);
        else
            i++;
    }
}

/* Compiles the Lua policies the provider lists. Write lock. */
static int load_lua(struct errbuf *err)
{
    const cJSON *list = lua_provider != NULL ? lua_provider->list() : NULL;
    struct lua_batch b;
    int rc = compile_lua(list, &b, err);

    if (rc == 0)
        install_lua(&b);
    return rc;
}

int policy_reload_lua(const cJSON *list, struct errbuf *err)
{
    struct lua_batch b;
    int rc = compile_lua(list, &b, err);

    if (rc != 0)
        return rc;
    pthread_rwlock_wrlock(&pl.lock);
    if (!pl.ready) {
        errbuf_set(err, "Vault is sealed");
        rc = COFFER_ESEALED;
    } else {
        drop_lua();
        install_lua(&b);
        changed();
    }
    pthread_rwlock_unlock(&pl.lock);
    batch_release(&b);
    return rc;
}

static void clear_all(void)
{
    for (size_t i = 0; i < pl.n; i++) {
        free(pl.v[i].name);
        free(pl.v[i].text);
        policy_free(pl.v[i].pol);
    }
    free(pl.v);
    pl.v = NULL;
    pl.n = pl.cap = 0;
    cache_clear();
}

int policy_init(struct storage *logical, struct errbuf *err)
{
    struct strvec names;
    int rc = 0;

    strvec_init(&names);
    pthread_rwlock_wrlock(&pl.lock);
    clear_all();
    pl.s = logical;
    rc = storage_list(logical, POLICY_PREFIX, &names);
    for (size_t i = 0; rc == 0 && i < names.n; i++) {
        if (!str_has_suffix(names.v[i], "/"))
            rc = load_one(names.v[i], err);
    }
    if (rc == 0 && find_named("default") == NULL) {
        rc = store_put("default", policy_default_text);
        if (rc == 0)
            rc = load_one("default", err);
    }
    if (rc == 0)
        rc = load_lua(err);
    if (rc != 0) {
        if (err->msg[0] == '\0')
            errbuf_set(err, "policies: %s", coffer_strerror(rc));
        clear_all();
    } else {
        pl.ready = true;
        changed();
    }
    pthread_rwlock_unlock(&pl.lock);
    strvec_release(&names);
    return rc;
}

void policy_shutdown(void)
{
    pthread_rwlock_wrlock(&pl.lock);
    pl.ready = false;
    clear_all();
    pl.s = NULL;
    pthread_rwlock_unlock(&pl.lock);
}

int policy_write(const char *name, const char *text, struct errbuf *err)
{
    struct policy *pol;
    struct named *e;
    int rc;

    if (strcmp(name, "root") == 0) {
        errbuf_set(err, "cannot update \"root\" policy");
        return COFFER_EPERM;
    }
    pol = policy_parse(text, err);
    if (pol == NULL)
        return COFFER_EINVAL;
    pthread_rwlock_wrlock(&pl.lock);
    e = pl.ready ? find_named(name) : NULL;
    if (!pl.ready) {
        rc = COFFER_ESEALED;
        errbuf_set(err, "Vault is sealed");
    } else if (e != NULL && e->lua) {
        rc = COFFER_EPERM;
        errbuf_set(err, "cannot update \"%s\" policy: it is defined in Lua",
                   name);
    } else {
        rc = store_put(name, text);
        if (rc == 0) {
            put_named(name, xstrdup(text), pol, false, false);
            pol = NULL;
            changed();
        } else {
            errbuf_set(err, "failed to persist policy: %s",
                       coffer_strerror(rc));
        }
    }
    pthread_rwlock_unlock(&pl.lock);
    policy_free(pol);
    return rc;
}

int policy_read(const char *name, char **text)
{
    struct named *e;
    int rc = COFFER_ENOTFOUND;

    *text = NULL;
    if (strcmp(name, "root") == 0) {
        *text = xstrdup("");
        return 0;
    }
    pthread_rwlock_rdlock(&pl.lock);
    e = pl.ready ? find_named(name) : NULL;
    if (e != NULL) {
        *text = e->text != NULL ? xstrdup(e->text) : policy_render(e->pol);
        rc = 0;
    }
    pthread_rwlock_unlock(&pl.lock);
    return rc;
}

int policy_delete(const char *name, struct errbuf *err)
{
    struct named *e;
    char key[512];
    int rc = 0;

    if (strcmp(name, "root") == 0) {
        errbuf_set(err, "cannot delete \"root\" policy");
        return COFFER_EPERM;
    }
    if (strcmp(name, "default") == 0) {
        errbuf_set(err, "cannot delete default policy");
        return COFFER_EPERM;
    }
    pthread_rwlock_wrlock(&pl.lock);
    e = pl.ready ? find_named(name) : NULL;
    if (e != NULL && e->lua) {
        errbuf_set(err, "cannot delete \"%s\" policy: it is defined in Lua",
                   name);
        rc = COFFER_EPERM;
    } else if (e != NULL) {
        snprintf(key, sizeof(key), POLICY_PREFIX "%s", name);
        rc = storage_delete(pl.s, key);
        if (rc == 0 || rc == COFFER_ENOTFOUND) {
            rc = 0;
            drop_named(name);
            changed();
        } else {
            errbuf_set(err, "failed to delete policy: %s",
                       coffer_strerror(rc));
        }
    }
    pthread_rwlock_unlock(&pl.lock);
    return rc;
}

void policy_names(struct strvec *out)
{
    pthread_rwlock_rdlock(&pl.lock);
    for (size_t i = 0; pl.ready && i < pl.n; i++)
        strvec_push(out, pl.v[i].name);
    pthread_rwlock_unlock(&pl.lock);
}

/* ========================================================== decisions == */

/*
 * Vault's root paths (VAULT_API 7.3). A trailing '*' is a prefix; `list`
 * marks entries that only guard LIST.
 */
static const struct {
    const char *pat;
    bool list_only;
} sudo_paths[] = {
    {"sys/auth/*", false},
    {"sys/audit", false},
    {"sys/audit/*", false},
    {"sys/leases", false},
    {"sys/leases/", false},
    {"sys/leases/lookup/*", true},
    {"sys/leases/revoke-prefix/*", false},
    {"sys/leases/revoke-force/*", false},
    {"sys/revoke-prefix/*", false},
    {"sys/revoke-force/*", false},
    {"sys/remount", false},
    {"sys/rotate", false},
    {"sys/raw", false},
    {"sys/raw/*", false},
    {"sys/config/cors", false},
    {"sys/config/auditing/*", false},
    {"sys/config/ui/headers/*", false},
    {"sys/plugins/catalog/*", false},
    {"sys/plugins/reload/backend", false},
    {"sys/internal/inspect/*", false},
    {"sys/storage/raft/snapshot-auto/config/*", false},
    {"sys/seal", false},
    {"sys/step-down", false},
    {"auth/token/revoke-orphan/*", false},
    {"auth/token/accessors*", false},
};

bool policy_path_needs_sudo(const char *path, enum req_op op)
{
    for (size_t i = 0; i < ARRAY_LEN(sudo_paths); i++) {
        const char *p = sudo_paths[i].pat;
        size_t n = strlen(p);
        bool hit = p[n - 1] == '*' ? strncmp(path, p, n - 1) == 0
                                   : strcmp(path, p) == 0;
        if (hit && (!sudo_paths[i].list_only || op == OP_LIST))
            return true;
    }
    return false;
}

int policy_check(const struct token *t, const struct request *req,
                 struct errbuf *why)
{
    struct acl *a;
    int rc;

    errbuf_clear(why);
    if (t->is_root)
        return 0;
    a = acl_for_token(t);
    if (a == NULL) {
        errbuf_set(why, "policies are not loaded");
        return COFFER_EPERM;
    }
    rc = acl_check(a, req->path, req->op, req->data, req->wrap_ttl, why);
    for (size_t i = 0; rc == 0 && i < a->checks.n; i++) {
        rc = lua_provider != NULL
                 ? lua_provider->check(a->checks.v[i], req, t, why)
                 : COFFER_EINTERNAL;
        if (rc != 0)
            rc = COFFER_EPERM;
    }
    acl_put(a);
    return rc;
}

bool policy_allows(const struct token *t, const char *path, enum req_op op)
{
    struct acl *a;
    const struct acl_ent *e;
    bool ok;

    if (t->is_root)
        return true;
    a = acl_for_token(t);
    if (a == NULL)
        return false;
    e = acl_match(a, path, op == OP_LIST);
    ok = e != NULL && (e->perms.caps & PCAP_DENY) == 0 &&
         (e->perms.caps & op_cap(op)) != 0;
    acl_put(a);
    return ok;
}

bool policy_has_sudo(const struct token *t, const char *path)
{
    struct acl *a;
    const struct acl_ent *e;
    bool ok;

    if (t == NULL)
        return false;
    if (t->is_root)
        return true;
    a = acl_for_token(t);
    if (a == NULL)
        return false;
    e = acl_match(a, path, false);
    ok = e != NULL && (e->perms.caps & (PCAP_DENY | PCAP_SUDO)) == PCAP_SUDO;
    acl_put(a);
    return ok;
}

/* Capability names of one ACL entry (or deny). */
static void entry_caps(const struct acl_ent *e, struct strvec *out)
{
    if (e == NULL || e->perms.caps == 0 || (e->perms.caps & PCAP_DENY)) {
        strvec_push(out, "deny");
        return;
    }
    policy_cap_names(e->perms.caps, out);
}

void policy_capabilities(const struct token *t, const char *path,
                         struct strvec *out)
{
    struct acl *a;

    if (t->is_root) {
        strvec_push(out, "root");
        return;
    }
    a = acl_for_token(t);
    if (a == NULL) {
        strvec_push(out, "deny");
        return;
    }
    if (path[0] == '/')
        path++;
    entry_caps(acl_match(a, path, true), out);
    acl_put(a);
}
