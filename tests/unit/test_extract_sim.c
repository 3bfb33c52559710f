/* test_extract_sim.c: extraction checked against imsim truth (the accuracy figures of extract(1)):
 * completeness, spurious detections on blank sky, windowed centroids,
 * aperture-flux bias and error honesty, background level and rms, and
 * cosmic rays never passing for clean sources. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/sim.h"
#include "../tap.h"
#include "numeric/select.h"
#include "sim/sim_internal.h"

typedef struct {
    double x, y, flux, fwhm, snr;
    int type, saturated, blended;
} truth_row;

static sk_config *config_with(char *const *sets, int n)
{
    sk_config *c = NULL;
    if (sk_config_load(NULL, sets, n, &c) != SK_OK) {
        printf("# config: %s\n", sk_errmsg());
        return NULL;
    }
    return c;
}

static int make_exposure(char *const *sets, int nsets, int index, sk_sim_params *p, sk_sim_exposure **e)
{
    sk_config *c = config_with(sets, nsets);
    if (!c)
        return 1;
    sk_sim_field *f = NULL;
    int rc = sk_sim_params_from_config(c, p);
    rc = rc ? rc : sk_sim_field_make(p, &f);
    rc = rc ? rc : sk_sim_expose(p, f, index, 2, e);
    if (rc)
        printf("# imsim: %s\n", sk_errmsg());
    sk_sim_field_free(f);
    sk_config_free(c);
    return rc;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of 1 / sqrt(w) over the pixels of positive weight: the weight
 * of the middle rank from the top, by selection. */
static double median_inv_sqrt(const float *w, long n)
{
    float *v = malloc(sizeof *v * (size_t)(n + 1));
    long m = 0;
    for (long i = 0; v && i < n; i++)
        if (w[i] > 0)
            v[m++] = w[i];
    double r = m ? 1.0 / sqrt((double)sk_select_kth(v, m, m - 1 - m / 2)) : 0;
    free(v);
    return r;
}

static const sk_source *nearest(const sk_source_list *l, double x, double y, double rmax)
{
    const sk_source *best = NULL;
    double bd = rmax * rmax;
    for (long k = 0; k < l->n; k++) {
        double dx = l->src[k].xwin - x, dy = l->src[k].ywin - y, d = dx * dx + dy * dy;
        if (d <= bd) {
            bd = d;
            best = &l->src[k];
        }
    }
    return best;
}

/* Statistics gathered over several exposures of one field. */
static struct {
    long n10, f10, n50, nratio, npull, ndet, unmatched_clean, cr_clean, cr_pixels;
    double sdx2, sum_meas, sum_truth;
    double pulls[4096];
} acc;

/* Exposure `index` of a realistic field (galaxies, cosmic rays, hot
 * pixels, bad columns) for detection and background, or, with
 * `photometry`, of a field of stars only, without defects, for the
 * photometric and astrometric accuracy (whose truth is then exact). */
