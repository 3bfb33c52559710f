/* wcs_tpv.c: a TAN or TAN-SIP world coordinate system as the equivalent TPV description (for SWarp and SCAMP, which ignore SIP). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/wcs.h"

#define TPV_MAX 8 /* degrees 0..7: TPV's terms PV_0..PV_38 (no r terms) */

typedef double poly[TPV_MAX][TPV_MAX]; /* p[i][j]: coefficient of x^i y^j */

/* out = a * b, terms above degree 7 dropped (there are none for SIP of
 * order <= 7: substitution keeps the degree). */
static void poly_mul(const poly a, const poly b, poly out)
{
    memset(out, 0, sizeof(poly));
    for (int i = 0; i < TPV_MAX; i++)
        for (int j = 0; i + j < TPV_MAX; j++)
            if (a[i][j] != 0)
                for (int k = 0; i + k < TPV_MAX; k++)
                    for (int l = 0; j + l < TPV_MAX && i + j + k + l < TPV_MAX; l++)
                        out[i + k][j + l] += a[i][j] * b[k][l];
}

/* out(x, y) = in(u, v) with u = m[0] x + m[1] y, v = m[2] x + m[3] y. */
static void substitute(const poly in, const double m[4], poly out)
{
    poly upow[TPV_MAX], vpow[TPV_MAX], t;
    memset(upow, 0, sizeof upow);
    memset(vpow, 0, sizeof vpow);
    upow[0][0][0] = vpow[0][0][0] = 1.0;
    poly u = {{0}}, v = {{0}};
    u[1][0] = m[0]; u[0][1] = m[1];
    v[1][0] = m[2]; v[0][1] = m[3];
    for (int p = 1; p < TPV_MAX; p++) {
        poly_mul(upow[p - 1], u, upow[p]);
        poly_mul(vpow[p - 1], v, vpow[p]);
    }
    memset(out, 0, sizeof(poly));
    for (int i = 0; i < TPV_MAX; i++)
        for (int j = 0; i + j < TPV_MAX; j++) {
            if (in[i][j] == 0)
                continue;
            poly_mul(upow[i], vpow[j], t);
            for (int a = 0; a < TPV_MAX; a++)
                for (int b = 0; a + b < TPV_MAX; b++)
                    out[a][b] += in[i][j] * t[a][b];
        }
}

/* TPV's number of the term x^i y^j (i + j = d): the first of degree d,
 * then by decreasing power of x. */
static int tpv_term(int i, int j)
{
    static const int first[TPV_MAX] = {0, 1, 4, 7, 12, 17, 24, 31};
    return first[i + j] + j;
}

/* The SIP polynomial `name` (A or B) of order `order`. */
static int read_sip(const sk_header *h, const char *name, long order, poly p)
{
    memset(p, 0, sizeof(poly));
    for (int i = 0; i <= order; i++)
        for (int j = 0; i + j <= order; j++) {
            char key[40];
            snprintf(key, sizeof key, "%s_%d_%d", name, i, j);
            double c;
            if (sk_header_get_double(h, key, &c) == 1)
                p[i][j] = c;
        }
    return SK_OK;
}

/* CDi_j, or PCi_j times CDELTi. */
static int read_cd(const sk_header *h, double cd[4])
{
    static const char *const cdk[4] = {"CD1_1", "CD1_2", "CD2_1", "CD2_2"};
    static const char *const pck[4] = {"PC1_1", "PC1_2", "PC2_1", "PC2_2"};
    int have = 0;
    for (int k = 0; k < 4; k++)
        if (sk_header_get_double(h, cdk[k], &cd[k]) == 1)
            have++;
        else
            cd[k] = 0;
    if (have)
        return SK_OK;
    double cdelt[2] = {NAN, NAN};
    sk_header_get_double(h, "CDELT1", &cdelt[0]);
    sk_header_get_double(h, "CDELT2", &cdelt[1]);
    if (!isfinite(cdelt[0]) || !isfinite(cdelt[1]))
        return sk_error(SK_EINPUT, "no CDi_j nor CDELTn in the header");
    for (int k = 0; k < 4; k++)
        if (sk_header_get_double(h, pck[k], &cd[k]) != 1)
            cd[k] = k == 0 || k == 3 ? 1.0 : 0.0;
    cd[0] *= cdelt[0]; cd[1] *= cdelt[0];
    cd[2] *= cdelt[1]; cd[3] *= cdelt[1];
    return SK_OK;
}

/* The TPV polynomials of a TAN (A, B NULL) or TAN-SIP WCS. */
static int tpv_polys(const double cd[4], const poly A, const poly B, poly xi, poly eta)
{
    double det = cd[0] * cd[3] - cd[1] * cd[2];
    if (!(fabs(det) > 0))
        return sk_error(SK_EINPUT, "singular CD matrix");
    double inv[4] = {cd[3] / det, -cd[1] / det, -cd[2] / det, cd[0] / det};
    poly f, g;
    memset(f, 0, sizeof f);
    memset(g, 0, sizeof g);
    if (A)
        substitute(A, inv, f);
    if (B)
        substitute(B, inv, g);
    for (int i = 0; i < TPV_MAX; i++)
        for (int j = 0; i + j < TPV_MAX; j++) {
            xi[i][j] = cd[0] * f[i][j] + cd[1] * g[i][j];
            eta[i][j] = cd[2] * f[i][j] + cd[3] * g[i][j];
        }
    xi[1][0] += 1.0;
    eta[0][1] += 1.0;
    return SK_OK;
}

