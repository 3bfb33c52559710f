/* test_chi2.c: the multi-band detection images: N(0, 1) on pure noise whatever each band's sky and noise (every combination), a source of one band only stands out, pixels without data, the SED-matched image optimal for sources of its SED, and bands on different grids refused. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "../tap.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double gauss(void)
{
    double u = uniform() + 1e-12, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

enum { W = 200, H = 200 };

static sk_image *band(double sky, double sigma, const char *filter)
{
    sk_image *img = sk_image_new(W, H);
    for (long i = 0; i < W * H; i++) {
        img->sci[i] = (float)(sky + sigma * gauss());
        img->weight[i] = (float)(1.0 / (sigma * sigma));
    }
    sk_header_set_str(img->header, "FILTER", filter, NULL);
    return img;
}

/* Mean, standard deviation and fraction above 3 of an image's pixels with
 * data, those of mask[] != 0 left out. */
static void stats(const sk_image *d, const unsigned char *mask, double *mean, double *sd, double *tail)
{
    double s = 0, ss = 0;
    long n = 0, t = 0;
    for (long i = 0; i < W * H; i++) {
        if ((mask && mask[i]) || d->weight[i] <= 0)
            continue;
        s += d->sci[i];
        ss += d->sci[i] * d->sci[i];
        t += d->sci[i] > 3.0;
        n++;
    }
    *mean = s / n;
    *sd = sqrt(ss / n - *mean * *mean);
    *tail = (double)t / n;
}

/* Every combination on pure noise: mean 0, sigma 1; the upper tail of
 * chi2, chi2-positive and sed that of N(0, 1) (P(> 3) = 0.00135); where
 * one band has data, chi2-positive and sed are that band's z. */
static void combinations(void)
{
    sk_image *b[3] = {band(10, 3, "g"), band(0, 1, "r"), band(-3, 7, "i")};
    b[0]->sci[9] = (float)(10 + 3 * 3.2); /* pixel 9: band g only, z about 3.2 */
    b[1]->weight[9] = b[2]->weight[9] = 0.0f;
    unsigned char mask[W * H] = {0};
    mask[9] = 1;
    double z9[4];
    for (int c = 0; c < 4; c++) {
        sk_detimage_params p = {(sk_detcombine)c, 0, NULL};
        sk_image *d = NULL;
        double mean = 0, sd = 0, tail = 0;
        int rc = sk_chi2_detection((const sk_image *const *)b, 3, &p, &d);
        if (!rc)
            stats(d, mask, &mean, &sd, &tail);
        z9[c] = rc ? 0 : d->sci[9];
        /* chi-mean's noise is the skewed chi law: only centred and scaled */
        int tail_ok = c == SK_DETCOMB_CHI_MEAN || fabs(tail - 0.00135) < 0.0007;
        ok(!rc && fabs(mean) < 0.03 && fabs(sd - 1) < 0.04 && tail_ok,
           "%s on pure noise: mean %.3f, sigma %.3f, P(> 3) %.5f", sk_detcombine_name((sk_detcombine)c), mean, sd,
           tail);
        sk_image_free(d);
    }
    ok(fabs(z9[SK_DETCOMB_CHI2_POS] - z9[SK_DETCOMB_SED]) < 1e-3 && fabs(z9[SK_DETCOMB_SED] - 3.2) < 0.2 &&
           fabs(z9[SK_DETCOMB_CHI_MEAN] - z9[SK_DETCOMB_SED]) < 1e-3,
       "one band with data: chi2-positive %.4f = sed %.4f = chi-mean = z", z9[SK_DETCOMB_CHI2_POS],
       z9[SK_DETCOMB_SED]);
    sk_detcombine c;
    ok(sk_detcombine_from_name("chi2-positive", &c) == SK_OK && c == SK_DETCOMB_CHI2_POS &&
           sk_detcombine_from_name("chi3", &c) == SK_EINPUT, "combinations by name; an unknown one refused");
    sk_error_clear();
    for (int k = 0; k < 3; k++)
        sk_image_free(b[k]);
}

/* The SED-matched image of single-pixel sources of a known SED: in band b
 * the counts are SED_b 10^(0.4 MAGZERO_b) A, and over 200 such pixels the
 * mean significance is the optimal sqrt(sum_b SNR_b^2); chi2-positive,
 * which assumes no SED, stays below it. */
