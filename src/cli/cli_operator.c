/*
 * cli_operator.c - the operator commands: init, unseal, seal,
 * generate-root and rekey.
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
 *   operator generate-root GET|PUT|DELETE sys/generate-root/attempt,
 *     [KEY] -nonce         PUT sys/generate-root/update {"key","nonce"}
 *     -decode -otp         no request: base64 then XOR with the otp
 *   operator rekey         GET|PUT|DELETE sys/rekey[-recovery-key]/init,
 *     [KEY] -nonce         PUT sys/rekey[-recovery-key]/update
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
#include <stdarg.h>
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
#include <openssl/evp.h>

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

/* Go's api.UnsealOpts: {"key": key, "reset": false, "migrate": m}. */
static cJSON *unseal_body(const char *key, bool migrate)
{
    cJSON *b = cli__one_member("key", key);

    COFFER_ASSERT(b != NULL);
    cJSON_AddFalseToObject(b, "reset");
    cJSON_AddBoolToObject(b, "migrate", migrate);
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
    bool reset;   /* -reset: discard the keys entered so far */
    bool migrate; /* -migrate: the key takes part in a seal migration */
};

static int cmd_operator_unseal(struct cli *ctx, int argc, char **argv)
{
    struct operator_unseal_opts o = { false };
    const struct cli_flag flags[] = {
        CLI_BOOL("reset", NULL, &o.reset),
        CLI_BOOL("migrate", NULL, &o.migrate),
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
        body = unseal_body(key, o.migrate);
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
 * operator generate-root | rekey
 * ==================================================================== */

/* Appends "name|value" (value printf-formatted) to a table. */
static void row(struct strvec *lines, const char *name, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));
static void row(struct strvec *lines, const char *name, const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "%s|", name);
    va_list ap;

    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    strvec_push(lines, line);
    OPENSSL_cleanse(line, sizeof(line));
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : "";
}

static int jint(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(v) ? v->valueint : 0;
}

static const char *jbool(const cJSON *o, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name)) ? "true"
                                                                   : "false";
}

/* Prints a table of rows, or the whole answer for -format=json|yaml. */
static int print_rows(struct cli *ctx, const cJSON *resp,
                      struct strvec *lines, bool header)
{
    struct out o;

    if (ctx->format != CLI_FMT_TABLE)
        return print_struct(ctx, resp);
    out_init(&o);
    if (header)
        fmt_table(&o, lines, "|");
    else
        fmt_columns(&o, lines, "|");
    return cli__emit(stdout, &o);
}

/* Vault's generate-root printStatus. */
static int genroot_print(struct cli *ctx, const cJSON *st)
{
    struct strvec lines;
    int rc;

    strvec_init(&lines);
    row(&lines, "Nonce", "%s", jstr(st, "nonce"));
    row(&lines, "Started", "%s", jbool(st, "started"));
    row(&lines, "Progress", "%d/%d", jint(st, "progress"),
        jint(st, "required"));
    row(&lines, "Complete", "%s", jbool(st, "complete"));
    if (jstr(st, "otp")[0] != '\0')
        row(&lines, "OTP", "%s", jstr(st, "otp"));
    if (jint(st, "otp_length") != 0)
        row(&lines, "OTP Length", "%d", jint(st, "otp_length"));
    if (jstr(st, "encoded_token")[0] != '\0')
        row(&lines, "Encoded Token", "%s", jstr(st, "encoded_token"));
    rc = print_rows(ctx, st, &lines, false);
    for (size_t i = 0; i < lines.n; i++)
        OPENSSL_cleanse(lines.v[i], strlen(lines.v[i]));
    strvec_release(&lines);
    return rc;
}

