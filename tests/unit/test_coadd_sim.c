/* test_coadd_sim.c: coadds of imsim exposures against their truth: star
 * fluxes at the common zero point, astrometry, blank-sky noise against the
 * weight map, the depth gain of equal exposures, and cosmic rays and
 * satellite trails removed by clipped and median coadds (the same
 * exposures without them have the same noise, so the difference is the
 * artifacts' residual alone). */
#include "../tap.h"
#include "skystack/coadd.h"
#include "skystack/config.h"
#include "skystack/psf.h"
#include "skystack/error.h"
#include "skystack/sim.h"
#include "skystack/wcs.h"
#include "coadd/coadd_internal.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

#define NEXP 5
#define SIZE 600

static sk_sim_params params;
static sk_sim_field *field;

/* The exposures of one variant of the simulation. */
static int expose_all(const char *const *extra, int nextra, sk_sim_exposure **out)
{
    const char *base[] = {"simulation.nexp=5", "simulation.cosmic_rate_per_mpix_s=3", "simulation.width_px=600", "simulation.height_px=600",
                          "simulation.nstars=60", "simulation.mag_min=17", "simulation.mag_max=19", "simulation.galaxy_fraction=0",
                          "simulation.moving_sources=0", "simulation.transients=0",
                          "simulation.sky_scatter_mag=0", "simulation.transparency_scatter_mag=0",
                          "simulation.extinction_mag_per_airmass=0", "simulation.dither_arcsec=8",
                          "simulation.seeing_scatter=0.1", "simulation.seed=5"};
    char *sets[32];
    int ns = 0;
    for (size_t k = 0; k < sizeof base / sizeof base[0]; k++)
        sets[ns++] = (char *)base[k];
    for (int k = 0; k < nextra; k++)
        sets[ns++] = (char *)extra[k];
    sk_config *cfg = NULL;
    int rc = sk_config_load(NULL, sets, ns, &cfg);
    rc = rc ? rc : sk_sim_params_from_config(cfg, &params);
    sk_config_free(cfg);
    if (!rc && !field)
        rc = sk_sim_field_make(&params, &field);
    for (int k = 0; !rc && k < NEXP; k++)
        rc = sk_sim_expose(&params, field, k, 2, &out[k]);
    if (rc)
        tap_diag("imsim: %s", sk_errmsg());
    return rc;
}

/* Coadd the exposures with their true sky and zero points. */
static sk_coadd_result *coadd_of(sk_sim_exposure **e, float **sky, int method, const sk_grid *g)
{
    sk_coadd_input in[NEXP];
    for (int k = 0; k < NEXP; k++) {
        sk_coadd_input_init(&in[k]);
        in[k].image = e[k]->image;
        in[k].background = sky[k];
        in[k].zero_point = e[k]->info.magzero;
        in[k].gain = params.gain;
    }
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.combine.method = method;
    p.zero_point = 30.0;
    p.threads = 2;
    sk_coadd_result *r = NULL;
    if (sk_coadd_run(in, NEXP, g, &p, &r) != SK_OK)
        tap_diag("coadd: %s", sk_errmsg());
    return r;
}

