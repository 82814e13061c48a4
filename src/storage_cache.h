/*
 * storage_cache.h - a read cache of decrypted values in front of the
 * logical storage (Vault's physical cache, one layer higher).
 *
 * Owns: a sharded LRU of get results (values and "not found"), bounded by
 * entries and bytes, and its invalidation. It is itself a storage backend
 * wrapped around another struct storage (the barrier's view), so a hit
 * skips the physical backend (sqlite's locks and syscalls, postgresql's
 * round trip), the barrier's AES-GCM open and the extra copy.
 *
 *   get      hit: copy out; miss: read the inner storage, then fill
 *   put/del/batch  inner first, then drop the touched keys
 *   list/scan      pass through, uncached
 *
 * Staleness: a fill never installs a value older than a write that has
 * begun. Each shard has a generation counter, bumped when a write on it
 * begins and when it ends, and a count of writes in flight. A miss notes
 * the generation before reading the inner storage and fills only if no
 * write was in flight then and the generation is unchanged after: no write
 * on the shard overlapped the read, so what was read is the current value.
 * A write drops its key when it begins and again when it ends, whether
 * the inner write succeeded or not (after a failure the stored value is
 * unknown). So once a write returns, no get returns the value before it.
 *
 * Secrets: cached values are plaintext. They are wiped when evicted,
 * dropped, disabled and freed. The cache holds nothing while disabled;
 * lifecycle.c enables it when the server becomes active and disables it
 * (wiping every entry) before the barrier seals.
 *
 * Not cached: "core/seal-config" and "core/root-key" (the seal writes
 * them to the physical storage directly, around the barrier), "core/keyring"
 * (the barrier's own), values larger than STORAGE_CACHE_MAX_VALUE.
 *
 * Writers elsewhere: a write that does not go through the cache (the
 * active node of an HA cluster, seen from a standby) must be reported
 * with storage_cache_invalidate; lifecycle.c does so for every change the
 * active announces, and keeps the cache off while it cannot hear them.
 *
 * All functions are thread-safe except storage_cache_interpose and
 * storage_cache_free, which run while no other thread uses the storage.
 */
#ifndef COFFER_STORAGE_CACHE_H
#define COFFER_STORAGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct storage;
struct storage_cache;

/* Vault's default cache_size. */
#define STORAGE_CACHE_DEFAULT_ENTRIES ((size_t)131072)
/* Total bytes held (keys, values and bookkeeping). */
#define STORAGE_CACHE_DEFAULT_BYTES ((size_t)64 * 1024 * 1024)
/* Larger values are read through, never held. */
#define STORAGE_CACHE_MAX_VALUE ((size_t)64 * 1024)

struct storage_cache_limits {
    size_t max_entries; /* 0 = STORAGE_CACHE_DEFAULT_ENTRIES */
    size_t max_bytes;   /* 0 = STORAGE_CACHE_DEFAULT_BYTES */
    size_t max_value;   /* 0 = STORAGE_CACHE_MAX_VALUE */
};

/*
 * The process's settings (the config file's cache_size and
 * disable_cache; server.c sets them before core_init). entries 0 = the
 * default. storage_cache_settings reads them back.
 */
void storage_cache_configure(size_t entries, bool disabled);
void storage_cache_settings(size_t *entries, bool *disabled);

/*
 * A cache over inner (borrowed; must outlive it), disabled: enable it
 * with storage_cache_enable. lim NULL = defaults. Free with
 * storage_cache_free.
 */
struct storage_cache *storage_cache_new(struct storage *inner,
                                        const struct storage_cache_limits *lim);

/* The cache as a storage (owned by the cache; never storage_free it). */
struct storage *storage_cache_storage(struct storage_cache *c);

/*
 * Puts a cache in front of s in place: s's backend moves inside the
 * cache, and every holder of the pointer s then goes through the cache.
 * storage_cache_free puts s back as it was. Call while no other thread
 * uses s. The cache starts disabled.
 */
struct storage_cache *storage_cache_interpose(
    struct storage *s, const struct storage_cache_limits *lim);

/*
 * On: gets fill and hit. Off: everything passes through, and every entry
 * is wiped and dropped before this returns (a fill racing with it is
 * refused). NULL c is a no-op.
 */
void storage_cache_enable(struct storage_cache *c, bool on);

/*
 * Another node wrote key (HA: the active, heard by a standby): the cached
 * value goes, and a fill that read before now is refused, exactly as for
 * a write of our own. NULL c is a no-op.
 */
void storage_cache_invalidate(struct storage_cache *c, const char *key);

/* Wipes every entry, restores an interposed storage, frees. NULL ok. */
void storage_cache_free(struct storage_cache *c);

/*
 * Process-wide counters over every cache: gets answered from the cache,
 * gets that read the inner storage, and entries held now. Any pointer
 * may be NULL.
 */
void storage_cache_stats(uint64_t *hits, uint64_t *misses, uint64_t *entries);

#endif
