/* chi2.c: the multi-band chi^2 detection image (Szalay, Connolly & Szokoly 1999) of coadds of several filters on one grid, Gaussianised by the Wilson-Hilferty transform. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "numeric/stats.h"
#include "skystack/coadd.h"
#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/wcs.h"
#include "extract/extract_internal.h"

/* 1 when the two images have the same size and their WCSs put the same
 * sky at the corners and the centre (within 1 milliarcsecond). */
static int same_grid(const sk_image *a, const sk_image *b)
{
    if (a->width != b->width || a->height != b->height)
        return 0;
    if (!a->wcs || !b->wcs)
        return !a->wcs && !b->wcs;
    return sk_wcs_grid_offset_arcsec(a->wcs, b->wcs, a->width, a->height) <= 1e-3;
}

/* The band's significance per pixel, (S - sky) * sqrt(weight) (NaN where
 * there is no data), rescaled so that its robust spread (1.4826 MAD) is 1:
 * sky is the median of the band's good pixels. */
/* The band's matched-filter significance per pixel (NaN where there is no
 * data): extract's background, then its Gaussian matched filter of FWHM
 * fwhm_px normalised by the filtered noise (a detection with no threshold
 * reached, for its significance map). */
static int band_filtered(const sk_image *b, double fwhm_px, double *z)
{
    sk_background_params bp;
    sk_background_params_default(&bp);
    sk_background *bg = NULL;
    sk_detection *det = NULL;
    sk_detect_params dp = {.threshold_sigma = 1e30, .min_area_px = 1 << 30, .filter = 1, .fwhm_px = fwhm_px,
                           .deblend_levels = 1, .deblend_contrast = 1};
    int rc = sk_background_estimate(b, &bp, 1, &bg);
    rc = rc ? rc : sk_detect(b, bg, &dp, 1, &det);
    size_t n = (size_t)b->width * (size_t)b->height;
    for (size_t i = 0; !rc && i < n; i++)
        z[i] = det->variance[i] > 0 && isfinite(det->signif[i]) ? det->signif[i] : NAN;
    sk_detection_free(det);
    sk_background_free(bg);
    return rc;
}

static int band_significance(const sk_image *b, double fwhm_px, double *z, double *scale)
{
    size_t n = (size_t)b->width * (size_t)b->height, m = 0;
    double *v = malloc(sizeof *v * (n ? n : 1));
    if (!v)
        return sk_error(SK_EIO, "chi2: out of memory");
    for (size_t i = 0; i < n; i++)
        if (b->weight[i] > 0 && isfinite(b->sci[i]))
            v[m++] = b->sci[i];
    if (m < 16) {
        free(v);
        return sk_error(SK_EINPUT, "chi2: a band has %zu pixels with data (16 needed)", m);
    }
    double sky = sk_median_double(v, (long)m), med, sig;
    int rc = fwhm_px > 0 ? band_filtered(b, fwhm_px, z) : SK_OK;
    m = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        int good = b->weight[i] > 0 && isfinite(b->sci[i]);
        if (fwhm_px <= 0)
            z[i] = good ? (b->sci[i] - sky) * sqrt((double)b->weight[i]) : NAN;
        if (good && isfinite(z[i]))
            v[m++] = z[i];
    }
    if (rc) {
        free(v);
        return rc;
    }
    sk_median_mad(v, (long)m, &med, &sig);
    free(v);
    *scale = sig > 0 ? 1.0 / sig : 1.0;
    for (size_t i = 0; i < n; i++)
        z[i] *= *scale;
    return SK_OK;
}

/* Wilson-Hilferty: chi^2 with k degrees of freedom as a normal deviate. */
static double wilson_hilferty(double chi2, int k)
{
    double c = 2.0 / (9.0 * k);
    return (cbrt(chi2 / k) - (1.0 - c)) / sqrt(c);
}

