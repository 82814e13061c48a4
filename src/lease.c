/*
 * lease.c - leases and the expiration manager (see lease.h for the
 * formats and the life of a lease).
 *
 * Threads:
 *   expirer    sleeps until the earliest expiry in the heap, then moves
 *              every due lease id to the work queue.
 *   workers    take ids from the queue and revoke them through lease_ops;
 *              bulk revocations (revoke-prefix) also fan out to them, so a
 *              prefix of thousands of leases is revoked in parallel.
 *
 * The heap is lazy: a renewal does not touch it. When an entry comes due
 * the worker re-reads the record and, if the lease was extended meanwhile,
 * puts it back with the new time. So there is one heap entry per lease,
 * and a lease revoked by hand leaves a stale entry that finds no record.
 *
 * `claims` holds the ids being revoked right now, so that a worker and an
 * API call never revoke the same lease at the same time.
 *
 * Lanes: at most half of the workers (at least one) revoke leases of one
 * mount at a time. A job whose mount is at that cap is parked in the
 * mount's lane, not in a worker, and goes back to the queue when one of
 * the mount's revocations finishes. Every database call has a deadline
 * (db_pg.c), so a stalled database holds at most its mount's share of the
 * workers for at most its timeouts, while token leases and other mounts
 * keep being revoked; the failures retry with backoff as usual. The
 * expirer thread itself never calls an engine.
 */
#include "lease.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "crypto.h"
#include "heap.h"
#include "json.h"
#include "json_write.h"
#include "lease_record.h"
#include "lease_standby.h"
#include "log.h"
#include "mount.h"
#include "router.h"
#include "storage.h"
#include "util.h"

/* The revocation workers' nice value by default (lower_priority). */
#define LEASE_WORKER_NICE 10
/* Workers at once on one mount's expiries while they come in batches. */
#define LEASE_BATCH_LANES 4

#define PENDING_GRACE_MS (5 * 60 * 1000)
/* Due leases of one mount a worker revokes with one revoke_batch call. */
#define DUE_BATCH_MAX 64

static struct storage *store;
static struct lease_config conf;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t heap_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t claim_cond = PTHREAD_COND_INITIALIZER;
static struct heap heap;
/*
 * Work for the revocation workers, FIFO. A job with a batch belongs to a
 * synchronous bulk revocation (revoke-prefix) whose caller waits for the
 * batch to drain; a job without one is an expired lease.
 */
struct batch {
    bool force;
    size_t pending;      /* jobs not yet finished; protected by mu */
    int rc;              /* first failure */
    struct errbuf first;
};

struct job {
    char *id;
    struct batch *batch;
};

static struct job *queue;
static size_t queue_n, queue_cap, queue_head;
static pthread_cond_t batch_cond = PTHREAD_COND_INITIALIZER;
static struct strvec claims;
static bool stopping;
static bool started;
static pthread_t expirer;
static pthread_t *workers;
static unsigned int nworkers;

/* One mount's revocations in progress and its parked jobs; under mu. */
struct lane {
    char *key;           /* mount uuid; "" for ids matching no mount */
    unsigned int busy;
    bool solo;           /* its leases cannot be batched: take one a time */
    struct job *parked;  /* FIFO: [head, nparked) are waiting */
    size_t head, nparked, cap;
};

static struct lane *lanes;
static size_t nlanes, lanes_cap;
static unsigned int lane_limit;

/*
 * Lease records in storage, and how many of them are pending, kept under
 * mu. A record is counted when store_new_record stores it (a fresh id)
 * and uncounted when drop_record deletes it, which happens only under the
 * lease's claim right after loading it, so a record is never uncounted
 * twice and these are exact. (The heap is not a count: it keeps stale
 * entries for renewed and revoked leases.)
 */
static uint64_t live_leases;
static uint64_t pending_leases;

/* Time the engines' revoke calls take (Vault's expire.revoke timer). */
static pthread_mutex_t timing_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lease_timing revoke_timing;

static atomic_uint_fast64_t stat_created;
static atomic_uint_fast64_t stat_revoked;
static atomic_uint_fast64_t stat_failures;
static atomic_uint_fast64_t stat_irrevocable;
static atomic_bool tidy_requested;

/* ============================================================ helpers == */

/*
 * True when token_hmac names a live token, and when accessor is set the
 * one with that accessor (lease_config.token_alive).
 */
