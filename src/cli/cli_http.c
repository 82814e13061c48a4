/*
 * cli_http.c - the HTTP side of the client commands: libcurl requests to
 * a Vault-compatible server, the Go client's reading of responses, and
 * the request bodies and URLs the commands build.
 *
 * Owns: the address and token (VAULT_ADDR/COFFER_ADDR, VAULT_TOKEN/
 * COFFER_TOKEN, ~/.vault-token), TLS settings, URL escaping, Vault's
 * error texts (api.ResponseError and Go's *url.Error), api.ParseSecret,
 * the k=v body builder of `vault write` and query strings, and the path
 * helpers (sanitizePath, path.Join) every command uses.
 *
 * Not owned: flags, commands and output (cli.c and the command files),
 * how a response looks (cli_format.c).
 *
 * Entry points: cli__client_init(), cli__api_call(), cli__args_to_json().
 * The interface is cli_http.h.
 *
 * Secrets: the token, request bodies and responses all pass through
 * buffers that are wiped before they are freed, including libcurl's copy
 * of the header list, which is wiped and freed right after each request.
 */
#include "cli_http.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "../buf.h"
#include "cli_format.h"
#include "../common.h"
#include "../json.h"
#include "../util.h"

#define DEFAULT_ADDR "http://127.0.0.1:8200"
#define HTTP_TIMEOUT_SECS 30L
/* Vault's default max_request_size; a response larger than this is bogus. */
#define MAX_BODY ((size_t)32 * 1024 * 1024 + 4096)

/* ====================================================================
 * Paths and strings (Vault's sanitizePath, ensureTrailingSlash, path.Join)
 * ==================================================================== */

/* A copy of s without leading and trailing white space (Go TrimSpace). */
char *cli__trim_dup(const char *s)
{
    const char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    return xstrndup(s, (size_t)(e - s));
}

/* Trims white space and every leading and trailing '/'. New string. */
char *cli__sanitize_path(const char *s)
{
    char *t = cli__trim_dup(s), *p = t, *r;
    size_t n;

    while (*p == '/')
        p++;
    n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        n--;
    r = xstrndup(p, n);
    free(t);
    return r;
}

/* Trims white space and ends the path with exactly one '/'. New string. */
char *cli__ensure_trailing_slash(const char *s)
{
    char *t = cli__trim_dup(s), *r;
    size_t n = strlen(t);

    if (n == 0 || t[n - 1] == '/')
        return t;
    r = xmalloc(n + 2);
    memcpy(r, t, n);
    r[n] = '/';
    r[n + 1] = '\0';
    free(t);
    return r;
}

/* Go's path.Clean: no empty or "." segments, ".." resolved. */
static char *path_clean(const char *p)
{
    struct strvec seg;
    struct buf b;
    const char *s = p, *e;
    bool rooted = p[0] == '/';
    size_t i;

    strvec_init(&seg);
    buf_init(&b, 0);
    while (*s != '\0') {
        e = strchr(s, '/');
        if (e == NULL)
            e = s + strlen(s);
        if (e - s == 2 && s[0] == '.' && s[1] == '.') {
            if (seg.n > 0 && strcmp(seg.v[seg.n - 1], "..") != 0)
                free(seg.v[--seg.n]);
            else if (!rooted)
                strvec_push(&seg, "..");
        } else if (e > s && !(e - s == 1 && s[0] == '.')) {
            strvec_push_owned(&seg, xstrndup(s, (size_t)(e - s)));
        }
        s = *e == '/' ? e + 1 : e;
    }
    buf_append_str(&b, rooted ? "/" : "");
    for (i = 0; i < seg.n; i++) {
        buf_append_str(&b, seg.v[i]);
        if (i + 1 < seg.n)
            buf_append_str(&b, "/");
    }
    if (b.len == 0)
        buf_append_str(&b, ".");
    strvec_release(&seg);
    return buf_detach(&b, NULL);
}

/* Go's path.Join of up to three parts: empty parts are skipped. */
char *cli__path_join(const char *a, const char *b, const char *c)
{
    const char *parts[3] = { a, b, c };
    struct buf j;
    char *r;
    size_t i;

    buf_init(&j, 0);
    for (i = 0; i < 3; i++) {
        if (parts[i] == NULL || parts[i][0] == '\0')
            continue;
        if (j.len > 0)
            buf_append_str(&j, "/");
        buf_append_str(&j, parts[i]);
    }
    if (j.len == 0) {
        buf_release(&j);
        return xstrdup("");
    }
    r = path_clean(j.ptr);
    buf_release(&j);
    return r;
}

