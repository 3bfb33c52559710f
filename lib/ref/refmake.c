/* refmake.c: making references: the settings read once, the provenance chain from the configuration, the refset rules, then the steps select inputs, build or reuse the coadd, claim the place and register the reference (see skystack/ref.h, refmake(1)). */
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
#include "skystack/lifecycle.h"
#include "skystack/log.h"
#include "skystack/query.h"
#include "skystack/ref.h"
#include "skystack/storage.h"
#include "skystack/hash.h"
#include "core/path_priv.h"
#include "db/image_rows_priv.h"
#include "db/pipeline_rows_priv.h"
#include "db/ref_rows_priv.h"
#include "refchain_priv.h"
#include "db/db_internal.h"
#include "db/query_internal.h"
#include "ref_internal.h"

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

/* ---- the settings of one refmake ----------------------------------------- */

/* Everything refmake reads from its options and the configuration, read
 * and checked once at its start; the steps below take it. */
typedef struct refmake_settings {
    const sk_refmake_opts *opts;
    const sk_config *cfg;          /* for the coadd pipeline and the lock connection */
    sk_ref_chain *chain;           /* the provenances the configuration implies */
    char *place_key;               /* refs.place of the place (sk_place_key) */
    double now_mjd;                /* end of date_range windows */
    int allow_append;              /* referencing.allow_append and not --no-append */
    const char *description;       /* referencing.description of a new refset, may be NULL */
    double quality_fwhm_factor;    /* query.quality_fwhm_factor */
} refmake_settings;

static void settings_clear(refmake_settings *rs)
{
    sk_ref_chain_free(rs->chain);
    free(rs->place_key);
    memset(rs, 0, sizeof *rs);
}

static double clock_mjd(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return 40587.0 + ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / 86400.0;
}

/* SK_EINPUT naming `key` unless it is absent, null or of JSON type `type`. */
static int check_key_type(const sk_config *cfg, const char *key, json_type type, const char *expected)
{
    json_t *v = sk_config_get(cfg, key);
    if (!v || json_is_null(v) || json_typeof(v) == type ||
        (type == JSON_REAL && json_is_integer(v)) || (type == JSON_TRUE && json_is_boolean(v)))
        return SK_OK;
    return sk_error(SK_EINPUT, "%s: expected %s (see skystack.conf(5))", key, expected);
}

