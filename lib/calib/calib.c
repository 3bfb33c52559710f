/* calib.c: the calibration step of an extraction: PSF model and PSF-fit fluxes, then with a reference catalog the astrometric solution and the photometric calibration, and what they add to the source list and the WCS product. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/atomic.h"
#include "skystack/calib.h"
#include "skystack/error.h"
#include "skystack/log.h"
#include "numeric/select.h"
#include "astrom_internal.h"
#include "calib_internal.h"
#include "extract/extract_internal.h"
#include "photcal_internal.h"
#include "extract/psf_internal.h"

void sk_calib_params_default(sk_calib_params *p)
{
    memset(p, 0, sizeof *p);
    sk_psf_params_default(&p->psf);
    sk_astrom_params_default(&p->astrom);
    sk_photcal_params_default(&p->photcal);
    snprintf(p->ra_col, sizeof p->ra_col, "ra");
    snprintf(p->dec_col, sizeof p->dec_col, "dec");
    snprintf(p->mag_col, sizeof p->mag_col, "mag");
    snprintf(p->mag_err_col, sizeof p->mag_err_col, "mag_err");
    p->epoch.propagate = 1;
    p->epoch.missing_pm_mas_yr = 5.0;
    p->margin_arcmin = 1.0;
}

void sk_calib_params_clear(sk_calib_params *p)
{
    for (int i = 0; i < p->nrefcat; i++)
        free(p->refcat[i]);
    free(p->refcat);
    p->refcat = NULL;
    p->nrefcat = 0;
    free(p->refcat_spec);
    p->refcat_spec = NULL;
    free(p->columns);
    p->columns = NULL;
    free(p->colour_terms);
    p->colour_terms = NULL;
    p->ncolour_terms = 0;
    sk_catsource_close(p->catalog);
    p->catalog = NULL;
}

static int get_name(const json_t *sec, const char *key, char *out, size_t size, int allow_null)
{
    json_t *j = json_object_get(sec, key);
    if (!j)
        return SK_OK;
    if (json_is_null(j) && allow_null) {
        out[0] = '\0';
        return SK_OK;
    }
    if (!json_is_string(j) || !json_string_value(j)[0] || strlen(json_string_value(j)) >= size)
        return sk_error(SK_EINPUT, "extraction.astrometry.%s: not a column name", key);
    snprintf(out, size, "%s", json_string_value(j));
    return SK_OK;
}

/* The catalogue keys beside refcat: columns, propagate_epoch,
 * missing_pm_mas_yr, catalog_margin_arcmin; extraction.colour_terms. */
static int calib_catalog_keys(const json_t *root, const json_t *sec, sk_calib_params *p)
{
    json_t *j = json_object_get(sec, "columns");
    if (j && !json_is_null(j)) {
        if (!json_is_string(j))
            return sk_error(SK_EINPUT, "extraction.astrometry.columns: not a column map");
        free(p->columns);
        p->columns = strdup(json_string_value(j));
        if (!p->columns)
            return sk_error(SK_EIO, "configuration: out of memory");
        sk_catmap m;
        if (sk_catmap_parse(p->columns, &m))
            return sk_error_context("extraction.astrometry.columns");
    }
    j = json_object_get(sec, "propagate_epoch");
    if (j && !json_is_boolean(j))
        return sk_error(SK_EINPUT, "extraction.astrometry.propagate_epoch: not true or false");
    if (j)
        p->epoch.propagate = json_is_true(j);
    const struct { const char *key; double *v; double hi; } nums[] = {
        {"missing_pm_mas_yr", &p->epoch.missing_pm_mas_yr, 1e4},
        {"catalog_margin_arcmin", &p->margin_arcmin, 600},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        j = json_object_get(sec, nums[i].key);
        if (!j || json_is_null(j))
            continue;
        if (!json_is_number(j) || !(json_number_value(j) >= 0 && json_number_value(j) <= nums[i].hi))
            return sk_error(SK_EINPUT, "extraction.astrometry.%s: not a number in [0, %g]", nums[i].key,
                            nums[i].hi);
        *nums[i].v = json_number_value(j);
    }
    free(p->colour_terms);
    p->colour_terms = NULL;
    return sk_colour_terms_from_json(root, &p->colour_terms, &p->ncolour_terms);
}

