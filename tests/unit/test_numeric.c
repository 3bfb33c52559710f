/* test_numeric.c: the library's numerical helpers: the Cholesky solve of normal equations against known solutions, medians and robust scales against a sorted copy, the radix selection against Hoare's. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "numeric/linsolve.h"
#include "numeric/select.h"
#include "numeric/stats.h"
#include "../tap.h"

/* A fit of y = 2 - 3 x + 0.5 x^2 (and of a second right-hand side,
 * -1 + 4 x) to exact data recovers the coefficients. */
static void test_poly_fit(void)
{
    double ata[9] = {0}, atb[6] = {0};
    for (int k = 0; k < 11; k++) {
        double x = -1.0 + 0.2 * k;
        double f[3] = {1.0, x, x * x};
        double y[2] = {2.0 - 3.0 * x + 0.5 * x * x, -1.0 + 4.0 * x};
        sk_normal_add(ata, atb, 3, 2, f, 1.0 + 0.1 * k, y);
    }
    ok(sk_cholesky_solve(ata, atb, 3, 2, 1e-300) == 0, "normal equations of a quadratic solve");
    is_near(atb[0], 2.0, 1e-12, "constant term");
    is_near(atb[1], -3.0, 1e-12, "linear term");
    is_near(atb[2], 0.5, 1e-12, "quadratic term");
    is_near(atb[3], -1.0, 1e-12, "second right-hand side: constant");
    is_near(atb[4], 4.0, 1e-12, "second right-hand side: linear");
    is_near(atb[5], 0.0, 1e-12, "second right-hand side: no quadratic");
}

/* A known SPD system (only its lower triangle given) and its solution. */
static void test_known_system(void)
{
    /* a = [[4, 2, 0], [2, 5, 3], [0, 3, 6]], x = (1, -2, 3): b = a x */
    double a[9] = {4, -99, -99, 2, 5, -99, 0, 3, 6};
    double b[3] = {4 * 1 + 2 * -2, 2 * 1 + 5 * -2 + 3 * 3, 3 * -2 + 6 * 3};
    ok(sk_cholesky_solve(a, b, 3, 1, 0.0) == 0, "SPD system solves, upper triangle ignored");
    is_near(b[0], 1.0, 1e-12, "x0");
    is_near(b[1], -2.0, 1e-12, "x1");
    is_near(b[2], 3.0, 1e-12, "x2");
    is_near(a[0], 2.0, 1e-15, "Cholesky factor L00 = sqrt(4)");
    is_near(a[3], 1.0, 1e-15, "Cholesky factor L10 = 2 / 2");
}

/* A singular system (two equal columns) and one that is not positive
 * definite are refused; the pivot threshold decides near-singular ones. */
static void test_refusals(void)
{
    double sing[4] = {1, 1, 1, 1}, b[2] = {1, 1};
    ok(sk_cholesky_solve(sing, b, 2, 1, 0.0) != 0, "singular matrix refused");
    double neg[4] = {-1, 0, 0, 1}, b2[2] = {1, 1};
    ok(sk_cholesky_solve(neg, b2, 2, 1, 1e-300) != 0, "negative pivot refused");
    double tiny[4] = {1e-200, 0, 0, 1}, b3[2] = {1, 1};
    ok(sk_cholesky_solve(tiny, b3, 2, 1, 1e-100) != 0, "pivot below the threshold refused");
    double tiny2[4] = {1e-200, 0, 0, 1}, b4[2] = {1e-200, 1};
    ok(sk_cholesky_solve(tiny2, b4, 2, 1, 0.0) == 0, "the same pivot above a threshold of 0");
    is_near(b4[0], 1.0, 1e-12, "and its solution");
}

