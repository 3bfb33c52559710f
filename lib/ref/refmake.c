/* refmake.c: making references: the provenance chain from the configuration, the refset rules, image selection by criteria, coadd reuse or build, and saving the reference under a database lock (see skystack/ref.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "skystack/coadd.h"
#include "skystack/error.h"
#include "skystack/ingest.h"
#include "skystack/json.h"
#include "skystack/log.h"
#include "skystack/query.h"
#include "skystack/ref.h"
#include "db/db_priv.h"

/* ---- a growing string (messages) --------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s)
            return;
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static const char *sb_text(const sbuf *b)
{
    return b->s ? b->s : "";
}

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

typedef struct criteria {
    double date_range, min_mjd, max_mjd, min_seeing, max_seeing, min_lim_mag, max_lim_mag,
        max_airmass, min_bkg, max_bkg, min_exptime, max_exptime, min_overlap; /* NAN: none */
    long min_images, max_images; /* max 0: none */
    const char **instruments;    /* borrowed from the JSON */
    int ninstruments;
    int order;                   /* enum sk_query_order */
} criteria;

static int order_of(const char *name, int *order)
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
            if (!json_is_string(v) || order_of(json_string_value(v), &order))
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
static int criteria_from_json(const json_t *params, criteria *c)
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
    if (ord && order_of(ord, &c->order))
        return sk_error(SK_EINPUT, "referencing provenance: unknown order '%s'", ord);
    return SK_OK;
}

static void criteria_clear(criteria *c)
{
    free(c->instruments);
    c->instruments = NULL;
}

/* The time window of the criteria: [*lo, *hi], NAN where open. */
static void time_window(const criteria *c, double now_mjd, double *lo, double *hi)
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

/* A provenance of `process` over the critical parameters of `section`. */
static int section_prov(const sk_config *cfg, const char *process, const char *section, sk_prov **out)
{
    json_t *crit = sk_config_critical(cfg, section);
    if (!crit)
        return sk_errstatus() ? sk_errstatus() : SK_EINPUT;
    int st = sk_prov_new(process, sk_code_version(process), crit, out);
    json_decref(crit);
    return st;
}

int sk_ref_chain_make(const sk_config *cfg, const char *instrument, sk_ref_chain **out)
{
    *out = NULL;
    sk_ref_chain *c = calloc(1, sizeof *c);
    if (!c)
        return sk_error(SK_EIO, "out of memory");
    int st = sk_ingest_provenance(cfg, instrument, &c->preprocessing);
    if (!st)
        st = section_prov(cfg, "extraction", "extraction", &c->extraction);
    if (!st)
        st = sk_prov_add_upstream(c->extraction, c->preprocessing);
    if (!st)
        st = section_prov(cfg, "coaddition", "coaddition", &c->coaddition);
    if (!st)
        st = sk_prov_add_upstream(c->coaddition, c->preprocessing);
    if (!st)
        st = sk_prov_add_upstream(c->coaddition, c->extraction);
    if (!st)
        st = section_prov(cfg, "extraction", "extraction", &c->coadd_extraction);
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

/* ---- why a refset's chain differs -------------------------------------- */

/* Differences between stored parameters and ours, as "key (refset: A, now: B)". */
static void diff_params(const json_t *stored, const json_t *ours, const char *prefix, sbuf *msg,
                        int *n)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)ours, key, v) {
        json_t *s = json_object_get(stored, key);
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
        if (json_is_object(v) && json_is_object(s)) {
            diff_params(s, v, path, msg, n);
            continue;
        }
        int same = s && (json_equal(s, v) ||
                         (json_is_number(s) && json_is_number(v) &&
                          json_number_value(s) == json_number_value(v)));
        if (same)
            continue;
        char *a = s ? sk_json_canonical(s) : NULL, *b = sk_json_canonical(v);
        sb_printf(msg, "%s%s (refset: %s, this configuration: %s)", *n ? "; " : "", path,
                  a ? a : "absent", b ? b : "?");
        free(a);
        free(b);
        (*n)++;
    }
    json_object_foreach((json_t *)stored, key, v) {
        if (json_object_get(ours, key))
            continue;
        char *a = sk_json_canonical(v);
        sb_printf(msg, "%s%s%s%s (refset: %s, this configuration: absent)", *n ? "; " : "", prefix,
                  *prefix ? "." : "", key, a ? a : "?");
        free(a);
        (*n)++;
    }
}

/* Compare the stored provenance `stored_id` with `ours`, following the
 * upstreams by process; append the first differences found to msg. */
