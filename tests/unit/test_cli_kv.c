/*
 * test_cli_kv.c - unit tests for cli_kv.c: KV v2 path rewriting (Vault's
 * addPrefixToKVPath) and the -versions list of delete/undelete/destroy.
 */
#include "../../src/cli/cli_kv.c"
#include "harness.h"

#include <stdio.h>

TEST(paths_kv_v2)
{
    static const char *const cases[][4] = {
        { "secret/foo", "secret/", "data", "secret/data/foo" },
        { "secret/a/b", "secret/", "metadata", "secret/metadata/a/b" },
        { "secret", "secret/", "metadata", "secret/metadata" },
        { "secret/", "secret/", "metadata", "secret/metadata" },
        { "kv/x", "kv/", "undelete", "kv/undelete/x" },
        /* namespaced mount path, path given relative to the namespace */
        { "secret/foo", "ns1/secret/", "data", "secret/data/foo" },
    };
    char *s;
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        s = kv_api_path(cases[i][0], cases[i][1], cases[i][2]);
        CHECK_STREQ(s, cases[i][3]);
        free(s);
    }
}

TEST(versions_list)
{
    const char *argv[] = { "-versions=1, 2", "-versions=,3", NULL };
    struct kv_versions_opts o;
    const struct cli_flag flags[] = {
        CLI_LIST("versions", NULL, &o.versions),
        CLI_FLAG_END,
    };
    struct cli ctx;
    struct out err;
    cJSON *b;
    char *s;

    o.mount = NULL;
    strvec_init(&o.versions);
    cli__init(&ctx, NULL);
    out_init(&err);
    CHECK_EQ_INT(cli__parse_args(&ctx, flags, 2, (char **)argv, &err), 0);
    b = versions_json(&o.versions);
    s = cJSON_PrintUnformatted(b);
    CHECK_STREQ(s, "[\"1\",\"2\",\"3\"]");
    cJSON_free(s);
    cJSON_Delete(b);
    strvec_release(&o.versions);
    cli__release(&ctx);
    out_release(&err);
}

TEST(v2_body_cas)
{
    cJSON *b;
    char *s;

    b = kv_v2_body(-1, cJSON_CreateObject()); /* no -cas */
    s = cJSON_PrintUnformatted(b);
    CHECK_STREQ(s, "{\"data\":{},\"options\":{}}");
    cJSON_free(s);
    cJSON_Delete(b);
    b = kv_v2_body(0, cJSON_CreateObject());
    s = cJSON_PrintUnformatted(b);
    CHECK_STREQ(s, "{\"data\":{},\"options\":{\"cas\":0}}");
    cJSON_free(s);
    cJSON_Delete(b);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(paths_kv_v2);
    RUN(versions_list);
    RUN(v2_body_cas);
    return HARNESS_DONE();
}
