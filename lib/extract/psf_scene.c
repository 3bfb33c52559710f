/* psf_scene.c: many point sources at once: their PSF stamps, the image of their models, and their fluxes fitted simultaneously by Gauss-Seidel sweeps (least squares over the pixels near any of them, each model over its whole stamp). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/psf.h"
#include "core/parallel.h"
#include "psf_priv.h"
#include "psf_internal.h"
#include "psf_scene_priv.h"

void psf_scene_free(psf_scene *s)
{
    free(s->stamp);
    free(s->cx);
    free(s->x);
    free(s->flux);
    free(s->live);
    memset(s, 0, sizeof *s);
}

typedef struct {
    const sk_psf *psf;
    psf_scene *s;
} stamp_job;

static int stamp_one(long k, void *u)
{
    stamp_job *J = u;
    psf_scene *s = J->s;
    long mm = (long)s->m * s->m;
    s->live[k] = 0;
    if (!isfinite(s->x[k]) || !isfinite(s->y[k]))
        return SK_OK;
    double *p = malloc(sizeof *p * (size_t)mm);
    if (!p)
        return sk_error(SK_EIO, "PSF scene: out of memory");
    int st = sk_psf_image(J->psf, s->x[k], s->y[k], s->m, p);
    if (st == SK_EINPUT) {
        /* a model that cannot be made there (sums to 0): no stamp */
        sk_error_clear();
        st = SK_OK;
    } else if (!st) {
        float *o = s->stamp + (size_t)k * (size_t)mm;
        for (long i = 0; i < mm; i++)
            o[i] = (float)p[i];
        s->cx[k] = lround(s->x[k]);
        s->cy[k] = lround(s->y[k]);
        s->live[k] = 1;
    }
    free(p);
    return st;
}

int psf_scene_make(const sk_psf *psf, long n, const double *x, const double *y, const double *flux,
                   int threads, psf_scene *s)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->m = sk_psf_stamp_size(psf);
    size_t nn = (size_t)(n ? n : 1), mm = (size_t)s->m * (size_t)s->m;
    s->stamp = malloc(sizeof *s->stamp * nn * mm);
    s->cx = malloc(sizeof *s->cx * 2 * nn);
    s->x = malloc(sizeof *s->x * 2 * nn);
    s->flux = malloc(sizeof *s->flux * nn);
    s->live = calloc(nn, 1);
    if (!s->stamp || !s->cx || !s->x || !s->flux || !s->live) {
        psf_scene_free(s);
        return sk_error(SK_EIO, "PSF scene: out of memory for %ld stamps of %dx%d", n, s->m, s->m);
    }
    s->cy = s->cx + nn;
    s->y = s->x + nn;
    for (long k = 0; k < n; k++) {
        s->x[k] = x[k];
        s->y[k] = y[k];
        s->flux[k] = flux && isfinite(flux[k]) ? flux[k] : 0.0;
    }
    stamp_job J = {psf, s};
    int st = sk_parallel_for_each(n, threads, stamp_one, &J);
    if (st)
        psf_scene_free(s);
    return st;
}

/* The part of stamp k on a width x height image: stamp columns [*i0, *i1)
 * and rows [*j0, *j1); the image pixel of stamp pixel (i, j) is
 * (ox + i, oy + j). */
static void stamp_clip(const psf_scene *s, long k, long w, long h, int *i0, int *i1, int *j0, int *j1,
                       long *ox, long *oy)
{
    int m = s->m;
    *ox = s->cx[k] - m / 2;
    *oy = s->cy[k] - m / 2;
    *i0 = *ox < 0 ? (int)-*ox : 0;
    *j0 = *oy < 0 ? (int)-*oy : 0;
    *i1 = *ox + m > w ? (int)(w - *ox) : m;
    *j1 = *oy + m > h ? (int)(h - *oy) : m;
}

void psf_scene_paint(const psf_scene *s, const uint8_t *which, double sign, float *img, long w, long h)
{
    long mm = (long)s->m * s->m;
    for (long k = 0; k < s->n; k++) {
        if (!s->live[k] || (which && !which[k]) || s->flux[k] == 0)
            continue;
        int i0, i1, j0, j1;
        long ox, oy;
        stamp_clip(s, k, w, h, &i0, &i1, &j0, &j1, &ox, &oy);
        const float *p = s->stamp + (size_t)k * (size_t)mm;
        float f = (float)(sign * s->flux[k]);
        for (int j = j0; j < j1; j++)
            for (int i = i0; i < i1; i++)
                img[(oy + j) * w + ox + i] += f * p[(long)j * s->m + i];
    }
}

