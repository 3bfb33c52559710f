/* image_query.c: the image query builder of imquery: filters to parameterised SQL over the images table (see skystack/query.h). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/query.h"
#include "db_priv.h"
#include "query_internal.h"

typedef struct qparam {
    char *value;        /* text form; never NULL */
    const char *type;   /* SQL type of the parameter */
} qparam;

struct sk_query {
    char **conds;       /* conditions, parameters numbered $1.. in order */
    int nconds, capconds;
    qparam *params;
    int nparams, capparams;
    int radius_param;   /* $n of the largest image radius (0: no place filter) */
    int include_bad;
    int order;
    double quality_factor;
    long limit;         /* 0: none */
    /* the last built statement's full parameter list */
    const char **built;
    int nbuilt;
    char extra_text[2][40]; /* text of the order/limit parameters */
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return d;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

sk_query *sk_query_new(void)
{
    sk_query *q = calloc(1, sizeof *q);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    q->quality_factor = 3.0;
    return q;
}

void sk_query_free(sk_query *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->nconds; i++)
        free(q->conds[i]);
    free(q->conds);
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i].value);
    free(q->params);
    free(q->built);
    free(q);
}

/* Add a parameter; returns its number ($n). */
static int add_param(sk_query *q, const char *value, const char *type)
{
    if (q->nparams == q->capparams) {
        q->capparams = q->capparams ? 2 * q->capparams : 16;
        q->params = xrealloc(q->params, (size_t)q->capparams * sizeof *q->params);
    }
    q->params[q->nparams].value = xstrdup(value);
    q->params[q->nparams].type = type;
    return ++q->nparams;
}

static int add_double(sk_query *q, double v)
{
    char text[40];
    snprintf(text, sizeof text, "%.17g", v);
    return add_param(q, text, "double precision");
}

static void add_cond(sk_query *q, char *cond)
{
    if (q->nconds == q->capconds) {
        q->capconds = q->capconds ? 2 * q->capconds : 16;
        q->conds = xrealloc(q->conds, (size_t)q->capconds * sizeof *q->conds);
    }
    q->conds[q->nconds++] = cond;
}

static int check_radec(const char *what, double ra, double dec)
{
    if (!isfinite(ra) || ra < 0 || ra >= 360)
        return sk_error(SK_EINPUT, "%s: RA %g is outside [0, 360) degrees", what, ra);
    if (!isfinite(dec) || dec < -90 || dec > 90)
        return sk_error(SK_EINPUT, "%s: Dec %g is outside [-90, 90] degrees", what, dec);
    return SK_OK;
}

/* The parameter holding the largest image radius in the table: 180 (the
 * whole sky, always correct) until sk_query_prepare reads the table. */
static int radius_param(sk_query *q)
{
    if (!q->radius_param)
        q->radius_param = add_param(q, "180", "double precision");
    return q->radius_param;
}

#define CORNERS "i.ra_corner_00, i.dec_corner_00, i.ra_corner_10, i.dec_corner_10, " \
                "i.ra_corner_11, i.dec_corner_11, i.ra_corner_01, i.dec_corner_01"

int sk_query_contains(sk_query *q, double ra_deg, double dec_deg)
{
    int st = check_radec("--ra/--dec", ra_deg, dec_deg);
    if (st)
        return st;
    int pra = add_double(q, ra_deg), pdec = add_double(q, dec_deg);
    int prad = radius_param(q);
    /* The q3c index on the centres finds the candidates within the largest
     * image radius; the footprint polygon decides. */
    add_cond(q, xprintf("q3c_join($%d::double precision, $%d::double precision, i.ra, i.dec, "
                        "$%d::double precision)",
                        pra, pdec, prad));
    add_cond(q, xprintf("q3c_in_poly($%d::double precision, $%d::double precision, ARRAY[" CORNERS "])",
                        pra, pdec));
    return SK_OK;
}

/* Great-circle distance in degrees. */
static double sep_deg(double ra1, double dec1, double ra2, double dec2)
{
    const double d2r = M_PI / 180.0;
    double sdd = sin((dec2 - dec1) * d2r / 2), sdr = sin((ra2 - ra1) * d2r / 2);
    double a = sdd * sdd + cos(dec1 * d2r) * cos(dec2 * d2r) * sdr * sdr;
    return 2 * asin(fmin(1.0, sqrt(a))) / d2r;
}

