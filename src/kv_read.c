/*
 * kv_read.c - reads of the built-in kv engine, answered in C.
 *
 * lua/engines/kv.lua's read handlers, v1_read and data_read, spend most
 * of a KV read in the framework around them (routing, fields, the request
 * table, the stored JSON decoded onto the Lua stack and encoded back:
 * tests/bench/README.md). This file answers the same reads from the same
 * storage (the storage layout is kv.lua's header) and hands core.c the
 * response tree the engine would have handed it.
 *
 * Exactness. The Lua path turns a stored value into Lua values and back
 * (lua_json.c): object keys come out sorted and some numbers change
 * form. A stored secret is used here only if that round trip provably
 * gives it back unchanged (same_after_lua); the key metadata is read as
 * text only if it is JSON that the member lookups read exactly as
 * json_parse would (plain_object). Otherwise, and for anything else
 * kv.lua would answer with more than a read (a query parameter other
 * than version, ttl/lease in a v1 secret, help, a malformed record), the
 * engine runs: fall back, never approximate.
 *
 * The response is a real tree, not spliced text: audit entries hash the
 * strings of response data, and a raw splice would be written verbatim.
 */
#include "kv_read.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "crypto.h"
#include "json.h"
#include "log.h"
#include "luavm.h"
#include "storage.h"
#include "util.h"

/* json_parse's nesting limit, LUA_JSON_MAX_DEPTH (lua_json.h) */
#define KV_PARSE_DEPTH 128
/* Deeper values go to the engine, whose encoder stops at 128 levels
   counted from the response table. */
#define KV_SAFE_DEPTH 100
/* Integers print the same through cJSON's double and Lua's integer
   (json_format_number, lua_json.c's json_number) only below 10^15. */
#define KV_EXACT_NUMBER 1e15
/* Larger version numbers are left to the engine's field conversion. */
#define KV_VERSION_DIGITS 9

/*
 * SHA-256 of the lua/engines/kv.lua this file answers for: the one
 * test_kv_native.py's differential run compared it with. Another kv.lua
 * (edited where it is installed, or changed in the tree without checking
 * this file again: test_kv_read.c fails then) turns native reads off.
 */
#define KV_LUA_SHA256 \
    "c6c8bcb33fb67afd034a7d8a97687dc99707ed2015ff593458e9f38fad8cb2f7"

static struct storage *kv_storage;
static atomic_int enabled = -1; /* -1: not decided yet */
static atomic_uint_fast64_t served;
/* The code generation whose kv.lua was compared, shifted left by one,
 * and the verdict in bit 0: one word, so that a verdict is never read
 * with another generation's number. */
static atomic_uint_fast64_t engine_verdict;

/* A read's outcome: answered, answered with nothing (404), or not ours. */
enum kv_outcome { KV_ANSWERED, KV_NOTHING, KV_FALLBACK };

void kv_read_configure(struct storage *s)
{
    kv_storage = s;
}

void kv_read_set_enabled(bool on)
{
    atomic_store(&enabled, on ? 1 : 0);
}

uint64_t kv_read_served(void)
{
    return atomic_load(&served);
}

/* The switch, from the environment on first use unless set before. */
static bool native_enabled(void)
{
    int on = atomic_load_explicit(&enabled, memory_order_relaxed);
    const char *env;
    int want;

    if (on >= 0)
        return on == 1;
    env = getenv("COFFER_KV_NATIVE_READS");
    want = !(env != NULL && (strcmp(env, "0") == 0 ||
                             strcmp(env, "false") == 0 ||
                             strcmp(env, "off") == 0));
    atomic_compare_exchange_strong(&enabled, &on, want);
    return atomic_load(&enabled) == 1;
}

/* Whether the published code's kv.lua is the one this file knows;
 * compared once per code generation (start-up, each plugin reload). */
