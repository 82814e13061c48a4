/*
 * test_cli.c - unit tests for cli.c: flag parsing (Go `flag` syntax as
 * the Vault CLI takes it), the command tables and -field lookup. Which
 * flags each command takes is tested through the commands themselves
 * (test_cli_lease.c, test_cli_operator.c).
 *
 * Expected strings are what the Vault CLI prints for the same input.
 */
#include "../../src/cli/cli.c"
#include "harness.h"

#include <stdio.h>
#include <unistd.h>

#include "cli_capture.h"

/* ---- helpers ---------------------------------------------------------- */

/* Parses argv (NULL-terminated) into ctx (fresh) and the command's flags. */
static int parse(struct cli *ctx, const struct cli_flag *flags,
                 const char **argv, struct out *err)
{
    int argc = 0;

    while (argv[argc] != NULL)
        argc++;
    cli__init(ctx, NULL);
    out_init(err);
    return cli__parse_args(ctx, flags, argc, (char **)argv, err);
}

static void parse_done(struct cli *ctx, struct out *err)
{
    cli__release(ctx);
    out_release(err);
}

static const char *text(struct out *o)
{
    return o->b.ptr != NULL ? o->b.ptr : "";
}

/* The command `coffer w1 w2 [w3]`, or NULL. */
static const struct cli_command *command(const char *w1, const char *w2,
                                         const char *w3, int *used)
{
    char *argv[5] = { (char *)"coffer", (char *)w1, (char *)w2, (char *)w3,
                      NULL };
    int argc = w3 != NULL ? 4 : w2 != NULL ? 3 : 2;

    *used = 0;
    return find_command(argc, argv, used);
}

/* A command's options, as the tests below bind them. */
struct test_opts {
    bool force;
    const char *mount;
    int64_t cas;
    int64_t ttl;
    int64_t increment;
    bool renewable;
    struct strvec policies;
    struct strvec metadata;
    struct strvec options;
};

static void test_opts_init(struct test_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->cas = -1;
    o->renewable = true;
    strvec_init(&o->policies);
    strvec_init(&o->metadata);
    strvec_init(&o->options);
}

static void test_opts_release(struct test_opts *o)
{
    strvec_release(&o->policies);
    strvec_release(&o->metadata);
    strvec_release(&o->options);
}

/* ---- flags ------------------------------------------------------------ */

TEST(flags_forms)
{
    const char *argv[] = { "-force", "--mount", "secret", "-cas=3",
                           "path", "k=v", "-format=json", NULL };
    struct test_opts o;
    const struct cli_flag flags[] = {
        CLI_BOOL("force", "f", &o.force),
        CLI_STRING("mount", NULL, &o.mount),
        CLI_INT("cas", NULL, &o.cas),
        CLI_FLAG_END,
    };
    struct cli ctx;
    struct out err;

    test_opts_init(&o);
    CHECK_EQ_INT(parse(&ctx, flags, argv, &err), 0);
    CHECK(o.force);
    CHECK_STREQ(o.mount, "secret");
    CHECK_EQ_INT(o.cas, 3);
    CHECK_STREQ(ctx.g.format_flag, "json"); /* global flag after args */
    CHECK_EQ_INT(ctx.args.n, 2);
    CHECK_STREQ(ctx.args.v[0], "path");
    CHECK_STREQ(ctx.args.v[1], "k=v");
    parse_done(&ctx, &err);
    test_opts_release(&o);
}

TEST(flags_errors)
{
    const char *unknown[] = { "-nope", NULL };
    const char *missing[] = { "-ttl", NULL };
    const char *bad_dur[] = { "-ttl=abc", NULL };
    const char *bad_bool[] = { "-renewable=maybe", NULL };
    const char *bad_int[] = { "-cas=x1", NULL };
    struct test_opts o;
    const struct cli_flag flags[] = {
        CLI_DURATION("ttl", NULL, &o.ttl),
        CLI_BOOL("renewable", NULL, &o.renewable),
        CLI_INT("cas", NULL, &o.cas),
        CLI_FLAG_END,
    };
    struct cli ctx;
    struct out err;

    test_opts_init(&o);
    CHECK(parse(&ctx, flags, unknown, &err) != 0);
    CHECK_STREQ(text(&err), "flag provided but not defined: -nope");
    parse_done(&ctx, &err);

    CHECK(parse(&ctx, flags, missing, &err) != 0);
    CHECK_STREQ(text(&err), "flag needs an argument: -ttl");
    parse_done(&ctx, &err);

    CHECK(parse(&ctx, flags, bad_dur, &err) != 0);
    CHECK(str_has_prefix(text(&err), "invalid value \"abc\" for flag -ttl: "));
    parse_done(&ctx, &err);

    CHECK(parse(&ctx, flags, bad_bool, &err) != 0);
    CHECK_STREQ(text(&err), "invalid boolean value \"maybe\" for -renewable: "
                            "strconv.ParseBool: parsing \"maybe\": invalid "
                            "syntax");
    parse_done(&ctx, &err);

    CHECK(parse(&ctx, flags, bad_int, &err) != 0);
    CHECK_STREQ(text(&err), "invalid value \"x1\" for flag -cas: "
                            "strconv.ParseInt: parsing \"x1\": invalid "
                            "syntax");
    parse_done(&ctx, &err);
    test_opts_release(&o);
}

