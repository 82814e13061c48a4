/*
 * token.c - the token store.
 *
 * Owns token entries, their accessor and parent indexes, and the
 * auth/token/ endpoints. Does not own ACL decisions (policy.c) nor the
 * leases a token obtained (lease.c revokes those when asked).
 *
 * A client token is never stored: the store keys entries by
 * HMAC-SHA256(salt, token), so a copy of the storage does not yield usable
 * tokens. Writes that touch several keys go through one storage batch.
 */
#include "token.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "fields.h"
#include "lease.h"
#include "log.h"
#include "mount.h"
#include "policy.h"
#include "router.h"
#include "storage.h"

#define SALT_KEY "core/token-salt"
#define TOKEN_PREFIX "hvs."
#define HMAC_HEX_LEN 64

/* num_uses of an entry whose last use was taken: revocation is pending. */
#define USES_PENDING (-1)
#define RENEW_STRIPES 32

static struct storage *store;
static unsigned char salt[32];
/*
 * Serialises every read-modify-write of stored entries and of the parent
 * index: a use, the write of a renewal, a revocation, a new entry under
 * its parent. Whoever holds it re-reads the entry first, so nothing is
 * written from a stale copy and a revoked entry is never written back.
 * Never held while calling into lease.c: a revocation worker that holds
 * a lease calls back into revoke_tree.
 */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
/*
 * Renewals of one token run one at a time from the entry to its lease, so
 * the lease expires when the entry says. Striped by hmac; taken before
 * write_lock and held across lease_extend (which never calls back here).
 */
static pthread_mutex_t renew_locks[RENEW_STRIPES];
static pthread_once_t renew_once = PTHREAD_ONCE_INIT;

static void renew_locks_init(void)
{
    for (size_t i = 0; i < RENEW_STRIPES; i++)
        pthread_mutex_init(&renew_locks[i], NULL);
}

static pthread_mutex_t *renew_lock_for(const char *hmac)
{
    unsigned h = 0;

    pthread_once(&renew_once, renew_locks_init);
    for (const char *c = hmac; *c != '\0'; c++)
        h = h * 31u + (unsigned char)*c;
    return &renew_locks[h % RENEW_STRIPES];
}

/* ================================================================ keys == */

static void token_hmac(const char *client_token, char out[HMAC_HEX_LEN + 1])
{
    unsigned char mac[32];

    crypto_hmac_sha256(salt, sizeof(salt), client_token, strlen(client_token),
                       mac);
    crypto_hex(mac, sizeof(mac), out);
    crypto_wipe(mac, sizeof(mac));
}

static void key_id(char *out, size_t n, const char *hmac)
{
    snprintf(out, n, "token/id/%s", hmac);
}

static void key_accessor(char *out, size_t n, const char *accessor)
{
    snprintf(out, n, "token/accessor/%s", accessor);
}

static void key_child(char *out, size_t n, const char *parent,
                      const char *child)
{
    snprintf(out, n, "token/parent/%s/%s", parent, child);
}

int token_store_init(struct storage *s)
{
    struct buf stored;
    int rc;

    store = s;
    buf_init(&stored, 1024);
    rc = storage_get(s, SALT_KEY, &stored);
    if (rc == 0 && stored.len == sizeof(salt)) {
        memcpy(salt, stored.ptr, sizeof(salt));
    } else if (rc == COFFER_ENOTFOUND) {
        rc = crypto_random(salt, sizeof(salt));
        if (rc == 0)
            rc = storage_put(s, SALT_KEY, salt, sizeof(salt));
    } else if (rc == 0) {
        rc = COFFER_EINVAL;
    }
    buf_release(&stored);
    if (rc != 0)
        log_error("token: loading the token salt failed: %s",
                  coffer_strerror(rc));
    return rc;
}

void token_store_shutdown(void)
{
    crypto_wipe(salt, sizeof(salt));
    store = NULL;
}

/* ============================================================ entries == */

void token_free(struct token *t)
{
    if (t == NULL)
        return;
    free(t->id_hmac);
    free(t->parent_hmac);
    free(t->display_name);
    free(t->path);
    strvec_release(&t->policies);
    cJSON_Delete(t->meta);
    free(t->entity_id);
    free(t->type);
    free(t->lease_id);
    free(t->role);
    strvec_release(&t->bound_cidrs);
    free(t);
}

static cJSON *policies_json(const struct strvec *sv)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; i < sv->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(sv->v[i]));
    return arr;
}

static cJSON *entry_to_json(const struct token *t)
{
    cJSON *o = cJSON_CreateObject();
    char when[64];

    cJSON_AddStringToObject(o, "accessor", t->accessor);
    if (t->parent_hmac != NULL)
        cJSON_AddStringToObject(o, "parent", t->parent_hmac);
    cJSON_AddStringToObject(o, "display_name", t->display_name);
    cJSON_AddStringToObject(o, "path", t->path);
    cJSON_AddItemToObject(o, "policies", policies_json(&t->policies));
    if (t->meta != NULL)
        cJSON_AddItemToObject(o, "meta", cJSON_Duplicate(t->meta, 1));
    cJSON_AddNumberToObject(o, "creation_time", (double)t->creation_time);
    time_format_rfc3339(t->issue_time, when, sizeof(when));
    cJSON_AddStringToObject(o, "issue_time", when);
    cJSON_AddNumberToObject(o, "creation_ttl", (double)t->creation_ttl);
    cJSON_AddNumberToObject(o, "ttl", (double)t->ttl);
    cJSON_AddNumberToObject(o, "expire_time", (double)t->expire_time);
    cJSON_AddNumberToObject(o, "explicit_max_ttl",
                            (double)t->explicit_max_ttl);
    cJSON_AddNumberToObject(o, "period", (double)t->period);
    cJSON_AddNumberToObject(o, "num_uses", (double)t->num_uses);
    cJSON_AddBoolToObject(o, "renewable", t->renewable);
    cJSON_AddBoolToObject(o, "orphan", t->orphan);
    cJSON_AddNumberToObject(o, "last_renewal", (double)t->last_renewal);
    cJSON_AddNumberToObject(o, "max_ttl", (double)t->max_ttl);
    if (t->lease_id != NULL)
        cJSON_AddStringToObject(o, "lease_id", t->lease_id);
    if (t->role != NULL)
        cJSON_AddStringToObject(o, "role", t->role);
    if (t->bound_cidrs.n > 0)
        cJSON_AddItemToObject(o, "bound_cidrs", policies_json(&t->bound_cidrs));
    return o;
}

static int64_t get_int(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? xstrdup(v->valuestring) : NULL;
}

static struct token *entry_from_json(const char *hmac, const cJSON *o)
{
    struct token *t = xcalloc(1, sizeof(*t));
    const cJSON *pol = cJSON_GetObjectItemCaseSensitive(o, "policies");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "meta");
    const cJSON *it;
    char *acc = get_str(o, "accessor");
    char *issue = get_str(o, "issue_time");

    t->id_hmac = xstrdup(hmac);
    snprintf(t->accessor, sizeof(t->accessor), "%s", acc ? acc : "");
    t->parent_hmac = get_str(o, "parent");
    t->display_name = get_str(o, "display_name");
    t->path = get_str(o, "path");
    strvec_init(&t->policies);
    cJSON_ArrayForEach(it, pol) {
        if (cJSON_IsString(it))
            strvec_push(&t->policies, it->valuestring);
    }
    t->meta = cJSON_IsObject(meta) ? cJSON_Duplicate(meta, 1) : NULL;
    t->creation_time = get_int(o, "creation_time");
    if (issue == NULL || time_parse_rfc3339(issue, &t->issue_time) != 0)
        t->issue_time.tv_sec = t->creation_time;
    t->creation_ttl = get_int(o, "creation_ttl");
    t->ttl = get_int(o, "ttl");
    t->expire_time = get_int(o, "expire_time");
    t->explicit_max_ttl = get_int(o, "explicit_max_ttl");
    t->period = get_int(o, "period");
    t->num_uses = get_int(o, "num_uses");
    t->renewable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "renewable"));
    t->orphan = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "orphan"));
    t->last_renewal = get_int(o, "last_renewal");
    t->max_ttl = get_int(o, "max_ttl");
    t->lease_id = get_str(o, "lease_id");
    t->role = get_str(o, "role");
    strvec_init(&t->bound_cidrs);
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "bound_cidrs")) {
        if (cJSON_IsString(it))
            strvec_push(&t->bound_cidrs, it->valuestring);
    }
    t->is_root = strvec_contains(&t->policies, "root");
    t->entity_id = xstrdup("");
    t->type = xstrdup("service");
    if (t->display_name == NULL)
        t->display_name = xstrdup("token");
    if (t->path == NULL)
        t->path = xstrdup("auth/token/create");
    free(acc);
    free(issue);
    return t;
}

/* Loads the entry stored under hmac; NULL if missing or unreadable. */
static struct token *load_entry(const char *hmac)
{
    char key[128];
    struct buf stored;
    struct token *t = NULL;
    cJSON *o;

    key_id(key, sizeof(key), hmac);
    buf_init(&stored, 0);
    if (storage_get(store, key, &stored) == 0) {
        o = cJSON_Parse(stored.ptr);
        if (cJSON_IsObject(o))
            t = entry_from_json(hmac, o);
        else
            log_error("token: entry %.12s... is corrupt", hmac);
        cJSON_Delete(o);
    }
    buf_release(&stored);
    return t;
}

static int save_entry(const struct token *t)
{
    char key[128];
    cJSON *o = entry_to_json(t);
    char *text = cJSON_PrintUnformatted(o);
    int rc;

    key_id(key, sizeof(key), t->id_hmac);
    rc = storage_put(store, key, text, strlen(text));
    cJSON_Delete(o);
    free(text);
    return rc;
}

/* ======================================================= create, revoke == */

static bool expired(const struct token *t)
{
    return t->expire_time != 0 && t->expire_time <= time_now().tv_sec;
}

/* True if the entry under hmac is stored, unexpired and usable. */
static bool live_locked(const char *hmac)
{
    struct token *t = load_entry(hmac);
    bool live = t != NULL && !expired(t) && t->num_uses >= 0;

    token_free(t);
    return live;
}

