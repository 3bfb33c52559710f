/* catalog-zpnoise.c: the zero-point scatter of an extraction of an imsim exposure set against the photometric noise the simulation put in (photon and read noise of each star, from the truth table and the simulation's parameters, plus the catalogue's simulated magnitude errors through the colour term), for bench/catalog.
 *
 * Usage: catalog-zpnoise SOURCES.fits REFCAT.fits TRUTH.fits USED MAGCOL ERRCOL [C1 C1ERR C2 C2ERR]
 *   SOURCES  extract's source list (FLUX_PSF, MAGZERO, CTCOEFn, CTCMIN, CTCMAX)
 *   USED     extract's -vv log: the NUMBERs of the stars of the zero point
 *            (after the star selection and the clipping)
 *   MAGCOL ERRCOL  the catalogue band of the zero point and its error; with
 *            C1 C1ERR C2 C2ERR the colour C1 - C2 of the header's colour term
 *
 * A star's simulated flux noise is the Cramer-Rao bound of a PSF-fit flux
 * with a known PSF and position: sigma_F^-2 = sum_i P_i^2 / var_i, var_i =
 * (gain sky_i + gain F P_i + read^2) / gain^2 (ADU^2), P the star's true
 * PSF (imsim's own profile: the truth's FWHM and ellipticity, the header's
 * model, beta, angle and truncation) integrated over each pixel, F its true
 * flux, sky the true sky at the pixel; no neighbour's light, no background
 * estimate, no error floor. Its catalogue noise is what imsim drew the
 * catalogue's magnitudes with (the error columns) through the colour
 * term's slope: sqrt(e^2 + slope^2 (e1^2 + e2^2)).
 *
 * Prints one line, four sets of stars: U the stars of the zero point (the
 * set MAGZSCAT is computed over), B of them those the truth does not mark
 * blended (a source of >= 10 % of the flux within 2 FWHM), I of them those
 * with no true source of >= 3 % of their flux within 2 FWHM, C every
 * candidate (clean flags, FLUX_PSF SNR >= 10, in the colour range, in the
 * catalogue; before the selection and the clipping):
 *   nU rmsdevU rmsnoiseU nB .. .. nI .. .. nC rmsdevC rmsnoiseC robustC nF fluxsim fluxstated
 * rmsdev: rms of the stars' zero points (catalogue magnitude + 2.5 log10
 * FLUX_PSF) about MAGZERO; rmsnoise: rms of their simulated noise; robustC:
 * 1.4826 MAD of (zero point - MAGZERO) / noise over C; over the nF
 * candidates with no such neighbour, the photometry alone against the
 * truth: the rms of 2.5 log10(FLUX_PSF / true flux), about its median,
 * over the simulated flux noise (fluxsim) and over FLUXERR_PSF's
 * (fluxstated). */
#include <fitsio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numeric/psf_profile.h"
#include "numeric/stats.h"

static int fail(int st, const char *what)
{
    char msg[FLEN_STATUS];
    fits_get_errstatus(st, msg);
    fprintf(stderr, "catalog-zpnoise: %s: %s\n", what, msg);
    exit(1);
}

/* Column `name` of the open table (n rows) as doubles. */
static double *column(fitsfile *f, const char *name, long n, const char *path)
{
    int st = 0, col = 0, any = 0;
    double *v = malloc(sizeof *v * (size_t)(n + 1));
    if (!v)
        fail(FILE_NOT_OPENED, "out of memory");
    if (fits_get_colnum(f, CASEINSEN, (char *)name, &col, &st) ||
        fits_read_col(f, TDOUBLE, col, 1, 1, n, NULL, v, &any, &st))
        fail(st, path);
    return v;
}

