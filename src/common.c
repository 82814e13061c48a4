/*
 * common.c - error strings, error buffers, aborting allocators.
 */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

const char *coffer_strerror(int err)
{
    switch (err) {
    case COFFER_OK: return "success";
    case COFFER_ENOMEM: return "out of memory";
    case COFFER_EINVAL: return "invalid argument";
    case COFFER_ENOTFOUND: return "not found";
    case COFFER_EEXIST: return "already exists";
    case COFFER_EIO: return "input/output error";
    case COFFER_ETOOBIG: return "too large";
    case COFFER_EPERM: return "permission denied";
    case COFFER_ESEALED: return "Vault is sealed";
    case COFFER_EINTERNAL: return "internal error";
    case COFFER_EUNSUPPORTED: return "unsupported operation";
    case COFFER_ESTANDBY: return "this node is not the active node";
    default: return "unknown error";
    }
}

void errbuf_set(struct errbuf *e, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

void errbuf_clear(struct errbuf *e)
{
    if (e != NULL)
        e->msg[0] = '\0';
}

static void out_of_memory(size_t n)
{
    fprintf(stderr, "coffer: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);

    if (p == NULL)
        out_of_memory(n);
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);

    if (p == NULL)
        out_of_memory(nmemb * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n == 0 ? 1 : n);

    if (q == NULL)
        out_of_memory(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void secure_free(void *p, size_t n)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, n);
    free(p);
}

void secure_free_str(char *s)
{
    if (s != NULL)
        secure_free(s, strlen(s));
}

void coffer_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "coffer: assertion failed: %s (%s:%d)\n", expr, file,
            line);
    abort();
}
