/* resample.c: interpolation kernels and the resampling of an input rectangle at mapped positions, with flux, variance and flag propagation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/bigbuf.h"
#include "core/vectorise.h"
#include "direct_priv.h"
#include "skystack/error.h"
#include "coadd_internal.h"

static const struct {
    const char *name;
    int kernel, a;
} kernels[] = {
    {"lanczos3", SK_KERNEL_LANCZOS3, 3},
    {"lanczos2", SK_KERNEL_LANCZOS2, 2},
    {"bilinear", SK_KERNEL_BILINEAR, 1},
};
#define NKERNELS ((int)(sizeof kernels / sizeof kernels[0]))

int sk_kernel_from_name(const char *name, int *kernel)
{
    for (int k = 0; name && k < NKERNELS; k++)
        if (strcasecmp(name, kernels[k].name) == 0) {
            *kernel = kernels[k].kernel;
            return SK_OK;
        }
    return sk_error(SK_EINPUT, "kernel '%s': expected lanczos3, lanczos2 or bilinear",
                    name ? name : "(null)");
}

const char *sk_kernel_name(int kernel)
{
    for (int k = 0; k < NKERNELS; k++)
        if (kernels[k].kernel == kernel)
            return kernels[k].name;
    return NULL;
}

int sk_kernel_halfwidth(int kernel)
{
    for (int k = 0; k < NKERNELS; k++)
        if (kernels[k].kernel == kernel)
            return kernels[k].a;
    return 0;
}

double sk_kernel_value(int kernel, double t)
{
    double at = fabs(t);
    if (kernel == SK_KERNEL_BILINEAR)
        return at < 1.0 ? 1.0 - at : 0.0;
    double a = kernel == SK_KERNEL_LANCZOS2 ? 2.0 : 3.0;
    if (at >= a)
        return 0.0;
    if (at < 1e-12)
        return 1.0;
    double pt = M_PI * t;
    return a * sin(pt) * sin(pt / a) / (pt * pt);
}

int sk_kernel_table_init(sk_kernel_table *t, int kernel)
{
    memset(t, 0, sizeof *t);
    int a = sk_kernel_halfwidth(kernel);
    if (a <= 0)
        return sk_error(SK_EINPUT, "unknown kernel %d", kernel);
    t->kernel = kernel;
    t->a = a;
    t->taps = 2 * a;
    t->w = calloc((size_t)(SK_KERNEL_PHASES + 1) * SK_KERNEL_STRIDE, sizeof *t->w);
    t->s2 = malloc((size_t)(SK_KERNEL_PHASES + 1) * sizeof *t->s2);
    if (!t->w || !t->s2) {
        sk_kernel_table_clear(t);
        return sk_error(SK_EIO, "out of memory for the kernel table");
    }
    for (int p = 0; p <= SK_KERNEL_PHASES; p++) {
        double f = (double)p / SK_KERNEL_PHASES, w[8], sum = 0.0, s2 = 0.0;
        for (int k = 0; k < t->taps; k++) {
            int d = k - a + 1;
            w[k] = sk_kernel_value(kernel, f - d);
            sum += w[k];
        }
        for (int k = 0; k < t->taps; k++) {
            w[k] /= sum;
            t->w[(size_t)p * SK_KERNEL_STRIDE + k] = (float)w[k];
            s2 += w[k] * w[k];
        }
        t->s2[p] = (float)s2;
    }
    /* autocorrelation of the continuous normalised kernel
     * k(u) = K(u) / sum_j K(u + j), by the midpoint rule */
    long nr = 2L * a * SK_KERNEL_AUTOCORR_RES + 1;
    t->autocorr = calloc((size_t)nr, sizeof *t->autocorr);
    const int sub = 256;
    long nu = 2L * a * sub;
    double *ku = malloc((size_t)nu * sizeof *ku);
    if (!t->autocorr || !ku) {
        free(ku);
        sk_kernel_table_clear(t);
        return sk_error(SK_EIO, "out of memory for the kernel table");
    }
    for (long i = 0; i < nu; i++) {
        double u = -a + (i + 0.5) / sub, norm = 0.0;
        for (int j = -a - 1; j <= a + 1; j++)
            norm += sk_kernel_value(kernel, u + j);
        ku[i] = sk_kernel_value(kernel, u) / norm;
    }
    for (long r = 0; r < nr; r++) {
        long shift = r * sub / SK_KERNEL_AUTOCORR_RES; /* d in units of 1/sub */
        double sum = 0.0;
        for (long i = 0; i + shift < nu; i++)
            sum += ku[i] * ku[i + shift];
        t->autocorr[r] = sum / sub;
    }
    free(ku);
    return SK_OK;
}

