/* test_psf.c: the PSF model against imsim truth: FWHM across the image
 * (centre and corners, PSF varying), residuals of bright stars consistent
 * with noise, normalisation and centring of the evaluated stamps, an
 * undersampled PSF modelled on a finer grid, rejection of galaxies and
 * doubles, PSF-fit fluxes and their errors, the PSFEx file round trip,
 * and the failure on too few stars; PSFEx's own files. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/fits.h"
#include "skystack/header.h"
#include "skystack/image.h"
#include "skystack/log.h"
#include "skystack/psf.h"
#include "skystack/sim.h"
#include "../tap.h"
#include "extract/extract_internal.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

static int make_exposure(char *const *sets, int nsets, int index, sk_sim_params *p,
                         sk_sim_exposure **e)
{
    sk_config *c = NULL;
    sk_sim_field *f = NULL;
    int rc = sk_config_load(NULL, sets, nsets, &c);
    rc = rc ? rc : sk_sim_params_from_config(c, p);
    rc = rc ? rc : sk_sim_field_make(p, &f);
    rc = rc ? rc : sk_sim_expose(p, f, index, 2, e);
    if (rc)
        printf("# imsim: %s\n", sk_errmsg());
    sk_sim_field_free(f);
    sk_config_free(c);
    return rc;
}

static int extract(const sk_image *img, sk_extract_result **r)
{
    sk_extract_params p;
    sk_extract_params_default(&p);
    int rc = sk_extract_run(img, &p, 2, r);
    sk_extract_params_clear(&p);
    if (rc)
        printf("# extract: %s\n", sk_errmsg());
    return rc;
}

/* FWHM of the truth PSF integrated over a pixel, by the same half-maximum
 * area rule as the model's, on a grid 8 times finer than the pixels. */
static double truth_pixel_fwhm(const sk_sim_psf *psf)
{
    const int sub = 8, ns = 8;
    int half = (int)ceil(2.0 * psf->fwhm_px * sub);
    int n = 2 * half + 1;
    double *v = malloc(sizeof *v * (size_t)n * (size_t)n), peak = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            double ox = (double)(i - half) / sub, oy = (double)(j - half) / sub, s = 0;
            for (int b = 0; b < ns; b++)
                for (int a = 0; a < ns; a++)
                    s += sk_sim_psf_density(psf, ox + (a + 0.5) / ns - 0.5, oy + (b + 0.5) / ns - 0.5);
            v[(long)j * n + i] = s;
            if (s > peak)
                peak = s;
        }
    long count = 0;
    for (long i = 0; i < (long)n * n; i++)
        count += v[i] >= 0.5 * peak;
    free(v);
    return 2.0 * sqrt((double)count / (sub * sub) / M_PI);
}

typedef struct truth {
    long n;
    double *x, *y, *flux;
    int *type, *sat, *blend;
} truth;

static void truth_load(const sk_table *t, truth *tr)
{
    tr->n = t->nrows;
    tr->x = malloc(sizeof(double) * (size_t)tr->n);
    tr->y = malloc(sizeof(double) * (size_t)tr->n);
    tr->flux = malloc(sizeof(double) * (size_t)tr->n);
    tr->type = malloc(sizeof(int) * (size_t)tr->n);
    tr->sat = malloc(sizeof(int) * (size_t)tr->n);
    tr->blend = malloc(sizeof(int) * (size_t)tr->n);
    for (long k = 0; k < tr->n; k++) {
        tr->x[k] = sk_column_get(sk_table_column(t, "x"), k, 0);
        tr->y[k] = sk_column_get(sk_table_column(t, "y"), k, 0);
        tr->flux[k] = sk_column_get(sk_table_column(t, "flux"), k, 0);
        tr->type[k] = (int)sk_column_get(sk_table_column(t, "type"), k, 0);
        tr->sat[k] = (int)sk_column_get(sk_table_column(t, "saturated"), k, 0);
        tr->blend[k] = (int)sk_column_get(sk_table_column(t, "blended"), k, 0);
    }
}

static void truth_free(truth *tr)
{
    free(tr->x);
    free(tr->y);
    free(tr->flux);
    free(tr->type);
    free(tr->sat);
    free(tr->blend);
}

/* Nothing brighter than `frac` of star k within `r` pixels. */
static int isolated(const truth *tr, long k, double r, double frac)
{
    for (long q = 0; q < tr->n; q++)
        if (q != k && tr->flux[q] > frac * tr->flux[k] && hypot(tr->x[q] - tr->x[k], tr->y[q] - tr->y[k]) < r)
            return 0;
    return 1;
}

