/* test_table.c: binary tables: every column type, TDIM vector columns, strings, units and keywords round trip; the real Gaia rows read back as astropy reads them. */
#include <fitsio.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include "skystack/skystack.h"
#include "../tap.h"
#include "../data/fits/real_fixtures.h"

static char *tmp_path(const char *name)
{
    static char buf[8][4200];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", tap_tmpdir(), name);
    return b;
}

enum { NROWS = 9, PSF_N = 5, PSF_NPOL = 3 };

static sk_table *make_table(void)
{
    sk_table *t = sk_table_new("CATALOG", NROWS);
    sk_column *c;
    c = sk_table_add_column(t, "RA", SK_COL_DOUBLE, 1, "deg");
    for (long r = 0; r < NROWS; r++)
        sk_column_set(c, r, 0, 359.9999999999 - r * 1e-9);
    c = sk_table_add_column(t, "MAG", SK_COL_FLOAT, 1, "mag");
    for (long r = 0; r < NROWS; r++)
        sk_column_set(c, r, 0, r == 3 ? NAN : 18.25 + r / 7.0);
    c = sk_table_add_column(t, "ID", SK_COL_INT64, 1, NULL);
    for (long r = 0; r < NROWS; r++)
        ((int64_t *)c->data)[r] = (int64_t)4463068845631907456LL + r * 3 - (r == 8 ? INT64_C(9000000000000000000) : 0);
    c = sk_table_add_column(t, "NPIX", SK_COL_INT32, 1, "pix");
    for (long r = 0; r < NROWS; r++)
        sk_column_set(c, r, 0, r % 2 ? -2147483648.0 + r : 2147483647.0 - r);
    c = sk_table_add_column(t, "FLAGS", SK_COL_INT16, 1, NULL);
    for (long r = 0; r < NROWS; r++)
        sk_column_set(c, r, 0, r % 2 ? -32768 + r : 32767 - r);
    c = sk_table_add_column(t, "CLASS", SK_COL_UINT8, 1, NULL);
    for (long r = 0; r < NROWS; r++)
        sk_column_set(c, r, 0, r * 31 % 256);
    c = sk_table_add_column(t, "GOOD", SK_COL_LOGICAL, 1, NULL);
    for (long r = 0; r < NROWS; r++)
        sk_column_set(c, r, 0, r % 3 == 0);
    c = sk_table_add_column(t, "NAME", SK_COL_STRING, 12, NULL);
    for (long r = 0; r < NROWS; r++) {
        char name[32];
        snprintf(name, sizeof name, r == 4 ? "exactly12chr" : "star %ld", r);
        sk_column_set_str(c, r, name);
    }
    c = sk_table_add_column(t, "FLUX_APER", SK_COL_DOUBLE, 4, "count");
    for (long r = 0; r < NROWS; r++)
        for (long e = 0; e < 4; e++)
            sk_column_set(c, r, e, 1000.0 * r + e + 0.125);
    c = sk_table_add_column(t, "PSF_MASK", SK_COL_FLOAT, PSF_N * PSF_N * PSF_NPOL, NULL);
    c->ndims = 3;
    c->dims[0] = PSF_N;
    c->dims[1] = PSF_N;
    c->dims[2] = PSF_NPOL;
    for (long r = 0; r < NROWS; r++)
        for (long e = 0; e < c->repeat; e++)
            sk_column_set(c, r, e, sin(r * 100.0 + e));
    sk_header_set_long(t->header, "POLNAXIS", 2, "number of context parameters");
    sk_header_set_double(t->header, "PSF_SAMP", 0.75, "sampling step");
    sk_header_set_str(t->header, "POLNAME1", "X_IMAGE", NULL);
    return t;
}

