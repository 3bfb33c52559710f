/* refset_rows.c: the rows of reference sets: refsets, their ordered provenances and the references they hold (see ref_rows_priv.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "db_priv.h"
#include "ref_rows_priv.h"

#define UTC_TEXT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* A cell copied (NULL for SQL NULL); out of memory sets *st. */
static char *cell_text(const PGresult *res, int row, int col, int *st)
{
    const char *v = sk_db_value(res, row, col);
    char *d = v ? strdup(v) : NULL;
    if (v && !d && !*st)
        *st = sk_error(SK_EIO, "out of memory");
    return d;
}

static long long cell_ll(const PGresult *res, int row, int col)
{
    const char *v = sk_db_value(res, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

static int cell_bool(const PGresult *res, int row, int col)
{
    const char *v = sk_db_value(res, row, col);
    return v && v[0] == 't';
}

static void id_text(long long id, char out[32])
{
    snprintf(out, 32, "%lld", id);
}

void sk_refset_row_clear(sk_refset_row *r)
{
    free(r->name);
    free(r->description);
    free(r->upstream_hash);
    free(r->created);
    memset(r, 0, sizeof *r);
}

void sk_refset_rows_free(sk_refset_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        sk_refset_row_clear(&rows[i]);
    free(rows);
}

void sk_refset_member_rows_free(sk_refset_member_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++) {
        free(rows[i].prov_id);
        free(rows[i].code_version);
        free(rows[i].parameters_json);
        free(rows[i].upstreams_json);
    }
    free(rows);
}

void sk_ref_rows_free(sk_ref_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++) {
        sk_ref_row *r = &rows[i];
        free(r->place);
        free(r->target);
        free(r->section);
        free(r->filter);
        free(r->instrument);
        free(r->provenance_id);
        free(r->filepath);
        free(r->bad_reason);
        free(r->created);
        free(r->trouble);
    }
    free(rows);
}

/* Columns id, name, description, upstream_hash, created of row `row`. */
static int refset_of(const PGresult *res, int row, sk_refset_row *r)
{
    int st = SK_OK;
    memset(r, 0, sizeof *r);
    r->id = cell_ll(res, row, 0);
    r->name = cell_text(res, row, 1, &st);
    r->description = cell_text(res, row, 2, &st);
    r->upstream_hash = cell_text(res, row, 3, &st);
    r->created = cell_text(res, row, 4, &st);
    return st;
}

int sk_refset_row_get(sk_db *db, const char *name, int for_update, sk_refset_row *out, int *found)
{
    memset(out, 0, sizeof *out);
    *found = 0;
    const char *p[1] = {name};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "reading a refset",
                        for_update ? "SELECT s.id, s.name, s.description, s.upstream_hash, "
                                     UTC_TEXT("s.created_at") " FROM refsets s WHERE s.name = $1 "
                                     "FOR UPDATE"
                                   : "SELECT s.id, s.name, s.description, s.upstream_hash, "
                                     UTC_TEXT("s.created_at") " FROM refsets s WHERE s.name = $1",
                        1, p, &res);
    if (!st && PQntuples(res) == 1) {
        *found = 1;
        st = refset_of(res, 0, out);
    }
    PQclear(res);
    return st;
}

