/* imingest: register FITS images in the database and the data root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/ingest.h"

typedef struct request {
    sk_ingest_opts opts;
    int print_paths;
} request;

static const sk_opt options[] = {
    {"instrument", 'i', 1, "NAME", "keyword map of preprocessing.instruments (decam, generic...)",
     "preprocessing.instrument"},
    {"weight", 0, 1, "FILE", "separate weight (or variance/rms, see noise_kind) file", NULL},
    {"mask", 0, 1, "FILE", "separate data-quality mask file (non-zero = bad)", NULL},
    {"hdu", 0, 1, "HDU", "only this HDU (EXTNAME or 0-based number)", NULL},
    {"weight-hdu", 0, 1, "HDU", "HDU of the noise plane, in --weight's file or else in the image's", NULL},
    {"mask-hdu", 0, 1, "HDU", "HDU of the mask, in --mask's file or else in the image's", NULL},
    {"filter", 0, 1, "NAME", "filter, when the header has none or should be overridden", NULL},
    {"target", 0, 1, "NAME", "target (field) name instead of the header's", NULL},
    {"section", 0, 1, "ID", "section (CCD) id instead of the header's", NULL},
    {"project", 0, 1, "NAME", "project instead of the header's", NULL},
    {"link", 0, 0, NULL, "link files already in the skystack layout instead of copying", "preprocessing.link"},
    {"paths", 0, 0, NULL, "print the stored paths instead of the image ids", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    request *r = user;
    const char *n = opt->name;
    if (!strcmp(n, "weight")) r->opts.weight_path = arg;
    else if (!strcmp(n, "mask")) r->opts.mask_path = arg;
    else if (!strcmp(n, "hdu")) r->opts.hdu = arg;
    else if (!strcmp(n, "weight-hdu")) r->opts.weight_hdu = arg;
    else if (!strcmp(n, "mask-hdu")) r->opts.mask_hdu = arg;
    else if (!strcmp(n, "filter")) r->opts.filter = arg;
    else if (!strcmp(n, "target")) r->opts.target = arg;
    else if (!strcmp(n, "section")) r->opts.section = arg;
    else if (!strcmp(n, "project")) r->opts.project = arg;
    else if (!strcmp(n, "paths")) r->print_paths = 1;
    else return sk_error(SK_EINPUT, "--%s: unhandled option", n);
    return SK_OK;
}

/* The worse of two statuses: database/I/O > bad input > nothing to do. */
static int worse(int a, int b)
{
    static const int rank[4] = {0, 2, 1, 3};
    return rank[b] > rank[a] ? b : a;
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "imingest",
        .usage = "imingest [OPTIONS] FILE...",
        .summary = "Register FITS images: read their metadata and WCS footprint, store them in the "
                   "data root in the skystack layout and record them under a preprocessing "
                   "provenance; print the image ids.",
    };
    request r;
    memset(&r, 0, sizeof r);
    r.opts.link = -1;
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &r);
    if (st)
        return sk_cli_finish(&cli, st);
    if (cli.nargs < 1)
        return sk_cli_finish(&cli, sk_error(SK_EINPUT, "no FILE to ingest (see imingest --help)"));
    if ((r.opts.weight_path || r.opts.mask_path) && cli.nargs > 1)
        return sk_cli_finish(&cli, sk_error(SK_EINPUT, "--weight/--mask: give one FILE with them"));
    r.opts.instrument = sk_config_string(cli.config, "preprocessing.instrument", "generic");

    sk_db *db = NULL;
    st = sk_db_connect(cli.config, &db);
    if (st)
        return sk_cli_finish(&cli, st);
    int result = SK_OK, done = 0;
    for (int i = 0; i < cli.nargs; i++) {
        const char *path = cli.args[i];
        if (!r.opts.weight_path && !r.opts.mask_path &&
            sk_ingest_is_companion(cli.config, r.opts.instrument, path)) {
            sk_debug("%s: weight or mask of another file, ingested with it", path);
            continue;
        }
        sk_ingested *list = NULL;
        int n = 0;
        st = sk_ingest_file(db, cli.config, path, &r.opts, &list, &n);
        if (st) {
            sk_log_error("%s", sk_errmsg());
            result = worse(result, st);
            if (st == SK_EIO && !sk_db_is_connected(db))
                break;
            continue;
        }
        for (int k = 0; k < n; k++) {
            if (list[k].existed && !list[k].restored)
                sk_info("%s: already registered as image %lld", path, list[k].image_id);
            else
                sk_debug("%s: registered as image %lld (%s)", path, list[k].image_id, list[k].relpath);
            if (r.print_paths)
                printf("%s\n", list[k].path);
            else
                printf("%lld\n", list[k].image_id);
            done++;
        }
        fflush(stdout);
        sk_ingested_free(list, n);
    }
    sk_db_close(db);
    if (result != SK_OK) {
        sk_config_free(cli.config);
        cli.config = NULL;
        return result; /* each failure was reported as it happened */
    }
    if (done == 0)
        result = sk_error(SK_ENOTFOUND, "nothing to ingest (only weight or mask files were given)");
    return sk_cli_finish(&cli, result);
}
