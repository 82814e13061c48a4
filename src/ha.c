/*
 * ha.c - the HA lock's two threads: one contends for and renews the lock,
 * one starts and stops the active node's subsystems. See ha.h.
 *
 * Tenures. Each acquisition is a tenure with its own number and holder
 * id. want is the tenure whose subsystems should run (0: none), running
 * the one whose subsystems do; the lock thread sets want, the transition
 * thread moves running towards it, one hook call at a time, so activate
 * and deactivate never overlap. `active` (what requests read) is true
 * only while want == running != 0.
 *
 * The change thread listens while this node stands by (neither holding
 * the lock nor running a tenure's subsystems) and closes its listener
 * otherwise; `heard` says a listener is up or opening, so that a sync
 * waits for its marker rather than trusting a cache filled meanwhile.
 */
#include "ha.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "forward.h"
#include "lease_standby.h"
#include "log.h"
#include "storage.h"
#include "util.h"

#define HA_DEFAULT_TTL_MS 10000
#define HA_DEFAULT_RENEW_MS 2000
#define HA_DEFAULT_RETRY_MS 1000
/* The change thread's wait for notifications, and its pause after its
 * listener failed or while this node is active. */
#define HA_LISTEN_WAIT_MS 200
#define HA_LISTEN_RETRY_MS 500
/* Taking over: the wait for the old active's last changes to be heard. */
#define HA_HANDOFF_WAIT_MS 2000
/* After a failed activation, before contending again. */
#define HA_ACTIVATE_HOLDOFF_MS 5000
/* A node silent for this many echo intervals is left out of listings;
 * for HA_FORGET_ECHOES its row is deleted. */
#define HA_STALE_ECHOES 3
#define HA_FORGET_ECHOES 100

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool started;
    bool stopping;
    struct storage *physical;
    const struct storage_ha_ops *ops;
    struct ha_hooks hooks;
    int ttl_ms, renew_ms, retry_ms;
    char api_addr[256];
    char cluster_addr[256];
    char node_id[64];
    char holder[128];       /* this tenure's, or the next one's */
    bool held;              /* the lock thread's view */
    double last_renew;      /* time_mono() when the last renewal began */
    double holdoff_until;   /* no contending before this */
    double next_echo;       /* time_mono() of the next registration */
    struct storage_ha_node self; /* this node's registration row */
    bool release_wanted;    /* give the lock up once running == 0 */
    unsigned long tenure;   /* acquisitions so far */
    unsigned long want;
    unsigned long running;
    bool transition_done;   /* the transition thread has exited */
    atomic_bool active;
    struct storage_ha_leader leader; /* last read, while standing by */
    double active_since;    /* unix time of our acquisition */
    pthread_t lock_thread;
    pthread_t transition_thread;
    /* The change thread (NULL listen op: none). */
    pthread_t change_thread;
    bool change_started;
    bool heard;               /* a listener is up or being opened */
    bool resync;              /* a sync failed: prove the listener first */
    unsigned long sync_next;  /* the last marker number posted */
    unsigned long sync_seen;  /* the highest that came back */
    pthread_cond_t sync_cond; /* sync_seen or heard changed */
} ha = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
        .sync_cond = PTHREAD_COND_INITIALIZER};

static void new_holder_locked(void)
{
    char tenure[40];

    if (crypto_uuid(tenure) != 0)
        snprintf(tenure, sizeof(tenure), "%lu-%f", ha.tenure, time_mono());
    snprintf(ha.holder, sizeof(ha.holder), "%s/%s", ha.node_id, tenure);
}

static void update_active_locked(void)
{
    atomic_store(&ha.active,
                 ha.held && ha.want != 0 && ha.want == ha.running);
}

/*
 * The tenure is over, for why: requests stop seeing an active node, the
 * subsystems are told to stop, and the lock is given up if it is still
 * ours (which also makes the storage refuse our writes from now on).
 * Lock thread only; mu held, dropped around the release.
 */
static void lose_locked(const char *why)
{
    char old[sizeof(ha.holder)];

    if (!ha.held)
        return;
    log_warn("ha: this node is no longer active: %s; standing by", why);
    memcpy(old, ha.holder, sizeof(old));
    ha.held = false;
    ha.want = 0;
    new_holder_locked();
    update_active_locked();
    pthread_cond_broadcast(&ha.cond);
    pthread_mutex_unlock(&ha.mu);
    (void)ha.ops->release(ha.physical->ctx, old);
    pthread_mutex_lock(&ha.mu);
}

