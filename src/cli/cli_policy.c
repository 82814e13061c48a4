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
 *   policy explain -path=P -op=O [-token=T|-accessor=A|-policies=a,b]
 *                              PUT sys/policies/explain[-self]
 *   policy test FILE CASES     local: runs CASES against the policy FILE
 *                              with the server's own decision code (a
 *                              .lua file in an in-memory core)
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
#include "cli_policy_lua.h"
#include "../common.h"
#include "../json.h"
#include "../policy.h"
#include "../policy_explain.h"
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
 * policy explain | test
 * ==================================================================== */

/* "dev: secret/data/x (line 3) [read, list] exact" of one rule. */
static void print_rule(const char *lead, const cJSON *r)
{
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(r, "line");
    const cJSON *caps = cJSON_GetObjectItemCaseSensitive(r, "capabilities");
    const cJSON *c;

    printf("%s%s: %s", lead, cli__str_member(r, "policy"),
           cli__str_member(r, "pattern"));
    if (cJSON_IsNumber(line))
        printf(" (line %d)", line->valueint);
    printf(" [");
    cJSON_ArrayForEach(c, caps) {
        printf("%s%s", c != caps->child ? ", " : "",
               cJSON_IsString(c) ? c->valuestring : "");
    }
    printf("] %s", cli__str_member(r, "kind"));
}

/* The table form of an explanation. */
static void print_explain(const cJSON *d)
{
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(d, "decisive");
    const cJSON *e;

    printf("Result      %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                                   d, "allowed")) ? "allowed" : "denied");
    printf("Reason      %s\n", cli__str_member(d, "reason"));
    if (cJSON_IsObject(dec)) {
        print_rule("Decisive    ", dec);
        printf("\n");
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "matches")) {
        if (e == cJSON_GetObjectItemCaseSensitive(d, "matches")->child)
            printf("\nMatching rules:\n");
        print_rule(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                       e, "decisive")) ? "  * " : "    ", e);
        printf("  -- %s\n", cli__str_member(e, "why"));
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d,
                                                           "constraints")) {
        printf("\nConstraint  %s %s: %s\n", cli__str_member(e, "rule"),
               cli__str_member(e, "parameter"), cli__str_member(e, "reason"));
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "lua")) {
        const cJSON *line = cJSON_GetObjectItemCaseSensitive(e, "line");
        printf("\nLua check   %s (%s:%d) %s%s%s\n",
               cli__str_member(e, "policy"), cli__str_member(e, "file"),
               cJSON_IsNumber(line) ? line->valueint : 0,
               cli__str_member(e, "result"),
               cli__str_member(e, "reason")[0] != '\0' ? ": " : "",
               cli__str_member(e, "reason"));
    }
}

/* -data k=v pairs as a JSON object (values are strings). */
static cJSON *data_object(const struct strvec *kv)
{
    cJSON *o = cJSON_CreateObject();

    for (size_t i = 0; i < kv->n; i++) {
        const char *eq = strchr(kv->v[i], '=');
        char *k = xstrndup(kv->v[i], (size_t)(eq - kv->v[i]));
        cJSON_AddStringToObject(o, k, eq + 1);
        free(k);
    }
    return o;
}

/* Appends the comma-separated names of s to arr. */
static void add_names(cJSON *arr, const char *s)
{
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        char *name = xstrndup(s, n);
        char *t = cli__trim_dup(name);
        if (t[0] != '\0')
            cJSON_AddItemToArray(arr, cJSON_CreateString(t));
        free(t);
        free(name);
        s += n;
        if (*s == ',')
            s++;
    }
}

static int cmd_policy_explain(struct cli *ctx, int argc, char **argv)
{
    const char *path = NULL, *op = NULL, *token = NULL, *accessor = NULL;
    const char *addr = NULL;
    struct strvec policies, data;
    const struct cli_flag flags[] = {
        CLI_STRING("path", NULL, &path),
        CLI_STRING("op", NULL, &op),
        CLI_STRING("token", NULL, &token),
        CLI_STRING("accessor", NULL, &accessor),
        CLI_LIST("policies", NULL, &policies),
        CLI_MAP("data", NULL, &data),
        CLI_STRING("remote-addr", NULL, &addr),
        CLI_FLAG_END,
    };
    cJSON *body = NULL, *secret = NULL, *list;
    const cJSON *d;
    bool self;
    int rc;

    strvec_init(&policies);
    strvec_init(&data);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0 && (path == NULL || op == NULL))
        rc = cli__fail(1, "Both -path and -op are required");
    if (rc == 0 && (token != NULL) + (accessor != NULL) +
                           (policies.n > 0) > 1)
        rc = cli__fail(1, "At most one of -token, -accessor and -policies");
    if (rc == 0)
        rc = cli__begin(ctx, 0, 0);
    if (rc != 0)
        goto out;
    self = token == NULL && accessor == NULL && policies.n == 0;
    body = cli__one_member("path", path);
    cJSON_AddStringToObject(body, "operation", op);
    cJSON_AddItemToObject(body, "data", data_object(&data));
    if (addr != NULL)
        cJSON_AddStringToObject(body, "remote_addr", addr);
    if (token != NULL)
        cJSON_AddStringToObject(body, "token", token);
    if (accessor != NULL)
        cJSON_AddStringToObject(body, "accessor", accessor);
    if (policies.n > 0) {
        list = cJSON_AddArrayToObject(body, "policies");
        for (size_t i = 0; i < policies.n; i++) /* a,b or -policies twice */
            add_names(list, policies.v[i]);
    }
    rc = cli__call(ctx, "PUT", self ? "sys/policies/explain-self"
                                    : "sys/policies/explain",
                   NULL, body, CLI_CALL_RAW, &secret,
                   "Error explaining the request");
    if (rc != 0)
        goto out;
    d = cJSON_GetObjectItemCaseSensitive(secret, "data");
    if (ctx->format != CLI_FMT_TABLE)
        rc = cli__print_data(ctx, d);
    else
        print_explain(d);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    strvec_release(&policies);
    strvec_release(&data);
    return rc;
}

