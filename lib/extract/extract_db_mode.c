/* extract_db_mode.c: the database mode of the extraction of one image: find the image, its products' places in the data root, the claim on (image, provenance), reuse of a registered extraction whose files are intact, the computation with no transaction open, and the rows of what was made in one short transaction. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "skystack/atomic.h"
#include "skystack/calib.h"
#include "skystack/db.h"
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/lifecycle.h"
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
    char rel_src[4200], rel_bkg[4200], rel_psf[4200], rel_head[4200], rel_reg[4200];
    char rel_tpv[4200];           /* with request.tpv_head, else "" */
} db_image;

/* The images row of the request's image, its file, and the extraction
 * provenance with the image's (from its sidecar, which must agree with
 * the row) upstream (what the request adds comes once its inputs are
 * known). */
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
    if (!sk_path_is_file(I->path))
        return sk_error(SK_ENOTFOUND, "image %s: its file %s is missing from the data root (the row is "
                                      "there, the file is gone): %s; `skydb fsck` lists what is missing",
                        I->id_text, I->path,
                        strcmp(I->row.type, "coadd") ? "ingest the original again (imingest restores it "
                                                       "under the same id)"
                                                     : "make the coadd again (coadd or refmake rebuild "
                                                       "it under the same id)");
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

/* DIR/BASE.{sources.fits,bkg.fits,reg,psf,head} (and .tpv.head) in the
 * image's product directory of the data root, and their stored (relative)
 * paths. */
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
    rc = rc ? rc : sk_path_format(I->rel_reg, sizeof I->rel_reg, "%s/%s.reg", reldir, base);
    if (!rc && J->rq->tpv_head) {
        rc = sk_path_format(I->rel_tpv, sizeof I->rel_tpv, "%s/%s.tpv.head", reldir, base);
        rc = rc ? rc : sk_path_format(P->tpv, sizeof P->tpv, "%s/%s.tpv.head", I->dir, base);
    }
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
    if (!rc && J->rq->tpv_head)
        rc = sk_path_format(P->tpv, sizeof P->tpv, "%s.tpv.head", rb);
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

/* Are the files the rows of the registered extraction name there, each
 * with the md5 of its row? *intact 0 (and the first one that is not,
 * logged) when one is missing or damaged: the extraction is then made
 * anew under the same rows. */
static int registered_files_intact(const extract_job *J, const db_image *I, int *intact)
{
    sk_registered_file f[4];
    int n = 0;
    *intact = 1;
    int rc = sk_db_extraction_files(J->rq->db, I->row.id, J->prov->id, f, &n);
    for (int i = 0; !rc && i < n && *intact; i++) {
        char path[4200], md5[33];
        rc = sk_storage_resolve(J->S->data_root, f[i].relpath, path, sizeof path);
        if (rc)
            break;
        int there = sk_path_is_file(path);
        *intact = there && sk_md5_file(path, md5) == SK_OK && !strcmp(md5, f[i].md5);
        sk_error_clear();
        if (!*intact)
            sk_warn("image %s: extraction %s: %s %s: made anew under the same rows", I->id_text,
                    J->prov->id, path, there ? "does not match its row's checksum" : "is missing");
    }
    return rc;
}

/* This worker's claim on (image, provenance): a session advisory lock and
 * a claims row naming the products it may leave (see lifecycle.h). */
static int claim_extraction(const extract_job *J, const db_image *I, sk_claim **claim)
{
    char name[160];
    snprintf(name, sizeof name, "extraction|%s|%s", I->id_text, J->prov->id);
    const char *paths[6] = {I->rel_src, I->rel_bkg, I->rel_psf, I->rel_head, I->rel_reg, I->rel_tpv};
    return sk_claim_take(J->rq->db, name, paths, I->rel_tpv[0] ? 6 : 5, claim);
}

/* Under the claim: *exists 1 when a registered extraction made from the
 * inputs X has every file intact (its products are then in J->P); one
 * made from other inputs is refused. Otherwise the temporary files a
 * stopped worker left go, since this process makes the products. */
