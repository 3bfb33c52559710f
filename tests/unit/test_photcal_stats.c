/* test_photcal_stats.c: the zero point's statistics as extract(1)
 * describes them, on matched stars whose zero points are set exactly
 * (no image): the weighted mean with weights 1 / (flux error, catalog
 * error and error_floor in quadrature)^2; dzp the error of the weighted
 * mean scaled by sqrt(reduced chi^2) when the stars scatter more than
 * their errors (and not scaled down when they scatter less); clipping at
 * clip_sigma (3) robust sigmas of the error-normalised residuals; stars
 * below min_snr (10) left out; fewer than min_stars (3) a failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/photcal.h"
#include "../tap.h"
#include "calib/photcal_internal.h"

#define NMAX 512
#define MAG_PER_LN (2.5 / M_LN10)

typedef struct field {
    int n;
    sk_source src[NMAX];
    double aper[NMAX], aper_err[NMAX], flux[NMAX], flux_err[NMAX];
    double ra[NMAX], dec[NMAX], mag[NMAX], mag_err[NMAX];
    long si[NMAX], ri[NMAX];
    double radius_px;
} field;

/* star k: catalog magnitude 17 + k / n, zero point zp, flux error sig
 * (mag, from the flux) and catalog error cat_err (NAN: no column) */
static void add_star(field *f, double zp, double sig, double cat_err)
{
    int k = f->n++;
    memset(&f->src[k], 0, sizeof f->src[k]);
    f->mag[k] = 17.0 + 0.004 * k;
    f->mag_err[k] = cat_err;
    f->ra[k] = f->dec[k] = 0;
    f->flux[k] = pow(10.0, 0.4 * (zp - f->mag[k]));
    f->flux_err[k] = f->flux[k] * sig / MAG_PER_LN;
    f->aper[k] = f->flux[k];
    f->aper_err[k] = f->flux_err[k];
    f->src[k].xwin = 20.0 * k;
    f->src[k].ywin = 50.0;
    f->src[k].flux_aper = &f->aper[k];
    f->src[k].flux_aper_err = &f->aper_err[k];
    f->si[k] = f->ri[k] = k;
}

static int solve(field *f, const sk_photcal_params *p, sk_photcal **pc)
{
    f->radius_px = 10.0;
    sk_source_list l = {.n = f->n, .src = f->src, .naper = 1, .aper_radius_px = &f->radius_px, .fwhm_px = 3.0};
    sk_refcat ref = {.n = f->n, .ra_deg = f->ra, .dec_deg = f->dec, .mag = f->mag, .mag_err = f->mag_err};
    *pc = NULL;
    return sk_photcal_solve(&l, f->flux, f->flux_err, NULL, f->si, f->ri, f->n, &ref, p, pc);
}

/* the standard normal quantile of u in (0, 1), by bisection */
static double quantile(double u)
{
    double lo = -10, hi = 10;
    for (int i = 0; i < 200; i++) {
        double m = 0.5 * (lo + hi);
        if (0.5 * erfc(-m / M_SQRT2) < u)
            lo = m;
        else
            hi = m;
    }
    return 0.5 * (lo + hi);
}

/* n stars of error sig scattered by `spread` sigmas (normal quantiles,
 * symmetric: their weighted mean is the zero point 30) */
static void scattered(field *f, int n, double sig, double spread)
{
    f->n = 0;
    for (int k = 0; k < n; k++)
        add_star(f, 30.0 + spread * sig * quantile((k + 0.5) / n), sig, NAN);
}

static void test_dzp_scaling(void)
{
    static field f;
    sk_photcal_params p;
    sk_photcal_params_default(&p);
    p.error_floor = 0;
    sk_photcal *pc;
    const int n = 201;
    const double sig = 0.02;
    scattered(&f, n, sig, 3.0);
    double chi2 = 0;
    for (int k = 0; k < n; k++) {
        double d = 2.5 * log10(f.flux[k]) + f.mag[k] - 30.0;
        chi2 += d * d / (sig * sig);
    }
    double red = chi2 / (n - 1), mean_err = sig / sqrt(n);
    ok(solve(&f, &p, &pc) == SK_OK && pc, "scatter 3x the errors: solved");
    if (pc) {
        is_int(pc->nstars, n, "nothing clipped (the robust scale follows the scatter)");
        is_near(pc->zp, 30.0, 1e-9, "zero point: the weighted mean");
        is_near(pc->dzp, mean_err * sqrt(red), 1e-6 * mean_err,
                "dzp = error of the weighted mean x sqrt(reduced chi^2 = %.2f) (extract(1))", red);
    }
    sk_photcal_free(pc);
    scattered(&f, n, sig, 0.5);
    ok(solve(&f, &p, &pc) == SK_OK && pc, "scatter half the errors: solved");
    if (pc)
        is_near(pc->dzp, mean_err, 1e-6 * mean_err, "dzp not scaled down when the stars scatter less than their errors");
    sk_photcal_free(pc);
}

