/*
 * harness.h - a tiny unit-test harness (libuv TEST_IMPL / h2o t/00unit style).
 *
 * A test binary is one translation unit: it includes the .c file under test
 * (so static functions are reachable), this header, and defines tests:
 *
 *     #include "../../src/util.c"
 *     #include "harness.h"
 *
 *     TEST(duration_minutes)
 *     {
 *         int64_t s = 0;
 *         CHECK_EQ_INT(duration_parse("5m", &s, NULL), 0);
 *         CHECK_EQ_INT(s, 300);
 *     }
 *
 *     int main(int argc, char **argv)
 *     {
 *         HARNESS_INIT(argc, argv);
 *         RUN(duration_minutes);
 *         return HARNESS_DONE();
 *     }
 *
 * CHECK* macros record a failure with file:line and carry on, so one run
 * shows every broken expectation. A test passes when none of its checks
 * failed. The last line a binary prints is exactly "N passed, N failed"
 * (counting tests); tests/run-unit.sh sums those lines. The exit status is
 * 0 only when nothing failed.
 *
 * Running "test_x name1 name2" runs only the named tests.
 */
#ifndef COFFER_TEST_HARNESS_H
#define COFFER_TEST_HARNESS_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_passed;
static int harness_failed;
static int harness_cur_failures; /* failed checks in the running test */
static int harness_argc;
static char **harness_argv;

#define TEST(name) static void test_##name(void)

#define HARNESS_INIT(argc, argv)                                             \
    do {                                                                     \
        harness_argc = (argc);                                               \
        harness_argv = (argv);                                               \
        setvbuf(stdout, NULL, _IOLBF, 0);                                    \
    } while (0)

#define RUN(name) harness_run(#name, test_##name)

#define HARNESS_DONE() harness_done()

static void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    harness_cur_failures++;
    fprintf(stdout, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static int harness_selected(const char *name)
{
    int i;

    if (harness_argc <= 1)
        return 1;
    for (i = 1; i < harness_argc; i++) {
        if (strcmp(harness_argv[i], name) == 0)
            return 1;
    }
    return 0;
}

static void harness_run(const char *name, void (*fn)(void))
{
    if (!harness_selected(name))
        return;
    harness_cur_failures = 0;
    fn();
    if (harness_cur_failures == 0) {
        harness_passed++;
        fprintf(stdout, "ok   %s\n", name);
    } else {
        harness_failed++;
        fprintf(stdout, "FAIL %s (%d failed check%s)\n", name,
                harness_cur_failures, harness_cur_failures == 1 ? "" : "s");
    }
    fflush(stdout);
}

static int harness_done(void)
{
    fprintf(stdout, "%d passed, %d failed\n", harness_passed, harness_failed);
    fflush(stdout);
    return harness_failed == 0 ? 0 : 1;
}

/* Records a failure unless cond is true. */
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond))                                                         \
            harness_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);     \
    } while (0)

/* Compares two integers (any width, signed) and shows both values. */
#define CHECK_EQ_INT(a, b)                                                   \
    do {                                                                     \
        long long harness_a_ = (long long)(a);                               \
        long long harness_b_ = (long long)(b);                               \
        if (harness_a_ != harness_b_)                                        \
            harness_fail(__FILE__, __LINE__,                                 \
                         "CHECK_EQ_INT(%s, %s) failed: %lld != %lld", #a,    \
                         #b, harness_a_, harness_b_);                        \
    } while (0)

/* Compares two C strings; NULL equals only NULL. */
#define CHECK_STREQ(a, b)                                                    \
    do {                                                                     \
        const char *harness_sa_ = (a);                                       \
        const char *harness_sb_ = (b);                                       \
        int harness_eq_ = (harness_sa_ == NULL || harness_sb_ == NULL)       \
                              ? harness_sa_ == harness_sb_                   \
                              : strcmp(harness_sa_, harness_sb_) == 0;       \
        if (!harness_eq_)                                                    \
            harness_fail(__FILE__, __LINE__,                                 \
                         "CHECK_STREQ(%s, %s) failed: \"%s\" != \"%s\"", #a, \
                         #b, harness_sa_ ? harness_sa_ : "(null)",           \
                         harness_sb_ ? harness_sb_ : "(null)");              \
    } while (0)

/* Compares n bytes of two buffers. */
#define CHECK_MEMEQ(a, b, n)                                                 \
    do {                                                                     \
        if (memcmp((a), (b), (n)) != 0)                                      \
            harness_fail(__FILE__, __LINE__, "CHECK_MEMEQ(%s, %s, %s) failed", \
                         #a, #b, #n);                                        \
    } while (0)

#endif