int sk_calib_params_from_json(const json_t *root, sk_calib_params *p)
{
    int st = sk_psf_params_from_json(root, &p->psf);
    if (!st) st = sk_astrom_params_from_json(root, &p->astrom);
    if (!st) st = sk_photcal_params_from_json(root, &p->photcal);
    const json_t *ex = json_object_get(root, "extraction");
    const json_t *sec = json_object_get(ex ? ex : root, "astrometry");
    if (!st && sec) {
        st = get_name(sec, "ra_column", p->ra_col, sizeof p->ra_col, 0);
        if (!st) st = get_name(sec, "dec_column", p->dec_col, sizeof p->dec_col, 0);
        if (!st) st = get_name(sec, "mag_column", p->mag_col, sizeof p->mag_col, 0);
        if (!st) st = get_name(sec, "mag_err_column", p->mag_err_col, sizeof p->mag_err_col, 1);
        if (!st) st = calib_catalog_keys(root, sec, p);
        json_t *rc = json_object_get(sec, "refcat");
        if (!st && rc && !json_is_null(rc)) {
            if (!json_is_string(rc))
                return sk_error(SK_EINPUT, "extraction.astrometry.refcat: not a path");
            for (int i = 0; i < p->nrefcat; i++)
                free(p->refcat[i]);
            p->nrefcat = 0;
            const char *s = json_string_value(rc);
            free(p->refcat_spec);
            p->refcat_spec = strdup(s);
            if (!p->refcat_spec)
                return sk_error(SK_EIO, "configuration: out of memory");
            if (strncmp(s, "db:", 3) == 0) {
                char **one = realloc(p->refcat, sizeof *one);
                if (one)
                    p->refcat = one;
                if (!one || !(p->refcat[0] = strdup(s)))
                    return sk_error(SK_EIO, "configuration: out of memory");
                p->nrefcat = 1;
                s = "";
            }
            while (!st && *s) {
                const char *c = strchr(s, ',');
                size_t len = c ? (size_t)(c - s) : strlen(s);
                if (len > 0) {
                    char **grown = realloc(p->refcat, sizeof *grown * (size_t)(p->nrefcat + 1));
                    char *path = malloc(len + 1);
                    if (!grown || !path) {
                        free(path);
                        if (grown)
                            p->refcat = grown;
                        return sk_error(SK_EIO, "configuration: out of memory");
                    }
                    memcpy(path, s, len);
                    path[len] = '\0';
                    p->refcat = grown;
                    p->refcat[p->nrefcat++] = path;
                }
                s += len + (c ? 1 : 0);
            }
        }
    }
    return st;
}

void sk_calib_free(sk_calib *c)
{
    if (!c)
        return;
    sk_psf_free(c->psf);
    free(c->flux_psf);
    free(c->flux_psf_err);
    free(c->psf_chi2);
    sk_refcat_free(c->refcat);
    sk_refcat_free(c->phot_ref);
    sk_astrom_result_free(c->astrom);
    sk_photcal_free(c->photcal);
    free(c);
}

/* Median noise per usable pixel (ADU). */
static double median_sigma(const float *var, long n, int threads)
{
    return sk_median_sqrt_positive(var, n, threads);
}

/* Median noise per usable pixel (ADU) in the box of half the image's width
 * and height about its centre: where the PSF of the limit is evaluated,
 * and on a coadd of dithered exposures the part every input covers. */
