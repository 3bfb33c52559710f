/* sim_expose.c: one simulated exposure of the field: observing conditions,
 * the noise-free model (sky + sources), photon and read noise, defects,
 * saturation, the weight and flag planes, the header and the truth table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "skystack/error.h"
#include "skystack/wcs.h"
#include "core/parallel.h"
#include "sim_priv.h"
#include "sim_internal.h"

/* Random streams of exposure i: (noise seed, STREAM_EXPOSURE + i, substream):
 * substream 0 the conditions, 1 + row the photon noise of that row,
 * 1 + height + row its read noise. */
#define STREAM_EXPOSURE 1000

/* ---- observing conditions ---- */

double sk_sim_sky_adu(const sk_sim_expinfo *info, double x, double y)
{
    return info->sky_adu + info->sky_grad_x * (x - info->centre_x) +
           info->sky_grad_y * (y - info->centre_y);
}

void sk_sim_psf_at(const sk_sim_params *p, const sk_sim_expinfo *info, long width, long height,
                   double x, double y, sk_sim_psf *psf)
{
    *psf = info->psf;
    double half_diag = 0.5 * hypot((double)width, (double)height);
    double xn = (x - info->centre_x) / half_diag, yn = (y - info->centre_y) / half_diag;
    double rho2 = xn * xn + yn * yn;
    /* FWHM grows by psf_variation at the corners (field curvature); the
     * ellipticity gains an astigmatic pattern of the same amplitude. */
    psf->fwhm_px = info->psf.fwhm_px * (1.0 + p->psf_variation * rho2);
    double th0 = 2.0 * info->psf.angle_deg * M_PI / 180.0;
    double e1 = info->psf.ellipticity * cos(th0) + 0.5 * p->psf_variation * (xn * xn - yn * yn);
    double e2 = info->psf.ellipticity * sin(th0) + p->psf_variation * xn * yn;
    double e = hypot(e1, e2);
    psf->ellipticity = e < 0.5 ? e : 0.5;
    psf->angle_deg = 0.5 * atan2(e2, e1) * 180.0 / M_PI;
}

static double airmass_of(double dec_deg, double lat_deg, double ha_h)
{
    double d = dec_deg * M_PI / 180.0, l = lat_deg * M_PI / 180.0, h = ha_h * M_PI / 12.0;
    double cosz = sin(l) * sin(d) + cos(l) * cos(d) * cos(h);
    if (cosz < 0.1)
        cosz = 0.1;
    double s = 1.0 / cosz - 1.0; /* Hardie (1962) */
    return 1.0 + s - 0.0018167 * s - 0.002875 * s * s - 0.0008083 * s * s * s;
}

