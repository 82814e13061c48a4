/*
 * router.c - the mount table.
 *
 * Owns the list of mounts (secret engines and auth methods), longest-prefix
 * lookup, and enabling, disabling and tuning them, with Vault's validation
 * rules and error texts. Does not own what a mount stores (its backend
 * does) nor its leases (lease.c, which unmount will call).
 *
 * Mounts are immutable once published. Tuning builds a changed copy and
 * swaps it into the table; the old copy is freed when the last request that
 * holds it calls router_mount_put. Persisted as JSON under core/mounts.
 */
#include "router.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "storage.h"
#include "util.h"

#define MOUNTS_KEY "core/mounts"

/* The system TTLs; written once at start-up, read by every request. */
static _Atomic int64_t system_default_ttl = ROUTER_SYSTEM_TTL_DEFAULT;
static _Atomic int64_t system_max_ttl = ROUTER_SYSTEM_TTL_DEFAULT;

static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct mount **table;
static size_t table_n;
static struct storage *table_storage;

/* Secret engines may not be mounted under these. */
static const char *const reserved_prefixes[] = {
    "sys/", "auth/", "audit/", "cubbyhole/", "identity/",
};

/*
 * cubbyhole/ is served per token outside the table (cubbyhole.c) but
 * listed among the secret engines and matched by router_match, as Vault
 * has it in its mount table: local, not tunable, not disableable. Its
 * uuid and accessor are made once and kept in the barrier under
 * CUBBYHOLE_KEY, so audit entries (mount_accessor) and dashboards keep
 * naming it the same across restarts. Guarded by table_lock; the
 * router holds one reference, requests that matched it one each.
 */
#define CUBBYHOLE_PATH "cubbyhole/"
#define CUBBYHOLE_KEY "core/cubbyhole-mount"
static struct mount *cubbyhole_mount;

/* ============================================================ lifetime == */

static void mount_free(struct mount *m)
{
    if (m == NULL)
        return;
    free(m->path);
    free(m->type);
    free(m->description);
    free(m->storage_prefix);
    cJSON_Delete(m->options);
    free(m);
}

void router_mount_put(const struct mount *cm)
{
    struct mount *m = (struct mount *)cm;

    if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 1)
        mount_free(m);
}

static struct mount *mount_copy(const struct mount *src)
{
    struct mount *m = xcalloc(1, sizeof(*m));

    *m = *src;
    m->path = xstrdup(src->path);
    m->type = xstrdup(src->type);
    m->description = xstrdup(src->description);
    m->storage_prefix = xstrdup(src->storage_prefix);
    m->options = src->options ? cJSON_Duplicate(src->options, 1) : NULL;
    atomic_init(&m->refs, 1);
    return m;
}

/* ====================================================== serialisation == */

static cJSON *mount_to_storage_json(const struct mount *m)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "type", m->type);
    cJSON_AddStringToObject(o, "description", m->description);
    cJSON_AddStringToObject(o, "uuid", m->uuid);
    cJSON_AddStringToObject(o, "accessor", m->accessor);
    cJSON_AddNumberToObject(o, "class", m->klass);
    cJSON_AddNumberToObject(o, "impl", m->impl);
    cJSON_AddNumberToObject(o, "default_lease_ttl",
                            (double)m->default_lease_ttl);
    cJSON_AddNumberToObject(o, "max_lease_ttl", (double)m->max_lease_ttl);
    cJSON_AddBoolToObject(o, "local", m->local);
    cJSON_AddBoolToObject(o, "seal_wrap", m->seal_wrap);
    cJSON_AddStringToObject(o, "storage_prefix", m->storage_prefix);
    if (m->options != NULL)
        cJSON_AddItemToObject(o, "options", cJSON_Duplicate(m->options, 1));
    return o;
}

static struct mount *mount_from_storage_json(const cJSON *o)
{
    struct mount *m = xcalloc(1, sizeof(*m));
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(o, "options");

    m->path = xstrdup(json_get_str(o, "path", ""));
    m->type = xstrdup(json_get_str(o, "type", ""));
    m->description = xstrdup(json_get_str(o, "description", ""));
    snprintf(m->uuid, sizeof(m->uuid), "%s", json_get_str(o, "uuid", ""));
    snprintf(m->accessor, sizeof(m->accessor), "%s", json_get_str(o, "accessor", ""));
    m->klass = (enum mount_class)json_get_int(o, "class", 0);
    m->impl = (enum mount_impl)json_get_int(o, "impl", 0);
    m->default_lease_ttl = json_get_int(o, "default_lease_ttl", 0);
    m->max_lease_ttl = json_get_int(o, "max_lease_ttl", 0);
    m->local = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "local"));
    m->seal_wrap =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "seal_wrap"));
    m->storage_prefix = xstrdup(json_get_str(o, "storage_prefix", ""));
    m->options = cJSON_IsObject(opts) ? cJSON_Duplicate(opts, 1) : NULL;
    atomic_init(&m->refs, 1);
    return m;
}

