/*
 * token_endpoints.c - the auth/token/ endpoints (VAULT_API 3.2, 8.1, 8.2)
 * and the token of a successful login.
 *
 * Owns the wire format: parsing create requests, choosing a new token's
 * policies, TTL and name (Vault's rules, including roles), the lookup
 * and auth reply shapes, and dispatch. Stored state is reached through
 * the store (token.c, token_internal.h); roles are token_roles.c.
 */
#include "token.h"
#include "token_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "fields.h"
#include "lease.h"
#include "log.h"
#include "mount.h"
#include "policy.h"
#include "router.h"
#include "storage.h"

/* ============================================================= replies == */

static cJSON *auth_block(const struct token *t, const char *client_token)
{
    cJSON *a = cJSON_CreateObject();

    cJSON_AddStringToObject(a, "client_token", client_token);
    cJSON_AddStringToObject(a, "accessor", t->accessor);
    cJSON_AddItemToObject(a, "policies", token_policies_json(&t->policies));
    cJSON_AddItemToObject(a, "token_policies", token_policies_json(&t->policies));
    if (t->meta != NULL)
        cJSON_AddItemToObject(a, "metadata", cJSON_Duplicate(t->meta, 1));
    else
        cJSON_AddNullToObject(a, "metadata");
    cJSON_AddNumberToObject(a, "lease_duration", (double)t->ttl);
    cJSON_AddBoolToObject(a, "renewable", t->renewable);
    cJSON_AddStringToObject(a, "entity_id", t->entity_id);
    cJSON_AddStringToObject(a, "token_type", t->type);
    cJSON_AddBoolToObject(a, "orphan", t->orphan);
    cJSON_AddNullToObject(a, "mfa_requirement");
    cJSON_AddNumberToObject(a, "num_uses", (double)t->num_uses);
    return a;
}

static cJSON *lookup_data(const struct token *t, const char *client_token)
{
    cJSON *d = cJSON_CreateObject();
    bool root_like = t->expire_time == 0 && strcmp(t->path,
                                                   "auth/token/root") == 0;
    char when[64];
    int64_t now = time_now().tv_sec;

    cJSON_AddStringToObject(d, "accessor", t->accessor);
    cJSON_AddNumberToObject(d, "creation_time", (double)t->creation_time);
    cJSON_AddNumberToObject(d, "creation_ttl", (double)t->creation_ttl);
    cJSON_AddStringToObject(d, "display_name", t->display_name);
    cJSON_AddStringToObject(d, "entity_id", t->entity_id);
    if (t->expire_time != 0) {
        time_format_rfc3339((struct timespec){t->expire_time, 0}, when,
                            sizeof(when));
        cJSON_AddStringToObject(d, "expire_time", when);
    } else {
        cJSON_AddNullToObject(d, "expire_time");
    }
    cJSON_AddNumberToObject(d, "explicit_max_ttl",
                            (double)t->explicit_max_ttl);
    cJSON_AddStringToObject(d, "id", client_token ? client_token : "");
    if (!root_like) {
        time_format_rfc3339(t->issue_time, when, sizeof(when));
        cJSON_AddStringToObject(d, "issue_time", when);
    }
    if (t->last_renewal != 0) {
        time_format_rfc3339((struct timespec){t->last_renewal, 0}, when,
                            sizeof(when));
        cJSON_AddStringToObject(d, "last_renewal", when);
        cJSON_AddNumberToObject(d, "last_renewal_time",
                                (double)t->last_renewal);
    }
    if (t->meta != NULL)
        cJSON_AddItemToObject(d, "meta", cJSON_Duplicate(t->meta, 1));
    else
        cJSON_AddNullToObject(d, "meta");
    cJSON_AddNumberToObject(d, "num_uses", (double)t->num_uses);
    cJSON_AddBoolToObject(d, "orphan", t->orphan);
    cJSON_AddStringToObject(d, "path", t->path);
    if (t->period != 0)
        cJSON_AddNumberToObject(d, "period", (double)t->period);
    if (t->role != NULL)
        cJSON_AddStringToObject(d, "role", t->role);
    if (t->bound_cidrs.n > 0)
        cJSON_AddItemToObject(d, "bound_cidrs", token_policies_json(&t->bound_cidrs));
    cJSON_AddItemToObject(d, "policies", token_policies_json(&t->policies));
    if (!root_like)
        cJSON_AddBoolToObject(d, "renewable", t->renewable);
    cJSON_AddNumberToObject(
        d, "ttl",
        t->expire_time == 0 ? 0.0
                            : (double)(t->expire_time > now
                                           ? t->expire_time - now
                                           : 0));
    cJSON_AddStringToObject(d, "type", t->type);
    return d;
}

/* ============================================================ creating == */

struct create_params {
    const char *id;
    const char *display_name;
    struct strvec policies;
    bool policies_given;
    cJSON *meta;
    bool no_parent;
    bool no_default_policy;
    bool renewable;
    int64_t ttl;
    int64_t explicit_max_ttl;
    int64_t period;
    int64_t num_uses;
};

