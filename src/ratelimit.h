/*
 * ratelimit.h - token buckets keyed by a short string (a client address).
 *
 * Each key owns a bucket of `burst` tokens refilled at `rate` tokens per
 * second. A login attempt takes a token before it runs (ratelimit_take,
 * which checks and pays in one step, so concurrent attempts can never
 * spend more than the bucket holds) and gets it back when it succeeds
 * (ratelimit_refund): a legitimate user is not limited by their own
 * successes, a password guesser is. The table holds at most max_keys
 * buckets; past that, full buckets are dropped first, then the least
 * recently touched. Thread-safe; never blocks on anything but its own
 * mutex.
 */
#ifndef COFFER_RATELIMIT_H
#define COFFER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct ratelimit;

/* A new limiter (free with ratelimit_free). rate <= 0 disables it. */
struct ratelimit *ratelimit_new(double rate, double burst, size_t max_keys);
void ratelimit_free(struct ratelimit *rl);

/*
 * Takes one token from key's bucket (created full) at time now (seconds,
 * monotonic). True if there was one; false, and nothing taken, when the
 * bucket is empty. Always true for a NULL or disabled limiter.
 */
bool ratelimit_take(struct ratelimit *rl, const char *key, double now);

/* Gives back a token ratelimit_take took (never above burst). */
void ratelimit_refund(struct ratelimit *rl, const char *key, double now);

/* Buckets currently tracked (tests). */
size_t ratelimit_size(struct ratelimit *rl);

#endif
