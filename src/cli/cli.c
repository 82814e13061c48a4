/*
 * cli.c - the client side of `coffer`: dispatch, flags and output.
 *
 * Every subcommand except "server" is a client of a running Coffer (or
 * Vault) server, spoken to through Vault's HTTP API. The CLI is split by
 * job:
 *
 *   cli.c         dispatch, flag parsing (Go `flag` syntax, as the Vault
 *                 CLI takes it), and printing a response (Vault's
 *                 OutputSecret, OutputData, PrintRawField)
 *   cli_http.c    the libcurl client, reading responses, Vault's error
 *                 texts, the k=v body builder, path helpers
 *   cli_cmds.c    read, write, list, delete, secrets, token, status
 *   cli_kv.c      kv (with KV v2 path rewriting)
 *   cli_lease.c   lease lookup, renew, revoke, list
 *   cli_operator.c  operator init, unseal, seal
 *   cli_policy.c  policy write, read, list, delete, fmt; token
 *                 capabilities
 *   cli_auth.c    auth enable, disable, list; login
 *   cli_format.c  how a response looks, byte for byte like Vault
 *
 * Owns here: the flag parser and the global flags (each command declares
 * its own flags, bound to its own options struct, and calls cli__parse),
 * the command tables' search, help, -format, and the output helpers of
 * cli_cmd.h.
 *
 * Not owned: the server. Nothing in the CLI links to server subsystems;
 * it only uses common/buf/util helpers.
 *
 * Entry point: cli_main(). Exit codes follow the Vault CLI: 0 success,
 * 1 usage error, 2 error from the server or the network (and `status`
 * returns 2 for a sealed server).
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cli_cmd.h"
#include "cli_format.h"
#include "cli_http.h"
#include "../common.h"
#include "../json.h"
#include "../util.h"

/* ====================================================================
 * Flags
 * ==================================================================== */

void cli__init(struct cli *ctx, const struct cli_command *cmd)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cmd = cmd;
    ctx->format = CLI_FMT_TABLE;
    strvec_init(&ctx->args);
}

void cli__release(struct cli *ctx)
{
    if (ctx->have_client)
        cli__client_release(&ctx->client);
    strvec_release(&ctx->args);
    memset(ctx, 0, sizeof(*ctx));
}

/* The flag -name (or its alias) in a table ended by CLI_FLAG_END. */
static const struct cli_flag *find_flag(const struct cli_flag *table,
                                        const char *name)
{
    for (; table != NULL && table->name != NULL; table++) {
        if (strcmp(table->name, name) == 0 ||
            (table->alias != NULL && strcmp(table->alias, name) == 0))
            return table;
    }
    return NULL;
}

/* Go's strconv.ParseInt(s, 0, 64): decimal, 0x hex, 0o/0 octal, 0b. */
static int parse_go_int(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v;
    int base = 10;
    const char *p = s;

    if (*p == '+' || *p == '-')
        p++;
    if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
        base = 2;
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        base = 8;
    if (*s == '\0')
        return COFFER_EINVAL;
    errno = 0;
    if (base == 10) {
        v = strtoll(s, &end, 0);
    } else {
        v = strtoll(p + 2, &end, base);
        if (*s == '-')
            v = -v;
    }
    if (errno != 0 || end == NULL || *end != '\0')
        return COFFER_EINVAL;
    *out = v;
    return 0;
}

/* Stores one flag value; on a bad value writes Go's flag error to err. */
static int set_flag(const struct cli_flag *f, const char *value,
                    struct out *err)
{
    void *target = f->value;
    struct errbuf eb;
    bool b = false;

