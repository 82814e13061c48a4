/*
 * cli_format.c - how the client commands print responses (see cli_format.h).
 *
 * The reference is the Vault CLI (command/format.go, base_helpers.go, the
 * columnize and kr/text packages it uses). The comments name the Vault
 * behaviour each function reproduces so a difference can be traced back.
 */
#include "cli_format.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common.h"
#include "../json.h"

/* ====================================================================
 * Output buffer
 * ==================================================================== */

void out_init(struct out *o)
{
    buf_init(&o->b, BUF_MAX_DEFAULT);
    o->err = 0;
}

void out_release(struct out *o)
{
    buf_release(&o->b);
    o->err = 0;
}

void out_put(struct out *o, const char *s, size_t n)
{
    if (o->err != 0)
        return;
    if (buf_append(&o->b, s, n) != 0)
        o->err = COFFER_ETOOBIG;
}

void out_puts(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

void out_putc(struct out *o, char c)
{
    out_put(o, &c, 1);
}

void out_printf(struct out *o, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->err = COFFER_EINVAL;
        return;
    }
    /* Every caller formats short scalars; a longer result is a bug. */
    COFFER_ASSERT((size_t)n < sizeof(small));
    out_put(o, small, (size_t)n);
}

int cli_format_parse(const char *s, enum cli_format *out)
{
    if (strcasecmp(s, "table") == 0)
        *out = CLI_FMT_TABLE;
    else if (strcasecmp(s, "json") == 0)
        *out = CLI_FMT_JSON;
    else if (strcasecmp(s, "yaml") == 0 || strcasecmp(s, "yml") == 0)
        *out = CLI_FMT_YAML;
    else if (strcasecmp(s, "raw") == 0)
        *out = CLI_FMT_RAW;
    else
        return COFFER_EINVAL;
    return 0;
}

/* ====================================================================
 * Small helpers
 * ==================================================================== */

/* Display width the way Go's utf8.RuneCountInString counts it. */
static size_t rune_count(const char *s, size_t n)
{
    size_t i, count = 0;

    for (i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    }
    return count;
}

static void put_repeat(struct out *o, char c, size_t n)
{
    while (n-- > 0)
        out_putc(o, c);
}

/*
 * Numbers: the Go client keeps the server's literal (json.Number). cJSON
 * keeps a double, so print integers exactly and other values in the
 * shortest form that reads back to the same double.
 */
static void put_number(struct out *o, double d)
{
    char tmp[64];
    int prec;

    if (d == floor(d) && fabs(d) < 1e17) {
        out_printf(o, "%.0f", d == 0 ? 0.0 : d);
        return;
    }
    for (prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    out_puts(o, tmp);
}

static bool number_is_int(const cJSON *v, int64_t *out)
{
    double d;

    if (!cJSON_IsNumber(v))
        return false;
    d = v->valuedouble;
    if (d != floor(d) || fabs(d) > 9.2e18)
        return false;
    *out = (int64_t)d;
    return true;
}

static int cmp_key(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a;
    const cJSON *y = *(const cJSON *const *)b;

    return strcmp(x->string != NULL ? x->string : "",
                  y->string != NULL ? y->string : "");
}

/*
 * Returns the members of an object sorted by key, as Go orders map keys
 * when it prints or marshals them. The caller frees the array.
 */
static const cJSON **sorted_members(const cJSON *obj, size_t *n)
{
    const cJSON **v;
    const cJSON *it;
    size_t i = 0;

    *n = (size_t)cJSON_GetArraySize(obj);
    v = xcalloc(*n + 1, sizeof(*v));
    cJSON_ArrayForEach(it, obj) {
        v[i++] = it;
    }
    qsort(v, *n, sizeof(*v), cmp_key);
    return v;
}

/* ====================================================================
 * Columns (ryanuber/columnize as configured by Vault's tableOutput)
 * ==================================================================== */

/* Splits one line into trimmed cells; empty cells read "n/a". */
static void split_cells(const char *line, const char *delim,
                        struct strvec *cells)
{
    size_t dlen = strlen(delim);
    const char *p = line, *end, *a, *b;

    for (;;) {
        end = strstr(p, delim);
        if (end == NULL)
            end = p + strlen(p);
        a = p;
        b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a == b)
            strvec_push(cells, "n/a");
        else
            strvec_push_owned(cells, xstrndup(a, (size_t)(b - a)));
        if (*end == '\0')
            break;
        p = end + dlen;
    }
}

static void column_widths(const struct strvec *lines, const char *delim,
                          size_t *widths, size_t maxcols, size_t *ncols)
{
    struct strvec cells;
    size_t i, j, w;

    *ncols = 0;
    for (i = 0; i < lines->n; i++) {
        strvec_init(&cells);
        split_cells(lines->v[i], delim, &cells);
        for (j = 0; j < cells.n && j < maxcols; j++) {
            w = rune_count(cells.v[j], strlen(cells.v[j]));
            if (j >= *ncols) {
                widths[j] = w;
                *ncols = j + 1;
            } else if (widths[j] < w) {
                widths[j] = w;
            }
        }
        strvec_release(&cells);
    }
}

