/*
 * cli_auth.c - auth enable | disable | list, and login.
 *
 * `login` follows Vault's CLI: `login TOKEN` checks the token with
 * lookup-self; `login -method=userpass [-path=P] username=U password=W`
 * posts to auth/<P or userpass>/login/<U>. Either way the token is
 * written to ~/.vault-token (mode 0600), which the client reads next
 * (cli_http.c), and the auth block is printed.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../json.h"
#include "cli_cmd.h"

/* auth enable's flags. */
struct auth_enable_opts {
    const char *path;        /* -path: where to mount (default TYPE) */
    const char *description; /* -description */
};

static int cmd_auth_enable(struct cli *ctx, int argc, char **argv)
{
    struct auth_enable_opts o = { NULL, NULL };
    const struct cli_flag flags[] = {
        CLI_STRING("path", NULL, &o.path),
        CLI_STRING("description", NULL, &o.description),
        CLI_FLAG_END,
    };
    char *path = NULL, *api = NULL;
    cJSON *body = NULL, *secret = NULL;
    const char *type;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    type = ctx->args.v[0];
    path = cli__ensure_trailing_slash(o.path && o.path[0] ? o.path : type);
    body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "type", type);
    if (o.description != NULL)
        cJSON_AddStringToObject(body, "description", o.description);
    api = cli__str_concat3("sys/auth/", path, "");
    rc = cli__call(ctx, "POST", api, NULL, body, CLI_CALL_RAW, &secret,
                   "Error enabling %s auth", type);
    if (rc != 0)
        goto out;
    printf("Success! Enabled %s auth method at: %s\n", type, path);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    free(api);
    free(path);
    return rc;
}

static int cmd_auth_disable(struct cli *ctx, int argc, char **argv)
{
    char *path = NULL, *api = NULL;
    cJSON *secret = NULL;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 1, 1);
    if (rc != 0)
        goto out;
    path = cli__ensure_trailing_slash(ctx->args.v[0]);
    api = cli__str_concat3("sys/auth/", path, "");
    rc = cli__call(ctx, "DELETE", api, NULL, NULL, CLI_CALL_RAW, &secret,
                   "Error disabling auth method at %s", path);
    if (rc != 0)
        goto out;
    printf("Success! Disabled the auth method (if it existed) at: %s\n",
           path);
out:
    json_delete_wiped(secret);
    free(api);
    free(path);
    return rc;
}

static int cmd_auth_list(struct cli *ctx, int argc, char **argv)
{
    cJSON *secret = NULL;
    const cJSON *data, *m;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 0);
    if (rc != 0)
        goto out;
    rc = cli__call(ctx, "GET", "sys/auth", NULL, NULL, CLI_CALL_RAW, &secret,
                   "Error listing enabled authentications");
    if (rc != 0)
        goto out;
    data = cJSON_GetObjectItemCaseSensitive(secret, "data");
    if (ctx->format != CLI_FMT_TABLE) {
        rc = cli__print_data(ctx, data);
        goto out;
    }
    printf("%-16s %-12s %-28s %s\n", "Path", "Type", "Accessor",
           "Description");
    printf("%-16s %-12s %-28s %s\n", "----", "----", "--------",
           "-----------");
    cJSON_ArrayForEach(m, data) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "type");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "accessor");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "description");
        printf("%-16s %-12s %-28s %s\n", m->string,
               cJSON_IsString(t) ? t->valuestring : "",
               cJSON_IsString(a) ? a->valuestring : "",
               cJSON_IsString(d) ? d->valuestring : "");
    }
out:
    json_delete_wiped(secret);
    return rc;
}

/* Writes token to ~/.vault-token, mode 0600. 0 or -1 (message printed). */
static int store_token(const char *token)
{
    const char *home = getenv("HOME");
    char *path;
    int fd, rc = 0;
    size_t n = strlen(token);

    if (home == NULL || home[0] == '\0')
        return cli__fail(2, "Error storing token: HOME is not set");
    path = cli__str_concat3(home, "/.vault-token", "");
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1 || write(fd, token, n) != (ssize_t)n)
        rc = -1;
    if (fd != -1 && close(fd) != 0)
        rc = -1;
    if (rc == 0)
        rc = chmod(path, 0600);
    free(path);
    return rc == 0 ? 0 : cli__fail(2, "Error storing token in ~/.vault-token");
}

/* The value of "key=value" among the arguments, or NULL. */
static const char *kv_arg(const struct strvec *args, const char *key)
{
    size_t n = strlen(key);

    for (size_t i = 0; i < args->n; i++) {
        if (strncmp(args->v[i], key, n) == 0 && args->v[i][n] == '=')
            return args->v[i] + n + 1;
    }
    return NULL;
}

/* login's flags. */
struct login_opts {
    const char *method; /* -method: token (when NULL) or userpass */
    const char *path;   /* -path: the userpass mount (default userpass) */
};

