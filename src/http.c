/*
 * http.c - the HTTP side: libmicrohttpd for I/O, request workers for work.
 *
 * libmicrohttpd runs a small pool of I/O threads that only read requests
 * and write replies. Once a request's headers and body are in, the
 * connection is suspended and the request handed to a lane of request
 * workers; the worker runs core_handle, stores the reply and resumes the
 * connection, and the next access-handler call queues the reply. A
 * backend that waits (a database, a lock) holds one worker, never an I/O
 * thread, so it cannot stall the other connections of that thread. The
 * unauthenticated status endpoints (sys/health, sys/seal-status,
 * sys/leader) have a lane of their own: they answer even when every
 * request worker is busy. Reads that provably cannot wait run on the I/O
 * thread itself instead, with no hand-off ("inline" below).
 *
 * Per request, a struct conn_ctx is made in the URI callback (the first
 * thing libmicrohttpd tells us about a request) and freed when both the
 * connection side (on_completed) and a worker are done with it.
 *
 * Per connection, a struct conn_rec (libmicrohttpd's socket context)
 * carries a read deadline: a total for the headers of a request
 * (read_header_timeout) and for its body (read_timeout), and an idle
 * limit between keep-alive requests. libmicrohttpd's own timeout is an
 * idle timeout that every byte resets, so a client trickling one byte a
 * second would hold a connection forever; the sweeper thread shuts such
 * a connection down once its deadline passes. The sweeper also answers
 * a request that outlives max_request_duration with an error and frees
 * the connection; the worker drops its late reply when it gets back.
 *
 * The reply is queued only on a later call than the first: libmicrohttpd
 * 0.9.75 marks a response queued on the first call "Connection: close",
 * which would cost every client its keep-alive (PERF_NOTES).
 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "buf.h"
#include "core.h"
#include "forward.h"
#include "http_inline.h"
#include "json.h"
#include "log.h"
#include "request.h"
#include "sys_seal.h"
#include "ui.h"
#include "util.h"

/* How often the sweeper looks for expired reads and requests. */
#define HTTP_SWEEP_MS 100
/*
 * libmicrohttpd's per-connection memory pool: the read buffer, the header
 * records and the reply headers. 32 KiB (its default) holds any header a
 * Vault client sends; larger headers get libmicrohttpd's own 431. Not
 * more: libmicrohttpd 0.9.75 zeroes the whole pool after every request
 * on a kept-alive connection (at 64 KiB that memset was half of the
 * instructions of a native KV read: tests/bench/README.md).
 */
#define HTTP_CONNECTION_MEMORY ((size_t)32 * 1024)

/* Where a connection is in its current exchange (conn_rec.phase). */
enum conn_phase {
    PH_FIRST = 0, /* accepted, first request line not complete */
    PH_HEADERS,   /* request line in, headers arriving */
    PH_BODY,      /* headers in, body arriving */
    PH_BUSY,      /* request complete: running or being answered */
    PH_IDLE,      /* keep-alive, between requests */
};

struct conn_rec {
    struct conn_rec *prev, *next; /* http_server.conns, under mu */
    MHD_socket fd;
    /* Written only by the connection's I/O thread; the sweeper reads
       the deadline, so it is atomic rather than under mu. */
    enum conn_phase phase;
    int64_t start;             /* ms: when the current request began */
    _Atomic int64_t deadline;  /* ms: shut down after; 0 = none */
    bool shut;                 /* the sweeper has shut it down (mu) */
};

/* A request's life once it is handed off (conn_ctx.state, under mu). */
enum req_state {
    RS_READING = 0, /* still on the I/O thread */
    RS_QUEUED,      /* in a lane, not picked up */
    RS_RUNNING,     /* a worker runs it */
    RS_DONE,        /* ctx->out holds the reply; the connection resumed */
};

struct conn_ctx {
    struct http_server *srv;
    struct MHD_Connection *c;
    struct conn_rec *rec;  /* NULL if libmicrohttpd gave none */
    atomic_int refs;       /* the connection's, plus a lane's once queued */
    enum req_state state;
    bool headers_seen;     /* the first access-handler call happened */
    bool too_big;
    bool too_many_params;
    bool uri_too_long;
    bool after_stop;       /* begun once the server was stopping: 503 */
    size_t nparams;
    struct buf body;
    struct request req;
    struct reply out;
    char what[96];         /* "GET path", for the log (the worker may
                              reallocate req.path while it runs) */
    int64_t handed_off;    /* ms */
    int64_t deadline;      /* ms: max_request_duration runs out */
    struct conn_ctx *qnext;          /* lane queue */
    struct conn_ctx *iprev, *inext;  /* http_server.inflight, under mu */
};

/*
 * A request worker. Idle workers wait on their own condition variable in
 * a stack, and a new request goes to the one that went idle last: under
 * light load the same few threads (and their warm Lua states and caches)
 * serve everything instead of all of them in turn.
 */
struct worker {
    struct lane *lane;
    pthread_t thread;
    pthread_cond_t cv;
    struct conn_ctx *job;     /* handed over directly, under lane->mu */
    struct worker *next_idle;
};

struct lane {
    struct http_server *srv;
    const char *name;
    pthread_mutex_t mu;
    struct conn_ctx *head, *tail; /* requests no worker was free for */
    struct worker *idle;          /* stack of idle workers */
    bool stop;
    unsigned int n;
    unsigned int started;
    struct worker *workers;
};

struct http_server {
    struct MHD_Daemon *daemon;
    size_t max_request_size;
    int64_t read_header_ms;
    int64_t read_ms;
    int64_t idle_ms;
    atomic_int in_flight; /* requests begun and not yet completed */

    pthread_mutex_t mu;   /* conns, inflight, every ctx->state, closing */
    struct conn_rec *conns;
    struct conn_ctx *inflight;
    bool closing;         /* shutting down: no more hand-offs */
    atomic_bool draining; /* shutting down: new requests get a 503 */