/* a + b + c in a new string. */
char *cli__str_concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *r = xmalloc(la + lb + lc + 1);

    memcpy(r, a, la);
    memcpy(r + la, b, lb);
    memcpy(r + la + lb, c, lc + 1);
    return r;
}

/* ====================================================================
 * The HTTP client: address and token, requests, Vault's error texts
 * ==================================================================== */

void cli__http_result_init(struct cli_http_result *r)
{
    r->status = 0;
    r->method[0] = '\0';
    buf_init(&r->url, 64 * 1024);
    buf_init(&r->body, MAX_BODY);
}

void cli__http_result_release(struct cli_http_result *r)
{
    buf_release(&r->url);
    buf_release(&r->body);
}

/*
 * Reads a whole file into b. Returns 0, or a negative error with Go's
 * os error text ("open /x: no such file or directory") in err.
 */
static int read_file(const char *path, struct buf *b, struct out *err)
{
    struct file_error why;
    int rc = file_read(path, b, &why);

    if (rc == COFFER_ETOOBIG) {
        out_printf(err, "read %.300s: file too large", path);
    } else if (rc != 0) {
        const char *msg = strerror(why.errnum);

        out_printf(err, "%s %.300s: ", why.op, path);
        out_putc(err, (char)tolower((unsigned char)msg[0]));
        out_puts(err, msg + 1);
        rc = COFFER_EIO;
    }
    return rc;
}

/* The token from ~/.vault-token (Vault's internal token helper), or NULL. */
static char *token_from_file(void)
{
    const char *home = getenv("HOME");
    struct buf path, content;
    struct out ignored;
    char *token = NULL;

    if (home == NULL || home[0] == '\0')
        return NULL;
    buf_init(&path, 4096);
    buf_init(&content, 64 * 1024);
    out_init(&ignored);
    if (buf_appendf(&path, "%s/.vault-token", home) != 0)
        goto out;
    if (access(path.ptr, F_OK) != 0 ||
        read_file(path.ptr, &content, &ignored) != 0 || content.ptr == NULL)
        goto out;
    token = cli__trim_dup(content.ptr);
    if (token[0] == '\0') {
        free(token);
        token = NULL;
    }
out:
    out_release(&ignored);
    buf_release(&content);
    buf_release(&path);
    return token;
}

/* The first of the environment variables that is set and not empty. */
const char *cli__env_first(const char *a, const char *b)
{
    const char *v = getenv(a);

    if (v != NULL && v[0] != '\0')
        return v;
    v = getenv(b);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int cli__client_init(struct cli_client *c, const char *address,
                     const char *ca_cert, bool skip_verify, struct out *err)
{
    const char *addr = address, *tok, *v;
    size_t n;
    bool b = false;

    memset(c, 0, sizeof(*c));
    if (addr == NULL || addr[0] == '\0')
        addr = cli__env_first("COFFER_ADDR", "VAULT_ADDR");
    c->addr = xstrdup(addr != NULL ? addr : DEFAULT_ADDR);
    n = strlen(c->addr);
    while (n > 0 && c->addr[n - 1] == '/')
        c->addr[--n] = '\0';
    tok = cli__env_first("COFFER_TOKEN", "VAULT_TOKEN");
    c->token = tok != NULL ? xstrdup(tok) : token_from_file();
    v = ca_cert != NULL ? ca_cert : getenv("VAULT_CACERT");
    c->ca_cert = v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
    c->skip_verify = skip_verify;
    v = getenv("VAULT_WRAP_TTL");
    c->wrap_ttl = v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
    v = getenv("VAULT_SKIP_VERIFY");
    if (v != NULL && v[0] != '\0' && bool_parse(v, &b) == 0 && b)
        c->skip_verify = true;
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        out_puts(err, "failed to create client: curl_easy_init failed");
        return COFFER_ENOMEM;
    }
    return 0;
}

void cli__client_release(struct cli_client *c)
{
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    secure_free_str(c->token);
    free(c->addr);
    free(c->ca_cert);
    free(c->wrap_ttl);
    memset(c, 0, sizeof(*c));
}

