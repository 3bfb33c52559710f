/* calib_internal.h: the library's own part of skystack/calib.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_CALIB_INTERNAL_H
#define SK_CALIB_INTERNAL_H

#include "skystack/calib.h"
#include "astrom_internal.h"
#include "photcal_internal.h"
#include "extract/psf_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

void sk_calib_params_default(sk_calib_params *p);

/* Fill from the extraction section of a configuration (the whole
 * configuration's JSON object): psf, astrometry, photometric. */
int sk_calib_params_from_json(const json_t *root, sk_calib_params *p);

void sk_calib_params_clear(sk_calib_params *p);

struct sk_calib;

/* Open the reference catalogue of p (when there is one and it is not
 * open): `db` for a "db:" catalogue. */
int sk_calib_open_catalog(sk_calib_params *p, sk_db *db);

/* The reference rows of an image (calib_refcat.c), from p->catalog, else
 * from the files p->refcat lists (opened for the call): those in and around its
 * footprint (header WCS, grown by the astrometric search radius and
 * catalog_margin_arcmin), carried to its MJD-OBS, as c->refcat (primary
 * band for the pattern match, positional errors) and c->phot_ref
 * (magnitudes in the image's band through its colour transformation, else
 * the catalogue band named like the filter, else the first). */
int sk_calib_reference_rows(const sk_image *img, const sk_calib_params *p, struct sk_calib *c);

typedef struct sk_calib {
    sk_psf *psf;                 /* NULL when the image has too few stars */
    char psf_note[512];          /* why there is no PSF */
    double *flux_psf, *flux_psf_err; /* per source (ADU); NULL without PSF */
    double *psf_chi2;            /* per source: the PSF fit's reduced chi^2 */
    sk_refcat *refcat;           /* NULL without a catalog: the rows around
                                    the footprint at the image's epoch */
    sk_refcat *phot_ref;         /* the same rows with magnitudes in the
                                    image's band (NaN where not usable) */
    const sk_colour_term *colour;/* the transformation used, NULL: none */
    char phot_band[SK_CAT_BANDLEN]; /* catalogue band used without one */
    double epoch_yr;             /* the image's epoch (NaN: not propagated) */
    sk_astrom_result *astrom;    /* NULL without a catalog */
    sk_photcal *photcal;         /* NULL without a catalog */
    double sigma_bg_adu;         /* median background noise per pixel */
    double fwhm_arcsec;          /* PSF FWHM (through the solved WCS, else the
                                    header's); NaN when unknown */
} sk_calib;

/* Calibrate an extracted image:
 * 1. the PSF (sk_psf_build); too few stars is not an error: psf stays
 *    NULL, psf_note says why, and a warning is logged;
 * 2. PSF-fit fluxes of every source; with extraction parameters xp (NULL:
 *    none), the second detection pass (sk_residual_pass), which may add
 *    sources to r->sources;
 * 3. with a catalog: the astrometric solution from the header WCS, then
 *    the zero point (PSF-fit fluxes, else the largest aperture), the
 *    aperture corrections (from the PSF model when there is one) and the
 *    5-sigma limiting magnitude at the image centre (in the median noise
 *    of the central half of the image: on a coadd of dithered exposures
 *    the depth where every input covers). A failure of either
 *    is the calibration's failure: SK_ENOTFOUND (too few matches or stars)
 *    or SK_EINPUT (no WCS in the header, unreadable catalog), with the
 *    message saying why. */
int sk_calib_run(const sk_image *img, sk_extract_result *r, const sk_calib_params *p,
                 const sk_extract_params *xp, int threads, sk_calib **out);

void sk_calib_free(sk_calib *c);

/* Add to a source table made from the same list: FLUX_PSF, FLUXERR_PSF
 * (when there is a PSF) and MAG_PSF (with a zero point), and header cards
 * PSF_FWHM, MAGZERO, MAGZERR, MAGZNSTR, LIMMAG, APCORn, ASTRRMS, ASTRNMAT. */
int sk_calib_annotate_table(const sk_calib *c, sk_table *t);

/* The solved WCS as text: 80-character header cards, one per line, ending
 * with END (the ".head" form SCAMP writes; SWarp reads the form but
 * ignores SIP). malloc'd;
 * NULL without a solution. */
char *sk_calib_head_text(const sk_calib *c);

/* Write that text to `path` atomically. */
int sk_calib_write_head(const char *path, const sk_calib *c);

/* Database rows of the calibration of image `image_id` under extraction
 * provenance `prov_id`, in the caller's transaction: psfs (when there is a
 * PSF: rel_psf is its path in the data root, psf_path the file), and with
 * a catalog world_coordinates (header text, rms, matches; rel_head and
 * head_path the .head product) and zero_points (zp, dzp, aperture radii
 * and corrections, limiting magnitude, stars); the image's fwhm_estimate
 * (PSF), zero_point_estimate and lim_mag_estimate, and its centre,
 * corners, bounding box and radius from the solved WCS. Rows of this
 * image and provenance that exist already are updated in place (their
 * ids stay). */
int sk_calib_db_save(sk_db *db, const char *image_id, const char *prov_id, const sk_calib *c,
                     const char *rel_psf, const char *psf_path, const char *rel_head,
                     const char *head_path, long width, long height);

#ifdef __cplusplus
}
#endif
#endif
