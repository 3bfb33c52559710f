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

double sk_median_float(float *v, long n)
{
    if (n <= 0)
        return 0.0;
    double m = sk_select_kth(v, n, n / 2);
    if (n % 2 == 0) {
        /* the largest of the lower half */
        float lower = v[0];
        for (long i = 1; i < n / 2; i++)
            if (v[i] > lower)
                lower = v[i];
        m = 0.5 * (m + lower);
    }
    return m;
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
