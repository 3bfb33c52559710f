/* imlook: quick-look PNG images of FITS images: stretched, sources circled, north/east arrows and a scale bar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/look.h"

typedef struct request {
    sk_look_opts look;
    const char *output, *hdu, *outdir;
    int record;
} request;

static const sk_opt options[] = {
    {"output", 'o', 1, "FILE", "the PNG to write (one image only; default: IMAGE.png beside the image)", NULL},
    {"outdir", 0, 1, "DIR", "write IMAGE.png into DIR instead of beside each image", NULL},
    {"stretch", 0, 1, "NAME", "asinh (default), zscale or linear", NULL},
    {"soften", 0, 1, "SIGMA", "asinh softening in units of the sky noise (default 3)", NULL},
    {"size", 0, 1, "PX", "longest side of the PNG: the image is binned to fit (default 1024; 0: full size)", NULL},
    {"sources", 0, 1, "FILE", "circle the sources of this source list (extract(1) table)", NULL},
    {"hdu", 0, 1, "HDU", "the image HDU (name or number; default SCI, else the first image)", NULL},
    {"no-arrows", 0, 0, NULL, "no north/east arrows", NULL},
    {"no-scale-bar", 0, 0, NULL, "no scale bar", NULL},
    {"record", 0, 0, NULL, "record each PNG in the image's provenance sidecar (default look only)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    request *r = user;
    const char *n = opt->name;
    if (!strcmp(n, "output"))
        r->output = arg;
    else if (!strcmp(n, "outdir"))
        r->outdir = arg;
    else if (!strcmp(n, "stretch")) {
        r->look.stretch = sk_stretch_from_name(arg);
        if (r->look.stretch < 0)
            return sk_error(SK_EINPUT, "--stretch: '%s' is not asinh, zscale or linear", arg);
    } else if (!strcmp(n, "soften")) {
        int st = sk_cli_double("--soften", arg, &r->look.soften_sigma);
        if (!st && !(r->look.soften_sigma > 0))
            st = sk_error(SK_EINPUT, "--soften: %s must be > 0", arg);
        return st;
    } else if (!strcmp(n, "size")) {
        int st = sk_cli_long("--size", arg, &r->look.max_size_px);
        if (!st && r->look.max_size_px < 0)
            st = sk_error(SK_EINPUT, "--size: %s must be >= 0", arg);
        return st;
    } else if (!strcmp(n, "sources"))
        r->look.sources = arg;
    else if (!strcmp(n, "hdu"))
        r->hdu = arg;
    else if (!strcmp(n, "no-arrows"))
        r->look.no_arrows = 1;
    else if (!strcmp(n, "no-scale-bar"))
        r->look.no_scale_bar = 1;
    else if (!strcmp(n, "record"))
        r->record = 1;
    else
        return sk_error(SK_EINPUT, "--%s: unhandled option", n);
    return SK_OK;
}

/* Where the PNG of `image` goes. */
static int png_path(const request *r, const char *image, char *out, size_t outsz)
{
    if (r->output) {
        snprintf(out, outsz, "%s", r->output);
        return SK_OK;
    }
    char name[4200];
    int st = sk_look_png_name(image, name, sizeof name);
    if (st || !r->outdir) {
        snprintf(out, outsz, "%s", name);
        return st;
    }
    const char *base = strrchr(name, '/');
    if ((size_t)snprintf(out, outsz, "%s/%s", r->outdir, base ? base + 1 : name) >= outsz)
        return sk_error(SK_EINPUT, "--outdir: path too long");
    return SK_OK;
}

static int run(sk_cli *cli, request *r)
{
    if (cli->nargs < 1)
        return sk_error(SK_EINPUT, "no image given (see --help)");
    if (r->output && cli->nargs > 1)
        return sk_error(SK_EINPUT, "--output: one image only (%d given); use --outdir", cli->nargs);
    if (r->output && r->outdir)
        return sk_error(SK_EINPUT, "--output and --outdir exclude each other");
    if (r->record && (r->output || r->outdir || r->hdu))
        return sk_error(SK_EINPUT, "--record: the PNG goes beside the image (no --output, --outdir or --hdu)");
    int st = r->outdir ? sk_mkdir_p(r->outdir) : SK_OK;
    for (int i = 0; !st && i < cli->nargs; i++) {
        char out[8400];
        st = png_path(r, cli->args[i], out, sizeof out);
        if (!st && r->record)
            st = sk_look_product(cli->args[i], &r->look, out, sizeof out);
        else if (!st)
            st = sk_look_file(cli->args[i], r->hdu, out, &r->look, NULL);
        if (!st)
            printf("%s\n", out);
    }
    fflush(stdout);
    return st;
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "imlook",
        .usage = "imlook [OPTIONS] IMAGE...",
        .summary = "Write a quick-look PNG of each FITS image: binned to a size, asinh or zscale "
                   "stretch, the sources of a source list circled, north/east arrows from the WCS "
                   "and a scale bar.",
    };
    request r;
    memset(&r, 0, sizeof r);
    sk_look_opts_default(&r.look);
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &r);
    if (st == SK_OK)
        st = run(&cli, &r);
    return sk_cli_finish(&cli, st);
}
