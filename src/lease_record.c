/*
 * lease_record.c - the lease record's format (see lease_record.h).
 */
#include "lease_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "json.h"
#include "mount.h"
#include "util.h"

char *lrec_key(const char *id)
{
    size_t n = strlen(LEASE_ID_PREFIX) + strlen(id) + 1;
    char *k = xmalloc(n);

    snprintf(k, n, "%s%s", LEASE_ID_PREFIX, id);
    return k;
}

char *lrec_token_key(const char *token_hmac, const char *id)
{
    unsigned char digest[32];
    char hex[65];
    size_t n = strlen(LEASE_TOKEN_PREFIX) + strlen(token_hmac) + 66;
    char *k = xmalloc(n);

    crypto_sha256(id, strlen(id), digest);
    crypto_hex(digest, sizeof(digest), hex);
    snprintf(k, n, "%s%s/%s", LEASE_TOKEN_PREFIX, token_hmac, hex);
    return k;
}

void lrec_set_num(cJSON *rec, const char *key, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(rec, key);
    cJSON_AddNumberToObject(rec, key, v);
}

void lrec_set_str(cJSON *rec, const char *key, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(rec, key);
    cJSON_AddStringToObject(rec, key, v);
}

void lrec_set_bool(cJSON *rec, const char *key, bool v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(rec, key);
    cJSON_AddBoolToObject(rec, key, v);
}

bool lrec_is_pending(const cJSON *rec)
{
    return strcmp(json_get_str(rec, "state", ""), "pending") == 0;
}

void lrec_format_ms(int64_t ms, char *out, size_t n)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

    time_format_rfc3339(ts, out, n);
}

cJSON *lrec_build(const struct lease_spec *s)
{
    cJSON *rec = cJSON_CreateObject();
    char when[64];

    time_format_rfc3339(s->issued, when, sizeof(when));
    cJSON_AddStringToObject(rec, "id", s->id);
    cJSON_AddStringToObject(rec, "path", s->path);
    cJSON_AddStringToObject(rec, "mount_path", s->mount->path);
    cJSON_AddStringToObject(rec, "mount_uuid", s->mount->uuid);
    cJSON_AddStringToObject(rec, "secret_type", s->secret_type);
    cJSON_AddItemToObject(rec, "internal", s->internal);
    cJSON_AddStringToObject(rec, "token", s->token_hmac);
    if (s->token_accessor != NULL && s->token_accessor[0] != '\0')
        cJSON_AddStringToObject(rec, "token_accessor", s->token_accessor);
    cJSON_AddStringToObject(rec, "issue_time", when);
    cJSON_AddNumberToObject(rec, "issue_ms",
                            (double)s->issued.tv_sec * 1000 +
                                s->issued.tv_nsec / 1000000);
    cJSON_AddNumberToObject(rec, "expire_ms", (double)s->expire_ms);
    if (s->active) {
        cJSON_AddNumberToObject(rec, "ttl", (double)s->ttl);
        cJSON_AddNumberToObject(rec, "max_ttl", (double)s->max_ttl);
        cJSON_AddBoolToObject(rec, "renewable", s->renewable);
    }
    cJSON_AddStringToObject(rec, "state", s->active ? "active" : "pending");
    return rec;
}

cJSON *lrec_lookup_json(const cJSON *rec, int64_t now_ms)
{
    cJSON *d = cJSON_CreateObject();
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(rec, "last_renewal");
    int64_t expire = json_get_int(rec, "expire_ms", 0), left;
    char when[64];

    left = (expire - now_ms) / 1000;
    cJSON_AddStringToObject(d, "id", json_get_str(rec, "id", ""));
    cJSON_AddStringToObject(d, "issue_time", json_get_str(rec, "issue_time", ""));
    lrec_format_ms(expire, when, sizeof(when));
    cJSON_AddStringToObject(d, "expire_time", when);
    if (cJSON_IsString(last))
        cJSON_AddStringToObject(d, "last_renewal", last->valuestring);
    else
        cJSON_AddNullToObject(d, "last_renewal");
    cJSON_AddBoolToObject(
        d, "renewable",
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "renewable")));
    cJSON_AddNumberToObject(d, "ttl", (double)(left > 0 ? left : 0));
    /* Coffer's own, for the web UI: an issuance still under way, and a
     * lease the expiration manager keeps failing to revoke. */
    cJSON_AddStringToObject(d, "state",
                            lrec_is_pending(rec) ? "pending" : "active");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "irrevocable"))) {
        cJSON_AddBoolToObject(d, "irrevocable", true);
        cJSON_AddStringToObject(d, "last_error",
                                json_get_str(rec, "last_error", ""));
    }
    return d;
}
