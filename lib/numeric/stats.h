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

/* sk_median_float with the mean of the two middle values taken in float,
 * 0.5f * (lo + hi): (float)sk_median_float(v, n) but where lo + hi
 * overflows a float (then infinite); 0 when n <= 0. v is reordered. */
float sk_median_floatf(float *v, long n);

/* Median of v[0..n-1] (n >= 1) and SK_MAD_TO_SIGMA times the median
 * absolute deviation from it; v is overwritten by the absolute deviations
 * (sorted). */
void sk_median_mad(double *v, long n, double *median, double *sigma);

/* How sk_densest_window measures a window [a, b] of sorted values. */
enum sk_window_kind {
    SK_WINDOW_DIFFERENCE, /* b - a <= width */
    SK_WINDOW_RATIO       /* b <= a * width */
};

/* The window of sorted[0..n-1] (ascending, n >= 1) that holds the most
 * values, the lowest on a tie: returns the index of its first value and
 * *count the number of values in it. The value at index + count / 2 is
 * the mode of the distribution at that resolution. */
long sk_densest_window(const double *sorted, long n, enum sk_window_kind kind, double width,
                       long *count);

#endif