static void one_exposure(int index, int photometry)
{
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=200",
                    "simulation.mag_max=22", "simulation.seed=11", "simulation.nexp=8",
                    "simulation.satellite_probability=0", "simulation.cosmic_rate_per_mpix_s=0.3",
                    "simulation.galaxy_fraction=0", "simulation.hot_pixels=0", "simulation.bad_columns=0",
                    "simulation.cosmic_rate_per_mpix_s=0"};
    sk_sim_params sp;
    sk_sim_exposure *e = NULL;
    if (make_exposure(sets, photometry ? 12 : 8, index, &sp, &e)) {
        ok(0, "imsim exposure %d", index);
        return;
    }
    sk_image *img = e->image;
    long w = img->width, h = img->height, n = e->truth->nrows;
    sk_config *c = config_with(NULL, 0);
    sk_extract_params p;
    sk_extract_params_default(&p);
    int prc = c ? sk_extract_params_from_json(c->root, &p) : SK_EINPUT;
    sk_config_free(c);
    sk_extract_result *r = NULL;
    ok(prc == SK_OK && sk_extract_run(img, &p, 2, &r) == SK_OK,
       "%s exposure %d: extraction with the default configuration (%ld truth rows)",
       photometry ? "stars-only" : "realistic", index, n);
    if (!r) {
        sk_sim_exposure_free(e);
        sk_extract_params_clear(&p);
        return;
    }
    const sk_source_list *l = r->sources;
    if (index == 0)
        is_near(r->gain, sp.gain, 1e-9, "gain taken from the header (%g)", r->gain);

    /* background against the truth */
    double rms_true = median_inv_sqrt(img->weight, w * h);
    is_near(r->background->median_rms / rms_true, 1, 0.02,
            "exposure %d: background rms %.3f within 2 %% of truth %.3f", index,
            r->background->median_rms, rms_true);
    double sd = 0;
    long nd = 0;
    for (long y = 0; y < h; y++)
        for (long x = 0; x < w; x++) {
            sd += r->background->level[y * w + x] - sk_sim_sky_adu(&e->info, (double)x, (double)y);
            nd++;
        }
    double bias_sigma = sd / nd / rms_true;
    ok(fabs(bias_sigma) <= 0.1, "exposure %d: background level bias %.4f sigma (gradient %.3g, %.3g ADU/px)",
       index, bias_sigma, e->info.sky_grad_x, e->info.sky_grad_y);

    /* truth with optimal SNR for the exposure's Moffat PSF */
    truth_row *t = calloc((size_t)n, sizeof *t);
    sk_column *cx = sk_table_column(e->truth, "x"), *cy = sk_table_column(e->truth, "y");
    sk_column *cf = sk_table_column(e->truth, "flux"), *cw = sk_table_column(e->truth, "fwhm");
    sk_column *ct = sk_table_column(e->truth, "type"), *cs = sk_table_column(e->truth, "saturated");
    sk_column *cb = sk_table_column(e->truth, "blended");
    double beta = sp.moffat_beta;
    for (long k = 0; k < n; k++) {
        t[k].x = sk_column_get(cx, k, 0);
        t[k].y = sk_column_get(cy, k, 0);
        t[k].flux = sk_column_get(cf, k, 0);
        t[k].fwhm = sk_column_get(cw, k, 0);
        t[k].type = (int)sk_column_get(ct, k, 0);
        t[k].saturated = (int)sk_column_get(cs, k, 0);
        t[k].blended = (int)sk_column_get(cb, k, 0);
        double alpha = t[k].fwhm / (2 * sqrt(pow(2, 1 / beta) - 1));
        double nea = M_PI * alpha * alpha * (2 * beta - 1) / ((beta - 1) * (beta - 1));
        t[k].snr = t[k].flux / sqrt(t[k].flux / sp.gain + nea * rms_true * rms_true);
    }
    for (long k = 0; k < n; k++) {
        const truth_row *s = &t[k];
        int inner = s->x > 20 && s->y > 20 && s->x < w - 21 && s->y < h - 21;
        if (s->type != 0 || s->saturated || s->blended || !inner)
            continue;
        int isolated = 1;
        for (long q = 0; q < n && isolated; q++)
            if (q != k && t[q].flux > 0.1 * s->flux &&
                hypot(t[q].x - s->x, t[q].y - s->y) < 5 * s->fwhm + (t[q].type == 1 ? 3 * t[q].fwhm : 0))
                isolated = 0;
        if (!isolated)
            continue;
        const sk_source *m = nearest(l, s->x, s->y, 2.0);
        if (!photometry && s->snr >= 10) {
            acc.n10++;
            acc.f10 += m != NULL;
            if (!m && getenv("SK_TEST_VERBOSE"))
                tap_diag("missed star at %.1f %.1f flux %.0f snr %.1f", s->x, s->y, s->flux, s->snr);
        }
        if (!photometry || !m || (m->flags & ~(unsigned)SK_SRC_NEIGHBOURS))
            continue;
        if (s->snr >= 50) {
            double dx = m->xwin - s->x, dy = m->ywin - s->y;
            acc.sdx2 += 0.5 * (dx * dx + dy * dy);
            acc.n50++;
        }
        /* photometry sample: nothing above 1 % of the flux within the
           3-FWHM aperture plus 3 FWHM */
        double rap = l->aper_radius_px[2];
        int clean = 1;
        for (long q = 0; q < n && clean; q++)
            if (q != k && t[q].flux > 0.01 * s->flux &&
                hypot(t[q].x - s->x, t[q].y - s->y) < rap + 3 * t[q].fwhm * (t[q].type == 1 ? 2 : 1))
                clean = 0;
        if (!clean)
            continue;
        /* truth in the 3-FWHM aperture: Moffat encircled energy, the
           profile being truncated at psf_radius_fwhm and renormalised */
        double alpha = s->fwhm / (2 * sqrt(pow(2, 1 / beta) - 1));
        double rt = sp.psf_radius_fwhm * s->fwhm;
        double ee = (1 - pow(1 + rap * rap / (alpha * alpha), 1 - beta)) /
                    (1 - pow(1 + rt * rt / (alpha * alpha), 1 - beta));
        double truth_ap = s->flux * (ee < 1 ? ee : 1);
        if (s->snr >= 50) {
            acc.nratio++;
            acc.sum_meas += m->flux_aper[2];
            acc.sum_truth += truth_ap;
        }
        /* the error honesty sample: SNR 10-200, where the truth model of
           the aperture flux is far better than the noise */
        if (s->snr >= 10 && s->snr <= 200 && acc.npull < 4096)
            acc.pulls[acc.npull++] = (m->flux_aper[2] - truth_ap) / m->flux_aper_err[2];
    }

    /* detections that are no source: cosmic rays must be flagged */
    sk_column *kx = sk_table_column(e->cosmics, "x"), *ky = sk_table_column(e->cosmics, "y");
    long ncr = e->cosmics->nrows;
    if (photometry)
        l = NULL;  /* counted in the realistic fields only */
    acc.cr_pixels += ncr;
    acc.ndet += l ? l->n : 0;
    for (long k = 0; l && k < l->n; k++) {
        const sk_source *s = &l->src[k];
        int near_truth = 0;
        for (long q = 0; q < n && !near_truth; q++) {
            double reach = 3.0 + (t[q].type == 1 ? 3.0 * t[q].fwhm : 0);
            if (hypot(s->xwin - t[q].x, s->ywin - t[q].y) < reach)
                near_truth = 1;
        }
        if (near_truth)
            continue;
        int clean = !(s->flags & (SK_SRC_ARTIFACT | SK_SRC_FLAGGED | SK_SRC_EDGE | SK_SRC_TRUNCATED));
        if (clean)
            acc.unmatched_clean++;
        for (long q = 0; q < ncr; q++)
            if (hypot(s->x - sk_column_get(kx, q, 0), s->y - sk_column_get(ky, q, 0)) < 2.5 && clean) {
                acc.cr_clean++;
                break;
            }
    }
    free(t);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_sim_exposure_free(e);
}

