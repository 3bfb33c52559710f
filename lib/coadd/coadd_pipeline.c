/* coadd_pipeline.c: the coadd program as a library call: its settings read once, the inputs and their extraction products (coadd_inputs.c), the coaddition provenance, reuse of an existing coadd, the grid, the coadd and its sidecar, the coadd PSF, database rows, and the extraction of the coadd in the same process (sk_extract_image). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "skystack/atomic.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/config.h"
#include "skystack/db.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/fits.h"
#include "skystack/hash.h"
#include "skystack/lifecycle.h"
#include "skystack/log.h"
#include "skystack/look.h"
#include "skystack/provenance.h"
#include "skystack/psf.h"
#include "skystack/storage.h"
#include "core/path_priv.h"
#include "db/pipeline_rows_priv.h"
#include "coadd_pipeline_priv.h"
#include "coadd_internal.h"
#include "db/db_internal.h"

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* ---- settings from the configuration ---- */

/* The keys of the methods and steps of coaddx.h. */
static int read_settings_x(const sk_config *cfg, settings *S)
{
    sk_coaddx_params *x = &S->x;
    int method = x->method;
    sk_coaddx_params_default(x);
    x->method = method;
    x->background_match = sk_config_bool(cfg, "coaddition.background_match", 0);
    x->background_degree = (int)sk_config_long(cfg, "coaddition.background_match_degree", 1);
    x->artifact_masks = sk_config_bool(cfg, "coaddition.artifact_masks", 0);
    if (x->background_degree != 0 && x->background_degree != 1)
        return sk_error(SK_EINPUT, "coaddition.background_match_degree: %d is not 0 (constant) or "
                                   "1 (plane)", x->background_degree);
    S->target_fwhm_arcsec = sk_config_double(cfg, "coaddition.target_fwhm_arcsec", NAN);
    const char *prof = sk_config_string(cfg, "coaddition.target_profile", "moffat");
    if (!isfinite(S->target_fwhm_arcsec)) {
        x->target.kind = SK_TARGET_BROADEST;
    } else if (!(S->target_fwhm_arcsec > 0)) {
        return sk_error(SK_EINPUT, "coaddition.target_fwhm_arcsec: %g must be > 0",
                        S->target_fwhm_arcsec);
    } else if (!strcasecmp(prof, "moffat")) {
        x->target.kind = SK_TARGET_MOFFAT;
    } else if (!strcasecmp(prof, "gaussian")) {
        x->target.kind = SK_TARGET_GAUSSIAN;
    } else {
        return sk_error(SK_EINPUT, "coaddition.target_profile: '%s' is not moffat or gaussian", prof);
    }
    x->target.moffat_beta = sk_config_double(cfg, "coaddition.target_moffat_beta", 3.0);
    if (!(x->target.moffat_beta > 1.0))
        return sk_error(SK_EINPUT, "coaddition.target_moffat_beta: %g must be > 1",
                        x->target.moffat_beta);
    return SK_OK;
}

/* The coaddition keys: method, kernel, clipping, grid and alignment. */
static int read_coaddition(const sk_config *cfg, const sk_coadd_request *rq, settings *S)
{
    sk_coadd_params_default(&S->p);
    int rc = SK_OK;
    const char *method = sk_config_string(cfg, "coaddition.method", "clipped");
    copy_str(S->method_name, sizeof S->method_name, method);
    if (sk_coaddx_method_from_name(method, &S->x.method))
        /* zogy: the engine's mean gives the metadata; psfmatch: the matched
         * inputs are combined with the clipped mean */
        S->p.combine.method = S->x.method == SK_COADDX_PSFMATCH ? SK_COMBINE_CLIPPED
                                                                : SK_COMBINE_MEAN;
    else
        rc = sk_combine_from_name(method, &S->p.combine.method);
    if (rc)
        return sk_error_context("coaddition.method");
    if ((rc = read_settings_x(cfg, S)))
        return rc;
    rc = sk_kernel_from_name(sk_config_string(cfg, "coaddition.kernel", "lanczos3"), &S->p.kernel);
    if (rc)
        return sk_error_context("coaddition.kernel");
    S->p.combine.clip_sigma = sk_config_double(cfg, "coaddition.clip_sigma", 3.0);
    S->p.combine.clip_iterations = (int)sk_config_long(cfg, "coaddition.clip_iterations", 3);
    S->p.combine.clip_ampfrac = sk_config_double(cfg, "coaddition.clip_ampfrac", 0.3);
    S->p.tolerance_px = sk_config_double(cfg, "coaddition.map_tolerance_px", 0.001);
    S->p.zero_point = sk_config_double(cfg, "coaddition.zero_point", NAN);
    S->rescale_weights = sk_config_bool(cfg, "coaddition.rescale_weights", 1);
    S->p.threads = rq->threads > 0 ? rq->threads : 1;
    S->p.band_rows = rq->band_rows;
    if (!(S->p.combine.clip_sigma > 0))
        return sk_error(SK_EINPUT, "coaddition.clip_sigma: %g must be > 0", S->p.combine.clip_sigma);
    if (S->p.combine.clip_iterations < 1)
        return sk_error(SK_EINPUT, "coaddition.clip_iterations: must be >= 1");
    if (!(S->p.combine.clip_ampfrac >= 0))
        return sk_error(SK_EINPUT, "coaddition.clip_ampfrac: must be >= 0");
    if (!(S->p.tolerance_px > 0 && S->p.tolerance_px <= 0.1))
        return sk_error(SK_EINPUT, "coaddition.map_tolerance_px: %g must be in (0, 0.1]",
                        S->p.tolerance_px);
    copy_str(S->grid, sizeof S->grid, sk_config_string(cfg, "coaddition.grid", "alignment"));
    if (strcmp(S->grid, "alignment") && strcmp(S->grid, "tan") && strcmp(S->grid, "union"))
        return sk_error(SK_EINPUT, "coaddition.grid: '%s' is not alignment, tan or union", S->grid);
    copy_str(S->alignment, sizeof S->alignment,
             sk_config_string(cfg, "coaddition.alignment_index", "last"));
    S->center_ra = sk_config_double(cfg, "coaddition.center_ra_deg", NAN);
    S->center_dec = sk_config_double(cfg, "coaddition.center_dec_deg", NAN);
    S->scale = sk_config_double(cfg, "coaddition.pixel_scale_arcsec", NAN);
    S->width = sk_config_long(cfg, "coaddition.width_px", 0);
    S->height = sk_config_long(cfg, "coaddition.height_px", 0);
    if (!strcmp(S->grid, "tan")) {
        if (!isfinite(S->center_ra) || !isfinite(S->center_dec))
            return sk_error(SK_EINPUT, "coaddition.grid tan needs center_ra_deg and center_dec_deg "
                                       "(--center RA,DEC)");
        if (S->width <= 0 || S->height <= 0)
            return sk_error(SK_EINPUT, "coaddition.grid tan needs width_px and height_px (--size WxH)");
    }
    return SK_OK;
}

