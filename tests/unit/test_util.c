/*
 * test_util.c - durations, time formats, Go-style parsers, string vectors.
 *
 * The duration and bool tables follow Vault's parseutil and Go's strconv:
 * clients send the same field as 300, "300", "5m" or "1h30m", and the server
 * must read them all the same way and refuse everything else.
 */
#include "../../src/util.c"

#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* ========================================================== durations == */

struct duration_case {
    const char *in;
    int64_t secs;
};

static const struct duration_case duration_ok[] = {
    {"", 0},
    {"0", 0},
    {"300", 300},
    {"5m", 300},
    {"90s", 90},
    {"1m30s", 90},
    {"1h30m", 5400},
    {"1.5h", 5400},
    {"0.5m", 30},
    {"500ms", 0},         /* sub-second parts truncate */
    {"1500ms", 1},
    {"2h45m30s", 9930},
    {"768h", 2764800},
    {"7d", 604800},
    {"0s", 0},
    {"  5m", 300},        /* leading blanks skipped */
    {"+5m", 300},         /* Go accepts a leading plus */
    {"1000000us", 1},
    {"3000000000ns", 3},
    {"9223372036854775807", INT64_MAX},
};

static const char *const duration_bad[] = {
    "-5m", "-300", "-1", "abc", "5x", "m", "h5", "5 m", "1h5", "1h-5m",
    ".", "5m-", "1e3s", "0x10s", "nan", "inf", "--5m", "5mm",
    "99999999999999999999h", "12345678901234567890",
};

TEST(duration_parse_table)
{
    for (size_t i = 0; i < ARRAY_LEN(duration_ok); i++) {
        struct errbuf err = {{0}};
        int64_t secs = -1;
        int rc = duration_parse(duration_ok[i].in, &secs, &err);

        if (rc != 0 || secs != duration_ok[i].secs)
            harness_fail(__FILE__, __LINE__,
                         "duration_parse(\"%s\") = %d, %lld; want 0, %lld (%s)",
                         duration_ok[i].in, rc, (long long)secs,
                         (long long)duration_ok[i].secs, err.msg);
    }
}

TEST(duration_parse_refuses_garbage)
{
    for (size_t i = 0; i < ARRAY_LEN(duration_bad); i++) {
        struct errbuf err = {{0}};
        int64_t secs = 0;
        int rc = duration_parse(duration_bad[i], &secs, &err);

        if (rc != COFFER_EINVAL)
            harness_fail(__FILE__, __LINE__,
                         "duration_parse(\"%s\") = %d (secs %lld); want "
                         "COFFER_EINVAL",
                         duration_bad[i], rc, (long long)secs);
        else if (err.msg[0] == '\0')
            harness_fail(__FILE__, __LINE__,
                         "duration_parse(\"%s\") gave no reason",
                         duration_bad[i]);
    }
}

TEST(duration_parse_negative_reason)
{
    struct errbuf err = {{0}};
    int64_t secs = 0;

    CHECK_EQ_INT(duration_parse("-5m", &secs, &err), COFFER_EINVAL);
    CHECK(strstr(err.msg, "negative") != NULL);
}

struct format_case {
    int64_t secs;
    const char *go;
    const char *shrt;
};

static const struct format_case format_cases[] = {
    {0, "0s", "0s"},
    {1, "1s", "1s"},
    {45, "45s", "45s"},
    {60, "1m0s", "1m"},
    {90, "1m30s", "1m30s"},
    {3600, "1h0m0s", "1h"},
    {3601, "1h0m1s", "1h1s"},
    {5400, "1h30m0s", "1h30m"},
    {5445, "1h30m45s", "1h30m45s"},
    {86400, "24h0m0s", "24h"},
    {2764800, "768h0m0s", "768h"},
};

