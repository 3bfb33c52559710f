/* fwhm.c: the image FWHM from the data: the mode of the FWHMs of the bright, unsaturated, round peaks of the significance image, each from a Gaussian fitted to its core, the core's radius iterated with the estimate until it settles. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/parallel.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/log.h"
#include "extract_priv.h"
#include "numeric/linsolve.h"
#include "numeric/stats.h"
#include "extract_internal.h"

#define FWHM_PER_SIGMA_PX 2.3548200450309493
#define PEAK_MIN_SIGNIF 20.0   /* candidate peaks: this many filtered sigmas */
#define MAX_PEAKS 2000         /* the brightest that many candidates */

typedef struct {
    long i;        /* pixel index of the peak */
    float signif;
} peak_t;

static int cmp_peak_desc(const void *a, const void *b)
{
    const peak_t *p = a, *q = b;
    if (p->signif != q->signif)
        return p->signif > q->signif ? -1 : 1;
    return (p->i > q->i) - (p->i < q->i);
}

/* Is pixel i of the significance image the strict maximum of its
 * (2r+1)^2 box (ties to the lower index), and is that box clear of the
 * border, of pixels without data and of saturated pixels? */
static int clean_peak(const sk_image *img, const float *sig, long i, int r)
{
    long w = img->width, h = img->height, x = i % w, y = i / w;
    if (x < r || y < r || x >= w - r || y >= h - r)
        return 0;
    float v = sig[i];
    for (long dy = -r; dy <= r; dy++)
        for (long dx = -r; dx <= r; dx++) {
            long j = i + dy * w + dx;
            if (!sk_pixel_usable(img, j) || (img->flags[j] & SK_FLAG_SATURATED))
                return 0;
            if (j != i && (sig[j] > v || (sig[j] == v && j < i)))
                return 0;
        }
    return 1;
}

/* The candidate peaks, brightest first (at most MAX_PEAKS); r is the
 * half-side of the box a peak must dominate. */
static long find_peaks(const sk_image *img, const float *sig, int r, peak_t **out)
{
    long w = img->width, h = img->height, cap = 256, n = 0;
    peak_t *p = malloc(sizeof *p * (size_t)cap);
    if (!p)
        return -1;
    for (long y = r; y < h - r; y++)
        for (long x = r; x < w - r; x++) {
            long i = y * w + x;
            if (!(sig[i] >= PEAK_MIN_SIGNIF) || !clean_peak(img, sig, i, r))
                continue;
            if (n == cap) {
                peak_t *q = realloc(p, sizeof *p * (size_t)(cap *= 2));
                if (!q) {
                    free(p);
                    return -1;
                }
                p = q;
            }
            p[n++] = (peak_t){ i, sig[i] };
        }
    qsort(p, (size_t)n, sizeof *p, cmp_peak_desc);
    *out = p;
    return n > MAX_PEAKS ? MAX_PEAKS : n;
}

void sk_pix_gauss_row(long t0, long n, double c, double sg, double *out)
{
    double k = 1.0 / (M_SQRT2 * sg);
    double lo = erf(((double)t0 - 0.5 - c) * k);
    for (long j = 0; j < n; j++) {
        double hi = erf(((double)(t0 + j) + 0.5 - c) * k);
        out[j] = 0.5 * (hi - lo);
        lo = hi;
    }
}

#define NPAR 5  /* amplitude, x0, y0, sigma, constant */

/* The model is separable: along each axis, at the 2R+1 pixels of the
 * fit, the pixel-integrated Gaussian at the centre c and sigma s, and at
 * c +- h and s +- h (the central differences of the derivatives). */
#define DIFF_H 1e-4
#define AXIS_MAX (2 * 31 + 1) /* 2R+1 for R up to ceil(2 SK_FWHM_MAX_PX) = 30, and a margin */

typedef struct {
    double g[AXIS_MAX], cp[AXIS_MAX], cm[AXIS_MAX], sp[AXIS_MAX], sm[AXIS_MAX];
} axis_t;