static int parse_create(const cJSON *d, struct create_params *p,
                        struct response *resp)
{
    bool given, renewable_given;
    const char *type = NULL;

    memset(p, 0, sizeof(*p));
    strvec_init(&p->policies);
    p->renewable = true;
    if (field_string(d, "id", &p->id, resp) != 0 ||
        field_string(d, "display_name", &p->display_name, resp) != 0 ||
        field_string(d, "type", &type, resp) != 0 ||
        field_strlist(d, "policies", &p->policies, &p->policies_given,
                      resp) != 0 ||
        field_kvmap(d, "meta", &p->meta, resp) != 0 ||
        field_bool(d, "no_parent", &p->no_parent, &given, resp) != 0 ||
        field_bool(d, "no_default_policy", &p->no_default_policy, &given,
                   resp) != 0 ||
        field_bool(d, "renewable", &p->renewable, &renewable_given, resp) !=
            0 ||
        field_duration(d, "ttl", &p->ttl, &given, resp) != 0 ||
        (!given && field_duration(d, "lease", &p->ttl, &given, resp) != 0) ||
        field_duration(d, "explicit_max_ttl", &p->explicit_max_ttl, &given,
                       resp) != 0 ||
        field_duration(d, "period", &p->period, &given, resp) != 0 ||
        field_int(d, "num_uses", &p->num_uses, &given, resp) != 0)
        return -1;
    if (type != NULL && type[0] != '\0' && strcmp(type, "service") != 0 &&
        strcmp(type, "default") != 0) {
        response_error(resp, 400, "unsupported token type \"%s\": only "
                                  "service tokens are supported", type);
        return -1;
    }
    if (p->num_uses < 0) {
        response_error(resp, 400, "number of uses cannot be negative");
        return -1;
    }
    return 0;
}

/*
 * Trims and lower-cases every name, drops empty ones, sorts and removes
 * duplicates (Vault's policy list and glob list normalisation).
 */