    errbuf_clear(&eb);
    switch (f->kind) {
    case CLI_FLAG_BOOL:
        if (bool_parse(value, &b) != 0) {
            out_printf(err, "invalid boolean value \"%s\" for -%s: "
                       "strconv.ParseBool: parsing \"%s\": invalid syntax",
                       value, f->name, value);
            return COFFER_EINVAL;
        }
        *(bool *)target = b;
        return 0;
    case CLI_FLAG_STRING:
        *(const char **)target = value;
        return 0;
    case CLI_FLAG_INT:
        if (parse_go_int(value, (int64_t *)target) != 0) {
            out_printf(err, "invalid value \"%s\" for flag -%s: "
                       "strconv.ParseInt: parsing \"%s\": invalid syntax",
                       value, f->name, value);
            return COFFER_EINVAL;
        }
        return 0;
    case CLI_FLAG_DURATION:
        if (strcmp(value, "system") == 0) {
            *(int64_t *)target = -1;
            return 0;
        }
        if (duration_parse(value, (int64_t *)target, &eb) != 0) {
            out_printf(err, "invalid value \"%s\" for flag -%s: %s", value,
                       f->name, eb.msg);
            return COFFER_EINVAL;
        }
        return 0;
    case CLI_FLAG_MAP:
        if (strchr(value, '=') == NULL) {
            out_printf(err, "invalid value \"%s\" for flag -%s: missing = "
                       "in KV pair: \"%s\"", value, f->name, value);
            return COFFER_EINVAL;
        }
        strvec_push((struct strvec *)target, value);
        return 0;
    case CLI_FLAG_LIST:
    default:
        /* Vault trims each value of a repeatable string flag. */
        strvec_push_owned((struct strvec *)target, cli__trim_dup(value));
        return 0;
    }
}

/*
 * Handles argv[*i], which starts with '-'. Returns 1 when it was taken as
 * a flag (and *i moved past any separate value), 0 when it should be a
 * positional argument, or a negative error with Go's message in err.
 */
static int parse_one_flag(struct cli *ctx, const struct cli_flag *flags,
                          const struct cli_flag *global, int argc,
                          char **argv, int *i, struct out *err)
{
    const char *arg = argv[*i], *name = arg + 1, *eq;
    const struct cli_flag *f;
    char namebuf[64];
    size_t len;

    if (name[0] == '-')
        name++;
    if (name[0] == '\0' || name[0] == '-' || name[0] == '=') {
        out_printf(err, "bad flag syntax: %.200s", arg);
        return COFFER_EINVAL;
    }
    eq = strchr(name, '=');
    len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    if (len >= sizeof(namebuf))
        len = sizeof(namebuf) - 1;
    memcpy(namebuf, name, len);
    namebuf[len] = '\0';
    /* -h and -help were answered before parsing (wants_help). */
    if (strcmp(namebuf, "h") == 0 || strcmp(namebuf, "help") == 0)
        return 1;
    f = find_flag(global, namebuf);
    if (f == NULL)
        f = find_flag(flags, namebuf);
    if (f == NULL) {
        /* After a positional argument, an unknown "-x" is data (Vault). */
        if (ctx->args.n > 0)
            return 0;
        out_printf(err, "flag provided but not defined: -%s", namebuf);
        return COFFER_EINVAL;
    }
    if (eq != NULL)
        return set_flag(f, eq + 1, err) == 0 ? 1 : COFFER_EINVAL;
    if (f->kind == CLI_FLAG_BOOL)
        return set_flag(f, "true", err) == 0 ? 1 : COFFER_EINVAL;
    if (*i + 1 >= argc) {
        out_printf(err, "flag needs an argument: -%s", namebuf);
        return COFFER_EINVAL;
    }
    (*i)++;
    return set_flag(f, argv[*i], err) == 0 ? 1 : COFFER_EINVAL;
}

/*
 * Parses flags and positional arguments with Go's flag syntax (-f, --f,
 * -f=v, -f v). Unlike Go's flag package, known flags are also taken after
 * positional arguments, as Vault does for its global flags; "--" ends flag
 * parsing and "-" alone is positional (stdin for write).
 */
