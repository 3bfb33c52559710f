/* srclist-compare.c: are two extract(1) source lists the same? Same number
 * of rows and, row by row, every numeric column equal (exactly, or within
 * a relative tolerance). Prints one line; exit 0 when the same, 1 when not,
 * 2 on bad input. With --match R: the sources of each list that have one
 * of the other within R pixels (X_IMAGE, Y_IMAGE), for lossy copies.
 * Usage: srclist-compare A.sources.fits B.sources.fits [REL_TOL | --match R] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/table.h"

/* Sources of `a` with one of `b` within r pixels. */
static long matched(const sk_table *a, const sk_table *b, double r)
{
    const sk_column *ax = sk_table_column(a, "X_IMAGE"), *ay = sk_table_column(a, "Y_IMAGE");
    const sk_column *bx = sk_table_column(b, "X_IMAGE"), *by = sk_table_column(b, "Y_IMAGE");
    long n = 0;
    for (long i = 0; i < a->nrows; i++) {
        int found = 0;
        for (long j = 0; j < b->nrows && !found; j++)
            found = hypot(sk_column_get(ax, i, 0) - sk_column_get(bx, j, 0),
                          sk_column_get(ay, i, 0) - sk_column_get(by, j, 0)) <= r;
        n += found;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: srclist-compare A.fits B.fits [REL_TOL]\n");
        return 2;
    }
    double tol = argc > 3 ? atof(argv[3]) : 0.0;
    sk_table *a = NULL, *b = NULL;
    if (sk_fits_read_table(argv[1], NULL, &a) || sk_fits_read_table(argv[2], NULL, &b)) {
        fprintf(stderr, "srclist-compare: %s\n", sk_errmsg());
        return 2;
    }
    if (argc > 4 && !strcmp(argv[3], "--match")) {
        double r = atof(argv[4]);
        long ma = matched(a, b, r), mb = matched(b, a, r);
        printf("%ld of %ld sources have one of the other list within %g px, %ld of %ld the other way\n", ma,
               a->nrows, r, mb, b->nrows);
        return ma == a->nrows && mb == b->nrows ? 0 : 1;
    }
    if (a->nrows != b->nrows) {
        printf("different: %ld sources against %ld\n", a->nrows, b->nrows);
        return 1;
    }
    long ndiff = 0, ncmp = 0;
    for (int c = 0; c < a->ncols; c++) {
        const sk_column *ca = &a->cols[c], *cb = sk_table_column(b, ca->name);
        if (!cb || ca->type == SK_COL_STRING) {
            if (!cb) {
                printf("different: column %s missing\n", ca->name);
                return 1;
            }
            continue;
        }
        for (long r = 0; r < a->nrows; r++)
            for (long e = 0; e < ca->repeat; e++) {
                double x = sk_column_get(ca, r, e), y = sk_column_get(cb, r, e);
                ncmp++;
                if (isnan(x) && isnan(y))
                    continue;
                if (!(fabs(x - y) <= tol * fmax(fabs(x), fabs(y))))
                    ndiff++;
            }
    }
    printf("%s: %ld sources, %ld values compared, %ld differ\n", ndiff ? "different" : "same", a->nrows, ncmp,
           ndiff);
    sk_table_free(a);
    sk_table_free(b);
    return ndiff ? 1 : 0;
}
