/*
 * forward.c - an HA standby sends a request on to the active node and
 * relays the reply, so that clients see one API whichever node they hit.
 *
 * The request is rebuilt from its parsed form (method from the
 * operation, the data as the query of a read or the JSON body of a
 * write) and sent with libcurl: one easy handle per thread, kept for its
 * connection cache, so a worker reuses its keep-alive connection to the
 * active. The call is bounded: connect 2 s, and in total what is left of
 * the request's max_request_duration.
 *
 * The client's address matters on the active (token_bound_cidrs,
 * rate limits), and the active sees the standby's. The standby therefore
 * sends the client's address in X-Coffer-Forwarded-For with a timestamp
 * and an HMAC under a key every unsealed node derives from the barrier's
 * root key; the active accepts it only if the MAC holds for this method
 * and path and the stamp is recent. Nothing else can produce that header,
 * so a client cannot choose its address by sending it.
 *
 * TLS: an https:// active is verified (peer and host name) against
 * cluster_ca_file, or the system's CAs; there is no way to turn that
 * off, since the forwarded request carries the client's token.
 */
#include "forward.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "buf.h"
#include "crypto.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define FORWARD_CONNECT_MS 2000L
#define FORWARD_MAX_BODY (32u << 20)
/* A signed address older than this (either way) is refused. */
#define FORWARD_STAMP_SKEW_MS 30000

static pthread_mutex_t ca_mu = PTHREAD_MUTEX_INITIALIZER;
static char ca_file[4096]; /* "" = the system's store */

static pthread_key_t handle_key;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;
static bool handle_key_ok;

static void handle_free(void *p)
{
    curl_easy_cleanup(p);
}

static void handle_key_make(void)
{
    handle_key_ok = pthread_key_create(&handle_key, handle_free) == 0;
}

/* This thread's easy handle, reset for a new transfer; NULL on failure. */
static CURL *thread_handle(void)
{
    CURL *e;

    pthread_once(&handle_once, handle_key_make);
    if (!handle_key_ok)
        return NULL;
    e = pthread_getspecific(handle_key);
    if (e != NULL) {
        curl_easy_reset(e); /* keeps the connection cache */
        return e;
    }
    e = curl_easy_init();
    if (e != NULL && pthread_setspecific(handle_key, e) != 0) {
        curl_easy_cleanup(e);
        e = NULL;
    }
    return e;
}

void forward_set_ca_file(const char *path)
{
    pthread_mutex_lock(&ca_mu);
    snprintf(ca_file, sizeof(ca_file), "%s", path != NULL ? path : "");
    pthread_mutex_unlock(&ca_mu);
}

/* Verification on, against ca_file if one is set (curl_easy_reset
 * clears every option, so this runs for each transfer). */
static void set_tls(CURL *e, char *errbuf)
{
    char ca[sizeof(ca_file)];

    pthread_mutex_lock(&ca_mu);
    memcpy(ca, ca_file, sizeof(ca));
    pthread_mutex_unlock(&ca_mu);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca[0] != '\0')
        curl_easy_setopt(e, CURLOPT_CAINFO, ca);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
}

/*
 * A certificate the standby cannot verify will not fix itself: the reply
 * is a 502 with the reason, in Vault's error shape.
 */
static bool tls_reply(CURLcode cc, const char *leader, const char *detail,
                      struct forward_reply *out)
{
    cJSON *body, *errors;
    struct buf msg;

    if (cc != CURLE_PEER_FAILED_VERIFICATION &&
        cc != CURLE_SSL_CACERT_BADFILE)
        return false;
    buf_init(&msg, BUF_MAX_DEFAULT);
    if (cc == CURLE_PEER_FAILED_VERIFICATION)
        buf_appendf(&msg, "forwarding to the active node %s failed: its TLS "
                          "certificate could not be verified (%s); set "
                          "cluster_ca_file to the CA that signed it",
                    leader, detail);
    else
        buf_appendf(&msg, "forwarding to the active node %s failed: "
                          "cluster_ca_file could not be read (%s)",
                    leader, detail);
    log_warn("ha: %s", msg.ptr);
    body = cJSON_CreateObject();
    errors = cJSON_AddArrayToObject(body, "errors");
    cJSON_AddItemToArray(errors, cJSON_CreateString(msg.ptr));
    out->status = 502;
    out->body = cJSON_PrintUnformatted(body);
    out->len = out->body != NULL ? strlen(out->body) : 0;
    out->text_plain = false;
    out->location = NULL;
    cJSON_Delete(body);
    buf_release(&msg);
    return true;
}

/* hex(HMAC(key, "addr\nstamp\nop\npath")) into out[65]. */
static void sign(const uint8_t key[32], const char *addr, int64_t stamp,
                 enum req_op op, const char *path, char out[65])
{
    unsigned char mac[32];
    struct buf msg;

