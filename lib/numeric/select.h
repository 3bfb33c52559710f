/* select.h: order statistics in linear time for the library (not installed). */
#ifndef SK_SELECT_H
#define SK_SELECT_H

/* The k-th smallest of v[0..n-1] (0 <= k < n), the value a full sort would
 * put at index k; v is reordered so that v[0..k-1] <= v[k] <= v[k+1..]. */
float sk_select_kth(float *v, long n, long k);

#endif
