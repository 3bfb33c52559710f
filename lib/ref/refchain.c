/* refchain.c: the provenance chain a configuration implies (preprocessing, extraction, coaddition, coadd extraction, referencing) and the selection criteria of its referencing provenances (see skystack/ref.h, skystack.conf(5)). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/ingest.h"
#include "skystack/json.h"
#include "skystack/query.h"
#include "skystack/ref.h"
#include "refchain_priv.h"
#include "ingest/ingest_internal.h"
#include "ref_internal.h"

/* ---- selection criteria ------------------------------------------------ */

/* The keys of a criteria set: real-valued cuts, counts, a name list and
 * the order. The table is the one place they are listed. */
enum ckind { C_REAL, C_COUNT, C_LIST, C_ORDER };
static const struct {
    const char *key;
    int kind;
} criteria_keys[] = {
    {"date_range", C_REAL},  {"min_mjd", C_REAL},     {"max_mjd", C_REAL},
    {"min_seeing", C_REAL},  {"max_seeing", C_REAL},  {"min_lim_mag", C_REAL},
    {"max_lim_mag", C_REAL}, {"max_airmass", C_REAL}, {"min_bkg", C_REAL},
    {"max_bkg", C_REAL},     {"min_exptime", C_REAL}, {"max_exptime", C_REAL},
    {"min_overlap", C_REAL}, {"min_images", C_COUNT}, {"max_images", C_COUNT},
    {"instruments", C_LIST}, {"order", C_ORDER},
};
#define NCRITERIA_KEYS (sizeof criteria_keys / sizeof criteria_keys[0])

int ref_order_of(const char *name, int *order)
{
    if (!strcmp(name, "quality"))
        *order = SK_ORDER_QUALITY;
    else if (!strcmp(name, "earliest"))
        *order = SK_ORDER_EARLIEST;
    else if (!strcmp(name, "latest"))
        *order = SK_ORDER_LATEST;
    else
        return -1;
    return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The criteria set `in` (referencing.criteria[index]) checked and
 * normalised into the parameters of its provenance: reals as reals, counts
 * as integers, instruments sorted and unique. */
static int criteria_normalise(const json_t *in, int index, json_t **out)
{
    *out = NULL;
    if (!json_is_object(in))
        return sk_error(SK_EINPUT, "referencing.criteria[%d]: not an object", index);
    json_t *o = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v) {
        size_t k = 0;
        while (k < NCRITERIA_KEYS && strcmp(criteria_keys[k].key, key))
            k++;
        if (k == NCRITERIA_KEYS) {
            json_decref(o);
            return sk_error(SK_EINPUT, "referencing.criteria[%d].%s: unknown criterion", index, key);
        }
        int kind = criteria_keys[k].kind;
        const char *bad = NULL;
        json_t *norm = NULL;
        if (kind == C_REAL) {
            if (json_is_null(v))
                norm = json_null();
            else if (!json_is_number(v) || !isfinite(json_number_value(v)))
                bad = "a number or null";
            else
                norm = json_real(json_number_value(v));
        } else if (kind == C_COUNT) {
            double d = json_is_number(v) ? json_number_value(v) : NAN;
            if (json_is_null(v) && strcmp(key, "min_images"))
                norm = json_null();
            else if (!(d >= 1) || d != floor(d) || d > 1e9)
                bad = "a whole number of images, at least 1";
            else
                norm = json_integer((json_int_t)d);
        } else if (kind == C_LIST) {
            size_t n = json_array_size(v);
            const char **names = malloc((n ? n : 1) * sizeof *names);
            if (!json_is_array(v) || !names) {
                bad = "a list of instrument names";
            } else {
                for (size_t i = 0; i < n && !bad; i++) {
                    names[i] = json_string_value(json_array_get(v, i));
                    if (!names[i] || !*names[i])
                        bad = "a list of instrument names";
                }
            }
            if (!bad) {
                qsort(names, n, sizeof *names, cmp_cstr);
                norm = json_array();
                for (size_t i = 0; i < n; i++)
                    if (i == 0 || strcmp(names[i], names[i - 1]))
                        json_array_append_new(norm, json_string(names[i]));
            }
            free(names);
        } else {
            int order;
            if (!json_is_string(v) || ref_order_of(json_string_value(v), &order))
                bad = "quality, earliest or latest";
            else
                norm = json_string(json_string_value(v));
        }
        if (bad) {
            json_decref(o);
            return sk_error(SK_EINPUT, "referencing.criteria[%d].%s: expected %s", index, key, bad);
        }
        json_object_set_new(o, key, norm);
    }
    double lo = json_number_value(json_object_get(o, "min_overlap"));
    if (json_is_number(json_object_get(o, "min_overlap")) && (lo < 0 || lo > 1)) {
        json_decref(o);
        return sk_error(SK_EINPUT, "referencing.criteria[%d].min_overlap: %g is not a fraction in [0, 1]",
                        index, lo);
    }
    if (json_is_number(json_object_get(o, "date_range")) &&
        json_number_value(json_object_get(o, "date_range")) <= 0) {
        json_decref(o);
        return sk_error(SK_EINPUT, "referencing.criteria[%d].date_range: must be a positive number of days",
                        index);
    }
    json_int_t mn = json_integer_value(json_object_get(o, "min_images"));
    json_t *mx = json_object_get(o, "max_images");
    if (json_is_integer(mx) && json_integer_value(mx) < mn) {
        long long max_images = (long long)json_integer_value(mx);
        json_decref(o);
        return sk_error(SK_EINPUT, "referencing.criteria[%d]: max_images %lld is below min_images %lld",
                        index, max_images, (long long)mn);
    }
    *out = o;
    return SK_OK;
}

