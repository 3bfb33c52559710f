/* The depth of the proper coadd on resampled inputs, measured directly:
 * imsim exposures of one field with similar seeing (where zogy's gain over
 * the mean is smallest), dithered, with and without rotations, on their own
 * grid and on a 1.2x coarser one, each made
 * twice from one seed, with noise and noise-free. Every coadd is made of
 * both sets; noisy minus noise-free is the coadd's noise alone, so the
 * PSF-fit noise, the neighbour correlation and the SNR of the stars at
 * fixed flux are measured, not predicted. Checks: zogy at least as deep as
 * mean (coadd(1), zogy), its noise white and equal to what its weight map
 * says, its fluxes with its MAGZERO. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../coaddx_test.h"
#include "skystack/skystack.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/psf.h"
#include "../tap.h"
#include "../simset_test.h"
#include "coadd/coaddx_internal.h"
#include "extract/psf_internal.h"

#define NEXP 6
#define SZ 320
#define EDGE 24

/* One coadd of both sets: noise = noisy - noise-free. */
typedef struct pair {
    sk_coadd_result *noisy, *clean;
    float *psf;       /* the coadd's PSF at the centre, ps x ps */
    long ps;
    float *noise;
    uint8_t *full;    /* every input covers, away from the edges */
    const uint8_t *blank; /* no source within 12 px (the noise there is
                             the sky's alone: no source Poisson noise) */
} pair;

static void pair_free(pair *q)
{
    sk_coadd_result_free(q->noisy);
    sk_coadd_result_free(q->clean);
    free(q->psf);
    free(q->noise);
    free(q->full);
}

static void pair_noise(pair *q)
{
    size_t n = (size_t)SZ * SZ;
    q->noise = malloc(sizeof(float) * n);
    q->full = calloc(n, 1);
    for (size_t i = 0; i < n; i++) {
        long x = (long)(i % SZ), y = (long)(i / SZ);
        q->noise[i] = q->noisy->image->sci[i] - q->clean->image->sci[i];
        q->full[i] = q->noisy->nimg[i] == NEXP && q->noisy->image->weight[i] > 0.0f &&
                     x >= EDGE && y >= EDGE && x < SZ - EDGE && y < SZ - EDGE;
    }
}

/* PSF-fit noise: the rms of sum(P n)/sum(P^2) over every third pixel of
 * the fully covered blank sky, and what the weight map predicts for it with
 * white noise (sum(P^2/w)/sum(P^2)^2). */
static void psf_fit_noise(const pair *q, double *measured, double *predicted)
{
    long h = q->ps / 2;
    double s2 = 0.0, p2 = 0.0;
    long n = 0;
    double den = 0.0;
    for (long i = 0; i < q->ps * q->ps; i++)
        den += (double)q->psf[i] * q->psf[i];
    for (long y = EDGE + h; y < SZ - EDGE - h; y += 3)
        for (long x = EDGE + h; x < SZ - EDGE - h; x += 3) {
            if (!q->full[y * SZ + x] || !q->blank[y * SZ + x])
                continue;
            double f = psf_flux(q->noise, SZ, SZ, x, y, q->psf, q->ps);
            double v = 0.0;
            for (long j = 0; j < q->ps; j++)
                for (long i = 0; i < q->ps; i++) {
                    float wt = q->noisy->image->weight[(y - h + j) * SZ + x - h + i];
                    double pv = q->psf[j * q->ps + i];
                    v += wt > 0.0f ? pv * pv / wt : 0.0;
                }
            s2 += f * f;
            p2 += v / (den * den);
            n++;
        }
    *measured = sqrt(s2 / (double)n);
    *predicted = sqrt(p2 / (double)n);
}

/* Correlation of the noise with its right and upper neighbours. */
static double neighbour_corr(const pair *q)
{
    double sxx = 0.0, sxy = 0.0;
    for (long y = EDGE; y < SZ - EDGE - 1; y++)
        for (long x = EDGE; x < SZ - EDGE - 1; x++) {
            long i = y * SZ + x;
            if (!q->full[i] || !q->full[i + 1] || !q->full[i + SZ])
                continue;
            double a = q->noise[i];
            sxx += a * a;
            sxy += 0.5 * a * (q->noise[i + 1] + q->noise[i + SZ]);
        }
    return sxy / sxx;
}

