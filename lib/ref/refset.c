/* refset.c: reference sets in the database: create, delete, list, show, the references they hold and the one a pipeline loads, marking references bad (see skystack/ref.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/ref.h"
#include "db/db_priv.h"

#define UTC_TEXT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static int check_name(const char *name)
{
    if (!name || !*name)
        return sk_error(SK_EINPUT, "refset: the name is empty");
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return sk_error(SK_EINPUT, "refset '%s': the name has a control character", name);
    return SK_OK;
}

static json_t *text_or_null(const PGresult *res, int row, int col)
{
    const char *v = sk_db_value(res, row, col);
    return v ? json_string(v) : json_null();
}

static json_t *integer_of(const PGresult *res, int row, int col)
{
    const char *v = sk_db_value(res, row, col);
    return v ? json_integer(strtoll(v, NULL, 10)) : json_null();
}

static json_t *real_of(const PGresult *res, int row, int col)
{
    const char *v = sk_db_value(res, row, col);
    return v ? json_real(strtod(v, NULL)) : json_null();
}

static json_t *bool_of(const PGresult *res, int row, int col)
{
    const char *v = sk_db_value(res, row, col);
    return v ? json_boolean(v[0] == 't') : json_null();
}

/* A JSON text from the database (json/jsonb cast to text). */
static json_t *parsed_of(const PGresult *res, int row, int col)
{
    const char *v = sk_db_value(res, row, col);
    json_t *j = v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

/* id of a refset, SK_ENOTFOUND naming it when absent. */
static int refset_id(sk_db *db, const char *name, char id[32])
{
    const char *p[1] = {name};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "looking up a refset", "SELECT id FROM refsets WHERE name = $1", 1, p,
                        &res);
    if (st)
        return st;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return sk_error(SK_ENOTFOUND, "refset '%s' does not exist (see `refset list`)", name);
    }
    snprintf(id, 32, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return SK_OK;
}

int sk_refset_create(sk_db *db, const char *name, const char *description)
{
    int st = check_name(name);
    if (st)
        return st;
    const char *p[2] = {name, description};
    PGresult *res = NULL;
    st = sk_db_exec(db, "creating a refset",
                    "INSERT INTO refsets (name, description) VALUES ($1, $2) "
                    "ON CONFLICT (name) DO NOTHING RETURNING id",
                    2, p, &res);
    if (st)
        return st;
    int made = PQntuples(res);
    PQclear(res);
    if (!made)
        return sk_error(SK_EINPUT, "refset '%s' exists already", name);
    return SK_OK;
}

/* Count of references held through the refset's provenances. */
#define HELD_REFS "SELECT count(*) FROM refs r JOIN refset_provenances rp " \
                  "ON rp.provenance_id = r.provenance_id WHERE rp.refset_id = $1::bigint"

