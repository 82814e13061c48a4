/*
 * cli_lease.c - the lease commands: lookup, renew, revoke and list.
 *
 * Owns: the arguments and flags of each command, the sys/leases request
 * it sends, and what it prints. Wording and exit codes are the Vault
 * CLI's (command/lease_*.go); `lease list` has no Vault counterpart and
 * behaves exactly like `list sys/leases/lookup/PREFIX`.
 *
 *   lease lookup ID       PUT  sys/leases/lookup  {"lease_id"}
 *   lease renew ID        PUT  sys/leases/renew   {"increment","lease_id"}
 *   lease revoke ID       PUT  sys/leases/revoke  {"lease_id","sync"}
 *     -prefix             PUT  sys/leases/revoke-prefix/<ID>  {"sync"}
 *     -prefix -force      PUT  sys/leases/revoke-force/<ID>   (no body)
 *   lease list PREFIX     LIST sys/leases/lookup/<PREFIX>
 *
 * One deliberate difference from Vault's CLI on the wire: the id of a
 * plain revoke goes in the body, not the URL (the same handler, and the
 * id is kept out of the client's path cleaning). Like Vault's CLI,
 * revocation is asynchronous ({"sync": false}) unless -sync is given.
 *
 * Not owned: flag parsing and dispatch (cli.c), HTTP (cli_http.c),
 * formatting (cli_format.c).
 *
 * Entry point: the table cli__lease_commands (cli_cmd.h).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli_cmd.h"
#include "cli_format.h"
#include "cli_http.h"
#include "../common.h"
#include "../json.h"
#include "../util.h"

/* Printed on stderr before a forced revocation (Vault, wrapped at 78). */
#define FORCE_WARNING                                                        \
    "Warning! Force-removing leases can cause Vault to become out of sync " \
    "with secret engines!"

/* ====================================================================
 * Options, request bodies and paths
 * ==================================================================== */

/* lease renew's flags. */
struct lease_renew_opts {
    int64_t increment; /* -increment, -i: the new TTL asked for */
};

/* lease revoke's flags. */
struct lease_revoke_opts {
    bool prefix; /* -prefix: every lease under ID */
    bool force;  /* -force, -f (with -prefix): delete even if revoking fails */
    bool sync;   /* -sync: wait for the revocation */
};

/* {"increment": secs, "lease_id": id}, in Go's sorted map order. */
static cJSON *renew_body(const char *id, int64_t increment)
{
    cJSON *b = cJSON_CreateObject();

    COFFER_ASSERT(b != NULL);
    cJSON_AddNumberToObject(b, "increment",
                            (double)(increment > 0 ? increment : 0));
    cJSON_AddStringToObject(b, "lease_id", id);
    return b;
}

/*
 * The API path and body of `lease revoke` for the given flags. Returns
 * the path (a new string) and sets *body to a new object, or to NULL for
 * -force, which takes no body.
 */
static char *revoke_request(const struct lease_revoke_opts *o,
                            const char *id, cJSON **body)
{
    *body = NULL;
    if (o->force)
        return cli__str_concat3("sys/leases/revoke-force/", id, "");
    if (!o->prefix)
        *body = cli__one_member("lease_id", id);
    if (*body == NULL)
        *body = cJSON_CreateObject();
    COFFER_ASSERT(*body != NULL);
    cJSON_AddBoolToObject(*body, "sync", o->sync);
    if (o->prefix)
        return cli__str_concat3("sys/leases/revoke-prefix/", id, "");
    return xstrdup("sys/leases/revoke");
}

/* ====================================================================
 * Argument checks (Vault's texts; each prints and returns 1 on error)
 * ==================================================================== */

/* lookup and renew take exactly one ID; Vault words the two cases apart. */
static int one_id_usage(size_t n, const char *too_many_expected)
{
    if (n == 0)
        return cli__fail(1, "Missing ID!");
    if (n > 1)
        return cli__fail(1, "Too many arguments (expected %s, got %zu)",
                         too_many_expected, n);
    return 0;
}

