/*
 * util.h - small shared helpers: string vectors, durations, time formats,
 * hex digits, UTF-8 encoding and whole-file reading.
 *
 * Durations follow Vault's parseutil: an integer is seconds, a string of
 * digits is seconds, otherwise a Go duration ("1h30m", "500ms", "90s") or
 * whole days ("7d"). Sub-second parts are truncated to whole seconds.
 */
#ifndef COFFER_UTIL_H
#define COFFER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

/* A growable vector of owned strings. */
struct strvec {
    char **v;
    size_t n;
    size_t cap;
};

void strvec_init(struct strvec *sv);
/* Frees every string and the array. */
void strvec_release(struct strvec *sv);
/* Appends a copy of s. */
void strvec_push(struct strvec *sv, const char *s);
/* Appends s, taking ownership of it. */
void strvec_push_owned(struct strvec *sv, char *s);
void strvec_sort(struct strvec *sv);
/* Removes adjacent duplicates (sort first). */
void strvec_uniq(struct strvec *sv);
bool strvec_contains(const struct strvec *sv, const char *s);

/*
 * Parses a duration into whole seconds. Accepts "", "0", "300", "5m",
 * "1h30m", "1.5h", "500ms", "7d". Negative values are refused.
 * Returns 0, or COFFER_EINVAL with a reason in err.
 */
int duration_parse(const char *s, int64_t *secs, struct errbuf *err);

/*
 * Formats seconds like Go's time.Duration.String(): "0s", "45s", "1m30s",
 * "1h0m0s". Writes at most n bytes including the NUL.
 */
void duration_format_go(int64_t secs, char *out, size_t n);
/* Formats seconds without zero units, as Vault's warnings do: "1h", "1h30m". */
void duration_format_short(int64_t secs, char *out, size_t n);

/* Wall-clock time with nanoseconds. */
struct timespec time_now(void);
/* Monotonic seconds, for deadlines and intervals. */
double time_mono(void);
/* Wall-clock milliseconds since the epoch. */
int64_t time_unix_ms(void);
/*
 * The absolute CLOCK_REALTIME time `seconds` from now (<= 0: now), for
 * pthread_cond_timedwait; pair it with a time_mono() deadline loop.
 */
struct timespec time_deadline(double seconds);
/* RFC3339 in UTC with nanoseconds: "2024-05-01T10:00:00.123456789Z". */
void time_format_rfc3339(struct timespec ts, char *out, size_t n);
/* Parses an RFC3339 string back; returns 0 or COFFER_EINVAL. */
int time_parse_rfc3339(const char *s, struct timespec *out);

/* Parses Go strconv.ParseBool values: 1 t T TRUE true True 0 f F ... */
int bool_parse(const char *s, bool *out);
/* Parses a base-10 int64 with nothing trailing. 0 or COFFER_EINVAL. */
int int64_parse(const char *s, int64_t *out);

bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);

/* The value 0..15 of the hex digit c (either case), or -1. */
int hex_value(int c);

/* The most bytes utf8_encode writes. */
#define UTF8_MAX 4

/*
 * Writes code point cp (at most 0x10FFFF; callers have already turned
 * surrogates into U+FFFD where they must) as UTF-8 into out, which holds
 * UTF8_MAX bytes, and returns the number of bytes written (1..4). No NUL
 * is added.
 */
size_t utf8_encode(uint32_t cp, char out[UTF8_MAX]);

struct buf;

/*
 * Why file_read failed, for the caller to put in its own words (the CLI
 * speaks Go's os errors, the config loader its own): op is "open" or
 * "read" with the errno in errnum, or "size" (errnum 0) when the file
 * did not fit the buffer's ceiling.
 */
struct file_error {
    const char *op;
    int errnum;
};

/*
 * Appends the whole file at path to out (borrowed); out's ceiling
 * (buf_init) bounds how much is read. The read chunk is wiped: files read
 * this way hold keys and tokens. Returns 0; COFFER_ENOTFOUND (open failed
 * with ENOENT) or COFFER_EIO with why filled in; or COFFER_ETOOBIG (why->op
 * "size") when the file passes the ceiling, and out has then been released
 * (buf_append's rule). Blocks on the file system.
 */
int file_read(const char *path, struct buf *out, struct file_error *why);

/* Where the built-in Lua scripts are (a new string, never NULL). */
char *lua_dir_locate(void);

/*
 * The value of a command-line flag: "-name=value" or "--name=value" gives
 * "value"; anything else NULL.
 */
const char *flag_value(const char *arg, const char *name);

#endif
