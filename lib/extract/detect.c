/* detect.c: matched-filter detection: per-pixel variance, Gaussian filtering into a significance image, 8-connected segmentation above threshold, then deblending of every segment. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/bigbuf.h"
#include "core/parallel.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "extract_priv.h"
#include "numeric/select.h"
#include "extract_internal.h"
#include "core/vectorise.h"

/* The weight map's rescaling, one mesh cell per task: scale[c] =
 * rms^2 * median weight of cell c, used[c] 0 where the cell has too few
 * usable pixels; then the variance of rows, a block per task. */
typedef struct var_job {
    const sk_image *img;
    const sk_background *bg;
    float *scale;  /* per cell */
    uint8_t *used; /* per cell */
    float *var;
    float sf;      /* the rescaling (the median of the cells' scales) */
} var_job;

static int var_wbuf_init(void *scratch, void *user)
{
    const var_job *J = user;
    float **wbuf = scratch;
    *wbuf = malloc(sizeof **wbuf * (size_t)J->bg->mesh_px * (size_t)J->bg->mesh_px);
    return *wbuf ? SK_OK : sk_error(SK_EIO, "detection: out of memory");
}

static void var_wbuf_release(void *scratch, void *user)
{
    free(*(float **)scratch);
}

static int var_cells(void *scratch, long c0, long c1, void *user)
{
    const var_job *J = user;
    const sk_image *img = J->img;
    const sk_background *bg = J->bg;
    float *wbuf = *(float **)scratch;
    for (long c = c0; c < c1; c++) {
        long cx = c % bg->nx, cy = c / bg->nx, m = bg->mesh_px;
        long x0 = cx * m, y0 = cy * m;
        long x1 = x0 + m < img->width ? x0 + m : img->width;
        long y1 = y0 + m < img->height ? y0 + m : img->height;
        /* every fourth pixel along x and y (1024 in a 128-px cell):
           plenty for the median of a weight map */
        long n = 0;
        for (long y = y0; y < y1; y += 4) {
            const float *wr = img->weight + y * img->width;
            const uint16_t *fr = img->flags + y * img->width;
            for (long x = x0; x < x1; x += 4) {
                wbuf[n] = wr[x];
                n += wr[x] > 0 && fr[x] == 0;
            }
        }
        J->used[c] = 0;
        if (n * 64 < (x1 - x0) * (y1 - y0) || n < 16)
            continue;
        /* the cell's mean pixel variance, each capped at twice the
           median's (sources' Poisson noise in a weight map stays out):
           what the rms of its pixels measures, also where the variance
           changes from pixel to pixel (the kernel's phases in a
           resampled coadd), where 1 / median weight is not it */
        double vcap = 2.0 / sk_select_kth(wbuf, n, n / 2), vmean = 0;
        for (long k = 0; k < n; k++)
            vmean += fmin(1.0 / wbuf[k], vcap);
        vmean /= (double)n;
        double r = bg->mesh_rms[c];
        J->scale[c] = (float)(r * r / vmean);
        J->used[c] = 1;
    }
    return SK_OK;
}

static int var_rows(long y0, long y1, void *user)
{
    const var_job *J = user;
    const sk_image *img = J->img;
    long i0 = y0 * img->width, i1 = y1 * img->width;
    if (img->weight_is_relative) {
        const float *rms = J->bg->rms;
        for (long i = i0; i < i1; i++)
            J->var[i] = sk_pixel_usable(img, i) ? rms[i] * rms[i] : 0.0f;
        return SK_OK;
    }
    const float sf = J->sf;
    const float *restrict wgt = img->weight;
    const uint16_t *restrict fl = img->flags;
    float *restrict var = J->var;
    for (long i = i0; i < i1; i++)
        var[i] = wgt[i] > 0 && !(fl[i] & SK_UNUSABLE_FLAGS) ? sf / wgt[i] : 0.0f;
    return SK_OK;
}

float *sk_pixel_variance(const sk_image *img, const sk_background *bg)
{
    return sk_pixel_variance_threads(img, bg, 1);
}

