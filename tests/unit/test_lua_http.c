/*
 * test_lua_http.c - coffer.http: the allowlist (entries and matching,
 * table-driven), URL refusals, option validation (what raises and what
 * returns nil, message), timeouts against a listener that never answers,
 * the request budget cap, and the configuration key.
 *
 * Network use is loopback only: a port nobody listens on, and a socket
 * that listens but never accepts (the kernel completes the handshake, so
 * curl connects and then waits for an answer that never comes).
 */
#include "../../src/lua_http.c"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lualib.h>

#include "config.h"
#include "lua_api.h"

#include "harness.h"

/* ======================================================== allowlist == */

static const struct {
    const char *entry;
    bool ok;
} entries[] = {
    {"https://kubernetes.default.svc", true},
    {"http://127.0.0.1:8099", true},
    {"https://token.actions.githubusercontent.com/", true},
    {"https://h.example/api/v1/", true},
    {"HTTPS://UPPER.example:8443/x", true},
    {"https://[::1]:8443", true},
    {"ftp://h.example", false},
    {"file:///etc/passwd", false},
    {"gopher://h.example", false},
    {"https://user:pw@h.example", false},
    {"https://user@h.example", false},
    {"https://h.example/p?q=1", false},
    {"https://h.example/p#frag", false},
    {"https://h.example:99999", false},
    {"not a url", false},
    {"h.example", false},
    {"", false},
    {"https://", false},
};

TEST(allow_entries)
{
    for (size_t i = 0; i < ARRAY_LEN(entries); i++) {
        struct errbuf err = {{0}};
        int rc = lua_http_allow_check(entries[i].entry, &err);

        if ((rc == 0) != entries[i].ok)
            harness_fail(__FILE__, __LINE__, "entry \"%s\": rc %d (%s)",
                         entries[i].entry, rc, err.msg);
        if (rc != 0 && strstr(err.msg, "pw") != NULL)
            harness_fail(__FILE__, __LINE__, "entry \"%s\": message "
                         "repeats the password: %s", entries[i].entry,
                         err.msg);
    }
}

#define ANY NULL
#define HOST "host not in plugin_http_allowed"
#define PATH "path not in plugin_http_allowed"
#define PLAIN "plain http:// is allowed only for URLs listed in " \
              "plugin_http_allowed"

static const char *const list_k8s[] = {
    "https://kubernetes.default.svc", "http://127.0.0.1:8099",
    "https://h.example/api/v1/", "https://Mixed.Example:8443", NULL,
};
static const char *const list_empty[] = {NULL};

static const struct {
    const char *const *list; /* NULL = not configured */
    const char *url;
    const char *want;        /* NULL = allowed, else the reason */
} matches[] = {
    /* Not configured: https anywhere, plain http nowhere. */
    {NULL, "https://anything.example/x?y", ANY},
    {NULL, "http://anything.example/x", PLAIN},
    {NULL, "http://169.254.169.254/latest/meta-data/", PLAIN},
    /* Configured but empty: nothing at all. */
    {list_empty, "https://anything.example/", HOST},
    {list_empty, "http://127.0.0.1:8099/", HOST},
    /* Host, case, default ports. */
    {list_k8s, "https://kubernetes.default.svc/apis/x", ANY},
    {list_k8s, "https://KUBERNETES.default.SVC/apis/x", ANY},
    {list_k8s, "https://kubernetes.default.svc:443/", ANY},
    {list_k8s, "https://kubernetes.default.svc:6443/", HOST},
    {list_k8s, "http://kubernetes.default.svc/", HOST},
    {list_k8s, "https://kubernetes.default.svc.evil.example/", HOST},
    {list_k8s, "https://evil.example/kubernetes.default.svc", HOST},
    {list_k8s, "https://mixed.example:8443/", ANY},
    {list_k8s, "https://mixed.example/", HOST},
    /* Plain http only as listed, port included. */
    {list_k8s, "http://127.0.0.1:8099/jwks?x=1", ANY},
    {list_k8s, "http://127.0.0.1:8098/jwks", HOST},
    {list_k8s, "https://127.0.0.1:8099/jwks", HOST},
    {list_k8s, "http://localhost:8099/jwks", HOST},
    /* Path prefixes end at a segment boundary. */
    {list_k8s, "https://h.example/api/v1", ANY},
    {list_k8s, "https://h.example/api/v1/", ANY},
    {list_k8s, "https://h.example/api/v1/keys", ANY},
    {list_k8s, "https://h.example/api/v1x", PATH},
    {list_k8s, "https://h.example/api/v2/keys", PATH},
    {list_k8s, "https://h.example/", PATH},
    /* Dot segments are resolved before the check... */
    {list_k8s, "https://h.example/api/v1/../../admin", PATH},
    {list_k8s, "https://h.example/api/v1/./keys", ANY},
    /* ...and encoded ones, which the far side might decode, refused. */
    {list_k8s, "https://h.example/api/v1/%2e%2e/%2E%2E/admin", PATH},
    {list_k8s, "https://h.example/api/v1/..%2fadmin", PATH},
    {list_k8s, "https://h.example/api/v1/..%5Cadmin", PATH},
};