static double sorted_median(const double *v, long n)
{
    double *s = malloc(sizeof *s * (size_t)n);
    memcpy(s, v, sizeof *s * (size_t)n);
    for (long i = 1; i < n; i++)
        for (long j = i; j > 0 && s[j - 1] > s[j]; j--) {
            double t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

/* Medians of odd and even counts, with repeated values, against an
 * insertion-sorted copy; the float median by selection agrees. */
static void test_medians(void)
{
    unsigned seed = 12345;
    for (long n = 1; n <= 40; n++) {
        double v[40], w[40];
        float f[40];
        for (long i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            v[i] = (double)((seed >> 8) % 17) - 8.0 + 0.25 * (double)(i % 3);
            f[i] = (float)v[i];
            w[i] = v[i];
        }
        double want = sorted_median(v, n);
        double got = sk_median_double(w, n);
        float ff[40];
        for (long i = 0; i < n; i++)
            ff[i] = f[i];
        if (got != want || sk_median_float(f, n) != want || sk_median_floatf(ff, n) != (float)want) {
            ok(0, "median of %ld values: %g, %g wanted", n, got, want);
            return;
        }
        for (long i = 1; i < n; i++)
            if (w[i - 1] > w[i]) {
                ok(0, "sk_median_double leaves %ld values sorted", n);
                return;
            }
    }
    ok(1, "medians of 1..40 values equal those of a sorted copy");
    double odd[5] = {5, 1, 4, 2, 3}, even[4] = {10, 1, 3, 2};
    is_near(sk_median_double(odd, 5), 3.0, 0, "median of 5 values");
    is_near(sk_median_double(even, 4), 2.5, 0, "median of 4 values: mean of the middle two");
    is_near(sk_median_sorted((const double[]){1, 2, 7}, 3), 2.0, 0, "median of a sorted array");
    ok(sk_median_float(NULL, 0) == 0.0, "median of no floats is 0");
    float big[2] = {FLT_MAX, FLT_MAX}, big2[2] = {FLT_MAX, FLT_MAX};
    ok(sk_median_float(big, 2) == FLT_MAX && isinf(sk_median_floatf(big2, 2)),
       "the float median averages in float: FLT_MAX + FLT_MAX overflows");
    double d[3] = {3, 1, 2};
    qsort(d, 3, sizeof *d, sk_cmp_double);
    ok(d[0] == 1 && d[1] == 2 && d[2] == 3, "sk_cmp_double sorts ascending");
}

/* Median and MAD of a set with one gross outlier: the outlier moves
 * neither. */
static void test_mad(void)
{
    double v[7] = {10, 11, 9, 10, 12, 8, 1000}, med, sigma;
    sk_median_mad(v, 7, &med, &sigma);
    is_near(med, 10.0, 0, "median ignores the outlier");
    /* deviations 0 1 1 0 2 2 990: median 1 */
    is_near(sigma, SK_MAD_TO_SIGMA * 1.0, 1e-15, "1.4826 MAD ignores the outlier");
}

/* The densest window against a count over every window. */
static void test_densest_window(void)
{
    double v[10] = {1.0, 1.5, 2.0, 2.05, 2.1, 2.2, 3.0, 4.0, 4.1, 4.15};
    long count = 0, lo = sk_densest_window(v, 10, SK_WINDOW_DIFFERENCE, 0.25, &count);
    is_int(lo, 2, "densest window of width 0.25 starts at 2.0");
    is_int(count, 4, "and holds 2.0 .. 2.2");
    lo = sk_densest_window(v, 10, SK_WINDOW_RATIO, 1.05, &count);
    is_int(lo, 2, "densest window of ratio 1.05 starts at 2.0");
    is_int(count, 3, "and holds 2.0 .. 2.1");
    double tie[4] = {1, 2, 5, 6};
    lo = sk_densest_window(tie, 4, SK_WINDOW_DIFFERENCE, 1.0, &count);
    ok(lo == 0 && count == 2, "the lowest window on a tie");
    lo = sk_densest_window(tie, 1, SK_WINDOW_RATIO, 1.2, &count);
    ok(lo == 0 && count == 1, "one value: a window of one");
}

/* The radix selection gives Hoare's k-th value for every k of arrays
 * that land in few bins (equal values, +-0, Gaussian-like noise) and in
 * many (every exponent, both signs), and leaves the array as it was. */
static void test_select_radix(void)
{
    enum { N = 3001 };
    static float v[N], h[N], keep[N];
    unsigned seed = 777;
    int bad = 0;
    for (int kind = 0; kind < 4 && !bad; kind++) {
        for (long i = 0; i < N; i++) {
            seed = seed * 1103515245u + 12345u;
            float u = (float)(seed >> 8) / 16777216.0f;
            v[i] = kind == 0   ? (float)((seed >> 8) % 7) - 3.0f
                   : kind == 1 ? ((seed >> 9) & 1 ? 0.0f : -0.0f) + (float)((seed >> 10) % 2)
                   : kind == 2 ? (u + (float)((seed >> 3) % 97) / 97.0f) * 1e-3f + 1.0f
                               : ldexpf(u - 0.5f, (int)((seed >> 4) % 200) - 100);
            keep[i] = v[i];
        }
        for (long k = 0; k < N && !bad; k += (kind == 3 ? 1 : 7)) {
            memcpy(h, v, sizeof h);
            float want = sk_select_kth(h, N, k), got = sk_select_kth_radix(v, N, k);
            if (!(got == want) || memcmp(v, keep, sizeof v) != 0) {
                ok(0, "radix selection, array kind %d, k %ld: %g, %g wanted", kind, k, got, want);
                bad = 1;
            }
        }
    }
    if (!bad)
        ok(1, "the radix selection gives Hoare's k-th value of 3001 values of four kinds, v unchanged");
}

/* The median of the square roots of the positive values (the noise of a
 * variance map), on threads: Hoare's value on the copy of the roots,
 * whatever the thread count; NaN, zeros, negatives and +inf among them. */
static void test_median_sqrt(void)
{
    enum { N = 200001 };
    float *v = malloc(sizeof *v * N), *c = malloc(sizeof *c * N);
    unsigned seed = 4242;
    int bad = !v || !c;
    for (int kind = 0; kind < 3 && !bad; kind++) {
        long m = 0;
        for (long i = 0; i < N; i++) {
            seed = seed * 1103515245u + 12345u;
            float u = (float)(seed >> 8) / 16777216.0f;
            int r = (int)((seed >> 4) % 11);
            v[i] = r == 0 ? NAN : r == 1 ? 0.0f : r == 2 ? -u : r == 3 && kind ? INFINITY
                 : kind == 2 ? (float)((seed >> 8) % 5) + 1.0f : 4.0f * u * u + 1e-30f;
            if (v[i] > 0)
                c[m++] = sqrtf(v[i]);
        }
        float want = sk_select_kth(c, m, m / 2);
        for (int t = 1; t <= 3 && !bad; t++) {
            float got = sk_median_sqrt_positive(v, N, t);
            if (!(got == want)) {
                ok(0, "median of the roots, kind %d, %d threads: %.9g, %.9g wanted", kind, t, got, want);
                bad = 1;
            }
        }
    }
    if (!bad)
        ok(1, "the median of the roots of the positive values is Hoare's on their copy, on 1-3 threads");
    for (long i = 0; v && i < 1000; i++)
        v[i] = i % 2 ? -1.0f : 0.0f;
    ok(v && isnan(sk_median_sqrt_positive(v, 1000, 2)), "no positive value: NaN");
    free(v);
    free(c);
}

int main(void)
{
    tap_plan(36);
    test_poly_fit();
    test_known_system();
    test_refusals();
    test_medians();
    test_mad();
    test_densest_window();
    test_select_radix();
    test_median_sqrt();
    return tap_done();
}
