/* psf_wing.c: the PSF model's outer wings and its normalisation to total flux: a pixel-integrated Moffat profile fitted to the model core's curve of growth replaces the noisy outer pixels, so that the model's unit sum counts a star's total light. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/log.h"
#include "psf_priv.h"

/* The core (in FWHM) whose pixels the model keeps; beyond WING_END_FWHM
 * the wing is the fitted profile alone, in between the two are blended.
 * Within 2 FWHM the stars' pixels have a high signal-to-noise ratio;
 * beyond, the sum of the model's pixels is mostly the noise of the stars'
 * stamps and of their local sky, which the unit-sum normalisation turned
 * into an error of every PSF flux (0.5 % rms on a field of a few dozen
 * PSF stars). */
#define CORE_END_FWHM 2.0
#define WING_END_FWHM 2.5
/* The radius (FWHM) beyond which each star's local sky is taken. */
#define SKY_FROM_FWHM 3.0

/* Curve-of-growth radii (FWHM) matched by the fit, the last one the core's. */
static const double GROWTH_R[] = {0.5, 0.75, 1.0, 1.25, 1.5, CORE_END_FWHM};
#define NGROWTH ((int)(sizeof GROWTH_R / sizeof GROWTH_R[0]))
#define ANCHOR 2 /* GROWTH_R[ANCHOR] = 1 FWHM fixes alpha for each beta */

/* Sub-samples per image pixel and axis of the pixel integration. */
#define SUB 4

/* A profile symmetric under reflections and the swap of the axes takes
 * one value on all the points of one offset pair (|dx|, |dy|) unordered:
 * the profiles are evaluated once per pair and counted mult times. */
typedef struct wing_pair {
    double dx, dy; /* (px) */
    double r;      /* (px) */
    double mult;   /* points of this pair */
} wing_pair;

typedef struct wing_ctx {
    int gw, gh;
    double step;          /* model grid step (image px) */
    double fwhm;          /* px */
    double *r;            /* gw*gh radius of each grid point (image px) */
    int half;             /* half-side of the stars' stamps (image px) */
    double area[NGROWTH]; /* px^2 of the grid points within each GROWTH_R */
    wing_pair *core;      /* the grid points within the last GROWTH_R */
    long ncore;
    wing_pair *sky;       /* the stamp pixels beyond SKY_FROM_FWHM */
    long nsky;
} wing_ctx;

/* The unit-total Moffat profile integrated over the image pixel centred
 * at distance (dx, dy), by SUB x SUB sub-samples. */
static double moffat_pixel(double dx, double dy, double alpha, double beta)
{
    double norm = (beta - 1.0) / (M_PI * alpha * alpha), s = 0, ia2 = 1.0 / (alpha * alpha);
    for (int j = 0; j < SUB; j++) {
        double y = dy - 0.5 + (j + 0.5) / SUB;
        for (int i = 0; i < SUB; i++) {
            double x = dx - 0.5 + (i + 0.5) / SUB;
            s += pow(1.0 + (x * x + y * y) * ia2, -beta);
        }
    }
    return norm * s / (SUB * SUB);
}

/* Curve of growth of a Moffat sampled like the model (grid points within
 * each radius, times step^2). */
static void moffat_growth(const wing_ctx *w, double alpha, double beta, double *ee)
{
    for (int k = 0; k < NGROWTH; k++)
        ee[k] = 0;
    for (long u = 0; u < w->ncore; u++) {
        const wing_pair *p = &w->core[u];
        double v = p->mult * moffat_pixel(p->dx, p->dy, alpha, beta);
        for (int k = 0; k < NGROWTH; k++)
            if (p->r <= GROWTH_R[k] * w->fwhm)
                ee[k] += v;
    }
    for (int k = 0; k < NGROWTH; k++)
        ee[k] *= w->step * w->step;
}

/* The mean of the unit Moffat (at pixel centres: the far wing is smooth
 * on the pixel scale) over the stamp's pixels beyond SKY_FROM_FWHM, where
 * each star's local sky was taken: what that sky took of its light per
 * pixel. */