static int look_for_registered(extract_job *J, const db_image *I, const extract_inputs *X, int *exists)
{
    char src_rel[4200], bkg_rel[4200];
    char *inputs_json = NULL;
    int found = 0;
    int rc = sk_db_extraction_find(J->rq->db, I->row.id, J->prov->id, src_rel, sizeof src_rel, bkg_rel,
                                   sizeof bkg_rel, &inputs_json, &found);
    if (!rc && found)
        rc = registered_inputs_same(J, I, X, inputs_json);
    free(inputs_json);
    int intact = 0;
    if (!rc && found)
        rc = registered_files_intact(J, I, &intact);
    *exists = !rc && found && intact;
    if (rc)
        return rc;
    if (*exists) {
        rc = use_registered(J, I, src_rel, bkg_rel);
        return rc ? rc : extract_ensure_tpv_head(J, X->in, X->n);
    }
    char stem[4200];
    sk_path_strip_fits_ext(sk_path_base_name(I->row.filepath), stem, sizeof stem);
    sk_path_remove_temporaries(I->dir, stem);
    return SK_OK;
}

/* The rows of the products just written, and the calibration's
 * (calib.h), with the provenance, in one short transaction. */
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
    if (rc) {
        free(inputs_json);
        return rc;
    }
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
    sk_db *db = J->rq->db;
    sk_db_test_point("extract-files");
    rc = sk_db_begin(db);
    rc = rc ? rc : sk_db_save_prov(db, J->prov);
    rc = rc ? rc : sk_db_extraction_register(db, &r);
    rc = rc ? rc : sk_calib_db_save(db, I->id_text, J->prov->id, M->cal, I->rel_psf, J->P.psf,
                                     I->rel_head, J->P.head, img->width, img->height);
    if (!rc)
        sk_db_test_point("extract-tx");
    rc = rc ? rc : sk_db_commit(db);
    sk_db_rollback(db);
    free(inputs_json);
    return rc;
}

/* Under the claim, no transaction open: compute and write the products
 * (each under a temporary name, then renamed), then their rows; what was
 * written goes on a failure. */
static int make_and_register(extract_job *J, const db_image *I, extract_inputs *X)
{
    int rc = sk_mkdir_p(I->dir);
    if (rc)
        return rc;
    sk_db_test_point("extract-claimed");
    extract_made M = {0};
    rc = extract_make_products(J, X, isfinite(I->row.gain) ? I->row.gain : 0, &M);
    if (!rc) {
        rc = register_rows(J, I, &M);
        if (rc)
            extract_remove_products(&J->P);
    }
    extract_made_clear(&M);
    return rc;
}

int extract_in_database(extract_job *J, sk_extract_outcome *out)
{
    db_image I;
    memset(&I, 0, sizeof I);
    extract_inputs X;
    memset(&X, 0, sizeof X);
    int rc = find_image(J, &I);
    rc = rc ? rc : extract_inputs_of(J, I.path, I.id_text, 0, &X);
    rc = rc ? rc : extract_add_request_prov(J, &X, &J->prov);
    rc = rc ? rc : product_paths(J, &I);
    if (rc) {
        extract_inputs_clear(&X);
        return rc;
    }
    out->image_id = I.row.id;
    if (I.row.md5[0] && strcmp(X.md5[0], I.row.md5) != 0)
        rc = sk_error(SK_EINPUT, "image %s: %s does not match its row's checksum (changed or damaged "
                                 "since it was registered); `skydb fsck --checksums` lists such files",
                      I.id_text, I.path);
    sk_claim *claim = NULL;
    int exists = 0;
    rc = rc ? rc : claim_extraction(J, &I, &claim);
    rc = rc ? rc : look_for_registered(J, &I, &X, &exists);
    if (!rc && !exists)
        rc = make_and_register(J, &I, &X);
    if (!rc)
        extract_fill_outcome(J, exists, out);
    if (claim && sk_claim_release(J->rq->db, claim) && !rc)
        rc = sk_errstatus();
    extract_inputs_clear(&X);
    return rc;
}