#define MAX_COLUMNS 32

void fmt_columns(struct out *o, const struct strvec *lines, const char *delim)
{
    size_t widths[MAX_COLUMNS];
    size_t ncols, i, j, w;
    struct strvec cells;

    column_widths(lines, delim, widths, MAX_COLUMNS, &ncols);
    for (i = 0; i < lines->n; i++) {
        strvec_init(&cells);
        split_cells(lines->v[i], delim, &cells);
        for (j = 0; j < cells.n && j < MAX_COLUMNS; j++) {
            out_puts(o, cells.v[j]);
            if (j + 1 == cells.n)
                break;
            w = rune_count(cells.v[j], strlen(cells.v[j]));
            put_repeat(o, ' ', widths[j] - w + 4);
        }
        out_putc(o, '\n');
        strvec_release(&cells);
    }
}

void fmt_table(struct out *o, const struct strvec *lines, const char *delim)
{
    struct strvec all, head;
    struct out under;
    size_t i, len;
    const char *h;

    if (lines->n == 0)
        return;
    strvec_init(&all);
    strvec_init(&head);
    out_init(&under);
    split_cells(lines->v[0], delim, &head);
    for (i = 0; i < head.n; i++) {
        /* Underline the trimmed header; "n/a" stands for an empty one. */
        h = head.v[i];
        len = strcmp(h, "n/a") == 0 ? 0 : strlen(h);
        put_repeat(&under, '-', len);
        if (i + 1 < head.n)
            out_puts(&under, delim);
    }
    strvec_push(&all, lines->v[0]);
    strvec_push(&all, under.b.ptr != NULL ? under.b.ptr : "");
    for (i = 1; i < lines->n; i++)
        strvec_push(&all, lines->v[i]);
    fmt_columns(o, &all, delim);
    out_release(&under);
    strvec_release(&head);
    strvec_release(&all);
}

/* ====================================================================
 * Durations and Go's %v
 * ==================================================================== */

void fmt_human_duration(int64_t secs, char *out, size_t n)
{
    if (secs < 0 && n > 1) {
        out[0] = '-';
        duration_format_short(-secs, out + 1, n - 1);
        return;
    }
    duration_format_short(secs, out, n);
}

bool fmt_looks_like_duration(const char *k)
{
    return strcmp(k, "period") == 0 || str_has_suffix(k, "_period") ||
           strcmp(k, "ttl") == 0 || str_has_suffix(k, "_ttl") ||
           strcmp(k, "duration") == 0 || str_has_suffix(k, "_duration") ||
           strcmp(k, "lease_max") == 0 || strcmp(k, "ttl_max") == 0;
}

