/*
 * server.c - "coffer server": parse flags, bring the subsystems up, wait
 * for a signal, bring them down in reverse order.
 *
 * Signals are blocked in every thread and taken synchronously with
 * sigwait in the main thread, so no handler runs in the middle of a
 * request and shutdown happens on an ordinary stack.
 */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "core.h"
#include "crypto.h"
#include "ha.h"
#include "http.h"
#include "kv_read.h"
#include "lease.h"
#include "http_inline.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "lua_http.h"
#include "request.h"
#include "router.h"
#include "seal.h"
#include "seal_pkcs11.h"
#include "seal_static.h"
#include "storage.h"
#include "storage_cache.h"
#include "sys_plugins.h"
#include "sys_seal.h"
#include "token_cache.h"
#include "ui.h"
#include "util.h"

struct server_opts {
    bool dev;
    const char *config;      /* -config=FILE */
    const char *root_token_id;
    const char *listen;
    const char *log_level;
    const char *log_format;  /* -log-format=standard|json */
    size_t max_request_size;
    unsigned int threads;
    double lease_retry_base; /* seconds; test knobs, 0 = defaults */
    double lease_retry_max;
    double tick_interval;
    const char *plugin_dir;  /* -dev-plugin-dir=DIR */
    const char *policy_dir;  /* -dev-policy-dir=DIR */
    double login_rate;       /* -dev-login-rate=N (failed logins/s) */
    double login_burst;      /* -dev-login-burst=N */
    /* -dev-plugin-http-allowed=URL, repeatable; "" = set but empty. */
    struct strvec http_allowed;
    bool http_allowed_set;
    /* Listener limits; 0 = the configuration file's, else the default. */
    int64_t max_request_duration; /* seconds */
    int64_t read_header_timeout;
    int64_t read_timeout;
    int64_t idle_timeout;
    unsigned int max_connections;
    unsigned int max_connections_per_ip;
};

/* To stdout when asked for (-h), to stderr after a usage error. */
static void usage(FILE *out)
{
    fprintf(out,
            "Usage: coffer server -config=FILE [options]\n"
            "       coffer server -dev [options]\n\n"
            "  -config=FILE                  Lua server configuration "
            "(see examples/).\n"
            "  -dev                          Start a development server: "
            "in-memory\n"
            "                                storage, unsealed, root token "
            "printed.\n"
            "  -dev-root-token-id=ID         Use ID as the root token.\n"
            "  -dev-listen-address=ADDR      Listen on ADDR "
            "(default 127.0.0.1:8200).\n"
            "  -log-level=LEVEL              error, warn, info, debug.\n"
            "  -log-format=FORMAT            standard (default) or json.\n"
            "  -max-request-size=BYTES       Largest request body "
            "(default 33554432).\n"
            "  -workers=N                    Request worker threads "
            "(default 32).\n"
            "  -max-request-duration=DUR     Longest a request may run "
            "(default 90s).\n"
            "  -http-read-header-timeout=DUR Longest to read a request's "
            "headers\n"
            "                                (default 10s).\n"
            "  -http-read-timeout=DUR        Longest to read a whole "
            "request (default 30s).\n"
            "  -http-idle-timeout=DUR        Close keep-alive connections "
            "idle this long\n"
            "                                (default 5m).\n"
            "  -max-connections=N            Open connections in total "
            "(default 4096).\n"
            "  -max-connections-per-ip=N     Open connections per client "
            "address\n"
            "                                (default 512).\n"
            "  -dev-lease-retry-base=SECS    First revocation retry delay "
            "(default 1).\n"
            "  -dev-lease-retry-max=SECS     Longest retry delay "
            "(default 60).\n"
            "  -dev-tick-interval=SECS       Periodic engine work "
            "(default 5).\n"
            "  -dev-plugin-dir=DIR           Load engines and auth methods "
            "from DIR.\n"
            "  -dev-policy-dir=DIR           Load Lua policies from DIR.\n"
            "  -dev-login-rate=N             Failed logins per second per "
            "address (default 1).\n"
            "  -dev-login-burst=N            Failed logins in a burst "
            "(default 10).\n"
            "  -dev-plugin-http-allowed=URL  A URL prefix Lua plugins may "
            "call (repeat the\n"
            "                                flag; the configuration's "
            "plugin_http_allowed).\n");
}

