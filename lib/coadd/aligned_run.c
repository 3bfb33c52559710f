/* aligned_run.c: the proper and PSF-matched coadds, background matching and artifact masks on real inputs: each input read and resampled onto the grid as the coadd engine does it and kept in a scratch file, then these steps and methods band by band. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/parallel.h"
#include "direct_priv.h"
#include "aligned_priv.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/image.h"
#include "skystack/log.h"
#include "skystack/psf.h"
#include "skystack/wcs.h"
#include "coadd_internal.h"
#include "coaddx_internal.h"
#include "extract/psf_internal.h"

int sk_coaddx_method_from_name(const char *name, int *method)
{
    if (name && strcasecmp(name, "zogy") == 0) {
        *method = SK_COADDX_ZOGY;
        return 1;
    }
    if (name && strcasecmp(name, "psfmatch") == 0) {
        *method = SK_COADDX_PSFMATCH;
        return 1;
    }
    *method = SK_COADDX_DIRECT;
    return 0;
}

const char *sk_coaddx_method_name(int method)
{
    return method == SK_COADDX_ZOGY ? "zogy" : method == SK_COADDX_PSFMATCH ? "psfmatch" : "direct";
}

void sk_coaddx_params_default(sk_coaddx_params *x)
{
    memset(x, 0, sizeof *x);
    x->method = SK_COADDX_DIRECT;
    x->background_degree = 1;
    x->target.kind = SK_TARGET_BROADEST;
    x->target.moffat_beta = 3.0;
}

/* One input resampled onto the grid. */
typedef struct plane {
    sk_image *img;           /* SCI, WGT, FLG on the grid */
    sk_wcs *wcs_owned;
    const sk_wcs *wcs;       /* the input's */
    sk_grid_psf gpsf;
    double poisson;
} plane;

static const char *input_name(const sk_coadd_input *in);

/* One input read whole as the engine does (background subtracted,
 * scaled) into a band, its variance made the weight in place, its WCS
 * noted in its plane: a task of its own beside the resampling of the
 * input before it when there are threads. */
typedef struct input_read {
    const sk_coadd_input *in;
    double scale;
    plane *pl;
    sk_band *b;
    long w, h;
} input_read;

static int read_input(void *arg)
{
    input_read *r = arg;
    const sk_coadd_input *in = r->in;
    sk_band_source *src = NULL;
    int rc = sk_band_source_open(in, &src);
    if (rc)
        return sk_error_context("%s", input_name(in));
    r->w = sk_band_source_width(src);
    r->h = sk_band_source_height(src);
    plane *pl = r->pl;
    if (in->wcs)
        pl->wcs = in->wcs;
    else if (in->image && in->image->wcs)
        pl->wcs = in->image->wcs;
    else {
        const sk_header *hd = sk_band_source_header(src);
        if (!hd || sk_wcs_from_header(hd, &pl->wcs_owned) != SK_OK) {
            sk_band_source_close(src);
            return sk_error(SK_EINPUT, "%s: no usable WCS", input_name(in));
        }
        pl->wcs = pl->wcs_owned;
    }
    rc = sk_band_alloc(r->b, 0, 0, r->w, r->h, r->w, r->h);
    if (!rc)
        rc = sk_band_source_read(src, r->scale, r->b);
    sk_band_source_close(src);
    if (rc)
        return sk_error_context("%s", input_name(in));
    size_t n = (size_t)r->w * (size_t)r->h;
    float *v = r->b->var;
    for (size_t i = 0; i < n; i++)
        v[i] = v[i] > 0.0f ? 1.0f / v[i] : 0.0f;
    return SK_OK;
}

/* An input read by read_input resampled onto the grid into *img (the
 * previous input's planes, refilled; *nimg their count plane). */
static int resample_input(const input_read *r, const sk_grid *grid, const sk_coadd_params *p,
                          sk_image **img, int32_t **nimg)
{
    sk_image tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.header = sk_header_new();
    if (!tmp.header)
        return sk_error(SK_EIO, "coadd: out of memory");
    tmp.width = r->w;
    tmp.height = r->h;
    tmp.sci = r->b->sci;
    tmp.weight = r->b->var;
    tmp.flags = r->b->flags;
    tmp.wcs = (struct sk_wcs *)r->pl->wcs;
    int rc = sk_resample_image_again(&tmp, NULL, 1.0, grid, p->kernel, p->tolerance_px,
                                     p->threads > 0 ? p->threads : 1, img, nimg);
    sk_header_free(tmp.header);
    return rc ? sk_error_context("%s", input_name(r->in)) : SK_OK;
}

/* The output grid's pixel scale over the input's, at the centre. */
static double scale_ratio(const plane *pl, const sk_grid *grid)
{
    double xc = 0.5 * (double)(grid->width - 1), yc = 0.5 * (double)(grid->height - 1);
    double ra, dec, xi, yi;
    if (sk_wcs_pix2sky(grid->wcs, 1, &xc, &yc, &ra, &dec) ||
        sk_wcs_sky2pix(pl->wcs, 1, &ra, &dec, &xi, &yi))
        return 1.0;
    double si = sk_wcs_pixel_scale_arcsec(pl->wcs, xi, yi);
    double so = sk_wcs_pixel_scale_arcsec(grid->wcs, xc, yc);
    return (si > 0.0 && so > 0.0) ? si / so : 1.0;
}

/* The running sums of a banded combine: VARCORR's mean, rejections. */
typedef struct combine_acc {
    double vc_sum;
    long vc_n, nrej;
} combine_acc;

/* Per-pixel combine of aligned planes with the coadd's combine method:
 * npix pixels of the planes into the output from pixel `off` on, rows of
 * `width` pixels on the threads; each pixel's VARCORR term kept in vc[]
 * and added in pixel order after (the sums run in pixel order, whatever
 * the bands and threads); the rejections counted per row. */
typedef struct combine_job {
    const sk_coadd_params *p;
    int n;
    size_t off;
    long npix, width;
    float *const *val, *const *wgt;
    uint16_t *const *flg;
    const double *poisson, *varcorr;
    sk_coadd_result *r;
    double *vc;              /* npix: the VARCORR term, 0 where none */
    long *vc_n, *nrej;       /* per row */
} combine_job;

