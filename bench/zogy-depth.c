/* zogy-depth.c: the depth of the mean, clipped and zogy coadds measured
 * directly at survey scale with the PSF models the pipeline fits: imsim
 * exposures of one field (the simulation defaults: seeing scatter,
 * dithers, small rotations, galaxies; no cosmic rays, defects, satellites,
 * moving sources or transients), each made twice from one seed, with noise
 * and noise-free. Each noisy exposure is extracted and its PSF model built
 * as extract does (sk_extract_run, then sk_psf_build with the extraction
 * background, segmentation and gain); the noise-free twin is coadded with
 * the same background maps and PSF models, so noisy minus noise-free is the
 * coadd's noise alone. On the grid of the last exposure, away from every
 * source (the blank sky), it measures per method the PSF-fit noise with
 * the coadd's PSF (zogy: the sk_psf it returns; mean and clipped: the
 * combine-weighted mean of the inputs' models seen on the grid), its ratio
 * to the white-noise prediction of the weight map, the correlation of
 * neighbouring pixels, the 5-sigma PSF-fit limit with the coadd's MAGZERO,
 * the median PSF-fit SNR of isolated unsaturated stars at fixed flux
 * (signal from the noise-free coadd) and the median ratio of their PSF-fit
 * flux to the true flux at the coadd's MAGZERO. A fourth row, zogy with
 * each exposure's true PSF at its centre in place of the fitted model,
 * tells the models' part from the method's. Built and run by
 * bench/zogy-depth.
 * Usage: zogy-depth [-s SIZE_PX] [-n NEXP] [-t THREADS] [-l LABEL]
 *                   [--set section.key=value]... */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../tests/coaddx_test.h"
#include "skystack/skystack.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/extract.h"
#include "skystack/psf.h"
#define BENCH_NAME "zogy-depth"
#include "bench_util.h"
#include "coadd/coaddx_internal.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

#define EDGE_PX 32          /* measurements stay this far from the grid's edges */
#define BLANK_PX 12.0       /* blank sky: no source within this radius */
#define ISOLATED_PX 20.0    /* isolated star: no other source within this */
#define NOISE_STEP 3        /* PSF-fit noise at every third pixel along x and y */
#define NMETHODS 4          /* mean, clipped, zogy, zogy with the true PSFs */

/* One set of exposures (noisy or noise-free) and its coadd inputs. */
typedef struct simset {
    sk_sim_params p;
    sk_sim_field *field;
    int n;
    sk_sim_exposure **e;
    sk_coadd_input *in;
} simset;

static void make_set(simset *s, char *const *sets, int nsets, sk_config **cfg_out, int threads)
{
    memset(s, 0, sizeof *s);
    sk_config *c = NULL;
    if (sk_config_load(NULL, sets, nsets, &c))
        die("configuration");
    if (sk_sim_params_from_config(c, &s->p))
        die("simulation parameters");
    if (sk_sim_field_make(&s->p, &s->field))
        die("simulation field");
    s->n = (int)s->p.nexp;
    s->e = xcalloc((size_t)s->n, sizeof *s->e);
    s->in = xcalloc((size_t)s->n, sizeof *s->in);
    for (int k = 0; k < s->n; k++) {
        if (sk_sim_expose(&s->p, s->field, k, threads, &s->e[k]))
            die("simulated exposure");
        sk_coadd_input_init(&s->in[k]);
        s->in[k].image = s->e[k]->image;
        s->in[k].zero_point = s->e[k]->info.magzero;
        s->in[k].gain = s->p.gain;
        s->in[k].name = "imsim";
    }
    if (cfg_out)
        *cfg_out = c;
    else
        sk_config_free(c);
}

static void free_set(simset *s)
{
    for (int k = 0; k < s->n; k++)
        sk_sim_exposure_free(s->e[k]);
    free(s->e);
    free(s->in);
    sk_sim_field_free(s->field);
}

