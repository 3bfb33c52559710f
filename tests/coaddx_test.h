/* coaddx_test.h: synthetic aligned inputs for the tests of the coadds in
 * coaddx.h: analytic PSFs integrated over pixels (imsim's renderer), stars
 * of known flux, Gaussian noise, and measurements (aperture and PSF-fit
 * fluxes, FWHM, robust scatter). Header-only, for the unit tests. */
#ifndef SK_COADDX_TEST_H
#define SK_COADDX_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/coaddx.h"
#include "skystack/sim.h"
#include "coadd/coaddx_internal.h"
#include "sim/sim_internal.h"

/* A PSF that may vary across the image: FWHM = fwhm0 + dfwhm_dx * (x - x0). */
typedef struct tpsf {
    sk_sim_psf base;
    double dfwhm_dx, x0;
} tpsf;

static inline tpsf tpsf_moffat(double fwhm, double beta) __attribute__((unused));
static inline tpsf tpsf_moffat(double fwhm, double beta)
{
    tpsf p;
    memset(&p, 0, sizeof p);
    p.base.model = SK_SIM_MOFFAT;
    p.base.fwhm_px = fwhm;
    p.base.beta = beta;
    p.base.radius_fwhm = 4.0;
    return p;
}

static inline tpsf tpsf_gauss(double fwhm) __attribute__((unused));
static inline tpsf tpsf_gauss(double fwhm)
{
    tpsf p = tpsf_moffat(fwhm, 3.0);
    p.base.model = SK_SIM_GAUSSIAN;
    return p;
}

static inline sk_sim_psf tpsf_at(const tpsf *p, double x)
{
    sk_sim_psf s = p->base;
    s.fwhm_px = p->base.fwhm_px + p->dfwhm_dx * (x - p->x0);
    return s;
}

/* sk_psf_stamp_fn for a tpsf. */
static inline int tpsf_stamp(void *ctx, double x, double y, long size, float *stamp)
    __attribute__((unused));
static inline int tpsf_stamp(void *ctx, double x, double y, long size, float *stamp)
{
    const tpsf *p = ctx;
    sk_sim_psf s = tpsf_at(p, x);
    double *d = calloc((size_t)(size * size), sizeof(double));
    if (!d)
        return 1;
    sk_sim_psf_add(&s, 1.0, (double)(size / 2), (double)(size / 2), d, size, size, 0, size);
    for (long i = 0; i < size * size; i++)
        stamp[i] = (float)d[i];
    free(d);
    (void)y;
    return 0;
}

/* An aligned input over whole planes of `height` rows (row 0 first), the
 * test PSF p as its PSF, flux scale 1. */
static inline void aligned_whole(sk_aligned_input *in, float *sci, float *wgt, uint16_t *flg,
                                 long height, tpsf *p) __attribute__((unused));
static inline void aligned_whole(sk_aligned_input *in, float *sci, float *wgt, uint16_t *flg,
                                 long height, tpsf *p)
{
    memset(in, 0, sizeof *in);
    in->sci = sci;
    in->weight = wgt;
    in->flags = flg;
    in->nrows = height;
    in->psf = tpsf_stamp;
    in->psf_ctx = p;
    in->flux_scale = 1.0;
}

/* Add `flux` of the PSF at (x, y) into a float image. */
static inline void add_star(const tpsf *p, double flux, double x, double y, float *img, long w,
                            long h) __attribute__((unused));
static inline void add_star(const tpsf *p, double flux, double x, double y, float *img, long w,
                            long h)
{
    sk_sim_psf s = tpsf_at(p, x);
    double ext = sk_sim_psf_extent_px(&s) + 2.0;
    long x0 = (long)floor(x - ext), y0 = (long)floor(y - ext);
    long n = (long)(2 * ext) + 3;
    double *d = calloc((size_t)(n * n), sizeof(double));
    sk_sim_psf_add(&s, flux, x - (double)x0, y - (double)y0, d, n, n, 0, n);
    for (long j = 0; j < n; j++)
        for (long i = 0; i < n; i++) {
            long xx = x0 + i, yy = y0 + j;
            if (xx >= 0 && xx < w && yy >= 0 && yy < h)
                img[yy * w + xx] += (float)d[j * n + i];
        }
    free(d);
}

/* Gaussian noise of rms sigma added to an image (seeded). */
static inline void add_noise(float *img, long npix, double sigma, uint64_t seed,
                             uint64_t stream) __attribute__((unused));