static int diff_prov(sk_db *db, const char *stored_id, const sk_prov *ours, const char *label,
                     sbuf *msg, int depth)
{
    if (!strcmp(stored_id, ours->id) || depth > 6)
        return SK_OK;
    const char *p[1] = {stored_id};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "reading a provenance",
                        "SELECT code_version, parameters::text FROM provenances WHERE id = $1", 1, p,
                        &res);
    if (st)
        return st;
    if (PQntuples(res) != 1) {
        PQclear(res);
        sb_printf(msg, " %s provenance %s (refset) is not in the database;", label, stored_id);
        return SK_OK;
    }
    json_t *params = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    char code[32];
    snprintf(code, sizeof code, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    sbuf d = {0};
    int n = 0;
    if (params)
        diff_params(params, ours->parameters, "", &d, &n);
    json_decref(params);
    char ours_mm[32];
    snprintf(ours_mm, sizeof ours_mm, "%s", ours->code_version);
    char *dot = strchr(ours_mm, '.');
    if (dot && (dot = strchr(dot + 1, '.')))
        *dot = '\0';
    sb_printf(msg, " %s provenance differs (refset: %s, this configuration: %s)", label, stored_id,
              ours->id);
    if (n)
        sb_printf(msg, ": parameters %s", sb_text(&d));
    if (strcmp(code, ours_mm))
        sb_printf(msg, "%s code version %s in the refset, %s now", n ? ";" : ":", code, ours_mm);
    sb_printf(msg, ".");
    free(d.s);
    if (n || strcmp(code, ours_mm))
        return SK_OK;
    /* Same parameters and code: an upstream differs. */
    res = NULL;
    st = sk_db_exec(db, "reading provenance upstreams",
                    "SELECT u.id, u.process FROM provenance_upstreams pu JOIN provenances u "
                    "ON u.id = pu.upstream_id WHERE pu.downstream_id = $1 ORDER BY u.id",
                    1, p, &res);
    if (st)
        return st;
    for (int r = 0; r < PQntuples(res) && !st; r++)
        for (int k = 0; k < ours->nupstreams; k++)
            if (!strcmp(ours->upstreams[k]->process, PQgetvalue(res, r, 1))) {
                char sub[64];
                snprintf(sub, sizeof sub, "%s (upstream of %s)", ours->upstreams[k]->process, label);
                st = diff_prov(db, PQgetvalue(res, r, 0), ours->upstreams[k], sub, msg, depth + 1);
            }
    PQclear(res);
    return st;
}

/* SK_EINPUT explaining which provenance of the refset's chain differs. */
static int upstream_mismatch(sk_db *db, const char *name, const char *stored_hash,
                             const sk_ref_chain *ch)
{
    sbuf msg = {0};
    sb_printf(&msg, "refset '%s' was made with upstream_hash %s but this configuration gives %s:",
              name, stored_hash, ch->upstream_hash);
    const char *p[1] = {name};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "reading the refset's chain",
                        "SELECT u.id, u.process FROM refsets s JOIN refset_provenances rp "
                        "ON rp.refset_id = s.id JOIN provenance_upstreams pu "
                        "ON pu.downstream_id = rp.provenance_id JOIN provenances u "
                        "ON u.id = pu.upstream_id WHERE s.name = $1 "
                        "ORDER BY rp.position, u.process LIMIT 2",
                        1, p, &res);
    if (st) {
        free(msg.s);
        return st;
    }
    for (int r = 0; r < PQntuples(res) && !st; r++) {
        const char *id = PQgetvalue(res, r, 0), *process = PQgetvalue(res, r, 1);
        if (!strcmp(process, "coaddition"))
            st = diff_prov(db, id, ch->coaddition, "coaddition", &msg, 0);
        else
            st = diff_prov(db, id, ch->coadd_extraction, "coadd extraction", &msg, 0);
    }
    if (PQntuples(res) == 0)
        sb_printf(&msg, " the refset holds no provenance to compare with.");
    PQclear(res);
    if (!st)
        st = sk_error(SK_EINPUT,
                      "%s Nothing was written: use another refset name for these coadd or "
                      "extraction parameters",
                      sb_text(&msg));
    free(msg.s);
    return st;
}

/* ---- the refset rules --------------------------------------------------- */

/* One referencing provenance of a refset, in its order. */
typedef struct member {
    char id[SK_PROV_ID_LEN + 1];
    json_t *params;     /* its criteria */
    int appended;       /* 1: appended now (or would be, in a dry run) */
} member;

typedef struct refset_state {
    int exists;         /* existed before this call */
    char stored_hash[64];
    member *members;
    int nmembers;
} refset_state;

static void refset_state_clear(refset_state *s)
{
    for (int i = 0; i < s->nmembers; i++)
        json_decref(s->members[i].params);
    free(s->members);
    memset(s, 0, sizeof *s);
}

/* Read the refset (FOR UPDATE inside a transaction) into *s. */
static int read_refset(sk_db *db, const char *name, int for_update, char id[32], refset_state *s)
{
    const char *p[1] = {name};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "reading a refset",
                        for_update ? "SELECT id, upstream_hash FROM refsets WHERE name = $1 FOR UPDATE"
                                   : "SELECT id, upstream_hash FROM refsets WHERE name = $1",
                        1, p, &res);
    if (st)
        return st;
    s->exists = PQntuples(res) == 1;
    if (s->exists) {
        snprintf(id, 32, "%s", PQgetvalue(res, 0, 0));
        const char *h = sk_db_value(res, 0, 1);
        snprintf(s->stored_hash, sizeof s->stored_hash, "%s", h ? h : "");
    }
    PQclear(res);
    if (!s->exists)
        return SK_OK;
    const char *pid[1] = {id};
    st = sk_db_exec(db, "reading a refset's provenances",
                    "SELECT rp.provenance_id, p.parameters::text FROM refset_provenances rp "
                    "JOIN provenances p ON p.id = rp.provenance_id "
                    "WHERE rp.refset_id = $1::bigint ORDER BY rp.position",
                    1, pid, &res);
    if (st)
        return st;
    int n = PQntuples(res);
    s->members = calloc((size_t)n + 1, sizeof *s->members);
    if (!s->members) {
        PQclear(res);
        return sk_error(SK_EIO, "out of memory");
    }
    for (int r = 0; r < n; r++) {
        member *m = &s->members[s->nmembers++];
        snprintf(m->id, sizeof m->id, "%s", PQgetvalue(res, r, 0));
        m->params = json_loads(PQgetvalue(res, r, 1), 0, NULL);
        if (!m->params)
            m->params = json_object();
    }
    PQclear(res);
    return SK_OK;
}

