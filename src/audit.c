/*
 * audit.c - audit devices: the registry, the fan-out of Vault's entries
 * to every device, and the devices declared in the configuration file
 * (one device's options and writer: audit_device.c).
 *
 * The table (an array of reference-counted devices under a rwlock) is
 * restored from the barrier at unseal and dropped at seal. A log call
 * takes a reference on every device under the read lock, lets go of the
 * lock, then builds and writes one line per device: enabling or
 * disabling never waits for a slow write, and a disabled device is
 * closed when its last writer is done.
 *
 * Bounds: a writer waits for a device's mutex and for its descriptor at
 * most the device's write timeout (poll on non-blocking descriptors); a
 * device that failed is marked down and refused at once until its
 * back-off passes, so a dead listener costs one timeout, not one per
 * request.
 */
#include "audit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_entry.h"
#include "crypto.h"
#include "json.h"
#include "json_write.h"
#include "log.h"
#include "mount.h"
#include "audit_decl.h"
#include "audit_device.h"
#include "router.h"
#include "storage.h"
#include "token.h"
#include "util.h"

#define TABLE_KEY "core/audit"
#define SALT_PREFIX "core/audit-salt/"
/* Salts of config-declared devices, by path: they have no stored uuid. */
#define DECLARED_SALT_PREFIX "core/audit-config-salt/"


static struct {
    pthread_rwlock_t lock;
    struct storage *storage;
    struct audit_device **devs;
    size_t n;
    atomic_size_t count; /* n, read without the lock on the fast path */
} table = {.lock = PTHREAD_RWLOCK_INITIALIZER};

/*
 * The configuration file's audit settings (audit_configure), read at
 * unseal and by audit_enable/audit_disable. Written before the server
 * serves; guarded by table.lock anyway.
 */
static struct {
    struct config_audit_device *v;
    size_t n;
    char *file;
    bool api_creation_off; /* zero value = allowed, as in Vault */
} declared;

static atomic_uint_fast64_t failures;
/* The request entry of this thread's request was written (or no device). */
static _Thread_local bool request_logged;

/* ========================================================== fan-out == */

/* References every device; *n of them. Free with devices_put. */
static struct audit_device **devices_get(size_t *n)
{
    struct audit_device **v = NULL;

    pthread_rwlock_rdlock(&table.lock);
    *n = table.n;
    if (table.n > 0) {
        v = xcalloc(table.n, sizeof(*v));
        for (size_t i = 0; i < table.n; i++) {
            v[i] = table.devs[i];
            atomic_fetch_add(&v[i]->refs, 1);
        }
    }
    pthread_rwlock_unlock(&table.lock);
    return v;
}

static void devices_put(struct audit_device **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        audit_device_put(v[i]);
    free(v);
}

typedef void (*entry_fn)(struct json_writer *w, const struct audit_device *d,
                         void *arg);

/* How d shows values in its entries (audit_entry.h). */
static struct audit_format format_of(const struct audit_device *d)
{
    return (struct audit_format){d->salt, d->log_raw, d->hmac_accessor,
                                 d->elide_list};
}

/* An entry is about 1 KiB; one the size of a request body is possible. */
#define ENTRY_RESERVE 4096
#define ENTRY_MAX ((size_t)64 * 1024 * 1024)

/*
 * Prefix + JSON + newline into line. Only with log_raw does the line hold
 * secrets in clear (otherwise every client or secret value is an HMAC by
 * now), so only then is it wiped when released.
 */
static int render_line(const struct audit_device *d, entry_fn build,
                       void *arg, struct buf *line)
{
    struct json_writer w;

    buf_reserve(line, ENTRY_RESERVE);
    json_write_init(&w, line);
    if (d->prefix[0] != '\0')
        w.rc = buf_append_str(line, d->prefix);
    build(&w, d, arg);
    if (w.rc == 0)
        w.rc = buf_append(line, "\n", 1);
    return w.rc;
}

static void line_release(const struct audit_device *d, struct buf *line)
{
    if (d->log_raw)
        buf_release(line);
    else
        free(line->ptr);
}