static int call_acquire(const char *holder, bool *held)
{
    struct storage_ha_claim c = {holder, ha.node_id, ha.api_addr,
                                 ha.cluster_addr};

    return ha.ops->acquire(ha.physical->ctx, &c, ha.ttl_ms, held);
}

/* One renewal. Called with mu held; drops it around the storage call. */
static void renew_locked(void)
{
    char holder[sizeof(ha.holder)];
    double began = time_mono();
    bool still = false;
    int rc;

    memcpy(holder, ha.holder, sizeof(holder));
    pthread_mutex_unlock(&ha.mu);
    rc = call_acquire(holder, &still);
    pthread_mutex_lock(&ha.mu);
    if (!ha.held || strcmp(holder, ha.holder) != 0)
        return; /* ended meanwhile */
    if (rc == 0 && still)
        ha.last_renew = began;
    else
        lose_locked(rc != 0 ? "the lock could not be renewed"
                            : "another node holds the lock");
}

/* One attempt to take the lock while standing by. mu held, dropped. */
static void contend_locked(void)
{
    char holder[sizeof(ha.holder)];
    struct storage_ha_leader leader;
    double began = time_mono();
    bool got = false;
    int rc;

    memcpy(holder, ha.holder, sizeof(holder));
    pthread_mutex_unlock(&ha.mu);
    rc = call_acquire(holder, &got);
    if (rc != 0 || !got)
        rc = ha.ops->leader(ha.physical->ctx, &leader);
    pthread_mutex_lock(&ha.mu);
    if (ha.stopping || ha.held)
        return;
    if (got) {
        ha.held = true;
        ha.last_renew = began;
        ha.want = ++ha.tenure;
        ha.active_since = (double)time_now().tv_sec;
        log_info("ha: this node holds the lock; becoming active");
        pthread_cond_broadcast(&ha.cond);
    } else if (rc == 0) {
        ha.leader = leader;
    }
}

/* Registers this node (sys/ha-status). Lock thread; mu held, dropped. */
static void echo_locked(void)
{
    struct storage_ha_node self = ha.self;
    int rc;

    ha.next_echo = time_mono() + ha.renew_ms / 1000.0;
    pthread_mutex_unlock(&ha.mu);
    rc = ha.ops->echo(ha.physical->ctx, &self,
                      ha.renew_ms * HA_FORGET_ECHOES);
    pthread_mutex_lock(&ha.mu);
    if (rc != 0)
        log_debug("ha: could not register this node; retrying");
}

/* Gives the lock up after a step-down once the subsystems stopped. */
static void release_locked(void)
{
    char holder[sizeof(ha.holder)];

    memcpy(holder, ha.holder, sizeof(holder));
    ha.release_wanted = false;
    ha.held = false;
    new_holder_locked();
    update_active_locked();
    pthread_mutex_unlock(&ha.mu);
    if (ha.ops->release(ha.physical->ctx, holder) != 0)
        log_warn("ha: could not release the lock; it expires by itself");
    pthread_mutex_lock(&ha.mu);
}

static void wait_until_locked(double when)
{
    double now = time_mono();
    struct timespec ts;

    if (when <= now)
        return;
    ts = time_deadline(when - now);
    pthread_cond_timedwait(&ha.cond, &ha.mu, &ts);
}

static void *lock_main(void *arg)
{
    double grace = (ha.ttl_ms - 2.0 * ha.renew_ms) / 1000.0;
    double next_try = 0;

    (void)arg;
    pthread_mutex_lock(&ha.mu);
    while (!(ha.stopping && ha.transition_done)) {
        double now = time_mono();

        if (ha.held && now - ha.last_renew > grace) {
            lose_locked("no renewal succeeded in time");
        } else if (ha.held && ha.release_wanted && ha.running == 0) {
            release_locked();
        } else if (ha.held && now - ha.last_renew >= ha.renew_ms / 1000.0) {
            renew_locked();
        } else if (!ha.stopping && now >= ha.next_echo) {
            echo_locked();
        } else if (!ha.held && !ha.stopping && now >= ha.holdoff_until &&
                   now >= next_try) {
            next_try = now + ha.retry_ms / 1000.0;
            contend_locked();
        } else {
            double wake = ha.held ? ha.last_renew + ha.renew_ms / 1000.0
                                  : next_try > ha.holdoff_until
                                        ? next_try
                                        : ha.holdoff_until;

            if (ha.next_echo < wake)
                wake = ha.next_echo;
            wait_until_locked(ha.stopping ? now + 0.05 : wake);
        }
    }
    if (ha.held)
        release_locked();
    pthread_mutex_unlock(&ha.mu);
    return NULL;
}

