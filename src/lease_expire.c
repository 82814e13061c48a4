/*
 * lease_expire.c - the expiration manager: it revokes leases when they
 * come due, retries failed revocations with backoff, and runs the bulk
 * revocations (revoke-prefix) of lease.c on the same workers. lease.c
 * owns the records, their counts and the API, and reaches this file
 * through lease_internal.h.
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
#include "lease_internal.h"
#include "lease_record.h"
#include "lease_standby.h"
#include "log.h"
#include "mount.h"
#include "router.h"
#include "util.h"

/* The revocation workers' nice value by default (lower_priority). */
#define LEASE_WORKER_NICE 10
/* Workers at once on one mount's expiries while they come in batches. */
#define LEASE_BATCH_LANES 4
/* Due leases of one mount a worker revokes with one revoke_batch call. */
#define DUE_BATCH_MAX 64

static pthread_cond_t heap_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t claim_cond = PTHREAD_COND_INITIALIZER;
static struct heap heap;
/*
 * Work for the revocation workers, FIFO. A job with a batch belongs to a
 * synchronous bulk revocation (revoke-prefix) whose caller waits for the
 * batch to drain; a job without one is an expired lease.
 */
struct job {
    char *id;
    struct batch *batch;
};

static struct job *queue;
static size_t queue_n, queue_cap, queue_head;
pthread_cond_t lease__batch_cond = PTHREAD_COND_INITIALIZER;
static struct strvec claims;
static bool stopping;
static bool started;
static pthread_t expirer;
static pthread_t *workers;
static unsigned int nworkers;

/*
 * One mount's revocations in progress and its parked jobs; under
 * lease__mu.
 */
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

/* =============================================================== claims == */

/* Waits until nobody else is revoking id, then marks it as ours. */
void lease__claim(const char *id)
{
    pthread_mutex_lock(&lease__mu);
    while (strvec_contains(&claims, id))
        pthread_cond_wait(&claim_cond, &lease__mu);
    strvec_push(&claims, id);
    pthread_mutex_unlock(&lease__mu);
}

/* lease__claim without waiting: false when someone else is revoking id. */
static bool try_claim(const char *id)
{
    bool free_now;

    pthread_mutex_lock(&lease__mu);
    free_now = !strvec_contains(&claims, id);
    if (free_now)
        strvec_push(&claims, id);
    pthread_mutex_unlock(&lease__mu);
    return free_now;
}

void lease__unclaim(const char *id)
{
    pthread_mutex_lock(&lease__mu);
    for (size_t i = 0; i < claims.n; i++) {
        if (strcmp(claims.v[i], id) == 0) {
            free(claims.v[i]);
            claims.v[i] = claims.v[--claims.n];
            break;
        }
    }
    pthread_cond_broadcast(&claim_cond);
    pthread_mutex_unlock(&lease__mu);
}

void lease__schedule(const char *id, int64_t when)
{
    pthread_mutex_lock(&lease__mu);
    heap_push(&heap, when, xstrdup(id));
    pthread_cond_signal(&heap_cond);
    pthread_mutex_unlock(&lease__mu);
}

/* ========================================================== revocation == */

/*
 * Runs the engine's revoke for rec and, on success (or with force),
 * deletes the record. A lease whose mount is gone has nothing left to
 * call; its record is dropped with a warning. reason ("expired",
 * "revoked", "revoke-prefix", "revoke-force") goes to the revoked hook
 * (the audit log), which records every lease that ends, request or not.
 */
int lease__revoke_record(const cJSON *rec, bool force, const char *reason,
                                struct errbuf *err)
{
    const struct mount *m = lease__mount(rec);
    const struct lease_ops *ops = lease__ops_for(rec);
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
        lease__note_revoke_time((time_mono() - t0) * 1000.0);
    }
    router_mount_put(m);
    if (rc != 0) /* every failed engine call, on any path */
        atomic_fetch_add(&lease__stat_failures, 1);
    if (rc != 0 && !force)
        return rc;
    if (rc != 0)
        log_warn("lease: force-revoking %s despite: %s", id, err->msg);
    rc = lease__drop_record(rec);
    if (rc != 0) {
        atomic_fetch_add(&lease__stat_failures, 1);
        errbuf_set(err, "deleting the lease record failed: %s",
                   coffer_strerror(rc));
        return rc;
    }
    lease__note_revoked(rec, reason);
    return 0;
}

