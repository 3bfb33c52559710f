/* sim_catalog.c: the simulated stars' proper motions and colours, and what the reference catalogue says of them: positions at its own epoch, motions, and magnitudes in the catalogue's bands (G, BP, RP) related to the filter's by a colour transformation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/sim.h"
#include "sim_internal.h"

/* Random streams (sim_scene.c uses 1-5 and 9, exposures 1000 + index). */
enum { STREAM_MOTIONS = 6, STREAM_COLOURS = 7, STREAM_CATALOG = 8 };

int sk_sim_catalog_params(const sk_config *c, sk_sim_params *p)
{
    json_t *v = sk_config_get(c, "simulation.colour_coeffs");
    if (!json_is_array(v) || json_array_size(v) > 6)
        return sk_error(SK_EINPUT, "simulation.colour_coeffs: must be an array of at most 6 numbers");
    p->ncolour_coeffs = (int)json_array_size(v);
    for (int k = 0; k < p->ncolour_coeffs; k++) {
        json_t *e = json_array_get(v, (size_t)k);
        if (!json_is_number(e))
            return sk_error(SK_EINPUT, "simulation.colour_coeffs[%d]: must be a number", k);
        p->colour_coeffs[k] = json_number_value(e);
    }
    if (p->colour_max < p->colour_min)
        return sk_error(SK_EINPUT, "simulation.colour_max %g is below colour_min %g", p->colour_max, p->colour_min);
    return SK_OK;
}

static int has_colours(const sk_sim_params *p)
{
    return p->colour_max > p->colour_min;
}

int sk_sim_star_motions(const sk_sim_params *p, sk_sim_field *f)
{
    sk_rng rm, rc;
    sk_rng_init(&rm, p->seed, STREAM_MOTIONS, 0);
    sk_rng_init(&rc, p->seed, STREAM_COLOURS, 0);
    for (long i = 0; i < f->nsrc; i++) {
        sk_sim_source *s = &f->src[i];
        if (s->type != SK_SIM_STAR)
            continue;
        if (p->proper_motion_max_mas_yr > 0) {
            /* uniform in the disc of radius proper_motion_max_mas_yr */
            double r = p->proper_motion_max_mas_yr * sqrt(sk_rng_uniform(&rm));
            double a = sk_rng_range(&rm, 0.0, 2.0 * M_PI);
            s->pmra_mas_yr = r * cos(a);
            s->pmdec_mas_yr = r * sin(a);
        }
        if (has_colours(p))
            s->colour = sk_rng_range(&rc, p->colour_min, p->colour_max);
    }
    return SK_OK;
}

int sk_sim_star_radec_at(const sk_sim_params *p, const sk_sim_source *s, double mjd, double *ra_deg,
                         double *dec_deg)
{
    double yr = (mjd - p->start_mjd) / 365.25;
    if (s->pmra_mas_yr == 0 && s->pmdec_mas_yr == 0) {
        *ra_deg = s->ra_deg;
        *dec_deg = s->dec_deg;
        return SK_OK;
    }
    double east = s->pmra_mas_yr * yr * 1e-3, north = s->pmdec_mas_yr * yr * 1e-3;
    return sk_sim_offset_radec(s->ra_deg, s->dec_deg, 1, &east, &north, ra_deg, dec_deg);
}

double sk_sim_refcat_mjd(const sk_sim_params *p)
{
    return p->start_mjd + p->refcat_epoch_offset_yr * 365.25;
}

static double poly(const sk_sim_params *p, double x)
{
    double v = 0, xp = 1;
    for (int k = 0; k < p->ncolour_coeffs; k++, xp *= x)
        v += p->colour_coeffs[k] * xp;
    return v;
}

static int add_cols(sk_table *t, const char *const *names, int type, const char *unit, int n)
{
    for (int c = 0; c < n; c++)
        if (!sk_table_add_column(t, names[c], type, 1, unit))
            return sk_errstatus() ? sk_errstatus() : SK_EIO;
    return SK_OK;
}

int sk_sim_refcat_more(const sk_sim_params *p, const sk_sim_field *f, sk_table *t)
{
    int motion = p->proper_motion_max_mas_yr > 0 || p->refcat_epoch_offset_yr != 0;
    int colours = has_colours(p);
    if (!motion && !colours)
        return SK_OK;
    static const char *const mnames[] = {"pmra", "pmdec", "ra_err", "dec_err"};
    static const char *const bnames[] = {"G", "BP", "RP", "G_err", "BP_err", "RP_err"};
    static const char *const enames[] = {"epoch"};
    int rc = motion ? add_cols(t, mnames, SK_COL_FLOAT, "mas", 4) : SK_OK;
    rc = rc ? rc : motion ? add_cols(t, enames, SK_COL_DOUBLE, "yr", 1) : SK_OK;
    rc = rc ? rc : colours ? add_cols(t, bnames, SK_COL_FLOAT, "mag", 6) : SK_OK;
    /* column pointers only once every column is added (adding moves them) */
    sk_column *mc[4] = {NULL}, *bc[6] = {NULL}, *ep = sk_table_column(t, "epoch");
    for (int c = 0; c < 4; c++)
        mc[c] = sk_table_column(t, mnames[c]);
    for (int c = 0; c < 6; c++)
        bc[c] = sk_table_column(t, bnames[c]);
    sk_column *pe = sk_table_column(t, "pos_err"), *me = sk_table_column(t, "mag_err");
    double epoch = 2000.0 + (sk_sim_refcat_mjd(p) - 51544.5) / 365.25;
    sk_rng r;
    sk_rng_init(&r, p->seed, STREAM_CATALOG, 0);
    long k = 0;
    for (long i = 0; !rc && i < f->nsrc && k < t->nrows; i++) {
        const sk_sim_source *s = &f->src[i];
        if (s->type != SK_SIM_STAR || s->mag > p->refcat_depth_mag)
            continue;
        if (motion) {
            double err_mas = sk_column_get(pe, k, 0) * 1e3;
            sk_column_set(mc[0], k, 0, s->pmra_mas_yr);
            sk_column_set(mc[1], k, 0, s->pmdec_mas_yr);
            sk_column_set(mc[2], k, 0, err_mas);
            sk_column_set(mc[3], k, 0, err_mas);
            sk_column_set(ep, k, 0, epoch);
        }
        if (colours) {
            double e = sk_column_get(me, k, 0);
            /* the filter's magnitude is s->mag; the catalogue's bands
               have their true values (BP - RP = colour) and each its own
               independent error e, as the error columns say */
            double G_true = s->mag - poly(p, s->colour);
            double BP_true = G_true + 0.5 * s->colour + 0.1, RP_true = BP_true - s->colour;
            double G = G_true + e * sk_rng_gauss(&r);
            double BP = BP_true + e * sk_rng_gauss(&r);
            double RP = RP_true + e * sk_rng_gauss(&r);
            double v[6] = {G, BP, RP, e, e, e};
            for (int c = 0; c < 6; c++)
                sk_column_set(bc[c], k, 0, v[c]);
        }
        k++;
    }
    return rc;
}