void fmt_go_value(struct out *o, const cJSON *v)
{
    const cJSON **members = NULL;
    const cJSON *it;
    size_t n, i;

    if (v == NULL || cJSON_IsNull(v)) {
        out_puts(o, "<nil>");
    } else if (cJSON_IsString(v)) {
        out_puts(o, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        put_number(o, v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        out_puts(o, cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsArray(v)) {
        out_putc(o, '[');
        cJSON_ArrayForEach(it, v) {
            if (it != v->child)
                out_putc(o, ' ');
            fmt_go_value(o, it);
        }
        out_putc(o, ']');
    } else if (cJSON_IsObject(v)) {
        /* Go prints maps with sorted keys since 1.12. */
        members = sorted_members(v, &n);
        out_puts(o, "map[");
        for (i = 0; i < n; i++) {
            if (i > 0)
                out_putc(o, ' ');
            out_puts(o, members[i]->string);
            out_putc(o, ':');
            fmt_go_value(o, members[i]);
        }
        out_putc(o, ']');
        free(members);
    }
}

void fmt_go_field(struct out *o, const char *key, const cJSON *v)
{
    char tmp[64];
    int64_t secs;

    if (fmt_looks_like_duration(key) && number_is_int(v, &secs)) {
        fmt_human_duration(secs, tmp, sizeof(tmp));
        out_puts(o, tmp);
        return;
    }
    fmt_go_value(o, v);
}

/* Go's strconv.Quote for the characters policy names can hold. */
static void put_go_quoted(struct out *o, const char *s)
{
    out_putc(o, '"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out_putc(o, '\\');
            out_putc(o, (char)c);
        } else if (c == '\n') {
            out_puts(o, "\\n");
        } else if (c == '\t') {
            out_puts(o, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            out_printf(o, "\\x%02x", c);
        } else {
            out_putc(o, (char)c);
        }
    }
    out_putc(o, '"');
}

void fmt_go_quoted_list(struct out *o, const cJSON *list)
{
    const cJSON *it;
    bool first = true;

    out_putc(o, '[');
    if (cJSON_IsArray(list)) {
        cJSON_ArrayForEach(it, list) {
            if (!first)
                out_putc(o, ' ');
            first = false;
            put_go_quoted(o, cJSON_IsString(it) ? it->valuestring : "");
        }
    }
    out_putc(o, ']');
}

/* ====================================================================
 * JSON, as Go's encoding/json MarshalIndent writes it
 * ==================================================================== */

/* Length of a valid UTF-8 sequence at s, or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
    size_t n, i;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0 && s[0] >= 0xC2) {
        n = 2;
        *cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        *cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0 && s[0] <= 0xF4) {
        n = 4;
        *cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && *cp < 0x800) || (n == 4 && *cp < 0x10000) ||
        (*cp >= 0xD800 && *cp <= 0xDFFF) || *cp > 0x10FFFF)
        return 0;
    return n;
}

/* Go escapes <, > and & (HTML safety), controls, and U+2028/U+2029. */
static void put_json_string(struct out *o, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    uint32_t cp;
    size_t n;

    out_putc(o, '"');
    while (*s != '\0') {
        n = utf8_seq(s, &cp);
        if (n == 0) {
            out_puts(o, "\\ufffd");
            s++;
            continue;
        }
        if (cp == '"' || cp == '\\') {
            out_putc(o, '\\');
            out_putc(o, (char)cp);
        } else if (cp == '\n') {
            out_puts(o, "\\n");
        } else if (cp == '\r') {
            out_puts(o, "\\r");
        } else if (cp == '\t') {
            out_puts(o, "\\t");
        } else if (cp < 0x20 || cp == '<' || cp == '>' || cp == '&' ||
                   cp == 0x2028 || cp == 0x2029) {
            out_printf(o, "\\u%04x", (unsigned)cp);
        } else {
            out_put(o, (const char *)s, n);
        }
        s += n;
    }
    out_putc(o, '"');
}

static void put_indent(struct out *o, int depth)
{
    put_repeat(o, ' ', (size_t)depth * 2);
}

static void json_array(struct out *o, const cJSON *v, int depth)
{
    const cJSON *it;

    if (v->child == NULL) {
        out_puts(o, "[]");
        return;
    }
    out_puts(o, "[\n");
    cJSON_ArrayForEach(it, v) {
        put_indent(o, depth + 1);
        fmt_json(o, it, depth + 1);
        out_puts(o, it->next != NULL ? ",\n" : "\n");
    }
    put_indent(o, depth);
    out_putc(o, ']');
}

static void json_object(struct out *o, const cJSON *v, int depth)
{
    const cJSON **members;
    size_t n, i;

    if (v->child == NULL) {
        out_puts(o, "{}");
        return;
    }
    members = sorted_members(v, &n);
    out_puts(o, "{\n");
    for (i = 0; i < n; i++) {
        put_indent(o, depth + 1);
        put_json_string(o, members[i]->string);
        out_puts(o, ": ");
        fmt_json(o, members[i], depth + 1);
        out_puts(o, i + 1 < n ? ",\n" : "\n");
    }
    put_indent(o, depth);
    out_putc(o, '}');
    free(members);
}

void fmt_json(struct out *o, const cJSON *v, int depth)
{
    if (v == NULL || cJSON_IsNull(v))
        out_puts(o, "null");
    else if (cJSON_IsBool(v))
        out_puts(o, cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v))
        put_number(o, v->valuedouble);
    else if (cJSON_IsString(v))
        put_json_string(o, v->valuestring);
    else if (cJSON_IsArray(v))
        json_array(o, v, depth);
    else if (cJSON_IsObject(v))
        json_object(o, v, depth);
    else
        out_puts(o, "null");
}

/*
 * Go structs marshal their fields in declaration order, with zero values
 * for fields the server did not send and "omitempty" fields left out when
 * empty. A field table describes one struct of the Go api package.
 */
enum jkind {
    JK_STRING = 1, /* zero value "" */
    JK_INT = 2,    /* zero value 0 */
    JK_BOOL = 3,   /* zero value false */
    JK_ANY = 4,    /* maps, slices, interfaces: zero value null */
    JK_PTR = 5,    /* pointer to a struct: null, or the sub-struct */
    JK_STRUCT = 6, /* struct value: always the sub-struct */
    JK_TIME = 7,   /* time.Time: never empty, zero "0001-01-01T00:00:00Z" */
};

struct jfield {
    const char *name;
    enum jkind kind;
    bool omitempty;
    const struct jfield *sub; /* JK_PTR and JK_STRUCT; ends at name NULL */
};

static void json_struct(struct out *o, const cJSON *obj,
                        const struct jfield *fields, int depth);

static bool field_empty(const struct jfield *f, const cJSON *v)
{
    if (v == NULL || cJSON_IsNull(v))
        return f->kind != JK_STRUCT && f->kind != JK_TIME;
    switch (f->kind) {
    case JK_STRING:
        return cJSON_IsString(v) && v->valuestring[0] == '\0';
    case JK_INT:
        return cJSON_IsNumber(v) && v->valuedouble == 0;
    case JK_BOOL:
        return cJSON_IsFalse(v);
    case JK_ANY:
        return (cJSON_IsArray(v) || cJSON_IsObject(v)) && v->child == NULL;
    default:
        return false;
    }
}

static void json_field_value(struct out *o, const struct jfield *f,
                             const cJSON *v, int depth)
{
    bool missing = v == NULL || cJSON_IsNull(v);

    switch (f->kind) {
    case JK_STRING:
        if (missing)
            out_puts(o, "\"\"");
        else
            fmt_json(o, v, depth);
        break;
    case JK_INT:
        out_puts(o, missing ? "0" : "");
        if (!missing)
            fmt_json(o, v, depth);
        break;
    case JK_BOOL:
        out_puts(o, missing ? "false" : (cJSON_IsTrue(v) ? "true" : "false"));
        break;
    case JK_TIME:
        if (missing)
            out_puts(o, "\"0001-01-01T00:00:00Z\"");
        else
            fmt_json(o, v, depth);
        break;
    case JK_PTR:
    case JK_STRUCT:
        if (missing && f->kind == JK_PTR)
            out_puts(o, "null");
        else
            json_struct(o, cJSON_IsObject(v) ? v : NULL, f->sub, depth);
        break;
    default:
        fmt_json(o, v, depth);
        break;
    }
}

static void json_struct(struct out *o, const cJSON *obj,
                        const struct jfield *fields, int depth)
{
    const struct jfield *f;
    const cJSON *v;
    bool first = true;

    for (f = fields; f->name != NULL; f++) {
        v = obj != NULL ? cJSON_GetObjectItemCaseSensitive(obj, f->name)
                        : NULL;
        if (f->omitempty && field_empty(f, v))
            continue;
        out_puts(o, first ? "{\n" : ",\n");
        first = false;
        put_indent(o, depth + 1);
        put_json_string(o, f->name);
        out_puts(o, ": ");
        json_field_value(o, f, v, depth + 1);
    }
    if (first) {
        out_puts(o, "{}");
        return;
    }
    out_putc(o, '\n');
    put_indent(o, depth);
    out_putc(o, '}');
}

/* api.SecretAuth */
static const struct jfield auth_fields[] = {
    { "client_token", JK_STRING, false, NULL },
    { "accessor", JK_STRING, false, NULL },
    { "policies", JK_ANY, false, NULL },
    { "token_policies", JK_ANY, false, NULL },
    { "identity_policies", JK_ANY, false, NULL },
    { "metadata", JK_ANY, false, NULL },
    { "orphan", JK_BOOL, false, NULL },
    { "entity_id", JK_STRING, false, NULL },
    { "lease_duration", JK_INT, false, NULL },
    { "renewable", JK_BOOL, false, NULL },
    { "mfa_requirement", JK_ANY, false, NULL },
    { NULL, 0, false, NULL },
};

/* api.SecretWrapInfo */
static const struct jfield wrap_fields[] = {
    { "token", JK_STRING, false, NULL },
    { "accessor", JK_STRING, false, NULL },
    { "ttl", JK_INT, false, NULL },
    { "creation_time", JK_TIME, false, NULL },
    { "creation_path", JK_STRING, false, NULL },
    { "wrapped_accessor", JK_STRING, false, NULL },
    { NULL, 0, false, NULL },
};

/* api.Secret */
static const struct jfield secret_fields[] = {
    { "request_id", JK_STRING, false, NULL },
    { "lease_id", JK_STRING, false, NULL },
    { "lease_duration", JK_INT, false, NULL },
    { "renewable", JK_BOOL, false, NULL },
    { "data", JK_ANY, false, NULL },
    { "warnings", JK_ANY, false, NULL },
    { "auth", JK_PTR, true, auth_fields },
    { "wrap_info", JK_PTR, true, wrap_fields },
    { NULL, 0, false, NULL },
};

void fmt_json_secret(struct out *o, const cJSON *secret)
{
    json_struct(o, secret, secret_fields, 0);
}

/* api.SealStatusResponse followed by the leader fields `vault status` adds */
static const struct jfield seal_fields[] = {
    { "type", JK_STRING, false, NULL },
    { "initialized", JK_BOOL, false, NULL },
    { "sealed", JK_BOOL, false, NULL },
    { "t", JK_INT, false, NULL },
    { "n", JK_INT, false, NULL },
    { "progress", JK_INT, false, NULL },
    { "nonce", JK_STRING, false, NULL },
    { "version", JK_STRING, false, NULL },
    { "build_date", JK_STRING, false, NULL },
    { "migration", JK_BOOL, false, NULL },
    { "cluster_name", JK_STRING, true, NULL },
    { "cluster_id", JK_STRING, true, NULL },
    { "recovery_seal", JK_BOOL, false, NULL },
    { "storage_type", JK_STRING, true, NULL },
    { "hcp_link_status", JK_STRING, true, NULL },
    { "hcp_link_resource_ID", JK_STRING, true, NULL },
    { "warnings", JK_ANY, true, NULL },
    { "ha_enabled", JK_BOOL, false, NULL },
    { "is_self", JK_BOOL, true, NULL },
    { "active_time", JK_TIME, true, NULL },
    { "leader_address", JK_STRING, true, NULL },
    { "leader_cluster_address", JK_STRING, true, NULL },
    { "performance_standby", JK_BOOL, true, NULL },
    { "performance_standby_last_remote_wal", JK_INT, true, NULL },
    { "last_wal", JK_INT, true, NULL },
    { "raft_committed_index", JK_INT, true, NULL },
    { "raft_applied_index", JK_INT, true, NULL },
    { NULL, 0, false, NULL },
};

static const char *const leader_keys[] = {
    "ha_enabled", "is_self", "active_time", "leader_address",
    "leader_cluster_address", "performance_standby",
    "performance_standby_last_remote_wal", "last_wal",
    "raft_committed_index", "raft_applied_index",
};

void fmt_json_seal_status(struct out *o, const cJSON *seal,
                          const cJSON *leader)
{
    cJSON *merged = cJSON_Duplicate(seal, 1);
    const cJSON *v;
    size_t i;

    COFFER_ASSERT(merged != NULL);
    for (i = 0; i < ARRAY_LEN(leader_keys); i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(merged, leader_keys[i]);
        v = cJSON_GetObjectItemCaseSensitive(leader, leader_keys[i]);
        if (v != NULL)
            cJSON_AddItemToObject(merged, leader_keys[i],
                                  cJSON_Duplicate(v, 1));
    }
    json_struct(o, merged, seal_fields, 0);
    cJSON_Delete(merged);
}

/* api.MountConfigOutput */
static const struct jfield mount_config_fields[] = {
    { "default_lease_ttl", JK_INT, false, NULL },
    { "max_lease_ttl", JK_INT, false, NULL },
    { "force_no_cache", JK_BOOL, false, NULL },
    { "audit_non_hmac_request_keys", JK_ANY, true, NULL },
    { "audit_non_hmac_response_keys", JK_ANY, true, NULL },
    { "listing_visibility", JK_STRING, true, NULL },
    { "passthrough_request_headers", JK_ANY, true, NULL },
    { "allowed_response_headers", JK_ANY, true, NULL },
    { "token_type", JK_STRING, true, NULL },
    { "allowed_managed_keys", JK_ANY, true, NULL },
    { "user_lockout_config", JK_ANY, true, NULL },
    { "plugin_name", JK_STRING, true, NULL },
    { NULL, 0, false, NULL },
};

/* api.MountOutput */
static const struct jfield mount_fields[] = {
    { "uuid", JK_STRING, false, NULL },
    { "type", JK_STRING, false, NULL },
    { "description", JK_STRING, false, NULL },
    { "accessor", JK_STRING, false, NULL },
    { "config", JK_STRUCT, false, mount_config_fields },
    { "options", JK_ANY, false, NULL },
    { "local", JK_BOOL, false, NULL },
    { "seal_wrap", JK_BOOL, false, NULL },
    { "external_entropy_access", JK_BOOL, false, NULL },
    { "plugin_version", JK_STRING, false, NULL },
    { "running_plugin_version", JK_STRING, false, NULL },
    { "running_sha256", JK_STRING, false, NULL },
    { "deprecation_status", JK_STRING, false, NULL },
    { NULL, 0, false, NULL },
};

void fmt_json_mounts(struct out *o, const cJSON *mounts)
{
    const cJSON **members;
    size_t n, i;

    if (!cJSON_IsObject(mounts) || mounts->child == NULL) {
        out_puts(o, "{}");
        return;
    }
    members = sorted_members(mounts, &n);
    out_puts(o, "{\n");
    for (i = 0; i < n; i++) {
        put_indent(o, 1);
        put_json_string(o, members[i]->string);
        out_puts(o, ": ");
        json_struct(o, cJSON_IsObject(members[i]) ? members[i] : NULL,
                    mount_fields, 1);
        out_puts(o, i + 1 < n ? ",\n" : "\n");
    }
    out_putc(o, '}');
    free(members);
}

/* ====================================================================
 * YAML (what ghodss/yaml + yaml.v2 print for the same JSON, roughly)
 * ==================================================================== */

static bool yaml_resolves(const char *s)
{
    static const char *const words[] = {
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false",
        "False", "FALSE", "yes", "Yes", "YES", "no", "No", "NO", "on", "On",
        "ON", "off", "Off", "OFF", "y", "Y", "n", "N", ".inf", ".nan",
        "-.inf", "+.inf",
    };
    char *end = NULL;
    size_t i;

    for (i = 0; i < ARRAY_LEN(words); i++) {
        if (strcmp(s, words[i]) == 0)
            return true;
    }
    /* yaml.v2 reads "2024-05-01..." back as a timestamp: quote it. */
    if (isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
        isdigit((unsigned char)s[2]) && isdigit((unsigned char)s[3]) &&
        s[4] == '-' && isdigit((unsigned char)s[5]))
        return true;
    /* Anything strtod takes whole would come back as a number. */
    strtod(s, &end);
    return end != NULL && end != s && *end == '\0' &&
           !isspace((unsigned char)s[0]);
}

static bool yaml_plain_ok(const char *s)
{
    size_t n = strlen(s);

    if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]) != NULL &&
        !((s[0] == '-' || s[0] == '?' || s[0] == ':') && s[1] != ' ' &&
          s[1] != '\0'))
        return false;
    if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
        return false;
    if (strstr(s, ": ") != NULL || strstr(s, " #") != NULL ||
        s[n - 1] == ':')
        return false;
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

