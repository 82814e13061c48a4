/*
 * fuzz_config.c - the Lua configuration loader (src/config.c, included).
 *
 * The input is the text of a configuration file, run through the same
 * run_chunk that config_load uses after reading the file (so no temp
 * file: the sandbox, the key tables, the memory cap and the instruction
 * budget are all exercised in memory).
 *
 * Oracles beyond the sanitizers: a failed load says why; a successful one
 * holds config.h's invariants (storage chosen and complete, listener with
 * an address, TLS files both set or TLS disabled, sane limits and TTLs).
 */
#include "../../src/config.c"

#include "audit.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    config_set_audit_check(audit_check_declaration); /* as server.c does */
    return 0;
}

static void check_loaded(const struct coffer_config *c)
{
    const struct config_listener *l = &c->listener;
    const struct config_storage_settings *s = &c->storage;

    FUZZ_CHECK(s->type != CONFIG_STORAGE_NONE);
    FUZZ_CHECK(s->type != CONFIG_STORAGE_SQLITE || s->sqlite_path != NULL);
    FUZZ_CHECK(s->type != CONFIG_STORAGE_POSTGRESQL ||
               s->pg_connection_url != NULL);
    FUZZ_CHECK(l->address != NULL && l->address[0] != '\0');
    FUZZ_CHECK(l->tls_disable
                   ? l->tls_cert_file == NULL && l->tls_key_file == NULL
                   : l->tls_cert_file != NULL && l->tls_key_file != NULL);
    FUZZ_CHECK(l->max_request_size > 0);
    FUZZ_CHECK(c->workers <= CONFIG_MAX_WORKERS);
    FUZZ_CHECK(c->default_lease_ttl >= 0 && c->max_lease_ttl >= 0);
    FUZZ_CHECK(c->default_lease_ttl == 0 || c->max_lease_ttl == 0 ||
               c->default_lease_ttl <= c->max_lease_ttl);
    FUZZ_CHECK(c->log_level == NULL || log_level_parse(c->log_level) >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char path[] = "fuzz.lua";
    struct coffer_config out;
    struct load_ctx ctx;
    struct errbuf err;
    int rc;

    if (size > CONFIG_MAX_FILE_SIZE)
        return 0;
    memset(&out, 0, sizeof(out));
    memset(&ctx, 0, sizeof(ctx));
    errbuf_clear(&err);
    ctx.out = &out;
    out.path = xstrdup(path);
    rc = run_chunk(&ctx, path, (const char *)data, size, &err);
    if (rc == 0)
        check_loaded(&out);
    else
        FUZZ_CHECK(err.msg[0] != '\0');
    config_release(&out);
    return 0;
}