/*
 * Stores a new entry with its indexes in one batch: the entry, the
 * accessor pointing at it, and its place under its parent. Under
 * write_lock, so that the parent is live at that moment and a revocation
 * of the parent either runs before (COFFER_ENOTFOUND: no child is made)
 * or after (it finds the child in the index). COFFER_EEXIST if the id is
 * taken (two creations with one custom id).
 */
static int store_new_entry(const struct token *t)
{
    char kid[128], kacc[128], kchild[256];
    cJSON *o = entry_to_json(t);
    char *text = cJSON_PrintUnformatted(o);
    struct storage_op ops[3];
    struct token *dup;
    size_t n = 0;
    int rc = 0;

    pthread_mutex_lock(&write_lock);
    dup = load_entry(t->id_hmac);
    if (dup != NULL)
        rc = COFFER_EEXIST;
    else if (t->parent_hmac != NULL && !live_locked(t->parent_hmac))
        rc = COFFER_ENOTFOUND;
    token_free(dup);
    key_id(kid, sizeof(kid), t->id_hmac);
    key_accessor(kacc, sizeof(kacc), t->accessor);
    ops[n++] = (struct storage_op){STORAGE_OP_PUT, kid, text, strlen(text)};
    ops[n++] = (struct storage_op){STORAGE_OP_PUT, kacc, t->id_hmac,
                                   strlen(t->id_hmac)};
    if (t->parent_hmac != NULL) {
        key_child(kchild, sizeof(kchild), t->parent_hmac, t->id_hmac);
        ops[n++] = (struct storage_op){STORAGE_OP_PUT, kchild, "", 0};
    }
    if (rc == 0)
        rc = storage_batch(store, ops, n);
    pthread_mutex_unlock(&write_lock);
    cJSON_Delete(o);
    free(text);
    return rc;
}

/* Deletes one entry and its indexes. Caller holds write_lock. */
static int delete_entry_locked(const struct token *t)
{
    char kid[128], kacc[128], kchild[256];
    struct storage_op ops[3];
    size_t n = 0;

    key_id(kid, sizeof(kid), t->id_hmac);
    key_accessor(kacc, sizeof(kacc), t->accessor);
    ops[n++] = (struct storage_op){STORAGE_OP_DELETE, kid, NULL, 0};
    ops[n++] = (struct storage_op){STORAGE_OP_DELETE, kacc, NULL, 0};
    if (t->parent_hmac != NULL) {
        key_child(kchild, sizeof(kchild), t->parent_hmac, t->id_hmac);
        ops[n++] = (struct storage_op){STORAGE_OP_DELETE, kchild, NULL, 0};
    }
    log_info("token: revoked accessor %s", t->accessor);
    return storage_batch(store, ops, n);
}

/*
 * Hands the leases of every token in done to the expiration manager and
 * empties done. Runs without write_lock: a revocation worker revoking a
 * token lease calls back into revoke_tree, so holding write_lock while
 * waiting for the manager's claims could deadlock.
 */
static void revoke_leases(struct strvec *done)
{
    for (size_t i = 0; i < done->n; i++)
        lease_revoke_token(done->v[i]);
    strvec_release(done);
    strvec_init(done);
}

/*
 * Revokes a token and every descendant, leaves first, so that a crash
 * half-way leaves a tree that can still be revoked from its root. The
 * hmacs revoked are appended to done (see revoke_leases).
 * Caller holds write_lock.
 */
static int revoke_tree_locked(const char *hmac, int depth,
                              struct strvec *done)
{
    char prefix[128];
    struct strvec children;
    struct token *t;
    int rc = 0;

    if (depth > 256)
        return COFFER_EINTERNAL;
    snprintf(prefix, sizeof(prefix), "token/parent/%s/", hmac);
    strvec_init(&children);
    rc = storage_list(store, prefix, &children);
    for (size_t i = 0; rc == 0 && i < children.n; i++)
        rc = revoke_tree_locked(children.v[i], depth + 1, done);
    strvec_release(&children);
    if (rc != 0)
        return rc;
    t = load_entry(hmac);
    if (t != NULL) {
        rc = delete_entry_locked(t);
        token_free(t);
    }
    strvec_push(done, hmac);
    return rc;
}

static int revoke_tree(const char *hmac)
{
    struct strvec done;
    int rc;

    strvec_init(&done);
    pthread_mutex_lock(&write_lock);
    rc = revoke_tree_locked(hmac, 0, &done);
    pthread_mutex_unlock(&write_lock);
    revoke_leases(&done);
    return rc;
}

/* Revokes only this token; its children become orphans. */
static int revoke_orphan(const char *hmac)
{
    char prefix[128];
    struct strvec children;
    struct token *t, *child;
    bool revoked = false;
    int rc = 0;

    pthread_mutex_lock(&write_lock);
    snprintf(prefix, sizeof(prefix), "token/parent/%s/", hmac);
    strvec_init(&children);
    rc = storage_list(store, prefix, &children);
    for (size_t i = 0; rc == 0 && i < children.n; i++) {
        child = load_entry(children.v[i]);
        if (child == NULL)
            continue;
        free(child->parent_hmac);
        child->parent_hmac = NULL;
        child->orphan = true;
        rc = save_entry(child);
        token_free(child);
    }
    strvec_release(&children);
    if (rc == 0)
        rc = storage_delete_prefix(store, prefix);
    t = rc == 0 ? load_entry(hmac) : NULL;
    if (t != NULL) {
        rc = delete_entry_locked(t);
        token_free(t);
        revoked = true;
    }
    pthread_mutex_unlock(&write_lock);
    if (revoked)
        lease_revoke_token(hmac);
    return rc;
}

static struct token *new_entry(void)
{
    struct token *t = xcalloc(1, sizeof(*t));

    strvec_init(&t->policies);
    strvec_init(&t->bound_cidrs);
    t->issue_time = time_now();
    t->creation_time = t->issue_time.tv_sec;
    t->entity_id = xstrdup("");
    t->type = xstrdup("service");
    return t;
}

/* Makes a client token and its accessor. Returns the token or NULL. */
static char *mint(struct token *t, const char *custom_id)
{
    char random[CRYPTO_ID_LEN + 1];
    char hmac[HMAC_HEX_LEN + 1];
    char *client;

    if (crypto_random_base62(t->accessor, CRYPTO_ID_LEN) != 0)
        return NULL;
    if (custom_id != NULL && custom_id[0] != '\0') {
        client = xstrdup(custom_id);
    } else {
        if (crypto_random_base62(random, CRYPTO_ID_LEN) != 0)
            return NULL;
        client = xmalloc(strlen(TOKEN_PREFIX) + CRYPTO_ID_LEN + 1);
        memcpy(client, TOKEN_PREFIX, strlen(TOKEN_PREFIX));
        memcpy(client + strlen(TOKEN_PREFIX), random, CRYPTO_ID_LEN + 1);
        crypto_wipe(random, sizeof(random));
    }
    token_hmac(client, hmac);
    t->id_hmac = xstrdup(hmac);
    return client;
}

int token_create_root(const char *id, char **client_token)
{
    struct token *t = new_entry();
    char *client = mint(t, id);
    int rc = COFFER_EINTERNAL;

    *client_token = NULL;
    if (client != NULL) {
        t->display_name = xstrdup("root");
        t->path = xstrdup("auth/token/root");
        strvec_push(&t->policies, "root");
        t->orphan = true;
        t->is_root = true;
        rc = store_new_entry(t);
    }
    if (rc == 0)
        *client_token = client;
    else
        secure_free_str(client);
    token_free(t);
    return rc;
}

/* ============================================================== lookup == */

/*
 * The usable entry under hmac: NULL when missing, pending revocation or
 * expired (an expired one is revoked now rather than at the next sweep).
 * Takes write_lock for that revocation: never call it holding the lock.
 */
static struct token *lookup_hmac(const char *hmac)
{
    struct token *t = load_entry(hmac);

    if (t != NULL && expired(t)) {
        revoke_tree(hmac);
        token_free(t);
        return NULL;
    }
    if (t != NULL && t->num_uses < 0) {
        token_free(t);
        return NULL;
    }
    return t;
}

int token_use(struct token *t)
{
    struct token *cur;
    int rc = 0;

    if (t->num_uses == 0 && !t->last_use)
        return 0; /* unlimited: nothing to count */
    pthread_mutex_lock(&write_lock);
    cur = load_entry(t->id_hmac);
    if (cur == NULL || cur->num_uses <= 0 || expired(cur)) {
        /* Revoked, or another request took the last use first. */
        rc = COFFER_ENOTFOUND;
    } else {
        cur->num_uses--;
        if (cur->num_uses == 0)
            cur->num_uses = USES_PENDING;
        rc = save_entry(cur);
        if (rc == 0) {
            t->last_use = cur->num_uses == USES_PENDING;
            t->num_uses = t->last_use ? 0 : cur->num_uses;
        }
    }
    token_free(cur);
    pthread_mutex_unlock(&write_lock);
    return rc;
}

void token_finish_use(const struct token *t)
{
    if (t != NULL && t->last_use)
        revoke_tree(t->id_hmac);
}

struct token *token_lookup(const char *client_token, bool use)
{
    char hmac[HMAC_HEX_LEN + 1];
    struct token *t;

    if (client_token == NULL || client_token[0] == '\0' ||
        strlen(client_token) > 512)
        return NULL;
    token_hmac(client_token, hmac);
    t = lookup_hmac(hmac);
    if (t != NULL && use && token_use(t) != 0) {
        token_free(t);
        t = NULL;
    }
    return t;
}

bool token_exists_hmac(const char *hmac)
{
    struct token *t = load_entry(hmac);
    bool found = t != NULL;

    if (found && expired(t)) {
        revoke_tree(hmac);
        found = false;
    }
    token_free(t);
    return found;
}

