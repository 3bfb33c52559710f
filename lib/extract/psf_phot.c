/* psf_phot.c: PSF-fit photometry: the flux of a point source at a given position as the weighted least-squares amplitude of the unit-sum PSF, with its error, for positions or a whole source list. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/log.h"
#include "skystack/psf.h"
#include "skystack/table.h"
#include "core/parallel.h"
#include "numeric/stats.h"
#include "psf_priv.h"
#include "extract_internal.h"
#include "psf_internal.h"

typedef struct phot_ctx {
    const sk_psf *psf;
    const sk_image *img;
    const float *level, *var;
    const int32_t *seg;
    double gain, radius;
    int size;
    const double *x, *y;
    double *flux, *err, *chi2;
    double model_frac2; /* squared fractional flux error of the model */
    double level_err;   /* 1-sigma error of the background level (ADU) */
    double *adiff;      /* per position, may be NULL: (aperture flux - fit
                           flux) / fit flux over the fit's pixels, and its */
    double *adiff_var;  /* variance from the noise */
    const float *resid; /* may be NULL: the image less the background and
                           every source's model, to which each position's
                           own model (own[k] times the PSF) is added back */
    const double *own;
    double nf2;         /* sk_image_noise_factor^2: correlated sky noise's
                           excess in PSF-weighted sums (0: none, 1) */
} phot_ctx;

/* The data of pixel q for position k whose PSF value there is pp. */
static inline double phot_data(const phot_ctx *c, long k, long q, double pp)
{
    if (c->resid)
        return c->resid[q] + c->own[k] * pp;
    return c->img->sci[q] - (c->level ? c->level[q] : 0.0f);
}

/* The amplitude of the PSF (values p[t] at pixels pix[t]) fitted with
 * background weights, its error and reduced chi^2: the pixel variance is the
 * background's and the source's Poisson noise; the background level's error
 * enters coherently over the fit; the noise error is scaled up by sqrt(chi^2)
 * where chi^2 > 1; the model's own fractional error adds in quadrature. */
static void phot_fit(phot_ctx *c, long k, const double *p, const long *pix, long n)
{
    double swpp = 0, swpd = 0;
    for (long t = 0; t < n; t++) {
        long q = pix[t];
        double w = 1.0 / c->var[q], pp = p[t];
        double d = phot_data(c, k, q, pp);
        swpp += w * pp * pp;
        swpd += w * pp * d;
    }
    if (n < 2 || !(swpp > 0))
        return;
    double a = swpd / swpp;
    double num = 0, chi = 0, swp = 0, sd = 0, sp = 0, svt = 0, nf2 = c->nf2 > 0 ? c->nf2 : 1.0;
    for (long t = 0; t < n; t++) {
        long q = pix[t];
        double vb = c->var[q], pp = p[t];
        double mod = a * pp;
        double vs = c->gain > 0 && mod > 0 ? mod / c->gain : 0.0, vt = vb + vs;
        /* the sky's share of the sums' noise, correlated: nf2 times */
        num += pp * pp / (vb * vb) * (nf2 * vb + vs);
        swp += pp / vb;
        double d = phot_data(c, k, q, pp);
        chi += (d - mod) * (d - mod) / vt;
        sd += d;
        sp += pp;
        svt += nf2 * vb + vs;
    }
    double chi2 = chi / (double)(n - 1);
    double lev = c->level_err * swp / swpp;
    double noise2 = num / (swpp * swpp);
    double err2 = noise2 + lev * lev;
    if (chi2 > 1)
        err2 *= chi2;
    c->flux[k] = a;
    c->err[k] = sqrt(err2 + c->model_frac2 * a * a);
    if (c->chi2)
        c->chi2[k] = chi2;
    if (c->adiff && a > 0 && sp > 0) {
        /* the aperture estimate sd / sp against the optimal fit a: their
           difference's noise variance is the difference of theirs */
        c->adiff[k] = (sd / sp - a) / a;
        c->adiff_var[k] = fmax(0.0, svt / (sp * sp) - noise2) / (a * a);
    }
}

