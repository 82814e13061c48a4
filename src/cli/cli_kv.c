/*
 * cli_kv.c - the kv commands: get, put, list, delete, undelete, destroy
 * and metadata get, for KV v1 and v2 mounts alike.
 *
 * Owns: finding a path's mount and KV version first (Vault's
 * kvPreflightVersionRequest against sys/internal/ui/mounts), rewriting v2
 * paths ("secret/foo" -> "secret/data/foo", Vault's addPrefixToKVPath),
 * the v2 bodies ({"data":..., "options":{"cas":N}}, {"versions":[...]}),
 * and the "== Secret Path ==" / "==== Data ====" layout of the output.
 *
 * Not owned: flag parsing and dispatch (cli.c), HTTP (cli_http.c), the
 * endings shared with write/list/delete (cli_cmds.c).
 *
 * Entry point: the table cli__kv_commands (cli_cmd.h).
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


/* ====================================================================
 * kv get | put | list | delete | undelete | destroy | metadata get
 * ==================================================================== */

/*
 * Vault's addPrefixToKVPath: puts "data", "metadata", ... between the
 * mount and the rest of a KV v2 path ("secret/foo" -> "secret/data/foo").
 * The loop strips leading namespace segments from the mount path until
 * it prefixes the given path.
 */
static char *kv_api_path(const char *path, const char *mount_path,
                         const char *prefix)
{
    char *mnt = xstrdup(mount_path), *next, *r;
    const char *suffix, *slash;
    size_t n = strlen(mnt);

    if (strcmp(path, mnt) == 0 ||
        (n > 0 && mnt[n - 1] == '/' && strlen(path) == n - 1 &&
         strncmp(path, mnt, n - 1) == 0)) {
        r = cli__path_join(mnt, prefix, NULL);
        goto out;
    }
    suffix = str_has_prefix(path, mnt) ? path + n : path;
    while (suffix == path) {
        slash = strchr(mnt, '/');
        if (slash == NULL || slash[1] == '\0')
            break;
        next = xstrdup(slash + 1);
        n = strlen(next);
        if (n > 0 && next[n - 1] == '/')
            next[--n] = '\0';
        free(mnt);
        mnt = next;
        suffix = str_has_prefix(suffix, mnt) ? suffix + n : suffix;
    }
    r = cli__path_join(mnt, prefix, suffix);
out:
    free(mnt);
    return r;
}


/* Where a kv command's path lives: the mount and whether it is KV v2. */
struct kvloc {
    char *mount;   /* mount path as the server reports it, "" if unknown */
    char *partial; /* the secret path, joined to the mount for -mount v2 */
    bool v2;
    bool by_mount; /* -mount was given (not empty) */
};

static void kvloc_release(struct kvloc *l)
{
    free(l->mount);
    free(l->partial);
    memset(l, 0, sizeof(*l));
}

/*
 * Vault's kvPreflightVersionRequest: GET sys/internal/ui/mounts/<path>
 * tells the mount path and options.version. A 404 means an old server:
 * assume KV v1.
 */
static int kv_preflight(struct cli *ctx, const char *path, struct kvloc *l,
                        struct out *err)
{
    const cJSON *data, *opts, *ver;
    cJSON *secret = NULL;
    char *api_path = cli__str_concat3("sys/internal/ui/mounts/", path, "");
    char *wrap = ctx->client.wrap_ttl; /* Vault never wraps the preflight */
    long status = 0;
    int rc;

    ctx->client.wrap_ttl = NULL;
    rc = cli__api_call(&ctx->client, "GET", api_path, NULL, NULL, CLI_CALL_RAW,
                       &secret, &status, err);
    ctx->client.wrap_ttl = wrap;
    free(api_path);
    if (rc != 0 && status == 404) {
        out_release(err);
        out_init(err);
        l->mount = xstrdup("");
        return 0;
    }
    if (rc != 0)
        return rc;
    if (secret == NULL) {
        out_puts(err, "nil response from pre-flight request");
        return COFFER_EIO;
    }
    data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    l->mount = xstrdup(cli__str_member(data, "path"));
    opts = cJSON_GetObjectItemCaseSensitive(data, "options");
    ver = cJSON_GetObjectItemCaseSensitive(opts, "version");
    l->v2 = cJSON_IsString(ver) && strcmp(ver->valuestring, "2") == 0;
    json_delete_wiped(secret);
    return 0;
}

