/* coadd_select.c: the inputs of a coadd by place and time: the science images of a filter containing a point, or of a target (and section), in an MJD range, that have extraction products. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "skystack/coadd.h"
#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/log.h"
#include "skystack/query.h"
#include "db/pipeline_rows_priv.h"
#include "db/rows_priv.h"

static double now_mjd(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return 40587.0 + ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / 86400.0;
}

/* The MJD range: the given ends, the missing one coaddition.date_range
 * days away, the upper end now when neither is given. */
static int mjd_range(const sk_config *cfg, const sk_coadd_place *pl, double *min_mjd, double *max_mjd)
{
    double range = sk_config_double(cfg, "coaddition.date_range", 7.0);
    if (!(range > 0))
        return sk_error(SK_EINPUT, "coaddition.date_range: %g must be > 0 days", range);
    *max_mjd = pl->has_max_mjd ? pl->max_mjd : pl->has_min_mjd ? pl->min_mjd + range : now_mjd();
    *min_mjd = pl->has_min_mjd ? pl->min_mjd : *max_mjd - range;
    if (*min_mjd > *max_mjd)
        return sk_error(SK_EINPUT, "--min-mjd %.6f is after --max-mjd %.6f", *min_mjd, *max_mjd);
    return SK_OK;
}

static int run_query(sk_db *db, const sk_coadd_place *pl, double min_mjd, double max_mjd,
                     long long **ids, int *n)
{
    sk_query *q = sk_query_new();
    if (!q)
        return sk_error(SK_EIO, "out of memory");
    int rc = SK_OK;
    if (pl->has_point) {
        rc = sk_query_contains(q, pl->ra_deg, pl->dec_deg);
    } else {
        rc = sk_query_text(q, SK_Q_TARGET, pl->target);
        if (!rc && pl->section)
            rc = sk_query_text(q, SK_Q_SECTION, pl->section);
    }
    rc = rc ? rc : sk_query_text(q, SK_Q_FILTER, pl->filter);
    rc = rc ? rc : sk_query_text(q, SK_Q_TYPE, "science");
    rc = rc ? rc : sk_query_min(q, SK_Q_MJD, min_mjd);
    rc = rc ? rc : sk_query_max(q, SK_Q_MJD, max_mjd);
    rc = rc ? rc : sk_query_with_products(q, NULL);
    rc = rc ? rc : sk_db_query_image_ids(db, q, ids, n);
    sk_query_free(q);
    return rc;
}

int sk_coadd_select(sk_db *db, const sk_config *cfg, const sk_coadd_place *pl, long long **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    if (!pl->filter)
        return sk_error(SK_EINPUT, "--filter: a coadd by place needs the filter");
    double min_mjd = 0, max_mjd = 0;
    int rc = mjd_range(cfg, pl, &min_mjd, &max_mjd);
    rc = rc ? rc : run_query(db, pl, min_mjd, max_mjd, ids, n);
    if (rc)
        return rc;
    if (*n == 0) {
        char where[128];
        if (pl->has_point)
            snprintf(where, sizeof where, "containing (%.6f, %.6f)", pl->ra_deg, pl->dec_deg);
        else
            snprintf(where, sizeof where, "of target %s%s%s", pl->target, pl->section ? " section " : "",
                     pl->section ? pl->section : "");
        return sk_error(SK_ENOTFOUND, "no %s image %s with extraction products between MJD %.5f and %.5f",
                        pl->filter, where, min_mjd, max_mjd);
    }
    sk_info("%d image%s selected (%s, MJD %.5f .. %.5f)", *n, *n == 1 ? "" : "s", pl->filter, min_mjd,
            max_mjd);
    return SK_OK;
}
