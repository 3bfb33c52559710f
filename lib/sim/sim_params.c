/* sim_params.c: the "simulation" configuration section read into
 * sk_sim_params and checked for sense. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/sim.h"
#include "sim_internal.h"

enum kind { K_DOUBLE, K_LONG, K_STRING, K_BOOL };

typedef struct key {
    const char *name;
    int kind;
    size_t offset;
    double lo, hi; /* accepted range (numbers) */
} key;

#define D(n, lo, hi) {#n, K_DOUBLE, offsetof(sk_sim_params, n), lo, hi}
#define L(n, lo, hi) {#n, K_LONG, offsetof(sk_sim_params, n), lo, hi}
#define S(n) {#n, K_STRING, offsetof(sk_sim_params, n), 0, 0}

static const key keys[] = {
    L(nexp, 1, 1e6),
    L(width_px, 8, 1e6),
    L(height_px, 8, 1e6),
    D(pixel_scale_arcsec, 1e-3, 3600),
    D(ra_deg, -360, 720),
    D(dec_deg, -89.0, 89.0),
    S(instrument), S(telescope), S(filter), S(target), S(section), S(project),
    L(nstars, 0, 1e8),
    D(mag_min, -30, 50),
    D(mag_max, -30, 50),
    D(mag_slope, -2, 2),
    D(galaxy_fraction, 0, 100),
    D(galaxy_re_min_arcsec, 1e-3, 3600),
    D(galaxy_re_max_arcsec, 1e-3, 3600),
    D(galaxy_n_min, 0.3, 8),
    D(galaxy_n_max, 0.3, 8),
    D(galaxy_ellipticity_max, 0, 0.9),
    L(moving_sources, 0, 1e6),
    D(moving_rate_arcsec_per_hour, 0, 1e6),
    D(moving_mag, -30, 50),
    L(transients, 0, 1e6),
    D(transient_peak_mag, -30, 50),
    D(transient_duration_days, 1e-6, 1e6),
    D(sky_mag_arcsec2, -10, 50),
    D(sky_scatter_mag, 0, 10),
    D(sky_gradient, 0, 0.9),
    D(nebula_amplitude, 0, 1000),
    D(nebula_scale_arcsec, 1e-3, 36000),
    D(zero_point, -10, 60),
    D(extinction_mag_per_airmass, 0, 10),
    D(transparency_scatter_mag, 0, 10),
    D(seeing_arcsec, 1e-3, 3600),
    D(seeing_scatter, 0, 2),
    D(moffat_beta, 1.01, 100),
    D(psf_ellipticity, 0, 0.5),
    D(psf_variation, 0, 1),
    D(psf_radius_fwhm, 1.5, 50),
    D(seeing_max_arcsec, 0, 3600),
    D(psf_wing_fraction, 0, 0.9),
    D(psf_wing_ratio, 1, 20),
    D(sky_adu, 0, 1e9),
    D(gain, 1e-3, 1e6),
    D(read_noise_e, 0, 1e6),
    D(saturation_adu, 1, 1e12),
    D(exptime_s, 1e-6, 1e7),
    D(start_mjd, 0, 1e6),
    D(cadence_days, 0, 1e6),
    D(site_latitude_deg, -90, 90),
    D(max_hour_angle_h, 0, 12),
    D(dither_arcsec, 0, 36000),
    D(rotation_scatter_deg, 0, 180),
    D(sip_corner_px, -1e4, 1e4),
    D(wcs_offset_arcsec, 0, 36000),
    D(wcs_rotation_deg, -180, 180),
    D(wcs_scale_error, -0.5, 0.5),
    D(cosmic_rate_per_mpix_s, 0, 1e6),
    L(bad_columns, 0, 1e6),
    L(hot_pixels, 0, 1e9),
    D(satellite_probability, 0, 1),
    D(satellite_mag_per_arcsec, -30, 50),
    D(refcat_depth_mag, -30, 50),
    D(refcat_mag_error_floor, 0, 10),
    D(refcat_mag_error_at_depth, 0, 10),
    D(refcat_pos_error_floor_arcsec, 0, 3600),
    D(refcat_pos_error_at_depth_arcsec, 0, 3600),
    D(proper_motion_max_mas_yr, 0, 1e5),
    D(refcat_epoch_offset_yr, -1000, 1000),
    D(colour_min, -5, 10),
    D(colour_max, -5, 10),
};