/* The whole configuration of the pipeline, read once: the coaddition
 * keys, the critical parameters of the coaddition and of the inputs'
 * extraction, the data root, and the settings of the coadd's extraction. */
static int read_settings(const sk_config *cfg, const sk_coadd_request *rq, settings *S)
{
    memset(S, 0, sizeof *S);
    int rc = read_coaddition(cfg, rq, S);
    if (rc)
        return rc;
    S->coaddition_critical = sk_config_critical(cfg, "coaddition");
    S->extraction_critical = sk_extract_prov_params(cfg, rq->db);
    if (!S->coaddition_critical || !S->extraction_critical)
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    if (rq->db && (rc = sk_storage_root(cfg, S->data_root, sizeof S->data_root)))
        return rc;
    S->extraction = rq->extract >= 0 ? rq->extract : sk_config_bool(cfg, "coaddition.extraction", 1);
    S->compress = sk_config_bool(cfg, "storage.compress", 0);
    S->quicklook = sk_config_bool(cfg, "storage.quicklook", 1);
    if (S->extraction)
        rc = sk_extract_settings_read(cfg, rq->db != NULL, &S->extract);
    return rc;
}

static void settings_clear(settings *S)
{
    json_decref(S->coaddition_critical);
    json_decref(S->extraction_critical);
    if (S->extraction)
        sk_extract_settings_clear(&S->extract);
}

/* Index of the alignment input among n sorted by time. */
static int alignment_index(const char *spec, int n, int *index)
{
    if (!strcasecmp(spec, "last")) {
        *index = n - 1;
        return SK_OK;
    }
    if (!strcasecmp(spec, "first")) {
        *index = 0;
        return SK_OK;
    }
    char *end;
    errno = 0;
    long k = strtol(spec, &end, 10);
    if (*spec == '\0' || *end || errno)
        return sk_error(SK_EINPUT, "coaddition.alignment_index: '%s' is not first, last or a number",
                        spec);
    if (k < 0)
        k += n;
    if (k < 0 || k >= n)
        return sk_error(SK_EINPUT, "coaddition.alignment_index: %s is outside the %d inputs "
                                   "(0 .. %d, or -1 for the last)", spec, n, n - 1);
    *index = (int)k;
    return SK_OK;
}

/* ---- output of the pipeline ---- */

static int cmp_items(const void *pa, const void *pb)
{
    const item *a = pa, *b = pb;
    if (a->mjd != b->mjd)
        return a->mjd < b->mjd ? -1 : 1;
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return strcmp(a->key, b->key);
}

static void progress_line(void *ctx, long done, long total)
{
    (void)ctx;
    fprintf(stderr, "\r%s: %ld/%ld rows (%3.0f%%)%s", sk_log_program(), done, total,
            100.0 * (double)done / (double)total, done == total ? "\n" : "");
    fflush(stderr);
}

static const char *common(const item *it, int n, size_t offset)
{
    const char *first = (const char *)&it[0] + offset;
    for (int k = 1; k < n; k++)
        if (strcmp(first, (const char *)&it[k] + offset) != 0)
            return NULL;
    return first[0] ? first : NULL;
}

/* Width and height of an input from its header. */
static int input_size(const item *x, long *w, long *h)
{
    sk_header *hd = NULL;
    int rc = sk_fits_read_header(x->path, x->in.read.hdu, &hd);
    if (!rc && (sk_header_get_long(hd, "NAXIS1", w) != 1 || sk_header_get_long(hd, "NAXIS2", h) != 1))
        rc = sk_error(SK_EINPUT, "%s: no NAXIS1/NAXIS2", x->path);
    sk_header_free(hd);
    return rc;
}

