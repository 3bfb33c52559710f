/* coaddx_internal.h: the library's own part of skystack/coaddx.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_COADDX_INTERNAL_H
#define SK_COADDX_INTERNAL_H

#include "skystack/coaddx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_aligned_input {
    const float *sci;        /* rows [row0, row0+nrows) of the output grid */
    const float *weight;     /* inverse variance, 0 = no data */
    const uint16_t *flags;   /* may be NULL */
    long row0, nrows;        /* nrows 0 (or sci NULL): no data in any row */
    long col0, ncols;        /* ncols > 0: only columns [col0, col0+ncols)
                                held, rows of ncols values; 0: every column
                                (rows of the grid's width) */
    sk_psf_stamp_fn psf;     /* the input's PSF on the output grid */
    void *psf_ctx;
    double flux_scale;       /* F_j: sci = F_j * flux at the common zero point
                                (1 when the inputs are already scaled to it) */
    double sigma;            /* sigma_j: background noise of sci; <= 0: from
                                the weight, 1/sqrt(median weight) */
    double poisson;          /* variance of sci per unit of source signal
                                (flux_scale / gain; 0: unknown) */
    sk_pixel_map_fn map;     /* a plane resampled onto the grid: where its
                                output pixels fall on the input (called under
                                the lock of the PSF callbacks); NULL: not
                                resampled, its noise is white */
    void *map_ctx;
    int kernel;              /* with map: the SK_KERNEL_* it was resampled
                                with (resampling correlates the noise and
                                smooths the signal; zogy models both) */
} sk_aligned_input;

typedef struct sk_zogy_opts {
    long psf_size;         /* odd PSF stamp size (default 31) */
    long tile_px;          /* tile core size (default 512); the PSF of each
                              input is evaluated at every tile's centre */
    int threads;           /* 0: every online core */
    unsigned mask_flags;   /* default SK_COADDX_MASK_DEFAULT */
    double psf_floor;      /* epsilon added to every PSF transform (default
                              1e-5): where all |P_j| are below it the coadd
                              is the noise-weighted mean of the inputs */
    int max_patterns;      /* coverage patterns solved exactly per tile
                              (default 0: 2 * inputs + 8) */
} sk_zogy_opts;

void sk_zogy_opts_default(sk_zogy_opts *o);

typedef struct sk_zogy sk_zogy;

/* Prepare a proper coadd of `n` inputs on a width x height grid: checks the
 * inputs, fixes each sigma_j (given, or 1/sqrt of the median weight of the
 * rows the input holds) and the flux scale F_R = sqrt(sum F_j^2/(sigma_j^2
 * n_j)), n_j the large-scale over per-pixel variance of a resampled input
 * at the centre of the grid (1 when not resampled). Resampled inputs (with
 * a map) are weighted by their noise power spectrum and their signal by
 * the kernel's mean transfer, both computed from the kernel's weights at
 * the sub-pixel phases of each tile (see zogy.c): the coadd's noise is
 * then white, not correlated by the resampling.
 * The inputs array is copied; the planes it points to must live until
 * sk_zogy_free. */
int sk_zogy_new(const sk_aligned_input *in, int n, long width, long height,
                const sk_zogy_opts *opts, sk_zogy **out);

void sk_zogy_free(sk_zogy *z);

/* F_R: a source of flux f (at the common zero point) has flux F_R * f on
 * the proper coadd, so MAGZERO(coadd) = zero point + 2.5 log10(F_R). */
double sk_zogy_flux_scale(const sk_zogy *z);

/* sigma_j used for input j. */
double sk_zogy_sigma(const sk_zogy *z, int j);

/* The rows every input must hold to compute output rows [y0, y1):
 * [*need0, *need1) (clipped to the image). */
void sk_zogy_rows_needed(const sk_zogy *z, long y0, long y1, long *need0, long *need1);

