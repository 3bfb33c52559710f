/* psf-truth.c: an extraction's PSF model against imsim's true profile at the stars of the zero point, for bench/zp-parts: how much of MAGZERO - truth the model makes and how much the stars' own pixels (noise, unresolved neighbours) make.
 *
 * Usage: psf-truth MODEL.psf SOURCES.fits TRUTH.fits LOG
 *   LOG  extract's -vv log: the stars of the zero point ("star NUMBER n:
 *        zero point z, expected error e"), weighted 1 / e^2 as the zero
 *        point weights them
 *
 * For each such star, joined to its true star (nearest within 1 px): the
 * true profile there (the truth's FWHM and ellipticity, the angle of
 * imsim's field pattern, the header's model, beta, wing and truncation)
 * drawn noiselessly with unit flux at the true position, and fitted as
 * extract fits a star (the model rendered there, unit sum over its stamp;
 * the pixels within max(2, 2 FWHM) px, uniform weights: a sky-limited
 * star): model = the weighted mean of that fit - 1. stars = the weighted
 * mean of FLUX_PSF / true flux - 1 over the same stars (their miss as
 * measured, with transparency in the truth's flux). Prints
 *   n model stars stars-model
 * as fractions of the flux (+: too bright; MAGZERO - truth is about
 * 1.086 times `stars`). */
#include <fitsio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract/psf_internal.h"
#include "numeric/psf_profile.h"
#include "skystack/psf.h"
#include "skystack/sim.h"

static void fail(int st, const char *what)
{
    char msg[FLEN_STATUS] = "";
    if (st)
        fits_get_errstatus(st, msg);
    fprintf(stderr, "psf-truth: %s: %s\n", what, msg);
    exit(1);
}