static bool token_alive(const char *token_hmac, const char *accessor)
{
    return conf.token_alive == NULL ||
           conf.token_alive(token_hmac,
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
static cJSON *load_record(const char *id)
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

static int save_record(const cJSON *rec)
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
    pthread_mutex_lock(&mu);
    live_leases++;
    if (lrec_is_pending(rec))
        pending_leases++;
    pthread_mutex_unlock(&mu);
    atomic_fetch_add(&stat_created, 1);
}

/* Records deleted from storage: uncount them. */
static void uncount_records(const cJSON *const *recs, size_t n)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n; i++) {
        if (live_leases > 0)
            live_leases--;
        if (lrec_is_pending(recs[i]) && pending_leases > 0)
            pending_leases--;
    }
    pthread_mutex_unlock(&mu);
}

/*
 * Deletes rec, which the caller loaded under the lease's claim (so it
 * existed and nobody else can delete it meanwhile), and uncounts it.
 */
static int drop_record(const cJSON *rec)
{
    int rc = delete_record(rec);

    if (rc == 0)
        uncount_records(&rec, 1);
    return rc;
}

/*
 * drop_record for n records at once: every record and token index entry
 * goes in ONE storage batch (one commit, one fsync), all or nothing.
 */
static int drop_records(const cJSON *const *recs, size_t n)
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

static void note_revoke_time(double ms)
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
static const struct lease_ops *ops_for(const cJSON *rec)
{
    if (conf.token_ops != NULL &&
        strcmp(json_get_str(rec, "secret_type", ""), "token") == 0)
        return conf.token_ops;
    return conf.ops;
}

/* The mount that issued the lease, if it is still the same mount. */
static const struct mount *lease_mount(const cJSON *rec)
{
    const struct mount *m = router_match(json_get_str(rec, "path", ""));

    if (m != NULL && strcmp(m->uuid, json_get_str(rec, "mount_uuid", "")) != 0) {
        router_mount_put(m);
        m = NULL;
    }
    return m;
}

/* =============================================================== claims == */

/* Waits until nobody else is revoking id, then marks it as ours. */
static void claim(const char *id)
{
    pthread_mutex_lock(&mu);
    while (strvec_contains(&claims, id))
        pthread_cond_wait(&claim_cond, &mu);
    strvec_push(&claims, id);
    pthread_mutex_unlock(&mu);
}

/* claim without waiting: false when someone else is revoking id. */
static bool try_claim(const char *id)
{
    bool free_now;

    pthread_mutex_lock(&mu);
    free_now = !strvec_contains(&claims, id);
    if (free_now)
        strvec_push(&claims, id);
    pthread_mutex_unlock(&mu);
    return free_now;
}

static void unclaim(const char *id)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < claims.n; i++) {
        if (strcmp(claims.v[i], id) == 0) {
            free(claims.v[i]);
            claims.v[i] = claims.v[--claims.n];
            break;
        }
    }
    pthread_cond_broadcast(&claim_cond);
    pthread_mutex_unlock(&mu);
}

static void schedule(const char *id, int64_t when)
{
    pthread_mutex_lock(&mu);
    heap_push(&heap, when, xstrdup(id));
    pthread_cond_signal(&heap_cond);
    pthread_mutex_unlock(&mu);
}

/* ========================================================== revocation == */

/* rec's revocation succeeded and its record is gone: count and audit it. */
static void note_revoked(const cJSON *rec, const char *reason)
{
    const char *id = json_get_str(rec, "id", "");

    atomic_fetch_add(&stat_revoked, 1);
    if (conf.revoked != NULL)
        conf.revoked(id, reason,
                     cJSON_GetObjectItemCaseSensitive(rec, "internal"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "irrevocable")))
        atomic_fetch_sub(&stat_irrevocable, 1);
    log_info("lease: revoked %s", id);
}

/*
 * Runs the engine's revoke for rec and, on success (or with force),
 * deletes the record. A lease whose mount is gone has nothing left to
 * call; its record is dropped with a warning. reason ("expired",
 * "revoked", "revoke-prefix", "revoke-force") goes to the revoked hook
 * (the audit log), which records every lease that ends, request or not.
 */
static int revoke_record(const cJSON *rec, bool force, const char *reason,
                         struct errbuf *err)
{
    const struct mount *m = lease_mount(rec);
    const struct lease_ops *ops = ops_for(rec);
    const char *id = json_get_str(rec, "id", "");
    int rc = 0;