static void yaml_string(struct out *o, const char *s, int depth)
{
    const char *p, *nl;

    if (strchr(s, '\n') != NULL) {
        p = s;
        out_puts(o, str_has_suffix(s, "\n") ? "|" : "|-");
        while (*p != '\0') {
            nl = strchr(p, '\n');
            out_putc(o, '\n');
            put_indent(o, depth + 1);
            out_put(o, p, nl != NULL ? (size_t)(nl - p) : strlen(p));
            p = nl != NULL ? nl + 1 : p + strlen(p);
        }
        return;
    }
    if (yaml_resolves(s)) {
        put_json_string(o, s);
    } else if (!yaml_plain_ok(s)) {
        out_putc(o, '\'');
        for (p = s; *p != '\0'; p++) {
            if (*p == '\'')
                out_putc(o, '\'');
            out_putc(o, *p);
        }
        out_putc(o, '\'');
    } else {
        out_puts(o, s);
    }
}

static void yaml_value(struct out *o, const cJSON *v, int depth);

static void yaml_scalar(struct out *o, const cJSON *v, int depth)
{
    if (v == NULL || cJSON_IsNull(v))
        out_puts(o, "null");
    else if (cJSON_IsBool(v))
        out_puts(o, cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNumber(v))
        put_number(o, v->valuedouble);
    else if (cJSON_IsString(v))
        yaml_string(o, v->valuestring, depth);
    else if (cJSON_IsArray(v))
        out_puts(o, "[]");
    else
        out_puts(o, "{}");
}

