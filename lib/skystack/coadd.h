/* coadd.h: coadding images: output grids, the interpolated pixel mapping
 * between grids, resampling kernels, photometric scaling, the combine
 * methods, and the banded, threaded coadd engine with its products.
 *
 * Flux convention (coadd(1)). Pixel values of a resampled image and of a
 * coadd are flux per pixel: background-subtracted counts scaled to the
 * common zero point (m = -2.5 log10(sum of pixels) + MAGZERO). Resampling
 * multiplies each value by the output/input pixel-area ratio taken from
 * the local Jacobian of the mapping (SWarp's FSCALASTRO VARIABLE), so that
 * surface brightness and every source's total flux are conserved.
 *
 * Noise convention. WGT of a resampled image or coadd is the inverse of the
 * true variance of each output pixel: the kernel k applied to input pixels
 * of variance V gives area^2 * sum(k^2) * V (the local V is taken at the
 * nearest input pixel). The kernel correlates neighbouring pixels: the
 * variance of a sum over an aperture much larger than the kernel is
 * VARCORR (header keyword, >= 1) times the sum of the per-pixel variances.
 * Inputs are combined with weights proportional to the inverse of their
 * large-scale variance per output pixel: area * V * scale^2 where output
 * pixels are no larger than input pixels (the kernel averages, the sum
 * over an aperture keeps the input's variance; this weight depends
 * smoothly on position, not on the sub-pixel phase), and the per-pixel
 * variance where it is larger (output pixels much larger than input
 * pixels sample the input at nearly independent points).
 *
 * Pixel coordinates are 0-based (see wcs.h). */
#ifndef SKYSTACK_COADD_H
#define SKYSTACK_COADD_H

#include <stdint.h>
#include "fits.h"
#include "header.h"
#include "image.h"
#include "wcs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_COADD_PROV_LEN 21

/* ---- kernels (resample.c) ------------------------------------------- */

enum sk_kernel {
    SK_KERNEL_LANCZOS3 = 0, /* sinc(x) sinc(x/3), |x| < 3: 6x6 taps (default) */
    SK_KERNEL_LANCZOS2 = 1, /* sinc(x) sinc(x/2), |x| < 2: 4x4 taps */
    SK_KERNEL_BILINEAR = 2  /* 1 - |x|, |x| < 1: 2x2 taps */
};

/* "lanczos3", "lanczos2", "bilinear" (case-insensitive); SK_EINPUT else. */
int sk_kernel_from_name(const char *name, int *kernel);
const char *sk_kernel_name(int kernel);

/* ---- output grids (coadd_grid.c) ------------------------------------- */

typedef struct sk_grid {
    long width, height;
    sk_wcs *wcs;            /* owned */
    sk_header *header;      /* the WCS cards of the grid (owned) */
} sk_grid;

/* The grid of an existing WCS and size (e.g. one input's: the coadd of
 * the alignment image lands on that image's own pixels). */
int sk_grid_from_wcs(const sk_wcs *wcs, long width, long height, sk_grid **out);
/* A TAN grid centred on (ra, dec): north up, east left (CD1_1 < 0), the
 * centre of the grid at the tangent point, `rotation_deg` turning the
 * pixel axes counter-clockwise on the sky (0 for north up). */
int sk_grid_tan(double ra_deg, double dec_deg, long width, long height,
                double pixel_scale_arcsec, double rotation_deg, sk_grid **out);
/* A north-up TAN grid covering the union of n images (their WCS and
 * sizes), tangent point at the centre of the union, pixel scale
 * `pixel_scale_arcsec` (<= 0: the finest of the inputs' central scales). */
int sk_grid_union(int n, const sk_wcs *const *wcs, const long *width, const long *height,
                  double pixel_scale_arcsec, sk_grid **out);
void sk_grid_free(sk_grid *g);

/* ---- the pixel mapping (pixmap.c) ------------------------------------ */

/* ---- combine methods (combine.c) -------------------------------------- */

enum sk_combine_method {
    SK_COMBINE_MEAN = 0,    /* inverse-variance weighted mean */
    SK_COMBINE_CLIPPED = 1, /* weighted mean after iterative kappa-sigma
                               rejection around a weighted median */
    SK_COMBINE_MEDIAN = 2   /* median of the contributing values */
};

