/*
 * lease_standby.c - the standby's lease index and its hand-over to the
 * expiration manager at takeover (see lease_standby.h).
 *
 * The index is an open-addressing hash of lease ids (linear probing,
 * tombstones, at most 70% full). One thread applies the queued notes: it
 * reads each noted record again and stores or drops its entry, so the
 * order in which notes arrive does not matter, only that none is missed
 * (a missed one can only happen while deaf, which distrusts the index).
 * A rescan builds a new index and replaces the old one only if nothing
 * distrusted it meanwhile (gen).
 */
#include "lease_standby.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "heap.h"
#include "json.h"
#include "log.h"
#include "storage.h"
#include "util.h"

#define LS_PREFIX "sys/expire/id/"
/* Queued notes beyond which a rescan is cheaper than reading each. */
#define LS_QUEUE_MAX 500000
/* The least time from the end of one rebuild scan to the next. */
#define LS_REBUILD_GAP_S 5.0
/* Taking over: how long the index may take to settle (the handoff and
 * the notes still queued). */
#define LS_HANDOFF_WAIT_MS 3000
/* The reconciliation's scan callback: stop (lease_shutdown). */
#define LS_STOPPED 1

/* ============================================================ the map == */

enum { LS_PENDING = 1, LS_IRREVOCABLE = 2 };

struct ls_entry {
    char *id;       /* NULL: free; &tomb: deleted */
    int64_t when;
    unsigned char flags;
};

struct ls_map {
    struct ls_entry *v;
    size_t cap, used, tombs; /* used: live entries */
};

static char tomb;

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void map_release(struct ls_map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->v[i].id != NULL && m->v[i].id != &tomb)
            free(m->v[i].id);
    }
    free(m->v);
    memset(m, 0, sizeof(*m));
}

/* The slot of id, or the free slot where it would go (cap > 0). */
static struct ls_entry *map_slot(const struct ls_map *m, const char *id)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)hash_id(id) & mask;
    struct ls_entry *free_slot = NULL;

    for (;; i = (i + 1) & mask) {
        struct ls_entry *e = &m->v[i];

        if (e->id == NULL)
            return free_slot != NULL ? free_slot : e;
        if (e->id == &tomb) {
            if (free_slot == NULL)
                free_slot = e;
        } else if (strcmp(e->id, id) == 0) {
            return e;
        }
    }
}

static void map_put_owned(struct ls_map *m, char *id, int64_t when,
                          unsigned char flags);

static void map_grow(struct ls_map *m)
{
    struct ls_map bigger = {0};

    bigger.cap = m->cap != 0 ? m->cap * 2 : 1024;
    while (m->used * 10 >= bigger.cap * 5)
        bigger.cap *= 2;
    bigger.v = xcalloc(bigger.cap, sizeof(*bigger.v));
    for (size_t i = 0; i < m->cap; i++) {
        struct ls_entry *e = &m->v[i];

        if (e->id != NULL && e->id != &tomb)
            map_put_owned(&bigger, e->id, e->when, e->flags);
    }
    free(m->v);
    *m = bigger;
}

/* Stores id (taken over) -> when, flags; replaces an entry of id. */
static void map_put_owned(struct ls_map *m, char *id, int64_t when,
                          unsigned char flags)
{
    struct ls_entry *e;

    if ((m->used + m->tombs + 1) * 10 >= m->cap * 7)
        map_grow(m);
    e = map_slot(m, id);
    if (e->id != NULL && e->id != &tomb) {
        free(id);
    } else {
        if (e->id == &tomb)
            m->tombs--;
        e->id = id;
        m->used++;
    }
    e->when = when;
    e->flags = flags;
}

static void map_del(struct ls_map *m, const char *id)
{
    struct ls_entry *e;

    if (m->cap == 0)
        return;
    e = map_slot(m, id);
    if (e->id == NULL || e->id == &tomb)
        return;
    free(e->id);
    e->id = &tomb;
    m->used--;
    m->tombs++;
}

/* Whether id is in m, and its due time in *when. */
static bool map_get(const struct ls_map *m, const char *id, int64_t *when)
{
    const struct ls_entry *e;

    if (m->cap == 0)
        return false;
    e = map_slot(m, id);
    if (e->id == NULL || e->id == &tomb)
        return false;
    *when = e->when;
    return true;
}

