/* psf_io.c: the PSFEx ".psf" file format: writing a PSF model as a PSF_DATA binary table with PSFEx's keywords, and reading skystack's and PSFEx's own files back. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/psf.h"
#include "skystack/table.h"

#define NTERMS(d) (((d) + 1) * ((d) + 2) / 2)

int sk_psf_write(const char *path, const sk_psf *psf)
{
    long np = (long)psf->width * psf->height;
    if (psf->width < 1 || psf->height < 1 || psf->ncomp < 1 || !psf->comp)
        return sk_error(SK_EINPUT, "%s: empty PSF model", path);
    if (psf->ncomp != NTERMS(psf->degree))
        return sk_error(SK_EINPUT, "%s: PSF model with %d terms for degree %d", path, psf->ncomp,
                        psf->degree);
    sk_table *t = sk_table_new("PSF_DATA", 1);
    if (!t)
        return sk_error(SK_EIO, "%s: out of memory", path);
    sk_column *c = sk_table_add_column(t, "PSF_MASK", SK_COL_FLOAT, np * psf->ncomp, "");
    int st = c ? SK_OK : sk_error_context("%s", path);
    if (!st) {
        c->ndims = 3;
        c->dims[0] = psf->width;
        c->dims[1] = psf->height;
        c->dims[2] = psf->ncomp;
        memcpy(c->data, psf->comp, sizeof(float) * (size_t)(np * psf->ncomp));
    }
    sk_header *h = t->header;
    if (!st) st = sk_header_set_long(h, "LOADED", psf->nloaded, "Number of loaded sources");
    if (!st) st = sk_header_set_long(h, "ACCEPTED", psf->naccepted, "Number of accepted sources");
    if (!st) st = sk_header_set_double(h, "CHI2", isfinite(psf->chi2) ? psf->chi2 : 0.0,
                                       "Final median reduced Chi2 of the stars");
    if (psf->degree > 0) {
        if (!st) st = sk_header_set_long(h, "POLNAXIS", 2, "Number of context parameters");
        if (!st) st = sk_header_set_long(h, "POLGRP1", 1, "Polynom group for this context parameter");
        if (!st) st = sk_header_set_str(h, "POLNAME1", "X_IMAGE", "Name of this context parameter");
        if (!st) st = sk_header_set_double(h, "POLZERO1", psf->xzero, "Offset value for this context parameter");
        if (!st) st = sk_header_set_double(h, "POLSCAL1", psf->xscale, "Scale value for this context parameter");
        if (!st) st = sk_header_set_long(h, "POLGRP2", 1, "Polynom group for this context parameter");
        if (!st) st = sk_header_set_str(h, "POLNAME2", "Y_IMAGE", "Name of this context parameter");
        if (!st) st = sk_header_set_double(h, "POLZERO2", psf->yzero, "Offset value for this context parameter");
        if (!st) st = sk_header_set_double(h, "POLSCAL2", psf->yscale, "Scale value for this context parameter");
        if (!st) st = sk_header_set_long(h, "POLNGRP", 1, "Number of context groups");
        if (!st) st = sk_header_set_long(h, "POLDEG1", psf->degree, "Polynom degree for this context group");
    } else {
        if (!st) st = sk_header_set_long(h, "POLNAXIS", 0, "Number of context parameters");
    }
    if (!st) st = sk_header_set_double(h, "PSF_FWHM", psf->fwhm_px, "[pixel] PSF FWHM in image pixels");
    if (!st) st = sk_header_set_double(h, "PSF_SAMP", psf->step_px, "Sampling step of the PSF data");
    if (!st) st = sk_header_set_long(h, "PSFNAXIS", 3, "Dimensionality of the PSF data");
    if (!st) st = sk_header_set_long(h, "PSFAXIS1", psf->width, "Number of element along this axis");
    if (!st) st = sk_header_set_long(h, "PSFAXIS2", psf->height, "Number of element along this axis");
    if (!st) st = sk_header_set_long(h, "PSFAXIS3", psf->ncomp, "Number of element along this axis");
    if (!st) st = sk_header_set_str(h, "PSFNORM", "TOTAL",
                                    "model sums to 1 on image pixels at the image centre");
    if (!st && psf->image_width > 0)
        st = sk_header_set_long(h, "IMNAXIS1", psf->image_width, "width of the image modelled");
    if (!st && psf->image_height > 0)
        st = sk_header_set_long(h, "IMNAXIS2", psf->image_height, "height of the image modelled");
    if (!st)
        st = sk_fits_write_table(path, t);
    sk_table_free(t);
    return st;
}

/* Context names this reader maps to the image position. */
static int is_context(const char *name, const char *axis)
{
    char buf[32];
    size_t n = 0;
    for (const char *s = name; *s && n + 1 < sizeof buf; s++)
        if (!isspace((unsigned char)*s))
            buf[n++] = (char)toupper((unsigned char)*s);
    buf[n] = 0;
    char a[32], b[32];
    snprintf(a, sizeof a, "%s_IMAGE", axis);
    snprintf(b, sizeof b, "%sWIN_IMAGE", axis);
    return strcmp(buf, a) == 0 || strcmp(buf, b) == 0;
}

