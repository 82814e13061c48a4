/*
 * lua_http.c - coffer.http: outbound HTTP for plugins, over libcurl.
 *
 * A call runs in four steps, and only the first and the last may raise:
 *
 *   1. read the request table (programming errors raise) and anchor
 *      every string it borrows on the Lua stack;
 *   2. parse and vet the URL: http/https only, no credentials, then the
 *      allowlist (ordinary failures: nil, message);
 *   3. one curl easy handle per hop, performed with no Lua running; a
 *      redirect (only if follow_redirects) is vetted like the first URL
 *      before the next hop: curl itself never follows one;
 *   4. push the response table.
 *
 * Every C resource of a call (curl handles, header lists, the response
 * body) lives in a "coffer.http.call" userdata created before anything is
 * acquired, whose __gc releases it: a raise in step 4 cannot leak.
 *
 * Why an allowlist, and why it is the operator's (SSRF): the URLs plugins
 * call are often data that an administrator wrote through the API (a JWT
 * mount's jwks_url, a Kubernetes mount's kubernetes_host). Whoever can
 * write that configuration could otherwise make the server fetch any
 * address it can reach - cloud metadata endpoints, admin interfaces on
 * loopback, the internal network - with the server's network position.
 * plugin_http_allowed lives in the configuration file, which only the
 * operator controls, so API access alone cannot widen it. Without it every
 * https:// URL is allowed (a warning is logged at start-up) but plain
 * http:// never is: the common metadata endpoints and most internal admin
 * interfaces speak plain HTTP. Entries name hosts, not addresses: the
 * operator's DNS is trusted to resolve them.
 *
 * Time: the Lua instruction hook cannot fire while C runs, so the curl
 * timeouts are the only bound on how long a call holds its worker thread:
 * total = min(timeout, what is left of the request's budget), covering
 * resolving, connecting, TLS, sending and a trickling reply, across every
 * redirect hop. Threads without a budget (lease revocation, the ticker)
 * get the plain timeout.
 *
 * Secrets: TLS material (ca_pem, client_cert_pem, client_key_pem) reaches
 * curl as blobs that point into the Lua strings (CURL_BLOB_NOCOPY): no
 * copy is made here. Header values may hold bearer tokens; the copies
 * curl needs are wiped before they are freed, as is the response body.
 * Error texts name the method, scheme, host, port and path only.
 *
 * Proxies: curl's reading of the environment (https_proxy, no_proxy) is
 * kept, so an operator who must go through a proxy can; the allowlist
 * checks the URL asked for, wherever the bytes travel.
 */
#include "lua_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <openssl/crypto.h>

#include "buf.h"
#include "log.h"
#include "lua_ctx.h"
#include "lua_json.h"
#include "request.h"
#include "util.h"

#define HTTP_CALL_MT "coffer.http.call"
#define HTTP_TIMEOUT_DEFAULT_MS 5000
#define HTTP_CONNECT_TIMEOUT_DEFAULT_MS 2000
#define HTTP_TIMEOUT_MAX_S 60
#define HTTP_MAX_BODY_DEFAULT ((lua_Integer)1024 * 1024)
#define HTTP_MAX_BODY_MAX ((lua_Integer)16 * 1024 * 1024)
#define HTTP_MAX_REDIRECTS 3
#define HTTP_MAX_REQUEST_HEADERS 64
#define HTTP_MAX_RESPONSE_HEADER_BYTES ((size_t)64 * 1024)
#define HTTP_MSG_MAX 512

/* ============================================================ targets == */

/*
 * A parsed URL, as far as the allowlist and the error texts care. Every
 * string is owned (freed by target_release); host is lower case and path
 * has its dot segments removed (curl's parser does that).
 */
struct target {
    char *scheme;
    char *host;
    char *path;
    long port;          /* defaulted by the scheme */
    bool explicit_port; /* written in the URL: shown in messages */
};

static void target_release(struct target *t)
{
    free(t->scheme);
    free(t->host);
    free(t->path);
    memset(t, 0, sizeof(*t));
}

static void ascii_lower(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
    }
}

/* A curl-allocated URL part copied into owned memory (NULL if absent). */
static char *url_part(CURLU *u, CURLUPart what, unsigned int flags)
{
    char *part = NULL;
    char *copy = NULL;

    if (curl_url_get(u, what, &part, flags) == CURLUE_OK && part != NULL)
        copy = xstrdup(part);
    curl_free(part);
    return copy;
}

static bool url_has_part(CURLU *u, CURLUPart what)
{
    char *part = NULL;
    bool has = curl_url_get(u, what, &part, 0) == CURLUE_OK &&
               part != NULL && part[0] != '\0';

    curl_free(part);
    return has;
}

/*
 * Parses url into u (which then holds exactly what curl will request)
 * and t. Returns 0, or COFFER_EINVAL with a static reason in *why that
 * never repeats the URL.
 */
static int target_parse(CURLU *u, const char *url, struct target *t,
                        const char **why)
{
    char *port = NULL;
    int64_t n = 0;

    memset(t, 0, sizeof(*t));
    /* Unknown schemes parse, so the refusal below can say why. */
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) !=
        CURLUE_OK) {
        *why = "not a valid URL";
        return COFFER_EINVAL;
    }
    t->scheme = url_part(u, CURLUPART_SCHEME, 0);
    if (t->scheme == NULL) {
        *why = "not a valid URL";
        return COFFER_EINVAL;
    }
    ascii_lower(t->scheme);
    if (strcmp(t->scheme, "http") != 0 && strcmp(t->scheme, "https") != 0) {
        *why = "only http:// and https:// URLs can be called";
        goto fail;
    }
    if (url_has_part(u, CURLUPART_USER) ||
        url_has_part(u, CURLUPART_PASSWORD) ||
        url_has_part(u, CURLUPART_OPTIONS)) {
        *why = "the URL must not contain credentials (user:password@); "
               "send them in a header";
        goto fail;
    }
    t->host = url_part(u, CURLUPART_HOST, 0);
    port = url_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
    t->path = url_part(u, CURLUPART_PATH, 0);
    if (t->host == NULL || t->host[0] == '\0' || port == NULL ||
        t->path == NULL || int64_parse(port, &n) != 0 || n <= 0 ||
        n > 65535) {
        *why = "not a valid URL";
        goto fail;
    }
    ascii_lower(t->host);
    t->port = (long)n;
    t->explicit_port = url_has_part(u, CURLUPART_PORT);
    free(port);
    return 0;
