/* Tests of the artifact masks (artifact.c): a satellite trail and cosmic
 * rays added to one of 5 inputs with different seeing are masked, bright
 * stars are not, and the inverse-variance mean of the masked inputs shows
 * no residual above 3 sigma where the artifacts were. */
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
#include "coadd/aligned_priv.h"
#include "sim/sim_internal.h"

#define W 256
#define H 256
#define NIN 5
#define NPIX ((long)W * H)
#define NSTAR 40
#define PSFSIZE 45

static const double sigmas[NIN] = {1.0, 1.2, 0.9, 1.1, 1.0};
static const double fwhms[NIN] = {2.5, 3.2, 4.0, 4.8, 3.6};
static double sx[NSTAR], sy[NSTAR], sf[NSTAR];

typedef struct inputs {
    float *sci[NIN], *wgt[NIN];
    uint16_t *flg[NIN];
    tpsf psf[NIN];
    sk_aligned_input in[NIN];
} inputs;

/* Stars (with their Poisson noise, gain 1) and background noise. */
static void make_inputs(inputs *s)
{
    for (int j = 0; j < NIN; j++) {
        s->sci[j] = calloc(NPIX, sizeof(float));
        s->wgt[j] = malloc(sizeof(float) * NPIX);
        s->flg[j] = calloc(NPIX, sizeof(uint16_t));
        s->psf[j] = tpsf_moffat(fwhms[j], 3.0);
        for (int k = 0; k < NSTAR; k++)
            add_star(&s->psf[j], sf[k], sx[k], sy[k], s->sci[j], W, H);
        sk_rng r;
        sk_rng_init(&r, 99, (uint64_t)j, 1);
        for (long i = 0; i < NPIX; i++) {
            double var = sigmas[j] * sigmas[j] + (s->sci[j][i] > 0 ? s->sci[j][i] : 0.0);
            s->sci[j][i] += (float)(sqrt(var) * sk_rng_gauss(&r));
            s->wgt[j][i] = (float)(1.0 / (sigmas[j] * sigmas[j]));
        }
        aligned_whole(&s->in[j], s->sci[j], s->wgt[j], s->flg[j], H, &s->psf[j]);
        s->in[j].poisson = 1.0;
    }
}

static void free_inputs(inputs *s)
{
    for (int j = 0; j < NIN; j++) {
        free(s->sci[j]);
        free(s->wgt[j]);
        free(s->flg[j]);
    }
}

/* PSF of the inverse-variance mean of the inputs. */
static int mean_psf(void *ctx, double x, double y, long size, float *stamp)
{
    inputs *s = ctx;
    float *t = malloc(sizeof(float) * (size_t)(size * size));
    double wsum = 0.0;
    for (int j = 0; j < NIN; j++)
        wsum += 1.0 / (sigmas[j] * sigmas[j]);
    memset(stamp, 0, sizeof(float) * (size_t)(size * size));
    for (int j = 0; j < NIN; j++) {
        tpsf_stamp(&s->psf[j], x, y, size, t);
        for (long i = 0; i < size * size; i++)
            stamp[i] += (float)(t[i] / (sigmas[j] * sigmas[j]) / wsum);
    }
    free(t);
    return 0;
}

/* Inverse-variance mean of the inputs whose weight is > 0. */
static void mean(const inputs *s, float *out, float *wout, uint8_t *nimg)
{
    for (long i = 0; i < NPIX; i++) {
        double sv = 0.0, sw = 0.0;
        int n = 0;
        for (int j = 0; j < NIN; j++)
            if (s->wgt[j][i] > 0.0f) {
                sv += s->wgt[j][i] * s->sci[j][i];
                sw += s->wgt[j][i];
                n++;
            }
        out[i] = sw > 0.0 ? (float)(sv / sw) : 0.0f;
        wout[i] = (float)sw;
        if (nimg)
            nimg[i] = (uint8_t)n;
    }
}

