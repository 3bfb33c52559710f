/* test_sim.c: the simulator against its own promises: deviates with the
 * right moments, PSFs that conserve flux and have the drawn FWHM and
 * centroid, blank-sky noise and weights as predicted, the truth positions
 * through the written WCS (SIP included), deliberate WCS perturbations,
 * saturation with bleed trails, and bit-identical output for a seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "../tap.h"
#include "sim/sim_internal.h"

/* Simulation parameters from the defaults plus `sets`. */
static int params_with(const char *const *sets, int nsets, sk_sim_params *p)
{
    sk_config *c = NULL;
    int rc = sk_config_load(NULL, (char *const *)sets, nsets, &c);
    if (!rc)
        rc = sk_sim_params_from_config(c, p);
    if (rc)
        tap_diag("config: %s", sk_errmsg());
    sk_config_free(c);
    return rc;
}

static void test_rng(void)
{
    sk_rng a, b, c;
    sk_rng_init(&a, 42, 1, 2);
    sk_rng_init(&b, 42, 1, 2);
    sk_rng_init(&c, 42, 1, 3);
    int same = 1, differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = sk_rng_u64(&a), y = sk_rng_u64(&b), z = sk_rng_u64(&c);
        same &= x == y;
        differ += x != z;
    }
    ok(same, "same seed and stream: same sequence");
    ok(differ > 990, "another substream: another sequence");
    /* xoshiro256** reference: state {1,2,3,4} gives 11520, 0, 1509978240 */
    sk_rng ref = {{1, 2, 3, 4}, 0, 0};
    uint64_t r1 = sk_rng_u64(&ref), r2 = sk_rng_u64(&ref), r3 = sk_rng_u64(&ref);
    ok(r1 == 11520 && r2 == 0 && r3 == 1509978240, "xoshiro256** reference outputs");

    long n = 200000;
    double s = 0, s2 = 0;
    for (long i = 0; i < n; i++) {
        double g = sk_rng_gauss(&a);
        s += g;
        s2 += g * g;
    }
    is_near(s / n, 0.0, 0.01, "gaussian mean 0");
    is_near(s2 / n, 1.0, 0.01, "gaussian variance 1");
    const double means[] = {0.3, 4.0, 9.99, 10.0, 37.5, 2500.0, 4e6};
    for (size_t k = 0; k < sizeof means / sizeof means[0]; k++) {
        double m = means[k], sum = 0, sq = 0;
        for (long i = 0; i < n; i++) {
            double v = (double)sk_rng_poisson(&a, m);
            sum += v;
            sq += v * v;
        }
        double mean = sum / n, var = sq / n - mean * mean;
        is_near(mean, m, 5.0 * sqrt(m / n), "poisson(%g) mean", m);
        is_near(var / m, 1.0, 0.015, "poisson(%g) variance equals the mean", m);
    }
    /* P(0) of a small mean is exp(-mean) */
    long zeros = 0;
    for (long i = 0; i < n; i++)
        zeros += sk_rng_poisson(&a, 0.7) == 0;
    is_near((double)zeros / n, exp(-0.7), 0.004, "poisson(0.7): P(0) = exp(-0.7)");
}

/* Flux, centroid and second moments of a PSF rendered alone. */
static void test_psf_one(int model, double beta, double fwhm, double ell, const char *what)
{
    sk_sim_psf psf = {model, fwhm, beta, ell, 25.0, 5.0, 0.0, 1.0};
    ok(sk_sim_psf_check(&psf) == SK_OK, "%s: parameters accepted", what);
    long w = 160, h = 160;
    double *img = malloc((size_t)(w * h) * sizeof *img);
    sk_rng r;
    sk_rng_init(&r, 7, 99, (uint64_t)(fwhm * 100));
    double worst_flux = 0, worst_cen = 0, worst_fwhm = 0;
    for (int k = 0; k < 12; k++) {
        double x = 80.0 + sk_rng_uniform(&r) - 0.5, y = 79.0 + sk_rng_uniform(&r) - 0.5;
        memset(img, 0, (size_t)(w * h) * sizeof *img);
        sk_sim_psf_add(&psf, 12345.0, x, y, img, w, h, 0, h);
        double s = 0, sx = 0, sy = 0;
        for (long j = 0; j < h; j++)
            for (long i = 0; i < w; i++) {
                double v = img[j * w + i];
                s += v;
                sx += v * i;
                sy += v * j;
            }
        double cx = sx / s, cy = sy / s, m2 = 0;
        for (long j = 0; j < h; j++)
            for (long i = 0; i < w; i++)
                m2 += img[j * w + i] * ((i - cx) * (i - cx) + (j - cy) * (j - cy));
        m2 = 0.5 * m2 / s - 1.0 / 12.0; /* per axis, minus the pixel's own 1/12 */
        /* FWHM from the second moment, through the profile's own relation */
        double ratio = sqrt(m2 / sk_sim_psf_sigma2_px2(&psf));
        worst_flux = fmax(worst_flux, fabs(s / 12345.0 - 1.0));
        worst_cen = fmax(worst_cen, hypot(cx - x, cy - y));
        worst_fwhm = fmax(worst_fwhm, fabs(ratio - 1.0));
    }
    ok(worst_flux < 1e-3, "%s: pixel sum equals the flux to 0.1 %% (worst %.2g)", what, worst_flux);
    ok(worst_cen < 0.005, "%s: centroid at any sub-pixel position (worst %.2g px)", what, worst_cen);
    if (ell == 0.0)
        ok(worst_fwhm < 0.02, "%s: FWHM from second moments within 2 %% (worst %.2g)", what,
           worst_fwhm);
    free(img);
}

