/* skybad: mark images, coadds, extractions and references bad (or good again), list what is bad, show the history of marks and what used an image. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "skystack/skystack.h"
#include "skystack/lifecycle.h"

typedef struct request {
    const char *reason, *by;
    int json;
} request;

static const sk_opt options[] = {
    {"reason", 0, 1, "TEXT", "mark: why it is bad (required); unmark: why it is good again", NULL},
    {"by", 0, 1, "NAME", "who marks it (default: $SKYSTACK_USER, else the login name)", NULL},
    {"json", 0, 0, NULL, "print JSON (one object per line) instead of text", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    request *r = user;
    if (!strcmp(opt->name, "reason"))
        r->reason = arg;
    else if (!strcmp(opt->name, "by"))
        r->by = arg;
    else if (!strcmp(opt->name, "json"))
        r->json = 1;
    else
        return sk_error(SK_EINPUT, "--%s: unhandled option", opt->name);
    return SK_OK;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static int parse_id(const char *cmd, const char *text, long long *id)
{
    char *end = NULL;
    *id = strtoll(text, &end, 10);
    if (!*text || *end || *id <= 0)
        return sk_error(SK_EINPUT, "%s: '%s' is not an id", cmd, text);
    return SK_OK;
}

/* mark / unmark KIND ID...: every id checked before any is written. */
static int cmd_mark(sk_db *db, const sk_cli *cli, const request *r, int mark)
{
    const char *cmd = cli->args[0];
    int kind, st = SK_OK;
    if (cli->nargs < 3)
        return sk_error(SK_EINPUT, "%s: expected KIND ID... (KIND: image, coadd, extraction or "
                                   "reference)", cmd);
    if ((st = sk_bad_kind_from_name(cmd, cli->args[1], &kind)))
        return st;
    if (mark && (!r->reason || !*r->reason))
        return sk_error(SK_EINPUT, "mark: --reason TEXT is required");
    long long *ids = calloc((size_t)cli->nargs, sizeof *ids);
    if (!ids)
        return sk_error(SK_EIO, "out of memory");
    for (int i = 2; i < cli->nargs && !st; i++)
        st = parse_id(cmd, cli->args[i], &ids[i]);
    for (int i = 2; i < cli->nargs && !st; i++) {
        int changed = 0;
        st = sk_bad_mark(db, kind, ids[i], mark, r->reason, sk_bad_marker(r->by), &changed);
        if (!st) {
            if (!changed)
                sk_info("%s %lld was %s already", sk_bad_kind_name(kind), ids[i],
                        mark ? "marked bad" : "not marked bad");
            printf("%lld\n", ids[i]);
        }
    }
    free(ids);
    return st;
}

static int cmd_list(sk_db *db, const sk_cli *cli, const request *r)
{
    int kind = -1, st = SK_OK;
    if (cli->nargs > 2)
        return sk_error(SK_EINPUT, "list: unexpected argument '%s'", cli->args[2]);
    if (cli->nargs == 2 && (st = sk_bad_kind_from_name("list", cli->args[1], &kind)))
        return st;
    json_t *arr = NULL;
    if ((st = sk_bad_list(db, kind, &arr)))
        return st;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        if (r->json)
            sk_json_print_line(stdout, o);
        else
            printf("%-10s %8lld  %s  %-12s %s\n", str(o, "kind"),
                   (long long)json_integer_value(json_object_get(o, "id")), str(o, "at"),
                   str(o, "by"), str(o, "reason"));
    }
    json_decref(arr);
    return SK_OK;
}

static int cmd_history(sk_db *db, const sk_cli *cli, const request *r)
{
    int kind, st;
    long long id;
    if (cli->nargs != 3)
        return sk_error(SK_EINPUT, "history: expected KIND ID");
    if ((st = sk_bad_kind_from_name("history", cli->args[1], &kind)) ||
        (st = parse_id("history", cli->args[2], &id)))
        return st;
    json_t *arr = NULL;
    if ((st = sk_bad_history(db, kind, id, &arr)))
        return st;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        if (r->json)
            sk_json_print_line(stdout, o);
        else
            printf("%-6s  %s  %-12s %s\n", str(o, "action"), str(o, "at"), str(o, "by"),
                   str(o, "reason"));
    }
    json_decref(arr);
    return SK_OK;
}

static int cmd_users(sk_db *db, const sk_cli *cli, const request *r)
{
    long long id;
    int st;
    if (cli->nargs != 2)
        return sk_error(SK_EINPUT, "users: expected one IMAGE id");
    if ((st = parse_id("users", cli->args[1], &id)))
        return st;
    json_t *u = NULL;
    if ((st = sk_bad_users(db, id, &u)))
        return st;
    if (r->json) {
        sk_json_print_line(stdout, u);
        json_decref(u);
        return SK_OK;
    }
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(u, "coadds"), i, o)
        printf("coadd %lld %s%s%s\n", (long long)json_integer_value(json_object_get(o, "coadd_id")),
               str(o, "filepath"), json_is_true(json_object_get(o, "is_bad")) ? " BAD" : "",
               json_is_true(json_object_get(o, "pending")) ? " PENDING" : "");
    json_array_foreach(json_object_get(u, "references"), i, o)
        printf("reference %lld coadd %lld %s %s %s\n",
               (long long)json_integer_value(json_object_get(o, "ref_id")),
               (long long)json_integer_value(json_object_get(o, "coadd_id")), str(o, "place"),
               str(o, "filter"),
               json_is_true(json_object_get(o, "loadable")) ? "loadable" : str(o, "trouble"));
    json_decref(u);
    return SK_OK;
}

static int run(sk_cli *cli, const request *r)
{
    static const char *const known[] = {"mark", "unmark", "list", "history", "users", NULL};
    if (cli->nargs < 1)
        return sk_error(SK_EINPUT, "missing command: mark, unmark, list, history or users (see --help)");
    int k = 0;
    while (known[k] && strcmp(known[k], cli->args[0]))
        k++;
    if (!known[k])
        return sk_error(SK_EINPUT, "unknown command '%s': expected mark, unmark, list, history or users",
                        cli->args[0]);
    if (r->reason && k > 1)
        return sk_error(SK_EINPUT, "%s: --reason belongs to mark and unmark", cli->args[0]);
    if (r->by && k > 1)
        return sk_error(SK_EINPUT, "%s: --by belongs to mark and unmark", cli->args[0]);
    sk_db *db = NULL;
    int st = sk_db_connect(cli->config, &db);
    if (st)
        return st;
    if (k <= 1)
        st = cmd_mark(db, cli, r, k == 0);
    else if (k == 2)
        st = cmd_list(db, cli, r);
    else if (k == 3)
        st = cmd_history(db, cli, r);
    else
        st = cmd_users(db, cli, r);
    fflush(stdout);
    sk_db_close(db);
    return st;
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "skybad",
        .usage = "skybad [OPTIONS] mark KIND ID... --reason TEXT | unmark KIND ID... | list [KIND] | "
                 "history KIND ID | users IMAGE   (KIND: image, coadd, extraction, reference)",
        .summary = "Mark images, coadds, extractions and references bad with a reason (or good "
                   "again), list what is bad, show the history of the marks of one, and show "
                   "which coadds and references used an image.",
    };
    request r;
    memset(&r, 0, sizeof r);
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &r);
    if (st == SK_OK)
        st = run(&cli, &r);
    return sk_cli_finish(&cli, st);
}