static bool flag_is(const char *arg, const char *name)
{
    while (*arg == '-')
        arg++;
    return strcmp(arg, name) == 0;
}

/* If arg is "-name=value", stores value and returns true. */
static bool take_value(const char *arg, const char *name, const char **out)
{
    const char *v = flag_value(arg, name);

    if (v != NULL)
        *out = v;
    return v != NULL;
}

static int parse_number(const char *arg, const char *v, int64_t max,
                        int64_t *out)
{
    if (int64_parse(v, out) != 0 || *out <= 0 || *out > max) {
        fprintf(stderr, "Error: invalid value in \"%s\"\n", arg);
        return -1;
    }
    return 0;
}

static int parse_seconds(const char *arg, const char *v, double *out)
{
    char *end = NULL;

    *out = strtod(v, &end);
    if (end == v || *end != '\0' || *out <= 0 || *out > 86400) {
        fprintf(stderr, "Error: invalid value in \"%s\"\n", arg);
        return -1;
    }
    return 0;
}

/* A duration flag ("10s", "5m", or whole seconds), at least a second. */
static int parse_duration_flag(const char *arg, const char *v, int64_t *out)
{
    struct errbuf err = {{0}};

    if (duration_parse(v, out, &err) != 0 || *out <= 0 ||
        *out > 365 * 86400) {
        fprintf(stderr, "Error: invalid duration in \"%s\" (want e.g. "
                        "\"10s\" or \"5m\", at least 1s)\n", arg);
        return -1;
    }
    return 0;
}

/* The listener-limit flags; returns 1 if arg was one, -1 if invalid. */
static int parse_limit_flag(const char *a, struct server_opts *o)
{
    static const struct {
        const char *name;
        size_t offset;
    } durations[] = {
        {"max-request-duration", offsetof(struct server_opts,
                                          max_request_duration)},
        {"http-read-header-timeout", offsetof(struct server_opts,
                                              read_header_timeout)},
        {"http-read-timeout", offsetof(struct server_opts, read_timeout)},
        {"http-idle-timeout", offsetof(struct server_opts, idle_timeout)},
    };
    const char *v = NULL;
    int64_t n;

    for (size_t i = 0; i < ARRAY_LEN(durations); i++) {
        if (take_value(a, durations[i].name, &v))
            return parse_duration_flag(
                       a, v, (int64_t *)((char *)o + durations[i].offset)) == 0
                       ? 1 : -1;
    }
    if (take_value(a, "max-connections", &v)) {
        if (parse_number(a, v, CONFIG_MAX_CONNECTIONS, &n) != 0)
            return -1;
        o->max_connections = (unsigned int)n;
        return 1;
    }
    if (take_value(a, "max-connections-per-ip", &v)) {
        if (parse_number(a, v, CONFIG_MAX_CONNECTIONS, &n) != 0)
            return -1;
        o->max_connections_per_ip = (unsigned int)n;
        return 1;
    }
    return 0;
}

/* parse_opts: 0, PARSE_HELP after printing the help, 1 after an error. */
#define PARSE_HELP 2

