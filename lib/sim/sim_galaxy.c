/* sim_galaxy.c: Sersic galaxies integrated over each pixel and convolved
 * with the local PSF (FFT), rendered into stamps that are added to images. */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "numeric/fft_priv.h"
#include "skystack/error.h"
#include "skystack/sim.h"
#include "sim_internal.h"

/* Ciotti & Bertin (1999) asymptotic expansion of b_n (I(re) encloses half
 * the light), accurate to 1e-6 for n > 0.36. */
static double sersic_b(double n)
{
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n) +
           131.0 / (1148175.0 * n * n * n) - 2194697.0 / (30690717750.0 * n * n * n * n);
}

int sk_sim_galaxy_render(const sk_sim_galaxy *g, const sk_sim_psf *psf, double flux,
                         double x, double y, sk_sim_stamp *stamp)
{
    memset(stamp, 0, sizeof *stamp);
    if (!(g->re_px > 0.0 && g->sersic_n >= 0.3 && g->sersic_n <= 8.0 && g->axis_ratio > 0.05 &&
          g->axis_ratio <= 1.0))
        return sk_error(SK_EINPUT, "galaxy: re %g px, n %g, axis ratio %g out of range",
                        g->re_px, g->sersic_n, g->axis_ratio);
    int status = sk_sim_psf_check(psf);
    if (status)
        return status;

    /* Intrinsic profile on its own stamp, centred at the pixel nearest (x, y). */
    long cx = lround(x), cy = lround(y);
    double ox = x - (double)cx, oy = y - (double)cy;
    double rtrunc = 4.0 * g->re_px;
    long gh = (long)ceil(rtrunc + 1.0), gs = 2 * gh + 1;
    long kh = (long)ceil(sk_sim_psf_extent_px(psf)), ks = 2 * kh + 1;
    long os = gs + ks - 1, oh = gh + kh;
    long n = sk_fft_good_size(os);
    double b = sersic_b(g->sersic_n), inv_n = 1.0 / g->sersic_n;
    double th = g->angle_deg * M_PI / 180.0, c = cos(th), s = sin(th), q = g->axis_ratio;
    static const double node[4] = {-0.4305681557970263, -0.1699905217924281,
                                   0.1699905217924281, 0.4305681557970263};
    static const double wt[4] = {0.1739274225687269, 0.3260725774312731,
                                 0.3260725774312731, 0.1739274225687269};
    int fine = 12; /* midpoint sub-grid near the cusp of steep profiles */

    float *gal = fftwf_alloc_real((size_t)(n * n));
    float *ker = fftwf_alloc_real((size_t)(n * n));
    fftwf_complex *gf = fftwf_alloc_complex((size_t)(n * (n / 2 + 1)));
    fftwf_complex *kf = fftwf_alloc_complex((size_t)(n * (n / 2 + 1)));
    double *out = malloc((size_t)(os * os) * sizeof *out);
    if (!gal || !ker || !gf || !kf || !out) {
        fftwf_free(gal); fftwf_free(ker); fftwf_free(gf); fftwf_free(kf); free(out);
        return sk_error(SK_EIO, "galaxy: out of memory for a %ld px stamp", n);
    }
    memset(gal, 0, sizeof(float) * (size_t)(n * n));
    memset(ker, 0, sizeof(float) * (size_t)(n * n));

    for (long j = 0; j < gs; j++) {
        for (long i = 0; i < gs; i++) {
            double dx = (double)(i - gh) - ox, dy = (double)(j - gh) - oy;
            double sum = 0.0;
            if (dx * dx + dy * dy < 4.0) {
                for (int bj = 0; bj < fine; bj++)
                    for (int ai = 0; ai < fine; ai++) {
                        double px = dx + (ai + 0.5) / fine - 0.5, py = dy + (bj + 0.5) / fine - 0.5;
                        double u = px * c + py * s, v = (-px * s + py * c) / q;
                        double r = sqrt(u * u + v * v);
                        if (r < rtrunc)
                            sum += exp(-b * (pow(r / g->re_px, inv_n) - 1.0));
                    }
                sum /= (double)(fine * fine);
            } else if (dx * dx + dy * dy > 2.25 * g->re_px * g->re_px + 4.0) {
                /* the outer profile is smooth on the pixel scale: 2x2 nodes */
                for (int bj = 0; bj < 2; bj++)
                    for (int ai = 0; ai < 2; ai++) {
                        double px = dx + (ai ? 0.2886751345948129 : -0.2886751345948129);
                        double py = dy + (bj ? 0.2886751345948129 : -0.2886751345948129);
                        double u = px * c + py * s, v = (-px * s + py * c) / q;
                        double r = sqrt(u * u + v * v);
                        if (r < rtrunc)
                            sum += 0.25 * exp(-b * (exp(log(r / g->re_px) * inv_n) - 1.0));
                    }
            } else {
                for (int bj = 0; bj < 4; bj++)
                    for (int ai = 0; ai < 4; ai++) {
                        double px = dx + node[ai], py = dy + node[bj];
                        double u = px * c + py * s, v = (-px * s + py * c) / q;
                        double r = sqrt(u * u + v * v);
                        if (r < rtrunc)
                            sum += wt[ai] * wt[bj] * exp(-b * (pow(r / g->re_px, inv_n) - 1.0));
                    }
            }
            gal[j * n + i] = (float)sum;
        }
    }
    /* The PSF sampled at pixel centres (the galaxy already carries the pixel
     * integration), wrapped so that its centre is element (0, 0). */
    double *samp = malloc((size_t)(ks * ks) * sizeof *samp);
    if (!samp) {
        fftwf_free(gal); fftwf_free(ker); fftwf_free(gf); fftwf_free(kf); free(out);
        return sk_error(SK_EIO, "galaxy: out of memory for a %ld px kernel", ks);
    }
    sk_sim_psf_sample(psf, kh, samp);
    double ksum = 0.0;
    for (long k = 0; k < ks * ks; k++)
        ksum += samp[k];
    for (long j = -kh; j <= kh; j++)
        for (long i = -kh; i <= kh; i++)
            ker[((j + n) % n) * n + (i + n) % n] = (float)(samp[(j + kh) * ks + i + kh] / ksum);
    free(samp);

    /* Plans from the library's shared cache (made once per size under its
     * lock), executed on this galaxy's own arrays. */
    fftwf_plan fwd = sk_fft_plan_r2c((int)n, (int)n), inv = sk_fft_plan_c2r((int)n, (int)n);
    if (!fwd || !inv) {
        fftwf_free(gal); fftwf_free(ker); fftwf_free(gf); fftwf_free(kf); free(out);
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    }
    fftwf_execute_dft_r2c(fwd, gal, gf);
    fftwf_execute_dft_r2c(fwd, ker, kf);
    for (long k = 0; k < n * (n / 2 + 1); k++) {
        float re = gf[k][0] * kf[k][0] - gf[k][1] * kf[k][1];
        float im = gf[k][0] * kf[k][1] + gf[k][1] * kf[k][0];
        gf[k][0] = re;
        gf[k][1] = im;
    }
    fftwf_execute_dft_c2r(inv, gf, gal);

    /* Output pixel (i, j) of the os x os stamp is galaxy pixel (i - kh, j - kh)
     * after convolution: circular index (i - kh) mod n. */
    double total = 0.0;
    for (long j = 0; j < os; j++)
        for (long i = 0; i < os; i++) {
            double v = gal[((j - kh + n) % n) * n + (i - kh + n) % n];
            out[j * os + i] = v > 0.0 ? v : 0.0;
            total += out[j * os + i];
        }
    for (long k = 0; k < os * os; k++)
        out[k] *= flux / total;
    fftwf_free(gal); fftwf_free(ker); fftwf_free(gf); fftwf_free(kf);
    stamp->x0 = cx - oh;
    stamp->y0 = cy - oh;
    stamp->size = os;
    stamp->pix = out;
    return SK_OK;
}

void sk_sim_stamp_add(const sk_sim_stamp *stamp, double *image, long width, long height,
                      long row0, long row1)
{
    long ja = stamp->y0 > row0 ? stamp->y0 : row0;
    long jb = stamp->y0 + stamp->size < row1 ? stamp->y0 + stamp->size : row1;
    if (ja < 0) ja = 0;
    if (jb > height) jb = height;
    long ia = stamp->x0 > 0 ? stamp->x0 : 0;
    long ib = stamp->x0 + stamp->size < width ? stamp->x0 + stamp->size : width;
    for (long j = ja; j < jb; j++) {
        const double *src = stamp->pix + (j - stamp->y0) * stamp->size - stamp->x0;
        double *dst = image + j * width;
        for (long i = ia; i < ib; i++)
            dst[i] += src[i];
    }
}
