/*
 * token.h - the token store: create, look up, renew, revoke, accessors.
 *
 * Token formats:
 *
 *   client token   "hvs." + 24 base62       shown once, never stored
 *   accessor       24 base62                stored, safe to log
 *   stored id      hex(HMAC-SHA256(salt, client token))
 *
 * Storage layout (all values JSON):
 *   token/id/<hmac>         the token entry
 *   token/accessor/<acc>    -> <hmac>
 *   token/parent/<phmac>/<hmac>   child index, for revoke-tree
 *   token/role/<name>       a token role (auth/token/roles/<name>)
 *   core/token-salt         random salt, created at first start
 *
 * Lookups of unlimited tokens are served from token_cache.c (parsed
 * entries by HMAC, bounded, dropped by every write of the entry, emptied
 * at seal and unseal); expiry is checked against the clock on every hit.
 * Every function is thread-safe. Every change to a stored entry (a use,
 * a renewal, a revocation, a new child under its parent) re-reads the
 * entry under the store's lock, so no change is ever made from a stale
 * copy and a revoked token is never written back.
 *
 * Use-limited tokens (num_uses > 0): a request takes its use before it
 * runs. The last use marks the entry "revocation pending" (num_uses -1
 * in storage; lookups no longer find it) and the pipeline revokes the
 * token once that request is done, as Vault does.
 */
#ifndef COFFER_TOKEN_H
#define COFFER_TOKEN_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "request.h"
#include "util.h"

struct mount;
struct storage;

struct token {
    char *id_hmac;       /* storage key part; never the client token */
    char accessor[CRYPTO_ID_LEN + 1];
    char *parent_hmac;   /* NULL for orphans */
    char *display_name;  /* "root", "token", "token-foo" */
    char *path;          /* "auth/token/create", "auth/token/root" */
    struct strvec policies; /* sorted, de-duplicated */
    cJSON *meta;         /* object of strings or NULL */
    int64_t creation_time;  /* unix seconds */
    struct timespec issue_time;
    int64_t creation_ttl;   /* seconds, 0 = never expires */
    int64_t ttl;            /* last granted TTL in seconds */
    int64_t expire_time;    /* unix seconds, 0 = never */
    int64_t explicit_max_ttl;
    int64_t period;
    int64_t num_uses;       /* 0 = unlimited */
    bool renewable;
    bool orphan;
    bool is_root;           /* has the root policy */
    char *entity_id;        /* "" for now */
    char *type;             /* "service" */
    int64_t last_renewal;   /* unix seconds, 0 = never */
    int64_t max_ttl;        /* renewal cap in seconds, 0 = system max */
    char *lease_id;         /* its own lease (lease.c), NULL if none */
    char *role;             /* token role it was created with, or NULL */
    struct strvec bound_cidrs;
    bool last_use;          /* this request took the token's last use */
};

/*
 * Told of every token created but the root token (metrics.c counts them as
 * Vault's token.creation): the auth method's type ("token" for
 * auth/token/create, "response_wrapping" for a wrapping token), its mount
 * path, the TTL in seconds and the token type. A hook, set once at
 * start-up, because metrics sits above this module.
 */
typedef void (*token_created_fn)(const char *auth_method,
                                 const char *mount_point, int64_t ttl,
                                 const char *token_type);
void token_set_created_hook(token_created_fn fn);

/* Loads or creates the salt. Call once at start-up. 0 or COFFER_E*. */
int token_store_init(struct storage *s);
void token_store_shutdown(void);

/*
 * Creates the root token. If id is NULL or empty a random one is made.
 * On success *client_token is a new string the caller frees.
 */
int token_create_root(const char *id, char **client_token);

/*
 * Looks up a client token. Returns a new struct token the caller frees with
 * token_free, or NULL when the token is unknown, expired, revoked or
 * pending revocation. When use is true it also takes a use (token_use)
 * and returns NULL if none is left.
 */
struct token *token_lookup(const char *client_token, bool use);

/*
 * Takes one use of t, atomically with a fresh read of its entry: 0 when
 * the request may run, COFFER_ENOTFOUND when the token was revoked, used
 * up or is pending revocation since t was looked up. A no-op for
 * unlimited tokens. After the last use t->last_use is set and t->num_uses
 * is 0; the caller runs the request, then calls token_finish_use.
 */
int token_use(struct token *t);

/*
 * After the request that took t's last use: revokes the token (and so the
 * leases that request created). No-op unless t->last_use.
 */
void token_finish_use(const struct token *t);
void token_free(struct token *t);

/*
 * True if a token is stored under this HMAC id and has not expired,
 * including one whose revocation is pending (lease and token tidy).
 */
bool token_exists_hmac(const char *hmac);
/*
 * token_exists_hmac, and when accessor is not NULL only if the token is
 * the one with that accessor (lease_config.token_alive).
 */
bool token_alive_as(const char *hmac, const char *accessor);

/* Like token_lookup, by accessor (never counts a use). NULL if unknown. */
struct token *token_lookup_accessor(const char *accessor);

/*
 * Creates the token for a successful login (an auth method's identity,
 * VAULT_API 3.3). identity is the object the method's login handler
 * returned: display_name, policies, metadata (object of strings), ttl,
 * max_ttl, explicit_max_ttl, period (seconds), renewable (default true),
 * num_uses, bound_cidrs, no_default_policy. The token is an orphan, named
 * "<mount>-<display_name>" reduced to [A-Za-z0-9-] (the name reaches
 * database username templates), holds "default" unless
 * no_default_policy, and may not hold "root". path is the login request
 * path ("auth/userpass/login/alice"); the token's lease is <path>/<hmac>
 * on mount m. On success sets resp->auth (and warnings); on failure resp
 * holds the error.
 */
void token_create_identity(const struct mount *m, const char *path,
                           const cJSON *identity, struct response *resp);

/*
 * lease_ops for token leases (secret_type "token"): revoke revokes the
 * token tree named by record.internal.token (idempotent); renew refuses,
 * as Vault does for sys/leases/renew on a token lease.
 */
int token_lease_revoke(const struct mount *m, const cJSON *record,
                       struct errbuf *err);
int token_lease_renew(const struct mount *m, const cJSON *record,
                      int64_t expire_unix, struct errbuf *err);

/* Handles a request to the auth/token/ mount. */
void token_handle(struct request *req, struct response *resp);

/*
 * Whether t may be used from addr: always without token_bound_cidrs, else
 * only from inside one of its blocks (a malformed block matches nothing,
 * a NULL addr none).
 */
bool token_address_allowed(const struct token *t, const char *addr);

#endif
