/* extract_priv.h: what the extraction files share: which pixels hold usable
 * values, and the library's deterministic parallel-for (parallel.h). */
#ifndef SK_EXTRACT_PRIV_H
#define SK_EXTRACT_PRIV_H

#include "core/parallel.h"
#include "skystack/image.h"

/* Input pixels that hold no usable value for detection and measurement
 * (saturated, interpolated and rejected pixels keep their values). */
#define SK_UNUSABLE_FLAGS SK_FLAGS_NO_DATA

static inline int sk_pixel_usable(const sk_image *img, long i) __attribute__((unused));
static inline int sk_pixel_usable(const sk_image *img, long i)
{
    return img->weight[i] > 0 && !(img->flags[i] & SK_UNUSABLE_FLAGS);
}

#endif
