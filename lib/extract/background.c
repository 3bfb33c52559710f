/* background.c: the background and rms maps of an image: per-cell clipped mode estimates, median filter over cells, bicubic spline interpolation to every pixel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "extract_priv.h"
#include "numeric/linsolve.h"
#include "numeric/select.h"
#include "numeric/spline.h"
#include "numeric/stats.h"
#include "extract_internal.h"

void sk_background_params_default(sk_background_params *p)
{
    p->mesh_px = 64;
    p->filter_size = 3;
    p->clip_sigma = 3.0;
    p->clip_iterations = 5;
    p->sample_step = 1;
}

void sk_background_free(sk_background *bg)
{
    if (!bg)
        return;
    free(bg->mesh_level);
    free(bg->mesh_rms);
    free(bg->level);
    free(bg->rms);
    free(bg);
}

/* Ratio of the standard deviation of a normal distribution truncated at
 * +-k sigma to sigma. */
static double clip_std_factor(double k)
{
    double phi = exp(-0.5 * k * k) / sqrt(2.0 * M_PI);
    double inside = erf(k / M_SQRT2);
    double var = 1.0 - 2.0 * k * phi / inside;
    return var > 0 ? sqrt(var) : 1.0;
}

#define MEDIAN_BINS 4096

/* Median of r[0..n-1] from a histogram of MEDIAN_BINS bins over [lo, hi]
 * (values outside count below or above), interpolated linearly inside the
 * bin that holds it: within (hi - lo) / MEDIAN_BINS of the exact median,
 * 0.0025 sigma for the range of +-5 sigma used here, in one pass. `hist`
 * holds MEDIAN_BINS + 2 counts. */
static double hist_median(const float *r, long n, double lo, double hi, uint32_t *hist)
{
    if (!(hi > lo))
        return lo;
    /* slot 0 counts the values below lo, slots 1..MEDIAN_BINS the bins,
       slot MEDIAN_BINS + 1 those above hi (no branch per value) */
    memset(hist, 0, sizeof *hist * (MEDIAN_BINS + 2));
    double scale = MEDIAN_BINS / (hi - lo);
    for (long i = 0; i < n; i++) {
        double t = (r[i] - lo) * scale + 1.0;
        t = t > 0 ? t : 0;
        t = t < MEDIAN_BINS + 1 ? t : MEDIAN_BINS + 1;
        hist[(long)t]++;
    }
    long below = hist[0];
    hist++;
    double half = 0.5 * (double)n, cum = (double)below;
    if (cum >= half)
        return lo;
    for (int b = 0; b < MEDIAN_BINS; b++) {
        if (cum + hist[b] >= half)
            return lo + ((double)b + (half - cum) / (double)hist[b]) / scale;
        cum += hist[b];
    }
    return hi;
}

/* How a cell's level was estimated. */
enum cell_estimator { CELL_MEAN, CELL_MODE, CELL_MEDIAN };

/* Clipped level and sigma of the n values v at offsets (dx, dy) from the
 * cell centre. Each pass removes a least-squares plane, so that a gradient
 * across the cell neither widens the distribution nor, with pixels missing
 * on one side, shifts the level: the statistics are those of the residuals
 * about the plane's tilt, i.e. the level at the cell centre. The level is
 * the clipped mean when `want_mean` (objects masked: what is left is sky
 * and the light of undetected sources, whose mean belongs to the
 * background of every aperture), else the mode 2.5 median - 1.5 mean; the
 * median when mean and median differ by more than 0.3 sigma (a skewed
 * cell). v, dx, dy are compacted as values are clipped; r holds n values.
 * Returns 0 when there are too few values. */
