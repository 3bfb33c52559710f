/* extract.h: source extraction on an in-memory image: background and rms
 * maps, matched-filter detection, multi-threshold deblending and per-source
 * measurement (windowed centroid, moments, FWHM, aperture and AUTO fluxes,
 * errors, flags), and the source-list table written to FITS.
 *
 * Pixel coordinates in these structs are 0-based (centre of the first pixel
 * is (0, 0), see wcs.h); the FITS source-list table converts them to the
 * 1-based FITS convention. Fluxes are in the units of the science pixels
 * (ADU), sizes in pixels, angles in degrees counter-clockwise from +x.
 * Every call gives identical results for any thread count. */
#ifndef SKYSTACK_EXTRACT_H
#define SKYSTACK_EXTRACT_H

#include <stdint.h>
#include <jansson.h>
#include "image.h"
#include "table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- background (background.c) ---- */

typedef struct sk_background_params {
    int mesh_px;          /* cell size (default 128) */
    int filter_size;      /* median filter over cells, odd (default 3; 1 = none) */
    double clip_sigma;    /* per-cell sigma clipping (default 3) */
    int clip_iterations;  /* at most this many clipping passes (default 5) */
    int sample_step;      /* use every n-th pixel along x and y (default 1;
                             the quick first pass of sk_extract_run uses 2) */
} sk_background_params;

typedef struct sk_background {
    long width, height;        /* of the image */
    int mesh_px;
    long nx, ny;               /* number of cells along x and y */
    float *mesh_level;         /* nx*ny filtered cell levels (ADU) */
    float *mesh_rms;           /* nx*ny filtered cell rms (ADU) */
    float *level;              /* width*height interpolated background (ADU) */
    float *rms;                /* width*height interpolated rms (ADU) */
    double median_level;       /* median of the cell levels (ADU) */
    double median_rms;         /* median of the cell rms (ADU) */
    double level_err;          /* typical 1-sigma error of the level (ADU),
                                  nearly constant over an aperture, so that
                                  an aperture of area A gets A*level_err */
} sk_background;

/* ---- detection (detect.c) and deblending (deblend.c) ---- */

typedef struct sk_detect_params {
    double threshold_sigma;  /* in units of the filtered noise (computed from
                                the kernel and the per-pixel variance), per
                                filtered pixel (default 5) */
    int min_area_px;         /* minimum pixels above threshold (default 5) */
    int filter;              /* 1: Gaussian matched filter, 0: none */
    double fwhm_px;          /* FWHM of the Gaussian filter (seeing, px) */
    int deblend_levels;      /* multi-threshold levels (default 32) */
    double deblend_contrast; /* minimum flux fraction of a branch (0.005) */
} sk_detect_params;

/* One detected object after deblending: its pixels (indices y*width+x). */
typedef struct sk_object {
    long *pix;               /* pixel indices, sorted ascending */
    long npix;
    long parent;             /* index of the segment it came from */
    int nsiblings;           /* objects deblended from the same segment */
} sk_object;

typedef struct sk_detection {
    long width, height;
    float *signif;           /* width*height filtered significance: filtered
                                signal / filtered noise */
    double threshold;        /* in `signif` units (= threshold_sigma) */
    sk_object *objects;      /* after deblending, ordered by segment then
                                position: deterministic */
    long nobjects;
    long nsegments;
    int32_t *segmap;         /* width*height: object index + 1, 0 = none */
    float *variance;         /* width*height per-pixel variance used (ADU^2,
                                0 = no data; see sk_pixel_variance) */
} sk_detection;

/* ---- measurement (measure.c) ---- */

/* Source flag bits (FLAGS column). */
enum sk_source_flag {
    SK_SRC_NEIGHBOURS = 1u << 0, /* other objects' pixels over > 10 % of the AUTO
                                    ellipse (replaced; FLUX_AUTO may be biased) */
    SK_SRC_BLENDED    = 1u << 1, /* deblended from a segment with other objects */
    SK_SRC_SATURATED  = 1u << 2, /* saturated pixel in the footprint */
    SK_SRC_EDGE       = 1u << 3, /* footprint touches the image border or no-data pixels */
    SK_SRC_TRUNCATED  = 1u << 4, /* an aperture or the AUTO ellipse leaves the image
                                    or covers no-data pixels */
    SK_SRC_FLAGGED    = 1u << 5, /* flagged input pixels (FLG) in the footprint or
                                    the 1-FWHM aperture */
    SK_SRC_ARTIFACT   = 1u << 6, /* sharper than the PSF along some axis: cosmic
                                    ray, hot pixel, bad column */
    SK_SRC_WIN_FAILED = 1u << 7, /* windowed centroid did not converge; the
                                    barycentre is used */
    SK_SRC_RESIDUAL   = 1u << 8  /* found by the second detection pass, on the
                                    image less the first pass's PSF models */
};
#define SK_SRC_NFLAGS 9

