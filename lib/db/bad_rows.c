/* bad_rows.c: marking images, coadds, extractions and references bad and unmarking them, with the history of every change, and what used an image (see skystack/lifecycle.h). */
#include <stdio.h>
#include <stdlib.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>
#include "skystack/error.h"
#include "skystack/lifecycle.h"
#include "db_priv.h"

static const char *const kind_names[] = {"image", "coadd", "extraction", "reference"};

int sk_bad_kind_from_name(const char *option, const char *name, int *kind)
{
    for (int k = 0; k < 4; k++)
        if (name && !strcmp(name, kind_names[k])) {
            *kind = k;
            return SK_OK;
        }
    if (name && !strcmp(name, "ref")) {
        *kind = SK_BAD_REFERENCE;
        return SK_OK;
    }
    return sk_error(SK_EINPUT, "%s: '%s' is not image, coadd, extraction or reference", option,
                    name ? name : "");
}

const char *sk_bad_kind_name(int kind)
{
    return kind >= 0 && kind < 4 ? kind_names[kind] : "?";
}

/* The table, its reason column and the condition naming the object. */
static void kind_sql(int kind, const char **table, const char **reason, const char **cond)
{
    *table = kind == SK_BAD_EXTRACTION ? "source_lists" : kind == SK_BAD_REFERENCE ? "refs" : "images";
    *reason = kind == SK_BAD_REFERENCE ? "bad_reason" : "bad_comment";
    *cond = kind == SK_BAD_IMAGE   ? "id = $1::bigint AND type = 'science'"
            : kind == SK_BAD_COADD ? "id = $1::bigint AND type = 'coadd'"
                                   : "id = $1::bigint";
}

/* SK_ENOTFOUND (or SK_EINPUT for an image of the other type) for `id`. */
static int not_found(sk_db *db, int kind, long long id, const char *idt)
{
    if (kind == SK_BAD_IMAGE || kind == SK_BAD_COADD) {
        const char *p[1] = {idt};
        PGresult *r = NULL;
        int st = sk_db_exec(db, "reading the image type", "SELECT type FROM images WHERE id = $1::bigint",
                            1, p, &r);
        if (!st && PQntuples(r) == 1) {
            char type[32];
            snprintf(type, sizeof type, "%s", PQgetvalue(r, 0, 0));
            PQclear(r);
            return sk_error(SK_EINPUT, "image %lld is a %s image, not a %s: mark it as `%s %lld`", id,
                            type, kind_names[kind], strcmp(type, "coadd") ? "image" : "coadd", id);
        }
        PQclear(r);
        if (st)
            return st;
    }
    return sk_error(SK_ENOTFOUND, "%s %lld does not exist", kind_names[kind], id);
}

int sk_bad_mark(sk_db *db, int kind, long long id, int mark, const char *reason, const char *who,
                int *changed)
{
    *changed = 0;
    if (kind < 0 || kind > 3)
        return sk_error(SK_EINPUT, "marking bad: unknown kind %d", kind);
    if (mark && (!reason || !*reason))
        return sk_error(SK_EINPUT, "--reason: a %s is marked bad with a reason", kind_names[kind]);
    if (!who || !*who)
        return sk_error(SK_EINPUT, "--by: who marks it is not known");
    const char *table, *rcol, *cond;
    kind_sql(kind, &table, &rcol, &cond);
    char idt[32], sql[512];
    snprintf(idt, sizeof idt, "%lld", id);
    snprintf(sql, sizeof sql,
             "UPDATE %s SET is_bad = $2::boolean, %s = CASE WHEN $2::boolean THEN $3 END, "
             "bad_by = CASE WHEN $2::boolean THEN $4 END, "
             "bad_at = CASE WHEN $2::boolean THEN now() END "
             "WHERE %s AND is_bad <> $2::boolean RETURNING id",
             table, rcol, cond);
    const char *p[4] = {idt, mark ? "true" : "false", reason && *reason ? reason : NULL, who};
    PGresult *r = NULL;
    int st = sk_db_begin(db);
    st = st ? st : sk_db_exec(db, "marking bad", sql, 4, p, &r);
    int n = st ? 0 : PQntuples(r);
    PQclear(r);
    if (!st && n == 1) {
        const char *h[5] = {kind_names[kind], idt, mark ? "mark" : "unmark", p[2], who};
        st = sk_db_exec(db, "recording the mark",
                        "INSERT INTO bad_marks (kind, object_id, action, reason, marked_by) "
                        "VALUES ($1, $2::bigint, $3, $4, $5)",
                        5, h, NULL);
        st = st ? st : sk_db_commit(db);
        *changed = !st;
        sk_db_rollback(db);
        return st;
    }
    sk_db_rollback(db);
    if (st)
        return st;
    /* nothing changed: already so, or no such object */
    char exists[256];
    snprintf(exists, sizeof exists, "SELECT 1 FROM %s WHERE %s", table, cond);
    const char *pe[1] = {idt};
    st = sk_db_exec(db, "looking for the object", exists, 1, pe, &r);
    n = st ? 0 : PQntuples(r);
    PQclear(r);
    if (st)
        return st;
    return n == 1 ? SK_OK : not_found(db, kind, id, idt);
}

static json_t *text_or_null(const PGresult *r, int row, int col)
{
    const char *v = sk_db_value(r, row, col);
    return v ? json_string(v) : json_null();
}

