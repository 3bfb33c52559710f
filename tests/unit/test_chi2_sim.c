/* test_chi2_sim.c: detection on the chi^2_+ image (positive matched-filter
 * significances) of three simulated bands (imsim: one seed, a noise seed
 * each, colours from SED slopes, 512 x 512 on one grid) against the truth,
 * every list at threshold 3.5: the stars at combined point-source SNR >= 10
 * and >= 5 (quadrature sum over the bands, each band's SNR from the true
 * flux, the true noise and the Moffat PSF's noise-equivalent area) are
 * found, more of those at SNR >= 5 than on any single band by a tenth of
 * them, with few detections where there is no source; the bands' images
 * are independent (no common noise). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/skystack.h"
#include "../tap.h"
#include "extract/extract_internal.h"
#include "sim/sim_internal.h"

enum { NB = 3 };

static int make_band(int b, int noise, sk_sim_params *p, sk_sim_exposure **e)
{
    char ns[64], sm[64], nz[64];
    snprintf(nz, sizeof nz, "simulation.noise=%s", noise ? "true" : "false");
    static const double sed[NB] = {0.75, 0.0, -0.75};
    snprintf(ns, sizeof ns, "simulation.noise_seed=%d", 301 + b);
    snprintf(sm, sizeof sm, "simulation.sed_mag=%g", sed[b]);
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=800",
                    "simulation.mag_max=26", "simulation.seed=33", "simulation.dither_arcsec=0",
                    "simulation.rotation_scatter_deg=0", "simulation.cosmic_rate_per_mpix_s=0",
                    "simulation.bad_columns=0", "simulation.hot_pixels=0", "simulation.satellite_probability=0",
                    "simulation.moving_sources=0", "simulation.transients=0", ns, sm, nz};
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

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The true per-pixel noise: the median of 1/sqrt(weight). */
static double noise_rms(const sk_image *img)
{
    long n = img->width * img->height, m = 0;
    double *v = malloc(sizeof *v * (size_t)n);
    for (long i = 0; i < n; i++)
        if (img->weight[i] > 0)
            v[m++] = 1.0 / sqrt(img->weight[i]);
    qsort(v, (size_t)m, sizeof *v, cmp_d);
    double r = m ? v[m / 2] : 0;
    free(v);
    return r;
}

static int found(const sk_source_list *l, double x, double y)
{
    for (long k = 0; k < l->n; k++)
        if (hypot(l->src[k].xwin - x, l->src[k].ywin - y) < 2.0)
            return 1;
    return 0;
}

/* Detections (away from the edge) with no true source of any kind, at
 * any flux, within 3 px (faint stars' windowed positions stray beyond
 * the 2 px that counts a star as found). */
static long spurious(const sk_source_list *l, const sk_table *truth, long w, long h)
{
    sk_column *tx = sk_table_column(truth, "x"), *ty = sk_table_column(truth, "y");
    long n = 0;
    for (long k = 0; k < l->n; k++) {
        double x = l->src[k].xwin, y = l->src[k].ywin;
        if (x < 10 || y < 10 || x > (double)w - 11 || y > (double)h - 11)
            continue;
        int any = 0;
        for (long q = 0; q < truth->nrows && !any; q++)
            any = hypot(sk_column_get(tx, q, 0) - x, sk_column_get(ty, q, 0) - y) < 3.0;
        n += !any;
    }
    return n;
}

