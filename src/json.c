/*
 * json.c - a strict JSON reader that keeps numbers exact.
 *
 * Owns the grammar (RFC 8259, with Go's choices where it leaves one; see
 * json.h) and the number-literal rules. A recursive-descent parser builds
 * the cJSON tree directly; strings are decoded in two passes (measure,
 * then write) so each costs one allocation of the exact size.
 *
 * Chapters: helpers (wiping); members; strings; numbers; values; entry
 * point; comparing numbers.
 */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "json_write.h"
#include "util.h"

struct parser {
    const char *start;
    const char *p;
    const char *end;
    int max_depth;
    struct errbuf *err;
    bool failed;
};

/* ============================================================ helpers == */

static void fail_at(struct parser *ps, const char *at, const char *why)
{
    if (ps->failed)
        return;
    ps->failed = true;
    if (ps->err != NULL)
        errbuf_set(ps->err, "invalid JSON at byte %zu: %s",
                   (size_t)(at - ps->start), why);
}

static void skip_space(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
                               *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static void wipe_tree(cJSON *item);

/* Wipes item's own value and key, then its children. */
static void wipe_item(cJSON *item)
{
    if (item->valuestring != NULL)
        crypto_wipe(item->valuestring, strlen(item->valuestring));
    if (item->string != NULL)
        crypto_wipe(item->string, strlen(item->string));
    wipe_tree(item->child);
}

/* Wipes item and every sibling after it. */
static void wipe_tree(cJSON *item)
{
    for (; item != NULL; item = item->next)
        wipe_item(item);
}

void json_delete_wiped(cJSON *item)
{
    if (item == NULL)
        return;
    wipe_item(item);
    cJSON_Delete(item);
}

/* ============================================================ members == */

const char *json_get_str(const cJSON *obj, const char *key, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) ? v->valuestring : def;
}

/* Toward zero, clamped: converting an out-of-range double is undefined. */
static int64_t double_to_int64(double d)
{
    if (d >= 9223372036854775807.0)
        return INT64_MAX;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)d;
}

int64_t json_get_int(const cJSON *obj, const char *key, int64_t def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsNumber(v) ? double_to_int64(v->valuedouble) : def;
}

bool json_get_bool(const cJSON *obj, const char *key, bool def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* ============================================================ strings == */

static int hex4(const char *p, const char *end)
{
    int v = 0, i, c;

    if (end - p < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        c = hex_value((unsigned char)p[i]);
        if (c < 0)
            return -1;
        v = v << 4 | c;
    }
    return v;
}

/*
 * Length of the well-formed UTF-8 sequence at p (Go's utf8.DecodeRune:
 * no overlongs, no surrogates, nothing past U+10FFFF), or 0 if the byte
 * at p does not start one.
 */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n, i;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if (p[0] == 0xE0)
        lo = 0xA0;
    else if (p[0] == 0xED)
        hi = 0x9F;
    else if (p[0] == 0xF0)
        lo = 0x90;
    else if (p[0] == 0xF4)
        hi = 0x8F;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    }
    return n;
}

/* Writes code point cp as UTF-8 at out (if not NULL); returns its size. */
static size_t put_utf8(char *out, uint32_t cp)
{
    char b[UTF8_MAX];
    size_t n = utf8_encode(cp, b);

    if (out != NULL)
        memcpy(out, b, n);
    return n;
}

/* Decodes \uXXXX (and a following low surrogate) at p; 0 on bad hex. */
static size_t unicode_escape(const char *p, const char *end, uint32_t *cp)
{
    int hi = hex4(p + 2, end), lo;

    if (hi < 0)
        return 0;
    *cp = (uint32_t)hi;
    if (hi < 0xD800 || hi > 0xDFFF)
        return 6;
    *cp = 0xFFFD; /* a lone surrogate, as Go decodes it */
    if (hi > 0xDBFF || end - p < 12 || p[6] != '\\' || p[7] != 'u')
        return 6;
    lo = hex4(p + 8, end);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return 6;
    *cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
    return 12;
}

