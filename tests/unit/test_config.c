/*
 * test_config.c - the server configuration file and the TLS listener files.
 *
 * Every case writes a real file (coffer.hcl.lua in a mkdtemp directory)
 * and loads it with config_load. Error cases compare the whole message,
 * "FILE:LINE: ...", because the line and the key are the feature: an
 * operator reads them at start-up with nothing else to go on.
 *
 * The TLS half calls http_start with files from a self-signed certificate
 * made here with the openssl command line, checks that missing or wrong
 * files are refused with their names, and completes a TLS handshake (no
 * HTTP request, so core is never reached).
 */
#include "../../src/config.c"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "audit.h"
#include "harness.h"

static char tmpdir[64];
static char cfgpath[96];

/* ============================================================ helpers == */

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

/* Writes text to cfgpath and loads it. */
static int load_text(const char *text, struct coffer_config *c,
                     struct errbuf *err)
{
    write_text(cfgpath, text, strlen(text));
    errbuf_clear(err);
    return config_load(cfgpath, c, err);
}

/* ========================================================= valid files == */

struct ok_case {
    const char *name;
    const char *text;
    enum config_storage storage;
    const char *storage_a; /* sqlite_path or pg_connection_url */
    const char *storage_b; /* pg_table */
    const char *address;
    bool tls_disable;
};

#define PLAIN_LISTENER "listener \"tcp\" { tls_disable = true }\n"

static const struct ok_case ok_cases[] = {
    {"inmem", "storage \"inmem\" {}\n" PLAIN_LISTENER, CONFIG_STORAGE_INMEM,
     NULL, NULL, CONFIG_DEFAULT_ADDRESS, true},
    {"sqlite",
     "storage \"sqlite\" { path = \"/var/lib/coffer/coffer.db\" }\n"
     "listener \"tcp\" { address = \"0.0.0.0:8200\", tls_disable = true }\n",
     CONFIG_STORAGE_SQLITE, "/var/lib/coffer/coffer.db", NULL,
     "0.0.0.0:8200", true},
    {"postgresql with table",
     "storage \"postgresql\" {\n"
     "  connection_url = \"postgresql://coffer:pw@db:5432/coffer\",\n"
     "  table = \"coffer_kv\",\n"
     "}\n" PLAIN_LISTENER,
     CONFIG_STORAGE_POSTGRESQL, "postgresql://coffer:pw@db:5432/coffer",
     "coffer_kv", CONFIG_DEFAULT_ADDRESS, true},
    {"postgresql without table",
     "storage \"postgresql\" { connection_url = \"host=db dbname=c\" }\n"
     PLAIN_LISTENER,
     CONFIG_STORAGE_POSTGRESQL, "host=db dbname=c", NULL,
     CONFIG_DEFAULT_ADDRESS, true},
    {"postgresql schema.table",
     "storage \"postgresql\" { connection_url = \"x\", table = \"s.t_1\" }\n"
     PLAIN_LISTENER,
     CONFIG_STORAGE_POSTGRESQL, "x", "s.t_1", CONFIG_DEFAULT_ADDRESS, true},
    {"tls listener",
     "storage \"inmem\" {}\n"
     "listener \"tcp\" { tls_cert_file = \"c.pem\", tls_key_file = \"k.pem\" "
     "}\n",
     CONFIG_STORAGE_INMEM, NULL, NULL, CONFIG_DEFAULT_ADDRESS, false},
    {"HCL habits: tls_disable = \"true\" / 1",
     "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = \"true\" }\n",
     CONFIG_STORAGE_INMEM, NULL, NULL, CONFIG_DEFAULT_ADDRESS, true},
    {"tls_disable = 1",
     "storage \"inmem\" {}\nlistener \"tcp\" { tls_disable = 1 }\n",
     CONFIG_STORAGE_INMEM, NULL, NULL, CONFIG_DEFAULT_ADDRESS, true},
    {"blocks in either order, locals and comments",
     "-- a comment\nlocal dir = \"/srv/coffer\"\n" PLAIN_LISTENER
     "storage \"sqlite\" { path = dir .. \"/coffer.db\" }\n",
     CONFIG_STORAGE_SQLITE, "/srv/coffer/coffer.db", NULL,
     CONFIG_DEFAULT_ADDRESS, true},
    {"parenthesised call style",
     "storage(\"inmem\")({})\nlistener(\"tcp\")({ tls_disable = true })\n",
     CONFIG_STORAGE_INMEM, NULL, NULL, CONFIG_DEFAULT_ADDRESS, true},
};

