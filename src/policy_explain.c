/*
 * policy_explain.c - "why was this request allowed or denied?"
 *
 * Owns the wording and JSON shape of an explanation. Does not decide
 * anything: policy_trace (policy.c) runs the same decide() as every real
 * request and records the step that decided, the rule it used (with the
 * policy and line each merged rule came from), the other matching rules
 * and how each lost, the failed parameter constraint and the Lua
 * checks. So the explanation cannot drift from the decision.
 */
#include "policy_explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy_hcl.h"
#include "token.h"

static const char *const kind_names[] = {"exact", "glob", "segment"};

bool policy_explain_op(const char *name, enum req_op *op)
{
    static const struct {
        const char *name;
        enum req_op op;
    } ops[] = {
        {"create", OP_CREATE}, {"read", OP_READ},   {"update", OP_UPDATE},
        {"delete", OP_DELETE}, {"list", OP_LIST},   {"patch", OP_PATCH},
    };

    for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
        if (strcmp(name, ops[i].name) == 0) {
            *op = ops[i].op;
            return true;
        }
    }
    return false;
}

static unsigned op_bit(enum req_op op)
{
    switch (op) {
    case OP_CREATE: return PCAP_CREATE;
    case OP_UPDATE: return PCAP_UPDATE;
    case OP_DELETE: return PCAP_DELETE;
    case OP_LIST: return PCAP_LIST;
    case OP_PATCH: return PCAP_PATCH;
    case OP_READ:
    case OP_HEAD: return PCAP_READ;
    }
    return 0;
}

static cJSON *caps_json(unsigned caps)
{
    struct strvec v;
    cJSON *arr = cJSON_CreateArray();

    strvec_init(&v);
    if (caps & PCAP_DENY)
        strvec_push(&v, "deny");
    else
        policy_cap_names(caps, &v);
    for (size_t i = 0; i < v.n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(v.v[i]));
    strvec_release(&v);
    return arr;
}

static void add_line(cJSON *o, int line)
{
    if (line > 0)
        cJSON_AddNumberToObject(o, "line", line);
    else
        cJSON_AddNullToObject(o, "line");
}

/*
 * Which of the decisive pattern's merged rules to name: the one holding
 * deny when deny decided, else one granting the operation, else the
 * first.
 */
static size_t decisive_src(const struct policy_hit *h, enum policy_step step,
                           enum req_op op)
{
    unsigned want = step == PSTEP_DENY ? PCAP_DENY : op_bit(op);

    for (size_t i = 0; i < h->nsrc; i++) {
        if (h->src[i].caps & want)
            return i;
    }
    return 0;
}

/* {policy, pattern, line, capabilities, kind} of one merged rule. */
static cJSON *rule_json(const struct policy_hit *h, const struct policy_src *s)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "policy", s->policy);
    cJSON_AddStringToObject(o, "pattern", h->pattern);
    add_line(o, s->line);
    cJSON_AddItemToObject(o, "capabilities", caps_json(s->caps));
    cJSON_AddStringToObject(o, "kind", kind_names[h->kind]);
    return o;
}

/* Why a matching rule of another pattern was not the one used. */
static void lost_text(char *out, size_t n, enum policy_lost lost,
                      const char *winner)
{
    switch (lost) {
    case PLOST_EXACT:
        snprintf(out, n, "lost: the exact rule \"%s\" applies", winner);
        break;
    case PLOST_WILDCARD:
        snprintf(out, n, "lost: \"%s\" is more specific (its first "
                         "wildcard comes later)", winner);
        break;
    case PLOST_PREFIX:
        snprintf(out, n, "lost: \"%s\" has no trailing * and beats a "
                         "prefix rule", winner);
        break;
    case PLOST_PLUS:
        snprintf(out, n, "lost: \"%s\" has fewer + segments", winner);
        break;
    case PLOST_LENGTH:
        snprintf(out, n, "lost: \"%s\" is longer", winner);
        break;
    case PLOST_LEXICAL:
        snprintf(out, n, "lost: equal precedence; \"%s\" sorts later",
                 winner);
        break;
    case PLOST_NONE:
        snprintf(out, n, "matches");
        break;
    }
}

