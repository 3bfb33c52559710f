/* db_rows.c: the row set a query returns, copied out of the database result: column names, kinds and text values (see skystack/db.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "db_priv.h"
#include "rows_priv.h"

struct sk_db_rows {
    int nrows, ncols, cap_rows;
    char **names;        /* ncols column names */
    int *kinds;          /* ncols enum sk_db_col_kind */
    char **cells;        /* nrows * ncols text values, NULL for SQL NULL */
};

sk_db_rows *sk_db_rows_new(int ncols, const char *const *names, const int *kinds)
{
    sk_db_rows *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->ncols = ncols;
    r->names = calloc((size_t)ncols + 1, sizeof *r->names);
    r->kinds = calloc((size_t)ncols + 1, sizeof *r->kinds);
    if (!r->names || !r->kinds) {
        sk_db_rows_free(r);
        return NULL;
    }
    for (int c = 0; c < ncols; c++) {
        r->names[c] = strdup(names[c] ? names[c] : "");
        r->kinds[c] = kinds[c];
        if (!r->names[c]) {
            sk_db_rows_free(r);
            return NULL;
        }
    }
    return r;
}

int sk_db_rows_add(sk_db_rows *r, const char *const *values)
{
    if (r->nrows == r->cap_rows) {
        int cap = r->cap_rows ? 2 * r->cap_rows : 16;
        char **cells = realloc(r->cells, (size_t)cap * (size_t)(r->ncols ? r->ncols : 1) * sizeof *cells);
        if (!cells)
            return sk_error(SK_EIO, "out of memory");
        r->cells = cells;
        r->cap_rows = cap;
    }
    char **row = r->cells + (size_t)r->nrows * (size_t)r->ncols;
    for (int c = 0; c < r->ncols; c++) {
        row[c] = values[c] ? strdup(values[c]) : NULL;
        if (values[c] && !row[c]) {
            while (c-- > 0)
                free(row[c]);
            return sk_error(SK_EIO, "out of memory");
        }
    }
    r->nrows++;
    return SK_OK;
}

void sk_db_rows_free(sk_db_rows *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < (size_t)r->nrows * (size_t)r->ncols; i++)
        free(r->cells[i]);
    for (int c = 0; r->names && c < r->ncols; c++)
        free(r->names[c]);
    free(r->cells);
    free(r->names);
    free(r->kinds);
    free(r);
}

/* The kind of a column of PostgreSQL type `oid` (the built-in type oids). */
static int kind_of_type(Oid oid)
{
    switch (oid) {
    case 16:
        return SK_DB_COL_BOOL;
    case 20:
        return SK_DB_COL_BIGINT;
    case 21:
    case 23:
        return SK_DB_COL_INT;
    case 700:
    case 701:
    case 1700:
        return SK_DB_COL_REAL;
    default:
        return SK_DB_COL_TEXT;
    }
}

int sk_db_rows_from_result(const PGresult *res, sk_db_rows **out)
{
    *out = NULL;
    int ncols = PQnfields(res), nrows = PQntuples(res);
    const char **names = calloc((size_t)ncols + 1, sizeof *names);
    int *kinds = calloc((size_t)ncols + 1, sizeof *kinds);
    const char **values = calloc((size_t)ncols + 1, sizeof *values);
    sk_db_rows *r = NULL;
    int st = names && kinds && values ? SK_OK : sk_error(SK_EIO, "out of memory");
    for (int c = 0; !st && c < ncols; c++) {
        names[c] = PQfname(res, c);
        kinds[c] = kind_of_type(PQftype(res, c));
    }
    if (!st && !(r = sk_db_rows_new(ncols, names, kinds)))
        st = sk_error(SK_EIO, "out of memory");
    for (int row = 0; !st && row < nrows; row++) {
        for (int c = 0; c < ncols; c++)
            values[c] = sk_db_value(res, row, c);
        st = sk_db_rows_add(r, values);
    }
    free(names);
    free(kinds);
    free(values);
    if (st) {
        sk_db_rows_free(r);
        return st;
    }
    *out = r;
    return SK_OK;
}

int sk_db_rows_count(const sk_db_rows *r)
{
    return r ? r->nrows : 0;
}

int sk_db_rows_ncols(const sk_db_rows *r)
{
    return r ? r->ncols : 0;
}

const char *sk_db_rows_name(const sk_db_rows *r, int col)
{
    return r && col >= 0 && col < r->ncols ? r->names[col] : NULL;
}

int sk_db_rows_col(const sk_db_rows *r, const char *name)
{
    for (int c = 0; r && c < r->ncols; c++)
        if (!strcmp(r->names[c], name))
            return c;
    return -1;
}

int sk_db_rows_kind(const sk_db_rows *r, int col)
{
    return r && col >= 0 && col < r->ncols ? r->kinds[col] : SK_DB_COL_TEXT;
}

int sk_db_rows_is_numeric(const sk_db_rows *r, int col)
{
    int k = sk_db_rows_kind(r, col);
    return k == SK_DB_COL_BIGINT || k == SK_DB_COL_INT || k == SK_DB_COL_REAL;
}

const char *sk_db_rows_text(const sk_db_rows *r, int row, int col)
{
    if (!r || row < 0 || row >= r->nrows || col < 0 || col >= r->ncols)
        return NULL;
    return r->cells[(size_t)row * (size_t)r->ncols + (size_t)col];
}

double sk_db_rows_double(const sk_db_rows *r, int row, int col)
{
    const char *v = sk_db_rows_text(r, row, col);
    if (!v)
        return NAN;
    char *end = NULL;
    double d = strtod(v, &end);
    return end == v ? NAN : d;
}

long long sk_db_rows_ll(const sk_db_rows *r, int row, int col)
{
    const char *v = sk_db_rows_text(r, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}
