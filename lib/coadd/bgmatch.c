/* bgmatch.c: background offsets (constant or plane) of overlapping aligned inputs fitted from robust cell statistics of their differences, anchored to a zero mean. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "aligned_priv.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/log.h"
#include "coaddx_internal.h"
#include "numeric/linsolve.h"
#include "numeric/stats.h"

typedef struct bg_meas {
    long cell;
    int j;
    double x, y;     /* centroid of the pixels (scaled coordinates) */
    double m, w;     /* median difference and its weight */
    int active;
} bg_meas;

typedef struct cell_acc {
    float *d;        /* differences, one per pixel of the group */
    long n, cap;
    double wsum;
} cell_acc;

/* The pixels of one cell with one coverage set (the inputs usable there):
 * they share one reference, the weighted mean of those inputs. */
typedef struct cell_group {
    long cx;
    long *pix;       /* pixels (index in the cell row buffer), in order */
    long npix, cap;
    uint64_t *bits;  /* nw words */
    int nmem;
    int *mem;        /* members, increasing */
    cell_acc *acc;   /* per member */
} cell_group;

struct sk_bgmatch {
    int n, npar;
    long width, height;
    sk_bgmatch_opts o;
    long ncx, ncy;
    double xc, yc, hx, hy;
    long next_row;
    size_t nw;          /* words of a coverage set */
    cell_group *grp;    /* groups of the current cell row */
    long ngrp, capgrp;
    long *htab, hcap;   /* open addressing over (cell, coverage set) */
    long ngroups_total; /* groups flushed so far (measurement cell ids) */
    long next_cell_row0; /* first row of the current cell row */
    float *refbuf;      /* reference of every pixel of the cell row */
    uint16_t *srcmask, *dilmask, *dtmp; /* sources found on the reference */
    float *tmp;         /* differences of one member, unmasked */
    float *smooth;      /* 5x5 mean of the reference */
    uint8_t *refok;     /* refbuf holds a value */
    bg_meas *meas;
    long nmeas, capmeas;
    double *theta;      /* n * npar */
    long *ncells;
    int solved;
};

void sk_bgmatch_opts_default(sk_bgmatch_opts *o)
{
    memset(o, 0, sizeof *o);
    o->degree = 1;
    o->cell_px = 64;
    o->clip_sigma = 3.0;
    o->iterations = 10;
    o->min_pixels = 0;
    o->mask_flags = SK_COADDX_MASK_DEFAULT;
}

int sk_bgmatch_new(int n, long width, long height, const sk_bgmatch_opts *opts,
                   sk_bgmatch **out)
{
    *out = NULL;
    sk_bgmatch_opts o;
    if (opts)
        o = *opts;
    else
        sk_bgmatch_opts_default(&o);
    if (n < 1)
        return sk_error(SK_EINPUT, "background matching: no input");
    if (width < 1 || height < 1)
        return sk_error(SK_EINPUT, "background matching: bad size %ld x %ld", width, height);
    if (o.degree != 0 && o.degree != 1)
        return sk_error(SK_EINPUT, "background matching: degree %d (0: constant, 1: plane)",
                        o.degree);
    if (o.cell_px < 4)
        return sk_error(SK_EINPUT, "background matching: cell of %ld px is below 4", o.cell_px);
    if (!(o.clip_sigma > 0.0))
        return sk_error(SK_EINPUT, "background matching: clip sigma %g must be > 0",
                        o.clip_sigma);
    if (o.iterations < 1)
        o.iterations = 1;
    if (o.min_pixels <= 0)
        o.min_pixels = o.cell_px * o.cell_px / 8;
    sk_bgmatch *bm = calloc(1, sizeof *bm);
    if (!bm)
        return sk_error(SK_EIO, "background matching: out of memory");
    bm->n = n;
    bm->npar = o.degree == 0 ? 1 : 3;
    bm->width = width;
    bm->height = height;
    bm->o = o;
    bm->ncx = (width + o.cell_px - 1) / o.cell_px;
    bm->ncy = (height + o.cell_px - 1) / o.cell_px;
    bm->xc = 0.5 * (double)(width - 1);
    bm->yc = 0.5 * (double)(height - 1);
    bm->hx = width > 1 ? 0.5 * (double)width : 1.0;
    bm->hy = height > 1 ? 0.5 * (double)height : 1.0;
    bm->nw = ((size_t)n + 63) / 64;
    bm->hcap = 64;
    bm->htab = malloc(sizeof(long) * (size_t)bm->hcap);
    if (bm->htab)
        for (long k = 0; k < bm->hcap; k++)
            bm->htab[k] = -1;
    size_t nrow = (size_t)o.cell_px * (size_t)width;
    bm->refbuf = malloc(sizeof(float) * nrow);
    bm->srcmask = malloc(sizeof(uint16_t) * nrow);
    bm->dilmask = malloc(sizeof(uint16_t) * nrow);
    bm->dtmp = malloc(sizeof(uint16_t) * nrow);
    bm->tmp = malloc(sizeof(float) * nrow);
    bm->smooth = malloc(sizeof(float) * nrow);
    bm->refok = calloc(nrow, 1);
    bm->theta = calloc((size_t)n * (size_t)bm->npar, sizeof(double));
    bm->ncells = calloc((size_t)n, sizeof(long));
    if (!bm->htab || !bm->theta || !bm->ncells || !bm->refbuf || !bm->srcmask || !bm->dilmask ||
        !bm->dtmp || !bm->tmp || !bm->smooth || !bm->refok) {
        sk_bgmatch_free(bm);
        return sk_error(SK_EIO, "background matching: out of memory");
    }
    *out = bm;
    return SK_OK;
}