/* What extract makes of each noisy exposure: background level and PSF model. */
typedef struct fitted {
    float **bkg;
    sk_psf **psf;
    double *fwhm_true_px, *fwhm_fit_px;
    long *nstars;
    double seconds;
} fitted;

static void fit_models(const simset *s, const sk_config *c, int threads, fitted *f)
{
    sk_extract_params ep;
    sk_extract_params_default(&ep);
    if (sk_extract_params_from_json(c->root, &ep))
        die("extraction parameters");
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    if (sk_psf_params_from_json(c->root, &pp))
        die("PSF parameters");
    f->bkg = xcalloc((size_t)s->n, sizeof *f->bkg);
    f->psf = xcalloc((size_t)s->n, sizeof *f->psf);
    f->fwhm_true_px = xcalloc((size_t)s->n, sizeof(double));
    f->fwhm_fit_px = xcalloc((size_t)s->n, sizeof(double));
    f->nstars = xcalloc((size_t)s->n, sizeof(long));
    double t0 = now_s();
    for (int k = 0; k < s->n; k++) {
        const sk_image *img = s->e[k]->image;
        sk_extract_result *r = NULL;
        if (sk_extract_run(img, &ep, threads, &r))
            die("extraction");
        sk_psf_params ppk = pp;
        ppk.gain = r->gain;
        if (sk_psf_build(img, r->background, r->sources, r->detection ? r->detection->segmap : NULL,
                         &ppk, threads, &f->psf[k]))
            die("PSF model");
        size_t npix = (size_t)(img->width * img->height);
        f->bkg[k] = xcalloc(npix, sizeof(float));
        memcpy(f->bkg[k], r->background->level, npix * sizeof(float));
        f->fwhm_true_px[k] = s->e[k]->info.psf.fwhm_px;
        f->fwhm_fit_px[k] = sk_psf_fwhm_at(f->psf[k], 0.5 * (double)(img->width - 1),
                                           0.5 * (double)(img->height - 1));
        f->nstars[k] = f->psf[k]->naccepted;
        sk_extract_result_free(r);
    }
    sk_extract_params_clear(&ep);
    f->seconds = now_s() - t0;
}

static void free_fitted(fitted *f, int n)
{
    for (int k = 0; k < n; k++) {
        free(f->bkg[k]);
        sk_psf_free(f->psf[k]);
    }
    free(f->bkg);
    free(f->psf);
    free(f->fwhm_true_px);
    free(f->fwhm_fit_px);
    free(f->nstars);
}

/* The sources of the field on the grid, and the masks made from them. */
typedef struct scene {
    long w, h;
    double *x, *y;         /* every source's grid position (NaN off the grid) */
    uint8_t *blank;        /* 1: no source within its blank radius */
    uint8_t *full;         /* 1: every input covers, away from the edges */
} scene;

/* Radius beyond which a source adds less than 1 % of the sky per pixel
 * (the Poisson noise of its wings), at least BLANK_PX; galaxies two
 * half-light radii more. */
static double blank_radius(const sk_sim_source *src, const sk_sim_psf *psf, double magzero,
                           double sky_adu, double scale_arcsec)
{
    double flux = pow(10.0, 0.4 * (magzero - src->mag));
    double r = BLANK_PX, ext = sk_sim_psf_extent_px(psf);
    while (r < ext && flux * sk_sim_psf_density(psf, r, 0.0) > 0.01 * sky_adu)
        r += 1.0;
    if (src->type == SK_SIM_GALAXY)
        r += 2.0 * src->gal.re_px / scale_arcsec;
    return r;
}