TEST(flags_values)
{
    const char *argv[] = { "-ttl=1h30m", "-renewable=false", "-policy=a",
                           "-policy", " b ", "-metadata=k=v=w", "-i", "90",
                           "--", "-x", NULL };
    struct test_opts o;
    const struct cli_flag flags[] = {
        CLI_DURATION("ttl", NULL, &o.ttl),
        CLI_BOOL("renewable", NULL, &o.renewable),
        CLI_LIST("policy", NULL, &o.policies),
        CLI_MAP("metadata", NULL, &o.metadata),
        CLI_DURATION("increment", "i", &o.increment),
        CLI_FLAG_END,
    };
    struct cli ctx;
    struct out err;

    test_opts_init(&o);
    CHECK_EQ_INT(parse(&ctx, flags, argv, &err), 0);
    CHECK_EQ_INT(o.ttl, 5400);
    CHECK(!o.renewable);
    CHECK_EQ_INT(o.policies.n, 2);
    CHECK_STREQ(o.policies.v[1], "b");
    CHECK_STREQ(o.metadata.v[0], "k=v=w");
    CHECK_EQ_INT(o.increment, 90);
    CHECK_EQ_INT(ctx.args.n, 1);
    CHECK_STREQ(ctx.args.v[0], "-x");
    parse_done(&ctx, &err);
    test_opts_release(&o);
}

TEST(flags_aliases)
{
    const char *argv[] = { "-f", "--i=system", NULL };
    struct test_opts o;
    const struct cli_flag flags[] = {
        CLI_BOOL("force", "f", &o.force),
        CLI_DURATION("increment", "i", &o.increment),
        CLI_FLAG_END,
    };
    struct cli ctx;
    struct out err;

    test_opts_init(&o);
    CHECK_EQ_INT(parse(&ctx, flags, argv, &err), 0);
    CHECK(o.force);
    CHECK_EQ_INT(o.increment, -1); /* "system", as in Vault */
    parse_done(&ctx, &err);
    test_opts_release(&o);
}

TEST(flags_unknown_after_positional_is_data)
{
    const char *argv[] = { "secret/x", "-notaflag", "-", NULL };
    struct cli ctx;
    struct out err;

    CHECK_EQ_INT(parse(&ctx, NULL, argv, &err), 0);
    CHECK_EQ_INT(ctx.args.n, 3);
    CHECK_STREQ(ctx.args.v[2], "-");
    parse_done(&ctx, &err);
}

TEST(flags_map_needs_equals)
{
    const char *argv[] = { "-options=version", NULL };
    struct test_opts o;
    const struct cli_flag flags[] = {
        CLI_MAP("options", NULL, &o.options),
        CLI_FLAG_END,
    };
    struct cli ctx;
    struct out err;

    test_opts_init(&o);
    CHECK(parse(&ctx, flags, argv, &err) != 0);
    CHECK_STREQ(text(&err), "invalid value \"version\" for flag -options: "
                            "missing = in KV pair: \"version\"");
    parse_done(&ctx, &err);
    test_opts_release(&o);
}

TEST(flags_global)
{
    const char *argv[] = { "-address", "http://h:1", "-ca-cert=/c",
                           "-tls-skip-verify", "-field=ttl", "-detailed",
                           "-help=x", NULL };
    const char *own[] = { "-force", NULL };
    struct cli ctx;
    struct out err;

    /* A command without flags of its own still takes the global ones. */
    CHECK_EQ_INT(parse(&ctx, NULL, argv, &err), 0);
    CHECK_STREQ(ctx.g.address, "http://h:1");
    CHECK_STREQ(ctx.g.ca_cert, "/c");
    CHECK(ctx.g.tls_skip_verify);
    CHECK_STREQ(ctx.g.field, "ttl");
    CHECK(ctx.g.detailed);
    CHECK_EQ_INT(ctx.args.n, 0);
    parse_done(&ctx, &err);

    CHECK(parse(&ctx, NULL, own, &err) != 0);
    CHECK_STREQ(text(&err), "flag provided but not defined: -force");
    parse_done(&ctx, &err);
}

