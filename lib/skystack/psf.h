/* psf.h: the point-spread function of an image: star selection, a
 * pixel-basis model whose pixels vary as polynomials of the position,
 * evaluation at any position with sub-pixel centring, FWHM, PSF-fit
 * photometry, and the PSFEx ".psf" file format (read and write).
 *
 * The model. The PSF is held as ncomp component images of width x height
 * model pixels, each model pixel step_px image pixels wide (PSFEx's
 * PSF_SAMP; step_px < 1 when the PSF is undersampled and the model is
 * sampled finer than the image). The model at a position is
 *     G(x, y) = sum_k  b_k(X, Y) * comp[k]
 * with X = (x + 1 - xzero) / xscale, Y = (y + 1 - yzero) / yscale, where
 * (x, y) are the library's 0-based pixel coordinates (so x + 1 is PSFEx's
 * 1-based X_IMAGE), and the basis in PSFEx's order: for degree d,
 *     1, X, X^2 .. X^d, Y, XY .. X^(d-1)Y, Y^2 .. , Y^d.
 * Model pixel (i, j) is the PSF (already integrated over an image pixel)
 * at the offset ((i - width/2) * step_px, (j - height/2) * step_px) image
 * pixels from the star's centre (integer division; width and height are
 * odd). Values are per image pixel, so that interpolating the model at
 * image-pixel offsets (as Source Extractor does with a Lanczos-3 kernel)
 * gives the star's image directly.
 *
 * Normalisation. skystack normalises its models to unit total flux: the
 * model interpolated onto image pixels and summed over its footprint is 1
 * at the centre of the image (step_px^2 * sum(G) = 1), so that a PSF-fit
 * amplitude is the total flux within the model's footprint (by default a
 * radius of 4 FWHM, > 99.8 % of a Moffat beta 3.5 profile). PSFEx instead
 * normalises to the flux in its PHOTFLUX_KEY aperture, so its models sum
 * to more than 1; sk_psf_image() renormalises whatever it reads to unit
 * sum, so both give the same stamps, and PSF-fit fluxes made with a
 * PSFEx file are fluxes within the model's footprint too.
 *
 * Thread safety: a built or read sk_psf is read-only; every evaluation
 * call may run concurrently on one sk_psf. */
#ifndef SKYSTACK_PSF_H
#define SKYSTACK_PSF_H

#include <stdint.h>
#include "extract.h"
#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_psf {
    int width, height;        /* model grid (PSFAXIS1, PSFAXIS2), odd */
    int ncomp;                /* number of polynomial terms (PSFAXIS3) */
    int degree;               /* polynomial degree (POLDEG1); 0 = constant */
    double step_px;           /* image pixels per model pixel (PSF_SAMP) */
    double xzero, xscale;     /* context scaling of X_IMAGE (POLZERO1, POLSCAL1) */
    double yzero, yscale;     /* and of Y_IMAGE (POLZERO2, POLSCAL2) */
    float *comp;              /* ncomp * height * width, x fastest, then y,
                                 then term (the PSF_MASK layout) */
    double fwhm_px;           /* FWHM at the image centre, image pixels */
    long image_width, image_height; /* image the model was made for (0 = unknown) */
    /* Diagnostics of the fit (0 for a model read from a file). */
    long nloaded;             /* candidate stars (LOADED) */
    long naccepted;           /* stars kept after clipping (ACCEPTED) */
    double chi2;              /* median reduced chi^2 of the kept stars (CHI2) */
    long *stars;              /* naccepted indices into the source list */
    double *star_x, *star_y;  /* their PSF-fit centres (0-based pixels) */
    double *star_flux;        /* their PSF-fit fluxes (ADU) */
    double *star_chi2;        /* their reduced chi^2 */
} sk_psf;