/* Compute output rows [y0, y1). Each output array holds (y1-y0)*width
 * values from row y0; flags and nimg may be NULL.
 * - sci: the proper coadd R. Where every input covers it has unit-variance
 *   white noise (for white input noise) and flux scale F_R. Where only a
 *   subset S covers (footprint edges, masked pixels), it is the proper coadd
 *   of S rescaled to flux scale F_R, so that MAGZERO holds everywhere; its
 *   variance there is (F_R/F_S)^2 >= 1.
 * - weight: 1 / the variance of R predicted per pixel from the coverage
 *   pattern, the PSFs and the local input weights; 0 where no input covers.
 * - flags: SK_FLAG_INTERPOLATED (plus the masked input bits) where an
 *   input contributes within half the widest PSF FWHM of one of its
 *   in-painted pixels (masked, or beyond its coverage edge: there its
 *   in-painted values hold a significant share of R), and on pixels whose
 *   coverage pattern was not solved exactly (max_patterns); where no
 *   input covers, the OR of the inputs' flags, or SK_FLAG_EDGE.
 * - nimg: the number of inputs contributing. */
int sk_zogy_rows(sk_zogy *z, long y0, long y1, float *sci, float *weight, uint16_t *flags,
                 uint16_t *nimg);

/* The tile columns (of tile_px) across the grid, and the columns
 * [*x0, *x1) every input must hold for tile columns [tx0, tx1). */
long sk_zogy_tile_columns(const sk_zogy *z);
void sk_zogy_cols_needed(const sk_zogy *z, long tx0, long tx1, long *x0, long *x1);

/* sk_zogy_rows for the tiles of tile columns [tx0, tx1) only: the output
 * arrays as for sk_zogy_rows (whole rows), of which only those tiles'
 * columns are written; the inputs need hold only the columns
 * sk_zogy_cols_needed names (sk_zogy_set_cols). The same values as
 * sk_zogy_rows gives there. */
int sk_zogy_rows_cols(sk_zogy *z, long y0, long y1, long tx0, long tx1, float *sci,
                      float *weight, uint16_t *flags, uint16_t *nimg);

/* The columns [col0, col0+ncols) input j's planes hold (see
 * sk_aligned_input; ncols 0: every column), for the rows of the last
 * sk_zogy_set_rows. */
int sk_zogy_set_cols(sk_zogy *z, int j, long col0, long ncols);

/* Point input j at other planes holding rows [row0, row0+nrows) (so that
 * a caller can feed the inputs band by band: only the rows that
 * sk_zogy_rows_needed names for the next call must be held). */
int sk_zogy_set_rows(sk_zogy *z, int j, const float *sci, const float *weight,
                     const uint16_t *flags, long row0, long nrows);

/* The PSF of the proper coadd at (x, y) where every input covers:
 * P_R ∝ sqrt(sum_j F_j^2/sigma_j^2 g_j |P_j|^2) in Fourier space (g_j the
 * resampling gain rho_j |T_j|^2/Q_j of zogy.c, 1 when not resampled), as a
 * size x size stamp (odd size) with unit sum, centred like the inputs'. */
int sk_zogy_psf(sk_zogy *z, double x_px, double y_px, long size, float *stamp);

/* The score image S of a proper coadd (zogy_score.c): R correlated with
 * its unit-sum PSF stamp `psf` (size x size, odd), divided by
 * sigma_R sqrt(sum psf^2) with sigma_R = 1/sqrt(weight): a point source's
 * matched-filter SNR at its position, unit variance on blank sky, 0 where
 * the weight is 0. */
int sk_zogy_score(const float *sci, const float *weight, long width, long height,
                  const float *psf, long size, float *score);

typedef struct sk_psfmatch_opts {
    long psf_size;          /* odd PSF stamp size (default 31); kernels
                               reach at most psf_size/2 pixels */
    long tile_px;           /* tile core (default 512); kernels are made at
                               every tile's centre */
    int threads;            /* 0: every online core */
    unsigned mask_flags;    /* default SK_COADDX_MASK_DEFAULT */
    double regularization;  /* lambda of K^ = P^_T conj(P^_j) / (|P^_j|^2 +
                               lambda^2) (default 1e-3; P^(0) = 1) */
    double contamination;   /* a convolved pixel is unusable when the kernel
                               weight sum |K| over masked input pixels
                               exceeds this fraction of sum |K| (1e-3) */
} sk_psfmatch_opts;

void sk_psfmatch_opts_default(sk_psfmatch_opts *o);

typedef struct sk_psfmatch sk_psfmatch;

