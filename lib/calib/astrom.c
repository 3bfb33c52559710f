/* astrom.c: the astrometric solution of an image: its sources matched to a reference catalog through an approximate WCS (pattern matching, then nearest neighbours) and a TAN + SIP fit, with the parameters from the configuration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/astrom.h"
#include "skystack/error.h"
#include "skystack/log.h"
#include "extract/params_priv.h"
#include "astrom_priv.h"
#include "astrom_internal.h"

void sk_astrom_params_default(sk_astrom_params *p)
{
    memset(p, 0, sizeof *p);
    p->sip_order = 0;
    p->min_matches = 6;
    p->match_radius_arcsec = 2.0;
    p->search_radius_arcsec = 60.0;
    p->max_rotation_deg = 2.0;
    p->max_scale_error = 0.02;
    p->clip_sigma = 3.0;
    p->pattern_stars = 40;
}

int sk_astrom_params_from_json(const json_t *root, sk_astrom_params *p)
{
    const json_t *sec = sk_extraction_section(root, "astrometry");
    if (!sec)
        return SK_OK;
    long order = p->sip_order;
    const char *path = "extraction.astrometry";
    int st = sk_section_long(sec, path, "sip_order", 0, 5, &order);
    if (!st) st = sk_section_long(sec, path, "min_matches", 3, 1000000, &p->min_matches);
    if (!st) st = sk_section_num(sec, path, "match_radius_arcsec", 1e-3, 3600, &p->match_radius_arcsec);
    if (!st) st = sk_section_num(sec, path, "search_radius_arcsec", 1e-3, 36000, &p->search_radius_arcsec);
    if (!st) st = sk_section_num(sec, path, "max_rotation_deg", 0, 45, &p->max_rotation_deg);
    if (!st) st = sk_section_num(sec, path, "max_scale_error", 0, 0.5, &p->max_scale_error);
    if (!st) st = sk_section_num(sec, path, "clip_sigma", 0.5, 1e6, &p->clip_sigma);
    if (!st) st = sk_section_long(sec, path, "pattern_stars", 6, 200, &p->pattern_stars);
    if (!st)
        p->sip_order = (int)order;
    return st;
}

void sk_astrom_result_free(sk_astrom_result *r)
{
    if (!r)
        return;
    sk_wcs_free(r->wcs);
    sk_header_free(r->header);
    free(r->src_index);
    free(r->ref_index);
    free(r);
}

/* Floor of the position errors in the fit's weights (px): what the
 * catalog's own errors and the centroids' systematics add. */
#define CENTROID_FLOOR_PX 0.03

typedef struct ranked {
    long idx;
    double key;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *p = a, *q = b;
    if (p->key != q->key)
        return (p->key > q->key) - (p->key < q->key);
    return (p->idx > q->idx) - (p->idx < q->idx);
}

/* The order the fit uses: as asked, or the highest of 3, 2, 1 with three
 * matches per term; TAN for tiny fields. */
static int auto_order(int asked, long nmatch, long width, long height)
{
    if (asked > 0)
        return asked;
    if ((width > height ? width : height) < 100)
        return 1;
    if (nmatch >= 30)
        return 3;
    if (nmatch >= 18)
        return 2;
    return 1;
}

/* The state of one solution: the usable sources and the reference stars
 * near the image, each brightest first, their pixel positions, and the
 * pairs being fitted. */
typedef struct {
    const sk_source_list *l;
    const sk_refcat *ref;
    const sk_astrom_params *p;
    long width, height;
    double cx, cy;          /* the image centre (0-based px) */
    double arcsec_per_px;    /* the initial WCS's pixel scale there (arcsec/px) */
    ranked *rs, *rr;        /* sources and reference stars used, in order */
    long ns, nr;
    double *sx, *sy;        /* source positions (px), in rs order */
    double *rx, *ry;        /* every reference star through the initial WCS (px) */
    double *px, *py;        /* the reference stars used (px), in rr order */
    double *fx, *fy;        /* scratch, then the pixel positions of the pairs */
    double *ra, *dec;       /* scratch, then the sky positions of the pairs (deg) */
    long *msrc, *mref;      /* the pairs: indices into rs and rr */
    long nm;
    char *keep;             /* the pairs the fit keeps */
    double *wt;             /* the pairs' weights */
    double *buf;
    long *mi;
} solve_ctx;

