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
    SK_PHOTCAL_REJECT_NEIGHBOUR = 1u << 2  /* a bright listed neighbour */
};

/* The candidates of a zero point: source who[k] of `list` for k < n,
 * with the PSF-fit fluxes, errors and reduced chi^2 of every source of
 * the list (flux NULL: aperture photometry; chi2 may be NULL). */
typedef struct sk_photcal_pick {
    const sk_source_list *list;
    const double *flux, *flux_err, *chi2;
    const long *who;
    long n;
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
 * The chi^2 and aperture tests need PSF-fit fluxes and at least 5
 * candidates. counts[0..2]: candidates failing each test (a candidate
 * may fail several). */
int sk_photcal_pick_stars(const sk_photcal_pick *c, const sk_photcal_params *p, unsigned char *reject,
                          long counts[3]);

#endif
