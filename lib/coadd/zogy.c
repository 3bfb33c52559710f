/* zogy.c: the proper coadd of Zackay & Ofek (2017) of aligned inputs, in overlapping FFT tiles, with in-painting, coverage patterns and an honest weight map. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "direct_priv.h"
#include "aligned_priv.h"
#include "numeric/fft_priv.h"
#include "core/parallel.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/image.h"
#include "skystack/log.h"
#include "coadd_internal.h"
#include "coaddx_internal.h"

/*
 * For inputs D_j = F_j (P_j * T) + noise of rms sigma_j, with c_j = F_j^2/sigma_j^2,
 *   R^ = sum_j (F_j/sigma_j^2) conj(P~_j) D^_j / sqrt(sum_j c_j |P~_j|^2)
 * where P~_j = P^_j + eps (a delta function of weight eps added to every PSF,
 * which regularises the frequencies where every |P^_j| is negligible: there R
 * becomes the noise-weighted mean of the inputs). R has white unit-variance
 * noise, flux scale F_R = sqrt(sum_j c_j) and PSF P^_R = sqrt(sum c_j |P~_j|^2)/F_R.
 *
 * Resampled inputs: resampling an input onto the grid correlates its noise
 * and smooths its signal by the kernel at each pixel's sub-pixel phase. In a
 * tile, input j then has noise power sigma_j^2 Q_j(k) / rho_j (rho_j =
 * Cov_j(0): sigma_j is the per-pixel rms) and PSF T_j P_j (resample_noise.c).
 * The formulas above hold with conj(P~_j) D^_j multiplied by
 * filt_j = rho_j conj(T_j) / Q_j and c_j |P~_j|^2 by gain_j = rho_j |T_j|^2 / Q_j:
 * R is then white where the model holds, P^_R = sqrt(sum c_j gain_j
 * |P~_j|^2)/F_R, and F_R^2 = sum_j c_j rho_j / Q_j(0) (the inverse of each
 * input's large-scale variance), fixed at the centre of the grid. Inputs
 * not resampled have filt = gain = 1.
 *
 * Tiles: the image is cut into cores of tile_px on a fixed grid; each core is
 * transformed with a margin of one PSF size on every side (data beyond the
 * image or beyond an input's footprint is in-painted), so the circular
 * wrap-around of the FFT only touches the margin, which is cropped. The PSFs
 * are evaluated at the centre of each core.
 *
 * Coverage: in a core, the inputs usable at a pixel form its coverage pattern
 * S. Each distinct pattern (up to max_patterns, the most common first) is
 * solved exactly as the proper coadd of S rescaled to flux scale F_R:
 *   R_S = (F_R/F_S) IFFT[ sum_{j in S} (F_j/sigma_j^2) conj(P~_j) D^_j / sqrt(sum_{S} c_j |P~_j|^2) ],
 * F_S = sqrt(sum_{S} c_j gain_j(0)), whose variance is (F_R/F_S)^2 sum_{j in S} a_{j,S} v_j
 * with a_{j,S} = <c_j g_j / sum_S c_i g_i> over frequencies, g = gain |P~|^2 (the
 * share of R_S's variance from input j, computed on a coarse frequency grid
 * where the PSF transforms are smooth) and v_j the input's local variance
 * relative to sigma_j^2 (a 5x5 mean). Rarer patterns use the smallest solved
 * superset, i.e. also in-painted values of the extra inputs, and are flagged.
 */

typedef struct zogy_pattern {
    uint64_t *bits;       /* usable active inputs (bit set) */
    long npix;
    int count;            /* inputs in the pattern */
    int solved;           /* index among the solved patterns, or -1 */
    int use;              /* pattern whose solution its pixels take */
    double fs2;           /* F_S^2 */
    double *a;            /* a_{j,S} per active input (solved patterns) */
    long first, ngroup;   /* pixels taking this pattern's solution: order[first..] */
} zogy_pattern;

struct sk_zogy {
    int n;
    long width, height;
    sk_aligned_input *in;
    double *sigma, *c, *wnum;
    double *ce;           /* c_j rho_j / Q_j(0) at the centre of the grid */
    double flux_r;
    sk_kernel_table kt[3]; /* by SK_KERNEL_*, made for the inputs' kernels */
    int kt_ready[3];
    sk_zogy_opts o;
    sk_cx_tiling tile;
    sk_cx_sparse_fft sfft;  /* stamps' and covariances' transforms on the tile grid */
    pthread_mutex_t psf_lock;
};

void sk_zogy_opts_default(sk_zogy_opts *o)
{
    memset(o, 0, sizeof *o);
    o->psf_size = 31;
    o->tile_px = 512;
    o->threads = 0;
    o->mask_flags = SK_COADDX_MASK_DEFAULT;
    o->psf_floor = 1e-5;
    o->max_patterns = 0;
}

/* A box of tile_px (or the whole grid when smaller) inside the grid, centred
 * on (x, y) as far as the grid allows. */
static void box_around(const sk_zogy *z, double x_px, double y_px, long *x0, long *y0, long *x1,
                       long *y1)
{
    long t = z->o.tile_px;
    long bx = (long)floor(x_px) - t / 2, by = (long)floor(y_px) - t / 2;
    if (bx + t > z->width)
        bx = z->width - t;
    if (by + t > z->height)
        by = z->height - t;
    *x0 = bx < 0 ? 0 : bx;
    *y0 = by < 0 ? 0 : by;
    *x1 = *x0 + t > z->width ? z->width : *x0 + t;
    *y1 = *y0 + t > z->height ? z->height : *y0 + t;
}

/* An input's map called under the PSF lock (the WCSs behind it are
 * not to be used by two threads at once). */
typedef struct locked_map {
    pthread_mutex_t *lock;
    sk_pixel_map_fn map;
    void *ctx;
} locked_map;

static int map_locked(void *ctx, long n, const double *x_px, const double *y_px, double *xi_px,
                      double *yi_px)
{
    locked_map *l = ctx;
    pthread_mutex_lock(l->lock);
    int st = l->map(l->ctx, n, x_px, y_px, xi_px, yi_px);
    pthread_mutex_unlock(l->lock);
    return st;
}

/* The resampling model of input j over output pixels [x0, x1) x [y0, y1)
 * (the identity when it was not resampled); the map is called under the
 * PSF lock, the model computed outside it. */
static int input_noise(sk_zogy *z, int j, long x0, long y0, long x1, long y1,
                       sk_resample_noise *m)
{
    const sk_aligned_input *in = &z->in[j];
    if (!in->map)
        return sk_resample_noise_at(m, NULL, NULL, NULL, x0, y0, x1, y1);
    pthread_mutex_lock(&z->psf_lock);
    int st = SK_OK;
    if (!z->kt_ready[in->kernel]) {
        st = sk_kernel_table_init(&z->kt[in->kernel], in->kernel);
        z->kt_ready[in->kernel] = !st;
    }
    pthread_mutex_unlock(&z->psf_lock);
    locked_map lm = {&z->psf_lock, in->map, in->map_ctx};
    if (!st)
        st = sk_resample_noise_at(m, &z->kt[in->kernel], map_locked, &lm, x0, y0, x1, y1);
    if (st)
        sk_error_context("zogy: input %d", j);
    return st;
}