int main(void)
{
    tap_plan(7);
    sk_sim_params p[NB];
    sk_sim_exposure *e[NB] = {NULL};
    int rc = SK_OK;
    for (int b = 0; b < NB && !rc; b++)
        rc = make_band(b, 1, &p[b], &e[b]);
    ok(rc == SK_OK, "three bands of one field on one grid");
    if (rc)
        return tap_done();
    /* independent noise: each band minus its noise-free model (the same
       conditions), correlated between bands 1 and 2 */
    sk_sim_params pq;
    sk_sim_exposure *m0 = NULL, *m1 = NULL;
    rc = make_band(0, 0, &pq, &m0);
    rc = rc ? rc : make_band(1, 0, &pq, &m1);
    long w = e[0]->image->width, h = e[0]->image->height, npx = w * h;
    double s01 = 0, s00 = 0, s11 = 0;
    for (long i = 0; !rc && i < npx; i++) {
        double a = e[0]->image->sci[i] - m0->image->sci[i], c = e[1]->image->sci[i] - m1->image->sci[i];
        s01 += a * c;
        s00 += a * a;
        s11 += c * c;
    }
    double corr = s00 > 0 && s11 > 0 ? s01 / sqrt(s00 * s11) : 1;
    ok(!rc && fabs(corr) < 0.01 && s00 > 0, "the bands' noise is independent (correlation %.4f)", corr);
    sk_sim_exposure_free(m0);
    sk_sim_exposure_free(m1);
    sk_image *det = NULL;
    const sk_image *bands[NB] = {e[0]->image, e[1]->image, e[2]->image};
    sk_extract_params par;
    sk_extract_params_default(&par);
    sk_extract_result *rchi = NULL, *rb[NB] = {NULL};
    /* chi^2 of the positive significances, every list at threshold 3.5 */
    const sk_detimage_params dp = {SK_DETCOMB_CHI2_POS, 4.0, NULL};
    par.detect.threshold_sigma = 3.5;
    rc = sk_chi2_detection(bands, NB, &dp, &det);
    rc = rc ? rc : sk_extract_run_dual(det, e[1]->image, &par, 2, &rchi);
    for (int b = 0; b < NB && !rc; b++)
        rc = sk_extract_run(e[b]->image, &par, 2, &rb[b]);
    ok(rc == SK_OK, "chi2_+ image (matched filter of 4 px), dual-image extraction on it, and each band's own "
                    "(threshold 3.5)");
    if (rc) {
        printf("# %s\n", sk_errmsg());
        return tap_done();
    }
    /* the truth: rows of band 0 (the same sources in every band, by id) */
    double rms[NB], beta = p[0].moffat_beta;
    for (int b = 0; b < NB; b++)
        rms[b] = noise_rms(e[b]->image);
    const sk_table *t0 = e[0]->truth;
    sk_column *id0 = sk_table_column(t0, "id"), *x0 = sk_table_column(t0, "x"), *y0 = sk_table_column(t0, "y");
    sk_column *ty = sk_table_column(t0, "type");
    long n8 = 0, f8 = 0, n5 = 0, f5_chi = 0, f5_band[NB] = {0};
    for (long k = 0; k < t0->nrows; k++) {
        if (sk_column_get(ty, k, 0) != SK_SIM_STAR)
            continue;
        double snr2 = 0;
        int blended = 0, seen = 0;
        for (int b = 0; b < NB; b++) {
            const sk_table *t = e[b]->truth;
            sk_column *id = sk_table_column(t, "id"), *fl = sk_table_column(t, "flux");
            sk_column *fw = sk_table_column(t, "fwhm"), *bl = sk_table_column(t, "blended");
            for (long q = 0; q < t->nrows; q++) {
                if (sk_column_get(id, q, 0) != sk_column_get(id0, k, 0))
                    continue;
                double flux = sk_column_get(fl, q, 0), fwhm = sk_column_get(fw, q, 0);
                double alpha = fwhm / (2 * sqrt(pow(2, 1 / beta) - 1));
                double nea = M_PI * alpha * alpha * (2 * beta - 1) / ((beta - 1) * (beta - 1));
                double snr = flux / sqrt(flux / p[b].gain + nea * rms[b] * rms[b]);
                snr2 += snr * snr;
                blended |= sk_column_get(bl, q, 0) != 0;
                seen++;
                break;
            }
        }
        double x = sk_column_get(x0, k, 0), y = sk_column_get(y0, k, 0);
        if (seen != NB || blended || x < 10 || y < 10 || x > (double)w - 11 || y > (double)h - 11)
            continue;
        double snr = sqrt(snr2);
        if (snr >= 10) {
            n8++;
            f8 += found(rchi->sources, x, y);
        }
        if (snr >= 5) {
            n5++;
            f5_chi += found(rchi->sources, x, y);
            for (int b = 0; b < NB; b++)
                f5_band[b] += found(rb[b]->sources, x, y);
        }
    }
    double c8 = n8 ? (double)f8 / (double)n8 : 0, c5 = n5 ? (double)f5_chi / (double)n5 : 0;
    ok(n8 >= 50 && c8 >= 0.95, "chi2_+ detection finds %.1f %% of the %ld isolated stars at combined SNR >= 10",
       100 * c8, n8);
    long best = 0;
    for (int b = 0; b < NB; b++)
        best = f5_band[b] > best ? f5_band[b] : best;
    ok(n5 >= 100 && c5 >= 0.92, "and %.1f %% of the %ld at combined SNR >= 5", 100 * c5, n5);
    ok(f5_chi >= best + n5 / 10, "at combined SNR >= 5: chi2_+ finds %ld, the bands g r i alone %ld %ld %ld", f5_chi,
       f5_band[0], f5_band[1], f5_band[2]);
    long fchi = spurious(rchi->sources, t0, w, h), fb[NB];
    for (int b = 0; b < NB; b++)
        fb[b] = spurious(rb[b]->sources, e[b]->truth, w, h);
    ok(fchi <= 10, "detections with no true source within 3 px: chi2_+ %ld, g r i alone %ld %ld %ld", fchi, fb[0],
       fb[1], fb[2]);
    sk_image_free(det);
    sk_extract_result_free(rchi);
    for (int b = 0; b < NB; b++) {
        sk_extract_result_free(rb[b]);
        sk_sim_exposure_free(e[b]);
    }
    sk_extract_params_clear(&par);
    return tap_done();
}
