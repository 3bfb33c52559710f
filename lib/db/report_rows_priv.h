/* report_rows_priv.h: the rows of the report page (lib/look/report.c) as typed row sets: the products of a refset or the coadds made since a date, their inputs and their provenance chains (not installed; no libpq types). */
#ifndef SK_REPORT_ROWS_PRIV_H
#define SK_REPORT_ROWS_PRIV_H

#include "skystack/db.h"

/* What the report covers: the references refset `refset` holds (good and
 * bad), or (refset NULL) the coadds whose images row was made at or after
 * since_mjd. */
typedef struct sk_report_sel {
    const char *refset;
    double since_mjd;
} sk_report_sel;

/* 1 in *exists when a refset of that name exists. */
int sk_db_report_refset_exists(sk_db *db, const char *name, int *exists);

/* One row per product, by place, filter, image id: ref_id (NULL for a
 * coadd), place (NULL for a coadd), filter, ref_prov, is_bad, bad_reason,
 * image_id, filepath, coadd_prov, target, section_id, instrument, ra, dec,
 * ra_00, dec_00, ra_10, dec_10, ra_11, dec_11, ra_01, dec_01 (corners),
 * mjd, end_mjd, n_inputs, fwhm_arcsec (of its PSF), zp, lim_mag, created. */
int sk_db_report_products(sk_db *db, const sk_report_sel *sel, sk_db_rows **out);

/* Every input of those products once, by MJD: image_id, mjd, filter,
 * fwhm_arcsec, lim_mag, zp (of the extraction products the coadd used). */
int sk_db_report_inputs(sk_db *db, const sk_report_sel *sel, sk_db_rows **out);

/* The provenance chain of each product's provenance (the reference's, or
 * the coadd's): root, id, process, code_version, one row per provenance
 * upstream of root (root included), ordered by root, then referencing,
 * coaddition, extraction, preprocessing, then id. */
int sk_db_report_chains(sk_db *db, const sk_report_sel *sel, sk_db_rows **out);

#endif