/*
 * Percent-encodes a request path the way Go's URL.EscapedPath does:
 * unreserved characters and "$&+,/:;=@" stay, everything else is %XX.
 */
static void escape_path(struct buf *b, const char *path)
{
    static const char keep[] = "-_.~$&+,/:;=@";
    const unsigned char *p;
    char tmp[4];

    for (p = (const unsigned char *)path; *p != '\0'; p++) {
        if (isalnum(*p) || strchr(keep, *p) != NULL) {
            buf_append(b, p, 1);
        } else {
            snprintf(tmp, sizeof(tmp), "%%%02X", *p);
            buf_append(b, tmp, 3);
        }
    }
}

/* Go's url.QueryEscape: space becomes '+', only unreserved stay as is. */
static void escape_query(struct buf *b, const char *s)
{
    const unsigned char *p;
    char tmp[4];

    for (p = (const unsigned char *)s; *p != '\0'; p++) {
        if (isalnum(*p) || strchr("-_.~", *p) != NULL) {
            buf_append(b, p, 1);
        } else if (*p == ' ') {
            buf_append(b, "+", 1);
        } else {
            snprintf(tmp, sizeof(tmp), "%%%02X", *p);
            buf_append(b, tmp, 3);
        }
    }
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct buf *b = userp;

    /* A zero return makes curl stop with CURLE_WRITE_ERROR. */
    if (buf_append(b, data, size * nmemb) != 0)
        return 0;
    return size * nmemb;
}

/*
 * Describes a failed exchange like Go's *url.Error does for the Vault
 * client: `Get "http://...": dial tcp 127.0.0.1:8200: connect: connection
 * refused`.
 */
static void transport_error(struct cli_client *c, CURLcode code,
                            const char *errbuf, const struct cli_http_result *r,
                            struct out *err)
{
    char *host = NULL, *port = NULL;
    const char *why;
    CURLU *u = curl_url();
    long os_errno = 0;
    size_t i;

    out_putc(err, r->method[0]);
    for (i = 1; r->method[i] != '\0'; i++)
        out_putc(err, (char)tolower((unsigned char)r->method[i]));
    out_printf(err, " \"%.*s\": ", 300, r->url.ptr != NULL ? r->url.ptr : "");
    if (u != NULL &&
        curl_url_set(u, CURLUPART_URL, r->url.ptr, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_HOST, &host, 0);
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    }
    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
    if (code == CURLE_COULDNT_CONNECT && os_errno != 0) {
        why = strerror((int)os_errno);
        out_printf(err, "dial tcp %.200s:%.20s: connect: %c", host ? host : "",
                   port ? port : "", tolower((unsigned char)why[0]));
        out_puts(err, why + 1);
    } else if (code == CURLE_COULDNT_RESOLVE_HOST) {
        out_printf(err, "dial tcp: lookup %.200s: no such host",
                   host ? host : "");
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        out_puts(err, "context deadline exceeded (Client.Timeout exceeded "
                      "while awaiting headers)");
    } else if (code == CURLE_WRITE_ERROR) {
        out_puts(err, "response body too large");
    } else {
        out_puts(err, errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code));
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* Headers every request carries; the token header is wiped after use. */
static struct curl_slist *request_headers(const struct cli_client *c,
                                          bool has_body)
{
    struct curl_slist *h = NULL, *next;
    struct buf line;

    buf_init(&line, 64 * 1024);
    h = curl_slist_append(h, "X-Vault-Request: true");
    if (c->token != NULL &&
        buf_appendf(&line, "X-Vault-Token: %s", c->token) == 0) {
        next = curl_slist_append(h, line.ptr);
        h = next != NULL ? next : h;
    }
    buf_reset(&line);
    if (c->wrap_ttl != NULL &&
        buf_appendf(&line, "X-Vault-Wrap-TTL: %s", c->wrap_ttl) == 0) {
        next = curl_slist_append(h, line.ptr);
        h = next != NULL ? next : h;
    }
    if (has_body) {
        /* Like the Go client: no Content-Type (the server reads JSON). */
        next = curl_slist_append(h, "Content-Type:");
        h = next != NULL ? next : h;
        next = curl_slist_append(h, "Expect:");
        h = next != NULL ? next : h;
    }
    buf_release(&line);
    return h;
}

/* curl copied the token header into its list; wipe that copy too. */
static void wipe_headers(struct curl_slist *h)
{
    for (; h != NULL; h = h->next)
        OPENSSL_cleanse(h->data, strlen(h->data));
}

static void setup_request(struct cli_client *c, const char *method,
                          const char *body, struct cli_http_result *r,
                          char *errbuf)
{
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, r->url.ptr);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, HTTP_TIMEOUT_SECS);
    curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &r->body);
    if (c->ca_cert != NULL)
        curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_cert);
    if (c->skip_verify) {
        curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (body != NULL) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    }
    /* PUT, DELETE and Vault's LIST keep curl's GET/POST machinery. */
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
}