/* The stored id named by an accessor into out; false if none. */
static bool accessor_hmac(const char *accessor, char out[HMAC_HEX_LEN + 1])
{
    char key[128];
    struct buf stored;
    bool found = false;

    if (strlen(accessor) > CRYPTO_ID_LEN + 8 || strchr(accessor, '/') != NULL)
        return false;
    key_accessor(key, sizeof(key), accessor);
    buf_init(&stored, 1024);
    if (storage_get(store, key, &stored) == 0 &&
        stored.len == HMAC_HEX_LEN) {
        memcpy(out, stored.ptr, HMAC_HEX_LEN);
        out[HMAC_HEX_LEN] = '\0';
        found = true;
    }
    buf_release(&stored);
    return found;
}

static struct token *lookup_accessor(const char *accessor)
{
    char hmac[HMAC_HEX_LEN + 1];

    return accessor_hmac(accessor, hmac) ? lookup_hmac(hmac) : NULL;
}

struct token *token_lookup_accessor(const char *accessor)
{
    return accessor != NULL ? lookup_accessor(accessor) : NULL;
}

/* ============================================================= replies == */

static cJSON *auth_block(const struct token *t, const char *client_token)
{
    cJSON *a = cJSON_CreateObject();

    cJSON_AddStringToObject(a, "client_token", client_token);
    cJSON_AddStringToObject(a, "accessor", t->accessor);
    cJSON_AddItemToObject(a, "policies", policies_json(&t->policies));
    cJSON_AddItemToObject(a, "token_policies", policies_json(&t->policies));
    if (t->meta != NULL)
        cJSON_AddItemToObject(a, "metadata", cJSON_Duplicate(t->meta, 1));
    else
        cJSON_AddNullToObject(a, "metadata");
    cJSON_AddNumberToObject(a, "lease_duration", (double)t->ttl);
    cJSON_AddBoolToObject(a, "renewable", t->renewable);
    cJSON_AddStringToObject(a, "entity_id", t->entity_id);
    cJSON_AddStringToObject(a, "token_type", t->type);
    cJSON_AddBoolToObject(a, "orphan", t->orphan);
    cJSON_AddNullToObject(a, "mfa_requirement");
    cJSON_AddNumberToObject(a, "num_uses", (double)t->num_uses);
    return a;
}

static cJSON *lookup_data(const struct token *t, const char *client_token)
{
    cJSON *d = cJSON_CreateObject();
    bool root_like = t->expire_time == 0 && strcmp(t->path,
                                                   "auth/token/root") == 0;
    char when[64];
    int64_t now = time_now().tv_sec;

    cJSON_AddStringToObject(d, "accessor", t->accessor);
    cJSON_AddNumberToObject(d, "creation_time", (double)t->creation_time);
    cJSON_AddNumberToObject(d, "creation_ttl", (double)t->creation_ttl);
    cJSON_AddStringToObject(d, "display_name", t->display_name);
    cJSON_AddStringToObject(d, "entity_id", t->entity_id);
    if (t->expire_time != 0) {
        time_format_rfc3339((struct timespec){t->expire_time, 0}, when,
                            sizeof(when));
        cJSON_AddStringToObject(d, "expire_time", when);
    } else {
        cJSON_AddNullToObject(d, "expire_time");
    }
    cJSON_AddNumberToObject(d, "explicit_max_ttl",
                            (double)t->explicit_max_ttl);
    cJSON_AddStringToObject(d, "id", client_token ? client_token : "");
    if (!root_like) {
        time_format_rfc3339(t->issue_time, when, sizeof(when));
        cJSON_AddStringToObject(d, "issue_time", when);
    }
    if (t->last_renewal != 0) {
        time_format_rfc3339((struct timespec){t->last_renewal, 0}, when,
                            sizeof(when));
        cJSON_AddStringToObject(d, "last_renewal", when);
        cJSON_AddNumberToObject(d, "last_renewal_time",
                                (double)t->last_renewal);
    }
    if (t->meta != NULL)
        cJSON_AddItemToObject(d, "meta", cJSON_Duplicate(t->meta, 1));
    else
        cJSON_AddNullToObject(d, "meta");
    cJSON_AddNumberToObject(d, "num_uses", (double)t->num_uses);
    cJSON_AddBoolToObject(d, "orphan", t->orphan);
    cJSON_AddStringToObject(d, "path", t->path);
    if (t->period != 0)
        cJSON_AddNumberToObject(d, "period", (double)t->period);
    if (t->role != NULL)
        cJSON_AddStringToObject(d, "role", t->role);
    if (t->bound_cidrs.n > 0)
        cJSON_AddItemToObject(d, "bound_cidrs", policies_json(&t->bound_cidrs));
    cJSON_AddItemToObject(d, "policies", policies_json(&t->policies));
    if (!root_like)
        cJSON_AddBoolToObject(d, "renewable", t->renewable);
    cJSON_AddNumberToObject(
        d, "ttl",
        t->expire_time == 0 ? 0.0
                            : (double)(t->expire_time > now
                                           ? t->expire_time - now
                                           : 0));
    cJSON_AddStringToObject(d, "type", t->type);
    return d;
}

/* ============================================================ creating == */

struct create_params {
    const char *id;
    const char *display_name;
    struct strvec policies;
    bool policies_given;
    cJSON *meta;
    bool no_parent;
    bool no_default_policy;
    bool renewable;
    int64_t ttl;
    int64_t explicit_max_ttl;
    int64_t period;
    int64_t num_uses;
};

static int parse_create(const cJSON *d, struct create_params *p,
                        struct response *resp)
{
    bool given, renewable_given;
    const char *type = NULL;

    memset(p, 0, sizeof(*p));
    strvec_init(&p->policies);
    p->renewable = true;
    if (field_string(d, "id", &p->id, resp) != 0 ||
        field_string(d, "display_name", &p->display_name, resp) != 0 ||
        field_string(d, "type", &type, resp) != 0 ||
        field_strlist(d, "policies", &p->policies, &p->policies_given,
                      resp) != 0 ||
        field_kvmap(d, "meta", &p->meta, resp) != 0 ||
        field_bool(d, "no_parent", &p->no_parent, &given, resp) != 0 ||
        field_bool(d, "no_default_policy", &p->no_default_policy, &given,
                   resp) != 0 ||
        field_bool(d, "renewable", &p->renewable, &renewable_given, resp) !=
            0 ||
        field_duration(d, "ttl", &p->ttl, &given, resp) != 0 ||
        (!given && field_duration(d, "lease", &p->ttl, &given, resp) != 0) ||
        field_duration(d, "explicit_max_ttl", &p->explicit_max_ttl, &given,
                       resp) != 0 ||
        field_duration(d, "period", &p->period, &given, resp) != 0 ||
        field_int(d, "num_uses", &p->num_uses, &given, resp) != 0)
        return -1;
    if (type != NULL && type[0] != '\0' && strcmp(type, "service") != 0 &&
        strcmp(type, "default") != 0) {
        response_error(resp, 400, "unsupported token type \"%s\": only "
                                  "service tokens are supported", type);
        return -1;
    }
    if (p->num_uses < 0) {
        response_error(resp, 400, "number of uses cannot be negative");
        return -1;
    }
    return 0;
}

/*
 * Trims and lower-cases every name, drops empty ones, sorts and removes
 * duplicates (Vault's policy list and glob list normalisation).
 */
