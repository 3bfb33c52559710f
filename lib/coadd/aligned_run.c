/* aligned_run.c: the proper and PSF-matched coadds, background matching and artifact masks on real inputs: every input read and resampled whole onto the grid as the coadd engine does it, then these steps and methods. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* Read input k whole as the engine does (background subtracted, scaled)
 * and resample it onto the grid. */
static int load_plane(const sk_coadd_input *in, double scale, const sk_grid *grid,
                      const sk_coadd_params *p, plane *pl)
{
    sk_band_source *src = NULL;
    int rc = sk_band_source_open(in, &src);
    if (rc)
        return rc;
    long w = sk_band_source_width(src), h = sk_band_source_height(src);
    if (in->wcs)
        pl->wcs = in->wcs;
    else if (in->image && in->image->wcs)
        pl->wcs = in->image->wcs;
    else {
        const sk_header *hd = sk_band_source_header(src);
        if (!hd || sk_wcs_from_header(hd, &pl->wcs_owned) != SK_OK) {
            sk_band_source_close(src);
            return sk_error(SK_EINPUT, "%s: no usable WCS", in->name ? in->name : in->path);
        }
        pl->wcs = pl->wcs_owned;
    }
    sk_band b;
    memset(&b, 0, sizeof b);
    rc = sk_band_alloc(&b, 0, 0, w, h, w, h);
    if (!rc)
        rc = sk_band_source_read(src, scale, &b);
    sk_band_source_close(src);
    sk_image *tmp = NULL;
    if (!rc) {
        tmp = sk_image_new(w, h);
        if (!tmp)
            rc = sk_error(SK_EIO, "coadd: out of memory");
    }
    if (!rc) {
        size_t n = (size_t)w * (size_t)h;
        memcpy(tmp->sci, b.sci, n * sizeof(float));
        memcpy(tmp->flags, b.flags, n * sizeof(uint16_t));
        for (size_t i = 0; i < n; i++)
            tmp->weight[i] = b.var[i] > 0.0f ? 1.0f / b.var[i] : 0.0f;
        tmp->wcs = (struct sk_wcs *)pl->wcs;
        rc = sk_resample_image(tmp, NULL, 1.0, grid, p->kernel, p->tolerance_px,
                               p->threads > 0 ? p->threads : 1, &pl->img);
        tmp->wcs = NULL;
    }
    sk_image_free(tmp);
    sk_band_free(&b);
    return rc;
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

/* Per-pixel combine of aligned planes with the coadd's combine method. */
static int combine_planes(const sk_coadd_params *p, int n, long npix, float *const *val,
                          float *const *wgt, uint16_t *const *flg, const double *poisson,
                          const double *varcorr, sk_coadd_result *r, long *nrejected)
{
    sk_combine_in *ci = malloc(sizeof(sk_combine_in) * (size_t)n);
    double *scratch = malloc(sizeof(double) * 3 * (size_t)n);
    if (!ci || !scratch) {
        free(ci);
        free(scratch);
        return sk_error(SK_EIO, "coadd: out of memory");
    }
    double vc_sum = 0.0;
    long vc_n = 0, nrej = 0;
    for (long i = 0; i < npix; i++) {
        int k = 0;
        uint16_t orf = 0;
        for (int j = 0; j < n; j++) {
            orf |= flg[j][i];
            float w = wgt[j][i];
            if (!(w > 0.0f) || (flg[j][i] & SK_COADDX_MASK_DEFAULT))
                continue;
            ci[k].value = val[j][i];
            ci[k].var = 1.0f / w;
            ci[k].cweight = (float)(w / varcorr[j]);
            ci[k].poisson = (float)poisson[j];
            k++;
        }
        sk_combine_out o;
        sk_combine_pixel(&p->combine, ci, k, scratch, &o);
        r->image->sci[i] = o.nused > 0 ? o.value : 0.0f;
        r->image->weight[i] = o.nused > 0 ? o.weight : 0.0f;
        uint16_t f = 0;
        if (o.nused == 0)
            f = orf ? orf : SK_FLAG_EDGE;
        if (o.nrejected > 0 || (orf & SK_FLAG_REJECTED))
            f |= SK_FLAG_REJECTED;
        r->image->flags[i] = f;
        r->nimg[i] = o.nused;
        nrej += o.nrejected;
        if (o.nused > 0 && o.weight > 0.0f && o.var_large > 0.0) {
            vc_sum += o.var_large * o.weight;
            vc_n++;
        }
    }
    r->varcorr = vc_n ? vc_sum / (double)vc_n : 1.0;
    *nrejected += nrej;
    free(ci);
    free(scratch);
    return SK_OK;
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

/* The state of one sk_coaddx_run: the engine's result, the inputs on the
 * grid and the planes handed to the combine. */
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
    plane *pl;
    sk_aligned_input *ai;
    double *poisson, *varcorr;
    float **val, **wgt;
    uint16_t **flg;
    long nrejected;
} coaddx_state;

static const char *input_name(const sk_coadd_input *in)
{
    return in->name ? in->name : in->path ? in->path : "input";
}

/* Every input resampled onto the grid as an aligned input; the PSF stamp
 * size (odd, at least 11) from the largest input PSF unless given. */
static int load_inputs(coaddx_state *s)
{
    const sk_coadd_params *p = s->p;
    const sk_grid *grid = s->grid;
    s->psf_size = s->x->psf_size;
    for (int k = 0; k < s->n; k++) {
        const char *name = input_name(&s->in[k]);
        plane *pk = &s->pl[k];
        sk_aligned_input *ak = &s->ai[k];
        int rc = load_plane(&s->in[k], s->r->info[k].flux_scale, grid, p, pk);
        if (rc) {
            sk_error_context("%s", name);
            return rc;
        }
        pk->poisson = s->in[k].gain > 0.0 ? s->r->info[k].flux_scale / s->in[k].gain : 0.0;
        s->poisson[k] = pk->poisson;
        s->varcorr[k] = 1.0;
        ak->sci = pk->img->sci;
        ak->weight = pk->img->weight;
        ak->flags = pk->img->flags;
        ak->row0 = 0;
        ak->nrows = s->H;
        ak->flux_scale = 1.0;
        ak->poisson = pk->poisson;
        pk->gpsf.in_wcs = pk->wcs;
        pk->gpsf.out_wcs = grid->wcs;
        ak->map = sk_grid_map;
        ak->map_ctx = &pk->gpsf;
        ak->kernel = p->kernel;
        if (s->psfs && s->psfs[k]) {
            pk->gpsf.psf = s->psfs[k];
            ak->psf = sk_grid_psf_stamp;
            ak->psf_ctx = &pk->gpsf;
            if (!s->x->psf_size) {
                long sz = (long)ceil(sk_psf_stamp_size(s->psfs[k]) * scale_ratio(pk, grid));
                sz |= 1;
                if (sz > s->psf_size)
                    s->psf_size = sz;
            }
        }
        sk_debug("%s: resampled onto the grid for %s", name, sk_coaddx_method_name(s->x->method));
    }
    if (s->psf_size < 11)
        s->psf_size = 11;
    s->psf_size |= 1;
    return SK_OK;
}

/* Background matching: each input's difference from the others fitted and
 * subtracted (bgmatch.c). */
static int match_backgrounds(coaddx_state *s)
{
    sk_bgmatch_opts bo;
    sk_bgmatch_opts_default(&bo);
    bo.degree = s->x->background_degree;
    sk_bgmatch *bm = NULL;
    int rc = sk_bgmatch_new(s->n, s->W, s->H, &bo, &bm);
    rc = rc ? rc : sk_bgmatch_add_rows(bm, s->ai, 0, s->H);
    rc = rc ? rc : sk_bgmatch_solve(bm);
    if (!rc) {
        for (int k = 0; k < s->n; k++)
            sk_bgmatch_apply_rows(bm, k, 0, s->H, s->pl[k].img->sci);
        sk_bgmatch_log(bm);
        rc = sk_bgmatch_write_header(bm, s->r->image->header);
    }
    sk_bgmatch_free(bm);
    return rc;
}

/* Artifact masks (artifact.c) applied to the inputs' weights and flags,
 * counted per input in ARTPIXn. */
static int mask_artifacts(coaddx_state *s)
{
    sk_artifact_opts ao;
    sk_artifact_opts_default(&ao);
    ao.psf_size = s->psf_size;
    ao.threads = s->p->threads;
    sk_artifact_masks *am = NULL;
    int rc = sk_artifact_detect(s->ai, s->n, s->W, s->H, &ao, &am);
    for (int k = 0; !rc && k < s->n; k++) {
        long m = sk_artifact_apply_rows(am, k, 0, s->H, s->pl[k].img->weight, s->pl[k].img->flags);
        s->nrejected += m;
        char key[32];
        snprintf(key, sizeof key, "ARTPIX%d", k + 1);
        rc = sk_header_set_long(s->r->image->header, key, m, "pixels masked as artifacts");
        if (!rc && m)
            sk_info("artifact masks: input %d: %ld footprint%s, %ld pixels", k + 1,
                    am->nfootprints[k], am->nfootprints[k] == 1 ? "" : "s", m);
    }
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

/* The proper coadd (zogy.c) into the result, its flux scale, zero point and PSF. */
static int run_zogy(coaddx_state *s, sk_psf **coadd_psf)
{
    sk_coadd_result *r = s->r;
    sk_header *hd = r->image->header;
    sk_zogy_opts zo;
    sk_zogy_opts_default(&zo);
    zo.psf_size = s->psf_size;
    zo.threads = s->p->threads;
    sk_zogy *z = NULL;
    uint16_t *nimg16 = malloc(sizeof(uint16_t) * s->npix);
    int rc = nimg16 ? SK_OK : sk_error(SK_EIO, "coadd: out of memory");
    rc = rc ? rc : sk_zogy_new(s->ai, s->n, s->W, s->H, &zo, &z);
    rc = rc ? rc : sk_zogy_rows(z, 0, s->H, r->image->sci, r->image->weight, r->image->flags, nimg16);
    if (rc) {
        sk_zogy_free(z);
        free(nimg16);
        return rc;
    }
    for (size_t i = 0; i < s->npix; i++)
        r->nimg[i] = nimg16[i];
    free(nimg16);
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

/* Input k convolved to the target PSF into val/wgt/flg[k] (psfmatch.c);
 * its grid plane is released. */
static int match_input(coaddx_state *s, sk_psfmatch *pmt, int k)
{
    s->val[k] = malloc(sizeof(float) * s->npix);
    s->wgt[k] = malloc(sizeof(float) * s->npix);
    s->flg[k] = malloc(sizeof(uint16_t) * s->npix);
    if (!s->val[k] || !s->wgt[k] || !s->flg[k])
        return sk_error(SK_EIO, "coadd: out of memory for the PSF-matched inputs");
    int rc = sk_psfmatch_rows(pmt, k, 0, s->H, s->val[k], s->wgt[k], s->flg[k]);
    if (rc)
        return rc;
    /* the artifact masks' REJECTED bit is kept for the output FLG */
    for (size_t i = 0; i < s->npix; i++)
        s->flg[k][i] |= s->pl[k].img->flags[i] & SK_FLAG_REJECTED;
    s->varcorr[k] = sk_psfmatch_varcorr(pmt, k);
    if (!(s->varcorr[k] > 0.0))
        s->varcorr[k] = 1.0;
    /* only the matched plane is needed from now on */
    sk_image_free(s->pl[k].img);
    s->pl[k].img = NULL;
    s->ai[k].sci = NULL;
    s->ai[k].weight = NULL;
    s->ai[k].flags = NULL;
    s->ai[k].nrows = 0;
    return SK_OK;
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
    sk_psfmatch *pmt = NULL;
    int rc = sk_psfmatch_new(s->ai, s->n, s->W, s->H, &s->x->target, &po, &pmt);
    for (int k = 0; !rc && k < s->n; k++)
        rc = match_input(s, pmt, k);
    rc = rc ? rc : combine_planes(s->p, s->n, (long)s->npix, s->val, s->wgt, s->flg, s->poisson,
                                  s->varcorr, r, &s->nrejected);
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

/* The direct coadd of the resampled planes. */
static int run_direct(coaddx_state *s)
{
    for (int k = 0; k < s->n; k++) {
        s->val[k] = s->pl[k].img->sci;
        s->wgt[k] = s->pl[k].img->weight;
        s->flg[k] = s->pl[k].img->flags;
    }
    int rc = combine_planes(s->p, s->n, (long)s->npix, s->val, s->wgt, s->flg, s->poisson,
                            s->varcorr, s->r, &s->nrejected);
    for (int k = 0; k < s->n; k++)
        s->val[k] = s->wgt[k] = NULL, s->flg[k] = NULL;
    if (!rc)
        rc = sk_header_set_double(s->r->image->header, "VARCORR", s->r->varcorr,
                                  "large-aperture / per-pixel variance (mean)");
    return rc;
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
    s.pl = calloc((size_t)n, sizeof *s.pl);
    s.ai = calloc((size_t)n, sizeof *s.ai);
    s.poisson = calloc((size_t)n, sizeof(double));
    s.varcorr = calloc((size_t)n, sizeof(double));
    s.val = calloc((size_t)n, sizeof(float *));
    s.wgt = calloc((size_t)n, sizeof(float *));
    s.flg = calloc((size_t)n, sizeof(uint16_t *));
    if (!s.pl || !s.ai || !s.poisson || !s.varcorr || !s.val || !s.wgt || !s.flg)
        rc = sk_error(SK_EIO, "coadd: out of memory");
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
