/* Tests of the coadd methods beyond the direct stack on simulated
 * exposures (imsim: Moffat PSFs of varied seeing, dithers, distortion,
 * Poisson and read noise, cosmic rays), through sk_coaddx_run: zogy (noise
 * against its weight, fluxes with its MAGZERO, PSF, SNR against the mean),
 * psfmatch (star FWHM against the target, fluxes), artifact masks with a
 * trail and cosmic rays in one exposure, background matching of injected
 * offsets. */
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
#include "coadd/coaddx_internal.h"
#include "extract/psf_internal.h"

#define NEXP 5
#define SZ 320

/* Isolated stars (no other source within 30 px, so that a 20 px aperture
 * holds no other light) of mag [m0, m1] at least 24 px inside the grid;
 * and blank positions (nothing within 12 px). */
typedef struct truth {
    double x[400], y[400], mag[400];
    int n;
    double bx[2000], by[2000];
    int nb;
} truth;

static void find_truth(const sim_set *s, const sk_grid *g, double m0, double m1, truth *t)
{
    long ns = s->field->nsrc;
    double *x, *y;
    sim_set_source_pixels(s, g, &x, &y);
    t->n = 0;
    for (long k = 0; k < ns && t->n < 400; k++) {
        const sk_sim_source *src = &s->field->src[k];
        if (src->type != SK_SIM_STAR || src->mag < m0 || src->mag > m1)
            continue;
        if (!(x[k] > 24 && y[k] > 24 && x[k] < g->width - 25 && y[k] < g->height - 25))
            continue;
        int iso = 1;
        for (long q = 0; q < ns && iso; q++)
            if (q != k && hypot(x[q] - x[k], y[q] - y[k]) < 30.0)
                iso = 0;
        if (!iso)
            continue;
        t->x[t->n] = x[k];
        t->y[t->n] = y[k];
        t->mag[t->n] = src->mag;
        t->n++;
    }
    t->nb = 0;
    for (double by = 25; by < g->height - 25; by += 6)
        for (double bx = 25; bx < g->width - 25; bx += 6) {
            int ok_ = 1;
            for (long q = 0; q < ns && ok_; q++)
                if (hypot(x[q] - bx, y[q] - by) < 12.0)
                    ok_ = 0;
            if (ok_ && t->nb < 2000) {
                t->bx[t->nb] = bx;
                t->by[t->nb] = by;
                t->nb++;
            }
        }
    free(x);
    free(y);
}

static int cmpd(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return u < v ? -1 : u > v;
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmpd);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Robust rms (1.4826 MAD) of sci*sqrt(weight) at the blank positions. */
static double norm_rms(const sk_coadd_result *r, const truth *t)
{
    double *v = malloc(sizeof(double) * (size_t)t->nb), *a = malloc(sizeof(double) * (size_t)t->nb);
    int n = 0;
    long w = r->image->width;
    for (int k = 0; k < t->nb; k++) {
        long i = lround(t->by[k]) * w + lround(t->bx[k]);
        if (r->image->weight[i] > 0)
            v[n++] = r->image->sci[i] * sqrt(r->image->weight[i]);
    }
    double m = median_of(v, n);
    for (int k = 0; k < n; k++)
        a[k] = fabs(v[k] - m);
    double s = 1.4826 * median_of(a, n);
    free(v);
    free(a);
    return s;
}

/* Median of the aperture magnitude errors of the stars (MAGZERO of r). */
static double median_dmag(const sk_coadd_result *r, const truth *t, double radius, double *worst)
{
    double *d = malloc(sizeof(double) * (size_t)t->n);
    *worst = 0.0;
    for (int k = 0; k < t->n; k++) {
        double f = aperture_sum(r->image->sci, r->image->width, r->image->height, t->x[k], t->y[k],
                                radius);
        d[k] = -2.5 * log10(f) + r->zero_point - t->mag[k];
        if (fabs(d[k]) > *worst) *worst = fabs(d[k]);
    }
    double m = median_of(d, t->n);
    free(d);
    return m;
}

/* SNR of the stars with a PSF-weighted flux, noise from the blank positions. */
static double median_snr(const sk_coadd_result *r, const float *psf, long size, const truth *t)
{
    long w = r->image->width, h = r->image->height;
    double s2 = 0.0;
    for (int k = 0; k < t->nb; k++) {
        double f = psf_flux(r->image->sci, w, h, lround(t->bx[k]), lround(t->by[k]), psf, size);
        s2 += f * f;
    }
    double noise = sqrt(s2 / t->nb);
    double *v = malloc(sizeof(double) * (size_t)t->n);
    for (int k = 0; k < t->n; k++)
        v[k] = psf_flux(r->image->sci, w, h, lround(t->x[k]), lround(t->y[k]), psf, size) / noise;
    double m = median_of(v, t->n);
    free(v);
    return m;
}

