/* direct_priv.h: the pieces of the coadd engine shared by resample.c, coadd_io.c and coadd.c (not installed). */
#ifndef SKYSTACK_COADD_PRIV_H
#define SKYSTACK_COADD_PRIV_H

#include <stdint.h>
#include "skystack/coadd.h"
#include "coadd_internal.h"
#include "extract/extract_internal.h"

/* Sub-pixel phases per pixel of the tabulated kernels (the largest phase
 * error is 1/(2 * SK_KERNEL_PHASES) px). */
#define SK_KERNEL_PHASES 4096

/* Input flags that keep a pixel out of a coadd (weight 0 is marked with
 * SK_FLAG_ZEROWEIGHT when loading, taps off the input with SK_FLAG_EDGE). */
#define SK_FLAGS_UNUSABLE                                                                 \
    (SK_FLAG_BAD | SK_FLAG_SATURATED | SK_FLAG_COSMIC | SK_FLAG_EDGE | SK_FLAG_INTERPOLATED | \
     SK_FLAG_NONFINITE | SK_FLAG_SATELLITE | SK_FLAG_ZEROWEIGHT)

/* A separable kernel tabulated at SK_KERNEL_PHASES + 1 phases f in [0, 1]:
 * row p holds the weights of taps d = -a+1 .. a at f = p / PHASES,
 * normalised to a sum of 1, and s2[p] their sum of squares. */
typedef struct sk_kernel_table {
    int kernel, a, taps;
    float *w;           /* SK_KERNEL_STRIDE floats per phase, zero after taps */
    float *s2;
    double *autocorr;   /* R(d) = integral of k(u) k(u+d) du of the
                           normalised kernel at d = i / AUTOCORR_RES,
                           i = 0 .. 2a * AUTOCORR_RES */
} sk_kernel_table;

#define SK_KERNEL_AUTOCORR_RES 64
#define SK_KERNEL_STRIDE 8

int sk_kernel_table_init(sk_kernel_table *t, int kernel);
void sk_kernel_table_clear(sk_kernel_table *t);

/* Large-scale noise factor of resampling white noise through a local
 * linear map J = d(input)/d(output) (row-major jxx, jxy, jyx, jyy): the
 * variance of a sum over many output pixels is |det J| * factor times the
 * input variance per output pixel. factor = |det J| * sum over the output
 * lattice of R(dx) R(dy): 1 for identical grids, -> 1 for finer output
 * pixels, > 1 for coarser ones (interpolation then skips information). */
double sk_kernel_noise_factor(const sk_kernel_table *t, const double J[4]);

/* A rectangle of one input in memory, ready for resampling. */
typedef struct sk_band {
    long x0, y0, w, h;        /* input pixels [x0, x0+w) x [y0, y0+h) */
    long in_width, in_height; /* the whole input */
    float *sci;               /* (value - background) * flux scale, followed
                                 by SK_KERNEL_STRIDE zeros (vector loads) */
    float *var;               /* variance of sci (0 where unusable) */
    uint16_t *flags;          /* input flags; ZEROWEIGHT where weight is 0 */
    uint16_t *dil;            /* OR of flags over the taps of a point whose
                                 floor is this pixel: rows y-a+1..y+a,
                                 columns x-a+1..x+a (kept within the band) */
    double poisson_per_area;  /* flux_scale / gain (0: gain unknown) */
    double noise_factor;      /* sk_kernel_noise_factor of this input */
    size_t capacity;          /* pixels the buffers hold (kept between bands) */
    uint16_t *tmp;            /* scratch of the dilation */
} sk_band;

/* Set up b for a rectangle, reusing its buffers when they are large
 * enough (b must be zeroed before its first use). */
int sk_band_alloc(sk_band *b, long x0, long y0, long w, long h, long in_width, long in_height);
/* Make b's buffers hold npx pixels at least (before the first of bands
 * whose largest is known: one allocation instead of one per growth). */
int sk_band_reserve(sk_band *b, size_t npx);
void sk_band_free(sk_band *b);
/* Fill b->dil from b->flags for half-width a. */
int sk_band_dilate(sk_band *b, int a);

/* Per-input values of one output pixel, as the combine step reads them. */
typedef struct sk_stack_entry {
    sk_combine_in in; /* in.cweight = 0: this input gives nothing here */
    uint16_t flags;   /* input flags under the kernel (0: not covered) */
} sk_stack_entry;

/* Resample n output pixels whose input coordinates and area ratios are
 * (xi, yi, area) from band b into out[k * stride] (k < n). Returns the
 * number of pixels that received a value. Taps must lie in the band
 * whenever they lie in the input. */
long sk_band_resample(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
                      const double *yi, const double *area, sk_stack_entry *out, long stride);
/* The weighted mean's sums of one output pixel, added input by input in
 * the order of the inputs (as the combine step adds them: the same bits),
 * and what the pixel's inputs flag. */
typedef struct sk_mean_acc {
    double sc, scv, scvar; /* sums of c, c value, c^2 var over the values used */
    int nc;                /* values used (combine weight > 0) */
    int covered;           /* some input covers the pixel */
    uint16_t used_flags, covered_flags; /* flags of the values used, of the others */
} sk_mean_acc;