typedef struct combine_ws {
    sk_combine_in *ci;
    double *scratch;
} combine_ws;

static int combine_ws_init(void *ws, void *user)
{
    combine_ws *w = ws;
    const combine_job *job = user;
    w->ci = malloc(sizeof(sk_combine_in) * (size_t)job->n);
    w->scratch = malloc(sizeof(double) * 3 * (size_t)job->n);
    return w->ci && w->scratch ? SK_OK : sk_error(SK_EIO, "coadd: out of memory");
}

static void combine_ws_release(void *ws, void *user)
{
    combine_ws *w = ws;
    free(w->ci);
    free(w->scratch);
}

static int combine_rows(void *ws, long r0, long r1, void *user)
{
    combine_ws *w = ws;
    const combine_job *job = user;
    sk_combine_in *ci = w->ci;
    sk_coadd_result *r = job->r;
    for (long row = r0; row < r1; row++) {
        long i1 = (row + 1) * job->width < job->npix ? (row + 1) * job->width : job->npix;
        long vc_n = 0, nrej = 0;
        for (long i = row * job->width; i < i1; i++) {
            size_t io = job->off + (size_t)i;
            int k = 0;
            uint16_t orf = 0;
            for (int j = 0; j < job->n; j++) {
                orf |= job->flg[j][i];
                float wj = job->wgt[j][i];
                if (!(wj > 0.0f) || (job->flg[j][i] & SK_COADDX_MASK_DEFAULT))
                    continue;
                ci[k].value = job->val[j][i];
                ci[k].var = 1.0f / wj;
                ci[k].cweight = (float)(wj / job->varcorr[j]);
                ci[k].poisson = (float)job->poisson[j];
                k++;
            }
            sk_combine_out o;
            sk_combine_pixel(&job->p->combine, ci, k, w->scratch, &o);
            r->image->sci[io] = o.nused > 0 ? o.value : 0.0f;
            r->image->weight[io] = o.nused > 0 ? o.weight : 0.0f;
            uint16_t f = 0;
            if (o.nused == 0)
                f = orf ? orf : SK_FLAG_EDGE;
            if (o.nrejected > 0 || (orf & SK_FLAG_REJECTED))
                f |= SK_FLAG_REJECTED;
            r->image->flags[io] = f;
            r->nimg[io] = o.nused;
            nrej += o.nrejected;
            job->vc[i] = 0.0;
            if (o.nused > 0 && o.weight > 0.0f && o.var_large > 0.0) {
                job->vc[i] = o.var_large * o.weight;
                vc_n++;
            }
        }
        job->vc_n[row] = vc_n;
        job->nrej[row] = nrej;
    }
    return SK_OK;
}

/* The combine of npix pixels (whole rows of the output) of the planes into
 * the output from pixel `off` on; the VARCORR sums and the rejections are
 * added to acc. */
static int combine_planes(const sk_coadd_params *p, int n, size_t off, long npix,
                          float *const *val, float *const *wgt, uint16_t *const *flg,
                          const double *poisson, const double *varcorr, sk_coadd_result *r,
                          combine_acc *acc)
{
    long width = r->image->width, nrows = (npix + width - 1) / width;
    combine_job job = {p, n, off, npix, width, val, wgt, flg, poisson, varcorr, r,
                       malloc(sizeof(double) * (size_t)(npix > 0 ? npix : 1)),
                       calloc((size_t)(nrows > 0 ? nrows : 1), sizeof(long)),
                       calloc((size_t)(nrows > 0 ? nrows : 1), sizeof(long))};
    int rc = job.vc && job.vc_n && job.nrej ? SK_OK : sk_error(SK_EIO, "coadd: out of memory");
    const sk_scratch ops = {sizeof(combine_ws), combine_ws_init, combine_ws_release};
    if (!rc)
        rc = sk_parallel_for_scratch(nrows, 1, sk_cx_threads(p->threads), &ops, combine_rows,
                                     &job);
    if (!rc) {
        double vc_sum = acc->vc_sum;
        for (long i = 0; i < npix; i++)
            vc_sum += job.vc[i];
        acc->vc_sum = vc_sum;
        for (long row = 0; row < nrows; row++) {
            acc->vc_n += job.vc_n[row];
            acc->nrej += job.nrej[row];
        }
        r->varcorr = acc->vc_n ? acc->vc_sum / (double)acc->vc_n : 1.0;
    }
    free(job.vc);
    free(job.vc_n);
    free(job.nrej);
    return rc;
}

/* A PSF callback of the coadd (the proper coadd's P_R, the PSF-matched
 * coadd's target) at any output position. */
typedef int (*coadd_psf_at_fn)(void *ctx, double x_px, double y_px, long size, float *stamp);

static int zogy_psf_at(void *ctx, double x_px, double y_px, long size, float *stamp)
{
    return sk_zogy_psf(ctx, x_px, y_px, size, stamp);
}

static int psfmatch_psf_at(void *ctx, double x_px, double y_px, long size, float *stamp)
{
    return sk_psfmatch_target_psf(ctx, x_px, y_px, size, stamp);
}

/* The coadd's PSF product: the callback's stamps at the nine positions of
 * sk_coadd_psf_positions, fitted as a model of degree 2 over the grid. */
static int coadd_psf_model(coadd_psf_at_fn at, void *ctx, long size, const sk_grid *grid,
                           sk_psf **out)
{
    long npix = size * size;
    double px[9], py[9];
    int have[9];
    sk_coadd_psf_positions(grid, px, py);
    double *d = malloc(sizeof(double) * 9 * (size_t)npix);
    float *st = malloc(sizeof(float) * (size_t)npix);
    int rc = d && st ? SK_OK : sk_error(SK_EIO, "coadd: out of memory");
    for (int p = 0; p < 9 && !rc; p++) {
        rc = at(ctx, px[p], py[p], size, st);
        for (long i = 0; i < npix && !rc; i++)
            d[(size_t)p * npix + i] = st[i];
        have[p] = 1;
    }
    if (!rc)
        rc = sk_coadd_psf_fit(d, have, size, grid, out);
    free(d);
    free(st);
    return rc;
}

