/*
 * lease.h - leases and the expiration manager.
 *
 * A lease ties something created outside Coffer (a database user) to a
 * time limit. Its record holds everything revocation needs, so that
 * revoking never depends on the role or config that created it.
 *
 *   lease id    <request path>/<24 base62>     "database/creds/ro/2kQ7yX0m..."
 *
 *   storage     sys/expire/id/<lease id>                  the record (JSON)
 *               sys/expire/token/<token hmac>/<sha256(id)> -> lease id
 *
 * The record names its token by hmac ("token") and accessor
 * ("token_accessor"; lease_record.c builds it): a token re-created with a
 * revoked one's id has the same hmac, so only the accessor says whose a
 * lease is.
 *
 * Life of a lease:
 *
 *   lease_create_pending ──▶ PENDING ──lease_activate──▶ ACTIVE ──▶ revoked
 *          (before the engine creates the user)             │  (record deleted
 *                         │                                 │   once the engine's
 *                         └──lease_abort / crash+restart────┘   revoke succeeded)
 *
 * The expiration manager keeps a min-heap of expiry times; a thread pops
 * due leases and hands them to a pool of revocation workers. A failed
 * revocation is retried with capped exponential backoff, forever; after
 * `irrevocable_after` failures the lease is also flagged irrevocable so it
 * shows in sys/leases?type=irrevocable and the counters.
 *
 * The engine side (revoke, renew) is reached through struct lease_ops, and
 * the token store through lease_config.token_ops and token_alive, so this
 * file knows neither Lua nor tokens: lease sits below both and they call
 * down into it. The HTTP side (sys/leases/...) is sys_leases.c.
 */
#ifndef COFFER_LEASE_H
#define COFFER_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common.h"

struct mount;
struct storage;

struct lease_ops {
    /*
     * Revokes what the lease stands for. record is the lease record
     * (fields: id, path, secret_type, internal, ...). Idempotent.
     * Returns 0, or an error with words in err.
     */
    int (*revoke)(const struct mount *m, const cJSON *record,
                  struct errbuf *err);
    /* Extends it to expire_unix (seconds). 0 or an error with words. */
    int (*renew)(const struct mount *m, const cJSON *record,
                 int64_t expire_unix, struct errbuf *err);
    /*
     * Optional: revokes n leases of mount m at once (one database
     * transaction instead of n), each exactly as revoke would. Fills
     * rcs[i] with 0 or an error code and errs[i] with its words; every
     * slot must be set. A lease counts as revoked only by its own rcs[i]
     * == 0. Returns COFFER_EUNSUPPORTED, having done nothing, when the
     * engine cannot batch these leases: they are revoked one at a time,
     * as when this is NULL.
     */
    int (*revoke_batch)(const struct mount *m, const cJSON *const *records,
                        size_t n, int *rcs, struct errbuf *errs);
};

struct lease_config {
    const struct lease_ops *ops;
    /*
     * Leases with secret_type "token" (a token's own lease, VAULT_API 8.1)
     * go here instead of ops: token.c revokes the token tree. NULL = ops.
     */
    const struct lease_ops *token_ops;
    /*
     * Whether the token with this hmac still exists (token.c) and, when
     * accessor is not NULL, is the one with that accessor (a token
     * re-created with a revoked one's id has its hmac, not its
     * accessor). Asked when a lease is recorded for a token, before a
     * token's revocation marks a lease, and by tidy. NULL = every token
     * counts as alive.
     */
    bool (*token_alive)(const char *token_hmac, const char *accessor);
    unsigned int workers;     /* revocation workers, default 16 */
    double retry_base;        /* seconds before the first retry, default 1 */
    double retry_max;         /* backoff cap in seconds, default 60 */
    int irrevocable_after;    /* failures before flagging, default 6 */
    /*
     * Called after a lease's record is deleted, whatever ended it
     * (expiry, a request, a bulk revocation, a token's cascade); internal
     * is the lease's internal data (e.g. the database username). For the
     * audit log. Must not call back into lease.c. NULL = none.
     */
    void (*revoked)(const char *lease_id, const char *reason,
                    const cJSON *internal);
};

/*
 * Restores every lease from storage (pending ones are revoked at once) and
 * starts the expiration thread and workers.
 */
int lease_init(struct storage *s, const struct lease_config *cfg,
               struct errbuf *err);
/* Stops the threads; leases stay in storage. */
void lease_shutdown(void);

/*
 * A pending lease as its creator holds it from lease_create_pending to
 * lease_activate: the id, and the record with the exact text stored, so
 * that activation need not read the record back and parse it (issue 14).
 */
struct lease_pending;

/*
 * Records a pending lease before the engine creates anything; it is
 * durable when this returns 0. internal is taken over (NULL = {}), also on
 * failure. token_hmac and token_accessor (the token that asks) may be
 * NULL. On success *out is the caller's, to free with lease_pending_free
 * after lease_activate or lease_abort.
 */
int lease_create_pending(const struct mount *m, const char *request_path,
                         const char *secret_type, cJSON *internal,
                         const char *token_hmac, const char *token_accessor,
                         struct lease_pending **out, struct errbuf *err);
const char *lease_pending_id(const struct lease_pending *p);
void lease_pending_free(struct lease_pending *p);

/*
 * Turns a pending lease into an active one, durably. ttl and max_ttl are
 * what the engine asks for (0 = mount default / mount max); the result is
 * capped by the mount and system maximum. *granted receives the TTL in
 * seconds. Under the lease's claim the stored record is read and must be
 * the text the creator stored; otherwise (revoked, marked for revocation,
 * changed by another node) what is stored decides, as if p held no copy.
 * p's copy is used up either way; a retry reads storage.
 */