int sk_sim_params_from_config(const sk_config *c, sk_sim_params *p)
{
    memset(p, 0, sizeof *p);
    char path[128];
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const key *kk = &keys[k];
        snprintf(path, sizeof path, "simulation.%s", kk->name);
        json_t *v = sk_config_get(c, path);
        char *field = (char *)p + kk->offset;
        if (kk->kind == K_STRING) {
            if (!json_is_string(v))
                return sk_error(SK_EINPUT, "%s: must be a string", path);
            const char *s = json_string_value(v);
            if (strlen(s) >= 72 || strchr(s, '\'') || strchr(s, '/'))
                return sk_error(SK_EINPUT, "%s: \"%s\" must be under 72 characters without ' or /",
                                path, s);
            memcpy(field, s, strlen(s) + 1);
            continue;
        }
        if (!json_is_number(v))
            return sk_error(SK_EINPUT, "%s: must be a number", path);
        double d = json_number_value(v);
        if (!(d >= kk->lo && d <= kk->hi))
            return sk_error(SK_EINPUT, "%s: %g is outside [%g, %g]", path, d, kk->lo, kk->hi);
        if (kk->kind == K_LONG)
            *(long *)field = (long)d;
        else
            *(double *)field = d;
    }
    json_t *seed = sk_config_get(c, "simulation.seed");
    if (!json_is_integer(seed) || json_integer_value(seed) < 0)
        return sk_error(SK_EINPUT, "simulation.seed: must be a non-negative integer");
    p->seed = (uint64_t)json_integer_value(seed);
    json_t *nseed = sk_config_get(c, "simulation.noise_seed");
    if (nseed && !json_is_null(nseed) && (!json_is_integer(nseed) || json_integer_value(nseed) < 0))
        return sk_error(SK_EINPUT, "simulation.noise_seed: must be a non-negative integer or null (the seed)");
    p->noise_seed = nseed && !json_is_null(nseed) ? (uint64_t)json_integer_value(nseed) : p->seed;
    json_t *sed = sk_config_get(c, "simulation.sed_mag");
    if (sed && !json_is_null(sed) && (!json_is_number(sed) || !(fabs(json_number_value(sed)) <= 10)))
        return sk_error(SK_EINPUT, "simulation.sed_mag: must be a number in [-10, 10] or null (0)");
    p->sed_mag = sed && !json_is_null(sed) ? json_number_value(sed) : 0;
    json_t *noise = sk_config_get(c, "simulation.noise");
    if (!json_is_boolean(noise))
        return sk_error(SK_EINPUT, "simulation.noise: must be true or false");
    p->noise = json_is_true(noise);
    const char *model = sk_config_string(c, "simulation.psf_model", "");
    if (strcmp(model, "moffat") == 0)
        p->psf_model = SK_SIM_MOFFAT;
    else if (strcmp(model, "gaussian") == 0)
        p->psf_model = SK_SIM_GAUSSIAN;
    else if (strcmp(model, "double-gaussian") == 0)
        p->psf_model = SK_SIM_DOUBLE_GAUSSIAN;
    else
        return sk_error(SK_EINPUT, "simulation.psf_model: \"%s\" is not moffat, gaussian or "
                        "double-gaussian", model);

    const char *dist = sk_config_string(c, "simulation.distortion", "");
    if (strcmp(dist, "sip") == 0)
        p->distortion = SK_SIM_SIP;
    else if (strcmp(dist, "tpv") == 0)
        p->distortion = SK_SIM_TPV;
    else
        return sk_error(SK_EINPUT, "simulation.distortion: \"%s\" is not sip or tpv", dist);

    int crc = sk_sim_catalog_params(c, p);
    if (crc)
        return crc;
    if (p->mag_max < p->mag_min)
        return sk_error(SK_EINPUT, "simulation.mag_max %g is brighter than mag_min %g",
                        p->mag_max, p->mag_min);
    if (p->galaxy_re_max_arcsec < p->galaxy_re_min_arcsec)
        return sk_error(SK_EINPUT, "simulation.galaxy_re_max_arcsec is below galaxy_re_min_arcsec");
    if (p->galaxy_n_max < p->galaxy_n_min)
        return sk_error(SK_EINPUT, "simulation.galaxy_n_max is below galaxy_n_min");
    if (p->seeing_max_arcsec > 0 && p->seeing_max_arcsec < p->seeing_arcsec)
        return sk_error(SK_EINPUT, "simulation.seeing_max_arcsec %g is below seeing_arcsec %g "
                        "(0: every exposure at seeing_arcsec)", p->seeing_max_arcsec, p->seeing_arcsec);
    double fwhm_px = fmax(p->seeing_arcsec, p->seeing_max_arcsec) / p->pixel_scale_arcsec;
    if (fwhm_px < 0.5 || fwhm_px > 200)
        return sk_error(SK_EINPUT, "simulation.seeing_arcsec: %g arcsec is %g px, outside [0.5, 200]",
                        p->seeing_arcsec, fwhm_px);
    double half_deg = 0.5 * hypot((double)p->width_px, (double)p->height_px) *
                      p->pixel_scale_arcsec / 3600.0;
    if (half_deg > 10.0)
        return sk_error(SK_EINPUT, "simulation: the image spans %g deg; imsim's TAN field "
                        "is limited to 20 deg", 2 * half_deg);
    return SK_OK;
}