static int parse_opts(int argc, char **argv, struct server_opts *o)
{
    const char *v = NULL;
    int64_t n;

    o->listen = NULL;
    o->log_level = NULL;
    o->max_request_size = 0;
    o->threads = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int limit = parse_limit_flag(a, o);
        if (limit < 0)
            return 1;
        if (limit > 0)
            continue;
        if (flag_is(a, "dev")) {
            o->dev = true;
        } else if (take_value(a, "config", &o->config) ||
                   take_value(a, "dev-root-token-id", &o->root_token_id) ||
                   take_value(a, "dev-listen-address", &o->listen) ||
                   take_value(a, "log-level", &o->log_level) ||
                   take_value(a, "log-format", &o->log_format) ||
                   take_value(a, "dev-plugin-dir", &o->plugin_dir) ||
                   take_value(a, "dev-policy-dir", &o->policy_dir)) {
            continue;
        } else if (take_value(a, "dev-plugin-http-allowed", &v)) {
            struct errbuf err;

            if (v[0] != '\0' && lua_http_allow_check(v, &err) != 0) {
                fprintf(stderr, "Error: invalid URL in \"%s\": %s\n", a,
                        err.msg);
                return 1;
            }
            if (v[0] != '\0')
                strvec_push(&o->http_allowed, v);
            o->http_allowed_set = true;
        } else if (take_value(a, "max-request-size", &v)) {
            if (parse_number(a, v, INT64_MAX, &n) != 0)
                return 1;
            o->max_request_size = (size_t)n;
        } else if (take_value(a, "dev-lease-retry-base", &v)) {
            if (parse_seconds(a, v, &o->lease_retry_base) != 0)
                return 1;
        } else if (take_value(a, "dev-lease-retry-max", &v)) {
            if (parse_seconds(a, v, &o->lease_retry_max) != 0)
                return 1;
        } else if (take_value(a, "dev-login-rate", &v)) {
            if (parse_seconds(a, v, &o->login_rate) != 0)
                return 1;
        } else if (take_value(a, "dev-login-burst", &v)) {
            if (parse_seconds(a, v, &o->login_burst) != 0)
                return 1;
        } else if (take_value(a, "dev-tick-interval", &v)) {
            if (parse_seconds(a, v, &o->tick_interval) != 0)
                return 1;
        } else if (take_value(a, "workers", &v)) {
            if (parse_number(a, v, CONFIG_MAX_WORKERS, &n) != 0)
                return 1;
            o->threads = (unsigned int)n;
        } else if (flag_is(a, "h") || flag_is(a, "help")) {
            usage(stdout);
            return PARSE_HELP;
        } else {
            fprintf(stderr, "Error: unknown flag \"%s\"\n\n", a);
            usage(stderr);
            return 1;
        }
    }
    return 0;
}

static void print_dev_banner(const char *listen, unsigned int threads,
                             const char *unseal_key, const char *root_token)
{
    printf("==> Coffer server configuration:\n\n"
           "             Api Address: http://%s\n"
           "                 Storage: inmem\n"
           "                 Version: Coffer v%s (Vault API %s)\n"
           "                 Workers: %u\n\n"
           "==> Coffer server started! Log data will stream in below:\n\n",
           listen, COFFER_VERSION, COFFER_VAULT_COMPAT_VERSION, threads);
    printf("WARNING! dev mode is enabled! In this mode, Coffer runs entirely "
           "in-memory\nand starts unsealed. The root token is printed "
           "below so that you can\nimmediately begin using Coffer.\n\n"
           "You may need to set the following environment variables:\n\n"
           "    $ export VAULT_ADDR='http://%s'\n\n"
           "The unseal key and root token are displayed below in case you "
           "want to\nseal/unseal the server or re-authenticate.\n\n"
           "Unseal Key: %s\n"
           "Root Token: %s\n\n"
           "Development mode should NOT be used in production "
           "installations!\n\n",
           listen, unseal_key, root_token);
    fflush(stdout);
}

static void print_banner(const struct coffer_config *conf, unsigned int threads)
{
    printf("==> Coffer server configuration:\n\n"
           "             Api Address: %s://%s\n"
           "                 Storage: %s\n"
           "                 Version: Coffer v%s (Vault API %s)\n"
           "                 Workers: %u\n\n"
           "==> Coffer server started! Log data will stream in below:\n\n",
           conf->listener.tls_disable ? "http" : "https",
           conf->listener.address, config_storage_name(conf->storage.type),
           COFFER_VERSION, COFFER_VAULT_COMPAT_VERSION, threads);
    fflush(stdout);
}