    errbuf_clear(err);
    if (m == NULL) {
        log_warn("lease: %s belongs to a mount that no longer exists; "
                 "dropping its record", id);
    } else if (ops != NULL && ops->revoke != NULL) {
        /*
         * Claim held: a token lease's revoke comes back through
         * lease_revoke_token with this id as revoking_lease_id.
         */
        double t0 = time_mono();
        rc = ops->revoke(m, rec, err);
        note_revoke_time((time_mono() - t0) * 1000.0);
    }
    router_mount_put(m);
    if (rc != 0) /* every failed engine call, on any path */
        atomic_fetch_add(&stat_failures, 1);
    if (rc != 0 && !force)
        return rc;
    if (rc != 0)
        log_warn("lease: force-revoking %s despite: %s", id, err->msg);
    rc = drop_record(rec);
    if (rc != 0) {
        atomic_fetch_add(&stat_failures, 1);
        errbuf_set(err, "deleting the lease record failed: %s",
                   coffer_strerror(rc));
        return rc;
    }
    note_revoked(rec, reason);
    return 0;
}

static double backoff_seconds(int attempts)
{
    double d = conf.retry_base * pow(2.0, attempts > 30 ? 30 : attempts - 1);
    unsigned char r;

    if (d > conf.retry_max)
        d = conf.retry_max;
    /* +-25 % jitter so a fleet of failures does not retry in lock step. */
    if (crypto_random(&r, 1) == 0)
        d *= 0.75 + (double)r / 510.0;
    return d;
}

/* Records a failed attempt and schedules the next one. */
static void note_failure(cJSON *rec, const char *why)
{
    int attempts = (int)json_get_int(rec, "attempts", 0) + 1;
    double delay = backoff_seconds(attempts);
    const char *id = json_get_str(rec, "id", "");

    lrec_set_num(rec, "attempts", attempts);
    lrec_set_str(rec, "last_error", why);
    if (attempts == conf.irrevocable_after)
        atomic_fetch_add(&stat_irrevocable, 1);
    if (attempts >= conf.irrevocable_after)
        lrec_set_bool(rec, "irrevocable", true);
    if (save_record(rec) != 0)
        log_error("lease: saving the failure of %s failed", id);
    log_warn("lease: revoking %s failed (attempt %d, next in %.1fs): %s", id,
             attempts, delay, why);
    schedule(id, time_unix_ms() + (int64_t)(delay * 1000));
}

/*
 * The record of a due id, claimed by the caller, if it is still due; a
 * lease renewed since it was queued goes back to the heap (NULL).
 */
static cJSON *load_due(const char *id)
{
    cJSON *rec = load_record(id);
    int64_t expire;

    if (rec == NULL)
        return NULL;
    expire = json_get_int(rec, "expire_ms", 0);
    if (strcmp(json_get_str(rec, "state", ""), "active") == 0 &&
        expire > time_unix_ms()) {
        schedule(id, expire);
        cJSON_Delete(rec);
        return NULL;
    }
    return rec;
}

/* Revokes a due rec on its own (claimed by the caller). */
static void revoke_due(cJSON *rec)
{
    struct errbuf err;

    if (revoke_record(rec, false,
                      json_get_str(rec, "end_reason", "expired"), &err) != 0)
        note_failure(rec, err.msg[0] ? err.msg : "revocation failed");
}

/* What a worker does with a due id. */
static void process_due(const char *id)
{
    cJSON *rec;

    claim(id);
    rec = load_due(id);
    if (rec != NULL)
        revoke_due(rec);
    cJSON_Delete(rec);
    unclaim(id);
}

/*
 * Whether rec can be revoked in a batch on mount m: an engine lease
 * (token leases go to token.c one by one) of m itself whose engine can
 * batch, and which has not failed before: a lease that failed is
 * retried on its own, so that one bad lease cannot keep failing the
 * leases that happen to share its batch.
 */
static bool batchable(const cJSON *rec, const struct mount *m)
{
    return m != NULL && ops_for(rec) == conf.ops && conf.ops != NULL &&
           conf.ops->revoke_batch != NULL &&
           json_get_int(rec, "attempts", 0) == 0 &&
           strcmp(json_get_str(rec, "mount_uuid", ""), m->uuid) == 0;
}

/*
 * Revokes n due leases of mount m (claimed by the caller) with one
 * engine call, then deletes the records of those the engine revoked with
 * one storage batch. A record goes only after its lease's revocation
 * succeeded; a crash in between leaves records whose (idempotent)
 * revocation runs again at restart. Failures retry with backoff, each
 * lease on its own. Returns false when the engine turned the batch down
 * (no revoke_batch for these leases): they were revoked one by one.
 */
