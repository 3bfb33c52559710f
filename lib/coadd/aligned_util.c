/* aligned_util.c: pixel helpers of the aligned-input coadds: in-painting, flag dilation, PSF stamps, the noise from the weights, thread counts, tiling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "aligned_priv.h"
#include "numeric/fft_priv.h"
#include "skystack/error.h"
#include "numeric/stats.h"
#include "coaddx_internal.h"

/* The pyramid's levels: sizes and offsets (nlev of them). */
typedef struct pyramid {
    int nlev;
    long lx[64], ly[64];
    size_t off[64], total;
} pyramid;

static void pyramid_plan(pyramid *p, long nx, long ny)
{
    p->nlev = 1;
    for (long ax = nx, ay = ny; ax > 1 || ay > 1; p->nlev++) {
        ax = (ax + 1) / 2;
        ay = (ay + 1) / 2;
    }
    p->total = 0;
    p->lx[0] = nx;
    p->ly[0] = ny;
    for (int l = 0; l < p->nlev; l++) {
        if (l > 0) {
            p->lx[l] = (p->lx[l - 1] + 1) / 2;
            p->ly[l] = (p->ly[l - 1] + 1) / 2;
        }
        p->off[l] = p->total;
        p->total += (size_t)p->lx[l] * (size_t)p->ly[l];
    }
}

/* Push: each coarse pixel of level l is the mean of its usable children,
 * for every channel (val: nv planes of p->total values). */
static void pyramid_push(const pyramid *p, int l, float *val, uint8_t *has, int nv)
{
    const uint8_t *fh = has + p->off[l - 1];
    uint8_t *ch = has + p->off[l];
    long fx = p->lx[l - 1], fy = p->ly[l - 1];
    for (long y = 0; y < p->ly[l]; y++)
        for (long x = 0; x < p->lx[l]; x++) {
            size_t idx[4];
            int c = 0;
            for (long dy = 0; dy < 2; dy++) {
                long yy = 2 * y + dy;
                if (yy >= fy)
                    continue;
                for (long dx = 0; dx < 2; dx++) {
                    long xx = 2 * x + dx;
                    size_t i = (size_t)yy * (size_t)fx + (size_t)xx;
                    if (xx < fx && fh[i])
                        idx[c++] = i;
                }
            }
            size_t k = (size_t)y * (size_t)p->lx[l] + (size_t)x;
            ch[k] = c ? 1 : 0;
            for (int v = 0; v < nv; v++) {
                const float *fv = val + (size_t)v * p->total + p->off[l - 1];
                double s = 0.0;
                for (int q = 0; q < c; q++)
                    s += fv[idx[q]];
                val[(size_t)v * p->total + p->off[l] + k] = c ? (float)(s / c) : 0.0f;
            }
        }
}

/* Pull: the empty pixels of level l by bilinear interpolation of the
 * (already complete) level l + 1, for every channel. */
static void pyramid_pull(const pyramid *p, int l, float *val, uint8_t *has, int nv)
{
    uint8_t *fh = has + p->off[l];
    long cx = p->lx[l + 1], cy = p->ly[l + 1];
    for (long y = 0; y < p->ly[l]; y++) {
        double py = (y + 0.5) / 2.0 - 0.5;
        if (py < 0) py = 0;
        if (py > cy - 1) py = (double)(cy - 1);
        long y0 = (long)floor(py), y1 = y0 + 1 < cy ? y0 + 1 : y0;
        double ty = py - (double)y0;
        for (long x = 0; x < p->lx[l]; x++) {
            size_t i = (size_t)y * (size_t)p->lx[l] + (size_t)x;
            if (fh[i])
                continue;
            double px = (x + 0.5) / 2.0 - 0.5;
            if (px < 0) px = 0;
            if (px > cx - 1) px = (double)(cx - 1);
            long x0 = (long)floor(px), x1 = x0 + 1 < cx ? x0 + 1 : x0;
            double tx = px - (double)x0;
            for (int v = 0; v < nv; v++) {
                const float *cv = val + (size_t)v * p->total + p->off[l + 1];
                double a = cv[(size_t)y0 * (size_t)cx + (size_t)x0] * (1 - tx) +
                           cv[(size_t)y0 * (size_t)cx + (size_t)x1] * tx;
                double b = cv[(size_t)y1 * (size_t)cx + (size_t)x0] * (1 - tx) +
                           cv[(size_t)y1 * (size_t)cx + (size_t)x1] * tx;
                val[(size_t)v * p->total + p->off[l] + i] = (float)(a * (1 - ty) + b * ty);
            }
            fh[i] = 1;
        }
    }
}

