/* artifact.c: per-input masks of artifacts (cosmic rays, satellite trails, ghosts) from connected residual footprints against a reference coadd that appear in only a minority of the inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "aligned_priv.h"
#include "core/parallel.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/image.h"
#include "coaddx_internal.h"
#include "core/vectorise.h"

void sk_artifact_opts_default(sk_artifact_opts *o)
{
    memset(o, 0, sizeof *o);
    o->detect_sigma = 5.0;
    o->grow_sigma = 2.5;
    o->grow_px = 2;
    o->max_fraction = 0.5;
    o->mismatch = 0.05;
    o->core_mismatch = 0.1;
    o->core_snr = 30.0;
    o->psf_size = 31;
    o->match_regularization = 0.02;
    o->mask_flags = SK_COADDX_MASK_DEFAULT;
    o->threads = 0;
}

typedef struct art_fp {
    double peak;
    long x0, y0, x1, y1;     /* bounding box, inclusive */
    long r0, nr;             /* its runs */
    int dropped;
} art_fp;

typedef struct art_ctx {
    const sk_aligned_input *in;
    int n;
    long width, height;
    const float *csci, *cwgt;
    sk_artifact_opts o;
    uint8_t *core;
    float **res, **vn;       /* per input: residual and its noise variance
                                (0: unusable); NULL with a scratch file */
    sk_cx_spill *sp;         /* the inputs' planes and the residuals in a
                                scratch file (in[] then holds no rows) */
    sk_cx_planes gpl;        /* with sp: rows of one input for gather_masks */
    double *fmis;            /* per input: the PSF-error fraction, raised by
                                how imperfectly the reference was matched */
    /* results per input: the footprints to mask, each with its peak SNR,
     * bounding box and runs (grown by grow_px) */
    art_fp **fps;
    long *nfps;
    sk_artifact_run **runs;
    long *nruns, *nprot;
} art_ctx;

/* A thread's planes over the whole grid: eight floats and three bytes per
 * pixel. Planes that are dead at a step hold another step's values: with a
 * scratch file, input j's weight, residual and noise are read into zs, tmp
 * and svn (residual_maps reads them before anything is written there), and
 * smoothed_snr keeps its 5x5 sums of C+ and C in vn and r. */
typedef struct art_ws {
    float *r, *vn, *cp, *cc;       /* residual, its noise variance, C+ and C */
    float *z, *zs;                 /* SNR of the residual and of its 5x5 mean */
    float *tmp, *svn;              /* 5x5 sums */
    uint8_t *valid, *visited, *masked;
    long *stack, *fp;
    long cap_stack, cap_fp;
    /* with a scratch file: input j's weight, residual and noise (aliases
     * of zs, tmp, svn), and the bounding box of a footprint in another
     * input's residual planes */
    float *jwgt, *jres, *jvn, *boxr, *boxv;
    size_t boxcap;
} art_ws;

static void ws_free(art_ws *w)
{
    free(w->r); free(w->vn); free(w->cp); free(w->cc); free(w->z); free(w->zs);
    free(w->tmp); free(w->svn);
    free(w->valid); free(w->visited); free(w->masked);
    free(w->stack); free(w->fp);
    free(w->boxr); free(w->boxv);
    memset(w, 0, sizeof *w);
}

static int ws_init(art_ws *w, size_t npix, int spilled)
{
    memset(w, 0, sizeof *w);
    w->r = malloc(sizeof(float) * npix);
    w->vn = malloc(sizeof(float) * npix);
    w->cp = malloc(sizeof(float) * npix);
    w->cc = malloc(sizeof(float) * npix);
    w->z = malloc(sizeof(float) * npix);
    w->zs = malloc(sizeof(float) * npix);
    w->tmp = malloc(sizeof(float) * npix);
    w->svn = malloc(sizeof(float) * npix);
    w->valid = malloc(npix);
    w->visited = malloc(npix);
    w->masked = malloc(npix);
    if (spilled) {
        w->jwgt = w->zs;
        w->jres = w->tmp;
        w->jvn = w->svn;
    }
    if (!w->r || !w->vn || !w->cp || !w->cc || !w->z || !w->zs || !w->tmp || !w->svn ||
        !w->valid || !w->visited || !w->masked) {
        ws_free(w);
        return sk_error(SK_EIO, "artifacts: out of memory for %zu pixels", npix);
    }
    return SK_OK;
}