/* Opens the physical storage the configuration names (inmem in dev mode). */
static struct storage *open_storage(const struct coffer_config *conf,
                                    struct errbuf *err)
{
    switch (conf->storage.type) {
    case CONFIG_STORAGE_SQLITE:
        return storage_sqlite_open(conf->storage.sqlite_path, err);
    case CONFIG_STORAGE_POSTGRESQL:
        if (conf->storage.ha_enabled)
            return storage_pg_open_ha(conf->storage.pg_connection_url,
                                      conf->storage.pg_table,
                                      conf->storage.ha_table, err);
        return storage_pg_open(conf->storage.pg_connection_url,
                               conf->storage.pg_table, err);
    case CONFIG_STORAGE_INMEM:
    case CONFIG_STORAGE_NONE:
        break;
    }
    return storage_inmem_new();
}

static int wait_for_signal(void)
{
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigwait(&set, &sig) != 0)
        return -1;
    return sig;
}

/*
 * SIGHUP: reload the Lua code (sys_plugins.h), only while unsealed; the
 * state lock held for reading keeps a seal from overlapping it. The
 * outcome goes to the log: a refused reload leaves the old code serving.
 */
static void reload_on_hup(void)
{
    struct errbuf err;
    uint64_t gen;

    if (!lifecycle_enter())
        log_warn("SIGHUP: Coffer is sealed; the Lua code was not reloaded");
    else if (sys_plugins_reload(&gen, &err) == 0)
        log_info("SIGHUP: Lua code reloaded (generation %llu)",
                 (unsigned long long)gen);
    lifecycle_leave();
}

/*
 * SIGHUP with a configuration file: its audit stanzas apply again
 * (OpenBao does the same), so an operator adds, changes or removes a
 * declared device without a restart. A file that no longer loads changes
 * nothing; the error goes to the log. The other settings (listener,
 * storage, seal) need a restart, as in Vault.
 */
static void reload_config_on_hup(const char *path)
{
    struct coffer_config conf;
    struct errbuf err;

    if (path == NULL)
        return; /* dev server */
    if (config_load(path, &conf, &err) != 0) {
        log_error("SIGHUP: configuration not reloaded: %s", err.msg);
        return;
    }
    audit_configure(conf.audit, conf.naudit,
                    conf.unsafe_allow_api_audit_creation, conf.path);
    ui_set_enabled(conf.ui);
    if (lifecycle_enter() && audit_apply_declared(&err) != 0)
        log_error("SIGHUP: audit devices: %s", err.msg);
    lifecycle_leave();
    config_release(&conf);
}

/*
 * Every connection holds a descriptor. Raises the soft limit toward the
 * hard one so the connection cap, not EMFILE, is what refuses clients,
 * and lowers the cap (with a warning) when the limit stays below it.
 */
#define SERVER_FD_RESERVE 256

static void fit_fd_limit(unsigned int *max_connections)
{
    rlim_t want = (rlim_t)(*max_connections ? *max_connections
                                            : HTTP_DEFAULT_MAX_CONNECTIONS) +
                  SERVER_FD_RESERVE;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want
                          ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 &&
            getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        unsigned int cap = rl.rlim_cur > 2 * SERVER_FD_RESERVE
                               ? (unsigned int)(rl.rlim_cur - SERVER_FD_RESERVE)
                               : (unsigned int)(rl.rlim_cur / 2);
        log_warn("the open-file limit (%llu) is too low for %llu "
                 "connections; accepting at most %u",
                 (unsigned long long)rl.rlim_cur,
                 (unsigned long long)(want - SERVER_FD_RESERVE), cap);
        *max_connections = cap;
    }
}

static int64_t first_set(int64_t a, int64_t b)
{
    return a > 0 ? a : b;
}

/*
 * The listener limits: flag, else listener block, else (for the request
 * duration) the top-level default; 0 left means http.c's default.
 */
