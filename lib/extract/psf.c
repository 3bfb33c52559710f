/* psf.c: the PSF model of an image: star selection, a pixel-basis model with polynomial variation fitted to the stars (stacking, then a forward model solved by conjugate gradients, with star clipping), evaluation at any position with sub-pixel centring, and FWHM. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/log.h"
#include "skystack/psf.h"
#include "core/parallel.h"
#include "numeric/linsolve.h"
#include "params_priv.h"
#include "numeric/stats.h"
#include "psf_priv.h"
#include "extract_internal.h"
#include "psf_internal.h"
#include "core/vectorise.h"

#define NTERMS(d) (((d) + 1) * ((d) + 2) / 2)

/* The rendering loops are written for the vectoriser (pixel-inner loops
 * of one operation each, same arithmetic in every lane), hence -O3 and an
 * AVX2 variant whatever the build's level: the results do not change. */
#define PSF_VECTOR SK_VECTORISE

/* Relative accuracy of the model (as PSFEx's PSF_ACCURACY): in the fit's
 * weights every pixel's variance gets (PSF_ACCURACY * its value)^2 added,
 * so that the brightest stars do not alone decide the model, nor are
 * clipped for the model's small imperfections. */
#define PSF_ACCURACY 0.01

/* Convergence of the model's conjugate gradients (cg_refine). */
#define CG_TOLERANCE 1e-10

/* Radius (in FWHM) within which the PSF varies over the image. */
#define VAR_RADIUS_FWHM 1.5

static double fit_variance(double vb, double mod, double gain)
{
    double am = fabs(mod) * PSF_ACCURACY;
    return vb + (gain > 0 && mod > 0 ? mod / gain : 0.0) + am * am;
}

/* ---- parameters ---- */

void sk_psf_params_default(sk_psf_params *p)
{
    memset(p, 0, sizeof *p);
    p->enabled = 1;
    p->degree = 2;
    p->min_snr = 50.0;
    p->size_px = 0;
    p->oversampling = 0.0;
    p->max_ellipticity = 0.3;
    p->locus_width = 0.2;
    p->clip_sigma = 3.0;
    p->max_stars = 500;
    p->gain = 0.0;
}

int sk_psf_params_from_json(const json_t *root, sk_psf_params *p)
{
    const json_t *sec = sk_extraction_section(root, "psf");
    if (!sec)
        return SK_OK;
    long degree = p->degree, size = p->size_px, max_stars = p->max_stars;
    const char *path = "extraction.psf";
    const json_t *en = json_object_get(sec, "enabled");
    if (en && !json_is_null(en)) {
        if (!json_is_boolean(en))
            return sk_error(SK_EINPUT, "extraction.psf.enabled: not a boolean");
        p->enabled = json_is_true(en);
    }
    int st = sk_section_long(sec, path, "degree", 0, 8, &degree);
    if (!st) st = sk_section_num(sec, path, "min_snr", 1e-3, 1e12, &p->min_snr);
    if (!st) st = sk_section_long(sec, path, "size_px", 0, 4095, &size);
    if (!st) st = sk_section_num(sec, path, "oversampling", 0.0, 8.0, &p->oversampling);
    if (!st) st = sk_section_num(sec, path, "max_ellipticity", 0.0, 1.0, &p->max_ellipticity);
    if (!st) st = sk_section_num(sec, path, "locus_width", 0.01, 0.9, &p->locus_width);
    if (!st) st = sk_section_num(sec, path, "clip_sigma", 0.5, 1e6, &p->clip_sigma);
    if (!st) st = sk_section_long(sec, path, "max_stars", 3, 1000000000L, &max_stars);
    if (st)
        return st;
    if (size > 0 && size % 2 == 0)
        return sk_error(SK_EINPUT, "extraction.psf.size_px: %ld must be odd (or 0 for automatic)", size);
    if (size > 0 && size < 5)
        return sk_error(SK_EINPUT, "extraction.psf.size_px: %ld is smaller than 5", size);
    if (p->oversampling > 0 && p->oversampling < 1)
        return sk_error(SK_EINPUT, "extraction.psf.oversampling: %g must be 0 (automatic) or >= 1",
                        p->oversampling);
    p->degree = (int)degree;
    p->size_px = (int)size;
    p->max_stars = max_stars;
    return SK_OK;
}

/* ---- the model and its evaluation ---- */

void sk_psf_free(sk_psf *psf)
{
    if (!psf)
        return;
    free(psf->comp);
    free(psf->stars);
    free(psf->star_x);
    free(psf->star_y);
    free(psf->star_flux);
    free(psf->star_chi2);
    free(psf);
}

/* Polynomial basis at (x, y) in PSFEx's term order. */
static void psf_basis(const sk_psf *psf, double x, double y, double *b)
{
    if (psf->ncomp <= 1 || psf->degree <= 0) {
        b[0] = 1.0;
        return;
    }
    double X = (x + 1.0 - psf->xzero) / psf->xscale;
    double Y = (y + 1.0 - psf->yzero) / psf->yscale;
    int d = psf->degree, k = 0;
    double yp = 1.0;
    for (int j = 0; j <= d; j++) {
        double xp = yp;
        for (int i = 0; i + j <= d; i++) {
            b[k++] = xp;
            xp *= X;
        }
        yp *= Y;
    }
}

/* Model grid at the basis values b from double or float components. */
PSF_VECTOR
static void grid_from_basis(const sk_psf *psf, const double *comp_d, const double *b, double *grid)
{
    long np = (long)psf->width * psf->height;
    for (long p = 0; p < np; p++)
        grid[p] = 0;
    for (int k = 0; k < psf->ncomp; k++) {
        double bk = b[k];
        if (bk == 0)
            continue;
        if (comp_d) {
            const double *c = comp_d + (long)k * np;
            for (long p = 0; p < np; p++)
                grid[p] += bk * c[p];
        } else {
            const float *c = psf->comp + (long)k * np;
            for (long p = 0; p < np; p++)
                grid[p] += bk * c[p];
        }
    }
}

/* grid_from_basis() of a vector whose components beyond the first are 0
 * outside the model pixels vpix[0..nv-1]. */
static void grid_from_basis_var(const sk_psf *psf, const double *v, const double *b,
                                const long *vpix, long nv, double *grid)
{
    long np = (long)psf->width * psf->height;
    for (long p = 0; p < np; p++)
        grid[p] = 0;
    if (b[0] != 0)
        for (long p = 0; p < np; p++)
            grid[p] += b[0] * v[p];
    for (int k = 1; k < psf->ncomp; k++) {
        double bk = b[k];
        if (bk == 0)
            continue;
        const double *c = v + (long)k * np;
        for (long t = 0; t < nv; t++)
            grid[vpix[t]] += bk * c[vpix[t]];
    }
}

void sk_psf_grid_at(const sk_psf *psf, double x, double y, double *grid)
{
    double b[64];
    psf_basis(psf, x, y, b);
    grid_from_basis(psf, NULL, b, grid);
}

int sk_psf_stamp_size(const sk_psf *psf)
{
    double half = (double)(psf->width / 2) * psf->step_px;
    double half_y = (double)(psf->height / 2) * psf->step_px;
    if (half_y > half)
        half = half_y;
    return 2 * (int)floor(half + 1e-6) + 1;
}

/* Interpolation taps from a grid of n points (spacing `step` image pixels,
 * centre n/2) to m image pixels whose middle one is at offset -d from the
 * star: tap set i covers grid points first[i] .. first[i]+5. */
static void axis_taps(int n, double step, int m, double d, long *first, double *w)
{
    for (int i = 0; i < m; i++) {
        double u = (double)(n / 2) + ((double)(i - m / 2) - d) / step;
        psf_lanczos3(u, &first[i], &w[6 * i]);
    }
}

/* Scratch for rendering a grid onto an m x m stamp: the taps in use (its
 * own, set by render_set(), or a star's cached ones, render_use()) and the
 * intermediate of the separable interpolation. */
typedef struct render_ws {
    int m, gw, gh;
    const long *fx, *fy;
    const double *wx, *wy;
    long *own_fx, *own_fy;
    double *own_wx, *own_wy;
    double *tmp;     /* m * gh */
    double *tmpt;    /* gh * m: tmp transposed */
    double *col;     /* gh */
    int *alo, *ahi;  /* max(gw, gh): the stamp pixels reaching a grid point */
} render_ws;

static int render_ws_init(render_ws *r, int m, int gw, int gh)
{
    r->m = m;
    r->gw = gw;
    r->gh = gh;
    r->fx = r->own_fx = malloc(sizeof *r->own_fx * (size_t)m);
    r->fy = r->own_fy = malloc(sizeof *r->own_fy * (size_t)m);
    r->wx = r->own_wx = malloc(sizeof *r->own_wx * 6 * (size_t)m);
    r->wy = r->own_wy = malloc(sizeof *r->own_wy * 6 * (size_t)m);
    r->tmp = malloc(sizeof *r->tmp * (size_t)m * (size_t)gh);
    r->tmpt = malloc(sizeof *r->tmpt * (size_t)m * (size_t)gh);
    r->col = malloc(sizeof *r->col * (size_t)gh);
    r->alo = malloc(sizeof *r->alo * (size_t)(gw > gh ? gw : gh));
    r->ahi = malloc(sizeof *r->ahi * (size_t)(gw > gh ? gw : gh));
    if (!r->own_fx || !r->own_fy || !r->own_wx || !r->own_wy || !r->tmp || !r->tmpt || !r->col ||
        !r->alo || !r->ahi)
        return sk_error(SK_EIO, "PSF: out of memory");
    return SK_OK;
}

static void render_ws_free(render_ws *r)
{
    free(r->own_fx);
    free(r->own_fy);
    free(r->own_wx);
    free(r->own_wy);
    free(r->tmp);
    free(r->tmpt);
    free(r->col);
    free(r->alo);
    free(r->ahi);
    memset(r, 0, sizeof *r);
}

/* The x taps for the offset dx, the y taps for dy (own storage). */
static void render_set_x(render_ws *r, double step, double dx)
{
    axis_taps(r->gw, step, r->m, dx, r->own_fx, r->own_wx);
    r->fx = r->own_fx;
    r->wx = r->own_wx;
}

static void render_set_y(render_ws *r, double step, double dy)
{
    axis_taps(r->gh, step, r->m, dy, r->own_fy, r->own_wy);
    r->fy = r->own_fy;
    r->wy = r->own_wy;
}

static void render_set(render_ws *r, double step, double dx, double dy)
{
    render_set_x(r, step, dx);
    render_set_y(r, step, dy);
}

