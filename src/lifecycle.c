/*
 * lifecycle.c - the server's state: sealed or active, and the moves
 * between them.
 *
 *   setup          barrier over the physical storage, seal bound to it,
 *                  the read cache in front of the barrier's view
 *   activate       read cache on, token store, router, policies, leases,
 *                  ticker
 *   seal           stop all of that, close database connections, wipe
 *                  and switch off the read cache, seal the barrier
 *   teardown       seal's stop, wipe and free the read cache, then free
 *                  the barrier
 *   standby load   HA, standing by and hearing the active's changes: read
 *                  cache on, token store, router, policies, audit, read
 *                  only (no leases, no ticker); reloaded when a change
 *                  touches their keys, dropped when changes go unheard
 *
 * Requests hold the state lock for reading (lifecycle_enter); every move
 * takes it for writing, so it waits for the requests in flight and holds
 * new ones off. The seal endpoints (sys_seal.c) decide when to move;
 * this file is the only one that starts or stops the subsystems or
 * seals the barrier.
 */
#include "lifecycle.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "audit.h"
#include "barrier.h"
#include "db_mysql.h"
#include "db_pg.h"
#include "ha.h"
#include "lease.h"
#include "log.h"
#include "luavm.h"
#include "luavm_lease.h"
#include "policy.h"
#include "router.h"
#include "seal.h"
#include "storage.h"
#include "storage_cache.h"
#include "ticker.h"
#include "token.h"
#include "token_cache.h"

static struct {
    pthread_rwlock_t lock;
    struct lifecycle_config cfg;
    struct barrier *barrier;
    /* Decrypted values: holds entries only while active; NULL if the
     * config disables it. */
    struct storage_cache *cache;
    bool active;
    bool contending; /* HA: unsealed, ha_start done */
    /* contending && !active, read without the lock on every request */
    atomic_bool standby;
    /* Standing by with the read-only subsystems loaded (standby reads). */
    atomic_bool standby_loaded;
    char init_holder[128]; /* HA: sys/init's hold of the lock, or "" */
} state = {.lock = PTHREAD_RWLOCK_INITIALIZER};

/* Mass expiry: many leases of one mount in one Lua call (luavm_lease.c),
 * on the storage the Lua runtime was given (core.c: the barrier's). */
static int engine_revoke_batch(const struct mount *m,
                               const cJSON *const *records, size_t n,
                               int *rcs, struct errbuf *errs)
{
    return luavm_lease_revoke_batch(barrier_storage(state.barrier), m,
                                    records, n, rcs, errs);
}

/* Leases reach their engines through the Lua runtime. */
static const struct lease_ops engine_lease_ops = {
    .revoke = luavm_lease_revoke,
    .renew = luavm_lease_renew,
    .revoke_batch = engine_revoke_batch,
};

/* A token's own lease revokes the token tree (token.c). */
static const struct lease_ops token_lease_ops = {
    .revoke = token_lease_revoke,
    .renew = token_lease_renew,
};

/*
 * The cache goes in place in front of the barrier's view, so every holder
 * of barrier_storage() (the Lua runtime and cubbyhole keep the pointer
 * from start-up) reads and writes through it. It stays empty until
 * activation. Runs before any other thread.
 */
static void cache_setup(void)
{
    struct storage_cache_limits lim = {0};
    bool disabled = false;

    storage_cache_settings(&lim.max_entries, &disabled);
    if (!disabled)
        state.cache = storage_cache_interpose(barrier_storage(state.barrier),
                                              &lim);
}

void lifecycle_setup(const struct lifecycle_config *cfg)
{
    state.cfg = *cfg;
    state.barrier = barrier_new(cfg->physical);
    seal_setup(state.barrier, cfg->physical);
    cache_setup();
}

/*
 * Wipes the cache's plaintext, then seals. Caller holds the write lock,
 * or is the init endpoint before the server was ever active.
 */
static void seal_locked(void)
{
    storage_cache_enable(state.cache, false);
    barrier_seal(state.barrier);
}

