/* select.c: Hoare's selection of the k-th smallest value (see select.h). */
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