/* Read and check the options and the configuration once. */
static int settings_read(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o, refmake_settings *rs)
{
    memset(rs, 0, sizeof *rs);
    rs->opts = o;
    rs->cfg = cfg;
    if (!o->refset || !*o->refset)
        return sk_error(SK_EINPUT, "--refset: a refset name is required");
    if (!o->filter || !*o->filter)
        return sk_error(SK_EINPUT, "--filter: a filter is required");
    int st = sk_place_check(&o->place);
    if (st)
        return st;
    if (!(rs->place_key = sk_place_key(&o->place)))
        return sk_errstatus();
    if ((st = sk_ref_chain_make_db(cfg, o->instrument, db, &rs->chain)))
        return st;
    if ((st = check_key_type(cfg, "referencing.allow_append", JSON_TRUE, "true or false")) ||
        (st = check_key_type(cfg, "referencing.description", JSON_STRING, "a text or null")) ||
        (st = check_key_type(cfg, "query.quality_fwhm_factor", JSON_REAL, "a number")))
        return st;
    rs->allow_append = !o->no_append && sk_config_bool(cfg, "referencing.allow_append", 1);
    rs->description = sk_config_string(cfg, "referencing.description", NULL);
    rs->quality_fwhm_factor = sk_config_double(cfg, "query.quality_fwhm_factor", 3.0);
    rs->now_mjd = isfinite(o->now_mjd) ? o->now_mjd : clock_mjd();
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

/* Append to msg how the stored parameters and code version differ from
 * ours; *same = 1 when they do not (then an upstream differs). */
static void diff_params_and_code(const char *stored_id, const char *code, const char *params_json,
                                 const sk_prov *ours, const char *label, sbuf *msg, int *same)
{
    json_t *params = json_loads(params_json, 0, NULL);
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
    *same = !n && !strcmp(code, ours_mm);
}

/* Compare the stored provenance `stored_id` with `ours`, following the
 * upstreams by process; append the first differences found to msg. */
static int diff_prov(sk_db *db, const char *stored_id, const sk_prov *ours, const char *label,
                     sbuf *msg, int depth)
{
    if (!strcmp(stored_id, ours->id) || depth > 6)
        return SK_OK;
    int found = 0, same = 0;
    char *code = NULL, *params = NULL;
    int st = sk_prov_row_get(db, stored_id, &found, &code, &params);
    if (!st && !found)
        sb_printf(msg, " %s provenance %s (refset) is not in the database;", label, stored_id);
    if (!st && found)
        diff_params_and_code(stored_id, code, params, ours, label, msg, &same);
    free(code);
    free(params);
    if (st || !same)
        return st;
    /* Same parameters and code: an upstream differs. */
    sk_prov_link *ups = NULL;
    int nups = 0;
    st = sk_prov_row_upstreams(db, stored_id, &ups, &nups);
    for (int r = 0; r < nups && !st; r++)
        for (int k = 0; k < ours->nupstreams; k++)
            if (!strcmp(ours->upstreams[k]->process, ups[r].process)) {
                char sub[64];
                snprintf(sub, sizeof sub, "%s (upstream of %s)", ours->upstreams[k]->process, label);
                st = diff_prov(db, ups[r].id, ours->upstreams[k], sub, msg, depth + 1);
            }
    sk_prov_links_free(ups, nups);
    return st;
}

/* SK_EINPUT explaining which provenance of the refset's chain differs. */
static int upstream_mismatch(sk_db *db, const char *name, const char *stored_hash,
                             const sk_ref_chain *ch)
{
    sbuf msg = {0};
    sb_printf(&msg, "refset '%s' was made with upstream_hash %s but this configuration gives %s:",
              name, stored_hash, ch->upstream_hash);
    sk_prov_link *chain = NULL;
    int n = 0;
    int st = sk_refset_row_chain(db, name, &chain, &n);
    for (int r = 0; r < n && !st; r++) {
        if (!strcmp(chain[r].process, "coaddition"))
            st = diff_prov(db, chain[r].id, ch->coaddition, "coaddition", &msg, 0);
        else
            st = diff_prov(db, chain[r].id, ch->coadd_extraction, "coadd extraction", &msg, 0);
    }
    if (!st && n == 0)
        sb_printf(&msg, " the refset holds no provenance to compare with.");
    sk_prov_links_free(chain, n);
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
    long long id;
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
static int read_refset(sk_db *db, const char *name, int for_update, refset_state *s)
{
    sk_refset_row row;
    int st = sk_refset_row_get(db, name, for_update, &row, &s->exists);
    if (!st && s->exists) {
        s->id = row.id;
        snprintf(s->stored_hash, sizeof s->stored_hash, "%s", row.upstream_hash ? row.upstream_hash : "");
    }
    sk_refset_row_clear(&row);
    if (st || !s->exists)
        return st;
    sk_refset_member_row *rows = NULL;
    int n = 0;
    if ((st = sk_refset_member_rows(db, s->id, &rows, &n)))
        return st;
    for (int i = 0; i < s->nmembers; i++)
        json_decref(s->members[i].params);
    free(s->members);
    s->nmembers = 0;
    s->members = calloc((size_t)n + 1, sizeof *s->members);
    if (!s->members)
        st = sk_error(SK_EIO, "out of memory");
    for (int r = 0; !st && r < n; r++) {
        member *m = &s->members[s->nmembers++];
        snprintf(m->id, sizeof m->id, "%s", rows[r].prov_id ? rows[r].prov_id : "");
        m->params = rows[r].parameters_json ? json_loads(rows[r].parameters_json, 0, NULL) : NULL;
        if (!m->params)
            m->params = json_object();
    }
    sk_refset_member_rows_free(rows, n);
    return st;
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

/* The dry run's view of the refset: read it and add (in memory) what
 * would be appended. */
static int plan_refset(sk_db *db, const refmake_settings *rs, refset_state *s)
{
    const sk_refmake_opts *o = rs->opts;
    const sk_ref_chain *ch = rs->chain;
    int st = read_refset(db, o->refset, 0, s);
    if (!st && s->exists && s->stored_hash[0] && strcmp(s->stored_hash, ch->upstream_hash))
        st = upstream_mismatch(db, o->refset, s->stored_hash, ch);
    for (int i = 0; !st && i < ch->nreferencing; i++)
        if (!has_member(s, ch->referencing[i]->id)) {
            if (s->exists && s->nmembers > 0 && !s->members[0].appended && !rs->allow_append)
                st = append_refused(o->refset, ch, s, o->no_append);
            else
                st = add_member(s, ch->referencing[i]);
        }
    return st;
}

/* Inside the refset's transaction: create it when absent, check or set
 * its chain. */
static int create_or_check_refset(sk_db *db, const refmake_settings *rs, refset_state *s,
                                  sk_refmake_result *res)
{
    const char *name = rs->opts->refset;
    const sk_ref_chain *ch = rs->chain;
    int st = read_refset(db, name, 1, s);
    if (!st && !s->exists) {
        int created = 0;
        st = sk_refset_row_insert(db, name, rs->description, ch->upstream_hash, &created);
        if (!st)
            st = read_refset(db, name, 1, s);
        if (!st && !s->exists)
            st = sk_error(SK_EIO, "refset '%s': created but not found", name);
        res->refset_created = !st;
    }
    if (!st && s->stored_hash[0] && strcmp(s->stored_hash, ch->upstream_hash))
        st = upstream_mismatch(db, name, s->stored_hash, ch);
    if (!st && !s->stored_hash[0]) /* made by `refset create`: its first refmake fixes the chain */
        st = sk_refset_row_set_upstream_hash(db, s->id, ch->upstream_hash);
    return st;
}

/* Inside the refset's transaction: append the referencing provenances the
 * refset lacks, in configuration order (all of them to a new or empty
 * refset; else only when appending is allowed). */
static int append_members(sk_db *db, const refmake_settings *rs, refset_state *s, int fresh,
                          sk_refmake_result *res)
{
    const sk_ref_chain *ch = rs->chain;
    int st = SK_OK;
    for (int i = 0; !st && i < ch->nreferencing; i++) {
        const sk_prov *p = ch->referencing[i];
        if (has_member(s, p->id))
            continue;
        if (!fresh && !rs->allow_append)
            return append_refused(rs->opts->refset, ch, s, rs->opts->no_append);
        st = sk_db_save_prov(db, p);
        if (!st)
            st = sk_refset_member_append(db, s->id, p->id);
        if (!st)
            st = add_member(s, p);
        if (!st && !fresh) {
            res->appended++;
            sk_info("refset '%s': appended referencing provenance %s", rs->opts->refset, p->id);
        }
    }
    return st;
}

/* Create the refset or check it against the chain, appending provenances
 * it lacks, under the refset's lock. On return s->members is the
 * refset's order. */
static int ensure_refset(sk_db *db, const refmake_settings *rs, refset_state *s,
                         sk_refmake_result *res)
{
    char lock[600];
    snprintf(lock, sizeof lock, "refset|%s", rs->opts->refset);
    int st = sk_db_begin(db);
    if (st)
        return st;
    st = sk_db_lock(db, lock);
    if (!st)
        st = create_or_check_refset(db, rs, s, res);
    int fresh = res->refset_created || s->nmembers == 0;
    if (!st)
        st = append_members(db, rs, s, fresh, res);
    if (st) {
        sk_db_rollback(db);
        return st;
    }
    st = sk_db_commit(db);
    if (!st && res->refset_created)
        sk_info("refset '%s' created (upstream_hash %s)", rs->opts->refset, rs->chain->upstream_hash);
    res->refset_created = res->refset_created && !st;
    return st;
}

/* ---- step: select the input images ---------------------------------------- */

/* Images at the place in the filter, science, with extraction products of
 * the chain's extraction provenance. */
static sk_query *base_query(const refmake_settings *rs, int with_products, int *st)
{
    const sk_refmake_opts *o = rs->opts;
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
        *st = sk_query_text(q, SK_Q_PROVENANCE, rs->chain->preprocessing->id);
        if (!*st)
            *st = sk_query_with_products(q, rs->chain->extraction->id);
    }
    return q;
}

/* The criteria (all of them, or only number `only` of the list below). */
enum { K_TIME, K_SEEING, K_LIMMAG, K_AIRMASS, K_BKG, K_EXPTIME, K_INSTRUMENTS, K_N };
static const char *const criterion_names[K_N] = {
    "time range", "seeing", "limiting magnitude", "airmass", "background", "exposure time",
    "instruments",
};

static int add_criteria(sk_query *q, const ref_criteria *c, double now_mjd, int only, int *used)
{
    int st = SK_OK;
    double lo, hi;
    ref_criteria_time_window(c, now_mjd, &lo, &hi);
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
    long long count = 0;
    int st = sk_query_count(q, db, &count);
    *n = (long)count;
    return st;
}

/* The query of criteria set `c`, in its order. */
static sk_query *criteria_query(const refmake_settings *rs, const ref_criteria *c, int *st)
{
    int used[K_N] = {0};
    sk_query *q = base_query(rs, 1, st);
    if (!*st)
        *st = add_criteria(q, c, rs->now_mjd, -1, used);
    if (!*st)
        *st = sk_query_order(q, c->order, rs->quality_fwhm_factor);
    return q;
}

/* The images criteria set `c` selects, in its order (*rows: rows of
 * images). With min_overlap, every image must cover that fraction of the
 * bounding box of the first (best) image. */
static int select_images(sk_db *db, const refmake_settings *rs, const ref_criteria *c,
                         sk_db_rows **rows)
{
    *rows = NULL;
    int st;
    sk_query *q = criteria_query(rs, c, &st);
    int overlap = isfinite(c->min_overlap) && c->min_overlap > 0;
    if (!st && overlap) {
        sk_query_limit(q, 1);
        sk_db_rows *first = NULL;
        st = sk_query_rows(q, db, &first);
        if (!st && sk_db_rows_count(first) == 1) {
            double box[4] = {sk_db_rows_double(first, 0, sk_db_rows_col(first, "minra")),
                             sk_db_rows_double(first, 0, sk_db_rows_col(first, "maxra")),
                             sk_db_rows_double(first, 0, sk_db_rows_col(first, "mindec")),
                             sk_db_rows_double(first, 0, sk_db_rows_col(first, "maxdec"))};
            sk_query_free(q);
            q = criteria_query(rs, c, &st);
            if (!st)
                st = sk_query_box(q, box[0], box[1], box[2], box[3], c->min_overlap);
        }
        sk_db_rows_free(first);
    }
    if (!st && c->max_images > 0)
        st = sk_query_limit(q, c->max_images);
    if (!st)
        st = sk_query_rows(q, db, rows);
    sk_query_free(q);
    return st;
}

/* Why criteria set `c` found too few images: counts per criterion. */
static int explain_shortfall(sk_db *db, const refmake_settings *rs, const ref_criteria *c,
                             long nselected, sbuf *msg)
{
    long at_place = 0, with_products = 0;
    int st;
    sk_query *q = base_query(rs, 0, &st);
    if (!st)
        st = count_of(db, q, &at_place);
    sk_query_free(q);
    q = st ? NULL : base_query(rs, 1, &st);
    if (!st)
        st = count_of(db, q, &with_products);
    sk_query_free(q);
    if (st)
        return st;
    sb_printf(msg, "%ld science image%s at the place in filter %s, %ld with extraction products of "
                   "provenance %s",
              at_place, at_place == 1 ? "" : "s", rs->opts->filter, with_products,
              rs->chain->extraction->id);
    /* each criterion alone, among the images with products (or, when
     * none has them, among those at the place) */
    int among_products = with_products > 0, first = 1;
    for (int k = 0; k < K_N && !st; k++) {
        int used[K_N] = {0};
        q = base_query(rs, among_products, &st);
        if (!st)
            st = add_criteria(q, c, rs->now_mjd, k, used);
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

/* Images of a selection as ids. */
static int selection_ids(const sk_db_rows *rows, long long **ids, int *n)
{
    *n = sk_db_rows_count(rows);
    *ids = malloc(((size_t)*n + 1) * sizeof **ids);
    if (!*ids)
        return sk_error(SK_EIO, "out of memory");
    int c = sk_db_rows_col(rows, "id");
    for (int r = 0; r < *n; r++)
        (*ids)[r] = sk_db_rows_ll(rows, r, c);
    return SK_OK;
}

static json_t *selection_json(const sk_db_rows *rows)
{
    json_t *arr = json_array();
    int cid = sk_db_rows_col(rows, "id"), cpath = sk_db_rows_col(rows, "filepath"),
        cmjd = sk_db_rows_col(rows, "mjd"), cfwhm = sk_db_rows_col(rows, "fwhm_estimate"),
        clim = sk_db_rows_col(rows, "lim_mag_estimate");
    for (int r = 0; r < sk_db_rows_count(rows); r++) {
        double fwhm = sk_db_rows_double(rows, r, cfwhm), lim = sk_db_rows_double(rows, r, clim);
        const char *path = sk_db_rows_text(rows, r, cpath);
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:f, s:o, s:o}", "id",
                           (json_int_t)sk_db_rows_ll(rows, r, cid), "filepath", path ? path : "",
                           "mjd", sk_db_rows_double(rows, r, cmjd), "seeing",
                           isfinite(fwhm) ? json_real(fwhm) : json_null(), "lim_mag",
                           isfinite(lim) ? json_real(lim) : json_null()));
    }
    return arr;
}

/* ---- step: the coadd ---------------------------------------------------------- */

/* Build the coadd of `ids` through the coadd pipeline, with its
 * extraction (a reference needs the coadd's products); check that it
 * carries the chain's coaddition provenance. */
static int build_coadd(sk_db *db, const refmake_settings *rs, const long long *ids, int n,
                       long long *coadd_id, int *reused)
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
    rq.config = rs->cfg;
    rq.db = db;
    rq.inputs = inputs;
    rq.ninputs = n;
    rq.threads = rs->opts->threads > 0 ? rs->opts->threads : 1;
    rq.extract = 1;
    sk_coadd_made made;
    memset(&made, 0, sizeof made);
    int st = sk_coadd_make(&rq, &made);
    free(inputs);
    free(text);
    if (st)
        return st;
    if (strcmp(made.prov_id, rs->chain->coaddition->id))
        return sk_error(SK_EIO,
                        "coadd %lld was made under coaddition provenance %s, not %s as this "
                        "configuration implies",
                        made.image_id, made.prov_id, rs->chain->coaddition->id);
    *coadd_id = made.image_id;
    *reused = made.reused;
    return SK_OK;
}

