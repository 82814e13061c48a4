/*
 * cli_policy.c - the policy commands and `token capabilities`.
 *
 * Owns: the arguments of each command, the request it sends, and what it
 * prints. Wording and exit codes are the Vault CLI's (command/policy_*.go,
 * command/token_capabilities.go).
 *
 *   policy write NAME FILE|-   PUT  sys/policies/acl/NAME {"policy"}
 *   policy read NAME           GET  sys/policies/acl/NAME
 *   policy list                LIST sys/policies/acl
 *   policy delete NAME         DELETE sys/policies/acl/NAME
 *   policy fmt FILE            local: reformats FILE in place
 *   token capabilities [TOKEN] PATH
 *                              PUT sys/capabilities-self {"path"}, or
 *                              PUT sys/capabilities {"token","path"}
 *
 * Not owned: flag parsing and dispatch (cli.c), HTTP (cli_http.c),
 * formatting (cli_format.c), the policy language (policy_hcl.c).
 *
 * Entry point: the table cli__policy_commands (cli_cmd.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../buf.h"
#include "cli_cmd.h"
#include "cli_format.h"
#include "cli_http.h"
#include "../common.h"
#include "../json.h"
#include "../policy_hcl.h"
#include "../util.h"

#define POLICY_FILE_MAX ((size_t)4 * 1024 * 1024)

/* Reads FILE, or stdin for "-" (once per run). NULL with a message. */
static char *read_text(struct cli *ctx, const char *file, struct out *err)
{
    FILE *f;
    struct buf b;
    char chunk[8192];
    size_t n;
    char *text;

    if (strcmp(file, "-") == 0) {
        if (ctx->stdin_used) {
            out_puts(err, "stdin was already read");
            return NULL;
        }
        ctx->stdin_used = true;
        f = stdin;
    } else if ((f = fopen(file, "rb")) == NULL) {
        out_printf(err, "open %s: %s", file, strerror(errno));
        return NULL;
    }
    buf_init(&b, POLICY_FILE_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&b, chunk, n) != 0) {
            out_printf(err, "%s: file too large", file);
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (err->b.len > 0) {
        buf_release(&b);
        return NULL;
    }
    text = buf_detach(&b, NULL);
    return text != NULL ? text : xstrdup("");
}

static char *acl_path(const char *name)
{
    return cli__str_concat3("sys/policies/acl/", name, "");
}

/* ====================================================================
 * policy write | read | list | delete | fmt
 * ==================================================================== */

static int cmd_policy_write(struct cli *ctx, int argc, char **argv)
{
    cJSON *body = NULL, *secret = NULL;
    char *text = NULL, *path = NULL, *name = NULL;
    struct out err;
    int rc;

    out_init(&err);
    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 2, 2);
    if (rc != 0)
        goto out;
    name = cli__trim_dup(ctx->args.v[0]);
    text = read_text(ctx, ctx->args.v[1], &err);
    if (text == NULL) {
        rc = cli__report(&err, "Error opening policy file");
        goto out;
    }
    body = cli__one_member("policy", text);
    path = acl_path(name);
    rc = cli__call(ctx, "PUT", path, NULL, body, CLI_CALL_WRITE, &secret,
                   "Error uploading policy");
    if (rc != 0)
        goto out;
    printf("Success! Uploaded policy: %s\n", name);
out:
    json_delete_wiped(secret);
    cJSON_Delete(body);
    out_release(&err);
    free(text);
    free(path);
    free(name);
    return rc;
}

static int cmd_policy_read(struct cli *ctx, int argc, char **argv)
{
    cJSON *secret = NULL;
    const cJSON *data;
    char *path = NULL, *name = NULL;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    name = cli__trim_dup(ctx->args.v[0]);
    path = acl_path(name);
    rc = cli__call(ctx, "GET", path, NULL, NULL, CLI_CALL_READ, &secret,
                   "Error reading policy named %s", name);
    if (rc != 0)
        goto out;
    data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    if (data == NULL || cli__json_is_nullish(data)) {
        rc = cli__fail(2, "No policy named: %s", name);
        goto out;
    }
    if (ctx->format != CLI_FMT_TABLE) {
        rc = cli__print_data(ctx, data);
    } else {
        const char *text = cli__str_member(data, "policy");
        size_t n = strlen(text);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
            n--;
        printf("%.*s\n", (int)n, text);
    }
out:
    json_delete_wiped(secret);
    free(path);
    free(name);
    return rc;
}

static int cmd_policy_list(struct cli *ctx, int argc, char **argv)
{
    cJSON *secret = NULL;
    const cJSON *keys, *k;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 0);
    if (rc != 0)
        goto out;
    rc = cli__call(ctx, "LIST", "sys/policies/acl", NULL, NULL, CLI_CALL_READ,
                   &secret, "Error listing policies");
    if (rc != 0)
        goto out;
    keys = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(secret, "data"), "keys");
    if (ctx->format != CLI_FMT_TABLE) {
        rc = cli__print_data(ctx, keys);
        goto out;
    }
    cJSON_ArrayForEach(k, keys) {
        if (cJSON_IsString(k))
            printf("%s\n", k->valuestring);
    }
out:
    json_delete_wiped(secret);
    return rc;
}