/* Writes one entry per device: 0 if none is enabled or one wrote it. */
static int fan_out(entry_fn build, void *arg, const char *what)
{
    size_t n, ok = 0;
    struct audit_device **v;

    if (atomic_load(&table.count) == 0)
        return 0;
    v = devices_get(&n);
    for (size_t i = 0; i < n; i++) {
        struct buf line;
        int rc;
        buf_init(&line, ENTRY_MAX);
        rc = render_line(v[i], build, arg, &line);
        if (rc == 0)
            rc = audit_device_write(v[i], line.ptr, line.len);
        line_release(v[i], &line);
        if (rc == 0) {
            ok++;
        } else {
            atomic_fetch_add(&failures, 1);
            log_warn("audit: device %s failed to log the %s: %s", v[i]->path,
                     what, coffer_strerror(rc));
        }
    }
    devices_put(v, n);
    return n == 0 || ok > 0 ? 0 : -1;
}

struct pipeline_arg {
    const struct request *req;
    const struct response *resp;
    const struct mount *m;
    bool is_response;
};

static void build_pipeline(struct json_writer *w,
                           const struct audit_device *d, void *arg)
{
    struct pipeline_arg *a = arg;
    struct audit_format f = format_of(d);

    audit_entry_pipeline(w, &f, a->req, a->resp, a->m, a->is_response);
}

static int log_pipeline(const struct request *req, struct response *resp,
                        bool is_response)
{
    struct pipeline_arg a = {req, resp, req->mount, is_response};
    const struct mount *looked = NULL;
    int rc;

    if (atomic_load(&table.count) == 0)
        return 0;
    if (a.m == NULL) { /* the request entry: the router has not run yet */
        looked = router_match(req->path);
        a.m = looked;
    }
    rc = fan_out(build_pipeline, &a, is_response ? "response" : "request");
    router_mount_put(looked);
    if (rc != 0) {
        log_error("audit: no audit backend succeeded in logging the %s",
                  is_response ? "response" : "request");
        response_release(resp);
        response_init(resp);
        response_error(resp, 500, "internal error");
    }
    return rc;
}

int audit_log_request(const struct request *req, struct response *resp)
{
    int rc = log_pipeline(req, resp, false);

    request_logged = rc == 0;
    return rc;
}

int audit_log_response(const struct request *req, struct response *resp)
{
    if (!request_logged)
        return 0;
    request_logged = false;
    return log_pipeline(req, resp, true);
}

struct revocation_arg {
    const char *lease_id, *reason;
    const cJSON *internal;
};

static void build_revocation(struct json_writer *w,
                             const struct audit_device *d, void *arg)
{
    struct revocation_arg *a = arg;
    struct audit_format f = format_of(d);

    audit_entry_revocation(w, &f, a->lease_id, a->reason, a->internal);
}

void audit_log_revocation(const char *lease_id, const char *reason,
                          const cJSON *internal)
{
    struct revocation_arg a = {lease_id, reason, internal};

    if (lease_id != NULL)
        (void)fan_out(build_revocation, &a, "revocation");
}

uint64_t audit_failures_total(void)
{
    return atomic_load(&failures);
}

size_t audit_device_count(void)
{
    return atomic_load(&table.count);
}


bool audit_may_block(void)
{
    bool may = false;

    if (atomic_load(&table.count) == 0)
        return false;
    if (pthread_rwlock_tryrdlock(&table.lock) != 0)
        return true;
    for (size_t i = 0; i < table.n && !may; i++)
        may = !audit_device_never_waits(table.devs[i]);
    pthread_rwlock_unlock(&table.lock);
    return may;
}

/* ============================================================== table == */

/* "file" and "file/" name the same device. */
static char *norm_path(const char *path)
{
    size_t n = strlen(path);
    char *p = xmalloc(n + 2);

    memcpy(p, path, n + 1);
    while (n > 0 && p[n - 1] == '/')
        p[--n] = '\0';
    p[n] = '/';
    p[n + 1] = '\0';
    return p;
}