static void normalise_names(struct strvec *sv)
{
    struct strvec kept;

    strvec_init(&kept);
    for (size_t i = 0; i < sv->n; i++) {
        char *b = sv->v[i], *e = b + strlen(b);
        while (*b != '\0' && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            *--e = '\0';
        for (char *c = b; *c != '\0'; c++)
            *c = (char)tolower((unsigned char)*c);
        if (*b != '\0')
            strvec_push(&kept, b);
    }
    strvec_release(sv);
    *sv = kept;
    strvec_sort(sv);
    strvec_uniq(sv);
}

/* Vault's SanitizePolicies: normalised, and root swallows everything. */
static void sanitize_policies(struct strvec *sv)
{
    normalise_names(sv);
    if (strvec_contains(sv, "root")) {
        strvec_release(sv);
        strvec_push(sv, "root");
    }
}

/* Appends src (and "default" if add_default) to out, then sanitises. */
static void add_policies(struct strvec *out, const struct strvec *src,
                         bool add_default)
{
    for (size_t i = 0; i < src->n; i++)
        strvec_push(out, src->v[i]);
    if (add_default)
        strvec_push(out, "default");
    sanitize_policies(out);
}

static void remove_name(struct strvec *sv, const char *name)
{
    size_t j = 0;

    for (size_t i = 0; i < sv->n; i++) {
        if (strcmp(sv->v[i], name) == 0)
            free(sv->v[i]);
        else
            sv->v[j++] = sv->v[i];
    }
    sv->n = j;
}

/* The characters a display name keeps (ASCII, whatever the locale). */
static bool display_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

/*
 * Bytes in the UTF-8 sequence that starts at c (1 when it is not a
 * well-formed lead byte with its continuation bytes): Vault's rule works
 * on characters, so "é" becomes one '-', not two.
 */
static size_t utf8_len(const unsigned char *c)
{
    size_t n = *c >= 0xf0 && *c <= 0xf4 ? 4
               : *c >= 0xe0 && *c <= 0xef ? 3
               : *c >= 0xc2 && *c <= 0xdf ? 2
                                          : 1;

    for (size_t i = 1; i < n; i++) {
        if ((c[i] & 0xc0) != 0x80)
            return 1;
    }
    return n;
}

/*
 * Vault's display name rule, in place: every character outside
 * [A-Za-z0-9-] becomes '-', then one trailing '-' is trimmed
 * (strings.TrimSuffix). Display names reach database username templates:
 * nothing else may get through.
 */
static void sanitize_display_name(char *name)
{
    const unsigned char *in = (const unsigned char *)name;
    char *out = name;

    while (*in != '\0') {
        size_t n = utf8_len(in);
        *out++ = n == 1 && display_char((char)*in) ? (char)*in : '-';
        in += n;
    }
    *out = '\0';
    if (out > name && out[-1] == '-')
        out[-1] = '\0';
}

/* auth/token/create's display name: "token-<name>", or "token". */
static char *make_display_name(const char *requested)
{
    size_t n;
    char *out;

    if (requested == NULL || requested[0] == '\0')
        return xstrdup("token");
    n = strlen(requested) + 7;
    out = xmalloc(n);
    snprintf(out, n, "token-%s", requested);
    sanitize_display_name(out);
    return out;
}

/* Computes the TTL per Vault's CalculateTTL for a new token. */
static int choose_ttl(const struct token *parent, struct token *t,
                      const struct create_params *p, struct response *resp)
{
    int64_t def = router_system_default_ttl, max = router_system_max_ttl;

    if (p->explicit_max_ttl > 0 && p->explicit_max_ttl < max)
        max = p->explicit_max_ttl;
    if (p->period > 0) {
        t->ttl = p->period;
        if (p->explicit_max_ttl > 0 && t->ttl > p->explicit_max_ttl)
            t->ttl = p->explicit_max_ttl;
    } else if (p->ttl > 0) {
        t->ttl = p->ttl > max ? max : p->ttl;
    } else if (t->is_root && p->explicit_max_ttl == 0) {
        t->ttl = 0;
    } else {
        t->ttl = def > max ? max : def;
    }
    if (t->ttl == 0 && parent->expire_time != 0) {
        response_error(resp, 400, "expiring root tokens cannot create "
                                  "non-expiring root tokens");
        return -1;
    }
    t->creation_ttl = t->ttl;
    t->expire_time = t->ttl ? t->creation_time + t->ttl : 0;
    return 0;
}

/*
 * What the caller may ask for at all. A use-limited parent makes no
 * tokens, its last use included (a child would escape the count). With a
 * role, no_parent is ignored (the role's orphan flag decides), as Vault
 * does.
 */
static int check_create_rights(const struct token *parent, bool sudo,
                               bool have_role, const struct create_params *p,
                               struct response *resp)
{
    if (parent->num_uses > 0 || parent->last_use) {
        response_error(resp, 400, "restricted use token cannot generate "
                                  "child tokens");
        return -1;
    }
    if (p->no_parent && !have_role && !sudo) {
        response_error(resp, 400, "root or sudo privileges required to "
                                  "create orphan token");
        return -1;
    }
    if (p->period > 0 && !sudo) {
        response_error(resp, 400, "root or sudo privileges required to "
                                  "create periodic token");
        return -1;
    }
    if (p->id != NULL && p->id[0] != '\0') {
        if (!sudo) {
            response_error(resp, 400, "root or sudo privileges required to "
                                      "specify token id");
            return -1;
        }
        if (str_has_prefix(p->id, "hvs.") || str_has_prefix(p->id, "s.") ||
            strchr(p->id, '.') != NULL) {
            response_error(resp, 400, "custom token ID cannot have the '.' "
                                      "in the value");
            return -1;
        }
        struct token *dup = token_lookup(p->id, false);
        if (dup != NULL) {
            token_free(dup);
            response_error(resp, 400, "cannot create a token with a "
                                      "duplicate ID");
            return -1;
        }
    }
    return 0;
}

/*
 * Records the id of t's lease in its entry, re-read under write_lock:
 * COFFER_ENOTFOUND if the token was revoked since it was stored (its
 * parent went), in which case nothing is written back.
 */
static int record_lease_id(const struct token *t)
{
    struct token *cur;
    int rc = COFFER_ENOTFOUND;

    pthread_mutex_lock(&write_lock);
    cur = load_entry(t->id_hmac);
    if (cur != NULL) {
        free(cur->lease_id);
        cur->lease_id = xstrdup(t->lease_id);
        rc = save_entry(cur);
    }
    token_free(cur);
    pthread_mutex_unlock(&write_lock);
    return rc;
}

/*
 * Stores a minted token, then its lease when it expires, so that the
 * expiration manager revokes it on time (VAULT_API 8.1). m is the mount
 * that issues it (auth/token/ or the login's auth mount). On failure
 * nothing of the token is left: a revocation that raced with the
 * creation also takes the lease registered meanwhile.
 */
static int persist_new(struct token *t, const struct mount *m)
{
    struct errbuf err;
    int64_t max = t->max_ttl > 0 ? t->max_ttl : router_system_max_ttl;
    int rc = store_new_entry(t);

    if (rc != 0 || t->ttl <= 0 || m == NULL)
        return rc;
    if (t->explicit_max_ttl > 0 && t->explicit_max_ttl < max)
        max = t->explicit_max_ttl;
    errbuf_clear(&err);
    rc = lease_register_token(m, t->path, t->id_hmac, t->ttl, max,
                              t->renewable, &t->lease_id, &err);
    if (rc == 0)
        rc = record_lease_id(t);
    if (rc != 0) {
        if (rc != COFFER_ENOTFOUND)
            log_error("token: registering the lease of accessor %s failed: "
                      "%s", t->accessor, err.msg);
        revoke_tree(t->id_hmac);
    }
    return rc;
}

/* ============================================================== roles == */

struct role {
    struct strvec allowed;
    struct strvec disallowed;
    struct strvec allowed_glob;    /* '*' patterns */
    struct strvec disallowed_glob;
    struct strvec bound_cidrs;
    bool orphan;
    bool renewable;
    bool no_default_policy;
    int64_t period;
    int64_t explicit_max_ttl;
    int64_t num_uses;
    char *path_suffix;
    char *token_type;
};

static void role_init(struct role *r)
{
    memset(r, 0, sizeof(*r));
    strvec_init(&r->allowed);
    strvec_init(&r->disallowed);
    strvec_init(&r->allowed_glob);
    strvec_init(&r->disallowed_glob);
    strvec_init(&r->bound_cidrs);
    r->renewable = true;
    r->path_suffix = xstrdup("");
    r->token_type = xstrdup("default-service");
}

static void role_release(struct role *r)
{
    strvec_release(&r->allowed);
    strvec_release(&r->disallowed);
    strvec_release(&r->allowed_glob);
    strvec_release(&r->disallowed_glob);
    strvec_release(&r->bound_cidrs);
    free(r->path_suffix);
    free(r->token_type);
    memset(r, 0, sizeof(*r));
}

static bool valid_role_name(const char *name)
{
    if (name[0] == '\0' || strlen(name) > 128)
        return false;
    for (const char *c = name; *c != '\0'; c++) {
        if (!isalnum((unsigned char)*c) && strchr("-_.@", *c) == NULL)
            return false;
    }
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static void strvec_from_json(struct strvec *sv, const cJSON *arr)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, arr) {
        if (cJSON_IsString(it))
            strvec_push(sv, it->valuestring);
    }
}

/* Loads token/role/<name>; 0, COFFER_ENOTFOUND or another error. */
static int role_load(const char *name, struct role *r)
{
    char key[192];
    struct buf stored;
    cJSON *o = NULL;
    char *v;
    int rc;

    role_init(r);
    snprintf(key, sizeof(key), "token/role/%s", name);
    buf_init(&stored, 0);
    rc = storage_get(store, key, &stored);
    if (rc == 0) {
        o = cJSON_Parse(stored.ptr);
        if (!cJSON_IsObject(o))
            rc = COFFER_EINVAL;
    }
    if (rc == 0) {
        strvec_from_json(&r->allowed,
                         cJSON_GetObjectItemCaseSensitive(o, "allowed"));
        strvec_from_json(&r->disallowed,
                         cJSON_GetObjectItemCaseSensitive(o, "disallowed"));
        strvec_from_json(&r->allowed_glob,
                         cJSON_GetObjectItemCaseSensitive(o, "allowed_glob"));
        strvec_from_json(&r->disallowed_glob, cJSON_GetObjectItemCaseSensitive(
                                                  o, "disallowed_glob"));
        strvec_from_json(&r->bound_cidrs,
                         cJSON_GetObjectItemCaseSensitive(o, "bound_cidrs"));
        r->orphan = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "orphan"));
        r->renewable =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "renewable"));
        r->no_default_policy = cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(o, "no_default_policy"));
        r->period = get_int(o, "period");
        r->explicit_max_ttl = get_int(o, "explicit_max_ttl");
        r->num_uses = get_int(o, "num_uses");
        v = get_str(o, "path_suffix");
        if (v != NULL) {
            free(r->path_suffix);
            r->path_suffix = v;
        }
        v = get_str(o, "token_type");
        if (v != NULL) {
            free(r->token_type);
            r->token_type = v;
        }
    }
    cJSON_Delete(o);
    buf_release(&stored);
    return rc;
}

static int role_save(const char *name, const struct role *r)
{
    char key[192];
    cJSON *o = cJSON_CreateObject();
    char *text;
    int rc;

    cJSON_AddItemToObject(o, "allowed", policies_json(&r->allowed));
    cJSON_AddItemToObject(o, "disallowed", policies_json(&r->disallowed));
    cJSON_AddItemToObject(o, "allowed_glob", policies_json(&r->allowed_glob));
    cJSON_AddItemToObject(o, "disallowed_glob",
                          policies_json(&r->disallowed_glob));
    cJSON_AddItemToObject(o, "bound_cidrs", policies_json(&r->bound_cidrs));
    cJSON_AddBoolToObject(o, "orphan", r->orphan);
    cJSON_AddBoolToObject(o, "renewable", r->renewable);
    cJSON_AddBoolToObject(o, "no_default_policy", r->no_default_policy);
    cJSON_AddNumberToObject(o, "period", (double)r->period);
    cJSON_AddNumberToObject(o, "explicit_max_ttl",
                            (double)r->explicit_max_ttl);
    cJSON_AddNumberToObject(o, "num_uses", (double)r->num_uses);
    cJSON_AddStringToObject(o, "path_suffix", r->path_suffix);
    cJSON_AddStringToObject(o, "token_type", r->token_type);
    text = cJSON_PrintUnformatted(o);
    snprintf(key, sizeof(key), "token/role/%s", name);
    rc = storage_put(store, key, text, strlen(text));
    free(text);
    cJSON_Delete(o);
    return rc;
}

/* A list field of a role: "token_<name>" or the legacy "<name>". */
static int role_list_field(const cJSON *d, const char *name,
                           const char *legacy, struct strvec *out,
                           struct response *resp)
{
    struct strvec v;
    bool given = false;
    int rc;

