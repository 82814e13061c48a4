/*
 * cli_cmd.h - what the command files of the CLI share (cli.c, cli_cmds.c,
 * cli_kv.c, cli_lease.c, cli_operator.c, cli_policy.c, cli_auth.c).
 *
 * Private to the cli*.c files; the public entry point is cli_main() in
 * cli.h. cli.c owns the flag parser, the dispatch and the output helpers
 * below; each command file owns its commands, with their options structs
 * and flag tables, and exports them as a table of `struct cli_command`,
 * which cli.c searches.
 *
 * A command is `int run(struct cli *ctx, int argc, char **argv)`: it
 * parses its own flags into its own options struct with cli__parse (the
 * global ones land in ctx->g), returns the process exit code (0 success,
 * 1 usage error, 2 error from the server or the network) and prints its
 * own output and errors. cli.c answers -h before, and releases ctx after.
 *
 * Ownership: arguments are borrowed; cJSON responses stay the caller's.
 * The print functions write to stdout/stderr and never keep a pointer.
 */
#ifndef COFFER_CLI_CMD_H
#define COFFER_CLI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli_format.h"
#include "cli_http.h"
#include "../util.h"

/* The flags every command takes (Vault's HTTP and output flag sets). */
struct cli_global {
    const char *address;     /* -address */
    const char *ca_cert;     /* -ca-cert */
    bool tls_skip_verify;    /* -tls-skip-verify */
    const char *format_flag; /* -format as given; see cli.format */
    const char *field;       /* -field */
    bool detailed;           /* -detailed; only `secrets list` reads it */
    const char *wrap_ttl;    /* -wrap-ttl: sent as X-Vault-Wrap-TTL */
};

struct cli;

/*
 * A row of a command table; a row with run == NULL ends the table. The
 * same rows drive the dispatch and every usage text: `coffer -h` and a
 * group's usage list each row's synopsis, `<command> -h` prints its help.
 */
struct cli_command {
    const char *words[3]; /* "kv", "metadata", "get"; unused words NULL */
    /* argv: what follows the words; the command parses it (cli__parse). */
    int (*run)(struct cli *ctx, int argc, char **argv);
    const char *synopsis; /* one line, for the listings of its group */
    /*
     * Printed for -h (stdout): "Usage: coffer WORDS [options] ARGS", a
     * paragraph saying what it does, its own flags ("Command options")
     * and CLI_HELP_GLOBAL.
     */
    const char *help;
    bool raw_ok;          /* only `read` takes -format=raw */
};

/* One run of one command. */
struct cli {
    const struct cli_command *cmd; /* the command running */
    struct cli_global g;
    enum cli_format format;   /* -format resolved by cli__parse */
    struct strvec args;       /* positional arguments */
    struct cli_client client; /* valid once cli__need_client returned 0 */
    bool have_client;
    bool stdin_used;          /* "-" may be read once per run */
};

/*
 * A command's own flags: a table of struct cli_flag, each row bound to a
 * member of the command's options struct, ended by CLI_FLAG_END (git's
 * parse-options). The parser adds the global flags.
 *
 *     struct lease_renew_opts o = { 0 };
 *     const struct cli_flag flags[] = {
 *         CLI_DURATION("increment", "i", &o.increment),
 *         CLI_FLAG_END,
 *     };
 *     rc = cli__parse(ctx, flags, argc, argv);
 *
 * What a flag stores: a string flag points into argv (borrowed, it lives
 * as long as the process); list and map flags push copies into a struct
 * strvec, which the command releases.
 */
enum cli_flag_kind {
    CLI_FLAG_BOOL = 1,     /* bool */
    CLI_FLAG_STRING = 2,   /* const char * */
    CLI_FLAG_INT = 3,      /* int64_t, Go's strconv.ParseInt(s, 0, 64) */
    CLI_FLAG_DURATION = 4, /* int64_t seconds; "system" is -1 as in Vault */
    CLI_FLAG_LIST = 5,     /* struct strvec; repeatable, values trimmed */
    CLI_FLAG_MAP = 6,      /* struct strvec of "k=v"; repeatable */
};

