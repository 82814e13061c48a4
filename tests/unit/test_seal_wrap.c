/*
 * test_seal_wrap.c - the key id / label check both auto-unseal seals use:
 * length bounds and every byte that could break the JSON, the log or the
 * wrapping's associated data.
 */
#include "../../src/seal_wrap.c"

#include "harness.h"

TEST(names_within_bounds_pass)
{
    struct errbuf err;
    char longest[65];

    memset(longest, 'k', 64);
    longest[64] = '\0';
    CHECK_EQ_INT(seal_wrap_check_name("key", "k", 64, &err), 0);
    CHECK_EQ_INT(seal_wrap_check_name("key", "2026-12 key/é ~", 64, &err),
                 0);
    CHECK_EQ_INT(seal_wrap_check_name("key", longest, 64, &err), 0);
}

TEST(empty_missing_and_long_refused)
{
    struct errbuf err;
    char toolong[66];

    memset(toolong, 'k', 65);
    toolong[65] = '\0';
    CHECK_EQ_INT(seal_wrap_check_name("key_label", NULL, 64, &err),
                 COFFER_EINVAL);
    CHECK(strstr(err.msg, "key_label is required (1 to 64") != NULL);
    CHECK_EQ_INT(seal_wrap_check_name("key_label", "", 64, &err),
                 COFFER_EINVAL);
    CHECK_EQ_INT(seal_wrap_check_name("key_label", toolong, 64, &err),
                 COFFER_EINVAL);
}

TEST(every_unsafe_byte_refused)
{
    struct errbuf err;
    char s[4] = "a?b";

    for (int c = 1; c < 256; c++) {
        bool unsafe = c < 0x20 || c == 0x7f || c == '"' || c == '\\';

        s[1] = (char)c;
        CHECK_EQ_INT(seal_wrap_check_name("current_key_id", s, 64, &err),
                     unsafe ? COFFER_EINVAL : 0);
        if (unsafe)
            CHECK(strstr(err.msg, "current_key_id has a control") != NULL);
    }
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(names_within_bounds_pass);
    RUN(empty_missing_and_long_refused);
    RUN(every_unsafe_byte_refused);
    return HARNESS_DONE();
}