int lease_activate(struct lease_pending *p, const struct mount *m,
                   int64_t ttl, int64_t max_ttl, bool renewable,
                   int64_t *granted, struct errbuf *err);

/*
 * Counts leases under prefix whose internal[key] equals value (a database
 * config asks how many live leases still need it). O(leases under prefix).
 */
int lease_count_matching(const char *prefix, const char *key,
                         const char *value, size_t *count);

/*
 * Appends internal[key] of every lease under prefix (pending included;
 * string values only) to out: one pass (orphan reconciliation).
 */
struct strvec;
int lease_collect_values(const char *prefix, const char *key,
                         struct strvec *out);

/*
 * Records the lease of a token (secret_type "token"), active at once:
 *
 *   lease id    <creation path>/<token hmac>
 *               "auth/token/create/3f1c...", "auth/userpass/login/alice/3f1c..."
 *
 * internal = {"token": <hmac>}; token_accessor is the token's. A token
 * re-created with the same id has the same lease id: the accessor tells
 * the two apart, and a record the old one left is dropped here. The lease
 * is indexed under the token's own hmac, so revoking the token
 * (lease_revoke_token) drops it too, and its expiry revokes the token
 * tree through lease_config.token_ops. ttl is the
 * token's TTL in seconds (> 0); max_ttl bounds sys/leases renewals. On
 * success *lease_id is a new string.
 */
int lease_register_token(const struct mount *m, const char *path,
                         const char *token_hmac, const char *accessor,
                         int64_t ttl, int64_t max_ttl, bool renewable,
                         char **lease_id, struct errbuf *err);

/*
 * Moves an active lease's expiry to expire_unix (token renewal) and
 * records ttl as its last granted TTL. 0, or COFFER_ENOTFOUND, also when
 * accessor is set and the lease is another token's (one re-created with
 * the same id since).
 */
int lease_extend(const char *lease_id, const char *accessor,
                 int64_t expire_unix, int64_t ttl);

/* Revokes a lease now (engine first, then the record). */
int lease_revoke(const char *lease_id, struct errbuf *err);
/* Same for an issuance that failed after lease_create_pending. */
void lease_abort(const char *lease_id);

/*
 * Revokes every lease whose id starts with prefix (a whole lease id also
 * works). With force, engine failures are logged and records deleted.
 * Returns 0, or the first error; the other leases are still attempted.
 */
int lease_revoke_prefix(const char *prefix, bool force, struct errbuf *err);

/*
 * Schedules every lease obtained with this token for revocation now.
 * revoking_lease_id is the lease whose revocation is revoking the token
 * (token_ops->revoke passes record.id), NULL otherwise: that lease is
 * skipped, since its revoker holds it and is deleting it anyway.
 */
void lease_revoke_token(const char *token_hmac, const char *revoking_lease_id);

/*
 * How many nice steps (0..19; 10 by default) the revocation workers run
 * below the process's threads that answer requests, 19 at most: workers
 * started afterwards take it, 0 leaves them on a par (config
 * lease_revocation_nice, read at start). Call before lease_init.
 */
void lease_set_worker_nice(int nice);

/*
 * Revokes a lease in the background: its expiry is set to now, durably,
 * and the expiration manager does the rest (sys/leases/revoke sync=false).
 */
void lease_revoke_async(const char *lease_id);

/* ---- what sys/leases/... (sys_leases.c) reads and does ---- */

/* Vault's lookup data of a lease ({id, issue_time, ...}), or NULL. */
cJSON *lease_lookup(const char *lease_id);

/* Appends the names under lease-id prefix prefix (one level) to keys. */
struct strvec;
int lease_list(const char *prefix, struct strvec *keys);

/* Every irrevocable lease: [{lease_id, mount_id, error, expire_time}]. */
cJSON *lease_irrevocable(void);

/*
 * Renews a lease by increment seconds (0 = the TTL it was granted),
 * through its engine. Returns 0 with *out filled, or:
 *   COFFER_ENOTFOUND, COFFER_EINVAL  refused; err has Vault's words
 *   COFFER_EIO                       the engine failed; err has its words
 *   COFFER_EINTERNAL                 the new expiry could not be stored
 */
struct lease_renewal {
    int64_t ttl;         /* granted, seconds */
    int64_t max_ttl;     /* the lease's maximum */
    int64_t capped_from; /* the TTL asked for when max_ttl cut it, else 0 */
};
int lease_renew(const char *lease_id, int64_t increment,
                struct lease_renewal *out, struct errbuf *err);

/* Asks lease_tick for a tidy pass (sys/leases/tidy). */
void lease_request_tidy(void);

/*
 * Runs a tidy pass if one was requested (lease_request_tidy): drops
 * token index entries whose lease is gone and revokes leases whose token
 * no longer exists. Called from the periodic-work thread.
 */
void lease_tick(void);

/* Durations of one kind of call, in milliseconds. */
struct lease_timing {
    uint64_t count;
    double sum_ms, min_ms, max_ms;
};

/* Counters for metrics and tests. */
struct lease_stats {
    uint64_t active;        /* records in storage (pending included) */
    uint64_t pending;       /* records still pending */
    uint64_t queued;        /* due ids waiting for a revocation worker */
    uint64_t created;       /* records created since start */
    struct lease_timing revoke_time; /* engines' revoke calls */
    uint64_t revoked;       /* successful revocations since start */
    uint64_t failures;      /* failed revocation attempts since start */
    uint64_t irrevocable;   /* leases currently flagged */
};
void lease_get_stats(struct lease_stats *out);

#endif
