/* coadd.c: the coadd program: images given as paths or ids (or read from
 * stdin), or found by place and time in the database, resampled onto one
 * grid, scaled to one zero point and combined into a deep image with its
 * weight, flag and input-count planes, a provenance sidecar, database
 * rows and its own extraction. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "skystack/skystack.h"
#include "skystack/arglist.h"

typedef struct coadd_opts {
    int no_db;
    int have_ra, have_dec;
    double ra, dec;
    const char *target, *section, *filter;
    int have_min_mjd, have_max_mjd;
    double min_mjd, max_mjd;
    const char *output, *outdir, *products_dir, *zero_point_key, *hdu, *weight_hdu, *mask_hdu;
    const char *background, *psf, *weight, *mask, *zero_points; /* comma lists */
    int no_psf;
    int no_extraction;
    int progress;                                           /* -1 auto */
    long band_rows;
} coadd_opts;

static const sk_opt options[] = {
    {"no-db", 0, 0, NULL, "no database: plain FITS inputs, products beside them", NULL},
    {"ra", 0, 1, "DEG", "select the images that contain this point (with --dec, --filter)", NULL},
    {"dec", 0, 1, "DEG", "declination of the point", NULL},
    {"target", 0, 1, "NAME", "select the images of this target (with --section, --filter)", NULL},
    {"section", 0, 1, "NAME", "section (detector) of the target", NULL},
    {"filter", 0, 1, "NAME", "filter of the selected images", NULL},
    {"min-mjd", 0, 1, "MJD", "selected images start at or after this MJD", NULL},
    {"max-mjd", 0, 1, "MJD", "selected images start at or before this MJD", NULL},
    {"method", 'm', 1, "NAME", "method: mean, clipped, median, zogy or psfmatch", "coaddition.method"},
    {"target-fwhm", 0, 1, "ARCSEC", "psfmatch: FWHM of the target PSF (default: the broadest input's)",
     "coaddition.target_fwhm_arcsec"},
    {"background-match", 0, 0, NULL, "match the inputs' background offsets first",
     "coaddition.background_match"},
    {"artifact-masks", 0, 0, NULL, "mask cosmic rays, trails and ghosts per input first",
     "coaddition.artifact_masks"},
    {"kernel", 'k', 1, "NAME", "resampling kernel: lanczos3, lanczos2 or bilinear", "coaddition.kernel"},
    {"grid", 0, 1, "KIND", "output grid: alignment, tan or union", "coaddition.grid"},
    {"alignment", 0, 1, "WHICH", "alignment input in time order: first, last or N (0-based)",
     "coaddition.alignment_index"},
    {"center", 0, 1, "RA,DEC", "centre of a tan grid (degrees)", NULL},
    {"size", 0, 1, "WxH", "size of a tan grid (pixels)", NULL},
    {"scale", 0, 1, "ARCSEC", "pixel scale of a tan or union grid", "coaddition.pixel_scale_arcsec"},
    {"zero-point", 0, 1, "MAG", "common zero point (default: the alignment input's)",
     "coaddition.zero_point"},
    {"clip-sigma", 0, 1, "K", "clipping threshold in sigma", "coaddition.clip_sigma"},
    {"no-extraction", 0, 0, NULL, "do not run extract on the coadd", NULL},
    {"output", 'o', 1, "FILE", "with --no-db: the coadd file (default coadd-PROV-SET.fits)", NULL},
    {"outdir", 0, 1, "DIR", "with --no-db: directory of the default coadd file", NULL},
    {"products-dir", 0, 1, "DIR", "with --no-db: where extract wrote the inputs' products", NULL},
    {"hdu", 0, 1, "HDU", "science HDU of the input files (name or number)", NULL},
    {"background", 0, 1, "LIST", "with --no-db: background products, comma-separated, in input order", NULL},
    {"psf", 0, 1, "LIST", "with --no-db: PSF files, comma-separated, in input order", NULL},
    {"weight", 0, 1, "LIST", "with --no-db: weight (inverse-variance) files, in input order", NULL},
    {"mask", 0, 1, "LIST", "with --no-db: data-quality masks (0 = good), in input order", NULL},
    {"weight-hdu", 0, 1, "HDU", "with --no-db: HDU of the inputs' noise plane, in --weight's files or else "
     "in the inputs", NULL},
    {"mask-hdu", 0, 1, "HDU", "with --no-db: HDU of the inputs' mask, in --mask's files or else in the inputs",
     NULL},
    {"zero-points", 0, 1, "LIST", "with --no-db: zero points, in input order", NULL},
    {"zero-point-key", 0, 1, "KEY", "with --no-db: header keyword of the zero point (MAGZERO)", NULL},
    {"no-psf", 0, 0, NULL, "with --no-db: inputs need no PSF; no coadd PSF", NULL},
    {"progress", 0, 0, NULL, "progress on stderr even when it is not a terminal", NULL},
    {"no-progress", 0, 0, NULL, "no progress lines", NULL},
    {"band-rows", 0, 1, "N", "output rows resampled at once (memory; the result does not change)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    coadd_opts *o = user;
    const char *n = opt->name;
    char opt_name[64];
    snprintf(opt_name, sizeof opt_name, "--%s", n);
    if (!strcmp(n, "ra"))
        return (o->have_ra = 1, sk_cli_double(opt_name, arg, &o->ra));
    if (!strcmp(n, "dec"))
        return (o->have_dec = 1, sk_cli_double(opt_name, arg, &o->dec));
    if (!strcmp(n, "min-mjd"))
        return (o->have_min_mjd = 1, sk_cli_double(opt_name, arg, &o->min_mjd));
    if (!strcmp(n, "max-mjd"))
        return (o->have_max_mjd = 1, sk_cli_double(opt_name, arg, &o->max_mjd));
    if (!strcmp(n, "center")) {
        double ra, dec;
        char extra;
        if (sscanf(arg, "%lf,%lf%c", &ra, &dec, &extra) != 2 || !isfinite(ra) || fabs(dec) > 90)
            return sk_error(SK_EINPUT, "--center: expected RA,DEC in degrees, got '%s'", arg);
        char v[64];
        snprintf(v, sizeof v, "%.17g", ra);
        int rc = sk_config_set_text(cli->config, "coaddition.center_ra_deg", v, "--center");
        snprintf(v, sizeof v, "%.17g", dec);
        return rc ? rc : sk_config_set_text(cli->config, "coaddition.center_dec_deg", v, "--center");
    }
    if (!strcmp(n, "size")) {
        long w, h;
        char extra;
        if (sscanf(arg, "%ldx%ld%c", &w, &h, &extra) != 2 || w <= 0 || h <= 0)
            return sk_error(SK_EINPUT, "--size: expected WIDTHxHEIGHT in pixels, got '%s'", arg);
        char v[32];
        snprintf(v, sizeof v, "%ld", w);
        int rc = sk_config_set_text(cli->config, "coaddition.width_px", v, "--size");
        snprintf(v, sizeof v, "%ld", h);
        return rc ? rc : sk_config_set_text(cli->config, "coaddition.height_px", v, "--size");
    }
    if (!strcmp(n, "band-rows")) {
        int rc = sk_cli_long(opt_name, arg, &o->band_rows);
        if (!rc && o->band_rows < 1)
            rc = sk_error(SK_EINPUT, "--band-rows: must be >= 1");
        return rc;
    }
    if (!strcmp(n, "no-db")) o->no_db = 1;
    else if (!strcmp(n, "target")) o->target = arg;
    else if (!strcmp(n, "section")) o->section = arg;
    else if (!strcmp(n, "filter")) o->filter = arg;
    else if (!strcmp(n, "no-extraction")) o->no_extraction = 1;
    else if (!strcmp(n, "output")) o->output = arg;
    else if (!strcmp(n, "outdir")) o->outdir = arg;
    else if (!strcmp(n, "products-dir")) o->products_dir = arg;
    else if (!strcmp(n, "hdu")) o->hdu = arg;
    else if (!strcmp(n, "background")) o->background = arg;
    else if (!strcmp(n, "psf")) o->psf = arg;
    else if (!strcmp(n, "weight")) o->weight = arg;
    else if (!strcmp(n, "mask")) o->mask = arg;
    else if (!strcmp(n, "weight-hdu")) o->weight_hdu = arg;
    else if (!strcmp(n, "mask-hdu")) o->mask_hdu = arg;
    else if (!strcmp(n, "zero-points")) o->zero_points = arg;
    else if (!strcmp(n, "zero-point-key")) o->zero_point_key = arg;
    else if (!strcmp(n, "no-psf")) o->no_psf = 1;
    else if (!strcmp(n, "progress")) o->progress = 1;
    else if (!strcmp(n, "no-progress")) o->progress = 0;
    else return sk_error(SK_EINPUT, "--%s: not a coadd option", n);
    return SK_OK;
}

/* The images of a place and time with extraction products (coadd.h). */
static int select_place(const sk_cli *cli, const coadd_opts *o, sk_db *db, sk_strlist *ids)
{
    sk_coadd_place pl = {.has_point = o->have_ra, .ra_deg = o->ra, .dec_deg = o->dec,
                         .target = o->target, .section = o->section, .filter = o->filter,
                         .has_min_mjd = o->have_min_mjd, .has_max_mjd = o->have_max_mjd,
                         .min_mjd = o->min_mjd, .max_mjd = o->max_mjd};
    long long *found = NULL;
    int n = 0;
    int rc = sk_coadd_select(db, cli->config, &pl, &found, &n);
    for (int k = 0; !rc && k < n; k++) {
        char id[32];
        snprintf(id, sizeof id, "%lld", found[k]);
        rc = sk_strlist_add(ids, id);
    }
    free(found);
    return rc;
}

/* Options that do not go together. */
static int check_options(const sk_cli *cli, const coadd_opts *o, int by_place)
{
    if (o->have_ra != o->have_dec)
        return sk_error(SK_EINPUT, "--ra and --dec go together");
    if (o->have_ra && o->target)
        return sk_error(SK_EINPUT, "--ra/--dec and --target: give one place");
    if (o->section && !o->target)
        return sk_error(SK_EINPUT, "--section needs --target");
    if (by_place && cli->nargs > 0)
        return sk_error(SK_EINPUT, "images given and a place (--ra/--dec or --target): give one of them");
    if ((o->have_min_mjd || o->have_max_mjd || o->filter) && !by_place)
        return sk_error(SK_EINPUT, "--filter, --min-mjd and --max-mjd select images by place: "
                                   "give --ra/--dec or --target too");
    if (by_place && o->no_db)
        return sk_error(SK_EINPUT, "a coadd by place needs the database (drop --no-db)");
    if (!o->no_db && (o->output || o->outdir || o->products_dir || o->background || o->psf ||
                      o->weight || o->mask || o->weight_hdu || o->mask_hdu || o->zero_points ||
                      o->zero_point_key || o->no_psf))
        return sk_error(SK_EINPUT, "--output, --outdir, --products-dir, --background, --psf, --weight, "
                                   "--mask, --weight-hdu, --mask-hdu, --zero-points, --zero-point-key and "
                                   "--no-psf go with --no-db "
                                   "(the database knows the products and where coadds go)");
    if (o->output && o->outdir)
        return sk_error(SK_EINPUT, "--output and --outdir: give one");
    if (!by_place && cli->nargs == 0)
        return sk_error(SK_EINPUT, "no images (paths or ids, - for stdin) and no place (--ra/--dec or "
                                   "--target)");
    return SK_OK;
}

/* The per-input comma lists: background, psf, weight, mask, zero points. */
enum { L_BKG, L_PSF, L_WGT, L_MSK, L_ZPS, NLISTS };

/* The lists split into one entry per input, the zero points as numbers
 * (NAN for empty entries). */
static int split_lists(const coadd_opts *o, int n, sk_strlist lists[NLISTS], double **zp)
{
    const char *names[NLISTS] = {"--background", "--psf", "--weight", "--mask", "--zero-points"};
    const char *texts[NLISTS] = {o->background, o->psf, o->weight, o->mask, o->zero_points};
    int rc = SK_OK;
    for (int l = 0; l < NLISTS && !rc; l++)
        rc = sk_strlist_split(&lists[l], names[l], texts[l], n);
    const sk_strlist *zps = &lists[L_ZPS];
    if (rc || !zps->n)
        return rc;
    if (!(*zp = malloc((size_t)zps->n * sizeof **zp)))
        return sk_error(SK_EIO, "out of memory");
    for (int k = 0; !rc && k < zps->n; k++) {
        (*zp)[k] = NAN;
        if (zps->v[k][0])
            rc = sk_cli_double("--zero-points", zps->v[k], &(*zp)[k]);
    }
    return rc;
}

static const char *const *list_or_null(const sk_strlist *l)
{
    return l->n ? (const char *const *)l->v : NULL;
}

static int run(sk_cli *cli, coadd_opts *o)
{
    int by_place = o->have_ra || o->have_dec || o->target;
    int rc = check_options(cli, o, by_place);
    if (rc)
        return rc;
    if (!cli->threads_given) {
        long t = sk_config_long(cli->config, "coaddition.threads", 0);
        if (t > 0)
            cli->threads = (int)t;
    }
    sk_strlist inputs = {0}, lists[NLISTS];
    memset(lists, 0, sizeof lists);
    double *zp = NULL;
    sk_db *db = NULL;
    if (!o->no_db)
        rc = sk_db_connect(cli->config, &db);
    if (!rc && by_place)
        rc = select_place(cli, o, db, &inputs);
    if (!rc && !by_place)
        rc = sk_strlist_add_args(&inputs, cli->args, cli->nargs);
    if (!rc && inputs.n == 0)
        rc = sk_error(SK_ENOTFOUND, "no input images (stdin was empty)");
    rc = rc ? rc : split_lists(o, inputs.n, lists, &zp);
    sk_coadd_made made;
    if (!rc) {
        sk_coadd_request rq = {
            .config = cli->config, .db = db, .inputs = list_or_null(&inputs), .ninputs = inputs.n,
            .products_dir = o->products_dir, .backgrounds = list_or_null(&lists[L_BKG]),
            .psfs = list_or_null(&lists[L_PSF]), .weights = list_or_null(&lists[L_WGT]),
            .masks = list_or_null(&lists[L_MSK]), .zero_points = zp,
            .zero_point_key = o->zero_point_key, .no_psf = o->no_psf, .hdu = o->hdu,
            .weight_hdu = o->weight_hdu, .mask_hdu = o->mask_hdu,
            .output = o->output, .outdir = o->outdir, .threads = cli->threads,
            .band_rows = o->band_rows,
            .progress = o->progress >= 0 ? o->progress : isatty(2) && sk_log_level() >= SK_LOG_INFO,
            .extract = o->no_extraction ? 0 : -1, .skip_incomplete = by_place};
        rc = sk_coadd_make(&rq, &made);
    }
    if (!rc) {
        if (made.reused)
            sk_info("coadd %s of these %d inputs exists already: %s", made.prov_id, made.ninputs,
                    made.path);
        printf("%s\n", made.path);
        fflush(stdout);
    }
    sk_db_close(db);
    sk_strlist_free(&inputs);
    for (int l = 0; l < NLISTS; l++)
        sk_strlist_free(&lists[l]);
    free(zp);
    return rc;
}

int main(int argc, char **argv)
{
    sk_cli cli = {.program = "coadd",
                  .usage = "coadd [OPTIONS] IMAGE...  |  coadd [OPTIONS] (--ra RA --dec DEC | --target T "
                           "[--section S]) --filter F [--min-mjd MJD] [--max-mjd MJD]",
                  .summary = "resample images onto one grid, scale them to one zero point and combine "
                             "them into a deep image"};
    coadd_opts o;
    memset(&o, 0, sizeof o);
    o.progress = -1;
    int rc = sk_cli_parse(&cli, argc, argv, options, handle, &o);
    if (rc == SK_OK)
        rc = run(&cli, &o);
    return sk_cli_finish(&cli, rc);
}