int sk_cx_inpaint_planes(float *const *v, int nv, const uint8_t *valid, long nx, long ny)
{
    size_t n0 = (size_t)nx * (size_t)ny;
    if (n0 == 0 || !memchr(valid, 0, n0))
        return SK_OK; /* nothing to fill */
    pyramid p;
    pyramid_plan(&p, nx, ny);
    float *val = malloc(sizeof(float) * p.total * (size_t)nv);
    uint8_t *has = malloc(p.total);
    if (!val || !has) {
        free(val);
        free(has);
        return sk_error(SK_EIO, "in-painting: out of memory for %ld x %ld", nx, ny);
    }
    for (size_t i = 0; i < n0; i++)
        has[i] = valid[i] ? 1 : 0;
    for (int k = 0; k < nv; k++)
        for (size_t i = 0; i < n0; i++)
            val[(size_t)k * p.total + i] = valid[i] ? v[k][i] : 0.0f;
    for (int l = 1; l < p.nlev; l++)
        pyramid_push(&p, l, val, has, nv);
    for (int l = p.nlev - 2; l >= 0; l--)
        pyramid_pull(&p, l, val, has, nv);
    for (int k = 0; k < nv; k++)
        for (size_t i = 0; i < n0; i++)
            if (!valid[i])
                v[k][i] = val[(size_t)k * p.total + i];
    free(val);
    free(has);
    return SK_OK;
}

int sk_cx_inpaint(float *v, const uint8_t *valid, long nx, long ny)
{
    return sk_cx_inpaint_planes(&v, 1, valid, nx, ny);
}

/* The dilation square by square, 2r+1 ORs per pixel on each axis: the
 * fallback when the buffers of the fast one cannot be had. */
static void dilate_or_direct(const uint16_t *in, uint16_t *out, uint16_t *tmp, long nx, long ny,
                             long r)
{
    for (long y = 0; y < ny; y++) {
        const uint16_t *row = in + (size_t)y * (size_t)nx;
        uint16_t *t = tmp + (size_t)y * (size_t)nx;
        for (long x = 0; x < nx; x++) {
            uint16_t b = 0;
            long a0 = x - r < 0 ? 0 : x - r, a1 = x + r >= nx ? nx - 1 : x + r;
            for (long k = a0; k <= a1; k++)
                b |= row[k];
            t[x] = b;
        }
    }
    for (long y = 0; y < ny; y++) {
        long a0 = y - r < 0 ? 0 : y - r, a1 = y + r >= ny ? ny - 1 : y + r;
        uint16_t *o = out + (size_t)y * (size_t)nx;
        memset(o, 0, sizeof(uint16_t) * (size_t)nx);
        for (long k = a0; k <= a1; k++) {
            const uint16_t *t = tmp + (size_t)k * (size_t)nx;
            for (long x = 0; x < nx; x++)
                o[x] |= t[x];
        }
    }
}

/* The OR over every window of 2r+1 of n vectors of `len` values, vector
 * i at src + i * stride (out likewise), beyond the ends zeros: van Herk's
 * and Gil & Werman's running ORs from the left (g) and from the right (h)
 * within blocks of 2r+1 of the padded sequence, window [x, x+2r] (padded)
 * = h[x] | g[x+2r]; three ORs per value whatever r. g and h hold
 * (n + 2r) * len values each. */