int sk_refset_delete(sk_db *db, const char *name, int force, long *nrefs_deleted)
{
    if (nrefs_deleted)
        *nrefs_deleted = 0;
    int st = check_name(name);
    if (st)
        return st;
    int own = !db->in_transaction;
    if (own && (st = sk_db_begin(db)))
        return st;
    char lock[512];
    snprintf(lock, sizeof lock, "refset|%s", name);
    st = sk_db_lock(db, lock);
    char id[32];
    if (!st)
        st = refset_id(db, name, id);
    PGresult *res = NULL;
    const char *p[1] = {id};
    long held = 0, deleted = 0;
    if (!st)
        st = sk_db_exec_row(db, "counting a refset's references", HELD_REFS, 1, p, &res);
    if (!st) {
        held = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        res = NULL;
        if (held > 0 && !force)
            st = sk_error(SK_EINPUT,
                          "refset '%s' holds %ld reference%s: not deleted (--force deletes it "
                          "with the references no other refset holds)",
                          name, held, held == 1 ? "" : "s");
    }
    if (!st && held > 0) {
        st = sk_db_exec(db, "deleting a refset's references",
                        "DELETE FROM refs r WHERE r.provenance_id IN "
                        "(SELECT provenance_id FROM refset_provenances WHERE refset_id = $1::bigint) "
                        "AND NOT EXISTS (SELECT 1 FROM refset_provenances o "
                        "WHERE o.provenance_id = r.provenance_id AND o.refset_id <> $1::bigint)",
                        1, p, &res);
        if (!st)
            deleted = strtol(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        res = NULL;
    }
    if (!st)
        st = sk_db_exec(db, "deleting a refset", "DELETE FROM refsets WHERE id = $1::bigint", 1, p,
                        NULL);
    if (own) {
        if (st)
            sk_db_rollback(db);
        else
            st = sk_db_commit(db);
    }
    if (!st && nrefs_deleted)
        *nrefs_deleted = deleted;
    return st;
}

int sk_refset_list(sk_db *db, json_t **out)
{
    *out = NULL;
    PGresult *res = NULL;
    int st = sk_db_exec(
        db, "listing refsets",
        "SELECT s.name, s.description, s.upstream_hash, " UTC_TEXT("s.created_at") ", "
        "(SELECT count(*) FROM refset_provenances rp WHERE rp.refset_id = s.id), "
        "(SELECT count(*) FILTER (WHERE NOT r.is_bad) FROM refs r JOIN refset_provenances rp "
        " ON rp.provenance_id = r.provenance_id WHERE rp.refset_id = s.id), "
        "(SELECT count(*) FILTER (WHERE r.is_bad) FROM refs r JOIN refset_provenances rp "
        " ON rp.provenance_id = r.provenance_id WHERE rp.refset_id = s.id) "
        "FROM refsets s ORDER BY s.name",
        0, NULL, &res);
    if (st)
        return st;
    json_t *arr = json_array();
    for (int row = 0; row < PQntuples(res); row++)
        json_array_append_new(
            arr, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", text_or_null(res, row, 0),
                           "description", text_or_null(res, row, 1), "upstream_hash",
                           text_or_null(res, row, 2), "created", text_or_null(res, row, 3),
                           "provenances", integer_of(res, row, 4), "references",
                           integer_of(res, row, 5), "bad_references", integer_of(res, row, 6)));
    PQclear(res);
    *out = arr;
    return SK_OK;
}

int sk_refset_show(sk_db *db, const char *name, json_t **out)
{
    *out = NULL;
    int st = check_name(name);
    if (st)
        return st;
    const char *p[1] = {name};
    PGresult *res = NULL;
    st = sk_db_exec(db, "showing a refset",
                    "SELECT s.id, s.name, s.description, s.upstream_hash, " UTC_TEXT("s.created_at")
                    " FROM refsets s WHERE s.name = $1",
                    1, p, &res);
    if (st)
        return st;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return sk_error(SK_ENOTFOUND, "refset '%s' does not exist (see `refset list`)", name);
    }
    char id[32];
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
    json_t *o = json_pack("{s:o, s:o, s:o, s:o}", "name", text_or_null(res, 0, 1), "description",
                          text_or_null(res, 0, 2), "upstream_hash", text_or_null(res, 0, 3),
                          "created", text_or_null(res, 0, 4));
    PQclear(res);
    res = NULL;
    const char *pid[1] = {id};
    st = sk_db_exec(
        db, "listing a refset's provenances",
        "SELECT rp.position, p.id, p.code_version, p.is_bad, p.parameters::text, "
        "(SELECT count(*) FROM refs r WHERE r.provenance_id = p.id AND NOT r.is_bad), "
        "(SELECT count(*) FROM refs r WHERE r.provenance_id = p.id AND r.is_bad), "
        "(SELECT coalesce(json_agg(json_build_object('id', u.id, 'process', u.process) "
        "  ORDER BY u.process, u.id), '[]'::json) FROM provenance_upstreams pu "
        "  JOIN provenances u ON u.id = pu.upstream_id WHERE pu.downstream_id = p.id)::text "
        "FROM refset_provenances rp JOIN provenances p ON p.id = rp.provenance_id "
        "WHERE rp.refset_id = $1::bigint ORDER BY rp.position",
        1, pid, &res);
    if (st) {
        json_decref(o);
        return st;
    }
    json_t *provs = json_array();
    long long good = 0, bad = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        good += strtoll(PQgetvalue(res, row, 5), NULL, 10);
        bad += strtoll(PQgetvalue(res, row, 6), NULL, 10);
        json_array_append_new(
            provs, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "position",
                             integer_of(res, row, 0), "id", text_or_null(res, row, 1),
                             "code_version", text_or_null(res, row, 2), "is_bad",
                             bool_of(res, row, 3), "criteria", parsed_of(res, row, 4), "references",
                             integer_of(res, row, 5), "bad_references", integer_of(res, row, 6),
                             "upstreams", parsed_of(res, row, 7)));
    }
    PQclear(res);
    json_object_set_new(o, "provenances", provs);
    json_object_set_new(o, "references", json_integer(good));
    json_object_set_new(o, "bad_references", json_integer(bad));
    *out = o;
    return SK_OK;
}