    buf_init(&msg, BUF_MAX_DEFAULT);
    COFFER_ASSERT(buf_appendf(&msg, "%s\n%lld\n%s\n%s", addr,
                              (long long)stamp, req_op_name(op), path) == 0);
    crypto_hmac_sha256(key, 32, msg.ptr, msg.len, mac);
    crypto_hex(mac, sizeof(mac), out);
    buf_release(&msg);
}

bool forward_verify_client_addr(const char *value, const uint8_t key[32],
                                enum req_op op, const char *path,
                                char *addr, size_t n)
{
    char got_addr[64], got_mac[65], want[65];
    long long stamp;
    int64_t now = time_unix_ms();

    if (value == NULL ||
        sscanf(value, "%63s %lld %64s", got_addr, &stamp, got_mac) != 3 ||
        strlen(got_mac) != 64)
        return false;
    if (stamp < now - FORWARD_STAMP_SKEW_MS ||
        stamp > now + FORWARD_STAMP_SKEW_MS)
        return false;
    sign(key, got_addr, stamp, op, path, want);
    if (!crypto_equal(want, 64, got_mac, 64) || strlen(got_addr) >= n)
        return false;
    memcpy(addr, got_addr, strlen(got_addr) + 1);
    return true;
}

/* Appends path with each segment percent-encoded, '/' kept. */
static void append_path(CURL *e, struct buf *url, const char *path)
{
    const char *p = path;

    while (*p != '\0') {
        size_t n = strcspn(p, "/");
        char *seg = n > 0 ? curl_easy_escape(e, p, (int)n) : NULL;

        if (seg != NULL)
            buf_append_str(url, seg);
        curl_free(seg);
        p += n;
        if (*p == '/') {
            buf_append_str(url, "/");
            p++;
        }
    }
}

/* A read's data back into a query string: key=value&... */
static void append_query(CURL *e, struct buf *url, const cJSON *data,
                         bool list)
{
    const cJSON *it;
    char sep = '?';

    if (list) {
        buf_append_str(url, "?list=true");
        sep = '&';
    }
    cJSON_ArrayForEach(it, data)
    {
        char *k, *v, *printed = NULL;
        const char *text = cJSON_IsString(it) ? it->valuestring : NULL;

        if (it->string == NULL || (list && strcmp(it->string, "list") == 0))
            continue;
        if (text == NULL) {
            printed = cJSON_PrintUnformatted(it);
            text = printed != NULL ? printed : "";
        }
        k = curl_easy_escape(e, it->string, 0);
        v = curl_easy_escape(e, text, 0);
        if (k != NULL && v != NULL)
            buf_appendf(url, "%c%s=%s", sep, k, v);
        sep = '&';
        curl_free(k);
        curl_free(v);
        free(printed);
    }
}

/* Wipes what b holds (a reply may carry secrets), then releases it. */
static void buf_wipe(struct buf *b)
{
    if (b->ptr != NULL)
        crypto_wipe(b->ptr, b->len);
    buf_release(b);
}

/* Wipes every header line (one carries the token), then frees them. */
static void headers_free(struct curl_slist *h)
{
    for (struct curl_slist *it = h; it != NULL; it = it->next)
        crypto_wipe(it->data, strlen(it->data));
    curl_slist_free_all(h);
}

static const char *method_of(enum req_op op)
{
    switch (op) {
    case OP_CREATE: return "POST";
    case OP_UPDATE: return "PUT";
    case OP_DELETE: return "DELETE";
    case OP_PATCH: return "PATCH";
    case OP_HEAD: return "HEAD";
    case OP_LIST:
    case OP_READ:
    default: return "GET";
    }
}

static bool has_body(enum req_op op)
{
    return op == OP_CREATE || op == OP_UPDATE || op == OP_PATCH;
}

/* leader + "/v1/" + the request's path (and a read's query). */
static void build_url(CURL *e, const char *leader, const struct request *req,
                      struct buf *url)
{
    buf_append_str(url, leader);
    while (url->len > 0 && url->ptr[url->len - 1] == '/')
        url->ptr[--url->len] = '\0';
    buf_append_str(url, "/v1/");
    append_path(e, url, req->path);
    if (!has_body(req->op) && req->data != NULL)
        append_query(e, url, req->data, req->op == OP_LIST);
    else if (req->op == OP_LIST)
        buf_append_str(url, "?list=true");
}

char *forward_redirect_url(const char *leader, const struct request *req)
{
    struct buf url;

    buf_init(&url, BUF_MAX_DEFAULT);
    build_url(NULL, leader, req, &url);
    return buf_detach(&url, NULL);
}