static int cell_stats(float *v, float *dx, float *dy, long n, double clip_sigma, int iterations,
                      int want_mean, float *r, uint32_t *hist, double *level, double *sigma,
                      double *level_err)
{
    double factor = clip_std_factor(clip_sigma);
    int clipped = 0;
    double med = 0, mean = 0, sig = 0;
    int settled = 0;
    for (int it = 0;; it++) {
        if (n < 8)
            return 0;
        double s1 = (double)n, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, sv = 0, sxv = 0, syv = 0;
        for (long i = 0; i < n; i++) {
            double x = dx[i], y = dy[i], z = v[i];
            sx += x;
            sy += y;
            sxx += x * x;
            syy += y * y;
            sxy += x * y;
            sv += z;
            sxv += x * z;
            syv += y * z;
        }
        /* normal equations of z = a + b x + c y, solved for b and c */
        double m11 = sxx - sx * sx / s1, m22 = syy - sy * sy / s1, m12 = sxy - sx * sy / s1;
        double r1 = sxv - sx * sv / s1, r2 = syv - sy * sv / s1;
        double det = m11 * m22 - m12 * m12;
        double bx = 0, cy = 0;
        int dof = 1;
        if (det > 1e-9 * (m11 * m22 + 1e-30) && det > 0) {
            bx = (r1 * m22 - r2 * m12) / det;
            cy = (r2 * m11 - r1 * m12) / det;
            dof = 3;
        }
        /* (four partial sums: independent chains of additions) */
        double sa[4] = { 0, 0, 0, 0 };
        long i = 0;
        for (; i + 4 <= n; i += 4)
            for (int k = 0; k < 4; k++) {
                r[i + k] = (float)(v[i + k] - bx * dx[i + k] - cy * dy[i + k]);
                sa[k] += r[i + k];
            }
        for (; i < n; i++) {
            r[i] = (float)(v[i] - bx * dx[i] - cy * dy[i]);
            sa[0] += r[i];
        }
        mean = (sa[0] + sa[1] + sa[2] + sa[3]) / (double)n;
        double sd[4] = { 0, 0, 0, 0 };
        for (i = 0; i + 4 <= n; i += 4)
            for (int k = 0; k < 4; k++) {
                double d = r[i + k] - mean;
                sd[k] += d * d;
            }
        for (; i < n; i++) {
            double d = r[i] - mean;
            sd[0] += d * d;
        }
        double s2 = sd[0] + sd[1] + sd[2] + sd[3];
        sig = sqrt(s2 / (double)(n - dof));
        if (clipped)
            sig /= factor;
        med = hist_median(r, n, mean - 5 * sig, mean + 5 * sig, hist);
        if (it >= iterations || sig <= 0 || settled)
            break;
        double lo = med - clip_sigma * sig, hi = med + clip_sigma * sig;
        long m = 0;
        for (long j = 0; j < n; j++) {
            /* (written whatever, kept when inside: no branch per value) */
            v[m] = v[j];
            dx[m] = dx[j];
            dy[m] = dy[j];
            m += r[j] >= lo && r[j] <= hi;
        }
        if (m == n)
            break;
        /* fewer than 1 in 2000 values clipped: one last pass on the
           clipped set and stop */
        settled = (n - m) * 2000 < n;
        n = m;
        clipped = 1;
    }
    enum cell_estimator how = !(sig > 0) || fabs(mean - med) >= 0.3 * sig ? CELL_MEDIAN
                              : want_mean                                   ? CELL_MEAN
                                                                            : CELL_MODE;
    *level = how == CELL_MEAN ? mean : how == CELL_MODE ? 2.5 * med - 1.5 * mean : med;
    *sigma = sig;
    /* 1-sigma error of the level for normal data: the clipped values'
       spread / sqrt(n) for the mean; var(2.5 med - 1.5 mean) =
       (6.25 pi/2 + 2.25 - 7.5) sigma^2/n for the mode; sqrt(pi/2) sigma /
       sqrt(n) for the median */
    double k = how == CELL_MEAN ? (clipped ? factor : 1.0) : how == CELL_MODE ? 2.14 : 1.25;
    *level_err = k * sig / sqrt((double)n);
    return 1;
}

struct cell_job {
    const sk_image *img;
    const uint8_t *mask;
    const sk_background_params *p;
    sk_background *bg;
    unsigned char *valid;
    float *err;            /* per cell: error of the level estimate */
};

