/* robust_test.h: the clipped standard deviation the accuracy tests use on
 * measured fluxes (test_photcal.c, test_accuracy.c). Header-only. */
#ifndef SK_ROBUST_TEST_H
#define SK_ROBUST_TEST_H

#include <math.h>

/* Standard deviation after iterated 4-sigma clipping about the mean (for
 * a Gaussian 0.1 % below sigma; the clipping drops the values an outlier,
 * e.g. an undetected neighbour, lifted); NAN below two values. */
static double clipped_sd(const double *v, long n) __attribute__((unused));
static double clipped_sd(const double *v, long n)
{
    double lo = -INFINITY, hi = INFINITY, sd = NAN;
    for (int it = 0; it < 10; it++) {
        double s1 = 0, s2 = 0;
        long m = 0;
        for (long k = 0; k < n; k++)
            if (v[k] >= lo && v[k] <= hi) {
                s1 += v[k];
                s2 += v[k] * v[k];
                m++;
            }
        if (m < 2)
            return NAN;
        double mean = s1 / m;
        sd = sqrt((s2 - m * mean * mean) / (m - 1));
        lo = mean - 4 * sd;
        hi = mean + 4 * sd;
    }
    return sd;
}

#endif
