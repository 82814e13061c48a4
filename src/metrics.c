/*
 * metrics.c - counters and summaries of the request pipeline, and the
 * rendering of every metric for sys/metrics (see metrics.h).
 *
 * Counters are atomics; the summaries (count, sum, min, max) share one
 * mutex held for a few instructions per request. Rendering collects all
 * values into a flat list first, then prints it in either format, so both
 * formats always list the same metrics.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "buf.h"
#include "db_pg_stats.h"
#include "lease.h"
#include "lifecycle.h"
#include "luavm.h"
#include "metrics_plugin.h"
#include "mount.h"
#include "storage_cache.h"
#include "util.h"

#define MAX_STATUS 600
#define NUM_OPS 8 /* enum req_op values 1..7, 0 unused */

static char prefix[72] = "coffer";
static atomic_bool unauthenticated;

struct summary {
    uint64_t count;
    double sum, min, max;
};

/*
 * The latest RING_N durations of a timer, for the quantiles Prometheus
 * shows (Vault's 0.5, 0.9 and 0.99; Vault computes them over 10 s
 * windows, Coffer over the latest RING_N requests).
 */
#define RING_N 1024
struct ring {
    double v[RING_N];
    size_t n, next;
};

static struct ring request_ring, login_ring;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct summary all_requests;        /* core.handle_request */
static struct summary login_requests;      /* core.handle_login_request */
static struct summary by_op[NUM_OPS];

/* Requests per mount (Vault's route.<op>.<mount>); last slot "other". */
struct mount_summary {
    char mount[96];
    struct summary s;
};
static struct mount_summary routes[METRICS_MAX_MOUNTS + 1];
static size_t nroutes;

/* Login outcomes per auth mount; the last slot is "other". */
struct login_count {
    char mount[96];
    uint64_t success, failure;
};
static struct login_count logins[METRICS_MAX_MOUNTS + 1];
static size_t nlogins;

static atomic_uint_fast64_t status_counts[MAX_STATUS];

/*
 * Vault's token.creation counter, one slot per label set (auth method,
 * mount, TTL bucket, token type); the last slot, "other", takes what
 * does not fit, so hostile mounts or types cannot grow it.
 */
#define MAX_TOKEN_SERIES (4 * METRICS_MAX_MOUNTS)
struct token_series {
    char auth_method[48];
    char mount_point[96];
    char ttl[8];
    char type[16];
    uint64_t n;
};
static struct token_series token_series[MAX_TOKEN_SERIES + 1];
static size_t ntoken_series;

void metrics_set_prefix(const char *p)
{
    snprintf(prefix, sizeof(prefix), "%s", p != NULL && p[0] ? p : "coffer");
}

void metrics_set_unauthenticated(bool on)
{
    atomic_store(&unauthenticated, on);
}

bool metrics_unauthenticated(void)
{
    return atomic_load(&unauthenticated);
}

/* ========================================================= recording == */

static void ring_add(struct ring *r, double v)
{
    r->v[r->next] = v;
    r->next = (r->next + 1) % RING_N;
    if (r->n < RING_N)
        r->n++;
}

static void summary_add(struct summary *s, double v)
{
    if (s->count == 0 || v < s->min)
        s->min = v;
    if (s->count == 0 || v > s->max)
        s->max = v;
    s->count++;
    s->sum += v;
}

/*
 * The auth mount of a login path: "auth/<mount>/login[/...]" gives
 * "auth/<mount>/", written to out. False for other paths.
 */
static bool login_mount(const char *path, char *out, size_t n)
{
    const char *p;

    if (!str_has_prefix(path, "auth/") || str_has_prefix(path, "auth/token/"))
        return false;
    for (p = strstr(path + 5, "/login"); p != NULL; p = strstr(p + 1, "/login")) {
        if (p[6] == '\0' || p[6] == '/')
            break;
    }
    if (p == NULL || p == path + 5)
        return false;
    snprintf(out, n, "%.*s/", (int)(p - path), path);
    return true;
}

/* Caller holds mu. The slot of mount, or the "other" slot when full. */
static struct login_count *login_slot(const char *mount)
{
    for (size_t i = 0; i < nlogins; i++) {
        if (strcmp(logins[i].mount, mount) == 0)
            return &logins[i];
    }
    if (nlogins < METRICS_MAX_MOUNTS) {
        snprintf(logins[nlogins].mount, sizeof(logins[nlogins].mount), "%s",
                 mount);
        return &logins[nlogins++];
    }
    snprintf(logins[METRICS_MAX_MOUNTS].mount,
             sizeof(logins[METRICS_MAX_MOUNTS].mount), "other");
    return &logins[METRICS_MAX_MOUNTS];
}