static int has_member(const refset_state *s, const char *id)
{
    for (int i = 0; i < s->nmembers; i++)
        if (!strcmp(s->members[i].id, id))
            return 1;
    return 0;
}

static int add_member(refset_state *s, const sk_prov *p)
{
    member *m = realloc(s->members, ((size_t)s->nmembers + 1) * sizeof *m);
    if (!m)
        return sk_error(SK_EIO, "out of memory");
    s->members = m;
    m = &s->members[s->nmembers++];
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", p->id);
    m->params = json_incref(p->parameters);
    m->appended = 1;
    return SK_OK;
}

static int append_refused(const char *name, const sk_ref_chain *ch, const refset_state *s,
                          int by_option)
{
    sbuf msg = {0};
    int n = 0;
    for (int i = 0; i < ch->nreferencing; i++)
        if (!has_member(s, ch->referencing[i]->id)) {
            char *crit = sk_json_canonical(ch->referencing[i]->parameters);
            sb_printf(&msg, "%s%s %s", n++ ? "; " : "", ch->referencing[i]->id, crit ? crit : "");
            free(crit);
        }
    int st = sk_error(SK_EINPUT,
                      "refset '%s' lacks the referencing provenance%s of these selection criteria "
                      "(%s) and appending is off (%s): nothing was written",
                      name, n == 1 ? "" : "s", sb_text(&msg),
                      by_option ? "--no-append" : "referencing.allow_append is false");
    free(msg.s);
    return st;
}

/* Create the refset or check it against the chain, appending provenances
 * it lacks; in a dry run only read. On return s->members is the refset's
 * order (with what would be appended). */
static int ensure_refset(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o,
                         const sk_ref_chain *ch, refset_state *s, sk_refmake_result *res)
{
    int allow = !o->no_append && sk_config_bool(cfg, "referencing.allow_append", 1);
    char id[32] = "";
    int st;
    if (o->dry_run) {
        st = read_refset(db, o->refset, 0, id, s);
        if (!st && s->exists && s->stored_hash[0] && strcmp(s->stored_hash, ch->upstream_hash))
            st = upstream_mismatch(db, o->refset, s->stored_hash, ch);
        for (int i = 0; !st && i < ch->nreferencing; i++)
            if (!has_member(s, ch->referencing[i]->id)) {
                if (s->exists && s->nmembers > 0 && !s->members[0].appended && !allow)
                    st = append_refused(o->refset, ch, s, o->no_append);
                else
                    st = add_member(s, ch->referencing[i]);
            }
        return st;
    }
    char lock[600];
    snprintf(lock, sizeof lock, "refset|%s", o->refset);
    if ((st = sk_db_begin(db)))
        return st;
    st = sk_db_lock(db, lock);
    if (!st)
        st = read_refset(db, o->refset, 1, id, s);
    int existed = s->exists;
    if (!st && !s->exists) {
        const char *desc = sk_config_string(cfg, "referencing.description", NULL);
        const char *p[3] = {o->refset, desc, ch->upstream_hash};
        st = sk_db_exec(db, "creating a refset",
                        "INSERT INTO refsets (name, description, upstream_hash) VALUES ($1, $2, $3) "
                        "ON CONFLICT (name) DO NOTHING",
                        3, p, NULL);
        if (!st)
            st = read_refset(db, o->refset, 1, id, s);
        if (!st && !s->exists)
            st = sk_error(SK_EIO, "refset '%s': created but not found", o->refset);
        res->refset_created = !st;
    }
    if (!st && s->stored_hash[0] && strcmp(s->stored_hash, ch->upstream_hash))
        st = upstream_mismatch(db, o->refset, s->stored_hash, ch);
    if (!st && !s->stored_hash[0]) {
        /* made by `refset create`: its first refmake fixes the chain */
        const char *p[2] = {id, ch->upstream_hash};
        st = sk_db_exec(db, "setting a refset's upstream_hash",
                        "UPDATE refsets SET upstream_hash = $2 WHERE id = $1::bigint", 2, p, NULL);
    }
    int fresh = !existed || s->nmembers == 0;
    for (int i = 0; !st && i < ch->nreferencing; i++) {
        const sk_prov *p = ch->referencing[i];
        if (has_member(s, p->id))
            continue;
        if (!fresh && !allow) {
            st = append_refused(o->refset, ch, s, o->no_append);
            break;
        }
        st = sk_db_save_prov(db, p);
        const char *v[2] = {id, p->id};
        if (!st)
            st = sk_db_exec(db, "adding a provenance to a refset",
                            "INSERT INTO refset_provenances (refset_id, provenance_id, position) "
                            "VALUES ($1::bigint, $2, (SELECT coalesce(max(position) + 1, 0) "
                            "FROM refset_provenances WHERE refset_id = $1::bigint))",
                            2, v, NULL);
        if (!st)
            st = add_member(s, p);
        if (!st && !fresh) {
            res->appended++;
            sk_info("refset '%s': appended referencing provenance %s", o->refset, p->id);
        }
    }
    if (st) {
        sk_db_rollback(db);
        return st;
    }
    st = sk_db_commit(db);
    if (!st && res->refset_created)
        sk_info("refset '%s' created (upstream_hash %s)", o->refset, ch->upstream_hash);
    res->refset_created = res->refset_created && !st;
    return st;
}

