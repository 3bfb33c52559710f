/* test_db_rows.c: the row set of a query (names, kinds, values, SQL NULL) and imquery's outputs printed from it: ids, paths, JSON Lines and the aligned table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/query.h"
#include "db/rows_priv.h"
#include "../tap.h"

/* What `print` writes, read back from a temporary file (malloc'd). */
static char *printed(int (*print)(FILE *, const sk_db_rows *, const char *), const sk_db_rows *r,
                     const char *root, int *st)
{
    FILE *f = tmpfile();
    *st = print(f, r, root);
    long n = ftell(f);
    rewind(f);
    char *text = calloc((size_t)n + 1, 1);
    if (text && fread(text, 1, (size_t)n, f) != (size_t)n)
        text[0] = '\0';
    fclose(f);
    return text;
}

static int print_ids(FILE *f, const sk_db_rows *r, const char *root)
{
    (void)root;
    return sk_query_print_ids(f, r);
}

static int print_table(FILE *f, const sk_db_rows *r, const char *root)
{
    (void)root;
    return sk_query_print_table(f, r);
}

int main(void)
{
    tap_plan(22);
    const char *names[] = {"id", "filter", "mjd", "width", "is_bad", "lim_mag_estimate", "filepath"};
    const int kinds[] = {SK_DB_COL_BIGINT, SK_DB_COL_TEXT, SK_DB_COL_REAL, SK_DB_COL_INT,
                         SK_DB_COL_BOOL, SK_DB_COL_REAL, SK_DB_COL_TEXT};
    sk_db_rows *r = sk_db_rows_new(7, names, kinds);
    ok(r != NULL, "an empty row set");
    is_int(sk_db_rows_count(r), 0, "no rows yet");
    const char *row1[] = {"12", "r", "60000.123456789", "2048", "f", NULL, "sci/a.fits"};
    const char *row2[] = {"7", "g", "60001.5", "1024", "t", "22.25", "sci/b.fits"};
    ok(sk_db_rows_add(r, row1) == SK_OK && sk_db_rows_add(r, row2) == SK_OK, "two rows added");
    is_int(sk_db_rows_count(r), 2, "two rows");
    is_int(sk_db_rows_ncols(r), 7, "seven columns");
    is_int(sk_db_rows_col(r, "mjd"), 2, "a column found by name");
    is_int(sk_db_rows_col(r, "nope"), -1, "an unknown column is -1");
    is_str(sk_db_rows_name(r, 6), "filepath", "a column's name");
    ok(sk_db_rows_name(r, 7) == NULL, "no name out of range");
    ok(sk_db_rows_is_numeric(r, 0) && sk_db_rows_is_numeric(r, 3) && sk_db_rows_is_numeric(r, 2),
       "ids, integers and reals are numeric");
    ok(!sk_db_rows_is_numeric(r, 1) && !sk_db_rows_is_numeric(r, 4), "text and booleans are not");
    ok(sk_db_rows_text(r, 0, 5) == NULL, "SQL NULL is a NULL value");
    ok(isnan(sk_db_rows_double(r, 0, 5)), "and NaN as a number");
    ok(sk_db_rows_text(r, 2, 0) == NULL && sk_db_rows_text(r, 0, 9) == NULL,
       "cells out of range are NULL");
    is_near(sk_db_rows_double(r, 1, 5), 22.25, 0, "a real cell");
    ok(sk_db_rows_ll(r, 0, 0) == 12 && sk_db_rows_ll(r, 1, 3) == 1024, "integer cells");
    row1[1] = "changed";
    is_str(sk_db_rows_text(r, 0, 1), "r", "values are copied");

    int st;
    char *text = printed(print_ids, r, NULL, &st);
    is_str(text, "12\n7\n", "ids, one a line");
    free(text);
    text = printed(sk_query_print_paths, r, "/data", &st);
    is_str(text, "/data/sci/a.fits\n/data/sci/b.fits\n", "paths under the data root");
    free(text);
    text = printed(sk_query_print_json, r, "/data", &st);
    is_str(text,
           "{\"filepath\":\"sci/a.fits\",\"filter\":\"r\",\"id\":12,\"is_bad\":false,"
           "\"lim_mag_estimate\":null,\"mjd\":60000.123456789,\"path\":\"/data/sci/a.fits\","
           "\"width\":2048}\n"
           "{\"filepath\":\"sci/b.fits\",\"filter\":\"g\",\"id\":7,\"is_bad\":true,"
           "\"lim_mag_estimate\":22.25,\"mjd\":60001.5,\"path\":\"/data/sci/b.fits\","
           "\"width\":1024}\n",
           "JSON Lines: typed values, null for NULL, the absolute path");
    free(text);
    text = printed(print_table, r, NULL, &st);
    is_str(text,
           "id  filter  mjd          exptime  seeing  lim_mag  airmass  instrument  target  "
           "section  path\n"
           "12  r       60000.12346  -        -             -  -        -           -       "
           "-        sci/a.fits\n"
           " 7  g       60001.50000  -        -         22.25  -        -           -       "
           "-        sci/b.fits\n",
           "the table: MJD to 5 decimals, other numbers to 2 and right-aligned, '-' for none");
    free(text);
    const char *bad[] = {"3", "r", "1", "1", "f", NULL, "../x.fits"};
    sk_db_rows_add(r, bad);
    text = printed(sk_query_print_paths, r, "/data", &st);
    ok(st == SK_EIO, "a stored path leaving the data root is refused");
    free(text);
    sk_db_rows_free(r);
    sk_db_rows_free(NULL);
    return tap_done();
}
