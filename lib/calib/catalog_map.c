/* catalog_map.c: the column map of a reference catalogue, its canonical rows in memory and the catalogue id made from content and map. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "skystack/catalog.h"
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/json.h"

static const char *const field_names[SK_CAT_NFIELDS] = {
    "ra", "dec", "ra_err", "dec_err", "pmra", "pmdec", "parallax", "epoch",
};

static const char gaia_map[] =
    "ra=ra,dec=dec,ra_err=ra_error?,dec_err=dec_error?,pmra=pmra?,pmdec=pmdec?,parallax=parallax?,"
    "epoch=ref_epoch?,mag:G=phot_g_mean_mag,err:G=snr:phot_g_mean_flux_over_error?,"
    "mag:BP=phot_bp_mean_mag?,err:BP=snr:phot_bp_mean_flux_over_error?,"
    "mag:RP=phot_rp_mean_mag?,err:RP=snr:phot_rp_mean_flux_over_error?";

static int parse_source(const char *what, const char *v, sk_catmap_entry *e)
{
    memset(e, 0, sizeof *e);
    char *end = NULL;
    double d = strtod(v, &end);
    if (end != v && *end == '\0' && isfinite(d)) {
        e->has_constant = 1;
        e->constant = d;
        return SK_OK;
    }
    if (strncmp(v, "snr:", 4) == 0) {
        e->snr = 1;
        v += 4;
    }
    size_t n = strlen(v);
    if (n > 0 && v[n - 1] == '?') {
        e->optional = 1;
        n--;
    }
    if (n == 0 || n >= sizeof e->column)
        return sk_error(SK_EINPUT, "column map: %s: no column name", what);
    memcpy(e->column, v, n);
    e->column[n] = '\0';
    return SK_OK;
}

static int band_index(sk_catmap *m, const char *band)
{
    for (int b = 0; b < m->nbands; b++)
        if (strcmp(m->band[b], band) == 0)
            return b;
    if (m->nbands == SK_CAT_MAXBANDS)
        return sk_error(SK_EINPUT, "column map: more than %d bands", SK_CAT_MAXBANDS), -1;
    if (!band[0] || strlen(band) >= SK_CAT_BANDLEN || strpbrk(band, " ,=:\"'"))
        return sk_error(SK_EINPUT, "column map: '%s' is not a band name (letters, digits, _; at most %d)",
                        band, SK_CAT_BANDLEN - 1), -1;
    snprintf(m->band[m->nbands], SK_CAT_BANDLEN, "%s", band);
    return m->nbands++;
}

static int parse_entry(char *tok, sk_catmap *m)
{
    char *eq = strchr(tok, '=');
    if (!eq)
        return sk_error(SK_EINPUT, "column map: '%s' is not NAME=COLUMN", tok);
    *eq = '\0';
    const char *key = tok, *val = eq + 1;
    if (strncmp(key, "mag:", 4) == 0 || strncmp(key, "err:", 4) == 0) {
        int b = band_index(m, key + 4);
        if (b < 0)
            return SK_EINPUT;
        sk_catmap_entry *e = key[0] == 'm' ? &m->mag[b] : &m->err[b];
        return parse_source(key, val, e);
    }
    for (int f = 0; f < SK_CAT_NFIELDS; f++)
        if (strcmp(key, field_names[f]) == 0)
            return parse_source(key, val, &m->f[f]);
    return sk_error(SK_EINPUT, "column map: unknown name '%s' (ra, dec, ra_err, dec_err, pmra, pmdec, "
                               "parallax, epoch, mag:BAND, err:BAND)", key);
}

int sk_catmap_parse(const char *text, sk_catmap *out)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text)
        return sk_error(SK_EINPUT, "column map: empty");
    if (strcasecmp(text, "gaia") == 0)
        text = gaia_map;
    char *s = strdup(text);
    if (!s)
        return sk_error(SK_EIO, "column map: out of memory");
    int st = SK_OK;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok && !st; tok = strtok_r(NULL, ",", &save))
        st = parse_entry(tok, out);
    free(s);
    if (!st && (out->f[SK_CAT_RA].column[0] == '\0' || out->f[SK_CAT_DEC].column[0] == '\0'))
        st = sk_error(SK_EINPUT, "column map: ra and dec must name columns");
    for (int b = 0; !st && b < out->nbands; b++)
        if (!out->mag[b].column[0] && !out->mag[b].has_constant)
            st = sk_error(SK_EINPUT, "column map: err:%s without mag:%s", out->band[b], out->band[b]);
    return st;
}

static void entry_text(char *buf, size_t size, const char *key, const sk_catmap_entry *e)
{
    size_t n = strlen(buf);
    if (e->has_constant)
        snprintf(buf + n, size - n, "%s%s=%.17g", n ? "," : "", key, e->constant);
    else if (e->column[0])
        snprintf(buf + n, size - n, "%s%s=%s%s%s", n ? "," : "", key, e->snr ? "snr:" : "", e->column,
                 e->optional ? "?" : "");
}

char *sk_catmap_text(const sk_catmap *m)
{
    size_t size = 64 + (SK_CAT_NFIELDS + 2 * SK_CAT_MAXBANDS) * 120;
    char *buf = calloc(1, size);
    if (!buf) {
        sk_error(SK_EIO, "column map: out of memory");
        return NULL;
    }
    for (int f = 0; f < SK_CAT_NFIELDS; f++)
        entry_text(buf, size, field_names[f], &m->f[f]);
    for (int b = 0; b < m->nbands; b++) {
        char key[40];
        snprintf(key, sizeof key, "mag:%s", m->band[b]);
        entry_text(buf, size, key, &m->mag[b]);
        snprintf(key, sizeof key, "err:%s", m->band[b]);
        entry_text(buf, size, key, &m->err[b]);
    }
    return buf;
}

/* ---- rows ---- */