/* ---- image selection ---------------------------------------------------- */

/* Images at the place in the filter, science, with extraction products of
 * the chain's extraction provenance. */
static sk_query *base_query(const sk_refmake_opts *o, const sk_ref_chain *ch, int with_products,
                            int *st)
{
    sk_query *q = sk_query_new();
    if (o->place.has_position)
        *st = sk_query_contains(q, o->place.ra_deg, o->place.dec_deg);
    else {
        *st = sk_query_text(q, SK_Q_TARGET, o->place.target);
        if (!*st)
            *st = sk_query_text(q, SK_Q_SECTION, o->place.section);
    }
    if (!*st)
        *st = sk_query_text(q, SK_Q_FILTER, o->filter);
    if (!*st)
        *st = sk_query_text(q, SK_Q_TYPE, "science");
    if (!*st && with_products) {
        const char *p[1] = {ch->preprocessing->id};
        *st = sk_query_where(q, "i.provenance_id = $1::text", 1, p);
        if (!*st)
            *st = sk_query_with_products(q, ch->extraction->id);
    }
    return q;
}

/* The criteria (all of them, or only number `only` of the list below). */
enum { K_TIME, K_SEEING, K_LIMMAG, K_AIRMASS, K_BKG, K_EXPTIME, K_INSTRUMENTS, K_N };
static const char *const criterion_names[K_N] = {
    "time range", "seeing", "limiting magnitude", "airmass", "background", "exposure time",
    "instruments",
};

static int add_criteria(sk_query *q, const criteria *c, double now_mjd, int only, int *used)
{
    int st = SK_OK;
    double lo, hi;
    time_window(c, now_mjd, &lo, &hi);
    const struct {
        int k, field;
        double min, max;
    } r[] = {
        {K_TIME, SK_Q_MJD, lo, hi},
        {K_SEEING, SK_Q_SEEING, c->min_seeing, c->max_seeing},
        {K_LIMMAG, SK_Q_LIM_MAG, c->min_lim_mag, c->max_lim_mag},
        {K_AIRMASS, SK_Q_AIRMASS, NAN, c->max_airmass},
        {K_BKG, SK_Q_BKG, c->min_bkg, c->max_bkg},
        {K_EXPTIME, SK_Q_EXPTIME, c->min_exptime, c->max_exptime},
    };
    for (size_t i = 0; !st && i < sizeof r / sizeof r[0]; i++) {
        if (only >= 0 && only != r[i].k)
            continue;
        if (isfinite(r[i].min)) {
            st = sk_query_min(q, r[i].field, r[i].min);
            used[r[i].k] = 1;
        }
        if (!st && isfinite(r[i].max)) {
            st = sk_query_max(q, r[i].field, r[i].max);
            used[r[i].k] = 1;
        }
    }
    if (!st && c->ninstruments && (only < 0 || only == K_INSTRUMENTS)) {
        st = sk_query_text_any(q, SK_Q_INSTRUMENT, c->instruments, c->ninstruments);
        used[K_INSTRUMENTS] = 1;
    }
    return st;
}

static int count_of(sk_db *db, sk_query *q, long *n)
{
    PGresult *res = NULL;
    int st = sk_query_run(q, db, SK_QUERY_COUNT, &res);
    if (!st)
        *n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return st;
}

/* The images criteria set `c` selects, in its order (*res: rows of
 * images; PQclear it). With min_overlap, every image must cover that
 * fraction of the bounding box of the first (best) image. */
static int select_images(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o,
                         const sk_ref_chain *ch, const criteria *c, double now_mjd, PGresult **res)
{
    *res = NULL;
    int used[K_N] = {0};
    double qf = sk_config_double(cfg, "query.quality_fwhm_factor", 3.0);
    int st;
    sk_query *q = base_query(o, ch, 1, &st);
    if (!st)
        st = add_criteria(q, c, now_mjd, -1, used);
    if (!st)
        st = sk_query_order(q, c->order, qf);
    int overlap = isfinite(c->min_overlap) && c->min_overlap > 0;
    if (!st && overlap) {
        sk_query_limit(q, 1);
        PGresult *first = NULL;
        st = sk_query_run(q, db, SK_QUERY_ROWS, &first);
        if (!st && PQntuples(first) == 1) {
            double box[4] = {sk_db_double(first, 0, PQfnumber(first, "minra")),
                             sk_db_double(first, 0, PQfnumber(first, "maxra")),
                             sk_db_double(first, 0, PQfnumber(first, "mindec")),
                             sk_db_double(first, 0, PQfnumber(first, "maxdec"))};
            sk_query_free(q);
            q = base_query(o, ch, 1, &st);
            if (!st)
                st = add_criteria(q, c, now_mjd, -1, used);
            if (!st)
                st = sk_query_order(q, c->order, qf);
            if (!st)
                st = sk_query_box(q, box[0], box[1], box[2], box[3], c->min_overlap);
        }
        PQclear(first);
    }
    if (!st && c->max_images > 0)
        st = sk_query_limit(q, c->max_images);
    if (!st)
        st = sk_query_run(q, db, SK_QUERY_ROWS, res);
    sk_query_free(q);
    return st;
}

