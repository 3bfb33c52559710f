/* image_rows.c: the images rows of ingesting and reference making: registering a science image, finding an image by origin, path or input set, and whether its extraction products exist. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "db_priv.h"
#include "image_rows_priv.h"

/* A number as a parameter: NULL when not finite. */
static const char *num_param(char buf[40], double v)
{
    if (!isfinite(v))
        return NULL;
    snprintf(buf, 40, "%.17g", v);
    return buf;
}

static char *dup_or_null(const char *s)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        sk_error(SK_EIO, "out of memory");
    return d;
}

int sk_image_row_insert(sk_db *db, const sk_image_row *m, long long *id)
{
    enum { NP = 40 };
    const char *p[NP];
    char nums[NP][40];
    int k = 0;
    const sk_footprint *fp = &m->footprint;
    const char *text[] = {m->filepath, m->md5, m->provenance_id, m->original_path, m->original_md5,
                          m->original_hdu, m->instrument, m->telescope, m->filter, m->section,
                          m->target, m->project};
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        p[k++] = text[i];
    const double num[] = {m->mjd, m->end_mjd, m->exptime_s, m->airmass, m->gain, m->saturation,
                          m->read_noise, (double)m->width, (double)m->height, fp->ra_deg,
                          fp->dec_deg};
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++, k++)
        p[k] = num_param(nums[k], num[i]);
    for (int c = 0; c < 4; c++) {
        p[k] = num_param(nums[k], fp->corner_ra_deg[c]), k++;
        p[k] = num_param(nums[k], fp->corner_dec_deg[c]), k++;
    }
    const double box[] = {fp->minra_deg, fp->maxra_deg, fp->mindec_deg, fp->maxdec_deg,
                          fmin(180.0, m->radius_deg)};
    for (size_t i = 0; i < sizeof box / sizeof box[0]; i++, k++)
        p[k] = num_param(nums[k], box[i]);
    static const char *sql =
        "INSERT INTO images (filepath, md5, provenance_id, type, original_path, original_md5,"
        " original_hdu, instrument, telescope, filter, section_id, target, project, mjd, end_mjd,"
        " exp_time, airmass, gain, saturation, read_noise, width, height, ra, dec,"
        " ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10,"
        " ra_corner_11, dec_corner_11, ra_corner_01, dec_corner_01,"
        " minra, maxra, mindec, maxdec, radius_deg)"
        " VALUES ($1, $2, $3, 'science', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
        " $17, $18, $19, $20::double precision::integer, $21::double precision::integer, $22, $23,"
        " $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36)"
        " RETURNING id";
    PGresult *r = NULL;
    int st = sk_db_exec_row(db, "registering the image", sql, k, p, &r);
    if (st)
        return st;
    *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return SK_OK;
}

int sk_image_find_original(sk_db *db, const char *prov_id, const char *original_md5,
                           const char *original_hdu, long long *id, char **filepath, char *md5)
{
    *id = 0;
    *filepath = NULL;
    md5[0] = '\0';
    const char *p[3] = {prov_id, original_md5, original_hdu};
    PGresult *r = NULL;
    int st = sk_db_exec(db, "looking for the image",
                        "SELECT id, filepath, md5 FROM images WHERE provenance_id = $1 AND original_md5 = $2"
                        " AND original_hdu = $3",
                        3, p, &r);
    if (st)
        return st;
    if (PQntuples(r) == 1) {
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (!(*filepath = dup_or_null(PQgetvalue(r, 0, 1))))
            st = SK_EIO;
        snprintf(md5, 33, "%s", PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    return st;
}

int sk_image_find_filepath(sk_db *db, const char *filepath, long long *id, char **original_path)
{
    *id = 0;
    *original_path = NULL;
    const char *p[1] = {filepath};
    PGresult *r = NULL;
    int st = sk_db_exec(db, "looking for the image path",
                        "SELECT id, original_path FROM images WHERE filepath = $1", 1, p, &r);
    if (st)
        return st;
    if (PQntuples(r) > 0) {
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        const char *orig = sk_db_value(r, 0, 1);
        if (orig && !(*original_path = dup_or_null(orig)))
            st = SK_EIO;
    }
    PQclear(r);
    return st;
}

int sk_image_find_coadd(sk_db *db, const char *prov_id, const char *set_hash, long long *id)
{
    *id = 0;
    const char *p[2] = {prov_id, set_hash};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "looking for the coadd",
                        "SELECT id FROM images WHERE provenance_id = $1 AND input_set_hash = $2 "
                        "AND type = 'coadd' AND NOT pending",
                        2, p, &res);
    if (!st && PQntuples(res) == 1)
        *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return st;
}

int sk_image_has_products(sk_db *db, long long id, const char *prov_id, int *yes)
{
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", id);
    const char *p[2] = {cid, prov_id};
    PGresult *res = NULL;
    int st = sk_db_exec(db, "looking for the coadd's products",
                        "SELECT EXISTS (SELECT 1 FROM source_lists s "
                        "JOIN psfs p ON p.image_id = s.image_id AND p.provenance_id = s.provenance_id "
                        "JOIN backgrounds b ON b.image_id = s.image_id AND b.provenance_id = s.provenance_id "
                        "JOIN world_coordinates w ON w.image_id = s.image_id "
                        "AND w.provenance_id = s.provenance_id "
                        "JOIN zero_points z ON z.image_id = s.image_id AND z.provenance_id = s.provenance_id "
                        "WHERE s.image_id = $1::bigint AND s.provenance_id = $2)",
                        2, p, &res);
    *yes = !st && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return st;
}
