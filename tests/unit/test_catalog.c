/* test_catalog.c: reference catalogues against known truth: column maps, the
 * id (same content and map: same id, whatever the files are called and in
 * which form), CSV and FITS read alike, HEALPix cones that miss no pixel,
 * shards read back row for row, epoch propagation (proper motion over ten
 * years, parallax, error growth), colour transformations and their range. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <chealpix.h>

#include "skystack/skystack.h"
#include "calib/catalog_internal.h"
#include "../tap.h"

static void write_csv(const char *path, int shuffle_cols)
{
    FILE *f = fopen(path, "w");
    fprintf(f, shuffle_cols ? "g,dec,ra,pm_a,pm_d\n" : "ra,dec,g,pm_a,pm_d\n");
    for (int i = 0; i < 50; i++) {
        double ra = 10.0 + 0.01 * i, dec = -5.0 + 0.007 * i, g = 15.0 + 0.125 * i;
        if (shuffle_cols)
            fprintf(f, "%.17g,%.17g,%.17g,%d,%d\n", g, dec, ra, i, -i);
        else
            fprintf(f, "%.17g,%.17g,%.17g,%d,%d\n", ra, dec, g, i, -i);
    }
    fclose(f);
}

static void write_fits(const char *path)
{
    sk_table *t = sk_table_new("CAT", 50);
    sk_table_add_column(t, "RA", SK_COL_DOUBLE, 1, "deg");
    sk_table_add_column(t, "DEC", SK_COL_DOUBLE, 1, "deg");
    sk_table_add_column(t, "G", SK_COL_DOUBLE, 1, "mag");
    sk_table_add_column(t, "PM_A", SK_COL_FLOAT, 1, "");
    sk_table_add_column(t, "PM_D", SK_COL_INT32, 1, "");
    for (int i = 0; i < 50; i++) {
        sk_column_set(sk_table_column(t, "RA"), i, 0, 10.0 + 0.01 * i);
        sk_column_set(sk_table_column(t, "DEC"), i, 0, -5.0 + 0.007 * i);
        sk_column_set(sk_table_column(t, "G"), i, 0, 15.0 + 0.125 * i);
        sk_column_set(sk_table_column(t, "PM_A"), i, 0, i);
        sk_column_set(sk_table_column(t, "PM_D"), i, 0, -i);
    }
    sk_fits_write_table(path, t);
    sk_table_free(t);
}

static void test_maps_and_ids(const char *dir)
{
    sk_catmap m;
    ok(sk_catmap_parse("gaia", &m) == SK_OK && m.nbands == 3 && !strcmp(m.band[1], "BP") && m.err[0].snr,
       "the gaia preset: bands G, BP, RP, errors from S/N");
    ok(sk_catmap_parse("ra=a,dec=b,epoch=2016.0", &m) == SK_OK && m.f[SK_CAT_EPOCH].has_constant &&
       m.f[SK_CAT_EPOCH].constant == 2016.0, "a constant epoch");
    ok(sk_catmap_parse("ra=a", &m) == SK_EINPUT, "no dec: refused");
    sk_error_clear();
    ok(sk_catmap_parse("ra=a,dec=b,speed=c", &m) == SK_EINPUT && strstr(sk_errmsg(), "speed"),
       "an unknown name is named");
    sk_error_clear();

    char csv[4200], csv2[4200], fits[4200];
    snprintf(csv, sizeof csv, "%s/a.csv", dir);
    snprintf(csv2, sizeof csv2, "%s/other-name.csv", dir);
    snprintf(fits, sizeof fits, "%s/a.fits", dir);
    write_csv(csv, 0);
    write_csv(csv2, 1);
    write_fits(fits);
    sk_catmap_parse("ra=ra,dec=dec,pmra=pm_a,pmdec=pm_d,epoch=2000,mag:g=g", &m);
    sk_catsource *a = NULL, *b = NULL, *c = NULL;
    ok(sk_catsource_open(csv, &m, NULL, &a) == SK_OK, "CSV opened");
    ok(sk_catsource_open(csv2, &m, NULL, &b) == SK_OK, "CSV with its columns in another order");
    ok(sk_catsource_open(fits, &m, NULL, &c) == SK_OK, "FITS table opened (column names in upper case)");
    if (!a || !b || !c)
        return;
    is_int(sk_catsource_info(a)->nrows, 50, "50 rows");
    is_str(sk_catsource_info(b)->id, sk_catsource_info(a)->id, "same content, other file name and column order: same id");
    is_str(sk_catsource_info(c)->id, sk_catsource_info(a)->id, "the FITS table of the same values: same id");
    sk_catmap m2;
    sk_catmap_parse("ra=ra,dec=dec,pmra=pm_a,pmdec=pm_d,epoch=2015.5,mag:g=g", &m2);
    sk_catsource *d = NULL;
    sk_catsource_open(csv, &m2, NULL, &d);
    ok(d && strcmp(sk_catsource_info(d)->id, sk_catsource_info(a)->id) != 0, "another column map: another id");
    sk_catrows *r = NULL;
    ok(sk_catsource_cone(a, 10.1, -4.93, 0.05, &r) == SK_OK, "cone of a file");
    long want = 0;
    for (int i = 0; i < 50; i++)
        want += sk_cat_sep_deg(10.1, -4.93, 10.0 + 0.01 * i, -5.0 + 0.007 * i) <= 0.05;
    is_int(r ? r->n : -1, want, "the rows within the radius (%ld)", want);
    sk_catrows_free(r);
    sk_catsource_close(a);
    sk_catsource_close(b);
    sk_catsource_close(c);
    sk_catsource_close(d);
}

static void test_shards(const char *dir)
{
    /* 2000 rows over a few degrees; shards at nside 16 read back exactly */
    char csv[4200], out[4200];
    snprintf(csv, sizeof csv, "%s/wide.csv", dir);
    snprintf(out, sizeof out, "%s/shards", dir);
    FILE *f = fopen(csv, "w");
    fprintf(f, "ra,dec,mag\n");
    for (int i = 0; i < 2000; i++)
        fprintf(f, "%.10f,%.10f,%d\n", 359.0 + fmod(i * 0.0137, 3.0), -2.0 + fmod(i * 0.0071, 4.0), 12 + i % 7);
    fclose(f);
    sk_catingest_opts o = {.name = "wide", .version = "1", .columns = "ra=ra,dec=dec,mag:r=mag", .outdir = out,
                           .nside = 16, .block_rows = 333};
    const char *paths[1] = {csv};
    sk_catinfo info;
    ok(sk_catalog_ingest(paths, 1, &o, &info) == SK_OK, "ingest into shards (across RA = 0)");
    is_int(info.nrows, 2000, "every row ingested");
    sk_catsource *s = NULL;
    ok(sk_catsource_open(out, NULL, NULL, &s) == SK_OK, "the shard folder opened");
    if (!s)
        return;
    is_str(sk_catsource_info(s)->id, info.id, "the folder carries the ingest's id");
    sk_catrows *r = NULL;
    sk_catsource_cone(s, 0.2, 0.0, 0.6, &r);
    long want = 0;
    for (int i = 0; i < 2000; i++) {
        double ra = fmod(359.0 + fmod(i * 0.0137, 3.0), 360.0), dec = -2.0 + fmod(i * 0.0071, 4.0);
        want += sk_cat_sep_deg(0.2, 0.0, ra, dec) <= 0.6;
    }
    ok(r && r->n == want && want > 10, "cone across RA = 0 from the shards: %ld rows, %ld wanted", r ? r->n : -1, want);
    sk_catrows_free(r);
    sk_catsource_close(s);
    sk_catinfo_clear(&info);

    /* the cone's pixel list holds the pixel of every point within it */
    long *pix = NULL, np = 0, missing = 0;
    sk_healpix_cone(64, 123.4, 56.7, 0.4, &pix, &np);
    for (int k = 0; k < 4000; k++) {
        double a = k * 2.399963, rr = 0.4 * sqrt((k + 0.5) / 4000.0);
        double dec = 56.7 + rr * sin(a), ra = 123.4 + rr * cos(a) / cos(dec * M_PI / 180);
        long p = sk_healpix_nest(64, ra, dec), hit = 0;
        for (long j = 0; j < np; j++)
            hit |= pix[j] == p;
        missing += !hit;
    }
    is_int(missing, 0, "no point of the cone outside its pixels (%ld pixels)", np);
    free(pix);

    /* every point lies within the largest pixel radius of its pixel's centre,
       and the bound is tight (the farthest point found is close to it) */
    for (long nside = 16; nside <= 1024; nside *= 64) {
        double worst = 0, bound = sk_healpix_max_radius_deg(nside);
        for (int k = 0; k < 200000; k++) {
            double z = -1.0 + 2.0 * (k + 0.5) / 200000.0, ra = fmod(k * 137.50776405, 360.0);
            double dec = asin(z) * 180.0 / M_PI, th = 0, ph = 0;
            pix2ang_nest(nside, sk_healpix_nest(nside, ra, dec), &th, &ph);
            worst = fmax(worst, sk_cat_sep_deg(ra, dec, ph * 180.0 / M_PI, 90.0 - th * 180.0 / M_PI));
        }
        ok(worst <= bound && worst > 0.8 * bound, "nside %ld: farthest point %.5f deg from its pixel's centre, "
           "bound %.5f", nside, worst, bound);
    }
}