/* Why criteria set `c` found too few images: counts per criterion. */
static int explain_shortfall(sk_db *db, const sk_refmake_opts *o, const sk_ref_chain *ch,
                             const criteria *c, double now_mjd, long nselected, sbuf *msg)
{
    long at_place = 0, with_products = 0;
    int st;
    sk_query *q = base_query(o, ch, 0, &st);
    if (!st)
        st = count_of(db, q, &at_place);
    sk_query_free(q);
    q = st ? NULL : base_query(o, ch, 1, &st);
    if (!st)
        st = count_of(db, q, &with_products);
    sk_query_free(q);
    if (st)
        return st;
    sb_printf(msg, "%ld science image%s at the place in filter %s, %ld with extraction products of "
                   "provenance %s",
              at_place, at_place == 1 ? "" : "s", o->filter, with_products, ch->extraction->id);
    /* each criterion alone, among the images with products (or, when
     * none has them, among those at the place) */
    int among_products = with_products > 0, first = 1;
    for (int k = 0; k < K_N && !st; k++) {
        int used[K_N] = {0};
        q = base_query(o, ch, among_products, &st);
        if (!st)
            st = add_criteria(q, c, now_mjd, k, used);
        long n = 0;
        if (!st && used[k]) {
            st = count_of(db, q, &n);
            if (!st)
                sb_printf(msg, "%s%ld pass the %s cut", first ? (among_products ? "; of these, " :
                                                                 "; of those at the place, ") : ", ",
                          n, criterion_names[k]);
            first = 0;
        }
        sk_query_free(q);
    }
    if (!st)
        sb_printf(msg, "; %ld pass%s all criteria%s, %ld needed", nselected, nselected == 1 ? "es" : "",
                  isfinite(c->min_overlap) && c->min_overlap > 0 ? " and the overlap" : "",
                  c->min_images);
    return st;
}

/* ---- coadd and reference ------------------------------------------------ */

/* The coadd of the chain's coaddition provenance over these inputs, if any. */
static int existing_coadd(sk_db *db, const sk_ref_chain *ch, const char *set_hash, long long *id)
{
    *id = 0;
    const char *p[2] = {ch->coaddition->id, set_hash};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "looking for the coadd",
                        "SELECT id FROM images WHERE provenance_id = $1 AND input_set_hash = $2 "
                        "AND type = 'coadd'",
                        2, p, &res);
    if (!st && PQntuples(res) == 1)
        *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return st;
}

/* Whether image `id` has all five extraction products of provenance `prov`. */
static int has_products(sk_db *db, long long id, const char *prov, int *yes)
{
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", id);
    const char *p[2] = {cid, prov};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "looking for the coadd's products",
                        "SELECT EXISTS (SELECT 1 FROM source_lists s "
                        "JOIN psfs p ON p.image_id = s.image_id AND p.provenance_id = s.provenance_id "
                        "JOIN backgrounds b ON b.image_id = s.image_id AND b.provenance_id = s.provenance_id "
                        "JOIN world_coordinates w ON w.image_id = s.image_id "
                        "AND w.provenance_id = s.provenance_id "
                        "JOIN zero_points z ON z.image_id = s.image_id AND z.provenance_id = s.provenance_id "
                        "WHERE s.image_id = $1::bigint AND s.provenance_id = $2)",
                        2, p, &res);
    *yes = !st && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return st;
}

/* Save the reference of coadd `coadd_id` under `prov_id` for the place
 * (or find the good one that exists for that coadd and provenance, or
 * for the place). *ref_id receives its id. */
