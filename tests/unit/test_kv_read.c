/*
 * test_kv_read.c - native kv reads: what they answer and what they leave
 * to the engine.
 *
 * The integration test (test_kv_native.py) compares native and Lua
 * answers for everything the API can store; the engine only ever stores
 * its encoder's text. Here the stored text is written directly, hostile
 * or merely unusual (whitespace, duplicate or unsorted keys, escaped
 * keys, invalid UTF-8, escapes json_write.c never writes, big or
 * negative-zero numbers, malformed version entries): every such text
 * must go to the engine (kv_read_handle returns false, resp untouched),
 * and canonical text must be answered with the engine's exact bytes.
 */
#include "../../src/kv_read.c"

#include "harness.h"

#include "json_write.h"

#define PREFIX "logical/kvr/"

static struct storage *st;

static void put(const char *key, const char *text)
{
    char full[512];

    snprintf(full, sizeof(full), PREFIX "%s", key);
    CHECK_EQ_INT(storage_put(st, full, text, strlen(text)), 0);
}

static void put_version(const char *path, int v, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[32];
    char key[128];

    crypto_sha256(path, strlen(path), d);
    memcpy(key, "versions/", 9);
    for (int i = 0; i < 32; i++) {
        key[9 + 2 * i] = hex[d[i] >> 4];
        key[10 + 2 * i] = hex[d[i] & 15];
    }
    snprintf(key + 73, sizeof(key) - 73, "/%d", v);
    put(key, text);
}

static struct mount mount_of(const char *version)
{
    struct mount m = {.path = "kvr/", .type = "kv", .impl = MOUNT_IMPL_LUA,
                      .klass = MOUNT_SECRET, .storage_prefix = PREFIX};

    if (version != NULL) {
        m.options = cJSON_CreateObject();
        cJSON_AddStringToObject(m.options, "version", version);
    }
    return m;
}

/*
 * Runs a read of rel (query q as JSON text or NULL): returns -1 if left
 * to the engine, else the status (0 = nothing), with the data member's
 * text in body (caller frees).
 */
static int read_kv(const char *version, const char *rel, const char *q,
                   char **body)
{
    struct mount m = mount_of(version);
    struct request req = {.op = OP_READ, .rel_path = rel};
    struct response resp;
    struct buf b;
    struct json_writer w;
    int status;

    *body = NULL;
    response_init(&resp);
    req.data = q != NULL ? cJSON_Parse(q) : NULL;
    if (!kv_read_handle(&m, &req, &resp)) {
        CHECK(resp.data == NULL && resp.status == 0);
        status = -1;
    } else {
        status = resp.data == NULL ? 0 : resp.status ? resp.status : 200;
        buf_init(&b, 0);
        json_write_init(&w, &b);
        json_write_value(&w, resp.data);
        *body = buf_detach(&b, NULL);
    }
    response_release(&resp);
    cJSON_Delete(req.data);
    cJSON_Delete(m.options);
    return status;
}

static int read_status(const char *version, const char *rel, const char *q)
{
    char *body;
    int s = read_kv(version, rel, q, &body);

    free(body);
    return s;
}

#define META(cm, vm)                                                          \
    "{\"cas_required\":false,\"created_time\":\"2026-01-01T00:00:00Z\","     \
    "\"current_version\":1," cm "\"delete_version_after\":0,\"key\":\"k\","  \
    "\"max_versions\":0,\"oldest_version\":0,\"updated_time\":"              \
    "\"2026-01-01T00:00:00Z\",\"versions\":{\"1\":" vm "}}"
#define VM_OK                                                                 \
    "{\"created\":1767225600.12346,\"created_time\":\"2026-01-01T00:00:00Z\"," \
    "\"deletion_time\":\"\",\"destroyed\":false}"

static void setup(void)
{
    st = storage_inmem_new();
    kv_read_configure(st);
    kv_read_set_enabled(true);
}

