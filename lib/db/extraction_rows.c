/* extraction_rows.c: the database rows of an extraction: looking for a registered one, registering its source list, background and the image's quality estimates, and the products a coadd takes from it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "db_priv.h"
#include "pipeline_rows_priv.h"

int sk_db_extraction_find(sk_db *db, long long image_id, const char *prov_id, char *src_relpath,
                          size_t src_size, char *bkg_relpath, size_t bkg_size, char **inputs_json,
                          int *found)
{
    *inputs_json = NULL;
    char id[32];
    snprintf(id, sizeof id, "%lld", image_id);
    const char *key[2] = {id, prov_id};
    PGresult *ex = NULL;
    *found = 0;
    int rc = sk_db_exec(db, "looking for existing products",
                        "SELECT s.filepath, b.filepath, s.inputs::text FROM source_lists s JOIN backgrounds b "
                        "ON b.image_id = s.image_id AND b.provenance_id = s.provenance_id "
                        "WHERE s.image_id = $1 AND s.provenance_id = $2",
                        2, key, &ex);
    if (rc)
        return rc;
    if (PQntuples(ex) > 0) {
        snprintf(src_relpath, src_size, "%s", sk_db_value(ex, 0, 0));
        snprintf(bkg_relpath, bkg_size, "%s", sk_db_value(ex, 0, 1));
        const char *ins = sk_db_value(ex, 0, 2);
        if (ins && !(*inputs_json = strdup(ins)))
            rc = sk_error(SK_EIO, "out of memory");
        *found = 1;
    }
    PQclear(ex);
    return rc;
}

int sk_db_extraction_register(sk_db *db, const sk_extraction_record *r)
{
    char id[32], nsrc[32], bkgv[64], bkgn[64], fwhm_arcsec[64];
    snprintf(id, sizeof id, "%lld", r->image_id);
    snprintf(nsrc, sizeof nsrc, "%ld", r->nsources);
    snprintf(bkgv, sizeof bkgv, "%.9g", r->background_level_adu);
    snprintf(bkgn, sizeof bkgn, "%.9g", r->background_rms_adu);
    snprintf(fwhm_arcsec, sizeof fwhm_arcsec, "%.6g", r->fwhm_arcsec);
    const char *ps[] = {id, r->prov_id, r->source_list_relpath, r->source_list_md5, nsrc, r->inputs_json};
    int rc = sk_db_exec(db, "registering the source list",
                        "INSERT INTO source_lists (image_id, provenance_id, filepath, md5, num_sources, inputs) "
                        "VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (image_id, provenance_id) "
                        "DO UPDATE SET filepath = EXCLUDED.filepath, md5 = EXCLUDED.md5, "
                        "num_sources = EXCLUDED.num_sources, inputs = EXCLUDED.inputs",
                        6, ps, NULL);
    const char *pb[] = {id, r->prov_id, r->background_relpath, r->background_md5, bkgv, bkgn};
    rc = rc ? rc
            : sk_db_exec(db, "registering the background",
                         "INSERT INTO backgrounds (image_id, provenance_id, filepath, md5, value, noise) "
                         "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (image_id, provenance_id) "
                         "DO UPDATE SET filepath = EXCLUDED.filepath, md5 = EXCLUDED.md5, "
                         "value = EXCLUDED.value, noise = EXCLUDED.noise",
                         6, pb, NULL);
    const char *pq[] = {id, bkgv, bkgn, isnan(r->fwhm_arcsec) ? NULL : fwhm_arcsec};
    rc = rc ? rc
            : sk_db_exec(db, "updating the image's quality columns",
                         "UPDATE images SET bkg_mean_estimate = $2, bkg_rms_estimate = $3, "
                         "fwhm_estimate = COALESCE($4::double precision, fwhm_estimate) WHERE id = $1",
                         4, pq, NULL);
    return rc;
}

int sk_db_extraction_files(sk_db *db, long long image_id, const char *prov_id,
                           sk_registered_file out[4], int *n)
{
    *n = 0;
    char id[32];
    snprintf(id, sizeof id, "%lld", image_id);
    const char *key[2] = {id, prov_id};
    PGresult *r = NULL;
    int rc = sk_db_exec(db, "reading the files of the extraction",
                        "SELECT 'source_lists', filepath, md5 FROM source_lists WHERE image_id = $1 "
                        "AND provenance_id = $2 UNION ALL SELECT 'backgrounds', filepath, md5 FROM "
                        "backgrounds WHERE image_id = $1 AND provenance_id = $2 UNION ALL SELECT "
                        "'psfs', filepath, md5 FROM psfs WHERE image_id = $1 AND provenance_id = $2 "
                        "UNION ALL SELECT 'world_coordinates', filepath, md5 FROM world_coordinates "
                        "WHERE image_id = $1 AND provenance_id = $2 AND filepath IS NOT NULL",
                        2, key, &r);
    for (int i = 0; !rc && i < PQntuples(r) && i < 4; i++) {
        snprintf(out[i].table, sizeof out[i].table, "%s", PQgetvalue(r, i, 0));
        snprintf(out[i].relpath, sizeof out[i].relpath, "%s", PQgetvalue(r, i, 1));
        const char *m = sk_db_value(r, i, 2);
        snprintf(out[i].md5, sizeof out[i].md5, "%s", m ? m : "");
        (*n)++;
    }
    PQclear(r);
    return rc;
}

static long long id_value(const PGresult *row, int col)
{
    const char *v = sk_db_value(row, 0, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

int sk_db_extraction_products(sk_db *db, long long image_id, const char *prov_id,
                              sk_extraction_products_row *out)
{
    memset(out, 0, sizeof *out);
    out->zero_point = NAN;
    char id[32];
    snprintf(id, sizeof id, "%lld", image_id);
    const char *p[2] = {id, prov_id};
    PGresult *row = NULL;
    int rc = sk_db_exec_row(
        db, "looking for the extraction products",
        "SELECT s.id, p.id, p.filepath, b.id, b.filepath, w.id, w.header, z.id, z.zp "
        "FROM images i "
        "LEFT JOIN source_lists s ON s.image_id = i.id AND s.provenance_id = $2 "
        "LEFT JOIN psfs p ON p.image_id = i.id AND p.provenance_id = $2 "
        "LEFT JOIN backgrounds b ON b.image_id = i.id AND b.provenance_id = $2 "
        "LEFT JOIN world_coordinates w ON w.image_id = i.id AND w.provenance_id = $2 "
        "LEFT JOIN zero_points z ON z.image_id = i.id AND z.provenance_id = $2 "
        "WHERE i.id = $1::bigint",
        2, p, &row);
    if (rc)
        return rc;
    out->source_list_id = id_value(row, 0);
    out->psf_id = id_value(row, 1);
    out->background_id = id_value(row, 3);
    out->wcs_id = id_value(row, 5);
    out->zero_point_id = id_value(row, 7);
    const char *psf = sk_db_value(row, 0, 2), *bkg = sk_db_value(row, 0, 4);
    const char *header = sk_db_value(row, 0, 6);
    snprintf(out->psf_relpath, sizeof out->psf_relpath, "%s", psf ? psf : "");
    snprintf(out->background_relpath, sizeof out->background_relpath, "%s", bkg ? bkg : "");
    out->zero_point = sk_db_double(row, 0, 8);
    if (header && !(out->wcs_header = strdup(header)))
        rc = sk_error(SK_EIO, "out of memory");
    PQclear(row);
    return rc;
}
