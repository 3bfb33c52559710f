/* test_combine_stats.c: the statistics of combining one coadd pixel
 * (coadd(1), skystack/coadd.h), checked against independent computations:
 * - sk_median_variance_factor(n) against the variance of the median of n
 *   unit Gaussians integrated here over the order-statistic densities
 *   (1e-4 for odd n up to 127, as the header promises; 1e-3 for even n,
 *   whose table entries are up to 5e-4 off the integral);
 * - the median's weight 1 / (factor(n) mean(var) / n) and large-scale
 *   variance;
 * - the weighted mean's weight (sum c)^2 / sum c^2 var and large-scale
 *   variance 1 / sum c (inputs weighted by their large-scale variance);
 * - clipping at clip_sigma sigmas of var + poisson * centre + spread^2;
 * - the clipped mean four pixels at once (sk_combine_clipped_screen4, and
 *   sk_combine_clipped_unscreened for the pixels it leaves) gives what
 *   sk_combine_pixel gives, bit for bit, on random stacks with unused
 *   entries, outliers and bright sources;
 * - the clipped mean's sort of (value, weight) pairs puts the same pairs
 *   in the same places as a stable insertion sort, with ties, signed zeros,
 *   infinities and NaN among them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/coadd.h"
#include "../tap.h"
#include "coadd/coadd_internal.h"

static double phi(double x) { return exp(-0.5 * x * x) / sqrt(2.0 * M_PI); }
static double cdf(double x) { return 0.5 * erfc(-x / M_SQRT2); }

/* n Var(median) of n unit Gaussians by quadrature over the density of the
 * middle order statistic (odd n) or the joint density of the two middle
 * ones (even n, median their mean). */
static double even_part(int n, double h);
static double median_var_n(int n)
{
    const double lo = -7.0, hi = 7.0;
    if (n % 2) {
        int m = n / 2;
        double lc = lgamma(n + 1.0) - 2.0 * lgamma(m + 1.0), s = 0.0, h = 1e-3;
        for (double x = lo; x <= hi; x += h) {
            double F = cdf(x);
            if (F <= 0 || F >= 1)
                continue;
            s += x * x * exp(lc + m * log(F) + m * log1p(-F)) * phi(x);
        }
        return n * s * h;
    }
    /* the trapezoid rule converges as h^2: Richardson's extrapolation */
    return (4.0 * even_part(n, 0.005) - even_part(n, 0.01)) / 3.0;
}

/* n E[median^2] for even n by the trapezoid rule of step h over x < y. */
static double even_part(int n, double h)
{
    const double lo = -5.0, hi = 5.0;
    int m = n / 2;
    double lc = lgamma(n + 1.0) - 2.0 * lgamma((double)m), s = 0.0;
    long k = (long)((hi - lo) / h);
    for (long i = 0; i <= k; i++) {
        double x = lo + h * i, F = cdf(x);
        if (F <= 0 || F >= 1)
            continue;
        double ax = lc + (m - 1) * log(F) + log(phi(x));
        for (long j = i; j <= k; j++) {
            double y = lo + h * j, G = cdf(y);
            if (G <= 0 || G >= 1)
                continue;
            double w = j == i ? 0.5 : 1.0; /* the diagonal x = y is the edge */
            double mid = 0.5 * (x + y);
            s += w * mid * mid * exp(ax + (m - 1) * log1p(-G)) * phi(y);
        }
    }
    return n * s * h * h;
}

static void test_median_factor(void)
{
    is_near(sk_median_variance_factor(1), 1.0, 1e-12, "median factor n = 1: 1");
    is_near(sk_median_variance_factor(2), 1.0, 1e-12, "median factor n = 2: 1 (the mean)");
    /* odd n to 1e-4; even n to 1e-3: the table's even entries beyond n = 8
       sit up to 5e-4 above the integral (n = 32: 1.50527 against 1.50479) */
    double worst[2] = {0, 0};
    int at[2] = {0, 0};
    for (int n = 3; n <= 32; n++) {
        double d = fabs(sk_median_variance_factor(n) - median_var_n(n));
        if (d > worst[n % 2]) {
            worst[n % 2] = d;
            at[n % 2] = n;
        }
    }
    ok(worst[1] <= 1e-4, "median factor, odd n = 3..31, against the integrated variance: worst %.2g (n = %d) <= 1e-4",
       worst[1], at[1]);
    ok(worst[0] <= 1e-3, "median factor, even n = 4..32, against the integrated variance: worst %.2g (n = %d) <= 1e-3",
       worst[0], at[0]);
    const int odd[] = {33, 45, 63, 127};
    for (int k = 0; k < 4; k++)
        is_near(sk_median_variance_factor(odd[k]), median_var_n(odd[k]), 1e-4,
                "median factor n = %d (the large-n form) within 1e-4 of the integrated variance", odd[k]);
    is_near(sk_median_variance_factor(40), median_var_n(40), 3e-3, "median factor n = 40 (even, the large-n form) within 3e-3");
    ok(sk_median_variance_factor(10001) < M_PI / 2 && sk_median_variance_factor(10001) > M_PI / 2 - 1e-4,
       "median factor tends to pi/2");
}