static double backoff_seconds(int attempts)
{
    double d = lease__conf.retry_base *
               pow(2.0, attempts > 30 ? 30 : attempts - 1);
    unsigned char r;

    if (d > lease__conf.retry_max)
        d = lease__conf.retry_max;
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
    if (attempts == lease__conf.irrevocable_after)
        atomic_fetch_add(&lease__stat_irrevocable, 1);
    if (attempts >= lease__conf.irrevocable_after)
        lrec_set_bool(rec, "irrevocable", true);
    if (lease__save_record(rec) != 0)
        log_error("lease: saving the failure of %s failed", id);
    log_warn("lease: revoking %s failed (attempt %d, next in %.1fs): %s", id,
             attempts, delay, why);
    lease__schedule(id, time_unix_ms() + (int64_t)(delay * 1000));
}

/*
 * The record of a due id, claimed by the caller, if it is still due; a
 * lease renewed since it was queued goes back to the heap (NULL).
 */
static cJSON *load_due(const char *id)
{
    cJSON *rec = lease__load_record(id);
    int64_t expire;

    if (rec == NULL)
        return NULL;
    expire = json_get_int(rec, "expire_ms", 0);
    if (strcmp(json_get_str(rec, "state", ""), "active") == 0 &&
        expire > time_unix_ms()) {
        lease__schedule(id, expire);
        cJSON_Delete(rec);
        return NULL;
    }
    return rec;
}

/* Revokes a due rec on its own (claimed by the caller). */
static void revoke_due(cJSON *rec)
{
    struct errbuf err;

    if (lease__revoke_record(rec, false,
                             json_get_str(rec, "end_reason", "expired"),
                             &err) != 0)
        note_failure(rec, err.msg[0] ? err.msg : "revocation failed");
}

