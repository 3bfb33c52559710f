/* test_coadd.c: combine methods, and coadds of drawn exposures: fluxes at
 * the common zero point, astrometry, noise against the weight map, depth
 * gain of N equal exposures, rejection of cosmic rays and a satellite
 * trail without clipping star cores, flags and NIMG, header keywords,
 * file inputs, and bit-identical output for any thread count or band. */
#include "../tap.h"
#include "coadd_fixture.h"
#include "coadd/direct_priv.h"
#include "skystack/coaddx.h"
#include "skystack/extract.h"
#include "skystack/fits.h"
#include "coadd/coadd_internal.h"
#include "extract/extract_internal.h"
#include "sim/sim_internal.h"

static void test_combine(void)
{
    sk_combine_params p = {SK_COMBINE_MEAN, 3.0, 3, 0.3};
    double scratch[3 * 8];
    sk_combine_out o;
    sk_combine_in a[3] = {{1, 1, 1, 0}, {2, 1, 1, 0}, {3, 2, 0.5, 0}};
    sk_combine_pixel(&p, a, 3, scratch, &o);
    is_near(o.value, 2.25, 1e-6, "weighted mean (1,2,3 with weights 1,1,2)");
    is_near(o.weight, 4.0, 1e-5, "weight of the mean = sum of inverse variances");
    is_int(o.nused, 3, "three used");
    sk_combine_pixel(&p, a, 0, scratch, &o);
    ok(o.weight == 0.0f && o.nused == 0, "no input: weight 0");

    p.method = SK_COMBINE_CLIPPED;
    sk_combine_in cr[5] = {{0.3f, 1, 1, 0}, {-0.8f, 1, 1, 0}, {100, 1, 1, 0}, {0.5f, 1, 1, 0}, {-0.2f, 1, 1, 0}};
    sk_combine_pixel(&p, cr, 5, scratch, &o);
    is_int(o.nrejected, 1, "clipped: the outlier is rejected");
    is_near(o.value, (0.3 - 0.8 + 0.5 - 0.2) / 4, 1e-6, "clipped: mean of the others");
    is_near(o.weight, 4.0, 1e-5, "clipped: weight of the four kept");
    /* a star core seen with different seeing: 30% spread, 1% noise */
    sk_combine_in core[5] = {{1000, 1e-4f, 1e4f, 0.5f}, {1300, 1e-4f, 1e4f, 0.5f},
                             {800, 1e-4f, 1e4f, 0.5f}, {1100, 1e-4f, 1e4f, 0.5f},
                             {950, 1e-4f, 1e4f, 0.5f}};
    for (int k = 0; k < 5; k++)
        core[k].var = 100.0f;
    p.clip_ampfrac = 0.0;
    sk_combine_pixel(&p, core, 5, scratch, &o);
    is_int(o.nrejected, 0, "clipped: a star core with seeing differences is kept");
    p.clip_ampfrac = 0.3;
    /* the same core nearly alike in four inputs, a cosmic ray on the fifth */
    sk_combine_in hit[5] = {{1000, 1e-4f, 100, 0.5f}, {1050, 1e-4f, 100, 0.5f}, {980, 1e-4f, 100, 0.5f},
                            {1020, 1e-4f, 100, 0.5f}, {1500, 1e-4f, 100, 0.5f}};
    sk_combine_pixel(&p, hit, 5, scratch, &o);
    ok(o.nrejected == 1 && fabs(o.value - 1012.5) < 0.01, "clipped: a cosmic ray on a star core is rejected");
    for (int k = 0; k < 5; k++)
        core[k].poisson = 0.0f;
    p.clip_sigma = 1.0;
    p.clip_ampfrac = 0.0;
    sk_combine_pixel(&p, core, 5, scratch, &o);
    ok(o.nrejected > 0, "the core is clipped at 1 sigma without the amplitude term (the test can fail)");
    p.clip_sigma = 3.0;
    p.clip_ampfrac = 0.3;
    sk_combine_in two[2] = {{0, 1, 1, 0}, {100, 1, 1, 0}};
    sk_combine_pixel(&p, two, 2, scratch, &o);
    ok(o.nrejected == 0 && fabs(o.value - 50) < 1e-5, "clipped with two inputs: their mean");

    p.method = SK_COMBINE_MEDIAN;
    sk_combine_pixel(&p, cr, 5, scratch, &o);
    is_near(o.value, 0.3, 1e-6, "median of five");
    is_near(o.weight, 5.0 / sk_median_variance_factor(5), 1e-4, "median weight = n / (factor * var)");
    sk_combine_in four[4] = {{4, 1, 1, 0}, {1, 1, 1, 0}, {3, 1, 1, 0}, {2, 1, 1, 0}};
    sk_combine_pixel(&p, four, 4, scratch, &o);
    is_near(o.value, 2.5, 1e-6, "median of four: mean of the middle two");
    is_near(sk_median_variance_factor(1), 1.0, 0, "median factor 1 for one value");
    is_near(sk_median_variance_factor(3), 1.346, 0.001, "median factor 1.346 for three (0.4487 x 3)");
    is_near(sk_median_variance_factor(10001), M_PI / 2, 0.001, "median factor -> pi/2");
    ok(sk_median_variance_factor(40) > sk_median_variance_factor(32) &&
       sk_median_variance_factor(33) > sk_median_variance_factor(31),
       "median factor grows across the table's end");

    int m;
    ok(sk_combine_from_name("Clipped", &m) == SK_OK && m == SK_COMBINE_CLIPPED, "method by name");
    ok(sk_combine_from_name("average", &m) == SK_EINPUT, "unknown method refused");
    ok(sk_combine_from_name("zogy", &m) == SK_EINPUT && !strstr(sk_errmsg(), "not available") &&
           strstr(sk_errmsg(), "sk_coaddx_method_from_name"),
       "zogy is not a direct combination; the message points to coaddx.h, which runs it (%s)", sk_errmsg());
    int xm = -1;
    ok(sk_coaddx_method_from_name("zogy", &xm) && xm == SK_COADDX_ZOGY &&
           sk_coaddx_method_from_name("psfmatch", &xm) && xm == SK_COADDX_PSFMATCH,
       "zogy and psfmatch are available through coaddx.h");
}