/*
 * True when a -prefix argument names nothing once the request path is
 * cleaned ("", " ", "/", "a/.."): the request would go to the bare
 * revoke-prefix endpoint, which Vault rejects but Coffer's server reads
 * as "every lease". Not a Vault check; it guards against that mistake.
 */
static bool prefix_is_empty(const char *id)
{
    char *raw = cli__str_concat3("sys/leases/revoke-prefix/", id, "");
    char *clean = cli__path_join(raw, NULL, NULL);
    bool empty = !str_has_prefix(clean, "sys/leases/revoke-prefix/");

    free(clean);
    free(raw);
    return empty;
}

static int revoke_usage(const struct lease_revoke_opts *o,
                        const struct strvec *args)
{
    int rc = cli__arg_count_error(args->n, 1, 1);
    char *id = NULL;

    if (rc != 0)
        return rc;
    if (o->force && !o->prefix)
        return cli__fail(1, "Specifying -force requires also specifying "
                            "-prefix");
    id = cli__trim_dup(args->v[0]);
    if (o->prefix && prefix_is_empty(id))
        rc = cli__fail(1, "Refusing to revoke with an empty prefix (\"%s\"): "
                          "it would revoke every lease", id);
    free(id);
    return rc;
}

/* ====================================================================
 * lease lookup | renew | revoke | list
 * ==================================================================== */

static int cmd_lease_lookup(struct cli *ctx, int argc, char **argv)
{
    cJSON *body = NULL, *secret = NULL;
    char *id = NULL;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = one_id_usage(ctx->args.n, "1");
    if (rc == 0)
        rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    id = cli__trim_dup(ctx->args.v[0]);
    body = cli__one_member("lease_id", id);
    rc = cli__call(ctx, "PUT", "sys/leases/lookup", NULL, body, CLI_CALL_RAW,
                   &secret, "error looking up lease id %s", id);
    if (rc != 0)
        goto out;
    rc = secret != NULL ? cli__print_result(ctx, secret) : 0;
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    free(id);
    return rc;
}

static int cmd_lease_renew(struct cli *ctx, int argc, char **argv)
{
    struct lease_renew_opts o = { 0 };
    const struct cli_flag flags[] = {
        CLI_DURATION("increment", "i", &o.increment),
        CLI_FLAG_END,
    };
    cJSON *body = NULL, *secret = NULL;
    char *id = NULL;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = one_id_usage(ctx->args.n, "1-2");
    if (rc == 0)
        rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    id = cli__trim_dup(ctx->args.v[0]);
    body = renew_body(id, o.increment);
    rc = cli__call(ctx, "PUT", "sys/leases/renew", NULL, body, CLI_CALL_RAW,
                   &secret, "Error renewing %s", id);
    if (rc != 0)
        goto out;
    rc = secret != NULL ? cli__print_result(ctx, secret) : 0;
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    free(id);
    return rc;
}

/* The line Vault prints after a revocation went through. */
static void revoke_success(const struct lease_revoke_opts *o,
                           const char *id)
{
    if (o->force)
        printf("Success! Force revoked any leases with prefix: %s\n", id);
    else if (o->sync && o->prefix)
        printf("Success! Revoked any leases with prefix: %s\n", id);
    else if (o->sync)
        printf("Success! Revoked lease: %s\n", id);
    else
        printf("All revocation operations queued successfully!\n");
}

/* Vault's c.UI.Warn(wrapAtLength(...)) before a forced revocation. */
static void force_warning(void)
{
    struct out o;

    out_init(&o);
    fmt_wrap(&o, FORCE_WARNING, 78, 0);
    out_putc(&o, '\n');
    cli__emit(stderr, &o);
    out_release(&o);
}