static bool engine_is_known(void)
{
    unsigned char digest[32];
    char hex[65];
    uint64_t gen = luavm_generation(), seen = 0;
    uint_fast64_t verdict = atomic_load(&engine_verdict);
    bool known;

    if (verdict >> 1 == gen)
        return (verdict & 1) != 0;
    known = luavm_code_digest("engines/kv.lua", digest, &seen);
    if (known) {
        for (size_t i = 0; i < sizeof(digest); i++)
            snprintf(hex + 2 * i, 3, "%02x", digest[i]);
        known = strcmp(hex, KV_LUA_SHA256) == 0;
        if (!known)
            log_info("kv_read: engines/kv.lua is not the one this build "
                     "answers for (sha256 %s); KV reads run in Lua", hex);
    }
    /* Only ever forward: a thread that judged an older generation must
     * not overwrite a newer verdict. */
    while (verdict >> 1 <= seen &&
           !atomic_compare_exchange_weak(&engine_verdict, &verdict,
                                         (uint_fast64_t)seen << 1 | known))
        ;
    return known && seen == gen;
}

/*
 * 1 or 2 as kv.lua's version_of decides it from the mount option, or 0
 * when the mount is not the built-in kv engine or the option is not a
 * string (the Lua tostring of anything else is not ours to mimic).
 */
static int mount_kv_version(const struct mount *m)
{
    const cJSON *v;

    if (m->impl != MOUNT_IMPL_LUA || strcmp(m->type, "kv") != 0)
        return 0;
    v = cJSON_IsObject(m->options)
            ? cJSON_GetObjectItemCaseSensitive(m->options, "version")
            : NULL;
    if (v == NULL)
        return 1;
    if (!cJSON_IsString(v))
        return 0;
    return strcmp(v->valuestring, "2") == 0 ? 2 : 1;
}

/* storage_key's refusal in lua_api.c: a leading "/" or a ".." segment. */
static bool key_acceptable(const char *key)
{
    const char *seg = key;

    if (key[0] == '/' || key[0] == '\0')
        return false;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash != NULL ? (size_t)(slash - seg) : strlen(seg);

        if (n == 2 && seg[0] == '.' && seg[1] == '.')
            return false;
        if (slash == NULL)
            return true;
        seg = slash + 1;
    }
}

/*
 * True if the Lua engine, decoding v onto its stack and encoding it back,
 * writes the tree v itself: keys already sorted and unique (Lua tables
 * have neither order nor duplicates), no number whose Lua form prints
 * differently (big integers, exact big literals, -0), and not too deep.
 * Empty tables keep their kind: lua_json_push marks arrays, and an
 * unmarked empty table encodes as an object.
 */
static bool same_after_lua(const cJSON *v, int depth)
{
    const cJSON *it;
    const char *prev = NULL;
    double d;

    if (depth > KV_SAFE_DEPTH)
        return false;
    switch (v->type & 0xff) {
    case cJSON_NULL:
    case cJSON_True:
    case cJSON_False:
        return true;
    case cJSON_String:
        return v->valuestring != NULL;
    case cJSON_Number:
        d = v->valuedouble;
        return isfinite(d) && fabs(d) < KV_EXACT_NUMBER &&
               !(d == 0 && signbit(d));
    case cJSON_Array:
    case cJSON_Object:
        cJSON_ArrayForEach(it, v) {
            if (cJSON_IsObject(v)) {
                if (it->string == NULL ||
                    (prev != NULL && strcmp(prev, it->string) >= 0))
                    return false;
                prev = it->string;
            }
            if (!same_after_lua(it, depth + 1))
                return false;
        }
        return true;
    default: /* cJSON_Raw: an exact big number literal */
        return false;
    }
}

/*
 * Reads the mount's key into *val (the caller releases it with
 * text_release): 0, KV_NOTHING if missing, KV_FALLBACK on any failure
 * (the engine then meets it and answers as it does).
 */
static int load_text(const struct mount *m, const char *key, struct buf *val)
{
    struct buf full;
    int rc = KV_FALLBACK;
    int got;

    buf_init(&full, 0);
    buf_init(val, 0);
    if (buf_append_str(&full, m->storage_prefix) != 0 ||
        buf_append_str(&full, key) != 0 || buf_append(&full, "", 1) != 0)
        goto done;
    got = storage_get(kv_storage, full.ptr, val);
    if (got == COFFER_ENOTFOUND)
        rc = KV_NOTHING;
    else if (got == 0 && val->ptr != NULL)
        rc = 0;
done:
    buf_release(&full);
    return rc;
}