/*
 * Resolves the path argument of a kv command, with or without -mount
 * (mount_flag, NULL when not given). trim_only keeps a trailing '/' (kv
 * get only strips leading ones). Returns 0, or 2 after printing the
 * preflight error.
 */
static int kv_locate(struct cli *ctx, const char *mount_flag,
                     const char *arg, bool trim_only, struct kvloc *l)
{
    char *mount_clean = NULL, *joined;
    struct out err;
    int rc = 0;

    out_init(&err);
    memset(l, 0, sizeof(*l));
    l->by_mount = mount_flag != NULL && mount_flag[0] != '\0';
    if (l->by_mount) {
        l->partial = cli__sanitize_path(arg);
        mount_clean = cli__sanitize_path(mount_flag);
        if (kv_preflight(ctx, mount_clean, l, &err) != 0) {
            rc = cli__fail(2, "%s", err.b.ptr != NULL ? err.b.ptr : "");
            goto out;
        }
        if (l->v2) {
            joined = cli__path_join(l->mount, l->partial, NULL);
            free(l->partial);
            l->partial = joined;
        }
    } else {
        while (trim_only && *arg == '/')
            arg++;
        l->partial = trim_only ? xstrdup(arg) : cli__sanitize_path(arg);
        if (kv_preflight(ctx, l->partial, l, &err) != 0)
            rc = cli__fail(2, "%s", err.b.ptr != NULL ? err.b.ptr : "");
    }
out:
    free(mount_clean);
    out_release(&err);
    return rc;
}

/* The API path for a kv command: prefix inserted for v2, mount for -mount. */
static char *kv_path(const struct kvloc *l, const char *prefix)
{
    if (l->v2)
        return kv_api_path(l->partial, l->mount, prefix);
    if (l->by_mount)
        return cli__path_join(l->mount, l->partial, NULL);
    return xstrdup(l->partial);
}

/* Vault's outputPath: "== Title ==" sized to the path, the path, a gap. */
static void output_path(struct out *o, const char *path, const char *title)
{
    fmt_pad_equals(o, title, strlen(path));
    out_putc(o, '\n');
    out_puts(o, path);
    out_puts(o, "\n\n");
}

/* A "==== Title ====" header followed by the map's Key/Value table. */
static void titled_map(struct out *o, const char *title, const cJSON *map)
{
    fmt_map_header(o, title, map);
    out_putc(o, '\n');
    fmt_map_table(o, map);
}

static int kv_get_table(const char *full, bool v2,
                        const cJSON *secret)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(data, "metadata");
    struct out o;

    out_init(&o);
    fmt_warnings(&o, secret);
    cli__emit(stderr, &o);
    if (v2)
        output_path(&o, full, "Secret Path");
    if (!cli__json_is_nullish(meta)) {
        titled_map(&o, "Metadata", meta);
        out_putc(&o, '\n');
    }
    if (v2 && !cli__json_is_nullish(data))
        data = cJSON_GetObjectItemCaseSensitive(data, "data");
    if (!cli__json_is_nullish(data))
        titled_map(&o, "Data", data);
    return cli__emit(stdout, &o);
}

/* -field for kv get: on v2 it looks inside the secret's inner data. */
static int kv_get_field(struct cli *ctx, const char *full, bool v2,
                        const cJSON *secret)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(data, "data");
    const char *field = ctx->g.field;

    if (!v2)
        return cli__print_field(ctx, secret);
    if (cli__json_is_nullish(inner))
        return cli__fail(2, "No data found at %s", full);
    if (strcmp(field, "data") == 0 && !cJSON_HasObjectItem(inner, "data"))
        return cli__print_field(ctx, secret);
    return cli__print_value(ctx, cJSON_GetObjectItemCaseSensitive(inner, field),
                            field);
}

