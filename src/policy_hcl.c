/*
 * policy_hcl.c - Vault policy text: a small HCL 1 / JSON reader, the
 * formatter behind `policy fmt`, and the compiler from the tree to rules.
 *
 * Two stages, so the formatter and the compiler share one reader:
 *
 *   text --lex/parse--> tree of `struct hv` (values with line numbers)
 *        --compile----> struct policy (rules with capability bits)
 *        --format-----> canonical HCL text
 *
 * Inputs are bounded: policy text comes from an HTTP body already capped
 * by the listener, and nesting is capped at HV_MAX_DEPTH.
 */
#include "policy_hcl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

#define HV_MAX_DEPTH 32
#define POLICY_TEXT_MAX ((size_t)4 * 1024 * 1024)

/* ================================================================ tree == */

enum hv_type { HV_STR, HV_NUM, HV_BOOL, HV_LIST, HV_OBJ };

struct hv {
    enum hv_type t;
    int line;
    char *s;           /* string value, or a number's literal */
    bool b;
    bool block;        /* object written as `key "label" { }` */
    struct hv **items; /* list items or object values */
    char **keys;       /* object keys (NULL for lists) */
    int *key_lines;
    size_t n, cap;
};

static struct hv *hv_new(enum hv_type t, int line)
{
    struct hv *v = xcalloc(1, sizeof(*v));

    v->t = t;
    v->line = line;
    return v;
}

static void hv_free(struct hv *v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; i < v->n; i++) {
        hv_free(v->items[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lines);
    free(v->s);
    free(v);
}

/* Appends item (owned) under key (copied; NULL for lists). */
static void hv_add(struct hv *v, const char *key, int line, struct hv *item)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4;
        v->items = xrealloc(v->items, v->cap * sizeof(*v->items));
        if (v->t == HV_OBJ) {
            v->keys = xrealloc(v->keys, v->cap * sizeof(*v->keys));
            v->key_lines = xrealloc(v->key_lines,
                                    v->cap * sizeof(*v->key_lines));
        }
    }
    if (v->t == HV_OBJ) {
        v->keys[v->n] = xstrdup(key);
        v->key_lines[v->n] = line;
    }
    v->items[v->n++] = item;
}

/* =============================================================== lexer == */

enum tok { T_EOF, T_IDENT, T_STR, T_NUM, T_LBRACE, T_RBRACE, T_LBRACK,
           T_RBRACK, T_EQ, T_COMMA, T_ERR };

struct lex {
    const char *p, *end;
    int line;
    enum tok t;
    int tline;
    struct buf text; /* IDENT, STR, NUM */
    struct errbuf *err;
};

static int lex_fail(struct lex *lx, int line, const char *what)
{
    errbuf_set(lx->err, "line %d: %s", line, what);
    lx->t = T_ERR;
    return T_ERR;
}

/*
 * HCL 1 takes three comment styles (hash, double slash, C block);
 * Vault's policies in the wild use all three, so all are skipped,
 * counting lines for errors.
 */
static void skip_space(struct lex *lx)
{
    while (lx->p < lx->end) {
        char c = *lx->p;
        if (c == '\n') {
            lx->line++;
            lx->p++;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            lx->p++;
        } else if (c == '#' || (c == '/' && lx->p + 1 < lx->end &&
                                lx->p[1] == '/')) {
            while (lx->p < lx->end && *lx->p != '\n')
                lx->p++;
        } else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
            lx->p += 2;
            while (lx->p + 1 < lx->end &&
                   !(lx->p[0] == '*' && lx->p[1] == '/')) {
                if (*lx->p == '\n')
                    lx->line++;
                lx->p++;
            }
            lx->p = lx->p + 1 < lx->end ? lx->p + 2 : lx->end;
        } else {
            break;
        }
    }
}

static int lex_string(struct lex *lx)
{
    lx->p++; /* opening quote */
    while (lx->p < lx->end && *lx->p != '"') {
        char c = *lx->p++;
        if (c == '\n')
            return lex_fail(lx, lx->tline, "unterminated string");
        if (c != '\\') {
            buf_append(&lx->text, &c, 1);
            continue;
        }
        if (lx->p >= lx->end)
            break;
        c = *lx->p++;
        switch (c) {
        case 'n': buf_append(&lx->text, "\n", 1); break;
        case 't': buf_append(&lx->text, "\t", 1); break;
        case 'r': buf_append(&lx->text, "\r", 1); break;
        case 'b': buf_append(&lx->text, "\b", 1); break;
        case 'f': buf_append(&lx->text, "\f", 1); break;
        case '"': case '\\': case '/': buf_append(&lx->text, &c, 1); break;
        case 'u': {
            char u8[UTF8_MAX];
            unsigned cp = 0;
            for (int i = 0; i < 4; i++) {
                int h = lx->p < lx->end ? hex_value((unsigned char)*lx->p)
                                        : -1;
                if (h < 0)
                    return lex_fail(lx, lx->line, "invalid \\u escape");
                cp = cp * 16 + (unsigned)h;
                lx->p++;
            }
            buf_append(&lx->text, u8, utf8_encode(cp, u8));
            break;
        }
        default:
            return lex_fail(lx, lx->line, "invalid escape in string");
        }
    }
    if (lx->p >= lx->end)
        return lex_fail(lx, lx->tline, "unterminated string");
    lx->p++;
    return lx->t = T_STR;
}

