/* sim.h: simulated exposures with truth (imsim): a deterministic random
 * number generator, pixel-integrated PSF and galaxy rendering, a field of
 * sources on the sky, and exposures with noise, defects and a TAN+SIP WCS,
 * plus their truth tables and a reference catalog. Everything is a pure
 * function of the parameters and the seed: the same inputs give the same
 * bits on every machine and for any thread count.
 * Pixel coordinates are 0-based pixel centres (see wcs.h). */
#ifndef SKYSTACK_SIM_H
#define SKYSTACK_SIM_H

#include <stdint.h>
#include "config.h"
#include "header.h"
#include "image.h"
#include "table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- random numbers (sim_rng.c) ------------------------------------- */

/* ---- PSF and galaxy profiles (numeric/psf_profile.c, sim_galaxy.c) -- */

enum sk_sim_psf_model { SK_SIM_MOFFAT = 0, SK_SIM_GAUSSIAN = 1, SK_SIM_DOUBLE_GAUSSIAN = 2 };

/* An elliptical PSF. fwhm_px is the geometric mean of the major- and
 * minor-axis FWHM (the area-preserving FWHM); axis ratio q = 1 - ellipticity,
 * major FWHM = fwhm_px/sqrt(q), minor = fwhm_px*sqrt(q). The profile is
 * truncated at radius_fwhm * fwhm_px (elliptical radius) and renormalised
 * analytically so that its integral is exactly 1. */
typedef struct sk_sim_psf {
    int model;           /* enum sk_sim_psf_model */
    double fwhm_px;
    double beta;         /* Moffat beta (> 1) */
    double ellipticity;  /* 1 - b/a, in [0, 1) */
    double angle_deg;    /* major axis, from +x towards +y */
    double radius_fwhm;  /* truncation radius in units of fwhm_px */
    /* double Gaussian: a core plus wing_fraction of the light in a
     * Gaussian wing_ratio times broader (same shape and angle); fwhm_px is
     * the FWHM of the sum, and each component is truncated at radius_fwhm
     * of its own FWHM */
    double wing_fraction; /* in [0, 1) */
    double wing_ratio;    /* wing FWHM / core FWHM, >= 1 */
} sk_sim_psf;

/* A Sersic galaxy convolved with a PSF, rendered into a square stamp. */
typedef struct sk_sim_galaxy {
    double re_px;        /* half-light radius along the major axis (pixels) */
    double sersic_n;     /* 1 = exponential, 4 = de Vaucouleurs */
    double axis_ratio;   /* b/a in (0, 1] */
    double angle_deg;    /* major axis, from +x towards +y */
} sk_sim_galaxy;

/* ---- parameters (sim_params.c) -------------------------------------- */

/* How the camera distortion is written: SIP (pixel space) or TPV
 * (intermediate world coordinates; the same mapping, for tools that read
 * TPV only, such as SWarp and Source Extractor). */
enum sk_sim_distortion { SK_SIM_SIP = 0, SK_SIM_TPV = 1 };

/* Every key of the "simulation" section of the configuration. */
typedef struct sk_sim_params {
    long nexp;
    uint64_t seed;                    /* the field: sources, shapes, colours */
    uint64_t noise_seed;              /* the exposures: conditions, noise and
                                         defects (simulation.noise_seed; the
                                         seed when not set) */
    long width_px, height_px;
    double pixel_scale_arcsec;
    double ra_deg, dec_deg;           /* field centre */
    char instrument[72], telescope[72], filter[72], target[72], section[72], project[72];
    /* sources */
    long nstars;                      /* expected stars per exposure area */
    double mag_min, mag_max, mag_slope; /* dN/dm ~ 10^(slope m) */
    double galaxy_fraction;           /* galaxies per star */
    double galaxy_re_min_arcsec, galaxy_re_max_arcsec;
    double galaxy_n_min, galaxy_n_max;
    double galaxy_ellipticity_max;
    long moving_sources;
    double moving_rate_arcsec_per_hour, moving_mag;
    long transients;
    double transient_peak_mag, transient_duration_days;
    /* sky and photometry */
    double sky_mag_arcsec2, sky_scatter_mag, sky_gradient;
    double nebula_amplitude;          /* peak of the nebular clouds, in units
                                         of the nominal sky (0: none) */
    double nebula_scale_arcsec;       /* their typical FWHM */
    double sky_adu;                   /* > 0: the sky in ADU at sky_mag_arcsec2
                                         (scattered alike), whatever the
                                         zero point */
    double zero_point;                /* mag of 1 ADU/s above the atmosphere */
    double extinction_mag_per_airmass, transparency_scatter_mag;
    /* PSF */
    int psf_model;                    /* enum sk_sim_psf_model */
    double seeing_arcsec, seeing_scatter, moffat_beta, psf_ellipticity;
    double seeing_max_arcsec;         /* > seeing_arcsec: exposure i of n has
                                         seeing evenly from seeing_arcsec
                                         to this, before the scatter */
    double psf_wing_fraction, psf_wing_ratio; /* double Gaussian */
    double psf_variation, psf_radius_fwhm;
    /* detector */
    double gain, read_noise_e, saturation_adu, exptime_s;
    int noise;                        /* 0: noise-free model (tests) */
    /* time and pointing */
    double start_mjd, cadence_days, site_latitude_deg, max_hour_angle_h;
    double dither_arcsec, rotation_scatter_deg, sip_corner_px;
    int distortion;                   /* enum sk_sim_distortion */
    double wcs_offset_arcsec, wcs_rotation_deg, wcs_scale_error;
    /* defects */
    double cosmic_rate_per_mpix_s;
    long bad_columns, hot_pixels;
    double satellite_probability, satellite_mag_per_arcsec;
    /* reference catalog */
    double refcat_depth_mag, refcat_mag_error_floor, refcat_mag_error_at_depth;
    double refcat_pos_error_floor_arcsec, refcat_pos_error_at_depth_arcsec;
    /* stars' motions and colours (sim_catalog.c) */
    double proper_motion_max_mas_yr;  /* each star's proper motion uniform in a
                                         disc of this radius (0: none) */
    double refcat_epoch_offset_yr;    /* catalogue epoch minus the epoch of
                                         start_mjd (e.g. -10) */
    double colour_min, colour_max;    /* BP-RP of stars, uniform (equal: the
                                         catalogue has one band, mag) */
    int ncolour_coeffs;
    double colour_coeffs[6];          /* filter = G + sum_k c_k (BP-RP)^k */
    double sed_mag;                   /* this band's magnitude of a source is
                                         mag + sed_mag * its SED slope (uniform
                                         in [-1, 1], from the seed) */
} sk_sim_params;