/*
 * Vault's creation_ttl label: the smallest bucket that holds ttl
 * (seconds; 0 falls in the first, as in Vault), "+Inf" past 30 days.
 */
static const char *ttl_bucket(int64_t ttl)
{
    static const struct {
        int64_t secs;
        const char *label;
    } buckets[] = {
        {60, "1m"},     {600, "10m"},    {1200, "20m"},
        {3600, "1h"},   {7200, "2h"},    {86400, "1d"},
        {172800, "2d"}, {604800, "7d"},  {2592000, "30d"},
    };

    for (size_t i = 0; i < ARRAY_LEN(buckets); i++) {
        if (ttl <= buckets[i].secs)
            return buckets[i].label;
    }
    return "+Inf";
}

/* Caller holds mu. The slot of this label set, or "other" when full. */
static struct token_series *token_slot(const struct token_series *key)
{
    struct token_series *last = &token_series[MAX_TOKEN_SERIES];

    for (size_t i = 0; i < ntoken_series; i++) {
        struct token_series *t = &token_series[i];
        if (strcmp(t->auth_method, key->auth_method) == 0 &&
            strcmp(t->mount_point, key->mount_point) == 0 &&
            strcmp(t->ttl, key->ttl) == 0 && strcmp(t->type, key->type) == 0)
            return t;
    }
    if (ntoken_series < MAX_TOKEN_SERIES) {
        token_series[ntoken_series] = *key;
        return &token_series[ntoken_series++];
    }
    snprintf(last->auth_method, sizeof(last->auth_method), "other");
    snprintf(last->mount_point, sizeof(last->mount_point), "other");
    snprintf(last->ttl, sizeof(last->ttl), "other");
    snprintf(last->type, sizeof(last->type), "other");
    return last;
}

void metrics_token_created(const char *auth_method, const char *mount_point,
                           int64_t ttl, const char *token_type)
{
    struct token_series key = {0};

    snprintf(key.auth_method, sizeof(key.auth_method), "%s",
             auth_method != NULL ? auth_method : "");
    snprintf(key.mount_point, sizeof(key.mount_point), "%s",
             mount_point != NULL ? mount_point : "");
    snprintf(key.ttl, sizeof(key.ttl), "%s", ttl_bucket(ttl));
    snprintf(key.type, sizeof(key.type), "%s",
             token_type != NULL ? token_type : "service");
    pthread_mutex_lock(&mu);
    token_slot(&key)->n++;
    pthread_mutex_unlock(&mu);
}

void metrics_capture(struct metrics_req *mr, const struct request *req,
                     const struct response *resp)
{
    mr->issued_token = resp->auth != NULL;
    snprintf(mr->mount, sizeof(mr->mount), "%s",
             req->mount != NULL ? req->mount->path : "");
}

/* Caller holds mu. The route slot of mount, or "other" when full. */
static struct summary *route_slot(const char *mount)
{
    struct mount_summary *last = &routes[METRICS_MAX_MOUNTS];

    for (size_t i = 0; i < nroutes; i++) {
        if (strcmp(routes[i].mount, mount) == 0)
            return &routes[i].s;
    }
    if (nroutes < METRICS_MAX_MOUNTS) {
        snprintf(routes[nroutes].mount, sizeof(routes[nroutes].mount), "%s",
                 mount);
        return &routes[nroutes++].s;
    }
    snprintf(last->mount, sizeof(last->mount), "other");
    return &last->s;
}

void metrics_note_request(const struct request *req, int status,
                          const struct metrics_req *mr)
{
    char mount[96];
    bool login = login_mount(req->path, mount, sizeof(mount));
    bool issued_token = mr->issued_token;
    double ms = (time_mono() - mr->start) * 1000.0;

    if (status >= 100 && status < MAX_STATUS)
        atomic_fetch_add(&status_counts[status], 1);
    pthread_mutex_lock(&mu);
    if (login) {
        struct login_count *c = login_slot(mount);
        summary_add(&login_requests, ms);
        ring_add(&login_ring, ms);
        if (issued_token && status == 200)
            c->success++;
        else
            c->failure++;
    } else {
        summary_add(&all_requests, ms);
        ring_add(&request_ring, ms);
    }
    if ((int)req->op > 0 && (int)req->op < NUM_OPS)
        summary_add(&by_op[req->op], ms);
    if (mr->mount[0] != '\0')
        summary_add(route_slot(mr->mount), ms);
    pthread_mutex_unlock(&mu);
}

