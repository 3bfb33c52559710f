/* image.c: the in-memory image (science, inverse-variance weight, flag bits, header, WCS) and its flag vocabulary. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/bigbuf.h"
#include "io/image_internal.h"
#include "skystack/error.h"
#include "skystack/image.h"
#include "skystack/wcs.h"

static const struct {
    const char *name;
    const char *description;
} flag_bits[SK_FLAG_NBITS] = {
    {"BAD", "detector defect or data-quality mask"},
    {"SATURATED", "at or above saturation, bleed trail"},
    {"COSMIC", "cosmic-ray hit"},
    {"EDGE", "outside the input footprint, no data"},
    {"INTERPOLATED", "value interpolated or in-painted"},
    {"REJECTED", "rejected in an input when combining"},
    {"NONFINITE", "NaN or Inf on input, value set to 0"},
    {"SATELLITE", "satellite or aircraft trail"},
    {"ZEROWEIGHT", "weight 0 on input without other reason"},
};

const char *sk_flag_name(int bit)
{
    if (bit < 0 || bit >= SK_FLAG_NBITS)
        return NULL;
    return flag_bits[bit].name;
}

int sk_flag_describe(sk_header *h)
{
    for (int bit = 0; bit < SK_FLAG_NBITS; bit++) {
        char key[16], comment[80];
        snprintf(key, sizeof key, "FLAGBIT%d", bit);
        snprintf(comment, sizeof comment, "value %u: %s", 1u << bit, flag_bits[bit].description);
        int rc = sk_header_set_str(h, key, flag_bits[bit].name, comment);
        if (rc)
            return rc;
    }
    return SK_OK;
}

static sk_image *image_new(long width, long height, int clear)
{
    if (width <= 0 || height <= 0) {
        sk_error(SK_EINPUT, "image: bad size %ld x %ld", width, height);
        return NULL;
    }
    if ((unsigned long)width > SIZE_MAX / sizeof(float) / (unsigned long)height) {
        sk_error(SK_EINPUT, "image: size %ld x %ld too large", width, height);
        return NULL;
    }
    size_t n = (size_t)width * (size_t)height;
    sk_image *img = calloc(1, sizeof *img);
    if (!img) {
        sk_error(SK_EIO, "image: out of memory");
        return NULL;
    }
    img->width = width;
    img->height = height;
    void *(*alloc)(size_t, size_t) = clear ? sk_big_calloc : sk_big_malloc;
    img->sci = alloc(n, sizeof *img->sci);
    img->weight = alloc(n, sizeof *img->weight);
    img->flags = alloc(n, sizeof *img->flags);
    img->header = sk_header_new();
    if (!img->sci || !img->weight || !img->flags || !img->header) {
        sk_image_free(img);
        sk_error(SK_EIO, "image: out of memory for %ld x %ld pixels", width, height);
        return NULL;
    }
    return img;
}

sk_image *sk_image_new(long width, long height)
{
    return image_new(width, height, 1);
}

sk_image *sk_image_new_unset(long width, long height)
{
    return image_new(width, height, 0);
}

void sk_image_free(sk_image *img)
{
    if (!img)
        return;
    free(img->sci);
    free(img->weight);
    free(img->flags);
    sk_header_free(img->header);
    sk_wcs_free(img->wcs);
    free(img->path);
    free(img);
}

long sk_image_sanitize(sk_image *img)
{
    return sk_image_sanitize_range(img, 0, (size_t)img->width * (size_t)img->height);
}

long sk_image_sanitize_range(sk_image *img, size_t i0, size_t i1)
{
    long changed = 0;
    for (size_t i = i0; i < i1; i++) {
        int touched = 0;
        if (!isfinite(img->sci[i])) {
            img->sci[i] = 0.0f;
            img->weight[i] = 0.0f;
            img->flags[i] |= SK_FLAG_NONFINITE | SK_FLAG_BAD;
            touched = 1;
        }
        if (!isfinite(img->weight[i]) || img->weight[i] < 0.0f) {
            img->weight[i] = 0.0f;
            touched = 1;
        }
        changed += touched;
    }
    return changed;
}
