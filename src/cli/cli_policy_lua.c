/*
 * cli_policy_lua.c - `coffer policy test` for a Lua policy file.
 *
 * Owns the scratch policy directory (a copy of the one file, so its
 * siblings are not loaded) and the in-memory dev core around it, the
 * way `coffer plugin test` boots one. The cases then go through
 * policy_trace, the decision code of real requests, Lua check included.
 */
#include "cli_policy_lua.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core.h"
#include "../log.h"
#include "../lua_http.h"
#include "../policy.h"
#include "../storage.h"
#include "../util.h"

static struct {
    char dir[64];
    char *copy;
    struct storage *storage;
    char *lua_dir;
    bool core_up, http_up;
} lp;

/* Copies file into the scratch directory under its own base name. */
static int copy_in(const char *file, struct errbuf *err)
{
    const char *base = strrchr(file, '/');
    FILE *in, *out;
    char chunk[8192];
    size_t n;
    int rc = 0;

    base = base != NULL ? base + 1 : file;
    snprintf(lp.dir, sizeof(lp.dir), "/tmp/coffer-policy-test-XXXXXX");
    if (mkdtemp(lp.dir) == NULL) {
        lp.dir[0] = '\0';
        errbuf_set(err, "mkdtemp: %s", strerror(errno));
        return COFFER_EIO;
    }
    lp.copy = xmalloc(strlen(lp.dir) + strlen(base) + 2);
    snprintf(lp.copy, strlen(lp.dir) + strlen(base) + 2, "%s/%s", lp.dir,
             base);
    in = fopen(file, "rb");
    out = in != NULL ? fopen(lp.copy, "wb") : NULL;
    if (in == NULL || out == NULL) {
        errbuf_set(err, "open %s: %s", in == NULL ? file : lp.copy,
                   strerror(errno));
        rc = COFFER_EIO;
    }
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), in)) > 0) {
        if (fwrite(chunk, 1, n, out) != n) {
            errbuf_set(err, "write %s: %s", lp.copy, strerror(errno));
            rc = COFFER_EIO;
        }
    }
    if (in != NULL)
        fclose(in);
    if (out != NULL && fclose(out) != 0 && rc == 0) {
        errbuf_set(err, "write %s: %s", lp.copy, strerror(errno));
        rc = COFFER_EIO;
    }
    return rc;
}

/* The one Lua policy's name: every policy but default. */
static int find_name(char **name, struct errbuf *err)
{
    struct strvec names;
    int rc = COFFER_EINVAL;

    strvec_init(&names);
    policy_names(&names);
    for (size_t i = 0; i < names.n; i++) {
        if (strcmp(names.v[i], "default") != 0) {
            *name = xstrdup(names.v[i]);
            rc = 0;
            break;
        }
    }
    if (rc != 0)
        errbuf_set(err, "the file defines no policy");
    strvec_release(&names);
    return rc;
}

int cli_policy_lua_boot(const char *file, char **name, struct errbuf *err)
{
    struct core_config cfg = {0};
    char *root = NULL, *key = NULL;
    int rc;

    *name = NULL;
    log_set_level(LOG_LEVEL_ERROR);
    rc = copy_in(file, err);
    if (rc == 0) {
        rc = lua_http_global_init(NULL, err);
        lp.http_up = rc == 0;
    }
    if (rc == 0) {
        lp.lua_dir = lua_dir_locate();
        lp.storage = storage_inmem_new();
        cfg.dev_mode = true;
        cfg.lua_dir = lp.lua_dir;
        cfg.policy_dir = lp.dir;
        cfg.physical = lp.storage;
        lp.core_up = true;
        rc = core_init(&cfg, &root, &key, err);
    }
    if (rc == 0)
        rc = find_name(name, err);
    secure_free_str(root);
    secure_free_str(key);
    return rc;
}

void cli_policy_lua_shutdown(void)
{
    if (lp.core_up)
        core_shutdown();
    if (lp.http_up)
        lua_http_global_shutdown();
    storage_free(lp.storage);
    if (lp.copy != NULL)
        unlink(lp.copy);
    if (lp.dir[0] != '\0')
        rmdir(lp.dir);
    free(lp.copy);
    free(lp.lua_dir);
    memset(&lp, 0, sizeof(lp));
}