static void make_scene(const simset *s, const sk_grid *g, scene *sc)
{
    long ns = s->field->nsrc;
    sc->w = g->width;
    sc->h = g->height;
    double *ra = xcalloc((size_t)ns, sizeof(double)), *dec = xcalloc((size_t)ns, sizeof(double));
    sc->x = xcalloc((size_t)ns, sizeof(double));
    sc->y = xcalloc((size_t)ns, sizeof(double));
    for (long k = 0; k < ns; k++) {
        ra[k] = s->field->src[k].ra_deg;
        dec[k] = s->field->src[k].dec_deg;
    }
    if (sk_wcs_sky2pix(g->wcs, ns, ra, dec, sc->x, sc->y))
        die("source positions on the grid");
    free(ra);
    free(dec);
    /* the broadest exposure's PSF and its sky for the blank radii */
    const sk_sim_expinfo *wide = &s->e[0]->info;
    for (int k = 1; k < s->n; k++)
        if (s->e[k]->info.psf.fwhm_px > wide->psf.fwhm_px)
            wide = &s->e[k]->info;
    size_t npix = (size_t)(sc->w * sc->h);
    sc->blank = xcalloc(npix, 1);
    memset(sc->blank, 1, npix);
    for (long k = 0; k < ns; k++) {
        double x = sc->x[k], y = sc->y[k];
        if (!isfinite(x) || !isfinite(y))
            continue;
        double r = blank_radius(&s->field->src[k], &wide->psf, wide->magzero, wide->sky_adu,
                                s->p.pixel_scale_arcsec);
        for (long yy = lround(y - r); yy <= lround(y + r); yy++)
            for (long xx = lround(x - r); xx <= lround(x + r); xx++)
                if (xx >= 0 && yy >= 0 && xx < sc->w && yy < sc->h && hypot(xx - x, yy - y) <= r)
                    sc->blank[yy * sc->w + xx] = 0;
    }
    sc->full = NULL;
}

static void free_scene(scene *sc)
{
    free(sc->x);
    free(sc->y);
    free(sc->blank);
    free(sc->full);
}

/* Fully covered region from a coadd: every input, weight > 0, away from the edges. */
static void full_region(scene *sc, const sk_coadd_result *r, int n)
{
    sc->full = xcalloc((size_t)(sc->w * sc->h), 1);
    for (long y = EDGE_PX; y < sc->h - EDGE_PX; y++)
        for (long x = EDGE_PX; x < sc->w - EDGE_PX; x++) {
            long i = y * sc->w + x;
            sc->full[i] = r->nimg[i] == n && r->image->weight[i] > 0.0f;
        }
}

/* Isolated unsaturated stars inside the fully covered region. */
typedef struct stars {
    double *x, *y;
    double *mag;           /* true magnitude */
    int n;
} stars;