/* Render with taps computed elsewhere (m of fx, fy; 6 m of wx, wy). */
static void render_use(render_ws *r, const long *fx, const double *wx, const long *fy,
                       const double *wy)
{
    r->fx = fx;
    r->wx = wx;
    r->fy = fy;
    r->wy = wy;
}

/* First pass of render_fwd: the grid's rows interpolated at the stamp's
 * columns, into r->tmp. */
PSF_VECTOR
static void render_fwd_x(render_ws *r, const double *grid)
{
    int m = r->m, gw = r->gw, gh = r->gh;
    for (int b = 0; b < gh; b++) {
        const double *row = grid + (long)b * gw;
        double *t = r->tmp + (long)b * m;
        for (int i = 0; i < m; i++) {
            long f = r->fx[i];
            const double *w = r->wx + 6 * i;
            double v = 0;
            if (f >= 0 && f + 5 < gw) {
                for (int k = 0; k < 6; k++)
                    v += w[k] * row[f + k];
            } else {
                for (int k = 0; k < 6; k++)
                    if (f + k >= 0 && f + k < gw)
                        v += w[k] * row[f + k];
            }
            t[i] = v;
        }
    }
}

/* Second pass: r->tmp interpolated at the stamp's rows into out. */
PSF_VECTOR
static void render_fwd_y(const render_ws *r, double *out)
{
    int m = r->m, gh = r->gh;
    for (int j = 0; j < m; j++) {
        double *o = out + (long)j * m;
        for (int i = 0; i < m; i++)
            o[i] = 0;
        long f = r->fy[j];
        const double *w = r->wy + 6 * j;
        for (int k = 0; k < 6; k++) {
            if (f + k < 0 || f + k >= gh)
                continue;
            const double *t = r->tmp + (f + k) * m;
            double wk = w[k];
            for (int i = 0; i < m; i++)
                o[i] += wk * t[i];
        }
    }
}

/* out (m x m) = grid interpolated at the stamp's pixels. */
static void render_fwd(render_ws *r, const double *grid, double *out)
{
    render_fwd_x(r, grid);
    render_fwd_y(r, out);
}

/* The taps' reach seen from the other side: for each of the n grid
 * points, the first (lo) and one past the last (hi) of the m stamp
 * pixels whose six taps (first points f, not decreasing) include it. */
static void taps_reach(const long *f, int m, int n, int *lo, int *hi)
{
    for (int a = 0, l = 0, h = 0; a < n; a++) {
        while (l < m && f[l] < a - 5)
            l++;
        while (h < m && f[h] <= a)
            h++;
        lo[a] = l;
        hi[a] = h;
    }
}

/* grid += transpose of the interpolation applied to img (m x m); with
 * `squared`, the squared taps (for the diagonal of the normal matrix).
 * grid holds no -0 (adding a 0 product then changes nothing). Each point
 * gathers the terms that reach it in the order of the stamp's pixels, the
 * columns of the grid a vector over its rows (through a transpose). */
PSF_VECTOR
static void render_adj(render_ws *r, const double *img, int squared, double *grid)
{
    int m = r->m, gw = r->gw, gh = r->gh;
    int *lo = r->alo, *hi = r->ahi;
    taps_reach(r->fy, m, gh, lo, hi);
    for (int b = 0; b < gh; b++) {
        double *restrict t = r->tmp + (long)b * m;
        for (int i = 0; i < m; i++)
            t[i] = 0;
        for (int j = lo[b]; j < hi[b]; j++) {
            double w = r->wy[6 * j + (b - r->fy[j])];
            double wk = squared ? w * w : w;
            const double *restrict src = img + (long)j * m;
            for (int i = 0; i < m; i++)
                t[i] += wk * src[i];
        }
    }
    double *restrict tt = r->tmpt, *restrict col = r->col;
    for (int b = 0; b < gh; b++)
        for (int i = 0; i < m; i++)
            tt[(long)i * gh + b] = r->tmp[(long)b * m + i];
    taps_reach(r->fx, m, gw, lo, hi);
    for (int a = 0; a < gw; a++) {
        if (lo[a] >= hi[a])
            continue;
        for (int b = 0; b < gh; b++)
            col[b] = grid[(long)b * gw + a];
        for (int i = lo[a]; i < hi[a]; i++) {
            double w = r->wx[6 * i + (a - r->fx[i])];
            double wk = squared ? w * w : w;
            const double *restrict ti = tt + (long)i * gh;
            for (int b = 0; b < gh; b++)
                col[b] += wk * ti[b];
        }
        for (int b = 0; b < gh; b++)
            grid[(long)b * gw + a] = col[b];
    }
}

/* tw[a] (n grid points) = the sum of the taps of the m stamp pixels
 * (first points f, weights w) that fall on grid point a. */
static void tap_sums(const long *f, const double *w, int m, int n, double *tw)
{
    for (int a = 0; a < n; a++)
        tw[a] = 0;
    for (int i = 0; i < m; i++)
        for (int k = 0; k < 6; k++)
            if (f[i] + k >= 0 && f[i] + k < n)
                tw[f[i] + k] += w[6 * i + k];
}

/* The window's rows of the stamp from the model grid, the grid's rows
 * first interpolated at the window's columns (into tmp, gh x nw). */
PSF_VECTOR
static void render_window(const double *grid, int gw, int gh, const long *fx, const double *wx,
                          const long *fy, const double *wy, int i0, int j0, int nw, int nh,
                          double *tmp, double *out)
{
    long b0 = fy[j0] < 0 ? 0 : fy[j0], b1 = fy[j0 + nh - 1] + 5 >= gh ? gh - 1 : fy[j0 + nh - 1] + 5;
    for (long b = b0; b <= b1; b++) {
        const double *row = grid + b * gw;
        double *t = tmp + b * nw;
        for (int i = 0; i < nw; i++) {
            long f = fx[i0 + i];
            const double *w = wx + 6 * (i0 + i);
            double v = 0;
            if (f >= 0 && f + 5 < gw) {
                for (int k = 0; k < 6; k++)
                    v += w[k] * row[f + k];
            } else {
                for (int k = 0; k < 6; k++)
                    if (f + k >= 0 && f + k < gw)
                        v += w[k] * row[f + k];
            }
            t[i] = v;
        }
    }
    for (int j = 0; j < nh; j++) {
        double *o = out + (long)j * nw;
        for (int i = 0; i < nw; i++)
            o[i] = 0;
        long f = fy[j0 + j];
        const double *w = wy + 6 * (j0 + j);
        for (int k = 0; k < 6; k++) {
            if (f + k < 0 || f + k >= gh)
                continue;
            const double *t = tmp + (f + k) * nw;
            double wk = w[k];
            for (int i = 0; i < nw; i++)
                o[i] += wk * t[i];
        }
    }
}

int psf_image_window(const sk_psf *psf, double x, double y, int size, int i0, int j0, int nw,
                     int nh, double *out)
{
    if (size <= 0)
        size = sk_psf_stamp_size(psf);
    if (size % 2 == 0 || size > 16383)
        return sk_error(SK_EINPUT, "PSF image: stamp size %d must be odd and below 16384", size);
    if (!isfinite(x) || !isfinite(y))
        return sk_error(SK_EINPUT, "PSF image: position (%g, %g) is not finite", x, y);
    if (i0 < 0 || j0 < 0 || nw < 1 || nh < 1 || i0 + nw > size || j0 + nh > size)
        return sk_error(SK_EINPUT, "PSF image: window %dx%d at (%d, %d) is not within the %d-px stamp",
                        nw, nh, i0, j0, size);
    int gw = psf->width, gh = psf->height;
    long np = (long)gw * gh;
    size_t nd = (size_t)np + 12 * (size_t)size + (size_t)gw + (size_t)gh + (size_t)gh * (size_t)nw;
    double *grid = malloc(sizeof *grid * nd);
    long *fx = malloc(sizeof *fx * 2 * (size_t)size);
    if (!grid || !fx) {
        free(grid);
        free(fx);
        return sk_error(SK_EIO, "PSF image: out of memory");
    }
    double *wx = grid + np, *wy = wx + 6 * size, *twx = wy + 6 * size, *twy = twx + gw;
    double *tmp = twy + gh;
    long *fy = fx + size;
    sk_psf_grid_at(psf, x, y, grid);
    axis_taps(gw, psf->step_px, size, x - (double)lround(x), fx, wx);
    axis_taps(gh, psf->step_px, size, y - (double)lround(y), fy, wy);
    /* the sum over the whole stamp, separably: each grid point weighted
       by the taps that fall on it along x and along y */
    tap_sums(fx, wx, size, gw, twx);
    tap_sums(fy, wy, size, gh, twy);
    double sum = 0;
    for (int b = 0; b < gh; b++) {
        double rs = 0;
        for (int a = 0; a < gw; a++)
            rs += twx[a] * grid[(long)b * gw + a];
        sum += twy[b] * rs;
    }
    int st = SK_OK;
    if (!(fabs(sum) > 0) || !isfinite(sum)) {
        st = sk_error(SK_EINPUT, "PSF image: the model sums to %g at (%g, %g)", sum, x, y);
    } else {
        render_window(grid, gw, gh, fx, wx, fy, wy, i0, j0, nw, nh, tmp, out);
        for (long i = 0; i < (long)nw * nh; i++)
            out[i] /= sum;
    }
    free(grid);
    free(fx);
    return st;
}

int sk_psf_image(const sk_psf *psf, double x, double y, int size, double *stamp)
{
    if (size <= 0)
        size = sk_psf_stamp_size(psf);
    return psf_image_window(psf, x, y, size, 0, 0, size > 0 ? size : 1, size > 0 ? size : 1, stamp);
}

/* Half-maximum area diameter of a model grid, on a grid `sub` times finer
 * than the image pixels. */