static double sky_pedestal(const wing_ctx *w, double alpha, double beta)
{
    double s = 0, n = 0, ia2 = 1.0 / (alpha * alpha);
    for (long u = 0; u < w->nsky; u++) {
        const wing_pair *p = &w->sky[u];
        s += p->mult * pow(1.0 + p->r * p->r * ia2, -beta);
        n += p->mult;
    }
    return n > 0 ? s * (beta - 1.0) / (M_PI * alpha * alpha) / n : 0.0;
}

/* The growth ratio at the anchor radius of the Moffat (alpha, beta) as
 * the model's core holds it (minus the local sky's share, sky_pedestal),
 * less the model's; it falls as alpha grows. Leaves the Moffat's curve in
 * ee and its pedestal in *eps. */
static double anchor_excess(const wing_ctx *w, const double *q, double alpha, double beta,
                            double *ee, double *eps)
{
    moffat_growth(w, alpha, beta, ee);
    *eps = sky_pedestal(w, alpha, beta);
    double v = (ee[ANCHOR] - *eps * w->area[ANCHOR]) /
               (ee[NGROWTH - 1] - *eps * w->area[NGROWTH - 1]) - q[ANCHOR];
    return isfinite(v) ? v : -1.0;
}

/* For one beta, the alpha whose anchor ratio equals the model's (the root
 * of anchor_excess in log alpha over 0.05-50 FWHM, by regula falsi with
 * the Illinois modification: superlinear, ~10 profiles where bisection
 * to the same 1e-10 takes 40; the end of the range when the ratio does not
 * cross it); returns the squared misfit of the other ratios and the
 * Moffat's curve. */
static double fit_alpha(const wing_ctx *w, const double *q, double beta, double *alpha_out,
                        double *ee)
{
    double a = log(0.05 * w->fwhm), b = log(50.0 * w->fwhm), eps = 0;
    double fa = anchor_excess(w, q, exp(a), beta, ee, &eps);
    double fb = anchor_excess(w, q, exp(b), beta, ee, &eps);
    double x = fb > 0 ? b : a;
    if (fa > 0 && !(fb > 0)) {
        int side = 0;
        double prev = a;
        for (int it = 0; it < 100; it++) {
            x = fb - fa != 0 ? (a * fb - b * fa) / (fb - fa) : 0.5 * (a + b);
            double fx = anchor_excess(w, q, exp(x), beta, ee, &eps);
            if (fx == 0 || (it > 0 && fabs(x - prev) < 1e-10))
                break;
            prev = x;
            if (fx > 0) {
                a = x;
                fa = fx;
                if (side == 1)
                    fb *= 0.5;
                side = 1;
            } else {
                b = x;
                fb = fx;
                if (side == -1)
                    fa *= 0.5;
                side = -1;
            }
        }
    }
    *alpha_out = exp(x);
    moffat_growth(w, *alpha_out, beta, ee);
    eps = sky_pedestal(w, *alpha_out, beta);
    double chi = 0, last = ee[NGROWTH - 1] - eps * w->area[NGROWTH - 1];
    for (int k = 0; k < NGROWTH - 1; k++) {
        double d = (ee[k] - eps * w->area[k]) / last - q[k];
        chi += d * d;
    }
    return chi;
}

/* The Moffat (alpha, beta) whose growth ratios best match the model's q:
 * beta first on a grid (a Gaussian is the limit of large beta), then
 * refined between the best point's neighbours by golden section, since
 * one step of the grid moves the light beyond 2 FWHM by up to half a per
 * cent; returns the squared misfit. */