/* The usable pixels of cell c (every sample_step-th along x and y), and
 * their offsets from its centre, into v, dx, dy; those under the mask are
 * left out when use_mask. Returns their number; *area is the number of
 * sampled pixels, *usable those usable whatever the mask. */
static long cell_gather(const struct cell_job *J, long c, int use_mask, float *v, float *vdx,
                        float *vdy, long *area, long *usable)
{
    const sk_image *img = J->img;
    const sk_background *bg = J->bg;
    int mesh = bg->mesh_px;
    long cx = c % bg->nx, cy = c / bg->nx;
    long x0 = cx * mesh, y0 = cy * mesh;
    long x1 = x0 + mesh < img->width ? x0 + mesh : img->width;
    long y1 = y0 + mesh < img->height ? y0 + mesh : img->height;
    double xc = 0.5 * (double)(x0 + x1 - 1), yc = 0.5 * (double)(y0 + y1 - 1);
    long n = 0, nu = 0, step = J->p->sample_step > 1 ? J->p->sample_step : 1;
    for (long y = y0; y < y1; y += step) {
        const float *s = img->sci + y * img->width;
        const float *w = img->weight + y * img->width;
        const uint16_t *f = img->flags + y * img->width;
        const uint8_t *mk = use_mask && J->mask ? J->mask + y * img->width : NULL;
        float fy = (float)((double)y - yc);
        for (long x = x0; x < x1; x += step) {
            /* (written whatever, kept when usable: no branch per pixel) */
            v[n] = s[x];
            vdx[n] = (float)((double)x - xc);
            vdy[n] = fy;
            int ok = w[x] > 0 && f[x] == 0 && isfinite(s[x]);
            nu += ok;
            n += ok && !(mk && mk[x]);
        }
    }
    *area = ((x1 - x0 + step - 1) / step) * ((y1 - y0 + step - 1) / step);
    *usable = nu;
    return n;
}

static int cell_range(long begin, long end, void *user)
{
    struct cell_job *J = user;
    sk_background *bg = J->bg;
    int mesh = bg->mesh_px;
    size_t cap = (size_t)mesh * (size_t)mesh;
    float *buf = malloc(sizeof *buf * (cap * 4 + 1));
    uint32_t *bw = malloc(sizeof *bw * (MEDIAN_BINS + 2));
    if (!buf || !bw) {
        free(buf);
        free(bw);
        return sk_error(SK_EIO, "background: out of memory");
    }
    float *bdx = buf + cap, *bdy = buf + 2 * cap, *br = buf + 3 * cap;
    for (long c = begin; c < end; c++) {
        long area = 0, usable = 0;
        long n = cell_gather(J, c, 1, buf, bdx, bdy, &area, &usable);
        int masked = J->mask != NULL;
        /* A crowded cell, where the objects cover nine tenths of it:
           the faint stars' unresolved light between them is part of its
           background, which the unmasked mode estimates (as Source
           Extractor's does); the few pixels between masked stars would
           only give the darkest gaps. */
        if (masked && 10 * n < usable) {
            n = cell_gather(J, c, 0, buf, bdx, bdy, &area, &usable);
            masked = 0;
        }
        double level = 0, sigma = 0, level_err = 0;
        J->valid[c] = 0;
        /* enough pixels: a quarter of the cell, or with objects masked
           a twentieth */
        if (n >= 16 && (masked ? 20 * n >= area : 4 * n >= area) &&
            cell_stats(buf, bdx, bdy, n, J->p->clip_sigma, J->p->clip_iterations, masked, br,
                       bw, &level, &sigma, &level_err) &&
            sigma > 0) {
            bg->mesh_level[c] = (float)level;
            bg->mesh_rms[c] = (float)sigma;
            J->valid[c] = 1;
            J->err[c] = (float)level_err;
        }
    }
    free(buf);
    free(bw);
    return SK_OK;
}

/* Give cells without a value the mean of their valid neighbours, growing
 * outwards until every cell has one. */