static int phot_one(long k, void *u)
{
    phot_ctx *c = u;
    const sk_image *img = c->img;
    double x = c->x[k], y = c->y[k];
    c->flux[k] = c->err[k] = NAN;
    if (c->chi2)
        c->chi2[k] = NAN;
    if (c->adiff)
        c->adiff[k] = NAN;
    if (!isfinite(x) || !isfinite(y))
        return SK_OK;
    long ix = lround(x), iy = lround(y);
    if (ix < -c->size || iy < -c->size || ix >= img->width + c->size || iy >= img->height + c->size)
        return SK_OK;
    int m = c->size;
    /* the stamp's pixels within the fit radius of the position: a window
       of 2 rw + 1 pixels about its middle */
    int rw = (int)ceil(c->radius + 0.5);
    int w0 = m / 2 - rw < 0 ? 0 : m / 2 - rw, w1 = m / 2 + rw >= m ? m - 1 : m / 2 + rw;
    int nw = w1 - w0 + 1;
    double *p = malloc(sizeof *p * (size_t)nw * (size_t)nw);
    long *pix = malloc(sizeof *pix * (size_t)nw * (size_t)nw);
    if (!p || !pix) {
        free(p);
        free(pix);
        return sk_error(SK_EIO, "PSF photometry: out of memory");
    }
    int st = psf_image_window(c->psf, x, y, m, w0, w0, nw, nw, p);
    if (st) {
        free(p);
        free(pix);
        return st;
    }
    int32_t self = 0;
    if (c->seg && ix >= 0 && iy >= 0 && ix < img->width && iy < img->height)
        self = c->seg[iy * img->width + ix];
    /* The pixels of the fit: usable, within the fit radius, not another
     * object's; pix[t] with the PSF's value p[t] (p packed in place). */
    double r2 = c->radius * c->radius;
    long n = 0;
    for (int j = w0; j <= w1; j++) {
        long yy = iy - m / 2 + j;
        if (yy < 0 || yy >= img->height)
            continue;
        for (int i = w0; i <= w1; i++) {
            long xx = ix - m / 2 + i;
            if (xx < 0 || xx >= img->width)
                continue;
            double dx = (double)xx - x, dy = (double)yy - y;
            if (dx * dx + dy * dy > r2)
                continue;
            long q = yy * img->width + xx;
            if (!psf_pixel_usable(img, q) || !(c->var[q] > 0))
                continue;
            if (c->seg && c->seg[q] != 0 && c->seg[q] != self)
                continue;
            pix[n] = q;
            p[n] = p[(long)(j - w0) * nw + (i - w0)];
            n++;
        }
    }
    phot_fit(c, k, p, pix, n);
    free(p);
    free(pix);
    return SK_OK;
}

/* Fit the n positions of c (c->x, c->y) with threads. */
static int phot_run(phot_ctx *c, long n, int threads)
{
    double fwhm = c->psf->fwhm_px > 0 ? c->psf->fwhm_px : 3.0;
    c->radius = fmax(2.0, 2.0 * fwhm);
    c->size = sk_psf_stamp_size(c->psf);
    int need = 2 * (int)ceil(c->radius) + 1;
    if (c->size < need)
        c->size = need;
    return sk_parallel_for_each(n, threads, phot_one, c);
}

int sk_psf_photometry(const sk_psf *psf, const sk_image *img, const float *bg_level,
                      const float *var, const int32_t *segmap, double gain, long n,
                      const double *x, const double *y, int threads, double *flux,
                      double *flux_err, double *chi2)
{
    if (!var)
        return sk_error(SK_EINPUT, "PSF photometry: no variance map");
    phot_ctx c = {.psf = psf, .img = img, .level = bg_level, .var = var, .seg = segmap,
                  .gain = gain, .x = x, .y = y, .flux = flux, .err = flux_err, .chi2 = chi2};
    return phot_run(&c, n, threads);
}