/* Exposures of one field: dithers of a few pixels and sub-pixel offsets,
 * small rotations, zero points that differ, seeing that differs. */
#define NEXP 5
static const double dith_e[NEXP] = {0.0, 2.3, -1.7, 3.1, -2.6};   /* arcsec */
static const double dith_n[NEXP] = {0.0, -1.4, 2.2, 0.9, -3.0};
static const double rot_deg[NEXP] = {0.0, 0.3, -0.4, 0.2, 90.1};
static const double zp[NEXP] = {25.0, 25.2, 24.9, 25.1, 24.8};
static const double seeing[NEXP] = {0.45, 0.50, 0.42, 0.48, 0.46}; /* Gaussian sigma, arcsec */

static fx_wcs exposure_wcs(int k)
{
    double ra, dec;
    sk_sim_offset_radec(150.0, 2.0, 1, &dith_e[k], &dith_n[k], &ra, &dec);
    fx_wcs w = {ra, dec, 150.5, 150.5, 0.26, rot_deg[k], k % 2 ? 8e-6 : 0.0};
    return w;
}

/* Exposure k: stars of true flux `flux` at the common zero point 25. */
static sk_image *exposure(int k, const fx_star *stars, int ns, double noise, uint64_t seed)
{
    fx_star sc[64];
    double f = pow(10.0, 0.4 * (zp[k] - 25.0)); /* ADU per count at zp 25 */
    for (int i = 0; i < ns; i++) {
        sc[i] = stars[i];
        sc[i].flux = stars[i].flux * f;
    }
    fx_wcs w = exposure_wcs(k);
    sk_image *img = fx_exposure(300, 300, &w, sc, ns, seeing[k], noise, seed + 101 * k,
                                60000.0 + k);
    sk_header_set_double(img->header, "EXPTIME", 100.0 + k, NULL);
    sk_header_set_double(img->header, "GAIN", 2.0, NULL);
    return img;
}

static void make_inputs(sk_image **img, sk_coadd_input *in, int n)
{
    for (int k = 0; k < n; k++) {
        sk_coadd_input_init(&in[k]);
        in[k].image = img[k];
        in[k].zero_point = zp[k];
        in[k].gain = 2.0;
    }
}

static int same_result(const sk_coadd_result *a, const sk_coadd_result *b)
{
    size_t n = (size_t)a->image->width * a->image->height;
    return a->image->width == b->image->width && a->image->height == b->image->height &&
           memcmp(a->image->sci, b->image->sci, n * sizeof(float)) == 0 &&
           memcmp(a->image->weight, b->image->weight, n * sizeof(float)) == 0 &&
           memcmp(a->image->flags, b->image->flags, n * sizeof(uint16_t)) == 0 &&
           memcmp(a->nimg, b->nimg, n * sizeof(int32_t)) == 0;
}