static bool revoke_due_batch(const struct mount *m, cJSON **recs, size_t n)
{
    int rcs[DUE_BATCH_MAX];
    const cJSON *done[DUE_BATCH_MAX];
    struct errbuf *errs = xcalloc(n, sizeof(*errs));
    struct errbuf why;
    size_t ndone = 0;
    double t0 = time_mono(), each;
    int rc;

    for (size_t i = 0; i < n; i++)
        rcs[i] = COFFER_EINTERNAL;
    if (conf.ops->revoke_batch(m, (const cJSON *const *)recs, n, rcs,
                               errs) == COFFER_EUNSUPPORTED) {
        for (size_t i = 0; i < n; i++)
            revoke_due(recs[i]);
        free(errs);
        return false;
    }
    each = (time_mono() - t0) * 1000.0 / (double)n;
    for (size_t i = 0; i < n; i++) {
        note_revoke_time(each);
        if (rcs[i] == 0) {
            done[ndone++] = recs[i];
            continue;
        }
        atomic_fetch_add(&stat_failures, 1);
        note_failure(recs[i], errs[i].msg[0] ? errs[i].msg
                                             : "revocation failed");
    }
    rc = ndone > 0 ? drop_records(done, ndone) : 0;
    errbuf_set(&why, "deleting the lease record failed: %s",
               coffer_strerror(rc));
    for (size_t i = 0; i < ndone; i++) {
        cJSON *rec = (cJSON *)done[i];
        if (rc == 0) {
            note_revoked(rec, json_get_str(rec, "end_reason", "expired"));
            continue;
        }
        atomic_fetch_add(&stat_failures, 1);
        note_failure(rec, why.msg);
    }
    free(errs);
    return true;
}

static void lane_go_solo(const char *key, char *const *ids, size_t n);

/*
 * What a worker does with due ids of one lane (ids[0] its own job, the
 * rest taken from the lane's parked jobs). Leases that can go together
 * (batchable) are revoked by one revoke_batch; the others as process_due
 * does. An id someone else holds (an API revocation, a duplicate heap
 * entry in another worker's batch) is done after ours are released,
 * waiting for its claim as process_due does: waiting while holding
 * claims could deadlock two batches. When the lane's leases turn out not
 * to batch (a token lease first, an engine without revoke_batch), the
 * lane goes solo: untouched ids go back to it for other workers and
 * *nids shrinks to what this worker kept (and frees).
 */
static void process_due_many(const char *key, char **ids, size_t *nids)
{
    cJSON *recs[DUE_BATCH_MAX], *group[DUE_BATCH_MAX];
    const char *claimed[DUE_BATCH_MAX], *later[DUE_BATCH_MAX];
    size_t nrecs = 0, ngroup = 0, nclaimed = 0, nlater = 0, n = *nids;
    const struct mount *m = NULL;

    for (size_t i = 0; i < n; i++) {
        cJSON *rec;
        if (!try_claim(ids[i])) {
            later[nlater++] = ids[i];
            continue;
        }
        claimed[nclaimed++] = ids[i];
        rec = load_due(ids[i]);
        if (rec == NULL)
            continue;
        recs[nrecs++] = rec;
        if (m == NULL)
            m = lease_mount(rec);
        if (batchable(rec, m)) {
            group[ngroup++] = rec;
        } else if (nrecs == 1 && ops_for(rec) != conf.ops && i + 1 < n) {
            /* A token lease: the rest go back for other workers. */
            lane_go_solo(key, ids + i + 1, n - i - 1);
            *nids = n = i + 1;
            revoke_due(rec);
        } else {
            revoke_due(rec);
        }
    }
    if (ngroup == 1)
        revoke_due(group[0]);
    else if (ngroup > 1 && !revoke_due_batch(m, group, ngroup))
        lane_go_solo(key, NULL, 0);
    router_mount_put(m);
    for (size_t i = 0; i < nrecs; i++)
        cJSON_Delete(recs[i]);
    for (size_t i = 0; i < nclaimed; i++)
        unclaim(claimed[i]);
    for (size_t i = 0; i < nlater; i++)
        process_due(later[i]);
}

/* Caller holds mu. Takes ownership of id. */
static void enqueue_locked(char *id, struct batch *b)
{
    if (queue_n == queue_cap) {
        queue_cap = queue_cap == 0 ? 64 : queue_cap * 2;
        queue = xrealloc(queue, queue_cap * sizeof(*queue));
    }
    queue[queue_n].id = id;
    queue[queue_n].batch = b;
    queue_n++;
    pthread_cond_signal(&queue_cond);
}

