/* coadd_pipeline.c: the coadd program as a library call: inputs and their extraction products (database rows, or files beside them), the coaddition provenance, reuse of an existing coadd, the grid, the coadd and its sidecar, database rows, and extraction of the coadd. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "skystack/atomic.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/config.h"
#include "skystack/db.h"
#include "skystack/error.h"
#include "skystack/fits.h"
#include "skystack/hash.h"
#include "skystack/log.h"
#include "skystack/provenance.h"
#include "skystack/psf.h"
#include "skystack/storage.h"
#include "db/db_priv.h"

extern char **environ;

/* One input image with everything the coadd needs from it. */
typedef struct item {
    char arg[4096];          /* as given */
    char path[4096];         /* the image file */
    char key[4096];          /* identity for duplicates: id or real path */
    long long id;            /* database id (0 without a database) */
    sk_coadd_input in;
    sk_wcs *wcs;
    sk_prov *pre, *ext;      /* preprocessing and extraction provenances */
    char bkg[4096], psf[4096], weight[4096], mask[4096];
    long long src_id, psf_id, bkg_id, wcs_id, zp_id;
    double mjd, end_mjd, exptime, zp, gain;
    char filter[72], instrument[72], telescope[72], section[72], target[72], project[72];
    char md5[33];
} item;

typedef struct settings {
    sk_coadd_params p;
    char grid[16];
    char alignment[32];
    double center_ra, center_dec, scale;
    long width, height;
    int extraction;
    sk_coaddx_params x;       /* zogy, psfmatch, background matching, artifact
                                 masks (coaddx.h) */
    double target_fwhm_arcsec;
} settings;

