/* ref.h: reference sets and references of SPEC §6 (refset, refmake): the
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

/* The canonical key stored in refs.place: the canonical JSON
 * {"section":S,"target":T}, or {"dec":D,"ra":R} with the position rounded
 * to 1e-6 degree. Malloc'd; NULL on a bad place (with the error set). */
char *sk_place_key(const sk_place *p);

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

/* The reference a pipeline loads for `place` and `filter` (a ref object as
 * above, new reference): SK_ENOTFOUND when the refset does not exist or
 * holds no good reference there. */
int sk_refset_lookup(sk_db *db, const char *name, const sk_place *place, const char *filter,
                     json_t **out);

/* Mark reference `ref_id` bad with a reason (required, not empty); a new
 * one may then be made for its place. SK_ENOTFOUND when there is no such
 * reference. */
int sk_ref_mark_bad(sk_db *db, long long ref_id, const char *reason);

#ifdef __cplusplus
}
#endif
#endif
