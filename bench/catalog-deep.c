/* catalog-deep.c: a copy of an imsim reference catalogue with the truth's stars below its depth added in the primary band alone (no BP, RP: never calibration stars), for bench/catalog's zero points with a catalogue that lists the stars' faint neighbours.
 * Usage: catalog-deep REFCAT.fits TRUTH.fits EPOCH_YR OUT.fits
 * The added rows: the truth's position (at the exposure, EPOCH_YR, no
 * proper motion), G = the truth's magnitude less the median of mag - G
 * over the catalogue's rows (the stars' mean colour term), errors 0.05 mag
 * and 50 mas. Prints the rows kept and added. */
#include <fitsio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numeric/stats.h"

static int fail(int st, const char *what)
{
    char msg[FLEN_STATUS];
    fits_get_errstatus(st, msg);
    fprintf(stderr, "catalog-deep: %s: %s\n", what, msg);
    return 1;
}

static double *column(fitsfile *f, const char *name, long n, int *st)
{
    int col = 0, any = 0;
    double *v = malloc(sizeof *v * (size_t)(n + 1));
    if (v && !fits_get_colnum(f, CASEINSEN, (char *)name, &col, st))
        fits_read_col(f, TDOUBLE, col, 1, 1, n, NULL, v, &any, st);
    return v;
}

static void put(fitsfile *f, const char *name, long row, double v, int *st)
{
    int col = 0;
    if (!fits_get_colnum(f, CASEINSEN, (char *)name, &col, st))
        fits_write_col(f, TDOUBLE, col, row, 1, 1, &v, st);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: catalog-deep REFCAT.fits TRUTH.fits EPOCH_YR OUT.fits\n");
        return 2;
    }
    fitsfile *t = NULL, *in = NULL, *out = NULL;
    int st = 0;
    long nt = 0, nr = 0;
    double epoch = atof(argv[3]), depth = -INFINITY;
    if (fits_open_table(&t, argv[2], READONLY, &st) || fits_get_num_rows(t, &nt, &st))
        return fail(st, argv[2]);
    double *ty = column(t, "type", nt, &st), *ra = column(t, "ra", nt, &st);
    double *dec = column(t, "dec", nt, &st), *mag = column(t, "mag", nt, &st);
    double *tid = column(t, "id", nt, &st);
    if (st || !ty || !ra || !dec || !mag || !tid)
        return fail(st ? st : FILE_NOT_OPENED, argv[2]);
    fits_close_file(t, &st);
    remove(argv[4]);
    if (fits_open_file(&in, argv[1], READONLY, &st) || fits_create_file(&out, argv[4], &st) ||
        fits_copy_file(in, out, 1, 1, 1, &st))
        return fail(st, argv[1]);
    fits_close_file(in, &st);
    if (fits_movabs_hdu(out, 2, NULL, &st) || fits_get_num_rows(out, &nr, &st))
        return fail(st, argv[4]);
    double *rm = column(out, "mag", nr, &st), *rg = column(out, "G", nr, &st), *off = malloc(sizeof *off * (size_t)(nr + 1));
    if (st || !rm || !rg || !off)
        return fail(st ? st : FILE_NOT_OPENED, argv[4]);
    long m = 0;
    for (long r = 0; r < nr; r++) {
        depth = fmax(depth, rm[r]);
        if (isfinite(rm[r] - rg[r]))
            off[m++] = rm[r] - rg[r];
    }
    double shift = m ? sk_median_double(off, m) : 0.0;
    long row = nr;
    for (long k = 0; k < nt && !st; k++) {
        if (ty[k] != 0 || !(mag[k] > depth))
            continue;
        row++;
        fits_insert_rows(out, row - 1, 1, &st);
        put(out, "id", row, tid[k], &st);
        put(out, "ra", row, ra[k], &st);
        put(out, "dec", row, dec[k], &st);
        put(out, "mag", row, mag[k], &st);
        put(out, "mag_err", row, 0.05, &st);
        put(out, "pos_err", row, 0.05, &st);
        put(out, "pmra", row, 0, &st);
        put(out, "pmdec", row, 0, &st);
        put(out, "ra_err", row, 50, &st);
        put(out, "dec_err", row, 50, &st);
        put(out, "epoch", row, epoch, &st);
        put(out, "G", row, mag[k] - shift, &st);
        put(out, "G_err", row, 0.05, &st);
        put(out, "BP", row, NAN, &st);
        put(out, "RP", row, NAN, &st);
        put(out, "BP_err", row, NAN, &st);
        put(out, "RP_err", row, NAN, &st);
    }
    if (st || fits_close_file(out, &st))
        return fail(st, argv[4]);
    printf("%ld %ld\n", nr, row - nr);
    return 0;
}
