/*
 * token_internal.h - what the token store (token.c) shares with the
 * auth/token/ endpoints (token_endpoints.c, token_roles.c) and with
 * response wrapping (wrapping.c, which mints its single-use tokens with
 * token_mint and token_persist_new). Nothing else includes it: the rest
 * of Coffer uses token.h.
 *
 * Locking: write_lock (token_write_lock) serialises every
 * read-modify-write of stored entries and the parent index; it is never
 * held while calling into lease.c (see token.c).
 */
#ifndef COFFER_TOKEN_INTERNAL_H
#define COFFER_TOKEN_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "request.h"
#include "token.h"
#include "util.h"

#define TOKEN_PREFIX "hvs."
#define HMAC_HEX_LEN 64

/* num_uses of an entry whose last use was taken: revocation is pending. */
#define USES_PENDING (-1)

struct role {
    struct strvec allowed;
    struct strvec disallowed;
    struct strvec allowed_glob;    /* '*' patterns */
    struct strvec disallowed_glob;
    struct strvec bound_cidrs;
    bool orphan;
    bool renewable;
    bool no_default_policy;
    int64_t period;
    int64_t explicit_max_ttl;
    int64_t num_uses;
    char *path_suffix;
    char *token_type;
};

struct mount;
struct storage;

/* ---- the store (token.c) ---- */

/* The storage the store was started on (roles live there too). */
struct storage *token_storage(void);
/* out = hex HMAC-SHA256(salt, client_token): the stored id of a token. */
void token_hmac(const char *client_token, char out[HMAC_HEX_LEN + 1]);
/* The stored id behind an accessor; false when there is none. */
bool token_accessor_hmac(const char *accessor, char out[HMAC_HEX_LEN + 1]);

/*
 * Raw entries, whatever their state (expired, use pending). load returns
 * a new entry or NULL; save overwrites it. Callers that modify an entry
 * go through the functions below, which hold the store's lock.
 */
struct token *token_entry_load(const char *hmac);
int token_entry_save(const struct token *t);
struct token *token_entry_by_accessor(const char *accessor);
/* A zeroed entry with its creation time set. */
struct token *token_entry_new(void);
bool token_expired(const struct token *t);
/* The system max TTL: the bound of tokens without a max of their own. */
int64_t token_system_max_ttl(void);

/*
 * Gives t a new client token (custom_id when given), accessor and hmac.
 * Returns the client token (caller frees), or NULL when custom_id is taken.
 */
char *token_mint(struct token *t, const char *custom_id);
/*
 * Stores t (entry, accessor, parent index) and registers its lease on m
 * when it expires. On failure nothing of it is left.
 */
int token_persist_new(struct token *t, const struct mount *m);
/*
 * Renews the entry under hmac by data's "increment" (Vault's rules) and
 * moves its lease. Returns the renewed entry, or NULL with resp set.
 */
struct token *token_renew_entry(const char *hmac, const cJSON *data,
                                struct response *resp);
/*
 * Revokes a token and its descendants (tree) or only the token, making
 * its children orphans. revoking_lease_id: lease_revoke_token. With an
 * accessor, only if the token stored under hmac is that one (or, for the
 * tree, none is): a token re-created with the same id since is another
 * token, which a late revocation of the old one must not take.
 */
int token_revoke_tree(const char *hmac, const char *accessor,
                      const char *revoking_lease_id);
int token_revoke_orphan(const char *hmac, const char *accessor);
/*
 * auth/token/tidy's work: drops index entries of gone tokens and revokes
 * children of gone parents. Counts what it did.
 */
int token_tidy(size_t *dropped, size_t *revoked);

/* JSON helpers of stored entries and roles. */
cJSON *token_policies_json(const struct strvec *sv);
char *token_json_str(const cJSON *o, const char *key);

/* ---- policy names (token_endpoints.c) ---- */

/* Trims, lower-cases, drops empty names, sorts and de-duplicates. */
void token_normalise_names(struct strvec *sv);
/* Vault's SanitizePolicies: normalised, and root swallows everything. */
void token_sanitize_policies(struct strvec *sv);

/* ---- roles (token_roles.c) ---- */

void token_role_init(struct role *r);
void token_role_release(struct role *r);
bool token_role_name_valid(const char *name);
/* 0, COFFER_ENOTFOUND, or a storage error. */
int token_role_load(const char *name, struct role *r);
/* auth/token/roles/<name> (read, write, delete) and the role list. */
void token_handle_role(struct request *req, const char *name,
                       struct response *resp);
void token_handle_role_list(struct response *resp);

#endif