static void test_round_trip(void)
{
    sk_table *t = make_table();
    ok(t && t->ncols == 10, "table with 10 columns");
    ok(sk_table_add_column(t, "ra", SK_COL_FLOAT, 1, NULL) == NULL && sk_errstatus() == SK_EINPUT,
       "duplicate column (case-insensitive) refused");
    ok(sk_table_add_column(t, "X", 99, 1, NULL) == NULL, "unknown type refused");
    ok(sk_table_add_column(t, "Y", SK_COL_FLOAT, 0, NULL) == NULL, "repeat 0 refused");
    ok(sk_table_column(t, "psf_mask") == &t->cols[9], "column lookup is case-insensitive");
    ok(sk_table_column(t, "NOPE") == NULL, "absent column");

    const char *path = tmp_path("table.fits");
    ok(sk_fits_write_table(path, t) == SK_OK, "write table (%s)", sk_errmsg());
    sk_table *b = NULL;
    ok(sk_fits_read_table(path, NULL, &b) == SK_OK && b, "read it back (%s)", sk_errmsg());
    if (!b) {
        sk_table_free(t);
        return;
    }
    is_str(b->extname, "CATALOG", "EXTNAME");
    is_int(b->nrows, NROWS, "rows");
    is_int(b->ncols, t->ncols, "columns");
    for (int i = 0; i < t->ncols && i < b->ncols; i++) {
        const sk_column *x = &t->cols[i], *y = &b->cols[i];
        is_str(y->name, x->name, "column %d name", i);
        is_int(y->type, x->type, "%s type", x->name);
        is_int(y->repeat, x->repeat, "%s repeat", x->name);
        is_str(y->unit, x->unit, "%s unit", x->name);
        size_t bytes = x->type == SK_COL_STRING ? (size_t)NROWS * (x->repeat + 1)
                                                : (size_t)NROWS * x->repeat *
                                                      (x->type == SK_COL_DOUBLE || x->type == SK_COL_INT64 ? 8
                                                       : x->type == SK_COL_FLOAT || x->type == SK_COL_INT32 ? 4
                                                       : x->type == SK_COL_INT16 ? 2 : 1);
        ok(memcmp(x->data, y->data, bytes) == 0, "%s values identical", x->name);
    }
    const sk_column *psf = sk_table_column(b, "PSF_MASK");
    ok(psf && psf->ndims == 3 && psf->dims[0] == PSF_N && psf->dims[1] == PSF_N && psf->dims[2] == PSF_NPOL,
       "PSF_MASK keeps TDIM (5, 5, 3)");
    ok(sk_table_column(b, "RA")->ndims == 0, "scalar column has no TDIM");
    is_str(sk_column_str(sk_table_column(b, "NAME"), 4), "exactly12chr", "full-width string");
    is_str(sk_column_str(sk_table_column(b, "NAME"), 2), "star 2", "string row 2");
    ok(isnan(sk_column_get(sk_table_column(b, "MAG"), 3, 0)), "NaN float survives");
    is_near(sk_column_get(sk_table_column(b, "FLUX_APER"), 7, 2), 7002.125, 0, "vector element (7, 2)");
    is_near(sk_column_get(sk_table_column(b, "GOOD"), 3, 0), 1, 0, "logical true");
    is_near(sk_column_get(sk_table_column(b, "GOOD"), 4, 0), 0, 0, "logical false");
    ok(sk_column_str(sk_table_column(b, "RA"), 0) == NULL, "string access on a number column is NULL");
    long l = 0;
    double d = 0;
    char s[80];
    ok(sk_header_get_long(b->header, "POLNAXIS", &l) == 1 && l == 2, "POLNAXIS keyword");
    ok(sk_header_get_double(b->header, "PSF_SAMP", &d) == 1 && d == 0.75, "PSF_SAMP keyword");
    ok(sk_header_get_str(b->header, "POLNAME1", s, sizeof s) == 1 && !strcmp(s, "X_IMAGE"), "POLNAME1");
    ok(sk_header_find(b->header, "TTYPE1") < 0 && sk_header_find(b->header, "NAXIS2") < 0,
       "structural cards not in the extra keywords");

    /* What cfitsio itself sees: TFORM, TDIM, TUNIT. */
    fitsfile *f;
    int status = 0, hdutype;
    char val[FLEN_VALUE];
    fits_open_diskfile(&f, path, READONLY, &status);
    fits_movabs_hdu(f, 2, &hdutype, &status);
    fits_read_key(f, TSTRING, "TFORM10", val, NULL, &status);
    is_str(val, "75E", "PSF_MASK TFORM");
    fits_read_key(f, TSTRING, "TDIM10", val, NULL, &status);
    is_str(val, "(5,5,3)", "PSF_MASK TDIM");
    fits_read_key(f, TSTRING, "TFORM8", val, NULL, &status);
    is_str(val, "12A", "NAME TFORM");
    fits_read_key(f, TSTRING, "TUNIT1", val, NULL, &status);
    is_str(val, "deg", "RA TUNIT");
    fits_close_file(f, &status);
    is_int(status, 0, "cfitsio read the keywords");
    sk_table_free(b);

    /* A product with an image and tables (PSFEx-like), table chosen by name. */
    const char *multi = tmp_path("multi.fits");
    sk_fits_writer *w;
    float img[6] = {1, 2, 3, 4, 5, 6};
    sk_table *empty = sk_table_new("EMPTY", 0);
    sk_table_add_column(empty, "A", SK_COL_DOUBLE, 1, NULL);
    sk_table_add_column(empty, "S", SK_COL_STRING, 5, NULL);
    ok(sk_fits_writer_open(multi, 0, &w) == SK_OK, "writer");
    sk_fits_writer_add_image(w, "BKG", -32, 3, 2, img, NULL);
    ok(sk_fits_writer_add_table(w, empty) == SK_OK, "add an empty table");
    strcpy(t->extname, "PSF_DATA");
    ok(sk_fits_writer_add_table(w, t) == SK_OK, "add PSF_DATA");
    ok(sk_fits_writer_commit(w) == SK_OK, "commit");
    ok(sk_fits_read_table(multi, "PSF_DATA", &b) == SK_OK && b->nrows == NROWS &&
           sk_table_column(b, "PSF_MASK")->ndims == 3,
       "table by name");
    sk_table_free(b);
    ok(sk_fits_read_table(multi, NULL, &b) == SK_OK && b->nrows == 0 && b->ncols == 2 &&
           !strcmp(b->extname, "EMPTY"),
       "default: the first table, zero rows read");
    sk_table_free(b);
    b = NULL;
    is_int(sk_fits_read_table(multi, "BKG", &b), SK_EINPUT, "an image HDU is not a table");
    ok(b == NULL && strstr(sk_errmsg(), "multi.fits"), "message names the file: %s", sk_errmsg());
    is_int(sk_fits_read_table(multi, "NOPE", &b), SK_EINPUT, "missing table HDU");
    ok(strstr(sk_errmsg(), "NOPE") != NULL, "message names the HDU: %s", sk_errmsg());
    sk_table_free(empty);

    /* A table file cut short: refused, the message names the file. */
    const char *cut = tmp_path("cut.fits");
    sk_table *big = sk_table_new("BIG", 2000);
    sk_table_add_column(big, "X", SK_COL_DOUBLE, 3, NULL);
    ok(sk_fits_write_table(cut, big) == SK_OK, "write a 48 kB table");
    sk_table_free(big);
    ok(truncate(cut, 2880 * 4) == 0, "cut it to 4 blocks");
    b = NULL;
    is_int(sk_fits_read_table(cut, NULL, &b), SK_EINPUT, "truncated table refused");
    ok(b == NULL && strstr(sk_errmsg(), "cut.fits") && strstr(sk_errmsg(), "truncated"), "message: %s",
       sk_errmsg());
    sk_table_free(t);
}

