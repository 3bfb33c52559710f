/* astrom.c: the astrometric solution of an image: its sources matched to a reference catalog through an approximate WCS (pattern matching, then nearest neighbours) and a TAN + SIP fit, with the parameters from the configuration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/astrom.h"
#include "skystack/error.h"
#include "skystack/log.h"
#include "astrom_priv.h"

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

static int json_num(const json_t *sec, const char *key, double lo, double hi, double *v)
{
    json_t *j = json_object_get(sec, key);
    if (!j || json_is_null(j))
        return SK_OK;
    if (!json_is_number(j))
        return sk_error(SK_EINPUT, "extraction.astrometry.%s: not a number", key);
    double d = json_number_value(j);
    if (!(d >= lo && d <= hi))
        return sk_error(SK_EINPUT, "extraction.astrometry.%s: %g is outside [%g, %g]", key, d, lo, hi);
    *v = d;
    return SK_OK;
}

static int json_long(const json_t *sec, const char *key, long lo, long hi, long *v)
{
    double d = (double)*v;
    int st = json_num(sec, key, (double)lo, (double)hi, &d);
    if (!st && d != floor(d))
        st = sk_error(SK_EINPUT, "extraction.astrometry.%s: %g is not an integer", key, d);
    if (!st)
        *v = (long)d;
    return st;
}

int sk_astrom_params_from_json(const json_t *root, sk_astrom_params *p)
{
    const json_t *ex = json_object_get(root, "extraction");
    const json_t *sec = json_object_get(ex ? ex : root, "astrometry");
    if (!sec)
        return SK_OK;
    long order = p->sip_order;
    int st = json_long(sec, "sip_order", 0, 5, &order);
    if (!st) st = json_long(sec, "min_matches", 3, 1000000, &p->min_matches);
    if (!st) st = json_num(sec, "match_radius_arcsec", 1e-3, 3600, &p->match_radius_arcsec);
    if (!st) st = json_num(sec, "search_radius_arcsec", 1e-3, 36000, &p->search_radius_arcsec);
    if (!st) st = json_num(sec, "max_rotation_deg", 0, 45, &p->max_rotation_deg);
    if (!st) st = json_num(sec, "max_scale_error", 0, 0.5, &p->max_scale_error);
    if (!st) st = json_num(sec, "clip_sigma", 0.5, 1e6, &p->clip_sigma);
    if (!st) st = json_long(sec, "pattern_stars", 6, 200, &p->pattern_stars);
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

int sk_astrom_solve(const sk_source_list *l, long width, long height, const sk_wcs *initial,
                    const sk_refcat *ref, const sk_astrom_params *p, sk_astrom_result **out)
{
    *out = NULL;
    if (!initial)
        return sk_error(SK_EINPUT, "astrometry: the image has no initial WCS to start from");
    if (width < 2 || height < 2)
        return sk_error(SK_EINPUT, "astrometry: image of %ldx%ld pixels", width, height);
    double cx = 0.5 * (double)(width - 1), cy = 0.5 * (double)(height - 1);
    double scale = sk_wcs_pixel_scale_arcsec(initial, cx, cy);
    if (!(scale > 0) || !isfinite(scale))
        return sk_error(SK_EINPUT, "astrometry: the initial WCS has no pixel scale at the image centre");

    /* sources, brightest first */
    long ns = 0, nr = 0;
    ranked *rs = malloc(sizeof *rs * (size_t)(l->n + 1));
    ranked *rr = malloc(sizeof *rr * (size_t)(ref->n + 1));
    double *buf = malloc(sizeof *buf * (size_t)(4 * (l->n + ref->n) + 8));
    long *mi = malloc(sizeof *mi * (size_t)(2 * l->n + 2));
    char *keep = malloc((size_t)(l->n + 1));
    double *wt = malloc(sizeof *wt * (size_t)(l->n + 1));
    if (!rs || !rr || !buf || !mi || !keep || !wt) {
        free(rs); free(rr); free(buf); free(mi); free(keep); free(wt);
        return sk_error(SK_EIO, "astrometry: out of memory");
    }
    double *sx = buf, *sy = buf + l->n, *rx = buf + 2 * l->n, *ry = rx + ref->n;
    double *fx = ry + ref->n, *fy = fx + l->n;
    long *msrc = mi, *mref = mi + l->n + 1;
    for (long k = 0; k < l->n; k++) {
        const sk_source *s = &l->src[k];
        double x = isfinite(s->xwin) ? s->xwin : s->x, y = isfinite(s->ywin) ? s->ywin : s->y;
        double f = s->flux_auto > 0 ? s->flux_auto : s->flux_iso;
        if (!isfinite(x) || !isfinite(y) || (s->flags & SK_SRC_ARTIFACT) || !(f > 0))
            continue;
        rs[ns].idx = k;
        rs[ns].key = -f;
        ns++;
    }
    qsort(rs, (size_t)ns, sizeof *rs, cmp_ranked);
    for (long i = 0; i < ns; i++) {
        const sk_source *s = &l->src[rs[i].idx];
        sx[i] = isfinite(s->xwin) ? s->xwin : s->x;
        sy[i] = isfinite(s->ywin) ? s->ywin : s->y;
    }

    /* catalog stars projected through the initial WCS, brightest first */
    double halfdiag = 0.5 * hypot((double)width, (double)height);
    double search_px = p->search_radius_arcsec / scale;
    double margin = search_px + (p->max_rotation_deg * M_PI / 180.0 + p->max_scale_error) * halfdiag + 5.0;
    int st = SK_OK;
    if (ref->n > 0) {
        sk_wcs_sky2pix(initial, ref->n, ref->ra_deg, ref->dec_deg, rx, ry); /* NaN off the projection */
        for (long k = 0; k < ref->n; k++)
            if (isfinite(rx[k]) && isfinite(ry[k]) && rx[k] > -0.5 - margin && ry[k] > -0.5 - margin &&
                rx[k] < (double)width - 0.5 + margin && ry[k] < (double)height - 0.5 + margin) {
                rr[nr].idx = k;
                rr[nr].key = ref->mag[k];
                nr++;
            }
    }
    qsort(rr, (size_t)nr, sizeof *rr, cmp_ranked);
    double *px = malloc(sizeof *px * (size_t)(2 * nr + 2));
    double *ra = malloc(sizeof *ra * (size_t)(2 * l->n + 2));
    if (!px || !ra)
        st = sk_error(SK_EIO, "astrometry: out of memory");
    double *py = px ? px + nr + 1 : NULL, *dec = ra ? ra + l->n + 1 : NULL;
    for (long i = 0; !st && i < nr; i++) {
        px[i] = rx[rr[i].idx];
        py[i] = ry[rr[i].idx];
    }
    if (!st && nr < 3)
        st = sk_error(SK_ENOTFOUND, "astrometry: %ld reference stars fall on the image through its "
                      "WCS (need at least %ld): the catalog does not cover it, or the WCS is far off",
                      nr, p->min_matches > 3 ? p->min_matches : 3);
    if (!st && ns < 3)
        st = sk_error(SK_ENOTFOUND, "astrometry: %ld usable sources (need at least %ld)", ns,
                      p->min_matches > 3 ? p->min_matches : 3);

    /* 1. pattern match of the brightest */
    astrom_sim t = {1, 0, 0, 0};
    long support = 0;
    const double tol_px = 3.0;
    if (!st) {
        long nsp = ns < p->pattern_stars ? ns : p->pattern_stars;
        long nrp = nr < (p->pattern_stars * 3) / 2 ? nr : (p->pattern_stars * 3) / 2;
        if (astrom_pattern_match(sx, sy, nsp, px, py, nrp, cx, cy, p->max_rotation_deg,
                                 p->max_scale_error, search_px + tol_px, tol_px, &t, &support) != 0)
            st = sk_error(SK_ENOTFOUND, "astrometry: no pattern of the %ld brightest sources matches "
                          "the %ld brightest reference stars within %g\" and %g deg (best: %ld stars)",
                          nsp, nrp, p->search_radius_arcsec, p->max_rotation_deg, support);
        else
            sk_debug("astrometry: pattern match: %ld of %ld bright sources, shift %.2f px, rotation "
                     "%.4f deg, scale %.5f", support, nsp, hypot(t.a * cx - t.b * cy + t.tx - cx,
                     t.b * cx + t.a * cy + t.ty - cy), atan2(t.b, t.a) * 180 / M_PI, hypot(t.a, t.b));
    }

    /* 2. through the transform (refined on all the pairs it makes),
       nearest neighbours; a first TAN fit */
    astrom_fit_out fit;
    memset(&fit, 0, sizeof fit);
    long nm = 0;
    for (int it = 0; !st && it < 3; it++) {
        for (long i = 0; i < ns; i++)
            astrom_sim_apply(&t, sx[i], sy[i], &fx[i], &fy[i]);
        nm = astrom_nn_match(fx, fy, ns, px, py, nr, tol_px, msrc, mref);
        if (nm < 0)
            st = sk_error(SK_EIO, "astrometry: out of memory");
        else if (nm < 3)
            st = sk_error(SK_ENOTFOUND, "astrometry: %ld matches through the pattern's transform", nm);
        else if (it < 2) {
            for (long m = 0; m < nm; m++) {
                fx[m] = sx[msrc[m]];
                fy[m] = sy[msrc[m]];
                ra[m] = px[mref[m]];
                dec[m] = py[mref[m]];
            }
            astrom_sim refined;
            if (astrom_sim_fit(fx, fy, ra, dec, nm, NULL, &refined) == 0)
                t = refined;
        }
    }
    if (!st) {
        for (long m = 0; m < nm; m++) {
            fx[m] = sx[msrc[m]];
            fy[m] = sy[msrc[m]];
            ra[m] = ref->ra_deg[rr[mref[m]].idx];
            dec[m] = ref->dec_deg[rr[mref[m]].idx];
            keep[m] = 1;
        }
        st = astrom_fit_tansip(fx, fy, ra, dec, NULL, nm, keep, 1, width, height, initial,
                               p->clip_sigma, &fit);
    }

    /* 3. rounds of nearest neighbours through the fitted WCS and refits */
    int order = 1;
    long ncand = nm;
    for (int round = 0; !st && round < 3; round++) {
        double *qra = malloc(sizeof *qra * (size_t)(2 * nr + 2));
        if (!qra) {
            st = sk_error(SK_EIO, "astrometry: out of memory");
            break;
        }
        double *qdec = qra + nr + 1;
        for (long i = 0; i < nr; i++) {
            qra[i] = ref->ra_deg[rr[i].idx];
            qdec[i] = ref->dec_deg[rr[i].idx];
        }
        sk_wcs_sky2pix(fit.wcs, nr, qra, qdec, px, py);
        free(qra);
        nm = astrom_nn_match(sx, sy, ns, px, py, nr, p->match_radius_arcsec / scale, msrc, mref);
        if (nm < 0) {
            st = sk_error(SK_EIO, "astrometry: out of memory");
            break;
        }
        ncand = nm;
        order = auto_order(p->sip_order, nm, width, height);
        for (long m = 0; m < nm; m++) {
            const sk_source *src = &l->src[rs[msrc[m]].idx];
            fx[m] = sx[msrc[m]];
            fy[m] = sy[msrc[m]];
            ra[m] = ref->ra_deg[rr[mref[m]].idx];
            dec[m] = ref->dec_deg[rr[mref[m]].idx];
            keep[m] = 1;
            /* weight: the centroid's variance plus a floor for the
               catalog's own errors (CENTROID_FLOOR_PX) */
            double ex = isfinite(src->xwin_err) ? src->xwin_err : 0.1;
            double ey = isfinite(src->ywin_err) ? src->ywin_err : 0.1;
            wt[m] = 1.0 / (0.5 * (ex * ex + ey * ey) + CENTROID_FLOOR_PX * CENTROID_FLOOR_PX);
        }
        astrom_fit_out next;
        memset(&next, 0, sizeof next);
        int rc = SK_ENOTFOUND;
        for (int o = order; o >= 1 && rc; o--) {
            for (long m = 0; m < nm; m++)
                keep[m] = 1;
            rc = astrom_fit_tansip(fx, fy, ra, dec, wt, nm, keep, o, width, height, fit.wcs,
                                   p->clip_sigma, &next);
            if (!rc)
                order = o;
            else if (rc != SK_ENOTFOUND)
                break;
        }
        if (rc) {
            st = rc;
            break;
        }
        sk_header_free(fit.header);
        sk_wcs_free(fit.wcs);
        fit = next;
        sk_debug("astrometry: round %d: %ld matches, %ld kept, order %d, rms %.4f\" (%.4f px)",
                 round, nm, fit.nkept, order, fit.rms_arcsec, fit.rms_px);
    }
    if (!st && fit.nkept < p->min_matches)
        st = sk_error(SK_ENOTFOUND, "astrometry: %ld matches with the reference catalog, fewer than "
                      "the minimum %ld (extraction.astrometry.min_matches): no solution", fit.nkept,
                      p->min_matches);

    sk_astrom_result *r = st ? NULL : calloc(1, sizeof *r);
    if (!st && !r)
        st = sk_error(SK_EIO, "astrometry: out of memory");
    if (!st) {
        r->src_index = malloc(sizeof *r->src_index * (size_t)(fit.nkept + 1));
        r->ref_index = malloc(sizeof *r->ref_index * (size_t)(fit.nkept + 1));
        if (!r->src_index || !r->ref_index)
            st = sk_error(SK_EIO, "astrometry: out of memory");
    }
    if (!st) {
        long j = 0;
        for (long m = 0; m < nm; m++)
            if (keep[m]) {
                r->src_index[j] = rs[msrc[m]].idx;
                r->ref_index[j] = rr[mref[m]].idx;
                j++;
            }
        r->wcs = fit.wcs;
        r->header = fit.header;
        fit.wcs = NULL;
        fit.header = NULL;
        r->sip_order = order;
        r->nmatch = j;
        r->ncandidates = ncand;
        r->rms_arcsec = fit.rms_arcsec;
        r->rms_px = fit.rms_px;
        double X, Y;
        astrom_sim_apply(&t, cx, cy, &X, &Y);
        r->offset_arcsec = hypot(X - cx, Y - cy) * scale;
        r->rotation_deg = atan2(t.b, t.a) * 180.0 / M_PI;
        r->scale_ratio = hypot(t.a, t.b);
        st = sk_header_set_double(r->header, "ASTRRMS1", fit.rms1_deg, "[deg] astrometric rms, axis 1");
        if (!st) st = sk_header_set_double(r->header, "ASTRRMS2", fit.rms2_deg, "[deg] astrometric rms, axis 2");
        if (!st) st = sk_header_set_long(r->header, "ASTRNMAT", j, "reference stars in the fit");
    }
    sk_header_free(fit.header);
    sk_wcs_free(fit.wcs);
    free(rs);
    free(rr);
    free(buf);
    free(mi);
    free(keep);
    free(wt);
    free(px);
    free(ra);
    if (st) {
        sk_astrom_result_free(r);
        return st;
    }
    *out = r;
    return SK_OK;
}