TEST(duration_format_table)
{
    for (size_t i = 0; i < ARRAY_LEN(format_cases); i++) {
        char out[64];

        memset(out, 'X', sizeof(out));
        duration_format_go(format_cases[i].secs, out, sizeof(out));
        CHECK_STREQ(out, format_cases[i].go);
        memset(out, 'X', sizeof(out));
        duration_format_short(format_cases[i].secs, out, sizeof(out));
        CHECK_STREQ(out, format_cases[i].shrt);
    }
}

TEST(duration_format_truncates_safely)
{
    char out[8];
    /* volatile: truncation is the point, keep the compiler from refusing. */
    volatile size_t small = 4;

    memset(out, 'X', sizeof(out));
    duration_format_go(3600, out, small);
    CHECK_STREQ(out, "1h0");
    CHECK(out[4] == 'X');
    memset(out, 'X', sizeof(out));
    duration_format_short(5445, out, small);
    CHECK(memchr(out, '\0', 4) != NULL);
    CHECK(out[4] == 'X');
}

TEST(duration_round_trip)
{
    static const int64_t values[] = {0, 1, 59, 61, 3599, 3600, 86399, 2764800};

    for (size_t i = 0; i < ARRAY_LEN(values); i++) {
        struct errbuf err = {{0}};
        char out[64];
        int64_t back = -1;

        duration_format_go(values[i], out, sizeof(out));
        CHECK_EQ_INT(duration_parse(out, &back, &err), 0);
        CHECK_EQ_INT(back, values[i]);
        duration_format_short(values[i], out, sizeof(out));
        CHECK_EQ_INT(duration_parse(out, &back, &err), 0);
        CHECK_EQ_INT(back, values[i]);
    }
}

/* =============================================================== time == */

TEST(rfc3339_format)
{
    char out[64];
    struct timespec ts;

    ts.tv_sec = 0;
    ts.tv_nsec = 0;
    time_format_rfc3339(ts, out, sizeof(out));
    CHECK_STREQ(out, "1970-01-01T00:00:00.000000000Z");

    ts.tv_sec = 1714557600; /* 2024-05-01 10:00:00 UTC */
    ts.tv_nsec = 123456789;
    time_format_rfc3339(ts, out, sizeof(out));
    CHECK_STREQ(out, "2024-05-01T10:00:00.123456789Z");

    ts.tv_nsec = 5;
    time_format_rfc3339(ts, out, sizeof(out));
    CHECK_STREQ(out, "2024-05-01T10:00:00.000000005Z");
}

TEST(rfc3339_round_trip)
{
    struct timespec now = time_now();
    struct timespec back = {0, 0};
    char out[64];

    time_format_rfc3339(now, out, sizeof(out));
    CHECK_EQ_INT(time_parse_rfc3339(out, &back), 0);
    CHECK_EQ_INT(back.tv_sec, now.tv_sec);
    CHECK_EQ_INT(back.tv_nsec, now.tv_nsec);

    /* Leap day, end of a year, far future. */
    static const time_t secs[] = {951782400, 1704067199, 4102444800};
    for (size_t i = 0; i < ARRAY_LEN(secs); i++) {
        struct timespec ts = {secs[i], 999999999};

        time_format_rfc3339(ts, out, sizeof(out));
        CHECK_EQ_INT(time_parse_rfc3339(out, &back), 0);
        CHECK_EQ_INT(back.tv_sec, ts.tv_sec);
        CHECK_EQ_INT(back.tv_nsec, ts.tv_nsec);
    }
}

TEST(rfc3339_parse_variants)
{
    struct timespec ts = {0, 0};

    CHECK_EQ_INT(time_parse_rfc3339("2024-05-01T10:00:00Z", &ts), 0);
    CHECK_EQ_INT(ts.tv_sec, 1714557600);
    CHECK_EQ_INT(ts.tv_nsec, 0);
    CHECK_EQ_INT(time_parse_rfc3339("2024-05-01T10:00:00.5Z", &ts), 0);
    CHECK_EQ_INT(ts.tv_sec, 1714557600);
    CHECK_EQ_INT(ts.tv_nsec, 500000000);
    CHECK_EQ_INT(time_parse_rfc3339("2024-05-01T10:00:00.000001Z", &ts), 0);
    CHECK_EQ_INT(ts.tv_nsec, 1000);
}