static void fill_cells(sk_background *bg, unsigned char *valid)
{
    long nc = bg->nx * bg->ny;
    unsigned char *next = malloc((size_t)nc);
    for (;;) {
        int missing = 0;
        memcpy(next, valid, (size_t)nc);
        for (long c = 0; c < nc; c++) {
            if (valid[c])
                continue;
            long cx = c % bg->nx, cy = c / bg->nx;
            double sl = 0, sr = 0;
            int k = 0;
            for (long dy = -1; dy <= 1; dy++)
                for (long dx = -1; dx <= 1; dx++) {
                    long xx = cx + dx, yy = cy + dy;
                    if (xx < 0 || yy < 0 || xx >= bg->nx || yy >= bg->ny)
                        continue;
                    long o = yy * bg->nx + xx;
                    if (valid[o]) {
                        sl += bg->mesh_level[o];
                        sr += bg->mesh_rms[o];
                        k++;
                    }
                }
            if (k) {
                bg->mesh_level[c] = (float)(sl / k);
                bg->mesh_rms[c] = (float)(sr / k);
                next[c] = 1;
            } else {
                missing = 1;
            }
        }
        memcpy(valid, next, (size_t)nc);
        if (!missing)
            break;
    }
    free(next);
}

/* The window of f x f cells about cell (cx, cy), kept symmetric at the
 * borders (so that a plane passes unchanged), into win; returns its size. */
static long cell_window(const float *m, long nx, long ny, long cx, long cy, int h, float *win)
{
    long hx = h, hy = h;
    if (cx < hx) hx = cx;
    if (nx - 1 - cx < hx) hx = nx - 1 - cx;
    if (cy < hy) hy = cy;
    if (ny - 1 - cy < hy) hy = ny - 1 - cy;
    long n = 0;
    for (long y = cy - hy; y <= cy + hy; y++)
        for (long x = cx - hx; x <= cx + hx; x++)
            win[n++] = m[y * nx + x];
    return n;
}

/* The second differences of the cells along x and along y at cell c (0
 * along an axis with fewer than three cells, or at its end cells). */
static void cell_second_diff(const float *m, long nx, long ny, long c, double *lxx, double *lyy)
{
    long cx = c % nx, cy = c / nx;
    *lxx = cx > 0 && cx < nx - 1 ? (double)m[c - 1] + (double)m[c + 1] - 2.0 * m[c] : 0;
    *lyy = cy > 0 && cy < ny - 1 ? (double)m[c - nx] + (double)m[c + nx] - 2.0 * m[c] : 0;
}

/* Whether the level about cell (cx, cy) is smoothly curved: a quadratic
 * in the cell offsets fitted to the cells within 2 of it (at least 3 along
 * each axis) has a second derivative along x or y of more than 5 times its
 * error, the error coming from the cells' scatter about the quadratic (at
 * least their statistical error `stat_err`). Nebulosity, smooth over
 * several cells, is; the cell-to-cell scatter of a crowded field, which a
 * quadratic does not follow, is not. */
static int smoothly_curved(const float *m, long nx, long ny, long cx, long cy, double stat_err)
{
    long x0 = cx - 2 < 0 ? 0 : cx - 2, x1 = cx + 2 > nx - 1 ? nx - 1 : cx + 2;
    long y0 = cy - 2 < 0 ? 0 : cy - 2, y1 = cy + 2 > ny - 1 ? ny - 1 : cy + 2;
    if (x1 - x0 < 2 || y1 - y0 < 2)
        return 0;
    double ata[36] = { 0 }, rhs[18] = { 0 }, f[6], y3[3];
    for (long y = y0; y <= y1; y++)
        for (long x = x0; x <= x1; x++) {
            double u = (double)(x - cx), v = (double)(y - cy);
            f[0] = 1; f[1] = u; f[2] = v; f[3] = u * u; f[4] = v * v; f[5] = u * v;
            y3[0] = m[y * nx + x];
            y3[1] = 0;
            y3[2] = 0;
            sk_normal_add(ata, rhs, 6, 3, f, 1.0, y3);
        }
    /* the 2nd and 3rd right-hand sides: unit vectors, for the variances
       of the two curvature terms */
    rhs[6 + 3] = 1;
    rhs[12 + 4] = 1;
    if (sk_cholesky_solve(ata, rhs, 6, 3, 1e-9))
        return 0;
    long n = (x1 - x0 + 1) * (y1 - y0 + 1);
    double rss = 0;
    for (long y = y0; y <= y1; y++)
        for (long x = x0; x <= x1; x++) {
            double u = (double)(x - cx), v = (double)(y - cy);
            double model = rhs[0] + rhs[1] * u + rhs[2] * v + rhs[3] * u * u + rhs[4] * v * v + rhs[5] * u * v;
            double r = m[y * nx + x] - model;
            rss += r * r;
        }
    double s2 = rss / (double)(n - 6);
    if (s2 < stat_err * stat_err)
        s2 = stat_err * stat_err;
    double vxx = s2 * rhs[6 + 3], vyy = s2 * rhs[12 + 4];
    return rhs[3] * rhs[3] > 25.0 * vxx || rhs[4] * rhs[4] > 25.0 * vyy;
}

