/* photcal_internal.h: the library's own part of skystack/photcal.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_PHOTCAL_INTERNAL_H
#define SK_PHOTCAL_INTERNAL_H

#include "skystack/photcal.h"
#include "extract/psf_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

void sk_photcal_params_default(sk_photcal_params *p);

/* Fill from extraction.photometric of a configuration. SK_EINPUT naming
 * a bad key. */
int sk_photcal_params_from_json(const json_t *root, sk_photcal_params *p);

typedef struct sk_photcal {
    double zp;           /* mag = -2.5 log10(flux / ADU) + zp */
    double dzp;          /* 1-sigma uncertainty of zp: the error of the
                            weighted mean, scaled up by sqrt(reduced chi^2)
                            when the stars scatter more than their errors */
    double dzp_norm;     /* of dzp, the PSF model's normalisation error
                            (mag; in quadrature; 0 without a PSF) */
    double scatter;      /* rms of the kept stars' zero points about zp */
    double noise;        /* rms of the kept stars' expected errors (the
                            scatter their errors alone would give) */
    long nstars;         /* stars kept */
    long ncandidates;    /* matched stars with clean flags and SNR, before
                            the star selection and clipping */
    long nrej_chi2;      /* of them left out for their PSF fit's chi^2, */
    long nrej_aperture;  /* for aperture light beyond the PSF's, */
    long nrej_neighbour; /* for a bright listed neighbour, */
    long nrej_refcat;    /* for the light of reference-catalogue
                            neighbours in its PSF fit (a star may count
                            under several) */
    int from_psf;        /* 1: zp for PSF-fit fluxes; 0: largest aperture */
    int naper;
    double *aper_radius_fwhm; /* naper aperture radii (units of the FWHM) */
    double *aper_cor;    /* naper corrections: a point source's total
                            magnitude is -2.5 log10(FLUX_APER[i]) + zp +
                            aper_cor[i] (<= 0 for apertures that miss light) */
    double lim_mag;      /* 5-sigma point-source limiting magnitude (NaN
                            until sk_photcal_set_limit) */
    double lim_flux_adu; /* the flux that has SNR 5 */
} sk_photcal;

/* Calibrate from the matched pairs of an astrometric solution (source
 * src_index[k] <-> catalog row ref_index[k]):
 * - flux, flux_err, chi2: the sources' PSF-fit fluxes, errors and
 *   reduced chi^2 (l->n each; chi2 may be NULL), or NULL for the largest
 *   aperture's flux;
 * - candidates: no SATURATED, EDGE, TRUNCATED, FLAGGED or ARTIFACT flag
 *   (nor BLENDED with aperture fluxes), SNR >= min_snr, finite catalog
 *   magnitude; of them the stars that the selection (photcal_priv.h,
 *   sk_photcal_pick_stars: PSF-fit chi^2, aperture excess, neighbours)
 *   does not reject;
 * - each star's zero point m_ref + 2.5 log10(flux) weighted by 1 / (its
 *   flux error in mag^2 + the catalog's mag_err^2 + error_floor^2); the
 *   weighted mean iterated with stars beyond clip_sigma robust sigmas (of
 *   the error-normalised residuals) left out;
 * - aperture corrections: the median over the kept stars with SNR >= 20,
 *   without the NEIGHBOURS flag and with no other source within the
 *   aperture plus 2 FWHM, of 2.5 log10(FLUX_APER[i] / flux) (NaN when no
 *   star qualifies).
 * SK_ENOTFOUND when fewer than min_stars remain. */
int sk_photcal_solve(const sk_source_list *l, const double *flux, const double *flux_err,
                     const double *chi2, const long *src_index, const long *ref_index, long nmatch,
                     const sk_refcat *ref, const sk_photcal_params *p, sk_photcal **out);

/* The reference catalogue's rows around the image, for the calibration
 * star selection's catalogue-neighbour test (sk_photcal_solve_ref). */
typedef struct sk_photcal_refnbr {
    long n;                      /* rows (those of the catalogue given) */
    const double *x_px, *y_px;   /* their 0-based pixel positions (NaN: none) */
    const double *mag;           /* photometric magnitudes (NaN: none) */
    const double *mag_alt;       /* primary band's (NaN or >= 99: none; may be NULL) */
    const double *overlap;       /* overlap[i]: the PSF-fit flux of a star that
                                    a unit-flux point source i step_px away adds */
    int noverlap;
    double step_px;
} sk_photcal_refnbr;

/* overlap[k], k < n: the flux a point source of unit flux k step_px from a
 * star adds to the star's PSF fit (sk_psf_photometry's estimator, pixels
 * within max(2, 2 FWHM) px, uniform weights): the sum over the fit's
 * pixels of P(x) P(x - d) over that of P(x)^2, the model at (x, y), the
 * mean of the offsets along x and along y. */
int sk_photcal_overlap(const sk_psf *psf, double x, double y, double step_px, int n, double *overlap);

/* sk_photcal_solve with the catalogue-neighbour test of the star
 * selection (nb NULL: without it). ref's rows are nb's. */
int sk_photcal_solve_ref(const sk_source_list *l, const double *flux, const double *flux_err,
                         const double *chi2, const long *src_index, const long *ref_index, long nmatch,
                         const sk_refcat *ref, const sk_photcal_refnbr *nb, const sk_photcal_params *p,
                         sk_photcal **out);

/* Aperture corrections from the PSF model instead of the stars: for each
 * aperture, 2.5 log10 of the fraction of the unit-sum PSF at (x, y) inside
 * a circle of radius aper_radius_px[i] (exact pixel overlap, averaged
 * over sub-pixel centrings), which no neighbour or background error
 * affects; consistent with the zero point's PSF-fit fluxes. pc->naper
 * radii are read from aper_radius_px. */
int sk_photcal_psf_apcor(sk_photcal *pc, const sk_psf *psf, double x, double y,
                         const double *aper_radius_px);

/* The 5-sigma limiting magnitude of a point source at (x, y), from the
 * noise of its PSF-fit flux (the estimator of sk_psf_photometry(): pixels
 * within max(2, 2 FWHM), weights the inverse background variance) in a
 * background of sigma_bg_adu per pixel, the source's own Poisson noise
 * (gain e-/ADU, <= 0: none) included:
 *     lim_flux = 5 sqrt(sigma_F^2 + lim_flux sum P^3 / (gain (sum P^2)^2)),
 *     sigma_F = sigma_bg / sqrt(sum P^2),
 * lim_mag = zp - 2.5 log10(lim_flux). Stored in pc. */
int sk_photcal_set_limit(sk_photcal *pc, const sk_psf *psf, double x, double y,
                         double sigma_bg_adu, double gain);

void sk_photcal_free(sk_photcal *pc);

#ifdef __cplusplus
}
#endif
#endif
