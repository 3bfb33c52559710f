/* connect.c: choosing the database, connecting to it and running parameterised statements (see skystack/db.h). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "skystack/db.h"
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/log.h"
#include "db_priv.h"
#include "lifecycle_priv.h"
#include "db_internal.h"

#define SK_DB_NAME "skystack"

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return d;
}

/* Append `s` to a growing malloc'd string. */
static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 128;
        while (*len + n + 1 > c)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b) {
            fprintf(stderr, "out of memory\n");
            abort();
        }
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

/* A conninfo value in single quotes with \ and ' escaped. */
static void append_quoted(char **buf, size_t *len, size_t *cap, const char *v)
{
    append(buf, len, cap, "'");
    for (const char *p = v; *p; p++) {
        char c[3] = {0};
        if (*p == '\'' || *p == '\\') {
            c[0] = '\\';
            c[1] = *p;
        } else {
            c[0] = *p;
        }
        append(buf, len, cap, c);
    }
    append(buf, len, cap, "'");
}

/* The conninfo without its password, for messages. */
static char *mask_conninfo(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        PQfreemem(err);
        return xstrdup("(unparsable conninfo)");
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    append(&buf, &len, &cap, "");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (len)
            append(&buf, &len, &cap, " ");
        append(&buf, &len, &cap, o->keyword);
        append(&buf, &len, &cap, "=");
        if (strcmp(o->keyword, "password") == 0)
            append(&buf, &len, &cap, "********");
        else
            append_quoted(&buf, &len, &cap, o->val);
    }
    PQconninfoFree(opts);
    if (len == 0)
        append(&buf, &len, &cap, "(libpq defaults from the PG* variables)");
    return buf;
}

int sk_db_target_resolve(const sk_config *cfg, sk_db_target *out)
{
    memset(out, 0, sizeof *out);
    const char *env = getenv("SKYSTACK_DB");
    const char *key = cfg ? sk_config_string(cfg, "db.conninfo", NULL) : NULL;
    const char *origin = NULL, *conninfo = NULL;
    if (env && *env) {
        origin = "SKYSTACK_DB";
        conninfo = env;
    } else if (key && *key) {
        origin = "db.conninfo";
        conninfo = key;
    }
    if (conninfo) {
        char *err = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
        if (!opts) {
            int st = sk_error(SK_EINPUT, "%s: not a libpq conninfo or URI: %s", origin,
                              err ? err : "parse error");
            PQfreemem(err);
            return st;
        }
        PQconninfoFree(opts);
        char *masked = mask_conninfo(conninfo);
        size_t n = strlen(masked) + strlen(origin) + 32;
        out->description = malloc(n);
        if (!out->description)
            abort();
        snprintf(out->description, n, "%s (%s)", masked, origin);
        free(masked);
        out->conninfo = xstrdup(conninfo);
        return SK_OK;
    }

    out->is_private = 1;
    const char *dir_env = getenv("SKYSTACK_DB_DIR");
    const char *dir_key = cfg ? sk_config_string(cfg, "db.private_dir", NULL) : NULL;
    char dir[4096];
    if (dir_env && *dir_env) {
        snprintf(dir, sizeof dir, "%s", dir_env);
    } else if (dir_key && *dir_key) {
        snprintf(dir, sizeof dir, "%s", dir_key);
    } else {
        out->private_dir_is_default = 1;
        const char *home = getenv("HOME");
        if (geteuid() == 0)
            snprintf(dir, sizeof dir, "/var/lib/skystack/db");
        else if (home && *home)
            snprintf(dir, sizeof dir, "%s/.local/share/skystack/db", home);
        else
            return sk_error(SK_EINPUT, "HOME is not set: set SKYSTACK_DB_DIR (private cluster) "
                                       "or SKYSTACK_DB (a server)");
    }
    if (dir[0] != '/') {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            return sk_error(SK_EIO, "cannot resolve the current directory: %s", strerror(errno));
        size_t lc = strlen(cwd), ld = strlen(dir);
        if (lc + 1 + ld >= sizeof dir)
            return sk_error(SK_EINPUT, "%s/%s: path too long", cwd, dir);
        memmove(dir + lc + 1, dir, ld + 1);
        memcpy(dir, cwd, lc);
        dir[lc] = '/';
    }
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dir[--dl] = '\0';
    out->private_dir = xstrdup(dir);

    char *buf = NULL;
    size_t len = 0, cap = 0;
    append(&buf, &len, &cap, "host=");
    append_quoted(&buf, &len, &cap, dir);
    append(&buf, &len, &cap, " dbname=" SK_DB_NAME " user=" SK_DB_NAME " connect_timeout=10");
    out->conninfo = buf;
    size_t n = strlen(dir) + 64;
    out->description = malloc(n);
    if (!out->description)
        abort();
    snprintf(out->description, n, "the private cluster in %s", dir);
    return SK_OK;
}

