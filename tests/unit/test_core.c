/*
 * test_core.c - core.c writes the reply envelope member by
 * member; it must be byte for byte what building the envelope as a cJSON
 * tree and printing it gave (the code before, kept here as the
 * reference). Every combination of the envelope's inputs below is
 * rendered both ways and compared, with one hand-written expectation so
 * a reference broken the same way cannot pass.
 */
#include "../../src/core.c"

#include "harness.h"

/* ---- the reference: the tree-built envelope (core.c before) ----------- */

static void ref_set_body(struct reply *out, cJSON *json)
{
    struct buf b;
    struct json_writer w;

    buf_init(&b, 0);
    buf_reserve(&b, BODY_RESERVE);
    json_write_init(&w, &b);
    json_write_value(&w, json);
    if (w.rc == 0)
        w.rc = buf_append(&b, "\n", 1);
    cJSON_Delete(json);
    out->body = buf_detach(&b, &out->len);
}

static void ref_render_envelope(struct request *req, struct response *resp,
                                struct reply *out)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *data = take(&resp->data);
    const cJSON *it;

    cJSON_AddStringToObject(o, "request_id", req->id);
    cJSON_AddStringToObject(o, "lease_id",
                            resp->lease_id ? resp->lease_id : "");
    cJSON_AddBoolToObject(o, "renewable", resp->renewable);
    cJSON_AddNumberToObject(o, "lease_duration",
                            (double)resp->lease_duration);
    if (resp->inject_top && cJSON_IsObject(data)) {
        cJSON_ArrayForEach(it, data) {
            cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
        }
    }
    cJSON_AddItemToObject(o, "data", data ? data : cJSON_CreateNull());
    cJSON_AddNullToObject(o, "wrap_info");
    cJSON_AddItemToObject(o, "warnings", resp->warnings
                                             ? take(&resp->warnings)
                                             : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "auth",
                          resp->auth ? take(&resp->auth) : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "mount_type",
                            req->mount ? req->mount->type : "");
    out->status = resp->status ? resp->status : 200;
    ref_set_body(out, o);
}

/* ---- inputs ----------------------------------------------------------- */

static const char *const datas[] = {
    NULL, "{}", "[]", "null", "\"text\"", "42",
    "{\"data\":{\"password\":\"s3cr3t\",\"url\":\"postgresql://db\"},"
    "\"metadata\":{\"version\":1,\"destroyed\":false,\"custom_metadata\":null}}",
    "{\"request_id\":\"dup\",\"z\":[1,2.5,1e300,12345678901234567890],"
    "\"\\u00e9\\n\\\"\":\"\\u0001\"}",
    "{\"keys\":[\"a\",\"b/\"]}", "[1,{\"a\":[]}]",
    "{\"big\":-0,\"x\":1.0,\"y\":1e3,\"s\":\"\\ud83d\\ude00\"}",
};
static const char *const warns[] = {NULL, "[]", "[\"careful\",\"\\\"x\\\"\"]"};
static const char *const auths[] = {
    NULL, "{\"client_token\":\"hvs.x\",\"policies\":[\"default\"],"
          "\"lease_duration\":3600,\"renewable\":true,\"metadata\":null}",
};
static const char *const lease_ids[] = {NULL, "", "database/creds/r/abc"};
static const int64_t durations[] = {0, 3600, -1, 2147483648LL,
                                    (int64_t)1 << 53, INT64_MAX};

static cJSON *parse(const char *text)
{
    return text != NULL ? json_parse(text, strlen(text), 64, false, NULL)
                        : NULL;
}

static void fill(struct response *r, size_t d, size_t wi, size_t a,
                 size_t l, size_t t, int flags)
{
    response_init(r);
    r->data = parse(datas[d]);
    r->warnings = parse(warns[wi]);
    r->auth = parse(auths[a]);
    r->lease_id = lease_ids[l] != NULL ? xstrdup(lease_ids[l]) : NULL;
    r->lease_duration = durations[t];
    r->renewable = flags & 1;
    r->inject_top = (flags & 2) != 0;
    r->status = (flags & 4) ? 201 : 0;
}

/* ---- tests ------------------------------------------------------------ */

TEST(every_combination)
{
    struct mount m;
    struct request req;
    size_t d, wi, a, l, t, cases = 0, diffs = 0;
    int flags;

    memset(&m, 0, sizeof(m));
    m.type = "kv";
    request_init(&req);
    memcpy(req.id, "1ae7e39a-83ef-4bc6-9146-45b085877e00", 37);
    for (d = 0; d < ARRAY_LEN(datas); d++)
    for (wi = 0; wi < ARRAY_LEN(warns); wi++)
    for (a = 0; a < ARRAY_LEN(auths); a++)
    for (l = 0; l < ARRAY_LEN(lease_ids); l++)
    for (t = 0; t < ARRAY_LEN(durations); t++)
    for (flags = 0; flags < 16; flags++) {
        struct response r1, r2;
        struct reply o1, o2;

        req.mount = (flags & 8) ? NULL : &m;
        fill(&r1, d, wi, a, l, t, flags);
        fill(&r2, d, wi, a, l, t, flags);
        memset(&o1, 0, sizeof(o1));
        memset(&o2, 0, sizeof(o2));
        ref_render_envelope(&req, &r1, &o1);
        render_envelope(&req, &r2, &o2);
        cases++;
        if (o1.status != o2.status || o1.len != o2.len ||
            memcmp(o1.body, o2.body, o1.len) != 0) {
            if (diffs++ == 0)
                fprintf(stderr, "tree:   %s\ndirect: %s\n", o1.body,
                        o2.body);
        }
        CHECK(r2.data == NULL && r2.warnings == NULL && r2.auth == NULL);
        response_release(&r1);
        response_release(&r2);
        reply_release(&o1);
        reply_release(&o2);
    }
    CHECK_EQ_INT(diffs, 0);
    CHECK(cases > 10000);
}

TEST(kv_read_bytes)
{
    struct mount m;
    struct request req;
    struct response r;
    struct reply o;

    memset(&m, 0, sizeof(m));
    m.type = "kv";
    request_init(&req);
    req.mount = &m;
    memcpy(req.id, "1ae7e39a-83ef-4bc6-9146-45b085877e00", 37);
    response_init(&r);
    r.data = parse("{\"data\":{\"password\":\"s3cr3t-pw\"},"
                   "\"metadata\":{\"version\":1}}");
    memset(&o, 0, sizeof(o));
    render_envelope(&req, &r, &o);
    CHECK_EQ_INT(o.status, 200);
    CHECK_STREQ(o.body,
                "{\"request_id\":\"1ae7e39a-83ef-4bc6-9146-45b085877e00\","
                "\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,"
                "\"data\":{\"data\":{\"password\":\"s3cr3t-pw\"},"
                "\"metadata\":{\"version\":1}},\"wrap_info\":null,"
                "\"warnings\":null,\"auth\":null,\"mount_type\":\"kv\"}\n");
    response_release(&r);
    reply_release(&o);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(every_combination);
    RUN(kv_read_bytes);
    return HARNESS_DONE();
}
