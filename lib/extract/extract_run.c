/* extract_run.c: the extraction of one image as a library call: its settings read once from the configuration, the request checked, the provenance, reuse of existing products, the products written with their sidecars, and the file-only mode (extract(1) --no-db). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "skystack/atomic.h"
#include "skystack/calib.h"
#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/fits.h"
#include "skystack/hash.h"
#include "skystack/header.h"
#include "skystack/log.h"
#include "skystack/provenance.h"
#include "skystack/storage.h"
#include "skystack/wcs.h"
#include "core/parallel.h"
#include "core/path_priv.h"
#include "extract_run_priv.h"
#include "calib/calib_internal.h"
#include "extract_internal.h"

/* ---- settings ---- */

int sk_extract_settings_read(const sk_config *cfg, int database, sk_extract_settings *out)
{
    memset(out, 0, sizeof *out);
    sk_extract_params_default(&out->params);
    out->calib = calloc(1, sizeof *out->calib);
    if (!out->calib)
        return sk_error(SK_EIO, "out of memory");
    sk_calib_params_default(out->calib);
    int rc = sk_extract_params_from_json(cfg->root, &out->params);
    rc = rc ? rc : sk_calib_params_from_json(cfg->root, out->calib);
    out->critical = rc ? NULL : sk_config_critical(cfg, "extraction");
    if (!rc && !out->critical)
        rc = sk_errstatus() ? sk_errstatus() : SK_EIO;
    /* the reference catalogue enters the provenance by its id (added when
       it is opened), never by where it is or the names of its columns */
    json_t *astro = rc ? NULL : json_object_get(out->critical, "astrometry");
    static const char *const by_id[] = {"refcat", "columns", "ra_column", "dec_column", "mag_column",
                                        "mag_err_column"};
    for (size_t i = 0; astro && i < sizeof by_id / sizeof by_id[0]; i++)
        json_object_del(astro, by_id[i]);
    if (!rc) {
        long t = sk_config_long(cfg, "extraction.threads", 0);
        out->config_threads = t > 0 ? (int)t : 0;
    }
    if (!rc && database)
        rc = sk_storage_root(cfg, out->data_root, sizeof out->data_root);
    return rc;
}

void sk_extract_settings_clear(sk_extract_settings *s)
{
    sk_extract_params_clear(&s->params);
    if (s->calib)
        sk_calib_params_clear(s->calib);
    free(s->calib);
    s->calib = NULL;
    json_decref(s->critical);
    s->critical = NULL;
}

int sk_extract_check(const sk_extract_request *rq, const sk_extract_settings *s)
{
    if (rq->outdir && rq->db)
        return sk_error(SK_EINPUT, "--outdir: only with --no-db (the database decides where products go)");
    if (rq->update_header && rq->db)
        return sk_error(SK_EINPUT, "--update-header: only with --no-db (a registered image is not "
                                   "changed: its solved WCS is in the database and the .head product)");
    if ((rq->weight_hdu || rq->mask_hdu) && rq->db)
        return sk_error(SK_EINPUT, "--%s: only with --no-db (registered images hold WGT and FLG)",
                        rq->weight_hdu ? "weight-hdu" : "mask-hdu");
    if (rq->tpv_head && s->calib->nrefcat == 0)
        return sk_error(SK_EINPUT, "--tpv-head: no reference catalogue to solve the WCS with "
                                   "(--refcat or extraction.astrometry.refcat)");
    if (rq->update_header && s->calib->nrefcat == 0)
        return sk_error(SK_EINPUT, "--update-header: no reference catalogue to solve the WCS with "
                                   "(--refcat or extraction.astrometry.refcat)");
    if (rq->outdir)
        return sk_mkdir_p(rq->outdir);
    return SK_OK;
}

/* ---- the steps both modes share ---- */