/* <<EOF ... EOF (and <<-EOF, whose lines may be indented). */
static int lex_heredoc(struct lex *lx)
{
    const char *m, *line;
    size_t mlen;
    bool indent;

    lx->p += 2;
    indent = lx->p < lx->end && *lx->p == '-';
    if (indent)
        lx->p++;
    m = lx->p;
    while (lx->p < lx->end && (isalnum((unsigned char)*lx->p) ||
                               *lx->p == '_'))
        lx->p++;
    mlen = (size_t)(lx->p - m);
    if (mlen == 0 || lx->p >= lx->end || *lx->p != '\n')
        return lex_fail(lx, lx->tline, "invalid heredoc marker");
    lx->p++;
    lx->line++;
    while (lx->p < lx->end) {
        const char *eol = memchr(lx->p, '\n', (size_t)(lx->end - lx->p));
        const char *s;
        size_t n;

        if (eol == NULL)
            eol = lx->end;
        line = lx->p;
        s = line;
        if (indent)
            while (s < eol && (*s == ' ' || *s == '\t'))
                s++;
        n = (size_t)(eol - s);
        if (n >= mlen && memcmp(s, m, mlen) == 0 &&
            (n == mlen || (n == mlen + 1 && s[mlen] == '\r'))) {
            lx->p = eol;
            return lx->t = T_STR;
        }
        buf_append(&lx->text, line, (size_t)(eol - line));
        buf_append(&lx->text, "\n", 1);
        lx->p = eol < lx->end ? eol + 1 : eol;
        lx->line++;
    }
    return lex_fail(lx, lx->tline, "unterminated heredoc");
}

static int lex_next(struct lex *lx)
{
    char c;

    if (lx->t == T_ERR)
        return T_ERR;
    skip_space(lx);
    buf_reset(&lx->text);
    lx->tline = lx->line;
    if (lx->p >= lx->end)
        return lx->t = T_EOF;
    c = *lx->p;
    switch (c) {
    case '{': lx->p++; return lx->t = T_LBRACE;
    case '}': lx->p++; return lx->t = T_RBRACE;
    case '[': lx->p++; return lx->t = T_LBRACK;
    case ']': lx->p++; return lx->t = T_RBRACK;
    case '=': case ':': lx->p++; return lx->t = T_EQ;
    case ',': lx->p++; return lx->t = T_COMMA;
    case '"': return lex_string(lx);
    default: break;
    }
    if (c == '<' && lx->p + 1 < lx->end && lx->p[1] == '<')
        return lex_heredoc(lx);
    if (c == '-' || c == '+' || c == '.' || isdigit((unsigned char)c)) {
        const char *s = lx->p;
        lx->p++;
        while (lx->p < lx->end && (isalnum((unsigned char)*lx->p) ||
                                   *lx->p == '.' || *lx->p == '-' ||
                                   *lx->p == '+'))
            lx->p++;
        buf_append(&lx->text, s, (size_t)(lx->p - s));
        return lx->t = T_NUM;
    }
    if (isalpha((unsigned char)c) || c == '_') {
        const char *s = lx->p;
        while (lx->p < lx->end && (isalnum((unsigned char)*lx->p) ||
                                   *lx->p == '_' || *lx->p == '-' ||
                                   *lx->p == '.'))
            lx->p++;
        buf_append(&lx->text, s, (size_t)(lx->p - s));
        return lx->t = T_IDENT;
    }
    {
        char what[64];
        if (isprint((unsigned char)c))
            snprintf(what, sizeof(what), "unexpected character '%c'", c);
        else
            snprintf(what, sizeof(what), "unexpected byte 0x%02x",
                     (unsigned char)c);
        return lex_fail(lx, lx->line, what);
    }
}