static void test_stars(void)
{
    fx_star stars[36];
    int ns = fx_star_grid(150.0, 2.0, 6, 11.0, 1e5, stars);
    sk_image *img[NEXP];
    for (int k = 0; k < NEXP; k++)
        img[k] = exposure(k, stars, ns, 5.0, 7);
    sk_coadd_input in[NEXP];
    make_inputs(img, in, NEXP);
    sk_grid *g;
    /* the grid has the inputs' pixel scale (see test_resample.c for other
     * scales and rotations) */
    sk_grid_tan(150.0 + 0.05 / 3600, 2.0 - 0.11 / 3600, 320, 320, 0.26, 0.0, &g);
    const int methods[2] = {SK_COMBINE_MEAN, SK_COMBINE_CLIPPED};
    sk_coadd_result *res[2] = {NULL, NULL};
    for (int mi = 0; mi < 2; mi++) {
        sk_coadd_params p;
        sk_coadd_params_default(&p);
        p.combine.method = methods[mi];
        p.threads = 2;
        p.zero_point = 25.0;
        const char *mname = sk_combine_name(methods[mi]);
        int rc = sk_coadd_run(in, NEXP, g, &p, &res[mi]);
        ok(rc == SK_OK, "%s coadd of %d exposures (%s)", mname, NEXP, rc ? sk_errmsg() : "");
        if (rc)
            continue;
        sk_coadd_result *r = res[mi];
        double worst = 0, worst_pos = 0, sum_ratio = 0;
        int measured = 0;
        for (int i = 0; i < ns; i++) {
            double x, y;
            sk_wcs_sky2pix(g->wcs, 1, &stars[i].ra_deg, &stars[i].dec_deg, &x, &y);
            int complete;
            double f = fx_aperture(r->image->sci, r->image->weight, 320, 320, x, y, 9.0, &complete);
            if (!complete || r->nimg[(long)(y + 0.5) * 320 + (long)(x + 0.5)] < NEXP)
                continue;
            double cx, cy;
            fx_centroid(r->image->sci, 320, 320, x, y, 6.0, &cx, &cy);
            worst = fmax(worst, fabs(f / stars[i].flux - 1.0));
            sum_ratio += f / stars[i].flux;
            worst_pos = fmax(worst_pos, hypot(cx - x, cy - y));
            measured++;
        }
        ok(measured >= 16, "%s: %d stars covered by all inputs", mname, measured);
        ok(worst < 0.005, "%s: star fluxes at MAGZERO within %.2f%% of truth (< 0.5%%; mean ratio %.4f)",
           mname, 100 * worst, sum_ratio / measured);
        ok(worst_pos < 0.05, "%s: astrometry kept to %.3f px (< 0.05)", mname, worst_pos);
        double magzero = 0, exptime = 0, mjd0 = 0, mjd1 = 0, gain = 0;
        long ncomb = 0;
        char filter[16] = "", combinet[16] = "";
        const sk_header *h = r->image->header;
        int got[8] = {sk_header_get_double(h, "MAGZERO", &magzero),
                      sk_header_get_double(h, "EXPTIME", &exptime),
                      sk_header_get_double(h, "MJD-OBS", &mjd0),
                      sk_header_get_double(h, "MJD-END", &mjd1),
                      sk_header_get_long(h, "NCOMBINE", &ncomb),
                      sk_header_get_str(h, "FILTER", filter, sizeof filter),
                      sk_header_get_str(h, "COMBINET", combinet, sizeof combinet),
                      sk_header_get_double(h, "GAIN", &gain)};
        ok(got[0] == 1 && magzero == 25.0, "MAGZERO %g", magzero);
        ok(got[1] == 1 && exptime == 510.0, "EXPTIME = sum (%g)", exptime);
        ok(got[2] == 1 && mjd0 == 60000.0, "MJD-OBS = first start (%.6f)", mjd0);
        ok(got[3] == 1 && fabs(mjd1 - (60004.0 + 104.0 / 86400)) < 1e-9, "MJD-END = last end (%.6f)", mjd1);
        ok(got[4] == 1 && ncomb == NEXP, "NCOMBINE %ld", ncomb);
        ok(got[5] == 1 && strcmp(filter, "r") == 0, "FILTER %s", filter);
        ok(got[6] == 1 && strcasecmp(combinet, mname) == 0, "COMBINET %s", combinet);
        /* gain: 5 inputs of gain 2 scaled by ~1: about 10 e- per count */
        ok(got[7] == 1 && gain > 8 && gain < 12, "effective GAIN %.2f (about 5 x 2)", gain);
        ok(r->image->wcs != NULL, "coadd carries the grid WCS");
        double ra, dec, px = 159.5, py = 159.5, gra, gdec;
        sk_wcs_pix2sky(r->image->wcs, 1, &px, &py, &ra, &dec);
        sk_wcs_pix2sky(g->wcs, 1, &px, &py, &gra, &gdec);
        ok(fabs(ra - gra) < 1e-12 && fabs(dec - gdec) < 1e-12, "header WCS = grid WCS");
        is_near(r->info[1].flux_scale, pow(10, 0.4 * (25.0 - 25.2)), 1e-12,
                "flux scale of input 2 = 10^(0.4 (25 - 25.2))");
    }
    if (res[0] && res[1]) {
        /* clipping leaves the star cores alone */
        long core_rejected = 0, core_px = 0;
        for (int i = 0; i < ns; i++) {
            double x, y;
            sk_wcs_sky2pix(g->wcs, 1, &stars[i].ra_deg, &stars[i].dec_deg, &x, &y);
            for (long yy = (long)y - 3; yy <= (long)y + 4; yy++)
                for (long xx = (long)x - 3; xx <= (long)x + 4; xx++) {
                    if (xx < 0 || yy < 0 || xx >= 320 || yy >= 320)
                        continue;
                    core_px++;
                    core_rejected += (res[1]->image->flags[yy * 320 + xx] & SK_FLAG_REJECTED) != 0;
                }
        }
        ok(core_px > 1000 && core_rejected * 100 < core_px,
           "clipped: %ld of %ld star-core pixels had a rejection (< 1%%)", core_rejected, core_px);
        /* noise: pixels 12 px or more from every star, with every input */
        unsigned char *near = calloc(320 * 320, 1);
        for (int i = 0; i < ns; i++) {
            double x, y;
            sk_wcs_sky2pix(g->wcs, 1, &stars[i].ra_deg, &stars[i].dec_deg, &x, &y);
            for (long yy = (long)y - 12; yy <= (long)y + 12; yy++)
                for (long xx = (long)x - 12; xx <= (long)x + 12; xx++)
                    if (xx >= 0 && yy >= 0 && xx < 320 && yy < 320)
                        near[yy * 320 + xx] = 1;
        }
        double s2 = 0;
        long n = 0;
        for (long i = 0; i < 320 * 320; i++)
            if (res[0]->nimg[i] == NEXP && !near[i]) {
                s2 += res[0]->image->sci[i] * (double)res[0]->image->sci[i] * res[0]->image->weight[i];
                n++;
            }
        free(near);
        ok(n > 10000 && fabs(sqrt(s2 / n) - 1.0) < 0.05,
           "mean coadd: rms of value*sqrt(weight) = %.4f on %ld sky pixels (1 within 5%%)", sqrt(s2 / n), n);
    }
    /* the same coadd at 1 and 2 threads and in other bands: identical bits */
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.zero_point = 25.0;
    p.threads = 1;
    sk_coadd_result *r1 = NULL, *r2 = NULL;
    sk_coadd_run(in, NEXP, g, &p, &r1);
    p.threads = 2;
    p.band_rows = 37;
    sk_coadd_run(in, NEXP, g, &p, &r2);
    ok(r1 && r2 && res[1] && same_result(r1, res[1]) && same_result(r2, res[1]),
       "clipped coadd identical to the bit at 1 and 2 threads, bands of 256 and 37 rows");
    sk_coadd_result_free(r1);
    sk_coadd_result_free(r2);
    /* inputs in another order: same coadd apart from the reference */
    sk_coadd_input rev[NEXP];
    for (int k = 0; k < NEXP; k++)
        rev[k] = in[NEXP - 1 - k];
    p.band_rows = 0;
    sk_coadd_run(rev, NEXP, g, &p, &r1);
    long differ = 0;
    for (long i = 0; r1 && res[1] && i < 320 * 320; i++)
        differ += fabsf(r1->image->sci[i] - res[1]->image->sci[i]) > 1e-3f * (1 + fabsf(res[1]->image->sci[i]));
    ok(r1 && differ == 0, "input order does not change the clipped coadd (%ld pixels differ)", differ);
    sk_coadd_result_free(r1);

    /* mixed filters and missing zero points are refused */
    sk_header_set_str(img[3]->header, "FILTER", "g", NULL);
    sk_coadd_result *bad = NULL;
    ok(sk_coadd_run(in, NEXP, g, &p, &bad) == SK_EINPUT && strstr(sk_errmsg(), "filter"),
       "different filters refused: %s", sk_errmsg());
    sk_header_set_str(img[3]->header, "FILTER", "r", NULL);
    in[2].zero_point = NAN;
    ok(sk_coadd_run(in, NEXP, g, &p, &bad) == SK_EINPUT && strstr(sk_errmsg(), "zero point"),
       "one input without a zero point refused: %s", sk_errmsg());
    ok(bad == NULL, "nothing returned on error");
    sk_coadd_result_free(res[0]);
    sk_coadd_result_free(res[1]);
    for (int k = 0; k < NEXP; k++)
        sk_image_free(img[k]);
    sk_grid_free(g);
}