typedef struct sk_psf_params {
    int degree;               /* polynomial degree of the variation (2); lowered
                                 when there are fewer than 3 stars per term */
    double min_snr;           /* minimum SNR of a PSF star (50) */
    int size_px;              /* footprint of the model in image pixels (odd);
                                 0 = 2 * ceil(4 FWHM) + 1, at least 11 */
    double oversampling;      /* model pixels per image pixel; 0 = automatic:
                                 1 / min(1, FWHM / 4.7), two model pixels per
                                 Gaussian sigma when the PSF is undersampled */
    double max_ellipticity;   /* 1 - b/a above which a star is rejected (0.3) */
    double locus_width;       /* accepted FWHM range around the stellar locus,
                                 relative (0.2: +-20 %) */
    double clip_sigma;        /* chi^2 clipping of stars (3) */
    long max_stars;           /* at most this many stars, the highest SNR (500) */
    double gain;              /* e-/ADU for the source's Poisson noise; <= 0: none */
} sk_psf_params;

void sk_psf_params_default(sk_psf_params *p);
/* Fill from extraction.psf of a configuration (the whole configuration's
 * JSON object). SK_EINPUT naming a bad key. */
int sk_psf_params_from_json(const json_t *root, sk_psf_params *p);

/* Build the PSF model of `img` from the stars of `sources`:
 * - star selection: no SATURATED, ARTIFACT or WIN_FAILED flag (deblended
 *   stars and stars with flagged pixels are kept, the pixels of other
 *   objects and flagged pixels being left out, as long as 80 % of the
 *   pixels within 1 FWHM of the centre remain); SNR >= min_snr;
 *   ellipticity below max_ellipticity; FWHM within locus_width of the
 *   stellar locus (the densest FWHM interval of the candidates); no other
 *   source's centre within 2 FWHM, nor a brighter source (AUTO flux)
 *   within 4 FWHM; pixels of other objects of `segmap`
 *   (may be NULL) masked;
 * - a first model by stacking: each star's stamp resampled onto the model
 *   grid centred on the star with a Lanczos-3 interpolant, and every model
 *   pixel fitted as a polynomial of the position by weighted least squares;
 * - refinement against the image pixels themselves (a forward model: the
 *   model interpolated onto each star's pixels, solved by conjugate
 *   gradients), which recovers a model finer than the pixels from stars at
 *   many sub-pixel phases;
 * - alternating with it, each star's flux and centre fitted with the model,
 *   and stars whose residuals are outliers (galaxies, doubles, defects)
 *   clipped: a shape mismatch (rms residual beyond the noise within
 *   2 FWHM, relative to the star's) above the median + clip_sigma robust
 *   sigmas and above 6 %, or a reduced chi^2 above the median + clip_sigma
 *   times the larger of its robust sigma and the median;
 *   pixels more than 2.5 sigma off the current model (a neighbour's
 *   wings, a faint companion) are left out of the next fit of the model.
 * The fit's weights are the inverse of the background variance, the
 * source's Poisson noise and (1 % of the pixel's value)^2, a model
 * accuracy floor like PSFEx's PSF_ACCURACY, so that the brightest stars
 * neither decide the model alone nor get clipped for its small
 * imperfections; star_chi2 and chi2 use these weights.
 * `bg` is the background of `img` (level and variance). SK_ENOTFOUND when
 * fewer than 3 stars are usable, SK_EINPUT on bad parameters. */
int sk_psf_build(const sk_image *img, const sk_background *bg, const sk_source_list *sources,
                 const int32_t *segmap, const sk_psf_params *p, int threads, sk_psf **out);

void sk_psf_free(sk_psf *psf);

/* A constant (degree 0) model from an image-sampled stamp of size x size
 * pixels (odd) centred on the stamp's middle pixel, normalised to unit
 * sum; for PSFs made by other means (a coadd's PSF). */
int sk_psf_from_stamp(const double *stamp, int size, long image_width, long image_height,
                      sk_psf **out);

/* The model on its own grid (width x height values, PSF_MASK sampling and
 * scale, not renormalised) at the image position (x, y). */
