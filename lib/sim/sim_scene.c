/* sim_scene.c: the simulated field on the sky: stars with power-law number
 * counts, Sersic galaxies, moving and transient sources, and the reference
 * catalog drawn from them with realistic errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/sim.h"
#include "sim_internal.h"

/* Random streams of the field (exposures use 1000 + index). */
enum { STREAM_STARS = 1, STREAM_GALAXIES = 2, STREAM_MOVING = 3, STREAM_TRANSIENTS = 4,
       STREAM_REFCAT = 5, STREAM_SED = 9 };

/* A magnitude from dN/dm ~ 10^(slope m) on [lo, hi] (inverse CDF). */
static double draw_mag(sk_rng *r, double lo, double hi, double slope)
{
    double u = sk_rng_uniform(r);
    if (fabs(slope) < 1e-9 || hi - lo < 1e-9)
        return lo + u * (hi - lo);
    double a = slope * M_LN10;
    /* m = lo + ln(1 + u (e^{a(hi-lo)} - 1)) / a, stable for either sign */
    return lo + log1p(u * expm1(a * (hi - lo))) / a;
}

/* Half-sizes (arcsec) of the sky region that every exposure's footprint
 * (dithered, rotated) plus a PSF margin falls in. */
static void region_half(const sk_sim_params *p, double *hx, double *hy)
{
    double w = 0.5 * (double)p->width_px * p->pixel_scale_arcsec;
    double h = 0.5 * (double)p->height_px * p->pixel_scale_arcsec;
    double rot = fmin(4.0 * p->rotation_scatter_deg, 90.0) * M_PI / 180.0;
    double margin = p->dither_arcsec + 6.0 * p->seeing_arcsec * 1.5 + 2.0 * p->galaxy_re_max_arcsec * 4.0;
    *hx = w * cos(rot) + h * sin(rot) + margin;
    *hy = h * cos(rot) + w * sin(rot) + margin;
}

static int place(const sk_sim_params *p, sk_sim_source *src, long n, double *east, double *north)
{
    double *ra = malloc((size_t)(n ? n : 1) * sizeof *ra);
    double *dec = malloc((size_t)(n ? n : 1) * sizeof *dec);
    int rc = ra && dec ? SK_OK : sk_error(SK_EIO, "imsim: out of memory");
    if (!rc && n)
        rc = sk_sim_offset_radec(p->ra_deg, p->dec_deg, n, east, north, ra, dec);
    for (long i = 0; !rc && i < n; i++) {
        src[i].ra_deg = ra[i];
        src[i].dec_deg = dec[i];
    }
    free(ra);
    free(dec);
    return rc;
}