/* "mean", "clipped", "median" (case-insensitive): SK_EINPUT else; for
 * zogy and psfmatch the message points to sk_coaddx_method_from_name
 * (coaddx.h), which runs them. */
int sk_combine_from_name(const char *name, int *method);
const char *sk_combine_name(int method);

typedef struct sk_combine_params {
    int method;             /* enum sk_combine_method */
    double clip_sigma;      /* kappa (default 3) */
    int clip_iterations;    /* at most this many passes (default 3) */
    double clip_ampfrac;    /* further allowed deviation, as a fraction of
                               the centre (SWarp's CLIP_AMPFRAC; default 0.3) */
} sk_combine_params;

/* ---- the coadd (direct.c, coadd_io.c) ---------------------------------- */

/* One input: pixels in memory or in a file, its WCS, background, zero
 * point and observing metadata. */
typedef struct sk_coadd_input {
    const sk_image *image;         /* in memory; else read in bands from path */
    const char *path;              /* science file (with opts as sk_fits_read_image) */
    sk_read_opts read;             /* HDUs, noise and mask files of path */
    const sk_wcs *wcs;             /* solved WCS; NULL: that of the image header */
    const float *background;       /* background map (width x height), or NULL */
    const char *background_path;   /* or a FITS image holding it */
    const char *background_hdu;    /* its HDU (NULL: first image) */
    double background_level;       /* without a map: this constant (ADU) */
    double noise_rms;              /* ADU; used only when the weights are
                                      relative: variance = rms^2 / weight */
    double weight_scale;           /* absolute weights are multiplied by it
                                      (1, the default; <= 0 counts as 1) */
    double zero_point;             /* m = -2.5 log10(ADU) + zero_point; NAN: none */
    double gain;                   /* e-/ADU for the source noise in clipping; <= 0: unknown */
    double mjd_start;              /* NAN: from MJD-OBS */
    double exptime_s;              /* NAN: from EXPTIME */
    double mjd_end;                /* NAN: MJD-END, else start + exptime */
    const char *filter;            /* NULL: from FILTER */
    const char *name;              /* in messages (NULL: path) */
} sk_coadd_input;

/* An input with no pixels, background 0, NAN metadata and zero point. */
void sk_coadd_input_init(sk_coadd_input *in);

typedef struct sk_coadd_params {
    sk_combine_params combine;
    int kernel;                    /* enum sk_kernel */
    double zero_point;             /* common zero point; NAN: the reference input's */
    int reference;                 /* input whose zero point is the default (0-based) */
    double tolerance_px;           /* pixel-mapping error bound (default 0.001) */
    int threads;                   /* >= 1; the output does not depend on it */
    long band_rows;                /* output rows per band (0: 256); the
                                      output does not depend on it */
    void (*progress)(void *ctx, long rows_done, long rows_total);
    void *progress_ctx;
} sk_coadd_params;

void sk_coadd_params_default(sk_coadd_params *p);

/* Per-input facts of a coadd (for logs, headers, database rows). */
typedef struct sk_coadd_input_info {
    double flux_scale;       /* 10^(0.4 (zp_out - zp_in)) */
    long npixels;            /* output pixels it contributed to */
    int map_step;            /* pixel-mapping node spacing (0 = exact) */
    double map_error_px;     /* measured mapping error */
    double mjd_start, mjd_end, exptime_s;
    double mean_cweight;     /* mean combine weight where it contributed */
} sk_coadd_input_info;

typedef struct sk_coadd_result {
    sk_image *image;         /* SCI, WGT (1/variance per pixel), FLG; header
                                with the WCS and the coadd keywords */
    int32_t *nimg;           /* inputs contributing to each pixel */
    float *score;            /* the proper coadd's score image S (matched
                                filter in units of its noise), or NULL */
    long nrejected;          /* input pixels rejected by clipping */
    double varcorr;          /* large-scale / per-pixel variance (mean) */
    double zero_point;       /* MAGZERO */
    double gain;             /* effective e- per coadd count (0 unknown) */
    int ninputs;
    sk_coadd_input_info *info; /* ninputs entries, in input order */
    double *ncorr;           /* the pixels' noise correlation over lags
                                -ncorr_r..ncorr_r on both axes ((2r+1)^2,
                                row-major, 1 at lag 0) that resampling left;
                                NULL: white noise (or not modelled) */
    long ncorr_r;
} sk_coadd_result;