static void settle_limits(struct server_opts *o,
                          const struct config_listener *l,
                          int64_t default_duration)
{
    o->max_request_duration =
        first_set(o->max_request_duration,
                  first_set(l->max_request_duration, default_duration));
    request_budget_configure(o->max_request_duration * 1000);
    o->read_header_timeout = first_set(o->read_header_timeout,
                                       l->http_read_header_timeout);
    o->read_timeout = first_set(o->read_timeout, l->http_read_timeout);
    o->idle_timeout = first_set(o->idle_timeout, l->http_idle_timeout);
    if (o->max_connections == 0)
        o->max_connections = l->max_connections;
    if (o->max_connections_per_ip == 0)
        o->max_connections_per_ip = l->max_connections_per_ip;
    fit_fd_limit(&o->max_connections);
}

/*
 * Settles each setting: a command-line flag wins over the configuration
 * file, which wins over the default. Dev mode has no file.
 */
static int settle(struct server_opts *o, struct coffer_config *conf)
{
    struct errbuf err;
    int level;

    config_set_audit_check(audit_check_declaration);
    if (o->config != NULL && config_load(o->config, conf, &err) != 0) {
        fprintf(stderr, "Error loading configuration: %s\n", err.msg);
        return -1;
    }
    /* Declared audit devices are enabled at unseal, before any request. */
    if (o->config != NULL)
        audit_configure(conf->audit, conf->naudit,
                        conf->unsafe_allow_api_audit_creation, conf->path);
    if (o->log_level == NULL)
        o->log_level = conf->log_level ? conf->log_level : "info";
    level = log_level_parse(o->log_level);
    if (level < 0) {
        fprintf(stderr, "Error: unknown log level \"%s\"\n", o->log_level);
        return -1;
    }
    log_set_configured_level((enum log_level)level);
    if (o->log_format == NULL)
        o->log_format = conf->log_format ? conf->log_format : "standard";
    if (log_format_parse(o->log_format) < 0) {
        fprintf(stderr, "Error: unknown log format \"%s\"\n", o->log_format);
        return -1;
    }
    log_set_format((enum log_format)log_format_parse(o->log_format));
    metrics_set_prefix(conf->telemetry.metrics_prefix);
    metrics_set_unauthenticated(conf->telemetry.unauthenticated_metrics_access);
    if (o->listen == NULL)
        o->listen = conf->listener.address ? conf->listener.address
                                           : "127.0.0.1:8200";
    if (o->threads == 0)
        o->threads = conf->workers ? conf->workers : HTTP_DEFAULT_THREADS;
    if (o->max_request_size == 0)
        o->max_request_size = conf->listener.max_request_size
                                  ? conf->listener.max_request_size
                                  : HTTP_DEFAULT_MAX_REQUEST_SIZE;
    settle_limits(o, &conf->listener, conf->default_max_request_duration);
    router_set_system_ttls(conf->default_lease_ttl, conf->max_lease_ttl);
    storage_cache_configure(conf->cache_size, conf->disable_cache);
    if (conf->token_cache_size > 0)
        token_cache_resize(conf->token_cache_size);
    /* A dev server has no file: its reads run inline too. */
    http_set_inline_reads(o->config == NULL || conf->http_inline_reads);
    /* A dev server has no file: COFFER_KV_NATIVE_READS=0 turns its native
     * kv reads off (kv_read.c). */
    if (o->config != NULL)
        kv_read_set_enabled(conf->kv_native_reads);
    ui_set_enabled(o->config == NULL || conf->ui);
    if (o->config != NULL && conf->lease_revocation_nice >= 0)
        lease_set_worker_nice(conf->lease_revocation_nice);
    return 0;
}

/*
 * The HA settings from the storage block: renew five times per lock TTL,
 * contend every second (at most a tenth of the TTL). NULL without HA.
 */
static const struct ha_config *ha_settings(const struct coffer_config *conf,
                                           struct storage *physical,
                                           struct ha_config *out)
{
    int ttl_ms;