/* Reduced chi^2 of a star near (x, y) fitted with the PSF: flux and
 * centre by Gauss-Newton (the centre starts at the true position), pixels
 * within 3 FWHM, noise from the weight map plus the source's Poisson
 * noise. *flux_out gets the flux. */
static double star_chi2(const sk_psf *psf, const sk_image *img, const sk_background *bg,
                        double gain, double x, double y, double *flux_out)
{
    int m = sk_psf_stamp_size(psf);
    double *p = malloc(sizeof *p * (size_t)m * (size_t)m * 3);
    double *px = p + (long)m * m, *py = px + (long)m * m;
    long ix = lround(x), iy = lround(y);
    double r = 3 * psf->fwhm_px, a = 0, chi = NAN, h = 0.01;
    for (int it = 0; it < 7; it++) {
        /* the stamp stays on (ix, iy): render at the offsets from it */
        if (sk_psf_image(psf, x, y, m, p) || sk_psf_image(psf, x + h, y, m, px) ||
            sk_psf_image(psf, x, y + h, m, py))
            break;
        long sx = lround(x) - ix, sy = lround(y) - iy, sxx = lround(x + h) - ix, syy = lround(y + h) - iy;
        double A[9] = {0}, B[3] = {0}, c2 = 0;
        long n = 0;
        for (int j = 0; j < m; j++)
            for (int i = 0; i < m; i++) {
                long xx = ix - m / 2 + i, yy = iy - m / 2 + j;
                if (xx < 0 || yy < 0 || xx >= img->width || yy >= img->height)
                    continue;
                if (hypot((double)xx - x, (double)yy - y) > r)
                    continue;
                long q = yy * img->width + xx;
                if (!(img->weight[q] > 0) || img->flags[q])
                    continue;
                /* model values at image pixel (xx, yy) from each stamp */
                int i0 = i - (int)sx, j0 = j - (int)sy, i1 = i - (int)sxx, j2 = j - (int)syy;
                if (i0 < 0 || j0 < 0 || i0 >= m || j0 >= m || i1 < 0 || i1 >= m || j2 < 0 || j2 >= m ||
                    j - (int)sy < 0 || i - (int)sx < 0)
                    continue;
                double f = p[(long)j0 * m + i0];
                double gx = (px[(long)j0 * m + i1] - f) / h, gy = (py[(long)j2 * m + i0] - f) / h;
                double d = img->sci[q] - bg->level[q];
                double mod = a * f;
                double var = 1.0 / img->weight[q] + (mod > 0 ? mod / gain : 0);
                double v[3] = {f, a * gx, a * gy};
                for (int u = 0; u < 3; u++) {
                    B[u] += v[u] * (d - mod) / var;
                    for (int t = 0; t < 3; t++)
                        A[u * 3 + t] += v[u] * v[t] / var;
                }
                c2 += (d - mod) * (d - mod) / var;
                n++;
            }
        if (it > 0)
            chi = n > 3 ? c2 / (double)(n - 3) : NAN;
        if (it == 0) {
            a += B[0] / A[0];
            continue;
        }
        /* solve A dp = B (3x3, Cramer) */
        double det = A[0] * (A[4] * A[8] - A[5] * A[7]) - A[1] * (A[3] * A[8] - A[5] * A[6]) +
                     A[2] * (A[3] * A[7] - A[4] * A[6]);
        if (!(fabs(det) > 0))
            break;
        double sol[3];
        for (int u = 0; u < 3; u++) {
            double M[9];
            for (int t = 0; t < 9; t++)
                M[t] = A[t];
            for (int t = 0; t < 3; t++)
                M[t * 3 + u] = B[t];
            sol[u] = (M[0] * (M[4] * M[8] - M[5] * M[7]) - M[1] * (M[3] * M[8] - M[5] * M[6]) +
                      M[2] * (M[3] * M[7] - M[4] * M[6])) / det;
        }
        a += sol[0];
        x += fmax(-0.3, fmin(0.3, sol[1]));
        y += fmax(-0.3, fmin(0.3, sol[2]));
    }
    free(p);
    *flux_out = a;
    return chi;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n ? (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2])) : NAN;
}

/* Robust standard deviation (1.4826 MAD about the median). */
static double robust_sigma(const double *v, long n)
{
    double *w = malloc(sizeof *w * (size_t)(n + 1));
    memcpy(w, v, sizeof *w * (size_t)n);
    double med = median(w, n);
    for (long k = 0; k < n; k++)
        w[k] = fabs(v[k] - med);
    double s = 1.4826 * median(w, n);
    free(w);
    return s;
}

