/* stats.h: medians, robust scales and the qsort comparison of doubles, for the library (not installed). */
#ifndef SK_STATS_H
#define SK_STATS_H

/* The standard deviation of a normal distribution per unit of its median
 * absolute deviation, 1 / Phi^-1(3/4). */
#define SK_MAD_TO_SIGMA 1.4826

/* qsort comparison of doubles, ascending. */
int sk_cmp_double(const void *a, const void *b);

/* Median of v[0..n-1] already sorted ascending (n >= 1): the middle value,
 * or the mean of the two middle values when n is even. */
double sk_median_sorted(const double *v, long n);

/* Median of v[0..n-1] (n >= 1) as sk_median_sorted; v is sorted in place. */
double sk_median_double(double *v, long n);

/* Median of v[0..n-1] by selection (linear time), computed in double: the
 * mean of the two middle values when n is even; 0 when n <= 0. v is
 * reordered. */
double sk_median_float(float *v, long n);

/* Median of v[0..n-1] (n >= 1) and SK_MAD_TO_SIGMA times the median
 * absolute deviation from it; v is overwritten by the absolute deviations
 * (sorted). */
void sk_median_mad(double *v, long n, double *median, double *sigma);

#endif