TEST(v2_canonical_answered_exactly)
{
    char *body;

    setup();
    put("metadata/k", META("\"custom_metadata\":{\"a\":\"1\",\"b\":\"x\"},",
                           VM_OK));
    put_version("k", 1, "{\"data\":{\"a\":[1,\"\\u0001\\n\",null,true],"
                        "\"b\":{},\"c\":[],\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"}}");
    CHECK_EQ_INT(read_kv("2", "data/k", NULL, &body), 200);
    CHECK_STREQ(body, "{\"data\":{\"a\":[1,\"\\u0001\\n\",null,true],"
                      "\"b\":{},\"c\":[],\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"},"
                      "\"metadata\":{\"created_time\":\"2026-01-01T00:00:00Z\","
                      "\"custom_metadata\":{\"a\":\"1\",\"b\":\"x\"},"
                      "\"deletion_time\":\"\",\"destroyed\":false,"
                      "\"version\":1}}");
    free(body);
    CHECK_EQ_INT(read_status("2", "data/k", "{\"version\":\"1\"}"), 200);
    CHECK_EQ_INT(read_status("2", "data/k", "{\"version\":\"0\"}"), 200);
    CHECK_EQ_INT(read_status("2", "data/k", "{\"version\":\"2\"}"), 0);
    CHECK_EQ_INT(read_status("2", "data/none", NULL), 0);
    CHECK_EQ_INT(served > 0, 1);
    storage_free(st);
}

TEST(v2_deleted_and_destroyed)
{
    char *body;

    setup();
    put("metadata/d", META("", "{\"created_time\":\"t\",\"deleted_at\":"
                               "1000.5,\"deletion_time\":\"x\","
                               "\"destroyed\":false}"));
    CHECK_EQ_INT(read_kv("2", "data/d", NULL, &body), 404);
    CHECK_STREQ(body, "{\"data\":null,\"metadata\":{\"created_time\":\"t\","
                      "\"custom_metadata\":null,\"deletion_time\":\"x\","
                      "\"destroyed\":false,\"version\":1}}");
    free(body);
    /* deletion in the future: still readable */
    put("metadata/f", META("", "{\"created_time\":\"t\",\"deleted_at\":"
                               "99999999999,\"deletion_time\":\"x\","
                               "\"destroyed\":false}"));
    put_version("f", 1, "{\"data\":{\"a\":1}}");
    CHECK_EQ_INT(read_status("2", "data/f", NULL), 200);
    put("metadata/x", META("", "{\"created_time\":\"t\",\"deletion_time\":"
                               "\"\",\"destroyed\":true}"));
    CHECK_EQ_INT(read_status("2", "data/x", NULL), 404);
    /* a version entry without its record: nothing */
    put("metadata/g", META("", VM_OK));
    CHECK_EQ_INT(read_status("2", "data/g", NULL), 0);
    storage_free(st);
}

