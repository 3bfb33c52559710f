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

/* One TAN + SIP fit: the pairs, the polynomial's terms and scale, the
 * tangent point and the coefficients as they are iterated. */
typedef struct {
    const double *x, *y, *ra, *dec, *wt;
    long n;
    char *keep;
    int order;
    term t[36];
    int nt;
    double s;                 /* the polynomial's unit of (u, v) (px) */
    double crpix1, crpix2;    /* the image centre (1-based px) */
    double cra, cdec;         /* the tangent point (deg) */
    double *u, *v;            /* pixel offsets from CRPIX (px) */
    double *xi, *eta;         /* the pairs in the tangent plane (deg) */
    double *d2;               /* scratch */
    double cx[36], cy[36];    /* the polynomials of xi and eta */
} tansip;

/* Fit the polynomials with the tangent point iterated onto CRPIX (until
 * their constant terms vanish, at most 8 times). */
static int fit_tangent_point(tansip *F)
{
    for (int it = 0; it < 8; it++) {
        sk_wcs *tp = NULL;
        int st = tangent_plane(F->cra, F->cdec, &tp);
        if (st)
            return st;
        if (sk_wcs_sky2pix(tp, F->n, F->ra, F->dec, F->xi, F->eta) != SK_OK)
            for (long k = 0; k < F->n; k++)
                if (!isfinite(F->xi[k]) || !isfinite(F->eta[k]))
                    F->keep[k] = 0;
        if (poly_fit(F->u, F->v, F->xi, F->eta, F->wt, F->n, F->keep, F->t, F->nt, F->s, F->cx, F->cy) != 0) {
            sk_wcs_free(tp);
            return sk_error(SK_ENOTFOUND, "astrometry: the matches do not constrain a degree %d "
                            "polynomial (too few or aligned)", F->order);
        }
        double nra, ndec;
        int rc = sk_wcs_pix2sky(tp, 1, &F->cx[0], &F->cy[0], &nra, &ndec);
        sk_wcs_free(tp);
        if (rc || !isfinite(nra))
            return sk_error(SK_ENOTFOUND, "astrometry: the fitted tangent point is undefined");
        F->cra = nra;
        F->cdec = ndec;
        if (fabs(F->cx[0]) < 1e-12 && fabs(F->cy[0]) < 1e-12)
            break;
    }
    return SK_OK;
}

/* The fit's residual of pair k in the tangent plane (deg). */
static void fit_residual(const tansip *F, long k, double *rx, double *ry)
{
    *rx = poly_eval(F->cx, F->t, F->nt, F->u[k], F->v[k], F->s) - F->xi[k];
    *ry = poly_eval(F->cy, F->t, F->nt, F->u[k], F->v[k], F->s) - F->eta[k];
}

/* Clear from keep the pairs whose weighted residual is beyond clip_sigma
 * robust sigmas (while more than nt + 2 remain); returns how many. */
static long clip_pairs(tansip *F, double clip_sigma)
{
    long m = 0;
    for (long k = 0; k < F->n; k++) {
        if (!F->keep[k])
            continue;
        double rx, ry;
        fit_residual(F, k, &rx, &ry);
        F->d2[m++] = (rx * rx + ry * ry) * (F->wt ? F->wt[k] : 1.0);
    }
    qsort(F->d2, (size_t)m, sizeof *F->d2, sk_cmp_double);
    /* residuals normalised by their expected errors (the weights); for
       a 2-D Gaussian of sigma per axis, median d^2 = 2 ln 2 sigma^2 */
    double sigma = sqrt(F->d2[m / 2] / (2.0 * log(2.0)));
    double lim = clip_sigma * fmax(sigma, 1e-12);
    long removed = 0;
    for (long k = 0; k < F->n && m - removed > F->nt + 2; k++) {
        if (!F->keep[k])
            continue;
        double rx, ry;
        fit_residual(F, k, &rx, &ry);
        if (hypot(rx, ry) * sqrt(F->wt ? F->wt[k] : 1.0) > lim) {
            F->keep[k] = 0;
            removed++;
        }
    }
    return removed;
}

/* The TAN (order 1) or TAN-SIP header cards of the fitted polynomials:
 * CD from the linear terms, the SIP A and B coefficients from the others
 * (coefficients per pixel, not per s). */