TEST(rfc3339_parse_refuses_garbage)
{
    static const char *const bad[] = {
        "", "garbage", "2024-05-01", "2024-05-01T10:00:00",
        "2024-05-01T10:00:00Zjunk", "2024-05-01 10:00:00Z",
        "2024-13-01T10:00:00Z",
    };
    struct timespec ts;

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        if (time_parse_rfc3339(bad[i], &ts) != COFFER_EINVAL)
            harness_fail(__FILE__, __LINE__,
                         "time_parse_rfc3339(\"%s\") accepted", bad[i]);
    }
}

TEST(time_clocks_move)
{
    struct timespec a = time_now();
    double m1 = time_mono();
    double m2 = time_mono();

    CHECK(a.tv_sec > 1700000000);
    CHECK(a.tv_nsec >= 0 && a.tv_nsec < 1000000000);
    CHECK(m2 >= m1);
}

/* ============================================================ parsers == */

TEST(bool_parse_go_set)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    static const char *const bad[] = {"", "yes", "no", "TrUe", "tRUE", "2",
                                      " true", "true ", "on", "-1", "y"};

    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        bool v = false;

        CHECK_EQ_INT(bool_parse(yes[i], &v), 0);
        CHECK(v == true);
    }
    for (size_t i = 0; i < ARRAY_LEN(no); i++) {
        bool v = true;

        CHECK_EQ_INT(bool_parse(no[i], &v), 0);
        CHECK(v == false);
    }
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        bool v = false;

        if (bool_parse(bad[i], &v) != COFFER_EINVAL)
            harness_fail(__FILE__, __LINE__, "bool_parse(\"%s\") accepted",
                         bad[i]);
    }
}

TEST(int64_parse_table)
{
    static const struct {
        const char *in;
        int64_t v;
    } ok[] = {
        {"0", 0},
        {"42", 42},
        {"-42", -42},
        {"+7", 7},
        {"007", 7},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    static const char *const bad[] = {
        "", " 1", "1 ", "12a", "1.5", "0x10", "abc", "-",
        "9223372036854775808", "-9223372036854775809", "1e3",
    };

    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        int64_t v = 0;

        CHECK_EQ_INT(int64_parse(ok[i].in, &v), 0);
        CHECK_EQ_INT(v, ok[i].v);
    }
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t v = 0;

        if (int64_parse(bad[i], &v) != COFFER_EINVAL)
            harness_fail(__FILE__, __LINE__, "int64_parse(\"%s\") accepted",
                         bad[i]);
    }
}

/* ============================================================ strings == */

TEST(str_prefix_suffix)
{
    CHECK(str_has_prefix("secret/data/x", "secret/"));
    CHECK(str_has_prefix("abc", ""));
    CHECK(!str_has_prefix("sec", "secret/"));
    CHECK(str_has_suffix("folder/", "/"));
    CHECK(str_has_suffix("abc", ""));
    CHECK(!str_has_suffix("c", "abc"));
    CHECK(!str_has_suffix("folder", "/"));
}

TEST(strvec_sort_uniq_contains)
{
    struct strvec sv;

    strvec_init(&sv);
    CHECK_EQ_INT(sv.n, 0);
    CHECK(!strvec_contains(&sv, "a"));
    strvec_push(&sv, "pear");
    strvec_push(&sv, "apple");
    strvec_push_owned(&sv, xstrdup("pear"));
    strvec_push(&sv, "fig/");
    strvec_push(&sv, "apple");
    CHECK_EQ_INT(sv.n, 5);
    strvec_sort(&sv);
    strvec_uniq(&sv);
    CHECK_EQ_INT(sv.n, 3);
    if (sv.n == 3) {
        CHECK_STREQ(sv.v[0], "apple");
        CHECK_STREQ(sv.v[1], "fig/");
        CHECK_STREQ(sv.v[2], "pear");
    }
    CHECK(strvec_contains(&sv, "fig/"));
    CHECK(!strvec_contains(&sv, "fig"));
    strvec_release(&sv);
    CHECK_EQ_INT(sv.n, 0);
    /* Released twice is harmless, and the vector is reusable. */
    strvec_release(&sv);
    strvec_push(&sv, "x");
    CHECK_EQ_INT(sv.n, 1);
    strvec_release(&sv);
}

