/*
 * lease.c - leases: their records in storage and the counts kept of
 * them, issuance (pending, activate, abort), start and stop (the counts
 * of the restore at unseal, the reconciliation's callbacks), revocation
 * by id, prefix and token, the sys/leases views, tidy, renewal and the
 * statistics (see lease.h for the formats and the life of a lease).
 *
 * The expiration manager (the heap of expiry times and its restore, the
 * claims, the revocation workers and their lanes, and revoking a
 * record) is lease_expire.c; what the two files share is
 * lease_internal.h.
 */
#include "lease.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "json.h"
#include "json_write.h"
#include "lease_internal.h"
#include "lease_record.h"
#include "lease_standby.h"
#include "log.h"
#include "mount.h"
#include "router.h"
#include "storage.h"
#include "util.h"

#define PENDING_GRACE_MS (5 * 60 * 1000)

static struct storage *store;
struct lease_config lease__conf;

pthread_mutex_t lease__mu = PTHREAD_MUTEX_INITIALIZER;

/*
 * Lease records in storage, and how many of them are pending, kept under
 * lease__mu. A record is counted when store_new_record stores it (a fresh
 * id) and uncounted when lease__drop_record deletes it, which happens
 * only under the lease's claim right after loading it, so a record is
 * never uncounted twice and these are exact. (The heap is not a count:
 * it keeps stale entries for renewed and revoked leases.)
 */
static uint64_t live_leases;
static uint64_t pending_leases;

/* Time the engines' revoke calls take (Vault's expire.revoke timer). */
static pthread_mutex_t timing_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lease_timing revoke_timing;

static atomic_uint_fast64_t stat_created;
static atomic_uint_fast64_t stat_revoked;
atomic_uint_fast64_t lease__stat_failures;
atomic_uint_fast64_t lease__stat_irrevocable;
static atomic_bool tidy_requested;

/* ============================================================ helpers == */

/*
 * True when token_hmac names a live token, and when accessor is set the
 * one with that accessor (lease_config.token_alive).
 */
static bool token_alive(const char *token_hmac, const char *accessor)
{
    return lease__conf.token_alive == NULL ||
           lease__conf.token_alive(token_hmac,
                                   accessor != NULL && accessor[0] ? accessor
                                                                   : NULL);
}

/*
 * Whether rec belongs to a token that is alive now. A token's revocation
 * deletes its entry before it marks its leases, so a live owner under
 * the same hmac is a token re-created with that id since: its leases are
 * not the revoked one's. Records without an accessor (stored before
 * accessors were recorded) cannot be told apart and count as not.
 */
static bool owner_alive(const cJSON *rec)
{
    const char *acc = json_get_str(rec, "token_accessor", "");
    const char *tok = json_get_str(rec, "token", "");

    return acc[0] != '\0' && tok[0] != '\0' && token_alive(tok, acc);
}

/*
 * Appends id's stored record text to out (initialised by the caller).
 * 0, COFFER_ENOTFOUND, or another error (logged).
 */
static int read_record(const char *id, struct buf *out)
{
    char *key = lrec_key(id);
    int rc = storage_get(store, key, out);

    if (rc != 0 && rc != COFFER_ENOTFOUND)
        log_error("lease: reading %s failed: %s", id, coffer_strerror(rc));
    free(key);
    return rc;
}

/* A stored record text parsed, or NULL when corrupt (logged). */
static cJSON *parse_record(const char *id, const struct buf *stored)
{
    cJSON *rec = cJSON_ParseWithLength(stored->ptr, stored->len);

    if (!cJSON_IsObject(rec)) {
        log_error("lease: record %s is corrupt", id);
        cJSON_Delete(rec);
        rec = NULL;
    }
    return rec;
}

/* Returns the record, or NULL when missing or unreadable (logged). */
cJSON *lease__load_record(const char *id)
{
    struct buf stored;
    cJSON *rec = NULL;

    buf_init(&stored, 0);
    if (read_record(id, &stored) == 0)
        rec = parse_record(id, &stored);
    buf_release(&stored);
    return rec;
}

/*
 * rec's text as stored: byte for byte what cJSON_PrintUnformatted gives,
 * written by json_write.c without a sprintf per number. A new string of
 * *len bytes, or NULL past the buffer's ceiling.
 */
static char *record_text(const cJSON *rec, size_t *len)
{
    struct buf b;
    struct json_writer w;

    buf_init(&b, 0);
    json_write_init(&w, &b);
    json_write_value(&w, rec);
    *len = 0;
    if (w.rc != 0) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b, len);
}

int lease__save_record(const cJSON *rec)
{
    char *key = lrec_key(json_get_str(rec, "id", ""));
    size_t len;
    char *text = record_text(rec, &len);
    int rc = text != NULL ? storage_put(store, key, text, len)
                          : COFFER_ETOOBIG;

    secure_free_str(text);
    free(key);
    return rc;
}

