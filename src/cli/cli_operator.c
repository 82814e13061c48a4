/*
 * cli_operator.c - the operator commands: init, unseal and seal.
 *
 * Owns: the arguments and flags of each command, the sys/ requests it
 * sends (the Go client's request structs, field for field), reading an
 * unseal key from the terminal, and what each command prints. Wording and
 * exit codes are the Vault CLI's (command/operator_init.go,
 * operator_unseal.go, operator_seal.go), "Vault" included: scripts and
 * people match on these lines.
 *
 *   operator init          GET sys/seal-status   (picks the defaults)
 *                          PUT sys/init          {InitRequest}
 *     -status              GET sys/seal-status, GET sys/init
 *   operator unseal [KEY]  PUT sys/unseal        {"key","reset","migrate"}
 *     -reset               PUT sys/unseal        {"reset":true}
 *                          then GET sys/leader for the status table
 *   operator seal          PUT sys/seal          (no body)
 *   operator step-down     PUT sys/step-down     (no body)
 *
 * Exit codes: 0 success, 1 usage error (and `init -status` failing to
 * ask), 2 error from the server; `init -status` exits 2 when the server
 * is not initialized.
 *
 * Secrets: unseal keys and the root token pass through here. Every
 * buffer, JSON tree and string that held one is wiped before it is freed
 * (json_delete_wiped, secure_free_str, out_release, OPENSSL_cleanse).
 * A key given on the command line is also visible in the shell history
 * and in /proc/PID/cmdline while the command runs; the help says so,
 * as Vault's does.
 *
 * Not owned: flag parsing and dispatch (cli.c), HTTP (cli_http.c), the
 * seal status table (cli__print_seal_status in cli_cmds.c), formatting
 * (cli_format.c).
 *
 * Entry point: the table cli__operator_commands (cli_cmd.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "cli_cmd.h"
#include "cli_format.h"
#include "cli_http.h"
#include "../common.h"
#include "../json.h"
#include "../util.h"

/* Vault's defaults for a Shamir seal and for a recovery (auto-unseal). */
#define DEF_KEY_SHARES 5
#define DEF_KEY_THRESHOLD 3

/* Vault's maxLineLength for wrapped paragraphs. */
#define WRAP_WIDTH 78

/* The longest line read as an unseal key (a share is about 45 chars). */
#define KEY_LINE_MAX 4096

#define UNSEAL_PROMPT "Unseal Key (will be hidden): "

/* ====================================================================
 * operator init: request and output
 * ==================================================================== */

/* operator init's flags. */
struct operator_init_opts {
    int64_t key_shares;    /* -key-shares, -n; 0 for the default */
    int64_t key_threshold; /* -key-threshold, -t; 0 for the default */
    bool status;           /* -status: only ask whether it is */
};

/* What the command asks for (the numbers of Go's api.InitRequest). */
struct init_req {
    int64_t secret_shares;
    int64_t secret_threshold;
    int64_t recovery_shares;
    int64_t recovery_threshold;
};

/*
 * Vault fills in 5/3 for whichever kind of key the server uses: unseal
 * keys, or recovery keys behind an auto-unseal seal. 0 means "not given"
 * (Go's zero int), so -key-shares=0 also gets the default.
 */
static void init_defaults(struct init_req *req,
                          const struct operator_init_opts *o,
                          bool recovery_seal)
{
    memset(req, 0, sizeof(*req));
    req->secret_shares = o->key_shares;
    req->secret_threshold = o->key_threshold;
    if (recovery_seal) {
        req->recovery_shares = DEF_KEY_SHARES;
        req->recovery_threshold = DEF_KEY_THRESHOLD;
        return;
    }
    if (req->secret_shares == 0)
        req->secret_shares = DEF_KEY_SHARES;
    if (req->secret_threshold == 0)
        req->secret_threshold = DEF_KEY_THRESHOLD;
}

/*
 * Go's api.InitRequest as json.Marshal writes it, in declaration order:
 *
 *   {"secret_shares":5,"secret_threshold":3,"stored_shares":0,
 *    "pgp_keys":null,"recovery_shares":0,"recovery_threshold":0,
 *    "recovery_pgp_keys":null,"root_token_pgp_key":""}
 */