static void test_star_fields(void)
{
    memset(&acc, 0, sizeof acc);
    for (int i = 0; i < 4; i++)
        one_exposure(i, 0);
    for (int i = 0; i < 6; i++)
        one_exposure(i, 1);
    double compl = acc.n10 ? (double)acc.f10 / acc.n10 : 0;
    ok(compl >= 0.95, "completeness %.3f (%ld/%ld) for isolated stars with SNR >= 10", compl, acc.f10, acc.n10);
    double crms = acc.n50 ? sqrt(acc.sdx2 / acc.n50) : 1;
    ok(acc.n50 >= 30 && crms <= 0.05, "windowed centroid rms %.4f px at SNR >= 50 (%ld stars)", crms, acc.n50);
    double bias = acc.sum_truth > 0 ? acc.sum_meas / acc.sum_truth - 1 : 1;
    ok(acc.nratio >= 30 && fabs(bias) <= 0.005,
       "3-FWHM aperture (> 99 %% of the light) flux bias %.5f within 0.5 %% (%ld stars)", bias, acc.nratio);
    /* pull sigma, without the few stars a faint neighbour or a cosmic ray
       pushed beyond 5 sigma (counted and bounded) */
    double pm = 0, ps = 0;
    long m = 0, out = 0;
    for (long k = 0; k < acc.npull; k++) {
        if (fabs(acc.pulls[k]) > 5) {
            out++;
            continue;
        }
        pm += acc.pulls[k];
        m++;
    }
    pm /= m ? m : 1;
    for (long k = 0; k < acc.npull; k++)
        if (fabs(acc.pulls[k]) <= 5)
            ps += (acc.pulls[k] - pm) * (acc.pulls[k] - pm);
    ps = sqrt(ps / (m > 1 ? m - 1 : 1));
    ok(m >= 100 && fabs(ps - 1) <= 0.1, "flux pull sigma %.3f within 10 %% of 1 (%ld stars, mean %.3f)", ps, m, pm);
    ok(out <= acc.npull / 50, "pulls beyond 5 sigma: %ld of %ld (<= 2 %%)", out, acc.npull);
    tap_diag("%ld detections, %ld clean ones match no truth source; %ld cosmic-ray pixels", acc.ndet,
             acc.unmatched_clean, acc.cr_pixels);
    ok((double)acc.unmatched_clean / (double)acc.ndet < 0.01,
       "clean detections matching no source: %ld of %ld < 1 %%", acc.unmatched_clean, acc.ndet);
    ok(acc.cr_clean == 0, "no cosmic ray detected with a clean flag (%ld)", acc.cr_clean);
}