static double grid_fwhm(const double *grid, int gw, int gh, double step)
{
    const int sub = 8;
    double half = (double)((gw < gh ? gw : gh) / 2) * step;
    int n = 2 * (int)floor(half * sub) + 1;
    if (n < 3)
        return 0;
    long *fx = malloc(sizeof *fx * (size_t)n), *fy = malloc(sizeof *fy * (size_t)n);
    double *wx = malloc(sizeof *wx * 6 * (size_t)n), *wy = malloc(sizeof *wy * 6 * (size_t)n);
    double *tmp = malloc(sizeof *tmp * (size_t)n * (size_t)gh);
    double *val = malloc(sizeof *val * (size_t)n * (size_t)n);
    double fwhm = 0;
    if (fx && fy && wx && wy && tmp && val) {
        for (int i = 0; i < n; i++) {
            double off = (double)(i - n / 2) / sub;
            psf_lanczos3((double)(gw / 2) + off / step, &fx[i], &wx[6 * i]);
            psf_lanczos3((double)(gh / 2) + off / step, &fy[i], &wy[6 * i]);
        }
        for (int b = 0; b < gh; b++)
            for (int i = 0; i < n; i++) {
                double v = 0;
                for (int k = 0; k < 6; k++)
                    if (fx[i] + k >= 0 && fx[i] + k < gw)
                        v += wx[6 * i + k] * grid[(long)b * gw + fx[i] + k];
                tmp[(long)b * n + i] = v;
            }
        double peak = -INFINITY;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++) {
                double v = 0;
                for (int k = 0; k < 6; k++)
                    if (fy[j] + k >= 0 && fy[j] + k < gh)
                        v += wy[6 * j + k] * tmp[(fy[j] + k) * n + i];
                val[(long)j * n + i] = v;
                if (v > peak)
                    peak = v;
            }
        long count = 0;
        if (peak > 0)
            for (long i = 0; i < (long)n * n; i++)
                count += val[i] >= 0.5 * peak;
        fwhm = 2.0 * sqrt((double)count / (sub * sub) / M_PI);
    }
    free(fx);
    free(fy);
    free(wx);
    free(wy);
    free(tmp);
    free(val);
    return fwhm;
}

double sk_psf_fwhm_at(const sk_psf *psf, double x, double y)
{
    long np = (long)psf->width * psf->height;
    double *grid = malloc(sizeof *grid * (size_t)np);
    if (!grid)
        return NAN;
    sk_psf_grid_at(psf, x, y, grid);
    double f = grid_fwhm(grid, psf->width, psf->height, psf->step_px);
    free(grid);
    return f;
}

int sk_psf_from_stamp(const double *stamp, int size, long image_width, long image_height,
                      sk_psf **out)
{
    *out = NULL;
    if (size < 3 || size % 2 == 0)
        return sk_error(SK_EINPUT, "PSF from a stamp: size %d must be odd and at least 3", size);
    double sum = 0;
    for (long i = 0; i < (long)size * size; i++) {
        if (!isfinite(stamp[i]))
            return sk_error(SK_EINPUT, "PSF from a stamp: pixel %ld is not finite", i);
        sum += stamp[i];
    }
    if (!(sum > 0))
        return sk_error(SK_EINPUT, "PSF from a stamp: the stamp sums to %g, not a positive flux", sum);
    sk_psf *psf = calloc(1, sizeof *psf);
    if (!psf || !(psf->comp = malloc(sizeof *psf->comp * (size_t)size * (size_t)size))) {
        free(psf);
        return sk_error(SK_EIO, "PSF from a stamp: out of memory");
    }
    psf->width = psf->height = size;
    psf->ncomp = 1;
    psf->degree = 0;
    psf->step_px = 1.0;
    psf->image_width = image_width;
    psf->image_height = image_height;
    psf->xzero = 0.5 * ((double)image_width + 1.0);
    psf->yzero = 0.5 * ((double)image_height + 1.0);
    psf->xscale = image_width > 0 ? (double)image_width : 1.0;
    psf->yscale = image_height > 0 ? (double)image_height : 1.0;
    for (long i = 0; i < (long)size * size; i++)
        psf->comp[i] = (float)(stamp[i] / sum);
    psf->fwhm_px = sk_psf_fwhm_at(psf, 0, 0);
    *out = psf;
    return SK_OK;
}

/* ---- star selection ---- */

typedef struct cand {
    long idx;
    double x, y, snr;
} cand;

static int cmp_cand_y(const void *a, const void *b)
{
    const cand *p = a, *q = b;
    if (p->y != q->y)
        return (p->y > q->y) - (p->y < q->y);
    return (p->idx > q->idx) - (p->idx < q->idx);
}

static int cmp_cand_snr(const void *a, const void *b)
{
    const cand *p = a, *q = b;
    if (p->snr != q->snr)
        return (p->snr < q->snr) - (p->snr > q->snr);
    return (p->idx > q->idx) - (p->idx < q->idx);
}

/* Deblended stars, stars with flagged pixels and stars whose apertures
 * are truncated are kept: their neighbours' and flagged pixels are left
 * out of the fit, and the isolation rule below, the usable-core test of
 * cut_stamp() and the clipping catch what remains. */
static const unsigned STAR_REJECT = SK_SRC_SATURATED | SK_SRC_ARTIFACT | SK_SRC_WIN_FAILED;

/* Within the stellar locus (FWHM within `width` of `mode`; lf the
 * candidates' log FWHM), the stars' FWHM spread is their noise and the
 * PSF's variation over the image; compact galaxies lie above it (6-12 %
 * broader where the stars scatter by 1-2 %) and would broaden the model,
 * making every PSF flux too bright. So the locus is cut at *lcut = 3
 * robust sigmas of the log FWHM about its median *lmed (at least 3 %),
 * three times (the galaxies widen the first spread); with fewer than 5
 * stars the cut stays as given. Nonzero when out of memory. */
static int locus_cut(const double *lf, long nc, double mode, double width, double *lmed,
                     double *lcut)
{
    double *in = malloc(sizeof *in * (size_t)(nc + 1));
    if (!in)
        return 1;
    for (int it = 0; it < 3; it++) {
        long ni = 0;
        for (long k = 0; k < nc; k++)
            if (fabs(exp(lf[k]) / mode - 1.0) <= width && fabs(lf[k] - *lmed) <= *lcut)
                in[ni++] = lf[k];
        if (ni < 5)
            break;
        double lsig = 0;
        sk_median_mad(in, ni, lmed, &lsig);
        *lcut = fmax(3.0 * lsig, log(1.03));
    }
    free(in);
    return 0;
}

/* The isolated candidates among c[0..nk-1], kept in order in
 * c[0..*nkept-1]: no other source's centre within 1 FWHM, nor one of more
 * than a quarter of the star's flux within 2 FWHM (blends whose centres the
 * model cannot separate); the light of the neighbours further out is taken
 * out of the stamps (psf_neighbours.c). -1 when out of memory. */
static int keep_isolated(const sk_source_list *l, cand *c, long nk, double mode, long *nkept)
{
    long n = l->n;
    cand *all = malloc(sizeof *all * (size_t)(n + 1));
    char *keep = calloc((size_t)(nk + 1), 1);
    if (!all || !keep) {
        free(all);
        free(keep);
        return -1;
    }
    long na = 0;
    for (long k = 0; k < n; k++) {
        double x = l->src[k].xwin, y = l->src[k].ywin;
        if (!isfinite(x) || !isfinite(y)) {
            x = l->src[k].x;
            y = l->src[k].y;
        }
        if (!isfinite(x) || !isfinite(y))
            continue;
        all[na].idx = k;
        all[na].x = x;
        all[na].y = y;
        all[na].snr = l->src[k].flux_auto;
        na++;
    }
    qsort(all, (size_t)na, sizeof *all, cmp_cand_y);
    double r = 2.0 * mode;
    for (long k = 0; k < nk; k++) {
        double fk = l->src[c[k].idx].flux_auto;
        /* binary search for the first source with y >= c.y - r */
        long lo = 0, hi2 = na;
        while (lo < hi2) {
            long mid = (lo + hi2) / 2;
            if (all[mid].y < c[k].y - r)
                lo = mid + 1;
            else
                hi2 = mid;
        }
        int isolated = 1;
        for (long q = lo; q < na && all[q].y <= c[k].y + r; q++) {
            if (all[q].idx == c[k].idx)
                continue;
            double d = hypot(all[q].x - c[k].x, all[q].y - c[k].y);
            if (d < mode || (d < r && all[q].snr > 0.25 * fk)) {
                isolated = 0;
                break;
            }
        }
        keep[k] = (char)isolated;
    }
    long ni = 0;
    for (long k = 0; k < nk; k++)
        if (keep[k])
            c[ni++] = c[k];
    free(all);
    free(keep);
    *nkept = ni;
    return 0;
}

/* The core FWHMs of candidates, one slot each (0: none), on threads. */
typedef struct core_job {
    const sk_image *img;
    const sk_background *bg;
    const cand *c;
    double guess;
    double *fw;
} core_job;

static int core_fwhm_range(long k0, long k1, void *user)
{
    const core_job *J = user;
    for (long k = k0; k < k1; k++)
        J->fw[k] = J->bg ? sk_core_fwhm_at(J->img, J->bg, J->c[k].x, J->c[k].y, J->guess) : 0;
    return SK_OK;
}

/* Candidates of SNR >= snr_min with clean flags, a shape within the
 * ellipticity limit and a centre on the image, in source order, into c;
 * their count. */
static long gather_candidates(const sk_image *img, const sk_source_list *l, const sk_psf_params *p,
                              double snr_min, cand *c)
{
    long nc = 0;
    for (long k = 0; k < l->n; k++) {
        const sk_source *s = &l->src[k];
        if (s->flags & STAR_REJECT)
            continue;
        if (!(s->snr >= snr_min))
            continue;
        if (!(s->a_px > 0) || !(s->b_px / s->a_px >= 1.0 - p->max_ellipticity))
            continue;
        if (!isfinite(s->xwin) || !isfinite(s->ywin) || s->xwin < 0 || s->ywin < 0 ||
            s->xwin > (double)img->width - 1 || s->ywin > (double)img->height - 1)
            continue;
        c[nc].idx = k;
        c[nc].x = s->xwin;
        c[nc].y = s->ywin;
        c[nc].snr = s->snr;
        nc++;
    }
    return nc;
}

/* The log core FWHM of each candidate into lf (a Gaussian fit, not the
 * moments: those of undersampled stars and of stars with neighbours
 * scatter too widely to show the stellar locus); the candidates without
 * one dropped, the others kept in order. */
static long core_fwhms(const sk_image *img, const sk_background *bg, cand *c, long nc, double guess,
                       int threads, double *lf)
{
    core_job cj = {img, bg, c, guess, lf};
    (void)sk_parallel_for(nc, 64, threads, core_fwhm_range, &cj);
    long kept = 0;
    for (long k = 0; k < nc; k++)
        if (lf[k] > 0) {
            c[kept] = c[k];
            lf[kept++] = log(lf[k]);
        }
    return kept;
}

/* The stellar locus of lf[0..n-1] (log FWHMs): the interval of relative
 * width 2*width in FWHM that holds the most candidates (the smallest on a
 * tie: stars are the sharpest objects), its median (px); 0 when out of
 * memory. */