/* Read and check the "simulation" section: SK_EINPUT naming the key. */
int sk_sim_params_from_config(const sk_config *c, sk_sim_params *p);

/* ---- the field: sources on the sky (sim_scene.c) -------------------- */

enum sk_sim_source_type {
    SK_SIM_STAR = 0, SK_SIM_GALAXY = 1, SK_SIM_MOVING = 2, SK_SIM_TRANSIENT = 3
};

typedef struct sk_sim_source {
    long id;             /* stable across exposures */
    int type;            /* enum sk_sim_source_type */
    double ra_deg, dec_deg; /* position (moving: at start_mjd) */
    double mag;          /* true magnitude (transient: at peak) */
    sk_sim_galaxy gal;   /* galaxies: shape (re in arcsec in gal.re_px until
                            an exposure converts it) */
    double rate_ra_arcsec_h, rate_dec_arcsec_h; /* moving sources */
    double peak_mjd;     /* transients */
    double pmra_mas_yr, pmdec_mas_yr; /* stars: proper motion (pmra with
                                         cos dec), position at start_mjd */
    double colour;       /* stars: BP-RP (0 without colours) */
    double sed_slope;    /* in [-1, 1]: mag in the band = base mag + sed_mag * it */
} sk_sim_source;

typedef struct sk_sim_field {
    sk_sim_source *src;
    long nsrc;
} sk_sim_field;

int sk_sim_field_make(const sk_sim_params *p, sk_sim_field **out);
void sk_sim_field_free(sk_sim_field *f);

/* The reference catalog of the field: stars down to refcat_depth_mag with
 * positions and magnitudes perturbed by their errors; columns id, ra, dec,
 * mag, mag_err, pos_err (arcsec). Table "REFCAT". With proper motions or a
 * catalogue epoch other than the images': positions at the catalogue's
 * epoch and columns pmra, pmdec (mas/yr), epoch (Julian year), ra_err,
 * dec_err (mas). With colours: columns G, BP, RP and G_err, BP_err, RP_err
 * (the catalogue's bands, each with its own noise of mag_err), the true
 * magnitude in the filter being G + sum_k colour_coeffs[k] (BP-RP)^k; mag
 * stays the filter's magnitude. */
int sk_sim_refcat(const sk_sim_params *p, const sk_sim_field *f, sk_table **out);

/* ---- one exposure (sim_expose.c, sim_defects.c, sim_wcs.c) ----------- */

/* What an exposure was made with: the truth beyond the source list. */
typedef struct sk_sim_expinfo {
    int index;
    double mjd, exptime_s, airmass;
    double magzero;           /* m = -2.5 log10(flux_ADU) + magzero */
    double sky_adu;           /* sky at the image centre */
    double sky_grad_x, sky_grad_y; /* ADU per pixel */
    double centre_x, centre_y;/* reference point of the sky model (0-based) */
    sk_sim_psf psf;           /* PSF at the image centre */
    double pointing_ra_deg, pointing_dec_deg, rotation_deg;
    int satellite;            /* 1 when a trail crosses the image */
    double sat_x0, sat_y0, sat_x1, sat_y1, sat_adu_per_px;
} sk_sim_expinfo;

typedef struct sk_sim_exposure {
    sk_sim_expinfo info;
    sk_image *image;          /* SCI (ADU), WGT (1/variance of sky+read noise),
                                 FLG; header with the (possibly perturbed) WCS */
    sk_header *true_wcs;      /* the true TAN+SIP WCS cards */
    sk_table *truth;          /* "SOURCES": one row per source centred on the
                                 image; header: true WCS and the expinfo */
    sk_table *cosmics;        /* "COSMICS": every pixel hit, with electrons */
} sk_sim_exposure;

/* Make exposure `index` (0-based) of the field; `threads` >= 1 (the result
 * does not depend on it). */
int sk_sim_expose(const sk_sim_params *p, const sk_sim_field *f, int index, int threads,
                  sk_sim_exposure **out);
void sk_sim_exposure_free(sk_sim_exposure *e);

#ifdef __cplusplus
}
#endif
#endif
