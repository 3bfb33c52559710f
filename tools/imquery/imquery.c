/* imquery: find images in the database by place, time, names, quality and provenance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/query.h"
#include "skystack/storage.h"

enum output { OUT_PATHS = 0, OUT_IDS, OUT_JSON, OUT_TABLE, OUT_COUNT, OUT_SQL };

typedef struct request {
    sk_query *q;
    int have_ra, have_dec, have_box, have_overlap;
    double ra, dec, box[4], min_overlap;
    int output, noutputs;
    int order_given, order;
} request;

static const sk_opt options[] = {
    {"ra", 0, 1, "DEG", "images containing this point (with --dec)", NULL},
    {"dec", 0, 1, "DEG", "declination of the point (with --ra)", NULL},
    {"box", 0, 1, "MINRA,MAXRA,MINDEC,MAXDEC", "images overlapping this box (maxra < minra: across RA=0)", NULL},
    {"min-overlap", 0, 1, "FRAC", "with --box: least fraction of the box an image must cover", NULL},
    {"target", 0, 1, "NAME", "target (field) name", NULL},
    {"section", 0, 1, "ID", "section (CCD) id", NULL},
    {"filter", 0, 1, "NAME", "filter", NULL},
    {"instrument", 0, 1, "NAME", "instrument", NULL},
    {"project", 0, 1, "NAME", "project", NULL},
    {"type", 0, 1, "TYPE", "image type: science or coadd", NULL},
    {"min-mjd", 0, 1, "MJD", "exposure start at or after this MJD", NULL},
    {"max-mjd", 0, 1, "MJD", "exposure start at or before this MJD", NULL},
    {"since", 0, 1, "DATE", "exposure start at or after this UTC ISO date", NULL},
    {"until", 0, 1, "DATE", "exposure start at or before this UTC ISO date", NULL},
    {"min-seeing", 0, 1, "ARCSEC", "FWHM estimate at least", NULL},
    {"max-seeing", 0, 1, "ARCSEC", "FWHM estimate at most", NULL},
    {"min-lim-mag", 0, 1, "MAG", "limiting magnitude at least", NULL},
    {"max-lim-mag", 0, 1, "MAG", "limiting magnitude at most", NULL},
    {"min-exptime", 0, 1, "S", "exposure time at least", NULL},
    {"max-exptime", 0, 1, "S", "exposure time at most", NULL},
    {"min-airmass", 0, 1, "X", "airmass at least", NULL},
    {"max-airmass", 0, 1, "X", "airmass at most", NULL},
    {"min-bkg", 0, 1, "COUNTS", "background rms estimate at least", NULL},
    {"max-bkg", 0, 1, "COUNTS", "background rms estimate at most", NULL},
    {"min-zp", 0, 1, "MAG", "zero point estimate at least", NULL},
    {"max-zp", 0, 1, "MAG", "zero point estimate at most", NULL},
    {"prov", 0, 1, "ID", "preprocessing provenance, or extraction provenance of its products", NULL},
    {"with-products", 0, 0, NULL, "only images whose extraction products exist", NULL},
    {"made-from", 0, 1, "IMAGE", "only the coadds made from this image (one of their inputs)", NULL},
    {"include-bad", 0, 0, NULL, "include images (or provenances) marked bad", NULL},
    {"order", 0, 1, "ORDER", "earliest (default), latest or quality", NULL},
    {"limit", 'n', 1, "N", "at most N images", NULL},
    {"ids", 0, 0, NULL, "print image ids instead of paths", NULL},
    {"json", 0, 0, NULL, "print JSON Lines, one image with all its columns per line", NULL},
    {"table", 0, 0, NULL, "print an aligned table", NULL},
    {"count", 0, 0, NULL, "print the number of matching images", NULL},
    {"sql", 0, 0, NULL, "print the parameterised SQL (for psql) and exit", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int text_field(const char *name)
{
    if (!strcmp(name, "target")) return SK_Q_TARGET;
    if (!strcmp(name, "section")) return SK_Q_SECTION;
    if (!strcmp(name, "filter")) return SK_Q_FILTER;
    if (!strcmp(name, "instrument")) return SK_Q_INSTRUMENT;
    if (!strcmp(name, "project")) return SK_Q_PROJECT;
    if (!strcmp(name, "type")) return SK_Q_TYPE;
    return -1;
}

static int range_field(const char *name)
{
    if (!strcmp(name, "mjd")) return SK_Q_MJD;
    if (!strcmp(name, "seeing")) return SK_Q_SEEING;
    if (!strcmp(name, "lim-mag")) return SK_Q_LIM_MAG;
    if (!strcmp(name, "exptime")) return SK_Q_EXPTIME;
    if (!strcmp(name, "airmass")) return SK_Q_AIRMASS;
    if (!strcmp(name, "bkg")) return SK_Q_BKG;
    if (!strcmp(name, "zp")) return SK_Q_ZP;
    return -1;
}

static int set_output(request *r, int out)
{
    r->output = out;
    r->noutputs++;
    return SK_OK;
}

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    request *r = user;
    const char *n = opt->name;
    char option[64];
    snprintf(option, sizeof option, "--%s", n);
    if (!strcmp(n, "ra")) {
        r->have_ra = 1;
        return sk_cli_double(option, arg, &r->ra);
    }
    if (!strcmp(n, "dec")) {
        r->have_dec = 1;
        return sk_cli_double(option, arg, &r->dec);
    }
    if (!strcmp(n, "box")) {
        char tail;
        if (sscanf(arg, "%lf,%lf,%lf,%lf%c", &r->box[0], &r->box[1], &r->box[2], &r->box[3], &tail) != 4)
            return sk_error(SK_EINPUT, "--box: expected MINRA,MAXRA,MINDEC,MAXDEC in degrees, got '%s'", arg);
        r->have_box = 1;
        return SK_OK;
    }
    if (!strcmp(n, "min-overlap")) {
        r->have_overlap = 1;
        return sk_cli_double(option, arg, &r->min_overlap);
    }
    int tf = text_field(n);
    if (tf >= 0)
        return sk_query_text(r->q, tf, arg);
    if (!strncmp(n, "min-", 4) || !strncmp(n, "max-", 4)) {
        int rf = range_field(n + 4);
        if (rf < 0)
            return sk_error(SK_EINPUT, "%s: unknown option", option);
        double v;
        int st = sk_cli_double(option, arg, &v);
        if (st)
            return st;
        st = n[1] == 'i' ? sk_query_min(r->q, rf, v) : sk_query_max(r->q, rf, v);
        return st ? sk_error_context("%s", option) : SK_OK;
    }
    if (!strcmp(n, "since") || !strcmp(n, "until")) {
        double mjd;
        int st = sk_iso_to_mjd(arg, &mjd);
        if (st)
            return sk_error_context("%s", option);
        return n[0] == 's' ? sk_query_min(r->q, SK_Q_MJD, mjd) : sk_query_max(r->q, SK_Q_MJD, mjd);
    }
    if (!strcmp(n, "prov"))
        return sk_query_prov(r->q, arg);
    if (!strcmp(n, "made-from")) {
        long v;
        int st = sk_cli_long(option, arg, &v);
        return st ? st : sk_query_made_from(r->q, v);
    }
    if (!strcmp(n, "include-bad")) {
        sk_query_include_bad(r->q, 1);
        return SK_OK;
    }
    if (!strcmp(n, "order")) {
        r->order_given = 1;
        if (!strcmp(arg, "earliest"))
            r->order = SK_ORDER_EARLIEST;
        else if (!strcmp(arg, "latest"))
            r->order = SK_ORDER_LATEST;
        else if (!strcmp(arg, "quality"))
            r->order = SK_ORDER_QUALITY;
        else
            return sk_error(SK_EINPUT, "--order: expected earliest, latest or quality, got '%s'", arg);
        return SK_OK;
    }
    if (!strcmp(n, "limit")) {
        long v;
        int st = sk_cli_long(option, arg, &v);
        return st ? st : sk_query_limit(r->q, v);
    }
    if (!strcmp(n, "ids")) return set_output(r, OUT_IDS);
    if (!strcmp(n, "json")) return set_output(r, OUT_JSON);
    if (!strcmp(n, "table")) return set_output(r, OUT_TABLE);
    if (!strcmp(n, "count")) return set_output(r, OUT_COUNT);
    if (!strcmp(n, "sql")) return set_output(r, OUT_SQL);
    return sk_error(SK_EINPUT, "%s: unhandled option", option);
}

/* The --with-products and --prov options interact: with both, the
 * products must be of that provenance (or belong to an image of it). */