void token_normalise_names(struct strvec *sv)
{
    struct strvec kept;

    strvec_init(&kept);
    for (size_t i = 0; i < sv->n; i++) {
        char *b = sv->v[i], *e = b + strlen(b);
        while (*b != '\0' && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            *--e = '\0';
        for (char *c = b; *c != '\0'; c++)
            *c = (char)tolower((unsigned char)*c);
        if (*b != '\0')
            strvec_push(&kept, b);
    }
    strvec_release(sv);
    *sv = kept;
    strvec_sort(sv);
    strvec_uniq(sv);
}

/* Vault's SanitizePolicies: normalised, and root swallows everything. */
void token_sanitize_policies(struct strvec *sv)
{
    token_normalise_names(sv);
    if (strvec_contains(sv, "root")) {
        strvec_release(sv);
        strvec_push(sv, "root");
    }
}

/* Appends src (and "default" if add_default) to out, then sanitises. */
static void add_policies(struct strvec *out, const struct strvec *src,
                         bool add_default)
{
    for (size_t i = 0; i < src->n; i++)
        strvec_push(out, src->v[i]);
    if (add_default)
        strvec_push(out, "default");
    token_sanitize_policies(out);
}

static void remove_name(struct strvec *sv, const char *name)
{
    size_t j = 0;

    for (size_t i = 0; i < sv->n; i++) {
        if (strcmp(sv->v[i], name) == 0)
            free(sv->v[i]);
        else
            sv->v[j++] = sv->v[i];
    }
    sv->n = j;
}

/* The characters a display name keeps (ASCII, whatever the locale). */
static bool display_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

/*
 * Bytes in the UTF-8 sequence that starts at c (1 when it is not a
 * well-formed lead byte with its continuation bytes): Vault's rule works
 * on characters, so "é" becomes one '-', not two.
 */
static size_t utf8_len(const unsigned char *c)
{
    size_t n = *c >= 0xf0 && *c <= 0xf4 ? 4
               : *c >= 0xe0 && *c <= 0xef ? 3
               : *c >= 0xc2 && *c <= 0xdf ? 2
                                          : 1;

    for (size_t i = 1; i < n; i++) {
        if ((c[i] & 0xc0) != 0x80)
            return 1;
    }
    return n;
}

/*
 * Vault's display name rule, in place: every character outside
 * [A-Za-z0-9-] becomes '-', then one trailing '-' is trimmed
 * (strings.TrimSuffix). Display names reach database username templates:
 * nothing else may get through.
 */
static void sanitize_display_name(char *name)
{
    const unsigned char *in = (const unsigned char *)name;
    char *out = name;

    while (*in != '\0') {
        size_t n = utf8_len(in);
        *out++ = n == 1 && display_char((char)*in) ? (char)*in : '-';
        in += n;
    }
    *out = '\0';
    if (out > name && out[-1] == '-')
        out[-1] = '\0';
}

/* auth/token/create's display name: "token-<name>", or "token". */
static char *make_display_name(const char *requested)
{
    size_t n;
    char *out;

    if (requested == NULL || requested[0] == '\0')
        return xstrdup("token");
    n = strlen(requested) + 7;
    out = xmalloc(n);
    snprintf(out, n, "token-%s", requested);
    sanitize_display_name(out);
    return out;
}

/* Computes the TTL per Vault's CalculateTTL for a new token. */
static int choose_ttl(const struct token *parent, struct token *t,
                      const struct create_params *p, struct response *resp)
{
    int64_t def, max;

    router_system_ttls(&def, &max);

    if (p->explicit_max_ttl > 0 && p->explicit_max_ttl < max)
        max = p->explicit_max_ttl;
    if (p->period > 0) {
        t->ttl = p->period;
        if (p->explicit_max_ttl > 0 && t->ttl > p->explicit_max_ttl)
            t->ttl = p->explicit_max_ttl;
    } else if (p->ttl > 0) {
        t->ttl = p->ttl > max ? max : p->ttl;
    } else if (t->is_root && p->explicit_max_ttl == 0) {
        t->ttl = 0;
    } else {
        t->ttl = def > max ? max : def;
    }
    if (t->ttl == 0 && parent->expire_time != 0) {
        response_error(resp, 400, "expiring root tokens cannot create "
                                  "non-expiring root tokens");
        return -1;
    }
    t->creation_ttl = t->ttl;
    t->expire_time = t->ttl ? t->creation_time + t->ttl : 0;
    return 0;
}

/*
 * What the caller may ask for at all. A use-limited parent makes no
 * tokens, its last use included (a child would escape the count). With a
 * role, no_parent is ignored (the role's orphan flag decides), as Vault
 * does.
 */
static int check_create_rights(const struct token *parent, bool sudo,
                               bool have_role, const struct create_params *p,
                               struct response *resp)
{
    if (parent->num_uses > 0 || parent->last_use) {
        response_error(resp, 400, "restricted use token cannot generate "
                                  "child tokens");
        return -1;
    }
    if (p->no_parent && !have_role && !sudo) {
        response_error(resp, 400, "root or sudo privileges required to "
                                  "create orphan token");
        return -1;
    }
    if (p->period > 0 && !sudo) {
        response_error(resp, 400, "root or sudo privileges required to "
                                  "create periodic token");
        return -1;
    }
    if (p->id != NULL && p->id[0] != '\0') {
        if (!sudo) {
            response_error(resp, 400, "root or sudo privileges required to "
                                      "specify token id");
            return -1;
        }
        if (str_has_prefix(p->id, "hvs.") || str_has_prefix(p->id, "s.") ||
            strchr(p->id, '.') != NULL) {
            response_error(resp, 400, "custom token ID cannot have the '.' "
                                      "in the value");
            return -1;
        }
        struct token *dup = token_lookup(p->id, false);
        if (dup != NULL) {
            token_free(dup);
            response_error(resp, 400, "cannot create a token with a "
                                      "duplicate ID");
            return -1;
        }
    }
    return 0;
}


/* ============================================================ policies == */

/* Policies no token may hold (Vault's non-assignable ones). */
static const char *const unassignable[] = {"response-wrapping",
                                           "control-group"};

/* Vault's role globs: '*' matches any run of characters. */
static bool glob_match(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;

    while (*s != '\0') {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star != NULL) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static bool glob_any(const struct strvec *globs, const char *s)
{
    for (size_t i = 0; i < globs->n; i++) {
        if (glob_match(globs->v[i], s))
            return true;
    }
    return false;
}

/* Go's %q of a []string, as Vault's messages print lists: ["a" "b"]. */
static void quote_list(const struct strvec *sv, char *out, size_t n)
{
    size_t used = 0;

    out[used++] = '[';
    for (size_t i = 0; i < sv->n && used + 4 < n; i++) {
        if (i > 0)
            out[used++] = ' ';
        out[used++] = '"';
        for (const char *c = sv->v[i]; *c != '\0' && used + 4 < n; c++) {
            if (*c == '"' || *c == '\\')
                out[used++] = '\\';
            out[used++] = *c;
        }
        out[used++] = '"';
    }
    out[used++] = ']';
    out[used] = '\0';
}

static bool role_limits_policies(const struct role *r)
{
    return r != NULL && (r->allowed.n > 0 || r->disallowed.n > 0 ||
                         r->allowed_glob.n > 0 || r->disallowed_glob.n > 0);
}

static int refuse_unlisted(const struct strvec *final,
                           const struct strvec *allowed,
                           const struct role *r, struct response *resp)
{
    char a[512], b[512], c[512];

    for (size_t i = 0; i < final->n; i++) {
        if (!strvec_contains(allowed, final->v[i]) &&
            !glob_any(&r->allowed_glob, final->v[i])) {
            quote_list(final, a, sizeof(a));
            quote_list(allowed, b, sizeof(b));
            quote_list(&r->allowed_glob, c, sizeof(c));
            response_error(resp, 400, "token policies (%s) must be subset "
                                      "of the role's allowed policies (%s) "
                                      "or glob policies (%s)", a, b, c);
            return -1;
        }
    }
    return 0;
}

/*
 * A role with allowed or disallowed lists (or globs) bounds the token
 * instead of the parent: requested policies must be allowed (when there
 * is an allowed list) and default to that list, else to the parent's;
 * none may be disallowed. "default" joins unless the request, the role
 * or the disallowed list says no.
 */
static int role_policies(const struct token *parent, const struct role *r,
                         const struct create_params *p, struct strvec *out,
                         struct response *resp)
{
    bool add_default = !p->no_default_policy && !r->no_default_policy &&
                       !strvec_contains(&r->disallowed, "default") &&
                       !glob_any(&r->disallowed_glob, "default");
    struct strvec allowed;
    int rc = 0;

    strvec_init(&allowed);
    if (p->policies.n > 0)
        add_policies(out, &p->policies, add_default);
    if (r->allowed.n > 0 || r->allowed_glob.n > 0) {
        add_policies(&allowed, &r->allowed, add_default);
        if (out->n == 0)
            add_policies(out, &allowed, false);
        else
            rc = refuse_unlisted(out, &allowed, r, resp);
    } else if (out->n == 0) {
        add_policies(out, &parent->policies, add_default);
    }
    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        if (strvec_contains(&r->disallowed, out->v[i]) ||
            glob_any(&r->disallowed_glob, out->v[i])) {
            response_error(resp, 400, "token policy \"%s\" is disallowed by "
                                      "this role", out->v[i]);
            rc = -1;
        }
    }
    strvec_release(&allowed);
    return rc;
}

/*
 * Without a limiting role the parent bounds the token: no policies asked
 * for means the parent's; a caller without sudo may only ask for a subset
 * of the parent's ("default" joins if the parent has it); sudo may ask
 * for any ("default" joins).
 */
static int parent_policies(const struct token *parent, bool sudo,
                           const struct create_params *p, struct strvec *out,
                           struct response *resp)
{
    struct strvec held;
    int rc = 0;

    if (p->policies.n == 0) {
        add_policies(out, &parent->policies, false);
        return 0;
    }
    add_policies(out, &p->policies, false);
    if (sudo) {
        if (!p->no_default_policy)
            strvec_push(out, "default");
        token_sanitize_policies(out);
        return 0;
    }
    strvec_init(&held);
    add_policies(&held, &parent->policies, false);
    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        if (!strvec_contains(&held, out->v[i])) {
            response_error(resp, 400, "child policies must be subset of "
                                      "parent");
            rc = -1;
        }
    }
    if (rc == 0 && !p->no_default_policy &&
        strvec_contains(&held, "default")) {
        strvec_push(out, "default");
        token_sanitize_policies(out);
    }
    strvec_release(&held);
    return rc;
}

