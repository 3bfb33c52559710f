/* query_print.c: printing the images of a query as paths, ids, JSON Lines or an aligned table (imquery's outputs, see imquery(1)). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "skystack/error.h"
#include "skystack/json.h"
#include "skystack/query.h"
#include "skystack/storage.h"

/* A cell as JSON by its column's kind (non-finite reals are null). */
static json_t *cell_json(const sk_db_rows *rows, int row, int col)
{
    const char *v = sk_db_rows_text(rows, row, col);
    if (!v)
        return json_null();
    json_t *j;
    switch (sk_db_rows_kind(rows, col)) {
    case SK_DB_COL_BOOL:
        j = json_boolean(v[0] == 't');
        break;
    case SK_DB_COL_BIGINT:
    case SK_DB_COL_INT:
        j = json_integer(strtoll(v, NULL, 10));
        break;
    case SK_DB_COL_REAL: {
        double d = strtod(v, NULL);
        j = isfinite(d) ? json_real(d) : json_null();
        break;
    }
    default:
        j = json_string(v);
    }
    return j ? j : json_null();
}

int sk_query_print_json(FILE *out, const sk_db_rows *rows, const char *root)
{
    int ncols = sk_db_rows_ncols(rows);
    int path_col = sk_db_rows_col(rows, "filepath");
    for (int row = 0; row < sk_db_rows_count(rows); row++) {
        json_t *o = json_object();
        for (int c = 0; c < ncols; c++)
            json_object_set_new(o, sk_db_rows_name(rows, c), cell_json(rows, row, c));
        if (path_col >= 0) {
            char path[8192];
            const char *rel = sk_db_rows_text(rows, row, path_col);
            int st = sk_storage_resolve(root, rel ? rel : "", path, sizeof path);
            if (st) {
                json_decref(o);
                return st;
            }
            json_object_set_new(o, "path", json_string(path));
        }
        char *text = sk_json_canonical(o);
        json_decref(o);
        if (!text)
            return sk_error(SK_EIO, "--json: cannot serialise row %d", row);
        fprintf(out, "%s\n", text);
        free(text);
    }
    return SK_OK;
}

/* The columns of the table and their headings. */
static const char *const table_cols[] = {"id", "filter", "mjd", "exp_time", "fwhm_estimate",
                                         "lim_mag_estimate", "airmass", "instrument", "target",
                                         "section_id", "filepath"};
static const char *const table_heads[] = {"id", "filter", "mjd", "exptime", "seeing", "lim_mag",
                                          "airmass", "instrument", "target", "section", "path"};
enum { NTABLE_COLS = sizeof table_cols / sizeof table_cols[0], TABLE_MJD_COL = 2 };

/* The text of a table cell ("-" for none): numbers other than ids
 * rounded, MJD to 5 decimals, the rest to 2. */
static const char *table_cell(const sk_db_rows *rows, int row, int col, int table_col,
                              char cell[64])
{
    const char *v = col >= 0 ? sk_db_rows_text(rows, row, col) : NULL;
    if (v && sk_db_rows_is_numeric(rows, col) && sk_db_rows_kind(rows, col) != SK_DB_COL_BIGINT) {
        snprintf(cell, 64, table_col == TABLE_MJD_COL ? "%.5f" : "%.2f", strtod(v, NULL));
        v = cell;
    }
    return v ? v : "-";
}

int sk_query_print_table(FILE *out, const sk_db_rows *rows)
{
    int idx[NTABLE_COLS];
    size_t width[NTABLE_COLS];
    int nrows = sk_db_rows_count(rows);
    char cell[64];
    for (int c = 0; c < NTABLE_COLS; c++) {
        idx[c] = sk_db_rows_col(rows, table_cols[c]);
        width[c] = strlen(table_heads[c]);
        for (int row = 0; row < nrows; row++) {
            size_t n = strlen(table_cell(rows, row, idx[c], c, cell));
            if (n > width[c])
                width[c] = n;
        }
    }
    for (int c = 0; c < NTABLE_COLS; c++) {
        if (c + 1 < NTABLE_COLS)
            fprintf(out, "%-*s  ", (int)width[c], table_heads[c]);
        else
            fprintf(out, "%s\n", table_heads[c]);
    }
    for (int row = 0; row < nrows; row++)
        for (int c = 0; c < NTABLE_COLS; c++) {
            const char *v = table_cell(rows, row, idx[c], c, cell);
            int right = idx[c] >= 0 && sk_db_rows_is_numeric(rows, idx[c]);
            if (c + 1 == NTABLE_COLS)
                fprintf(out, "%s\n", v);
            else
                fprintf(out, right ? "%*s  " : "%-*s  ", (int)width[c], v);
        }
    return SK_OK;
}

int sk_query_print_ids(FILE *out, const sk_db_rows *rows)
{
    int c = sk_db_rows_col(rows, "id");
    for (int row = 0; row < sk_db_rows_count(rows); row++) {
        const char *v = sk_db_rows_text(rows, row, c);
        fprintf(out, "%s\n", v ? v : "");
    }
    return SK_OK;
}

int sk_query_print_paths(FILE *out, const sk_db_rows *rows, const char *root)
{
    int c = sk_db_rows_col(rows, "filepath");
    for (int row = 0; row < sk_db_rows_count(rows); row++) {
        char path[8192];
        const char *rel = sk_db_rows_text(rows, row, c);
        int st = sk_storage_resolve(root, rel ? rel : "", path, sizeof path);
        if (st)
            return st;
        fprintf(out, "%s\n", path);
    }
    return SK_OK;
}