/* Logical column `name` of the open table (n rows). */
static char *flags_column(fitsfile *f, const char *name, long n, const char *path)
{
    int st = 0, col = 0, any = 0;
    char *v = malloc((size_t)n + 1);
    if (!v)
        fail(FILE_NOT_OPENED, "out of memory");
    if (fits_get_colnum(f, CASEINSEN, (char *)name, &col, &st) ||
        fits_read_col(f, TLOGICAL, col, 1, 1, n, NULL, v, &any, &st))
        fail(st, path);
    return v;
}

static double key(fitsfile *f, const char *name, double dflt)
{
    int st = 0;
    double v = dflt;
    if (fits_read_key(f, TDOUBLE, name, &v, NULL, &st))
        return dflt;
    return v;
}

typedef struct {
    double gain, read_e, sky, gx, gy, rx, ry;
    sk_sim_psf psf;
} sim_noise;

/* The Cramer-Rao flux error (ADU) of a star of flux F at (x, y). */
static double flux_noise(const sim_noise *s, double F, double x, double y, double fwhm, double ell)
{
    sk_sim_psf p = s->psf;
    p.fwhm_px = fwhm;
    p.ellipticity = ell;
    long half = (long)ceil(sk_sim_psf_extent_px(&p)) + 2, m = 2 * half + 1;
    double *st = calloc((size_t)(m * m), sizeof *st);
    if (!st)
        fail(FILE_NOT_OPENED, "out of memory");
    long x0 = lround(x) - half, y0 = lround(y) - half;
    sk_sim_psf_add(&p, 1.0, x - (double)x0, y - (double)y0, st, m, m, 0, m);
    double info = 0;
    for (long j = 0; j < m; j++)
        for (long i = 0; i < m; i++) {
            double P = st[j * m + i];
            double sky = s->sky + s->gx * ((double)(x0 + i) - s->rx) + s->gy * ((double)(y0 + j) - s->ry);
            double var = (s->gain * sky + s->gain * F * P + s->read_e * s->read_e) / (s->gain * s->gain);
            info += P * P / var;
        }
    free(st);
    return 1.0 / sqrt(info);
}

static void sim_noise_read(fitsfile *t, sim_noise *s)
{
    char model[FLEN_VALUE] = "moffat";
    int st = 0;
    s->gain = key(t, "GAIN", 1);
    s->read_e = key(t, "RDNOISE", 0);
    s->sky = key(t, "SKYADU", 0);
    s->gx = key(t, "SKYGRADX", 0);
    s->gy = key(t, "SKYGRADY", 0);
    s->rx = key(t, "SKYREFX", 0);
    s->ry = key(t, "SKYREFY", 0);
    fits_read_key(t, TSTRING, "PSFMODEL", model, NULL, &st);
    memset(&s->psf, 0, sizeof s->psf);
    s->psf.model = !strcmp(model, "gaussian") ? SK_SIM_GAUSSIAN
                   : !strcmp(model, "double-gaussian") ? SK_SIM_DOUBLE_GAUSSIAN : SK_SIM_MOFFAT;
    s->psf.beta = key(t, "PSFBETA", 3.5);
    s->psf.angle_deg = key(t, "PSFANGLE", 0);
    s->psf.radius_fwhm = key(t, "PSFTRUNC", 4);
    s->psf.wing_fraction = key(t, "PSFWFRAC", 0);
    s->psf.wing_ratio = key(t, "PSFWRAT", 1);
}

/* The NUMBERs the calibration used, from extract's debug log. */
static char *used_numbers(const char *path, long nsrc)
{
    char *used = calloc((size_t)nsrc + 2, 1);
    FILE *f = fopen(path, "r");
    if (!used || !f)
        fail(FILE_NOT_OPENED, path);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        const char *m = strstr(line, "photometric calibration: star NUMBER ");
        long n = m ? strtol(m + strlen("photometric calibration: star NUMBER "), NULL, 10) : 0;
        if (n >= 1 && n <= nsrc)
            used[n] = 1;
    }
    fclose(f);
    return used;
}

typedef struct {
    long n;
    double dev2, noise2;
} acc;