/* The coadd of the chain's coaddition provenance over `ids`, if any. */
static int existing_coadd(sk_db *db, const refmake_settings *rs, const long long *ids, int n,
                          long long *coadd_id)
{
    char set_hash[65];
    int st = sk_db_input_set_hash(ids, n, set_hash);
    if (!st)
        st = sk_image_find_coadd(db, rs->chain->coaddition->id, set_hash, coadd_id);
    return st;
}

/* Build (through the coadd pipeline) or find the coadd of `ids`. */
static int coadd_of(sk_db *db, const refmake_settings *rs, const char *ref_prov_id,
                    const long long *ids, int n, long long *coadd_id, int *built)
{
    *built = 0;
    int st = existing_coadd(db, rs, ids, n, coadd_id);
    char *why = NULL;
    if (!st && *coadd_id)
        st = sk_ref_row_coadd_blocked(db, *coadd_id, rs->chain->coadd_extraction->id, rs->place_key,
                                      rs->opts->filter, ref_prov_id, &why);
    if (!st && why) {
        st = sk_error(SK_ENOTFOUND,
                      "refset '%s': the images selected for this place in filter %s make the same "
                      "coadd again, and %s; mark the bad input images or extractions (skybad mark "
                      "image ID) or change the criteria: nothing was written",
                      rs->opts->refset, rs->opts->filter, why);
        free(why);
        return st;
    }
    int complete = 0;
    if (!st && *coadd_id)
        st = sk_image_has_products(db, *coadd_id, rs->chain->coadd_extraction->id, &complete);
    if (st || complete)
        return st;
    /* absent, or its extraction is missing: the coadd pipeline builds it,
     * or reuses it and extracts it */
    int reused = 0;
    st = build_coadd(db, rs, ids, n, coadd_id, &reused);
    if (st)
        return sk_error_context("building the coadd of %d image%s", n, n == 1 ? "" : "s");
    *built = !reused;
    return SK_OK;
}

