/* migrate.c: applying the numbered schema migrations of share/sql to a database, once each, safely under concurrency. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "skystack/db.h"
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/log.h"
#include "skystack/share.h"
#include "db_priv.h"

/* The advisory lock key held while migrating (any fixed 64-bit number). */
#define SK_MIGRATE_LOCK "7437046349623591011"

typedef struct migration {
    int version;
    char name[256];
} migration;

/* "0001_schema.sql" -> version 1; 0 when the name is not a migration. */
static int migration_version(const char *name)
{
    size_t n = strlen(name);
    if (n < 9 || strcmp(name + n - 4, ".sql") != 0)
        return 0;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)name[i]))
            return 0;
    if (name[4] != '_')
        return 0;
    return atoi(name) > 0 ? atoi(name) : 0;
}

static int cmp_migration(const void *a, const void *b)
{
    return ((const migration *)a)->version - ((const migration *)b)->version;
}

static int sql_dir_path(const char *sql_dir, char *out, size_t outsz)
{
    if (sql_dir) {
        snprintf(out, outsz, "%s", sql_dir);
        return SK_OK;
    }
    return sk_share_path("sql", out, outsz);
}

/* The migrations in dir, sorted by version; duplicates are an error. */
static int list_migrations(const char *dir, migration **out, int *count)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return sk_error(SK_EIO, "%s: cannot read the migrations: %s", dir, strerror(errno));
    migration *list = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int v = migration_version(e->d_name);
        if (!v)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            migration *m = realloc(list, (size_t)cap * sizeof *m);
            if (!m) {
                free(list);
                closedir(d);
                return sk_error(SK_EIO, "out of memory");
            }
            list = m;
        }
        list[n].version = v;
        snprintf(list[n].name, sizeof list[n].name, "%s", e->d_name);
        n++;
    }
    closedir(d);
    qsort(list, (size_t)n, sizeof *list, cmp_migration);
    for (int i = 1; i < n; i++)
        if (list[i].version == list[i - 1].version) {
            int st = sk_error(SK_EINPUT, "%s: two migrations with number %04d (%s, %s)", dir,
                              list[i].version, list[i - 1].name, list[i].name);
            free(list);
            return st;
        }
    *out = list;
    *count = n;
    return SK_OK;
}

/* The migrations shipped in `sql_dir` (NULL: share/sql), in order, and
 * the folder they are in (dir, 4096 bytes). */
static int shipped_migrations(const char *sql_dir, char dir[4096], migration **list, int *n)
{
    int st = sql_dir_path(sql_dir, dir, 4096);
    return st ? st : list_migrations(dir, list, n);
}

int sk_db_shipped_version(const char *sql_dir, int *version)
{
    *version = 0;
    char dir[4096];
    migration *list = NULL;
    int n = 0;
    int st = shipped_migrations(sql_dir, dir, &list, &n);
    if (st)
        return st;
    if (n > 0)
        *version = list[n - 1].version;
    free(list);
    return SK_OK;
}

int sk_db_schema_version(sk_db *db, int *version)
{
    *version = 0;
    PGresult *r = NULL;
    int st = sk_db_exec(db, "reading the schema version",
                        "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL, &r);
    if (st) {
        if (strcmp(sk_db_last_sqlstate(db), "42P01") != 0) /* undefined_table: no schema yet */
            return st;
        sk_error_clear();
        return SK_OK;
    }
    *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return SK_OK;
}

static int read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sk_error(SK_EIO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return sk_error(SK_EIO, "out of memory");
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got < 4096)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return sk_error(SK_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return SK_OK;
}

/* Run a whole SQL script (several statements, no parameters). */
static int exec_script(sk_db *db, const char *name, const char *sql)
{
    PGresult *r = PQexec(db->conn, sql);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        PQclear(r);
        return SK_OK;
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn));
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    PQclear(r);
    return sk_error(SK_EIO, "migration %s failed: %s", name, msg);
}

static void unlock_migrations(sk_db *db)
{
    const char *params[1] = {SK_MIGRATE_LOCK};
    PGresult *r = PQexecParams(db->conn, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, params,
                               NULL, NULL, 0);
    PQclear(r);
}

int sk_db_migrate(sk_db *db, const char *sql_dir, int *applied)
{
    if (applied)
        *applied = 0;
    char dir[4096];
    migration *list = NULL;
    int n = 0;
    int st = shipped_migrations(sql_dir, dir, &list, &n);
    if (st)
        return st;
    if (n == 0) {
        free(list);
        return sk_error(SK_EINPUT, "%s: no migrations (NNNN_name.sql) found", dir);
    }
    const char *lock[1] = {SK_MIGRATE_LOCK};
    st = sk_db_exec(db, "locking the schema", "SELECT pg_advisory_lock($1::bigint)", 1, lock, NULL);
    if (st) {
        free(list);
        return st;
    }
    st = sk_db_exec(db, "creating schema_migrations",
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY,"
                    " name text NOT NULL,"
                    " sha256 text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    0, NULL, NULL);
    int count = 0;
    for (int i = 0; st == SK_OK && i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, list[i].name);
        char *sql = NULL;
        size_t len = 0;
        st = read_file(path, &sql, &len);
        if (st)
            break;
        char sha[65];
        sk_sha256_hex(sql, len, sha);
        char vtext[16];
        snprintf(vtext, sizeof vtext, "%d", list[i].version);
        const char *p1[1] = {vtext};
        PGresult *r = NULL;
        st = sk_db_exec(db, "reading schema_migrations",
                        "SELECT sha256 FROM schema_migrations WHERE version = $1::integer", 1, p1, &r);
        if (st) {
            free(sql);
            break;
        }
        if (PQntuples(r) == 1) {
            if (strcmp(PQgetvalue(r, 0, 0), sha) != 0)
                sk_warn("migration %s was changed after it was applied (sha256 %s, applied %s); "
                        "migrations must never be edited: add a new one",
                        list[i].name, sha, PQgetvalue(r, 0, 0));
            PQclear(r);
            free(sql);
            continue;
        }
        PQclear(r);
        st = sk_db_begin(db);
        if (st == SK_OK)
            st = exec_script(db, list[i].name, sql);
        free(sql);
        if (st == SK_OK) {
            const char *p3[3] = {vtext, list[i].name, sha};
            st = sk_db_exec(db, "recording a migration",
                            "INSERT INTO schema_migrations (version, name, sha256) "
                            "VALUES ($1::integer, $2, $3)",
                            3, p3, NULL);
        }
        if (st == SK_OK)
            st = sk_db_commit(db);
        if (st) {
            sk_db_rollback(db);
            break;
        }
        sk_info("applied migration %s", list[i].name);
        count++;
    }
    unlock_migrations(db);
    free(list);
    if (applied)
        *applied = count;
    return st;
}