int sk_zogy_new(const sk_aligned_input *in, int n, long width, long height,
                const sk_zogy_opts *opts, sk_zogy **out)
{
    *out = NULL;
    sk_zogy_opts o;
    if (opts)
        o = *opts;
    else
        sk_zogy_opts_default(&o);
    int status = sk_cx_tiling_check("zogy", n, width, height, o.psf_size, o.tile_px);
    if (status)
        return status;
    if (!(o.psf_floor > 0.0 && o.psf_floor < 0.1))
        return sk_error(SK_EINPUT, "zogy: PSF floor %g must be in (0, 0.1)", o.psf_floor);
    if (n > 65535)
        return sk_error(SK_EINPUT, "zogy: %d inputs, at most 65535 (NIMG is 16-bit)", n);
    for (int j = 0; j < n; j++) {
        if (!in[j].psf)
            return sk_error(SK_EINPUT, "zogy: input %d has no PSF", j);
        if (!(in[j].flux_scale > 0.0 && isfinite(in[j].flux_scale)))
            return sk_error(SK_EINPUT, "zogy: input %d: flux scale %g must be > 0", j,
                            in[j].flux_scale);
        if (in[j].sci && (!in[j].weight || in[j].nrows < 0))
            return sk_error(SK_EINPUT, "zogy: input %d: science without weight rows", j);
        if (in[j].map && (in[j].kernel < 0 || in[j].kernel > 2 ||
                          sk_kernel_halfwidth(in[j].kernel) <= 0))
            return sk_error(SK_EINPUT, "zogy: input %d: unknown resampling kernel %d", j,
                            in[j].kernel);
    }
    sk_zogy *z = calloc(1, sizeof *z);
    if (!z)
        return sk_error(SK_EIO, "zogy: out of memory");
    z->n = n;
    z->width = width;
    z->height = height;
    z->o = o;
    z->in = malloc(sizeof(sk_aligned_input) * (size_t)n);
    z->sigma = malloc(sizeof(double) * (size_t)n);
    z->c = malloc(sizeof(double) * (size_t)n);
    z->wnum = malloc(sizeof(double) * (size_t)n);
    z->ce = malloc(sizeof(double) * (size_t)n);
    if (!z->in || !z->sigma || !z->c || !z->wnum || !z->ce) {
        sk_zogy_free(z);
        return sk_error(SK_EIO, "zogy: out of memory");
    }
    memcpy(z->in, in, sizeof(sk_aligned_input) * (size_t)n);
    pthread_mutex_init(&z->psf_lock, NULL);
    sk_cx_tiling_init(&z->tile, width, height, o.psf_size, o.tile_px);
    status = sk_cx_sparse_fft_init(&z->sfft, z->tile.lx, z->tile.ly);
    if (status) {
        sk_zogy_free(z);
        return status;
    }
    double sum_c = 0.0;
    for (int j = 0; j < n; j++) {
        double s = in[j].sigma;
        if (!(s > 0.0)) {
            s = sk_cx_sigma_from_weight(&in[j], width, o.mask_flags);
            if (!(s > 0.0 && isfinite(s))) {
                sk_zogy_free(z);
                return sk_error(SK_EINPUT,
                                "zogy: input %d: no usable pixel to estimate its noise "
                                "(give sigma)", j);
            }
        }
        double f = in[j].flux_scale;
        z->sigma[j] = s;
        z->c[j] = f * f / (s * s);
        z->wnum[j] = f / (s * s);
        /* the large-scale variance of a resampled input, at the centre */
        long x0, y0, x1, y1;
        box_around(z, 0.5 * (double)(width - 1), 0.5 * (double)(height - 1), &x0, &y0, &x1, &y1);
        sk_resample_noise nm;
        int st = input_noise(z, j, x0, y0, x1, y1, &nm);
        if (st) {
            sk_zogy_free(z);
            return st;
        }
        z->ce[j] = z->c[j] * nm.rho / nm.q0;
        sk_resample_noise_clear(&nm);
        sum_c += z->ce[j];
    }
    z->flux_r = sqrt(sum_c);
    if (o.max_patterns <= 0)
        z->o.max_patterns = 2 * n + 8;
    *out = z;
    return SK_OK;
}

void sk_zogy_free(sk_zogy *z)
{
    if (!z)
        return;
    if (z->in && z->sigma && z->c && z->wnum && z->ce)
        pthread_mutex_destroy(&z->psf_lock);
    for (int k = 0; k < 3; k++)
        if (z->kt_ready[k])
            sk_kernel_table_clear(&z->kt[k]);
    sk_cx_sparse_fft_free(&z->sfft);
    free(z->ce);
    free(z->in);
    free(z->sigma);
    free(z->c);
    free(z->wnum);
    free(z);
}

double sk_zogy_flux_scale(const sk_zogy *z) { return z->flux_r; }
double sk_zogy_sigma(const sk_zogy *z, int j) { return j >= 0 && j < z->n ? z->sigma[j] : 0.0; }

void sk_zogy_rows_needed(const sk_zogy *z, long y0, long y1, long *need0, long *need1)
{
    sk_cx_tiling_rows_needed(&z->tile, y0, y1, need0, need1);
}

int sk_zogy_set_rows(sk_zogy *z, int j, const float *sci, const float *weight,
                     const uint16_t *flags, long row0, long nrows)
{
    if (j < 0 || j >= z->n || row0 < 0 || nrows < 0 || row0 + nrows > z->height ||
        (nrows > 0 && (!sci || !weight)))
        return sk_error(SK_EINPUT, "zogy: input %d: bad rows [%ld, %ld)", j, row0, row0 + nrows);
    z->in[j].sci = sci;
    z->in[j].weight = weight;
    z->in[j].flags = flags;
    z->in[j].row0 = row0;
    z->in[j].nrows = nrows;
    z->in[j].col0 = z->in[j].ncols = 0;
    return SK_OK;
}

int sk_zogy_set_cols(sk_zogy *z, int j, long col0, long ncols)
{
    if (j < 0 || j >= z->n || col0 < 0 || ncols < 0 || col0 + ncols > z->width)
        return sk_error(SK_EINPUT, "zogy: input %d: bad columns [%ld, %ld)", j, col0, col0 + ncols);
    z->in[j].col0 = ncols > 0 ? col0 : 0;
    z->in[j].ncols = ncols;
    return SK_OK;
}

long sk_zogy_tile_columns(const sk_zogy *z) { return z->tile.ntx; }

void sk_zogy_cols_needed(const sk_zogy *z, long tx0, long tx1, long *x0, long *x1)
{
    sk_cx_tiling_cols_needed(&z->tile, tx0, tx1, x0, x1);
}

/* ---- per-thread work --------------------------------------------------- */