void sk_bgmatch_free(sk_bgmatch *bm)
{
    if (!bm)
        return;
    for (long g = 0; g < bm->ngrp; g++) {
        for (int q = 0; q < bm->grp[g].nmem; q++)
            free(bm->grp[g].acc[q].d);
        free(bm->grp[g].bits);
        free(bm->grp[g].mem);
        free(bm->grp[g].acc);
        free(bm->grp[g].pix);
    }
    free(bm->grp);
    free(bm->htab);
    free(bm->refbuf);
    free(bm->srcmask);
    free(bm->dilmask);
    free(bm->dtmp);
    free(bm->tmp);
    free(bm->smooth);
    free(bm->refok);
    free(bm->meas);
    free(bm->theta);
    free(bm->ncells);
    free(bm);
}

/* Turn the groups of the current cell row (nrows rows from next_cell_row0)
 * into measurements and forget them. Sources are masked first: pixels
 * where the reference, or its 5x5 mean, is more than 2 robust sigmas above
 * its median in the group, grown by 2 pixels, so that seeing differences
 * around stars do not bias the medians. */
static int flush_cell_row(sk_bgmatch *bm, long nrows)
{
    int status = SK_OK;
    const long width = bm->width;
    const size_t nrow = (size_t)nrows * (size_t)width;
    memset(bm->srcmask, 0, sizeof(uint16_t) * nrow);
    /* 5x5 mean of the reference over the pixels that have one */
    for (long y = 0; y < nrows; y++)
        for (long x = 0; x < width; x++) {
            double s = 0.0;
            int c = 0;
            for (long dy = -2; dy <= 2; dy++) {
                long yy = y + dy;
                if (yy < 0 || yy >= nrows)
                    continue;
                for (long dx = -2; dx <= 2; dx++) {
                    long xx = x + dx;
                    if (xx < 0 || xx >= width || !bm->refok[yy * width + xx])
                        continue;
                    s += bm->refbuf[yy * width + xx];
                    c++;
                }
            }
            bm->smooth[y * width + x] = c ? (float)(s / c) : 0.0f;
        }
    for (long g = 0; g < bm->ngrp; g++) {
        cell_group *gr = &bm->grp[g];
        if (gr->nmem < 2 || gr->npix < bm->o.min_pixels)
            continue;
        for (int pass = 0; pass < 2; pass++) {
            const float *v = pass ? bm->smooth : bm->refbuf;
            for (long i = 0; i < gr->npix; i++)
                bm->tmp[i] = v[gr->pix[i]];
            float med = sk_median_floatf(bm->tmp, gr->npix);
            for (long i = 0; i < gr->npix; i++)
                bm->tmp[i] = fabsf(v[gr->pix[i]] - med);
            float sig = 1.4826f * sk_median_floatf(bm->tmp, gr->npix);
            for (long i = 0; i < gr->npix; i++)
                if (v[gr->pix[i]] > med + 2.0f * sig)
                    bm->srcmask[gr->pix[i]] = 1;
        }
    }
    memset(bm->refok, 0, nrow);
    sk_cx_dilate_or(bm->srcmask, bm->dilmask, bm->dtmp, width, nrows, 2);
    for (long g = 0; g < bm->ngrp; g++) {
        cell_group *gr = &bm->grp[g];
        long id = bm->ngroups_total++;
        for (int q = 0; q < gr->nmem && !status && gr->nmem >= 2; q++) {
            cell_acc *a = &gr->acc[q];
            long nu = 0;
            double xs = 0.0, ys = 0.0;
            for (long i = 0; i < gr->npix; i++) {
                long pix = gr->pix[i];
                if (bm->dilmask[pix])
                    continue;
                bm->tmp[nu++] = a->d[i];
                xs += (double)(pix % width);
                ys += (double)(pix / width);
            }
            if (nu < bm->o.min_pixels)
                continue;
            if (bm->nmeas == bm->capmeas) {
                long nc = bm->capmeas ? 2 * bm->capmeas : 256;
                bg_meas *nm = realloc(bm->meas, sizeof(bg_meas) * (size_t)nc);
                if (!nm) {
                    status = sk_error(SK_EIO, "background matching: out of memory");
                    break;
                }
                bm->meas = nm;
                bm->capmeas = nc;
            }
            bg_meas *m = &bm->meas[bm->nmeas++];
            m->cell = id;
            m->j = gr->mem[q];
            m->x = (xs / (double)nu - bm->xc) / bm->hx;
            m->y = (ys / (double)nu + (double)bm->next_cell_row0 - bm->yc) / bm->hy;
            m->m = sk_median_floatf(bm->tmp, nu);
            m->w = a->wsum * (double)nu / (double)gr->npix;
            m->active = 1;
        }
        for (int q = 0; q < gr->nmem; q++)
            free(gr->acc[q].d);
        free(gr->bits);
        free(gr->mem);
        free(gr->acc);
        free(gr->pix);
    }
    bm->ngrp = 0;
    for (long k = 0; k < bm->hcap; k++)
        bm->htab[k] = -1;
    bm->next_cell_row0 += nrows;
    return status;
}

