/* astrom_internal.h: the library's own part of skystack/astrom.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_ASTROM_INTERNAL_H
#define SK_ASTROM_INTERNAL_H

#include "skystack/astrom.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Append the rows of `more` to `cat` (several catalog files, e.g. Gaia
 * chunks). */
int sk_refcat_append(sk_refcat *cat, const sk_refcat *more);

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
