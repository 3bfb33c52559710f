/* pixmap.c: the output-pixel to input-pixel mapping of a coadd, evaluated by wcslib on a node grid and interpolated with a checked error bound. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/coadd.h"
#include "core/vectorise.h"
#include "skystack/error.h"
#include "coadd_internal.h"

/* Node k of the grid lies at output coordinate box_x0 + (k - 1) * step (and
 * likewise in y), so the cell [X_{c+1}, X_{c+2}) holding pixel x is
 * interpolated from nodes c .. c+3. Each node holds the input x, input y
 * and the pixel-area ratio. */
struct sk_pixmap {
    const sk_wcs *out_wcs, *in_wcs; /* borrowed */
    long in_width, in_height;
    long bx0, by0, bx1, by1;        /* output box [bx0, bx1) x [by0, by1) */
    int step;                       /* 0: exact evaluation everywhere */
    long nxn, nyn;                  /* nodes along x and y */
    long ncx, ncy;                  /* cells along x and y */
    double *node;                   /* nyn * nxn * 3 */
    unsigned char *direct;          /* ncy * ncx: cell evaluated exactly */
    double (*wtab)[4];              /* Lagrange weights for offsets 0..step-1 */
    double *wcol;                   /* the same by weight: 4 runs of step */
    double err_px, err_area;
};

/* Half-step of the central differences giving the Jacobian (output px). */
#define JAC_STEP 0.5
/* Relative accuracy asked of the interpolated area ratio. */
#define AREA_TOLERANCE 1e-5
/* First and smallest node spacings tried. */
#define FIRST_STEP 256
#define LAST_STEP 2
/* Points per exact-evaluation batch. */
#define BATCH 512

static void lagrange(double u, double w[4])
{
    w[0] = -u * (u - 1.0) * (u - 2.0) / 6.0;
    w[1] = (u + 1.0) * (u - 1.0) * (u - 2.0) / 2.0;
    w[2] = -(u + 1.0) * u * (u - 2.0) / 2.0;
    w[3] = (u + 1.0) * u * (u - 1.0) / 6.0;
}

/* Exact mapping of n <= BATCH output points. Failures give NaN. */
static int map_exact_batch(const sk_pixmap *m, long n, const double *xo, const double *yo,
                           double *xi, double *yi, double *area)
{
    double px[5 * BATCH], py[5 * BATCH], ra[5 * BATCH], dec[5 * BATCH];
    double qx[5 * BATCH], qy[5 * BATCH];
    static const double dx[5] = {0, -JAC_STEP, JAC_STEP, 0, 0};
    static const double dy[5] = {0, 0, 0, -JAC_STEP, JAC_STEP};
    for (long i = 0; i < n; i++)
        for (int k = 0; k < 5; k++) {
            px[5 * i + k] = xo[i] + dx[k];
            py[5 * i + k] = yo[i] + dy[k];
        }
    int rc1 = sk_wcs_pix2sky(m->out_wcs, 5 * n, px, py, ra, dec);
    int rc2 = sk_wcs_sky2pix(m->in_wcs, 5 * n, ra, dec, qx, qy);
    if ((rc1 && rc1 != SK_EINPUT) || (rc2 && rc2 != SK_EINPUT))
        return rc1 ? rc1 : rc2;
    if (rc1 || rc2)
        sk_error_clear(); /* points off a projection's domain are NaN */
    for (long i = 0; i < n; i++) {
        const double *X = qx + 5 * i, *Y = qy + 5 * i;
        double jxx = (X[2] - X[1]) / (2 * JAC_STEP), jxy = (X[4] - X[3]) / (2 * JAC_STEP);
        double jyx = (Y[2] - Y[1]) / (2 * JAC_STEP), jyy = (Y[4] - Y[3]) / (2 * JAC_STEP);
        xi[i] = X[0];
        yi[i] = Y[0];
        area[i] = fabs(jxx * jyy - jxy * jyx);
        if (!isfinite(X[0]) || !isfinite(Y[0]) || !isfinite(area[i]))
            xi[i] = yi[i] = area[i] = NAN;
    }
    return SK_OK;
}

static int map_exact(const sk_pixmap *m, long n, const double *xo, const double *yo, double *xi,
                     double *yi, double *area)
{
    for (long k = 0; k < n; k += BATCH) {
        long b = n - k < BATCH ? n - k : BATCH;
        int rc = map_exact_batch(m, b, xo + k, yo + k, xi + k, yi + k, area + k);
        if (rc)
            return rc;
    }
    return SK_OK;
}