/* The state of one sk_coaddx_run: the engine's result, the inputs (their
 * planes on the grid in a scratch file), and the bands handed to the
 * combine. */
typedef struct coaddx_state {
    const sk_coadd_input *in;
    int n;
    const sk_psf *const *psfs;
    const sk_grid *grid;
    const sk_coadd_params *p;
    const sk_coaddx_params *x;
    sk_coadd_result *r;
    long W, H;
    size_t npix;
    long psf_size;
    long band_rows;          /* output rows per band */
    plane *pl;
    sk_aligned_input *ai;    /* PSFs, maps, scales; no rows held */
    sk_cx_spill *sp;         /* the inputs' planes on the grid */
    sk_artifact_masks *am;   /* applied as the planes are read from sp */
    sk_cx_planes *rows;      /* per input: the rows of the current band */
    double *sigma0, *sigma;  /* noise from the weight: as read, and after
                                the artifact masks */
    double *poisson, *varcorr;
    float **val, **wgt;
    uint16_t **flg;
    long nrejected;
    sk_band band, band2;     /* loading: inputs read whole */
    sk_image *rs[2];         /* loading: inputs resampled onto the grid, */
    int32_t *rs_nimg[2];     /* by turns (one stored while the next is made) */
} coaddx_state;

static const char *input_name(const sk_coadd_input *in)
{
    return in->name ? in->name : in->path ? in->path : "input";
}

/* Input k's metadata as an aligned input, and the PSF stamp size. */
static void input_meta(coaddx_state *s, int k)
{
    plane *pk = &s->pl[k];
    sk_aligned_input *ak = &s->ai[k];
    pk->poisson = s->in[k].gain > 0.0 ? s->r->info[k].flux_scale / s->in[k].gain : 0.0;
    s->poisson[k] = pk->poisson;
    s->varcorr[k] = 1.0;
    ak->flux_scale = 1.0;
    ak->poisson = pk->poisson;
    pk->gpsf.in_wcs = pk->wcs;
    pk->gpsf.out_wcs = s->grid->wcs;
    ak->map = sk_grid_map;
    ak->map_ctx = &pk->gpsf;
    ak->kernel = s->p->kernel;
    if (s->psfs && s->psfs[k]) {
        pk->gpsf.psf = s->psfs[k];
        ak->psf = sk_grid_psf_stamp;
        ak->psf_ctx = &pk->gpsf;
        if (!s->x->psf_size) {
            long sz = (long)ceil(sk_psf_stamp_size(s->psfs[k]) * scale_ratio(pk, s->grid));
            sz |= 1;
            if (sz > s->psf_size)
                s->psf_size = sz;
        }
    }
}

/* Input k resampled onto the grid (planes img): its noise from the weight
 * noted and its planes written to the scratch file; a task beside the
 * resampling of the next input when there are threads. */
typedef struct input_store {
    coaddx_state *s;
    int k;
    const sk_image *img;
} input_store;

static int store_input(void *arg)
{
    const input_store *st = arg;
    coaddx_state *s = st->s;
    const int k = st->k;
    sk_aligned_input whole = s->ai[k];
    whole.sci = st->img->sci;
    whole.weight = st->img->weight;
    whole.flags = st->img->flags;
    whole.row0 = 0;
    whole.nrows = s->H;
    s->sigma0[k] = s->sigma[k] = sk_cx_sigma_from_weight(&whole, s->W, SK_COADDX_MASK_DEFAULT);
    int rc = sk_cx_spill_put(s->sp, k, SK_CX_SCI, 0, s->H, st->img->sci);
    rc = rc ? rc : sk_cx_spill_put(s->sp, k, SK_CX_WGT, 0, s->H, st->img->weight);
    rc = rc ? rc : sk_cx_spill_put(s->sp, k, SK_CX_FLG, 0, s->H, st->img->flags);
    return rc;
}

/* Every input resampled onto the grid, one at a time, and stored
 * (store_input). With threads, input k + 1 is read into the other band
 * while input k is resampled, and input k - 1 is stored meanwhile from
 * the other planes (the same pixels: reading, resampling and storing are
 * apart). The PSF stamp size (odd, at least 11) from the largest input PSF
 * unless given. */
static int load_inputs(coaddx_state *s)
{
    s->psf_size = s->x->psf_size;
    int threads = s->p->threads > 0 ? s->p->threads : 1;
    sk_band *cur = &s->band, *other = threads > 1 ? &s->band2 : &s->band;
    input_read rd = {&s->in[0], s->r->info[0].flux_scale, &s->pl[0], cur, 0, 0};
    int rc = read_input(&rd);
    sk_task *stored = NULL;
    input_store st = {s, 0, NULL};
    for (int k = 0; !rc && k < s->n; k++) {
        input_read next = rd;
        sk_task *task = NULL;
        if (k + 1 < s->n) {
            next = (input_read){&s->in[k + 1], s->r->info[k + 1].flux_scale, &s->pl[k + 1], other, 0, 0};
            if (threads > 1)
                rc = sk_task_start(threads, read_input, &next, &task);
        }
        int b = threads > 1 ? k & 1 : 0;
        rc = rc ? rc : resample_input(&rd, s->grid, s->p, &s->rs[b], &s->rs_nimg[b]);
        int trc = sk_task_join(stored); /* input k - 1, from the other planes */
        stored = NULL;
        rc = rc ? rc : trc;
        if (!rc) {
            input_meta(s, k);
            st = (input_store){s, k, s->rs[b]};
            rc = sk_task_start(threads, store_input, &st, &stored);
        }
        if (!task && !rc && k + 1 < s->n) /* one thread: now, in the same band */
            rc = sk_task_start(threads, read_input, &next, &task);
        if (task) { /* joined also after a failure: it writes into the other band */
            trc = sk_task_join(task);
            rc = rc ? rc : trc;
        }
        if (!rc)
            sk_debug("%s: resampled onto the grid for %s", input_name(&s->in[k]),
                     sk_coaddx_method_name(s->x->method));
        rd = next;
        other = rd.b == cur ? other : cur;
        cur = rd.b;
    }
    int trc = sk_task_join(stored);
    rc = rc ? rc : trc;
    sk_band_free(&s->band);
    sk_band_free(&s->band2);
    for (int b = 0; b < 2; b++) {
        sk_image_free(s->rs[b]);
        free(s->rs_nimg[b]);
        s->rs[b] = NULL;
        s->rs_nimg[b] = NULL;
    }
    if (rc)
        return rc;
    if (s->psf_size < 11)
        s->psf_size = 11;
    s->psf_size |= 1;
    return SK_OK;
}