static bool yaml_is_block(const cJSON *v)
{
    return (cJSON_IsArray(v) || cJSON_IsObject(v)) && v->child != NULL;
}

/* Writes the members of a non-empty object, the first one without indent. */
static void yaml_object(struct out *o, const cJSON *v, int depth)
{
    const cJSON **members;
    size_t n, i;

    members = sorted_members(v, &n);
    for (i = 0; i < n; i++) {
        if (i > 0)
            put_indent(o, depth);
        yaml_string(o, members[i]->string, depth);
        out_putc(o, ':');
        if (cJSON_IsObject(members[i]) && members[i]->child != NULL) {
            out_putc(o, '\n');
            put_indent(o, depth + 1);
            yaml_object(o, members[i], depth + 1);
        } else if (yaml_is_block(members[i])) {
            out_putc(o, '\n');
            put_indent(o, depth);
            yaml_value(o, members[i], depth);
        } else {
            out_putc(o, ' ');
            yaml_scalar(o, members[i], depth);
            out_putc(o, '\n');
        }
    }
    free(members);
}

/* Writes a value whose first line starts at the current column. */
static void yaml_value(struct out *o, const cJSON *v, int depth)
{
    const cJSON *it;

    if (cJSON_IsObject(v) && v->child != NULL) {
        yaml_object(o, v, depth);
    } else if (cJSON_IsArray(v) && v->child != NULL) {
        cJSON_ArrayForEach(it, v) {
            if (it != v->child)
                put_indent(o, depth);
            out_puts(o, "- ");
            if (yaml_is_block(it)) {
                yaml_value(o, it, depth + 1);
            } else {
                yaml_scalar(o, it, depth + 1);
                out_putc(o, '\n');
            }
        }
    } else {
        yaml_scalar(o, v, depth);
        out_putc(o, '\n');
    }
}