/* kv get's flags. */
struct kv_get_opts {
    const char *mount; /* -mount: PATH is relative to this mount */
    int64_t version;   /* -version: a KV v2 version, 0 for the latest */
};

static int cmd_kv_get(struct cli *ctx, int argc, char **argv)
{
    struct kv_get_opts o = { NULL, 0 };
    const struct cli_flag flags[] = {
        CLI_STRING("mount", NULL, &o.mount),
        CLI_INT("version", NULL, &o.version),
        CLI_FLAG_END,
    };
    struct kvloc l = { NULL, NULL, false, false };
    char *full = NULL, query[48];
    cJSON *secret = NULL;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc == 0)
        rc = kv_locate(ctx, o.mount, ctx->args.v[0], true, &l);
    if (rc != 0)
        goto out;
    full = kv_path(&l, "data");
    query[0] = '\0';
    if (l.v2 && o.version > 0)
        snprintf(query, sizeof(query), "version=%lld", (long long)o.version);
    rc = cli__call(ctx, "GET", full, query, NULL, CLI_CALL_READ, &secret,
                   "Error reading %s", full);
    if (rc != 0)
        goto out;
    if (secret == NULL)
        rc = cli__fail(2, "No value found at %s", full);
    else if (ctx->g.field != NULL)
        rc = kv_get_field(ctx, full, l.v2, secret);
    else if (ctx->format != CLI_FMT_TABLE ||
             cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(secret,
                                                             "wrap_info")))
        rc = cli__print_secret(ctx, secret); /* Vault: wrapped as is */
    else
        rc = kv_get_table(full, l.v2, secret);
out:
    json_delete_wiped(secret);
    free(full);
    kvloc_release(&l);
    return rc;
}

/* {"data": data, "options": {}} with options.cas from -cas (KV v2). */
static cJSON *kv_v2_body(int64_t cas, cJSON *data)
{
    cJSON *body = cJSON_CreateObject(), *opts;

    COFFER_ASSERT(body != NULL);
    cJSON_AddItemToObject(body, "data", data);
    opts = cJSON_AddObjectToObject(body, "options");
    COFFER_ASSERT(opts != NULL);
    if (cas > -1)
        cJSON_AddNumberToObject(opts, "cas", (double)cas);
    return body;
}

static int kv_put_output(struct cli *ctx, const char *full,
                         const cJSON *secret)
{
    struct out o;

    if (ctx->g.field != NULL)
        return cli__print_field(ctx, secret);
    if (ctx->format != CLI_FMT_TABLE)
        return cli__print_secret(ctx, secret);
    out_init(&o);
    output_path(&o, full, "Secret Path");
    titled_map(&o, "Metadata",
               cJSON_GetObjectItemCaseSensitive(secret, "data"));
    return cli__emit(stdout, &o);
}

/* kv put's flags. */
struct kv_put_opts {
    const char *mount; /* -mount: PATH is relative to this mount */
    int64_t cas;       /* -cas: check-and-set version, -1 for none */
};

