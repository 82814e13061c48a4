/*
 * test_cli_lease.c - unit tests for cli_lease.c: the request each lease
 * command sends, its argument checks and messages, and how its responses
 * print.
 *
 * Commands run through cli_main() with stdout and stderr captured. Usage
 * errors never reach the network; the error-path cases point -address at
 * a closed port, so they need no server. Expected texts are the Vault
 * CLI's (command/lease_*.go).
 */
#include "../../src/cli/cli_lease.c"
#include "harness.h"

#include <stdio.h>
#include <unistd.h>

#include "../../src/cli/cli.h"
#include "cli_capture.h"

/* Nothing listens here: connections are refused at once. */
#define DEAD_ADDR "-address=http://127.0.0.1:1"

/* ---- helpers ---------------------------------------------------------- */


/* Runs `coffer lease ARGS...` (NULL-terminated) and captures its output. */
static void run_lease(struct run *r, const char *const *args)
{
    char *argv[16];
    FILE *tout = NULL, *terr = NULL;
    int argc = 0, so, se;

    argv[argc++] = (char *)"coffer";
    argv[argc++] = (char *)"lease";
    while (*args != NULL && argc < 15)
        argv[argc++] = (char *)*args++;
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    so = redirect(STDOUT_FILENO, &tout);
    se = redirect(STDERR_FILENO, &terr);
    r->rc = cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    r->err = restore(STDERR_FILENO, se, terr);
    r->out = restore(STDOUT_FILENO, so, tout);
}


/* ---- requests --------------------------------------------------------- */

TEST(renew_body_increment)
{
    static const struct {
        int64_t increment;
        const char *body;
    } cases[] = {
        { 0, "{\"increment\":0,\"lease_id\":\"db/creds/ro/a\"}" },
        { 3600, "{\"increment\":3600,\"lease_id\":\"db/creds/ro/a\"}" },
        /* -increment=system parses to -1; Vault would send 0 too. */
        { -1, "{\"increment\":0,\"lease_id\":\"db/creds/ro/a\"}" },
    };
    cJSON *b;
    char *s;
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        b = renew_body("db/creds/ro/a", cases[i].increment);
        s = json_text(b);
        CHECK_STREQ(s, cases[i].body);
        free(s);
        cJSON_Delete(b);
    }
}

TEST(revoke_paths_and_bodies)
{
    static const struct {
        bool prefix, force, sync;
        const char *path, *body;
    } cases[] = {
        /* Without -sync revocation is queued, as with Vault's CLI. */
        { false, false, false, "sys/leases/revoke",
          "{\"lease_id\":\"db/creds/ro/a\",\"sync\":false}" },
        { false, false, true, "sys/leases/revoke",
          "{\"lease_id\":\"db/creds/ro/a\",\"sync\":true}" },
        { true, false, false, "sys/leases/revoke-prefix/db/creds/ro/a",
          "{\"sync\":false}" },
        { true, false, true, "sys/leases/revoke-prefix/db/creds/ro/a",
          "{\"sync\":true}" },
        /* -force is always synchronous and sends no body. */
        { true, true, false, "sys/leases/revoke-force/db/creds/ro/a",
          "null" },
        { true, true, true, "sys/leases/revoke-force/db/creds/ro/a",
          "null" },
    };
    struct lease_revoke_opts o;
    cJSON *body = NULL;
    char *path, *s;
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        o.prefix = cases[i].prefix;
        o.force = cases[i].force;
        o.sync = cases[i].sync;
        path = revoke_request(&o, "db/creds/ro/a", &body);
        s = json_text(body);
        CHECK_STREQ(path, cases[i].path);
        CHECK_STREQ(s, cases[i].body);
        free(s);
        free(path);
        cJSON_Delete(body);
    }
}

/* ---- usage errors (exit 1, nothing sent) ------------------------------ */

