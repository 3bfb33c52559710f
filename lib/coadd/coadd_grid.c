/* coadd_grid.c: output grids of a coadd: one input's own grid, a TAN grid at a given centre, size and scale, or a TAN grid covering the union of the inputs. */
#include <math.h>
#include <stdlib.h>
#include "skystack/coadd.h"
#include "skystack/error.h"

static int grid_from_header(sk_header *h, long width, long height, sk_grid **out)
{
    sk_grid *g = calloc(1, sizeof *g);
    if (!g) {
        sk_header_free(h);
        return sk_error(SK_EIO, "grid: out of memory");
    }
    g->width = width;
    g->height = height;
    g->header = h;
    int rc = sk_wcs_from_header(h, &g->wcs);
    if (rc) {
        sk_grid_free(g);
        return sk_error_context("grid");
    }
    *out = g;
    return SK_OK;
}

int sk_grid_from_wcs(const sk_wcs *wcs, long width, long height, sk_grid **out)
{
    *out = NULL;
    if (!wcs)
        return sk_error(SK_EINPUT, "grid: no WCS");
    if (width <= 0 || height <= 0)
        return sk_error(SK_EINPUT, "grid: bad size %ld x %ld", width, height);
    sk_header *h = sk_header_new();
    if (!h)
        return sk_error(SK_EIO, "grid: out of memory");
    int rc = sk_wcs_to_header(wcs, h);
    if (rc) {
        sk_header_free(h);
        return rc;
    }
    return grid_from_header(h, width, height, out);
}

/* TAN cards with the tangent point at 1-based pixel (crpix1, crpix2). */
static int tan_header(double ra_deg, double dec_deg, double crpix1, double crpix2,
                      double scale_arcsec, double rotation_deg, sk_header **out)
{
    sk_header *h = sk_header_new();
    if (!h)
        return sk_error(SK_EIO, "grid: out of memory");
    double s = scale_arcsec / 3600.0, r = rotation_deg * M_PI / 180.0;
    double cr = cos(r), sr = sin(r);
    if (fabs(cr) < 1e-15)
        cr = 0.0;
    if (fabs(sr) < 1e-15)
        sr = 0.0;
    int rc = sk_header_set_long(h, "WCSAXES", 2, "number of WCS axes");
    rc = rc ? rc : sk_header_set_str(h, "CTYPE1", "RA---TAN", "gnomonic projection");
    rc = rc ? rc : sk_header_set_str(h, "CTYPE2", "DEC--TAN", "gnomonic projection");
    rc = rc ? rc : sk_header_set_str(h, "CUNIT1", "deg", NULL);
    rc = rc ? rc : sk_header_set_str(h, "CUNIT2", "deg", NULL);
    rc = rc ? rc : sk_header_set_double(h, "CRVAL1", ra_deg, "[deg] RA of the tangent point");
    rc = rc ? rc : sk_header_set_double(h, "CRVAL2", dec_deg, "[deg] Dec of the tangent point");
    rc = rc ? rc : sk_header_set_double(h, "CRPIX1", crpix1, "tangent point pixel (1-based)");
    rc = rc ? rc : sk_header_set_double(h, "CRPIX2", crpix2, "tangent point pixel (1-based)");
    rc = rc ? rc : sk_header_set_double(h, "CD1_1", -s * cr, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CD1_2", -s * sr, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CD2_1", -s * sr, NULL);
    rc = rc ? rc : sk_header_set_double(h, "CD2_2", s * cr, NULL);
    rc = rc ? rc : sk_header_set_str(h, "RADESYS", "ICRS", NULL);
    if (rc) {
        sk_header_free(h);
        return rc;
    }
    *out = h;
    return SK_OK;
}

int sk_grid_tan(double ra_deg, double dec_deg, long width, long height, double pixel_scale_arcsec,
                double rotation_deg, sk_grid **out)
{
    *out = NULL;
    if (!isfinite(ra_deg) || !isfinite(dec_deg) || fabs(dec_deg) > 90.0)
        return sk_error(SK_EINPUT, "grid: bad centre (%g, %g)", ra_deg, dec_deg);
    if (width <= 0 || height <= 0)
        return sk_error(SK_EINPUT, "grid: bad size %ld x %ld", width, height);
    if (!(pixel_scale_arcsec > 0.0) || !isfinite(pixel_scale_arcsec))
        return sk_error(SK_EINPUT, "grid: bad pixel scale %g arcsec", pixel_scale_arcsec);
    if (!isfinite(rotation_deg))
        return sk_error(SK_EINPUT, "grid: bad rotation");
    ra_deg = fmod(ra_deg, 360.0);
    if (ra_deg < 0)
        ra_deg += 360.0;
    sk_header *h;
    int rc = tan_header(ra_deg, dec_deg, (width + 1) / 2.0, (height + 1) / 2.0,
                        pixel_scale_arcsec, rotation_deg, &h);
    return rc ? rc : grid_from_header(h, width, height, out);
}

