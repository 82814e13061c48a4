/*
 * policy_explain.h - "why was this request allowed or denied?"
 *
 * Renders the trace of a decision (policy_trace in policy.c, which runs
 * the very code that decides real requests) as the explain answer of
 * sys/policies/explain[-self], the X-Coffer-Explain 403 body and
 * `coffer policy test`:
 *
 *   {allowed, path, operation, policies, root, sudo_required,
 *    decisive: {policy, pattern, line, capabilities, kind} | null,
 *    matches: [{policy, pattern, line, capabilities, kind, decisive, why}],
 *    constraints: [{policy, pattern, line, parameter, rule, reason}],
 *    lua: [{policy, file, line, result, reason [, reason_hidden]}],
 *    reason: "one sentence"}
 */
#ifndef COFFER_POLICY_EXPLAIN_H
#define COFFER_POLICY_EXPLAIN_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "policy.h"
#include "request.h"
#include "util.h"

struct token;

/*
 * Explains req (path, op, data, remote_addr) for token t, or (t NULL)
 * for the policy set names (sorted, de-duplicated). Returns the answer
 * object (a new tree); its "reason" member is the one-line sentence.
 * Unless full (sudo's explain, the offline `policy test`), Lua checks'
 * reasons are left out and their files named without a directory: the
 * token holder asking about itself sees which check said no, not why.
 */
cJSON *policy_explain(const struct token *t, const struct strvec *names,
                      const struct request *req, bool full);

/*
 * The answer for a trace already made (by policy_trace or
 * policy_trace_one): rc is what the trace returned, why its words,
 * policies the set it ran for, root whether that set is root.
 */
cJSON *policy_explain_render(const struct policy_trace *tr, int rc,
                             const struct errbuf *why,
                             const struct request *req,
                             const struct strvec *policies, bool root,
                             bool full);

/*
 * A real request of t was denied with 403. When the client asked
 * (X-Coffer-Explain: 1) and t may call sys/policies/explain-self,
 * returns the members to add to the error body, {"warnings": [reason],
 * "explain": {...}}; else NULL. The reason is logged at debug level.
 */
cJSON *policy_explain_denied(const struct token *t,
                             const struct request *req);

/* "read" -> OP_READ for Vault's operation names; false if unknown. */
bool policy_explain_op(const char *name, enum req_op *op);

#endif
