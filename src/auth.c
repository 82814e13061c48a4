/*
 * auth.c - the login path: rate limit, Lua login handler, token.
 *
 * Owns the per-address login rate limit and the glue between an auth
 * method's identity (luavm.c) and the token store (token.c). Owns no
 * other state; the methods themselves live in lua/auth/ and the plugin
 * directory.
 */
#include "auth.h"

#include <string.h>

#include "log.h"
#include "luavm.h"
#include "mount.h"
#include "ratelimit.h"
#include "router.h"
#include "token.h"
#include "util.h"

static struct ratelimit *limiter;

void auth_configure(double rate, double burst)
{
    ratelimit_free(limiter);
    limiter = ratelimit_new(rate > 0 ? rate : 1.0, burst > 0 ? burst : 10.0,
                            4096);
}

void auth_shutdown(void)
{
    ratelimit_free(limiter);
    limiter = NULL;
}

bool auth_is_login(struct request *req)
{
    const struct mount *m;

    if (!str_has_prefix(req->path, "auth/") ||
        str_has_prefix(req->path, "auth/token/"))
        return false;
    m = router_match(req->path);
    if (m == NULL)
        return false;
    if (m->klass == MOUNT_AUTH && m->impl == MOUNT_IMPL_LUA &&
        strlen(req->path) >= strlen(m->path) &&
        luavm_auth_is_login(m->type, req->path + strlen(m->path))) {
        req->mount = m;
        return true;
    }
    router_mount_put(m);
    return false;
}

void auth_login(struct request *req, struct response *resp)
{
    const struct mount *m = req->mount;
    const char *addr = req->remote_addr;
    cJSON *identity;

    /*
     * Pay before the attempt runs, so that concurrent attempts cannot all
     * pass a check made before any of them failed; a success refunds.
     */
    if (!ratelimit_take(limiter, addr, time_mono())) {
        log_warn("auth: login rate limit reached for %s on %s", addr,
                 m->path);
        response_error(resp, 429, "request path \"%s\": rate limit quota "
                                  "exceeded", req->path);
        return;
    }
    req->rel_path = req->path + strlen(m->path);
    luavm_handle_login(m, req, resp);
    if (resp->errors != NULL)
        return; /* a failure keeps its token spent */
    ratelimit_refund(limiter, addr, time_mono());
    identity = resp->auth;
    resp->auth = NULL;
    if (identity == NULL) {
        /* A handler that answered without logging in (help, a 204). */
        return;
    }
    token_create_identity(m, req->path, identity, resp);
    cJSON_Delete(identity);
}