fail:
    free(port);
    target_release(t);
    return COFFER_EINVAL;
}

/* "scheme://host[:port]/path": what messages show of a URL. */
static void target_display(const struct target *t, char *out, size_t n)
{
    if (t->explicit_port)
        snprintf(out, n, "%s://%s:%ld%s", t->scheme, t->host, t->port,
                 t->path);
    else
        snprintf(out, n, "%s://%s%s", t->scheme, t->host, t->path);
}

/* ========================================================== allowlist == */

/*
 * One entry of plugin_http_allowed. prefix is the path prefix without a
 * trailing '/', "" for "any path on this host".
 */
struct allow_entry {
    char *scheme;
    char *host;
    long port;
    char *prefix;
};

/* Written by lua_http_global_init before threads start; read-only after. */
static struct {
    struct allow_entry *v;
    size_t n;
    bool set; /* plugin_http_allowed was configured (maybe empty) */
} allow;

/* Parses one entry into e (owned strings). 0 or COFFER_EINVAL + why. */
static int allow_parse(const char *entry, struct allow_entry *e,
                       const char **why)
{
    CURLU *u = curl_url();
    struct target t;
    size_t len;
    int rc = COFFER_EINVAL;

    memset(e, 0, sizeof(*e));
    if (u == NULL) {
        *why = "out of memory";
        return COFFER_ENOMEM;
    }
    if (target_parse(u, entry, &t, why) != 0)
        goto out;
    if (url_has_part(u, CURLUPART_QUERY) ||
        url_has_part(u, CURLUPART_FRAGMENT) || strchr(entry, '?') != NULL ||
        strchr(entry, '#') != NULL) {
        *why = "an entry is scheme://host[:port][/path-prefix], without a "
               "query or fragment";
        target_release(&t);
        goto out;
    }
    len = strlen(t.path);
    while (len > 0 && t.path[len - 1] == '/')
        t.path[--len] = '\0';
    e->scheme = t.scheme;
    e->host = t.host;
    e->port = t.port;
    e->prefix = t.path;
    rc = 0;
out:
    curl_url_cleanup(u);
    return rc;
}

static void allow_entry_release(struct allow_entry *e)
{
    free(e->scheme);
    free(e->host);
    free(e->prefix);
}

static void allow_clear(void)
{
    for (size_t i = 0; i < allow.n; i++)
        allow_entry_release(&allow.v[i]);
    free(allow.v);
    memset(&allow, 0, sizeof(allow));
}

/*
 * True if path may hide a segment from a textual prefix check: an encoded
 * '.', '/' or '\' that the far server may decode into "../" after the
 * check, or a raw backslash that some servers treat as '/'.
 */
static bool path_smuggles(const char *path)
{
    for (const char *p = path; *p != '\0'; p++) {
        if (*p == '\\')
            return true;
        if (*p == '%' && p[1] != '\0' && p[2] != '\0') {
            if (p[1] == '2' && (p[2] == 'e' || p[2] == 'E' || p[2] == 'f' ||
                                p[2] == 'F'))
                return true;
            if (p[1] == '5' && (p[2] == 'c' || p[2] == 'C'))
                return true;
        }
    }
    return false;
}

/* The path is the prefix, or continues it at a segment boundary. */
static bool prefix_match(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);

    if (n == 0)
        return true;
    if (strncmp(path, prefix, n) != 0)
        return false;
    if (path[n] != '\0' && path[n] != '/')
        return false;
    return !path_smuggles(path);
}

/*
 * Whether t may be called. Returns NULL, or the reason it may not (a
 * static string for the error text).
 */
static const char *allow_check_target(const struct target *t)
{
    bool host_known = false;

    if (!allow.set)
        return strcmp(t->scheme, "https") == 0
                   ? NULL
                   : "plain http:// is allowed only for URLs listed in "
                     "plugin_http_allowed";
    for (size_t i = 0; i < allow.n; i++) {
        const struct allow_entry *e = &allow.v[i];

        if (strcmp(e->scheme, t->scheme) != 0 ||
            strcmp(e->host, t->host) != 0 || e->port != t->port)
            continue;
        host_known = true;
        if (prefix_match(e->prefix, t->path))
            return NULL;
    }
    return host_known ? "path not in plugin_http_allowed"
                      : "host not in plugin_http_allowed";
}

int lua_http_allow_check(const char *entry, struct errbuf *err)
{
    struct allow_entry e;
    const char *why = NULL;
    int rc;

    rc = allow_parse(entry, &e, &why);
    if (rc != 0)
        errbuf_set(err, "%s", why);
    else
        allow_entry_release(&e);
    return rc;
}

