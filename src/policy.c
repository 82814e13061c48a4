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
 * Every entry keeps the policies (and lines) its rules came from, and one
 * decide() serves both real requests and, with a trace, explanations
 * (policy_trace; rendered by policy_explain.c), so the two cannot drift.
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
#include "policy_params.h"
#include "storage.h"
#include "token.h"

#define POLICY_PREFIX "sys/policy/"
#define ACL_CACHE_SLOTS 512 /* power of two; cleared when half full */

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
    struct policy_src *src; /* the policies' rules merged here (explain) */
    size_t nsrc;
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
    struct strvec names;   /* the policy set; policy_src names point here */
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
        free(a->all[i]->src);
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
    strvec_release(&a->names);
    free(a);
}

static void acl_put(struct acl *a)
{
    if (a != NULL && atomic_fetch_sub(&a->refs, 1) == 1)
        acl_free(a);
}

/* Records which policy's rule (and line) was merged into e. */
static void ent_add_src(struct acl_ent *e, const char *policy,
                        const struct policy_rule *r)
{
    e->src = xrealloc(e->src, (e->nsrc + 1) * sizeof(*e->src));
    e->src[e->nsrc++] = (struct policy_src){.policy = policy,
                                            .line = r->line,
                                            .caps = r->perms.caps};
}

/*
 * Builds the merged ACL of n compiled policies named names[i] (NULL:
 * unnamed). Rules
 * with the same pattern string merge (capabilities union, deny wins,
 * parameters); each entry remembers the rules it came from.
 */