/* Prepare the matching of n inputs to `target` (NULL: the broadest). The
 * inputs array is copied; the planes must live until sk_psfmatch_free. */
int sk_psfmatch_new(const sk_aligned_input *in, int n, long width, long height,
                    const sk_psf_target *target, const sk_psfmatch_opts *opts,
                    sk_psfmatch **out);

void sk_psfmatch_free(sk_psfmatch *pm);

/* The input whose PSF is the target (-1 for an analytic target) and the
 * target's FWHM at the centre of the grid (pixels). */
int sk_psfmatch_target_input(const sk_psfmatch *pm);

double sk_psfmatch_target_fwhm(const sk_psfmatch *pm);

/* Rows every input must hold to compute output rows [y0, y1). */
void sk_psfmatch_rows_needed(const sk_psfmatch *pm, long y0, long y1, long *need0,
                             long *need1);

/* Input j convolved to the target, output rows [y0, y1) ((y1-y0)*width
 * values each; flags may be NULL). Masked and missing pixels are
 * in-painted before the convolution; a convolved pixel whose kernel
 * footprint puts more than `contamination` of the kernel's weight on them
 * gets weight 0 and the OR of their flags (SK_FLAG_EDGE where the input has
 * no data). The weight is the inverse of the per-pixel variance
 * K^2 * (1/w) (variance propagated through the kernel); neighbouring
 * pixels are correlated by the kernel: the variance of a sum over an
 * aperture much larger than the kernel is about 1/sum(K^2) times the sum
 * of the per-pixel variances (sk_psfmatch_varcorr). The target input
 * itself is copied unchanged. */
int sk_psfmatch_rows(sk_psfmatch *pm, int j, long y0, long y1, float *sci, float *weight,
                     uint16_t *flags);

/* Input j convolved to the PSF of each input targets[i] (none of them j)
 * into sci[i] and weight[i], output rows [y0, y1): bit for bit what
 * sk_psfmatch_rows would give with targets[i] as the target input (no
 * flags), the in-painting and the transforms of j's tiles made once for
 * all the targets. */
int sk_psfmatch_rows_to_inputs(sk_psfmatch *pm, int j, const int *targets, int ntargets,
                               long y0, long y1, float *const *sci, float *const *weight);

/* Point input j at other planes holding rows [row0, row0+nrows) (see
 * sk_zogy_set_rows). */
int sk_psfmatch_set_rows(sk_psfmatch *pm, int j, const float *sci, const float *weight,
                         const uint16_t *flags, long row0, long nrows);

/* 1/sum(K^2) of input j's kernel at the centre of the grid (1 for the
 * target input): large-scale over per-pixel variance of its convolved
 * image for white input noise. */
double sk_psfmatch_varcorr(sk_psfmatch *pm, int j);

/* How well input j's kernel matches it to the target at the centre of the
 * grid: max |K * P_j - P_T| / max P_T (0 for the target input; small
 * unless the target is sharper than the input somewhere). */
double sk_psfmatch_match_error(sk_psfmatch *pm, int j);

/* The target PSF at (x, y) as a size x size stamp (odd), unit sum: the
 * coadd's PSF, exactly. */
int sk_psfmatch_target_psf(sk_psfmatch *pm, double x_px, double y_px, long size, float *stamp);

typedef struct sk_bgmatch_opts {
    int degree;             /* 0: a constant per input; 1: a plane (default) */
    long cell_px;           /* cells of the coarse grid (default 64) */
    double clip_sigma;      /* rejection of discrepant cells (default 3) */
    int iterations;         /* clipping passes at most (default 10) */
    long min_pixels;        /* usable pixels of an input and the reference
                               in a cell to use it (default cell_px^2 / 8) */
    unsigned mask_flags;    /* default SK_COADDX_MASK_DEFAULT */
} sk_bgmatch_opts;

void sk_bgmatch_opts_default(sk_bgmatch_opts *o);