/*
 * Vault's policy rules for every token made through auth/token/: the
 * role's or the parent's bounds, then the rules no caller escapes (no
 * unassignable policy, root only from a root parent).
 */
static int choose_policies(const struct token *parent, const struct role *r,
                           bool sudo, const struct create_params *p,
                           struct strvec *out, struct response *resp)
{
    int rc = role_limits_policies(r) ? role_policies(parent, r, p, out, resp)
                                     : parent_policies(parent, sudo, p, out,
                                                       resp);

    if (rc != 0)
        return rc;
    if (p->no_default_policy)
        remove_name(out, "default");
    for (size_t i = 0; i < ARRAY_LEN(unassignable); i++) {
        if (strvec_contains(out, unassignable[i])) {
            response_error(resp, 400, "cannot assign policy \"%s\"",
                           unassignable[i]);
            return -1;
        }
    }
    if (strvec_contains(out, "root") && !parent->is_root) {
        response_error(resp, 400, "root tokens may not be created without "
                                  "parent token being root");
        return -1;
    }
    return 0;
}

/*
 * Folds the role's limits into the request's: the lesser period and
 * explicit max TTL of the two (with Vault's warnings), the lower use
 * count, renewable only if both say so.
 */
static void apply_role(const struct role *r, struct create_params *p,
                       struct response *resp)
{
    if (r->period > 0) {
        if (p->period > 0)
            response_warn(resp, "Period specified both during creation "
                                "call and in role; using the lesser value "
                                "of %lld seconds",
                          (long long)(r->period < p->period ? r->period
                                                            : p->period));
        if (p->period == 0 || r->period < p->period)
            p->period = r->period;
    }
    if (r->explicit_max_ttl > 0) {
        if (p->explicit_max_ttl > 0)
            response_warn(resp, "Explicit max TTL specified both during "
                                "creation call and in role; using the "
                                "lesser value of %lld seconds",
                          (long long)(r->explicit_max_ttl <
                                              p->explicit_max_ttl
                                          ? r->explicit_max_ttl
                                          : p->explicit_max_ttl));
        if (p->explicit_max_ttl == 0 ||
            r->explicit_max_ttl < p->explicit_max_ttl)
            p->explicit_max_ttl = r->explicit_max_ttl;
    }
    if (!r->renewable)
        p->renewable = false;
    if (r->num_uses > 0 && (p->num_uses == 0 || p->num_uses > r->num_uses))
        p->num_uses = r->num_uses;
}