int cli__parse_args(struct cli *ctx, const struct cli_flag *flags, int argc,
                    char **argv, struct out *err)
{
    /*
     * The flags every command takes (Vault's HTTP and output flag sets).
     * -detailed is one because every command has always accepted it;
     * only `secrets list` reads it.
     */
    const struct cli_flag global[] = {
        CLI_STRING("format", NULL, &ctx->g.format_flag),
        CLI_STRING("field", NULL, &ctx->g.field),
        CLI_STRING("address", NULL, &ctx->g.address),
        CLI_STRING("ca-cert", NULL, &ctx->g.ca_cert),
        CLI_BOOL("tls-skip-verify", NULL, &ctx->g.tls_skip_verify),
        CLI_BOOL("detailed", NULL, &ctx->g.detailed),
        CLI_STRING("wrap-ttl", NULL, &ctx->g.wrap_ttl),
        CLI_FLAG_END,
    };
    int i, rc;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc; i++)
                strvec_push(&ctx->args, argv[i]);
            break;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            rc = parse_one_flag(ctx, flags, global, argc, argv, &i, err);
            if (rc < 0)
                return rc;
            if (rc == 1)
                continue;
        }
        strvec_push(&ctx->args, argv[i]);
    }
    return 0;
}

/* -format, then $COFFER_FORMAT / $VAULT_FORMAT, then "table". */
static int resolve_format(struct cli *ctx)
{
    const char *f = ctx->g.format_flag;

    if (f == NULL)
        f = cli__env_first("COFFER_FORMAT", "VAULT_FORMAT");
    if (f == NULL)
        f = "table";
    if (cli_format_parse(f, &ctx->format) != 0)
        return cli__fail(1, "Invalid output format: %s", f);
    if (ctx->format == CLI_FMT_RAW && (ctx->cmd == NULL || !ctx->cmd->raw_ok))
        return cli__fail(1, "This command does not support the -format=raw "
                            "option.");
    return 0;
}

int cli__parse(struct cli *ctx, const struct cli_flag *flags, int argc,
               char **argv)
{
    struct out err;
    int rc;

    out_init(&err);
    if (cli__parse_args(ctx, flags, argc, argv, &err) != 0)
        rc = cli__fail(1, "%s", err.b.ptr != NULL ? err.b.ptr : "");
    else
        rc = resolve_format(ctx);
    out_release(&err);
    return rc;
}


/* ====================================================================
 * Printing (Vault's OutputSecret, OutputData, OutputList, PrintRawField)
 * ==================================================================== */

/* Writes the buffer to f and wipes it. Returns 0, or 1 if it overflowed. */
int cli__emit(FILE *f, struct out *o)
{
    int rc = 0;

    if (o->err != 0) {
        fputs("Could not parse output: output too large\n", stderr);
        rc = 1;
    } else if (o->b.ptr != NULL) {
        fwrite(o->b.ptr, 1, o->b.len, f);
    }
    out_release(o);
    out_init(o);
    return rc;
}

/* Prints "<formatted prefix>: <detail>" on stderr and returns exit code 2. */
int cli__report(const struct out *detail, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", detail->b.ptr != NULL ? detail->b.ptr : "");
    return 2;
}

