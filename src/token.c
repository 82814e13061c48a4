/*
 * token.c - the token store.
 *
 * Owns token entries, their accessor and parent indexes, minting,
 * use counting, revocation and tidying. The auth/token/ endpoints are
 * token_endpoints.c and token_roles.c (token_internal.h is what they
 * share with the store). Does not own ACL decisions (policy.c) nor the
 * leases a token obtained (lease.c revokes those when asked).
 *
 * A client token is never stored: the store keys entries by
 * HMAC-SHA256(salt, token), so a copy of the storage does not yield usable
 * tokens. Writes that touch several keys go through one storage batch.
 *
 * Lookups go through token_cache.c: parsed entries of unlimited tokens
 * (num_uses 0), keyed by the HMAC. Every write or delete of an entry is
 * one of token_entry_save, token_entry_store_new and delete_entry_locked,
 * and each brackets its storage write with token_cache_write_begin/end,
 * so a revoked or renewed token is never served from the cache once the
 * write returns. Expiry is checked on the copy at every lookup.
 */
#include "token.h"
#include "token_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "crypto.h"
#include "cubbyhole.h"
#include "fields.h"
#include "lease.h"
#include "json.h"
#include "log.h"
#include "mount.h"
#include "router.h"
#include "storage.h"
#include "storage_cache.h"
#include "token_cache.h"

#define SALT_KEY "core/token-salt"
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

struct storage *token_storage(void)
{
    return store;
}

void token_hmac(const char *client_token, char out[HMAC_HEX_LEN + 1])
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

/* A deep copy of t, for the cache (which hands out copies). */
static void *token_dup(const void *v)
{
    const struct token *t = v;
    struct token *c = xcalloc(1, sizeof(*c));

    *c = *t;
    c->id_hmac = xstrdup(t->id_hmac);
    c->parent_hmac = t->parent_hmac ? xstrdup(t->parent_hmac) : NULL;
    c->display_name = t->display_name ? xstrdup(t->display_name) : NULL;
    c->path = t->path ? xstrdup(t->path) : NULL;
    strvec_init(&c->policies);
    for (size_t i = 0; i < t->policies.n; i++)
        strvec_push(&c->policies, t->policies.v[i]);
    c->meta = t->meta ? cJSON_Duplicate(t->meta, 1) : NULL;
    c->entity_id = t->entity_id ? xstrdup(t->entity_id) : NULL;
    c->type = t->type ? xstrdup(t->type) : NULL;
    c->lease_id = t->lease_id ? xstrdup(t->lease_id) : NULL;
    c->role = t->role ? xstrdup(t->role) : NULL;
    strvec_init(&c->bound_cidrs);
    for (size_t i = 0; i < t->bound_cidrs.n; i++)
        strvec_push(&c->bound_cidrs, t->bound_cidrs.v[i]);
    return c;
}

static void token_release(void *v)
{
    token_free(v);
}

static const struct token_cache_ops cache_ops = {
    .copy = token_dup,
    .release = token_release,
};

/*
 * disable_cache turns the token cache off too: it is how an operator says
 * that something else may write the storage (Vault's disable_cache covers
 * every cache), and a token revoked elsewhere must not live on here.
 */
static void follow_disable_cache(void)
{
    size_t entries;
    bool disabled;

    storage_cache_settings(&entries, &disabled);
    if (disabled)
        token_cache_resize(0);
}

int token_store_init(struct storage *s)
{
    struct buf stored;
    int rc;

    token_cache_set_ops(&cache_ops);
    token_cache_clear(); /* nothing from before a seal survives */
    follow_disable_cache();
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
    token_cache_clear();
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

cJSON *token_policies_json(const struct strvec *sv)
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
    cJSON_AddItemToObject(o, "policies", token_policies_json(&t->policies));
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
        cJSON_AddItemToObject(o, "bound_cidrs", token_policies_json(&t->bound_cidrs));
    return o;
}

char *token_json_str(const cJSON *o, const char *key)
{
    const char *v = json_get_str(o, key, NULL);

    return v != NULL ? xstrdup(v) : NULL;
}

