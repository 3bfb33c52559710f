/* coaddx.h: the coadds beyond the direct stack, on inputs already resampled
 * to the output grid: the proper coadd of Zackay & Ofek (2017) (zogy.c),
 * the PSF-matched coadd (psfmatch.c), background matching between
 * overlapping inputs (bgmatch.c) and per-input artifact masks (artifact.c);
 * an input's PSF model seen on the grid (gridpsf.c); and all of them run on
 * real inputs the way the coadd engine reads and resamples them
 * (coaddx_run.c, what `coadd --method zogy|psfmatch`, --background-match
 * and --artifact-masks use).
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
 *   pixel centre). Callbacks are called under a lock, one at a time. The
 *   stamps are then normalised and their noise-only frequencies cut (an
 *   empirical model's pixel noise; see aligned_util.c).
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

/* Input pixel positions (xi, yi) (0-based) of n output positions (x, y);
 * return 0, or a status after sk_error(). */
typedef int (*sk_pixel_map_fn)(void *ctx, long n, const double *x_px, const double *y_px,
                               double *xi_px, double *yi_px);

/* Input flag bits that make a pixel unusable by default: every bit of
 * enum sk_flag (those the direct coadd refuses, plus REJECTED, the bit the
 * artifact masks set). */
#define SK_COADDX_MASK_DEFAULT 0x1ffu

/* ---- zogy.c: the proper coadd --------------------------------------- */

/* ---- psfmatch.c: inputs convolved to one target PSF -------------------- */

enum sk_psf_target_kind {
    SK_TARGET_BROADEST = 0, /* the input PSF with the largest FWHM at the
                               centre of the grid (the default) */
    SK_TARGET_INPUT = 1,    /* the PSF of input `input` */
    SK_TARGET_GAUSSIAN = 2, /* a circular Gaussian of FWHM fwhm_px */
    SK_TARGET_MOFFAT = 3    /* a circular Moffat of FWHM fwhm_px, beta */
};

typedef struct sk_psf_target {
    int kind;               /* enum sk_psf_target_kind */
    int input;              /* SK_TARGET_INPUT */
    double fwhm_px;         /* analytic targets (integrated over pixels,
                               truncated at the stamp's inscribed circle) */
    double moffat_beta;
} sk_psf_target;

/* ---- bgmatch.c: background matching between overlapping inputs --------- */

/* ---- artifact.c: per-input artifact masks ------------------------------ */

/* ---- gridpsf.c: an input's PSF model on the output grid ---------------- */

struct sk_psf;
struct sk_wcs;

/* ---- coaddx_run.c: these methods and steps on real inputs ------------- */

struct sk_coadd_input;
struct sk_grid;
struct sk_coadd_params;
struct sk_coadd_result;

enum sk_coaddx_method {
    SK_COADDX_DIRECT = 0,   /* the combine method of the coadd parameters
                               (mean, clipped, median) */
    SK_COADDX_ZOGY = 1,     /* the proper coadd */
    SK_COADDX_PSFMATCH = 2  /* PSF-matched, then the configured combine */
};

/* "zogy" and "psfmatch" (case-insensitive): 1 and the method; other names
 * (the direct methods): 0. */
int sk_coaddx_method_from_name(const char *name, int *method);
const char *sk_coaddx_method_name(int method);

typedef struct sk_coaddx_params {
    int method;             /* enum sk_coaddx_method */
    int background_match;   /* 1: match the inputs' backgrounds first */
    int background_degree;  /* 0 constant, 1 plane */
    int artifact_masks;     /* 1: mask artifacts per input first */
    sk_psf_target target;   /* psfmatch target (fwhm in output pixels) */
    long psf_size;          /* PSF stamps on the grid (odd; 0: the largest
                               input model, scaled to the grid's pixels) */
    long tile_px;           /* zogy and psfmatch tiles (0: 512); the
                               PSFs are evaluated at every tile's centre */
    size_t rows_bytes;      /* zogy and psfmatch: the inputs' rows held at
                               once (0: 512 MB). With threads, bands of a
                               row of tiles per thread when they fit in it;
                               zogy beyond it makes a band's tiles a group
                               of tile columns at a time (at least one per
                               thread), each group's columns of every input
                               read alone. The result does not depend on
                               it. */
} sk_coaddx_params;

void sk_coaddx_params_default(sk_coaddx_params *x);

/* Coadd n inputs like sk_coadd_run (same reading, background subtraction,
 * zero points, resampling and keywords) with the method and steps of `x`.
 * Each input is resampled onto the grid in turn and its planes kept in a
 * scratch file in $TMPDIR (about 18 bytes per output pixel per input on
 * disk); the steps and methods then read them back band by band
 * (p->band_rows output rows, rounded up to whole rows of tiles for zogy
 * and psfmatch; see x->rows_bytes), so that memory grows with the inputs
 * only as n * 10 bytes per pixel of a band (for zogy at most about
 * x->rows_bytes), plus about 35 bytes per output pixel per thread for the
 * artifact masks. The result does not depend on the band size. psfs[k] is
 * input k's PSF model in its own pixels (needed by zogy, psfmatch and the
 * artifact masks). The result is that of sk_coadd_run, with SCI, WGT,
 * FLG and NIMG of the method, COMBINET naming it, and for zogy MAGZERO =
 * zero point + 2.5 log10(F_R) (ZOGYFR holds F_R) and VARCORR = 1;
 * background offsets as BGOFFn/BGDXn/BGDYn; artifact masks as REJECTED in
 * FLG, counted out of NIMG, ARTPIXn per input. *coadd_psf (may be NULL)
 * receives the coadd's PSF at the centre of the grid for zogy (the
 * analytic P_R) and psfmatch (the target), else NULL. */
int sk_coaddx_run(const struct sk_coadd_input *in, int n, const struct sk_psf *const *psfs,
                  const struct sk_grid *grid, const struct sk_coadd_params *p,
                  const sk_coaddx_params *x, struct sk_coadd_result **out,
                  struct sk_psf **coadd_psf);

#ifdef __cplusplus
}
#endif
#endif