size_t json_decode_string(const char *p, const char *end, char *out,
                          const char **stop, const char **why)
{
    size_t n = 0, k;
    uint32_t cp;
    char c;

    *why = NULL;
    while (p < end && *p != '"') {
        c = *p;
        if ((unsigned char)c < 0x20) {
            *why = "control character in string";
            break;
        }
        if (c != '\\') {
            k = utf8_len((const unsigned char *)p, (const unsigned char *)end);
            if (k == 0) {
                n += put_utf8(out != NULL ? out + n : NULL, 0xFFFD);
                p++;
            } else {
                if (out != NULL)
                    memcpy(out + n, p, k);
                n += k;
                p += k;
            }
            continue;
        }
        if (end - p < 2) {
            *why = "unterminated string";
            break;
        }
        switch (p[1]) {
        case '"': case '\\': case '/':
            cp = (unsigned char)p[1]; k = 2; break;
        case 'b': cp = '\b'; k = 2; break;
        case 'f': cp = '\f'; k = 2; break;
        case 'n': cp = '\n'; k = 2; break;
        case 'r': cp = '\r'; k = 2; break;
        case 't': cp = '\t'; k = 2; break;
        case 'u':
            k = unicode_escape(p, end, &cp);
            if (k == 0)
                *why = "invalid \\u escape";
            break;
        default:
            k = 0;
            *why = "invalid escape in string";
        }
        if (*why == NULL && cp == 0)
            *why = "strings containing \\u0000 are not supported";
        if (*why != NULL)
            break;
        n += put_utf8(out != NULL ? out + n : NULL, cp);
        p += k;
    }
    if (*why == NULL && p >= end)
        *why = "unterminated string";
    *stop = p;
    return *why != NULL ? SIZE_MAX : n;
}

/* json_decode_string at ps->p; a failure fails the parser. */
static size_t decode_string(struct parser *ps, char *out, const char **stop)
{
    const char *why = NULL;
    size_t n = json_decode_string(ps->p, ps->end, out, stop, &why);

    if (n == SIZE_MAX)
        fail_at(ps, *stop, why);
    return n;
}

/*
 * Parses a string at ps->p (on the opening quote). Returns a new
 * NUL-terminated copy (the caller wipes and frees it, see free_text), or
 * NULL (parser failed). cJSON copies it again when it makes the item,
 * which keeps every allocation on the C side xmalloc (STYLE 25).
 */
static char *parse_string(struct parser *ps)
{
    const char *stop = NULL;
    size_t n;
    char *s;

    ps->p++;
    n = decode_string(ps, NULL, &stop);
    if (n == SIZE_MAX)
        return NULL;
    s = xmalloc(n + 1);
    decode_string(ps, s, &stop);
    s[n] = '\0';
    ps->p = stop + 1;
    return s;
}

/* Request text may be secret: wipe decoded copies before freeing them. */
static void free_text(char *s)
{
    if (s == NULL)
        return;
    crypto_wipe(s, strlen(s));
    free(s);
}

/* ============================================================ numbers == */

size_t json_scan_number(const char *s, const char *end)
{
    const char *p = s;

    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return 0;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    return (size_t)(p - s);
}

bool json_number_literal(const char *s, size_t len)
{
    return len > 0 && json_scan_number(s, s + len) == len;
}

/*
 * A plain integer literal of at most 15 digits (no "-0", no leading
 * zero) is exact: %1.15g prints it back digit for digit. The common case
 * (TTLs, versions, counts) skips json_number_exact's print round trip,
 * which costs more than the rest of parsing a small document.
 */
static bool small_integer(const char *s, size_t len, double *d)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0, digits = len - i;
    int64_t v = 0;

    if (digits == 0 || digits > 15 || (s[i] == '0' && (digits > 1 || i)))
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *d = s[0] == '-' ? -(double)v : (double)v;
    return true;
}

/* The general test: cJSON prints the double back as the same text. */
static bool round_trip_exact(const char *lit, size_t len, double *d)
{
    char text[64], printed[JSON_NUMBER_MAX];
    double v;

    /* cJSON never prints more than 25 characters for a number. */
    if (len >= sizeof(text))
        return false;
    memcpy(text, lit, len);
    text[len] = '\0';
    v = strtod(text, NULL);
    if (!isfinite(v))
        return false;
    /* Lua keeps integral values as integers, which have no "1.0" or
       "1e3" spelling and no negative zero. */
    if (v == floor(v) &&
        (strpbrk(text, ".eE") != NULL || (v == 0 && signbit(v))))
        return false;
    json_format_number(v, printed); /* cJSON's text, without its cost */
    if (strcmp(printed, text) != 0)
        return false;
    *d = v;
    return true;
}

