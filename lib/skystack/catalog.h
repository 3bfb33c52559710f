/* catalog.h: reference catalogues at survey scale: a column map from a
 * catalogue's own columns to the canonical ones; ingest (FITS tables or
 * CSV, one file or many) into the database or into a folder of HEALPix
 * shards, under an id made from the content and the column map; lookup of
 * the rows in and around an image's footprint from a file, a shard folder,
 * a folder of HEALPix-chunked Gaia files or the database; positions carried
 * to an epoch with proper motion and parallax; colour transformations of
 * catalogue magnitudes to an instrument's band.
 *
 * Canonical units: ra, dec in degrees (ICRS); ra_err, dec_err in mas;
 * pmra (= mu_alpha* = mu_alpha cos dec), pmdec in mas/yr; parallax in mas;
 * epoch in Julian years (2016.0 = Gaia DR3); magnitudes and errors in mag.
 * A value a catalogue lacks is NaN. */
#ifndef SKYSTACK_CATALOG_H
#define SKYSTACK_CATALOG_H

#include <jansson.h>
#include "db.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_CAT_MAXBANDS 8
#define SK_CAT_BANDLEN 16

enum sk_cat_field {
    SK_CAT_RA, SK_CAT_DEC, SK_CAT_RA_ERR, SK_CAT_DEC_ERR, SK_CAT_PMRA, SK_CAT_PMDEC,
    SK_CAT_PARALLAX, SK_CAT_EPOCH, SK_CAT_NFIELDS
};

/* Where one canonical value comes from. */
typedef struct sk_catmap_entry {
    char column[72];     /* the catalogue's column ("" = none) */
    int has_constant;    /* a number instead of a column (e.g. epoch=2016.0) */
    double constant;
    int optional;        /* written "col?": a missing column gives NaN */
    int snr;             /* written "snr:col": an error from a flux S/N, 1.0857/snr */
} sk_catmap_entry;

/* The column map: ra, dec (required), the other fields and per band a
 * magnitude and its error. Text form, entries separated by commas:
 *   ra=COL,dec=COL,ra_err=COL,dec_err=COL,pmra=COL,pmdec=COL,
 *   parallax=COL,epoch=COL|YEAR,mag:BAND=COL,err:BAND=COL|snr:COL
 * with "COL?" for a column that may be missing; or a preset name: "gaia"
 * (Gaia DR2/EDR3/DR3 column names, bands G, BP, RP). */
typedef struct sk_catmap {
    sk_catmap_entry f[SK_CAT_NFIELDS];
    int nbands;
    char band[SK_CAT_MAXBANDS][SK_CAT_BANDLEN];
    sk_catmap_entry mag[SK_CAT_MAXBANDS], err[SK_CAT_MAXBANDS];
} sk_catmap;

/* Parse the text form; SK_EINPUT naming the entry that is wrong. */
int sk_catmap_parse(const char *text, sk_catmap *out);
/* The canonical text of a map (fields in a fixed order, bands as given):
 * what the catalogue id hashes. malloc'd. */
char *sk_catmap_text(const sk_catmap *m);

/* Canonical rows, one array per column. */
typedef struct sk_catrows {
    long n, cap;
    int nbands;
    char band[SK_CAT_MAXBANDS][SK_CAT_BANDLEN];
    double *ra_deg, *dec_deg, *epoch_yr;
    float *ra_err_mas, *dec_err_mas, *pmra_mas_yr, *pmdec_mas_yr, *parallax_mas;
    float *mag[SK_CAT_MAXBANDS], *mag_err[SK_CAT_MAXBANDS];
} sk_catrows;

sk_catrows *sk_catrows_new(int nbands, char band[][SK_CAT_BANDLEN]);
/* Room for n rows in all (rows kept). */
int sk_catrows_reserve(sk_catrows *r, long n);
/* Append row k of `from` (same bands). */
int sk_catrows_append(sk_catrows *r, const sk_catrows *from, long k);
/* Index of a band by name (case-sensitive), -1 when absent. */
int sk_catrows_band(const sk_catrows *r, const char *band);
void sk_catrows_free(sk_catrows *r);

/* What identifies a catalogue: the id is the SHA-256 (hex) of the
 * canonical JSON {name, version, rows, content, columns}, where content is
 * the SHA-256 of the canonical rows in input order (files sorted by base
 * name; see catingest(1)) and columns the map's text. */
typedef struct sk_catinfo {
    char id[65];
    char name[128], version[64];
    long long nrows;
    char content_sha256[65];
    char *columns;       /* malloc'd map text */
    int nbands;
    char band[SK_CAT_MAXBANDS][SK_CAT_BANDLEN];
} sk_catinfo;