void sk_db_target_clear(sk_db_target *t)
{
    if (!t)
        return;
    free(t->conninfo);
    free(t->description);
    free(t->private_dir);
    memset(t, 0, sizeof *t);
}

/* Server notices (e.g. "extension exists, skipping") are debug output. */
static void notice_to_debug(void *arg, const char *message)
{
    (void)arg;
    char line[1024];
    snprintf(line, sizeof line, "%s", message);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    sk_debug("database: %s", line);
}

/* The libpq message on one line. */
static void one_line(const char *in, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", in ? in : "");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    size_t n = strlen(out);
    while (n && out[n - 1] == ' ')
        out[--n] = '\0';
}

int sk_db_connect_raw(const sk_config *cfg, sk_db **out)
{
    *out = NULL;
    sk_db *db = calloc(1, sizeof *db);
    if (!db)
        return sk_error(SK_EIO, "out of memory");
    int st = sk_db_target_resolve(cfg, &db->target);
    if (st) {
        free(db);
        return st;
    }
    db->conn = PQconnectdb(db->target.conninfo);
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
        char msg[1024];
        one_line(db->conn ? PQerrorMessage(db->conn) : "out of memory", msg, sizeof msg);
        if (db->target.is_private)
            st = sk_error(SK_EIO,
                          "cannot connect to %s (%s); start it with `skydb start` "
                          "(or set SKYSTACK_DB to use a PostgreSQL server)",
                          db->target.description, msg);
        else
            st = sk_error(SK_EIO,
                          "cannot connect to the database %s: %s; check that the server is "
                          "running and reachable (or unset SKYSTACK_DB and run `skydb start` "
                          "for a private cluster)",
                          db->target.description, msg);
        sk_db_close(db);
        return st;
    }
    PQsetNoticeProcessor(db->conn, notice_to_debug, NULL);
    long timeout_ms = cfg ? sk_config_long(cfg, "db.statement_timeout_ms", 0) : 0;
    if (timeout_ms > 0) {
        char v[32];
        snprintf(v, sizeof v, "%ld", timeout_ms);
        const char *params[1] = {v};
        st = sk_db_exec(db, "setting db.statement_timeout_ms",
                        "SELECT set_config('statement_timeout', $1, false)", 1, params, NULL);
        if (st) {
            sk_db_close(db);
            return st;
        }
    }
    *out = db;
    return SK_OK;
}

int sk_db_connect(const sk_config *cfg, sk_db **out)
{
    sk_db *db = NULL;
    int st = sk_db_connect_raw(cfg, &db);
    if (st)
        return st;
    int have = 0, shipped = 0;
    st = sk_db_schema_version(db, &have);
    if (st) {
        sk_db_close(db);
        return st;
    }
    if (have == 0) {
        st = sk_error(SK_EIO, "%s has no skystack schema: run `skydb migrate`%s",
                      db->target.description, db->target.is_private ? " (or `skydb start`)" : "");
        sk_db_close(db);
        return st;
    }
    if (sk_db_shipped_version(NULL, &shipped) == SK_OK && shipped > have) {
        st = sk_error(SK_EIO, "%s has schema version %d but this software needs %d: run `skydb migrate`",
                      db->target.description, have, shipped);
        sk_db_close(db);
        return st;
    }
    sk_error_clear();
    *out = db;
    return SK_OK;
}

void sk_db_close(sk_db *db)
{
    if (!db)
        return;
    if (db->conn) {
        if (db->in_transaction && PQstatus(db->conn) == CONNECTION_OK) {
            PGresult *r = PQexec(db->conn, "ROLLBACK");
            PQclear(r);
        }
        PQfinish(db->conn);
    }
    sk_db_target_clear(&db->target);
    free(db);
}