static const char *tok_name(enum tok t)
{
    switch (t) {
    case T_EOF: return "end of input";
    case T_IDENT: return "identifier";
    case T_STR: return "string";
    case T_NUM: return "number";
    case T_LBRACE: return "'{'";
    case T_RBRACE: return "'}'";
    case T_LBRACK: return "'['";
    case T_RBRACK: return "']'";
    case T_EQ: return "'='";
    case T_COMMA: return "','";
    case T_ERR: return "error";
    }
    return "?";
}

static int unexpected(struct lex *lx, const char *want)
{
    char what[128];

    if (lx->t == T_ERR)
        return T_ERR;
    snprintf(what, sizeof(what), "expected %s, got %s", want,
             tok_name(lx->t));
    return lex_fail(lx, lx->tline, what);
}

/* ============================================================== parser == */

static struct hv *parse_value(struct lex *lx, int depth);

/*
 * Numbers are kept as their literal text (HV_NUM), never converted: the
 * formatter must print back exactly what the author wrote.
 */
static bool is_number(const char *s)
{
    char *end;

    if (*s == '\0')
        return false;
    (void)strtod(s, &end);
    return *end == '\0';
}

/*
 * Parses object members into obj until `close` (T_RBRACE or T_EOF). The
 * current token is the first one of the body; on return it is `close`.
 */
static bool parse_body(struct lex *lx, struct hv *obj, enum tok close,
                       int depth)
{
    if (depth > HV_MAX_DEPTH) {
        lex_fail(lx, lx->tline, "nesting too deep");
        return false;
    }
    while (lx->t != close) {
        struct hv *target = obj, *val;
        char *key;
        int kline = lx->tline;

        if (lx->t != T_IDENT && lx->t != T_STR) {
            unexpected(lx, close == T_EOF ? "a key" : "a key or '}'");
            return false;
        }
        key = buf_detach(&lx->text, NULL);
        if (key == NULL)
            key = xstrdup("");
        lex_next(lx);
        /* key "label" "label" { ... } */
        while (lx->t == T_STR || lx->t == T_IDENT) {
            struct hv *o = hv_new(HV_OBJ, kline);
            char *label = buf_detach(&lx->text, NULL);
            o->block = true;
            hv_add(target, key, kline, o);
            free(key);
            key = label != NULL ? label : xstrdup("");
            kline = lx->tline;
            target = o;
            lex_next(lx);
        }
        if (lx->t == T_EQ) {
            lex_next(lx);
            val = parse_value(lx, depth + 1);
        } else if (lx->t == T_LBRACE) {
            val = parse_value(lx, depth + 1);
            if (val != NULL)
                val->block = true;
        } else {
            unexpected(lx, "'=' or '{'");
            free(key);
            return false;
        }
        if (val == NULL) {
            free(key);
            return false;
        }
        hv_add(target, key, kline, val);
        free(key);
        if (lx->t == T_COMMA)
            lex_next(lx);
    }
    return true;
}

/* Parses one value starting at the current token; advances past it. */
static struct hv *parse_value(struct lex *lx, int depth)
{
    struct hv *v;
    int line = lx->tline;

    if (depth > HV_MAX_DEPTH) {
        lex_fail(lx, line, "nesting too deep");
        return NULL;
    }
    switch (lx->t) {
    case T_STR:
        v = hv_new(HV_STR, line);
        v->s = buf_detach(&lx->text, NULL);
        if (v->s == NULL)
            v->s = xstrdup("");
        lex_next(lx);
        return v;
    case T_NUM:
        if (!is_number(lx->text.ptr)) {
            lex_fail(lx, line, "invalid number");
            return NULL;
        }
        v = hv_new(HV_NUM, line);
        v->s = buf_detach(&lx->text, NULL);
        lex_next(lx);
        return v;
    case T_IDENT:
        if (strcmp(lx->text.ptr, "true") == 0 ||
            strcmp(lx->text.ptr, "false") == 0) {
            v = hv_new(HV_BOOL, line);
            v->b = lx->text.ptr[0] == 't';
            lex_next(lx);
            return v;
        }
        unexpected(lx, "a value");
        return NULL;
    case T_LBRACK:
        v = hv_new(HV_LIST, line);
        lex_next(lx);
        while (lx->t != T_RBRACK) {
            struct hv *item = parse_value(lx, depth + 1);
            if (item == NULL) {
                hv_free(v);
                return NULL;
            }
            hv_add(v, NULL, 0, item);
            if (lx->t == T_COMMA) {
                lex_next(lx);
            } else if (lx->t != T_RBRACK) {
                unexpected(lx, "',' or ']'");
                hv_free(v);
                return NULL;
            }
        }
        lex_next(lx);
        return v;
    case T_LBRACE:
        v = hv_new(HV_OBJ, line);
        lex_next(lx);
        if (!parse_body(lx, v, T_RBRACE, depth + 1)) {
            hv_free(v);
            return NULL;
        }
        lex_next(lx);
        return v;
    default:
        unexpected(lx, "a value");
        return NULL;
    }
}

