/* ref_rows.c: the rows of references: saving one for a coadd and a place, finding the good one of a coadd or a place, marking one bad (see ref_rows_priv.h). */
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

int sk_ref_row_mark_bad(sk_db *db, long long ref_id, const char *reason, long *n)
{
    *n = 0;
    char id[32];
    snprintf(id, sizeof id, "%lld", ref_id);
    const char *p[2] = {id, reason};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "marking a reference bad",
                        "UPDATE refs SET is_bad = true, bad_reason = $2 WHERE id = $1::bigint", 2, p,
                        &res);
    if (!st)
        *n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return st;
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

int sk_ref_row_insert(sk_db *db, const sk_ref_new *r, long long *ref_id)
{
    *ref_id = 0;
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", r->image_id);
    const char *p[6] = {cid, r->prov_id, r->extraction_prov_id, r->place_key, r->target, r->section};
    PGresult *res = NULL;
    int st = sk_db_exec(
        db, "saving the reference",
        "INSERT INTO refs (image_id, provenance_id, source_list_id, psf_id, background_id, "
        "world_coordinates_id, zero_point_id, place, target, section_id, filter, instrument, "
        "ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, "
        "dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec) "
        "SELECT i.id, $2, s.id, p.id, b.id, w.id, z.id, $4, coalesce($5, i.target), "
        "coalesce($6, i.section_id), i.filter, i.instrument, i.ra, i.dec, i.ra_corner_00, "
        "i.dec_corner_00, i.ra_corner_10, i.dec_corner_10, i.ra_corner_11, i.dec_corner_11, "
        "i.ra_corner_01, i.dec_corner_01, i.minra, i.maxra, i.mindec, i.maxdec "
        "FROM images i "
        "JOIN source_lists s ON s.image_id = i.id AND s.provenance_id = $3 "
        "JOIN psfs p ON p.image_id = i.id AND p.provenance_id = $3 "
        "JOIN backgrounds b ON b.image_id = i.id AND b.provenance_id = $3 "
        "JOIN world_coordinates w ON w.image_id = i.id AND w.provenance_id = $3 "
        "JOIN zero_points z ON z.image_id = i.id AND z.provenance_id = $3 "
        "WHERE i.id = $1::bigint "
        "ON CONFLICT (place, filter, provenance_id) WHERE NOT is_bad DO NOTHING RETURNING id",
        6, p, &res);
    if (!st && PQntuples(res) == 1)
        *ref_id = first_id(res);
    PQclear(res);
    return st;
}