static cJSON *init_body(const struct init_req *req)
{
    cJSON *b = cJSON_CreateObject();

    COFFER_ASSERT(b != NULL);
    cJSON_AddNumberToObject(b, "secret_shares", (double)req->secret_shares);
    cJSON_AddNumberToObject(b, "secret_threshold",
                            (double)req->secret_threshold);
    cJSON_AddNumberToObject(b, "stored_shares", 0);
    cJSON_AddNullToObject(b, "pgp_keys");
    cJSON_AddNumberToObject(b, "recovery_shares",
                            (double)req->recovery_shares);
    cJSON_AddNumberToObject(b, "recovery_threshold",
                            (double)req->recovery_threshold);
    cJSON_AddNullToObject(b, "recovery_pgp_keys");
    cJSON_AddStringToObject(b, "root_token_pgp_key", "");
    return b;
}

/* The string at index i of a JSON list, or "" (borrowed). */
static const char *str_at(const cJSON *list, int i)
{
    const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(list, i));

    return s != NULL ? s : "";
}

/* Appends "<label> N: <key>" lines, base64 when the server sent it. */
static void key_lines(struct out *o, const char *label, const cJSON *hex,
                      const cJSON *b64)
{
    int n = cJSON_GetArraySize(hex), i;
    bool use_b64 = cJSON_IsArray(b64) && cJSON_GetArraySize(b64) == n;

    for (i = 0; i < n; i++)
        out_printf(o, "%s %d: %s\n", label, i + 1,
                   str_at(use_b64 ? b64 : hex, i));
}

/* Appends a blank line, then text wrapped as Vault's wrapAtLength. */
static void paragraph(struct out *o, const char *text)
{
    out_putc(o, '\n');
    fmt_wrap(o, text, WRAP_WIDTH, 0);
    out_putc(o, '\n');
}

/* The table output of `operator init` for the sys/init answer `resp`. */
static void init_table(struct out *o, const struct init_req *req,
                       const cJSON *resp)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(resp, "keys");
    const cJSON *rkeys = cJSON_GetObjectItemCaseSensitive(resp,
                                                          "recovery_keys");
    struct out text;

    out_init(&text);
    key_lines(o, "Unseal Key", keys,
              cJSON_GetObjectItemCaseSensitive(resp, "keys_base64"));
    key_lines(o, "Recovery Key", rkeys,
              cJSON_GetObjectItemCaseSensitive(resp, "recovery_keys_base64"));
    out_printf(o, "\nInitial Root Token: %s\n",
               cli__str_member(resp, "root_token"));
    if (cJSON_GetArraySize(keys) > 0) {
        out_printf(&text, "Vault initialized with %lld key shares and a key "
                   "threshold of %lld. Please securely distribute the key "
                   "shares printed above. When the Vault is re-sealed, "
                   "restarted, or stopped, you must supply at least %lld of "
                   "these keys to unseal it before it can start servicing "
                   "requests.", (long long)req->secret_shares,
                   (long long)req->secret_threshold,
                   (long long)req->secret_threshold);
        paragraph(o, text.b.ptr);
        out_release(&text);
        out_init(&text);
        out_printf(&text, "Vault does not store the generated root key. "
                   "Without at least %lld keys to reconstruct the root key, "
                   "Vault will remain permanently sealed!",
                   (long long)req->secret_threshold);
        paragraph(o, text.b.ptr);
        paragraph(o, "It is possible to generate new unseal keys, provided "
                     "you have a quorum of existing unseal keys shares. See "
                     "\"vault operator rekey\" for more information.");
    } else {
        out_puts(o, "\nSuccess! Vault is initialized\n");
    }
    if (cJSON_GetArraySize(rkeys) > 0) {
        out_release(&text);
        out_init(&text);
        out_printf(&text, "Recovery key initialized with %lld key shares and "
                   "a key threshold of %lld. Please securely distribute the "
                   "key shares printed above.",
                   (long long)req->recovery_shares,
                   (long long)req->recovery_threshold);
        paragraph(o, text.b.ptr);
    }
    out_release(&text);
}

/* A copy of a list of strings (Go's make + copy: never null, maybe []). */
static cJSON *string_list(const cJSON *src)
{
    cJSON *list = cJSON_CreateArray();
    int n = cJSON_GetArraySize(src), i;

    COFFER_ASSERT(list != NULL);
    for (i = 0; i < n; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(str_at(src, i)));
    return list;
}

/*
 * Vault's machineInit struct, members in declaration order. Returns a new
 * tree holding the keys; free it with json_delete_wiped().
 */
