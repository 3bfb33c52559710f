/* astrom_refcat.c: reference catalogs for calibration: ra, dec, mag (and optionally mag_err) columns, by configurable names, from a FITS binary table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/astrom.h"
#include "skystack/error.h"
#include "skystack/table.h"
#include "astrom_internal.h"

void sk_refcat_free(sk_refcat *cat)
{
    if (!cat)
        return;
    free(cat->ra_deg);
    free(cat->dec_deg);
    free(cat->mag);
    free(cat->mag_err);
    free(cat->pos_err_arcsec);
    free(cat);
}

static int grow(sk_refcat *c, long n)
{
    double *p[4] = {c->ra_deg, c->dec_deg, c->mag, c->mag_err};
    for (int i = 0; i < 4; i++) {
        double *q = realloc(p[i], sizeof *q * (size_t)(n + 1));
        if (!q)
            return sk_error(SK_EIO, "reference catalog: out of memory for %ld rows", n);
        p[i] = q;
        if (i == 0) c->ra_deg = q;
        if (i == 1) c->dec_deg = q;
        if (i == 2) c->mag = q;
        if (i == 3) c->mag_err = q;
    }
    return SK_OK;
}

int sk_refcat_read(const char *path, const char *ra_col, const char *dec_col,
                   const char *mag_col, const char *mag_err_col, sk_refcat **out)
{
    *out = NULL;
    sk_table *t = NULL;
    int st = sk_fits_read_table(path, NULL, &t);
    if (st)
        return sk_error_context("reference catalog");
    const char *want[3] = {ra_col, dec_col, mag_col};
    const char *what[3] = {"RA", "Dec", "magnitude"};
    const sk_column *c[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 3 && !st; i++) {
        c[i] = want[i] ? sk_table_column(t, want[i]) : NULL;
        if (!c[i])
            st = sk_error(SK_EINPUT, "%s: reference catalog: no %s column '%s' (set "
                          "extraction.astrometry.%s_column)", path, what[i], want[i] ? want[i] : "",
                          i == 0 ? "ra" : i == 1 ? "dec" : "mag");
        else if (c[i]->type == SK_COL_STRING || c[i]->type == SK_COL_LOGICAL || c[i]->repeat != 1)
            st = sk_error(SK_EINPUT, "%s: reference catalog: column '%s' is not a numeric scalar",
                          path, want[i]);
    }
    if (!st && mag_err_col && mag_err_col[0]) {
        c[3] = sk_table_column(t, mag_err_col);
        if (c[3] && (c[3]->type == SK_COL_STRING || c[3]->type == SK_COL_LOGICAL || c[3]->repeat != 1))
            c[3] = NULL;
    }
    sk_refcat *cat = st ? NULL : calloc(1, sizeof *cat);
    if (!st && !cat)
        st = sk_error(SK_EIO, "reference catalog: out of memory");
    if (!st)
        st = grow(cat, t->nrows);
    long n = 0;
    for (long k = 0; !st && k < t->nrows; k++) {
        double ra = sk_column_get(c[0], k, 0), dec = sk_column_get(c[1], k, 0);
        double mag = sk_column_get(c[2], k, 0);
        if (!isfinite(ra) || !isfinite(dec) || !isfinite(mag) || dec < -90 || dec > 90)
            continue;
        ra = fmod(ra, 360.0);
        if (ra < 0)
            ra += 360.0;
        cat->ra_deg[n] = ra;
        cat->dec_deg[n] = dec;
        cat->mag[n] = mag;
        double e = c[3] ? sk_column_get(c[3], k, 0) : NAN;
        cat->mag_err[n] = isfinite(e) && e > 0 ? e : NAN;
        n++;
    }
    sk_table_free(t);
    if (st) {
        sk_refcat_free(cat);
        return st;
    }
    cat->n = n;
    *out = cat;
    return SK_OK;
}

int sk_refcat_append(sk_refcat *cat, const sk_refcat *more)
{
    int st = grow(cat, cat->n + more->n);
    if (st)
        return st;
    size_t b = sizeof(double) * (size_t)more->n;
    memcpy(cat->ra_deg + cat->n, more->ra_deg, b);
    memcpy(cat->dec_deg + cat->n, more->dec_deg, b);
    memcpy(cat->mag + cat->n, more->mag, b);
    memcpy(cat->mag_err + cat->n, more->mag_err, b);
    cat->n += more->n;
    return SK_OK;
}