static int save_reference(sk_db *db, const sk_refmake_opts *o, const sk_ref_chain *ch,
                          const char *place_key, long long coadd_id, const char *prov_id,
                          long long *ref_id)
{
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", coadd_id);
    char lock[128];
    snprintf(lock, sizeof lock, "reference|%s|%s", cid, prov_id);
    int st = sk_db_begin(db);
    if (!st)
        st = sk_db_lock(db, lock);
    PGresult *res = NULL;
    const char *pe[2] = {cid, prov_id};
    if (!st)
        st = sk_db_exec(db, "looking for a reference of the coadd",
                        "SELECT id FROM refs WHERE image_id = $1::bigint AND provenance_id = $2 "
                        "AND NOT is_bad ORDER BY id LIMIT 1",
                        2, pe, &res);
    if (!st && PQntuples(res) == 1) {
        *ref_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        sk_db_rollback(db);
        return SK_OK;
    }
    PQclear(res);
    res = NULL;
    const char *target = o->place.has_position ? NULL : o->place.target;
    const char *section = o->place.has_position ? NULL : o->place.section;
    const char *p[6] = {cid, prov_id, ch->coadd_extraction->id, place_key, target, section};
    if (!st)
        st = sk_db_exec(
            db, "saving the reference",
            "INSERT INTO refs (image_id, provenance_id, source_list_id, psf_id, background_id, "
            "world_coordinates_id, zero_point_id, place, target, section_id, filter, instrument, "
            "ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, "
            "dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec) "
            "SELECT i.id, $2, s.id, p.id, b.id, w.id, z.id, $4, coalesce($5, i.target), "
            "coalesce($6, i.section_id), i.filter, i.instrument, i.ra, i.dec, i.ra_corner_00, "
            "i.dec_corner_00, i.ra_corner_10, i.dec_corner_10, i.ra_corner_11, i.dec_corner_11, "
            "i.ra_corner_01, i.dec_corner_01, i.minra, i.maxra, i.mindec, i.maxdec "
            "FROM images i "
            "JOIN source_lists s ON s.image_id = i.id AND s.provenance_id = $3 "
            "JOIN psfs p ON p.image_id = i.id AND p.provenance_id = $3 "
            "JOIN backgrounds b ON b.image_id = i.id AND b.provenance_id = $3 "
            "JOIN world_coordinates w ON w.image_id = i.id AND w.provenance_id = $3 "
            "JOIN zero_points z ON z.image_id = i.id AND z.provenance_id = $3 "
            "WHERE i.id = $1::bigint "
            "ON CONFLICT (place, filter, provenance_id) WHERE NOT is_bad DO NOTHING RETURNING id",
            6, p, &res);
    if (!st && PQntuples(res) == 1) {
        *ref_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        return sk_db_commit(db);
    }
    PQclear(res);
    res = NULL;
    if (!st) {
        /* Either the place holds one already or the coadd lacks products. */
        const char *pp[3] = {place_key, o->filter, prov_id};
        st = sk_db_exec(db, "looking for the reference of the place",
                        "SELECT id FROM refs WHERE place = $1 AND filter = $2 AND provenance_id = $3 "
                        "AND NOT is_bad",
                        3, pp, &res);
        if (!st && PQntuples(res) == 1)
            *ref_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        else if (!st)
            st = sk_error(SK_EINPUT,
                          "coadd %s lacks extraction products (source list, PSF, background, WCS, "
                          "zero point) of provenance %s: run `extract %s` with this configuration",
                          cid, ch->coadd_extraction->id, cid);
        PQclear(res);
    }
    sk_db_rollback(db);
    return st;
}

static double clock_mjd(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return 40587.0 + ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / 86400.0;
}

/* The reference of the place, if the refset holds a good one. */
static int lookup(sk_db *db, const sk_refmake_opts *o, json_t **ref)
{
    int st = sk_refset_lookup(db, o->refset, &o->place, o->filter, ref);
    if (st == SK_ENOTFOUND) {
        sk_error_clear();
        *ref = NULL;
        return SK_OK;
    }
    return st;
}

/* Images of a selection as ids (sorted copy for the set hash) and JSON. */
static int selection_ids(const PGresult *rows, long long **ids, int *n)
{
    *n = PQntuples(rows);
    *ids = malloc(((size_t)*n + 1) * sizeof **ids);
    if (!*ids)
        return sk_error(SK_EIO, "out of memory");
    int c = PQfnumber(rows, "id");
    for (int r = 0; r < *n; r++)
        (*ids)[r] = strtoll(PQgetvalue(rows, r, c), NULL, 10);
    return SK_OK;
}

static json_t *selection_json(const PGresult *rows)
{
    json_t *arr = json_array();
    int cid = PQfnumber(rows, "id"), cpath = PQfnumber(rows, "filepath"),
        cmjd = PQfnumber(rows, "mjd"), cfwhm = PQfnumber(rows, "fwhm_estimate"),
        clim = PQfnumber(rows, "lim_mag_estimate");
    for (int r = 0; r < PQntuples(rows); r++) {
        double fwhm = sk_db_double(rows, r, cfwhm), lim = sk_db_double(rows, r, clim);
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:f, s:o, s:o}", "id",
                           (json_int_t)strtoll(PQgetvalue(rows, r, cid), NULL, 10), "filepath",
                           PQgetvalue(rows, r, cpath), "mjd", sk_db_double(rows, r, cmjd), "seeing",
                           isfinite(fwhm) ? json_real(fwhm) : json_null(), "lim_mag",
                           isfinite(lim) ? json_real(lim) : json_null()));
    }
    return arr;
}

/* Build the coadd of `ids` through the coadd pipeline, with its
 * extraction (a reference needs the coadd's products); check that it
 * carries the chain's coaddition provenance. */