/* The coadd's PSF beside it (BASE.psf, with a sidecar); its path in *path. */
static int write_coadd_psf(const item *it, int n, const sk_grid *grid, const sk_coadd_result *r,
                           const sk_prov *prov, const sk_input_file *files, int nfiles, const char *coadd_path,
                           char *path, size_t pathsz, double *fwhm_arcsec, sk_psf *given)
{
    sk_psf **psfs = calloc((size_t)n, sizeof *psfs);
    const sk_wcs **ws = calloc((size_t)n, sizeof *ws);
    long *w = calloc((size_t)n, sizeof *w), *h = calloc((size_t)n, sizeof *h);
    double *wt = calloc((size_t)n, sizeof *wt);
    int rc = psfs && ws && w && h && wt ? SK_OK : sk_error(SK_EIO, "out of memory");
    for (int k = 0; !rc && k < n; k++) {
        rc = sk_psf_read(it[k].psf, &psfs[k]);
        rc = rc ? rc : input_size(&it[k], &w[k], &h[k]);
        ws[k] = it[k].wcs;
        wt[k] = r->info[k].mean_cweight;
    }
    sk_psf *psf = given; /* zogy, psfmatch: their own PSF (coaddx.h) */
    if (!given)
        rc = rc ? rc : sk_coadd_psf(n, (const struct sk_psf *const *)psfs, ws, w, h, wt, grid, &psf);
    char base[4096];
    sk_path_strip_fits_ext(coadd_path, base, sizeof base);
    rc = rc ? rc : sk_path_format(path, pathsz, "%s.psf", base);
    rc = rc ? rc : sk_psf_write(path, psf);
    rc = rc ? rc : sk_sidecar_write(path, "coadd_psf", prov, files, nfiles);
    if (!rc) {
        double scale = sk_wcs_pixel_scale_arcsec(grid->wcs, 0.5 * (grid->width - 1),
                                                 0.5 * (grid->height - 1));
        *fwhm_arcsec = psf->fwhm_px * scale;
        sk_info("coadd PSF: FWHM %.2f px (%.2f arcsec), degree %d", psf->fwhm_px, *fwhm_arcsec,
                psf->degree);
    }
    if (psf != given)
        sk_psf_free(psf);
    for (int k = 0; psfs && k < n; k++)
        sk_psf_free(psfs[k]);
    free(psfs);
    free(ws);
    free(w);
    free(h);
    free(wt);
    return rc;
}

/* ---- the pipeline ---- */

static int make_grid(const settings *S, const item *it, int n, int ref, sk_grid **grid)
{
    long *w = calloc((size_t)n, sizeof *w), *h = calloc((size_t)n, sizeof *h);
    const sk_wcs **ws = calloc((size_t)n, sizeof *ws);
    int rc = w && h && ws ? SK_OK : sk_error(SK_EIO, "out of memory");
    for (int k = 0; !rc && k < n; k++) {
        rc = input_size(&it[k], &w[k], &h[k]);
        ws[k] = it[k].wcs;
    }
    if (!rc) {
        if (!strcmp(S->grid, "tan")) {
            double scale = S->scale;
            if (!(isfinite(scale) && scale > 0))
                scale = sk_wcs_pixel_scale_arcsec(it[ref].wcs, 0.5 * (double)(w[ref] - 1),
                                                  0.5 * (double)(h[ref] - 1));
            rc = sk_grid_tan(S->center_ra, S->center_dec, S->width, S->height, scale, 0.0, grid);
        } else if (!strcmp(S->grid, "union")) {
            rc = sk_grid_union(n, ws, w, h, isfinite(S->scale) ? S->scale : 0.0, grid);
        } else {
            rc = sk_grid_from_wcs(it[ref].wcs, w[ref], h[ref], grid);
        }
    }
    free(w);
    free(h);
    free(ws);
    return rc;
}

/* zogy, psfmatch, background matching and artifact masks (coaddx.h): the
 * inputs' PSF models are read, an analytic target's FWHM is converted to
 * output pixels; *xpsf receives the coadd PSF of zogy and psfmatch. */
static int run_coaddx(const sk_coadd_request *rq, settings *S, const item *it,
                      const sk_coadd_input *ins, int n, const sk_grid *grid,
                      sk_coadd_result **res, sk_psf **xpsf)
{
    int needs_psf = S->x.method != SK_COADDX_DIRECT || S->x.artifact_masks;
    if (needs_psf && rq->no_psf)
        return sk_error(SK_EINPUT, "--no-psf: coaddition.method %s%s needs the inputs' PSFs",
                        S->method_name,
                        S->x.artifact_masks ? " with coaddition.artifact_masks" : "");
    if (isfinite(S->target_fwhm_arcsec)) {
        double scale = sk_wcs_pixel_scale_arcsec(grid->wcs, 0.5 * (grid->width - 1),
                                                 0.5 * (grid->height - 1));
        S->x.target.fwhm_px = S->target_fwhm_arcsec / scale;
    }
    sk_psf **psfs = calloc((size_t)n, sizeof *psfs);
    int rc = psfs ? SK_OK : sk_error(SK_EIO, "out of memory");
    for (int k = 0; !rc && needs_psf && k < n; k++)
        rc = sk_psf_read(it[k].psf, &psfs[k]);
    rc = rc ? rc
            : sk_coaddx_run(ins, n, (const struct sk_psf *const *)psfs, grid, &S->p, &S->x, res,
                            S->x.method != SK_COADDX_DIRECT ? xpsf : NULL);
    for (int k = 0; psfs && k < n; k++)
        sk_psf_free(psfs[k]);
    free(psfs);
    return rc;
}

