/* chi2det: the multi-band detection image (chi^2 and its variants, or SED-matched) of coadds of several filters on one grid, with its provenance sidecar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"

static const sk_opt options[] = {
    {"output", 'o', 1, "FILE", "the detection image to write (default chi2.fits)", NULL},
    {"fwhm", 0, 1, "PX", "matched filter: each band's significance for a point source of this FWHM "
     "(default 0: each pixel's own)", NULL},
    {"combine", 0, 1, "HOW", "how the bands combine: chi2-positive (default), chi2, chi-mean or sed", NULL},
    {"sed", 0, 1, "F1,F2,...", "with --combine sed: the SED's relative flux in each band, in the order of the "
     "coadds (default flat)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

typedef struct chi2_opts {
    const char *output;
    double fwhm_px;
    sk_detcombine combine;
    double sed[64];
    int nsed;
} chi2_opts;

/* --sed F1,F2,...: numbers >= 0, not all 0. */
static int parse_sed(const char *arg, chi2_opts *o)
{
    const char *p = arg;
    double total = 0;
    o->nsed = 0;
    while (*p) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || !(v >= 0 && v < 1e30) || (*end && *end != ','))
            return sk_error(SK_EINPUT, "--sed: '%s' is not a list of fluxes >= 0 separated by commas", arg);
        if (o->nsed == (int)(sizeof o->sed / sizeof o->sed[0]))
            return sk_error(SK_EINPUT, "--sed: more than %d bands", o->nsed);
        o->sed[o->nsed++] = v;
        total += v;
        p = *end ? end + 1 : end;
    }
    if (!(total > 0))
        return sk_error(SK_EINPUT, "--sed: '%s': give at least one flux > 0", arg);
    return SK_OK;
}

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    chi2_opts *o = user;
    if (!strcmp(opt->name, "output")) {
        o->output = arg;
        return SK_OK;
    }
    if (!strcmp(opt->name, "combine"))
        return sk_detcombine_from_name(arg, &o->combine) ? sk_error_context("--combine") : SK_OK;
    if (!strcmp(opt->name, "sed"))
        return parse_sed(arg, o);
    if (strcmp(opt->name, "fwhm"))
        return sk_error(SK_EINPUT, "--%s: unhandled option", opt->name);
    int st = sk_cli_double("--fwhm", arg, &o->fwhm_px);
    if (!st && !(o->fwhm_px >= 0 && o->fwhm_px <= 100))
        st = sk_error(SK_EINPUT, "--fwhm: %s px is not in [0, 100]", arg);
    return st;
}

/* The provenance: coaddition, method chi2 (and the combination unless
 * chi2, the SED with sed), the bands' provenances upstream. */
static int provenance(sk_cli *cli, const chi2_opts *o, sk_prov **out)
{
    json_t *par = json_pack("{s:s, s:i}", "method", "chi2", "bands", cli->nargs);
    if (par && o->fwhm_px > 0)
        json_object_set_new(par, "fwhm_px", json_real(o->fwhm_px));
    if (par && o->combine != SK_DETCOMB_CHI2)
        json_object_set_new(par, "combine", json_string(sk_detcombine_name(o->combine)));
    for (int b = 0; par && o->combine == SK_DETCOMB_SED && o->nsed && b < o->nsed; b++) {
        json_t *a = json_object_get(par, "sed");
        if (!a)
            json_object_set_new(par, "sed", a = json_array());
        json_array_append_new(a, json_real(o->sed[b]));
    }
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
    if (o->nsed && o->combine != SK_DETCOMB_SED)
        return sk_error(SK_EINPUT, "--sed: only with --combine sed");
    if (o->nsed && o->nsed != n)
        return sk_error(SK_EINPUT, "--sed: %d fluxes for %d coadds", o->nsed, n);
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
    sk_detimage_params dp = {o->combine, o->fwhm_px, o->nsed ? o->sed : NULL};
    st = st ? st : sk_chi2_detection((const sk_image *const *)bands, n, &dp, &det);
    st = st ? st : provenance(cli, o, &prov);
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
        .summary = "Combine coadds of several filters on one grid into a detection image (by default the chi^2 "
                   "of their positive significances), a normal deviate so that extract detects on it.",
    };
    chi2_opts o = {.output = "chi2.fits", .combine = SK_DETCOMB_CHI2_POS};
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &o);
    if (st == SK_OK)
        st = run(&cli, &o);
    return sk_cli_finish(&cli, st);
}
