/*
 * db_pg_conninfo.c - connection strings: where their passwords are, and
 * keeping them out of every message.
 *
 * Owns the scanner that finds password values in both forms libpq takes
 * (URL and key/value, malformed ones included), the redaction the
 * database engine shows operators (db_redact_conninfo), and the list of
 * secrets a pool scrubs from libpq's and the server's error texts. Pure
 * string work: no connection, no lock (libpq's keyword list is loaded
 * once). Does not own pools or connections (db_pg.c).
 */
#include "db_pg_conninfo.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define REDACTED "xxxxx"

/*
 * Where the passwords of a connection string are. Both forms libpq takes
 * are scanned the way libpq reads them, but generously where the string is
 * malformed: a password with an unescaped '@', '&' or space makes libpq
 * quote the rest of it as a host, parameter or keyword in its error
 * message, so the words that follow a password value belong to it until a
 * real libpq keyword starts.
 *
 *   postgresql://user:PW@host:5432/db?sslmode=disable&password=PW
 *                     ^^                                      ^^
 *   host=h user=u password='P \' W' sslpassword=PW dbname='password=PW'
 *                          ^^^^^^^^             ^^        ^^^^^^^^^^^^^
 */
struct secret_span {
    size_t off, len; /* in the raw string */
    char *decoded;   /* the value as libpq reads it, owned */
};

struct spans {
    struct secret_span *v;
    size_t n, cap;
};

static void spans_add(struct spans *s, size_t off, size_t len, char *decoded)
{
    if (s->n == s->cap) {
        s->cap = s->cap == 0 ? 4 : s->cap * 2;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n].off = off;
    s->v[s->n].len = len;
    s->v[s->n].decoded = decoded;
    s->n++;
}

static void spans_release(struct spans *s)
{
    for (size_t i = 0; i < s->n; i++)
        secure_free_str(s->v[i].decoded);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static bool is_url_form(const char *s)
{
    return str_has_prefix(s, "postgresql://") ||
           str_has_prefix(s, "postgres://");
}

static bool is_secret_key(const char *k, size_t n)
{
    return (n == 8 && strncmp(k, "password", 8) == 0) ||
           (n == 11 && strncmp(k, "sslpassword", 11) == 0);
}

static PQconninfoOption *known_keys;
static pthread_once_t known_keys_once = PTHREAD_ONCE_INIT;

static void known_keys_load(void)
{
    known_keys = PQconndefaults();
}

/* True when the n bytes at k are a keyword libpq knows. */
static bool is_libpq_key(const char *k, size_t n)
{
    pthread_once(&known_keys_once, known_keys_load);
    for (PQconninfoOption *o = known_keys; o != NULL && o->keyword != NULL;
         o++) {
        if (strlen(o->keyword) == n && strncmp(o->keyword, k, n) == 0)
            return true;
    }
    return false;
}

/* True when s starts with "<libpq keyword>" then (spaces and) '='. */
static bool starts_param(const char *s, bool spaces)
{
    size_t n = 0;

    while (isalnum((unsigned char)s[n]) || s[n] == '_')
        n++;
    if (n == 0 || !is_libpq_key(s, n))
        return false;
    while (spaces && isspace((unsigned char)s[n]))
        n++;
    return s[n] == '=';
}

/* Percent-decodes n bytes (bad escapes are kept as written). */
static char *pct_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 &&
            hex_value(s[i + 2]) >= 0) {
            out[o++] = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* Drops unescaped single quotes and resolves backslash escapes. */
static char *kv_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n)
            out[o++] = s[++i];
        else if (s[i] != '\'')
            out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