    /* Seal-endpoint writes (unseal, seal, init...) handed off and not
       finished: they may hold the state lock for writing, so no request
       runs inline meanwhile (an I/O thread must not wait for it). */
    atomic_int transitions;

    struct lane work;     /* everything else */
    struct lane status;   /* sys/health, sys/seal-status, sys/leader */

    pthread_t sweeper;
    bool sweeper_started;
    pthread_mutex_t sweep_mu;
    pthread_cond_t sweep_cv;
    bool sweep_stop;
};

static int64_t mono_ms(void)
{
    return (int64_t)(time_mono() * 1000.0);
}

/* ========================================================== addresses == */

int http_parse_address(const char *addr, char *host, uint16_t *port)
{
    const char *colon = strrchr(addr, ':');
    int64_t p;
    size_t hlen;

    if (colon == NULL || int64_parse(colon + 1, &p) != 0 || p < 0 ||
        p > 65535)
        return COFFER_EINVAL;
    hlen = (size_t)(colon - addr);
    if (hlen >= 256)
        return COFFER_EINVAL;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && hlen > 1 && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    if (host[0] == '\0')
        snprintf(host, 256, "0.0.0.0");
    *port = (uint16_t)p;
    return 0;
}

/* ======================================================= request data == */

struct args_ctx {
    cJSON *data;
    bool list;
    bool list_bad;
};

/* Query arguments: one value is a string, a repeated key becomes a list. */
static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    struct args_ctx *a = cls;
    cJSON *old;

    (void)kind;
    if (value == NULL)
        value = "";
    if (strcmp(key, "list") == 0) {
        if (bool_parse(value, &a->list) != 0)
            a->list_bad = true;
        return MHD_YES;
    }
    old = cJSON_GetObjectItemCaseSensitive(a->data, key);
    if (old == NULL) {
        cJSON_AddStringToObject(a->data, key, value);
    } else if (cJSON_IsArray(old)) {
        cJSON_AddItemToArray(old, cJSON_CreateString(value));
    } else {
        cJSON *arr = cJSON_CreateArray();
        cJSON_AddItemToArray(arr, cJSON_Duplicate(old, 1));
        cJSON_AddItemToArray(arr, cJSON_CreateString(value));
        cJSON_ReplaceItemInObjectCaseSensitive(a->data, key, arr);
    }
    return MHD_YES;
}