static void test_median_weight(void)
{
    sk_combine_params p = {.method = SK_COMBINE_MEDIAN, .clip_sigma = 3, .clip_iterations = 3, .clip_ampfrac = 0.3};
    sk_combine_in in[5];
    double scratch[15];
    for (int j = 0; j < 5; j++)
        in[j] = (sk_combine_in){.value = (float)(10 + j), .cweight = 0.25f, .var = 2.0f + j, .poisson = 0};
    sk_combine_out out;
    sk_combine_pixel(&p, in, 5, scratch, &out);
    double f = median_var_n(5) / 25.0; /* the variance of the median per unit mean variance sum */
    is_near(out.value, 12.0, 1e-6, "median of 5: the middle value");
    is_near(1.0 / out.weight, f * (2 + 3 + 4 + 5 + 6), 2e-4 * f * 20, "median of 5: variance factor(5) mean(var) / 5");
    is_near(out.var_large, f * 5 * 4.0, 2e-4 * f * 20, "median of 5: large-scale variance from the combine weights");
}

static void test_mean_weight(void)
{
    sk_combine_params p = {.method = SK_COMBINE_MEAN, .clip_sigma = 3, .clip_iterations = 3, .clip_ampfrac = 0.3};
    sk_combine_in in[3] = {{.value = 1, .cweight = 1.0f, .var = 0.5f},
                           {.value = 2, .cweight = 0.5f, .var = 3.0f},
                           {.value = 4, .cweight = 0.25f, .var = 2.0f}};
    double scratch[9];
    sk_combine_out out;
    sk_combine_pixel(&p, in, 3, scratch, &out);
    double sc = 1.75, scv = 1 + 1 + 1, scvar = 0.5 + 0.25 * 3 + 0.0625 * 2;
    is_near(out.value, scv / sc, 1e-6, "mean: weighted by the combine weights (1 / large-scale variance)");
    is_near(out.weight, sc * sc / scvar, 1e-5 * sc * sc / scvar, "mean: weight (sum c)^2 / sum c^2 var");
    is_near(out.var_large, 1.0 / sc, 1e-9, "mean: large-scale variance 1 / sum c");
}

static int clipped_rejects(const float *v, int n, float var, float poisson)
{
    sk_combine_params p = {.method = SK_COMBINE_CLIPPED, .clip_sigma = 3, .clip_iterations = 5, .clip_ampfrac = 0};
    sk_combine_in in[16];
    double scratch[48];
    for (int j = 0; j < n; j++)
        in[j] = (sk_combine_in){.value = v[j], .cweight = 1.0f / var, .var = var, .poisson = poisson};
    sk_combine_out out;
    sk_combine_pixel(&p, in, n, scratch, &out);
    return out.nrejected;
}

static void test_clipping(void)
{
    const float out3[] = {0, 0.1f, -0.1f, 0.2f, -0.2f, 5.5f};
    is_int(clipped_rejects(out3, 6, 1, 0), 1, "clipped: a value 5.45 sigma off (kappa 3) is rejected");
    const float in3[] = {0, 0.1f, -0.1f, 0.2f, -0.2f, 2.8f};
    is_int(clipped_rejects(in3, 6, 1, 0), 0, "clipped: a value 2.75 sigma off is kept");
    /* values scattered beyond their noise (spread^2 = 8 here): kept */
    const float spread[] = {-4, -2, 0, 2, 4, 6.5f};
    is_int(clipped_rejects(spread, 6, 1, 0), 0, "clipped: the spread between inputs widens the test (none rejected)");
    /* a bright source: its Poisson noise (poisson x centre = 100) widens it */
    const float bright[] = {100, 100.1f, 99.9f, 100.2f, 99.8f, 125};
    is_int(clipped_rejects(bright, 6, 1, 1), 0, "clipped: a source's Poisson noise widens the test (none rejected)");
    is_int(clipped_rejects(bright, 6, 1, 0), 1, "clipped: without source noise the same value is rejected");
}

static unsigned long long rng_state = 88172645463325252ULL;
static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static int same_out(const sk_combine_out *a, const sk_combine_out *b)
{
    return memcmp(&a->value, &b->value, sizeof a->value) == 0 &&
           memcmp(&a->weight, &b->weight, sizeof a->weight) == 0 && a->nused == b->nused &&
           a->nrejected == b->nrejected && memcmp(&a->var_large, &b->var_large, sizeof a->var_large) == 0;
}

/* Stacks of n inputs (entries of 20 bytes as the engine stores them,
 * strided by input) at four pixels, against sk_combine_pixel pixel by
 * pixel. */