/* Compute info->id from the other fields. */
int sk_catinfo_make_id(sk_catinfo *info);
void sk_catinfo_clear(sk_catinfo *info);

/* ---- ingest (catingest) ---- */

typedef struct sk_catingest_opts {
    const char *name, *version;  /* name required; version may be "" */
    const char *columns;         /* map text or preset (NULL: "gaia") */
    const char *outdir;          /* shard folder to write (NULL: none) */
    long nside;                  /* HEALPix nside of the shards (power of 2) */
    sk_db *db;                   /* the database to load (NULL: none) */
    long block_rows;             /* rows read and loaded at a time */
} sk_catingest_opts;

/* Read `paths` (FITS tables: the first table HDU; CSV: a header line of
 * column names) in order of their base names, map them, and write the
 * shard folder and/or the database copy. Rows without a finite ra/dec are
 * skipped. All or nothing: a failure leaves no folder (it is built in a
 * temporary one and renamed) and no database rows. *info receives the id. */
int sk_catalog_ingest(const char *const *paths, int npaths, const sk_catingest_opts *o,
                      sk_catinfo *info);

/* ---- lookup (extract) ---- */

typedef struct sk_catsource sk_catsource;

/* Open a catalogue: "db:NAME" or "db:NAME@VERSION" (the database copy, the
 * newest version when none is given), a folder written by catingest
 * (index.json), a folder of HEALPix-chunked Gaia files chunk-NNNNN.fits
 * (nside 32, NNNNN the RING pixel; the "gaia" map), or FILE[,FILE...] of FITS tables or
 * CSV read whole with `map` (small catalogues). For files and Gaia chunk
 * folders the id is computed on opening (the chunks' content: their rows
 * are not read until needed, their md5s are). */
int sk_catsource_open(const char *spec, const sk_catmap *map, sk_db *db, sk_catsource **out);
const sk_catinfo *sk_catsource_info(const sk_catsource *s);
/* The rows within radius_deg of (ra_deg, dec_deg). */
int sk_catsource_cone(sk_catsource *s, double ra_deg, double dec_deg, double radius_deg,
                      sk_catrows **out);
void sk_catsource_close(sk_catsource *s);

/* ---- epoch propagation ---- */

typedef struct sk_epoch_params {
    int propagate;               /* 0: positions as the catalogue gives them */
    double missing_pm_mas_yr;    /* error growth per year of rows without a
                                    proper motion */
} sk_epoch_params;

/* Carry every row to `mjd` (UTC ~ TT for this purpose): with pmra and pmdec
 * (and the parallax, with the Earth's barycentric position at mjd, ERFA's
 * eraPmpx), rows without a proper motion stay where they are with
 * ra_err/dec_err grown in quadrature by missing_pm_mas_yr times the years
 * between; epoch_yr becomes the image's. Rows without an epoch are taken
 * at `default_epoch_yr` (NaN: not moved, not grown). */
void sk_catrows_propagate(sk_catrows *r, double mjd, double default_epoch_yr, const sk_epoch_params *p);

/* Julian year of an MJD. */
double sk_mjd_to_jyear(double mjd);

/* ---- colour transformations ---- */

/* m_filter = m_band + sum_k coeffs[k] x^k with x = m_c1 - m_c2, valid for
 * colour_min <= x <= colour_max. */
typedef struct sk_colour_term {
    char instrument[72], filter[72];
    char band[SK_CAT_BANDLEN], c1[SK_CAT_BANDLEN], c2[SK_CAT_BANDLEN];
    int ncoeffs;
    double coeffs[6];
    double colour_min, colour_max;
    char reference[160];
} sk_colour_term;

/* The transformations of a configuration: extraction.colour_terms, an
 * array of {instrument, filter, band, colour: [c1, c2], coeffs,
 * colour_range: [min, max], reference}. */
int sk_colour_terms_from_json(const json_t *root, sk_colour_term **out, int *n);

/* The transformation for (instrument, filter) (case-insensitive; the
 * filter matched on its first word, "*" as instrument matches any) whose
 * bands the catalogue has; NULL when none. */
const sk_colour_term *sk_colour_term_find(const sk_colour_term *t, int n, const char *instrument,
                                          const char *filter, const sk_catrows *r);

/* Magnitudes of every row in the image's band: mag[k] and err[k] (errors
 * of the three catalogue magnitudes propagated); NaN outside the colour
 * range or where a band is missing. Returns the rows that have one. */
long sk_colour_term_apply(const sk_colour_term *t, const sk_catrows *r, double *mag, double *err);

#ifdef __cplusplus
}
#endif
#endif
