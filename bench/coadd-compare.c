/* coadd-compare.c: star fluxes on two coadds of the same grid (skystack's
 * and SWarp's): aperture sums at the true positions of isolated,
 * unsaturated imsim stars without a bright neighbour, each less its local
 * background (annulus median), and the median ratio between the coadds.
 * Built and run by bench/coadd.
 * Usage: coadd-compare SKYSTACK.fits SWARP.fits TRUTH.fits RADIUS_PX */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "skystack/skystack.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sum within radius r of (x0, y0), less the median of the annulus
 * [1.5 r, 2.5 r) times the aperture's pixel count (each coadd's own
 * residual background). */
static double aperture(const float *v, long w, long h, double x0, double y0, double r, int *ok)
{
    double s = 0, ann[4096];
    long npix = 0, nann = 0;
    *ok = 1;
    double ro = 2.5 * r;
    for (long y = (long)floor(y0 - ro); y <= (long)ceil(y0 + ro); y++)
        for (long x = (long)floor(x0 - ro); x <= (long)ceil(x0 + ro); x++) {
            double d2 = (x - x0) * (x - x0) + (y - y0) * (y - y0);
            if (d2 >= ro * ro)
                continue;
            if (x < 0 || y < 0 || x >= w || y >= h || !isfinite(v[y * w + x]) || v[y * w + x] == 0.0f) {
                *ok = 0;
                return 0;
            }
            if (d2 <= r * r) {
                s += v[y * w + x];
                npix++;
            } else if (d2 >= 2.25 * r * r && nann < 4096) {
                ann[nann++] = v[y * w + x];
            }
        }
    qsort(ann, (size_t)nann, sizeof *ann, cmp);
    return s - (nann ? ann[nann / 2] : 0.0) * (double)npix;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: coadd-compare SKYSTACK.fits SWARP.fits TRUTH.fits RADIUS_PX\n");
        return 1;
    }
    double r = atof(argv[4]);
    float *a, *b;
    long wa, ha, wb, hb;
    sk_header *hda, *hdb;
    sk_wcs *wcs;
    sk_table *t;
    if (sk_fits_read_plane(argv[1], "SCI", &a, &wa, &ha, &hda) || sk_fits_read_plane(argv[2], "0", &b, &wb, &hb, &hdb) ||
        sk_wcs_from_header(hda, &wcs) || sk_fits_read_table(argv[3], "SOURCES", &t)) {
        fprintf(stderr, "coadd-compare: %s\n", sk_errmsg());
        return 1;
    }
    if (wa != wb || ha != hb) {
        fprintf(stderr, "coadd-compare: the coadds differ in size (%ldx%ld, %ldx%ld)\n", wa, ha, wb, hb);
        return 1;
    }
    sk_column *ra = sk_table_column(t, "ra"), *dec = sk_table_column(t, "dec"),
              *type = sk_table_column(t, "type"), *sat = sk_table_column(t, "saturated"),
              *flux = sk_table_column(t, "flux");
    long n = t->nrows, m = 0;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *ratio = malloc(n * sizeof *ratio);
    for (long i = 0; i < n; i++) {
        double r0 = sk_column_get(ra, i, 0), d0 = sk_column_get(dec, i, 0);
        sk_wcs_sky2pix(wcs, 1, &r0, &d0, &x[i], &y[i]);
    }
    sk_error_clear();
    for (long i = 0; i < n; i++) {
        if (sk_column_get(type, i, 0) != 0 || sk_column_get(sat, i, 0) || sk_column_get(flux, i, 0) < 5e4)
            continue;
        /* both coadds hold the same neighbours; only bright ones (which may
         * saturate in some input) are avoided */
        int alone = 1;
        for (long j = 0; j < n && alone; j++)
            alone = j == i || hypot(x[j] - x[i], y[j] - y[i]) > 2.5 * r ||
                    sk_column_get(flux, j, 0) < 0.1 * sk_column_get(flux, i, 0);
        int oka, okb;
        double fa = aperture(a, wa, ha, x[i], y[i], r, &oka), fb = aperture(b, wb, hb, x[i], y[i], r, &okb);
        if (alone && oka && okb && fb > 0)
            ratio[m++] = fa / fb;
    }
    if (m == 0) {
        fprintf(stderr, "coadd-compare: no isolated star on both coadds\n");
        return 1;
    }
    qsort(ratio, m, sizeof *ratio, cmp);
    double med = ratio[m / 2], q1 = ratio[m / 4], q3 = ratio[3 * m / 4];
    printf("%ld stars, flux skystack/SWarp: median %.4f, interquartile %.4f .. %.4f\n", m, med, q1, q3);
    free(x);
    free(y);
    free(ratio);
    free(a);
    free(b);
    sk_header_free(hda);
    sk_header_free(hdb);
    sk_wcs_free(wcs);
    sk_table_free(t);
    return 0;
}
