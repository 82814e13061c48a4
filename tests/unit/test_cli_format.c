/*
 * test_cli_format.c - unit tests for cli_format.c: Vault's Key/Value
 * tables, Go's %v and indented JSON, YAML, durations, warnings and the
 * "== Title ==" headers.
 *
 * Expected strings are what the Vault CLI prints for the same input.
 */
#include "../../src/cli/cli_format.c"
#include "harness.h"

#include <stdio.h>

static const char *text(struct out *o)
{
    return o->b.ptr != NULL ? o->b.ptr : "";
}

TEST(format_parse)
{
    enum cli_format f = CLI_FMT_TABLE;

    CHECK_EQ_INT(cli_format_parse("JSON", &f), 0);
    CHECK_EQ_INT(f, CLI_FMT_JSON);
    CHECK_EQ_INT(cli_format_parse("yml", &f), 0);
    CHECK_EQ_INT(f, CLI_FMT_YAML);
    CHECK(cli_format_parse("xml", &f) != 0);
}

TEST(table_secret_v1)
{
    cJSON *secret = cJSON_Parse(
        "{\"request_id\":\"x\",\"lease_id\":\"\",\"lease_duration\":2764800,"
        "\"renewable\":false,\"data\":{\"zeta\":\"\",\"foo\":\"bar\","
        "\"ttl\":90,\"list\":[\"a\",1,true,null],\"m\":{\"b\":1,\"a\":\"x\"}},"
        "\"warnings\":null}");
    struct out o;

    out_init(&o);
    fmt_secret_table(&o, secret);
    CHECK_STREQ(text(&o),
                "Key                 Value\n"
                "---                 -----\n"
                "refresh_interval    768h\n"
                "foo                 bar\n"
                "list                [a 1 true <nil>]\n"
                "m                   map[a:x b:1]\n"
                "ttl                 1m30s\n"
                "zeta                n/a\n");
    out_release(&o);
    cJSON_Delete(secret);
}

TEST(table_secret_lease_and_auth)
{
    cJSON *secret = cJSON_Parse(
        "{\"lease_id\":\"db/creds/ro/abc\",\"lease_duration\":3600,"
        "\"renewable\":true,\"data\":null,\"auth\":{\"client_token\":\"hvs.t\","
        "\"accessor\":\"acc\",\"policies\":[\"default\",\"dev\"],"
        "\"token_policies\":[\"default\",\"dev\"],\"metadata\":{\"u\":\"a\"},"
        "\"lease_duration\":0,\"renewable\":false}}");
    struct out o;

    out_init(&o);
    fmt_secret_table(&o, secret);
    CHECK_STREQ(text(&o),
                "Key                  Value\n"
                "---                  -----\n"
                "lease_id             db/creds/ro/abc\n"
                "lease_duration       1h\n"
                "lease_renewable      true\n"
                "token                hvs.t\n"
                "token_accessor       acc\n"
                "token_duration       \xe2\x88\x9e\n"
                "token_renewable      false\n"
                "token_policies       [\"default\" \"dev\"]\n"
                "identity_policies    []\n"
                "policies             [\"default\" \"dev\"]\n"
                "token_meta_u         a\n");
    out_release(&o);
    cJSON_Delete(secret);
}

TEST(table_list_and_columns)
{
    cJSON *keys = cJSON_Parse("[\"b\",\"a/\",\"c\"]");
    struct strvec lines;
    struct out o;

    out_init(&o);
    fmt_list_table(&o, keys);
    CHECK_STREQ(text(&o), "Keys\n----\na/\nb\nc\n");
    out_release(&o);
    out_init(&o);
    strvec_init(&lines);
    strvec_push(&lines, "Path | Type | Description");
    strvec_push(&lines, "cubbyhole/ | cubbyhole | per-token storage");
    strvec_push(&lines, "secret/ | kv | ");
    fmt_table(&o, &lines, "|");
    CHECK_STREQ(text(&o),
                "Path          Type         Description\n"
                "----          ----         -----------\n"
                "cubbyhole/    cubbyhole    per-token storage\n"
                "secret/       kv           n/a\n");
    strvec_release(&lines);
    out_release(&o);
    cJSON_Delete(keys);
}