TEST(valid_table)
{
    for (size_t i = 0; i < ARRAY_LEN(ok_cases); i++) {
        const struct ok_case *k = &ok_cases[i];
        struct coffer_config c;
        struct errbuf err;
        int rc = load_text(k->text, &c, &err);
        const char *a = NULL, *b = NULL;

        if (rc != 0) {
            harness_fail(__FILE__, __LINE__, "case \"%s\": %d %s", k->name,
                         rc, err.msg);
            continue;
        }
        if (k->storage == CONFIG_STORAGE_SQLITE)
            a = c.storage.sqlite_path;
        if (k->storage == CONFIG_STORAGE_POSTGRESQL) {
            a = c.storage.pg_connection_url;
            b = c.storage.pg_table;
        }
        if (c.storage.type != k->storage ||
            !(a == k->storage_a ||
              (a && k->storage_a && strcmp(a, k->storage_a) == 0)) ||
            !(b == k->storage_b ||
              (b && k->storage_b && strcmp(b, k->storage_b) == 0)) ||
            strcmp(c.listener.address, k->address) != 0 ||
            c.listener.tls_disable != k->tls_disable ||
            c.listener.max_request_size != CONFIG_DEFAULT_MAX_REQUEST_SIZE)
            harness_fail(__FILE__, __LINE__,
                         "case \"%s\": storage %s \"%s\" \"%s\" address %s "
                         "tls_disable %d", k->name,
                         config_storage_name(c.storage.type), a ? a : "-",
                         b ? b : "-", c.listener.address,
                         (int)c.listener.tls_disable);
        /* The TLS invariant in config.h. */
        if (c.listener.tls_disable)
            CHECK(c.listener.tls_cert_file == NULL &&
                  c.listener.tls_key_file == NULL);
        else
            CHECK(c.listener.tls_cert_file != NULL &&
                  c.listener.tls_key_file != NULL);
        config_release(&c);
    }
}

TEST(valid_every_key)
{
    static const char text[] =
        "listener \"tcp\" {\n"
        "  address          = \"[::1]:8300\",\n"
        "  tls_cert_file    = \"/etc/coffer/tls/cert.pem\",\n"
        "  tls_key_file     = \"/etc/coffer/tls/key.pem\",\n"
        "  max_request_size = 1048576,\n"
        "  max_request_duration = \"45s\",\n"
        "  http_read_header_timeout = \"5s\",\n"
        "  http_read_timeout = 20,\n"
        "  http_idle_timeout = \"2m\",\n"
        "  max_connections = 2000,\n"
        "  max_connections_per_ip = 64,\n"
        "}\n"
        "storage \"sqlite\" { path = \"/var/lib/coffer/coffer.db\" }\n"
        "default_max_request_duration = \"2m\"\n"
        "default_lease_ttl = \"1h30m\"\n"
        "max_lease_ttl     = 86400 * 2\n"
        "plugin_directory  = \"/etc/coffer/lua\"\n"
        "policy_directory  = \"/etc/coffer/policies\"\n"
        "log_level         = \"debug\"\n"
        "api_addr          = \"https://coffer.example.com:8200\"\n"
        "disable_mlock     = true\n"
        "workers           = 4\n"
        "login_rate_limit  = 5\n"
        "login_rate_burst  = 20\n"
        "lua_memory_limit  = 128 * 1024 * 1024\n"
        "lua_call_timeout  = \"30s\"\n"
        "lua_policy_budget = 500000\n"
        "lease_revocation_nice = 0\n";
    struct coffer_config c;
    struct errbuf err;

    CHECK_EQ_INT(load_text(text, &c, &err), 0);
    CHECK_STREQ(err.msg, "");
    CHECK_STREQ(c.path, cfgpath);
    CHECK_STREQ(c.listener.address, "[::1]:8300");
    CHECK_STREQ(c.listener.tls_cert_file, "/etc/coffer/tls/cert.pem");
    CHECK_STREQ(c.listener.tls_key_file, "/etc/coffer/tls/key.pem");
    CHECK(!c.listener.tls_disable);
    CHECK_EQ_INT(c.listener.max_request_size, 1048576);
    CHECK_EQ_INT(c.storage.type, CONFIG_STORAGE_SQLITE);
    CHECK_STREQ(c.storage.sqlite_path, "/var/lib/coffer/coffer.db");
    CHECK_EQ_INT(c.default_lease_ttl, 5400);
    CHECK_EQ_INT(c.max_lease_ttl, 172800);
    CHECK_STREQ(c.plugin_directory, "/etc/coffer/lua");
    CHECK_STREQ(c.policy_directory, "/etc/coffer/policies");
    CHECK_STREQ(c.log_level, "debug");
    CHECK_STREQ(c.api_addr, "https://coffer.example.com:8200");
    CHECK(c.disable_mlock);
    CHECK_EQ_INT(c.workers, 4);
    CHECK_EQ_INT(c.login_rate_limit, 5);
    CHECK_EQ_INT(c.login_rate_burst, 20);
    CHECK_EQ_INT(c.listener.max_request_duration, 45);
    CHECK_EQ_INT(c.listener.http_read_header_timeout, 5);
    CHECK_EQ_INT(c.listener.http_read_timeout, 20);
    CHECK_EQ_INT(c.listener.http_idle_timeout, 120);
    CHECK_EQ_INT(c.listener.max_connections, 2000);
    CHECK_EQ_INT(c.listener.max_connections_per_ip, 64);
    CHECK_EQ_INT(c.default_max_request_duration, 120);
    CHECK_EQ_INT(c.lua_memory_limit, 128 * 1024 * 1024);
    CHECK_EQ_INT(c.lua_call_timeout, 30);
    CHECK_EQ_INT(c.lua_policy_budget, 500000);
    CHECK_EQ_INT(c.lease_revocation_nice, 0);
    config_release(&c);
    CHECK(c.path == NULL && c.listener.address == NULL);
}

