/*
 * sys_password_policy.c - sys/policies/password (Vault's wire format).
 *
 *   sys/policies/password                  LIST  {"keys": [...]}
 *   sys/policies/password/<name>           PUT/POST policy (HCL, or its
 *                                          base64) -> 204; GET {"policy"};
 *                                          DELETE -> 204
 *   sys/policies/password/<name>/generate  GET {"password"}
 *
 * A policy is refused at write time, with Vault's words, when it does not
 * parse, its length is outside 4..100, or ten test generations do not
 * all succeed within a second (password_policy.c). Names are checked
 * here (pwpolicy_name_ok) before any storage key is made of them.
 */
#include "sys_password_policy.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "barrier.h"
#include "crypto.h"
#include "lifecycle.h"
#include "password_policy.h"
#include "util.h"

#define PW_PATH "policies/password"

static struct storage *logical(void)
{
    return barrier_storage(lifecycle_barrier());
}

/*
 * Go's base64.StdEncoding.DecodeString accepts only padded text of the
 * standard alphabet; Vault uses the decoded text when it decodes. Returns
 * a new string (possibly holding a NUL: *len says), or NULL.
 */
static char *b64_std_decode(const char *s, size_t *len)
{
    size_t n = strlen(s), pad = 0;
    unsigned char *out;
    int got;

    if (n == 0 || n % 4 != 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (c == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '='))
            pad++;
        else if (!alpha || pad > 0)
            return NULL;
    }
    out = xmalloc(n / 4 * 3 + 1);
    got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (got < 0 || (size_t)got < pad) {
        free(out);
        return NULL;
    }
    *len = (size_t)got - pad;
    out[*len] = '\0';
    return (char *)out;
}

static void list_policies(struct response *resp)
{
    struct strvec names;
    int rc;

    strvec_init(&names);
    rc = pwpolicy_store_list(logical(), &names);
    if (rc != 0)
        response_multierror(resp, 500, "failed to list password policies: "
                                       "%s", coffer_strerror(rc));
    else
        response_keys(resp, &names);
    strvec_release(&names);
}

/* Parses and test-generates text; on success stores it under name. */
static void write_policy(struct request *req, const char *name,
                         struct response *resp)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(req->data, "policy");
    const char *raw = cJSON_IsString(f) ? f->valuestring : "";
    char *decoded = NULL;
    size_t dlen = 0;
    struct pwpolicy *p = NULL;
    struct errbuf err;
    int rc;

    errbuf_clear(&err);
    if (raw[0] == '\0') {
        response_error(resp, 400, "missing policy");
        return;
    }
    decoded = b64_std_decode(raw, &dlen);
    if (decoded != NULL && strlen(decoded) != dlen) {
        response_error(resp, 400, "invalid password policy: policy holds a "
                                  "NUL character");
        goto out;
    }
    if (decoded != NULL)
        raw = decoded;
    p = pwpolicy_parse(raw, &err);
    if (p == NULL) {
        response_error(resp, 400, "invalid password policy: %s", err.msg);
        goto out;
    }
    if (pwpolicy_length(p) < PWPOLICY_MIN_LENGTH ||
        pwpolicy_length(p) > PWPOLICY_MAX_LENGTH) {
        response_error(resp, 400, "passwords must be between %d and %d "
                                  "characters", PWPOLICY_MIN_LENGTH,
                       PWPOLICY_MAX_LENGTH);
        goto out;
    }
    if (pwpolicy_try(p, &err) != 0) {
        response_error(resp, 400, "%s", err.msg);
        goto out;
    }
    rc = pwpolicy_store_write(logical(), name, raw);
    if (rc != 0)
        response_error(resp, 500, "failed to save policy to storage "
                                  "backend: %s", coffer_strerror(rc));
out:
    pwpolicy_free(p);
    free(decoded);
}

static void read_policy(const char *name, struct response *resp)
{
    char *text = NULL;
    int rc = pwpolicy_store_read(logical(), name, &text);

    if (rc == COFFER_ENOTFOUND) {
        response_error(resp, 404, "policy does not exist");
    } else if (rc != 0) {
        response_error(resp, 500, "failed to retrieve password policy");
    } else {
        resp->data = cJSON_CreateObject();
        cJSON_AddStringToObject(resp->data, "policy", text);
    }
    free(text);
}

static void delete_policy(const char *name, struct response *resp)
{
    int rc = pwpolicy_store_delete(logical(), name);

    if (rc != 0)
        response_error(resp, 500, "failed to delete password policy: %s",
                       coffer_strerror(rc));
}

static void generate(const char *name, struct response *resp)
{
    char *pw = NULL;
    struct errbuf err;
    int rc;

    errbuf_clear(&err);
    rc = pwpolicy_generate_named(logical(), name, &pw, &err);
    if (rc == COFFER_ENOTFOUND) {
        response_error(resp, 404, "policy does not exist");
    } else if (rc == COFFER_EINVAL) {
        response_error(resp, 500, "stored password policy configuration "
                                  "failed to parse");
    } else if (rc != 0) {
        response_error(resp, 500, "failed to generate password from "
                                  "policy: %s", err.msg);
    } else {
        resp->data = cJSON_CreateObject();
        cJSON_AddStringToObject(resp->data, "password", pw);
        crypto_wipe(pw, strlen(pw));
    }
    free(pw);
}

/* <name> or <name>/generate, with op. */
static void policy_path(struct request *req, const char *rest,
                        struct response *resp)
{
    const char *slash = strchr(rest, '/');
    char *name = slash != NULL ? xstrndup(rest, (size_t)(slash - rest))
                               : xstrdup(rest);
    bool gen = slash != NULL && strcmp(slash, "/generate") == 0;

    if ((slash != NULL && !gen) || !pwpolicy_name_ok(name)) {
        response_error(resp, 400, "invalid policy name: a name is 1 to %d "
                                  "letters, digits, '_', '-' or '.'",
                       PWPOLICY_MAX_NAME);
    } else if (gen) {
        if (req->op == OP_READ)
            generate(name, resp);
        else
            response_multierror(resp, 405, "unsupported operation");
    } else if (req->op == OP_READ) {
        read_policy(name, resp);
    } else if (req->op == OP_CREATE || req->op == OP_UPDATE) {
        write_policy(req, name, resp);
    } else if (req->op == OP_DELETE) {
        delete_policy(name, resp);
    } else {
        response_multierror(resp, 405, "unsupported operation");
    }
    free(name);
}

bool sys_password_policy_handles(const char *rel)
{
    return strcmp(rel, PW_PATH) == 0 || str_has_prefix(rel, PW_PATH "/");
}

void sys_password_policy_handle(struct request *req, const char *rel,
                                struct response *resp)
{
    const char *rest = rel + strlen(PW_PATH);

    if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
        if (req->op == OP_LIST)
            list_policies(resp);
        else
            response_multierror(resp, 405, "unsupported operation");
        return;
    }
    policy_path(req, rest + 1, resp);
}