typedef struct zogy_ws {
    long nbuf, ncplx, ncore_max, gcplx;
    float *rbuf;                 /* ly x lx */
    fftwf_complex *dbuf, *pbuf;  /* ly x (lx/2+1) */
    float *gr;                   /* g x g */
    fftwf_complex *gc;
    float *stamp;
    int cap;                     /* inputs with storage below */
    fftwf_complex **x;           /* (F/s^2) conj(P~) D^ per active input */
    float **pw;                  /* c |P~|^2, tile grid */
    float **pwc;                 /* c |P~|^2, coarse grid (g x (g/2+1)) */
    uint8_t **valid;             /* usable mask over the buffer */
    double *fwhm;
    int *active;
    fftwf_complex *nall;         /* sums over the active inputs */
    float *dall;
    uint64_t *pixbits;           /* per core pixel, nw words */
    int *pixpat;                 /* pattern per core pixel */
    long *order;                 /* core pixels sorted by pattern */
    double *acc;                 /* variance accumulator per core pixel */
    uint16_t *ibits, *dil, *dtmp; /* flag dilation over the buffer */
    uint8_t *act;                /* slot holds a transformed input (else only
                                    its mask, for the flags of its edge) */
    float *rv;                   /* relative variance over the buffer */
    fftwf_complex *filt, *qc;    /* resampling filter, scratch (tile grid) */
    float *gain;
    fftwf_complex *gfilt;        /* the same on the coarse grid */
    float *ggain;
    double *ce;                  /* c rho / Q(0) per active input */
    double *box;                 /* box sums */
    int *boxn;
} zogy_ws;

static void ws_free(zogy_ws *w)
{
    if (!w)
        return;
    fftwf_free(w->rbuf);
    fftwf_free(w->dbuf);
    fftwf_free(w->pbuf);
    fftwf_free(w->gr);
    fftwf_free(w->gc);
    free(w->stamp);
    for (int k = 0; k < w->cap; k++) {
        fftwf_free(w->x[k]);
        free(w->pw[k]);
        free(w->pwc[k]);
        free(w->valid[k]);
    }
    free(w->x);
    free(w->pw);
    free(w->pwc);
    free(w->valid);
    free(w->fwhm);
    free(w->active);
    fftwf_free(w->nall);
    free(w->dall);
    free(w->pixbits);
    free(w->pixpat);
    free(w->order);
    free(w->acc);
    free(w->ibits);
    free(w->dil);
    free(w->act);
    free(w->dtmp);
    free(w->rv);
    fftwf_free(w->filt);
    fftwf_free(w->qc);
    free(w->gain);
    fftwf_free(w->gfilt);
    free(w->ggain);
    free(w->ce);
    free(w->box);
    free(w->boxn);
    memset(w, 0, sizeof *w);
}

static int ws_init(zogy_ws *w, const sk_zogy *z)
{
    memset(w, 0, sizeof *w);
    w->nbuf = z->tile.lx * z->tile.ly;
    w->ncplx = z->tile.ly * (z->tile.lx / 2 + 1);
    w->ncore_max = z->tile.tcx * z->tile.tcy;
    w->gcplx = z->tile.g * (z->tile.g / 2 + 1);
    size_t nb = (size_t)w->nbuf, nc = (size_t)w->ncore_max;
    w->rbuf = fftwf_alloc_real(nb);
    w->dbuf = fftwf_alloc_complex((size_t)w->ncplx);
    w->pbuf = fftwf_alloc_complex((size_t)w->ncplx);
    w->gr = fftwf_alloc_real((size_t)(z->tile.g * z->tile.g));
    w->gc = fftwf_alloc_complex((size_t)w->gcplx);
    w->stamp = malloc(sizeof(float) * (size_t)(z->o.psf_size * z->o.psf_size));
    w->x = calloc((size_t)z->n, sizeof *w->x);
    w->pw = calloc((size_t)z->n, sizeof *w->pw);
    w->pwc = calloc((size_t)z->n, sizeof *w->pwc);
    w->valid = calloc((size_t)z->n, sizeof *w->valid);
    w->fwhm = calloc((size_t)z->n, sizeof *w->fwhm);
    w->active = calloc((size_t)z->n, sizeof *w->active);
    w->nall = fftwf_alloc_complex((size_t)w->ncplx);
    w->dall = malloc(sizeof(float) * (size_t)w->ncplx);
    size_t nw = ((size_t)z->n + 63) / 64;
    w->pixbits = malloc(sizeof(uint64_t) * nw * nc);
    w->pixpat = malloc(sizeof(int) * nc);
    w->order = malloc(sizeof(long) * nc);
    w->acc = malloc(sizeof(double) * nc);
    w->ibits = malloc(sizeof(uint16_t) * nb);
    w->dil = malloc(sizeof(uint16_t) * nb);
    w->act = calloc((size_t)z->n, 1);
    w->dtmp = malloc(sizeof(uint16_t) * nb);
    w->rv = malloc(sizeof(float) * nb);
    w->filt = fftwf_alloc_complex((size_t)w->ncplx);
    w->qc = fftwf_alloc_complex((size_t)w->ncplx);
    w->gain = malloc(sizeof(float) * (size_t)w->ncplx);
    w->gfilt = fftwf_alloc_complex((size_t)w->gcplx);
    w->ggain = malloc(sizeof(float) * (size_t)w->gcplx);
    w->ce = malloc(sizeof(double) * (size_t)z->n);
    w->box = malloc(sizeof(double) * nb);
    w->boxn = malloc(sizeof(int) * nb);
    if (!w->rbuf || !w->dbuf || !w->pbuf || !w->gr || !w->gc || !w->stamp || !w->x || !w->pw ||
        !w->pwc || !w->valid || !w->fwhm || !w->active || !w->nall || !w->dall ||
        !w->pixbits || !w->pixpat || !w->order || !w->acc || !w->ibits || !w->dil || !w->act ||
        !w->dtmp || !w->rv || !w->box || !w->boxn || !w->filt || !w->qc || !w->gain ||
        !w->gfilt || !w->ggain || !w->ce) {
        ws_free(w);
        return sk_error(SK_EIO, "zogy: out of memory for a %ld x %ld tile", z->tile.lx,
                        z->tile.ly);
    }
    return SK_OK;
}

/* Storage for `na` active inputs. */
static int ws_reserve(zogy_ws *w, const sk_zogy *z, int na)
{
    while (w->cap < na) {
        int k = w->cap;
        w->x[k] = fftwf_alloc_complex((size_t)w->ncplx);
        w->pw[k] = malloc(sizeof(float) * (size_t)w->ncplx);
        w->pwc[k] = malloc(sizeof(float) * (size_t)w->gcplx);
        w->valid[k] = malloc((size_t)w->nbuf);
        if (!w->x[k] || !w->pw[k] || !w->pwc[k] || !w->valid[k]) {
            fftwf_free(w->x[k]); free(w->pw[k]); free(w->pwc[k]); free(w->valid[k]);
            w->x[k] = NULL; w->pw[k] = NULL; w->pwc[k] = NULL; w->valid[k] = NULL;
            return sk_error(SK_EIO, "zogy: out of memory for %d inputs of a %ld x %ld tile",
                            na, z->tile.lx, z->tile.ly);
        }
        w->cap++;
    }
    return SK_OK;
}

/* Multiplicity of column kx of a half-spectrum of a real n-point axis. */
static inline double col_mult(long kx, long n)
{
    return (kx == 0 || (n % 2 == 0 && kx == n / 2)) ? 1.0 : 2.0;
}

static uint64_t hash_bits(const uint64_t *b, size_t nw)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < nw; i++) {
        h ^= b[i] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
    }
    return h;
}