/* Caller holds the write lock. */
static int persist_locked(void)
{
    cJSON *arr = cJSON_CreateArray();
    char *text;
    int rc;

    for (size_t i = 0; i < table_n; i++)
        cJSON_AddItemToArray(arr, mount_to_storage_json(table[i]));
    text = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    rc = storage_put(table_storage, MOUNTS_KEY, text, strlen(text));
    free(text);
    if (rc != 0)
        log_error("router: saving the mount table failed: %s",
                  coffer_strerror(rc));
    return rc;
}

/* ============================================================== lookup == */

/* True if path is under the mount path mp, or is mp without its slash. */
static bool path_hits(const char *path, size_t plen, const char *mp,
                      size_t mlen)
{
    return strncmp(path, mp, mlen) == 0 ||
           (plen == mlen - 1 && strncmp(path, mp, plen) == 0);
}

/*
 * Whether a read of this mount only touches storage and memory: the C
 * backends (sys/, auth/token/) and the built-in kv engine (cubbyhole/ is
 * served by cubbyhole.c before the table is consulted).
 * Lua engines and auth methods of other types may call out (coffer.http,
 * coffer.db), and a plugin cannot register "kv" (the framework refuses a
 * type registered twice and the built-in engines load first). Decided from
 * the mount as published at match time, so enabling, disabling, tuning or
 * a plugin reload is seen by the next request.
 */
static bool mount_reads_local(const struct mount *m)
{
    if (m == NULL)
        return false;
    if (m->impl == MOUNT_IMPL_SYSTEM || m->impl == MOUNT_IMPL_TOKEN)
        return true;
    return m->impl == MOUNT_IMPL_LUA && strcmp(m->type, "kv") == 0;
}

bool router_reads_local(const char *path)
{
    const struct mount *m = router_match(path);
    bool local = mount_reads_local(m);

    router_mount_put(m);
    return local;
}

const struct mount *router_match(const char *path)
{
    struct mount *best = NULL;
    size_t best_len = 0, plen = strlen(path);

    pthread_rwlock_rdlock(&table_lock);
    for (size_t i = 0; i < table_n; i++) {
        const char *mp = table[i]->path;
        size_t mlen = strlen(mp);
        if (path_hits(path, plen, mp, mlen) && mlen > best_len) {
            best = table[i];
            best_len = mlen;
        }
    }
    /* Nothing in the table can overlap it: cubbyhole/ is reserved. */
    if (best == NULL && cubbyhole_mount != NULL &&
        path_hits(path, plen, CUBBYHOLE_PATH, strlen(CUBBYHOLE_PATH)))
        best = cubbyhole_mount;
    if (best != NULL)
        atomic_fetch_add(&best->refs, 1);
    pthread_rwlock_unlock(&table_lock);
    return best;
}

const struct mount **router_snapshot(size_t *n)
{
    const struct mount **out;

    pthread_rwlock_rdlock(&table_lock);
    out = xcalloc(table_n + 1, sizeof(*out));
    for (size_t i = 0; i < table_n; i++) {
        atomic_fetch_add(&table[i]->refs, 1);
        out[i] = table[i];
    }
    *n = table_n;
    pthread_rwlock_unlock(&table_lock);
    return out;
}

void router_set_system_ttls(int64_t default_ttl, int64_t max_ttl)
{
    if (default_ttl > 0)
        system_default_ttl = default_ttl;
    if (max_ttl > 0)
        system_max_ttl = max_ttl;
    if (system_default_ttl > system_max_ttl)
        system_default_ttl = system_max_ttl;
}

void router_system_ttls(int64_t *default_ttl, int64_t *max_ttl)
{
    *default_ttl = system_default_ttl;
    *max_ttl = system_max_ttl;
}