static int build_coadd(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o,
                       const sk_ref_chain *ch, const long long *ids, int n, long long *coadd_id,
                       int *reused)
{
    *coadd_id = 0;
    char (*text)[24] = malloc((size_t)n * sizeof *text);
    const char **inputs = malloc((size_t)n * sizeof *inputs);
    if (!text || !inputs) {
        free(text);
        free(inputs);
        return sk_error(SK_EIO, "out of memory");
    }
    for (int k = 0; k < n; k++) {
        snprintf(text[k], sizeof text[k], "%lld", ids[k]);
        inputs[k] = text[k];
    }
    sk_coadd_request rq;
    memset(&rq, 0, sizeof rq);
    rq.config = cfg;
    rq.db = db;
    rq.inputs = inputs;
    rq.ninputs = n;
    rq.threads = o->threads > 0 ? o->threads : 1;
    rq.extract = 1;
    sk_coadd_made made;
    memset(&made, 0, sizeof made);
    int st = sk_coadd_make(&rq, &made);
    free(inputs);
    free(text);
    if (st)
        return st;
    if (strcmp(made.prov_id, ch->coaddition->id))
        return sk_error(SK_EIO,
                        "coadd %lld was made under coaddition provenance %s, not %s as this "
                        "configuration implies",
                        made.image_id, made.prov_id, ch->coaddition->id);
    *coadd_id = made.image_id;
    *reused = made.reused;
    return SK_OK;
}

/* Build (through the coadd pipeline) or find the coadd of `ids`. */
static int coadd_of(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o,
                    const sk_ref_chain *ch, const long long *ids, int n, long long *coadd_id,
                    int *built)
{
    *built = 0;
    char set_hash[65];
    int st = sk_db_input_set_hash(ids, n, set_hash);
    if (!st)
        st = existing_coadd(db, ch, set_hash, coadd_id);
    int complete = 0;
    if (!st && *coadd_id)
        st = has_products(db, *coadd_id, ch->coadd_extraction->id, &complete);
    if (st || complete)
        return st;
    /* absent, or its extraction is missing: the coadd pipeline builds it,
     * or reuses it and extracts it */
    int reused = 0;
    st = build_coadd(db, cfg, o, ch, ids, n, coadd_id, &reused);
    if (st)
        return sk_error_context("building the coadd of %d image%s", n, n == 1 ? "" : "s");
    *built = !reused;
    return SK_OK;
}

void sk_refmake_result_clear(sk_refmake_result *r)
{
    if (!r)
        return;
    json_decref(r->ref);
    json_decref(r->report);
    memset(r, 0, sizeof *r);
}

static json_t *chain_json(const sk_ref_chain *ch)
{
    json_t *refs = json_array();
    for (int i = 0; i < ch->nreferencing; i++)
        json_array_append_new(refs, json_string(ch->referencing[i]->id));
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "preprocessing", ch->preprocessing->id,
                     "extraction", ch->extraction->id, "coaddition", ch->coaddition->id,
                     "coadd_extraction", ch->coadd_extraction->id, "referencing", refs);
}

/* Try the refset's provenances in order for the place (the caller holds the
 * place lock, or writes nothing in a dry run). *ref_id: the reference made
 * or found (0 in a dry run). */
static int try_members(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o,
                       const sk_ref_chain *ch, const refset_state *s, const char *place_key,
                       double now_mjd, sk_refmake_result *out, json_t *plan, long long *ref_id)
{
    sbuf why = {0};
    int st = SK_OK, made = 0;
    *ref_id = 0;
    for (int i = 0; i < s->nmembers && !st && !made; i++) {
        const member *m = &s->members[i];
        criteria c;
        st = criteria_from_json(m->params, &c);
        PGresult *rows = NULL;
        if (!st)
            st = select_images(db, cfg, o, ch, &c, now_mjd, &rows);
        long n = st ? 0 : PQntuples(rows);
        json_t *step = NULL;
        if (!st && plan) {
            step = json_pack("{s:i, s:s, s:O, s:o, s:b}", "position", i, "provenance", m->id,
                             "criteria", m->params, "images", selection_json(rows), "enough",
                             n >= c.min_images);
            json_array_append_new(plan, step);
        }
        if (!st && n < c.min_images) {
            sb_printf(&why, "%scriteria %d (referencing provenance %s): ", why.len ? "\n  " : "", i,
                      m->id);
            st = explain_shortfall(db, o, ch, &c, now_mjd, n, &why);
            sk_info("refset '%s' criteria %d (%s): %ld image%s, %ld needed%s", o->refset, i, m->id,
                    n, n == 1 ? "" : "s", c.min_images,
                    i + 1 < s->nmembers ? "; trying the next criteria" : "");
        } else if (!st) {
            long long *ids = NULL;
            int nids = 0;
            st = selection_ids(rows, &ids, &nids);
            long long coadd_id = 0;
            if (!st && o->dry_run) {
                char set_hash[65];
                st = sk_db_input_set_hash(ids, nids, set_hash);
                if (!st)
                    st = existing_coadd(db, ch, set_hash, &coadd_id);
                if (!st)
                    json_object_set_new(step, "coadd_image_id",
                                        coadd_id ? json_integer(coadd_id) : json_null());
            } else if (!st) {
                sk_info("refset '%s' criteria %d (%s): %d images selected", o->refset, i, m->id,
                        nids);
                st = coadd_of(db, cfg, o, ch, ids, nids, &coadd_id, &out->coadd_built);
                if (!st)
                    st = save_reference(db, o, ch, place_key, coadd_id, m->id, ref_id);
                if (!st)
                    sk_info("reference %lld: coadd %lld (%s), referencing provenance %s", *ref_id,
                            coadd_id, out->coadd_built ? "built now" : "reused", m->id);
            }
            free(ids);
            made = 1;
        }
        PQclear(rows);
        criteria_clear(&c);
    }
    if (!st && !made)
        st = sk_error(SK_ENOTFOUND,
                      "refset '%s': no reference can be made for this place in filter %s: too few "
                      "images under every set of criteria:\n  %s",
                      o->refset, o->filter, sb_text(&why));
    free(why.s);
    return st;
}