static struct token *entry_from_json(const char *hmac, const cJSON *o)
{
    struct token *t = xcalloc(1, sizeof(*t));
    const cJSON *pol = cJSON_GetObjectItemCaseSensitive(o, "policies");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "meta");
    const cJSON *it;
    char *acc = token_json_str(o, "accessor");
    char *issue = token_json_str(o, "issue_time");

    t->id_hmac = xstrdup(hmac);
    snprintf(t->accessor, sizeof(t->accessor), "%s", acc ? acc : "");
    t->parent_hmac = token_json_str(o, "parent");
    t->display_name = token_json_str(o, "display_name");
    t->path = token_json_str(o, "path");
    strvec_init(&t->policies);
    cJSON_ArrayForEach(it, pol) {
        if (cJSON_IsString(it))
            strvec_push(&t->policies, it->valuestring);
    }
    t->meta = cJSON_IsObject(meta) ? cJSON_Duplicate(meta, 1) : NULL;
    t->creation_time = json_get_int(o, "creation_time", 0);
    if (issue == NULL || time_parse_rfc3339(issue, &t->issue_time) != 0)
        t->issue_time.tv_sec = t->creation_time;
    t->creation_ttl = json_get_int(o, "creation_ttl", 0);
    t->ttl = json_get_int(o, "ttl", 0);
    t->expire_time = json_get_int(o, "expire_time", 0);
    t->explicit_max_ttl = json_get_int(o, "explicit_max_ttl", 0);
    t->period = json_get_int(o, "period", 0);
    t->num_uses = json_get_int(o, "num_uses", 0);
    t->renewable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "renewable"));
    t->orphan = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "orphan"));
    t->last_renewal = json_get_int(o, "last_renewal", 0);
    t->max_ttl = json_get_int(o, "max_ttl", 0);
    t->lease_id = token_json_str(o, "lease_id");
    t->role = token_json_str(o, "role");
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
struct token *token_entry_load(const char *hmac)
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

int token_entry_save(const struct token *t)
{
    char key[128];
    cJSON *o = entry_to_json(t);
    char *text = cJSON_PrintUnformatted(o);
    int rc;

    key_id(key, sizeof(key), t->id_hmac);
    token_cache_write_begin(t->id_hmac);
    rc = storage_put(store, key, text, strlen(text));
    token_cache_write_end(t->id_hmac);
    cJSON_Delete(o);
    free(text);
    return rc;
}

/* ======================================================= create, revoke == */

/* The system max TTL: the bound of tokens without a max of their own. */
int64_t token_system_max_ttl(void)
{
    int64_t def, max;

    router_system_ttls(&def, &max);
    return max;
}

bool token_expired(const struct token *t)
{
    return t->expire_time != 0 && t->expire_time <= time_now().tv_sec;
}