const char *sk_db_last_sqlstate(const sk_db *db)
{
    return db ? db->sqlstate : "";
}

int sk_db_exec(sk_db *db, const char *what, const char *sql, int nparams,
               const char *const *params, PGresult **res)
{
    if (res)
        *res = NULL;
    db->sqlstate[0] = '\0';
    PGresult *r = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return SK_OK;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state)
        snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state);
    char msg[1024];
    one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn), msg, sizeof msg);
    if (!msg[0])
        one_line(PQerrorMessage(db->conn), msg, sizeof msg);
    PQclear(r);
    if (PQstatus(db->conn) != CONNECTION_OK)
        return sk_error(SK_EIO, "%s: lost the connection to %s: %s", what,
                        db->target.description, msg);
    if (state && strcmp(state, "23505") == 0)
        return sk_error(SK_EINPUT, "%s: already exists: %s", what, msg);
    return sk_error(SK_EIO, "%s: database error: %s", what, msg);
}

int sk_db_exec_row(sk_db *db, const char *what, const char *sql, int nparams,
                   const char *const *params, PGresult **res)
{
    PGresult *r = NULL;
    int st = sk_db_exec(db, what, sql, nparams, params, &r);
    if (st)
        return st;
    int n = PQntuples(r);
    if (n != 1) {
        PQclear(r);
        if (res)
            *res = NULL;
        if (n == 0)
            return sk_error(SK_ENOTFOUND, "%s: not found", what);
        return sk_error(SK_EIO, "%s: %d rows where one was expected", what, n);
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return SK_OK;
}

int sk_db_begin(sk_db *db)
{
    if (db->in_transaction)
        return sk_error(SK_EIO, "database: a transaction is already open");
    int st = sk_db_exec(db, "BEGIN", "BEGIN", 0, NULL, NULL);
    if (st == SK_OK)
        db->in_transaction = 1;
    return st;
}

int sk_db_commit(sk_db *db)
{
    if (!db->in_transaction)
        return sk_error(SK_EIO, "database: COMMIT without a transaction");
    db->in_transaction = 0;
    return sk_db_exec(db, "COMMIT", "COMMIT", 0, NULL, NULL);
}

void sk_db_rollback(sk_db *db)
{
    if (!db || !db->in_transaction)
        return;
    db->in_transaction = 0;
    PGresult *r = PQexec(db->conn, "ROLLBACK");
    PQclear(r);
}

int sk_db_lock(sk_db *db, const char *name)
{
    if (!db->in_transaction)
        return sk_error(SK_EIO, "database: lock '%s' requested outside a transaction", name);
    char key[32];
    sk_db_lock_key(name, key);
    const char *params[1] = {key};
    return sk_db_exec(db, "taking an advisory lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1,
                      params, NULL);
}

const char *sk_db_value(const PGresult *res, int row, int col)
{
    if (!res || row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col))
        return NULL;
    return PQgetvalue(res, row, col);
}

double sk_db_double(const PGresult *res, int row, int col)
{
    const char *v = sk_db_value(res, row, col);
    if (!v)
        return NAN;
    char *end = NULL;
    double d = strtod(v, &end);
    if (end == v)
        return NAN;
    return d;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int sk_db_input_set_hash(const long long *ids, int n, char out[65])
{
    if (n <= 0)
        return sk_error(SK_EINPUT, "input set hash: no inputs");
    long long *sorted = malloc((size_t)n * sizeof *sorted);
    char *text = malloc((size_t)n * 22 + 1);
    if (!sorted || !text) {
        free(sorted);
        free(text);
        return sk_error(SK_EIO, "out of memory");
    }
    memcpy(sorted, ids, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_ll);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && sorted[i] == sorted[i - 1])
            continue;
        len += (size_t)sprintf(text + len, len ? ",%lld" : "%lld", sorted[i]);
    }
    sk_sha256_hex(text, len, out);
    free(sorted);
    free(text);
    return SK_OK;
}

const sk_db_target *sk_db_get_target(const sk_db *db)
{
    return &db->target;
}

int sk_db_is_connected(const sk_db *db)
{
    return db && db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

int sk_db_in_transaction(const sk_db *db)
{
    return db && db->in_transaction;
}