static double locus_mode(const double *lf, long n, double width)
{
    double *sorted = malloc(sizeof *sorted * (size_t)(n + 1));
    if (!sorted)
        return 0;
    memcpy(sorted, lf, sizeof *sorted * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, sk_cmp_double);
    long best = 0, best_lo = sk_densest_window(sorted, n, SK_WINDOW_DIFFERENCE,
                                               log((1.0 + width) / (1.0 - width)), &best);
    double mode = exp(sorted[best_lo + best / 2]);
    free(sorted);
    return mode;
}

/* Fainter stars that tell whether the PSF stars' response is linear: the
 * LINEAR_CHECK_MAX of highest SNR below the PSF stars' limit, down to SNR
 * LINEAR_CHECK_SNR, and at least LINEAR_CHECK_MIN of them. */
#define LINEAR_CHECK_SNR 20.0
#define LINEAR_CHECK_MIN 10
#define LINEAR_CHECK_MAX 300
/* ... and the PSF stars' locus broader than theirs by more than this factor
 * tells a response that is not linear (on linear images the two agree
 * within 2 %, or the fainter ones are the broader, galaxies among them) */
#define LINEAR_CHECK_RATIO 1.1

/* The stellar locus of the fainter stars when the PSF stars (SNR >=
 * min_snr, the *n of c with lf their log FWHMs, locus mode_b) are broader
 * than it by more than LINEAR_CHECK_RATIO: a response that is not
 * linear (a photographic plate, a detector saturating below its stated
 * level) flattens and broadens the bright stars' cores, and the PSF is the
 * faint stars'. Then c, lf and *n are replaced by those fainter stars
 * (with a core FWHM) and their locus is returned; otherwise nothing
 * changes and 0 is returned (-1 when out of memory). */
static double faint_locus(const sk_image *img, const sk_background *bg, const sk_source_list *l,
                          const sk_psf_params *p, int threads, double guess, double mode_b, cand **c,
                          double **lf, long *n)
{
    if (!(p->min_snr > LINEAR_CHECK_SNR))
        return 0;
    cand *f = malloc(sizeof *f * (size_t)(l->n + 1));
    double *lff = malloc(sizeof *lff * (size_t)(l->n + 1));
    if (!f || !lff) {
        free(f);
        free(lff);
        return -1;
    }
    long nf = 0, na = gather_candidates(img, l, p, LINEAR_CHECK_SNR, f);
    for (long k = 0; k < na; k++)
        if (!(f[k].snr >= p->min_snr))
            f[nf++] = f[k];
    qsort(f, (size_t)nf, sizeof *f, cmp_cand_snr);
    if (nf > LINEAR_CHECK_MAX)
        nf = LINEAR_CHECK_MAX;
    nf = core_fwhms(img, bg, f, nf, guess, threads, lff);
    double mode_f = nf >= LINEAR_CHECK_MIN ? locus_mode(lff, nf, p->locus_width) : 0;
    sk_debug("PSF: stellar locus %.3f px at SNR >= %g, %.3f px for %ld fainter stars of SNR >= %g", mode_b,
             p->min_snr, mode_f, nf, LINEAR_CHECK_SNR);
    if (!(mode_f > 0) || !(mode_b > LINEAR_CHECK_RATIO * mode_f)) {
        free(f);
        free(lff);
        return nf >= LINEAR_CHECK_MIN && !(mode_f > 0) ? -1 : 0;
    }
    sk_warn("PSF: the stars of SNR >= %g are broader (FWHM %.2f px) than the fainter ones (%.2f px): "
            "a response that is not linear; the PSF is made from the fainter stars (SNR %g to %g)",
            p->min_snr, mode_b, mode_f, LINEAR_CHECK_SNR, p->min_snr);
    free(*c);
    free(*lf);
    *c = f;
    *lf = lff;
    *n = nf;
    return mode_f;
}

/* The locus's stars (within locus_width of its mode and the 3-sigma cut
 * of locus_cut), isolated, highest SNR first, at most max_stars, into
 * *out. */
static int locus_stars(const sk_source_list *l, const sk_psf_params *p, cand *c, const double *lf, long nc,
                       double mode, long **out, long *nout)
{
    double lmed = log(mode), lcut = log(1.0 + p->locus_width);
    if (locus_cut(lf, nc, mode, p->locus_width, &lmed, &lcut))
        return sk_error(SK_EIO, "PSF: out of memory");
    long nk = 0;
    for (long k = 0; k < nc; k++)
        if (fabs(exp(lf[k]) / mode - 1.0) <= p->locus_width && fabs(lf[k] - lmed) <= lcut)
            c[nk++] = c[k];
    long ni = 0;
    if (keep_isolated(l, c, nk, mode, &ni))
        return sk_error(SK_EIO, "PSF: out of memory");
    qsort(c, (size_t)ni, sizeof *c, cmp_cand_snr);
    if (p->max_stars > 0 && ni > p->max_stars)
        ni = p->max_stars;
    if (ni < 3)
        return sk_error(SK_ENOTFOUND, "PSF: only %ld isolated stars on the stellar locus (FWHM %.2f px) "
                        "among %ld candidates (need at least 3)", ni, mode, nc);
    long *idx = malloc(sizeof *idx * (size_t)ni);
    if (!idx)
        return sk_error(SK_EIO, "PSF: out of memory");
    for (long k = 0; k < ni; k++)
        idx[k] = c[k].idx;
    *out = idx;
    *nout = ni;
    return SK_OK;
}

/* Indices of the PSF stars of `l` (highest SNR first) and the FWHM of the
 * stellar locus. */
static int select_stars(const sk_image *img, const sk_background *bg, const sk_source_list *l,
                        const sk_psf_params *p, int threads, long **out, long *nout, long *nloaded,
                        double *locus_fwhm)
{
    *out = NULL;
    *nout = 0;
    *nloaded = 0;
    cand *c = malloc(sizeof *c * (size_t)(l->n + 1));
    double *lf = malloc(sizeof *lf * (size_t)(l->n + 1));
    if (!c || !lf) {
        free(c);
        free(lf);
        return sk_error(SK_EIO, "PSF: out of memory");
    }
    double guess = l->fwhm_px > 0 ? l->fwhm_px : SK_FWHM_MIN_PX;
    long nc = gather_candidates(img, l, p, p->min_snr, c);
    nc = core_fwhms(img, bg, c, nc, guess, threads, lf);
    if (nc < 3) {
        free(c);
        free(lf);
        return sk_error(SK_ENOTFOUND, "PSF: only %ld star candidates with SNR >= %g and clean flags "
                        "(need at least 3)", nc, p->min_snr);
    }
    double mode = locus_mode(lf, nc, p->locus_width);
    double mode_f = mode > 0 ? faint_locus(img, bg, l, p, threads, guess, mode, &c, &lf, &nc) : -1;
    int st = SK_OK;
    if (mode_f < 0)
        st = sk_error(SK_EIO, "PSF: out of memory");
    if (mode_f > 0)
        mode = mode_f;
    *nloaded = nc;
    *locus_fwhm = mode;
    if (!st)
        st = locus_stars(l, p, c, lf, nc, mode, out, nout);
    free(c);
    free(lf);
    return st;
}

/* ---- fitting ---- */

typedef struct pstar {
    long src;
    long ix, iy;          /* image pixel of the stamp's middle */
    double x0, y0;        /* windowed centroid */
    double x, y, flux;    /* current PSF-fit centre and flux */
    float *d;             /* m*m background-subtracted pixels */
    float *d0;            /* the same before the neighbours are taken out */
    float *vb;            /* m*m background variance; 0 = unusable */
    float *wt;            /* m*m inverse total variance of the current fit */
    double b[64];         /* basis values */
    double chi2;          /* reduced chi^2 of the current fit */
    double shape;         /* rms residual beyond the noise within 2 FWHM,
                             relative to the model's rms there */
    double excess, excess_err; /* light within 1.5 FWHM over the model's
                             there, minus 1, and its noise */
    int ok;
} pstar;

typedef struct bctx {
    const sk_image *img;
    const float *level, *var;
    const int32_t *seg;
    psf_nbrs nb;          /* the stars' neighbours */
    const sk_psf *nmodel; /* the model their images are made with */
    sk_psf *psf;          /* shape, step and scaling of the model being built */
    int m;                /* stamp size (image pixels) */
    double gain;
    double fwhm;          /* of the stellar locus (px) */
    pstar *st;
    long nst;
    double *comp;         /* ncomp * np working model */
    /* stacking */
    float *sv, *sw;       /* nst * np resampled values and weights */
    /* conjugate gradients */
    const long *vpix;     /* the model pixels where the terms of the */
    long nvpix;           /* variation may be nonzero (cg_refine) */
    long *tfx, *tfy;      /* nst * m interpolation taps of the stars at */
    double *twx, *twy;    /* their current centres (nst * 6m weights) */
    long nchunk;
    double *cbuf;         /* nchunk * ncomp * np accumulation buffers */
    struct cg_scratch *cws; /* nchunk scratch spaces, kept over the iterations */
    const double *cg_in;  /* vector the operator is applied to */
    int cg_mode;          /* 0: normal operator, 1: right-hand side, 2: diagonal */
} bctx;

static void star_free(pstar *s)
{
    free(s->d);
    free(s->d0);
    free(s->vb);
    free(s->wt);
}

/* The star's local sky, taken out of its stamp: the median of its usable
 * pixels beyond 3 FWHM (the stamp's outer ring and corners), from the data
 * alone. Fitted jointly with the flux it would be degenerate with the
 * model's level (a constant in the model is offset exactly by -flux times
 * it in every star's background), which then drifts; ignored, an excess of
 * sky around the stars (faint neighbours, the background's error there)
 * would enter the model as a pedestal. Either changes the model's sum
 * within the PSF fit's radius, and every PSF flux with it. */
static void stamp_local_sky(const bctx *c, pstar *s)
{
    int m = c->m;
    double r2 = 9.0 * c->fwhm * c->fwhm;
    double *v = malloc(sizeof *v * (size_t)m * (size_t)m);
    long n = 0;
    for (int j = 0; v && j < m; j++)
        for (int i = 0; i < m; i++) {
            long q = (long)j * m + i;
            double dx = (double)(s->ix - m / 2 + i) - s->x0, dy = (double)(s->iy - m / 2 + j) - s->y0;
            if (s->vb[q] > 0 && dx * dx + dy * dy > r2)
                v[n++] = s->d[q];
        }
    if (n >= 20) {
        float sky = (float)sk_median_double(v, n);
        for (long q = 0; q < (long)m * m; q++)
            if (s->vb[q] > 0)
                s->d[q] -= sky;
    }
    free(v);
}

