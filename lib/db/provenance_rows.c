/* provenance_rows.c: saving provenances, their code versions and upstream links in the database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/db.h"
#include "skystack/error.h"
#include "db_priv.h"

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
