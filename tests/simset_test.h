/* simset_test.h: a set of imsim exposures of one field ready to coadd, for
 * the coadd tests: the field and exposures from configuration strings
 * (--set style), each exposure's true sky as its background, a PSF model
 * (the true PSF at the centre, or varying over the image like the true
 * one), and its sk_coadd_input. Header-only. */
#ifndef SK_SIMSET_TEST_H
#define SK_SIMSET_TEST_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "tap.h"
#include "coadd/coadd_internal.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

enum sim_psf_model {
    SIM_PSF_CENTRE = 0, /* the true PSF at the image centre, everywhere */
    SIM_PSF_VARYING = 1 /* the true PSF at the nine positions of
                           sk_coadd_psf_positions, fitted with degree 2 */
};

typedef struct sim_set {
    sk_sim_params p;
    sk_sim_field *field;
    int n;                 /* simulation.nexp */
    sk_sim_exposure **e;
    float **bkg;           /* the true sky of each exposure */
    sk_psf **psf;
    sk_coadd_input *in;
} sim_set;

static int sim_set_psf(const sim_set *s, int k, int model, sk_psf **out) __attribute__((unused));
static int sim_set_psf(const sim_set *s, int k, int model, sk_psf **out)
{
    const sk_sim_expinfo *info = &s->e[k]->info;
    long w = s->e[k]->image->width, h = s->e[k]->image->height;
    if (model == SIM_PSF_CENTRE) {
        sk_sim_psf ps = info->psf;
        long size = 2 * (long)ceil(5.0 * ps.fwhm_px) + 1;
        double *st = calloc((size_t)(size * size), sizeof(double));
        sk_sim_psf_add(&ps, 1.0, size / 2, size / 2, st, size, size, 0, size);
        int rc = sk_psf_from_stamp(st, (int)size, w, h, out);
        free(st);
        return rc;
    }
    sk_grid *g = NULL;
    int rc = sk_grid_from_wcs(s->e[k]->image->wcs, w, h, &g);
    if (rc)
        return rc;
    const long size = 41, npix = size * size;
    double px[9], py[9], *st = calloc(9 * (size_t)npix, sizeof(double));
    int have[9];
    sk_coadd_psf_positions(g, px, py);
    for (int q = 0; q < 9; q++) {
        sk_sim_psf ps;
        sk_sim_psf_at(&s->p, info, w, h, px[q], py[q], &ps);
        sk_sim_psf_add(&ps, 1.0, size / 2, size / 2, st + (size_t)q * npix, size, size, 0, size);
        have[q] = 1;
    }
    rc = sk_coadd_psf_fit(st, have, size, g, out);
    free(st);
    sk_grid_free(g);
    return rc;
}

static void sim_set_free(sim_set *s) __attribute__((unused));
static void sim_set_free(sim_set *s)
{
    for (int k = 0; k < s->n; k++) {
        if (s->e)
            sk_sim_exposure_free(s->e[k]);
        if (s->bkg)
            free(s->bkg[k]);
        if (s->psf)
            sk_psf_free(s->psf[k]);
    }
    free(s->e);
    free(s->bkg);
    free(s->psf);
    free(s->in);
    sk_sim_field_free(s->field);
    memset(s, 0, sizeof *s);
}

/* The pixel positions of every source of the field on grid g (x and y
 * malloc'd, s->field->nsrc each; the caller frees them). */
static void sim_set_source_pixels(const sim_set *s, const sk_grid *g, double **x, double **y)
    __attribute__((unused));
static void sim_set_source_pixels(const sim_set *s, const sk_grid *g, double **x, double **y)
{
    long ns = s->field->nsrc;
    double *ra = malloc(sizeof(double) * (size_t)(ns ? ns : 1));
    double *dec = malloc(sizeof(double) * (size_t)(ns ? ns : 1));
    *x = malloc(sizeof(double) * (size_t)(ns ? ns : 1));
    *y = malloc(sizeof(double) * (size_t)(ns ? ns : 1));
    for (long k = 0; k < ns; k++) {
        ra[k] = s->field->src[k].ra_deg;
        dec[k] = s->field->src[k].dec_deg;
    }
    sk_wcs_sky2pix(g->wcs, ns, ra, dec, *x, *y);
    free(ra);
    free(dec);
}

/* Make the set; 0, or a status after a diagnostic line. */
static int sim_set_make(sim_set *s, const char *const *sets, int nsets, int psf_model)
    __attribute__((unused));
static int sim_set_make(sim_set *s, const char *const *sets, int nsets, int psf_model)
{
    memset(s, 0, sizeof *s);
    sk_config *c = NULL;
    int rc = sk_config_load(NULL, (char *const *)sets, nsets, &c);
    if (!rc)
        rc = sk_sim_params_from_config(c, &s->p);
    sk_config_free(c);
    if (!rc)
        rc = sk_sim_field_make(&s->p, &s->field);
    if (!rc) {
        s->n = s->p.nexp;
        s->e = calloc((size_t)s->n, sizeof *s->e);
        s->bkg = calloc((size_t)s->n, sizeof *s->bkg);
        s->psf = calloc((size_t)s->n, sizeof *s->psf);
        s->in = calloc((size_t)s->n, sizeof *s->in);
        if (!s->e || !s->bkg || !s->psf || !s->in)
            rc = sk_error(SK_EIO, "simulation: out of memory");
    }
    for (int k = 0; k < s->n && !rc; k++) {
        if ((rc = sk_sim_expose(&s->p, s->field, k, 2, &s->e[k])))
            break;
        const sk_sim_expinfo *info = &s->e[k]->info;
        long w = s->e[k]->image->width, h = s->e[k]->image->height;
        s->bkg[k] = malloc(sizeof(float) * (size_t)(w * h));
        for (long y = 0; y < h; y++)
            for (long x = 0; x < w; x++)
                s->bkg[k][y * w + x] = (float)sk_sim_sky_adu(info, x, y);
        if ((rc = sim_set_psf(s, k, psf_model, &s->psf[k])))
            break;
        sk_coadd_input_init(&s->in[k]);
        s->in[k].image = s->e[k]->image;
        s->in[k].background = s->bkg[k];
        s->in[k].zero_point = info->magzero;
        s->in[k].gain = s->p.gain;
        s->in[k].name = "sim";
    }
    if (rc)
        tap_diag("simulation: %s", sk_errmsg());
    return rc;
}

#endif