TEST(max_request_duration_top_level_alias)
{
    /* The short name at the top level means Vault's default_... one. */
    struct coffer_config c;
    struct errbuf err;

    CHECK_EQ_INT(load_text("storage \"inmem\" {}\n" PLAIN_LISTENER
                           "max_request_duration = \"30s\"\n", &c, &err),
                 0);
    CHECK_STREQ(err.msg, "");
    CHECK_EQ_INT(c.default_max_request_duration, 30);
    CHECK_EQ_INT(c.listener.max_request_duration, 0);
    CHECK_EQ_INT(c.listener.max_connections, 0);
    config_release(&c);
}

TEST(valid_defaults_and_readback)
{
    /* Unset settings read as nil; set ones read back as written. */
    static const char text[] =
        "storage \"inmem\" {}\n" PLAIN_LISTENER
        "assert(max_lease_ttl == nil)\n"
        "default_lease_ttl = \"2h\"\n"
        "max_lease_ttl = default_lease_ttl\n";
    struct coffer_config c;
    struct errbuf err;

    CHECK_EQ_INT(load_text(text, &c, &err), 0);
    CHECK_STREQ(err.msg, "");
    CHECK_EQ_INT(c.default_lease_ttl, 7200);
    CHECK_EQ_INT(c.max_lease_ttl, 7200);
    CHECK(c.plugin_directory == NULL && c.log_level == NULL);
    CHECK_EQ_INT(c.workers, 0);
    CHECK(!c.disable_mlock);
    CHECK_EQ_INT(c.lease_revocation_nice, -1); /* lease_expire.c's default */
    /* Unset Lua limits are 0: the runtime's defaults apply. */
    CHECK(c.lua_memory_limit == 0 && c.lua_call_timeout == 0 &&
          c.lua_policy_budget == 0);
    config_release(&c);
}

TEST(the_examples_load)
{
    static const char *const files[] = {
        "examples/coffer.prod.lua",
        "examples/coffer.dev-sqlite.lua",
    };

    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        struct coffer_config c;
        struct errbuf err = {{0}};

        if (access(files[i], R_OK) != 0) {
            harness_fail(__FILE__, __LINE__, "%s: not found (run from the "
                         "top of the tree)", files[i]);
            continue;
        }
        if (config_load(files[i], &c, &err) != 0) {
            harness_fail(__FILE__, __LINE__, "%s", err.msg);
            continue;
        }
        CHECK_EQ_INT(c.storage.type, CONFIG_STORAGE_SQLITE);
        config_release(&c);
    }
}

/* ========================================================= bad files == */

struct bad_case {
    const char *text;
    const char *want; /* the message after the file name */
};

#define INMEM "storage \"inmem\" {}\n"