static void test_psf(void)
{
    test_psf_one(SK_SIM_MOFFAT, 3.5, 3.8, 0.0, "moffat beta 3.5 fwhm 3.8");
    test_psf_one(SK_SIM_MOFFAT, 2.5, 2.2, 0.0, "moffat beta 2.5 fwhm 2.2");
    test_psf_one(SK_SIM_MOFFAT, 4.2, 5.0, 0.0, "moffat beta 4.2 fwhm 5");
    test_psf_one(SK_SIM_MOFFAT, 3.0, 4.0, 0.2, "moffat elliptical");
    test_psf_one(SK_SIM_GAUSSIAN, 0, 3.0, 0.0, "gaussian fwhm 3");
    test_psf_one(SK_SIM_GAUSSIAN, 0, 6.5, 0.0, "gaussian fwhm 6.5");
    test_psf_one(SK_SIM_GAUSSIAN, 0, 4.0, 0.3, "gaussian elliptical");

    /* The FWHM itself: the circular profile at r = FWHM/2 is half the peak. */
    sk_sim_psf m = {SK_SIM_MOFFAT, 4.0, 3.5, 0.0, 0.0, 5.0, 0.0, 1.0};
    is_near(sk_sim_psf_density(&m, 2.0, 0.0) / sk_sim_psf_density(&m, 0, 0), 0.5, 1e-12,
            "moffat: half maximum at FWHM/2");
    sk_sim_psf g = {SK_SIM_GAUSSIAN, 4.0, 0.0, 0.0, 0.0, 5.0, 0.0, 1.0};
    is_near(sk_sim_psf_density(&g, 0.0, 2.0) / sk_sim_psf_density(&g, 0, 0), 0.5, 1e-12,
            "gaussian: half maximum at FWHM/2");
    /* double Gaussian: the sum's half maximum at FWHM/2, unit integral,
     * and the second moment of the sum */
    sk_sim_psf dg = {SK_SIM_DOUBLE_GAUSSIAN, 4.5, 0.0, 0.0, 0.0, 5.0, 0.15, 2.5};
    ok(sk_sim_psf_check(&dg) == SK_OK, "double gaussian: parameters accepted");
    is_near(sk_sim_psf_density(&dg, 2.25, 0.0) / sk_sim_psf_density(&dg, 0, 0), 0.5, 1e-9,
            "double gaussian: the sum's half maximum at FWHM/2");
    {
        long w = 121, n = w * w;
        double *im = calloc((size_t)n, sizeof *im), s0 = 0, s2 = 0;
        sk_sim_psf_add(&dg, 1000.0, 60.3, 59.8, im, w, w, 0, w);
        for (long q = 0; q < n; q++) {
            double dx = (double)(q % w) - 60.3, dy = (double)(q / w) - 59.8;
            s0 += im[q];
            s2 += im[q] * (dx * dx + dy * dy);
        }
        is_near(s0, 1000.0, 0.5, "double gaussian: pixels sum to the flux");
        /* per-axis moment minus the pixel's 1/12, against the components' mix */
        is_near(0.5 * s2 / s0 - 1.0 / 12.0, sk_sim_psf_sigma2_px2(&dg), 0.01 * sk_sim_psf_sigma2_px2(&dg),
                "double gaussian: second moment of the sum of the components");
        /* broader than the single Gaussian of the same FWHM (the wing) */
        sk_sim_psf g1 = dg;
        g1.model = SK_SIM_GAUSSIAN;
        ok(sk_sim_psf_sigma2_px2(&dg) > 1.2 * sk_sim_psf_sigma2_px2(&g1),
           "double gaussian: wings broader than a Gaussian of the same FWHM");
        free(im);
    }
    dg.wing_ratio = 0.5;
    ok(sk_sim_psf_check(&dg) == SK_EINPUT, "double gaussian: a wing narrower than the core refused");
    sk_error_clear();
    sk_sim_psf e = {SK_SIM_MOFFAT, 4.0, 3.5, 0.36, 90.0, 5.0, 0.0, 1.0}; /* q = 0.64: major 5, minor 3.2 */
    is_near(sk_sim_psf_density(&e, 0.0, 2.5) / sk_sim_psf_density(&e, 0, 0), 0.5, 1e-12,
            "elliptical: major-axis FWHM = fwhm/sqrt(q)");
    is_near(sk_sim_psf_density(&e, 1.6, 0.0) / sk_sim_psf_density(&e, 0, 0), 0.5, 1e-12,
            "elliptical: minor-axis FWHM = fwhm*sqrt(q)");

    /* A galaxy stamp holds its flux and sits where it was put. */
    sk_sim_galaxy gal = {4.0, 1.0, 0.6, 30.0};
    sk_sim_stamp st;
    ok(sk_sim_galaxy_render(&gal, &m, 5000.0, 60.3, 59.6, &st) == SK_OK, "galaxy rendered");
    long w = 120;
    double *img = calloc((size_t)(w * w), sizeof *img);
    sk_sim_stamp_add(&st, img, w, w, 0, w);
    double s = 0, sx = 0, sy = 0;
    for (long j = 0; j < w; j++)
        for (long i = 0; i < w; i++) {
            s += img[j * w + i];
            sx += img[j * w + i] * i;
            sy += img[j * w + i] * j;
        }
    is_near(s, 5000.0, 0.05, "galaxy: stamp sums to its flux");
    ok(fabs(sx / s - 60.3) < 0.01 && fabs(sy / s - 59.6) < 0.01, "galaxy: centroid where put (%.4f, %.4f)",
       sx / s, sy / s);
    free(img);
    free(st.pix);
}