static void find_stars(const simset *s, const scene *sc, const sk_coadd_result *r, long half,
                       stars *t)
{
    long ns = s->field->nsrc;
    t->x = xcalloc((size_t)ns, sizeof(double));
    t->y = xcalloc((size_t)ns, sizeof(double));
    t->mag = xcalloc((size_t)ns, sizeof(double));
    t->n = 0;
    /* sources sorted into cells of ISOLATED_PX for the neighbour search */
    long cw = (long)ceil((double)sc->w / ISOLATED_PX) + 1, ch = (long)ceil((double)sc->h / ISOLATED_PX) + 1;
    long *head = xcalloc((size_t)(cw * ch), sizeof(long)), *next = xcalloc((size_t)ns, sizeof(long));
    for (long c = 0; c < cw * ch; c++)
        head[c] = -1;
    for (long k = 0; k < ns; k++) {
        next[k] = -1;
        if (!isfinite(sc->x[k]) || !isfinite(sc->y[k]) || sc->x[k] < 0 || sc->y[k] < 0 ||
            sc->x[k] >= (double)sc->w || sc->y[k] >= (double)sc->h)
            continue;
        long c = (long)(sc->y[k] / ISOLATED_PX) * cw + (long)(sc->x[k] / ISOLATED_PX);
        next[k] = head[c];
        head[c] = k;
    }
    for (long k = 0; k < ns; k++) {
        if (s->field->src[k].type != SK_SIM_STAR)
            continue;
        long cx = lround(sc->x[k]), cy = lround(sc->y[k]);
        if (cx < half + ISOLATED_PX || cy < half + ISOLATED_PX || cx >= sc->w - half - ISOLATED_PX ||
            cy >= sc->h - half - ISOLATED_PX || !sc->full[cy * sc->w + cx])
            continue;
        int ok = 1;
        for (long j = cy - 1; j <= cy + 1 && ok; j++)
            for (long i = cx - 1; i <= cx + 1 && ok; i++)
                if (r->image->flags[j * sc->w + i] & SK_FLAG_SATURATED)
                    ok = 0;
        long gx = (long)(sc->x[k] / ISOLATED_PX), gy = (long)(sc->y[k] / ISOLATED_PX);
        for (long gj = gy - 1; gj <= gy + 1 && ok; gj++)
            for (long gi = gx - 1; gi <= gx + 1 && ok; gi++) {
                if (gi < 0 || gj < 0 || gi >= cw || gj >= ch)
                    continue;
                for (long m = head[gj * cw + gi]; m >= 0 && ok; m = next[m])
                    if (m != k && hypot(sc->x[m] - sc->x[k], sc->y[m] - sc->y[k]) < ISOLATED_PX)
                        ok = 0;
            }
        if (!ok)
            continue;
        t->x[t->n] = sc->x[k];
        t->y[t->n] = sc->y[k];
        t->mag[t->n] = s->field->src[k].mag;
        t->n++;
    }
    free(head);
    free(next);
}

/* One method's coadd of both sets and what is measured on it. */
typedef struct method {
    const char *name;
    sk_coadd_result *noisy, *clean;
    float *psf;            /* the coadd's PSF at the grid centre, ps x ps, unit sum */
    long ps;
    double wall_s;
    double psf_fwhm_px, noise, predicted, corr, limit_mag, snr;
    double flux_ratio;     /* median PSF-fit flux / the truth's at MAGZERO */
    long npos;
} method;

/* PSF-fit noise over the blank, fully covered sky: rms of sum(P n)/sum(P^2)
 * at every NOISE_STEP-th pixel, and the white-noise prediction from the
 * weight map, sqrt(sum(P^2/w))/sum(P^2). */
static void measure_noise(method *m, const scene *sc)
{
    long w = sc->w, h = m->ps / 2;
    const float *noisy = m->noisy->image->sci, *clean = m->clean->image->sci;
    const float *wgt = m->noisy->image->weight;
    double den = 0.0;
    for (long i = 0; i < m->ps * m->ps; i++)
        den += (double)m->psf[i] * m->psf[i];
    double s2 = 0.0, p2 = 0.0;
    long n = 0;
    for (long y = EDGE_PX + h; y < sc->h - EDGE_PX - h; y += NOISE_STEP)
        for (long x = EDGE_PX + h; x < w - EDGE_PX - h; x += NOISE_STEP) {
            if (!sc->full[y * w + x] || !sc->blank[y * w + x])
                continue;
            double f = 0.0, v = 0.0;
            int usable = 1;
            for (long j = 0; j < m->ps && usable; j++) {
                long row = (y - h + j) * w + x - h;
                for (long i = 0; i < m->ps; i++) {
                    double pv = m->psf[j * m->ps + i];
                    float wt = wgt[row + i];
                    if (!(wt > 0.0f)) {
                        usable = 0;
                        break;
                    }
                    f += pv * ((double)noisy[row + i] - clean[row + i]);
                    v += pv * pv / wt;
                }
            }
            if (!usable)
                continue;
            f /= den;
            s2 += f * f;
            p2 += v / (den * den);
            n++;
        }
    m->npos = n;
    m->noise = n ? sqrt(s2 / (double)n) : NAN;
    m->predicted = n ? sqrt(p2 / (double)n) : NAN;
}

