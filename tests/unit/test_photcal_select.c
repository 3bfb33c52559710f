/* test_photcal_select.c: the calibration star selection against imsim truth: faint unresolved neighbours planted next to catalogue stars (not in the catalogue, too close to be detected apart) are left out of the zero point, few clean stars are, and the zero point comes nearer the true MAGZERO than without the selection; the same neighbours listed in the catalogue are found by the catalogue-neighbour test alone, whose PSF overlap is that of a Gaussian for a Gaussian PSF. */
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
#include "calib/astrom_internal.h"
#include "calib/photcal_priv.h"
#include "extract/extract_internal.h"
#include "extract/psf_internal.h"
#include "numeric/psf_profile.h"
#include "sim/sim_internal.h"

enum { MAXPLANT = 64, STAMP = 41 };

/* Plant, next to every truth star of magnitude 17 to 19.5 whose
 * surroundings (4 FWHM) hold no other source of a twentieth of its flux,
 * a point source of `frac` of its flux `sep_fwhm` FWHM away: pixels of
 * the exposure's own PSF there, no noise. The stars' truth positions go
 * to px[], py[], the planted sources' to bxo[], byo[], the stars' true
 * magnitudes to pm[]; returns how many. */
static long plant_blends(const sk_sim_params *p, sk_sim_exposure *e, double frac, double sep_fwhm,
                         double *px, double *py, double *bxo, double *byo, double *pm)
{
    const sk_table *t = e->truth;
    sk_image *img = e->image;
    const sk_column *cx = sk_table_column(t, "x"), *cy = sk_table_column(t, "y"),
                    *cf = sk_table_column(t, "flux"), *cm = sk_table_column(t, "mag"),
                    *ct = sk_table_column(t, "type"), *cw = sk_table_column(t, "fwhm");
    double *stamp = malloc(sizeof *stamp * STAMP * STAMP);
    long n = 0;
    for (long k = 0; stamp && k < t->nrows && n < MAXPLANT; k++) {
        double x = sk_column_get(cx, k, 0), y = sk_column_get(cy, k, 0), f = sk_column_get(cf, k, 0);
        double m = sk_column_get(cm, k, 0), fw = sk_column_get(cw, k, 0);
        if (sk_column_get(ct, k, 0) != SK_SIM_STAR || m < 17 || m > 19.5 || x < 30 || y < 30 ||
            x > img->width - 31 || y > img->height - 31)
            continue;
        int alone = 1;
        for (long q = 0; q < t->nrows && alone; q++)
            if (q != k && hypot(sk_column_get(cx, q, 0) - x, sk_column_get(cy, q, 0) - y) < 4 * fw &&
                sk_column_get(cf, q, 0) > 0.05 * f)
                alone = 0;
        if (!alone)
            continue;
        /* the direction turns from star to star */
        double ang = 2.399963 * (double)n, bx = x + sep_fwhm * fw * cos(ang), by = y + sep_fwhm * fw * sin(ang);
        sk_sim_psf psf;
        sk_sim_psf_at(p, &e->info, img->width, img->height, bx, by, &psf);
        long x0 = lround(bx) - STAMP / 2, y0 = lround(by) - STAMP / 2;
        memset(stamp, 0, sizeof *stamp * STAMP * STAMP);
        sk_sim_psf_add(&psf, frac * f, bx - (double)x0, by - (double)y0, stamp, STAMP, STAMP, 0, STAMP);
        for (long j = 0; j < STAMP; j++)
            for (long i = 0; i < STAMP; i++)
                if (y0 + j >= 0 && y0 + j < img->height && x0 + i >= 0 && x0 + i < img->width)
                    img->sci[(y0 + j) * img->width + x0 + i] += (float)stamp[j * STAMP + i];
        px[n] = x;
        py[n] = y;
        bxo[n] = bx;
        byo[n] = by;
        pm[n] = m;
        n++;
    }
    free(stamp);
    return n;
}

/* The PSF overlap of a Gaussian PSF of sigma s: exp(-d^2 / (4 s^2))
 * (from the fit's disc of radius 2 FWHM a little less). */