static void window_or(const uint16_t *src, size_t stride, long n, long len, long r, uint16_t *g,
                      uint16_t *h, uint16_t *dst)
{
    const long L = 2 * r + 1, np = n + 2 * r;
    for (long i = 0; i < np; i++) {
        uint16_t *gi = g + (size_t)i * (size_t)len;
        const uint16_t *f = i >= r && i < r + n ? src + (size_t)(i - r) * stride : NULL;
        if (i % L == 0) {
            for (long x = 0; x < len; x++)
                gi[x] = f ? f[x] : 0;
        } else {
            const uint16_t *gp = gi - len;
            for (long x = 0; x < len; x++)
                gi[x] = (uint16_t)(gp[x] | (f ? f[x] : 0));
        }
    }
    for (long i = np - 1; i >= 0; i--) {
        uint16_t *hi = h + (size_t)i * (size_t)len;
        const uint16_t *f = i >= r && i < r + n ? src + (size_t)(i - r) * stride : NULL;
        if (i % L == L - 1 || i == np - 1) {
            for (long x = 0; x < len; x++)
                hi[x] = f ? f[x] : 0;
        } else {
            const uint16_t *hn = hi + len;
            for (long x = 0; x < len; x++)
                hi[x] = (uint16_t)(hn[x] | (f ? f[x] : 0));
        }
    }
    for (long i = 0; i < n; i++) {
        const uint16_t *hi = h + (size_t)i * (size_t)len, *gi = g + (size_t)(i + 2 * r) * (size_t)len;
        uint16_t *o = dst + (size_t)i * stride;
        for (long x = 0; x < len; x++)
            o[x] = (uint16_t)(hi[x] | gi[x]);
    }
}

void sk_cx_dilate_or(const uint16_t *in, uint16_t *out, uint16_t *tmp, long nx, long ny, long r)
{
    if (r <= 0) {
        memcpy(out, in, sizeof(uint16_t) * (size_t)nx * (size_t)ny);
        return;
    }
    /* along rows: each row a sequence of nx single values */
    long nmax = nx > ny ? nx : ny;
    size_t need = (size_t)(nmax + 2 * r) * (size_t)nx;
    uint16_t *g = malloc(sizeof(uint16_t) * need), *h = malloc(sizeof(uint16_t) * need);
    if (!g || !h) {
        free(g);
        free(h);
        dilate_or_direct(in, out, tmp, nx, ny, r);
        return;
    }
    for (long y = 0; y < ny; y++) {
        const uint16_t *row = in + (size_t)y * (size_t)nx;
        uint16_t *t = tmp + (size_t)y * (size_t)nx;
        uint16_t any = 0;
        for (long x = 0; x < nx; x++)
            any |= row[x];
        if (any)
            window_or(row, 1, nx, 1, r, g, h, t);
        else /* the OR of zeros (most rows of a tile) */
            memset(t, 0, sizeof(uint16_t) * (size_t)nx);
    }
    /* down columns: the rows as vectors */
    window_or(tmp, (size_t)nx, ny, nx, r, g, h, out);
    free(g);
    free(h);
}

double sk_cx_stamp_fwhm(const float *stamp, long size)
{
    float peak = 0.0f;
    for (long i = 0; i < size * size; i++)
        if (stamp[i] > peak)
            peak = stamp[i];
    if (!(peak > 0.0f))
        return 0.0;
    const int sub = 4;
    double half = 0.5 * peak, area = 0.0;
    for (long y = 0; y < size - 1; y++)
        for (long x = 0; x < size - 1; x++) {
            float v00 = stamp[y * size + x], v10 = stamp[y * size + x + 1];
            float v01 = stamp[(y + 1) * size + x], v11 = stamp[(y + 1) * size + x + 1];
            if (v00 < half && v10 < half && v01 < half && v11 < half)
                continue;
            for (int j = 0; j < sub; j++)
                for (int i = 0; i < sub; i++) {
                    double tx = (i + 0.5) / sub, ty = (j + 0.5) / sub;
                    double v = (v00 * (1 - tx) + v10 * tx) * (1 - ty) + (v01 * (1 - tx) + v11 * tx) * ty;
                    if (v >= half)
                        area += 1.0 / (sub * sub);
                }
        }
    return 2.0 * sqrt(area / M_PI);
}