static int cut_stamp(long k, void *u)
{
    bctx *c = u;
    pstar *s = &c->st[k];
    const sk_image *img = c->img;
    int m = c->m;
    s->d = malloc(sizeof *s->d * (size_t)m * (size_t)m);
    s->vb = malloc(sizeof *s->vb * (size_t)m * (size_t)m);
    s->wt = malloc(sizeof *s->wt * (size_t)m * (size_t)m);
    if (!s->d || !s->vb || !s->wt)
        return sk_error(SK_EIO, "PSF: out of memory for star stamps");
    s->ix = lround(s->x0);
    s->iy = lround(s->y0);
    int32_t self = 0;
    if (c->seg && s->ix >= 0 && s->iy >= 0 && s->ix < img->width && s->iy < img->height)
        self = c->seg[s->iy * img->width + s->ix];
    long usable = 0, core = 0, core_usable = 0;
    double rcore2 = c->fwhm * c->fwhm;
    for (int j = 0; j < m; j++) {
        long y = s->iy - m / 2 + j;
        for (int i = 0; i < m; i++) {
            long x = s->ix - m / 2 + i, q = (long)j * m + i;
            s->d[q] = 0;
            s->vb[q] = 0;
            double dx = (double)x - s->x0, dy = (double)y - s->y0;
            int in_core = dx * dx + dy * dy <= rcore2;
            core += in_core;
            if (x < 0 || y < 0 || x >= img->width || y >= img->height)
                continue;
            long pix = y * img->width + x;
            if (!psf_pixel_usable(img, pix) || !(c->var[pix] > 0))
                continue;
            if (c->seg && c->seg[pix] != 0 && c->seg[pix] != self)
                continue;
            s->d[q] = img->sci[pix] - (c->level ? c->level[pix] : 0.0f);
            s->vb[q] = c->var[pix];
            usable++;
            core_usable += in_core;
        }
    }
    stamp_local_sky(c, s);
    for (long q = 0; q < (long)m * m; q++)
        s->wt[q] = s->vb[q] > 0 ? (float)(1.0 / fit_variance(s->vb[q], s->d[q], c->gain)) : 0.0f;
    s->d0 = malloc(sizeof *s->d0 * (size_t)m * (size_t)m);
    if (!s->d0)
        return sk_error(SK_EIO, "PSF: out of memory for star stamps");
    memcpy(s->d0, s->d, sizeof *s->d0 * (size_t)m * (size_t)m);
    /* most of the core and a quarter of the stamp must be there */
    s->ok = usable > (long)m * m / 4 && 5 * core_usable >= 4 * core;
    psf_basis(c->psf, s->x0, s->y0, s->b);
    return SK_OK;
}

/* The star's stamp resampled onto the model grid centred on it, divided
 * by its flux; weight 0 where any tap is unusable. */
static int stack_sample(long k, void *u)
{
    bctx *c = u;
    pstar *s = &c->st[k];
    int gw = c->psf->width, gh = c->psf->height, m = c->m;
    long np = (long)gw * gh;
    float *val = c->sv + k * np, *wgt = c->sw + k * np;
    for (long p = 0; p < np; p++)
        val[p] = wgt[p] = 0;
    if (!s->ok || !(s->flux > 0))
        return SK_OK;
    double step = c->psf->step_px;
    double f2 = s->flux * s->flux;
    long *fxa = malloc(sizeof *fxa * (size_t)gw);
    double *wxa = malloc(sizeof *wxa * 6 * (size_t)gw);
    if (!fxa || !wxa) {
        free(fxa);
        free(wxa);
        return sk_error(SK_EIO, "PSF: out of memory");
    }
    for (int a = 0; a < gw; a++) {
        double uu = (double)(m / 2) + (s->x0 - (double)s->ix) + (double)(a - gw / 2) * step;
        psf_lanczos3(uu, &fxa[a], &wxa[6 * a]);
    }
    for (int b = 0; b < gh; b++) {
        double v = (double)(m / 2) + (s->y0 - (double)s->iy) + (double)(b - gh / 2) * step;
        long fy;
        double wy[6];
        psf_lanczos3(v, &fy, wy);
        if (fy < 0 || fy + 5 >= m)
            continue;
        for (int a = 0; a < gw; a++) {
            long fx = fxa[a];
            const double *wx = wxa + 6 * a;
            if (fx < 0 || fx + 5 >= m)
                continue;
            double sum = 0, var = 0;
            int bad = 0;
            for (int t = 0; t < 6 && !bad; t++) {
                const float *drow = s->d + (fy + t) * m + fx;
                const float *vrow = s->vb + (fy + t) * m + fx;
                for (int r = 0; r < 6; r++) {
                    if (!(vrow[r] > 0)) {
                        bad = 1;
                        break;
                    }
                    double w = wy[t] * wx[r];
                    sum += w * drow[r];
                    var += w * w * fit_variance(vrow[r], drow[r], c->gain);
                }
            }
            if (bad || !(var > 0))
                continue;
            val[(long)b * gw + a] = (float)(sum / s->flux);
            wgt[(long)b * gw + a] = (float)(f2 / var);
        }
    }
    free(fxa);
    free(wxa);
    return SK_OK;
}

/* Model pixel p as a polynomial of the position, by weighted least squares
 * over the stars' resampled stamps. */
static int stack_pixel(long p, void *u)
{
    bctx *c = u;
    int nc = c->psf->ncomp;
    long np = (long)c->psf->width * c->psf->height;
    double a[64 * 64], r[64], a0 = 0, r0 = 0;
    memset(a, 0, sizeof(double) * (size_t)(nc * nc));
    memset(r, 0, sizeof(double) * (size_t)nc);
    long used = 0;
    for (long k = 0; k < c->nst; k++) {
        double w = c->sw[k * np + p];
        if (!(w > 0) || !c->st[k].ok)
            continue;
        double v = c->sv[k * np + p];
        const double *b = c->st[k].b;
        sk_normal_add(a, r, nc, 1, b, w, &v);
        a0 += w;
        r0 += w * v;
        used++;
    }
    for (int i = 0; i < nc; i++)
        c->comp[(long)i * np + p] = 0;
    if (used >= 2 * nc && sk_cholesky_solve(a, r, nc, 1, 1e-300) == 0) {
        for (int i = 0; i < nc; i++)
            c->comp[(long)i * np + p] = r[i];
    } else if (a0 > 0) {
        c->comp[p] = r0 / a0;
    }
    return SK_OK;
}

/* Fit flux and centre of star k with the current model (Gauss-Newton,
 * weights from the noise alone, so that the core decides the flux); update
 * its model-fit weights (noise and the accuracy floor) and reduced chi^2
 * with those weights. No local background offset is fitted: a constant
 * added to the model is exactly compensated by offsets of -flux times it,
 * so the rounds of model and star fits would let the model's level drift;
 * the stars' local sky is taken out of their stamps instead
 * (stamp_local_sky). */
static int refit_star(long k, void *u)
{
    bctx *c = u;
    pstar *s = &c->st[k];
    if (!s->ok)
        return SK_OK;
    sk_psf *psf = c->psf;
    int m = c->m;
    long np = (long)psf->width * psf->height, mm = (long)m * m;
    double *grid = malloc(sizeof *grid * (size_t)np);
    double *f = malloc(sizeof *f * 5 * (size_t)mm);
    render_ws r;
    memset(&r, 0, sizeof r);
    int st = (grid && f) ? render_ws_init(&r, m, psf->width, psf->height)
                         : sk_error(SK_EIO, "PSF: out of memory");
    if (st) {
        free(grid);
        free(f);
        render_ws_free(&r);
        return st;
    }
    psf_basis(psf, s->x, s->y, s->b);
    grid_from_basis(psf, c->comp, s->b, grid);
    const double h = 0.02;
    double *f0 = f, *fxp = f + mm, *fxm = f + 2 * mm, *fyp = f + 3 * mm, *fym = f + 4 * mm;
    double flux = s->flux > 0 ? s->flux : 1.0;
    int good = 1;
    for (int it = 0; it < 8 && good; it++) {
        double dx = s->x - (double)s->ix, dy = s->y - (double)s->iy;
        /* the model at the centre and shifted by +-h in x and in y: the
           shifts in y share the first (x) pass of the centre's */
        render_set(&r, psf->step_px, dx + h, dy);
        render_fwd(&r, grid, fxp);
        render_set_x(&r, psf->step_px, dx - h);
        render_fwd(&r, grid, fxm);
        render_set_x(&r, psf->step_px, dx);
        render_fwd(&r, grid, f0);
        double sum = 0;
        for (long q = 0; q < mm; q++)
            sum += f0[q];
        if (!(sum > 0)) {
            good = 0;
            break;
        }
        render_set_y(&r, psf->step_px, dy + h);
        render_fwd_y(&r, fyp);
        render_set_y(&r, psf->step_px, dy - h);
        render_fwd_y(&r, fym);
        double a[9] = {0}, rhs[3] = {0};
        for (long q = 0; q < mm; q++) {
            if (!(s->vb[q] > 0))
                continue;
            double fq = f0[q] / sum;
            double gx = (fxp[q] - fxm[q]) / (2 * h * sum), gy = (fyp[q] - fym[q]) / (2 * h * sum);
            double mod = flux * fq;
            double w = 1.0 / (s->vb[q] + (c->gain > 0 && mod > 0 ? mod / c->gain : 0.0));
            double v[3] = {fq, gx, gy}, dq = s->d[q];
            sk_normal_add(a, rhs, 3, 1, v, w, &dq);
        }
        if (sk_cholesky_solve(a, rhs, 3, 1, 1e-300) != 0 || !(rhs[0] > 0)) {
            good = 0;
            break;
        }
        flux = rhs[0];
        double ddx = rhs[1] / flux, ddy = rhs[2] / flux;
        if (ddx > 0.5) ddx = 0.5;
        if (ddx < -0.5) ddx = -0.5;
        if (ddy > 0.5) ddy = 0.5;
        if (ddy < -0.5) ddy = -0.5;
        s->x += ddx;
        s->y += ddy;
        if (hypot(s->x - s->x0, s->y - s->y0) > 1.5)
            good = 0;
        if (fabs(ddx) < 1e-4 && fabs(ddy) < 1e-4)
            break;
    }
    if (good) {
        /* final model, weights and chi^2 at the converged centre */
        render_set(&r, psf->step_px, s->x - (double)s->ix, s->y - (double)s->iy);
        render_fwd(&r, grid, f0);
        double sum = 0;
        for (long q = 0; q < mm; q++)
            sum += f0[q];
        double chi2 = 0, num = 0, den = 0, rc2 = 4.0 * c->fwhm * c->fwhm;
        double ad = 0, am = 0, av = 0, ra2 = 2.25 * c->fwhm * c->fwhm;
        long n = 0;
        for (long q = 0; q < mm; q++) {
            if (!(s->vb[q] > 0)) {
                s->wt[q] = 0;
                continue;
            }
            double mod = flux * f0[q] / sum;
            double fv = fit_variance(s->vb[q], mod, c->gain);
            double res = s->d[q] - mod;
            chi2 += res * res / fv;
            n++;
            /* pixels 2.5 sigma off the current model (a neighbour's wings,
               a faint companion, a defect) stay out of the model's next
               fit: the stars' stamps are combined robustly */
            s->wt[q] = res * res > 6.25 * fv ? 0.0f : (float)(1.0 / fv);
            double dx = (double)(s->ix - m / 2 + q % m) - s->x;
            double dy = (double)(s->iy - m / 2 + q / m) - s->y;
            if (dx * dx + dy * dy <= rc2) {
                num += res * res - (s->vb[q] + (c->gain > 0 && mod > 0 ? mod / c->gain : 0.0));
                den += mod * mod;
            }
            if (dx * dx + dy * dy <= ra2) {
                ad += s->d[q];
                am += mod;
                av += fv;
            }
        }
        s->flux = flux;
        s->chi2 = n > 3 ? chi2 / (double)(n - 3) : INFINITY;
        s->shape = den > 0 ? sqrt(num > 0 ? num / den : 0.0) : INFINITY;
        s->excess = am > 0 ? ad / am - 1.0 : 0.0;
        s->excess_err = am > 0 ? sqrt(av) / am : INFINITY;
        good = isfinite(s->chi2) && sum > 0;
    }
    s->ok = good;
    psf_basis(psf, s->x, s->y, s->b);
    free(grid);
    free(f);
    render_ws_free(&r);
    return SK_OK;
}

