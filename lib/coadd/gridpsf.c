/* gridpsf.c: an input's PSF model, made in its own pixels, evaluated on an output grid through the local Jacobian of the two WCSs (and the output-to-input pixel map of that pair). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "extract/psf_priv.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/psf.h"
#include "skystack/wcs.h"
#include "coaddx_internal.h"
#include "extract/psf_internal.h"

/* Output pixel positions -> input pixel positions (n <= 5). */
static int out_to_in(const sk_grid_psf *g, long n, const double *x, const double *y, double *xi,
                     double *yi)
{
    double ra[5], dec[5];
    int st = sk_wcs_pix2sky(g->out_wcs, n, x, y, ra, dec);
    if (!st)
        st = sk_wcs_sky2pix(g->in_wcs, n, ra, dec, xi, yi);
    for (long k = 0; k < n && !st; k++)
        if (!isfinite(xi[k]) || !isfinite(yi[k]))
            st = SK_EINPUT;
    return st;
}

int sk_grid_map(void *ctx, long n, const double *x_px, const double *y_px, double *xi_px,
                double *yi_px)
{
    const sk_grid_psf *g = ctx;
    if (!g || !g->in_wcs || !g->out_wcs)
        return sk_error(SK_EINPUT, "grid map: no WCS");
    for (long k0 = 0; k0 < n; k0 += 5) {
        long m = n - k0 < 5 ? n - k0 : 5;
        if (out_to_in(g, m, x_px + k0, y_px + k0, xi_px + k0, yi_px + k0))
            return sk_error(SK_EINPUT, "grid map: output pixel (%.1f, %.1f) has no input position",
                            x_px[k0], y_px[k0]);
    }
    return SK_OK;
}

int sk_grid_psf_stamp(void *ctx, double x_px, double y_px, long size, float *stamp)
{
    const sk_grid_psf *g = ctx;
    if (!g || !g->psf || !g->in_wcs || !g->out_wcs)
        return sk_error(SK_EINPUT, "grid PSF: no model or WCS");
    if (size < 1 || size % 2 == 0)
        return sk_error(SK_EINPUT, "grid PSF: stamp size %ld must be odd", size);
    double x[5] = {x_px, x_px - 0.5, x_px + 0.5, x_px, x_px};
    double y[5] = {y_px, y_px, y_px, y_px - 0.5, y_px + 0.5};
    double xi[5], yi[5];
    if (out_to_in(g, 5, x, y, xi, yi))
        return sk_error(SK_EINPUT, "grid PSF: output pixel (%.1f, %.1f) has no input position",
                        x_px, y_px);
    /* J = d(input)/d(output) */
    double j11 = xi[2] - xi[1], j12 = xi[4] - xi[3];
    double j21 = yi[2] - yi[1], j22 = yi[4] - yi[3];
    double det = fabs(j11 * j22 - j12 * j21);
    if (!(det > 0.0))
        return sk_error(SK_EINPUT, "grid PSF: singular mapping at (%.1f, %.1f)", x_px, y_px);
    const sk_psf *p = g->psf;
    long np = (long)p->width * p->height;
    double *grid = malloc(sizeof(double) * (size_t)np);
    if (!grid)
        return sk_error(SK_EIO, "grid PSF: out of memory");
    sk_psf_grid_at(p, xi[0], yi[0], grid);
    long h = size / 2;
    double sum = 0.0;
    for (long v = 0; v < size; v++)
        for (long u = 0; u < size; u++) {
            double du = (double)(u - h), dv = (double)(v - h);
            double ox = j11 * du + j12 * dv, oy = j21 * du + j22 * dv;
            double gx = (double)(p->width / 2) + ox / p->step_px;
            double gy = (double)(p->height / 2) + oy / p->step_px;
            long fx, fy;
            double wx[6], wy[6];
            psf_lanczos3(gx, &fx, wx);
            psf_lanczos3(gy, &fy, wy);
            double val = 0.0;
            for (int b = 0; b < 6; b++) {
                long yy = fy + b;
                if (yy < 0 || yy >= p->height)
                    continue;
                for (int a = 0; a < 6; a++) {
                    long xx = fx + a;
                    if (xx >= 0 && xx < p->width)
                        val += wx[a] * wy[b] * grid[yy * p->width + xx];
                }
            }
            val *= det;
            stamp[v * size + u] = (float)val;
            sum += val;
        }
    free(grid);
    if (!(sum > 0.0) || !isfinite(sum))
        return sk_error(SK_EINPUT, "grid PSF: the model sums to %g at (%.1f, %.1f)", sum, x_px,
                        y_px);
    for (long i = 0; i < size * size; i++)
        stamp[i] = (float)(stamp[i] / sum);
    return SK_OK;
}
