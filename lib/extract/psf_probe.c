/* psf_probe.c: the search for unresolved light beside a point source: the strongest point source the residual of its PSF fit (with a free centre) holds within 2 FWHM, its significance and how much of its light the single-source fit took. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "core/parallel.h"
#include "psf_priv.h"
#include "extract_internal.h"
#include "psf_internal.h"

/* Neighbour offsets searched: from PROBE_MIN_FWHM to PROBE_MAX_FWHM image
 * FWHMs of the source; the fit's pixels reach PROBE_DATA_FWHM FWHMs (so a
 * neighbour at the outer offset is seen whole on its near side). */
#define PROBE_MIN_FWHM 0.5
#define PROBE_MAX_FWHM 2.0
#define PROBE_DATA_FWHM 3.0

typedef struct probe_ctx {
    const sk_psf *psf;
    const sk_image *img;
    const float *level, *var;
    const int32_t *seg;
    double gain, fwhm;
    int m;                  /* stamp side */
    const double *x, *y, *flux;
    double *snr, *bias;
} probe_ctx;

/* Solve the symmetric 3x3 system G c = u (G row by row); 0 when singular. */
static int solve3(const double G[9], const double u[3], double c[3])
{
    double a = G[0], b = G[1], cc = G[2], d = G[4], e = G[5], f = G[8];
    double A = d * f - e * e, B = cc * e - b * f, C = b * e - cc * d;
    double det = a * A + b * B + cc * C;
    if (!(fabs(det) > 0) || !isfinite(det))
        return 0;
    double D = a * f - cc * cc, E = b * cc - a * e, F = a * d - b * b;
    c[0] = (A * u[0] + B * u[1] + C * u[2]) / det;
    c[1] = (B * u[0] + D * u[1] + E * u[2]) / det;
    c[2] = (C * u[0] + E * u[1] + F * u[2]) / det;
    return 1;
}

/* The pixels of the fit of position k: usable, within the data radius,
 * not another object's; their stamp index and data (image less
 * background). Returns how many. */
static long probe_pixels(const probe_ctx *c, long k, long ix, long iy, int *sidx, double *d, double *wv)
{
    const sk_image *img = c->img;
    int m = c->m, h = m / 2;
    double rd = PROBE_DATA_FWHM * c->fwhm, r2 = rd * rd;
    int32_t self = 0;
    if (c->seg && ix >= 0 && iy >= 0 && ix < img->width && iy < img->height)
        self = c->seg[iy * img->width + ix];
    long n = 0;
    for (int j = 0; j < m; j++) {
        long yy = iy - h + j;
        if (yy < 0 || yy >= img->height)
            continue;
        for (int i = 0; i < m; i++) {
            long xx = ix - h + i;
            double dx = (double)xx - c->x[k], dy = (double)yy - c->y[k];
            if (xx < 0 || xx >= img->width || dx * dx + dy * dy > r2)
                continue;
            long q = yy * img->width + xx;
            if (!psf_pixel_usable(img, q) || !(c->var[q] > 0))
                continue;
            if (c->seg && c->seg[q] != 0 && c->seg[q] != self)
                continue;
            sidx[n] = j * m + i;
            d[n] = img->sci[q] - (c->level ? c->level[q] : 0.0f);
            wv[n] = c->var[q];
            n++;
        }
    }
    return n;
}

/* The star's fit (PSF and its two derivatives, weights w) to the pixels:
 * G its normal matrix, the residual left in d. 0 when it fails. */
static int probe_star_fit(const double *P, const double *Px, const double *Py, const int *sidx,
                          const double *w, long n, double *d, double G[9], double *amp)
{
    double u[3] = {0, 0, 0}, cf[3];
    memset(G, 0, sizeof(double) * 9);
    for (long t = 0; t < n; t++) {
        double s[3] = {P[sidx[t]], Px[sidx[t]], Py[sidx[t]]};
        for (int a = 0; a < 3; a++) {
            u[a] += w[t] * s[a] * d[t];
            for (int b = a; b < 3; b++)
                G[a * 3 + b] += w[t] * s[a] * s[b];
        }
    }
    G[3] = G[1];
    G[6] = G[2];
    G[7] = G[5];
    if (!solve3(G, u, cf) || !(cf[0] > 0))
        return 0;
    for (long t = 0; t < n; t++)
        d[t] -= cf[0] * P[sidx[t]] + cf[1] * Px[sidx[t]] + cf[2] * Py[sidx[t]];
    *amp = cf[0];
    return 1;
}

/* The strongest neighbour in the residual r: over integer offsets o
 * within [PROBE_MIN_FWHM, PROBE_MAX_FWHM] FWHM (a step of FWHM / 4 at
 * most), the joint fit's neighbour amplitude b = T'Wr / T'WT' (T' the
 * neighbour's template less its projection on the star's terms) and its
 * significance b sqrt(T'WT'); the star's amplitude falls by g0 b with it. */