static double autocorr_at(const sk_kernel_table *t, double d)
{
    double x = fabs(d) * SK_KERNEL_AUTOCORR_RES;
    long i = (long)x, nr = 2L * t->a * SK_KERNEL_AUTOCORR_RES;
    if (i >= nr)
        return 0.0;
    double f = x - i;
    return t->autocorr[i] * (1.0 - f) + t->autocorr[i + 1] * f;
}

double sk_kernel_noise_factor(const sk_kernel_table *t, const double J[4])
{
    double det = fabs(J[0] * J[3] - J[1] * J[2]);
    if (!(det > 0.0) || !isfinite(det))
        return 1.0;
    /* output lattice points (m, n) whose image J (m, n) lies within the
     * autocorrelation's support |dx|, |dy| < 2a */
    double reach = 2.0 * t->a;
    double inv[4] = {J[3] / det, -J[1] / det, -J[2] / det, J[0] / det};
    double mmax = reach * (fabs(inv[0]) + fabs(inv[1])) + 1.0;
    double nmax = reach * (fabs(inv[2]) + fabs(inv[3])) + 1.0;
    double sum = 0.0;
    for (long m = -(long)mmax; m <= (long)mmax; m++)
        for (long n = -(long)nmax; n <= (long)nmax; n++) {
            double dx = J[0] * m + J[1] * n, dy = J[2] * m + J[3] * n;
            if (fabs(dx) >= reach || fabs(dy) >= reach)
                continue;
            sum += autocorr_at(t, dx) * autocorr_at(t, dy);
        }
    return det * sum;
}

void sk_kernel_table_clear(sk_kernel_table *t)
{
    free(t->w);
    free(t->s2);
    free(t->autocorr);
    t->w = t->s2 = NULL;
    t->autocorr = NULL;
}

/* Buffers of cap pixels (the old ones freed). */
static int band_buffers(sk_band *b, size_t cap)
{
    sk_band_free(b);
    b->sci = sk_big_malloc(cap + SK_KERNEL_STRIDE, sizeof *b->sci);
    b->var = sk_big_malloc(cap, sizeof *b->var);
    b->flags = sk_big_malloc(cap, sizeof *b->flags);
    b->dil = sk_big_malloc(cap, sizeof *b->dil);
    b->tmp = sk_big_malloc(cap, sizeof *b->tmp);
    if (!b->sci || !b->var || !b->flags || !b->dil || !b->tmp) {
        sk_band_free(b);
        return sk_error(SK_EIO, "coadd: out of memory for an input band of %zu pixels", cap);
    }
    b->capacity = cap;
    return SK_OK;
}

int sk_band_reserve(sk_band *b, size_t npx)
{
    return npx > b->capacity ? band_buffers(b, npx) : SK_OK;
}

