/* status.c: what skydb status and skydb psql need of a database: row counts of the main tables and the connection parameters as PG* variables. */
#include <stdio.h>
#include <stdlib.h>
#include "skystack/error.h"
#include "db_priv.h"

int sk_db_count_rows(sk_db *db, sk_db_counts *out)
{
    out->images = out->provenances = out->refs = 0;
    PGresult *r = NULL;
    int st = sk_db_exec_row(db, "counting rows",
                            "SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM provenances),"
                            " (SELECT count(*) FROM refs)",
                            0, NULL, &r);
    if (st)
        return st;
    out->images = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->provenances = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    out->refs = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    return SK_OK;
}

int sk_db_target_export_env(const sk_db_target *t)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(t->conninfo, &err);
    if (!opts) {
        int st = sk_error(SK_EINPUT, "conninfo: %s", err ? err : "unparsable");
        PQfreemem(err);
        return st;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && *o->val && o->envvar && setenv(o->envvar, o->val, 1) != 0) {
            PQconninfoFree(opts);
            return sk_error(SK_EIO, "psql: cannot set %s", o->envvar);
        }
    PQconninfoFree(opts);
    return SK_OK;
}
