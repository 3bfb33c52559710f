/* noise_corr.c: the pixel-noise correlation a resampled coadd inherits from its inputs' resampling kernels, and the factor by which it raises the noise of PSF-weighted sums over what the per-pixel variance predicts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "direct_priv.h"
#include "aligned_priv.h"
#include "skystack/error.h"
#include "skystack/header.h"

int sk_noise_corr_input(const sk_kernel_table *kt, const sk_grid *grid, const sk_wcs *in_wcs, long x0,
                        long y0, long x1, long y1, sk_noise_corr *out)
{
    memset(out, 0, sizeof *out);
    if (x1 <= x0 || y1 <= y0)
        return SK_OK;
    long rx0 = x0, ry0 = y0, rx1 = x1, ry1 = y1;
    sk_grid_psf gp = {NULL, in_wcs, grid->wcs};
    sk_resample_noise m;
    int rc = sk_resample_noise_at(&m, kt, sk_grid_map, &gp, rx0, ry0, rx1, ry1);
    if (rc)
        return rc;
    if (!m.identity && m.cov && m.rho > 0.0) {
        out->r = m.r;
        out->rho = m.rho;
        out->c = m.cov; /* taken over */
        m.cov = NULL;
    }
    sk_resample_noise_clear(&m);
    return SK_OK;
}

void sk_noise_corr_clear(sk_noise_corr *c)
{
    free(c->c);
    memset(c, 0, sizeof *c);
}

int sk_noise_corr_combine(const sk_noise_corr *const *in, const double *u, int n, sk_noise_corr *out)
{
    memset(out, 0, sizeof *out);
    long r = 0;
    int resampled = 0;
    for (int j = 0; j < n; j++)
        if (u[j] > 0.0 && in[j]->c) {
            resampled = 1;
            if (in[j]->r > r)
                r = in[j]->r;
        }
    if (!resampled)
        return SK_OK;
    long nw = 2 * r + 1;
    double *c = calloc((size_t)(nw * nw), sizeof *c), c0 = 0.0;
    if (!c)
        return sk_error(SK_EIO, "coadd noise correlation: out of memory");
    for (int j = 0; j < n; j++) {
        if (!(u[j] > 0.0))
            continue;
        if (!in[j]->c) { /* not resampled: white, unit variance */
            c[r * nw + r] += u[j];
            c0 += u[j];
            continue;
        }
        long rj = in[j]->r, mj = 2 * rj + 1;
        for (long dy = -rj; dy <= rj; dy++)
            for (long dx = -rj; dx <= rj; dx++)
                c[(dy + r) * nw + dx + r] += u[j] * in[j]->c[(dy + rj) * mj + dx + rj];
        c0 += u[j] * in[j]->rho;
    }
    if (!(c0 > 0.0)) {
        free(c);
        return SK_OK;
    }
    for (long i = 0; i < nw * nw; i++)
        c[i] /= c0;
    out->r = r;
    out->rho = 1.0;
    out->c = c;
    return SK_OK;
}

double sk_noise_corr_factor(const sk_noise_corr *c, double fwhm_px)
{
    if (!c->c || !(fwhm_px > 0.0))
        return 1.0;
    /* the autocorrelation of a Gaussian of sigma s, over its value at 0:
       exp(-d^2 / (4 s^2)) */
    double s = fwhm_px / (2.0 * sqrt(2.0 * log(2.0))), f2 = 0.0;
    long r = c->r, nw = 2 * r + 1;
    for (long dy = -r; dy <= r; dy++)
        for (long dx = -r; dx <= r; dx++)
            f2 += c->c[(dy + r) * nw + dx + r] * exp(-(double)(dx * dx + dy * dy) / (4.0 * s * s)) / c->rho;
    return f2 > 0.0 ? sqrt(f2) : 1.0;
}