static const char *const blank_sets[] = {
    "simulation.nstars=0", "simulation.galaxy_fraction=0", "simulation.moving_sources=0",
    "simulation.transients=0", "simulation.cosmic_rate_per_mpix_s=0", "simulation.bad_columns=0",
    "simulation.hot_pixels=0", "simulation.satellite_probability=0", "simulation.width_px=512",
    "simulation.height_px=512", "simulation.seed=11", "simulation.gain=3.2",
    "simulation.read_noise_e=7.5",
};

static void test_blank_sky(void)
{
    sk_sim_params p;
    if (params_with(blank_sets, 13, &p)) {
        ok(0, "blank-sky parameters");
        return;
    }
    sk_sim_field *f = NULL;
    sk_sim_exposure *e = NULL;
    ok(sk_sim_field_make(&p, &f) == SK_OK && f->nsrc == 0, "blank field has no sources");
    ok(sk_sim_expose(&p, f, 0, 2, &e) == SK_OK, "blank exposure");
    if (!e) {
        sk_sim_field_free(f);
        return;
    }
    long w = p.width_px, h = p.height_px, n = w * h;
    double s = 0, s2 = 0, worst_w = 0, pull2 = 0;
    long nflag = 0;
    for (long j = 0; j < h; j++)
        for (long i = 0; i < w; i++) {
            long k = j * w + i;
            double sky = sk_sim_sky_adu(&e->info, i, j);
            /* prediction from gain and read noise alone */
            double var = sky / p.gain + p.read_noise_e * p.read_noise_e / (p.gain * p.gain);
            double d = e->image->sci[k] - sky;
            s += d;
            s2 += d * d / var;
            pull2 += d * d * e->image->weight[k];
            worst_w = fmax(worst_w, fabs(e->image->weight[k] * var - 1.0));
            nflag += e->image->flags[k] != 0;
        }
    double rms_ratio = sqrt(s2 / n);
    ok(fabs(rms_ratio - 1.0) < 0.02, "blank sky: per-pixel noise within 2 %% of the gain/read-noise "
       "prediction (ratio %.4f)", rms_ratio);
    is_near(s / n, 0.0, 0.1, "blank sky: no bias against the sky model (ADU)");
    ok(worst_w < 1e-6, "weight = 1/variance of sky + read noise (worst relative %.2g)", worst_w);
    is_near(sqrt(pull2 / n), 1.0, 0.02, "noise times sqrt(weight) has unit rms");
    is_int(nflag, 0, "blank sky: nothing flagged");
    ok(e->info.sky_grad_x != 0.0 || e->info.sky_grad_y != 0.0, "the sky has a gradient");
    double corner = sk_sim_sky_adu(&e->info, 0, 0), far = sk_sim_sky_adu(&e->info, w - 1, h - 1);
    ok(fabs(corner - far) / e->info.sky_adu < 0.05, "and it is gentle (%.2f %% corner to corner)",
       100 * fabs(corner - far) / e->info.sky_adu);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
}

