/*
 * buf.h - growable byte buffers with a ceiling (curl's dynbuf).
 *
 * Every buffer is created with a maximum size. An append that would pass it
 * releases the buffer and returns COFFER_ETOOBIG, so a caller cannot keep
 * using half-built data by mistake. The content is always NUL-terminated.
 * buf_release wipes the memory before freeing it: buffers routinely hold
 * request bodies and secrets.
 */
#ifndef COFFER_BUF_H
#define COFFER_BUF_H

#include <stddef.h>

struct buf {
    char *ptr;   /* NUL-terminated content, or NULL while empty */
    size_t len;  /* bytes used, not counting the NUL */
    size_t cap;  /* bytes allocated */
    size_t max;  /* ceiling for len */
};

#define BUF_MAX_DEFAULT ((size_t)64 * 1024 * 1024)

void buf_init(struct buf *b, size_t max);
/* Wipes and frees the content; the buffer is then as after buf_init. */
void buf_release(struct buf *b);
/* Empties the buffer but keeps its allocation. */
void buf_reset(struct buf *b);
/*
 * Makes room for n bytes up front (no more than the ceiling), so that a
 * writer whose usual size is known does not grow the buffer step by step.
 */
void buf_reserve(struct buf *b, size_t n);
/* 0 on success, COFFER_ETOOBIG (buffer released) past the ceiling. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_appendf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Takes the content out: the caller frees it; the buffer is left empty. */
char *buf_detach(struct buf *b, size_t *len);

#endif