/* ---- step: register the reference ------------------------------------------- */

/* Save the reference of coadd `coadd_id` under `prov_id` for the place
 * (or find the good one that exists for that coadd and provenance, or
 * for the place). *ref_id receives its id. */
static int register_reference(sk_db *db, const refmake_settings *rs, long long coadd_id,
                              const char *prov_id, long long *ref_id)
{
    const sk_refmake_opts *o = rs->opts;
    char lock[128];
    snprintf(lock, sizeof lock, "reference|%lld|%s", coadd_id, prov_id);
    int st = sk_db_begin(db);
    if (!st)
        st = sk_db_lock(db, lock);
    if (!st)
        st = sk_ref_row_of_coadd(db, coadd_id, prov_id, ref_id);
    if (!st && *ref_id) {
        sk_db_rollback(db);
        return SK_OK;
    }
    sk_ref_new r = {
        .image_id = coadd_id,
        .prov_id = prov_id,
        .extraction_prov_id = rs->chain->coadd_extraction->id,
        .place_key = rs->place_key,
        .filter = o->filter,
        .target = o->place.has_position ? NULL : o->place.target,
        .section = o->place.has_position ? NULL : o->place.section,
    };
    long replaced = 0;
    if (!st)
        st = sk_ref_row_insert(db, &r, ref_id, &replaced);
    if (!st && *ref_id)
        sk_db_test_point("ref-tx");
    if (!st && *ref_id && !(st = sk_db_commit(db)) && replaced)
        sk_info("reference %lld replaces %ld reference%s of the place (`refset chain %lld` shows "
                "the chain)", *ref_id, replaced, replaced == 1 ? "" : "s", *ref_id);
    if (!st && *ref_id)
        return SK_OK;
    /* Either the place holds one already or the coadd lacks products. */
    if (!st)
        st = sk_ref_row_of_place(db, rs->place_key, o->filter, prov_id, ref_id);
    if (!st && !*ref_id)
        st = sk_error(SK_EINPUT,
                      "coadd %lld lacks extraction products (source list, PSF, background, WCS, "
                      "zero point) of provenance %s: run `extract %lld` with this configuration",
                      coadd_id, rs->chain->coadd_extraction->id, coadd_id);
    sk_db_rollback(db);
    return st;
}

