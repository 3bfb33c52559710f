/* photcal.c: photometric calibration: the zero point from matched catalog stars (weighted, clipped mean), its uncertainty, aperture corrections, and the 5-sigma limiting magnitude from the PSF and the background noise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/log.h"
#include "skystack/photcal.h"
#include "extract/params_priv.h"
#include "numeric/stats.h"
#include "extract/extract_internal.h"
#include "photcal_priv.h"
#include "extract/psf_internal.h"

#define MAG_PER_LN (2.5 / M_LN10) /* 1.0857: mag error of a relative flux error */

void sk_photcal_params_default(sk_photcal_params *p)
{
    memset(p, 0, sizeof *p);
    p->clip_sigma = 3.0;
    p->min_stars = 3;
    p->min_snr = 10.0;
    p->error_floor = 0.005;
    p->max_chi2_ratio = 1.5;
    p->max_aperture_excess = 4.0;
    p->neighbour_radius_fwhm = 2.0;
    p->neighbour_flux_ratio = 0.1;
    p->max_ref_contamination = 0.01;
}

int sk_photcal_params_from_json(const json_t *root, sk_photcal_params *p)
{
    const json_t *sec = sk_extraction_section(root, "photometric");
    if (!sec)
        return SK_OK;
    const char *path = "extraction.photometric";
    long ms = p->min_stars;
    int st = sk_section_num(sec, path, "clip_sigma", 0.5, 1e6, &p->clip_sigma);
    if (!st) st = sk_section_long(sec, path, "min_stars", 1, 1000000000L, &ms);
    if (!st) st = sk_section_num(sec, path, "min_snr", 0, 1e9, &p->min_snr);
    if (!st) st = sk_section_num(sec, path, "error_floor", 0, 1, &p->error_floor);
    if (!st) st = sk_section_num(sec, path, "max_chi2_ratio", 0, 1e9, &p->max_chi2_ratio);
    if (!st) st = sk_section_num(sec, path, "max_aperture_excess", 0, 1e9, &p->max_aperture_excess);
    if (!st) st = sk_section_num(sec, path, "neighbour_radius_fwhm", 0, 100, &p->neighbour_radius_fwhm);
    if (!st) st = sk_section_num(sec, path, "neighbour_flux_ratio", 0, 1e9, &p->neighbour_flux_ratio);
    if (!st) st = sk_section_num(sec, path, "max_ref_contamination", 0, 1e9, &p->max_ref_contamination);
    if (!st)
        p->min_stars = ms;
    return st;
}

void sk_photcal_free(sk_photcal *pc)
{
    if (!pc)
        return;
    free(pc->aper_radius_fwhm);
    free(pc->aper_cor);
    free(pc);
}

static const unsigned CAL_REJECT = SK_SRC_SATURATED | SK_SRC_EDGE |
                                   SK_SRC_TRUNCATED | SK_SRC_FLAGGED | SK_SRC_ARTIFACT;
/* With PSF-fit fluxes blended stars are kept (the Source Extractor FLAGS <= 3
 * convention): on a deep or crowded image most bright stars are deblended
 * from a neighbour, and the fit accounts for it; outliers are clipped below.
 * Aperture fluxes of blended stars carry their neighbours' light. */
static const unsigned CAL_REJECT_APERTURE = SK_SRC_BLENDED;

/* The matched stars usable for the zero point: their zero points
 * mag + 2.5 log10(flux), errors and source indices, all kept. */
typedef struct {
    double *zp, *sg;   /* zero point (mag) and its error (mag) per star */
    double *work;      /* scratch */
    long *who;         /* the star's index in the source list */
    long *ref;         /* its catalogue row */
    char *keep;        /* not clipped */
    long n;
} zp_stars;

/* The flux of source s and its error: the PSF fit's when given, else the
 * largest aperture's. */
static void star_flux(const sk_source_list *l, const double *flux, const double *flux_err, long s,
                      double *f, double *fe)
{
    int ap = l->naper - 1;
    *f = flux ? flux[s] : l->src[s].flux_aper[ap];
    *fe = flux ? flux_err[s] : l->src[s].flux_aper_err[ap];
}

