/*
 * buf.c - growable byte buffers with a ceiling.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common.h"

void buf_init(struct buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max == 0 ? BUF_MAX_DEFAULT : max;
}

void buf_release(struct buf *b)
{
    size_t max = b->max;

    if (b->ptr != NULL) {
        OPENSSL_cleanse(b->ptr, b->cap);
        free(b->ptr);
    }
    buf_init(b, max);
}

void buf_reset(struct buf *b)
{
    if (b->ptr != NULL) {
        OPENSSL_cleanse(b->ptr, b->len);
        b->ptr[0] = '\0';
    }
    b->len = 0;
}

/*
 * Grows to hold `need` bytes plus the NUL. Growth copies by hand instead of
 * realloc so that the old block can be wiped: it may hold a secret.
 */
static void grow(struct buf *b, size_t need)
{
    size_t cap = b->cap == 0 ? 64 : b->cap;
    char *p;

    while (cap < need + 1)
        cap *= 2;
    p = xmalloc(cap);
    if (b->ptr != NULL) {
        memcpy(p, b->ptr, b->len + 1);
        OPENSSL_cleanse(b->ptr, b->cap);
        free(b->ptr);
    } else {
        p[0] = '\0';
    }
    b->ptr = p;
    b->cap = cap;
}

void buf_reserve(struct buf *b, size_t n)
{
    if (n <= b->max && (b->ptr == NULL || n + 1 > b->cap))
        grow(b, n);
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    if (len > b->max || b->len > b->max - len) {
        buf_release(b);
        return COFFER_ETOOBIG;
    }
    if (b->ptr == NULL || b->len + len + 1 > b->cap)
        grow(b, b->len + len);
    if (len > 0)
        memcpy(b->ptr + b->len, data, len);
    b->len += len;
    b->ptr[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
    char small[256];
    char *big = NULL;
    va_list ap;
    int n;
    int rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return COFFER_EINVAL;
    if ((size_t)n < sizeof(small)) {
        rc = buf_append(b, small, (size_t)n);
        OPENSSL_cleanse(small, sizeof(small));
        return rc;
    }
    big = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rc = buf_append(b, big, (size_t)n);
    secure_free(big, (size_t)n + 1);
    return rc;
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p = b->ptr;

    if (p == NULL)
        p = xstrdup("");
    if (len != NULL)
        *len = b->len;
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
