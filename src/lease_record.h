/*
 * lease_record.h - the lease record's format, for lease.c and
 * lease_expire.c only: storage keys, the one builder of records, member
 * setters and the record as sys/leases/lookup shows it. Pure functions
 * of their arguments: no storage, no locks (those stay in lease.c and
 * lease_expire.c).
 */
#ifndef COFFER_LEASE_RECORD_H
#define COFFER_LEASE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

struct mount;

#define LEASE_ID_PREFIX "sys/expire/id/"
#define LEASE_TOKEN_PREFIX "sys/expire/token/"

/* "sys/expire/id/<id>", a new string. */
char *lrec_key(const char *id);
/* "sys/expire/token/<token hmac>/<hex sha256(id)>", a new string. */
char *lrec_token_key(const char *token_hmac, const char *id);

/* Replace (or add) one member of rec. */
void lrec_set_num(cJSON *rec, const char *key, double v);
void lrec_set_str(cJSON *rec, const char *key, const char *v);
void lrec_set_bool(cJSON *rec, const char *key, bool v);

bool lrec_is_pending(const cJSON *rec);

/* RFC 3339 of a time in Unix milliseconds. */
void lrec_format_ms(int64_t ms, char *out, size_t n);

/*
 * Everything a new lease record is built from. A pending lease (an engine
 * is about to create something) has no TTL yet; a token lease is active
 * from the start and carries its TTL, max TTL and renewability.
 */
struct lease_spec {
    const char *id;
    const struct mount *mount;
    const char *path;          /* request path the lease was issued on */
    const char *secret_type;
    cJSON *internal;           /* taken over by the record */
    const char *token_hmac;    /* the token that asked; "" = none */
    /* Its accessor, NULL or "" = unknown: a token re-created with the
     * same id has the same hmac, and the accessor tells them apart. */
    const char *token_accessor;
    struct timespec issued;
    int64_t expire_ms;
    bool active;               /* else pending */
    int64_t ttl, max_ttl;      /* only for active records */
    bool renewable;
};

/* The one builder of lease records (lease.h lists the fields). */
cJSON *lrec_build(const struct lease_spec *s);

/*
 * The record as sys/leases/lookup shows it at now_ms: Vault's fields,
 * then Coffer's own "state" and, for an irrevocable lease, "irrevocable"
 * and "last_error". Never the internal data or the token.
 */
cJSON *lrec_lookup_json(const cJSON *rec, int64_t now_ms);

#endif
