/* provenance_rows.c: saving provenances, their code versions and upstream links in the database, and reading them back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/db.h"
#include "skystack/error.h"
#include "db_priv.h"
#include "ref_rows_priv.h"
#include "db_internal.h"

/* "1.2.3" -> "1.2" (the part that is hashed and stored). */
static int major_minor(const char *version, char *out, size_t outsz)
{
    int major = 0, minor = 0;
    if (sscanf(version, "%d.%d", &major, &minor) != 2 || major < 0 || minor < 0)
        return sk_error(SK_EINPUT, "provenance: malformed code version '%s'", version);
    snprintf(out, outsz, "%d.%d", major, minor);
    return SK_OK;
}

int sk_db_save_prov(sk_db *db, const sk_prov *p)
{
    for (int i = 0; i < p->nupstreams; i++) {
        int st = sk_db_save_prov(db, p->upstreams[i]);
        if (st)
            return st;
    }
    char mm[32];
    int st = major_minor(p->code_version, mm, sizeof mm);
    if (st)
        return st;
    const char *cv[2] = {p->process, mm};
    st = sk_db_exec(db, "saving a code version",
                    "INSERT INTO code_versions (process, version) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING",
                    2, cv, NULL);
    if (st)
        return st;
    char *params_json = sk_json_canonical(p->parameters);
    if (!params_json)
        return sk_error(SK_EINPUT, "provenance %s: parameters are not serialisable", p->id);
    const char *pv[4] = {p->id, p->process, mm, params_json};
    st = sk_db_exec(db, "saving a provenance",
                    "INSERT INTO provenances (id, process, code_version, parameters) "
                    "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (id) DO NOTHING",
                    4, pv, NULL);
    free(params_json);
    if (st)
        return st;
    for (int i = 0; i < p->nupstreams; i++) {
        const char *lv[2] = {p->id, p->upstreams[i]->id};
        st = sk_db_exec(db, "linking a provenance to its upstream",
                        "INSERT INTO provenance_upstreams (downstream_id, upstream_id) "
                        "VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        2, lv, NULL);
        if (st)
            return st;
    }
    return SK_OK;
}

void sk_prov_links_free(sk_prov_link *links, int n)
{
    for (int i = 0; links && i < n; i++) {
        free(links[i].id);
        free(links[i].process);
    }
    free(links);
}

int sk_prov_row_get(sk_db *db, const char *id, int *found, char **code_version,
                    char **parameters_json)
{
    *found = 0;
    *code_version = *parameters_json = NULL;
    const char *p[1] = {id};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "reading a provenance",
                        "SELECT code_version, parameters::text FROM provenances WHERE id = $1", 1, p,
                        &res);
    if (!st && PQntuples(res) == 1) {
        *found = 1;
        *code_version = strdup(PQgetvalue(res, 0, 0));
        *parameters_json = strdup(PQgetvalue(res, 0, 1));
        if (!*code_version || !*parameters_json)
            st = sk_error(SK_EIO, "out of memory");
    }
    PQclear(res);
    return st;
}

/* Columns (id, process) of `res` as links. */
static int links_of(const PGresult *res, sk_prov_link **out, int *n)
{
    int nrows = PQntuples(res);
    sk_prov_link *links = calloc((size_t)nrows + 1, sizeof *links);
    if (!links)
        return sk_error(SK_EIO, "out of memory");
    for (int r = 0; r < nrows; r++) {
        links[r].id = strdup(PQgetvalue(res, r, 0));
        links[r].process = strdup(PQgetvalue(res, r, 1));
        if (!links[r].id || !links[r].process) {
            sk_prov_links_free(links, r + 1);
            return sk_error(SK_EIO, "out of memory");
        }
    }
    *out = links;
    *n = nrows;
    return SK_OK;
}

int sk_prov_row_upstreams(sk_db *db, const char *id, sk_prov_link **out, int *n)
{
    *out = NULL;
    *n = 0;
    const char *p[1] = {id};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "reading provenance upstreams",
                        "SELECT u.id, u.process FROM provenance_upstreams pu JOIN provenances u "
                        "ON u.id = pu.upstream_id WHERE pu.downstream_id = $1 ORDER BY u.id",
                        1, p, &res);
    if (!st)
        st = links_of(res, out, n);
    PQclear(res);
    return st;
}

int sk_refset_row_chain(sk_db *db, const char *name, sk_prov_link **out, int *n)
{
    *out = NULL;
    *n = 0;
    const char *p[1] = {name};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "reading the refset's chain",
                        "SELECT u.id, u.process FROM refsets s JOIN refset_provenances rp "
                        "ON rp.refset_id = s.id JOIN provenance_upstreams pu "
                        "ON pu.downstream_id = rp.provenance_id JOIN provenances u "
                        "ON u.id = pu.upstream_id WHERE s.name = $1 "
                        "ORDER BY rp.position, u.process LIMIT 2",
                        1, p, &res);
    if (!st)
        st = links_of(res, out, n);
    PQclear(res);
    return st;
}
