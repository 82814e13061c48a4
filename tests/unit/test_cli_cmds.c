/*
 * test_cli_cmds.c - unit tests for cli_cmds.c: the request bodies of
 * `token create` and `secrets enable` (the Go client's structs, field for
 * field).
 */
#include "../../src/cli/cli_cmds.c"
#include "harness.h"

#include <stdio.h>

/* Parses argv (NULL-terminated) for a command taking `allowed` flags. */
static int parse(struct cli_opts *o, const char *const *allowed,
                 const char **argv, struct out *err)
{
    int argc = 0;

    while (argv[argc] != NULL)
        argc++;
    return cli__parse_args(o, allowed, argc, (char **)argv, err);
}

static char *json_text(const cJSON *v)
{
    return cJSON_PrintUnformatted(v);
}

TEST(request_bodies)
{
    const char *argv[] = { "-policy=dev", "-ttl=1h", "-type=batch",
                           "-metadata=team=x", "-use-limit=2", NULL };
    const char *mv[] = { "-options=version=1", "-version=2",
                         "-default-lease-ttl=30m", NULL };
    struct cli_opts o;
    struct out err;
    cJSON *b;
    char *s;

    cli__opts_init(&o);
    out_init(&err);
    CHECK_EQ_INT(parse(&o, flags_token_create, argv, &err), 0);
    b = token_create_body(&o);
    s = json_text(b);
    CHECK_STREQ(s, "{\"policies\":[\"dev\"],\"meta\":{\"team\":\"x\"},"
                   "\"ttl\":\"1h0m0s\",\"explicit_max_ttl\":\"0s\","
                   "\"period\":\"0s\",\"display_name\":\"\",\"num_uses\":2,"
                   "\"renewable\":false,\"type\":\"batch\","
                   "\"entity_alias\":\"\"}");
    cJSON_free(s);
    cJSON_Delete(b);
    cli__opts_release(&o);

    cli__opts_init(&o);
    CHECK_EQ_INT(parse(&o, flags_enable, mv, &err), 0);
    b = mount_input(&o, "kv");
    s = json_text(b);
    CHECK_STREQ(s, "{\"type\":\"kv\",\"description\":\"\",\"config\":"
                   "{\"options\":null,\"default_lease_ttl\":\"30m0s\","
                   "\"max_lease_ttl\":\"0s\",\"force_no_cache\":false},"
                   "\"local\":false,\"seal_wrap\":false,"
                   "\"external_entropy_access\":false,"
                   "\"options\":{\"version\":\"2\"}}");
    cJSON_free(s);
    cJSON_Delete(b);
    cli__opts_release(&o);

    out_release(&err);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(request_bodies);
    return HARNESS_DONE();
}