static void solve_free(solve_ctx *c)
{
    free(c->rs);
    free(c->rr);
    free(c->buf);
    free(c->mi);
    free(c->keep);
    free(c->wt);
    free(c->px);
    free(c->ra);
}

static int solve_alloc(solve_ctx *c)
{
    const sk_source_list *l = c->l;
    const sk_refcat *ref = c->ref;
    c->rs = malloc(sizeof *c->rs * (size_t)(l->n + 1));
    c->rr = malloc(sizeof *c->rr * (size_t)(ref->n + 1));
    c->buf = malloc(sizeof *c->buf * (size_t)(4 * (l->n + ref->n) + 8));
    c->mi = malloc(sizeof *c->mi * (size_t)(2 * l->n + 2));
    c->keep = malloc((size_t)(l->n + 1));
    c->wt = malloc(sizeof *c->wt * (size_t)(l->n + 1));
    if (!c->rs || !c->rr || !c->buf || !c->mi || !c->keep || !c->wt)
        return sk_error(SK_EIO, "astrometry: out of memory");
    c->sx = c->buf;
    c->sy = c->buf + l->n;
    c->rx = c->buf + 2 * l->n;
    c->ry = c->rx + ref->n;
    c->fx = c->ry + ref->n;
    c->fy = c->fx + l->n;
    c->msrc = c->mi;
    c->mref = c->mi + l->n + 1;
    return SK_OK;
}

/* The sources with a position and a positive flux, not artifacts,
 * brightest first, and their positions. */
static void rank_sources(solve_ctx *c)
{
    const sk_source_list *l = c->l;
    c->ns = 0;
    for (long k = 0; k < l->n; k++) {
        const sk_source *s = &l->src[k];
        double x = isfinite(s->xwin) ? s->xwin : s->x, y = isfinite(s->ywin) ? s->ywin : s->y;
        double f = s->flux_auto > 0 ? s->flux_auto : s->flux_iso;
        if (!isfinite(x) || !isfinite(y) || (s->flags & SK_SRC_ARTIFACT) || !(f > 0))
            continue;
        c->rs[c->ns].idx = k;
        c->rs[c->ns].key = -f;
        c->ns++;
    }
    qsort(c->rs, (size_t)c->ns, sizeof *c->rs, cmp_ranked);
    for (long i = 0; i < c->ns; i++) {
        const sk_source *s = &l->src[c->rs[i].idx];
        c->sx[i] = isfinite(s->xwin) ? s->xwin : s->x;
        c->sy[i] = isfinite(s->ywin) ? s->ywin : s->y;
    }
}

/* The catalog stars that the initial WCS puts on the image or within the
 * search margin of it, brightest first, and their pixel positions; the
 * buffers of the pairs. Fails when fewer than 3 stars or sources. */
static int rank_catalog(solve_ctx *c, const sk_wcs *initial)
{
    const sk_refcat *ref = c->ref;
    const sk_astrom_params *p = c->p;
    double halfdiag = 0.5 * hypot((double)c->width, (double)c->height);
    double search_px = p->search_radius_arcsec / c->arcsec_per_px;
    double margin = search_px + (p->max_rotation_deg * M_PI / 180.0 + p->max_scale_error) * halfdiag + 5.0;
    double *rx = c->rx, *ry = c->ry;
    c->nr = 0;
    if (ref->n > 0) {
        sk_wcs_sky2pix(initial, ref->n, ref->ra_deg, ref->dec_deg, rx, ry); /* NaN off the projection */
        for (long k = 0; k < ref->n; k++)
            if (isfinite(rx[k]) && isfinite(ry[k]) && rx[k] > -0.5 - margin && ry[k] > -0.5 - margin &&
                rx[k] < (double)c->width - 0.5 + margin && ry[k] < (double)c->height - 0.5 + margin) {
                c->rr[c->nr].idx = k;
                c->rr[c->nr].key = ref->mag[k];
                c->nr++;
            }
    }
    long nr = c->nr;
    qsort(c->rr, (size_t)nr, sizeof *c->rr, cmp_ranked);
    c->px = malloc(sizeof *c->px * (size_t)(2 * nr + 2));
    c->ra = malloc(sizeof *c->ra * (size_t)(2 * c->l->n + 2));
    if (!c->px || !c->ra)
        return sk_error(SK_EIO, "astrometry: out of memory");
    c->py = c->px + nr + 1;
    c->dec = c->ra + c->l->n + 1;
    for (long i = 0; i < nr; i++) {
        c->px[i] = rx[c->rr[i].idx];
        c->py[i] = ry[c->rr[i].idx];
    }
    long need = p->min_matches > 3 ? p->min_matches : 3;
    if (nr < 3)
        return sk_error(SK_ENOTFOUND, "astrometry: %ld reference stars fall on the image through its "
                        "WCS (need at least %ld): the catalog does not cover it, or the WCS is far off",
                        nr, need);
    if (c->ns < 3)
        return sk_error(SK_ENOTFOUND, "astrometry: %ld usable sources (need at least %ld)", c->ns, need);
    return SK_OK;
}