/* The provenance parameters of settings whose catalogue is open. */
static json_t *prov_params(const sk_extract_settings *S)
{
    json_t *params = json_deep_copy(S->critical);
    json_t *astro = json_object_get(params, "astrometry");
    const sk_catsource *cat = S->calib->catalog;
    if (cat && json_is_object(astro))
        json_object_set_new(astro, "refcat_id", json_string(sk_catsource_info(cat)->id));
    if (!params)
        sk_error(SK_EIO, "out of memory");
    return params;
}

json_t *sk_extract_prov_params(const sk_config *cfg, sk_db *db)
{
    sk_extract_settings S;
    int rc = sk_extract_settings_read(cfg, 0, &S);
    rc = rc ? rc : sk_calib_open_catalog(S.calib, db);
    json_t *params = rc ? NULL : prov_params(&S);
    sk_extract_settings_clear(&S);
    return params;
}

int extract_make_prov(const sk_extract_settings *S, const sk_prov *up, sk_prov **out)
{
    json_t *params = prov_params(S);
    int rc = params ? sk_prov_new("extraction", sk_code_version("extraction"), params, out) : SK_EIO;
    json_decref(params);
    if (!rc && up)
        rc = sk_prov_add_upstream(*out, up);
    return rc;
}

/* ds9 regions from a source table: ellipses of 3 A x 3 B at the windowed
 * centroid, 1-based image coordinates; flagged sources in red. */
static int write_regions(const char *path, const sk_table *t)
{
    sk_column *cx = sk_table_column(t, "XWIN_IMAGE"), *cy = sk_table_column(t, "YWIN_IMAGE");
    sk_column *ca = sk_table_column(t, "A_IMAGE"), *cb = sk_table_column(t, "B_IMAGE");
    sk_column *ct = sk_table_column(t, "THETA_IMAGE"), *cf = sk_table_column(t, "FLAGS");
    sk_column *cn = sk_table_column(t, "NUMBER");
    if (!cx || !cy || !ca || !cb || !ct || !cf || !cn)
        return sk_error(SK_EINPUT, "%s: the source table lacks the columns of a region file", path);
    sk_atomic *a = NULL;
    int rc = sk_atomic_open(path, &a);
    if (rc)
        return rc;
    fprintf(a->fp, "# Region file format: DS9 version 4.1\n");
    fprintf(a->fp, "# extract: ellipses of 3 A_IMAGE x 3 B_IMAGE at (XWIN_IMAGE, YWIN_IMAGE); red = FLAGS set\n");
    fprintf(a->fp, "global color=green font=\"helvetica 8 normal\"\nimage\n");
    for (long k = 0; k < t->nrows; k++) {
        double A = 3 * sk_column_get(ca, k, 0), B = 3 * sk_column_get(cb, k, 0);
        if (A < 1.5)
            A = 1.5;
        if (B < 1.5)
            B = 1.5;
        long flags = (long)sk_column_get(cf, k, 0);
        fprintf(a->fp, "ellipse(%.3f,%.3f,%.3f,%.3f,%.2f) # text={%ld}%s\n", sk_column_get(cx, k, 0),
                sk_column_get(cy, k, 0), A, B, sk_column_get(ct, k, 0), (long)sk_column_get(cn, k, 0),
                flags ? " color=red" : "");
    }
    return sk_atomic_commit(a);
}

int extract_ensure_regions(const extract_job *J)
{
    if (!J->rq->regions || sk_path_is_file(J->P.reg))
        return SK_OK;
    sk_table *t = NULL;
    int rc = sk_fits_read_table(J->P.src, "SOURCES", &t);
    rc = rc ? rc : write_regions(J->P.reg, t);
    sk_table_free(t);
    return rc;
}

void extract_remove_products(const extract_products *P)
{
    const char *paths[] = {P->src, P->bkg, P->reg, P->psf, P->head, P->tpv};
    for (int i = 0; i < 6; i++)
        if (paths[i][0])
            sk_path_remove_product(paths[i]);
}