/* What a worker does with a due id. */
static void process_due(const char *id)
{
    cJSON *rec;

    lease__claim(id);
    rec = load_due(id);
    if (rec != NULL)
        revoke_due(rec);
    cJSON_Delete(rec);
    lease__unclaim(id);
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
    return m != NULL && lease__ops_for(rec) == lease__conf.ops &&
           lease__conf.ops != NULL &&
           lease__conf.ops->revoke_batch != NULL &&
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
    if (lease__conf.ops->revoke_batch(m, (const cJSON *const *)recs, n, rcs,
                                      errs) == COFFER_EUNSUPPORTED) {
        for (size_t i = 0; i < n; i++)
            revoke_due(recs[i]);
        free(errs);
        return false;
    }
    each = (time_mono() - t0) * 1000.0 / (double)n;
    for (size_t i = 0; i < n; i++) {
        lease__note_revoke_time(each);
        if (rcs[i] == 0) {
            done[ndone++] = recs[i];
            continue;
        }
        atomic_fetch_add(&lease__stat_failures, 1);
        note_failure(recs[i], errs[i].msg[0] ? errs[i].msg
                                             : "revocation failed");
    }
    rc = ndone > 0 ? lease__drop_records(done, ndone) : 0;
    errbuf_set(&why, "deleting the lease record failed: %s",
               coffer_strerror(rc));
    for (size_t i = 0; i < ndone; i++) {
        cJSON *rec = (cJSON *)done[i];
        if (rc == 0) {
            lease__note_revoked(rec,
                                json_get_str(rec, "end_reason", "expired"));
            continue;
        }
        atomic_fetch_add(&lease__stat_failures, 1);
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
            m = lease__mount(rec);
        if (batchable(rec, m)) {
            group[ngroup++] = rec;
        } else if (nrecs == 1 && lease__ops_for(rec) != lease__conf.ops &&
                   i + 1 < n) {
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
        lease__unclaim(claimed[i]);
    for (size_t i = 0; i < nlater; i++)
        process_due(later[i]);
}

/* Caller holds lease__mu. Takes ownership of id. */
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

    lease__claim(id);
    rec = lease__load_record(id);
    if (rec != NULL)
        rc = lease__revoke_record(rec, b->force,
                                  b->force ? "revoke-force" : "revoke-prefix",
                                  &err);
    cJSON_Delete(rec);
    lease__unclaim(id);
    pthread_mutex_lock(&lease__mu);
    if (rc != 0 && b->rc == 0) {
        b->rc = rc;
        errbuf_set(&b->first, "failed to revoke %s: %s", id, err.msg);
    }
    b->pending--;
    pthread_cond_broadcast(&lease__batch_cond);
    pthread_mutex_unlock(&lease__mu);
}

/* walk_ids callback: hands one lease of a bulk revocation to the workers. */
void lease__enqueue_batch_job(void *arg, const char *id)
{
    struct batch *b = arg;

    pthread_mutex_lock(&lease__mu);
    b->pending++;
    enqueue_locked(xstrdup(id), b);
    pthread_mutex_unlock(&lease__mu);
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

/* Finds or adds the lane of key. Caller holds lease__mu. */
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

/* Drops an idle, empty lane (mounts come and go). Caller holds lease__mu. */
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
 * caller should run it. Caller holds lease__mu.
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
 * by one. Caller holds lease__mu.
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

    pthread_mutex_lock(&lease__mu);
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
    pthread_mutex_unlock(&lease__mu);
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

size_t lease__queued_locked(void)
{
    size_t n = queue_n - queue_head;

    for (size_t i = 0; i < nlanes; i++)
        n += lanes[i].nparked - lanes[i].head;
    return n;
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
    pthread_mutex_lock(&lease__mu);
    for (;;) {
        while (!stopping && queue_head == queue_n)
            pthread_cond_wait(&queue_cond, &lease__mu);
        if (stopping)
            break;
        job = queue[queue_head++];
        if (queue_head == queue_n) {
            queue_n = 0;
            queue_head = 0;
        }
        pthread_mutex_unlock(&lease__mu);
        key = lane_key_of(job.id); /* the router has its own locks */
        pthread_mutex_lock(&lease__mu);
        if (!lane_enter_locked(key, job)) {
            free(key);
            continue; /* parked: it comes back when a slot frees */
        }
        ids[0] = job.id;
        n = 1;
        if (job.batch == NULL)
            n += lane_take_due_locked(key, ids + 1, DUE_BATCH_MAX - 1);
        pthread_mutex_unlock(&lease__mu);
        if (job.batch != NULL)
            process_batch_job(job.id, job.batch);
        else
            process_due_many(key, ids, &n);
        for (size_t i = 0; i < n; i++)
            free(ids[i]);
        pthread_mutex_lock(&lease__mu);
        lane_leave_locked(key);
        free(key);
    }
    pthread_mutex_unlock(&lease__mu);
    return NULL;
}

static void *expirer_main(void *arg)
{
    const struct heap_entry *top;
    struct timespec until;
    int64_t now;

    (void)arg;
    pthread_mutex_lock(&lease__mu);
    while (!stopping) {
        top = heap_peek(&heap);
        now = time_unix_ms();
        if (top == NULL) {
            pthread_cond_wait(&heap_cond, &lease__mu);
        } else if (top->when > now) {
            until.tv_sec = (time_t)(top->when / 1000);
            until.tv_nsec = (long)(top->when % 1000) * 1000000;
            pthread_cond_timedwait(&heap_cond, &lease__mu, &until);
        } else {
            enqueue_locked(heap_pop(&heap, NULL), NULL);
        }
    }
    pthread_mutex_unlock(&lease__mu);
    return NULL;
}

/* ====================================================== start and stop == */

int lease__expire_init(struct storage *s, struct lease_counts *counts,
                       bool *reconcile, struct errbuf *err)
{
    lane_limit = lease__conf.workers / 2 > 0 ? lease__conf.workers / 2 : 1;
    heap_init(&heap);
    strvec_init(&claims);
    stopping = false;
    return lease_restore_heap(s, LEASE_ID_PREFIX, &heap, counts, reconcile,
                              err);
}

void lease__restore_locked(const char *id, const void *text, size_t len,
                           struct lease_counts *counts)
{
    lease_restore_record(&heap, id, text, len, time_unix_ms(), counts);
    pthread_cond_signal(&heap_cond);
}

int lease__expire_start(struct errbuf *err)
{
    workers = xcalloc(lease__conf.workers, sizeof(*workers));
    for (nworkers = 0; nworkers < lease__conf.workers; nworkers++) {
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
    return 0;
}

void lease__expire_stop(void)
{
    pthread_mutex_lock(&lease__mu);
    stopping = true;
    pthread_cond_broadcast(&heap_cond);
    pthread_cond_broadcast(&queue_cond);
    pthread_mutex_unlock(&lease__mu);
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