/* Noise-free exposure with stars: fluxes, centroids and the truth WCS. */
static void test_stars(const char *model_set)
{
    const char *const sets[] = {model_set,
        "simulation.noise=false", "simulation.width_px=400", "simulation.height_px=300",
        "simulation.nstars=25", "simulation.galaxy_fraction=0", "simulation.moving_sources=0",
        "simulation.transients=0", "simulation.cosmic_rate_per_mpix_s=0",
        "simulation.bad_columns=0", "simulation.hot_pixels=0",
        "simulation.satellite_probability=0", "simulation.mag_min=15.5",
        "simulation.mag_max=20", "simulation.sip_corner_px=4.0", "simulation.seed=5",
        "simulation.rotation_scatter_deg=2.0",
    };
    sk_sim_params p;
    if (params_with(sets, 17, &p)) {
        ok(0, "star-field parameters");
        return;
    }
    sk_sim_field *f = NULL;
    sk_sim_exposure *e = NULL;
    sk_sim_field_make(&p, &f);
    ok(f && sk_sim_expose(&p, f, 1, 1, &e) == SK_OK, "noise-free star exposure");
    if (!e) {
        sk_sim_field_free(f);
        return;
    }
    long w = p.width_px, h = p.height_px;
    sk_table *t = e->truth;
    sk_column *cx = sk_table_column(t, "x"), *cy = sk_table_column(t, "y"),
              *cflux = sk_table_column(t, "flux"),
              *cs = sk_table_column(t, "saturated"), *cf = sk_table_column(t, "fwhm"),
              *cra = sk_table_column(t, "ra"), *cdec = sk_table_column(t, "dec"),
              *cmag = sk_table_column(t, "mag"), *ce = sk_table_column(t, "psf_e");
    ok(t->nrows > 20, "truth lists the stars on the image (%ld)", t->nrows);
    int tested = 0;
    double worst_flux = 0, worst_cen = 0, worst_fwhm = 0;
    for (long k = 0; k < t->nrows; k++) {
        double x = sk_column_get(cx, k, 0), y = sk_column_get(cy, k, 0);
        double fwhm = sk_column_get(cf, k, 0), flux = sk_column_get(cflux, k, 0);
        /* the box holding the truncated profile (5 FWHM along the major axis) */
        long half = (long)ceil(5.0 * fwhm / sqrt(1.0 - sk_column_get(ce, k, 0))) + 1;
        if (sk_column_get(cs, k, 0) || x < half || y < half || x > w - 1 - half || y > h - 1 - half)
            continue;
        /* isolated: no other source's profile reaches into the box */
        int alone = 1;
        for (long o = 0; o < t->nrows; o++) {
            double reach = half + 5.0 * sk_column_get(cf, o, 0) / sqrt(1.0 - sk_column_get(ce, o, 0)) + 1;
            if (o != k && fabs(sk_column_get(cx, o, 0) - x) < reach &&
                fabs(sk_column_get(cy, o, 0) - y) < reach)
                alone = 0;
        }
        if (!alone)
            continue;
        double s = 0, sx = 0, sy = 0;
        for (long j = lround(y) - half; j <= lround(y) + half; j++)
            for (long i = lround(x) - half; i <= lround(x) + half; i++) {
                double v = e->image->sci[j * w + i] - sk_sim_sky_adu(&e->info, i, j);
                s += v;
                sx += v * i;
                sy += v * j;
            }
        worst_flux = fmax(worst_flux, fabs(s / flux - 1.0));
        worst_cen = fmax(worst_cen, hypot(sx / s - x, sy / s - y));
        /* FWHM from the second-moment matrix: for the area-preserving
         * elliptical profile sqrt(det) is the circular profile's moment. */
        double mxx = 0, myy = 0, mxy = 0, mx = sx / s, my = sy / s;
        for (long j = lround(y) - half; j <= lround(y) + half; j++)
            for (long i = lround(x) - half; i <= lround(x) + half; i++) {
                double v = e->image->sci[j * w + i] - sk_sim_sky_adu(&e->info, i, j);
                mxx += v * (i - mx) * (i - mx);
                myy += v * (j - my) * (j - my);
                mxy += v * (i - mx) * (j - my);
            }
        mxx = mxx / s - 1.0 / 12.0;
        myy = myy / s - 1.0 / 12.0;
        mxy /= s;
        sk_sim_psf circ = {p.psf_model, fwhm, p.moffat_beta, 0.0, 0.0, p.psf_radius_fwhm,
                           p.psf_wing_fraction, p.psf_wing_ratio};
        double fwhm_meas = fwhm * sqrt(sqrt(mxx * myy - mxy * mxy) / sk_sim_psf_sigma2_px2(&circ));
        worst_fwhm = fmax(worst_fwhm, fabs(fwhm_meas / fwhm - 1.0));
        tested++;
    }
    ok(tested >= 3, "isolated unsaturated stars found (%d)", tested);
    ok(tested && worst_flux < 1e-3, "pixel sums of isolated stars equal their truth flux to 0.1 %% (worst %.2g)",
       worst_flux);
    ok(tested && worst_cen < 0.01, "their centroids are the truth x, y (worst %.3g px)", worst_cen);
    ok(tested && worst_fwhm < 0.02, "their FWHM from second moments is the truth fwhm within 2 %% "
       "(worst %.2g)", worst_fwhm);
    for (long k = 0; k < t->nrows; k++) {
        double m = sk_column_get(cmag, k, 0), fl = sk_column_get(cflux, k, 0);
        if (fabs(-2.5 * log10(fl) + e->info.magzero - m) > 1e-9) {
            ok(0, "truth flux and mag obey MAGZERO (row %ld)", k);
            break;
        }
        if (k == t->nrows - 1)
            ok(1, "truth flux and mag obey MAGZERO");
    }

    /* The truth WCS, as written to a file, maps ra/dec to x/y. */
    const char *dir = tap_tmpdir();
    char path[4200], ipath[4200];
    snprintf(path, sizeof path, "%s/truth.fits", dir);
    snprintf(ipath, sizeof ipath, "%s/exp.fits", dir);
    sk_fits_writer *fw = NULL;
    int rc = sk_fits_writer_open(path, 0, &fw);
    rc = rc ? rc : sk_fits_writer_add_table(fw, e->truth);
    rc = rc ? rc : sk_fits_writer_commit(fw);
    ok(rc == SK_OK, "truth table written");
    sk_image copy = *e->image;
    copy.wcs = NULL;
    ok(sk_fits_write_image(ipath, &copy, NULL) == SK_OK, "exposure written");
    const char *files[2] = {path, ipath}, *hdus[2] = {"SOURCES", "SCI"};
    for (int fi = 0; fi < 2; fi++) {
        sk_header *hd = NULL;
        sk_wcs *wcs = NULL;
        if (sk_fits_read_header(files[fi], hdus[fi], &hd) || sk_wcs_from_header(hd, &wcs)) {
            ok(0, "%s WCS read back: %s", hdus[fi], sk_errmsg());
            sk_header_free(hd);
            continue;
        }
        double worst = 0;
        for (long k = 0; k < t->nrows; k++) {
            double ra = sk_column_get(cra, k, 0), dec = sk_column_get(cdec, k, 0), x, y;
            sk_wcs_sky2pix(wcs, 1, &ra, &dec, &x, &y);
            worst = fmax(worst, hypot(x - sk_column_get(cx, k, 0), y - sk_column_get(cy, k, 0)));
        }
        ok(worst < 0.01, "%s header WCS: truth ra/dec map to truth x/y within 0.01 px (worst %.2g)",
           hdus[fi], worst);
        /* The SIP part matters: without it the corners move by a few px. */
        if (fi == 0) {
            sk_header *lin = sk_header_copy(hd);
            sk_header_set_str(lin, "CTYPE1", "RA---TAN", NULL);
            sk_header_set_str(lin, "CTYPE2", "DEC--TAN", NULL);
            const char *sip[] = {"A_ORDER", "B_ORDER", "A_2_0", "A_1_1", "A_0_2", "A_3_0", "A_1_2",
                                 "B_2_0", "B_1_1", "B_0_2", "B_2_1", "B_0_3"};
            for (size_t s = 0; s < sizeof sip / sizeof sip[0]; s++)
                sk_header_delete(lin, sip[s]);
            sk_wcs *lw = NULL;
            if (sk_wcs_from_header(lin, &lw) == SK_OK) {
                double xs[4] = {0, w - 1, w - 1, 0}, ys[4] = {0, 0, h - 1, h - 1}, ra[4], dec[4],
                       lx[4], ly[4], maxd = 0;
                sk_wcs_pix2sky(wcs, 4, xs, ys, ra, dec);
                sk_wcs_sky2pix(lw, 4, ra, dec, lx, ly);
                for (int q = 0; q < 4; q++)
                    maxd = fmax(maxd, hypot(lx[q] - xs[q], ly[q] - ys[q]));
                ok(maxd > 2.0 && maxd < 8.0, "SIP moves the corners by a few px (%.2f px, asked 4)",
                   maxd);
                sk_wcs_free(lw);
            } else {
                ok(0, "linear WCS: %s", sk_errmsg());
            }
            sk_header_free(lin);
        }
        sk_wcs_free(wcs);
        sk_header_free(hd);
    }
    /* The exposure reads back as a skystack image. */
    sk_image *back = NULL;
    if (sk_fits_read_image(ipath, NULL, &back) == SK_OK) {
        long n = w * h;
        ok(back->width == w && back->height == h && back->wcs != NULL && !back->weight_is_relative,
           "exposure reads back: size, WCS, true weights");
        ok(memcmp(back->sci, e->image->sci, (size_t)n * sizeof(float)) == 0 &&
               memcmp(back->weight, e->image->weight, (size_t)n * sizeof(float)) == 0,
           "SCI and WGT read back bit for bit");
        sk_image_free(back);
    } else {
        ok(0, "exposure reads back: %s", sk_errmsg());
    }
    /* Header completeness for imingest. */
    sk_header *ih = NULL;
    if (sk_fits_read_header(ipath, "SCI", &ih) == SK_OK) {
        const char *keys[] = {"INSTRUME", "FILTER", "MJD-OBS", "DATE-OBS", "EXPTIME", "GAIN",
                              "SATURATE", "RDNOISE", "AIRMASS", "SECTION", "OBJECT", "TELESCOP"};
        int all = 1;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (sk_header_find(ih, keys[k]) < 0) {
                tap_diag("missing %s", keys[k]);
                all = 0;
            }
        ok(all, "exposure header has instrument, filter, times, gain, saturation, airmass, section, target");
        double mjd = 0;
        sk_header_get_double(ih, "MJD-OBS", &mjd);
        is_near(mjd, p.start_mjd + p.cadence_days, 1e-9, "MJD-OBS of exposure 1 = start + cadence");
        sk_header_free(ih);
    } else {
        ok(0, "exposure header read back");
    }
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
}