int lua_http_global_init(const struct strvec *allowed, struct errbuf *err)
{
    const char *why = NULL;
    int rc = 0;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        errbuf_set(err, "cannot initialise libcurl");
        return COFFER_EINTERNAL;
    }
    allow_clear();
    if (allowed == NULL) {
        log_warn("plugin_http_allowed is not set: Lua plugins may call any "
                 "https:// URL (plain http:// is refused); list the hosts "
                 "they need in the configuration to restrict them");
        return 0;
    }
    if (allowed->n > LUA_HTTP_ALLOW_MAX) {
        errbuf_set(err, "plugin_http_allowed: more than %d entries",
                   LUA_HTTP_ALLOW_MAX);
        return COFFER_EINVAL;
    }
    allow.set = true;
    allow.v = xcalloc(allowed->n + 1, sizeof(*allow.v));
    for (size_t i = 0; i < allowed->n && rc == 0; i++) {
        rc = allow_parse(allowed->v[i], &allow.v[i], &why);
        if (rc != 0)
            errbuf_set(err, "plugin_http_allowed entry %zu: %s", i + 1, why);
        else
            allow.n++;
    }
    if (rc != 0)
        allow_clear();
    else
        log_info("plugin_http_allowed: Lua plugins may call %zu URL "
                 "prefix(es)", allow.n);
    return rc;
}

void lua_http_global_shutdown(void)
{
    allow_clear();
    curl_global_cleanup();
}

/* ============================================================ options == */

/* What a request table asked for. Strings point into anchored values. */
struct opts {
    const char *method;    /* static, upper case */
    const char *url;
    size_t url_len;
    struct strvec headers; /* "Name: value" lines, owned, wiped */
    bool has_content_type;
    const char *body;      /* NULL = none */
    size_t body_len;
    bool json;             /* body is coffer.json text */
    struct curl_blob ca, cert, key; /* data NULL = not given */
    int64_t timeout_ms;
    int64_t connect_timeout_ms;
    size_t max_body;
    bool follow;
};

static const char *const option_names[] = {
    "method", "url", "headers", "body", "json", "ca_pem", "client_cert_pem",
    "client_key_pem", "timeout", "connect_timeout", "max_body",
    "follow_redirects",
};

static const char *const methods[] = {
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
};

/* Raises unless every key of the table at idx is an option. [-0,+0,v] */
static void check_option_keys(lua_State *L, int idx)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        bool known = false;

        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            for (size_t i = 0; i < ARRAY_LEN(option_names) && !known; i++)
                known = strcmp(lua_tostring(L, -1), option_names[i]) == 0;
        }
        if (!known)
            luaL_error(L, "coffer.http: unknown option %s%s%s",
                       lua_type(L, -1) == LUA_TSTRING ? "'" : "(",
                       lua_type(L, -1) == LUA_TSTRING
                           ? lua_tostring(L, -1)
                           : luaL_typename(L, -1),
                       lua_type(L, -1) == LUA_TSTRING ? "'" : ")");
    }
}

/*
 * Pushes opts[name] (raw: no metamethod runs) and returns its type; the
 * value stays on the stack so strings borrowed from it stay alive.
 * [-0, +1, -]
 */
static int get_option(lua_State *L, int idx, const char *name)
{
    lua_pushstring(L, name);
    return lua_rawget(L, idx);
}

/* An optional string option; NULL if absent. [-0, +1, v] */
static const char *string_option(lua_State *L, int idx, const char *name,
                                 size_t *len)
{
    int type = get_option(L, idx, name);

    if (type == LUA_TNIL)
        return NULL;
    if (type != LUA_TSTRING)
        luaL_error(L, "coffer.http: option '%s' must be a string, not %s",
                   name, luaL_typename(L, -1));
    return lua_tolstring(L, -1, len);
}

/* An optional number of seconds in (0, 60] -> milliseconds. [-0,+0,v] */
static int64_t seconds_option(lua_State *L, int idx, const char *name,
                              int64_t def_ms)
{
    int type = get_option(L, idx, name);
    double s;

    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return def_ms;
    }
    if (type != LUA_TNUMBER)
        luaL_error(L, "coffer.http: option '%s' must be a number of "
                      "seconds, not %s", name, luaL_typename(L, -1));
    s = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(s > 0) || s > HTTP_TIMEOUT_MAX_S)
        luaL_error(L, "coffer.http: option '%s' must be more than 0 and at "
                      "most %d seconds", name, HTTP_TIMEOUT_MAX_S);
    return s * 1000 < 1 ? 1 : (int64_t)(s * 1000);
}

static const char *method_option(lua_State *L, int idx)
{
    const char *m = string_option(L, idx, "method", NULL);

    if (m == NULL)
        return "GET";
    for (size_t i = 0; i < ARRAY_LEN(methods); i++) {
        if (strcasecmp(m, methods[i]) == 0)
            return methods[i];
    }
    luaL_error(L, "coffer.http: method '%s' is not one of GET, POST, PUT, "
                  "PATCH, DELETE, HEAD", m);
    return NULL;
}

/* RFC 9110 token characters: what a header name may hold. */
static bool is_token(const char *s, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || (c != '\0' && strchr(extra, c))))
            return false;
    }
    return true;
}

/* A value may not end the header line early or hide a NUL. */
static bool value_is_safe(const char *s, size_t len)
{
    return memchr(s, '\r', len) == NULL && memchr(s, '\n', len) == NULL &&
           memchr(s, '\0', len) == NULL;
}

/*
 * Reads opts.headers into o->headers. Bad names, and headers curl must
 * compute itself, raise; a value with CR, LF or NUL (often data from
 * outside) gives *bad, the name of the offending header, so the caller
 * can return nil, message. [-0, +1, v]
 */