TEST(usage_errors)
{
    static const struct {
        const char *args[5];
        const char *err;
    } cases[] = {
        { { "lookup", NULL }, "Missing ID!\n" },
        { { "lookup", "a", "b", NULL },
          "Too many arguments (expected 1, got 2)\n" },
        { { "renew", NULL }, "Missing ID!\n" },
        { { "renew", "-increment=1h", NULL }, "Missing ID!\n" },
        { { "renew", "a", "b", NULL },
          "Too many arguments (expected 1-2, got 2)\n" },
        { { "revoke", NULL }, "Not enough arguments (expected 1, got 0)\n" },
        { { "revoke", "-prefix", NULL },
          "Not enough arguments (expected 1, got 0)\n" },
        { { "revoke", "a", "b", NULL },
          "Too many arguments (expected 1, got 2)\n" },
        { { "revoke", "-force", "db/creds", NULL },
          "Specifying -force requires also specifying -prefix\n" },
        { { "revoke", "-prefix", " ", NULL },
          "Refusing to revoke with an empty prefix (\"\"): it would revoke "
          "every lease\n" },
        { { "revoke", "-prefix", "-force", "db/..", NULL },
          "Refusing to revoke with an empty prefix (\"db/..\"): it would "
          "revoke every lease\n" },
        { { "revoke", "-prefix", "/", NULL },
          "Refusing to revoke with an empty prefix (\"/\"): it would revoke "
          "every lease\n" },
        { { "list", NULL }, "Not enough arguments (expected 1, got 0)\n" },
        { { "lookup", "-prefix", "a", NULL },
          "flag provided but not defined: -prefix\n" },
        { { "lookup", "-increment=5m", "a", NULL },
          "flag provided but not defined: -increment\n" },
        /* -f is -force and -i is -increment, as in Vault. */
        { { "revoke", "-f", "db/creds", NULL },
          "Specifying -force requires also specifying -prefix\n" },
        { { "renew", "-i", NULL }, "flag needs an argument: -i\n" },
        /* The global flags go with every command. */
        { { "lookup", "-format=json", "-field=ttl", NULL },
          "Missing ID!\n" },
        { { "renew", "-increment=soon", "a", NULL },
          "invalid value \"soon\" for flag -increment: time: invalid "
          "duration \"soon\"\n" },
        { { "revoke", "-sync=maybe", "a", NULL },
          "invalid boolean value \"maybe\" for -sync: strconv.ParseBool: "
          "parsing \"maybe\": invalid syntax\n" },
        { { "list", "-format=raw", "a", NULL },
          "This command does not support the -format=raw option.\n" },
    };
    struct run r;
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        run_lease(&r, cases[i].args);
        CHECK_EQ_INT(r.rc, 1);
        CHECK_STREQ(r.err, cases[i].err);
        CHECK_STREQ(r.out, "");
        run_free(&r);
    }
}

TEST(help)
{
    const char *group[] = { NULL };
    const char *sub[] = { "revoke", "-h", NULL };
    struct run r;

    run_lease(&r, group); /* "lease" alone: the group's help, exit 1 */
    CHECK_EQ_INT(r.rc, 1);
    CHECK(str_has_prefix(r.err, "Usage: coffer lease <subcommand>"));
    run_free(&r);
    run_lease(&r, sub);
    CHECK_EQ_INT(r.rc, 0);
    CHECK(str_has_prefix(r.out, "Usage: coffer lease revoke [options] ID"));
    CHECK(strstr(r.out, "-sync") != NULL);
    run_free(&r);
}

/* ---- errors from the transport (exit 2, Vault's prefixes) ------------ */

TEST(request_errors)
{
    static const struct {
        const char *args[6];
        const char *err;
    } cases[] = {
        { { "lookup", DEAD_ADDR, " db/creds/ro/a ", NULL },
          "error looking up lease id db/creds/ro/a: Put "
          "\"http://127.0.0.1:1/v1/sys/leases/lookup\": " },
        { { "renew", DEAD_ADDR, "db/creds/ro/a", NULL },
          "Error renewing db/creds/ro/a: Put "
          "\"http://127.0.0.1:1/v1/sys/leases/renew\": " },
        { { "revoke", DEAD_ADDR, "db/creds/ro/a", NULL },
          "Error revoking lease db/creds/ro/a: Put "
          "\"http://127.0.0.1:1/v1/sys/leases/revoke\": " },
        { { "revoke", DEAD_ADDR, "-prefix", "db/creds/ro", NULL },
          "Error revoking leases with prefix db/creds/ro: Put "
          "\"http://127.0.0.1:1/v1/sys/leases/revoke-prefix/db/creds/ro\": " },
        { { "revoke", DEAD_ADDR, "-prefix", "-force", "db/creds/ro", NULL },
          "Warning! Force-removing leases can cause Vault to become out of "
          "sync with\nsecret engines!\n"
          "Error force revoking leases with prefix db/creds/ro: Put "
          "\"http://127.0.0.1:1/v1/sys/leases/revoke-force/db/creds/ro\": " },
        { { "list", DEAD_ADDR, "/db/creds/", NULL },
          "Error listing sys/leases/lookup/db/creds: List "
          "\"http://127.0.0.1:1/v1/sys/leases/lookup/db/creds\": " },
    };
    struct run r;
    size_t i;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        run_lease(&r, cases[i].args);
        CHECK_EQ_INT(r.rc, 2);
        CHECK(str_has_prefix(r.err, cases[i].err));
        if (!str_has_prefix(r.err, cases[i].err))
            printf("  got: %s\n", r.err);
        CHECK(strstr(r.err, "connection refused\n") != NULL);
        CHECK_STREQ(r.out, "");
        run_free(&r);
    }
}