static int finish_request(request *r, const sk_config *cfg, const char *prov, int with_products)
{
    if (r->have_ra != r->have_dec)
        return sk_error(SK_EINPUT, "%s: --ra and --dec go together", r->have_ra ? "--ra" : "--dec");
    if (r->have_overlap && !r->have_box)
        return sk_error(SK_EINPUT, "--min-overlap: only meaningful with --box");
    if (r->noutputs > 1)
        return sk_error(SK_EINPUT, "choose one of --ids, --json, --table, --count, --sql");
    int st = SK_OK;
    if (r->have_ra)
        st = sk_query_contains(r->q, r->ra, r->dec);
    if (st == SK_OK && r->have_box)
        st = sk_query_box(r->q, r->box[0], r->box[1], r->box[2], r->box[3],
                          r->have_overlap ? r->min_overlap : 0);
    if (st == SK_OK && with_products && prov)
        st = sk_query_with_products(r->q, prov);
    if (st == SK_OK)
        st = sk_query_order(r->q, r->order,
                            sk_config_double(cfg, "query.quality_fwhm_factor", 3.0));
    return st;
}

/* --prov and --with-products are applied after parsing (they combine). */
typedef struct wrap {
    request r;
    const char *prov;
    int with_products;
} wrap;

static int handle_wrapped(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    wrap *w = user;
    if (!strcmp(opt->name, "with-products")) {
        w->with_products = 1;
        return SK_OK;
    }
    if (!strcmp(opt->name, "prov"))
        w->prov = arg;
    return handle(cli, opt, arg, &w->r);
}