/* Noise in Gaussian windows (sigma 3 px, the size of a faint-source
 * aperture) at a grid of positions covered by every input. */
static double window_noise(const float *v, const float *w, const int32_t *nimg, int need, long W,
                           long H, const sk_wcs *at, const sk_wcs *own)
{
    const double sig = 3.0;
    const long R = 12;
    double s2 = 0;
    long n = 0;
    for (double cy = 30; cy < 270; cy += 10)
        for (double cx = 30; cx < 270; cx += 10) {
            /* the same sky position on every image */
            double ra, dec, x0, y0;
            sk_wcs_pix2sky(at, 1, &cx, &cy, &ra, &dec);
            sk_wcs_sky2pix(own, 1, &ra, &dec, &x0, &y0);
            long ix = (long)floor(x0 + 0.5), iy = (long)floor(y0 + 0.5);
            double sum = 0;
            int full = 1;
            for (long y = iy - R; y <= iy + R && full; y++)
                for (long x = ix - R; x <= ix + R; x++) {
                    if (x < 0 || y < 0 || x >= W || y >= H || !(w[y * W + x] > 0) ||
                        (nimg && nimg[y * W + x] < need)) {
                        full = 0;
                        break;
                    }
                    sum += exp(-((x - x0) * (x - x0) + (y - y0) * (y - y0)) / (2 * sig * sig)) *
                           v[y * W + x];
                }
            if (full) {
                s2 += sum * sum;
                n++;
            }
        }
    return n > 100 ? sqrt(s2 / n) : NAN;
}

