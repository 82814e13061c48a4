/*
 * json_write.c - JSON text written straight into a buffer (json_write.h).
 */
#include "json_write.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void json_write_init(struct json_writer *w, struct buf *out)
{
    w->out = out;
    w->rc = 0;
    w->comma = false;
}

static void put(struct json_writer *w, const char *s, size_t n)
{
    if (w->rc == 0)
        w->rc = buf_append(w->out, s, n);
}

static void put_char(struct json_writer *w, char c)
{
    put(w, &c, 1);
}

/* Starts a value or member: the comma its predecessor needs. */
static void separate(struct json_writer *w)
{
    if (w->comma)
        put_char(w, ',');
    w->comma = true;
}

/*
 * Room for n more bytes written in place (w->out->ptr + len), or NULL
 * when n would pass the ceiling: the caller then goes through put(), and
 * buf_append reports the overflow.
 */
static char *room(struct json_writer *w, size_t n)
{
    struct buf *b = w->out;

    if (w->rc != 0 || n > b->max || b->len > b->max - n)
        return NULL;
    buf_reserve(b, b->len + n);
    return b->ptr + b->len;
}

static void commit(struct json_writer *w, char *end)
{
    struct buf *b = w->out;

    b->len = (size_t)(end - b->ptr);
    b->ptr[b->len] = '\0';
}

/* The bytes c takes inside quotes: itself, a short escape or \u00XX. */
static size_t quoted_width(unsigned char c)
{
    if (c >= 32 && c != '"' && c != '\\')
        return 1;
    return strchr("\"\\\b\f\n\r\t", c) != NULL ? 2 : 6;
}

/*
 * cJSON's escapes: the two that JSON requires, the five short forms, and
 * \u00XX for the other control bytes; everything else (UTF-8 included)
 * as it is. Measured first, then written in place.
 */
static void put_quoted(struct json_writer *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    static const char shorts[] = "\"\\\b\f\n\r\t", letters[] = "\"\\bfnrt";
    size_t n = 2;
    char *o;

    for (const char *p = s; *p != '\0'; p++)
        n += quoted_width((unsigned char)*p);
    o = room(w, n);
    if (o == NULL) {
        if (w->rc == 0) { /* past the ceiling: as buf_append would */
            buf_release(w->out);
            w->rc = COFFER_ETOOBIG;
        }
        return;
    }
    *o++ = '"';
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        size_t width = quoted_width(c);
        if (width == 1) {
            *o++ = (char)c;
        } else if (width == 2) {
            *o++ = '\\';
            *o++ = letters[strchr(shorts, c) - shorts];
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 0x0f];
            o += 6;
        }
    }
    *o++ = '"';
    commit(w, o);
}

void json_write_key(struct json_writer *w, const char *key)
{
    separate(w);
    put_quoted(w, key);
    put_char(w, ':');
    w->comma = false; /* the value follows the colon directly */
}

void json_write_open(struct json_writer *w, char brace)
{
    separate(w);
    put_char(w, brace);
    w->comma = false;
}

void json_write_close(struct json_writer *w, char brace)
{
    put_char(w, brace);
    w->comma = true;
}

void json_write_string(struct json_writer *w, const char *s)
{
    separate(w);
    put_quoted(w, s != NULL ? s : "");
}

static void put_integer(struct json_writer *w, long long v)
{
    char text[24], *p = text + sizeof(text);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                                 : (unsigned long long)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        *--p = '-';
    put(w, p, (size_t)(text + sizeof(text) - p));
}

/* cJSON 1.7.15's print_number: 15 digits unless they lose the value. */
static void put_number(struct json_writer *w, double d)
{
    char text[32];
    double back;
    int n;

    if (isnan(d) || isinf(d)) {
        put(w, "null", 4);
        return;
    }
    /* An integer below 10^15 is what %1.15g prints, without its cost
     * (-0 excepted: %g keeps the sign). */
    if (fabs(d) < 1e15 && d == (double)(long long)d &&
        !(d == 0 && signbit(d))) {
        put_integer(w, (long long)d);
        return;
    }
    n = snprintf(text, sizeof(text), "%1.15g", d);
    back = strtod(text, NULL);
    /* cJSON's compare_double: equal within the larger's epsilon */
    if (fabs(back - d) > fmax(fabs(back), fabs(d)) * DBL_EPSILON)
        n = snprintf(text, sizeof(text), "%1.17g", d);
    put(w, text, (size_t)n);
}

void json_write_number(struct json_writer *w, double d)
{
    separate(w);
    put_number(w, d);
}

void json_write_bool(struct json_writer *w, bool b)
{
    separate(w);
    put(w, b ? "true" : "false", b ? 4 : 5);
}

void json_write_null(struct json_writer *w)
{
    separate(w);
    put(w, "null", 4);
}

void json_write_raw(struct json_writer *w, const char *text)
{
    separate(w);
    if (text != NULL)
        put(w, text, strlen(text));
}

void json_write_value(struct json_writer *w, const cJSON *v)
{
    const cJSON *it;

    if (v == NULL) {
        json_write_null(w);
        return;
    }
    switch (v->type & 0xff) {
    case cJSON_False:
        json_write_bool(w, false);
        break;
    case cJSON_True:
        json_write_bool(w, true);
        break;
    case cJSON_Number:
        json_write_number(w, v->valuedouble);
        break;
    case cJSON_String:
        json_write_string(w, v->valuestring);
        break;
    case cJSON_Raw:
        json_write_raw(w, v->valuestring);
        break;
    case cJSON_Array:
    case cJSON_Object:
        json_write_open(w, cJSON_IsArray(v) ? '[' : '{');
        cJSON_ArrayForEach(it, v) {
            if (cJSON_IsObject(v))
                json_write_key(w, it->string != NULL ? it->string : "");
            json_write_value(w, it);
        }
        json_write_close(w, cJSON_IsArray(v) ? ']' : '}');
        break;
    default: /* cJSON_NULL and cJSON_Invalid both print as null */
        json_write_null(w);
    }
}

void json_write_kv_string(struct json_writer *w, const char *key,
                          const char *s)
{
    json_write_key(w, key);
    json_write_string(w, s);
}

void json_write_kv_number(struct json_writer *w, const char *key, double d)
{
    json_write_key(w, key);
    json_write_number(w, d);
}