static double fit_beta(const wing_ctx *w, const double *q, double *alpha, double *beta)
{
    static const double betas[] = {1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0,
                                   4.5, 5.0, 5.5, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0,
                                   50.0, 100.0, 300.0};
    const int nb = (int)(sizeof betas / sizeof betas[0]);
    double best = INFINITY, ee[NGROWTH];
    int ib = 0;
    for (int i = 0; i < nb; i++) {
        double al, chi = fit_alpha(w, q, betas[i], &al, ee);
        if (chi < best) {
            best = chi;
            *alpha = al;
            *beta = betas[i];
            ib = i;
        }
    }
    const double gr = 0.5 * (sqrt(5.0) - 1.0);
    double lo = betas[ib > 0 ? ib - 1 : 0], hi = betas[ib + 1 < nb ? ib + 1 : nb - 1];
    double b1 = hi - gr * (hi - lo), b2 = lo + gr * (hi - lo), a1, a2;
    double c1 = fit_alpha(w, q, b1, &a1, ee), c2 = fit_alpha(w, q, b2, &a2, ee);
    for (int it = 0; it < 30 && hi - lo > 1e-3 * *beta; it++) {
        if (c1 < c2) {
            hi = b2;
            b2 = b1;
            c2 = c1;
            a2 = a1;
            b1 = hi - gr * (hi - lo);
            c1 = fit_alpha(w, q, b1, &a1, ee);
        } else {
            lo = b1;
            b1 = b2;
            c1 = c2;
            a1 = a2;
            b2 = lo + gr * (hi - lo);
            c2 = fit_alpha(w, q, b2, &a2, ee);
        }
        if (c1 < best) {
            best = c1;
            *alpha = a1;
            *beta = b1;
        }
        if (c2 < best) {
            best = c2;
            *alpha = a2;
            *beta = b2;
        }
    }
    return best;
}

/* The offset pairs of the points (i - ci, j - cj), 0 <= i < nx,
 * 0 <= j < ny, in grid steps of step px, whose radius is within rmax
 * (inside) or beyond it (!inside), with their counts. */
static long wing_pairs(int nx, int ny, int ci, int cj, double step, double rmax, int inside,
                       wing_pair **out)
{
    int side = (nx > ny ? nx : ny) + 1;
    long *slot = malloc(sizeof *slot * (size_t)side * (size_t)side);
    wing_pair *pairs = malloc(sizeof *pairs * (size_t)side * (size_t)side);
    long n = 0;
    if (!slot || !pairs) {
        free(slot);
        free(pairs);
        *out = NULL;
        return -1;
    }
    for (long t = 0; t < (long)side * side; t++)
        slot[t] = -1;
    for (int j = 0; j < ny; j++)
        for (int i = 0; i < nx; i++) {
            int ai = abs(i - ci), aj = abs(j - cj);
            int lo = ai < aj ? ai : aj, hi = ai < aj ? aj : ai;
            double r = hypot((double)lo, (double)hi) * step;
            if ((r <= rmax) != (inside != 0))
                continue;
            long *sl = &slot[(long)lo * side + hi];
            if (*sl < 0) {
                *sl = n;
                pairs[n++] = (wing_pair){(double)lo * step, (double)hi * step, r, 0};
            }
            pairs[*sl].mult += 1;
        }
    free(slot);
    *out = pairs;
    return n;
}

/* The blend weight of the model's own pixels at radius r (1 in the core,
 * 0 in the wing). */
static double core_weight(const wing_ctx *w, double r)
{
    double r0 = CORE_END_FWHM * w->fwhm, r1 = WING_END_FWHM * w->fwhm;
    return r <= r0 ? 1.0 : r >= r1 ? 0.0 : (r1 - r) / (r1 - r0);
}