static void test_epoch(void)
{
    char band[1][SK_CAT_BANDLEN] = {"G"};
    sk_catrows *r = sk_catrows_new(1, band);
    sk_catrows_reserve(r, 3);
    r->n = 3;
    for (int k = 0; k < 3; k++) {
        r->ra_deg[k] = 150.0;
        r->dec_deg[k] = 60.0;
        r->epoch_yr[k] = 2016.0;
        r->ra_err_mas[k] = r->dec_err_mas[k] = 1.0f;
        r->pmra_mas_yr[k] = r->pmdec_mas_yr[k] = r->parallax_mas[k] = NAN;
        r->mag[0][k] = 15;
        r->mag_err[0][k] = 0.01f;
    }
    r->pmra_mas_yr[0] = 100.0f; /* mu_alpha* */
    r->pmdec_mas_yr[0] = -50.0f;
    r->parallax_mas[2] = 100.0f; /* 10 pc, no motion */
    double mjd = 51544.5 + (2026.0 - 2000.0) * 365.25;
    sk_epoch_params p = {1, 5.0};
    sk_catrows_propagate(r, mjd, NAN, &p);
    double dra_mas = (r->ra_deg[0] - 150.0) * cos(60.0 * M_PI / 180) * 3.6e6, ddec_mas = (r->dec_deg[0] - 60.0) * 3.6e6;
    is_near(dra_mas, 1000.0, 0.5, "ten years of 100 mas/yr in RA: %.3f mas", dra_mas);
    is_near(ddec_mas, -500.0, 0.5, "ten years of -50 mas/yr in Dec: %.3f mas", ddec_mas);
    is_near(r->ra_err_mas[0], 1.0, 1e-6, "a row with a proper motion keeps its error");
    is_near(r->ra_err_mas[1], sqrt(1.0 + 50.0 * 50.0), 1e-3, "a row without grows by 5 mas/yr x 10 yr");
    is_near(r->ra_deg[1], 150.0, 1e-12, "and stays where it was");
    double shift = sk_cat_sep_deg(150.0, 60.0, r->ra_deg[2], r->dec_deg[2]) * 3.6e6;
    ok(shift > 1.0 && shift <= 101.0, "a 100 mas parallax moves a star by up to 100 mas (%.1f)", shift);
    is_near(r->epoch_yr[0], 2026.0, 1e-9, "rows now at the image's epoch");
    sk_catrows_free(r);
}

