/* catalog_rows.c: the database copy of a reference catalogue: its table of HEALPix cells (each a run of rows in canonical form) loaded by binary COPY, indexed and registered in refcats, and the rows of a cone fetched in binary. */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "skystack/error.h"
#include "calib/catalog_internal.h"
#include "db_priv.h"

/* The cells of the database copy: HEALPix nested pixels of ~3.4 arcmin,
 * a few hundred rows each at Galactic-plane density; a 0.5-degree field
 * touches some 200. */
#define CELL_NSIDE 1024
/* Rows gathered (and sorted by cell) before they are sent: ~22 MB with 3
 * bands; a cell met again later (input not in sky order) gets one more
 * table row. */
#define CELL_BATCH (1L << 18)
/* COPY data is sent in pieces of this size. */
#define COPY_CHUNK (1L << 20)

typedef struct cellrow { long pix, seq; } cellrow;

struct sk_catload {
    sk_db *db;
    int nbands;
    size_t rs;
    char table[64];
    unsigned char *rows;   /* CELL_BATCH encoded rows */
    cellrow *order;
    long n;
    unsigned char *buf;    /* COPY data not sent yet */
    size_t nbuf;
};

/* The table of a catalogue: one row per (cell, batch): the cell's pixel,
 * its row count and its rows whole in the canonical encoding
 * (catalog_internal.h), stored uncompressed (floats do not compress and
 * inflating costs the lookup time). */
static void table_sql(char *sql, size_t n, char *storage, size_t m, const char *table)
{
    snprintf(sql, n, "CREATE TABLE %s (pix bigint NOT NULL, n integer NOT NULL, r bytea NOT NULL)", table);
    snprintf(storage, m, "ALTER TABLE %s ALTER COLUMN r SET STORAGE EXTERNAL", table);
}

int sk_db_catalog_load_begin(sk_db *db, int nbands, sk_catload **out)
{
    *out = NULL;
    sk_catload *l = calloc(1, sizeof *l);
    if (!l)
        return sk_error(SK_EIO, "catalogue load: out of memory");
    l->db = db;
    l->nbands = nbands;
    l->rs = sk_catrow_size(nbands);
    l->rows = malloc(l->rs * CELL_BATCH);
    l->order = malloc(sizeof *l->order * CELL_BATCH);
    l->buf = malloc(COPY_CHUNK);
    if (!l->rows || !l->order || !l->buf) {
        free(l->rows);
        free(l->order);
        free(l->buf);
        free(l);
        return sk_error(SK_EIO, "catalogue load: out of memory");
    }
    snprintf(l->table, sizeof l->table, "refcat_load_%ld", (long)getpid());
    char sql[2048], storage[256], copy[128];
    table_sql(sql, sizeof sql, storage, sizeof storage, l->table);
    snprintf(copy, sizeof copy, "COPY %s FROM STDIN WITH (FORMAT binary, FREEZE)", l->table);
    int st = sk_db_begin(db);
    st = st ? st : sk_db_exec(db, "catalogue table", sql, 0, NULL, NULL);
    st = st ? st : sk_db_exec(db, "catalogue table", storage, 0, NULL, NULL);
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
        free(l->rows);
        free(l->order);
        free(l->buf);
        free(l);
        return st;
    }
    *out = l;
    return SK_OK;
}

static unsigned char *put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return p + bytes;
}