/* The matches array: every merged rule of every matching pattern. */
static cJSON *matches_json(const struct policy_trace *tr, size_t dsrc)
{
    cJSON *arr = cJSON_CreateArray();
    const char *winner = tr->decisive ? tr->hits[0].pattern : "";
    char why[600];

    for (size_t i = 0; i < tr->nhits; i++) {
        const struct policy_hit *h = &tr->hits[i];
        for (size_t k = 0; k < h->nsrc; k++) {
            cJSON *o = rule_json(h, &h->src[k]);
            bool dec = tr->decisive && i == 0 && k == dsrc;

            if (dec)
                snprintf(why, sizeof(why), "%s", h->kind == PKIND_EXACT
                                 ? "decisive: exact match"
                                 : "decisive: most specific matching rule");
            else if (tr->decisive && i == 0 && tr->step == PSTEP_DENY)
                snprintf(why, sizeof(why), "lost: deny in any matching rule "
                                           "of the same pattern wins");
            else if (tr->decisive && i == 0)
                snprintf(why, sizeof(why), "merged with the decisive rule "
                                           "(same pattern): capabilities "
                                           "combine");
            else
                lost_text(why, sizeof(why), h->lost, winner);
            cJSON_AddBoolToObject(o, "decisive", dec);
            cJSON_AddStringToObject(o, "why", why);
            cJSON_AddItemToArray(arr, o);
        }
    }
    return arr;
}

/* "rule "P" in policy "X" (line N)" for the decisive rule. */
static void rule_words(char *out, size_t n, const struct policy_hit *h,
                       const struct policy_src *s)
{
    if (s->line > 0)
        snprintf(out, n, "rule \"%s\" in policy \"%s\" (line %d)",
                 h->pattern, s->policy, s->line);
    else
        snprintf(out, n, "rule \"%s\" in policy \"%s\"", h->pattern,
                 s->policy);
}

/* The last Lua check that ran (the one that said no, when one did). */
static const cJSON *last_lua(const struct policy_trace *tr)
{
    const cJSON *e, *last = NULL;

    cJSON_ArrayForEach(e, tr->lua)
        last = e;
    return last;
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The one-sentence reason. */
static void reason_text(char *out, size_t n, const struct policy_trace *tr,
                        const struct errbuf *why, const struct request *req,
                        bool root, size_t dsrc, bool full)
{
    const char *op = req_op_name(req->op);
    char rule[1400] = "", list[128] = "";
    const cJSON *l;
    struct strvec caps;

    if (tr->decisive)
        rule_words(rule, sizeof(rule), &tr->hits[0], &tr->hits[0].src[dsrc]);
    switch (tr->step) {
    case PSTEP_ALLOW:
        if (root)
            snprintf(out, n, "allowed: the root policy allows everything");
        else
            snprintf(out, n, "allowed: %s grants %s%s", rule, op,
                     cJSON_GetArraySize(tr->lua) > 0
                         ? " and every Lua check passed" : "");
        break;
    case PSTEP_NO_ACL:
        snprintf(out, n, "denied: policies are not loaded");
        break;
    case PSTEP_NO_RULE:
        if (tr->closest.pattern != NULL && tr->closest.nsrc > 0)
            rule_words(rule, sizeof(rule), &tr->closest,
                       &tr->closest.src[0]);
        snprintf(out, n, "denied: no policy grants %s on %s; %s%s", op,
                 req->path, rule[0] != '\0' ? "closest: " : "no rule "
                 "matches this path", rule);
        break;
    case PSTEP_DENY:
        snprintf(out, n, "denied: %s denies %s", rule, op);
        break;
    case PSTEP_NO_CAP:
        strvec_init(&caps);
        policy_cap_names(tr->hits[0].caps, &caps);
        for (size_t i = 0, used = 0; i < caps.n && used < sizeof(list);
             i++)
            used += (size_t)snprintf(list + used, sizeof(list) - used,
                                     "%s%s", i > 0 ? ", " : "", caps.v[i]);
        snprintf(out, n, "denied: %s applies to this path but does not "
                         "grant %s (it grants: %s)", rule, op,
                 caps.n > 0 ? list : "nothing");
        strvec_release(&caps);
        break;
    case PSTEP_SUDO:
        snprintf(out, n, "denied: %s is a sudo-protected path and %s does "
                         "not grant sudo", req->path, rule);
        break;
    case PSTEP_PARAM:
        snprintf(out, n, "denied: %s grants %s but %s (%s)", rule, op,
                 why->msg, tr->param_rule != NULL ? tr->param_rule : "");
        break;
    case PSTEP_WRAP:
        snprintf(out, n, "denied: %s needs the response wrapped with a TTL "
                         "within its min/max_wrapping_ttl", rule);
        break;
    case PSTEP_LUA:
        l = last_lua(tr);
        if (full)
            snprintf(out, n, "denied: %s grants %s but the check of Lua "
                             "policy \"%s\" said no: %s", rule, op,
                     str_of(l, "policy"), str_of(l, "reason"));
        else
            snprintf(out, n, "denied: %s grants %s but the check of Lua "
                             "policy \"%s\" said no (its reason is in the "
                             "server log and in sys/policies/explain, which "
                             "needs sudo)", rule, op, str_of(l, "policy"));
        break;
    }
}

/* The failed parameter or wrapping constraint, if that decided. */
static cJSON *constraints_json(const struct policy_trace *tr,
                               const struct errbuf *why, size_t dsrc)
{
    cJSON *arr = cJSON_CreateArray(), *o;
    const struct policy_hit *h = &tr->hits[0];

    if (!tr->decisive ||
        (tr->step != PSTEP_PARAM && tr->step != PSTEP_WRAP))
        return arr;
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "policy", h->src[dsrc].policy);
    cJSON_AddStringToObject(o, "pattern", h->pattern);
    add_line(o, h->src[dsrc].line);
    if (tr->step == PSTEP_PARAM) {
        cJSON_AddStringToObject(o, "parameter", tr->param);
        cJSON_AddStringToObject(o, "rule", tr->param_rule);
    } else {
        cJSON_AddNullToObject(o, "parameter");
        cJSON_AddStringToObject(o, "rule", "wrapping_ttl");
    }
    cJSON_AddStringToObject(o, "reason", why->msg);
    cJSON_AddItemToArray(arr, o);
    return arr;
}

