/*
 * sys_leases.c - sys/leases/... and the older sys/renew, sys/revoke,
 * sys/revoke-prefix, sys/revoke-force aliases.
 *
 * Owns the wire format of the lease endpoints: argument parsing, the sudo
 * checks and Vault's texts and status codes. What the endpoints do is
 * lease.c's; it is kept apart so that lease.c depends on neither HTTP nor
 * the policy engine.
 *
 *   leases, leases/count              GET, sudo: irrevocable leases
 *   leases/lookup/<prefix>            LIST, sudo: lease ids
 *   leases/lookup                     PUT lease_id
 *   leases/renew[/<id>]               PUT lease_id, increment
 *   leases/revoke[/<id>]              PUT lease_id, sync
 *   leases/revoke-prefix/<prefix>     PUT, sudo, sync
 *   leases/revoke-force/<prefix>      PUT, sudo
 *   leases/tidy                       PUT: 202, runs on the next tick
 */
#include "sys_leases.h"

#include <string.h>

#include "fields.h"
#include "lease.h"
#include "policy.h"
#include "util.h"

bool sys_leases_handles(const char *rel)
{
    static const char *const roots[] = {"leases", "renew", "revoke",
                                        "revoke-prefix", "revoke-force"};

    for (size_t i = 0; i < ARRAY_LEN(roots); i++) {
        size_t n = strlen(roots[i]);
        if (strncmp(rel, roots[i], n) == 0 &&
            (rel[n] == '\0' || rel[n] == '/'))
            return true;
    }
    return false;
}

/* The lease id from the URL suffix or the lease_id (or url_lease_id) field. */
static const char *lease_id_arg(struct request *req, const char *suffix,
                                struct response *resp)
{
    const char *id = NULL;

    if (suffix != NULL && suffix[0] != '\0')
        return suffix;
    if (field_string(req->data, "lease_id", &id, resp) != 0)
        return NULL;
    if (id == NULL || id[0] == '\0') {
        response_error(resp, 400, "lease_id must be specified");
        return NULL;
    }
    return id;
}

/* The listing and bulk endpoints reveal or revoke many leases: sudo. */
static bool require_sudo(struct request *req, struct response *resp)
{
    if (policy_has_sudo(req->token, req->path))
        return true;
    response_multierror(resp, 403, "permission denied");
    return false;
}

static void api_lookup(struct request *req, struct response *resp)
{
    const char *id = lease_id_arg(req, NULL, resp);

    if (id == NULL)
        return;
    resp->data = lease_lookup(id);
    if (resp->data == NULL)
        response_error(resp, 400, "invalid lease");
}

static void api_list(const char *prefix, struct response *resp)
{
    struct strvec keys;

    strvec_init(&keys);
    if (lease_list(prefix, &keys) != 0)
        response_error(resp, 500, "listing leases failed");
    else
        response_keys(resp, &keys);
    strvec_release(&keys);
}

static void api_renew(struct request *req, const char *suffix,
                      struct response *resp)
{
    const char *id = lease_id_arg(req, suffix, resp);
    struct lease_renewal out;
    struct errbuf err;
    int64_t increment = 0;
    bool given;
    int rc;

    if (id == NULL ||
        field_duration(req->data, "increment", &increment, &given, resp) != 0)
        return;
    /* A token's own lease is renewed with the token (auth/token/renew). */
    if (str_has_prefix(id, "auth/")) {
        response_error(resp, 400, "tokens cannot be renewed through this "
                                  "endpoint");
        return;
    }
    rc = lease_renew(id, increment, &out, &err);
    if (rc == COFFER_EIO) {
        response_error(resp, 400, "failed to renew entry: %s", err.msg);
        return;
    }
    if (rc != 0) {
        response_error(resp, rc == COFFER_EINTERNAL ? 500 : 400, "%s",
                       err.msg);
        return;
    }
    if (out.capped_from > 0) {
        char a[32], b[32];
        duration_format_short(out.capped_from, a, sizeof(a));
        duration_format_short(out.max_ttl, b, sizeof(b));
        response_warn(resp, "TTL of \"%s\" exceeded the effective max_ttl of "
                            "\"%s\"; TTL value is capped accordingly", a, b);
    }
    resp->lease_id = xstrdup(id);
    resp->lease_duration = out.ttl;
    resp->renewable = true;
}

