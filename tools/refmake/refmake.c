/* refmake: return the reference of a refset for a place and filter, making it (selection, coadd, reference) when needed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/ref.h"

typedef struct request {
    sk_refmake_opts o;
    int have_ra, have_dec;
    int json, print_id;
    json_t *criteria;    /* criteria options, applied to every criteria set */
} request;

static const sk_opt options[] = {
    {"refset", 0, 1, "NAME", "the reference set (created on first use)", NULL},
    {"ra", 0, 1, "DEG", "place: right ascension of a sky position (with --dec)", NULL},
    {"dec", 0, 1, "DEG", "place: declination (with --ra)", NULL},
    {"target", 0, 1, "NAME", "place: target (field) name (with --section)", NULL},
    {"section", 0, 1, "ID", "place: section (CCD) id (with --target)", NULL},
    {"filter", 0, 1, "NAME", "filter (required)", NULL},
    {"instrument", 0, 1, "NAME", "keyword map the inputs were ingested with (their preprocessing "
                                 "provenance; default preprocessing.instrument)", NULL},
    {"no-append", 0, 0, NULL, "refuse to append new criteria to an existing refset", NULL},
    {"description", 0, 1, "TEXT", "description of a refset created now", "referencing.description"},
    {"dry-run", 'n', 0, NULL, "print the provenances, the selected images and the plan; "
                              "build and write nothing", NULL},
    {"id", 0, 0, NULL, "print the reference id instead of the coadd path", NULL},
    {"json", 0, 0, NULL, "print the reference (or the dry-run report) as JSON", NULL},
    {"date-range", 0, 1, "DAYS", "criteria: images of this many days (ending now, or from --min-mjd)", NULL},
    {"min-mjd", 0, 1, "MJD", "criteria: exposure start at or after this MJD", NULL},
    {"max-mjd", 0, 1, "MJD", "criteria: exposure start at or before this MJD", NULL},
    {"since", 0, 1, "DATE", "criteria: exposure start at or after this UTC ISO date", NULL},
    {"until", 0, 1, "DATE", "criteria: exposure start at or before this UTC ISO date", NULL},
    {"min-seeing", 0, 1, "ARCSEC", "criteria: FWHM estimate at least", NULL},
    {"max-seeing", 0, 1, "ARCSEC", "criteria: FWHM estimate at most", NULL},
    {"min-lim-mag", 0, 1, "MAG", "criteria: limiting magnitude at least", NULL},
    {"max-lim-mag", 0, 1, "MAG", "criteria: limiting magnitude at most", NULL},
    {"max-airmass", 0, 1, "X", "criteria: airmass at most", NULL},
    {"min-bkg", 0, 1, "COUNTS", "criteria: background rms at least", NULL},
    {"max-bkg", 0, 1, "COUNTS", "criteria: background rms at most", NULL},
    {"min-exptime", 0, 1, "S", "criteria: exposure time at least", NULL},
    {"max-exptime", 0, 1, "S", "criteria: exposure time at most", NULL},
    {"instruments", 0, 1, "A,B,...", "criteria: only images of these instruments (INSTRUME values)", NULL},
    {"min-images", 0, 1, "N", "criteria: at least N images, else the next criteria set", NULL},
    {"max-images", 0, 1, "N", "criteria: at most the N first images in the order", NULL},
    {"min-overlap", 0, 1, "FRAC", "criteria: least fraction of the best image's footprint each "
                                  "image covers", NULL},
    {"order", 0, 1, "ORDER", "criteria: quality (default), earliest or latest", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

/* Criteria option name -> criteria key. */
static const char *criteria_key(const char *opt)
{
    static const char *const map[][2] = {
        {"date-range", "date_range"},   {"min-mjd", "min_mjd"},         {"max-mjd", "max_mjd"},
        {"since", "min_mjd"},           {"until", "max_mjd"},           {"min-seeing", "min_seeing"},
        {"max-seeing", "max_seeing"},   {"min-lim-mag", "min_lim_mag"}, {"max-lim-mag", "max_lim_mag"},
        {"max-airmass", "max_airmass"}, {"min-bkg", "min_bkg"},         {"max-bkg", "max_bkg"},
        {"min-exptime", "min_exptime"}, {"max-exptime", "max_exptime"}, {"min-overlap", "min_overlap"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i][0], opt))
            return map[i][1];
    return NULL;
}

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    request *r = user;
    const char *n = opt->name;
    char option[64];
    snprintf(option, sizeof option, "--%s", n);
    const char *ck = criteria_key(n);
    if (ck) {
        double v;
        int st = !strcmp(n, "since") || !strcmp(n, "until") ? sk_iso_to_mjd(arg, &v)
                                                             : sk_cli_double(option, arg, &v);
        if (st)
            return sk_error_context("%s", option);
        json_object_set_new(r->criteria, ck, json_real(v));
        return SK_OK;
    }
    if (!strcmp(n, "min-images") || !strcmp(n, "max-images")) {
        long v;
        int st = sk_cli_long(option, arg, &v);
        if (!st)
            json_object_set_new(r->criteria, n[1] == 'i' ? "min_images" : "max_images",
                                json_integer(v));
        return st;
    }
    if (!strcmp(n, "order")) {
        json_object_set_new(r->criteria, "order", json_string(arg));
        return SK_OK;
    }
    if (!strcmp(n, "instruments")) {
        json_t *list = json_array();
        char *copy = strdup(arg), *save = NULL;
        if (!copy) {
            json_decref(list);
            return sk_error(SK_EIO, "out of memory");
        }
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (*t)
                json_array_append_new(list, json_string(t));
        free(copy);
        json_object_set_new(r->criteria, "instruments", list);
        return SK_OK;
    }
    if (!strcmp(n, "refset"))
        r->o.refset = arg;
    else if (!strcmp(n, "ra")) {
        r->have_ra = 1;
        return sk_cli_double(option, arg, &r->o.place.ra_deg);
    } else if (!strcmp(n, "dec")) {
        r->have_dec = 1;
        return sk_cli_double(option, arg, &r->o.place.dec_deg);
    } else if (!strcmp(n, "target"))
        r->o.place.target = arg;
    else if (!strcmp(n, "section"))
        r->o.place.section = arg;
    else if (!strcmp(n, "filter"))
        r->o.filter = arg;
    else if (!strcmp(n, "instrument"))
        r->o.instrument = arg;
    else if (!strcmp(n, "no-append"))
        r->o.no_append = 1;
    else if (!strcmp(n, "dry-run"))
        r->o.dry_run = 1;
    else if (!strcmp(n, "id"))
        r->print_id = 1;
    else if (!strcmp(n, "json"))
        r->json = 1;
    else
        return sk_error(SK_EINPUT, "%s: unhandled option", option);
    return SK_OK;
}

