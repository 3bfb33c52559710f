/* extract_internal.h: the library's own part of skystack/extract.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_EXTRACT_INTERNAL_H
#define SK_EXTRACT_INTERNAL_H

#include "skystack/extract.h"

#ifdef __cplusplus
extern "C" {
#endif

void sk_background_params_default(sk_background_params *p);

/* Estimate the background of `img` (flagged and zero-weight pixels ignored):
 * per cell a sigma-clipped mode (2.5 median - 1.5 mean, or the median when
 * they differ by more than 0.3 sigma), cells without enough good pixels
 * filled from their neighbours, a median filter over cells and bicubic
 * spline interpolation to every pixel. SK_EINPUT when the image has no
 * usable pixel. */
int sk_background_estimate(const sk_image *img, const sk_background_params *p,
                           int threads, sk_background **out);

/* The same, also ignoring the pixels where mask[i] != 0 (the dilated
 * footprints of detected objects); mask may be NULL. With a mask, the cell
 * level is the clipped mean instead of the mode (what is left is sky plus
 * the light of undetected sources, which is in every aperture too), or the
 * median when the cell is skewed. */
int sk_background_estimate_masked(const sk_image *img, const uint8_t *mask,
                                  const sk_background_params *p, int threads,
                                  sk_background **out);

void sk_background_free(sk_background *bg);

/* Fill bg->level and bg->rms (allocated when NULL) from the mesh: natural
 * bicubic splines through the cell centres, along y then x, extrapolated
 * linearly beyond the outer centres. */
int sk_background_interpolate(sk_background *bg, int threads);

/* The background product (background_io.c): HDUs BKGMESH and RMSMESH
 * (nx x ny cell values, float32) with MESHPX, IMWIDTH, IMHEIGHT, BKGMED,
 * RMSMED, LVLERR and BKGINTRP = 'SPLINE3'; with `full`, also BACKGROUND and
 * RMS at the image's size. Written atomically. */
int sk_background_write(const char *path, const sk_background *bg, int full, double fwhm_px);

/* Read it back, the full-resolution maps rebuilt from the mesh. */
int sk_background_read(const char *path, int threads, sk_background **out);

/* Gaussian filter kernel of FWHM `fwhm_px`, normalised to unit sum;
 * *radius receives its half-width; (2r+1)^2 values, malloc'd. */
float *sk_gauss_kernel(double fwhm_px, int *radius);

/* Detect and deblend: background-subtracted pixels, matched filter, per-pixel
 * threshold from the filtered noise (weight map or rms map), 8-connected
 * segments of at least min_area_px pixels, multi-threshold deblending and
 * assignment of the remaining pixels. No fixed limit on counts or sizes. */
int sk_detect(const sk_image *img, const sk_background *bg, const sk_detect_params *p,
              int threads, sk_detection **out);

void sk_detection_free(sk_detection *d);

/* The fewest pixels above the threshold a segment needs: min_area_px, or
 * (pi / 2) FWHM^2 (at least 1) when smaller. detect.c. */
long sk_detect_min_area(const sk_detect_params *p);

/* Deblend one segment (pixel indices `pix`, n of them, of a width x height
 * image holding detection values `val`, threshold `thresh`; every pixel
 * 8-adjacent to the segment and outside it is at or below the threshold).
 * Appends the resulting objects to *objs (grown as needed). deblend.c. */
int sk_deblend_segment(const long *pix, long n, const float *val, long width, long height,
                       double thresh, const sk_detect_params *p,
                       sk_object **objs, long *nobjs, long *cap);

/* The object footprints of `det` grown by `radius_px` (a square
 * dilation), as a width*height mask (1 = object), malloc'd; on up to
 * `threads` threads (the mask does not depend on them). detect.c. */
uint8_t *sk_detection_mask(const sk_detection *det, int radius_px, int threads);

/* Per-pixel variance of the science image (ADU^2): from the weight map
 * rescaled to the measured background rms, or the rms map when the weight is
 * relative; 0 where there is no data. width*height, malloc'd. detect.c.
 * The _threads form computes it on `threads` threads (the same values). */
/* The noise of a PSF fit or matched filter on img over what its per-pixel
 * variances predict: its header's NOISEPSF (a resampled coadd's, from the
 * resampling kernels), 1 when absent or outside [0.1, 10]. Detection
 * divides its significance by it; aperture, isophotal, Kron and PSF-fit
 * flux errors (their sky-noise part) and the limiting magnitude grow by it. */
double sk_image_noise_factor(const sk_image *img);

float *sk_pixel_variance(const sk_image *img, const sk_background *bg);
float *sk_pixel_variance_threads(const sk_image *img, const sk_background *bg, int threads);

