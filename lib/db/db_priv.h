/* db_priv.h: statements on a connection, for lib/db only (not installed):
 * the connection's state and parameterised statements with libpq results. */
#ifndef SK_DB_PRIV_H
#define SK_DB_PRIV_H

#include <libpq-fe.h>
#include "skystack/db.h"

struct sk_db {
    PGconn *conn;
    sk_db_target target;
    int in_transaction;
    char sqlstate[6];         /* SQLSTATE of the last failed statement */
};

/* Run one statement with text parameters ($1..$n; NULL entries are SQL
 * NULL). Every value that comes from a user goes through here, never into
 * the SQL text. *res (optional) receives the result (PQclear it); errors
 * are SK_EIO naming `what` and the server's message. A unique violation
 * gives SK_EINPUT (the caller may treat it as "exists already"). */
int sk_db_exec(sk_db *db, const char *what, const char *sql, int nparams,
               const char *const *params, PGresult **res);
/* As sk_db_exec, and the statement must return exactly one row: else
 * SK_ENOTFOUND (no row) or SK_EIO (several). */
int sk_db_exec_row(sk_db *db, const char *what, const char *sql, int nparams,
                   const char *const *params, PGresult **res);

/* SQLSTATE of the last failed statement ("" when none), e.g. "23505". */
const char *sk_db_last_sqlstate(const sk_db *db);

/* Text value of a result cell, NULL when SQL NULL. */
const char *sk_db_value(const PGresult *res, int row, int col);
/* Numeric cell as double (NaN when NULL or not a number). */
double sk_db_double(const PGresult *res, int row, int col);

/* Prepare and run an image query (skystack/query.h): *res holds the rows
 * (PQclear it). */
struct sk_query;
int sk_query_run(struct sk_query *q, sk_db *db, int kind, PGresult **res);

/* ---- row sets from results, for the typed row functions ---- */

/* Copy a result into a new row set (skystack/db.h). */
int sk_db_rows_from_result(const PGresult *res, sk_db_rows **out);

#endif
