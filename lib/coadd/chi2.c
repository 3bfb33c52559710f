/* chi2.c: the multi-band detection image of coadds of several filters on one grid: chi^2 (Szalay, Connolly & Szokoly 1999) as a normal deviate, chi-mean, chi^2 of positive significances, or SED-matched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "numeric/stats.h"
#include "skystack/coadd.h"
#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/log.h"
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

/* The band's matched-filter significance per pixel (NaN where there is no
 * data): extract's background, then its Gaussian matched filter of FWHM
 * fwhm_px normalised by the filtered noise (a detection with no threshold
 * reached, for its significance map); var: the pixel variance it used. */
static int band_filtered(const sk_image *b, double fwhm_px, double *z, float *var)
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
    for (size_t i = 0; !rc && i < n; i++) {
        z[i] = det->variance[i] > 0 && isfinite(det->signif[i]) ? det->signif[i] : NAN;
        var[i] = det->variance[i];
    }
    sk_detection_free(det);
    sk_background_free(bg);
    return rc;
}

/* The band's significance per pixel z (NaN where there is no data): with
 * fwhm_px > 0 the matched-filter one, else (S - sky) * sqrt(weight), sky
 * the median of the band's good pixels; rescaled so that its robust
 * spread (1.4826 MAD) is 1. noise: the pixel noise (ADU) the rescaled z
 * stands for, sqrt(variance) / scale, for the weights of the SED-matched
 * combination. */
static int band_significance(const sk_image *b, double fwhm_px, double *z, float *noise)
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
    int rc = fwhm_px > 0 ? band_filtered(b, fwhm_px, z, noise) : SK_OK;
    m = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        int good = b->weight[i] > 0 && isfinite(b->sci[i]);
        if (fwhm_px <= 0) {
            z[i] = good ? (b->sci[i] - sky) * sqrt((double)b->weight[i]) : NAN;
            noise[i] = good ? 1.0f / b->weight[i] : 0.0f;
        }
        if (good && isfinite(z[i]))
            v[m++] = z[i];
    }
    if (rc) {
        free(v);
        return rc;
    }
    sk_median_mad(v, (long)m, &med, &sig);
    free(v);
    /* A band that states its correlated noise (NOISEPSF) has its matched
       filter's significance in units of the true noise already (extract's
       detection divides by it); the spread of all pixels, faint sources'
       light included, would shrink it. Otherwise that spread is the
       noise. */
    double nf;
    int stated = fwhm_px > 0 && sk_header_get_double(b->header, "NOISEPSF", &nf) == 1 && nf > 0;
    double scale = stated ? 1.0 : sig > 0 ? 1.0 / sig : 1.0;
    sk_debug("chi2: %s: significance spread %.3f (%s)", b->path ? b->path : "band", sig,
             stated ? "NOISEPSF stated: kept" : "rescaled to 1");
    for (size_t i = 0; i < n; i++) {
        z[i] *= scale;
        noise[i] = noise[i] > 0 ? (float)(sqrt((double)noise[i]) / scale) : 0.0f;
    }
    return SK_OK;
}

/* Wilson-Hilferty: chi^2 with k degrees of freedom as a normal deviate. */
static double wilson_hilferty(double chi2, int k)
{
    double c = 2.0 / (9.0 * k);
    return (cbrt(chi2 / k) - (1.0 - c)) / sqrt(c);
}

/* exp(t^2) erfc(t), t >= 0, without overflow or underflow. */
static double erfcx_pos(double t)
{
    if (t < 25.0)
        return exp(t * t) * erfc(t);
    double u = 1.0 / (2.0 * t * t);
    return (1.0 - u * (1.0 - 3.0 * u * (1.0 - 5.0 * u))) / (t * sqrt(M_PI));
}

/* exp(x/2) Q(j/2, x/2): the chi^2 survival function of j >= 1 degrees of
 * freedom at x >= 0, scaled by exp(x/2) (the closed forms of half-integer
 * and integer order). */