static double central_sigma(const float *var, long width, long height)
{
    long x0 = width / 4, x1 = width - width / 4, y0 = height / 4, y1 = height - height / 4;
    float *v = malloc(sizeof *v * (size_t)((x1 - x0) * (y1 - y0) + 1));
    if (!v)
        return NAN;
    long m = 0;
    for (long y = y0; y < y1; y++)
        for (long x = x0; x < x1; x++)
            if (var[y * width + x] > 0)
                v[m++] = sqrtf(var[y * width + x]);
    double s = NAN;
    if (m)
        s = sk_select_kth(v, m, m / 2);
    free(v);
    return s;
}

/* The PSF model's normalisation error (sk_psf_norm_error), which every
 * star of the zero point shares and their scatter cannot show, added to
 * its error in quadrature. */
static int photcal_norm_error(const sk_image *img, const sk_extract_result *r, sk_calib *c,
                              int threads)
{
    double norm = 0;
    int st = sk_psf_norm_error(c->psf, img, r->background, r->detection ? r->detection->segmap : NULL,
                               r->gain, r->sources, threads, &norm);
    if (st)
        return st;
    sk_photcal *pc = c->photcal;
    pc->dzp_norm = 2.5 / M_LN10 * norm;
    pc->dzp = hypot(pc->dzp, pc->dzp_norm);
    sk_debug("%s: the PSF model's normalisation error %.4f mag", img->path ? img->path : "image",
             pc->dzp_norm);
    return SK_OK;
}

/* The step of the overlap table of the catalogue-neighbour test (px) */
#define REFNBR_STEP_PX 0.25

/* The zero point, the star selection's catalogue-neighbour test made with
 * the reference rows' positions through the astrometric solution and the
 * PSF model's overlap table (without a PSF model: without that test). */
static int calib_photometry(const sk_image *img, const sk_source_list *l, const sk_calib_params *p,
                            sk_calib *c)
{
    const sk_refcat *pr = c->phot_ref;
    sk_photcal_refnbr nb = {0};
    double *xy = NULL, *ov = NULL;
    int st = SK_OK;
    if (c->psf && c->flux_psf && p->photcal.max_ref_contamination > 0 && pr->n > 0) {
        double cx = 0.5 * (double)(img->width - 1), cy = 0.5 * (double)(img->height - 1);
        double fwhm = c->psf->fwhm_px > 0 ? c->psf->fwhm_px : 3.0;
        /* to twice the fit's radius: no pixel of the fit beyond */
        int n = (int)ceil(2.0 * fmax(2.0, 2.0 * fwhm) / REFNBR_STEP_PX) + 1;
        xy = malloc(sizeof *xy * 2 * (size_t)pr->n);
        ov = malloc(sizeof *ov * (size_t)n);
        st = xy && ov ? SK_OK : sk_error(SK_EIO, "calibration: out of memory");
        if (!st && sk_wcs_sky2pix(c->astrom->wcs, pr->n, pr->ra_deg, pr->dec_deg, xy, xy + pr->n))
            sk_error_clear(); /* rows off the projection are NaN */
        st = st ? st : sk_photcal_overlap(c->psf, cx, cy, REFNBR_STEP_PX, n, ov);
        nb = (sk_photcal_refnbr){pr->n, xy, xy + pr->n, pr->mag, c->refcat->mag, ov, n, REFNBR_STEP_PX};
    }
    if (!st)
        st = sk_photcal_solve_ref(l, c->flux_psf, c->flux_psf_err, c->psf_chi2, c->astrom->src_index,
                                  c->astrom->ref_index, c->astrom->nmatch, pr, ov ? &nb : NULL, &p->photcal,
                                  &c->photcal);
    free(xy);
    free(ov);
    return st;
}