/* Prints a message and a newline on stderr; returns `code`. */
int cli__fail(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

/* Marshals JSON text for a value in the chosen structured format. */
void cli__structured(struct cli *ctx, struct out *o, const struct out *js)
{
    cJSON *v;
    size_t n;

    if (ctx->format != CLI_FMT_YAML) {
        out_puts(o, js->b.ptr != NULL ? js->b.ptr : "null");
        out_putc(o, '\n');
        return;
    }
    /* ghodss/yaml goes through JSON too, so struct fields come sorted. */
    v = cJSON_Parse(js->b.ptr != NULL ? js->b.ptr : "null");
    fmt_yaml(o, v);
    json_delete_wiped(v);
    n = o->b.len;
    while (n > 0 && isspace((unsigned char)o->b.ptr[n - 1]))
        n--;
    if (o->err == 0 && o->b.ptr != NULL) {
        o->b.ptr[n] = '\0';
        o->b.len = n;
    }
    out_putc(o, '\n');
}

int cli__print_secret(struct cli *ctx, const cJSON *secret)
{
    struct out o, js;
    int rc;

    out_init(&o);
    out_init(&js);
    if (ctx->format == CLI_FMT_TABLE) {
        fmt_warnings(&o, secret);
        rc = cli__emit(stderr, &o);
        fmt_secret_table(&o, secret);
    } else {
        fmt_json_secret(&js, secret);
        cli__structured(ctx, &o, &js);
        rc = 0;
    }
    rc |= cli__emit(stdout, &o);
    out_release(&js);
    return rc;
}

int cli__print_data(struct cli *ctx, const cJSON *data)
{
    struct out o, js;
    int rc;

    out_init(&o);
    out_init(&js);
    if (ctx->format == CLI_FMT_TABLE) {
        if (cJSON_IsArray(data))
            fmt_list_table(&o, data);
        else
            fmt_map_table(&o, data);
    } else {
        fmt_json(&js, data, 0);
        cli__structured(ctx, &o, &js);
    }
    rc = cli__emit(stdout, &o);
    out_release(&js);
    return rc;
}

/*
 * Vault's PrintRaw: on a terminal the value gets a newline; piped, it is
 * printed bare so `$(vault read -field=x ...)` gets exactly the value.
 */
static bool stdout_is_terminal(void)
{
    const char *term = getenv("TERM");

    return isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL &&
           (term == NULL || strcmp(term, "dumb") != 0);
}

/* A scalar kept alive in *tmp, for RawField's struct fields. */
static const cJSON *keep(cJSON **tmp, cJSON *v)
{
    COFFER_ASSERT(v != NULL);
    cJSON_Delete(*tmp);
    *tmp = v;
    return v;
}

/* Member `key` of obj, or a Go zero value when the server left it out. */
static const cJSON *member_or(const cJSON *obj, const char *key,
                             cJSON *zero, cJSON **tmp)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (v != NULL && !cJSON_IsNull(v)) {
        cJSON_Delete(zero);
        return v;
    }
    return keep(tmp, zero);
}

/* Vault's RawField: what -field=NAME selects from a response. */
static const cJSON *raw_field(const cJSON *secret, const char *field,
                              cJSON **tmp)
{
    static const char *const auth_map[][2] = {
        { "token", "client_token" }, { "token_accessor", "accessor" },
        { "token_duration", "lease_duration" },
        { "token_renewable", "renewable" },
        { "token_policies", "token_policies" },
        { "identity_policies", "identity_policies" },
        { "policies", "policies" },
    };
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(secret, "auth");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    size_t i;

    for (i = 0; cJSON_IsObject(auth) && i < ARRAY_LEN(auth_map); i++) {
        if (strcmp(field, auth_map[i][0]) == 0)
            return member_or(auth, auth_map[i][1],
                             i >= 4 ? cJSON_CreateArray()
                                    : cJSON_CreateString(""), tmp);
    }
    if (!cJSON_IsObject(auth)) {
        if (strcmp(field, "lease_duration") == 0 ||
            strcmp(field, "refresh_interval") == 0)
            return member_or(secret, "lease_duration", cJSON_CreateNumber(0),
                             tmp);
        if (strcmp(field, "lease_id") == 0 || strcmp(field, "request_id") == 0)
            return member_or(secret, field, cJSON_CreateString(""), tmp);
        if (strcmp(field, "renewable") == 0)
            return member_or(secret, field, cJSON_CreateFalse(), tmp);
        if (strcmp(field, "data") == 0 && cJSON_IsObject(data) &&
            !cJSON_HasObjectItem(data, "data"))
            return data;
    }
    return cJSON_GetObjectItemCaseSensitive(data, field);
}

/* Prints one selected value (Vault's PrintRawField after the lookup). */
int cli__print_value(struct cli *ctx, const cJSON *val, const char *field)
{
    struct out o, js;
    int rc;

    if (val == NULL || cJSON_IsNull(val))
        return cli__fail(1, "Field \"%s\" not present in secret", field);
    out_init(&o);
    out_init(&js);
    if (ctx->format == CLI_FMT_TABLE || ctx->format == CLI_FMT_RAW) {
        fmt_go_value(&o, val);
    } else if (ctx->format == CLI_FMT_JSON) {
        fmt_json(&o, val, 0);
    } else {
        fmt_json(&js, val, 0);
        cli__structured(ctx, &o, &js);
        /* PrintRaw decides about the newline, not the formatter. */
        if (o.err == 0 && o.b.len > 0)
            o.b.ptr[--o.b.len] = '\0';
    }
    if (stdout_is_terminal())
        out_putc(&o, '\n');
    rc = cli__emit(stdout, &o);
    out_release(&js);
    return rc;
}

