/* photcal_refnbr.c: the light that reference-catalogue neighbours the image does not separate put into a calibration star's PSF fit, predicted from the catalogue's magnitudes and the PSF model. */
#include <math.h>
#include <stdlib.h>

#include "skystack/error.h"
#include "skystack/psf.h"
#include "photcal_priv.h"
#include "extract/psf_internal.h"

/* sum over the fit's disc (radius r px about the stamp's middle) of
 * a[pixel] b[pixel shifted by (sx, sy) stamp pixels] */
static double disc_product(const double *a, const double *b, int m, double r, int sx, int sy)
{
    double s = 0;
    int h = m / 2;
    for (int j = 0; j < m; j++)
        for (int i = 0; i < m; i++) {
            double dx = i - h, dy = j - h;
            int bi = i - sx, bj = j - sy;
            if (dx * dx + dy * dy > r * r || bi < 0 || bj < 0 || bi >= m || bj >= m)
                continue;
            s += a[j * m + i] * b[bj * m + bi];
        }
    return s;
}

int sk_photcal_overlap(const sk_psf *psf, double x, double y, double step_px, int n, double *out)
{
    double fwhm = psf->fwhm_px > 0 ? psf->fwhm_px : 3.0;
    double r = fmax(2.0, 2.0 * fwhm);
    int m = sk_psf_stamp_size(psf);
    if (m < 2 * (int)ceil(r) + 1)
        m = 2 * (int)ceil(r) + 1;
    double *p0 = malloc(sizeof *p0 * (size_t)m * (size_t)m), *pd = malloc(sizeof *pd * (size_t)m * (size_t)m);
    int st = p0 && pd ? SK_OK : sk_error(SK_EIO, "photometric calibration: out of memory");
    double cx = (double)lround(x), cy = (double)lround(y), norm = 0;
    st = st ? st : sk_psf_image(psf, cx, cy, m, p0);
    if (!st)
        norm = disc_product(p0, p0, m, r, 0, 0);
    if (!st && !(norm > 0))
        st = sk_error(SK_EINPUT, "photometric calibration: the PSF is empty at (%g, %g)", x, y);
    /* along x and along y, averaged: the model's ellipticity is small
       next to what the threshold needs */
    for (int k = 0; !st && k < n; k++) {
        double d = k * step_px, sum = 0;
        for (int axis = 0; !st && axis < 2; axis++) {
            double nx = cx + (axis ? 0 : d), ny = cy + (axis ? d : 0);
            st = sk_psf_image(psf, nx, ny, m, pd);
            if (!st)
                sum += disc_product(p0, pd, m, r, (int)(lround(nx) - (long)cx), (int)(lround(ny) - (long)cy));
        }
        out[k] = st ? 0 : fmax(0.0, 0.5 * sum / norm);
    }
    free(p0);
    free(pd);
    return st;
}

/* The flux of reference row j over that of row r: from the photometric
 * (colour-transformed) magnitudes where both have one, else from the
 * primary band's; NaN when neither pair is known. */
static double flux_ratio(const sk_photcal_refnbr *nb, long j, long r)
{
    if (isfinite(nb->mag[j]) && isfinite(nb->mag[r]))
        return pow(10.0, -0.4 * (nb->mag[j] - nb->mag[r]));
    if (nb->mag_alt && isfinite(nb->mag_alt[j]) && isfinite(nb->mag_alt[r]) && nb->mag_alt[j] < 99 &&
        nb->mag_alt[r] < 99)
        return pow(10.0, -0.4 * (nb->mag_alt[j] - nb->mag_alt[r]));
    return NAN;
}

/* Whether a listed source other than `self` lies within `sep` px of
 * (x, y): the image separated that neighbour, whose light the PSF
 * photometry takes out of the star's fit. */
static int separated(const sk_source_list *l, long self, double x, double y, double sep)
{
    for (long q = 0; q < l->n; q++)
        if (q != self && fabs(l->src[q].xwin - x) < sep && fabs(l->src[q].ywin - y) < sep &&
            hypot(l->src[q].xwin - x, l->src[q].ywin - y) < sep)
            return 1;
    return 0;
}

double sk_photcal_ref_contamination(const sk_photcal_refnbr *nb, const sk_source_list *l, long s, long r)
{
    const sk_source *src = &l->src[s];
    double reach = nb->step_px * (double)(nb->noverlap - 1), c = 0;
    double sep = fmax(1.0, 0.5 * (l->fwhm_px > 0 ? l->fwhm_px : 3.0));
    for (long j = 0; j < nb->n; j++) {
        if (j == r || !isfinite(nb->x_px[j]) || fabs(nb->x_px[j] - src->xwin) > reach ||
            fabs(nb->y_px[j] - src->ywin) > reach)
            continue;
        double d = hypot(nb->x_px[j] - src->xwin, nb->y_px[j] - src->ywin);
        double q = flux_ratio(nb, j, r);
        if (!(d < reach) || !isfinite(q) || separated(l, s, nb->x_px[j], nb->y_px[j], sep))
            continue;
        double t = d / nb->step_px;
        int i = (int)t;
        double a = i + 1 < nb->noverlap ? nb->overlap[i] + (t - i) * (nb->overlap[i + 1] - nb->overlap[i])
                                        : nb->overlap[nb->noverlap - 1];
        c += q * a;
    }
    return c;
}