/* Wipes and frees a stored value (a secret, or a secret's metadata). */
static void text_release(struct buf *val)
{
    if (val->ptr != NULL)
        crypto_wipe(val->ptr, val->len);
    buf_release(val);
}

/* load_text, parsed as storage:get_json parses: *out set when 0. */
static int load_json(const struct mount *m, const char *key, cJSON **out)
{
    struct buf val;
    int rc = load_text(m, key, &val);

    *out = NULL;
    if (rc == 0) {
        *out = json_parse(val.ptr, val.len, KV_PARSE_DEPTH, false, NULL);
        rc = *out != NULL ? 0 : KV_FALLBACK;
    }
    text_release(&val);
    return rc;
}

/* ======================================================== plain text == */

/*
 * The key metadata is read from its text, not parsed into a tree: only a
 * few members are needed, and parsing the whole record (every version's
 * times, numbers checked for exactness) was most of a native read. The
 * text is first checked to be one JSON value that json_parse (and so the
 * engine) reads the way the lookups below do: no whitespace; object keys
 * without escapes, strictly increasing (so a key is found by its bytes,
 * and no duplicate makes "first" and "last" differ); strings of valid
 * UTF-8 (json_parse would replace invalid bytes) with only the escapes
 * json_write.c writes; number literals json_scan_number accepts.
 * Anything else goes to the engine.
 */
struct scan {
    const char *p, *end;
};

static bool scan_value(struct scan *s, int depth);

/* Length of the UTF-8 sequence at p (RFC 3629: no overlong form, no
   surrogate, at most U+10FFFF), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], cp, min;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    cp = c & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* The escape at p is one json_write.c's put_escape writes. */
static bool canonical_escape(const unsigned char *p, const unsigned char *end)
{
    static const char hex[] = "0123456789abcdef";
    const char *lo;
    unsigned c;

    if (end - p < 2 || p[1] == '\0')
        return false;
    if (strchr("\"\\bfnrt", p[1]) != NULL)
        return true;
    if (p[1] != 'u' || end - p < 6 || p[2] != '0' || p[3] != '0' ||
        (p[4] != '0' && p[4] != '1') || p[5] == '\0' ||
        (lo = strchr(hex, p[5])) == NULL)
        return false;
    c = (unsigned)(p[4] - '0') * 16 + (unsigned)(lo - hex);
    return c != 0 && strchr("\b\f\n\r\t", (int)c) == NULL;
}

/* A string at s->p (its opening quote); a key may hold no escape. */
static bool scan_string(struct scan *s, bool key)
{
    const unsigned char *p = (const unsigned char *)s->p + 1;
    const unsigned char *end = (const unsigned char *)s->end;
    size_t n;

    while (p < end && *p != '"') {
        if (*p == '\\') {
            if (key || !canonical_escape(p, end))
                return false;
            p += p[1] == 'u' ? 6 : 2;
        } else if (*p < 0x20 || (n = utf8_len(p, end)) == 0) {
            return false;
        } else {
            p += n;
        }
    }
    if (p >= end)
        return false;
    s->p = (const char *)p + 1;
    return true;
}

static bool scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* Key a (n bytes) sorts strictly before key b (m bytes), as strcmp. */
static bool key_before(const char *a, size_t n, const char *b, size_t m)
{
    int c = memcmp(a, b, n < m ? n : m);

    return c < 0 || (c == 0 && n < m);
}

static bool scan_container(struct scan *s, int depth)
{
    char close = *s->p == '{' ? '}' : ']';
    const char *prev = NULL, *k;
    size_t prev_len = 0;

    if (++s->p < s->end && *s->p == close) {
        s->p++;
        return true;
    }
    for (;;) {
        if (close == '}') {
            k = s->p + 1;
            if (s->p >= s->end || *s->p != '"' || !scan_string(s, true) ||
                (prev != NULL &&
                 !key_before(prev, prev_len, k, (size_t)(s->p - 1 - k))) ||
                s->p >= s->end || *s->p != ':')
                return false;
            prev = k;
            prev_len = (size_t)(s->p - 1 - k);
            s->p++;
        }
        if (!scan_value(s, depth + 1) || s->p >= s->end)
            return false;
        if (*s->p++ == close)
            return true;
        if (s->p[-1] != ',')
            return false;
    }
}

