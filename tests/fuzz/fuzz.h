/*
 * fuzz.h - what every libFuzzer harness under tests/fuzz/ shares.
 *
 * A harness is tests/fuzz/fuzz_<name>.c: it defines LLVMFuzzerTestOneInput
 * and may #include the src/ .c file whose static functions it needs
 * (the Makefile then links every other object, as for unit tests).
 * Built with clang -fsanitize=fuzzer,address,undefined; see README.md.
 *
 * FUZZ_CHECK is the harness's own oracle: a broken invariant aborts, so
 * libFuzzer records the input as a crash like any sanitizer report.
 */
#ifndef COFFER_FUZZ_H
#define COFFER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/log.h"

#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz: invariant failed: %s (%s:%d)\n", #cond,   \
                    __FILE__, __LINE__);                                     \
            abort();                                                         \
        }                                                                    \
    } while (0)

/*
 * Keeps Coffer's log to errors: a harness runs millions of inputs. (Long
 * runs also pass -close_fd_mask=2, which discards the rest of the target's
 * stderr while libFuzzer and the sanitizers keep reporting.)
 */
static inline void fuzz_quiet(void)
{
    log_set_level(LOG_LEVEL_ERROR);
}

/*
 * A NUL-terminated copy of data[0..size) in a buffer of exactly size + 1
 * bytes, so ASan sees a read past the end. Embedded NULs stay: C-string
 * code simply stops at the first one. The caller frees it.
 */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