/* Cut the Fourier transform of a PSF stamp where it is only the model's
 * noise: an empirical model (stars stacked) carries pixel noise that makes
 * |P^| flat at high frequencies, where the true PSF has no power; kept, it
 * would give a proper coadd's PSF a false sharp core and kernels a noisy
 * tail. The noise per pixel is the rms of the stamp's outer ring (radius
 * > 0.8 of the half size); its power per coefficient is that rms squared
 * times the number of pixels. From the centre outwards, the first ring of
 * frequencies whose mean |P^|^2 falls below twice that power sets the
 * cut-off k_c; P^ is kept below k_c - 0.05 cycles per pixel, tapered to 0
 * at k_c + 0.05 and dropped beyond. Noise-free models (no ring reaching
 * the noise) are left as they are. */
static int denoise_stamp(float *stamp, long size)
{
    long h = size / 2, nr = 0;
    double s2 = 0.0;
    for (long v = 0; v < size; v++)
        for (long u = 0; u < size; u++)
            if (hypot((double)(u - h), (double)(v - h)) > 0.8 * (double)h) {
                s2 += (double)stamp[v * size + u] * stamp[v * size + u];
                nr++;
            }
    if (nr < 8)
        return SK_OK;
    double noise2 = s2 / (double)nr * (double)(size * size);
    if (!(noise2 > 1e-14))
        return SK_OK;
    fftwf_plan fwd = sk_fft_plan_r2c((int)size, (int)size), inv = sk_fft_plan_c2r((int)size, (int)size);
    if (!fwd || !inv)
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    long hc = size / 2 + 1, nc = size * hc, nbin = size / 2 + 2;
    float *r = fftwf_alloc_real((size_t)(size * size));
    fftwf_complex *c = fftwf_alloc_complex((size_t)nc);
    double *pw = calloc((size_t)nbin, sizeof(double));
    long *cnt = calloc((size_t)nbin, sizeof(long));
    if (!r || !c || !pw || !cnt) {
        fftwf_free(r);
        fftwf_free(c);
        free(pw);
        free(cnt);
        return sk_error(SK_EIO, "PSF: out of memory");
    }
    memcpy(r, stamp, sizeof(float) * (size_t)(size * size));
    fftwf_execute_dft_r2c(fwd, r, c);
    /* mean power in rings of width 1/size */
    for (long ky = 0; ky < size; ky++)
        for (long kx = 0; kx < hc; kx++) {
            long fy = ky <= size / 2 ? ky : ky - size;
            long b = lround(hypot((double)kx, (double)fy));
            if (b >= nbin)
                continue;
            long k = ky * hc + kx;
            pw[b] += (double)c[k][0] * c[k][0] + (double)c[k][1] * c[k][1];
            cnt[b]++;
        }
    double kc = -1.0;
    for (long b = 1; b < nbin; b++)
        if (cnt[b] > 0 && pw[b] / (double)cnt[b] < 2.0 * noise2) {
            kc = (double)b / (double)size;
            break;
        }
    if (kc > 0.0) {
        const double dk = 0.05;
        for (long ky = 0; ky < size; ky++)
            for (long kx = 0; kx < hc; kx++) {
                long fy = ky <= size / 2 ? ky : ky - size;
                double kr = hypot((double)kx, (double)fy) / (double)size, wk;
                if (kr <= kc - dk)
                    wk = 1.0;
                else if (kr >= kc + dk)
                    wk = 0.0;
                else {
                    double t = cos(0.25 * M_PI * (kr - kc + dk) / dk);
                    wk = t * t;
                }
                long k = ky * hc + kx;
                c[k][0] *= (float)(wk / (double)(size * size));
                c[k][1] *= (float)(wk / (double)(size * size));
            }
        fftwf_execute_dft_c2r(inv, c, r);
        memcpy(stamp, r, sizeof(float) * (size_t)(size * size));
    }
    fftwf_free(r);
    fftwf_free(c);
    free(pw);
    free(cnt);
    return SK_OK;
}