/* Rows [y0, y0+nrows) of input k into its band buffers, s->ai[k] pointing at them. */
static int read_rows(coaddx_state *s, int k, long y0, long nrows)
{
    return sk_cx_planes_read(s->sp, k, y0, nrows, &s->rows[k], &s->ai[k]);
}

/* s->ai back to holding no rows. */
static void drop_rows(coaddx_state *s)
{
    for (int k = 0; k < s->n; k++) {
        s->ai[k].sci = s->ai[k].weight = NULL;
        s->ai[k].flags = NULL;
        s->ai[k].row0 = s->ai[k].nrows = 0;
        s->ai[k].col0 = s->ai[k].ncols = 0;
    }
}

/* Background matching: each input's difference from the others fitted
 * band by band and subtracted (bgmatch.c). */
static int match_backgrounds(coaddx_state *s)
{
    sk_bgmatch_opts bo;
    sk_bgmatch_opts_default(&bo);
    bo.degree = s->x->background_degree;
    sk_bgmatch *bm = NULL;
    int rc = sk_bgmatch_new(s->n, s->W, s->H, &bo, &bm);
    for (long y0 = 0; !rc && y0 < s->H; y0 += s->band_rows) {
        long y1 = y0 + s->band_rows < s->H ? y0 + s->band_rows : s->H;
        for (int k = 0; !rc && k < s->n; k++)
            rc = read_rows(s, k, y0, y1 - y0);
        rc = rc ? rc : sk_bgmatch_add_rows(bm, s->ai, y0, y1);
    }
    drop_rows(s);
    rc = rc ? rc : sk_bgmatch_solve(bm);
    for (int k = 0; !rc && k < s->n; k++) {
        rc = read_rows(s, k, 0, s->H);
        if (!rc) {
            sk_bgmatch_apply_rows(bm, k, 0, s->H, s->rows[k].sci);
            rc = sk_cx_spill_put(s->sp, k, SK_CX_SCI, 0, s->H, s->rows[k].sci);
        }
        sk_cx_planes_free(&s->rows[k]);
    }
    drop_rows(s);
    if (!rc) {
        sk_bgmatch_log(bm);
        rc = sk_bgmatch_write_header(bm, s->r->image->header);
    }
    sk_bgmatch_free(bm);
    return rc;
}

/* The artifact masks applied to the inputs' planes read from the scratch
 * file (not written back: every later read applies them), the inputs on
 * the threads (each thread with its own planes): input k's count of masked
 * pixels into masked[k], its noise from the weight found again into
 * s->sigma[k]. */
typedef struct mask_job {
    coaddx_state *s;
    const sk_artifact_masks *am;
    long *masked;
} mask_job;

static int mask_ws_init(void *ws, void *user) { return SK_OK; }

static void mask_ws_release(void *ws, void *user)
{
    sk_cx_planes_free(ws);
}

static int apply_masks(void *ws, long k0, long k1, void *user)
{
    const mask_job *job = user;
    coaddx_state *s = job->s;
    sk_cx_planes *pk = ws;
    int rc = SK_OK;
    for (long k = k0; !rc && k < k1; k++) {
        sk_aligned_input view = s->ai[k];
        rc = sk_cx_planes_read(s->sp, (int)k, 0, s->H, pk, &view);
        if (rc)
            break;
        job->masked[k] = sk_artifact_apply_rows(job->am, (int)k, 0, s->H, pk->weight, pk->flags);
        s->sigma[k] = sk_cx_sigma_from_weight(&view, s->W, SK_COADDX_MASK_DEFAULT);
    }
    return rc;
}

/* Artifact masks (artifact.c) applied to the inputs' weights and flags
 * as they are read from then on, counted per input in ARTPIXn. */
static int mask_artifacts(coaddx_state *s)
{
    sk_artifact_opts ao;
    sk_artifact_opts_default(&ao);
    ao.psf_size = s->psf_size;
    ao.threads = s->p->threads;
    sk_artifact_masks *am = NULL;
    long *masked = calloc((size_t)s->n, sizeof(long));
    int rc = masked ? SK_OK : sk_error(SK_EIO, "coadd: out of memory");
    rc = rc ? rc : sk_artifact_detect_spilled(s->ai, s->n, s->W, s->H, s->sp, s->sigma0,
                                              s->band_rows, &ao, &am);
    mask_job job = {s, am, masked};
    const sk_scratch ws_ops = {sizeof(sk_cx_planes), mask_ws_init, mask_ws_release};
    /* the noise after the masks is wanted by the proper coadd and the
     * direct coadd's NOISEPSF; the PSF-matched coadd needs only the counts
     * (each masked pixel is in one run) */
    if (!rc && s->x->method == SK_COADDX_PSFMATCH)
        memcpy(masked, am->npixels, sizeof(long) * (size_t)s->n);
    else if (!rc)
        rc = sk_parallel_for_scratch(s->n, 1, sk_cx_threads(s->p->threads), &ws_ops,
                                     apply_masks, &job);
    for (int k = 0; !rc && k < s->n; k++) {
        long m = masked[k];
        s->nrejected += m;
        char key[32];
        snprintf(key, sizeof key, "ARTPIX%d", k + 1);
        rc = sk_header_set_long(s->r->image->header, key, m, "pixels masked as artifacts");
        if (!rc && m)
            sk_info("artifact masks: input %d: %ld footprint%s, %ld pixels", k + 1,
                    am->nfootprints[k], am->nfootprints[k] == 1 ? "" : "s", m);
    }
    free(masked);
    if (!rc) {
        s->am = am;
        sk_cx_spill_set_masks(s->sp, am);
    } else
        sk_artifact_masks_free(am);
    return rc;
}

