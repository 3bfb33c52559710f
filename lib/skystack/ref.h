/* ref.h: reference sets and references (refset(1), refmake(1)): the
 * places a reference serves, managing refsets in the database, and which
 * reference a pipeline loads for a place.
 *
 * A refset is a unique name over one coadd chain (its upstream_hash) and
 * an ordered list of referencing provenances (selection criteria, strict
 * first). A reference belongs to every refset that holds its referencing
 * provenance, so several refsets share references. For a place and filter
 * the reference a pipeline loads is the good (not marked bad) one whose
 * provenance comes first in the refset's order. */
#ifndef SKYSTACK_REF_H
#define SKYSTACK_REF_H

#include <stdio.h>
#include <jansson.h>
#include "db.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- places ---------------------------------------------------------- */

/* The place a reference serves: a named field and section (both set), or
 * a sky position (has_position). Strings are borrowed. */
typedef struct sk_place {
    const char *target;
    const char *section;
    int has_position;
    double ra_deg, dec_deg;
} sk_place;

/* SK_EINPUT (naming --target/--section/--ra/--dec) unless exactly one kind
 * of place is given, with RA in [0, 360) and Dec in [-90, 90]. */
int sk_place_check(const sk_place *p);

/* ---- reference sets (refset.c) ---------------------------------------- */

/* A new, empty refset (provenances and upstream_hash are set by its first
 * refmake). SK_EINPUT when the name is empty or has control characters, or
 * when a refset of that name exists. `description` may be NULL. */
int sk_refset_create(sk_db *db, const char *name, const char *description);

/* Delete a refset. SK_ENOTFOUND when there is none of that name; SK_EINPUT
 * when it holds references, unless `force`: then the references that no
 * other refset holds are deleted with it (their coadds stay). The number of
 * references deleted goes to *nrefs_deleted (may be NULL). */
int sk_refset_delete(sk_db *db, const char *name, int force, long *nrefs_deleted);

/* Every refset, by name: a new array of {name, description, upstream_hash,
 * created, provenances (count), references (good ones), bad_references}. */
int sk_refset_list(sk_db *db, json_t **out);

/* One refset: {name, description, upstream_hash, created, references,
 * bad_references, provenances: [{position, id, code_version, is_bad,
 * criteria (the parameters), upstreams: [{id, process}], references,
 * bad_references}] in the order they are tried}. SK_ENOTFOUND when absent. */
int sk_refset_show(sk_db *db, const char *name, json_t **out);

/* The references a refset holds, optionally only those serving `place`
 * (NULL: all; a position selects references whose footprint contains it,
 * a field those of that target and section) and `filter` (NULL: all), as
 * a new array of objects {id, place, target, section, filter, instrument,
 * provenance_id, position, image_id, filepath (relative to the data root),
 * ra, dec, is_bad, bad_reason, created, loaded}, where `loaded` is true for
 * the one a pipeline loads for its place and filter. Ordered by place,
 * filter, position, id. SK_ENOTFOUND when the refset does not exist. */
int sk_refset_refs(sk_db *db, const char *name, const sk_place *place, const char *filter,
                   json_t **out);

/* Mark reference `ref_id` bad with a reason (required, not empty), by
 * `who` (skybad(1)); a new
 * one may then be made for its place. SK_ENOTFOUND when there is no such
 * reference. */
int sk_ref_mark_bad(sk_db *db, long long ref_id, const char *reason, const char *who);

/* The chain of replacements reference `ref_id` belongs to: every reference
 * of its place, filter and referencing provenance, oldest first, as an
 * array of {id, image_id, is_bad, bad_reason, replaced_by, loadable,
 * trouble, created, place, filter, provenance_id}; SK_ENOTFOUND when there
 * is no such reference. */
int sk_ref_replacements(sk_db *db, long long ref_id, json_t **out);

/* ---- printing refsets (refset_print.c) ------------------------------- */

/* The aligned tables of refset(1): sk_refset_list's array (name, counts,
 * upstream_hash, description), sk_refset_show's object (the refset, then
 * each provenance with its criteria and upstreams) and sk_refset_refs'
 * array, each object with "path" set to the coadd's absolute path (id,
 * place, filter, position, provenance, coadd, loaded, path or bad reason). */
void sk_refset_print_list(FILE *out, const json_t *list);
void sk_refset_print_show(FILE *out, const json_t *refset);
void sk_refset_print_refs(FILE *out, const json_t *refs);
/* The chain of sk_ref_replacements as a table. */
void sk_refset_print_chain(FILE *out, const json_t *chain);

/* ---- making references (refmake.c) ----------------------------------- */

typedef struct sk_refmake_opts {
    const char *refset;        /* refset name (required) */
    sk_place place;
    const char *filter;        /* required */
    const char *instrument;    /* keyword map (see sk_ref_chain_make), may be NULL */
    int no_append;             /* 1: never append provenances to an existing
                                  refset (else referencing.allow_append) */
    int dry_run;               /* 1: write and build nothing; report */
    int threads;               /* for the coadd (>= 1) */
    double now_mjd;            /* end of date_range windows; NAN: the clock */
} sk_refmake_opts;

typedef struct sk_refmake_result {
    json_t *ref;               /* the reference, as sk_refset_lookup gives it
                                  (NULL in a dry run that would build one) */
    int existed;               /* 1: the reference existed (nothing made) */
    int waited;                /* 1: another process made it while this one waited */
    int coadd_built;           /* 1: this call built the coadd */
    int refset_created;        /* 1: the refset was created now */
    int appended;              /* referencing provenances appended now */
    json_t *report;            /* dry run: {refset, exists, upstream_hash,
                                  provenances: {...}, reference, plan: [...]} */
} sk_refmake_result;

/* Return the reference of refset o->refset for a place and filter, making
 * it when needed (refmake(1)):
 * - the refset is created on first use; one with another upstream_hash is
 *   an error (SK_EINPUT) naming the provenance and the parameters that
 *   differ, and nothing is written; referencing provenances it lacks are
 *   appended (in configuration order) unless o->no_append or
 *   referencing.allow_append is false (then SK_EINPUT);
 * - a good reference the refset holds for the place is returned at once;
 * - else, under a database lock on the place and filter (so concurrent
 *   callers on any machine wait and then return the winner's reference),
 *   the refset's provenances are tried in order: images already in the
 *   database with extraction products of the chain's extraction provenance
 *   are selected by the criteria; with enough of them an existing coadd of
 *   the coaddition provenance and that input set is reused or one is built
 *   (with its extraction) through the coadd pipeline, and the reference is
 *   saved (an existing reference of that coadd and provenance is reused);
 * - when no provenance can make one: SK_ENOTFOUND naming the provenance
 *   looked for and how many images passed each criterion.
 * Free the result with sk_refmake_result_clear. */
int sk_refmake(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o, sk_refmake_result *out);
void sk_refmake_result_clear(sk_refmake_result *r);

#ifdef __cplusplus
}
#endif
#endif
