/*
 * test_audit.c - the audit hashing walk, option parsing and entry shapes.
 *
 * Expected HMACs were computed independently with Python's
 * hmac.new(b"salt-1", value, hashlib.sha256).
 */
#include "../../src/audit.c"

#include "harness.h"

#define SALT "salt-1"
#define H_HUNTER2 "hmac-sha256:bc3d264e9e3dab7432e8dd340d31d4bce5153aa5e5d7484715385dd8c2420ea6"
#define H_42 "hmac-sha256:38209651ab6fc56342881afb09c3bee9a2a3c66938f56d922f2a20fd85e99ab2"
#define H_EMPTY "hmac-sha256:a51a0f5bb57dea9e3d7b35d409866234dfa63aa4d89c6b694bb19caca75a0ec5"
#define H_BIG "hmac-sha256:63f4cb056b05028235ca1019c95220aaf274e544ddf791f3aabfc19d4cc8e983"
#define H_1_5 "hmac-sha256:1bdf915e16aa27a29d3594e13d75520d424ff4b92e440389adb88940e0aecf1c"

static const char *str_at(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "(not a string)";
}

/*
 * node as an entry's data shows it (put_hashed_tree), parsed back; the
 * input tree is only read. Free the result with cJSON_Delete.
 */
static cJSON *hashed(const cJSON *node, bool numbers)
{
    struct buf b;
    struct json_writer w;
    cJSON *out;

    buf_init(&b, BUF_MAX_DEFAULT);
    json_write_init(&w, &b);
    put_hashed_tree(&w, node, SALT, numbers);
    out = w.rc == 0 ? cJSON_Parse(b.ptr) : NULL;
    buf_release(&b);
    return out;
}

/* The text of an entry written by build (put_entry's callers). */
static char *entry_text(entry_fn build, const struct audit_device *d,
                        void *arg)
{
    struct buf b;

    buf_init(&b, BUF_MAX_DEFAULT);
    if (render_line(d, build, arg, &b) != 0)
        return NULL;
    return buf_detach(&b, NULL);
}

TEST(hmac_known_values)
{
    char h[AUDIT_HASH_LEN];

    audit_hmac(SALT, "hunter2", 7, h);
    CHECK_STREQ(h, H_HUNTER2);
    audit_hmac(SALT, "", 0, h);
    CHECK_STREQ(h, H_EMPTY);
    CHECK_EQ_INT((int)strlen(h), AUDIT_HASH_LEN - 1);
}

TEST(walk_strings_at_any_depth_keys_kept)
{
    cJSON *in = cJSON_Parse("{\"password\":\"hunter2\",\"nested\":{\"a\":[\"hunter2\","
                           "{\"b\":\"\"}]},\"flag\":true,\"nothing\":null}");
    cJSON *o = hashed(in, false);
    const cJSON *arr;

    CHECK_STREQ(str_at(in, "password"), "hunter2"); /* only read */
    CHECK_STREQ(str_at(o, "password"), H_HUNTER2);
    arr = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "nested"), "a");
    CHECK(cJSON_IsArray(arr));
    CHECK_STREQ(cJSON_GetArrayItem(arr, 0)->valuestring, H_HUNTER2);
    CHECK_STREQ(str_at(cJSON_GetArrayItem(arr, 1), "b"), H_EMPTY);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "flag")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "nothing")));
    CHECK(cJSON_GetObjectItem(o, "password") != NULL); /* keys untouched */
    cJSON_Delete(o);
    cJSON_Delete(in);
}

TEST(walk_numbers_only_when_asked)
{
    cJSON *in = cJSON_Parse("{\"n\":42,\"f\":1.5}");
    cJSON *a = hashed(in, true), *b = hashed(in, false);

    CHECK_STREQ(str_at(a, "n"), H_42);
    CHECK_STREQ(str_at(a, "f"), H_1_5);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(b, "n")));
    CHECK_EQ_INT(cJSON_GetObjectItem(b, "n")->valueint, 42);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(in);
}

TEST(walk_raw_numbers_hashed_by_their_text)
{
    /* json.c keeps numbers a double cannot hold as raw literals */
    cJSON *in = cJSON_CreateObject(), *o;
    char *text;

    cJSON_AddItemToObject(in, "big", cJSON_CreateRaw("12345678901234567890"));
    o = hashed(in, true);
    CHECK_STREQ(str_at(o, "big"), H_BIG);
    text = cJSON_PrintUnformatted(o);
    CHECK(strstr(text, "12345678901234567890") == NULL);
    free(text);
    cJSON_Delete(o);
    cJSON_Delete(in);
}