/* Median filter over cells; returns the number of cells kept unfiltered.
 * With `noise` (the statistical error of a cell's level) > 0, a cell where
 * the level is smoothly curved (smoothly_curved: nebulosity) is replaced
 * only when it departs from its window's median by more than 3 times the
 * window's spread (1.4826 times the median absolute deviation of its cells
 * from their median): the light of an object, not the crest or trough of a
 * smooth level, which the median would flatten or fill. Elsewhere every
 * cell takes the median. */
static long median_filter_cells(float *m, long nx, long ny, int size, double noise)
{
    int h = size / 2;
    if (h < 1)
        return nx * ny;
    float *out = malloc(sizeof *out * (size_t)(nx * ny));
    float *win = malloc(sizeof *win * (size_t)((2 * h + 1) * (2 * h + 1)));
    long kept = 0;
    for (long cy = 0; cy < ny; cy++)
        for (long cx = 0; cx < nx; cx++) {
            long c = cy * nx + cx;
            long n = cell_window(m, nx, ny, cx, cy, h, win);
            double med = sk_median_float(win, n);
            out[c] = (float)med;
            if (!(noise > 0) || n < 3 || !smoothly_curved(m, nx, ny, cx, cy, noise))
                continue;
            n = cell_window(m, nx, ny, cx, cy, h, win);
            for (long k = 0; k < n; k++)
                win[k] = (float)fabs(win[k] - med);
            double spread = 1.4826 * sk_median_float(win, n);
            if (fabs(m[c] - med) <= 3.0 * spread) {
                out[c] = m[c];
                kept++;
            }
        }
    memcpy(m, out, sizeof *out * (size_t)(nx * ny));
    free(out);
    free(win);
    return kept;
}

/* A cell's level is the mean of its pixels about their plane, which for a
 * curved level f is f at the centre plus mesh^2/24 times its Laplacian; the
 * second differences of the cells (mesh^2 times the second derivatives,
 * exactly so for a quadratic f) remove that term, so that the level is not
 * raised between the crests of nebulosity and lowered on them. Along an
 * axis with fewer than three cells, or at its end cells, nothing is
 * removed. */
static void curvature_correct_cells(float *m, long nx, long ny)
{
    float *out = malloc(sizeof *out * (size_t)(nx * ny));
    if (!out)
        return;
    for (long c = 0; c < nx * ny; c++) {
        double lxx, lyy;
        cell_second_diff(m, nx, ny, c, &lxx, &lyy);
        out[c] = (float)(m[c] - (lxx + lyy) / 24.0);
    }
    memcpy(m, out, sizeof *out * (size_t)(nx * ny));
    free(out);
}

struct interp_job {
    sk_background *bg;
    const double *tx, *ty;         /* knot positions */
    const double *col_lv, *col_rm; /* per cell column: ny knot values */
    const double *col_lv2, *col_rm2;
    const sk_spline_at *rule_x;    /* per image column */
};

