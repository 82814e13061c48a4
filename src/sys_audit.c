/*
 * sys_audit.c - sys/audit, sys/audit/<path>, sys/audit-hash/<path>.
 *
 * Owns the wire format of the audit endpoints (VAULT_API 2.12): argument
 * parsing, the sudo check (also for audit-hash, which the ACL's root-path
 * list does not name) and Vault's texts. audit.c owns the devices.
 */
#include "sys_audit.h"

#include <string.h>

#include "audit.h"
#include "policy.h"
#include "util.h"

bool sys_audit_handles(const char *rel)
{
    return strcmp(rel, "audit") == 0 || strcmp(rel, "audit/") == 0 ||
           str_has_prefix(rel, "audit/") || str_has_prefix(rel, "audit-hash/");
}

/* `local` as a JSON bool or a form/CLI string. */
static int parse_local(const cJSON *v, bool *out)
{
    *out = false;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    if (cJSON_IsString(v))
        return bool_parse(v->valuestring, out);
    return COFFER_EINVAL;
}

static void handle_enable(struct request *req, const char *path,
                          struct response *resp)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(req->data, "type");
    const cJSON *desc =
        cJSON_GetObjectItemCaseSensitive(req->data, "description");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(req->data, "options");
    struct errbuf err;
    bool local;

    if (parse_local(cJSON_GetObjectItemCaseSensitive(req->data, "local"),
                    &local) != 0) {
        response_error(resp, 400, "error converting input for field "
                                  "\"local\": invalid syntax");
        return;
    }
    if (type != NULL && !cJSON_IsString(type)) {
        response_error(resp, 400, "type must be a string");
        return;
    }
    errbuf_clear(&err);
    if (audit_enable(path, cJSON_IsString(type) ? type->valuestring : NULL,
                     cJSON_IsString(desc) ? desc->valuestring : "", opts,
                     local, &err) != 0)
        response_error(resp, 400, "%s", err.msg);
}

static void handle_device(struct request *req, const char *path,
                          struct response *resp)
{
    struct errbuf err;

    if (path[0] == '\0' || strcmp(path, "/") == 0) {
        response_multierror(resp, 404, "unsupported path");
        return;
    }
    switch (req->op) {
    case OP_CREATE:
    case OP_UPDATE:
        handle_enable(req, path, resp);
        break;
    case OP_DELETE:
        errbuf_clear(&err);
        if (audit_disable(path, &err) != 0)
            response_error(resp, 400, "%s", err.msg);
        break;
    default:
        response_multierror(resp, 405, "unsupported operation");
    }
}

static void handle_hash(struct request *req, const char *path,
                        struct response *resp)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(req->data, "input");
    char h[AUDIT_HASH_LEN];

    if (req->op != OP_CREATE && req->op != OP_UPDATE) {
        response_multierror(resp, 405, "unsupported operation");
        return;
    }
    if (in != NULL && !cJSON_IsString(in)) {
        response_error(resp, 400, "error converting input for field "
                                  "\"input\": expected a string");
        return;
    }
    if (audit_hash(path, cJSON_IsString(in) ? in->valuestring : "", h) != 0) {
        size_t n = strlen(path);
        response_error(resp, 400, "unknown audit backend \"%s%s\"", path,
                       n > 0 && path[n - 1] == '/' ? "" : "/");
        return;
    }
    resp->data = cJSON_CreateObject();
    cJSON_AddStringToObject(resp->data, "hash", h);
}

void sys_audit_handle(struct request *req, const char *rel,
                      struct response *resp)
{
    if (!policy_has_sudo(req->token, req->path)) {
        response_multierror(resp, 403, "permission denied");
        return;
    }
    if (str_has_prefix(rel, "audit-hash/")) {
        handle_hash(req, rel + strlen("audit-hash/"), resp);
    } else if (strcmp(rel, "audit") == 0 || strcmp(rel, "audit/") == 0) {
        if (req->op != OP_READ && req->op != OP_LIST) {
            response_multierror(resp, 405, "unsupported operation");
            return;
        }
        resp->data = audit_list_json();
        resp->inject_top = true;
    } else {
        handle_device(req, rel + strlen("audit/"), resp);
    }
}
