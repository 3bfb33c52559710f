/* catalog_internal.h: the library's own part of skystack/catalog.h, used
 * inside lib/, by the tests and by the benchmarks (not installed): block
 * readers of catalogue files, the canonical row encoding, the shard folder
 * and the database copy. */
#ifndef SK_CATALOG_INTERNAL_H
#define SK_CATALOG_INTERNAL_H

#include <stdint.h>
#include "skystack/catalog.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reading catalogue files in blocks (catalog_read.c) ---- */

typedef struct sk_catreader sk_catreader;

/* A FITS table (first table HDU, or the one named in cfitsio's [] syntax)
 * or a CSV file (name ending in .csv: a header line of column names, then
 * one row a line, '#' lines skipped), mapped by `m`. SK_EINPUT naming the file and a
 * required column that is missing. */
int sk_catreader_open(const char *path, const sk_catmap *m, sk_catreader **out);
/* The next block of at most `max_rows` input rows into `dst` (emptied
 * first; bands as the map's); rows without finite ra/dec are skipped.
 * dst->n == 0 after the last block. */
int sk_catreader_next(sk_catreader *r, long max_rows, sk_catrows *dst);
void sk_catreader_close(sk_catreader *r);

/* ---- the canonical encoding (catalog_ingest.c) ---- */

/* Bytes of one row: ra, dec, epoch as IEEE doubles, the five floats and per
 * band mag and err as IEEE floats, little-endian, NaN as one bit pattern. */
size_t sk_catrow_size(int nbands);
void sk_catrow_encode(const sk_catrows *r, long k, unsigned char *out);
void sk_catrow_decode(const unsigned char *in, sk_catrows *r, long k);
/* Of n encoded rows, those within radius_deg of (ra_deg, dec_deg) appended
 * to out. */
int sk_catrows_decode_cone(const unsigned char *in, long n, double ra_deg, double dec_deg, double radius_deg,
                           sk_catrows *out);

/* HEALPix (nested) pixel of a position. */
long sk_healpix_nest(long nside, double ra_deg, double dec_deg);
/* The largest angle (degrees) from a pixel's centre to a point of it. */
double sk_healpix_max_radius_deg(long nside);
/* The nested pixels at nside that a cone may touch (a superset), sorted;
 * *out malloc'd. */
int sk_healpix_cone(long nside, double ra_deg, double dec_deg, double radius_deg, long **out, long *n);
/* Angular distance in degrees. */
double sk_cat_sep_deg(double ra1, double dec1, double ra2, double dec2);

/* ---- the shard folder (catalog_shards.c) ---- */

typedef struct sk_catshards sk_catshards;
int sk_catshards_begin(const char *outdir, long nside, int nbands, char band[][SK_CAT_BANDLEN],
                       sk_catshards **out);
int sk_catshards_add(sk_catshards *w, const sk_catrows *r);
/* Write the shards' FITS tables and index.json, then rename the folder
 * into place. */
int sk_catshards_finish(sk_catshards *w, const sk_catinfo *info);
void sk_catshards_abort(sk_catshards *w);

/* Read a shard folder's index (info) and the rows of a cone. */
typedef struct sk_catshard_index sk_catshard_index;
int sk_catshard_index_read(const char *dir, sk_catinfo *info, sk_catshard_index **out);
int sk_catshard_cone(const sk_catshard_index *x, double ra_deg, double dec_deg, double radius_deg,
                     sk_catrows *out);
void sk_catshard_index_free(sk_catshard_index *x);
/* The rows of one catalogue file (read with map m) within the cone,
 * appended to out (whose bands are m's). */
int sk_catfile_cone(const char *path, const sk_catmap *m, double ra_deg, double dec_deg, double radius_deg,
                    sk_catrows *out);

/* ---- the database copy (lib/db/catalog_rows.c) ---- */

typedef struct sk_catload sk_catload;
/* Begin a transaction, create a loading table and start a binary COPY;
 * rows are gathered and sent grouped by HEALPix cell. */
int sk_db_catalog_load_begin(sk_db *db, int nbands, sk_catload **out);
int sk_db_catalog_load_rows(sk_catload *l, const sk_catrows *r);
/* End the COPY; when the id is registered already the load is rolled back
 * (*existed = 1); else the table is named after the id, indexed by cell,
 * analysed, registered in refcats and committed. Frees l. */
int sk_db_catalog_load_end(sk_catload *l, const sk_catinfo *info, int *existed);
void sk_db_catalog_load_abort(sk_catload *l);

/* The registered catalogue NAME (newest VERSION when version is NULL):
 * info filled, table its table's name. SK_ENOTFOUND when absent. */
int sk_db_catalog_find(sk_db *db, const char *name, const char *version, sk_catinfo *info,
                       char table[64], int *cell_nside);
/* The rows of `table` within radius_deg, appended: read from the HEALPix
 * cells (at cell_nside) the cone touches, or with cell_nside 0 (a table of
 * one row per star) through its q3c index. */
int sk_db_catalog_cone(sk_db *db, const char *table, int cell_nside, double ra_deg, double dec_deg,
                       double radius_deg, sk_catrows *out);

/* The process id of the connection's server process (for benchmarks that
 * count its CPU time), -1 without one. */
long sk_db_catalog_backend_pid(const sk_db *db);

#ifdef __cplusplus
}
#endif
#endif
