/* skydb: create, start, stop, migrate, inspect and check the skystack database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "skystack/skystack.h"

typedef struct request {
    int repair, checksums;
} request;

static const sk_opt options[] = {
    {"repair", 0, 0, NULL, "fsck: fix what is safe to fix, and say what was done", NULL},
    {"checksums", 0, 0, NULL, "fsck: also compare the md5 of every file with its row", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    request *r = user;
    if (!strcmp(opt->name, "repair"))
        r->repair = 1;
    else if (!strcmp(opt->name, "checksums"))
        r->checksums = 1;
    else
        return sk_error(SK_EINPUT, "--%s: unhandled option", opt->name);
    return SK_OK;
}

static void fsck_report(void *ctx, const char *kind, const char *what, int repaired)
{
    (void)ctx;
    printf("%s: %s%s\n", kind, what,
           !repaired ? ""
           : !strcmp(kind, "checksum") ? " (marked bad)"
           : !strcmp(kind, "dead-claim") ? " (claim removed)"
           : !strcmp(kind, "pending-coadd") ? " (rows deleted)"
                                           : " (removed)");
}

/* fsck: the rows and files of the data root checked; exit 3 when a
 * finding remains unrepaired. */
static int cmd_fsck(const sk_cli *cli, const request *r)
{
    char root[4096];
    int st = sk_storage_root(cli->config, root, sizeof root);
    sk_db *db = NULL;
    st = st ? st : sk_db_connect(cli->config, &db);
    if (st)
        return st;
    sk_fsck_opts o = {.data_root = root, .repair = r->repair, .checksums = r->checksums,
                      .threads = cli->threads, .report = fsck_report};
    sk_fsck_counts c;
    st = sk_fsck(db, &o, &c);
    sk_db_close(db);
    if (st)
        return st;
    long long found = c.orphan_files + c.temporary_files + c.missing_files + c.checksum_mismatches +
                      c.dead_claims + c.pending_coadds;
    printf("rows %lld, files %lld: %lld orphan files, %lld temporary files, %lld missing files, "
           "%lld checksum mismatches, %lld dead claims, %lld pending coadds; %lld repaired\n",
           c.rows, c.files, c.orphan_files, c.temporary_files, c.missing_files,
           c.checksum_mismatches, c.dead_claims, c.pending_coadds, c.repaired);
    fflush(stdout);
    if (found > c.repaired)
        return sk_error(SK_EIO, "%s: %lld finding%s not repaired%s", root, found - c.repaired,
                        found - c.repaired == 1 ? "" : "s",
                        r->repair ? " (not safe to repair: see skydb(1))" : " (--repair fixes what is safe)");
    return SK_OK;
}

static int need_private(const sk_db_target *t, const char *command)
{
    if (t->is_private)
        return SK_OK;
    return sk_error(SK_EINPUT,
                    "%s: only the private cluster is managed by skydb, but the tools use %s; "
                    "manage that server with its own tools (or unset SKYSTACK_DB and db.conninfo)",
                    command, t->description);
}

static int migrate(const sk_config *cfg)
{
    sk_db *db = NULL;
    int st = sk_db_connect_raw(cfg, &db);
    if (st)
        return st;
    int applied = 0, version = 0;
    st = sk_db_migrate(db, NULL, &applied);
    if (st == SK_OK)
        st = sk_db_schema_version(db, &version);
    if (st == SK_OK)
        sk_info("%s: schema version %d (%d migration%s applied now)", sk_db_get_target(db)->description,
                version, applied, applied == 1 ? "" : "s");
    sk_db_close(db);
    return st;
}

static int cmd_start(const sk_config *cfg, const sk_db_target *t, const char *command)
{
    if (!t->is_private && strcmp(command, "init") == 0)
        return migrate(cfg); /* an existing server: the extension and the schema */
    int st = need_private(t, command);
    if (st)
        return st;
    if (t->private_dir_is_default && geteuid() == 0)
        sk_info("running as root: the private cluster lives in %s (set SKYSTACK_DB_DIR to "
                "choose another place)", t->private_dir);
    if ((st = sk_cluster_start(cfg, t->private_dir)))
        return st;
    return migrate(cfg);
}

static int cmd_stop(const sk_config *cfg, const sk_db_target *t)
{
    int st = need_private(t, "stop");
    if (st)
        return st;
    int state;
    if ((st = sk_cluster_state(t->private_dir, &state)))
        return st;
    if (state == SK_CLUSTER_ABSENT)
        return sk_error(SK_ENOTFOUND, "stop: there is no private cluster in %s", t->private_dir);
    if (state == SK_CLUSTER_STOPPED) {
        sk_info("the private cluster in %s is not running", t->private_dir);
        return SK_OK;
    }
    return sk_cluster_stop(cfg, t->private_dir);
}

