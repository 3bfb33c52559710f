/* refset.c: reference sets: create, delete, list, show, the references they hold and the one a pipeline loads, marking references bad (see skystack/ref.h); the rows are read and written in lib/db. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/lifecycle.h"
#include "skystack/ref.h"
#include "db/ref_rows_priv.h"
#include "ref_internal.h"

static int check_name(const char *name)
{
    if (!name || !*name)
        return sk_error(SK_EINPUT, "refset: the name is empty");
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return sk_error(SK_EINPUT, "refset '%s': the name has a control character", name);
    return SK_OK;
}

static json_t *text_or_null(const char *v)
{
    return v ? json_string(v) : json_null();
}

static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* A JSON text from the database. */
static json_t *parsed_or_null(const char *v)
{
    json_t *j = v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

/* id of a refset, SK_ENOTFOUND naming it when absent. */
static int refset_id(sk_db *db, const char *name, long long *id)
{
    sk_refset_row row;
    int found = 0;
    int st = sk_refset_row_get(db, name, 0, &row, &found);
    *id = row.id;
    sk_refset_row_clear(&row);
    if (!st && !found)
        st = sk_error(SK_ENOTFOUND, "refset '%s' does not exist (see `refset list`)", name);
    return st;
}

int sk_refset_create(sk_db *db, const char *name, const char *description)
{
    int st = check_name(name);
    if (st)
        return st;
    int made = 0;
    if ((st = sk_refset_row_insert(db, name, description, NULL, &made)))
        return st;
    if (!made)
        return sk_error(SK_EINPUT, "refset '%s' exists already", name);
    return SK_OK;
}

/* Inside the refset's lock: refuse to delete references unless `force`. */
static int delete_locked(sk_db *db, const char *name, int force, long *deleted)
{
    long long id = 0;
    long held = 0;
    int st = refset_id(db, name, &id);
    if (!st)
        st = sk_refset_row_count_refs(db, id, &held);
    if (!st && held > 0 && !force)
        st = sk_error(SK_EINPUT,
                      "refset '%s' holds %ld reference%s: not deleted (--force deletes it "
                      "with the references no other refset holds)",
                      name, held, held == 1 ? "" : "s");
    if (!st && held > 0)
        st = sk_refset_row_delete_refs(db, id, deleted);
    if (!st)
        st = sk_refset_row_delete(db, id);
    return st;
}

int sk_refset_delete(sk_db *db, const char *name, int force, long *nrefs_deleted)
{
    if (nrefs_deleted)
        *nrefs_deleted = 0;
    int st = check_name(name);
    if (st)
        return st;
    int own = !sk_db_in_transaction(db);
    if (own && (st = sk_db_begin(db)))
        return st;
    char lock[512];
    snprintf(lock, sizeof lock, "refset|%s", name);
    long deleted = 0;
    st = sk_db_lock(db, lock);
    if (!st)
        st = delete_locked(db, name, force, &deleted);
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
    sk_refset_row *rows = NULL;
    int n = 0;
    int st = sk_refset_rows_list(db, &rows, &n);
    if (st)
        return st;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const sk_refset_row *r = &rows[i];
        json_array_append_new(
            arr, json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:I}", "name", text_or_null(r->name),
                           "description", text_or_null(r->description), "upstream_hash",
                           text_or_null(r->upstream_hash), "created", text_or_null(r->created),
                           "provenances", (json_int_t)r->nprovenances, "references",
                           (json_int_t)r->nrefs_good, "bad_references", (json_int_t)r->nrefs_bad));
    }
    sk_refset_rows_free(rows, n);
    *out = arr;
    return SK_OK;
}