/* The header of the detection image: the first band's WCS and what it is. */
static int chi2_header(const sk_image *const *bands, int n, double fwhm_px, sk_image *out)
{
    int rc = bands[0]->wcs ? sk_wcs_to_header(bands[0]->wcs, out->header) : SK_OK;
    rc = rc ? rc : sk_header_set_str(out->header, "DETIMAGE", "CHI2", "multi-band chi^2 detection image");
    rc = rc ? rc : sk_header_set_long(out->header, "CHI2NBND", n, "bands combined");
    rc = rc ? rc : sk_header_set_double(out->header, "CHI2FWHM", fwhm_px > 0 ? fwhm_px : 0,
                                        "[px] matched filter of the bands (0: none)");
    for (int b = 0; !rc && b < n; b++) {
        char key[32], filter[72] = "";
        if (sk_header_get_str(bands[b]->header, "FILTER", filter, sizeof filter) != 1)
            snprintf(filter, sizeof filter, "band%d", b + 1);
        snprintf(key, sizeof key, "CHI2BND%d", b + 1);
        rc = sk_header_set_str(out->header, key, filter, "filter of a band");
    }
    rc = rc ? rc : sk_header_add_comment(out->header, "COMMENT",
                                         "SCI: Wilson-Hilferty normal deviate of sum_b z_b^2 (k bands with data),");
    rc = rc ? rc : sk_header_add_comment(out->header, "COMMENT",
                                         "z_b = (S_b - median) sqrt(WGT_b), scaled to unit MAD-sigma;");
    rc = rc ? rc : sk_header_add_comment(out->header, "COMMENT", "Szalay, Connolly & Szokoly 1999, AJ 117, 68");
    return rc;
}

int sk_chi2_detection(const sk_image *const *bands, int n, double fwhm_px, sk_image **out)
{
    *out = NULL;
    if (n < 2)
        return sk_error(SK_EINPUT, "chi2: %d band given, 2 or more needed", n);
    for (int b = 1; b < n; b++)
        if (!same_grid(bands[0], bands[b]))
            return sk_error(SK_EINPUT, "chi2: band %d (%s) is not on the grid of band 1 (%s): coadd the bands onto "
                                       "one grid (coaddition.grid tan)", b + 1,
                            bands[b]->path ? bands[b]->path : "?", bands[0]->path ? bands[0]->path : "?");
    long w = bands[0]->width, h = bands[0]->height;
    size_t npx = (size_t)w * (size_t)h;
    sk_image *det = sk_image_new(w, h);
    double *z = det ? malloc(sizeof *z * npx) : NULL, *sum = det ? calloc(npx, sizeof *sum) : NULL;
    int *k = det ? calloc(npx, sizeof *k) : NULL;
    int rc = det && z && sum && k ? SK_OK : sk_error(SK_EIO, "chi2: out of memory");
    for (int b = 0; !rc && b < n; b++) {
        double scale;
        rc = band_significance(bands[b], fwhm_px, z, &scale);
        for (size_t i = 0; !rc && i < npx; i++) {
            if (isfinite(z[i])) {
                sum[i] += z[i] * z[i];
                k[i]++;
            }
            det->flags[i] |= bands[b]->flags[i] & ~SK_FLAGS_INFORMATIONAL;
        }
    }
    for (size_t i = 0; !rc && i < npx; i++) {
        det->sci[i] = k[i] ? (float)wilson_hilferty(sum[i], k[i]) : 0.0f;
        det->weight[i] = k[i] ? 1.0f : 0.0f;
        if (k[i])
            det->flags[i] &= (uint16_t)~SK_FLAGS_NO_DATA;
        else if (!det->flags[i])
            det->flags[i] = SK_FLAG_EDGE;
    }
    rc = rc ? rc : chi2_header(bands, n, fwhm_px, det);
    if (!rc && bands[0]->wcs && !(det->wcs = sk_wcs_copy(bands[0]->wcs)))
        rc = sk_error(SK_EIO, "chi2: out of memory");
    free(z);
    free(sum);
    free(k);
    if (rc) {
        sk_image_free(det);
        return rc;
    }
    *out = det;
    return SK_OK;
}