/* Deletes the record and its token index entry in one batch. */
static int delete_record(const cJSON *rec)
{
    const char *id = json_get_str(rec, "id", "");
    const char *tok = json_get_str(rec, "token", "");
    char *key = lrec_key(id);
    char *tkey = tok[0] ? lrec_token_key(tok, id) : NULL;
    struct storage_op ops[2] = {
        {STORAGE_OP_DELETE, key, NULL, 0},
        {STORAGE_OP_DELETE, tkey, NULL, 0},
    };
    int rc = storage_batch(store, ops, tkey ? 2 : 1);

    free(key);
    free(tkey);
    return rc;
}

/* A record was stored: count it as live (and pending if it is). */
static void count_added(const cJSON *rec)
{
    pthread_mutex_lock(&lease__mu);
    live_leases++;
    if (lrec_is_pending(rec))
        pending_leases++;
    pthread_mutex_unlock(&lease__mu);
    atomic_fetch_add(&stat_created, 1);
}

/* Records deleted from storage: uncount them. */
static void uncount_records(const cJSON *const *recs, size_t n)
{
    pthread_mutex_lock(&lease__mu);
    for (size_t i = 0; i < n; i++) {
        if (live_leases > 0)
            live_leases--;
        if (lrec_is_pending(recs[i]) && pending_leases > 0)
            pending_leases--;
    }
    pthread_mutex_unlock(&lease__mu);
}

/*
 * Deletes rec, which the caller loaded under the lease's claim (so it
 * existed and nobody else can delete it meanwhile), and uncounts it.
 */
int lease__drop_record(const cJSON *rec)
{
    int rc = delete_record(rec);

    if (rc == 0)
        uncount_records(&rec, 1);
    return rc;
}

/*
 * lease__drop_record for n records at once: every record and token index
 * entry goes in ONE storage batch (one commit, one fsync), all or nothing.
 */
int lease__drop_records(const cJSON *const *recs, size_t n)
{
    struct storage_op *ops = xcalloc(2 * n + 1, sizeof(*ops));
    size_t nops = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        const char *id = json_get_str(recs[i], "id", "");
        const char *tok = json_get_str(recs[i], "token", "");
        ops[nops].kind = STORAGE_OP_DELETE;
        ops[nops++].key = lrec_key(id);
        if (tok[0] != '\0') {
            ops[nops].kind = STORAGE_OP_DELETE;
            ops[nops++].key = lrec_token_key(tok, id);
        }
    }
    rc = storage_batch(store, ops, nops);
    if (rc == 0)
        uncount_records(recs, n);
    for (size_t i = 0; i < nops; i++)
        free((char *)ops[i].key);
    free(ops);
    return rc;
}

void lease__note_revoke_time(double ms)
{
    struct lease_timing *t = &revoke_timing;

    pthread_mutex_lock(&timing_mu);
    if (t->count == 0 || ms < t->min_ms)
        t->min_ms = ms;
    if (t->count == 0 || ms > t->max_ms)
        t->max_ms = ms;
    t->count++;
    t->sum_ms += ms;
    pthread_mutex_unlock(&timing_mu);
}

/* Token leases go to token.c, every other secret to the engines. */
const struct lease_ops *lease__ops_for(const cJSON *rec)
{
    if (lease__conf.token_ops != NULL &&
        strcmp(json_get_str(rec, "secret_type", ""), "token") == 0)
        return lease__conf.token_ops;
    return lease__conf.ops;
}

/* The mount that issued the lease, if it is still the same mount. */
const struct mount *lease__mount(const cJSON *rec)
{
    const struct mount *m = router_match(json_get_str(rec, "path", ""));

    if (m != NULL && strcmp(m->uuid, json_get_str(rec, "mount_uuid", "")) != 0) {
        router_mount_put(m);
        m = NULL;
    }
    return m;
}

/* rec's revocation succeeded and its record is gone: count and audit it. */
void lease__note_revoked(const cJSON *rec, const char *reason)
{
    const char *id = json_get_str(rec, "id", "");

    atomic_fetch_add(&stat_revoked, 1);
    if (lease__conf.revoked != NULL)
        lease__conf.revoked(id, reason,
                            cJSON_GetObjectItemCaseSensitive(rec, "internal"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "irrevocable")))
        atomic_fetch_sub(&lease__stat_irrevocable, 1);
    log_info("lease: revoked %s", id);
}

/* ============================================================ restore == */

typedef void (*id_visit_fn)(void *arg, const char *id);