static int cmd_lease_revoke(struct cli *ctx, int argc, char **argv)
{
    struct lease_revoke_opts o = { false, false, false };
    const struct cli_flag flags[] = {
        CLI_BOOL("prefix", NULL, &o.prefix),
        CLI_BOOL("force", "f", &o.force),
        CLI_BOOL("sync", NULL, &o.sync),
        CLI_FLAG_END,
    };
    cJSON *body = NULL, *secret = NULL;
    const char *what;
    char *id = NULL, *path = NULL;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = revoke_usage(&o, &ctx->args);
    if (rc == 0)
        rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    id = cli__trim_dup(ctx->args.v[0]);
    path = revoke_request(&o, id, &body);
    if (o.force)
        force_warning();
    if (o.force)
        what = "Error force revoking leases with prefix";
    else if (o.prefix)
        what = "Error revoking leases with prefix";
    else
        what = "Error revoking lease";
    rc = cli__call(ctx, "PUT", path, NULL, body, CLI_CALL_RAW, &secret,
                   "%s %s", what, id);
    if (rc != 0)
        goto out;
    revoke_success(&o, id);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    free(path);
    free(id);
    return rc;
}

/* `list sys/leases/lookup/PREFIX`, word for word. */
static int cmd_lease_list(struct cli *ctx, int argc, char **argv)
{
    char *prefix = NULL, *path = NULL;
    cJSON *secret = NULL;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    prefix = cli__sanitize_path(ctx->args.v[0]);
    path = cli__str_concat3("sys/leases/lookup/", prefix, "");
    rc = cli__call(ctx, "LIST", path, NULL, NULL, CLI_CALL_READ, &secret,
                   "Error listing %s", path);
    if (rc != 0)
        goto out;
    rc = cli__list_output(ctx, path, secret);
out:
    json_delete_wiped(secret);
    free(path);
    free(prefix);
    return rc;
}

/* ====================================================================
 * Help text and the command table
 * ==================================================================== */

static const char help_lease_lookup[] =
    "Usage: coffer lease lookup [options] ID\n\n"
    "  Shows a lease: its issue and expiry times, TTL and whether it can be\n"
    "  renewed (PUT /v1/sys/leases/lookup).\n\n"
    "      $ coffer lease lookup database/creds/readonly/2f6a614c...\n"
    CLI_HELP_GLOBAL;

static const char help_lease_renew[] =
    "Usage: coffer lease renew [options] ID\n\n"
    "  Renews the lease ID: asks for a new TTL counted from now. The server\n"
    "  may cap it at the lease's maximum TTL.\n\n"
    "Command options:\n\n"
    "  -increment=<duration>, -i\n"
    "      The TTL asked for (default: the lease's own TTL).\n"
    CLI_HELP_GLOBAL;

static const char help_lease_revoke[] =
    "Usage: coffer lease revoke [options] ID\n\n"
    "  Revokes the lease ID, or with -prefix every lease under ID. The\n"
    "  revocation is queued unless -sync is given.\n\n"
    "      $ coffer lease revoke -prefix database/creds/\n\n"
    "Command options:\n\n"
    "  -prefix\n"
    "      Treat ID as a prefix and revoke every lease under it.\n\n"
    "  -force, -f\n"
    "      With -prefix: delete the leases even if the secrets engine\n"
    "      fails to revoke them. Use with care.\n\n"
    "  -sync\n"
    "      Wait until the revocation is done instead of queueing it.\n"
    CLI_HELP_GLOBAL;

static const char help_lease_list[] =
    "Usage: coffer lease list [options] PREFIX\n\n"
    "  Lists the lease ids and folders under PREFIX (LIST\n"
    "  /v1/sys/leases/lookup/PREFIX; needs sudo).\n"
    CLI_HELP_GLOBAL;

const struct cli_command cli__lease_commands[] = {
    { { "lease", "lookup", NULL }, cmd_lease_lookup,
      "Look up the lease of a secret", help_lease_lookup, false },
    { { "lease", "renew", NULL }, cmd_lease_renew,
      "Renew the lease of a secret", help_lease_renew, false },
    { { "lease", "revoke", NULL }, cmd_lease_revoke,
      "Revoke leases and secrets", help_lease_revoke, false },
    { { "lease", "list", NULL }, cmd_lease_list,
      "List leases under a prefix", help_lease_list, false },
    { { NULL, NULL, NULL }, NULL, NULL, NULL, false },
};
