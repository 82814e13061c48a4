/*
 * test_json.c - the strict JSON reader and its number rules.
 *
 * Table-driven: each valid document is parsed and printed back with
 * cJSON_PrintUnformatted, so one row shows both what was accepted and how
 * numbers were kept (an exact double prints through cJSON's %g, a kept
 * literal prints verbatim). Invalid documents must fail with a byte
 * offset. Go's encoding/json is the reference for every choice RFC 8259
 * leaves open (see src/json.h).
 */
#include "../../src/json.c"
#include "../../src/buf.h"

#include "harness.h"

/* Parses and prints text; returns a malloc'd string or NULL. */
static char *roundtrip(const char *text, bool trailing)
{
    struct errbuf err;
    cJSON *root = json_parse(text, strlen(text), JSON_MAX_DEPTH, trailing,
                             &err);
    char *out;

    if (root == NULL)
        return NULL;
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

/* =========================================================== documents == */

struct doc_case {
    const char *in;
    const char *out; /* cJSON_PrintUnformatted of the tree */
};

static const struct doc_case valid_docs[] = {
    {"{}", "{}"},
    {"[]", "[]"},
    {" \t\r\n{ } \n", "{}"},
    {"null", "null"},
    {"true", "true"},
    {"false", "false"},
    {"\"\"", "\"\""},
    {"0", "0"},
    {"{\"a\":[1,2,{\"b\":null}],\"c\":true}",
     "{\"a\":[1,2,{\"b\":null}],\"c\":true}"},
    {"[ 1 , \"x\" , [ ] , { } ]", "[1,\"x\",[],{}]"},
    /* duplicate keys: the last value wins, one member remains */
    {"{\"a\":1,\"a\":2}", "{\"a\":2}"},
    {"{\"a\":1,\"b\":2,\"a\":3,\"a\":4}", "{\"b\":2,\"a\":4}"},
    {"{\"a\":{\"x\":1},\"a\":\"s\"}", "{\"a\":\"s\"}"},
    /* escapes */
    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\\"\\\\/\\b\\f\\n\\r\\t\""},
    {"\"\\u0041\\u00e9\"", "\"A\xc3\xa9\""},
    {"\"\\u20AC\"", "\"\xe2\x82\xac\""},
    /* surrogate pair -> one 4-byte code point */
    {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
    /* lone surrogates -> U+FFFD (Go) */
    {"\"\\ud83d\"", "\"\xef\xbf\xbd\""},
    {"\"\\ude00x\"", "\"\xef\xbf\xbdx\""},
    {"\"\\ud83d\\u0041\"", "\"\xef\xbf\xbd" "A\""},
    {"\"\\ud83d\\ud83d\\ude00\"", "\"\xef\xbf\xbd\xf0\x9f\x98\x80\""},
    /* raw UTF-8 passes through; invalid bytes -> U+FFFD each (Go) */
    {"\"\xc3\xa9\xf0\x9f\x98\x80\"", "\"\xc3\xa9\xf0\x9f\x98\x80\""},
    {"\"a\xffz\"", "\"a\xef\xbf\xbdz\""},
    {"\"\xc3\"", "\"\xef\xbf\xbd\""},
    {"\"\xc0\xaf\"", "\"\xef\xbf\xbd\xef\xbf\xbd\""},       /* overlong */
    {"\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
    {"\"\xf4\x90\x80\x80\"",
     "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
    {"\"\x7f\"", "\"\x7f\""},
};

static const char *const invalid_docs[] = {
    "",
    "   ",
    "{",
    "[",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\" 1}",
    "{a:1}",
    "{'a':1}",
    "{\"a\":1,}",
    "[1,]",
    "[,1]",
    "[1 2]",
    "{\"a\":1 \"b\":2}",
    "/* c */ {}",
    "{} // c",
    "tru",
    "nul",
    "True",
    "NaN",
    "Infinity",
    "-",
    "+1",
    "01x",
    "[01]",
    "1.",
    ".5",
    "1e",
    "1e+",
    "[1.e5]",
    "0x10",
    "\"abc",
    "\"a\\\"",
    "\"\\x41\"",
    "\"\\u12\"",
    "\"\\u12G4\"",
    "\"\\ud83d\\u12\"",
    "\"tab\there\"",
    "\"nl\nhere\"",
    "\"\\u0000\"",                /* refused: cJSON strings end at NUL */
    "{\"a\\u0000b\":1}",
    "\xef\xbb\xbf{}",             /* BOM, as Go */
    "{\"a\":[}",
    "]",
};

TEST(valid_documents)
{
    size_t i;
    char *out;

    for (i = 0; i < ARRAY_LEN(valid_docs); i++) {
        out = roundtrip(valid_docs[i].in, false);
        if (out == NULL || strcmp(out, valid_docs[i].out) != 0)
            harness_fail(__FILE__, __LINE__, "case %zu: %s -> %s (want %s)",
                         i, valid_docs[i].in, out ? out : "(error)",
                         valid_docs[i].out);
        cJSON_free(out);
    }
}

TEST(invalid_documents)
{
    struct errbuf err;
    size_t i;
    cJSON *root;

    for (i = 0; i < ARRAY_LEN(invalid_docs); i++) {
        root = json_parse(invalid_docs[i], strlen(invalid_docs[i]),
                          JSON_MAX_DEPTH, false, &err);
        if (root != NULL)
            harness_fail(__FILE__, __LINE__, "case %zu accepted: %s", i,
                         invalid_docs[i]);
        else if (strncmp(err.msg, "invalid JSON at byte ", 21) != 0)
            harness_fail(__FILE__, __LINE__, "case %zu: bad message %s", i,
                         err.msg);
        cJSON_Delete(root);
    }
}

TEST(error_names_the_byte)
{
    struct errbuf err;

    CHECK(json_parse("[1,,2]", 6, 8, false, &err) == NULL);
    CHECK_STREQ(err.msg, "invalid JSON at byte 3: unexpected character");
    CHECK(json_parse("{\"a\":1,}", 8, 8, false, &err) == NULL);
    CHECK_STREQ(err.msg,
                "invalid JSON at byte 7: expected a string for an object key");
    /* a NULL errbuf is allowed */
    CHECK(json_parse("[", 1, 8, false, NULL) == NULL);
}

/* Text need not be NUL-terminated: only len bytes are read. */
TEST(length_bounds_the_input)
{
    const char text[] = {'[', '1', '2', ']', '3'};
    cJSON *root = json_parse(text, 4, 8, false, NULL);
    char *out;

    CHECK(root != NULL);
    out = cJSON_PrintUnformatted(root);
    CHECK_STREQ(out, "[12]");
    cJSON_free(out);
    cJSON_Delete(root);
    CHECK(json_parse("\"ab", 2, 8, false, NULL) == NULL);
    root = json_parse("12345", 3, 8, false, NULL);
    CHECK(cJSON_IsNumber(root) && root->valueint == 123);
    cJSON_Delete(root);
}

/* ========================================================= trailing data == */

/* Go's json.Decoder (Vault's request decoder) stops after one value. */
TEST(trailing_data)
{
    static const struct doc_case lax[] = {
        {"{\"a\":\"b\"} x", "{\"a\":\"b\"}"},
        {"{\"a\":\"b\"}x", "{\"a\":\"b\"}"},
        {"{\"a\":1}{\"b\":2}", "{\"a\":1}"},
        {"{} ,", "{}"},
        {"null garbage", "null"},
        {"nullx", "null"},
        {"[1]]", "[1]"},
        {"01", "0"},
        {"{}\n\n", "{}"},
    };
    size_t i;
    char *out;

    for (i = 0; i < ARRAY_LEN(lax); i++) {
        out = roundtrip(lax[i].in, true);
        if (out == NULL || strcmp(out, lax[i].out) != 0)
            harness_fail(__FILE__, __LINE__, "case %zu: %s -> %s", i,
                         lax[i].in, out ? out : "(error)");
        cJSON_free(out);
        if (strcmp(lax[i].in, "{}\n\n") != 0)
            CHECK(roundtrip(lax[i].in, false) == NULL);
    }
    out = roundtrip("{}\n\n", false);
    CHECK_STREQ(out, "{}");
    cJSON_free(out);
    /* a broken first value is still an error */
    CHECK(roundtrip("{\"a\":} x", true) == NULL);
}

/* ================================================================ depth == */

static char *nested(int levels, char open, char close)
{
    char *s = xmalloc((size_t)levels * 2 + 1);
    int i;

    for (i = 0; i < levels; i++) {
        s[i] = open;
        s[levels * 2 - 1 - i] = close;
    }
    s[levels * 2] = '\0';
    return s;
}

TEST(depth_cap)
{
    struct errbuf err;
    char *ok = nested(JSON_MAX_DEPTH, '[', ']');
    char *deep = nested(JSON_MAX_DEPTH + 1, '[', ']');
    char *huge = nested(100000, '[', ']');
    cJSON *root;

    root = json_parse(ok, strlen(ok), JSON_MAX_DEPTH, false, &err);
    CHECK(root != NULL);
    cJSON_Delete(root);
    CHECK(json_parse(deep, strlen(deep), JSON_MAX_DEPTH, false, &err) ==
          NULL);
    CHECK(strstr(err.msg, "nested too deeply") != NULL);
    /* the recursion is clamped even when the caller asks for more */
    CHECK(json_parse(huge, strlen(huge), 1 << 30, false, &err) == NULL);
    CHECK(strstr(err.msg, "nested too deeply") != NULL);
    CHECK(json_parse("{\"a\":{\"b\":1}}", 13, 1, false, &err) == NULL);
    root = json_parse("{\"a\":1}", 7, 1, false, &err);
    CHECK(root != NULL);
    cJSON_Delete(root);
    /* scalars do not count */
    root = json_parse("\"s\"", 3, 0, false, &err);
    CHECK(root != NULL);
    cJSON_Delete(root);
    free(ok);
    free(deep);
    free(huge);
}

/* ============================================================== numbers == */

struct num_case {
    const char *lit;
    bool raw; /* kept as a cJSON_Raw literal */
};

static const struct num_case numbers[] = {
    {"0", false},
    {"1", false},
    {"-1", false},
    {"42", false},
    {"2147483647", false},
    {"-2147483648", false},
    {"4294967296", false},
    {"123456789012345", false},  /* 15 digits: %1.15g prints them all */
    {"0.5", false},
    {"0.1", false},
    {"-2.25", false},
    {"3.14159", false},
    {"1e-07", false},             /* what cJSON itself prints */
    {"1.5e-300", false},
    {"1.5e+300", true},            /* integral, spelled with e */
    {"1000000000000000", true},   /* cJSON would print 1e+15 */
    {"9007199254740992", true},
    {"9007199254740993", true},   /* not a double at all */
    {"12345678901234567890", true},
    {"-12345678901234567890123", true},
    {"0.10000000000000001", true}, /* same double as 0.1, other text */
    {"0.30000000000000004", true}, /* cJSON's %1.15g would say 0.3 */
    {"0.10", true},
    {"1.0", true},
    {"-0", true},
    {"-0.0", true},
    {"1e3", true},
    {"1E-07", true},
    {"1e-7", true},
    {"1e400", true},              /* beyond double range */
    {"-1e400", true},
    {"1e-400", true},
    {"123.456e2", true},
};

TEST(numbers_number_or_raw)
{
    size_t i;
    cJSON *item;
    char text[80], *out;

    for (i = 0; i < ARRAY_LEN(numbers); i++) {
        snprintf(text, sizeof(text), "[%s]", numbers[i].lit);
        item = json_parse(text, strlen(text), 8, false, NULL);
        if (item == NULL) {
            harness_fail(__FILE__, __LINE__, "%s refused", numbers[i].lit);
            continue;
        }
        if (cJSON_IsRaw(item->child) != numbers[i].raw ||
            cJSON_IsNumber(item->child) == numbers[i].raw)
            harness_fail(__FILE__, __LINE__, "%s: raw=%d, want %d",
                         numbers[i].lit, cJSON_IsRaw(item->child),
                         numbers[i].raw);
        out = cJSON_PrintUnformatted(item);
        if (out == NULL || strcmp(out, text) != 0)
            harness_fail(__FILE__, __LINE__, "%s printed as %s",
                         numbers[i].lit, out ? out : "(null)");
        cJSON_free(out);
        cJSON_Delete(item);
    }
}

/*
 * The integer fast path (small_integer) must agree with the print round
 * trip it skips, on both sides of its 15-digit limit and on the literals
 * it must leave alone ("-0", leading zeros).
 */
TEST(integer_fast_path_agrees_with_round_trip)
{
    static const char *lits[] = {"0", "-0", "7", "-7", "00", "012", "-01",
                                 "999999999999999", "-999999999999999",
                                 "1000000000000000", "123456789012345",
                                 "9007199254740993", "1e3", "1.0"};
    unsigned long long x = 1;

    for (size_t i = 0; i < ARRAY_LEN(lits); i++) {
        double a = 0, b = 0;
        bool fast = small_integer(lits[i], strlen(lits[i]), &a);
        bool exact = round_trip_exact(lits[i], strlen(lits[i]), &b);
        /* what the fast path accepts is exact, with the same value */
        if (fast && (!exact || a != b))
            harness_fail(__FILE__, __LINE__, "%s: fast path disagrees",
                         lits[i]);
    }
    for (int i = 0; i < 2000; i++) {
        char lit[32];
        double a = 0;
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        snprintf(lit, sizeof(lit), "%s%llu", i % 2 ? "-" : "",
                 (x >> 11) % (i % 3 ? 1000000ULL : 1000000000000000ULL));
        if (strcmp(lit, "-0") == 0)
            continue;
        double b = 0;
        CHECK(small_integer(lit, strlen(lit), &a));
        CHECK(round_trip_exact(lit, strlen(lit), &b) && a == b);
    }
    CHECK(!small_integer("-0", 2, &(double){0}));
    CHECK(!small_integer("", 0, &(double){0}));
    CHECK(!small_integer("-", 1, &(double){0}));
}

TEST(number_literal_grammar)
{
    static const char *const good[] = {"0", "-0", "1.5", "1e5", "1E+5",
                                       "-1.5e-5", "10", "0.0"};
    static const char *const bad[] = {"", "-", "01", "1.", ".1", "+1",
                                      "1e", "1e+", "0x1", "1 ", " 1",
                                      "Infinity", "1.5.5", "--1"};
    size_t i;

    for (i = 0; i < ARRAY_LEN(good); i++)
        CHECK(json_number_literal(good[i], strlen(good[i])));
    for (i = 0; i < ARRAY_LEN(bad); i++) {
        if (json_number_literal(bad[i], strlen(bad[i])))
            harness_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
    }
}

TEST(number_compare)
{
    static const struct {
        const char *a, *b;
        int want;
    } cases[] = {
        {"0", "-0", 0},
        {"0", "0.000e99", 0},
        {"1", "1.0", 0},
        {"1", "1e0", 0},
        {"100", "1e2", 0},
        {"0.001", "1e-3", 0},
        {"12345678901234567890", "12345678901234567891", -1},
        {"12345678901234567890", "1.234567890123456789e19", 0},
        {"9007199254740993", "9007199254740992", 1},
        {"-9007199254740993", "-9007199254740992", -1},
        {"0.1", "0.10000000000000001", -1},
        {"-1", "1", -1},
        {"-1", "0", -1},
        {"0", "1e-400", -1},
        {"1e400", "1e399", 1},
        {"99", "100", -1},
        {"0.5", "0.05", 1},
        {"1e999999999999999999999", "1e999999999999999999998", 0}, /* clamp */
    };
    size_t i;
    int got;

    for (i = 0; i < ARRAY_LEN(cases); i++) {
        got = json_number_cmp(cases[i].a, strlen(cases[i].a), cases[i].b,
                              strlen(cases[i].b));
        got = got < 0 ? -1 : got > 0;
        if (got != cases[i].want)
            harness_fail(__FILE__, __LINE__, "cmp(%s, %s) = %d, want %d",
                         cases[i].a, cases[i].b, got, cases[i].want);
        got = json_number_cmp(cases[i].b, strlen(cases[i].b), cases[i].a,
                              strlen(cases[i].a));
        got = got < 0 ? -1 : got > 0;
        if (got != -cases[i].want)
            harness_fail(__FILE__, __LINE__, "cmp(%s, %s) not symmetric",
                         cases[i].b, cases[i].a);
    }
}

/* The request body from tests/integration/test_kv_v1.py. */
TEST(big_numbers_print_verbatim)
{
    const char *body = "{\"big\": 12345678901234567890, \"precise\": 0.1, "
                       "\"i\": 9007199254740993}";
    char *out = roundtrip(body, true);

    CHECK_STREQ(out, "{\"big\":12345678901234567890,\"precise\":0.1,"
                     "\"i\":9007199254740993}");
    cJSON_free(out);
}

/* A long object with many duplicates stays correct (sorted dedupe). */
TEST(many_duplicate_keys)
{
    struct buf b;
    cJSON *root;
    int i;

    buf_init(&b, 0);
    buf_append(&b, "{", 1);
    for (i = 0; i < 5000; i++) {
        char m[48];
        int n = snprintf(m, sizeof(m), "%s\"k%d\":%d", i ? "," : "", i % 7, i);
        buf_append(&b, m, (size_t)n);
    }
    buf_append(&b, "}", 1);
    root = json_parse(b.ptr, b.len, 8, false, NULL);
    CHECK(root != NULL);
    CHECK_EQ_INT(cJSON_GetArraySize(root), 7);
    for (i = 0; i < 7; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        /* the last value below 5000 with value % 7 == i */
        CHECK_EQ_INT(cJSON_GetObjectItemCaseSensitive(root, k)->valueint,
                     4998 + i <= 4999 ? 4998 + i : 4991 + i);
    }
    cJSON_Delete(root);
    buf_release(&b);
}

/* ============================================== wiping and members == */

/* True if the n bytes at p are all zero. */
static bool all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

TEST(wipe_reaches_keys_and_values)
{
    static const char doc[] =
        "{\"secret-key\":\"v1\",\"nested\":{\"inner-key\":[\"a\",{\"deep\":"
        "\"v2\"}]},\"n\":1}";
    cJSON *root = json_parse(doc, strlen(doc), JSON_MAX_DEPTH, false, NULL);
    const char *strings[8];
    size_t lens[8], n = 0;
    cJSON *nested, *arr, *obj;

    CHECK(root != NULL);
    if (root == NULL)
        return;
    nested = cJSON_GetObjectItemCaseSensitive(root, "nested");
    arr = cJSON_GetObjectItemCaseSensitive(nested, "inner-key");
    obj = cJSON_GetArrayItem(arr, 1);
    strings[n] = root->child->string;               /* "secret-key" */
    lens[n++] = strlen(root->child->string);
    strings[n] = root->child->valuestring;          /* "v1" */
    lens[n++] = 2;
    strings[n] = nested->string;
    lens[n++] = strlen(nested->string);
    strings[n] = arr->string;                       /* "inner-key" */
    lens[n++] = strlen(arr->string);
    strings[n] = cJSON_GetArrayItem(arr, 0)->valuestring;
    lens[n++] = 1;
    strings[n] = obj->child->string;                /* "deep" */
    lens[n++] = 4;
    strings[n] = obj->child->valuestring;           /* "v2" */
    lens[n++] = 2;
    /* What json_delete_wiped does before cJSON_Delete. */
    wipe_item(root);
    for (size_t i = 0; i < n; i++) {
        if (!all_zero(strings[i], lens[i]))
            harness_fail(__FILE__, __LINE__, "string %zu not wiped", i);
    }
    cJSON_Delete(root);
}

TEST(wipe_a_member_and_its_key)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *item = cJSON_AddStringToObject(root, "token-key", "s.secret");

    /* A member detached from an object keeps its key: it is wiped too. */
    cJSON_DetachItemViaPointer(root, item);
    wipe_item(item);
    CHECK(all_zero(item->string, strlen("token-key")));
    CHECK(all_zero(item->valuestring, strlen("s.secret")));
    json_delete_wiped(item);
    json_delete_wiped(root);
    json_delete_wiped(NULL); /* harmless */
}

TEST(member_getters)
{
    static const char doc[] =
        "{\"s\":\"text\",\"i\":42,\"neg\":-7.9,\"t\":true,\"f\":false,"
        "\"nul\":null,"
        "\"raw\":123456789012345678901234,\"arr\":[1],\"S\":\"case\"}";
    cJSON *o = json_parse(doc, strlen(doc), JSON_MAX_DEPTH, false, NULL);

    CHECK(o != NULL);
    if (o == NULL)
        return;
    /* json_parse keeps 1e300 as a literal; stored doubles can be this big. */
    cJSON_AddNumberToObject(o, "big", 1e300);
    cJSON_AddNumberToObject(o, "small", -1e300);
    CHECK_STREQ(json_get_str(o, "s", ""), "text");
    CHECK_STREQ(json_get_str(o, "i", "dflt"), "dflt");    /* wrong type */
    CHECK_STREQ(json_get_str(o, "nul", "dflt"), "dflt");
    CHECK_STREQ(json_get_str(o, "missing", ""), "");
    CHECK(json_get_str(o, "missing", NULL) == NULL);
    CHECK_STREQ(json_get_str(o, "S", ""), "case");         /* case-sensitive */
    CHECK_EQ_INT(json_get_int(o, "i", 0), 42);
    CHECK_EQ_INT(json_get_int(o, "neg", 0), -7);           /* truncates */
    CHECK_EQ_INT(json_get_int(o, "s", -1), -1);
    CHECK_EQ_INT(json_get_int(o, "t", -1), -1);
    CHECK_EQ_INT(json_get_int(o, "big", 0), INT64_MAX);    /* clamped */
    CHECK_EQ_INT(json_get_int(o, "small", 0), INT64_MIN);
    CHECK_EQ_INT(json_get_int(o, "raw", 5), 5);            /* kept literal */
    CHECK_EQ_INT(json_get_int(o, "arr", 5), 5);
    CHECK(json_get_bool(o, "t", false) == true);
    CHECK(json_get_bool(o, "f", true) == false);
    CHECK(json_get_bool(o, "i", true) == true);            /* wrong type */
    CHECK(json_get_bool(o, "missing", false) == false);
    /* Not an object, or no object at all. */
    CHECK_STREQ(json_get_str(NULL, "s", "d"), "d");
    CHECK_EQ_INT(json_get_int(NULL, "i", 3), 3);
    CHECK(json_get_bool(NULL, "t", false) == false);
    CHECK_STREQ(json_get_str(cJSON_GetObjectItemCaseSensitive(o, "arr"),
                             "s", "d"), "d");
    cJSON_Delete(o);
}

/* The value text of member name in text, or "(absent)" / "(bad)". */
static const char *member_text(const char *text, const char *name)
{
    static char out[256];
    struct json_member m = {.name = name};

    if (!json_object_members(text, strlen(text), &m, 1))
        return "(bad)";
    if (m.v == NULL)
        return "(absent)";
    snprintf(out, sizeof(out), "%.*s", (int)(m.end - m.v), m.v);
    return out;
}

TEST(members_read_off_the_text)
{
    static const struct {
        const char *text, *name, *want;
    } rows[] = {
        {"{\"a\":1,\"b\":\"x\"}", "b", "\"x\""},
        {" { \"a\" : [1, {\"b\":2}] , \"b\" : true } ", "b", "true"},
        {"{\"a\":[1,{\"b\":2}]}", "b", "(absent)"}, /* nested: not a member */
        {"{\"s\":\"q\\\"\\\\\",\"t\":null}", "t", "null"},
        {"{\"s\":\"}\",\"t\":-1.5e3}", "t", "-1.5e3"},
        {"{\"d\":1,\"d\":2}", "d", "1"}, /* the first, as cJSON */
        {"{\"k\\u0065y\":1}", "key", "(absent)"}, /* escaped key */
        {"{}", "a", "(absent)"},
        {"{\"a\":1", "a", "(bad)"},
        {"{\"a\":1}x", "a", "(bad)"},
        {"{\"a\":\"open}", "a", "(bad)"},
        {"{\"a\":tru}", "a", "(bad)"},
        {"{\"a\" 1}", "a", "(bad)"},
        {"{\"a\":1,}", "a", "(bad)"},
        {"[1]", "a", "(bad)"},
        {"", "a", "(bad)"},
        {"{\"a\":\"\\", "a", "(bad)"},
    };

    for (size_t i = 0; i < ARRAY_LEN(rows); i++)
        CHECK_STREQ(member_text(rows[i].text, rows[i].name), rows[i].want);
}

TEST(members_nesting_is_bounded)
{
    char deep[2 * JSON_MEMBER_MAX_DEPTH + 64];
    struct json_member m = {.name = "a"};
    size_t n = 0;

    n += (size_t)snprintf(deep, sizeof(deep), "{\"a\":");
    for (int i = 0; i < JSON_MEMBER_MAX_DEPTH + 1; i++)
        deep[n++] = '[';
    for (int i = 0; i < JSON_MEMBER_MAX_DEPTH + 1; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    CHECK(!json_object_members(deep, n, &m, 1));
}

TEST(member_integers_as_json_get_int)
{
    static const char *lits[] = {"0", "-7", "1796354215123", "1.9", "-1.9",
                                 "1e3", "1e300", "-1e300", "2.5E-3",
                                 "9223372036854775807"};
    char text[128];

    for (size_t i = 0; i < ARRAY_LEN(lits); i++) {
        struct json_member m = {.name = "n"};
        cJSON *tree;
        int64_t got = 42;

        snprintf(text, sizeof(text), "{\"n\":%s}", lits[i]);
        tree = cJSON_Parse(text);
        CHECK(json_object_members(text, strlen(text), &m, 1));
        CHECK(json_member_int64(&m, &got));
        CHECK(got == json_get_int(tree, "n", 0));
        cJSON_Delete(tree);
    }
    {
        struct json_member m = {.name = "n"};
        int64_t got = 42;

        CHECK(json_object_members("{\"n\":\"1\"}", 9, &m, 1));
        CHECK(!json_member_int64(&m, &got) && got == 42);
        CHECK(json_member_is(&m, "\"1\"") && !json_member_is(&m, "1"));
        m.name = "absent";
        CHECK(json_object_members("{\"n\":1}", 7, &m, 1));
        CHECK(!json_member_int64(&m, &got) && !json_member_is(&m, "1"));
    }
}

/*
 * Every top-level member of documents cJSON prints (lease records are
 * written so) is found with exactly the text cJSON prints for it.
 */
TEST(members_agree_with_cjson)
{
    static const char *docs[] = {
        "{\"id\":\"database/creds/r/abc\",\"internal\":{\"username\":\"v-"
        "x\",\"stmts\":[\"DROP ROLE \\\"{{name}}\\\";\"],\"n\":{}},"
        "\"expire_ms\":1796354215123,\"ttl\":3600,\"renewable\":true,"
        "\"irrevocable\":false,\"state\":\"active\"}",
        "{\"a\":[[],[[]],{}],\"b\":\"\\u0001\\n\",\"c\":-0.5,\"d\":null,"
        "\"e\":\"\xc3\xa9\"}",
    };

    for (size_t d = 0; d < ARRAY_LEN(docs); d++) {
        cJSON *tree = cJSON_Parse(docs[d]);
        const cJSON *item;

        CHECK(tree != NULL);
        cJSON_ArrayForEach(item, tree)
        {
            char *want = cJSON_PrintUnformatted(item);

            CHECK_STREQ(member_text(docs[d], item->string), want);
            free(want);
        }
        cJSON_Delete(tree);
    }
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(members_read_off_the_text);
    RUN(members_nesting_is_bounded);
    RUN(member_integers_as_json_get_int);
    RUN(members_agree_with_cjson);
    RUN(valid_documents);
    RUN(invalid_documents);
    RUN(error_names_the_byte);
    RUN(length_bounds_the_input);
    RUN(trailing_data);
    RUN(depth_cap);
    RUN(numbers_number_or_raw);
    RUN(integer_fast_path_agrees_with_round_trip);
    RUN(number_literal_grammar);
    RUN(number_compare);
    RUN(big_numbers_print_verbatim);
    RUN(many_duplicate_keys);
    RUN(wipe_reaches_keys_and_values);
    RUN(wipe_a_member_and_its_key);
    RUN(member_getters);
    return HARNESS_DONE();
}
