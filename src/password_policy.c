/*
 * password_policy.c - Vault's password policies: parse, generate, store.
 *
 * The text is read by the ACL policy reader (policy_hcl_to_json: one
 * lexer for every HCL document Coffer takes); this file gives the tree
 * its meaning. See password_policy.h for the language and the contract.
 */
#include "password_policy.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "crypto.h"
#include "json.h"
#include "policy_hcl.h"
#include "storage.h"
#include "util.h"

/* Candidates drawn per generation at most, whatever the time budget. */
#define PW_MAX_ATTEMPTS 2000000
/* Vault's write-time test: this many generations sharing one second. */
#define PW_TRY_COUNT 10
#define PW_TRY_BUDGET_S 1.0
/* Vault's one-second limit of one generation. */
#define PW_GEN_BUDGET_S 1.0

struct pw_rule {
    uint64_t member[PWPOLICY_MAX_ALPHABET / 64]; /* alphabet indexes */
    int min_chars;
};

struct pwpolicy {
    int length;
    uint32_t alphabet[PWPOLICY_MAX_ALPHABET]; /* sorted code points */
    int nalpha;
    struct pw_rule rules[PWPOLICY_MAX_RULES];
    int nrules;
};

/* ============================================================= UTF-8 == */

/*
 * Decodes one code point at s[*i]; advances *i. Returns the code point,
 * or UINT32_MAX for invalid UTF-8 (bad lead, truncation, overlong form,
 * surrogate, beyond U+10FFFF): Go's utf8.ValidString refuses the same.
 */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp, min;
    size_t len;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return UINT32_MAX;
    }
    if (*i + len > n)
        return UINT32_MAX;
    for (size_t k = 1; k < len; k++) {
        if ((s[*i + k] & 0xC0) != 0x80)
            return UINT32_MAX;
        cp = cp << 6 | (s[*i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return UINT32_MAX;
    *i += len;
    return cp;
}

static bool utf8_valid(const char *s)
{
    size_t n = strlen(s), i = 0;

    while (i < n) {
        if (utf8_next((const unsigned char *)s, n, &i) == UINT32_MAX)
            return false;
    }
    return true;
}

/*
 * Vault refuses characters Go's unicode.IsPrint rejects. Without Unicode
 * tables this refuses the classes that matter for a password: controls
 * (C0, DEL, C1), every space but U+0020, format characters (zero-width,
 * bidi controls, BOM), line/paragraph separators, and non-characters.
 */
static bool printable(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD)
        return false;
    if (cp == 0x1680 || cp == 0x180E || (cp >= 0x2000 && cp <= 0x200F) ||
        (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) ||
        cp == 0x3000 || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB))
        return false;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
        return false;
    if (cp >= 0xE0000 && cp <= 0xE007F) /* tags */
        return false;
    return true;
}

/*
 * The reader turns the escape \u0000 into a NUL that would cut a string
 * short without a word; a NUL has no place in a password, so any such
 * escape (an odd run of backslashes before "u0000") refuses the text,
 * wherever it is (a comment or heredoc refuses too: harmless).
 */
