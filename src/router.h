/*
 * router.h - the mount table: longest-prefix lookup, enable, disable, tune.
 *
 * The table is persisted as JSON under "core/mounts" (secret mounts) and
 * "core/auth" (auth mounts). Lookups take a read lock and return a counted
 * reference; router_mount_put drops it. A mount that is disabled while
 * referenced is freed by its last put.
 */
#ifndef COFFER_ROUTER_H
#define COFFER_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "mount.h"

struct storage;

/*
 * System-wide TTLs in seconds, 768h each unless configured. server.c sets
 * them from the config file before the server starts; 0 keeps a value;
 * the default is capped by the max.
 */
#define ROUTER_SYSTEM_TTL_DEFAULT (768 * 3600)
void router_set_system_ttls(int64_t default_ttl, int64_t max_ttl);
void router_system_ttls(int64_t *default_ttl, int64_t *max_ttl);

/*
 * Which mount types exist beyond the built-in ones: asked when a mount is
 * enabled (klass MOUNT_AUTH: auth methods, MOUNT_SECRET: secret engines).
 * Set once before router_init by whoever starts the server (core.c asks
 * the Lua runtime); unset, no other type exists.
 */
typedef bool (*router_type_check_fn)(enum mount_class klass,
                                     const char *type);
void router_set_type_check(router_type_check_fn fn);

/* Loads the table from storage, or creates the built-in mounts. */
int router_init(struct storage *s, bool dev_mode, struct errbuf *err);
void router_shutdown(void);

/*
 * Finds the mount with the longest path that prefixes path (a path naming a
 * mount without its trailing slash also matches). Returns a reference the
 * caller drops with router_mount_put, or NULL.
 */
const struct mount *router_match(const char *path);
void router_mount_put(const struct mount *m);
/*
 * True if the mount serving path answers reads from storage and memory
 * alone (sys/, auth/token/, the built-in kv engine): no call
 * out to a database or another server. The HTTP layer may then run a read
 * on its I/O thread (http.c narrows sys/ and auth/token/ further).
 */
bool router_reads_local(const char *path);

/*
 * Returns a new array of referenced mounts (every mount at this moment);
 * the caller drops each with router_mount_put and frees the array.
 */
const struct mount **router_snapshot(size_t *n);

/*
 * Enables a mount. cfg is the JSON body of POST sys/mounts/<path> (or
 * sys/auth/<path>). Returns 0, or COFFER_EINVAL with Vault's text in err.
 */
int router_enable(enum mount_class klass, const char *path, const cJSON *cfg,
                  struct errbuf *err);
/* Disables a mount and deletes its storage. Missing mounts succeed. */
int router_disable(enum mount_class klass, const char *path,
                   struct errbuf *err);
/* Applies a tune body. */
int router_tune(enum mount_class klass, const char *path, const cJSON *cfg,
                struct errbuf *err);

/* Builds the JSON object describing one mount (sys/mounts entry shape). */
cJSON *router_mount_json(const struct mount *m);
/* Builds {"<path>": {...}, ...} for every mount of a class. */
cJSON *router_list_json(enum mount_class klass);

#endif