/*
 * Vault's CIDR bindings of a new token: a role's own list; else a child
 * keeps its parent's, so that a bound token cannot shed its binding by
 * making a child. Vault drops the binding of a non-expiring root token;
 * Coffer keeps it (a binding is never lost silently).
 */
static void choose_bound_cidrs(const struct token *parent,
                               const struct role *r, struct token *t)
{
    const struct strvec *src = r != NULL ? &r->bound_cidrs
                               : !t->orphan ? &parent->bound_cidrs
                                            : NULL;

    for (size_t i = 0; src != NULL && i < src->n; i++)
        strvec_push(&t->bound_cidrs, src->v[i]);
}

static char *role_token_path(const char *name, const struct role *r)
{
    size_t n = strlen(name) + strlen(r->path_suffix) + 32;
    char *path = xmalloc(n);

    snprintf(path, n, "auth/token/create/%s%s%s", name,
             r->path_suffix[0] ? "/" : "", r->path_suffix);
    return path;
}


/*
 * Mints the client token, stores the entry with its indexes and lease,
 * and answers with Vault's auth block. 0, or -1 with resp set. The
 * client token lives only as long as this call and the reply.
 */
static int issue(struct token *t, const char *custom_id,
                 const struct mount *m, struct response *resp)
{
    char *client = token_mint(t, custom_id);
    int rc = client != NULL ? token_persist_new(t, m) : COFFER_EINTERNAL;

    if (rc == COFFER_ENOTFOUND)
        response_error(resp, 400, "parent token not found");
    else if (rc == COFFER_EEXIST)
        response_error(resp, 400, "cannot create a token with a duplicate "
                                  "ID");
    else if (rc != 0)
        response_error(resp, 500, "failed to create token");
    else
        resp->auth = auth_block(t, client);
    secure_free_str(client);
    return rc == 0 ? 0 : -1;
}

/* role_name: NULL for plain create / create-orphan. */
static void handle_create(struct request *req, struct response *resp,
                          bool orphan_path, const char *role_name)
{
    const struct token *parent = req->token;
    bool sudo = policy_has_sudo(parent, req->path);
    struct create_params p;
    struct token *t = token_entry_new();
    struct role r;
    bool have_role = false;
    int rc;

    token_role_init(&r);
    if (parse_create(req->data, &p, resp) != 0)
        goto out;
    if (role_name == NULL && field_string(req->data, "role_name", &role_name,
                                          resp) != 0)
        goto out;
    if (role_name != NULL && role_name[0] != '\0') {
        token_role_release(&r);
        rc = COFFER_ENOTFOUND;
        if (token_role_name_valid(role_name))
            rc = token_role_load(role_name, &r); /* leaves r initialised */
        else
            token_role_init(&r);
        if (rc != 0) {
            response_error(resp, 400, "unknown role %s", role_name);
            goto out;
        }
        have_role = true;
    }
    if (check_create_rights(parent, sudo, have_role, &p, resp) != 0)
        goto out;
    if (have_role)
        apply_role(&r, &p, resp);
    if (choose_policies(parent, have_role ? &r : NULL, sudo, &p,
                        &t->policies, resp) != 0)
        goto out;
    t->is_root = strvec_contains(&t->policies, "root");
    if (choose_ttl(parent, t, &p, resp) != 0)
        goto out;
    t->display_name = make_display_name(p.display_name);
    t->orphan = orphan_path || (have_role ? r.orphan : p.no_parent);
    if (!t->orphan)
        t->parent_hmac = xstrdup(parent->id_hmac);
    if (have_role) {
        t->path = role_token_path(role_name, &r);
        t->role = xstrdup(role_name);
    } else {
        t->path = xstrdup(orphan_path ? "auth/token/create-orphan"
                                      : "auth/token/create");
    }
    choose_bound_cidrs(parent, have_role ? &r : NULL, t);
    t->meta = p.meta;
    p.meta = NULL;
    t->renewable = t->ttl == 0 ? false : p.renewable;
    t->explicit_max_ttl = p.explicit_max_ttl;
    t->period = p.period;
    t->num_uses = p.num_uses;
    if (issue(t, p.id, req->mount, resp) != 0)
        goto out;
    log_info("token: created accessor %s (%s) by accessor %s", t->accessor,
             t->display_name, parent->accessor);
out:
    strvec_release(&p.policies);
    cJSON_Delete(p.meta);
    token_role_release(&r);
    token_free(t);
}

/* ================================================ lookup, renew, revoke == */

/* The "token" field, or the caller's own token when absent and allowed. */
static const char *target_token(struct request *req, bool self_if_empty,
                                struct response *resp)
{
    const char *tok = NULL;

    if (field_string(req->data, "token", &tok, resp) != 0)
        return NULL;
    if ((tok == NULL || tok[0] == '\0') && self_if_empty)
        return req->client_token;
    if (tok == NULL || tok[0] == '\0') {
        response_error(resp, 400, "missing token ID");
        return NULL;
    }
    return tok;
}