float *sk_pixel_variance_threads(const sk_image *img, const sk_background *bg, int threads)
{
    long npix = img->width * img->height;
    var_job J = {img, bg, NULL, NULL, sk_big_malloc((size_t)npix, sizeof(float)), 1.0f};
    if (!J.var) {
        sk_error(SK_EIO, "detection: out of memory for the variance map");
        return NULL;
    }
    if (!img->weight_is_relative) {
        /* Rescale the weight map so that it agrees with the measured
           background noise: scale = median over cells of rms^2 * median
           weight. */
        long nc = bg->nx * bg->ny, nscale = 0;
        J.scale = malloc(sizeof *J.scale * (size_t)(nc ? nc : 1));
        J.used = malloc((size_t)(nc ? nc : 1));
        const sk_scratch wb = {sizeof(float *), var_wbuf_init, var_wbuf_release};
        if (!J.scale || !J.used || sk_parallel_for_scratch(nc, 8, threads, &wb, var_cells, &J)) {
            if (!J.scale || !J.used)
                sk_error(SK_EIO, "detection: out of memory");
            free(J.scale);
            free(J.used);
            free(J.var);
            return NULL;
        }
        for (long c = 0; c < nc; c++) /* in cell order, whatever the threads */
            if (J.used[c])
                J.scale[nscale++] = J.scale[c];
        double s = 1.0;
        if (nscale > 0)
            s = sk_select_kth(J.scale, nscale, nscale / 2);
        if (!(s > 0) || !isfinite(s))
            s = 1.0;
        J.sf = (float)s;
        free(J.scale);
        free(J.used);
    }
    (void)sk_parallel_for(img->height, 64, threads, var_rows, &J); /* var_rows cannot fail */
    return J.var;
}

/* 1-D Gaussian taps g[-r..r] (returned at g[0..2r]) of unit sum; the 2-D
 * filter is g(x) g(y). FWHM <= 0 gives the identity. */
static double *gauss_taps(double fwhm_px, int *radius)
{
    if (!(fwhm_px > 0)) {
        double *g = malloc(sizeof *g);
        if (g)
            g[0] = 1.0;
        *radius = 0;
        return g;
    }
    double sigma = fwhm_px / (2.0 * sqrt(2.0 * log(2.0)));
    int r = (int)ceil(3.0 * sigma);
    if (r < 1)
        r = 1;
    double *g = malloc(sizeof *g * (size_t)(2 * r + 1));
    if (!g)
        return NULL;
    double sum = 0;
    for (int j = -r; j <= r; j++) {
        g[j + r] = exp(-0.5 * j * j / (sigma * sigma));
        sum += g[j + r];
    }
    for (int j = 0; j <= 2 * r; j++)
        g[j] /= sum;
    *radius = r;
    return g;
}

float *sk_gauss_kernel(double fwhm_px, int *radius)
{
    int r;
    double *g = gauss_taps(fwhm_px, &r);
    if (!g)
        return NULL;
    int n = 2 * r + 1;
    float *k = malloc(sizeof *k * (size_t)(n * n));
    if (k)
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                k[y * n + x] = (float)(g[y] * g[x]);
    free(g);
    *radius = r;
    return k;
}

/* Running maximum of a 0/1 line over a window of +-r (in place via tmp). */
static void dilate_line(uint8_t *v, long n, long stride, int r, uint8_t *tmp)
{
    long count = 0;
    for (long i = 0; i < n && i <= r; i++)
        count += v[i * stride] != 0;
    for (long i = 0; i < n; i++) {
        tmp[i] = count > 0;
        long add = i + r + 1, drop = i - r;
        if (add < n)
            count += v[add * stride] != 0;
        if (drop >= 0)
            count -= v[drop * stride] != 0;
    }
    for (long i = 0; i < n; i++)
        v[i * stride] = tmp[i];
}

/* The object mask dilated along x, a band of rows at a time, then along y
 * with a running count per column, a strip of columns at a time (the
 * same integers whatever the bands and strips). */
typedef struct mask_job {
    const sk_detection *det;
    int r;
    uint8_t *m, *out;
} mask_job;

static int mask_rows(long y0, long y1, void *user)
{
    const mask_job *J = user;
    long w = J->det->width;
    uint8_t *tmp = malloc((size_t)w);
    if (!tmp)
        return sk_error(SK_EIO, "detection: out of memory for the object mask");
    for (long y = y0; y < y1; y++) {
        uint8_t *row = J->m + y * w;
        const int32_t *seg = J->det->segmap + y * w;
        for (long x = 0; x < w; x++)
            row[x] = seg[x] != 0;
        if (J->r > 0)
            dilate_line(row, w, 1, J->r, tmp);
    }
    free(tmp);
    return SK_OK;
}

