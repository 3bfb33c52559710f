/* source_table.c: a measured source list as the FITS binary table of extract(1), pixel coordinates converted to the 1-based FITS convention. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/header.h"
#include "skystack/table.h"
#include "skystack/wcs.h"

typedef struct {
    const char *name, *unit;
    int type;
} coldef;

static const coldef columns[] = {
    { "NUMBER", "", SK_COL_INT32 },
    { "X_IMAGE", "pixel", SK_COL_DOUBLE },
    { "Y_IMAGE", "pixel", SK_COL_DOUBLE },
    { "XWIN_IMAGE", "pixel", SK_COL_DOUBLE },
    { "YWIN_IMAGE", "pixel", SK_COL_DOUBLE },
    { "ERRXWIN_IMAGE", "pixel", SK_COL_FLOAT },
    { "ERRYWIN_IMAGE", "pixel", SK_COL_FLOAT },
    { "X2_IMAGE", "pixel**2", SK_COL_FLOAT },
    { "Y2_IMAGE", "pixel**2", SK_COL_FLOAT },
    { "XY_IMAGE", "pixel**2", SK_COL_FLOAT },
    { "A_IMAGE", "pixel", SK_COL_FLOAT },
    { "B_IMAGE", "pixel", SK_COL_FLOAT },
    { "THETA_IMAGE", "deg", SK_COL_FLOAT },
    { "FWHM_IMAGE", "pixel", SK_COL_FLOAT },
    { "FLUX_ISO", "adu", SK_COL_FLOAT },
    { "FLUXERR_ISO", "adu", SK_COL_FLOAT },
    { "ISOAREA_IMAGE", "pixel**2", SK_COL_INT32 },
    { "FLUX_APER", "adu", SK_COL_FLOAT },
    { "FLUXERR_APER", "adu", SK_COL_FLOAT },
    { "KRON_RADIUS", "", SK_COL_FLOAT },
    { "FLUX_AUTO", "adu", SK_COL_FLOAT },
    { "FLUXERR_AUTO", "adu", SK_COL_FLOAT },
    { "PEAK", "adu", SK_COL_FLOAT },
    { "BACKGROUND", "adu", SK_COL_FLOAT },
    { "SNR", "", SK_COL_FLOAT },
    { "XMIN_IMAGE", "pixel", SK_COL_INT32 },
    { "XMAX_IMAGE", "pixel", SK_COL_INT32 },
    { "YMIN_IMAGE", "pixel", SK_COL_INT32 },
    { "YMAX_IMAGE", "pixel", SK_COL_INT32 },
    { "FLAGS", "", SK_COL_INT32 },
};
#define NCOLS (sizeof columns / sizeof columns[0])
#define COL_APER 17
#define COL_APERERR 18

int sk_source_table(const sk_source_list *l, const sk_image *img, sk_table **out)
{
    *out = NULL;
    sk_table *t = sk_table_new("SOURCES", l->n);
    if (!t)
        return sk_error(SK_EIO, "source table: out of memory");
    for (size_t c = 0; c < NCOLS; c++) {
        int is_aper = c == COL_APER || c == COL_APERERR;
        if (is_aper && l->naper == 0)
            continue;
        if (!sk_table_add_column(t, columns[c].name, columns[c].type, is_aper ? l->naper : 1,
                                 columns[c].unit)) {
            sk_table_free(t);
            return sk_error_context("source table");
        }
    }
    int with_sky = img && img->wcs;
    if (with_sky && (!sk_table_add_column(t, "RA", SK_COL_DOUBLE, 1, "deg") ||
                     !sk_table_add_column(t, "DEC", SK_COL_DOUBLE, 1, "deg"))) {
        sk_table_free(t);
        return sk_error_context("source table");
    }
    sk_column *col[NCOLS];
    for (size_t c = 0; c < NCOLS; c++)
        col[c] = sk_table_column(t, columns[c].name);
    for (long k = 0; k < l->n; k++) {
        const sk_source *s = &l->src[k];
        const double v[] = { (double)s->number, s->x + 1, s->y + 1, s->xwin + 1, s->ywin + 1,
                             s->xwin_err, s->ywin_err, s->x2, s->y2, s->xy, s->a_px, s->b_px,
                             s->theta_deg, s->fwhm_px, s->flux_iso, s->flux_iso_err,
                             (double)s->npix, 0, 0, s->kron_radius, s->flux_auto, s->flux_auto_err,
                             s->peak, s->background, s->snr, (double)s->xmin + 1,
                             (double)s->xmax + 1, (double)s->ymin + 1, (double)s->ymax + 1,
                             (double)s->flags };
        for (size_t c = 0; c < NCOLS; c++) {
            if (!col[c])
                continue;
            if (c == COL_APER || c == COL_APERERR) {
                const double *src = c == COL_APER ? s->flux_aper : s->flux_aper_err;
                for (int a = 0; a < l->naper; a++)
                    sk_column_set(col[c], k, a, src[a]);
                continue;
            }
            sk_column_set(col[c], k, 0, v[c]);
        }
    }
    if (with_sky && l->n > 0) {
        double *buf = malloc(sizeof(double) * 4 * (size_t)l->n);
        if (!buf) {
            sk_table_free(t);
            return sk_error(SK_EIO, "source table: out of memory");
        }
        double *x = buf, *y = buf + l->n, *ra = buf + 2 * l->n, *dec = buf + 3 * l->n;
        for (long k = 0; k < l->n; k++) {
            x[k] = l->src[k].xwin;
            y[k] = l->src[k].ywin;
        }
        /* points outside the projection's domain come back as NaN */
        sk_wcs_pix2sky(img->wcs, l->n, x, y, ra, dec);
        sk_column *cra = sk_table_column(t, "RA"), *cdec = sk_table_column(t, "DEC");
        for (long k = 0; k < l->n; k++) {
            sk_column_set(cra, k, 0, ra[k]);
            sk_column_set(cdec, k, 0, dec[k]);
        }
        free(buf);
    }
    sk_header *h = t->header;
    sk_header_set_long(h, "NAPER", l->naper, "number of circular apertures");
    for (int a = 0; a < l->naper; a++) {
        char key[32];
        snprintf(key, sizeof key, "APRAD%d", a + 1);
        sk_header_set_double(h, key, l->aper_radius_px[a], "[pixel] radius of FLUX_APER element");
    }
    sk_header_set_double(h, "FWHM", l->fwhm_px, "[pixel] image FWHM (apertures, window)");
    sk_header_set_long(h, "NSOURCES", l->n, "number of sources");
    sk_header_set_str(h, "PIXCONV", "FITS", "pixel centres are 1-based (first pixel = 1.0)");
    *out = t;
    return SK_OK;
}