/* Decodes application/x-www-form-urlencoded text in place. */
static void form_decode(char *s)
{
    char *out = s;

    for (; *s != '\0'; s++) {
        if (*s == '+') {
            *out++ = ' ';
        } else if (*s == '%' && hex_value(s[1]) >= 0 &&
                   hex_value(s[2]) >= 0) {
            *out++ = (char)(hex_value(s[1]) * 16 + hex_value(s[2]));
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* Form bodies: repeated keys are joined with commas, as Vault does. */
static cJSON *parse_form(char *text)
{
    cJSON *o = cJSON_CreateObject();
    char *save = NULL;

    for (char *pair = strtok_r(text, "&", &save); pair != NULL;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        char none[1] = ""; /* "x" without '=': decoded in place like a value */
        char *val = none;
        cJSON *old;
        if (eq != NULL) {
            *eq = '\0';
            val = eq + 1;
        }
        form_decode(pair);
        form_decode(val);
        old = cJSON_GetObjectItemCaseSensitive(o, pair);
        if (old != NULL && cJSON_IsString(old)) {
            size_t n = strlen(old->valuestring) + strlen(val) + 2;
            char *joined = xmalloc(n);
            snprintf(joined, n, "%s,%s", old->valuestring, val);
            cJSON_ReplaceItemInObjectCaseSensitive(o, pair,
                                                   cJSON_CreateString(joined));
            free(joined);
        } else {
            cJSON_AddStringToObject(o, pair, val);
        }
    }
    return o;
}

static bool is_form(const char *ct, const char *body)
{
    const char *p = body;

    if (ct == NULL ||
        strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
        return false;
    while (*p != '\0' && isspace((unsigned char)*p) && p - body < 512)
        p++;
    return *p != '{' && *p != '[';
}

/* Parses the body into req->data. Returns 0 or -1 (not a JSON object). */
static int parse_body(struct request *req, struct buf *body)
{
    const char *p = body->ptr;

    while (p != NULL && isspace((unsigned char)*p))
        p++;
    if (p == NULL || *p == '\0') {
        req->data = cJSON_CreateObject();
        return 0;
    }
    if (is_form(req->content_type, body->ptr)) {
        req->data = parse_form(body->ptr);
        return 0;
    }
    /* Strict, number-preserving; text after the first value is ignored
       as Go's json.Decoder does (json.h). */
    req->data = json_parse(body->ptr, body->len, JSON_MAX_DEPTH, true, NULL);
    if (cJSON_IsNull(req->data)) {
        /* The Vault CLI sends "null" for `write -force` without data. */
        cJSON_Delete(req->data);
        req->data = cJSON_CreateObject();
        return 0;
    }
    if (!cJSON_IsObject(req->data)) {
        cJSON_Delete(req->data);
        req->data = NULL;
        return -1;
    }
    return 0;
}

/* ============================================================ methods == */

static int method_op(const char *method, enum req_op *op)
{
    static const struct {
        const char *name;
        enum req_op op;
    } map[] = {
        {"GET", OP_READ},      {"LIST", OP_LIST},     {"POST", OP_UPDATE},
        {"PUT", OP_UPDATE},    {"DELETE", OP_DELETE}, {"PATCH", OP_PATCH},
        {"HEAD", OP_HEAD},
    };

    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        if (strcmp(method, map[i].name) == 0) {
            *op = map[i].op;
            return 0;
        }
    }
    return -1;
}

/* X-Vault-Token first, else "Authorization: Bearer <token>". */
static char *extract_token(struct MHD_Connection *c)
{
    const char *t = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                "X-Vault-Token");
    const char *auth;
    size_t n;

    if (t != NULL && t[0] != '\0')
        return xstrdup(t);
    auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0)
        return NULL;
    auth += 7;
    while (isspace((unsigned char)*auth))
        auth++;
    n = strlen(auth);
    while (n > 0 && isspace((unsigned char)auth[n - 1]))
        n--;
    return n > 0 ? xstrndup(auth, n) : NULL;
}

static void remote_addr(struct MHD_Connection *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    out[0] = '\0';
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
                  (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  out, (socklen_t)n);
}

/*
 * Cleans a path the way Go's mux does: collapses "//", drops "." and
 * resolves ".." segments. Returns a new string, or NULL if already clean.
 */
static char *clean_path(const char *url)
{
    size_t n = strlen(url);
    char *out = xmalloc(n + 2);
    size_t o = 0;
    const char *p = url;

    while (*p != '\0') {
        const char *seg;
        size_t len;
        while (*p == '/')
            p++;
        seg = p;
        while (*p != '\0' && *p != '/')
            p++;
        len = (size_t)(p - seg);
        if (len == 0 || (len == 1 && seg[0] == '.'))
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            continue;
        }
        out[o++] = '/';
        memcpy(out + o, seg, len);
        o += len;
    }
    if (o == 0 || (n > 1 && url[n - 1] == '/'))
        out[o++] = '/';
    out[o] = '\0';
    if (strcmp(out, url) == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ============================================================ replying == */

static enum MHD_Result send_reply(struct MHD_Connection *c,
                                  const struct reply *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(r->len, r->body ? r->body : "",
                                           MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type",
                            r->content_type ? r->content_type
                                            : "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    ui_add_headers(resp, r);
    if (r->location != NULL)
        MHD_add_response_header(resp, "Location", r->location);
    ret = MHD_queue_response(c, (unsigned int)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ========================================================== requests == */

static void ctx_put(struct conn_ctx *ctx)
{
    if (atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    buf_release(&ctx->body);
    request_release(&ctx->req);
    reply_release(&ctx->out);
    free(ctx);
}

/* Caller holds srv->mu. */
static void inflight_unlink(struct http_server *srv, struct conn_ctx *ctx)
{
    if (ctx->iprev != NULL)
        ctx->iprev->inext = ctx->inext;
    else
        srv->inflight = ctx->inext;
    if (ctx->inext != NULL)
        ctx->inext->iprev = ctx->iprev;
    ctx->iprev = ctx->inext = NULL;
}

/*
 * Sets the read deadline of the connection for phase. Runs on the
 * connection's I/O thread only (libmicrohttpd callbacks).
 */
static void rec_enter(struct http_server *srv, struct conn_rec *rec,
                      enum conn_phase phase)
{
    int64_t now;

    if (rec == NULL)
        return;
    switch (phase) {
    case PH_HEADERS:
        /* A fresh connection's clock started at accept. */
        if (rec->phase != PH_FIRST) {
            now = mono_ms();
            rec->start = now;
            atomic_store(&rec->deadline, now + srv->read_header_ms);
        }
        break;
    case PH_BODY:
        atomic_store(&rec->deadline, rec->start + srv->read_ms);
        break;
    case PH_BUSY:
        atomic_store(&rec->deadline, 0);
        break;
    case PH_IDLE:
        atomic_store(&rec->deadline, mono_ms() + srv->idle_ms);
        break;
    case PH_FIRST:
        rec->start = mono_ms();
        atomic_store(&rec->deadline, rec->start + srv->read_header_ms);
        break;
    }
    rec->phase = phase;
}

/* Number of query parameters in uri (libmicrohttpd splits on '&'). */
static size_t count_params(const char *uri)
{
    const char *q = strchr(uri, '?');
    size_t n = 0;

    if (q == NULL || q[1] == '\0')
        return 0;
    for (n = 1, q++; *q != '\0'; q++)
        n += *q == '&';
    return n;
}

/*
 * libmicrohttpd's unescaping of the path and the query (%XX, in place),
 * except that an escaped NUL becomes DEL: a NUL would end the C string
 * there, so "secret/a%00b" would quietly become "secret/a"; DEL is
 * refused with the other non-printable characters of a path (400), and
 * makes a query value invalid.
 */
static size_t unescape_no_nul(void *cls, struct MHD_Connection *c, char *s)
{
    char *out = s;

    (void)cls;
    (void)c;
    for (const char *in = s; *in != '\0'; out++) {
        int hi, lo;

        if (in[0] == '%' && (hi = hex_value(in[1])) >= 0 &&
            (lo = hex_value(in[2])) >= 0) {
            *out = (char)(hi * 16 + lo);
            if (*out == '\0')
                *out = '\x7f';
            in += 3;
        } else {
            *out = *in++;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

/*
 * The URI callback: libmicrohttpd calls it once per request, when the
 * request line is in and before it parses the query. Its return value is
 * the *con_cls of the access handler and of on_completed.
 *
 * A query with too many parameters is cut off here. libmicrohttpd 0.9.x
 * stores each parameter in the connection's memory pool; when the pool
 * runs out it means to answer 431 but leaves the connection hanging until
 * its timeout instead (a minute or two per request). It located the '?'
 * before calling us and parses the text after it, which lives in its
 * writable read buffer: ending that text at the '?' leaves nothing to
 * parse, and the access handler answers 400 from the count taken here.
 * A long target is cut the same way (414): a few hundred parameters with
 * long values exhaust the pool as surely as thousands of short ones.
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct http_server *srv = cls;
    struct conn_ctx *ctx = xcalloc(1, sizeof(*ctx));
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    ctx->srv = srv;
    ctx->c = c;
    /* A request begun before the stop is served (its body may still be
     * arriving); one begun after it is refused. */
    ctx->after_stop = atomic_load(&srv->draining);
    atomic_init(&ctx->refs, 1);
    buf_init(&ctx->body, srv->max_request_size);
    request_init(&ctx->req);
    ctx->rec = ci != NULL ? ci->socket_context : NULL;
    ctx->nparams = count_params(uri);
    ctx->too_many_params = ctx->nparams > HTTP_MAX_QUERY_PARAMS;
    ctx->uri_too_long = strlen(uri) > HTTP_MAX_URI_LENGTH;
    if (ctx->too_many_params || ctx->uri_too_long) {
        char *q = strchr((char *)uri, '?');
        if (q != NULL)
            q[1] = '\0';
    }
    rec_enter(srv, ctx->rec, PH_HEADERS);
    atomic_fetch_add(&srv->in_flight, 1);
    return ctx;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct conn_ctx *ctx = *con_cls;

    (void)c;
    (void)toe;
    if (ctx == NULL)
        return;
    *con_cls = NULL;
    rec_enter(srv, ctx->rec, PH_IDLE);
    ctx_put(ctx);
    atomic_fetch_sub(&srv->in_flight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *c,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    struct conn_rec *rec = *socket_context;
    const union MHD_ConnectionInfo *ci;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        rec = xcalloc(1, sizeof(*rec));
        rec->fd = ci != NULL ? ci->connect_fd : MHD_INVALID_SOCKET;
        rec_enter(srv, rec, PH_FIRST);
        pthread_mutex_lock(&srv->mu);
        rec->next = srv->conns;
        if (srv->conns != NULL)
            srv->conns->prev = rec;
        srv->conns = rec;
        pthread_mutex_unlock(&srv->mu);
        *socket_context = rec;
        return;
    }
    if (rec == NULL)
        return;
    /* libmicrohttpd closes the socket only after this returns, so the
       sweeper (which holds mu) never shuts down a reused descriptor. */
    pthread_mutex_lock(&srv->mu);
    if (rec->prev != NULL)
        rec->prev->next = rec->next;
    else
        srv->conns = rec->next;
    if (rec->next != NULL)
        rec->next->prev = rec->prev;
    pthread_mutex_unlock(&srv->mu);
    free(rec);
    *socket_context = NULL;
}

/* A seal-endpoint write: counted in transitions while it runs. */
static bool is_transition(const struct request *req)
{
    return req->op != OP_READ && req->op != OP_HEAD && req->op != OP_LIST &&
           sys_seal_handles(req->path);
}

/* ============================================================= lanes == */

static void lane_push(struct lane *l, struct conn_ctx *ctx)
{
    struct worker *w;

    pthread_mutex_lock(&l->mu);
    w = l->idle;
    if (w != NULL) {
        l->idle = w->next_idle;
        w->job = ctx;
    } else {
        ctx->qnext = NULL;
        if (l->tail != NULL)
            l->tail->qnext = ctx;
        else
            l->head = ctx;
        l->tail = ctx;
    }
    pthread_mutex_unlock(&l->mu);
    /* After the unlock, so the worker does not wake into a held lock;
       it sees w->job set whenever it wakes. */
    if (w != NULL)
        pthread_cond_signal(&w->cv);
}

/* The next request for w, or NULL once the lane stops and is empty. */
static struct conn_ctx *lane_pop(struct worker *w)
{
    struct lane *l = w->lane;
    struct conn_ctx *ctx;

    pthread_mutex_lock(&l->mu);
    ctx = l->head;
    if (ctx != NULL) {
        l->head = ctx->qnext;
        if (l->head == NULL)
            l->tail = NULL;
    } else if (!l->stop) {
        w->job = NULL;
        w->next_idle = l->idle;
        l->idle = w;
        while (w->job == NULL && !l->stop)
            pthread_cond_wait(&w->cv, &l->mu);
        ctx = w->job;
        w->job = NULL;
        /* On stop the worker is still on the stack; nobody pops it. */
    }
    pthread_mutex_unlock(&l->mu);
    return ctx;
}

static void deadline_reply(struct reply *out)
{
    /* Vault: the request context's error, status 500. */
    core_error_reply(out, 500, "context deadline exceeded");
}

/* Runs a request on a worker: parse the body, then the pipeline. */
static void run_request(struct conn_ctx *ctx, struct reply *out)
{
    struct request *req = &ctx->req;

    if ((req->op == OP_UPDATE || req->op == OP_PATCH) &&
        parse_body(req, &ctx->body) != 0) {
        core_error_reply(out, 400, "error parsing JSON");
        return;
    }
    buf_release(&ctx->body); /* request bodies carry secrets */
    request_budget_set_origin(ctx->handed_off);
    core_handle(req, out);
    request_budget_set_origin(0); /* paths that open no budget leave it */
    if (mono_ms() >= ctx->deadline) {
        reply_release(out);
        deadline_reply(out);
    }
}

/* Takes a queued request for this worker; false if it was given up. */
static bool claim(struct http_server *srv, struct conn_ctx *ctx)
{
    bool mine;

    pthread_mutex_lock(&srv->mu);
    mine = ctx->state == RS_QUEUED;
    if (mine)
        ctx->state = RS_RUNNING;
    pthread_mutex_unlock(&srv->mu);
    return mine;
}

/*
 * Hands the reply to the connection and resumes it, unless the sweeper
 * answered first (the deadline passed): then the reply is dropped.
 */
static void finish(struct http_server *srv, struct conn_ctx *ctx,
                   struct reply *out)
{
    bool mine;

    pthread_mutex_lock(&srv->mu);
    mine = ctx->state == RS_RUNNING;
    if (mine) {
        ctx->state = RS_DONE;
        ctx->out = *out;
        inflight_unlink(srv, ctx);
    }
    pthread_mutex_unlock(&srv->mu);
    if (mine)
        MHD_resume_connection(ctx->c);
    else
        reply_release(out);
}

static void *lane_main(void *arg)
{
    struct worker *w = arg;
    struct lane *l = w->lane;
    struct conn_ctx *ctx;
    struct reply out;

    while ((ctx = lane_pop(w)) != NULL) {
        bool transition = is_transition(&ctx->req);
        if (claim(l->srv, ctx)) {
            memset(&out, 0, sizeof(out));
            run_request(ctx, &out);
            finish(l->srv, ctx, &out);
        }
        if (transition)
            atomic_fetch_sub(&l->srv->transitions, 1);
        ctx_put(ctx);
    }
    return NULL;
}

static int lane_start(struct http_server *srv, struct lane *l,
                      const char *name, unsigned int n, struct errbuf *err)
{
    int rc;

    l->srv = srv;
    l->name = name;
    l->n = n;
    pthread_mutex_init(&l->mu, NULL);
    l->workers = xcalloc(n, sizeof(*l->workers));
    for (l->started = 0; l->started < n; l->started++) {
        struct worker *w = &l->workers[l->started];
        w->lane = l;
        pthread_cond_init(&w->cv, NULL);
        rc = pthread_create(&w->thread, NULL, lane_main, w);
        if (rc != 0) {
            pthread_cond_destroy(&w->cv);
            errbuf_set(err, "cannot start %s worker %u: %s", name,
                       l->started + 1, strerror(rc));
            return COFFER_EINTERNAL;
        }
    }
    return 0;
}

/*
 * Lets the workers finish what is queued, then joins them. A request a
 * worker was handed and has not finished yet keeps its join waiting.
 */
static void lane_stop(struct lane *l)
{
    if (l->workers == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    for (unsigned int i = 0; i < l->started; i++)
        pthread_cond_signal(&l->workers[i].cv);
    pthread_mutex_unlock(&l->mu);
    for (unsigned int i = 0; i < l->started; i++) {
        pthread_join(l->workers[i].thread, NULL);
        pthread_cond_destroy(&l->workers[i].cv);
    }
    free(l->workers);
    l->workers = NULL;
    pthread_mutex_destroy(&l->mu);
}

/* ============================================================ sweeper == */

/*
 * Answers every in-flight request that is_due() picks with reply_fn's
 * reply and resumes its connection; the worker's reply, if one comes,
 * is dropped. all: every request, for shutdown.
 */
static void give_up(struct http_server *srv, int64_t now, bool all,
                    int status, const char *msg)
{
    struct conn_ctx *due = NULL, *ctx, *next;

    pthread_mutex_lock(&srv->mu);
    if (all)
        srv->closing = true;
    for (ctx = srv->inflight; ctx != NULL; ctx = next) {
        next = ctx->inext;
        if (!all && now < ctx->deadline)
            continue;
        inflight_unlink(srv, ctx);
        ctx->state = RS_DONE;
        core_error_reply(&ctx->out, status, msg);
        atomic_fetch_add(&ctx->refs, 1);
        ctx->inext = due;
        due = ctx;
    }
    pthread_mutex_unlock(&srv->mu);
    for (ctx = due; ctx != NULL; ctx = next) {
        next = ctx->inext;
        ctx->inext = NULL;
        log_warn("http: %s: %s", ctx->what, msg);
        MHD_resume_connection(ctx->c);
        ctx_put(ctx);
    }
}

/* Shuts down connections whose read deadline passed. */
static void shut_slow_readers(struct http_server *srv, int64_t now)
{
    pthread_mutex_lock(&srv->mu);
    for (struct conn_rec *r = srv->conns; r != NULL; r = r->next) {
        int64_t deadline = atomic_load(&r->deadline);
        if (deadline == 0 || now < deadline || r->shut ||
            r->fd == MHD_INVALID_SOCKET)
            continue;
        /* libmicrohttpd sees the end of the stream and closes it. */
        shutdown(r->fd, SHUT_RDWR);
        r->shut = true;
    }
    pthread_mutex_unlock(&srv->mu);
}

static void *sweeper_main(void *arg)
{
    struct http_server *srv = arg;
    struct timespec ts;

    pthread_mutex_lock(&srv->sweep_mu);
    while (!srv->sweep_stop) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += HTTP_SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->sweep_cv, &srv->sweep_mu, &ts);
        if (srv->sweep_stop)
            break;
        pthread_mutex_unlock(&srv->sweep_mu);
        shut_slow_readers(srv, mono_ms());
        give_up(srv, mono_ms(), false, 500, "context deadline exceeded");
        pthread_mutex_lock(&srv->sweep_mu);
    }
    pthread_mutex_unlock(&srv->sweep_mu);
    return NULL;
}

/*
 * X-Vault-Wrap-TTL asks for response wrapping (wrapping.c does it after
 * the backend ran). Vault's header rules: a duration or seconds, "0"
 * means no wrapping. Sets req->wrap_ttl; returns 0 or fills out.
 */
#define HTTP_MAX_WRAP_TTL INT64_C(9223372036)

static int check_wrap(struct MHD_Connection *c, struct request *req,
                      struct reply *out)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                "X-Vault-Wrap-TTL");
    struct errbuf err = {{0}};
    char msg[300];
    int64_t ttl;

    if (v == NULL || v[0] == '\0')
        return 0;
    while (isspace((unsigned char)*v))
        v++;
    if (*v == '-') {
        core_error_reply(out, 400, "error parsing X-Vault-Wrap-TTL header: "
                                   "requested wrap ttl cannot be negative");
        return -1;
    }
    if (duration_parse(v, &ttl, &err) != 0) {
        snprintf(msg, sizeof(msg), "error parsing X-Vault-Wrap-TTL header: "
                                   "%.200s", err.msg);
        core_error_reply(out, 400, msg);
        return -1;
    }
    if (ttl > HTTP_MAX_WRAP_TTL) { /* Go's largest time.Duration */
        snprintf(msg, sizeof(msg), "error parsing X-Vault-Wrap-TTL header: "
                                   "time: invalid duration \"%.100s\"", v);
        core_error_reply(out, 400, msg);
        return -1;
    }
    req->wrap_ttl = ttl;
    return 0;
}

/* The cheap unauthenticated status reads get their own lane. */
static bool is_status(const struct request *req)
{
    return (req->op == OP_READ || req->op == OP_HEAD) &&
           (strcmp(req->path, "sys/health") == 0 ||
            strcmp(req->path, "sys/seal-status") == 0 ||
            strcmp(req->path, "sys/leader") == 0);
}

/* ============================================================ inline == */

/*
 * A read that cannot wait runs here, on the I/O thread (http_inline.c has
 * the rules), except while a seal-endpoint write is in flight: that may
 * hold the state lock for writing, and an I/O thread must not wait on it.
 * An inline read is not in the in-flight list: the sweeper cannot answer
 * it early, but it is short (local reads, the Lua call budget) and
 * run_request still answers 500 "context deadline exceeded" if it
 * outlived max_request_duration.
 */
static bool may_run_inline(struct http_server *srv, const struct request *req)
{
    return atomic_load(&srv->transitions) == 0 && http_inline_eligible(req);
}

/*
 * Builds the request from the connection on the I/O thread (everything
 * that needs libmicrohttpd; the body is parsed by the worker). Returns 0,
 * or fills out with the refusal and returns -1.
 */
static int build_request(struct MHD_Connection *c, const char *url,
                         const char *method, struct conn_ctx *ctx,
                         struct reply *out)
{
    struct request *req = &ctx->req;
    struct args_ctx args = {0};
    const char *ct, *fwd, *explain;
    char *clean;
    char msg[300];

    if (ctx->uri_too_long) {
        snprintf(msg, sizeof(msg), "request URI too long: more than %zu "
                                   "bytes", HTTP_MAX_URI_LENGTH);
        core_error_reply(out, 414, msg);
        return -1;
    }
    if (ctx->too_many_params) {
        snprintf(msg, sizeof(msg), "too many query parameters: %zu (at "
                                   "most %d)", ctx->nparams,
                 HTTP_MAX_QUERY_PARAMS);
        core_error_reply(out, 400, msg);
        return -1;
    }
    if (strncmp(url, "/v1/", 4) != 0) {
        /* The web UI (ui.h) answers its own URLs, sealed or not. */
        if (ui_answer(url, method, out) != 0)
            core_error_reply(out, 404, NULL);
        return -1;
    }
    clean = clean_path(url);
    if (clean != NULL) {
        out->status = 301;
        out->location = clean;
        return -1;
    }
    if (method_op(method, &req->op) != 0) {
        core_error_reply(out, 405, NULL);
        return -1;
    }
    if (ctx->too_big) {
        core_error_reply(out, 413, "error parsing JSON");
        return -1;
    }
    req->path = xstrdup(url + strlen("/v1/"));
    if (!sys_seal_handles(req->path) && check_wrap(c, req, out) != 0)
        return -1;
    req->client_token = extract_token(c);
    ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    req->content_type = ct ? xstrdup(ct) : NULL;
    remote_addr(c, req->remote_addr, sizeof(req->remote_addr));
    /* HA: a standby's signed note of its client's address (forward.h);
     * core.c checks the signature before it means anything. */
    fwd = MHD_lookup_connection_value(c, MHD_HEADER_KIND, FORWARD_HEADER);
    req->forwarded_for = fwd != NULL && strlen(fwd) < 256 ? xstrdup(fwd)
                                                          : NULL;
    /* Policy explain on a 403 (policy_explain.h), when asked for. */
    explain = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                          "X-Coffer-Explain");
    req->explain = explain != NULL && strcmp(explain, "1") == 0;
    if (req->op == OP_PATCH &&
        (ct == NULL ||
         strncmp(ct, "application/merge-patch+json", 28) != 0)) {
        snprintf(msg, sizeof(msg), "PATCH requires Content-Type of "
                                   "application/merge-patch+json, provided "
                                   "%.200s", ct ? ct : "");
        core_error_reply(out, 415, msg);
        return -1;
    }
    if (req->op == OP_UPDATE || req->op == OP_PATCH)
        return 0;
    args.data = cJSON_CreateObject();
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &args);
    req->data = args.data;
    if (args.list_bad) {
        core_error_reply(out, 400, NULL);
        return -1;
    }
    if (req->op == OP_READ && args.list)
        req->op = OP_LIST;
    return 0;
}

/* Runs an inline-eligible request on this I/O thread and queues the reply. */
static enum MHD_Result run_here(struct conn_ctx *ctx)
{
    snprintf(ctx->what, sizeof(ctx->what), "%s %s",
             req_op_name(ctx->req.op), ctx->req.path);
    ctx->handed_off = mono_ms();
    ctx->deadline = ctx->handed_off + request_budget_configured_ms();
    run_request(ctx, &ctx->out);
    ctx->state = RS_DONE; /* never in the in-flight list: nobody else looks */
    return send_reply(ctx->c, &ctx->out);
}

/*
 * Suspends the connection and queues the request on its lane. While the
 * server shuts down it answers 503 instead (a suspended connection must
 * not outlive the daemon).
 */
static void hand_off(struct http_server *srv, struct conn_ctx *ctx)
{
    struct lane *l = is_status(&ctx->req) ? &srv->status : &srv->work;
    bool closing;

    snprintf(ctx->what, sizeof(ctx->what), "%s %s",
             req_op_name(ctx->req.op), ctx->req.path);
    /* Suspend first: the worker may resume before we return. */
    MHD_suspend_connection(ctx->c);
    ctx->handed_off = mono_ms();
    ctx->deadline = ctx->handed_off + request_budget_configured_ms();
    pthread_mutex_lock(&srv->mu);
    closing = srv->closing;
    if (closing) {
        ctx->state = RS_DONE;
        core_error_reply(&ctx->out, 503, "server is shutting down");
    } else {
        ctx->state = RS_QUEUED;
        ctx->inext = srv->inflight;
        if (srv->inflight != NULL)
            srv->inflight->iprev = ctx;
        srv->inflight = ctx;
    }
    pthread_mutex_unlock(&srv->mu);
    if (closing) {
        MHD_resume_connection(ctx->c);
        return;
    }
    if (is_transition(&ctx->req))
        atomic_fetch_add(&srv->transitions, 1);
    atomic_fetch_add(&ctx->refs, 1); /* the lane's */
    lane_push(l, ctx);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct conn_ctx *ctx = *con_cls;
    enum req_state state;

    (void)version;
    if (ctx == NULL)
        return MHD_NO; /* on_uri always runs first */
    if (!ctx->headers_seen) {
        ctx->headers_seen = true;
        rec_enter(srv, ctx->rec, PH_BODY);
        return MHD_YES; /* never queue on the first call (0.9.75) */
    }
    if (*upload_data_size > 0) {
        if (!ctx->too_big &&
            buf_append(&ctx->body, upload_data, *upload_data_size) != 0)
            ctx->too_big = true; /* keep reading, answer 413 at the end */
        *upload_data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&srv->mu);
    state = ctx->state;
    pthread_mutex_unlock(&srv->mu);
    if (state == RS_DONE)
        return send_reply(c, &ctx->out);
    if (state != RS_READING)
        return MHD_YES; /* not ours to answer yet */
    rec_enter(srv, ctx->rec, PH_BUSY);
    if (ctx->after_stop) {
        ctx->state = RS_DONE;
        core_error_reply(&ctx->out, 503, "server is shutting down");
        return send_reply(c, &ctx->out);
    }
    if (build_request(c, url, method, ctx, &ctx->out) != 0) {
        ctx->state = RS_DONE;
        return send_reply(c, &ctx->out);
    }
    if (may_run_inline(srv, &ctx->req))
        return run_here(ctx);
    hand_off(srv, ctx);
    return MHD_YES;
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http: %s", msg);
}

/* ============================================================ lifetime == */

static int make_sockaddr(const char *address, struct sockaddr_storage *ss,
                         unsigned int *flags, struct errbuf *err)
{
    char host[256];
    uint16_t port;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (http_parse_address(address, host, &port) != 0) {
        errbuf_set(err, "invalid listen address \"%s\": want host:port",
                   address);
        return COFFER_EINVAL;
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *flags |= MHD_USE_IPv6;
        return 0;
    }
    errbuf_set(err, "invalid listen address \"%s\": the host must be an IP "
                    "address", address);
    return COFFER_EINVAL;
}

#define HTTP_MAX_PEM_SIZE ((size_t)1024 * 1024)

/*
 * Reads a PEM file into a new NUL-terminated buffer (MHD takes C strings)
 * of *n bytes plus the NUL. The caller frees it with secure_free(p, *n + 1).
 * what ("certificate", "key") names the file in errors.
 */
static char *read_pem(const char *path, const char *what, size_t *n,
                      struct errbuf *err)
{
    struct buf b;
    struct file_error why;
    char *p = NULL;
    int rc;

    buf_init(&b, HTTP_MAX_PEM_SIZE);
    rc = file_read(path, &b, &why);
    if (rc == COFFER_ETOOBIG) {
        errbuf_set(err, "the TLS %s file \"%s\" is larger than %zu bytes",
                   what, path, HTTP_MAX_PEM_SIZE);
    } else if (rc != 0) {
        errbuf_set(err, "cannot read the TLS %s file \"%s\": %s", what, path,
                   strerror(why.errnum));
    } else if (b.len == 0 || memchr(b.ptr, '\0', b.len) != NULL) {
        errbuf_set(err, "the TLS %s file \"%s\" is %s", what, path,
                   b.len == 0 ? "empty" : "not PEM text");
    } else {
        p = buf_detach(&b, n);
    }
    buf_release(&b);
    return p;
}

static int64_t secs_or(int64_t v, int64_t def)
{
    return (v > 0 ? v : def) * 1000;
}

static int start_workers(struct http_server *srv,
                         const struct http_config *cfg, struct errbuf *err)
{
    int rc;

    rc = lane_start(srv, &srv->work, "request",
                    cfg->threads ? cfg->threads : HTTP_DEFAULT_THREADS, err);
    if (rc == 0)
        rc = lane_start(srv, &srv->status, "status", 2, err);
    if (rc == 0) {
        rc = pthread_create(&srv->sweeper, NULL, sweeper_main, srv);
        if (rc != 0) {
            errbuf_set(err, "cannot start the HTTP sweeper: %s",
                       strerror(rc));
            rc = COFFER_EINTERNAL;
        } else {
            srv->sweeper_started = true;
        }
    }
    return rc;
}

static void stop_sweeper(struct http_server *srv)
{
    if (!srv->sweeper_started)
        return;
    pthread_mutex_lock(&srv->sweep_mu);
    srv->sweep_stop = true;
    pthread_cond_signal(&srv->sweep_cv);
    pthread_mutex_unlock(&srv->sweep_mu);
    pthread_join(srv->sweeper, NULL);
    srv->sweeper_started = false;
}

/* Frees a server whose daemon is stopped (or never started). */
static void free_server(struct http_server *srv)
{
    stop_sweeper(srv);
    lane_stop(&srv->status);
    lane_stop(&srv->work);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->sweep_mu);
    pthread_cond_destroy(&srv->sweep_cv);
    free(srv);
}

/*
 * With TLS, the PEM text is passed to MHD as memory. MHD keeps only the
 * pointers and reads them once, in MHD_start_daemon, where GnuTLS parses
 * them into its own credentials (gnutls_certificate_set_x509_key_mem in
 * MHD_init_daemon_certificate, 0.9.x); nothing reads them afterwards. So
 * the key text is wiped and freed as soon as MHD_start_daemon returns,
 * and only GnuTLS's parsed copy stays in memory.
 */
struct http_server *http_start(const struct http_config *cfg,
                               struct errbuf *err)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    struct sockaddr_storage ss;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                         MHD_USE_ERROR_LOG | MHD_USE_ITC |
                         MHD_ALLOW_SUSPEND_RESUME;
    bool tls = cfg->tls_cert_file != NULL || cfg->tls_key_file != NULL;
    char *cert = NULL;
    char *key = NULL;
    size_t cert_len = 0, key_len = 0;
    struct MHD_OptionItem tls_opts[3] = {{MHD_OPTION_END, 0, NULL}};

    atomic_init(&srv->in_flight, 0);
    atomic_init(&srv->transitions, 0);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->sweep_mu, NULL);
    pthread_cond_init(&srv->sweep_cv, NULL);
    srv->max_request_size = cfg->max_request_size
                                ? cfg->max_request_size
                                : HTTP_DEFAULT_MAX_REQUEST_SIZE;
    srv->read_header_ms = secs_or(cfg->read_header_timeout,
                                  HTTP_DEFAULT_READ_HEADER_TIMEOUT);
    srv->read_ms = secs_or(cfg->read_timeout, HTTP_DEFAULT_READ_TIMEOUT);
    srv->idle_ms = secs_or(cfg->idle_timeout, HTTP_DEFAULT_IDLE_TIMEOUT);
    if (make_sockaddr(cfg->address, &ss, &flags, err) != 0)
        goto fail;
    if (tls) {
        if (cfg->tls_cert_file == NULL || cfg->tls_key_file == NULL) {
            errbuf_set(err, "TLS needs both a certificate and a key file");
            goto fail;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            errbuf_set(err, "this libmicrohttpd was built without TLS");
            goto fail;
        }
        cert = read_pem(cfg->tls_cert_file, "certificate", &cert_len, err);
        if (cert == NULL)
            goto fail;
        key = read_pem(cfg->tls_key_file, "key", &key_len, err);
        if (key == NULL)
            goto fail;
        flags |= MHD_USE_TLS;
        tls_opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                              cert};
        tls_opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                              key};
        tls_opts[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    if (start_workers(srv, cfg, err) != 0)
        goto fail;
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_error, srv, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)(cfg->io_threads ? cfg->io_threads
                                       : HTTP_DEFAULT_IO_THREADS),
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(srv->idle_ms / 1000),
        MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)(cfg->max_connections ? cfg->max_connections
                                            : HTTP_DEFAULT_MAX_CONNECTIONS),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)(cfg->max_connections_per_ip
                           ? cfg->max_connections_per_ip
                           : HTTP_DEFAULT_MAX_CONNECTIONS_PER_IP),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONNECTION_MEMORY,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_no_nul, NULL,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        if (tls)
            errbuf_set(err, "cannot start the TLS listener on %s: the "
                            "address is in use or not permitted, or \"%s\" "
                            "and \"%s\" are not a matching PEM certificate "
                            "and key (see the log)", cfg->address,
                       cfg->tls_cert_file, cfg->tls_key_file);
        else
            errbuf_set(err, "cannot listen on %s (address in use, or not "
                            "permitted)", cfg->address);
        goto fail;
    }
    secure_free(key, key_len + 1);
    free(cert);
    return srv;
