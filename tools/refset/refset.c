/* refset: list, show, create and delete reference sets; list their references, the chain of replacements of one and those using an image; mark references bad. */
#include <math.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/ref.h"
#include "skystack/look.h"

typedef struct request {
    sk_place place;
    int have_ra, have_dec;
    const char *filter, *description, *reason, *by;
    int description_given;
    int force, json;
    const char *since, *outdir;
} request;

static const sk_opt options[] = {
    {"json", 0, 0, NULL, "print JSON (one object per line) instead of a table", NULL},
    {"ra", 0, 1, "DEG", "refs: references whose footprint contains this point (with --dec)", NULL},
    {"dec", 0, 1, "DEG", "refs: declination of the point (with --ra)", NULL},
    {"target", 0, 1, "NAME", "refs: references of this target (with --section)", NULL},
    {"section", 0, 1, "ID", "refs: references of this section (with --target)", NULL},
    {"filter", 0, 1, "NAME", "refs: references in this filter", NULL},
    {"reason", 0, 1, "TEXT", "mark-bad: why the reference is bad (required)", NULL},
    {"by", 0, 1, "NAME", "mark-bad: who marks it (default: $SKYSTACK_USER, else the login name)", NULL},
    {"description", 0, 1, "TEXT", "create: what the refset is for", NULL},
    {"force", 0, 0, NULL, "delete: also delete the references only this refset holds", NULL},
    {"since", 0, 1, "DATE", "report: the coadds made since this UTC date (YYYY-MM-DD[THH:MM[:SS]])", NULL},
    {"outdir", 0, 1, "DIR", "report: the folder of the page (default report-NAME or report-since-DATE)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    request *r = user;
    const char *n = opt->name;
    if (!strcmp(n, "json"))
        r->json = 1;
    else if (!strcmp(n, "ra")) {
        r->have_ra = 1;
        return sk_cli_double("--ra", arg, &r->place.ra_deg);
    } else if (!strcmp(n, "dec")) {
        r->have_dec = 1;
        return sk_cli_double("--dec", arg, &r->place.dec_deg);
    } else if (!strcmp(n, "target"))
        r->place.target = arg;
    else if (!strcmp(n, "section"))
        r->place.section = arg;
    else if (!strcmp(n, "filter"))
        r->filter = arg;
    else if (!strcmp(n, "reason"))
        r->reason = arg;
    else if (!strcmp(n, "by"))
        r->by = arg;
    else if (!strcmp(n, "description")) {
        r->description = arg;
        r->description_given = 1;
    } else if (!strcmp(n, "force"))
        r->force = 1;
    else if (!strcmp(n, "since"))
        r->since = arg;
    else if (!strcmp(n, "outdir"))
        r->outdir = arg;
    else
        return sk_error(SK_EINPUT, "--%s: unhandled option", n);
    return SK_OK;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static int cmd_list(sk_db *db, const request *r)
{
    json_t *arr = NULL;
    int st = sk_refset_list(db, &arr);
    if (st)
        return st;
    size_t i;
    json_t *o;
    if (r->json) {
        json_array_foreach(arr, i, o) sk_json_print_line(stdout, o);
    } else {
        sk_refset_print_list(stdout, arr);
    }
    json_decref(arr);
    return SK_OK;
}

static int cmd_show(sk_db *db, const request *r, const char *name)
{
    json_t *o = NULL;
    int st = sk_refset_show(db, name, &o);
    if (st)
        return st;
    if (r->json) {
        sk_json_print_line(stdout, o);
        json_decref(o);
        return SK_OK;
    }
    sk_refset_print_show(stdout, o);
    json_decref(o);
    return SK_OK;
}

static int cmd_refs(sk_db *db, request *r, const char *name, const sk_config *cfg)
{
    const sk_place *place = NULL;
    if (r->have_ra != r->have_dec)
        return sk_error(SK_EINPUT, "%s: --ra and --dec go together", r->have_ra ? "--ra" : "--dec");
    if (r->have_ra || r->place.target || r->place.section) {
        r->place.has_position = r->have_ra;
        place = &r->place;
        int st = sk_place_check(place);
        if (st)
            return st;
    }
    char root[4096];
    int st = sk_storage_root(cfg, root, sizeof root);
    json_t *arr = NULL;
    if (!st)
        st = sk_refset_refs(db, name, place, r->filter, &arr);
    if (st)
        return st;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        char path[8192];
        st = sk_storage_resolve(root, str(o, "filepath"), path, sizeof path);
        if (st) {
            json_decref(arr);
            return st;
        }
        json_object_set_new(o, "path", json_string(path));
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return sk_error(SK_ENOTFOUND, "refset '%s' holds no reference%s%s%s", name,
                        place ? " for this place" : "", r->filter ? " in filter " : "",
                        r->filter ? r->filter : "");
    }
    if (r->json) {
        json_array_foreach(arr, i, o) sk_json_print_line(stdout, o);
        json_decref(arr);
        return SK_OK;
    }
    sk_refset_print_refs(stdout, arr);
    json_decref(arr);
    return SK_OK;
}

/* chain REF: the references of its place, filter and provenance, oldest first. */
static int cmd_chain(sk_db *db, const request *r, long long ref_id)
{
    json_t *arr = NULL;
    int st = sk_ref_replacements(db, ref_id, &arr);
    if (st)
        return st;
    size_t i;
    json_t *o;
    if (r->json) {
        json_array_foreach(arr, i, o) sk_json_print_line(stdout, o);
    } else {
        sk_refset_print_chain(stdout, arr);
    }
    json_decref(arr);
    return SK_OK;
}

/* uses IMAGE: the references made from it (directly or through a coadd). */
static int cmd_uses(sk_db *db, const request *r, long long image_id)
{
    json_t *u = NULL;
    int st = sk_bad_users(db, image_id, &u);
    if (st)
        return st;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(u, "references"), i, o) {
        if (r->json)
            sk_json_print_line(stdout, o);
        else
            printf("%lld  coadd %lld  %s  %s  %s\n",
                   (long long)json_integer_value(json_object_get(o, "ref_id")),
                   (long long)json_integer_value(json_object_get(o, "coadd_id")), str(o, "place"),
                   str(o, "filter"),
                   json_is_true(json_object_get(o, "loadable")) ? "loadable" : str(o, "trouble"));
    }
    json_decref(u);
    return SK_OK;
}