/* ========================================================= rendering == */

enum kind { GAUGE, COUNTER, SUMMARY };

#define MAX_LABELS 4

struct entry {
    char name[96];      /* without the prefix */
    int nlabels;
    char label_key[MAX_LABELS][16];
    char label[MAX_LABELS][128];
    enum kind kind;
    double value;       /* gauge value or counter count */
    struct summary s;
    bool has_q;         /* q holds the 0.5, 0.9 and 0.99 quantiles */
    double q[3];
};

struct list {
    struct entry *v;
    size_t n, cap;
};

/* Adds a metric with n labels (keys[i] = vals[i]). */
static struct entry *add_labeled(struct list *l, enum kind k,
                                 const char *name, int n,
                                 const char *const *keys,
                                 const char *const *vals)
{
    struct entry *e;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    e = &l->v[l->n++];
    memset(e, 0, sizeof(*e));
    e->kind = k;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->nlabels = n < MAX_LABELS ? n : MAX_LABELS;
    for (int i = 0; i < e->nlabels; i++) {
        snprintf(e->label_key[i], sizeof(e->label_key[i]), "%s", keys[i]);
        snprintf(e->label[i], sizeof(e->label[i]), "%s", vals[i]);
    }
    return e;
}

/* Adds a metric with one label, or none when lkey is NULL. */
static struct entry *add(struct list *l, enum kind k, const char *name,
                         const char *lkey, const char *lval)
{
    const char *val = lval != NULL ? lval : "";

    return add_labeled(l, k, name, lkey != NULL ? 1 : 0, &lkey, &val);
}

static void add_value(struct list *l, enum kind k, const char *name,
                      double v)
{
    add(l, k, name, NULL, NULL)->value = v;
}

static void collect_leases(struct list *l)
{
    struct lease_stats st;

    lease_get_stats(&st);
    add_value(l, GAUGE, "expire.num_leases", (double)st.active);
    add_value(l, GAUGE, "expire.num_irrevocable_leases",
              (double)st.irrevocable);
    add_value(l, GAUGE, "expire.num_pending_leases", (double)st.pending);
    add_value(l, GAUGE, "expire.revoke.backlog", (double)st.queued);
    add_value(l, COUNTER, "expire.revoke.success", (double)st.revoked);
    add_value(l, COUNTER, "expire.revoke.failure", (double)st.failures);
    add_value(l, COUNTER, "expire.lease.creation", (double)st.created);
    add(l, SUMMARY, "expire.revoke", NULL, NULL)->s = (struct summary){
        st.revoke_time.count, st.revoke_time.sum_ms, st.revoke_time.min_ms,
        st.revoke_time.max_ms};
}