int sk_refset_rows_list(sk_db *db, sk_refset_row **out, int *n)
{
    *out = NULL;
    *n = 0;
    PGresult *res = NULL;
    int st = sk_db_exec(
        db, "listing refsets",
        "SELECT s.id, s.name, s.description, s.upstream_hash, " UTC_TEXT("s.created_at") ", "
        "(SELECT count(*) FROM refset_provenances rp WHERE rp.refset_id = s.id), "
        "(SELECT count(*) FILTER (WHERE NOT r.is_bad) FROM refs r JOIN refset_provenances rp "
        " ON rp.provenance_id = r.provenance_id WHERE rp.refset_id = s.id), "
        "(SELECT count(*) FILTER (WHERE r.is_bad) FROM refs r JOIN refset_provenances rp "
        " ON rp.provenance_id = r.provenance_id WHERE rp.refset_id = s.id) "
        "FROM refsets s ORDER BY s.name",
        0, NULL, &res);
    if (st)
        return st;
    int nrows = PQntuples(res);
    sk_refset_row *rows = calloc((size_t)nrows + 1, sizeof *rows);
    if (!rows)
        st = sk_error(SK_EIO, "out of memory");
    for (int row = 0; !st && row < nrows; row++) {
        st = refset_of(res, row, &rows[row]);
        rows[row].nprovenances = cell_ll(res, row, 5);
        rows[row].nrefs_good = cell_ll(res, row, 6);
        rows[row].nrefs_bad = cell_ll(res, row, 7);
    }
    PQclear(res);
    if (st) {
        sk_refset_rows_free(rows, nrows);
        return st;
    }
    *out = rows;
    *n = nrows;
    return SK_OK;
}

int sk_refset_row_insert(sk_db *db, const char *name, const char *description,
                         const char *upstream_hash, int *created)
{
    *created = 0;
    const char *p[3] = {name, description, upstream_hash};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "creating a refset",
                        "INSERT INTO refsets (name, description, upstream_hash) VALUES ($1, $2, $3) "
                        "ON CONFLICT (name) DO NOTHING RETURNING id",
                        3, p, &res);
    if (!st)
        *created = PQntuples(res) == 1;
    PQclear(res);
    return st;
}

int sk_refset_row_set_upstream_hash(sk_db *db, long long refset_id, const char *upstream_hash)
{
    char id[32];
    id_text(refset_id, id);
    const char *p[2] = {id, upstream_hash};
    return sk_db_exec(db, "setting a refset's upstream_hash",
                      "UPDATE refsets SET upstream_hash = $2 WHERE id = $1::bigint", 2, p, NULL);
}

int sk_refset_row_count_refs(sk_db *db, long long refset_id, long *n)
{
    *n = 0;
    char id[32];
    id_text(refset_id, id);
    const char *p[1] = {id};
    PGresult *res = NULL;
    int st = sk_db_exec_row(db, "counting a refset's references",
                            "SELECT count(*) FROM refs r JOIN refset_provenances rp "
                            "ON rp.provenance_id = r.provenance_id WHERE rp.refset_id = $1::bigint",
                            1, p, &res);
    if (!st)
        *n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return st;
}

int sk_refset_row_delete_refs(sk_db *db, long long refset_id, long *n)
{
    *n = 0;
    char id[32];
    id_text(refset_id, id);
    const char *p[1] = {id};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "deleting a refset's references",
                        "DELETE FROM refs r WHERE r.provenance_id IN "
                        "(SELECT provenance_id FROM refset_provenances WHERE refset_id = $1::bigint) "
                        "AND NOT EXISTS (SELECT 1 FROM refset_provenances o "
                        "WHERE o.provenance_id = r.provenance_id AND o.refset_id <> $1::bigint)",
                        1, p, &res);
    if (!st)
        *n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return st;
}

int sk_refset_row_delete(sk_db *db, long long refset_id)
{
    char id[32];
    id_text(refset_id, id);
    const char *p[1] = {id};
    return sk_db_exec(db, "deleting a refset", "DELETE FROM refsets WHERE id = $1::bigint", 1, p,
                      NULL);
}

