/* decam-methods.c: coadds one group of real DECam cutouts (one sky position,
 * one band, several nights: ooi image, oow inverse-variance weight, ood
 * data-quality mask, TPV WCS) with every coadd method (mean, clipped,
 * median through sk_coadd_run; zogy and psfmatch through sk_coaddx_run) on
 * the first frame's grid, and measures on each coadd its 5-sigma
 * point-source depth and its PSF's FWHM.
 *
 * The cutouts hold at most one usable star, so no PSF model can be fitted
 * from them: each frame's model is a circular Moffat (beta 3) of the FWHM
 * its header gives (FWHM, pixels), truncated at 2 FWHM, rendered with
 * sk_sim_psf_add on a 2*ceil(2*FWHM)+1 px stamp and made a constant model
 * with sk_psf_from_stamp. The files carry no zero point: every frame gets
 * the nominal 25 + 2.5 log10(EXPTIME), so the depths compare the methods,
 * not the survey's absolute depth. Each frame's background is a constant,
 * the 3-sigma clipped median of its usable pixels; the gain (for the
 * source-noise term of clipping) is ARAWGAIN.
 *
 * Depth is measured on the coadd itself, not from its weight map: at every
 * pixel position whose stamp (S = 2*ceil(k*FWHM_max)+1 px, FWHM_max the
 * largest input FWHM of the group, k = 1 by default: larger stamps leave no
 * blank positions on 41x51 px cutouts) lies in the fully covered region
 * (NIMG = number of inputs, weight > 0, no flag but REJECTED) and holds no
 * detected pixel, the PSF-fit flux sum(P*I)/sum(P^2), P the coadd's PSF
 * (unit sum over the whole model) cut to the stamp, so that the flux of a
 * point source is unbiased; sigma_F = 1.4826 MAD of those fluxes and
 * depth = MAGZERO - 2.5 log10(5 sigma_F). The coadd's PSF: for mean,
 * clipped and median sk_coadd_psf (the inputs' models on the grid
 * averaged with their mean combine weights), for zogy and psfmatch the
 * sk_psf sk_coaddx_run returns. Detected pixels come from the mean coadd
 * (one mask for every method, so that all use the same sky): pixels more
 * than 3 sigma above the robust background of the fully covered region in
 * 8-connected groups of at least 5 pixels, and saturated pixels; a
 * position is left out when its stamp holds one (a dilation by the
 * stamp's half-size). With fewer than 10 usable positions the depth is
 * not measured (nan).
 * Usage: decam-methods [-l LABEL] [-t THREADS] [-k STAMP_FWHM] ooi.fits...
 * (the oow and ood files are found by name beside each ooi file). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/psf.h"
#include "skystack/sim.h"
#define BENCH_NAME "decam-methods"
#include "bench_util.h"
#include "coadd/coadd_internal.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

#define NMETHODS 5
#define MOFFAT_BETA 3.0
#define MODEL_RADIUS_FWHM 2.0
#define DETECT_SIGMA 3.0
#define DETECT_MINAREA 5
#define MIN_POSITIONS 10    /* fewer positions: no depth (nan) */

static const char *const method_names[NMETHODS] = {"mean", "clipped", "median", "zogy",
                                                   "psfmatch"};

static int cmpd(const void *a, const void *b)
{
    double u = *(const double *)a, v = *(const double *)b;
    return u < v ? -1 : u > v;
}

