/*
 * fuzz_http.c - Coffer's own HTTP request parsing (src/http.c).
 *
 * libmicrohttpd splits the request line and headers; what Coffer does
 * with them is its own code, and that is what runs here:
 *
 *   byte 0 % 4 == 0  clean_path: the URL as sent (the 301 Location)
 *                 1  parse_form: an x-www-form-urlencoded body
 *                 2  query arguments: split and unescaped as libmicrohttpd
 *                    does (MHD_http_unescape), then collect_arg per pair
 *                 3  parse_body: the body with a Content-Type taken from
 *                    the input's first line (JSON, form, or anything)
 *
 * regressions/http/ holds the crash it found: a pair without '=' made
 * parse_form decode the string literal "" in place (SIGSEGV).
 *
 * Oracles beyond the sanitizers: a cleaned path starts with '/', has no
 * empty, "." or ".." segment, and is clean itself (cleaning is
 * idempotent, or a client would be redirected forever); a parsed body or
 * query is always a JSON object.
 */
#include "../../src/http.c"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void check_clean(const char *url)
{
    char *clean = clean_path(url);
    const char *p;

    if (clean == NULL)
        clean = xstrdup(url); /* already clean: it must pass the checks */
    else
        FUZZ_CHECK(clean_path(clean) == NULL);
    FUZZ_CHECK(clean[0] == '/');
    for (p = clean; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        FUZZ_CHECK(p[1] != '/');
        FUZZ_CHECK(strncmp(p, "/./", 3) != 0 && strcmp(p, "/.") != 0);
        FUZZ_CHECK(strncmp(p, "/../", 4) != 0 && strcmp(p, "/..") != 0);
    }
    free(clean);
}

static void check_form(char *text)
{
    cJSON *o = parse_form(text);

    FUZZ_CHECK(cJSON_IsObject(o));
    for (cJSON *it = o->child; it != NULL; it = it->next)
        FUZZ_CHECK(cJSON_IsString(it) && it->string != NULL);
    cJSON_Delete(o);
}

/* Splits a query string the way libmicrohttpd does before collect_arg. */
static void check_query(char *q)
{
    struct args_ctx args = {0};
    char *save = NULL;

    args.data = cJSON_CreateObject();
    for (char *pair = strtok_r(q, "&", &save); pair != NULL;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        char *val = NULL;
        if (eq != NULL) {
            *eq = '\0';
            val = eq + 1;
            MHD_http_unescape(val);
        }
        MHD_http_unescape(pair);
        collect_arg(&args, MHD_GET_ARGUMENT_KIND, pair, val);
    }
    FUZZ_CHECK(cJSON_IsObject(args.data));
    for (cJSON *it = args.data->child; it != NULL; it = it->next)
        FUZZ_CHECK(cJSON_IsString(it) || cJSON_IsArray(it));
    cJSON_Delete(args.data);
}

static void check_body(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    struct request req;
    struct buf body;
    int rc;

    request_init(&req);
    if (nl != NULL) {
        req.content_type = xstrndup(s, (size_t)(nl - s));
        n -= (size_t)(nl - s) + 1;
        s = nl + 1;
    }
    buf_init(&body, BUF_MAX_DEFAULT);
    if (n > 0)
        FUZZ_CHECK(buf_append(&body, s, n) == 0);
    rc = parse_body(&req, &body);
    FUZZ_CHECK(rc == 0 ? cJSON_IsObject(req.data) : req.data == NULL);
    buf_release(&body);
    request_release(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size < 1)
        return 0;
    s = fuzz_cstr(data + 1, size - 1);
    switch (data[0] % 4) {
    case 0:
        check_clean(s);
        break;
    case 1:
        check_form(s);
        break;
    case 2:
        check_query(s);
        break;
    default:
        check_body((const char *)data + 1, size - 1);
        break;
    }
    free(s);
    return 0;
}