/* Index of the truth row within `r` px of (x, y), or -1. */
static long truth_match(const truth *tr, double x, double y, double r)
{
    long best = -1;
    double bd = r;
    for (long k = 0; k < tr->n; k++) {
        double d = hypot(tr->x[k] - x, tr->y[k] - y);
        if (d < bd) {
            bd = d;
            best = k;
        }
    }
    return best;
}

/* One imsim field: PSF built from every other source (the others are
 * held out to judge the model), FWHM at the centre and the corners against
 * the truth, stamps, residuals of held-out bright stars, PSF-fit fluxes and
 * errors, star selection, thread independence, PSFEx round trip. */
static void test_field(const char *label, char *const *sets, int nsets, int expect_fine_grid)
{
    sk_sim_params sp;
    sk_sim_exposure *e = NULL;
    if (make_exposure(sets, nsets, 0, &sp, &e)) {
        ok(0, "%s: imsim exposure", label);
        return;
    }
    sk_image *img = e->image;
    sk_extract_result *r = NULL;
    if (extract(img, &r)) {
        ok(0, "%s: extraction", label);
        sk_sim_exposure_free(e);
        return;
    }
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    pp.gain = r->gain;
    /* Every other source is held out of the fit (its SNR set to 0 in a
       copy of the list, so that it still counts as a neighbour). */
    sk_source_list fit = *r->sources;
    fit.src = malloc(sizeof *fit.src * (size_t)(fit.n + 1));
    memcpy(fit.src, r->sources->src, sizeof *fit.src * (size_t)fit.n);
    for (long k = 1; k < fit.n; k += 2)
        fit.src[k].snr = 0;
    sk_psf *psf = NULL, *psf1 = NULL;
    int rc = sk_psf_build(img, r->background, &fit, r->detection->segmap, &pp, 2, &psf);
    ok(rc == SK_OK, "%s: PSF built (%s)", label, rc ? sk_errmsg() : "ok");
    int rc1 = rc ? rc : sk_psf_build(img, r->background, &fit, r->detection->segmap, &pp, 1, &psf1);
    free(fit.src);
    if (rc) {
        sk_extract_result_free(r);
        sk_sim_exposure_free(e);
        return;
    }
    long np = (long)psf->width * psf->height * psf->ncomp;
    ok(rc1 == SK_OK && psf1->naccepted == psf->naccepted &&
       memcmp(psf1->comp, psf->comp, sizeof(float) * (size_t)np) == 0,
       "%s: the same model, to the bit, with 1 and 2 threads", label);
    sk_psf_free(psf1);
    tap_diag("%s: %ld/%ld stars, %dx%d model, step %.3f px, degree %d, chi2 %.3f, FWHM %.3f px",
             label, psf->naccepted, psf->nloaded, psf->width, psf->height, psf->step_px,
             psf->degree, psf->chi2, psf->fwhm_px);
    if (expect_fine_grid)
        ok(psf->step_px < 0.75, "%s: undersampled PSF modelled on a finer grid (step %.3f px)", label,
           psf->step_px);
    else
        ok(psf->step_px > 0.75 && psf->step_px <= 1.0, "%s: model step %.3f px", label, psf->step_px);
    ok(psf->degree == 2, "%s: polynomial degree 2 (%d)", label, psf->degree);

    long w = img->width, h = img->height;
    double pos[5][2] = {{0.5 * (w - 1), 0.5 * (h - 1)}, {20, 20}, {w - 21.0, 20},
                        {20, h - 21.0}, {w - 21.0, h - 21.0}};
    const char *name[5] = {"centre", "corner (0,0)", "corner (w,0)", "corner (0,h)", "corner (w,h)"};
    for (int i = 0; i < 5; i++) {
        sk_sim_psf tp;
        sk_sim_psf_at(&sp, &e->info, w, h, pos[i][0], pos[i][1], &tp);
        double want = truth_pixel_fwhm(&tp);
        double got = sk_psf_fwhm_at(psf, pos[i][0], pos[i][1]);
        ok(fabs(got / want - 1) <= 0.03,
           "%s: FWHM at the %s %.3f px within 3 %% of the truth %.3f px (%+.1f %%; intrinsic FWHM "
           "%.3f px, before the pixel)", label, name[i], got, want, 100 * (got / want - 1), tp.fwhm_px);
    }

    /* stamps: unit sum, centred where asked */
    int m = sk_psf_stamp_size(psf);
    double *st = malloc(sizeof *st * (size_t)m * (size_t)m);
    double sum = 0, mx = 0, my = 0, tot = 0;
    double x0 = 100.3, y0 = 200.8;
    rc = sk_psf_image(psf, x0, y0, m, st);
    for (int j = 0; j < m; j++)
        for (int i = 0; i < m; i++) {
            double v = st[(long)j * m + i];
            sum += v;
            double dx = (double)(i - m / 2) + 100 - x0, dy = (double)(j - m / 2) + 201 - y0;
            if (hypot(dx, dy) < 2 * psf->fwhm_px) {
                mx += v * dx;
                my += v * dy;
                tot += v;
            }
        }
    ok(rc == SK_OK && fabs(sum - 1) < 1e-9, "%s: PSF stamp sums to 1 (%.12f)", label, sum);
    ok(fabs(mx / tot) < 0.03 && fabs(my / tot) < 0.03,
       "%s: PSF stamp centred on the requested sub-pixel position (first moments %.4f, %.4f px)",
       label, mx / tot, my / tot);
    ok(sk_psf_image(psf, 10, 10, 4, st) == SK_EINPUT, "%s: an even stamp size is refused", label);
    free(st);

    truth tr;
    truth_load(e->truth, &tr);

    /* the stars kept are stars, single ones */
    long bad_kept = 0;
    for (long j = 0; j < psf->naccepted; j++) {
        const sk_source *s = &r->sources->src[psf->stars[j]];
        long k = truth_match(&tr, s->xwin, s->ywin, 2.0);
        int single = k >= 0 && tr.type[k] == 0;
        for (long q = 0; single && q < tr.n; q++)
            if (q != k && tr.flux[q] > 0.2 * tr.flux[k] &&
                hypot(tr.x[q] - tr.x[k], tr.y[q] - tr.y[k]) < psf->fwhm_px)
                single = 0;
        if (!single) {
            bad_kept++;
            tap_diag("%s: PSF star at %.1f %.1f is %s", label, s->xwin, s->ywin,
                     k < 0 ? "no truth source" : tr.type[k] ? "a galaxy" : "a blend");
        }
    }
    long ngal = 0, ndouble = 0;
    for (long q = 0; q < r->sources->n; q += 2) {
        const sk_source *s = &r->sources->src[q];
        long k = truth_match(&tr, s->xwin, s->ywin, 2.0);
        if (s->snr >= pp.min_snr && k >= 0 && tr.type[k] == 1)
            ngal++;
        if (s->snr >= pp.min_snr && k >= 0 && tr.type[k] == 0 && !isolated(&tr, k, psf->fwhm_px, 0.2))
            ndouble++;
    }
    ok(bad_kept == 0, "%s: none of the %ld PSF stars is a galaxy or a blend (candidates: %ld "
       "galaxies, %ld close doubles with SNR >= %g)", label, psf->naccepted, ngal, ndouble, pp.min_snr);

    /* held-out bright isolated stars: residuals, PSF-fit fluxes */
    float *var = sk_pixel_variance(img, r->background);
    double *chis = malloc(sizeof(double) * (size_t)tr.n);
    double *ratio = malloc(sizeof(double) * (size_t)tr.n);
    double *pull = malloc(sizeof(double) * (size_t)tr.n);
    long nb = 0, nbad = 0, nr = 0, npull = 0;
    for (long k = 0; k < tr.n; k++) {
        if (tr.type[k] != 0 || tr.sat[k] || tr.blend[k])
            continue;
        if (tr.x[k] < 15 || tr.y[k] < 15 || tr.x[k] > w - 16 || tr.y[k] > h - 16)
            continue;
        if (!isolated(&tr, k, 5 * psf->fwhm_px, 0.01))
            continue;
        long src = -1;
        for (long q = 0; q < r->sources->n; q++)
            if (hypot(r->sources->src[q].xwin - tr.x[k], r->sources->src[q].ywin - tr.y[k]) < 1.5)
                src = q;
        if (src < 0 || src % 2 == 0)
            continue;
        double fl, fe, c2f;
        rc = sk_psf_photometry(psf, img, r->background->level, var, NULL, r->gain, 1, &tr.x[k],
                               &tr.y[k], 1, &fl, &fe, NULL);
        if (rc || !isfinite(fl) || !(fe > 0))
            continue;
        double snr = tr.flux[k] / fe;
        if (snr >= 100) {
            double c2 = star_chi2(psf, img, r->background, r->gain, tr.x[k], tr.y[k], &c2f);
            if (isfinite(c2)) {
                chis[nb++] = c2;
                nbad += c2 > 1.5;
            }
        }
        if (snr >= 20)
            ratio[nr++] = fl / tr.flux[k];
    }
    /* errors at empty places (no source within 5 FWHM): pure noise */
    for (long j = 0; j < 40 * 40 && npull < tr.n; j++) {
        double x = 12 + (double)(j % 40) * (w - 24) / 40.0 + 0.37, y = 12 + (double)(j / 40) * (h - 24) / 40.0 + 0.61;
        int empty = 1;
        for (long k = 0; k < tr.n && empty; k++)
            empty = hypot(tr.x[k] - x, tr.y[k] - y) > 5 * psf->fwhm_px + (tr.type[k] == 1 ? 10 : 0);
        double fl, fe;
        if (!empty || sk_psf_photometry(psf, img, r->background->level, var, NULL, r->gain, 1, &x,
                                        &y, 1, &fl, &fe, NULL) || !isfinite(fl))
            continue;
        pull[npull++] = fl / fe;
    }
    double med_chi = median(chis, nb);
    ok(nb >= 10 && med_chi < 1.5,
       "%s: held-out bright isolated stars (%ld, SNR >= 100) fitted with the model (flux and "
       "centre): median chi2/dof %.3f < 1.5 (%ld above 1.5)", label, nb, med_chi, nbad);
    double mr = median(ratio, nr);
    ok(nr >= 15 && fabs(mr - 1) < 0.01,
       "%s: PSF-fit flux at the true position / true flux, median over %ld held-out stars: %.4f",
       label, nr, mr);
    double sp_ = npull >= 100 ? robust_sigma(pull, npull) : NAN;
    ok(npull >= 100 && fabs(sp_ - 1) < 0.1,
       "%s: PSF-fit flux errors honest: flux / error at %ld empty places has a robust sigma of "
       "%.3f", label, npull, sp_);
    free(chis);
    free(ratio);
    free(pull);
    free(var);

    /* PSFEx round trip */
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.psf", tap_tmpdir(), expect_fine_grid ? "fine" : "field");
    sk_psf *back = NULL;
    rc = sk_psf_write(path, psf);
    int rrc = rc ? rc : sk_psf_read(path, &back);
    ok(rc == SK_OK && rrc == SK_OK, "%s: written and read back as a PSFEx file (%s)", label,
       rc || rrc ? sk_errmsg() : "ok");
    if (back) {
        int same = back->width == psf->width && back->height == psf->height &&
                   back->ncomp == psf->ncomp && back->degree == psf->degree &&
                   back->step_px == psf->step_px && back->xzero == psf->xzero &&
                   back->xscale == psf->xscale && back->yzero == psf->yzero &&
                   back->yscale == psf->yscale && back->image_width == psf->image_width &&
                   back->naccepted == psf->naccepted &&
                   memcmp(back->comp, psf->comp, sizeof(float) * (size_t)np) == 0;
        ok(same, "%s: the file holds the model exactly (grid, scaling, components)", label);
        double a[121], b[121];
        sk_psf_image(psf, 333.7, 57.2, 11, a);
        sk_psf_image(back, 333.7, 57.2, 11, b);
        ok(memcmp(a, b, sizeof a) == 0, "%s: the same stamps from the file", label);
        sk_psf_free(back);
    }
    truth_free(&tr);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_sim_exposure_free(e);
}