static const char *target_accessor(struct request *req,
                                   struct response *resp)
{
    const char *acc = NULL;

    if (field_string(req->data, "accessor", &acc, resp) != 0)
        return NULL;
    if (acc == NULL || acc[0] == '\0') {
        response_multierror(resp, 400, "missing accessor");
        return NULL;
    }
    return acc;
}

static void handle_lookup(struct request *req, struct response *resp,
                          bool self, bool by_accessor)
{
    const char *tok = NULL, *acc = NULL;
    struct token *t = NULL;

    if (by_accessor) {
        acc = target_accessor(req, resp);
        if (acc == NULL)
            return;
        t = token_entry_by_accessor(acc);
        if (t == NULL) {
            response_multierror(resp, 400, "invalid accessor");
            return;
        }
    } else if (self && req->token != NULL) {
        /* The caller's own entry, as authenticated: its last use may
         * already have revoked it (Vault answers that request too). */
        resp->data = lookup_data(req->token, req->client_token);
        return;
    } else {
        tok = self ? req->client_token
                   : target_token(req, req->op == OP_READ, resp);
        if (tok == NULL)
            return;
        t = token_lookup(tok, false);
        if (t == NULL) {
            response_error(resp, 403, "bad token");
            return;
        }
    }
    resp->data = lookup_data(t, by_accessor ? "" : tok);
    token_free(t);
}


/*
 * The stored id a renew or revoke request names (a token, the caller's
 * own, or an accessor) into out, and the client token named (NULL for an
 * accessor) into *tok. False, with resp set if the request was
 * malformed, when it names nothing.
 */
static bool target_hmac(struct request *req, bool self, bool by_accessor,
                        char out[HMAC_HEX_LEN + 1], const char **tok,
                        struct response *resp)
{
    const char *acc;

    *tok = NULL;
    if (by_accessor) {
        acc = target_accessor(req, resp);
        return acc != NULL && token_accessor_hmac(acc, out);
    }
    *tok = self ? req->client_token : target_token(req, false, resp);
    if (*tok == NULL || (*tok)[0] == '\0' || strlen(*tok) > 512)
        return false;
    token_hmac(*tok, out);
    return true;
}

static void handle_renew(struct request *req, struct response *resp,
                         bool self, bool by_accessor)
{
    char hmac[HMAC_HEX_LEN + 1];
    const char *tok;
    struct token *t;

    if (!target_hmac(req, self, by_accessor, hmac, &tok, resp)) {
        if (resp->errors == NULL)
            response_error(resp, 400, "token not found");
        return;
    }
    t = token_renew_entry(hmac, req->data, resp);
    if (t != NULL)
        resp->auth = auth_block(t, tok != NULL ? tok : "");
    token_free(t);
}

/*
 * Revokes what the request names, whatever state it is in (expired or
 * pending revocation included): revoking an unknown token succeeds.
 */
static void handle_revoke(struct request *req, struct response *resp,
                          bool self, bool by_accessor, bool orphan)
{
    char hmac[HMAC_HEX_LEN + 1];
    const char *tok;
    struct token *t;
    int rc = 0;

    if (orphan && !policy_has_sudo(req->token, req->path)) {
        response_error(resp, 400, "root or sudo privileges required to "
                                  "revoke and orphan");
        return;
    }
    if (!target_hmac(req, self, by_accessor, hmac, &tok, resp))
        return;
    t = token_entry_load(hmac);
    if (t != NULL)
        rc = orphan ? token_revoke_orphan(hmac, t->accessor)
                    : token_revoke_tree(hmac, t->accessor, NULL);
    if (rc != 0)
        response_error(resp, 500, "failed to revoke token: %s",
                       coffer_strerror(rc));
    token_free(t);
}

static void handle_accessors(struct response *resp)
{
    struct strvec keys;

    strvec_init(&keys);
    if (storage_list(token_storage(), "token/accessor/", &keys) != 0)
        response_error(resp, 500, "failed to list accessors");
    else
        response_keys(resp, &keys);
    strvec_release(&keys);
}

/* ============================================================= logins == */

/*
 * "<mount path without auth/>" + name, sanitised like a token's display
 * name ("userpass-alice"). Vault only turns '/' into '-' here; Coffer
 * applies the full rule, because the name comes from whoever logs in and
 * reaches database username templates ({{.DisplayName}}), where a quote
 * or a semicolon must never arrive, whatever the auth method accepted.
 */
static char *login_display_name(const struct mount *m, const char *name)
{
    const char *mp = str_has_prefix(m->path, "auth/") ? m->path + 5 : m->path;
    size_t n = strlen(mp) + strlen(name) + 1;
    char *out = xmalloc(n);

    snprintf(out, n, "%s%s", mp, name);
    sanitize_display_name(out);
    return out;
}