void mount_resolve_ttl(const struct mount *m, int64_t ttl, int64_t max_ttl,
                       int64_t *out_ttl, int64_t *out_max)
{
    int64_t def = m->default_lease_ttl, max = m->max_lease_ttl;

    if (max == 0)
        max = system_max_ttl;
    if (def == 0)
        def = system_default_ttl;
    if (def > max)
        def = max;
    if (max_ttl > 0 && max_ttl < max)
        max = max_ttl;
    if (ttl <= 0)
        ttl = def;
    *out_ttl = ttl > max ? max : ttl;
    *out_max = max;
}

/* Caller holds a lock. Index of the mount with exactly this path, or -1. */
static long find_locked(const char *path)
{
    for (size_t i = 0; i < table_n; i++) {
        if (strcmp(table[i]->path, path) == 0)
            return (long)i;
    }
    return -1;
}

/* ========================================================= validation == */

/*
 * Normalises a mount path as Vault does: strip surrounding slashes, add
 * one trailing slash; auth mounts get "auth/" in front. Refuses empty
 * paths, empty segments and relative segments. Returns a new string.
 */
static char *normalize_path(enum mount_class klass, const char *raw,
                            struct errbuf *err)
{
    size_t len;
    const char *seg;
    char *out;

    while (*raw == '/')
        raw++;
    len = strlen(raw);
    while (len > 0 && raw[len - 1] == '/')
        len--;
    if (len == 0) {
        errbuf_set(err, "path cannot be empty");
        return NULL;
    }
    for (seg = raw; seg < raw + len;) {
        const char *end = memchr(seg, '/', (size_t)(raw + len - seg));
        size_t n = end ? (size_t)(end - seg) : (size_t)(raw + len - seg);
        if (n == 0 || (n == 1 && seg[0] == '.') ||
            (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            errbuf_set(err, "invalid mount path \"%.*s\": empty or "
                            "relative segments are not allowed",
                       (int)len, raw);
            return NULL;
        }
        seg += n + 1;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)raw[i] < 0x20 || raw[i] == 0x7f) {
            errbuf_set(err, "path cannot contain non-printable characters");
            return NULL;
        }
    }
    out = xmalloc(len + 7);
    snprintf(out, len + 7, "%s%.*s/", klass == MOUNT_AUTH ? "auth/" : "",
             (int)len, raw);
    return out;
}

/* Parses a TTL field of a mount config: number, duration, or "system". */
static int parse_ttl_field(const cJSON *cfg, const char *key, int64_t *out,
                           bool *given, struct errbuf *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    struct errbuf why;

    *given = false;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble < 0)
            goto bad;
        *out = (int64_t)v->valuedouble;
        *given = true;
        return 0;
    }
    if (!cJSON_IsString(v))
        goto bad;
    if (v->valuestring[0] == '\0')
        return 0;
    *given = true;
    if (strcmp(v->valuestring, "system") == 0) {
        *out = 0;
        return 0;
    }
    if (duration_parse(v->valuestring, out, &why) == 0)
        return 0;
bad:
    errbuf_set(err, "invalid %s: must be a duration or \"system\"", key);
    return COFFER_EINVAL;
}

static int check_ttls(int64_t def, int64_t max, struct errbuf *err)
{
    if (def != 0 && max != 0 && def > max) {
        errbuf_set(err, "given default lease TTL greater than given max "
                        "lease TTL");
        return COFFER_EINVAL;
    }
    if (def > system_max_ttl && max == 0) {
        errbuf_set(err, "given default lease TTL greater than system max "
                        "lease TTL of %lld",
                   (long long)system_max_ttl);
        return COFFER_EINVAL;
    }
    return 0;
}

/* Converts the "options" object to an object of strings. */
static int parse_options(const cJSON *v, cJSON **out, struct errbuf *err)
{
    const cJSON *it;

    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v)) {
        errbuf_set(err, "options must be a map of strings");
        return COFFER_EINVAL;
    }
    *out = cJSON_CreateObject();
    cJSON_ArrayForEach(it, v) {
        char num[64];
        if (cJSON_IsString(it)) {
            cJSON_AddStringToObject(*out, it->string, it->valuestring);
        } else if (cJSON_IsNumber(it)) {
            snprintf(num, sizeof(num), "%.17g", it->valuedouble);
            cJSON_AddStringToObject(*out, it->string, num);
        } else if (cJSON_IsBool(it)) {
            cJSON_AddStringToObject(*out, it->string,
                                    cJSON_IsTrue(it) ? "true" : "false");
        } else {
            cJSON_Delete(*out);
            *out = NULL;
            errbuf_set(err, "options must be a map of strings");
            return COFFER_EINVAL;
        }
    }
    return 0;
}

