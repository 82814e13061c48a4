/*
 * util.c - string vectors, durations, time formats, small parsers, hex
 * digits, UTF-8 encoding and whole-file reading.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"

/* ====================================================== string vectors == */

void strvec_init(struct strvec *sv)
{
    sv->v = NULL;
    sv->n = 0;
    sv->cap = 0;
}

void strvec_release(struct strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    strvec_init(sv);
}

void strvec_push_owned(struct strvec *sv, char *s)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap == 0 ? 8 : sv->cap * 2;
        sv->v = xrealloc(sv->v, sv->cap * sizeof(*sv->v));
    }
    sv->v[sv->n++] = s;
}

void strvec_push(struct strvec *sv, const char *s)
{
    strvec_push_owned(sv, xstrdup(s));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void strvec_sort(struct strvec *sv)
{
    if (sv->n > 1)
        qsort(sv->v, sv->n, sizeof(*sv->v), cmp_str);
}

void strvec_uniq(struct strvec *sv)
{
    size_t out = 0;

    for (size_t i = 0; i < sv->n; i++) {
        if (out > 0 && strcmp(sv->v[out - 1], sv->v[i]) == 0) {
            free(sv->v[i]);
            continue;
        }
        sv->v[out++] = sv->v[i];
    }
    sv->n = out;
}

bool strvec_contains(const struct strvec *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++) {
        if (strcmp(sv->v[i], s) == 0)
            return true;
    }
    return false;
}

/* =========================================================== durations == */

struct unit {
    const char *name;
    double secs;
};

/* Longest names first so "ms" is not read as "m" followed by "s". */
static const struct unit units[] = {
    {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ms", 1e-3},
    {"s", 1},     {"m", 60},    {"h", 3600},          {"d", 86400},
};

static const struct unit *match_unit(const char *p, size_t *len)
{
    const struct unit *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        size_t n = strlen(units[i].name);
        if (n > best_len && strncmp(p, units[i].name, n) == 0) {
            best = &units[i];
            best_len = n;
        }
    }
    *len = best_len;
    return best;
}

/*
 * Reads "12", "1.5", ".5" or "5." as Go's duration parser does: decimal
 * digits only, no sign, exponent or hex (strtod would take "1e3", "0x10").
 */
static int parse_decimal(const char *p, double *v, char **end)
{
    double whole = 0, scale = 1;
    int digits = 0;

    for (; isdigit((unsigned char)*p); p++, digits++)
        whole = whole * 10 + (*p - '0');
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++, digits++) {
            scale /= 10;
            whole += (*p - '0') * scale;
        }
    }
    *end = (char *)p;
    *v = whole;
    return digits > 0 ? 0 : COFFER_EINVAL;
}

/* Parses "1h30m", "1.5h", "500ms" (Go's time.ParseDuration plus "d"). */
static int parse_go_duration(const char *s, double *total, struct errbuf *err)
{
    const char *p = s;

    *total = 0;
    while (*p != '\0') {
        char *end = NULL;
        double v;
        size_t ulen;
        const struct unit *u;

        if (parse_decimal(p, &v, &end) != 0)
            goto bad;
        p = end;
        u = match_unit(p, &ulen);
        if (u == NULL) {
            errbuf_set(err, "time: missing unit in duration \"%s\"", s);
            return COFFER_EINVAL;
        }
        p += ulen;
        *total += v * u->secs;
    }
    return 0;
bad:
    errbuf_set(err, "time: invalid duration \"%s\"", s);
    return COFFER_EINVAL;
}

int duration_parse(const char *s, int64_t *secs, struct errbuf *err)
{
    double total = 0;
    int64_t whole;

    *secs = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0')
        return 0;
    if (*s == '-') {
        errbuf_set(err, "cannot parse duration: negative values are not "
                        "allowed");
        return COFFER_EINVAL;
    }
    if (*s == '+')
        s++;
    if (int64_parse(s, &whole) == 0) {
        *secs = whole;
        return 0;
    }
    if (parse_go_duration(s, &total, err) != 0)
        return COFFER_EINVAL;
    if (total > (double)INT64_MAX / 2) {
        errbuf_set(err, "time: invalid duration \"%s\"", s);
        return COFFER_EINVAL;
    }
    *secs = (int64_t)floor(total);
    return 0;
}

void duration_format_go(int64_t secs, char *out, size_t n)
{
    int64_t h = secs / 3600, m = (secs % 3600) / 60, s = secs % 60;

    if (h > 0)
        snprintf(out, n, "%lldh%lldm%llds", (long long)h, (long long)m,
                 (long long)s);
    else if (m > 0)
        snprintf(out, n, "%lldm%llds", (long long)m, (long long)s);
    else
        snprintf(out, n, "%llds", (long long)s);
}