static void test_depth(void)
{
    /* four equal exposures (same zero point, sky noise), blank sky */
    const int N = 4;
    sk_grid *g;
    sk_grid_tan(150.0 + 0.07 / 3600, 2.0 + 0.12 / 3600, 330, 330, 0.26, 0.0, &g);
    double gain_mean = 0, gain_clip = 0, chi_mean = 0;
    int nseeds = 3, all_ok = 1;
    for (int seed = 0; seed < nseeds; seed++) {
        sk_image *img[4];
        for (int k = 0; k < N; k++) {
            fx_wcs w = exposure_wcs(k);
            w.rotation_deg = 0.0;
            img[k] = fx_exposure(300, 300, &w, NULL, 0, 0.5, 5.0, 1000 + 17 * seed + k, 60000 + k);
        }
        sk_coadd_input in[4];
        for (int k = 0; k < N; k++) {
            sk_coadd_input_init(&in[k]);
            in[k].image = img[k];
        }
        sk_coadd_params p;
        sk_coadd_params_default(&p);
        p.threads = 2;
        double single = window_noise(img[0]->sci, img[0]->weight, NULL, 0, 300, 300, img[0]->wcs,
                                     img[0]->wcs);
        for (int mi = 0; mi < 2; mi++) {
            p.combine.method = mi ? SK_COMBINE_CLIPPED : SK_COMBINE_MEAN;
            sk_coadd_result *r;
            if (sk_coadd_run(in, N, g, &p, &r) != SK_OK) {
                all_ok = 0;
                continue;
            }
            double deep = window_noise(r->image->sci, r->image->weight, r->nimg, N - 1, 330, 330,
                                       img[0]->wcs, g->wcs);
            double gain = 2.5 * log10(single / deep);
            if (mi)
                gain_clip += gain / nseeds;
            else
                gain_mean += gain / nseeds;
            if (!mi) {
                double s2 = 0;
                long n = 0;
                for (long i = 0; i < 330 * 330; i++)
                    if (r->nimg[i] == N) {
                        s2 += r->image->sci[i] * (double)r->image->sci[i] * r->image->weight[i];
                        n++;
                    }
                chi_mean += sqrt(s2 / n) / nseeds;
            }
            sk_coadd_result_free(r);
        }
        for (int k = 0; k < N; k++)
            sk_image_free(img[k]);
    }
    double want = 2.5 * log10(sqrt((double)N));
    ok(all_ok, "coadds of %d equal exposures", N);
    ok(fabs(gain_mean - want) < 0.05, "mean: 5-sigma depth gain %.3f mag vs 2.5 log10(sqrt(4)) = %.3f (+-0.05)",
       gain_mean, want);
    ok(fabs(gain_clip - want) < 0.05, "clipped: depth gain %.3f mag vs %.3f (+-0.05)", gain_clip, want);
    ok(fabs(chi_mean - 1.0) < 0.05, "blank-sky noise / weight-map prediction = %.4f (1 within 5%%)",
       chi_mean);
    sk_grid_free(g);
}

/* Cosmic rays and a satellite trail in one of five exposures, on the sky
 * between the stars (where the inputs agree; on star cores the seeing
 * differences between inputs hide an artifact of their size). */
static void add_artifacts(sk_image *img, uint64_t seed, const fx_star *stars, int ns)
{
    sk_rng r;
    sk_rng_init(&r, seed, 3, 0);
    double sx[64], sy[64];
    for (int i = 0; i < ns; i++)
        sk_wcs_sky2pix(img->wcs, 1, &stars[i].ra_deg, &stars[i].dec_deg, &sx[i], &sy[i]);
    for (int k = 0; k < 40; k++) {
        long x = 5 + (long)(sk_rng_uniform(&r) * 290), y = 5 + (long)(sk_rng_uniform(&r) * 290);
        double e = 500 + 5000 * sk_rng_uniform(&r);
        int close = 0;
        for (int i = 0; i < ns; i++)
            close |= hypot(x - sx[i], y - sy[i]) < 10;
        if (close) {
            k--;
            continue;
        }
        img->sci[y * 300 + x] += (float)e;
        if (k % 3 == 0)
            img->sci[y * 300 + x + 1] += (float)(0.4 * e);
        if (k % 4 == 0)
            img->sci[(y + 1) * 300 + x] += (float)(0.3 * e);
    }
    /* a trail 2 px wide (Gaussian sigma 1 px), 400 ADU at its centre,
     * half-way between two rows of stars */
    double x0 = 0.5 * (sx[12] + sx[18]), y0 = 0.5 * (sy[12] + sy[18]);
    double x1 = 0.5 * (sx[17] + sx[23]), y1 = 0.5 * (sy[17] + sy[23]);
    double len = hypot(x1 - x0, y1 - y0), nx = -(y1 - y0) / len, ny = (x1 - x0) / len;
    for (long y = 0; y < 300; y++)
        for (long x = 0; x < 300; x++) {
            double d = (x - x0) * nx + (y - y0) * ny;
            if (fabs(d) < 6)
                img->sci[y * 300 + x] += (float)(400.0 * exp(-d * d / 2.0));
        }
}