static int cmd_kv_put(struct cli *ctx, int argc, char **argv)
{
    struct kv_put_opts o = { NULL, -1 };
    const struct cli_flag flags[] = {
        CLI_STRING("mount", NULL, &o.mount),
        CLI_INT("cas", NULL, &o.cas),
        CLI_FLAG_END,
    };
    struct kvloc l = { NULL, NULL, false, false };
    cJSON *data = NULL, *body = NULL, *secret = NULL;
    char *full = NULL;
    struct out err;
    int rc;

    out_init(&err);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc != 0)
        goto out;
    if (ctx->args.n < 1) {
        rc = cli__fail(1, "Not enough arguments (expected >1, got 0)");
        goto out;
    }
    if (ctx->args.n == 1) {
        rc = cli__fail(1, "Must supply data");
        goto out;
    }
    rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    if (cli__args_to_json(&ctx->args, 1, &ctx->stdin_used, &data,
                          &err) != 0) {
        rc = cli__fail(1, "Failed to parse K=V data: %s", err.b.ptr);
        goto out;
    }
    rc = kv_locate(ctx, o.mount, ctx->args.v[0], false, &l);
    if (rc != 0)
        goto out;
    full = kv_path(&l, "data");
    body = l.v2 ? kv_v2_body(o.cas, data) : data;
    data = NULL; /* owned by body now */
    rc = cli__api_call(&ctx->client, "PUT", full, NULL, body, CLI_CALL_WRITE,
                       &secret, NULL, &err);
    if (rc != 0 || secret == NULL)
        rc = cli__write_output(ctx, full, rc, secret, &err);
    else
        rc = kv_put_output(ctx, full, secret);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    json_delete_wiped(data);
    out_release(&err);
    free(full);
    kvloc_release(&l);
    return rc;
}

/* The flags of kv list and kv metadata get. */
struct kv_mount_opts {
    const char *mount; /* -mount: PATH is relative to this mount */
};

static int cmd_kv_list(struct cli *ctx, int argc, char **argv)
{
    struct kv_mount_opts o = { NULL };
    const struct cli_flag flags[] = {
        CLI_STRING("mount", NULL, &o.mount),
        CLI_FLAG_END,
    };
    struct kvloc l = { NULL, NULL, false, false };
    bool has_mount;
    const char *arg = "";
    cJSON *secret = NULL;
    char *full = NULL;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc != 0)
        goto out;
    has_mount = o.mount != NULL && o.mount[0] != '\0';
    if (ctx->args.n != 1 && !(ctx->args.n == 0 && has_mount))
        rc = cli__arg_count_error(ctx->args.n, 1, 1);
    if (rc == 0)
        rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    if (ctx->args.n == 1)
        arg = ctx->args.v[0];
    rc = kv_locate(ctx, o.mount, arg, false, &l);
    if (rc != 0)
        goto out;
    full = kv_path(&l, "metadata");
    rc = cli__call(ctx, "LIST", full, NULL, NULL, CLI_CALL_READ, &secret,
                   "Error listing %s", full);
    if (rc != 0)
        goto out;
    rc = cli__list_output(ctx, full, secret);
out:
    json_delete_wiped(secret);
    free(full);
    kvloc_release(&l);
    return rc;
}

/*
 * -versions=1,2 -versions=3 -> ["1","2","3"]: each value split on commas,
 * parts trimmed, empty parts dropped (strutil.ParseStringSlice).
 */
static cJSON *versions_json(const struct strvec *versions)
{
    cJSON *list = cJSON_CreateArray();
    const char *p, *e;
    char *raw, *item;
    size_t i;

    COFFER_ASSERT(list != NULL);
    for (i = 0; i < versions->n; i++) {
        for (p = versions->v[i]; *p != '\0'; p = *e == ',' ? e + 1 : e) {
            e = strchr(p, ',');
            if (e == NULL)
                e = p + strlen(p);
            raw = xstrndup(p, (size_t)(e - p));
            item = cli__trim_dup(raw);
            if (item[0] != '\0')
                cJSON_AddItemToArray(list, cJSON_CreateString(item));
            free(item);
            free(raw);
        }
    }
    return list;
}

/* The flags of kv delete, undelete and destroy. */
struct kv_versions_opts {
    const char *mount;     /* -mount: PATH is relative to this mount */
    struct strvec versions; /* -versions=1,2, repeatable */
};