static void sed_matched(void)
{
    static const double sigma[3] = {2, 5, 10}, sed[3] = {1, 0.5, 2}, zp[3] = {25, 26, 24.5};
    sk_image *b[3] = {band(0, sigma[0], "g"), band(0, sigma[1], "r"), band(0, sigma[2], "i")};
    double snr2 = 0, counts[3];
    for (int k = 0; k < 3; k++) {
        sk_header_set_double(b[k]->header, "MAGZERO", zp[k], NULL);
        counts[k] = sed[k] * pow(10, 0.4 * (zp[k] - 25)) * 8.0;
        snr2 += counts[k] * counts[k] / (sigma[k] * sigma[k]);
    }
    for (int j = 0; j < 200; j++)
        for (int k = 0; k < 3; k++)
            b[k]->sci[(10 + 9 * (j / 20)) * W + 10 + 9 * (j % 20)] += (float)counts[k];
    sk_detimage_params p = {SK_DETCOMB_SED, 0, sed};
    sk_image *d = NULL, *d2 = NULL;
    int rc = sk_chi2_detection((const sk_image *const *)b, 3, &p, &d);
    p.combine = SK_DETCOMB_CHI2_POS;
    rc = rc ? rc : sk_chi2_detection((const sk_image *const *)b, 3, &p, &d2);
    double m = 0, m2 = 0;
    for (int j = 0; !rc && j < 200; j++) {
        long i = (10 + 9 * (j / 20)) * W + 10 + 9 * (j % 20);
        m += d->sci[i] / 200.0;
        m2 += d2->sci[i] / 200.0;
    }
    char key[72] = "";
    ok(!rc && fabs(m - sqrt(snr2)) < 0.2 && m2 < m - 0.3 && sk_header_get_str(d->header, "DETIMAGE", key, sizeof key) == 1 &&
           !strcmp(key, "SED"),
       "sources of the SED: sed %.2f sigma on average, optimal %.2f; chi2-positive %.2f", m, sqrt(snr2), m2);
    sk_image_free(d);
    sk_image_free(d2);
    for (int k = 0; k < 3; k++)
        sk_image_free(b[k]);
}

int main(void)
{
    tap_plan(15);
    sk_image *b[3] = {band(100, 2, "g"), band(-5, 5, "r"), band(1000, 10, "i")};
    /* a source of band i only: a Gaussian of peak 4 sigma, FWHM 3 px */
    for (int y = 90; y <= 110; y++)
        for (int x = 90; x <= 110; x++)
            b[2]->sci[y * W + x] += (float)(40.0 * exp(-((x - 100) * (x - 100) + (y - 100) * (y - 100)) / (2 * 1.27 * 1.27)));
    b[0]->weight[5] = 0.0f;
    b[1]->weight[5] = 0.0f;
    b[2]->weight[5] = 0.0f; /* pixel 5: no band has data */
    b[1]->weight[7] = 0.0f; /* pixel 7: two bands of three */
    sk_image *det = NULL;
    const sk_detimage_params chi2 = {SK_DETCOMB_CHI2, 0, NULL};
    ok(sk_chi2_detection((const sk_image *const *)b, 3, &chi2, &det) == SK_OK, "chi2 image of three bands");
    double s = 0, ss = 0;
    long n = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if ((x - 100) * (x - 100) + (y - 100) * (y - 100) < 400 || y * W + x == 5)
                continue;
            double v = det->sci[y * W + x];
            s += v;
            ss += v * v;
            n++;
        }
    double mean = s / n, sd = sqrt(ss / n - mean * mean);
    is_near(mean, 0.0, 0.03, "pure noise: mean 0 (%.3f), whatever each band's sky", mean);
    is_near(sd, 1.0, 0.04, "pure noise: sigma 1 (%.3f), whatever each band's noise", sd);
    ok(det->sci[100 * W + 100] > 2.5, "a 4-sigma source of one band stands out (%.2f sigma)", det->sci[100 * W + 100]);
    ok(det->weight[5] == 0.0f && (det->flags[5] & SK_FLAG_EDGE) && det->weight[7] == 1.0f,
       "no band with data: weight 0 and EDGE; one band missing: still measured");
    char f[72] = "";
    long nb = 0;
    ok(sk_header_get_str(det->header, "CHI2BND3", f, sizeof f) == 1 && !strcmp(f, "i") &&
           sk_header_get_long(det->header, "CHI2NBND", &nb) == 1 && nb == 3,
       "the header names the bands");
    sk_image_free(det);
    det = NULL;
    ok(sk_chi2_detection((const sk_image *const *)b, 1, &chi2, &det) == SK_EINPUT, "one band is not enough");
    sk_error_clear();
    sk_image *other = sk_image_new(W, H - 1);
    const sk_image *mixed[2] = {b[0], other};
    ok(sk_chi2_detection(mixed, 2, &chi2, &det) == SK_EINPUT && !det, "bands of different sizes are refused");
    sk_error_clear();
    sk_image_free(other);
    for (int k = 0; k < 3; k++)
        sk_image_free(b[k]);
    combinations();
    sed_matched();
    return tap_done();
}