    strvec_init(&v);
    rc = field_strlist(d, name, &v, &given, resp);
    if (rc == 0 && !given && legacy != NULL)
        rc = field_strlist(d, legacy, &v, &given, resp);
    if (rc == 0 && given) {
        strvec_release(out);
        *out = v;
        strvec_init(&v);
        /* As Vault stores them: the allowed list sanitised like any
         * policy list, the others only normalised. */
        if (strcmp(name, "allowed_policies") == 0)
            sanitize_policies(out);
        else if (strcmp(name, "token_bound_cidrs") != 0)
            normalise_names(out);
    }
    strvec_release(&v);
    return rc;
}

/* A duration of a role: "token_<name>" wins over the legacy "<name>". */
static int role_duration(const cJSON *d, const char *name, const char *legacy,
                         int64_t *out, struct response *resp)
{
    bool given = false;

    if (field_duration(d, name, out, &given, resp) != 0)
        return -1;
    if (!given && field_duration(d, legacy, out, &given, resp) != 0)
        return -1;
    if (*out < 0) {
        response_error(resp, 400, "%s must not be negative", name);
        return -1;
    }
    return 0;
}

static int role_parse(const cJSON *d, struct role *r, struct response *resp)
{
    const char *suffix = NULL, *type = NULL;
    bool given;

    if (role_list_field(d, "allowed_policies", NULL, &r->allowed, resp) ||
        role_list_field(d, "disallowed_policies", NULL, &r->disallowed,
                        resp) ||
        role_list_field(d, "allowed_policies_glob", NULL, &r->allowed_glob,
                        resp) ||
        role_list_field(d, "disallowed_policies_glob", NULL,
                        &r->disallowed_glob, resp) ||
        role_list_field(d, "token_bound_cidrs", "bound_cidrs",
                        &r->bound_cidrs, resp) ||
        field_bool(d, "orphan", &r->orphan, &given, resp) ||
        field_bool(d, "renewable", &r->renewable, &given, resp) ||
        field_bool(d, "token_no_default_policy", &r->no_default_policy,
                   &given, resp) ||
        role_duration(d, "token_period", "period", &r->period, resp) ||
        role_duration(d, "token_explicit_max_ttl", "explicit_max_ttl",
                      &r->explicit_max_ttl, resp) ||
        field_int(d, "token_num_uses", &r->num_uses, &given, resp) ||
        field_string(d, "path_suffix", &suffix, resp) ||
        field_string(d, "token_type", &type, resp))
        return -1;
    if (r->num_uses < 0) {
        response_error(resp, 400, "token_num_uses cannot be negative");
        return -1;
    }
    if (suffix != NULL) {
        if (strstr(suffix, "..") != NULL) {
            response_error(resp, 400, "path_suffix cannot contain '..'");
            return -1;
        }
        free(r->path_suffix);
        r->path_suffix = xstrdup(suffix);
    }
    if (type != NULL && type[0] != '\0') {
        if (strcmp(type, "service") != 0 && strcmp(type, "default") != 0 &&
            strcmp(type, "default-service") != 0) {
            response_error(resp, 400, "unsupported token type \"%s\": only "
                                      "service tokens are supported", type);
            return -1;
        }
        free(r->token_type);
        r->token_type = xstrdup(type);
    }
    return 0;
}

static cJSON *role_json(const char *name, const struct role *r)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddStringToObject(d, "name", name);
    cJSON_AddItemToObject(d, "allowed_policies", policies_json(&r->allowed));
    cJSON_AddItemToObject(d, "disallowed_policies",
                          policies_json(&r->disallowed));
    cJSON_AddItemToObject(d, "allowed_policies_glob",
                          policies_json(&r->allowed_glob));
    cJSON_AddItemToObject(d, "disallowed_policies_glob",
                          policies_json(&r->disallowed_glob));
    cJSON_AddItemToObject(d, "allowed_entity_aliases", cJSON_CreateArray());
    cJSON_AddBoolToObject(d, "orphan", r->orphan);
    cJSON_AddBoolToObject(d, "renewable", r->renewable);
    cJSON_AddStringToObject(d, "path_suffix", r->path_suffix);
    cJSON_AddNumberToObject(d, "token_period", (double)r->period);
    cJSON_AddNumberToObject(d, "period", (double)r->period);
    cJSON_AddNumberToObject(d, "token_explicit_max_ttl",
                            (double)r->explicit_max_ttl);
    cJSON_AddNumberToObject(d, "explicit_max_ttl",
                            (double)r->explicit_max_ttl);
    cJSON_AddItemToObject(d, "token_bound_cidrs",
                          policies_json(&r->bound_cidrs));
    cJSON_AddStringToObject(d, "token_type", r->token_type);
    cJSON_AddBoolToObject(d, "token_no_default_policy", r->no_default_policy);
    cJSON_AddNumberToObject(d, "token_num_uses", (double)r->num_uses);
    return d;
}

/*
 * Role writes are read-modify-write (an update keeps the fields it does
 * not name): one at a time, so two updates never lose each other's.
 */
static pthread_mutex_t role_lock = PTHREAD_MUTEX_INITIALIZER;

static void handle_role(struct request *req, const char *name,
                        struct response *resp)
{
    char key[192];
    struct role r;
    int rc;

    if (!valid_role_name(name)) {
        response_error(resp, 400, "invalid role name");
        return;
    }
    pthread_mutex_lock(&role_lock);
    rc = role_load(name, &r);
    switch (req->op) {
    case OP_READ:
        if (rc == 0)
            resp->data = role_json(name, &r);
        break;
    case OP_CREATE:
    case OP_UPDATE:
        if (rc != 0 && rc != COFFER_ENOTFOUND) {
            response_error(resp, 500, "failed to read the role");
            break;
        }
        if (role_parse(req->data, &r, resp) == 0 && role_save(name, &r) != 0)
            response_error(resp, 500, "failed to save the role");
        break;
    case OP_DELETE:
        snprintf(key, sizeof(key), "token/role/%s", name);
        if (storage_delete(store, key) != 0 && rc == 0)
            response_error(resp, 500, "failed to delete the role");
        break;
    default:
        response_error(resp, 405, "1 error occurred:\n\t* unsupported "
                                  "operation\n\n");
        break;
    }
    pthread_mutex_unlock(&role_lock);
    role_release(&r);
}

static void handle_role_list(struct response *resp)
{
    struct strvec keys;

    strvec_init(&keys);
    if (storage_list(store, "token/role/", &keys) != 0)
        response_error(resp, 500, "failed to list roles");
    else
        response_keys(resp, &keys);
    strvec_release(&keys);
}

/* ============================================================ policies == */

/* Policies no token may hold (Vault's non-assignable ones). */
static const char *const unassignable[] = {"response-wrapping",
                                           "control-group"};

/* Vault's role globs: '*' matches any run of characters. */
static bool glob_match(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;

    while (*s != '\0') {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star != NULL) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static bool glob_any(const struct strvec *globs, const char *s)
{
    for (size_t i = 0; i < globs->n; i++) {
        if (glob_match(globs->v[i], s))
            return true;
    }
    return false;
}

/* Go's %q of a []string, as Vault's messages print lists: ["a" "b"]. */
static void quote_list(const struct strvec *sv, char *out, size_t n)
{
    size_t used = 0;

    out[used++] = '[';
    for (size_t i = 0; i < sv->n && used + 4 < n; i++) {
        if (i > 0)
            out[used++] = ' ';
        out[used++] = '"';
        for (const char *c = sv->v[i]; *c != '\0' && used + 4 < n; c++) {
            if (*c == '"' || *c == '\\')
                out[used++] = '\\';
            out[used++] = *c;
        }
        out[used++] = '"';
    }
    out[used++] = ']';
    out[used] = '\0';
}

static bool role_limits_policies(const struct role *r)
{
    return r != NULL && (r->allowed.n > 0 || r->disallowed.n > 0 ||
                         r->allowed_glob.n > 0 || r->disallowed_glob.n > 0);
}

static int refuse_unlisted(const struct strvec *final,
                           const struct strvec *allowed,
                           const struct role *r, struct response *resp)
{
    char a[512], b[512], c[512];

    for (size_t i = 0; i < final->n; i++) {
        if (!strvec_contains(allowed, final->v[i]) &&
            !glob_any(&r->allowed_glob, final->v[i])) {
            quote_list(final, a, sizeof(a));
            quote_list(allowed, b, sizeof(b));
            quote_list(&r->allowed_glob, c, sizeof(c));
            response_error(resp, 400, "token policies (%s) must be subset "
                                      "of the role's allowed policies (%s) "
                                      "or glob policies (%s)", a, b, c);
            return -1;
        }
    }
    return 0;
}

/*
 * A role with allowed or disallowed lists (or globs) bounds the token
 * instead of the parent: requested policies must be allowed (when there
 * is an allowed list) and default to that list, else to the parent's;
 * none may be disallowed. "default" joins unless the request, the role
 * or the disallowed list says no.
 */
static int role_policies(const struct token *parent, const struct role *r,
                         const struct create_params *p, struct strvec *out,
                         struct response *resp)
{
    bool add_default = !p->no_default_policy && !r->no_default_policy &&
                       !strvec_contains(&r->disallowed, "default") &&
                       !glob_any(&r->disallowed_glob, "default");
    struct strvec allowed;
    int rc = 0;

    strvec_init(&allowed);
    if (p->policies.n > 0)
        add_policies(out, &p->policies, add_default);
    if (r->allowed.n > 0 || r->allowed_glob.n > 0) {
        add_policies(&allowed, &r->allowed, add_default);
        if (out->n == 0)
            add_policies(out, &allowed, false);
        else
            rc = refuse_unlisted(out, &allowed, r, resp);
    } else if (out->n == 0) {
        add_policies(out, &parent->policies, add_default);
    }
    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        if (strvec_contains(&r->disallowed, out->v[i]) ||
            glob_any(&r->disallowed_glob, out->v[i])) {
            response_error(resp, 400, "token policy \"%s\" is disallowed by "
                                      "this role", out->v[i]);
            rc = -1;
        }
    }
    strvec_release(&allowed);
    return rc;
}

