/* psfmatch.c: aligned inputs convolved to one target PSF with regularised Fourier-space kernels, their variance propagated and their masks grown by the kernel. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "aligned_priv.h"
#include "numeric/fft_priv.h"
#include "numeric/psf_profile.h"
#include "core/parallel.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/image.h"
#include "skystack/log.h"
#include "coaddx_internal.h"

/*
 * The kernel of input j at a tile centre: with both PSFs on a grid of twice
 * the PSF size, K^ = P^_T conj(P^_j) / (|P^_j|^2 + lambda^2) (a Wiener-like
 * ratio P^_T / P^_j that stays bounded where P^_j vanishes), back to real
 * space, cut to the circle of radius psf_size/2 with a cosine taper over its
 * outer 30 %, and normalised to unit sum (flux is conserved exactly).
 *
 * Each tile core of tile_px is convolved with a margin of one PSF size on
 * every side (data beyond the image or the input's footprint is in-painted
 * first, so the FFT's wrap-around only reaches the cropped margin). Three
 * convolutions: the in-painted science by K, the in-painted variance by K^2
 * (the per-pixel variance of the result for independent input pixels), and
 * the mask of unusable pixels by |K| (the share of kernel weight that fell on
 * in-painted values).
 */

struct sk_psfmatch {
    int n;
    long width, height;
    sk_aligned_input *in;
    sk_psf_target target;
    int target_input;
    double target_fwhm;
    sk_psfmatch_opts o;
    sk_cx_tiling tile;
    sk_cx_sparse_fft kfft;       /* the kernels' transforms on the tile grid */
    long rk;
    pthread_mutex_t psf_lock;
    int lock_ok;
};

void sk_psfmatch_opts_default(sk_psfmatch_opts *o)
{
    memset(o, 0, sizeof *o);
    o->psf_size = 31;
    o->tile_px = 512;
    o->threads = 0;
    o->mask_flags = SK_COADDX_MASK_DEFAULT;
    o->regularization = 1e-3;
    o->contamination = 1e-3;
}

/* The target PSF at (x, y) on a size x size stamp (size = psf_size): input
 * tgt's PSF when tgt >= 0, else the analytic target. */
static int target_stamp(sk_psfmatch *pm, int tgt, double x, double y, long size, float *stamp)
{
    if (tgt >= 0)
        return sk_cx_psf_stamp_locked(&pm->psf_lock, &pm->in[tgt], tgt, x, y, size, stamp);
    sk_sim_psf p;
    memset(&p, 0, sizeof p);
    p.model = pm->target.kind == SK_TARGET_GAUSSIAN ? SK_SIM_GAUSSIAN : SK_SIM_MOFFAT;
    p.fwhm_px = pm->target.fwhm_px;
    p.beta = pm->target.kind == SK_TARGET_MOFFAT ? pm->target.moffat_beta : 3.0;
    p.radius_fwhm = (double)(size / 2) / pm->target.fwhm_px;
    if (p.radius_fwhm > 50.0)
        p.radius_fwhm = 50.0;
    int st = sk_sim_psf_check(&p);
    if (st)
        return sk_error_context("psfmatch: target PSF on a %ld px stamp", size);
    double *d = calloc((size_t)(size * size), sizeof(double));
    if (!d)
        return sk_error(SK_EIO, "psfmatch: out of memory");
    sk_sim_psf_add(&p, 1.0, (double)(size / 2), (double)(size / 2), d, size, size, 0, size);
    double s = 0.0;
    for (long i = 0; i < size * size; i++)
        s += d[i];
    for (long i = 0; i < size * size; i++)
        stamp[i] = (float)(d[i] / s);
    free(d);
    return SK_OK;
}

