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
 * unit sum (so a constant is reproduced exactly). The six distances are
 * d = f + 2 - t (f the fraction of u), so the kernel's sines follow from
 * those of f: sin(pi d) = (-1)^t sin(pi f), and sin(pi d / 3) by the
 * angle sum from sin and cos of pi f / 3 (three calls instead of twelve). */
static inline void psf_lanczos3(double u, long *first, double w[6]) __attribute__((unused));
static inline void psf_lanczos3(double u, long *first, double w[6])
{
    /* cos and sin of (2 - t) pi / 3 */
    static const double ck[6] = {-0.5, 0.5, 1.0, 0.5, -0.5, -1.0};
    static const double sk[6] = {0.86602540378443865, 0.86602540378443865, 0.0,
                                 -0.86602540378443865, -0.86602540378443865, 0.0};
    double fl = floor(u);
    *first = (long)fl - 2;
    double f = u - fl;
    double s1 = sin(M_PI * f), s3 = sin(M_PI * f / 3.0), c3 = cos(M_PI * f / 3.0);
    double sum = 0;
    for (int t = 0; t < 6; t++) {
        double d = f + (double)(2 - t);
        double v;
        if (fabs(d) < 1e-12)
            v = 1.0;
        else if (fabs(d) >= 3.0)
            v = 0.0;
        else {
            double pd = M_PI * d;
            v = 3.0 * ((t & 1) ? -s1 : s1) * (s3 * ck[t] + c3 * sk[t]) / (pd * pd);
        }
        w[t] = v;
        sum += v;
    }
    for (int t = 0; t < 6; t++)
        w[t] /= sum;
}

/* The window of nw x nh pixels from pixel (i0, j0) of the stamp of
 * sk_psf_image() (out: nw * nh values, row by row), normalised like the
 * whole stamp, without rendering the rest of it. SK_EINPUT on a bad size
 * or a window not within the stamp. */
struct sk_psf;
int psf_image_window(const struct sk_psf *psf, double x, double y, int size, int i0, int j0,
                     int nw, int nh, double *out);

/* Replace the outer wings of a PSF model (ncomp components of gw x gh
 * points at step_px image pixels, the first one the image centre's) by a
 * pixel-integrated profile (Moffat or double Gaussian) fitted to the curve
 * of growth of the first component within 3 FWHM (the light within
 * 0.5-3 FWHM relative to that within 2 FWHM; the radii beyond 2 FWHM
 * where the grid reaches them), blended in between 2 and 2.5 FWHM, with
 * the amplitude of the star's total light: the core's sum over the
 * profile's fraction within 2 FWHM, corrected for the part of the star's
 * own wings its local sky (beyond 3 FWHM in a stamp of stamp_px) held.
 * Each component's wing follows its core's sum. Left unchanged (SK_OK)
 * when the fit does not match; SK_EIO out of memory. */
int sk_psf_fit_wings(double *comp, int ncomp, int gw, int gh, double step_px, double fwhm_px,
                     int stamp_px);

/* The neighbours of PSF stars (psf_neighbours.c): for star k, entries
 * first[k] .. first[k+1]-1 of x, y (their centres, px) and flux (fitted
 * with the current model; 0 = not subtracted). */
typedef struct psf_nbrs {
    long nstar, n;
    long *first;
    double *x, *y, *flux;
} psf_nbrs;

struct sk_source_list;
struct sk_psf;

/* The sources of `l` other than star[k] whose centres lie within reach_px
 * of star[k]'s (in x and in y), for the nstar stars. */
int psf_nbrs_find(const struct sk_source_list *l, const long *star, long nstar, double reach_px,
                  psf_nbrs *nb);

/* Every neighbour's flux: the PSF-fit amplitude of `model` at its centre
 * on its own pixels (those of other objects of `segmap` left out). */
int psf_nbrs_fit(psf_nbrs *nb, const struct sk_psf *model, const sk_image *img, const float *level,
                 const float *var, const int32_t *segmap, double gain, int threads);

/* d = d0 less the model images of star k's neighbours, on its m x m stamp
 * whose middle is image pixel (ix, iy); pixels with vb <= 0 are left. */
int psf_nbrs_subtract(const psf_nbrs *nb, long k, const struct sk_psf *model, int m, long ix,
                      long iy, const float *d0, const float *vb, float *d);

void psf_nbrs_free(psf_nbrs *nb);

#endif