static cJSON *machine_init(const struct init_req *req, const cJSON *resp)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(resp, "keys");
    bool stored = cJSON_GetArraySize(keys) == 0;
    cJSON *m = cJSON_CreateObject();

    COFFER_ASSERT(m != NULL);
    cJSON_AddItemToObject(m, "unseal_keys_b64",
                          string_list(cJSON_GetObjectItemCaseSensitive(
                              resp, "keys_base64")));
    cJSON_AddItemToObject(m, "unseal_keys_hex", string_list(keys));
    /* No keys back means the server stores them: Vault shows 1 of 1. */
    cJSON_AddNumberToObject(m, "unseal_shares",
                            stored ? 1 : (double)req->secret_shares);
    cJSON_AddNumberToObject(m, "unseal_threshold",
                            stored ? 1 : (double)req->secret_threshold);
    cJSON_AddItemToObject(m, "recovery_keys_b64",
                          string_list(cJSON_GetObjectItemCaseSensitive(
                              resp, "recovery_keys_base64")));
    cJSON_AddItemToObject(m, "recovery_keys_hex",
                          string_list(cJSON_GetObjectItemCaseSensitive(
                              resp, "recovery_keys")));
    cJSON_AddNumberToObject(m, "recovery_keys_shares",
                            (double)req->recovery_shares);
    cJSON_AddNumberToObject(m, "recovery_keys_threshold",
                            (double)req->recovery_threshold);
    cJSON_AddStringToObject(m, "root_token",
                            cli__str_member(resp, "root_token"));
    return m;
}

/*
 * json.MarshalIndent(v, "", "  ") of a Go struct: like fmt_json, but the
 * top-level members keep their order instead of being sorted. The keys
 * are this file's own constants, so they need no escaping.
 */
static void json_in_order(struct out *o, const cJSON *obj)
{
    const cJSON *it;

    out_puts(o, "{\n");
    cJSON_ArrayForEach(it, obj) {
        out_printf(o, "  \"%s\": ", it->string);
        fmt_json(o, it, 1);
        out_puts(o, it->next != NULL ? ",\n" : "\n");
    }
    out_putc(o, '}');
}

/* Vault's OutputData of a struct: JSON in field order, or sorted YAML. */
static int print_struct(struct cli *ctx, const cJSON *obj)
{
    struct out o, js;
    int rc;

    out_init(&o);
    out_init(&js);
    json_in_order(&js, obj);
    cli__structured(ctx, &o, &js);
    rc = cli__emit(stdout, &o);
    out_release(&js);
    return rc;
}

/* ====================================================================
 * operator init
 * ==================================================================== */

/* `init -status`: 0 initialized, 2 not, 1 when the server was not asked. */
static int init_status(struct cli *ctx)
{
    cJSON *resp = NULL, *data = NULL;
    struct out err;
    bool inited;
    int rc;

    out_init(&err);
    if (cli__api_call(&ctx->client, "GET", "sys/init", NULL, NULL,
                      CLI_CALL_BARE, &resp, NULL, &err) != 0) {
        /* Not 2: that means "not initialized" here. */
        rc = cli__report(&err, "Error checking init status") - 1;
        goto out;
    }
    inited = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp,
                                                           "initialized"));
    if (ctx->format == CLI_FMT_TABLE) {
        printf("%s\n", inited ? "Vault is initialized"
                              : "Vault is not initialized");
    } else {
        /* api.InitStatusResponse has no json tag: the key is capitalised. */
        data = cJSON_CreateObject();
        COFFER_ASSERT(data != NULL);
        cJSON_AddBoolToObject(data, "Initialized", inited);
        print_struct(ctx, data);
    }
    rc = inited ? 0 : 2;
out:
    cJSON_Delete(data);
    json_delete_wiped(resp);
    out_release(&err);
    return rc;
}

/* Prints what `operator init` shows once sys/init answered. */
static int init_output(struct cli *ctx, const struct init_req *req,
                       const cJSON *resp)
{
    cJSON *machine = NULL;
    struct out o;
    int rc;

    if (ctx->format != CLI_FMT_TABLE) {
        machine = machine_init(req, resp);
        rc = print_struct(ctx, machine);
        json_delete_wiped(machine);
        return rc;
    }
    out_init(&o);
    init_table(&o, req, resp);
    return cli__emit(stdout, &o);
}