/* ---- the pipeline ------------------------------------------------------------ */

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

/* With enough images selected by member `i`: in a dry run note the coadd
 * that exists for them, else build or find the coadd and register the
 * reference. */
static int make_from_selection(sk_db *db, const refmake_settings *rs, int i, const member *m,
                               const sk_db_rows *rows, json_t *step, sk_refmake_result *out,
                               long long *ref_id)
{
    long long *ids = NULL;
    int nids = 0;
    int st = selection_ids(rows, &ids, &nids);
    long long coadd_id = 0;
    if (!st && rs->opts->dry_run) {
        st = existing_coadd(db, rs, ids, nids, &coadd_id);
        if (!st)
            json_object_set_new(step, "coadd_image_id",
                                coadd_id ? json_integer(coadd_id) : json_null());
    } else if (!st) {
        sk_info("refset '%s' criteria %d (%s): %d images selected", rs->opts->refset, i, m->id,
                nids);
        st = coadd_of(db, rs, m->id, ids, nids, &coadd_id, &out->coadd_built);
        if (!st)
            st = register_reference(db, rs, coadd_id, m->id, ref_id);
        if (!st)
            sk_info("reference %lld: coadd %lld (%s), referencing provenance %s", *ref_id,
                    coadd_id, out->coadd_built ? "built now" : "reused", m->id);
    }
    free(ids);
    return st;
}