static bool has_nul_escape(const char *t)
{
    for (const char *p = strstr(t, "u0000"); p != NULL;
         p = strstr(p + 1, "u0000")) {
        size_t bs = 0;
        while (p - (ptrdiff_t)bs > t && p[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (bs % 2 == 1)
            return true;
    }
    return false;
}

/* ============================================================ parsing == */

static int find_alpha(const struct pwpolicy *p, uint32_t cp)
{
    int lo = 0, hi = p->nalpha - 1;

    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (p->alphabet[mid] == cp)
            return mid;
        if (p->alphabet[mid] < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Inserts cp into the sorted alphabet unless present. */
static bool alpha_add(struct pwpolicy *p, uint32_t cp, struct errbuf *err)
{
    int at = 0;

    if (find_alpha(p, cp) >= 0)
        return true;
    if (p->nalpha == PWPOLICY_MAX_ALPHABET) {
        errbuf_set(err, "charset is too long: limited to %d characters",
                   PWPOLICY_MAX_ALPHABET);
        return false;
    }
    while (at < p->nalpha && p->alphabet[at] < cp)
        at++;
    memmove(&p->alphabet[at + 1], &p->alphabet[at],
            (size_t)(p->nalpha - at) * sizeof(p->alphabet[0]));
    p->alphabet[at] = cp;
    p->nalpha++;
    return true;
}

/* A whole number in [lo, hi] from a JSON number, or false. */
static bool whole(const cJSON *v, double lo, double hi, int *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return false;
    *out = (int)v->valuedouble;
    return true;
}

/*
 * A block's body: `rule "charset" { }` reads as {"charset": {...}} and
 * the JSON form may wrap it in a one-element list.
 */
static const cJSON *block_body(const cJSON *v)
{
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1)
        v = cJSON_GetArrayItem(v, 0);
    return cJSON_IsObject(v) ? v : NULL;
}

/* Checks one charset string; collects its code points into codes. */
static bool read_charset(const char *cs, uint32_t *codes, int *n,
                         struct errbuf *err)
{
    size_t len = strlen(cs), i = 0;

    *n = 0;
    if (len == 0) {
        errbuf_set(err, "unable to parse rules: rule \"charset\": "
                        "charset is empty");
        return false;
    }
    if (!utf8_valid(cs)) {
        errbuf_set(err, "unable to parse rules: rule \"charset\": "
                        "invalid UTF8 string");
        return false;
    }
    while (i < len) {
        uint32_t cp = utf8_next((const unsigned char *)cs, len, &i);
        bool dup = false;
        if (!printable(cp)) {
            errbuf_set(err, "non-printable character in charset");
            return false;
        }
        for (int k = 0; k < *n && !dup; k++)
            dup = codes[k] == cp;
        if (dup)
            continue;
        if (*n == PWPOLICY_MAX_ALPHABET) {
            errbuf_set(err, "charset is too long: limited to %d characters",
                       PWPOLICY_MAX_ALPHABET);
            return false;
        }
        codes[(*n)++] = cp;
    }
    return true;
}

/* Reads one `charset` rule body into p (alphabet grows; rule appended). */
static bool read_charset_rule(struct pwpolicy *p, const cJSON *body,
                              struct errbuf *err)
{
    const cJSON *cs = NULL, *mc = NULL, *f;
    uint32_t codes[PWPOLICY_MAX_ALPHABET];
    struct pw_rule *r;
    int n, min = 0;

    cJSON_ArrayForEach(f, body) {
        const cJSON **slot = strcmp(f->string, "charset") == 0 ? &cs
                             : strcmp(f->string, "min-chars") == 0 ? &mc
                                                                    : NULL;
        if (slot == NULL) {
            errbuf_set(err, "unable to parse rules: rule \"charset\": "
                            "unknown key \"%.64s\"", f->string);
            return false;
        }
        if (*slot != NULL) {
            errbuf_set(err, "unable to parse rules: rule \"charset\": "
                            "\"%s\" given twice", f->string);
            return false;
        }
        *slot = f;
    }
    if (!cJSON_IsString(cs)) {
        errbuf_set(err, "unable to parse rules: rule \"charset\": %s",
                   cs == NULL ? "missing charset"
                              : "charset must be a string");
        return false;
    }
    if (mc != NULL && !whole(mc, 0, PWPOLICY_MAX_LENGTH * 1000.0, &min)) {
        errbuf_set(err, "unable to parse rules: rule \"charset\": "
                        "min-chars must be a whole number, 0 or more");
        return false;
    }
    if (p->nrules == PWPOLICY_MAX_RULES) {
        errbuf_set(err, "too many rules: at most %d", PWPOLICY_MAX_RULES);
        return false;
    }
    if (!read_charset(cs->valuestring, codes, &n, err))
        return false;
    for (int k = 0; k < n; k++) {
        if (!alpha_add(p, codes[k], err))
            return false;
    }
    /* Member bits are set by set_members once the alphabet is final. */
    r = &p->rules[p->nrules++];
    memset(r, 0, sizeof(*r));
    r->min_chars = min;
    return true;
}

/* Reads every `rule` entry: {type: body} objects, or lists of them. */
static bool read_rule(struct pwpolicy *p, const cJSON *v, cJSON *charsets,
                      struct errbuf *err)
{
    const cJSON *item;

    if (cJSON_IsArray(v)) {
        cJSON_ArrayForEach(item, v) {
            if (!read_rule(p, item, charsets, err))
                return false;
        }
        return true;
    }
    if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) == 0) {
        errbuf_set(err, "unable to parse rules: unable to get rule info: "
                        "rule is empty");
        return false;
    }
    cJSON_ArrayForEach(item, v) {
        const cJSON *body = block_body(item);
        if (strcmp(item->string, "charset") != 0) {
            errbuf_set(err, "unable to parse rules: unrecognized rule type "
                            "%.64s", item->string);
            return false;
        }
        if (body == NULL) {
            errbuf_set(err, "unable to parse rules: rule \"charset\" must "
                            "be a block");
            return false;
        }
        if (!read_charset_rule(p, body, err))
            return false;
        cJSON_AddItemReferenceToArray(
            charsets, cJSON_GetObjectItemCaseSensitive(body, "charset"));
    }
    return true;
}

/*
 * Sets each rule's member bits over the final alphabet. charsets holds
 * the rules' charset strings in rule order.
 */
static void set_members(struct pwpolicy *p, const cJSON *charsets)
{
    int r = 0;
    const cJSON *cs;

    cJSON_ArrayForEach(cs, charsets) {
        const char *s = cs->valuestring;
        size_t len = strlen(s), i = 0;
        struct pw_rule *rule = &p->rules[r++];

        memset(rule->member, 0, sizeof(rule->member));
        while (i < len) {
            int at = find_alpha(p, utf8_next((const unsigned char *)s, len,
                                             &i));
            rule->member[at / 64] |= (uint64_t)1 << (at % 64);
        }
    }
}

/* Reads the top level: `length` once, `rule` any number of times. */
static bool read_top(struct pwpolicy *p, const cJSON *doc,
                     struct errbuf *err)
{
    const cJSON *f, *length = NULL;
    cJSON *charsets = cJSON_CreateArray();
    bool ok = true;
    int need = 0;

    cJSON_ArrayForEach(f, doc) {
        if (strcmp(f->string, "length") == 0) {
            ok = length == NULL;
            if (!ok)
                errbuf_set(err, "length is given twice");
            length = f;
        } else if (strcmp(f->string, "rule") == 0) {
            ok = read_rule(p, f, charsets, err);
        } else {
            errbuf_set(err, "unknown key \"%.64s\": a policy has length "
                            "and rule blocks", f->string);
            ok = false;
        }
        if (!ok)
            goto out;
    }
    if (length == NULL) {
        errbuf_set(err, "length must be > 0");
        ok = false;
    } else if (!whole(length, -1e9, 1e9, &p->length)) {
        errbuf_set(err, "failed to decode configuration: length must be a "
                        "whole number");
        ok = false;
    } else if (p->length <= 0) {
        errbuf_set(err, "length must be > 0");
        ok = false;
    } else if (p->nalpha == 0) {
        errbuf_set(err, "no charset specified");
        ok = false;
    }
    for (int i = 0; ok && i < p->nrules; i++)
        need += p->rules[i].min_chars;
    if (ok && need > p->length) {
        errbuf_set(err, "specified rules require at least %d characters "
                        "but %d is specified", need, p->length);
        ok = false;
    }
    if (ok)
        set_members(p, charsets);
out:
    cJSON_Delete(charsets);
    return ok;
}

struct pwpolicy *pwpolicy_parse(const char *text, struct errbuf *err)
{
    struct pwpolicy *p = NULL;
    cJSON *doc = NULL;

    if (strlen(text) > PWPOLICY_MAX_TEXT) {
        errbuf_set(err, "policy is longer than %d bytes", PWPOLICY_MAX_TEXT);
    } else if (!utf8_valid(text)) {
        errbuf_set(err, "policy is not valid UTF-8");
    } else if (has_nul_escape(text)) {
        errbuf_set(err, "policy holds a NUL character (\\u0000)");
    } else if ((doc = policy_hcl_to_json(text, err)) == NULL) {
        /* err says which line */
    } else if (!cJSON_IsObject(doc)) {
        errbuf_set(err, "unable to decode: not an object");
    } else {
        p = xcalloc(1, sizeof(*p));
        if (!read_top(p, doc, err)) {
            free(p);
            p = NULL;
        }
    }
    cJSON_Delete(doc);
    return p;
}

void pwpolicy_free(struct pwpolicy *p)
{
    free(p);
}

int pwpolicy_length(const struct pwpolicy *p)
{
    return p->length;
}

/* ========================================================= generating == */

/*
 * Fills idx[0..n) with uniform indexes below nalpha. A 32-bit draw is
 * kept only below the largest multiple of nalpha (no modulo bias); with
 * nalpha <= 256 a draw is refused with probability < 2^-24.
 */
static int draw_indexes(int nalpha, uint8_t *idx, int n)
{
    uint32_t r[PWPOLICY_MAX_LENGTH];
    uint32_t limit = UINT32_MAX - (uint32_t)(((uint64_t)UINT32_MAX + 1) %
                                             (uint32_t)nalpha);
    int have = 0, rc = 0;

    while (rc == 0 && have < n) {
        rc = crypto_random(r, sizeof(r[0]) * (size_t)(n - have));
        for (int k = 0; rc == 0 && k < n - have; k++) {
            if (r[k] <= limit)
                idx[have++] = (uint8_t)(r[k] % (uint32_t)nalpha);
        }
    }
    crypto_wipe(r, sizeof(r));
    return rc;
}

static bool rules_hold(const struct pwpolicy *p, const uint8_t *idx)
{
    for (int i = 0; i < p->nrules; i++) {
        const struct pw_rule *r = &p->rules[i];
        int count = 0;
        for (int k = 0; k < p->length && count < r->min_chars; k++)
            count += (int)(r->member[idx[k] / 64] >> (idx[k] % 64) & 1);
        if (count < r->min_chars)
            return false;
    }
    return true;
}

static char *encode(const struct pwpolicy *p, const uint8_t *idx)
{
    char *out = xmalloc((size_t)p->length * UTF8_MAX + 1);
    size_t o = 0;

    for (int k = 0; k < p->length; k++)
        o += utf8_encode(p->alphabet[idx[k]], out + o);
    out[o] = '\0';
    return out;
}

int pwpolicy_generate(const struct pwpolicy *p, double budget_s, char **out,
                      struct errbuf *err)
{
    uint8_t idx[PWPOLICY_MAX_LENGTH];
    double deadline = time_mono() + budget_s;
    int rc = COFFER_ETOOBIG;

    *out = NULL;
    for (long attempt = 0; attempt < PW_MAX_ATTEMPTS; attempt++) {
        /* The clock is read every 256 candidates: cheap, still bounded. */
        if ((attempt & 255) == 255 && time_mono() > deadline)
            break;
        if (draw_indexes(p->nalpha, idx, p->length) != 0) {
            rc = COFFER_EINTERNAL;
            errbuf_set(err, "unable to generate random characters");
            break;
        }
        if (rules_hold(p, idx)) {
            *out = encode(p, idx);
            rc = 0;
            break;
        }
    }
    if (rc == COFFER_ETOOBIG)
        errbuf_set(err, "timed out generating string");
    crypto_wipe(idx, sizeof(idx));
    return rc;
}

bool pwpolicy_check(const struct pwpolicy *p, const char *pw)
{
    uint8_t idx[PWPOLICY_MAX_LENGTH];
    size_t n = strlen(pw), i = 0;
    int k = 0;
    bool ok = true;

    while (ok && i < n) {
        uint32_t cp = utf8_next((const unsigned char *)pw, n, &i);
        int at = cp == UINT32_MAX ? -1 : find_alpha(p, cp);
        ok = at >= 0 && k < p->length;
        if (ok)
            idx[k++] = (uint8_t)at;
    }
    ok = ok && k == p->length && rules_hold(p, idx);
    crypto_wipe(idx, sizeof(idx));
    return ok;
}

int pwpolicy_try(const struct pwpolicy *p, struct errbuf *err)
{
    double deadline = time_mono() + PW_TRY_BUDGET_S;
    int failed = 0;
    struct errbuf gen;

    for (int i = 0; i < PW_TRY_COUNT; i++) {
        char *pw = NULL;
        double left = deadline - time_mono();
        if (left <= 0 || pwpolicy_generate(p, left, &pw, &gen) != 0)
            failed++;
        if (pw != NULL) {
            crypto_wipe(pw, strlen(pw));
            free(pw);
        }
    }
    if (failed == PW_TRY_COUNT) {
        errbuf_set(err, "unable to generate password from provided policy "
                        "in 1s: are the rules impossible?");
        return COFFER_EINVAL;
    }
    if (failed > 0) {
        errbuf_set(err, "failed to generate passwords %d times out of %d "
                        "attempts in 1s - is the policy too restrictive?",
                   failed, PW_TRY_COUNT);
        return COFFER_EINVAL;
    }
    return 0;
}

bool pwpolicy_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > PWPOLICY_MAX_NAME || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* ============================================================ storage == */

static void store_key(const char *name, char *key, size_t size)
{
    snprintf(key, size, PWPOLICY_PREFIX "%s", name);
}

int pwpolicy_store_read(struct storage *s, const char *name, char **text)
{
    char key[sizeof(PWPOLICY_PREFIX) + PWPOLICY_MAX_NAME];
    struct buf b;
    cJSON *o = NULL;
    const cJSON *f;
    int rc;

    *text = NULL;
    if (!pwpolicy_name_ok(name))
        return COFFER_ENOTFOUND;
    store_key(name, key, sizeof(key));
    buf_init(&b, BUF_MAX_DEFAULT);
    rc = storage_get(s, key, &b);
    if (rc == 0)
        o = json_parse(b.ptr != NULL ? b.ptr : "", b.len, 8, false, NULL);
    buf_release(&b);
    f = cJSON_GetObjectItemCaseSensitive(o, "policy");
    if (rc == 0 && !cJSON_IsString(f))
        rc = COFFER_EIO; /* a corrupt entry */
    if (rc == 0)
        *text = xstrdup(f->valuestring);
    cJSON_Delete(o);
    return rc;
}

int pwpolicy_store_write(struct storage *s, const char *name,
                         const char *text)
{
    char key[sizeof(PWPOLICY_PREFIX) + PWPOLICY_MAX_NAME];
    cJSON *o;
    char *js;
    int rc;

    if (!pwpolicy_name_ok(name))
        return COFFER_EINVAL;
    store_key(name, key, sizeof(key));
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "policy", text);
    js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    rc = storage_put(s, key, js, strlen(js));
    free(js);
    return rc;
}