/* Parses a whole document: a body, or one JSON-style object. */
static struct hv *parse_doc(const char *text, struct errbuf *err)
{
    struct lex lx = {.p = text, .end = text + strlen(text), .line = 1,
                     .err = err};
    struct hv *root = NULL;

    buf_init(&lx.text, POLICY_TEXT_MAX);
    lex_next(&lx);
    if (lx.t == T_LBRACE) {
        root = parse_value(&lx, 0);
        if (root != NULL && lx.t != T_EOF) {
            unexpected(&lx, "end of input");
            hv_free(root);
            root = NULL;
        }
    } else if (lx.t != T_ERR) {
        root = hv_new(HV_OBJ, 1);
        if (!parse_body(&lx, root, T_EOF, 0)) {
            hv_free(root);
            root = NULL;
        }
    }
    buf_release(&lx.text);
    return root;
}

/* ============================================================ compile == */

static const struct {
    const char *name;
    unsigned bit;
} cap_table[] = {
    {"create", PCAP_CREATE}, {"deny", PCAP_DENY},   {"delete", PCAP_DELETE},
    {"list", PCAP_LIST},     {"patch", PCAP_PATCH}, {"read", PCAP_READ},
    {"sudo", PCAP_SUDO},     {"update", PCAP_UPDATE},
};

void policy_cap_names(unsigned caps, struct strvec *out)
{
    for (size_t i = 0; i < ARRAY_LEN(cap_table); i++) {
        if (caps & cap_table[i].bit)
            strvec_push(out, cap_table[i].name);
    }
}

void policy_perms_release(struct policy_perms *p)
{
    cJSON_Delete(p->allowed);
    cJSON_Delete(p->denied);
    strvec_release(&p->required);
    memset(p, 0, sizeof(*p));
}

static cJSON *hv_to_json(const struct hv *v)
{
    cJSON *o;
    size_t i;

    switch (v->t) {
    case HV_STR: return cJSON_CreateString(v->s);
    case HV_NUM: return cJSON_CreateNumber(strtod(v->s, NULL));
    case HV_BOOL: return cJSON_CreateBool(v->b);
    case HV_LIST:
        o = cJSON_CreateArray();
        for (i = 0; i < v->n; i++)
            cJSON_AddItemToArray(o, hv_to_json(v->items[i]));
        return o;
    case HV_OBJ:
        o = cJSON_CreateObject();
        for (i = 0; i < v->n; i++)
            cJSON_AddItemToObject(o, v->keys[i], hv_to_json(v->items[i]));
        return o;
    }
    return cJSON_CreateNull();
}

/*
 * The HCL reader for other grammars (password policies): the document as
 * JSON, repeated keys kept in order. Syntax errors name their line.
 */
cJSON *policy_hcl_to_json(const char *text, struct errbuf *err)
{
    struct hv *root = parse_doc(text, err);
    cJSON *j = root != NULL ? hv_to_json(root) : NULL;

    hv_free(root);
    return j;
}

static void lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* The rule being compiled, for error messages. */
struct cctx {
    const char *path;
    struct errbuf *err;
};

static bool cfail(struct cctx *c, int line, const char *fmt, const char *a)
{
    char what[200];

    snprintf(what, sizeof(what), fmt, a);
    if (line > 0)
        errbuf_set(c->err, "path \"%s\": %s on line %d", c->path, what,
                   line);
    else
        errbuf_set(c->err, "path \"%s\": %s", c->path, what);
    return false;
}

static bool compile_caps(struct cctx *c, const struct hv *v, unsigned *caps)
{
    size_t i, k;

    if (v->t != HV_LIST)
        return cfail(c, v->line, "%s must be a list of strings",
                     "capabilities");
    for (i = 0; i < v->n; i++) {
        const struct hv *e = v->items[i];
        if (e->t != HV_STR)
            return cfail(c, e->line, "%s must be a list of strings",
                         "capabilities");
        for (k = 0; k < ARRAY_LEN(cap_table); k++) {
            if (strcmp(e->s, cap_table[k].name) == 0)
                break;
        }
        if (k == ARRAY_LEN(cap_table))
            return cfail(c, e->line, "invalid capability \"%s\"", e->s);
        *caps |= cap_table[k].bit;
    }
    return true;
}

