/* zogy_score.c: the proper coadd's score image S, its matched filter in units of its own noise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "numeric/fft_priv.h"
#include "skystack/error.h"
#include "coaddx_internal.h"

/*
 * S(x) = sum_u P_R(u) R(x + u) / (sigma_R(x) sqrt(sum_u P_R(u)^2)),
 * sigma_R(x) = 1 / sqrt(WGT(x)): the correlation of the proper image R with
 * its own PSF P_R (a unit-sum stamp), divided by the noise that filter
 * leaves on R's white noise. A point source of flux F at x has S(x) =
 * F sqrt(sum P_R^2) / sigma_R, its matched-filter SNR; on blank sky S has
 * unit variance. Pixels without data (weight 0) have S = 0. The PSF is the
 * one at the image centre (P_R varies slowly); the correlation is done by
 * FFT on a zero-padded array, so no wrap-around reaches the image.
 */
int sk_zogy_score(const float *sci, const float *weight, long width, long height,
                  const float *psf, long size, float *score)
{
    long half = size / 2;
    long ny = sk_fft_good_size(height + 2 * half), nx = sk_fft_good_size(width + 2 * half);
    long nc = ny * (nx / 2 + 1);
    float *a = fftwf_malloc(sizeof(float) * (size_t)(ny * nx));
    float *k = fftwf_malloc(sizeof(float) * (size_t)(ny * nx));
    fftwf_complex *fa = fftwf_malloc(sizeof(fftwf_complex) * (size_t)nc);
    fftwf_complex *fk = fftwf_malloc(sizeof(fftwf_complex) * (size_t)nc);
    fftwf_plan fwd = a && k && fa && fk ? sk_fft_plan_r2c((int)ny, (int)nx) : NULL;
    fftwf_plan inv = fwd ? sk_fft_plan_c2r((int)ny, (int)nx) : NULL;
    if (!inv) {
        fftwf_free(a);
        fftwf_free(k);
        fftwf_free(fa);
        fftwf_free(fk);
        return sk_error(SK_EIO, "zogy score: out of memory for a %ldx%ld transform", nx, ny);
    }
    memset(a, 0, sizeof(float) * (size_t)(ny * nx));
    memset(k, 0, sizeof(float) * (size_t)(ny * nx));
    for (long y = 0; y < height; y++)
        for (long x = 0; x < width; x++) {
            long i = y * width + x;
            a[y * nx + x] = weight[i] > 0.0f ? sci[i] : 0.0f;
        }
    /* the kernel P_R(-u) at index -u, so that the product is a correlation */
    double p2 = 0.0;
    for (long v = -half; v <= half; v++)
        for (long u = -half; u <= half; u++) {
            double p = psf[(v + half) * size + (u + half)];
            p2 += p * p;
            k[((-v + ny) % ny) * nx + (-u + nx) % nx] = (float)p;
        }
    fftwf_execute_dft_r2c(fwd, a, fa);
    fftwf_execute_dft_r2c(fwd, k, fk);
    for (long q = 0; q < nc; q++) {
        float re = fa[q][0] * fk[q][0] - fa[q][1] * fk[q][1];
        float im = fa[q][0] * fk[q][1] + fa[q][1] * fk[q][0];
        fa[q][0] = re;
        fa[q][1] = im;
    }
    fftwf_execute_dft_c2r(inv, fa, a);
    double norm = 1.0 / ((double)nx * (double)ny * sqrt(p2 > 0.0 ? p2 : 1.0));
    for (long y = 0; y < height; y++)
        for (long x = 0; x < width; x++) {
            long i = y * width + x;
            score[i] = weight[i] > 0.0f ? (float)(a[y * nx + x] * norm * sqrt((double)weight[i])) : 0.0f;
        }
    fftwf_free(a);
    fftwf_free(k);
    fftwf_free(fa);
    fftwf_free(fk);
    return SK_OK;
}