/* A bulk job: revoke now whatever the expiry, and report to the batch. */
static void process_batch_job(const char *id, struct batch *b)
{
    struct errbuf err;
    cJSON *rec;
    int rc = 0;

    claim(id);
    rec = load_record(id);
    if (rec != NULL)
        rc = revoke_record(rec, b->force,
                           b->force ? "revoke-force" : "revoke-prefix", &err);
    cJSON_Delete(rec);
    unclaim(id);
    pthread_mutex_lock(&mu);
    if (rc != 0 && b->rc == 0) {
        b->rc = rc;
        errbuf_set(&b->first, "failed to revoke %s: %s", id, err.msg);
    }
    b->pending--;
    pthread_cond_broadcast(&batch_cond);
    pthread_mutex_unlock(&mu);
}

/* ============================================================= lanes == */

/* The lane key of a lease id: the uuid of the mount it belongs to. */
static char *lane_key_of(const char *id)
{
    const struct mount *m = router_match(id);
    char *key = xstrdup(m != NULL ? m->uuid : "");

    router_mount_put(m);
    return key;
}

/* Finds or adds the lane of key. Caller holds mu. */
static struct lane *lane_get_locked(const char *key)
{
    for (size_t i = 0; i < nlanes; i++) {
        if (strcmp(lanes[i].key, key) == 0)
            return &lanes[i];
    }
    if (nlanes == lanes_cap) {
        lanes_cap = lanes_cap == 0 ? 8 : lanes_cap * 2;
        lanes = xrealloc(lanes, lanes_cap * sizeof(*lanes));
    }
    memset(&lanes[nlanes], 0, sizeof(lanes[nlanes]));
    lanes[nlanes].key = xstrdup(key);
    return &lanes[nlanes++];
}

/* Drops an idle, empty lane (mounts come and go). Caller holds mu. */
static void lane_drop_if_idle_locked(struct lane *l)
{
    if (l->busy > 0 || l->head < l->nparked)
        return;
    free(l->key);
    free(l->parked);
    *l = lanes[--nlanes];
}

static void lane_park_locked(struct lane *l, struct job job)
{
    if (l->head > 0 && l->nparked == l->cap) {
        memmove(l->parked, l->parked + l->head,
                (l->nparked - l->head) * sizeof(*l->parked));
        l->nparked -= l->head;
        l->head = 0;
    }
    if (l->nparked == l->cap) {
        l->cap = l->cap == 0 ? 16 : l->cap * 2;
        l->parked = xrealloc(l->parked, l->cap * sizeof(*l->parked));
    }
    l->parked[l->nparked++] = job;
}

/*
 * Takes a lane slot for job, or parks the job. Returns true when the
 * caller should run it. Caller holds mu.
 */
static bool lane_enter_locked(const char *key, struct job job)
{
    struct lane *l = lane_get_locked(key);
    unsigned int limit = lane_limit;

    /* Expiries of a lane that batches: few workers with big batches
     * take the database's CPU in a few transactions at a time, which
     * leaves the machine to the requests served meanwhile. */
    if (job.batch == NULL && !l->solo && limit > LEASE_BATCH_LANES)
        limit = LEASE_BATCH_LANES;
    if (l->busy >= limit) {
        lane_park_locked(l, job);
        return false;
    }
    l->busy++;
    return true;
}

/* Frees the slot and sends the lane's oldest parked job back to the queue. */
static void lane_leave_locked(const char *key)
{
    struct lane *l = lane_get_locked(key);
    struct job next;

    COFFER_ASSERT(l->busy > 0);
    l->busy--;
    if (l->head < l->nparked) {
        next = l->parked[l->head++];
        if (l->head == l->nparked)
            l->head = l->nparked = 0;
        enqueue_locked(next.id, next.batch);
    }
    lane_drop_if_idle_locked(l);
}

/*
 * Moves up to max of the expiry jobs parked at the head of key's lane
 * into ids (the caller owns them now), so that one worker revokes them
 * together. Bulk jobs (revoke-prefix) stay: their caller counts them one
 * by one. Caller holds mu.
 */
static size_t lane_take_due_locked(const char *key, char **ids, size_t max)
{
    struct lane *l = lane_get_locked(key);
    size_t n = 0;

    if (l->solo)
        return 0;
    while (n < max && l->head < l->nparked &&
           l->parked[l->head].batch == NULL)
        ids[n++] = l->parked[l->head++].id;
    if (l->head == l->nparked)
        l->head = l->nparked = 0;
    return n;
}

/*
 * key's leases cannot be revoked in batches (token leases, an engine
 * without revoke_batch): mark its lane so that workers take its jobs one
 * at a time, in parallel, and park ids (taken for a batch, untouched)
 * again, handing as many to the queue as the lane has free slots.
 */