static int cmd_kv_delete(struct cli *ctx, int argc, char **argv)
{
    struct kv_versions_opts o;
    const struct cli_flag flags[] = {
        CLI_STRING("mount", NULL, &o.mount),
        CLI_LIST("versions", NULL, &o.versions),
        CLI_FLAG_END,
    };
    struct kvloc l = { NULL, NULL, false, false };
    cJSON *secret = NULL, *body = NULL;
    char *full = NULL, *vpath = NULL;
    struct out err;
    int rc;

    out_init(&err);
    o.mount = NULL;
    strvec_init(&o.versions);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc == 0)
        rc = kv_locate(ctx, o.mount, ctx->args.v[0], false, &l);
    if (rc != 0)
        goto out;
    full = kv_path(&l, "data");
    if (l.v2 && o.versions.n > 0) {
        vpath = kv_api_path(l.partial, l.mount, "delete");
        body = cJSON_CreateObject();
        COFFER_ASSERT(body != NULL);
        cJSON_AddItemToObject(body, "versions", versions_json(&o.versions));
        rc = cli__api_call(&ctx->client, "PUT", vpath, NULL, body,
                           CLI_CALL_WRITE, &secret, NULL, &err);
    } else {
        rc = cli__api_call(&ctx->client, "DELETE", full, NULL, NULL,
                           CLI_CALL_WRITE, &secret, NULL, &err);
    }
    rc = cli__delete_output(ctx, full, rc, secret, &err);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    out_release(&err);
    free(vpath);
    free(full);
    kvloc_release(&l);
    strvec_release(&o.versions);
    return rc;
}

/* kv undelete and kv destroy: POST <mount>/<what>/<path> {"versions"}. */
static int kv_versions_op(struct cli *ctx, int argc, char **argv,
                          const char *what, const char *title)
{
    struct kv_versions_opts o;
    const struct cli_flag flags[] = {
        CLI_STRING("mount", NULL, &o.mount),
        CLI_LIST("versions", NULL, &o.versions),
        CLI_FLAG_END,
    };
    struct kvloc l = { NULL, NULL, false, false };
    cJSON *secret = NULL, *body = NULL;
    char *vpath = NULL;
    struct out err;
    int rc;

    out_init(&err);
    o.mount = NULL;
    strvec_init(&o.versions);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__arg_count_error(ctx->args.n, 1, 1);
    if (rc == 0 && o.versions.n == 0)
        rc = cli__fail(1,
                       "No versions provided, use the \"-versions\" flag to "
                       "specify the version to %s.",
                       what);
    if (rc == 0)
        rc = cli__need_client(ctx);
    if (rc == 0)
        rc = kv_locate(ctx, o.mount, ctx->args.v[0], false, &l);
    if (rc != 0)
        goto out;
    if (!l.v2) {
        rc = cli__fail(1, "%s not supported on KV Version 1", title);
        goto out;
    }
    vpath = kv_api_path(l.partial, l.mount, what);
    body = cJSON_CreateObject();
    COFFER_ASSERT(body != NULL);
    cJSON_AddItemToObject(body, "versions", versions_json(&o.versions));
    rc = cli__api_call(&ctx->client, "PUT", vpath, NULL, body, CLI_CALL_WRITE,
                       &secret, NULL, &err);
    rc = cli__write_output(ctx, vpath, rc, secret, &err);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    out_release(&err);
    free(vpath);
    kvloc_release(&l);
    strvec_release(&o.versions);
    return rc;
}

static int cmd_kv_undelete(struct cli *ctx, int argc, char **argv)
{
    return kv_versions_op(ctx, argc, argv, "undelete", "Undelete");
}

static int cmd_kv_destroy(struct cli *ctx, int argc, char **argv)
{
    return kv_versions_op(ctx, argc, argv, "destroy", "Destroy");
}

static int cmp_version_keys(const void *a, const void *b)
{
    long long x = strtoll(*(char *const *)a, NULL, 10);
    long long y = strtoll(*(char *const *)b, NULL, 10);

    return (x > y) - (x < y);
}