static int cmd_operator_init(struct cli *ctx, int argc, char **argv)
{
    struct operator_init_opts o = { 0, 0, false };
    /* -recovery-shares/-threshold (Vault's): auto-unseal seals only. */
    int64_t rshares = 0, rthreshold = 0;
    const struct cli_flag flags[] = {
        CLI_INT("key-shares", "n", &o.key_shares),
        CLI_INT("key-threshold", "t", &o.key_threshold),
        CLI_INT("recovery-shares", NULL, &rshares),
        CLI_INT("recovery-threshold", NULL, &rthreshold),
        CLI_BOOL("status", NULL, &o.status),
        CLI_FLAG_END,
    };
    cJSON *seal = NULL, *body = NULL, *resp = NULL;
    struct init_req req;
    struct out err;
    int rc;

    out_init(&err);
    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 0);
    if (rc != 0)
        goto out;
    /* Vault asks first whether the seal uses recovery keys. */
    if (cli__api_call(&ctx->client, "GET", "sys/seal-status", NULL, NULL,
                      CLI_CALL_BARE, &seal, NULL, &err) != 0) {
        rc = cli__fail(2, "%s", err.b.ptr != NULL ? err.b.ptr : "");
        goto out;
    }
    if (o.status) {
        rc = init_status(ctx);
        goto out;
    }
    init_defaults(&req, &o,
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                      seal, "recovery_seal")));
    if (req.recovery_shares != 0 && rshares != 0)
        req.recovery_shares = rshares;
    if (req.recovery_threshold != 0 && rthreshold != 0)
        req.recovery_threshold = rthreshold;
    body = init_body(&req);
    rc = cli__call(ctx, "PUT", "sys/init", NULL, body, CLI_CALL_BARE, &resp,
                   "Error initializing");
    if (rc != 0)
        goto out;
    rc = init_output(ctx, &req, resp);
out:
    json_delete_wiped(resp);
    json_delete_wiped(body);
    json_delete_wiped(seal);
    out_release(&err);
    return rc;
}

/* ====================================================================
 * Reading an unseal key
 * ==================================================================== */

/*
 * While echo is off, a signal that ends the process must turn it back on
 * first, or the user's shell is left typing blind. The handler restores
 * the saved settings (tcsetattr is async-signal-safe) and re-raises.
 */
static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;
static const int tty_signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP };

static void restore_tty_and_reraise(int sig)
{
    if (tty_changed)
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Turns echo off on fd 0; old[] receives the previous signal actions. */
static int echo_off(struct sigaction *old)
{
    struct termios quiet;
    struct sigaction sa;
    size_t i;

    if (tcgetattr(STDIN_FILENO, &saved_tty) != 0)
        return COFFER_EIO;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = restore_tty_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < ARRAY_LEN(tty_signals); i++) {
        sigaction(tty_signals[i], &sa, &old[i]);
        /* A signal the caller ignores (nohup, trap '') stays ignored. */
        if (old[i].sa_handler == SIG_IGN)
            sigaction(tty_signals[i], &old[i], NULL);
    }
    quiet = saved_tty;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    tty_changed = 1;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
        tty_changed = 0;
        for (i = 0; i < ARRAY_LEN(tty_signals); i++)
            sigaction(tty_signals[i], &old[i], NULL);
        return COFFER_EIO;
    }
    return 0;
}

