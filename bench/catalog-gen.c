/* catalog-gen.c: a synthetic reference catalogue for bench/catalog: N rows
 * uniform over a box of AREA square degrees centred on (RA, DEC), in sky
 * order (cells of 0.1 x 0.1 degrees, row by row, as survey catalogues come
 * HEALPix-ordered), with proper motions, epoch 2016, errors and G, BP, RP
 * magnitudes, written as NFILES FITS tables with the columns of imsim's
 * reference catalogue (ra, dec, ra_err, dec_err, pmra, pmdec, epoch, G, BP,
 * RP, G_err, BP_err, RP_err, mag). Stars within HOLE degrees of the centre
 * are left out (the imsim field goes there).
 * Usage: catalog-gen OUTPREFIX N NFILES RA DEC AREA HOLE SEED */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fitsio.h>

static uint64_t rng_state;
static double uni(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

#define NCOL 14
static const char *names[NCOL] = {"ra", "dec", "ra_err", "dec_err", "pmra", "pmdec", "epoch",
                                  "G", "BP", "RP", "G_err", "BP_err", "RP_err", "mag"};

static fitsfile *open_out(const char *prefix, int k)
{
    char path[4096];
    snprintf(path, sizeof path, "!%s-%03d.fits", prefix, k);
    fitsfile *f = NULL;
    int st = 0;
    char *tt[NCOL], *tf[NCOL];
    for (int c = 0; c < NCOL; c++) {
        tt[c] = (char *)names[c];
        tf[c] = (char *)(c < 2 || c == 6 ? "D" : "E");
    }
    fits_create_file(&f, path, &st);
    fits_create_tbl(f, BINARY_TBL, 0, NCOL, tt, tf, NULL, "REFCAT", &st);
    if (st) {
        fits_report_error(stderr, st);
        exit(3);
    }
    return f;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: catalog-gen OUTPREFIX N NFILES RA DEC AREA HOLE SEED\n");
        return 1;
    }
    const char *prefix = argv[1];
    long n = atol(argv[2]);
    int nfiles = atoi(argv[3]);
    double ra0 = atof(argv[4]), dec0 = atof(argv[5]), side = sqrt(atof(argv[6])), hole = atof(argv[7]);
    rng_state = 88172645463325252ull ^ (uint64_t)atoll(argv[8]);
    const double cell = 0.1;
    long ncell = (long)ceil(side / cell), per_cell = n / (ncell * ncell) + 1;
    long per_file = n / nfiles + 1, row = 0, written = 0;
    int file = 0, st = 0;
    fitsfile *f = open_out(prefix, file);
    double cosd = cos(dec0 * M_PI / 180);
    long blk = 0;
    enum { B = 50000 };
    static double col[NCOL][B];
    for (long cy = 0; cy < ncell && written < n; cy++)
        for (long cx = 0; cx < ncell && written < n; cx++)
            for (long i = 0; i < per_cell && written < n; i++) {
                double dec = dec0 - side / 2 + (cy + uni()) * cell;
                double ra = ra0 + (-side / 2 + (cx + uni()) * cell) / cosd;
                if (hypot((ra - ra0) * cosd, dec - dec0) < hole)
                    continue;
                double g = 14 + 7 * sqrt(uni()), x = 0.3 + 2.4 * uni(), e = 0.002 + 0.02 * pow(10, 0.4 * (g - 21));
                double pr = 60 * uni(), pa = 2 * M_PI * uni();
                double v[NCOL] = {ra, dec, 0.02 + 0.3 * uni(), 0.02 + 0.3 * uni(), pr * cos(pa), pr * sin(pa),
                                  2016.0, g, g + 0.5 * x + 0.1, g - 0.5 * x + 0.1, e, e, e, g};
                for (int c = 0; c < NCOL; c++)
                    col[c][blk] = v[c];
                blk++;
                written++;
                if (blk == B || written == n || row + blk == per_file) {
                    for (int c = 0; c < NCOL; c++)
                        fits_write_col(f, TDOUBLE, c + 1, row + 1, 1, blk, col[c], &st);
                    row += blk;
                    blk = 0;
                    if (row == per_file && written < n) {
                        fits_close_file(f, &st);
                        f = open_out(prefix, ++file);
                        row = 0;
                    }
                }
            }
    if (blk)
        for (int c = 0; c < NCOL; c++)
            fits_write_col(f, TDOUBLE, c + 1, row + 1, 1, blk, col[c], &st);
    fits_close_file(f, &st);
    if (st) {
        fits_report_error(stderr, st);
        return 3;
    }
    printf("%ld\n", written);
    return 0;
}