/* Reads the identity's fields (the same coercions as request fields). */
static int identity_params(const cJSON *id, struct create_params *p,
                           int64_t *max_ttl, struct strvec *cidrs,
                           struct response *resp)
{
    bool given;

    memset(p, 0, sizeof(*p));
    strvec_init(&p->policies);
    p->renewable = true;
    *max_ttl = 0;
    if (!cJSON_IsObject(id)) {
        response_error(resp, 500, "internal error");
        log_error("token: an auth method's login returned no identity");
        return -1;
    }
    if (field_string(id, "display_name", &p->display_name, resp) != 0 ||
        field_strlist(id, "policies", &p->policies, &p->policies_given,
                      resp) != 0 ||
        field_kvmap(id, "metadata", &p->meta, resp) != 0 ||
        field_bool(id, "no_default_policy", &p->no_default_policy, &given,
                   resp) != 0 ||
        field_bool(id, "renewable", &p->renewable, &given, resp) != 0 ||
        field_duration(id, "ttl", &p->ttl, &given, resp) != 0 ||
        field_duration(id, "max_ttl", max_ttl, &given, resp) != 0 ||
        field_duration(id, "explicit_max_ttl", &p->explicit_max_ttl, &given,
                       resp) != 0 ||
        field_duration(id, "period", &p->period, &given, resp) != 0 ||
        field_int(id, "num_uses", &p->num_uses, &given, resp) != 0 ||
        field_strlist(id, "bound_cidrs", cidrs, &given, resp) != 0)
        return -1;
    if (p->ttl < 0 || *max_ttl < 0 || p->explicit_max_ttl < 0 ||
        p->period < 0 || p->num_uses < 0) {
        response_error(resp, 500, "internal error");
        log_error("token: an auth method's identity has a negative limit");
        return -1;
    }
    return 0;
}

/* CalculateTTL (VAULT_API 8.2) for a login on mount m. */
static void identity_ttl(const struct mount *m, struct token *t,
                         const struct create_params *p, int64_t max_ttl,
                         struct response *resp)
{
    int64_t mdef, mmax, max;
    char a[32], b[32];

    mount_resolve_ttl(m, 0, 0, &mdef, &mmax);
    max = mmax;
    if (max_ttl > 0 && max_ttl < max)
        max = max_ttl;
    if (p->explicit_max_ttl > 0 && p->explicit_max_ttl < max)
        max = p->explicit_max_ttl;
    if (p->period > 0) {
        t->ttl = p->period;
        if (t->ttl > max) {
            duration_format_short(t->ttl, a, sizeof(a));
            duration_format_short(max, b, sizeof(b));
            response_warn(resp, "period of \"%s\" exceeded the effective "
                                "max_ttl of \"%s\"; period value is capped "
                                "accordingly", a, b);
            t->ttl = max;
        }
    } else {
        t->ttl = p->ttl > 0 ? p->ttl : mdef;
        if (t->ttl > max) {
            duration_format_short(t->ttl, a, sizeof(a));
            duration_format_short(max, b, sizeof(b));
            response_warn(resp, "TTL of \"%s\" exceeded the effective "
                                "max_ttl of \"%s\"; TTL value is capped "
                                "accordingly", a, b);
            t->ttl = max;
        }
    }
    t->max_ttl = max;
    t->creation_ttl = t->ttl;
    t->expire_time = t->creation_time + t->ttl;
}

void token_create_identity(const struct mount *m, const char *path,
                           const cJSON *identity, struct response *resp)
{
    struct create_params p;
    struct token *t = token_entry_new();
    int64_t max_ttl = 0;

    if (identity_params(identity, &p, &max_ttl, &t->bound_cidrs, resp) != 0)
        goto out;
    for (size_t i = 0; i < p.policies.n; i++)
        strvec_push(&t->policies, p.policies.v[i]);
    token_sanitize_policies(&t->policies);
    if (strvec_contains(&t->policies, "root")) {
        response_error(resp, 400, "auth methods cannot create root tokens");
        goto out;
    }
    if (!p.no_default_policy)
        strvec_push(&t->policies, "default");
    token_sanitize_policies(&t->policies);
    identity_ttl(m, t, &p, max_ttl, resp);
    t->display_name = login_display_name(m, p.display_name ? p.display_name
                                                           : "");
    t->path = xstrdup(path);
    if (p.meta != NULL && cJSON_GetArraySize(p.meta) > 0) {
        t->meta = p.meta;
        p.meta = NULL;
    }
    t->renewable = p.renewable;
    t->explicit_max_ttl = p.explicit_max_ttl;
    t->period = p.period;
    t->num_uses = p.num_uses;
    t->orphan = true;
    if (issue(t, NULL, m, resp) != 0)
        goto out;
    log_info("token: login on %s created accessor %s (%s)", m->path,
             t->accessor, t->display_name);
out:
    strvec_release(&p.policies);
    cJSON_Delete(p.meta);
    token_free(t);
}

