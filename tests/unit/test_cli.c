/*
 * test_cli.c - unit tests for cli.c: flag parsing (Go `flag` syntax as
 * the Vault CLI takes it), the command tables and -field lookup.
 *
 * Expected strings are what the Vault CLI prints for the same input.
 */
#include "../../src/cli/cli.c"
#include "harness.h"

#include <stdio.h>

/* ---- helpers ---------------------------------------------------------- */

static const char *const no_flags[] = { NULL };

/* Parses argv (NULL-terminated) for a command taking `allowed` flags. */
static int parse(struct cli_opts *o, const char *const *allowed,
                 const char **argv, struct out *err)
{
    int argc = 0;

    while (argv[argc] != NULL)
        argc++;
    return cli__parse_args(o, allowed, argc, (char **)argv, err);
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

/* ---- flags ------------------------------------------------------------ */

TEST(flags_forms)
{
    static const char *const allowed[] = { "force", "mount", "cas", NULL };
    const char *argv[] = { "-force", "--mount", "secret", "-cas=3",
                           "path", "k=v", "-format=json", NULL };
    struct cli_opts o;
    struct out err;

    cli__opts_init(&o);
    out_init(&err);
    CHECK_EQ_INT(parse(&o, allowed, argv, &err), 0);
    CHECK(o.force);
    CHECK_STREQ(o.mount, "secret");
    CHECK_EQ_INT(o.cas, 3);
    CHECK_STREQ(o.format_flag, "json"); /* global flag after positionals */
    CHECK_EQ_INT(o.args.n, 2);
    CHECK_STREQ(o.args.v[0], "path");
    CHECK_STREQ(o.args.v[1], "k=v");
    CHECK(cli__opt_seen(&o, "cas"));
    CHECK(!cli__opt_seen(&o, "version"));
    out_release(&err);
    cli__opts_release(&o);
}

TEST(flags_errors)
{
    static const char *const allowed[] = { "ttl", "renewable", NULL };
    const char *unknown[] = { "-nope", NULL };
    const char *missing[] = { "-ttl", NULL };
    const char *bad_dur[] = { "-ttl=abc", NULL };
    const char *bad_bool[] = { "-renewable=maybe", NULL };
    struct cli_opts o;
    struct out err;

    cli__opts_init(&o);
    out_init(&err);
    CHECK(parse(&o, allowed, unknown, &err) != 0);
    CHECK_STREQ(text(&err), "flag provided but not defined: -nope");
    cli__opts_release(&o);
    out_release(&err);

    cli__opts_init(&o);
    out_init(&err);
    CHECK(parse(&o, allowed, missing, &err) != 0);
    CHECK_STREQ(text(&err), "flag needs an argument: -ttl");
    cli__opts_release(&o);
    out_release(&err);

    cli__opts_init(&o);
    out_init(&err);
    CHECK(parse(&o, allowed, bad_dur, &err) != 0);
    CHECK(str_has_prefix(text(&err), "invalid value \"abc\" for flag -ttl: "));
    cli__opts_release(&o);
    out_release(&err);

    cli__opts_init(&o);
    out_init(&err);
    CHECK(parse(&o, allowed, bad_bool, &err) != 0);
    CHECK_STREQ(text(&err), "invalid boolean value \"maybe\" for -renewable: "
                            "strconv.ParseBool: parsing \"maybe\": invalid "
                            "syntax");
    cli__opts_release(&o);
    out_release(&err);
}

TEST(flags_values)
{
    static const char *const allowed[] = { "ttl", "renewable", "policy",
                                           "metadata", "increment", NULL };
    const char *argv[] = { "-ttl=1h30m", "-renewable=false", "-policy=a",
                           "-policy", " b ", "-metadata=k=v=w", "-i", "90",
                           "--", "-x", NULL };
    struct cli_opts o;
    struct out err;

    cli__opts_init(&o);
    out_init(&err);
    CHECK_EQ_INT(parse(&o, allowed, argv, &err), 0);
    CHECK_EQ_INT(o.ttl, 5400);
    CHECK(!o.renewable);
    CHECK_EQ_INT(o.policies.n, 2);
    CHECK_STREQ(o.policies.v[1], "b");
    CHECK_STREQ(o.metadata.v[0], "k=v=w");
    CHECK_EQ_INT(o.increment, 90);
    CHECK_EQ_INT(o.args.n, 1);
    CHECK_STREQ(o.args.v[0], "-x");
    out_release(&err);
    cli__opts_release(&o);
}

TEST(flags_unknown_after_positional_is_data)
{
    const char *argv[] = { "secret/x", "-notaflag", "-", NULL };
    struct cli_opts o;
    struct out err;

    cli__opts_init(&o);
    out_init(&err);
    CHECK_EQ_INT(parse(&o, no_flags, argv, &err), 0);
    CHECK_EQ_INT(o.args.n, 3);
    CHECK_STREQ(o.args.v[2], "-");
    out_release(&err);
    cli__opts_release(&o);
}

TEST(flags_map_needs_equals)
{
    const char *argv[] = { "-options=version", NULL };
    static const char *const allowed[] = { "options", NULL };
    struct cli_opts o;
    struct out err;

    cli__opts_init(&o);
    out_init(&err);
    CHECK(parse(&o, allowed, argv, &err) != 0);
    CHECK_STREQ(text(&err), "invalid value \"version\" for flag -options: "
                            "missing = in KV pair: \"version\"");
    out_release(&err);
    cli__opts_release(&o);
}

TEST(flags_lease)
{
    const struct cli_command *revoke, *renew;
    const char *rv[] = { "-prefix", "--force", "database/creds/ro",
                         "-sync=false", NULL };
    const char *rn[] = { "-increment=1h", "db/creds/ro/abc", NULL };
    const char *alias[] = { "-i", "90", "db/creds/ro/abc", NULL };
    const char *f[] = { "-f", "-prefix", "x", NULL };
    struct cli_opts o;
    struct out err;
    int used = 0;

    revoke = command("lease", "revoke", NULL, &used);
    renew = command("lease", "renew", NULL, &used);
    CHECK(revoke != NULL && renew != NULL);
    if (revoke == NULL || renew == NULL)
        return;
    cli__opts_init(&o);
    out_init(&err);
    CHECK_EQ_INT(parse(&o, revoke->flags, rv, &err), 0);
    CHECK(o.prefix && o.force && !o.sync);
    CHECK_EQ_INT(o.args.n, 1);
    CHECK_STREQ(o.args.v[0], "database/creds/ro");
    cli__opts_release(&o);

    cli__opts_init(&o);
    CHECK_EQ_INT(parse(&o, revoke->flags, f, &err), 0);
    CHECK(o.force && o.prefix && !o.sync); /* -f is -force, as in Vault */
    cli__opts_release(&o);

    cli__opts_init(&o);
    CHECK_EQ_INT(parse(&o, renew->flags, rn, &err), 0);
    CHECK_EQ_INT(o.increment, 3600);
    CHECK_STREQ(o.args.v[0], "db/creds/ro/abc");
    cli__opts_release(&o);

    cli__opts_init(&o);
    CHECK_EQ_INT(parse(&o, renew->flags, alias, &err), 0);
    CHECK_EQ_INT(o.increment, 90);
    cli__opts_release(&o);
    out_release(&err);
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

TEST(dispatch_flags_per_command)
{
    const char *prefix[] = { "-prefix", "x", NULL };
    const char *incr[] = { "-increment=5m", "x", NULL };
    const char *global[] = { "-format=json", "-field=ttl", "x", NULL };
    const struct cli_command *lookup;
    struct cli_opts o;
    struct out err;
    int used = 0;

    lookup = command("lease", "lookup", NULL, &used);
    CHECK(lookup != NULL);
    if (lookup == NULL)
        return;
    cli__opts_init(&o);
    out_init(&err);
    CHECK(parse(&o, lookup->flags, prefix, &err) != 0);
    CHECK_STREQ(text(&err), "flag provided but not defined: -prefix");
    cli__opts_release(&o);
    out_release(&err);

    cli__opts_init(&o);
    out_init(&err);
    CHECK(parse(&o, lookup->flags, incr, &err) != 0);
    CHECK_STREQ(text(&err), "flag provided but not defined: -increment");
    cli__opts_release(&o);
    out_release(&err);

    cli__opts_init(&o);
    out_init(&err);
    CHECK_EQ_INT(parse(&o, lookup->flags, global, &err), 0);
    CHECK_STREQ(o.format_flag, "json");
    CHECK_STREQ(o.field, "ttl");
    cli__opts_release(&o);
    out_release(&err);
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
    RUN(flags_map_needs_equals);
    RUN(flags_lease);
    RUN(dispatch_tables);
    RUN(dispatch_flags_per_command);
    RUN(raw_field_lookup);
    return HARNESS_DONE();
}