static void zp_candidates(const sk_source_list *l, const double *flux, const double *flux_err,
                          const long *src_index, const long *ref_index, long nmatch,
                          const sk_refcat *ref, const sk_photcal_params *p, zp_stars *Z)
{
    unsigned reject = flux ? CAL_REJECT : CAL_REJECT | CAL_REJECT_APERTURE;
    long n = 0;
    for (long k = 0; k < nmatch; k++) {
        long s = src_index[k], r = ref_index[k];
        if (s < 0 || s >= l->n || r < 0 || r >= ref->n)
            continue;
        const sk_source *src = &l->src[s];
        double f, fe;
        star_flux(l, flux, flux_err, s, &f, &fe);
        if ((src->flags & reject) || !(f > 0) || !(fe > 0) || !isfinite(f) || !isfinite(fe) ||
            f / fe < p->min_snr || !isfinite(ref->mag[r]))
            continue;
        double me = isfinite(ref->mag_err[r]) ? ref->mag_err[r] : 0.0;
        double em = MAG_PER_LN * fe / f;
        Z->zp[n] = ref->mag[r] + 2.5 * log10(f);
        Z->sg[n] = sqrt(em * em + me * me + p->error_floor * p->error_floor);
        Z->who[n] = s;
        Z->ref[n] = r;
        Z->keep[n] = 1;
        n++;
    }
    Z->n = n;
}

/* Leave out the candidates the star selection rejects (their reasons
 * counted in pc), keeping the others in order. */
static int zp_select(zp_stars *Z, const sk_source_list *l, const double *flux, const double *flux_err,
                     const double *chi2, const sk_photcal_refnbr *nb, const sk_photcal_params *p,
                     sk_photcal *pc)
{
    unsigned char *reject = malloc((size_t)Z->n + 1);
    if (!reject)
        return sk_error(SK_EIO, "photometric calibration: out of memory");
    sk_photcal_pick c = {l, flux, flux_err, chi2, Z->who, Z->n, nb, Z->ref};
    long counts[4];
    int st = sk_photcal_pick_stars(&c, p, reject, counts);
    long m = 0;
    for (long k = 0; !st && k < Z->n; k++)
        if (!reject[k]) {
            Z->zp[m] = Z->zp[k];
            Z->sg[m] = Z->sg[k];
            Z->who[m] = Z->who[k];
            Z->ref[m] = Z->ref[k];
            Z->keep[m++] = 1;
        }
    if (!st) {
        Z->n = m;
        pc->nrej_chi2 = counts[0];
        pc->nrej_aperture = counts[1];
        pc->nrej_neighbour = counts[2];
        pc->nrej_refcat = counts[3];
    }
    free(reject);
    return st;
}

/* The weighted mean zero point, clipped at clip_sigma times the robust
 * scale (1.4826 MAD, at least 1) of the normalised residuals while more
 * than min_stars remain; *sw the sum of the weights, *kept the stars in. */
static double clipped_zero_point(zp_stars *Z, const sk_photcal_params *p, double *sw_out, long *kept_out)
{
    double mean = NAN, sw = 0;
    long kept = Z->n;
    for (int it = 0; it < 20; it++) {
        double s1 = 0;
        sw = 0;
        kept = 0;
        for (long k = 0; k < Z->n; k++)
            if (Z->keep[k]) {
                double w = 1.0 / (Z->sg[k] * Z->sg[k]);
                s1 += w * Z->zp[k];
                sw += w;
                kept++;
            }
        if (kept < p->min_stars || kept < 1)
            break;
        mean = s1 / sw;
        /* robust scale of the normalised residuals of the kept */
        long m = 0;
        for (long k = 0; k < Z->n; k++)
            if (Z->keep[k])
                Z->work[m++] = fabs(Z->zp[k] - mean) / Z->sg[k];
        double scale = m >= 3 ? SK_MAD_TO_SIGMA * sk_median_double(Z->work, m) : 1.0;
        if (!(scale > 1.0))
            scale = 1.0;
        long removed = 0;
        for (long k = 0; k < Z->n; k++)
            if (Z->keep[k] && fabs(Z->zp[k] - mean) / Z->sg[k] > p->clip_sigma * scale &&
                kept - removed > p->min_stars) {
                Z->keep[k] = 0;
                removed++;
            }
        if (!removed)
            break;
    }
    *sw_out = sw;
    *kept_out = kept;
    return mean;
}

/* The zero point's error (scaled up by the reduced chi^2 when above 1)
 * and scatter, and the calibration's other fields. */
static int zp_result(const zp_stars *Z, const sk_source_list *l, const double *flux, double mean,
                     double sw, long kept, sk_photcal *pc)
{
    double chi2 = 0, ss = 0, se = 0;
    for (long k = 0; k < Z->n; k++)
        if (Z->keep[k]) {
            double d = Z->zp[k] - mean;
            chi2 += d * d / (Z->sg[k] * Z->sg[k]);
            ss += d * d;
            se += Z->sg[k] * Z->sg[k];
            sk_debug("photometric calibration: star NUMBER %ld: zero point %.5f, expected error %.5f mag",
                     l->src[Z->who[k]].number, Z->zp[k], Z->sg[k]);
        }
    double red = kept > 1 ? chi2 / (double)(kept - 1) : 1.0;
    pc->zp = mean;
    pc->dzp = sqrt(1.0 / sw) * (red > 1.0 ? sqrt(red) : 1.0);
    pc->scatter = sqrt(ss / (double)kept);
    pc->noise = sqrt(se / (double)kept);
    pc->nstars = kept;
    pc->from_psf = flux != NULL;
    pc->lim_mag = NAN;
    pc->lim_flux_adu = NAN;
    pc->naper = l->naper;
    pc->aper_radius_fwhm = malloc(sizeof(double) * (size_t)(l->naper + 1));
    pc->aper_cor = malloc(sizeof(double) * (size_t)(l->naper + 1));
    if (!pc->aper_radius_fwhm || !pc->aper_cor)
        return sk_error(SK_EIO, "photometric calibration: out of memory");
    return SK_OK;
}

