/* test_spline.c: the background mesh's natural cubic spline (numeric/spline.h):
 * knots and straight lines reproduced exactly, a plane through the mesh
 * reproduced between nodes, and extract's full map and coadd's rows of it
 * bit-identical to the splines each computed before they shared one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "numeric/spline.h"
#include "coadd/direct_priv.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "../tap.h"
#include "extract/extract_internal.h"

/* The spline as background.c and coadd_bkg.c each wrote it before, the
 * reference for bit-identity. */
static void ref_deriv2(const double *t, const double *v, long n, double *y2, double *work)
{
    if (n < 3) {
        for (long i = 0; i < n; i++)
            y2[i] = 0;
        return;
    }
    y2[0] = work[0] = 0.0;
    for (long i = 1; i < n - 1; i++) {
        double sig = (t[i] - t[i - 1]) / (t[i + 1] - t[i - 1]);
        double p = sig * y2[i - 1] + 2.0;
        y2[i] = (sig - 1.0) / p;
        double d = (v[i + 1] - v[i]) / (t[i + 1] - t[i]) - (v[i] - v[i - 1]) / (t[i] - t[i - 1]);
        work[i] = (6.0 * d / (t[i + 1] - t[i - 1]) - sig * work[i - 1]) / p;
    }
    y2[n - 1] = 0.0;
    for (long i = n - 2; i >= 0; i--)
        y2[i] = y2[i] * y2[i + 1] + work[i];
}

static double ref_eval(const double *t, const double *v, const double *y2, long n, double x)
{
    if (n < 2)
        return v[0];
    double a, b, c, d;
    long k = 0;
    if (x <= t[0]) {
        double h = t[1] - t[0], u = x - t[0];
        a = 1 - u / h, b = u / h, c = -u * h / 3, d = -u * h / 6;
    } else if (x >= t[n - 1]) {
        double h = t[n - 1] - t[n - 2], u = x - t[n - 1];
        k = n - 2;
        a = -u / h, b = 1 + u / h, c = u * h / 6, d = u * h / 3;
    } else {
        while (k < n - 2 && x > t[k + 1])
            k++;
        double h = t[k + 1] - t[k];
        double A = (t[k + 1] - x) / h, B = 1 - A;
        a = A, b = B, c = (A * A * A - A) * h * h / 6, d = (B * B * B - B) * h * h / 6;
    }
    return a * v[k] + b * v[k + 1] + c * y2[k] + d * y2[k + 1];
}

static double ref_knot(long i, long mesh, long size)
{
    long a = i * mesh, b = a + mesh < size ? a + mesh : size;
    return 0.5 * (double)(a + b - 1);
}

/* The full map of sk_background_interpolate as it was: along y per cell
 * column, then along x per image row. */
static void ref_map(const float *mesh, long nx, long ny, long mesh_px, long w, long h, float *out)
{
    double *tx = malloc(sizeof(double) * (size_t)nx), *ty = malloc(sizeof(double) * (size_t)ny);
    double *col = malloc(sizeof(double) * (size_t)(nx * ny)), *col2 = malloc(sizeof(double) * (size_t)(nx * ny));
    double *lv = malloc(sizeof(double) * (size_t)(3 * (nx + ny)));
    double *lv2 = lv + nx, *work = lv + 2 * nx;
    for (long i = 0; i < nx; i++)
        tx[i] = ref_knot(i, mesh_px, w);
    for (long j = 0; j < ny; j++)
        ty[j] = ref_knot(j, mesh_px, h);
    for (long i = 0; i < nx; i++) {
        for (long j = 0; j < ny; j++)
            col[i * ny + j] = mesh[j * nx + i];
        ref_deriv2(ty, col + i * ny, ny, col2 + i * ny, work);
    }
    for (long y = 0; y < h; y++) {
        for (long i = 0; i < nx; i++)
            lv[i] = ref_eval(ty, col + i * ny, col2 + i * ny, ny, (double)y);
        ref_deriv2(tx, lv, nx, lv2, work);
        for (long x = 0; x < w; x++)
            out[y * w + x] = (float)ref_eval(tx, lv, lv2, nx, (double)x);
    }
    free(tx);
    free(ty);
    free(col);
    free(col2);
    free(lv);
}

