/* test_chi2.c: the chi^2 detection image of several bands: N(0, 1) on pure noise whatever each band's sky and noise, a source of one band only stands out, pixels without data, and bands on different grids refused. */
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

int main(void)
{
    tap_plan(8);
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
    ok(sk_chi2_detection((const sk_image *const *)b, 3, 0, &det) == SK_OK, "chi2 image of three bands");
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
    ok(sk_chi2_detection((const sk_image *const *)b, 1, 0, &det) == SK_EINPUT, "one band is not enough");
    sk_error_clear();
    sk_image *other = sk_image_new(W, H - 1);
    const sk_image *mixed[2] = {b[0], other};
    ok(sk_chi2_detection(mixed, 2, 0, &det) == SK_EINPUT && !det, "bands of different sizes are refused");
    sk_error_clear();
    sk_image_free(other);
    for (int k = 0; k < 3; k++)
        sk_image_free(b[k]);
    return tap_done();
}