    if (!conf->storage.ha_enabled)
        return NULL;
    ttl_ms = conf->storage.ha_lock_ttl > 0
                 ? (int)conf->storage.ha_lock_ttl * 1000
                 : 0;
    memset(out, 0, sizeof(*out));
    out->physical = physical;
    out->api_addr = conf->api_addr;
    out->cluster_addr = conf->cluster_addr;
    out->cluster_ca_file = conf->cluster_ca_file;
    out->disable_standby_reads = conf->disable_standby_reads;
    out->lock_ttl_ms = ttl_ms;
    out->renew_ms = ttl_ms / 5;
    out->retry_ms = ttl_ms > 0 && ttl_ms / 10 < 1000 ? ttl_ms / 10 : 0;
    return out;
}

/*
 * seal "pkcs11": opens the HSM now, so a missing module, a wrong PIN or a
 * missing key stops the start with the reason (as Vault). The PIN in conf
 * is wiped by the login.
 */
static int load_hsm(struct coffer_config *conf, struct seal_pkcs11 **hsm)
{
    struct errbuf err;
    struct seal_pkcs11_config pc = {
        conf->seal.lib,       conf->seal.slot,   conf->seal.token_label,
        conf->seal.pin,       conf->seal.key_label, conf->seal.key_id,
        conf->seal.mechanism, conf->seal.rsa_oaep_hash,
        conf->seal.generate_key};

    *hsm = seal_pkcs11_new(&pc, &err);
    if (*hsm == NULL) {
        fprintf(stderr, "Error loading configuration: %s:%d: seal "
                        "\"pkcs11\": %s\n", conf->path, conf->seal.line,
                err.msg);
        return -1;
    }
    seal_set_wrapper(seal_pkcs11_wrapper(*hsm));
    return 0;
}

/*
 * seal "static": loads its keys now, so a missing, unreadable or
 * wrong-length key stops the start with the reason; seal "pkcs11" goes
 * to load_hsm. *out and *hsm stay NULL without a seal block.
 */
static int load_seal(struct coffer_config *conf, struct seal_static **out,
                     struct seal_pkcs11 **hsm)
{
    struct errbuf err;

    *out = NULL;
    *hsm = NULL;
    if (conf->seal.type == NULL)
        return 0;
    if (strcmp(conf->seal.type, "pkcs11") == 0)
        return load_hsm(conf, hsm);
    *out = seal_static_new(conf->seal.current_key_id, conf->seal.current_key,
                           conf->seal.previous_key_id,
                           conf->seal.previous_key, &err);
    if (*out == NULL) {
        fprintf(stderr, "Error loading configuration: %s:%d: seal "
                        "\"static\": %s\n", conf->path, conf->seal.line,
                err.msg);
        return -1;
    }
    return 0;
}