static double real_or_nan(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Criteria from provenance parameters (the configuration's, normalised, or
 * a stored provenance's); missing keys restrict nothing. `c` borrows from
 * `params`. */
int ref_criteria_from_json(const json_t *params, ref_criteria *c)
{
    memset(c, 0, sizeof *c);
    c->date_range = real_or_nan(params, "date_range");
    c->min_mjd = real_or_nan(params, "min_mjd");
    c->max_mjd = real_or_nan(params, "max_mjd");
    c->min_seeing = real_or_nan(params, "min_seeing");
    c->max_seeing = real_or_nan(params, "max_seeing");
    c->min_lim_mag = real_or_nan(params, "min_lim_mag");
    c->max_lim_mag = real_or_nan(params, "max_lim_mag");
    c->max_airmass = real_or_nan(params, "max_airmass");
    c->min_bkg = real_or_nan(params, "min_bkg");
    c->max_bkg = real_or_nan(params, "max_bkg");
    c->min_exptime = real_or_nan(params, "min_exptime");
    c->max_exptime = real_or_nan(params, "max_exptime");
    c->min_overlap = real_or_nan(params, "min_overlap");
    double mn = real_or_nan(params, "min_images"), mx = real_or_nan(params, "max_images");
    c->min_images = isfinite(mn) && mn >= 1 ? (long)mn : 1;
    c->max_images = isfinite(mx) && mx >= 1 ? (long)mx : 0;
    json_t *list = json_object_get(params, "instruments");
    size_t n = json_array_size(list);
    if (n) {
        c->instruments = malloc(n * sizeof *c->instruments);
        if (!c->instruments)
            return sk_error(SK_EIO, "out of memory");
        for (size_t i = 0; i < n; i++) {
            const char *s = json_string_value(json_array_get(list, i));
            if (s)
                c->instruments[c->ninstruments++] = s;
        }
    }
    const char *ord = json_string_value(json_object_get(params, "order"));
    c->order = SK_ORDER_QUALITY;
    if (ord && ref_order_of(ord, &c->order))
        return sk_error(SK_EINPUT, "referencing provenance: unknown order '%s'", ord);
    return SK_OK;
}

void ref_criteria_clear(ref_criteria *c)
{
    free(c->instruments);
    c->instruments = NULL;
}

/* The time window of the criteria: [*lo, *hi], NAN where open. */
void ref_criteria_time_window(const ref_criteria *c, double now_mjd, double *lo, double *hi)
{
    *lo = c->min_mjd;
    *hi = c->max_mjd;
    if (isfinite(c->date_range)) {
        if (isfinite(*lo) && !isfinite(*hi))
            *hi = *lo + c->date_range;
        else if (!isfinite(*lo)) {
            if (!isfinite(*hi))
                *hi = now_mjd;
            *lo = *hi - c->date_range;
        }
    }
}

/* ---- the provenance chain ---------------------------------------------- */

void sk_ref_chain_free(sk_ref_chain *c)
{
    if (!c)
        return;
    sk_prov_free(c->preprocessing);
    sk_prov_free(c->extraction);
    sk_prov_free(c->coaddition);
    sk_prov_free(c->coadd_extraction);
    for (int i = 0; i < c->nreferencing; i++)
        sk_prov_free(c->referencing[i]);
    free(c->referencing);
    free(c);
}

/* A provenance of `process` over the critical parameters of `section`
 * (those of extraction as the extraction records them: the reference
 * catalogue by its id, opened with `db` when it is in the database). */
static int section_prov(const sk_config *cfg, sk_db *db, const char *process, const char *section,
                        sk_prov **out)
{
    json_t *crit = strcmp(section, "extraction") ? sk_config_critical(cfg, section)
                                                 : sk_extract_prov_params(cfg, db);
    if (!crit)
        return sk_errstatus() ? sk_errstatus() : SK_EINPUT;
    int st = sk_prov_new(process, sk_code_version(process), crit, out);
    json_decref(crit);
    return st;
}

int sk_ref_chain_make(const sk_config *cfg, const char *instrument, sk_ref_chain **out)
{
    return sk_ref_chain_make_db(cfg, instrument, NULL, out);
}

int sk_ref_chain_make_db(const sk_config *cfg, const char *instrument, sk_db *db, sk_ref_chain **out)
{
    *out = NULL;
    sk_ref_chain *c = calloc(1, sizeof *c);
    if (!c)
        return sk_error(SK_EIO, "out of memory");
    int st = sk_ingest_provenance(cfg, instrument, &c->preprocessing);
    if (!st)
        st = section_prov(cfg, db, "extraction", "extraction", &c->extraction);
    if (!st)
        st = sk_prov_add_upstream(c->extraction, c->preprocessing);
    if (!st)
        st = section_prov(cfg, db, "coaddition", "coaddition", &c->coaddition);
    if (!st)
        st = sk_prov_add_upstream(c->coaddition, c->preprocessing);
    if (!st)
        st = sk_prov_add_upstream(c->coaddition, c->extraction);
    if (!st)
        st = section_prov(cfg, db, "extraction", "extraction", &c->coadd_extraction);
    if (!st)
        st = sk_prov_add_upstream(c->coadd_extraction, c->coaddition);
    if (st) {
        sk_ref_chain_free(c);
        return st;
    }
    /* upstream_hash over the two ids, sorted */
    const char *a = c->coaddition->id, *b = c->coadd_extraction->id;
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    json_t *ids = json_pack("[s, s]", a, b);
    char *text = ids ? sk_json_canonical(ids) : NULL;
    json_decref(ids);
    if (!text) {
        sk_ref_chain_free(c);
        return sk_error(SK_EIO, "out of memory");
    }
    sk_prov_id_of(text, c->upstream_hash);
    free(text);

    json_t *list = sk_config_get(cfg, "referencing.criteria");
    size_t n = json_array_size(list);
    if (n == 0) {
        sk_ref_chain_free(c);
        return sk_error(SK_EINPUT, "referencing.criteria: at least one set of selection criteria is needed");
    }
    c->referencing = calloc(n, sizeof *c->referencing);
    if (!c->referencing) {
        sk_ref_chain_free(c);
        return sk_error(SK_EIO, "out of memory");
    }
    for (size_t i = 0; i < n && !st; i++) {
        json_t *params = NULL;
        sk_prov *p = NULL;
        st = criteria_normalise(json_array_get(list, i), (int)i, &params);
        if (!st)
            st = sk_prov_new("referencing", sk_code_version("referencing"), params, &p);
        json_decref(params);
        if (!st)
            st = sk_prov_add_upstream(p, c->coaddition);
        if (!st)
            st = sk_prov_add_upstream(p, c->coadd_extraction);
        int dup = 0;
        for (int k = 0; !st && k < c->nreferencing; k++)
            dup |= !strcmp(c->referencing[k]->id, p->id);
        if (st || dup)
            sk_prov_free(p);
        else
            c->referencing[c->nreferencing++] = p;
    }
    if (st) {
        sk_ref_chain_free(c);
        return st;
    }
    *out = c;
    return SK_OK;
}
