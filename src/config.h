/*
 * config.h - the server configuration file (Lua that reads like Vault's HCL).
 *
 * Owns: reading one configuration file into a struct coffer_config, and
 * every start-up error about it. Does not own: applying the settings
 * (server.c, core.c, http.c) or checking that the files it names exist
 * (http_start reads the TLS files, the storage backend opens its path).
 *
 *     listener "tcp" { address = "127.0.0.1:8200", tls_disable = true }
 *     storage "sqlite" { path = "/var/lib/coffer/coffer.db" }
 *     default_lease_ttl = "768h"
 *
 * The file runs once, in a fresh sandboxed lua_State of its own: base,
 * string, table and math only (no io, os, require, load, pcall, rawset or
 * metatables), text chunks only, a memory cap and an instruction budget.
 * Unknown names, unknown keys, wrong types and bad values are errors that
 * name the file, the line and the key.
 *
 * Entry points: config_load, config_release.
 *
 * Ownership: every string in struct coffer_config is owned by the struct
 * and freed by config_release (storage.pg_connection_url may carry a
 * password and is wiped). Pointers into it stay valid until then.
 */
#ifndef COFFER_CONFIG_H
#define COFFER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "audit_decl.h"
#include "util.h"

#define CONFIG_DEFAULT_ADDRESS "127.0.0.1:8200"
#define CONFIG_DEFAULT_MAX_REQUEST_SIZE ((size_t)32 * 1024 * 1024)
#define CONFIG_MAX_WORKERS 1024
#define CONFIG_MAX_CONNECTIONS 1000000
/* Bounds of the Lua limits: below these the bundled engines cannot run. */
#define CONFIG_LUA_MEMORY_MIN (4LL * 1024 * 1024)
#define CONFIG_LUA_MEMORY_MAX (16LL * 1024 * 1024 * 1024)
#define CONFIG_LUA_TIMEOUT_MAX 3600
#define CONFIG_LUA_BUDGET_MIN 10000
#define CONFIG_LUA_BUDGET_MAX 1000000000
/* cache_size: entries of the read cache (0 = its default, Vault's 131072). */
#define CONFIG_CACHE_SIZE_MAX 100000000

enum config_storage {
    CONFIG_STORAGE_NONE = 0, /* only before a successful load */
    CONFIG_STORAGE_INMEM = 1,
    CONFIG_STORAGE_SQLITE = 2,
    CONFIG_STORAGE_POSTGRESQL = 3,
};

struct config_listener {
    char *address;          /* "host:port"; default CONFIG_DEFAULT_ADDRESS */
    /*
     * Invariant after a successful load: tls_disable is true and both files
     * are NULL, or tls_disable is false and both files are set (Vault's
     * rule: TLS is on unless it is switched off explicitly).
     */
    char *tls_cert_file;
    char *tls_key_file;
    bool tls_disable;
    size_t max_request_size; /* bytes; default 32 MiB */
    /* Seconds; 0 = unset (the server's default). Vault's names. */
    int64_t max_request_duration;     /* overrides the top-level default */
    int64_t http_read_header_timeout; /* total for a request's headers */
    int64_t http_read_timeout;        /* total for headers and body */
    int64_t http_idle_timeout;        /* keep-alive with nothing sent */
    /* Open connections in total and per client address; 0 = unset. */
    unsigned int max_connections;
    unsigned int max_connections_per_ip;
};

struct config_storage_settings {
    enum config_storage type;
    char *sqlite_path;       /* sqlite: required */
    char *pg_connection_url; /* postgresql: required; may hold a password */
    char *pg_table;          /* postgresql: NULL = the backend's default */
    /* postgresql: high availability (ha.h). ha_table NULL = "<table>_lock";
     * ha_lock_ttl in seconds, 0 = the default (10 s). */
    bool ha_enabled;
    char *ha_table;
    int64_t ha_lock_ttl;
};

/*
 * A list of URLs the operator wrote (plugin_http_allowed). set tells an
 * absent key (NULL-like: the default applies) from an empty list.
 */
struct config_url_list {
    struct strvec urls;
    bool set;
};

/*
 * telemetry { ... } (Vault's block; the keys Coffer implements). The
 * metrics are served at sys/metrics with or without the block.
 */
struct config_telemetry {
    char *metrics_prefix;           /* NULL = "coffer"; "vault" for Vault's */
    int64_t prometheus_retention_time; /* seconds; accepted, 0 = unset */
    bool unauthenticated_metrics_access; /* sys/metrics without a token */
    bool disable_hostname;          /* accepted; Coffer adds no hostname */
};

/*
 * seal "static" { ... } (OpenBao's static auto-unseal seal; seal_static.h
 * reads the keys) or seal "pkcs11" { ... } (an HSM; seal_pkcs11.h). type
 * is NULL without a seal block (Shamir). The key sources may hold the key
 * itself and are wiped on release, as is the PIN.
 */
struct config_seal {
    char *type;            /* "static", "pkcs11" or NULL */
    char *current_key_id;  /* static: required */
    char *current_key;     /* static: required: hex, base64, env://, file:// */
    char *previous_key_id; /* static: with previous_key, or neither */
    char *previous_key;
    char *lib;             /* pkcs11: required, the module's path */
    char *slot;            /* pkcs11: slot or token_label */
    char *token_label;
    char *pin;             /* pkcs11: or env COFFER_HSM_PIN */
    char *key_label;       /* pkcs11: required */
    char *key_id;          /* pkcs11: hex CKA_ID, optional */
    char *mechanism;       /* pkcs11: NULL = CKM_AES_GCM */
    char *rsa_oaep_hash;   /* pkcs11: "sha256" (NULL) or "sha1" */
    bool generate_key;     /* pkcs11: create the key if missing */
    bool disabled; /* disabled = true: migrate from this seal (seal.h) */
    int line;
};

