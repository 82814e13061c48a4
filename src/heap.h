/*
 * heap.h - a binary min-heap of (when, owned string) pairs.
 *
 * The expiration manager keeps one entry per scheduled lease: 16 bytes in
 * the array plus the id string. Not thread-safe; the owner locks.
 */
#ifndef COFFER_HEAP_H
#define COFFER_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct heap_entry {
    int64_t when; /* milliseconds since the epoch */
    char *id;     /* owned by the heap while the entry is in it */
};

struct heap {
    struct heap_entry *v;
    size_t n;
    size_t cap;
};

void heap_init(struct heap *h);
/* Frees every id and the array. */
void heap_release(struct heap *h);
/* Adds an entry; takes ownership of id. */
void heap_push(struct heap *h, int64_t when, char *id);
/* The earliest entry, or NULL when empty. Borrowed until the next call. */
const struct heap_entry *heap_peek(const struct heap *h);
/* Removes the earliest entry; the caller owns the returned id. */
char *heap_pop(struct heap *h, int64_t *when);

#endif