static void api_revoke(struct request *req, const char *suffix,
                       struct response *resp)
{
    const char *id = lease_id_arg(req, suffix, resp);
    bool sync = true, given;
    struct errbuf err;

    if (id == NULL ||
        field_bool(req->data, "sync", &sync, &given, resp) != 0)
        return;
    if (!sync) {
        lease_revoke_async(id);
        resp->status = 202;
        resp->no_body = true;
        return;
    }
    if (lease_revoke(id, &err) != 0)
        response_error(resp, 400, "failed to revoke entry: err: %s", err.msg);
}

static void api_revoke_prefix(struct request *req, const char *prefix,
                              bool force, struct response *resp)
{
    bool sync = true, given;
    struct errbuf err;

    if (!require_sudo(req, resp))
        return;
    /* An empty prefix would mean every lease: Vault has no such route. */
    if (prefix[0] == '\0' || strcmp(prefix, "/") == 0) {
        response_multierror(resp, 404, "unsupported path");
        return;
    }
    if (field_bool(req->data, "sync", &sync, &given, resp) != 0)
        return;
    if (lease_revoke_prefix(prefix, force, &err) != 0) {
        response_error(resp, 400, "failed to revoke prefix: %s", err.msg);
        return;
    }
    if (!sync) {
        resp->status = 202;
        resp->no_body = true;
    }
}

static void api_irrevocable(struct request *req, bool count_only,
                            struct response *resp)
{
    cJSON *list;

    if (!require_sudo(req, resp))
        return;
    list = lease_irrevocable();
    resp->data = cJSON_CreateObject();
    cJSON_AddNumberToObject(resp->data, "lease_count",
                            cJSON_GetArraySize(list));
    if (count_only)
        cJSON_Delete(list);
    else
        cJSON_AddItemToObject(resp->data, "leases", list);
}

static void api_tidy(struct response *resp)
{
    lease_request_tidy();
    resp->status = 202;
    response_warn(resp, "Tidy operation successfully started. Any "
                        "information from the operation will be printed "
                        "to Vault's server logs.");
}

/* Matches "name" or "name/<suffix>"; returns the suffix or NULL. */
static const char *route(const char *rel, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(rel, name, n) != 0)
        return NULL;
    if (rel[n] == '\0')
        return rel + n;
    return rel[n] == '/' ? rel + n + 1 : NULL;
}

void sys_leases_handle(struct request *req, const char *rel,
                       struct response *resp)
{
    const char *s;
    bool write = req->op == OP_UPDATE || req->op == OP_CREATE;

    /* The old aliases (sys/renew...) are the same routes without "leases/". */
    if (str_has_prefix(rel, "leases/"))
        rel += strlen("leases/");
    else if (strcmp(rel, "leases") == 0)
        rel = "";
    if (rel[0] == '\0' || strcmp(rel, "count") == 0)
        api_irrevocable(req, rel[0] != '\0', resp);
    else if ((s = route(rel, "lookup")) != NULL && req->op == OP_LIST) {
        if (require_sudo(req, resp))
            api_list(s, resp);
    } else if (strcmp(rel, "lookup") == 0 && write)
        api_lookup(req, resp);
    else if ((s = route(rel, "renew")) != NULL && write)
        api_renew(req, s, resp);
    else if ((s = route(rel, "revoke")) != NULL && write)
        api_revoke(req, s, resp);
    else if ((s = route(rel, "revoke-prefix")) != NULL && write)
        api_revoke_prefix(req, s, false, resp);
    else if ((s = route(rel, "revoke-force")) != NULL && write)
        api_revoke_prefix(req, s, true, resp);
    else if (strcmp(rel, "tidy") == 0 && write)
        api_tidy(resp);
    else
        response_multierror(resp, 405, "unsupported operation");
}