static inline void add_noise(float *img, long npix, double sigma, uint64_t seed, uint64_t stream)
{
    sk_rng r;
    sk_rng_init(&r, seed, stream, 0);
    for (long i = 0; i < npix; i++)
        img[i] += (float)(sigma * sk_rng_gauss(&r));
}

/* Sum of img over a circle of radius r around (x, y). */
static inline double aperture_sum(const float *img, long w, long h, double x, double y, double r)
    __attribute__((unused));
static inline double aperture_sum(const float *img, long w, long h, double x, double y, double r)
{
    double s = 0.0;
    for (long yy = (long)floor(y - r); yy <= (long)ceil(y + r); yy++)
        for (long xx = (long)floor(x - r); xx <= (long)ceil(x + r); xx++) {
            if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                continue;
            if ((xx - x) * (xx - x) + (yy - y) * (yy - y) <= r * r)
                s += img[yy * w + xx];
        }
    return s;
}

/* PSF-weighted flux estimate sum(P I) / sum(P^2) with a stamp centred on
 * pixel (cx, cy). */
static inline double psf_flux(const float *img, long w, long h, long cx, long cy,
                              const float *stamp, long size) __attribute__((unused));
static inline double psf_flux(const float *img, long w, long h, long cx, long cy,
                              const float *stamp, long size)
{
    double num = 0.0, den = 0.0;
    long hs = size / 2;
    for (long j = 0; j < size; j++)
        for (long i = 0; i < size; i++) {
            long xx = cx - hs + i, yy = cy - hs + j;
            if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                continue;
            num += stamp[j * size + i] * img[yy * w + xx];
            den += (double)stamp[j * size + i] * stamp[j * size + i];
        }
    return num / den;
}

/* FWHM of a stamp: diameter of the circle with the area above half the
 * peak, on a 8x finer bilinear grid. */
static inline double stamp_fwhm(const float *s, long size) __attribute__((unused));
static inline double stamp_fwhm(const float *s, long size)
{
    float peak = 0.0f;
    for (long i = 0; i < size * size; i++)
        if (s[i] > peak)
            peak = s[i];
    const int sub = 8;
    double area = 0.0;
    for (long y = 0; y < size - 1; y++)
        for (long x = 0; x < size - 1; x++) {
            double a = s[y * size + x], b = s[y * size + x + 1], c = s[(y + 1) * size + x],
                   d = s[(y + 1) * size + x + 1];
            for (int j = 0; j < sub; j++)
                for (int i = 0; i < sub; i++) {
                    double tx = (i + 0.5) / sub, ty = (j + 0.5) / sub;
                    double v = (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
                    if (v >= 0.5 * peak)
                        area += 1.0 / (sub * sub);
                }
        }
    return 2.0 * sqrt(area / M_PI);
}

/* Cut a size x size stamp centred on pixel (cx, cy). */
static inline void cut_stamp(const float *img, long w, long h, long cx, long cy, long size,
                             float *out) __attribute__((unused));
static inline void cut_stamp(const float *img, long w, long h, long cx, long cy, long size,
                             float *out)
{
    long hs = size / 2;
    for (long j = 0; j < size; j++)
        for (long i = 0; i < size; i++) {
            long xx = cx - hs + i, yy = cy - hs + j;
            out[j * size + i] =
                (xx >= 0 && yy >= 0 && xx < w && yy < h) ? img[yy * w + xx] : 0.0f;
        }
}

static int cmp_double_(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of n doubles (copied). */
static inline double median_d(const double *v, long n) __attribute__((unused));
static inline double median_d(const double *v, long n)
{
    double *c = malloc(sizeof(double) * (size_t)n);
    memcpy(c, v, sizeof(double) * (size_t)n);
    qsort(c, (size_t)n, sizeof(double), cmp_double_);
    double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return m;
}

/* Plain standard deviation of the values where mask[i] (NULL: all). */
static inline double std_masked(const float *v, const uint8_t *mask, long n, double *mean_out)
    __attribute__((unused));
static inline double std_masked(const float *v, const uint8_t *mask, long n, double *mean_out)
{
    double s = 0.0, s2 = 0.0;
    long c = 0;
    for (long i = 0; i < n; i++)
        if (!mask || mask[i]) {
            s += v[i];
            s2 += (double)v[i] * v[i];
            c++;
        }
    double m = c ? s / c : 0.0;
    if (mean_out)
        *mean_out = m;
    return c > 1 ? sqrt((s2 - c * m * m) / (c - 1)) : 0.0;
}

#endif