/* Median of v[0..n-1] (reordered); NAN when n is 0. */
static double median_of(double *v, long n)
{
    if (n <= 0)
        return NAN;
    qsort(v, (size_t)n, sizeof(double), cmpd);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median and 1.4826 MAD of v[0..n-1] (v is reordered, scratch holds n). */
static void robust_stats(double *v, long n, double *scratch, double *med, double *sigma)
{
    *med = median_of(v, n);
    for (long i = 0; i < n; i++)
        scratch[i] = fabs(v[i] - *med);
    *sigma = 1.4826 * median_of(scratch, n);
}

/* "dir/c4d_..._ooi_g_..." -> the same with `kind` ("oow", "ood") for "ooi". */
static char *sibling(const char *ooi, const char *kind)
{
    const char *slash = strrchr(ooi, '/');
    const char *p = strstr(slash ? slash : ooi, "_ooi_");
    if (!p) {
        sk_error(SK_EINPUT, "%s: not an ooi file name (no _ooi_)", ooi);
        die("inputs");
    }
    char *s = xcalloc(strlen(ooi) + 1, 1);
    strcpy(s, ooi);
    memcpy(s + (p - ooi) + 1, kind, 3);
    return s;
}

/* Constant background of a frame: 3-sigma clipped median of its pixels with
 * weight > 0 and no flag. */
static double frame_background(const sk_image *img)
{
    long n = img->width * img->height, m = 0;
    double *v = xcalloc((size_t)n, sizeof(double)), *s = xcalloc((size_t)n, sizeof(double));
    for (long i = 0; i < n; i++)
        if (img->weight[i] > 0 && isfinite(img->sci[i]) && img->flags[i] == 0)
            v[m++] = img->sci[i];
    double med = NAN, sig = NAN;
    for (int it = 0; it < 10 && m > 0; it++) {
        robust_stats(v, m, s, &med, &sig);
        long k = 0;
        for (long i = 0; i < m; i++)
            if (fabs(v[i] - med) <= DETECT_SIGMA * sig)
                v[k++] = v[i];
        if (k == m)
            break;
        m = k;
    }
    free(v);
    free(s);
    return med;
}

/* A usable pixel of a coadd in the fully covered region. */
static int covered(const sk_coadd_result *r, int n, long i)
{
    return r->nimg[i] == n && r->image->weight[i] > 0 && isfinite(r->image->sci[i]) &&
           (r->image->flags[i] & ~(unsigned)SK_FLAGS_INFORMATIONAL) == 0;
}

/* Detected pixels of a coadd: > DETECT_SIGMA sigma above the robust
 * background of the fully covered region, in 8-connected groups of at
 * least DETECT_MINAREA pixels, and saturated pixels. */
static unsigned char *detect(const sk_coadd_result *r, int n, double *bkg, double *sigma)
{
    long w = r->image->width, h = r->image->height, np = w * h, m = 0;
    double *v = xcalloc((size_t)np, sizeof(double)), *s = xcalloc((size_t)np, sizeof(double));
    for (long i = 0; i < np; i++)
        if (covered(r, n, i))
            v[m++] = r->image->sci[i];
    robust_stats(v, m, s, bkg, sigma);
    free(v);
    free(s);
    unsigned char *above = xcalloc((size_t)np, 1), *det = xcalloc((size_t)np, 1);
    for (long i = 0; i < np; i++)
        above[i] = r->image->weight[i] > 0 && isfinite(r->image->sci[i]) &&
                   r->image->sci[i] > *bkg + DETECT_SIGMA * *sigma;
    long *stack = xcalloc((size_t)np, sizeof(long)), *group = xcalloc((size_t)np, sizeof(long));
    unsigned char *seen = xcalloc((size_t)np, 1);
    for (long i0 = 0; i0 < np; i0++) {
        if (!above[i0] || seen[i0])
            continue;
        long ns = 0, ng = 0;
        stack[ns++] = i0;
        seen[i0] = 1;
        while (ns > 0) {
            long i = stack[--ns];
            group[ng++] = i;
            long x = i % w, y = i / w;
            for (long dy = -1; dy <= 1; dy++)
                for (long dx = -1; dx <= 1; dx++) {
                    long xx = x + dx, yy = y + dy;
                    if (xx < 0 || yy < 0 || xx >= w || yy >= h)
                        continue;
                    long j = yy * w + xx;
                    if (above[j] && !seen[j]) {
                        seen[j] = 1;
                        stack[ns++] = j;
                    }
                }
        }
        if (ng >= DETECT_MINAREA)
            for (long k = 0; k < ng; k++)
                det[group[k]] = 1;
    }
    for (long i = 0; i < np; i++)
        if (r->image->flags[i] & SK_FLAG_SATURATED)
            det[i] = 1;
    free(above);
    free(stack);
    free(group);
    free(seen);
    return det;
}

typedef struct measure {
    double fwhm_px;
    double sigma_flux;
    double depth_mag;
    double sigma_flux_bg;   /* with a constant background fitted too */
    double depth_bg_mag;
    long npos;
} measure;

/* Usable stamp centres of a coadd: every pixel of the stamp (half-size
 * `half`) in the fully covered region and undetected. */
static unsigned char *valid_positions(const sk_coadd_result *r, int n, const unsigned char *det,
                                      long half)
{
    long w = r->image->width, h = r->image->height;
    unsigned char *bad = xcalloc((size_t)(w * h), 1), *ok = xcalloc((size_t)(w * h), 1);
    for (long i = 0; i < w * h; i++)
        bad[i] = !covered(r, n, i) || det[i];
    for (long y = half; y < h - half; y++)
        for (long x = half; x < w - half; x++) {
            int good = 1;
            for (long dy = -half; dy <= half && good; dy++)
                for (long dx = -half; dx <= half; dx++)
                    if (bad[(y + dy) * w + x + dx]) {
                        good = 0;
                        break;
                    }
            ok[y * w + x] = (unsigned char)good;
        }
    free(bad);
    return ok;
}

/* The coadd PSF's FWHM, and the PSF-fit noise of the coadd at the
 * positions `use`: P is the model (unit sum over all of it) at the centre
 * of the grid cut to the stamp, not renormalised, so that the flux
 * sum(P*I)/sum(P^2) of a point source is unbiased; the _bg fit adds a
 * constant background (weights P - mean(P) over the stamp: a constant and,
 * P being symmetric, a linear gradient do not change the flux). */
static void measure_depth(const sk_coadd_result *r, const sk_psf *cpsf, const unsigned char *use,
                          long stamp, measure *out)
{
    long w = r->image->width, h = r->image->height, half = stamp / 2;
    double xc = (double)(w / 2), yc = (double)(h / 2);
    out->fwhm_px = sk_psf_fwhm_at(cpsf, xc, yc);
    int full = sk_psf_stamp_size(cpsf);
    if (full < stamp)
        full = (int)stamp;
    double *model = xcalloc((size_t)full * (size_t)full, sizeof(double));
    if (sk_psf_image(cpsf, xc, yc, full, model))
        die("coadd PSF stamp");
    double *p = xcalloc((size_t)(stamp * stamp), sizeof(double));
    long off = full / 2 - half;
    double p2 = 0.0, pmean = 0.0, pc2 = 0.0;
    for (long y = 0; y < stamp; y++)
        for (long x = 0; x < stamp; x++) {
            p[y * stamp + x] = model[(y + off) * full + x + off];
            p2 += p[y * stamp + x] * p[y * stamp + x];
            pmean += p[y * stamp + x] / (double)(stamp * stamp);
        }
    for (long i = 0; i < stamp * stamp; i++)
        pc2 += (p[i] - pmean) * (p[i] - pmean);
    double *flux = xcalloc((size_t)(w * h), sizeof(double));
    double *flux_bg = xcalloc((size_t)(w * h), sizeof(double));
    long m = 0;
    for (long y = half; y < h - half; y++)
        for (long x = half; x < w - half; x++) {
            if (!use[y * w + x])
                continue;
            double s = 0.0, sc = 0.0;
            for (long dy = -half; dy <= half; dy++)
                for (long dx = -half; dx <= half; dx++) {
                    double v = r->image->sci[(y + dy) * w + x + dx];
                    double pv = p[(dy + half) * stamp + dx + half];
                    s += pv * v;
                    sc += (pv - pmean) * v;
                }
            flux_bg[m] = sc / pc2;
            flux[m++] = s / p2;
        }
    out->npos = m;
    double med = NAN, sig = NAN, sig_bg = NAN;
    if (m >= MIN_POSITIONS) {
        double *scratch = xcalloc((size_t)m, sizeof(double));
        robust_stats(flux, m, scratch, &med, &sig);
        robust_stats(flux_bg, m, scratch, &med, &sig_bg);
        free(scratch);
    }
    out->sigma_flux = sig;
    out->depth_mag = sig > 0 ? r->zero_point - 2.5 * log10(5.0 * sig) : NAN;
    out->sigma_flux_bg = sig_bg;
    out->depth_bg_mag = sig_bg > 0 ? r->zero_point - 2.5 * log10(5.0 * sig_bg) : NAN;
    free(model);
    free(p);
    free(flux);
    free(flux_bg);
}

int main(int argc, char **argv)
{
    const char *label = "group";
    int threads = 1;
    double stamp_fwhm = 0.5;
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "-l") && a + 1 < argc)
            label = argv[++a];
        else if (!strcmp(argv[a], "-t") && a + 1 < argc)
            threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "-k") && a + 1 < argc)
            stamp_fwhm = atof(argv[++a]);
        else {
            fprintf(stderr, "usage: decam-methods [-l LABEL] [-t THREADS] [-k STAMP_FWHM] "
                            "ooi.fits...\n");
            return 1;
        }
    }
    int n = argc - a;
    if (n < 1 || threads < 1 || !(stamp_fwhm > 0)) {
        fprintf(stderr, "decam-methods: need at least one ooi file, THREADS >= 1, STAMP_FWHM > 0\n");
        return 1;
    }

    sk_image **img = xcalloc((size_t)n, sizeof *img);
    sk_psf **psf = xcalloc((size_t)n, sizeof *psf);
    sk_coadd_input *in = xcalloc((size_t)n, sizeof *in);
    char **paths = xcalloc((size_t)(2 * n), sizeof *paths);
    double fwhm_max = 0.0;
    char filter[72] = "";
    printf("%s: %d inputs\n", label, n);
    printf("  %-42s %6s %7s %8s %9s %6s %8s\n", "frame", "FWHM", "EXPTIME", "ZP", "bkg_ADU",
           "gain", "sig_ADU");
    for (int k = 0; k < n; k++) {
        const char *path = argv[a + k];
        sk_read_opts ro;
        memset(&ro, 0, sizeof ro);
        paths[2 * k] = sibling(path, "oow");
        paths[2 * k + 1] = sibling(path, "ood");
        ro.noise_path = paths[2 * k];
        ro.noise_kind = SK_NOISE_WEIGHT;
        ro.mask_path = paths[2 * k + 1];
        ro.mask_is_flags = 0;
        if (sk_fits_read_image(path, &ro, &img[k]))
            die(path);
        if (!img[k]->wcs) {
            sk_error(SK_EINPUT, "%s: no usable WCS", path);
            die("inputs");
        }
        double fwhm = NAN, exptime = NAN, gain = 0.0;
        if (sk_header_get_double(img[k]->header, "FWHM", &fwhm) != 1 || !(fwhm > 0)) {
            sk_error(SK_EINPUT, "%s: no FWHM (pixels) in the header", path);
            die("inputs");
        }
        if (sk_header_get_double(img[k]->header, "EXPTIME", &exptime) != 1 || !(exptime > 0)) {
            sk_error(SK_EINPUT, "%s: no EXPTIME in the header", path);
            die("inputs");
        }
        if (sk_header_get_double(img[k]->header, "ARAWGAIN", &gain) != 1)
            gain = 0.0;
        if (k == 0)
            sk_header_get_str(img[k]->header, "FILTER", filter, sizeof filter);
        if (fwhm > fwhm_max)
            fwhm_max = fwhm;
        double bkg = frame_background(img[k]);
        /* the frame's sky noise from its weights, for the table */
        long np = img[k]->width * img[k]->height, m = 0;
        double *wv = xcalloc((size_t)np, sizeof(double));
        for (long i = 0; i < np; i++)
            if (img[k]->weight[i] > 0)
                wv[m++] = img[k]->weight[i];
        double sig_adu = m ? 1.0 / sqrt(median_of(wv, m)) : NAN;
        free(wv);

        sk_sim_psf ps = {SK_SIM_MOFFAT, fwhm, MOFFAT_BETA, 0.0, 0.0, MODEL_RADIUS_FWHM, 0.0, 1.0};
        if (sk_sim_psf_check(&ps))
            die("PSF model");
        long size = 2 * (long)ceil(MODEL_RADIUS_FWHM * fwhm) + 1;
        double *st = xcalloc((size_t)(size * size), sizeof(double));
        sk_sim_psf_add(&ps, 1.0, (double)(size / 2), (double)(size / 2), st, size, size, 0, size);
        if (sk_psf_from_stamp(st, (int)size, img[k]->width, img[k]->height, &psf[k]))
            die("PSF model");
        free(st);

        sk_coadd_input_init(&in[k]);
        in[k].image = img[k];
        in[k].background_level = bkg;
        in[k].zero_point = 25.0 + 2.5 * log10(exptime);
        in[k].gain = gain;
        const char *slash = strrchr(path, '/');
        in[k].name = slash ? slash + 1 : path;
        printf("  %-42s %6.3f %7.1f %8.4f %9.2f %6.2f %8.3f\n", in[k].name, fwhm, exptime,
               in[k].zero_point, bkg, gain, sig_adu);
    }
    printf("  filter %s; grid: the first frame's, %ldx%ld px\n", filter, img[0]->width,
           img[0]->height);

    sk_grid *grid = NULL;
    if (sk_grid_from_wcs(img[0]->wcs, img[0]->width, img[0]->height, &grid))
        die("grid");
    long stamp = 2 * (long)ceil(stamp_fwhm * fwhm_max) + 1;

    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.threads = threads;
    const sk_psf **cpsfs = xcalloc((size_t)n, sizeof *cpsfs);
    const sk_wcs **wcs = xcalloc((size_t)n, sizeof *wcs);
    long *widths = xcalloc((size_t)n, sizeof(long)), *heights = xcalloc((size_t)n, sizeof(long));
    double *cw = xcalloc((size_t)n, sizeof(double));
    for (int k = 0; k < n; k++) {
        cpsfs[k] = psf[k];
        wcs[k] = img[k]->wcs;
        widths[k] = img[k]->width;
        heights[k] = img[k]->height;
    }

    sk_coadd_result *res[NMETHODS] = {0};
    sk_psf *coadd_psf[NMETHODS] = {0};
    for (int mth = 0; mth < NMETHODS; mth++) {
        char what[96];
        snprintf(what, sizeof what, "%s: %s coadd", label, method_names[mth]);
        if (mth < 3) {
            p.combine.method = mth == 0 ? SK_COMBINE_MEAN
                               : mth == 1 ? SK_COMBINE_CLIPPED
                                          : SK_COMBINE_MEDIAN;
            if (sk_coadd_run(in, n, grid, &p, &res[mth]))
                die(what);
            for (int k = 0; k < n; k++)
                cw[k] = res[mth]->info[k].mean_cweight;
            if (sk_coadd_psf(n, cpsfs, wcs, widths, heights, cw, grid, &coadd_psf[mth]))
                die(what);
        } else {
            sk_coaddx_params x;
            sk_coaddx_params_default(&x);
            x.method = mth == 3 ? SK_COADDX_ZOGY : SK_COADDX_PSFMATCH;
            /* psfmatch: the matched inputs' clipped weighted mean */
            p.combine.method = SK_COMBINE_CLIPPED;
            if (sk_coaddx_run(in, n, cpsfs, grid, &p, &x, &res[mth], &coadd_psf[mth]))
                die(what);
            if (!coadd_psf[mth]) {
                sk_error(SK_EINPUT, "no coadd PSF returned");
                die(what);
            }
        }
    }

    double bkg = NAN, sig = NAN;
    unsigned char *det = detect(res[0], n, &bkg, &sig);
    long ndet = 0, ncov = 0;
    for (long i = 0; i < grid->width * grid->height; i++) {
        ndet += det[i];
        ncov += covered(res[0], n, i);
    }
    printf("  fully covered pixels (mean coadd) %ld of %ld; detected %ld (3 sigma, >= %d px "
           "groups, saturated); PSF-fit stamp %ldx%ld px (2*ceil(%.2f*%.2f)+1)\n",
           ncov, grid->width * grid->height, ndet, DETECT_MINAREA, stamp, stamp, stamp_fwhm,
           fwhm_max);
    printf("  %-9s %6s %7s %8s %9s %8s %9s %9s %8s\n", "method", "inputs", "depth5", "FWHM_px",
           "positions", "MAGZERO", "sigma_F", "depth5_bg", "sigma_Fbg");
    measure ms[NMETHODS];
    unsigned char *valid[NMETHODS];
    for (int mth = 0; mth < NMETHODS; mth++) {
        valid[mth] = valid_positions(res[mth], n, det, stamp / 2);
        measure_depth(res[mth], coadd_psf[mth], valid[mth], stamp, &ms[mth]);
        printf("  %-9s %6d %7.3f %8.3f %9ld %8.4f %9.4g %9.3f %9.4g\n", method_names[mth],
               res[mth]->ninputs, ms[mth].depth_mag, ms[mth].fwhm_px, ms[mth].npos,
               res[mth]->zero_point, ms[mth].sigma_flux, ms[mth].depth_bg_mag,
               ms[mth].sigma_flux_bg);
    }
    /* zogy against mean on the positions both can use (the same sky) */
    long np = grid->width * grid->height;
    unsigned char *both = xcalloc((size_t)np, 1);
    for (long i = 0; i < np; i++)
        both[i] = valid[0][i] && valid[3][i];
    measure cm, cz;
    measure_depth(res[0], coadd_psf[0], both, stamp, &cm);
    measure_depth(res[3], coadd_psf[3], both, stamp, &cz);
    printf("  %s: zogy - mean depth5 %+.3f mag, depth5_bg %+.3f mag (own positions: %ld, %ld); "
           "on the %ld positions both use: %+.3f, %+.3f mag\n",
           label, ms[3].depth_mag - ms[0].depth_mag, ms[3].depth_bg_mag - ms[0].depth_bg_mag,
           ms[3].npos, ms[0].npos, cz.npos, cz.depth_mag - cm.depth_mag,
           cz.depth_bg_mag - cm.depth_bg_mag);
    free(both);
    for (int mth = 0; mth < NMETHODS; mth++)
        free(valid[mth]);

    free(det);
    for (int mth = 0; mth < NMETHODS; mth++) {
        sk_coadd_result_free(res[mth]);
        sk_psf_free(coadd_psf[mth]);
    }
    sk_grid_free(grid);
    for (int k = 0; k < n; k++) {
        sk_psf_free(psf[k]);
        sk_image_free(img[k]);
        free(paths[2 * k]);
        free(paths[2 * k + 1]);
    }
    free(img); free(psf); free(in); free(paths);
    free(cpsfs); free(wcs); free(widths); free(heights); free(cw);
    return 0;
}
