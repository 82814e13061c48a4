/*
 * core.h - the request pipeline, and the start-up that wires it.
 *
 * core_handle takes a parsed request through authentication, the policy
 * check, the router and a backend, and renders Vault's JSON reply. It is
 * called concurrently from every HTTP worker thread, each request inside
 * the state lock of lifecycle.h (the seal endpoints outside it).
 */
#ifndef COFFER_CORE_H
#define COFFER_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "request.h"

struct ha_config;
struct storage;

struct core_config {
    bool dev_mode;
    const char *dev_root_token_id; /* NULL = random */
    const char *lua_dir;
    const char *plugin_dir;        /* config's plugin_directory, or NULL */
    const char *policy_dir;        /* config's policy_directory, or NULL */
    double login_rate;             /* failed logins/s per address, 0 = 1 */
    double login_burst;            /* bucket size per address, 0 = 10 */
    struct storage *physical;      /* borrowed; the barrier wraps it */
    unsigned int lease_workers;    /* 0 = default */
    double lease_retry_base;       /* seconds, 0 = default */
    double lease_retry_max;        /* seconds, 0 = default */
    double tick_interval;          /* periodic engine work, 0 = 5 s */
    /* The Lua runtime's limits (config.h); 0 = the runtime's defaults. */
    size_t lua_memory_limit;       /* bytes per Lua state */
    double lua_call_timeout;       /* seconds per engine call */
    uint64_t lua_policy_budget;    /* instructions per Lua policy check */
    /* High availability (ha.h), or NULL for a single node. */
    const struct ha_config *ha;
    /* HA standbys answer 307 to the active instead of forwarding. */
    bool disable_request_forwarding;
};

/*
 * Brings the server up sealed: Lua scripts validated, the barrier over
 * the physical storage (lifecycle.c), the router's and the ACL's hooks
 * into the Lua runtime set. In dev mode it also initialises with one key
 * share, unseals, mounts secret/ and creates the root token: *root_token
 * and *unseal_key (base64) are then new strings the caller frees with
 * secure_free_str. 0 or COFFER_E* with words in err.
 */
int core_init(const struct core_config *cfg, char **root_token,
              char **unseal_key, struct errbuf *err);
/* Stops everything core_init started; after the HTTP workers stopped. */
void core_shutdown(void);

/* A rendered reply. body is NULL for an empty body. */
struct reply {
    int status;
    char *body;
    size_t len;
    char *location; /* for redirects, else NULL */
    const char *content_type; /* static; NULL means application/json */
};

/* Runs req through the pipeline and renders the reply. Never fails. */
void core_handle(struct request *req, struct reply *out);
void reply_release(struct reply *r);

/* Renders a bare error reply: {"errors":[msg]} or {"errors":[]}. */
void core_error_reply(struct reply *out, int status, const char *msg);

#endif