int cli__print_field(struct cli *ctx, const cJSON *secret)
{
    cJSON *tmp = NULL;
    int rc;

    rc = cli__print_value(ctx, raw_field(secret, ctx->g.field, &tmp),
                          ctx->g.field);
    cJSON_Delete(tmp);
    return rc;
}

/* Ends a command that got a response: -field, else the whole secret. */
int cli__print_result(struct cli *ctx, const cJSON *secret)
{
    if (ctx->g.field != NULL)
        return cli__print_field(ctx, secret);
    return cli__print_secret(ctx, secret);
}


/* ====================================================================
 * Plumbing for the commands
 * ==================================================================== */

/* Creates the HTTP client; prints the failure and returns 2 if it fails. */
int cli__need_client(struct cli *ctx)
{
    struct out err;
    int rc = 0;

    if (ctx->have_client)
        return 0;
    out_init(&err);
    if (cli__client_init(&ctx->client, ctx->g.address, ctx->g.ca_cert,
                         ctx->g.tls_skip_verify, &err) != 0)
        rc = cli__fail(2, "%s", err.b.ptr != NULL ? err.b.ptr : "");
    else
        ctx->have_client = true;
    if (rc == 0 && ctx->g.wrap_ttl != NULL) {
        free(ctx->client.wrap_ttl);
        ctx->client.wrap_ttl = xstrdup(ctx->g.wrap_ttl);
    }
    out_release(&err);
    return rc;
}

int cli__arg_count_error(size_t got, size_t min, size_t max)
{
    if (got < min)
        return cli__fail(1, "Not enough arguments (expected %zu, got %zu)", min,
                         got);
    if (got > max)
        return cli__fail(1, "Too many arguments (expected %zu, got %zu)", max,
                         got);
    return 0;
}

/* ====================================================================
 * The command tables, and the usage texts made from them
 * ==================================================================== */

/* Every command, one table per command file. */
static const struct cli_command *const command_tables[] = {
    cli__cmds_commands,
    cli__kv_commands,
    cli__lease_commands,
    cli__operator_commands,
    cli__policy_commands,
    cli__auth_commands,
};

/*
 * What a group's usage says about it. A group is not declared here: it
 * exists because commands have more words ("kv get" makes "kv"); a row
 * only adds its synopsis and paragraph.
 */
struct cli_group {
    const char *words[2]; /* "kv", "metadata"; words[1] NULL at the top */
    const char *synopsis;
    const char *description;
};

static const struct cli_group groups[] = {
    { { "auth", NULL }, "Interact with auth methods",
      "  Enables, disables and lists auth methods (sys/auth). To log in,\n"
      "  use \"coffer login\".\n" },
    { { "kv", NULL }, "Interact with the key/value secrets engine",
      "  Reads and writes secrets in a KV secrets engine. The mount's KV\n"
      "  version is found first through sys/internal/ui/mounts; version 2\n"
      "  paths get data/ or metadata/.\n" },
    { { "kv", "metadata" }, "Interact with the metadata of KV secrets",
      "  Reads the metadata of secrets in a KV version 2 secrets engine.\n" },
    { { "lease", NULL }, "Look up, renew, revoke and list leases",
      "  Works on the leases of dynamic secrets and tokens (sys/leases).\n" },
    { { "operator", NULL }, "Initialize, unseal and seal the server",
      "  Administers the server: initializes it, unseals it with unseal\n"
      "  keys and seals it.\n" },
    { { "policy", NULL }, "Write, read, list, delete and format ACL policies",
      "  Manages the ACL policies that say what a token may do\n"
      "  (sys/policies/acl).\n" },
    { { "secrets", NULL }, "Enable, disable, list and tune secrets engines",
      "  Manages the secrets engines mounted on the server (sys/mounts).\n" },
    { { "token", NULL }, "Create, look up, renew and revoke tokens",
      "  Works on tokens (auth/token) and on what they may do.\n" },
};