/* The offsets are fitted from the overlap differences: at every pixel the
 * reference is the median of the usable inputs there (two at least); in
 * each cell of the coarse grid and for each input the median of (input -
 * reference) over the cell is one measurement m_jc. The model
 *     m_jc = o_j(cell centre) + n_c,
 * o_j = a_j + b_j X + c_j Y (X, Y: grid coordinates scaled to [-1, 1] over
 * the grid) with a free level n_c per cell (so only differences between
 * inputs in the same cell count), is solved by weighted least squares
 * (weights: pixels times mean weight of the input in the cell), cells
 * whose normalised residual exceeds clip_sigma robust sigmas are dropped
 * and the fit repeated; the offsets of every group of overlapping inputs
 * are anchored so that their mean is zero. An input that overlaps no other
 * gets no correction. */
typedef struct sk_bgmatch sk_bgmatch;

int sk_bgmatch_new(int n, long width, long height, const sk_bgmatch_opts *opts,
                   sk_bgmatch **out);

void sk_bgmatch_free(sk_bgmatch *bm);

/* Feed output rows [y0, y1) of all n inputs (each must hold those rows,
 * or none); rows must come in order, from 0 to height, in any bands. */
int sk_bgmatch_add_rows(sk_bgmatch *bm, const sk_aligned_input *in, long y0, long y1);

/* Fit the offsets once every row was fed. */
int sk_bgmatch_solve(sk_bgmatch *bm);

/* The offset of input j at (x, y): the value to subtract. */
double sk_bgmatch_offset(const sk_bgmatch *bm, int j, double x_px, double y_px);

/* Its value at the centre of the grid and its gradient (per pixel). */
void sk_bgmatch_plane(const sk_bgmatch *bm, int j, double *at_centre, double *d_dx,
                      double *d_dy);

/* Cells used for input j in the final fit (0: it overlaps nothing). */
long sk_bgmatch_ncells(const sk_bgmatch *bm, int j);

/* Subtract input j's offset from rows [y0, y1) of `sci` (which holds
 * (y1-y0)*width values from row y0). */
void sk_bgmatch_apply_rows(const sk_bgmatch *bm, int j, long y0, long y1, float *sci);

/* BGMATCH = T, BGDEG, then for each input (1-based n) BGOFFn (offset at the
 * centre of the grid), BGDXn and BGDYn (gradient per pixel); and one log
 * line per input at info level. */
int sk_bgmatch_write_header(const sk_bgmatch *bm, sk_header *h);

void sk_bgmatch_log(const sk_bgmatch *bm);

typedef struct sk_artifact_opts {
    double detect_sigma;    /* a footprint starts where the residual of the
                               input (or its 5x5 mean) exceeds this many
                               sigmas (default 5) */
    double grow_sigma;      /* and extends over connected pixels above this
                               (default 2.5) */
    long grow_px;           /* then grows by this many pixels (default 2) */
    double max_fraction;    /* masked when the footprint is significant in
                               at most this fraction of the inputs covering
                               it (default 0.5: a minority, or one of two) */
    double mismatch;        /* PSF-model error: this fraction of the
                               reference's signal, in quadrature (0.05) */
    double core_snr;        /* star cores: pixels where the reference's SNR
                               exceeds this, grown by 2 px (default 30) */
    double core_mismatch;   /* the PSF-model error term there (0.1): a
                               star core is masked only for an excess well
                               beyond what PSF errors can make */
    long psf_size;          /* PSF stamps for matching the reference to each
                               input (odd, default 31) */
    double match_regularization; /* lambda of that matching (default 0.05:
                               the reference is sharpened at most about
                               10 times at any frequency) */
    unsigned mask_flags;    /* default SK_COADDX_MASK_DEFAULT */
    int threads;            /* 0: every online core */
} sk_artifact_opts;

void sk_artifact_opts_default(sk_artifact_opts *o);

/* A run of masked pixels [x0, x1) of row y of one input. */
typedef struct sk_artifact_run {
    int input;
    long y, x0, x1;
} sk_artifact_run;

typedef struct sk_artifact_masks {
    int n;
    long width, height;
    sk_artifact_run *runs;   /* by input, then row, then x */
    long nruns;
    long *first;             /* runs of input j: [first[j], first[j+1]) */
    long *npixels;           /* masked pixels per input */
    long *nfootprints;       /* masked footprints per input */
    long nprotected;         /* footprints not masked: significant in most
                                of the inputs covering them, or overlapping
                                a stronger one of another input */
} sk_artifact_masks;