/* Tolerance of the pattern match and of the matches through its
 * transform (px). */
#define PATTERN_TOL_PX 3.0

/* Step 1: the similarity transform from a triangle pattern match of the
 * brightest sources and reference stars. */
static int pattern_step(const solve_ctx *c, astrom_sim *t)
{
    const sk_astrom_params *p = c->p;
    double search_px = p->search_radius_arcsec / c->arcsec_per_px;
    long support = 0;
    long nsp = c->ns < p->pattern_stars ? c->ns : p->pattern_stars;
    long nrp = c->nr < (p->pattern_stars * 3) / 2 ? c->nr : (p->pattern_stars * 3) / 2;
    if (astrom_pattern_match(c->sx, c->sy, nsp, c->px, c->py, nrp, c->cx, c->cy, p->max_rotation_deg,
                             p->max_scale_error, search_px + PATTERN_TOL_PX, PATTERN_TOL_PX, t,
                             &support) != 0)
        return sk_error(SK_ENOTFOUND, "astrometry: no pattern of the %ld brightest sources matches "
                        "the %ld brightest reference stars within %g\" and %g deg (best: %ld stars)",
                        nsp, nrp, p->search_radius_arcsec, p->max_rotation_deg, support);
    double cx = c->cx, cy = c->cy;
    sk_debug("astrometry: pattern match: %ld of %ld bright sources, shift %.2f px, rotation "
             "%.4f deg, scale %.5f", support, nsp, hypot(t->a * cx - t->b * cy + t->tx - cx,
             t->b * cx + t->a * cy + t->ty - cy), atan2(t->b, t->a) * 180 / M_PI, hypot(t->a, t->b));
    return SK_OK;
}

/* Step 2: nearest neighbours through the transform, which is refined on
 * all the pairs it makes (twice), then a first TAN fit of the pairs. */
static int transform_step(solve_ctx *c, astrom_sim *t, const sk_wcs *initial, astrom_fit_out *fit)
{
    const sk_refcat *ref = c->ref;
    double *fx = c->fx, *fy = c->fy, *ra = c->ra, *dec = c->dec;
    for (int it = 0; it < 3; it++) {
        for (long i = 0; i < c->ns; i++)
            astrom_sim_apply(t, c->sx[i], c->sy[i], &fx[i], &fy[i]);
        c->nm = astrom_nn_match(fx, fy, c->ns, c->px, c->py, c->nr, PATTERN_TOL_PX, c->msrc, c->mref);
        if (c->nm < 0)
            return sk_error(SK_EIO, "astrometry: out of memory");
        if (c->nm < 3)
            return sk_error(SK_ENOTFOUND, "astrometry: %ld matches through the pattern's transform", c->nm);
        if (it == 2)
            break;
        for (long m = 0; m < c->nm; m++) {
            fx[m] = c->sx[c->msrc[m]];
            fy[m] = c->sy[c->msrc[m]];
            ra[m] = c->px[c->mref[m]];
            dec[m] = c->py[c->mref[m]];
        }
        astrom_sim refined;
        if (astrom_sim_fit(fx, fy, ra, dec, c->nm, NULL, &refined) == 0)
            *t = refined;
    }
    for (long m = 0; m < c->nm; m++) {
        fx[m] = c->sx[c->msrc[m]];
        fy[m] = c->sy[c->msrc[m]];
        ra[m] = ref->ra_deg[c->rr[c->mref[m]].idx];
        dec[m] = ref->dec_deg[c->rr[c->mref[m]].idx];
        c->keep[m] = 1;
    }
    return astrom_fit_tansip(fx, fy, ra, dec, NULL, c->nm, c->keep, 1, c->width, c->height, initial,
                             c->p->clip_sigma, fit);
}

