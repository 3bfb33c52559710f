/* extract.c: the extract program: background, detection, deblending and
 * measurement of images into a FITS source list and a background product,
 * then the calibration (calib.h: PSF model, and with a reference catalog
 * the astrometric and photometric solutions), each product with a
 * provenance sidecar, registered in the database (or written beside the
 * image with --no-db). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "skystack/skystack.h"
#include "db/db_priv.h"

typedef struct extract_opts {
    int no_db;
    int regions;
    const char *hdu;
    const char *weight;
    int weight_kind;
    const char *mask;
    const char *outdir;
    int full_background;
    int update_header;
} extract_opts;

static const sk_opt options[] = {
    {"no-db", 0, 0, NULL, "no database: products and sidecars beside each image", NULL},
    {"regions", 0, 0, NULL, "also write a ds9 region file of the detections", NULL},
    {"full-background", 0, 0, NULL, "background product with full-resolution maps, not only the mesh", NULL},
    {"update-header", 0, 0, NULL, "with --no-db: also write the solved WCS into each image's header", NULL},
    {"outdir", 'o', 1, "DIR", "with --no-db: write the products in DIR instead", NULL},
    {"hdu", 0, 1, "HDU", "science HDU (name or number) of the image files", NULL},
    {"weight", 0, 1, "FILE", "separate weight (inverse-variance) image", NULL},
    {"weight-type", 0, 1, "TYPE", "what --weight holds: weight, variance or rms", NULL},
    {"mask", 0, 1, "FILE", "separate data-quality mask (non-zero = bad)", NULL},
    {"threshold", 0, 1, "SIGMA", "detection threshold per pixel", "extraction.detection.threshold_sigma"},
    {"min-area", 0, 1, "PX", "minimum detection area", "extraction.detection.min_area_px"},
    {"mesh", 0, 1, "PX", "background mesh size", "extraction.background.mesh_px"},
    {"fwhm", 0, 1, "PX", "initial FWHM guess of the matched filter", "extraction.detection.fwhm_guess_px"},
    {"gain", 0, 1, "E/ADU", "gain for the source Poisson noise (default: header)",
     "extraction.photometry.gain"},
    {"refcat", 0, 1, "FILE", "reference catalog (FITS table of ra, dec, mag; FILE,FILE... for several) "
     "for the astrometric and photometric calibration", "extraction.astrometry.refcat"},
    {"sip-order", 0, 1, "N", "SIP order of the WCS fit (0: automatic)", "extraction.astrometry.sip_order"},
    {"psf-degree", 0, 1, "N", "polynomial degree of the PSF variation", "extraction.psf.degree"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    (void)cli;
    extract_opts *o = user;
    if (strcmp(opt->name, "no-db") == 0)
        o->no_db = 1;
    else if (strcmp(opt->name, "regions") == 0)
        o->regions = 1;
    else if (strcmp(opt->name, "update-header") == 0)
        o->update_header = 1;
    else if (strcmp(opt->name, "full-background") == 0)
        o->full_background = 1;
    else if (strcmp(opt->name, "outdir") == 0)
        o->outdir = arg;
    else if (strcmp(opt->name, "hdu") == 0)
        o->hdu = arg;
    else if (strcmp(opt->name, "weight") == 0)
        o->weight = arg;
    else if (strcmp(opt->name, "mask") == 0)
        o->mask = arg;
    else if (strcmp(opt->name, "weight-type") == 0) {
        if (strcmp(arg, "weight") == 0)
            o->weight_kind = SK_NOISE_WEIGHT;
        else if (strcmp(arg, "variance") == 0)
            o->weight_kind = SK_NOISE_VARIANCE;
        else if (strcmp(arg, "rms") == 0)
            o->weight_kind = SK_NOISE_RMS;
        else
            return sk_error(SK_EINPUT, "--weight-type: '%s' is not weight, variance or rms", arg);
    } else
        return sk_error(SK_EINPUT, "--%s: not an extract option", opt->name);
    return SK_OK;
}

/* snprintf into a path buffer; SK_EINPUT when the result would not fit. */
static int pathf(char *out, size_t outsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pathf(char *out, size_t outsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outsz)
        return sk_error(SK_EINPUT, "path too long: %.80s...", out);
    return SK_OK;
}