static void gaussian_overlap(void)
{
    enum { M = 41 };
    double st[M * M], ov[40], s = 1.5, worst = 0;
    for (int j = 0; j < M; j++)
        for (int i = 0; i < M; i++)
            st[j * M + i] = exp(-0.5 * ((i - M / 2) * (i - M / 2) + (j - M / 2) * (j - M / 2)) / (s * s));
    sk_psf *g = NULL;
    int rc = sk_psf_from_stamp(st, M, 512, 512, &g);
    rc = rc ? rc : sk_photcal_overlap(g, 256, 256, 0.25, 40, ov);
    for (int k = 0; !rc && k < 40; k++)
        worst = fmax(worst, fabs(ov[k] - exp(-0.0625 * k * k / (4 * s * s))));
    ok(rc == SK_OK && fabs(ov[0] - 1) < 1e-9 && worst < 0.02,
       "a Gaussian PSF's overlap: 1 at 0, within %.4f of exp(-d^2 / 4 sigma^2) to 10 px", worst);
    sk_psf_free(g);
}

/* The planted neighbours (np at bx, by, true magnitude pm + 2.5) listed
 * in the catalogue: the catalogue-neighbour test alone (the other tests
 * of `off` off) leaves out the stars they sit by and brings the zero
 * point nearer the true zt than without it. */
static int catalogue_neighbours(const sk_source_list *l, const double *fl, const double *fe,
                                const double *chi2, const sk_astrom_result *as, const sk_refcat *cat,
                                const sk_psf *psf, const sk_photcal_params *off, long np, const double *bx,
                                const double *by, const double *pm, double zt)
{
    long n = cat->n + np;
    double *x = malloc(sizeof *x * (size_t)n), *y = malloc(sizeof *y * (size_t)n);
    double *mag = malloc(sizeof *mag * (size_t)n), ov[64];
    int rc = x && y && mag ? SK_OK : SK_EIO;
    rc = rc ? rc : sk_wcs_sky2pix(as->wcs, cat->n, cat->ra_deg, cat->dec_deg, x, y);
    for (long k = 0; k < n && !rc; k++) {
        mag[k] = k < cat->n ? cat->mag[k] : pm[k - cat->n] + 2.5;
        if (k >= cat->n) {
            x[k] = bx[k - cat->n];
            y[k] = by[k - cat->n];
        }
    }
    rc = rc ? rc : sk_photcal_overlap(psf, 256, 256, 0.25, 64, ov);
    sk_photcal_refnbr nb = {n, x, y, mag, NULL, ov, 64, 0.25};
    sk_photcal_params with = *off;
    sk_photcal *pw = NULL, *po = NULL;
    rc = rc ? rc : sk_photcal_solve_ref(l, fl, fe, chi2, as->src_index, as->ref_index, as->nmatch, cat, &nb,
                                        &with, &pw);
    with.max_ref_contamination = 0;
    rc = rc ? rc : sk_photcal_solve_ref(l, fl, fe, chi2, as->src_index, as->ref_index, as->nmatch, cat, &nb,
                                        &with, &po);
    if (!rc)
        tap_diag("catalogue neighbours: overlap at 1 FWHM %.3f; %ld of %ld candidates left out; zero point "
                 "%+.4f (%ld stars) against %+.4f (%ld) without the test", ov[lround(psf->fwhm_px / 0.25)],
                 pw->nrej_refcat, pw->ncandidates, pw->zp - zt, pw->nstars, po->zp - zt, po->nstars);
    ok(rc == SK_OK && pw->nrej_refcat >= np / 2 && pw->nrej_refcat <= np + pw->ncandidates / 20 &&
       po->nrej_refcat == 0, "the stars beside listed neighbours left out (%ld, %ld planted)",
       rc ? -1 : pw->nrej_refcat, np);
    ok(rc == SK_OK && fabs(pw->zp - zt) < 0.6 * fabs(po->zp - zt) && fabs(pw->zp - zt) < 3 * pw->dzp + 0.002,
       "the zero point with them left out is nearer the truth (%+.4f mag) than without (%+.4f mag)",
       rc ? NAN : pw->zp - zt, rc ? NAN : po->zp - zt);
    sk_photcal_free(pw);
    sk_photcal_free(po);
    free(x);
    free(y);
    free(mag);
    return rc;
}

