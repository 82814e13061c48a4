/*
 * common.h - the few types and helpers every subsystem shares.
 *
 * Owns: the error vocabulary (enum coffer_err), the fixed-size error buffer
 * used to report failures in words, the aborting allocators, and
 * COFFER_ASSERT. Nothing here allocates on an error path.
 *
 * Blanket ownership rule for the whole tree: a function that returns a
 * `char *` or a pointer to a struct documents who frees it; a `const`
 * pointer argument is borrowed for the duration of the call only.
 */
#ifndef COFFER_COMMON_H
#define COFFER_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFFER_VERSION "0.1.0"
/* The Vault release whose API we follow; clients read it from sys/health. */
#define COFFER_VAULT_COMPAT_VERSION "1.14.9"

enum coffer_err {
    COFFER_OK = 0,
    COFFER_ENOMEM = -1,
    COFFER_EINVAL = -2,    /* bad input from a client or a caller */
    COFFER_ENOTFOUND = -3,
    COFFER_EEXIST = -4,
    COFFER_EIO = -5,       /* storage or network failed */
    COFFER_ETOOBIG = -6,   /* a buffer ceiling was reached */
    COFFER_EPERM = -7,
    COFFER_ESEALED = -8,
    COFFER_EINTERNAL = -9,
    COFFER_EUNSUPPORTED = -10,
    COFFER_ESTANDBY = -11, /* a write on a node that is not (or no longer) active */
};

/* Returns a static English description of an enum coffer_err value. */
const char *coffer_strerror(int err);

/*
 * A fixed-size message for the caller. Filling it never allocates, so an
 * out-of-memory path can still report. Messages never contain secrets.
 */
struct errbuf {
    char msg[256];
};

void errbuf_set(struct errbuf *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void errbuf_clear(struct errbuf *e);

/* Allocators that abort the process on out-of-memory (git's xmalloc). */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Overwrites then frees memory that held a secret. NULL is fine. */
void secure_free(void *p, size_t n);
/* Like secure_free for a NUL-terminated string. */
void secure_free_str(char *s);

/* Invariant checks stay on in release builds (Redis serverAssert). */
#define COFFER_ASSERT(cond)                                                  \
    do {                                                                     \
        if (!(cond))                                                         \
            coffer_assert_fail(#cond, __FILE__, __LINE__);                   \
    } while (0)
void coffer_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