int main(void)
{
    tap_plan(22);
    for (int k = 0; k < NSTAR; k++) {
        sx[k] = 12.0 + (double)((k * 47) % 232) + 0.37 * (k % 3);
        sy[k] = 12.0 + (double)((k * 71) % 232) + 0.21 * (k % 5);
        sf[k] = k < 6 ? 2e5 : 500.0 * (1 + k % 9);
    }
    inputs clean, dirty;
    make_inputs(&clean);
    make_inputs(&dirty);
    /* A satellite trail and cosmic rays in input 2 only. */
    const int bad = 2;
    float *art = calloc(NPIX, sizeof(float));
    double ang = 0.37, nx = -sin(ang), ny = cos(ang), off = 120.0;
    for (long y = 0; y < H; y++)
        for (long x = 0; x < W; x++) {
            double d = nx * x + ny * y - off;
            art[y * W + x] += (float)(12.0 * sigmas[bad] * exp(-0.5 * d * d / (1.3 * 1.3)));
        }
    sk_rng r;
    sk_rng_init(&r, 5, 5, 5);
    for (int k = 0; k < 40; k++) {
        long cx = 3 + (long)(sk_rng_uniform(&r) * (W - 6)), cy = 3 + (long)(sk_rng_uniform(&r) * (H - 6));
        double amp = 20.0 + 400.0 * sk_rng_uniform(&r);
        int len = 1 + (int)(3 * sk_rng_uniform(&r));
        for (int q = 0; q < len; q++)
            art[(cy + q / 2) * W + cx + q] += (float)(amp * sigmas[bad] / (1 + q));
    }
    for (long i = 0; i < NPIX; i++)
        dirty.sci[bad][i] += art[i];

    float *ref = malloc(sizeof(float) * NPIX), *refw = malloc(sizeof(float) * NPIX);
    mean(&dirty, ref, refw, NULL);
    sk_artifact_masks *m = NULL;
    sk_artifact_opts ao;
    sk_artifact_opts_default(&ao);
    ao.psf_size = PSFSIZE;
    is_int(sk_artifact_detect(dirty.in, NIN, W, H, &ao, &m), 0, "artifact masks (two passes)");
    for (int j = 0; j < NIN; j++)
        tap_diag("input %d: %ld footprints, %ld pixels masked", j, m->nfootprints[j],
                 m->npixels[j]);
    tap_diag("%ld footprints kept (significant in most inputs)", m->nprotected);
    /* the same masks from inputs kept in a scratch file, the reference
     * made in bands of 37 rows (six bands and a remainder of 34) */
    {
        sk_cx_spill *sp = NULL;
        double sg[NIN];
        sk_aligned_input meta[NIN];
        int st = sk_cx_spill_new(NIN, W, H, &sp);
        for (int j = 0; !st && j < NIN; j++) {
            sg[j] = sk_cx_sigma_from_weight(&dirty.in[j], W, SK_COADDX_MASK_DEFAULT);
            meta[j] = dirty.in[j];
            meta[j].sci = meta[j].weight = NULL;
            meta[j].flags = NULL;
            meta[j].nrows = 0;
            st = sk_cx_spill_put(sp, j, SK_CX_SCI, 0, H, dirty.sci[j]);
            st = st ? st : sk_cx_spill_put(sp, j, SK_CX_WGT, 0, H, dirty.wgt[j]);
            st = st ? st : sk_cx_spill_put(sp, j, SK_CX_FLG, 0, H, dirty.flg[j]);
        }
        sk_artifact_masks *ms = NULL;
        st = st ? st : sk_artifact_detect_spilled(meta, NIN, W, H, sp, sg, 37, &ao, &ms);
        is_int(st, 0, "artifact masks of inputs in a scratch file");
        int same = ms && ms->nruns == m->nruns && ms->nprotected == m->nprotected;
        for (int j = 0; same && j <= NIN; j++)
            same = ms->first[j] == m->first[j] &&
                   (j == NIN || (ms->npixels[j] == m->npixels[j] &&
                                 ms->nfootprints[j] == m->nfootprints[j]));
        for (long q = 0; same && q < m->nruns; q++)
            same = ms->runs[q].input == m->runs[q].input && ms->runs[q].y == m->runs[q].y &&
                   ms->runs[q].x0 == m->runs[q].x0 && ms->runs[q].x1 == m->runs[q].x1;
        ok(same && m->nruns > 0, "they are the masks of the inputs in memory (%ld runs)", m->nruns);
        sk_artifact_masks_free(ms);
        sk_cx_spill_free(sp);
    }
    /* artifact pixels measured against the input's whole noise (sky and
     * the star's own Poisson noise: on a bright star's core a trail of a
     * few sky sigmas is invisible) */
    long art_px = 0, art_masked = 0, strong_px = 0, strong_masked = 0;
    for (long y = 0; y < H; y++)
        for (long x = 0; x < W; x++) {
            double star = clean.sci[bad][y * W + x];
            float a = (float)(art[y * W + x] * sigmas[bad] /
                              sqrt(sigmas[bad] * sigmas[bad] + (star > 0 ? star : 0.0)));
            if (a > sigmas[bad]) {
                art_px++;
                art_masked += sk_artifact_masked(m, bad, x, y);
            }
            if (a > 3.0 * sigmas[bad]) {
                strong_px++;
                strong_masked += sk_artifact_masked(m, bad, x, y);
            }
        }
    tap_diag("artifact pixels above 1 sigma: %ld, masked %ld; above 3 sigma: %ld, masked %ld",
             art_px, art_masked, strong_px, strong_masked);
    ok(strong_masked == strong_px, "every artifact pixel above 3 sigma is masked");
    ok(art_masked >= 0.95 * art_px, "95 %% of those above 1 sigma are (%.1f %%)",
       100.0 * art_masked / art_px);
    long others = 0;
    for (int j = 0; j < NIN; j++)
        if (j != bad)
            others += m->npixels[j];
    ok(others < NPIX / 1000, "few pixels masked in the clean inputs (%ld)", others);
    int star_hit = 0;
    for (int k = 0; k < NSTAR; k++)
        for (int j = 0; j < NIN; j++)
            if (sk_artifact_masked(m, j, lround(sx[k]), lround(sy[k]))) {
                /* unless an artifact lies within 5 px of it */
                int near = 0;
                for (long dy = -5; dy <= 5; dy++)
                    for (long dx = -5; dx <= 5; dx++) {
                        long xx = lround(sx[k]) + dx, yy = lround(sy[k]) + dy;
                        if (xx >= 0 && yy >= 0 && xx < W && yy < H && art[yy * W + xx] > 1.0)
                            near = 1;
                    }
                star_hit += !near;
            }
    is_int(star_hit, 0, "no star centre is masked in any input (bright ones included) but "
           "under an artifact");
    ok(m->npixels[bad] <= 5 * art_px,
       "the mask (%ld px) is at most 5 times the artifact pixels above 1 sigma (%ld)",
       m->npixels[bad], art_px);

    /* Apply the masks and combine linearly. */
    long napplied = 0;
    for (int j = 0; j < NIN; j++)
        napplied += sk_artifact_apply_rows(m, j, 0, H, dirty.wgt[j], dirty.flg[j]);
    long nflag = 0;
    for (long i = 0; i < NPIX; i++)
        nflag += (dirty.flg[bad][i] & SK_FLAG_REJECTED) != 0;
    is_int(nflag, m->npixels[bad], "masked pixels flagged REJECTED");
    long total = 0;
    for (int j = 0; j < NIN; j++)
        total += m->npixels[j];
    is_int(napplied, total, "every masked pixel applied");

    /* The masked mean of the artifact inputs against the mean of the clean
     * inputs with the same masks (same weights, same noise): their
     * difference is exactly the artifact light the masks let through. */
    float *mc = malloc(sizeof(float) * NPIX), *mcw = malloc(sizeof(float) * NPIX);
    float *md = malloc(sizeof(float) * NPIX), *mdw = malloc(sizeof(float) * NPIX);
    float *mu = malloc(sizeof(float) * NPIX), *muw = malloc(sizeof(float) * NPIX);
    uint8_t *nimg = malloc(NPIX);
    inputs cleanm = clean;
    float *cw[NIN];
    for (int j = 0; j < NIN; j++) {
        cw[j] = malloc(sizeof(float) * NPIX);
        memcpy(cw[j], dirty.wgt[j], sizeof(float) * NPIX);
        cleanm.wgt[j] = cw[j];
    }
    mean(&cleanm, mc, mcw, NULL);
    mean(&dirty, md, mdw, nimg);
    /* the mean of the artifact inputs without masks, for comparison */
    inputs unmasked = dirty;
    float *wcopy[NIN];
    for (int j = 0; j < NIN; j++) {
        wcopy[j] = malloc(sizeof(float) * NPIX);
        for (long i = 0; i < NPIX; i++)
            wcopy[j][i] = clean.wgt[j][i];
        unmasked.wgt[j] = wcopy[j];
        unmasked.in[j].weight = wcopy[j];
        unmasked.in[j].flags = clean.flg[j];
    }
    mean(&unmasked, mu, muw, NULL);
    double worst = 0.0, worst_s = 0.0, worst_u = 0.0;
    long n_at = 0, nimg4 = 0;
    for (long y = 2; y < H - 2; y++)
        for (long x = 2; x < W - 2; x++) {
            long i = y * W + x;
            /* the mean's noise, the stars' Poisson noise included (gain 1) */
            double sp = 0.0;
            for (int j = 0; j < NIN; j++)
                sp += (double)clean.wgt[j][i] * clean.wgt[j][i] * fmax(mc[i], 0.0);
            double sm = sqrt(1.0 / mcw[i] + sp / ((double)mcw[i] * mcw[i]));
            double d = (md[i] - mc[i]) / sm, du = (mu[i] - mc[i]) / sm;
            if (fabs(d) > worst) worst = fabs(d);
            if (fabs(du) > worst_u) worst_u = fabs(du);
            if (art[i] > sigmas[bad] && clean.sci[bad][i] < 30.0) {
                n_at++;
                nimg4 += nimg[i] == NIN - 1;
            }
            /* 5x5 mean of the difference against its noise */
            double s = 0.0;
            for (long dy = -2; dy <= 2; dy++)
                for (long dx = -2; dx <= 2; dx++)
                    s += md[i + dy * W + dx] - mc[i + dy * W + dx];
            double ds = fabs(s / 25.0) / (sm / 5.0);
            if (ds > worst_s) worst_s = ds;
        }
    tap_diag("mean with masks minus the clean inputs' with the same masks: worst %.2f sigma per "
             "pixel, %.2f sigma in 5x5 means; without masks: %.1f sigma", worst, worst_s, worst_u);
    ok(worst_u > 10.0, "without masks the artifacts stand out (%.1f sigma)", worst_u);
    ok(worst < 3.0, "with masks no residual above 3 sigma per pixel (%.2f)", worst);
    ok(worst_s < 3.0, "nor above 3 sigma in 5x5 means (%.2f)", worst_s);
    ok(nimg4 >= 0.95 * n_at, "NIMG counts the input out where masked (%ld of %ld)", nimg4, n_at);

    /* Thread count does not matter. */
    sk_artifact_opts o = ao;
    o.threads = 1;
    sk_artifact_masks *m1 = NULL;
    /* on the unmasked inputs again */
    sk_artifact_detect(unmasked.in, NIN, W, H, &o, &m1);
    int same = m1->nruns == m->nruns;
    for (long q = 0; same && q < m->nruns; q++)
        same = m1->runs[q].input == m->runs[q].input && m1->runs[q].y == m->runs[q].y &&
               m1->runs[q].x0 == m->runs[q].x0 && m1->runs[q].x1 == m->runs[q].x1;
    ok(same, "1 thread gives the same masks");
    sk_artifact_masks_free(m1);
    /* A faint extended blob in 3 of the 5 inputs is real (kept), the same
     * in one input only is an artifact (masked). */
    {
        inputs b3 = unmasked;
        float *sc[NIN];
        for (int j = 0; j < NIN; j++) {
            sc[j] = malloc(sizeof(float) * NPIX);
            memcpy(sc[j], clean.sci[j], sizeof(float) * NPIX);
            b3.sci[j] = sc[j];
            b3.in[j].sci = sc[j];
            for (long y = 0; y < H; y++)
                for (long x = 0; x < W; x++) {
                    double r1 = hypot(x - 70.0, y - 200.0), r2 = hypot(x - 190.0, y - 40.0);
                    if (j <= 2)
                        sc[j][y * W + x] += (float)(10.0 * exp(-0.5 * r1 * r1 / 9.0));
                    if (j == 4)
                        sc[j][y * W + x] += (float)(10.0 * exp(-0.5 * r2 * r2 / 9.0));
                }
        }
        sk_artifact_masks *mb = NULL;
        is_int(sk_artifact_detect(b3.in, NIN, W, H, &ao, &mb), 0, "masks with blobs");
        int kept = 1;
        for (int j = 0; j < NIN; j++)
            kept &= !sk_artifact_masked(mb, j, 70, 200);
        ok(kept, "a blob in 3 of 5 inputs is kept in all (%ld footprints kept)", mb->nprotected);
        ok(mb->nprotected >= 1, "counted as kept");
        ok(sk_artifact_masked(mb, 4, 190, 40), "a blob in one input is masked there");
        sk_artifact_masks_free(mb);
        for (int j = 0; j < NIN; j++)
            free(sc[j]);
    }

    /* the primitive against a given reference: one pass against the mean
     * finds the artifacts too */
    sk_artifact_masks *m2 = NULL;
    is_int(sk_artifact_find(unmasked.in, NIN, W, H, ref, refw, mean_psf, &dirty, &o, &m2), 0,
           "one pass against the mean");
    long hit2 = 0;
    for (long y = 0; y < H; y++)
        for (long x = 0; x < W; x++)
            if (art[y * W + x] > 3.0 * sigmas[bad] && clean.sci[bad][y * W + x] < 30.0)
                hit2 += !sk_artifact_masked(m2, bad, x, y);
    is_int(hit2, 0, "it masks the artifacts off the stars as well");
    sk_artifact_masks_free(m2);
    o.grow_sigma = 6.0;
    is_int(sk_artifact_detect(dirty.in, NIN, W, H, &o, &m1), SK_EINPUT,
           "grow threshold above the detection threshold refused");

    for (int j = 0; j < NIN; j++) {
        free(wcopy[j]);
        free(cw[j]);
    }
    free(mc); free(mcw); free(md); free(mdw); free(mu); free(muw); free(nimg);
    free(ref); free(refw); free(art);
    sk_artifact_masks_free(m);
    free_inputs(&clean);
    free_inputs(&dirty);
    return tap_done();
}