#define MASK_STRIP_COLS 256

static int mask_strips(long s0, long s1, void *user)
{
    const mask_job *J = user;
    long w = J->det->width, h = J->det->height, r = J->r;
    uint16_t cnt[MASK_STRIP_COLS];
    for (long s = s0; s < s1; s++) {
        long x0 = s * MASK_STRIP_COLS, nx = w - x0 < MASK_STRIP_COLS ? w - x0 : MASK_STRIP_COLS;
        const uint8_t *m = J->m + x0;
        uint8_t *out = J->out + x0;
        memset(cnt, 0, sizeof cnt);
        for (long yy = 0; yy <= r && yy < h; yy++)
            for (long x = 0; x < nx; x++)
                cnt[x] += m[yy * w + x];
        for (long y = 0; y < h; y++) {
            if (y > 0) {
                if (y + r < h) {
                    const uint8_t *add = m + (y + r) * w;
                    for (long x = 0; x < nx; x++)
                        cnt[x] += add[x];
                }
                if (y - r - 1 >= 0) {
                    const uint8_t *sub = m + (y - r - 1) * w;
                    for (long x = 0; x < nx; x++)
                        cnt[x] -= sub[x];
                }
            }
            uint8_t *o = out + y * w;
            for (long x = 0; x < nx; x++)
                o[x] = cnt[x] != 0;
        }
    }
    return SK_OK;
}

uint8_t *sk_detection_mask(const sk_detection *det, int radius_px, int threads)
{
    long w = det->width, h = det->height, npix = w * h;
    mask_job J = {det, radius_px > 0 ? radius_px : 0, malloc((size_t)(npix ? npix : 1)), NULL};
    int st = J.m ? sk_parallel_for(h, 16, threads, mask_rows, &J)
                 : sk_error(SK_EIO, "detection: out of memory for the object mask");
    if (!st && J.r > 0) {
        J.out = malloc((size_t)(npix ? npix : 1));
        st = J.out ? sk_parallel_for((w + MASK_STRIP_COLS - 1) / MASK_STRIP_COLS, 1, threads, mask_strips, &J)
                   : sk_error(SK_EIO, "detection: out of memory for the object mask");
        free(J.m);
        J.m = J.out;
    }
    if (st) {
        free(J.m);
        return NULL;
    }
    return J.m;
}

void sk_detection_free(sk_detection *d)
{
    if (!d)
        return;
    for (long i = 0; i < d->nobjects; i++)
        free(d->objects[i].pix);
    free(d->objects);
    free(d->signif);
    free(d->segmap);
    free(d->variance);
    free(d);
}

struct filter_job {
    const sk_image *img;
    const sk_background *bg;
    const float *var;
    const float *gf, *g2f;
    int r;
    float *signif;
    float noise_factor; /* sk_image_noise_factor */
};

#define FILTER_BLOCK 128

/* One row of the image filtered along x: od with g (the masked,
 * background-subtracted data), ov with g^2 (the variance). line_d and
 * line_v hold w + 2r values. */
SK_VECTORISE
static void filter_row_x(const struct filter_job *J, long y, float *restrict od, float *restrict ov,
                         float *restrict line_d, float *restrict line_v)
{
    const sk_image *img = J->img;
    long w = img->width;
    int r = J->r;
    for (long j = 0; j < r; j++) {
        line_d[j] = line_v[j] = 0;
        line_d[w + r + j] = line_v[w + r + j] = 0;
    }
    const float *restrict sci = img->sci + y * w, *restrict lev = J->bg->level + y * w;
    const float *restrict var = J->var + y * w;
    for (long x = 0; x < w; x++) {
        float v = var[x];
        line_d[x + r] = v > 0 ? sci[x] - lev[x] : 0.0f;
        line_v[x + r] = v > 0 ? v : 0.0f;
    }
    for (long x = 0; x < w; x++)
        od[x] = ov[x] = 0;
    for (int j = 0; j <= 2 * r; j++) {
        const float gj = J->gf[j], g2j = J->g2f[j];
        const float *restrict pd = line_d + j, *restrict pv = line_v + j;
        for (long x = 0; x < w; x++) {
            od[x] += gj * pd[x];
            ov[x] += g2j * pv[x];
        }
    }
}