void fmt_yaml(struct out *o, const cJSON *v)
{
    yaml_value(o, v, 0);
}

/* ====================================================================
 * Key/Value tables (Vault's TableFormatter)
 * ==================================================================== */

/* Appends the row "key<delim>value" built by the caller's out. */
static void push_row(struct strvec *rows, const char *key, struct out *val)
{
    struct out line;

    out_init(&line);
    out_puts(&line, key);
    out_puts(&line, FMT_DELIM);
    if (val->b.ptr != NULL)
        out_puts(&line, val->b.ptr);
    strvec_push(rows, line.b.ptr != NULL ? line.b.ptr : "");
    out_release(&line);
    out_release(val);
    out_init(val);
}

static void lease_rows(struct strvec *rows, const cJSON *secret)
{
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(secret,
                                                        "lease_duration");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(secret, "lease_id");
    const cJSON *ren = cJSON_GetObjectItemCaseSensitive(secret, "renewable");
    struct out v;
    int64_t secs = 0;
    char tmp[64];

    if (!number_is_int(dur, &secs) || secs <= 0)
        return;
    out_init(&v);
    fmt_human_duration(secs, tmp, sizeof(tmp));
    if (cJSON_IsString(id) && id->valuestring[0] != '\0') {
        out_puts(&v, id->valuestring);
        push_row(rows, "lease_id", &v);
        out_puts(&v, tmp);
        push_row(rows, "lease_duration", &v);
        out_puts(&v, cJSON_IsTrue(ren) ? "true" : "false");
        push_row(rows, "lease_renewable", &v);
    } else {
        /* KV v1 reports a TTL without a lease: Vault calls it this. */
        out_puts(&v, tmp);
        push_row(rows, "refresh_interval", &v);
    }
    out_release(&v);
}

