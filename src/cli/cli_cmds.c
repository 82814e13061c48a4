/*
 * cli_cmds.c - the general client commands: read, write, list, delete,
 * secrets enable|disable|list|tune, token create|lookup|revoke|renew and
 * status.
 *
 * Owns: for each command, its options struct and flags, its arguments,
 * the API path and body it sends (the Go client's request structs, field
 * for field), and what it prints; also the plumbing every command file
 * shares (cli__begin, cli__call) and the endings that the kv commands
 * share (cli__write_output, cli__list_output, cli__delete_output).
 *
 * Not owned: flag parsing and dispatch (cli.c), HTTP (cli_http.c),
 * formatting (cli_format.c).
 *
 * Entry point: the table cli__cmds_commands (cli_cmd.h).
 */
#include <stdarg.h>
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

/* ====================================================================
 * plumbing every command shares
 * ==================================================================== */

int cli__begin(struct cli *ctx, size_t min, size_t max)
{
    int rc = cli__arg_count_error(ctx->args.n, min, max);

    if (rc == 0)
        rc = cli__need_client(ctx);
    return rc;
}

int cli__call(struct cli *ctx, const char *method, const char *path,
              const char *query, const cJSON *body, enum cli_call_mode mode,
              cJSON **secret, const char *fmt, ...)
{
    struct out err;
    va_list ap;
    int rc = 0;

    out_init(&err);
    if (cli__api_call(&ctx->client, method, path, query, body, mode, secret,
                      NULL, &err) != 0) {
        /* Vault's "Error <verb> ...: <detail>", as cli__report prints it. */
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, ": %s\n", err.b.ptr != NULL ? err.b.ptr : "");
        rc = 2;
    }
    out_release(&err);
    return rc;
}

/* ====================================================================
 * read, write, list, delete
 * ==================================================================== */

/* `read -format=raw`: the body exactly as the server sent it. */
static int read_raw(struct cli *ctx, const char *path, const char *query)
{
    struct cli_http_result r;
    struct out err, o;
    int rc;

    cli__http_result_init(&r);
    out_init(&err);
    out_init(&o);
    rc = cli__request(&ctx->client, "GET", path, query, NULL, &r, &err);
    if (rc == 0 && (r.status >= 400 || r.status < 200))
        cli__api_error_text(&r, &err);
    if (err.b.len > 0) {
        rc = cli__report(&err, "Error reading: %s", path);
        goto out;
    }
    out_put(&o, r.body.ptr != NULL ? r.body.ptr : "", r.body.len);
    out_putc(&o, '\n');
    rc = cli__emit(stdout, &o);
out:
    out_release(&o);
    out_release(&err);
    cli__http_result_release(&r);
    return rc;
}

/*
 * What read and delete do once PATH is there: the client, PATH sanitized
 * into *path (new string), and the K=V arguments after it as a query
 * string in `query`; `what` names them in the parse error. Returns 0, or
 * the exit code after printing why not.
 */
static int path_and_query(struct cli *ctx, const char *what, char **path,
                          struct buf *query)
{
    cJSON *params = NULL;
    struct out err;
    int rc;

    rc = cli__need_client(ctx);
    if (rc != 0)
        return rc;
    *path = cli__sanitize_path(ctx->args.v[0]);
    out_init(&err);
    if (cli__args_to_json(&ctx->args, 1, &ctx->stdin_used, &params,
                          &err) != 0)
        rc = cli__fail(1, "Failed to parse %s data: %s", what, err.b.ptr);
    else if (params != NULL)
        cli__json_to_query(params, query);
    json_delete_wiped(params);
    out_release(&err);
    return rc;
}

static int cmd_read(struct cli *ctx, int argc, char **argv)
{
    char *path = NULL;
    cJSON *secret = NULL;
    struct buf query;
    int rc;

    buf_init(&query, 0);
    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc != 0)
        goto out;
    if (ctx->args.n < 1) {
        rc = cli__arg_count_error(ctx->args.n, 1, 1);
        goto out;
    }
    rc = path_and_query(ctx, "K=V", &path, &query);
    if (rc != 0)
        goto out;
    if (ctx->format == CLI_FMT_RAW) {
        rc = read_raw(ctx, path, query.ptr);
        goto out;
    }
    rc = cli__call(ctx, "GET", path, query.ptr, NULL, CLI_CALL_READ, &secret,
                   "Error reading %s", path);
    if (rc != 0)
        goto out;
    if (secret == NULL) {
        rc = cli__fail(2, "No value found at %s", path);
        goto out;
    }
    rc = cli__print_result(ctx, secret);
out:
    json_delete_wiped(secret);
    buf_release(&query);
    free(path);
    return rc;
}

/*
 * The ending write-like and delete-like commands share (Vault's
 * handleWriteSecretOutput): "<failed> PATH: <error>" with any returned
 * data, "Success! <done>: PATH" for an empty answer in table format, else
 * the response.
 */
static int call_output(struct cli *ctx, const char *path, int call_rc,
                       const cJSON *secret, const struct out *err,
                       const char *failed, const char *done)
{
    int rc;

    if (call_rc != 0) {
        rc = cli__report(err, "%s %s", failed, path);
        if (secret != NULL)
            cli__print_secret(ctx, secret);
        return rc;
    }
    if (secret == NULL) {
        if (ctx->format == CLI_FMT_TABLE)
            printf("Success! %s: %s\n", done, path);
        return 0;
    }
    return cli__print_result(ctx, secret);
}

int cli__write_output(struct cli *ctx, const char *path, int call_rc,
                      const cJSON *secret, const struct out *err)
{
    return call_output(ctx, path, call_rc, secret, err,
                       "Error writing data to", "Data written to");
}

/* write's flags. */
struct write_opts {
    bool force; /* -force, -f: send the request even without data */
};

static int cmd_write(struct cli *ctx, int argc, char **argv)
{
    struct write_opts o = { false };
    const struct cli_flag flags[] = {
        CLI_BOOL("force", "f", &o.force),
        CLI_FLAG_END,
    };
    char *path = NULL;
    cJSON *data = NULL, *secret = NULL, *null_body = NULL;
    struct out err;
    int rc;

    out_init(&err);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc != 0)
        goto out;
    if (ctx->args.n < 1) {
        rc = cli__arg_count_error(ctx->args.n, 1, 1);
        goto out;
    }
    if (ctx->args.n == 1 && !o.force) {
        rc = cli__fail(1, "Must supply data or use -force");
        goto out;
    }
    path = cli__sanitize_path(ctx->args.v[0]);
    if (cli__args_to_json(&ctx->args, 1, &ctx->stdin_used, &data,
                          &err) != 0) {
        rc = cli__fail(1, "Failed to parse K=V data: %s", err.b.ptr);
        goto out;
    }
    rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    /* With -force and no data the Go client sends a JSON null. */
    null_body = data == NULL ? cJSON_CreateNull() : NULL;
    rc = cli__api_call(&ctx->client, "PUT", path, NULL,
                       data != NULL ? data : null_body, CLI_CALL_WRITE, &secret,
                       NULL, &err);
    rc = cli__write_output(ctx, path, rc, secret, &err);