/*
 * Before activating: the change thread's handoff (it closes its listener
 * after it), so that it reports the old active's last changes while the
 * hooks still may take the state lock they need. mu held.
 */
static void wait_handoff_locked(void)
{
    double until = time_mono() + HA_HANDOFF_WAIT_MS / 1e3;

    while (ha.change_started && ha.heard && !ha.stopping &&
           time_mono() < until)
        wait_until_locked(until);
}

/* Moves running one step towards want. mu held, dropped around hooks. */
static void transition_locked(void)
{
    struct errbuf err;
    unsigned long target = ha.want;
    int rc;

    if (ha.running != 0) {
        pthread_mutex_unlock(&ha.mu);
        ha.hooks.deactivate(ha.hooks.arg);
        pthread_mutex_lock(&ha.mu);
        ha.running = 0;
        log_info("ha: standing by");
    } else {
        errbuf_clear(&err);
        wait_handoff_locked();
        pthread_mutex_unlock(&ha.mu);
        rc = ha.hooks.activate(ha.hooks.arg, &err);
        pthread_mutex_lock(&ha.mu);
        if (rc == 0) {
            ha.running = target;
            if (ha.want == target)
                log_info("ha: this node is active");
        } else {
            log_error("ha: could not become active: %s", err.msg);
            if (ha.want == target) {
                ha.want = 0;
                ha.release_wanted = true;
                ha.holdoff_until = time_mono() + HA_ACTIVATE_HOLDOFF_MS / 1e3;
            }
        }
    }
    update_active_locked();
    pthread_cond_broadcast(&ha.cond);
}

static void *transition_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ha.mu);
    for (;;) {
        if (ha.stopping)
            ha.want = 0;
        if (ha.want != ha.running) {
            transition_locked();
            continue;
        }
        if (ha.stopping)
            break;
        pthread_cond_wait(&ha.cond, &ha.mu);
    }
    ha.transition_done = true;
    pthread_cond_broadcast(&ha.cond);
    pthread_mutex_unlock(&ha.mu);
    return NULL;
}

/* ========================================================== changes == */

/* A marker "<node_id>:<n>" came back: ours if it names this node. */
static void note_sync(const char *marker)
{
    size_t n = strlen(ha.node_id); /* fixed while the threads run */
    unsigned long seq;

    if (strncmp(marker, ha.node_id, n) != 0 || marker[n] != ':')
        return;
    seq = strtoul(marker + n + 1, NULL, 10);
    pthread_mutex_lock(&ha.mu);
    /* Any role that can connect may notify: a marker not yet posted is
     * not ours, and must not release syncs still to come. */
    if (seq > ha.sync_seen && seq <= ha.sync_next)
        ha.sync_seen = seq;
    pthread_cond_broadcast(&ha.sync_cond);
    pthread_mutex_unlock(&ha.mu);
}

/* The listener's report (change thread, mu not held). */
static void on_change(void *arg, enum storage_change_kind kind,
                      const char *what)
{
    (void)arg;
    if (kind == STORAGE_CHANGE_SYNC) {
        note_sync(what);
        return;
    }
    if (ha.hooks.changed != NULL)
        ha.hooks.changed(ha.hooks.arg,
                         kind == STORAGE_CHANGE_KEY ? what : NULL);
    lease_standby_heard(kind == STORAGE_CHANGE_KEY ? what : NULL);
}