static bool scan_value(struct scan *s, int depth)
{
    size_t n;

    if (s->p >= s->end || depth > KV_SAFE_DEPTH)
        return false;
    switch (*s->p) {
    case '"': return scan_string(s, false);
    case '{':
    case '[': return scan_container(s, depth);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
        n = json_scan_number(s->p, s->end);
        s->p += n;
        return n > 0;
    }
}

/* text[0..len) is one object of the form above. */
static bool plain_object(const char *text, size_t len)
{
    struct scan s = {text, text + len};

    return len > 0 && text[0] == '{' && scan_value(&s, 1) && s.p == s.end;
}

/* The member is a string without escapes: a new cJSON string, or NULL. */
static cJSON *plain_string(const struct json_member *mb)
{
    char *copy;
    cJSON *out;

    if (mb->v == NULL || mb->v[0] != '"' ||
        memchr(mb->v, '\\', (size_t)(mb->end - mb->v)) != NULL)
        return NULL;
    copy = xstrndup(mb->v + 1, (size_t)(mb->end - mb->v - 2));
    out = cJSON_CreateString(copy);
    free(copy); /* a time stamp, no secret */
    return out;
}

/* A plain decimal in [0, 10^9) ("0", "17"), else -1. */
static long plain_whole(const char *p, size_t n)
{
    if (n == 0 || n > KV_VERSION_DIGITS || strspn(p, "0123456789") < n ||
        (p[0] == '0' && n > 1))
        return -1;
    return strtol(p, NULL, 10);
}

/* ================================================================ v1 == */

/* v1_read: the secret and the mount's default TTL as lease_duration. */
static enum kv_outcome v1_read(const struct mount *m,
                               const struct request *req,
                               struct response *resp)
{
    cJSON *secret = NULL;
    int64_t def = 0, max = 0;
    int rc;

    if (!key_acceptable(req->rel_path))
        return KV_FALLBACK;
    rc = load_json(m, req->rel_path, &secret);
    if (rc != 0)
        return rc == KV_NOTHING ? KV_NOTHING : KV_FALLBACK;
    /* ttl/lease in the secret set the lease duration (parse_duration) */
    if (!cJSON_IsObject(secret) || !same_after_lua(secret, 1) ||
        cJSON_GetObjectItemCaseSensitive(secret, "ttl") != NULL ||
        cJSON_GetObjectItemCaseSensitive(secret, "lease") != NULL) {
        json_delete_wiped(secret);
        return KV_FALLBACK;
    }
    mount_resolve_ttl(m, 0, 0, &def, &max);
    resp->data = secret;
    resp->lease_duration = def;
    return KV_ANSWERED;
}

/* ================================================================ v2 == */

/*
 * The version asked for: 0 (the current one) without a query, the value
 * of ?version=N for plain decimal digits; -1 for anything else (another
 * parameter, help, a value the engine's int conversion must judge).
 */
static long requested_version(const struct request *req)
{
    const cJSON *q = req->data;
    const char *s;
    size_t n;

    if (q == NULL || (cJSON_IsObject(q) && q->child == NULL))
        return 0;
    if (!cJSON_IsObject(q) || q->child->next != NULL ||
        q->child->string == NULL || strcmp(q->child->string, "version") != 0 ||
        !cJSON_IsString(q->child))
        return -1;
    s = q->child->valuestring;
    n = strlen(s);
    if (n == 0 || n > KV_VERSION_DIGITS || strspn(s, "0123456789") != n ||
        (s[0] == '0' && n > 1))
        return -1;
    return strtol(s, NULL, 10);
}