fail:
    secure_free(key, key_len + 1);
    free(cert);
    free_server(srv);
    return NULL;
}

/*
 * Graceful stop, like Go's http.Server.Shutdown: stop accepting, let the
 * requests already begun (even mid-upload) finish, then close the idle
 * keep-alive connections by stopping the daemon. A request still running
 * after HTTP_DRAIN_SECONDS gets a 503 rather than holding shutdown
 * hostage; its worker is joined when what it waits on returns.
 */
#define HTTP_DRAIN_SECONDS 30

static void wait_drained(struct http_server *srv, double seconds)
{
    double deadline = time_mono() + seconds;

    while (atomic_load(&srv->in_flight) > 0 && time_mono() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/*
 * Drains, then stops. The listener stays open while requests begun
 * before the stop finish (a body still arriving included), and requests
 * begun after it are answered 503: MHD_quiesce_daemon would close
 * it, but on an epoll daemon with its own threads it races the threads'
 * own removal of the listening socket from their epoll sets and
 * libmicrohttpd aborts the process ("Failed to remove listen FD from
 * epoll set", an open defect of 0.9.75; seen once under load in CI).
 */
void http_stop(struct http_server *srv)
{
    if (srv == NULL)
        return;
    atomic_store(&srv->draining, true);
    wait_drained(srv, HTTP_DRAIN_SECONDS);
    if (atomic_load(&srv->in_flight) > 0)
        log_warn("http: %d requests still running after %ds; closing them",
                 atomic_load(&srv->in_flight), HTTP_DRAIN_SECONDS);
    /* No connection may stay suspended past MHD_stop_daemon. */
    give_up(srv, 0, true, 503, "server is shutting down");
    wait_drained(srv, 1);
    stop_sweeper(srv);
    MHD_stop_daemon(srv->daemon);
    free_server(srv);
}