/*
 * Sends one request to /v1/<path>[?query] with an optional JSON body.
 * Returns 0 when the server answered (any status, in r), or COFFER_EIO
 * with the transport error in err. Blocks for up to HTTP_TIMEOUT_SECS.
 */
int cli__request(struct cli_client *c, const char *method, const char *path,
                 const char *query, const char *body, struct cli_http_result *r,
                 struct out *err)
{
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL;
    char *full = NULL, *clean = NULL;
    CURLcode code;
    int rc = 0;

    errbuf[0] = '\0';
    snprintf(r->method, sizeof(r->method), "%s", method);
    /*
     * The Go client builds the URL path with path.Join, which drops a
     * trailing '/' and collapses "//": "sys/mounts/kv/" goes out as
     * /v1/sys/mounts/kv, and the server refuses writes to "x/" paths.
     */
    full = cli__str_concat3("/v1/", path, "");
    clean = path_clean(full);
    if (buf_append_str(&r->url, c->addr) != 0) {
        out_puts(err, "address too long");
        rc = COFFER_EINVAL;
        goto out;
    }
    escape_path(&r->url, clean);
    if (query != NULL && query[0] != '\0') {
        buf_append_str(&r->url, "?");
        buf_append_str(&r->url, query);
    }
    setup_request(c, method, body, r, errbuf);
    headers = request_headers(c, body != NULL);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    code = curl_easy_perform(c->curl);
    if (code != CURLE_OK) {
        transport_error(c, code, errbuf, r, err);
        rc = COFFER_EIO;
        goto out;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
out:
    /* curl keeps pointers to these until the next request: drop them. */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
    wipe_headers(headers);
    curl_slist_free_all(headers);
    free(clean);
    free(full);
    return rc;
}

/*
 * Vault's api.ResponseError text: the request, the status, then each
 * server error as "* msg" (concatenated without separators, as Vault
 * does), or the raw body when it is not an {"errors": [...]} object.
 */
void cli__api_error_text(const struct cli_http_result *r, struct out *err)
{
    const char *body = r->body.ptr != NULL ? r->body.ptr : "";
    cJSON *root = NULL;
    const cJSON *errors = NULL, *it;
    bool raw = true;

    root = cJSON_ParseWithLengthOpts(body, r->body.len, NULL, false);
    if (cJSON_IsObject(root)) {
        errors = cJSON_GetObjectItemCaseSensitive(root, "errors");
        raw = false;
        if (errors != NULL && !cJSON_IsNull(errors)) {
            raw = !cJSON_IsArray(errors);
            cJSON_ArrayForEach(it, errors) {
                if (!cJSON_IsString(it))
                    raw = true;
            }
        }
    }
    out_puts(err, "Error making API request.\n\nURL: ");
    out_puts(err, r->method);
    out_putc(err, ' ');
    out_puts(err, r->url.ptr != NULL ? r->url.ptr : "");
    out_printf(err, "\nCode: %ld. %s:\n\n", r->status,
               raw ? "Raw Message" : "Errors");
    if (raw) {
        out_put(err, body, r->body.len);
    } else if (cJSON_IsArray(errors)) {
        cJSON_ArrayForEach(it, errors) {
            out_puts(err, "* ");
            out_puts(err, it->valuestring);
        }
    }
    json_delete_wiped(root);
}

bool cli__json_is_nullish(const cJSON *v)
{
    return v == NULL || cJSON_IsNull(v);
}

/* True when a response decodes to Go's zero api.Secret (a bare object). */
static bool secret_is_zero(const cJSON *root)
{
    static const char *const ptrs[] = { "data", "warnings", "auth",
                                        "wrap_info" };
    const cJSON *v;
    size_t i;

    for (i = 0; i < ARRAY_LEN(ptrs); i++) {
        if (!cli__json_is_nullish(
                cJSON_GetObjectItemCaseSensitive(root, ptrs[i])))
            return false;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "request_id");
    if (cJSON_IsString(v) && v->valuestring[0] != '\0')
        return false;
    v = cJSON_GetObjectItemCaseSensitive(root, "lease_id");
    if (cJSON_IsString(v) && v->valuestring[0] != '\0')
        return false;
    v = cJSON_GetObjectItemCaseSensitive(root, "lease_duration");
    if (cJSON_IsNumber(v) && v->valuedouble != 0)
        return false;
    return !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "renewable"));
}

