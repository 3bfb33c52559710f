/* test_extract.c: background, detection, deblending and measurement checked
 * against images drawn here with exactly known stars and noise. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/image.h"
#include "../tap.h"
#include "extract/extract_internal.h"

/* ---- a fixed-seed generator (xorshift64*) and Gaussian deviates ---- */
static uint64_t rng_state = 88172645463325252ULL;
static double urand(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}
static double grand(void)
{
    double u = urand(), v = urand();
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

typedef struct {
    double x, y, flux, snr;
} star;

/* Flux fraction of a unit Gaussian of sigma s centred at c in [a, b]. */
static double gauss_int(double a, double b, double c, double s)
{
    return 0.5 * (erf((b - c) / (M_SQRT2 * s)) - erf((a - c) / (M_SQRT2 * s)));
}

static void add_gauss_star(float *img, long w, long h, const star *st, double sigma)
{
    long r = (long)ceil(8 * sigma);
    long x0 = lround(st->x), y0 = lround(st->y);
    for (long y = y0 - r; y <= y0 + r; y++) {
        if (y < 0 || y >= h)
            continue;
        double fy = gauss_int(y - 0.5, y + 0.5, st->y, sigma);
        for (long x = x0 - r; x <= x0 + r; x++) {
            if (x < 0 || x >= w)
                continue;
            img[y * w + x] += (float)(st->flux * fy * gauss_int(x - 0.5, x + 0.5, st->x, sigma));
        }
    }
}

/* Moffat profile integrated over pixels by 8x8 sub-sampling. */
static void add_moffat_star(float *img, long w, long h, const star *st, double alpha, double beta)
{
    long r = 45;
    long x0 = lround(st->x), y0 = lround(st->y);
    double norm = (beta - 1) / (M_PI * alpha * alpha);
    for (long y = y0 - r; y <= y0 + r; y++)
        for (long x = x0 - r; x <= x0 + r; x++) {
            if (x < 0 || y < 0 || x >= w || y >= h)
                continue;
            double s = 0;
            for (int j = 0; j < 8; j++)
                for (int i = 0; i < 8; i++) {
                    double dx = x - 0.5 + (i + 0.5) / 8 - st->x, dy = y - 0.5 + (j + 0.5) / 8 - st->y;
                    s += pow(1 + (dx * dx + dy * dy) / (alpha * alpha), -beta);
                }
            img[y * w + x] += (float)(st->flux * norm * s / 64);
        }
}

/* An image with background `level` (+ gradient), Gaussian noise sigma_bkg
 * plus Poisson-like source noise with gain; weight = 1/sigma_bkg^2. The
 * noiseless model is added before the noise. */
static sk_image *make_image(long w, long h, double level, double gx, double gy, double sigma_bkg,
                            double gain, const float *model)
{
    sk_image *img = sk_image_new(w, h);
    for (long y = 0; y < h; y++)
        for (long x = 0; x < w; x++) {
            long i = y * w + x;
            double m = model ? model[i] : 0;
            double var = sigma_bkg * sigma_bkg + (gain > 0 && m > 0 ? m / gain : 0);
            img->sci[i] = (float)(level + gx * x + gy * y + m + sqrt(var) * grand());
            img->weight[i] = (float)(1.0 / (sigma_bkg * sigma_bkg));
        }
    return img;
}

static const sk_source *nearest(const sk_source_list *l, double x, double y, double rmax)
{
    const sk_source *best = NULL;
    double bd = rmax * rmax;
    for (long k = 0; k < l->n; k++) {
        double dx = l->src[k].xwin - x, dy = l->src[k].ywin - y, d = dx * dx + dy * dy;
        if (d <= bd) {
            bd = d;
            best = &l->src[k];
        }
    }
    return best;
}

static void test_overlap(void)
{
    const double radii[] = { 0.3, 0.5, 1.0, 2.7, 7.25 };
    const double offs[][2] = { { 0, 0 }, { 0.5, 0.5 }, { 0.31, -0.77 }, { 10.2, 3.9 } };
    double worst = 0;
    for (int a = 0; a < 5; a++)
        for (int o = 0; o < 4; o++) {
            double r = radii[a], cx = offs[o][0], cy = offs[o][1], sum = 0;
            for (long y = (long)floor(cy - r - 1); y <= (long)ceil(cy + r + 1); y++)
                for (long x = (long)floor(cx - r - 1); x <= (long)ceil(cx + r + 1); x++)
                    sum += sk_circle_rect_overlap(x - 0.5 - cx, y - 0.5 - cy, x + 0.5 - cx, y + 0.5 - cy, r);
            double e = fabs(sum - M_PI * r * r);
            if (e > worst)
                worst = e;
        }
    ok(worst < 1e-9, "pixel/circle overlaps sum to pi r^2 (worst error %.2g)", worst);
    is_near(sk_circle_rect_overlap(-0.5, -0.5, 0.5, 0.5, 0.5), M_PI / 4, 1e-12,
            "circle inscribed in a pixel: pi/4");
    is_near(sk_circle_rect_overlap(0, 0, 1, 1, 1), M_PI / 4, 1e-12, "quarter disc in the unit square");
    is_near(sk_circle_rect_overlap(-0.5, -0.5, 0.5, 0.5, 0.6),
            M_PI * 0.36 - 4 * (0.36 * acos(0.5 / 0.6) - 0.5 * sqrt(0.36 - 0.25)), 1e-12,
            "disc minus four circular segments");
}

static void test_background(void)
{
    long w = 512, h = 512;
    double sigma = 5.0;
    float *model = calloc((size_t)(w * h), sizeof(float));
    for (int k = 0; k < 150; k++) {
        star s = { urand() * w, urand() * h, 200 + 20000 * urand() * urand(), 0 };
        add_gauss_star(model, w, h, &s, 1.3);
    }
    sk_image *img = make_image(w, h, 100.0, 0, 0, sigma, 0, model);
    sk_background_params bp;
    sk_background_params_default(&bp);
    sk_background *bg = NULL;
    ok(sk_background_estimate(img, &bp, 2, &bg) == 0, "background of a flat sky with stars");
    double sl = 0, sr = 0;
    for (long i = 0; i < w * h; i++) {
        sl += bg->level[i];
        sr += bg->rms[i];
    }
    sl /= (double)(w * h);
    sr /= (double)(w * h);
    is_near(sl, 100.0, 0.02 * 100.0, "flat background level within 2 %%");
    is_near(sl, 100.0, 0.1 * sigma, "flat background level within 0.1 sigma");
    is_near(sr, sigma, 0.02 * sigma, "background rms within 2 %%");
    /* the product: mesh and rule written, maps rebuilt identically */
    char path[4200];
    snprintf(path, sizeof path, "%s/bkg.fits", tap_tmpdir());
    sk_background *back = NULL;
    ok(sk_background_write(path, bg, 0, 3.0) == 0 && sk_background_read(path, 2, &back) == 0,
       "background product written and read back");
    int same = back && back->width == w && back->height == h && back->nx == bg->nx && back->ny == bg->ny;
    for (long i = 0; same && i < w * h; i++)
        if (back->level[i] != bg->level[i] || back->rms[i] != bg->rms[i])
            same = 0;
    ok(same, "maps rebuilt from the mesh equal the original maps");
    sk_background_free(back);
    remove(path);
    sk_background_free(bg);
    sk_image_free(img);

    /* a gradient: 30 sigma across the image in x, 20 in y */
    double gx = 30 * sigma / w, gy = 20 * sigma / h;
    img = make_image(w, h, 100.0, gx, gy, sigma, 0, model);
    ok(sk_background_estimate(img, &bp, 1, &bg) == 0, "background under a gradient");
    double sd = 0, maxd = 0, srr = 0;
    for (long y = 0; y < h; y++)
        for (long x = 0; x < w; x++) {
            long i = y * w + x;
            double d = bg->level[i] - (100.0 + gx * x + gy * y);
            sd += d;
            if (fabs(d) > maxd)
                maxd = fabs(d);
            srr += bg->rms[i];
        }
    sd /= (double)(w * h);
    srr /= (double)(w * h);
    is_near(sd / sigma, 0, 0.1, "level unbiased to 0.1 sigma under a gradient (mean bias %.4f sigma)", sd / sigma);
    ok(maxd / sigma < 0.3, "largest local level error under a gradient %.3f sigma < 0.3", maxd / sigma);
    is_near(srr, sigma, 0.02 * sigma, "rms within 2 %% under a gradient");

    /* flagged and zero-weight pixels are ignored */
    for (long y = 0; y < h; y++)
        for (long x = 100; x < 140; x++)
            img->sci[y * w + x] = 1e5f, img->flags[y * w + x] = SK_FLAG_BAD;
    for (long y = 300; y < 340; y++)
        for (long x = 0; x < w; x++)
            img->sci[y * w + x] = -1e5f, img->weight[y * w + x] = 0;
    sk_background *bg2 = NULL;
    ok(sk_background_estimate(img, &bp, 3, &bg2) == 0, "background with bad pixels");
    double worst = 0;
    for (long i = 0; i < w * h; i++) {
        double d = fabs(bg2->level[i] - bg->level[i]);
        if (d > worst)
            worst = d;
    }
    ok(worst < 0.3 * sigma, "flagged and zero-weight pixels do not change the level (worst %.3f sigma)",
       worst / sigma);
    sk_background_free(bg);
    sk_background_free(bg2);
    for (long i = 0; i < w * h; i++)
        img->weight[i] = 0;
    ok(sk_background_estimate(img, &bp, 1, &bg) == SK_EINPUT && bg == NULL,
       "an image without any usable pixel is refused");
    sk_image_free(img);
    free(model);
}

/* A grid of isolated Gaussian stars with SNR 3..3000. */
static void test_star_field(void)
{
    long w = 512, h = 512;
    double sigma_bkg = 10.0, gain = 4.0, fwhm = 3.0, psig = fwhm / 2.3548200450309493;
    int nside = 19;
    int nstar = nside * nside;
    star *stars = malloc(sizeof *stars * (size_t)nstar);
    float *model = calloc((size_t)(w * h), sizeof(float));
    double noise_opt = sigma_bkg * sqrt(4 * M_PI * psig * psig);
    for (int k = 0; k < nstar; k++) {
        int i = k % nside, j = k / nside;
        stars[k].x = 16 + i * 25.5 + (urand() - 0.5) * 4;
        stars[k].y = 16 + j * 25.5 + (urand() - 0.5) * 4;
        stars[k].snr = 3 * pow(1000.0, (double)k / (nstar - 1));
        stars[k].flux = stars[k].snr * noise_opt;
        add_gauss_star(model, w, h, &stars[k], psig);
    }
    sk_image *img = make_image(w, h, 300.0, 0.02, -0.01, sigma_bkg, gain, model);
    sk_extract_params p;
    sk_extract_params_default(&p);
    p.gain = gain;
    p.fwhm_guess_px = 4.5;  /* a wrong first guess, refined from the stars */
    sk_extract_result *r = NULL;
    ok(sk_extract_run(img, &p, 2, &r) == 0, "extraction of a star field");
    if (!r) {
        free(stars);
        free(model);
        sk_image_free(img);
        sk_extract_params_clear(&p);
        return;
    }
    const sk_source_list *l = r->sources;
    if (getenv("SK_TEST_VERBOSE")) {
        double sb = 0;
        for (long y = 0; y < h; y++)
            for (long x = 0; x < w; x++)
                sb += r->background->level[y * w + x] - (300.0 + 0.02 * x - 0.01 * y);
        tap_diag("mean background error %.4f ADU (sigma %.1f), level_err %.4f", sb / (w * h), sigma_bkg,
                 r->background->level_err);
    }
    is_near(r->fwhm_px, fwhm, 0.03 * fwhm, "image FWHM measured within 3 %% (%.3f px)", r->fwhm_px);
    long n10 = 0, found10 = 0, nmatched = 0, n50 = 0, nbright = 0;
    double sdx2 = 0, sdf = 0, sft = 0, spull = 0, spull2 = 0, sxp2 = 0;
    long npull = 0, nxp = 0, nart = 0;
    char *matched = calloc((size_t)l->n, 1);
    for (int k = 0; k < nstar; k++) {
        const sk_source *s = nearest(l, stars[k].x, stars[k].y, 2.0);
        if (s) {
            matched[s - l->src] = 1;
            nmatched++;
        }
        if (stars[k].snr >= 10) {
            n10++;
            found10 += s != NULL;
        }
        if (!s)
            continue;
        if (stars[k].snr >= 50) {
            n50++;
            double dx = s->xwin - stars[k].x, dy = s->ywin - stars[k].y;
            sdx2 += 0.5 * (dx * dx + dy * dy);
            sdf += s->flux_aper[1] - stars[k].flux;
            sft += stars[k].flux;
            nbright++;
            if (s->flags & SK_SRC_ARTIFACT)
                nart++;
        }
        if (stars[k].snr >= 10) {
            double pull = (s->flux_aper[1] - stars[k].flux) / s->flux_aper_err[1];
            spull += pull;
            spull2 += pull * pull;
            npull++;
            double px = (s->xwin - stars[k].x) / s->xwin_err, py = (s->ywin - stars[k].y) / s->ywin_err;
            sxp2 += 0.5 * (px * px + py * py);
            nxp++;
        }
    }
    long spurious = 0;
    for (long k = 0; k < l->n; k++)
        spurious += !matched[k];
    free(matched);
    double compl10 = (double)found10 / (double)n10;
    ok(compl10 >= 0.95, "completeness at SNR >= 10: %.3f (%ld/%ld) >= 0.95", compl10, found10, n10);
    ok((double)spurious / (double)l->n < 0.01, "spurious detections %ld of %ld < 1 %%", spurious, l->n);
    double crms = sqrt(sdx2 / (double)n50);
    ok(crms <= 0.05, "windowed centroid rms %.4f px <= 0.05 at SNR >= 50 (%ld stars)", crms, n50);
    double bias = sdf / sft;
    ok(fabs(bias) <= 0.005, "2-FWHM aperture flux bias %.5f within 0.5 %%", bias);
    double pm = spull / npull, ps = sqrt(spull2 / npull - pm * pm);
    ok(fabs(ps - 1) <= 0.1, "flux pull sigma %.3f within 10 %% of 1 (%ld stars, mean %.3f)", ps, npull, pm);
    double xps = sqrt(sxp2 / nxp);
    ok(fabs(xps - 1) <= 0.2, "centroid pull sigma %.3f within 20 %% of 1", xps);
    ok(nart == 0, "no bright star flagged as an artifact (%ld of %ld)", nart, nbright);
    long numbered_ok = 1;
    for (long k = 0; k < l->n; k++) {
        if (l->src[k].number != k + 1)
            numbered_ok = 0;
        if (k && (l->src[k].ywin < l->src[k - 1].ywin))
            numbered_ok = 0;
    }
    ok(numbered_ok, "sources numbered 1..n in ywin order");

    /* shape only (what the second pass measures its candidates with):
       the same objects, centroids, FWHMs and SATURATED/ARTIFACT flags
       as the full measurement, no photometry */
    sk_measure_params mp = sk_extract_measure_params(&p, r);
    mp.shape_only = 1;
    sk_source_list *so = NULL;
    long nsame = 0;
    int nophot = 1;
    const unsigned shape_flags = SK_SRC_SATURATED | SK_SRC_ARTIFACT | SK_SRC_WIN_FAILED;
    if (sk_measure(img, r->background, r->detection, &mp, 2, &so) == SK_OK && so->n == l->n)
        for (long k = 0; k < l->n; k++) {
            const sk_source *a = &l->src[k], *b = &so->src[k];
            nsame += a->xwin == b->xwin && a->ywin == b->ywin && a->fwhm_px == b->fwhm_px &&
                    so->object[k] == l->object[k] && (a->flags & shape_flags) == (b->flags & shape_flags);
            nophot &= b->flux_auto == 0 && b->flux_aper[0] == 0;
        }
    ok(so && nsame == l->n && nophot, "shape-only measurement: %ld of %ld sources with the same centroid, "
       "FWHM and shape flags, without photometry", nsame, l->n);
    sk_source_list_free(so);

    /* the FITS table: 1-based pixel coordinates, one aperture vector */
    sk_table *tab = NULL;
    ok(sk_source_table(l, img, &tab) == 0 && tab && tab->nrows == l->n, "source table of %ld rows", l->n);
    if (tab && l->n > 0) {
        sk_column *cx = sk_table_column(tab, "XWIN_IMAGE"), *cy = sk_table_column(tab, "YWIN_IMAGE");
        sk_column *ca = sk_table_column(tab, "FLUX_APER"), *cn = sk_table_column(tab, "NUMBER");
        long k = l->n / 2;
        ok(cx && cy && fabs(sk_column_get(cx, k, 0) - (l->src[k].xwin + 1)) < 1e-9 &&
               fabs(sk_column_get(cy, k, 0) - (l->src[k].ywin + 1)) < 1e-9,
           "table centroids are 1-based (FITS convention)");
        ok(ca && ca->repeat == 4 && fabs(sk_column_get(ca, k, 3) - l->src[k].flux_aper[3]) < 1e-3 * fabs(l->src[k].flux_aper[3]) + 1e-3,
           "FLUX_APER holds the 4 apertures");
        ok(cn && (long)sk_column_get(cn, k, 0) == k + 1, "NUMBER column");
        ok(!sk_table_column(tab, "RA"), "no RA/DEC columns without a WCS");
    }
    sk_table_free(tab);

    /* the same numbers for any thread count */
    sk_extract_result *r1 = NULL, *r3 = NULL;
    ok(sk_extract_run(img, &p, 1, &r1) == 0 && sk_extract_run(img, &p, 3, &r3) == 0,
       "extraction with 1 and 3 threads");
    int same = r1 && r3 && r1->sources->n == l->n && r3->sources->n == l->n;
    for (long k = 0; same && k < l->n; k++) {
        const sk_source *a = &r1->sources->src[k], *b = &r3->sources->src[k], *c = &l->src[k];
        if (a->xwin != b->xwin || a->ywin != b->ywin || a->flux_auto != b->flux_auto ||
            a->flags != b->flags || a->flux_aper[0] != b->flux_aper[0] || c->xwin != a->xwin ||
            c->flux_aper[3] != a->flux_aper[3] || c->flux_iso != b->flux_iso || a->number != b->number)
            same = 0;
    }
    ok(same, "identical source lists with 1, 2 and 3 threads");
    sk_extract_result_free(r1);
    sk_extract_result_free(r3);

    /* cosmic rays (single sharp pixels) and an unflagged bad column */
    long ncr = 0;
    double crx[40], cry[40];
    for (int k = 0; k < 40; k++) {
        /* halfway between grid stars */
        int i = k % 18, j = (k * 7) % 18;
        long x = lround(16 + i * 25.5 + 12.75), y = lround(16 + j * 25.5 + 12.75);
        if (x >= w || y >= h)
            continue;
        img->sci[y * w + x] += (float)(sigma_bkg * (20 + 300 * urand()));
        crx[ncr] = (double)x;
        cry[ncr] = (double)y;
        ncr++;
    }
    long colx = lround(16 + 7 * 25.5 + 12.75);
    for (long y = 0; y < h; y++)
        img->sci[y * w + colx] += (float)(8 * sigma_bkg);
    sk_extract_result *rc = NULL;
    p.refine_fwhm = 0;
    p.fwhm_guess_px = r->fwhm_px;
    ok(sk_extract_run(img, &p, 2, &rc) == 0, "extraction with cosmic rays and a bad column");
    long clean_artifacts = 0, detected_cr = 0, col_dets = 0;
    for (long k = 0; rc && k < rc->sources->n; k++) {
        const sk_source *s = &rc->sources->src[k];
        int near_cr = 0;
        for (long c = 0; c < ncr; c++)
            if (hypot(s->x - crx[c], s->y - cry[c]) < 2.5)
                near_cr = 1;
        int on_col = fabs(s->xwin - (double)colx) < 2.5 && nearest(l, s->xwin, s->ywin, 3.0) == NULL;
        if (near_cr)
            detected_cr++;
        if (on_col)
            col_dets++;
        if ((near_cr || on_col) && !(s->flags & (SK_SRC_ARTIFACT | SK_SRC_FLAGGED)))
            clean_artifacts++;
    }
    tap_diag("%ld cosmic rays detected of %ld, %ld detections on the bad column", detected_cr, ncr, col_dets);
    ok(clean_artifacts == 0, "no cosmic ray or bad-column detection with a clean flag (%ld)", clean_artifacts);
    /* the same defects flagged in FLG with weight 0 give no detection at all */
    for (long c = 0; c < ncr; c++) {
        long i = lround(cry[c]) * w + lround(crx[c]);
        img->flags[i] |= SK_FLAG_COSMIC;
        img->weight[i] = 0;
    }
    for (long y = 0; y < h; y++) {
        img->flags[y * w + colx] |= SK_FLAG_BAD;
        img->weight[y * w + colx] = 0;
    }
    sk_extract_result *rf = NULL;
    ok(sk_extract_run(img, &p, 2, &rf) == 0, "extraction with flagged defects");
    /* (faint grid stars near the threshold may come and go with the
       masked pixels: a detection is one of the defects' when no true star
       lies within 3 px; they are 12 px or more from every star) */
    long flagged_dets = 0;
    for (long k = 0; rf && k < rf->sources->n; k++) {
        const sk_source *s = &rf->sources->src[k];
        int star_there = 0;
        for (int q = 0; q < nstar && !star_there; q++)
            star_there = hypot(s->xwin - stars[q].x, s->ywin - stars[q].y) < 3.0;
        flagged_dets += !star_there;
    }
    ok(flagged_dets == 0, "flagged cosmic rays and column produce no detection (%ld)", flagged_dets);
    sk_extract_result_free(rc);
    sk_extract_result_free(rf);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_image_free(img);
    free(model);
    free(stars);
}

static void test_pure_noise(void)
{
    long w = 512, h = 512;
    sk_image *img = make_image(w, h, 50.0, 0, 0, 7.0, 0, NULL);
    sk_extract_params p;
    sk_extract_params_default(&p);
    sk_extract_result *r = NULL;
    ok(sk_extract_run(img, &p, 2, &r) == 0, "extraction of pure noise");
    long n = r ? r->sources->n : -1;
    ok(n >= 0 && n <= 2, "at most 2 detections in 262144 pixels of pure noise (%ld)", n);
    is_near(r ? r->background->median_rms : 0, 7.0, 0.14, "pure-noise rms within 2 %%");
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_image_free(img);
}

/* An image whose header states correlated noise (NOISEPSF = 1.5): the
 * same image without the card finds a star of optimal SNR 8 that the card
 * puts at 5.3 (too few pixels above 5 for the minimum area), and the aperture errors of a star of SNR
 * 40 (sky-dominated, no gain) grow 1.5 times. */
static void test_noise_factor(void)
{
    long w = 128, h = 128;
    double sigma_bkg = 5.0, fwhm = 3.0, psig = fwhm / 2.3548200450309493;
    double noise_opt = sigma_bkg * sqrt(4 * M_PI * psig * psig);
    star st[2] = {{40.3, 64.2, 8.0 * noise_opt, 8.0}, {88.6, 63.7, 40.0 * noise_opt, 40.0}};
    float *model = calloc((size_t)(w * h), sizeof(float));
    for (int k = 0; k < 2; k++)
        add_gauss_star(model, w, h, &st[k], psig);
    sk_image *img = make_image(w, h, 100.0, 0, 0, sigma_bkg, 0, model);
    sk_extract_params p;
    sk_extract_params_default(&p);
    p.fwhm_guess_px = fwhm;
    p.refine_fwhm = 0;
    sk_extract_result *r0 = NULL, *r1 = NULL;
    int rc = sk_extract_run(img, &p, 1, &r0);
    sk_header_set_double(img->header, "NOISEPSF", 1.5, NULL);
    rc = rc ? rc : sk_extract_run(img, &p, 1, &r1);
    const sk_source *f0 = rc ? NULL : nearest(r0->sources, st[0].x, st[0].y, 2.0);
    const sk_source *f1 = rc ? NULL : nearest(r1->sources, st[0].x, st[0].y, 2.0);
    ok(rc == 0 && f0 && !f1, "NOISEPSF 1.5: the SNR-8 star found without the card (%d), not with it (%d)",
       f0 != NULL, f1 != NULL);
    const sk_source *b0 = rc ? NULL : nearest(r0->sources, st[1].x, st[1].y, 2.0);
    const sk_source *b1 = rc ? NULL : nearest(r1->sources, st[1].x, st[1].y, 2.0);
    double ratio = b0 && b1 && p.naper > 0 ? b1->flux_aper_err[0] / b0->flux_aper_err[0] : 0;
    ok(ratio > 1.45 && ratio <= 1.5 + 1e-9, "and the SNR-40 star's aperture error %.3f times larger", ratio);
    sk_extract_result_free(r0);
    sk_extract_result_free(r1);
    sk_extract_params_clear(&p);
    sk_image_free(img);
    free(model);
}

/* Moffat stars: aperture photometry against the analytic encircled energy. */
static void test_moffat(void)
{
    long w = 256, h = 256;
    double beta = 3.0, fwhm = 3.5, alpha = fwhm / (2 * sqrt(pow(2, 1 / beta) - 1));
    float *model = calloc((size_t)(w * h), sizeof(float));
    star stars[25];
    for (int k = 0; k < 25; k++) {
        stars[k].x = 25 + (k % 5) * 50 + urand();
        stars[k].y = 25 + (k / 5) * 50 + urand();
        stars[k].flux = 2e5 * (1 + urand());
        add_moffat_star(model, w, h, &stars[k], alpha, beta);
    }
    sk_image *img = make_image(w, h, 1000.0, 0, 0, 10.0, 2.0, model);
    sk_extract_params p;
    sk_extract_params_default(&p);
    p.gain = 2.0;
    p.background.mesh_px = 64;
    sk_extract_result *r = NULL;
    ok(sk_extract_run(img, &p, 2, &r) == 0, "extraction of Moffat stars");
    double sdf = 0, sft = 0, spull = 0, spull2 = 0, sauto = 0;
    long n = 0;
    const sk_source_list *l = r ? r->sources : NULL;
    for (int k = 0; l && k < 25; k++) {
        const sk_source *s = nearest(l, stars[k].x, stars[k].y, 1.0);
        if (!s)
            continue;
        double rad = l->aper_radius_px[3];
        double ee = 1 - pow(1 + rad * rad / (alpha * alpha), 1 - beta);
        double truth = stars[k].flux * ee;
        sdf += s->flux_aper[3] - truth;
        sft += truth;
        double pull = (s->flux_aper[3] - truth) / s->flux_aper_err[3];
        spull += pull;
        spull2 += pull * pull;
        sauto += s->flux_auto / stars[k].flux;
        n++;
    }
    is_int(n, 25, "all 25 Moffat stars found");
    if (n == 0)
        n = 1;
    ok(l && 1 - pow(1 + pow(l->aper_radius_px[3] / alpha, 2), 1 - beta) > 0.99,
       "the 5-FWHM aperture holds > 99 %% of a beta=3 Moffat");
    ok(fabs(sdf / sft) <= 0.005, "5-FWHM aperture flux bias %.5f within 0.5 %%", sdf / sft);
    double pm = spull / n, ps = sqrt(spull2 / n - pm * pm);
    ok(fabs(ps - 1) < 0.35, "Moffat aperture pull sigma %.3f within 35 %% of 1 (25 stars; mean %.2f)", ps, pm);
    ok(sauto / n > 0.9 && sauto / n < 1.0, "AUTO flux holds 90-100 %% of the light (%.4f)", sauto / n);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_image_free(img);
    free(model);
}

/* Close pairs and a long chain of stars: deblending without fixed limits. */
/* Default settings with the FWHM held at that of a Gaussian of sigma
 * psig (px) and a 64-px background mesh. */
static void fixed_fwhm_params(sk_extract_params *p, double psig)
{
    sk_extract_params_default(p);
    p->refine_fwhm = 0;
    p->fwhm_guess_px = psig * 2.3548;
    p->background.mesh_px = 64;
}

static void test_deblend(void)
{
    long w = 460, h = 200;
    double psig = 1.3;
    float *model = calloc((size_t)(w * h), sizeof(float));
    star a = { 50.3, 50.2, 40000, 0 }, b = { 57.1, 51.0, 12000, 0 };
    add_gauss_star(model, w, h, &a, psig);
    add_gauss_star(model, w, h, &b, psig);
    int nchain = 60;
    for (int k = 0; k < nchain; k++) {
        star s = { 20 + k * 7.0, 140 + 3 * sin(k * 0.7), 20000 + 5000 * (k % 3), 0 };
        add_gauss_star(model, w, h, &s, psig);
    }
    sk_image *img = make_image(w, h, 0.0, 0, 0, 5.0, 0, model);
    sk_extract_params p;
    fixed_fwhm_params(&p, psig);
    sk_extract_result *r = NULL;
    ok(sk_extract_run(img, &p, 2, &r) == 0, "extraction of blends");
    const sk_source_list *l = r ? r->sources : NULL;
    const sk_source *sa = l ? nearest(l, a.x, a.y, 1.0) : NULL;
    const sk_source *sb = l ? nearest(l, b.x, b.y, 1.0) : NULL;
    ok(sa && sb && sa != sb, "a pair 7 px apart with flux ratio 0.3 is split in two");
    ok(sa && sb && (sa->flags & SK_SRC_BLENDED) && (sb->flags & SK_SRC_BLENDED), "both flagged blended");
    if (sa && sb) {
        is_near(sa->flux_aper[0] / (a.flux * (1 - exp(-0.5 * pow(l->aper_radius_px[0] / psig, 2)))), 1, 0.05,
                "blended primary 1-FWHM flux within 5 %%");
        is_near(sb->flux_aper[0] / (b.flux * (1 - exp(-0.5 * pow(l->aper_radius_px[0] / psig, 2)))), 1, 0.08,
                "blended secondary 1-FWHM flux within 8 %% (neighbour pixels replaced)");
    }
    long nfound = 0;
    for (int k = 0; l && k < nchain; k++) {
        double x = 20 + k * 7.0, y = 140 + 3 * sin(k * 0.7);
        if (nearest(l, x, y, 1.0))
            nfound++;
    }
    ok(nfound >= nchain - 2, "a chain of %d touching stars deblended into %ld", nchain, nfound);
    ok(r && r->detection->nsegments < r->detection->nobjects, "segments (%ld) < objects (%ld)",
       r ? r->detection->nsegments : 0, r ? r->detection->nobjects : 0);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_image_free(img);
    free(model);
}

/* An undersampled field (Gaussian PSF of FWHM 1.2 px, the FWHM measured
 * from the data): 36 bright stars and 36 of signal-to-noise 25 on a grid.
 * Such a faint star covers about 5 pixels above the threshold, so a fixed
 * minimum area of 5 pixels lost a quarter of them; every one is found, and
 * the smaller minimum area brings no detections away from the stars. The
 * windowed centroids of the bright ones are not pulled to pixel centres. */
static void test_undersampled(void)
{
    long w = 200, h = 200, nstar = 0, nfaint = 0, nbright = 0;
    double err2 = 0;
    double psig = 1.2 / 2.3548200450309493, sky = 5.0;
    double nea = 4 * M_PI * (psig * psig + 1.0 / 12), faint_flux = 25 * sky * sqrt(nea);
    float *model = calloc((size_t)(w * h), sizeof(float));
    star st[72];
    for (int j = 0; j < 8 && model; j++)
        for (int i = 0; i < 9; i++) {
            star s = { 12 + 22.0 * i + urand(), 12 + 24.0 * j + urand(), 0, 0 };
            s.flux = (i + j) % 2 ? faint_flux : 60 * faint_flux;
            add_gauss_star(model, w, h, &s, psig);
            st[nstar++] = s;
        }
    sk_image *img = make_image(w, h, 100.0, 0, 0, sky, 0, model);
    sk_extract_params p;
    sk_extract_params_default(&p);
    sk_extract_result *r = NULL;
    ok(model && sk_extract_run(img, &p, 1, &r) == 0, "extraction of an undersampled field");
    const sk_source_list *l = r ? r->sources : NULL;
    long found = 0, stray = 0, nart = 0;
    for (long k = 0; l && k < nstar; k++) {
        const sk_source *s = nearest(l, st[k].x, st[k].y, 1.0);
        nart += s && (s->flags & SK_SRC_ARTIFACT);
        if (st[k].flux == faint_flux)
            nfaint++;
        found += s && st[k].flux == faint_flux;
        if (s && st[k].flux > faint_flux) {
            double e = hypot(s->xwin - st[k].x, s->ywin - st[k].y);
            err2 += e * e;
            nbright++;
        }
    }
    for (long k = 0; l && k < l->n; k++) {
        long m = 0;
        for (long q = 0; q < nstar && !m; q++)
            m = hypot(l->src[k].xwin - st[q].x, l->src[k].ywin - st[q].y) <= 3.0;
        stray += !m;
    }
    ok(r && fabs(r->fwhm_px / 1.2 - 1) <= 0.1, "FWHM 1.2 px measured within 10 %% (%.3f)",
       r ? r->fwhm_px : 0);
    ok(nfaint == 36 && found == nfaint, "all %ld stars of SNR 25 at FWHM 1.2 px found within 1 px (%ld)",
       nfaint, found);
    ok(l && stray <= 1, "no detections away from the stars (%ld)", stray);
    ok(l && nart == 0, "no star of FWHM 1.2 px flagged ARTIFACT (%ld)", nart);
    double rms = nbright ? sqrt(err2 / (double)nbright) : 1;
    ok(nbright == 36 && rms <= 0.04, "the windowed centroids of the %ld stars of SNR 1500 within %.3f px "
       "rms (<= 0.04; a window as narrow as the PSF pulls them to pixel centres)", nbright, rms);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_image_free(img);
    free(model);
}

/* Stars sharper than the lower limit of the image FWHM (a Gaussian of FWHM
 * 0.6 px before the pixels, as in a mosaic resampled to pixels several
 * times the seeing): the image FWHM is held at its limit of 1.2 px, the
 * core is measured as it is, and no star, at whatever phase within its
 * pixel, is taken for a cosmic ray. */
static void test_sharper_than_limit(void)
{
    long w = 200, h = 200, nstar = 0;
    double psig = 0.6 / 2.3548200450309493, sky = 5.0;
    float *model = calloc((size_t)(w * h), sizeof(float));
    star st[64];
    for (int j = 0; j < 8 && model; j++)
        for (int i = 0; i < 8; i++) {
            /* phases across the pixel: centred, on an edge, on a corner */
            star s = { 14 + 24.0 * i + 0.125 * i, 14 + 24.0 * j + 0.125 * j, 0, 0 };
            s.flux = sky * (100 + 40 * (i + 8 * j));
            add_gauss_star(model, w, h, &s, psig);
            st[nstar++] = s;
        }
    sk_image *img = make_image(w, h, 100.0, 0, 0, sky, 0, model);
    sk_extract_params p;
    sk_extract_params_default(&p);
    sk_extract_result *r = NULL;
    ok(model && sk_extract_run(img, &p, 1, &r) == 0, "extraction of stars of FWHM 0.6 px");
    const sk_source_list *l = r ? r->sources : NULL;
    long found = 0, nart = 0;
    for (long k = 0; l && k < nstar; k++) {
        const sk_source *s = nearest(l, st[k].x, st[k].y, 1.0);
        found += s != NULL;
        nart += s && (s->flags & SK_SRC_ARTIFACT);
    }
    ok(r && r->fwhm_px == 1.2, "the image FWHM held at its lower limit (%.3f px)", r ? r->fwhm_px : 0);
    ok(r && fabs(r->core_fwhm_px / 0.6 - 1) <= 0.15, "the stars' core FWHM 0.6 px measured within 15 %% (%.3f)",
       r ? r->core_fwhm_px : 0);
    ok(found == nstar, "all %ld stars found within 1 px (%ld)", nstar, found);
    ok(l && nart == 0, "no star flagged ARTIFACT (%ld of %ld)", nart, found);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_image_free(img);
    free(model);
}

/* FLAGS bit 0 (NEIGHBOURS) marks sources whose AUTO ellipse is more than
 * 10 % other objects' pixels: not an isolated star, not a bright star whose
 * faint neighbour 11 px away reaches only its outer apertures, but the
 * fainter member of a pair 7 px apart. */
static void test_neighbour_flag(void)
{
    long w = 300, h = 120;
    double psig = 1.3;
    float *model = calloc((size_t)(w * h), sizeof(float));
    star alone = { 60.2, 60.4, 40000, 0 }, bright = { 150.3, 60.1, 40000, 0 }, faint = { 161.4, 60.3, 3000, 0 };
    star pa = { 240.3, 60.2, 40000, 0 }, pb = { 247.1, 61.0, 12000, 0 };
    const star *all[] = { &alone, &bright, &faint, &pa, &pb };
    for (int k = 0; k < 5; k++)
        add_gauss_star(model, w, h, all[k], psig);
    sk_image *img = make_image(w, h, 0.0, 0, 0, 5.0, 0, model);
    sk_extract_params p;
    fixed_fwhm_params(&p, psig);
    sk_extract_result *r = NULL;
    ok(sk_extract_run(img, &p, 1, &r) == 0, "extraction of the neighbour-flag field");
    const sk_source_list *l = r ? r->sources : NULL;
    const sk_source *sa = l ? nearest(l, alone.x, alone.y, 1.0) : NULL;
    const sk_source *sb = l ? nearest(l, bright.x, bright.y, 1.0) : NULL;
    const sk_source *sf = l ? nearest(l, faint.x, faint.y, 1.0) : NULL;
    const sk_source *sp = l ? nearest(l, pb.x, pb.y, 1.0) : NULL;
    double rmax = l && l->naper > 0 ? l->aper_radius_px[l->naper - 1] : 0;
    ok(sa && !(sa->flags & SK_SRC_NEIGHBOURS), "an isolated star has no NEIGHBOURS flag");
    ok(sb && sf && rmax > hypot(faint.x - bright.x, faint.y - bright.y) &&
           !(sb->flags & SK_SRC_NEIGHBOURS),
       "a bright star whose neighbour lies within its largest aperture (%.1f px) only: no NEIGHBOURS flag", rmax);
    ok(sp && (sp->flags & SK_SRC_NEIGHBOURS), "the fainter star of a pair 7 px apart: NEIGHBOURS");
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_image_free(img);
    free(model);
}

/* Small images: one star filling most of a 20x20 image; a 3x3 image. */
static void test_small(void)
{
    long w = 20, h = 20;
    float *model = calloc((size_t)(w * h), sizeof(float));
    star s = { 9.6, 10.3, 20000, 0 };
    add_gauss_star(model, w, h, &s, 1.3);
    sk_image *img = make_image(w, h, 100.0, 0, 0, 5.0, 0, model);
    sk_extract_params p;
    sk_extract_params_default(&p);
    sk_extract_result *r = NULL;
    int rc = sk_extract_run(img, &p, 2, &r);
    ok(rc == SK_OK && r->sources->n == 1, "20x20 image with one star: one source (%ld)",
       r ? r->sources->n : -1);
    if (r && r->sources->n == 1)
        ok(hypot(r->sources->src[0].xwin - s.x, r->sources->src[0].ywin - s.y) < 0.1,
           "and its centroid within 0.1 px");
    sk_extract_result_free(r);
    sk_image_free(img);
    img = make_image(3, 3, 100.0, 0, 0, 5.0, 0, NULL);
    r = NULL;
    ok(sk_extract_run(img, &p, 1, &r) == SK_EINPUT && r == NULL, "a 3x3 image is refused (too few pixels)");
    sk_image_free(img);
    sk_extract_params_clear(&p);
    free(model);
}

int main(void)
{
    tap_plan(75);
    test_overlap();
    test_background();
    test_star_field();
    test_pure_noise();
    test_noise_factor();
    test_moffat();
    test_deblend();
    test_small();
    test_undersampled();
    test_sharper_than_limit();
    test_neighbour_flag();
    return tap_done();
}