TEST(strvec_grows)
{
    struct strvec sv;
    char name[32];

    strvec_init(&sv);
    for (int i = 999; i >= 0; i--) {
        snprintf(name, sizeof(name), "k%04d", i);
        strvec_push(&sv, name);
    }
    CHECK_EQ_INT(sv.n, 1000);
    strvec_sort(&sv);
    CHECK_STREQ(sv.v[0], "k0000");
    CHECK_STREQ(sv.v[999], "k0999");
    strvec_release(&sv);
}

/* ===================================================== bytes and files == */

TEST(hex_value_digits)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < 16; i++) {
        CHECK_EQ_INT(hex_value(digits[i]), i);
        CHECK_EQ_INT(hex_value(toupper((unsigned char)digits[i])), i);
    }
    /* Every other byte, including the neighbours of each range. */
    for (int c = 0; c < 256; c++) {
        if (strchr("0123456789abcdefABCDEF", c) == NULL || c == 0)
            CHECK_EQ_INT(hex_value(c), -1);
    }
    CHECK_EQ_INT(hex_value(-1), -1);
    CHECK_EQ_INT(hex_value((char)0xC3), -1); /* a negative char */
}

struct utf8_case {
    uint32_t cp;
    const char *out;
};

static const struct utf8_case utf8_cases[] = {
    {0x41, "A"},
    {0x7F, "\x7f"},
    {0x80, "\xc2\x80"},
    {0xE9, "\xc3\xa9"},
    {0x7FF, "\xdf\xbf"},
    {0x800, "\xe0\xa0\x80"},
    {0x20AC, "\xe2\x82\xac"},
    {0xFFFD, "\xef\xbf\xbd"},
    {0xFFFF, "\xef\xbf\xbf"},
    {0x10000, "\xf0\x90\x80\x80"},
    {0x1F600, "\xf0\x9f\x98\x80"},
    {0x10FFFF, "\xf4\x8f\xbf\xbf"},
};

TEST(utf8_encode_table)
{
    char out[UTF8_MAX + 1];
    size_t n;

    for (size_t i = 0; i < ARRAY_LEN(utf8_cases); i++) {
        memset(out, 0x55, sizeof(out));
        n = utf8_encode(utf8_cases[i].cp, out);
        CHECK_EQ_INT(n, strlen(utf8_cases[i].out));
        CHECK(memcmp(out, utf8_cases[i].out, n) == 0);
        CHECK_EQ_INT(out[n < UTF8_MAX ? n : UTF8_MAX], 0x55); /* no NUL */
    }
    /* U+0000 is one zero byte. */
    CHECK_EQ_INT(utf8_encode(0, out), 1);
    CHECK_EQ_INT(out[0], 0);
}

/* Writes len bytes of content to a new temp file; returns its path. */
static char *temp_file(const void *content, size_t len)
{
    char *path = xstrdup("/tmp/coffer-test-util-XXXXXX");
    int fd = mkstemp(path);

    COFFER_ASSERT(fd != -1);
    COFFER_ASSERT(write(fd, content, len) == (ssize_t)len);
    COFFER_ASSERT(close(fd) == 0);
    return path;
}

TEST(file_read_whole_file)
{
    static const char text[] = "line 1\nline 2\0after a NUL\n";
    char *path = temp_file(text, sizeof(text) - 1);
    struct file_error why;
    struct buf b;

    buf_init(&b, 1024);
    CHECK_EQ_INT(file_read(path, &b, &why), 0);
    CHECK_EQ_INT(b.len, sizeof(text) - 1);
    CHECK(b.ptr != NULL && memcmp(b.ptr, text, sizeof(text) - 1) == 0);
    CHECK_EQ_INT(b.ptr != NULL ? b.ptr[b.len] : 1, 0); /* NUL-terminated */
    /* It appends: a second read doubles the content. */
    CHECK_EQ_INT(file_read(path, &b, &why), 0);
    CHECK_EQ_INT(b.len, 2 * (sizeof(text) - 1));
    buf_release(&b);
    unlink(path);
    free(path);
}

