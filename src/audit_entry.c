/*
 * audit_entry.c - what an audit entry says (audit_entry.h).
 */
#include "audit_entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "mount.h"
#include "token.h"
#include "util.h"

#define HASH_PREFIX "hmac-sha256:"


void audit_hmac(const char *salt, const char *input, size_t len, char *out)
{
    unsigned char mac[32];

    crypto_hmac_sha256(salt, strlen(salt), input, len, mac);
    memcpy(out, HASH_PREFIX, strlen(HASH_PREFIX));
    crypto_hex(mac, sizeof(mac), out + strlen(HASH_PREFIX));
    out[AUDIT_HASH_LEN - 1] = '\0';
    crypto_wipe(mac, sizeof(mac));
}


/*
 * Entries are written straight into a buffer (json_write.h): building a
 * cJSON tree, copying the data into it to hash it, printing and freeing
 * it cost three times the writing itself (measured: 91,000 of the 182,000
 * instructions audit added to a KV read).
 */

/*
 * The client token and accessor as an entry shows them: HMAC'd (the
 * accessor unless hmac_accessor=false), raw with log_raw, "" when absent.
 * Computed once per entry: the auth and request blocks both carry them.
 */
struct entry_ids {
    char token[AUDIT_HASH_LEN];
    char accessor[AUDIT_HASH_LEN];
    const char *token_shown, *accessor_shown;
};

static const char *shown_value(const struct audit_format *d,
                               const char *value, bool hash, char *h)
{
    if (value == NULL || value[0] == '\0')
        return "";
    if (!hash || d->log_raw)
        return value;
    audit_hmac(d->salt, value, strlen(value), h);
    return h;
}

static void entry_ids_init(struct entry_ids *ids,
                           const struct audit_format *d,
                           const struct request *req)
{
    ids->token_shown = shown_value(d, req->client_token, true, ids->token);
    ids->accessor_shown =
        shown_value(d, req->token != NULL ? req->token->accessor : NULL,
                    d->hmac_accessor, ids->accessor);
}

static void put_nonempty(struct json_writer *w, const char *key,
                         const char *value)
{
    if (value != NULL && value[0] != '\0')
        json_write_kv_string(w, key, value);
}

/* The text of a number as the client sent it (json.c keeps big ones raw). */
static void number_text(const cJSON *node, char *text, size_t n)
{
    double v = node->valuedouble;

    if (v > -9e15 && v < 9e15 && v == (double)(long long)v) /* range first */
        snprintf(text, n, "%lld", (long long)v);
    else
        snprintf(text, n, "%.17g", v);
}

/*
 * node with every string value replaced by its HMAC, numbers too when
 * hash_numbers (request data: a number a client sent may be a secret);
 * keys, booleans and nulls as they are. The tree is only read.
 */
static void put_hashed_tree(struct json_writer *w, const cJSON *node,
                            const char *salt, bool hash_numbers)
{
    char h[AUDIT_HASH_LEN], text[64];
    const cJSON *it;

    if (cJSON_IsString(node)) {
        const char *s = node->valuestring != NULL ? node->valuestring : "";
        audit_hmac(salt, s, strlen(s), h);
        json_write_string(w, h);
    } else if (cJSON_IsRaw(node) && hash_numbers) {
        const char *s = node->valuestring != NULL ? node->valuestring : "";
        audit_hmac(salt, s, strlen(s), h);
        json_write_string(w, h);
    } else if (cJSON_IsNumber(node) && hash_numbers) {
        number_text(node, text, sizeof(text));
        audit_hmac(salt, text, strlen(text), h);
        json_write_string(w, h);
    } else if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
        json_write_open(w, cJSON_IsObject(node) ? '{' : '[');
        cJSON_ArrayForEach(it, node) {
            if (cJSON_IsObject(node))
                json_write_key(w, it->string != NULL ? it->string : "");
            put_hashed_tree(w, it, salt, hash_numbers);
        }
        json_write_close(w, cJSON_IsObject(node) ? '}' : ']');
    } else {
        json_write_value(w, node);
    }
}

static bool has_data(const cJSON *data)
{
    return data != NULL && !cJSON_IsNull(data) &&
           !(cJSON_IsObject(data) && data->child == NULL);
}

/* elide_list_responses: a LIST answer's keys become their count. */
static bool elided_member(const cJSON *it)
{
    return it->string != NULL &&
           (strcmp(it->string, "keys") == 0 ||
            strcmp(it->string, "key_info") == 0) &&
           (cJSON_IsArray(it) || cJSON_IsObject(it));
}