struct cli_flag {
    const char *name;  /* "force" for -force */
    const char *alias; /* one-letter form ("f"), or NULL */
    enum cli_flag_kind kind;
    void *value;       /* what kind says */
};

/* p as a void *, after checking at compile time that it is a T *. */
#define CLI_FLAG_PTR_(T, p) ((void *)(1 ? (p) : (T *)NULL))

#define CLI_BOOL(name, alias, p)                                             \
    { name, alias, CLI_FLAG_BOOL, CLI_FLAG_PTR_(bool, p) }
#define CLI_STRING(name, alias, p)                                           \
    { name, alias, CLI_FLAG_STRING, CLI_FLAG_PTR_(const char *, p) }
#define CLI_INT(name, alias, p)                                              \
    { name, alias, CLI_FLAG_INT, CLI_FLAG_PTR_(int64_t, p) }
#define CLI_DURATION(name, alias, p)                                         \
    { name, alias, CLI_FLAG_DURATION, CLI_FLAG_PTR_(int64_t, p) }
#define CLI_LIST(name, alias, p)                                             \
    { name, alias, CLI_FLAG_LIST, CLI_FLAG_PTR_(struct strvec, p) }
#define CLI_MAP(name, alias, p)                                              \
    { name, alias, CLI_FLAG_MAP, CLI_FLAG_PTR_(struct strvec, p) }
#define CLI_FLAG_END { NULL, NULL, CLI_FLAG_BOOL, NULL }

/* The command tables of cli_cmds.c, cli_kv.c, cli_lease.c, cli_operator.c. */
extern const struct cli_command cli__cmds_commands[];
extern const struct cli_command cli__kv_commands[];
extern const struct cli_command cli__lease_commands[];
extern const struct cli_command cli__operator_commands[];
extern const struct cli_command cli__policy_commands[];
extern const struct cli_command cli__auth_commands[];

/* The flags every command takes, appended to each help text. */
#define CLI_HELP_GLOBAL                                                      \
    "\n"                                                                     \
    "Global options:\n"                                                      \
    "\n"                                                                     \
    "  -address=<string>\n"                                                  \
    "      Address of the server (default: $COFFER_ADDR, $VAULT_ADDR,\n"     \
    "      then http://127.0.0.1:8200).\n"                                   \
    "\n"                                                                     \
    "  -format=<string>\n"                                                   \
    "      Output format: table, json or yaml ($VAULT_FORMAT).\n"            \
    "\n"                                                                     \
    "  -field=<string>\n"                                                    \
    "      Print only this field of the response, without a trailing\n"     \
    "      newline when the output is not a terminal.\n"                     \
    "\n"                                                                     \
    "  -wrap-ttl=<duration>\n"                                               \
    "      Wrap the response in a single-use token with this TTL\n"          \
    "      ($VAULT_WRAP_TTL); unwrap it with \"coffer unwrap\".\n"            \
    "\n"                                                                     \
    "  -ca-cert=<string>, -tls-skip-verify\n"                                \
    "      TLS settings ($VAULT_CACERT, $VAULT_SKIP_VERIFY).\n"              \
    "\n"                                                                     \
    "The token comes from $COFFER_TOKEN, $VAULT_TOKEN or ~/.vault-token.\n"

/* ---- a run and its flags (cli.c) -------------------------------------- */

/* Sets ctx up for one run of cmd (NULL in tests); see cli__release(). */
void cli__init(struct cli *ctx, const struct cli_command *cmd);
/* Frees the positional arguments and the client. */
void cli__release(struct cli *ctx);
/*
 * The start of every command: parses argv with Go's flag syntax (-f, --f,
 * -f=v, -f v) into the command's `flags` (NULL when it has none), the
 * global ones into ctx->g and the positional arguments into ctx->args,
 * then resolves -format into ctx->format. Returns 0, or 1 after printing
 * Go's flag error or Vault's format error.
 */