/* Too few stars: a clear failure, no model. */
static void test_too_few(void)
{
    char *sets[] = {"simulation.width_px=256", "simulation.height_px=256", "simulation.nstars=2",
                    "simulation.mag_min=17", "simulation.mag_max=18", "simulation.galaxy_fraction=0",
                    "simulation.seed=9", "simulation.moving_sources=0", "simulation.transients=0"};
    sk_sim_params sp;
    sk_sim_exposure *e = NULL;
    sk_extract_result *r = NULL;
    if (make_exposure(sets, 9, 0, &sp, &e) || extract(e->image, &r)) {
        ok(0, "too few stars: exposure and extraction");
        sk_sim_exposure_free(e);
        return;
    }
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    sk_psf *psf = NULL;
    int rc = sk_psf_build(e->image, r->background, r->sources, r->detection->segmap, &pp, 1, &psf);
    ok(rc == SK_ENOTFOUND && psf == NULL && strstr(sk_errmsg(), "need at least 3"),
       "too few stars (%ld sources): SK_ENOTFOUND, no model (%s)", r->sources->n, sk_errmsg());
    sk_extract_result_free(r);
    sk_sim_exposure_free(e);
}

/* PSFEx's own file: read, and the model it gives on its grid equals the
 * snapshots PSFEx computed (term order and context scaling). */
