/* ref_rows.c: the rows of references: saving one for a coadd and a place, finding the good one of a coadd or a place (see ref_rows_priv.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "db_priv.h"
#include "ref_rows_priv.h"

/* The id in the first row of `res`, 0 when there is no row. */
static long long first_id(const PGresult *res)
{
    return PQntuples(res) >= 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
}

int sk_ref_row_of_coadd(sk_db *db, long long image_id, const char *prov_id, long long *ref_id)
{
    *ref_id = 0;
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", image_id);
    const char *p[2] = {cid, prov_id};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "looking for a reference of the coadd",
                        "SELECT id FROM refs WHERE image_id = $1::bigint AND provenance_id = $2 "
                        "AND NOT is_bad ORDER BY id LIMIT 1",
                        2, p, &res);
    if (!st)
        *ref_id = first_id(res);
    PQclear(res);
    return st;
}

int sk_ref_row_of_place(sk_db *db, const char *place_key, const char *filter, const char *prov_id,
                        long long *ref_id)
{
    *ref_id = 0;
    const char *p[3] = {place_key, filter, prov_id};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "looking for the reference of the place",
                        "SELECT id FROM refs WHERE place = $1 AND filter = $2 AND provenance_id = $3 "
                        "AND NOT is_bad",
                        3, p, &res);
    if (!st && PQntuples(res) == 1)
        *ref_id = first_id(res);
    PQclear(res);
    return st;
}