/* Index of the device at path (normalised), or -1. Caller holds the lock. */
static ssize_t find_locked(const char *path)
{
    for (size_t i = 0; i < table.n; i++) {
        if (strcmp(table.devs[i]->path, path) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static cJSON *device_json(const struct audit_device *d, bool stored)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "type", d->type);
    cJSON_AddStringToObject(o, "description", d->description);
    cJSON_AddItemToObject(o, "options", cJSON_Duplicate(d->options, 1));
    cJSON_AddBoolToObject(o, "local", d->local);
    cJSON_AddStringToObject(o, "path", d->path);
    if (stored)
        cJSON_AddStringToObject(o, "uuid", d->uuid);
    return o;
}

/* The stored table with extra appended and skip left out. */
static char *table_text(const struct audit_device *extra, const char *skip)
{
    cJSON *a = cJSON_CreateArray();
    char *text;

    for (size_t i = 0; i < table.n; i++) {
        if (table.devs[i]->declared)
            continue; /* config-owned: the file declares it every start */
        if (skip == NULL || strcmp(table.devs[i]->path, skip) != 0)
            cJSON_AddItemToArray(a, device_json(table.devs[i], true));
    }
    if (extra != NULL)
        cJSON_AddItemToArray(a, device_json(extra, true));
    text = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return text;
}

static void salt_key(const char *uuid, char *out, size_t n)
{
    snprintf(out, n, "%s%s", SALT_PREFIX, uuid);
}


static void table_add_locked(struct audit_device *d)
{
    table.devs = xrealloc(table.devs, (table.n + 1) * sizeof(*table.devs));
    table.devs[table.n++] = d;
    atomic_store(&table.count, table.n);
}

/* Refusals that need the table: sealed, path taken. Caller holds the lock. */
static int check_free_locked(const char *path, struct errbuf *err)
{
    if (table.storage == NULL) {
        errbuf_set(err, "Vault is sealed");
        return COFFER_ESEALED;
    }
    if (find_locked(path) >= 0) {
        errbuf_set(err, "path already in use");
        return COFFER_EEXIST;
    }
    return 0;
}

/* A new device with its salt, opened: done outside the table lock, since
 * connecting may take up to the write timeout. */
static struct audit_device *prepare_device(const char *path, const char *type,
                                           const char *description,
                                           const cJSON *options, bool local,
                                           struct errbuf *err)
{
    struct audit_device *d;

    if (type == NULL || type[0] == '\0') {
        errbuf_set(err, "type is required");
        return NULL;
    }
    d = audit_device_new(path, type, description, options, local, err);
    if (d == NULL)
        return NULL;
    d->salt = xmalloc(CRYPTO_UUID_LEN + 1);
    if (crypto_uuid(d->uuid) != 0 || crypto_uuid(d->salt) != 0) {
        errbuf_set(err, "generating the salt failed");
        audit_device_put(d);
        return NULL;
    }
    if (audit_device_open(d, false, err) != 0) {
        audit_device_put(d);
        return NULL;
    }
    return d;
}

/* Stores the table with d added, and d's salt, in one batch. */
static int persist_with_locked(const struct audit_device *d,
                               struct errbuf *err)
{
    struct storage_op ops[2];
    char key[128], *text = table_text(d, NULL);
    int rc;

    salt_key(d->uuid, key, sizeof(key));
    ops[0] = (struct storage_op){STORAGE_OP_PUT, key, d->salt,
                                 strlen(d->salt)};
    ops[1] = (struct storage_op){STORAGE_OP_PUT, TABLE_KEY, text,
                                 strlen(text)};
    rc = storage_batch(table.storage, ops, 2);
    if (rc != 0)
        errbuf_set(err, "failed to persist audit table: %s",
                   coffer_strerror(rc));
    free(text);
    return rc;
}

int audit_enable(const char *path_in, const char *type,
                 const char *description, const cJSON *options, bool local,
                 struct errbuf *err)
{
    char *path = norm_path(path_in);
    struct audit_device *d = NULL;
    bool off;
    int rc;

    pthread_rwlock_rdlock(&table.lock);
    off = declared.api_creation_off;
    rc = check_free_locked(path, err);
    pthread_rwlock_unlock(&table.lock);
    if (off) { /* OpenBao's text */
        errbuf_set(err, "cannot enable audit device via API; use "
                        "declarative, config-based audit device management "
                        "instead");
        rc = COFFER_EPERM;
    }
    if (rc == 0 && strcmp(path, "/") == 0) {
        errbuf_set(err, "path cannot be empty");
        rc = COFFER_EINVAL;
    }
    if (rc == 0) {
        d = prepare_device(path, type, description, options, local, err);
        rc = d == NULL ? COFFER_EINVAL : 0;
    }
    if (rc == 0) {
        pthread_rwlock_wrlock(&table.lock);
        rc = check_free_locked(path, err); /* again: raced with another */
        if (rc == 0)
            rc = persist_with_locked(d, err);
        if (rc == 0) {
            table_add_locked(d);
            d = NULL;
            log_info("audit: enabled device %s (%s)", path, type);
        }
        pthread_rwlock_unlock(&table.lock);
    }
    audit_device_put(d);
    free(path);
    return rc;
}

int audit_disable(const char *path_in, struct errbuf *err)
{
    char *path = norm_path(path_in);
    struct audit_device *gone = NULL;
    char key[128], *text = NULL;
    ssize_t i;
    int rc = 0;

    pthread_rwlock_wrlock(&table.lock);
    i = table.storage != NULL ? find_locked(path) : -1;
    if (i >= 0 && table.devs[i]->declared) {
        errbuf_set(err, "cannot disable audit device \"%s\": it is declared "
                        "in the configuration file (%s:%d); remove it there "
                        "and restart", path,
                   declared.file != NULL ? declared.file : "?",
                   table.devs[i]->line);
        rc = COFFER_EPERM;
    } else if (i >= 0) {
        struct storage_op ops[2];
        gone = table.devs[i];
        salt_key(gone->uuid, key, sizeof(key));
        text = table_text(NULL, path);
        ops[0] = (struct storage_op){STORAGE_OP_PUT, TABLE_KEY, text,
                                     strlen(text)};
        ops[1] = (struct storage_op){STORAGE_OP_DELETE, key, NULL, 0};
        rc = storage_batch(table.storage, ops, 2);
        if (rc != 0) {
            errbuf_set(err, "failed to persist audit table: %s",
                       coffer_strerror(rc));
            gone = NULL;
        } else {
            memmove(&table.devs[i], &table.devs[i + 1],
                    (table.n - (size_t)i - 1) * sizeof(*table.devs));
            table.n--;
            atomic_store(&table.count, table.n);
            log_info("audit: disabled device %s", path);
        }
    }
    pthread_rwlock_unlock(&table.lock);
    audit_device_put(gone); /* closed when the last writer lets go */
    free(text);
    free(path);
    return rc;
}

cJSON *audit_list_json(void)
{
    cJSON *o = cJSON_CreateObject();

    pthread_rwlock_rdlock(&table.lock);
    for (size_t i = 0; i < table.n; i++)
        cJSON_AddItemToObject(o, table.devs[i]->path,
                              device_json(table.devs[i], false));
    pthread_rwlock_unlock(&table.lock);
    return o;
}

int audit_hash(const char *path_in, const char *input, char *out)
{
    char *path = norm_path(path_in);
    ssize_t i;
    int rc = COFFER_ENOTFOUND;

    pthread_rwlock_rdlock(&table.lock);
    i = find_locked(path);
    if (i >= 0) {
        audit_hmac(table.devs[i]->salt, input, strlen(input), out);
        rc = 0;
    }
    pthread_rwlock_unlock(&table.lock);
    free(path);
    return rc;
}

/* One stored device: rebuilt, its salt read back, opened if it can be. */
static int restore_one(const cJSON *e, struct errbuf *err)
{
    const char *path = json_get_str(e, "path", NULL);
    const char *type = json_get_str(e, "type", NULL);
    const char *uuid = json_get_str(e, "uuid", NULL);
    struct audit_device *d;
    struct errbuf why;
    struct buf salt;
    char key[128];
    int rc;

    if (path == NULL || type == NULL || uuid == NULL ||
        strlen(uuid) != CRYPTO_UUID_LEN) {
        errbuf_set(err, "audit table: malformed entry");
        return COFFER_EINVAL;
    }
    d = audit_device_new(path, type, json_get_str(e, "description", ""),
                   cJSON_GetObjectItemCaseSensitive(e, "options"),
                   json_get_bool(e, "local", false), err);
    if (d == NULL)
        return COFFER_EINVAL;
    memcpy(d->uuid, uuid, CRYPTO_UUID_LEN + 1);
    buf_init(&salt, 4096);
    salt_key(uuid, key, sizeof(key));
    rc = storage_get(table.storage, key, &salt);
    if (rc != 0 || salt.len == 0) {
        errbuf_set(err, "audit device %s: salt missing", path);
        buf_release(&salt);
        audit_device_free(d);
        return rc != 0 ? rc : COFFER_EINVAL;
    }
    d->salt = buf_detach(&salt, NULL);
    /* A device that cannot open now stays: its writes fail (closed) and
     * retry, so a missing file or a listener that is down is not a
     * silent gap in the log. */
    if (audit_device_open(d, false, &why) != 0)
        log_error("audit: device %s: %s", path, why.msg);
    table_add_locked(d);
    return 0;
}

/* ============================================= declared in the file == */

/* Option names each type reads (device_new and its parse_*_opts). */
static bool option_known(const char *type, const char *key)
{
    static const char *const common[] = {
        "format", "prefix", "log_raw", "hmac_accessor",
        "elide_list_responses",
    };
    static const char *const file[] = {"file_path", "path", "mode"};
    static const char *const sock[] = {"address", "socket_type",
                                       "write_timeout"};
    static const char *const sys[] = {"facility", "tag"};
    const char *const *v = strcmp(type, "file") == 0     ? file
                           : strcmp(type, "socket") == 0 ? sock
                                                         : sys;
    size_t n = strcmp(type, "file") == 0     ? ARRAY_LEN(file)
               : strcmp(type, "socket") == 0 ? ARRAY_LEN(sock)
                                             : ARRAY_LEN(sys);

    for (size_t i = 0; i < ARRAY_LEN(common); i++) {
        if (strcmp(common[i], key) == 0)
            return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], key) == 0)
            return true;
    }
    return false;
}