static const struct bad_case bad_cases[] = {
    /* the Lua limits: types and ranges */
    {INMEM PLAIN_LISTENER "lua_memory_limit = 1024\n",
     ":3: lua_memory_limit: expected an integer from 4194304 to "
     "17179869184, got 1024"},
    {INMEM PLAIN_LISTENER "lua_memory_limit = \"64MiB\"\n",
     ":3: lua_memory_limit: expected integer, got string"},
    {INMEM PLAIN_LISTENER "lua_call_timeout = \"0s\"\n",
     ":3: lua_call_timeout: must be from 1s to 3600s"},
    {INMEM PLAIN_LISTENER "lua_call_timeout = \"2h\"\n",
     ":3: lua_call_timeout: must be from 1s to 3600s"},
    {INMEM PLAIN_LISTENER "lua_call_timeout = \"soon\"\n",
     ":3: lua_call_timeout: invalid duration \"soon\""},
    {INMEM PLAIN_LISTENER "lua_policy_budget = 10\n",
     ":3: lua_policy_budget: expected an integer from 10000 to 1000000000, "
     "got 10"},
    {INMEM PLAIN_LISTENER "lua_policy_budget = 1.5\n",
     ":3: lua_policy_budget: expected an integer from 10000 to 1000000000, "
     "got 1.5"},
    /* unknown keys */
    {INMEM PLAIN_LISTENER "default_lease_tl = \"1h\"\n",
     ":3: unknown key \"default_lease_tl\""},
    {INMEM "\n"
     "listener \"tcp\" { adress = \"127.0.0.1:8200\", tls_disable = true }\n",
     ":3: unknown key \"adress\" in listener \"tcp\""},
    {INMEM "listener \"tcp\" {\n  tls_disable = true,\n  adress = \"x\",\n}\n",
     ":2: unknown key \"adress\" in listener \"tcp\""},
    {"storage \"sqlite\" { path = \"/x\", paht = \"/y\" }\n" PLAIN_LISTENER,
     ":1: unknown key \"paht\" in storage \"sqlite\""},
    {"storage \"inmem\" { path = \"/x\" }\n" PLAIN_LISTENER,
     ":1: unknown key \"path\" in storage \"inmem\""},
    {"lisener \"tcp\" {}\n", ":1: unknown name \"lisener\""},
    {INMEM PLAIN_LISTENER "storage = 1\n",
     ":3: cannot assign to the built-in \"storage\""},
    {INMEM PLAIN_LISTENER "log_level = \"info\"\nlog_level = \"debug\"\n",
     ":4: log_level is set twice (first at line 3)"},
    {INMEM "listener \"tcp\" { \"127.0.0.1:8200\" }\n",
     ":2: listener \"tcp\": unexpected value without a key (want key = "
     "value)"},
    /* wrong types */
    {INMEM PLAIN_LISTENER "workers = \"8\"\n",
     ":3: workers: expected integer, got string"},
    {INMEM PLAIN_LISTENER "workers = 0\n",
     ":3: workers: expected an integer from 1 to 1024, got 0"},
    {INMEM PLAIN_LISTENER "lease_revocation_nice = 20\n",
     ":3: lease_revocation_nice: expected an integer from 0 to 19, got 20"},
    {INMEM PLAIN_LISTENER "lease_revocation_nice = -5\n",
     ":3: lease_revocation_nice: expected an integer from 0 to 19, got -5"},
    {INMEM PLAIN_LISTENER "lease_revocation_nice = \"low\"\n",
     ":3: lease_revocation_nice: expected integer, got string"},
    {INMEM PLAIN_LISTENER "default_max_request_duration = \"1m\"\n"
                          "max_request_duration = \"2m\"\n",
     ":4: max_request_duration is set twice: as "
     "default_max_request_duration at line 3 and as max_request_duration "
     "at line 4"},
    {INMEM PLAIN_LISTENER "max_request_duration = \"soon\"\n",
     ":3: max_request_duration: invalid duration \"soon\""},
    {INMEM "listener \"tcp\" { tls_disable = true, max_connections = 0 }\n",
     ":2: listener \"tcp\": max_connections: expected an integer from 1 to "
     "1000000, got 0"},
    {INMEM "listener \"tcp\" { tls_disable = true, "
           "max_connections_per_ip = \"10\" }\n",
     ":2: listener \"tcp\": max_connections_per_ip: expected integer, got "
     "string"},
    {INMEM "listener \"tcp\" { tls_disable = true, "
           "http_read_header_timeout = -1 }\n",
     ":2: listener \"tcp\": http_read_header_timeout: invalid duration -1"},
    {INMEM PLAIN_LISTENER "disable_mlock = {}\n",
     ":3: disable_mlock: expected boolean, got table"},
    {INMEM PLAIN_LISTENER "plugin_directory = 42\n",
     ":3: plugin_directory: expected string, got number"},
    {INMEM PLAIN_LISTENER "policy_directory = \"\"\n",
     ":3: policy_directory: must not be empty"},
    {INMEM "listener \"tcp\" { address = 8200, tls_disable = true }\n",
     ":2: listener \"tcp\": address: expected string, got number"},
    {INMEM "listener \"tcp\" { tls_disable = \"yes\" }\n",
     ":2: listener \"tcp\": tls_disable: invalid boolean \"yes\""},
    {INMEM "listener \"tcp\" { tls_disable = true, max_request_size = -1 }\n",
     ":2: listener \"tcp\": max_request_size: expected an integer from 1 to "
     "9223372036854775807, got -1"},
    {INMEM "listener \"tcp\" { address = \"8200\", tls_disable = true }\n",
     ":2: listener \"tcp\": address: invalid address \"8200\" (want "
     "host:port)"},
    {INMEM "listener \"tcp\" \"x\"\n",
     ":2: listener \"tcp\": expected a { ... } block, got string"},
    {INMEM "listener(8200)\n",
     ":2: listener: expected a type name, as in listener \"tcp\" { ... }"},
    {INMEM PLAIN_LISTENER "log_level = \"verbose\"\n",
     ":3: log_level: unknown level \"verbose\" (want trace, debug, info, "
     "warn or error)"},
    {INMEM PLAIN_LISTENER "api_addr = \"coffer:8200\"\n",
     ":3: api_addr: invalid URL \"coffer:8200\" (want https://host:port)"},
    /* durations */
    {INMEM PLAIN_LISTENER "\n\ndefault_lease_ttl = \"5 minutes\"\n",
     ":5: default_lease_ttl: invalid duration \"5 minutes\""},
    {INMEM PLAIN_LISTENER "max_lease_ttl = -5\n",
     ":3: max_lease_ttl: invalid duration -5"},
    {INMEM PLAIN_LISTENER "max_lease_ttl = true\n",
     ":3: max_lease_ttl: expected a duration such as \"768h\", got boolean"},
    {INMEM PLAIN_LISTENER "default_lease_ttl = \"768h\"\n"
                          "max_lease_ttl = \"1h\"\n",
     ":3: default_lease_ttl (768h) is greater than max_lease_ttl (1h)"},
    /* blocks */
    {PLAIN_LISTENER, ": no storage block; add one, e.g. storage \"sqlite\" "
                     "{ path = \"/var/lib/coffer/coffer.db\" }"},
    {INMEM, ": no listener block; add one, e.g. listener \"tcp\" { address "
            "= \"127.0.0.1:8200\", ... }"},
    {INMEM PLAIN_LISTENER "\nstorage \"sqlite\" { path = \"/x\" }\n",
     ":4: a second storage block (the first is at line 1): exactly one is "
     "allowed"},
    {INMEM PLAIN_LISTENER
     "listener \"tcp\" { address = \"0.0.0.0:8201\", tls_disable = true }\n",
     ":3: a second listener block (the first is at line 2): only one "
     "listener is supported for now"},
    {"storage \"raft\" { path = \"/x\" }\n",
     ":1: unknown storage type \"raft\" (want inmem, sqlite or postgresql)"},
    {INMEM "listener \"unix\" {}\n",
     ":2: unknown listener type \"unix\" (only \"tcp\" is supported)"},
    {"storage \"sqlite\" {}\n" PLAIN_LISTENER,
     ":1: storage \"sqlite\": path is required"},
    {"storage \"postgresql\" { table = \"t\" }\n" PLAIN_LISTENER,
     ":1: storage \"postgresql\": connection_url is required"},
    {"storage \"postgresql\" { connection_url = \"x\", table = \"t; drop\" }\n"
     PLAIN_LISTENER,
     ":1: storage \"postgresql\": table: invalid table name \"t; drop\" "
     "(want letters, digits and _, or schema.table)"},
    {INMEM "listener \"tcp\" { address = \"0.0.0.0:8200\" }\n",
     ":2: listener \"tcp\": tls_cert_file and tls_key_file are required "
     "unless tls_disable = true"},
    {INMEM "listener \"tcp\" { tls_cert_file = \"c.pem\" }\n",
     ":2: listener \"tcp\": tls_cert_file and tls_key_file are required "
     "unless tls_disable = true"},
    {INMEM "\nlistener \"tcp\"\n", ":3: listener \"tcp\" has no { ... } block"},
    {INMEM "local b = listener \"tcp\"\nb { tls_disable = true }\n"
           "b { tls_disable = true }\n",
     ":4: listener \"tcp\": the block was given twice"},
    /* Lua itself */
    {INMEM "listener \"tcp\" { tls_disable = true\n",
     ":3: '}' expected (to close '{' at line 2) near <eof>"},
    {INMEM PLAIN_LISTENER "error(\"boom\")\n", ":3: boom"},
    {INMEM PLAIN_LISTENER "error({})\n", ": raised a table value instead of "
                                         "a message"},
    {INMEM PLAIN_LISTENER "local n = 0\nwhile true do n = n + 1 end\n",
     ":4: the configuration did not finish within 1000000 instructions (an "
     "endless loop?)"},
    {INMEM PLAIN_LISTENER "local s = string.rep(\"x\", 64 * 1024 * 1024)\n",
     ": the configuration needs more than 8 MiB of memory"},
    /* the sandbox */
    {INMEM PLAIN_LISTENER "os.execute(\"touch /tmp/coffer-pwned\")\n",
     ":3: \"os\" is not available in a configuration file"},
    {INMEM PLAIN_LISTENER "local f = io.open(\"/etc/passwd\")\n",
     ":3: \"io\" is not available in a configuration file"},
    {INMEM PLAIN_LISTENER "require(\"x\")\n",
     ":3: \"require\" is not available in a configuration file"},
    {INMEM PLAIN_LISTENER "load(\"return 1\")\n",
     ":3: \"load\" is not available in a configuration file"},
    {INMEM PLAIN_LISTENER "dofile(\"/etc/passwd\")\n",
     ":3: \"dofile\" is not available in a configuration file"},
    {INMEM PLAIN_LISTENER "pcall(error)\n",
     ":3: \"pcall\" is not available in a configuration file"},
    {INMEM PLAIN_LISTENER "rawset(_ENV, \"workers\", \"x\")\n",
     ":3: \"rawset\" is not available in a configuration file"},
    {INMEM PLAIN_LISTENER "setmetatable(_ENV, nil)\n",
     ":3: \"setmetatable\" is not available in a configuration file"},
    {INMEM PLAIN_LISTENER "local e = _ENV\ne.wrkers = 1\n",
     ":4: unknown key \"wrkers\""},
    {INMEM PLAIN_LISTENER "_ENV = {}\nworkers = \"ignored?\"\n",
     ": the configuration replaced _ENV; assign the settings directly"},
    /* HA: api_addr required, the lock TTL bounded, keys only where valid */
    {PLAIN_LISTENER "storage \"postgresql\" { connection_url = "
     "\"postgresql://u@h/db\", ha_enabled = true }\n",
     ":2: ha_enabled needs api_addr: the address clients are sent to when "
     "this node is active, e.g. api_addr = "
     "\"https://coffer-1.internal:8200\""},
    {PLAIN_LISTENER "storage \"postgresql\" { connection_url = "
     "\"postgresql://u@h/db\", ha_enabled = true, ha_lock_ttl = \"1s\" }\n"
     "api_addr = \"http://127.0.0.1:8200\"\n",
     ":2: ha_lock_ttl must be between 3s and 300s"},
    {PLAIN_LISTENER "storage \"postgresql\" { connection_url = "
     "\"postgresql://u@h/db\", ha_table = \"x; DROP TABLE y\" }\n",
     NULL},
    {PLAIN_LISTENER "storage \"sqlite\" { path = \"/tmp/x.db\", "
     "ha_enabled = true }\n", NULL},
};