/* The scratch of one chunk of the conjugate-gradient operator, made at
 * its first use and kept for all the iterations (each chunk runs on one
 * thread at a time). */
typedef struct cg_scratch {
    double *grid, *img, *g;
    render_ws r;
    int ready;
} cg_scratch;

static int cg_scratch_init(cg_scratch *w, const bctx *c)
{
    if (w->ready)
        return SK_OK;
    long np = (long)c->psf->width * c->psf->height, mm = (long)c->m * c->m;
    w->grid = malloc(sizeof *w->grid * (size_t)np);
    w->img = malloc(sizeof *w->img * (size_t)mm);
    w->g = malloc(sizeof *w->g * (size_t)np);
    w->ready = 1;
    if (!w->grid || !w->img || !w->g)
        return sk_error(SK_EIO, "PSF: out of memory");
    return render_ws_init(&w->r, c->m, c->psf->width, c->psf->height);
}

static void cg_scratch_free(cg_scratch *ws, long n)
{
    for (long i = 0; ws && i < n; i++) {
        free(ws[i].grid);
        free(ws[i].img);
        free(ws[i].g);
        render_ws_free(&ws[i].r);
    }
    free(ws);
}

/* One chunk of stars of the conjugate-gradient operator: into its buffer,
 * sum over its stars of flux * B^T R^T W (mode 1: the data; mode 0:
 * flux * R B v; mode 2: the diagonal). */
PSF_VECTOR
static int cg_chunk(long ch, void *u)
{
    bctx *c = u;
    sk_psf *psf = c->psf;
    int nc = psf->ncomp, m = c->m;
    long np = (long)psf->width * psf->height, mm = (long)m * m;
    double *buf = c->cbuf + ch * nc * np;
    memset(buf, 0, sizeof *buf * (size_t)nc * (size_t)np);
    long k0 = ch * c->nst / c->nchunk, k1 = (ch + 1) * c->nst / c->nchunk;
    cg_scratch *w = &c->cws[ch];
    int st = cg_scratch_init(w, c);
    double *grid = w->grid, *img = w->img, *g = w->g;
    render_ws *r = &w->r;
    for (long k = k0; !st && k < k1; k++) {
        const pstar *s = &c->st[k];
        if (!s->ok)
            continue;
        render_use(r, c->tfx + k * m, c->twx + 6 * k * m, c->tfy + k * m, c->twy + 6 * k * m);
        if (c->cg_mode == 0) {
            grid_from_basis_var(psf, c->cg_in, s->b, c->vpix, c->nvpix, grid);
            render_fwd(r, grid, img);
            double f2 = s->flux * s->flux;
            for (long q = 0; q < mm; q++)
                img[q] *= f2 * s->wt[q];
        } else if (c->cg_mode == 1) {
            for (long q = 0; q < mm; q++)
                img[q] = s->flux * s->wt[q] * s->d[q];
        } else {
            double f2 = s->flux * s->flux;
            for (long q = 0; q < mm; q++)
                img[q] = f2 * s->wt[q];
        }
        memset(g, 0, sizeof *g * (size_t)np);
        render_adj(r, img, c->cg_mode == 2, g);
        for (int i = 0; i < nc; i++) {
            double bi = c->cg_mode == 2 ? s->b[i] * s->b[i] : s->b[i];
            double *o = buf + (long)i * np;
            if (i > 0 && c->cg_mode == 0) {
                /* the terms of the variation outside the core are held
                   at 0 (cg_refine): their products are not needed */
                for (long t = 0; t < c->nvpix; t++)
                    o[c->vpix[t]] += bi * g[c->vpix[t]];
            } else {
                for (long p = 0; p < np; p++)
                    o[p] += bi * g[p];
            }
        }
    }
    return st;
}

/* The interpolation taps of star k at its current centre, kept for the
 * operator's many applications. */
static int star_taps(long k, void *u)
{
    bctx *c = u;
    const pstar *s = &c->st[k];
    int m = c->m;
    double step = c->psf->step_px;
    axis_taps(c->psf->width, step, m, s->x - (double)s->ix, c->tfx + k * m, c->twx + 6 * k * m);
    axis_taps(c->psf->height, step, m, s->y - (double)s->iy, c->tfy + k * m, c->twy + 6 * k * m);
    return SK_OK;
}

/* out = sum of the chunk buffers for the current mode (fixed order). */
static int cg_apply(bctx *c, int mode, const double *in, double *out, int threads)
{
    long n = (long)c->psf->ncomp * c->psf->width * c->psf->height;
    c->cg_mode = mode;
    c->cg_in = in;
    int st = sk_parallel_for_each(c->nchunk, threads, cg_chunk, c);
    if (st)
        return st;
    memset(out, 0, sizeof *out * (size_t)n);
    for (long ch = 0; ch < c->nchunk; ch++) {
        const double *b = c->cbuf + ch * n;
        for (long i = 0; i < n; i++)
            out[i] += b[i];
    }
    return SK_OK;
}

/* Smoothness penalty: lambda_k * the sum of squared differences of
 * neighbouring model pixels of component k: out += L v. */
static void reg_apply(const sk_psf *psf, const double *lambda, const double *v, double *out)
{
    int gw = psf->width, gh = psf->height;
    long np = (long)gw * gh;
    for (int k = 0; k < psf->ncomp; k++) {
        const double *vk = v + k * np;
        double *ok = out + k * np, lam = lambda[k];
        for (int b = 0; b < gh; b++)
            for (int a = 0; a < gw; a++) {
                long p = (long)b * gw + a;
                double acc = 0;
                if (a > 0) acc += vk[p] - vk[p - 1];
                if (a < gw - 1) acc += vk[p] - vk[p + 1];
                if (b > 0) acc += vk[p] - vk[p - gw];
                if (b < gh - 1) acc += vk[p] - vk[p + gw];
                ok[p] += lam * acc;
            }
    }
}

/* Refine c->comp: minimise sum_stars sum_pixels w (d - flux R B comp)^2 +
 * smoothness, by Jacobi-preconditioned conjugate gradients from the
 * current model, until the preconditioned residual is CG_TOLERANCE of the
 * right-hand side's (squared norms; below it the PSF fluxes change by
 * a few 1e-6, far below their noise). */
static int cg_refine(bctx *c, int threads, int maxit)
{
    sk_psf *psf = c->psf;
    int nc = psf->ncomp;
    long np = (long)psf->width * psf->height, n = nc * np;
    double *rhs = malloc(sizeof *rhs * (size_t)n), *diag = malloc(sizeof *diag * (size_t)n);
    double *res = malloc(sizeof *res * (size_t)n), *z = malloc(sizeof *z * (size_t)n);
    double *pdir = malloc(sizeof *pdir * (size_t)n), *hp = malloc(sizeof *hp * (size_t)n);
    int st = (rhs && diag && res && z && pdir && hp) ? SK_OK : sk_error(SK_EIO, "PSF: out of memory");
    double lambda[64];
    double *work = malloc(sizeof *work * (size_t)np);
    long *vpix = malloc(sizeof *vpix * (size_t)np);
    if (!st && (!work || !vpix))
        st = sk_error(SK_EIO, "PSF: out of memory");
    if (!st)
        st = sk_parallel_for_each(c->nst, threads, star_taps, c);
    if (!st)
        st = cg_apply(c, 1, NULL, rhs, threads);
    if (!st)
        st = cg_apply(c, 2, NULL, diag, threads);
    if (!st) {
        /* Relative to the median data curvature of each component: a faint
           smoothness for the mean PSF (1e-6, for model pixels no star
           constrains), a stronger one for the terms of the variation
           (3e-3), whose pixel-to-pixel noise would otherwise make the PSF
           erratic where few stars are */
        for (int k = 0; k < nc; k++) {
            memcpy(work, diag + k * np, sizeof *work * (size_t)np);
            double ref = sk_median_double(work, np);
            lambda[k] = (k ? 3e-3 : 1e-6) * ref;
            if (!(lambda[k] > 0))
                lambda[k] = 1e-30;
            for (long p = 0; p < np; p++)
                diag[k * np + p] += 4.0 * lambda[k];
        }
        /* The terms of the variation live within VAR_RADIUS_FWHM of the
           centre: the core, where the stars tell how the PSF changes; the
           wings, which only the brightest stars measure, are common to
           the whole image (fitting their variation too fits noise). */
        double rv = VAR_RADIUS_FWHM * c->fwhm / psf->step_px;
        for (long p = 0; p < np; p++) {
            double a = (double)(p % psf->width - psf->width / 2), b = (double)(p / psf->width - psf->height / 2);
            work[p] = a * a + b * b <= rv * rv ? 1.0 : 0.0;
        }
        for (int k = 1; k < nc; k++)
            for (long p = 0; p < np; p++) {
                c->comp[k * np + p] *= work[p];
                diag[k * np + p] = work[p] > 0 ? diag[k * np + p] : INFINITY;
            }
        c->nvpix = 0;
        for (long p = 0; p < np; p++)
            if (work[p] > 0)
                vpix[c->nvpix++] = p;
        c->vpix = vpix;
        st = cg_apply(c, 0, c->comp, hp, threads);
    }
    if (!st) {
        reg_apply(psf, lambda, c->comp, hp);
        double rz = 0, r0 = 0;
        for (long i = 0; i < n; i++) {
            res[i] = rhs[i] - hp[i];
            z[i] = res[i] / diag[i];
            pdir[i] = z[i];
            rz += res[i] * z[i];
            r0 += rhs[i] * rhs[i] / diag[i];
        }
        for (int it = 0; it < maxit && !st; it++) {
            if (!(rz > CG_TOLERANCE * r0))
                break;
            st = cg_apply(c, 0, pdir, hp, threads);
            if (st)
                break;
            reg_apply(psf, lambda, pdir, hp);
            double pap = 0;
            for (long i = 0; i < n; i++)
                pap += pdir[i] * hp[i];
            if (!(pap > 0))
                break;
            double alpha = rz / pap, rz_new = 0;
            for (long i = 0; i < n; i++) {
                c->comp[i] += alpha * pdir[i];
                res[i] -= alpha * hp[i];
                z[i] = res[i] / diag[i];
                rz_new += res[i] * z[i];
            }
            double beta = rz_new / rz;
            rz = rz_new;
            for (long i = 0; i < n; i++)
                pdir[i] = z[i] + beta * pdir[i];
        }
    }
    c->vpix = NULL;
    c->nvpix = 0;
    free(vpix);
    free(work);
    free(rhs);
    free(diag);
    free(res);
    free(z);
    free(pdir);
    free(hp);
    return st;
}