/* Try member `i`: select its images; *made = 1 when they were enough
 * (and the reference was made, outside a dry run); else say why in `why`. */
static int try_member(sk_db *db, const refmake_settings *rs, const refset_state *s, int i,
                      sk_refmake_result *out, json_t *plan, sbuf *why, long long *ref_id,
                      int *made)
{
    const member *m = &s->members[i];
    ref_criteria c;
    int st = ref_criteria_from_json(m->params, &c);
    sk_db_rows *rows = NULL;
    if (!st)
        st = select_images(db, rs, &c, &rows);
    long n = st ? 0 : sk_db_rows_count(rows);
    json_t *step = NULL;
    if (!st && plan) {
        step = json_pack("{s:i, s:s, s:O, s:o, s:b}", "position", i, "provenance", m->id,
                         "criteria", m->params, "images", selection_json(rows), "enough",
                         n >= c.min_images);
        json_array_append_new(plan, step);
    }
    if (!st && n < c.min_images) {
        sb_printf(why, "%scriteria %d (referencing provenance %s): ", why->len ? "\n  " : "", i,
                  m->id);
        st = explain_shortfall(db, rs, &c, n, why);
        sk_info("refset '%s' criteria %d (%s): %ld image%s, %ld needed%s", rs->opts->refset, i,
                m->id, n, n == 1 ? "" : "s", c.min_images,
                i + 1 < s->nmembers ? "; trying the next criteria" : "");
    } else if (!st) {
        st = make_from_selection(db, rs, i, m, rows, step, out, ref_id);
        *made = 1;
    }
    sk_db_rows_free(rows);
    ref_criteria_clear(&c);
    return st;
}