/* The score image of the proper coadd (zogy_score.c) with its PSF at the centre. */
static int zogy_score_plane(coaddx_state *s, sk_zogy *z)
{
    sk_coadd_result *r = s->r;
    long size = s->psf_size;
    float *stamp = malloc(sizeof(float) * (size_t)(size * size));
    r->score = malloc(sizeof(float) * s->npix);
    int rc = stamp && r->score ? SK_OK : sk_error(SK_EIO, "coadd: out of memory for the score image");
    rc = rc ? rc : sk_zogy_psf(z, 0.5 * (double)(s->W - 1), 0.5 * (double)(s->H - 1), size, stamp);
    rc = rc ? rc : sk_zogy_score(r->image->sci, r->image->weight, s->W, s->H, stamp, size, r->score);
    free(stamp);
    return rc;
}

/* The inputs' rows the tiled methods hold at once when not given. */
#define TILED_ROWS_BYTES ((size_t)512 << 20)

/* Output rows per band of the tiled methods: band_rows rounded up to whole
 * rows of tiles (so that no tile is computed twice). With threads, and
 * tiles across that the threads do not share evenly, at least a row of
 * tiles per thread when every input's rows of such a band (about 10 bytes
 * a pixel, SCI, WGT and FLG) fit in x->rows_bytes: the threads then share
 * a band's tiles evenly (5 tiles across on 2 threads took 3 tiles' time). */
static long tiled_band(const coaddx_state *s, long tile_px)
{
    long b = (s->band_rows + tile_px - 1) / tile_px * tile_px;
    long threads = sk_cx_threads(s->p->threads), ntx = (s->W + tile_px - 1) / tile_px;
    size_t budget = s->x->rows_bytes ? s->x->rows_bytes : TILED_ROWS_BYTES;
    if (threads > 1 && ntx % threads != 0 && b < threads * tile_px &&
        (size_t)s->n * (size_t)(threads * tile_px + 2 * s->psf_size) * (size_t)s->W * 10 <=
            budget)
        b = threads * tile_px;
    return b < s->H ? b : s->H;
}

/* Rows [need0, need1) of every input read from the scratch file, the
 * inputs on the threads (each into its own buffers); with z, handed to
 * the proper coadd. */
typedef struct rows_job {
    coaddx_state *s;
    sk_zogy *z;
    long need0, need1;
    long x0, ncols;          /* ncols > 0: those columns only */
} rows_job;

static int input_rows(long k, void *arg)
{
    rows_job *j = arg;
    coaddx_state *s = j->s;
    int rc = j->ncols > 0 ? sk_cx_planes_read_box(s->sp, (int)k, j->x0, j->ncols, j->need0,
                                                  j->need1 - j->need0, &s->rows[k], &s->ai[k])
                          : read_rows(s, (int)k, j->need0, j->need1 - j->need0);
    const sk_cx_planes *pk = &s->rows[k];
    if (!rc && j->z)
        rc = sk_zogy_set_rows(j->z, (int)k, pk->sci, pk->weight, pk->flags, j->need0,
                              j->need1 - j->need0);
    if (!rc && j->z)
        rc = sk_zogy_set_cols(j->z, (int)k, j->x0, j->ncols);
    return rc;
}

static int all_rows(coaddx_state *s, sk_zogy *z, long need0, long need1)
{
    rows_job j = {s, z, need0, need1, 0, 0};
    return sk_parallel_for_each(s->n, s->p->threads, input_rows, &j);
}

/* Tile columns per group of the proper coadd's bands: all of them when
 * every input's rows of a band fit in x->rows_bytes, else fewer, down to
 * one per thread (or one). */
static long zogy_group_cols(const coaddx_state *s, const sk_zogy *z, long band)
{
    long ntx = sk_zogy_tile_columns(z), need0, need1, x0, x1;
    size_t budget = s->x->rows_bytes ? s->x->rows_bytes : TILED_ROWS_BYTES;
    long least = sk_cx_threads(s->p->threads);
    /* a band with margins on both sides, where there is one */
    long b0 = 2 * band <= s->H ? band : 0;
    sk_zogy_rows_needed(z, b0, b0 + band, &need0, &need1);
    long tpg = ntx;
    for (; tpg > least && tpg > 1; tpg--) {
        sk_zogy_cols_needed(z, 0, tpg, &x0, &x1);
        /* SCI, WGT (float) and FLG (16 bits) */
        if ((size_t)s->n * (size_t)(need1 - need0) * (size_t)(x1 - x0) * 10 <= budget)
            break;
    }
    return tpg;
}

/* The proper coadd's pixels, one band of rows of tiles at a time: every
 * input's rows that the band needs read from the scratch file; when they
 * would exceed x->rows_bytes, the band's tiles a group of tile columns at
 * a time, each with those columns of the rows (zogy_group_cols). */