/* The Go client's reading of a bare (non-envelope) JSON object. */
static int bare_to_secret(cJSON *root, cJSON **out, struct out *err)
{
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(root, "errors");
    const cJSON *it;
    cJSON *secret;
    bool first = true;

    if (errors != NULL && cJSON_GetArraySize(root) == 1) {
        json_delete_wiped(root);
        return 0; /* only errors: treated as "no value" */
    }
    if (errors != NULL) {
        cJSON_ArrayForEach(it, errors) {
            if (!first)
                out_putc(err, ' ');
            first = false;
            fmt_go_value(err, it);
        }
        json_delete_wiped(root);
        return COFFER_EIO;
    }
    if (root->child == NULL) {
        *out = root;
        return 0;
    }
    secret = cJSON_CreateObject();
    COFFER_ASSERT(secret != NULL);
    cJSON_AddItemToObject(secret, "data", root);
    *out = secret;
    return 0;
}

/*
 * api.ParseSecret: an empty body is no secret (*empty set); a JSON object
 * is the envelope; a bare object is wrapped as {"data": ...}.
 */
static int parse_secret(const struct cli_http_result *r, cJSON **out,
                        bool *empty, struct out *err)
{
    cJSON *root;

    *out = NULL;
    *empty = r->body.len == 0;
    if (*empty)
        return 0;
    root = cJSON_ParseWithLengthOpts(r->body.ptr, r->body.len, NULL, false);
    if (root == NULL) {
        out_puts(err, "invalid character in response: not valid JSON");
        return COFFER_EIO;
    }
    if (!cJSON_IsObject(root)) {
        out_puts(err, "json: cannot unmarshal response into Go value of "
                      "type api.Secret");
        json_delete_wiped(root);
        return COFFER_EIO;
    }
    if (secret_is_zero(root))
        return bare_to_secret(root, out, err);
    *out = root;
    return 0;
}

const char *cli__str_member(const cJSON *obj, const char *key)
{
    return json_get_str(obj, key, "");
}

const char *cli__bool_member(const cJSON *obj, const char *key)
{
    return json_get_bool(obj, key, false) ? "true" : "false";
}

/* len(secret.Warnings) > 0 || len(secret.Data) > 0 */
static bool secret_has_content(const cJSON *s)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(s, "warnings");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "data");

    return (cJSON_IsArray(w) && w->child != NULL) ||
           (cJSON_IsObject(d) && d->child != NULL);
}


/* ====================================================================
 * API calls with the Go client's handling of statuses
 * ==================================================================== */

static int handle_404(const struct cli_http_result *r, enum cli_call_mode mode,
                      cJSON **secret, struct out *err)
{
    cJSON *s = NULL;
    bool empty = false;

    if (parse_secret(r, &s, &empty, err) != 0)
        return COFFER_EIO;
    if (s != NULL && secret_has_content(s)) {
        *secret = s;
        if (mode == CLI_CALL_READ)
            return 0;
        cli__api_error_text(r, err);
        return COFFER_EIO;
    }
    json_delete_wiped(s);
    if (mode == CLI_CALL_READ || empty)
        return 0;
    cli__api_error_text(r, err);
    return COFFER_EIO;
}

static int handle_response(const struct cli_http_result *r,
                           enum cli_call_mode mode, cJSON **secret,
                           struct out *err)
{
    cJSON *root;
    bool empty = false;

    if (r->status == 404 && (mode == CLI_CALL_READ || mode == CLI_CALL_WRITE))
        return handle_404(r, mode, secret, err);
    if (r->status >= 400 || r->status < 200) {
        cli__api_error_text(r, err);
        return COFFER_EIO;
    }
    if (mode != CLI_CALL_BARE)
        return parse_secret(r, secret, &empty, err);
    root = cJSON_ParseWithLengthOpts(r->body.ptr != NULL ? r->body.ptr : "",
                                     r->body.len, NULL, false);
    if (!cJSON_IsObject(root)) {
        json_delete_wiped(root);
        out_puts(err, r->body.len == 0 ? "EOF"
                                       : "invalid character in response: "
                                         "not a JSON object");
        return COFFER_EIO;
    }
    *secret = root;
    return 0;
}