static int is_subset(const uint64_t *a, const uint64_t *b, size_t nw)
{
    for (size_t i = 0; i < nw; i++)
        if (a[i] & ~b[i])
            return 0;
    return 1;
}

typedef struct pat_rank {
    long npix;
    int id;
} pat_rank;

/* Most pixels first, then first seen first. */
static int cmp_rank(const void *pa, const void *pb)
{
    const pat_rank *a = pa, *b = pb;
    if (a->npix != b->npix)
        return a->npix > b->npix ? -1 : 1;
    return a->id < b->id ? -1 : (a->id > b->id);
}

/* The geometry of one tile and its plans, shared by the steps below. */
typedef struct tile_ctx {
    sk_zogy *z;
    zogy_ws *w;
    const sk_cx_band *out;
    long lx, ly, width, m;        /* buffer size, grid width, margin */
    long cx0, cy0, cx1, cy1;      /* the core */
    long cw, chh, ncore;
    long bx0, by0;                /* grid pixel of buffer pixel (0, 0) */
    double eps;
    unsigned mask;
    long ps, g, gh;               /* PSF stamp size, coarse grid */
    double xc, yc;                /* centre of the core, where PSFs are evaluated */
    fftwf_plan fwd, inv, gfwd;
    const sk_cx_sparse_fft *sfft; /* for transforms of stamps */
    int na;                       /* active inputs */
} tile_ctx;

/* The coverage patterns of a core, the table that finds them, and the solved ones. */
typedef struct pattern_set {
    size_t nw;                    /* 64-bit words per pattern */
    zogy_pattern *pat;
    int npat, patcap;
    long hcap;
    int *htab;
    uint64_t *patbits;
    size_t patbits_cap;
    int *solved;
    int nsolved;
    double *acoef;
} pattern_set;

static inline int pattern_has(const zogy_pattern *p, int k)
{
    return (int)(p->bits[k >> 6] >> (k & 63) & 1);
}

/* 1a. Input j over the buffer: its usable mask and values, in-painted.
 * *ncorevalid: its usable pixels in the core. */
static int gather_input(const tile_ctx *t, int j, long *ncorevalid)
{
    const sk_aligned_input *in = &t->z->in[j];
    zogy_ws *w = t->w;
    uint8_t *valid = w->valid[t->na];
    float *r = w->rbuf;
    const long lx = t->lx, width = t->width;
    *ncorevalid = 0;
    for (long by = 0; by < t->ly; by++) {
        long gy = t->by0 + by;
        for (long bx = 0; bx < lx; bx++) {
            long gx = t->bx0 + bx;
            size_t b = (size_t)(by * lx + bx);
            size_t ii = 0;
            int ok = gy >= 0 && gy < t->z->height && gx >= 0 && gx < width &&
                     sk_cx_usable_at(in, width, gx, gy, t->mask, &ii);
            valid[b] = (uint8_t)ok;
            r[b] = ok ? in->sci[ii] : 0.0f;
            if (ok && gy >= t->cy0 && gy < t->cy1 && gx >= t->cx0 && gx < t->cx1)
                (*ncorevalid)++;
        }
    }
    if (*ncorevalid == 0)
        return SK_OK; /* it contributes to no pixel of the core */
    return sk_cx_inpaint(r, valid, lx, t->ly);
}

/* 1b. The Fourier terms of input j (in-painted data in w->rbuf) in slot
 * t->na: (F/s^2) conj(P~) D^ filt and c |P~|^2 gain on the tile grid, and
 * c |P~|^2 ggain on the coarse grid. */
static int input_terms(tile_ctx *t, int j)
{
    sk_zogy *z = t->z;
    zogy_ws *w = t->w;
    const sk_aligned_input *in = &z->in[j];
    const long lx = t->lx, ly = t->ly, g = t->g, ps = t->ps;
    const double eps = t->eps;
    float *r = w->rbuf;
    fftwf_execute_dft_r2c(t->fwd, r, w->dbuf);
    int status = sk_cx_psf_stamp_locked(&z->psf_lock, in, j, t->xc, t->yc, ps, w->stamp);
    sk_resample_noise nm;
    if (!status)
        status = input_noise(z, j, t->cx0, t->cy0, t->cx1, t->cy1, &nm);
    if (status)
        return status;
    sk_resample_noise_spectrum_sparse(&nm, t->sfft, r, w->qc, w->filt, w->gain);
    sk_resample_noise_spectrum(&nm, g, g, t->gfwd, w->gr, w->gc, w->gfilt, w->ggain);
    w->ce[t->na] = z->c[j] * nm.rho / nm.q0;
    sk_resample_noise_clear(&nm);
    w->fwhm[t->na] = sk_cx_stamp_fwhm(w->stamp, ps);
    sk_cx_embed(w->stamp, ps, r, lx, ly);
    sk_cx_sparse_r2c(t->sfft, r, ps / 2, w->pbuf);
    const float wn = (float)z->wnum[j], cj = (float)z->c[j];
    fftwf_complex *x = w->x[t->na];
    float *pw = w->pw[t->na];
    for (long k = 0; k < w->ncplx; k++) {
        float pr = w->pbuf[k][0] + (float)eps, pi = w->pbuf[k][1];
        float dr = w->dbuf[k][0], di = w->dbuf[k][1];
        /* conj(P) D filt */
        float ur = pr * dr + pi * di, ui = pr * di - pi * dr;
        float fr = w->filt[k][0], fi = w->filt[k][1];
        x[k][0] = wn * (ur * fr - ui * fi);
        x[k][1] = wn * (ur * fi + ui * fr);
        pw[k] = cj * (pr * pr + pi * pi) * w->gain[k];
    }
    sk_cx_embed(w->stamp, ps, w->gr, g, g);
    fftwf_execute_dft_r2c(t->gfwd, w->gr, w->gc);
    for (long k = 0; k < w->gcplx; k++) {
        double pr = w->gc[k][0] + eps, pi = w->gc[k][1];
        w->pwc[t->na][k] = (float)(z->c[j] * (pr * pr + pi * pi) * w->ggain[k]);
    }
    return SK_OK;
}

/* 1. Load, in-paint and transform every input that covers the core. */
static int tile_inputs(tile_ctx *t)
{
    sk_zogy *z = t->z;
    t->na = 0;
    for (int j = 0; j < z->n; j++) {
        const sk_aligned_input *in = &z->in[j];
        if (!in->sci || in->nrows <= 0 || in->row0 >= t->cy1 + t->m ||
            in->row0 + in->nrows <= t->cy0 - t->m)
            continue;
        int status = ws_reserve(t->w, z, t->na + 1);
        long ncorevalid = 0;
        if (!status)
            status = gather_input(t, j, &ncorevalid);
        if (!status && ncorevalid > 0)
            status = input_terms(t, j);
        if (status)
            return status;
        if (ncorevalid == 0)
            continue;
        t->w->act[t->na] = 1;
        t->w->active[t->na++] = j;
    }
    return SK_OK;
}

static void pattern_set_free(pattern_set *s)
{
    free(s->pat);
    free(s->patbits);
    free(s->htab);
    free(s->solved);
    free(s->acoef);
}

/* Room for one more pattern and its bits (grown by doubling while
 * classifying, by one for the full set). */
