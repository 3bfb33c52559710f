/* select.c: Hoare's selection of the k-th smallest value, and a radix selection of it for large arrays (see select.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "select.h"

float sk_select_kth(float *v, long n, long k)
{
    long lo = 0, hi = n - 1;
    while (hi > lo) {
        float pivot = v[lo + (hi - lo) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

/* The top 16 bits of a key that orders floats as unsigned integers (-0
 * taken as +0, so that equal values share a key). */
#define RADIX_BINS 65536
static inline uint32_t radix_bin(float f)
{
    f += 0.0f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u ^= (uint32_t)((int32_t)u >> 31) | 0x80000000u;
    return u >> 16;
}

float sk_select_kth_radix(float *v, long n, long k)
{
    uint32_t *hist = calloc(RADIX_BINS, sizeof *hist);
    if (!hist)
        return sk_select_kth(v, n, k);
    for (long i = 0; i < n; i++)
        hist[radix_bin(v[i])]++;
    uint32_t bin = 0;
    long below = 0;
    while (below + (long)hist[bin] <= k)
        below += hist[bin++];
    long m = hist[bin];
    free(hist);
    float *sub = malloc(sizeof *sub * (size_t)m);
    if (!sub)
        return sk_select_kth(v, n, k);
    long j = 0;
    for (long i = 0; i < n; i++)
        if (radix_bin(v[i]) == bin)
            sub[j++] = v[i];
    float r = sk_select_kth(sub, m, k - below);
    free(sub);
    return r;
}