int sk_psfmatch_new(const sk_aligned_input *in, int n, long width, long height,
                    const sk_psf_target *target, const sk_psfmatch_opts *opts,
                    sk_psfmatch **out)
{
    *out = NULL;
    sk_psfmatch_opts o;
    if (opts)
        o = *opts;
    else
        sk_psfmatch_opts_default(&o);
    sk_psf_target t;
    if (target)
        t = *target;
    else {
        memset(&t, 0, sizeof t);
        t.kind = SK_TARGET_BROADEST;
    }
    int status = sk_cx_tiling_check("psfmatch", n, width, height, o.psf_size, o.tile_px);
    if (status)
        return status;
    if (!(o.regularization > 0.0 && o.regularization < 1.0))
        return sk_error(SK_EINPUT, "psfmatch: regularization %g must be in (0, 1)",
                        o.regularization);
    if (!(o.contamination > 0.0 && o.contamination < 1.0))
        return sk_error(SK_EINPUT, "psfmatch: contamination %g must be in (0, 1)",
                        o.contamination);
    for (int j = 0; j < n; j++)
        if (!in[j].psf)
            return sk_error(SK_EINPUT, "psfmatch: input %d has no PSF", j);
    switch (t.kind) {
    case SK_TARGET_BROADEST:
        break;
    case SK_TARGET_INPUT:
        if (t.input < 0 || t.input >= n)
            return sk_error(SK_EINPUT, "psfmatch: target input %d of %d", t.input, n);
        break;
    case SK_TARGET_GAUSSIAN:
    case SK_TARGET_MOFFAT:
        if (!(t.fwhm_px > 0.0 && isfinite(t.fwhm_px)))
            return sk_error(SK_EINPUT, "psfmatch: target FWHM %g px must be > 0", t.fwhm_px);
        if ((double)(o.psf_size / 2) < 1.5 * t.fwhm_px)
            return sk_error(SK_EINPUT,
                            "psfmatch: target FWHM %g px too large for PSF stamps of %ld px "
                            "(need at least 3 FWHM)", t.fwhm_px, o.psf_size);
        if (t.kind == SK_TARGET_MOFFAT && !(t.moffat_beta > 1.0))
            return sk_error(SK_EINPUT, "psfmatch: target Moffat beta %g must be > 1",
                            t.moffat_beta);
        break;
    default:
        return sk_error(SK_EINPUT, "psfmatch: unknown target kind %d", t.kind);
    }
    sk_psfmatch *pm = calloc(1, sizeof *pm);
    if (!pm)
        return sk_error(SK_EIO, "psfmatch: out of memory");
    pm->in = malloc(sizeof(sk_aligned_input) * (size_t)n);
    if (!pm->in) {
        free(pm);
        return sk_error(SK_EIO, "psfmatch: out of memory");
    }
    memcpy(pm->in, in, sizeof(sk_aligned_input) * (size_t)n);
    pthread_mutex_init(&pm->psf_lock, NULL);
    pm->lock_ok = 1;
    pm->n = n;
    pm->width = width;
    pm->height = height;
    pm->o = o;
    pm->target = t;
    pm->rk = o.psf_size / 2;
    sk_cx_tiling_init(&pm->tile, width, height, o.psf_size, o.tile_px);
    status = sk_cx_sparse_fft_init(&pm->kfft, pm->tile.lx, pm->tile.ly);
    if (status) {
        sk_psfmatch_free(pm);
        return status;
    }

    long ps = o.psf_size;
    float *st = malloc(sizeof(float) * (size_t)(ps * ps));
    if (!st) {
        sk_psfmatch_free(pm);
        return sk_error(SK_EIO, "psfmatch: out of memory");
    }
    double xc = 0.5 * (double)(width - 1), yc = 0.5 * (double)(height - 1);
    pm->target_input = -1;
    if (t.kind == SK_TARGET_BROADEST || t.kind == SK_TARGET_INPUT) {
        double best = -1.0;
        for (int j = 0; j < n; j++) {
            if (t.kind == SK_TARGET_INPUT && j != t.input)
                continue;
            status = sk_cx_psf_stamp(&in[j], j, xc, yc, ps, st);
            if (status) {
                free(st);
                sk_psfmatch_free(pm);
                return status;
            }
            double f = sk_cx_stamp_fwhm(st, ps);
            if (f > best) {
                best = f;
                pm->target_input = j;
            }
        }
        pm->target_fwhm = best;
    } else {
        status = target_stamp(pm, -1, xc, yc, ps, st);
        if (status) {
            free(st);
            sk_psfmatch_free(pm);
            return status;
        }
        pm->target_fwhm = sk_cx_stamp_fwhm(st, ps);
    }
    free(st);
    *out = pm;
    return SK_OK;
}

void sk_psfmatch_free(sk_psfmatch *pm)
{
    if (!pm)
        return;
    if (pm->lock_ok)
        pthread_mutex_destroy(&pm->psf_lock);
    sk_cx_sparse_fft_free(&pm->kfft);
    free(pm->in);
    free(pm);
}

