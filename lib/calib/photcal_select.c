/* photcal_select.c: the calibration star selection: matched stars whose PSF fit, aperture flux, listed neighbours or reference-catalogue neighbours show light that is not a single point source's are left out of the zero point, each reason counted. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/log.h"
#include "numeric/stats.h"
#include "photcal_priv.h"

/* The statistic of a star is compared with that of the candidates
 * nearest to it in SNR (itself included): bright stars have a higher
 * chi^2 and a wider spread of aperture-to-PSF ratios from the PSF
 * model's own error, faint stars a wider spread from noise. */
#define SELECT_PEERS 11
/* Fewer candidates than this: no distribution to compare against, the
 * chi^2 and aperture tests are not made. */
#define SELECT_MIN_CANDIDATES 5

typedef struct {
    long k;       /* candidate index */
    double lsnr;  /* ln of its SNR */
} snr_rank;

static int cmp_rank(const void *a, const void *b)
{
    double x = ((const snr_rank *)a)->lsnr, y = ((const snr_rank *)b)->lsnr;
    return x < y ? -1 : x > y;
}

/* The aperture whose radius is nearest the PSF fit's (max(2, 2 FWHM)
 * pixels): the light a neighbour adds to the fit shows there. */
static int fit_aperture(const sk_source_list *l)
{
    double rfit = fmax(2.0, 2.0 * (l->fwhm_px > 0 ? l->fwhm_px : 3.0));
    int best = 0;
    for (int a = 1; a < l->naper; a++)
        if (fabs(l->aper_radius_px[a] - rfit) < fabs(l->aper_radius_px[best] - rfit))
            best = a;
    return best;
}

/* The peers of sorted position i among n candidates sorted by SNR: the
 * window of SELECT_PEERS (or n) consecutive ones nearest to it in ln SNR. */
static void peer_window(const snr_rank *r, long n, long i, long *lo_out, long *hi_out)
{
    long m = n < SELECT_PEERS ? n : SELECT_PEERS;
    long lo = i, hi = i; /* [lo, hi] */
    while (hi - lo + 1 < m) {
        if (lo == 0)
            hi++;
        else if (hi == n - 1)
            lo--;
        else if (r[i].lsnr - r[lo - 1].lsnr <= r[hi + 1].lsnr - r[i].lsnr)
            lo--;
        else
            hi++;
    }
    *lo_out = lo;
    *hi_out = hi;
}

/* Chi^2 and aperture excess of every candidate against its peers. */
static void peer_tests(const sk_photcal_pick *c, const sk_photcal_params *p, const snr_rank *r,
                       double *buf, unsigned char *reject)
{
    long n = c->n;
    const sk_source_list *l = c->list;
    int ap = fit_aperture(l);
    for (long i = 0; i < n; i++) {
        long lo, hi, k = r[i].k, s = c->who[k];
        peer_window(r, n, i, &lo, &hi);
        long m = 0;
        if (p->max_chi2_ratio > 0 && c->chi2 && isfinite(c->chi2[s])) {
            for (long j = lo; j <= hi; j++)
                if (isfinite(c->chi2[c->who[r[j].k]]))
                    buf[m++] = c->chi2[c->who[r[j].k]];
            if (m && c->chi2[s] > p->max_chi2_ratio * sk_median_double(buf, m))
                reject[k] |= SK_PHOTCAL_REJECT_CHI2;
        }
        const sk_source *src = &l->src[s];
        double fa = src->flux_aper[ap], fae = src->flux_aper_err[ap];
        if (!(p->max_aperture_excess > 0) || !(fa > 0) || !(fae > 0) || !isfinite(fa))
            continue;
        m = 0;
        for (long j = lo; j <= hi; j++) {
            long q = c->who[r[j].k];
            double v = l->src[q].flux_aper[ap] / c->flux[q];
            if (isfinite(v))
                buf[m++] = v;
        }
        if (m < 3)
            continue;
        double med, sig, e = fa / c->flux[s];
        sk_median_mad(buf, m, &med, &sig);
        double own = e * fae / fa; /* the ratio's noise from the aperture flux */
        if (e - med > p->max_aperture_excess * fmax(sig, own))
            reject[k] |= SK_PHOTCAL_REJECT_APERTURE;
    }
}