static int pattern_room(pattern_set *s, int doubling)
{
    const size_t nw = s->nw;
    if (s->npat == s->patcap) {
        int nc = doubling ? (s->patcap ? 2 * s->patcap : 16) : s->patcap + 1;
        zogy_pattern *np = realloc(s->pat, sizeof *s->pat * (size_t)nc);
        if (!np)
            return sk_error(SK_EIO, "zogy: out of memory");
        s->pat = np;
        s->patcap = nc;
    }
    if ((size_t)(s->npat + 1) * nw > s->patbits_cap) {
        size_t ncap = (size_t)(s->npat + 1) * nw;
        if (doubling) {
            ncap = s->patbits_cap ? 2 * s->patbits_cap : 16 * (nw ? nw : 1);
            while (ncap < (size_t)(s->npat + 1) * nw)
                ncap *= 2;
        }
        uint64_t *nb = realloc(s->patbits, sizeof(uint64_t) * ncap);
        if (!nb)
            return sk_error(SK_EIO, "zogy: out of memory");
        s->patbits = nb;
        s->patbits_cap = ncap;
        for (int q = 0; q < s->npat; q++)
            s->pat[q].bits = s->patbits + (size_t)q * nw;
    }
    return SK_OK;
}

/* The hash table doubled once it is half full. */
static int pattern_rehash(pattern_set *s)
{
    if (2L * s->npat <= s->hcap)
        return SK_OK;
    const size_t nw = s->nw;
    long ncap = 2 * s->hcap;
    int *nt = malloc(sizeof(int) * (size_t)ncap);
    if (!nt)
        return sk_error(SK_EIO, "zogy: out of memory");
    for (long k = 0; k < ncap; k++)
        nt[k] = -1;
    for (int q = 0; q < s->npat; q++) {
        long s2 = (long)((nw ? hash_bits(s->pat[q].bits, nw) : 0) & (uint64_t)(ncap - 1));
        while (nt[s2] >= 0)
            s2 = (s2 + 1) & (ncap - 1);
        nt[s2] = q;
    }
    free(s->htab);
    s->htab = nt;
    s->hcap = ncap;
    return SK_OK;
}

/* The pattern of `bits`, added when new. */
static int pattern_of(pattern_set *s, const uint64_t *bits, int *id_out)
{
    const size_t nw = s->nw;
    uint64_t h = nw ? hash_bits(bits, nw) : 0;
    long slot = (long)(h & (uint64_t)(s->hcap - 1));
    while (s->htab[slot] >= 0) {
        int q = s->htab[slot];
        if (nw == 0 || memcmp(s->pat[q].bits, bits, sizeof(uint64_t) * nw) == 0) {
            *id_out = q;
            return SK_OK;
        }
        slot = (slot + 1) & (s->hcap - 1);
    }
    int status = pattern_room(s, 1);
    if (status)
        return status;
    int id = s->npat++;
    zogy_pattern *p = &s->pat[id];
    memset(p, 0, sizeof *p);
    p->bits = nw ? s->patbits + (size_t)id * nw : NULL;
    if (nw)
        memcpy(p->bits, bits, sizeof(uint64_t) * nw);
    int cnt = 0;
    for (size_t q = 0; q < nw; q++)
        cnt += __builtin_popcountll(p->bits[q]);
    p->count = cnt;
    p->solved = -1;
    p->use = id;
    s->htab[slot] = id;
    *id_out = id;
    return pattern_rehash(s);
}

/* 2. Coverage patterns of the core pixels. */
static int classify_pixels(const tile_ctx *t, pattern_set *s)
{
    zogy_ws *w = t->w;
    const size_t nw = s->nw;
    if (nw > 0) {
        for (long i = 0; i < t->ncore; i++) {
            long cy = i / t->cw, cx = i % t->cw;
            size_t b = (size_t)((cy + t->m) * t->lx + cx + t->m);
            uint64_t *bits = w->pixbits + (size_t)i * nw;
            memset(bits, 0, sizeof(uint64_t) * nw);
            for (int k = 0; k < t->na; k++)
                if (w->valid[k][b])
                    bits[k >> 6] |= 1ull << (k & 63);
        }
    }
    s->hcap = 64;
    s->htab = malloc(sizeof(int) * (size_t)s->hcap);
    if (!s->htab)
        return sk_error(SK_EIO, "zogy: out of memory");
    for (long k = 0; k < s->hcap; k++)
        s->htab[k] = -1;
    for (long i = 0; i < t->ncore; i++) {
        int id;
        int status = pattern_of(s, nw ? w->pixbits + (size_t)i * nw : NULL, &id);
        if (status)
            return status;
        s->pat[id].npix++;
        w->pixpat[i] = id;
    }
    return SK_OK;
}

/* The full set of active inputs as an extra solved pattern. */
static int add_full_pattern(const tile_ctx *t, pattern_set *s, int *id_out)
{
    int status = pattern_room(s, 0);
    if (status)
        return status;
    int id = s->npat++;
    zogy_pattern *p = &s->pat[id];
    memset(p, 0, sizeof *p);
    p->bits = s->patbits + (size_t)id * s->nw;
    int cnt = 0;
    for (int k = 0; k < t->na; k++)
        if (t->w->act[k]) {
            p->bits[k >> 6] |= 1ull << (k & 63);
            cnt++;
        }
    p->count = cnt;
    p->solved = s->nsolved;
    p->use = id;
    s->solved[s->nsolved++] = id;
    *id_out = id;
    return SK_OK;
}

/* Which patterns are solved: the most common non-empty ones; the others
 * take the smallest solved superset (adding the full set if needed). */
static int choose_solved(const tile_ctx *t, pattern_set *s)
{
    const int npat = s->npat;
    pat_rank *sorted = malloc(sizeof(pat_rank) * (size_t)(npat + 1));
    s->solved = malloc(sizeof(int) * (size_t)(npat + 1));
    if (!sorted || !s->solved) {
        free(sorted);
        return sk_error(SK_EIO, "zogy: out of memory");
    }
    for (int q = 0; q < npat; q++) {
        sorted[q].npix = s->pat[q].npix;
        sorted[q].id = q;
    }
    qsort(sorted, (size_t)npat, sizeof(pat_rank), cmp_rank);
    for (int r = 0; r < npat; r++) {
        int q = sorted[r].id;
        if (s->pat[q].count == 0)
            continue;
        if (s->nsolved < t->z->o.max_patterns) {
            s->pat[q].solved = s->nsolved;
            s->solved[s->nsolved++] = q;
        }
    }
    free(sorted);
    for (int q = 0; q < npat; q++) {
        if (s->pat[q].count == 0 || s->pat[q].solved >= 0)
            continue;
        int best = -1;
        for (int r = 0; r < s->nsolved; r++) {
            int c = s->solved[r];
            if (is_subset(s->pat[q].bits, s->pat[c].bits, s->nw) &&
                (best < 0 || s->pat[c].count < s->pat[best].count))
                best = c;
        }
        if (best < 0) {
            int status = add_full_pattern(t, s, &best);
            if (status)
                return status;
        }
        s->pat[q].use = best;
    }
    return SK_OK;
}