/* ---- dispatch --------------------------------------------------------- */

TEST(dispatch_tables)
{
    static const char *const found[][3] = {
        { "read", NULL, NULL },          { "status", NULL, NULL },
        { "secrets", "tune", NULL },     { "token", "renew", NULL },
        { "kv", "put", NULL },           { "kv", "metadata", "get" },
        { "lease", "lookup", NULL },     { "lease", "renew", NULL },
        { "lease", "revoke", NULL },     { "lease", "list", NULL },
    };
    const struct cli_command *c;
    size_t i;
    int used = 0, want;

    for (i = 0; i < ARRAY_LEN(found); i++) {
        c = command(found[i][0], found[i][1], found[i][2], &used);
        want = found[i][2] != NULL ? 3 : found[i][1] != NULL ? 2 : 1;
        CHECK(c != NULL);
        CHECK_EQ_INT(used, want);
        if (c != NULL)
            CHECK_STREQ(c->words[want - 1], found[i][want - 1]);
    }
    CHECK(command("lease", NULL, NULL, &used) == NULL);
    CHECK(command("lease", "tidy", NULL, &used) == NULL);
    CHECK(command("kv", "metadata", NULL, &used) == NULL);
    /* Extra words are the command's arguments. */
    c = command("lease", "lookup", "db/creds/x/1", &used);
    CHECK(c != NULL && used == 2);
    /* Only read takes -format=raw. */
    c = command("read", NULL, NULL, &used);
    CHECK(c != NULL && c->raw_ok);
    c = command("lease", "lookup", NULL, &used);
    CHECK(c != NULL && !c->raw_ok);
}

/* cli__parse for cmd with no flags of its own; *msg gets its stderr. */
static int parse_for(const struct cli_command *cmd, const char *arg,
                     char **msg)
{
    char *argv[2] = { (char *)arg, NULL };
    struct cli ctx;
    FILE *tmp = NULL;
    int rc, saved;

    fflush(stderr);
    saved = redirect(STDERR_FILENO, &tmp);
    cli__init(&ctx, cmd);
    rc = cli__parse(&ctx, NULL, 1, argv);
    if (rc == 0 && ctx.format != CLI_FMT_RAW)
        rc = -1;
    cli__release(&ctx);
    fflush(stderr);
    *msg = restore(STDERR_FILENO, saved, tmp);
    return rc;
}

TEST(dispatch_format)
{
    const struct cli_command *read, *list;
    char *msg;
    int used = 0;

    read = command("read", NULL, NULL, &used);
    list = command("list", NULL, NULL, &used);
    CHECK(read != NULL && list != NULL);
    if (read == NULL || list == NULL)
        return;
    CHECK_EQ_INT(parse_for(read, "-format=raw", &msg), 0);
    CHECK_STREQ(msg, "");
    free(msg);
    CHECK_EQ_INT(parse_for(list, "-format=raw", &msg), 1);
    CHECK_STREQ(msg, "This command does not support the -format=raw "
                     "option.\n");
    free(msg);
    CHECK_EQ_INT(parse_for(read, "-format=xml", &msg), 1);
    CHECK_STREQ(msg, "Invalid output format: xml\n");
    free(msg);
}

/* ---- -field ----------------------------------------------------------- */

TEST(raw_field_lookup)
{
    cJSON *s = cJSON_Parse("{\"lease_duration\":30,\"data\":{\"data\":"
                           "{\"k\":\"v\"},\"x\":null}}");
    cJSON *tmp = NULL;
    const cJSON *v;

    v = raw_field(s, "lease_id", &tmp);
    CHECK(cJSON_IsString(v) && v->valuestring[0] == '\0');
    v = raw_field(s, "refresh_interval", &tmp);
    CHECK(cJSON_IsNumber(v) && v->valuedouble == 30);
    v = raw_field(s, "data", &tmp);
    CHECK(cJSON_IsObject(v) && cJSON_HasObjectItem(v, "k"));
    v = raw_field(s, "x", &tmp);
    CHECK(cJSON_IsNull(v));
    CHECK(raw_field(s, "missing", &tmp) == NULL);
    cJSON_Delete(tmp);
    cJSON_Delete(s);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(flags_forms);
    RUN(flags_errors);
    RUN(flags_values);
    RUN(flags_unknown_after_positional_is_data);
    RUN(flags_aliases);
    RUN(flags_map_needs_equals);
    RUN(flags_global);
    RUN(dispatch_tables);
    RUN(dispatch_format);
    RUN(raw_field_lookup);
    return HARNESS_DONE();
}