int sk_refset_member_rows(sk_db *db, long long refset_id, sk_refset_member_row **out, int *n)
{
    *out = NULL;
    *n = 0;
    char id[32];
    id_text(refset_id, id);
    const char *p[1] = {id};
    PGresult *res = NULL;
    int st = sk_db_exec(
        db, "listing a refset's provenances",
        "SELECT rp.position, p.id, p.code_version, p.is_bad, p.parameters::text, "
        "(SELECT count(*) FROM refs r WHERE r.provenance_id = p.id AND NOT r.is_bad), "
        "(SELECT count(*) FROM refs r WHERE r.provenance_id = p.id AND r.is_bad), "
        "(SELECT coalesce(json_agg(json_build_object('id', u.id, 'process', u.process) "
        "  ORDER BY u.process, u.id), '[]'::json) FROM provenance_upstreams pu "
        "  JOIN provenances u ON u.id = pu.upstream_id WHERE pu.downstream_id = p.id)::text "
        "FROM refset_provenances rp JOIN provenances p ON p.id = rp.provenance_id "
        "WHERE rp.refset_id = $1::bigint ORDER BY rp.position",
        1, p, &res);
    if (st)
        return st;
    int nrows = PQntuples(res);
    sk_refset_member_row *rows = calloc((size_t)nrows + 1, sizeof *rows);
    if (!rows)
        st = sk_error(SK_EIO, "out of memory");
    for (int row = 0; !st && row < nrows; row++) {
        sk_refset_member_row *m = &rows[row];
        m->position = cell_ll(res, row, 0);
        m->prov_id = cell_text(res, row, 1, &st);
        m->code_version = cell_text(res, row, 2, &st);
        m->is_bad = cell_bool(res, row, 3);
        m->parameters_json = cell_text(res, row, 4, &st);
        m->nrefs_good = cell_ll(res, row, 5);
        m->nrefs_bad = cell_ll(res, row, 6);
        m->upstreams_json = cell_text(res, row, 7, &st);
    }
    PQclear(res);
    if (st) {
        sk_refset_member_rows_free(rows, nrows);
        return st;
    }
    *out = rows;
    *n = nrows;
    return SK_OK;
}

int sk_refset_member_append(sk_db *db, long long refset_id, const char *prov_id)
{
    char id[32];
    id_text(refset_id, id);
    const char *v[2] = {id, prov_id};
    return sk_db_exec(db, "adding a provenance to a refset",
                      "INSERT INTO refset_provenances (refset_id, provenance_id, position) "
                      "VALUES ($1::bigint, $2, (SELECT coalesce(max(position) + 1, 0) "
                      "FROM refset_provenances WHERE refset_id = $1::bigint))",
                      2, v, NULL);
}

/* ---- the references of a refset ---------------------------------------------- */

/* The place condition of the references query and its parameters
 * ($4.. after refset id, filter and ref id): a position bounds the
 * centres by the largest image radius (a constant, so that the q3c index
 * on the centres serves it). */
typedef struct place_cond {
    const char *cond, *distance, *partition;
    char ra[40], dec[40], radius[40];
    int nparams;
} place_cond;

static int place_condition(sk_db *db, const sk_place *place, place_cond *pc, const char **params)
{
    pc->cond = "TRUE";
    pc->distance = "0";
    pc->partition = "r.place, r.filter";
    pc->nparams = 3;
    if (place && place->has_position) {
        PGresult *r = NULL;
        int st = sk_db_exec(db, "reading the largest image radius",
                            "SELECT coalesce(max(radius_deg), 0) FROM images", 0, NULL, &r);
        if (st)
            return st;
        snprintf(pc->radius, sizeof pc->radius, "%.17g", sk_db_double(r, 0, 0));
        PQclear(r);
        snprintf(pc->ra, sizeof pc->ra, "%.17g", place->ra_deg);
        snprintf(pc->dec, sizeof pc->dec, "%.17g", place->dec_deg);
        params[3] = pc->ra;
        params[4] = pc->dec;
        params[5] = pc->radius;
        pc->cond = "q3c_radial_query(r.ra, r.dec, $4::double precision, $5::double precision, "
                   "$6::double precision) "
                   "AND q3c_in_poly($4::double precision, $5::double precision, ARRAY["
                   "r.ra_corner_00, r.dec_corner_00, r.ra_corner_10, r.dec_corner_10, "
                   "r.ra_corner_11, r.dec_corner_11, r.ra_corner_01, r.dec_corner_01])";
        pc->distance = "q3c_dist(r.ra, r.dec, $4::double precision, $5::double precision)";
        pc->partition = "r.filter";
        pc->nparams = 6;
    } else if (place) {
        params[3] = place->target;
        params[4] = place->section;
        pc->cond = "r.target = $4 AND r.section_id = $5";
        pc->partition = "r.filter";
        pc->nparams = 5;
    }
    return SK_OK;
}