static void iso_date(double mjd, char *out, size_t size)
{
    double secs = (mjd - 40587.0) * 86400.0;
    double whole = floor(secs);
    long ms = lround((secs - whole) * 1000.0);
    if (ms >= 1000) {
        whole += 1.0;
        ms -= 1000;
    }
    time_t t = (time_t)whole;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* ---- the sources of one exposure ---- */

typedef struct item {
    long src;            /* index in the field */
    double x, y;         /* mid-exposure position, 0-based */
    double xs, ys, xe, ye; /* moving: start and end of the exposure */
    double flux_adu;
    sk_sim_psf psf;
    double extent;       /* half-size of the box it touches */
    sk_sim_stamp stamp;  /* galaxies */
    int in_image;
} item;

typedef struct ctx {
    const sk_sim_params *p;
    const sk_sim_field *f;
    sk_sim_expinfo *info;
    long width, height;
    item *items;
    long nitems;
    double *model;     /* electrons */
    double *elec;      /* noisy electrons */
    uint8_t *bad;
    float *sci, *wgt;
    uint16_t *flg;
    double band_rows;
    long nbands;
    sim_nebula neb;
} ctx;

static int render_galaxy(long k, void *arg)
{
    ctx *c = arg;
    item *it = &c->items[k];
    const sk_sim_source *s = &c->f->src[it->src];
    if (s->type != SK_SIM_GALAXY)
        return SK_OK;
    sk_sim_galaxy g = s->gal;
    g.re_px = s->gal.re_px / c->p->pixel_scale_arcsec;
    g.angle_deg = s->gal.angle_deg + c->info->rotation_deg;
    return sk_sim_galaxy_render(&g, &it->psf, it->flux_adu * c->p->gain, it->x, it->y, &it->stamp);
}

static int render_band(long band, void *arg)
{
    ctx *c = arg;
    long r0 = (long)((double)band * c->band_rows), r1 = (long)((double)(band + 1) * c->band_rows);
    if (band == c->nbands - 1)
        r1 = c->height;
    long w = c->width;
    for (long j = r0; j < r1; j++)
        for (long i = 0; i < w; i++)
            c->model[j * w + i] = c->p->gain * sk_sim_sky_adu(c->info, (double)i, (double)j);
    sim_nebula_add(&c->neb, c->model, w, c->height, r0, r1);
    for (long k = 0; k < c->nitems; k++) {
        item *it = &c->items[k];
        if (it->y + it->extent < (double)r0 - 1.0 || it->y - it->extent > (double)r1 + 1.0)
            continue;
        int type = c->f->src[it->src].type;
        double fe = it->flux_adu * c->p->gain;
        if (type == SK_SIM_GALAXY) {
            sk_sim_stamp_add(&it->stamp, c->model, w, c->height, r0, r1);
        } else if (type == SK_SIM_MOVING) {
            /* trailed: the PSF at many points along the path */
            double len = hypot(it->xe - it->xs, it->ye - it->ys);
            long n = len < 0.5 ? 1 : (long)ceil(2.0 * len) + 1;
            for (long s = 0; s < n; s++) {
                double t = n == 1 ? 0.5 : (double)s / (double)(n - 1);
                sk_sim_psf_add(&it->psf, fe / (double)n, it->xs + t * (it->xe - it->xs),
                               it->ys + t * (it->ye - it->ys), c->model, w, c->height, r0, r1);
            }
        } else {
            sk_sim_psf_add(&it->psf, fe, it->x, it->y, c->model, w, c->height, r0, r1);
        }
    }
    if (c->info->satellite) {
        double ang = atan2(c->info->sat_y1 - c->info->sat_y0, c->info->sat_x1 - c->info->sat_x0);
        sim_satellite(c->model, w, c->height, r0, r1, c->info->sat_x0, c->info->sat_y0,
                      ang * 180.0 / M_PI, c->info->psf.fwhm_px,
                      c->info->sat_adu_per_px * c->p->gain);
    }
    return SK_OK;
}

static int photon_row(long j, void *arg)
{
    ctx *c = arg;
    long w = c->width;
    sk_rng r;
    sk_rng_init(&r, c->p->noise_seed, STREAM_EXPOSURE + (uint64_t)c->info->index, 1 + (uint64_t)j);
    for (long i = 0; i < w; i++) {
        double m = c->model[j * w + i];
        c->elec[j * w + i] = c->p->noise ? (double)sk_rng_poisson(&r, m) : m;
    }
    return SK_OK;
}

static int readout_row(long j, void *arg)
{
    ctx *c = arg;
    const sk_sim_params *p = c->p;
    long w = c->width;
    double full_well = p->saturation_adu * p->gain;
    sk_rng r;
    sk_rng_init(&r, p->noise_seed, STREAM_EXPOSURE + (uint64_t)c->info->index,
                1 + (uint64_t)c->height + (uint64_t)j);
    for (long i = 0; i < w; i++) {
        long k = j * w + i;
        double e = c->elec[k];
        int sat = e >= full_well;
        if (p->noise)
            e += p->read_noise_e * sk_rng_gauss(&r);
        double adu = e / p->gain;
        if (sat || adu >= p->saturation_adu) {
            adu = p->saturation_adu;
            sat = 1;
        }
        c->sci[k] = (float)adu;
        double sky_e = p->gain * sk_sim_sky_adu(c->info, (double)i, (double)j);
        double var_adu = (sky_e + p->read_noise_e * p->read_noise_e) / (p->gain * p->gain);
        c->wgt[k] = (float)(1.0 / var_adu);
        uint16_t fl = sat ? SK_FLAG_SATURATED : 0;
        if (c->bad[k]) {
            fl |= SK_FLAG_BAD;
            c->wgt[k] = 0.0f;
        }
        c->flg[k] = fl;
    }
    return SK_OK;
}

/* ---- headers and tables ---- */

static int set_common(const sk_sim_params *p, const sk_sim_expinfo *info, sk_header *h)
{
    char date[128];
    iso_date(info->mjd, date, sizeof date);
    int rc = sk_header_set_str(h, "ORIGIN", "skystack imsim", "simulated exposure");
    rc = rc ? rc : sk_header_set_str(h, "TELESCOP", p->telescope, NULL);
    rc = rc ? rc : sk_header_set_str(h, "INSTRUME", p->instrument, NULL);
    rc = rc ? rc : sk_header_set_str(h, "FILTER", p->filter, NULL);
    rc = rc ? rc : sk_header_set_str(h, "OBJECT", p->target, "target field");
    rc = rc ? rc : sk_header_set_str(h, "SECTION", p->section, "section (detector) id");
    rc = rc ? rc : sk_header_set_str(h, "PROJECT", p->project, NULL);
    rc = rc ? rc : sk_header_set_double(h, "MJD-OBS", info->mjd, "[d] start of the exposure");
    rc = rc ? rc : sk_header_set_str(h, "DATE-OBS", date, "UTC start of the exposure");
    rc = rc ? rc : sk_header_set_double(h, "EXPTIME", info->exptime_s, "[s] exposure time");
    rc = rc ? rc : sk_header_set_double(h, "AIRMASS", info->airmass, NULL);
    rc = rc ? rc : sk_header_set_double(h, "GAIN", p->gain, "[e-/ADU]");
    rc = rc ? rc : sk_header_set_double(h, "RDNOISE", p->read_noise_e, "[e-] read noise");
    rc = rc ? rc : sk_header_set_double(h, "SATURATE", p->saturation_adu, "[ADU] saturation level");
    rc = rc ? rc : sk_header_set_str(h, "BUNIT", "adu", NULL);
    rc = rc ? rc : sk_header_set_long(h, "EXPNUM", info->index, "exposure number in the simulation");
    rc = rc ? rc : sk_header_set_long(h, "SIMSEED", (long)p->seed, "imsim seed");
    if (!rc && p->noise_seed != p->seed)
        rc = sk_header_set_long(h, "SIMNSEED", (long)p->noise_seed, "imsim noise seed (conditions, noise)");
    if (!rc && p->sed_mag != 0)
        rc = sk_header_set_double(h, "SIMSEDM", p->sed_mag, "[mag] imsim: band mag = mag + SIMSEDM * SED slope");
    return rc;
}

/* Append the true WCS cards (a header of its own) to `h`. */
static int append_cards(sk_header *h, const sk_header *src)
{
    for (int i = 0; i < src->ncards; i++) {
        int rc = sk_header_append_records(h, src->cards[i], 1);
        if (rc)
            return rc;
    }
    return SK_OK;
}

static int truth_header(const sk_sim_params *p, const sk_sim_exposure *e, int perturbed)
{
    const sk_sim_expinfo *in = &e->info;
    sk_header *h = e->truth->header;
    int rc = set_common(p, in, h);
    rc = rc ? rc : sk_header_set_str(h, "PIXCONV", "0-based",
                                     "x, y: 0-based, first pixel centre is (0,0)");
    rc = rc ? rc : sk_header_set_double(h, "MAGZERO", in->magzero, "m = -2.5 log10(flux/ADU) + MAGZERO");
    rc = rc ? rc : sk_header_set_double(h, "SKYADU", in->sky_adu, "[ADU] sky at SKYREFX, SKYREFY");
    rc = rc ? rc : sk_header_set_double(h, "SKYGRADX", in->sky_grad_x, "[ADU/px] sky gradient along x");
    rc = rc ? rc : sk_header_set_double(h, "SKYGRADY", in->sky_grad_y, "[ADU/px] sky gradient along y");
    rc = rc ? rc : sk_header_set_double(h, "SKYREFX", in->centre_x, "sky reference pixel x (0-based)");
    rc = rc ? rc : sk_header_set_double(h, "SKYREFY", in->centre_y, "sky reference pixel y (0-based)");
    rc = rc ? rc : sk_header_set_str(h, "PSFMODEL", in->psf.model == SK_SIM_MOFFAT     ? "moffat"
                                                    : in->psf.model == SK_SIM_GAUSSIAN ? "gaussian"
                                                                                       : "double-gaussian",
                                     NULL);
    if (!rc && in->psf.model == SK_SIM_DOUBLE_GAUSSIAN) {
        rc = sk_header_set_double(h, "PSFWFRAC", in->psf.wing_fraction, "light in the wing Gaussian");
        rc = rc ? rc : sk_header_set_double(h, "PSFWRAT", in->psf.wing_ratio, "wing FWHM / core FWHM");
    }
    rc = rc ? rc : sk_header_set_double(h, "PSFFWHM", in->psf.fwhm_px, "[px] PSF FWHM at the image centre");
    rc = rc ? rc : sk_header_set_double(h, "SEEING", in->psf.fwhm_px * p->pixel_scale_arcsec,
                                        "[arcsec] PSF FWHM at the image centre");
    rc = rc ? rc : sk_header_set_double(h, "PSFBETA", in->psf.beta, "Moffat beta");
    rc = rc ? rc : sk_header_set_double(h, "PSFELLIP", in->psf.ellipticity, "PSF 1-b/a at the centre");
    rc = rc ? rc : sk_header_set_double(h, "PSFANGLE", in->psf.angle_deg, "[deg] PSF major axis from +x");
    rc = rc ? rc : sk_header_set_double(h, "PSFVAR", p->psf_variation, "PSF FWHM change at the corners");
    rc = rc ? rc : sk_header_set_double(h, "PSFTRUNC", in->psf.radius_fwhm, "[FWHM] PSF truncation radius");
    rc = rc ? rc : sk_header_set_double(h, "PNTRA", in->pointing_ra_deg, "[deg] pointing (true)");
    rc = rc ? rc : sk_header_set_double(h, "PNTDEC", in->pointing_dec_deg, "[deg] pointing (true)");
    rc = rc ? rc : sk_header_set_double(h, "ROTANG", in->rotation_deg, "[deg] true rotation");
    rc = rc ? rc : sk_header_set_bool(h, "WCSPERT", perturbed, "image header WCS deliberately perturbed");
    rc = rc ? rc : sk_header_set_bool(h, "SATTRAIL", in->satellite, "a satellite trail crosses the image");
    if (!rc && in->satellite) {
        rc = sk_header_set_double(h, "SATX0", in->sat_x0, "trail enters (0-based)");
        rc = rc ? rc : sk_header_set_double(h, "SATY0", in->sat_y0, NULL);
        rc = rc ? rc : sk_header_set_double(h, "SATX1", in->sat_x1, "trail leaves (0-based)");
        rc = rc ? rc : sk_header_set_double(h, "SATY1", in->sat_y1, NULL);
        rc = rc ? rc : sk_header_set_double(h, "SATADU", in->sat_adu_per_px, "[ADU] per px of length");
    }
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT", "The WCS cards of this table are the true WCS.");
    rc = rc ? rc : append_cards(h, e->true_wcs);
    return rc;
}

void sk_sim_exposure_free(sk_sim_exposure *e)
{
    if (!e)
        return;
    sk_image_free(e->image);
    sk_header_free(e->true_wcs);
    sk_table_free(e->truth);
    sk_table_free(e->cosmics);
    free(e);
}

static int add_cols(sk_table *t, const char *const *names, const int *types, const char *const *units,
                    int n)
{
    for (int i = 0; i < n; i++)
        if (!sk_table_add_column(t, names[i], types[i], 1, units[i]))
            return sk_errstatus() ? sk_errstatus() : SK_EIO;
    return SK_OK;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The satellite trail: the line through (px, py) at angle ang (rad),
 * clipped to the image box. */
static void satellite_line(const sk_sim_params *p, sk_sim_expinfo *in, long w, long h, double sat_px,
                           double sat_py, double sat_ang)
{
    double dx = cos(sat_ang), dy = sin(sat_ang), tmin = -1e300, tmax = 1e300;
    double lo[2] = {-0.5, -0.5}, hi[2] = {(double)w - 0.5, (double)h - 0.5};
    double o[2] = {sat_px, sat_py}, d[2] = {dx, dy};
    for (int a = 0; a < 2; a++) {
        if (fabs(d[a]) < 1e-12)
            continue;
        double t0 = (lo[a] - o[a]) / d[a], t1 = (hi[a] - o[a]) / d[a];
        if (t0 > t1) { double t = t0; t0 = t1; t1 = t; }
        tmin = fmax(tmin, t0);
        tmax = fmin(tmax, t1);
    }
    in->satellite = 1;
    in->sat_x0 = sat_px + tmin * dx;
    in->sat_y0 = sat_py + tmin * dy;
    in->sat_x1 = sat_px + tmax * dx;
    in->sat_y1 = sat_py + tmax * dy;
    in->sat_adu_per_px = p->pixel_scale_arcsec * pow(10.0, -0.4 * (p->satellite_mag_per_arcsec - in->magzero));
}

/* The exposure's conditions, drawn in a fixed order from its stream r;
 * *pert_pa_deg: the position angle of the header WCS's offset. */
static int draw_conditions(const sk_sim_params *p, int index, sk_rng *r, sk_sim_expinfo *in,
                           double *pert_pa_deg)
{
    long w = p->width_px, h = p->height_px;
    in->index = index;
    in->mjd = p->start_mjd + (double)index * p->cadence_days;
    in->exptime_s = p->exptime_s;
    in->airmass = airmass_of(p->dec_deg, p->site_latitude_deg,
                             sk_rng_range(r, -p->max_hour_angle_h, p->max_hour_angle_h));
    double transparency = -fabs(sk_rng_gauss(r)) * p->transparency_scatter_mag;
    in->magzero = p->zero_point + 2.5 * log10(p->exptime_s) -
                  p->extinction_mag_per_airmass * in->airmass + transparency;
    double sky_mag = p->sky_mag_arcsec2 + p->sky_scatter_mag * sk_rng_gauss(r);
    in->sky_adu = p->sky_adu > 0
                      ? p->sky_adu * pow(10.0, -0.4 * (sky_mag - p->sky_mag_arcsec2))
                      : p->pixel_scale_arcsec * p->pixel_scale_arcsec * pow(10.0, -0.4 * (sky_mag - in->magzero));
    double grad_dir = sk_rng_range(r, 0.0, 2.0 * M_PI);
    double grad = p->sky_gradient * in->sky_adu / (double)(w > h ? w : h);
    in->sky_grad_x = grad * cos(grad_dir);
    in->sky_grad_y = grad * sin(grad_dir);
    in->centre_x = 0.5 * (double)(w - 1);
    in->centre_y = 0.5 * (double)(h - 1);
    double seeing0 = p->seeing_arcsec;
    if (p->seeing_max_arcsec > p->seeing_arcsec && p->nexp > 1)
        seeing0 += (p->seeing_max_arcsec - p->seeing_arcsec) * (double)index / (double)(p->nexp - 1);
    double seeing = seeing0 * exp(p->seeing_scatter * sk_rng_gauss(r));
    in->psf.model = p->psf_model;
    in->psf.wing_fraction = p->psf_wing_fraction;
    in->psf.wing_ratio = p->psf_wing_ratio;
    in->psf.fwhm_px = seeing / p->pixel_scale_arcsec;
    in->psf.beta = p->moffat_beta;
    in->psf.ellipticity = fmin(fabs(sk_rng_gauss(r)) * p->psf_ellipticity, 0.5);
    in->psf.angle_deg = sk_rng_range(r, -90.0, 90.0);
    in->psf.radius_fwhm = p->psf_radius_fwhm;
    double dither_e = sk_rng_range(r, -p->dither_arcsec, p->dither_arcsec);
    double dither_n = sk_rng_range(r, -p->dither_arcsec, p->dither_arcsec);
    in->rotation_deg = p->rotation_scatter_deg * sk_rng_gauss(r);
    double sat_u = sk_rng_uniform(r);
    double sat_px = sk_rng_range(r, 0.0, (double)(w - 1)), sat_py = sk_rng_range(r, 0.0, (double)(h - 1));
    double sat_ang = sk_rng_range(r, 0.0, M_PI);
    *pert_pa_deg = sk_rng_range(r, 0.0, 360.0);
    int rc = sk_sim_offset_radec(p->ra_deg, p->dec_deg, 1, &dither_e, &dither_n, &in->pointing_ra_deg,
                                 &in->pointing_dec_deg);
    if (!rc && (in->psf.fwhm_px < 0.5 || in->psf.fwhm_px > 200.0))
        rc = sk_error(SK_EINPUT, "imsim: exposure %d: seeing %g px is outside [0.5, 200]", index,
                      in->psf.fwhm_px);
    if (!rc && sat_u < p->satellite_probability)
        satellite_line(p, in, w, h, sat_px, sat_py, sat_ang);
    return rc;
}

/* The true WCS (*wcs, and e->true_wcs) and the image header's, perturbed
 * when the parameters ask (*perturbed). */
static int exposure_wcs(const sk_sim_params *p, sk_sim_exposure *e, double pert_pa_deg, sk_wcs **wcs,
                        int *perturbed)
{
    const sk_sim_expinfo *in = &e->info;
    long w = p->width_px, h = p->height_px;
    e->true_wcs = sk_header_new();
    e->image = sk_image_new(w, h);
    *perturbed = p->wcs_offset_arcsec != 0.0 || p->wcs_rotation_deg != 0.0 || p->wcs_scale_error != 0.0;
    if (!e->true_wcs || !e->image)
        return sk_error(SK_EIO, "imsim: out of memory for a %ldx%ld image", w, h);
    int rc = sk_sim_wcs_header(p, in->pointing_ra_deg, in->pointing_dec_deg, in->rotation_deg,
                               p->pixel_scale_arcsec, e->true_wcs);
    if (!rc)
        rc = sk_wcs_from_header(e->true_wcs, wcs);
    if (!rc) {
        sk_header *ih = e->image->header;
        rc = set_common(p, in, ih);
        rc = rc ? rc : append_cards(ih, e->true_wcs);
        if (!rc && *perturbed)
            rc = sk_sim_wcs_perturb(ih, p->wcs_offset_arcsec, pert_pa_deg, p->wcs_rotation_deg,
                                    p->wcs_scale_error);
        rc = rc ? rc : sk_wcs_from_header(ih, &e->image->wcs);
    }
    return rc;
}

/* Item c->nitems from source i at pixel (x, y) (mid-exposure) and its path
 * (xs, ys) to (xe, ye); kept when it touches the image. */
static void add_item(ctx *c, long i, const double *px, const double *py, double t_mid)
{
    const sk_sim_params *p = c->p;
    const sk_sim_source *s = &c->f->src[i];
    long w = c->width, h = c->height;
    double mag = sk_sim_source_mag(p, s, t_mid);
    double x = px[3 * i], y = py[3 * i];
    if (!isfinite(mag) || !isfinite(x) || !isfinite(y))
        return;
    /* a moving source whose path's ends have no pixel (far outside the
       image, where the distortion cannot be inverted) is left out: its
       trail cannot be drawn */
    if (s->type == SK_SIM_MOVING && !(isfinite(px[3 * i + 1]) && isfinite(py[3 * i + 1]) &&
                                      isfinite(px[3 * i + 2]) && isfinite(py[3 * i + 2])))
        return;
    item *it = &c->items[c->nitems];
    it->src = i;
    it->x = x;
    it->y = y;
    it->xs = px[3 * i + 1];
    it->ys = py[3 * i + 1];
    it->xe = px[3 * i + 2];
    it->ye = py[3 * i + 2];
    it->flux_adu = pow(10.0, -0.4 * (mag - c->info->magzero));
    sk_sim_psf_at(p, c->info, w, h, x, y, &it->psf);
    it->extent = sk_sim_psf_extent_px(&it->psf) + 2.0;
    if (s->type == SK_SIM_GALAXY)
        it->extent += 4.0 * s->gal.re_px / p->pixel_scale_arcsec;
    if (s->type == SK_SIM_MOVING)
        it->extent += hypot(it->xe - it->xs, it->ye - it->ys);
    if (x + it->extent < -0.5 || x - it->extent > (double)w - 0.5 ||
        y + it->extent < -0.5 || y - it->extent > (double)h - 0.5)
        return;
    it->in_image = x >= -0.5 && x < (double)w - 0.5 && y >= -0.5 && y < (double)h - 0.5;
    c->nitems++;
}

/* Sources: positions through the true WCS (mid-exposure, start, end),
 * fluxes at this epoch, into c->items. */
static int place_sources(ctx *c, const sk_wcs *wcs, double t_mid)
{
    const sk_sim_params *p = c->p;
    long n = c->f->nsrc;
    double *ra = malloc((size_t)(3 * n + 1) * sizeof *ra), *dec = malloc((size_t)(3 * n + 1) * sizeof *dec);
    double *px = malloc((size_t)(3 * n + 1) * sizeof *px), *py = malloc((size_t)(3 * n + 1) * sizeof *py);
    c->items = calloc((size_t)(n + 1), sizeof *c->items);
    int rc = SK_OK;
    if (!ra || !dec || !px || !py || !c->items)
        rc = sk_error(SK_EIO, "imsim: out of memory for %ld sources", n);
    for (long i = 0; !rc && i < n; i++) {
        const sk_sim_source *s = &c->f->src[i];
        double t[3] = {t_mid, c->info->mjd, c->info->mjd + p->exptime_s / 86400.0};
        for (int k = 0; !rc && k < 3; k++)
            rc = sk_sim_source_radec(p, s, t[k], &ra[3 * i + k], &dec[3 * i + k]);
    }
    if (!rc && n > 0) {
        rc = sk_wcs_sky2pix(wcs, 3 * n, ra, dec, px, py);
        if (rc == SK_EINPUT) /* points beyond the projection's domain are NaN: skipped */
            rc = SK_OK;
    }
    for (long i = 0; !rc && i < n; i++)
        add_item(c, i, px, py, t_mid);
    free(ra);
    free(dec);
    free(px);
    free(py);
    return rc;
}

/* The model in electrons, then noise, defects, cosmic rays (drawn from r,
 * recorded in hits), bleeding and readout into e->image. */
static int render_exposure(ctx *c, sk_sim_exposure *e, sk_rng *r, int threads, sim_hits *hits)
{
    const sk_sim_params *p = c->p;
    long w = c->width, h = c->height;
    size_t npix = (size_t)w * (size_t)h;
    c->model = malloc(npix * sizeof *c->model);
    c->elec = malloc(npix * sizeof *c->elec);
    c->bad = calloc(npix, 1);
    int rc = SK_OK;
    if (!c->model || !c->elec || !c->bad)
        rc = sk_error(SK_EIO, "imsim: out of memory for a %ldx%ld image", w, h);
    if (!rc)
        rc = sk_parallel_for_each(c->nitems, threads, render_galaxy, c);
    if (!rc) {
        c->nbands = threads > 1 ? 8L * threads : 1;
        if (c->nbands > h)
            c->nbands = h;
        c->band_rows = (double)h / (double)c->nbands;
        rc = sk_parallel_for_each(c->nbands, threads, render_band, c);
        rc = rc ? rc : sk_parallel_for_each(h, threads, photon_row, c);
    }
    if (!rc)
        rc = sim_defects(p, c->elec, c->bad, w, h);
    if (!rc)
        rc = sim_cosmics(p, r, c->elec, w, h, hits);
    if (!rc) {
        sim_bleed(c->elec, w, h, p->saturation_adu * p->gain);
        c->sci = e->image->sci;
        c->wgt = e->image->weight;
        c->flg = e->image->flags;
        rc = sk_parallel_for_each(h, threads, readout_row, c);
    }
    free(c->model);
    free(c->elec);
    free(c->bad);
    c->model = c->elec = NULL;
    c->bad = NULL;
    return rc;
}

/* The truth tables' columns (SOURCES: ntruth rows; COSMICS: the hits). */
static int truth_tables(sk_sim_exposure *e, long ntruth, const sim_hits *hits)
{
    e->truth = sk_table_new("SOURCES", ntruth);
    e->cosmics = sk_table_new("COSMICS", hits->n);
    if (!e->truth || !e->cosmics)
        return sk_error(SK_EIO, "imsim: out of memory");
    static const char *const names[] = {"id", "type", "x", "y", "ra", "dec", "mag", "flux",
                                        "fwhm", "psf_e", "re", "sersic_n", "axis_ratio",
                                        "angle", "saturated", "blended"};
    static const int types[] = {SK_COL_INT64, SK_COL_INT16, SK_COL_DOUBLE, SK_COL_DOUBLE,
                                SK_COL_DOUBLE, SK_COL_DOUBLE, SK_COL_DOUBLE, SK_COL_DOUBLE,
                                SK_COL_FLOAT, SK_COL_FLOAT, SK_COL_FLOAT, SK_COL_FLOAT,
                                SK_COL_FLOAT, SK_COL_FLOAT, SK_COL_LOGICAL, SK_COL_LOGICAL};
    static const char *const units[] = {"", "", "pixel", "pixel", "deg", "deg", "mag", "adu",
                                        "pixel", "", "pixel", "", "", "deg", "", ""};
    int rc = add_cols(e->truth, names, types, units, 16);
    if (rc)
        return rc;
    static const char *const cnames[] = {"ray", "x", "y", "electrons"};
    static const int ctypes[] = {SK_COL_INT32, SK_COL_INT32, SK_COL_INT32, SK_COL_FLOAT};
    static const char *const cunits[] = {"", "pixel", "pixel", "electron"};
    rc = add_cols(e->cosmics, cnames, ctypes, cunits, 4);
    for (long k = 0; !rc && k < hits->n; k++) {
        sk_column_set(&e->cosmics->cols[0], k, 0, hits->ray[k]);
        sk_column_set(&e->cosmics->cols[1], k, 0, hits->x[k]);
        sk_column_set(&e->cosmics->cols[2], k, 0, hits->y[k]);
        sk_column_set(&e->cosmics->cols[3], k, 0, hits->electrons[k]);
    }
    return rc;
}

/* The items on a grid of cells of `cell` px (one cell of border): items
 * order[start[g] .. start[g+1]) in cell g, ascending. */
typedef struct item_grid {
    double cell;
    long gx, gy;
    long *order, *start;
} item_grid;

static int item_grid_make(const ctx *c, item_grid *g)
{
    g->gx = (long)ceil((double)c->width / g->cell) + 2;
    g->gy = (long)ceil((double)c->height / g->cell) + 2;
    long ncell = g->gx * g->gy;
    g->order = malloc((size_t)(c->nitems + 1) * sizeof *g->order * 2);
    g->start = calloc((size_t)(ncell + 1), sizeof *g->start);
    long *fill = calloc((size_t)ncell, sizeof *fill);
    if (!g->order || !g->start || !fill) {
        free(fill);
        return sk_error(SK_EIO, "imsim: out of memory");
    }
    /* sort (cell, item) pairs: counting sort by cell */
    long *cellof = g->order + c->nitems;
    for (long k = 0; k < c->nitems; k++) {
        long cx = (long)floor(c->items[k].x / g->cell) + 1, cy = (long)floor(c->items[k].y / g->cell) + 1;
        cx = cx < 0 ? 0 : cx >= g->gx ? g->gx - 1 : cx;
        cy = cy < 0 ? 0 : cy >= g->gy ? g->gy - 1 : cy;
        cellof[k] = cy * g->gx + cx;
        g->start[cellof[k] + 1]++;
    }
    for (long q = 0; q < ncell; q++)
        g->start[q + 1] += g->start[q];
    for (long k = 0; k < c->nitems; k++)
        g->order[g->start[cellof[k]] + fill[cellof[k]]++] = k;
    for (long q = 0; q < ncell; q++)
        qsort(g->order + g->start[q], (size_t)(g->start[q + 1] - g->start[q]), sizeof *g->order, cmp_long);
    free(fill);
    return SK_OK;
}

/* Another item within reach (2 FWHM plus galaxy sizes) of item k bringing
 * at least 10 % of its flux. */
static int item_blended(const ctx *c, const item_grid *g, long k)
{
    const sk_sim_params *p = c->p;
    const item *it = &c->items[k];
    const sk_sim_source *s = &c->f->src[it->src];
    double reach_k = 2.0 * it->psf.fwhm_px +
                     (s->type == SK_SIM_GALAXY ? s->gal.re_px / p->pixel_scale_arcsec : 0.0);
    long cx = (long)floor(it->x / g->cell) + 1, cy = (long)floor(it->y / g->cell) + 1;
    for (long yy = cy - 1; yy <= cy + 1; yy++)
        for (long xx = cx - 1; xx <= cx + 1; xx++) {
            if (xx < 0 || yy < 0 || xx >= g->gx || yy >= g->gy)
                continue;
            for (long q = g->start[yy * g->gx + xx]; q < g->start[yy * g->gx + xx + 1]; q++) {
                const item *o = &c->items[g->order[q]];
                if (g->order[q] == k || o->flux_adu < 0.1 * it->flux_adu)
                    continue;
                const sk_sim_source *os = &c->f->src[o->src];
                double reach = reach_k + (os->type == SK_SIM_GALAXY ? os->gal.re_px / p->pixel_scale_arcsec : 0.0);
                if (hypot(o->x - it->x, o->y - it->y) < reach)
                    return 1;
            }
        }
    return 0;
}

/* A saturated pixel among the 3x3 around the item. */
static int item_saturated(const ctx *c, const sk_image *im, const item *it)
{
    long w = c->width, h = c->height;
    int saturated = 0;
    long ic = lround(it->x), jc = lround(it->y);
    for (long jj = jc - 1; jj <= jc + 1; jj++)
        for (long ii = ic - 1; ii <= ic + 1; ii++)
            if (ii >= 0 && jj >= 0 && ii < w && jj < h && (im->flags[jj * w + ii] & SK_FLAG_SATURATED))
                saturated = 1;
    return saturated;
}

/* One SOURCES row per item centred on the image, with its blended flag
 * from the neighbour grid and its saturated flag from the image. */
static int truth_rows(const ctx *c, sk_sim_exposure *e, double t_mid)
{
    const sk_sim_params *p = c->p;
    const sk_sim_expinfo *in = c->info;
    item_grid g;
    memset(&g, 0, sizeof g);
    g.cell = 4.0 * in->psf.fwhm_px * (1.0 + p->psf_variation) + 1.0;
    int rc = item_grid_make(c, &g);
    long row = 0;
    for (long k = 0; !rc && k < c->nitems; k++) {
        const item *it = &c->items[k];
        if (!it->in_image)
            continue;
        const sk_sim_source *s = &c->f->src[it->src];
        double ra_mid, dec_mid;
        rc = sk_sim_source_radec(p, s, t_mid, &ra_mid, &dec_mid);
        if (rc)
            break;
        int blended = item_blended(c, &g, k);
        int saturated = item_saturated(c, e->image, it);
        sk_table *t = e->truth;
        double vals[14] = {(double)s->id, (double)s->type, it->x, it->y, ra_mid, dec_mid,
                           sk_sim_source_mag(p, s, t_mid), it->flux_adu, it->psf.fwhm_px,
                           it->psf.ellipticity, 0, 0, 0, 0};
        if (s->type == SK_SIM_GALAXY) {
            vals[10] = s->gal.re_px / p->pixel_scale_arcsec;
            vals[11] = s->gal.sersic_n;
            vals[12] = s->gal.axis_ratio;
            vals[13] = s->gal.angle_deg + in->rotation_deg;
        }
        for (int col = 0; col < 14; col++)
            sk_column_set(&t->cols[col], row, 0, vals[col]);
        sk_column_set(&t->cols[14], row, 0, saturated);
        sk_column_set(&t->cols[15], row, 0, blended);
        row++;
    }
    free(g.order);
    free(g.start);
    return rc;
}

int sk_sim_expose(const sk_sim_params *p, const sk_sim_field *f, int index, int threads,
                  sk_sim_exposure **out)
{
    *out = NULL;
    sk_sim_exposure *e = calloc(1, sizeof *e);
    if (!e)
        return sk_error(SK_EIO, "imsim: out of memory");
    sk_sim_expinfo *in = &e->info;
    sk_rng r;
    sk_rng_init(&r, p->noise_seed, STREAM_EXPOSURE + (uint64_t)index, 0);
    double pert_pa_deg = 0.0;
    sk_wcs *wcs = NULL;
    int perturbed = 0;
    int rc = draw_conditions(p, index, &r, in, &pert_pa_deg);
    if (!rc)
        rc = exposure_wcs(p, e, pert_pa_deg, &wcs, &perturbed);
    ctx c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.f = f;
    c.info = in;
    c.width = p->width_px;
    c.height = p->height_px;
    double t_mid = in->mjd + 0.5 * p->exptime_s / 86400.0;
    if (!rc)
        rc = place_sources(&c, wcs, t_mid);
    if (!rc)
        rc = sim_nebula_place(p, in, wcs, &c.neb);
    sim_hits hits;
    memset(&hits, 0, sizeof hits);
    if (!rc)
        rc = render_exposure(&c, e, &r, threads, &hits);
    long ntruth = 0;
    for (long k = 0; k < c.nitems; k++)
        ntruth += c.items[k].in_image;
    if (!rc)
        rc = truth_tables(e, ntruth, &hits);
    sim_hits_free(&hits);
    if (!rc)
        rc = truth_rows(&c, e, t_mid);
    for (long k = 0; k < c.nitems; k++)
        free(c.items[k].stamp.pix);
    free(c.items);
    sim_nebula_free(&c.neb);
    sk_wcs_free(wcs);
    if (!rc)
        rc = truth_header(p, e, perturbed);
    if (rc) {
        sk_sim_exposure_free(e);
        return rc;
    }
    *out = e;
    return SK_OK;
}
