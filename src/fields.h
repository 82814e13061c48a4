/*
 * fields.h - typed access to request data for the C built-in backends.
 *
 * The same coercions as Vault's field schema (and as the Lua framework):
 * JSON null means "not supplied"; durations accept numbers and strings;
 * bools accept JSON bools and "true"/"1"/...; ints accept numbers and digit
 * strings; string lists accept a JSON list or a comma-separated string.
 *
 * Each getter returns 0 (with *given telling whether the field was there)
 * or -1 after setting Vault's 400 "Field validation failed" reply in resp.
 */
#ifndef COFFER_FIELDS_H
#define COFFER_FIELDS_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "request.h"
#include "util.h"

int field_string(const cJSON *data, const char *name, const char **out,
                 struct response *resp);
int field_duration(const cJSON *data, const char *name, int64_t *out,
                   bool *given, struct response *resp);
int field_bool(const cJSON *data, const char *name, bool *out, bool *given,
               struct response *resp);
int field_int(const cJSON *data, const char *name, int64_t *out, bool *given,
              struct response *resp);
/* Appends the entries, trimmed, skipping empty ones. */
int field_strlist(const cJSON *data, const char *name, struct strvec *out,
                  bool *given, struct response *resp);
/* A map of strings: a JSON object, or a list of "k=v" strings. */
int field_kvmap(const cJSON *data, const char *name, cJSON **out,
                struct response *resp);

#endif
