/* Tests of the proper coadd (zogy.c) on synthetic aligned inputs: unit
 * noise and honest weights with full and partial coverage, the coadd PSF
 * against the measured star images, flux with MAGZERO, SNR against the
 * inverse-variance mean, masked pixels, tiles, bands and threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../coaddx_test.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/image.h"
#include "../tap.h"
#include "coadd/coaddx_internal.h"
#include "sim/sim_internal.h"

#define W 256
#define H 256
#define NIN 5
#define NPIX ((long)W * H)
#define PSFSIZE 45

static const double sigmas[NIN] = {1.0, 1.5, 0.8, 2.0, 1.2};
static const double fwhms[NIN] = {2.5, 3.5, 4.5, 3.0, 5.5};

typedef struct inputs {
    float *sci[NIN], *wgt[NIN];
    uint16_t *flg[NIN];
    tpsf psf[NIN];
    sk_aligned_input in[NIN];
} inputs;

static void inputs_init(inputs *s)
{
    for (int j = 0; j < NIN; j++) {
        s->sci[j] = calloc(NPIX, sizeof(float));
        s->wgt[j] = malloc(sizeof(float) * NPIX);
        s->flg[j] = calloc(NPIX, sizeof(uint16_t));
        for (long i = 0; i < NPIX; i++)
            s->wgt[j][i] = (float)(1.0 / (sigmas[j] * sigmas[j]));
        s->psf[j] = j == 3 ? tpsf_gauss(fwhms[j]) : tpsf_moffat(fwhms[j], 3.0);
        aligned_whole(&s->in[j], s->sci[j], s->wgt[j], s->flg[j], H, &s->psf[j]);
    }
}

static void inputs_free(inputs *s)
{
    for (int j = 0; j < NIN; j++) {
        free(s->sci[j]);
        free(s->wgt[j]);
        free(s->flg[j]);
    }
}

typedef struct result {
    float *sci, *wgt;
    uint16_t *flg, *nimg;
    double flux_r;
} result;

static int run(inputs *s, const sk_zogy_opts *o, result *r)
{
    r->sci = malloc(sizeof(float) * NPIX);
    r->wgt = malloc(sizeof(float) * NPIX);
    r->flg = malloc(sizeof(uint16_t) * NPIX);
    r->nimg = malloc(sizeof(uint16_t) * NPIX);
    sk_zogy *z = NULL;
    int st = sk_zogy_new(s->in, NIN, W, H, o, &z);
    if (!st)
        st = sk_zogy_rows(z, 0, H, r->sci, r->wgt, r->flg, r->nimg);
    r->flux_r = z ? sk_zogy_flux_scale(z) : 0.0;
    if (st)
        printf("# %s\n", sk_errmsg());
    sk_zogy_free(z);
    return st;
}

static void result_free(result *r)
{
    free(r->sci);
    free(r->wgt);
    free(r->flg);
    free(r->nimg);
}

static sk_zogy_opts opts_default(void)
{
    sk_zogy_opts o;
    sk_zogy_opts_default(&o);
    o.psf_size = PSFSIZE;
    o.threads = 2;
    return o;
}

/* A PSF model with the pixel noise of an empirical one (3e-4 per pixel of
 * a unit-sum stamp, as extract's models from a few dozen stars have;
 * seeded per input). */
typedef struct noisy_psf {
    tpsf *base;
    uint64_t seed;
} noisy_psf;

static int noisy_stamp(void *ctx, double x, double y, long size, float *stamp)
{
    noisy_psf *np = ctx;
    tpsf_stamp(np->base, x, y, size, stamp);
    sk_rng r;
    sk_rng_init(&r, np->seed, 1, 2);
    for (long i = 0; i < size * size; i++)
        stamp[i] += (float)(3e-4 * sk_rng_gauss(&r));
    return 0;
}