/* ============================================================ state == */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;      /* work queued, or work done */
    struct storage *store;
    struct ls_map map;
    struct strvec queue;      /* ids noted, not yet applied */
    bool rescan;              /* rebuild the index from a scan */
    bool busy;                /* the thread works outside mu */
    bool trusted;             /* in step with every change heard */
    int handoff;              /* 0: none; 1: in step; -1: not */
    unsigned long gen;        /* bumped by whatever distrusts the index */
    bool thread_started;
    pthread_t thread;
    atomic_bool quiesce;      /* cut the thread's storage work short */
    /* the reconciliation after a take */
    struct ls_map known;
    bool reconciling;         /* its thread is to be joined */
    bool rec_open;            /* known collects the active's new ids */
    atomic_bool rec_stop;
    pthread_t rec_thread;
    struct storage *rec_store;
    char *rec_prefix;
    lease_restore_fn rec_fn;
    lease_schedule_fn rec_schedule;
    void *rec_arg;
} ls = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

bool lease_record_due(const void *text, size_t len, int64_t now_ms,
                      struct lease_due *out)
{
    enum { STATE, EXPIRE, IRREVOCABLE };
    /* Three members read off the text: no tree per record (a cJSON parse
     * was most of a million-lease restore's CPU: tests/bench/README.md). */
    struct json_member m[] = {[STATE] = {.name = "state"},
                              [EXPIRE] = {.name = "expire_ms"},
                              [IRREVOCABLE] = {.name = "irrevocable"}};

    if (!json_object_members(text, len, m, ARRAY_LEN(m)))
        return false;
    out->pending = json_member_is(&m[STATE], "\"pending\"");
    out->irrevocable = json_member_is(&m[IRREVOCABLE], "true");
    out->when = now_ms;
    if (json_member_is(&m[STATE], "\"active\"")) {
        out->when = 0;
        (void)json_member_int64(&m[EXPIRE], &out->when);
    }
    return true;
}

void lease_standby_configure(struct storage *logical)
{
    pthread_mutex_lock(&ls.mu);
    ls.store = logical;
    pthread_mutex_unlock(&ls.mu);
}

/* Distrusts the index (mu held): what it misses is no longer known. */
static void distrust_locked(void)
{
    ls.trusted = false;
    ls.gen++;
    pthread_cond_broadcast(&ls.cond);
}

/* ========================================================= the thread == */

static unsigned char flags_of(const struct lease_due *d)
{
    return (unsigned char)((d->pending ? LS_PENDING : 0) |
                           (d->irrevocable ? LS_IRREVOCABLE : 0));
}

static int scan_one(void *arg, const char *key, const void *value,
                    size_t len)
{
    struct ls_map *fresh = arg;
    struct lease_due d;

    if (atomic_load(&ls.quiesce))
        return LS_STOPPED;
    if (lease_record_due(value, len, time_unix_ms(), &d))
        map_put_owned(fresh, xstrdup(key + strlen(LS_PREFIX)), d.when,
                      flags_of(&d));
    return 0;
}

/* A rebuild from storage (mu held, dropped around the scan). */
static void rebuild_locked(void)
{
    unsigned long gen = ls.gen;
    struct ls_map fresh = {0};
    double t0 = time_mono();
    int rc;

    ls.rescan = false;
    pthread_mutex_unlock(&ls.mu);
    rc = storage_scan(ls.store, LS_PREFIX, scan_one, &fresh);
    pthread_mutex_lock(&ls.mu);
    if (rc == 0 && gen == ls.gen) {
        map_release(&ls.map);
        ls.map = fresh;
        ls.trusted = true;
        log_info("lease: standby index of %zu leases built in %.2fs",
                 ls.map.used, time_mono() - t0);
        return;
    }
    map_release(&fresh);
    if (rc != 0 && rc != LS_STOPPED)
        log_warn("lease: standby index scan failed: %s; not trusted until "
                 "the next rebuild", coffer_strerror(rc));
}

