/* extract.c: the extract program: background, detection, deblending and
 * measurement of images into a FITS source list and a background product,
 * then the calibration (PSF model, and with a reference catalog the
 * astrometric and photometric solutions), each product with a provenance
 * sidecar, registered in the database (or written beside the image with
 * --no-db). Each image is one library call (sk_extract_image); "-" reads
 * image names from stdin. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/skystack.h"
#include "skystack/arglist.h"

typedef struct extract_opts {
    int no_db;
    sk_extract_request rq;       /* the options of every image's request */
} extract_opts;

static const sk_opt options[] = {
    {"no-db", 0, 0, NULL, "no database: products and sidecars beside each image", NULL},
    {"regions", 0, 0, NULL, "also write a ds9 region file of the detections", NULL},
    {"full-background", 0, 0, NULL, "background product with full-resolution maps, not only the mesh", NULL},
    {"update-header", 0, 0, NULL, "with --no-db: also write the solved WCS into each image's header", NULL},
    {"tpv-head", 0, 0, NULL, "also write the solved WCS as TPV (.tpv.head, for SWarp and SCAMP)",
     NULL},
    {"outdir", 'o', 1, "DIR", "with --no-db: write the products in DIR instead", NULL},
    {"hdu", 0, 1, "HDU", "science HDU (name or number) of the image files", NULL},
    {"weight", 0, 1, "FILE", "separate weight (inverse-variance) image", NULL},
    {"weight-type", 0, 1, "TYPE", "what --weight holds: weight, variance or rms", NULL},
    {"mask", 0, 1, "FILE", "separate data-quality mask (non-zero = bad)", NULL},
    {"weight-hdu", 0, 1, "HDU", "with --no-db: HDU (name or number) of the noise plane, in --weight's file "
     "or else in the image's", NULL},
    {"mask-hdu", 0, 1, "HDU", "with --no-db: HDU of the mask, in --mask's file or else in the image's", NULL},
    {"detect", 0, 1, "FILE", "dual-image mode: detect on FILE (the same grid), measure on each image",
     NULL},
    {"threshold", 0, 1, "SIGMA", "detection threshold per pixel", "extraction.detection.threshold_sigma"},
    {"min-area", 0, 1, "PX", "minimum detection area", "extraction.detection.min_area_px"},
    {"mesh", 0, 1, "PX", "background mesh size", "extraction.background.mesh_px"},
    {"fwhm", 0, 1, "PX", "initial FWHM guess of the matched filter", "extraction.detection.fwhm_guess_px"},
    {"gain", 0, 1, "E/ADU", "gain for the source Poisson noise (default: header)",
     "extraction.photometry.gain"},
    {"refcat", 0, 1, "CATALOG", "reference catalogue for the astrometric and photometric calibration: "
     "FILE[,FILE...] (FITS or CSV), a catingest folder, a Gaia chunk folder, or db:NAME[@VERSION]",
     "extraction.astrometry.refcat"},
    {"sip-order", 0, 1, "N", "SIP order of the WCS fit (0: automatic)", "extraction.astrometry.sip_order"},
    {"psf-degree", 0, 1, "N", "polynomial degree of the PSF variation", "extraction.psf.degree"},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    (void)cli;
    extract_opts *o = user;
    sk_extract_request *rq = &o->rq;
    const char *n = opt->name;
    if (!strcmp(n, "no-db")) o->no_db = 1;
    else if (!strcmp(n, "regions")) rq->regions = 1;
    else if (!strcmp(n, "update-header")) rq->update_header = 1;
    else if (!strcmp(n, "tpv-head")) rq->tpv_head = 1;
    else if (!strcmp(n, "full-background")) rq->full_background = 1;
    else if (!strcmp(n, "outdir")) rq->outdir = arg;
    else if (!strcmp(n, "hdu")) rq->hdu = arg;
    else if (!strcmp(n, "weight")) rq->weight = arg;
    else if (!strcmp(n, "mask")) rq->mask = arg;
    else if (!strcmp(n, "detect")) rq->detect = arg;
    else if (!strcmp(n, "weight-hdu")) rq->weight_hdu = arg;
    else if (!strcmp(n, "mask-hdu")) rq->mask_hdu = arg;
    else if (!strcmp(n, "weight-type")) {
        if (!strcmp(arg, "weight"))
            rq->weight_kind = SK_NOISE_WEIGHT;
        else if (!strcmp(arg, "variance"))
            rq->weight_kind = SK_NOISE_VARIANCE;
        else if (!strcmp(arg, "rms"))
            rq->weight_kind = SK_NOISE_RMS;
        else
            return sk_error(SK_EINPUT, "--weight-type: '%s' is not weight, variance or rms", arg);
    } else
        return sk_error(SK_EINPUT, "--%s: not an extract option", n);
    return SK_OK;
}

/* Extract one image and print its products; a failure is reported here
 * and the next image goes on. */
static int process(sk_extract_request *rq, const char *image)
{
    sk_extract_outcome out;
    rq->image = image;
    int rc = sk_extract_image(rq, &out);
    if (rc) {
        sk_log_error("%s", sk_errmsg());
        sk_error_clear();
        return rc;
    }
    const char *paths[] = {out.source_list, out.background, out.regions, out.psf, out.head, out.tpv_head};
    for (int i = 0; i < 6; i++)
        if (paths[i][0])
            printf("%s\n", paths[i]);
    fflush(stdout);
    return SK_OK;
}

static int run(sk_cli *cli, extract_opts *o)
{
    if (cli->nargs == 0)
        return sk_error(SK_EINPUT, "no image given (paths, ids, or - to read them from stdin)");
    if (o->rq.outdir && !o->no_db)
        return sk_error(SK_EINPUT, "--outdir: only with --no-db (the database decides where products go)");
    if ((o->rq.weight_hdu || o->rq.mask_hdu) && !o->no_db)
        return sk_error(SK_EINPUT, "--%s: only with --no-db (registered images hold WGT and FLG)",
                        o->rq.weight_hdu ? "weight-hdu" : "mask-hdu");
    if (o->rq.update_header && !o->no_db)
        return sk_error(SK_EINPUT, "--update-header: only with --no-db (a registered image is not "
                                   "changed: its solved WCS is in the database and the .head product)");
    sk_extract_settings S;
    int rc = sk_extract_settings_read(cli->config, !o->no_db, &S);
    if (!rc && !cli->threads_given && S.config_threads > 0)
        cli->threads = S.config_threads;
    sk_extract_request *rq = &o->rq;
    rq->config = cli->config;
    rq->settings = &S;
    rq->threads = cli->threads;
    rc = rc ? rc : sk_extract_check(rq, &S);
    if (!rc && !o->no_db)
        rc = sk_db_connect(cli->config, &rq->db);
    sk_strlist images = {0};
    if (!rc)
        rc = sk_strlist_add_args(&images, cli->args, cli->nargs);
    int first = SK_OK;
    for (int i = 0; !rc && i < images.n; i++) {
        int r = process(rq, images.v[i]);
        if (r && !first)
            first = r;
    }
    sk_strlist_free(&images);
    sk_db_close(rq->db);
    sk_extract_settings_clear(&S);
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
    extract_opts o;
    memset(&o, 0, sizeof o);
    o.rq.weight_kind = SK_NOISE_WEIGHT;
    int rc = sk_cli_parse(&cli, argc, argv, options, handle, &o);
    if (rc == SK_OK)
        rc = run(&cli, &o);
    return sk_cli_finish(&cli, rc);
}
