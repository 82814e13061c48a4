/*
 * cubbyhole.c - per-token private storage (cubbyhole.h).
 *
 * The token's stored id (an HMAC of the client token, never the token)
 * is the key prefix: nothing in a request can name another token's
 * prefix, because the prefix comes from the authenticated token and the
 * request path only ever follows it.
 */
#include "cubbyhole.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "common.h"
#include "json.h"
#include "storage.h"
#include "util.h"

#define CUBBY_ROOT "cubbyhole/"
#define CUBBY_MAX_VALUE ((size_t)4 * 1024 * 1024)

bool cubbyhole_handles(const char *path)
{
    return str_has_prefix(path, CUBBY_ROOT) ||
           strcmp(path, "cubbyhole") == 0;
}

/* Set once at start-up, before any request (cubbyhole_configure). */
static struct storage *cubby_store;
static bool (*cubby_token_alive)(const char *hmac);

void cubbyhole_configure(struct storage *s, bool (*alive)(const char *hmac))
{
    cubby_store = s;
    cubby_token_alive = alive;
}

static struct storage *cubby_storage(void)
{
    return cubby_store;
}

/* "cubbyhole/<hmac>/<path>" as a new string. */
static char *cubby_key(const char *hmac, const char *path)
{
    size_t n = strlen(CUBBY_ROOT) + strlen(hmac) + 1 + strlen(path) + 1;
    char *k = xmalloc(n);

    snprintf(k, n, "%s%s/%s", CUBBY_ROOT, hmac, path);
    return k;
}

int cubbyhole_put(const char *hmac, const char *path, const cJSON *obj)
{
    char *key = cubby_key(hmac, path);
    char *text = cJSON_PrintUnformatted(obj);
    int rc = text != NULL ? storage_put(cubby_storage(), key, text,
                                        strlen(text))
                          : COFFER_EINTERNAL;

    if (text != NULL)
        secure_free(text, strlen(text));
    free(key);
    return rc;
}

cJSON *cubbyhole_get(const char *hmac, const char *path)
{
    char *key = cubby_key(hmac, path);
    struct buf b;
    cJSON *out = NULL;

    buf_init(&b, CUBBY_MAX_VALUE * 2);
    if (storage_get(cubby_storage(), key, &b) == 0 && b.ptr != NULL)
        out = json_parse(b.ptr, b.len, JSON_MAX_DEPTH, false, NULL);
    buf_release(&b);
    free(key);
    return out;
}

int cubbyhole_destroy(struct storage *s, const char *hmac)
{
    char prefix[160];

    snprintf(prefix, sizeof(prefix), "%s%s/", CUBBY_ROOT, hmac);
    return storage_delete_prefix(s, prefix);
}

/* ------------------------------------------------------------ engine -- */

static void cubby_read(const char *hmac, const char *rel,
                       struct response *resp)
{
    cJSON *o = cubbyhole_get(hmac, rel);

    if (cJSON_IsObject(o))
        resp->data = o;
    else
        json_delete_wiped(o);
}

static void cubby_list(const char *hmac, const char *rel,
                       struct response *resp)
{
    char *prefix = cubby_key(hmac, rel);
    struct strvec keys;

    strvec_init(&keys);
    if (storage_list(cubby_storage(), prefix, &keys) != 0)
        response_error(resp, 500, "internal error");
    else
        response_keys(resp, &keys);
    strvec_release(&keys);
    free(prefix);
}

/*
 * A write racing the token's revocation could land after the cubbyhole
 * was destroyed: the token store never sees it again, so the write
 * cleans up after itself when the token is gone.
 */
static void cubby_write(const char *hmac, const char *rel,
                        const struct request *req, struct response *resp)
{
    char *text;
    size_t n;

    if (!cJSON_IsObject(req->data) || req->data->child == NULL) {
        response_error(resp, 500, "missing data fields");
        return;
    }
    text = cJSON_PrintUnformatted(req->data);
    n = strlen(text);
    secure_free(text, n);
    if (n > CUBBY_MAX_VALUE) {
        response_error(resp, 413, "cubbyhole value too large");
        return;
    }
    if (cubbyhole_put(hmac, rel, req->data) != 0) {
        response_error(resp, 500, "internal error");
        return;
    }
    if (cubby_token_alive != NULL && !cubby_token_alive(hmac))
        cubbyhole_destroy(cubby_storage(), hmac);
}

static void cubby_delete(const char *hmac, const char *rel,
                         struct response *resp)
{
    char *key = cubby_key(hmac, rel);
    int rc = storage_delete(cubby_storage(), key);

    if (rc != 0 && rc != COFFER_ENOTFOUND)
        response_error(resp, 500, "internal error");
    free(key);
}

void cubbyhole_handle(const char *hmac, struct request *req,
                      struct response *resp)
{
    const char *rel = str_has_prefix(req->path, CUBBY_ROOT)
                          ? req->path + strlen(CUBBY_ROOT)
                          : "";

    if (hmac == NULL) {
        response_multierror(resp, 403, "permission denied");
        return;
    }
    switch (req->op) {
    case OP_READ:
        if (rel[0] == '\0')
            response_multierror(resp, 405, "unsupported operation");
        else
            cubby_read(hmac, rel, resp);
        break;
    case OP_LIST: cubby_list(hmac, rel, resp); break;
    case OP_CREATE:
    case OP_UPDATE:
        if (rel[0] == '\0')
            response_error(resp, 400, "missing path");
        else
            cubby_write(hmac, rel, req, resp);
        break;
    case OP_DELETE: cubby_delete(hmac, rel, resp); break;
    default: response_multierror(resp, 405, "unsupported operation"); break;
    }
}