/* Calls fn(arg, id) for every lease id under prefix (a storage key prefix). */
static int walk_ids(const char *prefix, id_visit_fn fn, void *arg)
{
    struct strvec keys;
    int rc;

    strvec_init(&keys);
    rc = storage_list(store, prefix, &keys);
    for (size_t i = 0; rc == 0 && i < keys.n; i++) {
        size_t n = strlen(prefix) + strlen(keys.v[i]) + 1;
        char *full = xmalloc(n);
        snprintf(full, n, "%s%s", prefix, keys.v[i]);
        if (str_has_suffix(full, "/"))
            rc = walk_ids(full, fn, arg);
        else
            fn(arg, full + strlen(LEASE_ID_PREFIX));
        free(full);
    }
    strvec_release(&keys);
    return rc;
}

/* The reconciliation's restore of a record the standby index lacked,
 * with the expiration manager running (lease_standby.h). */
static int restore_running(void *arg, const char *key, const void *value,
                           size_t len)
{
    struct lease_counts c = {0, 0, 0};

    (void)arg;
    pthread_mutex_lock(&lease__mu);
    lease__restore_locked(key + strlen(LEASE_ID_PREFIX), value, len, &c);
    live_leases += c.live;
    pending_leases += c.pending;
    pthread_mutex_unlock(&lease__mu);
    atomic_fetch_add(&lease__stat_irrevocable, c.irrevocable);
    return 0;
}

static void schedule_running(void *arg, const char *id, int64_t when)
{
    (void)arg;
    lease__schedule(id, when);
}

int lease_init(struct storage *s, const struct lease_config *cfg,
               struct errbuf *err)
{
    struct lease_counts c = {0, 0, 0};
    bool reconcile = false;
    int rc;

    store = s;
    lease__conf = *cfg;
    /*
     * 16: one mount's half (8) keeps as many revocations in flight as the
     * 8 connections that reach PostgreSQL's DROP ROLE rate; each one waits
     * mostly on a round trip and a commit, which concurrent ones share.
     * 3,000 leases due at once under KV load, dev server: 880/s with 4
     * in flight, 1,495/s with 8 (one run each on a noisy 2-core machine).
     */
    if (lease__conf.workers == 0)
        lease__conf.workers = 16;
    if (lease__conf.retry_base <= 0)
        lease__conf.retry_base = 1;
    if (lease__conf.retry_max <= 0)
        lease__conf.retry_max = 60;
    if (lease__conf.irrevocable_after <= 0)
        lease__conf.irrevocable_after = 6;
    rc = lease__expire_init(store, &c, &reconcile, err);
    if (rc != 0)
        return rc;
    live_leases = c.live;
    pending_leases = c.pending;
    atomic_store(&lease__stat_irrevocable, c.irrevocable);
    rc = lease__expire_start(err);
    if (rc != 0)
        return rc;
    if (reconcile)
        lease_standby_reconcile_start(store, LEASE_ID_PREFIX, restore_running,
                                      schedule_running, NULL);
    return 0;
}

void lease_shutdown(void)
{
    lease_standby_reconcile_stop(); /* it pushes onto the heap */
    lease__expire_stop();
}

/* ============================================================ issuance == */

/*
 * Stores a new record and, when it has a token, its index entry, at once.
 * With text_out, the stored text (*len_out bytes) is handed over on
 * success.
 */
static int store_new_record(const cJSON *rec, char **text_out,
                            size_t *len_out, struct errbuf *err)
{
    const char *id = json_get_str(rec, "id", "");
    const char *tok = json_get_str(rec, "token", "");
    char *key = lrec_key(id);
    char *tkey = tok[0] ? lrec_token_key(tok, id) : NULL;
    size_t len;
    char *text = record_text(rec, &len);
    struct storage_op ops[2] = {
        {STORAGE_OP_PUT, key, text, len},
        {STORAGE_OP_PUT, tkey, id, strlen(id)},
    };
    int rc = COFFER_ETOOBIG;

    /* Before it is stored: a reconciliation that reads it must know it
     * is counted already. */
    lease_standby_known(id);
    if (text != NULL)
        rc = storage_batch(store, ops, tkey ? 2 : 1);
    if (rc == 0)
        count_added(rec);
    if (rc != 0)
        errbuf_set(err, "storing the %slease failed: %s",
                   strcmp(json_get_str(rec, "secret_type", ""), "token") == 0
                       ? "token " : "",
                   coffer_strerror(rc));
    if (rc == 0 && text_out != NULL) {
        *text_out = text;
        *len_out = len;
        text = NULL;
    }
    secure_free_str(text);
    free(key);
    free(tkey);
    return rc;
}

/*
 * Drops a pending record whose token died while it was being created. The
 * token's revocation may have found and revoked it already, so this looks
 * under the claim whether it is still there.
 */
static void drop_unissued(const char *id)
{
    cJSON *rec;

    lease__claim(id);
    rec = lease__load_record(id);
    if (rec != NULL && lease__drop_record(rec) != 0)
        log_error("lease: cannot drop %s of a revoked token", id);
    cJSON_Delete(rec);
    lease__unclaim(id);
}

