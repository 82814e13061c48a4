/*
 * test_ratelimit.c - the per-address login token buckets: burst, refill,
 * refunds, independence of keys, the size cap, the disabled limiter, and
 * that concurrent takers never get more tokens than the bucket holds.
 */
#include "../../src/ratelimit.c"

#include "harness.h"

TEST(burst_then_refill)
{
    struct ratelimit *rl = ratelimit_new(1.0, 3.0, 16);

    for (int i = 0; i < 3; i++)
        CHECK(ratelimit_take(rl, "10.0.0.1", 100.0));
    CHECK(!ratelimit_take(rl, "10.0.0.1", 100.0));
    CHECK(!ratelimit_take(rl, "10.0.0.1", 100.5));
    CHECK(ratelimit_take(rl, "10.0.0.1", 101.01)); /* one token back */
    CHECK(!ratelimit_take(rl, "10.0.0.1", 101.02));
    /* Refilled, but capped at burst. */
    for (int i = 0; i < 3; i++)
        CHECK(ratelimit_take(rl, "10.0.0.1", 1000.0));
    CHECK(!ratelimit_take(rl, "10.0.0.1", 1000.0));
    ratelimit_free(rl);
}

TEST(refund_gives_back_one_token)
{
    struct ratelimit *rl = ratelimit_new(0.001, 2.0, 16);

    CHECK(ratelimit_take(rl, "a", 0.0));
    CHECK(ratelimit_take(rl, "a", 0.0));
    CHECK(!ratelimit_take(rl, "a", 0.0));
    ratelimit_refund(rl, "a", 0.0);
    CHECK(ratelimit_take(rl, "a", 0.0));
    CHECK(!ratelimit_take(rl, "a", 0.0));
    /* Refunds never fill a bucket past burst. */
    for (int i = 0; i < 10; i++)
        ratelimit_refund(rl, "a", 0.0);
    CHECK(ratelimit_take(rl, "a", 0.0));
    CHECK(ratelimit_take(rl, "a", 0.0));
    CHECK(!ratelimit_take(rl, "a", 0.0));
    /* A refund for an unknown key creates nothing. */
    ratelimit_refund(rl, "never-seen", 0.0);
    CHECK_EQ_INT(ratelimit_size(rl), 1);
    ratelimit_free(rl);
}

TEST(keys_are_independent)
{
    struct ratelimit *rl = ratelimit_new(0.1, 1.0, 16);

    CHECK(ratelimit_take(rl, "a", 0.0));
    CHECK(!ratelimit_take(rl, "a", 0.0));
    CHECK(ratelimit_take(rl, "b", 0.0));
    CHECK(ratelimit_take(rl, "", 0.0));
    CHECK_EQ_INT(ratelimit_size(rl), 3);
    ratelimit_free(rl);
}

TEST(table_is_capped)
{
    struct ratelimit *rl = ratelimit_new(0.001, 2.0, 8);
    char key[32];

    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "192.0.2.%d", i);
        CHECK(ratelimit_take(rl, key, (double)i));
    }
    CHECK(ratelimit_size(rl) <= 8);
    /* The most recent offender is still tracked. */
    CHECK(ratelimit_take(rl, "192.0.2.99", 100.0));
    CHECK(!ratelimit_take(rl, "192.0.2.99", 100.0));
    ratelimit_free(rl);
}

TEST(disabled_and_null)
{
    struct ratelimit *rl = ratelimit_new(0.0, 1.0, 8);

    for (int i = 0; i < 5; i++)
        CHECK(ratelimit_take(rl, "x", 0.0));
    ratelimit_refund(rl, "x", 0.0);
    CHECK(ratelimit_take(NULL, "x", 0.0));
    ratelimit_refund(NULL, "x", 0.0);
    ratelimit_free(rl);
    ratelimit_free(NULL);
}

/* ---- concurrency: 64 threads race for a burst of 10 ------------------ */

#define RACERS 64
#define ROUNDS 200

struct racer {
    struct ratelimit *rl;
    pthread_barrier_t *start;
    bool refund; /* a "successful login" gives its token back */
    int granted;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->start);
    /* The time never moves, so no token is refilled during the race. */
    if (ratelimit_take(r->rl, "198.51.100.7", 5.0)) {
        r->granted = 1;
        if (r->refund)
            ratelimit_refund(r->rl, "198.51.100.7", 5.0);
    }
    return NULL;
}

/* Runs RACERS threads once; returns how many were granted a token. */
static int race_once(bool refund)
{
    struct ratelimit *rl = ratelimit_new(0.5, 10.0, 16);
    pthread_barrier_t start;
    pthread_t th[RACERS];
    struct racer r[RACERS];
    int granted = 0;

    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){.rl = rl, .start = &start, .refund = refund};
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        granted += r[i].granted;
    }
    pthread_barrier_destroy(&start);
    ratelimit_free(rl);
    return granted;
}

TEST(concurrent_failures_never_exceed_burst)
{
    for (int round = 0; round < ROUNDS; round++) {
        int granted = race_once(false);
        CHECK_EQ_INT(granted, 10);
        if (granted != 10)
            break;
    }
}

TEST(concurrent_successes_refund)
{
    /* Refunds interleave with takes: at least the burst gets through. */
    for (int round = 0; round < ROUNDS / 4; round++)
        CHECK(race_once(true) >= 10);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(burst_then_refill);
    RUN(refund_gives_back_one_token);
    RUN(keys_are_independent);
    RUN(table_is_capped);
    RUN(disabled_and_null);
    RUN(concurrent_failures_never_exceed_burst);
    RUN(concurrent_successes_refund);
    return HARNESS_DONE();
}