/* The state of one run of the pipeline, carried from step to step. */
typedef struct coadd_job {
    const sk_coadd_request *rq;
    settings S;
    item *it;                     /* rq->ninputs slots, n used */
    int n;
    int ref;                      /* the alignment input */
    sk_prov *prov;                /* the coaddition provenance */
    char set_hash[65];            /* identity of the input set */
    char relpath[4096];           /* with a database: the coadd in the data root */
    sk_grid *grid;
    sk_coadd_result *res;
    sk_psf *xpsf;                 /* zogy, psfmatch: their coadd PSF */
    sk_input_file *files;         /* the inputs as the sidecars name them */
    int nfiles;
    char (*idtext)[32];
    char md5[33];                 /* the coadd file's, computed as it was written */
    char psf_path[4200];          /* the coadd PSF ("" without) */
    double psf_fwhm_arcsec;
    sk_claim *claim;              /* with a database: this worker's claim on the coadd */
    long long pending_id;         /* a pending coadd row of this provenance and input set */
    int adopt;                    /* 1: that row's file is complete; only its extraction is due */
    int registered;               /* 1: this run registered the coadd, pending */
    long long rebuild_id;         /* a complete coadd row whose files were missing or
                                     damaged: made anew under its id */
} coadd_job;

/* Resolve the inputs, each distinct one once; a selection leaves out the
 * inputs without the products of the configured extraction. */
static int resolve_inputs(coadd_job *J)
{
    const sk_coadd_request *rq = J->rq;
    int rc = SK_OK;
    for (int k = 0; k < rq->ninputs && !rc; k++) {
        item *x = &J->it[J->n];
        copy_str(x->arg, sizeof x->arg, rq->inputs[k]);
        x->zp = x->gain = x->exptime = x->end_mjd = x->mjd = NAN;
        rc = rq->db ? coadd_resolve_db(rq, &J->S, k, x) : coadd_resolve_file(rq, &J->S, k, x);
        if (rc == SK_ENOTFOUND && rq->skip_incomplete && x->ext) {
            coadd_item_free(x);
            memset(x, 0, sizeof *x);
            rc = SK_OK;
            continue;
        }
        if (rc)
            break;
        int dup = 0;
        for (int j = 0; j < J->n && !dup; j++)
            dup = strcmp(J->it[j].key, x->key) == 0;
        if (dup) {
            sk_info("%s: given twice, counted once", x->arg);
            coadd_item_free(x);
            memset(x, 0, sizeof *x);
            continue;
        }
        J->n++;
    }
    if (!rc && J->n == 0)
        rc = sk_error(SK_ENOTFOUND, "coadd: no input has the products of the configured extraction");
    return rc;
}

/* Sort by time, check the filters, fill the engine's inputs and find the
 * alignment input. */
static int prepare_inputs(coadd_job *J)
{
    item *it = J->it;
    int n = J->n, rc = SK_OK;
    qsort(it, (size_t)n, sizeof *it, cmp_items);
    for (int k = 1; k < n && !rc; k++)
        if (strcmp(it[k].filter, it[0].filter) != 0)
            rc = sk_error(SK_EINPUT, "%s: filter '%s' differs from '%s' of %s: a coadd is of one filter",
                          it[k].arg, it[k].filter, it[0].filter, it[0].arg);
    if (rc)
        return rc;
    for (int k = 0; k < n; k++) {
        item *x = &it[k];
        sk_coadd_input_init(&x->in);
        x->in.path = x->path;
        x->in.name = x->arg;
        x->in.read.hdu = J->rq->db ? NULL : J->rq->hdu;
        x->in.read.noise_hdu = J->rq->db ? NULL : J->rq->weight_hdu;
        x->in.read.mask_hdu = J->rq->db ? NULL : J->rq->mask_hdu;
        x->in.wcs = x->wcs;
        x->in.background_path = x->bkg;
        x->in.zero_point = x->zp;
        x->in.gain = isfinite(x->gain) ? x->gain : 0.0;
        x->in.mjd_start = x->mjd;
        x->in.mjd_end = x->end_mjd;
        x->in.exptime_s = x->exptime;
        x->in.filter = x->filter;
        if (x->weight[0]) {
            x->in.read.noise_path = x->weight;
            x->in.read.noise_kind = SK_NOISE_WEIGHT;
        }
        if (x->mask[0])
            x->in.read.mask_path = x->mask;
    }
    if ((rc = alignment_index(J->S.alignment, n, &J->ref)))
        return rc;
    J->S.p.reference = J->ref;
    return SK_OK;
}

/* The coaddition provenance: its critical parameters, upstreams the
 * inputs' preprocessing and extraction provenances. */
static int make_provenance(coadd_job *J, sk_coadd_made *out)
{
    int rc = sk_prov_new("coaddition", sk_code_version("coaddition"), J->S.coaddition_critical, &J->prov);
    for (int k = 0; k < J->n && !rc; k++) {
        if (J->it[k].pre)
            rc = sk_prov_add_upstream(J->prov, J->it[k].pre);
        if (!rc)
            rc = sk_prov_add_upstream(J->prov, J->it[k].ext);
    }
    if (rc)
        return rc;
    copy_str(out->prov_id, sizeof out->prov_id, J->prov->id);
    out->ninputs = J->n;
    return SK_OK;
}

/* The identity of the input set: from the image ids with a database,
 * else from the md5s of the input files (coadd_file_set_hash). */