int sk_bad_list(sk_db *db, int kind, json_t **out)
{
    *out = NULL;
    char k[8];
    snprintf(k, sizeof k, "%d", kind);
    const char *p[1] = {k};
    PGresult *r = NULL;
    int st = sk_db_exec(
        db, "listing what is marked bad",
        "SELECT * FROM ("
        "SELECT CASE type WHEN 'coadd' THEN 1 ELSE 0 END AS k, id, bad_comment, bad_by, "
        "to_char(bad_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM images WHERE is_bad "
        "UNION ALL SELECT 2, id, bad_comment, bad_by, "
        "to_char(bad_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM source_lists WHERE is_bad "
        "UNION ALL SELECT 3, id, bad_reason, bad_by, "
        "to_char(bad_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM refs WHERE is_bad"
        ") x WHERE $1::integer < 0 OR k = $1::integer ORDER BY 1, 2",
        1, p, &r);
    if (st)
        return st;
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(arr, json_pack("{s:s, s:I, s:o, s:o, s:o}", "kind",
                                             kind_names[atoi(PQgetvalue(r, i, 0)) & 3], "id",
                                             (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10),
                                             "reason", text_or_null(r, i, 2), "by",
                                             text_or_null(r, i, 3), "at", text_or_null(r, i, 4)));
    PQclear(r);
    *out = arr;
    return SK_OK;
}

int sk_bad_history(sk_db *db, int kind, long long id, json_t **out)
{
    *out = NULL;
    char idt[32];
    snprintf(idt, sizeof idt, "%lld", id);
    const char *p[2] = {sk_bad_kind_name(kind), idt};
    PGresult *r = NULL;
    int st = sk_db_exec(db, "reading the marks",
                        "SELECT action, reason, marked_by, to_char(marked_at AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM bad_marks "
                        "WHERE kind = $1 AND object_id = $2::bigint ORDER BY id",
                        2, p, &r);
    if (st)
        return st;
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(arr, json_pack("{s:o, s:o, s:o, s:o}", "action", text_or_null(r, i, 0),
                                             "reason", text_or_null(r, i, 1), "by",
                                             text_or_null(r, i, 2), "at", text_or_null(r, i, 3)));
    PQclear(r);
    *out = arr;
    return SK_OK;
}

int sk_bad_users(sk_db *db, long long image_id, json_t **out)
{
    *out = NULL;
    char idt[32];
    snprintf(idt, sizeof idt, "%lld", image_id);
    const char *p[1] = {idt};
    PGresult *c = NULL, *f = NULL;
    int st = sk_db_exec(db, "looking for the image", "SELECT 1 FROM images WHERE id = $1::bigint", 1,
                        p, &c);
    int n = st ? 0 : PQntuples(c);
    PQclear(c);
    c = NULL;
    if (!st && n == 0)
        return sk_error(SK_ENOTFOUND, "image %lld does not exist", image_id);
    st = st ? st : sk_db_exec(db, "looking for the coadds of the image",
                        "SELECT i.id, i.filepath, i.is_bad, i.pending FROM coadd_components c "
                        "JOIN images i ON i.id = c.coadd_image_id WHERE c.image_id = $1::bigint "
                        "ORDER BY i.id",
                        1, p, &c);
    st = st ? st
            : sk_db_exec(db, "looking for the references of the image",
                         "SELECT r.id, r.image_id, r.place, r.filter, skystack_ref_trouble(r.id) "
                         "FROM refs r WHERE r.image_id = $1::bigint OR r.image_id IN (SELECT "
                         "coadd_image_id FROM coadd_components WHERE image_id = $1::bigint) "
                         "ORDER BY r.id",
                         1, p, &f);
    if (st) {
        PQclear(c);
        return st;
    }
    json_t *coadds = json_array(), *refs = json_array();
    for (int i = 0; i < PQntuples(c); i++)
        json_array_append_new(coadds, json_pack("{s:I, s:s, s:b, s:b}", "coadd_id",
                                                (json_int_t)strtoll(PQgetvalue(c, i, 0), NULL, 10),
                                                "filepath", PQgetvalue(c, i, 1), "is_bad",
                                                PQgetvalue(c, i, 2)[0] == 't', "pending",
                                                PQgetvalue(c, i, 3)[0] == 't'));
    for (int i = 0; i < PQntuples(f); i++)
        json_array_append_new(
            refs, json_pack("{s:I, s:I, s:s, s:s, s:b, s:o}", "ref_id",
                            (json_int_t)strtoll(PQgetvalue(f, i, 0), NULL, 10), "coadd_id",
                            (json_int_t)strtoll(PQgetvalue(f, i, 1), NULL, 10), "place",
                            PQgetvalue(f, i, 2), "filter", PQgetvalue(f, i, 3), "loadable",
                            PQgetisnull(f, i, 4), "trouble", text_or_null(f, i, 4)));
    PQclear(c);
    PQclear(f);
    *out = json_pack("{s:o, s:o}", "coadds", coadds, "references", refs);
    return SK_OK;
}

const char *sk_bad_marker(const char *given)
{
    if (given && *given)
        return given;
    const char *e = getenv("SKYSTACK_USER");
    if (e && *e)
        return e;
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name)
        return pw->pw_name;
    e = getenv("USER");
    return e && *e ? e : "unknown";
}