/* Points along the outer pixel edges of a width x height image. */
static void outline(long width, long height, long per_edge, double *x, double *y)
{
    for (long k = 0; k < 4 * per_edge; k++) {
        long e = k / per_edge;
        double t = (double)(k % per_edge) / (double)per_edge;
        double lx = -0.5, hx = width - 0.5, ly = -0.5, hy = height - 0.5;
        switch (e) {
        case 0: x[k] = lx + t * (hx - lx); y[k] = ly; break;
        case 1: x[k] = hx; y[k] = ly + t * (hy - ly); break;
        case 2: x[k] = hx - t * (hx - lx); y[k] = hy; break;
        default: x[k] = lx; y[k] = hy - t * (hy - ly); break;
        }
    }
}

int sk_grid_union(int n, const sk_wcs *const *wcs, const long *width, const long *height,
                  double pixel_scale_arcsec, sk_grid **out)
{
    *out = NULL;
    if (n <= 0)
        return sk_error(SK_EINPUT, "grid: no images to cover");
    /* centre: the normalised mean of the corner unit vectors */
    double v[3] = {0, 0, 0}, finest = INFINITY;
    for (int i = 0; i < n; i++) {
        sk_footprint fp;
        if (!wcs[i] || sk_wcs_footprint(wcs[i], width[i], height[i], &fp) != SK_OK)
            return sk_error(SK_EINPUT, "grid: image %d has no usable footprint", i + 1);
        for (int k = 0; k < 4; k++) {
            double a = fp.corner_ra_deg[k] * M_PI / 180.0, d = fp.corner_dec_deg[k] * M_PI / 180.0;
            v[0] += cos(d) * cos(a);
            v[1] += cos(d) * sin(a);
            v[2] += sin(d);
        }
        double s = sk_wcs_pixel_scale_arcsec(wcs[i], (width[i] - 1) / 2.0, (height[i] - 1) / 2.0);
        if (isfinite(s) && s < finest)
            finest = s;
    }
    double norm = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (!(norm > 1e-9))
        return sk_error(SK_EINPUT, "grid: the images surround the sphere; give a grid explicitly");
    double ra0 = atan2(v[1], v[0]) * 180.0 / M_PI, dec0 = asin(v[2] / norm) * 180.0 / M_PI;
    if (ra0 < 0)
        ra0 += 360.0;
    double scale = pixel_scale_arcsec > 0.0 ? pixel_scale_arcsec : finest;
    if (!isfinite(scale) || !(scale > 0.0))
        return sk_error(SK_EINPUT, "grid: no pixel scale");
    /* provisional grid with the tangent point at 0-based (0, 0) */
    sk_grid *prov;
    sk_header *h;
    int rc = tan_header(ra0, dec0, 1.0, 1.0, scale, 0.0, &h);
    if (!rc)
        rc = grid_from_header(h, 1, 1, &prov);
    if (rc)
        return rc;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < n && !rc; i++) {
        long longest = width[i] > height[i] ? width[i] : height[i];
        long per_edge = longest / 16 > 64 ? longest / 16 : 64;
        long m = 4 * per_edge;
        double *buf = malloc(6 * (size_t)m * sizeof *buf);
        if (!buf) {
            rc = sk_error(SK_EIO, "grid: out of memory");
            break;
        }
        double *x = buf, *y = x + m, *ra = y + m, *dec = ra + m, *ox = dec + m, *oy = ox + m;
        outline(width[i], height[i], per_edge, x, y);
        rc = sk_wcs_pix2sky(wcs[i], m, x, y, ra, dec);
        if (!rc)
            rc = sk_wcs_sky2pix(prov->wcs, m, ra, dec, ox, oy);
        if (rc)
            rc = sk_error(SK_EINPUT, "grid: image %d does not project onto one tangent plane "
                                     "with the others; give a grid explicitly", i + 1);
        for (long k = 0; k < m && !rc; k++) {
            xmin = fmin(xmin, ox[k]);
            xmax = fmax(xmax, ox[k]);
            ymin = fmin(ymin, oy[k]);
            ymax = fmax(ymax, oy[k]);
        }
        free(buf);
    }
    sk_grid_free(prov);
    if (rc)
        return rc;
    /* output pixels that hold a part of the outline's box */
    double first_x = floor(xmin + 0.5), last_x = floor(xmax + 0.5);
    double first_y = floor(ymin + 0.5), last_y = floor(ymax + 0.5);
    double w = last_x - first_x + 1.0, hgt = last_y - first_y + 1.0;
    if (!(w >= 1.0 && hgt >= 1.0) || w * hgt > 9e15)
        return sk_error(SK_EINPUT, "grid: the union of the images gives a %.0f x %.0f grid", w, hgt);
    rc = tan_header(ra0, dec0, 1.0 - first_x, 1.0 - first_y, scale, 0.0, &h);
    return rc ? rc : grid_from_header(h, (long)w, (long)hgt, out);
}

void sk_grid_free(sk_grid *g)
{
    if (!g)
        return;
    sk_wcs_free(g->wcs);
    sk_header_free(g->header);
    free(g);
}