static uint64_t group_hash(long cx, const uint64_t *bits, size_t nw)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)cx;
    for (size_t i = 0; i < nw; i++) {
        h ^= bits[i] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
    }
    return h;
}

/* The group of (cx, bits), made when new; -1 when out of memory. */
static long group_of(sk_bgmatch *bm, long cx, const uint64_t *bits, const int *who, int k)
{
    uint64_t h = group_hash(cx, bits, bm->nw);
    long slot = (long)(h & (uint64_t)(bm->hcap - 1));
    while (bm->htab[slot] >= 0) {
        cell_group *g = &bm->grp[bm->htab[slot]];
        if (g->cx == cx && memcmp(g->bits, bits, sizeof(uint64_t) * bm->nw) == 0)
            return bm->htab[slot];
        slot = (slot + 1) & (bm->hcap - 1);
    }
    if (bm->ngrp == bm->capgrp) {
        long nc = bm->capgrp ? 2 * bm->capgrp : 64;
        cell_group *ng = realloc(bm->grp, sizeof(cell_group) * (size_t)nc);
        if (!ng)
            return -1;
        bm->grp = ng;
        bm->capgrp = nc;
    }
    cell_group *g = &bm->grp[bm->ngrp];
    memset(g, 0, sizeof *g);
    g->cx = cx;
    g->bits = malloc(sizeof(uint64_t) * bm->nw);
    g->mem = malloc(sizeof(int) * (size_t)k);
    g->acc = calloc((size_t)k, sizeof(cell_acc));
    if (!g->bits || !g->mem || !g->acc) {
        free(g->bits);
        free(g->mem);
        free(g->acc);
        return -1;
    }
    memcpy(g->bits, bits, sizeof(uint64_t) * bm->nw);
    memcpy(g->mem, who, sizeof(int) * (size_t)k);
    g->nmem = k;
    long id = bm->ngrp++;
    bm->htab[slot] = id;
    if (2 * bm->ngrp > bm->hcap) {
        long nc = 2 * bm->hcap;
        long *nt = malloc(sizeof(long) * (size_t)nc);
        if (!nt)
            return -1;
        for (long q = 0; q < nc; q++)
            nt[q] = -1;
        for (long q = 0; q < bm->ngrp; q++) {
            long s2 = (long)(group_hash(bm->grp[q].cx, bm->grp[q].bits, bm->nw) &
                             (uint64_t)(nc - 1));
            while (nt[s2] >= 0)
                s2 = (s2 + 1) & (nc - 1);
            nt[s2] = q;
        }
        free(bm->htab);
        bm->htab = nt;
        bm->hcap = nc;
    }
    return id;
}