/* The policy's name for the trace: FILE's base name without extension. */
static char *file_policy_name(const char *file)
{
    const char *b = strrchr(file, '/');
    const char *dot;

    b = b != NULL ? b + 1 : file;
    dot = strrchr(b, '.');
    return dot != NULL && dot != b ? xstrndup(b, (size_t)(dot - b))
                                   : xstrdup(b);
}

/*
 * Checks one case {path, operation, data?, remote_addr?, expect} and
 * fills q from it. 0, or -1 with the problem in err.
 */
static int test_case(const cJSON *c, struct request *q, bool *want_allow,
                     struct out *err)
{
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(c, "path");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(c, "operation");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(c, "data");
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(c, "expect");
    const cJSON *addr = cJSON_GetObjectItemCaseSensitive(c, "remote_addr");

    if (!cJSON_IsString(path) || path->valuestring[0] == '\0') {
        out_puts(err, "path must be a non-empty string");
        return -1;
    }
    if (!cJSON_IsString(op) || !policy_explain_op(op->valuestring, &q->op)) {
        out_puts(err, "operation must be one of create, read, update, "
                      "delete, list, patch");
        return -1;
    }
    if (data != NULL && !cJSON_IsObject(data) && !cJSON_IsNull(data)) {
        out_puts(err, "data must be a JSON object");
        return -1;
    }
    if (!cJSON_IsString(expect) ||
        (strcmp(expect->valuestring, "allow") != 0 &&
         strcmp(expect->valuestring, "deny") != 0)) {
        out_puts(err, "expect must be \"allow\" or \"deny\"");
        return -1;
    }
    if (addr != NULL && (!cJSON_IsString(addr) ||
                         strlen(addr->valuestring) >= sizeof(q->remote_addr))) {
        out_puts(err, "remote_addr must be an address string");
        return -1;
    }
    if (addr != NULL)
        snprintf(q->remote_addr, sizeof(q->remote_addr), "%s",
                 addr->valuestring);
    *want_allow = strcmp(expect->valuestring, "allow") == 0;
    q->path = xstrdup(path->valuestring + strspn(path->valuestring, "/"));
    q->data = cJSON_IsObject(data) ? cJSON_Duplicate(data, 1)
                                   : cJSON_CreateObject();
    return 0;
}

/*
 * Runs every case; prints a line each (or collects them for -format).
 * pol is the parsed HCL/JSON policy, or NULL for the Lua policy `name`
 * loaded into the in-memory core (cli_policy_lua.c).
 */
static int run_cases(struct cli *ctx, const struct policy *pol,
                     const char *name, const cJSON *cases)
{
    struct strvec set;
    const cJSON *c;
    cJSON *results = cJSON_CreateArray();
    size_t pass = 0, fail = 0, i = 0;
    int rc = 0;

    strvec_init(&set);
    strvec_push(&set, name);
    cJSON_ArrayForEach(c, cases) {
        struct request q;
        struct policy_trace tr;
        struct errbuf why;
        struct out err;
        bool want = false, ok;
        cJSON *ex;
        int drc;

        i++;
        request_init(&q);
        out_init(&err);
        if (test_case(c, &q, &want, &err) != 0) {
            rc = cli__report(&err, "Error in case %zu", i);
            out_release(&err);
            request_release(&q);
            break;
        }
        out_release(&err);
        drc = pol != NULL ? policy_trace_one(pol, name, &q, &tr, &why)
                          : policy_trace(NULL, &set, &q, &tr, &why);
        ex = policy_explain_render(&tr, drc, &why, &q, &set, false, true);
        policy_trace_release(&tr);
        ok = (drc == 0) == want;
        ok ? pass++ : fail++;
        if (ctx->format == CLI_FMT_TABLE)
            printf("%s %s %s: expected %s; %s\n", ok ? "PASS" : "FAIL",
                   req_op_name(q.op), q.path, want ? "allow" : "deny",
                   cli__str_member(ex, "reason"));
        cJSON_AddBoolToObject(ex, "pass", ok);
        cJSON_AddStringToObject(ex, "expect", want ? "allow" : "deny");
        cJSON_AddItemToArray(results, ex);
        request_release(&q);
    }
    if (rc == 0 && ctx->format == CLI_FMT_TABLE) {
        printf("%zu passed, %zu failed\n", pass, fail);
    } else if (rc == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "results", results);
        cJSON_AddNumberToObject(o, "passed", (double)pass);
        cJSON_AddNumberToObject(o, "failed", (double)fail);
        results = NULL;
        rc = cli__print_data(ctx, o);
        cJSON_Delete(o);
    }
    cJSON_Delete(results);
    strvec_release(&set);
    return rc != 0 ? rc : fail > 0 ? 1 : 0;
}