/* coffer.time.now(): Unix seconds as a double. */
static double now_seconds(void)
{
    struct timespec ts = time_now();

    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * custom_metadata_out: the object (parsed as the engine parses it), or
 * null when absent or empty; NULL if it is anything else.
 */
static cJSON *custom_metadata_out(const struct json_member *cm)
{
    cJSON *out;

    if (cm->v == NULL || (cm->end - cm->v == 2 && cm->v[0] == '{'))
        return cJSON_CreateNull();
    if (cm->v[0] != '{')
        return NULL;
    out = json_parse(cm->v, (size_t)(cm->end - cm->v), KV_PARSE_DEPTH, false,
                     NULL);
    if (out != NULL && !same_after_lua(out, 3)) {
        cJSON_Delete(out);
        out = NULL;
    }
    return out;
}

/* The members of a version entry kv.lua reads. */
enum { VM_CREATED, VM_DELETED_AT, VM_DELETION, VM_DESTROYED, VM_N };

/*
 * version_out: the "metadata" member of a data read, keys in the
 * engine's (sorted) order. NULL if the entry is not as kv.lua writes it.
 */
static cJSON *version_out(const struct json_member *cm, const struct json_member *vm,
                          long v)
{
    cJSON *created = plain_string(&vm[VM_CREATED]);
    cJSON *deletion = plain_string(&vm[VM_DELETION]);
    const struct json_member *d = &vm[VM_DESTROYED];
    cJSON *custom = NULL, *out = NULL;
    bool destroyed = d->v != NULL && d->end - d->v == 4; /* "true" */

    if (created != NULL && deletion != NULL && d->v != NULL &&
        (d->v[0] == 't' || d->v[0] == 'f'))
        custom = custom_metadata_out(cm);
    if (custom != NULL) {
        out = cJSON_CreateObject();
        cJSON_AddItemToObject(out, "created_time", created);
        cJSON_AddItemToObject(out, "custom_metadata", custom);
        cJSON_AddItemToObject(out, "deletion_time", deletion);
        cJSON_AddBoolToObject(out, "destroyed", destroyed);
        cJSON_AddNumberToObject(out, "version", (double)v);
        return out;
    }
    cJSON_Delete(created);
    cJSON_Delete(deletion);
    return NULL;
}

/*
 * is_deleted(vm): deleted_at set and not after now; -1 if deleted_at is
 * not a number a double holds exactly (the engine compares what it has).
 */
static int version_deleted(const struct json_member *at)
{
    double d;

    if (at->v == NULL)
        return 0;
    if (at->v[0] == '"' || at->v[0] == '{' || at->v[0] == '[' ||
        at->v[0] == 't' || at->v[0] == 'f' || at->v[0] == 'n' ||
        !json_number_exact(at->v, (size_t)(at->end - at->v), &d))
        return -1;
    return d <= now_seconds() ? 1 : 0;
}

/* The version's stored secret ({"data": <secret>}), detached, or NULL. */
static int load_secret(const struct mount *m, const char *path, long v,
                       cJSON **out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[32];
    char key[9 + 64 + 1 + 24];
    cJSON *stored = NULL, *secret;
    int rc;

    *out = NULL;
    crypto_sha256(path, strlen(path), digest);
    memcpy(key, "versions/", 9);
    for (size_t i = 0; i < sizeof(digest); i++) { /* sha256_hex */
        key[9 + 2 * i] = hex[digest[i] >> 4];
        key[9 + 2 * i + 1] = hex[digest[i] & 15];
    }
    snprintf(key + 9 + 64, sizeof(key) - 9 - 64, "/%ld", v);
    rc = load_json(m, key, &stored);
    if (rc != 0)
        return rc;
    secret = cJSON_IsObject(stored)
                 ? cJSON_DetachItemFromObjectCaseSensitive(stored, "data")
                 : NULL;
    /* the record is {"data": ...} alone, or the engine decides */
    if (secret == NULL || stored->child != NULL ||
        !same_after_lua(secret, 2)) {
        json_delete_wiped(secret);
        json_delete_wiped(stored);
        return KV_FALLBACK;
    }
    cJSON_Delete(stored);
    *out = secret;
    return 0;
}

/* load_version + data_read for the version entry vm (v) of the key. */
static enum kv_outcome v2_answer(const struct mount *m, const char *path,
                                 const struct json_member *cm,
                                 const struct json_member *vm, long v,
                                 struct response *resp)
{
    int deleted = version_deleted(&vm[VM_DELETED_AT]);
    cJSON *md = deleted < 0 ? NULL : version_out(cm, vm, v);
    cJSON *secret = NULL, *data;
    int rc;

    if (md == NULL)
        return KV_FALLBACK;
    data = cJSON_CreateObject();
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(md, "destroyed")) ||
        deleted) {
        cJSON_AddNullToObject(data, "data");
        cJSON_AddItemToObject(data, "metadata", md);
        resp->status = 404;
        resp->data = data;
        return KV_ANSWERED;
    }
    rc = load_secret(m, path, v, &secret);
    if (rc != 0) {
        cJSON_Delete(md);
        cJSON_Delete(data);
        return rc == KV_NOTHING ? KV_NOTHING : KV_FALLBACK;
    }
    cJSON_AddItemToObject(data, "data", secret);
    cJSON_AddItemToObject(data, "metadata", md);
    resp->data = data;
    return KV_ANSWERED;
}