static int tansip_header(const tansip *F, sk_header **out)
{
    const term *t = F->t;
    int nt = F->nt, order = F->order;
    double s = F->s;
    double cd[4] = {0, 0, 0, 0};
    for (int i = 0; i < nt; i++) {
        if (t[i].p == 1 && t[i].q == 0) {
            cd[0] = F->cx[i] / s;
            cd[2] = F->cy[i] / s;
        }
        if (t[i].p == 0 && t[i].q == 1) {
            cd[1] = F->cx[i] / s;
            cd[3] = F->cy[i] / s;
        }
    }
    double det = cd[0] * cd[3] - cd[1] * cd[2];
    if (!(fabs(det) > 0))
        return sk_error(SK_ENOTFOUND, "astrometry: the fitted CD matrix is singular");
    double inv[4] = {cd[3] / det, -cd[1] / det, -cd[2] / det, cd[0] / det};
    sk_header *h = sk_header_new();
    if (!h)
        return sk_error(SK_EIO, "astrometry: out of memory");
    *out = h;
    const char *sfx = order > 1 ? "-SIP" : "";
    char c1[32], c2[32];
    snprintf(c1, sizeof c1, "RA---TAN%s", sfx);
    snprintf(c2, sizeof c2, "DEC--TAN%s", sfx);
    int st = sk_header_set_long(h, "WCSAXES", 2, "number of WCS axes");
    if (!st) st = sk_header_set_str(h, "CTYPE1", c1, order > 1 ? "TAN projection with SIP distortion" : "TAN projection");
    if (!st) st = sk_header_set_str(h, "CTYPE2", c2, order > 1 ? "TAN projection with SIP distortion" : "TAN projection");
    if (!st) st = sk_header_set_str(h, "CUNIT1", "deg", NULL);
    if (!st) st = sk_header_set_str(h, "CUNIT2", "deg", NULL);
    if (!st) st = sk_header_set_str(h, "RADESYS", "ICRS", "frame of the reference catalog");
    if (!st) st = sk_header_set_double(h, "CRPIX1", F->crpix1, "reference pixel: the image centre");
    if (!st) st = sk_header_set_double(h, "CRPIX2", F->crpix2, "reference pixel: the image centre");
    if (!st) st = sk_header_set_double(h, "CRVAL1", F->cra, "[deg] tangent point RA");
    if (!st) st = sk_header_set_double(h, "CRVAL2", F->cdec, "[deg] tangent point Dec");
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
            double ax = F->cx[i] / f, ay = F->cy[i] / f;
            char ka[40], kb[40];
            snprintf(ka, sizeof ka, "A_%d_%d", t[i].p, t[i].q);
            snprintf(kb, sizeof kb, "B_%d_%d", t[i].p, t[i].q);
            st = sk_header_set_double(h, ka, inv[0] * ax + inv[1] * ay, NULL);
            if (!st) st = sk_header_set_double(h, kb, inv[2] * ax + inv[3] * ay, NULL);
        }
    }
    return st;
}

/* The rms of the kept pairs in the tangent plane, per axis, and through
 * the solution w in pixels; xs, ys are scratch of n each. */
static void fit_rms(const tansip *F, const sk_wcs *w, double *xs, double *ys, astrom_fit_out *out)
{
    double s1 = 0, s2 = 0, px2 = 0;
    long nk = 0;
    sk_wcs_sky2pix(w, F->n, F->ra, F->dec, xs, ys); /* failed points come back NaN */
    for (long k = 0; k < F->n; k++) {
        if (!F->keep[k])
            continue;
        double rx, ry;
        fit_residual(F, k, &rx, &ry);
        s1 += rx * rx;
        s2 += ry * ry;
        if (isfinite(xs[k]) && isfinite(ys[k]))
            px2 += (xs[k] - F->x[k]) * (xs[k] - F->x[k]) + (ys[k] - F->y[k]) * (ys[k] - F->y[k]);
        nk++;
    }
    out->rms1_deg = sqrt(s1 / (double)nk);
    out->rms2_deg = sqrt(s2 / (double)nk);
    out->rms_arcsec = 3600.0 * sqrt((s1 + s2) / (2.0 * (double)nk));
    out->rms_px = sqrt(px2 / (2.0 * (double)nk));
    out->nkept = nk;
}

/* Passes of fits and clipping until no pair is clipped (at most 20). */
static int fit_and_clip(tansip *F, double clip_sigma)
{
    for (int pass = 0; pass < 20; pass++) {
        long nk = 0;
        for (long k = 0; k < F->n; k++)
            nk += F->keep[k] != 0;
        if (nk < F->nt + 1)
            return sk_error(SK_ENOTFOUND, "astrometry: %ld matches left for %d terms of a degree %d "
                            "polynomial", nk, F->nt, F->order);
        int st = fit_tangent_point(F);
        if (st)
            return st;
        if (!(clip_sigma > 0))
            break;
        if (!clip_pairs(F, clip_sigma))
            break;
    }
    return SK_OK;
}

int astrom_fit_tansip(const double *x, const double *y, const double *ra, const double *dec,
                      const double *wt, long n, char *keep, int order, long width, long height,
                      const sk_wcs *guess, double clip_sigma, astrom_fit_out *out)
{
    memset(out, 0, sizeof *out);
    if (order < 1 || order > 5)
        return sk_error(SK_EINPUT, "astrometry: SIP order %d is outside [1, 5]", order);
    tansip F = { .x = x, .y = y, .ra = ra, .dec = dec, .wt = wt, .n = n, .keep = keep, .order = order,
                 .s = 0.5 * (double)(width > height ? width : height),
                 .crpix1 = 0.5 * ((double)width + 1.0), .crpix2 = 0.5 * ((double)height + 1.0) };
    F.nt = make_terms(order, F.t);
    double xc = F.crpix1 - 1.0, yc = F.crpix2 - 1.0;
    if (sk_wcs_pix2sky(guess, 1, &xc, &yc, &F.cra, &F.cdec) != SK_OK || !isfinite(F.cra))
        return sk_error(SK_EINPUT, "astrometry: the initial WCS has no sky position at the image centre");
    double *buf = malloc(sizeof *buf * (size_t)(6 * n + 1));
    if (!buf)
        return sk_error(SK_EIO, "astrometry: out of memory");
    F.u = buf;
    F.v = buf + n;
    F.xi = buf + 2 * n;
    F.eta = buf + 3 * n;
    F.d2 = buf + 4 * n;
    for (long k = 0; k < n; k++) {
        F.u[k] = x[k] + 1.0 - F.crpix1;
        F.v[k] = y[k] + 1.0 - F.crpix2;
    }
    sk_header *h = NULL;
    sk_wcs *w = NULL;
    int st = fit_and_clip(&F, clip_sigma);
    if (!st)
        st = tansip_header(&F, &h);
    if (!st)
        st = sk_wcs_from_header(h, &w);
    if (!st)
        fit_rms(&F, w, buf + 4 * n, buf + 5 * n, out);
    free(buf);
    if (st) {
        sk_header_free(h);
        sk_wcs_free(w);
        return st;
    }
    out->header = h;
    out->wcs = w;
    return SK_OK;
}