static void axis_fill(axis_t *a, long t0, long n, double c, double sg)
{
    const double h = DIFF_H;
    sk_pix_gauss_row(t0, n, c, sg, a->g);
    sk_pix_gauss_row(t0, n, c + h, sg, a->cp);
    sk_pix_gauss_row(t0, n, c - h, sg, a->cm);
    sk_pix_gauss_row(t0, n, c, sg + h, a->sp);
    sk_pix_gauss_row(t0, n, c, sg - h, a->sm);
}

/* Model and its derivatives (by central differences in x0, y0, sigma) at
 * the pixel of column ix and row iy of the axis tables, for parameters q. */
static double core_model(const double *q, const axis_t *ax, long ix, const axis_t *ay, long iy,
                         double *d)
{
    const double h = DIFF_H;
    double gx = ax->g[ix], gy = ay->g[iy];
    double m = q[0] * gx * gy + q[4];
    d[0] = gx * gy;
    d[1] = q[0] * gy * (ax->cp[ix] - ax->cm[ix]) / (2 * h);
    d[2] = q[0] * gx * (ay->cp[iy] - ay->cm[iy]) / (2 * h);
    d[3] = q[0] * (ax->sp[ix] * ay->sp[iy] - ax->sm[ix] * ay->sm[iy]) / (2 * h);
    d[4] = 1;
    return m;
}

/* sk_normal_add(ata, atb, NPAR, 1, d, 1.0, &r) written out for the core
 * fit, so that the compiler unrolls it in the pixel loop: the same sums
 * in the same order (a weight of 1 multiplies exactly). */
static inline void normal_add_core(double *ata, double *atb, const double *d, double r)
{
    for (int i = 0; i < NPAR; i++) {
        atb[i] += 1.0 * d[i] * r;
        for (int j = 0; j <= i; j++)
            ata[i * NPAR + j] += 1.0 * d[i] * d[j];
    }
}

/* The FWHM of the core of the star at peak pixel i: a pixel-integrated
 * circular Gaussian plus a constant (the light of neighbours and wings),
 * fitted by Gauss-Newton to the pixels within rfit of the peak; the
 * profile's core sets its half maximum, whatever its wings. A peak near
 * the border is refused, or with `edges` fitted on the pixels of the
 * image. 0 when the fit fails or leaves the peak. */
static double peak_fwhm(const sk_image *img, const sk_background *bg, long i, double f, int edges)
{
    long w = img->width, h = img->height, px = i % w, py = i / w;
    double rfit = 2 * f < 3 ? 3 : 2 * f;
    long R = (long)ceil(rfit);
    if (!edges && (px < R || py < R || px >= w - R || py >= h - R))
        return 0;
    double pk = img->sci[i] - bg->level[i];
    double q[NPAR] = { pk * 2 * M_PI * (f / FWHM_PER_SIGMA_PX) * (f / FWHM_PER_SIGMA_PX),
                       (double)px, (double)py, f / FWHM_PER_SIGMA_PX, 0 };
    if (2 * R + 1 > AXIS_MAX)
        return 0;
    axis_t ax, ay;
    for (int it = 0; it < 30; it++) {
        double ata[NPAR * NPAR] = { 0 }, atb[NPAR] = { 0 }, d[NPAR];
        long n = 0;
        axis_fill(&ax, px - R, 2 * R + 1, q[1], q[3]);
        axis_fill(&ay, py - R, 2 * R + 1, q[2], q[3]);
        for (long y = py - R; y <= py + R; y++)
            for (long x = px - R; x <= px + R; x++) {
                if (x < 0 || y < 0 || x >= w || y >= h)
                    continue;
                long j = y * w + x;
                double dx = (double)(x - px), dy = (double)(y - py);
                if (dx * dx + dy * dy > rfit * rfit || !sk_pixel_usable(img, j))
                    continue;
                double r = img->sci[j] - bg->level[j] -
                           core_model(q, &ax, x - (px - R), &ay, y - (py - R), d);
                normal_add_core(ata, atb, d, r);
                n++;
            }
        if (n < 2 * NPAR || sk_cholesky_solve(ata, atb, NPAR, 1, 1e-12) != 0)
            return 0;
        /* steps limited to a fraction of the width (a new fit that
           overshoots is pulled back rather than lost) */
        double lim = 0.5 * q[3];
        for (int k = 1; k <= 3; k++)
            atb[k] = atb[k] > lim ? lim : atb[k] < -lim ? -lim : atb[k];
        for (int k = 0; k < NPAR; k++)
            q[k] += atb[k];
        if (!(q[0] > 0) || !(q[3] > 0.2) || q[3] > 3 * f ||
            hypot(q[1] - (double)px, q[2] - (double)py) > 1.0)
            return 0;
        if (fabs(atb[1]) + fabs(atb[2]) < 1e-4 && fabs(atb[3]) < 1e-4 * q[3])
            return FWHM_PER_SIGMA_PX * q[3];
    }
    return 0;
}