static void headers_option(lua_State *L, int idx, struct opts *o,
                           char *bad, size_t bad_len)
{
    int type = get_option(L, idx, "headers");
    int t = lua_gettop(L);
    size_t count = 0;

    if (type == LUA_TNIL)
        return;
    if (type != LUA_TTABLE)
        luaL_error(L, "coffer.http: option 'headers' must be a table of "
                      "name = value strings, not %s", luaL_typename(L, -1));
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        size_t nlen = 0, vlen = 0;
        const char *name, *value;
        struct buf line;

        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "coffer.http: headers must map strings to "
                          "strings");
        name = lua_tolstring(L, -2, &nlen);
        value = lua_tolstring(L, -1, &vlen);
        if (!is_token(name, nlen))
            luaL_error(L, "coffer.http: invalid header name '%s'", name);
        if (strcasecmp(name, "content-length") == 0 ||
            strcasecmp(name, "transfer-encoding") == 0)
            luaL_error(L, "coffer.http: header '%s' is set by coffer.http "
                          "itself", name);
        if (++count > HTTP_MAX_REQUEST_HEADERS)
            luaL_error(L, "coffer.http: more than %d headers",
                       HTTP_MAX_REQUEST_HEADERS);
        if (!value_is_safe(value, vlen) && bad[0] == '\0')
            snprintf(bad, bad_len, "%s", name);
        if (strcasecmp(name, "content-type") == 0)
            o->has_content_type = true;
        /* "Name;" is curl's way to send a header with an empty value. */
        buf_init(&line, BUF_MAX_DEFAULT);
        if (buf_append(&line, name, nlen) != 0 ||
            buf_append(&line, vlen > 0 ? ": " : ";", vlen > 0 ? 2 : 1) != 0 ||
            buf_append(&line, value, vlen) != 0)
            luaL_error(L, "coffer.http: header too large");
        strvec_push_owned(&o->headers, buf_detach(&line, NULL));
        lua_pop(L, 1);
    }
}

/* A PEM option as a no-copy blob into the anchored string. [-0,+1,v] */
static void pem_option(lua_State *L, int idx, const char *name,
                       struct curl_blob *blob)
{
    size_t len = 0;
    const char *pem = string_option(L, idx, name, &len);

    blob->data = (void *)pem;
    blob->len = len;
    blob->flags = CURL_BLOB_NOCOPY;
    if (pem != NULL && len == 0)
        luaL_error(L, "coffer.http: option '%s' is empty", name);
}

static size_t max_body_option(lua_State *L, int idx)
{
    int type = get_option(L, idx, "max_body");
    lua_Integer n;
    int isnum = 0;

    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return (size_t)HTTP_MAX_BODY_DEFAULT;
    }
    n = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (type != LUA_TNUMBER || !isnum || n < 1 || n > HTTP_MAX_BODY_MAX)
        luaL_error(L, "coffer.http: option 'max_body' must be an integer "
                      "from 1 to %d bytes", (int)HTTP_MAX_BODY_MAX);
    return (size_t)n;
}

/*
 * Reads the request table at idx into o. Raises on misuse. Values stay
 * on the stack above idx (the caller keeps them until the call ends).
 * [-0, +n, v]
 */
static void read_options(lua_State *L, int idx, struct opts *o,
                         struct lua_json_box *jbox, char *bad,
                         size_t bad_len)
{
    int type;

    check_option_keys(L, idx);
    o->method = method_option(L, idx);
    o->url = string_option(L, idx, "url", &o->url_len);
    if (o->url == NULL)
        luaL_error(L, "coffer.http: option 'url' is required");
    headers_option(L, idx, o, bad, bad_len);
    o->body = string_option(L, idx, "body", &o->body_len);
    type = get_option(L, idx, "json");
    if (type != LUA_TNIL) {
        if (o->body != NULL)
            luaL_error(L, "coffer.http: give 'body' or 'json', not both");
        lua_json_encode(L, lua_gettop(L), jbox);
        o->body = jbox->text;
        o->body_len = jbox->text_len;
        o->json = true;
    }
    if (o->body != NULL && strcmp(o->method, "HEAD") == 0)
        luaL_error(L, "coffer.http: a HEAD request has no body");
    pem_option(L, idx, "ca_pem", &o->ca);
    pem_option(L, idx, "client_cert_pem", &o->cert);
    pem_option(L, idx, "client_key_pem", &o->key);
    if ((o->cert.data == NULL) != (o->key.data == NULL))
        luaL_error(L, "coffer.http: give both client_cert_pem and "
                      "client_key_pem, or neither");
    o->timeout_ms = seconds_option(L, idx, "timeout", HTTP_TIMEOUT_DEFAULT_MS);
    o->connect_timeout_ms = seconds_option(L, idx, "connect_timeout",
                                           HTTP_CONNECT_TIMEOUT_DEFAULT_MS);
    o->max_body = max_body_option(L, idx);
    type = get_option(L, idx, "follow_redirects");
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        luaL_error(L, "coffer.http: option 'follow_redirects' must be a "
                      "boolean");
    o->follow = lua_toboolean(L, -1) != 0;
}

/* =============================================================== call == */

/*
 * The C side of one call, owned by a userdata (HTTP_CALL_MT) so a raise
 * releases it through __gc.
 */
struct call {
    struct opts o;
    CURL *easy;                  /* the running hop's handle */
    CURLU *url;                  /* the running hop's URL */
    struct curl_slist *headers;  /* the running hop's header lines */
    struct target first;         /* the URL as given: error texts */
    struct target cur;           /* the running hop's URL */
    struct buf body;             /* response body, max_body ceiling */
    struct strvec hnames;        /* response headers, lower-case names */
    struct strvec hvalues;
    size_t header_bytes;
    bool oversize;               /* body passed max_body */
    bool headers_oversize;
    bool live;                   /* released already? */
    char curl_err[CURL_ERROR_SIZE];
    char msg[HTTP_MSG_MAX];      /* the reason of a failure */
};

/* Wipes header lines before curl frees them: they may hold tokens. */
static void slist_free_wiped(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p != NULL; p = p->next)
        OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

static void strvec_release_wiped(struct strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        OPENSSL_cleanse(sv->v[i], strlen(sv->v[i]));
    strvec_release(sv);
}