typedef struct stars {
    double x[300], y[300], mag[300];
    int n;
} stars;

/* Isolated stars (nothing within 20 px) inside the fully covered region. */
static void find_stars(const sim_set *s, const sk_grid *g, const pair *q, stars *t)
{
    long ns = s->field->nsrc;
    double *x, *y;
    sim_set_source_pixels(s, g, &x, &y);
    t->n = 0;
    long h = q->ps / 2 + 1;
    for (long k = 0; k < ns && t->n < 300; k++) {
        if (s->field->src[k].type != SK_SIM_STAR)
            continue;
        long cx = lround(x[k]), cy = lround(y[k]);
        if (cx < h || cy < h || cx >= SZ - h || cy >= SZ - h || !q->full[cy * SZ + cx])
            continue;
        int iso = 1;
        for (long m = 0; m < ns && iso; m++)
            if (m != k && hypot(x[m] - x[k], y[m] - y[k]) < 20.0)
                iso = 0;
        if (!iso)
            continue;
        t->x[t->n] = x[k];
        t->y[t->n] = y[k];
        t->mag[t->n] = s->field->src[k].mag;
        t->n++;
    }
    free(x);
    free(y);
}

/* Pixels with no source within 12 px. */
static uint8_t *blank_mask(const sim_set *s, const sk_grid *g)
{
    long ns = s->field->nsrc;
    uint8_t *m = malloc((size_t)SZ * SZ);
    memset(m, 1, (size_t)SZ * SZ);
    for (long k = 0; k < ns; k++) {
        double ra = s->field->src[k].ra_deg, dec = s->field->src[k].dec_deg, x, y;
        if (sk_wcs_sky2pix(g->wcs, 1, &ra, &dec, &x, &y))
            continue;
        for (long yy = lround(y) - 12; yy <= lround(y) + 12; yy++)
            for (long xx = lround(x) - 12; xx <= lround(x) + 12; xx++)
                if (xx >= 0 && yy >= 0 && xx < SZ && yy < SZ && hypot(xx - x, yy - y) <= 12.0)
                    m[yy * SZ + xx] = 0;
    }
    return m;
}

/* Median over the stars of the PSF-fit SNR at fixed flux: signal from the
 * noise-free coadd, noise the measured PSF-fit noise. */
static double median_snr(const pair *q, const stars *t, double noise)
{
    double *v = malloc(sizeof(double) * (size_t)(t->n ? t->n : 1));
    for (int k = 0; k < t->n; k++)
        v[k] = psf_flux(q->clean->image->sci, SZ, SZ, lround(t->x[k]), lround(t->y[k]), q->psf,
                        q->ps) / noise;
    double m = t->n ? median_d(v, t->n) : 0.0;
    free(v);
    return m;
}

/* Median aperture magnitude (12 px, noise-free coadd, its MAGZERO) minus truth. */
static double median_dmag(const pair *q, const stars *t)
{
    double *d = malloc(sizeof(double) * (size_t)(t->n ? t->n : 1));
    for (int k = 0; k < t->n; k++)
        d[k] = -2.5 * log10(aperture_sum(q->clean->image->sci, SZ, SZ, t->x[k], t->y[k], 12.0)) +
               q->clean->zero_point - t->mag[k];
    double m = t->n ? median_d(d, t->n) : 0.0;
    free(d);
    return m;
}

/* grid_scale: the grid's pixels over the inputs' (1: the last input's own
 * grid; otherwise a north-up TAN grid on its centre). */