int pwpolicy_store_delete(struct storage *s, const char *name)
{
    char key[sizeof(PWPOLICY_PREFIX) + PWPOLICY_MAX_NAME];
    int rc;

    if (!pwpolicy_name_ok(name))
        return 0;
    store_key(name, key, sizeof(key));
    rc = storage_delete(s, key);
    return rc == COFFER_ENOTFOUND ? 0 : rc;
}

int pwpolicy_store_list(struct storage *s, struct strvec *out)
{
    struct strvec all;
    int rc;

    strvec_init(&all);
    rc = storage_list(s, PWPOLICY_PREFIX, &all);
    for (size_t i = 0; rc == 0 && i < all.n; i++) {
        if (pwpolicy_name_ok(all.v[i]))
            strvec_push(out, all.v[i]);
    }
    strvec_release(&all);
    strvec_sort(out);
    return rc;
}

int pwpolicy_generate_named(struct storage *s, const char *name, char **out,
                            struct errbuf *err)
{
    char *text = NULL;
    struct pwpolicy *p = NULL;
    struct errbuf perr;
    int rc;

    *out = NULL;
    rc = pwpolicy_store_read(s, name, &text);
    if (rc == COFFER_ENOTFOUND) {
        errbuf_set(err, "no password policy found");
    } else if (rc != 0) {
        errbuf_set(err, "failed to retrieve password policy: %s",
                   coffer_strerror(rc));
    } else if ((p = pwpolicy_parse(text, &perr)) == NULL) {
        errbuf_set(err, "stored password policy is invalid: %s", perr.msg);
        rc = COFFER_EINVAL;
    } else {
        rc = pwpolicy_generate(p, PW_GEN_BUDGET_S, out, err);
    }
    pwpolicy_free(p);
    free(text);
    return rc;
}