static bool compile_legacy(struct cctx *c, const struct hv *v, unsigned *caps)
{
    const unsigned rd = PCAP_READ | PCAP_LIST;
    const unsigned wr = rd | PCAP_CREATE | PCAP_UPDATE | PCAP_DELETE;

    if (v->t != HV_STR)
        return cfail(c, v->line, "%s must be a string", "policy");
    if (strcmp(v->s, "deny") == 0)
        *caps |= PCAP_DENY;
    else if (strcmp(v->s, "read") == 0)
        *caps |= rd;
    else if (strcmp(v->s, "write") == 0)
        *caps |= wr;
    else if (strcmp(v->s, "sudo") == 0)
        *caps |= wr | PCAP_SUDO;
    else
        return cfail(c, v->line, "invalid policy \"%s\"", v->s);
    return true;
}

/* allowed_parameters / denied_parameters: {key = [values]}. */
static bool compile_params(struct cctx *c, const char *what,
                           struct hv *v, cJSON **out)
{
    size_t i;

    if (v->t != HV_OBJ)
        return cfail(c, v->line, "%s must be a map of lists", what);
    if (*out == NULL)
        *out = cJSON_CreateObject();
    for (i = 0; i < v->n; i++) {
        char *k = xstrdup(v->keys[i]);
        cJSON *have;

        /* Lua: an empty table {} converts to an empty object. */
        if (v->items[i]->t == HV_OBJ && v->items[i]->n == 0)
            v->items[i]->t = HV_LIST;
        if (v->items[i]->t != HV_LIST) {
            free(k);
            return cfail(c, v->items[i]->line, "%s must be a map of lists",
                         what);
        }
        lower(k);
        have = cJSON_GetObjectItemCaseSensitive(*out, k);
        if (have == NULL) {
            cJSON_AddItemToObject(*out, k, hv_to_json(v->items[i]));
        } else if (cJSON_GetArraySize(have) > 0) {
            cJSON *more = hv_to_json(v->items[i]), *e;
            if (cJSON_GetArraySize(more) == 0) {
                cJSON_ReplaceItemInObjectCaseSensitive(*out, k, more);
            } else {
                while ((e = cJSON_DetachItemFromArray(more, 0)) != NULL)
                    cJSON_AddItemToArray(have, e);
                cJSON_Delete(more);
            }
        }
        free(k);
    }
    return true;
}

static bool compile_wrap(struct cctx *c, const char *what,
                         const struct hv *v, int64_t *out)
{
    struct errbuf e;

    if (v->t == HV_NUM) {
        if (int64_parse(v->s, out) != 0 || *out < 0)
            return cfail(c, v->line, "invalid %s", what);
        return true;
    }
    if (v->t != HV_STR || duration_parse(v->s, out, &e) != 0)
        return cfail(c, v->line, "invalid %s", what);
    return true;
}

static void policy_add_rule(struct policy *p, struct policy_rule *r)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        p->rules = xrealloc(p->rules, p->cap * sizeof(*p->rules));
    }
    p->rules[p->n++] = *r;
}

/*
 * Checks the pattern's wildcards; strips a leading '/', as Vault does, so
 * "/secret/x" and "secret/x" are one rule (requests never start with
 * one). Only one is stripped: "//x" stays a different rule, which the
 * formatter must then print back unchanged.
 */
static bool check_pattern(struct cctx *c, int line, char **pat)
{
    char *s = *pat;

    if (s[0] == '/')
        memmove(s, s + 1, strlen(s));
    if (strstr(s, "+*") != NULL)
        return cfail(c, line, "%s", "invalid use of wildcards ('+*' is "
                                    "forbidden)");
    return true;
}

static bool compile_rule(struct policy *p, const char *pattern, int line,
                         struct hv *body, struct errbuf *err)
{
    struct policy_rule r = {.path = xstrdup(pattern), .line = line};
    struct cctx c = {.path = pattern, .err = err};
    size_t i;