static int zogy_bands(coaddx_state *s, sk_zogy *z, long tile_px)
{
    sk_coadd_result *r = s->r;
    long band = tiled_band(s, tile_px);
    long ntx = sk_zogy_tile_columns(z), tpg = zogy_group_cols(s, z, band);
    if (tpg < ntx)
        sk_debug("zogy: bands of %ld rows made %ld of %ld tile columns at a time", band, tpg, ntx);
    uint16_t *nimg16 = malloc(sizeof(uint16_t) * (size_t)band * (size_t)s->W);
    int rc = nimg16 ? SK_OK : sk_error(SK_EIO, "coadd: out of memory");
    for (long y0 = 0; !rc && y0 < s->H; y0 += band) {
        long y1 = y0 + band < s->H ? y0 + band : s->H, need0, need1;
        sk_zogy_rows_needed(z, y0, y1, &need0, &need1);
        size_t o = (size_t)y0 * (size_t)s->W, nb = (size_t)(y1 - y0) * (size_t)s->W;
        for (long tx0 = 0; !rc && tx0 < ntx; tx0 += tpg) {
            long tx1 = tx0 + tpg < ntx ? tx0 + tpg : ntx, x0 = 0, x1 = 0;
            if (tpg < ntx)
                sk_zogy_cols_needed(z, tx0, tx1, &x0, &x1);
            rows_job j = {s, z, need0, need1, x0, x1 - x0};
            rc = sk_parallel_for_each(s->n, s->p->threads, input_rows, &j);
            rc = rc ? rc : sk_zogy_rows_cols(z, y0, y1, tx0, tx1, r->image->sci + o,
                                             r->image->weight + o, r->image->flags + o, nimg16);
        }
        for (size_t i = 0; !rc && i < nb; i++)
            r->nimg[o + i] = nimg16[i];
    }
    for (int k = 0; k < s->n; k++)
        sk_cx_planes_free(&s->rows[k]);
    drop_rows(s);
    free(nimg16);
    return rc;
}

/* The proper coadd (zogy.c) into the result, its flux scale, zero point and PSF. */
static int run_zogy(coaddx_state *s, sk_psf **coadd_psf)
{
    sk_coadd_result *r = s->r;
    sk_header *hd = r->image->header;
    sk_zogy_opts zo;
    sk_zogy_opts_default(&zo);
    zo.psf_size = s->psf_size;
    zo.threads = s->p->threads;
    if (s->x->tile_px > 0)
        zo.tile_px = s->x->tile_px;
    sk_zogy *z = NULL;
    /* each input's noise from its whole weight map, as the unbanded
     * proper coadd finds it */
    for (int k = 0; k < s->n; k++)
        s->ai[k].sigma = s->sigma[k];
    int rc = sk_zogy_new(s->ai, s->n, s->W, s->H, &zo, &z);
    for (int k = 0; k < s->n; k++)
        s->ai[k].sigma = 0.0;
    rc = rc ? rc : zogy_bands(s, z, zo.tile_px);
    if (rc) {
        sk_zogy_free(z);
        return rc;
    }
    double fr = sk_zogy_flux_scale(z);
    rc = sk_header_set_double(hd, "ZOGYFR", fr, "proper coadd flux scale F_R");
    if (!rc && isfinite(r->zero_point)) {
        r->zero_point += 2.5 * log10(fr);
        rc = sk_header_set_double(hd, "MAGZERO", r->zero_point,
                                  "m = -2.5 log10(sum of pixels) + MAGZERO");
    }
    r->varcorr = 1.0;
    if (!rc)
        rc = sk_header_set_double(hd, "VARCORR", 1.0, "proper coadd: white noise");
    if (!rc)
        rc = sk_header_add_comment(hd, "COMMENT",
                                   "zogy: proper coadd of Zackay & Ofek (2017); unit-variance "
                                   "noise where every input covers, flux scale ZOGYFR");
    if (!rc && coadd_psf)
        rc = coadd_psf_model(zogy_psf_at, z, s->psf_size, s->grid, coadd_psf);
    if (!rc)
        rc = zogy_score_plane(s, z);
    if (!rc)
        sk_info("zogy: F_R %.6g, MAGZERO %.4f", fr, r->zero_point);
    sk_zogy_free(z);
    return rc;
}

/* The PSF-matched coadd's pixels, one band of rows of tiles at a time:
 * each input's rows read from the scratch file and convolved to the
 * target, then the band combined. */
static int psfmatch_bands(coaddx_state *s, sk_psfmatch *pmt, long tile_px)
{
    long band = tiled_band(s, tile_px);
    size_t nb = (size_t)band * (size_t)s->W;
    int rc = SK_OK;
    for (int k = 0; !rc && k < s->n; k++) {
        s->val[k] = malloc(sizeof(float) * nb);
        s->wgt[k] = malloc(sizeof(float) * nb);
        s->flg[k] = malloc(sizeof(uint16_t) * nb);
        if (!s->val[k] || !s->wgt[k] || !s->flg[k])
            rc = sk_error(SK_EIO, "coadd: out of memory for the PSF-matched inputs");
        s->varcorr[k] = rc ? 1.0 : sk_psfmatch_varcorr(pmt, k);
        if (!(s->varcorr[k] > 0.0))
            s->varcorr[k] = 1.0;
    }
    combine_acc acc = {0.0, 0, 0};
    for (long y0 = 0; !rc && y0 < s->H; y0 += band) {
        long y1 = y0 + band < s->H ? y0 + band : s->H, need0, need1;
        sk_psfmatch_rows_needed(pmt, y0, y1, &need0, &need1);
        size_t off = (size_t)(y0 - need0) * (size_t)s->W, np = (size_t)(y1 - y0) * (size_t)s->W;
        /* one input's rows at a time, in one buffer */
        for (int k = 0; !rc && k < s->n; k++) {
            sk_cx_planes *pk = &s->rows[0];
            rc = sk_cx_planes_read(s->sp, k, need0, need1 - need0, pk, NULL);
            rc = rc ? rc : sk_psfmatch_set_rows(pmt, k, pk->sci, pk->weight, pk->flags, need0,
                                                need1 - need0);
            rc = rc ? rc : sk_psfmatch_rows(pmt, k, y0, y1, s->val[k], s->wgt[k], s->flg[k]);
            /* the artifact masks' REJECTED bit is kept for the output FLG */
            for (size_t i = 0; !rc && i < np; i++)
                s->flg[k][i] |= pk->flags[off + i] & SK_FLAG_REJECTED;
            sk_psfmatch_set_rows(pmt, k, NULL, NULL, NULL, 0, 0);
        }
        rc = rc ? rc : combine_planes(s->p, s->n, (size_t)y0 * (size_t)s->W, (long)np, s->val,
                                      s->wgt, s->flg, s->poisson, s->varcorr, s->r, &acc);
    }
    s->nrejected += acc.nrej;
    drop_rows(s);
    return rc;
}