static json_t *members_json(const refset_state *s)
{
    json_t *arr = json_array();
    for (int i = 0; i < s->nmembers; i++)
        json_array_append_new(arr, json_pack("{s:s, s:b, s:O}", "id", s->members[i].id, "appended",
                                             s->members[i].appended, "criteria",
                                             s->members[i].params));
    return arr;
}

/* The dry run: what exists, what would be appended and selected. */
static int dry_run(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o,
                   const sk_ref_chain *ch, const char *place_key, double now_mjd,
                   sk_refmake_result *out)
{
    refset_state s;
    memset(&s, 0, sizeof s);
    int st = ensure_refset(db, cfg, o, ch, &s, out);
    if (!st)
        st = lookup(db, o, &out->ref);
    json_t *plan = json_array();
    if (!st && !out->ref) {
        long long ref_id = 0;
        st = try_members(db, cfg, o, ch, &s, place_key, now_mjd, out, plan, &ref_id);
        if (st == SK_ENOTFOUND) { /* the report says why; a dry run does not fail */
            sk_warn("%s", sk_errmsg());
            sk_error_clear();
            st = SK_OK;
        }
    }
    if (!st)
        out->report = json_pack("{s:s, s:b, s:s, s:o, s:o, s:O, s:o}", "refset", o->refset, "exists",
                                s.exists, "upstream_hash", ch->upstream_hash, "provenances",
                                chain_json(ch), "members", members_json(&s), "reference",
                                out->ref ? out->ref : json_null(), "plan", plan);
    else
        json_decref(plan);
    refset_state_clear(&s);
    return st;
}

int sk_refmake(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o, sk_refmake_result *out)
{
    memset(out, 0, sizeof *out);
    if (!o->refset || !*o->refset)
        return sk_error(SK_EINPUT, "--refset: a refset name is required");
    if (!o->filter || !*o->filter)
        return sk_error(SK_EINPUT, "--filter: a filter is required");
    int st = sk_place_check(&o->place);
    if (st)
        return st;
    char *place_key = sk_place_key(&o->place);
    if (!place_key)
        return sk_errstatus();
    sk_ref_chain *ch = NULL;
    st = sk_ref_chain_make(cfg, o->instrument, &ch);
    double now_mjd = isfinite(o->now_mjd) ? o->now_mjd : clock_mjd();

    /* Fast path: the refset is as this configuration wants it and holds a
     * good reference for the place. */
    refset_state s;
    memset(&s, 0, sizeof s);
    char id[32];
    if (!st && !o->dry_run) {
        st = read_refset(db, o->refset, 0, id, &s);
        int ready = !st && s.exists && !strcmp(s.stored_hash, ch->upstream_hash);
        for (int i = 0; ready && i < ch->nreferencing; i++)
            ready = has_member(&s, ch->referencing[i]->id);
        if (ready && !(st = lookup(db, o, &out->ref)) && out->ref)
            out->existed = 1;
        refset_state_clear(&s);
    }
    if (!st && o->dry_run)
        st = dry_run(db, cfg, o, ch, place_key, now_mjd, out);
    if (st || out->existed || o->dry_run) {
        sk_ref_chain_free(ch);
        free(place_key);
        return st;
    }

    st = ensure_refset(db, cfg, o, ch, &s, out);
    /* Under the place lock, on a connection of its own so that the coadd
     * pipeline may commit on `db` while the lock is held. */
    sk_db *lk = NULL;
    if (!st)
        st = sk_db_connect_raw(cfg, &lk);
    if (!st)
        st = sk_db_begin(lk);
    char lock[700];
    snprintf(lock, sizeof lock, "refmake|%s|%s", o->filter, place_key);
    if (!st)
        st = sk_db_lock(lk, lock);
    if (!st)
        st = lookup(db, o, &out->ref);
    if (!st && out->ref) {
        out->existed = 1;
        out->waited = !out->refset_created && !out->appended;
        sk_info("reference %lld exists %s",
                (long long)json_integer_value(json_object_get(out->ref, "id")),
                out->waited ? "(made meanwhile by another process)"
                            : "(it serves the same criteria in another refset)");
    }
    if (!st && !out->ref) {
        long long ref_id = 0;
        st = try_members(db, cfg, o, ch, &s, place_key, now_mjd, out, NULL, &ref_id);
        if (!st)
            st = sk_refset_ref(db, o->refset, ref_id, &out->ref);
    }
    if (lk && lk->in_transaction)
        sk_db_rollback(lk);
    sk_db_close(lk);
    refset_state_clear(&s);
    sk_ref_chain_free(ch);
    free(place_key);
    return st;
}