static int cmd_status(const sk_config *cfg, const sk_db_target *t)
{
    printf("database: %s\n", t->description);
    if (t->is_private) {
        int state;
        int st = sk_cluster_state(t->private_dir, &state);
        if (st)
            return st;
        if (state != SK_CLUSTER_RUNNING) {
            printf("state: %s\n", state == SK_CLUSTER_ABSENT ? "absent" : "stopped");
            fflush(stdout);
            return sk_error(SK_EIO, "%s is %s: start it with `skydb start`", t->description,
                            state == SK_CLUSTER_ABSENT ? "absent" : "not running");
        }
    }
    sk_db *db = NULL;
    int st = sk_db_connect_raw(cfg, &db);
    if (st) {
        printf("state: unreachable\n");
        fflush(stdout);
        return st;
    }
    printf("state: running\n");
    int have = 0, shipped = 0;
    st = sk_db_schema_version(db, &have);
    if (st == SK_OK)
        st = sk_db_shipped_version(NULL, &shipped);
    if (st == SK_OK) {
        printf("schema: %d (shipped: %d)\n", have, shipped);
        if (have > 0) {
            sk_db_counts n;
            st = sk_db_count_rows(db, &n);
            if (st == SK_OK)
                printf("images: %lld\nprovenances: %lld\nreferences: %lld\n", n.images,
                       n.provenances, n.refs);
        }
        if (st == SK_OK && have < shipped)
            st = sk_error(SK_EIO, "the schema is at version %d, this software needs %d: run "
                                  "`skydb migrate`", have, shipped);
    }
    fflush(stdout);
    sk_db_close(db);
    return st;
}

/* Exec psql on the database, the connection parameters passed through the
 * standard PG* variables (never argv: a password must not show in ps). */
static int cmd_psql(const sk_db_target *t, char **extra, int nextra)
{
    char psql[4096];
    int st = sk_pg_program("psql", psql, sizeof psql);
    if (st)
        return st;
    if (t->is_private) {
        int state;
        if ((st = sk_cluster_state(t->private_dir, &state)))
            return st;
        if (state != SK_CLUSTER_RUNNING)
            return sk_error(SK_EIO, "%s is not running: start it with `skydb start`", t->description);
    }
    if ((st = sk_db_target_export_env(t)))
        return st;
    char **argv = calloc((size_t)nextra + 2, sizeof *argv);
    if (!argv)
        return sk_error(SK_EIO, "out of memory");
    argv[0] = psql;
    for (int i = 0; i < nextra; i++)
        argv[i + 1] = extra[i];
    fflush(stdout);
    fflush(stderr);
    execv(psql, argv);
    free(argv);
    return sk_error(SK_EIO, "%s: cannot execute it", psql);
}

int main(int argc, char **argv)
{
    sk_cli cli = {
        .program = "skydb",
        .usage = "skydb [OPTIONS] init|start|stop|status|migrate|fsck [--repair] [--checksums]|psql "
                 "[-- PSQL-ARGS]",
        .summary = "Create, start, stop, migrate, inspect and check the skystack database: the "
                   "private PostgreSQL cluster, or the server named by SKYSTACK_DB.",
    };
    request r = {0, 0};
    int st = sk_cli_parse(&cli, argc, argv, options, handle, &r);
    if (st)
        return sk_cli_finish(&cli, st);
    if (cli.nargs < 1) {
        st = sk_error(SK_EINPUT, "missing command: init, start, stop, status, migrate, fsck or "
                                 "psql (see skydb --help)");
        return sk_cli_finish(&cli, st);
    }
    const char *command = cli.args[0];
    int is_psql = strcmp(command, "psql") == 0;
    if (!is_psql && cli.nargs > 1) {
        st = sk_error(SK_EINPUT, "%s: unexpected argument '%s'", command, cli.args[1]);
        return sk_cli_finish(&cli, st);
    }
    if ((r.repair || r.checksums) && strcmp(command, "fsck")) {
        st = sk_error(SK_EINPUT, "%s: --repair and --checksums belong to fsck", command);
        return sk_cli_finish(&cli, st);
    }
    sk_db_target target;
    st = sk_db_target_resolve(cli.config, &target);
    if (st)
        return sk_cli_finish(&cli, st);
    if (strcmp(command, "init") == 0 || strcmp(command, "start") == 0)
        st = cmd_start(cli.config, &target, command);
    else if (strcmp(command, "stop") == 0)
        st = cmd_stop(cli.config, &target);
    else if (strcmp(command, "status") == 0)
        st = cmd_status(cli.config, &target);
    else if (strcmp(command, "migrate") == 0)
        st = migrate(cli.config);
    else if (strcmp(command, "fsck") == 0)
        st = cmd_fsck(&cli, &r);
    else if (is_psql)
        st = cmd_psql(&target, cli.args + 1, cli.nargs - 1);
    else
        st = sk_error(SK_EINPUT, "%s: unknown command (init, start, stop, status, migrate, fsck, psql)",
                      command);
    sk_db_target_clear(&target);
    return sk_cli_finish(&cli, st);
}
