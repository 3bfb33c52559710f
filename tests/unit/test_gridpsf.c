/* Tests of an input's PSF seen on an output grid (gridpsf.c): an elliptical
 * PSF on a rotated, finer-pixelled input comes out with the second moments
 * the Jacobian predicts, unit sum, centred. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/psf.h"
#include "skystack/sim.h"
#include "skystack/wcs.h"
#include "../tap.h"
#include "coadd/coaddx_internal.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

static sk_wcs *tan_wcs(double scale_arcsec, double rot_deg, double crpix)
{
    sk_header *h = sk_header_new();
    double c = cos(rot_deg * M_PI / 180.0), s = sin(rot_deg * M_PI / 180.0);
    double d = scale_arcsec / 3600.0;
    sk_header_set_str(h, "CTYPE1", "RA---TAN", NULL);
    sk_header_set_str(h, "CTYPE2", "DEC--TAN", NULL);
    sk_header_set_double(h, "CRVAL1", 150.0, NULL);
    sk_header_set_double(h, "CRVAL2", 2.0, NULL);
    sk_header_set_double(h, "CRPIX1", crpix, NULL);
    sk_header_set_double(h, "CRPIX2", crpix, NULL);
    sk_header_set_double(h, "CD1_1", -d * c, NULL);
    sk_header_set_double(h, "CD1_2", d * s, NULL);
    sk_header_set_double(h, "CD2_1", d * s, NULL);
    sk_header_set_double(h, "CD2_2", d * c, NULL);
    sk_wcs *w = NULL;
    sk_wcs_from_header(h, &w);
    sk_header_free(h);
    return w;
}

/* Centroid and second moments of a stamp. */
static void moments(const float *s, long n, double *cx, double *cy, double *mxx, double *myy,
                    double *mxy, double *sum)
{
    double t = 0, sx = 0, sy = 0;
    for (long y = 0; y < n; y++)
        for (long x = 0; x < n; x++) {
            t += s[y * n + x];
            sx += s[y * n + x] * x;
            sy += s[y * n + x] * y;
        }
    *cx = sx / t;
    *cy = sy / t;
    double a = 0, b = 0, c = 0;
    for (long y = 0; y < n; y++)
        for (long x = 0; x < n; x++) {
            double dx = x - *cx, dy = y - *cy;
            a += s[y * n + x] * dx * dx;
            b += s[y * n + x] * dy * dy;
            c += s[y * n + x] * dx * dy;
        }
    *mxx = a / t;
    *myy = b / t;
    *mxy = c / t;
    *sum = t;
}

