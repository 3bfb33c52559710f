/* extract_db_mode.c: the database mode of the extraction of one image: find the image, its products' places in the data root, reuse of a registered extraction or a claim under the advisory lock, and the rows of what was made. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "skystack/atomic.h"
#include "skystack/calib.h"
#include "skystack/db.h"
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/log.h"
#include "skystack/storage.h"
#include "skystack/wcs.h"
#include "core/path_priv.h"
#include "db/pipeline_rows_priv.h"
#include "extract_run_priv.h"
#include "calib/calib_internal.h"
#include "db/db_internal.h"

/* The image in the database and the data root. */
typedef struct db_image {
    sk_registered_image row;
    char id_text[32];
    char path[4200];              /* the image file */
    char dir[4200];               /* the products' directory */
    char rel_src[4200], rel_bkg[4200], rel_psf[4200], rel_head[4200];
} db_image;

/* The images row of the request's image, its file, and the extraction
 * provenance with the image's (from its sidecar, which must agree with
 * the row) upstream. */
static int find_image(extract_job *J, db_image *I)
{
    const char *root = J->S->data_root;
    int rc = sk_db_find_image(J->rq->db, root, J->rq->image, &I->row);
    if (rc)
        return rc;
    snprintf(I->id_text, sizeof I->id_text, "%lld", I->row.id);
    rc = sk_storage_resolve(root, I->row.filepath, I->path, sizeof I->path);
    if (rc)
        return rc;
    sk_prov *up = NULL;
    char stype[64], md5[33];
    rc = sk_sidecar_read(I->path, &up, stype, sizeof stype, md5, NULL);
    if (rc)
        return sk_error_context("image %s", I->id_text);
    if (strcmp(up->id, I->row.provenance_id) != 0)
        rc = sk_error(SK_EINPUT, "%s: its sidecar names provenance %s, the database %s", I->path, up->id,
                      I->row.provenance_id);
    rc = rc ? rc : extract_make_prov(J->S, up, &J->prov);
    sk_prov_free(up);
    return rc;
}

/* DIR/BASE.{sources.fits,bkg.fits,reg,psf,head} in the image's product
 * directory of the data root, and their stored (relative) paths. */
static int product_paths(extract_job *J, db_image *I)
{
    const sk_registered_image *r = &I->row;
    char reldir[4096], base[4096];
    int rc = sk_storage_dir(r->instrument, r->mjd, r->section[0] ? r->section : NULL, r->filter, r->type,
                            J->prov->id, reldir, sizeof reldir);
    rc = rc ? rc : sk_storage_resolve(J->S->data_root, reldir, I->dir, sizeof I->dir);
    if (rc)
        return rc;
    sk_path_strip_fits_ext(sk_path_base_name(r->filepath), base, sizeof base);
    extract_products *P = &J->P;
    rc = sk_path_format(I->rel_psf, sizeof I->rel_psf, "%s/%s.psf", reldir, base);
    rc = rc ? rc : sk_path_format(I->rel_head, sizeof I->rel_head, "%s/%s.head", reldir, base);
    rc = rc ? rc : sk_path_format(P->psf, sizeof P->psf, "%s/%s.psf", I->dir, base);
    rc = rc ? rc : sk_path_format(P->head, sizeof P->head, "%s/%s.head", I->dir, base);
    rc = rc ? rc : sk_path_format(I->rel_src, sizeof I->rel_src, "%s/%s.sources.fits", reldir, base);
    rc = rc ? rc : sk_path_format(I->rel_bkg, sizeof I->rel_bkg, "%s/%s.bkg.fits", reldir, base);
    rc = rc ? rc : sk_path_format(P->src, sizeof P->src, "%s/%s.sources.fits", I->dir, base);
    rc = rc ? rc : sk_path_format(P->bkg, sizeof P->bkg, "%s/%s.bkg.fits", I->dir, base);
    rc = rc ? rc : sk_path_format(P->reg, sizeof P->reg, "%s/%s.reg", I->dir, base);
    return rc;
}

/* A registered extraction: its products where the rows say, the other
 * names beside its source list. */
static int use_registered(extract_job *J, const db_image *I, const char *src_rel, const char *bkg_rel)
{
    extract_products *P = &J->P;
    char a[4200], b[4200];
    int rc = sk_storage_resolve(J->S->data_root, src_rel, a, sizeof a);
    rc = rc ? rc : sk_storage_resolve(J->S->data_root, bkg_rel, b, sizeof b);
    if (rc)
        return rc;
    snprintf(P->src, sizeof P->src, "%s", a);
    snprintf(P->bkg, sizeof P->bkg, "%s", b);
    char rb[4200];
    sk_path_strip_fits_ext(a, rb, sizeof rb);
    size_t n = strlen(rb);
    if (n > 8 && strcmp(rb + n - 8, ".sources") == 0)
        rb[n - 8] = '\0';
    rc = sk_path_format(P->reg, sizeof P->reg, "%s.reg", rb);
    rc = rc ? rc : sk_path_format(P->psf, sizeof P->psf, "%s.psf", rb);
    rc = rc ? rc : sk_path_format(P->head, sizeof P->head, "%s.head", rb);
    sk_info("image %s: extraction %s exists already", I->id_text, J->prov->id);
    return rc ? rc : extract_ensure_regions(J);
}

/* Were the registered extraction's products made from the inputs X?
 * SK_OK when so (or when the row predates the record of its inputs),
 * else SK_EINPUT naming the input that changed. */
