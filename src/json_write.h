/*
 * json_write.h - JSON text written straight into a buffer.
 *
 * Owns: producing JSON text without building a cJSON tree first, for the
 * hot paths that emit one document per request (audit entries). The text
 * is byte for byte what cJSON_PrintUnformatted gives for the same tree
 * (same escapes, same number formatting), so a reader, a test or a client
 * cannot tell which one wrote it; json_write_value writes a cJSON tree
 * that way too.
 *
 * Commas are the writer's business: a single flag remembers whether the
 * next member or element needs one, so callers only say key, value, open
 * and close. The first failure (the buffer's ceiling) sticks in rc and
 * makes the rest no-ops; check it once at the end.
 */
#ifndef COFFER_JSON_WRITE_H
#define COFFER_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"

struct json_writer {
    struct buf *out;
    int rc;     /* 0, or the first buf error (COFFER_ETOOBIG) */
    bool comma; /* a value was written at this level: the next needs ',' */
};

void json_write_init(struct json_writer *w, struct buf *out);

/* A member name; the value written next belongs to it. */
void json_write_key(struct json_writer *w, const char *key);
/* '{' or '[' and the matching close. */
void json_write_open(struct json_writer *w, char brace);
void json_write_close(struct json_writer *w, char brace);

void json_write_string(struct json_writer *w, const char *s);
void json_write_number(struct json_writer *w, double d);
void json_write_bool(struct json_writer *w, bool b);
void json_write_null(struct json_writer *w);
/* Text that is already JSON (a cJSON_Raw literal), verbatim. */
void json_write_raw(struct json_writer *w, const char *text);
/* A whole tree, as cJSON_PrintUnformatted would print it. */
void json_write_value(struct json_writer *w, const cJSON *v);

/*
 * d as cJSON 1.7.15's print_number writes it (15 significant digits unless
 * they lose the value, then 17; "null" for NaN and infinities) into out,
 * NUL-terminated; returns the length.
 */
#define JSON_NUMBER_MAX 32
size_t json_format_number(double d, char out[JSON_NUMBER_MAX]);

/* key + value in one call, for the common members. */
void json_write_kv_string(struct json_writer *w, const char *key,
                          const char *s);
void json_write_kv_number(struct json_writer *w, const char *key, double d);

#endif
