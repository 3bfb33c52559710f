/* select.h: order statistics in linear time for the library (not installed). */
#ifndef SK_SELECT_H
#define SK_SELECT_H

/* The k-th smallest of v[0..n-1] (0 <= k < n), the value a full sort would
 * put at index k; v is reordered so that v[0..k-1] <= v[k] <= v[k+1..]. */
float sk_select_kth(float *v, long n, long k);

/* The same value for values without NaN (a zero may come back as +0 where
 * sk_select_kth gives -0), by the top 16 bits of each value's order: one
 * pass counts them, a second gathers the values of the bin that holds
 * rank k, among which sk_select_kth chooses. v is left as it is (unless
 * memory runs out: then it is sk_select_kth, which reorders v). Two cheap
 * passes instead of the partitions' unpredictable branches: for arrays of
 * thousands of values or more. */
float sk_select_kth_radix(float *v, long n, long k);

/* The median noise of a variance map: the value sk_select_kth gives at
 * rank m / 2 among the square roots (sqrtf) of the m values of v[0..n-1]
 * above 0; NaN when there are none. Without a copy of v, by the same bins
 * as sk_select_kth_radix counted on up to `threads` threads (the value
 * does not depend on them). */
float sk_median_sqrt_positive(const float *v, long n, int threads);

#endif