static int cmd_policy_test(struct cli *ctx, int argc, char **argv)
{
    char *text = NULL, *ctext = NULL, *name = NULL;
    struct policy *pol = NULL;
    cJSON *cases = NULL;
    struct errbuf perr;
    struct out err;
    bool lua = false;
    int rc;

    out_init(&err);
    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__arg_count_error(ctx->args.n, 2, 2);
    if (rc != 0)
        goto out;
    lua = str_has_suffix(ctx->args.v[0], ".lua");
    text = read_text(ctx, ctx->args.v[0], &err);
    ctext = text != NULL ? read_text(ctx, ctx->args.v[1], &err) : NULL;
    if (ctext == NULL) {
        rc = cli__report(&err, "Error opening file");
        goto out;
    }
    if (lua && cli_policy_lua_boot(ctx->args.v[0], &name, &perr) != 0) {
        rc = cli__fail(2, "Error loading policy %s: %s", ctx->args.v[0],
                       perr.msg);
        goto out;
    }
    pol = lua ? NULL : policy_parse(text, &perr);
    if (pol == NULL && !lua) {
        rc = cli__fail(2, "Error parsing policy %s: %s", ctx->args.v[0],
                       perr.msg);
        goto out;
    }
    cases = json_parse(ctext, strlen(ctext), 64, false, NULL);
    if (!cJSON_IsArray(cases)) {
        rc = cli__fail(2, "Error: %s must hold a JSON array of cases "
                          "{path, operation, data, expect}", ctx->args.v[1]);
        goto out;
    }
    if (name == NULL)
        name = file_policy_name(ctx->args.v[0]);
    rc = run_cases(ctx, pol, name, cases);
out:
    if (lua)
        cli_policy_lua_shutdown();
    cJSON_Delete(cases);
    policy_free(pol);
    out_release(&err);
    free(text);
    free(ctext);
    free(name);
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

static const char help_policy_explain[] =
    "Usage: coffer policy explain [options]\n\n"
    "  Explains why a request would be allowed or denied: the decisive\n"
    "  rule (policy, pattern, line), the other matching rules and why\n"
    "  they lost, failed parameter constraints and Lua policy checks.\n"
    "  Without -token, -accessor or -policies it explains the token in\n"
    "  use (sys/policies/explain-self); with one of them it needs sudo on\n"
    "  sys/policies/explain. Exit code 0 whether allowed or denied.\n\n"
    "      $ coffer policy explain -path=secret/data/app -op=read\n"
    "      $ coffer policy explain -policies=dev,ops -path=x -op=update \\\n"
    "            -data ttl=1h\n\n"
    "  -path, -op (create, read, update, delete, list, patch), -token,\n"
    "  -accessor, -policies (a,b; repeatable), -data k=v (repeatable),\n"
    "  -remote-addr.\n"
    CLI_HELP_GLOBAL;

static const char help_policy_test[] =
    "Usage: coffer policy test [options] FILE CASES\n\n"
    "  Runs the cases in CASES (a JSON array of {\"path\", \"operation\",\n"
    "  \"data\", \"expect\": \"allow\"|\"deny\"}) against the policy in\n"
    "  FILE (HCL, JSON or Lua), offline, with the server's own decision\n"
    "  code.\n"
    "  Prints one line per case and \"N passed, N failed\". Exit code 0\n"
    "  when every case passes, 1 when one fails, 2 on bad input. A Lua\n"
    "  policy (FILE.lua) is loaded into an in-memory server, so its paths\n"
    "  and check function run as they would in a real one; a case may set\n"
    "  \"remote_addr\" for the check.\n"
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
    { { "policy", "explain", NULL }, cmd_policy_explain,
      "Explain why a request is allowed or denied", help_policy_explain,
      false },
    { { "policy", "test", NULL }, cmd_policy_test,
      "Test a policy file against cases, offline", help_policy_test,
      false },
    { { "token", "capabilities", NULL }, cmd_token_capabilities,
      "Print capabilities of a token on a path", help_token_capabilities,
      false },
    { { NULL, NULL, NULL }, NULL, NULL, NULL, false },
};