/* Another listed source within neighbour_radius_fwhm FWHM of a
 * candidate, with an AUTO flux of at least neighbour_flux_ratio times
 * the candidate's. */
static void neighbour_test(const sk_photcal_pick *c, const sk_photcal_params *p, unsigned char *reject)
{
    const sk_source_list *l = c->list;
    if (!(p->neighbour_flux_ratio > 0) || !(p->neighbour_radius_fwhm > 0) || !(l->fwhm_px > 0))
        return;
    double reach = p->neighbour_radius_fwhm * l->fwhm_px;
    for (long k = 0; k < c->n; k++) {
        const sk_source *s = &l->src[c->who[k]];
        for (long q = 0; q < l->n; q++) {
            const sk_source *o = &l->src[q];
            if (q == c->who[k] || fabs(o->xwin - s->xwin) > reach || fabs(o->ywin - s->ywin) > reach)
                continue;
            if (hypot(o->xwin - s->xwin, o->ywin - s->ywin) < reach &&
                o->flux_auto >= p->neighbour_flux_ratio * s->flux_auto) {
                reject[k] |= SK_PHOTCAL_REJECT_NEIGHBOUR;
                break;
            }
        }
    }
}

/* The reference catalogue's neighbours the image does not separate
 * putting more than max_ref_contamination of the star's flux into its
 * PSF fit. */
static void refcat_test(const sk_photcal_pick *c, const sk_photcal_params *p, unsigned char *reject)
{
    if (!c->nb || !c->ref || !c->flux || !(p->max_ref_contamination > 0) || c->nb->noverlap < 2)
        return;
    for (long k = 0; k < c->n; k++) {
        double f = sk_photcal_ref_contamination(c->nb, c->list, c->who[k], c->ref[k]);
        if (f > 0)
            sk_debug("photometric calibration: catalogue neighbours put %.4f of the flux of NUMBER %ld "
                     "into its PSF fit", f, c->list->src[c->who[k]].number);
        if (f > p->max_ref_contamination)
            reject[k] |= SK_PHOTCAL_REJECT_REFCAT;
    }
}

int sk_photcal_pick_stars(const sk_photcal_pick *c, const sk_photcal_params *p, unsigned char *reject,
                          long counts[4])
{
    long n = c->n;
    memset(reject, 0, (size_t)(n > 0 ? n : 0));
    counts[0] = counts[1] = counts[2] = counts[3] = 0;
    if (n <= 0)
        return SK_OK;
    if (c->flux && n >= SELECT_MIN_CANDIDATES) {
        snr_rank *r = malloc(sizeof *r * (size_t)n);
        double *buf = malloc(sizeof *buf * (size_t)SELECT_PEERS);
        if (!r || !buf) {
            free(r);
            free(buf);
            return sk_error(SK_EIO, "photometric calibration: out of memory");
        }
        for (long k = 0; k < n; k++) {
            long s = c->who[k];
            r[k].k = k;
            r[k].lsnr = log(c->flux[s] / c->flux_err[s]);
        }
        qsort(r, (size_t)n, sizeof *r, cmp_rank);
        peer_tests(c, p, r, buf, reject);
        free(r);
        free(buf);
    }
    neighbour_test(c, p, reject);
    refcat_test(c, p, reject);
    for (long k = 0; k < n; k++) {
        counts[0] += (reject[k] & SK_PHOTCAL_REJECT_CHI2) != 0;
        counts[1] += (reject[k] & SK_PHOTCAL_REJECT_APERTURE) != 0;
        counts[2] += (reject[k] & SK_PHOTCAL_REJECT_NEIGHBOUR) != 0;
        counts[3] += (reject[k] & SK_PHOTCAL_REJECT_REFCAT) != 0;
    }
    return SK_OK;
}
