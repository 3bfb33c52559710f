/* ref_rows_priv.h: the rows of reference sets and references (refsets,
 * refset_provenances, refs) and the provenance reads that explain a
 * refset's chain, as typed functions for lib/ref (not installed; no libpq
 * types). Strings are malloc'd, NULL for SQL NULL. */
#ifndef SK_REF_ROWS_PRIV_H
#define SK_REF_ROWS_PRIV_H

#include <jansson.h>
#include "skystack/db.h"
#include "skystack/ref.h"

/* ---- refsets (refset_rows.c) ---------------------------------------------- */

typedef struct sk_refset_row {
    long long id;
    char *name, *description;
    char *upstream_hash;          /* NULL until its first refmake */
    char *created;                /* UTC, ISO 8601 with a Z */
    long long nprovenances;       /* sk_refset_rows_list only */
    long long nrefs_good, nrefs_bad;
} sk_refset_row;

/* One referencing provenance of a refset. */
typedef struct sk_refset_member_row {
    long long position;           /* order in which they are tried */
    char *prov_id, *code_version;
    int is_bad;
    char *parameters_json;        /* the selection criteria */
    char *upstreams_json;         /* [{id, process}] by process, id */
    long long nrefs_good, nrefs_bad;
} sk_refset_member_row;

/* One reference as a refset holds it. */
typedef struct sk_ref_row {
    long long id;
    char *place, *target, *section, *filter, *instrument, *provenance_id;
    long long position;           /* of its provenance in the refset */
    long long image_id;
    char *filepath;               /* of the coadd, relative to the data root */
    double ra_deg, dec_deg;       /* NaN when NULL */
    int is_bad;
    char *bad_reason, *created;
    int loaded;                   /* 1: the one a pipeline loads */
    long long replaced_by;        /* the reference made in its place (0: none) */
    char *trouble;                /* why it may not be loaded (NULL: it may) */
} sk_ref_row;

void sk_refset_row_clear(sk_refset_row *r);
void sk_refset_rows_free(sk_refset_row *rows, int n);
void sk_refset_member_rows_free(sk_refset_member_row *rows, int n);
void sk_ref_rows_free(sk_ref_row *rows, int n);

/* The refset called `name` (FOR UPDATE when `for_update`, inside a
 * transaction); counts are not filled. *found = 0 when there is none. */
int sk_refset_row_get(sk_db *db, const char *name, int for_update, sk_refset_row *out, int *found);
/* Every refset by name, with its counts. */
int sk_refset_rows_list(sk_db *db, sk_refset_row **out, int *n);
/* Insert a refset (upstream_hash may be NULL); *created = 0 when one of
 * that name exists already. */
int sk_refset_row_insert(sk_db *db, const char *name, const char *description,
                         const char *upstream_hash, int *created);
int sk_refset_row_set_upstream_hash(sk_db *db, long long refset_id, const char *upstream_hash);
/* References held through the refset's provenances (good and bad). */
int sk_refset_row_count_refs(sk_db *db, long long refset_id, long *n);
/* Delete the references only this refset holds (*n: how many). */
int sk_refset_row_delete_refs(sk_db *db, long long refset_id, long *n);
/* Delete the refset (its provenance list goes with it). */
int sk_refset_row_delete(sk_db *db, long long refset_id);

/* The refset's provenances in order, with their reference counts. */
int sk_refset_member_rows(sk_db *db, long long refset_id, sk_refset_member_row **out, int *n);
/* Append provenance `prov_id` (saved already) at the end of the order. */
int sk_refset_member_append(sk_db *db, long long refset_id, const char *prov_id);

/* The references of a refset: for `place` (NULL: all; a position selects
 * footprints containing it) and `filter` (NULL: all), `ref_id` (0: all),
 * `only_loaded`: just the loaded ones; ordered by place, filter,
 * position, id. */
int sk_ref_rows_of_refset(sk_db *db, long long refset_id, const sk_place *place,
                          const char *filter, int only_loaded, long long ref_id, sk_ref_row **out,
                          int *n);

/* ---- references (ref_rows.c) ------------------------------------------------ */

/* The good reference of coadd `image_id` under `prov_id` (*ref_id 0: none). */
int sk_ref_row_of_coadd(sk_db *db, long long image_id, const char *prov_id, long long *ref_id);
/* The good reference of the place key and filter under `prov_id`. */
int sk_ref_row_of_place(sk_db *db, const char *place_key, const char *filter, const char *prov_id,
                        long long *ref_id);

/* A reference to save: coadd, referencing provenance, the extraction
 * provenance of the coadd's products, the place key, filter and (for a
 * named field; NULL: the coadd's) target and section. */
typedef struct sk_ref_new {
    long long image_id;
    const char *prov_id, *extraction_prov_id;
    const char *place_key, *filter, *target, *section;
} sk_ref_new;

/* Inside the caller's transaction: insert the reference, setting
 * replaced_by of the references of the place (same filter and provenance)
 * that are bad or no longer loadable and not replaced yet (*nreplaced of
 * them). *ref_id 0 when not inserted (the place holds a loadable one, or
 * the coadd is bad, pending or lacks good products): roll back then. */
int sk_ref_row_insert(sk_db *db, const sk_ref_new *r, long long *ref_id, long *nreplaced);

/* Why coadd `image_id` may not serve the place again (*why malloc'd, NULL:
 * it may): it is marked bad, its extraction of `extraction_prov_id` is
 * marked bad, or a reference of the place (filter, provenance) made of it
 * is marked bad or not loadable for another reason than its replacement. */
int sk_ref_row_coadd_blocked(sk_db *db, long long image_id, const char *extraction_prov_id,
                             const char *place_key, const char *filter, const char *prov_id,
                             char **why);

/* Every reference of the place, filter and provenance of reference
 * `ref_id`, oldest first: the chain of replacements, as an array of
 * {id, image_id, is_bad, bad_reason, replaced_by, loadable, trouble,
 * created, place, filter, provenance_id}. */
int sk_ref_rows_chain(sk_db *db, long long ref_id, json_t **out);

/* ---- provenances read back (provenance_rows.c) ------------------------------ */

typedef struct sk_prov_link {
    char *id, *process;
} sk_prov_link;

void sk_prov_links_free(sk_prov_link *links, int n);
/* Code version and parameters (JSON text) of a stored provenance;
 * *found = 0 when it is not in the database. */
int sk_prov_row_get(sk_db *db, const char *id, int *found, char **code_version,
                    char **parameters_json);
/* The upstreams of a stored provenance, by id. */
int sk_prov_row_upstreams(sk_db *db, const char *id, sk_prov_link **out, int *n);
/* The upstreams of the refset's first provenance(s), at most two, by
 * position and process: the coaddition and coadd extraction it was made
 * with. */
int sk_refset_row_chain(sk_db *db, const char *name, sk_prov_link **out, int *n);

#endif
