/* psf_wing.c: the PSF model's outer wings and its normalisation to total flux: a pixel-integrated profile (a Moffat, or a Gaussian core with a broader Gaussian wing, whichever matches better) fitted to the model's curve of growth within 3 FWHM replaces the noisy outer pixels, so that the model's unit sum counts a star's total light. */
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

/* Curve-of-growth radii (FWHM) matched by the fit, relative to the light
 * within the core's (GROWTH_R[CORE_K]): those within it tell the profile
 * from the core's shape, those beyond (where the model reaches them) from
 * the light the stars hold there. The core's shape alone leaves the wing
 * free: a core 0.5 % broader than the truth at 1 FWHM (noise, or the
 * light of the stars' faint neighbours) took a double Gaussian's wing
 * from 2 to 2.5 times the core's width and doubled the light put beyond
 * 2 FWHM; the light within 3 FWHM, summed over annuli of many model
 * pixels, pins it. */
static const double GROWTH_R[] = {0.5, 0.75, 1.0, 1.25, 1.5, CORE_END_FWHM, 2.5, 3.0};
#define NGROWTH ((int)(sizeof GROWTH_R / sizeof GROWTH_R[0]))
#define CORE_K 5
#define ANCHOR 2 /* GROWTH_R[ANCHOR] = 1 FWHM fixes alpha for each beta */

/* A Moffat whose growth ratios all match the model's within this leaves
 * no room for a better profile (the double Gaussian is not tried). */
#define MATCHED 1e-4

/* Sub-samples per image pixel and axis of the pixel integration. */
#define SUB 4

/* A circular profile integrated over pixels takes one value on all the
 * points of one offset pair (|dx|, |dy|) unordered: the profiles are
 * evaluated once per pair and counted mult times. */
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
    int ngrowth;          /* GROWTH_R within the model's grid */
    double area[NGROWTH]; /* px^2 of the grid points within each GROWTH_R */
    wing_pair *core;      /* the grid points within the last GROWTH_R */
    long ncore;
    wing_pair *sky;       /* the stamp pixels beyond SKY_FROM_FWHM */
    long nsky;
} wing_ctx;

/* A unit-total circular profile: a Moffat (scale alpha px, slope beta),
 * or two Gaussians (scale: the core's sigma px; a fraction `frac` of the
 * light in a Gaussian `ratio` times wider), the limit of a Moffat's
 * family for a core with a separate broad wing. */
typedef struct wing_prof {
    int dbl;            /* 0: Moffat, 1: double Gaussian */
    double scale;       /* alpha or the core's sigma (px) */
    double beta;        /* Moffat */
    double frac, ratio; /* double Gaussian */
} wing_prof;

/* The profile's value at squared radius r2 (px^2). */
static double prof_value(const wing_prof *f, double r2)
{
    double s2 = f->scale * f->scale;
    if (!f->dbl)
        return (f->beta - 1.0) / (M_PI * s2) * pow(1.0 + r2 / s2, -f->beta);
    /* (arguments below -600 give 0: no subnormal results, which are slow) */
    double w2 = s2 * f->ratio * f->ratio, a = 0.5 * r2 / s2, b = 0.5 * r2 / w2;
    return (a < 600 ? (1.0 - f->frac) / (2.0 * M_PI * s2) * exp(-a) : 0.0) +
           (b < 600 ? f->frac / (2.0 * M_PI * w2) * exp(-b) : 0.0);
}

/* The profile integrated over the image pixel centred at distance
 * (dx, dy), by SUB x SUB sub-samples. */
static double prof_pixel(const wing_prof *f, double dx, double dy)
{
    double s = 0;
    for (int j = 0; j < SUB; j++) {
        double y = dy - 0.5 + (j + 0.5) / SUB;
        for (int i = 0; i < SUB; i++) {
            double x = dx - 0.5 + (i + 0.5) / SUB;
            s += prof_value(f, x * x + y * y);
        }
    }
    return s / (SUB * SUB);
}

/* Curve of growth of a profile sampled like the model (grid points within
 * each radius, times step^2). */
static void prof_growth(const wing_ctx *w, const wing_prof *f, double *ee)
{
    for (int k = 0; k < w->ngrowth; k++)
        ee[k] = 0;
    for (long u = 0; u < w->ncore; u++) {
        const wing_pair *p = &w->core[u];
        double v = p->mult * prof_pixel(f, p->dx, p->dy);
        for (int k = 0; k < w->ngrowth; k++)
            if (p->r <= GROWTH_R[k] * w->fwhm)
                ee[k] += v;
    }
    for (int k = 0; k < w->ngrowth; k++)
        ee[k] *= w->step * w->step;
}