int sk_psfmatch_target_input(const sk_psfmatch *pm) { return pm->target_input; }
double sk_psfmatch_target_fwhm(const sk_psfmatch *pm) { return pm->target_fwhm; }

void sk_psfmatch_rows_needed(const sk_psfmatch *pm, long y0, long y1, long *need0, long *need1)
{
    sk_cx_tiling_rows_needed(&pm->tile, y0, y1, need0, need1);
}

int sk_psfmatch_set_rows(sk_psfmatch *pm, int j, const float *sci, const float *weight,
                         const uint16_t *flags, long row0, long nrows)
{
    if (j < 0 || j >= pm->n || row0 < 0 || nrows < 0 || row0 + nrows > pm->height ||
        (nrows > 0 && (!sci || !weight)))
        return sk_error(SK_EINPUT, "psfmatch: input %d: bad rows [%ld, %ld)", j, row0,
                        row0 + nrows);
    pm->in[j].sci = sci;
    pm->in[j].weight = weight;
    pm->in[j].flags = flags;
    pm->in[j].row0 = row0;
    pm->in[j].nrows = nrows;
    return SK_OK;
}

int sk_psfmatch_target_psf(sk_psfmatch *pm, double x_px, double y_px, long size, float *stamp)
{
    if (size < 1 || size % 2 == 0)
        return sk_error(SK_EINPUT, "psfmatch: PSF stamp size %ld must be odd", size);
    return target_stamp(pm, pm->target_input, x_px, y_px, size, stamp);
}

/* ---- kernels ----------------------------------------------------------- */

typedef struct kernel_ws {
    float *pj, *pt;              /* stamps */
    float *gr;                   /* gk x gk */
    fftwf_complex *gj, *gt;
} kernel_ws;

static void kernel_ws_free(kernel_ws *k)
{
    free(k->pj);
    free(k->pt);
    fftwf_free(k->gr);
    fftwf_free(k->gj);
    fftwf_free(k->gt);
    memset(k, 0, sizeof *k);
}

static int kernel_ws_init(kernel_ws *k, const sk_psfmatch *pm)
{
    memset(k, 0, sizeof *k);
    long ps = pm->o.psf_size, g = pm->tile.g;
    k->pj = malloc(sizeof(float) * (size_t)(ps * ps));
    k->pt = malloc(sizeof(float) * (size_t)(ps * ps));
    k->gr = fftwf_alloc_real((size_t)(g * g));
    k->gj = fftwf_alloc_complex((size_t)(g * (g / 2 + 1)));
    k->gt = fftwf_alloc_complex((size_t)(g * (g / 2 + 1)));
    if (!k->pj || !k->pt || !k->gr || !k->gj || !k->gt) {
        kernel_ws_free(k);
        return sk_error(SK_EIO, "psfmatch: out of memory");
    }
    return SK_OK;
}

/* The kernel from input j to the PSF of input tgt (tgt < 0: the analytic
 * target) at (x, y): ks x ks values, ks = 2 rk + 1, centred. */