/* The refset's provenances as JSON, their reference counts summed. */
static json_t *members_json(const sk_refset_member_row *rows, int n, long long *good,
                            long long *bad)
{
    json_t *provs = json_array();
    for (int i = 0; i < n; i++) {
        const sk_refset_member_row *m = &rows[i];
        *good += m->nrefs_good;
        *bad += m->nrefs_bad;
        json_array_append_new(
            provs, json_pack("{s:I, s:o, s:o, s:b, s:o, s:I, s:I, s:o}", "position",
                             (json_int_t)m->position, "id", text_or_null(m->prov_id),
                             "code_version", text_or_null(m->code_version), "is_bad", m->is_bad,
                             "criteria", parsed_or_null(m->parameters_json), "references",
                             (json_int_t)m->nrefs_good, "bad_references",
                             (json_int_t)m->nrefs_bad, "upstreams",
                             parsed_or_null(m->upstreams_json)));
    }
    return provs;
}

int sk_refset_show(sk_db *db, const char *name, json_t **out)
{
    *out = NULL;
    int st = check_name(name);
    if (st)
        return st;
    sk_refset_row row;
    int found = 0;
    if ((st = sk_refset_row_get(db, name, 0, &row, &found)))
        return st;
    if (!found)
        return sk_error(SK_ENOTFOUND, "refset '%s' does not exist (see `refset list`)", name);
    json_t *o = json_pack("{s:o, s:o, s:o, s:o}", "name", text_or_null(row.name), "description",
                          text_or_null(row.description), "upstream_hash",
                          text_or_null(row.upstream_hash), "created", text_or_null(row.created));
    sk_refset_member_row *members = NULL;
    int n = 0;
    st = sk_refset_member_rows(db, row.id, &members, &n);
    sk_refset_row_clear(&row);
    if (st) {
        json_decref(o);
        return st;
    }
    long long good = 0, bad = 0;
    json_object_set_new(o, "provenances", members_json(members, n, &good, &bad));
    sk_refset_member_rows_free(members, n);
    json_object_set_new(o, "references", json_integer(good));
    json_object_set_new(o, "bad_references", json_integer(bad));
    *out = o;
    return SK_OK;
}

static json_t *ref_json(const sk_ref_row *r)
{
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:b, s:o, s:o, "
                     "s:b, s:o, s:o}",
                     "id", (json_int_t)r->id, "place", text_or_null(r->place), "target",
                     text_or_null(r->target), "section", text_or_null(r->section), "filter",
                     text_or_null(r->filter), "instrument", text_or_null(r->instrument),
                     "provenance_id", text_or_null(r->provenance_id), "position",
                     (json_int_t)r->position, "image_id", (json_int_t)r->image_id, "filepath",
                     text_or_null(r->filepath), "ra", real_or_null(r->ra_deg), "dec",
                     real_or_null(r->dec_deg), "is_bad", r->is_bad, "bad_reason",
                     text_or_null(r->bad_reason), "created", text_or_null(r->created), "loaded",
                     r->loaded, "replaced_by",
                     r->replaced_by ? json_integer(r->replaced_by) : json_null(), "trouble",
                     text_or_null(r->trouble));
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
    long long id = 0;
    if ((st = refset_id(db, name, &id)))
        return st;
    sk_ref_row *rows = NULL;
    int n = 0;
    if ((st = sk_ref_rows_of_refset(db, id, place, filter, only_loaded, ref_id, &rows, &n)))
        return st;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, ref_json(&rows[i]));
    sk_ref_rows_free(rows, n);
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

int sk_ref_mark_bad(sk_db *db, long long ref_id, const char *reason, const char *who)
{
    if (!reason || !*reason)
        return sk_error(SK_EINPUT, "--reason: a reference is marked bad with a reason");
    int changed = 0;
    return sk_bad_mark(db, SK_BAD_REFERENCE, ref_id, 1, reason, who, &changed);
}

int sk_ref_replacements(sk_db *db, long long ref_id, json_t **out)
{
    if (ref_id <= 0)
        return sk_error(SK_EINPUT, "reference id %lld: not a reference id", ref_id);
    return sk_ref_rows_chain(db, ref_id, out);
}
