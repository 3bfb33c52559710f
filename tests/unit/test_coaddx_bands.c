/* The coadds beyond the direct stack computed band by band (sk_coaddx_run
 * with a small band size) against the same coadds in one band: zogy
 * (science, weight, flags, input counts, score), psfmatch, and the mean
 * with artifact masks and background matching, on simulated exposures
 * with cosmic rays, a grid of 150 x 300 pixels and tiles of 64 pixels: the
 * bands of 70 rows become 128-row bands of tiles (two and a remainder of
 * 44), those of the direct combine 70 rows (four and a remainder of 20).
 * zogy also with its bands made a group of tile columns at a time (the
 * inputs' rows held over a budget), bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/header.h"
#include "skystack/psf.h"
#include "../tap.h"
#include "../simset_test.h"

#define NEXP 4
#define GW 150
#define GH 300
#define NPX ((long)GW * GH)

/* Pixels where the two results differ beyond float rounding (relative
 * 1e-6 of the larger value, or 1e-6 absolute); flags and counts must be equal. */
static long differ(const sk_coadd_result *a, const sk_coadd_result *b, int score)
{
    long nd = 0;
    for (long i = 0; i < NPX; i++) {
        double va[3] = {a->image->sci[i], a->image->weight[i], score ? a->score[i] : 0.0};
        double vb[3] = {b->image->sci[i], b->image->weight[i], score ? b->score[i] : 0.0};
        int d = a->image->flags[i] != b->image->flags[i] || a->nimg[i] != b->nimg[i];
        for (int q = 0; q < 3; q++) {
            double m = fabs(va[q]) > fabs(vb[q]) ? fabs(va[q]) : fabs(vb[q]);
            d |= fabs(va[q] - vb[q]) > 1e-6 * (m > 1.0 ? m : 1.0);
        }
        nd += d;
    }
    return nd;
}

/* Pixels with data, and pixels flagged REJECTED (the artifact masks). */
static void coverage(const sk_coadd_result *r, long *ngood, long *nrej)
{
    *ngood = *nrej = 0;
    for (long i = 0; i < NPX; i++) {
        *ngood += r->image->weight[i] > 0.0f;
        *nrej += (r->image->flags[i] & SK_FLAG_REJECTED) != 0;
    }
}

/* 1 when the two results are the same bit for bit (planes, counts, score). */
static int same_bits(const sk_coadd_result *a, const sk_coadd_result *b)
{
    int same = memcmp(a->image->sci, b->image->sci, sizeof(float) * NPX) == 0 &&
               memcmp(a->image->weight, b->image->weight, sizeof(float) * NPX) == 0 &&
               memcmp(a->image->flags, b->image->flags, sizeof(uint16_t) * NPX) == 0 &&
               memcmp(a->nimg, b->nimg, sizeof(int32_t) * NPX) == 0;
    if (a->score || b->score)
        same &= a->score && b->score && memcmp(a->score, b->score, sizeof(float) * NPX) == 0;
    return same;
}

/* zogy's bands made a group of tile columns at a time (the inputs' rows
 * held beyond a budget of 1 byte: one tile column per thread, three tile
 * columns across), at 2 threads and at 1, against `ref` (bands of 70 rows,
 * 2 threads, whole rows): the same bits. */
static void compare_column_groups(const sim_set *s, const sk_psf *const *psfs,
                                  const sk_grid *grid, const sk_coaddx_params *x,
                                  const sk_coadd_result *ref)
{
    sk_coaddx_params xg = *x;
    xg.rows_bytes = 1;
    for (int threads = 2; threads >= 1; threads--) {
        sk_coadd_params p;
        sk_coadd_params_default(&p);
        p.threads = threads;
        p.band_rows = 70;
        sk_coadd_result *g = NULL;
        int rc = sk_coaddx_run(s->in, NEXP, psfs, grid, &p, &xg, &g, NULL);
        if (rc)
            tap_diag("%s", sk_errmsg());
        ok(!rc && ref && same_bits(g, ref),
           "zogy by groups of tile columns at %d thread%s: the same bits", threads,
           threads == 1 ? "" : "s");
        sk_coadd_result_free(g);
    }
}