/*
 * Without a limiting role the parent bounds the token: no policies asked
 * for means the parent's; a caller without sudo may only ask for a subset
 * of the parent's ("default" joins if the parent has it); sudo may ask
 * for any ("default" joins).
 */
static int parent_policies(const struct token *parent, bool sudo,
                           const struct create_params *p, struct strvec *out,
                           struct response *resp)
{
    struct strvec held;
    int rc = 0;

    if (p->policies.n == 0) {
        add_policies(out, &parent->policies, false);
        return 0;
    }
    add_policies(out, &p->policies, false);
    if (sudo) {
        if (!p->no_default_policy)
            strvec_push(out, "default");
        sanitize_policies(out);
        return 0;
    }
    strvec_init(&held);
    add_policies(&held, &parent->policies, false);
    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        if (!strvec_contains(&held, out->v[i])) {
            response_error(resp, 400, "child policies must be subset of "
                                      "parent");
            rc = -1;
        }
    }
    if (rc == 0 && !p->no_default_policy &&
        strvec_contains(&held, "default")) {
        strvec_push(out, "default");
        sanitize_policies(out);
    }
    strvec_release(&held);
    return rc;
}

/*
 * Vault's policy rules for every token made through auth/token/: the
 * role's or the parent's bounds, then the rules no caller escapes (no
 * unassignable policy, root only from a root parent).
 */
static int choose_policies(const struct token *parent, const struct role *r,
                           bool sudo, const struct create_params *p,
                           struct strvec *out, struct response *resp)
{
    int rc = role_limits_policies(r) ? role_policies(parent, r, p, out, resp)
                                     : parent_policies(parent, sudo, p, out,
                                                       resp);

    if (rc != 0)
        return rc;
    if (p->no_default_policy)
        remove_name(out, "default");
    for (size_t i = 0; i < ARRAY_LEN(unassignable); i++) {
        if (strvec_contains(out, unassignable[i])) {
            response_error(resp, 400, "cannot assign policy \"%s\"",
                           unassignable[i]);
            return -1;
        }
    }
    if (strvec_contains(out, "root") && !parent->is_root) {
        response_error(resp, 400, "root tokens may not be created without "
                                  "parent token being root");
        return -1;
    }
    return 0;
}

/*
 * Folds the role's limits into the request's: the lesser period and
 * explicit max TTL of the two (with Vault's warnings), the lower use
 * count, renewable only if both say so.
 */
static void apply_role(const struct role *r, struct create_params *p,
                       struct response *resp)
{
    if (r->period > 0) {
        if (p->period > 0)
            response_warn(resp, "Period specified both during creation "
                                "call and in role; using the lesser value "
                                "of %lld seconds",
                          (long long)(r->period < p->period ? r->period
                                                            : p->period));
        if (p->period == 0 || r->period < p->period)
            p->period = r->period;
    }
    if (r->explicit_max_ttl > 0) {
        if (p->explicit_max_ttl > 0)
            response_warn(resp, "Explicit max TTL specified both during "
                                "creation call and in role; using the "
                                "lesser value of %lld seconds",
                          (long long)(r->explicit_max_ttl <
                                              p->explicit_max_ttl
                                          ? r->explicit_max_ttl
                                          : p->explicit_max_ttl));
        if (p->explicit_max_ttl == 0 ||
            r->explicit_max_ttl < p->explicit_max_ttl)
            p->explicit_max_ttl = r->explicit_max_ttl;
    }
    if (!r->renewable)
        p->renewable = false;
    if (r->num_uses > 0 && (p->num_uses == 0 || p->num_uses > r->num_uses))
        p->num_uses = r->num_uses;
}

/*
 * Vault's CIDR bindings of a new token: a role's own list; else a child
 * keeps its parent's, so that a bound token cannot shed its binding by
 * making a child. Vault drops the binding of a non-expiring root token;
 * Coffer keeps it (a binding is never lost silently).
 */
static void choose_bound_cidrs(const struct token *parent,
                               const struct role *r, struct token *t)
{
    const struct strvec *src = r != NULL ? &r->bound_cidrs
                               : !t->orphan ? &parent->bound_cidrs
                                            : NULL;

    for (size_t i = 0; src != NULL && i < src->n; i++)
        strvec_push(&t->bound_cidrs, src->v[i]);
}

static char *role_token_path(const char *name, const struct role *r)
{
    size_t n = strlen(name) + strlen(r->path_suffix) + 32;
    char *path = xmalloc(n);

    snprintf(path, n, "auth/token/create/%s%s%s", name,
             r->path_suffix[0] ? "/" : "", r->path_suffix);
    return path;
}


/*
 * Mints the client token, stores the entry with its indexes and lease,
 * and answers with Vault's auth block. 0, or -1 with resp set. The
 * client token lives only as long as this call and the reply.
 */
static int issue(struct token *t, const char *custom_id,
                 const struct mount *m, struct response *resp)
{
    char *client = mint(t, custom_id);
    int rc = client != NULL ? persist_new(t, m) : COFFER_EINTERNAL;

    if (rc == COFFER_ENOTFOUND)
        response_error(resp, 400, "parent token not found");
    else if (rc == COFFER_EEXIST)
        response_error(resp, 400, "cannot create a token with a duplicate "
                                  "ID");
    else if (rc != 0)
        response_error(resp, 500, "failed to create token");
    else
        resp->auth = auth_block(t, client);
    secure_free_str(client);
    return rc == 0 ? 0 : -1;
}

/* role_name: NULL for plain create / create-orphan. */
static void handle_create(struct request *req, struct response *resp,
                          bool orphan_path, const char *role_name)
{
    const struct token *parent = req->token;
    bool sudo = policy_has_sudo(parent, req->path);
    struct create_params p;
    struct token *t = new_entry();
    struct role r;
    bool have_role = false;
    int rc;

    role_init(&r);
    if (parse_create(req->data, &p, resp) != 0)
        goto out;
    if (role_name == NULL && field_string(req->data, "role_name", &role_name,
                                          resp) != 0)
        goto out;
    if (role_name != NULL && role_name[0] != '\0') {
        role_release(&r);
        rc = COFFER_ENOTFOUND;
        if (valid_role_name(role_name))
            rc = role_load(role_name, &r); /* leaves r initialised */
        else
            role_init(&r);
        if (rc != 0) {
            response_error(resp, 400, "unknown role %s", role_name);
            goto out;
        }
        have_role = true;
    }
    if (check_create_rights(parent, sudo, have_role, &p, resp) != 0)
        goto out;
    if (have_role)
        apply_role(&r, &p, resp);
    if (choose_policies(parent, have_role ? &r : NULL, sudo, &p,
                        &t->policies, resp) != 0)
        goto out;
    t->is_root = strvec_contains(&t->policies, "root");
    if (choose_ttl(parent, t, &p, resp) != 0)
        goto out;
    t->display_name = make_display_name(p.display_name);
    t->orphan = orphan_path || (have_role ? r.orphan : p.no_parent);
    if (!t->orphan)
        t->parent_hmac = xstrdup(parent->id_hmac);
    if (have_role) {
        t->path = role_token_path(role_name, &r);
        t->role = xstrdup(role_name);
    } else {
        t->path = xstrdup(orphan_path ? "auth/token/create-orphan"
                                      : "auth/token/create");
    }
    choose_bound_cidrs(parent, have_role ? &r : NULL, t);
    t->meta = p.meta;
    p.meta = NULL;
    t->renewable = t->ttl == 0 ? false : p.renewable;
    t->explicit_max_ttl = p.explicit_max_ttl;
    t->period = p.period;
    t->num_uses = p.num_uses;
    if (issue(t, p.id, req->mount, resp) != 0)
        goto out;
    log_info("token: created accessor %s (%s) by accessor %s", t->accessor,
             t->display_name, parent->accessor);
out:
    strvec_release(&p.policies);
    cJSON_Delete(p.meta);
    role_release(&r);
    token_free(t);
}

/* ================================================ lookup, renew, revoke == */

/* The "token" field, or the caller's own token when absent and allowed. */
static const char *target_token(struct request *req, bool self_if_empty,
                                struct response *resp)
{
    const char *tok = NULL;

    if (field_string(req->data, "token", &tok, resp) != 0)
        return NULL;
    if ((tok == NULL || tok[0] == '\0') && self_if_empty)
        return req->client_token;
    if (tok == NULL || tok[0] == '\0') {
        response_error(resp, 400, "missing token ID");
        return NULL;
    }
    return tok;
}

static const char *target_accessor(struct request *req,
                                   struct response *resp)
{
    const char *acc = NULL;

    if (field_string(req->data, "accessor", &acc, resp) != 0)
        return NULL;
    if (acc == NULL || acc[0] == '\0') {
        response_error(resp, 400, "1 error occurred:\n\t* missing "
                                  "accessor\n\n");
        return NULL;
    }
    return acc;
}

static void handle_lookup(struct request *req, struct response *resp,
                          bool self, bool by_accessor)
{
    const char *tok = NULL, *acc = NULL;
    struct token *t = NULL;

    if (by_accessor) {
        acc = target_accessor(req, resp);
        if (acc == NULL)
            return;
        t = lookup_accessor(acc);
        if (t == NULL) {
            response_error(resp, 400, "1 error occurred:\n\t* invalid "
                                      "accessor\n\n");
            return;
        }
    } else if (self && req->token != NULL) {
        /* The caller's own entry, as authenticated: its last use may
         * already have revoked it (Vault answers that request too). */
        resp->data = lookup_data(req->token, req->client_token);
        return;
    } else {
        tok = self ? req->client_token
                   : target_token(req, req->op == OP_READ, resp);
        if (tok == NULL)
            return;
        t = token_lookup(tok, false);
        if (t == NULL) {
            response_error(resp, 403, "bad token");
            return;
        }
    }
    resp->data = lookup_data(t, by_accessor ? "" : tok);
    token_free(t);
}

/*
 * Vault's renewal arithmetic on t: the increment or the last TTL (the
 * period for periodic tokens), capped by the max TTL. 0, or -1 with resp
 * set.
 */
static int renewed_ttl(struct token *t, int64_t increment,
                       struct response *resp)
{
    int64_t max, now = time_now().tv_sec, limit, ttl;
    char a[32], b[32];