/* Pixels sorted by the pattern whose solution they take. */
static int order_pixels(const tile_ctx *t, pattern_set *s)
{
    zogy_ws *w = t->w;
    long *start = calloc((size_t)s->npat + 1, sizeof(long));
    if (!start)
        return sk_error(SK_EIO, "zogy: out of memory");
    for (long i = 0; i < t->ncore; i++)
        start[s->pat[w->pixpat[i]].use + 1]++;
    for (int q = 0; q < s->npat; q++)
        start[q + 1] += start[q];
    for (int q = 0; q < s->npat; q++) {
        s->pat[q].first = start[q];
        s->pat[q].ngroup = start[q + 1] - start[q];
    }
    for (long i = 0; i < t->ncore; i++)
        w->order[start[s->pat[w->pixpat[i]].use]++] = i;
    free(start);
    return SK_OK;
}

/* 3a. Numerator and denominator of pattern p into num, den: the sums over
 * its inputs, or, for a pattern holding most of the weight, the sums over
 * all active inputs (made once, *have_all) less those it lacks. */
static void pattern_sums(const tile_ctx *t, const zogy_pattern *p, int *have_all,
                         fftwf_complex *num, float *den)
{
    zogy_ws *w = t->w;
    const int na = t->na;
    double fall2 = 0.0;
    for (int k = 0; k < na; k++)
        if (w->act[k])
            fall2 += w->ce[k];
    int nact = 0;
    for (int k = 0; k < na; k++)
        nact += w->act[k];
    int complement = p->fs2 >= 0.5 * fall2 && p->count > nact / 2;
    if (complement && !*have_all) {
        memset(w->nall, 0, sizeof(fftwf_complex) * (size_t)w->ncplx);
        memset(w->dall, 0, sizeof(float) * (size_t)w->ncplx);
        for (int k = 0; k < na; k++)
            for (long q = 0; q < w->ncplx && w->act[k]; q++) {
                w->nall[q][0] += w->x[k][q][0];
                w->nall[q][1] += w->x[k][q][1];
                w->dall[q] += w->pw[k][q];
            }
        *have_all = 1;
    }
    if (complement) {
        memcpy(num, w->nall, sizeof(fftwf_complex) * (size_t)w->ncplx);
        memcpy(den, w->dall, sizeof(float) * (size_t)w->ncplx);
        for (int k = 0; k < na; k++) {
            if (!w->act[k] || pattern_has(p, k))
                continue;
            for (long q = 0; q < w->ncplx; q++) {
                num[q][0] -= w->x[k][q][0];
                num[q][1] -= w->x[k][q][1];
                den[q] -= w->pw[k][q];
            }
        }
        return;
    }
    memset(num, 0, sizeof(fftwf_complex) * (size_t)w->ncplx);
    memset(den, 0, sizeof(float) * (size_t)w->ncplx);
    for (int k = 0; k < na; k++) {
        if (!pattern_has(p, k))
            continue;
        for (long q = 0; q < w->ncplx; q++) {
            num[q][0] += w->x[k][q][0];
            num[q][1] += w->x[k][q][1];
            den[q] += w->pw[k][q];
        }
    }
}

/* 3b. The coadd of pattern p: num / sqrt(den) rescaled to F_R, back to
 * pixels, written at the core pixels taking its solution. */
static void pattern_coadd(const tile_ctx *t, const zogy_pattern *p, fftwf_complex *num,
                          const float *den)
{
    zogy_ws *w = t->w;
    const sk_cx_band *out = t->out;
    const double scale = (t->z->flux_r / sqrt(p->fs2)) / ((double)t->lx * (double)t->ly);
    const float tiny = (float)(1e-30 + 1e-12 * t->eps * t->eps * p->fs2);
    for (long q = 0; q < w->ncplx; q++) {
        float d = den[q];
        if (d > tiny) {
            float f = (float)(scale / sqrt((double)d));
            num[q][0] *= f;
            num[q][1] *= f;
        } else {
            num[q][0] = 0.0f;
            num[q][1] = 0.0f;
        }
    }
    fftwf_execute_dft_c2r(t->inv, num, w->rbuf);
    for (long u = p->first; u < p->first + p->ngroup; u++) {
        long i = w->order[u];
        long cy = i / t->cw, cx = i % t->cw, gy = t->cy0 + cy;
        if (gy < out->y0 || gy >= out->y1)
            continue;
        out->sci[(size_t)(gy - out->y0) * (size_t)t->width + (size_t)(t->cx0 + cx)] =
            w->rbuf[(cy + t->m) * t->lx + cx + t->m];
    }
}

/* 3c. Variance shares a_{j,S} of pattern p on the coarse grid. */
static void pattern_shares(const tile_ctx *t, zogy_pattern *p)
{
    zogy_ws *w = t->w;
    const long g = t->g, gh = t->gh;
    const int na = t->na;
    for (long ky = 0; ky < g; ky++)
        for (long kx = 0; kx < gh; kx++) {
            long q = ky * gh + kx;
            double d = 0.0;
            for (int k = 0; k < na; k++)
                if (pattern_has(p, k))
                    d += w->pwc[k][q];
            if (!(d > 0.0))
                continue;
            double mu = col_mult(kx, g) / d;
            for (int k = 0; k < na; k++)
                if (pattern_has(p, k))
                    p->a[k] += mu * w->pwc[k][q];
        }
    for (int k = 0; k < na; k++)
        p->a[k] /= (double)(g * g);
}

/* 3. Solve each pattern. */
static int solve_patterns(const tile_ctx *t, pattern_set *s)
{
    zogy_ws *w = t->w;
    const int na = t->na;
    s->acoef = calloc((size_t)(s->nsolved ? s->nsolved : 1) * (size_t)(na ? na : 1), sizeof(double));
    if (!s->acoef)
        return sk_error(SK_EIO, "zogy: out of memory");
    int have_all = 0;
    for (int r = 0; r < s->nsolved; r++) {
        zogy_pattern *p = &s->pat[s->solved[r]];
        p->a = s->acoef + (size_t)r * (size_t)na;
        double fs2 = 0.0;
        for (int k = 0; k < na; k++)
            if (pattern_has(p, k))
                fs2 += w->ce[k];
        p->fs2 = fs2;
        fftwf_complex *num = w->dbuf;
        float *den = (float *)w->pbuf; /* ncplx floats fit in the complex buffer */
        pattern_sums(t, p, &have_all, num, den);
        pattern_coadd(t, p, num, den);
        pattern_shares(t, p);
    }
    return SK_OK;
}

/* 4a. Relative variance of active input k over the buffer and the flag
 * bits of its in-painted pixels; 1 when it has any. */