typedef struct sk_source {
    long number;                 /* 1.. in (ywin, xwin) order */
    double x, y;                 /* isophotal barycentre (px, 0-based) */
    double xwin, ywin;           /* windowed centroid (px, 0-based) */
    double xwin_err, ywin_err;   /* its 1-sigma errors (px) */
    double x2, y2, xy;           /* isophotal second moments (px^2) */
    double a_px, b_px, theta_deg;/* semi-axes and position angle */
    double fwhm_px;              /* from windowed moments, Gaussian profile */
    double flux_iso, flux_iso_err;
    double *flux_aper, *flux_aper_err; /* naper each (owned by the list) */
    double kron_radius;          /* units of a,b */
    double flux_auto, flux_auto_err;
    double peak;                 /* max background-subtracted pixel (ADU) */
    double background;           /* background level at the centroid (ADU) */
    double snr;                  /* flux/error in a circle of radius 1 FWHM */
    long npix;                   /* isophotal area (pixels) */
    long xmin, xmax, ymin, ymax; /* footprint bounding box (0-based) */
    unsigned flags;              /* enum sk_source_flag */
} sk_source;

typedef struct sk_source_list {
    long n;
    sk_source *src;
    int naper;
    double *aper_radius_px;      /* naper radii (px) */
    double fwhm_px;              /* image FWHM used for apertures (px) */
    double *aper_store;          /* 2*n*naper backing store of the flux arrays */
    long *object;                /* per source, the index of the detection
                                    object it was measured from (NULL: not
                                    known) */
} sk_source_list;

/* ---- orchestration (extract.c) ---- */

typedef struct sk_extract_params {
    sk_background_params background;
    sk_detect_params detect;
    double fwhm_guess_px;        /* first matched filter FWHM (px) */
    int refine_fwhm;             /* 1: re-detect with the measured FWHM */
    double *aperture_fwhm;       /* owned */
    int naper;
    double kron_factor, kron_min_radius;
    double gain;                 /* <= 0: from the header keyword gain_key */
    char gain_key[72];
    int second_pass;             /* detection on the image less the PSF
                                    models: 1 always, 0 never, -1 (auto)
                                    when crowding >= crowding_min */
    double crowding_min;         /* share of the clean point sources of
                                    SNR >= 20 deblended from a segment
                                    with others (BLENDED) */
} sk_extract_params;

void sk_extract_params_default(sk_extract_params *p);
/* Fill from the `extraction` section of a configuration (jansson object of
 * the whole configuration). SK_EINPUT naming a bad key. */
int sk_extract_params_from_json(const json_t *root, sk_extract_params *p);
void sk_extract_params_clear(sk_extract_params *p);

typedef struct sk_extract_result {
    sk_background *background;
    sk_detection *detection;
    sk_source_list *sources;
    double fwhm_px;              /* image FWHM finally used */
    double core_fwhm_px;         /* the stars' core FWHM as measured, also
                                    below the range of fwhm_px (px; 0: as
                                    fwhm_px) */
    double gain;                 /* gain used (0 = none) */
} sk_extract_result;

/* The whole extraction: background, detection (refined FWHM), measurement. */
int sk_extract_run(const sk_image *img, const sk_extract_params *p, int threads,
                   sk_extract_result **out);
/* Dual-image mode (as Source Extractor's): background, detection (refined
 * FWHM) and deblending on `det_img`; the background of `img` (the same
 * size, on the same grid) without the detected objects; each object's
 * position, shape, flags, Kron radius and apertures from det_img, its
 * fluxes, errors, peak and background from img. The result's background
 * and gain are img's, its FWHM det_img's. */
int sk_extract_run_dual(const sk_image *det_img, const sk_image *img, const sk_extract_params *p, int threads,
                        sk_extract_result **out);
void sk_extract_result_free(sk_extract_result *r);

/* The source list as a FITS table (EXTNAME SOURCES; columns and units as in
 * extract(1), pixel coordinates 1-based), with RA/DEC when img->wcs is set. */
int sk_source_table(const sk_source_list *l, const sk_image *img, sk_table **out);