out:
    cJSON_Delete(null_body);
    json_delete_wiped(secret);
    json_delete_wiped(data);
    out_release(&err);
    free(path);
    return rc;
}

static int print_list(struct cli *ctx, const cJSON *secret)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    struct out o;

    if (ctx->format != CLI_FMT_TABLE)
        return cli__print_data(ctx,
                               cJSON_GetObjectItemCaseSensitive(data, "keys"));
    out_init(&o);
    fmt_warnings(&o, secret);
    cli__emit(stderr, &o);
    fmt_list_table(&o, cJSON_GetObjectItemCaseSensitive(data, "keys"));
    return cli__emit(stdout, &o);
}

/* What list and kv list print once the LIST call came back. */
int cli__list_output(struct cli *ctx, const char *path, const cJSON *secret)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(data, "keys");
    cJSON *empty = NULL;

    if (ctx->format != CLI_FMT_TABLE &&
        (secret == NULL || cli__json_is_nullish(data) ||
         !cJSON_IsArray(keys))) {
        empty = cJSON_CreateObject();
        cli__print_data(ctx, empty);
        cJSON_Delete(empty);
        return 2;
    }
    if (secret == NULL)
        return cli__fail(2, "No value found at %s", path);
    if (cli__json_is_nullish(data))
        return cli__print_secret(ctx, secret);
    if (!cJSON_IsArray(keys))
        return cli__fail(2, "No entries found at %s", path);
    return print_list(ctx, secret);
}

static int cmd_list(struct cli *ctx, int argc, char **argv)
{
    char *path = NULL;
    cJSON *secret = NULL;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    path = cli__sanitize_path(ctx->args.v[0]);
    rc = cli__call(ctx, "LIST", path, NULL, NULL, CLI_CALL_READ, &secret,
                   "Error listing %s", path);
    if (rc != 0)
        goto out;
    rc = cli__list_output(ctx, path, secret);
out:
    json_delete_wiped(secret);
    free(path);
    return rc;
}

/* What delete and kv delete print once the call came back. */
int cli__delete_output(struct cli *ctx, const char *path, int call_rc,
                       const cJSON *secret, const struct out *err)
{
    return call_output(ctx, path, call_rc, secret, err, "Error deleting",
                       "Data deleted (if it existed) at");
}

static int cmd_delete(struct cli *ctx, int argc, char **argv)
{
    char *path = NULL;
    cJSON *secret = NULL;
    struct buf query;
    struct out err;
    int rc;

    buf_init(&query, 0);
    out_init(&err);
    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc != 0)
        goto out;
    if (ctx->args.n < 1) {
        rc = cli__fail(1, "Not enough arguments (expected at least 1, got 0)");
        goto out;
    }
    rc = path_and_query(ctx, "string list", &path, &query);
    if (rc != 0)
        goto out;
    rc = cli__api_call(&ctx->client, "DELETE", path, query.ptr, NULL,
                       CLI_CALL_WRITE, &secret, NULL, &err);
    rc = cli__delete_output(ctx, path, rc, secret, &err);
out:
    json_delete_wiped(secret);
    out_release(&err);
    buf_release(&query);
    free(path);
    return rc;
}


/* ====================================================================
 * secrets enable | disable | list | tune
 * ==================================================================== */

/* Go's time.Duration.String() for whole seconds ("1h0m0s", "-1s"). */
static void go_duration(int64_t secs, char *out, size_t n)
{
    if (secs < 0 && n > 1) {
        out[0] = '-';
        duration_format_go(-secs, out + 1, n - 1);
        return;
    }
    duration_format_go(secs, out, n);
}

/* The -options k=v flags (plus -version) as a JSON object, or JSON null. */
static cJSON *options_json(const struct strvec *options, int64_t version)
{
    cJSON *obj;
    char *key, tmp[32];
    const char *eq;
    size_t i;

    if (options->n == 0 && version <= 0)
        return cJSON_CreateNull();
    obj = cJSON_CreateObject();
    COFFER_ASSERT(obj != NULL);
    for (i = 0; i < options->n; i++) {
        eq = strchr(options->v[i], '=');
        key = xstrndup(options->v[i], (size_t)(eq - options->v[i]));
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        cJSON_AddStringToObject(obj, key, eq + 1);
        free(key);
    }
    if (version > 0) {
        snprintf(tmp, sizeof(tmp), "%lld", (long long)version);
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "version");
        cJSON_AddStringToObject(obj, "version", tmp);
    }
    return obj;
}

/* secrets enable's flags. */
struct secrets_enable_opts {
    const char *path;           /* -path: where to mount (default TYPE) */
    const char *description;    /* -description */
    const char *plugin_name;    /* -plugin-name: TYPE for "plugin" */
    int64_t default_lease_ttl;  /* -default-lease-ttl */
    int64_t max_lease_ttl;      /* -max-lease-ttl */
    struct strvec options;      /* -options k=v, repeatable */
    int64_t version;            /* -version: options.version */
    bool local;                 /* -local */
    bool seal_wrap;             /* -seal-wrap */
    bool force_no_cache;        /* -force-no-cache */
    bool external_entropy_access; /* -external-entropy-access */
};

/* api.MountInput as `vault secrets enable` fills it. */
static cJSON *mount_input(const struct secrets_enable_opts *o,
                          const char *type)
{
    cJSON *body = cJSON_CreateObject(), *config;
    char tmp[64];

    COFFER_ASSERT(body != NULL);
    cJSON_AddStringToObject(body, "type", type);
    cJSON_AddStringToObject(body, "description",
                            o->description != NULL ? o->description : "");
    config = cJSON_AddObjectToObject(body, "config");
    COFFER_ASSERT(config != NULL);
    cJSON_AddNullToObject(config, "options");
    go_duration(o->default_lease_ttl, tmp, sizeof(tmp));
    cJSON_AddStringToObject(config, "default_lease_ttl", tmp);
    go_duration(o->max_lease_ttl, tmp, sizeof(tmp));
    cJSON_AddStringToObject(config, "max_lease_ttl", tmp);
    cJSON_AddBoolToObject(config, "force_no_cache", o->force_no_cache);
    cJSON_AddBoolToObject(body, "local", o->local);
    cJSON_AddBoolToObject(body, "seal_wrap", o->seal_wrap);
    cJSON_AddBoolToObject(body, "external_entropy_access",
                          o->external_entropy_access);
    cJSON_AddItemToObject(body, "options",
                          options_json(&o->options, o->version));
    return body;
}