/*
 * Makes one API call. Returns 0 with *secret set to the parsed response
 * (NULL when there is none) or COFFER_EIO with Vault's error text in err;
 * in CLI_CALL_WRITE mode *secret may be set even on error (a 404 carrying
 * data). The caller frees *secret with json_delete_wiped. status, when not
 * NULL, receives the HTTP status (0 if the server never answered).
 */
int cli__api_call(struct cli_client *c, const char *method, const char *path,
                  const char *query, const cJSON *body, enum cli_call_mode mode,
                  cJSON **secret, long *status, struct out *err)
{
    struct cli_http_result r;
    char *text = NULL;
    int rc;

    *secret = NULL;
    cli__http_result_init(&r);
    if (body != NULL) {
        text = cJSON_PrintUnformatted(body);
        COFFER_ASSERT(text != NULL);
    }
    rc = cli__request(c, method, path, query, text, &r, err);
    if (status != NULL)
        *status = r.status;
    if (rc == 0)
        rc = handle_response(&r, mode, secret, err);
    if (text != NULL) {
        OPENSSL_cleanse(text, strlen(text));
        cJSON_free(text);
    }
    cli__http_result_release(&r);
    return rc;
}

/* ====================================================================
 * k=v arguments into a JSON body (Vault's kv-builder)
 * ==================================================================== */

static int read_stdin(bool *stdin_used, struct buf *b, struct out *err)
{
    char chunk[8192];
    size_t n;
    int rc = 0;

    if (*stdin_used) {
        out_puts(err, "stdin already consumed");
        return COFFER_EINVAL;
    }
    *stdin_used = true;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (buf_append(b, chunk, n) != 0) {
            out_puts(err, "stdin: input too large");
            rc = COFFER_ETOOBIG;
            break;
        }
    }
    if (rc == 0 && ferror(stdin)) {
        out_printf(err, "read /dev/stdin: %s", strerror(errno));
        rc = COFFER_EIO;
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    return rc;
}

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsNumber(v))
        return "number";
    return "bool";
}

/* Decodes a JSON object from src and merges its members into obj. */
static int merge_json(cJSON *obj, const struct buf *src, struct out *err)
{
    cJSON *root, *it;

    root = cJSON_ParseWithLengthOpts(src->ptr != NULL ? src->ptr : "",
                                     src->len, NULL, false);
    if (root == NULL) {
        out_puts(err, src->len == 0 ? "EOF" : "invalid JSON input");
        return COFFER_EINVAL;
    }
    if (!cJSON_IsObject(root) && !cJSON_IsNull(root)) {
        out_printf(err, "json: cannot unmarshal %s into Go value of type "
                   "map[string]interface {}", json_type_name(root));
        json_delete_wiped(root);
        return COFFER_EINVAL;
    }
    while (cJSON_IsObject(root) && root->child != NULL) {
        it = cJSON_DetachItemViaPointer(root, root->child);
        cJSON_DeleteItemFromObjectCaseSensitive(obj, it->string);
        cJSON_AddItemToObject(obj, it->string, it);
    }
    json_delete_wiped(root);
    return 0;
}

/* Sets key to value; a repeated key turns the value into a list. */
static void add_value(cJSON *obj, const char *key, const char *value)
{
    cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, key);
    cJSON *list, *item = cJSON_CreateString(value);

    COFFER_ASSERT(item != NULL);
    if (old == NULL) {
        cJSON_AddItemToObject(obj, key, item);
        return;
    }
    if (cJSON_IsArray(old)) {
        cJSON_AddItemToArray(old, item);
        return;
    }
    list = cJSON_CreateArray();
    COFFER_ASSERT(list != NULL);
    cJSON_AddItemToArray(list, cJSON_Duplicate(old, true));
    cJSON_AddItemToArray(list, item);
    /* Replacing in place keeps the key where it was first given. */
    if (old->valuestring != NULL)
        OPENSSL_cleanse(old->valuestring, strlen(old->valuestring));
    cJSON_ReplaceItemInObjectCaseSensitive(obj, key, list);
}

