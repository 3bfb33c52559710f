/* psf_profile.h: the analytic PSF profiles of skystack/sim.h's sk_sim_psf (elliptical Moffat, Gaussian, double Gaussian), drawn by the simulator and by psfmatch's target PSF; not installed. */
#ifndef SK_PSF_PROFILE_H
#define SK_PSF_PROFILE_H

#include "skystack/sim.h"

/* The profile as a sum of single-component profiles (psf_double.c): a
 * double Gaussian gives its core and wing Gaussians with their light
 * fractions (2, or 1 when the wing is empty), any other model itself
 * (1, frac[0] = 1). */
int sk_sim_psf_components(const sk_sim_psf *psf, sk_sim_psf comp[2], double frac[2]);

/* Check the parameters: SK_EINPUT naming the bad one. */
int sk_sim_psf_check(const sk_sim_psf *psf);

/* Half-size of the box that holds the truncated profile (pixels). */
double sk_sim_psf_extent_px(const sk_sim_psf *psf);

/* Surface density (per pixel^2, integral 1) at offset (dx, dy) from the centre. */
double sk_sim_psf_density(const sk_sim_psf *psf, double dx, double dy);

/* The density sampled at integer offsets -half..half on both axes into
 * out[(dy + half) * (2 half + 1) + dx + half]. */
void sk_sim_psf_sample(const sk_sim_psf *psf, long half, double *out);

/* Per-axis second moment (pixel^2) of the truncated profile when circular:
 * <x^2> = <r^2>/2 (analytic), for tests and measurement code. */
double sk_sim_psf_sigma2_px2(const sk_sim_psf *psf);

/* Add flux * PSF centred at (x, y) to the rows [row0, row1) of a
 * width x height image, each pixel receiving the PSF integrated over its
 * area (adaptive Gauss-Legendre quadrature), so that the sum over pixels
 * equals `flux` (when the profile lies inside the image) and the centroid
 * is (x, y). */
void sk_sim_psf_add(const sk_sim_psf *psf, double flux, double x, double y,
                    double *image, long width, long height, long row0, long row1);

#endif
