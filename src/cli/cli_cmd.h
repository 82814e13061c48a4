/*
 * cli_cmd.h - what the command files of the CLI share (cli.c, cli_cmds.c,
 * cli_kv.c, cli_lease.c, cli_operator.c).
 *
 * Private to the cli*.c files; the public entry point is cli_main() in
 * cli.h. cli.c owns the flags, the dispatch and the output helpers below;
 * each command file owns its commands and exports them as a table of
 * `struct cli_command`, which cli.c searches.
 *
 * A command is `int run(struct cli *ctx)`: it returns the process exit
 * code (0 success, 1 usage error, 2 error from the server or the network)
 * and prints its own output and errors. cli.c parses the flags into
 * ctx->o before, and releases ctx after.
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

/* Every flag any command takes; which ones a command allows is its list. */
struct cli_opts {
    /* global flags */
    char *format_flag;
    char *field;
    char *address;
    char *ca_cert;
    bool tls_skip_verify;
    bool detailed;
    bool help;
    /* write */
    bool force;
    /* kv */
    char *mount;
    int64_t version;
    int64_t cas;
    struct strvec versions;
    /* secrets */
    char *path;
    char *description;
    int64_t default_lease_ttl;
    int64_t max_lease_ttl;
    struct strvec options;
    bool local;
    bool seal_wrap;
    bool force_no_cache;
    bool external_entropy_access;
    char *plugin_name;
    /* token */
    char *id;
    char *display_name;
    char *role;
    char *type;
    char *entity_alias;
    char *mode;
    char *method;               /* login -method */
    int64_t ttl;
    int64_t explicit_max_ttl;
    int64_t period;
    int64_t increment;
    int64_t use_limit;
    bool renewable;
    bool orphan;
    bool no_default_policy;
    bool accessor;
    bool self;
    struct strvec metadata;
    struct strvec policies;
    /* lease */
    bool prefix;
    bool sync;
    /* operator */
    int64_t key_shares;
    int64_t key_threshold;
    bool status;
    bool reset;

    uint64_t seen;              /* bit i: flag i of cli.c's table given */
    enum cli_format format;
    struct strvec args;         /* positional arguments */
};

/* One run of one command. */
struct cli {
    struct cli_opts o;
    struct cli_client client; /* valid once cli__need_client returned 0 */
    bool have_client;
    bool stdin_used;          /* "-" may be read once per run */
};

/* A row of a command table; a row with run == NULL ends the table. */
struct cli_command {
    const char *words[3]; /* "kv", "metadata", "get"; unused words NULL */
    int (*run)(struct cli *ctx);
    const char *const *flags; /* the non-global flags it takes */
    const char *help;         /* printed for -h (stdout) */
    bool raw_ok;              /* only `read` takes -format=raw */
};

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
    "  -ca-cert=<string>, -tls-skip-verify\n"                                \
    "      TLS settings ($VAULT_CACERT, $VAULT_SKIP_VERIFY).\n"              \
    "\n"                                                                     \
    "The token comes from $COFFER_TOKEN, $VAULT_TOKEN or ~/.vault-token.\n"

/* ---- options (cli.c) -------------------------------------------------- */

/* Fills o with the defaults; release with cli__opts_release(). */
void cli__opts_init(struct cli_opts *o);
/* Frees (and wipes) every string o holds. */
void cli__opts_release(struct cli_opts *o);
/*
 * Parses flags and positional arguments with Go's flag syntax (-f, --f,
 * -f=v, -f v) for a command allowing the `allowed` flags (NULL-ended) and
 * the global ones. Returns 0, or COFFER_EINVAL with Go's flag error in err.
 */
int cli__parse_args(struct cli_opts *o, const char *const *allowed,
                    int argc, char **argv, struct out *err);
/* True when flag -name was given on the command line. */
bool cli__opt_seen(const struct cli_opts *o, const char *name);

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
