/* psf_priv.h: helpers shared by the PSF files: Lanczos-3 interpolation taps
 * and which pixels a PSF fit may use. */
#ifndef SK_PSF_PRIV_H
#define SK_PSF_PRIV_H

#include <math.h>

#include "skystack/image.h"

/* Pixels a PSF fit leaves out: no value, or a value that is not the sky's
 * (saturated pixels included, unlike aperture photometry). */
#define SK_PSF_BAD_FLAGS (SK_FLAGS_NO_DATA | SK_FLAG_SATURATED)

static inline int psf_pixel_usable(const sk_image *img, long i) __attribute__((unused));
static inline int psf_pixel_usable(const sk_image *img, long i)
{
    return img->weight[i] > 0 && !(img->flags[i] & SK_PSF_BAD_FLAGS) && isfinite(img->sci[i]);
}

/* Lanczos-3 taps for interpolating at grid coordinate u: the six grid
 * points first, first+1, .. first+5 with weights w[0..5], normalised to
 * unit sum (so a constant is reproduced exactly). */
static inline void psf_lanczos3(double u, long *first, double w[6]) __attribute__((unused));
static inline void psf_lanczos3(double u, long *first, double w[6])
{
    double fl = floor(u);
    *first = (long)fl - 2;
    double sum = 0;
    for (int t = 0; t < 6; t++) {
        double d = u - (fl - 2 + t);
        double v;
        if (fabs(d) < 1e-12)
            v = 1.0;
        else if (fabs(d) >= 3.0)
            v = 0.0;
        else {
            double pd = M_PI * d;
            v = 3.0 * sin(pd) * sin(pd / 3.0) / (pd * pd);
        }
        w[t] = v;
        sum += v;
    }
    for (int t = 0; t < 6; t++)
        w[t] /= sum;
}

/* Replace the outer wings of a PSF model (ncomp components of gw x gh
 * points at step_px image pixels, the first one the image centre's) by a
 * pixel-integrated Moffat profile fitted to the curve of growth of the
 * first component's core (within 2 FWHM), blended in between 2 and 2.5
 * FWHM, with the amplitude of the star's total light: the
 * core's sum over the Moffat's fraction within 2 FWHM, corrected for the
 * part of the star's own wings its local sky (beyond 3 FWHM in a stamp of
 * stamp_px) held. Each component's wing follows its core's sum. Left
 * unchanged (SK_OK) when the fit does not match; SK_EIO out of memory. */
int sk_psf_fit_wings(double *comp, int ncomp, int gw, int gh, double step_px, double fwhm_px,
                     int stamp_px);

#endif