struct barrier *lifecycle_barrier(void)
{
    return state.barrier;
}

/* ========================================================= state lock == */

bool lifecycle_enter(void)
{
    pthread_rwlock_rdlock(&state.lock);
    return state.active;
}

void lifecycle_leave(void)
{
    pthread_rwlock_unlock(&state.lock);
}

bool lifecycle_is_active(void)
{
    bool active = lifecycle_enter();

    lifecycle_leave();
    return active;
}

struct token *lifecycle_request_token(const struct request *req)
{
    struct token *t = token_lookup(req->client_token, false);

    if (t != NULL && !token_address_allowed(t, req->remote_addr)) {
        token_free(t);
        t = NULL;
    }
    return t;
}

struct token *lifecycle_lookup_token(const struct request *req)
{
    struct token *t = NULL;

    if (lifecycle_enter())
        t = lifecycle_request_token(req);
    lifecycle_leave();
    return t;
}

/* ============================================================== moves == */

/* Starts what needs the unsealed barrier. Caller holds the write lock. */
static int activate_locked(struct errbuf *err)
{
    struct storage *logical = barrier_storage(state.barrier);
    struct lease_config lcfg = {
        .ops = &engine_lease_ops,
        .token_ops = &token_lease_ops,
        .token_alive = token_alive_as,
        .revoked = audit_log_revocation,
        .workers = state.cfg.lease_workers,
        .retry_base = state.cfg.lease_retry_base,
        .retry_max = state.cfg.lease_retry_max,
    };
    int rc;

    if (state.active)
        return 0;
    storage_cache_enable(state.cache, true);
    rc = token_store_init(logical);
    if (rc != 0) {
        errbuf_set(err, "token store: %s", coffer_strerror(rc));
        return rc;
    }
    rc = router_init(logical, state.cfg.dev_mode, err);
    if (rc == 0)
        rc = policy_init(logical, err);
    if (rc == 0) /* before leases: expiries at start-up are audited */
        rc = audit_init(logical, err);
    if (rc == 0)
        rc = lease_init(logical, &lcfg, err);
    if (rc == 0)
        rc = ticker_start(state.cfg.tick_interval, err);
    if (rc != 0) {
        lease_shutdown();
        audit_shutdown();
        policy_shutdown();
        router_shutdown();
        token_store_shutdown();
        return rc;
    }
    state.active = true;
    log_info("core: active");
    return 0;
}

/* Stops what activate_locked started. Caller holds the write lock. */
static void deactivate_locked(void)
{
    if (!state.active)
        return;
    ticker_stop();
    lease_shutdown();
    audit_shutdown();
    policy_shutdown();
    router_shutdown();
    token_store_shutdown();
    /* Sealed means no live credentials either: database connections made
     * with a config's root password are closed, and reopened on demand. */
    db_shutdown();
    dbmy_shutdown();
    state.active = false;
    log_info("core: inactive");
}

/* After any change of active or contending. Caller holds the write lock. */
static void note_standby_locked(void)
{
    atomic_store_explicit(&state.standby, state.contending && !state.active,
                          memory_order_release);
}

/* ========================================================= standby == */

/*
 * What a standby needs to serve reads, loaded read-only: no lease
 * manager and no ticker (they write and expire), and the storage refuses
 * its writes anyway (the fence). A load that would have to write (a
 * missing default policy or audit salt) fails, and the standby forwards
 * everything. Caller holds the write lock.
 */
static void standby_unload_locked(void)
{
    if (!atomic_load(&state.standby_loaded))
        return;
    atomic_store(&state.standby_loaded, false);
    audit_shutdown();
    policy_shutdown();
    router_shutdown();
    token_store_shutdown();
    storage_cache_enable(state.cache, false);
}

