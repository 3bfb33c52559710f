/* calib.h: the calibration step of an extraction, after the measurement:
 * the PSF model and PSF-fit fluxes, and, with a reference catalog, the
 * astrometric solution and the photometric calibration; what it adds to
 * the source list, the WCS product (".head" cards) and the database rows
 * (psfs, world_coordinates, zero_points, the image's first-look columns
 * and footprint). */
#ifndef SKYSTACK_CALIB_H
#define SKYSTACK_CALIB_H

#include <jansson.h>
#include "astrom.h"
#include "catalog.h"
#include "db.h"
#include "extract.h"
#include "photcal.h"
#include "psf.h"
#include "table.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_calib_params {
    sk_psf_params psf;
    sk_astrom_params astrom;
    sk_photcal_params photcal;
    char **refcat;               /* catalog files (extraction.astrometry.refcat:
                                    a path, or paths separated by commas);
                                    none: no astrometric/photometric step */
    int nrefcat;
    char ra_col[72], dec_col[72], mag_col[72], mag_err_col[72];
    char *refcat_spec;           /* extraction.astrometry.refcat as given */
    char *columns;               /* extraction.astrometry.columns (NULL: the
                                    *_col names above and the canonical
                                    names of the other fields) */
    sk_epoch_params epoch;       /* propagate_epoch, missing_pm_mas_yr */
    double margin_arcmin;        /* extraction.astrometry.catalog_margin_arcmin */
    sk_colour_term *colour_terms;/* extraction.colour_terms */
    int ncolour_terms;
    sk_catsource *catalog;       /* opened once, by the first extraction */
} sk_calib_params;

#ifdef __cplusplus
}
#endif
#endif