/* Ends the running hop: frees its handle, URL and header lines. */
static void hop_release(struct call *c)
{
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    c->easy = NULL;
    slist_free_wiped(c->headers);
    c->headers = NULL;
}

static void response_reset(struct call *c)
{
    buf_release(&c->body);
    strvec_release_wiped(&c->hnames);
    strvec_release_wiped(&c->hvalues);
    c->header_bytes = 0;
    c->oversize = false;
    c->headers_oversize = false;
}

static void call_release(struct call *c)
{
    if (!c->live)
        return;
    hop_release(c);
    curl_url_cleanup(c->url);
    c->url = NULL;
    target_release(&c->first);
    target_release(&c->cur);
    response_reset(c);
    strvec_release_wiped(&c->o.headers);
    c->live = false;
}

static int l_http_call_gc(lua_State *L)
{
    call_release(luaL_checkudata(L, 1, HTTP_CALL_MT));
    return 0;
}

/* Pushes a new, empty call. [-0, +1, m] */
static struct call *call_new(lua_State *L)
{
    struct call *c = lua_newuserdatauv(L, sizeof(*c), 0);

    memset(c, 0, sizeof(*c));
    strvec_init(&c->o.headers);
    strvec_init(&c->hnames);
    strvec_init(&c->hvalues);
    buf_init(&c->body, 1);
    c->live = true;
    luaL_setmetatable(L, HTTP_CALL_MT);
    return c;
}

/* --------------------------------------------------- curl callbacks -- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    size_t len = size * n;

    if (buf_append(&c->body, data, len) != 0) {
        c->oversize = true;
        return 0; /* curl aborts with CURLE_WRITE_ERROR */
    }
    return len;
}

/* Appends a folded continuation line to the last header's value. */
static void header_continue(struct call *c, const char *s, size_t len)
{
    size_t i = c->hvalues.n - 1;
    size_t old = strlen(c->hvalues.v[i]);
    char *v = xmalloc(old + 1 + len + 1);

    memcpy(v, c->hvalues.v[i], old);
    v[old] = ' ';
    memcpy(v + old + 1, s, len);
    v[old + 1 + len] = '\0';
    secure_free_str(c->hvalues.v[i]);
    c->hvalues.v[i] = v;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    struct call *c = ud;
    size_t len = size * n;
    const char *colon;
    char *name;
    size_t nlen, vstart;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue): forget the last one. */
        strvec_release_wiped(&c->hnames);
        strvec_release_wiped(&c->hvalues);
        c->header_bytes = 0;
        return len;
    }
    c->header_bytes += len;
    if (c->header_bytes > HTTP_MAX_RESPONSE_HEADER_BYTES) {
        c->headers_oversize = true;
        return 0;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len == 0)
        return size * n;
    if ((data[0] == ' ' || data[0] == '\t') && c->hvalues.n > 0) {
        while (len > 0 && (data[0] == ' ' || data[0] == '\t')) {
            data++;
            len--;
        }
        header_continue(c, data, len);
        return size * n;
    }
    colon = memchr(data, ':', len);
    if (colon == NULL || colon == data)
        return size * n;
    nlen = (size_t)(colon - data);
    vstart = nlen + 1;
    while (vstart < len && (data[vstart] == ' ' || data[vstart] == '\t'))
        vstart++;
    while (len > vstart && (data[len - 1] == ' ' || data[len - 1] == '\t'))
        len--;
    name = xstrndup(data, nlen);
    ascii_lower(name);
    strvec_push_owned(&c->hnames, name);
    strvec_push_owned(&c->hvalues, xstrndup(data + vstart, len - vstart));
    return size * n;
}

/* ------------------------------------------------------------- hops -- */

/* One hop's request line and body. */
struct hop {
    const char *method;
    bool send_body;
    bool same_origin; /* credentials in headers may go along */
    int64_t timeout_ms; /* this hop's: what is left of total_ms */
    int64_t total_ms;   /* the whole call's */
    bool by_budget;     /* total_ms is what the request budget left */
};

static bool is_credential_header(const char *line)
{
    static const char *const names[] = {
        "authorization:", "authorization;", "proxy-authorization:",
        "proxy-authorization;", "cookie:", "cookie;",
    };

    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (strncasecmp(line, names[i], strlen(names[i])) == 0)
            return true;
    }
    return false;
}

/*
 * The hop's header lines. Credentials go to the origin they were meant
 * for only (Go's net/http does the same on redirects). curl's own
 * defaults are switched off where they would surprise: "Expect:
 * 100-continue" stalls a second on servers that ignore it, and a raw body
 * is not a form unless the plugin says so.
 */
static struct curl_slist *hop_headers(const struct call *c,
                                      const struct hop *h)
{
    struct curl_slist *l = NULL, *next;
    const char *extra[3] = {"Expect:", NULL, NULL};

    for (size_t i = 0; i < c->o.headers.n; i++) {
        if (!h->same_origin && is_credential_header(c->o.headers.v[i]))
            continue;
        next = curl_slist_append(l, c->o.headers.v[i]);
        if (next == NULL)
            goto oom;
        l = next;
    }
    if (h->send_body && !c->o.has_content_type)
        extra[1] = c->o.json ? "Content-Type: application/json"
                             : "Content-Type:";
    for (size_t i = 0; i < ARRAY_LEN(extra) && extra[i] != NULL; i++) {
        next = curl_slist_append(l, extra[i]);
        if (next == NULL)
            goto oom;
        l = next;
    }
    return l;
oom:
    slist_free_wiped(l);
    return NULL;
}