/* TPV: the same distortion expressed for TPV-only readers. */
static void test_tpv(void)
{
    const char *base[] = {"simulation.width_px=500", "simulation.height_px=340", "simulation.nstars=80",
                          "simulation.sip_corner_px=-5", "simulation.rotation_scatter_deg=3",
                          "simulation.seed=31", "simulation.distortion=sip"};
    sk_sim_params ps, pt;
    int rc = params_with(base, 7, &ps);
    base[6] = "simulation.distortion=tpv";
    rc = rc ? rc : params_with(base, 7, &pt);
    sk_sim_field *f = NULL;
    sk_sim_exposure *es = NULL, *et = NULL;
    rc = rc ? rc : sk_sim_field_make(&ps, &f);
    rc = rc ? rc : sk_sim_expose(&ps, f, 2, 2, &es);
    rc = rc ? rc : sk_sim_expose(&pt, f, 2, 2, &et);
    ok(rc == SK_OK, "SIP and TPV exposures of the same field");
    if (!rc) {
        char ctype[72] = "";
        sk_header_get_str(et->image->header, "CTYPE1", ctype, sizeof ctype);
        is_str(ctype, "RA---TPV", "TPV exposure says so in CTYPE1");
        ok(sk_header_find(et->image->header, "A_ORDER") < 0, "and has no SIP cards");
        sk_column *sx = sk_table_column(es->truth, "x"), *sy = sk_table_column(es->truth, "y"),
                  *tx = sk_table_column(et->truth, "x"), *ty = sk_table_column(et->truth, "y");
        double worst = 0;
        int same_rows = es->truth->nrows == et->truth->nrows;
        for (long k = 0; same_rows && k < es->truth->nrows; k++)
            worst = fmax(worst, hypot(sk_column_get(sx, k, 0) - sk_column_get(tx, k, 0),
                                      sk_column_get(sy, k, 0) - sk_column_get(ty, k, 0)));
        ok(same_rows && worst < 1e-6, "TPV and SIP put every source at the same pixel (worst %.2g px)",
           worst);
        sk_wcs *ws = NULL, *wt = NULL;
        double xs[4] = {0, 499, 499, 0}, ys[4] = {0, 0, 339, 339}, ra1[4], dec1[4], ra2[4], dec2[4];
        if (sk_wcs_from_header(es->true_wcs, &ws) == SK_OK && sk_wcs_from_header(et->true_wcs, &wt) == SK_OK) {
            sk_wcs_pix2sky(ws, 4, xs, ys, ra1, dec1);
            sk_wcs_pix2sky(wt, 4, xs, ys, ra2, dec2);
            double d = 0;
            for (int q = 0; q < 4; q++)
                d = fmax(d, hypot((ra1[q] - ra2[q]) * cos(dec1[q] * M_PI / 180), dec1[q] - dec2[q]) * 3600);
            ok(d < 1e-6, "and map the corners to the same sky (worst %.2g arcsec)", d);
        } else {
            ok(0, "SIP and TPV WCS parse: %s", sk_errmsg());
        }
        sk_wcs_free(ws);
        sk_wcs_free(wt);
    }
    sk_sim_exposure_free(es);
    sk_sim_exposure_free(et);
    sk_sim_field_free(f);
}