/*
 * The Lua checks that ran. Unless full, without what only the server's
 * operators should read: a check's reason (it was the log's alone before
 * explain existed, and may name internals) and the file's directory.
 */
static cJSON *lua_json(const cJSON *lua, bool full)
{
    cJSON *out = cJSON_Duplicate(lua, 1), *e;

    if (full)
        return out;
    cJSON_ArrayForEach(e, out) {
        cJSON *file = cJSON_GetObjectItemCaseSensitive(e, "file");
        cJSON *reason = cJSON_GetObjectItemCaseSensitive(e, "reason");

        if (cJSON_IsString(file)) {
            const char *base = strrchr(file->valuestring, '/');
            cJSON_SetValuestring(file, base != NULL ? base + 1
                                                    : file->valuestring);
        }
        if (cJSON_IsString(reason) && reason->valuestring[0] != '\0') {
            cJSON_SetValuestring(reason, "");
            cJSON_AddBoolToObject(e, "reason_hidden", true);
        }
    }
    return out;
}

cJSON *policy_explain_render(const struct policy_trace *tr, int rc,
                             const struct errbuf *why,
                             const struct request *req,
                             const struct strvec *policies, bool root,
                             bool full)
{
    cJSON *o = cJSON_CreateObject(), *names = cJSON_CreateArray(), *d;
    size_t dsrc = tr->decisive
                      ? decisive_src(&tr->hits[0], tr->step, req->op) : 0;
    char reason[2048];

    cJSON_AddBoolToObject(o, "allowed", rc == 0);
    cJSON_AddStringToObject(o, "path", req->path);
    cJSON_AddStringToObject(o, "operation", req_op_name(req->op));
    for (size_t i = 0; i < policies->n; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(policies->v[i]));
    cJSON_AddItemToObject(o, "policies", names);
    cJSON_AddBoolToObject(o, "root", root);
    cJSON_AddBoolToObject(o, "sudo_required", tr->sudo_required);
    if (tr->decisive) {
        d = rule_json(&tr->hits[0], &tr->hits[0].src[dsrc]);
        cJSON_AddItemToObject(d, "merged_capabilities",
                              caps_json(tr->hits[0].caps));
        cJSON_AddItemToObject(o, "decisive", d);
    } else {
        cJSON_AddNullToObject(o, "decisive");
    }
    if (tr->closest.pattern != NULL && tr->closest.nsrc > 0)
        cJSON_AddItemToObject(o, "closest",
                              rule_json(&tr->closest, &tr->closest.src[0]));
    cJSON_AddItemToObject(o, "matches", matches_json(tr, dsrc));
    cJSON_AddItemToObject(o, "constraints", constraints_json(tr, why, dsrc));
    cJSON_AddItemToObject(o, "lua", lua_json(tr->lua, full));
    reason_text(reason, sizeof(reason), tr, why, req, root, dsrc, full);
    cJSON_AddStringToObject(o, "reason", reason);
    return o;
}