static void echo_on(const struct sigaction *old)
{
    size_t i;

    (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    tty_changed = 0;
    for (i = 0; i < ARRAY_LEN(tty_signals); i++)
        sigaction(tty_signals[i], &old[i], NULL);
}

/*
 * Reads one line from fd into buf (cap bytes, NUL-terminated, newline
 * dropped), a byte at a time so no stdio buffer keeps a copy of the key
 * or swallows input after it. Returns 0; COFFER_EIO with "EOF" in err
 * when the input ended before any byte; COFFER_EIO with the error text on
 * a read error; COFFER_ETOOBIG when the line does not fit.
 */
static int read_line_fd(int fd, char *buf, size_t cap, struct out *err)
{
    size_t n = 0;
    ssize_t got;
    char c;

    for (;;) {
        got = read(fd, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            out_printf(err, "read /dev/stdin: %s", strerror(errno));
            return COFFER_EIO;
        }
        if (got == 0 || c == '\n')
            break;
        if (n + 1 >= cap) {
            out_puts(err, "unseal key: line too long");
            return COFFER_ETOOBIG;
        }
        buf[n++] = c;
    }
    buf[n] = '\0';
    if (got == 0 && n == 0) {
        out_puts(err, "EOF");
        return COFFER_EIO;
    }
    return 0;
}

/*
 * The key when none was given: from the terminal with echo off after
 * Vault's prompt, else one line of stdin. Returns a new trimmed string
 * (free with secure_free_str), or NULL after printing Vault's message.
 */
static char *ask_key(void)
{
    char line[KEY_LINE_MAX];
    struct sigaction old[ARRAY_LEN(tty_signals)];
    struct out err, msg;
    char *key = NULL;
    bool tty = isatty(STDIN_FILENO) == 1;
    int rc;

    out_init(&err);
    out_init(&msg);
    if (tty) {
        fputs(UNSEAL_PROMPT, stdout);
        fflush(stdout);
        if (echo_off(old) != 0)
            tty = false; /* echo stays on; reading still works */
    }
    rc = read_line_fd(STDIN_FILENO, line, sizeof(line), &err);
    if (tty)
        echo_on(old);
    if (isatty(STDIN_FILENO) == 1) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (rc == 0) {
        key = cli__trim_dup(line);
    } else {
        out_printf(&msg, "An error occurred attempting to ask for an unseal "
                   "key. The raw error message is shown below, but usually "
                   "this is because you attempted to pipe a value into the "
                   "unseal command or you are executing outside of a "
                   "terminal (tty). You should run the unseal command from a "
                   "terminal for maximum security. If this is not an option, "
                   "the unseal key can be provided as the first argument to "
                   "the unseal command. The raw error was:\n\n%s",
                   err.b.ptr != NULL ? err.b.ptr : "");
        out_release(&err);
        fmt_wrap(&err, msg.b.ptr, WRAP_WIDTH, 0);
        out_putc(&err, '\n');
        cli__emit(stderr, &err);
    }
    OPENSSL_cleanse(line, sizeof(line));
    out_release(&msg);
    out_release(&err);
    return key;
}

/* ====================================================================
 * operator unseal | seal
 * ==================================================================== */

/* Go's api.UnsealOpts: {"key": key, "reset": false, "migrate": false}. */
static cJSON *unseal_body(const char *key)
{
    cJSON *b = cli__one_member("key", key);

    COFFER_ASSERT(b != NULL);
    cJSON_AddFalseToObject(b, "reset");
    cJSON_AddFalseToObject(b, "migrate");
    return b;
}

/* Wipes the copy of a key given on the command line once it was sent. */
static void wipe_args(struct strvec *args)
{
    size_t i;

    for (i = 0; i < args->n; i++)
        OPENSSL_cleanse(args->v[i], strlen(args->v[i]));
}

/* operator unseal's flags. */
struct operator_unseal_opts {
    bool reset; /* -reset: discard the keys entered so far */
};

static int cmd_operator_unseal(struct cli *ctx, int argc, char **argv)
{
    struct operator_unseal_opts o = { false };
    const struct cli_flag flags[] = {
        CLI_BOOL("reset", NULL, &o.reset),
        CLI_FLAG_END,
    };
    cJSON *body = NULL, *seal = NULL;
    char *key = NULL;
    const char *what = "Error unsealing";
    int rc;

    rc = cli__parse(ctx, flags, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 1);
    if (rc != 0)
        goto out;
    if (o.reset) {
        what = "Error resetting unseal process";
        body = cJSON_CreateObject();
        COFFER_ASSERT(body != NULL);
        cJSON_AddTrueToObject(body, "reset");
    } else {
        key = ctx->args.n == 1 ? cli__trim_dup(ctx->args.v[0])
                                 : ask_key();
        if (key == NULL) {
            rc = 1;
            goto out;
        }
        body = unseal_body(key);
    }
    rc = cli__call(ctx, "PUT", "sys/unseal", NULL, body, CLI_CALL_BARE, &seal,
                   "%s", what);
    if (rc != 0)
        goto out;
    /* Like Vault: 0 even while still sealed (progress 1/3). */
    rc = cli__print_seal_status(ctx, seal);
out:
    wipe_args(&ctx->args);
    json_delete_wiped(seal);
    json_delete_wiped(body);
    secure_free_str(key);
    return rc;
}

/*
 * A PUT with no body and no options that answers nothing worth showing
 * (sys/seal, sys/step-down); success is printed, with ": <address>" if
 * with_addr.
 */
static int put_and_say(struct cli *ctx, int argc, char **argv,
                       const char *path, const char *failed,
                       const char *success, bool with_addr)
{
    cJSON *reply = NULL;
    int rc;

    rc = cli__parse(ctx, NULL, argc, argv);
    if (rc == 0)
        rc = cli__begin(ctx, 0, 0);
    if (rc == 0)
        rc = cli__call(ctx, "PUT", path, NULL, NULL, CLI_CALL_RAW, &reply,
                       "%s", failed);
    if (rc == 0 && with_addr)
        printf("%s: %s\n", success, ctx->client.addr);
    else if (rc == 0)
        printf("%s\n", success);
    json_delete_wiped(reply);
    return rc;
}

static int cmd_operator_seal(struct cli *ctx, int argc, char **argv)
{
    return put_and_say(ctx, argc, argv, "sys/seal", "Error sealing",
                       "Success! Vault is sealed.", false);
}

static int cmd_operator_step_down(struct cli *ctx, int argc, char **argv)
{
    return put_and_say(ctx, argc, argv, "sys/step-down",
                       "Error stepping down", "Success! Stepped down", true);
}

/* ====================================================================
 * Help text and the command table
 * ==================================================================== */

static const char help_operator_init[] =
    "Usage: coffer operator init [options]\n\n"
    "  Initializes a new server: creates the root key, splits it into\n"
    "  -key-shares unseal keys of which -key-threshold are needed to\n"
    "  unseal, and prints them with the initial root token. The server\n"
    "  stays sealed. This can be done once per storage. With an\n"
    "  auto-unseal seal (seal \"static\") it prints recovery keys instead\n"
    "  and the server unseals itself.\n\n"
    "      $ coffer operator init -key-shares=5 -key-threshold=3\n\n"
    "Command options:\n\n"
    "  -key-shares=<int>, -n\n"
    "      Number of unseal keys to make (default 5).\n\n"
    "  -key-threshold=<int>, -t\n"
    "      Number of unseal keys needed to unseal (default 3).\n\n"
    "  -recovery-shares=<int>\n"
    "      Auto-unseal seals: number of recovery keys (default 5).\n\n"
    "  -recovery-threshold=<int>\n"
    "      Auto-unseal seals: recovery keys needed (default 3).\n\n"
    "  -status\n"
    "      Only print whether the server is initialized: exit 0 if it is,\n"
    "      2 if not, 1 on error.\n"
    CLI_HELP_GLOBAL;

static const char help_operator_unseal[] =
    "Usage: coffer operator unseal [options] [KEY]\n\n"
    "  Submits one unseal key and prints the seal status; the server\n"
    "  unseals once enough keys were given. Without KEY it asks for it\n"
    "  with echo off (or reads a line of stdin); a KEY argument ends up in\n"
    "  your shell history.\n\n"
    "Command options:\n\n"
    "  -reset\n"
    "      Discard the keys entered so far.\n"
    CLI_HELP_GLOBAL;

static const char help_operator_seal[] =
    "Usage: coffer operator seal [options]\n\n"
    "  Seals the server (PUT /v1/sys/seal; needs sudo). Until it is\n"
    "  unsealed again it answers every request with an error.\n"
    CLI_HELP_GLOBAL;

static const char help_operator_step_down[] =
    "Usage: coffer operator step-down [options]\n\n"
    "  Makes the active node of an HA cluster give up the lock and stay\n"
    "  out of the contest for 10 seconds, so that a standby takes over\n"
    "  (PUT /v1/sys/step-down; needs sudo). Sent to a standby, it reaches\n"
    "  the active node. Without HA it does nothing.\n"
    CLI_HELP_GLOBAL;

const struct cli_command cli__operator_commands[] = {
    { { "operator", "init", NULL }, cmd_operator_init,
      "Initialize a server", help_operator_init, false },
    { { "operator", "unseal", NULL }, cmd_operator_unseal,
      "Unseal the server", help_operator_unseal, false },
    { { "operator", "seal", NULL }, cmd_operator_seal,
      "Seal the server", help_operator_seal, false },
    { { "operator", "step-down", NULL }, cmd_operator_step_down,
      "Make the active HA node hand over", help_operator_step_down, false },
    { { NULL, NULL, NULL }, NULL, NULL, NULL, false },
};