/* The pairs of nearest neighbours within the match radius between the
 * sources and the reference stars through `wcs`, with their positions and
 * weights: the centroid's variance plus a floor for the catalog's own
 * errors (CENTROID_FLOOR_PX). */
static int match_through_wcs(solve_ctx *c, const sk_wcs *wcs)
{
    const sk_refcat *ref = c->ref;
    long nr = c->nr;
    double *qra = malloc(sizeof *qra * (size_t)(2 * nr + 2));
    if (!qra)
        return sk_error(SK_EIO, "astrometry: out of memory");
    double *qdec = qra + nr + 1;
    for (long i = 0; i < nr; i++) {
        qra[i] = ref->ra_deg[c->rr[i].idx];
        qdec[i] = ref->dec_deg[c->rr[i].idx];
    }
    sk_wcs_sky2pix(wcs, nr, qra, qdec, c->px, c->py);
    free(qra);
    c->nm = astrom_nn_match(c->sx, c->sy, c->ns, c->px, c->py, nr,
                            c->p->match_radius_arcsec / c->arcsec_per_px, c->msrc, c->mref);
    if (c->nm < 0)
        return sk_error(SK_EIO, "astrometry: out of memory");
    for (long m = 0; m < c->nm; m++) {
        const sk_source *src = &c->l->src[c->rs[c->msrc[m]].idx];
        c->fx[m] = c->sx[c->msrc[m]];
        c->fy[m] = c->sy[c->msrc[m]];
        c->ra[m] = ref->ra_deg[c->rr[c->mref[m]].idx];
        c->dec[m] = ref->dec_deg[c->rr[c->mref[m]].idx];
        c->keep[m] = 1;
        double ex = isfinite(src->xwin_err) ? src->xwin_err : 0.1;
        double ey = isfinite(src->ywin_err) ? src->ywin_err : 0.1;
        /* the catalogue's own error at the image's epoch, when it gives one */
        double pe = ref->pos_err_arcsec ? ref->pos_err_arcsec[c->rr[c->mref[m]].idx] / c->arcsec_per_px : 0.0;
        if (!isfinite(pe))
            pe = 0.0;
        c->wt[m] = 1.0 / (0.5 * (ex * ex + ey * ey) + pe * pe + CENTROID_FLOOR_PX * CENTROID_FLOOR_PX);
    }
    return SK_OK;
}

/* Step 3: rounds of nearest neighbours through the fitted WCS and refits,
 * each at the highest order up to the asked or automatic one that the
 * pairs constrain. *order receives the order of the last fit, *ncand the
 * number of pairs it started from. */
static int refine_step(solve_ctx *c, astrom_fit_out *fit, int *order, long *ncand)
{
    for (int round = 0; round < 3; round++) {
        int st = match_through_wcs(c, fit->wcs);
        if (st)
            return st;
        *ncand = c->nm;
        *order = auto_order(c->p->sip_order, c->nm, c->width, c->height);
        astrom_fit_out next;
        memset(&next, 0, sizeof next);
        int rc = SK_ENOTFOUND;
        for (int o = *order; o >= 1 && rc; o--) {
            for (long m = 0; m < c->nm; m++)
                c->keep[m] = 1;
            rc = astrom_fit_tansip(c->fx, c->fy, c->ra, c->dec, c->wt, c->nm, c->keep, o, c->width,
                                   c->height, fit->wcs, c->p->clip_sigma, &next);
            if (!rc)
                *order = o;
            else if (rc != SK_ENOTFOUND)
                break;
        }
        if (rc)
            return rc;
        sk_header_free(fit->header);
        sk_wcs_free(fit->wcs);
        *fit = next;
        sk_debug("astrometry: round %d: %ld matches, %ld kept, order %d, rms %.4f\" (%.4f px)",
                 round, c->nm, fit->nkept, *order, fit->rms_arcsec, fit->rms_px);
    }
    return SK_OK;
}