static void test_gaia(void)
{
    sk_table *g = NULL;
    int rc = sk_fits_read_table(tap_src(GAIA_PATH), NULL, &g);
    ok(rc == SK_OK && g, "Gaia chunk read (%s)", sk_errmsg());
    if (!g)
        return;
    is_int(g->nrows, GAIA_NROWS, "Gaia rows");
    is_int(g->ncols, GAIA_NCOLS, "Gaia columns");
    sk_column *id = sk_table_column(g, "source_id"), *ra = sk_table_column(g, "ra"),
              *dec = sk_table_column(g, "dec"), *gmag = sk_table_column(g, "phot_g_mean_mag"),
              *nobs = sk_table_column(g, "phot_g_n_obs"), *dup = sk_table_column(g, "duplicated_source"),
              *ag = sk_table_column(g, "a_g_val");
    ok(id && ra && dec && gmag && nobs && dup && ag, "columns found by name");
    if (!(id && ra && dec && gmag && nobs && dup && ag)) {
        sk_table_free(g);
        return;
    }
    ok(id->type == SK_COL_INT64 && ra->type == SK_COL_DOUBLE && gmag->type == SK_COL_FLOAT &&
           nobs->type == SK_COL_INT16 && dup->type == SK_COL_LOGICAL,
       "K, D, E, I, L types");
    ok(((int64_t *)id->data)[0] == (int64_t)GAIA_SOURCE_ID_0, "source_id[0] exact (64-bit)");
    ok(sk_column_get(ra, 1, 0) == GAIA_RA_1, "ra[1] exact");
    ok(sk_column_get(dec, 1, 0) == GAIA_DEC_1, "dec[1] exact");
    ok(sk_column_get(gmag, 0, 0) == GAIA_GMAG_0, "phot_g_mean_mag[0] exact");
    is_int(sk_column_get(nobs, 0, 0), GAIA_G_N_OBS_0, "phot_g_n_obs[0]");
    long ndup = 0, nnan = 0;
    double sum = 0;
    for (long r = 0; r < g->nrows; r++) {
        ndup += sk_column_get(dup, r, 0) != 0;
        nnan += isnan(sk_column_get(ag, r, 0));
        sum += sk_column_get(ra, r, 0);
    }
    is_int(ndup, GAIA_N_DUPLICATED, "duplicated_source true count");
    is_int(nnan, GAIA_N_AG_NAN, "a_g_val NaN count");
    is_near(sum, GAIA_SUM_RA, 1e-9, "sum of ra");
    sk_table_free(g);
}

