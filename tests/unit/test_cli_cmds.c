/*
 * test_cli_cmds.c - unit tests for cli_cmds.c: the request bodies of
 * `token create` and `secrets enable` (the Go client's structs, field for
 * field).
 */
#include "../../src/cli/cli_cmds.c"
#include "harness.h"

#include <stdio.h>

static char *json_text(const cJSON *v)
{
    return cJSON_PrintUnformatted(v);
}

TEST(request_bodies)
{
    struct token_create_opts t;
    struct secrets_enable_opts m;
    cJSON *b;
    char *s;

    /* -policy=dev -ttl=1h -type=batch -metadata=team=x -use-limit=2 */
    memset(&t, 0, sizeof(t));
    t.renewable = true;
    strvec_init(&t.policies);
    strvec_init(&t.metadata);
    strvec_push(&t.policies, "dev");
    t.ttl = 3600;
    t.type = "batch";
    strvec_push(&t.metadata, "team=x");
    t.use_limit = 2;
    b = token_create_body(&t);
    s = json_text(b);
    CHECK_STREQ(s, "{\"policies\":[\"dev\"],\"meta\":{\"team\":\"x\"},"
                   "\"ttl\":\"1h0m0s\",\"explicit_max_ttl\":\"0s\","
                   "\"period\":\"0s\",\"display_name\":\"\",\"num_uses\":2,"
                   "\"renewable\":false,\"type\":\"batch\","
                   "\"entity_alias\":\"\"}");
    cJSON_free(s);
    cJSON_Delete(b);
    strvec_release(&t.policies);
    strvec_release(&t.metadata);

    /* Without -type the token is a renewable service token. */
    memset(&t, 0, sizeof(t));
    t.renewable = true;
    b = token_create_body(&t);
    s = json_text(b);
    CHECK(strstr(s, "\"renewable\":true,\"type\":\"service\"") != NULL);
    cJSON_free(s);
    cJSON_Delete(b);

    /* -options=version=1 -version=2 -default-lease-ttl=30m */
    memset(&m, 0, sizeof(m));
    strvec_init(&m.options);
    strvec_push(&m.options, "version=1");
    m.version = 2;
    m.default_lease_ttl = 1800;
    b = mount_input(&m, "kv");
    s = json_text(b);
    CHECK_STREQ(s, "{\"type\":\"kv\",\"description\":\"\",\"config\":"
                   "{\"options\":null,\"default_lease_ttl\":\"30m0s\","
                   "\"max_lease_ttl\":\"0s\",\"force_no_cache\":false},"
                   "\"local\":false,\"seal_wrap\":false,"
                   "\"external_entropy_access\":false,"
                   "\"options\":{\"version\":\"2\"}}");
    cJSON_free(s);
    cJSON_Delete(b);
    strvec_release(&m.options);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(request_bodies);
    return HARNESS_DONE();
}