static int relative_variance(const tile_ctx *t, int k)
{
    sk_zogy *z = t->z;
    zogy_ws *w = t->w;
    const sk_aligned_input *in = &z->in[w->active[k]];
    const uint8_t *valid = w->valid[k];
    const double s2 = z->sigma[w->active[k]] * z->sigma[w->active[k]];
    const long lx = t->lx, width = t->width;
    int any_invalid = 0;
    for (long by = 0; by < t->ly; by++) {
        long gy = t->by0 + by;
        for (long bx = 0; bx < lx; bx++) {
            long gx = t->bx0 + bx;
            size_t b = (size_t)(by * lx + bx);
            size_t ii = 0;
            if (valid[b] && sk_cx_held(in, width, gx, gy, &ii)) {
                w->rv[b] = (float)(1.0 / (in->weight[ii] * s2));
                w->ibits[b] = 0;
            } else {
                w->rv[b] = 0.0f;
                uint16_t f = 0;
                if (gy >= 0 && gy < z->height && gx >= 0 && gx < width)
                    f = sk_cx_flags(in, width, gx, gy);
                w->ibits[b] = (uint16_t)((f & t->mask & ~(unsigned)(SK_FLAG_EDGE | SK_FLAG_ZEROWEIGHT)) |
                                         SK_FLAG_INTERPOLATED);
                any_invalid = 1;
            }
        }
    }
    return any_invalid;
}

/* 4b. Row sums (and counts) of 2 rb + 1 usable relative variances along x,
 * over the core and rb rows beyond it. */
static void variance_rows(const tile_ctx *t, int k, long rb)
{
    zogy_ws *w = t->w;
    const uint8_t *valid = w->valid[k];
    const long lx = t->lx, m = t->m;
    for (long by = m - rb; by < m + t->chh + rb; by++)
        for (long bx = m; bx < m + t->cw; bx++) {
            double s = 0.0;
            int c = 0;
            for (long dx = -rb; dx <= rb; dx++) {
                size_t b = (size_t)(by * lx + bx + dx);
                if (valid[b]) {
                    s += w->rv[b];
                    c++;
                }
            }
            w->box[by * lx + bx] = s;
            w->boxn[by * lx + bx] = c;
        }
}

/* 4c. Flags of input k's in-painted pixels on its usable core pixels within rin. */
static void inpainted_flags(const tile_ctx *t, int k, long rin)
{
    zogy_ws *w = t->w;
    const sk_cx_band *out = t->out;
    const uint8_t *valid = w->valid[k];
    sk_cx_dilate_or(w->ibits, w->dil, w->dtmp, t->lx, t->ly, rin);
    for (long i = 0; i < t->ncore; i++) {
        long cy = i / t->cw, cx = i % t->cw, gy = t->cy0 + cy;
        size_t b = (size_t)((cy + t->m) * t->lx + cx + t->m);
        if (gy >= out->y0 && gy < out->y1 && valid[b] && w->dil[b])
            out->flags[(size_t)(gy - out->y0) * (size_t)t->width + (size_t)(t->cx0 + cx)] |=
                w->dil[b];
    }
}

/* 4d. Input k's share of the variance at each core pixel whose solution uses it. */
static void variance_shares(const tile_ctx *t, const pattern_set *s, int k, long rb)
{
    zogy_ws *w = t->w;
    const long lx = t->lx;
    for (long i = 0; i < t->ncore; i++) {
        const zogy_pattern *p = &s->pat[w->pixpat[i]];
        const zogy_pattern *u = &s->pat[p->use];
        if (!pattern_has(u, k))
            continue;
        long cy = i / t->cw, cx = i % t->cw;
        long by = cy + t->m, bx = cx + t->m;
        double sum = 0.0;
        int c = 0;
        for (long dy = -rb; dy <= rb; dy++) {
            sum += w->box[(by + dy) * lx + bx];
            c += w->boxn[(by + dy) * lx + bx];
        }
        double v = c ? sum / c : 1.0;
        w->acc[i] += u->a[k] * v;
    }
}

/* 4. The variance of every core pixel from each input's 5x5 mean relative
 * variance, and the flags of in-painted contributions. */
static void tile_variance(const tile_ctx *t, const pattern_set *s)
{
    zogy_ws *w = t->w;
    for (long i = 0; i < t->ncore; i++)
        w->acc[i] = 0.0;
    double fwhm_max = 0.0;
    for (int k = 0; k < t->na; k++)
        if (w->act[k] && w->fwhm[k] > fwhm_max)
            fwhm_max = w->fwhm[k];
    /* In-painted values of an input reach R through its filter, about as
     * wide as its PSF: where an input contributes within half the widest
     * FWHM of its in-painted pixels (its masked pixels, beyond its coverage
     * edge), they hold a significant share of R's value there. */
    long rin = (long)ceil(0.5 * fwhm_max);
    if (rin < 1)
        rin = 1;
    const long rb = 2;
    for (int k = 0; k < t->na; k++) {
        if (!w->act[k])
            continue; /* no usable pixel in the core: it contributes nowhere */
        int any_invalid = relative_variance(t, k);
        variance_rows(t, k, rb);
        if (any_invalid && t->out->flags)
            inpainted_flags(t, k, rin);
        variance_shares(t, s, k, rb);
    }
}

/* 5. Weight, flags and counts of the core pixels in the output rows. */
static void write_weights(const tile_ctx *t, const pattern_set *s)
{
    sk_zogy *z = t->z;
    zogy_ws *w = t->w;
    const sk_cx_band *out = t->out;
    for (long i = 0; i < t->ncore; i++) {
        long cy = i / t->cw, cx = i % t->cw, gy = t->cy0 + cy, gx = t->cx0 + cx;
        if (gy < out->y0 || gy >= out->y1)
            continue;
        size_t o = (size_t)(gy - out->y0) * (size_t)t->width + (size_t)gx;
        const zogy_pattern *p = &s->pat[w->pixpat[i]];
        if (p->count == 0) {
            uint16_t f = 0;
            for (int j = 0; j < z->n; j++)
                f |= sk_cx_flags(&z->in[j], t->width, gx, gy);
            out->sci[o] = 0.0f;
            out->weight[o] = 0.0f;
            if (out->flags)
                out->flags[o] = f ? f : SK_FLAG_EDGE;
            if (out->nimg)
                out->nimg[o] = 0;
            continue;
        }
        const zogy_pattern *u = &s->pat[p->use];
        double var = z->flux_r * z->flux_r / u->fs2 * w->acc[i];
        out->weight[o] = var > 0.0 ? (float)(1.0 / var) : 0.0f;
        if (out->flags && p->use != w->pixpat[i])
            out->flags[o] |= SK_FLAG_INTERPOLATED;
        if (out->nimg)
            out->nimg[o] = (uint16_t)p->count;
    }
}

/* ---- threads over tiles ------------------------------------------------ */

/* The tiles of one band of output rows [out.y0, out.y1). */
typedef struct zogy_job {
    sk_zogy *z;
    sk_cx_band out;
} zogy_job;

