/*
 * test_ratelimit.c - the per-address login token buckets: burst, refill,
 * independence of keys, the size cap and the disabled limiter.
 */
#include "../../src/ratelimit.c"

#include "harness.h"

TEST(burst_then_refill)
{
    struct ratelimit *rl = ratelimit_new(1.0, 3.0, 16);

    for (int i = 0; i < 3; i++) {
        CHECK(ratelimit_check(rl, "10.0.0.1", 100.0));
        ratelimit_charge(rl, "10.0.0.1", 100.0);
    }
    CHECK(!ratelimit_check(rl, "10.0.0.1", 100.0));
    CHECK(!ratelimit_check(rl, "10.0.0.1", 100.5));
    CHECK(ratelimit_check(rl, "10.0.0.1", 101.01)); /* one token back */
    ratelimit_charge(rl, "10.0.0.1", 101.01);
    CHECK(!ratelimit_check(rl, "10.0.0.1", 101.02));
    CHECK(ratelimit_check(rl, "10.0.0.1", 1000.0)); /* capped at burst */
    for (int i = 0; i < 3; i++)
        ratelimit_charge(rl, "10.0.0.1", 1000.0);
    CHECK(!ratelimit_check(rl, "10.0.0.1", 1000.0));
    ratelimit_free(rl);
}

TEST(keys_are_independent)
{
    struct ratelimit *rl = ratelimit_new(0.1, 1.0, 16);

    ratelimit_charge(rl, "a", 0.0);
    CHECK(!ratelimit_check(rl, "a", 0.0));
    CHECK(ratelimit_check(rl, "b", 0.0));
    CHECK(ratelimit_check(rl, "", 0.0));
    CHECK_EQ_INT(ratelimit_size(rl), 1);
    ratelimit_free(rl);
}

TEST(table_is_capped)
{
    struct ratelimit *rl = ratelimit_new(0.001, 2.0, 8);
    char key[32];

    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "192.0.2.%d", i);
        ratelimit_charge(rl, key, (double)i);
    }
    CHECK(ratelimit_size(rl) <= 8);
    /* The most recent offender is still tracked. */
    ratelimit_charge(rl, "192.0.2.99", 100.0);
    CHECK(!ratelimit_check(rl, "192.0.2.99", 100.0));
    ratelimit_free(rl);
}

TEST(disabled_and_null)
{
    struct ratelimit *rl = ratelimit_new(0.0, 1.0, 8);

    ratelimit_charge(rl, "x", 0.0);
    ratelimit_charge(rl, "x", 0.0);
    CHECK(ratelimit_check(rl, "x", 0.0));
    CHECK(ratelimit_check(NULL, "x", 0.0));
    ratelimit_charge(NULL, "x", 0.0);
    ratelimit_free(rl);
    ratelimit_free(NULL);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(burst_then_refill);
    RUN(keys_are_independent);
    RUN(table_is_capped);
    RUN(disabled_and_null);
    return HARNESS_DONE();
}