static void test_perturbed(void)
{
    const char *const sets[] = {
        "simulation.width_px=256", "simulation.height_px=256", "simulation.nstars=50",
        "simulation.wcs_offset_arcsec=20", "simulation.wcs_rotation_deg=0.5",
        "simulation.wcs_scale_error=0.01", "simulation.seed=9",
    };
    sk_sim_params p;
    if (params_with(sets, 7, &p)) {
        ok(0, "perturbation parameters");
        return;
    }
    sk_sim_field *f = NULL;
    sk_sim_exposure *e = NULL;
    sk_sim_field_make(&p, &f);
    ok(f && sk_sim_expose(&p, f, 0, 2, &e) == SK_OK, "perturbed exposure");
    if (!e) {
        sk_sim_field_free(f);
        return;
    }
    sk_wcs *tw = NULL, *hw = NULL;
    sk_wcs_from_header(e->true_wcs, &tw);
    sk_wcs_from_header(e->image->header, &hw);
    double xc = 127.5, yc = 127.5, ra1, dec1, ra2, dec2;
    sk_wcs_pix2sky(tw, 1, &xc, &yc, &ra1, &dec1);
    sk_wcs_pix2sky(hw, 1, &xc, &yc, &ra2, &dec2);
    double d1 = dec1 * M_PI / 180, d2 = dec2 * M_PI / 180, dra = (ra2 - ra1) * M_PI / 180;
    double sep = acos(fmin(1.0, sin(d1) * sin(d2) + cos(d1) * cos(d2) * cos(dra))) * 180 / M_PI * 3600;
    is_near(sep, 20.0, 0.01, "header WCS centre is offset by the requested 20 arcsec");
    double cd_t[4], cd_h[4];
    const char *keys[4] = {"CD1_1", "CD1_2", "CD2_1", "CD2_2"};
    for (int i = 0; i < 4; i++) {
        sk_header_get_double(e->true_wcs, keys[i], &cd_t[i]);
        sk_header_get_double(e->image->header, keys[i], &cd_h[i]);
    }
    double rot = remainder(atan2(cd_h[2], cd_h[0]) - atan2(cd_t[2], cd_t[0]), 2 * M_PI) * 180 / M_PI;
    is_near(rot, 0.5, 1e-9, "header WCS is rotated by the requested 0.5 deg");
    double scale = sqrt(fabs(cd_h[0] * cd_h[3] - cd_h[1] * cd_h[2])) /
                   sqrt(fabs(cd_t[0] * cd_t[3] - cd_t[1] * cd_t[2]));
    is_near(scale, 1.01, 1e-12, "header WCS is scaled by the requested 1 %%");
    int pert = 0;
    sk_header_get_bool(e->truth->header, "WCSPERT", &pert);
    ok(pert, "truth says the header WCS is perturbed");
    sk_wcs_free(tw);
    sk_wcs_free(hw);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
}