static int cmd_secrets_enable(struct cli *ctx, int argc, char **argv)
{
    struct secrets_enable_opts o;
    const struct cli_flag flags[] = {
        CLI_STRING("description", NULL, &o.description),
        CLI_STRING("path", NULL, &o.path),
        CLI_DURATION("default-lease-ttl", NULL, &o.default_lease_ttl),
        CLI_DURATION("max-lease-ttl", NULL, &o.max_lease_ttl),
        CLI_MAP("options", NULL, &o.options),
        CLI_BOOL("local", NULL, &o.local),
        CLI_BOOL("seal-wrap", NULL, &o.seal_wrap),
        CLI_BOOL("force-no-cache", NULL, &o.force_no_cache),
        CLI_BOOL("external-entropy-access", NULL,
                 &o.external_entropy_access),
        CLI_STRING("plugin-name", NULL, &o.plugin_name),
        CLI_INT("version", NULL, &o.version),
        CLI_FLAG_END,
    };
    const char *type, *raw_path;
    char *mount = NULL, *api_path = NULL;
    cJSON *body = NULL, *secret = NULL;
    int rc;

    memset(&o, 0, sizeof(o));
    strvec_init(&o.options);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    type = ctx->args.v[0];
    if (strcmp(type, "plugin") == 0 && o.plugin_name != NULL)
        type = o.plugin_name;
    raw_path = o.path != NULL && o.path[0] != '\0' ? o.path : type;
    mount = cli__ensure_trailing_slash(raw_path);
    body = mount_input(&o, type);
    /* The Go client keeps the trailing '/': POST /v1/sys/mounts/kv/ */
    api_path = cli__str_concat3("sys/mounts/", mount, "");
    rc = cli__call(ctx, "POST", api_path, NULL, body, CLI_CALL_RAW, &secret,
                   "Error enabling");
    if (rc != 0)
        goto out;
    printf("Success! Enabled the %s secrets engine at: %s\n", type, mount);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    free(api_path);
    free(mount);
    strvec_release(&o.options);
    return rc;
}

static int cmd_secrets_disable(struct cli *ctx, int argc, char **argv)
{
    char *clean = NULL, *mount = NULL, *api_path = NULL;
    cJSON *secret = NULL;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    clean = cli__sanitize_path(ctx->args.v[0]);
    mount = cli__ensure_trailing_slash(clean);
    api_path = cli__str_concat3("sys/mounts/", mount, "");
    rc = cli__call(ctx, "DELETE", api_path, NULL, NULL, CLI_CALL_RAW, &secret,
                   "Error disabling secrets engine at %s", mount);
    if (rc != 0)
        goto out;
    printf("Success! Disabled the secrets engine (if it existed) at: %s\n",
           mount);
out:
    json_delete_wiped(secret);
    free(api_path);
    free(mount);
    free(clean);
    return rc;
}

/* Vault's calcTTL in the detailed list: system mounts have none. */
static void mount_ttl(struct out *line, const char *type, const cJSON *v)
{
    if (strcmp(type, "system") == 0 || strcmp(type, "cubbyhole") == 0)
        return;
    if (cJSON_IsNumber(v) && v->valuedouble != 0)
        fmt_go_value(line, v);
    else
        out_puts(line, "system");
}

static void mount_row_detailed(struct out *line, const char *path,
                               const cJSON *m)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(m, "config");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(m, "options");
    const char *type = cli__str_member(m, "type");
    static const char *const tail[] = { "description", "uuid",
                                        "plugin_version",
                                        "running_plugin_version",
                                        "running_sha256",
                                        "deprecation_status" };
    size_t i;

    out_printf(line, "%s | ", path);
    out_puts(line, strcmp(type, "plugin") == 0
                       ? cli__str_member(cfg, "plugin_name")
                       : type);
    out_printf(line, " | %s | ", cli__str_member(m, "accessor"));
    mount_ttl(line, type,
              cJSON_GetObjectItemCaseSensitive(cfg, "default_lease_ttl"));
    out_puts(line, " | ");
    mount_ttl(line, type,
              cJSON_GetObjectItemCaseSensitive(cfg, "max_lease_ttl"));
    out_printf(line, " | %s | %s | %s | %s | ",
               cli__bool_member(cfg, "force_no_cache"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "local"))
                   ? "local"
                   : "replicated",
               cli__bool_member(m, "seal_wrap"),
               cli__bool_member(m, "external_entropy_access"));
    /* A nil map[string]string prints as "map[]" with %v. */
    if (cJSON_IsObject(opts))
        fmt_go_value(line, opts);
    else
        out_puts(line, "map[]");
    for (i = 0; i < ARRAY_LEN(tail); i++)
        out_printf(line, " | %s", cli__str_member(m, tail[i]));
}

/* The rows of `vault secrets list` (Vault's simpleMounts/detailedMounts). */
static void mount_rows(const cJSON *mounts, bool detailed,
                       struct strvec *lines)
{
    const cJSON *m;
    struct strvec paths;
    struct out line;
    size_t i;

    strvec_init(&paths);
    cJSON_ArrayForEach(m, mounts) {
        strvec_push(&paths, m->string);
    }
    strvec_sort(&paths);
    strvec_push(lines, detailed
                ? "Path | Plugin | Accessor | Default TTL | Max TTL | "
                  "Force No Cache | Replication | Seal Wrap | External "
                  "Entropy Access | Options | Description | UUID | Version | "
                  "Running Version | Running SHA256 | Deprecation Status"
                : "Path | Type | Accessor | Description");
    out_init(&line);
    for (i = 0; i < paths.n; i++) {
        m = cJSON_GetObjectItemCaseSensitive(mounts, paths.v[i]);
        if (detailed)
            mount_row_detailed(&line, paths.v[i], m);
        else
            out_printf(&line, "%s | %s | %s | %s", paths.v[i],
                       cli__str_member(m, "type"),
                       cli__str_member(m, "accessor"),
                       cli__str_member(m, "description"));
        strvec_push(lines, line.b.ptr != NULL ? line.b.ptr : "");
        out_release(&line);
        out_init(&line);
    }
    out_release(&line);
    strvec_release(&paths);
}