static int cmp_cellrow(const void *a, const void *b)
{
    const cellrow *x = a, *y = b;
    if (x->pix != y->pix)
        return (x->pix > y->pix) - (x->pix < y->pix);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Append n bytes to the COPY data, sending it in pieces. */
static int put_copy(sk_catload *l, const unsigned char *p, size_t n)
{
    while (n > 0) {
        size_t k = n < COPY_CHUNK - l->nbuf ? n : COPY_CHUNK - l->nbuf;
        memcpy(l->buf + l->nbuf, p, k);
        l->nbuf += k;
        p += k;
        n -= k;
        if (l->nbuf == COPY_CHUNK) {
            if (PQputCopyData(l->db->conn, (const char *)l->buf, (int)l->nbuf) != 1)
                return sk_error(SK_EIO, "database: COPY of the catalogue: %s", PQerrorMessage(l->db->conn));
            l->nbuf = 0;
        }
    }
    return SK_OK;
}

/* The gathered rows, sorted by cell, as one COPY tuple per cell. */
static int flush_cells(sk_catload *l)
{
    qsort(l->order, (size_t)l->n, sizeof *l->order, cmp_cellrow);
    int st = SK_OK;
    for (long a = 0; !st && a < l->n;) {
        long b = a;
        while (b < l->n && l->order[b].pix == l->order[a].pix)
            b++;
        unsigned char head[30], *p = head;
        p = put_be(p, 3, 2);
        p = put_be(p, 8, 4);
        p = put_be(p, (uint64_t)l->order[a].pix, 8);
        p = put_be(p, 4, 4);
        p = put_be(p, (uint64_t)(b - a), 4);
        p = put_be(p, (uint64_t)(l->rs * (size_t)(b - a)), 4);
        st = put_copy(l, head, (size_t)(p - head));
        for (long k = a; !st && k < b; k++)
            st = put_copy(l, l->rows + l->rs * (size_t)l->order[k].seq, l->rs);
        a = b;
    }
    l->n = 0;
    return st;
}

int sk_db_catalog_load_rows(sk_catload *l, const sk_catrows *r)
{
    for (long k = 0; k < r->n; k++) {
        if (l->n == CELL_BATCH) {
            int st = flush_cells(l);
            if (st)
                return st;
        }
        sk_catrow_encode(r, k, l->rows + l->rs * (size_t)l->n);
        l->order[l->n] = (cellrow){sk_healpix_nest(CELL_NSIDE, r->ra_deg[k], r->dec_deg[k]), l->n};
        l->n++;
    }
    return SK_OK;
}

static void load_free(sk_catload *l)
{
    free(l->rows);
    free(l->order);
    free(l->buf);
    free(l);
}

static int copy_end(sk_catload *l)
{
    static const unsigned char trailer[2] = {0xff, 0xff};
    PGconn *c = l->db->conn;
    int st = flush_cells(l);
    st = st ? st : put_copy(l, trailer, 2);
    if (!st && ((l->nbuf && PQputCopyData(c, (const char *)l->buf, (int)l->nbuf) != 1) || PQputCopyEnd(c, NULL) != 1))
        st = sk_error(SK_EIO, "database: COPY of the catalogue: %s", PQerrorMessage(c));
    else if (st)
        PQputCopyEnd(c, "aborted");
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
    char nrows[32], nside[16];
    snprintf(nrows, sizeof nrows, "%lld", info->nrows);
    snprintf(nside, sizeof nside, "%d", CELL_NSIDE);
    const char *p[9] = {info->id, info->name, info->version, nrows, info->content_sha256, info->columns, bands,
                        table, nside};
    return sk_db_exec(l->db, "register the catalogue",
                      "INSERT INTO refcats (catalog_id, name, version, nrows, content_sha256, columns, bands, "
                      "table_name, cell_nside) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", 9, p, NULL);
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
        snprintf(sql, sizeof sql, "CREATE INDEX %s_pix ON %s (pix)", table, table);
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
    load_free(l);
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
    load_free(l);
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

int sk_db_catalog_find(sk_db *db, const char *name, const char *version, sk_catinfo *info, char table[64],
                       int *cell_nside)
{
    memset(info, 0, sizeof *info);
    *cell_nside = 0;
    PGresult *res = NULL;
    const char *p[2] = {name, version};
    int st = sk_db_exec(db, "catalogue lookup",
                        version ? "SELECT catalog_id, name, version, nrows, content_sha256, columns, bands, table_name, "
                                  "cell_nside FROM refcats WHERE name = $1 AND version = $2"
                                : "SELECT catalog_id, name, version, nrows, content_sha256, columns, bands, table_name, "
                                  "cell_nside FROM refcats WHERE name = $1 ORDER BY created DESC, version DESC LIMIT 1",
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
        *cell_nside = PQgetisnull(res, 0, 8) ? 0 : atoi(sk_db_value(res, 0, 8));
        if (!st && strspn(table + 7, "0123456789abcdef") != 16)
            st = sk_error(SK_EINPUT, "refcats: '%s' is not a catalogue table name", table);
    }
    PQclear(res);
    return st;
}

/* The rows of the query's result, a field of encoded rows at a time
 * (single-row mode: no copy of the whole result is held), those within
 * the cone appended. */
static int fetch_rows(sk_db *db, const char *table, double ra_deg, double dec_deg, double radius_deg,
                      sk_catrows *out)
{
    size_t rs = sk_catrow_size(out->nbands);
    int st = PQsetSingleRowMode(db->conn) ? SK_OK : sk_error(SK_EIO, "database: single-row mode refused");
    PGresult *res;
    while ((res = PQgetResult(db->conn))) {
        ExecStatusType s = PQresultStatus(res);
        if (!st && s == PGRES_SINGLE_TUPLE) {
            size_t len = PQgetisnull(res, 0, 0) ? 0 : (size_t)PQgetlength(res, 0, 0);
            if (len == 0 || len % rs)
                st = sk_error(SK_EINPUT, "%s: a field of %zu bytes, not a multiple of %zu (%d bands)", table,
                              len, rs, out->nbands);
            else
                st = sk_catrows_decode_cone((const unsigned char *)PQgetvalue(res, 0, 0), (long)(len / rs), ra_deg,
                                            dec_deg, radius_deg, out);
        } else if (!st && s != PGRES_TUPLES_OK) {
            st = sk_error(SK_EIO, "database: catalogue rows of a cone: %s", PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    return st;
}

int sk_db_catalog_cone(sk_db *db, const char *table, int cell_nside, double ra_deg, double dec_deg,
                       double radius_deg, sk_catrows *out)
{
    char sql[256];
    char a[3][32], *cells = NULL;
    const char *p[3] = {a[0], a[1], a[2]};
    int np = 3;
    if (cell_nside > 0) {
        /* the cells the cone touches, as an array literal */
        long *pix = NULL, npix = 0;
        int st = sk_healpix_cone(cell_nside, ra_deg, dec_deg, radius_deg, &pix, &npix);
        cells = st ? NULL : malloc(24 * (size_t)npix + 3);
        if (!st && !cells)
            st = sk_error(SK_EIO, "catalogue cone: out of memory");
        if (st) {
            free(pix);
            return st;
        }
        size_t k = 0;
        cells[k++] = '{';
        for (long i = 0; i < npix; i++)
            k += (size_t)sprintf(cells + k, "%s%ld", i ? "," : "", pix[i]);
        strcpy(cells + k, "}");
        free(pix);
        snprintf(sql, sizeof sql, "SELECT r FROM %s WHERE pix = ANY($1::bigint[])", table);
        p[0] = cells;
        np = 1;
    } else {
        /* a catalogue loaded one row per star: its q3c index (the query's
           cost estimate would have it compiled by JIT, which takes longer
           than the query) */
        PQclear(PQexec(db->conn, "SET jit = off"));
        snprintf(sql, sizeof sql, "SELECT r FROM %s WHERE q3c_radial_query(ra, dec, $1, $2, $3)", table);
        snprintf(a[0], sizeof a[0], "%.17g", ra_deg);
        snprintf(a[1], sizeof a[1], "%.17g", dec_deg);
        snprintf(a[2], sizeof a[2], "%.17g", radius_deg);
    }
    int sent = PQsendQueryParams(db->conn, sql, np, NULL, p, NULL, NULL, 1);
    free(cells);
    if (!sent)
        return sk_error(SK_EIO, "database: catalogue rows of a cone: %s", PQerrorMessage(db->conn));
    return fetch_rows(db, table, ra_deg, dec_deg, radius_deg, out);
}

long sk_db_catalog_backend_pid(const sk_db *db)
{
    return db && db->conn ? (long)PQbackendPID(db->conn) : -1;
}