/* The solved WCS of the .head product also as TPV (wcs_tpv.c), with its
 * sidecar, when the request asks for it and it is not there yet. */
int extract_ensure_tpv_head(const extract_job *J, const sk_input_file *in, int nin)
{
    if (!J->rq->tpv_head || !J->P.tpv[0] || !sk_path_is_file(J->P.head) || sk_path_is_file(J->P.tpv))
        return SK_OK;
    sk_header *h = NULL, *tpv = NULL;
    int rc = sk_header_read_cards_file(J->P.head, &h);
    rc = rc ? rc : sk_wcs_header_to_tpv(h, &tpv);
    rc = rc ? rc : sk_header_write_cards_file(J->P.tpv, tpv);
    rc = rc ? rc : sk_sidecar_write(J->P.tpv, "world_coordinates", J->prov, in, nin);
    sk_header_free(h);
    sk_header_free(tpv);
    return rc ? sk_error_context("%s", J->P.tpv) : SK_OK;
}

void extract_made_clear(extract_made *M)
{
    sk_calib_free(M->cal);
    sk_extract_result_free(M->res);
    sk_image_free(M->img);
    sk_image_free(M->det_img);
    memset(M, 0, sizeof *M);
}

static int read_image(const sk_extract_request *rq, const char *path, sk_image **img)
{
    sk_read_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.hdu = rq->hdu;
    ro.noise_path = rq->weight;
    ro.noise_kind = rq->weight_kind;
    ro.mask_path = rq->mask;
    ro.noise_hdu = rq->weight_hdu;
    ro.mask_hdu = rq->mask_hdu;
    ro.threads = rq->threads;
    return sk_fits_read_image(path, &ro, img);
}

/* The largest WCS difference (in pixels of the measured image) allowed
 * between the detection image and the measured one. */
#define DUAL_GRID_TOLERANCE_PX 0.01

/* Dual-image mode: the detection image, which must be on the grid of the
 * measured image `img` (read from `image_path`). */
static int read_detection_image(const sk_extract_request *rq, const char *image_path, const sk_image *img,
                                sk_image **det)
{
    int rc = sk_fits_read_image(rq->detect, NULL, det);
    if (rc)
        return sk_error_context("--detect %s", rq->detect);
    const sk_image *d = *det;
    if (d->width != img->width || d->height != img->height)
        return sk_error(SK_EINPUT, "--detect %s: the detection image is %ldx%ld pixels, the image %s %ldx%ld: "
                                   "they must be on one grid", rq->detect, d->width, d->height, image_path,
                        img->width, img->height);
    if (!d->wcs != !img->wcs)
        return sk_error(SK_EINPUT, "--detect %s: %s has a WCS and %s none: they must be on one grid", rq->detect,
                        d->wcs ? rq->detect : image_path, d->wcs ? image_path : rq->detect);
    if (d->wcs) {
        double off = sk_wcs_grid_offset_arcsec(d->wcs, img->wcs, img->width, img->height);
        double scale = sk_wcs_pixel_scale_arcsec(img->wcs, 0.5 * (double)(img->width - 1),
                                                 0.5 * (double)(img->height - 1));
        if (!(off <= DUAL_GRID_TOLERANCE_PX * scale))
            return sk_error(SK_EINPUT, "--detect %s: its WCS differs from that of the image %s by %.3g arcsec "
                                       "(%.3g px; at most %g px allowed): they must be on one grid",
                            rq->detect, image_path, off, off / scale, DUAL_GRID_TOLERANCE_PX);
    }
    return SK_OK;
}