/* Resample every input onto `grid` band by band and combine. Inputs must
 * share one filter (SK_EINPUT naming the odd one), have a WCS, and a zero
 * point unless all lack one (then no scaling, MAGZERO absent). Memory:
 * the output plus, per band, the input rectangles it needs. The result is
 * bit-identical for any thread count and band height. */
int sk_coadd_run(const sk_coadd_input *in, int n, const sk_grid *grid,
                 const sk_coadd_params *p, sk_coadd_result **out);
void sk_coadd_result_free(sk_coadd_result *r);

/* Write SCI, WGT, FLG and NIMG (16-bit unsigned, 32-bit when a pixel has
 * more than 65535 inputs) atomically. `opts` may be NULL. */
int sk_coadd_write(const char *path, const sk_coadd_result *r, const sk_write_opts *opts);

/* ---- the coadd PSF (coadd_psf.c) -------------------------------------- */

struct sk_psf;

/* ---- the coadd pipeline (coadd_pipeline.c) --------------------------- */

struct sk_config;
struct sk_db;

/* What the coadd program does, as one library call (refmake builds its
 * coadds through it). The coaddition section of the configuration gives
 * the method, kernel, grid, zero point and clipping; its critical keys
 * and the inputs' preprocessing and extraction provenances make the
 * coaddition provenance. */
typedef struct sk_coadd_request {
    const struct sk_config *config;
    struct sk_db *db;                /* NULL: files only (coadd --no-db) */
    const char *const *inputs;       /* image ids or paths (with db: paths in
                                        the data root); duplicates count once */
    int ninputs;
    /* Without a database, each input's extraction products are found
     * beside it (or in products_dir) under extract's names,
     * BASE.PROVPREFIX.bkg.fits and BASE.PROVPREFIX.psf, where PROVPREFIX
     * starts the extraction provenance the configuration gives for that
     * image; or they are given here (NULL, or ninputs entries, NULL
     * entries meaning "look beside it"). */
    const char *products_dir;
    const char *const *backgrounds;  /* background products or maps */
    const char *const *psfs;         /* PSFEx files */
    const char *const *weights;      /* separate weight files (inverse variance) */
    const char *const *masks;        /* separate data-quality masks (0 = good) */
    const double *zero_points;       /* NAN entries: from zero_point_key */
    const char *zero_point_key;      /* header keyword (NULL: MAGZERO) */
    int no_psf;                      /* 1: inputs need no PSF (no coadd PSF) */
    const char *hdu;                 /* science HDU of the input files (NULL:
                                        SCI, else the first image) */
    const char *weight_hdu;          /* without a database: the inputs' noise
                                        plane HDU (in `weights` files, else in
                                        the input file; NULL: found by name) */
    const char *mask_hdu;            /* likewise the inputs' mask HDU */
    int skip_incomplete;             /* 1: inputs without the products of the
                                        configured extraction are left out
                                        (a selection), not an error */
    const char *output;              /* without a database: the coadd file
                                        (NULL: outdir/coadd-PROV-SET.fits) */
    const char *outdir;              /* NULL: "." */
    int threads;                     /* >= 1 */
    long band_rows;                  /* 0: default */
    int progress;                    /* 1: progress lines on stderr */
    int extract;                     /* -1: coaddition.extraction decides;
                                        0 no, 1 yes */
} sk_coadd_request;

typedef struct sk_coadd_made {
    char path[4096];                 /* the coadd file */
    long long image_id;              /* its images row (0 without database) */
    int reused;                      /* 1: it existed and was not rebuilt */
    int ninputs;                     /* distinct inputs */
    char prov_id[SK_COADD_PROV_LEN];/* coaddition provenance */
} sk_coadd_made;

/* How the bands of a multi-band detection image combine (chi2.c). */
typedef enum sk_detcombine {
    SK_DETCOMB_CHI2 = 0,    /* chi^2 = sum z_b^2 as its Wilson-Hilferty normal deviate */
    SK_DETCOMB_CHI_MEAN,    /* (sqrt(chi^2) - mu_k) / sqrt(k - mu_k^2), SWarp's CHI-MEAN */
    SK_DETCOMB_CHI2_POS,    /* chi^2_+ = sum max(z_b, 0)^2 through its null law */
    SK_DETCOMB_SED          /* SED-matched: sum w_b z_b / sqrt(sum w_b^2) */
} sk_detcombine;