static int cmd_secrets_list(struct cli *ctx, int argc, char **argv)
{
    cJSON *secret = NULL;
    const cJSON *mounts;
    struct strvec lines;
    struct out err, o, js;
    int rc;

    strvec_init(&lines);
    out_init(&err);
    out_init(&o);
    out_init(&js);
    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 0);
    if (rc != 0)
        goto out;
    rc = cli__call(ctx, "GET", "sys/mounts", NULL, NULL, CLI_CALL_RAW, &secret,
                   "Error listing secrets engines");
    if (rc != 0)
        goto out;
    mounts = cJSON_GetObjectItemCaseSensitive(secret, "data");
    if (ctx->format == CLI_FMT_TABLE) {
        mount_rows(mounts, ctx->g.detailed, &lines);
        fmt_table(&o, &lines, "|");
    } else {
        fmt_json_mounts(&js, mounts);
        cli__structured(ctx, &o, &js);
    }
    rc = cli__emit(stdout, &o);
out:
    json_delete_wiped(secret);
    out_release(&js);
    out_release(&o);
    out_release(&err);
    strvec_release(&lines);
    return rc;
}

/* Vault's ttlToAPI: 0 is "unchanged" (""), negative is "system". */
static void ttl_to_api(cJSON *obj, const char *key, int64_t secs)
{
    char tmp[64];

    if (secs == 0)
        snprintf(tmp, sizeof(tmp), "%s", "");
    else if (secs < 0)
        snprintf(tmp, sizeof(tmp), "%s", "system");
    else
        go_duration(secs, tmp, sizeof(tmp));
    cJSON_AddStringToObject(obj, key, tmp);
}

/* secrets tune's flags. */
struct secrets_tune_opts {
    int64_t default_lease_ttl; /* -default-lease-ttl; 0 leaves it */
    int64_t max_lease_ttl;     /* -max-lease-ttl; 0 leaves it */
    const char *description;   /* -description; NULL leaves it */
    struct strvec options;     /* -options k=v, repeatable */
    int64_t version;           /* -version: options.version */
};

static int cmd_secrets_tune(struct cli *ctx, int argc, char **argv)
{
    struct secrets_tune_opts o;
    const struct cli_flag flags[] = {
        CLI_DURATION("default-lease-ttl", NULL, &o.default_lease_ttl),
        CLI_DURATION("max-lease-ttl", NULL, &o.max_lease_ttl),
        CLI_STRING("description", NULL, &o.description),
        CLI_MAP("options", NULL, &o.options),
        CLI_INT("version", NULL, &o.version),
        CLI_FLAG_END,
    };
    char *clean = NULL, *mount = NULL, *api_path = NULL;
    cJSON *body = NULL, *secret = NULL;
    int rc;

    memset(&o, 0, sizeof(o));
    strvec_init(&o.options);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    clean = cli__sanitize_path(ctx->args.v[0]);
    mount = cli__ensure_trailing_slash(clean);
    /* api.MountConfigInput: field order and omitempty as in the Go API. */
    body = cJSON_CreateObject();
    COFFER_ASSERT(body != NULL);
    cJSON_AddItemToObject(body, "options",
                          options_json(&o.options, o.version));
    ttl_to_api(body, "default_lease_ttl", o.default_lease_ttl);
    if (o.description != NULL) /* given, even as "" */
        cJSON_AddStringToObject(body, "description", o.description);
    ttl_to_api(body, "max_lease_ttl", o.max_lease_ttl);
    cJSON_AddBoolToObject(body, "force_no_cache", false);
    api_path = cli__str_concat3("sys/mounts/", mount, "tune");
    rc = cli__call(ctx, "POST", api_path, NULL, body, CLI_CALL_RAW, &secret,
                   "Error tuning secrets engine %s", mount);
    if (rc != 0)
        goto out;
    printf("Success! Tuned the secrets engine at: %s\n", mount);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    free(api_path);
    free(mount);
    free(clean);
    strvec_release(&o.options);
    return rc;
}

/* ====================================================================
 * token create | lookup | revoke | renew
 * ==================================================================== */

static cJSON *string_list(const struct strvec *sv)
{
    cJSON *list = cJSON_CreateArray();
    size_t i;

    COFFER_ASSERT(list != NULL);
    for (i = 0; i < sv->n; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(sv->v[i]));
    return list;
}

static cJSON *kv_map(const struct strvec *pairs)
{
    cJSON *obj = cJSON_CreateObject();
    const char *eq;
    char *key;
    size_t i;

    COFFER_ASSERT(obj != NULL);
    for (i = 0; i < pairs->n; i++) {
        eq = strchr(pairs->v[i], '=');
        key = xstrndup(pairs->v[i], (size_t)(eq - pairs->v[i]));
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        cJSON_AddStringToObject(obj, key, eq + 1);
        free(key);
    }
    return obj;
}

/* token create's flags. */
struct token_create_opts {
    const char *id;            /* -id: the token's value */
    const char *display_name;  /* -display-name */
    const char *role;          /* -role: create against a token role */
    const char *type;          /* -type: service (when NULL) or batch */
    const char *entity_alias;  /* -entity-alias */
    int64_t ttl;               /* -ttl */
    int64_t explicit_max_ttl;  /* -explicit-max-ttl */
    int64_t period;            /* -period */
    int64_t use_limit;         /* -use-limit */
    bool renewable;            /* -renewable, true unless =false */
    bool orphan;               /* -orphan */
    bool no_default_policy;    /* -no-default-policy */
    struct strvec metadata;    /* -metadata k=v, repeatable */
    struct strvec policies;    /* -policy, repeatable */
};

/* api.TokenCreateRequest: its field order and omitempty rules. */
static cJSON *token_create_body(const struct token_create_opts *o)
{
    const char *type = o->type != NULL ? o->type : "service";
    cJSON *b = cJSON_CreateObject();
    char tmp[64];

    COFFER_ASSERT(b != NULL);
    if (o->id != NULL && o->id[0] != '\0')
        cJSON_AddStringToObject(b, "id", o->id);
    if (o->policies.n > 0)
        cJSON_AddItemToObject(b, "policies", string_list(&o->policies));
    if (o->metadata.n > 0)
        cJSON_AddItemToObject(b, "meta", kv_map(&o->metadata));
    go_duration(o->ttl, tmp, sizeof(tmp));
    cJSON_AddStringToObject(b, "ttl", tmp);
    go_duration(o->explicit_max_ttl, tmp, sizeof(tmp));
    cJSON_AddStringToObject(b, "explicit_max_ttl", tmp);
    go_duration(o->period, tmp, sizeof(tmp));
    cJSON_AddStringToObject(b, "period", tmp);
    if (o->orphan)
        cJSON_AddTrueToObject(b, "no_parent");
    if (o->no_default_policy)
        cJSON_AddTrueToObject(b, "no_default_policy");
    cJSON_AddStringToObject(b, "display_name",
                            o->display_name != NULL ? o->display_name : "");
    cJSON_AddNumberToObject(b, "num_uses", (double)o->use_limit);
    /* A batch token is never renewable; Vault's CLI forces that. */
    cJSON_AddBoolToObject(b, "renewable",
                          o->renewable && strcmp(type, "batch") != 0);
    cJSON_AddStringToObject(b, "type", type);
    cJSON_AddStringToObject(b, "entity_alias",
                            o->entity_alias != NULL ? o->entity_alias : "");
    return b;
}