/* How the method and body are sent. */
static CURLcode set_method(CURL *e, const struct call *c,
                           const struct hop *h)
{
    CURLcode rc = CURLE_OK;
    const char *body = c->o.body != NULL ? c->o.body : "";
    size_t len = c->o.body != NULL ? c->o.body_len : 0;
    bool wants_length = strcmp(h->method, "POST") == 0 ||
                        strcmp(h->method, "PUT") == 0 ||
                        strcmp(h->method, "PATCH") == 0;

    if (strcmp(h->method, "HEAD") == 0)
        return curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (!h->send_body && !wants_length)
        rc = strcmp(h->method, "GET") == 0
                 ? curl_easy_setopt(e, CURLOPT_HTTPGET, 1L)
                 : curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, h->method);
    else {
        if (!h->send_body) {
            body = "";
            len = 0;
        }
        /* POSTFIELDS does not copy: the body stays in its Lua string. */
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                                  (curl_off_t)len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        if (rc == CURLE_OK && strcmp(h->method, "POST") != 0)
            rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, h->method);
    }
    return rc;
}

/* TLS: verification always on; the plugin's CA bundle replaces the
 * system's (CAINFO and CAPATH cleared, or curl would trust both). */
static CURLcode set_tls(CURL *e, const struct call *c)
{
    CURLcode rc = CURLE_OK;

    rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_SSLVERSION,
                              (long)CURL_SSLVERSION_TLSv1_2);
    if (rc == CURLE_OK && c->o.ca.data != NULL) {
        rc = curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &c->o.ca);
    }
    if (rc == CURLE_OK && c->o.cert.data != NULL) {
        rc = curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &c->o.cert);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &c->o.key);
    }
    return rc;
}

/* Everything that does not depend on the hop's method or TLS. */
static CURLcode set_common(CURL *e, struct call *c, const struct hop *h)
{
    int64_t connect_ms = c->o.connect_timeout_ms < h->timeout_ms
                             ? c->o.connect_timeout_ms
                             : h->timeout_ms;
    CURLcode rc;

    rc = curl_easy_setopt(e, CURLOPT_CURLU, c->url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                              (curl_off_t)c->o.max_body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                              (long)CURL_HTTP_VERSION_1_1);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_USERAGENT, "Coffer/" COFFER_VERSION);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->curl_err);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    return rc;
}

/*
 * Performs one hop on c->url. Blocks for at most h->timeout_ms. The
 * handle stays in c->easy for the caller to read, then hop_release.
 */
static CURLcode hop_perform(struct call *c, const struct hop *h)
{
    CURLcode rc;

    response_reset(c);
    buf_init(&c->body, c->o.max_body);
    c->curl_err[0] = '\0';
    c->easy = curl_easy_init();
    if (c->easy == NULL)
        return CURLE_OUT_OF_MEMORY;
    c->headers = hop_headers(c, h);
    if (c->headers == NULL)
        return CURLE_OUT_OF_MEMORY;
    rc = set_common(c->easy, c, h);
    if (rc == CURLE_OK)
        rc = set_tls(c->easy, c);
    if (rc == CURLE_OK)
        rc = set_method(c->easy, c, h);
    if (rc == CURLE_OK)
        rc = curl_easy_perform(c->easy);
    return rc;
}

/* ----------------------------------------------------------- reasons -- */

/* "5 s", "2.5 s". */
static void format_seconds(int64_t ms, char *out, size_t n)
{
    if (ms % 1000 == 0)
        snprintf(out, n, "%lld s", (long long)(ms / 1000));
    else
        snprintf(out, n, "%.1f s", (double)ms / 1000.0);
}

/*
 * curl's own words, unless they might quote the URL (a query string can
 * carry secrets); trailing newline removed.
 */
static const char *curl_detail(struct call *c, CURLcode rc)
{
    size_t n = strlen(c->curl_err);

    while (n > 0 && (c->curl_err[n - 1] == '\n' || c->curl_err[n - 1] == '\r'))
        c->curl_err[--n] = '\0';
    if (n == 0 || strchr(c->curl_err, '?') != NULL)
        return curl_easy_strerror(rc);
    return c->curl_err;
}

/* Why a hop failed, in words a plugin author can act on, into c->msg. */
static void describe_failure(struct call *c, CURLcode rc,
                             const struct hop *h)
{
    curl_off_t connect_us = 0;
    long os_errno = 0;
    char secs[32], sys[128];

    if (c->easy != NULL) {
        curl_easy_getinfo(c->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &os_errno);
    }
    if (c->oversize || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(c->msg, sizeof(c->msg), "response larger than %zu bytes",
                 c->o.max_body);
        return;
    }
    if (c->headers_oversize) {
        snprintf(c->msg, sizeof(c->msg), "response headers larger than "
                 "%zu bytes", HTTP_MAX_RESPONSE_HEADER_BYTES);
        return;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        if (connect_us == 0 && c->o.connect_timeout_ms < h->timeout_ms) {
            format_seconds(c->o.connect_timeout_ms, secs, sizeof(secs));
            snprintf(c->msg, sizeof(c->msg), "could not connect within %s",
                     secs);
        } else {
            format_seconds(h->total_ms, secs, sizeof(secs));
            snprintf(c->msg, sizeof(c->msg), "timed out after %s%s", secs,
                     h->by_budget ? " (what was left of the request's "
                                    "max_request_duration or the script's "
                                    "time limit)" : "");
        }
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(c->msg, sizeof(c->msg), "could not resolve the host name");
        return;
    case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED)
            snprintf(c->msg, sizeof(c->msg), "connection refused");
        else
            snprintf(c->msg, sizeof(c->msg), "could not connect: %s",
                     os_errno != 0
                         ? strerror_r((int)os_errno, sys, sizeof(sys))
                         : curl_detail(c, rc));
        return;
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(c->msg, sizeof(c->msg), "TLS certificate verification "
                 "failed: %s", curl_detail(c, rc));
        return;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(c->msg, sizeof(c->msg), "ca_pem holds no usable CA "
                 "certificate: %s", curl_detail(c, rc));
        return;
    case CURLE_SSL_CERTPROBLEM:
        snprintf(c->msg, sizeof(c->msg), "client_cert_pem or client_key_pem "
                 "cannot be used: %s", curl_detail(c, rc));
        return;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CIPHER:
        snprintf(c->msg, sizeof(c->msg), "TLS handshake failed: %s",
                 curl_detail(c, rc));
        return;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        snprintf(c->msg, sizeof(c->msg), "the connection failed: %s",
                 curl_detail(c, rc));
        return;
    case CURLE_GOT_NOTHING:
        snprintf(c->msg, sizeof(c->msg), "the server closed the connection "
                 "without answering");
        return;
    case CURLE_WEIRD_SERVER_REPLY:
        snprintf(c->msg, sizeof(c->msg), "the server's answer is not HTTP");
        return;
    default:
        snprintf(c->msg, sizeof(c->msg), "%s (%s)", curl_easy_strerror(rc),
                 curl_detail(c, rc));
        return;
    }
}