/*
 * How a declared audit device's type and options are checked: audit.c's
 * audit_check_declaration, handed over at start-up (server.c) so that the
 * configuration does not depend on the audit subsystem. Unset: not
 * checked here (audit_init refuses a bad device at unseal anyway).
 */
typedef int (*config_audit_check_fn)(const char *type,
                                     const struct cJSON *options,
                                     struct errbuf *err);
void config_set_audit_check(config_audit_check_fn fn);

struct coffer_config {
    char *path;                 /* the file that was loaded */
    char *log_format;           /* NULL = unset; "standard" or "json" */
    struct config_telemetry telemetry;
    struct config_listener listener;
    struct config_storage_settings storage;
    struct config_seal seal;
    int64_t default_lease_ttl;  /* seconds; 0 = unset (server default) */
    int64_t max_lease_ttl;      /* seconds; 0 = unset (server default) */
    char *plugin_directory;     /* NULL = unset */
    char *policy_directory;     /* NULL = unset */
    char *log_level;            /* NULL = unset; else a log_level_parse name */
    char *api_addr;             /* NULL = unset; required with HA */
    char *cluster_addr;         /* NULL = unset; shown in sys/leader */
    /* PEM CA(s) a standby trusts when forwarding to an https:// active;
     * NULL = the system's. Verification is never off. */
    char *cluster_ca_file;
    /* HA standbys answer 307 to the active instead of forwarding. */
    bool disable_request_forwarding;
    /* HA standbys forward every request, reads too (ha.h). */
    bool disable_standby_reads;
    /* Reads that cannot wait run on the HTTP I/O threads (http_inline.h);
     * default true. */
    bool http_inline_reads;
    /* Reads of the built-in kv engine answered in C (kv_read.h); default
     * true. */
    bool kv_native_reads;
    /* The web UI at /ui/ (ui.h; Vault's `ui`); default true. */
    bool ui;
    /* Parsed token entries cached (token_cache.h); 0 = the default
     * (4096). disable_cache turns this cache off too. */
    size_t token_cache_size;
    /*
     * How many nice steps (0..19) the lease revocation workers run below
     * the threads that answer requests (lease.h): 10 by default, so a
     * mass expiry takes the CPU reads leave over; 0 runs them on a par
     * with requests (revocations finish sooner, reads wait longer
     * meanwhile). -1 = unset.
     */
    int lease_revocation_nice;
    bool disable_mlock;
    unsigned int workers;           /* request worker threads; 0 = unset */
    unsigned int login_rate_limit;  /* failed logins/s per address, 0 = unset */
    unsigned int login_rate_burst;  /* 0 = unset */
    /*
     * Seconds a request may run (Vault's default_max_request_duration;
     * max_request_duration is accepted at the top level too); 0 = unset.
     * The listener's max_request_duration wins over it.
     */
    int64_t default_max_request_duration;
    /*
     * The Lua runtime's limits; 0 = unset (the runtime's defaults: 64 MiB,
     * 10 s, 100000 instructions). lua_memory_limit caps each Lua state,
     * lua_call_timeout each engine call (a request's own deadline may
     * end it sooner), lua_policy_budget each Lua policy check.
     */
    size_t lua_memory_limit;    /* bytes */
    int64_t lua_call_timeout;   /* seconds */
    uint64_t lua_policy_budget; /* instructions */
    /*
     * The URLs Lua plugins may call through coffer.http, each
     * scheme://host[:port][/path-prefix] (lua_http.h); unset = any
     * https:// URL, with a warning at start-up.
     */
    struct config_url_list plugin_http_allowed;
    /* The declared audit devices, in file order. */
    struct config_audit_device *audit;
    size_t naudit;
    /*
     * unsafe_allow_api_audit_creation (OpenBao's name): whether PUT
     * sys/audit/<path> may enable devices. Default true, as in Vault, so
     * existing Vault tooling keeps working; OpenBao defaults to false
     * because a file or socket device lets an API user write to any
     * file or address the server can reach. Production should set it
     * false and declare the devices here.
     */
    bool unsafe_allow_api_audit_creation;
    /*
     * The read cache of decrypted values in front of storage (Vault's
     * names): cache_size entries (0 = unset, the default 131072) and
     * disable_cache to read storage every time.
     */
    size_t cache_size;
    bool disable_cache;
};

/*
 * Reads and checks the configuration file at path into *out (which need
 * not be initialised). Returns 0, or a negative COFFER_E* with the reason
 * in err, formatted "FILE:LINE: message" (or "FILE: message" when no line
 * applies), and *out released. Call config_release on success. Blocks on
 * file I/O only; never raises.
 */
int config_load(const char *path, struct coffer_config *out,
                struct errbuf *err);

/* Frees every string in c and zeroes it. Safe on a zeroed struct. */
void config_release(struct coffer_config *c);

/* "inmem", "sqlite", "postgresql" (or "none"); a static string. */
const char *config_storage_name(enum config_storage type);

#endif