static int print_sql(sk_query *q, sk_db *db)
{
    int st = sk_query_prepare(q, db);
    if (st == SK_OK) {
        char *text = sk_query_psql(q, SK_QUERY_ROWS);
        fputs(text, stdout);
        free(text);
    }
    return st;
}

static int print_count(sk_query *q, sk_db *db)
{
    long long n = 0;
    int st = sk_query_count(q, db, &n);
    if (st == SK_OK)
        printf("%lld\n", n);
    fflush(stdout);
    return st;
}

static int print_rows(sk_query *q, sk_db *db, int output, const char *root)
{
    sk_db_rows *rows = NULL;
    int st = sk_query_rows(q, db, &rows);
    if (st == SK_OK && sk_db_rows_count(rows) == 0)
        st = sk_error(SK_ENOTFOUND, "no image matches");
    else if (st == SK_OK && output == OUT_IDS)
        st = sk_query_print_ids(stdout, rows);
    else if (st == SK_OK && output == OUT_JSON)
        st = sk_query_print_json(stdout, rows, root);
    else if (st == SK_OK && output == OUT_TABLE)
        st = sk_query_print_table(stdout, rows);
    else if (st == SK_OK)
        st = sk_query_print_paths(stdout, rows, root);
    fflush(stdout);
    sk_db_rows_free(rows);
    return st;
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "imquery",
        .usage = "imquery [OPTIONS]",
        .summary = "Find images in the database by position, names, time, quality and "
                   "provenance; print their paths (or ids, JSON, a table, a count, the SQL).",
    };
    wrap w;
    memset(&w, 0, sizeof w);
    w.r.q = sk_query_new();
    int st = sk_cli_parse(&cli, argc, argv, options, handle_wrapped, &w);
    if (st == SK_OK && cli.nargs > 0)
        st = sk_error(SK_EINPUT, "unexpected argument '%s' (imquery takes only options)", cli.args[0]);
    if (st == SK_OK)
        st = finish_request(&w.r, cli.config, w.prov, w.with_products);
    if (st == SK_OK && !w.prov && w.with_products)
        st = sk_query_with_products(w.r.q, NULL);
    if (st) {
        sk_query_free(w.r.q);
        return sk_cli_finish(&cli, st);
    }
    char root[4096] = "";
    if (w.r.output == OUT_PATHS || w.r.output == OUT_JSON)
        st = sk_storage_root(cli.config, root, sizeof root);
    sk_db *db = NULL;
    if (st == SK_OK)
        st = sk_db_connect(cli.config, &db);
    if (st == SK_OK && w.r.output == OUT_SQL)
        st = print_sql(w.r.q, db);
    else if (st == SK_OK && w.r.output == OUT_COUNT)
        st = print_count(w.r.q, db);
    else if (st == SK_OK)
        st = print_rows(w.r.q, db, w.r.output, root);
    sk_db_close(db);
    sk_query_free(w.r.q);
    return sk_cli_finish(&cli, st);
}
