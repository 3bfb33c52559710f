/* report_rows.c: the statements of the report page: the products of a refset or the coadds made since a date, their inputs and their provenance chains. */
#include <math.h>
#include <stdio.h>
#include "skystack/error.h"
#include "db_priv.h"
#include "report_rows_priv.h"

/* The products as a CTE `prod` (ref_id, place, filter, ref_prov, is_bad,
 * bad_reason, image_id, psf_id, zero_point_id) over parameter $1: the
 * refset name, or the MJD since when coadds count. */
#define PROD_REFSET                                                                                \
    "prod AS (SELECT r.id AS ref_id, r.place, r.filter, r.provenance_id AS ref_prov, r.is_bad, "   \
    "r.bad_reason, r.image_id, r.psf_id, r.zero_point_id FROM refs r "                             \
    "JOIN refset_provenances rp ON rp.provenance_id = r.provenance_id "                            \
    "JOIN refsets s ON s.id = rp.refset_id WHERE s.name = $1)"
#define PROD_SINCE                                                                                 \
    "prod AS (SELECT NULL::bigint AS ref_id, NULL::text AS place, i.filter, NULL::text AS ref_prov, " \
    "false AS is_bad, NULL::text AS bad_reason, i.id AS image_id, "                                \
    "(SELECT p.id FROM psfs p WHERE p.image_id = i.id ORDER BY p.created_at DESC, p.id DESC LIMIT 1) " \
    "AS psf_id, (SELECT z.id FROM zero_points z WHERE z.image_id = i.id "                          \
    "ORDER BY z.created_at DESC, z.id DESC LIMIT 1) AS zero_point_id FROM images i "               \
    "WHERE i.type = 'coadd' AND i.created_at >= to_timestamp(($1::double precision - 40587) * 86400))"

#define UTC_TEXT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static const char products_tail[] =
    " SELECT prod.ref_id, prod.place, prod.filter, prod.ref_prov, prod.is_bad, prod.bad_reason, "
    "i.id AS image_id, i.filepath, i.provenance_id AS coadd_prov, i.target, i.section_id, i.instrument, "
    "i.ra, i.dec, i.ra_corner_00 AS ra_00, i.dec_corner_00 AS dec_00, i.ra_corner_10 AS ra_10, "
    "i.dec_corner_10 AS dec_10, i.ra_corner_11 AS ra_11, i.dec_corner_11 AS dec_11, "
    "i.ra_corner_01 AS ra_01, i.dec_corner_01 AS dec_01, i.mjd, i.end_mjd, "
    "(SELECT count(*) FROM coadd_components c WHERE c.coadd_image_id = i.id) AS n_inputs, "
    "p.fwhm_arcsec, z.zp, z.lim_mag, z.num_stars, z.num_candidates, z.num_rejected_chi2, "
    "z.num_rejected_aperture, z.num_rejected_neighbour, " UTC_TEXT("i.created_at") " AS created "
    "FROM prod JOIN images i ON i.id = prod.image_id LEFT JOIN psfs p ON p.id = prod.psf_id "
    "LEFT JOIN zero_points z ON z.id = prod.zero_point_id "
    "ORDER BY coalesce(prod.place, i.target || '/' || i.section_id, ''), prod.filter, i.id, prod.ref_id";

static const char inputs_tail[] =
    " SELECT DISTINCT ON (i.mjd, i.id) i.id AS image_id, i.mjd, i.filter, p.fwhm_arcsec, z.lim_mag, z.zp "
    "FROM prod JOIN coadd_components c ON c.coadd_image_id = prod.image_id "
    "JOIN images i ON i.id = c.image_id LEFT JOIN psfs p ON p.id = c.psf_id "
    "LEFT JOIN zero_points z ON z.id = c.zero_point_id ORDER BY i.mjd, i.id";

static const char chains_tail[] =
    ", roots AS (SELECT DISTINCT coalesce(prod.ref_prov, i.provenance_id) AS root FROM prod "
    "JOIN images i ON i.id = prod.image_id), "
    "chain (root, id) AS (SELECT root, root FROM roots UNION "
    "SELECT chain.root, u.upstream_id FROM chain JOIN provenance_upstreams u ON u.downstream_id = chain.id) "
    "SELECT chain.root, chain.id, pv.process, pv.code_version FROM chain JOIN provenances pv ON pv.id = chain.id "
    "ORDER BY chain.root, CASE pv.process WHEN 'referencing' THEN 0 WHEN 'coaddition' THEN 1 "
    "WHEN 'extraction' THEN 2 ELSE 3 END, chain.id";

/* Run "WITH [RECURSIVE] prod AS (...)" + tail with the selection's parameter. */
static int run(sk_db *db, const sk_report_sel *sel, const char *what, int recursive, const char *tail,
               sk_db_rows **out)
{
    *out = NULL;
    char param[64];
    if (sel->refset)
        snprintf(param, sizeof param, "%s", "");
    else if (!isfinite(sel->since_mjd))
        return sk_error(SK_EINPUT, "report: neither a refset nor a date given");
    else
        snprintf(param, sizeof param, "%.8f", sel->since_mjd);
    const char *params[1] = {sel->refset ? sel->refset : param};
    char sql[4096];
    if ((size_t)snprintf(sql, sizeof sql, "WITH %s%s%s", recursive ? "RECURSIVE " : "",
                         sel->refset ? PROD_REFSET : PROD_SINCE, tail) >= sizeof sql)
        return sk_error(SK_EIO, "report: statement too long");
    PGresult *res = NULL;
    int rc = sk_db_exec(db, what, sql, 1, params, &res);
    if (!rc)
        rc = sk_db_rows_from_result(res, out);
    PQclear(res);
    return rc;
}

int sk_db_report_refset_exists(sk_db *db, const char *name, int *exists)
{
    const char *params[1] = {name};
    PGresult *res = NULL;
    *exists = 0;
    int rc = sk_db_exec(db, "looking up the refset", "SELECT 1 FROM refsets WHERE name = $1", 1, params, &res);
    if (!rc)
        *exists = PQntuples(res) > 0;
    PQclear(res);
    return rc;
}

int sk_db_report_products(sk_db *db, const sk_report_sel *sel, sk_db_rows **out)
{
    return run(db, sel, "reading the products of the report", 0, products_tail, out);
}

int sk_db_report_inputs(sk_db *db, const sk_report_sel *sel, sk_db_rows **out)
{
    return run(db, sel, "reading the inputs of the report's products", 0, inputs_tail, out);
}

int sk_db_report_chains(sk_db *db, const sk_report_sel *sel, sk_db_rows **out)
{
    return run(db, sel, "reading the provenance chains of the report's products", 1, chains_tail, out);
}
