/* coadd_bkg.c: rows of a background map evaluated from extract's mesh product (BKGMESH, natural bicubic splines through the cell centres), so that a coadd holds only a band of each input's background. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/vectorise.h"
#include "direct_priv.h"
#include "skystack/error.h"
#include "skystack/fits.h"
#include "numeric/spline.h"
#include "extract/extract_internal.h"

/* The splines (numeric/spline.h) are those of sk_background_interpolate() (extract(1)):
 * along y through the cell centres of each column of cells, then along x
 * through the values of one row, linear beyond the outer centres. The same
 * operations in the same order give the same bits as the full map. */
struct sk_bkg_mesh {
    long width, height;      /* of the image */
    long mesh, nx, ny;
    double *tx, *ty;         /* knots */
    double *col, *col2;      /* per cell column: ny values and second derivatives */
    double median_rms;
};

void sk_bkg_mesh_free(sk_bkg_mesh *m)
{
    if (!m)
        return;
    free(m->tx);
    free(m->ty);
    free(m->col);
    free(m->col2);
    free(m);
}

int sk_bkg_mesh_read(const char *path, sk_bkg_mesh **out)
{
    *out = NULL;
    float *level = NULL;
    long nx = 0, ny = 0, mesh = 0, width = 0, height = 0;
    sk_header *h = NULL;
    int rc = sk_fits_read_plane(path, "BKGMESH", &level, &nx, &ny, &h);
    if (rc)
        return rc;
    if (sk_header_get_long(h, "MESHPX", &mesh) != 1 || mesh < 1 ||
        sk_header_get_long(h, "IMWIDTH", &width) != 1 || sk_header_get_long(h, "IMHEIGHT", &height) != 1 ||
        width < 1 || height < 1 || (width + mesh - 1) / mesh != nx || (height + mesh - 1) / mesh != ny) {
        free(level);
        sk_header_free(h);
        return sk_error(SK_EINPUT, "%s: MESHPX, IMWIDTH, IMHEIGHT missing or inconsistent with the mesh",
                        path);
    }
    sk_bkg_mesh *m = calloc(1, sizeof *m);
    if (m) {
        m->width = width;
        m->height = height;
        m->mesh = mesh;
        m->nx = nx;
        m->ny = ny;
        m->median_rms = NAN;
        sk_header_get_double(h, "RMSMED", &m->median_rms);
        m->tx = malloc((size_t)nx * sizeof *m->tx);
        m->ty = malloc((size_t)ny * sizeof *m->ty);
        m->col = malloc((size_t)(nx * ny) * sizeof *m->col);
        m->col2 = malloc((size_t)(nx * ny) * sizeof *m->col2);
    }
    double *work = malloc((size_t)ny * sizeof *work);
    sk_header_free(h);
    if (!m || !m->tx || !m->ty || !m->col || !m->col2 || !work) {
        free(level);
        free(work);
        sk_bkg_mesh_free(m);
        return sk_error(SK_EIO, "%s: out of memory", path);
    }
    for (long i = 0; i < nx; i++)
        m->tx[i] = sk_spline_cell_knot(i, mesh, width);
    for (long j = 0; j < ny; j++)
        m->ty[j] = sk_spline_cell_knot(j, mesh, height);
    for (long i = 0; i < nx; i++) {
        for (long j = 0; j < ny; j++)
            m->col[i * ny + j] = level[j * nx + i];
        sk_spline_deriv2(m->ty, m->col + i * ny, ny, m->col2 + i * ny, work);
    }
    free(level);
    free(work);
    *out = m;
    return SK_OK;
}

long sk_bkg_mesh_width(const sk_bkg_mesh *m) { return m->width; }
long sk_bkg_mesh_height(const sk_bkg_mesh *m) { return m->height; }
double sk_bkg_mesh_rms(const sk_bkg_mesh *m) { return m->median_rms; }