static float *sky_map(const sk_sim_exposure *e)
{
    float *s = malloc(SIZE * SIZE * sizeof *s);
    for (long y = 0; y < SIZE; y++)
        for (long x = 0; x < SIZE; x++)
            s[y * SIZE + x] = (float)sk_sim_sky_adu(&e->info, (double)x, (double)y);
    return s;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 1.4826 x median absolute deviation from the median */
static double robust_sigma(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    double med = v[n / 2];
    for (long i = 0; i < n; i++)
        v[i] = fabs(v[i] - med);
    qsort(v, (size_t)n, sizeof *v, cmp);
    return 1.4826 * v[n / 2];
}

/* Noise of Gaussian-window sums (sigma 3 px) at fixed sky positions. */
static double window_noise(const float *v, const float *w, const int32_t *nimg, int need, long W,
                           long H, const sk_wcs *at, const sk_wcs *own)
{
    const double sig = 3.0;
    const long R = 12;
    double s2 = 0;
    long n = 0;
    for (double cy = 40; cy < SIZE - 40; cy += 8)
        for (double cx = 40; cx < SIZE - 40; cx += 8) {
            double ra, dec, x0, y0;
            sk_wcs_pix2sky(at, 1, &cx, &cy, &ra, &dec);
            sk_wcs_sky2pix(own, 1, &ra, &dec, &x0, &y0);
            long ix = (long)floor(x0 + 0.5), iy = (long)floor(y0 + 0.5);
            double sum = 0;
            int full = 1;
            for (long y = iy - R; y <= iy + R && full; y++)
                for (long x = ix - R; x <= ix + R; x++) {
                    if (x < 0 || y < 0 || x >= W || y >= H || !(w[y * W + x] > 0) ||
                        (nimg && nimg[y * W + x] < need)) {
                        full = 0;
                        break;
                    }
                    sum += exp(-((x - x0) * (x - x0) + (y - y0) * (y - y0)) / (2 * sig * sig)) * v[y * W + x];
                }
            if (full) {
                s2 += sum * sum;
                n++;
            }
        }
    return n > 100 ? sqrt(s2 / n) : NAN;
}

int main(void)
{
    tap_plan(18);
    sk_sim_exposure *noisy[NEXP] = {0}, *model[NEXP] = {0}, *dirty[NEXP] = {0};
    const char *clean_sets[] = {"simulation.cosmic_rate_per_mpix_s=0", "simulation.satellite_probability=0",
                                "simulation.bad_columns=0", "simulation.hot_pixels=0"};
    const char *model_sets[] = {"simulation.cosmic_rate_per_mpix_s=0", "simulation.satellite_probability=0",
                                "simulation.bad_columns=0", "simulation.hot_pixels=0",
                                "simulation.noise=false"};
    const char *art_sets[] = {"simulation.satellite_probability=1", "simulation.bad_columns=0",
                              "simulation.hot_pixels=0"};
    sk_sim_exposure *art[NEXP] = {0};
    int rc = expose_all(clean_sets, 4, noisy);
    rc = rc ? rc : expose_all(model_sets, 5, model);
    rc = rc ? rc : expose_all(clean_sets, 4, dirty);
    rc = rc ? rc : expose_all(art_sets, 3, art);
    /* cosmic rays (many: 30 times imsim's default rate) and a satellite
     * trail in exposure 2 only; the others as the clean set */
    if (!rc) {
        sk_sim_exposure_free(dirty[2]);
        dirty[2] = art[2];
        art[2] = NULL;
    }
    for (int k = 0; k < NEXP; k++)
        sk_sim_exposure_free(art[k]);
    ok(rc == SK_OK, "imsim: %d exposures, noisy, noiseless, and with cosmic rays and a trail", NEXP);
    if (rc)
        return tap_done();
    ok(dirty[2]->info.satellite && !dirty[1]->info.satellite && dirty[2]->cosmics->nrows > 300 &&
       dirty[1]->cosmics->nrows == 0, "exposure 2: a trail and %ld cosmic-ray pixels",
       dirty[2]->cosmics->nrows);
    ok(model[3]->info.psf.fwhm_px == noisy[3]->info.psf.fwhm_px &&
       dirty[3]->info.pointing_ra_deg == noisy[3]->info.pointing_ra_deg,
       "the three variants share their conditions");
    float *sky[NEXP];
    for (int k = 0; k < NEXP; k++)
        sky[k] = sky_map(noisy[k]);
    sk_grid *g;
    sk_grid_from_wcs(noisy[NEXP - 1]->image->wcs, SIZE, SIZE, &g);

    sk_coadd_result *cm = coadd_of(model, sky, SK_COMBINE_MEAN, g);
    sk_coadd_result *nm = coadd_of(noisy, sky, SK_COMBINE_MEAN, g);
    sk_coadd_result *nc = coadd_of(noisy, sky, SK_COMBINE_CLIPPED, g);
    sk_coadd_result *nmed = coadd_of(noisy, sky, SK_COMBINE_MEDIAN, g);
    sk_coadd_result *dm = coadd_of(dirty, sky, SK_COMBINE_MEAN, g);
    sk_coadd_result *dc = coadd_of(dirty, sky, SK_COMBINE_CLIPPED, g);
    sk_coadd_result *dmed = coadd_of(dirty, sky, SK_COMBINE_MEDIAN, g);
    ok(cm && nm && nc && nmed && dm && dc && dmed, "coadds made");
    if (!(cm && nm && nc && nmed && dm && dc && dmed))
        return tap_done();

    /* stars: bright, unsaturated, unblended, covered by every input */
    const sk_table *t = noisy[NEXP - 1]->truth;
    sk_column *ctype = sk_table_column(t, "type"), *cra = sk_table_column(t, "ra"),
              *cdec = sk_table_column(t, "dec"), *cmag = sk_table_column(t, "mag"),
              *csat = sk_table_column(t, "saturated"), *cbl = sk_table_column(t, "blended");
    double fwhm_max = 0;
    for (int k = 0; k < NEXP; k++)
        fwhm_max = fmax(fwhm_max, noisy[k]->info.psf.fwhm_px * (1 + params.psf_variation));
    double r_ap = (params.psf_radius_fwhm + 0.5) * fwhm_max;
    double worst_model = 0, worst_pos = 0;
    double ratios[400];
    int nstar = 0;
    for (long i = 0; i < t->nrows; i++) {
        double mag = sk_column_get(cmag, i, 0);
        if (sk_column_get(ctype, i, 0) != SK_SIM_STAR || sk_column_get(csat, i, 0) ||
            sk_column_get(cbl, i, 0))
            continue;
        double ra = sk_column_get(cra, i, 0), dec = sk_column_get(cdec, i, 0), x, y;
        sk_wcs_sky2pix(g->wcs, 1, &ra, &dec, &x, &y);
        /* no other source's light (to its truncation radius) in the aperture */
        int alone = 1;
        for (long j = 0; j < t->nrows && alone; j++) {
            if (j == i)
                continue;
            double rj = sk_column_get(cra, j, 0), dj = sk_column_get(cdec, j, 0), xj, yj;
            sk_wcs_sky2pix(g->wcs, 1, &rj, &dj, &xj, &yj);
            alone = hypot(xj - x, yj - y) > r_ap + params.psf_radius_fwhm * fwhm_max;
        }
        if (!alone)
            continue;
        int full = 1;
        double fm = 0, fn = 0, sx = 0, sy = 0, s = 0;
        for (long yy = (long)floor(y - r_ap); yy <= (long)ceil(y + r_ap) && full; yy++)
            for (long xx = (long)floor(x - r_ap); xx <= (long)ceil(x + r_ap); xx++) {
                double d2 = (xx - x) * (xx - x) + (yy - y) * (yy - y);
                if (d2 > r_ap * r_ap)
                    continue;
                if (xx < 0 || yy < 0 || xx >= SIZE || yy >= SIZE || cm->nimg[yy * SIZE + xx] < NEXP) {
                    full = 0;
                    break;
                }
                fm += cm->image->sci[yy * SIZE + xx];
                fn += nm->image->sci[yy * SIZE + xx];
                if (d2 < 4.0 * fwhm_max * fwhm_max) {
                    s += cm->image->sci[yy * SIZE + xx];
                    sx += cm->image->sci[yy * SIZE + xx] * xx;
                    sy += cm->image->sci[yy * SIZE + xx] * yy;
                }
            }
        if (!full || nstar >= 400)
            continue;
        double truth = pow(10.0, -0.4 * (mag - 30.0));
        worst_model = fmax(worst_model, fabs(fm / truth - 1));
        worst_pos = fmax(worst_pos, hypot(sx / s - x, sy / s - y));
        ratios[nstar++] = fn / truth;
    }
    ok(nstar >= 8, "%d isolated stars (mag 17-19) covered by all %d inputs", nstar, NEXP);
    ok(worst_model < 0.005, "noiseless coadd: every star's flux at MAGZERO 30 within %.2f%% of truth (< 0.5%%)",
       100 * worst_model);
    ok(worst_pos < 0.05, "astrometry: centroids within %.3f px of the true positions (< 0.05)", worst_pos);
    /* the coadd PSF (from the inputs' true PSFs at their centres) against
     * the stars of the noiseless coadd: FWHM within 3 % */
    sk_psf *ipsf[NEXP];
    const sk_wcs *iw[NEXP];
    long iwd[NEXP], iht[NEXP];
    double iwt[NEXP];
    const int ss = 41;
    double *stamp = malloc(ss * ss * sizeof *stamp);
    for (int k = 0; k < NEXP; k++) {
        sk_sim_psf sp;
        sk_sim_psf_at(&params, &noisy[k]->info, SIZE, SIZE, 0.5 * (SIZE - 1), 0.5 * (SIZE - 1), &sp);
        memset(stamp, 0, ss * ss * sizeof *stamp);
        sk_sim_psf_add(&sp, 1.0, ss / 2, ss / 2, stamp, ss, ss, 0, ss);
        ipsf[k] = NULL;
        sk_psf_from_stamp(stamp, ss, SIZE, SIZE, &ipsf[k]);
        iw[k] = noisy[k]->image->wcs;
        iwd[k] = iht[k] = SIZE;
        iwt[k] = nm->info[k].mean_cweight;
    }
    sk_psf *cpsf = NULL;
    rc = sk_coadd_psf(NEXP, (const struct sk_psf *const *)ipsf, iw, iwd, iht, iwt, g, &cpsf);
    ok(rc == SK_OK && cpsf && cpsf->degree == 2, "coadd PSF made (degree %d)", cpsf ? cpsf->degree : -1);
    double worst_fwhm = 0;
    int nf = 0;
    for (long i = 0; rc == SK_OK && i < t->nrows && nf < 6; i++) {
        if (sk_column_get(ctype, i, 0) != SK_SIM_STAR || sk_column_get(csat, i, 0))
            continue;
        double ra = sk_column_get(cra, i, 0), dec = sk_column_get(cdec, i, 0), x, y;
        sk_wcs_sky2pix(g->wcs, 1, &ra, &dec, &x, &y);
        long ix = lround(x), iy = lround(y);
        if (ix < ss || iy < ss || ix >= SIZE - ss || iy >= SIZE - ss || cm->nimg[iy * SIZE + ix] < NEXP)
            continue;
        int alone = 1;
        for (long j = 0; j < t->nrows && alone; j++) {
            double rj = sk_column_get(cra, j, 0), dj = sk_column_get(cdec, j, 0), xj, yj;
            sk_wcs_sky2pix(g->wcs, 1, &rj, &dj, &xj, &yj);
            alone = j == i || hypot(xj - x, yj - y) > ss;
        }
        if (!alone)
            continue;
        for (int v = 0; v < ss; v++)
            for (int u = 0; u < ss; u++)
                stamp[v * ss + u] = cm->image->sci[(iy - ss / 2 + v) * SIZE + ix - ss / 2 + u];
        sk_psf *star = NULL;
        if (sk_psf_from_stamp(stamp, ss, SIZE, SIZE, &star) != SK_OK)
            continue;
        double f_star = sk_psf_fwhm_at(star, 0, 0), f_model = sk_psf_fwhm_at(cpsf, x, y);
        worst_fwhm = fmax(worst_fwhm, fabs(f_model / f_star - 1));
        nf++;
        sk_psf_free(star);
    }
    ok(nf >= 3 && worst_fwhm < 0.03, "coadd PSF FWHM within %.1f%% of %d stars' on the coadd (< 3%%)",
       100 * worst_fwhm, nf);
    sk_psf_free(cpsf);
    for (int k = 0; k < NEXP; k++)
        sk_psf_free(ipsf[k]);
    free(stamp);

    double sum = 0;
    for (int k = 0; k < nstar; k++)
        sum += ratios[k];
    ok(fabs(sum / nstar - 1) < 0.005, "noisy coadd: mean flux ratio to truth %.4f (within 0.5%%)", sum / nstar);

    /* noise: the noisy minus the noiseless mean coadd, against the weight map */
    long npix = SIZE * SIZE, n = 0;
    double *chi = malloc((size_t)npix * sizeof *chi);
    float *diff = malloc((size_t)npix * sizeof *diff);
    for (long i = 0; i < npix; i++) {
        diff[i] = nm->image->sci[i] - cm->image->sci[i];
        if (nm->nimg[i] == NEXP)
            chi[n++] = diff[i] * sqrt(nm->image->weight[i]);
    }
    double sig = robust_sigma(chi, n);
    ok(n > 50000 && fabs(sig - 1) < 0.05, "blank-sky noise / weight-map prediction = %.4f on %ld px (1 within 5%%)",
       sig, n);
    free(chi);

    /* depth: Gaussian-window noise of one exposure (its own pixels) and of the coadd */
    float *one = malloc((size_t)npix * sizeof *one);
    for (long i = 0; i < npix; i++)
        one[i] = noisy[0]->image->sci[i] - model[0]->image->sci[i];
    double s1 = window_noise(one, noisy[0]->image->weight, NULL, 0, SIZE, SIZE, g->wcs, noisy[0]->image->wcs);
    double s1zp = s1 * pow(10.0, 0.4 * (30.0 - noisy[0]->info.magzero));
    double sN = window_noise(diff, nm->image->weight, nm->nimg, NEXP, SIZE, SIZE, g->wcs, g->wcs);
    double want = 2.5 * log10(sqrt((double)NEXP));
    double gain = 2.5 * log10(s1zp / sN);
    ok(fabs(gain - want) < 0.05, "mean: depth gain of %d equal exposures %.3f mag vs 2.5 log10(sqrt %d) = %.3f",
       NEXP, gain, NEXP, want);
    for (long i = 0; i < npix; i++)
        diff[i] = nc->image->sci[i] - cm->image->sci[i];
    double sC = window_noise(diff, nc->image->weight, nc->nimg, NEXP - 1, SIZE, SIZE, g->wcs, g->wcs);
    double gainc = 2.5 * log10(s1zp / sC);
    ok(fabs(gainc - want) < 0.05, "clipped: depth gain %.3f mag vs %.3f", gainc, want);
    free(one);
    free(diff);

    /* artifacts: pixels of the coadd that cosmic rays and trails touch */
    unsigned char *touched = calloc((size_t)npix, 1);
    long ntouch = 0;
    for (int k = 0; k < NEXP; k++) {
        const sk_table *c = dirty[k]->cosmics;
        sk_column *cx = sk_table_column(c, "x"), *cy = sk_table_column(c, "y");
        long m = c->nrows;
        const sk_sim_expinfo *in = &dirty[k]->info;
        long ntrail = in->satellite ? (long)(2 * hypot(in->sat_x1 - in->sat_x0, in->sat_y1 - in->sat_y0)) : 0;
        for (long i = 0; i < m + ntrail; i++) {
            double x, y, ra, dec, ox, oy;
            if (i < m) {
                x = sk_column_get(cx, i, 0);
                y = sk_column_get(cy, i, 0);
            } else {
                double f = (double)(i - m) / (double)ntrail;
                x = in->sat_x0 + f * (in->sat_x1 - in->sat_x0);
                y = in->sat_y0 + f * (in->sat_y1 - in->sat_y0);
            }
            sk_wcs_pix2sky(dirty[k]->image->wcs, 1, &x, &y, &ra, &dec);
            sk_wcs_sky2pix(g->wcs, 1, &ra, &dec, &ox, &oy);
            int reach = i < m ? 3 : 5;
            for (long yy = (long)oy - reach; yy <= (long)oy + reach; yy++)
                for (long xx = (long)ox - reach; xx <= (long)ox + reach; xx++)
                    if (xx >= 0 && yy >= 0 && xx < SIZE && yy < SIZE && !touched[yy * SIZE + xx]) {
                        touched[yy * SIZE + xx] = 1;
                        ntouch++;
                    }
        }
    }
    ok(ntouch > 3000, "%ld coadd pixels touched by cosmic rays and the trail", ntouch);
    double gain_eff = 0;
    sk_header_get_double(nm->image->header, "GAIN", &gain_eff);
    struct {
        const char *name;
        sk_coadd_result *clean, *art;
    } cases[3] = {{"mean", nm, dm}, {"clipped", nc, dc}, {"median", nmed, dmed}};
    /* on the sky the clipping tolerance is the noise; on sources it also
     * allows for seeing differences (spread and clip_ampfrac), so there an
     * artifact of that size survives: counted apart */
    long on_src = 0, on_src_above = 0;
    for (int m = 0; m < 3; m++) {
        double worst = 0, mean = 0;
        long cnt = 0, above = 0;
        for (long i = 0; i < npix; i++) {
            if (!touched[i] || cases[m].clean->nimg[i] < NEXP - 1 || cases[m].art->nimg[i] < NEXP - 2)
                continue;
            if (cm->image->sci[i] * sqrt(cases[m].clean->image->weight[i]) > 1.0) {
                if (m == 1) {
                    double var = 1.0 / cases[m].clean->image->weight[i] + cm->image->sci[i] / gain_eff;
                    on_src++;
                    on_src_above += fabs(cases[m].art->image->sci[i] - cases[m].clean->image->sci[i]) >
                                    3 * sqrt(var);
                }
                continue;
            }
            double var = 1.0 / cases[m].clean->image->weight[i] +
                         fmax(cm->image->sci[i], 0.0) / gain_eff;
            double r = (cases[m].art->image->sci[i] - cases[m].clean->image->sci[i]) / sqrt(var);
            if (fabs(r) > worst && getenv("SK_DEBUG_COADD"))
                tap_diag("%s: worst now %.1f at (%ld, %ld): clean %g art %g nimg %d/%d model %g",
                         cases[m].name, r, i % SIZE, i / SIZE, cases[m].clean->image->sci[i],
                         cases[m].art->image->sci[i], cases[m].clean->nimg[i], cases[m].art->nimg[i],
                         cm->image->sci[i]);
            worst = fmax(worst, fabs(r));
            mean += r;
            above += fabs(r) > 3;
            cnt++;
        }
        mean /= cnt;
        if (m == 0)
            ok(worst > 10, "mean: the artifacts show (largest residual %.0f sigma)", worst);
        else if (m == 1)
            ok(above * 1000 < cnt && worst < 5 && fabs(mean) < 0.1,
               "clipped: artifacts gone on the sky: %ld of %ld pixels differ from the coadd without "
               "them by more than 3 sigma (< 0.1%%; where clipping now keeps or drops another "
               "input), largest %.2f, mean %.3f sigma", above, cnt, worst, mean);
        else
            ok(above * 100 < cnt && fabs(mean) < 0.5,
               "median: %ld of %ld artifact pixels above 3 sigma (< 1%%), mean residual %.2f sigma "
               "(an order-statistic shift, no artifact)", above, cnt, mean);
    }
    ok(on_src > 100 && on_src_above * 20 < on_src,
       "clipped: on sources %ld of %ld artifact pixels keep a residual above 3 sigma (< 5%%)",
       on_src_above, on_src);
    free(touched);
    sk_coadd_result *all[7] = {cm, nm, nc, nmed, dm, dc, dmed};
    for (int k = 0; k < 7; k++)
        sk_coadd_result_free(all[k]);
    for (int k = 0; k < NEXP; k++) {
        sk_sim_exposure_free(noisy[k]);
        sk_sim_exposure_free(model[k]);
        sk_sim_exposure_free(dirty[k]);
        free(sky[k]);
    }
    sk_sim_field_free(field);
    sk_grid_free(g);
    return tap_done();
}