/* The aperture correction of aperture a: the median of 2.5 log10 of its
 * flux over the reference flux of the kept stars with SNR >= 20 and no
 * other source within the aperture plus 2 FWHM (NAN when none). */
static double aperture_correction(const zp_stars *Z, const sk_source_list *l, const double *flux,
                                  const double *flux_err, int a)
{
    long m = 0;
    for (long k = 0; k < Z->n; k++) {
        if (!Z->keep[k])
            continue;
        const sk_source *src = &l->src[Z->who[k]];
        double f, fe;
        star_flux(l, flux, flux_err, Z->who[k], &f, &fe);
        double fa = src->flux_aper[a];
        if (!(f / fe >= 20 && fa > 0 && isfinite(fa)) || (src->flags & SK_SRC_NEIGHBOURS))
            continue;
        double reach = l->aper_radius_px[a] + 2.0 * l->fwhm_px;
        int alone = 1;
        for (long q = 0; q < l->n && alone; q++)
            if (q != Z->who[k] && hypot(l->src[q].xwin - src->xwin, l->src[q].ywin - src->ywin) < reach)
                alone = 0;
        if (alone)
            Z->work[m++] = 2.5 * log10(fa / f);
    }
    return m ? sk_median_double(Z->work, m) : NAN;
}

int sk_photcal_solve(const sk_source_list *l, const double *flux, const double *flux_err,
                     const double *chi2, const long *src_index, const long *ref_index, long nmatch,
                     const sk_refcat *ref, const sk_photcal_params *p, sk_photcal **out)
{
    return sk_photcal_solve_ref(l, flux, flux_err, chi2, src_index, ref_index, nmatch, ref, NULL, p, out);
}

int sk_photcal_solve_ref(const sk_source_list *l, const double *flux, const double *flux_err,
                         const double *chi2, const long *src_index, const long *ref_index, long nmatch,
                         const sk_refcat *ref, const sk_photcal_refnbr *nb, const sk_photcal_params *p,
                         sk_photcal **out)
{
    *out = NULL;
    if (!flux && l->naper < 1)
        return sk_error(SK_EINPUT, "photometric calibration: no PSF fluxes and no aperture");
    zp_stars Z = { malloc(sizeof(double) * (size_t)(nmatch + 1)), malloc(sizeof(double) * (size_t)(nmatch + 1)),
                   malloc(sizeof(double) * (size_t)(nmatch + 1)), malloc(sizeof(long) * (size_t)(nmatch + 1)),
                   malloc(sizeof(long) * (size_t)(nmatch + 1)), malloc((size_t)(nmatch + 1)), 0 };
    sk_photcal *pc = calloc(1, sizeof *pc);
    int st = SK_OK;
    if (!Z.zp || !Z.sg || !Z.work || !Z.who || !Z.ref || !Z.keep || !pc)
        st = sk_error(SK_EIO, "photometric calibration: out of memory");
    double mean = NAN, sw = 0;
    long kept = 0;
    if (!st) {
        zp_candidates(l, flux, flux_err, src_index, ref_index, nmatch, ref, p, &Z);
        pc->ncandidates = Z.n;
        st = zp_select(&Z, l, flux, flux_err, chi2, nb, p, pc);
    }
    if (!st) {
        mean = clipped_zero_point(&Z, p, &sw, &kept);
        if (kept < p->min_stars || kept < 1 || !isfinite(mean))
            st = sk_error(SK_ENOTFOUND, "photometric calibration: %ld usable matched stars (of %ld "
                          "matches, %ld candidates before the star selection), fewer than the minimum "
                          "%ld (extraction.photometric.min_stars): no zero point", kept, nmatch,
                          pc->ncandidates, p->min_stars);
    }
    if (!st)
        st = zp_result(&Z, l, flux, mean, sw, kept, pc);
    for (int a = 0; !st && a < l->naper; a++) {
        pc->aper_radius_fwhm[a] = l->fwhm_px > 0 ? l->aper_radius_px[a] / l->fwhm_px : NAN;
        pc->aper_cor[a] = aperture_correction(&Z, l, flux, flux_err, a);
    }
    free(Z.zp);
    free(Z.sg);
    free(Z.work);
    free(Z.who);
    free(Z.ref);
    free(Z.keep);
    if (st) {
        sk_photcal_free(pc);
        return st;
    }
    *out = pc;
    return SK_OK;
}