static void test_colour(void)
{
    json_error_t jerr;
    json_t *root = json_loads("{\"extraction\": {\"colour_terms\": [{\"instrument\": \"DECam\", \"filter\": \"r\", "
                              "\"band\": \"G\", \"colour\": [\"BP\", \"RP\"], \"coeffs\": [0.1, -0.2, 0.05], "
                              "\"colour_range\": [0.0, 3.0], \"reference\": \"test\"}]}}", 0, &jerr);
    sk_colour_term *t = NULL;
    int n = 0;
    ok(sk_colour_terms_from_json(root, &t, &n) == SK_OK && n == 1, "a colour term read");
    char bands[3][SK_CAT_BANDLEN] = {"G", "BP", "RP"};
    sk_catrows *r = sk_catrows_new(3, bands);
    sk_catrows_reserve(r, 3);
    r->n = 3;
    double x[3] = {1.0, 3.5, -0.2};
    for (int k = 0; k < 3; k++) {
        r->mag[0][k] = 17.0f;
        r->mag[1][k] = (float)(17.5 + 0.5 * x[k]);
        r->mag[2][k] = (float)(17.5 - 0.5 * x[k]);
        for (int b = 0; b < 3; b++)
            r->mag_err[b][k] = 0.01f;
    }
    ok(sk_colour_term_find(t, n, "DECam", "r DECam SDSS c0002", r) == t, "found by instrument and the filter's first word");
    ok(sk_colour_term_find(t, n, "DECam", "g DECam", r) == NULL, "not for another filter");
    double mag[3], err[3];
    long used = sk_colour_term_apply(t, r, mag, err);
    is_int(used, 1, "stars outside the colour range are not used");
    is_near(mag[0], 17.0 + 0.1 - 0.2 + 0.05, 1e-5, "r = G + 0.1 - 0.2 x + 0.05 x^2 at x = 1");
    ok(isnan(mag[1]) && isnan(mag[2]), "too red and too blue: no magnitude");
    ok(err[0] > 0.01 && err[0] < 0.02, "the colour's error propagated (%.4f)", err[0]);
    free(t);
    sk_catrows_free(r);
    json_decref(root);
    /* the shipped defaults: g, r, i from Gaia G, BP-RP */
    sk_config *cfg = NULL;
    ok(sk_config_load(NULL, NULL, 0, &cfg) == SK_OK, "the defaults load");
    ok(cfg && sk_colour_terms_from_json(cfg->root, &t, &n) == SK_OK && n == 3, "three default colour terms");
    free(t);
    sk_config_free(cfg);
}