static void lane_go_solo(const char *key, char *const *ids, size_t n)
{
    struct lane *l;
    struct job next;

    pthread_mutex_lock(&mu);
    l = lane_get_locked(key);
    l->solo = true;
    for (size_t i = 0; i < n; i++)
        lane_park_locked(l, (struct job){ids[i], NULL});
    for (unsigned int b = l->busy; b < lane_limit && l->head < l->nparked;
         b++) {
        next = l->parked[l->head++];
        enqueue_locked(next.id, next.batch);
    }
    if (l->head == l->nparked)
        l->head = l->nparked = 0;
    pthread_mutex_unlock(&mu);
}

static void lanes_release(void)
{
    for (size_t i = 0; i < nlanes; i++) {
        for (size_t j = lanes[i].head; j < lanes[i].nparked; j++)
            free(lanes[i].parked[j].id);
        free(lanes[i].parked);
        free(lanes[i].key);
    }
    free(lanes);
    lanes = NULL;
    nlanes = lanes_cap = 0;
}

static atomic_int worker_nice = LEASE_WORKER_NICE;

void lease_set_worker_nice(int nice)
{
    atomic_store(&worker_nice, nice);
}

/*
 * Revocation is background work: its workers run at a lower priority
 * than the threads that answer requests, so a mass expiry takes the CPU
 * that reads leave over instead of queueing them. On Linux the nice
 * value is per thread; elsewhere this does nothing.
 */
static void lower_priority(void)
{
#ifdef __linux__
    id_t tid = (id_t)syscall(SYS_gettid);
    int steps = atomic_load(&worker_nice), cur;

    /* Counted from the nice value the process runs at, so the workers
     * stay below its request threads under `nice` too; 19 at most. */
    errno = 0;
    cur = getpriority(PRIO_PROCESS, tid);
    if (steps > 0 && errno == 0 &&
        setpriority(PRIO_PROCESS, tid, cur + steps > 19 ? 19 : cur + steps)
            != 0)
        log_debug("lease: cannot lower the revocation workers' priority");
#endif
}

static void *worker_main(void *arg)
{
    struct job job;
    char *ids[DUE_BATCH_MAX];
    size_t n;
    char *key;

    (void)arg;
    lower_priority();
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!stopping && queue_head == queue_n)
            pthread_cond_wait(&queue_cond, &mu);
        if (stopping)
            break;
        job = queue[queue_head++];
        if (queue_head == queue_n) {
            queue_n = 0;
            queue_head = 0;
        }
        pthread_mutex_unlock(&mu);
        key = lane_key_of(job.id); /* the router has its own locks */
        pthread_mutex_lock(&mu);
        if (!lane_enter_locked(key, job)) {
            free(key);
            continue; /* parked: it comes back when a slot frees */
        }
        ids[0] = job.id;
        n = 1;
        if (job.batch == NULL)
            n += lane_take_due_locked(key, ids + 1, DUE_BATCH_MAX - 1);
        pthread_mutex_unlock(&mu);
        if (job.batch != NULL)
            process_batch_job(job.id, job.batch);
        else
            process_due_many(key, ids, &n);
        for (size_t i = 0; i < n; i++)
            free(ids[i]);
        pthread_mutex_lock(&mu);
        lane_leave_locked(key);
        free(key);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *expirer_main(void *arg)
{
    const struct heap_entry *top;
    struct timespec until;
    int64_t now;

    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        top = heap_peek(&heap);
        now = time_unix_ms();
        if (top == NULL) {
            pthread_cond_wait(&heap_cond, &mu);
        } else if (top->when > now) {
            until.tv_sec = (time_t)(top->when / 1000);
            until.tv_nsec = (long)(top->when % 1000) * 1000000;
            pthread_cond_timedwait(&heap_cond, &mu, &until);
        } else {
            enqueue_locked(heap_pop(&heap, NULL), NULL);
        }
    }
    pthread_mutex_unlock(&mu);
    return NULL;
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
    pthread_mutex_lock(&mu);
    lease_restore_record(&heap, key + strlen(LEASE_ID_PREFIX), value, len,
                         time_unix_ms(), &c);
    live_leases += c.live;
    pending_leases += c.pending;
    pthread_cond_signal(&heap_cond);
    pthread_mutex_unlock(&mu);
    atomic_fetch_add(&stat_irrevocable, c.irrevocable);
    return 0;
}

static void schedule_running(void *arg, const char *id, int64_t when)
{
    (void)arg;
    schedule(id, when);
}

int lease_init(struct storage *s, const struct lease_config *cfg,
               struct errbuf *err)
{
    struct lease_counts c = {0, 0, 0};
    bool reconcile = false;
    int rc;

