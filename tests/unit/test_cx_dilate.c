/* test_cx_dilate.c: the flag dilation of the aligned-input coadds
 * (sk_cx_dilate_or) against the OR over each (2r+1)^2 square taken pixel
 * by pixel, on sparse random bits, for radii from 0 to beyond the array's
 * size and for arrays of one row or one column. */
#include <stdint.h>
#include <stdlib.h>
#include "../tap.h"
#include "coadd/aligned_priv.h"

/* Pixels where sk_cx_dilate_or differs from the square's OR. */
static long mismatches(long nx, long ny, long r, unsigned seed)
{
    size_t n = (size_t)nx * (size_t)ny;
    uint16_t *in = malloc(sizeof(uint16_t) * n), *out = malloc(sizeof(uint16_t) * n);
    uint16_t *tmp = malloc(sizeof(uint16_t) * n);
    if (!in || !out || !tmp) {
        free(in); free(out); free(tmp);
        return -1;
    }
    srand(seed);
    for (size_t i = 0; i < n; i++)
        in[i] = rand() % 37 == 0 ? (uint16_t)(1u << (rand() % 16)) : 0;
    sk_cx_dilate_or(in, out, tmp, nx, ny, r);
    long bad = 0;
    for (long y = 0; y < ny; y++)
        for (long x = 0; x < nx; x++) {
            uint16_t b = 0;
            for (long yy = y - r; yy <= y + r; yy++)
                for (long xx = x - r; xx <= x + r; xx++)
                    if (xx >= 0 && yy >= 0 && xx < nx && yy < ny)
                        b |= in[yy * nx + xx];
            bad += out[y * nx + x] != b;
        }
    free(in); free(out); free(tmp);
    return bad;
}

int main(void)
{
    tap_plan(7);
    static const long cases[][3] = {{61, 47, 0}, {61, 47, 1}, {61, 47, 3}, {64, 64, 7},
                                    {40, 30, 33}, {1, 50, 4}, {50, 1, 4}};
    for (int c = 0; c < 7; c++) {
        long nx = cases[c][0], ny = cases[c][1], r = cases[c][2];
        long bad = mismatches(nx, ny, r, 17u + (unsigned)c);
        ok(bad == 0, "%ld x %ld, radius %ld: the square's OR at every pixel (%ld differ)", nx, ny,
           r, bad);
    }
    return tap_done();
}