int server_main(int argc, char **argv)
{
    struct seal_static *autoseal = NULL;
    struct seal_pkcs11 *hsm = NULL;
    struct server_opts opts = {0};
    struct coffer_config conf = {0};
    struct core_config cfg = {0};
    struct ha_config ha_cfg;
    struct http_config hcfg = {0};
    struct storage *storage = NULL;
    struct http_server *http = NULL;
    char *root_token = NULL;
    char *unseal_key = NULL;
    char *lua_dir = NULL;
    struct errbuf err;
    sigset_t set;
    bool core_up = false;
    int code = 1, sig;

    switch (parse_opts(argc, argv, &opts)) {
    case 0:
        break;
    case PARSE_HELP:
        code = 0;
        goto out;
    default:
        goto out;
    }
    if (opts.dev == (opts.config != NULL)) {
        fprintf(stderr, "Error: give either -config=FILE or -dev\n\n");
        usage(stderr);
        goto out;
    }
    if (settle(&opts, &conf) != 0 ||
        load_seal(&conf, &autoseal, &hsm) != 0)
        goto out;
    if (hsm == NULL)
        seal_set_static(autoseal);
    seal_set_static_disabled((autoseal != NULL || hsm != NULL) &&
                             conf.seal.disabled);
    /* libcurl's global state, before any thread; the file wins. */
    if (lua_http_global_init(conf.plugin_http_allowed.set
                                 ? &conf.plugin_http_allowed.urls
                                 : opts.http_allowed_set ? &opts.http_allowed
                                                         : NULL,
                             &err) != 0) {
        fprintf(stderr, "Error: %s\n", err.msg);
        goto out;
    }
    /* Block before any thread exists so every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    lua_dir = lua_dir_locate();
    storage = open_storage(&conf, &err);
    if (storage == NULL) {
        fprintf(stderr, "Error opening storage: %s\n", err.msg);
        goto out;
    }
    cfg.dev_mode = opts.dev;
    cfg.dev_root_token_id = opts.root_token_id;
    cfg.lua_dir = lua_dir;
    cfg.plugin_dir = conf.plugin_directory != NULL ? conf.plugin_directory
                                                   : opts.plugin_dir;
    cfg.policy_dir = conf.policy_directory != NULL ? conf.policy_directory
                                                   : opts.policy_dir;
    cfg.login_rate = opts.login_rate > 0 ? opts.login_rate
                                         : (double)conf.login_rate_limit;
    cfg.login_burst = opts.login_burst > 0 ? opts.login_burst
                                           : (double)conf.login_rate_burst;
    cfg.physical = storage;
    cfg.lease_retry_base = opts.lease_retry_base;
    cfg.lease_retry_max = opts.lease_retry_max;
    cfg.tick_interval = opts.tick_interval;
    cfg.lua_memory_limit = conf.lua_memory_limit;
    cfg.lua_call_timeout = (double)conf.lua_call_timeout;
    cfg.lua_policy_budget = conf.lua_policy_budget;
    cfg.ha = ha_settings(&conf, storage, &ha_cfg);
    cfg.disable_request_forwarding = conf.disable_request_forwarding;
    core_up = true;
    if (core_init(&cfg, &root_token, &unseal_key, &err) != 0) {
        fprintf(stderr, "Error initializing core: %s\n", err.msg);
        goto out;
    }
    /* Before listening: a restarted node answers unsealed at once. */
    sys_seal_auto_unseal_start();
    hcfg.address = opts.listen;
    hcfg.threads = opts.threads;
    hcfg.max_request_size = opts.max_request_size;
    hcfg.read_header_timeout = opts.read_header_timeout;
    hcfg.read_timeout = opts.read_timeout;
    hcfg.idle_timeout = opts.idle_timeout;
    hcfg.max_connections = opts.max_connections;
    hcfg.max_connections_per_ip = opts.max_connections_per_ip;
    hcfg.tls_cert_file = conf.listener.tls_cert_file;
    hcfg.tls_key_file = conf.listener.tls_key_file;
    http = http_start(&hcfg, &err);
    if (http == NULL) {
        fprintf(stderr, "Error starting listener: %s\n", err.msg);
        goto out;
    }
    if (opts.dev)
        print_dev_banner(opts.listen, opts.threads, unseal_key, root_token);
    else
        print_banner(&conf, opts.threads);
    while ((sig = wait_for_signal()) == SIGHUP) {
        reload_on_hup();
        reload_config_on_hup(opts.config);
        audit_reopen();
    }
    log_info("==> Coffer shutdown triggered (signal %d)", sig);
    code = 0;
out:
    http_stop(http);
    sys_seal_auto_unseal_stop();
    if (core_up)
        core_shutdown();
    seal_set_static(NULL);
    seal_static_free(autoseal);
    seal_pkcs11_free(hsm);
    lua_http_global_shutdown();
    strvec_release(&opts.http_allowed);
    storage_free(storage);
    secure_free_str(root_token);
    secure_free_str(unseal_key);
    free(lua_dir);
    config_release(&conf);
    return code;
}