/* The HEALPix-chunked Gaia files of a survey pipeline: the folder read
 * directly and its catingest copy give the same rows of a cone. */
static void test_gaia_chunks(const char *dir)
{
    const char *gdir = tap_src("tests/data/real/decam-legacysurvey/testcase3/gaia");
    char chunk[4200];
    snprintf(chunk, sizeof chunk, "%s/chunk-04759.fits", gdir);
    sk_catmap m;
    sk_catmap_parse("gaia", &m);
    sk_catsource *one = NULL;
    ok(sk_catsource_open(chunk, &m, NULL, &one) == SK_OK, "a Gaia chunk read with the gaia map");
    if (!one)
        return;
    sk_catrows *r = NULL;
    sk_catsource_cone(one, 0, 90, 180, &r);
    long in_ring = 0;
    for (long k = 0; r && k < r->n; k++) {
        long pix = 0;
        ang2pix_ring(32, (90 - r->dec_deg[k]) * M_PI / 180, r->ra_deg[k] * M_PI / 180, &pix);
        in_ring += pix == 4759;
    }
    ok(r && r->n > 50 && in_ring == r->n, "chunk-04759 holds RING pixel 4759 of nside 32 (%ld of %ld rows)", in_ring,
       r ? r->n : -1);
    double ra = r && r->n ? r->ra_deg[0] : 0, dec = r && r->n ? r->dec_deg[0] : 0;
    sk_catrows_free(r);
    sk_catsource_close(one);

    sk_catsource *chunks = NULL, *shards = NULL;
    ok(sk_catsource_open(gdir, &m, NULL, &chunks) == SK_OK, "the chunk folder opened");
    char out[4200];
    snprintf(out, sizeof out, "%s/gaia-shards", dir);
    const char *paths[4];
    static const char *const names[4] = {"chunk-05015.fits", "chunk-04759.fits", "chunk-04887.fits", "chunk-04886.fits"};
    char buf[4][4200];
    for (int i = 0; i < 4; i++) {
        snprintf(buf[i], sizeof buf[i], "%s/%s", gdir, names[i]);
        paths[i] = buf[i];
    }
    sk_catingest_opts o = {.name = "gaia", .version = "edr3", .columns = "gaia", .outdir = out, .nside = 64};
    sk_catinfo info;
    ok(sk_catalog_ingest(paths, 4, &o, &info) == SK_OK && info.nbands == 3, "the chunks ingested (G, BP, RP)");
    sk_catinfo_clear(&info);
    sk_catsource_open(out, NULL, NULL, &shards);
    sk_catrows *a = NULL, *b = NULL;
    if (chunks)
        sk_catsource_cone(chunks, ra, dec, 0.3, &a);
    if (shards)
        sk_catsource_cone(shards, ra, dec, 0.3, &b);
    ok(a && b && a->n == b->n && a->n > 0, "the same rows around (%.4f, %.4f) from chunks and shards: %ld, %ld", ra, dec,
       a ? a->n : -1, b ? b->n : -1);
    int pm = 0;
    for (long k = 0; a && k < a->n; k++)
        pm += isfinite(a->pmra_mas_yr[k]) && (a->epoch_yr[k] == 2015.5 || a->epoch_yr[k] == 2016.0);
    ok(a && pm > a->n / 2, "proper motions and a Gaia epoch (2015.5 or 2016.0) read for %d of %ld rows (epoch %.1f)", pm,
       a ? a->n : -1, a && a->n ? a->epoch_yr[0] : 0.0);
    sk_catrows_free(a);
    sk_catrows_free(b);
    sk_catsource_close(chunks);
    sk_catsource_close(shards);
}

int main(void)
{
    tap_plan(43);
    const char *dir = tap_tmpdir();
    test_maps_and_ids(dir);
    test_shards(dir);
    test_epoch();
    test_colour();
    test_gaia_chunks(dir);
    return tap_done();
}