static router_type_check_fn type_check;

void router_set_type_check(router_type_check_fn fn)
{
    type_check = fn;
}

static bool type_exists(enum mount_class klass, const char *type)
{
    return type_check != NULL && type_check(klass, type);
}

/*
 * Resolves the requested type into the stored type and implementation.
 * kv-v1/kv-v2 are aliases that set options.version; generic is kv.
 */
static int resolve_type(enum mount_class klass, const char *type,
                        cJSON **options, struct mount *m, struct errbuf *err)
{
    const char *version = NULL;
    const cJSON *v = *options
                         ? cJSON_GetObjectItemCaseSensitive(*options, "version")
                         : NULL;

    if (klass == MOUNT_AUTH) {
        if (strcmp(type, "token") == 0) {
            errbuf_set(err, "token credential backend cannot be "
                            "instantiated");
            return COFFER_EINVAL;
        }
        if (type_exists(MOUNT_AUTH, type)) { /* a Lua auth method */
            m->type = xstrdup(type);
            m->impl = MOUNT_IMPL_LUA;
            return 0;
        }
        errbuf_set(err, "unknown auth method type: \"%s\"", type);
        return COFFER_EINVAL;
    }
    if (strcmp(type, "kv-v1") == 0)
        version = "1";
    else if (strcmp(type, "kv-v2") == 0)
        version = "2";
    if (version != NULL || strcmp(type, "generic") == 0)
        type = "kv";
    if (strcmp(type, "kv") != 0 && v != NULL) {
        errbuf_set(err, "secrets engine \"%s\" does not allow setting a "
                        "version",
                   type);
        return COFFER_EINVAL;
    }
    if (strcmp(type, "kv") == 0 && v != NULL && version == NULL &&
        strcmp(v->valuestring, "1") != 0 && strcmp(v->valuestring, "2") != 0) {
        errbuf_set(err, "invalid kv version \"%s\": must be 1 or 2",
                   v->valuestring);
        return COFFER_EINVAL;
    }
    if (!type_exists(MOUNT_SECRET, type)) {
        errbuf_set(err, "unknown backend type: \"%s\"", type);
        return COFFER_EINVAL;
    }
    if (version != NULL) {
        if (*options == NULL)
            *options = cJSON_CreateObject();
        cJSON_DeleteItemFromObjectCaseSensitive(*options, "version");
        cJSON_AddStringToObject(*options, "version", version);
    }
    m->type = xstrdup(type);
    m->impl = MOUNT_IMPL_LUA;
    return 0;
}

/* Caller holds the lock. Vault refuses overlaps in either direction. */
static int check_overlap_locked(const char *path, struct errbuf *err)
{
    for (size_t i = 0; i < table_n; i++) {
        const char *mp = table[i]->path;
        if (str_has_prefix(path, mp) || str_has_prefix(mp, path)) {
            errbuf_set(err, "path is already in use at %s", mp);
            return COFFER_EEXIST;
        }
    }
    return 0;
}

static int check_reserved(enum mount_class klass, const char *path,
                          struct errbuf *err)
{
    if (klass != MOUNT_SECRET)
        return 0;
    for (size_t i = 0; i < ARRAY_LEN(reserved_prefixes); i++) {
        if (str_has_prefix(path, reserved_prefixes[i])) {
            errbuf_set(err, "cannot mount \"%s\"", path);
            return COFFER_EINVAL;
        }
    }
    return 0;
}

/* Fills a new mount from an enable request body, without publishing it. */
static struct mount *mount_from_request(enum mount_class klass, char *path,
                                        const cJSON *body, struct errbuf *err)
{
    struct mount *m = xcalloc(1, sizeof(*m));
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(body, "type");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(body, "config");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(body, "description");
    cJSON *options = NULL;
    bool given;
    char hex[9];

    m->path = path;
    atomic_init(&m->refs, 1);
    if (!cJSON_IsString(type) || type->valuestring[0] == '\0') {
        errbuf_set(err, "backend type must be specified as a string");
        goto fail;
    }
    if (parse_options(cJSON_GetObjectItemCaseSensitive(body, "options"),
                      &options, err) != 0)
        goto fail;
    if (resolve_type(klass, type->valuestring, &options, m, err) != 0)
        goto fail;
    if (cJSON_IsObject(cfg) &&
        (parse_ttl_field(cfg, "default_lease_ttl", &m->default_lease_ttl,
                         &given, err) != 0 ||
         parse_ttl_field(cfg, "max_lease_ttl", &m->max_lease_ttl, &given,
                         err) != 0 ||
         check_ttls(m->default_lease_ttl, m->max_lease_ttl, err) != 0))
        goto fail;
    m->options = options;
    options = NULL;
    m->klass = klass;
    m->description = xstrdup(cJSON_IsString(desc) ? desc->valuestring : "");
    m->local = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "local"));
    m->seal_wrap =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "seal_wrap"));
    if (crypto_uuid(m->uuid) != 0 || crypto_random_hex(hex, 8) != 0) {
        errbuf_set(err, "random number generator failed");
        goto fail;
    }
    snprintf(m->accessor, sizeof(m->accessor), "%s%s_%s",
             klass == MOUNT_AUTH ? "auth_" : "", m->type, hex);
    m->storage_prefix = xmalloc(strlen(m->uuid) + 16);
    snprintf(m->storage_prefix, strlen(m->uuid) + 16, "%s/%s/",
            klass == MOUNT_AUTH ? "auth" : "logical", m->uuid);
    return m;