int main(void)
{
    tap_plan(13);
    /* input: 0.2"/px rotated 30 deg; output: 0.3"/px north up */
    sk_wcs *win = tan_wcs(0.2, 30.0, 1000.0), *wout = tan_wcs(0.3, 0.0, 700.0);
    ok(win && wout, "WCSs");
    /* elliptical Gaussian in input pixels: FWHM 6 px, e = 0.3, angle 0 */
    const int ns = 61;
    sk_sim_psf g;
    memset(&g, 0, sizeof g);
    g.model = SK_SIM_GAUSSIAN;
    g.fwhm_px = 6.0;
    g.ellipticity = 0.3;
    g.radius_fwhm = 4.5;
    double *st = calloc((size_t)(ns * ns), sizeof(double));
    sk_sim_psf_add(&g, 1.0, ns / 2, ns / 2, st, ns, ns, 0, ns);
    sk_psf *psf = NULL;
    is_int(sk_psf_from_stamp(st, ns, 2000, 2000, &psf), 0, "model from a stamp");
    float *in = malloc(sizeof(float) * (size_t)(ns * ns));
    for (int i = 0; i < ns * ns; i++)
        in[i] = (float)st[i];
    double cx, cy, ixx, iyy, ixy, sum;
    moments(in, ns, &cx, &cy, &ixx, &iyy, &ixy, &sum);

    sk_grid_psf gp = {psf, win, wout};
    const long no = 41;
    float *out = malloc(sizeof(float) * (size_t)(no * no));
    is_int(sk_grid_psf_stamp(&gp, 700.0, 700.0, no, out), 0, "stamp on the output grid");
    double ox, oy, oxx, oyy, oxy;
    moments(out, no, &ox, &oy, &oxx, &oyy, &oxy, &sum);
    is_near(sum, 1.0, 1e-5, "unit sum");
    is_near(ox, no / 2, 0.01, "centred in x (%.4f)", ox);
    is_near(oy, no / 2, 0.01, "centred in y (%.4f)", oy);
    /* prediction: output offsets d map to input offsets J d (a rotation by
     * 30 deg and a scale of 1.5 input px per output px, taken from the
     * WCSs); Sigma_out = J^-1 Sigma_in J^-T */
    double th = -30.0 * M_PI / 180.0, k = 0.3 / 0.2;
    double xo[3] = {700.0, 701.0, 700.0}, yo[3] = {700.0, 700.0, 701.0}, ra[3], dec[3], xi[3],
           yi[3];
    sk_wcs_pix2sky(wout, 3, xo, yo, ra, dec);
    sk_wcs_sky2pix(win, 3, ra, dec, xi, yi);
    double j11 = xi[1] - xi[0], j12 = xi[2] - xi[0], j21 = yi[1] - yi[0], j22 = yi[2] - yi[0];
    tap_diag("J = [%.4f %.4f; %.4f %.4f] (scale %.3f, angle %.1f)", j11, j12, j21, j22, k,
             th * 180 / M_PI);
    double det = j11 * j22 - j12 * j21;
    double a11 = j22 / det, a12 = -j12 / det, a21 = -j21 / det, a22 = j11 / det; /* J^-1 */
    /* Sigma_out = A S A^T */
    double s11 = ixx, s12 = ixy, s22 = iyy;
    double p11 = a11 * s11 + a12 * s12, p12 = a11 * s12 + a12 * s22;
    double p21 = a21 * s11 + a22 * s12, p22 = a21 * s12 + a22 * s22;
    double e11 = p11 * a11 + p12 * a12, e12 = p11 * a21 + p12 * a22, e22 = p21 * a21 + p22 * a22;
    tap_diag("moments out: %.4f %.4f %.4f, predicted %.4f %.4f %.4f", oxx, oyy, oxy, e11, e22,
             e12);
    is_near(oxx, e11, 0.01 * e11, "x moment as the Jacobian predicts");
    is_near(oyy, e22, 0.01 * e22, "y moment as the Jacobian predicts");
    is_near(oxy, e12, 0.01 * e11, "cross moment as the Jacobian predicts");
    ok(fabs(oxy) > 0.3, "the rotation shows as a cross moment (%.3f)", oxy);

    /* the same grid: the stamp is the model's own image */
    sk_grid_psf same = {psf, win, win};
    float *o2 = malloc(sizeof(float) * (size_t)(no * no));
    double *ref = malloc(sizeof(double) * (size_t)(no * no));
    sk_grid_psf_stamp(&same, 1000.0, 1000.0, no, o2);
    sk_psf_image(psf, 1000.0, 1000.0, (int)no, ref);
    double maxd = 0.0;
    for (long i = 0; i < no * no; i++)
        if (fabs(o2[i] - ref[i]) > maxd)
            maxd = fabs(o2[i] - ref[i]);
    ok(maxd < 1e-4, "on the input's own grid it equals sk_psf_image (max diff %.1e)", maxd);

    sk_grid_psf bad = {psf, NULL, wout};
    is_int(sk_grid_psf_stamp(&bad, 1, 1, no, out), SK_EINPUT, "missing WCS refused");
    is_int(sk_grid_psf_stamp(&gp, 700, 700, 40, out), SK_EINPUT, "even size refused");

    free(st); free(in); free(out); free(o2); free(ref);
    sk_psf_free(psf);
    sk_wcs_free(win);
    sk_wcs_free(wout);
    return tap_done();
}
