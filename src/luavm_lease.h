/*
 * luavm_lease.h - the batched lease callback of the Lua runtime.
 *
 * luavm.h has the one-lease callbacks (luavm_lease_revoke/renew); this is
 * struct lease_ops.revoke_batch for engines: one call into the calling
 * thread's Lua state revokes many leases of one mount, through the
 * secret's revoke_batch when its engine declared one (the database engine
 * revokes them in one transaction), else through its revoke, lease by
 * lease.
 */
#ifndef COFFER_LUAVM_LEASE_H
#define COFFER_LUAVM_LEASE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "common.h"

struct mount;
struct storage;

/*
 * Revokes the n leases (lease records, all of mount m) in one Lua call:
 * framework.lease_revoke_batch. storage is the one the Lua runtime was
 * configured with (lease.storage is a handle on it). Fills rcs[i] (0 or
 * COFFER_EIO) and errs[i] (the engine's words) for every lease. Returns
 * 0 when the call ran (each lease has its own verdict);
 * COFFER_EUNSUPPORTED when no lease's secret type has revoke_batch
 * (nothing was done: revoke them one by one); or another error code when
 * the call failed as a whole (every lease failed, with its words).
 */
int luavm_lease_revoke_batch(struct storage *storage, const struct mount *m,
                             const cJSON *const *records, size_t n,
                             int *rcs, struct errbuf *errs);

#endif