static int make_kernel(sk_psfmatch *pm, kernel_ws *k, int j, int tgt, double x, double y,
                       float *kern)
{
    long ps = pm->o.psf_size, g = pm->tile.g, gh = g / 2 + 1, rk = pm->rk, ks = 2 * rk + 1;
    fftwf_plan fwd = sk_fft_plan_r2c((int)g, (int)g), inv = sk_fft_plan_c2r((int)g, (int)g);
    if (!fwd || !inv)
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    int status = sk_cx_psf_stamp_locked(&pm->psf_lock, &pm->in[j], j, x, y, ps, k->pj);
    if (!status)
        status = target_stamp(pm, tgt, x, y, ps, k->pt);
    if (status)
        return status;
    sk_cx_embed(k->pj, ps, k->gr, g, g);
    fftwf_execute_dft_r2c(fwd, k->gr, k->gj);
    sk_cx_embed(k->pt, ps, k->gr, g, g);
    fftwf_execute_dft_r2c(fwd, k->gr, k->gt);
    double lam2 = pm->o.regularization * pm->o.regularization;
    for (long q = 0; q < g * gh; q++) {
        double ar = k->gt[q][0], ai = k->gt[q][1], br = k->gj[q][0], bi = k->gj[q][1];
        double den = br * br + bi * bi + lam2;
        /* P_T conj(P_j) / den */
        k->gt[q][0] = (float)((ar * br + ai * bi) / den / (double)(g * g));
        k->gt[q][1] = (float)((ai * br - ar * bi) / den / (double)(g * g));
    }
    fftwf_execute_dft_c2r(inv, k->gt, k->gr);
    double r1 = 0.7 * (double)rk, r2 = (double)rk + 0.5, sum = 0.0;
    for (long v = 0; v < ks; v++)
        for (long u = 0; u < ks; u++) {
            long dy = v - rk, dx = u - rk;
            double r = sqrt((double)(dx * dx + dy * dy)), wgt;
            if (r <= r1)
                wgt = 1.0;
            else if (r < r2) {
                double c = cos(0.5 * M_PI * (r - r1) / (r2 - r1));
                wgt = c * c;
            } else
                wgt = 0.0;
            long yy = (dy % g + g) % g, xx = (dx % g + g) % g;
            double val = wgt * k->gr[yy * g + xx];
            kern[v * ks + u] = (float)val;
            sum += val;
        }
    if (!(fabs(sum) > 1e-6))
        return sk_error(SK_EINPUT, "psfmatch: input %d: kernel at (%.0f, %.0f) has sum %g", j, x,
                        y, sum);
    for (long i = 0; i < ks * ks; i++)
        kern[i] = (float)(kern[i] / sum);
    return SK_OK;
}

double sk_psfmatch_varcorr(sk_psfmatch *pm, int j)
{
    if (j < 0 || j >= pm->n)
        return 0.0;
    if (j == pm->target_input)
        return 1.0;
    long ks = 2 * pm->rk + 1;
    kernel_ws k;
    float *kern = malloc(sizeof(float) * (size_t)(ks * ks));
    if (!kern || kernel_ws_init(&k, pm)) {
        free(kern);
        return 0.0;
    }
    double s2 = 0.0;
    if (!make_kernel(pm, &k, j, pm->target_input, 0.5 * (double)(pm->width - 1),
                     0.5 * (double)(pm->height - 1), kern))
        for (long i = 0; i < ks * ks; i++)
            s2 += (double)kern[i] * kern[i];
    kernel_ws_free(&k);
    free(kern);
    return s2 > 0.0 ? 1.0 / s2 : 0.0;
}

double sk_psfmatch_match_error(sk_psfmatch *pm, int j)
{
    if (j < 0 || j >= pm->n || j == pm->target_input)
        return 0.0;
    long ps = pm->o.psf_size, rk = pm->rk, ks = 2 * rk + 1;
    kernel_ws k;
    float *kern = malloc(sizeof(float) * (size_t)(ks * ks));
    if (!kern || kernel_ws_init(&k, pm)) {
        free(kern);
        return 1.0;
    }
    double err = 1.0;
    if (!make_kernel(pm, &k, j, pm->target_input, 0.5 * (double)(pm->width - 1),
                     0.5 * (double)(pm->height - 1), kern)) {
        /* k.pj, k.pt hold the input's and the target's stamps */
        double emax = 0.0, tmax = 0.0;
        for (long y = 0; y < ps; y++)
            for (long x = 0; x < ps; x++) {
                double s = 0.0;
                for (long v = 0; v < ks; v++) {
                    long yy = y - (v - rk);
                    if (yy < 0 || yy >= ps)
                        continue;
                    for (long u = 0; u < ks; u++) {
                        long xx = x - (u - rk);
                        if (xx >= 0 && xx < ps)
                            s += (double)kern[v * ks + u] * k.pj[yy * ps + xx];
                    }
                }
                double t = k.pt[y * ps + x];
                if (fabs(s - t) > emax) emax = fabs(s - t);
                if (t > tmax) tmax = t;
            }
        err = tmax > 0.0 ? emax / tmax : 1.0;
    }
    kernel_ws_free(&k);
    free(kern);
    return err;
}

/* ---- convolution of one input, tile by tile --------------------------- */

typedef struct conv_ws {
    kernel_ws k;
    float *kern;
    float *rs, *rv, *rm, *rk;       /* ly x lx real */
    fftwf_complex *cs, *cv, *cm, *ck;
    fftwf_complex *ss, *sv, *sm;    /* the source's spectra kept (several targets) */
    uint8_t *valid;
    uint16_t *ibits, *dil, *dtmp;
    int clear;                      /* every pixel of the tile usable: the
                                       mask and its convolution are 0 */
} conv_ws;

