/* test_wcs_tpv.c: a TAN-SIP WCS written as TPV gives the same sky positions through wcslib; TAN becomes the identity TPV; other projections are refused; the .head file round trip. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "skystack/skystack.h"
#include "../tap.h"

static sk_header *sip_header(double rot_deg, int order)
{
    sk_header *h = sk_header_new();
    double s = 0.26 / 3600, t = rot_deg * M_PI / 180;
    sk_header_set_str(h, "CTYPE1", order ? "RA---TAN-SIP" : "RA---TAN", NULL);
    sk_header_set_str(h, "CTYPE2", order ? "DEC--TAN-SIP" : "DEC--TAN", NULL);
    sk_header_set_double(h, "CRVAL1", 359.9, NULL);
    sk_header_set_double(h, "CRVAL2", -30.0, NULL);
    sk_header_set_double(h, "CRPIX1", 1024.5, NULL);
    sk_header_set_double(h, "CRPIX2", 2048.5, NULL);
    sk_header_set_double(h, "CD1_1", -s * cos(t), NULL);
    sk_header_set_double(h, "CD1_2", s * sin(t), NULL);
    sk_header_set_double(h, "CD2_1", s * sin(t), NULL);
    sk_header_set_double(h, "CD2_2", s * cos(t), NULL);
    if (!order)
        return h;
    sk_header_set_long(h, "A_ORDER", order, NULL);
    sk_header_set_long(h, "B_ORDER", order, NULL);
    /* a few pixels of distortion at the corners, every degree up to `order` */
    for (int i = 0; i <= order; i++)
        for (int j = 0; i + j <= order; j++) {
            if (i + j < 2)
                continue;
            char key[32];
            double scale = 3.0 / pow(2048.0, i + j - 1);
            snprintf(key, sizeof key, "A_%d_%d", i, j);
            sk_header_set_double(h, key, scale * (0.7 - 0.3 * i + 0.2 * j), NULL);
            snprintf(key, sizeof key, "B_%d_%d", i, j);
            sk_header_set_double(h, key, scale * (-0.4 + 0.25 * i - 0.1 * j), NULL);
        }
    return h;
}

/* Largest separation (arcsec) between the two WCSs over a grid of a
 * 2048 x 4096 image. */
static double max_sep(const sk_header *a, const sk_header *b)
{
    sk_wcs *wa = NULL, *wb = NULL;
    if (sk_wcs_from_header(a, &wa) || sk_wcs_from_header(b, &wb)) {
        sk_wcs_free(wa);
        return INFINITY;
    }
    double worst = 0;
    for (int i = 0; i <= 10; i++)
        for (int j = 0; j <= 10; j++) {
            double x = 2047.0 * i / 10, y = 4095.0 * j / 10, r1, d1, r2, d2;
            sk_wcs_pix2sky(wa, 1, &x, &y, &r1, &d1);
            sk_wcs_pix2sky(wb, 1, &x, &y, &r2, &d2);
            double dra = fmod(r1 - r2 + 540.0, 360.0) - 180.0;
            double sep = 3600 * hypot(dra * cos(d1 * M_PI / 180), d1 - d2);
            worst = sep > worst ? sep : worst;
        }
    sk_wcs_free(wa);
    sk_wcs_free(wb);
    return worst;
}

int main(void)
{
    tap_plan(22);
    for (int order = 2; order <= 5; order++) {
        sk_header *sip = sip_header(25.0, order), *tpv = NULL;
        ok(sk_wcs_header_to_tpv(sip, &tpv) == SK_OK, "SIP order %d written as TPV", order);
        char ctype[72] = "";
        sk_header_get_str(tpv, "CTYPE1", ctype, sizeof ctype);
        is_str(ctype, "RA---TPV", "CTYPE1 is RA---TPV");
        double sep = max_sep(sip, tpv);
        ok(sep < 1e-5, "order %d: the same sky positions over the image (max %.2g arcsec)", order, sep);
        sk_header *nodist = sip_header(25.0, 0);
        ok(max_sep(sip, nodist) > 0.5, "the distortion matters (%.2f arcsec without it)", max_sep(sip, nodist));
        sk_header_free(nodist);
        if (order == 3) {
            const char *path = "tpv-roundtrip.head";
            char full[4200];
            snprintf(full, sizeof full, "%s/%s", tap_tmpdir(), path);
            sk_header *back = NULL;
            ok(sk_header_write_cards_file(full, tpv) == SK_OK && sk_header_read_cards_file(full, &back) == SK_OK,
               ".head file written and read back");
            ok(back && max_sep(sip, back) < 1e-5, "the .head file holds the same WCS");
            sk_header_free(back);
        }
        sk_header_free(sip);
        sk_header_free(tpv);
    }
    sk_header *tan = sip_header(0, 0), *tpv = NULL;
    double pv;
    ok(sk_wcs_header_to_tpv(tan, &tpv) == SK_OK && sk_header_get_double(tpv, "PV1_1", &pv) == 1 && pv == 1.0,
       "TAN becomes the identity TPV");
    ok(max_sep(tan, tpv) < 1e-6, "with the same sky positions");
    sk_header_free(tpv);
    sk_header_set_str(tan, "CTYPE1", "RA---CAR", NULL);
    sk_header_set_str(tan, "CTYPE2", "DEC--CAR", NULL);
    ok(sk_wcs_header_to_tpv(tan, &tpv) == SK_EINPUT && !tpv, "CAR is refused");
    sk_error_clear();
    sk_header_free(tan);
    sk_header *big = sip_header(0, 2);
    sk_header_set_long(big, "A_ORDER", 9, NULL);
    ok(sk_wcs_header_to_tpv(big, &tpv) == SK_EINPUT, "SIP order 9 is beyond TPV");
    sk_error_clear();
    sk_header_free(big);
    return tap_done();
}