/* Defaults: defects, saturation and bleed trails, determinism. */
static void test_defects_and_determinism(void)
{
    const char *const sets[] = {"simulation.width_px=300", "simulation.height_px=260",
                                "simulation.nstars=80", "simulation.mag_min=12", "simulation.mag_max=19",
                                "simulation.seed=21", "simulation.cosmic_rate_per_mpix_s=2",
                                "simulation.satellite_probability=1", "simulation.bad_columns=2"};
    sk_sim_params p;
    if (params_with(sets, 9, &p)) {
        ok(0, "defect parameters");
        return;
    }
    sk_sim_field *f = NULL;
    sk_sim_exposure *e1 = NULL, *e3 = NULL, *eo = NULL;
    sk_sim_field_make(&p, &f);
    ok(f && sk_sim_expose(&p, f, 0, 1, &e1) == SK_OK && sk_sim_expose(&p, f, 0, 3, &e3) == SK_OK,
       "exposure with 1 and 3 threads");
    if (!e1 || !e3) {
        sk_sim_exposure_free(e1);
        sk_sim_exposure_free(e3);
        sk_sim_field_free(f);
        return;
    }
    long w = p.width_px, h = p.height_px, n = w * h;
    ok(memcmp(e1->image->sci, e3->image->sci, (size_t)n * sizeof(float)) == 0 &&
           memcmp(e1->image->weight, e3->image->weight, (size_t)n * sizeof(float)) == 0 &&
           memcmp(e1->image->flags, e3->image->flags, (size_t)n * sizeof(uint16_t)) == 0,
       "identical pixels for any thread count");
    ok(sk_sim_expose(&p, f, 1, 2, &eo) == SK_OK, "another exposure");
    ok(eo && memcmp(e1->image->sci, eo->image->sci, (size_t)n * sizeof(float)) != 0,
       "another exposure has other pixels");
    ok(eo && (eo->info.pointing_ra_deg != e1->info.pointing_ra_deg), "and another pointing (dither)");
    sk_sim_exposure_free(eo);

    /* Saturation: flagged pixels sit at SATURATE; bleed runs along columns. */
    long nsat = 0, bad_at_sat = 0, nbad = 0, badw = 0;
    for (long k = 0; k < n; k++) {
        if (e1->image->flags[k] & SK_FLAG_SATURATED) {
            nsat++;
            bad_at_sat += e1->image->sci[k] != (float)p.saturation_adu;
        }
        if (e1->image->flags[k] & SK_FLAG_BAD) {
            nbad++;
            badw += e1->image->weight[k] != 0.0f;
        }
    }
    ok(nsat > 0 && bad_at_sat == 0, "saturated pixels flagged and clipped at SATURATE (%ld)", nsat);
    ok(nbad > 0 && badw == 0, "bad columns and hot pixels flagged BAD with weight 0 (%ld)", nbad);
    sk_column *cs = sk_table_column(e1->truth, "saturated"), *cx = sk_table_column(e1->truth, "x"),
              *cy = sk_table_column(e1->truth, "y");
    long vert = 0, horiz = 0, nsatstars = 0;
    for (long k = 0; k < e1->truth->nrows; k++) {
        if (!sk_column_get(cs, k, 0))
            continue;
        nsatstars++;
        long x = lround(sk_column_get(cx, k, 0)), y = lround(sk_column_get(cy, k, 0));
        if (x < 0 || y < 0 || x >= w || y >= h)
            continue;
        /* contiguous saturated run through the centre, along and across columns */
        for (long j = y; j < h && (e1->image->flags[j * w + x] & SK_FLAG_SATURATED); j++)
            vert++;
        for (long j = y - 1; j >= 0 && (e1->image->flags[j * w + x] & SK_FLAG_SATURATED); j--)
            vert++;
        for (long i = x; i < w && (e1->image->flags[y * w + i] & SK_FLAG_SATURATED); i++)
            horiz++;
        for (long i = x - 1; i >= 0 && (e1->image->flags[y * w + i] & SK_FLAG_SATURATED); i--)
            horiz++;
    }
    ok(nsatstars > 0, "truth marks saturated stars (%ld)", nsatstars);
    ok(vert > 2 * horiz, "bleed trails run along columns (%ld px along, %ld across)", vert, horiz);

    /* Cosmic rays: recorded, sharp, bright, not flagged. */
    sk_table *cr = e1->cosmics;
    ok(cr->nrows > 0, "cosmic rays recorded (%ld pixels)", cr->nrows);
    long bright = 0, flagged = 0;
    for (long k = 0; k < cr->nrows; k++) {
        long x = (long)sk_column_get(&cr->cols[1], k, 0), y = (long)sk_column_get(&cr->cols[2], k, 0);
        double sky = sk_sim_sky_adu(&e1->info, x, y);
        double sig = 1.0 / sqrt(e1->image->weight[y * w + x] > 0 ? e1->image->weight[y * w + x] : 1e-30);
        bright += e1->image->sci[y * w + x] - sky > 5 * sig || (e1->image->flags[y * w + x] & SK_FLAG_BAD);
        flagged += (e1->image->flags[y * w + x] & SK_FLAG_COSMIC) != 0;
    }
    ok(bright >= cr->nrows * 9 / 10, "cosmic-ray pixels stand out (%ld of %ld above 5 sigma)", bright,
       cr->nrows);
    is_int(flagged, 0, "cosmic rays are not flagged (left for the pipeline)");
    ok(e1->info.satellite, "a satellite trail when its probability is 1");

    /* Galaxies are in the truth with their shapes; transients vary. */
    sk_column *ct = sk_table_column(e1->truth, "type"), *cn = sk_table_column(e1->truth, "sersic_n"),
              *cre = sk_table_column(e1->truth, "re");
    long ngal = 0, badshape = 0;
    for (long k = 0; k < e1->truth->nrows; k++)
        if (sk_column_get(ct, k, 0) == SK_SIM_GALAXY) {
            ngal++;
            double sn = sk_column_get(cn, k, 0), re = sk_column_get(cre, k, 0) * p.pixel_scale_arcsec;
            badshape += sn < p.galaxy_n_min - 1e-6 || sn > p.galaxy_n_max + 1e-6 ||
                        re < p.galaxy_re_min_arcsec * 0.999 || re > p.galaxy_re_max_arcsec * 1.001;
        }
    ok(ngal > 0 && badshape == 0, "galaxies in the truth with sizes and indices in range (%ld)", ngal);
    for (long k = 0; k < f->nsrc; k++)
        if (f->src[k].type == SK_SIM_TRANSIENT) {
            double m0 = sk_sim_source_mag(&p, &f->src[k], f->src[k].peak_mjd);
            double m1 = sk_sim_source_mag(&p, &f->src[k], f->src[k].peak_mjd + 0.5 * p.transient_duration_days);
            is_near(m1 - m0, 2.5 * log10(2.0), 1e-9, "transient: half the peak flux at FWHM/2 of its light curve");
            break;
        }

    /* Reference catalog: errors as stated. */
    sk_table *rc = NULL;
    int rcat = sk_sim_refcat(&p, f, &rc);
    ok(rcat == SK_OK && rc->nrows > 10, "reference catalog (%ld stars)", rc ? rc->nrows : 0);
    if (rc) {
        double pull2 = 0, maxmag = -99;
        sk_column *cid = sk_table_column(rc, "id"), *cm = sk_table_column(rc, "mag"),
                  *ce = sk_table_column(rc, "mag_err");
        ok(cid && cm && ce && sk_table_column(rc, "ra") && sk_table_column(rc, "dec"),
           "columns id, ra, dec, mag, mag_err");
        for (long k = 0; cid && k < rc->nrows; k++) {
            const sk_sim_source *s = &f->src[(long)sk_column_get(cid, k, 0)];
            double d = (sk_column_get(cm, k, 0) - s->mag) / sk_column_get(ce, k, 0);
            pull2 += d * d;
            maxmag = fmax(maxmag, s->mag);
        }
        double pull = sqrt(pull2 / rc->nrows);
        ok(pull > 0.7 && pull < 1.3, "magnitude errors honest (pull rms %.3f)", pull);
        ok(maxmag <= p.refcat_depth_mag, "down to the configured depth");
        sk_table_free(rc);
    }
    sk_sim_exposure_free(e1);
    sk_sim_exposure_free(e3);
    sk_sim_field_free(f);

    /* The same seed gives the same field, another seed another. */
    const char *const s22[] = {"simulation.seed=22"}, *const s23[] = {"simulation.seed=23"};
    sk_sim_params qa, qb, qc;
    sk_sim_field *fa = NULL, *fb = NULL, *fc = NULL;
    if (params_with(s22, 1, &qa) == SK_OK && params_with(s22, 1, &qb) == SK_OK &&
        params_with(s23, 1, &qc) == SK_OK && sk_sim_field_make(&qa, &fa) == SK_OK &&
        sk_sim_field_make(&qb, &fb) == SK_OK && sk_sim_field_make(&qc, &fc) == SK_OK) {
        ok(fa->nsrc == fb->nsrc && memcmp(fa->src, fb->src, (size_t)fa->nsrc * sizeof *fa->src) == 0,
           "same seed: same field");
        long nsame = 0;
        for (long k = 0; k < fa->nsrc && k < fc->nsrc; k++)
            nsame += fa->src[k].ra_deg == fc->src[k].ra_deg;
        is_int(nsame, 0, "another seed: other positions");
    } else {
        ok(0, "fields for seeds 22 and 23: %s", sk_errmsg());
    }
    sk_sim_field_free(fa);
    sk_sim_field_free(fb);
    sk_sim_field_free(fc);
}