int sk_calib_run(const sk_image *img, sk_extract_result *r, const sk_calib_params *p,
                 const sk_extract_params *xp, int threads, sk_calib **out)
{
    *out = NULL;
    sk_calib *c = calloc(1, sizeof *c);
    if (!c)
        return sk_error(SK_EIO, "calibration: out of memory");
    c->fwhm_arcsec = NAN;
    const sk_source_list *l = r->sources;
    double cx = 0.5 * (double)(img->width - 1), cy = 0.5 * (double)(img->height - 1);
    /* the detection's variance map when it has one (the same background) */
    const float *det_var = r->detection ? r->detection->variance : NULL;
    float *var = det_var ? NULL : sk_pixel_variance(img, r->background);
    int st = det_var || var ? SK_OK : sk_errstatus();
    if (!st)
        c->sigma_bg_adu = median_sigma(det_var ? det_var : var, img->width * img->height, threads);
    double sigma_centre = NAN;
    if (!st)
        sigma_centre = central_sigma(det_var ? det_var : var, img->width, img->height);
    if (!(sigma_centre > 0))
        sigma_centre = c->sigma_bg_adu;
    /* a PSF-weighted sum's noise: the pixels' times the stated factor of
       correlated (resampled) noise */
    sigma_centre *= sk_image_noise_factor(img);
    free(var);

    /* 1-2. PSF and PSF-fit fluxes */
    if (!st) {
        sk_psf_params pp = p->psf;
        pp.gain = r->gain;
        st = sk_psf_build(img, r->background, l, r->detection ? r->detection->segmap : NULL, &pp,
                          threads, &c->psf);
        if (st == SK_ENOTFOUND) {
            snprintf(c->psf_note, sizeof c->psf_note, "%s", sk_errmsg());
            sk_warn("%s: no PSF model: %s", img->path ? img->path : "image", c->psf_note);
            sk_error_clear();
            st = SK_OK;
        }
    }
    if (!st && c->psf) {
        c->flux_psf = malloc(sizeof *c->flux_psf * (size_t)(l->n + 1));
        c->flux_psf_err = malloc(sizeof *c->flux_psf_err * (size_t)(l->n + 1));
        c->psf_chi2 = malloc(sizeof *c->psf_chi2 * (size_t)(l->n + 1));
        st = c->flux_psf && c->flux_psf_err && c->psf_chi2 ? SK_OK : sk_error(SK_EIO, "calibration: out of memory");
        if (!st)
            st = sk_psf_photometry_sources(c->psf, img, r->background,
                                           r->detection ? r->detection->segmap : NULL, r->gain, l,
                                           threads, c->flux_psf, c->flux_psf_err, c->psf_chi2);
        if (!st && xp)
            st = sk_residual_pass(img, xp, c->psf, threads, r, &c->flux_psf, &c->flux_psf_err, &c->psf_chi2);
        l = r->sources;
    }

    /* 3. astrometry and photometry against the catalog: its rows around
       the footprint at the image's epoch */
    if (!st)
        st = sk_calib_reference_rows(img, p, c);
    if (!st && c->refcat) {
        if (!img->wcs)
            st = sk_error(SK_EINPUT, "%s: no WCS in the header to start the astrometric calibration "
                          "from", img->path ? img->path : "image");
        else
            st = sk_astrom_solve(l, img->width, img->height, img->wcs, c->refcat, &p->astrom, &c->astrom);
        if (!st)
            sk_info("%s: astrometry: %ld matches, rms %.3f\" (%.3f px), SIP order %d; the header WCS "
                    "was off by %.1f\"", img->path ? img->path : "image", c->astrom->nmatch,
                    c->astrom->rms_arcsec, c->astrom->rms_px, c->astrom->sip_order,
                    c->astrom->offset_arcsec);
        if (!st)
            st = calib_photometry(img, l, p, c);
        if (!st && c->psf) {
            st = photcal_norm_error(img, r, c, threads);
            if (!st)
                st = sk_photcal_psf_apcor(c->photcal, c->psf, cx, cy, l->aper_radius_px);
            if (!st)
                st = sk_photcal_set_limit(c->photcal, c->psf, cx, cy, sigma_centre, r->gain);
        } else if (!st && l->naper > 0 && c->sigma_bg_adu > 0) {
            /* no PSF: a source with SNR 5 in the smallest aperture, total */
            double rad = l->aper_radius_px[0];
            double f5 = 5.0 * sigma_centre * sqrt(M_PI * rad * rad);
            double cor = isfinite(c->photcal->aper_cor[0]) ? c->photcal->aper_cor[0] : 0.0;
            c->photcal->lim_flux_adu = f5 * pow(10.0, -0.4 * cor);
            c->photcal->lim_mag = c->photcal->zp - 2.5 * log10(f5) + cor;
        }
        if (!st)
            sk_info("%s: zero point %.4f +- %.4f from %ld stars, 5-sigma limit %.2f (noise %.3g ADU/px "
                    "at the centre)",
                    img->path ? img->path : "image", c->photcal->zp, c->photcal->dzp,
                    c->photcal->nstars, c->photcal->lim_mag, sigma_centre);
    }
    if (!st && c->psf) {
        const sk_wcs *w = c->astrom ? c->astrom->wcs : img->wcs;
        double scale = w ? sk_wcs_pixel_scale_arcsec(w, cx, cy) : NAN;
        c->fwhm_arcsec = c->psf->fwhm_px * scale;
    }
    if (st) {
        sk_calib_free(c);
        return st;
    }
    *out = c;
    return SK_OK;
}