int sk_bgmatch_add_rows(sk_bgmatch *bm, const sk_aligned_input *in, long y0, long y1)
{
    if (y0 != bm->next_row)
        return sk_error(SK_EINPUT, "background matching: rows from %ld given, %ld expected", y0,
                        bm->next_row);
    if (y1 <= y0 || y1 > bm->height)
        return sk_error(SK_EINPUT, "background matching: bad rows [%ld, %ld) of %ld", y0, y1,
                        bm->height);
    for (int j = 0; j < bm->n; j++)
        if (in[j].sci && in[j].nrows > 0 &&
            (in[j].row0 > y0 || in[j].row0 + in[j].nrows < y1))
            return sk_error(SK_EINPUT,
                            "background matching: input %d holds rows [%ld, %ld), not [%ld, %ld)",
                            j, in[j].row0, in[j].row0 + in[j].nrows, y0, y1);
    const int n = bm->n;
    const long width = bm->width, cell = bm->o.cell_px;
    float *vals = malloc(sizeof(float) * (size_t)n);
    float *wts = malloc(sizeof(float) * (size_t)n);
    int *who = malloc(sizeof(int) * (size_t)n);
    uint64_t *bits = malloc(sizeof(uint64_t) * bm->nw);
    if (!vals || !wts || !who || !bits) {
        free(vals); free(wts); free(who); free(bits);
        return sk_error(SK_EIO, "background matching: out of memory");
    }
    int status = SK_OK;
    for (long y = y0; y < y1 && !status; y++) {
        for (long x = 0; x < width; x++) {
            int k = 0;
            double rs = 0.0, rw = 0.0;
            memset(bits, 0, sizeof(uint64_t) * bm->nw);
            for (int j = 0; j < n; j++)
                if (sk_cx_usable(&in[j], width, x, y, bm->o.mask_flags)) {
                    size_t i = (size_t)(y - in[j].row0) * (size_t)width + (size_t)x;
                    vals[k] = in[j].sci[i];
                    wts[k] = in[j].weight[i];
                    rs += (double)wts[k] * vals[k];
                    rw += wts[k];
                    bits[j >> 6] |= 1ull << (j & 63);
                    who[k++] = j;
                }
            if (k < 2)
                continue;
            /* The reference: the weighted mean of the inputs usable here
             * (linear, so that the differences keep symmetric noise). */
            double ref = rs / rw;
            long g = group_of(bm, x / cell, bits, who, k);
            if (g < 0) {
                status = sk_error(SK_EIO, "background matching: out of memory");
                break;
            }
            cell_group *gr = &bm->grp[g];
            long pix = (y - bm->next_cell_row0) * width + x;
            bm->refbuf[pix] = (float)ref;
            bm->refok[pix] = 1;
            if (gr->npix == gr->cap) {
                long nc = gr->cap ? 2 * gr->cap : 256;
                long *np = realloc(gr->pix, sizeof(long) * (size_t)nc);
                if (!np) {
                    status = sk_error(SK_EIO, "background matching: out of memory");
                    break;
                }
                gr->pix = np;
                gr->cap = nc;
            }
            gr->pix[gr->npix++] = pix;
            for (int q = 0; q < k; q++) {
                cell_acc *a = &gr->acc[q];
                if (a->n == a->cap) {
                    long nc = a->cap ? 2 * a->cap : 256;
                    float *nd = realloc(a->d, sizeof(float) * (size_t)nc);
                    if (!nd) {
                        status = sk_error(SK_EIO, "background matching: out of memory");
                        break;
                    }
                    a->d = nd;
                    a->cap = nc;
                }
                a->d[a->n++] = (float)(vals[q] - ref);
                a->wsum += wts[q];
            }
            if (status)
                break;
        }
        if (!status && ((y + 1) % cell == 0 || y + 1 == bm->height))
            status = flush_cell_row(bm, y + 1 - bm->next_cell_row0);
    }
    free(vals); free(wts); free(who); free(bits);
    if (!status)
        bm->next_row = y1;
    return status;
}

