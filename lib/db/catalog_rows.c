/* catalog_rows.c: the database copy of a reference catalogue: its table (ra, dec and each row in canonical form) loaded by binary COPY, q3c-indexed and registered in refcats, and the rows of a cone fetched in binary. */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "skystack/error.h"
#include "calib/catalog_internal.h"
#include "db_priv.h"

struct sk_catload {
    sk_db *db;
    int nbands;
    char table[64];
    unsigned char *buf;
    size_t cap;
};

/* The table of a catalogue: ra, dec for the q3c index, and each row whole
 * in the canonical encoding (catalog_internal.h), what a lookup reads
 * back (one field per row: fetching 40,000 rows stays cheap). */
static int table_sql(char *sql, size_t n, const char *table, int nbands)
{
    (void)nbands;
    snprintf(sql, n, "CREATE TABLE %s (ra double precision NOT NULL, dec double precision NOT NULL, "
                     "r bytea NOT NULL)", table);
    return SK_OK;
}

int sk_db_catalog_load_begin(sk_db *db, int nbands, sk_catload **out)
{
    *out = NULL;
    sk_catload *l = calloc(1, sizeof *l);
    if (!l)
        return sk_error(SK_EIO, "catalogue load: out of memory");
    l->db = db;
    l->nbands = nbands;
    snprintf(l->table, sizeof l->table, "refcat_load_%ld", (long)getpid());
    char sql[2048], copy[128];
    table_sql(sql, sizeof sql, l->table, nbands);
    snprintf(copy, sizeof copy, "COPY %s FROM STDIN WITH (FORMAT binary, FREEZE)", l->table);
    int st = sk_db_begin(db);
    st = st ? st : sk_db_exec(db, "catalogue table", sql, 0, NULL, NULL);
    PGresult *res = st ? NULL : PQexec(db->conn, copy);
    if (!st && PQresultStatus(res) != PGRES_COPY_IN)
        st = sk_error(SK_EIO, "database: COPY of the catalogue: %s", PQerrorMessage(db->conn));
    PQclear(res);
    static const unsigned char header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0,
                                             0, 0, 0, 0, 0, 0, 0, 0};
    if (!st && PQputCopyData(db->conn, (const char *)header, 19) != 1)
        st = sk_error(SK_EIO, "database: COPY of the catalogue: %s", PQerrorMessage(db->conn));
    if (st) {
        if (sk_db_in_transaction(db))
            sk_db_rollback(db);
        free(l);
        return st;
    }
    *out = l;
    return SK_OK;
}

static unsigned char *put8(unsigned char *p, double d)
{
    if (isnan(d)) {
        uint32_t m = htonl(0xffffffffu);
        memcpy(p, &m, 4);
        return p + 4;
    }
    uint32_t len = htonl(8), hi, lo;
    uint64_t u;
    memcpy(&u, &d, 8);
    hi = htonl((uint32_t)(u >> 32));
    lo = htonl((uint32_t)u);
    memcpy(p, &len, 4);
    memcpy(p + 4, &hi, 4);
    memcpy(p + 8, &lo, 4);
    return p + 12;
}

int sk_db_catalog_load_rows(sk_catload *l, const sk_catrows *r)
{
    size_t rs = sk_catrow_size(l->nbands);
    size_t need = (size_t)r->n * (2 + 12 + 12 + 4 + rs) + 2;
    if (need > l->cap) {
        unsigned char *b = realloc(l->buf, need);
        if (!b)
            return sk_error(SK_EIO, "catalogue load: out of memory");
        l->buf = b;
        l->cap = need;
    }
    unsigned char *p = l->buf;
    uint16_t nfields = htons(3);
    uint32_t len = htonl((uint32_t)rs);
    for (long k = 0; k < r->n; k++) {
        memcpy(p, &nfields, 2);
        p += 2;
        p = put8(p, r->ra_deg[k]);
        p = put8(p, r->dec_deg[k]);
        memcpy(p, &len, 4);
        sk_catrow_encode(r, k, p + 4);
        p += 4 + rs;
    }
    if (p > l->buf && PQputCopyData(l->db->conn, (const char *)l->buf, (int)(p - l->buf)) != 1)
        return sk_error(SK_EIO, "database: COPY of the catalogue: %s", PQerrorMessage(l->db->conn));
    return SK_OK;
}

