/* colour_term.c: colour transformations of reference catalogue magnitudes to an instrument's band (m = m_band + polynomial of a colour, within a colour range), read from extraction.colour_terms. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "skystack/catalog.h"
#include "skystack/error.h"

static int get_str(const json_t *o, const char *key, char *out, size_t n, int i)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s || strlen(s) >= n)
        return sk_error(SK_EINPUT, "extraction.colour_terms[%d].%s: not a string (at most %zu characters)", i,
                        key, n - 1);
    snprintf(out, n, "%s", s);
    return SK_OK;
}

static int parse_one(const json_t *o, int i, sk_colour_term *t)
{
    memset(t, 0, sizeof *t);
    if (!json_is_object(o))
        return sk_error(SK_EINPUT, "extraction.colour_terms[%d]: not an object", i);
    int st = get_str(o, "instrument", t->instrument, sizeof t->instrument, i);
    st = st ? st : get_str(o, "filter", t->filter, sizeof t->filter, i);
    st = st ? st : get_str(o, "band", t->band, sizeof t->band, i);
    const char *ref = json_string_value(json_object_get(o, "reference"));
    snprintf(t->reference, sizeof t->reference, "%s", ref ? ref : "");
    json_t *col = json_object_get(o, "colour"), *cf = json_object_get(o, "coeffs");
    json_t *rng = json_object_get(o, "colour_range");
    if (!st && (json_array_size(col) != 2 || !json_is_string(json_array_get(col, 0)) ||
                !json_is_string(json_array_get(col, 1))))
        st = sk_error(SK_EINPUT, "extraction.colour_terms[%d].colour: not two band names", i);
    if (!st) {
        snprintf(t->c1, sizeof t->c1, "%s", json_string_value(json_array_get(col, 0)));
        snprintf(t->c2, sizeof t->c2, "%s", json_string_value(json_array_get(col, 1)));
    }
    size_t nc = json_array_size(cf);
    if (!st && (nc < 1 || nc > 6))
        st = sk_error(SK_EINPUT, "extraction.colour_terms[%d].coeffs: 1 to 6 numbers", i);
    for (size_t k = 0; !st && k < nc; k++) {
        if (!json_is_number(json_array_get(cf, k)))
            st = sk_error(SK_EINPUT, "extraction.colour_terms[%d].coeffs[%zu]: not a number", i, k);
        else
            t->coeffs[k] = json_number_value(json_array_get(cf, k));
    }
    t->ncoeffs = (int)nc;
    if (!st && (json_array_size(rng) != 2 || !json_is_number(json_array_get(rng, 0)) ||
                !json_is_number(json_array_get(rng, 1))))
        st = sk_error(SK_EINPUT, "extraction.colour_terms[%d].colour_range: not [min, max]", i);
    if (!st) {
        t->colour_min = json_number_value(json_array_get(rng, 0));
        t->colour_max = json_number_value(json_array_get(rng, 1));
        if (!(t->colour_min < t->colour_max))
            st = sk_error(SK_EINPUT, "extraction.colour_terms[%d].colour_range: min not below max", i);
    }
    return st;
}

int sk_colour_terms_from_json(const json_t *root, sk_colour_term **out, int *n)
{
    *out = NULL;
    *n = 0;
    const json_t *ex = json_object_get(root, "extraction");
    const json_t *arr = json_object_get(ex ? ex : root, "colour_terms");
    if (!arr || json_is_null(arr))
        return SK_OK;
    if (!json_is_array(arr))
        return sk_error(SK_EINPUT, "extraction.colour_terms: not an array");
    size_t m = json_array_size(arr);
    sk_colour_term *t = calloc(m + 1, sizeof *t);
    if (!t)
        return sk_error(SK_EIO, "out of memory");
    for (size_t i = 0; i < m; i++) {
        int st = parse_one(json_array_get(arr, i), (int)i, &t[i]);
        if (st) {
            free(t);
            return st;
        }
    }
    *out = t;
    *n = (int)m;
    return SK_OK;
}

/* The first word of a filter name ("g DECam SDSS c0001" -> "g"). */
static void first_word(const char *s, char *out, size_t n)
{
    while (*s == ' ')
        s++;
    size_t k = strcspn(s, " \t");
    if (k >= n)
        k = n - 1;
    memcpy(out, s, k);
    out[k] = '\0';
}

static int band_has_values(const sk_catrows *r, int b)
{
    for (long k = 0; k < r->n; k++)
        if (isfinite(r->mag[b][k]))
            return 1;
    return 0;
}

const sk_colour_term *sk_colour_term_find(const sk_colour_term *t, int n, const char *instrument,
                                          const char *filter, const sk_catrows *r)
{
    char f[72];
    first_word(filter ? filter : "", f, sizeof f);
    for (int i = 0; i < n; i++) {
        if (strcmp(t[i].instrument, "*") && strcasecmp(t[i].instrument, instrument ? instrument : ""))
            continue;
        if (strcasecmp(t[i].filter, f))
            continue;
        int b = sk_catrows_band(r, t[i].band), b1 = sk_catrows_band(r, t[i].c1), b2 = sk_catrows_band(r, t[i].c2);
        if (b >= 0 && b1 >= 0 && b2 >= 0 && band_has_values(r, b1) && band_has_values(r, b2))
            return &t[i];
    }
    return NULL;
}

long sk_colour_term_apply(const sk_colour_term *t, const sk_catrows *r, double *mag, double *err)
{
    int b = sk_catrows_band(r, t->band), b1 = sk_catrows_band(r, t->c1), b2 = sk_catrows_band(r, t->c2);
    long used = 0;
    for (long k = 0; k < r->n; k++) {
        mag[k] = err[k] = NAN;
        if (b < 0 || b1 < 0 || b2 < 0)
            continue;
        double m = r->mag[b][k], x = (double)r->mag[b1][k] - (double)r->mag[b2][k];
        if (!isfinite(m) || !isfinite(x) || x < t->colour_min || x > t->colour_max)
            continue;
        double poly = 0, dpoly = 0, xp = 1;
        for (int c = 0; c < t->ncoeffs; c++) {
            poly += t->coeffs[c] * xp;
            if (c + 1 < t->ncoeffs)
                dpoly += (double)(c + 1) * t->coeffs[c + 1] * xp;
            xp *= x;
        }
        mag[k] = m + poly;
        double e = r->mag_err[b][k], e1 = r->mag_err[b1][k], e2 = r->mag_err[b2][k];
        if (isfinite(e)) {
            double ec2 = (isfinite(e1) ? e1 * e1 : 0) + (isfinite(e2) ? e2 * e2 : 0);
            err[k] = sqrt(e * e + dpoly * dpoly * ec2);
        }
        used++;
    }
    return used;
}