/* Reads the noted ids again and applies them (mu held, dropped). */
static void apply_notes_locked(void)
{
    struct strvec ids = ls.queue;
    struct buf val;

    strvec_init(&ls.queue);
    pthread_mutex_unlock(&ls.mu);
    strvec_sort(&ids);
    strvec_uniq(&ids);
    buf_init(&val, 0);
    for (size_t i = 0; i < ids.n && !atomic_load(&ls.quiesce); i++) {
        size_t klen = strlen(LS_PREFIX) + strlen(ids.v[i]) + 1;
        char *key = xmalloc(klen);
        struct lease_due d;
        int rc;

        snprintf(key, klen, "%s%s", LS_PREFIX, ids.v[i]);
        val.len = 0;
        rc = storage_get(ls.store, key, &val);
        pthread_mutex_lock(&ls.mu);
        if (rc == 0 && lease_record_due(val.ptr, val.len, time_unix_ms(), &d)) {
            map_put_owned(&ls.map, xstrdup(ids.v[i]), d.when, flags_of(&d));
        } else if (rc == COFFER_ENOTFOUND) {
            map_del(&ls.map, ids.v[i]);
        } else if (ls.trusted) {
            log_warn("lease: standby index: reading %s failed (%s); not "
                     "trusted until the next rebuild", ids.v[i],
                     rc != 0 ? coffer_strerror(rc) : "corrupt record");
            distrust_locked();
        }
        pthread_mutex_unlock(&ls.mu);
        free(key);
    }
    buf_release(&val);
    strvec_release(&ids);
    pthread_mutex_lock(&ls.mu);
}

/* Waits on cond until until (time_mono) or a signal. mu held. */
static void wait_until_locked(double until)
{
    struct timespec ts = time_deadline(until - time_mono());

    pthread_cond_timedwait(&ls.cond, &ls.mu, &ts);
}

static void *index_main(void *arg)
{
    double next_rebuild = 0;

    (void)arg;
    pthread_mutex_lock(&ls.mu);
    for (;;) {
        if (ls.store == NULL || (!ls.rescan && ls.queue.n == 0)) {
            pthread_cond_wait(&ls.cond, &ls.mu);
            continue;
        }
        /* Flushes can come in a stream (forged ones, batches naming
         * more than the channel carries): one scan per LS_REBUILD_GAP_S
         * at most, the index untrusted in between. The notes wait too: a
         * rebuild comes before them. */
        if (ls.rescan && time_mono() < next_rebuild) {
            wait_until_locked(next_rebuild);
            continue;
        }
        ls.busy = true;
        if (ls.rescan) {
            rebuild_locked();
            next_rebuild = time_mono() + LS_REBUILD_GAP_S;
        } else {
            apply_notes_locked();
        }
        ls.busy = false;
        pthread_cond_broadcast(&ls.cond);
    }
    return NULL;
}

/* Starts the thread on the first note (mu held). It lives as long as
 * the process and only ever waits on cond when idle. */
static void start_locked(void)
{
    if (ls.thread_started)
        return;
    if (pthread_create(&ls.thread, NULL, index_main, NULL) != 0) {
        log_warn("lease: cannot start the standby index thread");
        return;
    }
    pthread_detach(ls.thread);
    ls.thread_started = true;
}

/* ================================================= the change thread == */

void lease_standby_heard(const char *key)
{
    pthread_mutex_lock(&ls.mu);
    start_locked();
    if (key == NULL || ls.queue.n >= LS_QUEUE_MAX) {
        /* anything may have changed: what was queued is moot */
        strvec_release(&ls.queue);
        strvec_init(&ls.queue);
        ls.handoff = 0;
        distrust_locked();
        ls.rescan = ls.thread_started;
    } else if (str_has_prefix(key, LS_PREFIX) && key[strlen(LS_PREFIX)]) {
        strvec_push(&ls.queue, key + strlen(LS_PREFIX));
        pthread_cond_broadcast(&ls.cond);
    }
    pthread_mutex_unlock(&ls.mu);
}

void lease_standby_quiesce(void)
{
    pthread_mutex_lock(&ls.mu);
    atomic_store(&ls.quiesce, true);
    strvec_release(&ls.queue);
    strvec_init(&ls.queue);
    ls.rescan = false;
    ls.handoff = 0;
    distrust_locked();
    while (ls.busy)
        pthread_cond_wait(&ls.cond, &ls.mu);
    map_release(&ls.map);
    atomic_store(&ls.quiesce, false);
    pthread_mutex_unlock(&ls.mu);
}

