/* test_extract_nebula.c: extraction of an imsim field on a nebulous sky
 * (clouds and filaments of FWHM 50-150 arcsec, 100 image FWHMs, each
 * peaking at up to 0.3 of the sky) checked against its truth and against
 * the same field without the nebula: the stars of SNR >= 20 are found as
 * on the flat sky, the nebula is cut into few sources (detections that
 * match no true source stay under 8 %), and the median AUTO flux of the
 * bright stars stays within 1.5 % of the truth; neither field is crowded
 * enough for the automatic second detection pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/sim.h"
#include "../sim_extract.h"
#include "../tap.h"
#include "sim/sim_internal.h"
#include "extract/psf_internal.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_inv_sqrt(const float *w, long n)
{
    double *v = malloc(sizeof *v * (size_t)n);
    long m = 0;
    for (long i = 0; i < n; i++)
        if (w[i] > 0)
            v[m++] = 1.0 / sqrt(w[i]);
    qsort(v, (size_t)m, sizeof *v, cmp_d);
    double r = m ? v[m / 2] : 0;
    free(v);
    return r;
}

typedef struct {
    long ndet, spurious, n20, f20, nratio;
    double ratio;
    double crowd;                 /* sk_crowding */
    int crowded;                  /* sk_crowded */
} figures;

/* One 512 x 512 exposure (stars and galaxies, no defects), nebula peak
 * `amplitude` times the sky, extracted with the default configuration. */
static int field(double amplitude, figures *fg)
{
    char neb[64];
    snprintf(neb, sizeof neb, "simulation.nebula_amplitude=%g", amplitude);
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=600",
                    "simulation.galaxy_fraction=0.2", neb, "simulation.nebula_scale_arcsec=100",
                    "simulation.pixel_scale_arcsec=0.26", "simulation.seeing_arcsec=1.0",
                    "simulation.seeing_scatter=0", "simulation.hot_pixels=0",
                    "simulation.bad_columns=0", "simulation.cosmic_rate_per_mpix_s=0",
                    "simulation.satellite_probability=0", "simulation.moving_sources=0",
                    "simulation.transients=0", "simulation.seed=3", "simulation.nexp=1"};
    int nsets = (int)(sizeof sets / sizeof sets[0]);
    sk_config *c;
    sk_sim_params sp;
    sk_sim_field *f;
    sk_sim_exposure *e;
    sk_extract_params p;
    sk_extract_result *r;
    int rc = sim_extract(sets, nsets, &c, &sp, &f, &e, &p, &r);
    if (rc) {
        printf("# nebula %g: %s\n", amplitude, sk_errmsg());
    } else {
        const sk_image *img = e->image;
        long w = img->width, h = img->height, n = e->truth->nrows;
        double rms = median_inv_sqrt(img->weight, w * h), fwhm = e->info.psf.fwhm_px;
        double sig = fwhm / 2.3548200450309493, nea = 4 * M_PI * sig * sig;
        sk_column *cx = sk_table_column(e->truth, "x"), *cy = sk_table_column(e->truth, "y");
        sk_column *cf = sk_table_column(e->truth, "flux"), *cs = sk_table_column(e->truth, "saturated");
        sk_column *ct = sk_table_column(e->truth, "type");
        memset(fg, 0, sizeof *fg);
        fg->ndet = r->sources->n;
        fg->crowd = sk_crowding(r->sources, NULL, NULL);
        fg->crowded = sk_crowded(r->sources, p.crowding_min);
        /* a detection is spurious when no true source (of any flux) lies
           within max(2 px, 1 FWHM) of it */
        double rm = fmax(2.0, fwhm);
        for (long k = 0; k < r->sources->n; k++) {
            const sk_source *s = &r->sources->src[k];
            int hit = 0;
            for (long q = 0; q < n && !hit; q++)
                hit = hypot(sk_column_get(cx, q, 0) - s->x, sk_column_get(cy, q, 0) - s->y) <= rm;
            fg->spurious += !hit;
        }
        double *ratio = malloc(sizeof *ratio * (size_t)(n + 1));
        for (long q = 0; q < n; q++) {
            double x = sk_column_get(cx, q, 0), y = sk_column_get(cy, q, 0), fl = sk_column_get(cf, q, 0);
            double snr = fl / sqrt(fl / sp.gain + nea * rms * rms);
            if (snr < 20 || sk_column_get(cs, q, 0) != 0 || sk_column_get(ct, q, 0) != 0 || x < 10 ||
                y < 10 || x > w - 11 || y > h - 11)
                continue;
            const sk_source *m = NULL;
            double bd = 1.0;
            for (long k = 0; k < r->sources->n; k++) {
                double d = hypot(r->sources->src[k].xwin - x, r->sources->src[k].ywin - y);
                if (d <= bd) {
                    bd = d;
                    m = &r->sources->src[k];
                }
            }
            fg->n20++;
            fg->f20 += m != NULL;
            if (m && snr >= 50 && !(m->flags & (SK_SRC_BLENDED | SK_SRC_SATURATED | SK_SRC_TRUNCATED)))
                ratio[fg->nratio++] = m->flux_auto / fl;
        }
        qsort(ratio, (size_t)fg->nratio, sizeof *ratio, cmp_d);
        fg->ratio = fg->nratio ? ratio[fg->nratio / 2] : 0;
        free(ratio);
        tap_diag("nebula %g: %ld detections, %ld match no true source; %ld/%ld stars of SNR >= 20 "
                 "found; median AUTO / true flux %.4f (%ld stars of SNR >= 50)", amplitude, fg->ndet,
                 fg->spurious, fg->f20, fg->n20, fg->ratio, fg->nratio);
    }
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
    sk_config_free(c);
    return rc;
}

int main(void)
{
    tap_plan(6);
    figures flat, neb;
    int rc0 = field(0.0, &flat);
    int rc1 = field(0.3, &neb);
    ok(rc0 == SK_OK && rc1 == SK_OK, "both fields simulated and extracted");
    if (rc0 || rc1) {
        for (int t = 0; t < 5; t++)
            ok(0, "no figures");
        return tap_done();
    }
    ok(neb.spurious <= 0.08 * (double)neb.ndet,
       "nebulous sky: %ld of %ld detections match no true source (<= 8 %%; %ld of %ld without the nebula)",
       neb.spurious, neb.ndet, flat.spurious, flat.ndet);
    double c0 = flat.n20 ? (double)flat.f20 / (double)flat.n20 : 0;
    double c1 = neb.n20 ? (double)neb.f20 / (double)neb.n20 : 0;
    ok(neb.n20 >= 50 && c1 >= 0.80, "nebulous sky: %.3f (%ld/%ld) of the stars of SNR >= 20 found "
       "within 1 px (>= 0.80)", c1, neb.f20, neb.n20);
    ok(c1 >= c0 - 0.02, "nebulous sky: completeness %.3f within 2 %% of the flat sky's %.3f", c1, c0);
    ok(neb.nratio >= 20 && fabs(neb.ratio - 1) <= 0.015 && fabs(flat.ratio - 1) <= 0.02,
       "nebulous sky: median AUTO / true flux %.4f within 1.5 %% of 1 (flat sky: %.4f within 2 %%; "
       "%ld stars)", neb.ratio, flat.ratio, neb.nratio);
    ok(!neb.crowded && !flat.crowded, "crowding %.3f on the nebulous sky, %.3f on the flat one: not crowded, no "
       "automatic second pass", neb.crowd, flat.crowd);
    return tap_done();
}
