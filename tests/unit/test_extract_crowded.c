/* test_extract_crowded.c: extraction of crowded, undersampled imsim fields
 * checked against their truth: 0.03 stars per pixel^2 with a Gaussian PSF
 * of FWHM 1.5 px (and 1.2 px): the FWHM measured from the data, the
 * completeness of the stars of SNR >= 20 within 1 px, and the bias of
 * their AUTO fluxes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/sim.h"
#include "../sim_extract.h"
#include "../tap.h"
#include "sim/sim_internal.h"

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

/* One 512 x 512 exposure of nstars stars (down to simulation.mag_max)
 * with a Gaussian PSF of fwhm_px, stars only, no defects; its extraction
 * with the default configuration against the truth. */
static void crowded(double fwhm_px, const char *nstars, double min_completeness)
{
    char seeing[64];
    snprintf(seeing, sizeof seeing, "simulation.seeing_arcsec=%.6f", fwhm_px * 0.26);
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", (char *)nstars,
                    "simulation.pixel_scale_arcsec=0.26", seeing, "simulation.seeing_scatter=0",
                    "simulation.psf_model=gaussian", "simulation.psf_variation=0",
                    "simulation.psf_ellipticity=0", "simulation.galaxy_fraction=0",
                    "simulation.hot_pixels=0", "simulation.bad_columns=0",
                    "simulation.cosmic_rate_per_mpix_s=0", "simulation.satellite_probability=0",
                    "simulation.moving_sources=0", "simulation.transients=0",
                    "simulation.sky_gradient=0", "simulation.seed=5", "simulation.nexp=1"};
    int nsets = (int)(sizeof sets / sizeof sets[0]);
    sk_config *c;
    sk_sim_params sp;
    sk_sim_field *f;
    sk_sim_exposure *e;
    sk_extract_params p;
    sk_extract_result *r;
    int rc = sim_extract(sets, nsets, &c, &sp, &f, &e, &p, &r);
    ok(rc == SK_OK, "FWHM %.1f px, %s: imsim exposure extracted (%s)", fwhm_px, nstars,
       rc ? sk_errmsg() : "ok");
    if (rc) {
        sk_extract_params_clear(&p);
        sk_sim_exposure_free(e);
        sk_sim_field_free(f);
        sk_config_free(c);
        return;
    }
    const sk_image *img = e->image;
    long w = img->width, h = img->height, n = e->truth->nrows;
    double rms = median_inv_sqrt(img->weight, w * h);
    sk_column *cx = sk_table_column(e->truth, "x"), *cy = sk_table_column(e->truth, "y");
    sk_column *cf = sk_table_column(e->truth, "flux"), *cs = sk_table_column(e->truth, "saturated");
    double sig = fwhm_px / 2.3548200450309493, nea = 4 * M_PI * sig * sig;
    long n20 = 0, f20 = 0, nr = 0, nbright = 0, nall = 0, fall = 0;
    double *ratio = malloc(sizeof *ratio * (size_t)(n ? n : 1));
    double *tx = malloc(sizeof *tx * (size_t)(3 * n + 1)), *ty = tx + n, *tf = tx + 2 * n;
    for (long k = 0; k < n; k++) {
        tx[k] = sk_column_get(cx, k, 0);
        ty[k] = sk_column_get(cy, k, 0);
        tf[k] = sk_column_get(cf, k, 0);
    }
    for (long k = 0; k < n; k++) {
        double x = tx[k], y = ty[k], fl = tf[k];
        double snr = fl / sqrt(fl / sp.gain + nea * rms * rms);
        if (snr >= 20)
            nbright++;
        if (snr < 20 || sk_column_get(cs, k, 0) != 0 || x < 10 || y < 10 || x > w - 11 || y > h - 11)
            continue;
        const sk_source *m = nearest(r->sources, x, y, 1.0);
        nall++;
        fall += m != NULL;
        /* resolvable: no star of half its flux or more within 2 FWHM;
           isolated (for the flux): none above 5 % of it within 4 FWHM */
        int resolvable = 1, isolated = 1;
        for (long q = 0; q < n; q++) {
            double d = hypot(tx[q] - x, ty[q] - y);
            if (q == k || d > 4 * fwhm_px)
                continue;
            if (tf[q] > 0.05 * fl)
                isolated = 0;
            if (tf[q] >= 0.5 * fl && d < 2 * fwhm_px)
                resolvable = 0;
        }
        if (!resolvable)
            continue;
        n20++;
        f20 += m != NULL;
        if (m && isolated)
            ratio[nr++] = m->flux_auto / fl;
    }
    free(tx);
    tap_diag("FWHM %.1f px: %.3f (%ld/%ld) of all the stars of SNR >= 20 found within 1 px", fwhm_px,
             nall ? (double)fall / (double)nall : 0.0, fall, nall);
    tap_diag("FWHM %.1f px: %ld truth stars (%.4f per px^2), %ld of SNR >= 20, %ld detections",
             fwhm_px, n, (double)n / (double)(w * h), nbright, r->sources->n);
    ok(fabs(r->fwhm_px / fwhm_px - 1) <= 0.1, "FWHM %.1f px: measured %.3f px within 10 %%",
       fwhm_px, r->fwhm_px);
    double compl = n20 ? (double)f20 / (double)n20 : 0;
    ok(n20 >= 200 && compl >= min_completeness,
       "FWHM %.1f px: %.3f (%ld/%ld) of the resolvable stars of SNR >= 20 (no star of half "
       "their flux within 2 FWHM) found within 1 px (>= %.2f)", fwhm_px,
       compl, f20, n20, min_completeness);
    qsort(ratio, (size_t)nr, sizeof *ratio, cmp_d);
    double med = nr ? ratio[nr / 2] : 0;
    ok(nr >= 20 && fabs(med - 1) <= 0.03,
       "FWHM %.1f px: median AUTO flux / true flux %.4f within 3 %% (%ld isolated stars)", fwhm_px, med, nr);
    free(ratio);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
    sk_config_free(c);
}

int main(void)
{
    tap_plan(8);
    crowded(1.5, "simulation.nstars=8000", 0.85);
    crowded(1.2, "simulation.nstars=8000", 0.78);
    return tap_done();
}
