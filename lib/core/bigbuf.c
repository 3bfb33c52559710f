/* bigbuf.c: large pixel buffers aligned to and advised for transparent huge pages. */
#include "core/bigbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* 2 MiB: the x86-64 and arm64 huge page; also the alignment asked for. */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)
/* Below this a buffer is left to malloc (few pages, often reused). */
#define BIG_BYTES ((size_t)1 << 20)

void *sk_big_malloc(size_t n, size_t el)
{
    if (el && n > SIZE_MAX / el)
        return NULL;
    size_t bytes = n * el;
    if (bytes < BIG_BYTES)
        return malloc(bytes ? bytes : 1);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE_BYTES, bytes) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    /* advice only: where huge pages are off or unavailable, 4 KiB pages */
    (void)madvise(p, bytes & ~(HUGE_PAGE_BYTES - 1), MADV_HUGEPAGE);
#endif
    return p;
}

void *sk_big_calloc(size_t n, size_t el)
{
    if (el && n > SIZE_MAX / el)
        return NULL;
    if (n * el < BIG_BYTES)
        return calloc(n ? n : 1, el ? el : 1);
    void *p = sk_big_malloc(n, el);
    if (p)
        memset(p, 0, n * el);
    return p;
}