int audit_check_declaration(const char *type, const cJSON *options,
                            struct errbuf *err)
{
    struct audit_device *d;
    const cJSON *it;

    if (strcmp(type, "file") != 0 && strcmp(type, "socket") != 0 &&
        strcmp(type, "syslog") != 0) {
        errbuf_set(err, "unknown backend type: \"%s\"", type);
        return COFFER_EINVAL;
    }
    cJSON_ArrayForEach(it, options) {
        if (!option_known(type, it->string)) {
            errbuf_set(err, "unknown option \"%s\" for a %s device",
                       it->string, type);
            return COFFER_EINVAL;
        }
    }
    d = audit_device_new("check/", type, "", options, false, err);
    if (d == NULL)
        return COFFER_EINVAL;
    audit_device_free(d);
    return 0;
}

static void declared_release_locked(void)
{
    for (size_t i = 0; i < declared.n; i++) {
        free(declared.v[i].type);
        free(declared.v[i].path);
        free(declared.v[i].description);
        cJSON_Delete(declared.v[i].options);
    }
    free(declared.v);
    free(declared.file);
    declared.v = NULL;
    declared.n = 0;
    declared.file = NULL;
}

void audit_configure(const struct config_audit_device *v, size_t n,
                     bool api_creation, const char *file)
{
    pthread_rwlock_wrlock(&table.lock);
    declared_release_locked();
    declared.v = n > 0 ? xcalloc(n, sizeof(*declared.v)) : NULL;
    for (size_t i = 0; i < n; i++) {
        declared.v[i].type = xstrdup(v[i].type);
        declared.v[i].path = xstrdup(v[i].path);
        declared.v[i].description = xstrdup(v[i].description != NULL
                                                ? v[i].description : "");
        declared.v[i].options = cJSON_Duplicate(v[i].options, 1);
        declared.v[i].local = v[i].local;
        declared.v[i].line = v[i].line;
    }
    declared.n = n;
    declared.file = file != NULL ? xstrdup(file) : NULL;
    declared.api_creation_off = !api_creation;
    pthread_rwlock_unlock(&table.lock);
}