/* Exact mapping of the pixels x0..x1-1 of row y. */
static int map_exact_row(const sk_pixmap *m, long y, long x0, long x1, double *xi, double *yi,
                         double *area)
{
    double xo[BATCH], yo[BATCH];
    for (long x = x0; x < x1; x += BATCH) {
        long b = x1 - x < BATCH ? x1 - x : BATCH;
        for (long i = 0; i < b; i++) {
            xo[i] = (double)(x + i);
            yo[i] = (double)y;
        }
        int rc = map_exact_batch(m, b, xo, yo, xi + (x - x0), yi + (x - x0), area + (x - x0));
        if (rc)
            return rc;
    }
    return SK_OK;
}

/* The output box the input outline maps into (2 px margin), or the whole
 * grid when part of the outline has no output position. */
static int find_box(sk_pixmap *m, long gw, long gh)
{
    long w = m->in_width, h = m->in_height;
    long per_edge = 64;
    long longest = w > h ? w : h;
    if (longest / 16 > per_edge)
        per_edge = longest / 16;
    long n = 4 * per_edge;
    double *x = malloc(6 * (size_t)n * sizeof *x);
    if (!x)
        return sk_error(SK_EIO, "coadd: out of memory for the pixel mapping");
    double *y = x + n, *ra = y + n, *dec = ra + n, *ox = dec + n, *oy = ox + n;
    for (long k = 0; k < n; k++) {
        long e = k / per_edge;
        double t = (double)(k % per_edge) / (double)per_edge;
        double lo_x = -0.5, hi_x = (double)w - 0.5, lo_y = -0.5, hi_y = (double)h - 0.5;
        switch (e) {
        case 0: x[k] = lo_x + t * (hi_x - lo_x); y[k] = lo_y; break;
        case 1: x[k] = hi_x; y[k] = lo_y + t * (hi_y - lo_y); break;
        case 2: x[k] = hi_x - t * (hi_x - lo_x); y[k] = hi_y; break;
        default: x[k] = lo_x; y[k] = hi_y - t * (hi_y - lo_y); break;
        }
    }
    int rc1 = sk_wcs_pix2sky(m->in_wcs, n, x, y, ra, dec);
    int rc2 = rc1 ? rc1 : sk_wcs_sky2pix(m->out_wcs, n, ra, dec, ox, oy);
    if (rc1 == SK_EIO || rc2 == SK_EIO) {
        free(x);
        return SK_EIO;
    }
    sk_error_clear();
    long nfinite = 0;
    for (long k = 0; k < n && !rc1; k++)
        nfinite += isfinite(ox[k]) && isfinite(oy[k]);
    if (!rc1 && nfinite == 0) { /* the outline is beyond the grid's projection */
        m->bx0 = m->bx1 = m->by0 = m->by1 = 0;
    } else if (rc1 || rc2) {
        m->bx0 = m->by0 = 0;
        m->bx1 = gw;
        m->by1 = gh;
    } else {
        double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
        for (long k = 0; k < n; k++) {
            xmin = fmin(xmin, ox[k]);
            xmax = fmax(xmax, ox[k]);
            ymin = fmin(ymin, oy[k]);
            ymax = fmax(ymax, oy[k]);
        }
        double lo_x = fmax(floor(xmin) - 2.0, 0.0), hi_x = fmin(ceil(xmax) + 3.0, (double)gw);
        double lo_y = fmax(floor(ymin) - 2.0, 0.0), hi_y = fmin(ceil(ymax) + 3.0, (double)gh);
        if (hi_x <= lo_x || hi_y <= lo_y) {
            m->bx0 = m->bx1 = m->by0 = m->by1 = 0;
        } else {
            m->bx0 = (long)lo_x;
            m->bx1 = (long)hi_x;
            m->by0 = (long)lo_y;
            m->by1 = (long)hi_y;
        }
    }
    free(x);
    return SK_OK;
}

static double *node_at(const sk_pixmap *m, long kx, long ky)
{
    return m->node + 3 * ((size_t)ky * (size_t)m->nxn + (size_t)kx);
}

