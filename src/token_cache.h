/*
 * token_cache.h - a bounded cache of parsed token entries, keyed by the
 * token's stored id (its HMAC, never the client token).
 *
 * Owns: a sharded LRU of opaque values (token.c stores struct token
 * copies through the ops it registers: this module sits below token.c
 * and never looks inside a value), its bound and its invalidation.
 *
 * Staleness, as in storage_cache.h: each shard has a generation, bumped
 * when a write on it begins and when it ends, and a count of writes in
 * flight. A reader notes the generation (token_cache_generation) before it
 * reads the stored entry, and token_cache_fill installs what it read only
 * if no write is in flight on the shard and the generation is unchanged:
 * no write overlapped the read. The writer of an entry calls
 * token_cache_write_begin before the storage write and
 * token_cache_write_end after it (success or not); both drop the key. So
 * once a write (a revocation, a renewal) returns, no lookup sees the value
 * before it.
 *
 * Values handed out are copies the caller owns (ops.copy), made under the
 * shard lock. All functions are thread-safe; token_cache_set_ops runs
 * once at start-up before any other call.
 */
#ifndef COFFER_TOKEN_CACHE_H
#define COFFER_TOKEN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entries held at most by default (all shards together). */
#define TOKEN_CACHE_DEFAULT_ENTRIES ((size_t)4096)

struct token_cache_ops {
    void *(*copy)(const void *v); /* a deep copy; never NULL */
    void (*release)(void *v);
};

/* ops is borrowed and must outlive the cache (a static table). */
void token_cache_set_ops(const struct token_cache_ops *ops);

/*
 * Bounds the cache to entries (0 = off: nothing is held, every lookup
 * misses). Empties it. The default is TOKEN_CACHE_DEFAULT_ENTRIES.
 */
void token_cache_resize(size_t entries);

/* The generation to hand to token_cache_fill; note it before reading. */
uint64_t token_cache_generation(const char *key);

/* A copy of the value under key, or NULL. */
void *token_cache_get(const char *key);

/*
 * Installs a copy of v under key if no write on key's shard began since
 * gen was noted (and none is in flight). v stays the caller's. True if
 * installed.
 */
bool token_cache_fill(const char *key, const void *v, uint64_t gen);

/* Around every storage write or delete of the entry under key. */
void token_cache_write_begin(const char *key);
void token_cache_write_end(const char *key);

/* Drops every entry, refusing fills that began before (seal, unseal). */
void token_cache_clear(void);

/* Process-wide counters; any pointer may be NULL. */
void token_cache_stats(uint64_t *hits, uint64_t *misses, uint64_t *entries);

#endif
