/* astrom.h: astrometric calibration: a reference catalog (FITS table of
 * ra, dec, mag), matching of an image's sources to it that survives an
 * initial WCS wrong by tens of arcseconds, a degree of rotation and a
 * percent of scale (triangle pattern matching of the brightest sources,
 * then iterative nearest neighbours), and a TAN + SIP fit by linear least
 * squares with sigma clipping, giving a WCS (FITS header cards parsed by
 * wcslib), the number of matches and the rms in arcseconds.
 *
 * Positions of sources are the library's 0-based pixels (see wcs.h);
 * catalog positions are taken as they are given here, in the frame of the
 * initial WCS (ICRS/FK5 J2000): the extraction carries them to the image's
 * epoch first (catalog.h). */
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
    double *pos_err_arcsec;    /* NULL, or n positional errors (1 sigma per
                                  axis) that the fit's weights add */
} sk_refcat;

/* Read the first binary table of `path` (or the HDU named after a '[', as
 * cfitsio's "file.fits[REFCAT]"), taking the columns named ra_col, dec_col,
 * mag_col (case-insensitive) and, when mag_err_col is not NULL and the
 * table has it, mag_err_col. Rows whose position or magnitude is not
 * finite are skipped. SK_EINPUT naming the file and the missing column. */
int sk_refcat_read(const char *path, const char *ra_col, const char *dec_col,
                   const char *mag_col, const char *mag_err_col, sk_refcat **out);
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

#ifdef __cplusplus
}
#endif
#endif
