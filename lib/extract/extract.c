/* extract.c: the extraction run on one image: parameters from the configuration, background, detection with a matched filter refined to the measured FWHM, and measurement. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/header.h"
#include "skystack/log.h"
#include "extract_internal.h"

void sk_extract_params_default(sk_extract_params *p)
{
    memset(p, 0, sizeof *p);
    sk_background_params_default(&p->background);
    p->detect.threshold_sigma = 5.0;
    p->detect.min_area_px = 5;
    p->detect.filter = 1;
    p->detect.fwhm_px = 3.0;
    p->detect.deblend_levels = 32;
    p->detect.deblend_contrast = 0.005;
    p->fwhm_guess_px = 3.0;
    p->refine_fwhm = 1;
    p->naper = 4;
    p->aperture_fwhm = malloc(sizeof(double) * 4);
    if (p->aperture_fwhm) {
        p->aperture_fwhm[0] = 1;
        p->aperture_fwhm[1] = 2;
        p->aperture_fwhm[2] = 3;
        p->aperture_fwhm[3] = 5;
    } else {
        p->naper = 0;
    }
    p->kron_factor = 2.5;
    p->kron_min_radius = 3.5;
    p->gain = 0;
    snprintf(p->gain_key, sizeof p->gain_key, "GAIN");
    p->second_pass = -1;
    p->crowding_min = 0.5;
}

void sk_extract_params_clear(sk_extract_params *p)
{
    free(p->aperture_fwhm);
    p->aperture_fwhm = NULL;
    p->naper = 0;
}

static int get_num(const json_t *sec, const char *sect, const char *key, double *v)
{
    json_t *j = json_object_get(sec, key);
    if (!j || json_is_null(j))
        return SK_OK;
    if (!json_is_number(j))
        return sk_error(SK_EINPUT, "extraction.%s.%s: not a number", sect, key);
    *v = json_number_value(j);
    return SK_OK;
}

static int get_int(const json_t *sec, const char *sect, const char *key, int *v)
{
    double d = *v;
    int st = get_num(sec, sect, key, &d);
    if (st)
        return st;
    if (d != floor(d) || fabs(d) > 1e9)
        return sk_error(SK_EINPUT, "extraction.%s.%s: %g is not an integer", sect, key, d);
    *v = (int)d;
    return SK_OK;
}

int sk_extract_params_from_json(const json_t *root, sk_extract_params *p)
{
    const json_t *ex = json_object_get(root, "extraction");
    if (!ex)
        ex = root;
    const json_t *bg = json_object_get(ex, "background");
    const json_t *de = json_object_get(ex, "detection");
    const json_t *ph = json_object_get(ex, "photometry");
    int st = SK_OK;
    if (bg) {
        if (!st) st = get_int(bg, "background", "mesh_px", &p->background.mesh_px);
        if (!st) st = get_int(bg, "background", "filter_size", &p->background.filter_size);
        if (!st) st = get_num(bg, "background", "clip_sigma", &p->background.clip_sigma);
        if (!st) st = get_int(bg, "background", "clip_iterations", &p->background.clip_iterations);
    }
    if (de && !st) {
        st = get_num(de, "detection", "threshold_sigma", &p->detect.threshold_sigma);
        if (!st) st = get_int(de, "detection", "min_area_px", &p->detect.min_area_px);
        if (!st) st = get_int(de, "detection", "deblend_levels", &p->detect.deblend_levels);
        if (!st) st = get_num(de, "detection", "deblend_contrast", &p->detect.deblend_contrast);
        if (!st) st = get_num(de, "detection", "fwhm_guess_px", &p->fwhm_guess_px);
        json_t *f = json_object_get(de, "filter");
        if (!st && f && !json_is_null(f)) {
            const char *name = json_string_value(f);
            if (name && strcmp(name, "gaussian") == 0)
                p->detect.filter = 1;
            else if (name && strcmp(name, "none") == 0)
                p->detect.filter = 0;
            else
                st = sk_error(SK_EINPUT, "extraction.detection.filter: must be \"gaussian\" or \"none\"");
        }
        json_t *r = json_object_get(de, "refine_fwhm");
        if (!st && r && !json_is_null(r)) {
            if (!json_is_boolean(r))
                st = sk_error(SK_EINPUT, "extraction.detection.refine_fwhm: not a boolean");
            else
                p->refine_fwhm = json_is_true(r);
        }
        if (!st) st = get_num(de, "detection", "crowding_min", &p->crowding_min);
        json_t *sp = json_object_get(de, "second_pass");
        if (!st && sp && !json_is_null(sp)) {
            const char *v = json_is_string(sp) ? json_string_value(sp) : "";
            if (json_is_boolean(sp))
                p->second_pass = json_is_true(sp);
            else if (strcmp(v, "auto") == 0 || strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
                p->second_pass = v[0] == 'a' ? -1 : v[0] == 't';
            else
                st = sk_error(SK_EINPUT, "extraction.detection.second_pass: must be true, false or \"auto\"");
        }
        if (!st && !(p->crowding_min >= 0 && p->crowding_min <= 1))
            st = sk_error(SK_EINPUT, "extraction.detection.crowding_min: %g is not in [0, 1]",
                          p->crowding_min);
        if (!st && !(p->fwhm_guess_px > 0))
            st = sk_error(SK_EINPUT, "extraction.detection.fwhm_guess_px: %g must be positive",
                          p->fwhm_guess_px);
    }
    if (ph && !st) {
        st = get_num(ph, "photometry", "kron_factor", &p->kron_factor);
        if (!st) st = get_num(ph, "photometry", "kron_min_radius", &p->kron_min_radius);
        if (!st) st = get_num(ph, "photometry", "gain", &p->gain);
        json_t *gk = json_object_get(ph, "gain_key");
        if (!st && gk && !json_is_null(gk)) {
            if (!json_is_string(gk) || strlen(json_string_value(gk)) >= sizeof p->gain_key)
                st = sk_error(SK_EINPUT, "extraction.photometry.gain_key: not a keyword name");
            else
                snprintf(p->gain_key, sizeof p->gain_key, "%s", json_string_value(gk));
        }
        json_t *ap = json_object_get(ph, "aperture_fwhm");
        if (!st && ap && !json_is_null(ap)) {
            if (!json_is_array(ap))
                return sk_error(SK_EINPUT, "extraction.photometry.aperture_fwhm: not an array");
            size_t n = json_array_size(ap);
            double *r = malloc(sizeof *r * (n ? n : 1));
            if (!r)
                return sk_error(SK_EIO, "configuration: out of memory");
            for (size_t i = 0; i < n && !st; i++) {
                json_t *v = json_array_get(ap, i);
                if (!json_is_number(v) || !(json_number_value(v) > 0))
                    st = sk_error(SK_EINPUT, "extraction.photometry.aperture_fwhm[%zu]: not a positive number", i);
                else
                    r[i] = json_number_value(v);
            }
            if (st) {
                free(r);
                return st;
            }
            free(p->aperture_fwhm);
            p->aperture_fwhm = r;
            p->naper = (int)n;
        }
    }
    return st;
}

void sk_extract_result_free(sk_extract_result *r)
{
    if (!r)
        return;
    sk_background_free(r->background);
    sk_detection_free(r->detection);
    sk_source_list_free(r->sources);
    free(r);
}

/* The gain of an image (e-/ADU): the parameters', else its header's, else 0. */
static double image_gain(const sk_image *img, const sk_extract_params *p)
{
    double g;
    if (p->gain > 0)
        return p->gain;
    if (img->header && p->gain_key[0] && sk_header_get_double(img->header, p->gain_key, &g) == 1 && g > 0 &&
        isfinite(g))
        return g;
    return 0;
}