/* Rows [begin, end) of the significance image: separable filtering of the
 * masked, background-subtracted data with g and of the variance with g^2.
 * The rows filtered along x go round a ring of 2r + 1 rows, so that each
 * is filtered once and the working set stays in cache. */
/* The inner loops are written for the vectoriser (tap-outer, pixel-inner,
 * restrict-qualified rows), hence -O3 here whatever the build's level. */
SK_VECTORISE
static int filter_range(long begin, long end, void *user)
{
    struct filter_job *J = user;
    const sk_image *img = J->img;
    long w = img->width, h = img->height;
    int r = J->r;
    long ring = 2 * r + 1;
    long y0 = begin - r < 0 ? 0 : begin - r;
    long y1 = end + r > h ? h : end + r;
    float *rd = malloc(sizeof(float) * (size_t)(ring * w));
    float *rv = malloc(sizeof(float) * (size_t)(ring * w));
    float *line_d = malloc(sizeof(float) * (size_t)(w + 2 * r));
    float *line_v = malloc(sizeof(float) * (size_t)(w + 2 * r));
    float *sd = malloc(sizeof(float) * (size_t)w), *sv = malloc(sizeof(float) * (size_t)w);
    if (!rd || !rv || !line_d || !line_v || !sd || !sv) {
        free(rd); free(rv); free(line_d); free(line_v); free(sd); free(sv);
        return sk_error(SK_EIO, "detection: out of memory");
    }
    long next = y0;  /* next row to filter along x */
    for (long y = begin; y < end; y++) {
        for (; next < y1 && next <= y + r; next++)
            filter_row_x(J, next, rd + (next % ring) * w, rv + (next % ring) * w, line_d, line_v);
        for (long x = 0; x < w; x++)
            sd[x] = sv[x] = 0;
        for (int j = -r; j <= r; j++) {
            long yy = y + j;
            if (yy < y0 || yy >= y1)
                continue;
            const float gj = J->gf[j + r], g2j = J->g2f[j + r];
            const float *restrict pd = rd + (yy % ring) * w, *restrict pv = rv + (yy % ring) * w;
            float *restrict sdr = sd, *restrict svr = sv;
            for (long x = 0; x < w; x++) {
                sdr[x] += gj * pd[x];
                svr[x] += g2j * pv[x];
            }
        }
        float *out = J->signif + y * w;
        const float *var = J->var + y * w;
        for (long x = 0; x < w; x++)
            out[x] = (var[x] > 0 && sv[x] > 0) ? sd[x] / (J->noise_factor * sqrtf(sv[x])) : 0.0f;
    }
    free(sd);
    free(sv);
    free(rd);
    free(rv);
    free(line_d);
    free(line_v);
    return SK_OK;
}

/* The fewest pixels above the threshold a segment needs: min_area_px, or
 * when smaller the area a point source twice as significant as the
 * threshold covers above it, (pi / 2) FWHM^2 for the matched filter (a
 * Gaussian star of sigma s filtered by itself has sigma^2 = 2 s^2 and
 * exceeds half its peak over 2 pi ln 2 (2 s^2)); at least one pixel. A star of an
 * undersampled image covers only a few pixels above the threshold (at FWHM
 * 1.2 px one of signal-to-noise 25 covers about 5): a fixed minimum area
 * would drop such stars while keeping the same stars on a finer grid. */
long sk_detect_min_area(const sk_detect_params *p)
{
    long psf = p->fwhm_px > 0 ? lround(0.5 * M_PI * p->fwhm_px * p->fwhm_px) : p->min_area_px;
    if (psf < 1)
        psf = 1;
    return psf < p->min_area_px ? psf : p->min_area_px;
}

/* A run of pixels above the threshold in row y: columns [x0, x1]. */
typedef struct {
    long y, x0, x1;
    long parent;  /* union-find over the runs: a root is its segment's first run */
} run_t;

static long run_root(run_t *r, long a)
{
    while (r[a].parent != a) {
        r[a].parent = r[r[a].parent].parent;
        a = r[a].parent;
    }
    return a;
}

/* The runs of a band of rows, found on threads: each band's runs in row
 * order into its own array, so that the bands concatenated in order give
 * the runs a single pass over the rows gives. */
