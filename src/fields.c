/*
 * fields.c - typed access to request data (see fields.h).
 */
#include "fields.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *field(const cJSON *data, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, name);

    return cJSON_IsNull(v) ? NULL : v;
}

static int invalid(struct response *resp, const cJSON *v, const char *name,
                   const char *reason)
{
    char *shown = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);

    response_error(resp, 400,
                   "Field validation failed: error converting input %.200s "
                   "for field \"%s\": %s",
                   shown ? shown : v->valuestring, name, reason);
    free(shown);
    return -1;
}

int field_string(const cJSON *data, const char *name, const char **out,
                 struct response *resp)
{
    const cJSON *v = field(data, name);

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!cJSON_IsString(v))
        return invalid(resp, v, name, "expected a string");
    *out = v->valuestring;
    return 0;
}

int field_duration(const cJSON *data, const char *name, int64_t *out,
                   bool *given, struct response *resp)
{
    const cJSON *v = field(data, name);
    struct errbuf why;

    *given = v != NULL;
    if (v == NULL)
        return 0;
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble < 0 || isnan(v->valuedouble))
            return invalid(resp, v, name, "negative durations are invalid");
        *out = (int64_t)v->valuedouble;
        return 0;
    }
    if (!cJSON_IsString(v))
        return invalid(resp, v, name, "expected a duration");
    if (duration_parse(v->valuestring, out, &why) != 0)
        return invalid(resp, v, name, why.msg);
    return 0;
}

int field_bool(const cJSON *data, const char *name, bool *out, bool *given,
               struct response *resp)
{
    const cJSON *v = field(data, name);

    *given = v != NULL;
    if (v == NULL)
        return 0;
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    if (cJSON_IsString(v) && bool_parse(v->valuestring, out) == 0)
        return 0;
    return invalid(resp, v, name, "cannot parse as a bool");
}

int field_int(const cJSON *data, const char *name, int64_t *out, bool *given,
              struct response *resp)
{
    const cJSON *v = field(data, name);

    *given = v != NULL;
    if (v == NULL)
        return 0;
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble)) {
        *out = (int64_t)v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v) && int64_parse(v->valuestring, out) == 0)
        return 0;
    return invalid(resp, v, name, "cannot parse as an integer");
}

static void push_trimmed(struct strvec *out, const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n > 0)
        strvec_push_owned(out, xstrndup(s, n));
}

int field_strlist(const cJSON *data, const char *name, struct strvec *out,
                  bool *given, struct response *resp)
{
    const cJSON *v = field(data, name);
    const cJSON *it;

    *given = v != NULL;
    if (v == NULL)
        return 0;
    if (cJSON_IsString(v)) {
        const char *p = v->valuestring;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            push_trimmed(out, p, n);
            if (comma == NULL)
                break;
            p = comma + 1;
        }
        return 0;
    }
    if (!cJSON_IsArray(v))
        return invalid(resp, v, name, "expected a list or a comma-separated "
                                      "string");
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsString(it))
            return invalid(resp, v, name, "list entries must be strings");
        push_trimmed(out, it->valuestring, strlen(it->valuestring));
    }
    return 0;
}

int field_kvmap(const cJSON *data, const char *name, cJSON **out,
                struct response *resp)
{
    const cJSON *v = field(data, name);
    const cJSON *it;

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
        return invalid(resp, v, name, "expected a map of strings");
    *out = cJSON_CreateObject();
    cJSON_ArrayForEach(it, v) {
        const char *eq;
        if (cJSON_IsObject(v) && cJSON_IsString(it)) {
            cJSON_AddStringToObject(*out, it->string, it->valuestring);
            continue;
        }
        if (cJSON_IsArray(v) && cJSON_IsString(it) &&
            (eq = strchr(it->valuestring, '=')) != NULL) {
            char *k = xstrndup(it->valuestring,
                               (size_t)(eq - it->valuestring));
            cJSON_AddStringToObject(*out, k, eq + 1);
            free(k);
            continue;
        }
        cJSON_Delete(*out);
        *out = NULL;
        return invalid(resp, v, name, "expected a map of strings");
    }
    return 0;
}
