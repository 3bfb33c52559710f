/* sim_priv.h: declarations shared by the simulator's source files only. */
#ifndef SK_SIM_PRIV_H
#define SK_SIM_PRIV_H

#include <stdint.h>
#include "skystack/sim.h"
#include "skystack/wcs.h"
#include "sim_internal.h"

/* Pixels hit by cosmic rays: ray number, pixel, electrons deposited. */
typedef struct sim_hits {
    long n, cap;
    int32_t *ray, *x, *y;
    float *electrons;
} sim_hits;

void sim_hits_free(sim_hits *h);

/* Deposit cosmic rays (count Poisson with the configured rate) into the
 * electron image and record every pixel hit. */
int sim_cosmics(const sk_sim_params *p, sk_rng *r, double *electrons, long width, long height,
                sim_hits *hits);

/* Move the charge above `full_well_e` along each column, half each way,
 * filling unsaturated pixels (bleed trails); charge reaching an edge is lost. */
void sim_bleed(double *electrons, long width, long height, double full_well_e);

/* The detector's fixed defects (the same in every exposure of a seed):
 * dead and hot columns from a random row to the top, hot pixels. Marks
 * `bad` (width*height bytes, 1 = defect) and adds dark charge to hot ones
 * or empties dead ones in `electrons` (may be NULL to mark only). */
int sim_defects(const sk_sim_params *p, double *electrons, uint8_t *bad, long width, long height);

/* Add a satellite trail (line through (x0, y0) at angle_deg, Gaussian
 * cross-section of FWHM fwhm_px, e_per_px electrons per pixel of length)
 * to rows [row0, row1) of the model. */
void sim_satellite(double *model, long width, long height, long row0, long row1, double x0,
                   double y0, double angle_deg, double fwhm_px, double e_per_px);

/* The nebular clouds of an exposure (sim_nebula.c): centres (px),
 * inverse covariances (px^-2), peaks (electrons per pixel); extent_px
 * bounds the clouds' reach (6 sigma of the largest). */
typedef struct sim_nebula {
    long n;
    double *x, *y, *ixx, *iyy, *ixy, *peak_e;
    double extent_px;
} sim_nebula;

/* The field's clouds (none when nebula_amplitude is 0) placed on the
 * exposure through its true WCS, their peaks nebula_amplitude times the
 * nominal sky (sky_adu, or sky_mag_arcsec2 at the exposure's zero point). */
int sim_nebula_place(const sk_sim_params *p, const sk_sim_expinfo *info, const sk_wcs *wcs,
                     sim_nebula *neb);

/* Add the clouds (electrons) to rows [row0, row1) of the model. */
void sim_nebula_add(const sim_nebula *neb, double *model, long width, long height, long row0,
                    long row1);

void sim_nebula_free(sim_nebula *n);

#endif