static void run_case(const char *label, const char *rotation, double grid_scale)
{
    const char *common[] = {"simulation.nexp=6", "simulation.width_px=320",
                            "simulation.height_px=320", "simulation.nstars=110",
                            "simulation.mag_min=17", "simulation.mag_max=21",
                            "simulation.galaxy_fraction=0", "simulation.moving_sources=0",
                            "simulation.transients=0", "simulation.seeing_scatter=0.04",
                            "simulation.psf_variation=0", "simulation.dither_arcsec=20",
                            "simulation.satellite_probability=0", "simulation.bad_columns=0",
                            "simulation.hot_pixels=0", "simulation.cosmic_rate_per_mpix_s=0",
                            "simulation.exptime_s=600", "simulation.saturation_adu=1e9",
                            "simulation.seed=11", rotation, "simulation.noise=true"};
    enum { NSETS = (int)(sizeof common / sizeof common[0]) };
    sim_set noisy, clean;
    const char *sets[NSETS];
    memcpy(sets, common, sizeof sets);
    if (sim_set_make(&noisy, sets, NSETS, SIM_PSF_CENTRE)) {
        ok(0, "%s: simulation", label);
        return;
    }
    sets[NSETS - 1] = "simulation.noise=false";
    if (sim_set_make(&clean, sets, NSETS, SIM_PSF_CENTRE)) {
        ok(0, "%s: noise-free simulation", label);
        sim_set_free(&noisy);
        return;
    }
    sk_grid *grid = NULL;
    if (grid_scale != 1.0) {
        double xc = 0.5 * (SZ - 1), yc = 0.5 * (SZ - 1), ra, dec;
        sk_wcs_pix2sky(noisy.e[NEXP - 1]->image->wcs, 1, &xc, &yc, &ra, &dec);
        is_int(sk_grid_tan(ra, dec, SZ, SZ, grid_scale * noisy.p.pixel_scale_arcsec, 0.0, &grid),
               0, "%s: a TAN grid of %.2fx the pixel scale", label, grid_scale);
    } else
    is_int(sk_grid_from_wcs(noisy.e[NEXP - 1]->image->wcs, SZ, SZ, &grid), 0,
           "%s: grid of the last input", label);
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.threads = 2;
    p.combine.method = SK_COMBINE_MEAN;
    const sk_psf *psfs[NEXP];
    for (int k = 0; k < NEXP; k++)
        psfs[k] = noisy.psf[k];

    /* mean: the engine, PSF = its combine-weighted mean of the inputs' */
    pair mean, zogy;
    memset(&mean, 0, sizeof mean);
    memset(&zogy, 0, sizeof zogy);
    is_int(sk_coadd_run(noisy.in, NEXP, grid, &p, &mean.noisy), 0, "%s: mean coadd", label);
    is_int(sk_coadd_run(clean.in, NEXP, grid, &p, &mean.clean), 0, "%s: mean, noise-free", label);
    sk_coaddx_params x;
    sk_coaddx_params_default(&x);
    x.method = SK_COADDX_ZOGY;
    sk_psf *zpsf = NULL, *zpsf2 = NULL;
    is_int(sk_coaddx_run(noisy.in, NEXP, psfs, grid, &p, &x, &zogy.noisy, &zpsf), 0,
           "%s: zogy coadd", label);
    is_int(sk_coaddx_run(clean.in, NEXP, psfs, grid, &p, &x, &zogy.clean, &zpsf2), 0,
           "%s: zogy, noise-free", label);
    if (!mean.noisy || !mean.clean || !zogy.noisy || !zogy.clean || !zpsf) {
        tap_diag("%s", sk_errmsg());
        goto done;
    }
    long ps = sk_psf_stamp_size(zpsf);
    double *d = malloc(sizeof(double) * (size_t)(ps * ps));
    zogy.ps = mean.ps = ps;
    zogy.psf = malloc(sizeof(float) * (size_t)(ps * ps));
    mean.psf = calloc((size_t)(ps * ps), sizeof(float));
    sk_psf_image(zpsf, SZ / 2, SZ / 2, (int)ps, d);
    for (long i = 0; i < ps * ps; i++)
        zogy.psf[i] = (float)d[i];
    free(d);
    float *gs = malloc(sizeof(float) * (size_t)(ps * ps));
    double wsum = 0.0;
    for (int k = 0; k < NEXP; k++) {
        sk_grid_psf gp = {noisy.psf[k], noisy.e[k]->image->wcs, grid->wcs};
        sk_grid_psf_stamp(&gp, SZ / 2, SZ / 2, ps, gs);
        double sc = pow(10.0, 0.4 * (mean.noisy->zero_point - noisy.e[k]->info.magzero));
        double skyvar = noisy.e[k]->info.sky_adu / noisy.p.gain +
                        noisy.p.read_noise_e * noisy.p.read_noise_e / (noisy.p.gain * noisy.p.gain);
        double wk = 1.0 / (skyvar * sc * sc);
        for (long i = 0; i < ps * ps; i++)
            mean.psf[i] += (float)(wk * gs[i]);
        wsum += wk;
    }
    for (long i = 0; i < ps * ps; i++)
        mean.psf[i] = (float)(mean.psf[i] / wsum);
    free(gs);
    pair_noise(&mean);
    pair_noise(&zogy);
    uint8_t *blank = blank_mask(&noisy, grid);
    mean.blank = zogy.blank = blank;

    double nm, pm, nz, pz;
    psf_fit_noise(&mean, &nm, &pm);
    psf_fit_noise(&zogy, &nz, &pz);
    double fr = pow(10.0, 0.4 * (zogy.noisy->zero_point - mean.noisy->zero_point));
    double lim_m = mean.noisy->zero_point - 2.5 * log10(5.0 * nm);
    double lim_z = zogy.noisy->zero_point - 2.5 * log10(5.0 * nz);
    tap_diag("%s: PSF-fit noise measured / white-noise prediction from the weight: mean %.3f, "
             "zogy %.3f", label, nm / pm, nz / pz);
    tap_diag("%s: 5-sigma PSF-fit limit from the measured noise: mean %.3f, zogy %.3f (%+.3f mag); "
             "F_R %.5g", label, lim_m, lim_z, lim_z - lim_m, fr);
    double rz = neighbour_corr(&zogy), rm = neighbour_corr(&mean);
    tap_diag("%s: neighbour correlation of the noise: mean %.3f, zogy %.3f", label, rm, rz);

    stars t;
    find_stars(&noisy, grid, &zogy, &t);
    double snr_m = median_snr(&mean, &t, nm), snr_z = median_snr(&zogy, &t, nz);
    tap_diag("%s: %d isolated stars, median PSF-fit SNR at fixed flux: mean %.1f, zogy %.1f "
             "(%+.1f %%)", label, t.n, snr_m, snr_z, 100.0 * (snr_z / snr_m - 1.0));
    ok(lim_z >= lim_m, "%s: zogy at least as deep as mean (%+.3f mag)", label, lim_z - lim_m);
    if (grid_scale == 1.0) { /* the coarser grid's full coverage holds too few stars */
        ok(t.n >= 5, "%s: enough isolated stars (%d)", label, t.n);
        ok(snr_z >= snr_m, "%s: zogy SNR at fixed flux >= mean's (%+.1f %%)", label,
           100.0 * (snr_z / snr_m - 1.0));
    }
    is_near(nz / pz, 1.0, 0.05, "%s: zogy PSF-fit noise is what its weight map says (%.3f)",
            label, nz / pz);
    ok(fabs(rz) < 0.05, "%s: zogy noise is white (neighbour correlation %.3f)", label, rz);
    double vc = 0.0;
    sk_header_get_double(zogy.noisy->image->header, "VARCORR", &vc);
    is_near(vc, (nz / pz) * (nz / pz), 0.1, "%s: zogy VARCORR %.3f matches the measured "
            "PSF-fit / per-pixel variance ratio %.3f", label, vc, (nz / pz) * (nz / pz));
    double dmz = median_dmag(&zogy, &t), dmm = median_dmag(&mean, &t);
    tap_diag("%s: noise-free aperture magnitudes minus truth: mean %.4f, zogy %.4f", label, dmm,
             dmz);
    ok(fabs(dmz - dmm) < 0.0054, "%s: zogy fluxes with its MAGZERO within 0.5 %% of the mean's "
       "(%+.4f mag)", label, dmz - dmm);
    ok(fabs(dmz) < 0.0216, "%s: and within 2 %% of the truth in a 12 px aperture (%+.4f mag)",
       label, dmz);

    free(blank);
done:
    pair_free(&mean);
    pair_free(&zogy);
    sk_psf_free(zpsf);
    sk_psf_free(zpsf2);
    sk_grid_free(grid);
    sim_set_free(&noisy);
    sim_set_free(&clean);
}

int main(void)
{
    tap_plan(37);
    sk_log_set_level(SK_LOG_WARN);
    run_case("dithers", "simulation.rotation_scatter_deg=0", 1.0);
    run_case("dithers and rotations", "simulation.rotation_scatter_deg=1.5", 1.0);
    run_case("coarser grid", "simulation.rotation_scatter_deg=0.5", 1.2);
    return tap_done();
}