/* The mean of the unit profile (at pixel centres: the far wing is smooth
 * on the pixel scale) over the stamp's pixels beyond SKY_FROM_FWHM, where
 * each star's local sky was taken: what that sky took of its light per
 * pixel. */
static double sky_pedestal(const wing_ctx *w, const wing_prof *f)
{
    double s = 0, n = 0;
    for (long u = 0; u < w->nsky; u++) {
        const wing_pair *p = &w->sky[u];
        s += p->mult * prof_value(f, p->dx * p->dx + p->dy * p->dy);
        n += p->mult;
    }
    return n > 0 ? s / n : 0.0;
}

/* The growth ratio at the anchor radius of the profile as the model's
 * core holds it (minus the local sky's share, sky_pedestal), less the
 * model's; it falls as the profile's scale grows. Leaves the profile's
 * curve in ee and its pedestal in *eps. */
static double anchor_excess(const wing_ctx *w, const double *q, const wing_prof *f, double *ee,
                            double *eps)
{
    prof_growth(w, f, ee);
    *eps = sky_pedestal(w, f);
    double v = (ee[ANCHOR] - *eps * w->area[ANCHOR]) /
               (ee[CORE_K] - *eps * w->area[CORE_K]) - q[ANCHOR];
    return isfinite(v) ? v : -1.0;
}

/* For a profile's shape (all but its scale), the scale such that its
 * anchor ratio equals the model's (the root of anchor_excess in log scale,
 * by regula falsi with the Illinois modification: superlinear, ~10
 * profiles where bisection to the same 1e-10 takes 40; the end of the
 * range when the ratio does not cross it); returns the squared misfit of
 * the other ratios and the profile's curve. */
