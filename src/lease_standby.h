/*
 * lease_standby.h - a standby's copy of the lease index, so that taking
 * over resumes expirations at once instead of after a scan of every
 * lease (issue 12).
 *
 * Standing by, ha.c's change thread reports every key the active commits.
 * Lease record keys (sys/expire/id/...) go to a queue; a thread of this
 * module reads each queued record again (the value is what counts, not
 * the order of the notes) and keeps id -> (due time, pending,
 * irrevocable) in memory. Nothing here arms a timer or revokes: a standby
 * never revokes. When the listener (re)opens, or a change too large to
 * name arrives, the index is rebuilt by one scan; while the listener is
 * down, or until that scan is done, the index is not trusted.
 *
 * Takeover. The change thread, seeing that this node acquired the lock,
 * posts a marker and keeps listening until it comes back: the old active
 * is fenced from the acquisition on, so every change it committed has
 * then been heard (lease_standby_handoff). lease_init then takes the
 * index as its expiration heap (lease_standby_take) once the queue is
 * drained, and a background scan reconciles it with storage
 * (lease_standby_reconcile_start): a record the index lacks is restored
 * as the full restore would. An index not trusted, or a handoff that did
 * not confirm, makes lease_init fall back to the full restore first.
 *
 * Thread-safe.
 */
#ifndef COFFER_LEASE_STANDBY_H
#define COFFER_LEASE_STANDBY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct errbuf;
struct heap;
struct storage;

/* The storage records are read from (the barrier's); core_init. */
void lease_standby_configure(struct storage *logical);

/* ha.c's change thread: the active committed key (NULL: anything). */
void lease_standby_heard(const char *key);
/* ha.c's change thread: changes are no longer heard. */
void lease_standby_deaf(void);
/*
 * ha.c's change thread, leaving standby because this node acquired the
 * lock: in_step says every change committed before the acquisition was
 * heard.
 */
void lease_standby_handoff(bool in_step);

/* What a lease record says for the expiration heap. */
struct lease_due {
    int64_t when;      /* 0: at once (pending, or no expiry) */
    bool pending;
    bool irrevocable;
};

/*
 * Reads the members of a lease record's JSON text the heap needs; false
 * if it is corrupt. now_ms: the due time of a pending record.
 */
bool lease_record_due(const void *text, size_t len, int64_t now_ms,
                      struct lease_due *out);

struct lease_counts {
    uint64_t live, pending, irrevocable;
};

/*
 * One record (id, its JSON text) onto heap, added to *counts; a pending
 * one due at now_ms (Coffer stopped between recording and issuing it, so
 * whatever the engine may have created is revoked); a corrupt one is
 * logged and skipped.
 */
void lease_restore_record(struct heap *heap, const char *id,
                          const void *text, size_t len, int64_t now_ms,
                          struct lease_counts *counts);

/*
 * lease_init's heap: the standby index when this node takes over from
 * one in step with the old active (*reconcile: start the reconciliation
 * once the expiration manager runs), else one scan of every record under
 * prefix, in key order, in a single pass over the backend (a restore of
 * a million leases must take seconds, issue 4).
 */
int lease_restore_heap(struct storage *store, const char *prefix,
                       struct heap *heap, struct lease_counts *counts,
                       bool *reconcile, struct errbuf *err);

/*
 * Taking over: waits up to wait_ms for the handoff and a
 * drained queue; if the index is trusted, pushes every lease of it onto
 * heap (ids are copied), adds to *counts and returns true. Otherwise
 * false (the caller restores from storage). The index is emptied either
 * way; its ids are kept, as the known set of the reconciliation.
 */
bool lease_standby_take(struct heap *heap, struct lease_counts *counts,
                        int wait_ms, size_t *taken);

/*
 * The reconciliation after a take: a thread scans prefix of store and
 * calls restore(arg, key, value, len) for every record whose id
 * (key minus prefix) was neither in the taken index nor noted since with
 * lease_standby_known, and schedule(arg, id, when) for one due earlier
 * than the index said. Returns at once.
 */
typedef int (*lease_restore_fn)(void *arg, const char *key,
                                const void *value, size_t len);
typedef void (*lease_schedule_fn)(void *arg, const char *id, int64_t when);
void lease_standby_reconcile_start(struct storage *store, const char *prefix,
                                   lease_restore_fn restore,
                                   lease_schedule_fn schedule, void *arg);
/* An id the active created while the reconciliation may run. */
void lease_standby_known(const char *id);
/* Stops and joins the reconciliation (lease_shutdown). */
void lease_standby_reconcile_stop(void);

/*
 * ha_stop, after the change thread ended: drops the index and what is
 * queued, and returns once the index thread is idle (a scan or read in
 * progress is cut short), so storage may be closed after it.
 */
void lease_standby_quiesce(void);

#endif
