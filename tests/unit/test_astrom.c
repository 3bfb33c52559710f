/* test_astrom.c: astrometric calibration against imsim truth: the header
 * WCS deliberately wrong (20", 0.5 deg, 0.5 %; and 30", 1 deg, 1 %), the
 * solution checked against the true TAN+SIP WCS over the whole image,
 * corners included; clean failures (too few matches, a WCS too far off);
 * the reference catalog reader, on imsim's catalog and the real Gaia rows;
 * the real DECam cutouts, whose few Gaia stars cannot make a solution. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/astrom.h"
#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/fits.h"
#include "skystack/log.h"
#include "skystack/sim.h"
#include "skystack/table.h"
#include "skystack/wcs.h"
#include "../tap.h"
#include "calib/astrom_internal.h"
#include "sim/sim_internal.h"

typedef struct sim {
    sk_sim_params p;
    sk_sim_exposure *e;
    sk_extract_result *r;
    char refcat[4200];
} sim;

static int make_sim(char *const *sets, int nsets, sim *s)
{
    memset(s, 0, sizeof *s);
    sk_config *c = NULL;
    sk_sim_field *f = NULL;
    sk_table *t = NULL;
    int rc = sk_config_load(NULL, sets, nsets, &c);
    rc = rc ? rc : sk_sim_params_from_config(c, &s->p);
    rc = rc ? rc : sk_sim_field_make(&s->p, &f);
    rc = rc ? rc : sk_sim_expose(&s->p, f, 0, 2, &s->e);
    rc = rc ? rc : sk_sim_refcat(&s->p, f, &t);
    static int count;
    snprintf(s->refcat, sizeof s->refcat, "%s/refcat%d.fits", tap_tmpdir(), count++);
    rc = rc ? rc : sk_fits_write_table(s->refcat, t);
    sk_extract_params ep;
    sk_extract_params_default(&ep);
    rc = rc ? rc : sk_extract_run(s->e->image, &ep, 2, &s->r);
    sk_extract_params_clear(&ep);
    if (rc)
        printf("# %s\n", sk_errmsg());
    sk_table_free(t);
    sk_sim_field_free(f);
    sk_config_free(c);
    return rc;
}

static void free_sim(sim *s)
{
    sk_extract_result_free(s->r);
    sk_sim_exposure_free(s->e);
}

/* rms and largest distance (px) between the true pixel positions of a
 * grid of sky points and those the solution gives, over the whole image
 * (pixel-edge corners included); *corner gets the largest at the corners. */
static void compare_wcs(const sk_wcs *truth, const sk_wcs *fit, long w, long h, double *rms,
                        double *max, double *corner)
{
    enum { N = 21 };
    double x[N * N], y[N * N], ra[N * N], dec[N * N], fx[N * N], fy[N * N];
    for (int j = 0; j < N; j++)
        for (int i = 0; i < N; i++) {
            x[j * N + i] = -0.5 + (double)w * i / (N - 1);
            y[j * N + i] = -0.5 + (double)h * j / (N - 1);
        }
    sk_wcs_pix2sky(truth, N * N, x, y, ra, dec);
    sk_wcs_sky2pix(fit, N * N, ra, dec, fx, fy);
    double s = 0;
    *max = *corner = 0;
    for (int k = 0; k < N * N; k++) {
        double d = hypot(fx[k] - x[k], fy[k] - y[k]);
        s += d * d;
        if (d > *max)
            *max = d;
        int i = k % N, j = k / N;
        if ((i == 0 || i == N - 1) && (j == 0 || j == N - 1) && d > *corner)
            *corner = d;
    }
    *rms = sqrt(s / (N * N));
}

