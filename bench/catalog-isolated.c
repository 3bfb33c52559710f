/* catalog-isolated.c: a copy of an imsim reference catalogue without the stars its truth table marks blended (another source of at least a tenth of their flux within 2 FWHM), for bench/catalog's zero-point scatter over isolated stars.
 * Usage: catalog-isolated REFCAT.fits TRUTH.fits OUT.fits; prints the rows
 * kept and removed. */
#include <fitsio.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(int st, const char *what)
{
    char msg[FLEN_STATUS];
    fits_get_errstatus(st, msg);
    fprintf(stderr, "catalog-isolated: %s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: catalog-isolated REFCAT.fits TRUTH.fits OUT.fits\n");
        return 2;
    }
    fitsfile *t = NULL, *in = NULL, *out = NULL;
    int st = 0, col = 0, any = 0;
    long nt = 0, nr = 0;
    if (fits_open_table(&t, argv[2], READONLY, &st) || fits_get_num_rows(t, &nt, &st))
        return fail(st, argv[2]);
    long long *tid = malloc(sizeof *tid * (size_t)(nt + 1));
    char *bl = malloc((size_t)nt + 1);
    if (!tid || !bl)
        return fail(FILE_NOT_CREATED, "out of memory");
    if (fits_get_colnum(t, CASEINSEN, "id", &col, &st) ||
        fits_read_col(t, TLONGLONG, col, 1, 1, nt, NULL, tid, &any, &st) ||
        fits_get_colnum(t, CASEINSEN, "blended", &col, &st) ||
        fits_read_col(t, TLOGICAL, col, 1, 1, nt, NULL, bl, &any, &st))
        return fail(st, argv[2]);
    fits_close_file(t, &st);
    remove(argv[3]);
    if (fits_open_file(&in, argv[1], READONLY, &st) || fits_create_file(&out, argv[3], &st) ||
        fits_copy_file(in, out, 1, 1, 1, &st))
        return fail(st, argv[1]);
    fits_close_file(in, &st);
    if (fits_movabs_hdu(out, 2, NULL, &st) || fits_get_num_rows(out, &nr, &st))
        return fail(st, argv[3]);
    long long *rid = malloc(sizeof *rid * (size_t)(nr + 1));
    long *drop = malloc(sizeof *drop * (size_t)(nr + 1));
    if (!rid || !drop)
        return fail(FILE_NOT_CREATED, "out of memory");
    if (fits_get_colnum(out, CASEINSEN, "id", &col, &st) ||
        fits_read_col(out, TLONGLONG, col, 1, 1, nr, NULL, rid, &any, &st))
        return fail(st, argv[3]);
    long nd = 0;
    for (long r = 0; r < nr; r++)
        for (long k = 0; k < nt; k++)
            if (tid[k] == rid[r] && bl[k]) {
                drop[nd++] = r + 1;
                break;
            }
    if ((nd && fits_delete_rowlist(out, drop, nd, &st)) || fits_close_file(out, &st))
        return fail(st, argv[3]);
    printf("%ld %ld\n", nr - nd, nd);
    free(tid);
    free(bl);
    free(rid);
    free(drop);
    return 0;
}