/* The criteria options replace their keys in every criteria set. */
static int apply_criteria(sk_config *cfg, json_t *over)
{
    if (json_object_size(over) == 0)
        return SK_OK;
    json_t *list = json_deep_copy(sk_config_get(cfg, "referencing.criteria"));
    size_t i;
    json_t *set;
    json_array_foreach(list, i, set) json_object_update(set, over);
    json_t *doc = json_pack("{s:{s:o}}", "referencing", "criteria", list);
    int st = doc ? sk_config_merge(cfg, doc, "the criteria options") : sk_error(SK_EIO, "out of memory");
    json_decref(doc);
    return st;
}

static void print_line(const json_t *j)
{
    char *text = sk_json_canonical(j);
    if (text)
        puts(text);
    free(text);
}

static int resolve(const char *root, const char *rel, char *out, size_t outsz)
{
    return sk_storage_resolve(root, rel ? rel : "", out, outsz);
}

static int print_report(const json_t *rep, const char *root)
{
    int st = SK_OK;
    char path[8192];
    printf("refset %s: %s\n", json_string_value(json_object_get(rep, "refset")),
           json_is_true(json_object_get(rep, "exists")) ? "exists" : "would be created");
    printf("upstream_hash %s\n", json_string_value(json_object_get(rep, "upstream_hash")));
    json_t *p = json_object_get(rep, "provenances");
    const char *names[] = {"preprocessing", "extraction", "coaddition", "coadd_extraction"};
    for (int k = 0; k < 4; k++)
        printf("provenance %s %s\n", names[k], json_string_value(json_object_get(p, names[k])));
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(rep, "members"), i, m) {
        char *crit = sk_json_canonical(json_object_get(m, "criteria"));
        printf("referencing %zu %s%s %s\n", i, json_string_value(json_object_get(m, "id")),
               json_is_true(json_object_get(m, "appended")) ? " (would be added)" : "",
               crit ? crit : "");
        free(crit);
    }
    json_t *ref = json_object_get(rep, "reference");
    if (json_is_object(ref)) {
        st = resolve(root, json_string_value(json_object_get(ref, "filepath")), path, sizeof path);
        if (!st)
            printf("reference %lld exists (referencing %s): %s\n",
                   json_integer_value(json_object_get(ref, "id")),
                   json_string_value(json_object_get(ref, "provenance_id")), path);
        return st;
    }
    json_array_foreach(json_object_get(rep, "plan"), i, m) {
        json_t *images = json_object_get(m, "images");
        json_t *coadd = json_object_get(m, "coadd_image_id");
        int enough = json_is_true(json_object_get(m, "enough"));
        printf("criteria %lld (%s): %zu image%s selected, %s", json_integer_value(json_object_get(m, "position")),
               json_string_value(json_object_get(m, "provenance")), json_array_size(images),
               json_array_size(images) == 1 ? "" : "s", enough ? "enough" : "too few");
        if (enough && json_is_integer(coadd))
            printf("; coadd %lld exists and would be reused\n", json_integer_value(coadd));
        else if (enough)
            printf("; the coadd would be built\n");
        else
            printf("\n");
        size_t k;
        json_t *img;
        json_array_foreach(images, k, img) {
            st = resolve(root, json_string_value(json_object_get(img, "filepath")), path, sizeof path);
            if (st)
                return st;
            printf("image %lld %s\n", json_integer_value(json_object_get(img, "id")), path);
        }
    }
    return st;
}