int sk_band_alloc(sk_band *b, long x0, long y0, long w, long h, long in_width, long in_height)
{
    if (w <= 0 || h <= 0)
        return sk_error(SK_EINPUT, "coadd: empty input band");
    size_t n = (size_t)w * (size_t)h;
    /* an eighth more: the bands of an input grow by a few rows from one
     * to the next, and each new buffer's pages fault in anew */
    int rc = n > b->capacity ? band_buffers(b, n + n / 8) : SK_OK;
    if (rc)
        return rc;
    for (size_t k = n; k < n + SK_KERNEL_STRIDE; k++)
        b->sci[k] = 0.0f; /* read (times zero weights) by the last vector loads */
    b->x0 = x0;
    b->y0 = y0;
    b->w = w;
    b->h = h;
    b->in_width = in_width;
    b->in_height = in_height;
    return SK_OK;
}

void sk_band_free(sk_band *b)
{
    free(b->sci);
    free(b->var);
    free(b->flags);
    free(b->dil);
    free(b->tmp);
    b->sci = b->var = NULL;
    b->flags = b->dil = b->tmp = NULL;
    b->capacity = 0;
}

/* The dilation's loops vectorised at -O2 too (the compiler's cheapest
 * cost model leaves loops that need an alias check as they are). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif
int sk_band_dilate(sk_band *b, int a)
{
    long w = b->w, h = b->h;
    uint16_t *tmp = b->tmp;
    /* OR over columns x-a+1 .. x+a into tmp, then over rows y-a+1 .. y+a */
    for (long y = 0; y < h; y++) {
        const uint16_t *src = b->flags + (size_t)y * w;
        uint16_t *dst = tmp + (size_t)y * w;
        /* the interior with a fixed window (vectorisable), then the ends */
        long x0 = a - 1, x1 = w - a;
        if (a == 3)
            for (long x = x0; x < x1; x++)
                dst[x] = src[x - 2] | src[x - 1] | src[x] | src[x + 1] | src[x + 2] | src[x + 3];
        else if (a == 2)
            for (long x = x0; x < x1; x++)
                dst[x] = src[x - 1] | src[x] | src[x + 1] | src[x + 2];
        else if (a == 1)
            for (long x = x0; x < x1; x++)
                dst[x] = src[x] | src[x + 1];
        else
            x0 = x1 = 0;
        for (long x = 0; x < w; x++) {
            if (x >= x0 && x < x1) {
                x = x1 - 1;
                continue;
            }
            long lo = x - a + 1 < 0 ? 0 : x - a + 1, hi = x + a >= w ? w - 1 : x + a;
            uint16_t v = 0;
            for (long k = lo; k <= hi; k++)
                v |= src[k];
            dst[x] = v;
        }
    }
    for (long y = 0; y < h; y++) {
        long lo = y - a + 1 < 0 ? 0 : y - a + 1, hi = y + a >= h ? h - 1 : y + a;
        uint16_t *dst = b->dil + (size_t)y * w;
        memcpy(dst, tmp + (size_t)lo * w, (size_t)w * sizeof *dst);
        for (long k = lo + 1; k <= hi; k++) {
            const uint16_t *src = tmp + (size_t)k * w;
            for (long x = 0; x < w; x++)
                dst[x] |= src[x];
        }
    }
    return SK_OK;
}

/* Four floats from any address. */
typedef float v4sf __attribute__((vector_size(16)));

