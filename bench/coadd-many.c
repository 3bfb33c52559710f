/* coadd-many.c: one coadd of many full-size inputs through the library,
 * timed: the direct mean, clipped mean or median through sk_coadd_run, or
 * zogy, psfmatch or the mean with artifact masks ("artifact") through
 * sk_coaddx_run, of N inputs made by repeating the given exposures (entry k
 * is exposure k mod count, so the same file appears N / count times and
 * nothing merges the repeats), on a north-up TAN grid. Each exposure's
 * inputs are filled as `coadd --no-db` fills them from a file and the
 * extraction products beside it: the path, the background product
 * STEM.bkg.fits, the solved WCS STEM.head when there is one, the zero point
 * (the one given, as --zero-points; else MAGZERO of STEM.sources.fits,
 * else the image header's MAGZERO), the gain
 * (GAIN, 0 when absent) and, for zogy, psfmatch and artifact, the PSF model STEM.psf
 * (sk_psf_read); the engine reads times and filter from the header. The
 * settings are the configuration's defaults (Lanczos-3, tolerance 0.001 px,
 * no background matching, no artifact masks; zogy combines its metadata
 * with the mean, psfmatch its matched inputs with the clipped mean, the
 * broadest input PSF as the target). The exposures are in time order; the
 * last entry is the reference (coaddition.alignment_index "last").
 * Prints one line: method, inputs, wall s and CPU s of the coadd call
 * (inputs and PSF models already resolved), this process's peak resident
 * memory (MB, getrusage), the documented memory model (MB: coadd(1)'s
 * bands of every input, the artifact masks' per-thread planes and the
 * output), the grid's
 * output pixels and the number of inputs at the grid's centre. Built and
 * run by bench/coadd-many.
 * Usage: coadd-many METHOD NINPUTS THREADS RA DEC WIDTH HEIGHT SCALE_ARCSEC
 *                   ZERO_POINT IMAGE STEM [IMAGE STEM]...
 * METHOD is mean, clipped, median, artifact, zogy or psfmatch; STEM is the path of an image's
 * extraction products less their suffixes (.bkg.fits, .psf, ...);
 * ZERO_POINT is every input's zero point, or - for each one's own. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include "skystack/skystack.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/psf.h"
#define BENCH_NAME "coadd-many"
#include "bench_util.h"

static void usage(void)
{
    fprintf(stderr, "usage: coadd-many mean|clipped|median|artifact|zogy|psfmatch NINPUTS THREADS RA DEC WIDTH HEIGHT "
                    "SCALE_ARCSEC ZERO_POINT|- IMAGE STEM [IMAGE STEM]...\n");
    exit(1);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0 / 1e6; /* ru_maxrss is in KiB on Linux */
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static double header_double(const sk_header *h, const char *key)
{
    double v = NAN;
    if (!h || sk_header_get_double(h, key, &v) != 1)
        return NAN;
    return v;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *text = xcalloc(cap, 1);
    size_t got;
    while ((got = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            cap *= 2;
            char *bigger = realloc(text, cap);
            if (!bigger) {
                fprintf(stderr, "coadd-many: out of memory\n");
                exit(3);
            }
            text = bigger;
        }
    }
    text[len] = '\0';
    fclose(f);
    return text;
}

/* A solved WCS in header-card text (extract's STEM.head): one card per
 * line, or 80-character records end to end, up to END. */
static sk_wcs *wcs_from_head(const char *path)
{
    char *text = read_text(path);
    if (!text) {
        fprintf(stderr, "coadd-many: %s: unreadable\n", path);
        exit(3);
    }
    sk_header *h = sk_header_new();
    if (!h) {
        fprintf(stderr, "coadd-many: out of memory\n");
        exit(3);
    }
    for (const char *c = text; *c;) {
        const char *nl = strchr(c, '\n');
        size_t len = nl ? (size_t)(nl - c) : strlen(c);
        if (len > 0 && c[len - 1] == '\r')
            len--;
        if (!nl && len > SK_CARD_LEN && len % SK_CARD_LEN == 0) { /* records end to end */
            for (size_t k = 0; k < len && strncmp(c + k, "END     ", 8); k += SK_CARD_LEN)
                if (sk_header_append_records(h, c + k, 1))
                    die(path);
            break;
        }
        if (len >= 3 && strncmp(c, "END", 3) == 0 && (len == 3 || c[3] == ' '))
            break;
        char card[SK_CARD_LEN + 1];
        snprintf(card, sizeof card, "%-80.*s", (int)(len < SK_CARD_LEN ? len : SK_CARD_LEN), c);
        if (len > 0 && sk_header_append_records(h, card, 1))
            die(path);
        c = nl ? nl + 1 : c + len;
    }
    free(text);
    sk_wcs *w = NULL;
    if (sk_wcs_from_header(h, &w) != SK_OK)
        die(path);
    sk_header_free(h);
    return w;
}

