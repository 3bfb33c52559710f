/* coadd_fixture.h: synthetic exposures for the resampling and coadd tests:
 * a TAN (optionally SIP) WCS, Gaussian stars integrated exactly over each
 * pixel, Gaussian sky noise from a seeded generator, and measurements
 * (aperture sums, centroids) made in the tests. Header-only. */
#ifndef SK_COADD_FIXTURE_H
#define SK_COADD_FIXTURE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/coadd.h"
#include "skystack/error.h"
#include "skystack/sim.h"
#include "skystack/wcs.h"
#include "sim/sim_internal.h"

typedef struct fx_star {
    double ra_deg, dec_deg, flux;
} fx_star;

typedef struct fx_wcs {
    double ra_deg, dec_deg;   /* tangent point */
    double crpix1, crpix2;    /* 1-based */
    double scale_arcsec;
    double rotation_deg;
    double sip;               /* quadratic SIP coefficient (0: plain TAN) */
} fx_wcs;

static sk_header *fx_header(const fx_wcs *w) __attribute__((unused));
static sk_header *fx_header(const fx_wcs *w)
{
    sk_header *h = sk_header_new();
    double s = w->scale_arcsec / 3600.0, r = w->rotation_deg * M_PI / 180.0;
    sk_header_set_long(h, "WCSAXES", 2, NULL);
    sk_header_set_str(h, "CTYPE1", w->sip != 0.0 ? "RA---TAN-SIP" : "RA---TAN", NULL);
    sk_header_set_str(h, "CTYPE2", w->sip != 0.0 ? "DEC--TAN-SIP" : "DEC--TAN", NULL);
    sk_header_set_double(h, "CRVAL1", w->ra_deg, NULL);
    sk_header_set_double(h, "CRVAL2", w->dec_deg, NULL);
    sk_header_set_double(h, "CRPIX1", w->crpix1, NULL);
    sk_header_set_double(h, "CRPIX2", w->crpix2, NULL);
    sk_header_set_double(h, "CD1_1", -s * cos(r), NULL);
    sk_header_set_double(h, "CD1_2", -s * sin(r), NULL);
    sk_header_set_double(h, "CD2_1", -s * sin(r), NULL);
    sk_header_set_double(h, "CD2_2", s * cos(r), NULL);
    if (w->sip != 0.0) {
        sk_header_set_long(h, "A_ORDER", 3, NULL);
        sk_header_set_long(h, "B_ORDER", 3, NULL);
        sk_header_set_double(h, "A_2_0", w->sip, NULL);
        sk_header_set_double(h, "A_1_1", -0.5 * w->sip, NULL);
        sk_header_set_double(h, "A_0_2", 0.7 * w->sip, NULL);
        sk_header_set_double(h, "A_3_0", 2e-3 * w->sip, NULL);
        sk_header_set_double(h, "B_2_0", -0.4 * w->sip, NULL);
        sk_header_set_double(h, "B_1_1", 0.8 * w->sip, NULL);
        sk_header_set_double(h, "B_0_2", w->sip, NULL);
        sk_header_set_double(h, "B_0_3", -1e-3 * w->sip, NULL);
    }
    return h;
}

/* Add a Gaussian star of sigma `sig` px integrated over each pixel. */
static void fx_add_star(float *sci, long w, long h, double x0, double y0, double flux, double sig)
    __attribute__((unused));
static void fx_add_star(float *sci, long w, long h, double x0, double y0, double flux, double sig)
{
    long r = (long)ceil(7.0 * sig) + 1;
    long xa = (long)floor(x0) - r, xb = (long)floor(x0) + r + 1;
    long ya = (long)floor(y0) - r, yb = (long)floor(y0) + r + 1;
    double k = 1.0 / (sqrt(2.0) * sig);
    for (long y = ya; y <= yb; y++) {
        if (y < 0 || y >= h)
            continue;
        double fy = 0.5 * (erf((y + 0.5 - y0) * k) - erf((y - 0.5 - y0) * k));
        for (long x = xa; x <= xb; x++) {
            if (x < 0 || x >= w)
                continue;
            double fxv = 0.5 * (erf((x + 0.5 - x0) * k) - erf((x - 0.5 - x0) * k));
            sci[y * w + x] += (float)(flux * fxv * fy);
        }
    }
}

/* An exposure: WCS `wc`, sky noise sigma `noise` (0: none) with weights
 * 1/noise^2 (weights 1 when noise is 0), stars of Gaussian sigma
 * `psf_sigma_arcsec` on the sky, MJD/EXPTIME/FILTER cards. */