/* Correlation of the noise with its right and upper neighbours over the
 * blank, fully covered sky. */
static void measure_corr(method *m, const scene *sc)
{
    long w = sc->w;
    const float *a = m->noisy->image->sci, *b = m->clean->image->sci;
    double sxx = 0.0, sxy = 0.0;
    for (long y = 0; y < sc->h - 1; y++)
        for (long x = 0; x < w - 1; x++) {
            long i = y * w + x;
            if (!sc->full[i] || !sc->full[i + 1] || !sc->full[i + w] || !sc->blank[i] ||
                !sc->blank[i + 1] || !sc->blank[i + w])
                continue;
            double n0 = (double)a[i] - b[i];
            sxx += n0 * n0;
            sxy += 0.5 * n0 * (((double)a[i + 1] - b[i + 1]) + ((double)a[i + w] - b[i + w]));
        }
    m->corr = sxx > 0 ? sxy / sxx : NAN;
}

/* Median PSF-fit SNR of the stars at fixed flux: signal sum(P (I - b)) /
 * sum(P^2) on the noise-free coadd, P the coadd's PSF centred on the star's
 * true position (Lanczos-3 shift of the centre's stamp), b the median of
 * the annulus of 16 to 24 px (the coadd's own residual background); noise
 * the measured PSF-fit noise. And the median ratio of that PSF-fit flux
 * to the true flux at the coadd's MAGZERO. */
static void measure_snr(method *m, const scene *sc, const stars *t)
{
    if (!t->n) {
        m->snr = NAN;
        return;
    }
    long ps = m->ps, h = ps / 2;
    double *st = xcalloc((size_t)(ps * ps), sizeof(double));
    for (long i = 0; i < ps * ps; i++)
        st[i] = m->psf[i];
    sk_psf *model = NULL;
    if (sk_psf_from_stamp(st, (int)ps, sc->w, sc->h, &model))
        die("coadd PSF model");
    double *v = xcalloc((size_t)t->n, sizeof(double));
    double *fr = xcalloc((size_t)t->n, sizeof(double));
    double ann[2000];
    const float *img = m->clean->image->sci;
    for (int k = 0; k < t->n; k++) {
        long cx = lround(t->x[k]), cy = lround(t->y[k]);
        long na = 0;
        for (long y = cy - 24; y <= cy + 24; y++)
            for (long x = cx - 24; x <= cx + 24; x++) {
                double d2 = (double)((x - cx) * (x - cx) + (y - cy) * (y - cy));
                if (d2 >= 256.0 && d2 < 576.0 && x >= 0 && y >= 0 && x < sc->w && y < sc->h &&
                    na < 2000)
                    ann[na++] = img[y * sc->w + x];
            }
        double b = na ? median_d(ann, na) : 0.0;
        if (sk_psf_image(model, t->x[k], t->y[k], (int)ps, st))
            die("coadd PSF at a star");
        double num = 0.0, den = 0.0;
        for (long j = 0; j < ps; j++)
            for (long i = 0; i < ps; i++) {
                double pv = st[j * ps + i];
                num += pv * ((double)img[(cy - h + j) * sc->w + cx - h + i] - b);
                den += pv * pv;
            }
        v[k] = num / den / m->noise;
        fr[k] = num / den / pow(10.0, 0.4 * (m->clean->zero_point - t->mag[k]));
    }
    m->snr = median_d(v, t->n);
    m->flux_ratio = median_d(fr, t->n);
    free(v);
    free(fr);
    free(st);
    sk_psf_free(model);
}

static void method_free(method *m)
{
    sk_coadd_result_free(m->noisy);
    sk_coadd_result_free(m->clean);
    free(m->psf);
}

/* The inputs' PSF models seen on the grid at its centre, averaged with
 * the coadd's mean combine weights. */