static double chi2_sf_scaled(int j, double x)
{
    double h = 0.5 * x, s = 0.0, term;
    if (j % 2 == 0) {
        term = 1.0;
        for (int i = 0; i < j / 2; i++) {
            s += term;
            term *= h / (i + 1);
        }
        return s;
    }
    s = erfcx_pos(sqrt(h));
    term = sqrt(h) / tgamma(1.5);
    for (int i = 0; i < (j - 1) / 2; i++) {
        s += term;
        term *= h / (i + 1.5);
    }
    return s;
}

/* log of the upper tail of N(0, 1) at z. */
static double log_normal_sf(double z)
{
    if (z < 0)
        return log(0.5 * erfc(z / M_SQRT2));
    double t = z / M_SQRT2;
    return -t * t + log(0.5 * erfcx_pos(t));
}

/* The normal deviate z whose upper tail is exp(logp) (logp < 0), by
 * Newton's method on log Phi_c, which is concave. */
static double normal_isf_log(double logp)
{
    double z = logp < -1.0 ? sqrt(fmax(0.0, -2.0 * logp - log(-2.0 * logp) - log(2.0 * M_PI))) : 0.0;
    for (int it = 0; it < 60; it++) {
        double f = log_normal_sf(z) - logp;
        /* d/dz log Phi_c(z) = -phi(z) / Phi_c(z) */
        double t = z / M_SQRT2;
        double d = z >= 0 ? -sqrt(2.0 / M_PI) / erfcx_pos(t) : -exp(-0.5 * z * z) / sqrt(2.0 * M_PI) /
                                                                   (0.5 * erfc(t));
        double step = f / d;
        z -= step;
        if (fabs(step) < 1e-9)
            break;
    }
    return z;
}

/* The chi^2_+ statistic (positive significances only) of k bands as a
 * normal deviate: on pure noise it is 0 with probability 2^-k and
 * otherwise follows the mixture of chi^2_j (j = 1..k bands positive) with
 * binomial weights C(k, j) 2^-k; its upper tail p becomes the deviate
 * Phi^-1(1 - p). The atom at 0 becomes the mean of the normal's lower
 * tail of mass 2^-k, so that the image's mean on noise stays 0. */
static double chi2pos_deviate(double x, int k)
{
    if (!(x > 0)) {
        double a = -normal_isf_log(-k * M_LN2); /* Phi(a) = 2^-k */
        return -exp(-0.5 * a * a) / sqrt(2.0 * M_PI) / ldexp(1.0, -k);
    }
    double s = 0.0, binom = 1.0;
    for (int j = 1; j <= k; j++) {
        binom = binom * (k - j + 1) / j;
        s += binom * chi2_sf_scaled(j, x);
    }
    return normal_isf_log(-0.5 * x + log(s) - k * M_LN2);
}

/* SWarp's CHI-MEAN: sqrt(chi^2) less the mean of the chi distribution of k
 * degrees of freedom, over its standard deviation (k = 1: z itself). */
static double chi_mean_deviate(double chi2, int k, double z1)
{
    if (k == 1)
        return z1;
    double mu = M_SQRT2 * exp(lgamma(0.5 * (k + 1)) - lgamma(0.5 * k));
    return (sqrt(chi2) - mu) / sqrt(k - mu * mu);
}

static const char *const combine_names[] = {"chi2", "chi-mean", "chi2-positive", "sed"};
static const char *const combine_detimage[] = {"CHI2", "CHI-MEAN", "CHI2-POS", "SED"};

int sk_detcombine_from_name(const char *name, sk_detcombine *out)
{
    for (int c = 0; c < (int)(sizeof combine_names / sizeof combine_names[0]); c++)
        if (name && !strcmp(name, combine_names[c])) {
            *out = (sk_detcombine)c;
            return SK_OK;
        }
    return sk_error(SK_EINPUT, "detection image: combination '%s' is not one of chi2, chi-mean, chi2-positive, sed",
                    name ? name : "");
}

const char *sk_detcombine_name(sk_detcombine c)
{
    return (unsigned)c < sizeof combine_names / sizeof combine_names[0] ? combine_names[c] : "?";
}

