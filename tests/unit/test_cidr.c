/*
 * test_cidr.c - CIDR membership (coffer.net.cidr_match), table-driven.
 */
#include "../../src/cidr.c"

#include "harness.h"

static const struct {
    const char *cidr, *addr;
    int rc;
    bool match;
} cases[] = {
    {"127.0.0.0/8", "127.0.0.1", 0, true},
    {"127.0.0.0/8", "128.0.0.1", 0, false},
    {"10.1.2.3", "10.1.2.3", 0, true},
    {"10.1.2.3/32", "10.1.2.4", 0, false},
    {"0.0.0.0/0", "203.0.113.9", 0, true},
    {"192.168.1.0/23", "192.168.0.255", 0, true},
    {"192.168.1.0/23", "192.168.2.0", 0, false},
    {"10.0.0.0/9", "10.127.255.255", 0, true},
    {"10.0.0.0/9", "10.128.0.0", 0, false},
    {"::1/128", "::1", 0, true},
    {"2001:db8::/32", "2001:db8:ffff::1", 0, true},
    {"2001:db8::/32", "2001:db9::1", 0, false},
    {"127.0.0.0/8", "::ffff:127.0.0.1", 0, true},   /* mapped */
    {"127.0.0.0/8", "::1", 0, false},                /* v6 vs v4 block */
    {"::/0", "10.0.0.1", 0, false},
    {"10.0.0.0/33", "10.0.0.1", COFFER_EINVAL, false},
    {"10.0.0.0/", "10.0.0.1", COFFER_EINVAL, false},
    {"10.0.0.0/8x", "10.0.0.1", COFFER_EINVAL, false},
    {"not-an-ip/8", "10.0.0.1", COFFER_EINVAL, false},
    {"10.0.0.0/8", "10.0.0", COFFER_EINVAL, false},
    {"10.0.0.0/8", "", COFFER_EINVAL, false},
};

TEST(table)
{
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        bool m = true;
        int rc = cidr_match(cases[i].cidr, cases[i].addr, &m);
        if (rc != cases[i].rc || m != cases[i].match)
            fprintf(stderr, "  case %zu: %s in %s\n", i, cases[i].addr,
                    cases[i].cidr);
        CHECK_EQ_INT(rc, cases[i].rc);
        CHECK(m == cases[i].match);
    }
}

TEST(null_arguments)
{
    bool m = true;

    CHECK_EQ_INT(cidr_match(NULL, "1.2.3.4", &m), COFFER_EINVAL);
    CHECK(!m);
    CHECK_EQ_INT(cidr_match("1.2.3.4", NULL, &m), COFFER_EINVAL);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(table);
    RUN(null_arguments);
    return HARNESS_DONE();
}