static void test_screen4(void)
{
    typedef struct { sk_combine_in in; unsigned short flags; } entry;
    enum { KMAX = 24, CH = 8 };
    static entry st[KMAX][CH];
    sk_combine_params p = {.method = SK_COMBINE_CLIPPED, .clip_sigma = 3, .clip_iterations = 3, .clip_ampfrac = 0.3};
    int bad = 0, screened = 0, failed = 0, few = 0, trials = 0;
    for (int t = 0; t < 3000; t++) {
        int n = 1 + (int)(uniform() * KMAX);
        double level = uniform() < 0.3 ? 200.0 * uniform() : 0.0;
        for (int k = 0; k < n; k++)
            for (int l = 0; l < CH; l++) {
                entry *e = &st[k][l];
                memset(e, 0, sizeof *e);
                if (uniform() < 0.15)
                    continue; /* not covered: cweight 0 */
                double var = 0.5 + 2.0 * uniform();
                e->in.var = (float)var;
                e->in.cweight = (float)(1.0 / (var * (0.8 + 0.4 * uniform())));
                e->in.poisson = uniform() < 0.5 ? (float)(0.1 * uniform()) : 0.0f;
                double g = sqrt(-2.0 * log(1.0 - uniform())) * cos(2.0 * M_PI * uniform());
                e->in.value = (float)(level + g * sqrt(var) + (uniform() < 0.03 ? 30.0 * uniform() : 0.0));
            }
        for (int l0 = 0; l0 + 4 <= CH; l0 += 4) {
            sk_combine_out q[4];
            unsigned done = sk_combine_clipped_screen4(&p, &st[0][l0], sizeof st[0], sizeof(entry), n, q);
            for (int l = 0; l < 4; l++) {
                sk_combine_in in[KMAX];
                double scratch[3 * KMAX];
                int m = 0;
                for (int k = 0; k < n; k++)
                    if (st[k][l0 + l].in.cweight > 0.0f)
                        in[m++] = st[k][l0 + l].in;
                sk_combine_out ref, got;
                sk_combine_pixel(&p, in, m, scratch, &ref);
                trials++;
                if (done >> l & 1) {
                    got = q[l];
                    screened++;
                    few += m < 3;
                } else if (done >> (4 + l) & 1) {
                    sk_combine_clipped_unscreened(&p, in, m, scratch, &got);
                    failed++;
                } else {
                    bad++; /* at most 64 inputs: every pixel is one or the other */
                    continue;
                }
                bad += !same_out(&ref, &got);
            }
        }
    }
    is_int(bad, 0, "clipped four pixels at once: the same bits as sk_combine_pixel (%d pixels)", trials);
    ok(screened > trials / 4 && failed > trials / 20 && few > 0,
       "clipped four pixels at once: pixels that pass (%d, %d with fewer than 3 values) and fail (%d) the screen",
       screened, few, failed);
}

/* Pairs drawn from few values (ties in value, in weight, in both; -0 and
 * +0; infinities; now and then a NaN or a value no float holds), sorted
 * by sk_combine_sort_pairs and by its insertion reference. */
static void test_sort_pairs(void)
{
    static const double vals[] = {-0.0, 0.0, 1.5, -1.5, 2.0, -3.25, 7.0, INFINITY, -INFINITY, 1e-40};
    int bad = 0, sorted_bad = 0, trials = 0;
    for (int t = 0; t < 20000; t++) {
        int n = 1 + (int)(uniform() * 24);
        double a[48], b[48];
        for (int j = 0; j < n; j++) {
            int few = uniform() < 0.5;
            a[2 * j] = few ? vals[(int)(uniform() * 10)] : (double)(float)(10.0 * uniform() - 5.0);
            a[2 * j + 1] = few ? vals[(int)(uniform() * 4)] + 1.0 : (double)(float)uniform();
        }
        if (uniform() < 0.02)
            a[2 * (int)(uniform() * n)] = NAN;
        if (uniform() < 0.02)
            a[2 * (int)(uniform() * n) + 1] = 0.1; /* not a float */
        memcpy(b, a, sizeof a);
        sk_combine_sort_pairs(a, n, 0);
        sk_combine_sort_pairs(b, n, 1);
        bad += memcmp(a, b, 2 * (size_t)n * sizeof *a) != 0;
        for (int j = 1; j < n; j++)
            sorted_bad += a[2 * j] < a[2 * j - 2];
        trials++;
    }
    is_int(bad, 0, "clipped mean's pair sort: the insertion sort's order bit for bit (%d arrays)", trials);
    is_int(sorted_bad, 0, "clipped mean's pair sort: values in increasing order");
}

int main(void)
{
    tap_plan(25);
    test_median_factor();
    test_median_weight();
    test_mean_weight();
    test_clipping();
    test_screen4();
    test_sort_pairs();
    return tap_done();
}