sk_detect_params sk_extract_detect_params(const sk_image *img, const sk_extract_params *p, double fwhm_px)
{
    sk_detect_params dp = p->detect;
    dp.fwhm_px = fwhm_px;
    /* an image matched-filtered already (a chi2det image made with
       --fwhm) is not filtered again */
    double prefiltered = 0;
    if (img->header && sk_header_get_double(img->header, "CHI2FWHM", &prefiltered) == 1 && prefiltered > 0)
        dp.filter = 0;
    return dp;
}

sk_measure_params sk_extract_measure_params(const sk_extract_params *p, const sk_extract_result *r)
{
    sk_measure_params mp = { p->aperture_fwhm, p->naper, p->kron_factor, p->kron_min_radius,
                             r->gain, r->fwhm_px, r->core_fwhm_px, 0, 0 };
    return mp;
}

/* Background and detection of `img` in two passes, the matched filter's
 * FWHM measured between them: r's background, detection, fwhm_px and gain. */
static int detect_two_pass(const sk_image *img, const sk_extract_params *p, int threads, sk_extract_result *r)
{
    /* a quick first background (every other pixel) for the first detection */
    sk_background_params quick = p->background;
    quick.sample_step = 2;
    int st = sk_background_estimate(img, &quick, threads, &r->background);
    r->gain = image_gain(img, p);
    double fwhm = p->fwhm_guess_px;
    sk_detect_params dp = sk_extract_detect_params(img, p, fwhm);
    /* the first detection only finds the objects to mask and the peaks
       to measure the FWHM on: no deblending */
    sk_detect_params first = dp;
    first.deblend_levels = 1;
    if (!st)
        st = sk_detect(img, r->background, &first, threads, &r->detection);
    /* The FWHM from the data: the mode of the bright round peaks' FWHMs,
       the window iterated from the guess (the first detection's filter
       only has to find the peaks). */
    if (!st && p->refine_fwhm) {
        double est = 0, core = 0;
        st = sk_fwhm_from_peaks(img, r->background, r->detection->signif, fwhm, threads, &est, &core);
        if (!st && est > 0) {
            fwhm = est;
            r->core_fwhm_px = core < est ? core : 0;
        }
        else if (!st)
            sk_debug("extraction: too few bright round peaks for the FWHM: the guess %.3f px kept", fwhm);
    }
    /* Second pass: the background again without the (dilated) objects,
       whose wings otherwise raise the level and the rms, then detection
       on it with the final filter. */
    if (!st) {
        int grow = (int)ceil(2.0 * fwhm);
        uint8_t *mask = sk_detection_mask(r->detection, grow, threads);
        /* the first pass's maps go before the second pass allocates its
           own (the memory is reused rather than doubled) */
        sk_detection_free(r->detection);
        r->detection = NULL;
        sk_background_free(r->background);
        r->background = NULL;
        st = mask ? sk_background_estimate_masked(img, mask, &p->background, threads, &r->background)
                  : SK_EIO;
        free(mask);
        if (st == SK_EINPUT) {
            /* objects cover (nearly) the whole of a small image: the
               background of all its pixels, as in the first pass */
            sk_error_clear();
            st = sk_background_estimate(img, &p->background, threads, &r->background);
        }
        if (!st) {
            dp.fwhm_px = fwhm;
            st = sk_detect(img, r->background, &dp, threads, &r->detection);
        }
    }
    r->fwhm_px = fwhm;
    return st;
}