/* The references of a refset with the one loaded per place and filter
 * marked; `only_loaded`: just that one (for one place and filter). */
static int query_refs(sk_db *db, const char *name, const sk_place *place, const char *filter,
                      int only_loaded, long long ref_id, json_t **out)
{
    *out = NULL;
    int st = check_name(name);
    if (st)
        return st;
    if (place && (st = sk_place_check(place)))
        return st;
    char id[32];
    if ((st = refset_id(db, name, id)))
        return st;
    char ra[40] = "", dec[40] = "", rid[32], radius[40] = "";
    snprintf(rid, sizeof rid, "%lld", ref_id);
    const char *params[6] = {id, filter, ref_id > 0 ? rid : NULL, NULL, NULL, NULL};
    int nparams = 3;
    if (place && place->has_position) {
        /* The largest footprint radius bounds the centres to look at (a
         * constant, so that the q3c index on the centres serves it). */
        PGresult *r = NULL;
        if ((st = sk_db_exec(db, "reading the largest image radius",
                             "SELECT coalesce(max(radius_deg), 0) FROM images", 0, NULL, &r)))
            return st;
        snprintf(radius, sizeof radius, "%.17g", sk_db_double(r, 0, 0));
        PQclear(r);
    }
    const char *place_cond = "TRUE", *distance = "0", *partition = "r.place, r.filter";
    if (place && place->has_position) {
        snprintf(ra, sizeof ra, "%.17g", place->ra_deg);
        snprintf(dec, sizeof dec, "%.17g", place->dec_deg);
        params[3] = ra;
        params[4] = dec;
        params[5] = radius;
        place_cond = "q3c_radial_query(r.ra, r.dec, $4::double precision, $5::double precision, "
                     "$6::double precision) "
                     "AND q3c_in_poly($4::double precision, $5::double precision, ARRAY["
                     "r.ra_corner_00, r.dec_corner_00, r.ra_corner_10, r.dec_corner_10, "
                     "r.ra_corner_11, r.dec_corner_11, r.ra_corner_01, r.dec_corner_01])";
        distance = "q3c_dist(r.ra, r.dec, $4::double precision, $5::double precision)";
        partition = "r.filter";
        nparams = 6;
    } else if (place) {
        params[3] = place->target;
        params[4] = place->section;
        place_cond = "r.target = $4 AND r.section_id = $5";
        partition = "r.filter";
        nparams = 5;
    }
    char sql[3072];
    snprintf(sql, sizeof sql,
             "SELECT * FROM (SELECT r.id, r.place, r.target, r.section_id, r.filter, r.instrument, "
             "r.provenance_id, rp.position, r.image_id, i.filepath, r.ra, r.dec, r.is_bad, "
             "r.bad_reason, " UTC_TEXT("r.created_at") ", "
             "(NOT r.is_bad AND row_number() OVER (PARTITION BY %s "
             "ORDER BY r.is_bad, rp.position, %s, r.id) = 1) AS loaded "
             "FROM refset_provenances rp JOIN refs r ON r.provenance_id = rp.provenance_id "
             "JOIN images i ON i.id = r.image_id "
             "WHERE rp.refset_id = $1::bigint AND ($2::text IS NULL OR r.filter = $2::text) "
             "AND %s) x WHERE ($3::bigint IS NULL OR id = $3::bigint) %s "
             "ORDER BY place, filter, position, id",
             partition, distance, place_cond, only_loaded ? "AND loaded" : "");
    PGresult *res = NULL;
    if ((st = sk_db_exec(db, "listing references", sql, nparams, params, &res)))
        return st;
    json_t *arr = json_array();
    for (int row = 0; row < PQntuples(res); row++)
        json_array_append_new(
            arr,
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
                      "s:o}",
                      "id", integer_of(res, row, 0), "place", text_or_null(res, row, 1), "target",
                      text_or_null(res, row, 2), "section", text_or_null(res, row, 3), "filter",
                      text_or_null(res, row, 4), "instrument", text_or_null(res, row, 5),
                      "provenance_id", text_or_null(res, row, 6), "position",
                      integer_of(res, row, 7), "image_id", integer_of(res, row, 8), "filepath",
                      text_or_null(res, row, 9), "ra", real_of(res, row, 10), "dec",
                      real_of(res, row, 11), "is_bad", bool_of(res, row, 12), "bad_reason",
                      text_or_null(res, row, 13), "created", text_or_null(res, row, 14), "loaded",
                      bool_of(res, row, 15)));
    PQclear(res);
    *out = arr;
    return SK_OK;
}