/* "<path>/<suffix>", without doubling a trailing slash. */
static char *lease_id_join(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 2;
    char *id = xmalloc(n);

    snprintf(id, n, "%s%s%s", path, str_has_suffix(path, "/") ? "" : "/",
             suffix);
    return id;
}

struct lease_pending {
    char *id;
    cJSON *rec;  /* the record as stored; NULL once activation used it */
    char *text;  /* its stored text, byte for byte; NULL with rec */
    size_t len;
};

const char *lease_pending_id(const struct lease_pending *p)
{
    return p->id;
}

/* Activation used the copy (or gave up on it): storage decides from now. */
static void pending_drop_copy(struct lease_pending *p)
{
    cJSON_Delete(p->rec);
    p->rec = NULL;
    secure_free_str(p->text);
    p->text = NULL;
    p->len = 0;
}

void lease_pending_free(struct lease_pending *p)
{
    if (p == NULL)
        return;
    pending_drop_copy(p);
    free(p->id);
    free(p);
}

int lease_create_pending(const struct mount *m, const char *request_path,
                         const char *secret_type, cJSON *internal,
                         const char *token_hmac, const char *token_accessor,
                         struct lease_pending **out, struct errbuf *err)
{
    char suffix[CRYPTO_ID_LEN + 1];
    struct lease_spec spec = {
        .mount = m,
        .path = request_path,
        .secret_type = secret_type,
        .internal = internal != NULL ? internal : cJSON_CreateObject(),
        .token_hmac = token_hmac ? token_hmac : "",
        .token_accessor = token_accessor,
        .issued = time_now(),
    };
    struct lease_pending *p;
    int rc;

    *out = NULL;
    rc = crypto_random_base62(suffix, CRYPTO_ID_LEN);
    if (rc != 0) {
        cJSON_Delete(spec.internal);
        errbuf_set(err, "random number generator failed");
        return rc;
    }
    p = xcalloc(1, sizeof(*p));
    p->id = lease_id_join(request_path, suffix);
    spec.id = p->id;
    /* Revoked at start-up if Coffer stops before lease_activate. */
    spec.expire_ms = time_unix_ms() + PENDING_GRACE_MS;
    p->rec = lrec_build(&spec);
    rc = store_new_record(p->rec, &p->text, &p->len, err);
    /*
     * Checked after the index entry is stored, not before: a revocation
     * of the token that lists its leases after this point finds the
     * entry, and one that listed them before has already removed the
     * token, which this check sees. Either way no lease outlives it.
     */
    if (rc == 0 && spec.token_hmac[0] &&
        !token_alive(spec.token_hmac, token_accessor)) {
        drop_unissued(p->id);
        errbuf_set(err, "the token that asked for this lease was revoked");
        rc = COFFER_EPERM;
    }
    if (rc == 0)
        *out = p;
    else
        lease_pending_free(p);
    return rc;
}

int lease_register_token(const struct mount *m, const char *path,
                         const char *token_hmac, const char *accessor,
                         int64_t ttl, int64_t max_ttl, bool renewable,
                         char **lease_id, struct errbuf *err)
{
    struct lease_spec spec = {
        .mount = m,
        .path = path,
        .secret_type = "token",
        .internal = cJSON_CreateObject(),
        .token_hmac = token_hmac,
        .token_accessor = accessor,
        .issued = time_now(),
        .active = true,
        .ttl = ttl,
        .max_ttl = max_ttl,
        .renewable = renewable,
    };
    /* The token's hmac is the suffix: one lease per token, found by it. */
    char *id = lease_id_join(path, token_hmac);
    cJSON *rec, *prev;
    int rc;

    *lease_id = NULL;
    spec.id = id;
    spec.expire_ms = (int64_t)spec.issued.tv_sec * 1000 +
                     spec.issued.tv_nsec / 1000000 + ttl * 1000;
    cJSON_AddStringToObject(spec.internal, "token", token_hmac);
    rec = lrec_build(&spec);
    /*
     * A token re-created with the id of a revoked one gets the same lease
     * id. The old lease may still wait in the queue: its token is gone
     * (the new entry could not be stored otherwise), so it ends here,
     * under the claim a worker revoking it would hold.
     */
    lease__claim(id);
    prev = lease__load_record(id);
    if (prev != NULL && lease__drop_record(prev) == 0)
        lease__note_revoked(prev, "token revoked");
    cJSON_Delete(prev);
    rc = store_new_record(rec, NULL, NULL, err);
    if (rc == 0)
        lease__schedule(id, spec.expire_ms);
    lease__unclaim(id);
    if (rc == 0) {
        *lease_id = id;
        id = NULL;
    }
    cJSON_Delete(rec);
    free(id);
    return rc;
}