fail:
    cJSON_Delete(options);
    if (m->description == NULL)
        m->description = xstrdup("");
    if (m->type == NULL)
        m->type = xstrdup("");
    mount_free(m);
    return NULL;
}

/* ========================================================= operations == */

static void publish_locked(struct mount *m)
{
    table = xrealloc(table, (table_n + 1) * sizeof(*table));
    table[table_n++] = m;
}

int router_enable(enum mount_class klass, const char *raw_path,
                  const cJSON *body, struct errbuf *err)
{
    char *path = normalize_path(klass, raw_path, err);
    struct mount *m;
    int rc;

    if (path == NULL)
        return COFFER_EINVAL;
    if (check_reserved(klass, path, err) != 0) {
        free(path);
        return COFFER_EINVAL;
    }
    m = mount_from_request(klass, path, body, err); /* owns path now */
    if (m == NULL)
        return COFFER_EINVAL;
    pthread_rwlock_wrlock(&table_lock);
    rc = check_overlap_locked(m->path, err);
    /* Again under the table lock: a plugin reload that drops this type
       checks the published mounts while it is staged, so a mount that
       passed the first check just before must not slip in after it.
       (The reload never holds the type check's lock while it takes this
       one, so the order table_lock -> type check cannot deadlock.) */
    if (rc == 0 && m->impl == MOUNT_IMPL_LUA &&
        !type_exists(m->klass, m->type)) {
        errbuf_set(err, "%s type \"%s\" was removed by a plugin reload",
                   m->klass == MOUNT_AUTH ? "auth method" : "backend",
                   m->type);
        rc = COFFER_EINVAL;
    }
    if (rc == 0) {
        publish_locked(m);
        rc = persist_locked();
        if (rc != 0) {
            table_n--;
            errbuf_set(err, "failed to persist the mount table: %s",
                       coffer_strerror(rc));
        }
    }
    pthread_rwlock_unlock(&table_lock);
    if (rc != 0) {
        mount_free(m);
        return rc;
    }
    log_info("router: enabled %s (type %s, accessor %s)", m->path, m->type,
             m->accessor);
    return 0;
}

/* Mounts that exist from the start and can be neither moved nor tuned. */
static bool is_builtin(const struct mount *m)
{
    return m->impl == MOUNT_IMPL_SYSTEM || m->impl == MOUNT_IMPL_TOKEN;
}

int router_disable(enum mount_class klass, const char *raw_path,
                   struct errbuf *err)
{
    char *path = normalize_path(klass, raw_path, err);
    struct mount *m = NULL;
    long i;
    int rc = 0;

    if (path == NULL)
        return COFFER_EINVAL;
    pthread_rwlock_wrlock(&table_lock);
    i = find_locked(path);
    if (strcmp(path, CUBBYHOLE_PATH) == 0) {
        errbuf_set(err, "cannot unmount \"%s\"", path);
        rc = COFFER_EINVAL;
    } else if (i >= 0 && is_builtin(table[i])) {
        if (table[i]->impl == MOUNT_IMPL_TOKEN)
            errbuf_set(err, "token credential backend cannot be disabled");
        else
            errbuf_set(err, "cannot unmount \"%s\"", path);
        rc = COFFER_EINVAL;
    } else if (i >= 0) {
        m = table[i];
        memmove(&table[i], &table[i + 1],
                (table_n - (size_t)i - 1) * sizeof(*table));
        table_n--;
        rc = persist_locked();
        if (rc != 0) {
            publish_locked(m);
            m = NULL;
            errbuf_set(err, "failed to persist the mount table: %s",
                       coffer_strerror(rc));
        }
    }
    pthread_rwlock_unlock(&table_lock);
    if (m != NULL) {
        /* The mount is unreachable now; its data can go. */
        rc = storage_delete_prefix(table_storage, m->storage_prefix);
        if (rc != 0)
            log_error("router: deleting the data of %s failed: %s", m->path,
                      coffer_strerror(rc));
        log_info("router: disabled %s", m->path);
        router_mount_put(m);
        rc = 0;
    }
    free(path);
    return rc;
}

