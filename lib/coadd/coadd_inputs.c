/* coadd_inputs.c: the inputs of a coadd: each image's file, metadata, WCS, provenances and extraction products, from the files beside it or from the database, and the md5 of every input file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "skystack/error.h"
#include "skystack/fits.h"
#include "skystack/hash.h"
#include "skystack/header.h"
#include "skystack/log.h"
#include "skystack/storage.h"
#include "core/parallel.h"
#include "core/path_priv.h"
#include "db/pipeline_rows_priv.h"
#include "coadd_pipeline_priv.h"

/* Copy a string, cut to the destination's size (NULL: ""). */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void coadd_item_free(item *it)
{
    sk_wcs_free(it->wcs);
    sk_prov_free(it->pre);
    sk_prov_free(it->ext);
}

/* The extraction provenance the configuration gives for an image of
 * preprocessing provenance `pre` (NULL: none known). */
static int extraction_prov(const settings *S, const sk_prov *pre, sk_prov **out)
{
    int rc = sk_prov_new("extraction", sk_code_version("extraction"), S->extraction_critical, out);
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
    if (!sk_path_is_file(side))
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

/* The file, its WCS and metadata from its header; *header_zp the zero
 * point of the header's keyword (NaN: none). */
static int file_metadata(const sk_coadd_request *rq, const char *arg, item *it, double *header_zp)
{
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
    *header_zp = header_double(h, rq->zero_point_key ? rq->zero_point_key : "MAGZERO");
    sk_header_free(h);
    if (!isfinite(it->mjd))
        return sk_error(SK_EINPUT, "%s: no MJD-OBS: the coadd needs the time of each input", arg);
    return SK_OK;
}

/* The background and PSF products: given, or beside the image under
 * extract's names (STEM = BASE.PROVPREFIX). */
static int file_products(const sk_coadd_request *rq, int k, const char *stem, item *it)
{
    const char *arg = rq->inputs[k];
    int rc;
    if (nth(rq->backgrounds, k))
        copy_str(it->bkg, sizeof it->bkg, nth(rq->backgrounds, k));
    else if ((rc = sk_path_format(it->bkg, sizeof it->bkg, "%s.bkg.fits", stem)))
        return rc;
    if (!sk_path_is_file(it->bkg))
        return sk_error(SK_EINPUT, "%s: no background product (%s; run extract --no-db on it, or "
                                   "give --background)", arg, it->bkg);
    if (nth(rq->psfs, k))
        copy_str(it->psf, sizeof it->psf, nth(rq->psfs, k));
    else if ((rc = sk_path_format(it->psf, sizeof it->psf, "%s.psf", stem)))
        return rc;
    if (!rq->no_psf && !sk_path_is_file(it->psf))
        return sk_error(SK_EINPUT, "%s: no PSF product (%s; give --psf, or --no-psf)", arg, it->psf);
    if (rq->no_psf)
        it->psf[0] = '\0';
    return SK_OK;
}

/* The solved WCS (STEM.head, header cards) replaces the header's when
 * extract made one. */
static int file_solved_wcs(const char *arg, const char *stem, item *it)
{
    char head[4200];
    int rc = sk_path_format(head, sizeof head, "%s.head", stem);
    if (rc || !sk_path_is_file(head))
        return rc;
    sk_header *hh = NULL;
    sk_wcs *solved = NULL;
    copy_str(it->head, sizeof it->head, head);
    rc = sk_header_read_cards_file(head, &hh);
    if (!rc && sk_wcs_from_header(hh, &solved) != SK_OK)
        rc = sk_error_context("%s: its solved WCS (%s) does not parse", arg, head);
    sk_header_free(hh);
    if (rc)
        return rc;
    sk_wcs_free(it->wcs);
    it->wcs = solved;
    return SK_OK;
}

/* The zero point: given, else the extraction's (MAGZERO of the source
 * list, which is then an input), else the image header's keyword. */
static int file_zero_point(const sk_coadd_request *rq, int k, const char *stem, double header_zp,
                           item *it)
{
    it->zp = rq->zero_points ? rq->zero_points[k] : NAN;
    if (rq->zero_points && isfinite(it->zp)) {
        it->given |= COADD_GIVEN_ZERO_POINT;
        snprintf(it->zp_text, sizeof it->zp_text, "%.17g", it->zp);
        sk_md5_hex(it->zp_text, strlen(it->zp_text), it->zp_md5);
    }
    char srcpath[4200];
    if (!isfinite(it->zp) && sk_path_format(srcpath, sizeof srcpath, "%s.sources.fits", stem) == SK_OK &&
        sk_path_is_file(srcpath)) {
        sk_header *sh = NULL;
        if (sk_fits_read_header(srcpath, "SOURCES", &sh) == SK_OK)
            it->zp = header_double(sh, "MAGZERO");
        sk_header_free(sh);
        sk_error_clear();
        if (isfinite(it->zp))
            copy_str(it->srclist, sizeof it->srclist, srcpath);
    }
    if (!isfinite(it->zp))
        it->zp = header_zp;
    if (!isfinite(it->zp))
        return sk_error(SK_EINPUT, "%s: no zero point (no calibrated source list, no %s card; give "
                                   "--zero-points)", rq->inputs[k],
                        rq->zero_point_key ? rq->zero_point_key : "MAGZERO");
    return SK_OK;
}

int coadd_resolve_file(const sk_coadd_request *rq, const settings *S, int k, item *it)
{
    const char *arg = rq->inputs[k];
    if (!sk_path_is_file(arg))
        return sk_error(sk_path_is_number(arg) ? SK_EINPUT : SK_ENOTFOUND,
                        sk_path_is_number(arg) ? "%s: image ids need the database (drop --no-db)"
                                               : "%s: no such file", arg);
    double header_zp = NAN;
    int rc = file_metadata(rq, arg, it, &header_zp);
    rc = rc ? rc : sidecar_prov(arg, &it->pre, it->md5);
    rc = rc ? rc : extraction_prov(S, it->pre, &it->ext);
    if (rc)
        return rc;
    char base[4096], stem[4096];
    sk_path_strip_fits_ext(arg, base, sizeof base);
    if (rq->products_dir)
        rc = sk_path_format(stem, sizeof stem, "%s/%s.%.*s", rq->products_dir, sk_path_base_name(base),
                            SK_STORAGE_PROV_PREFIX, it->ext->id);
    else
        rc = sk_path_format(stem, sizeof stem, "%s.%.*s", base, SK_STORAGE_PROV_PREFIX, it->ext->id);
    rc = rc ? rc : file_products(rq, k, stem, it);
    rc = rc ? rc : file_solved_wcs(arg, stem, it);
    rc = rc ? rc : file_zero_point(rq, k, stem, header_zp, it);
    if (rc)
        return rc;
    copy_str(it->weight, sizeof it->weight, nth(rq->weights, k));
    copy_str(it->mask, sizeof it->mask, nth(rq->masks, k));
    if ((it->weight[0] && !sk_path_is_file(it->weight)) || (it->mask[0] && !sk_path_is_file(it->mask)))
        return sk_error(SK_ENOTFOUND, "%s: its %s %s: no such file", arg,
                        it->weight[0] && !sk_path_is_file(it->weight) ? "--weight" : "--mask",
                        it->weight[0] && !sk_path_is_file(it->weight) ? it->weight : it->mask);
    it->given |= (it->weight[0] ? COADD_GIVEN_WEIGHT : 0) | (it->mask[0] ? COADD_GIVEN_MASK : 0) |
                 (nth(rq->backgrounds, k) ? COADD_GIVEN_BACKGROUND : 0) |
                 (nth(rq->psfs, k) && it->psf[0] ? COADD_GIVEN_PSF : 0);
    return SK_OK;
}

/* ---- inputs from the database ---- */

/* The images row, the file, and the provenances: the image's from its
 * sidecar (which must agree with the row), the extraction's from the
 * settings. */
static int db_image(const sk_coadd_request *rq, const settings *S, int k, item *it)
{
    sk_registered_image row;
    int rc = sk_db_find_image(rq->db, S->data_root, rq->inputs[k], &row);
    if (rc)
        return rc;
    it->id = row.id;
    snprintf(it->key, sizeof it->key, "%lld", it->id);
    rc = sk_storage_resolve(S->data_root, row.filepath, it->path, sizeof it->path);
    copy_str(it->instrument, sizeof it->instrument, row.instrument);
    copy_str(it->telescope, sizeof it->telescope, row.telescope);
    copy_str(it->filter, sizeof it->filter, row.filter);
    copy_str(it->section, sizeof it->section, row.section);
    copy_str(it->target, sizeof it->target, row.target);
    copy_str(it->project, sizeof it->project, row.project);
    it->mjd = row.mjd;
    it->end_mjd = row.end_mjd;
    it->exptime = row.exptime_s;
    it->gain = row.gain;
    copy_str(it->md5, sizeof it->md5, row.md5);
    if (rc)
        return rc;
    if (!sk_path_is_file(it->path))
        return sk_error(SK_ENOTFOUND, "image %lld: its file %s is missing from the data root (the row is "
                                      "there, the file is gone): ingest the original again (imingest "
                                      "restores it under the same id), or, when the original is lost too, "
                                      "`skydb fsck --repair` marks such images bad so that coadds leave "
                                      "them out",
                        it->id, it->path);
    rc = sk_sidecar_read(it->path, &it->pre, NULL, 0, NULL, NULL);
    if (rc)
        return sk_error_context("image %lld", it->id);
    if (strcmp(it->pre->id, row.provenance_id) != 0)
        return sk_error(SK_EINPUT, "%s: its sidecar names provenance %s, the database %s", it->path,
                        it->pre->id, row.provenance_id);
    return extraction_prov(S, it->pre, &it->ext);
}

/* The names of the products the row lacks, "" when it has them all. */
static void missing_products(const sk_extraction_products_row *p, char *missing, size_t size)
{
    static const char *const names[5] = {"source list", "PSF", "background", "WCS", "zero point"};
    const long long ids[5] = {p->source_list_id, p->psf_id, p->background_id, p->wcs_id, p->zero_point_id};
    missing[0] = '\0';
    for (int c = 0; c < 5; c++)
        if (!ids[c])
            snprintf(missing + strlen(missing), size - strlen(missing), "%s%s", missing[0] ? ", " : "",
                     names[c]);
}

int coadd_resolve_db(const sk_coadd_request *rq, const settings *S, int k, item *it)
{
    int rc = db_image(rq, S, k, it);
    if (rc)
        return rc;
    sk_extraction_products_row p;
    if ((rc = sk_db_extraction_products(rq->db, it->id, it->ext->id, &p)))
        return rc;
    char missing[128];
    missing_products(&p, missing, sizeof missing);
    if (missing[0]) {
        free(p.wcs_header);
        if (rq->skip_incomplete) {
            sk_info("image %lld: no %s of extraction provenance %s: left out", it->id, missing, it->ext->id);
            return SK_ENOTFOUND;
        }
        return sk_error(SK_EINPUT, "image %lld (%s): no %s of extraction provenance %s (run extract "
                                   "on it with this configuration)", it->id, it->path, missing,
                        it->ext->id);
    }
    it->src_id = p.source_list_id;
    it->psf_id = p.psf_id;
    it->bkg_id = p.background_id;
    it->wcs_id = p.wcs_id;
    it->zp_id = p.zero_point_id;
    it->zp = p.zero_point;
    rc = sk_storage_resolve(S->data_root, p.psf_relpath, it->psf, sizeof it->psf);
    rc = rc ? rc : sk_storage_resolve(S->data_root, p.background_relpath, it->bkg, sizeof it->bkg);
    const char *gone = rc ? NULL : !sk_path_is_file(it->psf) ? it->psf : !sk_path_is_file(it->bkg) ? it->bkg : NULL;
    if (gone) {
        free(p.wcs_header);
        return sk_error(SK_ENOTFOUND, "image %lld: %s of its extraction %s is missing from the data root: "
                                      "run extract on the image again (it makes the products anew under "
                                      "the same rows); `skydb fsck` lists what is missing",
                        it->id, gone, it->ext->id);
    }
    /* the fitted WCS: header cards */
    sk_header *h = NULL;
    if (!rc)
        rc = sk_header_from_text(p.wcs_header, &h);
    free(p.wcs_header);
    if (!rc && sk_wcs_from_header(h, &it->wcs) != SK_OK)
        rc = sk_error_context("image %lld: its fitted WCS does not parse", it->id);
    sk_header_free(h);
    return rc;
}

/* ---- md5 of the input files ---- */

static int md5_of(const char *path, char md5[33])
{
    return !path[0] || md5[0] ? SK_OK : sk_md5_file(path, md5);
}

static int md5_one(long k, void *user)
{
    item *it = (item *)user + k;
    int rc = md5_of(it->path, it->md5);
    if (it->id)
        return rc; /* with a database the products are rows, named by their ids */
    rc = rc ? rc : md5_of(it->weight, it->weight_md5);
    rc = rc ? rc : md5_of(it->mask, it->mask_md5);
    rc = rc ? rc : md5_of(it->bkg, it->bkg_md5);
    rc = rc ? rc : md5_of(it->psf, it->psf_md5);
    rc = rc ? rc : md5_of(it->head, it->head_md5);
    rc = rc ? rc : md5_of(it->srclist, it->srclist_md5);
    return rc;
}

int coadd_md5_inputs(item *it, int n, int threads)
{
    return sk_parallel_for_each(n, threads, md5_one, it);
}

/* ---- the identity of the inputs ---- */

static int cmp_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int coadd_file_set_hash(const item *it, int n, char set_hash[65])
{
    const size_t one = 6 * 33 + 8;
    char **ids = calloc((size_t)n, sizeof *ids);
    char *cat = malloc((size_t)n * one + 1);
    int rc = ids && cat ? SK_OK : sk_error(SK_EIO, "out of memory");
    for (int k = 0; !rc && k < n; k++) {
        const item *x = &it[k];
        if (!(ids[k] = malloc(one))) {
            rc = sk_error(SK_EIO, "out of memory");
            break;
        }
        snprintf(ids[k], one, "%s%s%s%s%s%s%s%s%s%s%s", x->md5, x->given & COADD_GIVEN_WEIGHT ? ";w" : "",
                 x->given & COADD_GIVEN_WEIGHT ? x->weight_md5 : "", x->given & COADD_GIVEN_MASK ? ";m" : "",
                 x->given & COADD_GIVEN_MASK ? x->mask_md5 : "", x->given & COADD_GIVEN_BACKGROUND ? ";b" : "",
                 x->given & COADD_GIVEN_BACKGROUND ? x->bkg_md5 : "", x->given & COADD_GIVEN_PSF ? ";p" : "",
                 x->given & COADD_GIVEN_PSF ? x->psf_md5 : "", x->given & COADD_GIVEN_ZERO_POINT ? ";z" : "",
                 x->given & COADD_GIVEN_ZERO_POINT ? x->zp_md5 : "");
    }
    if (!rc) {
        qsort(ids, (size_t)n, sizeof *ids, cmp_text);
        cat[0] = '\0';
        for (int k = 0; k < n; k++) {
            strcat(cat, ids[k]);
            strcat(cat, k + 1 < n ? "," : "");
        }
        sk_sha256_hex(cat, strlen(cat), set_hash);
    }
    for (int k = 0; ids && k < n; k++)
        free(ids[k]);
    free(ids);
    free(cat);
    return rc;
}

int coadd_input_files(const item *it, int n, char (*idtext)[32], sk_input_file **files, int *nfiles)
{
    *nfiles = 0;
    sk_input_file *f = calloc((size_t)n * 7, sizeof *f);
    if (!(*files = f))
        return sk_error(SK_EIO, "out of memory");
    int m = 0;
    for (int k = 0; k < n; k++) {
        const item *x = &it[k];
        if (x->id)
            snprintf(idtext[k], sizeof idtext[k], "%lld", x->id);
        f[m++] = (sk_input_file){x->id ? idtext[k] : NULL, x->path, x->md5[0] ? x->md5 : NULL, "image"};
        if (x->id)
            continue;
        const struct {
            const char *path, *md5, *role;
        } aux[] = {{x->weight, x->weight_md5, "weight"}, {x->mask, x->mask_md5, "mask"},
                   {x->bkg, x->bkg_md5, "background"}, {x->psf, x->psf_md5, "psf"},
                   {x->head, x->head_md5, "wcs"},       {x->srclist, x->srclist_md5, "zero_point"}};
        for (size_t a = 0; a < sizeof aux / sizeof aux[0]; a++)
            if (aux[a].path[0])
                f[m++] = (sk_input_file){NULL, aux[a].path, aux[a].md5[0] ? aux[a].md5 : NULL, aux[a].role};
        if (x->zp_text[0])
            f[m++] = (sk_input_file){x->zp_text, "--zero-points", x->zp_md5, "zero_point"};
    }
    *nfiles = m;
    return SK_OK;
}