    store = s;
    conf = *cfg;
    /*
     * 16: one mount's half (8) keeps as many revocations in flight as the
     * 8 connections that reach PostgreSQL's DROP ROLE rate; each one waits
     * mostly on a round trip and a commit, which concurrent ones share.
     * 3,000 leases due at once under KV load, dev server: 880/s with 4
     * in flight, 1,495/s with 8 (one run each on a noisy 2-core machine).
     */
    if (conf.workers == 0)
        conf.workers = 16;
    if (conf.retry_base <= 0)
        conf.retry_base = 1;
    if (conf.retry_max <= 0)
        conf.retry_max = 60;
    if (conf.irrevocable_after <= 0)
        conf.irrevocable_after = 6;
    lane_limit = conf.workers / 2 > 0 ? conf.workers / 2 : 1;
    heap_init(&heap);
    strvec_init(&claims);
    stopping = false;
    rc = lease_restore_heap(store, LEASE_ID_PREFIX, &heap, &c, &reconcile, err);
    if (rc != 0)
        return rc;
    live_leases = c.live;
    pending_leases = c.pending;
    atomic_store(&stat_irrevocable, c.irrevocable);
    workers = xcalloc(conf.workers, sizeof(*workers));
    for (nworkers = 0; nworkers < conf.workers; nworkers++) {
        if (pthread_create(&workers[nworkers], NULL, worker_main, NULL) != 0)
            break;
    }
    if (nworkers == 0 ||
        pthread_create(&expirer, NULL, expirer_main, NULL) != 0) {
        errbuf_set(err, "cannot start the expiration manager threads");
        return COFFER_EINTERNAL;
    }
    started = true;
    log_info("lease: expirations running");
    if (reconcile)
        lease_standby_reconcile_start(store, LEASE_ID_PREFIX, restore_running,
                                      schedule_running, NULL);
    return 0;
}

void lease_shutdown(void)
{
    lease_standby_reconcile_stop(); /* it pushes onto the heap */
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&heap_cond);
    pthread_cond_broadcast(&queue_cond);
    pthread_mutex_unlock(&mu);
    if (started)
        pthread_join(expirer, NULL);
    for (unsigned int i = 0; i < nworkers; i++)
        pthread_join(workers[i], NULL);
    free(workers);
    workers = NULL;
    nworkers = 0;
    started = false;
    heap_release(&heap);
    for (size_t i = queue_head; i < queue_n; i++)
        free(queue[i].id);
    free(queue);
    queue = NULL;
    queue_n = queue_cap = queue_head = 0;
    lanes_release();
    strvec_release(&claims);
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

    claim(id);
    rec = load_record(id);
    if (rec != NULL && drop_record(rec) != 0)
        log_error("lease: cannot drop %s of a revoked token", id);
    cJSON_Delete(rec);
    unclaim(id);
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
    claim(id);
    prev = load_record(id);
    if (prev != NULL && drop_record(prev) == 0)
        note_revoked(prev, "token revoked");
    cJSON_Delete(prev);
    rc = store_new_record(rec, NULL, NULL, err);
    if (rc == 0)
        schedule(id, spec.expire_ms);
    unclaim(id);
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

    claim(lease_id);
    rec = load_record(lease_id);
    /* Another token's, re-created with this one's id since: not ours. */
    if (rec != NULL && accessor != NULL &&
        strcmp(json_get_str(rec, "token_accessor", accessor), accessor) != 0)
        rc = COFFER_ENOTFOUND;
    else if (rec != NULL) {
        lrec_format_ms(time_unix_ms(), when, sizeof(when));
        lrec_set_num(rec, "expire_ms", (double)expire_unix * 1000);
        lrec_set_num(rec, "ttl", (double)ttl);
        lrec_set_str(rec, "last_renewal", when);
        rc = save_record(rec);
        if (rc == 0)
            schedule(lease_id, expire_unix * 1000);
    }
    cJSON_Delete(rec);
    unclaim(lease_id);
    return rc;
}