/* The value of "key=value": @file contents, stdin for "-", "\@" escape. */
static int kv_value(bool *stdin_used, const char *value, struct buf *out,
                    struct out *why)
{
    struct out inner;
    int rc = 0;

    if (value[0] == '@') {
        out_init(&inner);
        rc = read_file(value + 1, out, &inner);
        if (rc != 0) {
            out_puts(why, "error reading file: ");
            out_puts(why, inner.b.ptr != NULL ? inner.b.ptr : "");
        }
        out_release(&inner);
        return rc;
    }
    if (value[0] == '\\' && value[1] == '@')
        return buf_append_str(out, value + 1);
    if (strcmp(value, "-") == 0)
        return read_stdin(stdin_used, out, why);
    return buf_append_str(out, value);
}

static int kv_add_one(bool *stdin_used, cJSON *obj, const char *raw,
                      struct out *why)
{
    const char *eq = strchr(raw, '=');
    struct buf val;
    char *key = NULL;
    int rc;

    buf_init(&val, MAX_BODY);
    if (eq == NULL && strcmp(raw, "-") == 0) {
        rc = read_stdin(stdin_used, &val, why);
        if (rc == 0)
            rc = merge_json(obj, &val, why);
        goto out;
    }
    if (eq == NULL && raw[0] == '@') {
        rc = read_file(raw + 1, &val, why);
        if (rc == 0)
            rc = merge_json(obj, &val, why);
        goto out;
    }
    if (eq == NULL) {
        out_puts(why, "format must be key=value");
        rc = COFFER_EINVAL;
        goto out;
    }
    key = xstrndup(raw, (size_t)(eq - raw));
    rc = kv_value(stdin_used, eq + 1, &val, why);
    if (rc == 0)
        add_value(obj, key, val.ptr != NULL ? val.ptr : "");
out:
    free(key);
    buf_release(&val);
    return rc;
}

int cli__args_to_json(const struct strvec *args, size_t from, bool *stdin_used,
                      cJSON **out, struct out *err)
{
    cJSON *obj = NULL;
    struct out why;
    size_t i;
    int rc = 0;

    *out = NULL;
    out_init(&why);
    for (i = from; i < args->n; i++) {
        if (obj == NULL)
            obj = cJSON_CreateObject();
        COFFER_ASSERT(obj != NULL);
        if (args->v[i][0] == '\0')
            continue;
        rc = kv_add_one(stdin_used, obj, args->v[i], &why);
        if (rc != 0) {
            out_printf(err, "invalid key/value pair \"%.200s\": ",
                       args->v[i]);
            out_puts(err, why.b.ptr != NULL ? why.b.ptr : "");
            json_delete_wiped(obj);
            obj = NULL;
            break;
        }
    }
    out_release(&why);
    *out = obj;
    return rc;
}

static void add_param(struct buf *q, const char *key, const cJSON *v)
{
    struct out val;

    out_init(&val);
    fmt_go_value(&val, v);
    if (q->len > 0)
        buf_append_str(q, "&");
    escape_query(q, key);
    buf_append_str(q, "=");
    escape_query(q, val.b.ptr != NULL ? val.b.ptr : "");
    out_release(&val);
}

/*
 * Query parameters from k=v arguments (read and delete), in Go's
 * url.Values.Encode order: keys sorted, a list gives one pair per item.
 */
void cli__json_to_query(const cJSON *obj, struct buf *q)
{
    struct strvec keys;
    const cJSON *v, *it;
    size_t i;

    strvec_init(&keys);
    cJSON_ArrayForEach(it, obj) {
        strvec_push(&keys, it->string);
    }
    strvec_sort(&keys);
    for (i = 0; i < keys.n; i++) {
        v = cJSON_GetObjectItemCaseSensitive(obj, keys.v[i]);
        if (!cJSON_IsArray(v)) {
            add_param(q, keys.v[i], v);
            continue;
        }
        cJSON_ArrayForEach(it, v) {
            add_param(q, keys.v[i], it);
        }
    }
    strvec_release(&keys);
}

/* A one-member JSON body such as {"token": "..."}. */
cJSON *cli__one_member(const char *key, const char *value)
{
    cJSON *b = cJSON_CreateObject();

    COFFER_ASSERT(b != NULL);
    cJSON_AddStringToObject(b, key, value);
    return b;
}