static void test_psfex_file(void)
{
    sk_psf *psf = NULL;
    int rc = sk_psf_read(tap_src("tests/data/psf/psfex_cat.psf"), &psf);
    ok(rc == SK_OK, "PSFEx's own .psf file read (%s)", rc ? sk_errmsg() : "ok");
    if (rc)
        return;
    ok(psf->width == 25 && psf->height == 25 && psf->ncomp == 6 && psf->degree == 2 &&
       fabs(psf->step_px - 0.99375433) < 1e-7 && psf->naccepted == 101,
       "PSFEx file: 25x25x6, degree 2, PSF_SAMP %.8f, %ld stars", psf->step_px, psf->naccepted);
    float *snap = NULL;
    long sw = 0, sh = 0;
    sk_header *hd = NULL;
    rc = sk_fits_read_plane(tap_src("tests/data/psf/psfex_snapshots.fits"), "0", &snap, &sw, &sh, &hd);
    long nsnap = 0;
    if (!rc)
        sk_header_get_long(hd, "NSNAP", &nsnap);
    ok(rc == SK_OK && sw == 25 && sh == 25 * nsnap && nsnap == 6, "PSFEx snapshots read (%ld)", nsnap);
    double grid[625], worst = 0;
    for (long n = 0; !rc && n < nsnap; n++) {
        char kx[32], ky[32];
        double x = 0, y = 0, peak = 0, diff = 0;
        snprintf(kx, sizeof kx, "SNAPX%ld", n + 1);
        snprintf(ky, sizeof ky, "SNAPY%ld", n + 1);
        sk_header_get_double(hd, kx, &x);
        sk_header_get_double(hd, ky, &y);
        sk_psf_grid_at(psf, x, y, grid);
        for (int i = 0; i < 625; i++) {
            double v = snap[n * 625 + i];
            if (v > peak)
                peak = v;
            if (fabs(grid[i] - v) > diff)
                diff = fabs(grid[i] - v);
        }
        if (diff / peak > worst)
            worst = diff / peak;
    }
    ok(!rc && worst < 1e-5, "the model read from PSFEx's file equals PSFEx's own snapshots at six "
       "positions (largest difference %.2g of the peak)", worst);
    /* PSFEx normalises to an aperture flux; stamps are renormalised */
    double st[625], s = 0, g = 0;
    sk_psf_image(psf, 200, 300, 25, st);
    sk_psf_grid_at(psf, 200, 300, grid);
    for (int i = 0; i < 625; i++) {
        s += st[i];
        g += grid[i];
    }
    g *= psf->step_px * psf->step_px;
    ok(fabs(s - 1) < 1e-9 && g > 1.03, "PSFEx's model sums to %.4f on image pixels (aperture "
       "normalisation); its stamps to %.12f", g, s);
    ok(psf->fwhm_px > 3.5 && psf->fwhm_px < 4.5, "FWHM of PSFEx's model %.3f px (PSF_FWHM %.2f is "
       "its stars' median FWHM_IMAGE)", psf->fwhm_px, 4.67064524);
    free(snap);
    sk_header_free(hd);
    sk_psf_free(psf);

    /* files that are not PSF models */
    ok(sk_psf_read(tap_src("tests/data/psf/psfex_snapshots.fits"), &psf) != SK_OK && psf == NULL,
       "an image is not a PSF file (%s)", sk_errmsg());
    sk_table *t = sk_table_new("PSF_DATA", 1);
    sk_column *c = sk_table_add_column(t, "PSF_MASK", SK_COL_FLOAT, 9, "");
    c->ndims = 2;
    c->dims[0] = c->dims[1] = 3;
    sk_header_set_long(t->header, "POLNAXIS", 2, NULL);
    sk_header_set_str(t->header, "POLNAME1", "MAG_AUTO", NULL);
    sk_header_set_str(t->header, "POLNAME2", "Y_IMAGE", NULL);
    char path[4200];
    snprintf(path, sizeof path, "%s/bad.psf", tap_tmpdir());
    sk_fits_write_table(path, t);
    sk_table_free(t);
    rc = sk_psf_read(path, &psf);
    ok(rc == SK_EINPUT && strstr(sk_errmsg(), "MAG_AUTO"), "a model varying with MAG_AUTO is refused "
       "with a message naming it (%s)", sk_errmsg());
}