/* Scale the model so that it sums to 1 on image pixels at the image centre. */
static int normalise_model(bctx *c)
{
    sk_psf *psf = c->psf;
    long np = (long)psf->width * psf->height;
    double b[64];
    double cx = 0.5 * (double)(psf->image_width - 1), cy = 0.5 * (double)(psf->image_height - 1);
    psf_basis(psf, cx, cy, b);
    double *grid = malloc(sizeof *grid * (size_t)np);
    double *img = malloc(sizeof *img * (size_t)c->m * (size_t)c->m);
    render_ws r;
    memset(&r, 0, sizeof r);
    int st = (grid && img) ? render_ws_init(&r, c->m, psf->width, psf->height)
                           : sk_error(SK_EIO, "PSF: out of memory");
    if (!st) {
        grid_from_basis(psf, c->comp, b, grid);
        render_set(&r, psf->step_px, 0, 0);
        render_fwd(&r, grid, img);
        double sum = 0;
        for (long q = 0; q < (long)c->m * c->m; q++)
            sum += img[q];
        if (!(sum > 0))
            st = sk_error(SK_ENOTFOUND, "PSF: the fitted model has no positive flux");
        else
            for (long i = 0; i < (long)psf->ncomp * np; i++)
                c->comp[i] /= sum;
    }
    free(grid);
    free(img);
    render_ws_free(&r);
    return st;
}

/* Median and robust scale (1.4826 MAD) of a star statistic over the
 * stars still in; 0 when fewer than 3. */
static int robust_stats(const bctx *c, int which, double *med, double *scale)
{
    double *v = malloc(sizeof *v * (size_t)(c->nst + 1));
    if (!v)
        return 0;
    long n = 0;
    for (long k = 0; k < c->nst; k++)
        if (c->st[k].ok)
            v[n++] = which ? c->st[k].shape : c->st[k].chi2;
    if (n < 3) {
        free(v);
        return 0;
    }
    sk_median_mad(v, n, med, scale);
    free(v);
    return 1;
}

/* A star's excess of light within 1.5 FWHM over what the model predicts
 * from its PSF-fit flux, in units of its noise (plus a floor of 0.2 % for
 * the model's own errors), about the median excess `med`. */
static double excess_z(const pstar *s, double med)
{
    const double floor_rel = 0.002;
    return (s->excess - med) / sqrt(s->excess_err * s->excess_err + floor_rel * floor_rel);
}

/* The median light excess of the stars still in (*med) and the limit on
 * excess_z() above which a star is more extended than the PSF
 * (*lim: clip_sigma times the robust scale of excess_z, at least 1); 0
 * when fewer than 5 stars or out of memory. */
static int excess_limit(const bctx *c, double clip_sigma, double *med, double *lim)
{
    double *v = malloc(sizeof *v * (size_t)(c->nst + 1));
    long n = 0;
    for (long k = 0; v && k < c->nst; k++)
        if (c->st[k].ok)
            v[n++] = c->st[k].excess;
    if (n < 5) {
        free(v);
        return 0;
    }
    *med = sk_median_double(v, n);
    n = 0;
    for (long k = 0; k < c->nst; k++)
        if (c->st[k].ok)
            v[n++] = excess_z(&c->st[k], *med);
    double mz = 0, sz = 0;
    sk_median_mad(v, n, &mz, &sz);
    *lim = clip_sigma * fmax(sz, 1.0);
    free(v);
    return 1;
}

/* Reject the stars that the model does not fit: a shape mismatch (rms
 * residual beyond the noise within 2 FWHM, relative to the star) above
 * the median + clip_sigma robust scales and above 6 % (galaxies and
 * doubles show 10 % and more; the model's own errors on bright stars a
 * few %), or a chi^2 above the median + clip_sigma times the larger of its
 * robust scale and the median (gross defects: the chi^2 of bright stars
 * grows with the model's small errors, which must not clip them), or more
 * light within 1.5 FWHM than the model predicts from the PSF-fit flux by
 * clip_sigma robust scales of excess_z() (compact galaxies and unresolved
 * pairs: their cores match the locus, but their extra light around the
 * core would broaden the model, most where the polynomial lets a few
 * bright ones pull it, and make every PSF flux too bright).
 * Returns how many stars remain. */
static long clip_stars(bctx *c, double clip_sigma, double *med_out)
{
    double med_c = 0, sc_c = 0, med_s = 0, sc_s = 0;
    *med_out = NAN;
    if (!robust_stats(c, 0, &med_c, &sc_c) || !robust_stats(c, 1, &med_s, &sc_s)) {
        long n = 0;
        for (long k = 0; k < c->nst; k++)
            n += c->st[k].ok;
        return n;
    }
    *med_out = med_c;
    double lim_c = med_c + clip_sigma * fmax(sc_c, fmax(med_c, 0.5));
    double lim_s = fmax(med_s + clip_sigma * sc_s, 0.06);
    double med_e = 0, lim_e = INFINITY;
    if (!excess_limit(c, clip_sigma, &med_e, &lim_e))
        lim_e = INFINITY;
    long kept = 0;
    for (long k = 0; k < c->nst; k++) {
        pstar *s = &c->st[k];
        if (!s->ok)
            continue;
        double z = excess_z(s, med_e);
        if (s->chi2 > lim_c || s->shape > lim_s || z > lim_e) {
            sk_debug("PSF: star at %.1f %.1f clipped: chi2 %.3f (limit %.3f), shape %.4f (limit %.4f), "
                     "extended %.1f sigma (limit %.1f)", s->x, s->y, s->chi2, lim_c, s->shape, lim_s,
                     z, lim_e);
            s->ok = 0;
        }
        else
            kept++;
    }
    return kept;
}

/* Hold the mean PSF-fit centre on the mean windowed centroid (the model's
 * centre is otherwise free to drift with the stars' centres). */
static void anchor_centres(bctx *c)
{
    double sx = 0, sy = 0;
    long n = 0;
    for (long k = 0; k < c->nst; k++)
        if (c->st[k].ok) {
            sx += c->st[k].x - c->st[k].x0;
            sy += c->st[k].y - c->st[k].y0;
            n++;
        }
    if (!n)
        return;
    sx /= (double)n;
    sy /= (double)n;
    for (long k = 0; k < c->nst; k++) {
        c->st[k].x -= sx;
        c->st[k].y -= sy;
        psf_basis(c->psf, c->st[k].x, c->st[k].y, c->st[k].b);
    }
}

/* The width (px) that sizes the model's grid and its wings' radii: the
 * stellar locus's FWHM, but at least a pixel. The model is the PSF as the
 * pixels sample it, never narrower than a pixel: for stars sharper than
 * that, a grid step from their FWHM is not constrained by the stars'
 * pixels and rings (the model's sum may even turn negative), and curve-of-
 * growth radii inside one pixel see only the pixel's own shape. */
static double psf_model_width(double locus_px)
{
    return fmax(locus_px, 1.0);
}

/* The model's frame, grid and degree: the image's centre and size for the
 * polynomial, the grid step (px) and size from the stellar locus's FWHM
 * `locus` (or as asked), and the degree lowered until there are three
 * stars per term (the step from psf_model_width). Returns the side of the
 * stamps cut around the stars. */
static int psf_geometry(sk_psf *psf, const sk_image *img, const sk_psf_params *p, double locus,
                        long nstar, long nloaded)
{
    psf->image_width = img->width;
    psf->image_height = img->height;
    psf->xzero = 0.5 * ((double)img->width + 1.0);
    psf->yzero = 0.5 * ((double)img->height + 1.0);
    psf->xscale = (double)img->width;
    psf->yscale = (double)img->height;
    psf->step_px = p->oversampling > 0 ? 1.0 / p->oversampling : fmin(1.0, psf_model_width(locus) / 4.7);
    int m = p->size_px > 0 ? p->size_px : 2 * (int)ceil(4.0 * locus) + 1;
    if (m < 11 && p->size_px <= 0)
        m = 11;
    int half = (int)ceil((double)(m / 2) / psf->step_px - 1e-9);
    psf->width = psf->height = 2 * half + 1;
    int degree = p->degree;
    while (degree > 0 && nstar < 3 * NTERMS(degree))
        degree--;
    if (degree < p->degree)
        sk_info("PSF: %ld stars: polynomial degree lowered from %d to %d", nstar, p->degree, degree);
    psf->degree = degree;
    psf->ncomp = NTERMS(degree);
    psf->nloaded = nloaded;
    return m;
}

/* The build's state: the stars idx[0..nstar-1] of `sources` at their
 * windowed centroids with their AUTO (else isophotal) flux, the pixel
 * variance, the model's components. */
