/* test_psf_errors.c: PSF-fit flux errors (FLUXERR_PSF) against imsim truth: for unblended stars (nothing with 1/10 of the flux within 2 FWHM) the flux's deviation from the true flux, in units of its stated error, has a robust sigma near 1 for faint and for bright stars alike. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/log.h"
#include "skystack/psf.h"
#include "skystack/sim.h"
#include "../tap.h"
#include "extract/extract_internal.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 1.4826 times the median absolute deviation from the median. */
static double robust_sigma(const double *v, long n, double *med)
{
    double *t = malloc(sizeof *t * (size_t)(n ? n : 1));
    memcpy(t, v, sizeof *t * (size_t)n);
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    for (long i = 0; i < n; i++)
        t[i] = fabs(t[i] - m);
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    double s = 1.4826 * (n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]));
    free(t);
    *med = m;
    return s;
}

/* Pulls (flux - truth) / error of the unblended, unsaturated stars of one
 * imsim exposure (seed), appended to pull[] with the true flux to tf[]. */
static int pulls(const char *seed, double *pull, double *tf, long *n, long cap)
{
    char seedset[64];
    snprintf(seedset, sizeof seedset, "simulation.seed=%s", seed);
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=600",
                    seedset, "simulation.satellite_probability=0"};
    sk_config *c = NULL;
    sk_sim_field *f = NULL;
    sk_sim_params p;
    sk_sim_exposure *e = NULL;
    sk_extract_result *r = NULL;
    sk_psf *psf = NULL;
    sk_extract_params xp;
    sk_extract_params_default(&xp);
    int rc = sk_config_load(NULL, sets, 5, &c);
    rc = rc ? rc : sk_sim_params_from_config(c, &p);
    rc = rc ? rc : sk_sim_field_make(&p, &f);
    rc = rc ? rc : sk_sim_expose(&p, f, 0, 2, &e);
    rc = rc ? rc : sk_extract_run(e->image, &xp, 2, &r);
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    pp.gain = r ? r->gain : 0;
    rc = rc ? rc : sk_psf_build(e->image, r->background, r->sources, r->detection->segmap, &pp, 2, &psf);
    long ns = r ? r->sources->n : 0;
    double *fl = malloc(sizeof *fl * (size_t)(ns + 1)), *fe = malloc(sizeof *fe * (size_t)(ns + 1));
    rc = rc ? rc : sk_psf_photometry_sources(psf, e->image, r->background, r->detection->segmap,
                                             r->gain, r->sources, 2, fl, fe, NULL);
    if (rc)
        printf("# seed %s: %s\n", seed, sk_errmsg());
    const sk_table *t = rc ? NULL : e->truth;
    long nt = t ? t->nrows : 0;
    for (long k = 0; k < nt && *n < cap; k++) {
        double x = sk_column_get(sk_table_column(t, "x"), k, 0);
        double y = sk_column_get(sk_table_column(t, "y"), k, 0);
        double tflux = sk_column_get(sk_table_column(t, "flux"), k, 0);
        if (sk_column_get(sk_table_column(t, "type"), k, 0) != 0 ||
            sk_column_get(sk_table_column(t, "saturated"), k, 0) != 0 ||
            sk_column_get(sk_table_column(t, "blended"), k, 0) != 0)
            continue;
        if (x < 20 || y < 20 || x > 491 || y > 491)
            continue;
        int iso = 1; /* unblended: nothing with 1/10 of its flux within 2 FWHM */
        for (long q = 0; q < nt && iso; q++)
            iso = q == k || !(sk_column_get(sk_table_column(t, "flux"), q, 0) >= 0.1 * tflux) ||
                  hypot(sk_column_get(sk_table_column(t, "x"), q, 0) - x,
                        sk_column_get(sk_table_column(t, "y"), q, 0) - y) > 2 * psf->fwhm_px;
        long src = -1;
        for (long q = 0; q < ns && iso; q++)
            if (hypot(r->sources->src[q].xwin - x, r->sources->src[q].ywin - y) < 1.0)
                src = q;
        if (src < 0 || !isfinite(fl[src]) || !(fe[src] > 0) || tflux < 5 * fe[src])
            continue;
        pull[*n] = (fl[src] - tflux) / fe[src];
        tf[*n] = tflux;
        (*n)++;
    }
    free(fl);
    free(fe);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_extract_params_clear(&xp);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
    sk_config_free(c);
    return rc;
}

int main(void)
{
    tap_plan(4);
    if (getenv("SK_TEST_VERBOSE"))
        sk_log_set_level(SK_LOG_DEBUG);
    enum { CAP = 4000 };
    double *pull = malloc(sizeof *pull * CAP), *tf = malloc(sizeof *tf * CAP);
    long n = 0;
    int rc = 0;
    const char *seeds[] = {"11", "12", "13", "14", "15", "16"};
    for (int i = 0; i < 6 && !rc; i++)
        rc = pulls(seeds[i], pull, tf, &n, CAP);
    ok(rc == 0 && n >= 120, "imsim exposures extracted, PSF fitted: %ld unblended stars", n);
    /* split at the median true flux */
    double *sorted = malloc(sizeof *sorted * (size_t)(n ? n : 1));
    memcpy(sorted, tf, sizeof *sorted * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_d);
    double split = n ? sorted[n / 2] : 0;
    double *faint = malloc(sizeof *faint * (size_t)(n ? n : 1)), *bright = malloc(sizeof *bright * (size_t)(n ? n : 1));
    long nf = 0, nb = 0;
    for (long i = 0; i < n; i++) {
        if (tf[i] < split)
            faint[nf++] = pull[i];
        else
            bright[nb++] = pull[i];
    }
    double mf = NAN, mb = NAN, sf = nf > 10 ? robust_sigma(faint, nf, &mf) : NAN;
    double sb = nb > 10 ? robust_sigma(bright, nb, &mb) : NAN;
    ok(sf > 0.8 && sf < 1.25, "faint half (%ld stars, true flux < %.0f ADU): (flux - truth) / "
       "FLUXERR_PSF has robust sigma %.3f, median %.3f", nf, split, sf, mf);
    ok(sb > 0.8 && sb < 1.25, "bright half (%ld stars): robust sigma %.3f, median %.3f", nb, sb, mb);
    /* the brightest quarter, where the model's own error dominates */
    long nq = 0;
    for (long i = 0; i < n; i++)
        if (tf[i] >= sorted[3 * n / 4])
            faint[nq++] = pull[i];
    double mq = NAN, sq = nq > 10 ? robust_sigma(faint, nq, &mq) : NAN;
    ok(sq > 0.8 && sq < 1.25, "brightest quarter (%ld stars, true flux >= %.0f ADU): robust sigma "
       "%.3f, median %.3f", nq, n ? sorted[3 * n / 4] : 0, sq, mq);
    free(sorted);
    free(faint);
    free(bright);
    free(pull);
    free(tf);
    return tap_done();
}