int sk_cx_psf_stamp(const sk_aligned_input *in, int j, double x, double y, long size,
                    float *stamp)
{
    int status = in->psf(in->psf_ctx, x, y, size, stamp);
    if (status)
        return sk_error_context("PSF of input %d at (%.1f, %.1f)", j, x, y);
    double s = 0.0;
    for (long i = 0; i < size * size; i++) {
        if (!isfinite(stamp[i]))
            return sk_error(SK_EINPUT, "PSF of input %d at (%.1f, %.1f): non-finite value", j,
                            x, y);
        s += stamp[i];
    }
    if (!(s > 0.0))
        return sk_error(SK_EINPUT, "PSF of input %d at (%.1f, %.1f): sum %g is not positive",
                        j, x, y, s);
    for (long i = 0; i < size * size; i++)
        stamp[i] = (float)(stamp[i] / s);
    int rc = denoise_stamp(stamp, size);
    if (rc)
        return rc;
    s = 0.0;
    for (long i = 0; i < size * size; i++)
        s += stamp[i];
    for (long i = 0; i < size * size; i++)
        stamp[i] = (float)(stamp[i] / s);
    return SK_OK;
}

int sk_cx_psf_stamp_locked(pthread_mutex_t *lock, const sk_aligned_input *in, int j, double x,
                           double y, long size, float *stamp)
{
    pthread_mutex_lock(lock);
    int status = sk_cx_psf_stamp(in, j, x, y, size, stamp);
    pthread_mutex_unlock(lock);
    return status;
}

void sk_cx_embed(const float *stamp, long size, float *arr, long nx, long ny)
{
    memset(arr, 0, sizeof(float) * (size_t)(nx * ny));
    long h = size / 2;
    for (long v = 0; v < size; v++) {
        long yy = ((v - h) % ny + ny) % ny;
        for (long u = 0; u < size; u++) {
            long xx = ((u - h) % nx + nx) % nx;
            arr[yy * nx + xx] += stamp[v * size + u];
        }
    }
}

int sk_cx_sparse_fft_init(sk_cx_sparse_fft *s, long nx, long ny)
{
    memset(s, 0, sizeof *s);
    s->nx = nx;
    s->ny = ny;
    const long nh = nx / 2 + 1;
    int n = (int)ny;
    float *r = fftwf_alloc_real((size_t)nx);
    fftwf_complex *c = fftwf_alloc_complex((size_t)(ny * nh));
    /* FFTW_ESTIMATE: the same plan, hence the same bits, on every run;
     * unaligned: rows of the half spectrum start at any complex value */
    const unsigned fl = FFTW_ESTIMATE | FFTW_UNALIGNED;
    if (r && c) {
        s->row = fftwf_plan_dft_r2c_1d((int)nx, r, c, fl);
        s->col = fftwf_plan_many_dft(1, &n, (int)nh, c, NULL, (int)nh, 1, c, NULL, (int)nh, 1,
                                     FFTW_FORWARD, fl);
    }
    fftwf_free(r);
    fftwf_free(c);
    if (!s->row || !s->col) {
        sk_cx_sparse_fft_free(s);
        return sk_error(SK_EIO, "FFTW cannot plan transforms of %ld x %ld", nx, ny);
    }
    return SK_OK;
}

void sk_cx_sparse_fft_free(sk_cx_sparse_fft *s)
{
    if (s->row)
        fftwf_destroy_plan(s->row);
    if (s->col)
        fftwf_destroy_plan(s->col);
    s->row = s->col = NULL;
}