/* Changes are no longer heard. Change thread; mu held, dropped. */
static void go_deaf_locked(void)
{
    ha.heard = false;
    ha.resync = false; /* reopening reports a flush, which reloads */
    pthread_cond_broadcast(&ha.sync_cond);
    pthread_cond_broadcast(&ha.cond); /* a takeover waits for it */
    pthread_mutex_unlock(&ha.mu);
    (void)ha.ops->listen(ha.physical->ctx, -1, on_change, NULL);
    if (ha.hooks.deaf != NULL)
        ha.hooks.deaf(ha.hooks.arg);
    lease_standby_deaf();
    pthread_mutex_lock(&ha.mu);
}

/*
 * Posts a marker and listens until it comes back (true) or wait_ms
 * passes or the listener fails (false): every change committed before
 * the post has then been heard. Change thread; mu held, dropped.
 */
static bool marker_back_locked(int wait_ms)
{
    char marker[96];
    unsigned long seq = ++ha.sync_next;
    double until = time_mono() + wait_ms / 1e3;
    bool back;
    int rc;

    snprintf(marker, sizeof(marker), "%s:%lu", ha.node_id, seq);
    pthread_mutex_unlock(&ha.mu);
    rc = ha.ops->sync_post(ha.physical->ctx, marker);
    for (;;) {
        pthread_mutex_lock(&ha.mu);
        back = ha.sync_seen >= seq;
        pthread_mutex_unlock(&ha.mu);
        if (rc != 0 || back || time_mono() >= until)
            break;
        rc = ha.ops->listen(ha.physical->ctx, HA_LISTEN_WAIT_MS, on_change,
                            NULL);
    }
    pthread_mutex_lock(&ha.mu);
    return rc == 0 && back;
}

/*
 * This node acquired the lock while listening: the old active is fenced
 * from that moment, so once a marker posted now comes back, every change
 * it committed has been heard; the lease index says whether it is in
 * step. Change thread; mu held, dropped.
 */
static void handoff_locked(void)
{
    bool back = marker_back_locked(HA_HANDOFF_WAIT_MS);

    pthread_mutex_unlock(&ha.mu);
    lease_standby_handoff(back);
    pthread_mutex_lock(&ha.mu);
}

/*
 * A sync of a request thread failed; it dropped every cache (serving
 * nothing from memory). They are loaded again only here, in the thread
 * that also goes deaf, and only once a marker proves that the listener
 * hears what is committed; a listener that does not is reopened (its
 * flush loads them then). False: the listener was closed. Change thread;
 * mu held, dropped.
 */
static bool resync_locked(void)
{
    ha.resync = false;
    if (!marker_back_locked(HA_HANDOFF_WAIT_MS)) {
        log_warn("ha: the change listener is not in step; reopening it");
        go_deaf_locked();
        return false;
    }
    pthread_mutex_unlock(&ha.mu);
    if (ha.hooks.changed != NULL)
        ha.hooks.changed(ha.hooks.arg, NULL);
    pthread_mutex_lock(&ha.mu);
    return true;
}

static void *change_main(void *arg)
{
    unsigned long tenure = 0;
    bool open = false;
    int rc;

    (void)arg;
    pthread_mutex_lock(&ha.mu);
    while (!ha.stopping) {
        bool standing_by = !ha.held && ha.running == 0 && ha.want == 0;

        /* A tenure since the listener opened: start again from a flush. */
        if (open && (!standing_by || ha.tenure != tenure)) {
            open = false;
            if (ha.held && ha.tenure != tenure)
                handoff_locked();
            go_deaf_locked();
            continue;
        }
        if (!standing_by) {
            wait_until_locked(time_mono() + HA_LISTEN_RETRY_MS / 1e3);
            continue;
        }
        tenure = ha.tenure;
        ha.heard = true;
        pthread_mutex_unlock(&ha.mu);
        rc = ha.ops->listen(ha.physical->ctx, HA_LISTEN_WAIT_MS, on_change,
                            NULL);
        pthread_mutex_lock(&ha.mu);
        if (rc == 0) {
            open = true;
            if (ha.resync && ha.tenure == tenure && !ha.held)
                open = resync_locked();
        } else {
            open = false;
            go_deaf_locked();
            wait_until_locked(time_mono() + HA_LISTEN_RETRY_MS / 1e3);
        }
    }
    go_deaf_locked();
    pthread_mutex_unlock(&ha.mu);
    return NULL;
}