static void probe_search(const probe_ctx *c, long k, const double *P, const double *Px,
                         const double *Py, const int *sidx, const double *w, const double *r, long n,
                         const double G[9], double amp)
{
    int m = c->m, step = (int)floor(c->fwhm / 4.0);
    if (step < 1)
        step = 1;
    int reach = (int)floor(PROBE_MAX_FWHM * c->fwhm);
    double rmin = PROBE_MIN_FWHM * c->fwhm, rmax = PROBE_MAX_FWHM * c->fwhm;
    double best = 0, best_bias = 0;
    for (int oy = -reach; oy <= reach; oy += step)
        for (int ox = -reach; ox <= reach; ox += step) {
            double rr = hypot(ox, oy);
            if (rr < rmin || rr > rmax)
                continue;
            double D = 0, N = 0, u[3] = {0, 0, 0}, g[3];
            for (long t = 0; t < n; t++) {
                int j = sidx[t] / m - oy, i = sidx[t] % m - ox;
                if (i < 0 || j < 0 || i >= m || j >= m)
                    continue;
                int q = j * m + i;
                double T = P[q], wT = w[t] * T;
                D += wT * T;
                N += wT * r[t];
                u[0] += wT * P[sidx[t]];
                u[1] += wT * Px[sidx[t]];
                u[2] += wT * Py[sidx[t]];
            }
            if (!(D > 0) || !solve3(G, u, g))
                continue;
            double Dp = D - (u[0] * g[0] + u[1] * g[1] + u[2] * g[2]);
            if (!(Dp > 1e-6 * D))
                continue;
            double b = N / Dp, s = N / sqrt(Dp);
            if (s > best) {
                best = s;
                best_bias = g[0] * b / (amp - g[0] * b);
            }
        }
    c->snr[k] = best;
    c->bias[k] = best_bias;
}

static int probe_one(long k, void *u)
{
    probe_ctx *c = u;
    c->snr[k] = c->bias[k] = NAN;
    double x = c->x[k], y = c->y[k];
    if (!isfinite(x) || !isfinite(y) || !(c->flux[k] > 0))
        return SK_OK;
    int m = c->m;
    long mm = (long)m * m, ix = lround(x), iy = lround(y);
    double *buf = malloc(sizeof *buf * (size_t)(6 * mm));
    int *sidx = malloc(sizeof *sidx * (size_t)mm);
    if (!buf || !sidx) {
        free(buf);
        free(sidx);
        return sk_error(SK_EIO, "PSF probe: out of memory");
    }
    double *P = buf, *Px = buf + mm, *Py = buf + 2 * mm, *d = buf + 3 * mm, *w = buf + 4 * mm;
    int st = sk_psf_image(c->psf, x, y, m, P);
    /* the derivatives by the centre: central differences on the stamp */
    for (int j = 0; !st && j < m; j++)
        for (int i = 0; i < m; i++) {
            long q = (long)j * m + i;
            Px[q] = 0.5 * ((i > 0 ? P[q - 1] : 0.0) - (i < m - 1 ? P[q + 1] : 0.0));
            Py[q] = 0.5 * ((j > 0 ? P[q - m] : 0.0) - (j < m - 1 ? P[q + m] : 0.0));
        }
    long n = st ? 0 : probe_pixels(c, k, ix, iy, sidx, d, w);
    /* weights: the background's and the source's noise */
    for (long t = 0; t < n; t++) {
        double mod = c->flux[k] * P[sidx[t]];
        w[t] = 1.0 / (w[t] + (c->gain > 0 && mod > 0 ? mod / c->gain : 0.0));
    }
    double G[9], amp;
    if (n > 10 && probe_star_fit(P, Px, Py, sidx, w, n, d, G, &amp))
        probe_search(c, k, P, Px, Py, sidx, w, d, n, G, amp);
    free(buf);
    free(sidx);
    return st;
}

int sk_psf_neighbour_probe(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                           const int32_t *segmap, double gain, long n, const double *x,
                           const double *y, const double *flux, int threads, double *snr,
                           double *bias)
{
    if (n <= 0)
        return SK_OK;
    float *var = sk_pixel_variance_threads(img, bg, threads);
    if (!var)
        return sk_error(SK_EIO, "PSF probe: out of memory");
    probe_ctx c = {.psf = psf, .img = img, .level = bg->level, .var = var, .seg = segmap,
                   .gain = gain, .fwhm = psf->fwhm_px > 0 ? psf->fwhm_px : 3.0,
                   .x = x, .y = y, .flux = flux, .snr = snr, .bias = bias};
    int need = 2 * (int)ceil((PROBE_DATA_FWHM + PROBE_MAX_FWHM) * c.fwhm) + 3;
    c.m = sk_psf_stamp_size(psf);
    if (c.m < need)
        c.m = need | 1;
    int st = sk_parallel_for_each(n, threads, probe_one, &c);
    free(var);
    return st;
}
