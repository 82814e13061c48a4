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

/* Bytes cJSON escapes: the control bytes, '"' and '\\'. */
static const bool needs_escape[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1,
    [0x06] = 1, [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1,
    [0x0c] = 1, [0x0d] = 1, [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1,
    [0x12] = 1, [0x13] = 1, [0x14] = 1, [0x15] = 1, [0x16] = 1, [0x17] = 1,
    [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1, [0x1c] = 1, [0x1d] = 1,
    [0x1e] = 1, [0x1f] = 1, ['"'] = 1, ['\\'] = 1,
};

/* The escape of a byte needs_escape marks, into o; its length. */
static size_t put_escape(char *o, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    static const char shorts[] = "\"\\\b\f\n\r\t", letters[] = "\"\\bfnrt";
    const char *at = strchr(shorts, c);

    o[0] = '\\';
    if (at != NULL) {
        o[1] = letters[at - shorts];
        return 2;
    }
    memcpy(o + 1, "u00", 3);
    o[4] = hex[c >> 4];
    o[5] = hex[c & 0x0f];
    return 6;
}

/*
 * cJSON's escapes: the two that JSON requires, the five short forms, and
 * \u00XX for the other control bytes; everything else (UTF-8 included)
 * as it is. Written in place with room for the worst case (six bytes per
 * input byte), runs of plain bytes copied whole.
 */
static void put_quoted(struct json_writer *w, const char *s)
{
    size_t n = strlen(s);
    const char *run = s, *end = s + n;
    char *o = room(w, 6 * n + 2);

    if (o == NULL) { /* near the ceiling: the exact size decides */
        size_t exact = 2;
        for (const char *p = s; p < end; p++)
            exact += needs_escape[(unsigned char)*p]
                         ? put_escape((char[6]){0}, (unsigned char)*p)
                         : 1;
        o = room(w, exact);
    }
    if (o == NULL) {
        if (w->rc == 0) { /* past the ceiling: as buf_append would */
            buf_release(w->out);
            w->rc = COFFER_ETOOBIG;
        }
        return;
    }
    *o++ = '"';
    for (const char *p = s; p < end; p++) {
        if (!needs_escape[(unsigned char)*p])
            continue;
        memcpy(o, run, (size_t)(p - run));
        o += p - run;
        o += put_escape(o, (unsigned char)*p);
        run = p + 1;
    }
    memcpy(o, run, (size_t)(end - run));
    o += end - run;
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

/* v in decimal at the end of text[24]; returns where it starts. */
static char *format_integer(char text[24], long long v)
{
    char *p = text + 23;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                                 : (unsigned long long)v;

    *p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        *--p = '-';
    return p;
}

size_t json_format_number(double d, char out[JSON_NUMBER_MAX])
{
    char digits[24];
    double back;
    int n;

    if (isnan(d) || isinf(d)) {
        memcpy(out, "null", 5);
        return 4;
    }
    /* An integer below 10^15 is what %1.15g prints, without its cost
     * (-0 excepted: %g keeps the sign). */
    if (fabs(d) < 1e15 && d == (double)(long long)d &&
        !(d == 0 && signbit(d))) {
        const char *p = format_integer(digits, (long long)d);
        size_t len = strlen(p);
        memcpy(out, p, len + 1);
        return len;
    }
    n = snprintf(out, JSON_NUMBER_MAX, "%1.15g", d);
    back = strtod(out, NULL);
    /* cJSON's compare_double: equal within the larger's epsilon */
    if (fabs(back - d) > fmax(fabs(back), fabs(d)) * DBL_EPSILON)
        n = snprintf(out, JSON_NUMBER_MAX, "%1.17g", d);
    return (size_t)n;
}

void json_write_number(struct json_writer *w, double d)
{
    char text[JSON_NUMBER_MAX];
    size_t n = json_format_number(d, text);

    separate(w);
    put(w, text, n);
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