static int input_set_hash(coadd_job *J)
{
    int n = J->n;
    if (J->rq->db) {
        long long *ids = malloc((size_t)n * sizeof *ids);
        if (!ids)
            return sk_error(SK_EIO, "out of memory");
        for (int k = 0; k < n; k++)
            ids[k] = J->it[k].id;
        int rc = sk_db_input_set_hash(ids, n, J->set_hash);
        free(ids);
        return rc;
    }
    int rc = coadd_md5_inputs(J->it, n, J->S.p.threads);
    return rc ? rc : coadd_file_set_hash(J->it, n, J->set_hash);
}

/* The files that shape the coadd, as its sidecars list them. */
static int list_input_files(coadd_job *J)
{
    J->idtext = calloc((size_t)J->n, sizeof *J->idtext);
    if (!J->idtext)
        return sk_error(SK_EIO, "out of memory");
    return coadd_input_files(J->it, J->n, J->idtext, &J->files, &J->nfiles);
}

/* The coadd PSF's path beside the coadd (`coadd` a path or relpath). */
static int psf_path_of(const char *coadd, char *out, size_t outsz)
{
    char base[4096];
    sk_path_strip_fits_ext(coadd, base, sizeof base);
    return sk_path_format(out, outsz, "%s.psf", base);
}

/* The claim on (provenance, input set): a session advisory lock, waited
 * for, and a claims row naming the files this worker may leave. */
static int claim_coadd(coadd_job *J)
{
    char psf[4200], side[4200], psfside[4300], lock[160];
    int rc = psf_path_of(J->relpath, psf, sizeof psf);
    snprintf(side, sizeof side, "%s.json", J->relpath);
    snprintf(psfside, sizeof psfside, "%s.json", psf);
    const char *paths[4] = {J->relpath, side, psf, psfside};
    snprintf(lock, sizeof lock, "coadd|%s|%s", J->prov->id, J->set_hash);
    return rc ? rc : sk_claim_take(J->rq->db, lock, paths, 4, &J->claim);
}

/* Under the claim: the temporary files a dead worker left of this coadd
 * and of its extraction products (coadd-SET16*.tmp-XXXXXX beside it). */
static void remove_temporaries(const char *coadd_path)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", coadd_path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return;
    *slash = '\0';
    char stem[4200];
    sk_path_strip_fits_ext(slash + 1, stem, sizeof stem); /* coadd-HASH */
    sk_path_remove_temporaries(dir, stem);
}

/* A registered complete coadd counts as made only while its file (with
 * its sidecar) is there with its row's md5 `md5`, and its PSF is there
 * (when coadd PSFs are made): else it is made anew under the same id. */
static int coadd_files_intact(const coadd_job *J, const char *path, const char *md5)
{
    char side[4200], psf[4200], have[33] = "";
    snprintf(side, sizeof side, "%s.json", path);
    int there = sk_path_is_file(path);
    int intact = there && sk_path_is_file(side) && sk_md5_file(path, have) == SK_OK && !strcmp(have, md5);
    if (intact && !J->rq->no_psf && psf_path_of(path, psf, sizeof psf) == SK_OK)
        intact = sk_path_is_file(psf);
    sk_error_clear();
    if (!intact)
        sk_warn("coadd: %s %s: made anew under the same id", path,
                !there ? "is missing" : have[0] && strcmp(have, md5) ? "does not match its row's checksum"
                                                                     : "lacks its sidecar or its PSF");
    return intact;
}

/* With a database: where the coadd goes in the data root; under this
 * worker's claim on (provenance, input set) a complete coadd is reused, a
 * pending one (its worker died or failed) is taken over: adopted when its
 * file is the one registered, else made anew under the same id. No
 * transaction stays open. */