int ha_standby_sync(int timeout_ms)
{
    char marker[96];
    unsigned long seq;
    double until = time_mono() + timeout_ms / 1000.0;
    bool back;
    int rc;

    pthread_mutex_lock(&ha.mu);
    if (!ha.change_started || !ha.heard) {
        pthread_mutex_unlock(&ha.mu);
        return COFFER_ESTANDBY;
    }
    seq = ++ha.sync_next;
    snprintf(marker, sizeof(marker), "%s:%lu", ha.node_id, seq);
    pthread_mutex_unlock(&ha.mu);
    rc = ha.ops->sync_post(ha.physical->ctx, marker);
    pthread_mutex_lock(&ha.mu);
    while (rc == 0 && ha.heard && ha.sync_seen < seq &&
           time_mono() < until) {
        struct timespec ts = time_deadline(until - time_mono());

        pthread_cond_timedwait(&ha.sync_cond, &ha.mu, &ts);
    }
    back = rc == 0 && ha.sync_seen >= seq;
    rc = back ? 0 : ha.heard ? COFFER_EIO : COFFER_ESTANDBY;
    pthread_mutex_unlock(&ha.mu);
    /* Not known to be in step: whatever is cached may predate the write
     * (deaf, it caches nothing). Drop it all and serve nothing from
     * memory until the change thread has proven its listener (loading
     * here could race the listener going deaf, and would trust one that
     * hears nothing). Dropped first, so its reload cannot come before. */
    if (rc == COFFER_EIO) {
        log_warn("ha: the change listener did not catch up in %d ms; "
                 "dropping every cache", timeout_ms);
        if (ha.hooks.deaf != NULL)
            ha.hooks.deaf(ha.hooks.arg);
        pthread_mutex_lock(&ha.mu);
        ha.resync = true;
        pthread_mutex_unlock(&ha.mu);
    }
    return rc;
}

/*
 * An address that may be shown to clients and stored: http(s)://, then
 * printable ASCII without blanks, quotes, '<', '>' or '\\', under 256.
 */
static bool addr_ok(const char *a)
{
    size_t n = strlen(a);

    if (n >= 256 || (!str_has_prefix(a, "http://") &&
                     !str_has_prefix(a, "https://")))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)a[i];

        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\'' ||
            ch == '<' || ch == '>' || ch == '\\' || ch == '`')
            return false;
    }
    return true;
}

/* This host's name for the listing, with anything outside [A-Za-z0-9.-_]
 * replaced, so that a hostile name cannot reach clients as markup. */
static void hostname_safe(char *out, size_t n)
{
    if (gethostname(out, n) != 0 || out[0] == '\0')
        snprintf(out, n, "unknown");
    out[n - 1] = '\0';
    for (char *p = out; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
              *p == '_'))
            *p = '-';
    }
}

static void self_fill_locked(void)
{
    memset(&ha.self, 0, sizeof(ha.self));
    snprintf(ha.self.node_id, sizeof(ha.self.node_id), "%s", ha.node_id);
    hostname_safe(ha.self.hostname, sizeof(ha.self.hostname));
    snprintf(ha.self.api_addr, sizeof(ha.self.api_addr), "%s", ha.api_addr);
    snprintf(ha.self.cluster_addr, sizeof(ha.self.cluster_addr), "%s",
             ha.cluster_addr);
    snprintf(ha.self.version, sizeof(ha.self.version), "%s", COFFER_VERSION);
}

int ha_start(const struct ha_config *cfg, const struct ha_hooks *hooks,
             struct errbuf *err)
{
    const struct storage_ha_ops *ops = storage_ha(cfg->physical);
    char id[40];
    int rc = 0;