/* -decode: base64 (unpadded or not) of token XOR otp. */
static int genroot_decode(struct cli *ctx, const char *encoded,
                          const char *otp)
{
    unsigned char raw[256];
    char padded[384];
    size_t n = strlen(encoded), olen = strlen(otp);
    int got, rc = 0;
    cJSON *o;

    if (olen == 0)
        return cli__fail(1, "Missing -otp flag; it is required with "
                            "-decode");
    if (n == 0 || n + 4 >= sizeof(padded) || n % 4 == 1)
        return cli__fail(1, "Error decoding root token: invalid base64");
    memcpy(padded, encoded, n);
    while (n % 4 != 0)
        padded[n++] = '=';
    padded[n] = '\0';
    got = EVP_DecodeBlock(raw, (const unsigned char *)padded, (int)n);
    for (size_t i = n; got > 0 && i > 0 && padded[i - 1] == '='; i--)
        got--;
    if (got < 0 || (size_t)got != olen) {
        rc = cli__fail(1, "Error decoding root token: the encoded token "
                          "and the otp differ in length");
        goto out;
    }
    for (size_t i = 0; i < olen; i++)
        raw[i] ^= (unsigned char)otp[i];
    raw[olen] = '\0';
    if (ctx->format == CLI_FMT_TABLE) {
        printf("%s\n", (char *)raw);
    } else {
        o = cli__one_member("token", (char *)raw);
        rc = print_struct(ctx, o);
        json_delete_wiped(o);
    }
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(padded, sizeof(padded));
    return rc;
}

/*
 * The key (argument or prompt) and the nonce (-nonce, else the attempt's,
 * read from status_path) as an update body; NULL after printing why.
 */
static cJSON *update_body(struct cli *ctx, const char *nonce,
                          const char *status_path)
{
    cJSON *st = NULL, *body = NULL;
    char *key;

    if (nonce == NULL || nonce[0] == '\0') {
        if (cli__call(ctx, "GET", status_path, NULL, NULL, CLI_CALL_BARE,
                      &st, "Error getting the current nonce") != 0)
            return NULL;
        nonce = jstr(st, "nonce");
        if (nonce[0] == '\0') {
            cli__fail(2, "No attempt is in progress: start one with -init");
            cJSON_Delete(st);
            return NULL;
        }
    }
    key = ctx->args.n == 1 ? cli__trim_dup(ctx->args.v[0]) : ask_key();
    if (key != NULL) {
        body = cli__one_member("key", key);
        cJSON_AddStringToObject(body, "nonce", nonce);
    }
    secure_free_str(key);
    cJSON_Delete(st);
    return body;
}

struct operator_genroot_opts {
    bool init, cancel, status;
    const char *decode, *otp, *nonce, *pgp_key;
};

static int cmd_operator_generate_root(struct cli *ctx, int argc, char **argv)
{
    struct operator_genroot_opts o = { false, false, false, NULL, NULL,
                                       NULL, NULL };
    const struct cli_flag flags[] = {
        CLI_BOOL("init", NULL, &o.init),
        CLI_BOOL("cancel", NULL, &o.cancel),
        CLI_BOOL("status", NULL, &o.status),
        CLI_STRING("decode", NULL, &o.decode),
        CLI_STRING("otp", NULL, &o.otp),
        CLI_STRING("nonce", NULL, &o.nonce),
        CLI_STRING("pgp-key", NULL, &o.pgp_key),
        CLI_FLAG_END,
    };
    const char *path = "sys/generate-root/attempt";
    cJSON *body = NULL, *resp = NULL;
    int rc = cli__parse(ctx, flags, argc, argv);

    if (rc == 0 && o.decode != NULL) {
        rc = genroot_decode(ctx, o.decode, o.otp != NULL ? o.otp : "");
        goto out;
    }
    if (rc == 0 && o.pgp_key != NULL)
        rc = cli__fail(1, "-pgp-key is not supported: the server "
                          "generates an OTP");
    if (rc == 0)
        rc = cli__begin(ctx, 0, o.init || o.cancel || o.status ? 0 : 1);
    if (rc != 0)
        goto out;
    if (o.cancel) {
        rc = cli__call(ctx, "DELETE", path, NULL, NULL, CLI_CALL_RAW, &resp,
                       "Error canceling root token generation");
        if (rc == 0)
            printf("Success! Root token generation canceled (if it was "
                   "started)\n");
        goto out;
    }
    if (o.status || o.init) {
        if (o.init)
            body = cJSON_CreateObject();
        rc = cli__call(ctx, o.init ? "PUT" : "GET", path, NULL, body,
                       CLI_CALL_BARE, &resp, "Error %s root generation",
                       o.init ? "initializing" : "getting status of");
    } else {
        body = update_body(ctx, o.nonce, path);
        rc = body == NULL ? 2
                          : cli__call(ctx, "PUT", "sys/generate-root/update",
                                      NULL, body, CLI_CALL_BARE, &resp,
                                      "Error posting unseal key");
    }
    if (rc == 0)
        rc = genroot_print(ctx, resp);
out:
    wipe_args(&ctx->args);
    json_delete_wiped(resp);
    json_delete_wiped(body);
    return rc;
}