static int get_long(const sk_header *h, const char *path, const char *key, long *v, int required)
{
    int r = sk_header_get_long(h, key, v);
    if (r == 1)
        return SK_OK;
    if (r == 0 && !required)
        return SK_OK;
    return sk_error(SK_EINPUT, "%s: PSF_DATA: keyword %s is %s", path, key,
                    r == 0 ? "missing" : "not an integer");
}

static int get_double(const sk_header *h, const char *path, const char *key, double *v, int required)
{
    int r = sk_header_get_double(h, key, v);
    if (r == 1 && isfinite(*v))
        return SK_OK;
    if (r == 0 && !required)
        return SK_OK;
    return sk_error(SK_EINPUT, "%s: PSF_DATA: keyword %s is %s", path, key,
                    r == 0 ? "missing" : "not a finite number");
}

int sk_psf_read(const char *path, sk_psf **out)
{
    *out = NULL;
    sk_table *t = NULL;
    int st = sk_fits_read_table(path, "PSF_DATA", &t);
    if (st)
        return sk_error_context("reading a PSF");
    sk_header *h = t->header;
    sk_psf *psf = calloc(1, sizeof *psf);
    if (!psf) {
        sk_table_free(t);
        return sk_error(SK_EIO, "%s: out of memory", path);
    }
    long naxis = 0, degree = 0, ngrp = 0, grp1 = 0, grp2 = 0;
    long psfnaxis = 0, ax[3] = {1, 1, 1};
    double samp = 1.0, fwhm = 0;
    st = get_long(h, path, "POLNAXIS", &naxis, 0);
    if (!st && naxis != 0 && naxis != 2)
        st = sk_error(SK_EINPUT, "%s: PSF_DATA: POLNAXIS = %ld; only models varying with the "
                      "image position (2 contexts) or constant ones (0) are supported", path, naxis);
    if (!st && naxis == 2) {
        char n1[72] = "", n2[72] = "";
        if (sk_header_get_str(h, "POLNAME1", n1, sizeof n1) != 1 ||
            sk_header_get_str(h, "POLNAME2", n2, sizeof n2) != 1)
            st = sk_error(SK_EINPUT, "%s: PSF_DATA: POLNAME1/POLNAME2 missing", path);
        else if (!is_context(n1, "X") || !is_context(n2, "Y"))
            st = sk_error(SK_EINPUT, "%s: PSF_DATA: contexts '%s', '%s' are not the image "
                          "position (X_IMAGE, Y_IMAGE)", path, n1, n2);
        if (!st) st = get_long(h, path, "POLGRP1", &grp1, 1);
        if (!st) st = get_long(h, path, "POLGRP2", &grp2, 1);
        if (!st) st = get_long(h, path, "POLNGRP", &ngrp, 1);
        if (!st && (grp1 != 1 || grp2 != 1 || ngrp != 1))
            st = sk_error(SK_EINPUT, "%s: PSF_DATA: X and Y must form one polynomial group "
                          "(POLGRP1 = POLGRP2 = POLNGRP = 1)", path);
        if (!st) st = get_long(h, path, "POLDEG1", &degree, 1);
        if (!st && (degree < 0 || degree > 8))
            st = sk_error(SK_EINPUT, "%s: PSF_DATA: POLDEG1 = %ld is outside [0, 8]", path, degree);
        if (!st) st = get_double(h, path, "POLZERO1", &psf->xzero, 1);
        if (!st) st = get_double(h, path, "POLSCAL1", &psf->xscale, 1);
        if (!st) st = get_double(h, path, "POLZERO2", &psf->yzero, 1);
        if (!st) st = get_double(h, path, "POLSCAL2", &psf->yscale, 1);
        if (!st && (psf->xscale == 0 || psf->yscale == 0))
            st = sk_error(SK_EINPUT, "%s: PSF_DATA: POLSCAL1/POLSCAL2 must not be 0", path);
    } else if (!st) {
        psf->xscale = psf->yscale = 1.0;
    }
    if (!st) st = get_long(h, path, "PSFNAXIS", &psfnaxis, 1);
    if (!st && (psfnaxis < 2 || psfnaxis > 3))
        st = sk_error(SK_EINPUT, "%s: PSF_DATA: PSFNAXIS = %ld, not 2 or 3", path, psfnaxis);
    for (int i = 0; !st && i < psfnaxis; i++) {
        char key[16];
        snprintf(key, sizeof key, "PSFAXIS%d", i + 1);
        st = get_long(h, path, key, &ax[i], 1);
        if (!st && (ax[i] < 1 || ax[i] > 4096))
            st = sk_error(SK_EINPUT, "%s: PSF_DATA: %s = %ld is outside [1, 4096]", path, key, ax[i]);
    }
    if (!st && ax[2] != NTERMS(degree))
        st = sk_error(SK_EINPUT, "%s: PSF_DATA: PSFAXIS3 = %ld components, but degree %ld needs %ld",
                      path, ax[2], degree, NTERMS(degree));
    if (!st) st = get_double(h, path, "PSF_SAMP", &samp, 0);
    if (!st && !(samp > 0))
        st = sk_error(SK_EINPUT, "%s: PSF_DATA: PSF_SAMP = %g is not positive", path, samp);
    if (!st) st = get_double(h, path, "PSF_FWHM", &fwhm, 0);
    const sk_column *c = st ? NULL : sk_table_column(t, "PSF_MASK");
    long np = ax[0] * ax[1], total = np * ax[2];
    if (!st && !c)
        st = sk_error(SK_EINPUT, "%s: PSF_DATA: no PSF_MASK column", path);
    if (!st && (c->type == SK_COL_STRING || c->type == SK_COL_LOGICAL))
        st = sk_error(SK_EINPUT, "%s: PSF_DATA: PSF_MASK is not numeric", path);
    if (!st && (c->repeat != total || t->nrows < 1))
        st = sk_error(SK_EINPUT, "%s: PSF_DATA: PSF_MASK holds %ld values per row in %ld rows, "
                      "PSFAXISn say %ld", path, c->repeat, t->nrows, total);
    if (!st && !(psf->comp = malloc(sizeof *psf->comp * (size_t)total)))
        st = sk_error(SK_EIO, "%s: out of memory", path);
    for (long i = 0; !st && i < total; i++) {
        double v = sk_column_get(c, 0, i);
        if (!isfinite(v))
            st = sk_error(SK_EINPUT, "%s: PSF_DATA: PSF_MASK value %ld is not finite", path, i);
        psf->comp[i] = (float)v;
    }
    if (!st) {
        psf->width = (int)ax[0];
        psf->height = (int)ax[1];
        psf->ncomp = (int)ax[2];
        psf->degree = (int)degree;
        psf->step_px = samp;
        long v = 0;
        if (sk_header_get_long(h, "IMNAXIS1", &v) == 1 && v > 0)
            psf->image_width = v;
        if (sk_header_get_long(h, "IMNAXIS2", &v) == 1 && v > 0)
            psf->image_height = v;
        sk_header_get_long(h, "LOADED", &psf->nloaded);
        sk_header_get_long(h, "ACCEPTED", &psf->naccepted);
        double chi2 = NAN;
        if (sk_header_get_double(h, "CHI2", &chi2) == 1)
            psf->chi2 = chi2;
        /* the FWHM where the context is zero: the middle of the stars */
        double xc = psf->image_width > 0 ? 0.5 * (double)(psf->image_width - 1) : psf->xzero - 1.0;
        double yc = psf->image_height > 0 ? 0.5 * (double)(psf->image_height - 1) : psf->yzero - 1.0;
        psf->fwhm_px = sk_psf_fwhm_at(psf, xc, yc);
        if (!(psf->fwhm_px > 0))
            psf->fwhm_px = fwhm;
    }
    sk_table_free(t);
    if (st) {
        sk_psf_free(psf);
        return st;
    }
    *out = psf;
    return SK_OK;
}