static size_t collect_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;

    return buf_append(b, ptr, n) == 0 ? n : 0;
}

/* Keeps the reply's Content-Type (as one of the types we send) and
 * Location. */
struct reply_headers {
    bool text_plain;
    char *location;
};

static size_t collect_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct reply_headers *h = arg;
    size_t n = size * nmemb;

    if (n > 13 && strncasecmp(ptr, "content-type:", 13) == 0)
        h->text_plain = strstr(ptr, "text/plain") != NULL;
    if (n > 9 && strncasecmp(ptr, "location:", 9) == 0 && h->location == NULL) {
        const char *v = ptr + 9;
        size_t len = n - 9;

        while (len > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            len--;
        }
        while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n'))
            len--;
        h->location = xstrndup(v, len);
    }
    return n;
}

/* A header value without CR, LF or other control characters. */
static bool header_safe(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; p != NULL && *p;
         p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

/* The headers to send; NULL-terminated list owned by the caller. */
static struct curl_slist *request_headers(const struct request *req,
                                          const uint8_t key[32])
{
    struct curl_slist *h = NULL;
    struct buf line;
    char mac[65];
    int64_t stamp = time_unix_ms();

    buf_init(&line, BUF_MAX_DEFAULT);
    if (req->client_token != NULL) {
        buf_appendf(&line, "X-Vault-Token: %s", req->client_token);
        h = curl_slist_append(h, line.ptr);
        crypto_wipe(line.ptr, line.len);
        buf_reset(&line);
    }
    if (req->wrap_ttl > 0) {
        buf_appendf(&line, "X-Vault-Wrap-TTL: %llds",
                    (long long)req->wrap_ttl);
        h = curl_slist_append(h, line.ptr);
        buf_reset(&line);
    }
    sign(key, req->remote_addr, stamp, req->op, req->path, mac);
    buf_appendf(&line, "%s: %s %lld %s", FORWARD_HEADER, req->remote_addr,
                (long long)stamp, mac);
    h = curl_slist_append(h, line.ptr);
    h = curl_slist_append(h, "X-Vault-Request: true");
    if (req->explain) /* the client asked for a 403's explanation */
        h = curl_slist_append(h, "X-Coffer-Explain: 1");
    h = curl_slist_append(h, req->op == OP_PATCH
                                 ? "Content-Type: application/merge-patch+json"
                                 : "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    buf_release(&line);
    return h;
}

int forward_request(const char *leader, const struct request *req,
                    const uint8_t key[32], int64_t budget_ms,
                    struct forward_reply *out, struct errbuf *err)
{
    struct reply_headers rh = {false, NULL};
    struct curl_slist *headers = NULL;
    struct buf url, body;
    char *payload = NULL;
    char detail[CURL_ERROR_SIZE];
    long status = 0;
    CURLcode cc;
    CURL *e = thread_handle();
    int rc = COFFER_EIO;

    buf_init(&url, BUF_MAX_DEFAULT);
    buf_init(&body, FORWARD_MAX_BODY);
    if (!header_safe(req->client_token)) {
        /* It would end the header line and start another. */
        errbuf_set(err, "the token holds control characters");
        goto out;
    }
    if (e == NULL) {
        errbuf_set(err, "cannot create an HTTP client");
        goto out;
    }
    build_url(e, leader, req, &url);
    headers = request_headers(req, key);
    curl_easy_setopt(e, CURLOPT_URL, url.ptr);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_of(req->op));
    if (req->op == OP_HEAD)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (has_body(req->op)) {
        payload = req->data != NULL ? cJSON_PrintUnformatted(req->data)
                                    : xstrdup("{}");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, FORWARD_CONNECT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     (long)(budget_ms > 0 ? budget_ms : 1));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &rh);
    detail[0] = '\0';
    set_tls(e, detail);
    cc = curl_easy_perform(e);
    /* The handle outlives this frame: it must not keep our buffer. */
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    if (tls_reply(cc, leader, detail[0] != '\0' ? detail
                                                : curl_easy_strerror(cc),
                  out)) {
        rc = 0;
        goto out;
    }
    if (cc != CURLE_OK) {
        /* curl's words name the host, never the token or the body. */
        errbuf_set(err, "forwarding to the active node %s failed: %s", leader,
                   curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    out->status = (int)status;
    out->len = body.len;
    out->body = body.len > 0 ? buf_detach(&body, NULL) : NULL;
    out->text_plain = rh.text_plain;
    out->location = rh.location;
    rh.location = NULL;
    rc = 0;
out:
    free(rh.location);
    if (payload != NULL)
        secure_free_str(payload); /* may hold secrets */
    headers_free(headers);
    buf_wipe(&body);
    buf_release(&url);
    return rc;
}