double sk_core_fwhm_at(const sk_image *img, const sk_background *bg, double x_px, double y_px,
                       double guess_px)
{
    if (!isfinite(x_px) || !isfinite(y_px) || !(guess_px > 0))
        return 0;
    long ix = lround(x_px), iy = lround(y_px);
    if (ix < 0 || iy < 0 || ix >= img->width || iy >= img->height)
        return 0;
    return peak_fwhm(img, bg, iy * img->width + ix, guess_px, 1);
}

/* The mode of v[0..n-1] (sorted here): the median of the values within
 * 15 % of the centre of the densest +-10 % window. */
static double fwhm_mode(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, sk_cmp_double);
    long best = 0, bi = sk_densest_window(v, n, SK_WINDOW_RATIO, 1.2, &best);
    double centre = v[bi + best / 2];
    long m = 0;
    for (long k = 0; k < n; k++)
        if (fabs(v[k] - centre) <= 0.15 * centre)
            v[m++] = v[k];
    return sk_median_sorted(v, m);
}

/* The peaks' FWHMs at one window, one peak per task, each into its own
 * slot (the order of the results does not depend on the threads). */
typedef struct {
    const sk_image *img;
    const sk_background *bg;
    const peak_t *pk;
    double f;
    double *e;
} peaks_job;

static int fit_peak(long k, void *user)
{
    peaks_job *J = user;
    J->e[k] = peak_fwhm(J->img, J->bg, J->pk[k].i, J->f, 0);
    return SK_OK;
}

int sk_fwhm_from_peaks(const sk_image *img, const sk_background *bg, const float *signif,
                       double guess_px, int threads, double *fwhm_px, double *core_px)
{
    *fwhm_px = 0;
    *core_px = 0;
    double f = guess_px < SK_FWHM_MIN_PX ? SK_FWHM_MIN_PX : guess_px > SK_FWHM_MAX_PX ? SK_FWHM_MAX_PX
                                                                                       : guess_px;
    peak_t *pk = NULL;
    /* a peak dominates the box of the guessed core: blends of two close
       stars of like brightness drop out, fainter neighbours further out
       are left to the mode */
    int r = (int)ceil(0.5 * f) < 2 ? 2 : (int)ceil(0.5 * f);
    long n = find_peaks(img, signif, r, &pk);
    if (n < 0)
        return sk_error(SK_EIO, "extraction: out of memory for the FWHM's peaks");
    double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    double *e = malloc(sizeof *e * (size_t)(n ? n : 1));
    if (!v || !e) {
        free(v);
        free(e);
        free(pk);
        return sk_error(SK_EIO, "extraction: out of memory for the FWHM's peaks");
    }
    for (int iter = 0; iter < 12 && n >= 5; iter++) {
        peaks_job J = {img, bg, pk, f, e};
        (void)sk_parallel_for_each(n, threads, fit_peak, &J); /* fit_peak cannot fail */
        long m = 0;
        for (long k = 0; k < n; k++)
            if (e[k] > SK_FWHM_CORE_MIN_PX && e[k] < 2 * SK_FWHM_MAX_PX)
                v[m++] = e[k];
        if (m < 5)
            break;
        double est = fwhm_mode(v, m);
        *core_px = est;
        if (est < SK_FWHM_MIN_PX)
            est = SK_FWHM_MIN_PX;
        if (est > SK_FWHM_MAX_PX)
            est = SK_FWHM_MAX_PX;
        sk_debug("extraction: FWHM %.3f px from %ld of %ld peaks, window %.3f px", est, m, n, f);
        double change = fabs(est / f - 1);
        f = est;
        *fwhm_px = f;
        if (change < 0.005)
            break;
    }
    free(v);
    free(e);
    free(pk);
    return SK_OK;
}