/* Applies the tunable fields of body to m (a private copy). */
static int apply_tune(struct mount *m, const cJSON *body, struct errbuf *err)
{
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(body, "description");
    int64_t def = m->default_lease_ttl, max = m->max_lease_ttl;
    int64_t eff_def, eff_max;
    cJSON *options = NULL;
    const cJSON *it;
    bool given;

    if (parse_ttl_field(body, "default_lease_ttl", &def, &given, err) != 0 ||
        parse_ttl_field(body, "max_lease_ttl", &max, &given, err) != 0 ||
        parse_options(cJSON_GetObjectItemCaseSensitive(body, "options"),
                      &options, err) != 0)
        return COFFER_EINVAL;
    eff_def = def ? def : system_default_ttl;
    eff_max = max ? max : system_max_ttl;
    if (eff_max < eff_def) {
        errbuf_set(err, "backend max lease TTL of %lld would be less than "
                        "backend default lease TTL of %lld",
                   (long long)eff_max, (long long)eff_def);
        cJSON_Delete(options);
        return COFFER_EINVAL;
    }
    m->default_lease_ttl = def;
    m->max_lease_ttl = max;
    if (cJSON_IsString(desc)) {
        free(m->description);
        m->description = xstrdup(desc->valuestring);
    }
    if (options != NULL && m->options == NULL)
        m->options = cJSON_CreateObject();
    cJSON_ArrayForEach(it, options) {
        cJSON_DeleteItemFromObjectCaseSensitive(m->options, it->string);
        cJSON_AddStringToObject(m->options, it->string, it->valuestring);
    }
    cJSON_Delete(options);
    return 0;
}

int router_tune(enum mount_class klass, const char *raw_path,
                const cJSON *body, struct errbuf *err)
{
    char *path = normalize_path(klass, raw_path, err);
    struct mount *copy = NULL, *old = NULL;
    long i;
    int rc = 0;

    if (path == NULL)
        return COFFER_EINVAL;
    pthread_rwlock_wrlock(&table_lock);
    i = find_locked(path);
    if (strcmp(path, CUBBYHOLE_PATH) == 0) {
        errbuf_set(err, "cannot tune \"%s\"", path);
        rc = COFFER_EINVAL;
    } else if (i < 0) {
        errbuf_set(err, "tune of path \"%s\" failed: no mount entry found",
                   path);
        rc = COFFER_EINVAL;
    } else if (table[i]->impl == MOUNT_IMPL_SYSTEM) {
        errbuf_set(err, "cannot tune \"%s\"", path);
        rc = COFFER_EINVAL;
    } else {
        copy = mount_copy(table[i]);
        rc = apply_tune(copy, body, err);
        if (rc == 0) {
            old = table[i];
            table[i] = copy;
            copy = NULL;
            rc = persist_locked();
            if (rc != 0) {
                copy = table[i];
                table[i] = old;
                old = NULL;
                errbuf_set(err, "failed to persist the mount table");
            }
        }
    }
    pthread_rwlock_unlock(&table_lock);
    mount_free(copy);
    router_mount_put(old);
    free(path);
    return rc;
}

/* ================================================================ JSON == */