#define RUN_BAND_ROWS 64

typedef struct run_band {
    run_t *runs;
    long n, cap;
} run_band;

typedef struct runs_job {
    const float *val;
    long w, h;
    float thr;
    run_band *band;
    long *row_end;  /* per row: its last run + 1 within its band */
} runs_job;

static int band_runs(long b0, long b1, void *user)
{
    const runs_job *J = user;
    for (long b = b0; b < b1; b++) {
        run_band *B = &J->band[b];
        long y1 = (b + 1) * RUN_BAND_ROWS < J->h ? (b + 1) * RUN_BAND_ROWS : J->h;
        for (long y = b * RUN_BAND_ROWS; y < y1; y++) {
            const float *row = J->val + y * J->w;
            for (long x = 0; x < J->w;) {
                if (!(row[x] > J->thr)) {
                    x++;
                    continue;
                }
                long x0 = x;
                while (x < J->w && row[x] > J->thr)
                    x++;
                if (B->n == B->cap) {
                    long cap = B->cap ? 2 * B->cap : 1024;
                    run_t *nr = realloc(B->runs, sizeof *nr * (size_t)cap);
                    if (!nr)
                        return sk_error(SK_EIO, "detection: out of memory");
                    B->runs = nr;
                    B->cap = cap;
                }
                B->runs[B->n++] = (run_t){ y, x0, x - 1, 0 };
            }
            J->row_end[y] = B->n;
        }
    }
    return SK_OK;
}

/* Every run of pixels of `val` above thr, row after row, into *runs
 * (each its own parent), and per row the end of its runs in *row_end. */
static int find_runs(const float *val, long w, long h, float thr, int threads, run_t **runs, long *nruns,
                     long **row_end)
{
    *runs = NULL;
    *nruns = 0;
    long nband = (h + RUN_BAND_ROWS - 1) / RUN_BAND_ROWS;
    runs_job J = { val, w, h, thr, calloc((size_t)(nband ? nband : 1), sizeof(run_band)),
                   malloc(sizeof(long) * (size_t)(h ? h : 1)) };
    int st = J.band && J.row_end ? sk_parallel_for(nband, 1, threads, band_runs, &J)
                                 : sk_error(SK_EIO, "detection: out of memory");
    long n = 0;
    for (long b = 0; !st && b < nband; b++)
        n += J.band[b].n;
    run_t *all = st ? NULL : malloc(sizeof *all * (size_t)(n ? n : 1));
    if (!st && !all)
        st = sk_error(SK_EIO, "detection: out of memory");
    long off = 0;
    for (long b = 0; !st && b < nband; b++) {
        if (J.band[b].n > 0)
            memcpy(all + off, J.band[b].runs, sizeof *all * (size_t)J.band[b].n);
        long y1 = (b + 1) * RUN_BAND_ROWS < h ? (b + 1) * RUN_BAND_ROWS : h;
        for (long y = b * RUN_BAND_ROWS; y < y1; y++)
            J.row_end[y] += off;
        off += J.band[b].n;
    }
    for (long b = 0; J.band && b < nband; b++)
        free(J.band[b].runs);
    free(J.band);
    if (st) {
        free(J.row_end);
        return st;
    }
    for (long r = 0; r < n; r++)
        all[r].parent = r;
    *runs = all;
    *nruns = n;
    *row_end = J.row_end;
    return SK_OK;
}

/* The 8-connected segments of the pixels of `val` (w x h) above thr with at
 * least min_area pixels, ordered by their first pixel: their pixel indices
 * (ascending) one segment after the other in *pool, segment s from
 * (*start)[s], (*len)[s] of them. Runs of pixels along rows (found on
 * threads) are joined to the runs they touch in the row above. */