static void item_free(item *it)
{
    sk_wcs_free(it->wcs);
    sk_prov_free(it->pre);
    sk_prov_free(it->ext);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_number(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* Path without its FITS extensions (as extract names products). */
static void strip_fits_ext(const char *path, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", path);
    static const char *const exts[] = {".fits.fz", ".fits.gz", ".fit.gz", ".fits", ".fit", ".fts", ".fz", ".gz"};
    size_t n = strlen(out);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(out + n - e, exts[i]) == 0) {
            out[n - e] = '\0';
            return;
        }
    }
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A path from a format; SK_EINPUT when it does not fit. */
static int pathf(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pathf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return sk_error(SK_EINPUT, "coadd: path too long (%.40s...)", out);
    return SK_OK;
}

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

static int read_settings(const sk_config *cfg, const sk_coadd_request *rq, settings *S)
{
    memset(S, 0, sizeof *S);
    sk_coadd_params_default(&S->p);
    int rc = SK_OK;
    const char *method = sk_config_string(cfg, "coaddition.method", "clipped");
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
    S->extraction = rq->extract >= 0 ? rq->extract : sk_config_bool(cfg, "coaddition.extraction", 1);
    return SK_OK;
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

/* ---- provenances ---- */

/* The extraction provenance the configuration gives for an image of
 * preprocessing provenance `pre` (NULL: none known). */
static int extraction_prov(const sk_config *cfg, const sk_prov *pre, sk_prov **out)
{
    json_t *crit = sk_config_critical(cfg, "extraction");
    if (!crit)
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    int rc = sk_prov_new("extraction", sk_code_version("extraction"), crit, out);
    json_decref(crit);
    if (!rc && pre)
        rc = sk_prov_add_upstream(*out, pre);
    return rc;
}

/* The provenance of a file from its sidecar; NULL (no error) without one. */
static int sidecar_prov(const char *path, sk_prov **out, char md5_out[33])
{
    *out = NULL;
    md5_out[0] = '\0';
    char side[4200];
    snprintf(side, sizeof side, "%s.json", path);
    if (!file_exists(side))
        return SK_OK;
    char type[64], md5[33];
    int rc = sk_sidecar_read(path, out, type, sizeof type, md5, NULL);
    if (rc)
        return sk_error_context("%s", path);
    /* the md5 the sidecar records holds when the file is not newer than it */
    struct stat sf, ss;
    if (stat(path, &sf) == 0 && stat(side, &ss) == 0 &&
        (sf.st_mtim.tv_sec < ss.st_mtim.tv_sec ||
         (sf.st_mtim.tv_sec == ss.st_mtim.tv_sec && sf.st_mtim.tv_nsec <= ss.st_mtim.tv_nsec)) &&
        strlen(md5) == 32)
        memcpy(md5_out, md5, 33);
    return SK_OK;
}


/* ---- inputs without a database ---- */

static double header_double(const sk_header *h, const char *key)
{
    double v;
    return h && sk_header_get_double(h, key, &v) == 1 ? v : NAN;
}

static void header_str(const sk_header *h, const char *key, char *out, size_t size)
{
    if (!h || sk_header_get_str(h, key, out, size) != 1)
        out[0] = '\0';
}

static const char *nth(const char *const *list, int k)
{
    return list && list[k] && *list[k] ? list[k] : NULL;
}

static int resolve_file(const sk_coadd_request *rq, int k, item *it)
{
    const char *arg = rq->inputs[k];
    if (!file_exists(arg))
        return sk_error(is_number(arg) ? SK_EINPUT : SK_ENOTFOUND,
                        is_number(arg) ? "%s: image ids need the database (drop --no-db)"
                                       : "%s: no such file", arg);
    copy_str(it->path, sizeof it->path, arg);
    char *real = realpath(arg, NULL);
    copy_str(it->key, sizeof it->key, real ? real : arg);
    free(real);
    sk_header *h = NULL;
    int rc = sk_fits_read_header(arg, rq->hdu, &h);
    if (rc)
        return rc;
    if (sk_wcs_from_header(h, &it->wcs) != SK_OK) {
        sk_header_free(h);
        return sk_error_context("%s: no usable WCS", arg);
    }
    it->mjd = header_double(h, "MJD-OBS");
    it->exptime = header_double(h, "EXPTIME");
    it->end_mjd = header_double(h, "MJD-END");
    it->gain = header_double(h, "GAIN");
    header_str(h, "FILTER", it->filter, sizeof it->filter);
    header_str(h, "INSTRUME", it->instrument, sizeof it->instrument);
    header_str(h, "TELESCOP", it->telescope, sizeof it->telescope);
    header_str(h, "OBJECT", it->target, sizeof it->target);
    const char *zpkey = rq->zero_point_key ? rq->zero_point_key : "MAGZERO";
    double zp = rq->zero_points ? rq->zero_points[k] : NAN;
    double header_zp = header_double(h, zpkey);
    sk_header_free(h);
    if (!isfinite(it->mjd))
        return sk_error(SK_EINPUT, "%s: no MJD-OBS: the coadd needs the time of each input", arg);
    if ((rc = sidecar_prov(arg, &it->pre, it->md5)))
        return rc;
    if ((rc = extraction_prov(rq->config, it->pre, &it->ext)))
        return rc;
    /* the extraction products: given, or beside the image under extract's names */
    char base[4096], stem[4096];
    strip_fits_ext(arg, base, sizeof base);
    if (rq->products_dir)
        rc = pathf(stem, sizeof stem, "%s/%s.%.*s", rq->products_dir, base_name(base),
                   SK_STORAGE_PROV_PREFIX, it->ext->id);
    else
        rc = pathf(stem, sizeof stem, "%s.%.*s", base, SK_STORAGE_PROV_PREFIX, it->ext->id);
    if (rc)
        return rc;
    if (nth(rq->backgrounds, k))
        copy_str(it->bkg, sizeof it->bkg, nth(rq->backgrounds, k));
    else if ((rc = pathf(it->bkg, sizeof it->bkg, "%s.bkg.fits", stem)))
        return rc;
    if (!file_exists(it->bkg))
        return sk_error(SK_EINPUT, "%s: no background product (%s; run extract --no-db on it, or "
                                   "give --background)", arg, it->bkg);
    if (nth(rq->psfs, k))
        copy_str(it->psf, sizeof it->psf, nth(rq->psfs, k));
    else if ((rc = pathf(it->psf, sizeof it->psf, "%s.psf", stem)))
        return rc;
    if (!rq->no_psf && !file_exists(it->psf))
        return sk_error(SK_EINPUT, "%s: no PSF product (%s; give --psf, or --no-psf)", arg, it->psf);
    if (rq->no_psf)
        it->psf[0] = '\0';
    /* the solved WCS (STEM.head, header cards) when extract made one */
    char head[4200];
    if ((rc = pathf(head, sizeof head, "%s.head", stem)))
        return rc;
    if (file_exists(head)) {
        sk_header *hh = NULL;
        sk_wcs *solved = NULL;
        rc = sk_header_read_cards_file(head, &hh);
        if (!rc && sk_wcs_from_header(hh, &solved) != SK_OK)
            rc = sk_error_context("%s: its solved WCS (%s) does not parse", arg, head);
        sk_header_free(hh);
        if (rc)
            return rc;
        sk_wcs_free(it->wcs);
        it->wcs = solved;
    }
    /* the zero point: given, else the extraction's (MAGZERO of the source
     * list), else the image header's keyword */
    it->zp = zp;
    char srcpath[4200];
    if (!isfinite(it->zp) && pathf(srcpath, sizeof srcpath, "%s.sources.fits", stem) == SK_OK &&
        file_exists(srcpath)) {
        sk_header *sh = NULL;
        if (sk_fits_read_header(srcpath, "SOURCES", &sh) == SK_OK)
            it->zp = header_double(sh, "MAGZERO");
        sk_header_free(sh);
        sk_error_clear();
    }
    if (!isfinite(it->zp))
        it->zp = header_zp;
    if (!isfinite(it->zp))
        return sk_error(SK_EINPUT, "%s: no zero point (no calibrated source list, no %s card; give "
                                   "--zero-points)", arg, zpkey);
    copy_str(it->weight, sizeof it->weight, nth(rq->weights, k));
    copy_str(it->mask, sizeof it->mask, nth(rq->masks, k));
    return SK_OK;
}

/* ---- inputs from the database ---- */

static int resolve_db(const sk_coadd_request *rq, const char *root, int k, item *it)
{
    const char *arg = rq->inputs[k];
    static const char *cols =
        "SELECT id, filepath, provenance_id, instrument, telescope, filter, section_id, target, "
        "project, mjd, end_mjd, exp_time, gain, md5 FROM images WHERE ";
    char sql[512];
    PGresult *row = NULL;
    int rc;
    if (is_number(arg) && !file_exists(arg)) {
        snprintf(sql, sizeof sql, "%sid = $1", cols);
        const char *p[1] = {arg};
        rc = sk_db_exec_row(rq->db, "finding the image", sql, 1, p, &row);
        if (rc == SK_ENOTFOUND)
            return sk_error(SK_ENOTFOUND, "image id %s: not in the database", arg);
    } else {
        char rel[4096];
        char *real = realpath(arg, NULL), *rroot = realpath(root, NULL);
        size_t n = rroot ? strlen(rroot) : 0;
        if (real && rroot && strncmp(real, rroot, n) == 0 && real[n] == '/')
            copy_str(rel, sizeof rel, real + n + 1);
        else
            copy_str(rel, sizeof rel, arg);
        free(real);
        free(rroot);
        snprintf(sql, sizeof sql, "%sfilepath = $1", cols);
        const char *p[1] = {rel};
        rc = sk_db_exec_row(rq->db, "finding the image", sql, 1, p, &row);
        if (rc == SK_ENOTFOUND)
            return sk_error(SK_ENOTFOUND, "%s: not registered in the database under %s "
                                          "(register it with imingest, or use --no-db)", arg, root);
    }
    if (rc)
        return rc;
    it->id = strtoll(sk_db_value(row, 0, 0), NULL, 10);
    snprintf(it->key, sizeof it->key, "%lld", it->id);
    rc = sk_storage_resolve(root, sk_db_value(row, 0, 1), it->path, sizeof it->path);
    char pre_id[64];
    copy_str(pre_id, sizeof pre_id, sk_db_value(row, 0, 2));
    copy_str(it->instrument, sizeof it->instrument, sk_db_value(row, 0, 3));
    copy_str(it->telescope, sizeof it->telescope, sk_db_value(row, 0, 4));
    copy_str(it->filter, sizeof it->filter, sk_db_value(row, 0, 5));
    copy_str(it->section, sizeof it->section, sk_db_value(row, 0, 6));
    copy_str(it->target, sizeof it->target, sk_db_value(row, 0, 7));
    copy_str(it->project, sizeof it->project, sk_db_value(row, 0, 8));
    it->mjd = sk_db_double(row, 0, 9);
    it->end_mjd = sk_db_double(row, 0, 10);
    it->exptime = sk_db_double(row, 0, 11);
    it->gain = sk_db_double(row, 0, 12);
    copy_str(it->md5, sizeof it->md5, sk_db_value(row, 0, 13));
    PQclear(row);
    if (rc)
        return rc;
    /* provenances: the image's from its sidecar, the extraction's from the configuration */
    rc = sk_sidecar_read(it->path, &it->pre, NULL, 0, NULL, NULL);
    if (rc)
        return sk_error_context("image %lld", it->id);
    if (strcmp(it->pre->id, pre_id) != 0)
        return sk_error(SK_EINPUT, "%s: its sidecar names provenance %s, the database %s", it->path,
                        it->pre->id, pre_id);
    if ((rc = extraction_prov(rq->config, it->pre, &it->ext)))
        return rc;
    char id[32];
    snprintf(id, sizeof id, "%lld", it->id);
    const char *p[2] = {id, it->ext->id};
    rc = sk_db_exec_row(
        rq->db, "looking for the extraction products",
        "SELECT s.id, p.id, p.filepath, b.id, b.filepath, b.noise, w.id, w.header, z.id, z.zp "
        "FROM images i "
        "LEFT JOIN source_lists s ON s.image_id = i.id AND s.provenance_id = $2 "
        "LEFT JOIN psfs p ON p.image_id = i.id AND p.provenance_id = $2 "
        "LEFT JOIN backgrounds b ON b.image_id = i.id AND b.provenance_id = $2 "
        "LEFT JOIN world_coordinates w ON w.image_id = i.id AND w.provenance_id = $2 "
        "LEFT JOIN zero_points z ON z.image_id = i.id AND z.provenance_id = $2 "
        "WHERE i.id = $1::bigint",
        2, p, &row);
    if (rc)
        return rc;
    static const char *const names[5] = {"source list", "PSF", "background", "WCS", "zero point"};
    static const int cols_of[5] = {0, 1, 3, 6, 8};
    char missing[128] = "";
    for (int c = 0; c < 5; c++)
        if (!sk_db_value(row, 0, cols_of[c]))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", names[c]);
    if (missing[0] && rq->skip_incomplete) {
        PQclear(row);
        sk_info("image %lld: no %s of extraction provenance %s: left out", it->id, missing, it->ext->id);
        return SK_ENOTFOUND;
    }
    if (missing[0]) {
        PQclear(row);
        return sk_error(SK_EINPUT, "image %lld (%s): no %s of extraction provenance %s (run extract "
                                   "on it with this configuration)", it->id, it->path, missing,
                        it->ext->id);
    }
    it->src_id = strtoll(sk_db_value(row, 0, 0), NULL, 10);
    it->psf_id = strtoll(sk_db_value(row, 0, 1), NULL, 10);
    it->bkg_id = strtoll(sk_db_value(row, 0, 3), NULL, 10);
    it->wcs_id = strtoll(sk_db_value(row, 0, 6), NULL, 10);
    it->zp_id = strtoll(sk_db_value(row, 0, 8), NULL, 10);
    it->zp = sk_db_double(row, 0, 9);
    rc = sk_storage_resolve(root, sk_db_value(row, 0, 2), it->psf, sizeof it->psf);
    rc = rc ? rc : sk_storage_resolve(root, sk_db_value(row, 0, 4), it->bkg, sizeof it->bkg);
    /* the fitted WCS: header cards */
    sk_header *h = NULL;
    if (!rc)
        rc = sk_header_from_text(sk_db_value(row, 0, 7), &h);
    PQclear(row);
    if (!rc && sk_wcs_from_header(h, &it->wcs) != SK_OK)
        rc = sk_error_context("image %lld: its fitted WCS does not parse", it->id);
    sk_header_free(h);
    return rc;
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

/* The directory of the running program (for its sibling extract). */
static int sibling_program(const char *name, char *out, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 0;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    snprintf(out, size, "%s/%s", self, name);
    return access(out, X_OK) == 0;
}

/* Run extract on the coadd (no shell: an argument vector), its stdout
 * discarded, with this configuration written to a temporary file. */
static int run_extract(const sk_coadd_request *rq, const char *target, int no_db)
{
    char *dump = sk_config_dump(rq->config);
    if (!dump)
        return sk_error(SK_EIO, "coadd: cannot write the configuration for extract");
    const char *tmpdir = getenv("TMPDIR");
    char cfgpath[4200];
    snprintf(cfgpath, sizeof cfgpath, "%s/skystack-coadd-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(cfgpath);
    if (fd < 0) {
        free(dump);
        return sk_error(SK_EIO, "coadd: temporary configuration file: %s", strerror(errno));
    }
    size_t len = strlen(dump);
    ssize_t w = write(fd, dump, len);
    close(fd);
    free(dump);
    if (w != (ssize_t)len) {
        unlink(cfgpath);
        return sk_error(SK_EIO, "coadd: writing %s failed", cfgpath);
    }
    char prog[PATH_MAX + 16], threads[32];
    int have_sibling = sibling_program("extract", prog, sizeof prog);
    snprintf(threads, sizeof threads, "%d", rq->threads > 0 ? rq->threads : 1);
    char *argv[12];
    int a = 0;
    argv[a++] = have_sibling ? prog : (char *)"extract";
    argv[a++] = (char *)"--config";
    argv[a++] = cfgpath;
    argv[a++] = (char *)"--threads";
    argv[a++] = threads;
    if (sk_log_level() <= SK_LOG_WARN)
        argv[a++] = (char *)"-q";
    if (no_db)
        argv[a++] = (char *)"--no-db";
    argv[a++] = (char *)target;
    argv[a] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int err = have_sibling ? posix_spawn(&pid, argv[0], &fa, NULL, argv, environ)
                           : posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int rc = SK_OK;
    if (err) {
        rc = sk_error(SK_EIO, "coadd: cannot run extract on %s: %s", target, strerror(err));
    } else {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = sk_error(WIFEXITED(status) && WEXITSTATUS(status) <= 3 && WEXITSTATUS(status) > 0
                              ? WEXITSTATUS(status) : SK_EIO,
                          "coadd: extract failed on the coadd %s (exit status %d)", target,
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    unlink(cfgpath);
    return rc;
}

/* The footprint columns of an images row. */
static int footprint_params(const sk_wcs *w, long width, long height, char vals[][40], double *radius)
{
    sk_footprint fp;
    int rc = sk_wcs_footprint(w, width, height, &fp);
    if (rc)
        return rc;
    double v[14] = {fp.ra_deg, fp.dec_deg};
    for (int k = 0; k < 4; k++) {
        v[2 + 2 * k] = fp.corner_ra_deg[k];
        v[3 + 2 * k] = fp.corner_dec_deg[k];
    }
    v[10] = fp.minra_deg;
    v[11] = fp.maxra_deg;
    v[12] = fp.mindec_deg;
    v[13] = fp.maxdec_deg;
    *radius = 0;
    double a0 = fp.ra_deg * M_PI / 180, d0 = fp.dec_deg * M_PI / 180;
    for (int k = 0; k < 4; k++) {
        double a = fp.corner_ra_deg[k] * M_PI / 180, d = fp.corner_dec_deg[k] * M_PI / 180;
        double c = sin(d0) * sin(d) + cos(d0) * cos(d) * cos(a - a0);
        double r = acos(c > 1 ? 1 : c < -1 ? -1 : c) * 180 / M_PI;
        if (r > *radius)
            *radius = r;
    }
    for (int k = 0; k < 14; k++)
        snprintf(vals[k], 40, "%.17g", v[k]);
    return SK_OK;
}

static const char *common(const item *it, int n, size_t offset)
{
    const char *first = (const char *)&it[0] + offset;
    for (int k = 1; k < n; k++)
        if (strcmp(first, (const char *)&it[k] + offset) != 0)
            return NULL;
    return first[0] ? first : NULL;
}

static int register_coadd(const sk_coadd_request *rq, const item *it, int n, const sk_prov *prov,
                          const char *set_hash, const char *relpath, const char *md5,
                          const sk_coadd_result *r, long long *id)
{
    const sk_image *img = r->image;
    char vals[14][40], nums[8][40];
    double radius;
    int rc = footprint_params(img->wcs, img->width, img->height, vals, &radius);
    if (rc)
        return rc;
    double mjd0 = INFINITY, mjd1 = -INFINITY, exptime = 0;
    for (int k = 0; k < n; k++) {
        mjd0 = fmin(mjd0, it[k].mjd);
        mjd1 = fmax(mjd1, isfinite(it[k].end_mjd) ? it[k].end_mjd : it[k].mjd);
        exptime += isfinite(it[k].exptime) ? it[k].exptime : 0;
    }
    snprintf(nums[0], 40, "%.17g", mjd0);
    snprintf(nums[1], 40, "%.17g", mjd1);
    snprintf(nums[2], 40, "%.17g", exptime);
    snprintf(nums[3], 40, "%.17g", r->gain);
    snprintf(nums[4], 40, "%ld", img->width);
    snprintf(nums[5], 40, "%ld", img->height);
    snprintf(nums[6], 40, "%.17g", fmin(180.0, radius));
    snprintf(nums[7], 40, "%.17g", r->zero_point);
    const char *instrument = common(it, n, offsetof(item, instrument));
    const char *p[33] = {relpath, md5, prov->id, set_hash, instrument ? instrument : "multiple",
                         common(it, n, offsetof(item, telescope)), it[0].filter,
                         common(it, n, offsetof(item, section)), common(it, n, offsetof(item, target)),
                         common(it, n, offsetof(item, project)), nums[0], nums[1], nums[2],
                         r->gain > 0 ? nums[3] : NULL, nums[4], nums[5]};
    for (int k = 0; k < 14; k++)
        p[16 + k] = vals[k];
    p[30] = nums[6];
    p[31] = isfinite(r->zero_point) ? nums[7] : NULL;
    PGresult *res = NULL;
    rc = sk_db_exec_row(
        rq->db, "registering the coadd",
        "INSERT INTO images (filepath, md5, provenance_id, type, input_set_hash, instrument, "
        "telescope, filter, section_id, target, project, mjd, end_mjd, exp_time, gain, width, "
        "height, ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, "
        "dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec, radius_deg, "
        "zero_point_estimate) VALUES ($1, $2, $3, 'coadd', $4, $5, $6, $7, $8, $9, $10, $11, $12, "
        "$13, $14, $15::integer, $16::integer, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, "
        "$27, $28, $29, $30, $31, $32) RETURNING id",
        32, p, &res);
    if (rc)
        return rc;
    *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", *id);
    for (int k = 0; k < n && !rc; k++) {
        char ids[6][32];
        snprintf(ids[0], 32, "%lld", it[k].id);
        snprintf(ids[1], 32, "%lld", it[k].src_id);
        snprintf(ids[2], 32, "%lld", it[k].psf_id);
        snprintf(ids[3], 32, "%lld", it[k].bkg_id);
        snprintf(ids[4], 32, "%lld", it[k].wcs_id);
        snprintf(ids[5], 32, "%lld", it[k].zp_id);
        const char *pc[7] = {cid, ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]};
        rc = sk_db_exec(rq->db, "linking the coadd to its inputs",
                        "INSERT INTO coadd_components (coadd_image_id, image_id, source_list_id, "
                        "psf_id, background_id, world_coordinates_id, zero_point_id) VALUES "
                        "($1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint, "
                        "$7::bigint)",
                        7, pc, NULL);
    }
    return rc;
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
                           const sk_prov *prov, const sk_input_file *files, const char *coadd_path,
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
    strip_fits_ext(coadd_path, base, sizeof base);
    rc = rc ? rc : pathf(path, pathsz, "%s.psf", base);
    rc = rc ? rc : sk_psf_write(path, psf);
    rc = rc ? rc : sk_sidecar_write(path, "coadd_psf", prov, files, n);
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

/* md5 of every input file, on up to `threads` threads. */
typedef struct md5_job {
    item *it;
    int n;
    atomic_int next;
    pthread_mutex_t lock;
    int status;
    char msg[512];
} md5_job;

static void *md5_worker(void *arg)
{
    md5_job *j = arg;
    for (;;) {
        int k = atomic_fetch_add(&j->next, 1);
        if (k >= j->n)
            break;
        if (!j->it[k].md5[0] && sk_md5_file(j->it[k].path, j->it[k].md5) != SK_OK) {
            pthread_mutex_lock(&j->lock);
            if (!j->status) {
                j->status = sk_errstatus();
                snprintf(j->msg, sizeof j->msg, "%s", sk_errmsg());
            }
            pthread_mutex_unlock(&j->lock);
        }
    }
    return NULL;
}

static int md5_all(item *it, int n, int threads)
{
    md5_job j = {.it = it, .n = n};
    atomic_store(&j.next, 0);
    pthread_mutex_init(&j.lock, NULL);
    int extra = (threads < n ? threads : n) - 1, started = 0;
    pthread_t tid[64];
    if (extra > 64)
        extra = 64;
    for (int t = 0; t < extra; t++)
        if (pthread_create(&tid[t], NULL, md5_worker, &j) == 0)
            started++;
    md5_worker(&j);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.lock);
    return j.status ? sk_error(j.status, "%s", j.msg) : SK_OK;
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
                        sk_config_string(rq->config, "coaddition.method", "clipped"),
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

int sk_coadd_make(const sk_coadd_request *rq, sk_coadd_made *out)
{
    memset(out, 0, sizeof *out);
    if (!rq || !rq->config)
        return sk_error(SK_EINPUT, "coadd: no configuration");
    if (rq->ninputs <= 0)
        return sk_error(SK_ENOTFOUND, "coadd: no input images");
    settings S;
    int rc = read_settings(rq->config, rq, &S);
    if (rc)
        return rc;
    char root[4096] = "";
    if (rq->db && (rc = sk_storage_root(rq->config, root, sizeof root)))
        return rc;
    item *it = calloc((size_t)rq->ninputs, sizeof *it);
    if (!it)
        return sk_error(SK_EIO, "coadd: out of memory");
    int n = 0;
    sk_prov *prov = NULL;
    sk_grid *grid = NULL;
    sk_coadd_result *res = NULL;
    sk_psf *xpsf = NULL;
    sk_input_file *files = NULL;
    char (*idtext)[32] = NULL;
    int in_tx = 0;

    /* inputs, duplicates once */
    for (int k = 0; k < rq->ninputs && !rc; k++) {
        item *x = &it[n];
        copy_str(x->arg, sizeof x->arg, rq->inputs[k]);
        x->zp = x->gain = x->exptime = x->end_mjd = x->mjd = NAN;
        rc = rq->db ? resolve_db(rq, root, k, x) : resolve_file(rq, k, x);
        if (rc == SK_ENOTFOUND && rq->skip_incomplete && x->ext) {
            item_free(x);
            memset(x, 0, sizeof *x);
            rc = SK_OK;
            continue;
        }
        if (rc)
            break;
        int dup = 0;
        for (int j = 0; j < n && !dup; j++)
            dup = strcmp(it[j].key, x->key) == 0;
        if (dup) {
            sk_info("%s: given twice, counted once", x->arg);
            item_free(x);
            memset(x, 0, sizeof *x);
            continue;
        }
        n++;
    }
    if (!rc && n == 0)
        rc = sk_error(SK_ENOTFOUND, "coadd: no input has the products of the configured extraction");
    if (rc)
        goto done;
    qsort(it, (size_t)n, sizeof *it, cmp_items);
    for (int k = 1; k < n && !rc; k++)
        if (strcmp(it[k].filter, it[0].filter) != 0)
            rc = sk_error(SK_EINPUT, "%s: filter '%s' differs from '%s' of %s: a coadd is of one filter",
                          it[k].arg, it[k].filter, it[0].filter, it[0].arg);
    if (rc)
        goto done;
    /* engine inputs */
    for (int k = 0; k < n; k++) {
        item *x = &it[k];
        sk_coadd_input_init(&x->in);
        x->in.path = x->path;
        x->in.name = x->arg;
        x->in.read.hdu = rq->db ? NULL : rq->hdu;
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
    int ref = 0;
    if ((rc = alignment_index(S.alignment, n, &ref)))
        goto done;
    S.p.reference = ref;

    /* provenance: the coaddition's critical parameters, upstreams the
     * inputs' preprocessing and extraction provenances */
    json_t *crit = sk_config_critical(rq->config, "coaddition");
    if (!crit) {
        rc = sk_errstatus() ? sk_errstatus() : SK_EIO;
        goto done;
    }
    rc = sk_prov_new("coaddition", sk_code_version("coaddition"), crit, &prov);
    json_decref(crit);
    for (int k = 0; k < n && !rc; k++) {
        if (it[k].pre)
            rc = sk_prov_add_upstream(prov, it[k].pre);
        if (!rc)
            rc = sk_prov_add_upstream(prov, it[k].ext);
    }
    if (rc)
        goto done;
    copy_str(out->prov_id, sizeof out->prov_id, prov->id);
    out->ninputs = n;

    /* the identity of the input set, and where the coadd goes */
    char set_hash[65];
    if (rq->db) {
        long long *ids = malloc((size_t)n * sizeof *ids);
        if (!ids) {
            rc = sk_error(SK_EIO, "out of memory");
            goto done;
        }
        for (int k = 0; k < n; k++)
            ids[k] = it[k].id;
        rc = sk_db_input_set_hash(ids, n, set_hash);
        free(ids);
    } else {
        /* sha256 of the sorted md5s of the input files */
        char *cat = malloc((size_t)n * 33 + 1);
        char (*md5s)[33] = malloc((size_t)n * sizeof *md5s);
        rc = cat && md5s ? SK_OK : sk_error(SK_EIO, "out of memory");
        if (!rc)
            rc = md5_all(it, n, S.p.threads);
        if (!rc) {
            for (int k = 0; k < n; k++)
                memcpy(md5s[k], it[k].md5, 33);
            qsort(md5s, (size_t)n, sizeof *md5s, (int (*)(const void *, const void *))strcmp);
            cat[0] = '\0';
            for (int k = 0; k < n; k++) {
                strcat(cat, md5s[k]);
                strcat(cat, k + 1 < n ? "," : "");
            }
            sk_sha256_hex(cat, strlen(cat), set_hash);
        }
        free(cat);
        free(md5s);
    }
    if (rc)
        goto done;
    char relpath[4096] = "";
    if (rq->db) {
        char reldir[4096];
        rc = sk_storage_dir(it[n - 1].instrument, it[0].mjd, it[0].section[0] ? it[0].section : NULL,
                            it[0].filter, "coadd", prov->id, reldir, sizeof reldir);
        if (!rc && (size_t)snprintf(relpath, sizeof relpath, "%s/coadd-%.16s.fits", reldir, set_hash) >=
                       sizeof relpath)
            rc = sk_error(SK_EINPUT, "coadd: path too long");
        rc = rc ? rc : sk_storage_resolve(root, relpath, out->path, sizeof out->path);
        char lock[160];
        snprintf(lock, sizeof lock, "coadd|%s|%s", prov->id, set_hash);
        rc = rc ? rc : sk_db_begin(rq->db);
        in_tx = rc == SK_OK;
        rc = rc ? rc : sk_db_lock(rq->db, lock);
        PGresult *ex = NULL;
        const char *pe[2] = {prov->id, set_hash};
        rc = rc ? rc
                : sk_db_exec(rq->db, "looking for the coadd",
                             "SELECT id, filepath FROM images WHERE provenance_id = $1 AND "
                             "input_set_hash = $2 AND type = 'coadd'",
                             2, pe, &ex);
        if (!rc && PQntuples(ex) == 1) {
            out->image_id = strtoll(PQgetvalue(ex, 0, 0), NULL, 10);
            rc = sk_storage_resolve(root, PQgetvalue(ex, 0, 1), out->path, sizeof out->path);
            out->reused = 1;
        }
        PQclear(ex);
        if (rc || out->reused)
            goto done;
        rc = sk_db_save_prov(rq->db, prov);
        char dir[4200];
        snprintf(dir, sizeof dir, "%s", out->path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        rc = rc ? rc : sk_mkdir_p(dir);
    } else {
        if (rq->output) {
            copy_str(out->path, sizeof out->path, rq->output);
        } else {
            const char *od = rq->outdir ? rq->outdir : ".";
            snprintf(out->path, sizeof out->path, "%s/coadd-%.8s-%.12s.fits", od, prov->id, set_hash);
            if (rq->outdir)
                rc = sk_mkdir_p(rq->outdir);
        }
        /* the same provenance and inputs already made it: return it */
        sk_prov *have = NULL;
        json_t *doc = NULL;
        if (!rc && file_exists(out->path) &&
            sk_sidecar_read(out->path, &have, NULL, 0, NULL, &doc) == SK_OK &&
            strcmp(have->id, prov->id) == 0 && sk_sidecar_verify(out->path) == SK_OK) {
            json_t *ins = json_object_get(doc, "inputs");
            int same = json_is_array(ins) && (int)json_array_size(ins) == n;
            for (int k = 0; same && k < n; k++) {
                const char *m = json_string_value(json_object_get(json_array_get(ins, k), "md5"));
                int found = 0;
                for (int j = 0; m && j < n && !found; j++)
                    found = strcmp(m, it[j].md5) == 0;
                same = found;
            }
            out->reused = same;
        }
        sk_error_clear();
        sk_prov_free(have);
        json_decref(doc);
        if (rc || out->reused)
            goto done;
    }
    if (rc)
        goto done;

    /* the coadd */
    if ((rc = make_grid(&S, it, n, ref, &grid)))
        goto done;
    sk_coadd_input *ins = malloc((size_t)n * sizeof *ins);
    if (!ins) {
        rc = sk_error(SK_EIO, "out of memory");
        goto done;
    }
    for (int k = 0; k < n; k++)
        ins[k] = it[k].in;
    if (rq->progress) {
        S.p.progress = progress_line;
        S.p.progress_ctx = NULL;
    }
    sk_info("%d input%s, %s grid %ld x %ld, %s, %s", n, n == 1 ? "" : "s", S.grid, grid->width,
            grid->height,
            S.x.method != SK_COADDX_DIRECT ? sk_coaddx_method_name(S.x.method)
                                           : sk_combine_name(S.p.combine.method),
            sk_kernel_name(S.p.kernel));
    if (S.x.method != SK_COADDX_DIRECT || S.x.background_match || S.x.artifact_masks)
        rc = run_coaddx(rq, &S, it, ins, n, grid, &res, &xpsf);
    else
        rc = sk_coadd_run(ins, n, grid, &S.p, &res);
    free(ins);
    if (rc)
        goto done;
    sk_header_set_str(res->image->header, "PROVID", prov->id, "coaddition provenance");
    if ((rc = sk_coadd_write(out->path, res, NULL)))
        goto done;
    files = calloc((size_t)n, sizeof *files);
    idtext = calloc((size_t)n, sizeof *idtext);
    if (!files || !idtext) {
        rc = sk_error(SK_EIO, "out of memory");
        goto done;
    }
    for (int k = 0; k < n; k++) {
        if (it[k].id)
            snprintf(idtext[k], sizeof idtext[k], "%lld", it[k].id);
        files[k].id = it[k].id ? idtext[k] : NULL;
        files[k].path = it[k].path;
        files[k].md5 = it[k].md5[0] ? it[k].md5 : NULL;
    }
    rc = sk_sidecar_write(out->path, "coadd", prov, files, n);
    char psf_path[4200] = "";
    double psf_fwhm = NAN;
    if (!rc && !rq->no_psf)
        rc = write_coadd_psf(it, n, grid, res, prov, files, out->path, psf_path, sizeof psf_path,
                             &psf_fwhm, xpsf);
    if (!rc && rq->db) {
        char md5[33];
        rc = sk_sidecar_read(out->path, NULL, NULL, 0, md5, NULL); /* the md5 it just recorded */
        rc = rc ? rc : register_coadd(rq, it, n, prov, set_hash, relpath, md5, res, &out->image_id);
        if (!rc && psf_path[0]) {
            char rel[4200], base[4096], cid[32], pmd5[33], fw[40];
            strip_fits_ext(relpath, base, sizeof base);
            rc = pathf(rel, sizeof rel, "%s.psf", base);
            rc = rc ? rc : sk_md5_file(psf_path, pmd5);
            snprintf(cid, sizeof cid, "%lld", out->image_id);
            snprintf(fw, sizeof fw, "%.9g", psf_fwhm);
            const char *pp[5] = {cid, prov->id, rel, pmd5, isfinite(psf_fwhm) ? fw : NULL};
            rc = rc ? rc
                    : sk_db_exec(rq->db, "registering the coadd PSF",
                                 "INSERT INTO psfs (image_id, provenance_id, filepath, md5, fwhm_arcsec) "
                                 "VALUES ($1::bigint, $2, $3, $4, $5)",
                                 5, pp, NULL);
        }
        rc = rc ? rc : sk_db_commit(rq->db);
        in_tx = 0;
    }
    if (rc) {
        char side[4300];
        snprintf(side, sizeof side, "%s.json", out->path);
        unlink(out->path);
        unlink(side);
        if (psf_path[0]) {
            snprintf(side, sizeof side, "%s.json", psf_path);
            unlink(psf_path);
            unlink(side);
        }
        goto done;
    }
    sk_info("%s: %d inputs, MAGZERO %.4f, %ld input pixels rejected", out->path, n, res->zero_point,
            res->nrejected);

done:
    if (in_tx && rq->db)
        sk_db_rollback(rq->db);
    if (!rc && S.extraction) {
        char target[64];
        snprintf(target, sizeof target, "%lld", out->image_id);
        rc = run_extract(rq, rq->db ? target : out->path, rq->db == NULL);
    }
    sk_coadd_result_free(res);
    sk_psf_free(xpsf);
    sk_grid_free(grid);
    sk_prov_free(prov);
    free(files);
    free(idtext);
    for (int k = 0; k < rq->ninputs; k++)
        item_free(&it[k]);
    free(it);
    return rc;
}