static int uf_find(int *p, int a)
{
    while (p[a] != a) {
        p[a] = p[p[a]];
        a = p[a];
    }
    return a;
}

static int cmp_meas_cell(const void *a, const void *b)
{
    const bg_meas *x = a, *y = b;
    if (x->cell != y->cell)
        return x->cell < y->cell ? -1 : 1;
    return x->j < y->j ? -1 : (x->j > y->j);
}

static inline void basis(const sk_bgmatch *bm, double x, double y, double *f)
{
    f[0] = 1.0;
    if (bm->npar == 3) {
        f[1] = x;
        f[2] = y;
    }
}

/* The work arrays of one solve: normal matrix a (m x m), right side b,
 * normalised residuals z, and the union-find of overlapping inputs. */
typedef struct bg_solve {
    int n, np, m;
    double *a, *b, *z;
    int *parent, *inany;
} bg_solve;

/* The normal equations of the measurements [s, e) of one cell, with the
 * cell's level eliminated; their inputs joined as overlapping. */
static void cell_equations(const sk_bgmatch *bm, bg_solve *S, long s, long e)
{
    const int np = S->np, m = S->m;
    double wc = 0.0;
    int cnt = 0;
    for (long q = s; q < e; q++)
        if (bm->meas[q].active) {
            wc += bm->meas[q].w;
            cnt++;
        }
    if (!(cnt >= 2 && wc > 0.0))
        return;
    int first = -1;
    for (long q = s; q < e; q++) {
        const bg_meas *mq = &bm->meas[q];
        if (!mq->active)
            continue;
        S->inany[mq->j] = 1;
        if (first < 0)
            first = mq->j;
        else
            S->parent[uf_find(S->parent, mq->j)] = uf_find(S->parent, first);
        double fq[3];
        basis(bm, mq->x, mq->y, fq);
        for (long r = s; r < e; r++) {
            const bg_meas *mr = &bm->meas[r];
            if (!mr->active)
                continue;
            double fr[3];
            basis(bm, mr->x, mr->y, fr);
            double mjk = (q == r ? mq->w : 0.0) - mq->w * mr->w / wc;
            for (int u = 0; u < np; u++) {
                S->b[mq->j * np + u] += mjk * mr->m * fq[u];
                for (int v = 0; v < np; v++)
                    S->a[(mq->j * np + u) * m + mr->j * np + v] += mjk * fq[u] * fr[v];
            }
        }
    }
}

/* Anchor each group of overlapping inputs to a zero mean; pin the inputs
 * that overlap nothing; a small ridge for directions the overlaps do not
 * constrain (a gradient across a thin strip). */
static void anchor_groups(bg_solve *S)
{
    const int n = S->n, np = S->np, m = S->m;
    double *a = S->a, *b = S->b;
    double tr = 0.0;
    for (int i = 0; i < m; i++)
        tr += a[i * m + i];
    double mu = tr > 0.0 ? tr / m : 1.0;
    for (int j = 0; j < n; j++)
        for (int k = 0; k < n; k++)
            if (S->inany[j] && S->inany[k] && uf_find(S->parent, j) == uf_find(S->parent, k))
                for (int u = 0; u < np; u++)
                    a[(j * np + u) * m + k * np + u] += mu;
    for (int j = 0; j < n; j++)
        for (int u = 0; u < np; u++) {
            if (!S->inany[j]) {
                a[(j * np + u) * m + j * np + u] = 1.0;
                b[j * np + u] = 0.0;
            } else {
                a[(j * np + u) * m + j * np + u] += 1e-9 * mu;
            }
        }
}

/* The fitted offset of measurement q. */
static double meas_offset(const sk_bgmatch *bm, const bg_meas *mq)
{
    double f[3];
    basis(bm, mq->x, mq->y, f);
    double o = 0.0;
    for (int u = 0; u < bm->npar; u++)
        o += bm->theta[mq->j * bm->npar + u] * f[u];
    return o;
}