/*
 * The answer for a token that is not valid from the request's address
 * (token_bound_cidrs): the request is refused before any policy runs.
 */
static cJSON *cidr_refusal(const struct token *t, const struct request *req)
{
    cJSON *o = cJSON_CreateObject(), *names = cJSON_CreateArray();
    char reason[600];

    cJSON_AddBoolToObject(o, "allowed", false);
    cJSON_AddStringToObject(o, "path", req->path);
    cJSON_AddStringToObject(o, "operation", req_op_name(req->op));
    for (size_t i = 0; i < t->policies.n; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(t->policies.v[i]));
    cJSON_AddItemToObject(o, "policies", names);
    cJSON_AddBoolToObject(o, "root", t->is_root);
    cJSON_AddBoolToObject(o, "sudo_required", false);
    cJSON_AddNullToObject(o, "decisive");
    cJSON_AddItemToObject(o, "matches", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "constraints", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "lua", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "bound_cidrs",
                          cJSON_CreateStringArray(
                              (const char *const *)t->bound_cidrs.v,
                              (int)t->bound_cidrs.n));
    snprintf(reason, sizeof(reason), "denied: the token is bound to "
             "token_bound_cidrs and is not valid from %s; no policy is "
             "consulted", req->remote_addr[0] ? req->remote_addr
                                              : "an unknown address");
    cJSON_AddStringToObject(o, "reason", reason);
    return o;
}

cJSON *policy_explain(const struct token *t, const struct strvec *names,
                      const struct request *req, bool full)
{
    struct policy_trace tr;
    struct errbuf why;
    const struct strvec *set = t != NULL ? &t->policies : names;
    bool root = t != NULL ? t->is_root : strvec_contains(names, "root");
    int rc;
    cJSON *o;

    /* What lifecycle_request_token checks before any policy. */
    if (t != NULL && !token_address_allowed(t, req->remote_addr))
        return cidr_refusal(t, req);
    rc = policy_trace(t, names, req, &tr, &why);
    o = policy_explain_render(&tr, rc, &why, req, set, root, full);
    policy_trace_release(&tr);
    return o;
}

/*
 * Whether t may call explain-self: the real check of such a request
 * (its Lua checks included), from the same client address.
 */
static bool may_explain_self(const struct token *t,
                             const struct request *req)
{
    struct request q = {.path = "sys/policies/explain-self",
                        .op = OP_UPDATE, .token = t};
    struct errbuf why;
    bool ok;

    memcpy(q.id, req->id, sizeof(q.id));
    memcpy(q.remote_addr, req->remote_addr, sizeof(q.remote_addr));
    q.data = cJSON_CreateObject();
    ok = policy_check(t, &q, &why) == 0;
    cJSON_Delete(q.data);
    return ok;
}

cJSON *policy_explain_denied(const struct token *t,
                             const struct request *req)
{
    cJSON *ex, *o, *w;
    const cJSON *reason;

    if (!may_explain_self(t, req))
        return NULL;
    ex = policy_explain(t, NULL, req, false);
    reason = cJSON_GetObjectItemCaseSensitive(ex, "reason");
    log_debug("policy: %s %s: %s", req_op_name(req->op), req->path,
              reason->valuestring);
    o = cJSON_CreateObject();
    w = cJSON_AddArrayToObject(o, "warnings");
    cJSON_AddItemToArray(w, cJSON_CreateString(reason->valuestring));
    cJSON_AddItemToObject(o, "explain", ex);
    return o;
}