/* Weighted-mean coadd and its PSF (the comparison coadd(1) states for zogy). */
static void mean_coadd(inputs *s, float *out, float *psf_out)
{
    double wsum = 0.0;
    for (int j = 0; j < NIN; j++)
        wsum += 1.0 / (sigmas[j] * sigmas[j]);
    for (long i = 0; i < NPIX; i++) {
        double v = 0.0;
        for (int j = 0; j < NIN; j++)
            v += s->sci[j][i] / (sigmas[j] * sigmas[j]);
        out[i] = (float)(v / wsum);
    }
    float st[PSFSIZE * PSFSIZE];
    memset(psf_out, 0, sizeof(float) * PSFSIZE * PSFSIZE);
    for (int j = 0; j < NIN; j++) {
        tpsf_stamp(&s->psf[j], W / 2, H / 2, PSFSIZE, st);
        for (long i = 0; i < PSFSIZE * PSFSIZE; i++)
            psf_out[i] += (float)(st[i] / (sigmas[j] * sigmas[j]) / wsum);
    }
}

int main(void)
{
    tap_plan(61);
    inputs s;
    inputs_init(&s);
    sk_zogy_opts o = opts_default();

    /* ---- 1. blank sky: unit variance, weight 1 -------------------------- */
    for (int j = 0; j < NIN; j++)
        add_noise(s.sci[j], NPIX, sigmas[j], 42, (uint64_t)j);
    result blank;
    is_int(run(&s, &o, &blank), 0, "zogy on 5 blank inputs");
    double fr_expect = 0.0;
    for (int j = 0; j < NIN; j++)
        fr_expect += 1.0 / (sigmas[j] * sigmas[j]);
    fr_expect = sqrt(fr_expect);
    is_near(blank.flux_r, fr_expect, 1e-6 * fr_expect, "F_R = sqrt(sum F^2/sigma^2) = %.4f",
            fr_expect);
    double mean;
    double sd = std_masked(blank.sci, NULL, NPIX, &mean);
    tap_diag("blank sky: R rms %.4f, mean %.4f", sd, mean);
    is_near(sd, 1.0, 0.1, "blank-sky noise of R within 10 %% of 1 (%.4f)", sd);
    is_near(sd, 1.0, 0.02, "and within 2 %% (%.4f)", sd);
    is_near(mean, 0.0, 0.02, "blank-sky mean of R is 0");
    {
        double wmin = 1e30, wmax = 0.0;
        long nflag = 0, nfull = 0;
        for (long i = 0; i < NPIX; i++) {
            if (blank.wgt[i] < wmin) wmin = blank.wgt[i];
            if (blank.wgt[i] > wmax) wmax = blank.wgt[i];
            nflag += blank.flg[i] & SK_FLAG_INTERPOLATED ? 1 : 0;
            nfull += blank.nimg[i] == NIN;
        }
        is_near(wmin, 1.0, 1e-3, "full coverage: weight 1 everywhere (min %.5f)", wmin);
        is_near(wmax, 1.0, 1e-3, "full coverage: weight 1 everywhere (max %.5f)", wmax);
        is_int(nfull, NPIX, "NIMG = 5 everywhere");
        /* the image edge is in-painted beyond: a band of about a FWHM */
        ok(nflag > 0 && nflag < NPIX / 6, "only the band along the image edge is flagged (%ld)",
           nflag);
        ok(!(blank.flg[(H / 2) * W + W / 2] & SK_FLAG_INTERPOLATED), "the centre is not flagged");
    }

    /* ---- 2. stars: flux with F_R, PSF of R, SNR against the mean -------- */
    inputs st;
    inputs_init(&st);
    const double flux = 20000.0;
    double sx[9], sy[9];
    int ns = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            sx[ns] = 48.0 + 80.0 * a + 0.1 * (a + b);  /* off pixel centres a little */
            sy[ns] = 48.0 + 80.0 * b - 0.07 * a;
            ns++;
        }
    for (int j = 0; j < NIN; j++)
        for (int k = 0; k < ns; k++)
            add_star(&st.psf[j], flux, sx[k], sy[k], st.sci[j], W, H);
    result star;
    is_int(run(&st, &o, &star), 0, "zogy on noise-free stars");
    {
        double worst = 0.0;
        for (int k = 0; k < ns; k++) {
            double f = aperture_sum(star.sci, W, H, sx[k], sy[k], 30.0) / star.flux_r;
            double e = fabs(f / flux - 1.0);
            if (e > worst) worst = e;
        }
        tap_diag("star flux / F_R vs truth: worst %.2e", worst);
        ok(worst < 0.01, "every star's flux = F_R x true flux within 1 %% (worst %.2e)", worst);
        ok(worst < 0.002, "and within 0.2 %% (worst %.2e)", worst);
        double mz = 25.0 + 2.5 * log10(star.flux_r);
        double fc = aperture_sum(star.sci, W, H, sx[4], sy[4], 30.0);
        double mag = -2.5 * log10(fc) + mz, truth = -2.5 * log10(flux) + 25.0;
        is_near(mag, truth, 0.0108, "MAGZERO = ZP + 2.5 log10 F_R gives the true magnitude");
    }
    /* The coadd PSF: analytic P_R against a star on a pixel centre. */
    {
        inputs one;
        inputs_init(&one);
        for (int j = 0; j < NIN; j++)
            add_star(&one.psf[j], flux, 128.0, 128.0, one.sci[j], W, H);
        result r1;
        is_int(run(&one, &o, &r1), 0, "zogy on one star on a pixel centre");
        sk_zogy *z = NULL;
        sk_zogy_new(one.in, NIN, W, H, &o, &z);
        float pr[PSFSIZE * PSFSIZE], cut[PSFSIZE * PSFSIZE];
        is_int(sk_zogy_psf(z, 128.0, 128.0, PSFSIZE, pr), 0, "coadd PSF stamp");
        cut_stamp(r1.sci, W, H, 128, 128, PSFSIZE, cut);
        double sum = 0.0, psum = 0.0, peak = 0.0, maxd = 0.0;
        for (int i = 0; i < PSFSIZE * PSFSIZE; i++) {
            sum += cut[i];
            psum += pr[i];
            if (pr[i] > peak) peak = pr[i];
        }
        for (int i = 0; i < PSFSIZE * PSFSIZE; i++) {
            double d = fabs(cut[i] / sum - pr[i]);
            if (d > maxd) maxd = d;
        }
        is_near(psum, 1.0, 1e-5, "coadd PSF has unit sum");
        tap_diag("coadd PSF vs star on R: max |diff| %.2e of a peak %.4f", maxd, peak);
        ok(maxd < 2e-3 * peak, "analytic coadd PSF matches the star on R (%.1e of peak)",
           maxd / peak);
        double fr = stamp_fwhm(pr, PSFSIZE), fin[NIN];
        for (int j = 0; j < NIN; j++) {
            float ps[PSFSIZE * PSFSIZE];
            tpsf_stamp(&one.psf[j], 128, 128, PSFSIZE, ps);
            fin[j] = stamp_fwhm(ps, PSFSIZE);
        }
        double fmed = median_d(fin, NIN);
        tap_diag("coadd PSF FWHM %.3f px, median input FWHM %.3f px", fr, fmed);
        ok(fr <= fmed, "coadd PSF FWHM (%.3f) <= median input FWHM (%.3f)", fr, fmed);
        ok(fr >= fin[0] - 0.05, "coadd PSF FWHM not below the sharpest input's (%.3f)", fin[0]);

        /* SNR at fixed flux against the inverse-variance weighted mean. */
        float *mc = malloc(sizeof(float) * NPIX), *mn = malloc(sizeof(float) * NPIX);
        float mpsf[PSFSIZE * PSFSIZE];
        mean_coadd(&one, mc, mpsf);
        mean_coadd(&s, mn, mpsf);
        double sig_z = psf_flux(r1.sci, W, H, 128, 128, pr, PSFSIZE);
        double sig_m = psf_flux(mc, W, H, 128, 128, mpsf, PSFSIZE);
        /* noise of the same estimator at blank positions of the noise images */
        double vz = 0, vm = 0;
        int np = 0;
        for (long cy = 30; cy < H - 30; cy += 2)
            for (long cx = 30; cx < W - 30; cx += 2) {
                double a = psf_flux(blank.sci, W, H, cx, cy, pr, PSFSIZE);
                double b = psf_flux(mn, W, H, cx, cy, mpsf, PSFSIZE);
                vz += a * a;
                vm += b * b;
                np++;
            }
        double snr_z = sig_z / sqrt(vz / np), snr_m = sig_m / sqrt(vm / np);
        /* the same from the noise model (white noise, exact) */
        double p2z = 0, p2m = 0;
        for (int i = 0; i < PSFSIZE * PSFSIZE; i++) {
            p2z += (double)pr[i] * pr[i];
            p2m += (double)mpsf[i] * mpsf[i];
        }
        double wsum = fr_expect * fr_expect;
        double tz = flux * star.flux_r * sqrt(p2z), tm = flux * sqrt(p2m) * sqrt(wsum);
        tap_diag("point-source SNR at flux %.0f: zogy %.1f, mean %.1f (measured over %d blank "
                 "positions), gain %.1f %%; noise model: zogy %.1f, mean %.1f, gain %.1f %%",
                 flux, snr_z, snr_m, np, 100.0 * (snr_z / snr_m - 1.0), tz, tm,
                 100.0 * (tz / tm - 1.0));
        ok(tz >= tm, "point-source SNR of zogy >= that of the mean (model: gain %.1f %%)",
           100.0 * (tz / tm - 1.0));
        ok(snr_z >= snr_m, "measured SNR of zogy >= that of the mean (ratio %.3f)", snr_z / snr_m);
        is_near(snr_z / snr_m, tz / tm, 0.04, "measured gain agrees with the noise model");
        free(mc);
        free(mn);
        sk_zogy_free(z);
        result_free(&r1);
        inputs_free(&one);
    }

    /* ---- 2b. empirical (noisy) PSF models: no false sharp core ----------- */
    {
        noisy_psf np[NIN];
        sk_aligned_input ni[NIN];
        memcpy(ni, st.in, sizeof ni);
        for (int j = 0; j < NIN; j++) {
            np[j].base = &st.psf[j];
            np[j].seed = 100 + (uint64_t)j;
            ni[j].psf = noisy_stamp;
            ni[j].psf_ctx = &np[j];
        }
        sk_zogy *z = NULL;
        float pr[PSFSIZE * PSFSIZE], ps[PSFSIZE * PSFSIZE];
        is_int(sk_zogy_new(ni, NIN, W, H, &o, &z), 0, "zogy with noisy PSF models");
        is_int(sk_zogy_psf(z, 128.0, 128.0, PSFSIZE, pr), 0, "its coadd PSF");
        sk_zogy *z0 = NULL;
        float p0[PSFSIZE * PSFSIZE];
        sk_zogy_new(st.in, NIN, W, H, &o, &z0);
        sk_zogy_psf(z0, 128.0, 128.0, PSFSIZE, p0);
        sk_zogy_free(z0);
        double fr = stamp_fwhm(pr, PSFSIZE), f0 = stamp_fwhm(p0, PSFSIZE), fin[NIN];
        for (int j = 0; j < NIN; j++) {
            tpsf_stamp(&st.psf[j], 128, 128, PSFSIZE, ps);
            fin[j] = stamp_fwhm(ps, PSFSIZE);
        }
        tap_diag("noisy models: coadd PSF FWHM %.3f px (noise-free models %.3f; sharpest input "
                 "%.3f)", fr, f0, fin[0]);
        is_near(fr, f0, 0.02 * f0, "the models' noise does not sharpen the coadd PSF (%.3f)", fr);
        ok(fr <= median_d(fin, NIN), "and it stays below the median input FWHM");
        sk_zogy_free(z);
    }

    /* ---- 3. partial coverage and masked pixels ---------------------------- */
    {
        /* input 0 covers the left half only; input 3 has a hole and a
         * cosmic ray (flagged); the noise is the blank one, plus the stars. */
        inputs p;
        inputs_init(&p);
        for (int j = 0; j < NIN; j++) {
            memcpy(p.sci[j], s.sci[j], sizeof(float) * NPIX);
            for (long i = 0; i < NPIX; i++)
                p.sci[j][i] += st.sci[j][i];
        }
        for (long y = 0; y < H; y++)
            for (long x = W / 2; x < W; x++) {
                p.wgt[0][y * W + x] = 0.0f;
                p.sci[0][y * W + x] = 1e6f; /* no data: never used */
                p.flg[0][y * W + x] = SK_FLAG_EDGE;
            }
        for (long y = 70; y < 100; y++)
            for (long x = 70; x < 100; x++)
                p.wgt[3][y * W + x] = 0.0f;
        for (long y = 200; y < 203; y++)
            for (long x = 88; x < 90; x++) {
                p.sci[3][y * W + x] += 5000.0f;
                p.flg[3][y * W + x] = SK_FLAG_COSMIC;
            }
        result pr;
        is_int(run(&p, &o, &pr), 0, "zogy with partial coverage and masks");
        /* predicted variance where input 0 is missing: (F_R/F_S)^2 */
        double fs2 = fr_expect * fr_expect - 1.0 / (sigmas[0] * sigmas[0]);
        double want_w = fs2 / (fr_expect * fr_expect);
        long n = 0;
        double sw = 0.0;
        uint8_t *mask = calloc(NPIX, 1);
        for (long y = 10; y < H - 10; y++)
            for (long x = W / 2 + 20; x < W - 10; x++) {
                long i = y * W + x;
                sw += pr.wgt[i];
                n++;
                mask[i] = 1;
            }
        /* noise: R on noise alone, same masks */
        inputs q;
        inputs_init(&q);
        for (int j = 0; j < NIN; j++) {
            memcpy(q.sci[j], s.sci[j], sizeof(float) * NPIX);
            memcpy(q.wgt[j], p.wgt[j], sizeof(float) * NPIX);
            memcpy(q.flg[j], p.flg[j], sizeof(uint16_t) * NPIX);
        }
        result qr;
        is_int(run(&q, &o, &qr), 0, "zogy on the noise alone with the same masks");
        double sdr = std_masked(qr.sci, mask, NPIX, NULL);
        tap_diag("right half (input 0 absent): weight %.4f (predicted %.4f), measured "
                 "variance x weight %.4f", sw / n, want_w, sdr * sdr * sw / n);
        is_near(sw / n, want_w, 0.01 * want_w, "weight where one input is missing = F_S^2/F_R^2");
        is_near(sdr * sdr * sw / n, 1.0, 0.1,
                "measured noise matches the weight there (var x weight %.3f)",
                sdr * sdr * sw / n);
        /* left half (full coverage) still unit */
        uint8_t *mask2 = calloc(NPIX, 1);
        for (long y = 10; y < 90; y++)
            for (long x = 10; x < W / 2 - 20; x++)
                mask2[y * W + x] = 1;
        double sdl = std_masked(qr.sci, mask2, NPIX, NULL);
        is_near(sdl, 1.0, 0.1, "left half still unit variance (%.4f)", sdl);
        /* stars keep flux F_R x f in both halves */
        double worst = 0.0, worst_edge = 0.0;
        for (int k = 0; k < ns; k++) {
            double f = (aperture_sum(pr.sci, W, H, sx[k], sy[k], 30.0) -
                        aperture_sum(qr.sci, W, H, sx[k], sy[k], 30.0)) / pr.flux_r;
            double e = fabs(f / flux - 1.0);
            if (fabs(sx[k] - W / 2) < 30.0) {
                if (e > worst_edge) worst_edge = e;
            } else if (e > worst) {
                worst = e;
            }
        }
        tap_diag("partial coverage: star flux errors %.2e (on the coverage edge %.2e)", worst,
                 worst_edge);
        ok(worst < 0.01, "partial coverage: star fluxes with MAGZERO within 1 %% (worst %.2e)",
           worst);
        /* input 0's coverage edge (x = 128): where input 0 contributes
         * within half the widest FWHM (5.5 px) of its in-painted pixels,
         * INTERPOLATED; further in, or where it does not contribute, not */
        long ye = 150 * W;
        ok((pr.flg[ye + W / 2 - 1] & SK_FLAG_INTERPOLATED) &&
           (pr.flg[ye + W / 2 - 3] & SK_FLAG_INTERPOLATED),
           "input 0's pixels within 3 px of its coverage edge are flagged INTERPOLATED");
        ok(!(pr.flg[ye + W / 2 - 4] & SK_FLAG_INTERPOLATED) &&
           !(pr.flg[ye + W / 2 - 12] & SK_FLAG_INTERPOLATED),
           "those further in are not");
        ok(!(pr.flg[ye + W / 2] & SK_FLAG_INTERPOLATED) &&
           !(pr.flg[ye + W / 2 + 2] & SK_FLAG_INTERPOLATED),
           "nor the pixels beyond the edge, where input 0 is not used");
        long i_hole = 85 * W + 85, i_cr = 201 * W + 88, i_ring = 201 * W + 91;
        is_int(pr.nimg[i_hole], NIN - 1, "NIMG = 4 in the hole of input 3");
        is_int(pr.nimg[i_cr], NIN - 1, "NIMG = 4 on the cosmic ray");
        is_int(pr.nimg[W / 2 * W + 200], NIN - 1, "NIMG = 4 where input 0 is absent");
        ok(pr.flg[i_ring] & SK_FLAG_INTERPOLATED, "pixels near the cosmic ray are flagged");
        ok(pr.flg[i_ring] & SK_FLAG_COSMIC, "with the COSMIC bit of the masked input");
        ok(!(pr.flg[i_cr - 20] & SK_FLAG_INTERPOLATED), "pixels far from it are not");
        double cr_dev = fabs(pr.sci[i_cr] - qr.sci[i_cr]);
        ok(cr_dev < 1e-3, "the masked cosmic ray leaves no trace (%.2e)", cr_dev);
        double worst_w = 0.0;
        for (long i = 0; i < NPIX; i++)
            if (!(pr.wgt[i] > 0.0f) || !isfinite(pr.sci[i]))
                worst_w = 1.0;
        ok(worst_w == 0.0, "every pixel has a value and a positive weight");
        /* Only two coverage patterns solved per tile: the rarer ones (the
         * hole and the cosmic ray) take a solved superset with in-painted
         * values, flagged. */
        {
            sk_zogy_opts oc = o;
            oc.max_patterns = 2;
            result cr;
            is_int(run(&p, &oc, &cr), 0, "zogy with 2 patterns solved per tile");
            ok(cr.flg[i_hole] & SK_FLAG_INTERPOLATED, "pixels of unsolved patterns are flagged");
            is_int(cr.nimg[i_hole], NIN - 1, "and NIMG still counts the usable inputs");
            double dmax = 0.0;
            int finite = 1;
            for (long i = 0; i < NPIX; i++) {
                finite &= isfinite(cr.sci[i]) && cr.wgt[i] > 0.0f;
                if (!(cr.flg[i] & SK_FLAG_INTERPOLATED) && fabs(cr.sci[i] - pr.sci[i]) > dmax)
                    dmax = fabs(cr.sci[i] - pr.sci[i]);
            }
            ok(finite, "every value finite with a positive weight");
            ok(dmax < 1e-3, "unflagged pixels as with every pattern solved (%.1e)", dmax);
            result_free(&cr);
        }
        free(mask);
        free(mask2);
        result_free(&pr);
        result_free(&qr);
        inputs_free(&q);
        inputs_free(&p);
    }

    /* ---- 4. tiles, bands and threads ------------------------------------- */
    {
        inputs t;
        inputs_init(&t);
        for (int j = 0; j < NIN; j++) {
            for (long i = 0; i < NPIX; i++)
                t.sci[j][i] = s.sci[j][i] + st.sci[j][i];
            t.psf[j].dfwhm_dx = 0.004; /* FWHM grows by 1 px across the image */
            t.psf[j].x0 = W / 2;
        }
        sk_zogy_opts o1 = opts_default(), o2 = opts_default();
        o1.threads = 1;
        o1.tile_px = 512;
        o2.tile_px = 64;
        o2.threads = 2;
        result one, tiled;
        is_int(run(&t, &o1, &one), 0, "zogy in one tile");
        is_int(run(&t, &o2, &tiled), 0, "zogy in 64-px tiles");
        /* with a varying PSF the two differ by the PSF change across a
         * tile; compare star fluxes and noise */
        double worst = 0.0;
        for (int k = 0; k < ns; k++) {
            double f = aperture_sum(tiled.sci, W, H, sx[k], sy[k], 30.0) / tiled.flux_r;
            double e = fabs(f / flux - 1.0);
            if (e > worst) worst = e;
        }
        tap_diag("tiled, varying PSF: worst star flux error %.2e", worst);
        ok(worst < 0.01, "tiled with a varying PSF: fluxes within 1 %% (worst %.2e)", worst);
        /* same PSF everywhere: tiles agree with one tile closely */
        for (int j = 0; j < NIN; j++)
            t.psf[j].dfwhm_dx = 0.0;
        result a, b, c;
        o1.threads = 1;
        run(&t, &o1, &a);
        o2.threads = 1;
        run(&t, &o2, &b);
        o2.threads = 2;
        run(&t, &o2, &c);
        double maxd = 0.0;
        for (long i = 0; i < NPIX; i++) {
            double d = fabs(a.sci[i] - b.sci[i]);
            if (d > maxd) maxd = d;
        }
        tap_diag("64-px tiles vs one tile, constant PSF: max |diff| %.2e (noise 1)", maxd);
        ok(maxd < 0.02, "tiles reproduce the single-tile coadd to 0.02 sigma (%.2e)", maxd);
        ok(memcmp(b.sci, c.sci, sizeof(float) * NPIX) == 0 &&
               memcmp(b.wgt, c.wgt, sizeof(float) * NPIX) == 0 &&
               memcmp(b.flg, c.flg, sizeof(uint16_t) * NPIX) == 0,
           "1 and 2 threads give identical bits");
        /* bands: rows [0,128) then [128,256) with inputs holding only the rows needed */
        sk_zogy *z = NULL;
        sk_zogy_opts o3 = o2;
        sk_zogy_new(t.in, NIN, W, H, &o3, &z);
        for (int j = 0; j < NIN; j++)
            t.in[j].sigma = sk_zogy_sigma(z, j);
        sk_zogy_free(z);
        float *bs = malloc(sizeof(float) * NPIX), *bw = malloc(sizeof(float) * NPIX);
        uint16_t *bf = malloc(sizeof(uint16_t) * NPIX), *bn = malloc(sizeof(uint16_t) * NPIX);
        int okb = 1;
        for (long y0 = 0; y0 < H; y0 += 128) {
            long n0, n1;
            sk_aligned_input band[NIN];
            memcpy(band, t.in, sizeof band);
            sk_zogy_new(band, NIN, W, H, &o3, &z);
            sk_zogy_rows_needed(z, y0, y0 + 128, &n0, &n1);
            sk_zogy_free(z);
            for (int j = 0; j < NIN; j++) {
                band[j].sci = t.sci[j] + n0 * W;
                band[j].weight = t.wgt[j] + n0 * W;
                band[j].flags = t.flg[j] + n0 * W;
                band[j].row0 = n0;
                band[j].nrows = n1 - n0;
            }
            sk_zogy_new(band, NIN, W, H, &o3, &z);
            okb &= sk_zogy_rows(z, y0, y0 + 128, bs + y0 * W, bw + y0 * W, bf + y0 * W,
                                bn + y0 * W) == 0;
            sk_zogy_free(z);
        }
        ok(okb, "banded calls run");
        /* sigma given = the sigma found from the weights, so bits agree */
        ok(memcmp(bs, c.sci, sizeof(float) * NPIX) == 0 &&
               memcmp(bw, c.wgt, sizeof(float) * NPIX) == 0,
           "two bands give the bits of one call");
        /* an input that does not hold the rows needed is refused */
        {
            sk_aligned_input band[NIN];
            memcpy(band, t.in, sizeof band);
            band[2].nrows = 100;
            sk_zogy_new(band, NIN, W, H, &o3, &z);
            int e = sk_zogy_rows(z, 0, H, bs, bw, NULL, NULL);
            is_int(e, SK_EINPUT, "rows missing from an input: SK_EINPUT");
            ok(strstr(sk_errmsg(), "input 2") != NULL, "naming the input (%s)", sk_errmsg());
            sk_zogy_free(z);
        }
        free(bs); free(bw); free(bf); free(bn);
        result_free(&a);
        result_free(&b);
        result_free(&c);
        result_free(&one);
        result_free(&tiled);
        inputs_free(&t);
    }

    /* ---- 5. bad arguments ------------------------------------------------ */
    {
        sk_zogy *z = NULL;
        sk_zogy_opts ob = opts_default();
        ob.psf_size = 30;
        is_int(sk_zogy_new(s.in, NIN, W, H, &ob, &z), SK_EINPUT, "even PSF size refused");
        sk_aligned_input bad[NIN];
        memcpy(bad, s.in, sizeof bad);
        bad[1].flux_scale = 0.0;
        is_int(sk_zogy_new(bad, NIN, W, H, &o, &z), SK_EINPUT, "zero flux scale refused");
        memcpy(bad, s.in, sizeof bad);
        float *zw = calloc(NPIX, sizeof(float));
        bad[4].weight = zw;
        is_int(sk_zogy_new(bad, NIN, W, H, &o, &z), SK_EINPUT,
               "an input without any usable pixel and no sigma refused");
        free(zw);
    }

    result_free(&blank);
    result_free(&star);
    inputs_free(&st);
    inputs_free(&s);
    return tap_done();
}