cJSON *router_mount_json(const struct mount *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *cfg = cJSON_CreateObject();
    char running[64];

    cJSON_AddStringToObject(o, "accessor", m->accessor);
    cJSON_AddNumberToObject(cfg, "default_lease_ttl",
                            (double)m->default_lease_ttl);
    cJSON_AddBoolToObject(cfg, "force_no_cache", false);
    cJSON_AddNumberToObject(cfg, "max_lease_ttl", (double)m->max_lease_ttl);
    if (m->klass == MOUNT_AUTH)
        cJSON_AddStringToObject(cfg, "token_type", "default-service");
    cJSON_AddItemToObject(o, "config", cfg);
    cJSON_AddStringToObject(o, "deprecation_status", "supported");
    cJSON_AddStringToObject(o, "description", m->description);
    cJSON_AddBoolToObject(o, "external_entropy_access", false);
    cJSON_AddBoolToObject(o, "local", m->local);
    if (m->options != NULL)
        cJSON_AddItemToObject(o, "options", cJSON_Duplicate(m->options, 1));
    else
        cJSON_AddNullToObject(o, "options");
    cJSON_AddStringToObject(o, "plugin_version", "");
    snprintf(running, sizeof(running), "v%s+builtin", COFFER_VERSION);
    cJSON_AddStringToObject(o, "running_plugin_version", running);
    cJSON_AddStringToObject(o, "running_sha256", "");
    cJSON_AddBoolToObject(o, "seal_wrap", m->seal_wrap);
    cJSON_AddStringToObject(o, "type", m->type);
    cJSON_AddStringToObject(o, "uuid", m->uuid);
    return o;
}

cJSON *router_list_json(enum mount_class klass)
{
    cJSON *o = cJSON_CreateObject();

    pthread_rwlock_rdlock(&table_lock);
    if (klass == MOUNT_SECRET && cubbyhole_mount != NULL)
        cJSON_AddItemToObject(o, CUBBYHOLE_PATH,
                              router_mount_json(cubbyhole_mount));
    for (size_t i = 0; i < table_n; i++) {
        const struct mount *m = table[i];
        const char *key = m->path;
        if (m->klass != klass)
            continue;
        if (klass == MOUNT_AUTH)
            key += strlen("auth/");
        cJSON_AddItemToObject(o, key, router_mount_json(m));
    }
    pthread_rwlock_unlock(&table_lock);
    return o;
}

/* ======================================================== start, stop == */

static void add_builtin(enum mount_class klass, const char *path,
                        const char *type, enum mount_impl impl,
                        const char *description)
{
    struct mount *m = xcalloc(1, sizeof(*m));
    char hex[9];

    m->path = xstrdup(path);
    m->type = xstrdup(type);
    m->description = xstrdup(description);
    m->klass = klass;
    m->impl = impl;
    COFFER_ASSERT(crypto_uuid(m->uuid) == 0 && crypto_random_hex(hex, 8) == 0);
    snprintf(m->accessor, sizeof(m->accessor), "%s%s_%s",
             klass == MOUNT_AUTH ? "auth_" : "", type, hex);
    m->storage_prefix = xmalloc(strlen(m->uuid) + 16);
    snprintf(m->storage_prefix, strlen(m->uuid) + 16, "%s/%s/",
            klass == MOUNT_AUTH ? "auth" : "logical", m->uuid);
    atomic_init(&m->refs, 1);
    publish_locked(m);
}

static int load_table(const char *text, struct errbuf *err)
{
    cJSON *arr = cJSON_Parse(text);
    const cJSON *it;

    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        errbuf_set(err, "the stored mount table is not valid JSON");
        return COFFER_EINVAL;
    }
    cJSON_ArrayForEach(it, arr) {
        publish_locked(mount_from_storage_json(it));
    }
    cJSON_Delete(arr);
    return 0;
}

/*
 * The cubbyhole mount entry with the uuid and accessor stored under
 * CUBBYHOLE_KEY (ids NULL: fresh random ones).
 */
static struct mount *cubbyhole_entry(const cJSON *ids)
{
    struct mount *m = xcalloc(1, sizeof(*m));
    char hex[9];

    m->path = xstrdup(CUBBYHOLE_PATH);
    m->type = xstrdup("cubbyhole");
    m->description = xstrdup("per-token private secret storage");
    m->storage_prefix = xstrdup(CUBBYHOLE_PATH);
    m->klass = MOUNT_SECRET;
    m->local = true;
    atomic_init(&m->refs, 1);
    if (ids != NULL) {
        snprintf(m->uuid, sizeof(m->uuid), "%s",
                 json_get_str(ids, "uuid", ""));
        snprintf(m->accessor, sizeof(m->accessor), "%s",
                 json_get_str(ids, "accessor", ""));
        return m;
    }
    COFFER_ASSERT(crypto_uuid(m->uuid) == 0 && crypto_random_hex(hex, 8) == 0);
    snprintf(m->accessor, sizeof(m->accessor), "cubbyhole_%s", hex);
    return m;
}