static sk_image *fx_exposure(long w, long h, const fx_wcs *wc, const fx_star *stars, int nstars,
                             double psf_sigma_arcsec, double noise, uint64_t seed, double mjd)
    __attribute__((unused));
static sk_image *fx_exposure(long w, long h, const fx_wcs *wc, const fx_star *stars, int nstars,
                             double psf_sigma_arcsec, double noise, uint64_t seed, double mjd)
{
    sk_image *img = sk_image_new(w, h);
    sk_header_free(img->header);
    img->header = fx_header(wc);
    if (sk_wcs_from_header(img->header, &img->wcs) != SK_OK)
        return img;
    sk_header_set_double(img->header, "MJD-OBS", mjd, NULL);
    sk_header_set_double(img->header, "EXPTIME", 100.0, NULL);
    sk_header_set_str(img->header, "FILTER", "r", NULL);
    for (int k = 0; k < nstars; k++) {
        double x, y;
        if (sk_wcs_sky2pix(img->wcs, 1, &stars[k].ra_deg, &stars[k].dec_deg, &x, &y) != SK_OK)
            continue;
        double scale = sk_wcs_pixel_scale_arcsec(img->wcs, x, y);
        fx_add_star(img->sci, w, h, x, y, stars[k].flux, psf_sigma_arcsec / scale);
    }
    sk_rng rng;
    sk_rng_init(&rng, seed, 7, 0);
    for (long i = 0; i < w * h; i++) {
        if (noise > 0.0)
            img->sci[i] += (float)(noise * sk_rng_gauss(&rng));
        img->weight[i] = noise > 0.0 ? (float)(1.0 / (noise * noise)) : 1.0f;
    }
    return img;
}

/* Stars on a regular pattern around (ra, dec), spaced `step_arcsec`. */
static int fx_star_grid(double ra, double dec, int nside, double step_arcsec, double flux,
                        fx_star *out) __attribute__((unused));
static int fx_star_grid(double ra, double dec, int nside, double step_arcsec, double flux,
                        fx_star *out)
{
    int n = 0;
    for (int j = 0; j < nside; j++)
        for (int i = 0; i < nside; i++) {
            double e = (i - (nside - 1) / 2.0) * step_arcsec + 0.37 * j;
            double nn = (j - (nside - 1) / 2.0) * step_arcsec + 0.21 * i;
            sk_sim_offset_radec(ra, dec, 1, &e, &nn, &out[n].ra_deg, &out[n].dec_deg);
            out[n].flux = flux;
            n++;
        }
    return n;
}

/* Sum of v within radius r of (x0, y0) where the weight is > 0; *complete
 * = 0 when a pixel of the aperture has no data or leaves the image. */
static double fx_aperture(const float *v, const float *wgt, long w, long h, double x0, double y0,
                          double r, int *complete) __attribute__((unused));
static double fx_aperture(const float *v, const float *wgt, long w, long h, double x0, double y0,
                          double r, int *complete)
{
    double s = 0.0;
    *complete = 1;
    for (long y = (long)floor(y0 - r); y <= (long)ceil(y0 + r); y++)
        for (long x = (long)floor(x0 - r); x <= (long)ceil(x0 + r); x++) {
            if ((x - x0) * (x - x0) + (y - y0) * (y - y0) > r * r)
                continue;
            if (x < 0 || y < 0 || x >= w || y >= h || (wgt && !(wgt[y * w + x] > 0.0f))) {
                *complete = 0;
                continue;
            }
            s += v[y * w + x];
        }
    return s;
}

/* First-moment centroid within radius r (noise-free images). */
static void fx_centroid(const float *v, long w, long h, double x0, double y0, double r,
                        double *cx, double *cy) __attribute__((unused));
static void fx_centroid(const float *v, long w, long h, double x0, double y0, double r,
                        double *cx, double *cy)
{
    double s = 0, sx = 0, sy = 0;
    for (long y = (long)floor(y0 - r); y <= (long)ceil(y0 + r); y++)
        for (long x = (long)floor(x0 - r); x <= (long)ceil(x0 + r); x++) {
            if (x < 0 || y < 0 || x >= w || y >= h ||
                (x - x0) * (x - x0) + (y - y0) * (y - y0) > r * r)
                continue;
            double p = v[y * w + x];
            s += p;
            sx += p * x;
            sy += p * y;
        }
    *cx = sx / s;
    *cy = sy / s;
}

#endif