/* Interpolate the three quantities at (cell cx, cy; fractions u, v). */
static void interp_cell(const sk_pixmap *m, long cx, long cy, double u, double v, double q[3])
{
    double wx[4], wy[4];
    lagrange(u, wx);
    lagrange(v, wy);
    q[0] = q[1] = q[2] = 0.0;
    for (int j = 0; j < 4; j++) {
        double r[3] = {0, 0, 0};
        for (int i = 0; i < 4; i++) {
            const double *nd = node_at(m, cx + i, cy + j);
            r[0] += wx[i] * nd[0];
            r[1] += wx[i] * nd[1];
            r[2] += wx[i] * nd[2];
        }
        q[0] += wy[j] * r[0];
        q[1] += wy[j] * r[1];
        q[2] += wy[j] * r[2];
    }
}

/* Build the nodes at spacing m->step and measure the interpolation error;
 * *ok = 1 when within tolerance. */
static int build_nodes(sk_pixmap *m, double tolerance_px, int *ok)
{
    int step = m->step;
    long span_x = m->bx1 - 1 - m->bx0, span_y = m->by1 - 1 - m->by0;
    m->ncx = span_x / step + 1;
    m->ncy = span_y / step + 1;
    m->nxn = m->ncx + 3;
    m->nyn = m->ncy + 3;
    free(m->node);
    free(m->direct);
    free(m->wtab);
    free(m->wcol);
    m->node = malloc(3 * (size_t)m->nxn * (size_t)m->nyn * sizeof *m->node);
    m->direct = calloc((size_t)m->ncx * (size_t)m->ncy, 1);
    m->wtab = malloc((size_t)step * sizeof *m->wtab);
    m->wcol = malloc(4 * (size_t)step * sizeof *m->wcol);
    long nn = m->nxn * m->nyn;
    long nchk = 3 * m->ncx * m->ncy;
    long nmax = nn > nchk ? nn : nchk;
    double *buf = malloc(6 * (size_t)nmax * sizeof *buf);
    if (!m->node || !m->direct || !m->wtab || !m->wcol || !buf) {
        free(buf);
        return sk_error(SK_EIO, "coadd: out of memory for the pixel mapping nodes");
    }
    for (int t = 0; t < step; t++) {
        lagrange((double)t / step, m->wtab[t]);
        for (int k = 0; k < 4; k++)
            m->wcol[(size_t)k * step + t] = m->wtab[t][k];
    }
    double *xo = buf, *yo = buf + nmax, *xi = buf + 2 * nmax, *yi = buf + 3 * nmax;
    double *ar = buf + 4 * nmax;
    for (long ky = 0; ky < m->nyn; ky++)
        for (long kx = 0; kx < m->nxn; kx++) {
            xo[ky * m->nxn + kx] = (double)(m->bx0 + (kx - 1) * step);
            yo[ky * m->nxn + kx] = (double)(m->by0 + (ky - 1) * step);
        }
    int rc = map_exact(m, nn, xo, yo, xi, yi, ar);
    if (rc) {
        free(buf);
        return rc;
    }
    for (long k = 0; k < nn; k++) {
        m->node[3 * k] = xi[k];
        m->node[3 * k + 1] = yi[k];
        m->node[3 * k + 2] = ar[k];
    }
    /* Cells with a missing node in their 4x4 stencil are evaluated exactly. */
    for (long cy = 0; cy < m->ncy; cy++)
        for (long cx = 0; cx < m->ncx; cx++) {
            int bad = 0;
            for (int j = 0; j < 4 && !bad; j++)
                for (int i = 0; i < 4 && !bad; i++)
                    bad = !isfinite(node_at(m, cx + i, cy + j)[0]);
            m->direct[cy * m->ncx + cx] = (unsigned char)bad;
        }
    /* Check points: centre and the two lower edge midpoints of every cell. */
    static const double cu[3] = {0.5, 0.5, 0.0}, cv[3] = {0.5, 0.0, 0.5};
    long nc = 0;
    for (long cy = 0; cy < m->ncy; cy++)
        for (long cx = 0; cx < m->ncx; cx++)
            for (int k = 0; k < 3; k++) {
                xo[nc] = (double)(m->bx0 + cx * step) + cu[k] * step;
                yo[nc] = (double)(m->by0 + cy * step) + cv[k] * step;
                nc++;
            }
    rc = map_exact(m, nc, xo, yo, xi, yi, ar);
    if (rc) {
        free(buf);
        return rc;
    }
    double err_px = 0.0, err_area = 0.0;
    double margin = 8.0;
    long k = 0;
    for (long cy = 0; cy < m->ncy; cy++)
        for (long cx = 0; cx < m->ncx; cx++) {
            unsigned char *direct = &m->direct[cy * m->ncx + cx];
            for (int c = 0; c < 3; c++, k++) {
                if (*direct)
                    continue;
                if (!isfinite(xi[k])) { /* a hole inside a cell of finite nodes */
                    *direct = 1;
                    continue;
                }
                /* Only cells that can reach the input matter. */
                double lo_x = xi[k], hi_x = xi[k], lo_y = yi[k], hi_y = yi[k];
                for (int j = 1; j <= 2; j++)
                    for (int i = 1; i <= 2; i++) {
                        const double *nd = node_at(m, cx + i, cy + j);
                        lo_x = fmin(lo_x, nd[0]);
                        hi_x = fmax(hi_x, nd[0]);
                        lo_y = fmin(lo_y, nd[1]);
                        hi_y = fmax(hi_y, nd[1]);
                    }
                if (hi_x < -margin || lo_x > (double)m->in_width + margin || hi_y < -margin ||
                    lo_y > (double)m->in_height + margin)
                    continue;
                double q[3];
                interp_cell(m, cx, cy, cu[c], cv[c], q);
                double e = hypot(q[0] - xi[k], q[1] - yi[k]);
                double ea = fabs(q[2] - ar[k]) / ar[k];
                if (!(e <= err_px))
                    err_px = e;
                if (!(ea <= err_area))
                    err_area = ea;
            }
        }
    free(buf);
    m->err_px = err_px;
    m->err_area = err_area;
    *ok = err_px <= tolerance_px && err_area <= AREA_TOLERANCE;
    return SK_OK;
}

