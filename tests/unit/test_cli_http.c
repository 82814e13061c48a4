/*
 * test_cli_http.c - unit tests for cli_http.c: the k=v body builder of
 * `vault write`, query strings, paths and URL escaping, Vault's error
 * texts and the Go client's reading of responses.
 *
 * Expected strings are what the Vault CLI prints or sends for the same
 * input.
 */
#include "../../src/cli/cli_http.c"
#include "harness.h"

#include <stdio.h>

/* ---- helpers ---------------------------------------------------------- */

/* Builds a body from k=v words (words[0] is the path) as `write` does. */
static int build(bool *stdin_used, const char **words, cJSON **out,
                 struct out *err)
{
    struct strvec args;
    size_t i;
    int rc;

    strvec_init(&args);
    for (i = 0; words[i] != NULL; i++)
        strvec_push(&args, words[i]);
    rc = cli__args_to_json(&args, 1, stdin_used, out, err);
    strvec_release(&args);
    return rc;
}

static char *json_text(const cJSON *v)
{
    return cJSON_PrintUnformatted(v);
}

static const char *text(struct out *o)
{
    return o->b.ptr != NULL ? o->b.ptr : "";
}

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return;
    fputs(content, f);
    fclose(f);
}

/* ---- k=v bodies ------------------------------------------------------- */

TEST(kv_strings_and_lists)
{
    const char *words[] = { "path", "a=1", "b=x=y", "a=2", "c=", "a=3",
                            "", "d=\\@lit", NULL };
    bool stdin_used = false;
    struct out err;
    cJSON *obj = NULL;
    char *s;

    out_init(&err);
    CHECK_EQ_INT(build(&stdin_used, words, &obj, &err), 0);
    s = json_text(obj);
    CHECK_STREQ(s, "{\"a\":[\"1\",\"2\",\"3\"],\"b\":\"x=y\",\"c\":\"\","
                   "\"d\":\"@lit\"}");
    cJSON_free(s);
    json_delete_wiped(obj);
    out_release(&err);
}

TEST(kv_no_args_is_nil)
{
    const char *words[] = { "path", NULL };
    bool stdin_used = false;
    struct out err;
    cJSON *obj = (cJSON *)&stdin_used;

    out_init(&err);
    CHECK_EQ_INT(build(&stdin_used, words, &obj, &err), 0);
    CHECK(obj == NULL);
    out_release(&err);
}

TEST(kv_files)
{
    char path[] = "/tmp/test_cli_XXXXXX";
    char arg[200], json_arg[200], jpath[160];
    const char *words[] = { "path", arg, json_arg, NULL };
    bool stdin_used = false;
    struct out err;
    cJSON *obj = NULL;
    char *s;
    int fd = mkstemp(path);

    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    write_file(path, "line1\nline2\n");
    snprintf(jpath, sizeof(jpath), "%s.json", path);
    write_file(jpath, "{\"n\": 5, \"s\": \"t\"}");
    snprintf(arg, sizeof(arg), "cert=@%s", path);
    snprintf(json_arg, sizeof(json_arg), "@%s", jpath);
    out_init(&err);
    CHECK_EQ_INT(build(&stdin_used, words, &obj, &err), 0);
    s = json_text(obj);
    CHECK_STREQ(s, "{\"cert\":\"line1\\nline2\\n\",\"n\":5,\"s\":\"t\"}");
    cJSON_free(s);
    json_delete_wiped(obj);
    unlink(jpath);
    unlink(path);
    out_release(&err);
}

TEST(kv_errors)
{
    const char *bad[] = { "path", "novalue", NULL };
    const char *nofile[] = { "path", "k=@/nonexistent/x", NULL };
    bool stdin_used = false;
    struct out err;
    cJSON *obj = NULL;

    out_init(&err);
    CHECK(build(&stdin_used, bad, &obj, &err) != 0);
    CHECK(obj == NULL);
    CHECK_STREQ(text(&err), "invalid key/value pair \"novalue\": format must "
                            "be key=value");
    out_release(&err);

    stdin_used = false;
    out_init(&err);
    CHECK(build(&stdin_used, nofile, &obj, &err) != 0);
    CHECK_STREQ(text(&err), "invalid key/value pair \"k=@/nonexistent/x\": "
                            "error reading file: open /nonexistent/x: no "
                            "such file or directory");
    out_release(&err);
}

TEST(kv_stdin_once)
{
    const char *words[] = { "path", "-", "extra=-", NULL };
    char path[] = "/tmp/test_cli_in_XXXXXX";
    bool stdin_used = false;
    struct out err;
    cJSON *obj = NULL;
    int fd = mkstemp(path);

    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    write_file(path, "{\"a\": \"b\"}");
    CHECK(freopen(path, "r", stdin) != NULL);
    out_init(&err);
    CHECK(build(&stdin_used, words, &obj, &err) != 0);
    CHECK_STREQ(text(&err), "invalid key/value pair \"extra=-\": stdin "
                            "already consumed");
    unlink(path);
    out_release(&err);
}