/* ---- the extraction of one image with its products (extract_run.c) ---- */

struct sk_config;
struct sk_db;
struct sk_calib_params;

/* The configuration of an extraction, read and checked once: the
 * extraction section's parameters (this header), its calibration
 * parameters (calib.h), its critical parameters (the provenance), the
 * configured thread count and, for the database mode, the data root. */
typedef struct sk_extract_settings {
    sk_extract_params params;
    struct sk_calib_params *calib; /* owned */
    json_t *critical;            /* critical parameters of the extraction section */
    int config_threads;          /* extraction.threads (0: not set) */
    char data_root[4096];        /* database mode: where the products go */
} sk_extract_settings;

/* Read the settings from a configuration (`database`: also the data root).
 * SK_EINPUT naming the bad key. Clear them with sk_extract_settings_clear. */
int sk_extract_settings_read(const struct sk_config *cfg, int database, sk_extract_settings *out);
void sk_extract_settings_clear(sk_extract_settings *s);

/* The parameters of the extraction provenance the configuration gives:
 * its critical extraction keys, the reference catalogue by its id (opened
 * to learn it; `db` for a "db:" catalogue) and not by its path. What the
 * coadd pipeline expects its inputs' extraction products to carry. New
 * reference; NULL with the error set. */
json_t *sk_extract_prov_params(const struct sk_config *cfg, struct sk_db *db);

/* One extraction, as extract(1) runs it on each image. */
typedef struct sk_extract_request {
    const struct sk_config *config;        /* read at the start when settings is NULL */
    const sk_extract_settings *settings;   /* or read once for many images */
    struct sk_db *db;            /* NULL: file-only mode (extract --no-db) */
    const char *image;           /* a path; with db also an image id */
    const char *hdu;             /* science HDU (NULL: SCI, else the first image) */
    const char *weight;          /* separate noise image, of kind weight_kind */
    int weight_kind;             /* enum sk_noise_kind (SK_NOISE_WEIGHT...) */
    const char *mask;            /* separate data-quality mask (non-zero = bad) */
    const char *weight_hdu;      /* file-only: the noise plane's HDU (in `weight`,
                                    else in the image file; NULL: found by name) */
    const char *mask_hdu;        /* file-only: the mask's HDU, likewise */
    const char *detect;          /* dual-image mode (file-only): detect on this
                                    image (same size and grid), measure on `image` */
    const char *outdir;          /* file-only mode: products there, not beside the image */
    int regions;                 /* 1: also a ds9 region file of the detections */
    int full_background;         /* 1: background product with full-resolution maps */
    int update_header;           /* file-only mode: the solved WCS into the image's header */
    int tpv_head;                /* file-only mode: the solved WCS also as TPV
                                    (BASE.PROV8.tpv.head, for SWarp and SCAMP) */
    int threads;                 /* >= 1 */
    int replace;                 /* file-only mode: products of the same provenance
                                    made from other inputs are made anew over them
                                    (the caller has just remade the image), not
                                    refused */
    const char *image_md5;       /* the image file's md5 when the caller has just
                                    written it (32 hex digits), so that it is not
                                    read again to compute it; NULL: computed */
} sk_extract_request;

/* What an extraction made (or found made). Paths of products that were
 * not made are "". */
typedef struct sk_extract_outcome {
    char prov_id[65];            /* the extraction provenance */
    long long image_id;          /* the image's id (0 in file-only mode) */
    int reused;                  /* 1: the products existed and were kept */
    char source_list[4200], background[4200];
    char regions[4200];          /* with request.regions */
    char psf[4200];              /* when the image had enough stars */
    char head[4200];             /* the solved WCS, with a reference catalog */
    char tpv_head[4200];         /* with request.tpv_head: the solved WCS as TPV */
} sk_extract_outcome;

/* Check a request against its settings (file-only options with a
 * database, --update-header without a reference catalog) and make the
 * output directory. sk_extract_image does it too. */
int sk_extract_check(const sk_extract_request *rq, const sk_extract_settings *s);

/* Extract one image: its provenance from the image's and the settings,
 * reuse of existing products (checked under an advisory lock with a
 * database), else read, extract, calibrate, write the source list,
 * background, PSF and WCS products with their sidecars (and regions), and
 * register their rows; a failure leaves no product behind. See extract(1)
 * for the names and places of the products. */
int sk_extract_image(const sk_extract_request *rq, sk_extract_outcome *out);

#ifdef __cplusplus
}
#endif
#endif