/* "dir/name.fits[.fz|.gz]" -> "name" part kept with its directory. */
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

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Does `path` exist with a sidecar naming provenance `id` and a matching md5? */
static int product_current(const char *path, const char *id)
{
    if (!file_exists(path))
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

typedef struct ctx {
    sk_cli *cli;
    const extract_opts *o;
    sk_extract_params params;
    sk_calib_params calib;   /* calibration step (calib.h) */
    json_t *crit;            /* critical parameters of the extraction section */
    sk_db *db;               /* NULL with --no-db */
    char root[4096];         /* data root (database mode) */
} ctx;

/* Product paths of one image under one provenance. */
typedef struct products {
    char src[4200], bkg[4200], reg[4200];
    char psf[4200], head[4200]; /* calibration products (PSFEx model, WCS cards) */
} products;

static int read_image(const ctx *C, const char *path, sk_image **img)
{
    sk_read_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.hdu = C->o->hdu;
    ro.noise_path = C->o->weight;
    ro.noise_kind = C->o->weight_kind;
    ro.mask_path = C->o->mask;
    return sk_fits_read_image(path, &ro, img);
}

/* The extraction provenance of an image whose own provenance is `up`
 * (NULL when the image has no sidecar). */
static int make_prov(const ctx *C, const sk_prov *up, sk_prov **out)
{
    int rc = sk_prov_new("extraction", sk_code_version("extraction"), C->crit, out);
    if (!rc && up)
        rc = sk_prov_add_upstream(*out, up);
    return rc;
}

static int emit_products(const ctx *C, const products *P)
{
    printf("%s\n%s\n", P->src, P->bkg);
    if (C->o->regions)
        printf("%s\n", P->reg);
    if (file_exists(P->psf))
        printf("%s\n", P->psf);
    if (file_exists(P->head))
        printf("%s\n", P->head);
    fflush(stdout);
    return SK_OK;
}

/* Regions for an existing source list (rerun with --regions). */
static int ensure_regions(const ctx *C, const products *P)
{
    if (!C->o->regions || file_exists(P->reg))
        return SK_OK;
    sk_table *t = NULL;
    int rc = sk_fits_read_table(P->src, "SOURCES", &t);
    rc = rc ? rc : write_regions(P->reg, t);
    sk_table_free(t);
    return rc;
}

static void remove_products(const products *P)
{
    const char *paths[] = {P->src, P->bkg, P->reg, P->psf, P->head};
    for (int i = 0; i < 5; i++) {
        char side[4300];
        snprintf(side, sizeof side, "%s.json", paths[i]);
        unlink(paths[i]);
        unlink(side);
    }
}

/* Extract `img` and write the products with their sidecars. */
static int run_and_write(const ctx *C, const sk_image *img, const char *image_path,
                         const char *image_id, const sk_prov *prov, double gain_fallback,
                         const products *P, sk_extract_result **res, sk_calib **cal)
{
    sk_extract_params p = C->params;
    if (!(p.gain > 0) && gain_fallback > 0) {
        double g;
        if (!(img->header && sk_header_get_double(img->header, p.gain_key, &g) == 1 && g > 0))
            p.gain = gain_fallback;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = sk_extract_run(img, &p, C->cli->threads, res);
    if (rc)
        return sk_error_context("%s", image_path);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sk_extract_result *r = *res;
    sk_info("%s: %ld sources, FWHM %.2f px, background %.3g rms %.3g, gain %g, %.2f s", image_path,
            r->sources->n, r->fwhm_px, r->background->median_level, r->background->median_rms, r->gain,
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    /* calibration: PSF, PSF fluxes, astrometry and photometry (calib.c);
       the source table's RA/DEC come through the solved WCS */
    rc = sk_calib_run(img, r, &C->calib, C->cli->threads, cal);
    if (rc)
        return sk_error_context("%s", image_path);
    sk_image solved = *img;
    if ((*cal)->astrom)
        solved.wcs = (*cal)->astrom->wcs;
    sk_table *t = NULL;
    rc = sk_source_table(r->sources, &solved, &t);
    rc = rc ? rc : sk_calib_annotate_table(*cal, t);
    if (!rc) {
        sk_header_set_str(t->header, "PROVID", prov->id, "extraction provenance");
        sk_header_set_str(t->header, "IMAGE", base_name(image_path), "image the sources come from");
        sk_header_set_double(t->header, "GAIN", r->gain, "[e/adu] gain used (0 = none)");
        sk_header_set_double(t->header, "THRESH", p.detect.threshold_sigma,
                             "detection threshold, per-pixel background sigma");
        sk_header_set_double(t->header, "BKGMED", r->background->median_level, "[adu] median background");
        sk_header_set_double(t->header, "RMSMED", r->background->median_rms, "[adu] median background rms");
    }
    sk_input_file in[1 + C->calib.nrefcat];
    in[0] = (sk_input_file){image_id, image_path, NULL};
    for (int i = 0; i < C->calib.nrefcat; i++)
        in[1 + i] = (sk_input_file){NULL, C->calib.refcat[i], NULL};
    /* each input's md5 once, for all the sidecars (the image is large) */
    char in_md5[1 + C->calib.nrefcat][33];
    for (int i = 0; i < 1 + C->calib.nrefcat && !rc; i++) {
        rc = sk_md5_file(in[i].path, in_md5[i]);
        in[i].md5 = in_md5[i];
    }
    rc = rc ? rc : sk_fits_write_table(P->src, t);
    rc = rc ? rc : sk_sidecar_write(P->src, "source_list", prov, in, 1 + C->calib.nrefcat);
    rc = rc ? rc : sk_background_write(P->bkg, r->background, C->o->full_background, r->fwhm_px);
    rc = rc ? rc : sk_sidecar_write(P->bkg, "background", prov, in, 1);
    if (!rc && (*cal)->psf) {
        rc = sk_psf_write(P->psf, (*cal)->psf);
        rc = rc ? rc : sk_sidecar_write(P->psf, "psf", prov, in, 1);
    }
    if (!rc && (*cal)->astrom) {
        rc = sk_calib_write_head(P->head, *cal);
        rc = rc ? rc : sk_sidecar_write(P->head, "world_coordinates", prov, in, 1 + C->calib.nrefcat);
    }
    if (!rc && C->o->regions)
        rc = write_regions(P->reg, t);
    sk_table_free(t);
    if (rc)
        remove_products(P);
    return rc;
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

/* --update-header: the solved WCS of the `.head` product into the image's
 * header (the science HDU), the file rewritten atomically. */
static int update_image_header(const ctx *C, const char *path, const products *P,
                               const char *prov_id)
{
    if (!C->o->update_header)
        return SK_OK;
    if (!file_exists(P->head))
        return sk_error(SK_ENOTFOUND, "%s: no solved WCS to write into its header", path);
    sk_header *h = NULL;
    int rc = sk_header_read_cards_file(P->head, &h);
    char history[72];
    snprintf(history, sizeof history, "WCS solved by extract, extraction %.20s", prov_id);
    rc = rc ? rc : sk_fits_replace_wcs(path, C->o->hdu, h, history);
    sk_header_free(h);
    if (!rc)
        sk_info("%s: header updated with the solved WCS (%s)", path, P->head);
    return rc;
}

static int process_nodb(ctx *C, const char *path)
{
    if (!file_exists(path))
        return sk_error(is_number(path) ? SK_EINPUT : SK_ENOTFOUND,
                        is_number(path) ? "%s: image ids need the database (drop --no-db)"
                                        : "%s: no such file", path);
    sk_prov *up = NULL, *prov = NULL;
    char side[4200];
    snprintf(side, sizeof side, "%s.json", path);
    int rc = SK_OK;
    if (file_exists(side)) {
        char type[64], md5[33];
        rc = sk_sidecar_read(path, &up, type, sizeof type, md5, NULL);
        if (rc)
            return sk_error_context("%s", path);
    } else {
        sk_debug("%s: no provenance sidecar; the extraction has no upstream", path);
    }
    rc = make_prov(C, up, &prov);
    sk_prov_free(up);
    if (rc)
        return rc;
    products P;
    char base[4096];
    strip_fits_ext(path, base, sizeof base);
    if (C->o->outdir) {
        char b2[4096];
        snprintf(b2, sizeof b2, "%s", base_name(base));
        if ((rc = pathf(base, sizeof base, "%s/%s", C->o->outdir, b2))) {
            sk_prov_free(prov);
            return rc;
        }
    }
    char prefix[SK_STORAGE_PROV_PREFIX + 1];
    memcpy(prefix, prov->id, SK_STORAGE_PROV_PREFIX);
    prefix[SK_STORAGE_PROV_PREFIX] = '\0';
    rc = pathf(P.src, sizeof P.src, "%s.%s.sources.fits", base, prefix);
    rc = rc ? rc : pathf(P.bkg, sizeof P.bkg, "%s.%s.bkg.fits", base, prefix);
    rc = rc ? rc : pathf(P.reg, sizeof P.reg, "%s.%s.reg", base, prefix);
    rc = rc ? rc : pathf(P.psf, sizeof P.psf, "%s.%s.psf", base, prefix);
    rc = rc ? rc : pathf(P.head, sizeof P.head, "%s.%s.head", base, prefix);
    if (rc) {
        sk_prov_free(prov);
        return rc;
    }
    if (product_current(P.src, prov->id) && product_current(P.bkg, prov->id)) {
        sk_info("%s: extraction %s exists already", path, prov->id);
        rc = ensure_regions(C, &P);
        rc = rc ? rc : update_image_header(C, path, &P, prov->id);
        sk_prov_free(prov);
        return rc ? rc : emit_products(C, &P);
    }
    sk_image *img = NULL;
    rc = read_image(C, path, &img);
    sk_extract_result *res = NULL;
    sk_calib *cal = NULL;
    rc = rc ? rc : run_and_write(C, img, path, NULL, prov, 0, &P, &res, &cal);
    rc = rc ? rc : update_image_header(C, path, &P, prov->id);
    if (!rc)
        emit_products(C, &P);
    sk_calib_free(cal);
    sk_extract_result_free(res);
    sk_image_free(img);
    sk_prov_free(prov);
    return rc;
}

/* The images row of an id or a path in the data root. */
static int find_image(ctx *C, const char *arg, PGresult **row)
{
    static const char *cols =
        "SELECT id, filepath, provenance_id, instrument, mjd, section_id, filter, type, gain "
        "FROM images WHERE ";
    char sql[512];
    if (is_number(arg) && !file_exists(arg)) {
        snprintf(sql, sizeof sql, "%sid = $1", cols);
        const char *params[1] = {arg};
        int rc = sk_db_exec_row(C->db, "finding the image", sql, 1, params, row);
        if (rc == SK_ENOTFOUND)
            return sk_error(SK_ENOTFOUND, "image id %s: not in the database", arg);
        return rc;
    }
    /* a path: relative to the data root as stored */
    char rel[4096];
    char *real = realpath(arg, NULL), *rroot = realpath(C->root, NULL);
    size_t n = rroot ? strlen(rroot) : 0;
    if (real && rroot && strncmp(real, rroot, n) == 0 && real[n] == '/')
        snprintf(rel, sizeof rel, "%s", real + n + 1);
    else
        snprintf(rel, sizeof rel, "%s", arg);
    free(real);
    free(rroot);
    snprintf(sql, sizeof sql, "%sfilepath = $1", cols);
    const char *params[1] = {rel};
    int rc = sk_db_exec_row(C->db, "finding the image", sql, 1, params, row);
    if (rc == SK_ENOTFOUND)
        return sk_error(SK_ENOTFOUND, "%s: not registered in the database under %s "
                                      "(register it with imingest, or use --no-db)", arg, C->root);
    return rc;
}

static int process_db(ctx *C, const char *arg)
{
    PGresult *row = NULL;
    int rc = find_image(C, arg, &row);
    if (rc)
        return rc;
    char image_id[32], relpath[4096], image_prov[64], instrument[256], section[256], filter[256],
        type[32];
    snprintf(image_id, sizeof image_id, "%s", sk_db_value(row, 0, 0));
    snprintf(relpath, sizeof relpath, "%s", sk_db_value(row, 0, 1));
    snprintf(image_prov, sizeof image_prov, "%s", sk_db_value(row, 0, 2));
    snprintf(instrument, sizeof instrument, "%s", sk_db_value(row, 0, 3));
    double mjd = sk_db_double(row, 0, 4);
    const char *sec = sk_db_value(row, 0, 5);
    snprintf(section, sizeof section, "%s", sec ? sec : "");
    snprintf(filter, sizeof filter, "%s", sk_db_value(row, 0, 6));
    snprintf(type, sizeof type, "%s", sk_db_value(row, 0, 7));
    double db_gain = sk_db_double(row, 0, 8);
    PQclear(row);

    char path[4200];
    rc = sk_storage_resolve(C->root, relpath, path, sizeof path);
    if (rc)
        return rc;
    sk_prov *up = NULL, *prov = NULL;
    char stype[64], md5[33];
    rc = sk_sidecar_read(path, &up, stype, sizeof stype, md5, NULL);
    if (rc)
        return sk_error_context("image %s", image_id);
    if (strcmp(up->id, image_prov) != 0) {
        rc = sk_error(SK_EINPUT, "%s: its sidecar names provenance %s, the database %s", path, up->id,
                      image_prov);
        sk_prov_free(up);
        return rc;
    }
    rc = make_prov(C, up, &prov);
    sk_prov_free(up);
    if (rc)
        return rc;

    char reldir[4096], dir[4200], base[4096];
    rc = sk_storage_dir(instrument, mjd, section[0] ? section : NULL, filter, type, prov->id, reldir,
                        sizeof reldir);
    rc = rc ? rc : sk_storage_resolve(C->root, reldir, dir, sizeof dir);
    if (rc) {
        sk_prov_free(prov);
        return rc;
    }
    strip_fits_ext(base_name(relpath), base, sizeof base);
    char rel_src[4200], rel_bkg[4200], rel_psf[4200], rel_head[4200];
    products P;
    rc = pathf(rel_psf, sizeof rel_psf, "%s/%s.psf", reldir, base);
    rc = rc ? rc : pathf(rel_head, sizeof rel_head, "%s/%s.head", reldir, base);
    rc = rc ? rc : pathf(P.psf, sizeof P.psf, "%s/%s.psf", dir, base);
    rc = rc ? rc : pathf(P.head, sizeof P.head, "%s/%s.head", dir, base);
    rc = rc ? rc : pathf(rel_src, sizeof rel_src, "%s/%s.sources.fits", reldir, base);
    rc = rc ? rc : pathf(rel_bkg, sizeof rel_bkg, "%s/%s.bkg.fits", reldir, base);
    rc = rc ? rc : pathf(P.src, sizeof P.src, "%s/%s.sources.fits", dir, base);
    rc = rc ? rc : pathf(P.bkg, sizeof P.bkg, "%s/%s.bkg.fits", dir, base);
    rc = rc ? rc : pathf(P.reg, sizeof P.reg, "%s/%s.reg", dir, base);
    if (rc) {
        sk_prov_free(prov);
        return rc;
    }

    char lockname[128];
    snprintf(lockname, sizeof lockname, "extraction/%s/%s", image_id, prov->id);
    rc = sk_db_begin(C->db);
    rc = rc ? rc : sk_db_lock(C->db, lockname);
    const char *key[2] = {image_id, prov->id};
    PGresult *ex = NULL;
    rc = rc ? rc
            : sk_db_exec(C->db, "looking for existing products",
                         "SELECT s.filepath, b.filepath FROM source_lists s JOIN backgrounds b "
                         "ON b.image_id = s.image_id AND b.provenance_id = s.provenance_id "
                         "WHERE s.image_id = $1 AND s.provenance_id = $2",
                         2, key, &ex);
    if (!rc && PQntuples(ex) > 0) {
        char a[4200], b[4200];
        rc = sk_storage_resolve(C->root, sk_db_value(ex, 0, 0), a, sizeof a);
        rc = rc ? rc : sk_storage_resolve(C->root, sk_db_value(ex, 0, 1), b, sizeof b);
        PQclear(ex);
        sk_db_rollback(C->db);
        if (!rc) {
            snprintf(P.src, sizeof P.src, "%s", a);
            snprintf(P.bkg, sizeof P.bkg, "%s", b);
            char rb[4200];
            strip_fits_ext(a, rb, sizeof rb);
            size_t n = strlen(rb);
            if (n > 8 && strcmp(rb + n - 8, ".sources") == 0)
                rb[n - 8] = '\0';
            rc = pathf(P.reg, sizeof P.reg, "%s.reg", rb);
            rc = rc ? rc : pathf(P.psf, sizeof P.psf, "%s.psf", rb);
            rc = rc ? rc : pathf(P.head, sizeof P.head, "%s.head", rb);
            sk_info("image %s: extraction %s exists already", image_id, prov->id);
            rc = rc ? rc : ensure_regions(C, &P);
            rc = rc ? rc : emit_products(C, &P);
        }
        sk_prov_free(prov);
        return rc;
    }
    PQclear(ex);
    sk_image *img = NULL;
    sk_extract_result *res = NULL;
    sk_calib *cal = NULL;
    int wrote = 0;
    rc = rc ? rc : sk_db_save_prov(C->db, prov);
    rc = rc ? rc : sk_mkdir_p(dir);
    rc = rc ? rc : read_image(C, path, &img);
    if (!rc) {
        rc = run_and_write(C, img, path, image_id, prov, isfinite(db_gain) ? db_gain : 0, &P, &res,
                           &cal);
        wrote = rc == SK_OK;
    }
    char md5s[33], md5b[33], nsrc[32], bkgv[64], bkgn[64], fwhm_arcsec[64];
    rc = rc ? rc : sk_md5_file(P.src, md5s);
    rc = rc ? rc : sk_md5_file(P.bkg, md5b);
    if (!rc) {
        snprintf(nsrc, sizeof nsrc, "%ld", res->sources->n);
        snprintf(bkgv, sizeof bkgv, "%.9g", res->background->median_level);
        snprintf(bkgn, sizeof bkgn, "%.9g", res->background->median_rms);
        double scale = img->wcs ? sk_wcs_pixel_scale_arcsec(img->wcs, 0.5 * (double)img->width,
                                                            0.5 * (double)img->height)
                                : NAN;
        snprintf(fwhm_arcsec, sizeof fwhm_arcsec, "%.6g", res->fwhm_px * scale);
        const char *ps[] = {image_id, prov->id, rel_src, md5s, nsrc};
        rc = sk_db_exec(C->db, "registering the source list",
                        "INSERT INTO source_lists (image_id, provenance_id, filepath, md5, num_sources) "
                        "VALUES ($1, $2, $3, $4, $5)",
                        5, ps, NULL);
        const char *pb[] = {image_id, prov->id, rel_bkg, md5b, bkgv, bkgn};
        rc = rc ? rc
                : sk_db_exec(C->db, "registering the background",
                             "INSERT INTO backgrounds (image_id, provenance_id, filepath, md5, value, noise) "
                             "VALUES ($1, $2, $3, $4, $5, $6)",
                             6, pb, NULL);
        const char *pq[] = {image_id, bkgv, bkgn, isfinite(scale) && scale > 0 ? fwhm_arcsec : NULL};
        rc = rc ? rc
                : sk_db_exec(C->db, "updating the image's quality columns",
                             "UPDATE images SET bkg_mean_estimate = $2, bkg_rms_estimate = $3, "
                             "fwhm_estimate = COALESCE($4::double precision, fwhm_estimate) WHERE id = $1",
                             4, pq, NULL);
        /* calibration rows: psfs, world_coordinates, zero_points, the
           image's first-look columns and footprint (calib_db.c) */
        rc = rc ? rc : sk_calib_db_save(C->db, image_id, prov->id, cal, rel_psf, P.psf, rel_head, P.head,
                                         img->width, img->height);
    }
    rc = rc ? rc : sk_db_commit(C->db);
    if (rc) {
        sk_db_rollback(C->db);
        if (wrote)
            remove_products(&P);
    } else {
        emit_products(C, &P);
    }
    sk_calib_free(cal);
    sk_extract_result_free(res);
    sk_image_free(img);
    sk_prov_free(prov);
    return rc;
}

static int process(ctx *C, const char *arg)
{
    int rc = C->db ? process_db(C, arg) : process_nodb(C, arg);
    if (rc) {
        sk_log_error("%s", sk_errmsg());
        sk_error_clear();
    }
    return rc;
}

static int run(sk_cli *cli, const extract_opts *o)
{
    if (cli->nargs == 0)
        return sk_error(SK_EINPUT, "no image given (paths, ids, or - to read them from stdin)");
    if (o->outdir && !o->no_db)
        return sk_error(SK_EINPUT, "--outdir: only with --no-db (the database decides where products go)");
    if (o->update_header && !o->no_db)
        return sk_error(SK_EINPUT, "--update-header: only with --no-db (a registered image is not "
                                   "changed: its solved WCS is in the database and the .head product)");
    ctx C;
    memset(&C, 0, sizeof C);
    C.cli = cli;
    C.o = o;
    sk_extract_params_default(&C.params);
    sk_calib_params_default(&C.calib);
    int rc = sk_extract_params_from_json(cli->config->root, &C.params);
    rc = rc ? rc : sk_calib_params_from_json(cli->config->root, &C.calib);
    C.crit = rc ? NULL : sk_config_critical(cli->config, "extraction");
    if (!rc && !C.crit)
        rc = sk_errstatus() ? sk_errstatus() : SK_EIO;
    if (!rc && !cli->threads_given) {
        long t = sk_config_long(cli->config, "extraction.threads", 0);
        if (t > 0)
            cli->threads = (int)t;
    }
    if (!rc && o->update_header && C.calib.nrefcat == 0)
        rc = sk_error(SK_EINPUT, "--update-header: no reference catalogue to solve the WCS with "
                                 "(--refcat or extraction.astrometry.refcat)");
    if (!rc && o->outdir)
        rc = sk_mkdir_p(o->outdir);
    if (!rc && !o->no_db) {
        rc = sk_storage_root(cli->config, C.root, sizeof C.root);
        rc = rc ? rc : sk_db_connect(cli->config, &C.db);
    }
    int first = SK_OK;
    for (int i = 0; !rc && i < cli->nargs; i++) {
        if (strcmp(cli->args[i], "-") == 0) {
            char *line = NULL;
            size_t cap = 0;
            ssize_t len;
            while ((len = getline(&line, &cap, stdin)) >= 0) {
                while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
                    line[--len] = '\0';
                if (len == 0 || line[0] == '#')
                    continue;
                int r = process(&C, line);
                if (r && !first)
                    first = r;
            }
            free(line);
            continue;
        }
        int r = process(&C, cli->args[i]);
        if (r && !first)
            first = r;
    }
    sk_db_close(C.db);
    json_decref(C.crit);
    sk_extract_params_clear(&C.params);
    sk_calib_params_clear(&C.calib);
    if (rc)
        return rc;
    if (first)
        return sk_error(first, "some images failed (see above)");
    return SK_OK;
}

int main(int argc, char **argv)
{
    /* The extraction allocates and frees several image-sized maps in turn:
       keep them in the heap for reuse rather than mapping fresh (zeroed)
       pages from the kernel each time. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    sk_cli cli = {.program = "extract",
                  .usage = "extract [OPTIONS] IMAGE...",
                  .summary = "detect and measure the sources of images: source list, background and rms maps, "
                             "PSF, and with a reference catalog WCS and zero point"};
    extract_opts o = {0, 0, NULL, NULL, SK_NOISE_WEIGHT, NULL, NULL, 0, 0};
    int rc = sk_cli_parse(&cli, argc, argv, options, handle, &o);
    if (rc == SK_OK)
        rc = run(&cli, &o);
    return sk_cli_finish(&cli, rc);
}