/* The header's description of SCI for each combination. */
static int combine_comments(sk_header *h, const sk_detimage_params *p)
{
    static const char *const what[][2] = {
        {"SCI: Wilson-Hilferty normal deviate of chi^2 = sum_b z_b^2 (k bands with data);",
         "Szalay, Connolly & Szokoly 1999, AJ 117, 68"},
        {"SCI: (sqrt(chi^2) - mu_k) / sqrt(k - mu_k^2), mu_k the mean of the chi law",
         "of k degrees of freedom (SWarp's CHI-MEAN combination)"},
        {"SCI: normal deviate of the upper tail of chi^2_+ = sum_b max(z_b, 0)^2 on noise,",
         "a binomial mixture of chi^2_j laws (Lang & Hogg, chi-positive)"},
        {"SCI: SED-matched significance sum_b w_b z_b / sqrt(sum_b w_b^2), w_b = SED_b",
         "10^(0.4 MAGZERO_b) / noise_b (Lang & Hogg, SED-matched filter)"},
    };
    int rc = sk_header_add_comment(h, "COMMENT", what[p->combine][0]);
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT", what[p->combine][1]);
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT", p->fwhm_px > 0 ?
                   "z_b: band b's matched-filter significance (NOISEPSF, else unit MAD-sigma)" :
                   "z_b = (S_b - median) sqrt(WGT_b), scaled to unit MAD-sigma");
    return rc;
}

/* The header of the detection image: the first band's WCS and what it is. */
static int chi2_header(const sk_image *const *bands, int n, const sk_detimage_params *p, const double *sed,
                       sk_image *out)
{
    int rc = bands[0]->wcs ? sk_wcs_to_header(bands[0]->wcs, out->header) : SK_OK;
    rc = rc ? rc : sk_header_set_str(out->header, "DETIMAGE", combine_detimage[p->combine],
                                     "multi-band detection image (CHI2COMB)");
    rc = rc ? rc : sk_header_set_str(out->header, "CHI2COMB", combine_names[p->combine], "how the bands combine");
    rc = rc ? rc : sk_header_set_long(out->header, "CHI2NBND", n, "bands combined");
    rc = rc ? rc : sk_header_set_double(out->header, "CHI2FWHM", p->fwhm_px > 0 ? p->fwhm_px : 0,
                                        "[px] matched filter of the bands (0: none)");
    for (int b = 0; !rc && b < n; b++) {
        char key[32], filter[72] = "";
        if (sk_header_get_str(bands[b]->header, "FILTER", filter, sizeof filter) != 1)
            snprintf(filter, sizeof filter, "band%d", b + 1);
        snprintf(key, sizeof key, "CHI2BND%d", b + 1);
        rc = sk_header_set_str(out->header, key, filter, "filter of a band");
        if (!rc && p->combine == SK_DETCOMB_SED) {
            snprintf(key, sizeof key, "CHI2SED%d", b + 1);
            rc = sk_header_set_double(out->header, key, sed[b], "relative flux of the SED in the band");
        }
    }
    return rc ? rc : combine_comments(out->header, p);
}

/* The SED-matched weights' band factors: the SED's relative flux in each
 * band (flat without one) times 10^(0.4 MAGZERO_b), the counts of unit
 * flux, relative to band 1 (1 for every band unless all have MAGZERO). */
static int band_factors(const sk_image *const *bands, int n, const sk_detimage_params *p, double *sed,
                        double *fac)
{
    int with_zp = 1;
    double zp[n];
    for (int b = 0; b < n; b++) {
        sed[b] = p->sed ? p->sed[b] : 1.0;
        if (!(sed[b] >= 0 && isfinite(sed[b])))
            return sk_error(SK_EINPUT, "detection image: SED flux %g of band %d is not a number >= 0", sed[b], b + 1);
        with_zp &= bands[b]->header && sk_header_get_double(bands[b]->header, "MAGZERO", &zp[b]) == 1 &&
                   isfinite(zp[b]);
    }
    for (int b = 0; b < n; b++)
        fac[b] = sed[b] * (with_zp ? pow(10.0, 0.4 * (zp[b] - zp[0])) : 1.0);
    return SK_OK;
}

/* The per-pixel statistic of the combination, from its sums over the k
 * bands with data: sum (of z^2, of max(z, 0)^2, or of w z) and aux (the
 * last z for chi-mean, sum of w^2 for sed). */