static int cmd_token_create(struct cli *ctx, int argc, char **argv)
{
    struct token_create_opts o;
    const struct cli_flag flags[] = {
        CLI_STRING("id", NULL, &o.id),
        CLI_STRING("display-name", NULL, &o.display_name),
        CLI_DURATION("ttl", NULL, &o.ttl),
        CLI_DURATION("explicit-max-ttl", NULL, &o.explicit_max_ttl),
        CLI_DURATION("period", NULL, &o.period),
        CLI_BOOL("renewable", NULL, &o.renewable),
        CLI_BOOL("orphan", NULL, &o.orphan),
        CLI_BOOL("no-default-policy", NULL, &o.no_default_policy),
        CLI_INT("use-limit", NULL, &o.use_limit),
        CLI_STRING("role", NULL, &o.role),
        CLI_STRING("type", NULL, &o.type),
        CLI_MAP("metadata", NULL, &o.metadata),
        CLI_LIST("policy", NULL, &o.policies),
        CLI_STRING("entity-alias", NULL, &o.entity_alias),
        CLI_FLAG_END,
    };
    cJSON *body = NULL, *secret = NULL;
    char *path = NULL;
    int rc;

    memset(&o, 0, sizeof(o));
    o.renewable = true;
    strvec_init(&o.metadata);
    strvec_init(&o.policies);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 0);
    if (rc != 0)
        goto out;
    body = token_create_body(&o);
    if (o.role != NULL && o.role[0] != '\0')
        path = cli__str_concat3("auth/token/create/", o.role, "");
    else
        path = xstrdup("auth/token/create");
    rc = cli__call(ctx, "POST", path, NULL, body, CLI_CALL_RAW, &secret,
                   "Error creating token");
    if (rc != 0)
        goto out;
    rc = secret != NULL ? cli__print_result(ctx, secret) : 0;
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    free(path);
    strvec_release(&o.metadata);
    strvec_release(&o.policies);
    return rc;
}

/* token lookup's flags. */
struct token_lookup_opts {
    bool accessor; /* -accessor: TOKEN is an accessor */
};

static int cmd_token_lookup(struct cli *ctx, int argc, char **argv)
{
    struct token_lookup_opts o = { false };
    const struct cli_flag flags[] = {
        CLI_BOOL("accessor", NULL, &o.accessor),
        CLI_FLAG_END,
    };
    const char *method = "POST", *path = "auth/token/lookup";
    cJSON *body = NULL, *secret = NULL;
    char *token = NULL;
    struct out err;
    size_t n;
    int rc;

    out_init(&err);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc != 0)
        goto out;
    n = ctx->args.n;
    if (o.accessor && n != 1)
        rc = cli__fail(1, "%s arguments with -accessor (expected 1, got %zu)",
                       n < 1 ? "Not enough" : "Too many", n);
    else if (n > 1)
        rc = cli__fail(1, "Too many arguments (expected 0-1, got %zu)", n);
    if (rc == 0)
        rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    token = cli__trim_dup(n == 1 ? ctx->args.v[0] : "");
    if (token[0] == '\0') {
        method = "GET";
        path = "auth/token/lookup-self";
    } else if (o.accessor) {
        path = "auth/token/lookup-accessor";
        body = cli__one_member("accessor", token);
    } else {
        body = cli__one_member("token", token);
    }
    rc = cli__api_call(&ctx->client, method, path, NULL, body, CLI_CALL_RAW,
                       &secret, NULL, &err);
    if (rc != 0)
        rc = cli__report(&err, "Error looking up token");
    else
        rc = secret != NULL ? cli__print_result(ctx, secret) : 0;
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    secure_free_str(token);
    out_release(&err);
    return rc;
}

/* token revoke's flags. */
struct token_revoke_opts {
    bool accessor;    /* -accessor: TOKEN is an accessor */
    bool self;        /* -self: the token in use */
    const char *mode; /* -mode: "", orphan or path */
};

/* Vault's checks on the flag combinations of `token revoke`. */
static int token_revoke_usage(const struct token_revoke_opts *o, size_t n)
{
    const char *mode = o->mode != NULL ? o->mode : "";

    if (strcmp(mode, "") != 0 && strcmp(mode, "orphan") != 0 &&
        strcmp(mode, "path") != 0)
        return cli__fail(1, "Invalid mode: %s", mode);
    if (o->self && n > 0)
        return cli__fail(
            1, "Too many arguments with -self (expected 0, got %zu)", n);
    if (!o->self && n > 1)
        return cli__fail(1, "Too many arguments (expected 1 or -self, got %zu)",
                         n);
    if (!o->self && n < 1)
        return cli__fail(
            1, "Not enough arguments (expected 1 or -self, got %zu)", n);
    if (o->self && o->accessor)
        return cli__fail(1, "Cannot use -self with -accessor!");
    if (o->self && mode[0] != '\0')
        return cli__fail(1, "Cannot use -self with -mode!");
    if (o->accessor && strcmp(mode, "orphan") == 0)
        return cli__fail(1, "Cannot use -accessor with -mode=orphan!");
    if (o->accessor && strcmp(mode, "path") == 0)
        return cli__fail(1, "Cannot use -accessor with -mode=path!");
    return 0;
}

static int cmd_token_revoke(struct cli *ctx, int argc, char **argv)
{
    struct token_revoke_opts o = { false, false, NULL };
    const struct cli_flag flags[] = {
        CLI_BOOL("accessor", NULL, &o.accessor),
        CLI_BOOL("self", NULL, &o.self),
        CLI_STRING("mode", NULL, &o.mode),
        CLI_FLAG_END,
    };
    const char *mode, *method = "PUT";
    char *token = NULL, *path = NULL;
    cJSON *body = NULL, *secret = NULL;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = token_revoke_usage(&o, ctx->args.n);
    if (rc == 0)
        rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    mode = o.mode != NULL ? o.mode : "";
    token = cli__trim_dup(ctx->args.n > 0 ? ctx->args.v[0] : "");
    if (o.self) {
        path = xstrdup("auth/token/revoke-self");
    } else if (o.accessor) {
        method = "POST";
        path = xstrdup("auth/token/revoke-accessor");
        body = cli__one_member("accessor", token);
    } else if (strcmp(mode, "orphan") == 0) {
        path = xstrdup("auth/token/revoke-orphan");
        body = cli__one_member("token", token);
    } else if (strcmp(mode, "path") == 0) {
        path = cli__str_concat3("sys/leases/revoke-prefix/", token, "");
    } else {
        path = xstrdup("auth/token/revoke");
        body = cli__one_member("token", token);
    }
    rc = cli__call(ctx, method, path, NULL, body, CLI_CALL_RAW, &secret,
                   "Error revoking token");
    if (rc != 0)
        goto out;
    printf("Success! Revoked token (if it existed)\n");
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    secure_free_str(path);
    secure_free_str(token);
    return rc;
}