static void scan_url(const char *s, struct spans *out)
{
    const char *auth = strstr(s, "://") + 3;
    const char *q = strchr(auth, '?');
    const char *end = q != NULL ? q : auth + strlen(auth);
    const char *at = NULL, *colon, *p, *v, *vend;
    size_t klen;
    char *key;
    bool secret;

    /* The last '@' before the query: an unescaped '@' in a password. */
    for (p = auth; p < end; p++) {
        if (*p == '@')
            at = p;
    }
    colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon != NULL)
        spans_add(out, (size_t)(colon + 1 - s), (size_t)(at - colon - 1),
                  pct_decode(colon + 1, (size_t)(at - colon - 1)));
    for (p = q != NULL ? q + 1 : end; *p != '\0';) {
        klen = strcspn(p, "=&");
        if (p[klen] != '=') {
            p += klen + (p[klen] == '&');
            continue;
        }
        key = pct_decode(p, klen);
        secret = is_secret_key(key, strlen(key));
        free(key);
        v = p + klen + 1;
        vend = v + strcspn(v, "&");
        while (secret && *vend == '&' && !starts_param(vend + 1, false))
            vend += 1 + strcspn(vend + 1, "&");
        if (secret)
            spans_add(out, (size_t)(v - s), (size_t)(vend - v),
                      pct_decode(v, (size_t)(vend - v)));
        p = vend + (*vend == '&');
    }
}

/* The end of one key/value value at p: quoted with escapes, or a word. */
static const char *kv_value_end(const char *p)
{
    if (*p == '\'') {
        for (p++; *p != '\0' && *p != '\''; p++) {
            if (*p == '\\' && p[1] != '\0')
                p++;
        }
        return *p != '\0' ? p + 1 : p;
    }
    for (; *p != '\0' && !isspace((unsigned char)*p); p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
    }
    return p;
}

static void scan_kv(const char *s, struct spans *out, bool nested);

static void scan_kv_value(const char *s, const char *k, size_t klen,
                          const char *v, struct spans *out, bool nested)
{
    const char *vend = kv_value_end(v), *w, *q;
    struct spans inner = {0};
    char *d;

    if (is_secret_key(k, klen)) {
        for (;;) {
            for (w = vend; isspace((unsigned char)*w); w++)
                ;
            if (*w == '\0' || starts_param(w, true))
                break;
            q = kv_value_end(w);
            vend = q;
        }
        spans_add(out, (size_t)(v - s), (size_t)(vend - v),
                  kv_decode(v, (size_t)(vend - v)));
    } else if (!nested && klen == 6 && strncmp(k, "dbname", 6) == 0) {
        /* libpq never expands a nested dbname, but it is stored and read. */
        d = kv_decode(v, (size_t)(vend - v));
        if (is_url_form(d))
            scan_url(d, &inner);
        else if (strchr(d, '=') != NULL)
            scan_kv(d, &inner, true);
        if (inner.n > 0)
            spans_add(out, (size_t)(v - s), (size_t)(vend - v), d);
        else
            secure_free_str(d);
        spans_release(&inner);
    }
}

static void scan_kv(const char *s, struct spans *out, bool nested)
{
    const char *p = s, *k;
    size_t klen;

    while (*p != '\0') {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        k = p;
        while (*p != '\0' && !isspace((unsigned char)*p) && *p != '=')
            p++;
        klen = (size_t)(p - k);
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=')
            continue; /* a stray word: libpq refuses the string */
        p++;
        while (isspace((unsigned char)*p))
            p++;
        scan_kv_value(s, k, klen, p, out, nested);
        /* A secret's span may run past its first word: resume after it. */
        if (out->n > 0 && s + out->v[out->n - 1].off == p)
            p = s + out->v[out->n - 1].off + out->v[out->n - 1].len;
        else
            p = kv_value_end(p);
    }
}

static void conninfo_spans(const char *s, struct spans *out)
{
    if (is_url_form(s))
        scan_url(s, out);
    else
        scan_kv(s, out, false);
}

static bool span_is_literal(const struct secret_span *sp)
{
    return sp->len > 0 && strcmp(sp->decoded, "{{password}}") != 0;
}

