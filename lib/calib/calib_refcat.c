/* calib_refcat.c: the reference catalogue of one image's calibration: the rows in and around its footprint from the opened catalogue, carried to the image's epoch, with magnitudes in the image's band through a colour transformation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/log.h"
#include "calib_internal.h"
#include "catalog_internal.h"

/* The map of single files when extraction.astrometry.columns is null: the
 * configured ra/dec/mag/mag_err names and the canonical names of the rest,
 * each optional. */
static int file_map(const sk_calib_params *p, sk_catmap *m)
{
    if (p->columns)
        return sk_catmap_parse(p->columns, m);
    char text[1024];
    int n = snprintf(text, sizeof text, "ra=%s,dec=%s,ra_err=ra_err?,dec_err=dec_err?,pmra=pmra?,pmdec=pmdec?,"
                                        "parallax=parallax?,epoch=epoch?,mag:%s=%s",
                     p->ra_col, p->dec_col, p->mag_col, p->mag_col);
    if (p->mag_err_col[0] && n > 0 && (size_t)n < sizeof text)
        snprintf(text + n, sizeof text - (size_t)n, ",err:%s=%s?", p->mag_col, p->mag_err_col);
    return sk_catmap_parse(text, m);
}

int sk_calib_open_catalog(sk_calib_params *p, sk_db *db)
{
    if (p->catalog || !p->refcat_spec || !p->refcat_spec[0])
        return SK_OK;
    sk_catmap m;
    int st = file_map(p, &m);
    st = st ? sk_error_context("extraction.astrometry.columns") : sk_catsource_open(p->refcat_spec, &m, db, &p->catalog);
    if (!st)
        sk_info("reference catalogue %s: id %s", p->refcat_spec, sk_catsource_info(p->catalog)->id);
    return st;
}

/* Centre and radius (deg) of the cone that holds the footprint. */
static int footprint_cone(const sk_image *img, const sk_calib_params *p, double *ra, double *dec, double *rad)
{
    double x[5] = {0.5 * (double)(img->width - 1), -0.5, (double)img->width - 0.5, -0.5,
                   (double)img->width - 0.5};
    double y[5] = {0.5 * (double)(img->height - 1), -0.5, -0.5, (double)img->height - 0.5,
                   (double)img->height - 0.5};
    double r[5], d[5];
    int st = sk_wcs_pix2sky(img->wcs, 5, x, y, r, d);
    if (st || !isfinite(r[0]) || !isfinite(d[0]))
        return st ? st : sk_error(SK_EINPUT, "%s: the header WCS has no sky position at the image centre",
                                  img->path ? img->path : "image");
    *ra = r[0];
    *dec = d[0];
    *rad = 0;
    for (int k = 1; k < 5; k++)
        if (isfinite(r[k]) && isfinite(d[k]))
            *rad = fmax(*rad, sk_cat_sep_deg(r[0], d[0], r[k], d[k]));
    *rad += (p->astrom.search_radius_arcsec / 3600.0) + p->margin_arcmin / 60.0;
    return SK_OK;
}

static sk_refcat *refcat_new(long n)
{
    sk_refcat *c = calloc(1, sizeof *c);
    size_t b = sizeof(double) * (size_t)(n + 1);
    if (c) {
        c->ra_deg = malloc(b);
        c->dec_deg = malloc(b);
        c->mag = malloc(b);
        c->mag_err = malloc(b);
        c->pos_err_arcsec = malloc(b);
    }
    if (!c || !c->ra_deg || !c->dec_deg || !c->mag || !c->mag_err || !c->pos_err_arcsec) {
        sk_refcat_free(c);
        sk_error(SK_EIO, "reference catalogue: out of memory");
        return NULL;
    }
    c->n = n;
    return c;
}

