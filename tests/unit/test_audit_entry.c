/*
 * test_audit_entry.c - what an audit entry says: the hashing walk.
 * Expected HMACs: audit_vectors.h.
 */
#include "../../src/audit_entry.c"

#include "harness.h"

#include "audit_vectors.h"

/*
 * node as an entry's data shows it (put_hashed_tree), parsed back; the
 * input tree is only read. Free the result with cJSON_Delete.
 */
static cJSON *hashed(const cJSON *node, bool numbers)
{
    struct buf b;
    struct json_writer w;
    cJSON *out;

    buf_init(&b, BUF_MAX_DEFAULT);
    json_write_init(&w, &b);
    put_hashed_tree(&w, node, SALT, numbers);
    out = w.rc == 0 ? cJSON_Parse(b.ptr) : NULL;
    buf_release(&b);
    return out;
}

TEST(hmac_known_values)
{
    char h[AUDIT_HASH_LEN];

    audit_hmac(SALT, "hunter2", 7, h);
    CHECK_STREQ(h, H_HUNTER2);
    audit_hmac(SALT, "", 0, h);
    CHECK_STREQ(h, H_EMPTY);
    CHECK_EQ_INT((int)strlen(h), AUDIT_HASH_LEN - 1);
}

TEST(walk_strings_at_any_depth_keys_kept)
{
    cJSON *in = cJSON_Parse("{\"password\":\"hunter2\",\"nested\":{\"a\":[\"hunter2\","
                           "{\"b\":\"\"}]},\"flag\":true,\"nothing\":null}");
    cJSON *o = hashed(in, false);
    const cJSON *arr;

    CHECK_STREQ(str_at(in, "password"), "hunter2"); /* only read */
    CHECK_STREQ(str_at(o, "password"), H_HUNTER2);
    arr = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "nested"), "a");
    CHECK(cJSON_IsArray(arr));
    CHECK_STREQ(cJSON_GetArrayItem(arr, 0)->valuestring, H_HUNTER2);
    CHECK_STREQ(str_at(cJSON_GetArrayItem(arr, 1), "b"), H_EMPTY);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "flag")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "nothing")));
    CHECK(cJSON_GetObjectItem(o, "password") != NULL); /* keys untouched */
    cJSON_Delete(o);
    cJSON_Delete(in);
}

TEST(walk_numbers_only_when_asked)
{
    cJSON *in = cJSON_Parse("{\"n\":42,\"f\":1.5}");
    cJSON *a = hashed(in, true), *b = hashed(in, false);

    CHECK_STREQ(str_at(a, "n"), H_42);
    CHECK_STREQ(str_at(a, "f"), H_1_5);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(b, "n")));
    CHECK_EQ_INT(cJSON_GetObjectItem(b, "n")->valueint, 42);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(in);
}

TEST(walk_raw_numbers_hashed_by_their_text)
{
    /* json.c keeps numbers a double cannot hold as raw literals */
    cJSON *in = cJSON_CreateObject(), *o;
    char *text;

    cJSON_AddItemToObject(in, "big", cJSON_CreateRaw("12345678901234567890"));
    o = hashed(in, true);
    CHECK_STREQ(str_at(o, "big"), H_BIG);
    text = cJSON_PrintUnformatted(o);
    CHECK(strstr(text, "12345678901234567890") == NULL);
    free(text);
    cJSON_Delete(o);
    cJSON_Delete(in);
}

TEST(walk_scalar_root_and_null)
{
    cJSON *s = cJSON_CreateString("hunter2"), *h = hashed(s, false);
    cJSON *n = hashed(NULL, true);

    CHECK(cJSON_IsNull(n)); /* no crash: a missing value is null */
    CHECK(cJSON_IsString(h) && strcmp(h->valuestring, H_HUNTER2) == 0);
    cJSON_Delete(s);
    cJSON_Delete(h);
    cJSON_Delete(n);
}

TEST(walk_deep_nesting)
{
    cJSON *root = cJSON_CreateObject(), *cur = root;

    for (int i = 0; i < 200; i++) {
        cJSON *next = cJSON_CreateArray();
        cJSON_AddItemToObject(cur, "x", next);
        cur = cJSON_CreateObject();
        cJSON_AddItemToArray(next, cur);
    }
    cJSON_AddStringToObject(cur, "leaf", "hunter2");
    {
        cJSON *h = hashed(root, false), *at = h;
        for (int i = 0; i < 200 && at != NULL; i++)
            at = cJSON_GetArrayItem(cJSON_GetObjectItem(at, "x"), 0);
        CHECK(at != NULL);
        if (at != NULL)
            CHECK_STREQ(str_at(at, "leaf"), H_HUNTER2);
        cJSON_Delete(h);
    }
    cJSON_Delete(root);
}

TEST(elide_list_counts)
{
    cJSON *in = cJSON_Parse("{\"keys\":[\"a\",\"b\",\"c\"],\"key_info\":"
                            "{\"a\":{},\"b\":{}},\"other\":[\"x\"]}");
    struct audit_format d = {.salt = SALT};
    struct json_writer w;
    struct buf b;
    cJSON *o, *data;

    buf_init(&b, BUF_MAX_DEFAULT);
    json_write_init(&w, &b);
    json_write_open(&w, '{');
    put_data(&w, &d, in, false, true);
    json_write_close(&w, '}');
    o = cJSON_Parse(b.ptr);
    data = cJSON_GetObjectItem(o, "data");
    CHECK_EQ_INT(cJSON_GetObjectItem(data, "keys")->valueint, 3);
    CHECK_EQ_INT(cJSON_GetObjectItem(data, "key_info")->valueint, 2);
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(data, "other")));
    /* what is not elided is hashed as usual */
    CHECK(strncmp(cJSON_GetArrayItem(cJSON_GetObjectItem(data, "other"), 0)
                      ->valuestring, "hmac-sha256:", 12) == 0);
    cJSON_Delete(o);
    cJSON_Delete(in);
    buf_release(&b);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(hmac_known_values);
    RUN(walk_strings_at_any_depth_keys_kept);
    RUN(walk_numbers_only_when_asked);
    RUN(walk_raw_numbers_hashed_by_their_text);
    RUN(walk_scalar_root_and_null);
    RUN(walk_deep_nesting);
    RUN(elide_list_counts);
    return HARNESS_DONE();
}