/* Row `row` of the references query. */
static int ref_of(const PGresult *res, int row, sk_ref_row *r)
{
    int st = SK_OK;
    r->id = cell_ll(res, row, 0);
    r->place = cell_text(res, row, 1, &st);
    r->target = cell_text(res, row, 2, &st);
    r->section = cell_text(res, row, 3, &st);
    r->filter = cell_text(res, row, 4, &st);
    r->instrument = cell_text(res, row, 5, &st);
    r->provenance_id = cell_text(res, row, 6, &st);
    r->position = cell_ll(res, row, 7);
    r->image_id = cell_ll(res, row, 8);
    r->filepath = cell_text(res, row, 9, &st);
    r->ra_deg = sk_db_double(res, row, 10);
    r->dec_deg = sk_db_double(res, row, 11);
    r->is_bad = cell_bool(res, row, 12);
    r->bad_reason = cell_text(res, row, 13, &st);
    r->created = cell_text(res, row, 14, &st);
    r->loaded = cell_bool(res, row, 15);
    r->replaced_by = cell_ll(res, row, 16);
    r->trouble = cell_text(res, row, 17, &st);
    return st;
}

int sk_ref_rows_of_refset(sk_db *db, long long refset_id, const sk_place *place,
                          const char *filter, int only_loaded, long long ref_id, sk_ref_row **out,
                          int *n)
{
    *out = NULL;
    *n = 0;
    char id[32], rid[32];
    id_text(refset_id, id);
    id_text(ref_id, rid);
    const char *params[6] = {id, filter, ref_id > 0 ? rid : NULL, NULL, NULL, NULL};
    place_cond pc;
    int st = place_condition(db, place, &pc, params);
    if (st)
        return st;
    char sql[3072];
    snprintf(sql, sizeof sql,
             "SELECT * FROM (SELECT r.id, r.place, r.target, r.section_id, r.filter, r.instrument, "
             "r.provenance_id, rp.position, r.image_id, i.filepath, r.ra, r.dec, r.is_bad, "
             "r.bad_reason, " UTC_TEXT("r.created_at") ", "
             "(t.trouble IS NULL AND row_number() OVER (PARTITION BY %s "
             "ORDER BY t.trouble IS NOT NULL, rp.position, %s, r.id) = 1) AS loaded, "
             "r.replaced_by, t.trouble "
             "FROM refset_provenances rp JOIN refs r ON r.provenance_id = rp.provenance_id "
             "CROSS JOIN LATERAL (SELECT skystack_ref_trouble(r.id) AS trouble) t "
             "JOIN images i ON i.id = r.image_id "
             "WHERE rp.refset_id = $1::bigint AND ($2::text IS NULL OR r.filter = $2::text) "
             "AND %s) x WHERE ($3::bigint IS NULL OR id = $3::bigint) %s "
             "ORDER BY place, filter, position, id",
             pc.partition, pc.distance, pc.cond, only_loaded ? "AND loaded" : "");
    PGresult *res = NULL;
    if ((st = sk_db_exec(db, "listing references", sql, pc.nparams, params, &res)))
        return st;
    int nrows = PQntuples(res);
    sk_ref_row *rows = calloc((size_t)nrows + 1, sizeof *rows);
    if (!rows)
        st = sk_error(SK_EIO, "out of memory");
    for (int row = 0; !st && row < nrows; row++)
        st = ref_of(res, row, &rows[row]);
    PQclear(res);
    if (st) {
        sk_ref_rows_free(rows, nrows);
        return st;
    }
    *out = rows;
    *n = nrows;
    return SK_OK;
}