/* "data": data with its values hashed; nothing when there is no data. */
static void put_data(struct json_writer *w, const struct audit_format *d,
                     const cJSON *data, bool numbers, bool elide)
{
    const cJSON *it;

    if (!has_data(data))
        return;
    json_write_key(w, "data");
    if (!elide || !cJSON_IsObject(data)) {
        if (d->log_raw)
            json_write_value(w, data);
        else
            put_hashed_tree(w, data, d->salt, numbers);
        return;
    }
    json_write_open(w, '{');
    cJSON_ArrayForEach(it, data) {
        json_write_key(w, it->string != NULL ? it->string : "");
        if (elided_member(it))
            json_write_number(w, cJSON_GetArraySize(it));
        else if (d->log_raw)
            json_write_value(w, it);
        else
            put_hashed_tree(w, it, d->salt, numbers);
    }
    json_write_close(w, '}');
}

/*
 * An object copied member by member, the string members named in hashed[]
 * (the first always, the others when hmac_accessor) HMAC'd: a new token's
 * auth block, a wrapped reply's wrap_info.
 */
static void put_with_hashed_ids(struct json_writer *w,
                                const struct audit_format *d,
                                const cJSON *o, const char *const *hashed,
                                size_t nh)
{
    const cJSON *it;

    json_write_open(w, '{');
    cJSON_ArrayForEach(it, o) {
        const char *k = it->string != NULL ? it->string : "";
        bool hash = false;
        for (size_t i = 0; i < nh; i++) {
            if (strcmp(k, hashed[i]) == 0)
                hash = i == 0 || d->hmac_accessor;
        }
        json_write_key(w, k);
        if (cJSON_IsString(it) && hash && !d->log_raw)
            put_hashed_tree(w, it, d->salt, false);
        else
            json_write_value(w, it);
    }
    json_write_close(w, '}');
}

static void put_strvec(struct json_writer *w, const char *key,
                       const struct strvec *sv)
{
    json_write_key(w, key);
    json_write_open(w, '[');
    for (size_t i = 0; i < sv->n; i++)
        json_write_string(w, sv->v[i]);
    json_write_close(w, ']');
}