int sk_query_box(sk_query *q, double minra, double maxra, double mindec, double maxdec,
                 double min_overlap)
{
    int st = check_radec("--box", minra, mindec);
    if (st == SK_OK)
        st = check_radec("--box", maxra, maxdec);
    if (st)
        return st;
    if (!(mindec < maxdec))
        return sk_error(SK_EINPUT, "--box: mindec %g must be below maxdec %g", mindec, maxdec);
    if (minra == maxra)
        return sk_error(SK_EINPUT, "--box: minra and maxra are equal (%g): the box is empty", minra);
    if (!isfinite(min_overlap) || min_overlap < 0 || min_overlap > 1)
        return sk_error(SK_EINPUT, "--min-overlap: %g is not a fraction in [0, 1]", min_overlap);
    double width = maxra - minra;
    if (width < 0)
        width += 360;
    double ra_c = fmod(minra + width / 2, 360.0), dec_c = (mindec + maxdec) / 2;
    double radius = 0;
    const double ras[3] = {minra, ra_c, maxra}, decs[3] = {mindec, dec_c, maxdec};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            radius = fmax(radius, sep_deg(ra_c, dec_c, ras[a], decs[b]));
    int pra = add_double(q, ra_c), pdec = add_double(q, dec_c), pbox = add_double(q, radius);
    int prad = radius_param(q);
    add_cond(q, xprintf("q3c_join($%d::double precision, $%d::double precision, i.ra, i.dec, "
                        "$%d::double precision + $%d::double precision)",
                        pra, pdec, pbox, prad));
    int p1 = add_double(q, minra), p2 = add_double(q, maxra), p3 = add_double(q, mindec),
        p4 = add_double(q, maxdec);
    if (min_overlap > 0) {
        int pf = add_double(q, min_overlap);
        add_cond(q, xprintf("skystack_box_overlap(" CORNERS ", $%d::double precision, "
                            "$%d::double precision, $%d::double precision, $%d::double precision) "
                            ">= $%d::double precision",
                            p1, p2, p3, p4, pf));
    } else {
        add_cond(q, xprintf("skystack_box_overlap(" CORNERS ", $%d::double precision, "
                            "$%d::double precision, $%d::double precision, $%d::double precision) > 0",
                            p1, p2, p3, p4));
    }
    return SK_OK;
}

static const char *text_column(int field)
{
    switch (field) {
    case SK_Q_TARGET: return "i.target";
    case SK_Q_SECTION: return "i.section_id";
    case SK_Q_FILTER: return "i.filter";
    case SK_Q_INSTRUMENT: return "i.instrument";
    case SK_Q_PROJECT: return "i.project";
    case SK_Q_TYPE: return "i.type";
    case SK_Q_PROVENANCE: return "i.provenance_id";
    default: return NULL;
    }
}

static const char *range_column(int field)
{
    switch (field) {
    case SK_Q_MJD: return "i.mjd";
    case SK_Q_SEEING: return "i.fwhm_estimate";
    case SK_Q_LIM_MAG: return "i.lim_mag_estimate";
    case SK_Q_EXPTIME: return "i.exp_time";
    case SK_Q_AIRMASS: return "i.airmass";
    case SK_Q_BKG: return "i.bkg_rms_estimate";
    case SK_Q_ZP: return "i.zero_point_estimate";
    default: return NULL;
    }
}

int sk_query_text(sk_query *q, int field, const char *value)
{
    const char *col = text_column(field);
    if (!col)
        return sk_error(SK_EINPUT, "query: unknown text field %d", field);
    if (!value)
        return sk_error(SK_EINPUT, "query: %s: no value", col + 2);
    int p = add_param(q, value, "text");
    add_cond(q, xprintf("%s = $%d::text", col, p));
    return SK_OK;
}

int sk_query_text_any(sk_query *q, int field, const char *const *values, int n)
{
    const char *col = text_column(field);
    if (!col)
        return sk_error(SK_EINPUT, "query: unknown text field %d", field);
    if (n < 1)
        return sk_error(SK_EINPUT, "query: %s: empty list of values", col + 2);
    /* A PostgreSQL array literal, every element double-quoted. */
    size_t len = 3;
    for (int k = 0; k < n; k++)
        len += 2 * strlen(values[k]) + 3;
    char *lit = xrealloc(NULL, len);
    size_t o = 0;
    lit[o++] = '{';
    for (int k = 0; k < n; k++) {
        if (k)
            lit[o++] = ',';
        lit[o++] = '"';
        for (const char *c = values[k]; *c; c++) {
            if (*c == '"' || *c == '\\')
                lit[o++] = '\\';
            lit[o++] = *c;
        }
        lit[o++] = '"';
    }
    lit[o++] = '}';
    lit[o] = '\0';
    int p = add_param(q, lit, "text[]");
    free(lit);
    add_cond(q, xprintf("%s = ANY ($%d::text[])", col, p));
    return SK_OK;
}

