/* psf_profile.h: analytic PSF profiles (elliptical Moffat, Gaussian) drawn by the simulator (sim_psf.c) and by psfmatch's target PSF; not installed. */
#ifndef SK_PSF_PROFILE_H
#define SK_PSF_PROFILE_H

enum sk_psf_profile_model { SK_PSF_MOFFAT = 0, SK_PSF_GAUSSIAN = 1 };

/* An elliptical PSF. fwhm_px is the geometric mean of the major- and
 * minor-axis FWHM (the area-preserving FWHM); axis ratio q = 1 - ellipticity,
 * major FWHM = fwhm_px/sqrt(q), minor = fwhm_px*sqrt(q). The profile is
 * truncated at radius_fwhm * fwhm_px (elliptical radius) and renormalised
 * analytically so that its integral is exactly 1. */
typedef struct sk_psf_profile {
    int model;           /* enum sk_psf_profile_model */
    double fwhm_px;
    double beta;         /* Moffat beta (> 1) */
    double ellipticity;  /* 1 - b/a, in [0, 1) */
    double angle_deg;    /* major axis, from +x towards +y */
    double radius_fwhm;  /* truncation radius in units of fwhm_px */
} sk_psf_profile;

/* Check the parameters: SK_EINPUT naming the bad one. */
int sk_psf_profile_check(const sk_psf_profile *psf);
/* Half-size of the box that holds the truncated profile (pixels). */
double sk_psf_profile_extent_px(const sk_psf_profile *psf);
/* Surface density (per pixel^2, integral 1) at offset (dx, dy) from the centre. */
double sk_psf_profile_density(const sk_psf_profile *psf, double dx, double dy);
/* The density sampled at integer offsets -half..half on both axes into
 * out[(dy + half) * (2 half + 1) + dx + half]. */
void sk_psf_profile_sample(const sk_psf_profile *psf, long half, double *out);
/* Per-axis second moment (pixel^2) of the truncated profile when circular:
 * <x^2> = <r^2>/2 (analytic). */
double sk_psf_profile_sigma2_px2(const sk_psf_profile *psf);
/* Add flux * PSF centred at (x, y) to the rows [row0, row1) of a
 * width x height image, each pixel receiving the PSF integrated over its
 * area (adaptive Gauss-Legendre quadrature), so that the sum over pixels
 * equals `flux` (when the profile lies inside the image) and the centroid
 * is (x, y). */
void sk_psf_profile_add(const sk_psf_profile *psf, double flux, double x, double y,
                        double *image, long width, long height, long row0, long row1);

#endif