/* Background, detection, measurement, then the calibration (calib.h). */
static int extract_and_calibrate(const extract_job *J, const char *image_path, double gain_fallback,
                                 extract_made *M, double *threshold_sigma)
{
    sk_extract_params p = J->S->params;
    const sk_image *img = M->img;
    if (!(p.gain > 0) && gain_fallback > 0) {
        double g;
        if (!(img->header && sk_header_get_double(img->header, p.gain_key, &g) == 1 && g > 0))
            p.gain = gain_fallback;
    }
    *threshold_sigma = p.detect.threshold_sigma;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = M->det_img ? sk_extract_run_dual(M->det_img, img, &p, J->rq->threads, &M->res)
                        : sk_extract_run(img, &p, J->rq->threads, &M->res);
    if (rc)
        return sk_error_context("%s", image_path);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sk_extract_result *r = M->res;
    sk_info("%s: %ld sources, FWHM %.2f px, background %.3g rms %.3g, gain %g, %.2f s", image_path,
            r->sources->n, r->fwhm_px, r->background->median_level, r->background->median_rms, r->gain,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    /* the second detection pass needs the detection on the measured
       image itself: not in dual-image mode */
    rc = sk_calib_run(img, r, J->S->calib, M->det_img ? NULL : &p, J->rq->threads, &M->cal);
    if (rc)
        return sk_error_context("%s", image_path);
    return SK_OK;
}

/* The source table, its RA/DEC through the solved WCS, with the cards
 * that say where it comes from. */
static int source_table(const extract_job *J, const extract_made *M, const char *image_path,
                        double threshold_sigma, sk_table **t)
{
    sk_image solved = *M->img;
    if (M->cal->astrom)
        solved.wcs = M->cal->astrom->wcs;
    const sk_extract_result *r = M->res;
    int rc = sk_source_table(r->sources, &solved, t);
    rc = rc ? rc : sk_calib_annotate_table(M->cal, *t);
    if (rc)
        return rc;
    sk_header *h = (*t)->header;
    sk_header_set_str(h, "PROVID", J->prov->id, "extraction provenance");
    sk_header_set_str(h, "IMAGE", sk_path_base_name(image_path), "image the sources come from");
    if (J->rq->detect)
        sk_header_set_str(h, "DETIMAGE", sk_path_base_name(J->rq->detect),
                          "dual-image mode: detection image (positions, shapes)");
    sk_header_set_double(h, "GAIN", r->gain, "[e/adu] gain used (0 = none)");
    sk_header_set_double(h, "THRESH", threshold_sigma, "detection threshold, per-pixel background sigma");
    sk_header_set_double(h, "BKGMED", r->background->median_level, "[adu] median background");
    sk_header_set_double(h, "RMSMED", r->background->median_rms, "[adu] median background rms");
    return SK_OK;
}

/* The md5 of each input of X that has none yet. */
static int inputs_md5(void *user)
{
    extract_inputs *X = user;
    for (int i = 0; i < X->n; i++) {
        if (X->in[i].md5)
            continue;
        int rc = sk_md5_file(X->in[i].path, X->md5[i]);
        if (rc)
            return sk_error_context("%s file", X->in[i].role);
        X->in[i].md5 = X->md5[i];
    }
    return SK_OK;
}

int extract_inputs_of(const extract_job *J, const char *image_path, const char *image_id,
                      int defer, extract_inputs *X)
{
    const sk_calib_params *C = J->S->calib;
    const sk_extract_request *rq = J->rq;
    memset(X, 0, sizeof *X);
    X->in = calloc((size_t)(4 + C->nrefcat), sizeof *X->in);
    X->md5 = calloc((size_t)(4 + C->nrefcat), sizeof *X->md5);
    if (!X->in || !X->md5)
        return sk_error(SK_EIO, "out of memory");
    static const char *const kinds[] = {"weight", "variance", "rms"};
    int kind = rq->weight_kind >= 0 && rq->weight_kind < 3 ? rq->weight_kind : 0;
    X->in[X->n++] = (sk_input_file){image_id, image_path, NULL, "image"};
    if (rq->image_md5 && strlen(rq->image_md5) == 32) { /* the caller's, not computed again */
        snprintf(X->md5[0], sizeof X->md5[0], "%s", rq->image_md5);
        X->in[0].md5 = X->md5[0];
    }
    if (rq->weight)
        X->in[X->n++] = (sk_input_file){NULL, rq->weight, NULL, kinds[kind]};
    if (rq->mask)
        X->in[X->n++] = (sk_input_file){NULL, rq->mask, NULL, "mask"};
    if (rq->detect)
        X->in[X->n++] = (sk_input_file){NULL, rq->detect, NULL, "detection"};
    X->npixels = X->n;
    /* the catalogue by its id and content digest, wherever it is */
    if (C->catalog) {
        const sk_catinfo *ci = sk_catsource_info(C->catalog);
        snprintf(X->md5[X->n], sizeof X->md5[0], "%.32s", ci->id);
        X->in[X->n] = (sk_input_file){ci->id, C->refcat_spec, X->md5[X->n], "refcat"};
        X->n++;
    }
    for (int i = 0; i < X->n; i++)
        if (!X->in[i].md5 && !sk_path_is_file(X->in[i].path))
            return sk_error(SK_ENOTFOUND, "%s: %s file: no such file", X->in[i].path, X->in[i].role);
    /* the detection image's md5 is part of the provenance: now */
    for (int i = 0; i < X->n; i++)
        if (!X->in[i].md5 && !strcmp(X->in[i].role, "detection")) {
            int rc = sk_md5_file(X->in[i].path, X->md5[i]);
            if (rc)
                return sk_error_context("%s file", X->in[i].role);
            X->in[i].md5 = X->md5[i];
        }
    if (!defer)
        return inputs_md5(X);
    return sk_task_start(J->rq->threads, inputs_md5, X, &X->md5_task);
}

int extract_inputs_md5(extract_inputs *X)
{
    sk_task *t = X->md5_task;
    X->md5_task = NULL;
    return sk_task_join(t);
}

void extract_inputs_clear(extract_inputs *X)
{
    if (X->md5_task) { /* left running by a failure: wait for it, keeping that failure's message */
        int st = sk_errstatus();
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", sk_errmsg());
        (void)extract_inputs_md5(X);
        sk_error_clear();
        if (st)
            sk_error(st, "%s", msg);
    }
    free(X->in);
    free(X->md5);
    memset(X, 0, sizeof *X);
}

/* Every product and its sidecar: the source list and the WCS name every
 * input, the background and the PSF those of the pixels. */
static int write_products(const extract_job *J, const extract_made *M, const extract_inputs *X,
                          const sk_table *t)
{
    const extract_products *P = &J->P;
    int rc = sk_fits_write_table(P->src, t);
    rc = rc ? rc : sk_sidecar_write(P->src, "source_list", J->prov, X->in, X->n);
    rc = rc ? rc : sk_background_write(P->bkg, M->res->background, J->rq->full_background, M->res->fwhm_px);
    rc = rc ? rc : sk_sidecar_write(P->bkg, "background", J->prov, X->in, X->npixels);
    if (!rc && M->cal->psf) {
        rc = sk_psf_write(P->psf, M->cal->psf);
        rc = rc ? rc : sk_sidecar_write(P->psf, "psf", J->prov, X->in, X->npixels);
    }
    if (!rc && M->cal->astrom) {
        rc = sk_calib_write_head(P->head, M->cal);
        rc = rc ? rc : sk_sidecar_write(P->head, "world_coordinates", J->prov, X->in, X->n);
    }
    if (!rc && J->rq->regions)
        rc = write_regions(P->reg, t);
    rc = rc ? rc : extract_ensure_tpv_head(J, X->in, X->n);
    return rc;
}

int extract_make_products(const extract_job *J, extract_inputs *X, double gain_fallback,
                          extract_made *M)
{
    const char *image_path = X->in[0].path;
    double threshold_sigma = 0;
    int rc = read_image(J->rq, image_path, &M->img);
    if (!rc && J->rq->detect)
        rc = read_detection_image(J->rq, image_path, M->img, &M->det_img);
    if (rc)
        return rc;
    if ((rc = extract_and_calibrate(J, image_path, gain_fallback, M, &threshold_sigma)))
        return rc;
    sk_table *t = NULL;
    rc = source_table(J, M, image_path, threshold_sigma, &t);
    rc = rc ? rc : extract_inputs_md5(X);
    rc = rc ? rc : write_products(J, M, X, t);
    sk_table_free(t);
    if (rc)
        extract_remove_products(&J->P);
    return rc;
}

void extract_fill_outcome(const extract_job *J, int reused, sk_extract_outcome *out)
{
    snprintf(out->prov_id, sizeof out->prov_id, "%s", J->prov->id);
    out->reused = reused;
    snprintf(out->source_list, sizeof out->source_list, "%s", J->P.src);
    snprintf(out->background, sizeof out->background, "%s", J->P.bkg);
    snprintf(out->regions, sizeof out->regions, "%s", J->rq->regions ? J->P.reg : "");
    snprintf(out->psf, sizeof out->psf, "%s", sk_path_is_file(J->P.psf) ? J->P.psf : "");
    snprintf(out->head, sizeof out->head, "%s", sk_path_is_file(J->P.head) ? J->P.head : "");
    snprintf(out->tpv_head, sizeof out->tpv_head, "%s",
             J->P.tpv[0] && sk_path_is_file(J->P.tpv) ? J->P.tpv : "");
}

/* ---- the file-only mode ---- */

/* The image's provenance from its sidecar; none without one. */
static int image_upstream(const char *path, sk_prov **up)
{
    char side[4200];
    snprintf(side, sizeof side, "%s.json", path);
    if (!sk_path_is_file(side)) {
        sk_debug("%s: no provenance sidecar; the extraction has no upstream", path);
        return SK_OK;
    }
    char type[64], md5[33];
    if (sk_sidecar_read(path, up, type, sizeof type, md5, NULL))
        return sk_error_context("%s", path);
    return SK_OK;
}

/* BASE.PROVPREFIX.{sources.fits,bkg.fits,reg,psf,head} beside the image
 * or in the output directory. */
static int file_product_paths(extract_job *J, const char *path)
{
    char base[4096];
    sk_path_strip_fits_ext(path, base, sizeof base);
    int rc = SK_OK;
    if (J->rq->outdir) {
        char b2[4096];
        snprintf(b2, sizeof b2, "%s", sk_path_base_name(base));
        if ((rc = sk_path_format(base, sizeof base, "%s/%s", J->rq->outdir, b2)))
            return rc;
    }
    char prefix[SK_STORAGE_PROV_PREFIX + 1];
    memcpy(prefix, J->prov->id, SK_STORAGE_PROV_PREFIX);
    prefix[SK_STORAGE_PROV_PREFIX] = '\0';
    extract_products *P = &J->P;
    rc = sk_path_format(P->src, sizeof P->src, "%s.%s.sources.fits", base, prefix);
    rc = rc ? rc : sk_path_format(P->bkg, sizeof P->bkg, "%s.%s.bkg.fits", base, prefix);
    rc = rc ? rc : sk_path_format(P->reg, sizeof P->reg, "%s.%s.reg", base, prefix);
    rc = rc ? rc : sk_path_format(P->psf, sizeof P->psf, "%s.%s.psf", base, prefix);
    rc = rc ? rc : sk_path_format(P->head, sizeof P->head, "%s.%s.head", base, prefix);
    if (!rc && J->rq->tpv_head)
        rc = sk_path_format(P->tpv, sizeof P->tpv, "%s.%s.tpv.head", base, prefix);
    return rc;
}

/* Does `path` exist with a sidecar naming provenance `id` and a matching md5? */
static int product_current(const char *path, const char *id)
{
    if (!sk_path_is_file(path))
        return 0;
    sk_prov *p = NULL;
    char type[64], md5[33];
    if (sk_sidecar_read(path, &p, type, sizeof type, md5, NULL) != SK_OK) {
        sk_error_clear();
        return 0;
    }
    int same = strcmp(p->id, id) == 0;
    sk_prov_free(p);
    if (same && sk_sidecar_verify(path) != SK_OK) {
        sk_error_clear();
        same = 0;
    }
    return same;
}

/* The solved WCS of the .head product into the image's header (the
 * science HDU), the file rewritten atomically. */
static int update_image_header(const extract_job *J, extract_inputs *X, const char *path)
{
    if (!J->rq->update_header)
        return SK_OK;
    if (!sk_path_is_file(J->P.head))
        return sk_error(SK_ENOTFOUND, "%s: no solved WCS to write into its header", path);
    sk_header *h = NULL;
    int rc = sk_header_read_cards_file(J->P.head, &h);
    char history[72];
    snprintf(history, sizeof history, "WCS solved by extract, extraction %.20s", J->prov->id);
    rc = rc ? rc : sk_fits_replace_wcs(path, J->rq->hdu, h, history);
    sk_header_free(h);
    if (!rc)
        sk_info("%s: header updated with the solved WCS (%s)", path, J->P.head);
    /* the image now carries this extraction's WCS: the sidecars of the
     * products that name every input record its new md5, so that the
     * next run finds them made from it */
    rc = rc ? rc : sk_md5_file(path, X->md5[0]);
    rc = rc ? rc : sk_sidecar_write(J->P.src, "source_list", J->prov, X->in, X->n);
    rc = rc ? rc : sk_sidecar_write(J->P.head, "world_coordinates", J->prov, X->in, X->n);
    if (!rc && J->P.tpv[0] && sk_path_is_file(J->P.tpv))
        rc = sk_sidecar_write(J->P.tpv, "world_coordinates", J->prov, X->in, X->n);
    return rc;
}

/* Products of this provenance that exist already: 1 when they were made
 * from the inputs X (reuse them); 0 when there are none, or (with
 * rq->replace) they were made from others; SK_EINPUT naming the input
 * that changed when they were made from others. */
static int file_products_reusable(const extract_job *J, extract_inputs *X, int *reuse)
{
    *reuse = 0;
    if (!product_current(J->P.src, J->prov->id) || !product_current(J->P.bkg, J->prov->id))
        return SK_OK;
    json_t *doc = NULL;
    char what[9000];
    int rc = extract_inputs_md5(X);
    rc = rc ? rc : sk_sidecar_read(J->P.src, NULL, NULL, 0, NULL, &doc);
    if (rc)
        return rc;
    int differ = sk_sidecar_inputs_differ(doc, X->in, X->n, what, sizeof what);
    json_decref(doc);
    if (!differ) {
        *reuse = 1;
        return SK_OK;
    }
    if (J->rq->replace) {
        sk_info("%s: made anew: %s", J->P.src, what);
        return SK_OK;
    }
    return sk_error(SK_EINPUT, "%s: extraction %s exists already (%s) but was made from other inputs: "
                               "%s; remove its products (or choose another --outdir) to extract it anew",
                    X->in[0].path, J->prov->id, J->P.src, what);
}

int extract_add_request_prov(const extract_job *J, const extract_inputs *X, sk_prov **prov)
{
    const sk_extract_request *rq = J->rq;
    if (!rq->detect && !rq->weight_hdu && !rq->mask_hdu)
        return SK_OK;
    const char *md5 = NULL;
    for (int i = 0; i < X->n; i++)
        if (!strcmp(X->in[i].role, "detection"))
            md5 = X->in[i].md5;
    json_t *params = json_deep_copy((*prov)->parameters);
    int bad = !params;
    if (!bad && rq->detect)
        bad = json_object_set_new(params, "detection", json_pack("{s:s}", "md5", md5 ? md5 : ""));
    if (!bad && rq->weight_hdu)
        bad = json_object_set_new(params, "weight_hdu", json_string(rq->weight_hdu));
    if (!bad && rq->mask_hdu)
        bad = json_object_set_new(params, "mask_hdu", json_string(rq->mask_hdu));
    if (bad) {
        json_decref(params);
        return sk_error(SK_EIO, "out of memory");
    }
    sk_prov *p = NULL, *det_up = NULL;
    int rc = sk_prov_new((*prov)->process, (*prov)->code_version, params, &p);
    json_decref(params);
    for (int u = 0; !rc && u < (*prov)->nupstreams; u++)
        rc = sk_prov_add_upstream(p, (*prov)->upstreams[u]);
    if (!rc && J->rq->detect)
        rc = image_upstream(J->rq->detect, &det_up);
    if (!rc && det_up)
        rc = sk_prov_add_upstream(p, det_up);
    sk_prov_free(det_up);
    if (rc) {
        sk_prov_free(p);
        return rc;
    }
    sk_prov_free(*prov);
    *prov = p;
    return SK_OK;
}

static int extract_file_only(extract_job *J, sk_extract_outcome *out)
{
    const char *path = J->rq->image;
    if (!sk_path_is_file(path))
        return sk_error(sk_path_is_number(path) ? SK_EINPUT : SK_ENOTFOUND,
                        sk_path_is_number(path) ? "%s: image ids need the database (drop --no-db)"
                                                : "%s: no such file", path);
    sk_prov *up = NULL;
    extract_inputs X;
    int rc = extract_inputs_of(J, path, NULL, 1, &X);
    rc = rc ? rc : image_upstream(path, &up);
    rc = rc ? rc : extract_make_prov(J->S, up, &J->prov);
    sk_prov_free(up);
    rc = rc ? rc : extract_add_request_prov(J, &X, &J->prov);
    rc = rc ? rc : file_product_paths(J, path);
    int reuse = 0;
    rc = rc ? rc : file_products_reusable(J, &X, &reuse);
    if (!rc && reuse) {
        sk_info("%s: extraction %s exists already", path, J->prov->id);
        rc = extract_ensure_regions(J);
        rc = rc ? rc : extract_ensure_tpv_head(J, X.in, X.n);
        rc = rc ? rc : update_image_header(J, &X, path);
        if (!rc)
            extract_fill_outcome(J, 1, out);
    } else if (!rc) {
        extract_made M = {0};
        rc = extract_make_products(J, &X, 0, &M);
        rc = rc ? rc : update_image_header(J, &X, path);
        if (!rc)
            extract_fill_outcome(J, 0, out);
        extract_made_clear(&M);
    }
    extract_inputs_clear(&X);
    return rc;
}

int sk_extract_image(const sk_extract_request *rq, sk_extract_outcome *out)
{
    memset(out, 0, sizeof *out);
    if (!rq || !rq->image || (!rq->settings && !rq->config))
        return sk_error(SK_EINPUT, "extract: no image or no configuration");
    sk_extract_settings own;
    const sk_extract_settings *S = rq->settings;
    int rc = SK_OK;
    if (!S) {
        rc = sk_extract_settings_read(rq->config, rq->db != NULL, &own);
        S = &own;
    }
    rc = rc ? rc : sk_extract_check(rq, S);
    rc = rc ? rc : sk_calib_open_catalog(S->calib, rq->db);
    extract_job J = {.rq = rq, .S = S};
    if (!rc)
        rc = rq->db ? extract_in_database(&J, out) : extract_file_only(&J, out);
    sk_prov_free(J.prov);
    if (!rq->settings)
        sk_extract_settings_clear(&own);
    return rc;
}