TEST(query_from_args)
{
    cJSON *obj = cJSON_Parse("{\"b\":[\"1\",\"x y\"],\"a\":\"&\"}");
    struct buf q;

    buf_init(&q, 0);
    cli__json_to_query(obj, &q);
    CHECK_STREQ(q.ptr, "a=%26&b=1&b=x+y");
    buf_release(&q);
    cJSON_Delete(obj);
}

/* ---- paths ------------------------------------------------------------ */

TEST(paths_sanitize)
{
    char *s;

    s = cli__sanitize_path("  /secret/foo//  ");
    CHECK_STREQ(s, "secret/foo");
    free(s);
    s = cli__ensure_trailing_slash("kv");
    CHECK_STREQ(s, "kv/");
    free(s);
    s = cli__ensure_trailing_slash("kv/");
    CHECK_STREQ(s, "kv/");
    free(s);
    s = cli__path_join("secret/", "data", "a//b/../c");
    CHECK_STREQ(s, "secret/data/a/c");
    free(s);
    s = cli__path_join("", "", NULL);
    CHECK_STREQ(s, "");
    free(s);
    s = path_clean("/../a/./b/");
    CHECK_STREQ(s, "/a/b");
    free(s);
}

TEST(url_escaping)
{
    struct buf b;

    buf_init(&b, 0);
    escape_path(&b, "secret/a b/ü?x=@:");
    CHECK_STREQ(b.ptr, "secret/a%20b/%C3%BC%3Fx=@:");
    buf_release(&b);
}

/* ---- responses and errors -------------------------------------------- */

static void set_body(struct cli_http_result *r, const char *body)
{
    buf_reset(&r->body);
    buf_append_str(&r->body, body);
}

TEST(api_error_texts)
{
    struct cli_http_result r;
    struct out err;

    cli__http_result_init(&r);
    out_init(&err);
    snprintf(r.method, sizeof(r.method), "PUT");
    buf_append_str(&r.url, "http://127.0.0.1:8200/v1/sys/mounts/x/");
    r.status = 400;
    set_body(&r, "{\"errors\":[\"path is already in use at x/\"]}");
    cli__api_error_text(&r, &err);
    CHECK_STREQ(text(&err), "Error making API request.\n\nURL: PUT "
                            "http://127.0.0.1:8200/v1/sys/mounts/x/\nCode: "
                            "400. Errors:\n\n* path is already in use at x/");
    out_release(&err);
    out_init(&err);
    r.status = 502;
    set_body(&r, "<html>bad gateway</html>");
    cli__api_error_text(&r, &err);
    CHECK(strstr(text(&err), "Code: 502. Raw Message:\n\n<html>bad gateway"
                             "</html>") != NULL);
    out_release(&err);
    cli__http_result_release(&r);
}

TEST(secret_parsing)
{
    struct cli_http_result r;
    struct out err;
    cJSON *s = NULL;
    bool empty = false;

    cli__http_result_init(&r);
    out_init(&err);
    CHECK_EQ_INT(parse_secret(&r, &s, &empty, &err), 0);
    CHECK(empty && s == NULL);
    set_body(&r, "{\"errors\":[]}");
    CHECK_EQ_INT(parse_secret(&r, &s, &empty, &err), 0);
    CHECK(!empty && s == NULL);
    set_body(&r, "{\"sealed\":false,\"t\":1}");
    CHECK_EQ_INT(parse_secret(&r, &s, &empty, &err), 0);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "data"),
                                            "sealed")));
    json_delete_wiped(s);
    set_body(&r, "{\"request_id\":\"r\",\"data\":{\"a\":\"b\"}}");
    CHECK_EQ_INT(parse_secret(&r, &s, &empty, &err), 0);
    CHECK(secret_has_content(s));
    json_delete_wiped(s);
    r.status = 404;
    s = NULL;
    set_body(&r, "{\"errors\":[]}");
    CHECK_EQ_INT(handle_response(&r, CLI_CALL_READ, &s, &err), 0);
    CHECK(s == NULL);
    out_release(&err);
    cli__http_result_release(&r);
}

TEST(one_member_and_trim)
{
    cJSON *b = cli__one_member("lease_id", "db/creds/ro/x");
    char *s = json_text(b);

    CHECK_STREQ(s, "{\"lease_id\":\"db/creds/ro/x\"}");
    cJSON_free(s);
    json_delete_wiped(b);
    s = cli__trim_dup(" \t id \n");
    CHECK_STREQ(s, "id");
    free(s);
    s = cli__str_concat3("sys/leases/revoke-prefix/", "db/creds", "");
    CHECK_STREQ(s, "sys/leases/revoke-prefix/db/creds");
    free(s);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(kv_strings_and_lists);
    RUN(kv_no_args_is_nil);
    RUN(kv_files);
    RUN(kv_errors);
    RUN(kv_stdin_once);
    RUN(query_from_args);
    RUN(paths_sanitize);
    RUN(url_escaping);
    RUN(api_error_texts);
    RUN(secret_parsing);
    RUN(one_member_and_trim);
    return HARNESS_DONE();
}
