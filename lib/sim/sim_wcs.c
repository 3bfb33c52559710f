/* sim_wcs.c: the simulated detector's TAN+SIP world coordinates: header
 * cards of a pointing, tangent-plane offsets, and deliberate perturbations. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/sim.h"
#include "skystack/wcs.h"
#include "sim_internal.h"

int sk_sim_offset_radec(double ra_deg, double dec_deg, long n, const double *east_arcsec,
                        const double *north_arcsec, double *ra_out, double *dec_out)
{
    /* A TAN projection of one arcsec per pixel, east along +x, through wcslib. */
    sk_header *h = sk_header_new();
    if (!h)
        return sk_error(SK_EIO, "imsim: out of memory");
    int rc = sk_header_set_long(h, "WCSAXES", 2, NULL);
    rc = rc ? rc : sk_header_set_str(h, "CTYPE1", "RA---TAN", NULL);
    rc = rc ? rc : sk_header_set_str(h, "CTYPE2", "DEC--TAN", NULL);
    rc = rc ? rc : sk_header_set_double(h, "CRPIX1", 1.0, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CRPIX2", 1.0, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CRVAL1", ra_deg, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CRVAL2", dec_deg, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CD1_1", 1.0 / 3600.0, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CD2_2", 1.0 / 3600.0, NULL);
    sk_wcs *w = NULL;
    rc = rc ? rc : sk_wcs_from_header(h, &w);
    sk_header_free(h);
    if (rc)
        return rc;
    rc = sk_wcs_pix2sky(w, n, east_arcsec, north_arcsec, ra_out, dec_out);
    sk_wcs_free(w);
    for (long i = 0; !rc && i < n; i++)
        if (ra_out[i] < 0.0)
            ra_out[i] += 360.0;
    return rc;
}

/* p[i][j] x^i y^j for a polynomial of degree <= 3 in (u, v) after the
 * substitution u = m00 x + m01 y, v = m10 x + m11 y. */
static void substitute(const double in[4][4], const double m[4], double out[4][4])
{
    static const double binom[4][4] = {{1, 0, 0, 0}, {1, 1, 0, 0}, {1, 2, 1, 0}, {1, 3, 3, 1}};
    memset(out, 0, 16 * sizeof(double));
    for (int i = 0; i < 4; i++)
        for (int j = 0; i + j < 4; j++) {
            if (in[i][j] == 0.0)
                continue;
            /* (m00 x + m01 y)^i (m10 x + m11 y)^j */
            for (int k = 0; k <= i; k++)
                for (int l = 0; l <= j; l++) {
                    double t = in[i][j] * binom[i][k] * pow(m[0], k) * pow(m[1], i - k) *
                               binom[j][l] * pow(m[2], l) * pow(m[3], j - l);
                    out[k + l][i - k + j - l] += t;
                }
        }
}

/* The SIP distortion (a, b in pixel offsets) as the equivalent TPV:
 * xi = x + CD1. (f, g), eta = y + CD2. (f, g), where (x, y) = CD (u, v) are
 * the undistorted intermediate coordinates, so (u, v) = CD^-1 (x, y) and the
 * polynomials keep their degree; TPV numbers the terms of xi in x, y and
 * those of eta in y, x. */
static int tpv_cards(const double a[4][4], const double b[4][4], const double cd[4], sk_header *h)
{
    double det = cd[0] * cd[3] - cd[1] * cd[2];
    double inv[4] = {cd[3] / det, -cd[1] / det, -cd[2] / det, cd[0] / det};
    double fx[4][4], gx[4][4], xi[4][4], eta[4][4];
    substitute(a, inv, fx);
    substitute(b, inv, gx);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            xi[i][j] = cd[0] * fx[i][j] + cd[1] * gx[i][j];
            eta[i][j] = cd[2] * fx[i][j] + cd[3] * gx[i][j];
        }
    xi[1][0] += 1.0;
    eta[0][1] += 1.0;
    /* TPV term numbers of x^i y^j (no r terms) */
    static const int term[4][4] = {{0, 2, 6, 10}, {1, 5, 9, -1}, {4, 8, -1, -1}, {7, -1, -1, -1}};
    int rc = sk_header_set_str(h, "CTYPE1", "RA---TPV", "TAN projection with TPV distortion");
    rc = rc ? rc : sk_header_set_str(h, "CTYPE2", "DEC--TPV", "TAN projection with TPV distortion");
    for (int i = 0; !rc && i < 4; i++)
        for (int j = 0; !rc && i + j < 4; j++) {
            char key[32];
            snprintf(key, sizeof key, "PV1_%d", term[i][j]);
            rc = sk_header_set_double(h, key, xi[i][j], NULL);
        }
    for (int i = 0; !rc && i < 4; i++)
        for (int j = 0; !rc && i + j < 4; j++) {
            char key[32];
            snprintf(key, sizeof key, "PV2_%d", term[j][i]); /* eta: y first */
            rc = sk_header_set_double(h, key, eta[i][j], NULL);
        }
    return rc;
}