/* The next id of refs, for a reference about to be inserted. */
static int next_ref_id(sk_db *db, char id[32])
{
    PGresult *res = NULL;
    int st = sk_db_exec_row(db, "numbering the reference",
                            "SELECT nextval(pg_get_serial_sequence('refs', 'id'))", 0, NULL, &res);
    if (!st)
        snprintf(id, 32, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return st;
}

int sk_ref_row_insert(sk_db *db, const sk_ref_new *r, long long *ref_id, long *nreplaced)
{
    *ref_id = 0;
    *nreplaced = 0;
    char cid[32], nid[32];
    snprintf(cid, sizeof cid, "%lld", r->image_id);
    int st = next_ref_id(db, nid);
    const char *p[7] = {cid, r->prov_id, r->extraction_prov_id, r->place_key, r->target, r->section, nid};
    PGresult *res = NULL;
    /* the references of the place it replaces: not replaced yet, and bad
     * or no longer loadable (replaced_by is checked at the commit) */
    const char *pr[4] = {nid, r->place_key, r->filter, r->prov_id};
    st = st ? st
            : sk_db_exec(db, "replacing the reference of the place",
                         "UPDATE refs SET replaced_by = $1::bigint WHERE place = $2 AND filter = $3 "
                         "AND provenance_id = $4 AND replaced_by IS NULL "
                         "AND skystack_ref_trouble(id) IS NOT NULL",
                         4, pr, &res);
    if (!st)
        *nreplaced = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    res = NULL;
    st = st ? st : sk_db_exec(
        db, "saving the reference",
        "INSERT INTO refs (id, image_id, provenance_id, source_list_id, psf_id, background_id, "
        "world_coordinates_id, zero_point_id, place, target, section_id, filter, instrument, "
        "ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, "
        "dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec) "
        "SELECT $7::bigint, i.id, $2, s.id, p.id, b.id, w.id, z.id, $4, coalesce($5, i.target), "
        "coalesce($6, i.section_id), i.filter, i.instrument, i.ra, i.dec, i.ra_corner_00, "
        "i.dec_corner_00, i.ra_corner_10, i.dec_corner_10, i.ra_corner_11, i.dec_corner_11, "
        "i.ra_corner_01, i.dec_corner_01, i.minra, i.maxra, i.mindec, i.maxdec "
        "FROM images i "
        "JOIN source_lists s ON s.image_id = i.id AND s.provenance_id = $3 AND NOT s.is_bad "
        "JOIN psfs p ON p.image_id = i.id AND p.provenance_id = $3 "
        "JOIN backgrounds b ON b.image_id = i.id AND b.provenance_id = $3 "
        "JOIN world_coordinates w ON w.image_id = i.id AND w.provenance_id = $3 "
        "JOIN zero_points z ON z.image_id = i.id AND z.provenance_id = $3 "
        "WHERE i.id = $1::bigint AND NOT i.is_bad AND NOT i.pending "
        "ON CONFLICT (place, filter, provenance_id) WHERE NOT is_bad AND replaced_by IS NULL "
        "DO NOTHING RETURNING id",
        7, p, &res);
    if (!st && PQntuples(res) == 1)
        *ref_id = first_id(res);
    PQclear(res);
    return st;
}

int sk_ref_row_coadd_blocked(sk_db *db, long long image_id, const char *extraction_prov_id,
                             const char *place_key, const char *filter, const char *prov_id,
                             char **why)
{
    *why = NULL;
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", image_id);
    const char *p[5] = {cid, place_key, filter, prov_id, extraction_prov_id};
    PGresult *res = NULL;
    int st = sk_db_exec(
        db, "checking the coadd",
        "SELECT coalesce("
        "(SELECT 'coadd ' || i.id || ' is marked bad: ' || coalesce(i.bad_comment, '') "
        " FROM images i WHERE i.id = $1::bigint AND i.is_bad), "
        "(SELECT 'the extraction ' || s.id || ' of coadd ' || s.image_id || ' is marked bad: ' || "
        " coalesce(s.bad_comment, '') FROM source_lists s WHERE s.image_id = $1::bigint "
        " AND s.provenance_id = $5 AND s.is_bad), "
        "(SELECT 'coadd ' || r.image_id || ' is that of reference ' || r.id || CASE WHEN r.is_bad "
        " THEN ', marked bad: ' || coalesce(r.bad_reason, '') ELSE ', not loadable: ' || "
        " skystack_ref_trouble(r.id) END FROM refs r WHERE r.image_id = $1::bigint AND "
        " r.place = $2 AND r.filter = $3 AND r.provenance_id = $4 AND (r.is_bad OR "
        " (r.replaced_by IS NULL AND skystack_ref_trouble(r.id) IS NOT NULL)) "
        " ORDER BY r.id DESC LIMIT 1))",
        5, p, &res);
    const char *v = st ? NULL : sk_db_value(res, 0, 0);
    if (v && !(*why = strdup(v)))
        st = sk_error(SK_EIO, "out of memory");
    PQclear(res);
    return st;
}

int sk_ref_rows_chain(sk_db *db, long long ref_id, json_t **out)
{
    *out = NULL;
    char id[32];
    snprintf(id, sizeof id, "%lld", ref_id);
    const char *p[1] = {id};
    PGresult *res = NULL;
    int st = sk_db_exec(
        db, "reading the replacements",
        "SELECT r.id, r.image_id, r.is_bad, r.bad_reason, r.replaced_by, "
        "skystack_ref_trouble(r.id), to_char(r.created_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), r.place, r.filter, r.provenance_id "
        "FROM refs r JOIN refs g ON g.place = r.place AND g.filter = r.filter "
        "AND g.provenance_id = r.provenance_id WHERE g.id = $1::bigint ORDER BY r.id",
        1, p, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return sk_error(SK_ENOTFOUND, "reference %lld does not exist", ref_id);
    }
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *reason = sk_db_value(res, i, 3), *trouble = sk_db_value(res, i, 5);
        json_array_append_new(
            arr, json_pack("{s:I, s:I, s:b, s:o, s:o, s:b, s:o, s:s, s:s, s:s, s:s}", "id",
                           (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "image_id",
                           (json_int_t)strtoll(PQgetvalue(res, i, 1), NULL, 10), "is_bad",
                           PQgetvalue(res, i, 2)[0] == 't', "bad_reason",
                           reason ? json_string(reason) : json_null(), "replaced_by",
                           sk_db_value(res, i, 4)
                               ? json_integer(strtoll(PQgetvalue(res, i, 4), NULL, 10))
                               : json_null(),
                           "loadable", !trouble, "trouble",
                           trouble ? json_string(trouble) : json_null(), "created",
                           PQgetvalue(res, i, 6), "place", PQgetvalue(res, i, 7), "filter",
                           PQgetvalue(res, i, 8), "provenance_id", PQgetvalue(res, i, 9)));
    }
    PQclear(res);
    *out = arr;
    return SK_OK;
}