/* The pixels of the fit: usable, with a variance, within rfit of a live
 * source. w*h bytes, malloc'd. */
static uint8_t *fit_pixels(const psf_scene *s, const sk_image *img, const float *var, double rfit)
{
    long w = img->width, h = img->height;
    uint8_t *u = calloc((size_t)(w * h), 1);
    if (!u)
        return NULL;
    long r = (long)ceil(rfit);
    for (long k = 0; k < s->n; k++) {
        if (!s->live[k])
            continue;
        for (long y = lround(s->y[k]) - r; y <= lround(s->y[k]) + r; y++) {
            if (y < 0 || y >= h)
                continue;
            for (long x = lround(s->x[k]) - r; x <= lround(s->x[k]) + r; x++) {
                double dx = (double)x - s->x[k], dy = (double)y - s->y[k];
                long q = y * w + x;
                if (x >= 0 && x < w && dx * dx + dy * dy <= rfit * rfit && var[q] > 0 &&
                    psf_pixel_usable(img, q))
                    u[q] = 1;
            }
        }
    }
    return u;
}

/* Sum over stamp k's fit pixels of P^2 / var (sq) or of P R / var. */
static double stamp_dot(const psf_scene *s, long k, const uint8_t *u, const float *var, const float *r,
                        long w, long h)
{
    int i0, i1, j0, j1;
    long ox, oy;
    stamp_clip(s, k, w, h, &i0, &i1, &j0, &j1, &ox, &oy);
    const float *p = s->stamp + (size_t)k * (size_t)s->m * (size_t)s->m;
    double sum = 0;
    for (int j = j0; j < j1; j++)
        for (int i = i0; i < i1; i++) {
            long q = (oy + j) * w + ox + i;
            if (u[q]) {
                double pp = p[(long)j * s->m + i];
                sum += pp * (r ? r[q] : pp) / var[q];
            }
        }
    return sum;
}

int psf_scene_fit(psf_scene *s, const sk_image *img, const float *var, double rfit, int max_sweeps,
                  float *resid, int *sweeps)
{
    long w = img->width, h = img->height;
    *sweeps = 0;
    uint8_t *u = fit_pixels(s, img, var, rfit);
    double *den = malloc(sizeof *den * (size_t)(s->n ? s->n : 1));
    if (!u || !den) {
        free(u);
        free(den);
        return sk_error(SK_EIO, "PSF scene: out of memory for the fit of %ld sources", s->n);
    }
    for (long k = 0; k < s->n; k++) {
        den[k] = s->live[k] ? stamp_dot(s, k, u, var, NULL, w, h) : 0;
        if (!(den[k] > 0))
            s->flux[k] = 0;
    }
    psf_scene_paint(s, NULL, -1.0, resid, w, h);
    long mm = (long)s->m * s->m;
    for (int it = 0; it < max_sweeps; it++) {
        /* the sources whose flux changes by more than 5 % of its noise */
        long moving = 0;
        for (long k = 0; k < s->n; k++) {
            if (!(den[k] > 0))
                continue;
            double d = stamp_dot(s, k, u, var, resid, w, h) / den[k];
            if (d == 0 || !isfinite(d))
                continue;
            s->flux[k] += d;
            moving += fabs(d) * sqrt(den[k]) > 0.05;
            int i0, i1, j0, j1;
            long ox, oy;
            stamp_clip(s, k, w, h, &i0, &i1, &j0, &j1, &ox, &oy);
            const float *p = s->stamp + (size_t)k * (size_t)mm;
            for (int j = j0; j < j1; j++)
                for (int i = i0; i < i1; i++)
                    resid[(oy + j) * w + ox + i] -= (float)(d * p[(long)j * s->m + i]);
        }
        *sweeps = it + 1;
        if (moving <= s->n / 1000)
            break;
    }
    free(u);
    free(den);
    return SK_OK;
}