int lease_extend(const char *lease_id, const char *accessor,
                 int64_t expire_unix, int64_t ttl)
{
    cJSON *rec;
    char when[64];
    int rc = COFFER_ENOTFOUND;

    lease__claim(lease_id);
    rec = lease__load_record(lease_id);
    /* Another token's, re-created with this one's id since: not ours. */
    if (rec != NULL && accessor != NULL &&
        strcmp(json_get_str(rec, "token_accessor", accessor), accessor) != 0)
        rc = COFFER_ENOTFOUND;
    else if (rec != NULL) {
        lrec_format_ms(time_unix_ms(), when, sizeof(when));
        lrec_set_num(rec, "expire_ms", (double)expire_unix * 1000);
        lrec_set_num(rec, "ttl", (double)ttl);
        lrec_set_str(rec, "last_renewal", when);
        rc = lease__save_record(rec);
        if (rc == 0)
            lease__schedule(lease_id, expire_unix * 1000);
    }
    cJSON_Delete(rec);
    lease__unclaim(lease_id);
    return rc;
}

/*
 * p's record as storage holds it now (the caller holds the claim): p's
 * own copy while the stored text is byte for byte the one p stored, so
 * nothing changed it since; else what is stored, parsed into *loaded for
 * the caller to free, exactly what lease__load_record gives (NULL when
 * gone).
 */
static cJSON *current_pending(struct lease_pending *p, cJSON **loaded)
{
    struct buf stored;
    cJSON *rec = NULL;

    *loaded = NULL;
    buf_init(&stored, 0);
    if (read_record(p->id, &stored) == 0) {
        if (p->text != NULL && stored.len == p->len &&
            memcmp(stored.ptr, p->text, p->len) == 0)
            rec = p->rec;
        else
            rec = *loaded = parse_record(p->id, &stored);
    }
    buf_release(&stored);
    return rec;
}

int lease_activate(struct lease_pending *p, const struct mount *m,
                   int64_t ttl, int64_t max_ttl, bool renewable,
                   int64_t *granted, struct errbuf *err)
{
    const char *lease_id = p->id;
    cJSON *rec, *loaded;
    int64_t max, t, issue;
    int rc = COFFER_ENOTFOUND;

    /* Claimed: a revocation racing the activation must not be undone by
     * the save below, which would bring a deleted record back; and the
     * stored record is read under it, so p's copy is used only if it is
     * still exactly what storage holds. */
    lease__claim(lease_id);
    rec = current_pending(p, &loaded);
    if (rec == NULL || !lrec_is_pending(rec)) {
        errbuf_set(err, "lease %s is not pending", lease_id);
        goto out;
    }
    /* Revoked while it was being issued (asynchronously: a token
     * revocation, revoke with sync=false) and not yet by a worker, whose
     * attempt may have failed and wait for a retry: activating would move
     * its expiry out and lose the revocation. The record stays, due now,
     * and the caller drops what it created. */
    if (cJSON_GetObjectItemCaseSensitive(rec, "end_reason") != NULL) {
        errbuf_set(err, "lease %s was revoked while it was being issued",
                   lease_id);
        rc = COFFER_EPERM;
        goto out;
    }
    mount_resolve_ttl(m, ttl, max_ttl, &t, &max);
    issue = json_get_int(rec, "issue_ms", 0);
    lrec_set_str(rec, "state", "active");
    /* Renewals without an increment get the TTL the lease started with. */
    lrec_set_num(rec, "ttl", (double)t);
    lrec_set_num(rec, "max_ttl", (double)max);
    lrec_set_num(rec, "expire_ms", (double)(issue + t * 1000));
    lrec_set_bool(rec, "renewable", renewable);
    rc = lease__save_record(rec);
    if (rc != 0) {
        errbuf_set(err, "storing the lease failed: %s", coffer_strerror(rc));
        goto out;
    }
    pthread_mutex_lock(&lease__mu);
    if (pending_leases > 0)
        pending_leases--;
    pthread_mutex_unlock(&lease__mu);
    *granted = t;
    lease__schedule(lease_id, issue + t * 1000);
out:
    cJSON_Delete(loaded);
    pending_drop_copy(p);
    lease__unclaim(lease_id);
    return rc;
}

int lease_revoke(const char *lease_id, struct errbuf *err)
{
    cJSON *rec;
    int rc = 0;

    lease__claim(lease_id);
    rec = lease__load_record(lease_id);
    if (rec != NULL)
        rc = lease__revoke_record(rec, false, "revoked", err);
    cJSON_Delete(rec);
    lease__unclaim(lease_id);
    return rc;
}

void lease_abort(const char *lease_id)
{
    struct errbuf err;

    if (lease_revoke(lease_id, &err) != 0) {
        log_warn("lease: cleaning up failed issuance %s: %s; will retry",
                 lease_id, err.msg);
        lease__schedule(lease_id, time_unix_ms());
    }
}

/* =============================================== prefix, token, lookup == */

