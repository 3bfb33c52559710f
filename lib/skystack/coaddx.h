/* coaddx.h: the coadds beyond the direct stack, on inputs already resampled
 * to the output grid: the proper coadd of Zackay & Ofek (2017) (zogy.c),
 * the PSF-matched coadd (psfmatch.c), background matching between
 * overlapping inputs (bgmatch.c) and per-input artifact masks (artifact.c).
 *
 * Conventions shared by all of them:
 * - An input is an aligned plane set on the output grid (width x height,
 *   row-major, 0-based pixel centres): science already background
 *   subtracted and scaled, inverse-variance weight (0 = no data) and flags.
 *   A plane set may hold only a band of rows (row0, nrows) so that callers
 *   can stream large images; rows it does not hold count as no data.
 * - A pixel is usable when its weight is > 0 and finite, its value finite,
 *   and it carries none of the `mask_flags` bits.
 * - A PSF is given by a callback that fills a size x size stamp (size odd)
 *   with the PSF at output-grid position (x, y): unit sum, sampled on the
 *   output grid, centred on the stamp's central pixel (a point source on a
 *   pixel centre). Callbacks are called under a lock, one at a time.
 * - Results are identical to the bit for any thread count: the image is cut
 *   into tiles on a fixed grid and every output pixel comes from one tile. */
#ifndef SKYSTACK_COADDX_H
#define SKYSTACK_COADDX_H

#include <stdint.h>
#include "header.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill `stamp` (size*size floats) with the PSF at (x_px, y_px); return 0,
 * or a status after sk_error(). */
typedef int (*sk_psf_stamp_fn)(void *ctx, double x_px, double y_px, long size, float *stamp);

typedef struct sk_aligned_input {
    const float *sci;        /* rows [row0, row0+nrows) of the output grid */
    const float *weight;     /* inverse variance, 0 = no data */
    const uint16_t *flags;   /* may be NULL */
    long row0, nrows;        /* nrows 0 (or sci NULL): no data in any row */
    sk_psf_stamp_fn psf;     /* the input's PSF on the output grid */
    void *psf_ctx;
    double flux_scale;       /* F_j: sci = F_j * flux at the common zero point
                                (1 when the inputs are already scaled to it) */
    double sigma;            /* sigma_j: background noise of sci; <= 0: from
                                the weight, 1/sqrt(median weight) */
} sk_aligned_input;

/* Input flag bits that make a pixel unusable by default: every bit of
 * enum sk_flag (those the direct coadd refuses, plus REJECTED, the bit the
 * artifact masks set). */
#define SK_COADDX_MASK_DEFAULT 0x1ffu

/* ---- zogy.c: the proper coadd --------------------------------------- */

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
 * rows the input holds) and the flux scale F_R = sqrt(sum F_j^2/sigma_j^2).
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
 * - flags: SK_FLAG_INTERPOLATED (plus the masked input bits) within about
 *   one PSF FWHM of an in-painted pixel of a contributing input; where no
 *   input covers, the OR of the inputs' flags, or SK_FLAG_EDGE.
 * - nimg: the number of inputs contributing. */
int sk_zogy_rows(sk_zogy *z, long y0, long y1, float *sci, float *weight, uint16_t *flags,
                 uint16_t *nimg);

/* The PSF of the proper coadd at (x, y) where every input covers:
 * P_R ∝ |sqrt(sum_j F_j^2/sigma_j^2 |P_j|^2)| in Fourier space, as a
 * size x size stamp (odd size) with unit sum, centred like the inputs'. */
int sk_zogy_psf(sk_zogy *z, double x_px, double y_px, long size, float *stamp);

#ifdef __cplusplus
}
#endif
#endif
