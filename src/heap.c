/*
 * heap.c - binary min-heap keyed by time (see heap.h).
 */
#include "heap.h"

#include <stdlib.h>

#include "common.h"

void heap_init(struct heap *h)
{
    h->v = NULL;
    h->n = 0;
    h->cap = 0;
}

void heap_release(struct heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i].id);
    free(h->v);
    heap_init(h);
}

static void swap(struct heap_entry *a, struct heap_entry *b)
{
    struct heap_entry t = *a;

    *a = *b;
    *b = t;
}

static void sift_up(struct heap *h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent].when <= h->v[i].when)
            break;
        swap(&h->v[parent], &h->v[i]);
        i = parent;
    }
}

static void sift_down(struct heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;
        if (l < h->n && h->v[l].when < h->v[min].when)
            min = l;
        if (r < h->n && h->v[r].when < h->v[min].when)
            min = r;
        if (min == i)
            return;
        swap(&h->v[min], &h->v[i]);
        i = min;
    }
}

void heap_push(struct heap *h, int64_t when, char *id)
{
    if (h->n == h->cap) {
        h->cap = h->cap == 0 ? 64 : h->cap * 2;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    h->v[h->n].when = when;
    h->v[h->n].id = id;
    sift_up(h, h->n++);
}

const struct heap_entry *heap_peek(const struct heap *h)
{
    return h->n > 0 ? &h->v[0] : NULL;
}

char *heap_pop(struct heap *h, int64_t *when)
{
    char *id;

    if (h->n == 0)
        return NULL;
    id = h->v[0].id;
    if (when != NULL)
        *when = h->v[0].when;
    h->v[0] = h->v[--h->n];
    if (h->n > 0)
        sift_down(h, 0);
    return id;
}