static void mean_psf(method *m, const simset *s, const fitted *f, const sk_grid *g, long ps)
{
    m->ps = ps;
    m->psf = xcalloc((size_t)(ps * ps), sizeof(float));
    float *st = xcalloc((size_t)(ps * ps), sizeof(float));
    double *acc = xcalloc((size_t)(ps * ps), sizeof(double));
    double wsum = 0.0;
    double cx = (double)(g->width / 2), cy = (double)(g->height / 2);
    for (int k = 0; k < s->n; k++) {
        sk_grid_psf gp = {f->psf[k], s->e[k]->image->wcs, g->wcs};
        if (sk_grid_psf_stamp(&gp, cx, cy, ps, st))
            die("an input's PSF on the grid");
        double wk = m->noisy->info[k].mean_cweight;
        for (long i = 0; i < ps * ps; i++)
            acc[i] += wk * st[i];
        wsum += wk;
    }
    for (long i = 0; i < ps * ps; i++)
        m->psf[i] = (float)(acc[i] / wsum);
    free(st);
    free(acc);
}

static void measure(method *m, const scene *sc, const stars *t)
{
    m->psf_fwhm_px = stamp_fwhm(m->psf, m->ps);
    measure_noise(m, sc);
    measure_corr(m, sc);
    m->limit_mag = m->noisy->zero_point - 2.5 * log10(5.0 * m->noise);
    measure_snr(m, sc, t);
}

/* The zogy coadd of both sets with the PSF models `psfs`; its PSF's
 * stamp at the centre of the grid. */
static void run_zogy(method *m, const simset *noisy, const simset *clean, const sk_psf **psfs,
                     const sk_grid *grid, const sk_coadd_params *p)
{
    sk_coaddx_params x;
    sk_coaddx_params_default(&x);
    x.method = SK_COADDX_ZOGY;
    sk_psf *zpsf = NULL, *zpsf_clean = NULL;
    double t = now_s();
    if (sk_coaddx_run(noisy->in, noisy->n, psfs, grid, p, &x, &m->noisy, &zpsf))
        die("zogy coadd");
    m->wall_s = now_s() - t;
    if (sk_coaddx_run(clean->in, clean->n, psfs, grid, p, &x, &m->clean, &zpsf_clean))
        die("zogy coadd, noise-free");
    if (!zpsf)
        die("zogy coadd: no PSF");
    long ps = sk_psf_stamp_size(zpsf);
    double *d = xcalloc((size_t)(ps * ps), sizeof(double));
    /* centred on the middle pixel of the stamp: an integer position */
    if (sk_psf_image(zpsf, (double)(grid->width / 2), (double)(grid->height / 2), (int)ps, d))
        die("zogy PSF stamp");
    m->ps = ps;
    m->psf = xcalloc((size_t)(ps * ps), sizeof(float));
    for (long i = 0; i < ps * ps; i++)
        m->psf[i] = (float)d[i];
    free(d);
    sk_psf_free(zpsf);
    sk_psf_free(zpsf_clean);
}

static void usage(void)
{
    fprintf(stderr, "usage: zogy-depth [-s SIZE_PX] [-n NEXP] [-t THREADS] [-l LABEL] "
                    "[--set section.key=value]...\n");
    exit(1);
}