int lease_revoke_prefix(const char *prefix, bool force, struct errbuf *err)
{
    struct batch b = {.force = force};
    size_t n = strlen(LEASE_ID_PREFIX) + strlen(prefix) + 2;
    char *key = xmalloc(n);
    cJSON *exact = lease__load_record(prefix);
    int rc = 0;

    if (exact != NULL) {
        lease__enqueue_batch_job(&b, prefix);
    } else {
        snprintf(key, n, "%s%s%s", LEASE_ID_PREFIX, prefix,
                 prefix[0] == '\0' || str_has_suffix(prefix, "/") ? "" : "/");
        rc = walk_ids(key, lease__enqueue_batch_job, &b);
    }
    /* Wait for what was queued even if listing failed half-way. */
    pthread_mutex_lock(&lease__mu);
    while (b.pending > 0)
        pthread_cond_wait(&lease__batch_cond, &lease__mu);
    pthread_mutex_unlock(&lease__mu);
    cJSON_Delete(exact);
    free(key);
    if (rc != 0 && b.rc == 0) {
        b.rc = rc;
        errbuf_set(&b.first, "listing leases failed: %s", coffer_strerror(rc));
    }
    if (b.rc != 0)
        errbuf_set(err, "%s", b.first.msg);
    return b.rc;
}

/*
 * Asynchronous revocation: the lease is set to expire now, durably so that
 * a restart still revokes it, and handed to the expiration manager. With
 * unless_owner_alive, a lease whose token is alive is left alone (a
 * revoked token's leases: see owner_alive).
 */
static void expire_now(const char *id, const char *reason,
                       bool unless_owner_alive)
{
    cJSON *rec;

    lease__claim(id);
    rec = lease__load_record(id);
    if (rec != NULL && !(unless_owner_alive && owner_alive(rec))) {
        lrec_set_num(rec, "expire_ms", (double)time_unix_ms());
        /* Why it ends, for the revoked hook (audit) when a worker does it. */
        cJSON_DeleteItemFromObjectCaseSensitive(rec, "end_reason");
        cJSON_AddStringToObject(rec, "end_reason", reason);
        if (lease__save_record(rec) != 0)
            log_error("lease: cannot mark %s for revocation", id);
        lease__schedule(id, time_unix_ms());
    }
    cJSON_Delete(rec);
    lease__unclaim(id);
}

void lease_revoke_async(const char *lease_id)
{
    expire_now(lease_id, "revoked", false);
}

/* Token revocation does not wait for the engines: see expire_now. */
void lease_revoke_token(const char *token_hmac, const char *revoking_lease_id)
{
    size_t n = strlen(LEASE_TOKEN_PREFIX) + strlen(token_hmac) + 2;
    char *prefix = xmalloc(n);
    struct strvec keys;

    snprintf(prefix, n, "%s%s/", LEASE_TOKEN_PREFIX, token_hmac);
    strvec_init(&keys);
    if (storage_list(store, prefix, &keys) == 0) {
        for (size_t i = 0; i < keys.n; i++) {
            size_t kn = strlen(prefix) + strlen(keys.v[i]) + 1;
            char *k = xmalloc(kn);
            struct buf id;
            snprintf(k, kn, "%s%s", prefix, keys.v[i]);
            buf_init(&id, 4096);
            /*
             * The lease whose revocation revokes this token is claimed by
             * our caller already: waiting for that claim would deadlock,
             * and it is being revoked anyway.
             */
            if (storage_get(store, k, &id) == 0 &&
                (revoking_lease_id == NULL ||
                 strcmp(id.ptr, revoking_lease_id) != 0))
                expire_now(id.ptr, "token revoked", true);
            buf_release(&id);
            free(k);
        }
    }
    strvec_release(&keys);
    free(prefix);
}

struct count_run {
    const char *key;
    const char *value;
    size_t count;
};

static void count_one(void *arg, const char *id)
{
    struct count_run *run = arg;
    cJSON *rec = lease__load_record(id);
    const cJSON *internal = cJSON_GetObjectItemCaseSensitive(rec, "internal");

    if (strcmp(json_get_str(internal, run->key, ""), run->value) == 0)
        run->count++;
    cJSON_Delete(rec);
}

int lease_count_matching(const char *prefix, const char *key,
                         const char *value, size_t *count)
{
    struct count_run run = {key, value, 0};
    size_t n = strlen(LEASE_ID_PREFIX) + strlen(prefix) + 1;
    char *full = xmalloc(n);
    int rc;

    snprintf(full, n, "%s%s", LEASE_ID_PREFIX, prefix);
    rc = walk_ids(full, count_one, &run);
    free(full);
    *count = run.count;
    return rc;
}

struct values_run {
    const char *key;
    struct strvec *out;
};