/* auth/token/tidy: the work is token_tidy; Vault answers 202 and logs. */
static void handle_tidy(struct response *resp)
{
    size_t dropped, revoked;
    int rc = token_tidy(&dropped, &revoked);

    if (rc != 0) {
        response_error(resp, 500, "tidy failed: %s", coffer_strerror(rc));
        return;
    }
    log_info("token: tidy dropped %zu index entries, revoked %zu orphaned "
             "children", dropped, revoked);
    resp->status = 202;
    response_warn(resp, "Tidy operation successfully started. Any "
                        "information from the operation will be printed to "
                        "Vault's server logs.");
}

/* ============================================================ dispatch == */

enum ep_flags {
    EP_SELF = 1 << 0,
    EP_ACCESSOR = 1 << 1,
    EP_ORPHAN = 1 << 2,
};

enum ep_kind {
    EP_CREATE = 1,
    EP_LOOKUP,
    EP_RENEW,
    EP_REVOKE,
    EP_ACCESSORS,
    EP_TIDY,
};

struct endpoint {
    const char *path;
    enum ep_kind kind;
    unsigned flags;
    bool allow_read; /* GET is accepted besides POST/PUT */
    bool list_only;
};

static const struct endpoint endpoints[] = {
    {"create", EP_CREATE, 0, false, false},
    {"create-orphan", EP_CREATE, EP_ORPHAN, false, false},
    {"lookup", EP_LOOKUP, 0, true, false},
    {"lookup-self", EP_LOOKUP, EP_SELF, true, false},
    {"lookup-accessor", EP_LOOKUP, EP_ACCESSOR, false, false},
    {"renew", EP_RENEW, 0, false, false},
    {"renew-self", EP_RENEW, EP_SELF, false, false},
    {"renew-accessor", EP_RENEW, EP_ACCESSOR, false, false},
    {"revoke", EP_REVOKE, 0, false, false},
    {"revoke-self", EP_REVOKE, EP_SELF, false, false},
    {"revoke-accessor", EP_REVOKE, EP_ACCESSOR, false, false},
    {"revoke-orphan", EP_REVOKE, EP_ORPHAN, false, false},
    {"accessors", EP_ACCESSORS, 0, false, true},
    {"tidy", EP_TIDY, 0, false, false},
};

static const struct endpoint *find_endpoint(const char *rel)
{
    size_t n = strlen(rel);

    if (n > 0 && rel[n - 1] == '/')
        n--;
    for (size_t i = 0; i < ARRAY_LEN(endpoints); i++) {
        if (strlen(endpoints[i].path) == n &&
            strncmp(endpoints[i].path, rel, n) == 0)
            return &endpoints[i];
    }
    return NULL;
}

static bool op_allowed(const struct endpoint *ep, enum req_op op)
{
    if (ep->list_only)
        return op == OP_LIST;
    if (op == OP_CREATE || op == OP_UPDATE)
        return true;
    return ep->allow_read && op == OP_READ;
}

/* roles/, roles/<name>, create/<role>; false if rel is none of them. */
static bool handle_prefixed(struct request *req, struct response *resp)
{
    const char *rel = req->rel_path;
    char *name;
    size_t n;

    if (strcmp(rel, "roles") == 0 || strcmp(rel, "roles/") == 0) {
        if (req->op == OP_LIST)
            token_handle_role_list(resp);
        else
            response_multierror(resp, 405, "unsupported operation");
        return true;
    }
    if (str_has_prefix(rel, "roles/")) {
        token_handle_role(req, rel + 6, resp);
        return true;
    }
    if (!str_has_prefix(rel, "create/") || rel[7] == '\0')
        return false;
    if (req->op != OP_CREATE && req->op != OP_UPDATE) {
        response_multierror(resp, 405, "unsupported operation");
        return true;
    }
    name = xstrdup(rel + 7);
    n = strlen(name);
    while (n > 0 && name[n - 1] == '/')
        name[--n] = '\0';
    handle_create(req, resp, false, name);
    free(name);
    return true;
}

void token_handle(struct request *req, struct response *resp)
{
    const struct endpoint *ep = find_endpoint(req->rel_path);
    bool self, acc, orphan;

    if (ep == NULL && handle_prefixed(req, resp))
        return;
    if (ep == NULL) {
        response_multierror(resp, 404, "unsupported path");
        return;
    }
    if (!op_allowed(ep, req->op)) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    self = (ep->flags & EP_SELF) != 0;
    acc = (ep->flags & EP_ACCESSOR) != 0;
    orphan = (ep->flags & EP_ORPHAN) != 0;
    switch (ep->kind) {
    case EP_CREATE: handle_create(req, resp, orphan, NULL); break;
    case EP_TIDY: handle_tidy(resp); break;
    case EP_LOOKUP: handle_lookup(req, resp, self, acc); break;
    case EP_RENEW: handle_renew(req, resp, self, acc); break;
    case EP_REVOKE: handle_revoke(req, resp, self, acc, orphan); break;
    case EP_ACCESSORS:
        if (!policy_has_sudo(req->token, req->path))
            response_multierror(resp, 403, "permission denied");
        else
            handle_accessors(resp);
        break;
    }
}