static int find_segments(const float *val, long w, long h, float thr, long min_area, int threads,
                         long **pool, long **start, long **len, long *nseg)
{
    *pool = *start = *len = NULL;
    *nseg = 0;
    run_t *runs = NULL;
    long nruns = 0, *row_end = NULL;
    int st = find_runs(val, w, h, thr, threads, &runs, &nruns, &row_end);
    if (st)
        return st;
    long prev0 = 0, prev1 = 0;  /* the previous row's runs */
    for (long y = 0; y < h; y++) {
        long cur0 = prev1, cur1 = row_end[y];
        /* join to the runs of the row above that touch, diagonals included */
        long k = prev0;
        for (long r = cur0; r < cur1; r++) {
            while (k < prev1 && runs[k].x1 < runs[r].x0 - 1)
                k++;
            for (long q = k; q < prev1 && runs[q].x0 <= runs[r].x1 + 1; q++) {
                long a = run_root(runs, q), b = run_root(runs, r);
                if (a < b)
                    runs[b].parent = a;
                else if (b < a)
                    runs[a].parent = b;
            }
        }
        prev0 = cur0;
        prev1 = cur1;
    }
    free(row_end);
    long *size = calloc((size_t)(nruns ? nruns : 1), sizeof *size);
    long *segof = malloc(sizeof *segof * (size_t)(nruns ? nruns : 1));
    if (!size || !segof) {
        free(runs);
        free(size);
        free(segof);
        return sk_error(SK_EIO, "detection: out of memory");
    }
    for (long r = 0; r < nruns; r++)
        size[run_root(runs, r)] += runs[r].x1 - runs[r].x0 + 1;
    long n = 0, total = 0;
    for (long r = 0; r < nruns; r++) {
        segof[r] = -1;
        if (runs[r].parent == r && size[r] >= min_area) {
            segof[r] = n++;
            total += size[r];
        }
    }
    *pool = malloc(sizeof **pool * (size_t)(total ? total : 1));
    *start = malloc(sizeof **start * (size_t)(n ? n : 1));
    *len = calloc((size_t)(n ? n : 1), sizeof **len);
    if (!*pool || !*start || !*len) {
        free(runs);
        free(size);
        free(segof);
        free(*pool);
        free(*start);
        free(*len);
        *pool = *start = *len = NULL;
        return sk_error(SK_EIO, "detection: out of memory");
    }
    for (long r = 0, off = 0; r < nruns; r++)
        if (segof[r] >= 0) {
            (*start)[segof[r]] = off;
            off += size[r];
        }
    for (long r = 0; r < nruns; r++) {
        long s = segof[run_root(runs, r)];
        if (s < 0)
            continue;
        long *out = *pool + (*start)[s] + (*len)[s];
        for (long x = runs[r].x0; x <= runs[r].x1; x++)
            *out++ = runs[r].y * w + x;
        (*len)[s] += runs[r].x1 - runs[r].x0 + 1;
    }
    free(runs);
    free(size);
    free(segof);
    *nseg = n;
    return SK_OK;
}

struct deblend_job {
    const sk_detect_params *p;
    const float *signif;
    long width, height;
    double thresh;
    const long *pool;
    const long *seg_start, *seg_len;
    sk_object **objs;   /* per segment */
    long *nobjs;
};

static int deblend_range(long begin, long end, void *user)
{
    struct deblend_job *J = user;
    for (long s = begin; s < end; s++) {
        long cap = 0;
        J->objs[s] = NULL;
        J->nobjs[s] = 0;
        int st = sk_deblend_segment(J->pool + J->seg_start[s], J->seg_len[s], J->signif,
                                    J->width, J->height, J->thresh, J->p, &J->objs[s], &J->nobjs[s], &cap);
        if (st)
            return st;
    }
    return SK_OK;
}

/* Object k's pixels labelled k + 1 in the segmentation map. */
static int segmap_range(long k0, long k1, void *user)
{
    sk_detection *d = user;
    for (long k = k0; k < k1; k++) {
        const sk_object *o = &d->objects[k];
        for (long j = 0; j < o->npix; j++)
            d->segmap[o->pix[j]] = (int32_t)(k + 1);
    }
    return SK_OK;
}

