/* pipeline_rows_priv.h: the typed database rows of the product pipelines (internal,
 * not installed): finding an image, the rows of an extraction (source
 * list, background, the image's quality columns) and of a coadd (its
 * images row, its components, its PSF), and the ids an image query
 * selects. No libpq type appears here: the SQL stays in lib/db. */
#ifndef SK_PIPELINE_ROWS_PRIV_H
#define SK_PIPELINE_ROWS_PRIV_H

#include <stddef.h>
#include "skystack/db.h"

struct sk_query;

/* ---- images (image_lookup.c) ---- */

/* The columns of an images row the pipelines use; text columns that are
 * NULL are "", numbers that are NULL NaN. */
typedef struct sk_registered_image {
    long long id;
    char filepath[4096];          /* relative to the data root */
    char provenance_id[64];       /* the image's (preprocessing) provenance */
    char instrument[256], telescope[256], filter[256], section[256], target[256], project[256];
    char type[32];                /* science or coadd */
    double mjd, end_mjd, exptime_s, gain;
    char md5[33];
} sk_registered_image;

/* The images row of `arg`: an id (digits that are not a file) or a path,
 * looked up relative to the data root `root` when it lies under it, else
 * as given. SK_ENOTFOUND naming the id or the path when there is none. */
int sk_db_find_image(sk_db *db, const char *root, const char *arg, sk_registered_image *out);

/* ---- extraction (extraction_rows.c) ---- */

/* The stored paths (relative to the data root) of the source list and
 * background of image `image_id` under extraction provenance `prov_id`,
 * and the input files it records (*inputs_json: a JSON array as the
 * sidecars list them, malloc'd; NULL when the row predates their record);
 * *found is 0 when the extraction has not been registered. */
int sk_db_extraction_find(sk_db *db, long long image_id, const char *prov_id, char *src_relpath,
                          size_t src_size, char *bkg_relpath, size_t bkg_size, char **inputs_json,
                          int *found);

/* What an extraction registers besides its calibration (calib.h). */
typedef struct sk_extraction_record {
    long long image_id;
    const char *prov_id;
    const char *source_list_relpath, *source_list_md5;
    long nsources;
    const char *background_relpath, *background_md5;
    double background_level_adu, background_rms_adu;
    double fwhm_arcsec;           /* NaN: the image's fwhm_estimate is kept */
    const char *inputs_json;      /* the input files (a JSON array of {id, path,
                                     md5, role}, as the sidecars list them) */
} sk_extraction_record;

/* Rows source_lists and backgrounds, and the image's background and FWHM
 * estimates, in the caller's transaction. Rows of this image and
 * provenance that exist already (an extraction made anew because its
 * files were missing or damaged) are updated in place: their ids stay. */
int sk_db_extraction_register(sk_db *db, const sk_extraction_record *r);

/* The files a registered extraction's rows name (source list,
 * background, PSF, WCS): their table, path relative to the data root and
 * md5; *n of them (at most 4). */
typedef struct sk_registered_file {
    char table[24];
    char relpath[4096];
    char md5[33];
} sk_registered_file;

int sk_db_extraction_files(sk_db *db, long long image_id, const char *prov_id,
                           sk_registered_file out[4], int *n);

/* The extraction products of one image under one extraction provenance,
 * as a coadd uses them; an id of 0 means the product is missing. */
typedef struct sk_extraction_products_row {
    long long source_list_id, psf_id, background_id, wcs_id, zero_point_id;
    char psf_relpath[4096], background_relpath[4096];
    char *wcs_header;             /* header cards of the fitted WCS (malloc'd; NULL: none) */
    double zero_point;            /* NaN: none */
} sk_extraction_products_row;

int sk_db_extraction_products(sk_db *db, long long image_id, const char *prov_id,
                              sk_extraction_products_row *out);

/* ---- coadds (coadd_rows.c) ---- */

/* The coadd of provenance `prov_id` and input set `set_hash`: *found 0
 * when there is none, else its id and stored path, and *pending 1 when it
 * is pending (registered, its extraction not yet; md5: its row's md5,
 * 33 bytes). */
int sk_db_coadd_find(sk_db *db, const char *prov_id, const char *set_hash, long long *id,
                     char *relpath, size_t relpath_size, int *found, int *pending, char *md5);
/* The coadd `id` complete: no longer pending, in its own statement. */
int sk_db_coadd_complete(sk_db *db, long long id);
/* Delete pending coadd `id` and its rows (components, PSF, extraction). */
int sk_db_coadd_discard(sk_db *db, long long id);

/* A coadd's images row; NULL strings are SQL NULL. */
typedef struct sk_coadd_record {
    const char *relpath, *md5, *prov_id, *set_hash;
    const char *instrument, *telescope, *filter, *section, *target, *project;
    double mjd, end_mjd, exptime_s;
    double gain;                  /* <= 0: NULL */
    long width_px, height_px;
    double footprint_deg[14];     /* ra, dec, the four corners (ra, dec), minra, maxra, mindec, maxdec */
    double radius_deg;
    double zero_point;            /* NaN: NULL */
    int pending;                  /* 1: registered pending (its extraction follows) */
    long long id;                 /* > 0: the id it takes (a pending coadd made anew) */
} sk_coadd_record;

/* The products of one input a coadd was made from. */
typedef struct sk_coadd_component {
    long long image_id, source_list_id, psf_id, background_id, wcs_id, zero_point_id;
} sk_coadd_component;

/* The coadd's images row and its coadd_components rows, in the caller's
 * transaction; *id receives the new image id. A pending row of r->id is
 * replaced. */
int sk_db_coadd_register(sk_db *db, const sk_coadd_record *r, const sk_coadd_component *comp,
                         int ncomp, long long *id);

/* Coadd `id` made anew because its file was missing or damaged: its row
 * takes the new file's md5 (its id and all else stay), in the caller's
 * transaction. */
int sk_db_coadd_refresh(sk_db *db, long long id, const char *md5);
/* The ids of the input images of coadd `id` (*ids malloc'd, *n of them). */
int sk_db_coadd_inputs(sk_db *db, long long id, long long **ids, int *n);

/* The coadd's PSF row (fwhm_arcsec NaN: NULL); one that exists is
 * updated in place. */
int sk_db_coadd_register_psf(sk_db *db, long long coadd_id, const char *prov_id, const char *relpath,
                             const char *md5, double fwhm_arcsec);

/* The ids of the images a query selects, in its order (malloc'd). */
int sk_db_query_image_ids(sk_db *db, struct sk_query *q, long long **ids, int *n);

#endif