/* Vault's rekey printStatus. */
static int rekey_print_status(struct cli *ctx, const cJSON *st)
{
    struct strvec lines;
    int rc;

    strvec_init(&lines);
    row(&lines, "Key", "Value");
    row(&lines, "Nonce", "%s", jstr(st, "nonce"));
    row(&lines, "Started", "%s", jbool(st, "started"));
    row(&lines, "Rekey Progress", "%d/%d", jint(st, "progress"),
        jint(st, "required"));
    row(&lines, "New Shares", "%d", jint(st, "n"));
    row(&lines, "New Threshold", "%d", jint(st, "t"));
    row(&lines, "Verification Required", "%s",
        jbool(st, "verification_required"));
    rc = print_rows(ctx, st, &lines, true);
    strvec_release(&lines);
    return rc;
}

/* The new keys, once: Vault's "Key 1: ..." lines. */
static int rekey_print_keys(struct cli *ctx, const cJSON *resp)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(resp,
                                                         "keys_base64");
    struct out o;
    int i = 0;
    const cJSON *k;

    if (ctx->format != CLI_FMT_TABLE)
        return print_struct(ctx, resp);
    out_init(&o);
    cJSON_ArrayForEach(k, keys) {
        out_printf(&o, "Key %d: %s\n", ++i,
                   cJSON_IsString(k) ? k->valuestring : "");
    }
    out_printf(&o, "\nOperation nonce: %s\n\n", jstr(resp, "nonce"));
    fmt_wrap(&o, "Vault rekeyed with the new keys above. The old keys "
                 "no longer work: distribute these and keep them safe.",
             WRAP_WIDTH, 0);
    out_putc(&o, '\n');
    return cli__emit(stdout, &o);
}

struct operator_rekey_opts {
    bool init, cancel, status;
    int64_t shares, threshold;
    const char *nonce, *target;
};

static int cmd_operator_rekey(struct cli *ctx, int argc, char **argv)
{
    struct operator_rekey_opts o = { false, false, false, DEF_KEY_SHARES,
                                     DEF_KEY_THRESHOLD, NULL, NULL };
    const struct cli_flag flags[] = {
        CLI_BOOL("init", NULL, &o.init),
        CLI_BOOL("cancel", NULL, &o.cancel),
        CLI_BOOL("status", NULL, &o.status),
        CLI_INT("key-shares", "n", &o.shares),
        CLI_INT("key-threshold", "t", &o.threshold),
        CLI_STRING("nonce", NULL, &o.nonce),
        CLI_STRING("target", NULL, &o.target),
        CLI_FLAG_END,
    };
    bool recovery;
    const char *init_path, *update_path;
    cJSON *body = NULL, *resp = NULL;
    int rc = cli__parse(ctx, flags, argc, argv);

    recovery = o.target != NULL && strcmp(o.target, "recovery") == 0;
    init_path = recovery ? "sys/rekey-recovery-key/init" : "sys/rekey/init";
    update_path = recovery ? "sys/rekey-recovery-key/update"
                           : "sys/rekey/update";
    if (rc == 0 && o.target != NULL && !recovery &&
        strcmp(o.target, "barrier") != 0)
        rc = cli__fail(1, "Unknown target: %s", o.target);
    if (rc == 0)
        rc = cli__begin(ctx, 0, o.init || o.cancel || o.status ? 0 : 1);
    if (rc != 0)
        goto out;
    if (o.cancel) {
        rc = cli__call(ctx, "DELETE", init_path, NULL, NULL, CLI_CALL_RAW,
                       &resp, "Error canceling rekey");
        if (rc == 0)
            printf("Success! Canceled rekeying (if it was started)\n");
        goto out;
    }
    if (o.init) {
        body = cJSON_CreateObject();
        cJSON_AddNumberToObject(body, "secret_shares", (double)o.shares);
        cJSON_AddNumberToObject(body, "secret_threshold",
                                (double)o.threshold);
    }
    if (o.init || o.status) {
        rc = cli__call(ctx, o.init ? "PUT" : "GET", init_path, NULL, body,
                       CLI_CALL_BARE, &resp, "Error %s rekey",
                       o.init ? "initializing" : "reading status of");
        if (rc == 0)
            rc = rekey_print_status(ctx, resp);
        goto out;
    }
    body = update_body(ctx, o.nonce, init_path);
    rc = body == NULL ? 2
                      : cli__call(ctx, "PUT", update_path, NULL, body,
                                  CLI_CALL_BARE, &resp,
                                  "Error posting unseal key");
    if (rc == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp,
                                                                 "complete")))
        rc = rekey_print_keys(ctx, resp);
    else if (rc == 0)
        rc = rekey_print_status(ctx, resp);