int sk_refset_refs(sk_db *db, const char *name, const sk_place *place, const char *filter,
                   json_t **out)
{
    return query_refs(db, name, place, filter, 0, 0, out);
}

int sk_refset_lookup(sk_db *db, const char *name, const sk_place *place, const char *filter,
                     json_t **out)
{
    *out = NULL;
    if (!place || !filter)
        return sk_error(SK_EINPUT, "refset lookup: a place and a filter are needed");
    json_t *arr = NULL;
    int st = query_refs(db, name, place, filter, 1, 0, &arr);
    if (st)
        return st;
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return sk_error(SK_ENOTFOUND, "refset '%s' holds no good reference for this place in filter %s",
                        name, filter);
    }
    *out = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return SK_OK;
}

int sk_refset_ref(sk_db *db, const char *name, long long ref_id, json_t **out)
{
    *out = NULL;
    if (ref_id <= 0)
        return sk_error(SK_EINPUT, "reference id %lld: not a reference id", ref_id);
    json_t *arr = NULL;
    int st = query_refs(db, name, NULL, NULL, 0, ref_id, &arr);
    if (st)
        return st;
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return sk_error(SK_ENOTFOUND, "refset '%s' does not hold reference %lld", name, ref_id);
    }
    *out = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return SK_OK;
}

int sk_ref_mark_bad(sk_db *db, long long ref_id, const char *reason)
{
    if (!reason || !*reason)
        return sk_error(SK_EINPUT, "--reason: a reference is marked bad with a reason");
    char id[32];
    snprintf(id, sizeof id, "%lld", ref_id);
    const char *p[2] = {id, reason};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "marking a reference bad",
                        "UPDATE refs SET is_bad = true, bad_reason = $2 WHERE id = $1::bigint", 2, p,
                        &res);
    if (st)
        return st;
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (n != 1)
        return sk_error(SK_ENOTFOUND, "reference %lld does not exist", ref_id);
    return SK_OK;
}