/* A constant model from a stamp (for PSFs made by other means). */
static void test_from_stamp(void)
{
    double st[81], out[81];
    for (int j = 0; j < 9; j++)
        for (int i = 0; i < 9; i++)
            st[j * 9 + i] = exp(-0.5 * ((i - 4) * (i - 4) + (j - 4) * (j - 4)) / 1.5);
    sk_psf *psf = NULL;
    int rc = sk_psf_from_stamp(st, 9, 100, 100, &psf);
    ok(rc == SK_OK && psf->degree == 0 && psf->ncomp == 1, "constant model from a stamp");
    if (rc)
        return;
    sk_psf_image(psf, 50, 50, 9, out);
    double sum = 0, diff = 0;
    for (int i = 0; i < 81; i++)
        sum += st[i];
    for (int i = 0; i < 81; i++)
        diff = fmax(diff, fabs(out[i] - st[i] / sum));
    ok(diff < 1e-6, "its stamp at an integer position is the input, normalised (%.2g)", diff);
    double csum = 0;
    for (int i = 0; i < 81; i++)
        csum += psf->comp[i];
    is_near(csum, 1.0, 1e-6, "its component sums to 1, as a PSFEx file's PSF_DATA (%.7f)", csum);
    is_near(psf->fwhm_px, 2.3548 * sqrt(1.5), 0.15, "its FWHM %.3f px (sigma %.3f)", psf->fwhm_px,
            sqrt(1.5));
    char path[4200];
    snprintf(path, sizeof path, "%s/const.psf", tap_tmpdir());
    sk_psf *back = NULL;
    ok(sk_psf_write(path, psf) == SK_OK && sk_psf_read(path, &back) == SK_OK && back->degree == 0,
       "a constant model written (POLNAXIS 0) and read back");
    sk_psf_free(back);
    sk_psf_free(psf);
    st[40] = NAN;
    ok(sk_psf_from_stamp(st, 9, 100, 100, &psf) == SK_EINPUT && psf == NULL, "a NaN stamp is refused");
    ok(sk_psf_from_stamp(st, 8, 100, 100, &psf) == SK_EINPUT, "an even stamp is refused");
}