int sk_pixmap_new(const sk_grid *grid, const sk_wcs *in_wcs, long in_width, long in_height,
                  double tolerance_px, sk_pixmap **out)
{
    *out = NULL;
    if (!grid || !grid->wcs || !in_wcs)
        return sk_error(SK_EINPUT, "coadd: pixel mapping needs both WCSs");
    if (in_width <= 0 || in_height <= 0)
        return sk_error(SK_EINPUT, "coadd: bad input size %ld x %ld", in_width, in_height);
    if (!(tolerance_px > 0))
        return sk_error(SK_EINPUT, "coadd: mapping tolerance must be > 0 px");
    sk_pixmap *m = calloc(1, sizeof *m);
    if (!m)
        return sk_error(SK_EIO, "coadd: out of memory");
    m->out_wcs = grid->wcs;
    m->in_wcs = in_wcs;
    m->in_width = in_width;
    m->in_height = in_height;
    int rc = find_box(m, grid->width, grid->height);
    if (rc) {
        sk_pixmap_free(m);
        return rc;
    }
    if (m->bx1 <= m->bx0) {
        *out = m;
        return SK_OK;
    }
    long longest = m->bx1 - m->bx0 > m->by1 - m->by0 ? m->bx1 - m->bx0 : m->by1 - m->by0;
    int step = FIRST_STEP;
    while (step > LAST_STEP && step >= 2 * longest)
        step /= 2;
    for (;;) {
        int ok = 0;
        m->step = step;
        rc = build_nodes(m, tolerance_px, &ok);
        if (rc) {
            sk_pixmap_free(m);
            return rc;
        }
        long nn = m->nxn * m->nyn, finite = 0;
        for (long k = 0; k < nn; k++)
            finite += isfinite(m->node[3 * k]);
        if (finite == 0) { /* no output pixel of the box maps into the input */
            m->bx0 = m->bx1 = m->by0 = m->by1 = 0;
            break;
        }
        if (ok)
            break;
        if (step <= LAST_STEP) { /* no node spacing is good enough */
            m->step = 0;
            m->err_px = m->err_area = 0.0;
            break;
        }
        step /= 2;
    }
    *out = m;
    return SK_OK;
}

void sk_pixmap_free(sk_pixmap *m)
{
    if (!m)
        return;
    free(m->node);
    free(m->direct);
    free(m->wtab);
    free(m->wcol);
    free(m);
}