TEST(error_table)
{
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        struct coffer_config c;
        struct errbuf err;
        char want[512];
        int rc = load_text(bad_cases[i].text, &c, &err);

        snprintf(want, sizeof(want), "%s%s", cfgpath,
                 bad_cases[i].want != NULL ? bad_cases[i].want : "");
        /* want NULL: refused, whatever the words */
        if (rc == 0 ||
            (bad_cases[i].want != NULL && strcmp(err.msg, want) != 0))
            harness_fail(__FILE__, __LINE__,
                         "case %zu: rc %d\n    got:  %s\n    want: %s", i, rc,
                         err.msg, want);
        /* A failed load leaves nothing to release. */
        CHECK(c.path == NULL && c.listener.address == NULL &&
              c.storage.sqlite_path == NULL);
    }
    CHECK(access("/tmp/coffer-pwned", F_OK) != 0);
}

TEST(error_not_text)
{
    struct coffer_config c;
    struct errbuf err = {{0}};
    char want[512];
    static const char bytecode[] = "\x1bLua\x54\x00junk";

    write_text(cfgpath, bytecode, sizeof(bytecode) - 1);
    CHECK(config_load(cfgpath, &c, &err) != 0);
    snprintf(want, sizeof(want),
             "%s: precompiled Lua is not accepted; use the source text",
             cfgpath);
    CHECK_STREQ(err.msg, want);
}