/* ---------------------------------------------------------- redirects -- */

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 ||
           status == 307 || status == 308;
}

static bool same_origin(const struct target *a, const struct target *b)
{
    return strcmp(a->scheme, b->scheme) == 0 &&
           strcmp(a->host, b->host) == 0 && a->port == b->port;
}

/*
 * Moves c to the redirect target location (absolute, as curl resolved
 * it): parses and vets it like the first URL. Returns 0, or -1 with the
 * reason in c->msg.
 */
static int follow_to(struct call *c, const char *location)
{
    const char *why = NULL;
    char shown[256];
    CURLU *u = curl_url();

    if (u == NULL) {
        snprintf(c->msg, sizeof(c->msg), "out of memory");
        return -1;
    }
    target_release(&c->cur);
    if (target_parse(u, location, &c->cur, &why) != 0) {
        curl_url_cleanup(u);
        snprintf(c->msg, sizeof(c->msg), "redirected to a URL that cannot "
                 "be called: %s", why);
        return -1;
    }
    why = allow_check_target(&c->cur);
    if (why != NULL) {
        target_display(&c->cur, shown, sizeof(shown));
        curl_url_cleanup(u);
        snprintf(c->msg, sizeof(c->msg), "redirect to %s refused: %s",
                 shown, why);
        return -1;
    }
    curl_url_cleanup(c->url);
    c->url = u;
    return 0;
}

/*
 * The method of the next hop (RFC 9110 15.4, as browsers and Go do): 303
 * turns anything but HEAD into GET, and so do 301/302 for POST; 307/308
 * repeat the request as it was.
 */
static void next_method(struct hop *h, long status)
{
    if ((status == 303 && strcmp(h->method, "HEAD") != 0) ||
        ((status == 301 || status == 302) &&
         strcmp(h->method, "POST") == 0)) {
        h->method = "GET";
        h->send_body = false;
    }
}

/* ----------------------------------------------------------- the call -- */

/*
 * Runs every hop. Returns the final status, or -1 with the reason in
 * c->msg. Never raises; blocks for at most total_ms.
 */
static long run_hops(struct call *c, int64_t total_ms, bool by_budget)
{
    struct hop h = {c->o.method, c->o.body != NULL, true, total_ms,
                    total_ms, by_budget};
    double deadline = time_mono() + (double)total_ms / 1000.0;
    char *location = NULL;
    long status = -1;
    CURLcode rc;

    for (int hop = 0;; hop++) {
        char *redirect = NULL;

        h.same_origin = same_origin(&c->first, &c->cur);
        h.timeout_ms = (int64_t)((deadline - time_mono()) * 1000.0);
        if (h.timeout_ms < 1) {
            char secs[32];

            format_seconds(total_ms, secs, sizeof(secs));
            snprintf(c->msg, sizeof(c->msg), "timed out after %s", secs);
            status = -1;
            break;
        }
        rc = hop_perform(c, &h);
        if (rc != CURLE_OK) {
            describe_failure(c, rc, &h);
            status = -1;
            break;
        }
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c->easy, CURLINFO_REDIRECT_URL, &redirect);
        if (!c->o.follow || !is_redirect(status) || redirect == NULL)
            break;
        if (hop == HTTP_MAX_REDIRECTS) {
            snprintf(c->msg, sizeof(c->msg), "more than %d redirects",
                     HTTP_MAX_REDIRECTS);
            status = -1;
            break;
        }
        free(location);
        location = xstrdup(redirect);
        hop_release(c);
        if (follow_to(c, location) != 0) {
            status = -1;
            break;
        }
        next_method(&h, status);
    }
    hop_release(c);
    free(location);
    return status;
}

/* Pushes the response table. [-0, +1, m] */
static void push_response(lua_State *L, struct call *c, long status)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, (int)c->hnames.n);
    for (size_t i = 0; i < c->hnames.n; i++) {
        /* Repeated headers are joined as RFC 9110 5.3 allows. */
        if (lua_getfield(L, -1, c->hnames.v[i]) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, c->hvalues.v[i]);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, c->hvalues.v[i]);
        }
        lua_setfield(L, -2, c->hnames.v[i]);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, c->body.ptr != NULL ? c->body.ptr : "", c->body.len);
    lua_setfield(L, -2, "body");
}

/* nil, "http: METHOD URL: reason". [-0, +2, m] */
static int push_failure(lua_State *L, const struct call *c,
                        const char *reason)
{
    char shown[256];

    if (c->first.scheme != NULL)
        target_display(&c->first, shown, sizeof(shown));
    else
        snprintf(shown, sizeof(shown), "(invalid URL)");
    lua_pushnil(L);
    lua_pushfstring(L, "http: %s %s: %s", c->o.method, shown, reason);
    return 2;
}