static void collect_pool(void *arg, const struct db_pool_stats *s)
{
    struct list *l = arg;
    const char *keys[2] = {"pool", "driver"};
    const char *vals[2] = {s->key, s->driver};

    add_labeled(l, GAUGE, "database.pool.open", 2, keys, vals)->value =
        s->open;
    add_labeled(l, GAUGE, "database.pool.idle", 2, keys, vals)->value =
        s->idle;
    add_labeled(l, GAUGE, "database.pool.in_use", 2, keys, vals)->value =
        s->in_use;
    add_labeled(l, GAUGE, "database.pool.waiting", 2, keys, vals)->value =
        s->waiting;
    add_labeled(l, GAUGE, "database.pool.max_open", 2, keys, vals)->value =
        s->max_open;
    add_labeled(l, SUMMARY, "database.statement", 2, keys, vals)->s =
        (struct summary){s->statements, s->statement_sum_ms,
                         s->statement_min_ms, s->statement_max_ms};
    add_labeled(l, COUNTER, "database.statement.error", 2, keys, vals)
        ->value = (double)s->statement_errors;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Caller holds mu. Sets e's quantiles from the durations in r. */
static void set_quantiles(struct entry *e, const struct ring *r)
{
    static const double qs[3] = {0.5, 0.9, 0.99};
    double sorted[RING_N];

    if (r->n == 0)
        return;
    memcpy(sorted, r->v, r->n * sizeof(double));
    qsort(sorted, r->n, sizeof(double), cmp_double);
    for (int i = 0; i < 3; i++) {
        size_t k = (size_t)(qs[i] * (double)(r->n - 1) + 0.5);
        e->q[i] = sorted[k];
    }
    e->has_q = true;
}

/* Caller holds mu. Vault's token.creation, one series per label set. */
static void collect_token_series(struct list *l)
{
    static const char *const keys[4] = {"auth_method", "mount_point",
                                        "creation_ttl", "token_type"};

    for (size_t i = 0; i <= MAX_TOKEN_SERIES; i++) {
        const struct token_series *t = &token_series[i];
        const char *vals[4] = {t->auth_method, t->mount_point, t->ttl,
                               t->type};
        if (t->n == 0)
            continue;
        add_labeled(l, COUNTER, "token.creation", 4, keys, vals)->value =
            (double)t->n;
    }
}

static void collect_requests(struct list *l)
{
    struct entry *e;
    uint64_t lua_time, lua_memory;
    char code[8];

    for (int i = 100; i < MAX_STATUS; i++) {
        uint64_t n = atomic_load(&status_counts[i]);
        if (n == 0)
            continue;
        snprintf(code, sizeof(code), "%d", i);
        add(l, COUNTER, "core.response_status_code", "code", code)->value =
            (double)n;
    }
    add_value(l, COUNTER, "audit.log_failure",
              (double)audit_failures_total());
    luavm_budget_overruns(&lua_time, &lua_memory);
    add(l, COUNTER, "lua.budget_overrun", "kind", "time")->value =
        (double)lua_time;
    add(l, COUNTER, "lua.budget_overrun", "kind", "memory")->value =
        (double)lua_memory;
    pthread_mutex_lock(&mu);
    e = add(l, SUMMARY, "core.handle_request", NULL, NULL);
    e->s = all_requests;
    set_quantiles(e, &request_ring);
    e = add(l, SUMMARY, "core.handle_login_request", NULL, NULL);
    e->s = login_requests;
    set_quantiles(e, &login_ring);
    for (int op = 1; op < NUM_OPS; op++) {
        if (by_op[op].count > 0)
            add(l, SUMMARY, "core.handle_request_by_operation", "operation",
                req_op_name((enum req_op)op))->s = by_op[op];
    }
    for (size_t i = 0; i <= METRICS_MAX_MOUNTS; i++) {
        if (routes[i].mount[0] != '\0')
            add(l, SUMMARY, "route.request", "mount_point",
                routes[i].mount)->s = routes[i].s;
    }
    for (size_t i = 0; i <= METRICS_MAX_MOUNTS; i++) {
        if (logins[i].mount[0] == '\0')
            continue;
        add(l, COUNTER, "auth.login.success", "mount_point",
            logins[i].mount)->value = (double)logins[i].success;
        add(l, COUNTER, "auth.login.failure", "mount_point",
            logins[i].mount)->value = (double)logins[i].failure;
    }
    collect_token_series(l);
    pthread_mutex_unlock(&mu);
}

/* Vault's physical cache counters (ours caches decrypted values). */
static void collect_cache(struct list *l)
{
    uint64_t hits, misses, entries;

    storage_cache_stats(&hits, &misses, &entries);
    add_value(l, COUNTER, "cache.hit", (double)hits);
    add_value(l, COUNTER, "cache.miss", (double)misses);
    add_value(l, GAUGE, "cache.entries", (double)entries);
}

/* One counter of a Lua engine (coffer.metrics.incr). */
static void collect_plugin(void *arg, const struct metrics_plugin_series *s)
{
    const char *keys[METRICS_PLUGIN_MAX_LABELS];
    const char *vals[METRICS_PLUGIN_MAX_LABELS];

    for (int i = 0; i < s->nlabels; i++) {
        keys[i] = s->key[i];
        vals[i] = s->value[i];
    }
    add_labeled(arg, COUNTER, s->name, s->nlabels, keys, vals)->value =
        (double)s->count;
}

static void collect(struct list *l)
{
    add_value(l, GAUGE, "core.unsealed", lifecycle_is_active() ? 1 : 0);
    collect_leases(l);
    collect_cache(l);
    db_pool_stats_each(collect_pool, l);
    metrics_plugin_each(collect_plugin, l);
    collect_requests(l);
}

/* "<prefix>.<name>" with dots turned into underscores when prom. */
static void full_name(const struct entry *e, bool prom, char *out, size_t n)
{
    snprintf(out, n, "%s.%s", prefix, e->name);
    for (size_t i = 0; prom && out[i] != '\0'; i++)
        out[i] = out[i] == '.' ? '_' : out[i];
}

static cJSON *json_entry(const struct entry *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *labels = cJSON_CreateObject();
    char name[192];

    full_name(e, false, name, sizeof(name));
    cJSON_AddStringToObject(o, "Name", name);
    if (e->kind == GAUGE) {
        cJSON_AddNumberToObject(o, "Value", e->value);
    } else if (e->kind == COUNTER) {
        cJSON_AddNumberToObject(o, "Count", e->value);
        cJSON_AddNumberToObject(o, "Sum", e->value);
    } else {
        cJSON_AddNumberToObject(o, "Count", (double)e->s.count);
        cJSON_AddNumberToObject(o, "Sum", e->s.sum);
        cJSON_AddNumberToObject(o, "Min", e->s.min);
        cJSON_AddNumberToObject(o, "Max", e->s.max);
        cJSON_AddNumberToObject(o, "Mean", e->s.count
                                               ? e->s.sum / (double)e->s.count
                                               : 0);
    }
    for (int i = 0; i < e->nlabels; i++)
        cJSON_AddStringToObject(labels, e->label_key[i], e->label[i]);
    cJSON_AddItemToObject(o, "Labels", labels);
    return o;
}

static cJSON *render_json(const struct list *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr[3] = {cJSON_CreateArray(), cJSON_CreateArray(),
                     cJSON_CreateArray()};
    char when[64];

    time_format_rfc3339(time_now(), when, sizeof(when));
    cJSON_AddStringToObject(o, "Timestamp", when);
    for (size_t i = 0; i < l->n; i++)
        cJSON_AddItemToArray(arr[l->v[i].kind], json_entry(&l->v[i]));
    cJSON_AddItemToObject(o, "Gauges", arr[GAUGE]);
    cJSON_AddItemToObject(o, "Counters", arr[COUNTER]);
    cJSON_AddItemToObject(o, "Samples", arr[SUMMARY]);
    return o;
}

/* Appends v to out at *k with Prometheus' escapes, within n. */
static void prom_escape(const char *v, char *out, size_t n, size_t *k)
{
    for (const char *p = v; *p != '\0' && *k + 4 < n; p++) {
        if (*p == '\\' || *p == '"') {
            out[(*k)++] = '\\';
            out[(*k)++] = *p;
        } else if (*p == '\n') {
            out[(*k)++] = '\\';
            out[(*k)++] = 'n';
        } else {
            out[(*k)++] = *p;
        }
    }
    out[*k] = '\0';
}

/* {k1="v1",k2="v2"} with Prometheus' escapes, or "" without labels. */
static void prom_labels(const struct entry *e, char *out, size_t n)
{
    size_t k = 0;

    out[0] = '\0';
    for (int i = 0; i < e->nlabels && k + 24 < n; i++) {
        k += (size_t)snprintf(out + k, n - k, "%s%s=\"", i ? "," : "{",
                              e->label_key[i]);
        prom_escape(e->label[i], out, n, &k);
        k += (size_t)snprintf(out + k, n - k, "\"");
    }
    if (k > 0 && k + 2 <= n)
        snprintf(out + k, n - k, "}");
}

static char *render_prometheus(const struct list *l)
{
    static const char *const types[] = {"gauge", "counter", "summary"};
    struct buf b;
    char name[192], labels[1400], last[192] = "";
    char *text;
    size_t len;

    buf_init(&b, (size_t)4 << 20);
    for (size_t i = 0; i < l->n; i++) {
        const struct entry *e = &l->v[i];
        full_name(e, true, name, sizeof(name));
        prom_labels(e, labels, sizeof(labels));
        if (strcmp(name, last) != 0) /* one TYPE line per family */
            buf_appendf(&b, "# TYPE %s %s\n", name, types[e->kind]);
        snprintf(last, sizeof(last), "%s", name);
        for (int q = 0; e->has_q && q < 3; q++)
            buf_appendf(&b, "%s{quantile=\"%s\"} %.6g\n", name,
                        q == 0 ? "0.5" : q == 1 ? "0.9" : "0.99", e->q[q]);
        if (e->kind == SUMMARY)
            buf_appendf(&b, "%s_sum%s %.6g\n%s_count%s %llu\n", name, labels,
                       e->s.sum, name, labels,
                       (unsigned long long)e->s.count);
        else
            buf_appendf(&b, "%s%s %.17g\n", name, labels, e->value);
    }
    text = buf_detach(&b, &len);
    return text != NULL ? text : xstrdup("");
}

void metrics_render(bool prometheus, cJSON **json, char **text)
{
    struct list l = {NULL, 0, 0};

    *json = NULL;
    *text = NULL;
    collect(&l);
    if (prometheus)
        *text = render_prometheus(&l);
    else
        *json = render_json(&l);
    free(l.v);
}