static float combine_pixel(sk_detcombine c, double sum, double aux, int k)
{
    switch (c) {
    case SK_DETCOMB_CHI_MEAN:
        return (float)chi_mean_deviate(sum, k, aux);
    case SK_DETCOMB_CHI2_POS:
        return (float)chi2pos_deviate(sum, k);
    case SK_DETCOMB_SED:
        return aux > 0 ? (float)(sum / sqrt(aux)) : 0.0f;
    default:
        return (float)wilson_hilferty(sum, k);
    }
}

/* Band b added to the sums of every pixel. */
static void accumulate(const sk_detimage_params *p, const double *z, const float *noise, double fac, size_t npx,
                       double *sum, double *aux, int *k)
{
    for (size_t i = 0; i < npx; i++) {
        if (!isfinite(z[i]))
            continue;
        k[i]++;
        if (p->combine == SK_DETCOMB_SED) {
            double w = noise[i] > 0 ? fac / noise[i] : 0.0;
            sum[i] += w * z[i];
            aux[i] += w * w;
        } else if (p->combine == SK_DETCOMB_CHI2_POS) {
            sum[i] += z[i] > 0 ? z[i] * z[i] : 0.0;
        } else {
            sum[i] += z[i] * z[i];
            aux[i] = z[i];
        }
    }
}

int sk_chi2_detection(const sk_image *const *bands, int n, const sk_detimage_params *p, sk_image **out)
{
    *out = NULL;
    if (n < 2)
        return sk_error(SK_EINPUT, "chi2: %d band given, 2 or more needed", n);
    if ((unsigned)p->combine >= sizeof combine_names / sizeof combine_names[0])
        return sk_error(SK_EINPUT, "detection image: unknown combination %d", (int)p->combine);
    for (int b = 1; b < n; b++)
        if (!same_grid(bands[0], bands[b]))
            return sk_error(SK_EINPUT, "chi2: band %d (%s) is not on the grid of band 1 (%s): coadd the bands onto "
                                       "one grid (coaddition.grid tan)", b + 1,
                            bands[b]->path ? bands[b]->path : "?", bands[0]->path ? bands[0]->path : "?");
    double sed[n], fac[n];
    int rc = band_factors(bands, n, p, sed, fac);
    if (rc)
        return rc;
    long w = bands[0]->width, h = bands[0]->height;
    size_t npx = (size_t)w * (size_t)h;
    sk_image *det = sk_image_new(w, h);
    double *z = det ? malloc(sizeof *z * npx) : NULL, *sum = det ? calloc(npx, sizeof *sum) : NULL;
    double *aux = det ? calloc(npx, sizeof *aux) : NULL;
    float *noise = det ? malloc(sizeof *noise * npx) : NULL;
    int *k = det ? calloc(npx, sizeof *k) : NULL;
    rc = det && z && sum && aux && noise && k ? SK_OK : sk_error(SK_EIO, "chi2: out of memory");
    for (int b = 0; !rc && b < n; b++) {
        rc = band_significance(bands[b], p->fwhm_px, z, noise);
        if (rc)
            break;
        accumulate(p, z, noise, fac[b], npx, sum, aux, k);
        for (size_t i = 0; i < npx; i++)
            det->flags[i] |= bands[b]->flags[i] & ~SK_FLAGS_INFORMATIONAL;
    }
    for (size_t i = 0; !rc && i < npx; i++) {
        det->sci[i] = k[i] ? combine_pixel(p->combine, sum[i], aux[i], k[i]) : 0.0f;
        det->weight[i] = k[i] ? 1.0f : 0.0f;
        if (k[i])
            det->flags[i] &= (uint16_t)~SK_FLAGS_NO_DATA;
        else if (!det->flags[i])
            det->flags[i] = SK_FLAG_EDGE;
    }
    rc = rc ? rc : chi2_header(bands, n, p, sed, det);
    if (!rc && bands[0]->wcs && !(det->wcs = sk_wcs_copy(bands[0]->wcs)))
        rc = sk_error(SK_EIO, "chi2: out of memory");
    free(z);
    free(sum);
    free(aux);
    free(noise);
    free(k);
    if (rc) {
        sk_image_free(det);
        return rc;
    }
    *out = det;
    return SK_OK;
}