int main(void)
{
    tap_plan(26);
    const char *sets[] = {"simulation.nexp=5", "simulation.width_px=320",
                          "simulation.height_px=320", "simulation.nstars=40",
                          "simulation.mag_min=17.5", "simulation.mag_max=20.5",
                          "simulation.galaxy_fraction=0", "simulation.moving_sources=0",
                          "simulation.transients=0", "simulation.seeing_scatter=0.35",
                          "simulation.psf_variation=0", "simulation.dither_arcsec=6",
                          "simulation.satellite_probability=0", "simulation.bad_columns=0",
                          "simulation.hot_pixels=0", "simulation.cosmic_rate_per_mpix_s=0",
                          "simulation.exptime_s=1200", "simulation.saturation_adu=1e9",
                          "simulation.seed=7"};
    const int nsets = (int)(sizeof sets / sizeof sets[0]);
    sim_set s;
    if (sim_set_make(&s, sets, nsets, SIM_PSF_CENTRE)) {
        ok(0, "simulation");
        return tap_done();
    }
    double fw[NEXP];
    for (int k = 0; k < NEXP; k++)
        fw[k] = s.e[k]->info.psf.fwhm_px;
    tap_diag("seeing FWHM (px): %.2f %.2f %.2f %.2f %.2f", fw[0], fw[1], fw[2], fw[3], fw[4]);
    sk_grid *grid = NULL;
    is_int(sk_grid_from_wcs(s.e[NEXP - 1]->image->wcs, SZ, SZ, &grid), 0, "grid of the last input");
    truth *t = calloc(1, sizeof *t);
    find_truth(&s, grid, 17.5, 20.5, t);
    tap_diag("%d isolated stars, %d blank positions", t->n, t->nb);
    ok(t->n >= 10 && t->nb >= 200, "enough stars and sky");

    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.threads = 2;
    p.combine.method = SK_COMBINE_MEAN;
    const sk_psf *psfs[NEXP];
    for (int k = 0; k < NEXP; k++)
        psfs[k] = s.psf[k];

    /* ---- the mean (the engine) and its PSF -------------------------------- */
    sk_coadd_result *mean = NULL;
    is_int(sk_coadd_run(s.in, NEXP, grid, &p, &mean), 0, "mean coadd");
    double worst;
    double dm_mean = median_dmag(mean, t, 20.0, &worst);
    tap_diag("mean: median magnitude error %.4f (worst %.4f), noise x sqrt(weight) %.3f", dm_mean,
             worst, norm_rms(mean, t));

    /* ---- zogy ---------------------------------------------------------- */
    sk_coaddx_params x;
    sk_coaddx_params_default(&x);
    x.method = SK_COADDX_ZOGY;
    sk_coadd_result *zr = NULL;
    sk_psf *zpsf = NULL;
    is_int(sk_coaddx_run(s.in, NEXP, psfs, grid, &p, &x, &zr, &zpsf), 0, "zogy coadd");
    if (!zr) {
        tap_diag("%s", sk_errmsg());
        return tap_done();
    }
    double zn = norm_rms(zr, t);
    tap_diag("zogy: noise x sqrt(weight) %.3f on blank sky", zn);
    is_near(zn, 1.0, 0.1, "zogy: blank-sky noise matches its weight within 10 %% (%.3f)", zn);
    double wmed;
    {
        double *wv = malloc(sizeof(double) * (size_t)t->nb);
        for (int k = 0; k < t->nb; k++)
            wv[k] = zr->image->weight[lround(t->by[k]) * SZ + lround(t->bx[k])];
        wmed = median_of(wv, t->nb);
        free(wv);
    }
    is_near(wmed, 1.0, 0.05, "zogy: weight 1 where every input covers (median %.3f)", wmed);
    double dmz = median_dmag(zr, t, 20.0, &worst);
    tap_diag("zogy: median magnitude error with its MAGZERO %.4f (worst %.4f), MAGZERO %.4f",
             dmz, worst, zr->zero_point);
    /* against the mean coadd of the same data (same sky, same noise): the
     * absolute error of both holds the sky's and the stars' noise */
    ok(fabs(dmz - dm_mean) < 0.0108, "zogy: fluxes with its MAGZERO within 1 %% of the mean's "
       "(%.4f mag)", dmz - dm_mean);
    ok(fabs(dmz) < 0.02, "zogy: and within 2 %% of the truth (%.4f mag)", dmz);
    char ct[72] = "";
    sk_header_get_str(zr->image->header, "COMBINET", ct, sizeof ct);
    is_str(ct, "ZOGY", "COMBINET = ZOGY");
    ok(zpsf != NULL, "zogy: coadd PSF product");
    long ps = zpsf ? sk_psf_stamp_size(zpsf) : 0;
    float *zst = malloc(sizeof(float) * (size_t)(ps * ps));
    double *dst = malloc(sizeof(double) * (size_t)(ps * ps));
    sk_psf_image(zpsf, SZ / 2, SZ / 2, (int)ps, dst);
    for (long i = 0; i < ps * ps; i++)
        zst[i] = (float)dst[i];
    double fz = stamp_fwhm(zst, ps);
    double fin[NEXP];
    float *mpsf = calloc((size_t)(ps * ps), sizeof(float)), *gs = malloc(sizeof(float) * (size_t)(ps * ps));
    double wsum = 0.0;
    for (int k = 0; k < NEXP; k++) {
        sk_grid_psf gp = {s.psf[k], s.e[k]->image->wcs, grid->wcs};
        sk_grid_psf_stamp(&gp, SZ / 2, SZ / 2, ps, gs);
        fin[k] = stamp_fwhm(gs, ps);
        /* the mean's PSF: weights of the mean (1 / sky variance at the
         * common zero point) */
        double sc = pow(10.0, 0.4 * (mean->zero_point - s.e[k]->info.magzero));
        double skyvar = s.e[k]->info.sky_adu / s.p.gain +
                        s.p.read_noise_e * s.p.read_noise_e / (s.p.gain * s.p.gain);
        double wk = 1.0 / (skyvar * sc * sc);
        for (long i = 0; i < ps * ps; i++)
            mpsf[i] += (float)(wk * gs[i]);
        wsum += wk;
    }
    for (long i = 0; i < ps * ps; i++)
        mpsf[i] = (float)(mpsf[i] / wsum);
    double fmed = median_d(fin, NEXP);
    tap_diag("zogy: coadd PSF FWHM %.3f px, inputs on the grid %.2f %.2f %.2f %.2f %.2f (median "
             "%.3f)", fz, fin[0], fin[1], fin[2], fin[3], fin[4], fmed);
    ok(fz <= fmed, "zogy: coadd PSF FWHM (%.3f) <= median input FWHM (%.3f)", fz, fmed);
    double snr_z = median_snr(zr, zst, ps, t), snr_m = median_snr(mean, mpsf, ps, t);
    tap_diag("point-source SNR (PSF-weighted, noise from blank sky): zogy %.1f, mean %.1f: gain "
             "%.1f %%", snr_z, snr_m, 100.0 * (snr_z / snr_m - 1.0));
    ok(snr_z >= snr_m, "zogy: SNR at fixed flux >= that of the mean (gain %.1f %%)",
       100.0 * (snr_z / snr_m - 1.0));

    /* ---- psfmatch -------------------------------------------------------- */
    x.method = SK_COADDX_PSFMATCH;
    p.combine.method = SK_COMBINE_CLIPPED;
    sk_coadd_result *pr = NULL;
    sk_psf *ppsf = NULL;
    is_int(sk_coaddx_run(s.in, NEXP, psfs, grid, &p, &x, &pr, &ppsf), 0, "psfmatch coadd");
    if (pr && ppsf) {
        double *d2 = malloc(sizeof(double) * (size_t)(ps * ps));
        float *tgt = malloc(sizeof(float) * (size_t)(ps * ps)), *cut = malloc(sizeof(float) * (size_t)(ps * ps));
        sk_psf_image(ppsf, SZ / 2, SZ / 2, (int)ps, d2);
        for (long i = 0; i < ps * ps; i++)
            tgt[i] = (float)d2[i];
        double ftarget = stamp_fwhm(tgt, ps);
        double *ratio = malloc(sizeof(double) * (size_t)t->n);
        double wr = 0.0;
        int nr = 0;
        for (int k = 0; k < t->n; k++) {
            if (t->mag[k] > 20.0)
                continue;
            /* the star against the target drawn at the same sub-pixel phase */
            sk_psf_image(ppsf, t->x[k], t->y[k], (int)ps, d2);
            for (long i = 0; i < ps * ps; i++)
                tgt[i] = (float)d2[i];
            cut_stamp(pr->image->sci, SZ, SZ, lround(t->x[k]), lround(t->y[k]), ps, cut);
            ratio[nr] = stamp_fwhm(cut, ps) / stamp_fwhm(tgt, ps);
            if (fabs(ratio[nr] - 1.0) > wr) wr = fabs(ratio[nr] - 1.0);
            nr++;
        }
        double mr = median_of(ratio, nr);
        tap_diag("psfmatch: target FWHM %.3f px (broadest input %.3f); star FWHM / target: median "
                 "%.4f, worst %.3f over %d stars", ftarget, fin[0] > 0 ? median_d(fin, NEXP) : 0,
                 mr, wr, nr);
        ok(fabs(mr - 1.0) < 0.03, "psfmatch: star FWHM within 3 %% of the target (median %.4f)",
           mr);
        ok(wr < 0.06, "psfmatch: every bright star within 6 %% (worst %.3f, noise included)", wr);
        double dmp = median_dmag(pr, t, 20.0, &worst);
        tap_diag("psfmatch: median magnitude error %.4f (worst %.4f)", dmp, worst);
        ok(fabs(dmp - dm_mean) < 0.0054, "psfmatch: fluxes within 0.5 %% of the mean's (%.4f mag)",
           dmp - dm_mean);
        ok(fabs(dmp) < 0.02, "psfmatch: and within 2 %% of the truth (%.4f mag)", dmp);
        sk_header_get_str(pr->image->header, "COMBINET", ct, sizeof ct);
        is_str(ct, "PSFMATCH", "COMBINET = PSFMATCH");
        free(d2); free(tgt); free(cut); free(ratio);
    }
    sk_coadd_result_free(pr);
    sk_psf_free(ppsf);

    /* ---- background matching ------------------------------------------- */
    {
        const double off[NEXP] = {12.0, -8.0, 5.0, 0.0, -9.0}; /* ADU of each input */
        const double gx[NEXP] = {0.02, 0.0, -0.03, 0.01, 0.0};
        sk_sim_exposure *ex;
        for (int k = 0; k < NEXP; k++) {
            ex = s.e[k];
            for (long yy = 0; yy < ex->image->height; yy++)
                for (long xx = 0; xx < ex->image->width; xx++)
                    ex->image->sci[yy * ex->image->width + xx] +=
                        (float)(off[k] + gx[k] * (xx - 160.0));
        }
        sk_coaddx_params xb;
        sk_coaddx_params_default(&xb);
        xb.background_match = 1;
        p.combine.method = SK_COMBINE_MEAN;
        sk_coadd_result *br = NULL;
        is_int(sk_coaddx_run(s.in, NEXP, psfs, grid, &p, &xb, &br, NULL), 0,
               "mean with background matching");
        /* the offsets at the common zero point, mean-subtracted, against
         * BGOFFn; sigma = per-pixel sky noise of an input at that scale */
        double want[NEXP], mw = 0.0, worst_b = 0.0, sig = 0.0;
        for (int k = 0; k < NEXP; k++) {
            double sc = pow(10.0, 0.4 * (mean->zero_point - s.e[k]->info.magzero));
            /* the grid centre maps near the input centre: the gradient adds
             * little there; take it at the input pixel of the grid centre */
            double ra, dec, xi, yi, xc = 0.5 * (SZ - 1), yc = 0.5 * (SZ - 1);
            sk_wcs_pix2sky(grid->wcs, 1, &xc, &yc, &ra, &dec);
            sk_wcs_sky2pix(s.e[k]->image->wcs, 1, &ra, &dec, &xi, &yi);
            want[k] = sc * (off[k] + gx[k] * (xi - 160.0));
            mw += want[k] / NEXP;
            double skyvar = s.e[k]->info.sky_adu / s.p.gain +
                            s.p.read_noise_e * s.p.read_noise_e / (s.p.gain * s.p.gain);
            sig += sqrt(skyvar) * sc / NEXP;
        }
        for (int k = 0; k < NEXP; k++) {
            char key[32];
            double v = NAN;
            snprintf(key, sizeof key, "BGOFF%d", k + 1);
            sk_header_get_double(br->image->header, key, &v);
            tap_diag("input %d: BGOFF %.3f, injected %.3f (mean-subtracted, common zero point)",
                     k + 1, v, want[k] - mw);
            if (!(fabs(v - (want[k] - mw)) < worst_b) )
                worst_b = fabs(v - (want[k] - mw));
        }
        tap_diag("background matching: worst offset error %.4f ADU, sky sigma %.3f ADU", worst_b,
                 sig);
        ok(worst_b < 0.1 * sig, "injected offsets recovered to < 0.1 sigma (%.3f sigma)",
           worst_b / sig);
        sk_coadd_result_free(br);
        for (int k = 0; k < NEXP; k++) {
            ex = s.e[k];
            for (long yy = 0; yy < ex->image->height; yy++)
                for (long xx = 0; xx < ex->image->width; xx++)
                    ex->image->sci[yy * ex->image->width + xx] -=
                        (float)(off[k] + gx[k] * (xx - 160.0));
        }
    }

    /* ---- artifact masks: cosmic rays and a trail in one exposure -------- */
    {
        sim_set d;
        const char *sets2[32];
        for (int k = 0; k < nsets; k++)
            sets2[k] = sets[k];
        sets2[nsets - 2] = "simulation.cosmic_rate_per_mpix_s=2";
        if (sim_set_make(&d, sets2, nsets, SIM_PSF_CENTRE)) {
            ok(0, "simulation with cosmic rays");
        } else {
            /* cosmic rays in exposure 2 only (the others as without), and a
             * satellite trail across it */
            long ndiff = 0;
            for (int k = 0; k < NEXP; k++) {
                long npx = SZ * SZ;
                if (k == 2) {
                    sk_image *im = d.e[k]->image;
                    for (long yy = 0; yy < im->height; yy++)
                        for (long xx = 0; xx < im->width; xx++) {
                            double dd = -sin(0.4) * xx + cos(0.4) * yy - 130.0;
                            im->sci[yy * im->width + xx] += (float)(60.0 * exp(-0.5 * dd * dd / 2.0));
                        }
                    continue;
                }
                memcpy(d.e[k]->image->sci, s.e[k]->image->sci, sizeof(float) * (size_t)npx);
            }
            for (long i = 0; i < SZ * SZ; i++)
                ndiff += d.e[2]->image->sci[i] != s.e[2]->image->sci[i];
            tap_diag("exposure 3: %ld pixels differ from the clean one", ndiff);
            sk_coaddx_params xa;
            sk_coaddx_params_default(&xa);
            xa.artifact_masks = 1;
            p.combine.method = SK_COMBINE_MEAN;
            sk_coadd_result *ar = NULL, *dr = NULL;
            const sk_psf *dpsfs[NEXP];
            for (int k = 0; k < NEXP; k++)
                dpsfs[k] = d.psf[k];
            is_int(sk_coaddx_run(d.in, NEXP, dpsfs, grid, &p, &xa, &ar, NULL), 0,
                   "mean with artifact masks");
            is_int(sk_coadd_run(d.in, NEXP, grid, &p, &dr), 0, "mean without");
            /* residual against the clean mean where the artifacts are */
            double wa = 0.0, wu = 0.0;
            long nrej = 0, nart = 0, nimg_ok = 0;
            for (long i = 0; i < SZ * SZ; i++) {
                double diff = dr->image->sci[i] - mean->image->sci[i];
                if (!(mean->image->weight[i] > 0))
                    continue;
                double sm = 1.0 / sqrt(mean->image->weight[i]);
                double star = mean->image->sci[i] / sm;
                /* on sources, leaving an input out changes the local PSF
                 * mix (by design): the residual is judged on blank sky */
                if (fabs(diff) > 3.0 * sm && star < 5.0) {
                    nart++;
                    double da = fabs(ar->image->sci[i] - mean->image->sci[i]) /
                                (1.0 / sqrt(ar->image->weight[i]));
                    if (da > wa) wa = da;
                    if (fabs(diff) / sm > wu) wu = fabs(diff) / sm;
                    nimg_ok += ar->nimg[i] < dr->nimg[i];
                }
                nrej += (ar->image->flags[i] & SK_FLAG_REJECTED) != 0;
            }
            tap_diag("artifacts: %ld blank-sky coadd pixels above 3 sigma without masks (worst "
                     "%.1f sigma); with masks worst %.2f sigma; %ld pixels REJECTED", nart, wu, wa,
                     nrej);
            ok(nart > 100 && wu > 10.0, "the artifacts show in the plain mean");
            ok(wa < 3.0, "with artifact masks no residual above 3 sigma there (%.2f)", wa);
            ok(nrej > 0, "masked pixels flagged REJECTED in FLG");
            ok(nimg_ok >= 0.95 * nart, "and counted out of NIMG (%ld of %ld)", nimg_ok, nart);
            sk_coadd_result_free(ar);
            sk_coadd_result_free(dr);
            sim_set_free(&d);
        }
    }

    free(zst); free(dst); free(mpsf); free(gs);
    sk_psf_free(zpsf);
    sk_coadd_result_free(zr);
    sk_coadd_result_free(mean);
    free(t);
    sk_grid_free(grid);
    sim_set_free(&s);
    return tap_done();
}
