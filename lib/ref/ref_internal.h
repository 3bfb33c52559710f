/* ref_internal.h: the library's own part of skystack/ref.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_REF_INTERNAL_H
#define SK_REF_INTERNAL_H

#include "skystack/ref.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The canonical key stored in refs.place: the canonical JSON
 * {"section":S,"target":T}, or {"dec":D,"ra":R} with the position rounded
 * to 1e-6 degree. Malloc'd; NULL on a bad place (with the error set). */
char *sk_place_key(const sk_place *p);

/* The reference a pipeline loads for `place` and `filter` (a ref object as
 * above, new reference): SK_ENOTFOUND when the refset does not exist or
 * holds no good reference there. */
int sk_refset_lookup(sk_db *db, const char *name, const sk_place *place, const char *filter,
                     json_t **out);

/* Reference `ref_id` as the refset holds it (an object as above, new
 * reference): SK_ENOTFOUND when the refset does not hold it. */
int sk_refset_ref(sk_db *db, const char *name, long long ref_id, json_t **out);

/* The provenance chain a configuration implies, computed, never looked up:
 * preprocessing (imingest with the instrument's keyword map) -> extraction
 * of the inputs -> coaddition (upstreams: the inputs' preprocessing and
 * extraction) -> extraction of the coadd (upstream: coaddition) ->
 * referencing, one per set of referencing.criteria (parameters: the
 * selection criteria, defaults filled, numbers normalised; upstreams: the
 * coaddition and the coadd extraction). No refset name or description
 * enters any of them. */
typedef struct sk_ref_chain {
    sk_prov *preprocessing;
    sk_prov *extraction;
    sk_prov *coaddition;
    sk_prov *coadd_extraction;
    sk_prov **referencing;     /* in configuration order, each id once */
    int nreferencing;
    /* first 20 characters of base32(SHA-256) of the canonical JSON array
     * of the sorted coaddition and coadd-extraction ids */
    char upstream_hash[SK_PROV_ID_LEN + 1];
} sk_ref_chain;

/* `instrument`: keyword map of the inputs' preprocessing (NULL:
 * preprocessing.instrument). SK_EINPUT naming referencing.criteria[i].key
 * for a criterion of the wrong type or range. */
int sk_ref_chain_make(const sk_config *cfg, const char *instrument, sk_ref_chain **out);
/* The same with the database `db` (may be NULL) for a reference catalogue
 * that is in the database. */
int sk_ref_chain_make_db(const sk_config *cfg, const char *instrument, sk_db *db, sk_ref_chain **out);

void sk_ref_chain_free(sk_ref_chain *c);

#ifdef __cplusplus
}
#endif
#endif