static int registered_inputs_same(const extract_job *J, const db_image *I, const extract_inputs *X,
                                  const char *inputs_json)
{
    if (!inputs_json) {
        sk_debug("image %s: extraction %s registered without its inputs", I->id_text, J->prov->id);
        return SK_OK;
    }
    json_error_t jerr;
    json_t *ins = json_loads(inputs_json, 0, &jerr);
    json_t *doc = ins ? json_pack("{s:o}", "inputs", ins) : NULL;
    char what[9000];
    int differ = !doc || sk_sidecar_inputs_differ(doc, X->in, X->n, what, sizeof what);
    json_decref(doc);
    if (!differ)
        return SK_OK;
    if (!doc)
        snprintf(what, sizeof what, "its inputs are not JSON");
    return sk_error(SK_EINPUT, "image %s (%s): extraction %s exists already but was made from other "
                               "inputs: %s; its products are not replaced (they are registered)",
                    I->id_text, I->path, J->prov->id, what);
}

/* Begin the transaction, take the advisory lock of (image, provenance)
 * and look for a registered extraction: *exists 1 when there is one made
 * from the inputs X (the transaction is then rolled back and its
 * products are in J->P); one made from other inputs is refused. */
static int claim_or_reuse(extract_job *J, const db_image *I, const extract_inputs *X, int *exists)
{
    sk_db *db = J->rq->db;
    char lockname[128], src_rel[4200], bkg_rel[4200];
    char *inputs_json = NULL;
    snprintf(lockname, sizeof lockname, "extraction/%s/%s", I->id_text, J->prov->id);
    int found = 0;
    int rc = sk_db_begin(db);
    rc = rc ? rc : sk_db_lock(db, lockname);
    rc = rc ? rc : sk_db_extraction_find(db, I->row.id, J->prov->id, src_rel, sizeof src_rel, bkg_rel,
                                         sizeof bkg_rel, &inputs_json, &found);
    *exists = !rc && found;
    if (*exists)
        rc = registered_inputs_same(J, I, X, inputs_json);
    free(inputs_json);
    if (!rc && !*exists) { /* this process makes them: what a stopped one left goes */
        char stem[4200];
        sk_path_strip_fits_ext(sk_path_base_name(I->row.filepath), stem, sizeof stem);
        sk_path_remove_temporaries(I->dir, stem);
    }
    if (!*exists || rc)
        return rc;
    sk_db_rollback(db);
    return use_registered(J, I, src_rel, bkg_rel);
}

/* The rows of the products just written, and the calibration's (calib.h). */
static int register_rows(const extract_job *J, const db_image *I, const extract_made *M)
{
    char md5s[33], md5b[33];
    json_t *side = NULL;
    int rc = sk_sidecar_read(J->P.src, NULL, NULL, 0, NULL, &side);
    char *inputs_json = rc ? NULL : json_dumps(json_object_get(side, "inputs"), JSON_COMPACT);
    json_decref(side);
    if (!rc && !inputs_json)
        rc = sk_error(SK_EIO, "out of memory");
    rc = rc ? rc : sk_md5_file(J->P.src, md5s);
    rc = rc ? rc : sk_md5_file(J->P.bkg, md5b);
    if (rc)
        return rc;
    const sk_image *img = M->img;
    double scale = img->wcs ? sk_wcs_pixel_scale_arcsec(img->wcs, 0.5 * (double)img->width,
                                                        0.5 * (double)img->height)
                            : NAN;
    sk_extraction_record r = {
        .image_id = I->row.id,
        .prov_id = J->prov->id,
        .source_list_relpath = I->rel_src,
        .source_list_md5 = md5s,
        .nsources = M->res->sources->n,
        .background_relpath = I->rel_bkg,
        .background_md5 = md5b,
        .background_level_adu = M->res->background->median_level,
        .background_rms_adu = M->res->background->median_rms,
        .fwhm_arcsec = isfinite(scale) && scale > 0 ? M->res->fwhm_px * scale : NAN,
        .inputs_json = inputs_json,
    };
    rc = sk_db_extraction_register(J->rq->db, &r);
    rc = rc ? rc : sk_calib_db_save(J->rq->db, I->id_text, J->prov->id, M->cal, I->rel_psf, J->P.psf,
                                     I->rel_head, J->P.head, img->width, img->height);
    free(inputs_json);
    return rc;
}

int extract_in_database(extract_job *J, sk_extract_outcome *out)
{
    sk_db *db = J->rq->db;
    db_image I;
    memset(&I, 0, sizeof I);
    int rc = find_image(J, &I);
    rc = rc ? rc : product_paths(J, &I);
    if (rc)
        return rc;
    out->image_id = I.row.id;
    extract_inputs X;
    rc = extract_inputs_of(J, I.path, I.id_text, &X);
    int exists = 0;
    rc = rc ? rc : claim_or_reuse(J, &I, &X, &exists);
    if (exists || rc) {
        if (!rc)
            extract_fill_outcome(J, 1, out);
        extract_inputs_clear(&X);
        sk_db_rollback(db);
        return rc;
    }
    extract_made M = {0};
    int wrote = 0;
    rc = rc ? rc : sk_db_save_prov(db, J->prov);
    rc = rc ? rc : sk_mkdir_p(I.dir);
    if (!rc) {
        rc = extract_make_products(J, &X, isfinite(I.row.gain) ? I.row.gain : 0, &M);
        wrote = rc == SK_OK;
    }
    rc = rc ? rc : register_rows(J, &I, &M);
    rc = rc ? rc : sk_db_commit(db);
    if (rc) {
        sk_db_rollback(db);
        if (wrote)
            extract_remove_products(&J->P);
    } else {
        extract_fill_outcome(J, 0, out);
    }
    extract_made_clear(&M);
    extract_inputs_clear(&X);
    return rc;
}