static void test_one_dimension(void)
{
    double t[7] = {0, 1.5, 3, 7, 8, 12.5, 20}, v[7], y2[7], work[7];
    int knots_exact = 1, line_exact = 1, same_as_ref = 1;
    double ref2[7];
    for (int i = 0; i < 7; i++)
        v[i] = sin(t[i]) * 10 + t[i] * t[i] * t[i] * 0.01;
    sk_spline_deriv2(t, v, 7, y2, work);
    ref_deriv2(t, v, 7, ref2, work);
    for (int i = 0; i < 7; i++) {
        sk_spline_at r = sk_spline_rule(t, 7, t[i]);
        knots_exact &= fabs(sk_spline_eval(&r, v, y2, 7) - v[i]) <= 1e-12 * (1 + fabs(v[i]));
        same_as_ref &= memcmp(&y2[i], &ref2[i], sizeof(double)) == 0;
    }
    for (double x = -5; x <= 25; x += 0.37) {
        sk_spline_at r = sk_spline_rule(t, 7, x);
        double got = sk_spline_eval(&r, v, y2, 7), want = ref_eval(t, v, ref2, 7, x);
        same_as_ref &= memcmp(&got, &want, sizeof got) == 0;
    }
    ok(knots_exact, "spline: the knot values at the knots");
    ok(same_as_ref, "spline: second derivatives and values bit-identical to the former copies");

    for (int i = 0; i < 7; i++)
        v[i] = 2.5 * t[i] - 4.0;
    sk_spline_deriv2(t, v, 7, y2, work);
    for (double x = -5; x <= 25; x += 0.37) {
        sk_spline_at r = sk_spline_rule(t, 7, x);
        line_exact &= fabs(sk_spline_eval(&r, v, y2, 7) - (2.5 * x - 4.0)) <= 1e-11;
    }
    ok(line_exact, "spline: a straight line reproduced between and beyond the knots");

    double one = 3.25, one2 = 0;
    sk_spline_at r = sk_spline_rule(t, 1, 9.0);
    is_near(sk_spline_eval(&r, &one, &one2, 1), 3.25, 0, "spline: one knot is a constant");
    is_near(sk_spline_cell_knot(2, 64, 150), 138.5, 0, "spline: the knot of a short last cell is its centre");
    is_near(sk_spline_cell_knot(1, 64, 150), 95.5, 0, "spline: the knot of a full cell is its centre");
}

static sk_background *mesh_background(long w, long h, int mesh_px, int plane)
{
    sk_background *bg = calloc(1, sizeof *bg);
    bg->width = w;
    bg->height = h;
    bg->mesh_px = mesh_px;
    bg->nx = (w + mesh_px - 1) / mesh_px;
    bg->ny = (h + mesh_px - 1) / mesh_px;
    bg->mesh_level = malloc(sizeof(float) * (size_t)(bg->nx * bg->ny));
    bg->mesh_rms = malloc(sizeof(float) * (size_t)(bg->nx * bg->ny));
    for (long j = 0; j < bg->ny; j++)
        for (long i = 0; i < bg->nx; i++) {
            double x = sk_spline_cell_knot(i, mesh_px, w), y = sk_spline_cell_knot(j, mesh_px, h);
            bg->mesh_level[j * bg->nx + i] =
                plane ? (float)(100.0 + 0.25 * x - 0.125 * y) : (float)(100 + 7 * sin(0.3 * (double)(i * 3 + j * j)));
            bg->mesh_rms[j * bg->nx + i] = (float)(5 + 0.1 * (double)i);
        }
    bg->median_rms = 5;
    return bg;
}

static void test_background_maps(void)
{
    long w = 300, h = 210;
    sk_background *plane = mesh_background(w, h, 64, 1);
    ok(sk_background_interpolate(plane, 2) == SK_OK, "background: plane interpolated");
    double worst = 0;
    for (long y = 0; y < h; y++)
        for (long x = 0; x < w; x++) {
            double d = fabs(plane->level[y * w + x] - (100.0 + 0.25 * (double)x - 0.125 * (double)y));
            worst = d > worst ? d : worst;
        }
    is_near(worst, 0, 1e-4, "background: a plane through the mesh reproduced at every pixel");
    sk_background_free(plane);

    sk_background *bg = mesh_background(w, h, 64, 0);
    float *want = malloc(sizeof(float) * (size_t)(w * h));
    ref_map(bg->mesh_level, bg->nx, bg->ny, 64, w, h, want);
    ok(sk_background_interpolate(bg, 2) == SK_OK &&
           memcmp(bg->level, want, sizeof(float) * (size_t)(w * h)) == 0,
       "background: the full map bit-identical to the former spline");

    char path[4200];
    snprintf(path, sizeof path, "%s/spline_bkg.fits", tap_tmpdir());
    sk_bkg_mesh *m = NULL;
    float *rows = malloc(sizeof(float) * (size_t)(w * 50));
    int rc = sk_background_write(path, bg, 0, 3.0);
    rc = rc ? rc : sk_bkg_mesh_read(path, &m);
    rc = rc ? rc : sk_bkg_mesh_rows(m, 17, 100, 200, 50, rows);
    int same = rc == SK_OK;
    for (long y = 0; same && y < 50; y++)
        same = memcmp(rows + y * 200, want + (100 + y) * w + 17, sizeof(float) * 200) == 0;
    ok(same, "coadd: background rows from the mesh file bit-identical to the former spline");
    sk_bkg_mesh_free(m);
    free(rows);
    free(want);
    sk_background_free(bg);
}

int main(void)
{
    tap_plan(10);
    test_one_dimension();
    test_background_maps();
    return tap_done();
}