/* The PSF-matched coadd: every input convolved to the target PSF, then combined. */
static int run_psfmatch(coaddx_state *s, sk_psf **coadd_psf)
{
    sk_coadd_result *r = s->r;
    sk_header *hd = r->image->header;
    sk_psfmatch_opts po;
    sk_psfmatch_opts_default(&po);
    po.psf_size = s->psf_size;
    po.threads = s->p->threads;
    if (s->x->tile_px > 0)
        po.tile_px = s->x->tile_px;
    sk_psfmatch *pmt = NULL;
    int rc = sk_psfmatch_new(s->ai, s->n, s->W, s->H, &s->x->target, &po, &pmt);
    rc = rc ? rc : psfmatch_bands(s, pmt, po.tile_px);
    if (!rc)
        rc = sk_header_set_double(hd, "VARCORR", r->varcorr,
                                  "large-aperture / per-pixel variance (mean)");
    if (!rc)
        rc = sk_header_set_double(hd, "PSFFWHM", sk_psfmatch_target_fwhm(pmt),
                                  "target PSF FWHM (pixels)");
    if (!rc)
        rc = sk_header_add_comment(hd, "COMMENT",
                                   "psfmatch: every input convolved to the target PSF, then "
                                   "combined");
    if (!rc && coadd_psf)
        rc = coadd_psf_model(psfmatch_psf_at, pmt, s->psf_size, s->grid, coadd_psf);
    if (!rc)
        sk_info("psfmatch: target FWHM %.3f px%s", sk_psfmatch_target_fwhm(pmt),
                sk_psfmatch_target_input(pmt) >= 0 ? " (the broadest input)" : "");
    sk_psfmatch_free(pmt);
    return rc;
}

/* NOISEPSF of the direct coadd of the resampled planes (direct.c's card):
 * each input's resampling covariance over the grid, weighted by its share
 * of the coadd's variance, 1 / (rho sigma^2) for a combine weight of
 * 1 / (rho v) per pixel, sigma^2 = rho v the plane's noise from its weight. */
static int direct_noise_card(coaddx_state *s)
{
    sk_kernel_table kt;
    int rc = sk_kernel_table_init(&kt, s->p->kernel);
    sk_noise_corr *c = rc ? NULL : calloc((size_t)s->n, sizeof *c);
    const sk_noise_corr **cp = rc ? NULL : malloc(sizeof *cp * (size_t)s->n);
    double *u = rc ? NULL : malloc(sizeof *u * (size_t)s->n);
    if (!rc && (!c || !cp || !u))
        rc = sk_error(SK_EIO, "coadd: out of memory");
    for (int k = 0; !rc && k < s->n; k++) {
        rc = sk_noise_corr_input(&kt, s->grid, s->pl[k].wcs, 0, 0, s->W, s->H, &c[k]);
        double rho = c[k].c ? c[k].rho : 1.0;
        cp[k] = &c[k];
        u[k] = s->sigma[k] > 0.0 ? 1.0 / (rho * s->sigma[k] * s->sigma[k]) : 0.0;
    }
    sk_noise_corr all = {0, 1.0, NULL};
    rc = rc ? rc : sk_noise_corr_combine(cp, u, s->n, &all);
    rc = rc ? rc : sk_header_set_double(s->r->image->header, "NOISEPSF",
                                        sk_noise_corr_factor(&all, SK_NOISEPSF_FWHM_PX),
                                        "PSF-fit / per-pixel-variance noise (resampling)");
    sk_noise_corr_clear(&all);
    for (int k = 0; c && k < s->n; k++)
        sk_noise_corr_clear(&c[k]);
    free(c);
    free(cp);
    free(u);
    sk_kernel_table_clear(&kt);
    return rc;
}

/* The direct coadd of the inputs' planes, band by band. */
static int run_direct(coaddx_state *s)
{
    combine_acc acc = {0.0, 0, 0};
    int rc = SK_OK;
    for (long y0 = 0; !rc && y0 < s->H; y0 += s->band_rows) {
        long y1 = y0 + s->band_rows < s->H ? y0 + s->band_rows : s->H;
        rc = all_rows(s, NULL, y0, y1);
        for (int k = 0; !rc && k < s->n; k++) {
            s->val[k] = s->rows[k].sci;
            s->wgt[k] = s->rows[k].weight;
            s->flg[k] = s->rows[k].flags;
        }
        rc = rc ? rc : combine_planes(s->p, s->n, (size_t)y0 * (size_t)s->W,
                                      (y1 - y0) * s->W, s->val, s->wgt, s->flg, s->poisson,
                                      s->varcorr, s->r, &acc);
    }
    s->nrejected += acc.nrej;
    for (int k = 0; k < s->n; k++)
        s->val[k] = s->wgt[k] = NULL, s->flg[k] = NULL;
    drop_rows(s);
    if (!rc)
        rc = sk_header_set_double(s->r->image->header, "VARCORR", s->r->varcorr,
                                  "large-aperture / per-pixel variance (mean)");
    return rc ? rc : direct_noise_card(s);
}

/* Are artifacts masked: when asked, and always for the proper and the
 * PSF-matched coadds, whose filters spread an unflagged outlier (a cosmic
 * ray) over a PSF-sized footprint of a few sigma that neither a later
 * clipping nor the weight map can tell from noise (the pixel noise of the
 * proper coadd rose 4 to 6 % above its weight map's with imsim's cosmic
 * rays, the mean coadd's by 1 %). */
static int masks_artifacts(const sk_coaddx_params *x)
{
    return x->artifact_masks || x->method == SK_COADDX_ZOGY || x->method == SK_COADDX_PSFMATCH;
}