/* One method with one band and with bands of 70 rows. */
static void compare(const sim_set *s, const sk_psf *const *psfs, const sk_grid *grid,
                    const sk_coaddx_params *x, int combine, const char *what)
{
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.threads = 2;
    p.combine.method = combine;
    sk_coadd_result *one = NULL, *many = NULL;
    p.band_rows = GH;
    is_int(sk_coaddx_run(s->in, NEXP, psfs, grid, &p, x, &one, NULL), 0, "%s in one band", what);
    p.band_rows = 70;
    is_int(sk_coaddx_run(s->in, NEXP, psfs, grid, &p, x, &many, NULL), 0, "%s in bands of 70 rows",
           what);
    if (!one || !many) {
        tap_diag("%s", sk_errmsg());
        ok(0, "%s: results", what);
        ok(0, "%s: artifacts masked", what);
    } else {
        long ngood, nrej;
        coverage(one, &ngood, &nrej);
        long nd = differ(one, many, x->method == SK_COADDX_ZOGY);
        tap_diag("%s: %ld pixels with data, %ld REJECTED, %ld differ", what, ngood, nrej, nd);
        ok(nd == 0 && ngood > NPX / 2, "%s: the banded result is the one-band result (%ld of %ld "
           "pixels differ)", what, nd, NPX);
        long a1 = 0, a2 = 0, sum = 0;
        for (int k = 1; k <= NEXP; k++) {
            char key[32];
            snprintf(key, sizeof key, "ARTPIX%d", k);
            a1 = a2 = -1;
            sk_header_get_long(one->image->header, key, &a1);
            sk_header_get_long(many->image->header, key, &a2);
            if (a1 != a2)
                sum = -1000000000L;
            sum += a1;
        }
        ok(sum > 0 && one->nrejected == many->nrejected,
           "%s: the same artifact pixels masked (%ld)", what, sum);
    }
    if (x->method == SK_COADDX_ZOGY)
        compare_column_groups(s, psfs, grid, x, many);
    sk_coadd_result_free(one);
    sk_coadd_result_free(many);
}

int main(void)
{
    tap_plan(17);
    const char *sets[] = {"simulation.nexp=4", "simulation.width_px=170",
                          "simulation.height_px=320", "simulation.nstars=60",
                          "simulation.mag_min=16.5", "simulation.mag_max=21",
                          "simulation.galaxy_fraction=0.2", "simulation.moving_sources=0",
                          "simulation.transients=0", "simulation.seeing_scatter=0.35",
                          "simulation.dither_arcsec=4", "simulation.satellite_probability=0",
                          "simulation.cosmic_rate_per_mpix_s=0.5", "simulation.exptime_s=600",
                          "simulation.saturation_adu=1e9", "simulation.seed=11"};
    sim_set s;
    if (sim_set_make(&s, sets, (int)(sizeof sets / sizeof sets[0]), SIM_PSF_CENTRE)) {
        ok(0, "simulation");
        return tap_done();
    }
    sk_grid *grid = NULL;
    is_int(sk_grid_from_wcs(s.e[NEXP - 1]->image->wcs, GW, GH, &grid), 0, "grid");
    const sk_psf *psfs[NEXP];
    for (int k = 0; k < NEXP; k++)
        psfs[k] = s.psf[k];
    sk_coaddx_params x;
    sk_coaddx_params_default(&x);
    x.tile_px = 64;

    x.method = SK_COADDX_ZOGY;
    compare(&s, psfs, grid, &x, SK_COMBINE_MEAN, "zogy");
    x.method = SK_COADDX_PSFMATCH;
    compare(&s, psfs, grid, &x, SK_COMBINE_CLIPPED, "psfmatch (clipped)");
    x.method = SK_COADDX_DIRECT;
    x.artifact_masks = 1;
    x.background_match = 1;
    compare(&s, psfs, grid, &x, SK_COMBINE_MEDIAN, "median with artifact masks, backgrounds matched");
    /* the score plane exists and is not trivial */
    {
        sk_coadd_params p;
        sk_coadd_params_default(&p);
        p.band_rows = 70;
        x.method = SK_COADDX_ZOGY;
        x.artifact_masks = 0;
        x.background_match = 0;
        sk_coadd_result *z = NULL;
        is_int(sk_coaddx_run(s.in, NEXP, psfs, grid, &p, &x, &z, NULL), 0, "zogy once more");
        double smax = 0.0;
        for (long i = 0; z && z->score && i < NPX; i++)
            smax = z->score[i] > smax ? z->score[i] : smax;
        ok(smax > 20.0, "its score plane has stars (peak %.1f sigma)", smax);
        sk_coadd_result_free(z);
    }
    sk_grid_free(grid);
    sim_set_free(&s);
    return tap_done();
}
