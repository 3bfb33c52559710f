/* calib_rows.c: the database rows of an extraction's calibration: psfs, world_coordinates and zero_points, and the image's first-look quality columns and footprint from the solved WCS. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/calib.h"
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/wcs.h"
#include "db_priv.h"
#include "calib/calib_internal.h"
#include "calib/photcal_internal.h"

static double wrap_ra(double ra)
{
    double r = fmod(fmod(ra, 360.0) + 360.0, 360.0);
    return r >= 360.0 ? 0.0 : r;
}

static double sep_deg(double ra1, double dec1, double ra2, double dec2)
{
    const double d2r = M_PI / 180.0;
    double sdd = sin((dec2 - dec1) * d2r / 2), sdr = sin((ra2 - ra1) * d2r / 2);
    double a = sdd * sdd + cos(dec1 * d2r) * cos(dec2 * d2r) * sdr * sdr;
    return 2 * asin(fmin(1.0, sqrt(a))) / d2r;
}

/* "%.17g" or NULL (SQL NULL) when not finite. */
static const char *num(char *buf, double v)
{
    if (!isfinite(v))
        return NULL;
    snprintf(buf, 40, "%.17g", v);
    return buf;
}

/* A PostgreSQL array literal of the finite values ("{1,2}"), NULL if any
 * is not finite. */
static char *array_text(const double *v, int n)
{
    char *s = malloc((size_t)n * 32 + 3);
    if (!s)
        return NULL;
    size_t k = 0;
    s[k++] = '{';
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            free(s);
            return NULL;
        }
        k += (size_t)snprintf(s + k, 32, "%s%.17g", i ? "," : "", v[i]);
    }
    s[k++] = '}';
    s[k] = '\0';
    return s;
}


/* The zero point of an image and how it was tied to the catalogue: the
 * catalogue band, the colour term and its range, the stars' scatter and
 * expected errors, and what the star selection left out. */
static int zero_point_row(sk_db *db, const char *image_id, const char *prov_id, const sk_calib *c)
{
    const sk_photcal *pc = c->photcal;
    const sk_colour_term *t = c->colour;
    char b[9][40], ns[5][32];
    const long counts[5] = {pc->nstars, pc->ncandidates, pc->nrej_chi2, pc->nrej_aperture, pc->nrej_neighbour};
    for (int k = 0; k < 5; k++)
        snprintf(ns[k], sizeof ns[k], "%ld", counts[k]);
    char *radii = array_text(pc->aper_radius_fwhm, pc->naper);
    char *cors = array_text(pc->aper_cor, pc->naper);
    char *coeffs = t ? array_text(t->coeffs, t->ncoeffs) : NULL;
    int st = radii && cors && (!t || coeffs) ? SK_OK : sk_error(SK_EIO, "registering the zero point: out of memory");
    const char *band = t ? t->band : c->phot_band;
    const char *p[] = {image_id, prov_id, num(b[0], pc->zp), num(b[1], pc->dzp), radii, cors,
                       num(b[2], pc->lim_mag), ns[0], band[0] ? band : NULL, t ? t->c1 : NULL, t ? t->c2 : NULL,
                       coeffs, t ? num(b[5], t->colour_min) : NULL, t ? num(b[6], t->colour_max) : NULL,
                       t && t->reference[0] ? t->reference : NULL, num(b[7], pc->scatter), ns[1], ns[2],
                       ns[3], ns[4], num(b[8], pc->noise)};
    st = st ? st : sk_db_exec(db, "registering the zero point",
                              "INSERT INTO zero_points (image_id, provenance_id, zp, dzp, aper_cor_radii_fwhm, "
                              "aper_cors, lim_mag, num_stars, ref_band, colour_band1, colour_band2, colour_coeffs, "
                              "colour_min, colour_max, colour_reference, scatter, num_candidates, "
                              "num_rejected_chi2, num_rejected_aperture, num_rejected_neighbour, noise) "
                              "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
                              "$17, $18, $19, $20, $21) "
                              "ON CONFLICT (image_id, provenance_id) DO UPDATE SET zp = EXCLUDED.zp, "
                              "dzp = EXCLUDED.dzp, aper_cor_radii_fwhm = EXCLUDED.aper_cor_radii_fwhm, "
                              "aper_cors = EXCLUDED.aper_cors, lim_mag = EXCLUDED.lim_mag, "
                              "num_stars = EXCLUDED.num_stars, ref_band = EXCLUDED.ref_band, "
                              "colour_band1 = EXCLUDED.colour_band1, colour_band2 = EXCLUDED.colour_band2, "
                              "colour_coeffs = EXCLUDED.colour_coeffs, colour_min = EXCLUDED.colour_min, "
                              "colour_max = EXCLUDED.colour_max, colour_reference = EXCLUDED.colour_reference, "
                              "scatter = EXCLUDED.scatter, num_candidates = EXCLUDED.num_candidates, "
                              "num_rejected_chi2 = EXCLUDED.num_rejected_chi2, "
                              "num_rejected_aperture = EXCLUDED.num_rejected_aperture, "
                              "num_rejected_neighbour = EXCLUDED.num_rejected_neighbour, noise = EXCLUDED.noise",
                              21, p, NULL);
    free(radii);
    free(cors);
    free(coeffs);
    const char *q[] = {image_id, num(b[3], pc->zp), num(b[4], pc->lim_mag)};
    if (!st)
        st = sk_db_exec(db, "updating the image's zero point and depth",
                        "UPDATE images SET zero_point_estimate = $2, "
                        "lim_mag_estimate = COALESCE($3::double precision, lim_mag_estimate) "
                        "WHERE id = $1", 3, q, NULL);
    return st;
}