sk_catrows *sk_catrows_new(int nbands, char band[][SK_CAT_BANDLEN])
{
    sk_catrows *r = calloc(1, sizeof *r);
    if (!r) {
        sk_error(SK_EIO, "catalogue rows: out of memory");
        return NULL;
    }
    r->nbands = nbands;
    for (int b = 0; b < nbands; b++)
        snprintf(r->band[b], SK_CAT_BANDLEN, "%s", band[b]);
    return r;
}

static int grow(void **p, size_t elem, long n)
{
    void *q = realloc(*p, elem * (size_t)(n > 0 ? n : 1));
    if (!q)
        return sk_error(SK_EIO, "catalogue rows: out of memory for %ld rows", n);
    *p = q;
    return SK_OK;
}

int sk_catrows_reserve(sk_catrows *r, long n)
{
    if (n <= r->cap)
        return SK_OK;
    int st = grow((void **)&r->ra_deg, sizeof(double), n);
    st = st ? st : grow((void **)&r->dec_deg, sizeof(double), n);
    st = st ? st : grow((void **)&r->epoch_yr, sizeof(double), n);
    float **f[5] = {&r->ra_err_mas, &r->dec_err_mas, &r->pmra_mas_yr, &r->pmdec_mas_yr, &r->parallax_mas};
    for (int i = 0; !st && i < 5; i++)
        st = grow((void **)f[i], sizeof(float), n);
    for (int b = 0; !st && b < r->nbands; b++) {
        st = grow((void **)&r->mag[b], sizeof(float), n);
        st = st ? st : grow((void **)&r->mag_err[b], sizeof(float), n);
    }
    if (!st)
        r->cap = n;
    return st;
}

int sk_catrows_append(sk_catrows *r, const sk_catrows *from, long k)
{
    if (r->n == r->cap) {
        int st = sk_catrows_reserve(r, r->cap ? 2 * r->cap : 1024);
        if (st)
            return st;
    }
    long i = r->n++;
    r->ra_deg[i] = from->ra_deg[k];
    r->dec_deg[i] = from->dec_deg[k];
    r->epoch_yr[i] = from->epoch_yr[k];
    r->ra_err_mas[i] = from->ra_err_mas[k];
    r->dec_err_mas[i] = from->dec_err_mas[k];
    r->pmra_mas_yr[i] = from->pmra_mas_yr[k];
    r->pmdec_mas_yr[i] = from->pmdec_mas_yr[k];
    r->parallax_mas[i] = from->parallax_mas[k];
    for (int b = 0; b < r->nbands; b++) {
        r->mag[b][i] = from->mag[b][k];
        r->mag_err[b][i] = from->mag_err[b][k];
    }
    return SK_OK;
}

int sk_catrows_band(const sk_catrows *r, const char *band)
{
    for (int b = 0; band && b < r->nbands; b++)
        if (strcmp(r->band[b], band) == 0)
            return b;
    return -1;
}

void sk_catrows_free(sk_catrows *r)
{
    if (!r)
        return;
    free(r->ra_deg);
    free(r->dec_deg);
    free(r->epoch_yr);
    free(r->ra_err_mas);
    free(r->dec_err_mas);
    free(r->pmra_mas_yr);
    free(r->pmdec_mas_yr);
    free(r->parallax_mas);
    for (int b = 0; b < r->nbands; b++) {
        free(r->mag[b]);
        free(r->mag_err[b]);
    }
    free(r);
}

/* ---- identity ---- */

int sk_catinfo_make_id(sk_catinfo *info)
{
    json_t *bands = json_array();
    for (int b = 0; bands && b < info->nbands; b++)
        json_array_append_new(bands, json_string(info->band[b]));
    json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "name", info->name, "version", info->version,
                            "rows", (json_int_t)info->nrows, "content", info->content_sha256, "columns",
                            info->columns ? info->columns : "", "bands", bands);
    char *canon = doc ? sk_json_canonical(doc) : NULL;
    json_decref(doc);
    if (!canon)
        return sk_error(SK_EIO, "catalogue id: out of memory");
    sk_sha256_hex(canon, strlen(canon), info->id);
    free(canon);
    return SK_OK;
}

void sk_catinfo_clear(sk_catinfo *info)
{
    free(info->columns);
    memset(info, 0, sizeof *info);
}