/* Try the refset's provenances in order for the place (the caller holds the
 * place lock, or writes nothing in a dry run). *ref_id: the reference made
 * or found (0 in a dry run). */
static int try_members(sk_db *db, const refmake_settings *rs, const refset_state *s,
                       sk_refmake_result *out, json_t *plan, long long *ref_id)
{
    sbuf why = {0};
    int st = SK_OK, made = 0;
    *ref_id = 0;
    for (int i = 0; i < s->nmembers && !st && !made; i++)
        st = try_member(db, rs, s, i, out, plan, &why, ref_id, &made);
    if (!st && !made)
        st = sk_error(SK_ENOTFOUND,
                      "refset '%s': no reference can be made for this place in filter %s: too few "
                      "images under every set of criteria:\n  %s",
                      rs->opts->refset, rs->opts->filter, sb_text(&why));
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
static int dry_run(sk_db *db, const refmake_settings *rs, sk_refmake_result *out)
{
    const sk_refmake_opts *o = rs->opts;
    refset_state s;
    memset(&s, 0, sizeof s);
    int st = plan_refset(db, rs, &s);
    if (!st)
        st = lookup(db, o, &out->ref);
    json_t *plan = json_array();
    if (!st && !out->ref) {
        long long ref_id = 0;
        st = try_members(db, rs, &s, out, plan, &ref_id);
        if (st == SK_ENOTFOUND) { /* the report says why; a dry run does not fail */
            sk_warn("%s", sk_errmsg());
            sk_error_clear();
            st = SK_OK;
        }
    }
    if (!st)
        out->report = json_pack("{s:s, s:b, s:s, s:o, s:o, s:O, s:o}", "refset", o->refset, "exists",
                                s.exists, "upstream_hash", rs->chain->upstream_hash, "provenances",
                                chain_json(rs->chain), "members", members_json(&s), "reference",
                                out->ref ? out->ref : json_null(), "plan", plan);
    else
        json_decref(plan);
    refset_state_clear(&s);
    return st;
}

/* Fast path: the refset is as this configuration wants it and holds a
 * good reference for the place (out->existed). */
static int find_ready(sk_db *db, const refmake_settings *rs, sk_refmake_result *out)
{
    refset_state s;
    memset(&s, 0, sizeof s);
    int st = read_refset(db, rs->opts->refset, 0, &s);
    int ready = !st && s.exists && !strcmp(s.stored_hash, rs->chain->upstream_hash);
    for (int i = 0; ready && i < rs->chain->nreferencing; i++)
        ready = has_member(&s, rs->chain->referencing[i]->id);
    if (ready && !(st = lookup(db, rs->opts, &out->ref)) && out->ref)
        out->existed = 1;
    refset_state_clear(&s);
    return st;
}

/* 1 when the file `rel` (relative to `root`) is there (with its
 * sidecar when `side`) and, when `md5` is given, has that md5. */
static int file_intact(const char *root, const char *rel, int side, const char *md5)
{
    char path[8300], have[33];
    if (sk_storage_resolve(root, rel, path, sizeof path - 8) != SK_OK || !sk_path_is_file(path))
        return 0;
    size_t n = strlen(path);
    snprintf(path + n, 8, ".json");
    int ok = !side || sk_path_is_file(path);
    path[n] = '\0';
    if (ok && md5 && *md5)
        ok = sk_md5_file(path, have) == SK_OK && !strcmp(have, md5);
    return ok;
}

/* A reference that exists counts as made only while its coadd's file
 * (with its row's md5) and the files of the coadd's extraction are there:
 * else the coadd pipeline makes them anew over the coadd's inputs, under
 * the same ids. */
static int ensure_coadd_files(sk_db *db, const refmake_settings *rs, const json_t *ref)
{
    long long coadd_id = (long long)json_integer_value(json_object_get(ref, "image_id"));
    char root[4096], idt[32];
    snprintf(idt, sizeof idt, "%lld", coadd_id);
    sk_registered_image row;
    sk_registered_file f[4];
    int n = 0;
    int st = sk_storage_root(rs->cfg, root, sizeof root);
    st = st ? st : sk_db_find_image(db, root, idt, &row);
    st = st ? st : sk_db_extraction_files(db, coadd_id, rs->chain->coadd_extraction->id, f, &n);
    int intact = !st && file_intact(root, row.filepath, 1, row.md5);
    for (int i = 0; intact && i < n; i++)
        intact = file_intact(root, f[i].relpath, 1, NULL);
    sk_error_clear();
    if (st || intact)
        return st;
    sk_warn("reference of coadd %lld: a file of the coadd or of its extraction is missing or damaged: "
            "made anew under the same ids", coadd_id);
    long long *ids = NULL, made = 0;
    int nids = 0, reused = 0;
    st = sk_db_coadd_inputs(db, coadd_id, &ids, &nids);
    st = st ? st : build_coadd(db, rs, ids, nids, &made, &reused);
    free(ids);
    if (!st && made != coadd_id)
        st = sk_error(SK_EIO, "coadd %lld: made anew as coadd %lld", coadd_id, made);
    return st ? sk_error_context("reference of coadd %lld", coadd_id) : SK_OK;
}

/* Claim the place: this worker's claim on the place and filter (a
 * session advisory lock, no transaction), so that concurrent refmakes on
 * any machine wait and a dead one's claim ends with its connection; then
 * the reference another process made while this one waited, if any. */
static int claim_place(sk_db *db, const refmake_settings *rs, sk_claim **claim,
                       sk_refmake_result *out)
{
    char lock[700];
    snprintf(lock, sizeof lock, "refmake|%s|%s", rs->opts->filter, rs->place_key);
    int st = sk_claim_take(db, lock, NULL, 0, claim);
    if (!st)
        sk_db_test_point("refmake-claimed");
    if (!st)
        st = lookup(db, rs->opts, &out->ref);
    if (!st && out->ref) {
        out->existed = 1;
        out->waited = !out->refset_created && !out->appended;
        sk_info("reference %lld exists %s",
                (long long)json_integer_value(json_object_get(out->ref, "id")),
                out->waited ? "(made meanwhile by another process)"
                            : "(it serves the same criteria in another refset)");
    }
    return st;
}

/* Make the reference: the refset as the configuration wants it, the place
 * claimed, the refset's provenances tried in order. */
static int make_reference(sk_db *db, const refmake_settings *rs, sk_refmake_result *out)
{
    refset_state s;
    memset(&s, 0, sizeof s);
    sk_claim *claim = NULL;
    int st = ensure_refset(db, rs, &s, out);
    if (!st)
        st = claim_place(db, rs, &claim, out);
    if (!st && !out->ref) {
        long long ref_id = 0;
        st = try_members(db, rs, &s, out, NULL, &ref_id);
        if (!st)
            st = sk_refset_ref(db, rs->opts->refset, ref_id, &out->ref);
    }
    if (sk_claim_release(db, claim) && !st)
        st = sk_errstatus();
    refset_state_clear(&s);
    return st;
}

int sk_refmake(sk_db *db, const sk_config *cfg, const sk_refmake_opts *o, sk_refmake_result *out)
{
    memset(out, 0, sizeof *out);
    refmake_settings rs;
    int st = settings_read(db, cfg, o, &rs);
    if (!st && o->dry_run)
        st = dry_run(db, &rs, out);
    else if (!st)
        st = find_ready(db, &rs, out);
    if (!st && !o->dry_run && !out->existed)
        st = make_reference(db, &rs, out);
    if (!st && !o->dry_run && out->existed && out->ref)
        st = ensure_coadd_files(db, &rs, out->ref);
    settings_clear(&rs);
    return st;
}