void duration_format_short(int64_t secs, char *out, size_t n)
{
    int64_t h = secs / 3600, m = (secs % 3600) / 60, s = secs % 60;
    size_t used = 0;

    out[0] = '\0';
    if (secs == 0) {
        snprintf(out, n, "0s");
        return;
    }
    if (h > 0)
        used += (size_t)snprintf(out + used, n - used, "%lldh", (long long)h);
    if (m > 0 && used < n)
        used += (size_t)snprintf(out + used, n - used, "%lldm", (long long)m);
    if (s > 0 && used < n)
        snprintf(out + used, n - used, "%llds", (long long)s);
}

/* ================================================================ time == */

struct timespec time_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

int64_t time_unix_ms(void)
{
    struct timespec ts = time_now();

    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec time_deadline(double seconds)
{
    struct timespec ts = time_now();
    double whole, frac;

    if (seconds <= 0)
        return ts;
    frac = modf(seconds, &whole);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)(frac * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

double time_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void time_format_rfc3339(struct timespec ts, char *out, size_t n)
{
    struct tm tm;
    char date[32];

    gmtime_r(&ts.tv_sec, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%09ldZ", date, ts.tv_nsec);
}

int time_parse_rfc3339(const char *s, struct timespec *out)
{
    struct tm tm;
    const char *p;
    long nsec = 0;

    memset(&tm, 0, sizeof(tm));
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return COFFER_EINVAL;
    if (*p == '.') {
        long scale = 100000000;
        p++;
        while (isdigit((unsigned char)*p)) {
            nsec += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (strcmp(p, "Z") != 0)
        return COFFER_EINVAL;
    out->tv_sec = timegm(&tm);
    out->tv_nsec = nsec;
    return 0;
}

/* ============================================================= parsers == */

int bool_parse(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return COFFER_EINVAL;
}

int int64_parse(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (*s == '\0' || isspace((unsigned char)*s))
        return COFFER_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return COFFER_EINVAL;
    *out = v;
    return 0;
}

bool str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* ================================================== bytes and files == */

int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t utf8_encode(uint32_t cp, char out[UTF8_MAX])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Fills why; returns the code that goes with it. */
static int file_fail(struct file_error *why, const char *op, int errnum)
{
    why->op = op;
    why->errnum = errnum;
    if (strcmp(op, "size") == 0)
        return COFFER_ETOOBIG;
    return errnum == ENOENT && strcmp(op, "open") == 0 ? COFFER_ENOTFOUND
                                                       : COFFER_EIO;
}

int file_read(const char *path, struct buf *out, struct file_error *why)
{
    char chunk[8192];
    size_t n;
    FILE *f;
    int rc = 0;

    why->op = "";
    why->errnum = 0;
    f = fopen(path, "rbe"); /* e: O_CLOEXEC, nothing leaks to a child */
    if (f == NULL)
        return file_fail(why, "open", errno);
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(out, chunk, n) != 0)
            rc = file_fail(why, "size", 0);
    }
    if (rc == 0 && ferror(f))
        rc = file_fail(why, "read", errno != 0 ? errno : EIO);
    crypto_wipe(chunk, sizeof(chunk));
    if (fclose(f) != 0 && rc == 0)
        rc = file_fail(why, "read", errno);
    return rc;
}

/* dir + "/" + rel when it is a readable directory, else NULL. */
static char *readable_under(const char *dir, const char *rel)
{
    size_t len = strlen(dir) + strlen(rel) + 2;
    char *path = xmalloc(len);

    snprintf(path, len, "%s/%s", dir, rel);
    if (access(path, R_OK | X_OK) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

/*
 * Coffer's lua/ folder: $COFFER_LUA_DIR, else the installed runtime
 * <prefix>/share/coffer/lua for a binary at <prefix>/bin/coffer (make
 * install), else lua/ next to the binary's parent directory (the build
 * tree: build/coffer -> lua/), else "lua" in the working directory. The
 * installed layout is tried first so that an installed binary never picks
 * up an unrelated <prefix>/lua.
 */
char *lua_dir_locate(void)
{
    const char *env = getenv("COFFER_LUA_DIR");
    char exe[PATH_MAX];
    char *slash;
    ssize_t n;
    char *dir;

    if (env != NULL && env[0] != '\0')
        return xstrdup(env);
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return xstrdup("lua");
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash != NULL)
        *slash = '\0';
    dir = readable_under(exe, "../share/coffer/lua");
    if (dir == NULL)
        dir = readable_under(exe, "../lua");
    return dir != NULL ? dir : xstrdup("lua");
}

const char *flag_value(const char *arg, const char *name)
{
    size_t n = strlen(name);

    while (*arg == '-')
        arg++;
    if (strncmp(arg, name, n) == 0 && arg[n] == '=')
        return arg + n + 1;
    return NULL;
}