    if (ops == NULL) {
        errbuf_set(err, "the storage backend does not support HA");
        return COFFER_EUNSUPPORTED;
    }
    if (cfg->api_addr == NULL || cfg->api_addr[0] == '\0') {
        errbuf_set(err, "HA needs api_addr: the address clients are sent "
                        "to when this node is active");
        return COFFER_EINVAL;
    }
    if (!addr_ok(cfg->api_addr) ||
        (cfg->cluster_addr != NULL && cfg->cluster_addr[0] != '\0' &&
         !addr_ok(cfg->cluster_addr))) {
        errbuf_set(err, "HA: api_addr and cluster_addr must be http(s) URLs "
                        "of printable characters without blanks or quotes, "
                        "under 256 bytes");
        return COFFER_EINVAL;
    }
    if (crypto_uuid(id) != 0) {
        errbuf_set(err, "HA: no randomness for the node id");
        return COFFER_EINTERNAL;
    }
    pthread_mutex_lock(&ha.mu);
    COFFER_ASSERT(!ha.started);
    ha.physical = cfg->physical;
    ha.ops = ops;
    ha.hooks = *hooks;
    ha.ttl_ms = cfg->lock_ttl_ms > 0 ? cfg->lock_ttl_ms : HA_DEFAULT_TTL_MS;
    ha.renew_ms = cfg->renew_ms > 0 ? cfg->renew_ms : HA_DEFAULT_RENEW_MS;
    ha.retry_ms = cfg->retry_ms > 0 ? cfg->retry_ms : HA_DEFAULT_RETRY_MS;
    if (ha.renew_ms * 3 > ha.ttl_ms)
        ha.renew_ms = ha.ttl_ms / 3;
    snprintf(ha.api_addr, sizeof(ha.api_addr), "%s", cfg->api_addr);
    snprintf(ha.cluster_addr, sizeof(ha.cluster_addr), "%s",
             cfg->cluster_addr != NULL ? cfg->cluster_addr : "");
    snprintf(ha.node_id, sizeof(ha.node_id), "%s", id);
    new_holder_locked();
    self_fill_locked();
    forward_set_ca_file(cfg->cluster_ca_file);
    /* Not fatal (the file may appear later), but say so now rather than
     * at the first forwarded request. */
    if (cfg->cluster_ca_file != NULL && cfg->cluster_ca_file[0] != '\0' &&
        access(cfg->cluster_ca_file, R_OK) != 0)
        log_error("ha: cluster_ca_file %s cannot be read; forwarding to an "
                  "https:// active will fail", cfg->cluster_ca_file);
    ha.stopping = ha.held = ha.release_wanted = ha.transition_done = false;
    ha.want = ha.running = 0;
    ha.holdoff_until = ha.next_echo = 0;
    ha.heard = ha.change_started = false;
    memset(&ha.leader, 0, sizeof(ha.leader));
    atomic_store(&ha.active, false);
    if (pthread_create(&ha.transition_thread, NULL, transition_main, NULL) !=
        0) {
        rc = COFFER_EINTERNAL;
    } else if (pthread_create(&ha.lock_thread, NULL, lock_main, NULL) != 0) {
        ha.stopping = true;
        pthread_cond_broadcast(&ha.cond);
        pthread_mutex_unlock(&ha.mu);
        pthread_join(ha.transition_thread, NULL);
        pthread_mutex_lock(&ha.mu);
        rc = COFFER_EINTERNAL;
    } else {
        ha.started = true;
        /* Without it a standby caches nothing and forwards everything. */
        ha.change_started =
            !cfg->disable_standby_reads && ops->listen != NULL &&
            ops->sync_post != NULL &&
            pthread_create(&ha.change_thread, NULL, change_main, NULL) == 0;
    }
    pthread_mutex_unlock(&ha.mu);
    if (rc != 0)
        errbuf_set(err, "HA: cannot start its threads");
    else
        log_info("ha: node %s contends for the lock (api_addr %s)", id,
                 cfg->api_addr);
    return rc;
}

void ha_stop(void)
{
    pthread_mutex_lock(&ha.mu);
    if (!ha.started) {
        pthread_mutex_unlock(&ha.mu);
        return;
    }
    ha.stopping = true;
    update_active_locked();
    pthread_cond_broadcast(&ha.cond);
    pthread_mutex_unlock(&ha.mu);
    pthread_join(ha.transition_thread, NULL);
    pthread_join(ha.lock_thread, NULL);
    if (ha.change_started)
        pthread_join(ha.change_thread, NULL);
    /* Nothing more is heard: the index thread must not outlive storage. */
    lease_standby_quiesce();
    /* Out of the listing at once rather than after going stale. */
    (void)ha.ops->leave(ha.physical->ctx, ha.node_id);
    pthread_mutex_lock(&ha.mu);
    ha.started = ha.change_started = false;
    atomic_store(&ha.active, false);
    pthread_mutex_unlock(&ha.mu);
}