static double fit_scale(const wing_ctx *w, const double *q, wing_prof *f, double *ee)
{
    /* alpha within [0.05, 50] FWHM; the core's sigma of a double Gaussian
       within [0.1, 1] FWHM (its FWHM is 2.35 sigma at most) */
    double a = log((f->dbl ? 0.1 : 0.05) * w->fwhm), b = log((f->dbl ? 1.0 : 50.0) * w->fwhm), eps = 0;
    f->scale = exp(a);
    double fa = anchor_excess(w, q, f, ee, &eps);
    f->scale = exp(b);
    double fb = anchor_excess(w, q, f, ee, &eps);
    double x = fb > 0 ? b : a;
    if (fa > 0 && !(fb > 0)) {
        int side = 0;
        double prev = a;
        for (int it = 0; it < 100; it++) {
            x = fb - fa != 0 ? (a * fb - b * fa) / (fb - fa) : 0.5 * (a + b);
            f->scale = exp(x);
            double fx = anchor_excess(w, q, f, ee, &eps);
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
    f->scale = exp(x);
    prof_growth(w, f, ee);
    eps = sky_pedestal(w, f);
    double chi = 0, last = ee[CORE_K] - eps * w->area[CORE_K];
    for (int k = 0; k < w->ngrowth; k++) {
        if (k == CORE_K)
            continue;
        double d = (ee[k] - eps * w->area[k]) / last - q[k];
        chi += d * d;
    }
    return chi;
}

/* The shape parameters a fit varies. */
enum { SHAPE_BETA, SHAPE_FRAC, SHAPE_RATIO };

/* The squared misfit of the profile `base` with its shape parameter
 * `which` set to x and its scale fitted; the profile in *out. */
static double shape_misfit(const wing_ctx *w, const double *q, const wing_prof *base, int which,
                           double x, wing_prof *out, double *ee)
{
    *out = *base;
    if (which == SHAPE_BETA)
        out->beta = x;
    else if (which == SHAPE_FRAC)
        out->frac = x;
    else
        out->ratio = x;
    return fit_scale(w, q, out, ee);
}

/* Shape parameter `which` of `base` on the grid xs[0..n-1] (n = 1: that
 * value alone), then refined between the best point's neighbours by
 * golden section; *best the profile, returns its squared misfit. */
static double fit_shape(const wing_ctx *w, const double *q, const wing_prof *base, int which,
                        const double *xs, int n, wing_prof *best)
{
    double chi_best = INFINITY, ee[NGROWTH];
    wing_prof f;
    int ib = 0;
    for (int i = 0; i < n; i++) {
        double chi = shape_misfit(w, q, base, which, xs[i], &f, ee);
        if (chi < chi_best) {
            chi_best = chi;
            *best = f;
            ib = i;
        }
    }
    const double gr = 0.5 * (sqrt(5.0) - 1.0);
    double lo = xs[ib > 0 ? ib - 1 : 0], hi = xs[ib + 1 < n ? ib + 1 : n - 1], x0 = xs[ib];
    double x1 = hi - gr * (hi - lo), x2 = lo + gr * (hi - lo);
    wing_prof f1, f2;
    if (n < 2)
        return chi_best;
    double c1 = shape_misfit(w, q, base, which, x1, &f1, ee);
    double c2 = shape_misfit(w, q, base, which, x2, &f2, ee);
    for (int it = 0; it < 30 && hi - lo > 1e-3 * x0; it++) {
        if (c1 < c2) {
            hi = x2;
            x2 = x1;
            c2 = c1;
            f2 = f1;
            x1 = hi - gr * (hi - lo);
            c1 = shape_misfit(w, q, base, which, x1, &f1, ee);
        } else {
            lo = x1;
            x1 = x2;
            c1 = c2;
            f1 = f2;
            x2 = lo + gr * (hi - lo);
            c2 = shape_misfit(w, q, base, which, x2, &f2, ee);
        }
        if (c1 < chi_best) {
            chi_best = c1;
            *best = f1;
        }
        if (c2 < chi_best) {
            chi_best = c2;
            *best = f2;
        }
    }
    return chi_best;
}

/* The profile whose growth ratios best match the model's q: a Moffat
 * (beta on a grid, a Gaussian the limit of large beta, refined since one
 * step of the grid moves the light beyond 2 FWHM by up to half a per
 * cent), or, where it matches clearly better (half the rms misfit), a
 * Gaussian core with a Gaussian wing 1.5 to 2.5 times wider (wing
 * fraction and width on a grid, then each refined): a core as steep as a
 * Gaussian's with a broad wing, which no Moffat follows (one fitted to
 * such a core puts up to 0.6 % too little light beyond 2 FWHM). A wider
 * wing holds too little of its light within 2 FWHM for the core's curve
 * to tell its level. Returns the squared misfit. */
static double fit_profile(const wing_ctx *w, const double *q, wing_prof *best)
{
    static const double betas[] = {1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0,
                                   4.5, 5.0, 5.5, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0,
                                   50.0, 100.0, 300.0};
    static const double fracs[] = {0.02, 0.05, 0.1, 0.2, 0.3};
    static const double ratios[] = {1.5, 2.0, 2.5};
    const int nf = (int)(sizeof fracs / sizeof fracs[0]), nr = (int)(sizeof ratios / sizeof ratios[0]);
    wing_prof base = {0, 0, 0, 0, 1}, f, g;
    double chi = fit_shape(w, q, &base, SHAPE_BETA, betas, (int)(sizeof betas / sizeof betas[0]), best);
    if (chi < MATCHED * MATCHED)
        return chi;
    /* the double Gaussian: the grid, then the fraction and the width refined
       about its best point */
    double cg = INFINITY, ee[NGROWTH];
    int ik = 0;
    base.dbl = 1;
    for (int k = 0; k < nr; k++)
        for (int i = 0; i < nf; i++) {
            base.ratio = ratios[k];
            double c = shape_misfit(w, q, &base, SHAPE_FRAC, fracs[i], &f, ee);
            if (c < cg) {
                cg = c;
                g = f;
                ik = k;
            }
        }
    base = g;
    double c = fit_shape(w, q, &base, SHAPE_FRAC, fracs, nf, &f);
    if (c < cg) {
        cg = c;
        g = f;
    }
    double rs[3] = {ratios[ik > 0 ? ik - 1 : 0], ratios[ik], ratios[ik + 1 < nr ? ik + 1 : nr - 1]};
    base = g;
    c = fit_shape(w, q, &base, SHAPE_RATIO, rs, 3, &f);
    if (c < cg) {
        cg = c;
        g = f;
    }
    if (cg < 0.25 * chi) {
        chi = cg;
        *best = g;
    }
    return chi;
}

/* The offset pairs of the points (i - ci, j - cj), 0 <= i < nx,
 * 0 <= j < ny, in grid steps of step px, whose radius is within rmax
 * (inside) or beyond it (!inside), with their counts; -1 when out of
 * memory. */
static long wing_pairs(int nx, int ny, int ci, int cj, double step, double rmax, int inside,
                       wing_pair **out)
{
    int side = (nx > ny ? nx : ny) + 1;
    long *slot = malloc(sizeof *slot * (size_t)side * (size_t)side);
    wing_pair *pairs = malloc(sizeof *pairs * (size_t)side * (size_t)side);
    long n = 0;
    *out = NULL;
    if (!slot || !pairs) {
        free(slot);
        free(pairs);
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
    wing_ctx w = {gw, gh, step_px, fwhm_px, malloc(sizeof(double) * (size_t)np), stamp_px / 2, 0,
                  {0}, NULL, 0, NULL, 0};
    double *mof = malloc(sizeof(double) * (size_t)np);
    if (!w.r || !mof) {
        free(w.r);
        free(mof);
        return sk_error(SK_EIO, "PSF wings: out of memory");
    }
    for (int b = 0; b < gh; b++)
        for (int a = 0; a < gw; a++)
            w.r[(long)b * gw + a] = hypot((double)(a - gw / 2), (double)(b - gh / 2)) * step_px;
    /* the model's curve of growth (component 0: the image centre), to the
       last radius within its grid */
    double outer = (double)(gw < gh ? gw / 2 : gh / 2) * step_px;
    double d[NGROWTH] = {0}, q[NGROWTH];
    w.ngrowth = CORE_K + 1;
    while (w.ngrowth < NGROWTH && GROWTH_R[w.ngrowth] * fwhm_px <= outer)
        w.ngrowth++;
    for (long p = 0; p < np; p++)
        for (int k = 0; k < NGROWTH; k++)
            if (w.r[p] <= GROWTH_R[k] * fwhm_px) {
                d[k] += comp[p] * step_px * step_px;
                w.area[k] += step_px * step_px;
            }
    int st = SK_OK;
    if (!(d[CORE_K] > 0) || !(fwhm_px > 0) || outer < WING_END_FWHM * fwhm_px) {
        sk_debug("PSF wings: model too small or empty; wings left as fitted");
        free(w.r);
        free(mof);
        return SK_OK;
    }
    for (int k = 0; k < NGROWTH; k++)
        q[k] = d[k] / d[CORE_K];
    w.ncore = wing_pairs(gw, gh, gw / 2, gh / 2, step_px, GROWTH_R[w.ngrowth - 1] * fwhm_px, 1,
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
    double ee[NGROWTH];
    wing_prof prof;
    double best = fit_profile(&w, q, &prof);
    prof_growth(&w, &prof, ee);
    /* the model's core is the star minus its local sky, which held eps of
     * the star's light per pixel: core sum = T (EE - eps A) */
    double eps = sky_pedestal(&w, &prof);
    long ncore = 0;
    for (long p = 0; p < np; p++)
        ncore += w.r[p] <= CORE_END_FWHM * fwhm_px;
    double frac = ee[CORE_K] - eps * (double)ncore * step_px * step_px;
    double total = d[CORE_K] / frac;
    if (!(frac > 0.5) || !(total > 0) || !isfinite(total)) {
        sk_info("PSF wings: the fitted profile (%s, scale %.2f px) does not match the model; "
                "wings left as fitted", prof.dbl ? "double Gaussian" : "Moffat", prof.scale);
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
            mof[p] = prof_pixel(&prof, (double)(a - gw / 2) * step_px, (double)(b - gh / 2) * step_px);
        }
    if (prof.dbl)
        sk_debug("PSF wings: double Gaussian, core sigma %.3f px, %.3f of the light in a wing %.2f "
                 "times wider (misfit %.2g)", prof.scale, prof.frac, prof.ratio, sqrt(best));
    else
        sk_debug("PSF wings: Moffat beta %.2f alpha %.3f px (misfit %.2g)", prof.beta, prof.scale,
                 sqrt(best));
    sk_debug("PSF wings: %.4f of the light within %.1f FWHM, sky pedestal %.3g/px; the model's sum "
             "%.5f becomes %.5f", ee[CORE_K], CORE_END_FWHM, eps, box, total);
    /* every component: its core kept (the first one's with the light its
     * local sky took put back), its wing the profile of the total light,
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
