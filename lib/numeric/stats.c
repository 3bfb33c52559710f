/* stats.c: medians, robust scales and the qsort comparison of doubles (see stats.h). */
#include <math.h>
#include <stdlib.h>

#include "select.h"
#include "stats.h"

int sk_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sk_median_sorted(const double *v, long n)
{
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double sk_median_double(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, sk_cmp_double);
    return sk_median_sorted(v, n);
}

/* The two middle values of v[0..n-1] (n >= 1) by selection: *hi the
 * (n/2)-th smallest, *lo the largest of the lower half (*hi when n is
 * odd). v is reordered. */
static void middle_pair(float *v, long n, float *lo, float *hi)
{
    *hi = sk_select_kth(v, n, n / 2);
    *lo = *hi;
    if (n % 2 == 0) {
        *lo = v[0];
        for (long i = 1; i < n / 2; i++)
            if (v[i] > *lo)
                *lo = v[i];
    }
}

double sk_median_float(float *v, long n)
{
    if (n <= 0)
        return 0.0;
    float lo, hi;
    middle_pair(v, n, &lo, &hi);
    double m = hi;
    return n % 2 ? m : 0.5 * (m + lo);
}

float sk_median_floatf(float *v, long n)
{
    if (n <= 0)
        return 0.0f;
    float lo, hi;
    middle_pair(v, n, &lo, &hi);
    return n % 2 ? hi : 0.5f * (lo + hi);
}

void sk_median_mad(double *v, long n, double *median, double *sigma)
{
    double med = sk_median_double(v, n);
    for (long k = 0; k < n; k++)
        v[k] = fabs(v[k] - med);
    *median = med;
    *sigma = SK_MAD_TO_SIGMA * sk_median_double(v, n);
}

long sk_densest_window(const double *sorted, long n, enum sk_window_kind kind, double width,
                       long *count)
{
    long best = 0, best_lo = 0, hi = 0;
    for (long lo = 0; lo < n; lo++) {
        if (hi < lo)
            hi = lo;
        if (kind == SK_WINDOW_RATIO)
            while (hi + 1 < n && sorted[hi + 1] <= sorted[lo] * width)
                hi++;
        else
            while (hi + 1 < n && sorted[hi + 1] - sorted[lo] <= width)
                hi++;
        if (hi - lo + 1 > best) {
            best = hi - lo + 1;
            best_lo = lo;
        }
    }
    *count = best;
    return best_lo;
}
