/* coadd_psf.c: the PSF of a coadd as a PSFEx model varying quadratically over it, through stamps at a 3x3 set of positions; for a direct coadd the stamps are the inputs' PSF models seen on the output grid, averaged with the inputs' combine weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/psf.h"
#include "coadd_internal.h"
#include "coaddx_internal.h"
#include "extract/psf_internal.h"

#define NPOS 9
#define NTERM 6

/* Solve the 6x6 system a x = b in place (Gaussian elimination with
 * partial pivoting); 0 when singular. */
static int solve6(double a[NTERM][NTERM], double *b)
{
    for (int c = 0; c < NTERM; c++) {
        int p = c;
        for (int r = c + 1; r < NTERM; r++)
            if (fabs(a[r][c]) > fabs(a[p][c]))
                p = r;
        if (!(fabs(a[p][c]) > 1e-12))
            return 0;
        if (p != c) {
            for (int k = 0; k < NTERM; k++) {
                double t = a[c][k];
                a[c][k] = a[p][k];
                a[p][k] = t;
            }
            double t = b[c];
            b[c] = b[p];
            b[p] = t;
        }
        for (int r = c + 1; r < NTERM; r++) {
            double f = a[r][c] / a[c][c];
            for (int k = c; k < NTERM; k++)
                a[r][k] -= f * a[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int c = NTERM - 1; c >= 0; c--) {
        double s = b[c];
        for (int k = c + 1; k < NTERM; k++)
            s -= a[c][k] * b[k];
        b[c] = s / a[c][c];
    }
    return 1;
}

/* Does output pixel (x, y) fall on input j? */
static int covers(const sk_grid *g, const sk_wcs *w, long width, long height, double x, double y)
{
    double ra, dec, xi, yi;
    if (sk_wcs_pix2sky(g->wcs, 1, &x, &y, &ra, &dec) || sk_wcs_sky2pix(w, 1, &ra, &dec, &xi, &yi)) {
        sk_error_clear();
        return 0;
    }
    return xi >= -0.5 && xi < width - 0.5 && yi >= -0.5 && yi < height - 0.5;
}

void sk_coadd_psf_positions(const sk_grid *grid, double *x_px, double *y_px)
{
    for (int p = 0; p < NPOS; p++) {
        x_px[p] = (grid->width - 1) * (1.0 + 2.0 * (p % 3)) / 6.0;
        y_px[p] = (grid->height - 1) * (1.0 + 2.0 * (p / 3)) / 6.0;
    }
}

int sk_coadd_psf_fit(const double *stamps, const int *have, long size, const sk_grid *grid,
                     struct sk_psf **out)
{
    *out = NULL;
    if (size < 1 || size % 2 == 0 || !grid)
        return sk_error(SK_EINPUT, "coadd PSF: stamp size %ld must be odd", size);
    const long npix = size * size;
    int nhave = 0;
    for (int p = 0; p < NPOS; p++)
        nhave += have[p] != 0;
    if (nhave == 0)
        return sk_error(SK_EINPUT, "coadd PSF: no stamp at any PSF position");
    double px[NPOS], py[NPOS];
    sk_coadd_psf_positions(grid, px, py);
    int rc = SK_OK;
    sk_psf *psf = NULL;
    if (nhave < NPOS) {
        /* partial coverage: one model, from the covered position nearest the centre */
        int best = have[4] ? 4 : -1;
        for (int p = 0; p < NPOS && best < 0; p++)
            if (have[p])
                best = p;
        rc = sk_psf_from_stamp(stamps + (size_t)best * npix, (int)size, grid->width,
                               grid->height, &psf);
        if (!rc)
            *out = psf;
        return rc;
    }
    /* a quadratic model over the coadd, least squares through the 9 stamps */
    psf = calloc(1, sizeof *psf);
    if (!psf || !(psf->comp = calloc((size_t)NTERM * (size_t)npix, sizeof *psf->comp))) {
        free(psf);
        return sk_error(SK_EIO, "coadd PSF: out of memory");
    }
    psf->width = psf->height = (int)size;
    psf->ncomp = NTERM;
    psf->degree = 2;
    psf->step_px = 1.0;
    psf->image_width = grid->width;
    psf->image_height = grid->height;
    psf->xzero = 0.5 * (grid->width + 1.0);
    psf->yzero = 0.5 * (grid->height + 1.0);
    psf->xscale = (double)grid->width;
    psf->yscale = (double)grid->height;
    double basis[NPOS][NTERM];
    for (int p = 0; p < NPOS; p++) {
        double X = (px[p] + 1.0 - psf->xzero) / psf->xscale, Y = (py[p] + 1.0 - psf->yzero) / psf->yscale;
        double b[NTERM] = {1.0, X, X * X, Y, X * Y, Y * Y}; /* PSFEx's order for degree 2 */
        memcpy(basis[p], b, sizeof b);
    }
    /* M = (B^T B)^-1 B^T, column by column through the 6x6 solve */
    double M[NTERM][NPOS];
    for (int p = 0; p < NPOS && !rc; p++) {
        double a[NTERM][NTERM], rhs[NTERM];
        for (int r = 0; r < NTERM; r++) {
            for (int c = 0; c < NTERM; c++) {
                double s = 0.0;
                for (int q = 0; q < NPOS; q++)
                    s += basis[q][r] * basis[q][c];
                a[r][c] = s;
            }
            rhs[r] = basis[p][r];
        }
        if (!solve6(a, rhs))
            rc = sk_error(SK_EIO, "coadd PSF: singular fit");
        for (int r = 0; r < NTERM; r++)
            M[r][p] = rhs[r];
    }
    for (int t = 0; t < NTERM && !rc; t++)
        for (long i = 0; i < npix; i++) {
            double s = 0.0;
            for (int p = 0; p < NPOS; p++)
                s += M[t][p] * stamps[(size_t)p * npix + i];
            psf->comp[(size_t)t * npix + i] = (float)s;
        }
    if (rc) {
        sk_psf_free(psf);
        return rc;
    }
    psf->fwhm_px = sk_psf_fwhm_at(psf, 0.5 * (grid->width - 1), 0.5 * (grid->height - 1));
    *out = psf;
    return SK_OK;
}

int sk_coadd_psf(int n, const struct sk_psf *const *psfs, const sk_wcs *const *wcs,
                 const long *width, const long *height, const double *weight, const sk_grid *grid,
                 struct sk_psf **out)
{
    *out = NULL;
    if (n <= 0 || !grid)
        return sk_error(SK_EINPUT, "coadd PSF: no inputs");
    /* stamp size: the largest input model seen at the output scale */
    double out_scale = sk_wcs_pixel_scale_arcsec(grid->wcs, 0.5 * (grid->width - 1),
                                                 0.5 * (grid->height - 1));
    long size = 11;
    for (int j = 0; j < n; j++) {
        if (!psfs[j] || !wcs[j])
            return sk_error(SK_EINPUT, "coadd PSF: input %d has no PSF or WCS", j + 1);
        double in_scale = sk_wcs_pixel_scale_arcsec(wcs[j], 0.5 * (width[j] - 1), 0.5 * (height[j] - 1));
        double s = sk_psf_stamp_size(psfs[j]) * (isfinite(in_scale / out_scale) ? in_scale / out_scale : 1.0);
        long k = (long)ceil(s);
        if (k > size)
            size = k;
    }
    if (size > 201)
        size = 201;
    if (size % 2 == 0)
        size++;
    long npix = size * size;
    double px[NPOS], py[NPOS];
    sk_coadd_psf_positions(grid, px, py);
    double *stamps = calloc((size_t)NPOS * (size_t)npix, sizeof *stamps);
    float *one = malloc((size_t)npix * sizeof *one);
    int have[NPOS] = {0};
    int rc = stamps && one ? SK_OK : sk_error(SK_EIO, "coadd PSF: out of memory");
    for (int p = 0; p < NPOS && !rc; p++) {
        double wsum = 0.0;
        double *st = stamps + (size_t)p * npix;
        for (int j = 0; j < n && !rc; j++) {
            if (!(weight[j] > 0) || !covers(grid, wcs[j], width[j], height[j], px[p], py[p]))
                continue;
            sk_grid_psf gp = {psfs[j], wcs[j], grid->wcs};
            rc = sk_grid_psf_stamp(&gp, px[p], py[p], size, one);
            for (long i = 0; !rc && i < npix; i++)
                st[i] += weight[j] * one[i];
            wsum += weight[j];
        }
        if (!rc && wsum > 0) {
            for (long i = 0; i < npix; i++)
                st[i] /= wsum;
            have[p] = 1;
        }
    }
    free(one);
    int nhave = 0;
    for (int p = 0; p < NPOS; p++)
        nhave += have[p];
    if (!rc && nhave == 0)
        rc = sk_error(SK_EINPUT, "coadd PSF: no input covers the coadd's PSF positions");
    if (rc) {
        free(stamps);
        return rc;
    }
    rc = sk_coadd_psf_fit(stamps, have, size, grid, out);
    free(stamps);
    return rc;
}