static struct acl *acl_build(struct policy *const *pols,
                             const char *const *names, size_t n)
{
    struct acl *a = xcalloc(1, sizeof(*a));
    struct htab byname;
    size_t total = 0, nex = 0, npre = 0, i, k, cap;

    atomic_init(&a->refs, 1);
    strvec_init(&a->checks);
    strvec_init(&a->names);
    for (i = 0; i < n; i++) {
        strvec_push(&a->names, names != NULL ? names[i] : "");
        total += pols[i] != NULL ? pols[i]->n : 0;
    }
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
            ent_add_src(e, a->names.v[i], r);
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

/*
 * Vault's wcPathDescr ordering: the criterion by which a is more
 * specific than b, or PLOST_NONE when it is not (explain names it).
 */
static enum policy_lost outranks(const struct acl_ent *a,
                                 const struct acl_ent *b)
{
    if (a->wc_pos != b->wc_pos)
        return a->wc_pos > b->wc_pos ? PLOST_WILDCARD : PLOST_NONE;
    if (a->prefix != b->prefix)
        return !a->prefix ? PLOST_PREFIX : PLOST_NONE;
    if (a->nplus != b->nplus)
        return a->nplus < b->nplus ? PLOST_PLUS : PLOST_NONE;
    if (a->len != b->len)
        return a->len > b->len ? PLOST_LENGTH : PLOST_NONE;
    return strcmp(a->pat, b->pat) > 0 ? PLOST_LEXICAL : PLOST_NONE;
}

static bool more_specific(const struct acl_ent *a, const struct acl_ent *b)
{
    return outranks(a, b) != PLOST_NONE;
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

/* Records the deciding step (and rule) in tr; returns rc. */
static int traced(struct policy_trace *tr, enum policy_step step,
                  const struct acl_ent **used, const struct acl_ent *e,
                  int rc)
{
    if (tr != NULL)
        tr->step = step;
    if (used != NULL)
        *used = e;
    return rc;
}

/*
 * The whole ACL decision for one request against a merged ACL: rule,
 * capability, sudo, parameters, wrapping. 0 or COFFER_EPERM with why.
 * tr (NULL on real requests) records the step and *used the rule.
 */
static int acl_check(const struct acl *a, const struct request *req,
                     struct errbuf *why, struct policy_trace *tr,
                     const struct acl_ent **used)
{
    const char *path = req->path;
    enum req_op op = req->op;
    int64_t wrap_ttl = req->wrap_ttl;
    const struct acl_ent *e = acl_match(a, path, op == OP_LIST);
    const struct policy_perms *p;
    struct param_fail pf;

    if (tr != NULL)
        tr->sudo_required = policy_path_needs_sudo(path, op);
    if (e == NULL) {
        errbuf_set(why, "no policy rule matches \"%s\"", path);
        return traced(tr, PSTEP_NO_RULE, used, e, COFFER_EPERM);
    }
    p = &e->perms;
    if (p->caps & PCAP_DENY) {
        errbuf_set(why, "rule \"%s\" denies", e->pat);
        return traced(tr, PSTEP_DENY, used, e, COFFER_EPERM);
    }
    if ((p->caps & op_cap(op)) == 0) {
        errbuf_set(why, "rule \"%s\" does not grant %s", e->pat,
                   req_op_name(op));
        return traced(tr, PSTEP_NO_CAP, used, e, COFFER_EPERM);
    }
    if (policy_path_needs_sudo(path, op) && (p->caps & PCAP_SUDO) == 0) {
        errbuf_set(why, "\"%s\" needs sudo", path);
        return traced(tr, PSTEP_SUDO, used, e, COFFER_EPERM);
    }
    if ((op == OP_READ || op == OP_CREATE || op == OP_UPDATE ||
         op == OP_PATCH) && !policy_params_ok(p, req->data, why, &pf)) {
        if (tr != NULL) {
            tr->param_rule = pf.rule;
            memcpy(tr->param, pf.name, sizeof(tr->param));
        }
        return traced(tr, PSTEP_PARAM, used, e, COFFER_EPERM);
    }
    if ((p->min_wrap > 0 || p->max_wrap > 0) &&
        (wrap_ttl <= 0 || (p->min_wrap > 0 && wrap_ttl < p->min_wrap) ||
         (p->max_wrap > 0 && wrap_ttl > p->max_wrap) ||
         (p->max_wrap > 0 && p->max_wrap < p->min_wrap))) {
        /* Vault: the rule simply does not grant it (no special text). */
        errbuf_set(why, "rule \"%s\": wrap TTL %lld outside its bounds",
                   e->pat, (long long)wrap_ttl);
        return traced(tr, PSTEP_WRAP, used, e, COFFER_EPERM);
    }
    return traced(tr, PSTEP_ALLOW, used, e, 0);
}

/* ============================================================== store == */

struct named {
    char *name;
    char *text;            /* stored text; NULL for Lua policies */
    struct policy *pol;
    bool lua;
    bool has_check;
    char *file;            /* Lua: its file, and its check's first line */
    int check_line;
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
        free(e->file);
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
    e->file = NULL;
    e->check_line = 0;
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
    free(e->file);
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
        a = acl_build(pols, (const char *const *)names->v, names->n);
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
        free(b->v[i].file);
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
        const cJSON *line = cJSON_GetObjectItemCaseSensitive(e,
                                                             "check_line");
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
        b->v[b->n++] = (struct named){
            .name = xstrdup(name->valuestring), .pol = pol, .lua = true,
            .has_check = cJSON_IsTrue(check),
            .file = cJSON_IsString(file) ? xstrdup(file->valuestring) : NULL,
            .check_line = cJSON_IsNumber(line) ? line->valueint : 0};
    }
    return 0;
}

/* Moves the batch into the table (emptying it). Write lock. */
static void install_lua(struct lua_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct named *e;
        put_named(b->v[i].name, NULL, b->v[i].pol, true, b->v[i].has_check);
        e = find_named(b->v[i].name);
        e->file = b->v[i].file;
        e->check_line = b->v[i].check_line;
        b->v[i].file = NULL;
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
        free(pl.v[i].file);
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

char *policy_lua_file(const char *name)
{
    struct named *e;
    char *file = NULL;

    pthread_rwlock_rdlock(&pl.lock);
    e = pl.ready ? find_named(name) : NULL;
    if (e != NULL && e->lua)
        file = xstrdup(e->file != NULL ? e->file : "");
    pthread_rwlock_unlock(&pl.lock);
    return file;
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
    {"sys/policies/explain", false}, /* any token's policies, explained */
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

/* ------------------------------------------------------------ traces -- */

static enum policy_kind ent_kind(const struct acl_ent *e)
{
    return e->nplus > 0 ? PKIND_SEGMENT : e->prefix ? PKIND_GLOB
                                                    : PKIND_EXACT;
}

/* Whether e's pattern matches path[0..n) at all (acl_match's tests). */
static bool ent_matches(const struct acl_ent *e, const char *path, size_t n,
                        bool list)
{
    if (e->nplus > 0)
        return plus_match(e, path, n);
    if (e->prefix)
        return n >= e->klen && memcmp(path, e->pat, e->klen) == 0;
    if (e->len == n && memcmp(path, e->pat, n) == 0)
        return true;
    return list && n > 0 && path[n - 1] == '/' && e->len == n - 1 &&
           memcmp(path, e->pat, n - 1) == 0;
}

static struct policy_hit hit_of(const struct acl_ent *e,
                                enum policy_lost lost)
{
    return (struct policy_hit){.pattern = e->pat, .kind = ent_kind(e),
                               .caps = e->perms.caps, .src = e->src,
                               .nsrc = e->nsrc, .lost = lost};
}

static void hit_add(struct policy_trace *tr, const struct acl_ent *e,
                    enum policy_lost lost)
{
    tr->hits[tr->nhits++] = hit_of(e, lost);
}

/* No rule matched: the one sharing the most whole segments with path. */
static void trace_closest(const struct acl *a, const char *path,
                          struct policy_trace *tr)
{
    size_t best = 0;

    for (size_t i = 0; i < a->nall; i++) {
        const char *pat = a->all[i]->pat;
        size_t seg = 0;
        for (size_t k = 0; path[k] != '\0' && path[k] == pat[k]; k++) {
            if (path[k] == '/')
                seg = k + 1;
        }
        if (seg > best) {
            best = seg;
            tr->closest = hit_of(a->all[i], PLOST_NONE);
        }
    }
}

/* The rule used first, then every other matching rule and why it lost. */
static void trace_hits(const struct acl *a, const struct request *req,
                       const struct acl_ent *used, struct policy_trace *tr)
{
    size_t n = strlen(req->path);

    tr->hits = xcalloc(a->nall + 1, sizeof(*tr->hits));
    if (used != NULL) {
        hit_add(tr, used, PLOST_NONE);
        tr->decisive = true;
    } else {
        trace_closest(a, req->path, tr);
    }
    for (size_t i = 0; i < a->nall; i++) {
        const struct acl_ent *e = a->all[i];
        if (e == used || !ent_matches(e, req->path, n, req->op == OP_LIST))
            continue;
        hit_add(tr, e, used == NULL ? PLOST_NONE
                       : ent_kind(used) == PKIND_EXACT ? PLOST_EXACT
                                                       : outranks(used, e));
    }
}

/* Records one Lua check's outcome: {policy, file, line, result, reason}. */
static void trace_lua(struct policy_trace *tr, const char *name, int rc,
                      const struct errbuf *why)
{
    cJSON *o = cJSON_CreateObject();
    const char *msg = why->msg;
    size_t plen = strlen("policy ") + strlen(name) + 2;
    struct named *e;

    pthread_rwlock_rdlock(&pl.lock);
    e = pl.ready ? find_named(name) : NULL;
    cJSON_AddStringToObject(o, "policy", name);
    if (e != NULL && e->file != NULL)
        cJSON_AddStringToObject(o, "file", e->file);
    else
        cJSON_AddNullToObject(o, "file");
    if (e != NULL && e->check_line > 0)
        cJSON_AddNumberToObject(o, "line", e->check_line);
    else
        cJSON_AddNullToObject(o, "line");
    pthread_rwlock_unlock(&pl.lock);
    cJSON_AddStringToObject(o, "result", rc == 0 ? "allow"
                                         : rc == COFFER_EPERM ? "deny"
                                                              : "error");
    if (strncmp(msg, "policy ", 7) == 0 && strlen(msg) >= plen &&
        strncmp(msg + 7, name, strlen(name)) == 0)
        msg += plen; /* luavm_policy_check's "policy <name>: " */
    cJSON_AddStringToObject(o, "reason", rc == 0 ? "" : msg);
    cJSON_AddItemToArray(tr->lua, o);
}

/*
 * The decision for req against a (t may be NULL): the ACL, then each
 * Lua policy's check. Real requests pass tr NULL; explain passes a
 * trace, so both take exactly this path.
 */
static int decide(const struct acl *a, const struct token *t,
                  const struct request *req, struct errbuf *why,
                  struct policy_trace *tr)
{
    const struct acl_ent *used = NULL;
    int rc = acl_check(a, req, why, tr, &used);

    for (size_t i = 0; rc == 0 && i < a->checks.n; i++) {
        rc = lua_provider != NULL
                 ? lua_provider->check(a->checks.v[i], req, t, why)
                 : COFFER_EINTERNAL;
        if (tr != NULL)
            trace_lua(tr, a->checks.v[i], rc, why);
        if (rc != 0)
            rc = traced(tr, PSTEP_LUA, NULL, NULL, COFFER_EPERM);
    }
    if (tr != NULL)
        trace_hits(a, req, used, tr);
    return rc;
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
    rc = decide(a, t, req, why, NULL);
    acl_put(a);
    return rc;
}

/* Traces req against a (a reference the trace then holds). */
static int trace_acl(struct acl *a, const struct token *t,
                     const struct request *req, struct policy_trace *tr,
                     struct errbuf *why)
{
    if (a == NULL) {
        errbuf_set(why, "policies are not loaded");
        tr->step = PSTEP_NO_ACL;
        return COFFER_EPERM;
    }
    tr->acl = a;
    return decide(a, t, req, why, tr);
}

int policy_trace(const struct token *t, const struct strvec *names,
                 const struct request *req, struct policy_trace *tr,
                 struct errbuf *why)
{
    memset(tr, 0, sizeof(*tr));
    tr->lua = cJSON_CreateArray();
    errbuf_clear(why);
    tr->sudo_required = policy_path_needs_sudo(req->path, req->op);
    if (t != NULL ? t->is_root : strvec_contains(names, "root"))
        return 0; /* PSTEP_ALLOW, as policy_check answers root */
    return trace_acl(t != NULL ? acl_for_token(t) : acl_for(names), t, req,
                     tr, why);
}

int policy_trace_one(const struct policy *p, const char *name,
                     const struct request *req, struct policy_trace *tr,
                     struct errbuf *why)
{
    struct policy *pols[1] = {(struct policy *)p};

    memset(tr, 0, sizeof(*tr));
    tr->lua = cJSON_CreateArray();
    errbuf_clear(why);
    return trace_acl(acl_build(pols, &name, 1), NULL, req, tr, why);
}

void policy_trace_release(struct policy_trace *tr)
{
    free(tr->hits);
    cJSON_Delete(tr->lua);
    acl_put(tr->acl);
    memset(tr, 0, sizeof(*tr));
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

/* A `+` pattern that can match some path under mount: segment by
 * segment, '+' matching any one segment, until the mount's segments end. */
static bool plus_reaches(const struct acl_ent *e, const char *mount)
{
    const char *p = e->pat, *m = mount;

    while (*m != '\0') {
        const char *ms = strchr(m, '/'), *ps = strchr(p, '/');
        size_t mn = ms != NULL ? (size_t)(ms - m) : strlen(m);
        size_t pn = ps != NULL ? (size_t)(ps - p) : strlen(p);

        /* A trailing glob whose text so far fits covers the rest. */
        if (p[pn] == '\0' && e->prefix && pn - 1 <= mn &&
            memcmp(p, m, pn - 1) == 0)
            return true;
        if (!(pn == 1 && p[0] == '+') &&
            !(pn == mn && memcmp(p, m, mn) == 0))
            return false;
        if (ms == NULL)
            return true;
        if (ps == NULL)
            return false; /* the pattern ends inside the mount path */
        m = ms + 1;
        p = ps + 1;
    }
    return true;
}

bool policy_mount_visible(const struct token *t, const char *mount)
{
    struct acl *a;
    const struct acl_ent *e;
    size_t n = strlen(mount);
    bool ok;

    if (t == NULL)
        return false;
    if (t->is_root)
        return true;
    a = acl_for_token(t);
    if (a == NULL)
        return false;
    e = acl_match(a, mount, true);
    ok = e != NULL && e->perms.caps != 0 && (e->perms.caps & PCAP_DENY) == 0;
    for (size_t i = 0; i < a->nall && !ok; i++) {
        e = a->all[i];
        if (e->perms.caps == 0 || (e->perms.caps & PCAP_DENY) != 0)
            continue;
        if (e->nplus > 0)
            ok = plus_reaches(e, mount);
        else
            ok = e->len >= n && strncmp(e->pat, mount, n) == 0;
    }
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