int cli__parse(struct cli *ctx, const struct cli_flag *flags, int argc,
               char **argv);
/* cli__parse without -format: 0, or COFFER_EINVAL with the error in err. */
int cli__parse_args(struct cli *ctx, const struct cli_flag *flags, int argc,
                    char **argv, struct out *err);

/* ---- plumbing (cli.c) ------------------------------------------------- */

/* Creates ctx->client once; prints the failure and returns 2 if it fails. */
int cli__need_client(struct cli *ctx);
/* 0 when min <= got <= max, else prints Vault's message and returns 1. */
int cli__arg_count_error(size_t got, size_t min, size_t max);

/* ---- output (cli.c) --------------------------------------------------- */

/* Writes the buffer to f and wipes it. Returns 0, or 1 if it overflowed. */
int cli__emit(FILE *f, struct out *o);
/* Prints "<formatted prefix>: <detail>" on stderr and returns 2. */
int cli__report(const struct out *detail, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints a message and a newline on stderr; returns `code`. */
int cli__fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends JSON text js to o in the chosen structured format (json/yaml). */
void cli__structured(struct cli *ctx, struct out *o, const struct out *js);
/* Vault's OutputSecret: warnings on stderr, then the table, or JSON/YAML. */
int cli__print_secret(struct cli *ctx, const cJSON *secret);
/* Vault's OutputData: a map or list table, or JSON/YAML. */
int cli__print_data(struct cli *ctx, const cJSON *data);
/* Prints one selected value (PrintRawField after the lookup). */
int cli__print_value(struct cli *ctx, const cJSON *val, const char *field);
/* -field=NAME of a response (Vault's PrintRawField). */
int cli__print_field(struct cli *ctx, const cJSON *secret);
/* Ends a command that got a response: -field, else the whole secret. */
int cli__print_result(struct cli *ctx, const cJSON *secret);

/* ---- plumbing shared by commands (cli_cmds.c) ------------------------- */

/*
 * The start of most commands: checks min <= argument count <= max
 * (cli__arg_count_error), then creates the client (cli__need_client).
 * Returns 0, or the exit code after printing why not.
 */
int cli__begin(struct cli *ctx, size_t min, size_t max);
/*
 * cli__api_call for a command that only reports a failure: on error
 * prints "<formatted fmt>: <Vault's text>" on stderr (as cli__report) and
 * returns 2, else returns 0. *secret is set as cli__api_call sets it (also
 * on error in CLI_CALL_WRITE mode), so free it either way.
 */
int cli__call(struct cli *ctx, const char *method, const char *path,
              const char *query, const cJSON *body, enum cli_call_mode mode,
              cJSON **secret, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* ---- endings shared by commands (cli_cmds.c) -------------------------- */

/*
 * What write-like commands print once the call came back (Vault's
 * handleWriteSecretOutput): the error with any returned data, "Success!
 * Data written to: PATH" for an empty answer, else the response.
 */
int cli__write_output(struct cli *ctx, const char *path, int call_rc,
                      const cJSON *secret, const struct out *err);
/* What list-like commands print once the LIST call came back. */
int cli__list_output(struct cli *ctx, const char *path,
                     const cJSON *secret);
/* What delete-like commands print once the call came back. */
int cli__delete_output(struct cli *ctx, const char *path, int call_rc,
                       const cJSON *secret, const struct out *err);
/*
 * Vault's OutputSealStatus: asks sys/leader (blocks), then prints the
 * sys/seal-status answer `seal` (borrowed) as the table or JSON/YAML of
 * `status`. Returns 0, or 1 when sys/leader failed (message printed).
 * Whether the server is sealed does not change the result.
 */
int cli__print_seal_status(struct cli *ctx, const cJSON *seal);

#endif