    strvec_init(&r.perms.required);
    if (!check_pattern(&c, line, &r.path))
        goto fail;
    if (body->t != HV_OBJ) {
        cfail(&c, body->line, "%s", "rule must be an object");
        goto fail;
    }
    for (i = 0; i < body->n; i++) {
        const char *k = body->keys[i];
        struct hv *v = body->items[i];
        bool ok = true;

        if (strcmp(k, "capabilities") == 0) {
            ok = compile_caps(&c, v, &r.perms.caps);
        } else if (strcmp(k, "policy") == 0) {
            ok = compile_legacy(&c, v, &r.perms.caps);
        } else if (strcmp(k, "allowed_parameters") == 0) {
            ok = compile_params(&c, k, v, &r.perms.allowed);
        } else if (strcmp(k, "denied_parameters") == 0) {
            ok = compile_params(&c, k, v, &r.perms.denied);
        } else if (strcmp(k, "required_parameters") == 0) {
            if (v->t != HV_LIST) {
                ok = cfail(&c, v->line, "%s must be a list of strings", k);
            }
            for (size_t j = 0; ok && j < v->n; j++) {
                char *name;
                if (v->items[j]->t != HV_STR) {
                    ok = cfail(&c, v->line, "%s must be a list of strings",
                               k);
                    break;
                }
                name = xstrdup(v->items[j]->s);
                lower(name);
                strvec_push_owned(&r.perms.required, name);
            }
        } else if (strcmp(k, "min_wrapping_ttl") == 0) {
            ok = compile_wrap(&c, k, v, &r.perms.min_wrap);
        } else if (strcmp(k, "max_wrapping_ttl") == 0) {
            ok = compile_wrap(&c, k, v, &r.perms.max_wrap);
        } else if (strcmp(k, "mfa_methods") == 0 ||
                   strcmp(k, "control_group") == 0 ||
                   strcmp(k, "comment") == 0) {
            /* parsed and kept by Vault Enterprise; nothing to enforce */
        } else {
            ok = cfail(&c, body->key_lines[i], "invalid key \"%s\"", k);
        }
        if (!ok)
            goto fail;
    }
    if (r.perms.max_wrap > 0 && r.perms.max_wrap < r.perms.min_wrap) {
        cfail(&c, line, "%s", "max_wrapping_ttl cannot be less than "
                              "min_wrapping_ttl");
        goto fail;
    }
    if (r.perms.caps & PCAP_DENY) {
        policy_perms_release(&r.perms);
        r.perms.caps = PCAP_DENY;
    }
    policy_add_rule(p, &r);
    return true;
fail:
    free(r.path);
    policy_perms_release(&r.perms);
    return false;
}

/* `path` members: an object of pattern -> rule, or a list of such. */
static bool compile_paths(struct policy *p, const struct hv *v,
                          struct errbuf *err)
{
    size_t i;

    if (v->t == HV_LIST) {
        for (i = 0; i < v->n; i++) {
            if (!compile_paths(p, v->items[i], err))
                return false;
        }
        return true;
    }
    if (v->t != HV_OBJ) {
        errbuf_set(err, "line %d: path must be followed by a quoted "
                        "pattern and a block", v->line);
        return false;
    }
    for (i = 0; i < v->n; i++) {
        if (!compile_rule(p, v->keys[i], v->key_lines[i], v->items[i], err))
            return false;
    }
    return true;
}

void policy_free(struct policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->rules[i].path);
        policy_perms_release(&p->rules[i].perms);
    }
    free(p->rules);
    free(p);
}

struct policy *policy_parse(const char *text, struct errbuf *err)
{
    struct hv *root = parse_doc(text, err);
    struct policy *p;
    size_t i;

    if (root == NULL)
        return NULL;
    p = xcalloc(1, sizeof(*p));
    for (i = 0; i < root->n; i++) {
        const char *k = root->keys[i];
        bool ok = true;

        if (strcmp(k, "path") == 0) {
            ok = compile_paths(p, root->items[i], err);
        } else if (strcmp(k, "name") == 0) {
            /* allowed, ignored: the name comes from the URL */
        } else {
            errbuf_set(err, "invalid key \"%s\" on line %d", k,
                       root->key_lines[i]);
            ok = false;
        }
        if (!ok) {
            policy_free(p);
            p = NULL;
            break;
        }
    }
    hv_free(root);
    return p;
}

/* cJSON -> hv, for Lua paths tables (no line numbers). */
static struct hv *json_to_hv(const cJSON *j)
{
    struct hv *v;
    const cJSON *e;
    char num[64];

    if (cJSON_IsString(j)) {
        v = hv_new(HV_STR, 0);
        v->s = xstrdup(j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        v = hv_new(HV_NUM, 0);
        snprintf(num, sizeof(num), "%.17g", j->valuedouble);
        v->s = xstrdup(num);
    } else if (cJSON_IsBool(j)) {
        v = hv_new(HV_BOOL, 0);
        v->b = cJSON_IsTrue(j);
    } else if (cJSON_IsArray(j)) {
        v = hv_new(HV_LIST, 0);
        cJSON_ArrayForEach(e, j) hv_add(v, NULL, 0, json_to_hv(e));
    } else if (cJSON_IsObject(j)) {
        v = hv_new(HV_OBJ, 0);
        cJSON_ArrayForEach(e, j) hv_add(v, e->string, 0, json_to_hv(e));
    } else {
        v = hv_new(HV_STR, 0);
        v->s = xstrdup("");
    }
    return v;
}

struct policy *policy_from_paths(const cJSON *paths, struct errbuf *err)
{
    struct hv *v;
    struct policy *p;

