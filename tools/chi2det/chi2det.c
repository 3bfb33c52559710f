/* chi2det: the multi-band chi^2 detection image of coadds of several filters on one grid, with its provenance sidecar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"

static const sk_opt options[] = {
    {"output", 'o', 1, "FILE", "the detection image to write (default chi2.fits)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    if (strcmp(opt->name, "output"))
        return sk_error(SK_EINPUT, "--%s: unhandled option", opt->name);
    *(const char **)user = arg;
    return SK_OK;
}

/* The provenance: coaddition, method chi2, the bands' provenances upstream. */
static int provenance(sk_cli *cli, sk_prov **out)
{
    json_t *par = json_pack("{s:s, s:i}", "method", "chi2", "bands", cli->nargs);
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

static int run(sk_cli *cli, const char *output)
{
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
    st = st ? st : sk_chi2_detection((const sk_image *const *)bands, n, &det);
    st = st ? st : provenance(cli, &prov);
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
    const char *output = "chi2.fits";
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &output);
    if (st == SK_OK)
        st = run(&cli, output);
    return sk_cli_finish(&cli, st);
}
