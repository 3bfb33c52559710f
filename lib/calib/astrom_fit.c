/* astrom_fit.c: the TAN + SIP fit of matched pixel and sky positions: linear least squares in the tangent plane (through wcslib's TAN), tangent point iterated to the image centre, robust sigma clipping, and the FITS header cards of the result. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/wcs.h"
#include "numeric/linsolve.h"
#include "numeric/stats.h"
#include "astrom_priv.h"

/* A TAN projection about (ra, dec) whose 0-based pixel coordinates are the
 * intermediate world coordinates in degrees (CD = identity, CRPIX = 1). */
static int tangent_plane(double ra, double dec, sk_wcs **w)
{
    sk_header *h = sk_header_new();
    if (!h)
        return sk_error(SK_EIO, "astrometry: out of memory");
    int rc = sk_header_set_long(h, "WCSAXES", 2, NULL);
    if (!rc) rc = sk_header_set_str(h, "CTYPE1", "RA---TAN", NULL);
    if (!rc) rc = sk_header_set_str(h, "CTYPE2", "DEC--TAN", NULL);
    if (!rc) rc = sk_header_set_double(h, "CRPIX1", 1.0, NULL);
    if (!rc) rc = sk_header_set_double(h, "CRPIX2", 1.0, NULL);
    if (!rc) rc = sk_header_set_double(h, "CRVAL1", ra, NULL);
    if (!rc) rc = sk_header_set_double(h, "CRVAL2", dec, NULL);
    if (!rc) rc = sk_header_set_double(h, "CD1_1", 1.0, NULL);
    if (!rc) rc = sk_header_set_double(h, "CD2_2", 1.0, NULL);
    if (!rc) rc = sk_wcs_from_header(h, w);
    sk_header_free(h);
    return rc;
}

typedef struct term {
    int p, q;
} term;

static int make_terms(int order, term *t)
{
    int n = 0;
    for (int d = 0; d <= order; d++)
        for (int q = 0; q <= d; q++) {
            t[n].p = d - q;
            t[n].q = q;
            n++;
        }
    return n;
}

static double ipow(double x, int p)
{
    double r = 1;
    while (p-- > 0)
        r *= x;
    return r;
}

/* One least-squares fit of xi, eta (deg) as polynomials of (u, v) / s. */
static int poly_fit(const double *u, const double *v, const double *xi, const double *eta,
                    const double *wt, long n, const char *keep, const term *t, int nt, double s,
                    double *cx, double *cy)
{
    double a[36 * 36], r[2 * 36], f[36];
    memset(a, 0, sizeof(double) * (size_t)(nt * nt));
    memset(r, 0, sizeof(double) * (size_t)(2 * nt));
    for (long k = 0; k < n; k++) {
        if (!keep[k])
            continue;
        double w = wt ? wt[k] : 1.0;
        for (int i = 0; i < nt; i++)
            f[i] = ipow(u[k] / s, t[i].p) * ipow(v[k] / s, t[i].q);
        double y[2] = {xi[k], eta[k]};
        sk_normal_add(a, r, nt, 2, f, w, y);
    }
    if (sk_cholesky_solve(a, r, nt, 2, 1e-300) != 0)
        return -1;
    memcpy(cx, r, sizeof(double) * (size_t)nt);
    memcpy(cy, r + nt, sizeof(double) * (size_t)nt);
    return 0;
}

static double poly_eval(const double *c, const term *t, int nt, double u, double v, double s)
{
    double sum = 0;
    for (int i = 0; i < nt; i++)
        sum += c[i] * ipow(u / s, t[i].p) * ipow(v / s, t[i].q);
    return sum;
}