static void test_perturbed(const char *label, const char *seed, const char *off, const char *rot,
                           const char *sc, double want_off, double want_rot, double want_scale)
{
    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=500",
                    "simulation.mag_min=16", "simulation.mag_max=22.5", (char *)seed,
                    "simulation.galaxy_fraction=0.2", "simulation.satellite_probability=0",
                    (char *)off, (char *)rot, (char *)sc};
    sim s;
    if (make_sim(sets, 11, &s)) {
        ok(0, "%s: imsim exposure, catalog and extraction", label);
        return;
    }
    long w = s.e->image->width, h = s.e->image->height;
    sk_wcs *truth = NULL;
    sk_wcs_from_header(s.e->true_wcs, &truth);
    double rms0, max0, corner0;
    compare_wcs(truth, s.e->image->wcs, w, h, &rms0, &max0, &corner0);
    tap_diag("%s: the header WCS is off by %.1f px rms (%.1f px at most)", label, rms0, max0);
    sk_refcat *cat = NULL;
    int rc = sk_refcat_read(s.refcat, "ra", "dec", "mag", "mag_err", &cat);
    ok(rc == SK_OK && cat->n > 50, "%s: imsim's reference catalog read (%ld stars)", label,
       cat ? cat->n : 0);
    sk_astrom_params p;
    sk_astrom_params_default(&p);
    sk_astrom_result *res = NULL;
    rc = rc ? rc : sk_astrom_solve(s.r->sources, w, h, s.e->image->wcs, cat, &p, &res);
    ok(rc == SK_OK, "%s: solved (%s)", label, rc ? sk_errmsg() : "ok");
    if (!rc) {
        tap_diag("%s: %ld matches kept of %ld, SIP order %d, rms %.4f\" = %.4f px; the initial WCS "
                 "was off by %.1f\", %.3f deg, scale %.4f", label, res->nmatch, res->ncandidates,
                 res->sip_order, res->rms_arcsec, res->rms_px, res->offset_arcsec, res->rotation_deg,
                 res->scale_ratio);
        double rms, max, corner;
        compare_wcs(truth, res->wcs, w, h, &rms, &max, &corner);
        ok(rms <= 0.05, "%s: solution against the true WCS over the image: rms %.4f px <= 0.05 "
           "(largest %.4f px, corners %.4f px)", label, rms, max, corner);
        ok(max <= 0.2, "%s: nowhere off by more than 0.2 px, the SIP-distorted corners (%.4f px) "
           "included (largest %.4f px)", label, corner, max);
        ok(res->sip_order == 3, "%s: SIP order 3 chosen for %ld matches", label, res->nmatch);
        ok(res->nmatch >= 50 && res->rms_arcsec > 0 && res->rms_arcsec < 0.1,
           "%s: %ld matches, rms %.4f\"", label, res->nmatch, res->rms_arcsec);
        ok(fabs(res->offset_arcsec - want_off) < 2 && fabs(fabs(res->rotation_deg) - want_rot) < 0.02 &&
           fabs(res->scale_ratio - want_scale) < 0.003,
           "%s: the initial WCS's error found by the pattern match: %.1f\" (%.0f), %.3f deg (%.1f), "
           "scale %.5f (%.5f)", label, res->offset_arcsec, want_off, res->rotation_deg, want_rot,
           res->scale_ratio, want_scale);
        /* the header cards are the solution */
        sk_wcs *again = NULL;
        char ctype[72] = "";
        sk_header_get_str(res->header, "CTYPE1", ctype, sizeof ctype);
        int hrc = sk_wcs_from_header(res->header, &again);
        double r2 = 1, m2 = 1, c2 = 1;
        if (!hrc)
            compare_wcs(res->wcs, again, w, h, &r2, &m2, &c2);
        ok(!hrc && m2 < 1e-9 && strcmp(ctype, "RA---TAN-SIP") == 0,
           "%s: its header cards (%s) parse to the same WCS (%.2g px)", label, ctype, m2);
        sk_wcs_free(again);
        /* matched pairs point at the same stars */
        long bad = 0;
        for (long k = 0; k < res->nmatch; k++) {
            const sk_source *src = &s.r->sources->src[res->src_index[k]];
            double ra, dec;
            sk_wcs_pix2sky(res->wcs, 1, &src->xwin, &src->ywin, &ra, &dec);
            double d = hypot((ra - cat->ra_deg[res->ref_index[k]]) * cos(dec * M_PI / 180),
                             dec - cat->dec_deg[res->ref_index[k]]) * 3600;
            bad += d > 1.0;
        }
        ok(bad == 0, "%s: every kept pair within 1\" through the solution (%ld not)", label, bad);
    }
    sk_astrom_result_free(res);
    sk_refcat_free(cat);
    sk_wcs_free(truth);
    free_sim(&s);
}