int sk_detect(const sk_image *img, const sk_background *bg, const sk_detect_params *p,
              int threads, sk_detection **out)
{
    *out = NULL;
    if (!(p->threshold_sigma > 0))
        return sk_error(SK_EINPUT, "extraction.detection.threshold_sigma: %g must be positive",
                        p->threshold_sigma);
    if (p->min_area_px < 1)
        return sk_error(SK_EINPUT, "extraction.detection.min_area_px: %d must be at least 1",
                        p->min_area_px);
    if (p->deblend_levels < 1)
        return sk_error(SK_EINPUT, "extraction.detection.deblend_levels: %d must be at least 1",
                        p->deblend_levels);
    if (!(p->deblend_contrast >= 0 && p->deblend_contrast <= 1))
        return sk_error(SK_EINPUT, "extraction.detection.deblend_contrast: %g is not in [0, 1]",
                        p->deblend_contrast);
    long w = img->width, h = img->height, npix = w * h;
    sk_detection *d = calloc(1, sizeof *d);
    if (!d)
        return sk_error(SK_EIO, "detection: out of memory");
    d->width = w;
    d->height = h;
    d->signif = sk_big_malloc((size_t)npix, sizeof(float));
    d->segmap = calloc((size_t)npix, sizeof(int32_t));
    float *var = sk_pixel_variance_threads(img, bg, threads);
    int r = 0;
    double *g = gauss_taps(p->filter ? p->fwhm_px : 0.0, &r);
    double *g2 = g ? malloc(sizeof *g2 * (size_t)(2 * r + 1)) : NULL;
    if (!d->signif || !d->segmap || !var || !g || !g2) {
        free(var); free(g); free(g2);
        sk_detection_free(d);
        return sk_error(SK_EIO, "detection: out of memory for a %ldx%ld image", w, h);
    }
    float gf[2 * r + 1], g2f[2 * r + 1];
    for (int j = 0; j <= 2 * r; j++) {
        g2[j] = g[j] * g[j];
        gf[j] = (float)g[j];
        g2f[j] = (float)g2[j];
    }
    /* The threshold is in units of the filtered noise, which the
       significance image is normalised to: whatever the kernel, a star of
       optimal signal-to-noise ratio SNR peaks near SNR, and pure noise
       exceeds T with the Gaussian tail probability of T. (Source
       Extractor's DETECT_THRESH, in per-pixel sigmas on the unit-sum
       filtered image, equals threshold_sigma * sum g^2 here.) */
    d->threshold = p->threshold_sigma;
    struct filter_job fj = { img, bg, var, gf, g2f, r, d->signif, (float)sk_image_noise_factor(img) };
    int st = sk_parallel_for(h, FILTER_BLOCK, threads, filter_range, &fj);
    d->variance = var;
    free(g);
    free(g2);
    if (st) {
        sk_detection_free(d);
        return st;
    }

    /* 8-connected segments above threshold */
    long *pool = NULL, *seg_start = NULL, *seg_len = NULL, nseg = 0;
    st = find_segments(d->signif, w, h, (float)d->threshold, sk_detect_min_area(p), threads, &pool,
                       &seg_start, &seg_len, &nseg);
    if (st)
        goto fail;
    d->nsegments = nseg;

    sk_object **objs = calloc((size_t)(nseg ? nseg : 1), sizeof *objs);
    long *nobjs = calloc((size_t)(nseg ? nseg : 1), sizeof *nobjs);
    if (!objs || !nobjs) {
        free(objs);
        free(nobjs);
        st = sk_error(SK_EIO, "detection: out of memory");
        goto fail;
    }
    struct deblend_job dj = { p, d->signif, w, h, d->threshold, pool, seg_start, seg_len, objs, nobjs };
    st = sk_parallel_for(nseg, 16, threads, deblend_range, &dj);
    long total = 0;
    for (long s = 0; s < nseg; s++)
        total += nobjs[s];
    if (!st) {
        d->objects = malloc(sizeof *d->objects * (size_t)(total ? total : 1));
        if (!d->objects)
            st = sk_error(SK_EIO, "detection: out of memory");
    }
    for (long s = 0; s < nseg; s++) {
        for (long k = 0; k < nobjs[s]; k++) {
            if (st) {
                free(objs[s][k].pix);
                continue;
            }
            sk_object *o = &d->objects[d->nobjects];
            *o = objs[s][k];
            o->parent = s;
            d->nobjects++;
        }
        free(objs[s]);
    }
    free(objs);
    free(nobjs);
    if (st)
        goto fail;
    /* the segmentation map: objects own disjoint pixels */
    (void)sk_parallel_for(d->nobjects, 64, threads, segmap_range, d);
    free(pool);
    free(seg_start);
    free(seg_len);
    *out = d;
    return SK_OK;
fail:
    free(pool);
    free(seg_start);
    free(seg_len);
    sk_detection_free(d);
    return st;
}