/* The photometric magnitudes: colour-transformed, or one band. */
static int phot_mags(const sk_image *img, const sk_calib_params *p, const sk_catrows *r, sk_calib *c)
{
    char instrument[72] = "", filter[72] = "";
    if (sk_header_get_str(img->header, "INSTRUME", instrument, sizeof instrument) != 1)
        instrument[0] = '\0';
    if (sk_header_get_str(img->header, "FILTER", filter, sizeof filter) != 1)
        filter[0] = '\0';
    c->colour = sk_colour_term_find(p->colour_terms, p->ncolour_terms, instrument, filter, r);
    sk_refcat *pr = refcat_new(r->n);
    if (!pr)
        return SK_EIO;
    memcpy(pr->ra_deg, c->refcat->ra_deg, sizeof(double) * (size_t)r->n);
    memcpy(pr->dec_deg, c->refcat->dec_deg, sizeof(double) * (size_t)r->n);
    memcpy(pr->pos_err_arcsec, c->refcat->pos_err_arcsec, sizeof(double) * (size_t)r->n);
    c->phot_ref = pr;
    if (c->colour) {
        long used = sk_colour_term_apply(c->colour, r, pr->mag, pr->mag_err);
        sk_info("%s: colour term %s + f(%s-%s) -> %s %s, colour range [%g, %g]: %ld of %ld reference stars",
                img->path ? img->path : "image", c->colour->band, c->colour->c1, c->colour->c2, instrument,
                filter, c->colour->colour_min, c->colour->colour_max, used, r->n);
        return SK_OK;
    }
    char f[72];
    snprintf(f, sizeof f, "%s", filter);
    f[strcspn(f, " \t")] = '\0';
    int b = sk_catrows_band(r, f);
    if (b < 0)
        b = 0;
    snprintf(c->phot_band, sizeof c->phot_band, "%s", r->nbands ? r->band[b] : "");
    for (long k = 0; k < r->n; k++) {
        pr->mag[k] = r->nbands ? r->mag[b][k] : NAN;
        pr->mag_err[k] = r->nbands && r->mag_err[b][k] > 0 ? r->mag_err[b][k] : NAN;
    }
    return SK_OK;
}

/* A catalogue for a caller that listed files in p->refcat without opening
 * them (a library caller of sk_calib_run): opened for this call. */
static int open_listed(const sk_calib_params *p, sk_catsource **out)
{
    size_t n = 1;
    for (int i = 0; i < p->nrefcat; i++)
        n += strlen(p->refcat[i]) + 1;
    char *spec = malloc(n);
    if (!spec)
        return sk_error(SK_EIO, "out of memory");
    spec[0] = '\0';
    for (int i = 0; i < p->nrefcat; i++) {
        if (i)
            strcat(spec, ",");
        strcat(spec, p->refcat[i]);
    }
    sk_catmap m;
    int st = file_map(p, &m);
    st = st ? st : sk_catsource_open(spec, &m, NULL, out);
    free(spec);
    return st;
}

static int reference_rows(const sk_image *img, const sk_calib_params *p, sk_catsource *cat, sk_calib *c);

int sk_calib_reference_rows(const sk_image *img, const sk_calib_params *p, sk_calib *c)
{
    if (p->catalog)
        return reference_rows(img, p, p->catalog, c);
    if (p->nrefcat == 0)
        return SK_OK;
    sk_catsource *own = NULL;
    int st = open_listed(p, &own);
    st = st ? st : reference_rows(img, p, own, c);
    sk_catsource_close(own);
    return st;
}

static int reference_rows(const sk_image *img, const sk_calib_params *p, sk_catsource *cat, sk_calib *c)
{
    c->epoch_yr = NAN;
    if (!img->wcs)
        return sk_error(SK_EINPUT, "%s: no WCS in the header to start the astrometric calibration from",
                        img->path ? img->path : "image");
    double ra = 0, dec = 0, rad = 0;
    sk_catrows *r = NULL;
    int st = footprint_cone(img, p, &ra, &dec, &rad);
    st = st ? st : sk_catsource_cone(cat, ra, dec, rad, &r);
    double mjd = NAN;
    if (!st && sk_header_get_double(img->header, "MJD-OBS", &mjd) != 1) {
        mjd = NAN;
        if (p->epoch.propagate)
            sk_warn("%s: no MJD-OBS: reference positions are not carried to the image's epoch",
                    img->path ? img->path : "image");
    }
    if (!st && p->epoch.propagate && isfinite(mjd)) {
        sk_catrows_propagate(r, mjd, NAN, &p->epoch);
        c->epoch_yr = sk_mjd_to_jyear(mjd);
    }
    if (!st)
        sk_debug("%s: %ld reference rows within %.4f deg of (%.6f, %.6f), at epoch %.3f",
                 img->path ? img->path : "image", r->n, rad, ra, dec, c->epoch_yr);
    sk_refcat *ref = st ? NULL : refcat_new(r->n);
    if (!st && !ref)
        st = SK_EIO;
    for (long k = 0; !st && k < r->n; k++) {
        ref->ra_deg[k] = r->ra_deg[k];
        ref->dec_deg[k] = r->dec_deg[k];
        /* the primary band orders the pattern match; rows without it last */
        double m = r->nbands ? r->mag[0][k] : NAN;
        ref->mag[k] = isfinite(m) ? m : 99.0;
        ref->mag_err[k] = r->nbands && r->mag_err[0][k] > 0 ? r->mag_err[0][k] : NAN;
        double ea = r->ra_err_mas[k], ed = r->dec_err_mas[k];
        ref->pos_err_arcsec[k] = isfinite(ea) && isfinite(ed) ? sqrt(0.5 * (ea * ea + ed * ed)) * 1e-3 : NAN;
    }
    c->refcat = ref;
    st = st ? st : phot_mags(img, p, r, c);
    sk_catrows_free(r);
    return st;
}
