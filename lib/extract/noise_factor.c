/* noise_factor.c: the factor by which an image's correlated pixel noise raises the noise of PSF-weighted sums over what its per-pixel variances predict, as its header states it (NOISEPSF). */
#include <math.h>
#include "extract_internal.h"
#include "skystack/header.h"

double sk_image_noise_factor(const sk_image *img)
{
    double f;
    if (img && img->header && sk_header_get_double(img->header, "NOISEPSF", &f) == 1 && isfinite(f) &&
        f >= 0.1 && f <= 10.0)
        return f;
    return 1.0;
}
