/*
 * lifecycle.h - the server's state: sealed or active, and the moves
 * between them.
 *
 * Owns the barrier over the physical storage, the read cache in front of
 * the barrier's view (storage_cache.h: filled only while active, wiped
 * before every seal), the state lock and the `active` flag, and the one
 * place each move happens: starting the
 * subsystems that need an unsealed barrier (token store, router,
 * policies, leases, ticker) after an unseal, stopping them and sealing
 * the barrier again, writing the root token of a fresh init, and dev
 * mode's one-step bootstrap. Does not own the keys (seal.c), the seal
 * endpoints (sys_seal.c) nor the request pipeline (core.c).
 *
 * The state lock: a request runs between lifecycle_enter() and
 * lifecycle_leave(), holding the lock for reading; sealing, unsealing
 * and shutdown take it for writing, so subsystems never go away under a
 * request. `active` is only written under the write lock. The seal
 * endpoints run outside it, as they are what changes the state.
 *
 * Every function is thread-safe after lifecycle_setup().
 */
#ifndef COFFER_LIFECYCLE_H
#define COFFER_LIFECYCLE_H

#include <stdbool.h>

#include "common.h"
#include "request.h"

struct barrier;
struct ha_config;
struct storage;
struct token;

struct lifecycle_config {
    bool dev_mode;                 /* router_init's dev mounts */
    const char *dev_root_token_id; /* NULL = random; borrowed */
    struct storage *physical;      /* borrowed; the barrier wraps it */
    unsigned int lease_workers;    /* 0 = default */
    double lease_retry_base;       /* seconds, 0 = default */
    double lease_retry_max;        /* seconds, 0 = default */
    double tick_interval;          /* periodic engine work, 0 = 5 s */
    /*
     * High availability (ha.h), or NULL for a single node. With it, an
     * unseal leaves the node standing by (barrier open, nothing running)
     * and the subsystems start only while it holds the HA lock.
     */
    const struct ha_config *ha;
};

/*
 * Builds the barrier over cfg->physical, binds the seal to it and puts
 * the read cache in front of its view (unless storage_cache_configure
 * disabled it). The server is then sealed (or uninitialised). cfg is
 * copied; the strings and storage it points to must outlive the server.
 * Call once, before any other thread runs.
 */
void lifecycle_setup(const struct lifecycle_config *cfg);

/*
 * Dev mode: initialises with one key share, writes the root token,
 * unseals and starts. *root_token and *unseal_key (base64) are then new
 * strings the caller frees with secure_free_str. 0 or COFFER_E* with
 * words in err.
 */
int lifecycle_dev_bootstrap(char **root_token, char **unseal_key,
                            struct errbuf *err);

/*
 * Stops the subsystems and frees the barrier (which wipes its keys).
 * Call after every thread that serves requests has stopped.
 */
void lifecycle_teardown(void);

/*
 * The barrier (never NULL after lifecycle_setup). Its storage is the
 * logical storage every subsystem reads through.
 */
struct barrier *lifecycle_barrier(void);

/* True while unsealed with every subsystem running. */
bool lifecycle_is_active(void);

/*
 * True while HA is on and the node is unsealed but not active: requests
 * go to the active node (core.c) instead of failing as sealed.
 */
bool lifecycle_is_standby(void);

/* ---- the state lock (core.c, around one request) --------------------- */

/*
 * Takes the state lock for reading and says whether the server is
 * active. Always pair with lifecycle_leave(), whatever it returned.
 */
bool lifecycle_enter(void);
void lifecycle_leave(void);

/*
 * HA standby reads: lifecycle_enter that also says true on a standby
 * whose read-only subsystems are loaded (it hears the active's changes).
 * Pair with lifecycle_leave(). lifecycle_standby_reads: that state, now.
 */
bool lifecycle_enter_reads(void);
bool lifecycle_standby_reads(void);

/*
 * The request's token, resolved the one way: looked up (without taking
 * a use) and refused from an address outside its CIDR bindings. NULL if
 * there is none to use. Caller is inside lifecycle_enter() and the
 * server is active; free the result with token_free.
 */
struct token *lifecycle_request_token(const struct request *req);

/*
 * lifecycle_request_token for the seal endpoints, which run outside the
 * state lock: takes it itself. NULL while sealed.
 */
struct token *lifecycle_lookup_token(const struct request *req);

/* ---- the moves (sys_seal.c) ------------------------------------------ */

/*
 * Around sys/init's writes (sys_seal.c): with HA, holds the lock so that
 * the storage accepts them (no node is active before init). 0, or an
 * error with words in err; lifecycle_init_end after either.
 */
int lifecycle_init_begin(struct errbuf *err);
void lifecycle_init_end(void);

/*
 * After seal_init left the barrier open: writes the first mounts and the
 * root token (*root_token, a new string; free with secure_free_str),
 * then seals the barrier whatever happened, as Vault leaves a freshly
 * initialised server. 0 or COFFER_E* with words in err.
 */
int lifecycle_init_root_token(char **root_token, struct errbuf *err);

/*
 * After seal_submit_share opened the barrier: starts the subsystems
 * (write lock: waits for requests in flight). On failure the barrier is
 * sealed again and err says why. 0 or COFFER_E*. With HA, starts
 * contending for the lock instead: the subsystems start once it is ours.
 */
int lifecycle_activate(struct errbuf *err);

/*
 * The one seal operation: stops the subsystems (write lock) and seals
 * the barrier, wiping its keys. Database connections close too: sealed
 * means no live credentials. With HA, gives the lock up first. Idempotent.
 */
void lifecycle_seal(void);

#endif