static void conv_ws_free(conv_ws *w)
{
    kernel_ws_free(&w->k);
    free(w->kern);
    fftwf_free(w->rs);
    fftwf_free(w->rv);
    fftwf_free(w->rm);
    fftwf_free(w->rk);
    fftwf_free(w->cs);
    fftwf_free(w->cv);
    fftwf_free(w->cm);
    fftwf_free(w->ck);
    fftwf_free(w->ss);
    fftwf_free(w->sv);
    fftwf_free(w->sm);
    free(w->valid);
    free(w->ibits);
    free(w->dil);
    free(w->dtmp);
    memset(w, 0, sizeof *w);
}

/* A thread's tile buffers; with `keep`, room for the source's spectra. */
static int conv_ws_init(conv_ws *w, const sk_psfmatch *pm, int keep)
{
    memset(w, 0, sizeof *w);
    int status = kernel_ws_init(&w->k, pm);
    if (status)
        return status;
    const long lx = pm->tile.lx, ly = pm->tile.ly;
    size_t nb = (size_t)(lx * ly), nc = (size_t)(ly * (lx / 2 + 1));
    long ks = 2 * pm->rk + 1;
    w->kern = malloc(sizeof(float) * (size_t)(ks * ks));
    w->rs = fftwf_alloc_real(nb);
    w->rv = fftwf_alloc_real(nb);
    w->rm = fftwf_alloc_real(nb);
    w->rk = fftwf_alloc_real(nb);
    w->cs = fftwf_alloc_complex(nc);
    w->cv = fftwf_alloc_complex(nc);
    w->cm = fftwf_alloc_complex(nc);
    w->ck = fftwf_alloc_complex(nc);
    if (keep) {
        w->ss = fftwf_alloc_complex(nc);
        w->sv = fftwf_alloc_complex(nc);
        w->sm = fftwf_alloc_complex(nc);
    }
    w->valid = malloc(nb);
    w->ibits = malloc(sizeof(uint16_t) * nb);
    w->dil = malloc(sizeof(uint16_t) * nb);
    w->dtmp = malloc(sizeof(uint16_t) * nb);
    if (!w->kern || !w->rs || !w->rv || !w->rm || !w->rk || !w->cs || !w->cv || !w->cm ||
        !w->ck || !w->valid || !w->ibits || !w->dil || !w->dtmp ||
        (keep && (!w->ss || !w->sv || !w->sm))) {
        conv_ws_free(w);
        return sk_error(SK_EIO, "psfmatch: out of memory for a %ld x %ld tile", lx, ly);
    }
    return SK_OK;
}

/* Multiply a spectrum by the transform of a real kernel image. */
static void spec_mul(fftwf_complex *a, const fftwf_complex *b, long n, float scale)
{
    for (long q = 0; q < n; q++) {
        float ar = a[q][0], ai = a[q][1], br = b[q][0], bi = b[q][1];
        a[q][0] = scale * (ar * br - ai * bi);
        a[q][1] = scale * (ar * bi + ai * br);
    }
}

/* One tile: its core [cx0, cx1) x [cy0, cy1) and buffer origin (bx0, by0). */
typedef struct conv_tile_box {
    long cx0, cy0, cx1, cy1, bx0, by0;
} conv_tile_box;

static void tile_box(const sk_psfmatch *pm, long tx, long ty, conv_tile_box *b)
{
    sk_cx_tiling_core(&pm->tile, tx, ty, &b->cx0, &b->cy0, &b->cx1, &b->cy1);
    b->bx0 = b->cx0 - pm->tile.margin;
    b->by0 = b->cy0 - pm->tile.margin;
}

/* Science, variance, mask and the flag bits of unusable pixels of input
 * `in` over the tile's buffer; the count of usable pixels. */
