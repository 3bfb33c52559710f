/* coadd-kernels.c: the speed of the direct coadd engine's inner loops on
 * synthetic data, each the fastest of many repetitions (so that other
 * processes on the machine disturb it little): resampling a band with
 * Lanczos-3 at a rotated, shifted mapping (ns per output pixel), making a
 * band ready from an image in memory (background, flux scale, variance,
 * flags; ns per input pixel), and the flag dilation (ns per input pixel).
 * Usage: coadd-kernels [REPS]   (default 30) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "coadd/direct_priv.h"
#include "skystack/image.h"

#define BW 2048
#define BH 320

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    sk_image *img = sk_image_new(BW, BH);
    float *bgmap = malloc(sizeof *bgmap * BW * BH);
    if (!img || !bgmap)
        return 1;
    unsigned s = 12345;
    for (long i = 0; i < BW * BH; i++) {
        s = s * 1103515245u + 12345u;
        img->sci[i] = 100.0f + (float)(s >> 16) / 6553.6f;
        img->weight[i] = 0.01f + (float)((s >> 8) & 255) / 2560.0f;
        img->flags[i] = (s & 0xfff) == 7 ? SK_FLAG_COSMIC : 0;
        bgmap[i] = 99.0f + (float)(i % BW) / BW;
    }
    sk_coadd_input in;
    sk_coadd_input_init(&in);
    in.image = img;
    in.background = bgmap;
    sk_band_source *src = NULL;
    sk_band b;
    memset(&b, 0, sizeof b);
    sk_kernel_table kt;
    if (sk_band_source_open(&in, &src) || sk_band_alloc(&b, 0, 0, BW, BH, BW, BH) ||
        sk_band_source_read(src, 1.3, &b) || sk_band_dilate(&b, 3) ||
        sk_kernel_table_init(&kt, SK_KERNEL_LANCZOS3))
        return 1;
    b.noise_factor = 1.1;
    b.poisson_per_area = 0.5;

    /* output rows 8 .. BH-8 of a grid rotated by 0.3 deg and shifted */
    long nout = BW - 16;
    double *xi = malloc(sizeof *xi * (size_t)nout * 3), *yi = xi + nout, *ar = yi + nout;
    sk_stack_entry *out = malloc(sizeof *out * (size_t)nout);
    double c = cos(0.3 * M_PI / 180), sn = sin(0.3 * M_PI / 180);
    double best_res = 1e30, best_read = 1e30, best_dil = 1e30;
    long npx = 0;
    volatile float sink = 0;
    double row_best[BH];
    for (long y = 0; y < BH; y++)
        row_best[y] = 1e30;
    for (int r = 0; r < reps; r++) {
        npx = 0;
        /* each row timed alone, its fastest repetition kept */
        for (long y = 8; y < BH - 8; y++) {
            for (long k = 0; k < nout; k++) {
                double x = (double)(k + 8);
                xi[k] = c * x - sn * (double)y + 0.37;
                yi[k] = sn * x + c * (double)y - 0.21;
                ar[k] = 1.0;
            }
            double t0 = now_s();
            sk_band_resample(&kt, &b, nout, xi, yi, ar, out, 1);
            row_best[y] = fmin(row_best[y], now_s() - t0);
            sink += out[nout / 2].in.value;
            npx += nout;
        }
        double t1 = now_s();
        if (sk_band_source_read(src, 1.3, &b))
            return 1;
        double t2 = now_s();
        sk_band_dilate(&b, 3);
        double t3 = now_s();
        best_read = fmin(best_read, t2 - t1);
        best_dil = fmin(best_dil, t3 - t2);
    }
    best_res = 0.0;
    for (long y = 8; y < BH - 8; y++)
        best_res += row_best[y];
    printf("resample (Lanczos-3): %.2f ns per output pixel\n",
           1e9 * best_res / (double)npx);
    printf("band made ready from memory (copy, background, variance, flags): %.2f ns per pixel\n",
           1e9 * best_read / (double)(BW * BH));
    printf("flag dilation (a = 3): %.2f ns per pixel\n", 1e9 * best_dil / (double)(BW * BH));
    (void)sink;
    return 0;
}