/* storage_scan callback: internal[key] of one record, when a string. */
static int value_of_record(void *arg, const char *key, const void *value,
                           size_t len)
{
    struct values_run *run = arg;
    struct json_member internal = {.name = "internal"};
    struct json_member v = {.name = run->key};
    const char *stop, *why;
    size_t n;
    char *text;

    (void)key;
    if (!json_object_members(value, len, &internal, 1) ||
        internal.v == NULL || internal.v[0] != '{' ||
        !json_object_members(internal.v, (size_t)(internal.end - internal.v),
                             &v, 1) ||
        v.v == NULL || v.v[0] != '"')
        return 0;
    n = json_decode_string(v.v + 1, v.end, NULL, &stop, &why);
    if (n == SIZE_MAX)
        return 0;
    text = xmalloc(n + 1);
    (void)json_decode_string(v.v + 1, v.end, text, &stop, &why);
    text[n] = '\0';
    strvec_push(run->out, text);
    free(text);
    return 0;
}

int lease_collect_values(const char *prefix, const char *key,
                         struct strvec *out)
{
    struct values_run run = {key, out};
    size_t n = strlen(LEASE_ID_PREFIX) + strlen(prefix) + 1;
    char *full = xmalloc(n);
    int rc;

    snprintf(full, n, "%s%s", LEASE_ID_PREFIX, prefix);
    /* One paged pass over the records, the value read off each text: no
     * listing, no read and no tree per lease. */
    rc = storage_scan(store, full, value_of_record, &run);
    free(full);
    return rc;
}

/* ================================================================ tidy == */

struct tidy_counts {
    size_t dangling; /* index entries without a lease */
    size_t orphaned; /* leases whose token is gone */
};

/* Tidies the index of one token. */
static void tidy_token(const char *hmac, struct tidy_counts *n)
{
    size_t plen = strlen(LEASE_TOKEN_PREFIX) + strlen(hmac) + 2;
    char *prefix = xmalloc(plen);
    bool alive = token_alive(hmac, NULL);
    struct strvec keys;

    snprintf(prefix, plen, "%s%s/", LEASE_TOKEN_PREFIX, hmac);
    strvec_init(&keys);
    if (storage_list(store, prefix, &keys) == 0) {
        for (size_t i = 0; i < keys.n; i++) {
            size_t kn = plen + strlen(keys.v[i]);
            char *k = xmalloc(kn);
            struct buf id;
            cJSON *rec = NULL;
            snprintf(k, kn, "%s%s", prefix, keys.v[i]);
            buf_init(&id, 4096);
            if (storage_get(store, k, &id) == 0)
                rec = lease__load_record(id.ptr);
            if (rec == NULL) {
                storage_delete(store, k);
                n->dangling++;
            } else if (!alive || (json_get_str(rec, "token_accessor", "")[0] &&
                                  !owner_alive(rec))) {
                /* No token, or a newer one of the same id: this lease's
                 * own token is gone. */
                expire_now(id.ptr, "tidy: token gone", false);
                n->orphaned++;
            }
            cJSON_Delete(rec);
            buf_release(&id);
            free(k);
        }
    }
    strvec_release(&keys);
    free(prefix);
}

void lease_tick(void)
{
    struct tidy_counts n = {0, 0};
    struct strvec tokens;

    if (!atomic_exchange(&tidy_requested, false))
        return;
    strvec_init(&tokens);
    if (storage_list(store, LEASE_TOKEN_PREFIX, &tokens) == 0) {
        for (size_t i = 0; i < tokens.n; i++) {
            size_t len = strlen(tokens.v[i]);
            if (len > 0 && tokens.v[i][len - 1] == '/') {
                tokens.v[i][len - 1] = '\0';
                tidy_token(tokens.v[i], &n);
            }
        }
    }
    strvec_release(&tokens);
    log_info("lease: tidy removed %zu dangling index entries and queued %zu "
             "leases whose token no longer exists for revocation",
             n.dangling, n.orphaned);
}

void lease_get_stats(struct lease_stats *out)
{
    pthread_mutex_lock(&lease__mu);
    out->active = live_leases;
    out->pending = pending_leases;
    out->queued = lease__queued_locked();
    pthread_mutex_unlock(&lease__mu);
    out->created = atomic_load(&stat_created);
    pthread_mutex_lock(&timing_mu);
    out->revoke_time = revoke_timing;
    pthread_mutex_unlock(&timing_mu);
    out->revoked = atomic_load(&stat_revoked);
    out->failures = atomic_load(&lease__stat_failures);
    out->irrevocable = atomic_load(&lease__stat_irrevocable);
}

/* ====================================================== sys/leases views == */

cJSON *lease_lookup(const char *lease_id)
{
    cJSON *rec = lease__load_record(lease_id);
    cJSON *d = rec != NULL ? lrec_lookup_json(rec, time_unix_ms()) : NULL;

    cJSON_Delete(rec);
    return d;
}