bool json_number_exact(const char *lit, size_t len, double *d)
{
    return small_integer(lit, len, d) || round_trip_exact(lit, len, d);
}

cJSON *json_number_new(const char *lit, size_t len)
{
    double d;
    char *raw;
    cJSON *item;

    if (json_number_exact(lit, len, &d))
        return cJSON_CreateNumber(d);
    raw = xstrndup(lit, len);
    item = cJSON_CreateRaw(raw);
    free(raw); /* a number literal is no secret */
    return item;
}

/* ============================================================= values == */

static cJSON *parse_value(struct parser *ps, int depth);

struct member {
    cJSON *item;
    size_t pos;
};

static int member_cmp(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    int c = strcmp(x->item->string, y->item->string);

    if (c != 0)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * Go decodes into a map, so a repeated key keeps only its last value.
 * Sorting a side table keeps this O(n log n) for huge objects.
 */
static void drop_duplicate_keys(cJSON *obj, size_t n)
{
    struct member *m;
    cJSON *c;
    size_t i;

    if (n < 2)
        return;
    m = xcalloc(n, sizeof(*m));
    for (i = 0, c = obj->child; c != NULL; c = c->next, i++) {
        m[i].item = c;
        m[i].pos = i;
    }
    qsort(m, n, sizeof(*m), member_cmp);
    for (i = 0; i + 1 < n; i++) {
        if (strcmp(m[i].item->string, m[i + 1].item->string) == 0)
            json_delete_wiped(cJSON_DetachItemViaPointer(obj, m[i].item));
    }
    free(m);
}

static cJSON *parse_object(struct parser *ps, int depth)
{
    cJSON *obj = cJSON_CreateObject(), *item;
    size_t n = 0;
    char *key;

    if (obj == NULL) {
        fail_at(ps, ps->p, "out of memory");
        return NULL;
    }
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return obj;
    }
    for (;;) {
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p != '"') {
            fail_at(ps, ps->p, "expected a string for an object key");
            goto fail;
        }
        key = parse_string(ps);
        if (key == NULL)
            goto fail;
        skip_space(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            free_text(key);
            fail_at(ps, ps->p, "expected ':' after object key");
            goto fail;
        }
        ps->p++;
        item = parse_value(ps, depth);
        if (item != NULL && !cJSON_AddItemToObject(obj, key, item)) {
            json_delete_wiped(item);
            item = NULL;
            fail_at(ps, ps->p, "out of memory");
        }
        free_text(key);
        if (item == NULL)
            goto fail;
        n++;
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            break;
        }
        fail_at(ps, ps->p, "expected ',' or '}' in object");
        goto fail;
    }
    drop_duplicate_keys(obj, n);
    return obj;
fail:
    json_delete_wiped(obj);
    return NULL;
}

static cJSON *parse_array(struct parser *ps, int depth)
{
    cJSON *arr = cJSON_CreateArray(), *item;

    if (arr == NULL) {
        fail_at(ps, ps->p, "out of memory");
        return NULL;
    }
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return arr;
    }
    for (;;) {
        item = parse_value(ps, depth);
        if (item == NULL)
            goto fail;
        cJSON_AddItemToArray(arr, item);
        skip_space(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return arr;
        }
        fail_at(ps, ps->p, "expected ',' or ']' in array");
        goto fail;
    }
fail:
    json_delete_wiped(arr);
    return NULL;
}

static cJSON *parse_word(struct parser *ps)
{
    static const struct {
        const char *word;
        size_t len;
        cJSON *(*create)(void);
    } words[] = {
        {"true", 4, cJSON_CreateTrue},
        {"false", 5, cJSON_CreateFalse},
        {"null", 4, cJSON_CreateNull},
    };
    size_t i;

    for (i = 0; i < ARRAY_LEN(words); i++) {
        if ((size_t)(ps->end - ps->p) >= words[i].len &&
            memcmp(ps->p, words[i].word, words[i].len) == 0) {
            ps->p += words[i].len;
            return words[i].create();
        }
    }
    fail_at(ps, ps->p, "invalid literal");
    return NULL;
}