/* The method's keywords: COMBINET (COMBINEP), the clipping, BGMATCH, ARTMASK. */
static int method_keywords(const coaddx_state *s)
{
    const sk_coadd_params *p = s->p;
    const sk_coaddx_params *x = s->x;
    sk_header *hd = s->r->image->header;
    /* upper case, as the engine writes them */
    char cname[32], pname[32];
    snprintf(cname, sizeof cname, "%s",
             x->method == SK_COADDX_DIRECT ? sk_combine_name(p->combine.method)
                                           : sk_coaddx_method_name(x->method));
    snprintf(pname, sizeof pname, "%s", sk_combine_name(p->combine.method));
    for (char *c = cname; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
    for (char *c = pname; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
    int rc = sk_header_set_str(hd, "COMBINET", cname, "combine method");
    if (!rc && x->method == SK_COADDX_PSFMATCH)
        rc = sk_header_set_str(hd, "COMBINEP", pname, "combine of the PSF-matched inputs");
    if (!rc && x->method != SK_COADDX_ZOGY && p->combine.method == SK_COMBINE_CLIPPED) {
        rc = sk_header_set_double(hd, "CLIPSIG", p->combine.clip_sigma, "clipping threshold (sigma)");
        rc = rc ? rc : sk_header_set_double(hd, "CLIPAMP", p->combine.clip_ampfrac,
                                            "allowed fractional deviation");
        rc = rc ? rc : sk_header_set_long(hd, "CLIPITER", p->combine.clip_iterations,
                                          "clipping passes at most");
    }
    if (!rc && x->background_match)
        rc = sk_header_set_bool(hd, "BGMATCH", 1, "input backgrounds matched");
    if (!rc && masks_artifacts(x))
        rc = sk_header_set_bool(hd, "ARTMASK", 1, "per-input artifact masks applied");
    return rc;
}

static void state_free(coaddx_state *s)
{
    if (s->pl)
        for (int k = 0; k < s->n; k++) {
            sk_image_free(s->pl[k].img);
            sk_wcs_free(s->pl[k].wcs_owned);
        }
    if (s->val && s->x->method == SK_COADDX_PSFMATCH)
        for (int k = 0; k < s->n; k++) {
            free(s->val[k]);
            free(s->wgt[k]);
            free(s->flg[k]);
        }
    if (s->rows)
        for (int k = 0; k < s->n; k++)
            sk_cx_planes_free(&s->rows[k]);
    free(s->rows);
    sk_band_free(&s->band);
    sk_band_free(&s->band2);
    for (int b = 0; b < 2; b++) {
        sk_image_free(s->rs[b]);
        free(s->rs_nimg[b]);
    }
    sk_cx_spill_free(s->sp);
    sk_artifact_masks_free(s->am);
    free(s->sigma0);
    free(s->sigma);
    free(s->pl);
    free(s->ai);
    free(s->poisson);
    free(s->varcorr);
    free(s->val);
    free(s->wgt);
    free(s->flg);
}

int sk_coaddx_run(const sk_coadd_input *in, int n, const sk_psf *const *psfs, const sk_grid *grid,
                  const sk_coadd_params *p, const sk_coaddx_params *x, sk_coadd_result **out,
                  sk_psf **coadd_psf)
{
    *out = NULL;
    if (coadd_psf)
        *coadd_psf = NULL;
    int needs_psf = x->method != SK_COADDX_DIRECT || x->artifact_masks;
    for (int k = 0; k < n && needs_psf; k++)
        if (!psfs || !psfs[k])
            return sk_error(SK_EINPUT, "%s: no PSF model (coaddition.method %s%s needs one)",
                            input_name(&in[k]), sk_coaddx_method_name(x->method),
                            x->artifact_masks ? " with artifact masks" : "");
    /* The engine's mean coadd gives the metadata, zero points, flux scales
     * and keywords; its pixels are replaced below. */
    sk_coadd_params pm = *p;
    pm.combine.method = SK_COMBINE_MEAN;
    coaddx_state s;
    memset(&s, 0, sizeof s);
    int rc = sk_coadd_run(in, n, grid, &pm, &s.r);
    if (rc)
        return rc;
    s.in = in;
    s.n = n;
    s.psfs = psfs;
    s.grid = grid;
    s.p = p;
    s.x = x;
    s.W = grid->width;
    s.H = grid->height;
    s.npix = (size_t)s.W * (size_t)s.H;
    s.band_rows = p->band_rows > 0 ? p->band_rows : sk_coadd_default_band_rows(n);
    s.pl = calloc((size_t)n, sizeof *s.pl);
    s.rows = calloc((size_t)n, sizeof *s.rows);
    s.sigma0 = calloc((size_t)n, sizeof(double));
    s.sigma = calloc((size_t)n, sizeof(double));
    s.ai = calloc((size_t)n, sizeof *s.ai);
    s.poisson = calloc((size_t)n, sizeof(double));
    s.varcorr = calloc((size_t)n, sizeof(double));
    s.val = calloc((size_t)n, sizeof(float *));
    s.wgt = calloc((size_t)n, sizeof(float *));
    s.flg = calloc((size_t)n, sizeof(uint16_t *));
    if (!s.pl || !s.ai || !s.poisson || !s.varcorr || !s.val || !s.wgt || !s.flg || !s.rows ||
        !s.sigma0 || !s.sigma)
        rc = sk_error(SK_EIO, "coadd: out of memory");
    rc = rc ? rc : sk_cx_spill_new(n, s.W, s.H, &s.sp);
    rc = rc ? rc : load_inputs(&s);
    if (!rc && x->background_match)
        rc = match_backgrounds(&s);
    if (!rc && masks_artifacts(x))
        rc = mask_artifacts(&s);
    if (!rc)
        rc = x->method == SK_COADDX_ZOGY       ? run_zogy(&s, coadd_psf)
             : x->method == SK_COADDX_PSFMATCH ? run_psfmatch(&s, coadd_psf)
                                               : run_direct(&s);
    rc = rc ? rc : method_keywords(&s);
    s.r->nrejected = s.nrejected;
    state_free(&s);
    if (rc) {
        sk_coadd_result_free(s.r);
        if (coadd_psf) {
            sk_psf_free(*coadd_psf);
            *coadd_psf = NULL;
        }
        return rc;
    }
    *out = s.r;
    return SK_OK;
}
