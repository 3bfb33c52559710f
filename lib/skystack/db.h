/* db.h: the PostgreSQL state of the tools (see skystack(7)): which
 * database a program uses ($SKYSTACK_DB, db.conninfo, else the private
 * cluster), connecting, transactions and locks, the row sets queries
 * return, schema migrations, saving provenances, and managing the private
 * cluster (skydb). */
#ifndef SKYSTACK_DB_H
#define SKYSTACK_DB_H

#include <stddef.h>
#include "config.h"
#include "provenance.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- which database -------------------------------------------------- */

/* Where the tools find their database, resolved from the environment and
 * the configuration, in this order:
 *   1. $SKYSTACK_DB (a libpq conninfo "host=... dbname=..." or URI
 *      "postgresql://..."), when set and not empty;
 *   2. db.conninfo of the configuration, when not null;
 *   3. the private cluster in $SKYSTACK_DB_DIR, else db.private_dir, else
 *      ~/.local/share/skystack/db (as root: /var/lib/skystack/db), reached
 *      through the Unix socket in that folder as role and database
 *      "skystack".
 * Standard libpq variables (PGPASSFILE, PGSERVICE, PGSSLMODE...) apply to
 * whatever the conninfo leaves unsaid; passwords never appear on argv. */
typedef struct sk_db_target {
    int is_private;           /* 1: the private cluster */
    char *conninfo;           /* the libpq connection string (owned) */
    char *description;        /* for messages, password masked (owned) */
    char *private_dir;        /* the cluster folder (is_private only, owned) */
    int private_dir_is_default; /* 1 when no variable or key chose it */
} sk_db_target;

/* Resolve the target. `cfg` may be NULL (defaults). */
int sk_db_target_resolve(const sk_config *cfg, sk_db_target *out);
void sk_db_target_clear(sk_db_target *t);

/* ---- connections ------------------------------------------------------ */

/* A connection and its state (opaque; statements run inside the library,
 * lib/db). */
typedef struct sk_db sk_db;

/* Connect (applying db.statement_timeout_ms) and check that the schema is
 * present and current. Unreachable: SK_EIO with a message naming the
 * database tried and the command that starts one (`skydb start`). A schema
 * older than the migrations shipped: SK_EIO asking for `skydb migrate`. */
int sk_db_connect(const sk_config *cfg, sk_db **out);
/* Connect without the schema check (skydb migrate/status use it). */
int sk_db_connect_raw(const sk_config *cfg, sk_db **out);
/* Roll back an open transaction, close, free. NULL is allowed. */
void sk_db_close(sk_db *db);
/* The database this connection reached (conninfo and description). */
const sk_db_target *sk_db_get_target(const sk_db *db);
/* 1 while the connection to the server is usable. */
int sk_db_is_connected(const sk_db *db);

int sk_db_begin(sk_db *db);
int sk_db_commit(sk_db *db);
void sk_db_rollback(sk_db *db);
/* 1 while a transaction begun with sk_db_begin is open. */
int sk_db_in_transaction(const sk_db *db);

/* Transaction-scoped advisory lock on a name (hashed to 64 bits with
 * SHA-256), released at commit/rollback: the way concurrent processes on
 * any number of machines serialise work on one key. */
int sk_db_lock(sk_db *db, const char *name);

/* ---- row sets ----------------------------------------------------------- */

/* The rows a query returned (skystack/query.h), copied out of the server's
 * answer: column names, each column's kind and every value as the server
 * wrote it in text (NULL for SQL NULL). */
typedef struct sk_db_rows sk_db_rows;

enum sk_db_col_kind {
    SK_DB_COL_TEXT = 0,   /* text, dates, JSON and every other type */
    SK_DB_COL_BOOL,       /* boolean: "t" or "f" */
    SK_DB_COL_BIGINT,     /* 64-bit integer (ids) */
    SK_DB_COL_INT,        /* 16- and 32-bit integers */
    SK_DB_COL_REAL        /* real, double precision, numeric */
};

int sk_db_rows_count(const sk_db_rows *r);
int sk_db_rows_ncols(const sk_db_rows *r);
/* Name of column `col` (NULL out of range). */
const char *sk_db_rows_name(const sk_db_rows *r, int col);
/* Index of the column called `name`, -1 when there is none. */
int sk_db_rows_col(const sk_db_rows *r, const char *name);
/* enum sk_db_col_kind of column `col` (TEXT out of range). */
int sk_db_rows_kind(const sk_db_rows *r, int col);
/* 1 for the integer and real kinds. */
int sk_db_rows_is_numeric(const sk_db_rows *r, int col);
/* Text value of a cell: NULL for SQL NULL or a row or column out of range. */
const char *sk_db_rows_text(const sk_db_rows *r, int row, int col);
/* A cell as a number: NaN (double) or 0 (integer) when NULL or not one. */
double sk_db_rows_double(const sk_db_rows *r, int row, int col);
long long sk_db_rows_ll(const sk_db_rows *r, int row, int col);
void sk_db_rows_free(sk_db_rows *r);

/* ---- status --------------------------------------------------------------- */

/* Rows in the main tables (skydb status). */
typedef struct sk_db_counts {
    long long images, provenances, refs;
} sk_db_counts;

int sk_db_count_rows(sk_db *db, sk_db_counts *out);

/* Put the connection parameters of `t` into the standard PG* environment
 * variables of this process (PGHOST, PGDATABASE...), so that a program it
 * runs (psql) reaches the same database with no password on its argv.
 * SK_EINPUT when the conninfo does not parse. */
int sk_db_target_export_env(const sk_db_target *t);

/* ---- identities --------------------------------------------------------- */

/* ---- schema ----------------------------------------------------------- */

/* Apply the numbered migrations of `sql_dir` (NULL: share/sql) that the
 * database lacks, each in its own transaction, under an advisory lock so
 * concurrent runs are safe; record them in schema_migrations (version,
 * name, sha256, applied_at). *applied (optional) receives the number
 * applied now. A shipped migration whose file changed: warning. */
int sk_db_migrate(sk_db *db, const char *sql_dir, int *applied);

/* Highest migration version recorded in the database (0 when none) and
 * the highest one shipped in `sql_dir` (NULL: share/sql). */
int sk_db_schema_version(sk_db *db, int *version);
int sk_db_shipped_version(const char *sql_dir, int *version);

/* ---- the private cluster (skydb) -------------------------------------- */

/* State of the private cluster in `dir`. */
enum sk_cluster_state {
    SK_CLUSTER_ABSENT = 0,   /* no cluster in dir */
    SK_CLUSTER_STOPPED = 1,  /* initialised, server not running */
    SK_CLUSTER_RUNNING = 2   /* server accepting connections on the socket */
};

/* The PostgreSQL server binaries: $SK_PG_BINDIR, else the directory
 * configure found (SK_PG_BINDIR), else $PATH. `out` receives the full path
 * of program `name` ("initdb", "pg_ctl", "psql"). */
int sk_pg_program(const char *name, char *out, size_t outsz);

int sk_cluster_state(const char *dir, int *state);
/* Start the server (waiting until it accepts connections); running: no-op. */
int sk_cluster_start(const sk_config *cfg, const char *dir);
/* Stop the server (fast shutdown); stopped or absent: no-op. */
int sk_cluster_stop(const sk_config *cfg, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