void sk_pixmap_box(const sk_pixmap *m, long *x0, long *y0, long *x1, long *y1)
{
    *x0 = m->bx0;
    *y0 = m->by0;
    *x1 = m->bx1;
    *y1 = m->by1;
}

int sk_pixmap_step(const sk_pixmap *m) { return m->step; }
double sk_pixmap_error_px(const sk_pixmap *m) { return m->err_px; }
double sk_pixmap_area_error(const sk_pixmap *m) { return m->err_area; }

/* Node values of row y interpolated along y, for node columns k0..k1-1,
 * into col[3*(k-k0)]. */
static void column_values(const sk_pixmap *m, long y, long k0, long k1, double *col)
{
    long cy = (y - m->by0) / m->step;
    const double *wy = m->wtab[(y - m->by0) - cy * m->step];
    for (long k = k0; k < k1; k++) {
        double a = 0, b = 0, c = 0;
        for (int j = 0; j < 4; j++) {
            const double *nd = node_at(m, k, cy + j);
            a += wy[j] * nd[0];
            b += wy[j] * nd[1];
            c += wy[j] * nd[2];
        }
        col[3 * (k - k0)] = a;
        col[3 * (k - k0) + 1] = b;
        col[3 * (k - k0) + 2] = c;
    }
}

/* Cells handled per chunk of a row. */
#define CHUNK_CELLS 32

/* n pixels of one cell from its column values cv (x, y, area of its four
 * node columns) and their Lagrange weights w: the same operations on
 * every pixel, vectorised. */
SK_VECTORISE static void cell_values(long n, const double *restrict w0, long stride,
                                     const double *restrict cv, double *restrict xin,
                                     double *restrict yin, double *restrict area)
{
    const double *w1 = w0 + stride, *w2 = w1 + stride, *w3 = w2 + stride;
    for (long i = 0; i < n; i++) {
        xin[i] = w0[i] * cv[0] + w1[i] * cv[3] + w2[i] * cv[6] + w3[i] * cv[9];
        yin[i] = w0[i] * cv[1] + w1[i] * cv[4] + w2[i] * cv[7] + w3[i] * cv[10];
        area[i] = w0[i] * cv[2] + w1[i] * cv[5] + w2[i] * cv[8] + w3[i] * cv[11];
    }
}

int sk_pixmap_row(const sk_pixmap *m, long y, long x0, long x1, double *xin, double *yin,
                  double *area)
{
    if (y < m->by0 || y >= m->by1 || x0 < m->bx0 || x1 > m->bx1 || x1 < x0)
        return sk_error(SK_EINPUT, "coadd: row %ld [%ld, %ld) outside the mapping box", y, x0, x1);
    if (m->step == 0)
        return map_exact_row(m, y, x0, x1, xin, yin, area);
    int step = m->step;
    long cy = (y - m->by0) / step;
    double col[3 * (CHUNK_CELLS + 3)];
    long x = x0;
    while (x < x1) {
        long c0 = (x - m->bx0) / step;
        long c1 = c0 + CHUNK_CELLS; /* cells c0 .. c1-1 in this chunk */
        long xend = m->bx0 + c1 * step;
        if (xend > x1)
            xend = x1;
        column_values(m, y, c0, (xend - 1 - m->bx0) / step + 4, col);
        while (x < xend) {
            long c = (x - m->bx0) / step;
            long cell_end = m->bx0 + (c + 1) * step;
            if (cell_end > xend)
                cell_end = xend;
            if (m->direct[cy * m->ncx + c]) {
                int rc = map_exact_row(m, y, x, cell_end, xin + (x - x0), yin + (x - x0),
                                       area + (x - x0));
                if (rc)
                    return rc;
                x = cell_end;
                continue;
            }
            long t = x - m->bx0 - c * step, i = x - x0;
            cell_values(cell_end - x, m->wcol + t, step, col + 3 * (c - c0), xin + i, yin + i, area + i);
            x = cell_end;
        }
    }
    return SK_OK;
}