static void test_artifacts(void)
{
    fx_star stars[36];
    int ns = fx_star_grid(150.0, 2.0, 6, 11.0, 2e4, stars);
    sk_image *clean[NEXP], *dirty[NEXP];
    for (int k = 0; k < NEXP; k++) {
        clean[k] = exposure(k, stars, ns, 5.0, 99);
        dirty[k] = exposure(k, stars, ns, 5.0, 99);
    }
    add_artifacts(dirty[2], 5, stars, ns);
    sk_coadd_input ic[NEXP], id[NEXP];
    make_inputs(clean, ic, NEXP);
    make_inputs(dirty, id, NEXP);
    sk_grid *g;
    sk_grid_tan(150.0, 2.0, 320, 320, 0.25, 0.0, &g);
    /* pixels of the coadd that the artifacts touch (through input 2's map) */
    unsigned char *touched = calloc(320 * 320, 1);
    sk_pixmap *m;
    sk_pixmap_new(g, dirty[2]->wcs, 300, 300, 1e-3, &m);
    long bx0, by0, bx1, by1, ntouched = 0;
    sk_pixmap_box(m, &bx0, &by0, &bx1, &by1);
    double xi[320], yi[320], ar[320];
    for (long y = by0; y < by1; y++) {
        sk_pixmap_row(m, y, bx0, bx1, xi, yi, ar);
        for (long x = bx0; x < bx1; x++) {
            long ix = (long)floor(xi[x - bx0] + 0.5), iy = (long)floor(yi[x - bx0] + 0.5);
            if (ix < 3 || iy < 3 || ix >= 297 || iy >= 297)
                continue;
            int hit = 0;
            for (long dy = -3; dy <= 3 && !hit; dy++)
                for (long dx = -3; dx <= 3 && !hit; dx++)
                    hit = dirty[2]->sci[(iy + dy) * 300 + ix + dx] - clean[2]->sci[(iy + dy) * 300 + ix + dx] > 1.0f;
            touched[y * 320 + x] = (unsigned char)hit;
            ntouched += hit;
        }
    }
    sk_pixmap_free(m);
    ok(ntouched > 2000, "%ld coadd pixels touched by the artifacts", ntouched);
    const int methods[3] = {SK_COMBINE_MEAN, SK_COMBINE_CLIPPED, SK_COMBINE_MEDIAN};
    for (int mi = 0; mi < 3; mi++) {
        sk_coadd_params p;
        sk_coadd_params_default(&p);
        p.combine.method = methods[mi];
        p.zero_point = 25.0;
        p.threads = 2;
        sk_coadd_result *rc = NULL, *rd = NULL;
        sk_coadd_run(ic, NEXP, g, &p, &rc);
        sk_coadd_run(id, NEXP, g, &p, &rd);
        const char *mname = sk_combine_name(methods[mi]);
        if (!rc || !rd) {
            ok(0, "%s coadds", mname);
            continue;
        }
        double worst = 0, mean = 0, gain = 0;
        long n = 0, above = 0;
        sk_header_get_double(rc->image->header, "GAIN", &gain);
        for (long i = 0; i < 320 * 320; i++) {
            if (!touched[i] || rd->nimg[i] + (rd->image->flags[i] & SK_FLAG_REJECTED ? 1 : 0) < 4 ||
                !(rc->image->weight[i] > 0))
                continue;
            /* noise: sky from the weight map plus the source's own */
            double var = 1.0 / rc->image->weight[i] + fmax(rc->image->sci[i], 0.0) / gain;
            double r = (rd->image->sci[i] - rc->image->sci[i]) / sqrt(var);
            worst = fmax(worst, fabs(r));
            mean += r;
            above += fabs(r) > 3;
            n++;
        }
        mean /= n;
        if (methods[mi] == SK_COMBINE_MEAN) {
            ok(worst > 30, "mean: the artifacts show (largest residual %.0f sigma)", worst);
        } else if (methods[mi] == SK_COMBINE_CLIPPED) {
            ok(worst < 3, "clipped: no artifact residual above 3 sigma (largest %.2f on %ld px)", worst, n);
            ok(rd->nrejected > rc->nrejected + 1000, "clipped: %ld more input pixels rejected",
               rd->nrejected - rc->nrejected);
        } else {
            /* the median loses one of five values where an input is hit: an
             * order-statistic shift of the noise, not a residual */
            ok(above * 100 < n && fabs(mean) < 1.0,
               "median: %ld of %ld artifact pixels above 3 sigma (< 1%%), mean residual %.2f sigma",
               above, n, mean);
        }
        sk_coadd_result_free(rc);
        sk_coadd_result_free(rd);
    }
    free(touched);
    for (int k = 0; k < NEXP; k++) {
        sk_image_free(clean[k]);
        sk_image_free(dirty[k]);
    }
    sk_grid_free(g);
}