/* Clean failures: too few catalog stars, and a WCS far beyond the search. */
static void test_failures(void)
{
    char *sets[] = {"simulation.width_px=256", "simulation.height_px=256", "simulation.nstars=150",
                    "simulation.mag_min=16", "simulation.mag_max=21", "simulation.seed=8",
                    "simulation.galaxy_fraction=0", "simulation.wcs_offset_arcsec=5"};
    sim s;
    if (make_sim(sets, 8, &s)) {
        ok(0, "failures: imsim exposure");
        return;
    }
    long w = s.e->image->width, h = s.e->image->height;
    sk_refcat *cat = NULL;
    sk_refcat_read(s.refcat, "ra", "dec", "mag", NULL, &cat);
    sk_astrom_params p;
    sk_astrom_params_default(&p);
    sk_astrom_result *res = NULL;
    int rc = sk_astrom_solve(s.r->sources, w, h, s.e->image->wcs, cat, &p, &res);
    ok(rc == SK_OK && res->nmatch >= 10, "a 256x256 field solves with its whole catalog (%ld matches)",
       res ? res->nmatch : 0);
    sk_astrom_result_free(res);
    res = NULL;
    /* the 5 brightest catalog stars only */
    sk_refcat few = *cat;
    few.n = 0;
    double *keep_mag = malloc(sizeof(double) * (size_t)cat->n);
    memcpy(keep_mag, cat->mag, sizeof(double) * (size_t)cat->n);
    for (long k = 0; k < cat->n; k++)
        if (cat->mag[k] < 18.0 && few.n < 5)
            few.n++;
    /* reorder so that the first few.n rows are the bright ones */
    long j = 0;
    for (long k = 0; k < cat->n && j < few.n; k++)
        if (keep_mag[k] < 18.0) {
            double t;
            t = cat->ra_deg[j]; cat->ra_deg[j] = cat->ra_deg[k]; cat->ra_deg[k] = t;
            t = cat->dec_deg[j]; cat->dec_deg[j] = cat->dec_deg[k]; cat->dec_deg[k] = t;
            t = cat->mag[j]; cat->mag[j] = cat->mag[k]; cat->mag[k] = t;
            t = keep_mag[j]; keep_mag[j] = keep_mag[k]; keep_mag[k] = t;
            j++;
        }
    free(keep_mag);
    p.min_matches = 6;
    rc = sk_astrom_solve(s.r->sources, w, h, s.e->image->wcs, &few, &p, &res);
    ok(rc == SK_ENOTFOUND && res == NULL, "5 catalog stars, minimum 6 matches: SK_ENOTFOUND, no "
       "solution (%s)", sk_errmsg());
    /* a header WCS 5' off, beyond the 60" search */
    sk_header *hd = sk_header_copy(s.e->image->header);
    sk_sim_wcs_perturb(hd, 300.0, 45.0, 0.0, 0.0);
    sk_wcs *far = NULL;
    sk_wcs_from_header(hd, &far);
    rc = sk_astrom_solve(s.r->sources, w, h, far, cat, &p, &res);
    ok(rc == SK_ENOTFOUND && res == NULL && strstr(sk_errmsg(), "far off"),
       "a header WCS 5' off: SK_ENOTFOUND (%s)", sk_errmsg());
    p.search_radius_arcsec = 400;
    rc = sk_astrom_solve(s.r->sources, w, h, far, cat, &p, &res);
    ok(rc == SK_OK && res->nmatch >= 10, "... and solved when the search radius is 400\" (%ld matches, "
       "%.1f\" off)", res ? res->nmatch : 0, res ? res->offset_arcsec : 0);
    sk_astrom_result_free(res);
    res = NULL;
    ok(sk_astrom_solve(s.r->sources, w, h, NULL, cat, &p, &res) == SK_EINPUT,
       "no initial WCS: SK_EINPUT (%s)", sk_errmsg());
    sk_wcs_free(far);
    sk_header_free(hd);
    sk_refcat *none = NULL;
    ok(sk_refcat_read(s.refcat, "ra", "dec", "gmag", NULL, &none) == SK_EINPUT &&
       strstr(sk_errmsg(), "gmag"), "a missing magnitude column is named (%s)", sk_errmsg());
    sk_refcat_free(cat);
    free_sim(&s);
}

