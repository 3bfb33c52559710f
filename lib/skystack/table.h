/* table.h: binary tables in memory (columns of typed vectors) and their
 * FITS I/O, for source lists, catalogs, truth tables and PSFEx files. */
#ifndef SKYSTACK_TABLE_H
#define SKYSTACK_TABLE_H

#include <stdint.h>
#include "header.h"

#ifdef __cplusplus
extern "C" {
#endif

enum sk_coltype {
    SK_COL_DOUBLE,  /* D */
    SK_COL_FLOAT,   /* E */
    SK_COL_INT64,   /* K */
    SK_COL_INT32,   /* J */
    SK_COL_INT16,   /* I */
    SK_COL_UINT8,   /* B */
    SK_COL_LOGICAL, /* L, stored as char 0/1 */
    SK_COL_STRING   /* A, `repeat` characters per row, NUL-padded in memory
                       as repeat+1 bytes per row */
};

typedef struct sk_column {
    char name[72];
    char unit[72];
    int type;       /* enum sk_coltype */
    long repeat;    /* elements per row (vector columns); string width */
    int ndims;      /* TDIM: 0 = none, else dims[0..ndims-1] (fastest first) */
    long dims[4];
    void *data;     /* nrows*repeat elements (strings: nrows*(repeat+1) bytes) */
} sk_column;

typedef struct sk_table {
    char extname[72];
    long nrows;
    int ncols;
    sk_column *cols;
    sk_header *header;  /* extra keywords of the table HDU (non-structural) */
} sk_table;

sk_table *sk_table_new(const char *extname, long nrows);
void sk_table_free(sk_table *t);

/* Add a zero-filled column; returns it (NULL + error on bad arguments or
 * a duplicate name). The returned pointer stays valid until the next add. */
sk_column *sk_table_add_column(sk_table *t, const char *name, int type,
                               long repeat, const char *unit);
/* Column by name, case-insensitive; NULL when absent. */
sk_column *sk_table_column(const sk_table *t, const char *name);

/* Element `elem` of row `row` of a numeric/logical column as double. */
double sk_column_get(const sk_column *c, long row, long elem);
void sk_column_set(sk_column *c, long row, long elem, double value);
/* Row `row` of a string column (NUL-terminated). */
const char *sk_column_str(const sk_column *c, long row);
void sk_column_set_str(sk_column *c, long row, const char *value);

/* Read a binary table HDU (name or number; NULL = first table HDU). All
 * columns are read with their types (unsigned/scaled integers become the
 * next wider signed type or DOUBLE). */
int sk_fits_read_table(const char *path, const char *hdu, sk_table **out);

/* Write a file with an empty primary HDU and the table, atomically. */
int sk_fits_write_table(const char *path, const sk_table *t);

#ifdef __cplusplus
}
#endif
#endif