/* The reference catalogue's colour bands: G, BP and RP each off its true
 * value by its stated error, independently, so that the filter's magnitude
 * G + poly(BP - RP) has the error a calibration propagates from them:
 * sqrt(G_err^2 + poly'(BP - RP)^2 (BP_err^2 + RP_err^2)). */
static void test_refcat_colours(void)
{
    const char *const sets[] = {"simulation.nstars=3000", "simulation.mag_min=15", "simulation.mag_max=21",
                                "simulation.seed=5", "simulation.colour_min=0.3", "simulation.colour_max=2.7"};
    sk_sim_params p;
    sk_sim_field *f = NULL;
    sk_table *rc = NULL;
    if (params_with(sets, 6, &p) || sk_sim_field_make(&p, &f) || sk_sim_refcat(&p, f, &rc)) {
        ok(0, "a field of stars of many colours and its catalogue: %s", sk_errmsg());
        sk_sim_field_free(f);
        return;
    }
    sk_column *cid = sk_table_column(rc, "id"), *cg = sk_table_column(rc, "G"), *cb = sk_table_column(rc, "BP"),
              *cr = sk_table_column(rc, "RP"), *eg = sk_table_column(rc, "G_err"),
              *eb = sk_table_column(rc, "BP_err"), *er = sk_table_column(rc, "RP_err");
    ok(cid && cg && cb && cr && eg && eb && er && rc->nrows > 1000, "G, BP, RP and their errors (%ld stars)",
       rc->nrows);
    double pc2 = 0, pm2 = 0, pmr2 = 0;
    long nr = 0;
    for (long k = 0; cid && cg && cb && cr && eg && eb && er && k < rc->nrows; k++) {
        const sk_sim_source *s = &f->src[(long)sk_column_get(cid, k, 0)];
        double x = sk_column_get(cb, k, 0) - sk_column_get(cr, k, 0);
        double e = sk_column_get(eg, k, 0), e1 = sk_column_get(eb, k, 0), e2 = sk_column_get(er, k, 0);
        double d = (x - s->colour) / sqrt(e1 * e1 + e2 * e2);
        pc2 += d * d;
        double m = sk_column_get(cg, k, 0), dp = 0, xp = 1;
        for (int c = 0; c < p.ncolour_coeffs; c++, xp *= x) {
            m += p.colour_coeffs[c] * xp;
            if (c + 1 < p.ncolour_coeffs)
                dp += (c + 1) * p.colour_coeffs[c + 1] * xp;
        }
        double q = (m - s->mag) / sqrt(e * e + dp * dp * (e1 * e1 + e2 * e2));
        pm2 += q * q;
        if (s->colour > 2.0) {
            pmr2 += q * q;
            nr++;
        }
    }
    double n = (double)rc->nrows, pc = sqrt(pc2 / n), pm = sqrt(pm2 / n), pmr = nr ? sqrt(pmr2 / (double)nr) : 0;
    ok(pc > 0.9 && pc < 1.1, "BP - RP off the true colour by its stated error (pull rms %.3f)", pc);
    ok(pm > 0.96 && pm < 1.04, "G + poly(BP - RP) off the filter's magnitude by the propagated error (pull rms %.3f)",
       pm);
    ok(nr > 1000 && pmr > 0.93 && pmr < 1.07, "the same for the %ld reddest stars, BP - RP > 2 (pull rms %.3f)", nr,
       pmr);
    sk_table_free(rc);
    sk_sim_field_free(f);
}

int main(void)
{
    tap_plan(151);
    test_rng();
    test_psf();
    test_blank_sky();
    test_stars("simulation.psf_model=moffat");
    test_stars("simulation.psf_model=gaussian");
    test_stars("simulation.psf_model=double-gaussian");
    test_tpv();
    test_perturbed();
    test_defects_and_determinism();
    test_refcat_colours();
    return tap_done();
}
