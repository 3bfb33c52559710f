/* test_psf_crowded.c: the PSF model of crowded, undersampled imsim fields
 * (0.03 stars per pixel^2, Gaussian PSF of FWHM 1.5 and 1.2 px), whose
 * stars have neighbours in their stamps, checked against the truth: a
 * model is made from many stars, its FWHM is that of the true PSF seen
 * through the pixels, and the PSF fluxes of the bright stars match their
 * true fluxes; the joint fit of every star's flux (the second detection
 * pass's) finds the fluxes of an image made of the model at the true
 * positions, the same on 1 and 2 threads. */
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
#include "extract/psf_scene_priv.h"
#include "sim/sim_internal.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The joint fit of the true stars' fluxes (from 0) on an image made of
 * the model at their true positions with their true fluxes (variance
 * 25, 20 sweeps at most): each fitted flux near its truth (noise-free),
 * and the fluxes and the residual bit-identical on 1 and 2 threads. */
static void scene_fit(const sk_psf *psf, const sk_sim_exposure *e, double fwhm_px)
{
    sk_column *cx = sk_table_column(e->truth, "x"), *cy = sk_table_column(e->truth, "y");
    sk_column *cf = sk_table_column(e->truth, "flux");
    long n = e->truth->nrows, w = e->image->width, h = e->image->height, npix = w * h;
    double *b = malloc(sizeof *b * 3 * (size_t)n);
    float *img = calloc((size_t)npix, sizeof *img), *var = malloc(sizeof *var * (size_t)npix);
    float *res[2] = {malloc(sizeof(float) * (size_t)npix), malloc(sizeof(float) * (size_t)npix)};
    /* the stars of the lower half of the image (some 16 bands of rows) */
    long m = 0;
    for (long q = 0; q < n; q++) {
        if (!(sk_column_get(cy, q, 0) < h / 2))
            continue;
        b[m] = sk_column_get(cx, q, 0);
        b[n + m] = sk_column_get(cy, q, 0);
        b[2 * n + m++] = sk_column_get(cf, q, 0);
    }
    memmove(b + m, b + n, sizeof *b * (size_t)m);
    memmove(b + 2 * m, b + 2 * n, sizeof *b * (size_t)m);
    n = m;
    for (long i = 0; i < npix; i++)
        var[i] = 25.0f;
    psf_scene s[2];
    int sweeps[2] = {0, 0};
    int rc = psf_scene_make(psf, n, b, b + n, b + 2 * n, 1, NULL, &s[0]);
    rc = rc ? rc : psf_scene_paint(&s[0], NULL, 1.0, img, w, h, 1);
    sk_image im = *e->image;
    im.sci = img;
    for (int t = 0; t < 2; t++) {
        if (t == 1)
            rc = rc ? rc : psf_scene_make(psf, n, b, b + n, NULL, 2, NULL, &s[1]);
        for (long k = 0; !rc && k < n; k++)
            s[t].flux[k] = 0;
        memcpy(res[t], img, sizeof *img * (size_t)npix);
        rc = rc ? rc : psf_scene_fit(&s[t], &im, var, fmax(2.0, 2.0 * psf->fwhm_px), 20, t + 1, res[t], &sweeps[t]);
    }
    ok(rc == SK_OK && memcmp(s[0].flux, s[1].flux, sizeof *s[0].flux * (size_t)n) == 0 &&
           memcmp(res[0], res[1], sizeof *img * (size_t)npix) == 0 && sweeps[0] == sweeps[1],
       "FWHM %.1f px: joint fit of %ld stars: fluxes and residual the same on 1 and 2 threads (%d sweeps; %s)",
       fwhm_px, n, sweeps[0], rc ? sk_errmsg() : "ok");
    /* the stars of 1000 ADU or more with no other such star within 1 px */
    long nb = 0, nbad = 0;
    for (long k = 0; !rc && k < n; k++) {
        if (!s[0].live[k] || !(b[2 * n + k] >= 1000) || b[k] < 2 || b[n + k] < 2 || b[k] > w - 3 || b[n + k] > h - 3)
            continue;
        int close = 0;
        for (long q = 0; q < n && !close; q++)
            close = q != k && b[2 * n + q] >= 0.05 * b[2 * n + k] && hypot(b[q] - b[k], b[n + q] - b[n + k]) < 1.0;
        if (close)
            continue;
        nb++;
        nbad += !(fabs(s[0].flux[k] / b[2 * n + k] - 1) <= 0.01);
    }
    ok(nb >= 100 && nbad <= nb / 100, "FWHM %.1f px: joint fit: %ld of %ld bright stars off their true flux by more "
       "than 1 %% (<= 1 %% of them)", fwhm_px, nbad, nb);
    for (int t = 0; t < 2; t++)
        psf_scene_free(&s[t]);
    free(b);
    free(img);
    free(var);
    free(res[0]);
    free(res[1]);
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
        for (int t = 0; t < (fwhm_px == 1.5 ? 5 : 3); t++)
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
    if (fwhm_px == 1.5)
        scene_fit(psf, e, fwhm_px);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
    sk_config_free(c);
}

int main(void)
{
    tap_plan(10);
    crowded_psf(1.5);
    crowded_psf(1.2);
    return tap_done();
}
