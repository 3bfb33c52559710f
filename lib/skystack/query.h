/* query.h: the image query of imquery as a builder object: callers add
 * filters (sky position or box, names, time and quality ranges,
 * provenance, products), an order and a limit, then run it or print its
 * SQL. Every value is a bound parameter, never spliced into the SQL. */
#ifndef SKYSTACK_QUERY_H
#define SKYSTACK_QUERY_H

#include <stdio.h>
#include "db.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Text columns compared for equality. */
enum sk_query_text {
    SK_Q_TARGET = 0,     /* images.target */
    SK_Q_SECTION,        /* images.section_id */
    SK_Q_FILTER,         /* images.filter */
    SK_Q_INSTRUMENT,     /* images.instrument */
    SK_Q_PROJECT,        /* images.project */
    SK_Q_TYPE,           /* images.type: science | coadd */
    SK_Q_PROVENANCE      /* images.provenance_id: preprocessing (science) or
                            coaddition (coadd) provenance */
};

/* Numeric columns with min/max cuts (inclusive; rows where the column is
 * NULL never pass a cut on it). */
enum sk_query_range {
    SK_Q_MJD = 0,        /* images.mjd (start of exposure) */
    SK_Q_SEEING,         /* images.fwhm_estimate, arcsec */
    SK_Q_LIM_MAG,        /* images.lim_mag_estimate */
    SK_Q_EXPTIME,        /* images.exp_time, s */
    SK_Q_AIRMASS,        /* images.airmass */
    SK_Q_BKG,            /* images.bkg_rms_estimate: background noise, counts */
    SK_Q_ZP              /* images.zero_point_estimate */
};

enum sk_query_order {
    SK_ORDER_EARLIEST = 0, /* mjd ascending (the default) */
    SK_ORDER_LATEST,       /* mjd descending */
    SK_ORDER_QUALITY       /* lim_mag - factor * fwhm descending, unknown last */
};

/* What the statement returns. */
enum sk_query_kind {
    SK_QUERY_ROWS = 0,   /* every column of images (i.*) */
    SK_QUERY_COUNT       /* one row: count(*) of the matches (limit applied) */
};

typedef struct sk_query sk_query;

sk_query *sk_query_new(void);
void sk_query_free(sk_query *q);

/* Images whose four-corner footprint contains the point. */
int sk_query_contains(sk_query *q, double ra_deg, double dec_deg);
/* Images overlapping the box (maxra < minra: it straddles RA = 0) by at
 * least `min_overlap` of the box's area (0: any overlap). */
int sk_query_box(sk_query *q, double minra_deg, double maxra_deg, double mindec_deg,
                 double maxdec_deg, double min_overlap);
/* column = value; several calls combine with AND. */
int sk_query_text(sk_query *q, int field, const char *value);
int sk_query_min(sk_query *q, int field, double value);
int sk_query_max(sk_query *q, int field, double value);
/* The image's preprocessing provenance is `prov_id`, or it has an
 * extraction product of provenance `prov_id`. */
int sk_query_prov(sk_query *q, const char *prov_id);
/* Only images with all their extraction products (source list, PSF,
 * background, WCS, zero point) under one extraction provenance; with
 * `prov_id` (may be NULL), that provenance or the image's own. */
int sk_query_with_products(sk_query *q, const char *prov_id);
/* Only the coadds made from image `image_id` (one of their inputs). */
int sk_query_made_from(sk_query *q, long long image_id);
/* Include images flagged bad (or of a provenance flagged bad), and count
 * extractions flagged bad for sk_query_with_products. */
void sk_query_include_bad(sk_query *q, int include);
int sk_query_order(sk_query *q, int order, double quality_fwhm_factor);
/* At most n rows (n >= 1). */
int sk_query_limit(sk_query *q, long n);
/* A further condition on alias `i` (images) written by the program, with
 * its own parameters $1..$nparams (renumbered into the statement); cast
 * them in the condition ("i.width >= $1::integer"). Values are bound. */
int sk_query_where(sk_query *q, const char *condition, int nparams, const char *const *params);

/* The statement and its parameters (borrowed, valid until the next call
 * on q): *sql is malloc'd. */
int sk_query_sql(const sk_query *q, int kind, char **sql, int *nparams,
                 const char *const **params);
/* The statement as psql input: PREPARE with the parameter types, the SQL,
 * then EXECUTE with the values (quoted literals); malloc'd. */
char *sk_query_psql(const sk_query *q, int kind);

/* Read what the statement needs from the database before it is printed
 * or run: with a place filter (--ra/--dec, --box), the largest image
 * radius, bound as a parameter so that the q3c index on the image centres
 * serves the search (without it the radius is 180: correct, slow). */
int sk_query_prepare(sk_query *q, sk_db *db);

/* Prepare and run the query: *rows receives the images (every column of
 * images, in the query's order; free with sk_db_rows_free). */
int sk_query_rows(sk_query *q, sk_db *db, sk_db_rows **rows);
/* Prepare and run the query's count (the limit applied). */
int sk_query_count(sk_query *q, sk_db *db, long long *count);

/* ---- printing the images (imquery's outputs) ---------------------------- */

/* One line per image: its absolute path under the data root `root`. */
int sk_query_print_paths(FILE *out, const sk_db_rows *rows, const char *root);
/* One line per image: its id. */
int sk_query_print_ids(FILE *out, const sk_db_rows *rows);
/* JSON Lines: one canonical object per image with every column (booleans,
 * integers and reals as such, non-finite reals null) and "path", the
 * absolute path under `root`. */
int sk_query_print_json(FILE *out, const sk_db_rows *rows, const char *root);
/* An aligned table of id, filter, mjd, exptime, seeing, lim_mag, airmass,
 * instrument, target, section and path; numbers right-aligned, MJD to 5
 * decimals, other non-id numbers to 2; "-" for none. */
int sk_query_print_table(FILE *out, const sk_db_rows *rows);

#ifdef __cplusplus
}
#endif
#endif