static int process_tile(void *ws, long tx, long ty, void *user)
{
    const zogy_job *job = user;
    sk_zogy *z = job->z;
    zogy_ws *w = ws;
    const sk_cx_band *out = &job->out;
    tile_ctx t;
    memset(&t, 0, sizeof t);
    t.z = z;
    t.w = w;
    t.out = out;
    t.lx = z->tile.lx;
    t.ly = z->tile.ly;
    t.width = z->width;
    t.m = z->tile.margin;
    sk_cx_tiling_core(&z->tile, tx, ty, &t.cx0, &t.cy0, &t.cx1, &t.cy1);
    t.cw = t.cx1 - t.cx0;
    t.chh = t.cy1 - t.cy0;
    t.ncore = t.cw * t.chh;
    t.bx0 = t.cx0 - t.m;
    t.by0 = t.cy0 - t.m;
    t.eps = z->o.psf_floor;
    t.mask = z->o.mask_flags;
    t.ps = z->o.psf_size;
    t.g = z->tile.g;
    t.gh = t.g / 2 + 1;
    t.xc = 0.5 * (double)(t.cx0 + t.cx1 - 1);
    t.yc = 0.5 * (double)(t.cy0 + t.cy1 - 1);
    t.fwd = sk_fft_plan_r2c((int)t.ly, (int)t.lx);
    t.inv = sk_fft_plan_c2r((int)t.ly, (int)t.lx);
    t.gfwd = sk_fft_plan_r2c((int)t.g, (int)t.g);
    t.sfft = &z->sfft;
    if (!t.fwd || !t.inv || !t.gfwd)
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    int status = tile_inputs(&t);
    if (status)
        return status;
    pattern_set s;
    memset(&s, 0, sizeof s);
    s.nw = ((size_t)t.na + 63) / 64;
    status = classify_pixels(&t, &s);
    if (!status)
        status = choose_solved(&t, &s);
    if (!status)
        status = order_pixels(&t, &s);
    if (!status)
        status = solve_patterns(&t, &s);
    if (!status) {
        tile_variance(&t, &s);
        write_weights(&t, &s);
    }
    pattern_set_free(&s);
    return status;
}

/* Each thread's workspace. */
static int zogy_job_ws_init(void *ws, void *user)
{
    const zogy_job *job = user;
    return ws_init(ws, job->z);
}

static void zogy_job_ws_release(void *ws, void *user)
{
    ws_free(ws);
}

int sk_zogy_rows_cols(sk_zogy *z, long y0, long y1, long tx0, long tx1, float *sci,
                      float *weight, uint16_t *flags, uint16_t *nimg)
{
    int status = sk_cx_rows_check("zogy", z->height, y0, y1, sci, weight);
    if (!status && (tx0 < 0 || tx1 > z->tile.ntx || tx1 <= tx0))
        status = sk_error(SK_EINPUT, "zogy: bad tile columns [%ld, %ld) of %ld", tx0, tx1,
                          z->tile.ntx);
    long x0 = 0, x1 = 0;
    if (!status)
        sk_zogy_cols_needed(z, tx0, tx1, &x0, &x1);
    for (int j = 0; j < z->n && !status; j++) {
        const sk_aligned_input *in = &z->in[j];
        status = sk_cx_input_rows_check("zogy", &z->tile, in, j, y0, y1);
        if (!status && in->sci && in->nrows > 0 && in->ncols > 0 &&
            (in->col0 > x0 || in->col0 + in->ncols < x1))
            status = sk_error(SK_EINPUT, "zogy: input %d holds columns [%ld, %ld), columns "
                              "[%ld, %ld) are needed", j, in->col0, in->col0 + in->ncols, x0, x1);
    }
    if (status)
        return status;
    /* the flags of the tiles' cores cleared (the tiles OR bits into them) */
    long c0 = tx0 * z->tile.tcx, c1 = tx1 * z->tile.tcx < z->width ? tx1 * z->tile.tcx : z->width;
    for (long y = y0; flags && y < y1; y++)
        memset(flags + (size_t)(y - y0) * (size_t)z->width + (size_t)c0, 0,
               sizeof(uint16_t) * (size_t)(c1 - c0));
    zogy_job job = {z, {y0, y1, sci, weight, flags, nimg}};
    const sk_scratch ws_ops = {sizeof(zogy_ws), zogy_job_ws_init, zogy_job_ws_release};
    return sk_cx_tiles_run_cols(&z->tile, y0, y1, tx0, tx1, z->o.threads, &ws_ops, process_tile,
                                &job);
}

int sk_zogy_rows(sk_zogy *z, long y0, long y1, float *sci, float *weight, uint16_t *flags,
                 uint16_t *nimg)
{
    return sk_zogy_rows_cols(z, y0, y1, 0, z->tile.ntx, sci, weight, flags, nimg);
}

/* ---- the coadd PSF ----------------------------------------------------- */

int sk_zogy_psf(sk_zogy *z, double x_px, double y_px, long size, float *stamp)
{
    if (size < 1 || size % 2 == 0)
        return sk_error(SK_EINPUT, "zogy: PSF stamp size %ld must be odd", size);
    long ps = z->o.psf_size;
    long gp = sk_fft_good_size(4 * (size > ps ? size : ps));
    long gh = gp / 2 + 1, nc = gp * gh;
    float *r = fftwf_alloc_real((size_t)(gp * gp));
    fftwf_complex *c = fftwf_alloc_complex((size_t)nc);
    double *acc = calloc((size_t)nc, sizeof(double));
    float *st = malloc(sizeof(float) * (size_t)(ps * ps));
    fftwf_complex *flt = fftwf_alloc_complex((size_t)nc);
    float *gn = malloc(sizeof(float) * (size_t)nc);
    fftwf_plan fwd = sk_fft_plan_r2c((int)gp, (int)gp), inv = sk_fft_plan_c2r((int)gp, (int)gp);
    int status = SK_OK;
    if (!fwd || !inv) {
        status = sk_errstatus() ? sk_errstatus() : SK_EIO;
        goto done;
    }
    if (!r || !c || !acc || !st || !flt || !gn) {
        status = sk_error(SK_EIO, "zogy: out of memory");
        goto done;
    }
    /* the resampling model over a tile-sized box around (x, y) */
    long bx0, by0, bx1, by1;
    box_around(z, x_px, y_px, &bx0, &by0, &bx1, &by1);
    for (int j = 0; j < z->n; j++) {
        status = sk_cx_psf_stamp_locked(&z->psf_lock, &z->in[j], j, x_px, y_px, ps, st);
        sk_resample_noise nm;
        if (!status)
            status = input_noise(z, j, bx0, by0, bx1, by1, &nm);
        if (status)
            goto done;
        sk_resample_noise_spectrum(&nm, gp, gp, fwd, r, c, flt, gn);
        sk_resample_noise_clear(&nm);
        sk_cx_embed(st, ps, r, gp, gp);
        fftwf_execute_dft_r2c(fwd, r, c);
        for (long k = 0; k < nc; k++) {
            double pr = c[k][0] + z->o.psf_floor, pi = c[k][1];
            acc[k] += z->c[j] * (pr * pr + pi * pi) * gn[k];
        }
    }
    double norm = sqrt(acc[0]);
    for (long k = 0; k < nc; k++) {
        c[k][0] = (float)(sqrt(acc[k]) / norm / ((double)gp * (double)gp));
        c[k][1] = 0.0f;
    }
    fftwf_execute_dft_c2r(inv, c, r);
    long h = size / 2;
    double s = 0.0;
    for (long v = 0; v < size; v++)
        for (long u = 0; u < size; u++) {
            long yy = ((v - h) % gp + gp) % gp, xx = ((u - h) % gp + gp) % gp;
            stamp[v * size + u] = r[yy * gp + xx];
            s += r[yy * gp + xx];
        }
    for (long i = 0; i < size * size; i++)
        stamp[i] = (float)(stamp[i] / s);
done:
    fftwf_free(r);
    fftwf_free(c);
    fftwf_free(flt);
    free(gn);
    free(acc);
    free(st);
    return status;
}
