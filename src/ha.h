/*
 * ha.h - high availability: which of the nodes sharing one storage is
 * active.
 *
 * Every node contends for a lock kept in the physical storage (struct
 * storage_ha_ops; only the postgresql backend has one). The node that
 * holds it is active: it runs the expiration manager, the ticker and
 * every write. The others are standbys: unsealed (they hold the keyring)
 * but with nothing running, and they tell clients where the active is.
 *
 * Two threads. The lock thread takes the lock (every retry_ms while
 * standing by), renews it (every renew_ms while holding it) and reads
 * who holds it. The transition thread runs the hooks that start and
 * stop the active node's subsystems, which can take seconds (a restore
 * of a million leases) while the lock thread keeps renewing.
 *
 * Losing the lock. A renewal that fails, or none that succeeded for
 * lock_ttl - renew_ms*2 of the node's own monotonic clock, ends the
 * tenure at once: ha_is_active() turns false before the deactivate hook
 * runs, and the storage already refuses our writes (its fence). The
 * lock's own expiry is measured by the storage's clock, later than ours
 * by that margin, so the node stops before another can take over; if
 * this process was paused past both, its first write after waking is
 * refused by the fence and the lock thread sees the loss on its next
 * pass. A node that lost or gave up the lock contends again as a new
 * tenure (a new holder id).
 *
 * Standing by, a third thread (the change thread) listens to what the
 * active commits (storage_ha_ops.listen) and reports it through the
 * changed/deaf hooks, so that a standby's caches follow the active's
 * writes. It reopens its listener for every tenure this node had, so a
 * node that was active meanwhile always starts again with changed(NULL).
 *
 * Thread-safe after ha_start().
 */
#ifndef COFFER_HA_H
#define COFFER_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct storage;
struct storage_ha_node;

struct ha_config {
    struct storage *physical; /* borrowed; storage_ha(physical) != NULL */
    const char *api_addr;     /* what standbys send clients to */
    const char *cluster_addr; /* NULL or "" for none */
    /* The CA file a standby trusts when it forwards to an https://
     * active (forward_set_ca_file); NULL for the system's. */
    const char *cluster_ca_file;
    /* Standbys forward reads too: no listening, nothing cached or loaded
     * (ha_standby_reads). */
    bool disable_standby_reads;
    int lock_ttl_ms;          /* default 10000 */
    int renew_ms;             /* default 2000 */
    int retry_ms;             /* standby attempts, default 1000 */
};

struct ha_hooks {
    /*
     * The lock is ours: start the active node's subsystems. On failure
     * the lock is given up and contended for again after a pause.
     */
    int (*activate)(void *arg, struct errbuf *err);
    /* The lock is gone (or given up): stop them. */
    void (*deactivate)(void *arg);
    /*
     * Standing by (the change thread): the active committed a change of
     * key; key NULL: anything may have changed (the listener was opened
     * or reopened, or a change too large to name): drop every cache and
     * reload. NULL hook: none.
     */
    void (*changed)(void *arg, const char *key);
    /*
     * The listener is gone (or this node became active): changes are no
     * longer heard, so nothing cached can be trusted. A changed(NULL)
     * follows when it is back. NULL hook: none.
     */
    void (*deaf)(void *arg);
    void *arg;
};

/* For sys/leader and sys/ha-status. */
struct ha_status {
    bool enabled;
    bool is_self;            /* this node is active */
    bool leader_known;       /* a live holder was seen */
    char node_id[64];        /* this node's */
    char leader_node_id[64];
    char leader_address[256];
    char leader_cluster_address[256];
    double active_since_unix; /* the holder's acquisition time */
};

/* Starts contending. err says why not (no lock interface, threads). */
int ha_start(const struct ha_config *cfg, const struct ha_hooks *hooks,
             struct errbuf *err);

/*
 * Stops contending: ends the tenure (deactivate runs if it was active),
 * gives the lock up and joins the threads. Safe if never started.
 */
void ha_stop(void);

/*
 * Gives the lock up and stays out of the contest for holdoff_ms, so that
 * another node takes over (sys/step-down). COFFER_ESTANDBY if this node
 * is not active.
 */
int ha_step_down(int holdoff_ms);

/*
 * A one-off hold of the lock outside any tenure, for the writes of
 * sys/init on a cluster that has no active node yet (HA storage refuses
 * writes from a node that does not hold the lock). Waits up to wait_ms
 * for it; holder (128 bytes) receives the claim to release. 0, or
 * COFFER_ESTANDBY with words in err if another node keeps it.
 */
int ha_hold_once(struct storage *physical, int ttl_ms, int wait_ms,
                 char holder[128], struct errbuf *err);
void ha_hold_release(struct storage *physical, const char *holder);

/*
 * Standing by: waits until every change committed before this call has
 * been reported through the changed hook (a marker posted on the change
 * channel comes back), so that a client that wrote through the active
 * reads its own write here. Up to timeout_ms; when the marker does not
 * come back, the changed(NULL) hook runs before it returns. 0, or
 * COFFER_ESTANDBY when the listener is not up (then nothing is cached).
 */
int ha_standby_sync(int timeout_ms);

/* Standbys answer reads themselves (not disable_standby_reads). */
bool ha_standby_reads(void);

bool ha_enabled(void);

/* Holds the lock and its subsystems are running. */
bool ha_is_active(void);

void ha_get_status(struct ha_status *out);

/*
 * The nodes that registered recently (every node echoes its row each
 * renew interval; one silent for three is left out), the active first.
 * *out is an array to free(). COFFER_ESTANDBY without HA.
 */
int ha_list_nodes(struct storage_ha_node **out, size_t *n);

#endif
