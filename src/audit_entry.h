/*
 * audit_entry.h - what an audit entry says.
 *
 * Owns: the JSON of each entry type in Vault's field names (a request's
 * "request" and "response" entries, Coffer's "revocation" entry) and the
 * rule that makes the log safe to keep: every string value of the data,
 * every client token and (unless hmac_accessor is off) accessor becomes
 * "hmac-sha256:<hex>" under the device's salt; numbers in request data
 * too (a number a client sent may be a secret). Entries are written
 * straight into a json_writer (no tree; the data is hashed as it is
 * walked and only read). Does not own devices, writing, fan-out or the
 * table (audit.c).
 */
#ifndef COFFER_AUDIT_ENTRY_H
#define COFFER_AUDIT_ENTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "json_write.h"
#include "request.h"

struct mount;

/* "hmac-sha256:" + 64 hex digits + NUL. */
#define AUDIT_HASH_LEN (12 + 64 + 1)

/* How one device shows values. */
struct audit_format {
    const char *salt; /* the HMAC key; never logged */
    bool log_raw;     /* values in clear (the device's log_raw option) */
    bool hmac_accessor;
    bool elide_list;  /* a LIST reply's keys become their count */
};

/* "hmac-sha256:<hex>" of input under salt into out (AUDIT_HASH_LEN). */
void audit_hmac(const char *salt, const char *input, size_t len, char *out);

/*
 * The request entry (before the backend runs) or the response entry of
 * req, m its mount (or NULL). A wrapped reply shows its wrap_info only.
 */
void audit_entry_pipeline(struct json_writer *w, const struct audit_format *f,
                          const struct request *req,
                          const struct response *resp, const struct mount *m,
                          bool is_response);

/* A lease that ended: its id, why, and its internal data hashed. */
void audit_entry_revocation(struct json_writer *w,
                            const struct audit_format *f,
                            const char *lease_id, const char *reason,
                            const cJSON *internal);

#endif