/* What main.c runs before cli_main(): only listed by `coffer -h`. */
static const struct {
    const char *name;
    const char *synopsis;
} outside_commands[] = {
    { "server", "Start a Coffer server" },
    { "plugin", "Test a Lua plugin in-process (plugin test PATH)" },
    { "version", "Print the Coffer version" },
};

/* Said of a group missing from groups[] (mitchellh/cli's words). */
static const char group_default_text[] =
    "  This command is accessed by using one of the subcommands below.\n";

/* The k-th command of all the tables, or NULL past the last one. */
static const struct cli_command *command_at(size_t k)
{
    const struct cli_command *c;
    size_t t;

    for (t = 0; t < ARRAY_LEN(command_tables); t++) {
        for (c = command_tables[t]; c->run != NULL; c++) {
            if (k-- == 0)
                return c;
        }
    }
    return NULL;
}

/* Whether c starts with words[0..depth) and has a word after them. */
static bool command_under(const struct cli_command *c,
                          const char *const *words, int depth)
{
    int w;

    for (w = 0; w < depth; w++) {
        if (c->words[w] == NULL || strcmp(c->words[w], words[w]) != 0)
            return false;
    }
    return depth < 3 && c->words[depth] != NULL;
}

/* The groups[] row of words[0..depth) (depth 1 or 2), or NULL. */
static const struct cli_group *group_find(const char *const *words,
                                          int depth)
{
    size_t g;

    for (g = 0; g < ARRAY_LEN(groups); g++) {
        if (strcmp(groups[g].words[0], words[0]) != 0)
            continue;
        if (depth == 1 && groups[g].words[1] == NULL)
            return &groups[g];
        if (depth == 2 && groups[g].words[1] != NULL &&
            strcmp(groups[g].words[1], words[1]) == 0)
            return &groups[g];
    }
    return NULL;
}

/* A line of a listing: a command or a group under the one listed. */
struct cli_entry {
    const char *name;
    const char *synopsis;
};

/*
 * The k-th entry under words[0..depth) (depth 0: the top), duplicates
 * included (every "kv metadata ..." command names "metadata"); false
 * past the last one.
 */
static bool entry_at(const char *const *words, int depth, size_t k,
                     struct cli_entry *e)
{
    const struct cli_command *c;
    const struct cli_group *g;

    if (depth == 0 && k < ARRAY_LEN(outside_commands)) {
        e->name = outside_commands[k].name;
        e->synopsis = outside_commands[k].synopsis;
        return true;
    }
    if (depth == 0)
        k -= ARRAY_LEN(outside_commands);
    for (; (c = command_at(k)) != NULL; k++) {
        if (command_under(c, words, depth))
            break;
    }
    if (c == NULL)
        return false;
    e->name = c->words[depth];
    e->synopsis = c->synopsis;
    if (depth + 1 < 3 && c->words[depth + 1] != NULL) {
        /* c is in a group under this one: list the group instead. */
        g = group_find(c->words, depth + 1);
        e->synopsis = g != NULL ? g->synopsis : "";
    }
    return true;
}

/*
 * Lists the commands and groups under words[0..depth), once each and
 * sorted by name as mitchellh/cli does: "    name    synopsis". The
 * lists are short; a selection sort needs no allocation.
 */
static void print_entries(FILE *f, const char *const *words, int depth)
{
    struct cli_entry e, best = { NULL, NULL };
    const char *last = NULL;
    size_t k, width = 0;

    for (k = 0; entry_at(words, depth, k, &e); k++) {
        if (strlen(e.name) > width)
            width = strlen(e.name);
    }
    for (;;) {
        best.name = NULL;
        for (k = 0; entry_at(words, depth, k, &e); k++) {
            if ((last == NULL || strcmp(e.name, last) > 0) &&
                (best.name == NULL || strcmp(e.name, best.name) < 0))
                best = e;
        }
        if (best.name == NULL)
            break;
        fprintf(f, "    %-*s    %s\n", (int)width, best.name, best.synopsis);
        last = best.name;
    }
}