/* Artifact masks of n whole inputs (row0 0, nrows height) against a
 * reference coadd of them (ref_sci, ref_weight: width x height; the
 * clipped mean, or the PSF-matched coadd) whose PSF is `ref_psf`.
 * For each input j the reference is first brought to the input's PSF
 * (psfmatch with the input's PSF as the target: convolved for broader
 * seeing, sharpened with regularisation match_regularization for sharper),
 * so that seeing differences cancel around sources while the input keeps
 * its own pixels. Without ref_psf (NULL), and near edges and masks, the
 * reference is used as it is. The residual D_j - R_j has the variance
 *     1/w_j + 1/w_R             (of the matched reference; 1/w_j - 1/w_C,
 *                                at least 1/(4 w_j), for the plain
 *                                difference: C is the inverse-variance
 *                                mean including j)
 *   + poisson_j * max(C, 0)     (the source's own noise)
 *   + (f C)^2                   (PSF model errors: f = mismatch, or
 *                                core_mismatch in star cores);
 * positive footprints of it (cosmic rays, satellite trails, ghosts: light
 * added to one exposure), detected on the residual or on its 5x5 mean,
 * that are significant in at most max_fraction of the inputs covering them
 * (each other input's residual summed over the footprint) are masked in
 * that input, grown by grow_px, unless they overlap a stronger footprint
 * of another input (that artifact's light leaking into the reference,
 * ringing where the reference was sharpened).
 * Memory: two float planes per input. The result does not depend on the
 * thread count. */
int sk_artifact_find(const sk_aligned_input *in, int n, long width, long height,
                     const float *ref_sci, const float *ref_weight, sk_psf_stamp_fn ref_psf,
                     void *ref_psf_ctx, const sk_artifact_opts *opts, sk_artifact_masks **out);

/* The masks as the coadd makes them: sk_artifact_find against the
 * inverse-variance mean of the inputs, a reference whose PSF is known
 * exactly (the mean of their PSFs with weights 1/sigma_j^2, sigma_j from the
 * median weight). (A clipped mean keeps artifacts out of the reference,
 * but its PSF around bright stars, where seeing differences get clipped,
 * is not known; the artifacts' leak into the mean is told apart by the
 * overlap rule.) */
int sk_artifact_detect(const sk_aligned_input *in, int n, long width, long height,
                       const sk_artifact_opts *opts, sk_artifact_masks **out);

void sk_artifact_masks_free(sk_artifact_masks *m);

/* 1 when pixel (x, y) of input j is masked. */
int sk_artifact_masked(const sk_artifact_masks *m, int j, long x, long y);

/* Apply the mask of input j to rows [y0, y1) of its planes (holding
 * (y1-y0)*width values from row y0): weight 0 and SK_FLAG_REJECTED (flags
 * may be NULL). Returns the number of pixels masked. */
long sk_artifact_apply_rows(const sk_artifact_masks *m, int j, long y0, long y1, float *weight,
                            uint16_t *flags);

/* The PSF of an input whose model is in its own pixels, seen on the output
 * grid: at output (x, y) the input position and the local Jacobian J
 * (input pixels per output pixel, central differences through both WCSs)
 * are found; output stamp pixel offset d has the model value at input
 * offset J d (Lanczos-3 on the model's grid), times |det J|, and the stamp
 * is normalised to unit sum. (The model is already integrated over an input
 * pixel; for grids of similar pixel scale that is the output pixel's
 * integral to first order.) */
typedef struct sk_grid_psf {
    const struct sk_psf *psf;
    const struct sk_wcs *in_wcs;
    const struct sk_wcs *out_wcs;
} sk_grid_psf;

/* An sk_psf_stamp_fn; ctx is an sk_grid_psf. */
int sk_grid_psf_stamp(void *ctx, double x_px, double y_px, long size, float *stamp);

/* An sk_pixel_map_fn through the two WCSs of an sk_grid_psf (its psf may
 * be NULL): output pixels to input pixels. */
int sk_grid_map(void *ctx, long n, const double *x_px, const double *y_px, double *xi_px,
                double *yi_px);

#ifdef __cplusplus
}
#endif
#endif