/* Extremes of the cubic through f[0..3] (at -1, 0, 1, 2) over u in [0, uhi]. */
static void cubic_range(const double f[4], double uhi, double *lo, double *hi)
{
    double a0 = f[1];
    double a1 = -f[0] / 3.0 - f[1] / 2.0 + f[2] - f[3] / 6.0;
    double a2 = f[0] / 2.0 - f[1] + f[2] / 2.0;
    double a3 = -f[0] / 6.0 + f[1] / 2.0 - f[2] / 2.0 + f[3] / 6.0;
    double us[4] = {0.0, uhi, -1.0, -1.0};
    /* roots of a1 + 2 a2 u + 3 a3 u^2 */
    double A = 3.0 * a3, B = 2.0 * a2, C = a1;
    if (fabs(A) > 1e-300) {
        double disc = B * B - 4.0 * A * C;
        if (disc >= 0) {
            double s = sqrt(disc);
            us[2] = (-B - s) / (2.0 * A);
            us[3] = (-B + s) / (2.0 * A);
        }
    } else if (fabs(B) > 1e-300) {
        us[2] = -C / B;
    }
    for (int k = 0; k < 4; k++) {
        double u = us[k];
        if (k >= 2 && !(u > 0.0 && u < uhi))
            continue;
        double v = a0 + u * (a1 + u * (a2 + u * a3));
        *lo = fmin(*lo, v);
        *hi = fmax(*hi, v);
    }
}

int sk_pixmap_input_bounds(const sk_pixmap *m, long y0, long y1, double *xmin, double *xmax,
                           double *ymin, double *ymax)
{
    double lx = INFINITY, hx = -INFINITY, ly = INFINITY, hy = -INFINITY;
    if (y0 < m->by0)
        y0 = m->by0;
    if (y1 > m->by1)
        y1 = m->by1;
    long width = m->bx1 - m->bx0;
    double *tmp = NULL;
    *xmin = *xmax = *ymin = *ymax = NAN;
    if (width <= 0 || y1 <= y0)
        return SK_OK;
    int rc = SK_OK;
    for (long y = y0; y < y1; y++) {
        if (m->step == 0) {
            if (!tmp && !(tmp = malloc(3 * (size_t)width * sizeof *tmp)))
                return sk_error(SK_EIO, "coadd: out of memory");
            if ((rc = map_exact_row(m, y, m->bx0, m->bx1, tmp, tmp + width, tmp + 2 * width)))
                goto done;
            for (long i = 0; i < width; i++)
                if (isfinite(tmp[i])) {
                    lx = fmin(lx, tmp[i]);
                    hx = fmax(hx, tmp[i]);
                    ly = fmin(ly, tmp[width + i]);
                    hy = fmax(hy, tmp[width + i]);
                }
            continue;
        }
        int step = m->step;
        long cy = (y - m->by0) / step;
        double col[3 * (CHUNK_CELLS + 3)];
        for (long c0 = 0; c0 < m->ncx; c0 += CHUNK_CELLS) {
            long c1 = c0 + CHUNK_CELLS < m->ncx ? c0 + CHUNK_CELLS : m->ncx;
            column_values(m, y, c0, c1 + 3, col);
            for (long c = c0; c < c1; c++) {
                long xs = m->bx0 + c * step;
                long xe = xs + step < m->bx1 ? xs + step : m->bx1;
                if (m->direct[cy * m->ncx + c]) {
                    double xi[BATCH], yi[BATCH], ar[BATCH];
                    for (long x = xs; x < xe; x += BATCH) {
                        long b = xe - x < BATCH ? xe - x : BATCH;
                        if ((rc = map_exact_row(m, y, x, x + b, xi, yi, ar)))
                            goto done;
                        for (long i = 0; i < b; i++)
                            if (isfinite(xi[i])) {
                                lx = fmin(lx, xi[i]);
                                hx = fmax(hx, xi[i]);
                                ly = fmin(ly, yi[i]);
                                hy = fmax(hy, yi[i]);
                            }
                    }
                    continue;
                }
                double uhi = (double)(xe - 1 - xs) / step;
                const double *cv = col + 3 * (c - c0);
                double fx[4] = {cv[0], cv[3], cv[6], cv[9]};
                double fy[4] = {cv[1], cv[4], cv[7], cv[10]};
                cubic_range(fx, uhi, &lx, &hx);
                cubic_range(fy, uhi, &ly, &hy);
            }
        }
    }
done:
    free(tmp);
    if (rc)
        return rc;
    if (lx <= hx && ly <= hy) {
        *xmin = lx;
        *xmax = hx;
        *ymin = ly;
        *ymax = hy;
    }
    return SK_OK;
}