/* Writes the ids of m to CUBBYHOLE_KEY. */
static int cubbyhole_save(struct storage *s, const struct mount *m)
{
    cJSON *o = cJSON_CreateObject();
    char *text;
    int rc;

    cJSON_AddStringToObject(o, "uuid", m->uuid);
    cJSON_AddStringToObject(o, "accessor", m->accessor);
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    rc = storage_put(s, CUBBYHOLE_KEY, text, strlen(text));
    free(text);
    return rc;
}

/*
 * Loads the cubbyhole mount's ids, or makes and stores them the first
 * time (a new server, or one from before they were stored).
 */
static int cubbyhole_load(struct storage *s, struct mount **out,
                          struct errbuf *err)
{
    struct buf stored;
    cJSON *ids = NULL;
    int rc;

    *out = NULL;
    buf_init(&stored, 0);
    rc = storage_get(s, CUBBYHOLE_KEY, &stored);
    if (rc == 0) {
        ids = cJSON_Parse(stored.ptr);
        if (!cJSON_IsObject(ids) ||
            json_get_str(ids, "uuid", "")[0] == '\0' ||
            json_get_str(ids, "accessor", "")[0] == '\0') {
            errbuf_set(err, "the stored cubbyhole mount entry is not valid");
            rc = COFFER_EINVAL;
        } else {
            *out = cubbyhole_entry(ids);
        }
    } else if (rc == COFFER_ENOTFOUND) {
        *out = cubbyhole_entry(NULL);
        rc = cubbyhole_save(s, *out);
        if (rc != 0) {
            errbuf_set(err, "saving the cubbyhole mount entry failed: %s",
                       coffer_strerror(rc));
            mount_free(*out);
            *out = NULL;
        }
    } else {
        errbuf_set(err, "reading the cubbyhole mount entry failed: %s",
                   coffer_strerror(rc));
    }
    cJSON_Delete(ids);
    buf_release(&stored);
    return rc;
}

/* Publishes the cubbyhole entry for s; the previous one (if any) goes. */
static int cubbyhole_init(struct storage *s, struct errbuf *err)
{
    struct mount *m, *old;
    int rc = cubbyhole_load(s, &m, err);

    if (rc != 0)
        return rc;
    pthread_rwlock_wrlock(&table_lock);
    old = cubbyhole_mount;
    cubbyhole_mount = m;
    pthread_rwlock_unlock(&table_lock);
    router_mount_put(old);
    return 0;
}

static int table_init(struct storage *s, bool dev_mode, struct errbuf *err)
{
    struct buf stored;
    int rc;
    cJSON *body;
    struct errbuf why;

    table_storage = s;
    buf_init(&stored, 0);
    rc = storage_get(s, MOUNTS_KEY, &stored);
    if (rc == 0) {
        pthread_rwlock_wrlock(&table_lock);
        rc = load_table(stored.ptr, err);
        pthread_rwlock_unlock(&table_lock);
        buf_release(&stored);
        return rc;
    }
    buf_release(&stored);
    if (rc != COFFER_ENOTFOUND) {
        errbuf_set(err, "reading the mount table failed: %s",
                   coffer_strerror(rc));
        return rc;
    }
    pthread_rwlock_wrlock(&table_lock);
    add_builtin(MOUNT_SECRET, "sys/", "system", MOUNT_IMPL_SYSTEM,
                "system endpoints used for control, policy and debugging");
    add_builtin(MOUNT_AUTH, "auth/token/", "token", MOUNT_IMPL_TOKEN,
                "token based credentials");
    rc = persist_locked();
    pthread_rwlock_unlock(&table_lock);
    if (rc != 0 || !dev_mode)
        return rc;
    body = cJSON_Parse("{\"type\":\"kv\",\"options\":{\"version\":\"2\"},"
                       "\"description\":\"key/value secret storage\"}");
    rc = router_enable(MOUNT_SECRET, "secret", body, &why);
    cJSON_Delete(body);
    if (rc != 0)
        errbuf_set(err, "mounting secret/ failed: %s", why.msg);
    return rc;
}

int router_init(struct storage *s, bool dev_mode, struct errbuf *err)
{
    int rc = table_init(s, dev_mode, err);

    return rc != 0 ? rc : cubbyhole_init(s, err);
}

void router_shutdown(void)
{
    pthread_rwlock_wrlock(&table_lock);
    router_mount_put(cubbyhole_mount);
    cubbyhole_mount = NULL;
    for (size_t i = 0; i < table_n; i++)
        router_mount_put(table[i]);
    free(table);
    table = NULL;
    table_n = 0;
    pthread_rwlock_unlock(&table_lock);
}