int sk_sim_field_make(const sk_sim_params *p, sk_sim_field **out)
{
    *out = NULL;
    double hx, hy;
    region_half(p, &hx, &hy);
    double area_ratio = (4.0 * hx * hy) / ((double)p->width_px * (double)p->height_px *
                                           p->pixel_scale_arcsec * p->pixel_scale_arcsec);
    long nstar = lround((double)p->nstars * area_ratio);
    long ngal = lround((double)p->nstars * p->galaxy_fraction * area_ratio);
    long nmov = p->moving_sources, ntr = p->transients;
    long n = nstar + ngal + nmov + ntr;
    sk_sim_field *f = calloc(1, sizeof *f);
    double *east = malloc((size_t)(n ? n : 1) * sizeof *east);
    double *north = malloc((size_t)(n ? n : 1) * sizeof *north);
    if (f)
        f->src = calloc((size_t)(n ? n : 1), sizeof *f->src);
    if (!f || !f->src || !east || !north) {
        free(east);
        free(north);
        sk_sim_field_free(f);
        return sk_error(SK_EIO, "imsim: out of memory for %ld sources", n);
    }
    f->nsrc = n;
    sk_rng r;
    long k = 0;
    sk_rng_init(&r, p->seed, STREAM_STARS, 0);
    for (long i = 0; i < nstar; i++, k++) {
        east[k] = sk_rng_range(&r, -hx, hx);
        north[k] = sk_rng_range(&r, -hy, hy);
        f->src[k].type = SK_SIM_STAR;
        f->src[k].mag = draw_mag(&r, p->mag_min, p->mag_max, p->mag_slope);
    }
    sk_rng_init(&r, p->seed, STREAM_GALAXIES, 0);
    for (long i = 0; i < ngal; i++, k++) {
        east[k] = sk_rng_range(&r, -hx, hx);
        north[k] = sk_rng_range(&r, -hy, hy);
        sk_sim_source *s = &f->src[k];
        s->type = SK_SIM_GALAXY;
        s->mag = draw_mag(&r, p->mag_min, p->mag_max, p->mag_slope);
        /* sizes log-uniform, Sersic index uniform, ellipticity uniform */
        s->gal.re_px = p->galaxy_re_min_arcsec *
                       exp(sk_rng_uniform(&r) * log(p->galaxy_re_max_arcsec / p->galaxy_re_min_arcsec));
        s->gal.sersic_n = sk_rng_range(&r, p->galaxy_n_min, p->galaxy_n_max);
        s->gal.axis_ratio = 1.0 - sk_rng_range(&r, 0.0, p->galaxy_ellipticity_max);
        s->gal.angle_deg = sk_rng_range(&r, 0.0, 180.0);
    }
    sk_rng_init(&r, p->seed, STREAM_MOVING, 0);
    double iw = 0.5 * (double)p->width_px * p->pixel_scale_arcsec;
    double ih = 0.5 * (double)p->height_px * p->pixel_scale_arcsec;
    for (long i = 0; i < nmov; i++, k++) {
        east[k] = sk_rng_range(&r, -0.6 * iw, 0.6 * iw);
        north[k] = sk_rng_range(&r, -0.6 * ih, 0.6 * ih);
        sk_sim_source *s = &f->src[k];
        s->type = SK_SIM_MOVING;
        s->mag = p->moving_mag;
        double dir = sk_rng_range(&r, 0.0, 2.0 * M_PI);
        s->rate_ra_arcsec_h = p->moving_rate_arcsec_per_hour * sin(dir);
        s->rate_dec_arcsec_h = p->moving_rate_arcsec_per_hour * cos(dir);
    }
    sk_rng_init(&r, p->seed, STREAM_TRANSIENTS, 0);
    double mid_mjd = p->start_mjd + 0.5 * (double)(p->nexp - 1) * p->cadence_days;
    for (long i = 0; i < ntr; i++, k++) {
        east[k] = sk_rng_range(&r, -0.8 * iw, 0.8 * iw);
        north[k] = sk_rng_range(&r, -0.8 * ih, 0.8 * ih);
        sk_sim_source *s = &f->src[k];
        s->type = SK_SIM_TRANSIENT;
        s->mag = p->transient_peak_mag;
        s->peak_mjd = mid_mjd + sk_rng_range(&r, -0.25, 0.25) * p->transient_duration_days;
    }
    for (long i = 0; i < n; i++)
        f->src[i].id = i;
    /* every source's SED slope from its own stream, whatever the band:
       the bands of one seed see the same sources with their colours */
    sk_rng_init(&r, p->seed, STREAM_SED, 0);
    for (long i = 0; i < n; i++) {
        f->src[i].sed_slope = sk_rng_range(&r, -1.0, 1.0);
        f->src[i].mag += p->sed_mag * f->src[i].sed_slope;
    }
    int rc = place(p, f->src, n, east, north);
    rc = rc ? rc : sk_sim_star_motions(p, f);
    free(east);
    free(north);
    if (rc) {
        sk_sim_field_free(f);
        return rc;
    }
    *out = f;
    return SK_OK;
}

void sk_sim_field_free(sk_sim_field *f)
{
    if (!f)
        return;
    free(f->src);
    free(f);
}

double sk_sim_source_mag(const sk_sim_params *p, const sk_sim_source *s, double mjd)
{
    if (s->type != SK_SIM_TRANSIENT)
        return s->mag;
    /* A Gaussian light curve whose FWHM is transient_duration_days. */
    double t = (mjd - s->peak_mjd) / p->transient_duration_days;
    double dm = 2.5 * 4.0 * M_LN2 * t * t / M_LN10;
    return dm > 15.0 ? INFINITY : s->mag + dm;
}

int sk_sim_source_radec(const sk_sim_params *p, const sk_sim_source *s, double mjd,
                        double *ra_deg, double *dec_deg)
{
    if (s->type == SK_SIM_STAR)
        return sk_sim_star_radec_at(p, s, mjd, ra_deg, dec_deg);
    if (s->type != SK_SIM_MOVING) {
        *ra_deg = s->ra_deg;
        *dec_deg = s->dec_deg;
        return SK_OK;
    }
    double hours = (mjd - p->start_mjd) * 24.0;
    double east = s->rate_ra_arcsec_h * hours, north = s->rate_dec_arcsec_h * hours;
    return sk_sim_offset_radec(s->ra_deg, s->dec_deg, 1, &east, &north, ra_deg, dec_deg);
}