    if (!t->renewable || t->expire_time == 0) {
        response_error(resp, 400, "lease is not renewable");
        return -1;
    }
    max = t->max_ttl > 0 ? t->max_ttl : router_system_max_ttl;
    if (t->explicit_max_ttl > 0 && t->explicit_max_ttl < max)
        max = t->explicit_max_ttl;
    limit = t->issue_time.tv_sec + max;
    ttl = t->period > 0 ? t->period : (increment > 0 ? increment : t->ttl);
    if (t->period == 0 || t->explicit_max_ttl > 0) {
        if (now >= limit) {
            response_error(resp, 400, "past the max TTL, cannot renew");
            return -1;
        }
        if (now + ttl > limit) {
            duration_format_short(ttl, a, sizeof(a));
            duration_format_short(max, b, sizeof(b));
            response_warn(resp, "TTL of \"%s\" exceeded the effective "
                                "max_ttl of \"%s\"; TTL value is capped "
                                "accordingly", a, b);
            ttl = limit - now;
        }
    }
    t->ttl = ttl;
    t->expire_time = now + ttl;
    t->last_renewal = now;
    return 0;
}

/*
 * Moves the token's lease to its new expiry (outside write_lock: see
 * there). A revocation that slipped in between the entry's write and this
 * call has already expired the lease; had this call moved it out again,
 * the lease is expired once more.
 */
static void extend_lease(const struct token *t)
{
    struct token *cur;

    if (lease_extend(t->lease_id, t->expire_time, t->ttl) != 0)
        log_warn("token: lease of accessor %s is missing; the token "
                 "still expires on lookup", t->accessor);
    pthread_mutex_lock(&write_lock);
    cur = load_entry(t->id_hmac);
    pthread_mutex_unlock(&write_lock);
    if (cur == NULL)
        lease_revoke_token(t->id_hmac);
    token_free(cur);
}

/*
 * Renews the token stored under hmac. The entry is re-read and written
 * under write_lock: a token revoked (or used up, or expired) since the
 * caller looked it up is "not found" and never written back. The whole
 * renewal holds the token's renewal stripe, so its lease ends up with the
 * expiry of the last write. Returns the renewed entry, or NULL with resp
 * set.
 */
static struct token *renew(const char *hmac, const cJSON *data,
                           struct response *resp)
{
    pthread_mutex_t *serial = renew_lock_for(hmac);
    struct token *t;
    int64_t increment = 0;
    bool given;

    if (field_duration(data, "increment", &increment, &given, resp) != 0)
        return NULL;
    pthread_mutex_lock(serial);
    pthread_mutex_lock(&write_lock);
    t = load_entry(hmac);
    if (t == NULL || t->num_uses < 0 || expired(t)) {
        response_error(resp, 400, "token not found");
    } else if (renewed_ttl(t, increment, resp) == 0 && save_entry(t) != 0) {
        response_error(resp, 500, "failed to save the renewed token");
    }
    pthread_mutex_unlock(&write_lock);
    if (resp->errors == NULL && t->lease_id != NULL)
        extend_lease(t);
    pthread_mutex_unlock(serial);
    if (resp->errors != NULL) {
        token_free(t);
        t = NULL;
    }
    return t;
}

/*
 * The stored id a renew or revoke request names (a token, the caller's
 * own, or an accessor) into out, and the client token named (NULL for an
 * accessor) into *tok. False, with resp set if the request was
 * malformed, when it names nothing.
 */
static bool target_hmac(struct request *req, bool self, bool by_accessor,
                        char out[HMAC_HEX_LEN + 1], const char **tok,
                        struct response *resp)
{
    const char *acc;

    *tok = NULL;
    if (by_accessor) {
        acc = target_accessor(req, resp);
        return acc != NULL && accessor_hmac(acc, out);
    }
    *tok = self ? req->client_token : target_token(req, false, resp);
    if (*tok == NULL || (*tok)[0] == '\0' || strlen(*tok) > 512)
        return false;
    token_hmac(*tok, out);
    return true;
}

static void handle_renew(struct request *req, struct response *resp,
                         bool self, bool by_accessor)
{
    char hmac[HMAC_HEX_LEN + 1];
    const char *tok;
    struct token *t;

    if (!target_hmac(req, self, by_accessor, hmac, &tok, resp)) {
        if (resp->errors == NULL)
            response_error(resp, 400, "token not found");
        return;
    }
    t = renew(hmac, req->data, resp);
    if (t != NULL)
        resp->auth = auth_block(t, tok != NULL ? tok : "");
    token_free(t);
}

/*
 * Revokes what the request names, whatever state it is in (expired or
 * pending revocation included): revoking an unknown token succeeds.
 */
static void handle_revoke(struct request *req, struct response *resp,
                          bool self, bool by_accessor, bool orphan)
{
    char hmac[HMAC_HEX_LEN + 1];
    const char *tok;
    struct token *t;
    int rc = 0;

    if (orphan && !policy_has_sudo(req->token, req->path)) {
        response_error(resp, 400, "root or sudo privileges required to "
                                  "revoke and orphan");
        return;
    }
    if (!target_hmac(req, self, by_accessor, hmac, &tok, resp))
        return;
    t = load_entry(hmac);
    if (t != NULL)
        rc = orphan ? revoke_orphan(hmac) : revoke_tree(hmac);
    if (rc != 0)
        response_error(resp, 500, "failed to revoke token: %s",
                       coffer_strerror(rc));
    token_free(t);
}

static void handle_accessors(struct response *resp)
{
    struct strvec keys;

    strvec_init(&keys);
    if (storage_list(store, "token/accessor/", &keys) != 0)
        response_error(resp, 500, "failed to list accessors");
    else
        response_keys(resp, &keys);
    strvec_release(&keys);
}

/* ============================================================= logins == */

/*
 * "<mount path without auth/>" + name, sanitised like a token's display
 * name ("userpass-alice"). Vault only turns '/' into '-' here; Coffer
 * applies the full rule, because the name comes from whoever logs in and
 * reaches database username templates ({{.DisplayName}}), where a quote
 * or a semicolon must never arrive, whatever the auth method accepted.
 */
static char *login_display_name(const struct mount *m, const char *name)
{
    const char *mp = str_has_prefix(m->path, "auth/") ? m->path + 5 : m->path;
    size_t n = strlen(mp) + strlen(name) + 1;
    char *out = xmalloc(n);

    snprintf(out, n, "%s%s", mp, name);
    sanitize_display_name(out);
    return out;
}

/* Reads the identity's fields (the same coercions as request fields). */
static int identity_params(const cJSON *id, struct create_params *p,
                           int64_t *max_ttl, struct strvec *cidrs,
                           struct response *resp)
{
    bool given;

    memset(p, 0, sizeof(*p));
    strvec_init(&p->policies);
    p->renewable = true;
    *max_ttl = 0;
    if (!cJSON_IsObject(id)) {
        response_error(resp, 500, "internal error");
        log_error("token: an auth method's login returned no identity");
        return -1;
    }
    if (field_string(id, "display_name", &p->display_name, resp) != 0 ||
        field_strlist(id, "policies", &p->policies, &p->policies_given,
                      resp) != 0 ||
        field_kvmap(id, "metadata", &p->meta, resp) != 0 ||
        field_bool(id, "no_default_policy", &p->no_default_policy, &given,
                   resp) != 0 ||
        field_bool(id, "renewable", &p->renewable, &given, resp) != 0 ||
        field_duration(id, "ttl", &p->ttl, &given, resp) != 0 ||
        field_duration(id, "max_ttl", max_ttl, &given, resp) != 0 ||
        field_duration(id, "explicit_max_ttl", &p->explicit_max_ttl, &given,
                       resp) != 0 ||
        field_duration(id, "period", &p->period, &given, resp) != 0 ||
        field_int(id, "num_uses", &p->num_uses, &given, resp) != 0 ||
        field_strlist(id, "bound_cidrs", cidrs, &given, resp) != 0)
        return -1;
    if (p->ttl < 0 || *max_ttl < 0 || p->explicit_max_ttl < 0 ||
        p->period < 0 || p->num_uses < 0) {
        response_error(resp, 500, "internal error");
        log_error("token: an auth method's identity has a negative limit");
        return -1;
    }
    return 0;
}

/* CalculateTTL (VAULT_API 8.2) for a login on mount m. */
static void identity_ttl(const struct mount *m, struct token *t,
                         const struct create_params *p, int64_t max_ttl,
                         struct response *resp)
{
    int64_t mdef, mmax, max;
    char a[32], b[32];

    router_mount_ttls(m, &mdef, &mmax);
    max = mmax;
    if (max_ttl > 0 && max_ttl < max)
        max = max_ttl;
    if (p->explicit_max_ttl > 0 && p->explicit_max_ttl < max)
        max = p->explicit_max_ttl;
    if (p->period > 0) {
        t->ttl = p->period;
        if (t->ttl > max) {
            duration_format_short(t->ttl, a, sizeof(a));
            duration_format_short(max, b, sizeof(b));
            response_warn(resp, "period of \"%s\" exceeded the effective "
                                "max_ttl of \"%s\"; period value is capped "
                                "accordingly", a, b);
            t->ttl = max;
        }
    } else {
        t->ttl = p->ttl > 0 ? p->ttl : mdef;
        if (t->ttl > max) {
            duration_format_short(t->ttl, a, sizeof(a));
            duration_format_short(max, b, sizeof(b));
            response_warn(resp, "TTL of \"%s\" exceeded the effective "
                                "max_ttl of \"%s\"; TTL value is capped "
                                "accordingly", a, b);
            t->ttl = max;
        }
    }
    t->max_ttl = max;
    t->creation_ttl = t->ttl;
    t->expire_time = t->creation_time + t->ttl;
}