static void auth_rows(struct strvec *rows, const cJSON *auth)
{
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(auth,
                                                        "lease_duration");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(auth, "metadata");
    static const char *const lists[] = { "token_policies",
                                         "identity_policies", "policies" };
    const cJSON **members = NULL;
    struct out v, key;
    int64_t secs = 0;
    char tmp[64];
    size_t i, n = 0;

    out_init(&v);
    out_init(&key);
    out_puts(&v, json_get_str(auth, "client_token", ""));
    push_row(rows, "token", &v);
    out_puts(&v, json_get_str(auth, "accessor", ""));
    push_row(rows, "token_accessor", &v);
    /* A root token never expires; Vault shows that as infinity. */
    if (!number_is_int(dur, &secs) || secs == 0)
        snprintf(tmp, sizeof(tmp), "\xe2\x88\x9e");
    else
        fmt_human_duration(secs, tmp, sizeof(tmp));
    out_puts(&v, tmp);
    push_row(rows, "token_duration", &v);
    out_puts(&v, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                     auth, "renewable")) ? "true" : "false");
    push_row(rows, "token_renewable", &v);
    for (i = 0; i < ARRAY_LEN(lists); i++) {
        fmt_go_quoted_list(&v, cJSON_GetObjectItemCaseSensitive(auth,
                                                                lists[i]));
        push_row(rows, lists[i], &v);
    }
    /* Vault walks a Go map here (random order); sorted is stable. */
    if (cJSON_IsObject(meta))
        members = sorted_members(meta, &n);
    for (i = 0; i < n; i++) {
        out_printf(&key, "token_meta_%s", members[i]->string);
        fmt_go_value(&v, members[i]);
        push_row(rows, key.b.ptr, &v);
        out_release(&key);
        out_init(&key);
    }
    free(members);
    out_release(&key);
    out_release(&v);
}

static void data_rows(struct strvec *rows, const cJSON *data)
{
    const cJSON **members;
    struct out v;
    size_t n, i;

    if (!cJSON_IsObject(data))
        return;
    out_init(&v);
    members = sorted_members(data, &n);
    for (i = 0; i < n; i++) {
        fmt_go_field(&v, members[i]->string, members[i]);
        push_row(rows, members[i]->string, &v);
    }
    free(members);
    out_release(&v);
}

static void emit_kv_table(struct out *o, struct strvec *rows)
{
    struct strvec all;
    size_t i;

    if (rows->n == 0)
        return;
    strvec_init(&all);
    strvec_push(&all, "Key" FMT_DELIM "Value");
    for (i = 0; i < rows->n; i++)
        strvec_push(&all, rows->v[i]);
    fmt_table(o, &all, FMT_DELIM);
    strvec_release(&all);
}

/*
 * Go's time.String() of an RFC3339 UTC time:
 * "2024-01-02 03:04:05.1 +0000 UTC".
 */
static void go_time_string(const char *rfc, char *out, size_t n)
{
    size_t len = strlen(rfc);
    char tmp[80];

    snprintf(tmp, sizeof(tmp), "%s", rfc);
    if (len > 0 && len < sizeof(tmp) && tmp[len - 1] == 'Z') {
        tmp[--len] = '\0';
        while (len > 0 && strchr(tmp, '.') != NULL && tmp[len - 1] == '0')
            tmp[--len] = '\0';
        if (len > 0 && tmp[len - 1] == '.')
            tmp[--len] = '\0';
        if (len > 10 && tmp[10] == 'T')
            tmp[10] = ' ';
        snprintf(out, n, "%s +0000 UTC", tmp);
        return;
    }
    snprintf(out, n, "%s", rfc);
}

/* Vault's rows for a wrapped response (the keys carry a colon there). */
static void wrap_rows(struct strvec *rows, const cJSON *wi)
{
    const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(wi, "ttl");
    const char *wacc = json_get_str(wi, "wrapped_accessor", "");
    struct out v;
    int64_t secs = 0;
    char tmp[96];

    out_init(&v);
    out_puts(&v, json_get_str(wi, "token", ""));
    push_row(rows, "wrapping_token:", &v);
    out_puts(&v, json_get_str(wi, "accessor", ""));
    push_row(rows, "wrapping_accessor:", &v);
    (void)number_is_int(ttl, &secs);
    fmt_human_duration(secs, tmp, sizeof(tmp));
    out_puts(&v, tmp);
    push_row(rows, "wrapping_token_ttl:", &v);
    go_time_string(json_get_str(wi, "creation_time", ""), tmp, sizeof(tmp));
    out_puts(&v, tmp);
    push_row(rows, "wrapping_token_creation_time:", &v);
    out_puts(&v, json_get_str(wi, "creation_path", ""));
    push_row(rows, "wrapping_token_creation_path:", &v);
    if (wacc[0] != '\0') {
        out_puts(&v, wacc);
        push_row(rows, "wrapped_accessor:", &v);
    }
    out_release(&v);
}

void fmt_secret_table(struct out *o, const cJSON *secret)
{
    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(secret, "auth");
    const cJSON *wi = cJSON_GetObjectItemCaseSensitive(secret, "wrap_info");
    struct strvec rows;

    strvec_init(&rows);
    lease_rows(&rows, secret);
    if (cJSON_IsObject(auth))
        auth_rows(&rows, auth);
    if (cJSON_IsObject(wi))
        wrap_rows(&rows, wi);
    data_rows(&rows, cJSON_GetObjectItemCaseSensitive(secret, "data"));
    emit_kv_table(o, &rows);
    strvec_release(&rows);
}