/* An input's totals over an output row: pixels it gives a value to and
 * the sum of their combine weights (added in the order of the pixels). */
typedef struct sk_mean_row {
    long npixels;
    double cweight;
} sk_mean_row;

/* sk_band_resample for the weighted mean: each pixel's entry added to
 * acc[k] and row instead of stored. */
long sk_band_resample_mean(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
                           const double *yi, const double *area, sk_mean_acc *acc, sk_mean_row *row);
/* The same without the instruction-set variants (the plain C loop), which
 * give the same entries bit for bit. */
long sk_band_resample_plain(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
                            const double *yi, const double *area, sk_stack_entry *out, long stride);

/* A background map as extract's mesh product (HDU BKGMESH), evaluated a
 * rectangle at a time (coadd_bkg.c), bit for bit as sk_background_read()
 * would fill the whole map. */
typedef struct sk_bkg_mesh sk_bkg_mesh;
int sk_bkg_mesh_read(const char *path, sk_bkg_mesh **out);
void sk_bkg_mesh_free(sk_bkg_mesh *m);
long sk_bkg_mesh_width(const sk_bkg_mesh *m);
long sk_bkg_mesh_height(const sk_bkg_mesh *m);
/* Median background rms (RMSMED), NaN when the file lacks it. */
double sk_bkg_mesh_rms(const sk_bkg_mesh *m);
/* Levels of pixels [x0, x0+w) x [y0, y0+h) into out (w*h, row-major). */
int sk_bkg_mesh_rows(const sk_bkg_mesh *m, long x0, long y0, long w, long h, float *out);
/* The same a row at a time: columns [x0, x0+w) set up once, then the
 * levels of row y into out (w values), the same bits. */
typedef struct sk_bkg_rows sk_bkg_rows;
int sk_bkg_rows_begin(const sk_bkg_mesh *m, long x0, long w, sk_bkg_rows **out);
void sk_bkg_rows_row(sk_bkg_rows *r, long y, float *out);
void sk_bkg_rows_end(sk_bkg_rows *r);

/* Reading bands of an input from memory or from its files (coadd_io.c). */
typedef struct sk_band_source sk_band_source;

/* Open an input: its size, header (file inputs: the science HDU's, merged
 * with the primary when INHERIT), and whether its weights are relative. */
int sk_band_source_open(const sk_coadd_input *in, sk_band_source **out);
void sk_band_source_close(sk_band_source *s);
long sk_band_source_width(const sk_band_source *s);
long sk_band_source_height(const sk_band_source *s);
const sk_header *sk_band_source_header(const sk_band_source *s);
int sk_band_source_relative(const sk_band_source *s);
/* Fill b (allocated for its rectangle) with background-subtracted values
 * times flux_scale, variances times flux_scale^2 (relative weights: with
 * noise_rms^2 / weight) and flags, as sk_fits_read_image would read them. */
int sk_band_source_read(sk_band_source *s, double flux_scale, sk_band *b);
/* Make s's scratch hold bands of npx pixels at least. */
int sk_band_source_reserve(sk_band_source *s, size_t npx);

/* Output rows per band of a coadd of n inputs when none are asked for:
 * 256, and beyond 32 inputs fewer in proportion (at least 32). */
long sk_coadd_default_band_rows(int n);

/* ---- noise_corr.c: the pixel-noise correlation of a resampled coadd */

/* Noise covariance over lags -r..r on both axes ((2r+1)^2, row-major, in
 * units of the plane's own per-pixel variance before resampling) and its
 * value at lag 0, rho; c NULL: white (not resampled). */
typedef struct sk_noise_corr {
    long r;
    double rho;
    double *c;
} sk_noise_corr;

/* The covariance that resampling input in_wcs onto grid with kernel kt
 * leaves, the mean over 16 x 16 pixels spread over the input's output box
 * [x0, x1) x [y0, y1) (sk_resample_noise_at: a distortion moves the
 * kernel's phases across an input). */
int sk_noise_corr_input(const sk_kernel_table *kt, const sk_grid *grid, const sk_wcs *in_wcs, long x0,
                        long y0, long x1, long y1, sk_noise_corr *out);
void sk_noise_corr_clear(sk_noise_corr *c);

/* The coadd's covariance, normalised to 1 at lag 0 (rho = 1): the inputs'
 * covariances weighted by u[j], each input's share of the coadd's
 * variance per unit of its own (c_j^2 sigma_j^2 for combine weight c_j);
 * c NULL when no input with u > 0 is resampled. */
int sk_noise_corr_combine(const sk_noise_corr *const *in, const double *u, int n, sk_noise_corr *out);

/* sqrt(sum_d A(d) Cov(d) / (A(0) Cov(0))), A the autocorrelation of a
 * Gaussian of FWHM fwhm_px: the true noise of a matched filter or PSF fit
 * with that profile over the noise its per-pixel variances predict (1 for
 * white noise). */
double sk_noise_corr_factor(const sk_noise_corr *c, double fwhm_px);

/* The FWHM (output px) of the profile whose factor a coadd states as
 * NOISEPSF: the factor changes by well under 1 % between FWHMs of 2 and
 * 8 px (the correlation reaches 1-2 px, its lobes of both signs cancel). */
#define SK_NOISEPSF_FWHM_PX 4.0

#endif