int sk_photcal_set_limit(sk_photcal *pc, const sk_psf *psf, double x, double y,
                         double sigma_bg_adu, double gain)
{
    if (!(sigma_bg_adu > 0) || !isfinite(sigma_bg_adu))
        return sk_error(SK_EINPUT, "limiting magnitude: background noise %g is not positive", sigma_bg_adu);
    int m = sk_psf_stamp_size(psf);
    double r = fmax(2.0, 2.0 * (psf->fwhm_px > 0 ? psf->fwhm_px : 3.0));
    if (m < 2 * (int)ceil(r) + 1)
        m = 2 * (int)ceil(r) + 1;
    double *st = malloc(sizeof *st * (size_t)m * (size_t)m);
    if (!st)
        return sk_error(SK_EIO, "limiting magnitude: out of memory");
    int rc = sk_psf_image(psf, x, y, m, st);
    double s2 = 0, s3 = 0;
    long ix = lround(x), iy = lround(y);
    for (int j = 0; !rc && j < m; j++)
        for (int i = 0; i < m; i++) {
            double dx = (double)(ix - m / 2 + i) - x, dy = (double)(iy - m / 2 + j) - y;
            double v = st[(long)j * m + i];
            if (dx * dx + dy * dy <= r * r) {
                s2 += v * v;
                s3 += v * v * (v > 0 ? v : 0.0);
            }
        }
    free(st);
    if (rc)
        return rc;
    if (!(s2 > 0))
        return sk_error(SK_EINPUT, "limiting magnitude: the PSF is empty at (%g, %g)", x, y);
    /* the variance of the estimator sum(P d) / sum(P^2): background
       sigma^2 / sum P^2, source F/g sum P^3 / (sum P^2)^2; at SNR 5,
       F^2 - 25 c F - 25 var_f = 0 with c the source term per unit flux */
    double var_f = sigma_bg_adu * sigma_bg_adu / s2;
    double b = gain > 0 ? 25.0 * s3 / (s2 * s2 * gain) : 0.0;
    double f = 0.5 * (b + sqrt(b * b + 100.0 * var_f));
    pc->lim_flux_adu = f;
    pc->lim_mag = pc->zp - 2.5 * log10(f);
    return SK_OK;
}

int sk_photcal_psf_apcor(sk_photcal *pc, const sk_psf *psf, double x, double y,
                         const double *aper_radius_px)
{
    double rmax = 0;
    for (int a = 0; a < pc->naper; a++)
        rmax = fmax(rmax, aper_radius_px[a]);
    int m = sk_psf_stamp_size(psf);
    if (m < 2 * (int)ceil(rmax) + 3)
        m = 2 * (int)ceil(rmax) + 3;
    double *st = malloc(sizeof *st * (size_t)m * (size_t)m);
    double *ee = calloc((size_t)pc->naper + 1, sizeof *ee);
    if (!st || !ee) {
        free(st);
        free(ee);
        return sk_error(SK_EIO, "aperture corrections: out of memory");
    }
    int rc = SK_OK;
    const int nph = 4;
    for (int py = 0; py < nph && !rc; py++)
        for (int px = 0; px < nph && !rc; px++) {
            /* centres spread over a pixel */
            double cx = floor(x) + (px + 0.5) / nph, cy = floor(y) + (py + 0.5) / nph;
            rc = sk_psf_image(psf, cx, cy, m, st);
            long ix = lround(cx), iy = lround(cy);
            for (int a = 0; !rc && a < pc->naper; a++) {
                double r = aper_radius_px[a], sum = 0;
                for (int j = 0; j < m; j++)
                    for (int i = 0; i < m; i++) {
                        double x0 = (double)(ix - m / 2 + i) - 0.5 - cx, y0 = (double)(iy - m / 2 + j) - 0.5 - cy;
                        double w = sk_circle_rect_overlap(x0, y0, x0 + 1.0, y0 + 1.0, r);
                        if (w > 0)
                            sum += w * st[(long)j * m + i];
                    }
                ee[a] += sum / (nph * nph);
            }
        }
    for (int a = 0; !rc && a < pc->naper; a++)
        pc->aper_cor[a] = ee[a] > 0 ? 2.5 * log10(ee[a] < 1 ? ee[a] : 1.0) : NAN;
    free(st);
    free(ee);
    return rc;
}