/* ---- output ----------------------------------------------------------- */

TEST(revoke_messages)
{
    static const struct {
        bool prefix, force, sync;
        const char *line;
    } cases[] = {
        { false, false, false,
          "All revocation operations queued successfully!\n" },
        { true, false, false,
          "All revocation operations queued successfully!\n" },
        { false, false, true, "Success! Revoked lease: db/creds/ro/a\n" },
        { true, false, true,
          "Success! Revoked any leases with prefix: db/creds/ro/a\n" },
        { true, true, false,
          "Success! Force revoked any leases with prefix: db/creds/ro/a\n" },
        { true, true, true,
          "Success! Force revoked any leases with prefix: db/creds/ro/a\n" },
    };
    struct lease_revoke_opts o;
    FILE *tmp = NULL;
    char *got;
    size_t i;
    int saved;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        o.prefix = cases[i].prefix;
        o.force = cases[i].force;
        o.sync = cases[i].sync;
        fflush(stdout);
        saved = redirect(STDOUT_FILENO, &tmp);
        revoke_success(&o, "db/creds/ro/a");
        fflush(stdout);
        got = restore(STDOUT_FILENO, saved, tmp);
        CHECK_STREQ(got, cases[i].line);
        free(got);
    }
}

/* What `lease lookup` and `lease renew` print for the server's answers. */
TEST(response_tables)
{
    cJSON *lookup = cJSON_Parse(
        "{\"request_id\":\"r\",\"lease_id\":\"\",\"renewable\":false,"
        "\"lease_duration\":0,\"data\":{\"expire_time\":"
        "\"2024-05-01T11:00:00.123456789Z\",\"id\":\"db/creds/ro/AbC\","
        "\"issue_time\":\"2024-05-01T10:00:00.123456789Z\","
        "\"last_renewal\":null,\"renewable\":true,\"ttl\":3599},"
        "\"warnings\":null}");
    cJSON *renew = cJSON_Parse(
        "{\"request_id\":\"r\",\"lease_id\":\"db/creds/ro/AbC\","
        "\"renewable\":true,\"lease_duration\":3600,\"data\":null,"
        "\"warnings\":null}");
    struct out o;

    out_init(&o);
    fmt_secret_table(&o, lookup);
    CHECK_STREQ(o.b.ptr, "Key             Value\n"
                         "---             -----\n"
                         "expire_time     2024-05-01T11:00:00.123456789Z\n"
                         "id              db/creds/ro/AbC\n"
                         "issue_time      2024-05-01T10:00:00.123456789Z\n"
                         "last_renewal    <nil>\n"
                         "renewable       true\n"
                         "ttl             59m59s\n");
    out_release(&o);
    out_init(&o);
    fmt_secret_table(&o, renew);
    CHECK_STREQ(o.b.ptr, "Key                Value\n"
                         "---                -----\n"
                         "lease_id           db/creds/ro/AbC\n"
                         "lease_duration     1h\n"
                         "lease_renewable    true\n");
    out_release(&o);
    cJSON_Delete(renew);
    cJSON_Delete(lookup);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(renew_body_increment);
    RUN(revoke_paths_and_bodies);
    RUN(usage_errors);
    RUN(help);
    RUN(request_errors);
    RUN(revoke_messages);
    RUN(response_tables);
    return HARNESS_DONE();
}
