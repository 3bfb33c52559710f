/* select.c: Hoare's selection of the k-th smallest value, and a radix selection of it for large arrays (see select.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "select.h"
#include "core/parallel.h"
#include "skystack/error.h"

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

/* ---- the median of the square roots of the positive values, on threads ---- */

typedef struct sqrt_median_job {
    const float *v;
    uint32_t bin;        /* pass 2: the bin of rank k */
    int pass;
    uint32_t *hist;      /* the threads' histograms summed */
    float *sel;          /* pass 2: the values of that bin, any order */
    long nsel, cap;
    int oom;
} sqrt_median_job;

typedef struct sqrt_median_scratch {
    uint32_t *hist;
    float *sel;
    long nsel, cap;
    int oom;
} sqrt_median_scratch;

static int sqrt_median_init(void *sv, void *user)
{
    sqrt_median_scratch *s = sv;
    const sqrt_median_job *J = user;
    if (J->pass == 1 && !(s->hist = calloc(RADIX_BINS, sizeof *s->hist)))
        s->oom = 1;
    return SK_OK;
}

static int sqrt_median_range(void *sv, long i0, long i1, void *user)
{
    sqrt_median_scratch *s = sv;
    const sqrt_median_job *J = user;
    if (s->oom)
        return SK_OK;
    for (long i = i0; i < i1; i++) {
        float x = J->v[i];
        if (!(x > 0))
            continue;
        if (J->pass == 1) {
            s->hist[radix_bin(x)]++;
        } else if (radix_bin(x) == J->bin) {
            if (s->nsel == s->cap) {
                long cap = s->cap ? 2 * s->cap : 4096;
                float *p = realloc(s->sel, sizeof *p * (size_t)cap);
                if (!p) {
                    s->oom = 1;
                    return SK_OK;
                }
                s->sel = p;
                s->cap = cap;
            }
            s->sel[s->nsel++] = x;
        }
    }
    return SK_OK;
}

/* In the caller's thread, one thread's scratch after another: the sums
 * of counts, and the union of values, do not depend on the order. */
static void sqrt_median_release(void *sv, void *user)
{
    sqrt_median_scratch *s = sv;
    sqrt_median_job *J = user;
    J->oom |= s->oom;
    if (s->hist && !J->oom)
        for (long b = 0; b < RADIX_BINS; b++)
            J->hist[b] += s->hist[b];
    if (s->nsel && !J->oom) {
        float *p = J->nsel + s->nsel > J->cap ? realloc(J->sel, sizeof *p * (size_t)(J->nsel + s->nsel)) : J->sel;
        if (p) {
            J->sel = p;
            J->cap = J->nsel + s->nsel > J->cap ? J->nsel + s->nsel : J->cap;
            memcpy(J->sel + J->nsel, s->sel, sizeof *p * (size_t)s->nsel);
            J->nsel += s->nsel;
        } else {
            J->oom = 1;
        }
    }
    free(s->hist);
    free(s->sel);
}

#define SQRT_MEDIAN_CHUNK 65536L

float sk_median_sqrt_positive(const float *v, long n, int threads)
{
    sqrt_median_job J = {.v = v, .pass = 1, .hist = calloc(RADIX_BINS, sizeof(uint32_t))};
    const sk_scratch sc = {sizeof(sqrt_median_scratch), sqrt_median_init, sqrt_median_release};
    float r = NAN;
    if (!J.hist || sk_parallel_for_scratch(n, SQRT_MEDIAN_CHUNK, threads, &sc, sqrt_median_range, &J) || J.oom)
        goto serial;
    long m = 0;
    for (long b = 0; b < RADIX_BINS; b++)
        m += J.hist[b];
    if (m == 0)
        goto done;
    long k = m / 2, below = 0;
    while (below + (long)J.hist[J.bin] <= k)
        below += J.hist[J.bin++];
    J.pass = 2;
    if (sk_parallel_for_scratch(n, SQRT_MEDIAN_CHUNK, threads, &sc, sqrt_median_range, &J) || J.oom)
        goto serial;
    r = sqrtf(sk_select_kth(J.sel, J.nsel, k - below)); /* sqrtf keeps the order */
    goto done;
serial: /* out of memory: the copy of the square roots and one selection */
    sk_error_clear();
    {
        float *c = malloc(sizeof *c * (size_t)(n + 1));
        long mm = 0;
        for (long i = 0; c && i < n; i++)
            if (v[i] > 0)
                c[mm++] = sqrtf(v[i]);
        r = c && mm ? sk_select_kth(c, mm, mm / 2) : NAN;
        free(c);
    }
done:
    free(J.hist);
    free(J.sel);
    return r;
}
