/* chi2det: the multi-band chi^2 detection image of coadds of several filters on one grid, with its provenance sidecar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"

static const sk_opt options[] = {
    {"output", 'o', 1, "FILE", "the detection image to write (default chi2.fits)", NULL},
    {"fwhm", 0, 1, "PX", "matched filter: each band's significance for a point source of this FWHM "
     "(default 0: each pixel's own)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct chi2_opts {
    const char *output;
    double fwhm_px;
} chi2_opts;

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    chi2_opts *o = user;
    if (!strcmp(opt->name, "output")) {
        o->output = arg;
        return SK_OK;
    }
    if (strcmp(opt->name, "fwhm"))
        return sk_error(SK_EINPUT, "--%s: unhandled option", opt->name);
    int st = sk_cli_double("--fwhm", arg, &o->fwhm_px);
    if (!st && !(o->fwhm_px >= 0 && o->fwhm_px <= 100))
        st = sk_error(SK_EINPUT, "--fwhm: %s px is not in [0, 100]", arg);
    return st;
}

/* The provenance: coaddition, method chi2, the bands' provenances upstream. */
static int provenance(sk_cli *cli, double fwhm_px, sk_prov **out)
{
    json_t *par = json_pack("{s:s, s:i}", "method", "chi2", "bands", cli->nargs);
    if (par && fwhm_px > 0)
        json_object_set_new(par, "fwhm_px", json_real(fwhm_px));
    int st = par ? sk_prov_new("coaddition", sk_code_version("coaddition"), par, out) : SK_EIO;
    json_decref(par);
    for (int b = 0; !st && b < cli->nargs; b++) {
        sk_prov *up = NULL;
        if (sk_sidecar_read(cli->args[b], &up, NULL, 0, NULL, NULL) == SK_OK)
            st = sk_prov_add_upstream(*out, up);
        else
            sk_error_clear();
        sk_prov_free(up);
    }
    return st;
}

static int run(sk_cli *cli, const chi2_opts *o)
{
    const char *output = o->output;
    int n = cli->nargs, st = SK_OK;
    if (n < 2)
        return sk_error(SK_EINPUT, "give the coadds of two or more filters on one grid (%d given)", n);
    sk_image **bands = calloc((size_t)n, sizeof *bands);
    sk_input_file *in = calloc((size_t)n, sizeof *in);
    if (!bands || !in)
        st = sk_error(SK_EIO, "out of memory");
    for (int b = 0; !st && b < n; b++) {
        st = sk_fits_read_image(cli->args[b], NULL, &bands[b]);
        in[b] = (sk_input_file){NULL, cli->args[b], NULL, "band"};
    }
    sk_image *det = NULL;
    sk_prov *prov = NULL;
    st = st ? st : sk_chi2_detection((const sk_image *const *)bands, n, o->fwhm_px, &det);
    st = st ? st : provenance(cli, o->fwhm_px, &prov);
    if (!st)
        sk_header_set_str(det->header, "PROVID", prov->id, "coaddition provenance");
    st = st ? st : sk_fits_write_image(output, det, NULL);
    st = st ? st : sk_sidecar_write(output, "coadd", prov, in, n);
    if (!st)
        printf("%s\n", output);
    for (int b = 0; bands && b < n; b++)
        sk_image_free(bands[b]);
    free(bands);
    free(in);
    sk_image_free(det);
    sk_prov_free(prov);
    return st;
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "chi2det",
        .usage = "chi2det [OPTIONS] COADD COADD...",
        .summary = "Combine coadds of several filters on one grid into the chi^2 detection image of "
                   "Szalay, Connolly & Szokoly (1999), Gaussianised so that extract detects on it.",
    };
    chi2_opts o = {"chi2.fits", 0};
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &o);
    if (st == SK_OK)
        st = run(&cli, &o);
    return sk_cli_finish(&cli, st);
}
