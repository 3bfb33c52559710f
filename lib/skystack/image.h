/* image.h: the in-memory image: float32 science pixels, float32
 * inverse-variance weight (0 = no data), uint16 bit flags, header and WCS.
 * Pixels are row-major, index = y*width + x, 0-based (see wcs.h). */
#ifndef SKYSTACK_IMAGE_H
#define SKYSTACK_IMAGE_H

#include <stdint.h>
#include "header.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sk_wcs;

/* Flag bits of the FLG plane. These are documented once, in skystack(7),
 * and the names below are the ones written in FLG headers (FLAGBITn). */
enum sk_flag {
    SK_FLAG_BAD          = 1u << 0,  /* detector defect / data-quality mask */
    SK_FLAG_SATURATED    = 1u << 1,  /* at or above saturation, bleed trails */
    SK_FLAG_COSMIC       = 1u << 2,  /* cosmic-ray hit */
    SK_FLAG_EDGE         = 1u << 3,  /* outside the input footprint / edge, no data */
    SK_FLAG_INTERPOLATED = 1u << 4,  /* value interpolated / in-painted */
    SK_FLAG_REJECTED     = 1u << 5,  /* rejected in at least one input when combining */
    SK_FLAG_NONFINITE    = 1u << 6,  /* NaN or Inf on input (value set to 0) */
    SK_FLAG_SATELLITE    = 1u << 7,  /* satellite or aircraft trail */
    SK_FLAG_ZEROWEIGHT   = 1u << 8   /* weight 0 on input without another reason */
};
#define SK_FLAG_NBITS 9

/* Bits that say how a valid pixel was made rather than that it is
 * defective: a coadd pixel with REJECTED set still holds the combination of
 * the inputs that were kept. Measurements do not count them as flagged. */
#define SK_FLAGS_INFORMATIONAL (SK_FLAG_REJECTED)

/* Bits that mean the pixel holds no value of the sky: its value must not
 * be used at all (detection, apertures and background leave it out).
 * SATURATED, INTERPOLATED and REJECTED pixels keep a value. */
#define SK_FLAGS_NO_DATA                                                          \
    (SK_FLAG_BAD | SK_FLAG_COSMIC | SK_FLAG_EDGE | SK_FLAG_NONFINITE |           \
     SK_FLAG_SATELLITE | SK_FLAG_ZEROWEIGHT)

/* Bits that keep a pixel out of a combination of images (coadds): no data
 * (SK_FLAGS_NO_DATA), a value clipped at saturation, or a value made up by
 * interpolation. */
#define SK_FLAGS_UNUSABLE                                                                 \
    (SK_FLAG_BAD | SK_FLAG_SATURATED | SK_FLAG_COSMIC | SK_FLAG_EDGE | SK_FLAG_INTERPOLATED | \
     SK_FLAG_NONFINITE | SK_FLAG_SATELLITE | SK_FLAG_ZEROWEIGHT)

/* Name ("BAD", "SATURATED", ...) of bit number `bit` (0-based), or NULL. */
const char *sk_flag_name(int bit);
/* Write FLAGBITn = name cards describing the bits into `h`. */
int sk_flag_describe(sk_header *h);

typedef struct sk_image {
    long width, height;       /* NAXIS1, NAXIS2 */
    float *sci;               /* science pixels (ADU or counts at a zero point) */
    float *weight;            /* inverse variance; 0 = no data */
    uint16_t *flags;          /* enum sk_flag bits */
    int weight_is_relative;   /* 1 when no weight/variance was given: weight=1
                                 on good pixels, not a true inverse variance */
    sk_header *header;        /* science HDU header, primary merged if INHERIT */
    struct sk_wcs *wcs;       /* NULL when the header has no usable WCS */
    char *path;               /* file it was read from (NULL if made in memory) */
} sk_image;

/* A zero-filled image (sci 0, weight 0, flags 0, empty header, no WCS). */
sk_image *sk_image_new(long width, long height);
void sk_image_free(sk_image *img);

/* Make non-finite science values 0 with weight 0 and
 * SK_FLAG_NONFINITE|SK_FLAG_BAD, and zero the weight of non-finite or
 * negative weights. Returns the number of pixels changed. */
long sk_image_sanitize(sk_image *img);

#ifdef __cplusplus
}
#endif
#endif