static int run(sk_cli *cli, request *r)
{
    if (cli->nargs > 0)
        return sk_error(SK_EINPUT, "unexpected argument '%s' (refmake takes options only)", cli->args[0]);
    if (!r->o.refset)
        return sk_error(SK_EINPUT, "--refset: a refset name is required");
    if (r->have_ra != r->have_dec)
        return sk_error(SK_EINPUT, "%s: --ra and --dec go together", r->have_ra ? "--ra" : "--dec");
    r->o.place.has_position = r->have_ra;
    if (!r->o.filter)
        return sk_error(SK_EINPUT, "--filter: a filter is required");
    if (r->print_id && r->json)
        return sk_error(SK_EINPUT, "--id and --json: choose one");
    int st = sk_place_check(&r->o.place);
    if (!st)
        st = apply_criteria(cli->config, r->criteria);
    char root[4096];
    if (!st)
        st = sk_storage_root(cli->config, root, sizeof root);
    if (st)
        return st;
    r->o.threads = cli->threads;
    r->o.now_mjd = NAN;
    sk_db *db = NULL;
    if ((st = sk_db_connect(cli->config, &db)))
        return st;
    sk_refmake_result res;
    st = sk_refmake(db, cli->config, &r->o, &res);
    if (!st && r->o.dry_run) {
        if (r->json)
            print_line(res.report);
        else
            st = print_report(res.report, root);
    } else if (!st) {
        char path[8192];
        st = resolve(root, json_string_value(json_object_get(res.ref, "filepath")), path, sizeof path);
        if (!st && r->json) {
            json_object_set_new(res.ref, "path", json_string(path));
            print_line(res.ref);
        } else if (!st && r->print_id) {
            printf("%lld\n", json_integer_value(json_object_get(res.ref, "id")));
        } else if (!st) {
            printf("%s\n", path);
        }
    }
    fflush(stdout);
    sk_refmake_result_clear(&res);
    sk_db_close(db);
    return st;
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "refmake",
        .usage = "refmake [OPTIONS] --refset NAME (--ra DEG --dec DEG | --target NAME --section ID) "
                 "--filter F",
        .summary = "Return the reference of a refset for a place and filter, making it when needed: "
                   "select images by the referencing criteria, reuse or build their coadd, save the "
                   "reference. Prints the reference's coadd path.",
    };
    request r;
    memset(&r, 0, sizeof r);
    r.criteria = json_object();
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &r);
    if (st == SK_OK)
        st = run(&cli, &r);
    json_decref(r.criteria);
    return sk_cli_finish(&cli, st);
}
