/* test_psf_crowded.c: the PSF model of crowded, undersampled imsim fields
 * (0.03 stars per pixel^2, Gaussian PSF of FWHM 1.5 and 1.2 px), whose
 * stars have neighbours in their stamps, checked against the truth: a
 * model is made from many stars, its FWHM is that of the true PSF seen
 * through the pixels, and the PSF fluxes of the bright stars match their
 * true fluxes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/sim.h"
#include "../sim_extract.h"
#include "../tap.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Half-maximum area diameter (px) of a circular Gaussian of FWHM fwhm_px
 * integrated over unit pixels, as the model's FWHM is measured. */
static double pixel_gauss_fwhm(double fwhm_px)
{
    const int sub = 16;
    double s = fwhm_px / 2.3548200450309493, k = 1.0 / (M_SQRT2 * s);
    int n = 2 * (int)ceil(4 * fwhm_px * sub) + 1;
    double *g = malloc(sizeof *g * (size_t)n);
    for (int i = 0; i < n; i++) {
        double x = (double)(i - n / 2) / sub;
        g[i] = 0.5 * (erf((x + 0.5) * k) - erf((x - 0.5) * k));
    }
    double peak = g[n / 2] * g[n / 2];
    long count = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++)
            count += g[i] * g[j] >= 0.5 * peak;
    free(g);
    return 2.0 * sqrt((double)count / (sub * sub) / M_PI);
}

static void crowded_psf(double fwhm_px)
{
    char seeing[64];
    snprintf(seeing, sizeof seeing, "simulation.seeing_arcsec=%.6f", fwhm_px * 0.26);
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=8000",
                    "simulation.pixel_scale_arcsec=0.26", seeing, "simulation.seeing_scatter=0",
                    "simulation.psf_model=gaussian", "simulation.psf_variation=0",
                    "simulation.psf_ellipticity=0", "simulation.galaxy_fraction=0",
                    "simulation.hot_pixels=0", "simulation.bad_columns=0",
                    "simulation.cosmic_rate_per_mpix_s=0", "simulation.satellite_probability=0",
                    "simulation.moving_sources=0", "simulation.transients=0",
                    "simulation.sky_gradient=0", "simulation.seed=11", "simulation.nexp=1"};
    int nsets = (int)(sizeof sets / sizeof sets[0]);
    sk_config *c;
    sk_sim_params sp;
    sk_sim_field *f;
    sk_sim_exposure *e;
    sk_extract_params p;
    sk_extract_result *r;
    int rc = sim_extract(sets, nsets, &c, &sp, &f, &e, &p, &r);
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    pp.gain = sp.gain;
    sk_psf *psf = NULL;
    rc = rc ? rc : sk_psf_build(e->image, r->background, r->sources, r->detection->segmap, &pp, 2, &psf);
    ok(rc == SK_OK && psf, "FWHM %.1f px: a PSF model of the crowded field (%s)", fwhm_px,
       rc ? sk_errmsg() : "ok");
    if (rc || !psf) {
        sk_extract_result_free(r);
        sk_extract_params_clear(&p);
        sk_sim_exposure_free(e);
        sk_sim_field_free(f);
        sk_config_free(c);
        for (int t = 0; t < 3; t++)
            ok(0, "FWHM %.1f px: no model to check", fwhm_px);
        return;
    }
    ok(psf->naccepted >= 50, "FWHM %.1f px: %ld of %ld loaded stars accepted (>= 50)", fwhm_px,
       psf->naccepted, psf->nloaded);
    double want = pixel_gauss_fwhm(fwhm_px);
    ok(fabs(psf->fwhm_px / want - 1) <= 0.05,
       "FWHM %.1f px: model FWHM %.3f px within 5 %% of the true PSF's through the pixels (%.3f px)",
       fwhm_px, psf->fwhm_px, want);
    /* PSF fluxes of the accepted stars against their truth (nearest true
       star; the brightest true star within 1 px) */
    sk_column *cx = sk_table_column(e->truth, "x"), *cy = sk_table_column(e->truth, "y");
    sk_column *cf = sk_table_column(e->truth, "flux");
    long n = e->truth->nrows, nr = 0;
    double *ratio = malloc(sizeof *ratio * (size_t)(psf->naccepted + 1));
    for (long k = 0; k < psf->naccepted; k++) {
        double best = 0;
        for (long q = 0; q < n; q++)
            if (hypot(sk_column_get(cx, q, 0) - psf->star_x[k], sk_column_get(cy, q, 0) - psf->star_y[k]) <= 1.0 &&
                sk_column_get(cf, q, 0) > best)
                best = sk_column_get(cf, q, 0);
        if (best > 0)
            ratio[nr++] = psf->star_flux[k] / best;
    }
    qsort(ratio, (size_t)nr, sizeof *ratio, cmp_d);
    double med = nr ? ratio[nr / 2] : 0;
    ok(nr >= 50 && fabs(med - 1) <= 0.03,
       "FWHM %.1f px: median PSF-star flux / true flux %.4f within 3 %% (%ld stars)", fwhm_px, med, nr);
    free(ratio);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
    sk_config_free(c);
}

int main(void)
{
    tap_plan(8);
    crowded_psf(1.5);
    crowded_psf(1.2);
    return tap_done();
}