/* Stars sharper than a pixel (FWHM 0.6 px before the pixels, as in a
 * mosaic resampled to pixels larger than the seeing): the model is the PSF
 * as the pixels sample it (about 1.2 px wide; a grid as fine as the stars'
 * own FWHM rang and made it 0.85 px), and its PSF-fit fluxes at the true
 * positions are within 5 % of the true fluxes (2-5 % above them at this
 * sharpness, against 1 % at FWHM 2 px and more). */
static void test_sharper_than_pixel(void)
{
    char *sets[] = {"simulation.width_px=384", "simulation.height_px=384", "simulation.nstars=340",
                    "simulation.mag_min=18.5", "simulation.mag_max=22", "simulation.seed=5",
                    "simulation.galaxy_fraction=0", "simulation.seeing_scatter=0",
                    "simulation.psf_variation=0", "simulation.satellite_probability=0",
                    "simulation.seeing_arcsec=0.16"};
    sk_sim_params sp;
    sk_sim_exposure *e = NULL;
    sk_extract_result *r = NULL;
    sk_psf *psf = NULL;
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    int rc = make_exposure(sets, 11, 0, &sp, &e);
    rc = rc ? rc : extract(e->image, &r);
    if (!rc) {
        pp.gain = r->gain;
        rc = sk_psf_build(e->image, r->background, r->sources, r->detection->segmap, &pp, 2, &psf);
    }
    ok(rc == SK_OK, "sharper than a pixel: PSF built (%s)", rc ? sk_errmsg() : "ok");
    if (rc) {
        sk_extract_result_free(r);
        sk_sim_exposure_free(e);
        return;
    }
    const sk_image *img = e->image;
    long w = img->width, h = img->height;
    sk_sim_psf tp;
    sk_sim_psf_at(&sp, &e->info, w, h, 0.5 * (w - 1), 0.5 * (h - 1), &tp);
    double want = truth_pixel_fwhm(&tp), got = sk_psf_fwhm_at(psf, 0.5 * (w - 1), 0.5 * (h - 1));
    ok(fabs(got / want - 1) <= 0.1, "sharper than a pixel: model FWHM %.3f px within 10 %% of the truth "
       "%.3f px as the pixels sample it (%.3f px before them)", got, want, tp.fwhm_px);
    truth tr;
    truth_load(e->truth, &tr);
    float *var = sk_pixel_variance(img, r->background);
    double *ratio = malloc(sizeof(double) * (size_t)(tr.n + 1));
    long nr = 0;
    for (long k = 0; var && ratio && k < tr.n; k++) {
        if (tr.type[k] != 0 || tr.sat[k] || tr.blend[k] || !isolated(&tr, k, 4.0, 0.02))
            continue;
        if (tr.x[k] < 15 || tr.y[k] < 15 || tr.x[k] > w - 16 || tr.y[k] > h - 16)
            continue;
        double fl, fe;
        if (sk_psf_photometry(psf, img, r->background->level, var, NULL, r->gain, 1, &tr.x[k], &tr.y[k],
                              1, &fl, &fe, NULL) || !isfinite(fl) || !(fe > 0) || tr.flux[k] / fe < 20)
            continue;
        ratio[nr++] = fl / tr.flux[k];
    }
    double mr = nr ? median(ratio, nr) : NAN;
    ok(nr >= 20 && fabs(mr - 1) <= 0.05, "sharper than a pixel: PSF-fit flux at the true position / true "
       "flux, median over %ld isolated stars of SNR >= 20: %.4f", nr, mr);
    free(ratio);
    free(var);
    truth_free(&tr);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_sim_exposure_free(e);
}