typedef struct sk_measure_params {
    const double *aperture_fwhm; /* aperture radii in units of the image FWHM */
    int naper;
    double kron_factor;          /* AUTO aperture = kron_factor * Kron radius (2.5) */
    double kron_min_radius;      /* minimum AUTO radius, units of a,b (3.5) */
    double gain;                 /* e-/ADU for source Poisson noise; <= 0: none */
    double fwhm_px;              /* image FWHM (apertures, window); > 0 */
    double core_fwhm_px;         /* the PSF's core as sharp as measured,
                                    below SK_FWHM_MIN_PX too (<= fwhm_px;
                                    0: fwhm_px): what the tests for objects
                                    sharper than the PSF compare with */
    int shape_only;              /* 1: centroid, moments, FWHM and flags only
                                    (no aperture, AUTO or SNR) */
    int residual;                /* 1: img is an image less fitted models,
                                    whose pixels beside a peak may be
                                    over-subtracted: a peak is sharper than
                                    the PSF along a line only where both
                                    its neighbours on it are low */
} sk_measure_params;

/* The detection parameters of the final detection of `img` with the
 * matched filter of FWHM fwhm_px (none on an image filtered already:
 * header CHI2FWHM), and the measurement parameters of p. extract.c. */
sk_detect_params sk_extract_detect_params(const sk_image *img, const sk_extract_params *p, double fwhm_px);
sk_measure_params sk_extract_measure_params(const sk_extract_params *p, const sk_extract_result *r);

/* Measure every object of `det` on `img`; the result is sorted by (ywin, xwin)
 * and numbered from 1. */
int sk_measure(const sk_image *img, const sk_background *bg, const sk_detection *det,
               const sk_measure_params *p, int threads, sk_source_list **out);

/* The same for the objects det->objects[which[k]] only (k < nwhich); the
 * other objects still count as neighbours. */
int sk_measure_objects(const sk_image *img, const sk_background *bg, const sk_detection *det,
                       const sk_measure_params *p, int threads, const long *which,
                       long nwhich, sk_source_list **out);

/* Dual-image mode: the objects of `det`, detected on `img` (background
 * `bg`), measured with their positions, shapes, flags, Kron radii and
 * apertures from `img` and their fluxes, flux errors, peaks and
 * backgrounds from `phot` (the same size, on the same grid) with its
 * background `phot_bg`; `phot_gain` (e-/ADU, <= 0: none) gives the
 * Poisson noise of phot's fluxes, p->gain that of img. */
int sk_measure_dual(const sk_image *img, const sk_background *bg, const sk_detection *det,
                    const sk_measure_params *p, const sk_image *phot, const sk_background *phot_bg,
                    double phot_gain, int threads, sk_source_list **out);

void sk_source_list_free(sk_source_list *l);

/* Overlap area of the pixel [x0,x1]x[y0,y1] with the circle of radius r
 * centred at the origin (exact geometry). */
double sk_circle_rect_overlap(double x0, double y0, double x1, double y1, double r);

/* The image FWHM (px): median FWHM of bright, unflagged, non-artifact
 * sources on the stellar locus; 0 when there are too few. */
double sk_image_fwhm(const sk_source_list *l);

/* Pixel-integrated unit Gaussian of sigma sg (px) centred at c over the n
 * pixels centred at t0, t0+1, ..: the fraction of its light along one
 * axis in each (fwhm.c). */
void sk_pix_gauss_row(long t0, long n, double c, double sg, double *out);

/* The range of image FWHMs the extraction measures (px). */
#define SK_FWHM_MIN_PX 1.2
#define SK_FWHM_MAX_PX 15.0
/* The sharpest PSF core measured (px): a star of this FWHM centred on a
 * pixel puts 98 % of its light in that pixel. */
#define SK_FWHM_CORE_MIN_PX 0.4

/* The image FWHM (px) from the data: the mode of the windowed FWHMs of the
 * bright (>= 20 filtered sigmas), unsaturated, round local maxima of the
 * significance image `signif`, the window iterated from guess_px until the
 * estimate settles; *fwhm_px 0 when fewer than 5 peaks qualify. The
 * estimate is held within SK_FWHM_MIN_PX..SK_FWHM_MAX_PX; *core_px is the
 * last estimate without the lower limit (down to SK_FWHM_CORE_MIN_PX),
 * for an image whose stars are sharper than SK_FWHM_MIN_PX. The peaks
 * are fitted on `threads` threads; the result does not depend on their
 * number. */
int sk_fwhm_from_peaks(const sk_image *img, const sk_background *bg, const float *signif,
                       double guess_px, int threads, double *fwhm_px, double *core_px);

/* The FWHM (px) of the core of the star at (x_px, y_px): a pixel-integrated
 * circular Gaussian plus a constant (neighbours' light, wings) fitted to
 * the pixels within max(3, 2 guess_px) of the nearest pixel; it holds for
 * undersampled and crowded stars, where moments do not. 0 when the fit
 * fails or leaves the star. */
double sk_core_fwhm_at(const sk_image *img, const sk_background *bg, double x_px, double y_px,
                       double guess_px);

#ifdef __cplusplus
}
#endif
#endif
