/* The PSF products of the proper (zogy) and PSF-matched coadds where the
 * inputs' PSFs vary across the field: noise-free imsim exposures whose PSF
 * broadens towards the corners, each with a PSF model varying like it; the
 * coadd's PSF model, evaluated at each isolated star, has the FWHM of that
 * star on the coadd, and does so better than one stamp for the whole
 * image. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../coaddx_test.h"
#include "skystack/skystack.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/psf.h"
#include "../tap.h"
#include "../simset_test.h"

#define NEXP 3
#define SZ 320
#define STAMP 31
#define CUT 21   /* star cut-outs: 10 px each way, < 22 px to the nearest source */

static double model_fwhm(const sk_psf *m, double x, double y)
{
    double d[STAMP * STAMP];
    float f[STAMP * STAMP];
    sk_psf_image(m, x, y, STAMP, d);
    for (long i = 0; i < STAMP * STAMP; i++)
        f[i] = (float)d[i];
    return stamp_fwhm(f, STAMP);
}

/* Isolated bright stars (no other source within 22 px) away from the centre: the FWHM measured on the
 * coadd over the FWHM of the model at the star (median of |ratio - 1| and
 * the worst), and the same with the model's centre stamp for every star. */
static void check_product(const char *label, const sim_set *s, const sk_grid *g,
                          const sk_coadd_result *r, const sk_psf *m)
{
    long ns = s->field->nsrc;
    double *x, *y;
    sim_set_source_pixels(s, g, &x, &y);
    double dev[400], dev_c[400], worst = 0.0;
    int n = 0;
    double f_centre = model_fwhm(m, 0.5 * (SZ - 1), 0.5 * (SZ - 1));
    float cut[CUT * CUT];
    for (long k = 0; k < ns && n < 400; k++) {
        const sk_sim_source *src = &s->field->src[k];
        long cx = lround(x[k]), cy = lround(y[k]);
        if (src->type != SK_SIM_STAR || src->mag > 19.0 || cx < 25 || cy < 25 ||
            cx >= SZ - 25 || cy >= SZ - 25 || hypot(x[k] - 0.5 * SZ, y[k] - 0.5 * SZ) < 0.3 * SZ)
            continue;
        int iso = 1;
        for (long q = 0; q < ns && iso; q++)
            if (q != k && hypot(x[q] - x[k], y[q] - y[k]) < 22.0)
                iso = 0;
        if (!iso || r->nimg[cy * SZ + cx] != NEXP)
            continue;
        cut_stamp(r->image->sci, SZ, SZ, cx, cy, CUT, cut);
        double fs = stamp_fwhm(cut, CUT), fm = model_fwhm(m, x[k], y[k]);
        dev[n] = fabs(fs / fm - 1.0);
        dev_c[n] = fabs(fs / f_centre - 1.0);
        if (dev[n] > worst)
            worst = dev[n];
        n++;
    }
    double med = n ? median_d(dev, n) : 1.0, med_c = n ? median_d(dev_c, n) : 0.0;
    tap_diag("%s: %d stars off the centre: |FWHM(star) / FWHM(model there) - 1| median %.4f, "
             "worst %.4f; against the model's centre stamp %.4f", label, n, med, worst, med_c);
    ok(n >= 5, "%s: enough isolated stars off the centre (%d)", label, n);
    ok(med < 0.02, "%s: the PSF product has the stars' FWHM where they are (median %.4f)", label,
       med);
    ok(worst < 0.05, "%s: and within 5 %% for every star (worst %.4f)", label, worst);
    ok(med < med_c, "%s: better than one stamp for the whole image (%.4f vs %.4f)", label,
       med, med_c);
    ok(m->degree == 2, "%s: the product varies over the coadd (degree %d)", label, m->degree);
    free(x);
    free(y);
}

int main(void)
{
    tap_plan(13);
    sk_log_set_level(SK_LOG_WARN);
    const char *sets[] = {"simulation.nexp=3", "simulation.width_px=320",
                          "simulation.height_px=320", "simulation.nstars=120",
                          "simulation.mag_min=16", "simulation.mag_max=19.5",
                          "simulation.galaxy_fraction=0", "simulation.moving_sources=0",
                          "simulation.transients=0", "simulation.seeing_scatter=0.2",
                          "simulation.psf_variation=0.2", "simulation.dither_arcsec=6",
                          "simulation.rotation_scatter_deg=0",
                          "simulation.satellite_probability=0", "simulation.bad_columns=0",
                          "simulation.hot_pixels=0", "simulation.cosmic_rate_per_mpix_s=0",
                          "simulation.saturation_adu=1e9", "simulation.noise=false",
                          "simulation.seed=5"};
    sim_set s;
    if (sim_set_make(&s, sets, (int)(sizeof sets / sizeof sets[0]), SIM_PSF_VARYING)) {
        ok(0, "simulation");
        return tap_done();
    }
    sk_grid *grid = NULL;
    is_int(sk_grid_from_wcs(s.e[NEXP - 1]->image->wcs, SZ, SZ, &grid), 0, "grid");
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.threads = 2;
    p.combine.method = SK_COMBINE_MEAN;
    const sk_psf *psfs[NEXP];
    for (int k = 0; k < NEXP; k++)
        psfs[k] = s.psf[k];
    sk_coaddx_params x;
    sk_coaddx_params_default(&x);
    const int methods[] = {SK_COADDX_ZOGY, SK_COADDX_PSFMATCH};
    for (int mth = 0; mth < 2; mth++) {
        x.method = methods[mth];
        const char *label = sk_coaddx_method_name(x.method);
        sk_coadd_result *r = NULL;
        sk_psf *m = NULL;
        is_int(sk_coaddx_run(s.in, NEXP, psfs, grid, &p, &x, &r, &m), 0, "%s coadd", label);
        if (r && m)
            check_product(label, &s, grid, r, m);
        else
            tap_diag("%s", sk_errmsg());
        sk_coadd_result_free(r);
        sk_psf_free(m);
    }
    sk_grid_free(grid);
    sim_set_free(&s);
    return tap_done();
}