/* Installs list (NULL = not configured). */
static void install(const char *const *list)
{
    struct strvec sv;
    struct errbuf err = {{0}};

    strvec_init(&sv);
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        strvec_push(&sv, list[i]);
    CHECK_EQ_INT(lua_http_global_init(list != NULL ? &sv : NULL, &err), 0);
    strvec_release(&sv);
}

TEST(allow_matching)
{
    for (size_t i = 0; i < ARRAY_LEN(matches); i++) {
        CURLU *u = curl_url();
        struct target t;
        const char *why = NULL;

        install(matches[i].list);
        if (target_parse(u, matches[i].url, &t, &why) != 0) {
            harness_fail(__FILE__, __LINE__, "%s: does not parse: %s",
                         matches[i].url, why);
        } else {
            why = allow_check_target(&t);
            if ((why == NULL) != (matches[i].want == NULL) ||
                (why != NULL && strcmp(why, matches[i].want) != 0))
                harness_fail(__FILE__, __LINE__, "%s: got \"%s\", want "
                             "\"%s\"", matches[i].url, why ? why : "allowed",
                             matches[i].want ? matches[i].want : "allowed");
            target_release(&t);
        }
        curl_url_cleanup(u);
    }
    install(NULL);
}

TEST(allow_list_errors)
{
    struct strvec sv;
    struct errbuf err = {{0}};

    strvec_init(&sv);
    strvec_push(&sv, "https://ok.example");
    strvec_push(&sv, "ftp://bad.example");
    CHECK(lua_http_global_init(&sv, &err) != 0);
    CHECK(strstr(err.msg, "entry 2") != NULL);
    /* A failed install leaves nothing half-configured. */
    CHECK(!allow.set && allow.n == 0);
    strvec_release(&sv);
    install(NULL);
}

static const struct {
    const char *url;
    const char *why; /* substring */
} refusals[] = {
    {"ftp://h.example/f", "only http:// and https://"},
    {"file:///etc/passwd", "only http:// and https://"},
    {"https://alice:s3cret@h.example/", "credentials"},
    {"https://alice@h.example/", "credentials"},
    {"https://h.example:70000/", "not a valid URL"},
    {"https://h.example/a b", "not a valid URL"},
    {"https://h.example/\r\nX-Injected: 1", "not a valid URL"},
    {"//h.example/x", "not a valid URL"},
    {"", "not a valid URL"},
};

TEST(url_refusals)
{
    for (size_t i = 0; i < ARRAY_LEN(refusals); i++) {
        CURLU *u = curl_url();
        struct target t;
        const char *why = NULL;

        if (target_parse(u, refusals[i].url, &t, &why) == 0) {
            harness_fail(__FILE__, __LINE__, "\"%s\" parsed", refusals[i].url);
            target_release(&t);
        } else if (strstr(why, refusals[i].why) == NULL) {
            harness_fail(__FILE__, __LINE__, "\"%s\": %s", refusals[i].url,
                         why);
        }
        curl_url_cleanup(u);
    }
}