static int cmd_policy_delete(struct cli *ctx, int argc, char **argv)
{
    cJSON *secret = NULL;
    char *path = NULL, *name = NULL;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    name = cli__trim_dup(ctx->args.v[0]);
    path = acl_path(name);
    rc = cli__call(ctx, "DELETE", path, NULL, NULL, CLI_CALL_WRITE, &secret,
                   "Error deleting %s", name);
    if (rc != 0)
        goto out;
    printf("Success! Deleted policy: %s\n", name);
out:
    json_delete_wiped(secret);
    free(path);
    free(name);
    return rc;
}

static int cmd_policy_fmt(struct cli *ctx, int argc, char **argv)
{
    const char *file;
    char *text = NULL, *formatted = NULL;
    struct errbuf perr;
    struct out err;
    FILE *f;
    int rc;

    out_init(&err);
    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__arg_count_error(ctx->args.n, 1, 1);
    if (rc != 0)
        goto out;
    file = ctx->args.v[0];
    text = read_text(ctx, file, &err);
    if (text == NULL) {
        rc = cli__report(&err, "Error opening policy file");
        goto out;
    }
    formatted = policy_format(text, &perr);
    if (formatted == NULL) {
        rc = cli__fail(2, "Error parsing HCL: %s", perr.msg);
        goto out;
    }
    f = fopen(file, "wb");
    if (f == NULL || fputs(formatted, f) == EOF) {
        rc = cli__fail(2, "Error writing policy file %s: %s", file,
                       strerror(errno));
        if (f != NULL)
            fclose(f);
        goto out;
    }
    if (fclose(f) != 0) {
        rc = cli__fail(2, "Error writing policy file %s: %s", file,
                       strerror(errno));
        goto out;
    }
    printf("Success! Formatted policy: %s\n", file);
out:
    out_release(&err);
    free(text);
    free(formatted);
    return rc;
}

/* ====================================================================
 * token capabilities
 * ==================================================================== */

static int cmd_token_capabilities(struct cli *ctx, int argc, char **argv)
{
    cJSON *body = NULL, *secret = NULL;
    const cJSON *caps, *c;
    const char *token = NULL, *path;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 2);
    if (rc != 0)
        goto out;
    if (ctx->args.n == 2)
        token = ctx->args.v[0];
    path = ctx->args.v[ctx->args.n - 1];
    body = cli__one_member("path", path);
    if (token != NULL)
        cJSON_AddStringToObject(body, "token", token);
    rc = cli__call(ctx, "PUT",
                   token != NULL ? "sys/capabilities" : "sys/capabilities-self",
                   NULL, body, CLI_CALL_RAW, &secret,
                   "Error listing capabilities");
    if (rc != 0)
        goto out;
    caps = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(secret, "data"), "capabilities");
    if (ctx->format != CLI_FMT_TABLE) {
        rc = cli__print_data(ctx, caps);
        goto out;
    }
    cJSON_ArrayForEach(c, caps) {
        printf("%s%s", c != caps->child ? ", " : "",
               cJSON_IsString(c) ? c->valuestring : "");
    }
    printf("\n");
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    return rc;
}

/* ====================================================================
 * Table
 * ==================================================================== */

static const char help_policy_write[] =
    "Usage: coffer policy write [options] NAME FILE\n\n"
    "  Uploads the ACL policy NAME from FILE, or from stdin when FILE is\n"
    "  \"-\" (PUT /v1/sys/policies/acl/NAME). An existing policy of that\n"
    "  name is replaced.\n\n"
    "      $ coffer policy write dev dev.hcl\n"
    CLI_HELP_GLOBAL;

static const char help_policy_read[] =
    "Usage: coffer policy read [options] NAME\n\n"
    "  Prints the HCL text of the policy NAME.\n"
    CLI_HELP_GLOBAL;

static const char help_policy_list[] =
    "Usage: coffer policy list [options]\n\n"
    "  Lists the names of every ACL policy.\n"
    CLI_HELP_GLOBAL;

static const char help_policy_delete[] =
    "Usage: coffer policy delete [options] NAME\n\n"
    "  Deletes the policy NAME (not root or default). Tokens that have it\n"
    "  keep the name but lose its rules.\n"
    CLI_HELP_GLOBAL;

static const char help_policy_fmt[] =
    "Usage: coffer policy fmt [options] FILE\n\n"
    "  Rewrites the policy in FILE as canonical HCL, in place (comments\n"
    "  are dropped). Works offline.\n"
    CLI_HELP_GLOBAL;

static const char help_token_capabilities[] =
    "Usage: coffer token capabilities [options] [TOKEN] PATH\n\n"
    "  Prints the capabilities of a token on PATH: the token in use, or\n"
    "  TOKEN when given.\n\n"
    "      $ coffer token capabilities secret/foo\n"
    CLI_HELP_GLOBAL;

const struct cli_command cli__policy_commands[] = {
    { { "policy", "write", NULL }, cmd_policy_write,
      "Upload a policy", help_policy_write, false },
    { { "policy", "read", NULL }, cmd_policy_read,
      "Print the contents of a policy", help_policy_read, false },
    { { "policy", "list", NULL }, cmd_policy_list,
      "List the installed policies", help_policy_list, false },
    { { "policy", "delete", NULL }, cmd_policy_delete,
      "Delete a policy by name", help_policy_delete, false },
    { { "policy", "fmt", NULL }, cmd_policy_fmt,
      "Format a policy file in place", help_policy_fmt, false },
    { { "token", "capabilities", NULL }, cmd_token_capabilities,
      "Print capabilities of a token on a path", help_token_capabilities,
      false },
    { { NULL, NULL, NULL }, NULL, NULL, NULL, false },
};