static int add_range(sk_query *q, int field, double value, const char *op)
{
    const char *col = range_column(field);
    if (!col)
        return sk_error(SK_EINPUT, "query: unknown numeric field %d", field);
    if (!isfinite(value))
        return sk_error(SK_EINPUT, "query: %s: %g is not a finite number", col + 2, value);
    int p = add_double(q, value);
    add_cond(q, xprintf("%s %s $%d::double precision", col, op, p));
    return SK_OK;
}

int sk_query_min(sk_query *q, int field, double value)
{
    return add_range(q, field, value, ">=");
}

int sk_query_max(sk_query *q, int field, double value)
{
    return add_range(q, field, value, "<=");
}

static int check_prov_id(const char *prov_id)
{
    if (!prov_id || !*prov_id)
        return sk_error(SK_EINPUT, "--prov: empty provenance id");
    return SK_OK;
}

int sk_query_prov(sk_query *q, const char *prov_id)
{
    int st = check_prov_id(prov_id);
    if (st)
        return st;
    int p = add_param(q, prov_id, "text");
    add_cond(q, xprintf("(i.provenance_id = $%d::text"
                        " OR EXISTS (SELECT 1 FROM source_lists x WHERE x.image_id = i.id AND x.provenance_id = $%d::text)"
                        " OR EXISTS (SELECT 1 FROM psfs x WHERE x.image_id = i.id AND x.provenance_id = $%d::text)"
                        " OR EXISTS (SELECT 1 FROM backgrounds x WHERE x.image_id = i.id AND x.provenance_id = $%d::text)"
                        " OR EXISTS (SELECT 1 FROM world_coordinates x WHERE x.image_id = i.id AND x.provenance_id = $%d::text)"
                        " OR EXISTS (SELECT 1 FROM zero_points x WHERE x.image_id = i.id AND x.provenance_id = $%d::text))",
                        p, p, p, p, p, p));
    return SK_OK;
}

/* Marks the test of a good extraction in a condition: replaced when the
 * statement is built, by "true" with include_bad. */
#define GOOD_EXTRACTION "@good-extraction@"

/* `cond` with the good-extraction marker replaced (malloc'd). */
static char *cond_text(const sk_query *q, const char *cond)
{
    const char *m = strstr(cond, GOOD_EXTRACTION);
    if (!m)
        return xstrdup(cond);
    return xprintf("%.*s%s%s", (int)(m - cond), cond, q->include_bad ? "true" : "NOT s.is_bad",
                   m + strlen(GOOD_EXTRACTION));
}

int sk_query_with_products(sk_query *q, const char *prov_id)
{
    const char *products =
        "EXISTS (SELECT 1 FROM source_lists s"
        " JOIN psfs p ON p.image_id = s.image_id AND p.provenance_id = s.provenance_id"
        " JOIN backgrounds b ON b.image_id = s.image_id AND b.provenance_id = s.provenance_id"
        " JOIN world_coordinates w ON w.image_id = s.image_id AND w.provenance_id = s.provenance_id"
        " JOIN zero_points z ON z.image_id = s.image_id AND z.provenance_id = s.provenance_id"
        " WHERE s.image_id = i.id AND " GOOD_EXTRACTION;
    if (!prov_id) {
        add_cond(q, xprintf("%s)", products));
        return SK_OK;
    }
    int st = check_prov_id(prov_id);
    if (st)
        return st;
    int p = add_param(q, prov_id, "text");
    add_cond(q, xprintf("%s AND (s.provenance_id = $%d::text OR i.provenance_id = $%d::text))", products,
                        p, p));
    return SK_OK;
}

int sk_query_made_from(sk_query *q, long long image_id)
{
    if (image_id <= 0)
        return sk_error(SK_EINPUT, "--made-from: %lld is not an image id", image_id);
    char id[32];
    snprintf(id, sizeof id, "%lld", image_id);
    int p = add_param(q, id, "bigint");
    add_cond(q, xprintf("EXISTS (SELECT 1 FROM coadd_components mf WHERE mf.coadd_image_id = i.id "
                        "AND mf.image_id = $%d::bigint)", p));
    return SK_OK;
}

void sk_query_include_bad(sk_query *q, int include)
{
    q->include_bad = include ? 1 : 0;
}