static void standby_load_locked(void)
{
    struct storage *logical = barrier_storage(state.barrier);
    struct errbuf err;
    int rc;

    if (!state.contending || state.active ||
        atomic_load(&state.standby_loaded))
        return;
    errbuf_clear(&err);
    storage_cache_enable(state.cache, true);
    rc = token_store_init(logical);
    if (rc == 0)
        rc = router_init(logical, false, &err);
    if (rc == 0)
        rc = policy_init(logical, &err);
    if (rc == 0)
        rc = audit_init(logical, &err);
    atomic_store(&state.standby_loaded, true);
    if (rc != 0) {
        log_warn("ha: standby reads off until the next change: %s",
                 err.msg[0] != '\0' ? err.msg : coffer_strerror(rc));
        standby_unload_locked();
    }
}

/* Keys whose change needs a reload of what a standby keeps in memory. */
static bool standby_reload_key(const char *key)
{
    return strcmp(key, "core/mounts") == 0 ||
           strcmp(key, "core/cubbyhole-mount") == 0 ||
           strcmp(key, "core/audit") == 0 ||
           strcmp(key, "core/token-salt") == 0 ||
           strcmp(key, "core/keyring") == 0 ||
           str_has_prefix(key, "sys/policy/");
}

/* Everything again from storage; the keyring too when it may have
 * rotated (keyring: its key changed, or anything may have). */
static void standby_reload(bool keyring)
{
    struct errbuf err;

    pthread_rwlock_wrlock(&state.lock);
    if (state.contending && !state.active) {
        standby_unload_locked();
        storage_cache_enable(state.cache, false); /* wipes, refuses fills */
        token_cache_clear();
        errbuf_clear(&err);
        if (keyring && barrier_reload(state.barrier, &err) != 0)
            log_warn("ha: reloading the keyring: %s", err.msg);
        else
            standby_load_locked();
    }
    pthread_rwlock_unlock(&state.lock);
}

/*
 * HA hook (ha.c's change thread): the active committed key (NULL: any).
 * The caches drop it the way they drop a write of this node's own, so a
 * read that began before it cannot refill the old value.
 */
static void ha_changed(void *arg, const char *key)
{
    (void)arg;
    if (key == NULL) {
        standby_reload(true);
        return;
    }
    storage_cache_invalidate(state.cache, key);
    if (str_has_prefix(key, "token/id/")) {
        token_cache_write_begin(key + strlen("token/id/"));
        token_cache_write_end(key + strlen("token/id/"));
    }
    if (standby_reload_key(key))
        standby_reload(strcmp(key, "core/keyring") == 0);
}

/* HA hook: changes are no longer heard; serve nothing from memory. */
static void ha_deaf(void *arg)
{
    (void)arg;
    pthread_rwlock_wrlock(&state.lock);
    if (!state.active) {
        standby_unload_locked();
        storage_cache_enable(state.cache, false);
    }
    pthread_rwlock_unlock(&state.lock);
}

bool lifecycle_enter_reads(void)
{
    pthread_rwlock_rdlock(&state.lock);
    return state.active || atomic_load(&state.standby_loaded);
}

bool lifecycle_standby_reads(void)
{
    return atomic_load(&state.standby_loaded);
}

/*
 * HA hooks (ha.c's transition thread). Taking over reads the keyring
 * again (the last active may have rotated it) and then starts what an
 * unseal starts; the restore in lease_init is the takeover's scan.
 */
static int ha_activate(void *arg, struct errbuf *err)
{
    int rc;

    (void)arg;
    pthread_rwlock_wrlock(&state.lock);
    standby_unload_locked();
    rc = barrier_reload(state.barrier, err);
    if (rc == 0)
        rc = activate_locked(err);
    note_standby_locked();
    pthread_rwlock_unlock(&state.lock);
    return rc;
}

/* Back to standing by; the cache held what a writer may since change. */
static void ha_deactivate(void *arg)
{
    (void)arg;
    pthread_rwlock_wrlock(&state.lock);
    deactivate_locked();
    storage_cache_enable(state.cache, false);
    note_standby_locked();
    pthread_rwlock_unlock(&state.lock);
}

