/* catalog_epoch.c: reference catalogue positions carried from their epoch to an image's with proper motion and parallax (ERFA), and the positional errors of rows without a proper motion grown with the time between. */
#include <math.h>
#include <erfa.h>

#include "skystack/catalog.h"

double sk_mjd_to_jyear(double mjd)
{
    return 2000.0 + (mjd - 51544.5) / 365.25;
}

void sk_catrows_propagate(sk_catrows *r, double mjd, double default_epoch_yr, const sk_epoch_params *p)
{
    if (!p->propagate || !isfinite(mjd))
        return;
    double t_yr = sk_mjd_to_jyear(mjd);
    /* the Earth's barycentric position (au) at the image's time (TDB ~ UTC
       to a minute, far below what matters here) */
    double pvh[2][3], pvb[2][3];
    eraEpv00(2400000.5, mjd, pvh, pvb);
    const double mas = M_PI / (180.0 * 3600.0 * 1000.0);
    for (long k = 0; k < r->n; k++) {
        double ep = isfinite(r->epoch_yr[k]) ? r->epoch_yr[k] : default_epoch_yr;
        if (!isfinite(ep))
            continue;
        double dt = t_yr - ep;
        double ra = r->ra_deg[k] * M_PI / 180.0, dec = r->dec_deg[k] * M_PI / 180.0;
        int has_pm = isfinite(r->pmra_mas_yr[k]) && isfinite(r->pmdec_mas_yr[k]);
        double px = isfinite(r->parallax_mas[k]) && r->parallax_mas[k] > 0 ? r->parallax_mas[k] : 0.0;
        if (has_pm || px > 0) {
            double cd = cos(dec);
            double pr = has_pm && cd > 1e-12 ? r->pmra_mas_yr[k] * mas / cd : 0.0;
            double pd = has_pm ? r->pmdec_mas_yr[k] * mas : 0.0;
            double pco[3];
            eraPmpx(ra, dec, pr, pd, px * 1e-3, 0.0, dt, pvb[0], pco);
            double a, d;
            eraC2s(pco, &a, &d);
            r->ra_deg[k] = eraAnp(a) * 180.0 / M_PI;
            r->dec_deg[k] = d * 180.0 / M_PI;
        }
        if (!has_pm) {
            double g = p->missing_pm_mas_yr * fabs(dt);
            double ea = isfinite(r->ra_err_mas[k]) ? r->ra_err_mas[k] : 0.0;
            double ed = isfinite(r->dec_err_mas[k]) ? r->dec_err_mas[k] : 0.0;
            r->ra_err_mas[k] = (float)sqrt(ea * ea + g * g);
            r->dec_err_mas[k] = (float)sqrt(ed * ed + g * g);
        }
        r->epoch_yr[k] = t_yr;
    }
}
