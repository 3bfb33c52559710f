/* astrom.h: astrometric calibration: a reference catalog (FITS table of
 * ra, dec, mag), matching of an image's sources to it that survives an
 * initial WCS wrong by tens of arcseconds, a degree of rotation and a
 * percent of scale (triangle pattern matching of the brightest sources,
 * then iterative nearest neighbours), and a TAN + SIP fit by linear least
 * squares with sigma clipping, giving a WCS (FITS header cards parsed by
 * wcslib), the number of matches and the rms in arcseconds.
 *
 * Positions of sources are the library's 0-based pixels (see wcs.h);
 * catalog positions are taken as they are (no proper motion or epoch
 * propagation), in the frame of the initial WCS (ICRS/FK5 J2000). */
#ifndef SKYSTACK_ASTROM_H
#define SKYSTACK_ASTROM_H

#include <jansson.h>
#include "extract.h"
#include "header.h"
#include "image.h"
#include "wcs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reference catalog ---- */

typedef struct sk_refcat {
    long n;
    double *ra_deg, *dec_deg;  /* n positions */
    double *mag;               /* n magnitudes */
    double *mag_err;           /* n errors (mag), NaN when the catalog has none */
} sk_refcat;

/* Read the first binary table of `path` (or the HDU named after a '[', as
 * cfitsio's "file.fits[REFCAT]"), taking the columns named ra_col, dec_col,
 * mag_col (case-insensitive) and, when mag_err_col is not NULL and the
 * table has it, mag_err_col. Rows whose position or magnitude is not
 * finite are skipped. SK_EINPUT naming the file and the missing column. */
int sk_refcat_read(const char *path, const char *ra_col, const char *dec_col,
                   const char *mag_col, const char *mag_err_col, sk_refcat **out);
/* Append the rows of `more` to `cat` (several catalog files, e.g. Gaia
 * chunks). */
int sk_refcat_append(sk_refcat *cat, const sk_refcat *more);
void sk_refcat_free(sk_refcat *cat);

/* ---- solution ---- */

typedef struct sk_astrom_params {
    int sip_order;               /* 1 (TAN) .. 5; 0 = automatic: the highest of
                                    3, 2, 1 with at least 3 matches per term
                                    of the polynomial (30, 18, 9 matches);
                                    TAN only for fields below 100 px */
    long min_matches;            /* fewer matches: no solution (6) */
    double match_radius_arcsec;  /* final nearest-neighbour radius (2) */
    double search_radius_arcsec; /* largest offset of the initial WCS (60) */
    double max_rotation_deg;     /* largest rotation of the initial WCS (2) */
    double max_scale_error;      /* largest relative scale error (0.02) */
    double clip_sigma;           /* clipping of the fit's residuals (3) */
    long pattern_stars;          /* brightest sources used for the pattern
                                    match (40; the catalog gives 1.5 times
                                    as many) */
} sk_astrom_params;

void sk_astrom_params_default(sk_astrom_params *p);
/* Fill from extraction.astrometry of a configuration (the whole
 * configuration's JSON object). SK_EINPUT naming a bad key. */
int sk_astrom_params_from_json(const json_t *root, sk_astrom_params *p);

typedef struct sk_astrom_result {
    sk_wcs *wcs;                 /* the solution */
    sk_header *header;           /* its cards: TAN or TAN-SIP with CRPIX at the
                                    image centre, CD, A_p_q/B_p_q (no inverse
                                    AP/BP: readers invert SIP iteratively) */
    int sip_order;               /* 1 = TAN only */
    long nmatch;                 /* matches kept in the final fit */
    long ncandidates;            /* matches before clipping */
    double rms_arcsec;           /* rms of the kept matches' residuals (the
                                    quadratic mean of both axes' rms) */
    double rms_px;               /* the same in pixels */
    double offset_arcsec;        /* what the initial WCS was off at the image
                                    centre (arcsec), */
    double rotation_deg;         /* its rotation error (deg) */
    double scale_ratio;          /* and its scale (initial / solved) */
    long *src_index, *ref_index; /* nmatch kept pairs: source k <-> catalog row */
} sk_astrom_result;

/* Solve the WCS of a width x height image whose header WCS `initial` is
 * approximately right, from its sources `l` (windowed centroids, brightest
 * by AUTO flux; artifacts left out) and the catalog `ref`:
 * 1. catalog stars projected through `initial` onto the image (margin for
 *    the allowed errors); the pattern_stars brightest sources and the
 *    1.5 x as many brightest catalog stars form triangles; triangles of the
 *    same shape (side ratios within 2 %) whose scale and orientation agree
 *    with the limits give candidate similarity transforms, and the one that
 *    maps the most bright sources onto catalog stars (within 3 px) wins;
 * 2. nearest-neighbour matching of all sources through that transform,
 *    then through the fitted WCS, within match_radius_arcsec;
 * 3. TAN (+ SIP) fitted by linear least squares: CRPIX at the image centre,
 *    CRVAL iterated to the tangent point, CD, SIP A/B; matches more than
 *    clip_sigma robust sigmas off clipped, refitted until stable.
 * SK_ENOTFOUND with a message saying how many matches were found when
 * fewer than min_matches (or no pattern matches): no solution is made;
 * SK_EINPUT on bad arguments (no initial WCS, empty catalog). */
int sk_astrom_solve(const sk_source_list *l, long width, long height, const sk_wcs *initial,
                    const sk_refcat *ref, const sk_astrom_params *p, sk_astrom_result **out);
void sk_astrom_result_free(sk_astrom_result *r);

#ifdef __cplusplus
}
#endif
#endif