int sk_sim_wcs_header(const sk_sim_params *p, double ra_deg, double dec_deg,
                      double rotation_deg, double scale_arcsec, sk_header *h)
{
    double s = scale_arcsec / 3600.0, th = rotation_deg * M_PI / 180.0;
    double w = (double)p->width_px, hgt = (double)p->height_px;
    /* North up, east left when rotation_deg = 0; rotation turns the sky
     * counter-clockwise on the detector. */
    double cd11 = -s * cos(th), cd12 = s * sin(th);
    double cd21 = s * sin(th), cd22 = s * cos(th);
    int rc = sk_header_set_long(h, "WCSAXES", 2, "number of WCS axes");
    rc = rc ? rc : sk_header_set_str(h, "CTYPE1", "RA---TAN-SIP", "TAN projection with SIP distortion");
    rc = rc ? rc : sk_header_set_str(h, "CTYPE2", "DEC--TAN-SIP", "TAN projection with SIP distortion");
    rc = rc ? rc : sk_header_set_str(h, "CUNIT1", "deg", NULL);
    rc = rc ? rc : sk_header_set_str(h, "CUNIT2", "deg", NULL);
    rc = rc ? rc : sk_header_set_str(h, "RADESYS", "ICRS", NULL);
    rc = rc ? rc : sk_header_set_double(h, "CRPIX1", 0.5 * (w + 1.0), "reference pixel (1-based)");
    rc = rc ? rc : sk_header_set_double(h, "CRPIX2", 0.5 * (hgt + 1.0), "reference pixel (1-based)");
    rc = rc ? rc : sk_header_set_double(h, "CRVAL1", ra_deg, "[deg] tangent point RA");
    rc = rc ? rc : sk_header_set_double(h, "CRVAL2", dec_deg, "[deg] tangent point Dec");
    rc = rc ? rc : sk_header_set_double(h, "CD1_1", cd11, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CD1_2", cd12, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CD2_1", cd21, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CD2_2", cd22, NULL);
    if (rc)
        return rc;

    /* The camera's distortion, the same for every exposure: a radial cubic
     * term (barrel for sip_corner_px < 0, pincushion for > 0) giving 80 %
     * of the corner displacement, plus a decentring quadratic term giving
     * 30 %, both in pixel offsets from CRPIX as SIP prescribes. */
    double rc2 = 0.25 * ((w - 1.0) * (w - 1.0) + (hgt - 1.0) * (hgt - 1.0));
    double k = 0.8 * p->sip_corner_px / (rc2 * sqrt(rc2));
    double c = 0.3 * p->sip_corner_px / rc2;
    double a[4][4] = {{0}}, b[4][4] = {{0}}; /* a[i][j]: coefficient of u^i v^j */
    a[2][0] = 0.6 * c; a[1][1] = 0.4 * c; a[0][2] = -0.3 * c; a[3][0] = k; a[1][2] = k;
    b[2][0] = 0.2 * c; b[1][1] = -0.5 * c; b[0][2] = 0.7 * c; b[2][1] = k; b[0][3] = k;
    double cd[4] = {cd11, cd12, cd21, cd22};
    if (p->distortion == SK_SIM_TPV)
        return tpv_cards(a, b, cd, h);
    static const char *const akey[4][4] = {{NULL, NULL, "A_0_2", "A_0_3"},
                                           {NULL, "A_1_1", "A_1_2", NULL},
                                           {"A_2_0", "A_2_1", NULL, NULL},
                                           {"A_3_0", NULL, NULL, NULL}};
    rc = sk_header_set_long(h, "A_ORDER", 3, "SIP polynomial order, axis 1");
    rc = rc ? rc : sk_header_set_long(h, "B_ORDER", 3, "SIP polynomial order, axis 2");
    for (int i = 0; !rc && i < 4; i++)
        for (int j = 0; !rc && j < 4; j++) {
            if (!akey[i][j] || (a[i][j] == 0.0 && b[i][j] == 0.0))
                continue;
            char bkey[32];
            snprintf(bkey, sizeof bkey, "B_%d_%d", i, j);
            if (a[i][j] != 0.0)
                rc = sk_header_set_double(h, akey[i][j], a[i][j], NULL);
            if (!rc && b[i][j] != 0.0)
                rc = sk_header_set_double(h, bkey, b[i][j], NULL);
        }
    return rc;
}

int sk_sim_wcs_perturb(sk_header *h, double offset_arcsec, double pa_deg, double rotation_deg,
                       double scale_error)
{
    double ra, dec, cd[4];
    static const char *const cdkey[4] = {"CD1_1", "CD1_2", "CD2_1", "CD2_2"};
    if (sk_header_get_double(h, "CRVAL1", &ra) != 1 || sk_header_get_double(h, "CRVAL2", &dec) != 1)
        return sk_error(SK_EINPUT, "imsim: perturbing a WCS without CRVAL1/CRVAL2");
    for (int i = 0; i < 4; i++)
        if (sk_header_get_double(h, cdkey[i], &cd[i]) != 1)
            return sk_error(SK_EINPUT, "imsim: perturbing a WCS without %s", cdkey[i]);
    double pa = pa_deg * M_PI / 180.0, nra, ndec;
    double east = offset_arcsec * sin(pa), north = offset_arcsec * cos(pa);
    int rc = sk_sim_offset_radec(ra, dec, 1, &east, &north, &nra, &ndec);
    if (rc)
        return rc;
    /* Rotate the intermediate world coordinates: CD' = (1+s) R(theta) CD. */
    double th = rotation_deg * M_PI / 180.0, c = cos(th), s = sin(th), f = 1.0 + scale_error;
    double ncd[4] = {f * (c * cd[0] - s * cd[2]), f * (c * cd[1] - s * cd[3]),
                     f * (s * cd[0] + c * cd[2]), f * (s * cd[1] + c * cd[3])};
    rc = sk_header_set_double(h, "CRVAL1", nra, "[deg] tangent point RA");
    rc = rc ? rc : sk_header_set_double(h, "CRVAL2", ndec, "[deg] tangent point Dec");
    for (int i = 0; !rc && i < 4; i++)
        rc = sk_header_set_double(h, cdkey[i], ncd[i], NULL);
    return rc;
}