/* token renew's flags. */
struct token_renew_opts {
    bool accessor;     /* -accessor: TOKEN is an accessor */
    int64_t increment; /* -increment, -i: the new TTL asked for */
};

static int cmd_token_renew(struct cli *ctx, int argc, char **argv)
{
    struct token_renew_opts o = { false, 0 };
    const struct cli_flag flags[] = {
        CLI_BOOL("accessor", NULL, &o.accessor),
        CLI_DURATION("increment", "i", &o.increment),
        CLI_FLAG_END,
    };
    const char *method = "PUT", *path = "auth/token/renew-self";
    cJSON *body = NULL, *secret = NULL;
    char *token = NULL;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 1);
    if (rc != 0)
        goto out;
    token = cli__trim_dup(ctx->args.n == 1 ? ctx->args.v[0] : "");
    body = cJSON_CreateObject();
    COFFER_ASSERT(body != NULL);
    if (token[0] != '\0' && o.accessor) {
        method = "POST";
        path = "auth/token/renew-accessor";
        cJSON_AddStringToObject(body, "accessor", token);
    } else if (token[0] != '\0') {
        path = "auth/token/renew";
        cJSON_AddStringToObject(body, "token", token);
    }
    cJSON_AddNumberToObject(body, "increment",
                            (double)(o.increment > 0 ? o.increment : 0));
    rc = cli__call(ctx, method, path, NULL, body, CLI_CALL_RAW, &secret,
                   "Error renewing token");
    if (rc != 0)
        goto out;
    rc = secret != NULL ? cli__print_result(ctx, secret) : 0;
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    secure_free_str(token);
    return rc;
}


/* ====================================================================
 * status
 * ==================================================================== */

static void push_line(struct strvec *lines, struct out *line)
{
    strvec_push(lines, line->b.ptr != NULL ? line->b.ptr : "");
    out_release(line);
    out_init(line);
}

/* The HA rows of Vault's OutputSealStatusStruct. */
static void ha_rows(struct strvec *lines, struct out *l, const cJSON *seal,
                    const cJSON *leader)
{
    bool is_self = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(leader,
                                                                 "is_self"));
    const char *active = cli__str_member(leader, "active_time");
    const char *addr = cli__str_member(leader, "leader_address");

    out_printf(l, "HA Enabled | %s", cli__bool_member(leader, "ha_enabled"));
    push_line(lines, l);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(leader, "ha_enabled"))
        || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(seal, "sealed")))
        return;
    out_printf(l, "HA Cluster | %s",
               cli__str_member(leader, "leader_cluster_address"));
    push_line(lines, l);
    out_printf(l, "HA Mode | %s", is_self ? "active" : "standby");
    push_line(lines, l);
    if (is_self && active[0] != '\0' &&
        strcmp(active, "0001-01-01T00:00:00Z") != 0) {
        out_printf(l, "Active Since | %s", active);
        push_line(lines, l);
    }
    if (!is_self) {
        out_printf(l, "Active Node Address | %s", addr[0] ? addr : "<none>");
        push_line(lines, l);
    }
}

static void seal_rows(struct strvec *lines, const cJSON *seal,
                      const cJSON *leader)
{
    const char *pre = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                          seal, "recovery_seal")) ? "Recovery " : "";
    bool sealed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(seal,
                                                                "sealed"));
    struct out l;

    out_init(&l);
    strvec_push(lines, "Key | Value");
    out_printf(&l, "%sSeal Type | %s", pre, cli__str_member(seal, "type"));
    push_line(lines, &l);
    out_printf(&l, "Initialized | %s", cli__bool_member(seal, "initialized"));
    push_line(lines, &l);
    out_printf(&l, "Sealed | %s", sealed ? "true" : "false");
    push_line(lines, &l);
    out_printf(&l, "Total %sShares | %lld", pre,
               (long long)json_get_int(seal, "n", 0));
    push_line(lines, &l);
    out_printf(&l, "Threshold | %lld", (long long)json_get_int(seal, "t", 0));
    push_line(lines, &l);
    if (sealed) {
        out_printf(&l, "Unseal Progress | %lld/%lld",
                   (long long)json_get_int(seal, "progress", 0),
                   (long long)json_get_int(seal, "t", 0));
        push_line(lines, &l);
        out_printf(&l, "Unseal Nonce | %s", cli__str_member(seal, "nonce"));
        push_line(lines, &l);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(seal, "migration"))) {
        out_puts(&l, "Seal Migration in Progress | true");
        push_line(lines, &l);
    }
    out_printf(&l, "Version | %s", cli__str_member(seal, "version"));
    push_line(lines, &l);
    out_printf(&l, "Build Date | %s", cli__str_member(seal, "build_date"));
    push_line(lines, &l);
    out_printf(&l, "Storage Type | %s", cli__str_member(seal, "storage_type"));
    push_line(lines, &l);
    if (cli__str_member(seal, "cluster_name")[0] != '\0' &&
        cli__str_member(seal, "cluster_id")[0] != '\0') {
        out_printf(&l, "Cluster Name | %s",
                   cli__str_member(seal, "cluster_name"));
        push_line(lines, &l);
        out_printf(&l, "Cluster ID | %s", cli__str_member(seal, "cluster_id"));
        push_line(lines, &l);
    }
    ha_rows(lines, &l, seal, leader);
    out_release(&l);
}

/*
 * GET sys/leader, as `vault status` uses it. A sealed server answers 503
 * "Vault is sealed", which Vault reads as "HA is enabled"; a server without
 * the endpoint (404) is shown as not HA.
 */
