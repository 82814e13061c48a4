/*
 * audit.h - audit devices: the registry, Vault's entry format, writers.
 *
 * A device (file, socket or syslog) receives one JSON object per line for
 * every request (type "request", before the backend runs) and its reply
 * (type "response"). Every client token, accessor (unless
 * hmac_accessor=false) and string in request and response data is
 * replaced by "hmac-sha256:<hex>" keyed with the device's salt, which is
 * kept in the barrier; sys/audit-hash gives the same value for a known
 * input.
 *
 * Fail closed, bounded: with at least one device enabled, an entry no
 * device could write fails the request (500). Each write is bounded by
 * the device's write timeout; a device that failed is skipped without
 * waiting until its back-off passes, and every failure is counted.
 *
 * The table lives from audit_init (unseal) to audit_shutdown (seal).
 * Every function is thread-safe.
 */
#ifndef COFFER_AUDIT_H
#define COFFER_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "audit_entry.h"
#include "common.h"
#include "request.h"

struct storage;
struct config_audit_device;

/* Restores the devices stored in the barrier. 0 or COFFER_E* with err. */
int audit_init(struct storage *logical, struct errbuf *err);
/* Closes every device and forgets the table (seal, shutdown). */
void audit_shutdown(void);
/* Reopens file devices (SIGHUP, after logrotate moved the file). */
void audit_reopen(void);

/*
 * The request entry, after authentication (resp may already hold the
 * refusal, logged as the entry's error). With devices enabled and none
 * able to write it, resp is replaced by 500 "internal error" and -1 is
 * returned: the backend must not run. 0 otherwise.
 */
int audit_log_request(const struct request *req, struct response *resp);
/*
 * The response entry, before rendering; only for a request whose request
 * entry was logged on this thread. No device wrote it: resp becomes 500
 * "internal error" (the effect already happened, as in Vault) and -1.
 */
int audit_log_response(const struct request *req, struct response *resp);
/*
 * A lease revoked (expiry, cascade, retry, crash recovery; by a request
 * too, whose own entries exist besides): an entry of type "revocation"
 * with the lease id, the reason, and the lease's internal data (e.g. the
 * database username) hashed like response data, so an operator finds
 * "when was this user dropped" with audit-hash. internal may be NULL.
 * Never fails the caller: the revocation already happened.
 */
void audit_log_revocation(const char *lease_id, const char *reason,
                          const cJSON *internal);

/* Device writes that failed since start (for sys/metrics). */
uint64_t audit_failures_total(void);
/* Number of enabled devices. */
size_t audit_device_count(void);
/*
 * True if writing an entry could wait on more than the local disk: some
 * enabled device is a socket, syslog, or a file device not holding an
 * open regular file. Never waits itself (a busy lock answers true). The
 * HTTP layer runs reads on its I/O threads only when this is false.
 */
bool audit_may_block(void);

/* ---- the sys/audit endpoints (sys_audit.c) --------------------------- */

/*
 * Enables a device at path ("file" or "file/"): type, description,
 * options (an object of strings, may be NULL), local. Stores it and its
 * new salt. 0 or COFFER_E* with Vault's words in err.
 */
int audit_enable(const char *path, const char *type, const char *description,
                 const cJSON *options, bool local, struct errbuf *err);
/* Disables the device at path; a missing one is not an error. */
int audit_disable(const char *path, struct errbuf *err);
/* {"<path>/": {type, description, options, local, path}} of every device. */
cJSON *audit_list_json(void);
/*
 * The device's HMAC of input into out (AUDIT_HASH_LEN bytes).
 * COFFER_ENOTFOUND when there is no device at path.
 */
int audit_hash(const char *path, const char *input, char *out);

/* ---- devices declared in the configuration file ---------------------- */

/*
 * Checks a declared device's type and options as audit_enable would, and
 * refuses option names the type does not know (a typo in a file should
 * stop the server, not be ignored as the API ignores it). 0 or
 * COFFER_EINVAL with the reason in err.
 */
int audit_check_declaration(const char *type, const cJSON *options,
                            struct errbuf *err);
/*
 * Remembers (copies) the devices declared in the configuration file at
 * file, enabled by every audit_init (unseal) before any request is
 * served, and whether PUT sys/audit/<path> may enable devices. Call
 * before the first unseal; a later call replaces the declarations for
 * the next unseal. Config-owned devices are listed by GET sys/audit but
 * never stored in the barrier's device table and cannot be disabled
 * through the API; their salt is kept in the barrier under their path,
 * so audit-hash values stay the same across restarts.
 */
void audit_configure(const struct config_audit_device *v, size_t n,
                     bool api_creation, const char *file);

/*
 * Brings the table in line with the declarations audit_configure was last
 * given (SIGHUP, after the configuration file was read again): a declared
 * device whose stanza was removed or changed is disabled, a new or changed
 * stanza is enabled (with the salt its path had, so audit-hash values
 * stay), unchanged ones keep writing undisturbed. Devices enabled through
 * the API are untouched. Sealed, it does nothing (unseal applies them).
 * Returns the first failure with err set; the other stanzas still apply.
 */
int audit_apply_declared(struct errbuf *err);

#endif