static long load_tile(const sk_psfmatch *pm, conv_ws *w, const sk_aligned_input *in,
                      const conv_tile_box *t)
{
    const long lx = pm->tile.lx, ly = pm->tile.ly, width = pm->width;
    const unsigned mask = pm->o.mask_flags;
    long nvalid = 0;
    for (long by = 0; by < ly; by++) {
        long gy = t->by0 + by;
        for (long bx = 0; bx < lx; bx++) {
            long gx = t->bx0 + bx;
            size_t b = (size_t)(by * lx + bx);
            int inside = gy >= 0 && gy < pm->height && gx >= 0 && gx < width;
            int ok = inside && sk_cx_usable(in, width, gx, gy, mask);
            w->valid[b] = (uint8_t)ok;
            if (ok) {
                size_t i = (size_t)(gy - in->row0) * (size_t)width + (size_t)gx;
                w->rs[b] = in->sci[i];
                w->rv[b] = 1.0f / in->weight[i];
                w->rm[b] = 0.0f;
                w->ibits[b] = 0;
                nvalid++;
            } else {
                w->rs[b] = 0.0f;
                w->rv[b] = 0.0f;
                w->rm[b] = 1.0f;
                uint16_t f = inside ? sk_cx_flags(in, width, gx, gy) : 0;
                f &= (uint16_t)mask;
                w->ibits[b] = f ? f : SK_FLAG_EDGE;
            }
        }
    }
    return nvalid;
}

/* The core's rows in `out` as loaded, unconvolved (the target input, or a
 * tile without a usable pixel). */
static void copy_tile(const sk_psfmatch *pm, const conv_ws *w, const conv_tile_box *t,
                      const sk_cx_band *out)
{
    const long lx = pm->tile.lx, width = pm->width;
    long ry0 = t->cy0 > out->y0 ? t->cy0 : out->y0, ry1 = t->cy1 < out->y1 ? t->cy1 : out->y1;
    for (long gy = ry0; gy < ry1; gy++)
        for (long gx = t->cx0; gx < t->cx1; gx++) {
            size_t o = (size_t)(gy - out->y0) * (size_t)width + (size_t)gx;
            size_t b = (size_t)((gy - t->by0) * lx + gx - t->bx0);
            out->sci[o] = w->valid[b] ? w->rs[b] : 0.0f;
            out->weight[o] = w->valid[b] ? 1.0f / w->rv[b] : 0.0f;
            if (out->flags)
                out->flags[o] = w->ibits[b];
        }
}

/* The loaded tile (nvalid usable pixels) in-painted and its science,
 * variance and mask transformed into (cs, cv, cm); a mask of zeros only is
 * not transformed (w->clear): its convolution is 0 exactly. */
static int transform_tile(const sk_psfmatch *pm, conv_ws *w, long nvalid, fftwf_complex *cs,
                          fftwf_complex *cv, fftwf_complex *cm)
{
    const long lx = pm->tile.lx, ly = pm->tile.ly;
    w->clear = nvalid == lx * ly;
    float *const planes[2] = {w->rs, w->rv};
    int status = sk_cx_inpaint_planes(planes, 2, w->valid, lx, ly);
    if (status)
        return status;
    fftwf_plan fwd = sk_fft_plan_r2c((int)ly, (int)lx);
    if (!fwd)
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    fftwf_execute_dft_r2c(fwd, w->rs, cs);
    fftwf_execute_dft_r2c(fwd, w->rv, cv);
    if (!w->clear)
        fftwf_execute_dft_r2c(fwd, w->rm, cm);
    return SK_OK;
}

/* The kernel image `kind` (0: K, 1: K^2, 2: |K|) embedded into w->rk and
 * transformed into w->ck (its rows -rk .. rk only); its sum of |K| in
 * *sabs (kind 2). */
static void kernel_spectrum(const sk_psfmatch *pm, conv_ws *w, int kind, double *sabs)
{
    const long lx = pm->tile.lx, ly = pm->tile.ly, rk = pm->rk, ks = 2 * rk + 1;
    if (kind == 0) {
        sk_cx_embed(w->kern, ks, w->rk, lx, ly);
    } else {
        float *k2 = w->rk;
        memset(k2, 0, sizeof(float) * (size_t)(lx * ly));
        double sa = 0.0;
        for (long v = 0; v < ks; v++)
            for (long u = 0; u < ks; u++) {
                long yy = ((v - rk) % ly + ly) % ly, xx = ((u - rk) % lx + lx) % lx;
                float kv = w->kern[v * ks + u];
                kv = kind == 1 ? kv * kv : fabsf(kv);
                k2[yy * lx + xx] = kv;
                sa += kv;
            }
        if (sabs)
            *sabs = sa;
    }
    sk_cx_sparse_r2c(&pm->kfft, w->rk, rk, w->ck);
}