void sk_psf_grid_at(const sk_psf *psf, double x, double y, double *grid);

/* The natural stamp size in image pixels: odd, covering the model. */
int sk_psf_stamp_size(const sk_psf *psf);

/* The PSF of a star centred at (x, y) (0-based image pixels) on a stamp of
 * size x size image pixels (size odd; <= 0: sk_psf_stamp_size()), whose
 * middle pixel is image pixel (lround(x), lround(y)): stamp pixel (i, j)
 * is image pixel (lround(x) - size/2 + i, lround(y) - size/2 + j). The
 * model is interpolated with a Lanczos-3 kernel and normalised to unit
 * sum over the stamp. SK_EINPUT on a bad size. */
int sk_psf_image(const sk_psf *psf, double x, double y, int size, double *stamp);

/* FWHM (image pixels) of the model at (x, y): the diameter of the circle
 * with the area of the region above half the peak, found on the model
 * resampled four times finer (for an elliptical PSF: the geometric mean of
 * the major- and minor-axis FWHM). It is the FWHM of the PSF as the pixels
 * record it, i.e. integrated over a pixel, like Source Extractor's
 * FWHM_IMAGE and PSFEx's. */
double sk_psf_fwhm_at(const sk_psf *psf, double x, double y);

/* ---- PSF-fit photometry (psf_phot.c) ---- */

/* For each of the n positions (x[k], y[k]) (0-based pixels), the flux of a
 * point source there: the amplitude of the unit-sum PSF fitted by linear
 * weighted least squares to the background-subtracted pixels within
 * max(2, 2 FWHM) pixels of the position, weights the inverse background
 * variance (`var`, width*height, 0 = no data; e.g. sk_pixel_variance()),
 * the position held fixed. Unusable pixels (flagged, no data, saturated)
 * and, when `segmap` is given, pixels of other objects are left out.
 * flux_err[k] propagates the background variance and the source's Poisson
 * noise (gain e-/ADU, <= 0: none) through the fit; chi2 (may be NULL) is
 * the fit's reduced chi^2. A position with no usable pixel gets NaN. */
int sk_psf_photometry(const sk_psf *psf, const sk_image *img, const float *bg_level,
                      const float *var, const int32_t *segmap, double gain, long n,
                      const double *x, const double *y, int threads, double *flux,
                      double *flux_err, double *chi2);

/* The same for every source of a list, at its windowed centroid. */
int sk_psf_photometry_sources(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                              const int32_t *segmap, double gain, const sk_source_list *l,
                              int threads, double *flux, double *flux_err);

/* Add FLUX_PSF and FLUXERR_PSF (ADU) columns to a source table made by
 * sk_source_table() from the same list (row k = source k). */
int sk_psf_add_columns(sk_table *t, const double *flux, const double *flux_err);

/* ---- PSFEx files (psf_io.c) ---- */

/* Write `psf` as a PSFEx file: empty primary HDU, then the binary table
 * PSF_DATA of one row with the PSF_MASK column (TDIM = (width, height,
 * ncomp)) and the keywords LOADED, ACCEPTED, CHI2, POLNAXIS, POLGRP1-2,
 * POLNAME1-2 (X_IMAGE, Y_IMAGE), POLZERO1-2, POLSCAL1-2, POLNGRP,
 * POLDEG1, PSF_FWHM, PSF_SAMP, PSFNAXIS, PSFAXIS1-3 (PSFEx 3.x layout,
 * read by Source Extractor's PSF_NAME). Written atomically. */
int sk_psf_write(const char *path, const sk_psf *psf);

/* Read a PSFEx file (skystack's or PSFEx's own). Polynomial contexts must
 * be X_IMAGE/Y_IMAGE or XWIN_IMAGE/YWIN_IMAGE in one group, or none.
 * SK_EINPUT naming the file and what is wrong otherwise. */
int sk_psf_read(const char *path, sk_psf **out);

#ifdef __cplusplus
}
#endif
#endif
