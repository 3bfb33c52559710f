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
    int enabled;              /* 0: no model (sk_psf_build gives none) */
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

void sk_psf_free(sk_psf *psf);

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