/* Error (1 sigma) at magnitude m: a floor plus a background-limited term
 * that reaches `at_depth` at the catalog depth. */
static double error_at(double m, double depth, double floor_err, double at_depth)
{
    double bg = at_depth * pow(10.0, 0.4 * (m - depth));
    return sqrt(floor_err * floor_err + bg * bg);
}

int sk_sim_refcat(const sk_sim_params *p, const sk_sim_field *f, sk_table **out)
{
    *out = NULL;
    long n = 0;
    for (long i = 0; i < f->nsrc; i++)
        if (f->src[i].type == SK_SIM_STAR && f->src[i].mag <= p->refcat_depth_mag)
            n++;
    sk_table *t = sk_table_new("REFCAT", n);
    if (!t)
        return sk_error(SK_EIO, "imsim: out of memory");
    int rc = SK_OK;
    static const struct { const char *name; int type; const char *unit; } cols[] = {
        {"id", SK_COL_INT64, ""}, {"ra", SK_COL_DOUBLE, "deg"}, {"dec", SK_COL_DOUBLE, "deg"},
        {"mag", SK_COL_DOUBLE, "mag"}, {"mag_err", SK_COL_FLOAT, "mag"},
        {"pos_err", SK_COL_FLOAT, "arcsec"},
    };
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        if (!sk_table_add_column(t, cols[c].name, cols[c].type, 1, cols[c].unit)) {
            rc = sk_errstatus() ? sk_errstatus() : SK_EIO;
            break;
        }
    double *east = malloc((size_t)(n ? n : 1) * sizeof *east);
    double *north = malloc((size_t)(n ? n : 1) * sizeof *north);
    double *ra = malloc((size_t)(n ? n : 1) * sizeof *ra);
    double *dec = malloc((size_t)(n ? n : 1) * sizeof *dec);
    if (!rc && (!east || !north || !ra || !dec))
        rc = sk_error(SK_EIO, "imsim: out of memory");
    sk_rng r;
    sk_rng_init(&r, p->seed, STREAM_REFCAT, 0);
    sk_column *cid = sk_table_column(t, "id"), *cra = sk_table_column(t, "ra"),
              *cdec = sk_table_column(t, "dec"), *cmag = sk_table_column(t, "mag"),
              *cme = sk_table_column(t, "mag_err"), *cpe = sk_table_column(t, "pos_err");
    long k = 0;
    /* Each star's position is perturbed in its own tangent plane. */
    for (long i = 0; !rc && i < f->nsrc; i++) {
        const sk_sim_source *s = &f->src[i];
        if (s->type != SK_SIM_STAR || s->mag > p->refcat_depth_mag)
            continue;
        double me = error_at(s->mag, p->refcat_depth_mag, p->refcat_mag_error_floor,
                             p->refcat_mag_error_at_depth);
        double pe = error_at(s->mag, p->refcat_depth_mag, p->refcat_pos_error_floor_arcsec,
                             p->refcat_pos_error_at_depth_arcsec);
        double de = pe * sk_rng_gauss(&r), dn = pe * sk_rng_gauss(&r);
        double dm = me * sk_rng_gauss(&r);
        double ra0 = s->ra_deg, dec0 = s->dec_deg; /* at the catalogue's epoch */
        rc = sk_sim_star_radec_at(p, s, sk_sim_refcat_mjd(p), &ra0, &dec0);
        rc = rc ? rc : sk_sim_offset_radec(ra0, dec0, 1, &de, &dn, &ra[k], &dec[k]);
        sk_column_set(cid, k, 0, (double)s->id);
        sk_column_set(cra, k, 0, ra[k]);
        sk_column_set(cdec, k, 0, dec[k]);
        sk_column_set(cmag, k, 0, s->mag + dm);
        sk_column_set(cme, k, 0, me);
        sk_column_set(cpe, k, 0, pe);
        k++;
    }
    free(east);
    free(north);
    free(ra);
    free(dec);
    if (!rc)
        rc = sk_sim_refcat_more(p, f, t);
    if (!rc)
        rc = sk_header_set_str(t->header, "FILTER", p->filter, "photometric band of mag");
    if (!rc)
        rc = sk_header_set_double(t->header, "DEPTH", p->refcat_depth_mag, "[mag] faintest star listed");
    if (!rc)
        rc = sk_header_set_str(t->header, "RADESYS", "ICRS", NULL);
    if (rc) {
        sk_table_free(t);
        return rc;
    }
    *out = t;
    return SK_OK;
}