void lease_standby_deaf(void)
{
    pthread_mutex_lock(&ls.mu);
    /* After a confirmed handoff nothing more is to be heard: the old
     * active is fenced. Otherwise changes may now go unheard. */
    if (ls.handoff != 1 && ls.trusted) {
        log_info("lease: standby index not trusted (change listener "
                 "closed)");
        distrust_locked();
    }
    pthread_mutex_unlock(&ls.mu);
}

void lease_standby_handoff(bool in_step)
{
    pthread_mutex_lock(&ls.mu);
    ls.handoff = in_step ? 1 : -1;
    pthread_cond_broadcast(&ls.cond);
    pthread_mutex_unlock(&ls.mu);
}

/* ========================================================= takeover == */

/* Waits (mu held) until the handoff is known and every note applied. */
static void wait_settled_locked(int wait_ms)
{
    double until = time_mono() + wait_ms / 1000.0;

    while (ls.trusted &&
           (ls.handoff == 0 || ls.busy || ls.rescan || ls.queue.n > 0) &&
           time_mono() < until) {
        struct timespec ts = time_deadline(0.02);

        pthread_cond_timedwait(&ls.cond, &ls.mu, &ts);
    }
}

bool lease_standby_take(struct heap *heap, struct lease_counts *counts,
                        int wait_ms, size_t *taken)
{
    bool ok;

    *taken = 0;
    pthread_mutex_lock(&ls.mu);
    wait_settled_locked(wait_ms);
    ok = ls.trusted && ls.handoff == 1 && !ls.busy && !ls.rescan &&
         ls.queue.n == 0;
    if (ok) {
        for (size_t i = 0; i < ls.map.cap; i++) {
            const struct ls_entry *e = &ls.map.v[i];

            if (e->id == NULL || e->id == &tomb)
                continue;
            heap_push(heap, e->when, xstrdup(e->id));
            counts->live++;
            counts->pending += (e->flags & LS_PENDING) != 0;
            counts->irrevocable += (e->flags & LS_IRREVOCABLE) != 0;
        }
        *taken = ls.map.used;
        map_release(&ls.known);
        ls.known = ls.map; /* the reconciliation's known set */
        ls.rec_open = true;
        memset(&ls.map, 0, sizeof(ls.map));
    } else if (ls.trusted || ls.handoff != 0) {
        log_warn("lease: the standby index is not in step (%s); restoring "
                 "from storage",
                 !ls.trusted        ? "not trusted"
                 : ls.handoff != 1 ? "handoff not confirmed"
                                   : "notes still queued");
    }
    map_release(&ls.map);
    strvec_release(&ls.queue);
    strvec_init(&ls.queue);
    ls.handoff = 0;
    ls.rescan = false;
    distrust_locked();
    pthread_mutex_unlock(&ls.mu);
    return ok;
}

void lease_restore_record(struct heap *heap, const char *id,
                          const void *text, size_t len, int64_t now_ms,
                          struct lease_counts *counts)
{
    struct lease_due d;

    if (!lease_record_due(text, len, now_ms, &d)) {
        log_error("lease: record %s is corrupt; skipping it", id);
        return;
    }
    if (d.pending)
        log_warn("lease: %s was still pending at start-up; revoking it", id);
    counts->live++;
    counts->pending += d.pending;
    counts->irrevocable += d.irrevocable;
    heap_push(heap, d.when, xstrdup(id));
}

struct restore_arg {
    struct heap *heap;
    struct lease_counts *counts;
    size_t prefix_len;
    int64_t now_ms;
};

static int restore_one(void *arg, const char *key, const void *value,
                       size_t len)
{
    struct restore_arg *a = arg;

    lease_restore_record(a->heap, key + a->prefix_len, value, len,
                         a->now_ms, a->counts);
    return 0;
}