int ha_list_nodes(struct storage_ha_node **out, size_t *n)
{
    const struct storage_ha_ops *ops;
    struct storage *physical;
    int stale_ms, rc;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&ha.mu);
    ops = ha.started ? ha.ops : NULL;
    physical = ha.physical;
    stale_ms = ha.renew_ms * HA_STALE_ECHOES;
    pthread_mutex_unlock(&ha.mu);
    if (ops == NULL)
        return COFFER_ESTANDBY;
    rc = ops->nodes(physical->ctx, stale_ms, out, n);
    return rc;
}

int ha_step_down(int holdoff_ms)
{
    int rc = 0;

    pthread_mutex_lock(&ha.mu);
    if (!ha.started || !ha.held) {
        rc = COFFER_ESTANDBY;
    } else {
        log_info("ha: stepping down; not contending for %d ms", holdoff_ms);
        ha.want = 0;
        ha.release_wanted = true;
        ha.holdoff_until = time_mono() + holdoff_ms / 1000.0;
        update_active_locked();
        pthread_cond_broadcast(&ha.cond);
    }
    pthread_mutex_unlock(&ha.mu);
    return rc;
}

int ha_hold_once(struct storage *physical, int ttl_ms, int wait_ms,
                 char holder[128], struct errbuf *err)
{
    const struct storage_ha_ops *ops = storage_ha(physical);
    char id[40];
    struct storage_ha_claim c;
    double until = time_mono() + wait_ms / 1000.0;
    bool held = false;
    int rc;

    if (ops == NULL)
        return 0;
    if (crypto_uuid(id) != 0) {
        errbuf_set(err, "HA: no randomness for a claim");
        return COFFER_EINTERNAL;
    }
    snprintf(holder, 128, "init/%s", id);
    c = (struct storage_ha_claim){holder, "init", "", ""};
    for (;;) {
        rc = ops->acquire(physical->ctx, &c, ttl_ms, &held);
        if (rc == 0 && held)
            return 0;
        if (time_mono() >= until)
            break;
        nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    }
    errbuf_set(err, rc != 0 ? "HA: the lock could not be taken (storage "
                              "error; see the log)"
                            : "HA: another node holds the lock");
    return rc != 0 ? rc : COFFER_ESTANDBY;
}

void ha_hold_release(struct storage *physical, const char *holder)
{
    const struct storage_ha_ops *ops = storage_ha(physical);

    if (ops != NULL && holder[0] != '\0')
        (void)ops->release(physical->ctx, holder);
}

bool ha_standby_reads(void)
{
    bool on;

    pthread_mutex_lock(&ha.mu);
    on = ha.change_started;
    pthread_mutex_unlock(&ha.mu);
    return on;
}

bool ha_enabled(void)
{
    bool on;

    pthread_mutex_lock(&ha.mu);
    on = ha.started;
    pthread_mutex_unlock(&ha.mu);
    return on;
}

bool ha_is_active(void)
{
    return atomic_load(&ha.active);
}

void ha_get_status(struct ha_status *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&ha.mu);
    out->enabled = ha.started;
    out->is_self = atomic_load(&ha.active);
    snprintf(out->node_id, sizeof(out->node_id), "%s", ha.node_id);
    if (ha.held) {
        out->leader_known = true;
        snprintf(out->leader_node_id, sizeof(out->leader_node_id), "%s",
                 ha.node_id);
        snprintf(out->leader_address, sizeof(out->leader_address), "%s",
                 ha.api_addr);
        snprintf(out->leader_cluster_address,
                 sizeof(out->leader_cluster_address), "%s", ha.cluster_addr);
        out->active_since_unix = ha.active_since;
    } else if (ha.leader.held) {
        out->leader_known = true;
        snprintf(out->leader_node_id, sizeof(out->leader_node_id), "%s",
                 ha.leader.node_id);
        snprintf(out->leader_address, sizeof(out->leader_address), "%s",
                 ha.leader.api_addr);
        snprintf(out->leader_cluster_address,
                 sizeof(out->leader_cluster_address), "%s",
                 ha.leader.cluster_addr);
        out->active_since_unix = ha.leader.acquired_unix;
    }
    pthread_mutex_unlock(&ha.mu);
}