static int fetch_leader(struct cli *ctx, cJSON **leader, struct out *err)
{
    long status = 0;
    int rc;

    rc = cli__api_call(&ctx->client, "GET", "sys/leader", NULL, NULL,
                       CLI_CALL_BARE, leader, &status, err);
    if (rc == 0)
        return 0;
    if ((err->b.ptr != NULL && strstr(err->b.ptr, "Vault is sealed") != NULL)
        || status == 404) {
        *leader = cJSON_CreateObject();
        COFFER_ASSERT(*leader != NULL);
        cJSON_AddBoolToObject(*leader, "ha_enabled", status != 404);
        out_release(err);
        out_init(err);
        return 0;
    }
    return rc;
}

/*
 * Vault's OutputSealStatus, shared with `operator unseal`: sys/leader,
 * then the table or JSON/YAML. Returns 0, or 1 when sys/leader failed.
 */
int cli__print_seal_status(struct cli *ctx, const cJSON *seal)
{
    cJSON *leader = NULL;
    struct strvec lines;
    struct out err, o, js;
    int rc;

    strvec_init(&lines);
    out_init(&err);
    out_init(&o);
    out_init(&js);
    if (fetch_leader(ctx, &leader, &err) != 0) {
        rc = cli__report(&err, "Error checking leader status") - 1;
        goto out;
    }
    if (ctx->format == CLI_FMT_TABLE) {
        seal_rows(&lines, seal, leader);
        fmt_table(&o, &lines, "|");
    } else {
        fmt_json_seal_status(&js, seal, leader);
        cli__structured(ctx, &o, &js);
    }
    rc = cli__emit(stdout, &o);
out:
    json_delete_wiped(leader);
    out_release(&js);
    out_release(&o);
    out_release(&err);
    strvec_release(&lines);
    return rc;
}

static int cmd_status(struct cli *ctx, int argc, char **argv)
{
    cJSON *seal = NULL;
    struct out err;
    int rc;

    out_init(&err);
    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__arg_count_error(ctx->args.n, 0, 0);
    if (rc == 0 && cli__need_client(ctx) != 0)
        rc = 1; /* 2 means "sealed" for this command */
    if (rc != 0)
        goto out;
    if (cli__api_call(&ctx->client, "GET", "sys/seal-status", NULL, NULL,
                      CLI_CALL_BARE, &seal, NULL, &err) != 0) {
        rc = cli__report(&err, "Error checking seal status") - 1;
        goto out;
    }
    rc = cli__print_seal_status(ctx, seal);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(seal, "sealed")))
        rc = 2;
out:
    json_delete_wiped(seal);
    out_release(&err);
    return rc;
}

/* ====================================================================
 * Help texts and the command table
 * ==================================================================== */

/*
 * coffer unwrap [TOKEN] (Vault's api.Logical.Unwrap): the wrapping token
 * is the client token when there is none, else it goes in the body and
 * the client token authorises the call. No TOKEN: the client token is
 * the wrapping token.
 */
static int cmd_unwrap(struct cli *ctx, int argc, char **argv)
{
    cJSON *secret = NULL, *body = NULL;
    const char *wt;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 1);
    if (rc != 0)
        return rc;
    wt = ctx->args.n == 1 ? ctx->args.v[0] : "";
    if (wt[0] != '\0' && ctx->client.token == NULL) {
        ctx->client.token = xstrdup(wt);
    } else if (wt[0] != '\0' && strcmp(wt, ctx->client.token) != 0) {
        body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "token", wt);
    }
    rc = cli__call(ctx, "PUT", "sys/wrapping/unwrap", NULL, body,
                   CLI_CALL_RAW, &secret, "Error unwrapping");
    if (rc == 0 && secret == NULL)
        rc = cli__fail(2, "Could not find wrapped response");
    else if (rc == 0)
        rc = cli__print_result(ctx, secret);
    json_delete_wiped(body);
    json_delete_wiped(secret);
    return rc;
}

static const char help_unwrap[] =
    "Usage: coffer unwrap [options] [TOKEN]\n\n"
    "  Unwraps a wrapped response (PUT /v1/sys/wrapping/unwrap) and prints\n"
    "  it. Without TOKEN the client token is the wrapping token. A wrapping\n"
    "  token works once.\n\n"
    "      $ coffer unwrap s.AbCd...\n"
    CLI_HELP_GLOBAL;

static const char help_read[] =
    "Usage: coffer read [options] PATH [K=V...]\n\n"
    "  Reads data at PATH (GET /v1/PATH) and prints it. Extra K=V pairs are\n"
    "  sent as query parameters.\n\n"
    "      $ coffer read secret/foo\n\n"
    "Command options:\n\n"
    "  -format=raw\n"
    "      Print the response body exactly as the server sent it.\n"
    CLI_HELP_GLOBAL;

static const char help_write[] =
    "Usage: coffer write [options] PATH [DATA K=V...]\n\n"
    "  Writes data to PATH (PUT /v1/PATH). Values are strings; \"k=@file\"\n"
    "  reads a file, \"k=-\" reads stdin, a lone \"-\" reads a JSON object\n"
    "  from stdin, and a repeated key makes a list.\n\n"
    "      $ coffer write secret/foo value=bar\n\n"
    "Command options:\n\n"
    "  -force, -f\n"
    "      Send the request even without any data.\n"
    CLI_HELP_GLOBAL;

static const char help_list[] =
    "Usage: coffer list [options] PATH\n\n"
    "  Lists the keys under PATH (LIST /v1/PATH). Keys ending in \"/\" are\n"
    "  folders.\n\n"
    "      $ coffer list secret/\n"
    CLI_HELP_GLOBAL;

static const char help_delete[] =
    "Usage: coffer delete [options] PATH [K=V...]\n\n"
    "  Deletes the data at PATH (DELETE /v1/PATH). Extra K=V pairs are sent\n"
    "  as query parameters.\n\n"
    "      $ coffer delete secret/foo\n"
    CLI_HELP_GLOBAL;

static const char help_status[] =
    "Usage: coffer status [options]\n\n"
    "  Prints the seal and HA status of the server. Needs no token. Exits 0\n"
    "  when unsealed, 2 when sealed and 1 on error.\n"
    CLI_HELP_GLOBAL;

static const char help_secrets_enable[] =
    "Usage: coffer secrets enable [options] TYPE\n\n"
    "  Enables a secrets engine of TYPE (POST /v1/sys/mounts/PATH), at\n"
    "  TYPE/ unless -path says where.\n\n"
    "      $ coffer secrets enable -path=kv2 -version=2 kv\n\n"
    "Command options:\n\n"
    "  -path=<string>\n"
    "      Where to mount the engine (default: the type's name).\n\n"
    "  -description=<string>\n"
    "      A human-friendly description of the mount.\n\n"
    "  -default-lease-ttl=<duration>, -max-lease-ttl=<duration>\n"
    "      The mount's default and maximum lease TTLs (\"system\" keeps the\n"
    "      server's).\n\n"
    "  -options=<key=value>\n"
    "      An engine option; repeatable.\n\n"
    "  -version=<int>\n"
    "      The KV version (same as -options=version=N).\n\n"
    "  -plugin-name=<string>\n"
    "      The plugin implementing the engine (default: TYPE).\n\n"
    "  -local, -seal-wrap, -force-no-cache, -external-entropy-access\n"
    "      Mount settings sent as given (Vault's flags of the same names).\n"
    CLI_HELP_GLOBAL;

