/* photcal.h: photometric calibration of an image from its sources matched
 * to a reference catalog: the zero point (mag = -2.5 log10(flux) + zp, flux
 * in ADU) as a weighted, clipped mean over the matched stars, its 1-sigma
 * uncertainty, aperture corrections for every aperture, and the 5-sigma
 * limiting magnitude of a point source.
 *
 * The flux the zero point refers to is the total flux of a point source as
 * the PSF-fit flux measures it (the PSF model has unit sum within its
 * footprint, see psf.h); without a PSF, the flux in the largest aperture.
 * A catalog in another band than the image's gives a zero point that
 * includes the mean colour term of the stars (no colour terms are fitted). */
#ifndef SKYSTACK_PHOTCAL_H
#define SKYSTACK_PHOTCAL_H

#include <jansson.h>
#include "astrom.h"
#include "extract.h"
#include "psf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_photcal_params {
    double clip_sigma;   /* clipping of the stars' zero points (3) */
    long min_stars;      /* fewer calibration stars: no zero point (3) */
    double min_snr;      /* stars fainter than this SNR are not used (10) */
    double error_floor;  /* mag added in quadrature to each star's error
                            (calibration systematics; 0.005) */
    double max_chi2_ratio;      /* PSF fit chi^2 over its SNR peers' median
                                   above which a star is left out (1.5;
                                   <= 0: no test) */
    double max_aperture_excess; /* aperture-to-PSF flux excess over the
                                   peers', in robust sigmas (4; <= 0: none) */
    double neighbour_radius_fwhm; /* a listed neighbour within this many
                                   FWHMs (2) with at least */
    double neighbour_flux_ratio;  /* this fraction of the star's AUTO flux
                                   (0.1; <= 0: no test) leaves it out */
    double max_ref_contamination; /* reference-catalogue neighbours the
                                   image does not separate putting more
                                   than this fraction of the star's flux
                                   into its PSF fit leave it out (0.01;
                                   <= 0: no test) */
} sk_photcal_params;

#ifdef __cplusplus
}
#endif
#endif
