/*
 * lease_internal.h - what lease.c and lease_expire.c share, and nothing
 * else includes: the rest of Coffer uses lease.h.
 *
 * lease.c holds the records (storage, counts, statistics) and the API;
 * lease_expire.c the expiration manager (heap, claims, work queue,
 * lanes, the expirer and worker threads) and the revocation of records.
 * The double underscore marks these names as internal to the lease
 * subsystem (STYLE 7).
 *
 * Locking: lease__mu guards the heap, the claims, the queue and the
 * lanes (lease_expire.c), the live and pending counts (lease.c) and a
 * bulk revocation's struct batch. A *_locked function wants it held;
 * the others are called without it.
 */
#ifndef COFFER_LEASE_INTERNAL_H
#define COFFER_LEASE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "lease.h"

struct lease_counts;
struct mount;
struct storage;

/* ---- records, configuration, statistics (lease.c) ---- */

/* lease_init's configuration, its defaults filled in. */
extern struct lease_config lease__conf;
/* The subsystem's one lock (see above). */
extern pthread_mutex_t lease__mu;
/* Failed revocation attempts since start (lease_stats.failures). */
extern atomic_uint_fast64_t lease__stat_failures;
/* Leases flagged irrevocable now (lease_stats.irrevocable). */
extern atomic_uint_fast64_t lease__stat_irrevocable;

/* id's record, or NULL when missing or unreadable (logged). */
cJSON *lease__load_record(const char *id);
/* Stores rec under its id. 0 or an error code. */
int lease__save_record(const cJSON *rec);
/*
 * Deletes rec and its token index entry and uncounts it. The caller
 * loaded rec under the lease's claim. 0 or an error code.
 */
int lease__drop_record(const cJSON *rec);
/* lease__drop_record for n records in one storage batch, all or none. */
int lease__drop_records(const cJSON *const *recs, size_t n);
/* rec's revocation succeeded and its record is gone: count, audit. */
void lease__note_revoked(const cJSON *rec, const char *reason);
/* Adds one engine revoke call of ms milliseconds to the timing. */
void lease__note_revoke_time(double ms);
/* The ops that revoke and renew rec: token.c's or the engines'. */
const struct lease_ops *lease__ops_for(const cJSON *rec);
/*
 * The mount that issued rec, if it is still the same mount; NULL
 * otherwise. A reference: release it with router_mount_put.
 */
const struct mount *lease__mount(const cJSON *rec);

/* ---- the expiration manager (lease_expire.c) ---- */

/*
 * A synchronous bulk revocation (revoke-prefix): its caller hands the
 * ids to the workers (lease__enqueue_batch_job) and waits on
 * lease__batch_cond until pending is 0.
 */
struct batch {
    bool force;
    size_t pending;      /* jobs not yet finished; protected by lease__mu */
    int rc;              /* first failure */
    struct errbuf first;
};

/* Broadcast (under lease__mu) each time a bulk job finishes. */
extern pthread_cond_t lease__batch_cond;

/*
 * Waits until nobody else is revoking id, then marks it as ours; may
 * block for as long as another revocation of id takes. Every claim is
 * released with lease__unclaim.
 */
void lease__claim(const char *id);
void lease__unclaim(const char *id);
/* Puts id on the heap, due at when (ms since the epoch). */
void lease__schedule(const char *id, int64_t when);
/*
 * Revokes rec (loaded under its claim) through its engine and, on
 * success or with force, drops the record; reason goes to the revoked
 * hook. 0, or an error with words in err. Blocks on the engine.
 */
int lease__revoke_record(const cJSON *rec, bool force, const char *reason,
                         struct errbuf *err);
/* walk_ids callback: hands id to the workers as a job of the batch arg. */
void lease__enqueue_batch_job(void *arg, const char *id);
/* Due ids waiting for a worker, queued or parked. Caller holds lease__mu. */
size_t lease__queued_locked(void);

/*
 * lease_init, before the threads: an empty heap, no claims, then the
 * heap restored from s (lease_restore_heap: *counts, *reconcile).
 * 0 or an error with words in err.
 */
int lease__expire_init(struct storage *s, struct lease_counts *counts,
                       bool *reconcile, struct errbuf *err);
/*
 * The reconciliation's restore of one record (id, its JSON text) onto
 * the running heap, added to *counts. Caller holds lease__mu.
 */
void lease__restore_locked(const char *id, const void *text, size_t len,
                           struct lease_counts *counts);
/* Starts the workers and the expirer. 0 or an error with words in err. */
int lease__expire_start(struct errbuf *err);
/* Stops and joins the threads and frees the heap, queue, lanes, claims. */
void lease__expire_stop(void);

#endif