TEST(file_read_empty_and_chunked)
{
    char *path = temp_file("", 0);
    struct file_error why;
    struct buf b;
    char *big;
    size_t n = 3 * 8192 + 17; /* more than one read chunk */

    buf_init(&b, 1024);
    CHECK_EQ_INT(file_read(path, &b, &why), 0);
    CHECK_EQ_INT(b.len, 0);
    buf_release(&b);
    unlink(path);
    free(path);

    big = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    path = temp_file(big, n);
    buf_init(&b, n);
    CHECK_EQ_INT(file_read(path, &b, &why), 0); /* exactly the ceiling */
    CHECK_EQ_INT(b.len, n);
    CHECK(b.ptr != NULL && memcmp(b.ptr, big, n) == 0);
    buf_release(&b);
    unlink(path);
    free(path);
    free(big);
}

TEST(file_read_too_big)
{
    char *path = temp_file("0123456789", 10);
    struct file_error why;
    struct buf b;

    buf_init(&b, 9);
    CHECK_EQ_INT(file_read(path, &b, &why), COFFER_ETOOBIG);
    CHECK_STREQ(why.op, "size");
    CHECK_EQ_INT(why.errnum, 0);
    CHECK(b.ptr == NULL && b.len == 0); /* released, as buf_append does */
    buf_release(&b);
    unlink(path);
    free(path);
}

TEST(time_deadline_normalised)
{
    struct timespec now = time_now(), d = time_deadline(1.75);
    double ahead = (double)(d.tv_sec - now.tv_sec) +
                   (double)(d.tv_nsec - now.tv_nsec) / 1e9;

    CHECK(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    CHECK(ahead > 1.7 && ahead < 1.9);
    d = time_deadline(-3);
    CHECK(d.tv_sec - now.tv_sec <= 1);
    CHECK(time_unix_ms() / 1000 - (int64_t)now.tv_sec <= 1);
}

TEST(file_read_errors)
{
    struct file_error why;
    struct buf b;

    buf_init(&b, 1024);
    CHECK_EQ_INT(file_read("/nonexistent/coffer/x", &b, &why),
                 COFFER_ENOTFOUND);
    CHECK_STREQ(why.op, "open");
    CHECK_EQ_INT(why.errnum, ENOENT);
    /* A directory opens but cannot be read. */
    CHECK_EQ_INT(file_read("/tmp", &b, &why), COFFER_EIO);
    CHECK_STREQ(why.op, "read");
    CHECK_EQ_INT(why.errnum, EISDIR);
    CHECK_EQ_INT(b.len, 0);
    buf_release(&b);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(duration_parse_table);
    RUN(duration_parse_refuses_garbage);
    RUN(duration_parse_negative_reason);
    RUN(duration_format_table);
    RUN(duration_format_truncates_safely);
    RUN(duration_round_trip);
    RUN(rfc3339_format);
    RUN(rfc3339_round_trip);
    RUN(rfc3339_parse_variants);
    RUN(rfc3339_parse_refuses_garbage);
    RUN(time_clocks_move);
    RUN(bool_parse_go_set);
    RUN(int64_parse_table);
    RUN(str_prefix_suffix);
    RUN(strvec_sort_uniq_contains);
    RUN(strvec_grows);
    RUN(hex_value_digits);
    RUN(utf8_encode_table);
    RUN(file_read_whole_file);
    RUN(file_read_empty_and_chunked);
    RUN(file_read_too_big);
    RUN(file_read_errors);
    RUN(time_deadline_normalised);
    return HARNESS_DONE();
}