static inline v4sf load4(const float *p)
{
    v4sf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Sum over the taps of wx[c] wy[r] base[r * stride + c]: columns first
 * (four or eight at a time; the weights beyond the taps are zero), then
 * the row weights. Every variant below adds in the same order, so that
 * the result does not depend on the instruction set. */
static inline __attribute__((always_inline)) float conv(int taps, const float *wx, const float *wy,
                                                        const float *base, long stride)
{
    if (taps == 6) {
        /* two chains of three rows each, to keep the adds in flight */
        v4sf w0 = {wy[0], wy[0], wy[0], wy[0]}, w1 = {wy[1], wy[1], wy[1], wy[1]};
        v4sf w2 = {wy[2], wy[2], wy[2], wy[2]}, w3 = {wy[3], wy[3], wy[3], wy[3]};
        v4sf w4 = {wy[4], wy[4], wy[4], wy[4]}, w5 = {wy[5], wy[5], wy[5], wy[5]};
        const float *r0 = base, *r1 = base + stride, *r2 = base + 2 * stride;
        const float *r3 = base + 3 * stride, *r4 = base + 4 * stride, *r5 = base + 5 * stride;
        v4sf loa = w0 * load4(r0) + w2 * load4(r2) + w4 * load4(r4);
        v4sf lob = w1 * load4(r1) + w3 * load4(r3) + w5 * load4(r5);
        v4sf hia = w0 * load4(r0 + 4) + w2 * load4(r2 + 4) + w4 * load4(r4 + 4);
        v4sf hib = w1 * load4(r1 + 4) + w3 * load4(r3 + 4) + w5 * load4(r5 + 4);
        v4sf s = (loa + lob) * load4(wx) + (hia + hib) * load4(wx + 4);
        return (s[0] + s[1]) + (s[2] + s[3]);
    }
    if (taps == 4) {
        v4sf lo = {0, 0, 0, 0};
        for (int r = 0; r < 4; r++) {
            v4sf w = {wy[r], wy[r], wy[r], wy[r]};
            lo += w * load4(base + r * stride);
        }
        v4sf s = lo * load4(wx);
        return (s[0] + s[1]) + (s[2] + s[3]);
    }
    float s = 0.0f;
    for (int r = 0; r < taps; r++) {
        const float *row = base + r * stride;
        float t = 0.0f;
        for (int c = 0; c < taps; c++)
            t += wx[c] * row[c];
        s += wy[r] * t;
    }
    return s;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SK_HAVE_AVX2_RESAMPLE 1
/* Eight floats in one register where the caller is compiled for AVX2
 * (only used there); lanes 0-3 and 4-7 are the two halves of conv(). */
typedef float v8sf __attribute__((vector_size(32)));
#define LOAD8(dst, p) memcpy(&(dst), (p), sizeof(dst))

/* conv() of six taps eight columns at a time: each lane computes what
 * the matching lane of the two four-column halves computes, in the same
 * order, so the sums are the same bit for bit. */
static inline __attribute__((always_inline)) float conv6_wide(const float *wx, const float *wy,
                                                              const float *base, long stride)
{
    v8sf w0 = {wy[0], wy[0], wy[0], wy[0], wy[0], wy[0], wy[0], wy[0]};
    v8sf w1 = {wy[1], wy[1], wy[1], wy[1], wy[1], wy[1], wy[1], wy[1]};
    v8sf w2 = {wy[2], wy[2], wy[2], wy[2], wy[2], wy[2], wy[2], wy[2]};
    v8sf w3 = {wy[3], wy[3], wy[3], wy[3], wy[3], wy[3], wy[3], wy[3]};
    v8sf w4 = {wy[4], wy[4], wy[4], wy[4], wy[4], wy[4], wy[4], wy[4]};
    v8sf w5 = {wy[5], wy[5], wy[5], wy[5], wy[5], wy[5], wy[5], wy[5]};
    v8sf r0, r1, r2, r3, r4, r5, x;
    LOAD8(r0, base);
    LOAD8(r1, base + stride);
    LOAD8(r2, base + 2 * stride);
    LOAD8(r3, base + 3 * stride);
    LOAD8(r4, base + 4 * stride);
    LOAD8(r5, base + 5 * stride);
    LOAD8(x, wx);
    v8sf a = w0 * r0 + w2 * r2 + w4 * r4;
    v8sf b = w1 * r1 + w3 * r3 + w5 * r5;
    v8sf p = (a + b) * x;
    v4sf lo = {p[0], p[1], p[2], p[3]}, hi = {p[4], p[5], p[6], p[7]};
    v4sf s = lo + hi;
    return (s[0] + s[1]) + (s[2] + s[3]);
}
#endif

static inline void entry_empty(sk_stack_entry *e, uint16_t flags)
{
    e->in.value = 0.0f;
    e->in.var = 0.0f;
    e->in.cweight = 0.0f;
    e->in.poisson = 0.0f;
    e->flags = flags;
}

/* Output pixels whose positions are classified at once. */
#define RS_BLOCK 64

/* What an output pixel takes from the band, decided by its position. */
enum { RS_EMPTY, RS_COPY, RS_EDGE, RS_TAPS };

/* The positions of a block: the input pixel at or below (ix, iy), the
 * kernel phases (px, py) and the kind. */
typedef struct rs_block {
    int32_t ix[RS_BLOCK], iy[RS_BLOCK], px[RS_BLOCK], py[RS_BLOCK], kind[RS_BLOCK];
} rs_block;

/* The positions of m <= RS_BLOCK output pixels, by the same operations
 * on every pixel (vectorised): covered when the nearest input pixel is on
 * the input (in_w x in_h) and the area ratio is positive; ix = floor(x)
 * and the phase rounded to a multiple of 1 / SK_KERNEL_PHASES, a phase of
 * 1 being 0 of the next pixel; a copy at phase 0 in both axes; the taps
 * within the band when [ix, iy] is within [xlo, xhi] x [ylo, yhi]. */
SK_VECTORISE static void rs_classify(long m, const double *xi, const double *yi, const double *area,
                                     double in_w, double in_h, int32_t xlo, int32_t xhi,
                                     int32_t ylo, int32_t yhi, rs_block *p)
{
    for (long k = 0; k < m; k++) {
        double x = xi[k], y = yi[k];
        int32_t cov = (x >= -0.5) & (x < in_w - 0.5) & (y >= -0.5) & (y < in_h - 0.5) & (area[k] > 0.0);
        /* off the input (or NaN): a position on it, for the conversions */
        x = x > -1.0 ? x : -1.0;
        x = x < in_w ? x : in_w;
        y = y > -1.0 ? y : -1.0;
        y = y < in_h ? y : in_h;
        int32_t ix = (int32_t)x, iy = (int32_t)y;
        ix -= x < (double)ix;
        iy -= y < (double)iy;
        int32_t px = (int32_t)((x - (double)ix) * SK_KERNEL_PHASES + 0.5);
        int32_t py = (int32_t)((y - (double)iy) * SK_KERNEL_PHASES + 0.5);
        int32_t cx = px == SK_KERNEL_PHASES, cy = py == SK_KERNEL_PHASES;
        ix += cx;
        iy += cy;
        px -= cx * SK_KERNEL_PHASES;
        py -= cy * SK_KERNEL_PHASES;
        int32_t inside = (ix >= xlo) & (ix <= xhi) & (iy >= ylo) & (iy <= yhi);
        int32_t copy = (px == 0) & (py == 0);
        p->ix[k] = ix;
        p->iy[k] = iy;
        p->px[k] = px;
        p->py[k] = py;
        /* RS_EMPTY, else RS_COPY, else RS_TAPS or RS_EDGE */
        p->kind[k] = cov * (RS_COPY + (1 - copy) * (1 + inside));
    }
}

/* An output pixel on an input pixel (a copy) or with taps off the input
 * (or, never expected, off the band); returns 1 when it received a value. */
static long resample_special(int kind, const sk_band *b, long ix, long iy, int px, int py, double ar,
                             sk_stack_entry *e)
{
    const long bw = b->w, bh = b->h;
    if (kind == RS_EMPTY) {
        entry_empty(e, 0);
        return 0;
    }
    if (kind == RS_EDGE) {
        long nx = ix + (px >= SK_KERNEL_PHASES / 2), ny = iy + (py >= SK_KERNEL_PHASES / 2);
        long cx = nx - b->x0, cy = ny - b->y0;
        uint16_t fl = SK_FLAG_EDGE;
        if (cx >= 0 && cx < bw && cy >= 0 && cy < bh)
            fl |= b->flags[(size_t)cy * bw + (size_t)cx];
        entry_empty(e, fl);
        return 0;
    }
    long bx = ix - b->x0, by = iy - b->y0;
    if (bx < 0 || bx >= bw || by < 0 || by >= bh) {
        entry_empty(e, SK_FLAG_EDGE);
        return 0;
    }
    size_t i = (size_t)by * bw + (size_t)bx;
    uint16_t fl = b->flags[i];
    if (fl & SK_FLAGS_UNUSABLE) {
        entry_empty(e, fl);
        return 0;
    }
    float v = b->var[i];
    e->flags = fl;
    e->in.value = (float)(b->sci[i] * ar);
    e->in.var = (float)(ar * ar * v);
    e->in.cweight = (float)(1.0 / (ar * v * b->noise_factor));
    e->in.poisson = (float)(ar * b->poisson_per_area);
    return 1;
}

/* An entry added to the mean's sums of its output pixel, as the combine
 * step would add it (direct.c), and to the input's row totals (held in
 * registers by the caller: through memory each pixel's addition would
 * wait for the store of the one before). */
static inline __attribute__((always_inline)) void acc_add(sk_mean_acc *a, const sk_stack_entry *e,
                                                          sk_mean_row *row)
{
    if (e->in.cweight > 0.0f) {
        double c = e->in.cweight;
        a->sc += c;
        a->scv += c * e->in.value;
        a->scvar += c * c * e->in.var;
        a->nc++;
        a->used_flags |= e->flags;
        a->covered = 1;
        row->npixels++;
        row->cweight += e->in.cweight;
    } else if (e->flags) {
        a->covered_flags |= e->flags;
        a->covered = 1;
    }
}

/* The resampling loop, inlined into one variant per instruction set
 * (wide: conv6_wide for six taps): the positions of a block classified,
 * then each pixel's taps summed; each pixel's entry stored in out, or
 * (acc not NULL) added to acc[k] and row instead. */
static inline __attribute__((always_inline)) long
resample_loop(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
              const double *yi, const double *area, sk_stack_entry *out, long stride, int wide,
              sk_mean_acc *acc, sk_mean_row *row)
{
    const int a = kt->a, taps = kt->taps;
    const long bw = b->w;
    const double in_w = (double)b->in_width, in_h = (double)b->in_height;
    /* taps within the input and within the band, as ranges of ix, iy */
    const long xlo = (a - 1 > b->x0 + a - 1 ? a - 1 : b->x0 + a - 1);
    const long xhi = (b->in_width - a - 1 < b->x0 + bw - a - 1 ? b->in_width - a - 1 : b->x0 + bw - a - 1);
    const long ylo = (a - 1 > b->y0 + a - 1 ? a - 1 : b->y0 + a - 1);
    const long yhi = (b->in_height - a - 1 < b->y0 + b->h - a - 1 ? b->in_height - a - 1 : b->y0 + b->h - a - 1);
    const double pp = b->poisson_per_area, nf = b->noise_factor;
    long nvalid = 0;
    rs_block p;
    sk_stack_entry blk[RS_BLOCK];
    for (long k0 = 0; k0 < n; k0 += RS_BLOCK) {
        long m = n - k0 < RS_BLOCK ? n - k0 : RS_BLOCK;
        rs_classify(m, xi + k0, yi + k0, area + k0, in_w, in_h, (int32_t)xlo, (int32_t)xhi,
                    (int32_t)ylo, (int32_t)yhi, &p);
        for (long j = 0; j < m; j++) {
            sk_stack_entry *e = acc ? &blk[j] : out + (k0 + j) * stride;
            long ix = p.ix[j], iy = p.iy[j];
            int px = p.px[j], py = p.py[j];
            double ar = area[k0 + j];
            if (p.kind[j] != RS_TAPS) {
                nvalid += resample_special(p.kind[j], b, ix, iy, px, py, ar, e);
                continue;
            }
            long bx = ix - b->x0, by = iy - b->y0;
            uint16_t fl = b->dil[(size_t)by * bw + (size_t)bx];
            if (fl & SK_FLAGS_UNUSABLE) {
                entry_empty(e, fl);
                continue;
            }
            long nx = ix + (px >= SK_KERNEL_PHASES / 2), ny = iy + (py >= SK_KERNEL_PHASES / 2);
            const float *wx = kt->w + (size_t)px * SK_KERNEL_STRIDE;
            const float *wy = kt->w + (size_t)py * SK_KERNEL_STRIDE;
            const float *base = b->sci + (size_t)(by - a + 1) * bw + (size_t)(bx - a + 1);
            float s;
#ifdef SK_HAVE_AVX2_RESAMPLE
            if (wide && taps == 6)
                s = conv6_wide(wx, wy, base, bw);
            else
#endif
                s = conv(taps, wx, wy, base, bw);
            float v = b->var[(size_t)(ny - b->y0) * bw + (size_t)(nx - b->x0)];
            e->flags = fl;
            e->in.value = (float)(s * ar);
            double var = ar * ar * kt->s2[px] * kt->s2[py] * v;
            e->in.var = (float)var;
            e->in.cweight = (float)(1.0 / (ar * v * nf));
            e->in.poisson = (float)(ar * pp);
            nvalid++;
        }
        /* the block's entries added to the sums (a loop apart: the
         * entries' computation then runs without waiting on the sums) */
        if (acc) {
            sk_mean_row r = *row;
            for (long j = 0; j < m; j++)
                acc_add(acc + k0 + j, &blk[j], &r);
            *row = r;
        }
    }
    (void)wide;
    return nvalid;
}

long sk_band_resample_plain(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
                            const double *yi, const double *area, sk_stack_entry *out, long stride)
{
    return resample_loop(kt, b, n, xi, yi, area, out, stride, 0, NULL, NULL);
}

#ifdef SK_HAVE_AVX2_RESAMPLE
/* The same loop compiled for AVX2 (without FMA, whose fused rounding
 * would change the sums): eight-column loads, SSE4.1 rounding; the upper
 * halves of the vector registers cleared before returning to SSE code. */
__attribute__((target("avx2"))) static long
resample_avx2(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
              const double *yi, const double *area, sk_stack_entry *out, long stride)
{
    long nvalid = resample_loop(kt, b, n, xi, yi, area, out, stride, 1, NULL, NULL);
    __builtin_ia32_vzeroupper();
    return nvalid;
}

__attribute__((target("avx2"))) static long
resample_mean_avx2(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
                   const double *yi, const double *area, sk_mean_acc *acc, sk_mean_row *row)
{
    long nvalid = resample_loop(kt, b, n, xi, yi, area, NULL, 0, 1, acc, row);
    __builtin_ia32_vzeroupper();
    return nvalid;
}
#endif

long sk_band_resample(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
                      const double *yi, const double *area, sk_stack_entry *out, long stride)
{
#ifdef SK_HAVE_AVX2_RESAMPLE
    if (__builtin_cpu_supports("avx2")) /* a load and a test */
        return resample_avx2(kt, b, n, xi, yi, area, out, stride);
#endif
    return sk_band_resample_plain(kt, b, n, xi, yi, area, out, stride);
}

long sk_band_resample_mean(const sk_kernel_table *kt, const sk_band *b, long n, const double *xi,
                           const double *yi, const double *area, sk_mean_acc *acc, sk_mean_row *row)
{
#ifdef SK_HAVE_AVX2_RESAMPLE
    if (__builtin_cpu_supports("avx2"))
        return resample_mean_avx2(kt, b, n, xi, yi, area, acc, row);
#endif
    return resample_loop(kt, b, n, xi, yi, area, NULL, 0, 0, acc, row);
}