static int interp_range(long begin, long end, void *user)
{
    struct interp_job *J = user;
    sk_background *bg = J->bg;
    long nx = bg->nx, ny = bg->ny;
    double *buf = malloc(sizeof *buf * (size_t)(6 * nx + 2));
    if (!buf)
        return sk_error(SK_EIO, "background: out of memory");
    double *lv = buf, *rm = buf + nx, *lv2 = buf + 2 * nx, *rm2 = buf + 3 * nx, *work = buf + 4 * nx;
    for (long y = begin; y < end; y++) {
        sk_spline_at ry = sk_spline_rule(J->ty, ny, (double)y);
        for (long i = 0; i < nx; i++) {
            lv[i] = sk_spline_eval(&ry, J->col_lv + i * ny, J->col_lv2 + i * ny, ny);
            rm[i] = sk_spline_eval(&ry, J->col_rm + i * ny, J->col_rm2 + i * ny, ny);
        }
        sk_spline_deriv2(J->tx, lv, nx, lv2, work);
        sk_spline_deriv2(J->tx, rm, nx, rm2, work);
        float *ol = bg->level + y * bg->width, *orm = bg->rms + y * bg->width;
        for (long x = 0; x < bg->width; x++) {
            ol[x] = (float)sk_spline_eval(&J->rule_x[x], lv, lv2, nx);
            double r = sk_spline_eval(&J->rule_x[x], rm, rm2, nx);
            orm[x] = (float)(r > 0 ? r : 0);
        }
    }
    free(buf);
    return SK_OK;
}

int sk_background_interpolate(sk_background *bg, int threads)
{
    if (bg->nx < 1 || bg->ny < 1 || bg->mesh_px < 1 || !bg->mesh_level || !bg->mesh_rms)
        return sk_error(SK_EINPUT, "background: no mesh to interpolate");
    /* splines along y through each column of cells, then along x per row */
    long nx = bg->nx, ny = bg->ny, nc = nx * ny;
    if (!bg->level)
        bg->level = malloc(sizeof(float) * (size_t)bg->width * (size_t)bg->height);
    if (!bg->rms)
        bg->rms = malloc(sizeof(float) * (size_t)bg->width * (size_t)bg->height);
    double *tx = malloc(sizeof(double) * (size_t)nx), *ty = malloc(sizeof(double) * (size_t)ny);
    double *cols = malloc(sizeof(double) * (size_t)(4 * nc + ny));
    sk_spline_at *rule_x = malloc(sizeof *rule_x * (size_t)bg->width);
    if (!tx || !ty || !cols || !rule_x || !bg->level || !bg->rms) {
        free(tx); free(ty); free(cols); free(rule_x);
        return sk_error(SK_EIO, "background: out of memory for %ldx%ld maps", bg->width, bg->height);
    }
    for (long i = 0; i < nx; i++)
        tx[i] = sk_spline_cell_knot(i, bg->mesh_px, bg->width);
    for (long j = 0; j < ny; j++)
        ty[j] = sk_spline_cell_knot(j, bg->mesh_px, bg->height);
    double *col_lv = cols, *col_rm = cols + nc, *col_lv2 = cols + 2 * nc, *col_rm2 = cols + 3 * nc;
    double *work = cols + 4 * nc;
    for (long i = 0; i < nx; i++) {
        for (long j = 0; j < ny; j++) {
            col_lv[i * ny + j] = bg->mesh_level[j * nx + i];
            col_rm[i * ny + j] = bg->mesh_rms[j * nx + i];
        }
        sk_spline_deriv2(ty, col_lv + i * ny, ny, col_lv2 + i * ny, work);
        sk_spline_deriv2(ty, col_rm + i * ny, ny, col_rm2 + i * ny, work);
    }
    for (long x = 0; x < bg->width; x++)
        rule_x[x] = sk_spline_rule(tx, nx, (double)x);
    struct interp_job ij = { bg, tx, ty, col_lv, col_rm, col_lv2, col_rm2, rule_x };
    int st = sk_parallel_for(bg->height, 64, threads, interp_range, &ij);
    free(tx);
    free(ty);
    free(cols);
    free(rule_x);
    return st;
}