static int need_args(const sk_cli *cli, int n, const char *what)
{
    if (cli->nargs - 1 < n)
        return sk_error(SK_EINPUT, "%s: missing %s", cli->args[0], what);
    if (cli->nargs - 1 > n)
        return sk_error(SK_EINPUT, "%s: unexpected argument '%s'", cli->args[0], cli->args[n + 1]);
    return SK_OK;
}

/* report [NAME] [--since DATE] [--outdir DIR]: the HTML page (look.h). */
static int cmd_report(sk_cli *cli, const request *r)
{
    const char *name = cli->nargs > 1 ? cli->args[1] : NULL;
    if (cli->nargs > 2)
        return sk_error(SK_EINPUT, "report: unexpected argument '%s'", cli->args[2]);
    if (!name == !r->since)
        return sk_error(SK_EINPUT, "report: give a refset name or --since DATE (one of them)");
    sk_report_opts o;
    memset(&o, 0, sizeof o);
    o.refset = name;
    o.threads = cli->threads;
    char root[4096], dir[4200];
    int st = r->since ? sk_iso_to_mjd(r->since, &o.since_mjd) : SK_OK;
    if (st)
        return sk_error_context("--since");
    o.has_since = r->since != NULL;
    if ((st = sk_storage_root(cli->config, root, sizeof root)))
        return st;
    snprintf(dir, sizeof dir, "%s", r->outdir ? r->outdir : "");
    if (!r->outdir) {
        char safe[256];
        sk_storage_component(name ? name : r->since, safe, sizeof safe);
        snprintf(dir, sizeof dir, "report-%s%s", name ? "" : "since-", safe);
    }
    o.outdir = dir;
    o.data_root = root;
    sk_db *db = NULL;
    if ((st = sk_db_connect(cli->config, &db)))
        return st;
    char page[8400];
    st = sk_report_write(db, &o, page, sizeof page);
    if (!st)
        printf("%s\n", page);
    fflush(stdout);
    sk_db_close(db);
    return st;
}