static int copy_card(const sk_header *in, sk_header *out, const char *key)
{
    char s[80];
    double d;
    if (sk_header_get_double(in, key, &d) == 1)
        return sk_header_set_double(out, key, d, NULL);
    if (sk_header_get_str(in, key, s, sizeof s) == 1)
        return sk_header_set_str(out, key, s, NULL);
    return SK_OK;
}

/* The cards of the TPV description into `out`. */
static int tpv_cards(const sk_header *in, const double cd[4], const poly xi, const poly eta, int degree,
                     sk_header *out)
{
    static const char *const keep[] = {"CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CUNIT1", "CUNIT2",
                                       "RADESYS", "EQUINOX", "LONPOLE", "LATPOLE", "MJD-OBS", "DATE-OBS"};
    int rc = sk_header_set_long(out, "WCSAXES", 2, NULL);
    rc = rc ? rc : sk_header_set_str(out, "CTYPE1", "RA---TPV", "TAN projection with TPV distortion");
    rc = rc ? rc : sk_header_set_str(out, "CTYPE2", "DEC--TPV", "TAN projection with TPV distortion");
    for (size_t k = 0; !rc && k < sizeof keep / sizeof *keep; k++)
        rc = copy_card(in, out, keep[k]);
    static const char *const cdk[4] = {"CD1_1", "CD1_2", "CD2_1", "CD2_2"};
    for (int k = 0; !rc && k < 4; k++)
        rc = sk_header_set_double(out, cdk[k], cd[k], NULL);
    for (int axis = 1; axis <= 2; axis++)
        for (int d = 0; !rc && d <= degree; d++)
            for (int j = 0; !rc && j <= d; j++) {
                /* PV1: xi in x^(d-j) y^j; PV2: eta in y^(d-j) x^j */
                double c = (axis == 1 ? xi[d - j][j] : eta[j][d - j]) + 0.0; /* no -0 */
                char key[40];
                snprintf(key, sizeof key, "PV%d_%d", axis, tpv_term(d - j, j));
                rc = sk_header_set_double(out, key, c, NULL);
            }
    return rc;
}

int sk_wcs_header_to_tpv(const sk_header *in, sk_header **out)
{
    *out = NULL;
    char c1[72] = "", c2[72] = "";
    sk_header_get_str(in, "CTYPE1", c1, sizeof c1);
    sk_header_get_str(in, "CTYPE2", c2, sizeof c2);
    int sip = !strcmp(c1, "RA---TAN-SIP") && !strcmp(c2, "DEC--TAN-SIP");
    int tan = !strcmp(c1, "RA---TAN") && !strcmp(c2, "DEC--TAN");
    int tpv = !strcmp(c1, "RA---TPV") && !strcmp(c2, "DEC--TPV");
    if (!sip && !tan && !tpv)
        return sk_error(SK_EINPUT, "CTYPE '%s'/'%s': only TAN, TAN-SIP and TPV are written as TPV", c1, c2);
    if (tpv) {
        *out = sk_header_copy(in);
        return *out ? SK_OK : sk_error(SK_EIO, "out of memory");
    }
    long aorder = 0, border = 0;
    if (sip && (sk_header_get_long(in, "A_ORDER", &aorder) != 1 || sk_header_get_long(in, "B_ORDER", &border) != 1))
        return sk_error(SK_EINPUT, "TAN-SIP without A_ORDER and B_ORDER");
    if (aorder < 0 || border < 0 || aorder >= TPV_MAX || border >= TPV_MAX)
        return sk_error(SK_EINPUT, "SIP order %ld/%ld: TPV holds polynomials of degree 7 at most", aorder, border);
    double cd[4];
    poly A, B, xi, eta;
    int rc = read_cd(in, cd);
    rc = rc ? rc : read_sip(in, "A", aorder, A);
    rc = rc ? rc : read_sip(in, "B", border, B);
    rc = rc ? rc : tpv_polys(cd, sip ? (const double(*)[TPV_MAX])A : NULL, sip ? (const double(*)[TPV_MAX])B : NULL,
                             xi, eta);
    sk_header *h = rc ? NULL : sk_header_new();
    if (!rc && !h)
        rc = sk_error(SK_EIO, "out of memory");
    int degree = (int)(aorder > border ? aorder : border);
    rc = rc ? rc : tpv_cards(in, cd, (const double(*)[TPV_MAX])xi, (const double(*)[TPV_MAX])eta,
                             degree > 1 ? degree : 1, h);
    if (rc) {
        sk_header_free(h);
        return rc;
    }
    *out = h;
    return SK_OK;
}