/*
 * The total time a call may take: its timeout, or what is left of the
 * request's budget or of the Lua call's deadline if that is less (0 when
 * it is spent). Lease revocation workers have no request budget but do
 * have the call timeout.
 */
static int64_t call_budget_ms(lua_State *L, int64_t timeout_ms,
                              bool *by_budget)
{
    int64_t left = request_budget_left_ms();
    int64_t call_left = lua_ctx_call_left_ms(L);

    if (call_left >= 0 && (left < 0 || call_left < left))
        left = call_left;

    *by_budget = left >= 0 && left < timeout_ms;
    return *by_budget ? left : timeout_ms;
}

/*
 * Steps 2 and 3 of a call; pushes its results. bad_header names a header
 * whose value was refused, or is "". [-0, +(1|2), m]
 */
static int call_run(lua_State *L, struct call *c, const char *bad_header)
{
    const char *why = NULL;
    bool by_budget = false;
    char reason[200];
    int64_t total_ms;
    long status;

    c->url = curl_url();
    if (c->url == NULL)
        return luaL_error(L, "coffer.http: out of memory");
    if (strlen(c->o.url) != c->o.url_len)
        return push_failure(L, c, "not a valid URL");
    if (target_parse(c->url, c->o.url, &c->first, &why) != 0 ||
        target_parse(c->url, c->o.url, &c->cur, &why) != 0)
        return push_failure(L, c, why);
    if (bad_header[0] != '\0') {
        snprintf(reason, sizeof(reason), "the value of header '%s' "
                 "contains CR, LF or NUL", bad_header);
        return push_failure(L, c, reason);
    }
    why = allow_check_target(&c->first);
    if (why != NULL)
        return push_failure(L, c, why);
    total_ms = call_budget_ms(L, c->o.timeout_ms, &by_budget);
    if (total_ms <= 0)
        return push_failure(L, c, "the request's max_request_duration or "
                                  "the script's time limit is spent");
    status = run_hops(c, total_ms, by_budget);
    if (status < 0) {
        log_debug("http: %s %s://%s%s failed: %s", c->o.method,
                  c->first.scheme, c->first.host, c->first.path, c->msg);
        return push_failure(L, c, c->msg);
    }
    push_response(L, c, status);
    return 1;
}

/* coffer.http.request(opts) -> resp | nil, err. [-0, +(1|2), e] */
static int l_http_request(lua_State *L)
{
    struct lua_json_box *jbox;
    struct call *c;
    char bad[128] = "";
    int n;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    c = call_new(L);                /* 2 */
    jbox = lua_json_box_new(L);     /* 3 */
    read_options(L, 1, &c->o, jbox, bad, sizeof(bad));
    n = call_run(L, c, bad);
    /* Results are at the top; release now rather than at collection. */
    call_release(c);
    lua_json_box_release(jbox);
    return n;
}

/* ------------------------------------------------------------- sugar -- */

/*
 * Copies the options table at opts_idx (if any) into the new table at t,
 * refusing the keys the sugar's arguments give. [-0, +0, v]
 */
static void copy_sugar_opts(lua_State *L, const char *fn, int opts_idx,
                            int t, bool has_body)
{
    if (lua_isnoneornil(L, opts_idx))
        return;
    luaL_checktype(L, opts_idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, opts_idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);

            if (strcmp(k, "method") == 0 || strcmp(k, "url") == 0 ||
                (has_body && (strcmp(k, "body") == 0 ||
                              strcmp(k, "json") == 0)))
                luaL_error(L, "coffer.http.%s: '%s' is an argument here, "
                              "not an option", fn, k);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, t);
    }
}

/*
 * A sugar call: fn(url, [body,] opts) -> request{method =, url =,
 * body =, ...opts}. body_idx 0 = this method takes no body argument.
 * [-0, +(1|2), e]
 */
static int sugar(lua_State *L, const char *fn, const char *method,
                 int body_idx, int opts_idx)
{
    bool has_body = body_idx != 0 && !lua_isnoneornil(L, body_idx);
    int t;

    luaL_checkstring(L, 1);
    if (has_body)
        luaL_checkstring(L, body_idx);
    lua_settop(L, opts_idx);
    lua_newtable(L);
    t = lua_gettop(L);
    copy_sugar_opts(L, fn, opts_idx, t, has_body);
    lua_pushstring(L, method);
    lua_setfield(L, t, "method");
    lua_pushvalue(L, 1);
    lua_setfield(L, t, "url");
    if (has_body) {
        lua_pushvalue(L, body_idx);
        lua_setfield(L, t, "body");
    }
    lua_replace(L, 1);
    lua_settop(L, 1);
    return l_http_request(L);
}

/* coffer.http.get(url, opts) [-0, +(1|2), e] */
static int l_http_get(lua_State *L)
{
    return sugar(L, "get", "GET", 0, 2);
}

/* coffer.http.post(url, body_or_nil, opts) [-0, +(1|2), e] */
static int l_http_post(lua_State *L)
{
    return sugar(L, "post", "POST", 2, 3);
}

/* coffer.http.put(url, body_or_nil, opts) [-0, +(1|2), e] */
static int l_http_put(lua_State *L)
{
    return sugar(L, "put", "PUT", 2, 3);
}

/* coffer.http.delete(url, opts) [-0, +(1|2), e] */
static int l_http_delete(lua_State *L)
{
    return sugar(L, "delete", "DELETE", 0, 2);
}

void lua_http_open(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"request", l_http_request},
        {"get", l_http_get},
        {"post", l_http_post},
        {"put", l_http_put},
        {"delete", l_http_delete},
        {NULL, NULL},
    };

    if (luaL_newmetatable(L, HTTP_CALL_MT)) {
        lua_pushcfunction(L, l_http_call_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "locked");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "http");
}