static int copy_end(sk_catload *l)
{
    static const unsigned char trailer[2] = {0xff, 0xff};
    PGconn *c = l->db->conn;
    int st = SK_OK;
    if (PQputCopyData(c, (const char *)trailer, 2) != 1 || PQputCopyEnd(c, NULL) != 1)
        st = sk_error(SK_EIO, "database: COPY of the catalogue: %s", PQerrorMessage(c));
    PGresult *res;
    while ((res = PQgetResult(c))) {
        if (!st && PQresultStatus(res) != PGRES_COMMAND_OK)
            st = sk_error(SK_EIO, "database: COPY of the catalogue: %s", PQresultErrorMessage(res));
        PQclear(res);
    }
    return st;
}

static int register_catalog(sk_catload *l, const sk_catinfo *info, const char *table)
{
    char bands[SK_CAT_MAXBANDS * (SK_CAT_BANDLEN + 4) + 4] = "{";
    for (int b = 0; b < info->nbands; b++) {
        size_t n = strlen(bands);
        snprintf(bands + n, sizeof bands - n, "%s\"%s\"", b ? "," : "", info->band[b]);
    }
    strcat(bands, "}");
    char nrows[32];
    snprintf(nrows, sizeof nrows, "%lld", info->nrows);
    const char *p[8] = {info->id, info->name, info->version, nrows, info->content_sha256, info->columns, bands,
                        table};
    return sk_db_exec(l->db, "register the catalogue",
                      "INSERT INTO refcats (catalog_id, name, version, nrows, content_sha256, columns, bands, "
                      "table_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", 8, p, NULL);
}

int sk_db_catalog_load_end(sk_catload *l, const sk_catinfo *info, int *existed)
{
    *existed = 0;
    sk_db *db = l->db;
    int st = copy_end(l);
    PGresult *res = NULL;
    const char *p[1] = {info->id};
    st = st ? st : sk_db_exec(db, "catalogue lookup", "SELECT 1 FROM refcats WHERE catalog_id = $1", 1, p, &res);
    if (!st && PQntuples(res) > 0)
        *existed = 1;
    PQclear(res);
    char table[64], sql[512];
    snprintf(table, sizeof table, "refcat_%.16s", info->id);
    if (!st && !*existed) {
        snprintf(sql, sizeof sql, "ALTER TABLE %s RENAME TO %s", l->table, table);
        st = sk_db_exec(db, "name the catalogue table", sql, 0, NULL, NULL);
        snprintf(sql, sizeof sql, "CREATE INDEX %s_q3c ON %s (q3c_ang2ipix(ra, dec))", table, table);
        st = st ? st : sk_db_exec(db, "index the catalogue", sql, 0, NULL, NULL);
        snprintf(sql, sizeof sql, "ANALYZE %s", table);
        st = st ? st : sk_db_exec(db, "analyse the catalogue", sql, 0, NULL, NULL);
        st = st ? st : register_catalog(l, info, table);
        if (st && sk_db_last_sqlstate(db)[0] && !strcmp(sk_db_last_sqlstate(db), "23505"))
            st = sk_error(SK_EINPUT, "catalogue %s version '%s' is in the database already with other "
                                     "content (give another --version)", info->name, info->version);
    }
    if (!st && !*existed)
        st = sk_db_commit(db);
    else if (sk_db_in_transaction(db))
        sk_db_rollback(db);
    free(l->buf);
    free(l);
    return st;
}

void sk_db_catalog_load_abort(sk_catload *l)
{
    if (!l)
        return;
    PQputCopyEnd(l->db->conn, "aborted");
    PGresult *res;
    while ((res = PQgetResult(l->db->conn)))
        PQclear(res);
    if (sk_db_in_transaction(l->db))
        sk_db_rollback(l->db);
    free(l->buf);
    free(l);
}

