/*
 * test_audit_device.c - an audit device's options: timeouts, socket
 * addresses, Vault's option names and refusals.
 */
#include "../../src/audit_device.c"

#include "harness.h"

#include "audit_vectors.h"

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
    struct audit_device *d = audit_device_new("f/", "file", "", o, false, &err);

    CHECK(d != NULL);
    if (d != NULL) {
        CHECK(d->log_raw);
        CHECK(d->hmac_accessor);
        CHECK_EQ_INT((int)d->mode, 0640);
        CHECK_STREQ(d->prefix, "P");
        CHECK_STREQ(str_at(d->options, "log_raw"), "true"); /* as strings */
        audit_device_put(d);
    }
    cJSON_Delete(o);
    o = cJSON_Parse("{\"file_path\":\"relative.log\"}");
    CHECK(audit_device_new("f/", "file", "", o, false, &err) == NULL);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"file_path\":\"/x\",\"nested\":{}}");
    CHECK(audit_device_new("f/", "file", "", o, false, &err) == NULL);
    CHECK_STREQ(err.msg, "options must be a map of strings");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"facility\":\"local3\"}");
    d = audit_device_new("s/", "syslog", "", o, false, &err);
    CHECK(d != NULL && d->facility == LOG_LOCAL3);
    audit_device_put(d);
    cJSON_Delete(o);
    CHECK(audit_device_new("x/", "bogus", "", NULL, false, &err) == NULL);
    CHECK_STREQ(err.msg, "unknown backend type: \"bogus\"");
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(timeouts);
    RUN(hostport);
    RUN(device_options);
    return HARNESS_DONE();
}