/*
 * The salt of a declared device, kept in the barrier under its path and
 * made on its first unseal: audit-hash values survive restarts.
 */
static int declared_salt_locked(const char *path, char **out,
                                struct errbuf *err)
{
    char key[512];
    struct buf b;
    int rc;

    snprintf(key, sizeof(key), "%s%s", DECLARED_SALT_PREFIX, path);
    buf_init(&b, 4096);
    rc = storage_get(table.storage, key, &b);
    if (rc == 0 && b.len > 0) {
        *out = buf_detach(&b, NULL);
        return 0;
    }
    buf_release(&b);
    if (rc != 0 && rc != COFFER_ENOTFOUND) {
        errbuf_set(err, "audit device %s: reading its salt: %s", path,
                   coffer_strerror(rc));
        return rc;
    }
    *out = xmalloc(CRYPTO_UUID_LEN + 1);
    rc = crypto_uuid(*out);
    if (rc == 0)
        rc = storage_put(table.storage, key, *out, strlen(*out));
    if (rc != 0) {
        errbuf_set(err, "audit device %s: storing its salt: %s", path,
                   coffer_strerror(rc));
        secure_free_str(*out);
        *out = NULL;
    }
    return rc;
}

/* One declared device into the table (unseal). Caller holds the lock. */
static int enable_declared_locked(const struct config_audit_device *c,
                                  struct errbuf *err)
{
    char *path = norm_path(c->path);
    struct audit_device *d = NULL;
    struct errbuf why;
    int rc = 0;

