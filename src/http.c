/*
 * http.c - the HTTP side: libmicrohttpd in thread-pool mode.
 *
 * Each request gets a struct conn_ctx on the first access-handler call.
 * The body is collected into a buffer with the listener's ceiling; once
 * the body is complete the request is parsed (method, path, token, JSON
 * body or query arguments), run through core_handle, and answered.
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
#include "json.h"
#include "log.h"
#include "request.h"
#include "util.h"

struct http_server {
    struct MHD_Daemon *daemon;
    size_t max_request_size;
    atomic_int in_flight; /* requests begun and not yet completed */
};

struct conn_ctx {
    struct buf body;
    bool too_big;
};

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

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes application/x-www-form-urlencoded text in place. */
static void form_decode(char *s)
{
    char *out = s;

    for (; *s != '\0'; s++) {
        if (*s == '+') {
            *out++ = ' ';
        } else if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            *out++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
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
        const char *val = "";
        cJSON *old;
        if (eq != NULL) {
            *eq = '\0';
            val = eq + 1;
        }
        form_decode(pair);
        form_decode((char *)val);
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
    if (r->location != NULL)
        MHD_add_response_header(resp, "Location", r->location);
    ret = MHD_queue_response(c, (unsigned int)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/*
 * Builds the request from the connection. Returns 0, or fills out with
 * the refusal (bad method, bad body) and returns -1.
 */
static int build_request(struct MHD_Connection *c, const char *url,
                         const char *method, struct conn_ctx *ctx,
                         struct request *req, struct reply *out)
{
    struct args_ctx args = {0};
    const char *ct;

    if (method_op(method, &req->op) != 0) {
        core_error_reply(out, 405, NULL);
        return -1;
    }
    if (ctx->too_big) {
        core_error_reply(out, 413, "error parsing JSON");
        return -1;
    }
    req->path = xstrdup(url + strlen("/v1/"));
    req->client_token = extract_token(c);
    ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    req->content_type = ct ? xstrdup(ct) : NULL;
    remote_addr(c, req->remote_addr, sizeof(req->remote_addr));
    if (req->op == OP_PATCH &&
        (ct == NULL ||
         strncmp(ct, "application/merge-patch+json", 28) != 0)) {
        char msg[300];
        snprintf(msg, sizeof(msg), "PATCH requires Content-Type of "
                                   "application/merge-patch+json, provided "
                                   "%.200s", ct ? ct : "");
        core_error_reply(out, 415, msg);
        return -1;
    }
    if (req->op == OP_UPDATE || req->op == OP_PATCH) {
        if (parse_body(req, &ctx->body) != 0) {
            core_error_reply(out, 400, "error parsing JSON");
            return -1;
        }
        return 0;
    }
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

static void serve(struct MHD_Connection *c, const char *url,
                  const char *method, struct conn_ctx *ctx, struct reply *out)
{
    struct request req;
    char *clean;

    request_init(&req);
    if (strncmp(url, "/v1/", 4) != 0) {
        core_error_reply(out, 404, NULL);
        return;
    }
    clean = clean_path(url);
    if (clean != NULL) {
        out->status = 301;
        out->location = clean;
        return;
    }
    if (build_request(c, url, method, ctx, &req, out) == 0)
        core_handle(&req, out);
    request_release(&req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct conn_ctx *ctx = *con_cls;
    struct reply out;
    enum MHD_Result ret;

    (void)version;
    if (ctx == NULL) {
        ctx = xcalloc(1, sizeof(*ctx));
        buf_init(&ctx->body, srv->max_request_size);
        *con_cls = ctx;
        atomic_fetch_add(&srv->in_flight, 1);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!ctx->too_big &&
            buf_append(&ctx->body, upload_data, *upload_data_size) != 0)
            ctx->too_big = true; /* keep reading, answer 413 at the end */
        *upload_data_size = 0;
        return MHD_YES;
    }
    memset(&out, 0, sizeof(out));
    serve(c, url, method, ctx, &out);
    ret = send_reply(c, &out);
    reply_release(&out);
    return ret;
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
    buf_release(&ctx->body);
    free(ctx);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
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
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t len = 0;
    size_t r;

    if (f == NULL) {
        errbuf_set(err, "cannot read the TLS %s file \"%s\": %s", what, path,
                   strerror(errno));
        return NULL;
    }
    p = xmalloc(HTTP_MAX_PEM_SIZE + 1);
    do {
        r = fread(p + len, 1, HTTP_MAX_PEM_SIZE + 1 - len, f);
        len += r;
    } while (r > 0 && len <= HTTP_MAX_PEM_SIZE);
    if (ferror(f)) {
        errbuf_set(err, "cannot read the TLS %s file \"%s\": %s", what, path,
                   strerror(errno));
    } else if (len > HTTP_MAX_PEM_SIZE) {
        errbuf_set(err, "the TLS %s file \"%s\" is larger than %zu bytes",
                   what, path, HTTP_MAX_PEM_SIZE);
    } else if (len == 0 || memchr(p, '\0', len) != NULL) {
        errbuf_set(err, "the TLS %s file \"%s\" is %s", what, path,
                   len == 0 ? "empty" : "not PEM text");
    } else {
        p[len] = '\0';
        *n = len;
        fclose(f);
        return p;
    }
    secure_free(p, HTTP_MAX_PEM_SIZE + 1);
    fclose(f);
    return NULL;
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
                         MHD_USE_ERROR_LOG | MHD_USE_ITC;
    bool tls = cfg->tls_cert_file != NULL || cfg->tls_key_file != NULL;
    char *cert = NULL;
    char *key = NULL;
    size_t cert_len = 0, key_len = 0;
    struct MHD_OptionItem tls_opts[3] = {{MHD_OPTION_END, 0, NULL}};

    atomic_init(&srv->in_flight, 0);

    srv->max_request_size = cfg->max_request_size
                                ? cfg->max_request_size
                                : HTTP_DEFAULT_MAX_REQUEST_SIZE;
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
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_error, srv, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)(cfg->threads ? cfg->threads : HTTP_DEFAULT_THREADS),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_ARRAY,
        tls_opts, MHD_OPTION_END);
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
    free(srv);
    return NULL;
}

/*
 * Graceful stop, like Go's http.Server.Shutdown: stop accepting, let the
 * requests already begun (even mid-upload) finish, then close the idle
 * keep-alive connections by stopping the daemon. A request still running
 * after HTTP_DRAIN_SECONDS is cut off rather than holding shutdown hostage.
 */
#define HTTP_DRAIN_SECONDS 30

void http_stop(struct http_server *srv)
{
    MHD_socket listen_fd;
    double deadline;

    if (srv == NULL)
        return;
    listen_fd = MHD_quiesce_daemon(srv->daemon);
    deadline = time_mono() + HTTP_DRAIN_SECONDS;
    while (atomic_load(&srv->in_flight) > 0 && time_mono() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&srv->in_flight) > 0)
        log_warn("http: %d requests still running after %ds; closing them",
                 atomic_load(&srv->in_flight), HTTP_DRAIN_SECONDS);
    MHD_stop_daemon(srv->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    free(srv);
}
