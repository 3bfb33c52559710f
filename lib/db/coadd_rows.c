/* coadd_rows.c: the database rows of a coadd: finding one by provenance and input set, its images row with its components, its PSF, and the image ids a selection by place and time gives. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/query.h"
#include "db_priv.h"
#include "pipeline_rows_priv.h"

int sk_db_coadd_find(sk_db *db, const char *prov_id, const char *set_hash, long long *id,
                     char *relpath, size_t relpath_size, int *found, int *pending, char *md5)
{
    PGresult *ex = NULL;
    const char *pe[2] = {prov_id, set_hash};
    *found = 0;
    *pending = 0;
    int rc = sk_db_exec(db, "looking for the coadd",
                        "SELECT id, filepath, pending, md5 FROM images WHERE provenance_id = $1 AND "
                        "input_set_hash = $2 AND type = 'coadd'",
                        2, pe, &ex);
    if (rc)
        return rc;
    if (PQntuples(ex) == 1) {
        *id = strtoll(PQgetvalue(ex, 0, 0), NULL, 10);
        snprintf(relpath, relpath_size, "%s", PQgetvalue(ex, 0, 1));
        *pending = PQgetvalue(ex, 0, 2)[0] == 't';
        snprintf(md5, 33, "%s", PQgetvalue(ex, 0, 3));
        *found = 1;
    }
    PQclear(ex);
    return SK_OK;
}

int sk_db_coadd_complete(sk_db *db, long long id)
{
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", id);
    const char *p[1] = {cid};
    return sk_db_exec(db, "completing the coadd",
                      "UPDATE images SET pending = false WHERE id = $1::bigint", 1, p, NULL);
}

int sk_db_coadd_discard(sk_db *db, long long id)
{
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", id);
    const char *p[1] = {cid};
    return sk_db_exec(db, "discarding the pending coadd",
                      "DELETE FROM images WHERE id = $1::bigint AND pending", 1, p, NULL);
}

static int insert_components(sk_db *db, long long coadd_id, const sk_coadd_component *comp, int n)
{
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", coadd_id);
    int rc = SK_OK;
    for (int k = 0; k < n && !rc; k++) {
        char ids[6][32];
        snprintf(ids[0], 32, "%lld", comp[k].image_id);
        snprintf(ids[1], 32, "%lld", comp[k].source_list_id);
        snprintf(ids[2], 32, "%lld", comp[k].psf_id);
        snprintf(ids[3], 32, "%lld", comp[k].background_id);
        snprintf(ids[4], 32, "%lld", comp[k].wcs_id);
        snprintf(ids[5], 32, "%lld", comp[k].zero_point_id);
        const char *pc[7] = {cid, ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]};
        rc = sk_db_exec(db, "linking the coadd to its inputs",
                        "INSERT INTO coadd_components (coadd_image_id, image_id, source_list_id, "
                        "psf_id, background_id, world_coordinates_id, zero_point_id) VALUES "
                        "($1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint, "
                        "$7::bigint)",
                        7, pc, NULL);
    }
    return rc;
}

int sk_db_coadd_register(sk_db *db, const sk_coadd_record *r, const sk_coadd_component *comp,
                         int ncomp, long long *id)
{
    char vals[14][40], nums[8][40];
    for (int k = 0; k < 14; k++)
        snprintf(vals[k], 40, "%.17g", r->footprint_deg[k]);
    snprintf(nums[0], 40, "%.17g", r->mjd);
    snprintf(nums[1], 40, "%.17g", r->end_mjd);
    snprintf(nums[2], 40, "%.17g", r->exptime_s);
    snprintf(nums[3], 40, "%.17g", r->gain);
    snprintf(nums[4], 40, "%ld", r->width_px);
    snprintf(nums[5], 40, "%ld", r->height_px);
    snprintf(nums[6], 40, "%.17g", r->radius_deg);
    snprintf(nums[7], 40, "%.17g", r->zero_point);
    const char *p[34] = {r->relpath, r->md5, r->prov_id, r->set_hash, r->instrument, r->telescope,
                         r->filter, r->section, r->target, r->project, nums[0], nums[1], nums[2],
                         r->gain > 0 ? nums[3] : NULL, nums[4], nums[5]};
    for (int k = 0; k < 14; k++)
        p[16 + k] = vals[k];
    p[30] = nums[6];
    p[31] = isfinite(r->zero_point) ? nums[7] : NULL;
    char idt[32];
    snprintf(idt, sizeof idt, "%lld", r->id);
    p[32] = r->pending ? "true" : "false";
    p[33] = r->id > 0 ? idt : NULL;
    PGresult *res = NULL;
    int rc = r->id > 0 ? sk_db_coadd_discard(db, r->id) : SK_OK;
    rc = rc ? rc : sk_db_exec_row(
        db, "registering the coadd",
        "INSERT INTO images (filepath, md5, provenance_id, type, input_set_hash, instrument, "
        "telescope, filter, section_id, target, project, mjd, end_mjd, exp_time, gain, width, "
        "height, ra, dec, ra_corner_00, dec_corner_00, ra_corner_10, dec_corner_10, ra_corner_11, "
        "dec_corner_11, ra_corner_01, dec_corner_01, minra, maxra, mindec, maxdec, radius_deg, "
        "zero_point_estimate, pending, id) VALUES ($1, $2, $3, 'coadd', $4, $5, $6, $7, $8, $9, "
        "$10, $11, $12, $13, $14, $15::integer, $16::integer, $17, $18, $19, $20, $21, $22, $23, "
        "$24, $25, $26, $27, $28, $29, $30, $31, $32, $33::boolean, "
        "coalesce($34::bigint, nextval(pg_get_serial_sequence('images', 'id')))) RETURNING id",
        34, p, &res);
    if (rc)
        return rc;
    *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return insert_components(db, *id, comp, ncomp);
}

int sk_db_coadd_register_psf(sk_db *db, long long coadd_id, const char *prov_id, const char *relpath,
                             const char *md5, double fwhm_arcsec)
{
    char cid[32], fw[40];
    snprintf(cid, sizeof cid, "%lld", coadd_id);
    snprintf(fw, sizeof fw, "%.9g", fwhm_arcsec);
    const char *pp[5] = {cid, prov_id, relpath, md5, isfinite(fwhm_arcsec) ? fw : NULL};
    return sk_db_exec(db, "registering the coadd PSF",
                      "INSERT INTO psfs (image_id, provenance_id, filepath, md5, fwhm_arcsec) "
                      "VALUES ($1::bigint, $2, $3, $4, $5) ON CONFLICT (image_id, provenance_id) DO "
                      "UPDATE SET filepath = EXCLUDED.filepath, md5 = EXCLUDED.md5, fwhm_arcsec = "
                      "EXCLUDED.fwhm_arcsec",
                      5, pp, NULL);
}

int sk_db_coadd_refresh(sk_db *db, long long id, const char *md5)
{
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", id);
    const char *p[2] = {cid, md5};
    return sk_db_exec(db, "updating the coadd made anew", "UPDATE images SET md5 = $2 WHERE id = $1::bigint",
                      2, p, NULL);
}

int sk_db_coadd_inputs(sk_db *db, long long id, long long **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    char cid[32];
    snprintf(cid, sizeof cid, "%lld", id);
    const char *p[1] = {cid};
    PGresult *r = NULL;
    int rc = sk_db_exec(db, "reading the inputs of the coadd",
                        "SELECT image_id FROM coadd_components WHERE coadd_image_id = $1::bigint "
                        "ORDER BY image_id", 1, p, &r);
    int rows = rc ? 0 : PQntuples(r);
    if (rows > 0 && !(*ids = malloc((size_t)rows * sizeof **ids)))
        rc = sk_error(SK_EIO, "out of memory");
    for (int i = 0; !rc && i < rows; i++)
        (*ids)[(*n)++] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    return rc;
}

int sk_db_query_image_ids(sk_db *db, sk_query *q, long long **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    PGresult *res = NULL;
    int rc = sk_query_run(q, db, SK_QUERY_ROWS, &res);
    if (rc)
        return rc;
    int col = PQfnumber(res, "id"), rows = PQntuples(res);
    if (rows > 0 && !(*ids = malloc((size_t)rows * sizeof **ids)))
        rc = sk_error(SK_EIO, "out of memory");
    for (int r = 0; !rc && r < rows; r++)
        (*ids)[r] = strtoll(PQgetvalue(res, r, col), NULL, 10);
    if (!rc)
        *n = rows;
    PQclear(res);
    return rc;
}
