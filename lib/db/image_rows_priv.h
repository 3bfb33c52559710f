/* image_rows_priv.h: the images rows that ingesting and making references
 * read and write, as typed functions (not installed; no libpq types). */
#ifndef SK_IMAGE_ROWS_PRIV_H
#define SK_IMAGE_ROWS_PRIV_H

#include "skystack/db.h"
#include "skystack/wcs.h"
#include "db_internal.h"

/* A science image to register. Strings NULL: SQL NULL; numbers not
 * finite: SQL NULL. */
typedef struct sk_image_row {
    const char *filepath;        /* relative to the data root */
    const char *md5;             /* of the stored file */
    const char *provenance_id;   /* preprocessing provenance */
    const char *original_path, *original_md5, *original_hdu;
    const char *instrument, *telescope, *filter, *section, *target, *project;
    double mjd, end_mjd;         /* start and end of exposure */
    double exptime_s, airmass, gain, saturation, read_noise;
    long width, height;          /* pixels */
    sk_footprint footprint;
    double radius_deg;           /* centre to the farthest corner */
} sk_image_row;

/* Insert the images row; *id receives its id. */
int sk_image_row_insert(sk_db *db, const sk_image_row *row, long long *id);

/* The image registered from `original_md5` (HDU `original_hdu`) under
 * preprocessing provenance `prov_id`: *id (0 when none), its filepath
 * (malloc'd, NULL when none) and the md5 its row records (33 bytes). */
int sk_image_find_original(sk_db *db, const char *prov_id, const char *original_md5,
                           const char *original_hdu, long long *id, char **filepath, char *md5);

/* The image stored at `filepath` (relative to the data root): *id (0 when
 * none) and the file it was ingested from (malloc'd; NULL when none or
 * unknown). */
int sk_image_find_filepath(sk_db *db, const char *filepath, long long *id, char **original_path);

/* The coadd of provenance `prov_id` over the input set `set_hash`
 * (sk_db_input_set_hash): *id, 0 when there is none. */
int sk_image_find_coadd(sk_db *db, const char *prov_id, const char *set_hash, long long *id);

/* *yes = 1 when image `id` has all five extraction products (source list,
 * PSF, background, WCS, zero point) of provenance `prov_id`. */
int sk_image_has_products(sk_db *db, long long id, const char *prov_id, int *yes);

#endif