TEST(error_no_file)
{
    struct coffer_config c;
    struct errbuf err = {{0}};

    CHECK_EQ_INT(config_load("/nonexistent/coffer.hcl.lua", &c, &err),
                 COFFER_EIO);
    CHECK_STREQ(err.msg, "/nonexistent/coffer.hcl.lua: cannot open: No such "
                         "file or directory");
    CHECK_EQ_INT(config_load(tmpdir, &c, &err), COFFER_EIO);
    CHECK(strstr(err.msg, "not a regular file") != NULL);
}

TEST(secret_not_echoed)
{
    /* A bad connection_url is never quoted back (it holds a password). */
    struct coffer_config c;
    struct errbuf err;

    CHECK(load_text("storage \"postgresql\" { connection_url = 5 }\n"
                    PLAIN_LISTENER, &c, &err) != 0);
    CHECK(strstr(err.msg, "connection_url: expected string, got number") !=
          NULL);
}

/* ================================================================ TLS == */

static char certfile[96];
static char keyfile[96];
static int have_cert = -1; /* -1 not tried, 0 no openssl, 1 made */

/*
 * Makes a self-signed certificate for 127.0.0.1 once. The subjectAltName
 * matters: clients that verify an IP address (Python's ssl, OpenSSL's
 * X509_check_ip) ignore the CN, while curl falls back to it.
 */
