/*
 * test_json_write.c - the direct JSON writer.
 *
 * Its promise is cJSON_PrintUnformatted's text, byte for byte; every case
 * compares the two on the same tree (the fuzz harness fuzz_json does the
 * same on arbitrary input).
 */
#include "../../src/json_write.c"

#include <float.h>

#include "harness.h"

static char *written(const cJSON *v)
{
    struct buf b;
    struct json_writer w;

    buf_init(&b, BUF_MAX_DEFAULT);
    json_write_init(&w, &b);
    json_write_value(&w, v);
    if (w.rc != 0)
        return NULL;
    return buf_detach(&b, NULL);
}

/* The writer's text equals cJSON's for v; v is freed. */
static int same_as_cjson(cJSON *v)
{
    char *a = written(v), *b = cJSON_PrintUnformatted(v);
    int ok = a != NULL && b != NULL && strcmp(a, b) == 0;

    if (!ok)
        fprintf(stderr, "  writer %s\n  cJSON  %s\n", a, b);
    free(a);
    free(b);
    cJSON_Delete(v);
    return ok;
}

TEST(documents_match_cjson)
{
    static const char *docs[] = {
        "{}", "[]", "null", "true", "false", "\"\"", "0", "-1",
        "{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":{\"e\":{}}}",
        "[[],[[]],{},{\"\":\"\"}]",
        "\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r\"",
        "\"bell \\u0007 bs \\b ff \\f del \\u007f esc \\u001b\"",
        "\"utf-8 \\u00e9 \\u20ac \\ud83d\\ude00\"",
        "[0.1,1.5,-2.25,3.14159265358979,1e300,-1e-300,123456789012]",
        "[2147483647,-2147483648,2147483648,-2147483649,4294967296]",
        "[1e15,1e16,9007199254740993,0.30000000000000004]",
    };

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        cJSON *v = cJSON_Parse(docs[i]);
        CHECK(v != NULL);
        if (v != NULL)
            CHECK(same_as_cjson(v));
    }
}

TEST(numbers_match_cjson)
{
    const double values[] = {0.0, -0.0, 1.0 / 3, 2.0 / 3, 1e21, 1e-7,
                             DBL_MAX, DBL_MIN, -DBL_MAX, 5e-324, 100.5,
                             0.1 + 0.2, 1e15 + 0.3, 123456.789e3,
                             999999999999999.0, 1e15, -999999999999999.0,
                             -1.0, -42.0, 7.0, 1e14 + 1, -0.5};

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        CHECK(same_as_cjson(cJSON_CreateNumber(values[i])));
    /* random doubles, every magnitude: json.c relies on this too */
    for (int i = 0; i < 20000; i++) {
        static unsigned long long x = 88172645463325252ULL;
        double d;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(&d, &x, sizeof(d));
        if (i % 4 == 0)
            d = (double)(long long)(x % 2000000000000000ULL) -
                1e15; /* integers around the fast path's edge */
        if (!same_as_cjson(cJSON_CreateNumber(d))) {
            CHECK(!"a random double prints differently");
            break;
        }
    }
    CHECK(same_as_cjson(cJSON_CreateNumber(NAN)));
    CHECK(same_as_cjson(cJSON_CreateNumber(INFINITY)));
    CHECK(same_as_cjson(cJSON_CreateRaw("12345678901234567890")));
}

TEST(every_control_byte_escaped_like_cjson)
{
    char s[2] = {0, 0};

    for (int c = 1; c < 256; c++) {
        s[0] = (char)c;
        CHECK(same_as_cjson(cJSON_CreateString(s)));
    }
}

TEST(builder_calls_place_commas)
{
    struct buf b;
    struct json_writer w;

    buf_init(&b, BUF_MAX_DEFAULT);
    json_write_init(&w, &b);
    json_write_open(&w, '{');
    json_write_kv_string(&w, "a", "x");
    json_write_key(&w, "b");
    json_write_open(&w, '[');
    json_write_number(&w, 1);
    json_write_open(&w, '{');
    json_write_close(&w, '}');
    json_write_null(&w);
    json_write_bool(&w, true);
    json_write_close(&w, ']');
    json_write_kv_number(&w, "c", 0.5);
    json_write_key(&w, "d");
    json_write_raw(&w, "123456789012345678901");
    json_write_close(&w, '}');
    CHECK_EQ_INT(w.rc, 0);
    CHECK_STREQ(b.ptr, "{\"a\":\"x\",\"b\":[1,{},null,true],\"c\":0.5,"
                       "\"d\":123456789012345678901}");
    buf_release(&b);
}

TEST(ceiling_sticks)
{
    struct buf b;
    struct json_writer w;

    buf_init(&b, 8);
    json_write_init(&w, &b);
    json_write_open(&w, '[');
    json_write_string(&w, "far more than eight bytes");
    json_write_number(&w, 1);
    json_write_close(&w, ']');
    CHECK_EQ_INT(w.rc, COFFER_ETOOBIG);
    CHECK(b.ptr == NULL); /* buf released the half-written text */
    buf_release(&b);

    /* Near the ceiling the exact size decides, not the worst case. */
    buf_init(&b, 48);
    json_write_init(&w, &b);
    json_write_string(&w, "forty plain bytes and two escaped: \"\n..");
    CHECK_EQ_INT(w.rc, 0);
    CHECK_STREQ(b.ptr, "\"forty plain bytes and two escaped: \\\"\\n..\"");
    json_write_string(&w, "xyz"); /* 43 + 6 bytes pass 48 */
    CHECK_EQ_INT(w.rc, COFFER_ETOOBIG);
    buf_release(&b);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(documents_match_cjson);
    RUN(numbers_match_cjson);
    RUN(every_control_byte_escaped_like_cjson);
    RUN(builder_calls_place_commas);
    RUN(ceiling_sticks);
    return HARNESS_DONE();
}