/* One exposure as `coadd --no-db` resolves it. */
typedef struct exposure {
    const char *path;
    char bkg[4200], psf_path[4200];
    sk_wcs *solved;
    double zero_point, gain, mjd;
    sk_psf *psf;
} exposure;

static void resolve(exposure *e, const char *path, const char *stem, double given_zp,
                    int need_psf)
{
    e->path = path;
    sk_header *h = NULL;
    if (sk_fits_read_header(path, NULL, &h))
        die(path);
    e->gain = header_double(h, "GAIN");
    e->mjd = header_double(h, "MJD-OBS");
    double header_zp = header_double(h, "MAGZERO");
    sk_header_free(h);
    snprintf(e->bkg, sizeof e->bkg, "%s.bkg.fits", stem);
    if (!file_exists(e->bkg)) {
        fprintf(stderr, "coadd-many: %s: no background product %s\n", path, e->bkg);
        exit(2);
    }
    snprintf(e->psf_path, sizeof e->psf_path, "%s.psf", stem);
    if (need_psf && sk_psf_read(e->psf_path, &e->psf))
        die(e->psf_path);
    char head[4200], sources[4200];
    snprintf(head, sizeof head, "%s.head", stem);
    if (file_exists(head))
        e->solved = wcs_from_head(head);
    e->zero_point = given_zp;
    snprintf(sources, sizeof sources, "%s.sources.fits", stem);
    if (!isfinite(e->zero_point) && file_exists(sources)) {
        sk_header *sh = NULL;
        if (sk_fits_read_header(sources, "SOURCES", &sh) == SK_OK)
            e->zero_point = header_double(sh, "MAGZERO");
        sk_header_free(sh);
        sk_error_clear();
    }
    if (!isfinite(e->zero_point))
        e->zero_point = header_zp;
    if (!isfinite(e->zero_point)) {
        fprintf(stderr, "coadd-many: %s: no zero point\n", path);
        exit(1);
    }
}

static int cmp_mjd(const void *pa, const void *pb)
{
    const exposure *a = pa, *b = pb;
    return a->mjd < b->mjd ? -1 : a->mjd > b->mjd ? 1 : strcmp(a->path, b->path);
}