int lease_list(const char *prefix, struct strvec *keys)
{
    size_t n = strlen(LEASE_ID_PREFIX) + strlen(prefix) + 1;
    char *key = xmalloc(n);
    int rc;

    snprintf(key, n, "%s%s", LEASE_ID_PREFIX, prefix);
    rc = storage_list(store, key, keys);
    free(key);
    return rc;
}

/* walk_ids callback: appends the lease to the array arg if irrevocable. */
static void collect_irrevocable(void *arg, const char *id)
{
    cJSON *out = arg;
    cJSON *rec = lease__load_record(id);
    cJSON *o;
    char when[64];

    if (rec != NULL &&
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "irrevocable"))) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "lease_id", id);
        cJSON_AddStringToObject(o, "mount_id", json_get_str(rec, "mount_uuid", ""));
        cJSON_AddStringToObject(o, "error", json_get_str(rec, "last_error", ""));
        lrec_format_ms(json_get_int(rec, "expire_ms", 0), when, sizeof(when));
        cJSON_AddStringToObject(o, "expire_time", when);
        cJSON_AddItemToArray(out, o);
    }
    cJSON_Delete(rec);
}

cJSON *lease_irrevocable(void)
{
    cJSON *list = cJSON_CreateArray();

    walk_ids(LEASE_ID_PREFIX, collect_irrevocable, list);
    return list;
}

void lease_request_tidy(void)
{
    atomic_store(&tidy_requested, true);
}

/* ============================================================= renewal == */

/* Checks that rec may be renewed; COFFER_EINVAL with Vault's words if not. */
static int renewable_now(const cJSON *rec, struct errbuf *err)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "irrevocable"))) {
        errbuf_set(err, "lease is expired and has failed previous "
                        "revocation attempts");
        return COFFER_EINVAL;
    }
    if (strcmp(json_get_str(rec, "state", ""), "active") != 0 ||
        json_get_int(rec, "expire_ms", 0) <= time_unix_ms()) {
        errbuf_set(err, "lease expired");
        return COFFER_EINVAL;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "renewable"))) {
        errbuf_set(err, "lease is not renewable");
        return COFFER_EINVAL;
    }
    return 0;
}

/*
 * The renewed TTL per Vault's rules: the increment (or the TTL the lease
 * was granted), capped so the lease never outlives issue + max_ttl.
 */
static int renew_ttl(const cJSON *rec, int64_t increment,
                     struct lease_renewal *out, struct errbuf *err)
{
    int64_t now = time_unix_ms(), ttl, limit;
    int64_t max = json_get_int(rec, "max_ttl", 0);

    ttl = increment > 0 ? increment : json_get_int(rec, "ttl", 0);
    limit = json_get_int(rec, "issue_ms", 0) + max * 1000;
    if (now >= limit) {
        errbuf_set(err, "past the max TTL, cannot renew");
        return COFFER_EINVAL;
    }
    out->max_ttl = max;
    out->capped_from = 0;
    if (now + ttl * 1000 > limit) {
        out->capped_from = ttl;
        ttl = (limit - now) / 1000;
    }
    out->ttl = ttl;
    return 0;
}

/* Renews rec through its engine and stores the new expiry. */
static int renew_record(cJSON *rec, int64_t increment,
                        struct lease_renewal *out, struct errbuf *err)
{
    const struct lease_ops *ops = lease__ops_for(rec);
    const struct mount *m = NULL;
    int64_t expire;
    char when[64];
    int rc;

    rc = renewable_now(rec, err);
    if (rc == 0)
        rc = renew_ttl(rec, increment, out, err);
    if (rc != 0)
        return rc;
    expire = time_unix_ms() + out->ttl * 1000;
    m = lease__mount(rec);
    if (m != NULL && ops != NULL && ops->renew != NULL &&
        ops->renew(m, rec, expire / 1000, err) != 0) {
        rc = COFFER_EIO;
        goto out;
    }
    lrec_format_ms(time_unix_ms(), when, sizeof(when));
    lrec_set_num(rec, "expire_ms", (double)expire);
    lrec_set_str(rec, "last_renewal", when);
    if (lease__save_record(rec) != 0) {
        errbuf_set(err, "saving the renewed lease failed");
        rc = COFFER_EINTERNAL;
    }
out:
    router_mount_put(m);
    return rc;
}

int lease_renew(const char *lease_id, int64_t increment,
                struct lease_renewal *out, struct errbuf *err)
{
    cJSON *rec;
    int rc;

    errbuf_clear(err);
    lease__claim(lease_id);
    rec = lease__load_record(lease_id);
    if (rec == NULL) {
        errbuf_set(err, "lease not found");
        rc = COFFER_ENOTFOUND;
    } else {
        rc = renew_record(rec, increment, out, err);
    }
    cJSON_Delete(rec);
    lease__unclaim(lease_id);
    return rc;
}
