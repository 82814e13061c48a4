/*
 * ratelimit.h - token buckets keyed by a short string (a client address).
 *
 * Each key owns a bucket of `burst` tokens refilled at `rate` tokens per
 * second. Login attempts look (ratelimit_check) before they run and pay
 * (ratelimit_charge) only when they fail, so a legitimate user is never
 * limited by their own successes while a password guesser is. The table
 * holds at most max_keys buckets; past that, full buckets are dropped
 * first, then the least recently touched. Thread-safe; never blocks on
 * anything but its own mutex.
 */
#ifndef COFFER_RATELIMIT_H
#define COFFER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct ratelimit;

/* A new limiter (free with ratelimit_free). rate <= 0 disables it. */
struct ratelimit *ratelimit_new(double rate, double burst, size_t max_keys);
void ratelimit_free(struct ratelimit *rl);

/* True if key has at least one token at time now (seconds, monotonic). */
bool ratelimit_check(struct ratelimit *rl, const char *key, double now);

/* Takes one token from key's bucket (it may go down to zero). */
void ratelimit_charge(struct ratelimit *rl, const char *key, double now);

/* Buckets currently tracked (tests). */
size_t ratelimit_size(struct ratelimit *rl);

#endif