/* Each stored metadata text is left to the engine. */
TEST(v2_unusual_metadata_falls_back)
{
    static const char *const metas[] = {
        " " META("", VM_OK),                                  /* whitespace */
        META("", VM_OK) " ",
        "{\"current_version\":1,\"current_version\":1,\"versions\":{\"1\":"
        VM_OK "}}",                                           /* duplicate */
        "{\"versions\":{\"1\":" VM_OK "},\"current_version\":1}", /* order */
        "{\"current_\\u0076ersion\":1,\"versions\":{\"1\":" VM_OK "}}",
        "{\"current_version\":1.0,\"versions\":{\"1\":" VM_OK "}}",
        "{\"current_version\":\"1\",\"versions\":{\"1\":" VM_OK "}}",
        "{\"current_version\":1,\"versions\":[]}",
        "{\"current_version\":1,\"versions\":{\"1\":[]}}",
        "{\"current_version\":1,\"versions\":{\"1\":{\"created_time\":\"t\","
        "\"deletion_time\":\"\",\"destroyed\":null}}}",
        "{\"current_version\":1,\"versions\":{\"1\":{\"created_time\":\"t\","
        "\"deletion_time\":\"\"}}}",
        "{\"current_version\":1,\"versions\":{\"1\":{\"created_time\":1,"
        "\"deletion_time\":\"\",\"destroyed\":false}}}",
        "{\"current_version\":1,\"versions\":{\"1\":{\"created_time\":\"a\\\"\","
        "\"deletion_time\":\"\",\"destroyed\":false}}}",
        "{\"current_version\":1,\"versions\":{\"1\":{\"created_time\":\"t\","
        "\"deleted_at\":\"soon\",\"deletion_time\":\"\",\"destroyed\":false}}}",
        "{\"current_version\":1,\"versions\":{\"1\":{\"created_time\":\"t\","
        "\"deleted_at\":1.00000000000000000001,\"deletion_time\":\"\","
        "\"destroyed\":false}}}",
        META("\"custom_metadata\":null,", VM_OK),
        META("\"custom_metadata\":[],", VM_OK),
        META("\"custom_metadata\":{\"b\":\"1\",\"a\":\"2\"},", VM_OK),
        "{\"current_version\":1,\"k\":\"\xff\",\"versions\":{\"1\":" VM_OK
        "}}",                                                 /* bad UTF-8 */
        "{\"current_version\":1,\"k\":\"\xed\xa0\x80\",\"versions\":{\"1\":"
        VM_OK "}}",                                           /* surrogate */
        "{\"current_version\":1,\"k\":\"\xc0\xaf\",\"versions\":{\"1\":" VM_OK
        "}}",                                                 /* overlong */
        "{\"current_version\":1,\"k\":\"\\/\",\"versions\":{\"1\":" VM_OK "}}",
        "{\"current_version\":1,\"k\":\"\\u00e9\",\"versions\":{\"1\":" VM_OK
        "}}",
        "{\"current_version\":1,\"k\":\"\\u000A\",\"versions\":{\"1\":" VM_OK
        "}}",
        "{\"current_version\":1,\"k\":\"\\u000a\",\"versions\":{\"1\":" VM_OK
        "}}",                                                 /* \n form */
        "{\"current_version\":1,\"k\":\"\\u0000\",\"versions\":{\"1\":" VM_OK
        "}}",
        "{\"current_version\":1,\"k\":\"\t\",\"versions\":{\"1\":" VM_OK "}}",
        "{\"current_version\":1,\"versions\":{\"1\":" VM_OK "}",  /* cut */
        "{\"current_version\":1,\"versions\":{\"1\":" VM_OK "}}}",
        "{\"current_version\":01,\"versions\":{\"1\":" VM_OK "}}",
        "{\"current_version\":1,\"versions\":{\"1\":" VM_OK ",}}",
        "[]", "", "nul", "{",
    };

    setup();
    put_version("m", 1, "{\"data\":{\"a\":1}}");
    for (size_t i = 0; i < ARRAY_LEN(metas); i++) {
        put("metadata/m", metas[i]);
        if (read_status("2", "data/m", NULL) != -1)
            harness_fail(__FILE__, __LINE__, "metadata %zu answered: %s", i,
                         metas[i]);
    }
    storage_free(st);
}

TEST(v2_unusual_records_fall_back)
{
    static const char *const records[] = {
        "{\"data\":{\"b\":1,\"a\":2}}",     /* unsorted */
        "{\"data\":{\"n\":1000000000000000}}", /* 10^15 */
        "{\"data\":{\"n\":-0}}",
        "{\"data\":{\"n\":12345678901234567890}}",
        "{\"data\":{\"a\":1},\"x\":1}",
        "{\"dat\":{\"a\":1}}",
        "not json",
    };
    char *body;

    setup();
    put("metadata/r", META("", VM_OK));
    for (size_t i = 0; i < ARRAY_LEN(records); i++) {
        put_version("r", 1, records[i]);
        if (read_status("2", "data/r", NULL) != -1)
            harness_fail(__FILE__, __LINE__, "record %zu answered: %s", i,
                         records[i]);
    }
    /* a repeated key: json_parse (and so the engine) keeps the last */
    put_version("r", 1, "{\"data\":{\"a\":1,\"a\":2}}");
    CHECK_EQ_INT(read_kv("2", "data/r", NULL, &body), 200);
    CHECK(body != NULL && strncmp(body, "{\"data\":{\"a\":2},", 16) == 0);
    free(body);
    storage_free(st);
}