    if (!cJSON_IsObject(paths)) {
        errbuf_set(err, "paths must be a table of pattern = rule");
        return NULL;
    }
    v = json_to_hv(paths);
    p = xcalloc(1, sizeof(*p));
    /* An empty Lua table converts to an empty object: no rules. */
    if (!compile_paths(p, v, err)) {
        policy_free(p);
        p = NULL;
    }
    hv_free(v);
    return p;
}

/* ============================================================== format == */

static void fmt_string(struct buf *b, const char *s)
{
    buf_append(b, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            buf_appendf(b, "\\%c", c);
        else if (c == '\n')
            buf_append(b, "\\n", 2);
        else if (c == '\t')
            buf_append(b, "\\t", 2);
        else if (c < 0x20)
            buf_appendf(b, "\\u%04x", c);
        else
            buf_append(b, (const char *)&c, 1);
    }
    buf_append(b, "\"", 1);
}

static bool is_ident(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return false;
    for (; *s != '\0'; s++) {
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return false;
    }
    return true;
}

static void fmt_indent(struct buf *b, int depth)
{
    for (int i = 0; i < depth; i++)
        buf_append(b, "  ", 2);
}

static void fmt_body(struct buf *b, const struct hv *obj, int depth);

static void fmt_value(struct buf *b, const struct hv *v, int depth)
{
    size_t i;

    switch (v->t) {
    case HV_STR: fmt_string(b, v->s); break;
    case HV_NUM: buf_append_str(b, v->s); break;
    case HV_BOOL: buf_append_str(b, v->b ? "true" : "false"); break;
    case HV_LIST:
        buf_append(b, "[", 1);
        for (i = 0; i < v->n; i++) {
            if (i > 0)
                buf_append(b, ", ", 2);
            fmt_value(b, v->items[i], depth);
        }
        buf_append(b, "]", 1);
        break;
    case HV_OBJ:
        if (v->n == 0) {
            buf_append(b, "{}", 2);
            break;
        }
        buf_append(b, "{\n", 2);
        fmt_body(b, v, depth + 1);
        fmt_indent(b, depth);
        buf_append(b, "}", 1);
        break;
    }
}

static void fmt_key(struct buf *b, const char *k, bool quote)
{
    if (!quote && is_ident(k))
        buf_append_str(b, k);
    else
        fmt_string(b, k);
}

/* Writes `key "label" {` chains for block objects, `k = v` otherwise. */
static void fmt_body(struct buf *b, const struct hv *obj, int depth)
{
    for (size_t i = 0; i < obj->n; i++) {
        const struct hv *v = obj->items[i];
        bool blk = v->t == HV_OBJ && v->block;

        if (blk && i > 0)
            buf_append(b, "\n", 1);
        fmt_indent(b, depth);
        fmt_key(b, obj->keys[i], false);
        /* key "a" "b" { }: labels are one-member block objects */
        while (blk && v->n == 1 && v->items[0]->t == HV_OBJ &&
               v->items[0]->block) {
            buf_append(b, " ", 1);
            fmt_key(b, v->keys[0], true);
            v = v->items[0];
        }
        if (blk) {
            buf_append(b, " ", 1);
            fmt_value(b, v, depth);
        } else {
            buf_append(b, " = ", 3);
            fmt_value(b, v, depth);
        }
        buf_append(b, "\n", 1);
        if (blk && i + 1 < obj->n && !(obj->items[i + 1]->t == HV_OBJ &&
                                       obj->items[i + 1]->block))
            buf_append(b, "\n", 1);
    }
}

char *policy_format(const char *text, struct errbuf *err)
{
    struct hv *root = parse_doc(text, err);
    struct buf b;
    char *out;

    if (root == NULL)
        return NULL;
    /* No ceiling: a ceiling met half-way would silently drop the front of
       the text (buf.h). The output is bounded by the input anyway: at
       most ~70 bytes per input token at HV_MAX_DEPTH indentation. */
    buf_init(&b, SIZE_MAX);
    /* JSON-style documents read as one object: format its body. */
    fmt_body(&b, root, 0);
    hv_free(root);
    out = buf_detach(&b, NULL);
    return out != NULL ? out : xstrdup("");
}

static void render_json_list(struct buf *b, const cJSON *arr)
{
    const cJSON *e;
    bool first = true;

    buf_append(b, "[", 1);
    cJSON_ArrayForEach(e, arr) {
        char *s = cJSON_PrintUnformatted(e);
        if (!first)
            buf_append(b, ", ", 2);
        buf_append_str(b, s);
        free(s);
        first = false;
    }
    buf_append(b, "]", 1);
}

static void render_params(struct buf *b, const char *what, const cJSON *o)
{
    const cJSON *e;

    if (o == NULL)
        return;
    buf_appendf(b, "  %s = {\n", what);
    cJSON_ArrayForEach(e, o) {
        buf_append(b, "    ", 4);
        fmt_string(b, e->string);
        buf_append(b, " = ", 3);
        render_json_list(b, e);
        buf_append(b, "\n", 1);
    }
    buf_append(b, "  }\n", 4);
}

char *policy_render(const struct policy *p)
{
    struct buf b;
    char *out;

    buf_init(&b, SIZE_MAX); /* no ceiling: see policy_format */
    for (size_t i = 0; i < p->n; i++) {
        const struct policy_rule *r = &p->rules[i];
        struct strvec caps;

        strvec_init(&caps);
        policy_cap_names(r->perms.caps, &caps);
        if (i > 0)
            buf_append(&b, "\n", 1);
        buf_append_str(&b, "path ");
        if (r->path[0] == '/') {
            /* Parsing strips one leading '/' (as Vault does); write it
               back so the text means this rule, not a wider one. */
            char *slashed = xmalloc(strlen(r->path) + 2);
            slashed[0] = '/';
            memcpy(slashed + 1, r->path, strlen(r->path) + 1);
            fmt_string(&b, slashed);
            free(slashed);
        } else {
            fmt_string(&b, r->path);
        }
        buf_append_str(&b, " {\n  capabilities = [");
        for (size_t k = 0; k < caps.n; k++)
            buf_appendf(&b, "%s\"%s\"", k > 0 ? ", " : "", caps.v[k]);
        buf_append_str(&b, "]\n");
        strvec_release(&caps);
        render_params(&b, "allowed_parameters", r->perms.allowed);
        render_params(&b, "denied_parameters", r->perms.denied);
        if (r->perms.required.n > 0) {
            buf_append_str(&b, "  required_parameters = [");
            for (size_t k = 0; k < r->perms.required.n; k++) {
                if (k > 0)
                    buf_append(&b, ", ", 2);
                fmt_string(&b, r->perms.required.v[k]);
            }
            buf_append_str(&b, "]\n");
        }
        if (r->perms.min_wrap > 0)
            buf_appendf(&b, "  min_wrapping_ttl = %lld\n",
                        (long long)r->perms.min_wrap);
        if (r->perms.max_wrap > 0)
            buf_appendf(&b, "  max_wrapping_ttl = %lld\n",
                        (long long)r->perms.max_wrap);
        buf_append_str(&b, "}\n");
    }
    out = buf_detach(&b, NULL);
    return out != NULL ? out : xstrdup("");
}

/* ============================================================== merge == */

/* Vault's rule: an empty list on either side allows any value. */
static void merge_params(cJSON **dst, const cJSON *src)
{
    const cJSON *e;

    if (src == NULL)
        return;
    if (*dst == NULL) {
        *dst = cJSON_Duplicate(src, 1);
        return;
    }
    cJSON_ArrayForEach(e, src) {
        cJSON *have = cJSON_GetObjectItemCaseSensitive(*dst, e->string);
        const cJSON *x;

        if (have == NULL) {
            cJSON_AddItemToObject(*dst, e->string, cJSON_Duplicate(e, 1));
        } else if (cJSON_GetArraySize(have) == 0) {
            continue;
        } else if (cJSON_GetArraySize(e) == 0) {
            cJSON_ReplaceItemInObjectCaseSensitive(*dst, e->string,
                                                   cJSON_CreateArray());
        } else {
            cJSON_ArrayForEach(x, e)
                cJSON_AddItemToArray(have, cJSON_Duplicate(x, 1));
        }
    }
}

static int64_t smallest_set(int64_t a, int64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

void policy_perms_merge(struct policy_perms *dst,
                        const struct policy_perms *src)
{
    if ((dst->caps | src->caps) & PCAP_DENY) {
        policy_perms_release(dst);
        dst->caps = PCAP_DENY;
        return;
    }
    dst->caps |= src->caps;
    merge_params(&dst->allowed, src->allowed);
    merge_params(&dst->denied, src->denied);
    for (size_t i = 0; i < src->required.n; i++) {
        if (!strvec_contains(&dst->required, src->required.v[i]))
            strvec_push(&dst->required, src->required.v[i]);
    }
    dst->min_wrap = smallest_set(dst->min_wrap, src->min_wrap);
    dst->max_wrap = smallest_set(dst->max_wrap, src->max_wrap);
}