/* The variance f^2 that, added to each value's noise variance var[k], makes
 * the deviations of v[0..n-1] from their median of unit scale, measured
 * robustly and on the low side only (median minus the 15.87th percentile of
 * (v - median) / sqrt(var + f^2)), since light of faint neighbours in the
 * aperture pushes values up; 0 when they are not wider than their noise.
 * scratch holds n values. */
static double excess_variance(const double *v, const double *var, long n, double *scratch)
{
    memcpy(scratch, v, sizeof *scratch * (size_t)n);
    double med = sk_median_double(scratch, n), lo = 0, hi = 1, sig;
    for (int it = 0; it < 50; it++) {
        double f2 = it == 0 ? 0 : 0.5 * (lo + hi);
        for (long k = 0; k < n; k++)
            scratch[k] = (v[k] - med) / sqrt(var[k] + f2 + 1e-30);
        qsort(scratch, (size_t)n, sizeof *scratch, sk_cmp_double);
        sig = sk_median_sorted(scratch, n) - scratch[(long)floor(0.1587 * (double)(n - 1) + 0.5)];
        if (it == 0 && sig <= 1)
            return 0;
        if (it > 0 && sig > 1)
            lo = f2;
        else if (it > 0)
            hi = f2;
    }
    return 0.5 * (lo + hi);
}

/* The error of the model's normalisation from the stars' differences e
 * (n of them, noise variances var, the model's own error f2 beyond): the
 * model is the weighted mean of its stars' images, normalised to the light
 * within the fit radius, so its noise moves every PSF-fit flux by the
 * weighted mean of the stars' (fit - aperture) differences; its variance
 * 1 / sum(1 / (var + f2)) over the stars within 5 sigma of the median. */
static double norm_error(const double *e, const double *var, long n, double f2, double *scratch)
{
    memcpy(scratch, e, sizeof *scratch * (size_t)n);
    double med = sk_median_double(scratch, n), sw = 0;
    for (long k = 0; k < n; k++) {
        double v = var[k] + f2;
        if (v > 0 && fabs(e[k] - med) <= 5.0 * sqrt(v))
            sw += 1.0 / v;
    }
    return sw > 0 ? sqrt(1.0 / sw) : 0.0;
}

/* The model's squared fractional flux error, measured on the image: over
 * the PSF stars (or, for a model without them, the sources of SNR >= 50)
 * the variance of (flux in the fit's pixels - PSF-fit flux) / flux beyond
 * what their noise explains (excess_variance): where the model's shape is
 * wrong the two estimates of the flux part; 0 with fewer than 5 stars.
 * norm (may be NULL): the fractional error of the model's normalisation
 * (norm_error; 0 with fewer than 5 stars). */
static int psf_model_error(phot_ctx c, const sk_source_list *l, const double *xy, int threads,
                           double *frac2, double *norm)
{
    *frac2 = 0;
    if (norm)
        *norm = 0;
    const sk_psf *psf = c.psf;
    int stars = psf->stars && psf->naccepted > 0;
    long n = stars ? psf->naccepted : l->n;
    double *buf = malloc(sizeof *buf * 8 * (size_t)(n ? n : 1));
    if (!buf)
        return sk_error(SK_EIO, "PSF photometry: out of memory");
    double *x = buf, *y = buf + n, *e = buf + 2 * n, *ev = buf + 6 * n, *own = buf + 7 * n;
    for (long k = 0; k < n; k++) {
        long s = stars ? psf->stars[k] : k;
        int in = s >= 0 && s < l->n;
        x[k] = in ? xy[s] : NAN;
        y[k] = in ? xy[l->n + s] : NAN;
        own[k] = in && c.own ? c.own[s] : 0.0;
    }
    if (c.own)
        c.own = own;
    c.x = x;
    c.y = y;
    c.flux = buf + 3 * n;
    c.err = buf + 4 * n;
    c.adiff = buf + 5 * n;
    c.adiff_var = ev;
    c.chi2 = NULL;
    c.model_frac2 = 0;
    int st = phot_run(&c, n, threads);
    long m = 0;
    for (long k = 0; !st && k < n; k++)
        if (isfinite(c.adiff[k]) && (stars || c.flux[k] >= 50.0 * c.err[k])) {
            e[m] = c.adiff[k];
            ev[m++] = c.adiff_var[k];
        }
    if (!st && m >= 5)
        *frac2 = excess_variance(e, ev, m, x);
    if (!st && m >= 5 && norm)
        *norm = norm_error(e, ev, m, *frac2, x);
    free(buf);
    return st;
}

