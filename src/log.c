/*
 * log.c - leveled logging to stderr, one line per call.
 *
 * Lines are written with a single fprintf on a locked stream so that lines
 * from concurrent worker threads never interleave. A message that starts
 * with "<module>: " (the convention of every caller: "lease: ...") has
 * that word as its module in the JSON format.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

_Atomic enum log_level log_current_level = LOG_LEVEL_INFO;

static enum log_level configured_level = LOG_LEVEL_INFO;
static atomic_int current_format = LOG_FORMAT_STANDARD;
static _Thread_local char request_id[64];

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

void log_set_level(enum log_level level)
{
    log_current_level = level;
}

void log_set_configured_level(enum log_level level)
{
    configured_level = level;
    log_current_level = level;
}

enum log_level log_configured_level(void)
{
    return configured_level;
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level < sizeof(level_names) / sizeof(level_names[0])
               ? level_names[level]
               : "info";
}

void log_set_format(enum log_format format)
{
    atomic_store(&current_format, (int)format);
}

int log_format_parse(const char *name)
{
    if (strcmp(name, "standard") == 0)
        return LOG_FORMAT_STANDARD;
    if (strcmp(name, "json") == 0)
        return LOG_FORMAT_JSON;
    return -1;
}

void log_set_request_id(const char *id)
{
    snprintf(request_id, sizeof(request_id), "%s", id != NULL ? id : "");
}

int log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    }
    if (strcmp(name, "warning") == 0)
        return LOG_LEVEL_WARN;
    return -1;
}

/* Length of a leading "word: " module tag in msg, 0 if there is none. */
static size_t module_len(const char *msg)
{
    size_t n = 0;

    while (n < 24 && ((msg[n] >= 'a' && msg[n] <= 'z') || msg[n] == '_' ||
                      (msg[n] >= '0' && msg[n] <= '9')))
        n++;
    return n > 0 && msg[n] == ':' && msg[n + 1] == ' ' ? n : 0;
}

static void write_json(const char *stamp, enum log_level level,
                       const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    size_t mod = module_len(msg);
    char module[32];
    char *line;

    snprintf(module, sizeof(module), "%.*s", (int)mod, msg);
    cJSON_AddStringToObject(o, "@timestamp", stamp);
    cJSON_AddStringToObject(o, "@level", level_names[level]);
    cJSON_AddStringToObject(o, "@module", mod > 0 ? module : "core");
    cJSON_AddStringToObject(o, "@message", mod > 0 ? msg + mod + 2 : msg);
    if (request_id[0] != '\0')
        cJSON_AddStringToObject(o, "request_id", request_id);
    line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (line == NULL)
        return;
    flockfile(stderr);
    fprintf(stderr, "%s\n", line);
    funlockfile(stderr);
    cJSON_free(line);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char msg[2048];
    char stamp[80];
    char secs[40];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof(stamp), "%s.%03ldZ", secs, ts.tv_nsec / 1000000);
    if (atomic_load(&current_format) == LOG_FORMAT_JSON) {
        write_json(stamp, level, msg);
        return;
    }
    flockfile(stderr);
    if (request_id[0] != '\0')
        fprintf(stderr, "%s [%s] %s request_id=%s\n", stamp,
                level_names[level], msg, request_id);
    else
        fprintf(stderr, "%s [%s] %s\n", stamp, level_names[level], msg);
    funlockfile(stderr);
}