static int push(long **arr, long *n, long *cap, long v)
{
    if (*n == *cap) {
        long nc = *cap ? 2 * *cap : 1024;
        long *na = realloc(*arr, sizeof(long) * (size_t)nc);
        if (!na)
            return -1;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

/* Residual of input k at pixel i of the grid and its variance (noise, the
 * source's own noise and the mismatch term), with its residual planes r
 * and v at index ir; 0 when unusable. */
static inline int residual_at(const art_ctx *c, int k, const float *r, const float *v, size_t ir,
                              size_t i, double *res, double *var)
{
    double vn = v[ir];
    if (!(vn > 0.0))
        return 0;
    double cv = c->csci[i], f = c->core[i] ? c->o.core_mismatch : 0.0;
    if (c->fmis[k] > f)
        f = c->fmis[k];
    *res = r[ir];
    *var = vn + c->in[k].poisson * (cv > 0.0 ? cv : 0.0) + (f * cv) * (f * cv);
    return 1;
}

/* Box sum of 5 along rows then columns: out = sum over the 5x5 square
 * (each sum in double, its terms added in order of position; the middle
 * of each row and the middle rows as loops for the vectoriser, hence -O3
 * here whatever the build's level: element-wise, so the same sums). */
SK_VECTORISE
static void box5(const float *restrict in, float *restrict tmp, float *restrict out, long w,
                 long h)
{
    for (long y = 0; y < h; y++) {
        const float *restrict row = in + y * w;
        float *restrict t = tmp + y * w;
        for (long x = 0; x < w; x++) {
            if (x == 2 && w > 4) {
                for (; x < w - 2; x++) {
                    double s = 0.0;
                    s += row[x - 2];
                    s += row[x - 1];
                    s += row[x];
                    s += row[x + 1];
                    s += row[x + 2];
                    t[x] = (float)s;
                }
                if (x >= w)
                    break;
            }
            double s = 0.0;
            for (long k = x - 2; k <= x + 2; k++)
                if (k >= 0 && k < w)
                    s += row[k];
            t[x] = (float)s;
        }
    }
    for (long y = 0; y < h; y++) {
        float *restrict o = out + y * w;
        if (y >= 2 && y + 2 < h) {
            const float *restrict t0 = tmp + (y - 2) * w, *restrict t1 = t0 + w,
                              *restrict t2 = t1 + w, *restrict t3 = t2 + w,
                              *restrict t4 = t3 + w;
            for (long x = 0; x < w; x++) {
                double s = 0.0;
                s += t0[x];
                s += t1[x];
                s += t2[x];
                s += t3[x];
                s += t4[x];
                o[x] = (float)s;
            }
            continue;
        }
        for (long x = 0; x < w; x++) {
            double s = 0.0;
            for (long k = y - 2; k <= y + 2; k++)
                if (k >= 0 && k < h)
                    s += tmp[k * w + x];
            o[x] = (float)s;
        }
    }
}

/* Residual, its noise, SNR and source terms of input j at every pixel. */
static void residual_maps(const art_ctx *c, art_ws *w, int j)
{
    const long width = c->width, height = c->height;
    const float *wj = c->sp ? w->jwgt : c->in[j].weight;
    const float *rj = c->sp ? w->jres : c->res[j], *vj = c->sp ? w->jvn : c->vn[j];
    for (long y = 0; y < height; y++)
        for (long x = 0; x < width; x++) {
            size_t i = (size_t)y * (size_t)width + (size_t)x;
            double res, var;
            if (residual_at(c, j, rj, vj, i, i, &res, &var)) {
                w->valid[i] = 1;
                w->r[i] = (float)res;
                /* the 5x5 sum's noise: the reference's pixels before any
                 * convolution (its large-scale variance) */
                w->vn[i] = (float)(1.0 / wj[i] + 1.0 / c->cwgt[i]);
                w->z[i] = (float)(res / sqrt(var));
                double cv = c->csci[i];
                w->cp[i] = (float)(cv > 0.0 ? cv : 0.0);
                double fm = c->core[i] ? c->o.core_mismatch : 0.0;
                if (c->fmis[j] > fm)
                    fm = c->fmis[j];
                w->cc[i] = (float)(fm * cv);
            } else {
                w->valid[i] = 0;
                w->r[i] = w->vn[i] = w->z[i] = w->cp[i] = w->cc[i] = 0.0f;
            }
        }
}

/* The 5x5 sum of the residual and its SNR: noise variances add, the
 * source terms as for one pixel (the mismatch term is coherent). */
static void smoothed_snr(const art_ctx *c, art_ws *w, int j)
{
    const long width = c->width, height = c->height;
    const size_t npix = (size_t)width * (size_t)height;
    const sk_aligned_input *in = &c->in[j];
    box5(w->r, w->tmp, w->zs, width, height);
    box5(w->vn, w->tmp, w->svn, width, height);
    /* the sums of C+ and C into the planes of r and vn, summed above */
    float *scp = w->vn, *sc = w->r;
    box5(w->cp, w->tmp, scp, width, height);
    box5(w->cc, w->tmp, sc, width, height);
    for (size_t i = 0; i < npix; i++) {
        double var = w->svn[i] + in->poisson * scp[i] + (double)sc[i] * sc[i];
        w->zs[i] = var > 0.0 ? (float)(w->zs[i] / sqrt(var)) : 0.0f;
    }
    /* Fewer than half the 5x5 pixels usable: no smoothed detection. */
    for (size_t i = 0; i < npix; i++)
        w->cp[i] = (float)w->valid[i];
    box5(w->cp, w->tmp, w->svn, width, height);
    for (size_t i = 0; i < npix; i++)
        if (w->svn[i] < 12.5f)
            w->zs[i] = 0.0f;
}

/* Grow the footprint from seed s: 8-connected pixels above the growth
 * level, into w->fp[0..*nfp). */
static int grow_footprint(const art_ctx *c, art_ws *w, long s, long *nfp)
{
    const long width = c->width, height = c->height;
    const double G = c->o.grow_sigma;
    long nst = 0;
    *nfp = 0;
    if (push(&w->stack, &nst, &w->cap_stack, s))
        return sk_error(SK_EIO, "artifacts: out of memory");
    w->visited[s] = 1;
    while (nst > 0) {
        long p = w->stack[--nst];
        if (push(&w->fp, nfp, &w->cap_fp, p))
            return sk_error(SK_EIO, "artifacts: out of memory");
        long px = p % width, py = p / width;
        for (long dy = -1; dy <= 1; dy++)
            for (long dx = -1; dx <= 1; dx++) {
                long xx = px + dx, yy = py + dy;
                if (xx < 0 || yy < 0 || xx >= width || yy >= height)
                    continue;
                long q = yy * width + xx;
                if (w->visited[q] || !w->valid[q] || !(w->z[q] > G || w->zs[q] > G))
                    continue;
                w->visited[q] = 1;
                if (push(&w->stack, &nst, &w->cap_stack, q))
                    return sk_error(SK_EIO, "artifacts: out of memory");
            }
    }
    return SK_OK;
}

/* The footprint is significant in more than max_fraction of the inputs
 * that cover it: a real (variable) source, protected. */
static int footprint_protected(const art_ctx *c, art_ws *w, int j, long nfp, int *prot)
{
    const long width = c->width;
    const double T = c->o.detect_sigma;
    int ncov = 1, nsig = 1;
    long bx0 = width, by0 = c->height, bx1 = -1, by1 = -1;
    for (long q = 0; c->sp && q < nfp; q++) {
        long px = w->fp[q] % width, py = w->fp[q] / width;
        if (px < bx0) bx0 = px;
        if (px > bx1) bx1 = px;
        if (py < by0) by0 = py;
        if (py > by1) by1 = py;
    }
    long bw = bx1 - bx0 + 1;
    if (c->sp) {
        size_t nb = (size_t)bw * (size_t)(by1 - by0 + 1);
        if (w->boxcap < nb) {
            free(w->boxr);
            free(w->boxv);
            w->boxr = malloc(sizeof(float) * nb);
            w->boxv = malloc(sizeof(float) * nb);
            w->boxcap = w->boxr && w->boxv ? nb : 0;
            if (!w->boxcap)
                return sk_error(SK_EIO, "artifacts: out of memory");
        }
    }
    for (int k = 0; k < c->n; k++) {
        if (k == j)
            continue;
        const float *rk = c->sp ? w->boxr : c->res[k], *vk = c->sp ? w->boxv : c->vn[k];
        if (c->sp) {
            int st = sk_cx_spill_get_box(c->sp, k, SK_CX_RES, bx0, by0, bw, by1 - by0 + 1, w->boxr);
            st = st ? st : sk_cx_spill_get_box(c->sp, k, SK_CX_VN, bx0, by0, bw, by1 - by0 + 1,
                                               w->boxv);
            if (st)
                return st;
        }
        double sr2 = 0.0, sv = 0.0;
        long nc = 0;
        for (long q = 0; q < nfp; q++) {
            double res, var;
            size_t i = (size_t)w->fp[q];
            size_t ir = c->sp ? (size_t)((long)i / width - by0) * (size_t)bw +
                                    (size_t)((long)i % width - bx0)
                              : i;
            if (residual_at(c, k, rk, vk, ir, i, &res, &var)) {
                sr2 += res;
                sv += var;
                nc++;
            }
        }
        if (2 * nc < nfp || !(sv > 0.0))
            continue;
        ncov++;
        if (sr2 / sqrt(sv) > T)
            nsig++;
    }
    *prot = (double)nsig > c->o.max_fraction * (double)ncov;
    return SK_OK;
}

/* The footprints and runs of one input as they are recorded. */
typedef struct art_found {
    art_fp *fps;
    long nf, capf;
    sk_artifact_run *runs;
    long nr, capr;
} art_found;

static int add_run(art_found *a, int j, long y, long x0, long x1)
{
    if (a->nr == a->capr) {
        long ncap = a->capr ? 2 * a->capr : 64;
        sk_artifact_run *nrun = realloc(a->runs, sizeof *a->runs * (size_t)ncap);
        if (!nrun)
            return sk_error(SK_EIO, "artifacts: out of memory");
        a->runs = nrun;
        a->capr = ncap;
    }
    sk_artifact_run *r = &a->runs[a->nr++];
    r->input = j;
    r->y = y;
    r->x0 = x0;
    r->x1 = x1;
    return SK_OK;
}

/* Record the footprint w->fp[0..nfp), grown by grow_px, as runs. */
static int record_footprint(const art_ctx *c, art_ws *w, int j, long nfp, art_found *a)
{
    const long width = c->width, height = c->height;
    long g = c->o.grow_px;
    double peak = 0.0;
    long bx0 = width, by0 = height, bx1 = -1, by1 = -1;
    for (long q = 0; q < nfp; q++) {
        long p = w->fp[q], px = p % width, py = p / width;
        double zz = w->z[p] > w->zs[p] ? w->z[p] : w->zs[p];
        if (zz > peak) peak = zz;
        if (px < bx0) bx0 = px;
        if (px > bx1) bx1 = px;
        if (py < by0) by0 = py;
        if (py > by1) by1 = py;
    }
    bx0 = bx0 - g < 0 ? 0 : bx0 - g;
    by0 = by0 - g < 0 ? 0 : by0 - g;
    bx1 = bx1 + g >= width ? width - 1 : bx1 + g;
    by1 = by1 + g >= height ? height - 1 : by1 + g;
    for (long q = 0; q < nfp; q++) {
        long px = w->fp[q] % width, py = w->fp[q] / width;
        for (long yy = py - g; yy <= py + g; yy++)
            for (long xx = px - g; xx <= px + g; xx++)
                if (xx >= 0 && yy >= 0 && xx < width && yy < height)
                    w->masked[yy * width + xx] = 1;
    }
    if (a->nf == a->capf) {
        long ncap = a->capf ? 2 * a->capf : 16;
        art_fp *nfpa = realloc(a->fps, sizeof *a->fps * (size_t)ncap);
        if (!nfpa)
            return sk_error(SK_EIO, "artifacts: out of memory");
        a->fps = nfpa;
        a->capf = ncap;
    }
    art_fp *f = &a->fps[a->nf++];
    f->peak = peak;
    f->x0 = bx0;
    f->y0 = by0;
    f->x1 = bx1;
    f->y1 = by1;
    f->r0 = a->nr;
    f->dropped = 0;
    for (long yy = by0; yy <= by1; yy++) {
        long xx = bx0;
        while (xx <= bx1) {
            if (!w->masked[yy * width + xx]) {
                xx++;
                continue;
            }
            long xs = xx;
            while (xx <= bx1 && w->masked[yy * width + xx]) {
                w->masked[yy * width + xx] = 0;
                xx++;
            }
            int status = add_run(a, j, yy, xs, xx);
            if (status)
                return status;
        }
    }
    f->nr = a->nr - f->r0;
    return SK_OK;
}

static int process_input(art_ctx *c, art_ws *w, int j)
{
    const size_t npix = (size_t)c->width * (size_t)c->height;
    const double T = c->o.detect_sigma;
    if (c->sp) {
        int st = sk_cx_spill_get(c->sp, j, SK_CX_WGT, 0, c->height, w->jwgt);
        st = st ? st : sk_cx_spill_get(c->sp, j, SK_CX_RES, 0, c->height, w->jres);
        st = st ? st : sk_cx_spill_get(c->sp, j, SK_CX_VN, 0, c->height, w->jvn);
        if (st)
            return st;
    }
    residual_maps(c, w, j);
    smoothed_snr(c, w, j);
    memset(w->visited, 0, npix);
    memset(w->masked, 0, npix);
    long nprot = 0;
    art_found a;
    memset(&a, 0, sizeof a);
    for (size_t s = 0; s < npix; s++) {
        if (w->visited[s] || !w->valid[s] || !(w->z[s] > T || w->zs[s] > T))
            continue;
        long nfp = 0;
        int prot = 0;
        int status = grow_footprint(c, w, (long)s, &nfp);
        if (!status)
            status = footprint_protected(c, w, j, nfp, &prot);
        if (!status && prot) {
            nprot++;
            continue;
        }
        if (!status)
            status = record_footprint(c, w, j, nfp, &a);
        if (status) {
            free(a.fps);
            free(a.runs);
            return status;
        }
    }
    c->fps[j] = a.fps;
    c->nfps[j] = a.nf;
    c->runs[j] = a.runs;
    c->nruns[j] = a.nr;
    c->nprot[j] = nprot;
    return SK_OK;
}

/* Each thread's workspace, and the inputs [j0, j1) processed with it. */
static int art_ws_init(void *w, void *user)
{
    const art_ctx *c = user;
    return ws_init(w, (size_t)c->width * (size_t)c->height, c->sp != NULL);
}

static void art_ws_release(void *w, void *user)
{
    ws_free(w);
}

static int art_inputs(void *w, long j0, long j1, void *user)
{
    for (long j = j0; j < j1; j++) {
        int status = process_input(user, w, (int)j);
        if (status)
            return status;
    }
    return SK_OK;
}

/* Input j's residual res and its noise variance vn against the reference
 * without its PSF: the plain difference (see residual_planes). */
static void residual_plain(const art_ctx *c, const sk_aligned_input *in, float *res, float *vn)
{
    const long width = c->width, height = c->height;
    for (long y = 0; y < height; y++)
        for (long x = 0; x < width; x++) {
            size_t i = (size_t)y * (size_t)width + (size_t)x;
            if (!(c->cwgt[i] > 0.0f) || !sk_cx_usable(in, width, x, y, c->o.mask_flags)) {
                res[i] = 0.0f;
                vn[i] = 0.0f;
                continue;
            }
            double wj = in->weight[i], wc = c->cwgt[i];
            double v = 1.0 / wj - 1.0 / wc;
            res[i] = in->sci[i] - c->csci[i];
            vn[i] = (float)(v > 0.25 / wj ? v : 0.25 / wj);
        }
}

/* Residual rows [y0, y1) of input j against the reference matched to its
 * PSF (mref, mw: the matched science and weight of those rows) into res
 * and vn (rows from y0), `in` holding those rows; where the matched
 * reference has no weight, the plain difference (see residual_planes). */
static void residual_rows(const art_ctx *c, const sk_aligned_input *in, long y0, long y1,
                          const float *mref, const float *mw, float *res, float *vn)
{
    const long width = c->width;
    for (long y = y0; y < y1; y++)
        for (long x = 0; x < width; x++) {
            size_t i = (size_t)y * (size_t)width + (size_t)x;
            size_t b = (size_t)(y - y0) * (size_t)width + (size_t)x;
            if (!(c->cwgt[i] > 0.0f) || !sk_cx_usable(in, width, x, y, c->o.mask_flags)) {
                res[b] = 0.0f;
                vn[b] = 0.0f;
                continue;
            }
            size_t ii = (size_t)(y - in->row0) * (size_t)width + (size_t)x;
            double wj = in->weight[ii], wc = c->cwgt[i];
            if (mw[b] > 0.0f) {
                res[b] = in->sci[ii] - mref[b];
                vn[b] = (float)(1.0 / wj + 1.0 / mw[b]);
            } else {
                double v = 1.0 / wj - 1.0 / wc;
                res[b] = in->sci[ii] - c->csci[i];
                vn[b] = (float)(v > 0.25 / wj ? v : 0.25 / wj);
            }
        }
}

/* The reference (input 0 of `all`, then the n inputs) matched to the PSFs
 * of inputs: the options of the matching. */
static void match_opts(const art_ctx *c, sk_psfmatch_opts *po)
{
    sk_psfmatch_opts_default(po);
    po->psf_size = c->o.psf_size;
    po->threads = c->o.threads;
    po->mask_flags = c->o.mask_flags;
    po->regularization = c->o.match_regularization;
    po->contamination = 0.5;
}

/* The reference's match error to each input's PSF into fmis. */
static int match_errors(art_ctx *c, sk_aligned_input *all)
{
    sk_psfmatch_opts po;
    match_opts(c, &po);
    sk_psf_target t;
    memset(&t, 0, sizeof t);
    t.kind = SK_TARGET_INPUT;
    t.input = 1;
    int status = SK_OK;
    for (int j = 0; !status && j < c->n; j++) {
        sk_aligned_input pair[2] = {all[0], all[1 + j]};
        sk_psfmatch *pm = NULL;
        status = sk_psfmatch_new(pair, 2, c->width, c->height, &t, &po, &pm);
        if (!status)
            c->fmis[j] = c->o.mismatch + sk_psfmatch_match_error(pm, 0);
        sk_psfmatch_free(pm);
        if (status)
            sk_error_context("artifacts: matching the reference to input %d", j);
    }
    return status;
}

/* Band buffers of matched_residuals: the matched planes of a group of
 * inputs, band rows each. */
typedef struct match_bufs {
    float **mref, **mw;
    int *targets;
    int group;
} match_bufs;

static void match_bufs_free(match_bufs *m)
{
    for (int i = 0; i < m->group; i++) {
        if (m->mref)
            free(m->mref[i]);
        if (m->mw)
            free(m->mw[i]);
    }
    free(m->mref);
    free(m->mw);
    free(m->targets);
}

static int match_bufs_init(match_bufs *m, int group, size_t nb)
{
    memset(m, 0, sizeof *m);
    m->group = group;
    m->mref = calloc((size_t)group, sizeof *m->mref);
    m->mw = calloc((size_t)group, sizeof *m->mw);
    m->targets = malloc(sizeof(int) * (size_t)group);
    int ok = m->mref && m->mw && m->targets;
    for (int i = 0; ok && i < group; i++) {
        m->mref[i] = malloc(sizeof(float) * nb);
        m->mw[i] = malloc(sizeof(float) * nb);
        ok = m->mref[i] && m->mw[i];
    }
    return ok ? SK_OK : sk_error(SK_EIO, "artifacts: out of memory");
}

/* The residuals of a group of inputs over rows [y0, y1), the inputs on the
 * threads, each thread with its own rows of an input and residual rows
 * (with a scratch file). */
typedef struct resid_job {
    art_ctx *c;
    const match_bufs *mb;
    int g0;
    long y0, y1;
} resid_job;

typedef struct resid_ws {
    sk_cx_planes pl;
    float *res, *vn;
} resid_ws;

static int resid_ws_init(void *ws, void *user)
{
    resid_ws *w = ws;
    const resid_job *job = user;
    if (!job->c->sp)
        return SK_OK;
    size_t nb = (size_t)(job->y1 - job->y0) * (size_t)job->c->width;
    w->res = malloc(sizeof(float) * nb);
    w->vn = malloc(sizeof(float) * nb);
    return w->res && w->vn ? SK_OK : sk_error(SK_EIO, "artifacts: out of memory");
}

static void resid_ws_release(void *ws, void *user)
{
    resid_ws *w = ws;
    sk_cx_planes_free(&w->pl);
    free(w->res);
    free(w->vn);
}

static int resid_inputs(void *ws, long i0, long i1, void *user)
{
    resid_ws *w = ws;
    const resid_job *job = user;
    art_ctx *c = job->c;
    const long y0 = job->y0, y1 = job->y1;
    size_t off = (size_t)y0 * (size_t)c->width;
    int status = SK_OK;
    for (long i = i0; !status && i < i1; i++) {
        int j = job->g0 + (int)i;
        const float *mref = job->mb->mref[i], *mw = job->mb->mw[i];
        if (!c->sp) {
            residual_rows(c, &c->in[j], y0, y1, mref, mw, c->res[j] + off, c->vn[j] + off);
            continue;
        }
        sk_aligned_input view = c->in[j];
        status = sk_cx_planes_read(c->sp, j, y0, y1 - y0, &w->pl, &view);
        if (status)
            break;
        residual_rows(c, &view, y0, y1, mref, mw, w->res, w->vn);
        status = sk_cx_spill_put(c->sp, j, SK_CX_RES, y0, y1 - y0, w->res);
        status = status ? status : sk_cx_spill_put(c->sp, j, SK_CX_VN, y0, y1 - y0, w->vn);
    }
    return status;
}

/* Residual planes of every input against the reference matched to its
 * PSF, band by band of rows of tiles: the reference's tiles in-painted
 * and transformed once for a group of inputs (sk_psfmatch_rows_to_inputs),
 * then each input's rows of the band (from the scratch file, or in memory)
 * compared, the inputs on the threads. The same planes as matching the reference to one input at a
 * time over the whole grid. */
static int matched_residuals(art_ctx *c, sk_aligned_input *all)
{
    const long width = c->width, height = c->height;
    sk_psfmatch_opts po;
    match_opts(c, &po);
    long tile = po.tile_px < height ? po.tile_px : height;
    long band = 2 * tile < height ? 2 * tile : height;
    /* the matched planes of a group: about 16 bytes per output pixel */
    long group = 2 * height / band;
    group = group < 1 ? 1 : group > c->n ? c->n : group;
    sk_psf_target t;
    memset(&t, 0, sizeof t);
    t.kind = SK_TARGET_INPUT;
    t.input = 1;
    sk_psfmatch *pm = NULL;
    match_bufs mb;
    int status = match_bufs_init(&mb, (int)group, (size_t)band * (size_t)width);
    status = status ? status : sk_psfmatch_new(all, c->n + 1, width, height, &t, &po, &pm);
    const sk_scratch ws_ops = {sizeof(resid_ws), resid_ws_init, resid_ws_release};
    for (long y0 = 0; !status && y0 < height; y0 += band) {
        long y1 = y0 + band < height ? y0 + band : height;
        for (int g0 = 0; !status && g0 < c->n; g0 += (int)group) {
            int gn = c->n - g0 < (int)group ? c->n - g0 : (int)group;
            for (int i = 0; i < gn; i++)
                mb.targets[i] = 1 + g0 + i;
            status = sk_psfmatch_rows_to_inputs(pm, 0, mb.targets, gn, y0, y1, mb.mref, mb.mw);
            if (status)
                sk_error_context("artifacts: matching the reference to the inputs");
            resid_job job = {c, &mb, g0, y0, y1};
            if (!status)
                status = sk_parallel_for_scratch(gn, 1, sk_cx_threads(c->o.threads), &ws_ops,
                                                 resid_inputs, &job);
        }
    }
    sk_psfmatch_free(pm);
    match_bufs_free(&mb);
    return status;
}

/* Residual planes of every input against the reference. With the
 * reference's PSF known, the reference is first brought to each input's
 * PSF (psfmatch, the input's PSF as the target): convolved for an input
 * with broader seeing, mildly sharpened (regularised) for a sharper one,
 * so that the comparison keeps the input's own pixels (a cosmic ray stays
 * as sharp as it is) while seeing differences cancel around sources.
 * Pixels the matched reference does not reach (more than half of the
 * kernel's weight on the image's or the reference's missing pixels) fall
 * back to the plain difference (matched_residuals). Without it, the plain
 * difference everywhere; with a scratch file each input is then read
 * from it whole, one at a time, and its residual planes written to it. */
static int residual_planes(art_ctx *c, sk_psf_stamp_fn ref_psf, void *ref_psf_ctx)
{
    if (ref_psf) {
        sk_aligned_input *all = calloc((size_t)c->n + 1, sizeof *all);
        if (!all)
            return sk_error(SK_EIO, "artifacts: out of memory");
        all[0].sci = c->csci;
        all[0].weight = c->cwgt;
        all[0].nrows = c->height;
        all[0].psf = ref_psf;
        all[0].psf_ctx = ref_psf_ctx;
        all[0].flux_scale = 1.0;
        for (int j = 0; j < c->n; j++)
            all[1 + j] = c->in[j];
        int status = match_errors(c, all);
        status = status ? status : matched_residuals(c, all);
        free(all);
        return status;
    }
    const size_t npix = (size_t)c->width * (size_t)c->height;
    float *res = c->sp ? malloc(sizeof(float) * npix) : NULL;
    float *vn = c->sp ? malloc(sizeof(float) * npix) : NULL;
    int status = c->sp && (!res || !vn) ? sk_error(SK_EIO, "artifacts: out of memory") : SK_OK;
    sk_cx_planes pl;
    memset(&pl, 0, sizeof pl);
    for (int j = 0; !status && j < c->n; j++) {
        c->fmis[j] = c->o.mismatch;
        if (!c->sp) {
            residual_plain(c, &c->in[j], c->res[j], c->vn[j]);
            continue;
        }
        sk_aligned_input view = c->in[j];
        status = sk_cx_planes_read(c->sp, j, 0, c->height, &pl, &view);
        if (!status)
            residual_plain(c, &view, res, vn);
        status = status ? status : sk_cx_spill_put(c->sp, j, SK_CX_RES, 0, c->height, res);
        status = status ? status : sk_cx_spill_put(c->sp, j, SK_CX_VN, 0, c->height, vn);
    }
    sk_cx_planes_free(&pl);
    free(res);
    free(vn);
    return status;
}

/* The options and inputs of sk_artifact_find checked. */
static int check_find(const sk_artifact_opts *o, const sk_aligned_input *in, int n, long width,
                      long height, const float *ref_sci, const float *ref_weight, int have_ref_psf,
                      const sk_cx_spill *sp)
{
    if (n < 1)
        return sk_error(SK_EINPUT, "artifacts: no input");
    if (width < 1 || height < 1 || !ref_sci || !ref_weight)
        return sk_error(SK_EINPUT, "artifacts: no reference coadd");
    if (!(o->detect_sigma > 0.0 && o->grow_sigma > 0.0 && o->grow_sigma <= o->detect_sigma))
        return sk_error(SK_EINPUT, "artifacts: thresholds %g (detect) and %g (grow) must be > 0 "
                        "and grow <= detect", o->detect_sigma, o->grow_sigma);
    if (!(o->max_fraction > 0.0 && o->max_fraction < 1.0))
        return sk_error(SK_EINPUT, "artifacts: max fraction %g must be in (0, 1)",
                        o->max_fraction);
    if (o->grow_px < 0 || !(o->mismatch >= 0.0) || !(o->core_mismatch >= 0.0) ||
        !(o->core_snr > 0.0) ||
        o->psf_size < 3 || o->psf_size % 2 == 0 ||
        !(o->match_regularization > 0.0 && o->match_regularization < 1.0))
        return sk_error(SK_EINPUT,
                        "artifacts: bad grow (%ld px), mismatch (%g), core SNR (%g), PSF size "
                        "(%ld) or matching regularisation (%g)", o->grow_px, o->mismatch,
                        o->core_snr, o->psf_size, o->match_regularization);
    if (have_ref_psf)
        for (int j = 0; j < n; j++)
            if (!in[j].psf)
                return sk_error(SK_EINPUT, "artifacts: input %d has no PSF", j);
    for (int j = 0; !sp && j < n; j++)
        if (in[j].sci && in[j].nrows > 0 && (in[j].row0 != 0 || in[j].nrows != height))
            return sk_error(SK_EINPUT, "artifacts: input %d holds rows [%ld, %ld), every row is "
                            "needed", j, in[j].row0, in[j].row0 + in[j].nrows);
    return SK_OK;
}

/* Star cores of the reference (above core_snr), grown by 2 pixels, into c->core. */
static void star_cores(art_ctx *c, uint8_t *core0)
{
    const long width = c->width, height = c->height;
    const size_t npix = (size_t)width * (size_t)height;
    for (size_t i = 0; i < npix; i++)
        core0[i] = c->cwgt[i] > 0.0f && c->csci[i] * sqrtf(c->cwgt[i]) > c->o.core_snr;
    for (long y = 0; y < height; y++)
        for (long x = 0; x < width; x++) {
            if (!core0[y * width + x])
                continue;
            for (long yy = y - 2; yy <= y + 2; yy++)
                for (long xx = x - 2; xx <= x + 2; xx++)
                    if (xx >= 0 && yy >= 0 && xx < width && yy < height)
                        c->core[yy * width + xx] = 1;
        }
}

/* Footprint f of input j shares a row span with the stronger footprint g of input k. */
static int footprints_touch(const art_ctx *c, int j, const art_fp *f, int k, const art_fp *g)
{
    for (long r1 = f->r0; r1 < f->r0 + f->nr; r1++) {
        const sk_artifact_run *u = &c->runs[j][r1];
        for (long r2 = g->r0; r2 < g->r0 + g->nr; r2++) {
            const sk_artifact_run *v = &c->runs[k][r2];
            if (v->y == u->y && v->x0 < u->x1 && u->x0 < v->x1)
                return 1;
        }
    }
    return 0;
}

/* A footprint that overlaps a stronger one of another input is that
 * artifact's light leaking into the reference (and ringing where the
 * reference was sharpened to a sharper input's PSF): not masked. The
 * number of footprints so dropped. */
static long drop_explained(art_ctx *c)
{
    long nexplained = 0;
    for (int j = 0; j < c->n; j++)
        for (long a = 0; a < c->nfps[j]; a++) {
            art_fp *f = &c->fps[j][a];
            for (int k = 0; k < c->n && !f->dropped; k++) {
                if (k == j)
                    continue;
                for (long b = 0; b < c->nfps[k] && !f->dropped; b++) {
                    const art_fp *g = &c->fps[k][b];
                    if (!(g->peak > f->peak) || g->x0 > f->x1 || g->x1 < f->x0 ||
                        g->y0 > f->y1 || g->y1 < f->y0)
                        continue;
                    f->dropped = footprints_touch(c, j, f, k, g);
                }
            }
            nexplained += f->dropped;
        }
    return nexplained;
}

/* Input j's kept footprints as one plane over rows [*y0, *y1] (empty when y0 > y1). */
static void kept_plane(art_ctx *c, sk_artifact_masks *m, int j, uint8_t *plane, long *y0, long *y1)
{
    *y0 = c->height;
    *y1 = -1;
    for (long a = 0; a < c->nfps[j]; a++) {
        const art_fp *f = &c->fps[j][a];
        if (f->dropped)
            continue;
        m->nfootprints[j]++;
        for (long r = f->r0; r < f->r0 + f->nr; r++) {
            const sk_artifact_run *u = &c->runs[j][r];
            memset(plane + u->y * c->width + u->x0, 1, (size_t)(u->x1 - u->x0));
            if (u->y < *y0) *y0 = u->y;
            if (u->y > *y1) *y1 = u->y;
        }
    }
}

/* Gather in input order: the union of each input's kept footprints, over
 * the pixels it has, as runs of m. */
static int gather_masks(art_ctx *c, sk_artifact_masks *m, uint8_t *plane)
{
    const long width = c->width;
    const int n = c->n;
    m->first = calloc((size_t)n + 1, sizeof(long));
    m->npixels = calloc((size_t)n, sizeof(long));
    m->nfootprints = calloc((size_t)n, sizeof(long));
    if (!m->first || !m->npixels || !m->nfootprints)
        return sk_error(SK_EIO, "artifacts: out of memory");
    long cap = 0;
    for (int j = 0; j < n; j++) {
        sk_aligned_input view = c->in[j];
        const sk_aligned_input *in = &view;
        m->first[j] = m->nruns;
        m->nprotected += c->nprot[j];
        long ykeep0, ykeep1;
        kept_plane(c, m, j, plane, &ykeep0, &ykeep1);
        if (c->sp && ykeep1 >= ykeep0) {
            int st = sk_cx_planes_read(c->sp, j, ykeep0, ykeep1 - ykeep0 + 1, &c->gpl, &view);
            if (st)
                return st;
        }
        for (long y = ykeep0; y <= ykeep1; y++) {
            long x = 0;
            while (x < width) {
                if (!plane[y * width + x] || !sk_cx_usable(in, width, x, y, c->o.mask_flags)) {
                    plane[y * width + x] = 0;
                    x++;
                    continue;
                }
                long x0 = x;
                while (x < width && plane[y * width + x] &&
                       sk_cx_usable(in, width, x, y, c->o.mask_flags)) {
                    plane[y * width + x] = 0;
                    x++;
                }
                if (m->nruns == cap) {
                    long ncap = cap ? 2 * cap : 256;
                    sk_artifact_run *nrun = realloc(m->runs, sizeof *nrun * (size_t)ncap);
                    if (!nrun)
                        return sk_error(SK_EIO, "artifacts: out of memory");
                    m->runs = nrun;
                    cap = ncap;
                }
                sk_artifact_run *o = &m->runs[m->nruns++];
                o->input = j;
                o->y = y;
                o->x0 = x0;
                o->x1 = x;
                m->npixels[j] += x - x0;
            }
        }
    }
    m->first[n] = m->nruns;
    return SK_OK;
}

static void art_ctx_free(art_ctx *c)
{
    const int n = c->n;
    if (c->runs)
        for (int j = 0; j < n; j++)
            free(c->runs[j]);
    if (c->fps)
        for (int j = 0; j < n; j++)
            free(c->fps[j]);
    free(c->fps);
    free(c->nfps);
    free(c->runs);
    free(c->nruns);
    free(c->nprot);
    if (c->res)
        for (int j = 0; j < n; j++)
            free(c->res[j]);
    if (c->vn)
        for (int j = 0; j < n; j++)
            free(c->vn[j]);
    free(c->res);
    free(c->vn);
    free(c->fmis);
    free(c->core);
    sk_cx_planes_free(&c->gpl);
}

/* sk_artifact_find, the inputs' planes in memory or (sp) in a scratch file. */
static int find_masks(const sk_aligned_input *in, int n, long width, long height,
                      const float *ref_sci, const float *ref_weight, sk_psf_stamp_fn ref_psf,
                      void *ref_psf_ctx, const sk_artifact_opts *opts, sk_cx_spill *sp,
                      sk_artifact_masks **out)
{
    *out = NULL;
    art_ctx c;
    memset(&c, 0, sizeof c);
    if (opts)
        c.o = *opts;
    else
        sk_artifact_opts_default(&c.o);
    int status = check_find(&c.o, in, n, width, height, ref_sci, ref_weight, ref_psf != NULL, sp);
    if (status)
        return status;
    c.sp = sp;
    c.in = in;
    c.n = n;
    c.width = width;
    c.height = height;
    c.csci = ref_sci;
    c.cwgt = ref_weight;
    size_t npix = (size_t)width * (size_t)height;
    c.core = calloc(npix, 1);
    uint8_t *core0 = calloc(npix, 1);
    c.fps = calloc((size_t)n, sizeof *c.fps);
    c.nfps = calloc((size_t)n, sizeof(long));
    c.runs = calloc((size_t)n, sizeof *c.runs);
    c.nruns = calloc((size_t)n, sizeof(long));
    c.nprot = calloc((size_t)n, sizeof(long));
    uint8_t *plane = calloc(npix, 1);
    sk_artifact_masks *m = calloc(1, sizeof *m);
    c.res = sp ? NULL : calloc((size_t)n, sizeof(float *));
    c.fmis = calloc((size_t)n, sizeof(double));
    c.vn = sp ? NULL : calloc((size_t)n, sizeof(float *));
    if (!c.core || !core0 || !c.fps || !c.nfps || !c.runs || !c.nruns || !c.nprot || !plane || !m ||
        (!sp && (!c.res || !c.vn)) || !c.fmis)
        status = sk_error(SK_EIO, "artifacts: out of memory");
    for (int j = 0; !status && !sp && j < n; j++) {
        c.res[j] = malloc(sizeof(float) * npix);
        c.vn[j] = malloc(sizeof(float) * npix);
        if (!c.res[j] || !c.vn[j])
            status = sk_error(SK_EIO, "artifacts: out of memory for the residuals of %d inputs", n);
    }
    status = status ? status : residual_planes(&c, ref_psf, ref_psf_ctx);
    if (!status) {
        star_cores(&c, core0);
        const sk_scratch ws_ops = {sizeof(art_ws), art_ws_init, art_ws_release};
        status = sk_parallel_for_scratch(n, 1, sk_cx_threads(c.o.threads), &ws_ops, art_inputs, &c);
    }
    if (!status) {
        long nexplained = drop_explained(&c);
        m->n = n;
        m->width = width;
        m->height = height;
        status = gather_masks(&c, m, plane);
        m->nprotected += nexplained;
    }
    if (!status) {
        *out = m;
        m = NULL;
    }
    art_ctx_free(&c);
    free(plane);
    free(core0);
    sk_artifact_masks_free(m);
    return status;
}

int sk_artifact_find(const sk_aligned_input *in, int n, long width, long height,
                     const float *ref_sci, const float *ref_weight, sk_psf_stamp_fn ref_psf,
                     void *ref_psf_ctx, const sk_artifact_opts *opts, sk_artifact_masks **out)
{
    return find_masks(in, n, width, height, ref_sci, ref_weight, ref_psf, ref_psf_ctx, opts, NULL,
                      out);
}

void sk_artifact_masks_free(sk_artifact_masks *m)
{
    if (!m)
        return;
    free(m->runs);
    free(m->first);
    free(m->npixels);
    free(m->nfootprints);
    free(m);
}

int sk_artifact_masked(const sk_artifact_masks *m, int j, long x, long y)
{
    if (j < 0 || j >= m->n)
        return 0;
    /* binary search of the first run of row y */
    long lo = m->first[j], hi = m->first[j + 1];
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (m->runs[mid].y < y)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (long r = lo; r < m->first[j + 1] && m->runs[r].y == y; r++)
        if (x >= m->runs[r].x0 && x < m->runs[r].x1)
            return 1;
    return 0;
}

long sk_artifact_apply_box(const sk_artifact_masks *m, int j, long x0, long ncols, long y0,
                           long y1, float *weight, uint16_t *flags)
{
    if (j < 0 || j >= m->n)
        return 0;
    long count = 0;
    for (long r = m->first[j]; r < m->first[j + 1]; r++) {
        const sk_artifact_run *run = &m->runs[r];
        if (run->y < y0 || run->y >= y1)
            continue;
        long a = run->x0 > x0 ? run->x0 : x0, b = run->x1 < x0 + ncols ? run->x1 : x0 + ncols;
        size_t base = (size_t)(run->y - y0) * (size_t)ncols;
        for (long x = a; x < b; x++) {
            if (weight)
                weight[base + (size_t)(x - x0)] = 0.0f;
            if (flags)
                flags[base + (size_t)(x - x0)] |= SK_FLAG_REJECTED;
            count++;
        }
    }
    return count;
}

long sk_artifact_apply_rows(const sk_artifact_masks *m, int j, long y0, long y1, float *weight,
                            uint16_t *flags)
{
    return sk_artifact_apply_box(m, j, 0, m->width, y0, y1, weight, flags);
}

/* ---- the two-pass driver ---------------------------------------------- */

/* A stamp of the mean PSF made before, at (x, y) of that size. */
typedef struct mean_psf_stamp {
    double x, y;
    long size;
    float *v;
} mean_psf_stamp;

typedef struct mean_psf_ctx {
    const sk_aligned_input *in;
    int n;
    const double *omega;  /* 1/sigma_j^2, normalised to a unit sum */
    float *tmp;
    long tmp_size;
    /* the stamps made so far: every input's reference is matched on the
     * same tiles, whose centres ask for the same stamps again */
    mean_psf_stamp *memo;
    long nmemo, capmemo;
} mean_psf_ctx;

static void mean_psf_ctx_free(mean_psf_ctx *m)
{
    for (long i = 0; i < m->nmemo; i++)
        free(m->memo[i].v);
    free(m->memo);
    free(m->tmp);
}

/* The stamp kept for later calls (none kept when out of memory: it is
 * then made again). */
static void mean_psf_keep(mean_psf_ctx *m, double x, double y, long size, const float *stamp)
{
    if (m->nmemo == m->capmemo) {
        long nc = m->capmemo ? 2 * m->capmemo : 64;
        mean_psf_stamp *nm = realloc(m->memo, sizeof *nm * (size_t)nc);
        if (!nm)
            return;
        m->memo = nm;
        m->capmemo = nc;
    }
    float *v = malloc(sizeof(float) * (size_t)(size * size));
    if (!v)
        return;
    memcpy(v, stamp, sizeof(float) * (size_t)(size * size));
    m->memo[m->nmemo++] = (mean_psf_stamp){x, y, size, v};
}

/* The weighted mean of the inputs' PSF stamps (the callers hold the PSF
 * lock of their matching, so one call at a time). */
static int mean_psf(void *ctx, double x, double y, long size, float *stamp)
{
    mean_psf_ctx *m = ctx;
    for (long i = m->nmemo - 1; i >= 0; i--)
        if (m->memo[i].x == x && m->memo[i].y == y && m->memo[i].size == size) {
            memcpy(stamp, m->memo[i].v, sizeof(float) * (size_t)(size * size));
            return SK_OK;
        }
    if (m->tmp_size < size * size) {
        float *t = realloc(m->tmp, sizeof(float) * (size_t)(size * size));
        if (!t)
            return sk_error(SK_EIO, "artifacts: out of memory");
        m->tmp = t;
        m->tmp_size = size * size;
    }
    memset(stamp, 0, sizeof(float) * (size_t)(size * size));
    for (int j = 0; j < m->n; j++) {
        if (!(m->omega[j] > 0.0))
            continue;
        int st = sk_cx_psf_stamp(&m->in[j], j, x, y, size, m->tmp);
        if (st)
            return st;
        for (long i = 0; i < size * size; i++)
            stamp[i] += (float)(m->omega[j] * m->tmp[i]);
    }
    mean_psf_keep(m, x, y, size, stamp);
    return SK_OK;
}

/* Inverse-variance mean of the usable pixels. */
static void mean_reference(const sk_aligned_input *in, int n, long width, long height,
                           unsigned mask_flags, float *sci, float *wgt)
{
    for (long y = 0; y < height; y++) {
        for (long x = 0; x < width; x++) {
            double sv = 0.0, sw = 0.0;
            for (int j = 0; j < n; j++) {
                if (!sk_cx_usable(&in[j], width, x, y, mask_flags))
                    continue;
                size_t i = (size_t)y * (size_t)width + (size_t)x;
                sv += (double)in[j].weight[i] * in[j].sci[i];
                sw += in[j].weight[i];
            }
            size_t o = (size_t)y * (size_t)width + (size_t)x;
            sci[o] = sw > 0.0 ? (float)(sv / sw) : 0.0f;
            wgt[o] = (float)sw;
        }
    }
}

int sk_artifact_detect(const sk_aligned_input *in, int n, long width, long height,
                       const sk_artifact_opts *opts, sk_artifact_masks **out)
{
    *out = NULL;
    sk_artifact_opts o;
    if (opts)
        o = *opts;
    else
        sk_artifact_opts_default(&o);
    if (n < 1 || width < 1 || height < 1)
        return sk_error(SK_EINPUT, "artifacts: no input");
    size_t npix = (size_t)width * (size_t)height;
    float *sci = malloc(sizeof(float) * npix), *wgt = malloc(sizeof(float) * npix);
    double *omega = calloc((size_t)n, sizeof(double));
    if (!sci || !wgt || !omega) {
        free(sci); free(wgt); free(omega);
        return sk_error(SK_EIO, "artifacts: out of memory");
    }
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        double s = sk_cx_sigma_from_weight(&in[j], width, o.mask_flags);
        omega[j] = s > 0.0 ? 1.0 / (s * s) : 0.0;
        sum += omega[j];
    }
    int status = SK_OK;
    if (!(sum > 0.0)) {
        status = sk_error(SK_EINPUT, "artifacts: no input has a usable pixel");
        goto done;
    }
    for (int j = 0; j < n; j++)
        omega[j] /= sum;
    mean_psf_ctx pc = {in, n, omega, NULL, 0, NULL, 0, 0};
    mean_reference(in, n, width, height, o.mask_flags, sci, wgt);
    status = sk_artifact_find(in, n, width, height, sci, wgt, mean_psf, &pc, &o, out);
    mean_psf_ctx_free(&pc);
done:
    free(sci);
    free(wgt);
    free(omega);
    return status;
}

/* The inverse-variance mean of inputs held in a scratch file over one band
 * of rows: every input's rows read on the threads (each into its own
 * buffers), then the rows summed on the threads, each pixel's sums taken
 * in input order (as mean_reference does). */
typedef struct mref_job {
    const sk_aligned_input *in;
    int n;
    long width, y0, nr;
    sk_cx_spill *sp;
    unsigned mask_flags;
    sk_cx_planes *pl;
    sk_aligned_input *view;
    float *sci, *wgt;        /* the whole reference */
} mref_job;

static int mref_read(long j, void *user)
{
    mref_job *m = user;
    m->view[j] = m->in[j];
    return sk_cx_planes_read(m->sp, (int)j, m->y0, m->nr, &m->pl[j], &m->view[j]);
}

static int mref_rows(long r, void *user)
{
    mref_job *m = user;
    const long width = m->width, y = m->y0 + r;
    for (long x = 0; x < width; x++) {
        double sv = 0.0, sw = 0.0;
        size_t i = (size_t)r * (size_t)width + (size_t)x;
        for (int j = 0; j < m->n; j++) {
            if (!sk_cx_usable(&m->view[j], width, x, y, m->mask_flags))
                continue;
            sv += (double)m->view[j].weight[i] * m->view[j].sci[i];
            sw += m->view[j].weight[i];
        }
        size_t o = (size_t)y * (size_t)width + (size_t)x;
        m->sci[o] = sw > 0.0 ? (float)(sv / sw) : 0.0f;
        m->wgt[o] = (float)sw;
    }
    return SK_OK;
}

/* The inverse-variance mean of the usable pixels of inputs held in a
 * scratch file, band_rows rows at a time (see mref_job). */
static int mean_reference_spilled(const sk_aligned_input *in, int n, long width, long height,
                                  sk_cx_spill *sp, long band_rows, unsigned mask_flags,
                                  int threads, float *sci, float *wgt)
{
    sk_cx_planes *pl = calloc((size_t)n, sizeof *pl);
    sk_aligned_input *view = calloc((size_t)n, sizeof *view);
    int status = pl && view ? SK_OK : sk_error(SK_EIO, "artifacts: out of memory");
    for (long y0 = 0; !status && y0 < height; y0 += band_rows) {
        long nr = y0 + band_rows < height ? band_rows : height - y0;
        mref_job m = {in, n, width, y0, nr, sp, mask_flags, pl, view, sci, wgt};
        status = sk_parallel_for_each(n, sk_cx_threads(threads), mref_read, &m);
        status = status ? status : sk_parallel_for_each(nr, sk_cx_threads(threads), mref_rows, &m);
    }
    for (int j = 0; pl && j < n; j++)
        sk_cx_planes_free(&pl[j]);
    free(pl);
    free(view);
    return status;
}

int sk_artifact_detect_spilled(const sk_aligned_input *in, int n, long width, long height,
                               sk_cx_spill *sp, const double *sigma, long band_rows,
                               const sk_artifact_opts *opts, sk_artifact_masks **out)
{
    *out = NULL;
    sk_artifact_opts o;
    if (opts)
        o = *opts;
    else
        sk_artifact_opts_default(&o);
    if (n < 1 || width < 1 || height < 1 || !sp || band_rows < 1)
        return sk_error(SK_EINPUT, "artifacts: no input");
    size_t npix = (size_t)width * (size_t)height;
    float *sci = malloc(sizeof(float) * npix), *wgt = malloc(sizeof(float) * npix);
    double *omega = calloc((size_t)n, sizeof(double));
    if (!sci || !wgt || !omega) {
        free(sci); free(wgt); free(omega);
        return sk_error(SK_EIO, "artifacts: out of memory");
    }
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        omega[j] = sigma[j] > 0.0 ? 1.0 / (sigma[j] * sigma[j]) : 0.0;
        sum += omega[j];
    }
    int status = sum > 0.0 ? SK_OK : sk_error(SK_EINPUT, "artifacts: no input has a usable pixel");
    for (int j = 0; j < n; j++)
        omega[j] = sum > 0.0 ? omega[j] / sum : 0.0;
    mean_psf_ctx pc = {in, n, omega, NULL, 0, NULL, 0, 0};
    if (!status)
        status = mean_reference_spilled(in, n, width, height, sp, band_rows, o.mask_flags,
                                        o.threads, sci, wgt);
    if (!status)
        status = find_masks(in, n, width, height, sci, wgt, mean_psf, &pc, &o, sp, out);
    mean_psf_ctx_free(&pc);
    free(sci);
    free(wgt);
    free(omega);
    return status;
}