int sk_background_estimate(const sk_image *img, const sk_background_params *p,
                           int threads, sk_background **out)
{
    return sk_background_estimate_masked(img, NULL, p, threads, out);
}

int sk_background_estimate_masked(const sk_image *img, const uint8_t *mask,
                                  const sk_background_params *p, int threads,
                                  sk_background **out)
{
    *out = NULL;
    if (!img || img->width < 1 || img->height < 1)
        return sk_error(SK_EINPUT, "background: empty image");
    if (p->mesh_px < 4)
        return sk_error(SK_EINPUT, "extraction.background.mesh_px: %d is below 4", p->mesh_px);
    if (p->filter_size < 1 || p->filter_size % 2 == 0)
        return sk_error(SK_EINPUT, "extraction.background.filter_size: %d is not a positive odd number",
                        p->filter_size);
    if (!(p->clip_sigma > 0.5))
        return sk_error(SK_EINPUT, "extraction.background.clip_sigma: %g must exceed 0.5", p->clip_sigma);
    sk_background *bg = calloc(1, sizeof *bg);
    if (!bg)
        return sk_error(SK_EIO, "background: out of memory");
    bg->width = img->width;
    bg->height = img->height;
    bg->mesh_px = p->mesh_px;
    bg->nx = (img->width + p->mesh_px - 1) / p->mesh_px;
    bg->ny = (img->height + p->mesh_px - 1) / p->mesh_px;
    long nc = bg->nx * bg->ny;
    bg->mesh_level = malloc(sizeof(float) * (size_t)nc);
    bg->mesh_rms = malloc(sizeof(float) * (size_t)nc);
    unsigned char *valid = calloc((size_t)nc, 1);
    float *cell_err = calloc((size_t)nc, sizeof(float));
    if (!bg->mesh_level || !bg->mesh_rms || !valid || !cell_err) {
        free(valid);
        free(cell_err);
        sk_background_free(bg);
        return sk_error(SK_EIO, "background: out of memory for %ldx%ld maps", img->width, img->height);
    }
    struct cell_job cj = { img, mask, p, bg, valid, cell_err };
    int st = sk_parallel_for(nc, 1, threads, cell_range, &cj);
    long nvalid = 0;
    for (long c = 0; c < nc; c++)
        if (valid[c])
            cell_err[nvalid++] = cell_err[c];
    double cell_level_err = nvalid > 0 ? sk_median_float(cell_err, nvalid) : 0;
    free(cell_err);
    if (st == SK_OK && nvalid == 0)
        st = sk_error(SK_EINPUT, "background: no cell has enough unflagged pixels with weight > 0");
    if (st) {
        free(valid);
        sk_background_free(bg);
        return st;
    }
    fill_cells(bg, valid);
    free(valid);
    long kept = median_filter_cells(bg->mesh_level, bg->nx, bg->ny, p->filter_size, cell_level_err);
    median_filter_cells(bg->mesh_rms, bg->nx, bg->ny, p->filter_size, 0);
    curvature_correct_cells(bg->mesh_level, bg->nx, bg->ny);
    /* the error of the level where most cells are: a median filter over
       f x f cells divides the variance by about f^2 / (pi/2); the
       curvature correction, (1 + 4/24) times a cell less 1/24 of each of
       its four neighbours, multiplies it by 1.368 */
    double ff = (double)p->filter_size * (double)p->filter_size;
    bg->level_err = cell_level_err * 1.1696 * (2 * kept < nc && ff > 1 ? sqrt(M_PI / 2 / ff) : 1.0);
    {
        float *tmp = malloc(sizeof *tmp * (size_t)nc);
        memcpy(tmp, bg->mesh_level, sizeof *tmp * (size_t)nc);
        bg->median_level = sk_median_float(tmp, nc);
        memcpy(tmp, bg->mesh_rms, sizeof *tmp * (size_t)nc);
        bg->median_rms = sk_median_float(tmp, nc);
        free(tmp);
    }

    st = sk_background_interpolate(bg, threads);
    if (st) {
        sk_background_free(bg);
        return st;
    }
    *out = bg;
    return SK_OK;
}