static void add(acc *a, double dev, double noise)
{
    a->n++;
    a->dev2 += dev * dev;
    a->noise2 += noise * noise;
}

/* The truth table: columns and the simulation's noise parameters. */
typedef struct {
    long n;
    double *id, *type, *x, *y, *flux, *fwhm, *ell;
    char *blended;
    sim_noise sim;
} truth;

/* Another true source (any kind) of at least 3 % of star t's flux within
 * 2 FWHM of it: a neighbour the truth's BLENDED (10 %) does not count. */
static int faint_neighbour(const truth *T, long t)
{
    for (long q = 0; q < T->n; q++)
        if (q != t && T->flux[q] >= 0.03 * T->flux[t] &&
            hypot(T->x[q] - T->x[t], T->y[q] - T->y[t]) < 2.0 * T->fwhm[t])
            return 1;
    return 0;
}

/* The nearest true star within a pixel of (x, y) (1-based), or -1. */
static long truth_star(const truth *T, double x, double y)
{
    long best = -1;
    double bd = 1.0;
    for (long t = 0; t < T->n; t++) {
        double d = hypot(T->x[t] + 1 - x, T->y[t] + 1 - y);
        if (T->type[t] == 0 && d < bd) {
            bd = d;
            best = t;
        }
    }
    return best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* rms of (d - median d) / e over n values (d sorted in a copy). */
static double rms_about_median(const double *d, const double *e, long n)
{
    if (n < 3)
        return NAN;
    double *c = malloc(sizeof *c * (size_t)n), s = 0;
    if (!c)
        fail(FILE_NOT_OPENED, "out of memory");
    memcpy(c, d, sizeof *c * (size_t)n);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    double med = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    for (long k = 0; k < n; k++)
        s += (d[k] - med) * (d[k] - med) / (e[k] * e[k]);
    free(c);
    return sqrt(s / (double)n);
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 11) {
        fprintf(stderr, "usage: catalog-zpnoise SOURCES.fits REFCAT.fits TRUTH.fits USED MAGCOL ERRCOL "
                        "[C1 C1ERR C2 C2ERR]\n");
        return 2;
    }
    int st = 0, colour = argc == 11;
    fitsfile *fs = NULL, *fr = NULL, *ft = NULL;
    long ns = 0, nr = 0;
    if (fits_open_table(&fs, argv[1], READONLY, &st) || fits_get_num_rows(fs, &ns, &st))
        fail(st, argv[1]);
    double zp = key(fs, "MAGZERO", NAN), cmin = key(fs, "CTCMIN", -INFINITY), cmax = key(fs, "CTCMAX", INFINITY);
    double coef[10] = {0};
    for (int k = 0; k < 10; k++) {
        char name[16];
        snprintf(name, sizeof name, "CTCOEF%d", k);
        coef[k] = key(fs, name, 0);
    }
    double *num = column(fs, "NUMBER", ns, argv[1]), *sx = column(fs, "XWIN_IMAGE", ns, argv[1]);
    double *sy = column(fs, "YWIN_IMAGE", ns, argv[1]), *fl = column(fs, "FLUX_PSF", ns, argv[1]);
    double *fe = column(fs, "FLUXERR_PSF", ns, argv[1]), *flags = column(fs, "FLAGS", ns, argv[1]);
    if (fits_open_table(&fr, argv[2], READONLY, &st) || fits_get_num_rows(fr, &nr, &st))
        fail(st, argv[2]);
    double *rid = column(fr, "id", nr, argv[2]), *rm = column(fr, argv[5], nr, argv[2]);
    double *re = column(fr, argv[6], nr, argv[2]);
    double *c1 = colour ? column(fr, argv[7], nr, argv[2]) : NULL, *e1 = colour ? column(fr, argv[8], nr, argv[2]) : NULL;
    double *c2 = colour ? column(fr, argv[9], nr, argv[2]) : NULL, *e2 = colour ? column(fr, argv[10], nr, argv[2]) : NULL;
    truth T;
    if (fits_open_table(&ft, argv[3], READONLY, &st) || fits_get_num_rows(ft, &T.n, &st))
        fail(st, argv[3]);
    sim_noise_read(ft, &T.sim);
    T.id = column(ft, "id", T.n, argv[3]);
    T.type = column(ft, "type", T.n, argv[3]);
    T.x = column(ft, "x", T.n, argv[3]);
    T.y = column(ft, "y", T.n, argv[3]);
    T.flux = column(ft, "flux", T.n, argv[3]);
    T.fwhm = column(ft, "fwhm", T.n, argv[3]);
    T.ell = column(ft, "psf_e", T.n, argv[3]);
    T.blended = flags_column(ft, "blended", T.n, argv[3]);
    char *used = used_numbers(argv[4], ns);
    acc U = {0}, B = {0}, I = {0}, C = {0};
    double *norm = malloc(sizeof *norm * (size_t)(ns + 1)), *dm = malloc(sizeof *dm * (size_t)(ns + 1));
    double *e_sim = malloc(sizeof *e_sim * (size_t)(ns + 1)), *e_stated = malloc(sizeof *e_stated * (size_t)(ns + 1));
    long ni = 0;
    const unsigned reject = (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6);
    for (long k = 0; k < ns; k++) {
        long best = truth_star(&T, sx[k], sy[k]), r = -1;
        for (long q = 0; best >= 0 && q < nr && r < 0; q++)
            if (rid[q] == T.id[best])
                r = q;
        if (r < 0 || !(fl[k] > 0) || !isfinite(rm[r]))
            continue;
        double m = rm[r], cat2 = re[r] * re[r];
        if (colour) {
            double x = c1[r] - c2[r], poly = 0, slope = 0, xp = 1;
            if (!isfinite(x) || x < cmin || x > cmax)
                continue;
            for (int q = 0; q < 10; q++, xp *= x) {
                poly += coef[q] * xp;
                if (q + 1 < 10)
                    slope += (q + 1) * coef[q + 1] * xp;
            }
            m += poly;
            cat2 += slope * slope * (e1[r] * e1[r] + e2[r] * e2[r]);
        }
        double dev = m + 2.5 * log10(fl[k]) - zp, F = T.flux[best];
        double sf = flux_noise(&T.sim, F, T.x[best], T.y[best], T.fwhm[best], T.ell[best]);
        double noise = sqrt(pow(2.5 / M_LN10 * sf / F, 2) + cat2);
        long n = lround(num[k]);
        int alone = !faint_neighbour(&T, best);
        if (n >= 1 && n <= ns && used[n]) {
            add(&U, dev, noise);
            if (!T.blended[best])
                add(&B, dev, noise);
            if (alone)
                add(&I, dev, noise);
        }
        if (((unsigned)flags[k] & reject) || !(fl[k] / fe[k] >= 10))
            continue;
        norm[C.n] = fabs(dev) / noise;
        add(&C, dev, noise);
        if (alone) {
            dm[ni] = 2.5 * log10(fl[k] / F);
            e_sim[ni] = 2.5 / M_LN10 * sf / F;
            e_stated[ni++] = 2.5 / M_LN10 * fe[k] / fl[k];
        }
    }
    double robust = C.n ? SK_MAD_TO_SIGMA * sk_median_double(norm, C.n) : NAN;
    const acc *a[4] = {&U, &B, &I, &C};
    for (int k = 0; k < 4; k++)
        printf("%ld %.5f %.5f ", a[k]->n, sqrt(a[k]->dev2 / (double)a[k]->n), sqrt(a[k]->noise2 / (double)a[k]->n));
    printf("%.4f %ld %.4f %.4f\n", robust, ni, rms_about_median(dm, e_sim, ni), rms_about_median(dm, e_stated, ni));
    return 0;
}