int astrom_fit_tansip(const double *x, const double *y, const double *ra, const double *dec,
                      const double *wt, long n, char *keep, int order, long width, long height,
                      const sk_wcs *guess, double clip_sigma, astrom_fit_out *out)
{
    memset(out, 0, sizeof *out);
    if (order < 1 || order > 5)
        return sk_error(SK_EINPUT, "astrometry: SIP order %d is outside [1, 5]", order);
    term t[36];
    int nt = make_terms(order, t);
    double crpix1 = 0.5 * ((double)width + 1.0), crpix2 = 0.5 * ((double)height + 1.0);
    double s = 0.5 * (double)(width > height ? width : height);
    double cra, cdec, xc = crpix1 - 1.0, yc = crpix2 - 1.0;
    if (sk_wcs_pix2sky(guess, 1, &xc, &yc, &cra, &cdec) != SK_OK || !isfinite(cra))
        return sk_error(SK_EINPUT, "astrometry: the initial WCS has no sky position at the image centre");
    double *buf = malloc(sizeof *buf * (size_t)(6 * n + 1));
    if (!buf)
        return sk_error(SK_EIO, "astrometry: out of memory");
    double *u = buf, *v = buf + n, *xi = buf + 2 * n, *eta = buf + 3 * n, *d2 = buf + 4 * n;
    for (long k = 0; k < n; k++) {
        u[k] = x[k] + 1.0 - crpix1;
        v[k] = y[k] + 1.0 - crpix2;
    }
    double cx[36], cy[36];
    int st = SK_OK;
    for (int pass = 0; pass < 20 && !st; pass++) {
        long nk = 0;
        for (long k = 0; k < n; k++)
            nk += keep[k] != 0;
        if (nk < nt + 1) {
            st = sk_error(SK_ENOTFOUND, "astrometry: %ld matches left for %d terms of a degree %d "
                          "polynomial", nk, nt, order);
            break;
        }
        /* tangent point iterated onto CRPIX */
        for (int it = 0; it < 8 && !st; it++) {
            sk_wcs *tp = NULL;
            st = tangent_plane(cra, cdec, &tp);
            if (st)
                break;
            if (sk_wcs_sky2pix(tp, n, ra, dec, xi, eta) != SK_OK)
                for (long k = 0; k < n; k++)
                    if (!isfinite(xi[k]) || !isfinite(eta[k]))
                        keep[k] = 0;
            if (poly_fit(u, v, xi, eta, wt, n, keep, t, nt, s, cx, cy) != 0) {
                sk_wcs_free(tp);
                st = sk_error(SK_ENOTFOUND, "astrometry: the matches do not constrain a degree %d "
                              "polynomial (too few or aligned)", order);
                break;
            }
            double nra, ndec;
            int rc = sk_wcs_pix2sky(tp, 1, &cx[0], &cy[0], &nra, &ndec);
            sk_wcs_free(tp);
            if (rc || !isfinite(nra)) {
                st = sk_error(SK_ENOTFOUND, "astrometry: the fitted tangent point is undefined");
                break;
            }
            cra = nra;
            cdec = ndec;
            if (fabs(cx[0]) < 1e-12 && fabs(cy[0]) < 1e-12)
                break;
        }
        if (st)
            break;
        /* residuals and clipping */
        long m = 0;
        for (long k = 0; k < n; k++) {
            if (!keep[k])
                continue;
            double rx = poly_eval(cx, t, nt, u[k], v[k], s) - xi[k];
            double ry = poly_eval(cy, t, nt, u[k], v[k], s) - eta[k];
            d2[m++] = (rx * rx + ry * ry) * (wt ? wt[k] : 1.0);
        }
        if (!(clip_sigma > 0))
            break;
        qsort(d2, (size_t)m, sizeof *d2, sk_cmp_double);
        /* residuals normalised by their expected errors (the weights); for
           a 2-D Gaussian of sigma per axis, median d^2 = 2 ln 2 sigma^2 */
        double sigma = sqrt(d2[m / 2] / (2.0 * log(2.0)));
        double lim = clip_sigma * fmax(sigma, 1e-12);
        long removed = 0;
        for (long k = 0; k < n && m - removed > nt + 2; k++) {
            if (!keep[k])
                continue;
            double rx = poly_eval(cx, t, nt, u[k], v[k], s) - xi[k];
            double ry = poly_eval(cy, t, nt, u[k], v[k], s) - eta[k];
            if (hypot(rx, ry) * sqrt(wt ? wt[k] : 1.0) > lim) {
                keep[k] = 0;
                removed++;
            }
        }
        if (!removed)
            break;
    }
    if (st) {
        free(buf);
        return st;
    }

    /* CD and SIP from the polynomial (coefficients per pixel, not per s) */
    double cd[4] = {0, 0, 0, 0};
    for (int i = 0; i < nt; i++) {
        if (t[i].p == 1 && t[i].q == 0) {
            cd[0] = cx[i] / s;
            cd[2] = cy[i] / s;
        }
        if (t[i].p == 0 && t[i].q == 1) {
            cd[1] = cx[i] / s;
            cd[3] = cy[i] / s;
        }
    }
    double det = cd[0] * cd[3] - cd[1] * cd[2];
    if (!(fabs(det) > 0)) {
        free(buf);
        return sk_error(SK_ENOTFOUND, "astrometry: the fitted CD matrix is singular");
    }
    double inv[4] = {cd[3] / det, -cd[1] / det, -cd[2] / det, cd[0] / det};
    sk_header *h = sk_header_new();
    if (!h) {
        free(buf);
        return sk_error(SK_EIO, "astrometry: out of memory");
    }
    const char *sfx = order > 1 ? "-SIP" : "";
    char c1[32], c2[32];
    snprintf(c1, sizeof c1, "RA---TAN%s", sfx);
    snprintf(c2, sizeof c2, "DEC--TAN%s", sfx);
    st = sk_header_set_long(h, "WCSAXES", 2, "number of WCS axes");
    if (!st) st = sk_header_set_str(h, "CTYPE1", c1, order > 1 ? "TAN projection with SIP distortion" : "TAN projection");
    if (!st) st = sk_header_set_str(h, "CTYPE2", c2, order > 1 ? "TAN projection with SIP distortion" : "TAN projection");
    if (!st) st = sk_header_set_str(h, "CUNIT1", "deg", NULL);
    if (!st) st = sk_header_set_str(h, "CUNIT2", "deg", NULL);
    if (!st) st = sk_header_set_str(h, "RADESYS", "ICRS", "frame of the reference catalog");
    if (!st) st = sk_header_set_double(h, "CRPIX1", crpix1, "reference pixel: the image centre");
    if (!st) st = sk_header_set_double(h, "CRPIX2", crpix2, "reference pixel: the image centre");
    if (!st) st = sk_header_set_double(h, "CRVAL1", cra, "[deg] tangent point RA");
    if (!st) st = sk_header_set_double(h, "CRVAL2", cdec, "[deg] tangent point Dec");
    if (!st) st = sk_header_set_double(h, "CD1_1", cd[0], NULL);
    if (!st) st = sk_header_set_double(h, "CD1_2", cd[1], NULL);
    if (!st) st = sk_header_set_double(h, "CD2_1", cd[2], NULL);
    if (!st) st = sk_header_set_double(h, "CD2_2", cd[3], NULL);
    if (order > 1) {
        if (!st) st = sk_header_set_long(h, "A_ORDER", order, "SIP polynomial order, axis 1");
        if (!st) st = sk_header_set_long(h, "B_ORDER", order, "SIP polynomial order, axis 2");
        for (int i = 0; i < nt && !st; i++) {
            if (t[i].p + t[i].q < 2)
                continue;
            double f = ipow(s, t[i].p + t[i].q);
            double ax = cx[i] / f, ay = cy[i] / f;
            char ka[40], kb[40];
            snprintf(ka, sizeof ka, "A_%d_%d", t[i].p, t[i].q);
            snprintf(kb, sizeof kb, "B_%d_%d", t[i].p, t[i].q);
            st = sk_header_set_double(h, ka, inv[0] * ax + inv[1] * ay, NULL);
            if (!st) st = sk_header_set_double(h, kb, inv[2] * ax + inv[3] * ay, NULL);
        }
    }
    sk_wcs *w = NULL;
    if (!st)
        st = sk_wcs_from_header(h, &w);

    /* rms of the kept, in the tangent plane and through the solution */
    double s1 = 0, s2 = 0, px2 = 0;
    long nk = 0;
    double *xs = buf + 4 * n, *ys = buf + 5 * n;
    if (!st)
        sk_wcs_sky2pix(w, n, ra, dec, xs, ys); /* failed points come back NaN */
    for (long k = 0; !st && k < n; k++) {
        if (!keep[k])
            continue;
        double rx = poly_eval(cx, t, nt, u[k], v[k], s) - xi[k];
        double ry = poly_eval(cy, t, nt, u[k], v[k], s) - eta[k];
        s1 += rx * rx;
        s2 += ry * ry;
        if (isfinite(xs[k]) && isfinite(ys[k]))
            px2 += (xs[k] - x[k]) * (xs[k] - x[k]) + (ys[k] - y[k]) * (ys[k] - y[k]);
        nk++;
    }
    free(buf);
    if (st) {
        sk_header_free(h);
        sk_wcs_free(w);
        return st;
    }
    out->rms1_deg = sqrt(s1 / (double)nk);
    out->rms2_deg = sqrt(s2 / (double)nk);
    out->rms_arcsec = 3600.0 * sqrt((s1 + s2) / (2.0 * (double)nk));
    out->rms_px = sqrt(px2 / (2.0 * (double)nk));
    out->nkept = nk;
    out->header = h;
    out->wcs = w;
    return SK_OK;
}
