/*
 * test_audit.c - whole audit entries as written (option parsing and
 * writers: test_audit_device.c).
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

TEST(entry_hashes_tokens_and_data)
{
    struct errbuf err;
    cJSON *o = cJSON_Parse("{\"file_path\":\"discard\"}");
    struct audit_device *d = audit_device_new("f/", "file", "", o, false, &err);
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
    audit_device_put(d);
    cJSON_Delete(o);
}

TEST(revocation_entry_hashes_internal)
{
    struct errbuf err;
    struct audit_device *d = audit_device_new("f/", "file", "", NULL, false, &err);
    cJSON *internal = cJSON_Parse("{\"username\":\"hunter2\"}");
    struct revocation_arg a = {"database/creds/ro/abc", "expired", internal};
    cJSON *e, *r;
    char *text;

    CHECK(d == NULL); /* a file device needs file_path */
    d = audit_device_new("s/", "syslog", "", NULL, false, &err);
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
    audit_device_put(d);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(entry_hashes_tokens_and_data);
    RUN(revocation_entry_hashes_internal);
    return HARNESS_DONE();
}