/* The real DECam cutouts with their real Gaia rows. */
static void test_decam(void)
{
    const char *chunks[] = {"tests/data/real/decam-legacysurvey/testcase6/gaia/chunk-03559.fits",
                            "tests/data/real/decam-legacysurvey/testcase6/gaia/chunk-03687.fits"};
    sk_refcat *cat = NULL, *more = NULL;
    int rc = sk_refcat_read(tap_src(chunks[0]), "ra", "dec", "phot_g_mean_mag", NULL, &cat);
    rc = rc ? rc : sk_refcat_read(tap_src(chunks[1]), "ra", "dec", "phot_g_mean_mag", NULL, &more);
    rc = rc ? rc : sk_refcat_append(cat, more);
    /* 113 + 897 rows; numbers from astropy 5.2 */
    ok(rc == SK_OK && cat->n == 113 + 897, "Gaia chunks read and appended (%ld rows)", cat ? cat->n : 0);
    sk_refcat_free(more);
    if (rc) {
        sk_refcat_free(cat);
        return;
    }
    sk_read_opts o;
    memset(&o, 0, sizeof o);
    char noise[4200], mask[4200];
    snprintf(noise, sizeof noise, "%s", tap_src("tests/data/real/decam-legacysurvey/testcase6/c4d_150110_053718_oow_z_ls9.S4.fits"));
    snprintf(mask, sizeof mask, "%s", tap_src("tests/data/real/decam-legacysurvey/testcase6/c4d_150110_053718_ood_z_ls9.S4.fits"));
    o.noise_path = noise;
    o.mask_path = mask;
    sk_image *img = NULL;
    rc = sk_fits_read_image(tap_src("tests/data/real/decam-legacysurvey/testcase6/c4d_150110_053718_ooi_z_ls9.S4.fits"),
                            &o, &img);
    sk_extract_result *r = NULL;
    sk_extract_params ep;
    sk_extract_params_default(&ep);
    rc = rc ? rc : sk_extract_run(img, &ep, 1, &r);
    sk_extract_params_clear(&ep);
    ok(rc == SK_OK, "DECam S4 cutout (100x100 px) read and extracted (%ld sources)", r ? r->sources->n : 0);
    if (!rc) {
        sk_astrom_params p;
        sk_astrom_params_default(&p);
        sk_astrom_result *res = NULL;
        rc = sk_astrom_solve(r->sources, img->width, img->height, img->wcs, cat, &p, &res);
        ok(rc == SK_ENOTFOUND && res == NULL,
           "DECam cutout: its 27\" field holds one Gaia star (G = 10.5, saturated): no solution, "
           "SK_ENOTFOUND (%s)", sk_errmsg());
        sk_astrom_result_free(res);
    }
    sk_extract_result_free(r);
    sk_image_free(img);
    sk_refcat_free(cat);
}

int main(void)
{
    tap_plan(27);
    if (getenv("SK_TEST_VERBOSE"))
        sk_log_set_level(SK_LOG_DEBUG);
    test_perturbed("20\", 0.5 deg, 0.5 %", "simulation.seed=7", "simulation.wcs_offset_arcsec=20",
                   "simulation.wcs_rotation_deg=0.5", "simulation.wcs_scale_error=0.005", 20, 0.5,
                   1 / 1.005);
    test_perturbed("30\", 1 deg, 1 %", "simulation.seed=17", "simulation.wcs_offset_arcsec=30",
                   "simulation.wcs_rotation_deg=1", "simulation.wcs_scale_error=0.01", 30, 1.0, 1 / 1.01);
    test_failures();
    test_decam();
    return tap_done();
}