void token_create_identity(const struct mount *m, const char *path,
                           const cJSON *identity, struct response *resp)
{
    struct create_params p;
    struct token *t = new_entry();
    int64_t max_ttl = 0;

    if (identity_params(identity, &p, &max_ttl, &t->bound_cidrs, resp) != 0)
        goto out;
    for (size_t i = 0; i < p.policies.n; i++)
        strvec_push(&t->policies, p.policies.v[i]);
    sanitize_policies(&t->policies);
    if (strvec_contains(&t->policies, "root")) {
        response_error(resp, 400, "auth methods cannot create root tokens");
        goto out;
    }
    if (!p.no_default_policy)
        strvec_push(&t->policies, "default");
    sanitize_policies(&t->policies);
    identity_ttl(m, t, &p, max_ttl, resp);
    t->display_name = login_display_name(m, p.display_name ? p.display_name
                                                           : "");
    t->path = xstrdup(path);
    if (p.meta != NULL && cJSON_GetArraySize(p.meta) > 0) {
        t->meta = p.meta;
        p.meta = NULL;
    }
    t->renewable = p.renewable;
    t->explicit_max_ttl = p.explicit_max_ttl;
    t->period = p.period;
    t->num_uses = p.num_uses;
    t->orphan = true;
    if (issue(t, NULL, m, resp) != 0)
        goto out;
    log_info("token: login on %s created accessor %s (%s)", m->path,
             t->accessor, t->display_name);
out:
    strvec_release(&p.policies);
    cJSON_Delete(p.meta);
    token_free(t);
}

/* ======================================================= leases, tidy == */

int token_lease_revoke(const struct mount *m, const cJSON *record,
                       struct errbuf *err)
{
    const cJSON *internal = cJSON_GetObjectItemCaseSensitive(record,
                                                             "internal");
    const cJSON *hmac = cJSON_GetObjectItemCaseSensitive(internal, "token");
    int rc;

    (void)m;
    if (!cJSON_IsString(hmac) || strlen(hmac->valuestring) != HMAC_HEX_LEN) {
        errbuf_set(err, "token lease without a token");
        return COFFER_EINVAL;
    }
    rc = revoke_tree(hmac->valuestring);
    if (rc != 0)
        errbuf_set(err, "revoking the token failed: %s", coffer_strerror(rc));
    return rc;
}

int token_lease_renew(const struct mount *m, const cJSON *record,
                      int64_t expire_unix, struct errbuf *err)
{
    (void)m;
    (void)record;
    (void)expire_unix;
    errbuf_set(err, "tokens cannot be renewed through this endpoint; use "
                    "auth/token/renew");
    return COFFER_EINVAL;
}

/* Lists the entries of a folder, trailing "/" removed. */
static int list_plain(const char *prefix, struct strvec *out)
{
    int rc = storage_list(store, prefix, out);

    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        size_t n = strlen(out->v[i]);
        if (n > 0 && out->v[i][n - 1] == '/')
            out->v[i][n - 1] = '\0';
    }
    return rc;
}

/*
 * The accessor index entry at key: dropped when its token is gone;
 * its token revoked when a crash left it pending revocation (its last
 * use was taken, the revocation after that request never ran).
 * True if the index entry was dropped.
 */
static bool tidy_accessor(const char *key)
{
    struct buf stored;
    struct token *t = NULL;
    bool dropped = false;

    buf_init(&stored, 1024);
    if (storage_get(store, key, &stored) == 0) {
        t = load_entry(stored.ptr);
        if (t != NULL && t->num_uses < 0)
            revoke_tree(t->id_hmac);
        if (t == NULL || !token_exists_hmac(stored.ptr)) {
            storage_delete(store, key);
            dropped = true;
        }
    }
    token_free(t);
    buf_release(&stored);
    return dropped;
}

/*
 * auth/token/tidy: drops accessor and parent index entries whose token is
 * gone, and revokes children whose parent is gone (Vault does the same:
 * a child must not outlive a parent that was lost half-way).
 */
static void handle_tidy(struct response *resp)
{
    struct strvec keys, parents, children;
    char key[256];
    size_t dropped = 0, revoked = 0;
    int rc;

    strvec_init(&keys);
    strvec_init(&parents);
    rc = list_plain("token/accessor/", &keys);
    for (size_t i = 0; rc == 0 && i < keys.n; i++) {
        key_accessor(key, sizeof(key), keys.v[i]);
        if (tidy_accessor(key))
            dropped++;
    }
    if (rc == 0)
        rc = list_plain("token/parent/", &parents);
    for (size_t i = 0; rc == 0 && i < parents.n; i++) {
        bool parent_alive = token_exists_hmac(parents.v[i]);
        snprintf(key, sizeof(key), "token/parent/%s/", parents.v[i]);
        strvec_init(&children);
        list_plain(key, &children);
        for (size_t j = 0; j < children.n; j++) {
            if (!parent_alive) {
                revoke_tree(children.v[j]);
                revoked++;
            } else if (!token_exists_hmac(children.v[j])) {
                key_child(key, sizeof(key), parents.v[i], children.v[j]);
                storage_delete(store, key);
                dropped++;
            }
        }
        if (!parent_alive) {
            snprintf(key, sizeof(key), "token/parent/%s/", parents.v[i]);
            storage_delete_prefix(store, key);
        }
        strvec_release(&children);
    }
    strvec_release(&keys);
    strvec_release(&parents);
    if (rc != 0) {
        response_error(resp, 500, "tidy failed: %s", coffer_strerror(rc));
        return;
    }
    log_info("token: tidy dropped %zu index entries, revoked %zu orphaned "
             "children", dropped, revoked);
    resp->status = 202;
    response_warn(resp, "Tidy operation successfully started. Any "
                        "information from the operation will be printed to "
                        "Vault's server logs.");
}

/* ============================================================ dispatch == */

enum ep_flags {
    EP_SELF = 1 << 0,
    EP_ACCESSOR = 1 << 1,
    EP_ORPHAN = 1 << 2,
};

enum ep_kind {
    EP_CREATE = 1,
    EP_LOOKUP,
    EP_RENEW,
    EP_REVOKE,
    EP_ACCESSORS,
    EP_TIDY,
};

struct endpoint {
    const char *path;
    enum ep_kind kind;
    unsigned flags;
    bool allow_read; /* GET is accepted besides POST/PUT */
    bool list_only;
};

static const struct endpoint endpoints[] = {
    {"create", EP_CREATE, 0, false, false},
    {"create-orphan", EP_CREATE, EP_ORPHAN, false, false},
    {"lookup", EP_LOOKUP, 0, true, false},
    {"lookup-self", EP_LOOKUP, EP_SELF, true, false},
    {"lookup-accessor", EP_LOOKUP, EP_ACCESSOR, false, false},
    {"renew", EP_RENEW, 0, false, false},
    {"renew-self", EP_RENEW, EP_SELF, false, false},
    {"renew-accessor", EP_RENEW, EP_ACCESSOR, false, false},
    {"revoke", EP_REVOKE, 0, false, false},
    {"revoke-self", EP_REVOKE, EP_SELF, false, false},
    {"revoke-accessor", EP_REVOKE, EP_ACCESSOR, false, false},
    {"revoke-orphan", EP_REVOKE, EP_ORPHAN, false, false},
    {"accessors", EP_ACCESSORS, 0, false, true},
    {"tidy", EP_TIDY, 0, false, false},
};

static const struct endpoint *find_endpoint(const char *rel)
{
    size_t n = strlen(rel);

    if (n > 0 && rel[n - 1] == '/')
        n--;
    for (size_t i = 0; i < ARRAY_LEN(endpoints); i++) {
        if (strlen(endpoints[i].path) == n &&
            strncmp(endpoints[i].path, rel, n) == 0)
            return &endpoints[i];
    }
    return NULL;
}

static bool op_allowed(const struct endpoint *ep, enum req_op op)
{
    if (ep->list_only)
        return op == OP_LIST;
    if (op == OP_CREATE || op == OP_UPDATE)
        return true;
    return ep->allow_read && op == OP_READ;
}

/* roles/, roles/<name>, create/<role>; false if rel is none of them. */
static bool handle_prefixed(struct request *req, struct response *resp)
{
    const char *rel = req->rel_path;
    char *name;
    size_t n;

    if (strcmp(rel, "roles") == 0 || strcmp(rel, "roles/") == 0) {
        if (req->op == OP_LIST)
            handle_role_list(resp);
        else
            response_error(resp, 405, "1 error occurred:\n\t* unsupported "
                                      "operation\n\n");
        return true;
    }
    if (str_has_prefix(rel, "roles/")) {
        handle_role(req, rel + 6, resp);
        return true;
    }
    if (!str_has_prefix(rel, "create/") || rel[7] == '\0')
        return false;
    if (req->op != OP_CREATE && req->op != OP_UPDATE) {
        response_error(resp, 405, "1 error occurred:\n\t* unsupported "
                                  "operation\n\n");
        return true;
    }
    name = xstrdup(rel + 7);
    n = strlen(name);
    while (n > 0 && name[n - 1] == '/')
        name[--n] = '\0';
    handle_create(req, resp, false, name);
    free(name);
    return true;
}

void token_handle(struct request *req, struct response *resp)
{
    const struct endpoint *ep = find_endpoint(req->rel_path);
    bool self, acc, orphan;

    if (ep == NULL && handle_prefixed(req, resp))
        return;
    if (ep == NULL) {
        response_error(resp, 404, "1 error occurred:\n\t* unsupported "
                                  "path\n\n");
        return;
    }
    if (!op_allowed(ep, req->op)) {
        response_error(resp, 405, "1 error occurred:\n\t* unsupported "
                                  "operation\n\n");
        return;
    }
    self = (ep->flags & EP_SELF) != 0;
    acc = (ep->flags & EP_ACCESSOR) != 0;
    orphan = (ep->flags & EP_ORPHAN) != 0;
    switch (ep->kind) {
    case EP_CREATE: handle_create(req, resp, orphan, NULL); break;
    case EP_TIDY: handle_tidy(resp); break;
    case EP_LOOKUP: handle_lookup(req, resp, self, acc); break;
    case EP_RENEW: handle_renew(req, resp, self, acc); break;
    case EP_REVOKE: handle_revoke(req, resp, self, acc, orphan); break;
    case EP_ACCESSORS:
        if (!policy_has_sudo(req->token, req->path))
            response_error(resp, 403, "1 error occurred:\n\t* permission "
                                      "denied\n\n");
        else
            handle_accessors(resp);
        break;
    }
}
