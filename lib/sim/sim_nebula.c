/* sim_nebula.c: the extended nebular component of the sky: elongated Gaussian clouds fixed on the sky, the same for every exposure of a seed, placed on an exposure's pixels and added to its model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/wcs.h"
#include "sim_priv.h"
#include "sim_internal.h"

/* The field's random stream of the clouds (see sim_scene.c). */
enum { STREAM_NEBULA = 9 };

#define FWHM_PER_SIGMA 2.3548200450309493

void sim_nebula_free(sim_nebula *n)
{
    free(n->x);
    memset(n, 0, sizeof *n);
}

/* The clouds of the field in the tangent plane about its centre (arcsec
 * east and north), over the image, the dithers and a cloud's size all
 * round: a number that covers that area about three times over, each a
 * Gaussian of FWHM uniform in [0.5, 1.5] nebula_scale_arcsec along its
 * major axis, axis ratio uniform in [0.3, 1] (filaments to round
 * clouds), any position angle, peak uniform in [0.25, 1] times
 * nebula_amplitude. */
static long draw_clouds(const sk_sim_params *p, double *east, double *north, double *sig,
                        double *q, double *pa, double *peak, long cap)
{
    double half_x = 0.5 * (double)p->width_px * p->pixel_scale_arcsec + p->dither_arcsec +
                    p->nebula_scale_arcsec;
    double half_y = 0.5 * (double)p->height_px * p->pixel_scale_arcsec + p->dither_arcsec +
                    p->nebula_scale_arcsec;
    double s2 = p->nebula_scale_arcsec * p->nebula_scale_arcsec;
    long n = (long)ceil(3.0 * 4.0 * half_x * half_y / s2);
    if (n > cap)
        n = cap;
    if (!east)
        return n;
    sk_rng r;
    sk_rng_init(&r, p->seed, STREAM_NEBULA, 0);
    for (long k = 0; k < n; k++) {
        east[k] = sk_rng_range(&r, -half_x, half_x);
        north[k] = sk_rng_range(&r, -half_y, half_y);
        sig[k] = sk_rng_range(&r, 0.5, 1.5) * p->nebula_scale_arcsec / FWHM_PER_SIGMA;
        q[k] = sk_rng_range(&r, 0.3, 1.0);
        pa[k] = sk_rng_range(&r, 0.0, M_PI);
        peak[k] = sk_rng_range(&r, 0.25, 1.0) * p->nebula_amplitude;
    }
    return n;
}

int sim_nebula_place(const sk_sim_params *p, const sk_sim_expinfo *info, const sk_wcs *wcs,
                     sim_nebula *neb)
{
    memset(neb, 0, sizeof *neb);
    if (!(p->nebula_amplitude > 0))
        return SK_OK;
    const long cap = 100000;
    long n = draw_clouds(p, NULL, NULL, NULL, NULL, NULL, NULL, cap);
    /* x y sxx syy sxy peak, then the sky work space east north sig q pa
       peak ra dec */
    neb->x = malloc(sizeof *neb->x * (size_t)(14 * n + 1));
    if (!neb->x)
        return sk_error(SK_EIO, "imsim: out of memory for %ld nebular clouds", n);
    neb->y = neb->x + n;
    neb->ixx = neb->x + 2 * n;
    neb->iyy = neb->x + 3 * n;
    neb->ixy = neb->x + 4 * n;
    neb->peak_e = neb->x + 5 * n;
    double *east = neb->x + 6 * n, *north = east + n, *sig = east + 2 * n, *q = east + 3 * n;
    double *pa = east + 4 * n, *peak = east + 5 * n, *ra = east + 6 * n, *dec = east + 7 * n;
    draw_clouds(p, east, north, sig, q, pa, peak, cap);
    int rc = sk_sim_offset_radec(p->ra_deg, p->dec_deg, n, east, north, ra, dec);
    if (!rc)
        rc = sk_wcs_sky2pix(wcs, n, ra, dec, neb->x, neb->y);
    if (rc == SK_EINPUT) /* beyond the projection's domain: NaN, skipped */
        rc = SK_OK;
    if (rc) {
        sim_nebula_free(neb);
        return rc;
    }
    /* the nominal sky's surface brightness in ADU per pixel, as the stars'
       fluxes follow the exposure's zero point */
    double sky_adu = p->sky_adu > 0 ? p->sky_adu
                                    : p->pixel_scale_arcsec * p->pixel_scale_arcsec *
                                          pow(10.0, -0.4 * (p->sky_mag_arcsec2 - info->magzero));
    for (long k = 0; k < n; k++) {
        /* the major axis at position angle pa east of north; the image's
           north is rotated by the exposure's rotation */
        double sa = sig[k] / p->pixel_scale_arcsec, sb = sa * q[k];
        double th = pa[k] + info->rotation_deg * M_PI / 180.0;
        double c = cos(th), s = sin(th);
        double vxx = sa * sa * s * s + sb * sb * c * c, vyy = sa * sa * c * c + sb * sb * s * s;
        double vxy = (sb * sb - sa * sa) * s * c;
        double det = vxx * vyy - vxy * vxy;
        neb->ixx[k] = vyy / det;
        neb->iyy[k] = vxx / det;
        neb->ixy[k] = -vxy / det;
        neb->peak_e[k] = peak[k] * sky_adu * p->gain;
        neb->extent_px = fmax(neb->extent_px, 6.0 * sa);
    }
    neb->n = n;
    return SK_OK;
}

void sim_nebula_add(const sim_nebula *neb, double *model, long width, long height, long row0, long row1)
{
    double r = neb->extent_px;
    for (long k = 0; k < neb->n; k++) {
        double cx = neb->x[k], cy = neb->y[k];
        if (!isfinite(cx) || !isfinite(cy) || cy + r < (double)row0 || cy - r > (double)row1 ||
            cx + r < 0 || cx - r > (double)width)
            continue;
        long y0 = (long)floor(cy - r), y1 = (long)ceil(cy + r);
        long x0 = (long)floor(cx - r), x1 = (long)ceil(cx + r);
        if (y0 < row0) y0 = row0;
        if (y1 > row1 - 1) y1 = row1 - 1;
        if (y1 > height - 1) y1 = height - 1;
        if (x0 < 0) x0 = 0;
        if (x1 > width - 1) x1 = width - 1;
        for (long j = y0; j <= y1; j++) {
            double dy = (double)j - cy;
            for (long i = x0; i <= x1; i++) {
                double dx = (double)i - cx;
                double q2 = neb->ixx[k] * dx * dx + 2 * neb->ixy[k] * dx * dy + neb->iyy[k] * dy * dy;
                if (q2 < 32.0)
                    model[j * width + i] += neb->peak_e[k] * exp(-0.5 * q2);
            }
        }
    }
}