TEST(walk_scalar_root_and_null)
{
    cJSON *s = cJSON_CreateString("hunter2"), *h = hashed(s, false);
    cJSON *n = hashed(NULL, true);

    CHECK(cJSON_IsNull(n)); /* no crash: a missing value is null */
    CHECK(cJSON_IsString(h) && strcmp(h->valuestring, H_HUNTER2) == 0);
    cJSON_Delete(s);
    cJSON_Delete(h);
    cJSON_Delete(n);
}

TEST(walk_deep_nesting)
{
    cJSON *root = cJSON_CreateObject(), *cur = root;

    for (int i = 0; i < 200; i++) {
        cJSON *next = cJSON_CreateArray();
        cJSON_AddItemToObject(cur, "x", next);
        cur = cJSON_CreateObject();
        cJSON_AddItemToArray(next, cur);
    }
    cJSON_AddStringToObject(cur, "leaf", "hunter2");
    {
        cJSON *h = hashed(root, false), *at = h;
        for (int i = 0; i < 200 && at != NULL; i++)
            at = cJSON_GetArrayItem(cJSON_GetObjectItem(at, "x"), 0);
        CHECK(at != NULL);
        if (at != NULL)
            CHECK_STREQ(str_at(at, "leaf"), H_HUNTER2);
        cJSON_Delete(h);
    }
    cJSON_Delete(root);
}

TEST(elide_list_counts)
{
    cJSON *in = cJSON_Parse("{\"keys\":[\"a\",\"b\",\"c\"],\"key_info\":"
                            "{\"a\":{},\"b\":{}},\"other\":[\"x\"]}");
    struct audit_device d = {.salt = (char *)SALT};
    struct json_writer w;
    struct buf b;
    cJSON *o, *data;

    buf_init(&b, BUF_MAX_DEFAULT);
    json_write_init(&w, &b);
    json_write_open(&w, '{');
    put_data(&w, &d, in, false, true);
    json_write_close(&w, '}');
    o = cJSON_Parse(b.ptr);
    data = cJSON_GetObjectItem(o, "data");
    CHECK_EQ_INT(cJSON_GetObjectItem(data, "keys")->valueint, 3);
    CHECK_EQ_INT(cJSON_GetObjectItem(data, "key_info")->valueint, 2);
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(data, "other")));
    /* what is not elided is hashed as usual */
    CHECK(strncmp(cJSON_GetArrayItem(cJSON_GetObjectItem(data, "other"), 0)
                      ->valuestring, "hmac-sha256:", 12) == 0);
    cJSON_Delete(o);
    cJSON_Delete(in);
    buf_release(&b);
}

TEST(timeouts)
{
    int ms = 0;
    struct errbuf err;

    CHECK_EQ_INT(parse_timeout("2s", &ms, &err), 0);
    CHECK_EQ_INT(ms, 2000);
    CHECK_EQ_INT(parse_timeout("250ms", &ms, &err), 0);
    CHECK_EQ_INT(ms, 250);
    CHECK_EQ_INT(parse_timeout("1m", &ms, &err), 0);
    CHECK_EQ_INT(ms, 60000);
    CHECK(parse_timeout("0s", &ms, &err) != 0);
    CHECK(parse_timeout("-1ms", &ms, &err) != 0);
    CHECK(parse_timeout("xms", &ms, &err) != 0);
    CHECK(parse_timeout("99999999999ms", &ms, &err) != 0);
    CHECK(parse_timeout("1h", &ms, &err) != 0);
}

TEST(hostport)
{
    char h[64], p[16];

    CHECK_EQ_INT(split_hostport("127.0.0.1:9090", h, sizeof(h), p, sizeof(p)),
                 0);
    CHECK_STREQ(h, "127.0.0.1");
    CHECK_STREQ(p, "9090");
    CHECK_EQ_INT(split_hostport("[::1]:9", h, sizeof(h), p, sizeof(p)), 0);
    CHECK_STREQ(h, "::1");
    CHECK(split_hostport("nohost", h, sizeof(h), p, sizeof(p)) != 0);
    CHECK(split_hostport("host:", h, sizeof(h), p, sizeof(p)) != 0);
    CHECK(split_hostport("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1",
                         h, sizeof(h), p, sizeof(p)) != 0);
}