int sk_calib_db_save(sk_db *db, const char *image_id, const char *prov_id, const sk_calib *c,
                     const char *rel_psf, const char *psf_path, const char *rel_head,
                     const char *head_path, long width, long height)
{
    char b[16][40];
    int st = SK_OK;
    if (c->psf) {
        char md5[33], nst[32];
        st = sk_md5_file(psf_path, md5);
        snprintf(nst, sizeof nst, "%ld", c->psf->naccepted);
        const char *p[] = {image_id, prov_id, rel_psf, md5, num(b[0], c->fwhm_arcsec), nst};
        if (!st)
            st = sk_db_exec(db, "registering the PSF",
                            "INSERT INTO psfs (image_id, provenance_id, filepath, md5, fwhm_arcsec, "
                            "num_stars) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (image_id, "
                            "provenance_id) DO UPDATE SET filepath = EXCLUDED.filepath, md5 = "
                            "EXCLUDED.md5, fwhm_arcsec = EXCLUDED.fwhm_arcsec, num_stars = "
                            "EXCLUDED.num_stars", 6, p, NULL);
        const char *q[] = {image_id, num(b[1], c->fwhm_arcsec)};
        if (!st && q[1])
            st = sk_db_exec(db, "updating the image's FWHM",
                            "UPDATE images SET fwhm_estimate = $2 WHERE id = $1", 2, q, NULL);
    }
    if (!st && c->astrom) {
        char md5[33], nm[32];
        char *text = sk_calib_head_text(c);
        st = text ? sk_md5_file(head_path, md5) : sk_errstatus();
        snprintf(nm, sizeof nm, "%ld", c->astrom->nmatch);
        const char *p[] = {image_id, prov_id, rel_head, md5, text, num(b[2], c->astrom->rms_arcsec), nm};
        if (!st)
            st = sk_db_exec(db, "registering the WCS",
                            "INSERT INTO world_coordinates (image_id, provenance_id, filepath, md5, "
                            "header, rms_arcsec, num_matches) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                            "ON CONFLICT (image_id, provenance_id) DO UPDATE SET filepath = "
                            "EXCLUDED.filepath, md5 = EXCLUDED.md5, header = EXCLUDED.header, "
                            "rms_arcsec = EXCLUDED.rms_arcsec, num_matches = EXCLUDED.num_matches",
                            7, p, NULL);
        free(text);
        /* the image's footprint from the solved WCS */
        sk_footprint fp;
        if (!st && sk_wcs_footprint(c->astrom->wcs, width, height, &fp) == SK_OK) {
            double radius = 0;
            for (int k = 0; k < 4; k++)
                radius = fmax(radius, sep_deg(fp.ra_deg, fp.dec_deg, fp.corner_ra_deg[k],
                                              fp.corner_dec_deg[k]));
            double v[14] = {wrap_ra(fp.ra_deg), fp.dec_deg,
                            wrap_ra(fp.corner_ra_deg[0]), fp.corner_dec_deg[0],
                            wrap_ra(fp.corner_ra_deg[1]), fp.corner_dec_deg[1],
                            wrap_ra(fp.corner_ra_deg[2]), fp.corner_dec_deg[2],
                            wrap_ra(fp.corner_ra_deg[3]), fp.corner_dec_deg[3],
                            fp.contains_pole ? fp.minra_deg : wrap_ra(fp.minra_deg),
                            fp.contains_pole ? fp.maxra_deg : wrap_ra(fp.maxra_deg),
                            fp.mindec_deg, fp.maxdec_deg};
            char rb[40];
            const char *p2[16];
            p2[0] = image_id;
            int ok = 1;
            for (int k = 0; k < 14; k++)
                ok &= (p2[k + 1] = num(b[k + 2], v[k])) != NULL;
            p2[15] = num(rb, radius);
            ok &= p2[15] != NULL;
            if (ok)
                st = sk_db_exec(db, "updating the image's footprint",
                                "UPDATE images SET ra = $2, dec = $3, ra_corner_00 = $4, dec_corner_00 = $5, "
                                "ra_corner_10 = $6, dec_corner_10 = $7, ra_corner_11 = $8, dec_corner_11 = $9, "
                                "ra_corner_01 = $10, dec_corner_01 = $11, minra = $12, maxra = $13, "
                                "mindec = $14, maxdec = $15, radius_deg = $16 WHERE id = $1",
                                16, p2, NULL);
        } else if (!st) {
            sk_error_clear();
        }
    }
    if (!st && c->photcal)
        st = zero_point_row(db, image_id, prov_id, c);
    return st;
}