void sk_cx_sparse_r2c(const sk_cx_sparse_fft *s, const float *r, long h, fftwf_complex *c)
{
    const long nx = s->nx, ny = s->ny, nh = nx / 2 + 1;
    for (long y = 0; y < ny; y++) {
        fftwf_complex *cy = c + (size_t)y * (size_t)nh;
        if (y <= h || ny - y <= h)
            fftwf_execute_dft_r2c(s->row, (float *)r + (size_t)y * (size_t)nx, cy);
        else
            memset(cy, 0, sizeof(fftwf_complex) * (size_t)nh);
    }
    fftwf_execute_dft(s->col, c, c);
}

double sk_cx_sigma_from_weight(const sk_aligned_input *in, long width, unsigned mask_flags)
{
    if (!in->sci || in->nrows <= 0)
        return 0.0;
    size_t npix = (size_t)in->nrows * (size_t)width;
    size_t stride = npix / 2000000 + 1;
    float *w = malloc(sizeof(float) * (npix / stride + 1));
    if (!w)
        return 0.0;
    size_t n = 0;
    for (size_t i = 0; i < npix; i += stride) {
        long y = in->row0 + (long)(i / (size_t)width), x = (long)(i % (size_t)width);
        if (sk_cx_usable(in, width, x, y, mask_flags))
            w[n++] = in->weight[i];
    }
    double sigma = n ? 1.0 / sqrt((double)sk_median_floatf(w, (long)n)) : 0.0;
    free(w);
    return sigma;
}

int sk_cx_threads(int want)
{
    if (want > 0)
        return want;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : (int)cores;
}

int sk_cx_tiling_check(const char *who, int n, long width, long height, long psf_size,
                       long tile_px)
{
    if (n < 1)
        return sk_error(SK_EINPUT, "%s: no input", who);
    if (width < 1 || height < 1)
        return sk_error(SK_EINPUT, "%s: bad output size %ld x %ld", who, width, height);
    if (psf_size < 3 || psf_size % 2 == 0)
        return sk_error(SK_EINPUT, "%s: PSF size %ld must be odd and >= 3", who, psf_size);
    if (tile_px < 16)
        return sk_error(SK_EINPUT, "%s: tile size %ld px is below 16", who, tile_px);
    return SK_OK;
}

void sk_cx_tiling_init(sk_cx_tiling *t, long width, long height, long psf_size, long tile_px)
{
    t->width = width;
    t->height = height;
    t->margin = psf_size;
    t->tcx = tile_px < width ? tile_px : width;
    t->tcy = tile_px < height ? tile_px : height;
    t->lx = sk_fft_good_size(t->tcx + 2 * t->margin);
    t->ly = sk_fft_good_size(t->tcy + 2 * t->margin);
    t->ntx = (width + t->tcx - 1) / t->tcx;
    t->nty = (height + t->tcy - 1) / t->tcy;
    t->g = sk_fft_good_size(2 * psf_size);
}

void sk_cx_tiling_rows_needed(const sk_cx_tiling *t, long y0, long y1, long *need0,
                              long *need1)
{
    if (y0 < 0) y0 = 0;
    if (y1 > t->height) y1 = t->height;
    if (y1 <= y0) {
        *need0 = *need1 = y0;
        return;
    }
    long t0 = y0 / t->tcy, t1 = (y1 - 1) / t->tcy;
    long a = t0 * t->tcy - t->margin, b = t1 * t->tcy - t->margin + t->ly;
    *need0 = a < 0 ? 0 : a;
    *need1 = b > t->height ? t->height : b;
}

int sk_cx_rows_check(const char *who, long height, long y0, long y1, const float *sci,
                     const float *weight)
{
    if (y0 < 0 || y1 > height || y1 <= y0)
        return sk_error(SK_EINPUT, "%s: bad output rows [%ld, %ld) of %ld", who, y0, y1, height);
    if (!sci || !weight)
        return sk_error(SK_EINPUT, "%s: no output array", who);
    return SK_OK;
}

