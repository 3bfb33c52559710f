/* test_extract_dual.c: dual-image extraction against imsim truth: two bands
 * of one field on one grid (one seed, a noise seed each, colours per
 * source, the second band at half the exposure time); detected on the
 * first, measured on the second: positions and shapes are the first's,
 * fluxes follow the second band's truth, errors and background are the
 * second's; images of different sizes are refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/sim.h"
#include "../tap.h"
#include "extract/extract_internal.h"
#include "sim/sim_internal.h"

static int make_band(const char *noise_seed, const char *sed_mag, const char *exptime, sk_sim_params *p,
                     sk_sim_exposure **e)
{
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=500",
                    "simulation.seed=21", "simulation.dither_arcsec=0", "simulation.rotation_scatter_deg=0",
                    "simulation.seeing_scatter=0", "simulation.psf_ellipticity=0",
                    "simulation.cosmic_rate_per_mpix_s=0", "simulation.bad_columns=0", "simulation.hot_pixels=0",
                    "simulation.satellite_probability=0", "simulation.moving_sources=0",
                    "simulation.transients=0", (char *)noise_seed, (char *)sed_mag, (char *)exptime};
    sk_config *c = NULL;
    sk_sim_field *f = NULL;
    int rc = sk_config_load(NULL, sets, (int)(sizeof sets / sizeof sets[0]), &c);
    rc = rc ? rc : sk_sim_params_from_config(c, p);
    rc = rc ? rc : sk_sim_field_make(p, &f);
    rc = rc ? rc : sk_sim_expose(p, f, 0, 2, e);
    if (rc)
        printf("# imsim: %s\n", sk_errmsg());
    sk_sim_field_free(f);
    sk_config_free(c);
    return rc;
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

/* No other detection within r_px of s. */
static int isolated(const sk_source_list *l, const sk_source *s, double r_px)
{
    for (long k = 0; k < l->n; k++) {
        const sk_source *t = &l->src[k];
        if (t->number != s->number && hypot(t->xwin - s->xwin, t->ywin - s->ywin) < r_px)
            return 0;
    }
    return 1;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n ? v[n / 2] : NAN;
}

/* Same position and shape for every source of the two lists (same order). */
static int same_geometry(const sk_source_list *a, const sk_source_list *b)
{
    if (a->n != b->n)
        return 0;
    for (long k = 0; k < a->n; k++) {
        const sk_source *s = &a->src[k], *t = &b->src[k];
        if (s->xwin != t->xwin || s->ywin != t->ywin || s->a_px != t->a_px || s->b_px != t->b_px ||
            s->theta_deg != t->theta_deg || s->kron_radius != t->kron_radius || s->npix != t->npix)
            return 0;
    }
    return 1;
}