/* A table written by astropy (tests/data/fits/make_astropy_table.py). */
static void test_astropy_kinds(void)
{
    sk_table *t = NULL;
    ok(sk_fits_read_table(tap_src("tests/data/fits/astropy_table.fits"), "KINDS", &t) == SK_OK && t,
       "astropy table read (%s)", sk_errmsg());
    if (!t)
        return;
    sk_column *u16 = sk_table_column(t, "U16"), *u32 = sk_table_column(t, "U32"),
              *mat = sk_table_column(t, "MAT"), *label = sk_table_column(t, "LABEL");
    ok(u16 && u32 && mat && label, "all four columns");
    if (u16 && u32 && mat && label) {
        ok(u16->type == SK_COL_INT32 && sk_column_get(u16, 2, 0) == 65535 && sk_column_get(u16, 1, 0) == 1,
           "uint16 (TZERO 32768) widened to int32 with its values");
        ok(u32->type == SK_COL_INT64 && sk_column_get(u32, 2, 0) == 4294967295.0 && sk_column_get(u32, 1, 0) == 7,
           "uint32 (TZERO 2^31) widened to int64 with its values");
        ok(mat->repeat == 6 && mat->ndims == 2 && mat->dims[0] == 3 && mat->dims[1] == 2, "TDIM (3,2)");
        is_str(mat->unit, "adu", "TUNIT");
        is_near(sk_column_get(mat, 1, 4), 10.0, 0, "MAT[1] element 4 (astropy [1][1][1])");
        is_str(sk_column_str(label, 2), "gamma-ra", "string cut to its 8 characters");
    }
    char s[32];
    ok(sk_header_get_str(t->header, "ORIGIN", s, sizeof s) == 1 && !strcmp(s, "astropy"), "extra keyword");
    sk_table_free(t);
}

int main(void)
{
    tap_plan(115);
    test_round_trip();
    test_gaia();
    test_astropy_kinds();
    return tap_done();
}