TEST(device_options)
{
    struct errbuf err;
    cJSON *o = cJSON_Parse("{\"file_path\":\"/tmp/a.log\",\"log_raw\":true,"
                           "\"mode\":\"0640\",\"prefix\":\"P\"}");
    struct audit_device *d = device_new("f/", "file", "", o, false, &err);

    CHECK(d != NULL);
    if (d != NULL) {
        CHECK(d->log_raw);
        CHECK(d->hmac_accessor);
        CHECK_EQ_INT((int)d->mode, 0640);
        CHECK_STREQ(d->prefix, "P");
        CHECK_STREQ(str_at(d->options, "log_raw"), "true"); /* as strings */
        device_put(d);
    }
    cJSON_Delete(o);
    o = cJSON_Parse("{\"file_path\":\"relative.log\"}");
    CHECK(device_new("f/", "file", "", o, false, &err) == NULL);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"file_path\":\"/x\",\"nested\":{}}");
    CHECK(device_new("f/", "file", "", o, false, &err) == NULL);
    CHECK_STREQ(err.msg, "options must be a map of strings");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"facility\":\"local3\"}");
    d = device_new("s/", "syslog", "", o, false, &err);
    CHECK(d != NULL && d->facility == LOG_LOCAL3);
    device_put(d);
    cJSON_Delete(o);
    CHECK(device_new("x/", "bogus", "", NULL, false, &err) == NULL);
    CHECK_STREQ(err.msg, "unknown backend type: \"bogus\"");
}

TEST(entry_hashes_tokens_and_data)
{
    struct errbuf err;
    cJSON *o = cJSON_Parse("{\"file_path\":\"discard\"}");
    struct audit_device *d = device_new("f/", "file", "", o, false, &err);
    struct request req;
    struct response resp;
    struct pipeline_arg a;
    cJSON *e, *r;
    char *text;

    CHECK(d != NULL);
    if (d == NULL)
        return;
    d->salt = xstrdup(SALT);
    request_init(&req);
    response_init(&resp);
    req.op = OP_UPDATE;
    req.path = xstrdup("secret/data/x");
    req.client_token = xstrdup("hunter2");
    req.data = cJSON_Parse("{\"data\":{\"password\":\"hunter2\"}}");
    resp.data = cJSON_Parse("{\"password\":\"hunter2\"}");
    resp.auth = cJSON_Parse("{\"client_token\":\"hunter2\",\"accessor\":\"acc\"}");
    resp.lease_id = xstrdup("database/creds/ro/abc");
    a = (struct pipeline_arg){&req, &resp, NULL, true};
    text = entry_text(build_pipeline, d, &a);
    CHECK(text != NULL && text[strlen(text) - 1] == '\n');
    e = cJSON_Parse(text);
    CHECK(strstr(text, "\"hunter2\"") == NULL);
    CHECK(strstr(text, "\"acc\"") == NULL);
    CHECK(strstr(text, "database/creds/ro/abc") != NULL); /* lease id clear */
    CHECK_STREQ(str_at(e, "type"), "response");
    CHECK_STREQ(str_at(cJSON_GetObjectItem(e, "auth"), "token_type"),
                "default");
    r = cJSON_GetObjectItem(e, "request");
    CHECK_STREQ(str_at(r, "client_token"), H_HUNTER2);
    CHECK_STREQ(str_at(r, "operation"), "update");
    free(text);
    cJSON_Delete(e);
    request_release(&req);
    response_release(&resp);
    device_put(d);
    cJSON_Delete(o);
}

TEST(revocation_entry_hashes_internal)
{
    struct errbuf err;
    struct audit_device *d = device_new("f/", "file", "", NULL, false, &err);
    cJSON *internal = cJSON_Parse("{\"username\":\"hunter2\"}");
    struct revocation_arg a = {"database/creds/ro/abc", "expired", internal};
    cJSON *e, *r;
    char *text;

    CHECK(d == NULL); /* a file device needs file_path */
    d = device_new("s/", "syslog", "", NULL, false, &err);
    CHECK(d != NULL);
    if (d == NULL)
        return;
    d->salt = xstrdup(SALT);
    text = entry_text(build_revocation, d, &a);
    e = cJSON_Parse(text);
    CHECK(strstr(text, "hunter2") == NULL);
    free(text);
    CHECK_STREQ(str_at(e, "type"), "revocation");
    r = cJSON_GetObjectItem(e, "revocation");
    CHECK_STREQ(str_at(r, "lease_id"), "database/creds/ro/abc");
    CHECK_STREQ(str_at(r, "reason"), "expired");
    CHECK_STREQ(str_at(cJSON_GetObjectItem(r, "data"), "username"), H_HUNTER2);
    CHECK(cJSON_GetObjectItem(e, "time") != NULL);
    cJSON_Delete(e);
    cJSON_Delete(internal);
    device_put(d);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(hmac_known_values);
    RUN(walk_strings_at_any_depth_keys_kept);
    RUN(walk_numbers_only_when_asked);
    RUN(walk_raw_numbers_hashed_by_their_text);
    RUN(walk_scalar_root_and_null);
    RUN(walk_deep_nesting);
    RUN(elide_list_counts);
    RUN(timeouts);
    RUN(hostport);
    RUN(device_options);
    RUN(entry_hashes_tokens_and_data);
    RUN(revocation_entry_hashes_internal);
    return HARNESS_DONE();
}