/*
 * p's record as storage holds it now (the caller holds the claim): p's
 * own copy while the stored text is byte for byte the one p stored, so
 * nothing changed it since; else what is stored, parsed into *loaded for
 * the caller to free, exactly what load_record gives (NULL when gone).
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
    claim(lease_id);
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
    rc = save_record(rec);
    if (rc != 0) {
        errbuf_set(err, "storing the lease failed: %s", coffer_strerror(rc));
        goto out;
    }
    pthread_mutex_lock(&mu);
    if (pending_leases > 0)
        pending_leases--;
    pthread_mutex_unlock(&mu);
    *granted = t;
    schedule(lease_id, issue + t * 1000);
out:
    cJSON_Delete(loaded);
    pending_drop_copy(p);
    unclaim(lease_id);
    return rc;
}

int lease_revoke(const char *lease_id, struct errbuf *err)
{
    cJSON *rec;
    int rc = 0;

    claim(lease_id);
    rec = load_record(lease_id);
    if (rec != NULL)
        rc = revoke_record(rec, false, "revoked", err);
    cJSON_Delete(rec);
    unclaim(lease_id);
    return rc;
}

void lease_abort(const char *lease_id)
{
    struct errbuf err;

    if (lease_revoke(lease_id, &err) != 0) {
        log_warn("lease: cleaning up failed issuance %s: %s; will retry",
                 lease_id, err.msg);
        schedule(lease_id, time_unix_ms());
    }
}

/* =============================================== prefix, token, lookup == */

/* walk_ids callback: hands one lease of a bulk revocation to the workers. */
static void enqueue_batch_job(void *arg, const char *id)
{
    struct batch *b = arg;

    pthread_mutex_lock(&mu);
    b->pending++;
    enqueue_locked(xstrdup(id), b);
    pthread_mutex_unlock(&mu);
}

int lease_revoke_prefix(const char *prefix, bool force, struct errbuf *err)
{
    struct batch b = {.force = force};
    size_t n = strlen(LEASE_ID_PREFIX) + strlen(prefix) + 2;
    char *key = xmalloc(n);
    cJSON *exact = load_record(prefix);
    int rc = 0;

    if (exact != NULL) {
        enqueue_batch_job(&b, prefix);
    } else {
        snprintf(key, n, "%s%s%s", LEASE_ID_PREFIX, prefix,
                 prefix[0] == '\0' || str_has_suffix(prefix, "/") ? "" : "/");
        rc = walk_ids(key, enqueue_batch_job, &b);
    }
    /* Wait for what was queued even if listing failed half-way. */
    pthread_mutex_lock(&mu);
    while (b.pending > 0)
        pthread_cond_wait(&batch_cond, &mu);
    pthread_mutex_unlock(&mu);
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

    claim(id);
    rec = load_record(id);
    if (rec != NULL && !(unless_owner_alive && owner_alive(rec))) {
        lrec_set_num(rec, "expire_ms", (double)time_unix_ms());
        /* Why it ends, for the revoked hook (audit) when a worker does it. */
        cJSON_DeleteItemFromObjectCaseSensitive(rec, "end_reason");
        cJSON_AddStringToObject(rec, "end_reason", reason);
        if (save_record(rec) != 0)
            log_error("lease: cannot mark %s for revocation", id);
        schedule(id, time_unix_ms());
    }
    cJSON_Delete(rec);
    unclaim(id);
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
    cJSON *rec = load_record(id);
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
                rec = load_record(id.ptr);
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
    pthread_mutex_lock(&mu);
    out->active = live_leases;
    out->pending = pending_leases;
    out->queued = queue_n - queue_head;
    for (size_t i = 0; i < nlanes; i++)
        out->queued += lanes[i].nparked - lanes[i].head;
    pthread_mutex_unlock(&mu);
    out->created = atomic_load(&stat_created);
    pthread_mutex_lock(&timing_mu);
    out->revoke_time = revoke_timing;
    pthread_mutex_unlock(&timing_mu);
    out->revoked = atomic_load(&stat_revoked);
    out->failures = atomic_load(&stat_failures);
    out->irrevocable = atomic_load(&stat_irrevocable);
}

/* ====================================================== sys/leases views == */

cJSON *lease_lookup(const char *lease_id)
{
    cJSON *rec = load_record(lease_id);
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
    cJSON *rec = load_record(id);
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
    const struct lease_ops *ops = ops_for(rec);
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
    m = lease_mount(rec);
    if (m != NULL && ops != NULL && ops->renew != NULL &&
        ops->renew(m, rec, expire / 1000, err) != 0) {
        rc = COFFER_EIO;
        goto out;
    }
    lrec_format_ms(time_unix_ms(), when, sizeof(when));
    lrec_set_num(rec, "expire_ms", (double)expire);
    lrec_set_str(rec, "last_renewal", when);
    if (save_record(rec) != 0) {
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
    claim(lease_id);
    rec = load_record(lease_id);
    if (rec == NULL) {
        errbuf_set(err, "lease not found");
        rc = COFFER_ENOTFOUND;
    } else {
        rc = renew_record(rec, increment, out, err);
    }
    cJSON_Delete(rec);
    unclaim(lease_id);
    return rc;
}