static int make_cert(void)
{
    char cmd[512];

    if (have_cert >= 0)
        return have_cert;
    snprintf(certfile, sizeof(certfile), "%s/c.pem", tmpdir);
    snprintf(keyfile, sizeof(keyfile), "%s/k.pem", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1,DNS:localhost "
             "-days 1 -keyout '%s' -out '%s' >/dev/null 2>&1",
             keyfile, certfile);
    have_cert = system(cmd) == 0 ? 1 : 0;
    if (have_cert == 0)
        printf("  (skipped: no openssl command to make a certificate)\n");
    return have_cert;
}

/* A port nobody listens on right now. */
static uint16_t free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port = 0;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd != -1 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd != -1)
        close(fd);
    return port;
}

static struct http_server *start_tls(const char *cert, const char *key,
                                     char *address, size_t n,
                                     struct errbuf *err)
{
    struct http_config hc = {0};

    snprintf(address, n, "127.0.0.1:%u", (unsigned)free_port());
    hc.address = address;
    hc.threads = 2;
    hc.tls_cert_file = cert;
    hc.tls_key_file = key;
    errbuf_clear(err);
    return http_start(&hc, err);
}

TEST(tls_missing_files)
{
    struct errbuf err;
    char addr[64];

    CHECK(start_tls("/nonexistent/c.pem", "/nonexistent/k.pem", addr,
                    sizeof(addr), &err) == NULL);
    CHECK_STREQ(err.msg, "cannot read the TLS certificate file "
                         "\"/nonexistent/c.pem\": No such file or directory");
    if (make_cert() == 0)
        return;
    CHECK(start_tls(certfile, "/nonexistent/k.pem", addr, sizeof(addr),
                    &err) == NULL);
    CHECK_STREQ(err.msg, "cannot read the TLS key file \"/nonexistent/k.pem\""
                         ": No such file or directory");
    CHECK(start_tls(certfile, NULL, addr, sizeof(addr), &err) == NULL);
    CHECK_STREQ(err.msg, "TLS needs both a certificate and a key file");
}

TEST(tls_bad_files)
{
    struct errbuf err;
    char addr[64];
    char empty[96];
    char want[512];

    if (make_cert() == 0)
        return;
    snprintf(empty, sizeof(empty), "%s/empty.pem", tmpdir);
    write_text(empty, "", 0);
    CHECK(start_tls(certfile, empty, addr, sizeof(addr), &err) == NULL);
    snprintf(want, sizeof(want), "the TLS key file \"%s\" is empty", empty);
    CHECK_STREQ(err.msg, want);

    /* The certificate given as the key: MHD/GnuTLS refuse to start. */
    CHECK(start_tls(certfile, certfile, addr, sizeof(addr), &err) == NULL);
    CHECK(strstr(err.msg, "cannot start the TLS listener on 127.0.0.1:") !=
          NULL);
    CHECK(strstr(err.msg, certfile) != NULL);
}

/*
 * Connects to 127.0.0.1:port and completes a TLS handshake that verifies
 * the chain against certfile and the IP address, as a careful client
 * would. Fills cn with the peer's CN; 0 on success.
 */
static int tls_handshake(uint16_t port, char *cn, size_t n)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    X509 *peer = NULL;
    struct sockaddr_in a;
    int fd = -1;
    int rc = -1;

    cn[0] = '\0';
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, certfile, NULL) != 1)
        goto out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx),
                                      "127.0.0.1") != 1)
        goto out;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd == -1 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto out;
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1 ||
        SSL_get_verify_result(ssl) != X509_V_OK)
        goto out;
    peer = SSL_get1_peer_certificate(ssl);
    if (peer == NULL ||
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
                                  NID_commonName, cn, (int)n) < 0)
        goto out;
    rc = 0;
    SSL_shutdown(ssl);
out:
    X509_free(peer);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd != -1)
        close(fd);
    return rc;
}

TEST(tls_handshake_after_key_wiped)
{
    struct http_server *srv;
    struct errbuf err;
    char addr[64];
    char cn[128];
    uint16_t port;

    if (make_cert() == 0)
        return;
    srv = start_tls(certfile, keyfile, addr, sizeof(addr), &err);
    CHECK(srv != NULL);
    if (srv == NULL) {
        printf("  %s\n", err.msg);
        return;
    }
    port = (uint16_t)strtoul(strrchr(addr, ':') + 1, NULL, 10);
    /* Twice: the second handshake runs long after the key text was wiped. */
    CHECK_EQ_INT(tls_handshake(port, cn, sizeof(cn)), 0);
    CHECK_STREQ(cn, "127.0.0.1");
    CHECK_EQ_INT(tls_handshake(port, cn, sizeof(cn)), 0);
    http_stop(srv);
}