int sk_extract_run(const sk_image *img, const sk_extract_params *p, int threads,
                   sk_extract_result **out)
{
    *out = NULL;
    sk_extract_result *r = calloc(1, sizeof *r);
    if (!r)
        return sk_error(SK_EIO, "extraction: out of memory");
    int st = detect_two_pass(img, p, threads, r);
    if (!st) {
        sk_measure_params mp = sk_extract_measure_params(p, r);
        st = sk_measure(img, r->background, r->detection, &mp, threads, &r->sources);
    }
    if (st) {
        sk_extract_result_free(r);
        return st;
    }
    *out = r;
    return SK_OK;
}

/* The background of the measurement image without the detection image's
 * (dilated) objects. */
static int measurement_background(const sk_image *img, const sk_extract_result *d, const sk_extract_params *p,
                                  int threads, sk_background **out)
{
    uint8_t *mask = sk_detection_mask(d->detection, (int)ceil(2.0 * d->fwhm_px), threads);
    if (!mask)
        return sk_error(SK_EIO, "extraction: out of memory");
    int st = sk_background_estimate_masked(img, mask, &p->background, threads, out);
    free(mask);
    if (st == SK_EINPUT) {
        sk_error_clear();
        st = sk_background_estimate(img, &p->background, threads, out);
    }
    return st;
}

int sk_extract_run_dual(const sk_image *det_img, const sk_image *img, const sk_extract_params *p, int threads,
                        sk_extract_result **out)
{
    *out = NULL;
    if (det_img->width != img->width || det_img->height != img->height)
        return sk_error(SK_EINPUT, "extraction: the detection image is %ldx%ld, the measurement image %ldx%ld",
                        det_img->width, det_img->height, img->width, img->height);
    sk_extract_result *r = calloc(1, sizeof *r), *d = calloc(1, sizeof *d);
    if (!r || !d) {
        free(r);
        free(d);
        return sk_error(SK_EIO, "extraction: out of memory");
    }
    /* the detection image's gain from its own header only */
    sk_extract_params dpar = *p;
    dpar.gain = 0;
    int st = detect_two_pass(det_img, &dpar, threads, d);
    st = st ? st : measurement_background(img, d, p, threads, &r->background);
    if (!st) {
        r->gain = image_gain(img, p);
        r->fwhm_px = d->fwhm_px;
        r->core_fwhm_px = d->core_fwhm_px;
        sk_measure_params mp = sk_extract_measure_params(p, d);
        st = sk_measure_dual(det_img, d->background, d->detection, &mp, img, r->background, r->gain, threads,
                             &r->sources);
    }
    if (!st) {
        /* the segmentation stays; the variance becomes the measurement
           image's (what the calibration measures on) */
        r->detection = d->detection;
        d->detection = NULL;
        free(r->detection->variance);
        r->detection->variance = sk_pixel_variance(img, r->background);
        if (!r->detection->variance)
            st = sk_error(SK_EIO, "extraction: out of memory");
    }
    sk_extract_result_free(d);
    if (st) {
        sk_extract_result_free(r);
        return st;
    }
    *out = r;
    return SK_OK;
}