static int build_init(bctx *c, const sk_image *img, const sk_background *bg,
                      const sk_source_list *sources, const int32_t *segmap, const sk_psf_params *p,
                      sk_psf *psf, int m, double locus, const long *idx, long nstar, int threads)
{
    long np = (long)psf->width * psf->height;
    c->img = img;
    c->level = bg ? bg->level : NULL;
    c->var = bg ? sk_pixel_variance_threads(img, bg, threads) : NULL;
    c->seg = segmap;
    c->psf = psf;
    c->m = m;
    c->gain = p->gain;
    c->fwhm = locus;
    c->nst = nstar;
    c->st = calloc((size_t)nstar, sizeof *c->st);
    c->comp = calloc((size_t)psf->ncomp * (size_t)np, sizeof *c->comp);
    c->nchunk = nstar < 32 ? nstar : 32;
    c->cbuf = malloc(sizeof *c->cbuf * (size_t)c->nchunk * (size_t)psf->ncomp * (size_t)np);
    c->cws = calloc((size_t)c->nchunk, sizeof *c->cws);
    c->tfx = malloc(sizeof *c->tfx * (size_t)nstar * (size_t)m);
    c->tfy = malloc(sizeof *c->tfy * (size_t)nstar * (size_t)m);
    c->twx = malloc(sizeof *c->twx * 6 * (size_t)nstar * (size_t)m);
    c->twy = malloc(sizeof *c->twy * 6 * (size_t)nstar * (size_t)m);
    if (!bg)
        return sk_error(SK_EINPUT, "PSF: no background given");
    if (!c->var || !c->st || !c->comp || !c->cbuf || !c->cws || !c->tfx || !c->tfy || !c->twx || !c->twy)
        return sk_error(SK_EIO, "PSF: out of memory for %ld stars", nstar);
    for (long k = 0; k < nstar; k++) {
        const sk_source *s = &sources->src[idx[k]];
        c->st[k].src = idx[k];
        c->st[k].x0 = c->st[k].x = s->xwin;
        c->st[k].y0 = c->st[k].y = s->ywin;
        c->st[k].flux = s->flux_auto > 0 ? s->flux_auto : s->flux_iso;
    }
    return SK_OK;
}

/* The first model: the stars' stamps resampled onto the model grid and
 * stacked pixel by pixel (a polynomial of the position per pixel). */
static int stack_model(bctx *c, int threads)
{
    long nstar = c->nst, np = (long)c->psf->width * c->psf->height;
    c->sv = malloc(sizeof *c->sv * (size_t)nstar * (size_t)np);
    c->sw = malloc(sizeof *c->sw * (size_t)nstar * (size_t)np);
    int st = SK_OK;
    if (!c->sv || !c->sw)
        st = sk_error(SK_EIO, "PSF: out of memory for %ld stars", nstar);
    if (!st)
        st = sk_parallel_for_each(nstar, threads, stack_sample, c);
    if (!st)
        st = sk_parallel_for_each(np, threads, stack_pixel, c);
    free(c->sv);
    free(c->sw);
    c->sv = c->sw = NULL;
    if (!st)
        st = normalise_model(c);
    return st;
}

static int subtract_star_neighbours(long k, void *u)
{
    bctx *c = u;
    pstar *s = &c->st[k];
    return psf_nbrs_subtract(&c->nb, k, c->nmodel, c->m, s->ix, s->iy, s->d0, s->vb, s->d);
}

/* The stars' neighbours taken out of their stamps as cut, with their
 * fluxes fitted by the current model (psf_neighbours.c). */
static int take_out_neighbours(bctx *c, int threads)
{
    if (!c->nb.n)
        return SK_OK;
    sk_psf model = *c->psf;
    long nv = (long)model.ncomp * model.width * model.height;
    model.comp = malloc(sizeof *model.comp * (size_t)nv);
    if (!model.comp)
        return sk_error(SK_EIO, "PSF: out of memory");
    for (long i = 0; i < nv; i++)
        model.comp[i] = (float)c->comp[i];
    model.fwhm_px = c->fwhm;
    int st = psf_nbrs_fit(&c->nb, &model, c->img, c->level, c->var, c->seg, c->gain, threads);
    c->nmodel = &model;
    if (!st)
        st = sk_parallel_for_each(c->nst, threads, subtract_star_neighbours, c);
    c->nmodel = NULL;
    free(model.comp);
    return st;
}

/* Rounds of the stars' fluxes and centres, their clipping (from the
 * second round on: the stacked model is too rough to judge stars by) and
 * the forward-model fit; a last refit of the stars to the final model. */
static int fit_rounds(bctx *c, double clip_sigma, int threads)
{
    long nstar = c->nst;
    double med_chi2 = NAN;
    const int rounds = 3;
    for (int round = 0; round <= rounds; round++) {
        long before = 0, after = 0;
        for (long k = 0; k < nstar; k++)
            before += c->st[k].ok;
        int st = take_out_neighbours(c, threads);
        if (!st)
            st = sk_parallel_for_each(nstar, threads, refit_star, c);
        if (st)
            return st;
        for (long k = 0; k < nstar; k++)
            after += c->st[k].ok;
        sk_debug("PSF: round %d: %ld of %ld stars fitted", round, after, before);
        anchor_centres(c);
        long kept = round ? clip_stars(c, clip_sigma, &med_chi2) : after;
        sk_debug("PSF: round %d: %ld stars kept, median chi2 %.3f", round, kept, med_chi2);
        if (kept < 3)
            return sk_error(SK_ENOTFOUND, "PSF: only %ld of %ld stars fit the model (need at least 3)",
                            kept, nstar);
        if (round == rounds)
            break;
        st = cg_refine(c, threads, 40);
        if (!st)
            st = normalise_model(c);
        if (st)
            return st;
    }
    return sk_parallel_for_each(nstar, threads, refit_star, c);
}

/* The fitted model into psf: its components (as floats), the accepted
 * stars with their positions, fluxes and chi^2, the median chi^2 and the
 * FWHM at the image centre. */
static int store_model(sk_psf *psf, const bctx *c, const sk_image *img)
{
    long np = (long)psf->width * psf->height, nstar = c->nst;
    psf->comp = malloc(sizeof *psf->comp * (size_t)psf->ncomp * (size_t)np);
    long nok = 0;
    for (long k = 0; k < nstar; k++)
        nok += c->st[k].ok;
    psf->stars = malloc(sizeof *psf->stars * (size_t)(nok + 1));
    psf->star_x = malloc(sizeof *psf->star_x * (size_t)(nok + 1));
    psf->star_y = malloc(sizeof *psf->star_y * (size_t)(nok + 1));
    psf->star_flux = malloc(sizeof *psf->star_flux * (size_t)(nok + 1));
    psf->star_chi2 = malloc(sizeof *psf->star_chi2 * (size_t)(nok + 1));
    if (!psf->comp || !psf->stars || !psf->star_x || !psf->star_y || !psf->star_flux ||
        !psf->star_chi2)
        return sk_error(SK_EIO, "PSF: out of memory");
    for (long i = 0; i < (long)psf->ncomp * np; i++)
        psf->comp[i] = (float)c->comp[i];
    long j = 0;
    double *chi = malloc(sizeof *chi * (size_t)(nok + 1));
    for (long k = 0; k < nstar; k++) {
        if (!c->st[k].ok)
            continue;
        psf->stars[j] = c->st[k].src;
        psf->star_x[j] = c->st[k].x;
        psf->star_y[j] = c->st[k].y;
        psf->star_flux[j] = c->st[k].flux;
        psf->star_chi2[j] = c->st[k].chi2;
        if (chi)
            chi[j] = c->st[k].chi2;
        j++;
    }
    psf->naccepted = nok;
    psf->chi2 = chi && nok ? sk_median_double(chi, nok) : NAN;
    free(chi);
    psf->fwhm_px = sk_psf_fwhm_at(psf, 0.5 * (double)(img->width - 1), 0.5 * (double)(img->height - 1));
    sk_debug("PSF: %ld/%ld stars, %dx%d model at step %.3f px, degree %d, FWHM %.3f px, "
             "chi2 %.3f", nok, psf->nloaded, psf->width, psf->height, psf->step_px, psf->degree,
             psf->fwhm_px, psf->chi2);
    return SK_OK;
}

int sk_psf_build(const sk_image *img, const sk_background *bg, const sk_source_list *sources,
                 const int32_t *segmap, const sk_psf_params *p, int threads, sk_psf **out)
{
    *out = NULL;
    if (!p->enabled)
        return SK_OK;
    if (threads < 1)
        threads = 1;
    if (p->degree < 0 || p->degree > 8)
        return sk_error(SK_EINPUT, "PSF: polynomial degree %d is outside [0, 8]", p->degree);
    long *idx = NULL, nstar = 0, nloaded = 0;
    double locus = 0;
    int st = select_stars(img, bg, sources, p, threads, &idx, &nstar, &nloaded, &locus);
    if (st)
        return st;

    sk_psf *psf = calloc(1, sizeof *psf);
    bctx c;
    memset(&c, 0, sizeof c);
    if (!psf) {
        free(idx);
        return sk_error(SK_EIO, "PSF: out of memory");
    }
    int m = psf_geometry(psf, img, p, locus, nstar, nloaded);
    st = build_init(&c, img, bg, sources, segmap, p, psf, m, locus, idx, nstar, threads);
    if (!st)
        st = sk_parallel_for_each(nstar, threads, cut_stamp, &c);
    if (!st)
        st = psf_nbrs_find(sources, idx, nstar, 0.5 * (double)m + 2.0 * locus, &c.nb);
    if (!st)
        st = stack_model(&c, threads);
    if (!st)
        st = fit_rounds(&c, p->clip_sigma, threads);
    if (!st)
        st = sk_psf_fit_wings(c.comp, psf->ncomp, psf->width, psf->height, psf->step_px,
                              psf_model_width(c.fwhm), m);
    if (!st)
        st = normalise_model(&c);
    if (!st)
        st = store_model(psf, &c, img);
    for (long k = 0; c.st && k < nstar; k++)
        star_free(&c.st[k]);
    free(c.st);
    psf_nbrs_free(&c.nb);
    free(c.comp);
    free(c.cbuf);
    cg_scratch_free(c.cws, c.nchunk);
    free(c.tfx);
    free(c.tfy);
    free(c.twx);
    free(c.twy);
    free((void *)c.var);
    free(idx);
    if (st) {
        sk_psf_free(psf);
        return st;
    }
    *out = psf;
    return SK_OK;
}