/* The usage of the group words[0..depth), or the main one (depth 0). */
static void print_usage(FILE *f, const char *const *words, int depth)
{
    const struct cli_group *g;

    if (depth == 0) {
        fputs("Usage: coffer <command> [args]\n\nCommands:\n", f);
        print_entries(f, words, 0);
        fputs("\nEvery command answers -h with its own help.\n", f);
        return;
    }
    g = group_find(words, depth);
    fprintf(f, "Usage: coffer %s%s%s <subcommand> [options] [args]\n\n%s\n"
               "Subcommands:\n",
            words[0], depth > 1 ? " " : "", depth > 1 ? words[1] : "",
            g != NULL ? g->description : group_default_text);
    print_entries(f, words, depth);
}

/* How many of the words at argv[1..] name a group (0, 1 or 2). */
static int group_depth(int argc, char **argv)
{
    const char *const *words = (const char *const *)(argv + 1);
    const struct cli_command *c;
    int depth;
    size_t k;

    for (depth = 0; depth < 2 && 1 + depth < argc; depth++) {
        /* words[0..depth] is a group when a command goes on after it. */
        for (k = 0; (c = command_at(k)) != NULL; k++) {
            if (command_under(c, words, depth + 1))
                break;
        }
        if (c == NULL)
            break;
    }
    return depth;
}

/* mitchellh/cli looks for -h/-help/--help before any flag is parsed. */
static bool wants_help(int argc, char **argv)
{
    int i;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "-help") == 0 ||
            strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

/*
 * No command matched argv. Asked for with -h, a group's usage (or the
 * main one, before any command word) goes to stdout with exit 0, as in
 * Vault; otherwise it is a usage error on stderr: 1 for a group (its
 * Run returns RunResultHelp), 127 for an unknown command.
 */
static int usage_for(int argc, char **argv)
{
    const char *const *words = (const char *const *)(argv + 1);
    int depth = group_depth(argc, argv);
    bool top = argc < 2 || argv[1][0] == '-';

    if (wants_help(argc - 1, argv + 1) && (depth > 0 || top)) {
        print_usage(stdout, words, depth);
        return 0;
    }
    print_usage(stderr, words, depth);
    return depth > 0 ? 1 : 127;
}

/* ====================================================================
 * Dispatch
 * ==================================================================== */

/* The command named by argv[1..]; *used is how many words it took. */
static const struct cli_command *find_command(int argc, char **argv, int *used)
{
    const struct cli_command *c;
    size_t t;
    int w;

    for (t = 0; t < ARRAY_LEN(command_tables); t++) {
        for (c = command_tables[t]; c->run != NULL; c++) {
            for (w = 0; w < 3 && c->words[w] != NULL; w++) {
                if (1 + w >= argc || strcmp(argv[1 + w], c->words[w]) != 0)
                    break;
            }
            if (w == 3 || c->words[w] == NULL) {
                *used = w;
                return c;
            }
        }
    }
    return NULL;
}

static int run_command(const struct cli_command *cmd, int argc, char **argv)
{
    struct cli ctx;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(cmd->help, stdout);
        return 0;
    }
    cli__init(&ctx, cmd);
    rc = cmd->run(&ctx, argc, argv);
    cli__release(&ctx);
    return rc;
}

int cli_main(int argc, char **argv)
{
    const struct cli_command *cmd;
    int used = 0, rc;

    cmd = find_command(argc, argv, &used);
    if (cmd == NULL)
        return usage_for(argc, argv);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cli__fail(2, "failed to initialise libcurl");
    rc = run_command(cmd, argc - 1 - used, argv + 1 + used);
    curl_global_cleanup();
    fflush(stdout);
    return rc;
}
