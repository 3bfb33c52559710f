/* provenance.h: provenances (skystack(7), PROVENANCE): process, code version, critical
 * parameters and upstreams; the id (base32 of SHA-256 over canonical JSON)
 * and the JSON sidecar X.fits.json that travels with every product. */
#ifndef SKYSTACK_PROVENANCE_H
#define SKYSTACK_PROVENANCE_H

#include <jansson.h>
#include "json.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_PROV_ID_LEN 20

typedef struct sk_prov {
    char process[32];          /* preprocessing | extraction | coaddition | referencing */
    char code_version[32];     /* full MAJOR.MINOR.PATCH; only MAJOR.MINOR is hashed */
    json_t *parameters;        /* critical parameters (an object, owned) */
    struct sk_prov **upstreams;/* owned deep copies, in the order added, each id once */
    int nupstreams;
    char id[SK_PROV_ID_LEN + 1];/* filled by sk_prov_new / sk_prov_add_upstream */
} sk_prov;

/* The code version of a process's code (e.g. "1.0.0"); NULL if unknown. */
const char *sk_code_version(const char *process);

/* A new provenance. `parameters` is borrowed and deep-copied (NULL = {}).
 * The id is computed now and again whenever an upstream is added.
 * SK_EINPUT for an unknown process or a malformed code version. */
int sk_prov_new(const char *process, const char *code_version,
                const json_t *parameters, sk_prov **out);
/* Add a deep copy of `up` as an upstream and recompute the id; an upstream
 * whose id is already there is not added again (the id hashes the set). */
int sk_prov_add_upstream(sk_prov *p, const sk_prov *up);
sk_prov *sk_prov_copy(const sk_prov *p);
void sk_prov_free(sk_prov *p);

/* The hashed document {code_version (MAJOR.MINOR), parameters, process,
 * upstream_hashes (sorted, de-duplicated ids)} in canonical form. */
char *sk_prov_canonical(const sk_prov *p);

/* sk_json_canonical (json.h) gives the canonical JSON text that is hashed:
 * keys sorted at every depth, no insignificant whitespace, UTF-8, integers
 * as integers and reals in shortest round-trip form that stay reals
 * (2.0 -> "2.0", 1e-7 -> "1e-07"), exactly as Python's json.dumps with
 * sort_keys, separators (",", ":") and ensure_ascii=False. */

/* id = first 20 characters of base32(SHA-256(canonical)). */
void sk_prov_id_of(const char *canonical, char id[SK_PROV_ID_LEN + 1]);

/* JSON with the full upstream chain:
 * {id, process, code_version, parameters, upstreams:[...]} (new reference). */
json_t *sk_prov_to_json(const sk_prov *p);
/* Inverse; the id is recomputed and must match the stored one (SK_EINPUT). */
int sk_prov_from_json(const json_t *j, sk_prov **out);

/* One input file of a product: every file that shapes it (the image, a
 * weight map, a mask, a reference catalogue, a background, a PSF...). */
typedef struct sk_input_file {
    const char *id;    /* database id or other identifier, may be NULL */
    const char *path;
    const char *md5;   /* may be NULL: computed from path */
    const char *role;  /* what the file is to the product ("image", "weight",
                          "mask", "refcat", "background", "psf", ...); NULL:
                          none recorded */
} sk_input_file;

/* Write `product_path`.json atomically, pretty-printed (sk_json_pretty):
 * {product_type, path (basename), md5 (of the product file, computed now),
 * provenance (sk_prov_to_json, with all upstreams), inputs: [{id (null
 * when none), path, md5, role (when given)}], created (UTC, YYYY-MM-DDTHH:MM:SSZ; the time
 * given by $SOURCE_DATE_EPOCH when set), software
 * ("skystack VERSION")}. */
int sk_sidecar_write(const char *product_path, const char *product_type,
                     const sk_prov *prov, const sk_input_file *inputs, int ninputs);
/* The same with the product's md5 already known (computed as it was
 * written: sk_write_opts.md5); NULL: computed from the file. */
int sk_sidecar_write_md5(const char *product_path, const char *md5, const char *product_type,
                         const sk_prov *prov, const sk_input_file *inputs, int ninputs);

/* Read a sidecar: the provenance (ids checked all the way up), product
 * type and md5 it records; every output pointer may be NULL when not
 * wanted. `*json_out` receives the whole document (new reference).
 * SK_ENOTFOUND when there is no sidecar, SK_EINPUT when it is malformed. */
int sk_sidecar_read(const char *product_path, sk_prov **prov, char *product_type,
                    size_t type_size, char md5[33], json_t **json_out);

/* Compare the inputs a sidecar records (`doc`, as sk_sidecar_read gives
 * it) with `inputs`, by role and md5 (paths may differ: the same content
 * under another name is the same input; a recorded input without a role
 * matches on its md5 alone). 0 when they are the same set; 1 when not,
 * with `what` (when not NULL) saying which input changed, e.g.
 * "weight w2.fits (md5 ...) was not an input (it had weight w1.fits (md5 ...))". */
int sk_sidecar_inputs_differ(const json_t *doc, const sk_input_file *inputs, int ninputs, char *what,
                             size_t what_size);

/* Check that the file's md5 matches its sidecar: SK_OK, or SK_EINPUT naming
 * both values. */
int sk_sidecar_verify(const char *product_path);

/* Record `value` (stolen, even on error) under `key` in the existing
 * sidecar of `product_path`, rewritten atomically; the keys that make the
 * sidecar (product_type, path, md5, provenance, inputs, created, software)
 * cannot be set. SK_ENOTFOUND when the product has no sidecar. */
int sk_sidecar_set(const char *product_path, const char *key, json_t *value);

#ifdef __cplusplus
}
#endif
#endif