/* Normalised residuals z against the fit (cell levels re-estimated). */
static void fit_residuals(const sk_bgmatch *bm, double *z)
{
    for (long s = 0; s < bm->nmeas;) {
        long e = s;
        while (e < bm->nmeas && bm->meas[e].cell == bm->meas[s].cell)
            e++;
        double wc = 0.0, lev = 0.0;
        for (long q = s; q < e; q++)
            if (bm->meas[q].active) {
                double o = meas_offset(bm, &bm->meas[q]);
                lev += bm->meas[q].w * (bm->meas[q].m - o);
                wc += bm->meas[q].w;
            }
        if (wc > 0.0)
            lev /= wc;
        for (long q = s; q < e; q++) {
            const bg_meas *mq = &bm->meas[q];
            double o = meas_offset(bm, mq);
            z[q] = (e - s >= 2 && wc > 0.0) ? (mq->m - o - lev) * sqrt(mq->w) : NAN;
        }
        s = e;
    }
}

/* Measurements beyond clip_sigma robust sigmas of the residuals made
 * inactive, those within active again; *changed when any moved. */
static int clip_measurements(sk_bgmatch *bm, const double *z, int *changed)
{
    *changed = 0;
    long nz = 0;
    double *az = malloc(sizeof(double) * (size_t)(bm->nmeas ? bm->nmeas : 1));
    if (!az)
        return sk_error(SK_EIO, "background matching: out of memory");
    for (long q = 0; q < bm->nmeas; q++)
        if (bm->meas[q].active && isfinite(z[q]))
            az[nz++] = fabs(z[q]);
    if (nz >= 3) {
        double sig = SK_MAD_TO_SIGMA * sk_median_double(az, nz);
        for (long q = 0; q < bm->nmeas; q++) {
            if (!isfinite(z[q]))
                continue;
            int act = sig > 0.0 ? fabs(z[q]) <= bm->o.clip_sigma * sig : 1;
            if (act != bm->meas[q].active) {
                bm->meas[q].active = act;
                *changed = 1;
            }
        }
    }
    free(az);
    return SK_OK;
}

/* One pass: the normal equations, their solution into theta, the clip;
 * *changed when the clip moved a measurement. */
static int solve_pass(sk_bgmatch *bm, bg_solve *S, int *changed)
{
    const int m = S->m;
    memset(S->a, 0, sizeof(double) * (size_t)m * (size_t)m);
    memset(S->b, 0, sizeof(double) * (size_t)m);
    for (int j = 0; j < S->n; j++) {
        S->parent[j] = j;
        S->inany[j] = 0;
    }
    for (long s = 0; s < bm->nmeas;) {
        long e = s;
        while (e < bm->nmeas && bm->meas[e].cell == bm->meas[s].cell)
            e++;
        cell_equations(bm, S, s, e);
        s = e;
    }
    anchor_groups(S);
    if (sk_cholesky_solve(S->a, S->b, m, 1, 0.0))
        return sk_error(SK_EINPUT, "background matching: the offsets are not determined");
    memcpy(bm->theta, S->b, sizeof(double) * (size_t)m);
    fit_residuals(bm, S->z);
    return clip_measurements(bm, S->z, changed);
}

/* Cells with at least two active measurements, per input. */
static void count_cells(sk_bgmatch *bm)
{
    for (int j = 0; j < bm->n; j++)
        bm->ncells[j] = 0;
    for (long s = 0; s < bm->nmeas;) {
        long e = s;
        int cnt = 0;
        while (e < bm->nmeas && bm->meas[e].cell == bm->meas[s].cell)
            cnt += bm->meas[e++].active;
        if (cnt >= 2)
            for (long q = s; q < e; q++)
                if (bm->meas[q].active)
                    bm->ncells[bm->meas[q].j]++;
        s = e;
    }
}