static const char help_secrets_disable[] =
    "Usage: coffer secrets disable [options] PATH\n\n"
    "  Disables the secrets engine mounted at PATH (DELETE\n"
    "  /v1/sys/mounts/PATH). Its leases are revoked and its data deleted.\n\n"
    "      $ coffer secrets disable kv2/\n"
    CLI_HELP_GLOBAL;

static const char help_secrets_list[] =
    "Usage: coffer secrets list [options]\n\n"
    "  Lists the enabled secrets engines (GET /v1/sys/mounts).\n\n"
    "Command options:\n\n"
    "  -detailed\n"
    "      Print every mount setting: accessor, TTLs, options, plugin.\n"
    CLI_HELP_GLOBAL;

static const char help_secrets_tune[] =
    "Usage: coffer secrets tune [options] PATH\n\n"
    "  Changes the settings of the secrets engine mounted at PATH (POST\n"
    "  /v1/sys/mounts/PATH/tune).\n\n"
    "      $ coffer secrets tune -max-lease-ttl=24h kv2/\n\n"
    "Command options:\n\n"
    "  -default-lease-ttl=<duration>, -max-lease-ttl=<duration>\n"
    "      The mount's default and maximum lease TTLs.\n\n"
    "  -description=<string>\n"
    "      A human-friendly description of the mount.\n\n"
    "  -options=<key=value>\n"
    "      An engine option; repeatable.\n\n"
    "  -version=<int>\n"
    "      Upgrade a KV mount to this version.\n"
    CLI_HELP_GLOBAL;

static const char help_token_create[] =
    "Usage: coffer token create [options]\n\n"
    "  Creates a new token (POST /v1/auth/token/create), a child of the\n"
    "  token in use unless -orphan, with the policies of -policy.\n\n"
    "      $ coffer token create -policy=dev -ttl=1h\n\n"
    "Command options:\n\n"
    "  -policy=<string>\n"
    "      A policy of the token; repeatable.\n\n"
    "  -ttl=<duration>, -explicit-max-ttl=<duration>, -period=<duration>\n"
    "      The token's TTL, its hard maximum, and a renewal period.\n\n"
    "  -renewable\n"
    "      Whether the token can be renewed (default true).\n\n"
    "  -display-name=<string>, -metadata=<key=value>\n"
    "      A name and metadata (repeatable) kept with the token.\n\n"
    "  -use-limit=<int>\n"
    "      How many uses the token has (0: unlimited).\n\n"
    "  -orphan, -no-default-policy\n"
    "      Create a token with no parent; leave out the default policy.\n\n"
    "  -id=<string>, -role=<string>, -type=<string>, -entity-alias=<string>\n"
    "      The token's id (root only), a token role, service or batch, and\n"
    "      an entity alias.\n"
    CLI_HELP_GLOBAL;

static const char help_token_lookup[] =
    "Usage: coffer token lookup [options] [TOKEN]\n\n"
    "  Prints the properties of a token: the one in use, or TOKEN (GET\n"
    "  /v1/auth/token/lookup-self, POST /v1/auth/token/lookup).\n\n"
    "Command options:\n\n"
    "  -accessor\n"
    "      TOKEN is a token accessor, not a token.\n"
    CLI_HELP_GLOBAL;

static const char help_token_revoke[] =
    "Usage: coffer token revoke [options] [TOKEN]\n\n"
    "  Revokes a token and, by default, its children and their leases.\n\n"
    "      $ coffer token revoke -mode=orphan s.AbCd...\n\n"
    "Command options:\n\n"
    "  -self\n"
    "      Revoke the token in use (no TOKEN argument).\n\n"
    "  -accessor\n"
    "      TOKEN is a token accessor, not a token.\n\n"
    "  -mode=<string>\n"
    "      \"orphan\" keeps the children (made orphans); \"path\" revokes\n"
    "      every token created under the path TOKEN.\n"
    CLI_HELP_GLOBAL;

static const char help_token_renew[] =
    "Usage: coffer token renew [options] [TOKEN]\n\n"
    "  Renews a token's lease: the one in use, or TOKEN. The server may cap\n"
    "  the new TTL.\n\n"
    "Command options:\n\n"
    "  -increment=<duration>, -i\n"
    "      The TTL asked for, counted from now.\n\n"
    "  -accessor\n"
    "      TOKEN is a token accessor, not a token.\n"
    CLI_HELP_GLOBAL;

const struct cli_command cli__cmds_commands[] = {
    { { "read", NULL, NULL }, cmd_read,
      "Read data and retrieve secrets", help_read, true },
    { { "unwrap", NULL, NULL }, cmd_unwrap,
      "Unwrap a wrapped secret", help_unwrap, false },
    { { "write", NULL, NULL }, cmd_write,
      "Write data, configuration and secrets", help_write, false },
    { { "list", NULL, NULL }, cmd_list,
      "List data or secrets", help_list, false },
    { { "delete", NULL, NULL }, cmd_delete,
      "Delete secrets and configuration", help_delete, false },
    { { "status", NULL, NULL }, cmd_status,
      "Print seal and HA status", help_status, false },
    { { "secrets", "enable", NULL }, cmd_secrets_enable,
      "Enable a secrets engine", help_secrets_enable, false },
    { { "secrets", "disable", NULL }, cmd_secrets_disable,
      "Disable a secrets engine", help_secrets_disable, false },
    { { "secrets", "list", NULL }, cmd_secrets_list,
      "List enabled secrets engines", help_secrets_list, false },
    { { "secrets", "tune", NULL }, cmd_secrets_tune,
      "Tune a secrets engine's configuration", help_secrets_tune, false },
    { { "token", "create", NULL }, cmd_token_create,
      "Create a new token", help_token_create, false },
    { { "token", "lookup", NULL }, cmd_token_lookup,
      "Display information about a token", help_token_lookup, false },
    { { "token", "revoke", NULL }, cmd_token_revoke,
      "Revoke a token and its children", help_token_revoke, false },
    { { "token", "renew", NULL }, cmd_token_renew,
      "Renew a token's lease", help_token_renew, false },
    { { NULL, NULL, NULL }, NULL, NULL, NULL, false },
};
