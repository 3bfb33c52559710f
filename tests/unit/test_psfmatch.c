/* Tests of PSF matching (psfmatch.c) on synthetic aligned inputs: star
 * shapes on the matched coadd against the target everywhere, fluxes,
 * propagated variance, masks grown by the kernel, tiles and threads. */
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

#define W 256
#define H 256
#define NIN 5
#define NPIX ((long)W * H)
#define PSFSIZE 41

static const double sigmas[NIN] = {1.0, 1.5, 0.8, 2.0, 1.2};
static const double fwhms[NIN] = {2.6, 3.2, 3.8, 3.0, 4.4};

typedef struct inputs {
    float *sci[NIN], *wgt[NIN];
    uint16_t *flg[NIN];
    tpsf psf[NIN];
    sk_aligned_input in[NIN];
} inputs;

static void inputs_init(inputs *s, double dfwhm_dx)
{
    for (int j = 0; j < NIN; j++) {
        s->sci[j] = calloc(NPIX, sizeof(float));
        s->wgt[j] = malloc(sizeof(float) * NPIX);
        s->flg[j] = calloc(NPIX, sizeof(uint16_t));
        for (long i = 0; i < NPIX; i++)
            s->wgt[j][i] = (float)(1.0 / (sigmas[j] * sigmas[j]));
        s->psf[j] = j == 3 ? tpsf_gauss(fwhms[j]) : tpsf_moffat(fwhms[j], 3.0 + 0.5 * j);
        s->psf[j].dfwhm_dx = dfwhm_dx;
        s->psf[j].x0 = W / 2;
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

typedef struct matched {
    float *sci[NIN], *wgt[NIN];
    uint16_t *flg[NIN];
    float *mean;
} matched;

/* Every input matched, then their inverse-variance weighted mean. */
static int match_all(inputs *s, const sk_psf_target *t, const sk_psfmatch_opts *o, matched *r,
                     int *target_input, double *varcorr)
{
    sk_psfmatch *pm = NULL;
    int st = sk_psfmatch_new(s->in, NIN, W, H, t, o, &pm);
    if (st) {
        printf("# %s\n", sk_errmsg());
        return st;
    }
    if (target_input)
        *target_input = sk_psfmatch_target_input(pm);
    r->mean = calloc(NPIX, sizeof(float));
    for (int j = 0; j < NIN; j++) {
        r->sci[j] = malloc(sizeof(float) * NPIX);
        r->wgt[j] = malloc(sizeof(float) * NPIX);
        r->flg[j] = malloc(sizeof(uint16_t) * NPIX);
        if (!st)
            st = sk_psfmatch_rows(pm, j, 0, H, r->sci[j], r->wgt[j], r->flg[j]);
        if (varcorr)
            varcorr[j] = sk_psfmatch_varcorr(pm, j);
    }
    if (st)
        printf("# %s\n", sk_errmsg());
    for (long i = 0; i < NPIX; i++) {
        double v = 0.0, ws = 0.0;
        for (int j = 0; j < NIN; j++) {
            double w = 1.0 / (sigmas[j] * sigmas[j]);
            if (r->wgt[j][i] > 0.0f) {
                v += w * r->sci[j][i];
                ws += w;
            }
        }
        r->mean[i] = ws > 0.0 ? (float)(v / ws) : 0.0f;
    }
    sk_psfmatch_free(pm);
    return st;
}

static void matched_free(matched *r)
{
    for (int j = 0; j < NIN; j++) {
        free(r->sci[j]);
        free(r->wgt[j]);
        free(r->flg[j]);
    }
    free(r->mean);
}

#define NS 25
static double sx[NS], sy[NS];

/* Stars of flux `flux` at the grid positions in every input. */
static void add_stars(inputs *s, double flux)
{
    for (int j = 0; j < NIN; j++)
        for (int k = 0; k < NS; k++)
            add_star(&s->psf[j], flux, sx[k], sy[k], s->sci[j], W, H);
}

/* FWHM of each star on `img` against that of the target rendered at the
 * same position (the target's own star image); worst relative error. */
static double fwhm_check(const float *img, const tpsf *target, double *worst_flux, double flux,
                         double *fw_min, double *fw_max)
{
    double worst = 0.0;
    *worst_flux = 0.0;
    *fw_min = 1e9;
    *fw_max = 0.0;
    float *ref = calloc(NPIX, sizeof(float));
    for (int k = 0; k < NS; k++)
        add_star(target, flux, sx[k], sy[k], ref, W, H);
    for (int k = 0; k < NS; k++) {
        float a[PSFSIZE * PSFSIZE], b[PSFSIZE * PSFSIZE];
        long cx = lround(sx[k]), cy = lround(sy[k]);
        cut_stamp(img, W, H, cx, cy, PSFSIZE, a);
        cut_stamp(ref, W, H, cx, cy, PSFSIZE, b);
        double fa = stamp_fwhm(a, PSFSIZE), fb = stamp_fwhm(b, PSFSIZE);
        double e = fabs(fa / fb - 1.0);
        if (e > worst) worst = e;
        if (fb < *fw_min) *fw_min = fb;
        if (fb > *fw_max) *fw_max = fb;
        double f = aperture_sum(img, W, H, sx[k], sy[k], 20.0);
        double ef = fabs(f / flux - 1.0);
        if (ef > *worst_flux) *worst_flux = ef;
    }
    free(ref);
    return worst;
}

int main(void)
{
    tap_plan(32);
    int ns = 0;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++) {
            sx[ns] = 32.0 + 48.0 * a + 0.13 * b;
            sy[ns] = 32.0 + 48.0 * b + 0.29 * a - 0.1;
            ns++;
        }
    sk_psfmatch_opts o;
    sk_psfmatch_opts_default(&o);
    o.psf_size = PSFSIZE;
    o.tile_px = 64;
    o.threads = 2;
    const double flux = 10000.0;

    /* ---- 1. default target: the broadest input, PSF varying ------------ */
    {
        inputs s;
        inputs_init(&s, 0.006); /* FWHM changes by 1.5 px across the image */
        add_stars(&s, flux);
        matched r;
        int ti = -2;
        is_int(match_all(&s, NULL, &o, &r, &ti, NULL), 0, "psfmatch to the broadest input");
        is_int(ti, 4, "the broadest input (FWHM 4.4) is the target");
        double wf, fmin, fmax;
        double wfw = fwhm_check(r.mean, &s.psf[4], &wf, flux, &fmin, &fmax);
        tap_diag("broadest target (FWHM %.2f..%.2f px across the image): worst star FWHM "
                 "error %.2f %%, worst flux error %.3f %%", fmin, fmax, 100 * wfw, 100 * wf);
        ok(wfw < 0.03, "every star's FWHM within 3 %% of the target's (worst %.2f %%)",
           100 * wfw);
        ok(wf < 0.005, "every star's flux within 0.5 %% (worst %.3f %%)", 100 * wf);
        /* each matched input on its own has the target shape */
        double worst_in = 0.0, wfi;
        for (int j = 0; j < NIN; j++) {
            double e = fwhm_check(r.sci[j], &s.psf[4], &wfi, flux, &fmin, &fmax);
            if (e > worst_in) worst_in = e;
        }
        tap_diag("single matched inputs: worst FWHM error %.2f %%", 100 * worst_in);
        ok(worst_in < 0.03, "each matched input has the target FWHM (worst %.2f %%)",
           100 * worst_in);
        matched_free(&r);
        inputs_free(&s);
    }

    /* ---- 2. analytic targets ------------------------------------------- */
    {
        inputs s;
        inputs_init(&s, 0.0);
        add_stars(&s, flux);
        sk_psf_target t;
        memset(&t, 0, sizeof t);
        t.kind = SK_TARGET_MOFFAT;
        t.fwhm_px = 5.0;
        t.moffat_beta = 3.0;
        matched r;
        is_int(match_all(&s, &t, &o, &r, NULL, NULL), 0, "psfmatch to a Moffat of 5 px");
        tpsf tt = tpsf_moffat(5.0, 3.0);
        tt.base.radius_fwhm = (PSFSIZE / 2) / 5.0;
        double wf, fmin, fmax;
        double wfw = fwhm_check(r.mean, &tt, &wf, flux, &fmin, &fmax);
        tap_diag("Moffat 5 px target: worst FWHM error %.2f %%, flux %.3f %%", 100 * wfw,
                 100 * wf);
        ok(wfw < 0.03, "Moffat target: FWHM within 3 %% (worst %.2f %%)", 100 * wfw);
        ok(wf < 0.005, "Moffat target: fluxes within 0.5 %% (worst %.3f %%)", 100 * wf);
        /* the coadd PSF product is the target, and the star at a pixel
         * centre matches it */
        sk_psfmatch *pm = NULL;
        sk_psfmatch_new(s.in, NIN, W, H, &t, &o, &pm);
        float tp[PSFSIZE * PSFSIZE];
        is_int(sk_psfmatch_target_psf(pm, 128, 128, PSFSIZE, tp), 0, "target PSF stamp");
        is_near(sk_psfmatch_target_fwhm(pm), 5.0, 0.1, "target FWHM measured %.3f px",
                sk_psfmatch_target_fwhm(pm));
        sk_psfmatch_free(pm);
        inputs one;
        inputs_init(&one, 0.0);
        for (int j = 0; j < NIN; j++)
            add_star(&one.psf[j], 1.0, 128.0, 128.0, one.sci[j], W, H);
        matched r1;
        match_all(&one, &t, &o, &r1, NULL, NULL);
        float cut[PSFSIZE * PSFSIZE];
        cut_stamp(r1.mean, W, H, 128, 128, PSFSIZE, cut);
        double maxd = 0.0, peak = 0.0;
        for (int i = 0; i < PSFSIZE * PSFSIZE; i++) {
            if (fabs(cut[i] - tp[i]) > maxd) maxd = fabs(cut[i] - tp[i]);
            if (tp[i] > peak) peak = tp[i];
        }
        tap_diag("star on the matched coadd vs target PSF: max |diff| %.2e of peak", maxd / peak);
        ok(maxd < 0.01 * peak, "a star on the coadd is the target PSF (max diff %.1e of peak)",
           maxd / peak);
        matched_free(&r1);
        inputs_free(&one);

        t.kind = SK_TARGET_GAUSSIAN;
        t.fwhm_px = 5.5;
        matched rg;
        is_int(match_all(&s, &t, &o, &rg, NULL, NULL), 0, "psfmatch to a Gaussian of 5.5 px");
        tpsf tg = tpsf_gauss(5.5);
        tg.base.radius_fwhm = (PSFSIZE / 2) / 5.5;
        wfw = fwhm_check(rg.mean, &tg, &wf, flux, &fmin, &fmax);
        tap_diag("Gaussian 5.5 px target: worst FWHM error %.2f %%, flux %.3f %%", 100 * wfw,
                 100 * wf);
        ok(wfw < 0.03, "Gaussian target: FWHM within 3 %% (worst %.2f %%)", 100 * wfw);
        ok(wf < 0.005, "Gaussian target: fluxes within 0.5 %% (worst %.3f %%)", 100 * wf);
        matched_free(&rg);
        matched_free(&r);
        inputs_free(&s);
    }

    /* ---- 3. noise: propagated variance ---------------------------------- */
    {
        inputs s;
        inputs_init(&s, 0.0);
        for (int j = 0; j < NIN; j++)
            add_noise(s.sci[j], NPIX, sigmas[j], 7, (uint64_t)j);
        matched r;
        double vc[NIN];
        is_int(match_all(&s, NULL, &o, &r, NULL, vc), 0, "psfmatch of noise");
        double worst = 0.0, worst_big = 0.0, worst_mean = 0.0;
        uint8_t *mask = calloc(NPIX, 1);
        for (long y = 30; y < H - 30; y++)
            for (long x = 30; x < W - 30; x++)
                mask[y * W + x] = 1;
        for (int j = 0; j < NIN; j++) {
            double sd = std_masked(r.sci[j], mask, NPIX, NULL);
            double wpred = r.wgt[j][128 * W + 128];
            double e = fabs(sd * sd * wpred - 1.0);
            if (e > worst) worst = e;
            /* the large-scale variance is that of the input: the per-pixel
             * variance times varcorr gives sigma^2 back, and the mean over a
             * large region is the input's */
            double evc = fabs(sd * sd * vc[j] / (sigmas[j] * sigmas[j]) - 1.0);
            double mc = 0.0, mr = 0.0;
            long nm = 0;
            for (long i = 0; i < NPIX; i++)
                if (mask[i]) {
                    mc += r.sci[j][i];
                    mr += s.sci[j][i];
                    nm++;
                }
            double dm = fabs(mc - mr) / nm / (sigmas[j] / sqrt((double)nm));
            tap_diag("input %d: pixel variance x weight %.4f, varcorr %.3f, pixel variance x "
                     "varcorr / sigma^2 %.4f, regional mean vs input's %.3f sigma_mean", j,
                     sd * sd * wpred, vc[j], sd * sd * vc[j] / (sigmas[j] * sigmas[j]), dm);
            if (evc > worst_big) worst_big = evc;
            if (dm > worst_mean) worst_mean = dm;
        }
        ok(worst < 0.05, "per-pixel variance of each matched input as its weight says (worst "
           "%.3f)", worst);
        ok(worst_big < 0.05, "pixel variance x varcorr = input variance (worst %.3f)", worst_big);
        ok(worst_mean < 0.5, "regional means conserved (worst %.2f of their noise)", worst_mean);
        free(mask);
        matched_free(&r);
        inputs_free(&s);
    }

    /* ---- 4. masks, tiles, threads --------------------------------------- */
    {
        inputs s;
        inputs_init(&s, 0.0);
        add_stars(&s, flux);
        for (int j = 0; j < NIN; j++)
            add_noise(s.sci[j], NPIX, sigmas[j], 9, (uint64_t)j);
        matched a;
        match_all(&s, NULL, &o, &a, NULL, NULL);
        /* a cosmic ray in input 1 (flagged) */
        long cr = 100 * W + 70;
        s.sci[1][cr] += 3000.0f;
        s.sci[1][cr + 1] += 1500.0f;
        s.flg[1][cr] = s.flg[1][cr + 1] = SK_FLAG_COSMIC;
        matched b;
        match_all(&s, NULL, &o, &b, NULL, NULL);
        is_int(b.wgt[1][cr], 0, "matched input 1 has weight 0 on its cosmic ray");
        ok(b.flg[1][cr + 3] & SK_FLAG_COSMIC, "and near it, flagged COSMIC");
        long nzero = 0;
        double maxd = 0.0;
        for (long i = 0; i < NPIX; i++) {
            if (b.wgt[1][i] == 0.0f && a.wgt[1][i] > 0.0f)
                nzero++;
            else if (a.wgt[1][i] > 0.0f && fabs(b.sci[1][i] - a.sci[1][i]) > maxd)
                maxd = fabs(b.sci[1][i] - a.sci[1][i]);
        }
        tap_diag("cosmic ray: %ld pixels lost in the matched input; elsewhere max change %.2e",
                 nzero, maxd);
        ok(nzero > 2 && nzero < 400, "the mask grows by the kernel's reach only (%ld px)", nzero);
        ok(maxd < 0.05 * sigmas[1], "pixels outside it do not see the cosmic ray (%.2e)", maxd);
        ok(fabs(b.mean[cr] - a.mean[cr]) < 2.0, "the coadd at the cosmic ray is clean (%.2f)",
           b.mean[cr] - a.mean[cr]);
        /* edges of the image: weight 0 within the kernel's reach */
        ok(a.wgt[0][0] == 0.0f && (a.flg[0][0] & SK_FLAG_EDGE), "image corner unusable, EDGE");
        ok(a.wgt[0][30 * W + 30] > 0.0f, "a pixel 30 px inside is usable");
        ok(a.wgt[4][0] > 0.0f, "the target input itself is copied, corners included");
        /* tiles and threads */
        sk_psfmatch_opts o1 = o, o2 = o;
        o1.tile_px = 512;
        o1.threads = 1;
        o2.threads = 1;
        matched c, d;
        match_all(&s, NULL, &o1, &c, NULL, NULL);
        match_all(&s, NULL, &o2, &d, NULL, NULL);
        double dt = 0.0;
        for (long i = 0; i < NPIX; i++)
            if (c.wgt[1][i] > 0.0f && fabs(c.sci[1][i] - b.sci[1][i]) > dt)
                dt = fabs(c.sci[1][i] - b.sci[1][i]);
        ok(dt < 1e-2, "64-px tiles agree with one tile (max %.1e)", dt);
        int same = 1;
        for (int j = 0; j < NIN; j++)
            same &= memcmp(d.sci[j], b.sci[j], sizeof(float) * NPIX) == 0 &&
                    memcmp(d.wgt[j], b.wgt[j], sizeof(float) * NPIX) == 0;
        ok(same, "1 and 2 threads give identical bits");
        matched_free(&a);
        matched_free(&b);
        matched_free(&c);
        matched_free(&d);
        inputs_free(&s);
    }

    /* ---- 6. one input to several inputs' PSFs at once ----------------- */
    {
        inputs s;
        inputs_init(&s, 0.004);
        add_stars(&s, flux);
        /* a masked patch in one interior tile: that tile convolves its
         * mask, the other interior tiles (every pixel usable) do not */
        for (long y = 100; y < 110; y++)
            for (long x = 90; x < 96; x++) {
                s.flg[0][y * W + x] = SK_FLAG_COSMIC;
                s.wgt[0][y * W + x] = 0.0f;
            }
        const int targets[3] = {2, 4, 1};
        const long y0 = 64, y1 = 192, nb = (y1 - y0) * W;
        float *ms[3], *mw[3], *one_s = malloc(sizeof(float) * nb), *one_w = malloc(sizeof(float) * nb);
        for (int i = 0; i < 3; i++) {
            ms[i] = malloc(sizeof(float) * nb);
            mw[i] = malloc(sizeof(float) * nb);
        }
        sk_psf_target t;
        memset(&t, 0, sizeof t);
        t.kind = SK_TARGET_INPUT;
        t.input = 1;
        sk_psfmatch *pm = NULL;
        int st = sk_psfmatch_new(s.in, NIN, W, H, &t, &o, &pm);
        st = st ? st : sk_psfmatch_rows_to_inputs(pm, 0, targets, 3, y0, y1, ms, mw);
        sk_psfmatch_free(pm);
        int same = st == 0;
        for (int i = 0; same && i < 3; i++) {
            t.input = targets[i];
            same = sk_psfmatch_new(s.in, NIN, W, H, &t, &o, &pm) == 0 &&
                   sk_psfmatch_rows(pm, 0, y0, y1, one_s, one_w, NULL) == 0 &&
                   memcmp(one_s, ms[i], sizeof(float) * nb) == 0 &&
                   memcmp(one_w, mw[i], sizeof(float) * nb) == 0;
            sk_psfmatch_free(pm);
            pm = NULL;
        }
        ok(same, "input 0 matched to three inputs' PSFs at once: the bits of matching it to "
                 "each in turn");
        memset(&t, 0, sizeof t);
        t.kind = SK_TARGET_INPUT;
        t.input = 1;
        sk_psfmatch_new(s.in, NIN, W, H, &t, &o, &pm);
        const int self[1] = {0};
        is_int(sk_psfmatch_rows_to_inputs(pm, 0, self, 1, y0, y1, ms, mw), SK_EINPUT,
               "an input is not matched to its own PSF");
        sk_psfmatch_free(pm);
        for (int i = 0; i < 3; i++) {
            free(ms[i]);
            free(mw[i]);
        }
        free(one_s);
        free(one_w);
        inputs_free(&s);
    }

    /* ---- 5. bad arguments ---------------------------------------------- */
    {
        inputs s;
        inputs_init(&s, 0.0);
        sk_psfmatch *pm = NULL;
        sk_psf_target t;
        memset(&t, 0, sizeof t);
        t.kind = SK_TARGET_GAUSSIAN;
        t.fwhm_px = 15.0;
        is_int(sk_psfmatch_new(s.in, NIN, W, H, &t, &o, &pm), SK_EINPUT,
               "a target too wide for the PSF stamps is refused");
        t.kind = SK_TARGET_INPUT;
        t.input = 7;
        is_int(sk_psfmatch_new(s.in, NIN, W, H, &t, &o, &pm), SK_EINPUT,
               "a target input out of range is refused");
        inputs_free(&s);
    }
    return tap_done();
}