TEST(json_go_style)
{
    cJSON *secret = cJSON_Parse(
        "{\"auth\":null,\"data\":{\"b\":\"<&>\",\"a\":[],\"c\":{},\"n\":1.5,"
        "\"i\":42},\"lease_duration\":0,\"warnings\":null,"
        "\"request_id\":\"r1\",\"wrap_info\":null,\"mount_type\":\"kv\"}");
    struct out o;

    out_init(&o);
    fmt_json_secret(&o, secret);
    CHECK_STREQ(text(&o),
                "{\n"
                "  \"request_id\": \"r1\",\n"
                "  \"lease_id\": \"\",\n"
                "  \"lease_duration\": 0,\n"
                "  \"renewable\": false,\n"
                "  \"data\": {\n"
                "    \"a\": [],\n"
                "    \"b\": \"\\u003c\\u0026\\u003e\",\n"
                "    \"c\": {},\n"
                "    \"i\": 42,\n"
                "    \"n\": 1.5\n"
                "  },\n"
                "  \"warnings\": null\n"
                "}");
    out_release(&o);
    cJSON_Delete(secret);
}

TEST(yaml_basic)
{
    cJSON *v = cJSON_Parse("{\"b\":[\"x\",\"true\"],\"a\":{\"k\":null},"
                           "\"c\":\"a: b\",\"d\":\"\",\"e\":{}}");
    struct out o;

    out_init(&o);
    fmt_yaml(&o, v);
    CHECK_STREQ(text(&o), "a:\n  k: null\nb:\n- x\n- \"true\"\nc: 'a: b'\n"
                          "d: \"\"\ne: {}\n");
    out_release(&o);
    cJSON_Delete(v);
}

TEST(durations_and_headers)
{
    char tmp[32];
    struct out o;
    cJSON *meta = cJSON_Parse("{\"created_time\":\"t\",\"version\":1}");

    fmt_human_duration(0, tmp, sizeof(tmp));
    CHECK_STREQ(tmp, "0s");
    fmt_human_duration(3630, tmp, sizeof(tmp));
    CHECK_STREQ(tmp, "1h30s");
    fmt_human_duration(2764800, tmp, sizeof(tmp));
    CHECK_STREQ(tmp, "768h");
    CHECK(fmt_looks_like_duration("token_ttl"));
    CHECK(fmt_looks_like_duration("period"));
    CHECK(!fmt_looks_like_duration("ttlx"));
    out_init(&o);
    fmt_map_header(&o, "Metadata", meta);
    CHECK_STREQ(text(&o), "====== Metadata ======");
    out_release(&o);
    out_init(&o);
    fmt_pad_equals(&o, "Secret Path", strlen("secret/data/foo"));
    CHECK_STREQ(text(&o), "= Secret Path =");
    out_release(&o);
    out_init(&o);
    fmt_pad_equals(&o, "Secret Path", strlen("secret/data/creds"));
    CHECK_STREQ(text(&o), "== Secret Path ==");
    out_release(&o);
    cJSON_Delete(meta);
}

TEST(warnings_wrap)
{
    cJSON *s = cJSON_Parse(
        "{\"warnings\":[\"Invalid path for a versioned K/V secrets engine. "
        "See the API docs for the appropriate API endpoints to use. If using "
        "the Vault CLI, use 'vault kv get' for this operation.\"]}");
    struct out o;

    out_init(&o);
    fmt_warnings(&o, s);
    CHECK_STREQ(text(&o),
                "WARNING! The following warnings were returned from Vault:\n"
                "\n"
                "  * Invalid path for a versioned K/V secrets engine. See the "
                "API docs for the\n"
                "  appropriate API endpoints to use. If using the Vault CLI, "
                "use 'vault kv get'\n"
                "  for this operation.\n"
                "\n");
    out_release(&o);
    cJSON_Delete(s);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(format_parse);
    RUN(table_secret_v1);
    RUN(table_secret_lease_and_auth);
    RUN(table_list_and_columns);
    RUN(json_go_style);
    RUN(yaml_basic);
    RUN(durations_and_headers);
    RUN(warnings_wrap);
    return HARNESS_DONE();
}