/* Parses one value after optional whitespace; depth = enclosing levels. */
static cJSON *parse_value(struct parser *ps, int depth)
{
    cJSON *item = NULL;
    size_t n;
    char *s;

    skip_space(ps);
    if (ps->p >= ps->end) {
        fail_at(ps, ps->p, "unexpected end of input");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
    case '[':
        if (depth >= ps->max_depth) {
            fail_at(ps, ps->p, "nested too deeply");
            return NULL;
        }
        if (*ps->p == '{')
            return parse_object(ps, depth + 1);
        return parse_array(ps, depth + 1);
    case '"':
        s = parse_string(ps);
        if (s == NULL)
            return NULL;
        item = cJSON_CreateString(s);
        free_text(s);
        break;
    case 't':
    case 'f':
    case 'n':
        item = parse_word(ps);
        if (ps->failed)
            return NULL;
        break;
    default:
        n = json_scan_number(ps->p, ps->end);
        if (n == 0) {
            fail_at(ps, ps->p, "unexpected character");
            return NULL;
        }
        item = json_number_new(ps->p, n);
        ps->p += n;
        break;
    }
    if (item == NULL)
        fail_at(ps, ps->p, "out of memory");
    return item;
}

/* ======================================================== entry point == */

cJSON *json_parse(const char *text, size_t len, int max_depth,
                  bool allow_trailing, struct errbuf *err)
{
    struct parser ps;
    cJSON *root;

    memset(&ps, 0, sizeof(ps));
    ps.start = ps.p = text;
    ps.end = text + len;
    ps.err = err;
    ps.max_depth = max_depth > JSON_DEPTH_LIMIT ? JSON_DEPTH_LIMIT : max_depth;
    if (err != NULL)
        errbuf_clear(err);
    root = parse_value(&ps, 0);
    if (root == NULL)
        return NULL;
    skip_space(&ps);
    if (!allow_trailing && ps.p < ps.end) {
        fail_at(&ps, ps.p, "data after the value");
        json_delete_wiped(root);
        return NULL;
    }
    return root;
}

/* ================================================== comparing numbers == */

/*
 * A literal as sign * 0.D * 10^exp, where D is the significant digits:
 * the integer digits ip[0..in) followed by the fraction digits fp[0..fn),
 * with leading and trailing zeros removed. sign is 0 for zero.
 */
struct decimal {
    int sign;
    int64_t exp;
    const char *ip, *fp;
    size_t in, fn;
};

#define EXP_CLAMP ((int64_t)1000000000000000) /* 10^15 */

static void decimal_read(const char *s, size_t len, struct decimal *d)
{
    const char *p = s, *end = s + len;
    int64_t e = 0;
    int esign = 1;

    memset(d, 0, sizeof(*d));
    d->sign = 1;
    if (p < end && *p == '-') {
        d->sign = -1;
        p++;
    }
    d->ip = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    d->in = (size_t)(p - d->ip);
    d->fp = p;
    if (p < end && *p == '.') {
        d->fp = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        d->fn = (size_t)(p - d->fp);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            esign = *p++ == '-' ? -1 : 1;
        for (; p < end; p++) {
            if (e < EXP_CLAMP)
                e = e * 10 + (*p - '0');
        }
        if (e > EXP_CLAMP)
            e = EXP_CLAMP;
    }
    e *= esign;
    while (d->in > 0 && *d->ip == '0') {
        d->ip++;
        d->in--;
    }
    if (d->in > 0) {
        d->exp = e + (int64_t)d->in;
    } else {
        while (d->fn > 0 && *d->fp == '0') {
            d->fp++;
            d->fn--;
            e--;
        }
        d->exp = e;
    }
    while (d->fn > 0 && d->fp[d->fn - 1] == '0')
        d->fn--;
    if (d->fn == 0) {
        while (d->in > 0 && d->ip[d->in - 1] == '0')
            d->in--;
    }
    if (d->in + d->fn == 0)
        d->sign = 0;
}

