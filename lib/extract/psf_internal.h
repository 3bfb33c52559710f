/* psf_internal.h: the library's own part of skystack/psf.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_PSF_INTERNAL_H
#define SK_PSF_INTERNAL_H

#include "skystack/psf.h"
#include "extract_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

void sk_psf_params_default(sk_psf_params *p);

/* Fill from extraction.psf of a configuration (the whole configuration's
 * JSON object). SK_EINPUT naming a bad key. */
int sk_psf_params_from_json(const json_t *root, sk_psf_params *p);

/* Build the PSF model of `img` from the stars of `sources`:
 * - star selection: no SATURATED, ARTIFACT or WIN_FAILED flag (deblended
 *   stars and stars with flagged pixels are kept, the pixels of other
 *   objects and flagged pixels being left out, as long as 80 % of the
 *   pixels within 1 FWHM of the centre remain); SNR >= min_snr;
 *   ellipticity below max_ellipticity; the FWHM of a Gaussian fitted to
 *   the core within locus_width of the stellar locus (the densest FWHM
 *   interval of the candidates); no other source's centre within 1 FWHM,
 *   nor one of more than a quarter of its AUTO flux within 2 FWHM; pixels
 *   of other objects of `segmap` (may be NULL) masked;
 * - the neighbours' light (sources within the stamp's half side + 2 FWHM)
 *   taken out of the stamps before every fit of the stars: their fluxes
 *   fitted with the current model, their model images subtracted;
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

/* The same for every source of a list, at its windowed centroid, with
 * errors that state the real scatter: besides the noise through the fit,
 * the background level's error (bg->level_err) over the fit, a scaling by
 * sqrt(chi^2) where the fit's reduced chi^2 exceeds 1, and the model's own
 * fractional error measured on the image from the PSF stars (how far the
 * flux in the fit's pixels and the fit's flux part, beyond their noise).
 * chi2 (may be NULL) gets each fit's reduced chi^2. */
int sk_psf_photometry_sources(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                              const int32_t *segmap, double gain, const sk_source_list *l,
                              int threads, double *flux, double *flux_err, double *chi2);

/* The fractional error of the model's normalisation, which every PSF-fit
 * flux shares: the model is the weighted mean of its stars' images,
 * normalised to their light within the fit radius, so its noise moves
 * every fit flux by the weighted mean over the PSF stars of the difference
 * between the fit's flux and the flux in the fit's pixels; *norm_err is
 * that mean's error from the stars' noise and the model's own error (0
 * with fewer than 5 stars). */
int sk_psf_norm_error(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                      const int32_t *segmap, double gain, const sk_source_list *l, int threads,
                      double *norm_err);

/* The same with the neighbours' models subtracted instead of their pixels
 * left out: `resid` (width*height) is the image less its background and
 * the model of every source (own[k] times the PSF at source k's centroid),
 * and each source is fitted to resid plus its own model, on every usable
 * pixel within the fit radius. */
int sk_psf_photometry_subtracted(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                                 const float *resid, const double *own, double gain,
                                 const sk_source_list *l, int threads, double *flux,
                                 double *flux_err, double *chi2);

/* Crowding of an image: the share of the point sources of l of SNR >= 20
 * (clean: not saturated, ARTIFACT or WIN_FAILED; no wider than 1.6 times
 * the image FWHM) deblended from a segment with others (SK_SRC_BLENDED);
 * *npoint, *nblended (NULL: not wanted): how many there are, and how many
 * of them are blended. residual.c. */
double sk_crowding(const sk_source_list *l, long *npoint, long *nblended);

/* Is the image of l crowded, for the automatic second pass: at least 20
 * of those point sources blended, and their share above crowding_min by
 * at least twice its binomial error (sqrt(c (1 - c) / n): on a small
 * image a share just above it says little)? */
int sk_crowded(const sk_source_list *l, double crowding_min);

/* The second detection pass (residual.c), after the PSF model `psf` and
 * the first pass's PSF fluxes (*flux, *err, *chi2, one per source of
 * r->sources): when xp->second_pass is 1, or -1 and the crowding
 * (sk_crowding) is at least xp->crowding_min, in up to 2 rounds (until
 * one finds nothing new): the fitted models of the sources so far of
 * positive flux are subtracted from `img`, the residual (saturated pixels
 * and those directly above and below them no data) detected with the final detection parameters on the same
 * background and measured, and the objects found kept as new sources
 * unless their peak lies in the footprint box of a source not subtracted
 * or within 1 FWHM of one of those no-data pixels (again once measured),
 * they are saturated, wider than
 * 1.6 times the FWHM or within 1 FWHM of a source before them, or their
 * PSF-fit flux on the residual is below the detection threshold times the
 * noise (that flux over the peak significance of the detection) and the
 * model's error there (the model's fractional error measured at the PSF
 * stars times the fit of the models at that point) in quadrature. With
 * new sources: the fluxes of all fitted at once, the new ones below the
 * threshold times their noise then dropped, the new ones measured with
 * the models before them subtracted (flag SK_SRC_RESIDUAL; those then
 * within 1 FWHM of a source before them dropped) and, in the first
 * round, the first pass's objects measured again with the new models
 * subtracted; the lists merged in (ywin, xwin) order into r->sources,
 * the PSF fluxes fitted at once again and each source's flux, error and
 * chi^2 taken with its neighbours' models subtracted (arrays
 * reallocated), psf->stars carried to the new list. Without any, nothing
 * changes. */
int sk_residual_pass(const sk_image *img, const sk_extract_params *xp, sk_psf *psf, int threads,
                     sk_extract_result *r, double **flux, double **err, double **chi2);

/* Add FLUX_PSF and FLUXERR_PSF (ADU) columns to a source table made by
 * sk_source_table() from the same list (row k = source k). */
int sk_psf_add_columns(sk_table *t, const double *flux, const double *flux_err);

#ifdef __cplusplus
}
#endif
#endif