static int locate_in_database(coadd_job *J, sk_coadd_made *out)
{
    const item *it = J->it;
    sk_db *db = J->rq->db;
    char reldir[4096];
    int rc = sk_storage_dir(it[J->n - 1].instrument, it[0].mjd, it[0].section[0] ? it[0].section : NULL,
                            it[0].filter, "coadd", J->prov->id, reldir, sizeof reldir);
    if (!rc && (size_t)snprintf(J->relpath, sizeof J->relpath, "%s/coadd-%.16s.fits%s", reldir,
                                J->set_hash, J->S.compress ? ".fz" : "") >= sizeof J->relpath)
        rc = sk_error(SK_EINPUT, "coadd: path too long");
    rc = rc ? rc : sk_storage_resolve(J->S.data_root, J->relpath, out->path, sizeof out->path);
    rc = rc ? rc : claim_coadd(J);
    if (!rc)
        remove_temporaries(out->path);
    char stored[4096], md5[33] = "", have[33] = "";
    int found = 0, pending = 0;
    rc = rc ? rc : sk_db_coadd_find(db, J->prov->id, J->set_hash, &out->image_id, stored, sizeof stored,
                                    &found, &pending, md5);
    if (!rc && found)
        rc = sk_storage_resolve(J->S.data_root, stored, out->path, sizeof out->path);
    if (!rc && found && !pending)
        out->reused = coadd_files_intact(J, out->path, md5);
    if (!rc && found && !pending && !out->reused) {
        J->rebuild_id = out->image_id;
        found = 0;
    }
    if (rc || out->reused)
        return rc;
    if (found) { /* pending: taken over */
        J->pending_id = out->image_id;
        J->adopt = sk_path_is_file(out->path) && sk_md5_file(out->path, have) == SK_OK &&
                   !strcmp(have, md5);
        sk_error_clear();
        sk_info("coadd %lld was left pending by a worker that stopped: %s", out->image_id,
                J->adopt ? "its file is complete, its extraction follows" : "made anew");
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", out->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    return sk_mkdir_p(dir);
}

/* Is the file at `path` this coadd: its sidecar names this provenance
 * and these inputs (*same 1)? A coadd of this provenance made from other
 * inputs is refused, naming the input that changed. */
static int coadd_file_current(const coadd_job *J, const char *path, int *same)
{
    sk_prov *have = NULL;
    json_t *doc = NULL;
    char what[9000];
    int rc = SK_OK;
    *same = 0;
    if (sk_path_is_file(path) && sk_sidecar_read(path, &have, NULL, 0, NULL, &doc) == SK_OK &&
        strcmp(have->id, J->prov->id) == 0 && sk_sidecar_verify(path) == SK_OK) {
        if (!sk_sidecar_inputs_differ(doc, J->files, J->nfiles, what, sizeof what))
            *same = 1;
        else
            rc = -1;
    }
    sk_error_clear();
    sk_prov_free(have);
    json_decref(doc);
    if (rc)
        return sk_error(SK_EINPUT, "%s: a coadd of provenance %s exists already but was made from other "
                                   "inputs: %s; remove it (or give another --output or --outdir) to make "
                                   "it anew", path, J->prov->id, what);
    return SK_OK;
}

/* Without a database: the output file (given, or named after the
 * provenance and the input set), reused when the same provenance and
 * inputs made it. */
static int locate_file(coadd_job *J, sk_coadd_made *out)
{
    const sk_coadd_request *rq = J->rq;
    int rc = SK_OK;
    if (rq->output) {
        copy_str(out->path, sizeof out->path, rq->output);
    } else {
        const char *od = rq->outdir ? rq->outdir : ".";
        snprintf(out->path, sizeof out->path, "%s/coadd-%.8s-%.12s.fits%s", od, J->prov->id, J->set_hash,
                 J->S.compress ? ".fz" : "");
        if (rq->outdir)
            rc = sk_mkdir_p(rq->outdir);
    }
    return rc ? rc : coadd_file_current(J, out->path, &out->reused);
}

/* The grid, the coadd by the configured method, and the coadd file. */
static int compute_coadd(coadd_job *J, const sk_coadd_made *out)
{
    settings *S = &J->S;
    int n = J->n, rc = make_grid(S, J->it, n, J->ref, &J->grid);
    if (rc)
        return rc;
    sk_coadd_input *ins = malloc((size_t)n * sizeof *ins);
    if (!ins)
        return sk_error(SK_EIO, "out of memory");
    for (int k = 0; k < n; k++)
        ins[k] = J->it[k].in;
    if (S->rescale_weights && (rc = sk_coadd_rescale_weights(ins, n, S->p.threads))) {
        free(ins);
        return rc;
    }
    if (J->rq->progress) {
        S->p.progress = progress_line;
        S->p.progress_ctx = NULL;
    }
    sk_info("%d input%s, %s grid %ld x %ld, %s, %s", n, n == 1 ? "" : "s", S->grid, J->grid->width,
            J->grid->height,
            S->x.method != SK_COADDX_DIRECT ? sk_coaddx_method_name(S->x.method)
                                            : sk_combine_name(S->p.combine.method),
            sk_kernel_name(S->p.kernel));
    if (S->x.method != SK_COADDX_DIRECT || S->x.background_match || S->x.artifact_masks)
        rc = run_coaddx(J->rq, S, J->it, ins, n, J->grid, &J->res, &J->xpsf);
    else
        rc = sk_coadd_run(ins, n, J->grid, &S->p, &J->res);
    if (!rc && S->rescale_weights)
        rc = sk_coadd_weight_scale_header(ins, n, J->res->image->header);
    free(ins);
    if (rc)
        return rc;
    sk_header_set_str(J->res->image->header, "PROVID", J->prov->id, "coaddition provenance");
    size_t len = strlen(out->path);
    sk_write_opts wo = {0};
    wo.compress = S->compress || (len > 3 && strcmp(out->path + len - 3, ".fz") == 0);
    wo.md5 = J->md5;
    wo.threads = S->p.threads;
    return sk_coadd_write(out->path, J->res, &wo);
}

/* The HDUs of the coadd file, described in its sidecar ("planes"): with
 * a proper coadd, its score image SCORE. */
static int record_planes(const char *path, const sk_coadd_result *r)
{
    json_t *planes = json_pack("{s:s, s:s, s:s, s:s}", "SCI", "science, counts at MAGZERO", "WGT",
                               "inverse variance of SCI; 0 = no data", "FLG", "flag bits (FLAGBITn)", "NIMG",
                               "number of inputs combined in each pixel");
    if (planes && r->score)
        json_object_set_new(planes, "SCORE",
                            json_string("score image S of the proper coadd: a point source's matched-filter "
                                        "SNR at its position, unit variance on blank sky (SCORENRM = SNR)"));
    if (!planes)
        return sk_error(SK_EIO, "%s: out of memory", path);
    return sk_sidecar_set(path, "planes", planes);
}

/* The coadd's sidecar and its PSF with its own. */
static int write_sidecar_and_psf(coadd_job *J, const sk_coadd_made *out)
{
    int n = J->n;
    int rc = sk_sidecar_write_md5(out->path, J->md5, "coadd", J->prov, J->files, J->nfiles);
    rc = rc ? rc : record_planes(out->path, J->res);
    J->psf_fwhm_arcsec = NAN;
    if (!rc && !J->rq->no_psf)
        rc = write_coadd_psf(J->it, n, J->grid, J->res, J->prov, J->files, J->nfiles, out->path, J->psf_path,
                             sizeof J->psf_path, &J->psf_fwhm_arcsec, J->xpsf);
    return rc;
}

/* The footprint of the coadd for its images row. */
static int coadd_footprint(const sk_image *img, sk_coadd_record *r)
{
    sk_footprint fp;
    int rc = sk_wcs_footprint(img->wcs, img->width, img->height, &fp);
    if (rc)
        return rc;
    double *v = r->footprint_deg;
    v[0] = fp.ra_deg;
    v[1] = fp.dec_deg;
    for (int k = 0; k < 4; k++) {
        v[2 + 2 * k] = fp.corner_ra_deg[k];
        v[3 + 2 * k] = fp.corner_dec_deg[k];
    }
    v[10] = fp.minra_deg;
    v[11] = fp.maxra_deg;
    v[12] = fp.mindec_deg;
    v[13] = fp.maxdec_deg;
    double radius = 0;
    double a0 = fp.ra_deg * M_PI / 180, d0 = fp.dec_deg * M_PI / 180;
    for (int k = 0; k < 4; k++) {
        double a = fp.corner_ra_deg[k] * M_PI / 180, d = fp.corner_dec_deg[k] * M_PI / 180;
        double c = sin(d0) * sin(d) + cos(d0) * cos(d) * cos(a - a0);
        double rr = acos(c > 1 ? 1 : c < -1 ? -1 : c) * 180 / M_PI;
        if (rr > radius)
            radius = rr;
    }
    r->radius_deg = fmin(180.0, radius);
    return SK_OK;
}

/* The coadd's images row, its components and its PSF row, and the commit. */
static int register_coadd(coadd_job *J, sk_coadd_made *out)
{
    const item *it = J->it;
    int n = J->n;
    sk_coadd_record r = {0};
    char md5[33];
    int rc = sk_sidecar_read(out->path, NULL, NULL, 0, md5, NULL); /* the md5 it just recorded */
    rc = rc ? rc : coadd_footprint(J->res->image, &r);
    sk_coadd_component *comp = rc ? NULL : calloc((size_t)n, sizeof *comp);
    if (!rc && !comp)
        rc = sk_error(SK_EIO, "out of memory");
    if (rc)
        return rc;
    double mjd0 = INFINITY, mjd1 = -INFINITY, exptime = 0;
    for (int k = 0; k < n; k++) {
        mjd0 = fmin(mjd0, it[k].mjd);
        mjd1 = fmax(mjd1, isfinite(it[k].end_mjd) ? it[k].end_mjd : it[k].mjd);
        exptime += isfinite(it[k].exptime) ? it[k].exptime : 0;
        comp[k] = (sk_coadd_component){it[k].id, it[k].src_id, it[k].psf_id, it[k].bkg_id, it[k].wcs_id,
                                       it[k].zp_id};
    }
    const char *instrument = common(it, n, offsetof(item, instrument));
    r.relpath = J->relpath;
    r.md5 = md5;
    r.prov_id = J->prov->id;
    r.set_hash = J->set_hash;
    r.instrument = instrument ? instrument : "multiple";
    r.telescope = common(it, n, offsetof(item, telescope));
    r.filter = it[0].filter;
    r.section = common(it, n, offsetof(item, section));
    r.target = common(it, n, offsetof(item, target));
    r.project = common(it, n, offsetof(item, project));
    r.mjd = mjd0;
    r.end_mjd = mjd1;
    r.exptime_s = exptime;
    r.gain = J->res->gain;
    r.width_px = J->res->image->width;
    r.height_px = J->res->image->height;
    r.zero_point = J->res->zero_point;
    r.pending = J->S.extraction;
    r.id = J->pending_id;
    char rel[4200], pmd5[33];
    if (J->psf_path[0]) {
        rc = psf_path_of(J->relpath, rel, sizeof rel);
        rc = rc ? rc : sk_md5_file(J->psf_path, pmd5);
    }
    /* the files exist: their rows in one short transaction */
    sk_db *db = J->rq->db;
    sk_db_test_point("coadd-files");
    rc = rc ? rc : sk_db_begin(db);
    rc = rc ? rc : sk_db_save_prov(db, J->prov);
    if (J->rebuild_id) /* its rows stay: the new file's md5 */
        rc = rc ? rc : sk_db_coadd_refresh(db, J->rebuild_id, md5);
    else
        rc = rc ? rc : sk_db_coadd_register(db, &r, comp, n, &out->image_id);
    free(comp);
    if (!rc && J->psf_path[0])
        rc = sk_db_coadd_register_psf(db, out->image_id, J->prov->id, rel, pmd5, J->psf_fwhm_arcsec);
    if (!rc)
        sk_db_test_point("coadd-tx");
    rc = rc ? rc : sk_db_commit(db);
    sk_db_rollback(db);
    J->registered = !rc && !J->rebuild_id;
    return rc;
}

/* Make the coadd, its PSF and (with a database) its rows; what was
 * written is removed on a failure. */
static int make_products(coadd_job *J, sk_coadd_made *out)
{
    int rc = compute_coadd(J, out);
    if (rc)
        return rc;
    rc = write_sidecar_and_psf(J, out);
    if (!rc && J->rq->db)
        rc = register_coadd(J, out);
    if (rc) {
        sk_path_remove_product(out->path);
        if (J->psf_path[0])
            sk_path_remove_product(J->psf_path);
        return rc;
    }
    sk_info("%s: %d inputs, MAGZERO %.4f, %ld input pixels rejected", out->path, J->n,
            J->res->zero_point, J->res->nrejected);
    return SK_OK;
}

/* The extraction of the coadd (extract.h), in this process, with the
 * pipeline's configuration: by image id with a database, else by path. */
static int extract_coadd(const coadd_job *J, const sk_coadd_made *out, sk_extract_outcome *made)
{
    const sk_coadd_request *rq = J->rq;
    char target[64];
    snprintf(target, sizeof target, "%lld", out->image_id);
    sk_extract_request x;
    memset(&x, 0, sizeof x);
    x.config = rq->config;
    x.settings = &J->S.extract;
    x.db = rq->db;
    x.image = rq->db ? target : out->path;
    x.weight_kind = SK_NOISE_WEIGHT;
    x.threads = rq->threads > 0 ? rq->threads : 1;
    x.replace = !out->reused; /* the coadd was just made: products of its
                                 extraction made from an earlier one go */
    /* a coadd just made: the md5 its sidecar records, computed as it was
     * written, so that the file is not read again for it */
    char md5[33];
    if (!out->reused) {
        if (sk_sidecar_read(out->path, NULL, NULL, 0, md5, NULL) == SK_OK)
            x.image_md5 = md5;
        sk_error_clear();
    }
    int rc = sk_extract_image(&x, made);
    if (rc)
        return sk_error_context("coadd: extraction of the coadd %s", x.image);
    return SK_OK;
}

/* A failure after the coadd was registered pending: its rows and files
 * go, when the database is still reachable (else the next run, or skydb
 * fsck --repair, finds it pending without a live claim). */
static void discard_pending(coadd_job *J, const sk_coadd_made *out)
{
    sk_db *db = J->rq->db;
    if (!sk_db_is_connected(db))
        return;
    int saved = sk_errstatus();
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", sk_errmsg());
    if (sk_db_coadd_discard(db, out->image_id) == SK_OK) {
        char psf[4200];
        sk_path_remove_product(out->path);
        if (psf_path_of(out->path, psf, sizeof psf) == SK_OK)
            sk_path_remove_product(psf);
        if (sk_look_png_name(out->path, psf, sizeof psf) == SK_OK)
            unlink(psf); /* its quick-look */
    }
    sk_error(saved, "%s", msg);
}

static void job_free(coadd_job *J)
{
    sk_coadd_result_free(J->res);
    sk_psf_free(J->xpsf);
    sk_grid_free(J->grid);
    sk_prov_free(J->prov);
    free(J->files);
    free(J->idtext);
    for (int k = 0; J->it && k < J->rq->ninputs; k++)
        coadd_item_free(&J->it[k]);
    free(J->it);
    settings_clear(&J->S);
}

int sk_coadd_make(const sk_coadd_request *rq, sk_coadd_made *out)
{
    memset(out, 0, sizeof *out);
    if (!rq || !rq->config)
        return sk_error(SK_EINPUT, "coadd: no configuration");
    if (rq->ninputs <= 0)
        return sk_error(SK_ENOTFOUND, "coadd: no input images");
    coadd_job J;
    memset(&J, 0, sizeof J);
    J.rq = rq;
    int rc = read_settings(rq->config, rq, &J.S);
    if (!rc && !(J.it = calloc((size_t)rq->ninputs, sizeof *J.it)))
        rc = sk_error(SK_EIO, "coadd: out of memory");
    rc = rc ? rc : resolve_inputs(&J);
    rc = rc ? rc : prepare_inputs(&J);
    rc = rc ? rc : make_provenance(&J, out);
    rc = rc ? rc : input_set_hash(&J);
    rc = rc ? rc : list_input_files(&J);
    rc = rc ? rc : rq->db ? locate_in_database(&J, out) : locate_file(&J, out);
    if (!rc && !out->reused && !J.adopt)
        rc = make_products(&J, out);
    /* registered now or taken over: visible once its extraction (when
     * configured) and its quick-look are made */
    int pending = rq->db && (J.registered || J.adopt);
    if (!rc && pending)
        sk_db_test_point("coadd-pending");
    sk_extract_outcome made;
    memset(&made, 0, sizeof made);
    if (!rc && J.S.extraction)
        rc = extract_coadd(&J, out, &made);
    /* the quick-look PNG beside the coadd, its sources circled */
    if (!rc && J.S.quicklook) {
        sk_look_opts look;
        sk_look_opts_default(&look);
        look.sources = made.source_list[0] ? made.source_list : NULL;
        look.threads = J.S.p.threads;
        /* from the coadd in memory when it was made here and written
         * without compression (the file holds the same floats) */
        size_t len = strlen(out->path);
        int fz = J.S.compress || (len > 3 && strcmp(out->path + len - 3, ".fz") == 0);
        rc = sk_look_product_image(out->path, J.res && !fz ? J.res->image : NULL, &look, NULL, 0);
    }
    if (!rc && pending) {
        sk_db_test_point("coadd-extracted");
        rc = sk_db_coadd_complete(rq->db, out->image_id);
    }
    if (rc && pending && (J.S.extraction || J.adopt)) /* the row is pending */
        discard_pending(&J, out);
    if (rq->db && J.claim && sk_claim_release(rq->db, J.claim) && !rc)
        rc = sk_errstatus();
    job_free(&J);
    return rc;
}