int sk_query_order(sk_query *q, int order, double quality_fwhm_factor)
{
    if (order < SK_ORDER_EARLIEST || order > SK_ORDER_QUALITY)
        return sk_error(SK_EINPUT, "--order: unknown order %d", order);
    if (order == SK_ORDER_QUALITY && !isfinite(quality_fwhm_factor))
        return sk_error(SK_EINPUT, "query.quality_fwhm_factor: not a finite number");
    q->order = order;
    q->quality_factor = quality_fwhm_factor;
    return SK_OK;
}

int sk_query_limit(sk_query *q, long n)
{
    if (n < 1)
        return sk_error(SK_EINPUT, "--limit: %ld is not a positive count", n);
    q->limit = n;
    return SK_OK;
}

int sk_query_where(sk_query *q, const char *condition, int nparams, const char *const *params)
{
    if (!condition || !*condition)
        return sk_error(SK_EINPUT, "query: empty condition");
    int base = q->nparams;
    for (int k = 0; k < nparams; k++)
        add_param(q, params[k] ? params[k] : "", "text");
    /* Renumber $k to $(base+k) outside quoted literals and identifiers. */
    size_t cap = strlen(condition) * 2 + 16, o = 0;
    char *out = xrealloc(NULL, cap);
    char quote = 0;
    for (const char *c = condition; *c;) {
        if (o + 24 >= cap) {
            cap *= 2;
            out = xrealloc(out, cap);
        }
        if (quote) {
            if (*c == quote)
                quote = 0;
            out[o++] = *c++;
        } else if (*c == '\'' || *c == '"') {
            quote = *c;
            out[o++] = *c++;
        } else if (*c == '$' && isdigit((unsigned char)c[1])) {
            char *end;
            long k = strtol(c + 1, &end, 10);
            if (k < 1 || k > nparams) {
                free(out);
                return sk_error(SK_EINPUT, "query: condition '%s' uses $%ld but has %d parameters",
                                condition, k, nparams);
            }
            o += (size_t)sprintf(out + o, "$%ld", k + base);
            c = end;
        } else {
            out[o++] = *c++;
        }
    }
    out[o] = '\0';
    add_cond(q, xprintf("(%s)", out));
    free(out);
    return SK_OK;
}

/* A growing string. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *text)
{
    size_t n = strlen(text);
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, text, n + 1);
    b->len += n;
}

/* Build the SQL; the order/limit parameters come after the filters'. */
static char *build(sk_query *q, int kind, int *nparams, const char **types)
{
    sbuf b = {0};
    int n = q->nparams;
    q->built = xrealloc(q->built, ((size_t)n + 2) * sizeof *q->built);
    for (int k = 0; k < n; k++) {
        q->built[k] = q->params[k].value;
        if (types)
            types[k] = q->params[k].type;
    }
    int nextra = 0;

    sb_add(&b, kind == SK_QUERY_COUNT ? "SELECT count(*) FROM (SELECT i.id" : "SELECT i.*");
    sb_add(&b, "\nFROM images i");
    int first = 1;
    for (int k = 0; k < q->nconds; k++) {
        sb_add(&b, first ? "\nWHERE " : "\n  AND ");
        char *c = cond_text(q, q->conds[k]);
        sb_add(&b, c);
        free(c);
        first = 0;
    }
    /* a coadd whose extraction is not registered yet is not there */
    sb_add(&b, first ? "\nWHERE NOT i.pending" : "\n  AND NOT i.pending");
    first = 0;
    if (!q->include_bad) {
        sb_add(&b, first ? "\nWHERE " : "\n  AND ");
        sb_add(&b, "NOT i.is_bad AND NOT EXISTS (SELECT 1 FROM provenances pb "
                   "WHERE pb.id = i.provenance_id AND pb.is_bad)");
    }
    if (kind != SK_QUERY_COUNT || q->limit > 0) {
        if (q->order == SK_ORDER_QUALITY) {
            snprintf(q->extra_text[nextra], sizeof q->extra_text[nextra], "%.17g", q->quality_factor);
            q->built[n + nextra] = q->extra_text[nextra];
            if (types)
                types[n + nextra] = "double precision";
            nextra++;
            char o[200];
            snprintf(o, sizeof o,
                     "\nORDER BY i.lim_mag_estimate - $%d::double precision * i.fwhm_estimate DESC NULLS LAST,"
                     " i.mjd DESC, i.id",
                     n + nextra);
            sb_add(&b, o);
        } else if (q->order == SK_ORDER_LATEST) {
            sb_add(&b, "\nORDER BY i.mjd DESC, i.id DESC");
        } else {
            sb_add(&b, "\nORDER BY i.mjd, i.id");
        }
    }
    if (q->limit > 0) {
        snprintf(q->extra_text[nextra], sizeof q->extra_text[nextra], "%ld", q->limit);
        q->built[n + nextra] = q->extra_text[nextra];
        if (types)
            types[n + nextra] = "bigint";
        nextra++;
        char o[64];
        snprintf(o, sizeof o, "\nLIMIT $%d::bigint", n + nextra);
        sb_add(&b, o);
    }
    if (kind == SK_QUERY_COUNT)
        sb_add(&b, ") c");
    q->nbuilt = n + nextra;
    *nparams = q->nbuilt;
    return b.s;
}