/* The catalogue band or colour transformation of the zero point, and the
 * epoch the reference positions were carried to. */
static int calib_colour_cards(const sk_calib *c, sk_header *h)
{
    const sk_colour_term *t = c->colour;
    int st = SK_OK;
    if (isfinite(c->photcal->scatter))
        st = sk_header_set_double(h, "MAGZSCAT", c->photcal->scatter, "[mag] rms of the stars' zero points");
    if (!st && isfinite(c->photcal->noise))
        st = sk_header_set_double(h, "MAGZNOIS", c->photcal->noise, "[mag] rms of their expected errors");
    if (!st && isfinite(c->epoch_yr))
        st = sk_header_set_double(h, "REFEPOCH", c->epoch_yr, "[yr] reference positions carried to this epoch");
    if (!t)
        return st ? st : sk_header_set_str(h, "MAGZBAND", c->phot_band, "catalogue band of the zero point");
    char colour[40];
    snprintf(colour, sizeof colour, "%s-%s", t->c1, t->c2);
    st = st ? st : sk_header_set_str(h, "MAGZBAND", t->band, "catalogue band, colour-transformed");
    st = st ? st : sk_header_set_str(h, "CTCOLOUR", colour, "colour x of m = band + sum CTCOEFk x^k");
    for (int k = 0; !st && k < t->ncoeffs; k++) {
        char key[24];
        snprintf(key, sizeof key, "CTCOEF%d", k % 10);
        st = sk_header_set_double(h, key, t->coeffs[k], "colour term coefficient of x^k");
    }
    st = st ? st : sk_header_set_double(h, "CTCMIN", t->colour_min, "[mag] bluest colour used");
    st = st ? st : sk_header_set_double(h, "CTCMAX", t->colour_max, "[mag] reddest colour used");
    return st;
}