static int parse_bands(const char *arr, sk_catinfo *info)
{
    /* a text[] literal: {G,BP,RP} or {"G","BP"} */
    info->nbands = 0;
    const char *s = arr && arr[0] == '{' ? arr + 1 : "";
    while (*s && *s != '}') {
        if (info->nbands == SK_CAT_MAXBANDS)
            return sk_error(SK_EINPUT, "refcats: too many bands");
        char *o = info->band[info->nbands++];
        size_t n = 0;
        while (*s && *s != ',' && *s != '}') {
            if (*s != '"' && n + 1 < SK_CAT_BANDLEN)
                o[n++] = *s;
            s++;
        }
        o[n] = '\0';
        if (*s == ',')
            s++;
    }
    return SK_OK;
}

int sk_db_catalog_find(sk_db *db, const char *name, const char *version, sk_catinfo *info, char table[64])
{
    memset(info, 0, sizeof *info);
    PGresult *res = NULL;
    const char *p[2] = {name, version};
    int st = sk_db_exec(db, "catalogue lookup",
                        version ? "SELECT catalog_id, name, version, nrows, content_sha256, columns, bands, table_name "
                                  "FROM refcats WHERE name = $1 AND version = $2"
                                : "SELECT catalog_id, name, version, nrows, content_sha256, columns, bands, table_name "
                                  "FROM refcats WHERE name = $1 ORDER BY created DESC, version DESC LIMIT 1",
                        version ? 2 : 1, p, &res);
    if (!st && PQntuples(res) == 0)
        st = sk_error(SK_ENOTFOUND, "db:%s%s%s: no such catalogue in the database (catingest loads one)", name,
                      version ? "@" : "", version ? version : "");
    if (!st) {
        snprintf(info->id, sizeof info->id, "%s", sk_db_value(res, 0, 0));
        snprintf(info->name, sizeof info->name, "%s", sk_db_value(res, 0, 1));
        snprintf(info->version, sizeof info->version, "%s", sk_db_value(res, 0, 2));
        info->nrows = atoll(sk_db_value(res, 0, 3));
        snprintf(info->content_sha256, sizeof info->content_sha256, "%s", sk_db_value(res, 0, 4));
        info->columns = strdup(sk_db_value(res, 0, 5));
        st = parse_bands(sk_db_value(res, 0, 6), info);
        snprintf(table, 64, "%s", sk_db_value(res, 0, 7));
        if (!st && strspn(table + 7, "0123456789abcdef") != 16)
            st = sk_error(SK_EINPUT, "refcats: '%s' is not a catalogue table name", table);
    }
    PQclear(res);
    return st;
}

int sk_db_catalog_cone(sk_db *db, const char *table, double ra_deg, double dec_deg, double radius_deg,
                       sk_catrows *out)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT r FROM %s WHERE q3c_radial_query(ra, dec, $1, $2, $3)", table);
    char a[3][32];
    snprintf(a[0], sizeof a[0], "%.17g", ra_deg);
    snprintf(a[1], sizeof a[1], "%.17g", dec_deg);
    snprintf(a[2], sizeof a[2], "%.17g", radius_deg);
    const char *p[3] = {a[0], a[1], a[2]};
    PGresult *res = PQexecParams(db->conn, sql, 3, NULL, p, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int st = sk_error(SK_EIO, "database: catalogue rows of a cone: %s", PQresultErrorMessage(res));
        PQclear(res);
        return st;
    }
    int n = PQntuples(res);
    size_t rs = sk_catrow_size(out->nbands);
    int st = sk_catrows_reserve(out, out->n + n);
    for (int i = 0; !st && i < n; i++) {
        if (PQgetisnull(res, i, 0) || (size_t)PQgetlength(res, i, 0) != rs) {
            st = sk_error(SK_EINPUT, "%s: a row of %d bytes, not %zu (%d bands)", table, PQgetlength(res, i, 0), rs,
                          out->nbands);
            break;
        }
        sk_catrow_decode((const unsigned char *)PQgetvalue(res, i, 0), out, out->n++);
    }
    PQclear(res);
    return st;
}

long sk_db_catalog_backend_pid(const sk_db *db)
{
    return db && db->conn ? (long)PQbackendPID(db->conn) : -1;
}
