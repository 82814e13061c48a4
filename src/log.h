/*
 * log.h - leveled logging to stderr.
 *
 * The level is checked before any formatting happens. Never pass a token,
 * password, secret value or request body to these macros: log accessors,
 * request ids and paths instead.
 */
#ifndef COFFER_LOG_H
#define COFFER_LOG_H

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
    LOG_LEVEL_TRACE = 4,
};

enum log_format {
    LOG_FORMAT_STANDARD = 0, /* "<time> [level] message" */
    LOG_FORMAT_JSON = 1,     /* one object per line, Vault's @-keys */
};

/* Atomic: sys/loggers changes it while other threads log. */
extern _Atomic enum log_level log_current_level;

void log_set_level(enum log_level level);
/* The level the configuration asked for: what DELETE sys/loggers restores. */
void log_set_configured_level(enum log_level level);
enum log_level log_configured_level(void);
const char *log_level_name(enum log_level level);
void log_set_format(enum log_format format);
/* "standard" or "json"; returns -1 if unknown. */
int log_format_parse(const char *name);
/*
 * The id of the request this thread is serving, added to each line it
 * logs (copied; NULL clears it). Set by core.c around the pipeline.
 */
void log_set_request_id(const char *id);
/* Parses "error", "warn", "info", "debug", "trace"; returns -1 if unknown. */
int log_level_parse(const char *name);
void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                                                     \
    do {                                                                     \
        if ((lvl) <= log_current_level)                                      \
            log_write((lvl), __VA_ARGS__);                                   \
    } while (0)
#define log_error(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