/* The table of `kv metadata get`: metadata, then each version in order. */
static int kv_metadata_table(struct cli *ctx, const char *full,
                             cJSON *secret)
{
    cJSON *data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    cJSON *versions = cJSON_DetachItemFromObjectCaseSensitive(data,
                                                             "versions");
    struct strvec keys;
    const cJSON *it;
    struct out o, title;
    size_t i;
    int rc;

    strvec_init(&keys);
    out_init(&o);
    out_init(&title);
    output_path(&o, full, "Metadata Path");
    fmt_map_header(&o, "Metadata", data);
    out_putc(&o, '\n');
    cli__emit(stdout, &o);
    rc = cli__print_secret(ctx, secret);
    cJSON_ArrayForEach(it, versions) {
        strvec_push(&keys, it->string);
    }
    qsort(keys.v, keys.n, sizeof(*keys.v), cmp_version_keys);
    for (i = 0; i < keys.n; i++) {
        out_printf(&title, "Version %lld", strtoll(keys.v[i], NULL, 10));
        out_putc(&o, '\n');
        titled_map(&o, title.b.ptr,
                   cJSON_GetObjectItemCaseSensitive(versions, keys.v[i]));
        out_release(&title);
        out_init(&title);
    }
    rc |= cli__emit(stdout, &o);
    out_release(&title);
    strvec_release(&keys);
    cJSON_Delete(versions);
    return rc;
}

static int cmd_kv_metadata_get(struct cli *ctx, int argc, char **argv)
{
    struct kv_mount_opts o = { NULL };
    const struct cli_flag flags[] = {
        CLI_STRING("mount", NULL, &o.mount),
        CLI_FLAG_END,
    };
    struct kvloc l = { NULL, NULL, false, false };
    cJSON *secret = NULL, *versions;
    char *full = NULL;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc == 0)
        rc = kv_locate(ctx, o.mount, ctx->args.v[0], false, &l);
    if (rc != 0)
        goto out;
    if (!l.v2) {
        rc = cli__fail(1, "Metadata not supported on KV Version 1");
        goto out;
    }
    full = kv_api_path(l.partial, l.mount, "metadata");
    rc = cli__call(ctx, "GET", full, NULL, NULL, CLI_CALL_READ, &secret,
                   "Error reading %s", full);
    if (rc != 0)
        goto out;
    versions = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(secret, "data"), "versions");
    if (secret == NULL)
        rc = cli__fail(2, "No value found at %s", full);
    else if (ctx->g.field != NULL)
        rc = cli__print_field(ctx, secret);
    else if (ctx->format != CLI_FMT_TABLE)
        rc = cli__print_secret(ctx, secret);
    else if (!cli__json_is_nullish(versions))
        rc = kv_metadata_table(ctx, full, secret);
    else {
        rc = cli__fail(2, "No value found at %s", full);
        cli__print_secret(ctx, secret);
    }
out:
    json_delete_wiped(secret);
    free(full);
    kvloc_release(&l);
    return rc;
}

/* ====================================================================
 * Help text and the command table
 * ==================================================================== */

/* The -mount flag every kv command takes. */
#define KV_HELP_MOUNT \
    "  -mount=<string>\n" \
    "      The KV mount; the path is then relative to it (without -mount\n" \
    "      the first part of the path names the mount).\n"

static const char help_kv_get[] =
    "Usage: coffer kv get [options] KEY\n\n"
    "  Retrieves the value at KEY from the KV store. On a version 2 mount\n"
    "  the latest version, or the one named by -version, is read from\n"
    "  MOUNT/data/KEY and its metadata is printed with it.\n\n"
    "      $ coffer kv get -mount=secret foo\n\n"
    "Command options:\n\n"
    KV_HELP_MOUNT "\n"
    "  -version=<int>\n"
    "      Read this version of the secret (KV version 2 only).\n"
    CLI_HELP_GLOBAL;