static int run(sk_cli *cli, request *r)
{
    if (cli->nargs >= 1 && !strcmp(cli->args[0], "report"))
        return cmd_report(cli, r);
    if (r->since || r->outdir)
        return sk_error(SK_EINPUT, "%s: --since and --outdir belong to `report`", r->since ? "--since" : "--outdir");
    if (cli->nargs < 1)
        return sk_error(SK_EINPUT,
                        "missing command: list, show, refs, mark-bad, create, delete, chain or uses "
                        "(see --help)");
    const char *cmd = cli->args[0];
    int st;
    const char *known[] = {"list", "show", "refs", "mark-bad", "create", "delete", "chain", "uses", NULL};
    int k = 0;
    while (known[k] && strcmp(known[k], cmd))
        k++;
    if (!known[k])
        return sk_error(SK_EINPUT,
                        "unknown command '%s': expected list, show, refs, mark-bad, create, delete, "
                        "chain or uses",
                        cmd);
    if ((st = need_args(cli, k == 0 ? 0 : 1,
                        k == 3 || k == 6 ? "the reference id" : k == 7 ? "the image id" : "the refset name")))
        return st;
    if ((r->have_ra || r->have_dec || r->place.target || r->place.section || r->filter) && k != 2)
        return sk_error(SK_EINPUT, "%s: --ra/--dec/--target/--section/--filter belong to `refs`", cmd);
    if ((r->reason || r->by) && k != 3)
        return sk_error(SK_EINPUT, "%s: --reason and --by belong to `mark-bad`", cmd);
    if (r->description_given && k != 4)
        return sk_error(SK_EINPUT, "%s: --description belongs to `create`", cmd);
    if (r->force && k != 5)
        return sk_error(SK_EINPUT, "%s: --force belongs to `delete`", cmd);
    long long ref_id = 0;
    if (k == 3 || k >= 6) {
        char *end = NULL;
        ref_id = strtoll(cli->args[1], &end, 10);
        if (!*cli->args[1] || *end || ref_id <= 0)
            return sk_error(SK_EINPUT, "%s: '%s' is not %s", cmd, cli->args[1],
                            k == 7 ? "an image id" : "a reference id (see `refset refs`)");
        if (k == 3 && (!r->reason || !*r->reason))
            return sk_error(SK_EINPUT, "mark-bad: --reason TEXT is required");
    }
    sk_db *db = NULL;
    if ((st = sk_db_connect(cli->config, &db)))
        return st;
    const char *name = cli->nargs > 1 ? cli->args[1] : NULL;
    switch (k) {
    case 0:
        st = cmd_list(db, r);
        break;
    case 1:
        st = cmd_show(db, r, name);
        break;
    case 2:
        st = cmd_refs(db, r, name, cli->config);
        break;
    case 3:
        st = sk_ref_mark_bad(db, ref_id, r->reason, sk_bad_marker(r->by));
        if (!st)
            printf("%lld\n", ref_id);
        break;
    case 4: {
        const char *desc = r->description_given
                               ? r->description
                               : sk_config_string(cli->config, "referencing.description", NULL);
        st = sk_refset_create(db, name, desc);
        if (!st)
            printf("%s\n", name);
        break;
    }
    case 6:
        st = cmd_chain(db, r, ref_id);
        break;
    case 7:
        st = cmd_uses(db, r, ref_id);
        break;
    default: {
        long deleted = 0;
        st = sk_refset_delete(db, name, r->force, &deleted);
        if (!st) {
            if (deleted)
                sk_info("deleted %ld reference%s with refset '%s'", deleted,
                        deleted == 1 ? "" : "s", name);
            printf("%s\n", name);
        }
        break;
    }
    }
    fflush(stdout);
    sk_db_close(db);
    return st;
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "refset",
        .usage = "refset [OPTIONS] list | show NAME | refs NAME [--ra D --dec D | --target T "
                 "--section S] [--filter F] | mark-bad REF --reason TEXT [--by NAME] | create NAME "
                 "[--description TEXT] | delete NAME [--force] | chain REF | uses IMAGE | report NAME "
                 "| report --since DATE [--outdir DIR]",
        .summary = "Manage reference sets: list them, show their provenances and criteria, list "
                   "their references and the one a pipeline loads for a place, mark references "
                   "bad, create and delete refsets, show the chain of replacements of a reference "
                   "and the references made from an image, and write the HTML report page of a "
                   "refset or of the coadds made since a date.",
    };
    request r;
    memset(&r, 0, sizeof r);
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &r);
    if (st == SK_OK)
        st = run(&cli, &r);
    return sk_cli_finish(&cli, st);
}
