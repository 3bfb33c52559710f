/* rows_priv.h: building a row set (skystack/db.h) column by column and row
 * by row, for lib/db and its tests (not installed; no libpq types). */
#ifndef SK_ROWS_PRIV_H
#define SK_ROWS_PRIV_H

#include "skystack/db.h"

/* An empty row set of `ncols` columns with these names and kinds (enum
 * sk_db_col_kind); NULL when out of memory. */
sk_db_rows *sk_db_rows_new(int ncols, const char *const *names, const int *kinds);
/* Append a row of ncols text values (NULL: SQL NULL), copied. */
int sk_db_rows_add(sk_db_rows *r, const char *const *values);

#endif