int sk_cx_input_rows_check(const char *who, const sk_cx_tiling *t, const sk_aligned_input *in,
                           int j, long y0, long y1)
{
    if (!in->sci || in->nrows <= 0)
        return SK_OK;
    long need0, need1;
    sk_cx_tiling_rows_needed(t, y0, y1, &need0, &need1);
    if (in->row0 > need0 || in->row0 + in->nrows < need1)
        return sk_error(SK_EINPUT, "%s: input %d holds rows [%ld, %ld), rows [%ld, %ld) are needed",
                        who, j, in->row0, in->row0 + in->nrows, need0, need1);
    return SK_OK;
}

/* The tiles of one sk_cx_tiles_run: the first row of tiles, the caller's
 * work, workspace and data. */
typedef struct tiles_job {
    const sk_cx_tiling *t;
    long ty0, tx0, ntx;      /* first row of tiles; tile columns [tx0, tx0+ntx) */
    sk_cx_tile_fn fn;
    const sk_scratch *ws;
    void *user;
} tiles_job;

static int tiles_ws_init(void *ws, void *user)
{
    const tiles_job *job = user;
    return job->ws->init ? job->ws->init(ws, job->user) : SK_OK;
}

static void tiles_ws_release(void *ws, void *user)
{
    const tiles_job *job = user;
    if (job->ws->release)
        job->ws->release(ws, job->user);
}

static int tiles_range(void *ws, long t0, long t1, void *user)
{
    const tiles_job *job = user;
    for (long k = t0; k < t1; k++) {
        int status = job->fn(ws, job->tx0 + k % job->ntx, job->ty0 + k / job->ntx, job->user);
        if (status)
            return status;
    }
    return SK_OK;
}

int sk_cx_tiles_run_cols(const sk_cx_tiling *t, long y0, long y1, long tx0, long tx1,
                         int threads, const sk_scratch *ws, sk_cx_tile_fn fn, void *user)
{
    tx0 = tx0 < 0 ? 0 : tx0;
    tx1 = tx1 > t->ntx ? t->ntx : tx1;
    if (tx1 <= tx0)
        return SK_OK;
    tiles_job job = {t, y0 / t->tcy, tx0, tx1 - tx0, fn, ws, user};
    long ntiles = ((y1 - 1) / t->tcy + 1 - job.ty0) * job.ntx;
    const sk_scratch ops = {ws->size, tiles_ws_init, tiles_ws_release};
    return sk_parallel_for_scratch(ntiles, 1, sk_cx_threads(threads), &ops, tiles_range, &job);
}

int sk_cx_tiles_run(const sk_cx_tiling *t, long y0, long y1, int threads, const sk_scratch *ws,
                    sk_cx_tile_fn fn, void *user)
{
    return sk_cx_tiles_run_cols(t, y0, y1, 0, t->ntx, threads, ws, fn, user);
}

void sk_cx_tiling_cols_needed(const sk_cx_tiling *t, long tx0, long tx1, long *x0, long *x1)
{
    tx0 = tx0 < 0 ? 0 : tx0;
    tx1 = tx1 > t->ntx ? t->ntx : tx1;
    if (tx1 <= tx0) {
        *x0 = *x1 = 0;
        return;
    }
    long a = tx0 * t->tcx - t->margin, b = (tx1 - 1) * t->tcx - t->margin + t->lx;
    *x0 = a < 0 ? 0 : a;
    *x1 = b > t->width ? t->width : b;
}

void sk_cx_tiling_core(const sk_cx_tiling *t, long tx, long ty, long *cx0, long *cy0,
                       long *cx1, long *cy1)
{
    *cx0 = tx * t->tcx;
    *cy0 = ty * t->tcy;
    *cx1 = *cx0 + t->tcx < t->width ? *cx0 + t->tcx : t->width;
    *cy1 = *cy0 + t->tcy < t->height ? *cy0 + t->tcy : t->height;
}