TEST(requests_left_to_the_engine)
{
    setup();
    put("metadata/q", META("", VM_OK));
    put_version("q", 1, "{\"data\":{\"a\":1}}");
    put("v1key", "{\"a\":1}");
    CHECK_EQ_INT(read_status("2", "data/q", NULL), 200);
    CHECK_EQ_INT(read_status("2", "data/q", "{\"version\":\"01\"}"), -1);
    CHECK_EQ_INT(read_status("2", "data/q", "{\"version\":\"-1\"}"), -1);
    CHECK_EQ_INT(read_status("2", "data/q", "{\"version\":1}"), -1);
    CHECK_EQ_INT(read_status("2", "data/q", "{\"version\":\"1\",\"x\":\"\"}"),
                 -1);
    CHECK_EQ_INT(read_status("2", "data/q", "{\"help\":\"1\"}"), -1);
    CHECK_EQ_INT(read_status("2", "data/q",
                             "{\"version\":\"1234567890\"}"), -1);
    CHECK_EQ_INT(read_status("2", "data/", NULL), -1);
    CHECK_EQ_INT(read_status("2", "data/a/../q", NULL), -1);
    CHECK_EQ_INT(read_status("2", "metadata/q", NULL), -1);
    CHECK_EQ_INT(read_status("2", "v1key", NULL), -1);
    CHECK_EQ_INT(read_status(NULL, "v1key", NULL), 200);
    CHECK_EQ_INT(read_status("1", "v1key", NULL), 200);
    CHECK_EQ_INT(read_status("1", "v1key", "{\"x\":\"1\"}"), -1);
    CHECK_EQ_INT(read_status("1", "/v1key", NULL), -1);
    CHECK_EQ_INT(read_status("1", "", NULL), -1);
    CHECK_EQ_INT(read_status("1", "..", NULL), -1);
    put("v1ttl", "{\"a\":1,\"ttl\":\"1h\"}");
    CHECK_EQ_INT(read_status("1", "v1ttl", NULL), -1);
    put("v1lease", "{\"lease\":\"1h\"}");
    CHECK_EQ_INT(read_status("1", "v1lease", NULL), -1);
    put("v1arr", "[1]");
    CHECK_EQ_INT(read_status("1", "v1arr", NULL), -1);
    kv_read_set_enabled(false);
    CHECK_EQ_INT(read_status("2", "data/q", NULL), -1);
    kv_read_set_enabled(true);
    storage_free(st);
}

TEST(other_mounts_and_operations)
{
    struct mount m = mount_of("2");
    struct request req = {.op = OP_LIST, .rel_path = "data/q"};
    struct response resp;

    setup();
    put("metadata/q", META("", VM_OK));
    put_version("q", 1, "{\"data\":{\"a\":1}}");
    response_init(&resp);
    CHECK(!kv_read_handle(&m, &req, &resp));
    req.op = OP_READ;
    req.wrap_ttl = 60;
    CHECK(!kv_read_handle(&m, &req, &resp));
    req.wrap_ttl = 0;
    m.type = "database";
    CHECK(!kv_read_handle(&m, &req, &resp));
    m.type = "kv";
    m.impl = MOUNT_IMPL_SYSTEM;
    CHECK(!kv_read_handle(&m, &req, &resp));
    m.impl = MOUNT_IMPL_LUA;
    cJSON_ReplaceItemInObject(m.options, "version", cJSON_CreateNumber(2));
    CHECK(!kv_read_handle(&m, &req, &resp));
    CHECK(resp.data == NULL);
    cJSON_Delete(m.options);
    storage_free(st);
}

/*
 * The kv.lua in the tree is the one kv_read.c answers for. If this fails,
 * kv.lua changed: check kv_read.c against it (test_kv_native.py) and then
 * update KV_LUA_SHA256 to the digest printed here.
 */
TEST(kv_lua_is_the_one_checked)
{
    struct buf text;
    struct file_error why;
    unsigned char d[32];
    char hex[65];

    buf_init(&text, 1 << 20);
    CHECK_EQ_INT(file_read("lua/engines/kv.lua", &text, &why), 0);
    crypto_sha256(text.ptr, text.len, d);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    if (strcmp(hex, KV_LUA_SHA256) != 0)
        fprintf(stderr, "lua/engines/kv.lua sha256 %s\n", hex);
    CHECK_STREQ(hex, KV_LUA_SHA256);
    buf_release(&text);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    /* No Lua here: the engine is taken as the known kv.lua (generation 0,
     * before any code is published). */
    atomic_store(&engine_verdict, 1);
    RUN(kv_lua_is_the_one_checked);
    RUN(v2_canonical_answered_exactly);
    RUN(v2_deleted_and_destroyed);
    RUN(v2_unusual_metadata_falls_back);
    RUN(v2_unusual_records_fall_back);
    RUN(requests_left_to_the_engine);
    RUN(other_mounts_and_operations);
    return HARNESS_DONE();
}