typedef struct sk_detimage_params {
    sk_detcombine combine;
    double fwhm_px;         /* > 0: each band's matched-filter significance
                               of a point source of this FWHM; 0: pixels' own */
    const double *sed;      /* SK_DETCOMB_SED: the SED's relative flux in each
                               band (n values >= 0); NULL: flat (equal) */
} sk_detimage_params;

/* "chi2", "chi-mean", "chi2-positive", "sed" (SK_EINPUT otherwise). */
int sk_detcombine_from_name(const char *name, sk_detcombine *out);
const char *sk_detcombine_name(sk_detcombine c);

/* The multi-band detection image (chi2.c) of n >= 2 coadds of several
 * filters on one grid (same size, and the same sky at the corners and
 * centre within a milliarcsecond; else SK_EINPUT naming the band): per band
 * z_b, with p->fwhm_px > 0 the matched-filter significance of a point
 * source of that FWHM (extract's background and Gaussian matched filter,
 * normalised by the filtered noise of WGT_b), with 0 the pixel's own
 * (S_b - median) sqrt(WGT_b); each rescaled to a robust (MAD) sigma of 1.
 * Per pixel, over the k bands with data there, p->combine makes of them a
 * statistic that is close to N(0, 1) on pure noise (except chi-mean, whose
 * noise is the skewed chi law, centred and scaled), so that extract(1)
 * detects on it with its usual thresholds:
 *   chi2: chi^2 = sum z_b^2 (Szalay, Connolly & Szokoly 1999) as the
 *     Wilson-Hilferty deviate ((chi^2/k)^(1/3) - (1 - 2/9k)) / sqrt(2/9k);
 *   chi-mean: (sqrt(chi^2) - mu_k) / sqrt(k - mu_k^2), mu_k the mean of the
 *     chi law of k degrees of freedom (SWarp's CHI-MEAN; k = 1: z_b);
 *   chi2-positive: chi^2_+ = sum max(z_b, 0)^2 (Lang & Hogg), whose null
 *     law is the binomial mixture of chi^2_j (j = 0..k bands positive),
 *     as the normal deviate of its upper tail (the atom at 0: the mean of
 *     the normal's lower tail of mass 2^-k);
 *   sed: the SED-matched significance sum w_b z_b / sqrt(sum w_b^2) with
 *     w_b = SED_b 10^(0.4 MAGZERO_b) / noise_b(pixel) (Lang & Hogg), the
 *     optimal linear detection of a source of that SED (flat by default;
 *     MAGZERO ignored unless every band has it).
 * Weight 1 where a band has data, else 0 (EDGE); flags the OR of the
 * bands'; header: band 1's WCS, DETIMAGE (CHI2, CHI-MEAN, CHI2-POS or
 * SED), CHI2COMB, CHI2NBND, CHI2FWHM, CHI2BNDn (filters), CHI2SEDn (sed). */
int sk_chi2_detection(const sk_image *const *bands, int n, const sk_detimage_params *p, sk_image **out);

/* Make (or find) the coadd. Errors name the input or option at fault:
 * SK_EINPUT (an input without its products, different filters, bad
 * options), SK_ENOTFOUND (no input), SK_EIO (files, database). */
int sk_coadd_make(const sk_coadd_request *rq, sk_coadd_made *out);

/* A selection of a coadd's inputs by place and time (coadd(1) --ra/--dec
 * or --target). */
typedef struct sk_coadd_place {
    int has_point;                   /* 1: the images containing (ra_deg, dec_deg) */
    double ra_deg, dec_deg;
    const char *target, *section;    /* else those of the target (and section) */
    const char *filter;              /* required */
    int has_min_mjd, has_max_mjd;    /* the range; a missing end is
                                        coaddition.date_range days from the
                                        other, the upper end now */
    double min_mjd, max_mjd;
} sk_coadd_place;

/* The ids of the science images of the place, filter and time range that
 * have extraction products, in the query's order (*ids malloc'd).
 * SK_ENOTFOUND naming the selection when there is none. */
int sk_coadd_select(struct sk_db *db, const struct sk_config *cfg, const sk_coadd_place *place,
                    long long **ids, int *n);

#ifdef __cplusplus
}
#endif
#endif
