/* psf_phot.c: PSF-fit photometry: the flux of a point source at a given position as the weighted least-squares amplitude of the unit-sum PSF, with its error, for positions or a whole source list. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/psf.h"
#include "skystack/table.h"
#include "core/parallel.h"
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
} phot_ctx;

static int phot_one(long k, void *u)
{
    phot_ctx *c = u;
    const sk_image *img = c->img;
    double x = c->x[k], y = c->y[k];
    c->flux[k] = c->err[k] = NAN;
    if (c->chi2)
        c->chi2[k] = NAN;
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
    /* first pass: the amplitude with background weights */
    double swpp = 0, swpd = 0;
    for (long t = 0; t < n; t++) {
        long q = pix[t];
        double w = 1.0 / c->var[q], pp = p[t];
        double d = img->sci[q] - (c->level ? c->level[q] : 0.0f);
        swpp += w * pp * pp;
        swpd += w * pp * d;
    }
    if (n >= 2 && swpp > 0) {
        double a = swpd / swpp;
        double num = 0, chi = 0;
        for (long t = 0; t < n; t++) {
            long q = pix[t];
            double vb = c->var[q], pp = p[t];
            double mod = a * pp;
            double vt = vb + (c->gain > 0 && mod > 0 ? mod / c->gain : 0.0);
            num += pp * pp / (vb * vb) * vt;
            double d = img->sci[q] - (c->level ? c->level[q] : 0.0f);
            chi += (d - mod) * (d - mod) / vt;
        }
        c->flux[k] = a;
        c->err[k] = sqrt(num) / swpp;
        if (c->chi2)
            c->chi2[k] = chi / (double)(n - 1);
    }
    free(p);
    free(pix);
    return SK_OK;
}

int sk_psf_photometry(const sk_psf *psf, const sk_image *img, const float *bg_level,
                      const float *var, const int32_t *segmap, double gain, long n,
                      const double *x, const double *y, int threads, double *flux,
                      double *flux_err, double *chi2)
{
    if (!var)
        return sk_error(SK_EINPUT, "PSF photometry: no variance map");
    double fwhm = psf->fwhm_px > 0 ? psf->fwhm_px : 3.0;
    phot_ctx c = {psf, img, bg_level, var, segmap, gain, fmax(2.0, 2.0 * fwhm), 0, x, y,
                  flux, flux_err, chi2};
    c.size = sk_psf_stamp_size(psf);
    int need = 2 * (int)ceil(c.radius) + 1;
    if (c.size < need)
        c.size = need;
    return sk_parallel_for_each(n, threads, phot_one, &c);
}

int sk_psf_photometry_sources(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                              const int32_t *segmap, double gain, const sk_source_list *l,
                              int threads, double *flux, double *flux_err)
{
    if (l->n == 0)
        return SK_OK;
    float *var = sk_pixel_variance_threads(img, bg, threads);
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
    int st = sk_psf_photometry(psf, img, bg->level, var, segmap, gain, l->n, xy, xy + l->n,
                               threads, flux, flux_err, NULL);
    free(var);
    free(xy);
    return st;
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