static int cmd_login(struct cli *ctx, int argc, char **argv)
{
    struct login_opts o = { NULL, NULL };
    const struct cli_flag flags[] = {
        CLI_STRING("method", NULL, &o.method),
        CLI_STRING("path", NULL, &o.path),
        CLI_FLAG_END,
    };
    const char *method, *user, *pw, *tok;
    char *api = NULL, *mount = NULL;
    cJSON *body = NULL, *secret = NULL;
    const cJSON *auth, *ct;
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__need_client(ctx);
    if (rc != 0)
        goto out;
    method = o.method ? o.method : "token";
    if (strcmp(method, "token") == 0) {
        rc = cli__arg_count_error(ctx->args.n, 1, 1);
        if (rc != 0)
            goto out;
        tok = ctx->args.v[0];
        secure_free_str(ctx->client.token);
        ctx->client.token = xstrdup(tok);
        rc = cli__call(ctx, "GET", "auth/token/lookup-self", NULL, NULL,
                       CLI_CALL_RAW, &secret, "Error authenticating");
        if (rc != 0)
            goto out;
    } else if (strcmp(method, "userpass") == 0) {
        user = kv_arg(&ctx->args, "username");
        pw = kv_arg(&ctx->args, "password");
        if (user == NULL || pw == NULL) {
            rc = cli__fail(1, "Error: login -method=userpass needs "
                              "username=... password=...");
            goto out;
        }
        mount = xstrdup(o.path && o.path[0] ? o.path : "userpass");
        api = cli__str_concat3("auth/", mount, "/login/");
        {
            char *full = cli__str_concat3(api, user, "");
            free(api);
            api = full;
        }
        body = cli__one_member("password", pw);
        secure_free_str(ctx->client.token);
        ctx->client.token = NULL;
        rc = cli__call(ctx, "POST", api, NULL, body, CLI_CALL_RAW, &secret,
                       "Error authenticating");
        if (rc != 0)
            goto out;
    } else {
        rc = cli__fail(1, "Error: unsupported login method \"%s\" (token, "
                          "userpass)", method);
        goto out;
    }
    auth = cJSON_GetObjectItemCaseSensitive(secret, "auth");
    ct = cJSON_GetObjectItemCaseSensitive(auth, "client_token");
    tok = cJSON_IsString(ct) ? ct->valuestring : ctx->args.v[0];
    rc = store_token(tok);
    if (rc != 0)
        goto out;
    if (ctx->format == CLI_FMT_TABLE && ctx->g.field == NULL)
        printf("Success! You are now authenticated. The token information "
               "displayed below\nis already stored in the token helper. You "
               "do NOT need to run\n\"coffer login\" again.\n\n");
    rc = cli__print_secret(ctx, secret);
out:
    json_delete_wiped(secret);
    json_delete_wiped(body);
    free(api);
    free(mount);
    return rc;
}

static const char help_auth_enable[] =
    "Usage: coffer auth enable [options] TYPE\n\n"
    "  Enables an auth method of TYPE (POST /v1/sys/auth/PATH), at TYPE/\n"
    "  unless -path says where.\n\n"
    "      $ coffer auth enable -path=users userpass\n\n"
    "Command options:\n\n"
    "  -path=<string>\n"
    "      Where to mount the method (default: the type's name).\n\n"
    "  -description=<string>\n"
    "      A human-friendly description of the method.\n"
    CLI_HELP_GLOBAL;

static const char help_auth_disable[] =
    "Usage: coffer auth disable [options] PATH\n\n"
    "  Disables the auth method at PATH (DELETE /v1/sys/auth/PATH). Tokens\n"
    "  issued by it are revoked.\n"
    CLI_HELP_GLOBAL;

static const char help_auth_list[] =
    "Usage: coffer auth list [options]\n\n"
    "  Lists the enabled auth methods (GET /v1/sys/auth).\n"
    CLI_HELP_GLOBAL;

static const char help_login[] =
    "Usage: coffer login [options] [TOKEN | K=V...]\n\n"
    "  Authenticates and stores the token in ~/.vault-token. With the\n"
    "  token method TOKEN is checked and stored; with -method=userpass the\n"
    "  arguments are username=U password=W.\n\n"
    "      $ coffer login s.AbCd...\n"
    "      $ coffer login -method=userpass username=me password=secret\n\n"
    "Command options:\n\n"
    "  -method=<string>\n"
    "      The auth method: token (default) or userpass.\n\n"
    "  -path=<string>\n"
    "      Where the auth method is mounted (default: the method's name).\n"
    CLI_HELP_GLOBAL;

const struct cli_command cli__auth_commands[] = {
    { { "auth", "enable", NULL }, cmd_auth_enable,
      "Enable an auth method", help_auth_enable, false },
    { { "auth", "disable", NULL }, cmd_auth_disable,
      "Disable an auth method", help_auth_disable, false },
    { { "auth", "list", NULL }, cmd_auth_list,
      "List enabled auth methods", help_auth_list, false },
    { { "login", NULL, NULL }, cmd_login,
      "Authenticate locally", help_login, false },
    { { NULL, NULL, NULL }, NULL, NULL, NULL, false },
};