/* The spectra in (w->cs, w->cv, w->cm) of input j's tile convolved with its
 * kernel to target tgt (see make_kernel), and the core's rows in `out`
 * written: science, variance (1/weight), and the pixels where more than
 * the contamination share of |K| fell on in-painted values left out with
 * the flags of the unusable pixels within the kernel's reach. */
static int convolve_tile(sk_psfmatch *pm, conv_ws *w, int j, int tgt, const conv_tile_box *t,
                         const sk_cx_band *out)
{
    const long lx = pm->tile.lx, ly = pm->tile.ly, width = pm->width;
    const long nc = ly * (lx / 2 + 1), rk = pm->rk;
    double xc = 0.5 * (double)(t->cx0 + t->cx1 - 1), yc = 0.5 * (double)(t->cy0 + t->cy1 - 1);
    int status = make_kernel(pm, &w->k, j, tgt, xc, yc, w->kern);
    if (status)
        return status;
    fftwf_plan inv = sk_fft_plan_c2r((int)ly, (int)lx);
    if (!inv)
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    const float scale = (float)(1.0 / ((double)lx * (double)ly));
    double sabs = 0.0;
    kernel_spectrum(pm, w, 0, NULL); /* K for the science */
    spec_mul(w->cs, w->ck, nc, scale);
    kernel_spectrum(pm, w, 1, NULL); /* K^2 for the variance */
    spec_mul(w->cv, w->ck, nc, scale);
    if (!w->clear) { /* |K| for the mask (w->rm holds its zeros otherwise) */
        kernel_spectrum(pm, w, 2, &sabs);
        spec_mul(w->cm, w->ck, nc, (float)(scale / sabs));
    }
    fftwf_execute_dft_c2r(inv, w->cs, w->rs);
    fftwf_execute_dft_c2r(inv, w->cv, w->rv);
    if (!w->clear)
        fftwf_execute_dft_c2r(inv, w->cm, w->rm);
    long ry0 = t->cy0 > out->y0 ? t->cy0 : out->y0, ry1 = t->cy1 < out->y1 ? t->cy1 : out->y1;
    /* Flags of the unusable pixels within the kernel's reach, for the
     * pixels left out (only when there are any). */
    const float thresh = (float)pm->o.contamination;
    int any_out = 0;
    for (long gy = ry0; gy < ry1 && !any_out && out->flags; gy++)
        for (long gx = t->cx0; gx < t->cx1; gx++) {
            size_t b = (size_t)((gy - t->by0) * lx + gx - t->bx0);
            any_out |= w->rm[b] > thresh || !(w->rv[b] > 0.0f);
        }
    if (any_out)
        sk_cx_dilate_or(w->ibits, w->dil, w->dtmp, lx, ly, rk);
    for (long gy = ry0; gy < ry1; gy++)
        for (long gx = t->cx0; gx < t->cx1; gx++) {
            size_t o = (size_t)(gy - out->y0) * (size_t)width + (size_t)gx;
            size_t b = (size_t)((gy - t->by0) * lx + gx - t->bx0);
            float var = w->rv[b];
            if (w->rm[b] > thresh || !(var > 0.0f)) {
                out->sci[o] = 0.0f;
                out->weight[o] = 0.0f;
                if (out->flags)
                    out->flags[o] = w->dil[b] ? w->dil[b] : SK_FLAG_EDGE;
            } else {
                out->sci[o] = w->rs[b];
                out->weight[o] = 1.0f / var;
                if (out->flags)
                    out->flags[o] = 0;
            }
        }
    return SK_OK;
}

/* The tiles of one input, made for output rows [out.y0, out.y1); with
 * targets, the input's tiles convolved to each of those inputs' PSFs
 * (outs[i] for targets[i]), its transforms made once per tile. */
typedef struct conv_job {
    sk_psfmatch *pm;
    int j;           /* the input */
    sk_cx_band out;
    const int *targets;
    int ntargets;
    const sk_cx_band *outs;
} conv_job;

static int conv_tile(void *ws, long tx, long ty, void *user)
{
    conv_job *job = user;
    sk_psfmatch *pm = job->pm;
    conv_ws *w = ws;
    const int j = job->j;
    conv_tile_box t;
    tile_box(pm, tx, ty, &t);
    long nvalid = load_tile(pm, w, &pm->in[j], &t);
    if (nvalid == 0 || j == pm->target_input) {
        copy_tile(pm, w, &t, &job->out);
        return SK_OK;
    }
    int status = transform_tile(pm, w, nvalid, w->cs, w->cv, w->cm);
    return status ? status : convolve_tile(pm, w, j, pm->target_input, &t, &job->out);
}