int sk_query_sql(const sk_query *cq, int kind, char **sql, int *nparams, const char *const **params)
{
    sk_query *q = (sk_query *)cq; /* only the cache of built parameters changes */
    *sql = build(q, kind, nparams, NULL);
    *params = q->built;
    return SK_OK;
}

char *sk_query_psql(const sk_query *cq, int kind)
{
    sk_query *q = (sk_query *)cq;
    const char **types = xrealloc(NULL, ((size_t)q->nparams + 2) * sizeof *types);
    int n = 0;
    char *sql = build(q, kind, &n, types);
    sbuf b = {0};
    sb_add(&b, "");
    if (q->radius_param) {
        char note[160];
        snprintf(note, sizeof note,
                 "-- $%d: the largest image radius in the table (degrees) when this was printed\n",
                 q->radius_param);
        sb_add(&b, note);
    }
    sb_add(&b, "PREPARE imquery");
    for (int k = 0; k < n; k++) {
        sb_add(&b, k ? ", " : "(");
        sb_add(&b, types[k]);
    }
    if (n)
        sb_add(&b, ")");
    sb_add(&b, " AS\n");
    sb_add(&b, sql);
    sb_add(&b, ";\nEXECUTE imquery");
    for (int k = 0; k < n; k++) {
        sb_add(&b, k ? ", " : "(");
        int numeric = strcmp(types[k], "double precision") == 0 || strcmp(types[k], "bigint") == 0;
        if (!numeric)
            sb_add(&b, "'");
        for (const char *c = q->built[k]; *c; c++) {
            char ch[3] = {*c, 0, 0};
            if (*c == '\'')
                ch[1] = '\'';
            sb_add(&b, ch);
        }
        if (!numeric)
            sb_add(&b, "'");
    }
    if (n)
        sb_add(&b, ")");
    sb_add(&b, ";\nDEALLOCATE imquery;\n");
    free(sql);
    free(types);
    return b.s;
}

int sk_query_prepare(sk_query *q, sk_db *db)
{
    if (!q->radius_param)
        return SK_OK;
    PGresult *r = NULL;
    int st = sk_db_exec(db, "reading the largest image radius",
                        "SELECT coalesce(max(radius_deg), 0) FROM images", 0, NULL, &r);
    if (st)
        return st;
    double radius = sk_db_double(r, 0, 0);
    PQclear(r);
    if (!isfinite(radius) || radius < 0 || radius > 180)
        radius = 180;
    char text[40];
    /* a hair more, so that rounding of the stored value never loses an image */
    snprintf(text, sizeof text, "%.17g", fmin(180.0, radius * (1 + 1e-9) + 1e-9));
    free(q->params[q->radius_param - 1].value);
    q->params[q->radius_param - 1].value = xstrdup(text);
    return SK_OK;
}

int sk_query_run(sk_query *q, sk_db *db, int kind, PGresult **res)
{
    int st0 = sk_query_prepare(q, db);
    if (st0)
        return st0;
    char *sql = NULL;
    int n = 0;
    const char *const *params = NULL;
    sk_query_sql(q, kind, &sql, &n, &params);
    int st = sk_db_exec(db, "querying images", sql, n, params, res);
    free(sql);
    return st;
}

int sk_query_rows(sk_query *q, sk_db *db, sk_db_rows **rows)
{
    *rows = NULL;
    PGresult *res = NULL;
    int st = sk_query_run(q, db, SK_QUERY_ROWS, &res);
    if (!st)
        st = sk_db_rows_from_result(res, rows);
    PQclear(res);
    return st;
}

int sk_query_count(sk_query *q, sk_db *db, long long *count)
{
    *count = 0;
    PGresult *res = NULL;
    int st = sk_query_run(q, db, SK_QUERY_COUNT, &res);
    if (!st)
        *count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return st;
}