/* The key metadata's text (checked) answers the read of version want. */
static enum kv_outcome v2_from_meta(const struct mount *m, const char *path,
                                    const struct buf *meta, long want,
                                    struct response *resp)
{
    struct json_member top[] = {{.name = "current_version"},
                           {.name = "custom_metadata"},
                           {.name = "versions"}};
    struct json_member vm[VM_N] = {[VM_CREATED] = {.name = "created_time"},
                              [VM_DELETED_AT] = {.name = "deleted_at"},
                              [VM_DELETION] = {.name = "deletion_time"},
                              [VM_DESTROYED] = {.name = "destroyed"}};
    struct json_member entry = {.name = NULL};
    char vname[24];
    long v = want;

    if (!plain_object(meta->ptr, meta->len))
        return KV_FALLBACK;
    (void)json_object_members(meta->ptr, meta->len, top, ARRAY_LEN(top));
    if (v == 0) /* absent or 0: the current version */
        v = top[0].v == NULL
                ? -1
                : plain_whole(top[0].v, (size_t)(top[0].end - top[0].v));
    if (v < 0 || top[2].v == NULL || top[2].v[0] != '{')
        return KV_FALLBACK;
    snprintf(vname, sizeof(vname), "%ld", v);
    entry.name = vname;
    (void)json_object_members(top[2].v, (size_t)(top[2].end - top[2].v),
                              &entry, 1);
    if (entry.v == NULL)
        return KV_NOTHING;
    if (entry.v[0] != '{')
        return KV_FALLBACK;
    (void)json_object_members(entry.v, (size_t)(entry.end - entry.v), vm,
                              VM_N);
    return v2_answer(m, path, &top[1], vm, v, resp);
}

/* data_read: GET data/<path>[?version=N]. */
static enum kv_outcome v2_read(const struct mount *m,
                               const struct request *req,
                               struct response *resp)
{
    const char *path = req->rel_path + 5; /* after "data/" */
    long want = requested_version(req);
    char mkey[4096];
    struct buf meta;
    enum kv_outcome out;
    int rc;

    if (want < 0 || path[0] == '\0' ||
        snprintf(mkey, sizeof(mkey), "metadata/%s", path) >=
            (int)sizeof(mkey) ||
        !key_acceptable(mkey))
        return KV_FALLBACK;
    rc = load_text(m, mkey, &meta);
    if (rc == 0)
        out = v2_from_meta(m, path, &meta, want, resp);
    else
        out = rc == KV_NOTHING ? KV_NOTHING : KV_FALLBACK;
    text_release(&meta);
    return out;
}

/* ========================================================== dispatch == */

bool kv_read_handle(const struct mount *m, const struct request *req,
                    struct response *resp)
{
    enum kv_outcome out = KV_FALLBACK;
    int version;

    if (req->op != OP_READ || req->wrap_ttl != 0 || req->rel_path == NULL ||
        kv_storage == NULL || !native_enabled() || !engine_is_known())
        return false;
    version = mount_kv_version(m);
    if (version == 1 && (req->data == NULL || req->data->child == NULL))
        out = v1_read(m, req, resp);
    else if (version == 2 && strncmp(req->rel_path, "data/", 5) == 0)
        out = v2_read(m, req, resp);
    if (out == KV_FALLBACK)
        return false;
    atomic_fetch_add_explicit(&served, 1, memory_order_relaxed);
    log_debug("kv_read: answered natively (%s)",
              out == KV_NOTHING ? "nothing there" : "found");
    return true;
}
