/* test_coadd_weights.c: coadd(1)'s promise that inputs are combined with
 * weights inversely proportional to their variance over large apertures
 * (not to their per-pixel variance). Two inputs of the same noise per unit
 * sky area: A on the output's own pixel grid, B with pixels half the
 * output's. An interpolating kernel does not average B's pixels into an
 * output pixel, so B's resampled noise is aliased: over large apertures it
 * has about 2.3 times the variance of A's. That variance is measured here
 * on each input's resampled noise alone (sums over 16 x 16 output pixel
 * boxes, three noise realisations); the mean coadd of the two inputs
 * without noise (A flat at 0, B flat at a known level) then lies at the
 * level times the inverse-variance weight fraction of B. */
#include "../tap.h"
#include "coadd_fixture.h"

#define OUT 200     /* output grid OUT x OUT at 0.26" */
#define BOX 16      /* box side for the large-aperture variance, output px */
#define EDGE 12     /* output pixels left out along the border */
#define NREAL 6     /* noise realisations per input */
#define JB 1.9      /* output pixel / B pixel (side) */

/* Input A: OUT x OUT at 0.26" (the output's grid, shifted by 0.3 px);
 * input B: 480 x 480 at 0.26 / JB ", rotated 15 deg, over the same sky. */
static sk_image *input_image(int b, double noise, uint64_t seed)
{
    fx_wcs wa = {150.0, 2.0, OUT / 2 + 0.8, OUT / 2 + 0.2, 0.26, 0.0, 0.0};
    fx_wcs wb = {150.0, 2.0, 240.5, 240.5, 0.26 / JB, 15.0, 0.0};
    long n = b ? 480 : OUT;
    return fx_exposure(n, n, b ? &wb : &wa, NULL, 0, 0.5, noise, seed, 60000.0 + b);
}

static sk_coadd_result *coadd_of(sk_image **img, int n, const sk_grid *g)
{
    sk_coadd_input in[2];
    for (int k = 0; k < n; k++) {
        sk_coadd_input_init(&in[k]);
        in[k].image = img[k];
        in[k].zero_point = 25.0;
    }
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.combine.method = SK_COMBINE_MEAN;
    p.zero_point = 25.0;
    p.threads = 2;
    sk_coadd_result *r = NULL;
    if (sk_coadd_run(in, n, g, &p, &r) != SK_OK) {
        tap_diag("%s", sk_errmsg());
        return NULL;
    }
    return r;
}

/* Variance per output pixel of sums over BOX x BOX boxes of the interior;
 * NAN when a box is not fully covered. */
static double box_variance(const sk_coadd_result *r, long *nbox)
{
    double s1 = 0, s2 = 0;
    long m = 0;
    for (long by = EDGE; by + BOX <= OUT - EDGE; by += BOX)
        for (long bx = EDGE; bx + BOX <= OUT - EDGE; bx += BOX) {
            double s = 0;
            for (long y = by; y < by + BOX; y++)
                for (long x = bx; x < bx + BOX; x++) {
                    if (r->nimg[y * OUT + x] < 1)
                        return NAN;
                    s += r->image->sci[y * OUT + x];
                }
            s1 += s;
            s2 += s * s;
            m++;
        }
    *nbox += m;
    double mean = s1 / m;
    return (s2 / m - mean * mean) * m / (m - 1) / (BOX * BOX);
}

int main(void)
{
    tap_plan(6);
    sk_grid *g = NULL;
    sk_grid_tan(150.0, 2.0, OUT, OUT, 0.26, 0.0, &g);
    /* the same noise per unit sky area: sigma 1 on A's pixels, 1 / JB on
       B's (JB^2 of them in one of A's) */
    const double sigma[2] = {1.0, 1.0 / JB};
    double vl[2] = {0, 0};
    int all = g != NULL;
    long nbox = 0;
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < NREAL && all; s++) {
            sk_image *img = input_image(b, sigma[b], 1000 + 10 * b + s);
            sk_coadd_result *r = coadd_of(&img, 1, g);
            double v = r ? box_variance(r, &nbox) : NAN;
            all &= isfinite(v);
            vl[b] += v / NREAL;
            sk_coadd_result_free(r);
            sk_image_free(img);
        }
    ok(all, "each input's noise resampled alone (%ld boxes of %d x %d output pixels)", nbox, BOX, BOX);
    tap_diag("large-aperture variance per output pixel: A %.4f, B %.4f (ratio %.3f)", vl[0], vl[1],
             vl[1] / vl[0]);
    /* its own scatter: sqrt(2 / boxes) on each mean of NREAL realisations */
    double rel = sqrt(2.0 / ((double)nbox / 2.0));
    ok(vl[1] / vl[0] > 1.5,
       "B's aliased noise: %.2f times A's variance over large apertures (about 1.9, %.0f %% scatter)",
       vl[1] / vl[0], 100 * rel * M_SQRT2);

    /* no noise: A flat at 0, B flat at 10 per B pixel (10 JB^2 per output
       pixel); weight maps of the same sigmas */
    sk_image *img[2] = {input_image(0, 0.0, 1), input_image(1, 0.0, 2)};
    for (int b = 0; b < 2; b++) {
        long n = img[b]->width * img[b]->height;
        for (long i = 0; i < n; i++) {
            img[b]->sci[i] = b ? 10.0f : 0.0f;
            img[b]->weight[i] = (float)(1.0 / (sigma[b] * sigma[b]));
        }
    }
    sk_coadd_result *rb = coadd_of(&img[1], 1, g), *r = coadd_of(img, 2, g);
    ok(rb && r, "coadds of B alone and of A and B without noise");
    double level = NAN, both = NAN, spread = 0;
    if (rb && r) {
        double s1 = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
        long m = 0;
        for (long y = EDGE; y < OUT - EDGE; y++)
            for (long x = EDGE; x < OUT - EDGE; x++) {
                s1 += rb->image->sci[y * OUT + x];
                s2 += r->image->sci[y * OUT + x];
                lo = fmin(lo, r->image->sci[y * OUT + x]);
                hi = fmax(hi, r->image->sci[y * OUT + x]);
                m++;
            }
        level = s1 / m;
        both = s2 / m;
        spread = hi - lo;
    }
    is_near(level, 10.0 * JB * JB, 0.01, "B alone: 10 per B pixel is %.1f per output pixel (flux conserved)",
            10.0 * JB * JB);
    ok(spread < 1e-3 * level, "the coadd of flat inputs is flat (spread %.2g)", spread);
    /* inverse large-aperture variance weights: B's fraction vl_A / (vl_A +
       vl_B), about 0.34; its scatter from the measured variances is about
       f (1 - f) 0.074 = 0.017, the limit 0.07 is 4 sigma of it; per-pixel or
       per-area weights (the noise factor left out) give 0.5 */
    double f = vl[0] / (vl[0] + vl[1]), sf = f * (1 - f) * rel * M_SQRT2;
    tap_diag("B's weight fraction in the coadd %.4f, expected %.4f +- %.4f", both / level, f, sf);
    ok(fabs(both / level - f) <= 0.07 && 0.07 >= 4 * sf,
       "A and B combined: B's weight fraction %.3f = inverse large-aperture variance fraction %.3f "
       "(+- 0.07, >= 4 sigma of %.3f)", both / level, f, sf);
    sk_coadd_result_free(rb);
    sk_coadd_result_free(r);
    sk_image_free(img[0]);
    sk_image_free(img[1]);
    sk_grid_free(g);
    return tap_done();
}
