/* coadd_internal.h: the library's own part of skystack/coadd.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_COADD_INTERNAL_H
#define SK_COADD_INTERNAL_H

#include "skystack/coadd.h"
#include "coaddx_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Half-width a: a point at x = i + f (0 <= f < 1) uses input pixels
 * i-a+1 .. i+a along each axis. */
int sk_kernel_halfwidth(int kernel);

/* Value of the (unnormalised) kernel at offset t (pixels). */
double sk_kernel_value(int kernel, double t);

/* Output pixel -> input pixel through both full WCSs (output pix2sky, then
 * input sky2pix), evaluated by wcslib on a grid of nodes every `step`
 * pixels over the part of the output that the input covers and
 * interpolated in between with 4-point Lagrange cubics along each axis.
 * The interpolation error is measured against wcslib at the centre of
 * every node cell and along the cell edges; the node spacing is halved
 * until the largest error is at most the tolerance (and the relative error
 * of the pixel-area ratio at most 1e-5). Cells whose nodes fall outside a
 * projection's domain, and mappings no spacing of 2 px can reach, are
 * evaluated exactly for every pixel. */
typedef struct sk_pixmap sk_pixmap;

int sk_pixmap_new(const sk_grid *grid, const sk_wcs *in_wcs, long in_width, long in_height,
                  double tolerance_px, sk_pixmap **out);

void sk_pixmap_free(sk_pixmap *m);

/* The output rectangle the input may cover: [x0, x1) x [y0, y1), empty
 * (x0 == x1) when the input does not overlap the grid. */
void sk_pixmap_box(const sk_pixmap *m, long *x0, long *y0, long *x1, long *y1);

/* Node spacing in output pixels (0: exact evaluation everywhere). */
int sk_pixmap_step(const sk_pixmap *m);

/* Largest interpolation errors measured: position (input px) and the
 * relative error of the area ratio. */
double sk_pixmap_error_px(const sk_pixmap *m);

double sk_pixmap_area_error(const sk_pixmap *m);

/* Input coordinates and pixel-area ratio (output pixel area / input pixel
 * area, i.e. |det| of d(input)/d(output)) of output pixels x0..x1-1 of row
 * y, which must lie inside the box. NaN where there is no mapping. Safe to
 * call from several threads. */
int sk_pixmap_row(const sk_pixmap *m, long y, long x0, long x1, double *xin, double *yin,
                  double *area);

/* Bounds of the input coordinates of the output pixels of rows [y0, y1)
 * inside the box (exact bounds of the interpolants); NaN when no pixel of
 * those rows maps. */
int sk_pixmap_input_bounds(const sk_pixmap *m, long y0, long y1, double *xmin, double *xmax,
                           double *ymin, double *ymax);

/* The values that inputs give to one output pixel. */
typedef struct sk_combine_in {
    float value;     /* flux per pixel at the common zero point */
    float cweight;   /* combine weight: 1 / large-scale variance per pixel */
    float var;       /* variance of this resampled pixel */
    float poisson;   /* source variance per unit of signal (scale*area/gain;
                        0 when the gain is unknown) */
} sk_combine_in;

typedef struct sk_combine_out {
    float value;
    float weight;     /* 1 / variance of the combined pixel */
    int nused;        /* inputs kept */
    int nrejected;    /* inputs rejected by clipping */
    double var_large; /* large-scale variance per pixel (for VARCORR) */
} sk_combine_out;

/* Combine n values (n = 0 gives weight 0); `scratch` holds 3n doubles.
 * clipped: the centre starts at the weighted median; a value is rejected
 * when |value - centre| > clip_sigma * sqrt(var + poisson * max(centre, 0)
 * + spread^2) + clip_ampfrac * |centre|, where spread^2 is the mean
 * squared deviation from the centre of all values but the farthest, less
 * the mean noise variance (at least 0): the differences that seeing and
 * PSF changes make between inputs on sources, which one outlier does not
 * inflate. When nothing is rejected the result is the weighted mean of
 * all values; otherwise the centre becomes the weighted mean of the kept
 * values and the test is repeated on all values until the kept set stops
 * changing or clip_iterations passes are done (fewer than 3 values: the
 * plain mean). median: the plain median, variance
 * sk_median_variance_factor(n) * mean(var) / n. */
void sk_combine_pixel(const sk_combine_params *p, const sk_combine_in *in, int n, double *scratch,
                      sk_combine_out *out);

/* The weighted mean as sk_combine_pixel gives it (mean, or clipped with
 * fewer than three values) from its sums over the `used` values, in their
 * order: sc of the combine weights c, scv of c value, scvar of c^2 var. */
void sk_combine_mean_sums(double sc, double scv, double scvar, int used, sk_combine_out *out);

