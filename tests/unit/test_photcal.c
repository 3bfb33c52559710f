/* test_photcal.c: photometric calibration against imsim truth: the zero
 * point from the matched catalog stars within 0.01 mag of the true
 * MAGZERO (PSF-fit fluxes, and the largest aperture), its sigma, the
 * PSF model's normalisation error,
 * aperture corrections (from the PSF model) against the true PSF's
 * encircled energy, the
 * 5-sigma limiting magnitude against the value measured by injecting and
 * recovering point sources, the failure with too few stars, and the
 * calibration parameters read from the default configuration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/astrom.h"
#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/fits.h"
#include "skystack/photcal.h"
#include "skystack/psf.h"
#include "skystack/sim.h"
#include "skystack/table.h"
#include "../tap.h"
#include "../robust_test.h"
#include "calib/astrom_internal.h"
#include "extract/extract_internal.h"
#include "calib/photcal_internal.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

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

/* Which matched stars calibrate: with PSF-fit fluxes blended stars count
 * (most bright stars of a deep coadd are deblended from a neighbour); with
 * aperture fluxes they do not, their apertures holding the neighbour's light. */
static void test_blended_selection(void)
{
    enum { N = 6 };
    sk_source src[N];
    double aper[N], aper_err[N], psf[N], psf_err[N], ra[N], dec[N], mag[N], mag_err[N];
    long si[N], ri[N];
    memset(src, 0, sizeof src);
    for (int k = 0; k < N; k++) {
        mag[k] = 18.0 + 0.2 * k;
        mag_err[k] = 0.01;
        ra[k] = dec[k] = 0;
        src[k].xwin = 100.0 * k; /* far apart: no neighbour in any aperture */
        src[k].ywin = 50.0;
        psf[k] = pow(10.0, 0.4 * (30.0 - mag[k])); /* zero point 30 */
        psf_err[k] = 0.01 * psf[k];
        aper[k] = psf[k];
        aper_err[k] = psf_err[k];
        src[k].flux_aper = &aper[k];
        src[k].flux_aper_err = &aper_err[k];
        src[k].flags = k < 4 ? SK_SRC_BLENDED | SK_SRC_NEIGHBOURS : 0;
        si[k] = ri[k] = k;
    }
    double radius_px = 10.0;
    sk_source_list l = {.n = N, .src = src, .naper = 1, .aper_radius_px = &radius_px, .fwhm_px = 3.0};
    sk_refcat ref = {.n = N, .ra_deg = ra, .dec_deg = dec, .mag = mag, .mag_err = mag_err};
    sk_photcal_params p;
    sk_photcal_params_default(&p);
    sk_photcal *pc = NULL;
    ok(sk_photcal_solve(&l, psf, psf_err, NULL, si, ri, N, &ref, &p, &pc) == SK_OK && pc && pc->ncandidates == N,
       "PSF fluxes: blended stars calibrate too (%ld of %d)", pc ? pc->ncandidates : -1L, N);
    ok(pc && fabs(pc->zp - 30.0) < 1e-6, "and give the zero point (%.6f)", pc ? pc->zp : NAN);
    sk_photcal_free(pc);
    pc = NULL;
    ok(sk_photcal_solve(&l, NULL, NULL, NULL, si, ri, N, &ref, &p, &pc) == SK_ENOTFOUND && !pc,
       "aperture fluxes: blended stars are left out (2 usable < 3)");
}