/* A standard normal deviate from a small deterministic generator. */
static double gauss_dev(uint64_t *state)
{
    double u[2];
    for (int k = 0; k < 2; k++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        u[k] = ((double)(*state >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

/* Large apertures against truth in realistic crowding: imsim fields at the
 * density of the benchmark exposures (250 stars down to magnitude 24.5 and
 * 50 galaxies per 512x512), whose sources below the detection threshold
 * put light into every aperture, light that therefore belongs to the
 * background. Stars of known flux are injected (the exposure's PSF at
 * their place, Poisson noise) on a grid of places at least 8 FWHM from
 * every source detected in the field, and their 5-FWHM aperture flux (the
 * whole of imsim's PSF, truncated at 5 FWHM) is compared with the injected
 * flux. A background at the smooth sky level, without that light, reads
 * 0.7 % high here; 40 fields (about 750 stars) make the median good to
 * 0.15 %. */
static void test_large_apertures(void)
{
    enum { NFIELDS = 40, MAXSTARS = 8192 };
    const double flux_inj = 20000;  /* ADU: SNR ~ 100 (optimal), ~ 30 in 5 FWHM */
    double *ratios = malloc(sizeof *ratios * MAXSTARS);
    long nr = 0;
    double bg_offset = 0, called_for = 0;
    uint64_t rng = 12345;
    for (int f = 0; f < NFIELDS && ratios; f++) {
        char seed[64];
        snprintf(seed, sizeof seed, "simulation.seed=%d", 31 + f);
        char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=250",
                        seed, "simulation.nexp=1", "simulation.satellite_probability=0",
                        "simulation.cosmic_rate_per_mpix_s=0", "simulation.hot_pixels=0",
                        "simulation.bad_columns=0", "simulation.moving_sources=0", "simulation.transients=0"};
        sk_sim_params sp;
        sk_sim_exposure *e = NULL;
        if (make_exposure(sets, 11, 0, &sp, &e)) {
            ok(0, "crowded imsim field %d", f);
            break;
        }
        sk_image *img = e->image;
        long w = img->width, h = img->height;
        double rms_true = median_inv_sqrt(img->weight, w * h);
        double fwhm = e->info.psf.fwhm_px, reach = 5 * fwhm + 2, iso = 8 * fwhm;
        /* the sources detected in the field as it is: the injected stars
           keep away from them, so that the other light in their apertures
           is that of undetected sources */
        sk_extract_params p;
        sk_extract_params_default(&p);
        sk_extract_result *r = NULL;
        int rc = sk_extract_run(img, &p, 2, &r);
        double *model = rc ? NULL : calloc((size_t)(w * h), sizeof *model);
        double px[256], py[256];
        long np = 0;
        for (double y = reach; model && y < h - reach; y += 40)
            for (double x = reach; x < w - reach && np < 256; x += 40) {
                /* (40 px apart: more than two truncated PSFs) */
                double xs = x + 0.37 * (double)(np % 3), ys = y + 0.29 * (double)(np % 4);
                int clear = 1;
                for (long k = 0; k < r->sources->n && clear; k++)
                    clear = hypot(r->sources->src[k].xwin - xs, r->sources->src[k].ywin - ys) >= iso;
                if (!clear)
                    continue;
                sk_sim_psf tp;
                sk_sim_psf_at(&sp, &e->info, w, h, xs, ys, &tp);
                sk_sim_psf_add(&tp, flux_inj, xs, ys, model, w, h, 0, h);
                px[np] = xs;
                py[np] = ys;
                np++;
            }
        for (long i = 0; model && i < w * h; i++)
            if (model[i] > 0)
                img->sci[i] += (float)(model[i] + sqrt(model[i] / sp.gain) * gauss_dev(&rng));
        free(model);
        sk_extract_result_free(r);
        r = NULL;
        rc = rc ? rc : sk_extract_run(img, &p, 2, &r);
        sk_extract_params_clear(&p);
        if (rc) {
            ok(0, "crowded imsim field %d: extraction", f);
            sk_sim_exposure_free(e);
            break;
        }
        double sd = 0;
        for (long y = 0; y < h; y++)
            for (long x = 0; x < w; x++)
                sd += r->background->level[y * w + x] - sk_sim_sky_adu(&e->info, (double)x, (double)y);
        bg_offset += sd / (double)(w * h) / rms_true / NFIELDS;
        double rap = r->sources->aper_radius_px[3], area = M_PI * rap * rap;
        for (long k = 0; k < np && nr < MAXSTARS; k++) {
            const sk_source *m = nearest(r->sources, px[k], py[k], 1.0);
            if (!m || (m->flags & ~(unsigned)SK_SRC_NEIGHBOURS))
                continue;
            ratios[nr++] = m->flux_aper[3] / flux_inj;
            /* the level above the smooth sky that would make it exact */
            called_for += ((m->flux_aper[3] - flux_inj) / area + m->background -
                           sk_sim_sky_adu(&e->info, m->xwin, m->ywin)) / rms_true;
        }
        sk_extract_result_free(r);
        sk_sim_exposure_free(e);
    }
    qsort(ratios, (size_t)nr, sizeof *ratios, cmp_d);
    double med = nr ? (nr % 2 ? ratios[nr / 2] : 0.5 * (ratios[nr / 2 - 1] + ratios[nr / 2])) : 0;
    tap_diag("crowded fields: background %.4f sigma above the smooth sky; the injected stars call for "
             "%.4f sigma", bg_offset, nr ? called_for / nr : 0);
    ok(nr >= 500 && fabs(med - 1) <= 0.005,
       "5-FWHM aperture flux / truth of %ld injected isolated stars in crowded fields: median %.4f "
       "within 0.5 %%", nr, med);
    free(ratios);
}

/* Blank simulated sky: sky gradient, noise, no sources, no defects. */
static void test_blank_sky(void)
{
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=0",
                    "simulation.galaxy_fraction=0", "simulation.moving_sources=0", "simulation.transients=0",
                    "simulation.seed=5", "simulation.nexp=1", "simulation.satellite_probability=0",
                    "simulation.cosmic_rate_per_mpix_s=0", "simulation.bad_columns=0", "simulation.hot_pixels=0"};
    sk_sim_params sp;
    sk_sim_exposure *e = NULL;
    if (make_exposure(sets, 12, 0, &sp, &e)) {
        ok(0, "blank imsim exposure");
        return;
    }
    sk_extract_params p;
    sk_extract_params_default(&p);
    sk_extract_result *r = NULL;
    ok(sk_extract_run(e->image, &p, 2, &r) == SK_OK, "extraction of blank simulated sky (%ld truth rows)",
       e->truth->nrows);
    long ndet = r ? r->sources->n : -1;
    ok(ndet >= 0 && ndet <= 2, "at most 2 spurious detections in 262144 pixels of blank sky (%ld)", ndet);
    double rms_true = median_inv_sqrt(e->image->weight, e->image->width * e->image->height);
    ok(r && fabs(r->background->median_rms / rms_true - 1) <= 0.02, "blank-sky rms %.3f within 2 %% of %.3f",
       r ? r->background->median_rms : 0, rms_true);
    sk_extract_result_free(r);
    sk_extract_params_clear(&p);
    sk_sim_exposure_free(e);
}

int main(void)
{
    tap_plan(43);
    test_star_fields();
    test_large_apertures();
    test_blank_sky();
    return tap_done();
}