/* The clipped mean (p->method SK_COMBINE_CLIPPED) of four pixels at once
 * where it needs no sort: the entry of input k (k < n) at pixel l (l < 4)
 * at (const char *)in + k * kstride + l * lstride, those with cweight > 0
 * used in the order of k. Bit l of the result is set when pixel l's values
 * all pass sk_combine_pixel's screen (or fewer than three are used), and
 * out[l] is then what sk_combine_pixel gives them, bit for bit; bit 4 + l
 * is set when three or more are used and some value fails the screen
 * (sk_combine_clipped_unscreened gives that pixel); the others (more than
 * 64 inputs) need sk_combine_pixel. */
unsigned sk_combine_clipped_screen4(const sk_combine_params *p, const void *in, size_t kstride,
                                    size_t lstride, int n, sk_combine_out out[4]);
/* sk_combine_pixel's clipped mean of n >= 3 values known to fail its
 * screen (the weighted median, the clipping passes). */
void sk_combine_clipped_unscreened(const sk_combine_params *p, const sk_combine_in *in, int n,
                                   double *scratch, sk_combine_out *out);

/* The clipped mean's sort of n (value, weight) pairs (2n doubles): by
 * value, then weight, pairs that compare equal in their order; plain: by
 * insertion (its reference), else as sk_combine_pixel sorts them. */
void sk_combine_sort_pairs(double *pairs, int n, int plain);

/* Variance of the median of n values of unit variance (n >= 1): the
 * ratio to the variance of their mean times n (1 for n <= 2, pi/2 at
 * large n). */
double sk_median_variance_factor(int n);

/* Resample one in-memory image onto a whole grid (no combine): values
 * (background `background` subtracted when not NULL, then multiplied by
 * flux_scale), per-pixel inverse variance and flags as the coadd computes
 * them for one input; pixels the input does not reach get weight 0 and
 * SK_FLAG_EDGE. The result carries the grid's WCS. */
int sk_resample_image(const sk_image *in, const float *background, double flux_scale,
                      const sk_grid *grid, int kernel, double tolerance_px, int threads,
                      sk_image **out);
/* The same for one image after another: *out (NULL the first time) is the
 * result of the previous call, its planes and *nimg (the count plane, a
 * scratch) filled anew rather than allocated (their pages already in);
 * the caller frees both at the end (sk_image_free, free). The same pixels
 * as sk_resample_image. */
int sk_resample_image_again(const sk_image *in, const float *background, double flux_scale,
                            const sk_grid *grid, int kernel, double tolerance_px, int threads,
                            sk_image **out, int32_t **nimg);

/* The nine positions of a coadd's PSF model: 1/6, 1/2 and 5/6 of each
 * axis, row by row (x_px and y_px hold 9 values). */
void sk_coadd_psf_positions(const sk_grid *grid, double *x_px, double *y_px);

/* A PSFEx model of degree 2 in the output pixel position through nine
 * size x size stamps (odd size, unit sum, at sk_coadd_psf_positions, one
 * after another in `stamps`), sampled on output pixels; when have[p] is 0
 * for some position, degree 0 from the centre's stamp (or the first
 * present). SK_EINPUT when no stamp is present. */
int sk_coadd_psf_fit(const double *stamps, const int *have, long size, const sk_grid *grid,
                     struct sk_psf **out);

/* The PSF of a mean, clipped or median coadd: at a 3x3 set of positions
 * (1/6, 1/2 and 5/6 of each axis) the PSF models of the inputs that cover
 * the position, seen on the output grid (sk_grid_psf_stamp: the local
 * Jacobian of both WCSs), averaged with weights `weight` (the inputs'
 * mean combine weights); then a PSFEx model of degree 2 in the output
 * pixel position through the nine stamps (degree 0, the centre's, when
 * some position has no input), sampled on output pixels, unit sum. */
int sk_coadd_psf(int n, const struct sk_psf *const *psfs, const sk_wcs *const *wcs,
                 const long *width, const long *height, const double *weight, const sk_grid *grid,
                 struct sk_psf **out);

/* Weights that predict the measured noise (weight_rescale.c). The noise
 * of input `in`'s blank sky over its weights' prediction (*ratio, 1 when
 * its weights are relative to the background rms or fewer than 1000
 * pixels are usable) from up to 2 million of its own pixels (bands spread
 * over the image, background subtracted): the distance between the 2.275th
 * and 15.87th percentiles of (value - background) * sqrt(weight), from
 * the lower tail alone, which sources and cosmic rays barely move; *npix
 * the pixels used (0: none measured). */
int sk_coadd_weight_ratio(const sk_coadd_input *in, double *ratio, long *npix);
/* Measure every input (on up to `threads` threads) and set its
 * weight_scale to 1 / ratio^2, logging each. */
int sk_coadd_rescale_weights(sk_coadd_input *ins, int n, int threads);
/* WRESCALE = T and WSCLn, the weight factor of input n (1-based). */
int sk_coadd_weight_scale_header(const sk_coadd_input *ins, int n, sk_header *h);

#ifdef __cplusplus
}
#endif
#endif