out:
    wipe_args(&ctx->args);
    json_delete_wiped(resp);
    json_delete_wiped(body);
    return rc;
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
    "  -migrate\n"
    "      The key takes part in a seal migration (the configuration\n"
    "      names a seal the storage is not sealed with yet, or marks the\n"
    "      current one disabled = true).\n\n"
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

static const char help_operator_generate_root[] =
    "Usage: coffer operator generate-root [options] [KEY]\n\n"
    "  Makes a new root token from a quorum of unseal keys (recovery keys\n"
    "  with an auto-unseal seal). Start with -init, which prints the\n"
    "  nonce and a one-time password (OTP); each key holder then runs the\n"
    "  command with a key (asked for with echo off, or as KEY). The last\n"
    "  one gets the encoded token, which -decode with -otp turns into the\n"
    "  root token.\n\n"
    "      $ coffer operator generate-root -init\n"
    "      $ coffer operator generate-root -nonce=NONCE\n"
    "      $ coffer operator generate-root -decode=ENCODED -otp=OTP\n\n"
    "Command options:\n\n"
    "  -init\n"
    "      Start an attempt (the server generates the OTP).\n\n"
    "  -status, -cancel\n"
    "      Print the attempt under way, or cancel it.\n\n"
    "  -nonce=<string>\n"
    "      The attempt's nonce (default: the one under way).\n\n"
    "  -decode=<string>, -otp=<string>\n"
    "      Decode an encoded token locally with the OTP.\n\n"
    "  -pgp-key=<string>\n"
    "      Not supported.\n"
    CLI_HELP_GLOBAL;

static const char help_operator_rekey[] =
    "Usage: coffer operator rekey [options] [KEY]\n\n"
    "  Replaces the unseal keys (or, with -target=recovery, the recovery\n"
    "  keys) with new ones. Start with -init and the new -key-shares and\n"
    "  -key-threshold; then a quorum of the current key holders runs the\n"
    "  command with a key. The last one gets the new keys; the old keys\n"
    "  stop working at once.\n\n"
    "      $ coffer operator rekey -init -key-shares=5 -key-threshold=3\n"
    "      $ coffer operator rekey -nonce=NONCE\n\n"
    "Command options:\n\n"
    "  -init, -status, -cancel\n"
    "      Start, show or cancel the attempt under way.\n\n"
    "  -key-shares=<int>, -n / -key-threshold=<int>, -t\n"
    "      The new keys (defaults 5 and 3).\n\n"
    "  -nonce=<string>\n"
    "      The attempt's nonce (default: the one under way).\n\n"
    "  -target=<barrier|recovery>\n"
    "      Which keys to replace (default barrier).\n"
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
    { { "operator", "generate-root", NULL }, cmd_operator_generate_root,
      "Generate a new root token", help_operator_generate_root, false },
    { { "operator", "rekey", NULL }, cmd_operator_rekey,
      "Replace the unseal or recovery keys", help_operator_rekey, false },
    { { NULL, NULL, NULL }, NULL, NULL, NULL, false },
};