void fmt_map_table(struct out *o, const cJSON *obj)
{
    struct strvec rows;

    strvec_init(&rows);
    data_rows(&rows, obj);
    emit_kv_table(o, &rows);
    strvec_release(&rows);
}

void fmt_list_table(struct out *o, const cJSON *keys)
{
    struct strvec lines, sorted;
    struct out v;
    const cJSON *it;
    size_t i;

    if (!cJSON_IsArray(keys) || keys->child == NULL)
        return;
    strvec_init(&lines);
    strvec_init(&sorted);
    out_init(&v);
    cJSON_ArrayForEach(it, keys) {
        fmt_go_value(&v, it);
        strvec_push(&sorted, v.b.ptr != NULL ? v.b.ptr : "");
        out_release(&v);
        out_init(&v);
    }
    strvec_sort(&sorted);
    strvec_push(&lines, "Keys");
    for (i = 0; i < sorted.n; i++)
        strvec_push(&lines, sorted.v[i]);
    fmt_table(o, &lines, FMT_DELIM);
    out_release(&v);
    strvec_release(&sorted);
    strvec_release(&lines);
}

/* ====================================================================
 * Warnings and text wrapping
 * ==================================================================== */

/*
 * Minimal-raggedness line breaking (kr/text.Wrap): the cost of a line is
 * the square of its slack, plus a large penalty when a single word is
 * longer than the width. words are split on single spaces, so runs of
 * spaces survive as empty words exactly as in the Go version.
 */
void fmt_wrap(struct out *o, const char *text, size_t width, size_t pad)
{
    struct strvec words;
    const char *p, *a, *b, *sp;
    size_t *len = NULL, *brk = NULL, n, i, j, k;
    long long *cost = NULL, d, c, line;

    strvec_init(&words);
    a = text;
    b = text + strlen(text);
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    for (p = a;;) {
        sp = p;
        while (sp < b && *sp != ' ' && *sp != '\n')
            sp++;
        strvec_push_owned(&words, xstrndup(p, (size_t)(sp - p)));
        if (sp >= b)
            break;
        p = sp + 1;
    }
    n = words.n;
    len = xcalloc(n + 1, sizeof(*len));
    brk = xcalloc(n + 1, sizeof(*brk));
    cost = xcalloc(n + 1, sizeof(*cost));
    for (i = 0; i < n; i++)
        len[i] = rune_count(words.v[i], strlen(words.v[i]));
    for (i = n; i-- > 0;) {
        line = (long long)len[i];
        for (k = i + 1; k < n; k++)
            line += 1 + (long long)len[k];
        if (line <= (long long)width || i == n - 1) {
            cost[i] = 0;
            brk[i] = n;
            continue;
        }
        cost[i] = 0x7fffffff;
        line = (long long)len[i];
        for (j = i + 1; j < n; j++) {
            d = (long long)width - line;
            c = d * d + cost[j];
            if (line > (long long)width)
                c += 100000;
            if (c < cost[i]) {
                cost[i] = c;
                brk[i] = j;
            }
            line += 1 + (long long)len[j];
        }
    }
    for (i = 0; i < n; i = brk[i]) {
        if (i > 0)
            out_putc(o, '\n');
        put_repeat(o, ' ', pad);
        for (j = i; j < brk[i]; j++) {
            if (j > i)
                out_putc(o, ' ');
            out_puts(o, words.v[j]);
        }
    }
    free(cost);
    free(brk);
    free(len);
    strvec_release(&words);
}

void fmt_warnings(struct out *o, const cJSON *secret)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(secret, "warnings");
    const cJSON *it;
    struct out line;

    if (!cJSON_IsArray(w) || w->child == NULL)
        return;
    out_puts(o, "WARNING! The following warnings were returned from "
                "Vault:\n\n");
    cJSON_ArrayForEach(it, w) {
        out_init(&line);
        out_puts(&line, "* ");
        if (cJSON_IsString(it))
            out_puts(&line, it->valuestring);
        fmt_wrap(o, line.b.ptr, 78 - 2, 2);
        out_puts(o, "\n\n");
        out_release(&line);
    }
}

void fmt_pad_equals(struct out *o, const char *title, size_t total_len)
{
    long eq = (long)total_len - (long)(strlen(title) + 2);

    if (eq <= 0)
        eq = 4;
    if (eq % 2 != 0)
        eq++;
    put_repeat(o, '=', (size_t)eq / 2);
    out_putc(o, ' ');
    out_puts(o, title);
    out_putc(o, ' ');
    put_repeat(o, '=', (size_t)eq / 2);
}

void fmt_map_header(struct out *o, const char *title, const cJSON *obj)
{
    const cJSON *it;
    size_t max = 0, n;

    if (cJSON_IsObject(obj)) {
        cJSON_ArrayForEach(it, obj) {
            n = strlen(it->string);
            if (n > max)
                max = n;
        }
    }
    fmt_pad_equals(o, title, max + 4 + 5);
}
