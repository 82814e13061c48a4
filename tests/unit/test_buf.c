/*
 * test_buf.c - growable buffers with a ceiling.
 *
 * The ceiling is a security property (a client must not be able to make the
 * server buffer without bound), so the edges are tested exactly: max bytes
 * fit, max+1 do not, and a refused append leaves no half-built data behind.
 */
#include "../../src/buf.c"

#include "harness.h"

TEST(init_is_empty)
{
    struct buf b;

    buf_init(&b, 100);
    CHECK(b.ptr == NULL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(b.max, 100);
    buf_release(&b);

    buf_init(&b, 0); /* 0 means the default ceiling */
    CHECK_EQ_INT(b.max, BUF_MAX_DEFAULT);
    buf_release(&b);
}

TEST(append_keeps_nul_and_grows)
{
    struct buf b;
    char chunk[100];

    buf_init(&b, 1 << 20);
    CHECK_EQ_INT(buf_append_str(&b, "hello"), 0);
    CHECK_EQ_INT(b.len, 5);
    CHECK_STREQ(b.ptr, "hello");
    CHECK_EQ_INT(buf_append(&b, ", world", 7), 0);
    CHECK_STREQ(b.ptr, "hello, world");
    CHECK(b.cap > b.len);

    memset(chunk, 'a', sizeof(chunk));
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(buf_append(&b, chunk, sizeof(chunk)), 0);
    CHECK_EQ_INT(b.len, 12 + 100 * 100);
    CHECK(b.ptr[b.len] == '\0');
    CHECK(b.ptr[12] == 'a' && b.ptr[b.len - 1] == 'a');
    buf_release(&b);
}

TEST(append_binary_with_nuls)
{
    struct buf b;
    static const char data[] = {'a', '\0', 'b', '\0'};

    buf_init(&b, 64);
    CHECK_EQ_INT(buf_append(&b, data, sizeof(data)), 0);
    CHECK_EQ_INT(b.len, 4);
    CHECK_MEMEQ(b.ptr, data, 4);
    CHECK(b.ptr[4] == '\0');
    buf_release(&b);
}

TEST(append_zero_bytes)
{
    struct buf b;

    buf_init(&b, 10);
    CHECK_EQ_INT(buf_append(&b, "", 0), 0);
    CHECK_EQ_INT(b.len, 0);
    CHECK(b.ptr == NULL || b.ptr[0] == '\0');
    buf_release(&b);
}

TEST(ceiling_exact_fits)
{
    struct buf b;

    buf_init(&b, 10);
    CHECK_EQ_INT(buf_append(&b, "0123456789", 10), 0);
    CHECK_EQ_INT(b.len, 10);
    CHECK_STREQ(b.ptr, "0123456789");
    buf_release(&b);
}

TEST(ceiling_one_over_releases)
{
    struct buf b;

    buf_init(&b, 10);
    CHECK_EQ_INT(buf_append(&b, "01234", 5), 0);
    CHECK_EQ_INT(buf_append(&b, "567890", 6), COFFER_ETOOBIG);
    /* Released: no half-built content, and still usable as an empty buffer. */
    CHECK(b.ptr == NULL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(b.cap, 0);
    CHECK_EQ_INT(b.max, 10);
    CHECK_EQ_INT(buf_append_str(&b, "again"), 0);
    CHECK_STREQ(b.ptr, "again");
    buf_release(&b);
}

TEST(ceiling_huge_len_no_overflow)
{
    struct buf b;

    buf_init(&b, 16);
    CHECK_EQ_INT(buf_append(&b, "x", 1), 0);
    CHECK_EQ_INT(buf_append(&b, "y", SIZE_MAX), COFFER_ETOOBIG);
    CHECK(b.ptr == NULL);
    CHECK_EQ_INT(b.len, 0);
    buf_release(&b);
}

TEST(appendf_formats)
{
    struct buf b;

    buf_init(&b, 1024);
    CHECK_EQ_INT(buf_appendf(&b, "%s=%d", "n", 42), 0);
    CHECK_EQ_INT(buf_appendf(&b, ",%05.1f", 2.5), 0);
    CHECK_EQ_INT(buf_appendf(&b, "%s", ""), 0);
    CHECK_STREQ(b.ptr, "n=42,002.5");
    CHECK_EQ_INT(b.len, strlen("n=42,002.5"));
    buf_release(&b);
}

TEST(appendf_long_output)
{
    struct buf b;
    char big[1000];

    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_init(&b, 4096);
    CHECK_EQ_INT(buf_appendf(&b, "<%s>", big), 0);
    CHECK_EQ_INT(b.len, 1001);
    CHECK(b.ptr[0] == '<' && b.ptr[1000] == '>' && b.ptr[1001] == '\0');
    CHECK(b.ptr[500] == 'z');
    buf_release(&b);
}

TEST(appendf_past_ceiling)
{
    struct buf b;
    char big[600];

    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_init(&b, 100);
    CHECK_EQ_INT(buf_appendf(&b, "%d", 7), 0);
    CHECK_EQ_INT(buf_appendf(&b, "%s", big), COFFER_ETOOBIG);
    CHECK(b.ptr == NULL);
    CHECK_EQ_INT(b.len, 0);
    /* The small-path ceiling too. */
    buf_init(&b, 4);
    CHECK_EQ_INT(buf_appendf(&b, "%s", "12345"), COFFER_ETOOBIG);
    CHECK(b.ptr == NULL);
    buf_release(&b);
}

TEST(reset_keeps_allocation)
{
    struct buf b;
    char *before;

    buf_init(&b, 100);
    CHECK_EQ_INT(buf_append_str(&b, "secret"), 0);
    before = b.ptr;
    buf_reset(&b);
    CHECK_EQ_INT(b.len, 0);
    CHECK(b.ptr == before);
    CHECK_STREQ(b.ptr, "");
    CHECK_EQ_INT(buf_append_str(&b, "ab"), 0);
    CHECK_STREQ(b.ptr, "ab");
    buf_release(&b);
}

TEST(detach_transfers_ownership)
{
    struct buf b;
    size_t len = 0;
    char *s;

    buf_init(&b, 100);
    CHECK_EQ_INT(buf_append_str(&b, "payload"), 0);
    s = buf_detach(&b, &len);
    CHECK_STREQ(s, "payload");
    CHECK_EQ_INT(len, 7);
    CHECK(b.ptr == NULL);
    CHECK_EQ_INT(b.len, 0);
    free(s);

    /* An empty buffer detaches to an empty, freeable string. */
    s = buf_detach(&b, &len);
    CHECK(s != NULL);
    CHECK_STREQ(s, "");
    CHECK_EQ_INT(len, 0);
    free(s);
    buf_release(&b);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(init_is_empty);
    RUN(append_keeps_nul_and_grows);
    RUN(append_binary_with_nuls);
    RUN(append_zero_bytes);
    RUN(ceiling_exact_fits);
    RUN(ceiling_one_over_releases);
    RUN(ceiling_huge_len_no_overflow);
    RUN(appendf_formats);
    RUN(appendf_long_output);
    RUN(appendf_past_ceiling);
    RUN(reset_keeps_allocation);
    RUN(detach_transfers_ownership);
    return HARNESS_DONE();
}
