/*
 * metrics.h - what sys/metrics reports, under Vault's names.
 *
 * Names are "<prefix>.<name>", prefix "coffer" unless the telemetry block
 * sets metrics_prefix (with "vault", Vault dashboards work). Counters and
 * summaries kept here are fed by the request pipeline (core.c, one call
 * per request); gauges are read at render time from their owners (lease
 * table, database pools, seal state), so they never drift.
 *
 * Label values that come from requests (the auth mount in a login path,
 * the mount a request was routed to) are bounded: at most
 * METRICS_MAX_MOUNTS distinct ones each, the rest count as "other", so a
 * client cannot grow the metrics without bound.
 *
 * Prometheus summaries carry _sum and _count, and for core.handle_request
 * and core.handle_login_request the 0.5/0.9/0.99 quantiles of the latest
 * 1024 requests (Vault uses 10 s windows).
 */
#ifndef COFFER_METRICS_H
#define COFFER_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "request.h"

#define METRICS_MAX_MOUNTS 64

/* Sets the prefix (NULL or "" = "coffer"); call before serving. */
void metrics_set_prefix(const char *prefix);

/* Makes sys/metrics answer without a token (telemetry block). */
void metrics_set_unauthenticated(bool on);
bool metrics_unauthenticated(void);

/* What the pipeline learns about a request for metrics while it runs. */
struct metrics_req {
    double start;          /* time_mono() when it began */
    bool issued_token;     /* the response carries a new token */
    char mount[96];        /* the mount it was routed to; "" = none */
};

/* Notes what resp and req say before the reply is rendered. */
void metrics_capture(struct metrics_req *mr, const struct request *req,
                     const struct response *resp);

/*
 * One finished request: its operation and path, the status sent, and
 * what metrics_capture noted (if it ran).
 */
void metrics_note_request(const struct request *req, int status,
                          const struct metrics_req *mr);

/*
 * One token was created (token.c, for every kind of token but the root
 * token): Vault's token.creation with its labels; ttl in seconds goes
 * into Vault's creation_ttl buckets.
 */
void metrics_token_created(const char *auth_method, const char *mount_point,
                           int64_t ttl, const char *token_type);

/*
 * Renders every metric: go-metrics' JSON (Gauges, Counters, Samples) into
 * *json, or Prometheus text into *text when prometheus is true.
 */
void metrics_render(bool prometheus, cJSON **json, char **text);

#endif