    if (find_locked(path) >= 0) {
        errbuf_set(err, "audit device \"%s\" declared at %s:%d is also "
                        "enabled through the API; rename the declaration",
                   path, declared.file, c->line);
        rc = COFFER_EEXIST;
    }
    if (rc == 0) {
        d = audit_device_new(path, c->type, c->description, c->options, c->local,
                       err);
        rc = d == NULL ? COFFER_EINVAL : 0;
    }
    if (rc == 0) {
        d->declared = true;
        d->line = c->line;
        rc = crypto_uuid(d->uuid);
    }
    if (rc == 0)
        rc = declared_salt_locked(path, &d->salt, err);
    if (rc == 0) {
        /* As for a stored device: one that cannot open stays, and its
         * writes fail closed until it can. */
        if (audit_device_open(d, false, &why) != 0)
            log_error("audit: device %s: %s", path, why.msg);
        table_add_locked(d);
        log_info("audit: enabled device %s (%s) from %s:%d", path, c->type,
                 declared.file, c->line);
        d = NULL;
    }
    audit_device_put(d);
    free(path);
    return rc;
}

/* d is exactly what declaration c asks for (same path, type, options). */
static bool declaration_matches(const struct audit_device *d,
                                const struct config_audit_device *c)
{
    char *path = norm_path(c->path);
    struct errbuf ignored;
    cJSON *opts = audit_options_as_strings(c->options, &ignored);
    bool same = strcmp(path, d->path) == 0 && strcmp(c->type, d->type) == 0 &&
                strcmp(c->description != NULL ? c->description : "",
                       d->description) == 0 &&
                c->local == d->local && opts != NULL &&
                cJSON_Compare(opts, d->options, true);

    cJSON_Delete(opts);
    free(path);
    return same;
}