static char decimal_digit(const struct decimal *d, size_t k)
{
    return k < d->in ? d->ip[k] : d->fp[k - d->in];
}

/* Compares magnitudes of two non-zero decimals. */
static int decimal_cmp_abs(const struct decimal *a, const struct decimal *b)
{
    size_t na = a->in + a->fn, nb = b->in + b->fn, k;
    char x, y;

    if (a->exp != b->exp)
        return a->exp < b->exp ? -1 : 1;
    for (k = 0; k < na && k < nb; k++) {
        x = decimal_digit(a, k);
        y = decimal_digit(b, k);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return na < nb ? -1 : na > nb;
}

int json_number_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    struct decimal x, y;

    decimal_read(a, alen, &x);
    decimal_read(b, blen, &y);
    if (x.sign != y.sign)
        return x.sign < y.sign ? -1 : 1;
    if (x.sign == 0)
        return 0;
    return x.sign * decimal_cmp_abs(&x, &y);
}

/* ======================================================= members, text == */

static const char *text_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Past the value at p (which is not space), or NULL if it is not one. */
static const char *skip_value(const char *p, const char *end, int depth)
{
    size_t n;

    if (p >= end || depth > JSON_MEMBER_MAX_DEPTH)
        return NULL;
    switch (*p) {
    case '"':
        for (p++; p < end && *p != '"'; p++) {
            if (*p == '\\' && ++p >= end)
                return NULL;
        }
        return p < end ? p + 1 : NULL;
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';

        p = text_space(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                if (p >= end || *p != '"' ||
                    (p = skip_value(p, end, depth + 1)) == NULL)
                    return NULL;
                p = text_space(p, end);
                if (p >= end || *p != ':')
                    return NULL;
                p = text_space(p + 1, end);
            }
            if ((p = skip_value(p, end, depth + 1)) == NULL)
                return NULL;
            p = text_space(p, end);
            if (p >= end)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p = text_space(p + 1, end);
        }
    }
    case 't':
        return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        n = json_scan_number(p, end);
        return n > 0 ? p + n : NULL;
    }
}

bool json_object_members(const char *text, size_t len,
                         struct json_member *want, size_t n)
{
    const char *end = text + len, *p = text_space(text, end), *q;
    const char *key;
    size_t key_len;

    for (size_t i = 0; i < n; i++)
        want[i].v = want[i].end = NULL;
    if (p >= end || *p != '{')
        return false;
    p = text_space(p + 1, end);
    if (p < end && *p == '}')
        return text_space(p + 1, end) == end;
    for (;;) {
        if (p >= end || *p != '"' || (q = skip_value(p, end, 1)) == NULL)
            return false;
        key = p + 1; /* its bytes, between the quotes */
        key_len = (size_t)(q - 1 - key);
        p = text_space(q, end);
        if (p >= end || *p != ':')
            return false;
        p = text_space(p + 1, end);
        if ((q = skip_value(p, end, 1)) == NULL)
            return false;
        for (size_t i = 0; i < n; i++) {
            if (want[i].v == NULL && strlen(want[i].name) == key_len &&
                memcmp(want[i].name, key, key_len) == 0) {
                want[i].v = p;
                want[i].end = q;
            }
        }
        p = text_space(q, end);
        if (p >= end)
            return false;
        if (*p == '}')
            return text_space(p + 1, end) == end;
        if (*p != ',')
            return false;
        p = text_space(p + 1, end);
    }
}

bool json_member_is(const struct json_member *m, const char *lit)
{
    size_t n = strlen(lit);

    return m->v != NULL && (size_t)(m->end - m->v) == n &&
           memcmp(m->v, lit, n) == 0;
}

bool json_member_int64(const struct json_member *m, int64_t *out)
{
    size_t n = m->v != NULL ? (size_t)(m->end - m->v) : 0;
    char lit[64];

    if (n == 0 || n >= sizeof(lit) || json_scan_number(m->v, m->end) != n)
        return false;
    memcpy(lit, m->v, n);
    lit[n] = '\0';
    *out = double_to_int64(strtod(lit, NULL));
    return true;
}