int main(void)
{
    tap_plan(9);
    gaussian_overlap();
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=260",
                    "simulation.mag_min=16.5", "simulation.mag_max=21.5", "simulation.seed=5",
                    "simulation.galaxy_fraction=0", "simulation.satellite_probability=0",
                    "simulation.seeing_scatter=0"};
    sk_config *cfg = NULL;
    sk_sim_params sp;
    sk_sim_field *f = NULL;
    sk_sim_exposure *e = NULL;
    sk_table *rt = NULL;
    char refpath[4200];
    snprintf(refpath, sizeof refpath, "%s/refcat.fits", tap_tmpdir());
    int rc = sk_config_load(NULL, sets, 9, &cfg);
    rc = rc ? rc : sk_sim_params_from_config(cfg, &sp);
    rc = rc ? rc : sk_sim_field_make(&sp, &f);
    rc = rc ? rc : sk_sim_expose(&sp, f, 0, 2, &e);
    rc = rc ? rc : sk_sim_refcat(&sp, f, &rt);
    rc = rc ? rc : sk_fits_write_table(refpath, rt);
    sk_table_free(rt);
    double px[MAXPLANT], py[MAXPLANT], bx[MAXPLANT], by[MAXPLANT], pm[MAXPLANT];
    long np = rc ? 0 : plant_blends(&sp, e, 0.1, 1.0, px, py, bx, by, pm);
    ok(rc == SK_OK && np >= 10, "imsim exposure with %ld planted neighbours (0.1 of the flux, "
       "1 FWHM away) (%s)", np, rc ? sk_errmsg() : "ok");

    sk_photcal_params on, off;
    sk_photcal_params_default(&on);
    rc = rc ? rc : sk_photcal_params_from_json(cfg->root, &on);
    off = on;
    off.max_chi2_ratio = off.max_aperture_excess = off.neighbour_flux_ratio = 0;
    sk_extract_params epar;
    sk_extract_params_default(&epar);
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    sk_astrom_params ap;
    sk_astrom_params_default(&ap);
    sk_extract_result *r = NULL;
    sk_psf *psf = NULL;
    sk_refcat *cat = NULL;
    sk_astrom_result *as = NULL;
    rc = rc ? rc : sk_extract_run(e->image, &epar, 2, &r);
    pp.gain = r ? r->gain : 0;
    rc = rc ? rc : sk_psf_build(e->image, r->background, r->sources, r->detection->segmap, &pp, 2, &psf);
    long n = r ? r->sources->n : 0;
    double *fl = malloc(sizeof *fl * (size_t)(n + 1)), *fe = malloc(sizeof *fe * (size_t)(n + 1)),
           *chi2 = malloc(sizeof *chi2 * (size_t)(n + 1));
    rc = rc ? rc : sk_psf_photometry_sources(psf, e->image, r->background, r->detection->segmap, r->gain,
                                             r->sources, 2, fl, fe, chi2);
    rc = rc ? rc : sk_refcat_read(refpath, "ra", "dec", "mag", "mag_err", &cat);
    rc = rc ? rc : sk_astrom_solve(r->sources, e->image->width, e->image->height, e->image->wcs, cat, &ap, &as);
    ok(rc == SK_OK, "extraction, PSF, PSF photometry with chi^2, astrometry (%s)", rc ? sk_errmsg() : "ok");
    if (rc)
        goto done;

    /* which matched stars are planted blends, and what the selection says
       of the matched stars of SNR >= min_snr */
    long *who = malloc(sizeof *who * (size_t)(as->nmatch + 1));
    char *planted = calloc((size_t)as->nmatch + 1, 1);
    unsigned char *rej = malloc((size_t)as->nmatch + 1);
    long m = 0, nbl = 0, nbl_rej = 0, ncl = 0, ncl_rej = 0, counts[4];
    for (long k = 0; k < as->nmatch; k++) {
        long s = as->src_index[k];
        const sk_source *src = &r->sources->src[s];
        if (!(fl[s] > on.min_snr * fe[s]) || (src->flags & (SK_SRC_SATURATED | SK_SRC_EDGE)))
            continue;
        for (long q = 0; q < np; q++)
            if (hypot(src->xwin - px[q], src->ywin - py[q]) < 0.6 * r->sources->fwhm_px)
                planted[m] = 1;
        who[m++] = s;
    }
    sk_photcal_pick pick = {r->sources, fl, fe, chi2, who, m, NULL, NULL};
    rc = sk_photcal_pick_stars(&pick, &on, rej, counts);
    for (long k = 0; k < m; k++) {
        nbl += planted[k];
        nbl_rej += planted[k] && rej[k];
        ncl += !planted[k];
        ncl_rej += !planted[k] && rej[k];
    }
    tap_diag("%ld candidates: %ld planted blends, %ld rejected; %ld others, %ld rejected (chi2 %ld, "
             "aperture %ld, neighbour %ld)", m, nbl, nbl_rej, ncl, ncl_rej, counts[0], counts[1], counts[2]);
    ok(rc == SK_OK && nbl >= 10 && nbl_rej >= 0.6 * (double)nbl, "%ld of the %ld planted blends left out",
       nbl_rej, nbl);
    ok(ncl >= 50 && ncl_rej <= 0.2 * (double)ncl, "%ld of the %ld other stars left out (some have "
       "neighbours of their own)", ncl_rej, ncl);

    /* the zero points with and without the selection against the truth */
    sk_photcal *pon = NULL, *poff = NULL;
    double zt = e->info.magzero;
    rc = sk_photcal_solve(r->sources, fl, fe, chi2, as->src_index, as->ref_index, as->nmatch, cat, &on, &pon);
    rc = rc ? rc : sk_photcal_solve(r->sources, fl, fe, chi2, as->src_index, as->ref_index, as->nmatch, cat,
                                    &off, &poff);
    if (!rc)
        tap_diag("true MAGZERO %.4f; with the selection %.4f +- %.4f (%ld stars, scatter %.4f, noise %.4f), "
                 "without %.4f +- %.4f (%ld stars, scatter %.4f, noise %.4f)", zt, pon->zp, pon->dzp,
                 pon->nstars, pon->scatter, pon->noise, poff->zp, poff->dzp, poff->nstars, poff->scatter,
                 poff->noise);
    ok(rc == SK_OK && pon->nrej_chi2 + pon->nrej_aperture + pon->nrej_neighbour >= nbl_rej &&
       fabs(pon->zp - zt) < 0.6 * fabs(poff->zp - zt) && fabs(pon->zp - zt) < 3 * pon->dzp + 0.002,
       "the zero point with the selection is nearer the truth (%+.4f mag) than without (%+.4f mag)",
       rc ? NAN : pon->zp - zt, rc ? NAN : poff->zp - zt);
    ok(rc == SK_OK && pon->scatter / pon->noise < 1.0 && poff->scatter / poff->noise > 1.0,
       "its stars scatter within their expected errors (%.2f of them), without it beyond (%.2f)",
       rc ? NAN : pon->scatter / pon->noise, rc ? NAN : poff->scatter / poff->noise);
    sk_photcal_free(pon);
    sk_photcal_free(poff);
    if (!rc)
        rc = catalogue_neighbours(r->sources, fl, fe, chi2, as, cat, psf, &off, np, bx, by, pm, zt);
    free(who);
    free(planted);
    free(rej);
done:
    free(fl);
    free(fe);
    free(chi2);
    sk_astrom_result_free(as);
    sk_refcat_free(cat);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_extract_params_clear(&epar);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
    sk_config_free(cfg);
    return tap_done();
}