static bool still_declared_locked(const struct audit_device *d)
{
    for (size_t i = 0; i < declared.n; i++) {
        if (declaration_matches(d, &declared.v[i]))
            return true;
    }
    return false;
}

/*
 * Takes out of the table every declared device whose stanza is gone or
 * changed; returns them (*n) for the caller to release after unlocking.
 */
static struct audit_device **drop_undeclared_locked(size_t *n)
{
    struct audit_device **gone = xcalloc(table.n + 1, sizeof(*gone));
    size_t kept = 0;

    *n = 0;
    for (size_t i = 0; i < table.n; i++) {
        struct audit_device *d = table.devs[i];
        if (d->declared && !still_declared_locked(d)) {
            log_info("audit: disabled device %s: its declaration in %s "
                     "was removed or changed", d->path,
                     declared.file != NULL ? declared.file : "?");
            gone[(*n)++] = d;
        } else {
            table.devs[kept++] = d;
        }
    }
    table.n = kept;
    atomic_store(&table.count, table.n);
    return gone;
}

int audit_apply_declared(struct errbuf *err)
{
    struct audit_device **gone = NULL;
    size_t ngone = 0;
    int rc = 0;

    pthread_rwlock_wrlock(&table.lock);
    if (table.storage != NULL) { /* sealed: the next unseal applies them */
        gone = drop_undeclared_locked(&ngone);
        for (size_t i = 0; i < declared.n; i++) {
            struct errbuf why;
            char *path = norm_path(declared.v[i].path);
            ssize_t at = find_locked(path);
            int one = 0;
            if (at < 0 || !table.devs[at]->declared)
                one = enable_declared_locked(&declared.v[i], &why);
            if (one != 0 && rc == 0) {
                rc = one;
                errbuf_set(err, "%s", why.msg);
            }
            free(path);
        }
    }
    pthread_rwlock_unlock(&table.lock);
    devices_put(gone, ngone); /* closed when their last writer lets go */
    return rc;
}

int audit_init(struct storage *logical, struct errbuf *err)
{
    struct buf b;
    cJSON *a = NULL;
    const cJSON *e;
    int rc;

    buf_init(&b, BUF_MAX_DEFAULT);
    pthread_rwlock_wrlock(&table.lock);
    table.storage = logical;
    rc = storage_get(logical, TABLE_KEY, &b);
    if (rc == COFFER_ENOTFOUND) {
        rc = 0;
    } else if (rc != 0) {
        errbuf_set(err, "reading the audit table: %s", coffer_strerror(rc));
    } else {
        a = cJSON_ParseWithLength(b.ptr, b.len);
        if (!cJSON_IsArray(a)) {
            errbuf_set(err, "audit table: not a JSON array");
            rc = COFFER_EINVAL;
        }
    }
    for (e = rc == 0 && a != NULL ? a->child : NULL; e != NULL && rc == 0;
         e = e->next)
        rc = restore_one(e, err);
    for (size_t i = 0; rc == 0 && i < declared.n; i++)
        rc = enable_declared_locked(&declared.v[i], err);
    pthread_rwlock_unlock(&table.lock);
    cJSON_Delete(a);
    buf_release(&b);
    if (rc != 0)
        audit_shutdown();
    return rc;
}

void audit_shutdown(void)
{
    struct audit_device **v;
    size_t n;

    pthread_rwlock_wrlock(&table.lock);
    v = table.devs;
    n = table.n;
    table.devs = NULL;
    table.n = 0;
    table.storage = NULL;
    atomic_store(&table.count, 0);
    pthread_rwlock_unlock(&table.lock);
    devices_put(v, n);
}

void audit_reopen(void)
{
    size_t n;
    struct audit_device **v = devices_get(&n);

    for (size_t i = 0; i < n; i++) {
        struct audit_device *d = v[i];
        struct errbuf why;
        if (d->kind != DEV_FILE || d->target != TARGET_PATH)
            continue;
        if (audit_device_open(d, true, &why) != 0)
            log_error("audit: reopening %s: %s", d->path, why.msg);
    }
    devices_put(v, n);
}