int main(int argc, char **argv)
{
    long size = 2048, nexp = 6;
    int threads = 2;
    const char *label = "defaults";
    char **user = xcalloc((size_t)argc, sizeof *user);
    int nuser = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "-s"))
            size = atol(argv[++i]);
        else if (!strcmp(argv[i], "-n"))
            nexp = atol(argv[++i]);
        else if (!strcmp(argv[i], "-t"))
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-l"))
            label = argv[++i];
        else if (!strcmp(argv[i], "--set"))
            user[nuser++] = argv[++i];
        else
            usage();
    }
    if (size < 256 || nexp < 2 || threads < 1)
        usage();
    sk_log_set_level(SK_LOG_WARN);

    /* the simulation defaults at the star density of their 1024x1024 field */
    char s_nexp[64], s_w[64], s_h[64], s_stars[64];
    snprintf(s_nexp, sizeof s_nexp, "simulation.nexp=%ld", nexp);
    snprintf(s_w, sizeof s_w, "simulation.width_px=%ld", size);
    snprintf(s_h, sizeof s_h, "simulation.height_px=%ld", size);
    snprintf(s_stars, sizeof s_stars, "simulation.nstars=%ld",
             lround(1000.0 * (double)size * (double)size / (1024.0 * 1024.0)));
    const char *fixed[] = {s_nexp, s_w, s_h, s_stars, "simulation.moving_sources=0",
                           "simulation.transients=0", "simulation.satellite_probability=0",
                           "simulation.bad_columns=0", "simulation.hot_pixels=0",
                           "simulation.cosmic_rate_per_mpix_s=0"};
    int nfixed = (int)(sizeof fixed / sizeof fixed[0]);
    int nsets = nfixed + nuser + 1;
    char **sets = xcalloc((size_t)nsets, sizeof *sets);
    for (int i = 0; i < nfixed; i++)
        sets[i] = (char *)fixed[i];
    for (int i = 0; i < nuser; i++)
        sets[nfixed + i] = user[i];

    double t0 = now_s();
    simset noisy, clean;
    sk_config *cfg = NULL;
    sets[nsets - 1] = "simulation.noise=true";
    make_set(&noisy, sets, nsets, &cfg, threads);
    sets[nsets - 1] = "simulation.noise=false";
    make_set(&clean, sets, nsets, NULL, threads);
    double t_sim = now_s() - t0;
    int n = noisy.n;

    fitted fit;
    memset(&fit, 0, sizeof fit);
    fit_models(&noisy, cfg, threads, &fit);
    sk_config_free(cfg);
    for (int k = 0; k < n; k++) {
        noisy.in[k].background = fit.bkg[k];
        clean.in[k].background = fit.bkg[k];
    }
    const sk_psf **psfs = xcalloc((size_t)n, sizeof *psfs);
    for (int k = 0; k < n; k++)
        psfs[k] = fit.psf[k];

    sk_grid *grid = NULL;
    if (sk_grid_from_wcs(noisy.e[n - 1]->image->wcs, size, size, &grid))
        die("grid of the last input");
    scene sc;
    make_scene(&noisy, grid, &sc);

    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.threads = threads;

    method ms[NMETHODS];
    memset(ms, 0, sizeof ms);
    ms[0].name = "mean";
    ms[1].name = "clipped";
    ms[2].name = "zogy";
    ms[3].name = "zogy/true";

    /* zogy first: its PSF's stamp size is every method's */
    p.combine.method = SK_COMBINE_MEAN;
    run_zogy(&ms[2], &noisy, &clean, psfs, grid, &p);
    long ps = ms[2].ps;
    /* and with the true PSFs at the centre of each exposure (as the unit
       test does), to tell the models' part from the method's */
    sk_psf **truth = xcalloc((size_t)n, sizeof *truth);
    for (int k = 0; k < n; k++) {
        sk_sim_psf tp = noisy.e[k]->info.psf;
        long ts = 2 * (long)ceil(5.0 * tp.fwhm_px) + 1;
        double *stamp = xcalloc((size_t)(ts * ts), sizeof(double));
        sk_sim_psf_add(&tp, 1.0, (double)(ts / 2), (double)(ts / 2), stamp, ts, ts, 0, ts);
        if (sk_psf_from_stamp(stamp, (int)ts, size, size, &truth[k]))
            die("true PSF");
        free(stamp);
        psfs[k] = truth[k];
    }
    run_zogy(&ms[3], &noisy, &clean, psfs, grid, &p);
    for (int k = 0; k < n; k++) {
        sk_psf_free(truth[k]);
        psfs[k] = fit.psf[k];
    }
    free(truth);

    for (int j = 0; j < 2; j++) {
        p.combine.method = j == 0 ? SK_COMBINE_MEAN : SK_COMBINE_CLIPPED;
        double t = now_s();
        if (sk_coadd_run(noisy.in, n, grid, &p, &ms[j].noisy))
            die(j == 0 ? "mean coadd" : "clipped coadd");
        ms[j].wall_s = now_s() - t;
        if (sk_coadd_run(clean.in, n, grid, &p, &ms[j].clean))
            die(j == 0 ? "mean coadd, noise-free" : "clipped coadd, noise-free");
        mean_psf(&ms[j], &noisy, &fit, grid, ps);
    }

    full_region(&sc, ms[0].noisy, n);
    stars st;
    find_stars(&noisy, &sc, ms[0].noisy, ps / 2, &st);
    for (int j = 0; j < NMETHODS; j++)
        measure(&ms[j], &sc, &st);

    /* the report */
    printf("scenario %s: %d exposures of %ldx%ld px (seed %llu, seeing %.2f\" scatter %.2f, "
           "dither %.0f\", rotation %.2f deg, %ld stars, %.2f galaxies per star)\n",
           label, n, size, size, (unsigned long long)noisy.p.seed, noisy.p.seeing_arcsec,
           noisy.p.seeing_scatter, noisy.p.dither_arcsec, noisy.p.rotation_scatter_deg,
           noisy.p.nstars, noisy.p.galaxy_fraction);
    printf("  input FWHM true (px):  ");
    for (int k = 0; k < n; k++)
        printf(" %5.2f", fit.fwhm_true_px[k]);
    printf("\n  input FWHM fitted (px):");
    for (int k = 0; k < n; k++)
        printf(" %5.2f", fit.fwhm_fit_px[k]);
    printf("\n  PSF stars per input:   ");
    for (int k = 0; k < n; k++)
        printf(" %5ld", fit.nstars[k]);
    printf("\n  simulation %.1f s (both sets), extraction + PSF fit %.1f s (%d threads)\n", t_sim,
           fit.seconds, threads);
    printf("  %ld blank-sky positions, %d isolated unsaturated stars; PSF stamps %ldx%ld px\n",
           ms[0].npos, st.n, ps, ps);
    printf("  %-9s %8s %9s %9s %9s %8s %8s %8s %7s %7s %9s\n", "method", "PSF_FWHM", "MAGZERO",
           "fit_noise", "meas/pred", "nb_corr", "lim5_mag", "dlim", "SNR_med", "dSNR_%",
           "flux/true");
    for (int j = 0; j < NMETHODS; j++)
        printf("  %-9s %8.2f %9.4f %9.4g %9.3f %8.3f %8.3f %+8.3f %7.2f %+7.1f %9.4f\n",
               ms[j].name, ms[j].psf_fwhm_px, ms[j].noisy->zero_point, ms[j].noise,
               ms[j].noise / ms[j].predicted, ms[j].corr, ms[j].limit_mag,
               ms[j].limit_mag - ms[0].limit_mag, ms[j].snr, 100.0 * (ms[j].snr / ms[0].snr - 1.0),
               ms[j].flux_ratio);
    printf("  coadd wall time (noisy set, %d threads): mean %.2f s, clipped %.2f s, zogy %.2f s "
           "(zogy/true %.2f s)\n", threads, ms[0].wall_s, ms[1].wall_s, ms[2].wall_s, ms[3].wall_s);
    printf("  (zogy/true: zogy with each exposure's true PSF at its centre instead of the fitted "
           "model, a diagnostic)\n");
    fflush(stdout);

    for (int j = 0; j < NMETHODS; j++)
        method_free(&ms[j]);
    free(st.x);
    free(st.y);
    free(st.mag);
    free_scene(&sc);
    sk_grid_free(grid);
    free(psfs);
    free_fitted(&fit, n);
    free_set(&noisy);
    free_set(&clean);
    free(sets);
    free(user);
    return 0;
}