int sk_bgmatch_solve(sk_bgmatch *bm)
{
    if (bm->next_row != bm->height)
        return sk_error(SK_EINPUT, "background matching: rows [%ld, %ld) were not given",
                        bm->next_row, bm->height);
    bg_solve S;
    S.n = bm->n;
    S.np = bm->npar;
    S.m = S.n * S.np;
    qsort(bm->meas, (size_t)bm->nmeas, sizeof(bg_meas), cmp_meas_cell);
    S.a = malloc(sizeof(double) * (size_t)S.m * (size_t)S.m);
    S.b = malloc(sizeof(double) * (size_t)S.m);
    S.z = malloc(sizeof(double) * (size_t)(bm->nmeas ? bm->nmeas : 1));
    S.parent = malloc(sizeof(int) * (size_t)S.n);
    S.inany = malloc(sizeof(int) * (size_t)S.n);
    int status = SK_OK;
    if (!S.a || !S.b || !S.z || !S.parent || !S.inany)
        status = sk_error(SK_EIO, "background matching: out of memory for %d inputs", S.n);
    for (int it = 0; !status && it < bm->o.iterations; it++) {
        int changed = 0;
        status = solve_pass(bm, &S, &changed);
        if (!changed)
            break;
    }
    if (!status) {
        count_cells(bm);
        bm->solved = 1;
    }
    free(S.a); free(S.b); free(S.z); free(S.parent); free(S.inany);
    return status;
}

double sk_bgmatch_offset(const sk_bgmatch *bm, int j, double x_px, double y_px)
{
    if (j < 0 || j >= bm->n || !bm->solved)
        return 0.0;
    const double *t = bm->theta + j * bm->npar;
    if (bm->npar == 1)
        return t[0];
    return t[0] + t[1] * (x_px - bm->xc) / bm->hx + t[2] * (y_px - bm->yc) / bm->hy;
}

void sk_bgmatch_plane(const sk_bgmatch *bm, int j, double *at_centre, double *d_dx, double *d_dy)
{
    *at_centre = *d_dx = *d_dy = 0.0;
    if (j < 0 || j >= bm->n || !bm->solved)
        return;
    const double *t = bm->theta + j * bm->npar;
    *at_centre = t[0];
    if (bm->npar == 3) {
        *d_dx = t[1] / bm->hx;
        *d_dy = t[2] / bm->hy;
    }
}

long sk_bgmatch_ncells(const sk_bgmatch *bm, int j)
{
    return j >= 0 && j < bm->n ? bm->ncells[j] : 0;
}

void sk_bgmatch_apply_rows(const sk_bgmatch *bm, int j, long y0, long y1, float *sci)
{
    if (j < 0 || j >= bm->n || !bm->solved)
        return;
    for (long y = y0; y < y1; y++) {
        float *row = sci + (size_t)(y - y0) * (size_t)bm->width;
        for (long x = 0; x < bm->width; x++)
            row[x] -= (float)sk_bgmatch_offset(bm, j, (double)x, (double)y);
    }
}

int sk_bgmatch_write_header(const sk_bgmatch *bm, sk_header *h)
{
    int st = sk_header_set_bool(h, "BGMATCH", 1, "input backgrounds matched (bgmatch)");
    if (!st)
        st = sk_header_set_long(h, "BGDEG", bm->npar == 1 ? 0 : 1,
                                "background offsets: 0 constant, 1 plane");
    for (int j = 0; j < bm->n && !st; j++) {
        char key[32];
        double c, dx, dy;
        sk_bgmatch_plane(bm, j, &c, &dx, &dy);
        snprintf(key, sizeof key, "BGOFF%d", j + 1);
        st = sk_header_set_double(h, key, c, "background offset subtracted at grid centre");
        if (!st && bm->npar == 3) {
            snprintf(key, sizeof key, "BGDX%d", j + 1);
            st = sk_header_set_double(h, key, dx, "background offset gradient per pixel in x");
            if (!st) {
                snprintf(key, sizeof key, "BGDY%d", j + 1);
                st = sk_header_set_double(h, key, dy, "background offset gradient per pixel in y");
            }
        }
    }
    return st;
}

void sk_bgmatch_log(const sk_bgmatch *bm)
{
    for (int j = 0; j < bm->n; j++) {
        double c, dx, dy;
        sk_bgmatch_plane(bm, j, &c, &dx, &dy);
        if (bm->ncells[j] == 0)
            sk_info("background match: input %d overlaps no other input, no offset", j + 1);
        else if (bm->npar == 1)
            sk_info("background match: input %d offset %.6g (%ld cells)", j + 1, c,
                    bm->ncells[j]);
        else
            sk_info("background match: input %d offset %.6g at the centre, gradient %.4g, %.4g "
                    "per pixel (%ld cells)", j + 1, c, dx, dy, bm->ncells[j]);
    }
}