int lifecycle_activate(struct errbuf *err)
{
    const struct ha_hooks hooks = {ha_activate, ha_deactivate, ha_changed,
                                   ha_deaf, NULL};
    int rc;

    if (state.cfg.ha != NULL) {
        pthread_rwlock_wrlock(&state.lock);
        rc = state.contending ? 0 : ha_start(state.cfg.ha, &hooks, err);
        if (rc == 0)
            state.contending = true;
        else
            seal_locked();
        note_standby_locked();
        pthread_rwlock_unlock(&state.lock);
        return rc;
    }
    pthread_rwlock_wrlock(&state.lock);
    rc = activate_locked(err);
    if (rc != 0)
        seal_locked();
    pthread_rwlock_unlock(&state.lock);
    return rc;
}

bool lifecycle_is_standby(void)
{
    return atomic_load_explicit(&state.standby, memory_order_acquire);
}


/* Stops contending (outside the state lock: the hooks take it). */
static void stop_contending(void)
{
    bool contending;

    pthread_rwlock_rdlock(&state.lock);
    contending = state.contending;
    pthread_rwlock_unlock(&state.lock);
    if (!contending)
        return;
    ha_stop();
    pthread_rwlock_wrlock(&state.lock);
    standby_unload_locked();
    state.contending = false;
    note_standby_locked();
    pthread_rwlock_unlock(&state.lock);
}

void lifecycle_seal(void)
{
    stop_contending();
    pthread_rwlock_wrlock(&state.lock);
    deactivate_locked();
    seal_locked();
    pthread_rwlock_unlock(&state.lock);
}

int lifecycle_init_begin(struct errbuf *err)
{
    state.init_holder[0] = '\0';
    if (state.cfg.ha == NULL)
        return 0;
    return ha_hold_once(state.cfg.ha->physical, 30000, 10000,
                        state.init_holder, err);
}

void lifecycle_init_end(void)
{
    if (state.cfg.ha != NULL)
        ha_hold_release(state.cfg.ha->physical, state.init_holder);
    state.init_holder[0] = '\0';
}

/* The first mounts and the root token, on a barrier seal_init opened. */
static int write_root_token(char **root_token, struct errbuf *err)
{
    struct storage *logical = barrier_storage(state.barrier);
    int rc = token_store_init(logical);

    if (rc == 0)
        rc = router_init(logical, state.cfg.dev_mode, err);
    if (rc == 0)
        rc = token_create_root(state.cfg.dev_root_token_id, root_token);
    if (rc != 0 && err->msg[0] == '\0')
        errbuf_set(err, "creating the root token failed: %s",
                   coffer_strerror(rc));
    router_shutdown();
    token_store_shutdown();
    return rc;
}

int lifecycle_init_root_token(char **root_token, struct errbuf *err)
{
    int rc = write_root_token(root_token, err);

    seal_locked(); /* outside the lock, as the seal endpoints run */
    return rc;
}

int lifecycle_dev_bootstrap(char **root_token, char **unseal_key,
                            struct errbuf *err)
{
    uint8_t *share = NULL;
    char b64[2 * SEAL_SHARE_LEN + 4];
    int rc = seal_init(1, 1, &share, err);

    if (rc == 0)
        rc = write_root_token(root_token, err);
    if (rc == 0)
        rc = lifecycle_activate(err);
    if (rc == 0) {
        EVP_EncodeBlock((unsigned char *)b64, share, SEAL_SHARE_LEN);
        *unseal_key = xstrdup(b64);
    }
    crypto_wipe(b64, sizeof(b64));
    secure_free(share, SEAL_SHARE_LEN);
    return rc;
}

void lifecycle_teardown(void)
{
    stop_contending();
    pthread_rwlock_wrlock(&state.lock);
    deactivate_locked();
    pthread_rwlock_unlock(&state.lock);
    storage_cache_free(state.cache); /* wipes; the view is restored */
    state.cache = NULL;
    barrier_free(state.barrier);
    state.barrier = NULL;
}