int sk_psf_fit_wings(double *comp, int ncomp, int gw, int gh, double step_px, double fwhm_px,
                     int stamp_px)
{
    long np = (long)gw * gh;
    wing_ctx w = {gw, gh, step_px, fwhm_px, malloc(sizeof(double) * (size_t)np), stamp_px / 2, {0},
                  NULL, 0, NULL, 0};
    double *mof = malloc(sizeof(double) * (size_t)np);
    if (!w.r || !mof) {
        free(w.r);
        free(mof);
        return sk_error(SK_EIO, "PSF wings: out of memory");
    }
    for (int b = 0; b < gh; b++)
        for (int a = 0; a < gw; a++)
            w.r[(long)b * gw + a] = hypot((double)(a - gw / 2), (double)(b - gh / 2)) * step_px;
    /* the model's curve of growth (component 0: the image centre) */
    double d[NGROWTH] = {0}, q[NGROWTH];
    for (long p = 0; p < np; p++)
        for (int k = 0; k < NGROWTH; k++)
            if (w.r[p] <= GROWTH_R[k] * fwhm_px) {
                d[k] += comp[p] * step_px * step_px;
                w.area[k] += step_px * step_px;
            }
    int st = SK_OK;
    double outer = (double)(gw < gh ? gw / 2 : gh / 2) * step_px;
    if (!(d[NGROWTH - 1] > 0) || !(fwhm_px > 0) || outer < WING_END_FWHM * fwhm_px) {
        sk_debug("PSF wings: model too small or empty; wings left as fitted");
        free(w.r);
        free(mof);
        return SK_OK;
    }
    for (int k = 0; k < NGROWTH; k++)
        q[k] = d[k] / d[NGROWTH - 1];
    w.ncore = wing_pairs(gw, gh, gw / 2, gh / 2, step_px, GROWTH_R[NGROWTH - 1] * fwhm_px, 1,
                         &w.core);
    w.nsky = wing_pairs(2 * w.half + 1, 2 * w.half + 1, w.half, w.half, 1.0,
                        SKY_FROM_FWHM * fwhm_px, 0, &w.sky);
    if (w.ncore < 0 || w.nsky < 0) {
        free(w.r);
        free(mof);
        free(w.core);
        free(w.sky);
        return sk_error(SK_EIO, "PSF wings: out of memory");
    }
    double alpha = 0, beta = 0, ee[NGROWTH];
    double best = fit_beta(&w, q, &alpha, &beta);
    moffat_growth(&w, alpha, beta, ee);
    /* the model's core is the star minus its local sky, which held eps of
     * the star's light per pixel: core sum = T (EE - eps A) */
    double eps = sky_pedestal(&w, alpha, beta);
    long ncore = 0;
    for (long p = 0; p < np; p++)
        ncore += w.r[p] <= CORE_END_FWHM * fwhm_px;
    double frac = ee[NGROWTH - 1] - eps * (double)ncore * step_px * step_px;
    double total = d[NGROWTH - 1] / frac;
    if (!(frac > 0.5) || !(total > 0) || !isfinite(total)) {
        sk_info("PSF wings: the Moffat fit (beta %.2f, alpha %.2f px) does not match the model; "
                "wings left as fitted", beta, alpha);
        free(w.r);
        free(mof);
        free(w.core);
        free(w.sky);
        return SK_OK;
    }
    double box = 0, core0 = 0;
    for (long p = 0; p < np; p++) {
        box += comp[p] * step_px * step_px;
        core0 += core_weight(&w, w.r[p]) * comp[p];
    }
    for (int b = 0; b < gh; b++)
        for (int a = 0; a < gw; a++) {
            long p = (long)b * gw + a;
            mof[p] = moffat_pixel((double)(a - gw / 2) * step_px, (double)(b - gh / 2) * step_px,
                                  alpha, beta);
        }
    sk_debug("PSF wings: Moffat beta %.2f alpha %.3f px (misfit %.2g), %.4f of the light within "
             "%.1f FWHM, sky pedestal %.3g/px; the model's sum %.5f becomes %.5f", beta, alpha,
             sqrt(best), ee[NGROWTH - 1], CORE_END_FWHM, eps, box, total);
    /* every component: its core kept (the first one's with the light its
     * local sky took put back), its wing the Moffat of the total light,
     * scaled for the others with their core's sum (the wing varies over
     * the image as the core's sum does) */
    for (int k = 0; k < ncomp; k++) {
        double *c = comp + (long)k * np, ck = 0;
        for (long p = 0; p < np; p++)
            ck += core_weight(&w, w.r[p]) * c[p];
        double scale = k == 0 ? total : core0 != 0 ? total * ck / core0 : 0.0;
        double ped = k == 0 ? eps * total : 0.0;
        for (long p = 0; p < np; p++) {
            double cw = core_weight(&w, w.r[p]);
            c[p] = cw * (c[p] + ped) + (1.0 - cw) * scale * mof[p];
        }
    }
    free(w.r);
    free(mof);
    free(w.core);
    free(w.sky);
    return st;
}