/* The spline of one row over pixels [0, n) that share the knot interval
 * of lv[0], lv[1] (lv2 their second derivatives): sk_spline_eval's
 * operations on every pixel, from its weights a, b, c, d; vectorised. */
SK_VECTORISE static void row_segment(long n, const double *restrict a, const double *restrict b,
                                     const double *restrict c, const double *restrict d,
                                     const double *restrict lv, const double *restrict lv2,
                                     float *restrict out)
{
    const double v0 = lv[0], v1 = lv[1], y0 = lv2[0], y1 = lv2[1];
    for (long x = 0; x < n; x++)
        out[x] = (float)(a[x] * v0 + b[x] * v1 + c[x] * y0 + d[x] * y1);
}

struct sk_bkg_rows {
    const sk_bkg_mesh *m;
    long x0, w;
    double *buf;             /* lv, lv2, work (nx each), ra, rb, rc, rd (w each) */
    long *k;                 /* knot interval of each column */
};

int sk_bkg_rows_begin(const sk_bkg_mesh *m, long x0, long w, sk_bkg_rows **out)
{
    *out = NULL;
    long nx = m->nx;
    sk_bkg_rows *r = calloc(1, sizeof *r);
    if (r) {
        r->buf = malloc((size_t)(3 * nx + 4 * w) * sizeof *r->buf);
        r->k = malloc((size_t)w * sizeof *r->k);
    }
    if (!r || !r->buf || !r->k) {
        sk_bkg_rows_end(r);
        return sk_error(SK_EIO, "coadd: out of memory for background rows");
    }
    r->m = m;
    r->x0 = x0;
    r->w = w;
    double *ra = r->buf + 3 * nx, *rb = ra + w, *rc = rb + w, *rd = rc + w;
    for (long x = 0; x < w; x++) {
        sk_spline_at t = sk_spline_rule(m->tx, nx, (double)(x0 + x));
        r->k[x] = t.k;
        ra[x] = t.a;
        rb[x] = t.b;
        rc[x] = t.c;
        rd[x] = t.d;
    }
    *out = r;
    return SK_OK;
}

void sk_bkg_rows_end(sk_bkg_rows *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r->k);
    free(r);
}

void sk_bkg_rows_row(sk_bkg_rows *r, long y, float *row)
{
    const sk_bkg_mesh *m = r->m;
    long nx = m->nx, ny = m->ny, w = r->w;
    const long *k = r->k;
    double *lv = r->buf, *lv2 = r->buf + nx, *work = r->buf + 2 * nx;
    const double *ra = r->buf + 3 * nx, *rb = ra + w, *rc = rb + w, *rd = rc + w;
    sk_spline_at ry = sk_spline_rule(m->ty, ny, (double)y);
    for (long i = 0; i < nx; i++)
        lv[i] = sk_spline_eval(&ry, m->col + i * ny, m->col2 + i * ny, ny);
    sk_spline_deriv2(m->tx, lv, nx, lv2, work);
    if (nx < 2) {
        for (long x = 0; x < w; x++)
            row[x] = (float)lv[0];
        return;
    }
    for (long xs = 0, xe; xs < w; xs = xe) {
        for (xe = xs + 1; xe < w && k[xe] == k[xs]; xe++)
            ;
        row_segment(xe - xs, ra + xs, rb + xs, rc + xs, rd + xs, lv + k[xs], lv2 + k[xs], row + xs);
    }
}

int sk_bkg_mesh_rows(const sk_bkg_mesh *m, long x0, long y0, long w, long h, float *out)
{
    sk_bkg_rows *r;
    int rc = sk_bkg_rows_begin(m, x0, w, &r);
    if (rc)
        return rc;
    for (long y = 0; y < h; y++)
        sk_bkg_rows_row(r, y0 + y, out + (size_t)y * (size_t)w);
    sk_bkg_rows_end(r);
    return SK_OK;
}