int main(void)
{
    tap_plan(9);
    sk_sim_params pa, pb;
    sk_sim_exposure *ea = NULL, *eb = NULL;
    int rc = make_band("simulation.noise_seed=101", "simulation.sed_mag=0", "simulation.exptime_s=300", &pa, &ea);
    rc = rc ? rc
            : make_band("simulation.noise_seed=202", "simulation.sed_mag=0.8", "simulation.exptime_s=150", &pb, &eb);
    ok(rc == SK_OK, "two bands of one field on one grid");
    if (rc)
        return tap_done();
    sk_extract_params p;
    sk_extract_params_default(&p);
    sk_extract_result *ra = NULL, *rb = NULL, *rd = NULL;
    rc = sk_extract_run(ea->image, &p, 2, &ra);
    rc = rc ? rc : sk_extract_run(eb->image, &p, 2, &rb);
    rc = rc ? rc : sk_extract_run_dual(ea->image, eb->image, &p, 2, &rd);
    ok(rc == SK_OK, "single-image extraction of each band and dual-image of the pair (%ld, %ld, %ld sources)",
       ra ? ra->sources->n : 0, rb ? rb->sources->n : 0, rd ? rd->sources->n : 0);
    if (rc) {
        printf("# %s\n", sk_errmsg());
        return tap_done();
    }
    ok(same_geometry(ra->sources, rd->sources) && rd->fwhm_px == ra->fwhm_px,
       "positions, shapes, Kron radii and the FWHM are the detection image's, bit for bit");

    /* fluxes and errors against the truth of band b: bright isolated stars */
    const sk_table *ta = ea->truth, *tb = eb->truth;
    sk_column *xa = sk_table_column(ta, "x"), *ya = sk_table_column(ta, "y"), *fa = sk_table_column(ta, "flux");
    sk_column *fb = sk_table_column(tb, "flux"), *ty = sk_table_column(ta, "type");
    sk_column *sa = sk_table_column(ta, "saturated"), *bl = sk_table_column(ta, "blended");
    sk_column *ida = sk_table_column(ta, "id"), *idb = sk_table_column(tb, "id");
    long n = ta->nrows, m = 0, m_err = 0;
    double *dev = calloc((size_t)n + 1, sizeof *dev), *truth_colour = calloc((size_t)n + 1, sizeof *truth_colour);
    double *err_ratio = calloc((size_t)n + 1, sizeof *err_ratio), *rel_err = calloc((size_t)n + 1, sizeof *rel_err);
    for (long k = 0, kb = 0; k < n; k++) {
        /* the same source in band b's truth (rows in id order) */
        while (kb < tb->nrows && sk_column_get(idb, kb, 0) < sk_column_get(ida, k, 0))
            kb++;
        if (kb >= tb->nrows || sk_column_get(idb, kb, 0) != sk_column_get(ida, k, 0))
            continue;
        double ftrue_a = sk_column_get(fa, k, 0), ftrue_b = sk_column_get(fb, kb, 0);
        if (sk_column_get(ty, k, 0) != SK_SIM_STAR ||
            sk_column_get(sa, k, 0) || sk_column_get(bl, k, 0) || !(ftrue_b > 0))
            continue;
        const sk_source *sd = nearest(rd->sources, sk_column_get(xa, k, 0), sk_column_get(ya, k, 0), 1.0);
        const sk_source *sa1 = nearest(ra->sources, sk_column_get(xa, k, 0), sk_column_get(ya, k, 0), 1.0);
        const sk_source *sb1 = nearest(rb->sources, sk_column_get(xa, k, 0), sk_column_get(ya, k, 0), 1.0);
        if (!sd || !sa1 || ((sd->flags | sa1->flags) & ~SK_SRC_NEIGHBOURS) || sd->snr < 10 ||
            !isolated(ra->sources, sd, 5 * ra->fwhm_px))
            continue;
        /* the same aperture (3 FWHM of the detection image) on both bands:
           the measured flux ratio b/a is the true one */
        double meas = sd->flux_aper[2] / sa1->flux_aper[2], truth = ftrue_b / ftrue_a;
        dev[m] = meas / truth;
        rel_err[m] = hypot(sd->flux_aper_err[2] / sd->flux_aper[2], sa1->flux_aper_err[2] / sa1->flux_aper[2]);
        truth_colour[m++] = -2.5 * log10(truth);
        if (sb1 && !(sb1->flags & ~SK_SRC_NEIGHBOURS))
            err_ratio[m_err++] = sd->flux_auto_err / sb1->flux_auto_err;
    }
    double cmin = 1e9, cmax = -1e9;
    for (long k = 0; k < m; k++) {
        cmin = fmin(cmin, truth_colour[k]);
        cmax = fmax(cmax, truth_colour[k]);
    }
    ok(m >= 12 && cmax - cmin > 0.8, "%ld bright isolated stars whose true colours b-a span %.2f mag", m,
       cmax - cmin);
    /* up to one aperture correction for all (the two exposures' seeing
       differs with their airmass) */
    double corr = median(dev, m);
    for (long k = 0; k < m; k++)
        dev[k] = fabs(dev[k] / corr - 1) / rel_err[k];
    double med_dev = median(dev, m), p90 = m ? dev[(long)(0.9 * (double)(m - 1))] : 1;
    ok(med_dev < 1.0 && p90 < 3.5 && fabs(corr - 1) < 0.1,
       "band b's fluxes in the detection apertures follow its truth: the flux ratio b/a is the true one "
       "within %.2f sigma (median; 0.67 for pure noise), %.2f (90th percentile), up to an aperture "
       "correction %.3f", med_dev, p90, corr);
    double er = median(err_ratio, m_err);
    ok(m_err >= 8 && fabs(er - 1) < 0.1,
       "flux errors are band b's: AUTO errors %.3f times those of band b's own extraction (%ld stars)", er, m_err);

    /* the background is band b's: its level against b's true sky */
    long w = eb->image->width, h = eb->image->height;
    double sky_b = sk_sim_sky_adu(&eb->info, 0.5 * (double)(w - 1), 0.5 * (double)(h - 1));
    double sky_a = sk_sim_sky_adu(&ea->info, 0.5 * (double)(w - 1), 0.5 * (double)(h - 1));
    double lvl = rd->background->level[(h / 2) * w + w / 2];
    ok(fabs(lvl / sky_b - 1) < 0.01 && fabs(sky_a / sky_b - 1) > 0.2,
       "background at the centre %.1f ADU is band b's sky %.1f (band a's: %.1f)", lvl, sky_b, sky_a);
    ok(rd->gain == pb.gain && fabs(rd->background->median_rms / rb->background->median_rms - 1) < 0.05,
       "gain and background rms (%.3f) are band b's (%.3f)", rd->background->median_rms,
       rb->background->median_rms);

    sk_image *small = sk_image_new(w, h - 1);
    sk_extract_result *bad = NULL;
    ok(sk_extract_run_dual(ea->image, small, &p, 1, &bad) == SK_EINPUT && !bad,
       "a measurement image of another size is refused: %s", sk_errmsg());
    sk_error_clear();
    sk_image_free(small);
    free(dev);
    free(truth_colour);
    free(err_ratio);
    free(rel_err);
    sk_extract_result_free(ra);
    sk_extract_result_free(rb);
    sk_extract_result_free(rd);
    sk_extract_params_clear(&p);
    sk_sim_exposure_free(ea);
    sk_sim_exposure_free(eb);
    return tap_done();
}
