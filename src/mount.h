/*
 * mount.h - what a mount is. The table itself lives in router.c.
 *
 * A mount is immutable once published: tuning publishes a changed copy.
 * Requests hold a counted reference (router_match/router_mount_put), so
 * disabling or tuning a mount never frees one that a request still uses.
 */
#ifndef COFFER_MOUNT_H
#define COFFER_MOUNT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "crypto.h"

enum mount_class {
    MOUNT_SECRET = 1, /* under sys/mounts */
    MOUNT_AUTH = 2,   /* under sys/auth, path starts with "auth/" */
};

enum mount_impl {
    MOUNT_IMPL_SYSTEM = 1, /* sys/ in C */
    MOUNT_IMPL_TOKEN = 2,  /* auth/token/ in C */
    MOUNT_IMPL_LUA = 3,    /* an engine or auth method written in Lua */
};

struct mount {
    char *path;        /* full path with trailing slash: "secret/", "auth/token/" */
    char *type;        /* normalised: "kv", "system", "token", "database" */
    char *description;
    char uuid[CRYPTO_UUID_LEN + 1];
    char accessor[64]; /* "kv_1a2b3c4d" */
    enum mount_class klass;
    enum mount_impl impl;
    int64_t default_lease_ttl; /* seconds, 0 = system default */
    int64_t max_lease_ttl;     /* seconds, 0 = system default */
    cJSON *options;    /* object of strings, or NULL */
    bool local;
    bool seal_wrap;
    char *storage_prefix; /* "logical/<uuid>/" (secret) or "auth/<uuid>/" */
    atomic_int refs;      /* the table's reference plus one per request */
};

/*
 * The TTL of a lease or token issued on mount m, the one place TTLs are
 * resolved: ttl (or the mount's default when 0), capped by max_ttl (when
 * > 0), the mount's max and the system max. A mount's 0 means the system
 * value (router_set_system_ttls). *out_max is the effective maximum.
 * With ttl = max_ttl = 0 the results are the mount's effective default
 * and maximum. Pure apart from reading the system values (router.c).
 */
void mount_resolve_ttl(const struct mount *m, int64_t ttl, int64_t max_ttl,
                       int64_t *out_ttl, int64_t *out_max);

#endif
