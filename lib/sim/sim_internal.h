/* sim_internal.h: the library's own part of skystack/sim.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_SIM_INTERNAL_H
#define SK_SIM_INTERNAL_H

#include "skystack/sim.h"
#include "numeric/psf_profile.h" /* the PSF profiles: sk_sim_psf_check, .._add */

#ifdef __cplusplus
extern "C" {
#endif

/* xoshiro256** seeded through splitmix64 from (seed, stream, substream),
 * so that independent streams (one per exposure, per row...) are derived
 * without sharing state. */
typedef struct sk_rng {
    uint64_t s[4];
    double spare_gauss; /* second Box-Muller deviate */
    int has_spare;
} sk_rng;

void sk_rng_init(sk_rng *r, uint64_t seed, uint64_t stream, uint64_t substream);

uint64_t sk_rng_u64(sk_rng *r);

/* Uniform in [0, 1) with 53 random bits. */
double sk_rng_uniform(sk_rng *r);

/* Uniform in [lo, hi). */
double sk_rng_range(sk_rng *r, double lo, double hi);

/* Standard normal deviate (Box-Muller, exact). */
double sk_rng_gauss(sk_rng *r);

/* Poisson deviate of mean `mean` >= 0: multiplication method below 10,
 * Hormann's transformed rejection (PTRS) above; exact for every mean. */
uint64_t sk_rng_poisson(sk_rng *r, double mean);

typedef struct sk_sim_stamp {
    long x0, y0;          /* image pixel of stamp pixel (0, 0) */
    long size;            /* size x size pixels */
    double *pix;          /* sums to the source flux */
} sk_sim_stamp;

/* Render a galaxy of total flux `flux` centred at (x, y): the Sersic profile
 * truncated at 4 re (pixel-integrated), convolved with the PSF, normalised
 * to `flux`. stamp->pix is malloc'd. */
int sk_sim_galaxy_render(const sk_sim_galaxy *g, const sk_sim_psf *psf, double flux,
                         double x, double y, sk_sim_stamp *stamp);

/* Add the rows [row0, row1) of a stamp into an image. */
void sk_sim_stamp_add(const sk_sim_stamp *stamp, double *image, long width, long height,
                      long row0, long row1);

/* Magnitude of a source at time `mjd` (transients vary, others do not);
 * INFINITY when the source gives no light then. */
double sk_sim_source_mag(const sk_sim_params *p, const sk_sim_source *s, double mjd);

/* Position of a source at `mjd` (moving sources move). */
int sk_sim_source_radec(const sk_sim_params *p, const sk_sim_source *s, double mjd,
                        double *ra_deg, double *dec_deg);

/* Sky level (ADU) of an exposure at pixel (x, y). */
double sk_sim_sky_adu(const sk_sim_expinfo *info, double x, double y);

/* PSF of an exposure at pixel (x, y): FWHM and ellipticity vary smoothly
 * across the image. */
void sk_sim_psf_at(const sk_sim_params *p, const sk_sim_expinfo *info, long width,
                   long height, double x, double y, sk_sim_psf *psf);

/* The TAN+SIP (or the equivalent TPV, per p->distortion) header cards of a
 * pointing (sim_wcs.c): tangent point, rotation (deg), pixel scale
 * (arcsec), the distortion that displaces the corners by sip_corner_px, on a
 * width x height detector. */
int sk_sim_wcs_header(const sk_sim_params *p, double ra_deg, double dec_deg,
                      double rotation_deg, double scale_arcsec, sk_header *h);

/* The n points `east_arcsec`, `north_arcsec` away from (ra, dec) in the
 * tangent plane (TAN through wcslib); RA in [0, 360). */
int sk_sim_offset_radec(double ra_deg, double dec_deg, long n, const double *east_arcsec,
                        const double *north_arcsec, double *ra_out, double *dec_out);

/* Perturb the WCS cards of `h` in place: move the tangent point by
 * offset_arcsec towards position angle pa_deg, rotate the CD matrix by
 * rotation_deg and scale it by (1 + scale_error). */
int sk_sim_wcs_perturb(sk_header *h, double offset_arcsec, double pa_deg,
                       double rotation_deg, double scale_error);

/* sim_catalog.c: the colour_coeffs key and the checks of the motion and
 * colour keys. */
int sk_sim_catalog_params(const sk_config *c, sk_sim_params *p);
/* Proper motions and colours of the field's stars (a no-op when both are
 * off), from their own random streams. */
int sk_sim_star_motions(const sk_sim_params *p, sk_sim_field *f);
/* A star's position at `mjd` (its proper motion from start_mjd). */
int sk_sim_star_radec_at(const sk_sim_params *p, const sk_sim_source *s, double mjd, double *ra_deg,
                         double *dec_deg);
/* MJD of the catalogue's epoch. */
double sk_sim_refcat_mjd(const sk_sim_params *p);
/* The catalogue columns beyond ra, dec, mag of the stars listed in t (in
 * the order sk_sim_refcat lists them): motion and epoch, colour bands. */
int sk_sim_refcat_more(const sk_sim_params *p, const sk_sim_field *f, sk_table *t);

#ifdef __cplusplus
}
#endif
#endif