TEST(plain_http_still_starts)
{
    struct http_server *srv;
    struct errbuf err;
    char addr[64];
    struct sockaddr_in a;
    int fd;

    srv = start_tls(NULL, NULL, addr, sizeof(addr), &err);
    CHECK(srv != NULL);
    if (srv == NULL) {
        printf("  %s\n", err.msg);
        return;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)strtoul(strrchr(addr, ':') + 1, NULL, 10));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd != -1 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    if (fd != -1)
        close(fd);
    http_stop(srv);
}

/* ======================================================= audit devices == */

#include "../../src/json.h"

TEST(audit_declarations)
{
    static const char text[] =
        "storage \"inmem\" {}\n" PLAIN_LISTENER
        "audit \"file\" \"main\" {\n"
        "  description = \"d\", [\"local\"] = true,\n"
        "  options = { file_path = \"/var/log/a.log\", log_raw = false },\n"
        "}\n"
        "audit \"syslog\" { tag = \"coffer\", facility = \"LOCAL0\" }\n"
        "audit \"socket\" \"s/n\" { address = \"127.0.0.1:9\", "
        "write_timeout = 2 }\n"
        "unsafe_allow_api_audit_creation = false\n";
    struct coffer_config c;
    struct errbuf err;

    CHECK_EQ_INT(load_text(text, &c, &err), 0);
    CHECK_STREQ(err.msg, "");
    CHECK_EQ_INT(c.naudit, 3);
    CHECK(!c.unsafe_allow_api_audit_creation);
    if (c.naudit == 3) {
        CHECK_STREQ(c.audit[0].type, "file");
        CHECK_STREQ(c.audit[0].path, "main");
        CHECK_STREQ(c.audit[0].description, "d");
        CHECK(c.audit[0].local);
        CHECK_EQ_INT(c.audit[0].line, 3);
        CHECK_STREQ(json_get_str(c.audit[0].options, "file_path", ""),
                    "/var/log/a.log");
        CHECK_STREQ(json_get_str(c.audit[0].options, "log_raw", ""),
                    "false");
        CHECK_STREQ(c.audit[1].path, "syslog"); /* the type by default */
        CHECK_EQ_INT(c.audit[1].line, 7);
        CHECK_STREQ(c.audit[2].path, "s/n");
        CHECK_STREQ(json_get_str(c.audit[2].options, "write_timeout", ""),
                    "2");
    }
    config_release(&c);

    /* Without the key, API creation stays allowed (Vault's default). */
    CHECK_EQ_INT(load_text("storage \"inmem\" {}\n" PLAIN_LISTENER, &c,
                           &err), 0);
    CHECK(c.unsafe_allow_api_audit_creation);
    CHECK_EQ_INT(c.naudit, 0);
    config_release(&c);

    /* Errors carry the line of the block. */
    CHECK(load_text("storage \"inmem\" {}\n" PLAIN_LISTENER
                    "audit \"file\" \"x\" { mode = \"0600\" }\n", &c,
                    &err) != 0);
    CHECK(strstr(err.msg, ":3: audit \"file\" \"x\": file_path is "
                          "required") != NULL);
    CHECK(load_text("storage \"inmem\" {}\n" PLAIN_LISTENER
                    "audit \"file\" \"x\" (\"y\")\n", &c, &err) != 0);
    CHECK(strstr(err.msg, ":3:") != NULL);
    CHECK(load_text("storage \"inmem\" {}\n" PLAIN_LISTENER
                    "local f = audit \"file\" \"x\"\n"
                    "f { file_path = \"/a\" }\nf { file_path = \"/b\" }\n",
                    &c, &err) != 0);
    CHECK(strstr(err.msg, ":5:") != NULL &&
          strstr(err.msg, "given twice") != NULL);
}

/* =============================================================== main == */

static void cleanup(void)
{
    char cmd[128];

    if (tmpdir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    config_set_audit_check(audit_check_declaration); /* as server.c does */
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/coffer-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(cfgpath, sizeof(cfgpath), "%s/coffer.hcl.lua", tmpdir);
    atexit(cleanup);

    RUN(valid_table);
    RUN(valid_every_key);
    RUN(max_request_duration_top_level_alias);
    RUN(valid_defaults_and_readback);
    RUN(the_examples_load);
    RUN(error_table);
    RUN(error_not_text);
    RUN(error_no_file);
    RUN(secret_not_echoed);
    RUN(tls_missing_files);
    RUN(tls_bad_files);
    RUN(tls_handshake_after_key_wiped);
    RUN(plain_http_still_starts);
    RUN(audit_declarations);
    return HARNESS_DONE();
}
