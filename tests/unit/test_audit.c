/*
 * test_audit.c - audit devices: option parsing and whole entries as written.
 * Expected HMACs: audit_vectors.h.
 */
#include "../../src/audit.c"

#include "harness.h"

#include "audit_vectors.h"

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
    RUN(timeouts);
    RUN(hostport);
    RUN(device_options);
    RUN(entry_hashes_tokens_and_data);
    RUN(revocation_entry_hashes_internal);
    return HARNESS_DONE();
}