/* PSF fluxes of the sources of l at their windowed centres (their
 * detection centres where those are undefined), with the context c
 * (model, image, outputs, data source) completed here: the pixel
 * variance, the background level's error, the noise factor and the
 * model's own flux error. */
static int phot_sources(phot_ctx c, const sk_background *bg, const sk_source_list *l, int threads,
                        double *norm)
{
    if (l->n == 0)
        return SK_OK;
    float *var = sk_pixel_variance_threads(c.img, bg, threads);
    double *xy = malloc(sizeof *xy * 2 * (size_t)l->n);
    if (!var || !xy) {
        free(var);
        free(xy);
        return sk_error(SK_EIO, "PSF photometry: out of memory");
    }
    for (long k = 0; k < l->n; k++) {
        const sk_source *s = &l->src[k];
        int win = isfinite(s->xwin) && isfinite(s->ywin);
        xy[k] = win ? s->xwin : s->x;
        xy[l->n + k] = win ? s->ywin : s->y;
    }
    double nf = sk_image_noise_factor(c.img);
    c.var = var;
    c.x = xy;
    c.y = xy + l->n;
    c.level_err = isfinite(bg->level_err) && bg->level_err > 0 ? bg->level_err : 0;
    c.nf2 = nf * nf;
    int st = psf_model_error(c, l, xy, threads, &c.model_frac2, norm);
    if (!st)
        sk_debug("%s: PSF photometry: the model's own flux error %.2f %%, the background "
                 "level's %.3f ADU", c.img->path ? c.img->path : "image", 100.0 * sqrt(c.model_frac2),
                 c.level_err);
    if (!st && c.flux)
        st = phot_run(&c, l->n, threads);
    free(var);
    free(xy);
    return st;
}

int sk_psf_photometry_sources(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                              const int32_t *segmap, double gain, const sk_source_list *l,
                              int threads, double *flux, double *flux_err, double *chi2)
{
    phot_ctx c = {.psf = psf, .img = img, .level = bg->level, .seg = segmap, .gain = gain,
                  .flux = flux, .err = flux_err, .chi2 = chi2};
    return phot_sources(c, bg, l, threads, NULL);
}

int sk_psf_norm_error(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                      const int32_t *segmap, double gain, const sk_source_list *l, int threads,
                      double *norm_err)
{
    *norm_err = 0;
    phot_ctx c = {.psf = psf, .img = img, .level = bg->level, .seg = segmap, .gain = gain};
    return phot_sources(c, bg, l, threads, norm_err);
}

int sk_psf_photometry_subtracted(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                                 const float *resid, const double *own, double gain,
                                 const sk_source_list *l, int threads, double *flux,
                                 double *flux_err, double *chi2)
{
    phot_ctx c = {.psf = psf, .img = img, .gain = gain, .flux = flux, .err = flux_err,
                  .chi2 = chi2, .resid = resid, .own = own};
    return phot_sources(c, bg, l, threads, NULL);
}

int sk_psf_add_columns(sk_table *t, const double *flux, const double *flux_err)
{
    sk_column *cf = sk_table_add_column(t, "FLUX_PSF", SK_COL_FLOAT, 1, "adu");
    if (!cf)
        return sk_error_context("source table: FLUX_PSF");
    long nrows = t->nrows;
    for (long k = 0; k < nrows; k++)
        sk_column_set(cf, k, 0, flux[k]);
    sk_column *ce = sk_table_add_column(t, "FLUXERR_PSF", SK_COL_FLOAT, 1, "adu");
    if (!ce)
        return sk_error_context("source table: FLUXERR_PSF");
    for (long k = 0; k < nrows; k++)
        sk_column_set(ce, k, 0, flux_err[k]);
    return SK_OK;
}
