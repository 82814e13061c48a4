/*
 * cli_format.h - output formatting for the client commands (cli*.c).
 *
 * Owns: how responses look on the terminal, byte for byte like the Vault
 * CLI: the "Key  Value" tables (columns padded with 4 spaces, empty cells
 * shown as "n/a"), Go's %v rendering of JSON values, Go-style indented JSON
 * (sorted map keys, struct fields in the Go client's order), a YAML
 * rendering, warnings wrapped at 78 columns, and the "==== Title ===="
 * headers of the kv commands. It does not talk to the network or parse
 * arguments.
 *
 * Everything writes into a `struct out`: a buffer with a sticky error, so a
 * long chain of appends needs one check at the end instead of one per call.
 * Nothing here prints to a stream; callers write the finished text.
 *
 * Ownership: cJSON arguments are borrowed. Strings returned as `char *`
 * are new and the caller frees them with free().
 */
#ifndef COFFER_CLI_FORMAT_H
#define COFFER_CLI_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../buf.h"
#include "../util.h"

enum cli_format {
    CLI_FMT_TABLE = 1,
    CLI_FMT_JSON = 2,
    CLI_FMT_YAML = 3,
    CLI_FMT_RAW = 4,
};

/* Parses "table", "json", "yaml"/"yml", "raw" (case-insensitive). */
int cli_format_parse(const char *s, enum cli_format *out);

/* An output buffer whose first failed append sets err and stops it. */
struct out {
    struct buf b;
    int err; /* 0, or COFFER_ETOOBIG once the ceiling was reached */
};

void out_init(struct out *o);
/* Wipes and frees the content (it may hold secrets). */
void out_release(struct out *o);
void out_put(struct out *o, const char *s, size_t n);
void out_puts(struct out *o, const char *s);
void out_putc(struct out *o, char c);
void out_printf(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The column separator used for Key/Value rows, as Vault's "hopeDelim": a
 * byte that never appears in a secret that is valid UTF-8.
 */
#define FMT_DELIM "\x1f"

/*
 * Lays out `lines` as columns (ryanuber/columnize with Vault's settings):
 * each line is split on `delim`, cells are trimmed, empty cells become
 * "n/a", every column but the last is padded to its widest cell plus four
 * spaces. Writes the lines with a newline after each one.
 */
void fmt_columns(struct out *o, const struct strvec *lines, const char *delim);
/* Like fmt_columns after inserting a row of dashes under the header row. */
void fmt_table(struct out *o, const struct strvec *lines, const char *delim);

/* Vault's humanDuration: 3600 -> "1h", 90 -> "1m30s", 0 -> "0s". */
void fmt_human_duration(int64_t secs, char *out, size_t n);
/* True for keys Vault shows as durations: ttl, *_ttl, period, ... */
bool fmt_looks_like_duration(const char *key);

/* Appends a value as Go's fmt %v shows a decoded JSON value. */
void fmt_go_value(struct out *o, const cJSON *v);
/* Like fmt_go_value, but integers under duration-like keys are humanised. */
void fmt_go_field(struct out *o, const char *key, const cJSON *v);
/* Appends a list of strings as Go's %q shows a []string: ["a" "b"]. */
void fmt_go_quoted_list(struct out *o, const cJSON *list);

/*
 * Go's json.MarshalIndent(v, "", "  ") of a decoded JSON value: object keys
 * sorted, HTML characters escaped, numbers as the shortest exact form.
 */
void fmt_json(struct out *o, const cJSON *v, int depth);
/* The whole response envelope as the Go client's api.Secret marshals it. */
void fmt_json_secret(struct out *o, const cJSON *secret);
/* sys/seal-status merged with sys/leader, as `vault status` marshals it. */
void fmt_json_seal_status(struct out *o, const cJSON *seal,
                          const cJSON *leader);
/* The sys/mounts data as `vault secrets list -format=json` marshals it. */
void fmt_json_mounts(struct out *o, const cJSON *mounts);
/* A YAML rendering with sorted keys (what ghodss/yaml would print). */
void fmt_yaml(struct out *o, const cJSON *v);

/*
 * Writes the response envelope `secret` as Vault's Key/Value table: lease
 * rows, token_* rows for an auth block, then the data keys sorted. Nothing
 * is written when there is nothing to show.
 */
void fmt_secret_table(struct out *o, const cJSON *secret);
/* A Key/Value table of the members of an object (Vault's OutputMap). */
void fmt_map_table(struct out *o, const cJSON *obj);
/* The "Keys\n----\n..." listing of a list response's keys, sorted. */
void fmt_list_table(struct out *o, const cJSON *keys);
/*
 * Writes the warnings of a response as Vault does on stderr: a banner, then
 * each warning as "  * text" wrapped at 78 columns, then a blank line.
 */
void fmt_warnings(struct out *o, const cJSON *secret);

/* Wraps text at `width` columns with minimal raggedness (kr/text). */
void fmt_wrap(struct out *o, const char *text, size_t width, size_t pad);

/* "== Title ==" padded to a width (Vault's padEqualSigns); no newline. */
void fmt_pad_equals(struct out *o, const char *title, size_t total_len);
/* The header over a map: padded to the longest key plus 9. No newline. */
void fmt_map_header(struct out *o, const char *title, const cJSON *obj);

#endif