int lease_restore_heap(struct storage *store, const char *prefix,
                       struct heap *heap, struct lease_counts *counts,
                       bool *reconcile, struct errbuf *err)
{
    struct restore_arg a = {heap, counts, strlen(prefix), time_unix_ms()};
    size_t taken = 0;
    double t0 = time_mono();
    int rc;

    *reconcile = lease_standby_take(heap, counts, LS_HANDOFF_WAIT_MS,
                                    &taken);
    if (*reconcile) {
        log_info("lease: took over the standby index of %zu leases in "
                 "%.2fs", taken, time_mono() - t0);
        return 0;
    }
    rc = storage_scan(store, prefix, restore_one, &a);
    if (rc != 0) {
        errbuf_set(err, "restoring leases failed: %s", coffer_strerror(rc));
        return rc;
    }
    log_info("lease: restored %llu leases in %.2fs",
             (unsigned long long)counts->live, time_mono() - t0);
    return 0;
}

/* ==================================================== reconciliation == */

struct rec_count {
    size_t seen, missing, earlier;
};

static int reconcile_one(void *arg, const char *key, const void *value,
                         size_t len)
{
    struct rec_count *n = arg;
    bool known;

    if (atomic_load(&ls.rec_stop))
        return LS_STOPPED;
    const char *id = key + strlen(ls.rec_prefix);
    struct lease_due d;
    int64_t had = 0;

    n->seen++;
    pthread_mutex_lock(&ls.mu);
    known = map_get(&ls.known, id, &had);
    pthread_mutex_unlock(&ls.mu);
    /* Due earlier than the index said (it cannot be, when the index was
     * in step): one more heap entry; the later one finds it handled. */
    if (known && lease_record_due(value, len, time_unix_ms(), &d) &&
        d.when < had) {
        n->earlier++;
        ls.rec_schedule(ls.rec_arg, id, d.when);
    }
    if (known)
        return 0;
    n->missing++;
    log_warn("lease: %s was missing from the standby index; restoring it",
             key + strlen(ls.rec_prefix));
    return ls.rec_fn(ls.rec_arg, key, value, len);
}

static void *reconcile_main(void *arg)
{
    struct rec_count n = {0, 0, 0};
    double t0 = time_mono();
    int rc;

    (void)arg;
    rc = storage_scan(ls.rec_store, ls.rec_prefix, reconcile_one, &n);
    if (rc == 0)
        log_info("lease: reconciled the index with storage: %zu leases, "
                 "%zu were missing, %zu due earlier, in %.2fs", n.seen,
                 n.missing, n.earlier, time_mono() - t0);
    else if (rc != LS_STOPPED)
        log_error("lease: reconciling the index with storage failed: %s",
                  coffer_strerror(rc));
    pthread_mutex_lock(&ls.mu);
    ls.rec_open = false;
    map_release(&ls.known);
    pthread_mutex_unlock(&ls.mu);
    return NULL;
}

void lease_standby_reconcile_start(struct storage *store, const char *prefix,
                                   lease_restore_fn restore,
                                   lease_schedule_fn schedule, void *arg)
{
    pthread_mutex_lock(&ls.mu);
    ls.rec_store = store;
    free(ls.rec_prefix);
    ls.rec_prefix = xstrdup(prefix);
    ls.rec_fn = restore;
    ls.rec_schedule = schedule;
    ls.rec_arg = arg;
    atomic_store(&ls.rec_stop, false);
    ls.reconciling =
        pthread_create(&ls.rec_thread, NULL, reconcile_main, NULL) == 0;
    if (!ls.reconciling) {
        log_error("lease: cannot start the index reconciliation");
        ls.rec_open = false;
        map_release(&ls.known);
    }
    pthread_mutex_unlock(&ls.mu);
}

void lease_standby_known(const char *id)
{
    pthread_mutex_lock(&ls.mu);
    if (ls.rec_open)
        map_put_owned(&ls.known, xstrdup(id), 0, 0);
    pthread_mutex_unlock(&ls.mu);
}

void lease_standby_reconcile_stop(void)
{
    bool running;

    pthread_mutex_lock(&ls.mu);
    running = ls.reconciling;
    ls.reconciling = false;
    pthread_mutex_unlock(&ls.mu);
    if (!running)
        return;
    atomic_store(&ls.rec_stop, true);
    pthread_join(ls.rec_thread, NULL);
    pthread_mutex_lock(&ls.mu);
    ls.rec_open = false;
    map_release(&ls.known);
    free(ls.rec_prefix);
    ls.rec_prefix = NULL;
    pthread_mutex_unlock(&ls.mu);
}
