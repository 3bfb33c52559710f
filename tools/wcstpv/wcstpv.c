/* wcstpv: the WCS of an image or of a .head file written as a TPV .head file, for SWarp and SCAMP (which ignore SIP). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"

typedef struct request {
    const char *output, *hdu;
} request;

static const sk_opt options[] = {
    {"output", 'o', 1, "FILE", "the .head file to write (default: INPUT's name with .tpv.head)", NULL},
    {"hdu", 0, 1, "HDU", "the image HDU of a FITS input (name or number)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    request *r = user;
    if (!strcmp(opt->name, "output"))
        r->output = arg;
    else if (!strcmp(opt->name, "hdu"))
        r->hdu = arg;
    else
        return sk_error(SK_EINPUT, "--%s: unhandled option", opt->name);
    return SK_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

static int run(sk_cli *cli, const request *r)
{
    if (cli->nargs != 1)
        return sk_error(SK_EINPUT, "give one image or .head file (%d given)", cli->nargs);
    const char *in = cli->args[0];
    sk_header *h = NULL, *tpv = NULL;
    int st = ends_with(in, ".head") ? sk_header_read_cards_file(in, &h) : sk_fits_read_header(in, r->hdu, &h);
    if (!st && (st = sk_wcs_header_to_tpv(h, &tpv)))
        sk_error_context("%s", in);
    char out[4200];
    if (r->output) {
        snprintf(out, sizeof out, "%s", r->output);
    } else {
        size_t n = strlen(in);
        static const char *const suffixes[] = {".fits.fz", ".fits", ".fit", ".fz", ".head"};
        for (size_t k = 0; k < sizeof suffixes / sizeof *suffixes; k++)
            if (ends_with(in, suffixes[k])) {
                n -= strlen(suffixes[k]);
                break;
            }
        snprintf(out, sizeof out, "%.*s.tpv.head", (int)n, in);
    }
    if (!st)
        st = sk_header_write_cards_file(out, tpv);
    if (!st)
        printf("%s\n", out);
    sk_header_free(h);
    sk_header_free(tpv);
    return st;
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "wcstpv",
        .usage = "wcstpv [OPTIONS] IMAGE|FILE.head",
        .summary = "Write the world coordinate system of an image or of a .head file (such as the "
                   "solved WCS extract writes) as a TPV .head file, for SWarp and SCAMP, which read "
                   "TPV but ignore SIP.",
    };
    request r = {0};
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &r);
    if (st == SK_OK)
        st = run(&cli, &r);
    return sk_cli_finish(&cli, st);
}