TEST(display_hides_query_and_userinfo)
{
    CURLU *u = curl_url();
    struct target t;
    const char *why = NULL;
    char shown[256];

    CHECK_EQ_INT(target_parse(u, "https://H.example:8443/a/../b?token=xyz"
                                 "#frag", &t, &why), 0);
    target_display(&t, shown, sizeof(shown));
    CHECK_STREQ(shown, "https://h.example:8443/b");
    target_release(&t);
    CHECK_EQ_INT(target_parse(u, "http://h.example/p?q", &t, &why), 0);
    target_display(&t, shown, sizeof(shown));
    CHECK_STREQ(shown, "http://h.example/p");
    target_release(&t);
    curl_url_cleanup(u);
}

/* ============================================================ in Lua == */

/*
 * Runs script in a fresh state with the whole coffer module; the script
 * returns true or raises with what went wrong.
 */
static int run_script_fn(lua_State *L)
{
    const char *script = lua_touserdata(L, 1);

    luaL_openlibs(L);
    lua_api_open(L);
    lua_setglobal(L, "coffer");
    if (luaL_loadbufferx(L, script, strlen(script), "=test", "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

/* The per-call context scripts run with (NULL: none, as at load time). */
static struct lua_api_ctx *script_ctx;

static void run_script(const char *file, int line, const char *script)
{
    lua_State *L = luaL_newstate();

    LUA_API_CTX(L) = script_ctx;

    lua_pushcfunction(L, run_script_fn);
    lua_pushlightuserdata(L, (void *)script);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        harness_fail(file, line, "%s", lua_tostring(L, -1));
    else if (!lua_toboolean(L, -1))
        harness_fail(file, line, "script returned false");
    lua_close(L);
}
#define RUN_SCRIPT(s) run_script(__FILE__, __LINE__, (s))

/* Helpers every script below starts with. */
#define PRELUDE                                                              \
    "local http = coffer.http\n"                                             \
    "local function raises(want, f, ...)\n"                                  \
    "  local ok, msg = pcall(f, ...)\n"                                      \
    "  assert(not ok, 'did not raise: ' .. want)\n"                          \
    "  assert(tostring(msg):find(want, 1, true), 'raised ' .. tostring(msg)"  \
    " .. ', want ' .. want)\n"                                               \
    "end\n"                                                                  \
    "local function fails(want, r, err)\n"                                   \
    "  assert(r == nil, 'no failure, want ' .. want)\n"                      \
    "  assert(type(err) == 'string' and err:find(want, 1, true),\n"          \
    "         'err ' .. tostring(err) .. ', want ' .. want)\n"               \
    "  return err\n"                                                         \
    "end\n"

TEST(options_that_raise)
{
    RUN_SCRIPT(PRELUDE
        "local U = 'https://h.example/'\n"
        "raises('bad argument #1', http.request, 'https://h.example/')\n"
        "raises(\"unknown option 'uri'\", http.request, {uri = U})\n"
        "raises(\"unknown option 'Method'\", http.request,"
        " {url = U, Method = 'GET'})\n"
        "raises('unknown option (number)', http.request, {U})\n"
        "raises(\"option 'url' is required\", http.request, {})\n"
        "raises(\"option 'url' must be a string\", http.request, {url = 1})\n"
        "raises('is not one of GET', http.request, {url = U, method = 'FOO'})\n"
        "raises('is not one of GET', http.request,"
        " {url = U, method = 'CONNECT'})\n"
        "raises(\"give 'body' or 'json'\", http.request,"
        " {url = U, method = 'POST', body = 'x', json = {a = 1}})\n"
        "raises('HEAD request has no body', http.request,"
        " {url = U, method = 'HEAD', body = 'x'})\n"
        "raises('both client_cert_pem and client_key_pem', http.request,"
        " {url = U, client_cert_pem = 'x'})\n"
        "raises('both client_cert_pem and client_key_pem', http.request,"
        " {url = U, client_key_pem = 'x'})\n"
        "raises(\"'ca_pem' is empty\", http.request, {url = U, ca_pem = ''})\n"
        "raises(\"'timeout' must be more than 0\", http.request,"
        " {url = U, timeout = 0})\n"
        "raises(\"'timeout' must be more than 0\", http.request,"
        " {url = U, timeout = 61})\n"
        "raises(\"'timeout' must be more than 0\", http.request,"
        " {url = U, timeout = 0/0})\n"
        "raises(\"'timeout' must be a number\", http.request,"
        " {url = U, timeout = '5'})\n"
        "raises(\"'connect_timeout' must be more than 0\", http.request,"
        " {url = U, connect_timeout = -1})\n"
        "raises(\"'max_body' must be an integer\", http.request,"
        " {url = U, max_body = 0})\n"
        "raises(\"'max_body' must be an integer\", http.request,"
        " {url = U, max_body = 16 * 1024 * 1024 + 1})\n"
        "raises(\"'max_body' must be an integer\", http.request,"
        " {url = U, max_body = 1.5})\n"
        "raises(\"'follow_redirects' must be a boolean\", http.request,"
        " {url = U, follow_redirects = 'yes'})\n"
        "raises('headers must map strings to strings', http.request,"
        " {url = U, headers = {['X-A'] = 1}})\n"
        "raises('headers must map strings to strings', http.request,"
        " {url = U, headers = {'x'}})\n"
        "raises(\"option 'headers' must be a table\", http.request,"
        " {url = U, headers = 'X-A: 1'})\n"
        "raises('invalid header name', http.request,"
        " {url = U, headers = {['X A'] = '1'}})\n"
        "raises('invalid header name', http.request,"
        " {url = U, headers = {['X-A\\r\\nX-B'] = '1'}})\n"
        "raises('invalid header name', http.request,"
        " {url = U, headers = {['X-A:'] = '1'}})\n"
        "raises('invalid header name', http.request,"
        " {url = U, headers = {[''] = '1'}})\n"
        "raises('set by coffer.http itself', http.request,"
        " {url = U, headers = {['content-length'] = '1'}})\n"
        "raises('set by coffer.http itself', http.request,"
        " {url = U, headers = {['Transfer-Encoding'] = 'chunked'}})\n"
        "raises('cannot', http.request, {url = U, method = 'POST',"
        " json = {f = function() end}})\n"
        "raises(\"'url' is an argument here\", http.get, U, {url = U})\n"
        "raises(\"'method' is an argument here\", http.get, U,"
        " {method = 'POST'})\n"
        "raises(\"'body' is an argument here\", http.post, U, 'b',"
        " {body = 'c'})\n"
        "raises(\"unknown option 'nope'\", http.get, U, {nope = 1})\n"
        "raises('bad argument #2', http.post, U, {})\n"
        "return true\n");
}

TEST(ordinary_failures)
{
    install(list_empty);
    RUN_SCRIPT(PRELUDE
        "local e = fails('http: GET (invalid URL): only http:// and https://',"
        " http.request{url = 'ftp://h.example/x?secret=1'})\n"
        "assert(not e:find('secret'), e)\n"
        "e = fails('credentials', http.request{url ="
        " 'https://alice:pw-123@h.example/'})\n"
        "assert(not e:find('pw%-123') and not e:find('alice'), e)\n"
        "e = fails('http: POST https://h.example/p: host not in "
        "plugin_http_allowed', http.request{url ="
        " 'https://h.example/p?token=abc', method = 'post'})\n"
        "assert(not e:find('token') and not e:find('abc'), e)\n"
        "e = fails(\"http: GET https://h.example/p: the value of header "
        "'Authorization' contains CR, LF or NUL\", http.request{url ="
        " 'https://h.example/p?q=1', headers = {Authorization ="
        " 'Bearer tok\\r\\nX-Evil: 1'}})\n"
        "assert(not e:find('tok') and not e:find('Evil'), e)\n"
        "fails('contains CR, LF or NUL', http.request{url = 'https://h/',"
        " headers = {['X-A'] = 'a\\nb'}})\n"
        "fails('contains CR, LF or NUL', http.request{url = 'https://h/',"
        " headers = {['X-A'] = 'a\\0b'}})\n"
        "fails('http: GET (invalid URL): not a valid URL', http.request{"
        "url = 'https://h.example/\\0.evil.example/'})\n"
        "e = fails('host not in', http.delete('https://h.example/d?x=1'))\n"
        "assert(e:find('^http: DELETE https://h.example/d:'), e)\n"
        "e = fails('host not in', http.put('https://h.example/d', 'b'))\n"
        "assert(e:find('^http: PUT '), e)\n"
        "return true\n");
    install(NULL);
}

/* A loopback port with a listener that never accepts; -1 on failure. */
static int silent_listener(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A loopback port nobody listens on (bound, then closed). */
static int closed_port(void)
{
    int port = 0;
    int fd = silent_listener(&port);

    if (fd >= 0)
        close(fd);
    return port;
}

/* Runs fmt (with the port substituted as %d, twice) as a script. */
static void run_with_port(const char *file, int line, const char *fmt,
                          int port)
{
    char script[4096];

    snprintf(script, sizeof(script), fmt, port, port);
    run_script(file, line, script);
}

TEST(connection_refused)
{
    int port = closed_port();
    char entry[64];
    const char *list[2] = {entry, NULL};

    snprintf(entry, sizeof(entry), "http://127.0.0.1:%d", port);
    install(list);
    run_with_port(__FILE__, __LINE__, PRELUDE
        "local e = fails(': connection refused', http.get("
        "'http://127.0.0.1:%d/x?k=v'))\n"
        "assert(e == 'http: GET http://127.0.0.1:%d/x: connection refused',"
        " e)\n"
        "return true\n", port);
    install(NULL);
}

TEST(silent_server_bounded_by_timeout)
{
    int port = 0;
    int fd = silent_listener(&port);
    char entry[64];
    const char *list[2] = {entry, NULL};
    double t0;

    CHECK(fd >= 0);
    snprintf(entry, sizeof(entry), "http://127.0.0.1:%d", port);
    install(list);
    t0 = time_mono();
    run_with_port(__FILE__, __LINE__, PRELUDE
        "local e = fails('timed out after 0.3 s', http.request{url ="
        " 'http://127.0.0.1:%d/slow', timeout = 0.3})\n"
        "return true\n", port);
    CHECK(time_mono() - t0 < 1.5);
    /* The request budget caps a longer timeout. */
    request_budget_configure(250);
    request_budget_begin();
    t0 = time_mono();
    run_with_port(__FILE__, __LINE__, PRELUDE
        "fails(\"(what was left of the request's max_request_duration or the "
        "script's time limit)\","
        " http.request{url = 'http://127.0.0.1:%d/slow', timeout = 30})\n"
        "return true\n", port);
    CHECK(time_mono() - t0 < 1.5);
    request_budget_end();
    /* A spent budget fails before connecting. */
    request_budget_configure(1);
    request_budget_begin();
    usleep(5000);
    run_with_port(__FILE__, __LINE__, PRELUDE
        "fails(\"max_request_duration or the script's time limit is spent\","
        " http.request{url ="
        " 'http://127.0.0.1:%d/slow'})\n"
        "return true\n", port);
    request_budget_end();
    request_budget_configure(0);
    /* Without a request budget (a lease revocation worker), the script's
       own deadline caps the call: C code cannot be stopped by the hook. */
    {
        struct lua_api_ctx ctx = {.lock_stripe = -1};

        ctx.deadline = time_mono() + 0.25;
        script_ctx = &ctx;
        t0 = time_mono();
        run_with_port(__FILE__, __LINE__, PRELUDE
            "fails(\"the script's time limit)\","
            " http.request{url = 'http://127.0.0.1:%d/slow', timeout = 30})\n"
            "return true\n", port);
        CHECK(time_mono() - t0 < 1.5);
        script_ctx = NULL;
    }
    close(fd);
    install(NULL);
}

/* ======================================================== config key == */

static int load_config_text(const char *text, struct coffer_config *c,
                            struct errbuf *err)
{
    char path[] = "/tmp/coffer-http-conf.XXXXXX";
    int fd = mkstemp(path);
    int rc;

    if (fd < 0)
        return -100;
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        close(fd);
        unlink(path);
        return -100;
    }
    close(fd);
    rc = config_load(path, c, err);
    unlink(path);
    return rc;
}

#define CONF_HEAD "storage \"inmem\" {}\n" \
                  "listener \"tcp\" { tls_disable = true }\n"

TEST(config_key)
{
    struct coffer_config c;
    struct errbuf err = {{0}};

    CHECK_EQ_INT(load_config_text(CONF_HEAD, &c, &err), 0);
    CHECK(!c.plugin_http_allowed.set);
    config_release(&c);

    CHECK_EQ_INT(load_config_text(CONF_HEAD "plugin_http_allowed = {}\n", &c,
                                  &err), 0);
    CHECK(c.plugin_http_allowed.set && c.plugin_http_allowed.urls.n == 0);
    config_release(&c);

    CHECK_EQ_INT(load_config_text(
                     CONF_HEAD "plugin_http_allowed = {\n"
                     "  \"https://kubernetes.default.svc\",\n"
                     "  \"http://127.0.0.1:8099/jwks\",\n}\n", &c, &err), 0);
    CHECK(c.plugin_http_allowed.set && c.plugin_http_allowed.urls.n == 2);
    if (c.plugin_http_allowed.urls.n == 2)
        CHECK_STREQ(c.plugin_http_allowed.urls.v[1],
                    "http://127.0.0.1:8099/jwks");
    config_release(&c);

    CHECK(load_config_text(CONF_HEAD "plugin_http_allowed = "
                           "{ \"https://ok\", \"ftp://x\" }\n", &c, &err) != 0);
    CHECK(strstr(err.msg, ":3: plugin_http_allowed[2]: invalid entry "
                          "\"ftp://x\"") != NULL);
    CHECK(load_config_text(CONF_HEAD "plugin_http_allowed = "
                           "\"https://ok\"\n", &c, &err) != 0);
    CHECK(strstr(err.msg, "plugin_http_allowed: expected a list") != NULL);
    CHECK(load_config_text(CONF_HEAD "plugin_http_allowed = "
                           "{ a = \"https://ok\" }\n", &c, &err) != 0);
    CHECK(strstr(err.msg, "named keys") != NULL);
    CHECK(load_config_text(CONF_HEAD "plugin_http_allowed = { 1 }\n", &c,
                           &err) != 0);
    CHECK(strstr(err.msg, "plugin_http_allowed[1]: expected a URL") != NULL);
    CHECK(load_config_text(CONF_HEAD "plugin_http_allowed = {}\n"
                           "plugin_http_allowed = {}\n", &c, &err) != 0);
    CHECK(strstr(err.msg, "set twice") != NULL);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    log_set_level(LOG_LEVEL_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(allow_entries);
    RUN(allow_matching);
    RUN(allow_list_errors);
    RUN(url_refusals);
    RUN(display_hides_query_and_userinfo);
    RUN(options_that_raise);
    RUN(ordinary_failures);
    RUN(connection_refused);
    RUN(silent_server_bounded_by_timeout);
    RUN(config_key);
    lua_http_global_shutdown();
    return HARNESS_DONE();
}