static int conv_tile_targets(void *ws, long tx, long ty, void *user)
{
    conv_job *job = user;
    sk_psfmatch *pm = job->pm;
    conv_ws *w = ws;
    const int j = job->j;
    conv_tile_box t;
    tile_box(pm, tx, ty, &t);
    long nvalid = load_tile(pm, w, &pm->in[j], &t);
    if (nvalid == 0) {
        for (int i = 0; i < job->ntargets; i++)
            copy_tile(pm, w, &t, &job->outs[i]);
        return SK_OK;
    }
    int status = transform_tile(pm, w, nvalid, w->ss, w->sv, w->sm);
    const size_t bytes = sizeof(fftwf_complex) * (size_t)(pm->tile.ly * (pm->tile.lx / 2 + 1));
    for (int i = 0; !status && i < job->ntargets; i++) {
        memcpy(w->cs, w->ss, bytes);
        memcpy(w->cv, w->sv, bytes);
        if (!w->clear)
            memcpy(w->cm, w->sm, bytes);
        status = convolve_tile(pm, w, j, job->targets[i], &t, &job->outs[i]);
    }
    return status;
}

/* Each thread's workspace. */
static int conv_job_ws_init(void *ws, void *user)
{
    const conv_job *job = user;
    return conv_ws_init(ws, job->pm, job->targets != NULL);
}

static void conv_job_ws_release(void *ws, void *user)
{
    conv_ws_free(ws);
}

int sk_psfmatch_rows(sk_psfmatch *pm, int j, long y0, long y1, float *sci, float *weight,
                     uint16_t *flags)
{
    if (j < 0 || j >= pm->n)
        return sk_error(SK_EINPUT, "psfmatch: no input %d", j);
    int status = sk_cx_rows_check("psfmatch", pm->height, y0, y1, sci, weight);
    if (!status)
        status = sk_cx_input_rows_check("psfmatch", &pm->tile, &pm->in[j], j, y0, y1);
    if (status)
        return status;
    conv_job job = {pm, j, {y0, y1, sci, weight, flags, NULL}, NULL, 0, NULL};
    const sk_scratch ws_ops = {sizeof(conv_ws), conv_job_ws_init, conv_job_ws_release};
    return sk_cx_tiles_run(&pm->tile, y0, y1, pm->o.threads, &ws_ops, conv_tile, &job);
}

int sk_psfmatch_rows_to_inputs(sk_psfmatch *pm, int j, const int *targets, int ntargets,
                               long y0, long y1, float *const *sci, float *const *weight)
{
    if (j < 0 || j >= pm->n || ntargets < 1 || !targets || !sci || !weight)
        return sk_error(SK_EINPUT, "psfmatch: no input %d or no targets", j);
    int status = SK_OK;
    for (int i = 0; !status && i < ntargets; i++) {
        if (targets[i] < 0 || targets[i] >= pm->n || targets[i] == j)
            status = sk_error(SK_EINPUT, "psfmatch: target input %d of %d for input %d",
                              targets[i], pm->n, j);
        else
            status = sk_cx_rows_check("psfmatch", pm->height, y0, y1, sci[i], weight[i]);
    }
    if (!status)
        status = sk_cx_input_rows_check("psfmatch", &pm->tile, &pm->in[j], j, y0, y1);
    sk_cx_band *outs = status ? NULL : malloc(sizeof *outs * (size_t)ntargets);
    if (!status && !outs)
        status = sk_error(SK_EIO, "psfmatch: out of memory");
    if (status)
        return status;
    for (int i = 0; i < ntargets; i++)
        outs[i] = (sk_cx_band){y0, y1, sci[i], weight[i], NULL, NULL};
    conv_job job = {pm, j, {y0, y1, NULL, NULL, NULL, NULL}, targets, ntargets, outs};
    const sk_scratch ws_ops = {sizeof(conv_ws), conv_job_ws_init, conv_job_ws_release};
    status = sk_cx_tiles_run(&pm->tile, y0, y1, pm->o.threads, &ws_ops, conv_tile_targets, &job);
    free(outs);
    return status;
}