int sk_calib_annotate_table(const sk_calib *c, sk_table *t)
{
    int st = SK_OK;
    sk_header *h = t->header;
    if (c->psf) {
        st = sk_psf_add_columns(t, c->flux_psf, c->flux_psf_err);
        if (!st) st = sk_header_set_double(h, "PSF_FWHM", c->psf->fwhm_px, "[pixel] PSF FWHM at the image centre");
        if (!st) st = sk_header_set_long(h, "PSFNSTAR", c->psf->naccepted, "stars in the PSF model");
    }
    if (!st && c->photcal) {
        const sk_photcal *pc = c->photcal;
        if (c->psf) {
            sk_column *cm = sk_table_add_column(t, "MAG_PSF", SK_COL_FLOAT, 1, "mag");
            if (!cm)
                return sk_error_context("source table: MAG_PSF");
            for (long k = 0; k < t->nrows; k++)
                sk_column_set(cm, k, 0, c->flux_psf[k] > 0 ? -2.5 * log10(c->flux_psf[k]) + pc->zp : NAN);
        }
        st = sk_header_set_double(h, "MAGZERO", pc->zp, pc->from_psf ? "mag = -2.5 log10(FLUX_PSF) + MAGZERO"
                                                                      : "mag = -2.5 log10(flux) + MAGZERO");
        if (!st) st = sk_header_set_double(h, "MAGZERR", pc->dzp, "[mag] 1-sigma error of MAGZERO");
        if (!st && c->psf)
            st = sk_header_set_double(h, "MAGZENRM", pc->dzp_norm, "[mag] of MAGZERR: PSF normalisation");
        if (!st) st = sk_header_set_long(h, "MAGZNSTR", pc->nstars, "stars in the zero point");
        if (!st) st = sk_header_set_long(h, "MAGZNCAN", pc->ncandidates, "candidates before selection, clipping");
        if (!st) st = sk_header_set_long(h, "MAGZRCHI", pc->nrej_chi2, "left out: PSF fit chi2 above peers'");
        if (!st) st = sk_header_set_long(h, "MAGZRAPX", pc->nrej_aperture, "left out: aperture flux excess");
        if (!st) st = sk_header_set_long(h, "MAGZRNBR", pc->nrej_neighbour, "left out: bright neighbour");
        if (!st) st = sk_header_set_long(h, "MAGZRREF", pc->nrej_refcat, "left out: catalogue neighbours' light");
        if (!st && isfinite(pc->lim_mag))
            st = sk_header_set_double(h, "LIMMAG", pc->lim_mag, "[mag] 5-sigma point-source limit");
        for (int a = 0; !st && a < pc->naper; a++) {
            char key[32];
            snprintf(key, sizeof key, "APCOR%d", a + 1);
            if (isfinite(pc->aper_cor[a]))
                st = sk_header_set_double(h, key, pc->aper_cor[a], "[mag] total = FLUX_APER mag + APCORn");
        }
    }
    if (!st && c->photcal)
        st = calib_colour_cards(c, h);
    if (!st && c->astrom) {
        st = sk_header_set_double(h, "ASTRRMS", c->astrom->rms_arcsec, "[arcsec] astrometric rms");
        if (!st) st = sk_header_set_long(h, "ASTRNMAT", c->astrom->nmatch, "reference stars in the WCS fit");
    }
    return st;
}

char *sk_calib_head_text(const sk_calib *c)
{
    if (!c->astrom || !c->astrom->header)
        return NULL;
    const sk_header *h = c->astrom->header;
    char *s = malloc((size_t)(h->ncards + 1) * (SK_CARD_LEN + 1) + 1);
    if (!s) {
        sk_error(SK_EIO, "WCS product: out of memory");
        return NULL;
    }
    size_t n = 0;
    for (int i = 0; i < h->ncards; i++) {
        memcpy(s + n, h->cards[i], SK_CARD_LEN);
        n += SK_CARD_LEN;
        s[n++] = '\n';
    }
    memset(s + n, ' ', SK_CARD_LEN);
    memcpy(s + n, "END", 3);
    n += SK_CARD_LEN;
    s[n++] = '\n';
    s[n] = '\0';
    return s;
}

int sk_calib_write_head(const char *path, const sk_calib *c)
{
    char *text = sk_calib_head_text(c);
    if (!text)
        return sk_error(SK_EINPUT, "%s: no astrometric solution to write", path);
    sk_atomic *a = NULL;
    int st = sk_atomic_open(path, &a);
    if (!st) {
        fputs(text, a->fp);
        st = sk_atomic_commit(a);
    }
    free(text);
    return st;
}
