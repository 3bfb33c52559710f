/* photcal_priv.h: what the photometric calibration files share: the
 * calibration star selection (photcal_select.c) called by the zero-point
 * fit (photcal.c). */
#ifndef SK_PHOTCAL_PRIV_H
#define SK_PHOTCAL_PRIV_H

#include "photcal_internal.h"

/* Why a candidate star was left out (bits of a reject mask). */
enum {
    SK_PHOTCAL_REJECT_CHI2 = 1u << 0,      /* PSF fit chi^2 above its peers' */
    SK_PHOTCAL_REJECT_APERTURE = 1u << 1,  /* aperture light beyond the PSF fit's */
    SK_PHOTCAL_REJECT_NEIGHBOUR = 1u << 2, /* a bright listed neighbour */
    SK_PHOTCAL_REJECT_REFCAT = 1u << 3     /* reference-catalogue neighbours'
                                              light in the PSF fit */
};

/* The candidates of a zero point: source who[k] of `list` for k < n,
 * with the PSF-fit fluxes, errors and reduced chi^2 of every source of
 * the list (flux NULL: aperture photometry; chi2 may be NULL). */
typedef struct sk_photcal_pick {
    const sk_source_list *list;
    const double *flux, *flux_err, *chi2;
    const long *who;
    long n;
    /* the reference catalogue's neighbours (NULL: no such test) and the
       catalogue row of each candidate (ref[k], k < n) */
    const sk_photcal_refnbr *nb;
    const long *ref;
} sk_photcal_pick;

/* Mark in reject[k] (n bytes) the reasons candidate k is not a single,
 * isolated point source, each test made against the parameters' limits
 * (a limit <= 0 turns its test off):
 * - chi2: the PSF fit's reduced chi^2 above max_chi2_ratio times the
 *   median over its peers, the 11 candidates (itself included) nearest
 *   in SNR: an unresolved neighbour or a galaxy is not fitted by the PSF;
 * - aperture: in the aperture nearest the PSF fit's radius (2 FWHM), the
 *   ratio of aperture to PSF-fit flux above its peers' median by more
 *   than max_aperture_excess times the larger of their robust scatter
 *   and the ratio's own noise (from FLUXERR_APER): light the PSF does not
 *   explain;
 * - neighbour: another listed source within neighbour_radius_fwhm image
 *   FWHMs with FLUX_AUTO at least neighbour_flux_ratio times the star's.
 * - refcat (with c->nb): the light of the reference catalogue's
 *   neighbours that the image does not separate in the star's PSF fit
 *   (sk_photcal_ref_contamination) above max_ref_contamination of the
 *   star's flux.
 * The chi^2 and aperture tests need PSF-fit fluxes and at least 5
 * candidates. counts[0..3]: candidates failing each test (a candidate
 * may fail several). */
int sk_photcal_pick_stars(const sk_photcal_pick *c, const sk_photcal_params *p, unsigned char *reject,
                          long counts[4]);

/* The predicted share of the PSF-fit flux of source s (matched to
 * reference row r) that comes from the other reference rows: the sum over
 * the rows within the overlap table's reach (nb->step_px (noverlap - 1)
 * px of its windowed centre) with no other listed source within
 * max(1, FWHM / 2) px of them (a separated neighbour is fitted with its
 * own model, not in the star's), of the rows' flux over the star's
 * (photometric magnitudes where both have one, else the primary band's;
 * rows with neither are skipped) times nb->overlap at their distance. */
double sk_photcal_ref_contamination(const sk_photcal_refnbr *nb, const sk_source_list *l, long s, long r);

#endif