int main(void)
{
    tap_plan(19);
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=300",
                    "simulation.mag_min=16.5", "simulation.mag_max=21.5", "simulation.seed=12",
                    "simulation.galaxy_fraction=0.2", "simulation.satellite_probability=0",
                    "simulation.seeing_scatter=0", "simulation.wcs_offset_arcsec=10"};
    test_blended_selection();
    sk_config *cfg = NULL;
    sk_sim_params sp;
    sk_sim_field *f = NULL;
    sk_sim_exposure *e = NULL;
    sk_table *rt = NULL;
    char refpath[4200];
    snprintf(refpath, sizeof refpath, "%s/refcat.fits", tap_tmpdir());
    int rc = sk_config_load(NULL, sets, 10, &cfg);
    rc = rc ? rc : sk_sim_params_from_config(cfg, &sp);
    rc = rc ? rc : sk_sim_field_make(&sp, &f);
    rc = rc ? rc : sk_sim_expose(&sp, f, 0, 2, &e);
    rc = rc ? rc : sk_sim_refcat(&sp, f, &rt);
    rc = rc ? rc : sk_fits_write_table(refpath, rt);
    sk_table_free(rt);
    if (rc) {
        ok(0, "imsim exposure (%s)", sk_errmsg());
        sk_sim_field_free(f);
        sk_config_free(cfg);
        return tap_done();
    }
    sk_image *img = e->image;
    double zp_true = e->info.magzero;

    /* the parameters of the three calibration steps from the defaults */
    sk_psf_params pp;
    sk_astrom_params ap;
    sk_photcal_params cp;
    sk_psf_params_default(&pp);
    sk_astrom_params_default(&ap);
    sk_photcal_params_default(&cp);
    rc = sk_psf_params_from_json(cfg->root, &pp);
    rc = rc ? rc : sk_astrom_params_from_json(cfg->root, &ap);
    rc = rc ? rc : sk_photcal_params_from_json(cfg->root, &cp);
    ok(rc == SK_OK && pp.degree == 2 && pp.size_px == 0 && ap.min_matches == 6 && ap.sip_order == 0 &&
       cp.min_stars == 3 && cp.clip_sigma == 3.0, "calibration parameters read from the defaults");
    sk_config_set(cfg, "extraction.psf.size_px=24");
    ok(sk_psf_params_from_json(cfg->root, &pp) == SK_EINPUT, "an even PSF size is refused (%s)", sk_errmsg());
    sk_config_set(cfg, "extraction.psf.size_px=0");
    sk_psf_params_from_json(cfg->root, &pp);

    sk_extract_params epar;
    sk_extract_params_default(&epar);
    sk_extract_result *r = NULL;
    rc = sk_extract_run(img, &epar, 2, &r);
    sk_extract_params_clear(&epar);
    pp.gain = r ? r->gain : 0;
    sk_psf *psf = NULL;
    rc = rc ? rc : sk_psf_build(img, r->background, r->sources, r->detection->segmap, &pp, 2, &psf);
    long n = r ? r->sources->n : 0;
    double *fl = malloc(sizeof *fl * (size_t)(n + 1)), *fe = malloc(sizeof *fe * (size_t)(n + 1));
    rc = rc ? rc : sk_psf_photometry_sources(psf, img, r->background, r->detection->segmap, r->gain,
                                             r->sources, 2, fl, fe, NULL);
    sk_refcat *cat = NULL;
    rc = rc ? rc : sk_refcat_read(refpath, "ra", "dec", "mag", "mag_err", &cat);
    sk_astrom_result *as = NULL;
    rc = rc ? rc : sk_astrom_solve(r->sources, img->width, img->height, img->wcs, cat, &ap, &as);
    ok(rc == SK_OK, "extraction, PSF, PSF photometry and astrometry (%s)", rc ? sk_errmsg() : "ok");
    if (rc)
        goto done;

    /* zero point from PSF-fit fluxes */
    sk_photcal *pc = NULL;
    rc = sk_photcal_solve(r->sources, fl, fe, NULL, as->src_index, as->ref_index, as->nmatch, cat, &cp, &pc);
    ok(rc == SK_OK, "zero point solved (%s)", rc ? sk_errmsg() : "ok");
    if (!rc) {
        tap_diag("zp %.4f +- %.4f from %ld of %ld stars (scatter %.4f mag); truth MAGZERO %.4f", pc->zp,
                 pc->dzp, pc->nstars, pc->ncandidates, pc->scatter, zp_true);
        ok(fabs(pc->zp - zp_true) <= 0.01, "zero point %.4f within 0.01 mag of the true MAGZERO %.4f "
           "(%+.4f)", pc->zp, zp_true, pc->zp - zp_true);
        ok(pc->dzp > 0 && pc->dzp < 0.01 && fabs(pc->zp - zp_true) < 4 * pc->dzp + 0.002,
           "dzp %.4f is a sigma consistent with the error (%.4f)", pc->dzp, pc->zp - zp_true);
        ok(pc->nstars >= 20 && pc->from_psf, "%ld calibration stars, PSF fluxes", pc->nstars);
        /* the model's normalisation error: a mean over its stars' noise,
           positive, and on this field of bright stars well below the 0.01
           mag the zero point is held to */
        double nerr = -1;
        int nrc = sk_psf_norm_error(psf, img, r->background, r->detection->segmap, r->gain, r->sources,
                                    2, &nerr);
        ok(nrc == SK_OK && nerr > 0 && nerr < 0.003,
           "PSF normalisation error %.4f from %ld PSF stars", nerr, psf->naccepted);
        /* aperture corrections against the true PSF's encircled energy:
           the truth drawn (pixel-integrated, as imsim draws stars) at the
           same sub-pixel centres and summed with exact pixel overlap */
        for (int a = 0; a < pc->naper; a++)
            tap_diag("aperture correction at %.1f FWHM measured on the stars: %.4f mag",
                     pc->aper_radius_fwhm[a], pc->aper_cor[a]);
        double xc = 0.5 * (img->width - 1), yc = 0.5 * (img->height - 1);
        rc = sk_photcal_psf_apcor(pc, psf, xc, yc, r->sources->aper_radius_px);
        sk_sim_psf tp;
        sk_sim_psf_at(&sp, &e->info, img->width, img->height, xc, yc, &tp);
        int tm = 81;
        double *tim = malloc(sizeof(double) * (size_t)(tm * tm));
        for (int a = 0; a < pc->naper; a++) {
            double rad = r->sources->aper_radius_px[a], ee = 0;
            for (int q = 0; q < 16; q++) {
                double ox = (q % 4 + 0.5) / 4 - 0.5, oy = (q / 4 + 0.5) / 4 - 0.5;
                memset(tim, 0, sizeof(double) * (size_t)(tm * tm));
                sk_sim_psf_add(&tp, 1.0, tm / 2 + ox, tm / 2 + oy, tim, tm, tm, 0, tm);
                for (int j = 0; j < tm; j++)
                    for (int i = 0; i < tm; i++) {
                        double x0 = i - 0.5 - (tm / 2 + ox), y0 = j - 0.5 - (tm / 2 + oy);
                        ee += sk_circle_rect_overlap(x0, y0, x0 + 1, y0 + 1, rad) * tim[j * tm + i] / 16;
                    }
            }
            double want = 2.5 * log10(ee < 1 ? ee : 1);
            ok(rc == SK_OK && fabs(pc->aper_cor[a] - want) < 0.01,
               "aperture correction at %.1f FWHM (%.2f px) from the PSF model: %.4f mag; the true PSF "
               "gives %.4f", pc->aper_radius_fwhm[a], rad, pc->aper_cor[a], want);
        }
        free(tim);

        /* the 5-sigma limit against injected point sources */
        float *var = sk_pixel_variance(img, r->background);
        double *sg = malloc(sizeof *sg * (size_t)(img->width * img->height));
        long ns = 0;
        for (long i = 0; i < img->width * img->height; i++)
            if (var[i] > 0)
                sg[ns++] = sqrt(var[i]);
        double sigma_bg = median(sg, ns);
        free(sg);
        rc = sk_photcal_set_limit(pc, psf, 0.5 * (img->width - 1), 0.5 * (img->height - 1), sigma_bg, r->gain);
        ok(rc == SK_OK && isfinite(pc->lim_mag), "5-sigma limiting magnitude %.3f (flux %.1f ADU, "
           "background %.2f ADU/px)", pc->lim_mag, pc->lim_flux_adu, sigma_bg);
        /* inject sources of that magnitude (true PSF, Poisson noise) at
           empty places, in four rounds on grids shifted by 8 px (each on
           its own copy of the image), and measure their PSF-fit fluxes;
           their SNR from the clipped standard deviation of ~1200 fluxes
           scatters about 0.025 mag (the 0.1 mag limit is 4 sigma of it) */
        double finj = pow(10, -0.4 * (pc->lim_mag - zp_true));
        sk_column *tx = sk_table_column(e->truth, "x"), *ty = sk_table_column(e->truth, "y");
        long nt = e->truth->nrows, ninj = 0, npix = img->width * img->height;
        double *ix = malloc(sizeof(double) * 900), *iy = malloc(sizeof(double) * 900);
        double *mf = malloc(sizeof(double) * 3600), *me = malloc(sizeof(double) * 900);
        sk_image *copy = sk_image_new(img->width, img->height);
        double *model = malloc(sizeof(double) * (size_t)npix);
        sk_rng rng;
        sk_rng_init(&rng, 77, 1, 0);
        for (int round = 0; round < 4 && rc == SK_OK; round++) {
            long nr = 0;
            memcpy(copy->sci, img->sci, sizeof(float) * (size_t)npix);
            memcpy(copy->weight, img->weight, sizeof(float) * (size_t)npix);
            memcpy(copy->flags, img->flags, sizeof(uint16_t) * (size_t)npix);
            memset(model, 0, sizeof(double) * (size_t)npix);
            for (long j = 0; j < 900; j++) {
                double x = 15 + 8 * (round % 2) + (double)(j % 30) * (img->width - 38) / 30.0 +
                           sk_rng_uniform(&rng);
                double y = 15 + 8 * (round / 2) + (double)(j / 30) * (img->height - 38) / 30.0 +
                           sk_rng_uniform(&rng);
                int empty = 1;
                for (long k = 0; k < nt && empty; k++)
                    empty = hypot(sk_column_get(tx, k, 0) - x, sk_column_get(ty, k, 0) - y) > 4 * psf->fwhm_px;
                if (!empty)
                    continue;
                sk_sim_psf_at(&sp, &e->info, img->width, img->height, x, y, &tp);
                sk_sim_psf_add(&tp, finj, x, y, model, img->width, img->height, 0, img->height);
                ix[nr] = x;
                iy[nr] = y;
                nr++;
            }
            for (long i = 0; i < npix; i++)
                if (model[i] > 0) {
                    double el = (double)sk_rng_poisson(&rng, model[i] * sp.gain);
                    copy->sci[i] += (float)(el / sp.gain);
                }
            rc = sk_psf_photometry(psf, copy, r->background->level, var, NULL, r->gain, nr, ix, iy, 2,
                                   mf + ninj, me, NULL);
            ninj += nr;
        }
        double sd = clipped_sd(mf, ninj), snr = finj / sd;
        tap_diag("injected %.1f ADU: median measured %.1f, clipped sigma %.1f (robust %.1f)", finj,
                 median(mf, ninj), sd, robust_sigma(mf, ninj));
        double lim_meas = pc->lim_mag - 2.5 * log10(5.0 / snr);
        ok(rc == SK_OK && ninj >= 1000 && fabs(lim_meas - pc->lim_mag) <= 0.1,
           "%ld point sources of magnitude %.3f injected and measured: SNR %.2f, so the 5-sigma limit "
           "is %.3f, within 0.1 mag of %.3f", ninj, pc->lim_mag, snr, lim_meas, pc->lim_mag);
        free(model);
        sk_image_free(copy);
        free(ix);
        free(iy);
        free(mf);
        free(me);
        free(var);

        /* the largest aperture instead of the PSF */
        sk_photcal *pa = NULL;
        rc = sk_photcal_solve(r->sources, NULL, NULL, NULL, as->src_index, as->ref_index, as->nmatch, cat, &cp, &pa);
        ok(rc == SK_OK && fabs(pa->zp - zp_true) <= 0.02 && !pa->from_psf &&
           fabs(pa->aper_cor[pa->naper - 1]) < 1e-12,
           "zero point from the %.0f-FWHM aperture: %.4f (%+.4f), its own aperture correction 0",
           pa ? pa->aper_radius_fwhm[pa->naper - 1] : 0, pa ? pa->zp : 0, pa ? pa->zp - zp_true : 0);
        sk_photcal_free(pa);

        /* too few stars */
        sk_photcal *none = NULL;
        cp.min_stars = 1000;
        rc = sk_photcal_solve(r->sources, fl, fe, NULL, as->src_index, as->ref_index, as->nmatch, cat, &cp, &none);
        ok(rc == SK_ENOTFOUND && none == NULL && strstr(sk_errmsg(), "min_stars"),
           "fewer stars than min_stars: SK_ENOTFOUND, no zero point (%s)", sk_errmsg());
    }
    sk_photcal_free(pc);

done:
    free(fl);
    free(fe);
    sk_astrom_result_free(as);
    sk_refcat_free(cat);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
    sk_config_free(cfg);
    return tap_done();
}