/* A detector whose response is not linear (a photographic plate): the
 * stars' light x becomes S (1 - exp(-x / S)), which flattens the bright
 * stars' cores and broadens them by half, while the faint ones keep the
 * true profile (Gaussian, FWHM 3 px). The model is the faint stars' PSF,
 * not the bright ones'. */
static void test_nonlinear_response(void)
{
    const long w = 396, h = 396;
    const double sigma_px = 3.0 / 2.3548, noise = 10.0, sat = 600.0;
    sk_image *img = sk_image_new(w, h);
    double *model = calloc((size_t)(w * h), sizeof(double));
    uint64_t rs = 12345;
    long nbright = 0;
    for (long gy = 0; gy < 11; gy++)
        for (long gx = 0; gx < 11; gx++) {
            rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(rs >> 11) / 9007199254740992.0;
            double xc = 18 + 36 * gx + (u - 0.5), yc = 18 + 36 * gy + (u * 7 - floor(u * 7) - 0.5);
            /* one star in four bright (SNR 100-400), the others SNR 22-40 */
            int bright = (gx + 3 * gy) % 4 == 0;
            nbright += bright;
            double flux = bright ? 4500 + 13500 * u : 1000 + 800 * u;
            for (long y = (long)yc - 10; y <= (long)yc + 10; y++) {
                double fy = 0.5 * (erf((y + 0.5 - yc) / (M_SQRT2 * sigma_px)) - erf((y - 0.5 - yc) / (M_SQRT2 * sigma_px)));
                for (long x = (long)xc - 10; x <= (long)xc + 10; x++)
                    model[y * w + x] += flux * fy * 0.5 *
                        (erf((x + 0.5 - xc) / (M_SQRT2 * sigma_px)) - erf((x - 0.5 - xc) / (M_SQRT2 * sigma_px)));
            }
        }
    for (long i = 0; i < w * h; i++) {
        rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
        double u1 = ((double)(rs >> 11) + 0.5) / 9007199254740992.0;
        rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
        double u2 = (double)(rs >> 11) / 9007199254740992.0;
        img->sci[i] = (float)(500.0 + sat * (1 - exp(-model[i] / sat)) +
                              noise * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
        img->weight[i] = (float)(1.0 / (noise * noise));
    }
    free(model);
    sk_extract_result *r = NULL;
    sk_psf *psf = NULL;
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    int rc = extract(img, &r);
    rc = rc ? rc : sk_psf_build(img, r->background, r->sources, r->detection->segmap, &pp, 2, &psf);
    ok(rc == SK_OK, "response not linear: PSF built (%s)", rc ? sk_errmsg() : "ok");
    /* the true profile as the pixels sample it: a Gaussian of sigma^2 +
       1/12 px^2 (its second moments), 3.08 px FWHM */
    double want = 2.3548 * sqrt(sigma_px * sigma_px + 1.0 / 12.0);
    double got = psf ? sk_psf_fwhm_at(psf, 0.5 * (w - 1), 0.5 * (h - 1)) : NAN;
    ok(fabs(got / want - 1) <= 0.1, "response not linear: model FWHM %.3f px within 10 %% of the faint "
       "stars' %.3f px (%ld of 121 stars bright and broadened)", got, want, nbright);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_image_free(img);
}

int main(void)
{
    tap_plan(59);
    if (getenv("SK_TEST_VERBOSE"))
        sk_log_set_level(SK_LOG_DEBUG);
    /* A realistic field: stars and galaxies, cosmic rays, hot pixels, bad
       columns, the PSF 8 % broader and elongated at the corners. */
    char *field[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=250",
                     "simulation.mag_min=16", "simulation.mag_max=21.5", "simulation.seed=3",
                     "simulation.galaxy_fraction=0.2", "simulation.seeing_scatter=0",
                     "simulation.psf_variation=0.08", "simulation.satellite_probability=0"};
    test_field("field", field, 10, 0);
    /* An undersampled PSF (FWHM 2.1 px). */
    char *fine[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=250",
                    "simulation.mag_min=16", "simulation.mag_max=21.5", "simulation.seed=4",
                    "simulation.galaxy_fraction=0.1", "simulation.seeing_scatter=0",
                    "simulation.psf_variation=0.08", "simulation.satellite_probability=0",
                    "simulation.seeing_arcsec=0.65"};
    test_field("undersampled", fine, 11, 1);
    test_sharper_than_pixel();
    test_nonlinear_response();
    test_too_few();
    test_psfex_file();
    test_from_stamp();
    return tap_done();
}