char *db_redact_conninfo(const char *conninfo)
{
    struct spans sp = {0};
    size_t n, o = 0, at = 0;
    char *out;

    if (conninfo == NULL)
        return NULL;
    conninfo_spans(conninfo, &sp);
    n = strlen(conninfo) + sp.n * strlen(REDACTED) + 1;
    out = xmalloc(n);
    for (size_t i = 0; i < sp.n; i++) {
        if (sp.v[i].off < at || !span_is_literal(&sp.v[i]))
            continue;
        memcpy(out + o, conninfo + at, sp.v[i].off - at);
        o += sp.v[i].off - at;
        memcpy(out + o, REDACTED, strlen(REDACTED));
        o += strlen(REDACTED);
        at = sp.v[i].off + sp.v[i].len;
    }
    memcpy(out + o, conninfo + at, strlen(conninfo) - at);
    o += strlen(conninfo) - at;
    out[o] = '\0';
    spans_release(&sp);
    return out;
}

bool db_conninfo_has_password(const char *conninfo)
{
    struct spans sp = {0};
    bool found = false;

    if (conninfo == NULL)
        return false;
    conninfo_spans(conninfo, &sp);
    for (size_t i = 0; i < sp.n; i++)
        found = found || span_is_literal(&sp.v[i]);
    spans_release(&sp);
    return found;
}

/* ---------------------------------------------------------- scrubbing -- */

#define MIN_PIECE 3

/*
 * Adds s and, so that a fragment libpq quoted on its own is caught too,
 * each of its words of at least MIN_PIECE bytes (split where a malformed
 * string makes libpq split it).
 */
static void secrets_add(struct strvec *sv, const char *s, size_t n)
{
    size_t i = 0, w;

    if (n == 0 || strcmp(s, "{{password}}") == 0)
        return;
    strvec_push_owned(sv, xstrndup(s, n));
    while (i < n) {
        w = 0;
        while (i + w < n && strchr(" \t\r\n'\"\\&@:/?=,", s[i + w]) == NULL)
            w++;
        if (w >= MIN_PIECE && w < n)
            strvec_push_owned(sv, xstrndup(s + i, w));
        i += w + 1;
    }
}

static int by_length_desc(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

    return la < lb ? 1 : la > lb ? -1 : 0;
}

void db__secrets_collect(struct strvec *sv, const char *conninfo,
                         const char *const *extra, int nextra)
{
    struct spans sp = {0};

    conninfo_spans(conninfo, &sp);
    for (size_t i = 0; i < sp.n; i++) {
        secrets_add(sv, conninfo + sp.v[i].off, sp.v[i].len);
        secrets_add(sv, sp.v[i].decoded, strlen(sp.v[i].decoded));
    }
    for (int i = 0; extra != NULL && i < nextra; i++) {
        if (extra[i] != NULL)
            secrets_add(sv, extra[i], strlen(extra[i]));
    }
    spans_release(&sp);
    if (sv->n > 1)
        qsort(sv->v, sv->n, sizeof(char *), by_length_desc);
}

void db__secrets_wipe(struct strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++) {
        secure_free_str(sv->v[i]);
        sv->v[i] = NULL;
    }
    sv->n = 0;
    strvec_release(sv);
}

/* Returns a new string: s with every needle replaced by repl. */
static char *replace_all(char *s, const char *needle, const char *repl)
{
    size_t nl = strlen(needle), rl = strlen(repl), count = 0, o = 0;
    const char *p;
    char *out;

    if (nl == 0)
        return s;
    for (p = strstr(s, needle); p != NULL; p = strstr(p + nl, needle))
        count++;
    if (count == 0)
        return s;
    out = xmalloc(strlen(s) - count * nl + count * rl + 1);
    for (p = s; *p != '\0';) {
        if (strncmp(p, needle, nl) == 0) {
            memcpy(out + o, repl, rl);
            o += rl;
            p += nl;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    secure_free_str(s);
    return out;
}

char *db__scrub_text(const char *text, const char *conninfo,
                     const struct strvec *secrets)
{
    char *s = xstrdup(text != NULL ? text : "");

    if (conninfo != NULL && conninfo[0] != '\0')
        s = replace_all(s, conninfo, "<connection string>");
    for (size_t i = 0; secrets != NULL && i < secrets->n; i++)
        s = replace_all(s, secrets->v[i], REDACTED);
    return s;
}