static void test_flags_and_files(void)
{
    fx_star stars[16];
    int ns = fx_star_grid(150.0, 2.0, 4, 15.0, 1e4, stars);
    sk_image *img[3];
    for (int k = 0; k < 3; k++)
        img[k] = exposure(k, stars, ns, 5.0, 3);
    /* a bad column in input 1, a saturated blob in input 0 */
    for (long y = 0; y < 300; y++) {
        img[1]->flags[y * 300 + 120] |= SK_FLAG_BAD;
        img[1]->weight[y * 300 + 120] = 0.0f;
    }
    for (long y = 200; y < 204; y++)
        for (long x = 60; x < 64; x++)
            img[0]->flags[y * 300 + x] |= SK_FLAG_SATURATED;
    sk_coadd_input in[3];
    make_inputs(img, in, 3);
    sk_grid *g;
    sk_grid_from_wcs(img[0]->wcs, 300, 300, &g);
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.combine.method = SK_COMBINE_MEAN;
    sk_coadd_result *r;
    ok(sk_coadd_run(in, 3, g, &p, &r) == SK_OK, "coadd on the grid of input 1");
    /* the alignment input lands on its own pixels: a copy, not smoothed */
    sk_coadd_result *single;
    sk_coadd_run(in, 1, g, &p, &single);
    long same = 0;
    for (long i = 0; i < 300 * 300; i++)
        same += single->image->sci[i] == img[0]->sci[i] * (float)1.0 ||
                fabsf(single->image->sci[i] - img[0]->sci[i]) <= 1e-6f * fabsf(img[0]->sci[i]);
    ok(same == 300 * 300 - 16, "alignment image on its own grid: pixels unchanged (%ld)", same);
    long x_sat = 61, y_sat = 201;
    ok(single->image->weight[y_sat * 300 + x_sat] == 0.0f &&
       (single->image->flags[y_sat * 300 + x_sat] & SK_FLAG_SATURATED),
       "saturated pixels of a lone input: no data, flagged SATURATED");
    ok((r->image->flags[y_sat * 300 + x_sat] & SK_FLAG_SATURATED) && r->nimg[y_sat * 300 + x_sat] == 2 &&
       r->image->weight[y_sat * 300 + x_sat] > 0,
       "saturated in one of three: value from the other two, flag SATURATED kept");
    sk_coadd_result_free(single);
    /* the bad column of input 1 removes it from a band of coadd pixels */
    sk_pixmap *m;
    sk_pixmap_new(g, img[1]->wcs, 300, 300, 1e-3, &m);
    double xi[300], yi[300], ar[300];
    long bx0, by0, bx1, by1, checked = 0, right = 0;
    sk_pixmap_box(m, &bx0, &by0, &bx1, &by1);
    for (long y = 50; y < 250; y += 7) {
        sk_pixmap_row(m, y, bx0, bx1, xi, yi, ar);
        for (long x = bx0; x < bx1; x++) {
            double d = xi[x - bx0] - 120.0;
            if (fabs(d) < 0.4) {
                checked++;
                right += r->nimg[y * 300 + x] == 2;
            }
            if (fabs(d) > 4.5 && fabs(d) < 6 && yi[x - bx0] > 10 && yi[x - bx0] < 290 &&
                xi[x - bx0] > 10 && xi[x - bx0] < 290) {
                checked++;
                right += r->nimg[y * 300 + x] == 3;
            }
        }
    }
    sk_pixmap_free(m);
    ok(checked > 100 && right == checked, "bad column: NIMG 2 on it, 3 beyond the kernel (%ld/%ld)",
       right, checked);

    /* the same inputs from files: identical coadd */
    const char *dir = tap_tmpdir();
    char path[3][4200], bgpath[4200];
    sk_coadd_input fin[3];
    int wrote = 1;
    for (int k = 0; k < 3; k++) {
        snprintf(path[k], sizeof path[k], "%s/in%d.fits", dir, k);
        wrote &= sk_fits_write_image(path[k], img[k], NULL) == SK_OK;
        fin[k] = in[k];
        fin[k].image = NULL;
        fin[k].path = path[k];
    }
    ok(wrote, "inputs written");
    sk_coadd_result *rf;
    int rc = sk_coadd_run(fin, 3, g, &p, &rf);
    ok(rc == SK_OK, "coadd from files (%s)", rc ? sk_errmsg() : "");
    ok(rc == SK_OK && same_result(r, rf), "files and memory give the same bits");
    /* a background map in a file is subtracted */
    float *bg = malloc(300 * 300 * sizeof *bg);
    for (long i = 0; i < 300 * 300; i++) {
        bg[i] = (float)(100.0 + 0.1 * (i % 300));
        img[2]->sci[i] += bg[i];
    }
    snprintf(bgpath, sizeof bgpath, "%s/bg2.fits", dir);
    sk_fits_writer *fw;
    sk_fits_writer_open(bgpath, 0, &fw);
    sk_fits_writer_add_image(fw, NULL, -32, 300, 300, bg, NULL);
    ok(sk_fits_writer_commit(fw) == SK_OK, "background map written");
    sk_fits_write_image(path[2], img[2], NULL);
    fin[2].background_path = bgpath;
    sk_coadd_result *rb;
    rc = sk_coadd_run(fin, 3, g, &p, &rb);
    double worst = 0;
    for (long i = 0; rc == SK_OK && i < 300 * 300; i++)
        worst = fmax(worst, fabs(rb->image->sci[i] - r->image->sci[i]));
    ok(rc == SK_OK && worst < 1e-3, "background map subtracted (largest difference %.2g)", worst);
    /* extract's background product (a mesh): the rows the coadd evaluates
     * are those of the full map, and subtracting it from the file or from
     * memory gives the same coadd */
    sk_background_params bp;
    sk_background_params_default(&bp);
    bp.mesh_px = 64;
    sk_background *est = NULL;
    ok(sk_background_estimate(img[2], &bp, 1, &est) == SK_OK, "background estimated by extract");
    char meshpath[4200];
    snprintf(meshpath, sizeof meshpath, "%s/bg2.mesh.fits", dir);
    ok(est && sk_background_write(meshpath, est, 0, 3.0) == SK_OK, "mesh product written");
    sk_bkg_mesh *mesh = NULL;
    ok(sk_bkg_mesh_read(meshpath, &mesh) == SK_OK, "mesh product read");
    float *rows = malloc(120 * 70 * sizeof *rows);
    long diff = 0;
    if (mesh && est && sk_bkg_mesh_rows(mesh, 31, 170, 120, 70, rows) == SK_OK)
        for (long y = 0; y < 70; y++)
            for (long x = 0; x < 120; x++)
                diff += memcmp(&rows[y * 120 + x], &est->level[(170 + y) * 300 + 31 + x], sizeof(float)) != 0;
    else
        diff = -1;
    is_int(diff, 0, "rows evaluated from the mesh are the full map's, bit for bit");
    sk_bkg_mesh_free(mesh);
    free(rows);
    fin[2].background_path = meshpath;
    sk_coadd_result *rmesh = NULL, *rmem = NULL;
    int rc1 = sk_coadd_run(fin, 3, g, &p, &rmesh);
    fin[2].background_path = NULL;
    fin[2].background = est ? est->level : NULL;
    int rc2 = sk_coadd_run(fin, 3, g, &p, &rmem);
    ok(rc1 == SK_OK && rc2 == SK_OK && same_result(rmesh, rmem),
       "mesh product and in-memory map give the same coadd");
    sk_coadd_result_free(rmesh);
    sk_coadd_result_free(rmem);
    fin[2].background = NULL;
    sk_background_free(est);
    /* written products */
    char out[4200];
    snprintf(out, sizeof out, "%s/coadd.fits", dir);
    ok(sk_coadd_write(out, r, NULL) == SK_OK, "coadd written");
    ok(sk_fits_has_hdu(out, "SCI") && sk_fits_has_hdu(out, "WGT") && sk_fits_has_hdu(out, "FLG") &&
       sk_fits_has_hdu(out, "NIMG"), "SCI, WGT, FLG and NIMG extensions");
    float *nimg;
    long w, h;
    sk_header *nh;
    rc = sk_fits_read_plane(out, "NIMG", &nimg, &w, &h, &nh);
    long nsame = 0;
    for (long i = 0; rc == SK_OK && i < w * h; i++)
        nsame += nimg[i] == (float)r->nimg[i];
    ok(rc == SK_OK && nsame == 300 * 300, "NIMG read back");
    sk_image *back;
    rc = sk_fits_read_image(out, NULL, &back);
    double mz = 0;
    ok(rc == SK_OK && sk_header_get_double(back->header, "MAGZERO", &mz) == 1 && back->wcs &&
       memcmp(back->sci, r->image->sci, 300 * 300 * sizeof(float)) == 0,
       "SCI read back with MAGZERO and WCS");
    if (rc == SK_OK)
        sk_image_free(back);
    free(nimg);
    sk_header_free(nh);
    /* an input file that is not FITS is named */
    FILE *f = fopen(path[1], "w");
    fputs("not a fits file\n", f);
    fclose(f);
    sk_coadd_result *bad = NULL;
    ok(sk_coadd_run(fin, 3, g, &p, &bad) == SK_EINPUT && strstr(sk_errmsg(), "in1.fits"),
       "a broken input is named: %s", sk_errmsg());
    free(bg);
    sk_coadd_result_free(r);
    sk_coadd_result_free(rf);
    sk_coadd_result_free(rb);
    for (int k = 0; k < 3; k++)
        sk_image_free(img[k]);
    sk_grid_free(g);
}

int main(void)
{
    tap_plan(88);
    test_combine();
    test_stars();
    test_depth();
    test_artifacts();
    test_flags_and_files();
    return tap_done();
}