/* True if the entry under hmac is stored, unexpired and usable. */
static bool live_locked(const char *hmac)
{
    struct token *t = token_entry_load(hmac);
    bool live = t != NULL && !token_expired(t) && t->num_uses >= 0;

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
int token_entry_store_new(const struct token *t)
{
    char kid[128], kacc[128], kchild[256];
    cJSON *o = entry_to_json(t);
    char *text = cJSON_PrintUnformatted(o);
    struct storage_op ops[3];
    struct token *dup;
    size_t n = 0;
    int rc = 0;

    pthread_mutex_lock(&write_lock);
    dup = token_entry_load(t->id_hmac);
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
    if (rc == 0) {
        token_cache_write_begin(t->id_hmac);
        rc = storage_batch(store, ops, n);
        token_cache_write_end(t->id_hmac);
    }
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
    int rc;

    key_id(kid, sizeof(kid), t->id_hmac);
    key_accessor(kacc, sizeof(kacc), t->accessor);
    ops[n++] = (struct storage_op){STORAGE_OP_DELETE, kid, NULL, 0};
    ops[n++] = (struct storage_op){STORAGE_OP_DELETE, kacc, NULL, 0};
    if (t->parent_hmac != NULL) {
        key_child(kchild, sizeof(kchild), t->parent_hmac, t->id_hmac);
        ops[n++] = (struct storage_op){STORAGE_OP_DELETE, kchild, NULL, 0};
    }
    log_info("token: revoked accessor %s", t->accessor);
    token_cache_write_begin(t->id_hmac);
    rc = storage_batch(store, ops, n);
    token_cache_write_end(t->id_hmac);
    /* After the entry: a racing cubbyhole write then sees it gone. */
    if (rc == 0 && cubbyhole_destroy(store, t->id_hmac) != 0)
        log_error("token: destroying the cubbyhole of accessor %s failed",
                  t->accessor);
    return rc;
}

/*
 * Hands the leases of every token in done to the expiration manager and
 * empties done. Runs without write_lock: a revocation worker revoking a
 * token lease calls back into revoke_tree, so holding write_lock while
 * waiting for the manager's claims could deadlock. revoking_lease_id:
 * see revoke_tree.
 */
static void revoke_leases(struct strvec *done, const char *revoking_lease_id)
{
    for (size_t i = 0; i < done->n; i++)
        lease_revoke_token(done->v[i], revoking_lease_id);
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
    t = token_entry_load(hmac);
    if (t != NULL) {
        rc = delete_entry_locked(t);
        token_free(t);
    }
    strvec_push(done, hmac);
    return rc;
}

/*
 * revoking_lease_id is the token lease whose expiry or revocation brought
 * us here (lease.c holds it and deletes it afterwards), NULL when the
 * revocation starts here: lease.c must not wait for that lease. With an
 * accessor, only if the token stored under hmac is that one (or none is):
 * a token re-created with the same id is another token, which a late
 * revocation of the old one must not take. Checked under write_lock,
 * where tokens are stored.
 */
int token_revoke_tree(const char *hmac, const char *accessor,
                      const char *revoking_lease_id)
{
    struct strvec done;
    struct token *t = NULL;
    int rc = 0;

    strvec_init(&done);
    pthread_mutex_lock(&write_lock);
    if (accessor != NULL)
        t = token_entry_load(hmac);
    if (t == NULL || strcmp(t->accessor, accessor) == 0)
        rc = revoke_tree_locked(hmac, 0, &done);
    pthread_mutex_unlock(&write_lock);
    token_free(t);
    revoke_leases(&done, revoking_lease_id);
    return rc;
}

/* Revokes only this token; its children become orphans. */
int token_revoke_orphan(const char *hmac, const char *accessor)
{
    char prefix[128];
    struct strvec children;
    struct token *t, *child;
    bool revoked = false;
    int rc = 0;

    pthread_mutex_lock(&write_lock);
    t = token_entry_load(hmac);
    /* Gone, or re-created with the same id since: its children are the
     * new token's. */
    if (t == NULL || strcmp(t->accessor, accessor) != 0) {
        pthread_mutex_unlock(&write_lock);
        token_free(t);
        return 0;
    }
    token_free(t);
    snprintf(prefix, sizeof(prefix), "token/parent/%s/", hmac);
    strvec_init(&children);
    rc = storage_list(store, prefix, &children);
    for (size_t i = 0; rc == 0 && i < children.n; i++) {
        child = token_entry_load(children.v[i]);
        if (child == NULL)
            continue;
        free(child->parent_hmac);
        child->parent_hmac = NULL;
        child->orphan = true;
        rc = token_entry_save(child);
        token_free(child);
    }
    strvec_release(&children);
    if (rc == 0)
        rc = storage_delete_prefix(store, prefix);
    t = rc == 0 ? token_entry_load(hmac) : NULL;
    if (t != NULL) {
        rc = delete_entry_locked(t);
        token_free(t);
        revoked = true;
    }
    pthread_mutex_unlock(&write_lock);
    if (revoked)
        lease_revoke_token(hmac, NULL);
    return rc;
}

struct token *token_entry_new(void)
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
char *token_mint(struct token *t, const char *custom_id)
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
    struct token *t = token_entry_new();
    char *client = token_mint(t, id);
    int rc = COFFER_EINTERNAL;

    *client_token = NULL;
    if (client != NULL) {
        t->display_name = xstrdup("root");
        t->path = xstrdup("auth/token/root");
        strvec_push(&t->policies, "root");
        t->orphan = true;
        t->is_root = true;
        rc = token_entry_store_new(t);
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
 * The entry under hmac, from the cache or loaded (then cached if it has no
 * use limit: counted uses always go to storage, under write_lock). Raw,
 * like token_entry_load: the caller checks expiry and pending state.
 */
static struct token *entry_load_cached(const char *hmac)
{
    struct token *t = token_cache_get(hmac);
    uint64_t gen;

    if (t != NULL)
        return t;
    gen = token_cache_generation(hmac);
    t = token_entry_load(hmac);
    if (t != NULL && t->num_uses == 0)
        token_cache_fill(hmac, t, gen);
    return t;
}

/*
 * The usable entry under hmac: NULL when missing, pending revocation or
 * expired (an expired one is revoked now rather than at the next sweep).
 * Takes write_lock for that revocation: never call it holding the lock.
 */
static struct token *lookup_hmac(const char *hmac)
{
    struct token *t = entry_load_cached(hmac);

    if (t != NULL && token_expired(t)) {
        token_revoke_tree(hmac, t->accessor, NULL);
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
    cur = token_entry_load(t->id_hmac);
    if (cur == NULL || cur->num_uses <= 0 || token_expired(cur)) {
        /* Revoked, or another request took the last use first. */
        rc = COFFER_ENOTFOUND;
    } else {
        cur->num_uses--;
        if (cur->num_uses == 0)
            cur->num_uses = USES_PENDING;
        rc = token_entry_save(cur);
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
        token_revoke_tree(t->id_hmac, t->accessor, NULL);
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

bool token_alive_as(const char *hmac, const char *accessor)
{
    struct token *t = entry_load_cached(hmac);
    bool alive = t != NULL &&
                 (accessor == NULL || strcmp(t->accessor, accessor) == 0);

    if (alive && token_expired(t)) {
        token_revoke_tree(hmac, t->accessor, NULL);
        alive = false;
    }
    token_free(t);
    return alive;
}

bool token_exists_hmac(const char *hmac)
{
    return token_alive_as(hmac, NULL);
}

/* The stored id named by an accessor into out; false if none. */
bool token_accessor_hmac(const char *accessor, char out[HMAC_HEX_LEN + 1])
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

struct token *token_entry_by_accessor(const char *accessor)
{
    char hmac[HMAC_HEX_LEN + 1];

    return token_accessor_hmac(accessor, hmac) ? lookup_hmac(hmac) : NULL;
}

struct token *token_lookup_accessor(const char *accessor)
{
    return accessor != NULL ? token_entry_by_accessor(accessor) : NULL;
}

/* ============================================= persisting, renewing == */

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
    cur = token_entry_load(t->id_hmac);
    if (cur != NULL) {
        free(cur->lease_id);
        cur->lease_id = xstrdup(t->lease_id);
        rc = token_entry_save(cur);
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
/*
 * Counts a stored token in Vault's token.creation: labelled with the
 * auth method and mount that issued it, or for a wrapping token (its one
 * policy is response-wrapping, as wrapping.c recognises them) with
 * "response_wrapping" and the mount of the request it wraps, as Vault.
 */
static token_created_fn created_hook;

void token_set_created_hook(token_created_fn fn)
{
    created_hook = fn;
}

static void count_creation(const struct token *t, const struct mount *m)
{
    const struct mount *wrapped;

    if (created_hook == NULL)
        return;
    if (t->policies.n == 1 &&
        strcmp(t->policies.v[0], "response-wrapping") == 0) {
        wrapped = t->path != NULL ? router_match(t->path) : NULL;
        created_hook("response_wrapping",
                     wrapped != NULL ? wrapped->path : "", t->ttl, t->type);
        router_mount_put(wrapped);
        return;
    }
    created_hook(m != NULL ? m->type : "token",
                 m != NULL ? m->path : "auth/token/", t->ttl, t->type);
}

int token_persist_new(struct token *t, const struct mount *m)
{
    struct errbuf err;
    int64_t max = t->max_ttl > 0 ? t->max_ttl : token_system_max_ttl();
    int rc = token_entry_store_new(t);

    if (rc == 0)
        count_creation(t, m);
    if (rc != 0 || t->ttl <= 0 || m == NULL)
        return rc;
    if (t->explicit_max_ttl > 0 && t->explicit_max_ttl < max)
        max = t->explicit_max_ttl;
    errbuf_clear(&err);
    rc = lease_register_token(m, t->path, t->id_hmac, t->accessor, t->ttl,
                              max, t->renewable, &t->lease_id, &err);
    if (rc == 0)
        rc = record_lease_id(t);
    if (rc != 0) {
        if (rc != COFFER_ENOTFOUND)
            log_error("token: registering the lease of accessor %s failed: "
                      "%s", t->accessor, err.msg);
        token_revoke_tree(t->id_hmac, t->accessor, NULL);
    }
    return rc;
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
    max = t->max_ttl > 0 ? t->max_ttl : token_system_max_ttl();
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

    if (lease_extend(t->lease_id, t->accessor, t->expire_time, t->ttl) != 0)
        log_warn("token: lease of accessor %s is missing; the token "
                 "still expires on lookup", t->accessor);
    pthread_mutex_lock(&write_lock);
    cur = token_entry_load(t->id_hmac);
    pthread_mutex_unlock(&write_lock);
    if (cur == NULL)
        lease_revoke_token(t->id_hmac, NULL);
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
struct token *token_renew_entry(const char *hmac, const cJSON *data,
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
    t = token_entry_load(hmac);
    if (t == NULL || t->num_uses < 0 || token_expired(t)) {
        response_error(resp, 400, "token not found");
    } else if (renewed_ttl(t, increment, resp) == 0 && token_entry_save(t) != 0) {
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
    /* Leases stored before accessors were recorded carry none. */
    rc = token_revoke_tree(hmac->valuestring,
                           cJSON_GetStringValue(
                               cJSON_GetObjectItemCaseSensitive(
                                   record, "token_accessor")),
                           cJSON_GetStringValue(
                               cJSON_GetObjectItemCaseSensitive(record, "id")));
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
        t = token_entry_load(stored.ptr);
        if (t != NULL && t->num_uses < 0)
            token_revoke_tree(t->id_hmac, t->accessor, NULL);
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
int token_tidy(size_t *dropped_out, size_t *revoked_out)
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
            struct token *c = parent_alive ? NULL
                                           : token_entry_load(children.v[j]);
            /* A child re-created with the same id under another parent
             * (or as an orphan) is not this dead parent's. */
            bool mine = c == NULL || (c->parent_hmac != NULL &&
                                      strcmp(c->parent_hmac,
                                             parents.v[i]) == 0);

            if (!parent_alive && mine) {
                token_revoke_tree(children.v[j], c ? c->accessor : NULL,
                                  NULL);
                revoked++;
            } else if (!parent_alive || !token_exists_hmac(children.v[j])) {
                key_child(key, sizeof(key), parents.v[i], children.v[j]);
                storage_delete(store, key);
                dropped++;
            }
            token_free(c);
        }
        if (!parent_alive) {
            snprintf(key, sizeof(key), "token/parent/%s/", parents.v[i]);
            storage_delete_prefix(store, key);
        }
        strvec_release(&children);
    }
    strvec_release(&keys);
    strvec_release(&parents);
    *dropped_out = dropped;
    *revoked_out = revoked;
    return rc;
}

/*
 * A token bound to CIDR blocks (token_bound_cidrs) is only good from
 * addresses inside one of them; a malformed block matches nothing, and
 * no address (a caller outside any request) matches no block.
 */
bool token_address_allowed(const struct token *t, const char *addr)
{
    bool match = false;

    if (t->bound_cidrs.n == 0)
        return true;
    for (size_t i = 0; addr != NULL && i < t->bound_cidrs.n && !match;
         i++) {
        if (cidr_match(t->bound_cidrs.v[i], addr, &match) != 0)
            match = false;
    }
    return match;
}
