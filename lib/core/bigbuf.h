/* bigbuf.h: allocation of large pixel buffers (internal, not installed):
 * buffers of whole images and bands asked to be backed by transparent huge
 * pages, so that first touching them costs one page fault per 2 MiB rather
 * than per 4 KiB. Freed with free(). */
#ifndef SK_BIGBUF_H
#define SK_BIGBUF_H

#include <stddef.h>

/* n elements of el bytes, uninitialised; NULL when out of memory or n * el
 * overflows. Below 1 MiB this is plain malloc. */
void *sk_big_malloc(size_t n, size_t el);

/* The same, zeroed. */
void *sk_big_calloc(size_t n, size_t el);

#endif