static const char help_kv_put[] =
    "Usage: coffer kv put [options] KEY [DATA K=V...]\n\n"
    "  Writes the K=V pairs at KEY in the KV store, replacing what was\n"
    "  there; on a version 2 mount this creates a new version. \"k=@file\"\n"
    "  reads a file, \"k=-\" reads stdin, a lone \"-\" reads a JSON\n"
    "  object.\n\n"
    "      $ coffer kv put -mount=secret foo bar=baz\n\n"
    "Command options:\n\n"
    KV_HELP_MOUNT "\n"
    "  -cas=<int>\n"
    "      Check-and-set: write only if the current version is this one (0:\n"
    "      only if the key does not exist). KV version 2 only.\n"
    CLI_HELP_GLOBAL;

static const char help_kv_list[] =
    "Usage: coffer kv list [options] PATH\n\n"
    "  Lists the keys under PATH in the KV store (on a version 2 mount,\n"
    "  under MOUNT/metadata/PATH). Keys ending in \"/\" are folders.\n\n"
    "Command options:\n\n"
    KV_HELP_MOUNT
    CLI_HELP_GLOBAL;

static const char help_kv_delete[] =
    "Usage: coffer kv delete [options] KEY\n\n"
    "  Deletes the data at KEY. On a version 2 mount this soft-deletes the\n"
    "  latest version (or those of -versions); \"kv undelete\" brings it\n"
    "  back, \"kv destroy\" removes it for good.\n\n"
    "Command options:\n\n"
    KV_HELP_MOUNT "\n"
    "  -versions=<int,...>\n"
    "      The versions to delete instead of the latest; repeatable.\n"
    CLI_HELP_GLOBAL;

static const char help_kv_undelete[] =
    "Usage: coffer kv undelete [options] KEY\n\n"
    "  Restores soft-deleted versions of KEY (KV version 2 only).\n\n"
    "      $ coffer kv undelete -mount=secret -versions=3 foo\n\n"
    "Command options:\n\n"
    KV_HELP_MOUNT "\n"
    "  -versions=<int,...>\n"
    "      The versions to restore (required); repeatable.\n"
    CLI_HELP_GLOBAL;

static const char help_kv_destroy[] =
    "Usage: coffer kv destroy [options] KEY\n\n"
    "  Permanently removes the data of versions of KEY; their metadata\n"
    "  stays (KV version 2 only). This cannot be undone.\n\n"
    "Command options:\n\n"
    KV_HELP_MOUNT "\n"
    "  -versions=<int,...>\n"
    "      The versions to destroy (required); repeatable.\n"
    CLI_HELP_GLOBAL;

static const char help_kv_metadata_get[] =
    "Usage: coffer kv metadata get [options] KEY\n\n"
    "  Prints the metadata of KEY and of each of its versions: creation\n"
    "  and deletion times, whether destroyed, max versions, CAS setting\n"
    "  (KV version 2 only).\n\n"
    "Command options:\n\n"
    KV_HELP_MOUNT
    CLI_HELP_GLOBAL;

const struct cli_command cli__kv_commands[] = {
    { { "kv", "get", NULL }, cmd_kv_get,
      "Retrieve data", help_kv_get, false },
    { { "kv", "put", NULL }, cmd_kv_put,
      "Set or update data in the KV store", help_kv_put, false },
    { { "kv", "list", NULL }, cmd_kv_list,
      "List data or secrets", help_kv_list, false },
    { { "kv", "delete", NULL }, cmd_kv_delete,
      "Delete versions of a secret", help_kv_delete, false },
    { { "kv", "undelete", NULL }, cmd_kv_undelete,
      "Undelete versions of a secret", help_kv_undelete, false },
    { { "kv", "destroy", NULL }, cmd_kv_destroy,
      "Permanently remove versions of a secret", help_kv_destroy, false },
    { { "kv", "metadata", "get" }, cmd_kv_metadata_get,
      "Retrieve a key's metadata", help_kv_metadata_get, false },
    { { NULL, NULL, NULL }, NULL, NULL, NULL, false },
};