static void put_auth(struct json_writer *w, const struct request *req,
                     const struct entry_ids *ids)
{
    const struct token *t = req->token;
    char when[64];
    struct tm tm;

    json_write_key(w, "auth");
    json_write_open(w, '{');
    if (t == NULL) {
        json_write_kv_string(w, "token_type", "default");
        json_write_close(w, '}');
        return;
    }
    put_nonempty(w, "client_token", ids->token_shown);
    put_nonempty(w, "accessor", ids->accessor_shown);
    put_nonempty(w, "display_name", t->display_name);
    if (t->policies.n > 0) {
        put_strvec(w, "policies", &t->policies);
        put_strvec(w, "token_policies", &t->policies);
    }
    if (cJSON_IsObject(t->meta) && t->meta->child != NULL) {
        json_write_key(w, "metadata");
        json_write_value(w, t->meta);
    }
    put_nonempty(w, "entity_id", t->entity_id);
    json_write_kv_string(w, "token_type",
                         t->type != NULL ? t->type : "service");
    if (t->ttl > 0)
        json_write_kv_number(w, "token_ttl", (double)t->ttl);
    if (t->issue_time.tv_sec > 0 &&
        gmtime_r(&t->issue_time.tv_sec, &tm) != NULL &&
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        json_write_kv_string(w, "token_issue_time", when); /* seconds */
    json_write_close(w, '}');
}

static void put_mount(struct json_writer *w, const struct mount *m)
{
    if (m == NULL)
        return;
    json_write_kv_string(w, "mount_point", m->path);
    json_write_kv_string(w, "mount_type", m->type);
    json_write_kv_string(w, "mount_accessor", m->accessor);
}

static void put_request(struct json_writer *w, const struct audit_format *d,
                        const struct request *req, const struct mount *m,
                        const struct entry_ids *ids)
{
    json_write_key(w, "request");
    json_write_open(w, '{');
    json_write_kv_string(w, "id", req->id);
    json_write_kv_string(w, "operation", req_op_name(req->op));
    put_mount(w, m);
    put_nonempty(w, "client_token", ids->token_shown);
    put_nonempty(w, "client_token_accessor", ids->accessor_shown);
    json_write_key(w, "namespace");
    json_write_open(w, '{');
    json_write_kv_string(w, "id", "root");
    json_write_close(w, '}');
    json_write_kv_string(w, "path", req->path);
    if (req->wrap_ttl > 0)
        json_write_kv_number(w, "wrap_ttl", (double)req->wrap_ttl);
    put_data(w, d, req->data, true, false);
    put_nonempty(w, "remote_address", req->remote_addr);
    json_write_close(w, '}');
}

static void put_response(struct json_writer *w, const struct audit_format *d,
                         const struct request *req,
                         const struct response *resp, const struct mount *m)
{
    static const char *const auth_ids[] = {"client_token", "accessor"};
    static const char *const wrap_ids[] = {"token", "accessor",
                                           "wrapped_accessor"};
    const cJSON *src = resp->data != NULL ? resp->data : resp->raw;
    const cJSON *wrap = cJSON_GetObjectItemCaseSensitive(resp->raw,
                                                         "wrap_info");

    json_write_key(w, "response");
    json_write_open(w, '{');
    put_mount(w, m);
    if (cJSON_IsObject(wrap)) { /* a wrapped reply: the envelope only */
        json_write_key(w, "wrap_info");
        put_with_hashed_ids(w, d, wrap, wrap_ids, ARRAY_LEN(wrap_ids));
        src = NULL;
    }
    if (resp->auth != NULL) {
        json_write_key(w, "auth");
        put_with_hashed_ids(w, d, resp->auth, auth_ids, ARRAY_LEN(auth_ids));
    }
    if (resp->lease_id != NULL && resp->lease_id[0] != '\0') {
        json_write_key(w, "secret");
        json_write_open(w, '{');
        json_write_kv_string(w, "lease_id", resp->lease_id);
        json_write_close(w, '}');
    }
    put_data(w, d, src, false, d->elide_list && req->op == OP_LIST);
    if (resp->warnings != NULL && cJSON_GetArraySize(resp->warnings) > 0) {
        json_write_key(w, "warnings");
        json_write_value(w, resp->warnings);
    }
    json_write_close(w, '}');
}

static void put_time(struct json_writer *w)
{
    char when[64];

    time_format_rfc3339(time_now(), when, sizeof(when));
    json_write_kv_string(w, "time", when);
}

/*
 * Vault's request entry carries the bare error ("permission denied"), its
 * response entry the multierror text the client got.
 */
static void put_error(struct json_writer *w, const char *msg,
                      bool is_response)
{
    const char *head = "1 error occurred:\n\t* ";
    size_t hn = strlen(head), n = strlen(msg);

    if (!is_response && n > hn + 2 && strncmp(msg, head, hn) == 0 &&
        strcmp(msg + n - 2, "\n\n") == 0 && strchr(msg + hn, '\t') == NULL) {
        char *bare = xstrndup(msg + hn, n - hn - 2);
        json_write_kv_string(w, "error", bare);
        free(bare);
        return;
    }
    json_write_kv_string(w, "error", msg);
}

void audit_entry_pipeline(struct json_writer *w, const struct audit_format *d,
                          const struct request *req,
                          const struct response *resp, const struct mount *m,
                          bool is_response)
{
    const cJSON *err = cJSON_GetArrayItem(resp->errors, 0);
    struct entry_ids ids;

    entry_ids_init(&ids, d, req);
    json_write_open(w, '{');
    put_time(w);
    json_write_kv_string(w, "type", is_response ? "response" : "request");
    put_auth(w, req, &ids);
    put_request(w, d, req, m, &ids);
    if (is_response)
        put_response(w, d, req, resp, m);
    if (cJSON_IsString(err) && err->valuestring[0] != '\0')
        put_error(w, err->valuestring, is_response);
    json_write_close(w, '}');
    crypto_wipe(&ids, sizeof(ids));
}

void audit_entry_revocation(struct json_writer *w,
                            const struct audit_format *d,
                            const char *lease_id, const char *reason,
                            const cJSON *internal)
{
    json_write_open(w, '{');
    put_time(w);
    json_write_kv_string(w, "type", "revocation");
    json_write_key(w, "revocation");
    json_write_open(w, '{');
    json_write_kv_string(w, "lease_id", lease_id);
    json_write_kv_string(w, "reason", reason != NULL ? reason : "");
    put_data(w, d, internal, false, false);
    json_write_close(w, '}');
    json_write_close(w, '}');
}