/* The result from the final fit (whose WCS and header it takes over): the
 * kept pairs, the fit's quality and the pattern transform's offset,
 * rotation and scale. */
static int make_result(const solve_ctx *c, const astrom_sim *t, astrom_fit_out *fit, int order,
                       long ncand, sk_astrom_result **out)
{
    sk_astrom_result *r = calloc(1, sizeof *r);
    if (!r)
        return sk_error(SK_EIO, "astrometry: out of memory");
    *out = r;
    r->src_index = malloc(sizeof *r->src_index * (size_t)(fit->nkept + 1));
    r->ref_index = malloc(sizeof *r->ref_index * (size_t)(fit->nkept + 1));
    if (!r->src_index || !r->ref_index)
        return sk_error(SK_EIO, "astrometry: out of memory");
    long j = 0;
    for (long m = 0; m < c->nm; m++)
        if (c->keep[m]) {
            r->src_index[j] = c->rs[c->msrc[m]].idx;
            r->ref_index[j] = c->rr[c->mref[m]].idx;
            j++;
        }
    r->wcs = fit->wcs;
    r->header = fit->header;
    fit->wcs = NULL;
    fit->header = NULL;
    r->sip_order = order;
    r->nmatch = j;
    r->ncandidates = ncand;
    r->rms_arcsec = fit->rms_arcsec;
    r->rms_px = fit->rms_px;
    double X, Y;
    astrom_sim_apply(t, c->cx, c->cy, &X, &Y);
    r->offset_arcsec = hypot(X - c->cx, Y - c->cy) * c->arcsec_per_px;
    r->rotation_deg = atan2(t->b, t->a) * 180.0 / M_PI;
    r->scale_ratio = hypot(t->a, t->b);
    int st = sk_header_set_double(r->header, "ASTRRMS1", fit->rms1_deg, "[deg] astrometric rms, axis 1");
    if (!st) st = sk_header_set_double(r->header, "ASTRRMS2", fit->rms2_deg, "[deg] astrometric rms, axis 2");
    if (!st) st = sk_header_set_long(r->header, "ASTRNMAT", j, "reference stars in the fit");
    return st;
}

int sk_astrom_solve(const sk_source_list *l, long width, long height, const sk_wcs *initial,
                    const sk_refcat *ref, const sk_astrom_params *p, sk_astrom_result **out)
{
    *out = NULL;
    if (!initial)
        return sk_error(SK_EINPUT, "astrometry: the image has no initial WCS to start from");
    if (width < 2 || height < 2)
        return sk_error(SK_EINPUT, "astrometry: image of %ldx%ld pixels", width, height);
    solve_ctx c = { .l = l, .ref = ref, .p = p, .width = width, .height = height,
                    .cx = 0.5 * (double)(width - 1), .cy = 0.5 * (double)(height - 1) };
    c.arcsec_per_px = sk_wcs_pixel_scale_arcsec(initial, c.cx, c.cy);
    if (!(c.arcsec_per_px > 0) || !isfinite(c.arcsec_per_px))
        return sk_error(SK_EINPUT, "astrometry: the initial WCS has no pixel scale at the image centre");

    astrom_sim t = {1, 0, 0, 0};
    astrom_fit_out fit;
    memset(&fit, 0, sizeof fit);
    int order = 1;
    long ncand = 0;
    int st = solve_alloc(&c);
    if (!st) {
        rank_sources(&c);
        st = rank_catalog(&c, initial);
    }
    if (!st) st = pattern_step(&c, &t);
    if (!st) st = transform_step(&c, &t, initial, &fit);
    ncand = c.nm;
    if (!st) st = refine_step(&c, &fit, &order, &ncand);
    if (!st && fit.nkept < p->min_matches)
        st = sk_error(SK_ENOTFOUND, "astrometry: %ld matches with the reference catalog, fewer than "
                      "the minimum %ld (extraction.astrometry.min_matches): no solution", fit.nkept,
                      p->min_matches);
    sk_astrom_result *r = NULL;
    if (!st)
        st = make_result(&c, &t, &fit, order, ncand, &r);
    sk_header_free(fit.header);
    sk_wcs_free(fit.wcs);
    solve_free(&c);
    if (st) {
        sk_astrom_result_free(r);
        return st;
    }
    *out = r;
    return SK_OK;
}