static double *column(fitsfile *f, const char *name, long n, const char *path)
{
    int st = 0, col = 0, any = 0;
    double *v = malloc(sizeof *v * (size_t)(n + 1));
    if (!v)
        fail(0, "out of memory");
    if (fits_get_colnum(f, CASEINSEN, (char *)name, &col, &st) ||
        fits_read_col(f, TDOUBLE, col, 1, 1, n, NULL, v, &any, &st))
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

/* The noiseless fit of the true profile p (unit flux at x, y) with the
 * model, as extract's PSF photometry fits a sky-limited star. */
static double model_fit(const sk_psf *psf, const sk_sim_psf *p, double x, double y)
{
    int m = sk_psf_stamp_size(psf);
    double R = fmax(2.0, 2.0 * psf->fwhm_px);
    if (m < 2 * (int)ceil(R) + 1)
        m = 2 * (int)ceil(R) + 1;
    long half = (long)ceil(sk_sim_psf_extent_px(p)) + 2;
    if (half < m / 2)
        half = m / 2;
    long big = 2 * half + 1, ix = lround(x), iy = lround(y);
    double *P = calloc((size_t)(big * big), sizeof *P), *M = malloc(sizeof *M * (size_t)m * (size_t)m);
    if (!P || !M)
        fail(0, "out of memory");
    sk_sim_psf_add(p, 1.0, (double)half + (x - (double)ix), (double)half + (y - (double)iy), P, big,
                   big, 0, big);
    if (sk_psf_image(psf, x, y, m, M))
        fail(0, "model image");
    double spm = 0, smm = 0;
    for (int j = 0; j < m; j++)
        for (int i = 0; i < m; i++) {
            double dx = (double)(i - m / 2) - (x - (double)ix), dy = (double)(j - m / 2) - (y - (double)iy);
            if (dx * dx + dy * dy > R * R)
                continue;
            double mm = M[j * m + i];
            spm += P[(j - m / 2 + half) * big + (i - m / 2 + half)] * mm;
            smm += mm * mm;
        }
    free(P);
    free(M);
    return spm / smm;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: psf-truth MODEL.psf SOURCES.fits TRUTH.fits LOG\n");
        return 2;
    }
    sk_psf *psf = NULL;
    if (sk_psf_read(argv[1], &psf))
        fail(0, argv[1]);
    fitsfile *fs = NULL, *ft = NULL;
    int st = 0;
    long ns = 0, nt = 0;
    if (fits_open_table(&fs, argv[2], READONLY, &st) || fits_get_num_rows(fs, &ns, &st))
        fail(st, argv[2]);
    double *num = column(fs, "NUMBER", ns, argv[2]), *sx = column(fs, "XWIN_IMAGE", ns, argv[2]);
    double *sy = column(fs, "YWIN_IMAGE", ns, argv[2]), *sf = column(fs, "FLUX_PSF", ns, argv[2]);
    if (fits_open_table(&ft, argv[3], READONLY, &st) || fits_movnam_hdu(ft, BINARY_TBL, "SOURCES", 0, &st) ||
        fits_get_num_rows(ft, &nt, &st))
        fail(st, argv[3]);
    double *tx = column(ft, "x", nt, argv[3]), *ty = column(ft, "y", nt, argv[3]);
    double *tf = column(ft, "flux", nt, argv[3]), *tfw = column(ft, "fwhm", nt, argv[3]);
    double *te = column(ft, "psf_e", nt, argv[3]), *tty = column(ft, "type", nt, argv[3]);
    char model[FLEN_VALUE] = "moffat";
    fits_read_key(ft, TSTRING, "PSFMODEL", model, NULL, &st);
    st = 0;
    sk_sim_psf p0;
    memset(&p0, 0, sizeof p0);
    p0.model = !strcmp(model, "gaussian") ? SK_SIM_GAUSSIAN
               : !strcmp(model, "double-gaussian") ? SK_SIM_DOUBLE_GAUSSIAN : SK_SIM_MOFFAT;
    p0.beta = key(ft, "PSFBETA", 3.5);
    p0.radius_fwhm = key(ft, "PSFTRUNC", 5);
    p0.wing_fraction = key(ft, "PSFWFRAC", 0);
    p0.wing_ratio = key(ft, "PSFWRAT", 1);
    double e0 = key(ft, "PSFELLIP", 0), a0 = key(ft, "PSFANGLE", 0), var = key(ft, "PSFVAR", 0);
    double W = (double)psf->image_width, H = (double)psf->image_height;
    FILE *lf = fopen(argv[4], "r");
    if (!lf)
        fail(0, argv[4]);
    char line[1024];
    const char *tag = "photometric calibration: star NUMBER ";
    double sw = 0, swm = 0, sws = 0;
    long n = 0;
    while (fgets(line, sizeof line, lf)) {
        const char *s = strstr(line, tag);
        long nb = 0;
        double zp = 0, err = 0;
        if (!s || sscanf(s + strlen(tag), "%ld: zero point %lf, expected error %lf", &nb, &zp, &err) != 3 ||
            !(err > 0))
            continue;
        long k = -1, t = -1;
        for (long i = 0; i < ns; i++)
            if ((long)num[i] == nb)
                k = i;
        if (k < 0)
            continue;
        double x = sx[k] - 1.0, y = sy[k] - 1.0, best = 1.0;
        for (long i = 0; i < nt; i++) {
            double d = hypot(tx[i] - x, ty[i] - y);
            if (d < best && tty[i] == 0) {
                best = d;
                t = i;
            }
        }
        if (t < 0)
            continue;
        /* the field pattern of sk_sim_psf_at: the angle at this place */
        double hd = 0.5 * hypot(W, H), xn = (tx[t] - 0.5 * (W - 1)) / hd, yn = (ty[t] - 0.5 * (H - 1)) / hd;
        double th0 = 2.0 * a0 * M_PI / 180.0;
        double e1 = e0 * cos(th0) + 0.5 * var * (xn * xn - yn * yn), e2 = e0 * sin(th0) + var * xn * yn;
        sk_sim_psf p = p0;
        p.fwhm_px = tfw[t];
        p.ellipticity = te[t];
        p.angle_deg = 0.5 * atan2(e2, e1) * 180.0 / M_PI;
        double w = 1.0 / (err * err);
        sw += w;
        swm += w * (model_fit(psf, &p, tx[t], ty[t]) - 1.0);
        sws += w * (sf[k] / tf[t] - 1.0);
        n++;
    }
    fclose(lf);
    if (!(sw > 0))
        fail(0, "no star of the zero point joined to the truth");
    printf("%ld %+.5f %+.5f %+.5f\n", n, swm / sw, sws / sw, (sws - swm) / sw);
    sk_psf_free(psf);
    return 0;
}
