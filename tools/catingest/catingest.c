/* catingest.c: the catingest program: load a reference catalogue (FITS
 * tables or CSV, one file or many, through a column map) into the database
 * (a q3c-indexed table loaded by COPY) and/or a folder of HEALPix shards,
 * one library call (sk_catalog_ingest); print the catalogue id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/skystack.h"

typedef struct catingest_opts {
    sk_catingest_opts o;
    int no_db;
} catingest_opts;

static const sk_opt options[] = {
    {"name", 0, 1, "NAME", "the catalogue's name (e.g. gaia-dr3)", NULL},
    {"cat-version", 0, 1, "TEXT", "the catalogue's version (default empty)", NULL},
    {"columns", 'c', 1, "MAP", "column map, or the preset gaia (default gaia; see catingest(1))", NULL},
    {"outdir", 'o', 1, "DIR", "also write a folder of HEALPix shards (a new folder)", NULL},
    {"nside", 0, 1, "N", "HEALPix nside of the shards (power of 2, 1..256; default 64)", NULL},
    {"no-db", 0, 0, NULL, "no database: only the shard folder of --outdir", NULL},
    {"block-rows", 0, 1, "N", "rows read and loaded at a time (default 100000)", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int positive(const char *opt, const char *arg, long *v)
{
    char *end;
    long n = strtol(arg, &end, 10);
    if (*end || n <= 0)
        return sk_error(SK_EINPUT, "--%s: '%s' is not a positive integer", opt, arg);
    *v = n;
    return SK_OK;
}

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    (void)cli;
    catingest_opts *c = user;
    const char *n = opt->name;
    if (!strcmp(n, "name")) c->o.name = arg;
    else if (!strcmp(n, "cat-version")) c->o.version = arg;
    else if (!strcmp(n, "columns")) c->o.columns = arg;
    else if (!strcmp(n, "outdir")) c->o.outdir = arg;
    else if (!strcmp(n, "nside")) return positive(n, arg, &c->o.nside);
    else if (!strcmp(n, "block-rows")) return positive(n, arg, &c->o.block_rows);
    else if (!strcmp(n, "no-db")) c->no_db = 1;
    else return sk_error(SK_EINPUT, "--%s: not a catingest option", n);
    return SK_OK;
}

int main(int argc, char **argv)
{
    sk_cli cli = {.program = "catingest",
                  .usage = "catingest --name NAME [OPTIONS] FILE...",
                  .summary = "load a reference catalogue into the database and/or a folder of HEALPix shards, "
                             "under an id from its content and column map; print the id"};
    catingest_opts c;
    memset(&c, 0, sizeof c);
    c.o.version = "";
    int rc = sk_cli_parse(&cli, argc, argv, options, handle, &c);
    if (!rc && cli.nargs == 0)
        rc = sk_error(SK_EINPUT, "no catalogue FILE given (see catingest --help)");
    if (!rc && c.no_db && !c.o.outdir)
        rc = sk_error(SK_EINPUT, "--no-db: give --outdir DIR for the shard folder");
    if (!rc && !c.no_db)
        rc = sk_db_connect(cli.config, &c.o.db);
    sk_catinfo info;
    memset(&info, 0, sizeof info);
    if (!rc)
        rc = sk_catalog_ingest((const char *const *)cli.args, cli.nargs, &c.o, &info);
    if (!rc) {
        sk_info("catalogue %s%s%s: %lld rows, bands %d, content %s", info.name, info.version[0] ? " " : "",
                info.version, info.nrows, info.nbands, info.content_sha256);
        printf("%s\n", info.id);
        fflush(stdout);
    }
    sk_catinfo_clear(&info);
    sk_db_close(c.o.db);
    return sk_cli_finish(&cli, rc);
}