static void test_weights(void)
{
    static field f;
    sk_photcal_params p;
    sk_photcal_params_default(&p);
    sk_photcal *pc;
    /* the error floor (0.005 mag) in quadrature: stars of 1e-4 mag errors */
    f.n = 0;
    for (int k = 0; k < 100; k++)
        add_star(&f, 30.0, 1e-4, NAN);
    ok(solve(&f, &p, &pc) == SK_OK && pc, "100 stars of 1e-4 mag error: solved");
    if (pc)
        is_near(pc->dzp, sqrt(1e-8 + 0.005 * 0.005) / 10.0, 1e-9,
                "dzp: the error floor 0.005 mag in quadrature (%.6f)", pc->dzp);
    sk_photcal_free(pc);
    /* two groups at different zero points with different errors (flux and
       catalog): the mean weighted by 1 / sigma^2 */
    f.n = 0;
    for (int k = 0; k < 10; k++)
        add_star(&f, 30.00, 0.01, NAN);
    for (int k = 0; k < 10; k++)
        add_star(&f, 30.02, 0.02, 0.02);
    double va = 0.01 * 0.01 + 0.005 * 0.005, vb = 2 * 0.02 * 0.02 + 0.005 * 0.005;
    double want = (30.00 / va + 30.02 / vb) / (1 / va + 1 / vb);
    ok(solve(&f, &p, &pc) == SK_OK && pc, "two groups: solved");
    if (pc) {
        is_int(pc->nstars, 20, "two groups: none clipped");
        is_near(pc->zp, want, 1e-9, "zero point weighted by 1 / (flux, catalog, floor errors in quadrature)^2");
    }
    sk_photcal_free(pc);
}

static void test_clip_and_selection(void)
{
    static field f;
    sk_photcal_params p;
    sk_photcal_params_default(&p);
    p.error_floor = 0;
    sk_photcal *pc;
    const double sig = 0.02;
    scattered(&f, 41, sig, 1.0);
    add_star(&f, 30.0 + 4.5 * sig, sig, NAN); /* 4.5 sigma: clipped */
    add_star(&f, 30.0 - 2.5 * sig, sig, NAN); /* 2.5 sigma: kept */
    int faint = f.n;
    add_star(&f, 30.0, 1.0 / 8.0 * MAG_PER_LN, NAN); /* SNR 8 < min_snr 10 */
    add_star(&f, 30.0, 1.0 / 12.0 * MAG_PER_LN, NAN); /* SNR 12: used */
    f.src[faint].flags = 0;
    ok(solve(&f, &p, &pc) == SK_OK && pc, "clipping: solved");
    if (pc) {
        is_int(pc->ncandidates, 44, "the SNR 8 star is left out (min_snr 10), the SNR 12 one used");
        is_int(pc->nstars, 43, "the 4.5-sigma star clipped at 3 robust sigmas, the 2.5-sigma one kept");
    }
    sk_photcal_free(pc);
    f.n = 0;
    add_star(&f, 30.0, 0.01, NAN);
    add_star(&f, 30.0, 0.01, NAN);
    ok(solve(&f, &p, &pc) == SK_ENOTFOUND && !pc, "two stars (< min_stars 3): SK_ENOTFOUND");
    add_star(&f, 30.0, 0.01, NAN);
    ok(solve(&f, &p, &pc) == SK_OK && pc && pc->nstars == 3, "three stars: a zero point");
    sk_photcal_free(pc);
}

int main(void)
{
    tap_plan(16);
    test_dzp_scaling();
    test_weights();
    test_clip_and_selection();
    return tap_done();
}