int main(int argc, char **argv)
{
    if (argc < 12 || (argc - 10) % 2)
        usage();
    const char *method_name = argv[1];
    int ninputs = atoi(argv[2]), threads = atoi(argv[3]);
    double ra = atof(argv[4]), dec = atof(argv[5]);
    long width = atol(argv[6]), height = atol(argv[7]);
    double scale = atof(argv[8]);
    double given_zp = strcmp(argv[9], "-") ? atof(argv[9]) : NAN;
    int nexp = (argc - 10) / 2;
    int xmethod = SK_COADDX_DIRECT, combine = SK_COMBINE_MEAN;
    int artifact = !strcmp(method_name, "artifact");
    if (!sk_coaddx_method_from_name(method_name, &xmethod) && !artifact &&
        sk_combine_from_name(method_name, &combine) != SK_OK)
        usage();
    int aligned = xmethod != SK_COADDX_DIRECT || artifact;
    if (ninputs < 1 || threads < 1 || width < 1 || height < 1 || !(scale > 0))
        usage();
    sk_log_set_program("coadd-many");
    sk_log_set_level(SK_LOG_WARN);

    exposure *ex = xcalloc((size_t)nexp, sizeof *ex);
    for (int i = 0; i < nexp; i++)
        resolve(&ex[i], argv[10 + 2 * i], argv[11 + 2 * i], given_zp, aligned);
    qsort(ex, (size_t)nexp, sizeof *ex, cmp_mjd);

    /* entry k is exposure k mod nexp: the last entry is the latest exposure
     * when ninputs is a multiple of nexp */
    sk_coadd_input *in = xcalloc((size_t)ninputs, sizeof *in);
    const sk_psf **psfs = xcalloc((size_t)ninputs, sizeof *psfs);
    for (int k = 0; k < ninputs; k++) {
        const exposure *e = &ex[k % nexp];
        sk_coadd_input_init(&in[k]);
        in[k].path = e->path;
        in[k].name = e->path;
        in[k].wcs = e->solved;
        in[k].background_path = e->bkg;
        in[k].zero_point = e->zero_point;
        in[k].gain = isfinite(e->gain) ? e->gain : 0.0;
        psfs[k] = e->psf;
    }

    sk_grid *grid = NULL;
    if (sk_grid_tan(ra, dec, width, height, scale, 0.0, &grid))
        die("grid");
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.threads = threads;
    p.reference = ninputs - 1;
    sk_coaddx_params x;
    sk_coaddx_params_default(&x);
    x.method = xmethod;
    x.artifact_masks = artifact;
    /* as the coadd program: zogy's metadata from the mean, psfmatch's
     * matched inputs combined with the clipped mean */
    p.combine.method = xmethod == SK_COADDX_PSFMATCH ? SK_COMBINE_CLIPPED : combine;

    sk_coadd_result *res = NULL;
    sk_psf *coadd_psf = NULL;
    double cpu0 = cpu_s(), t0 = now_s();
    int rc = !aligned
                 ? sk_coadd_run(in, ninputs, grid, &p, &res)
                 : sk_coaddx_run(in, ninputs, psfs, grid, &p, &x, &res, &coadd_psf);
    double wall = now_s() - t0, cpu = cpu_s() - cpu0;
    if (rc)
        die(method_name);

    /* the documented memory (coadd(1)): the aligned methods hold a band of
     * every input, about 10 bytes per band pixel each (psfmatch: its
     * matched band of every input and one input's rows at a time),
     * bands of 512 rows for zogy and psfmatch (their tiles) plus a PSF
     * margin, 256 for the direct combine, and the artifact masks about 35
     * bytes per output pixel per thread; zogy holds at most about 512 MB
     * of the inputs' rows (beyond, a group of tile columns at a time, at
     * least one 512-px column per thread) and per thread about 3 MB per
     * input for a tile's transforms; the output 14 bytes per pixel (18
     * with zogy's score); the direct coadd the output plus one band's
     * input rectangles */
    double npix = (double)width * (double)height;
    char model[32];
    if (!aligned) {
        snprintf(model, sizeof model, "%s", "output+band");
    } else {
        /* psfmatch: the matched band of every input, one input's rows */
        double band = xmethod == SK_COADDX_DIRECT     ? 256.0
                      : xmethod == SK_COADDX_PSFMATCH ? 512.0
                                                      : 512.0 + 2.0 * 64.0;
        double rows = 10.0 * ninputs * band * width;
        if (xmethod == SK_COADDX_ZOGY && rows > 512.0 * 1048576.0) {
            double cols = threads * 512.0 + 2.0 * 64.0 < width ? threads * 512.0 + 2.0 * 64.0
                                                               : width;
            double group = 10.0 * ninputs * band * cols;
            rows = group > 512.0 * 1048576.0 ? group : 512.0 * 1048576.0;
        }
        double mb = rows + 35.0 * threads * npix + 18.0 * npix +
                    (xmethod == SK_COADDX_ZOGY ? 3e6 * threads * ninputs : 0.0);
        snprintf(model, sizeof model, "%.0f", mb / 1e6);
    }
    long centre = (height / 2) * width + width / 2;
    printf("%-9s %6d %8d %9.1f %9.1f %10.0f %12s %11.3g %7d\n", method_name, ninputs, threads, wall,
           cpu, peak_rss_mb(), model, npix, (int)res->nimg[centre]);

    sk_coadd_result_free(res);
    sk_psf_free(coadd_psf);
    sk_grid_free(grid);
    for (int i = 0; i < nexp; i++) {
        sk_psf_free(ex[i].psf);
        sk_wcs_free(ex[i].solved);
    }
    free(psfs);
    free(in);
    free(ex);
    return 0;
}
