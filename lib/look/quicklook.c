/* quicklook.c: the quick-look PNG of an image: binned to a size, stretched, its sources circled, north/east arrows from the WCS and a scale bar; beside a product and recorded in its sidecar. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/parallel.h"
#include "core/path_priv.h"
#include "skystack/error.h"
#include "skystack/fits.h"
#include "skystack/hash.h"
#include "skystack/log.h"
#include "skystack/look.h"
#include "skystack/provenance.h"
#include "skystack/table.h"
#include "skystack/wcs.h"

#define COLOR_NODATA 0x000040u
#define COLOR_SOURCE 0x30ff30u
#define COLOR_ARROW 0xffd020u
#define COLOR_BAR 0xffffffu
/* images smaller than this are enlarged by pixel replication */
#define MIN_SIDE_PX 256

void sk_look_opts_default(sk_look_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stretch = SK_STRETCH_ASINH;
    o->soften_sigma = 3.0;
    o->max_size_px = 1024;
}

/* The geometry of the picture: image pixel (x, y) (0-based, y up) is
 * canvas pixel ((x + 0.5) * zoom / bin - 0.5, height - 1 - ...). */
typedef struct geom {
    long bw, bh;     /* binned size */
    int bin, zoom;   /* binning and enlargement factors */
    sk_canvas *c;
} geom;

static void to_canvas(const geom *g, double x, double y, double *cx, double *cy)
{
    double f = (double)g->zoom / (double)g->bin;
    *cx = (x + 0.5) * f - 0.5;
    *cy = (double)g->c->height - 1.0 - ((y + 0.5) * f - 0.5);
}

/* Add rows [y0, y0 + nrows) of an image of `width` columns (sci, and
 * weight when not NULL: pixels of weight <= 0 are left out) to the sums
 * and counts of their bins. */
static void accumulate(const geom *g, const float *sci, const float *wgt, long width, long y0, long nrows,
                       double *sum, long *cnt)
{
    for (long r = 0; r < nrows; r++) {
        const float *row = sci + (size_t)r * (size_t)width;
        const float *wrow = wgt ? wgt + (size_t)r * (size_t)width : NULL;
        size_t b0 = (size_t)((y0 + r) / g->bin) * (size_t)g->bw;
        for (long x = 0; x < width; x++)
            if (isfinite(row[x]) && (!wrow || wrow[x] > 0)) {
                size_t k = b0 + (size_t)(x / g->bin);
                sum[k] += row[x];
                cnt[k]++;
            }
    }
}

/* Binning an image in memory by rows of bins, each row of bins summed
 * by one thread in the order accumulate() takes. */
typedef struct bin_job {
    const geom *g;
    const sk_image *img;
    double *sum;
    long *cnt;
} bin_job;

static int bin_rows(long b0, long b1, void *user)
{
    const bin_job *J = user;
    long y0 = b0 * J->g->bin, y1 = b1 * J->g->bin;
    if (y1 > J->img->height)
        y1 = J->img->height;
    size_t off = (size_t)y0 * (size_t)J->img->width;
    accumulate(J->g, J->img->sci + off, J->img->weight ? J->img->weight + off : NULL, J->img->width, y0,
               y1 - y0, J->sum, J->cnt);
    return SK_OK;
}

/* The binned image: mean of each bin's usable pixels (NaN: none). */
static float *bin_means(const geom *g, const double *sum, const long *cnt)
{
    size_t n = (size_t)g->bw * (size_t)g->bh;
    float *out = malloc(sizeof *out * n);
    for (size_t k = 0; out && k < n; k++)
        out[k] = cnt[k] ? (float)(sum[k] / (double)cnt[k]) : NAN;
    return out;
}

/* The binning (or enlargement) of a width x height image for `o`. */
static void plan_geometry(long width, long height, const sk_look_opts *o, geom *g)
{
    long big = width > height ? width : height;
    memset(g, 0, sizeof *g);
    g->bin = g->zoom = 1;
    if (o->max_size_px > 0 && big > o->max_size_px)
        g->bin = (int)((big + o->max_size_px - 1) / o->max_size_px);
    else if (big < MIN_SIDE_PX)
        g->zoom = (int)((MIN_SIDE_PX + big - 1) / big);
    g->bw = (width + g->bin - 1) / g->bin;
    g->bh = (height + g->bin - 1) / g->bin;
}

static void paint(const geom *g, const float *binned, const sk_stretch_map *m)
{
    for (long by = 0; by < g->bh; by++)
        for (long bx = 0; bx < g->bw; bx++) {
            float v = binned[(size_t)by * (size_t)g->bw + (size_t)bx];
            uint32_t rgb = COLOR_NODATA;
            if (isfinite(v)) {
                unsigned t = (unsigned)lround(255.0 * sk_stretch_apply(m, v));
                rgb = t << 16 | t << 8 | t;
            }
            long x0 = bx * g->zoom, y0 = g->c->height - (by + 1) * g->zoom;
            if (g->zoom == 1) {
                uint8_t *p = g->c->rgb + 3 * ((size_t)y0 * (size_t)g->c->width + (size_t)x0);
                p[0] = (uint8_t)(rgb >> 16);
                p[1] = (uint8_t)(rgb >> 8);
                p[2] = (uint8_t)rgb;
            } else {
                sk_canvas_fill_rect(g->c, x0, y0, x0 + g->zoom - 1, y0 + g->zoom - 1, rgb);
            }
        }
}

/* Circle the sources of an extract(1) source list; their count. */
static int draw_sources(const geom *g, const char *path, long *count)
{
    sk_table *t = NULL;
    *count = 0;
    int rc = sk_fits_read_table(path, NULL, &t);
    if (rc)
        return rc;
    const sk_column *cx = sk_table_column(t, "X_IMAGE"), *cy = sk_table_column(t, "Y_IMAGE");
    const sk_column *ca = sk_table_column(t, "A_IMAGE");
    if (!cx || !cy) {
        sk_table_free(t);
        return sk_error(SK_EINPUT, "%s: a source list needs the columns X_IMAGE and Y_IMAGE", path);
    }
    double f = (double)g->zoom / (double)g->bin;
    for (long i = 0; i < t->nrows; i++) {
        double x, y, a = ca ? sk_column_get(ca, i, 0) : 2.0;
        /* X_IMAGE, Y_IMAGE are 1-based (FITS) */
        to_canvas(g, sk_column_get(cx, i, 0) - 1.0, sk_column_get(cy, i, 0) - 1.0, &x, &y);
        double r = 3.0 * (isfinite(a) && a > 0 ? a : 2.0) * f;
        sk_canvas_circle(g->c, x, y, r < 4.0 ? 4.0 : r, COLOR_SOURCE);
        (*count)++;
    }
    sk_table_free(t);
    return SK_OK;
}

static int text_scale(const geom *g)
{
    long side = g->c->width < g->c->height ? g->c->width : g->c->height;
    return side >= 1200 ? 3 : side >= 500 ? 2 : 1;
}

/* An arrow of length len from (x0, y0) along the unit vector (ux, uy)
 * with a head and a label past its tip. */
static void arrow(sk_canvas *c, double x0, double y0, double ux, double uy, double len, const char *label,
                  int ts)
{
    double x1 = x0 + len * ux, y1 = y0 + len * uy, h = 0.25 * len;
    sk_canvas_line(c, x0, y0, x1, y1, COLOR_ARROW, ts);
    for (int s = -1; s <= 1; s += 2) {
        double a = s * 0.45, hx = -(ux * cos(a) - uy * sin(a)), hy = -(ux * sin(a) + uy * cos(a));
        sk_canvas_line(c, x1, y1, x1 + h * hx, y1 + h * hy, COLOR_ARROW, ts);
    }
    double lx = x1 + 0.35 * len * ux - 2.5 * ts, ly = y1 + 0.35 * len * uy - 3.5 * ts;
    sk_canvas_text(c, lround(lx), lround(ly), label, ts, COLOR_ARROW);
}

/* North and east at the image centre, as unit vectors on the canvas:
 * 1 when the WCS gives them. */
static int sky_directions(const sk_wcs *wcs, long width, long height, double north[2], double east[2])
{
    double xc = 0.5 * (double)(width - 1), yc = 0.5 * (double)(height - 1), ra, dec;
    if (sk_wcs_pix2sky(wcs, 1, &xc, &yc, &ra, &dec) != SK_OK || fabs(dec) > 89.9) {
        sk_error_clear();
        return 0;
    }
    double scale_deg = sk_wcs_pixel_scale_arcsec(wcs, xc, yc) / 3600.0;
    double d = 10.0 * scale_deg, ras[2] = {ra, ra + d / cos(dec * M_PI / 180.0)};
    double decs[2] = {dec + d, dec}, px[2], py[2];
    if (!isfinite(d) || sk_wcs_sky2pix(wcs, 2, ras, decs, px, py) != SK_OK) {
        sk_error_clear();
        return 0;
    }
    double *v[2] = {north, east};
    for (int k = 0; k < 2; k++) {
        double dx = px[k] - xc, dy = -(py[k] - yc), n = hypot(dx, dy); /* canvas y points down */
        if (!(n > 0))
            return 0;
        v[k][0] = dx / n;
        v[k][1] = dy / n;
    }
    return 1;
}

/* A round length (arcsec) for a bar of at most max_arcsec; 0 when none fits. */
static double nice_length(double max_arcsec)
{
    static const double steps[] = {36000, 18000, 7200, 3600, 1800, 1200, 600, 300, 120, 60,
                                   30, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1};
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++)
        if (steps[k] <= max_arcsec)
            return steps[k];
    return 0;
}

static void length_label(double arcsec, char *out, size_t outsz)
{
    if (arcsec >= 3600)
        snprintf(out, outsz, "%g DEG", arcsec / 3600);
    else if (arcsec >= 60)
        snprintf(out, outsz, "%g'", arcsec / 60);
    else
        snprintf(out, outsz, "%g\"", arcsec);
}

/* Arrows at the top right and a scale bar at the bottom left. */
static void draw_orientation(const geom *g, const sk_wcs *wcs, long width, long height, const sk_look_opts *o,
                             sk_look_info *info)
{
    sk_canvas *c = g->c;
    int ts = text_scale(g);
    long side = c->width < c->height ? c->width : c->height;
    double len = 0.12 * (double)side, north[2], east[2];
    if (!o->no_arrows && sky_directions(wcs, width, height, north, east)) {
        double x0 = (double)c->width - 1.6 * len - 6 * ts, y0 = 1.6 * len + 6 * ts;
        arrow(c, x0, y0, north[0], north[1], len, "N", ts);
        arrow(c, x0, y0, east[0], east[1], len, "E", ts);
        info->arrows = 1;
    }
    if (o->no_scale_bar)
        return;
    double xc = 0.5 * (double)(width - 1), yc = 0.5 * (double)(height - 1);
    double arcsec_per_px = sk_wcs_pixel_scale_arcsec(wcs, xc, yc) * g->bin / g->zoom;
    if (!isfinite(arcsec_per_px) || arcsec_per_px <= 0) {
        sk_error_clear();
        return;
    }
    double bar = nice_length(0.3 * (double)c->width * arcsec_per_px);
    if (bar <= 0)
        return;
    double bar_px = bar / arcsec_per_px;
    long x0 = 6 * ts, y0 = c->height - 6 * ts - 1;
    sk_canvas_fill_rect(c, x0, y0 - ts, x0 + lround(bar_px), y0, COLOR_BAR);
    char label[32];
    length_label(bar, label, sizeof label);
    long tx = x0 + lround(0.5 * bar_px) - sk_canvas_text_width(label, ts) / 2;
    sk_canvas_text(c, tx < 0 ? 0 : tx, y0 - 10 * ts, label, ts, COLOR_BAR);
    info->scale_bar_arcsec = bar;
}

/* The picture of a binned image (g->c is made here). */
static int render_binned(geom *g, const float *binned, const sk_wcs *wcs, long width, long height,
                         const sk_look_opts *o, sk_canvas **out, sk_look_info *info)
{
    sk_stretch_map m;
    int rc = sk_stretch_fit(binned, g->bw * g->bh, o->stretch, o->soften_sigma, 20000, &m);
    g->c = rc ? NULL : sk_canvas_new(g->bw * g->zoom, g->bh * g->zoom);
    if (!rc && !g->c)
        rc = sk_errstatus() ? sk_errstatus() : SK_EIO;
    if (!rc)
        paint(g, binned, &m);
    if (!rc && o->sources)
        rc = draw_sources(g, o->sources, &info->nsources);
    if (!rc && wcs)
        draw_orientation(g, wcs, width, height, o, info);
    if (rc) {
        sk_canvas_free(g->c);
        return rc;
    }
    info->width_px = g->c->width;
    info->height_px = g->c->height;
    info->bin = g->bin;
    info->lo = m.kind == SK_STRETCH_ASINH ? m.sky : m.lo;
    info->hi = m.hi;
    *out = g->c;
    return SK_OK;
}

/* The options (defaults for NULL) and a zeroed info (a scratch one for NULL). */
static const sk_look_opts *start(const sk_look_opts *o, sk_look_opts *defaults, sk_look_info **info,
                                 sk_look_info *scratch)
{
    if (!o) {
        sk_look_opts_default(defaults);
        o = defaults;
    }
    *info = *info ? *info : scratch;
    memset(*info, 0, sizeof **info);
    return o;
}

int sk_look_render(const sk_image *img, const sk_look_opts *o, sk_canvas **out, sk_look_info *info)
{
    sk_look_opts defaults;
    sk_look_info scratch;
    *out = NULL;
    o = start(o, &defaults, &info, &scratch);
    if (!img || !img->sci || img->width <= 0 || img->height <= 0)
        return sk_error(SK_EINPUT, "quick-look: no image");
    geom g;
    plan_geometry(img->width, img->height, o, &g);
    size_t nb = (size_t)g.bw * (size_t)g.bh;
    double *sum = calloc(nb, sizeof *sum);
    long *cnt = calloc(nb, sizeof *cnt);
    float *binned = NULL;
    if (sum && cnt) {
        bin_job J = {&g, img, sum, cnt};
        long chunk = (256 + g.bin - 1) / g.bin; /* rows of bins over about 256 image rows */
        sk_parallel_for(g.bh, chunk, o->threads, bin_rows, &J);
        binned = bin_means(&g, sum, cnt);
    }
    free(sum);
    free(cnt);
    if (!binned)
        return sk_error(SK_EIO, "quick-look: out of memory");
    int rc = render_binned(&g, binned, img->wcs, img->width, img->height, o, out, info);
    free(binned);
    return rc;
}

/* Stream the science plane (and the WGT plane when the file has one and
 * no HDU is named) through the bins, `bin` rows at a time. */
static int bin_file(const char *path, const char *hdu, geom *g, long width, long height,
                    sk_plane_reader *sci, const sk_look_opts *o, float **binned)
{
    sk_plane_reader *wgt = NULL;
    long ww = 0, wh = 0;
    int rc = SK_OK;
    if (!hdu && sk_fits_has_hdu(path, "WGT")) {
        rc = sk_plane_reader_open(path, "WGT", &wgt, &ww, &wh, NULL);
        if (!rc && (ww != width || wh != height)) {
            sk_plane_reader_close(wgt);
            wgt = NULL;
        }
    }
    plan_geometry(width, height, o, g);
    size_t nb = (size_t)g->bw * (size_t)g->bh, chunk = (size_t)g->bin * (size_t)width;
    double *sum = calloc(nb, sizeof *sum);
    long *cnt = calloc(nb, sizeof *cnt);
    float *sbuf = malloc(chunk * sizeof *sbuf), *wbuf = wgt ? malloc(chunk * sizeof *wbuf) : NULL;
    if (!rc && (!sum || !cnt || !sbuf || (wgt && !wbuf)))
        rc = sk_error(SK_EIO, "%s: out of memory", path);
    for (long y = 0; !rc && y < height; y += g->bin) {
        long n = height - y < g->bin ? height - y : g->bin;
        rc = sk_plane_reader_rows(sci, y, n, sbuf);
        if (!rc && wgt)
            rc = sk_plane_reader_rows(wgt, y, n, wbuf);
        if (!rc)
            accumulate(g, sbuf, wgt ? wbuf : NULL, width, y, n, sum, cnt);
    }
    *binned = rc ? NULL : bin_means(g, sum, cnt);
    if (!rc && !*binned)
        rc = sk_error(SK_EIO, "%s: out of memory", path);
    free(sum);
    free(cnt);
    free(sbuf);
    free(wbuf);
    sk_plane_reader_close(wgt);
    return rc;
}

int sk_look_file(const char *fits_path, const char *hdu, const char *png_path, const sk_look_opts *o,
                 sk_look_info *info)
{
    sk_look_opts defaults;
    sk_look_info scratch;
    o = start(o, &defaults, &info, &scratch);
    sk_plane_reader *sci = NULL;
    sk_header *header = NULL;
    long width = 0, height = 0;
    int rc = sk_plane_reader_open(fits_path, hdu, &sci, &width, &height, &header);
    geom g;
    float *binned = NULL;
    rc = rc ? rc : bin_file(fits_path, hdu, &g, width, height, sci, o, &binned);
    sk_plane_reader_close(sci);
    sk_wcs *wcs = NULL;
    if (!rc && sk_wcs_from_header(header, &wcs) != SK_OK) {
        wcs = NULL;
        sk_error_clear();
    }
    sk_canvas *c = NULL;
    rc = rc ? rc : render_binned(&g, binned, wcs, width, height, o, &c, info);
    rc = rc ? rc : sk_png_write(png_path, c);
    sk_canvas_free(c);
    sk_wcs_free(wcs);
    sk_header_free(header);
    free(binned);
    return rc;
}

int sk_look_png_name(const char *product_path, char *out, size_t outsz)
{
    static const char *const suffixes[] = {".fits.fz", ".fits.gz", ".fits", ".fit", ".fts", ".fz"};
    size_t n = strlen(product_path);
    for (size_t k = 0; k < sizeof suffixes / sizeof *suffixes; k++) {
        size_t s = strlen(suffixes[k]);
        if (n > s && strcmp(product_path + n - s, suffixes[k]) == 0) {
            n -= s;
            break;
        }
    }
    return sk_path_format(out, outsz, "%.*s.png", (int)n, product_path);
}

/* 1 when the sidecar records a quick-look whose md5 is that of png. */
static int recorded(const char *product_path, const char *png)
{
    json_t *doc = NULL;
    if (sk_sidecar_read(product_path, NULL, NULL, 0, NULL, &doc) != SK_OK) {
        sk_error_clear();
        return 0;
    }
    const char *want = json_string_value(json_object_get(json_object_get(doc, "quicklook"), "md5"));
    char md5[33];
    int same = want && sk_path_is_file(png) && sk_md5_file(png, md5) == SK_OK && strcmp(md5, want) == 0;
    sk_error_clear();
    json_decref(doc);
    return same;
}

/* The PNG of an image in memory, as sk_look_file() would make it from
 * the file that image was written to. */
static int look_image_png(const sk_image *img, const char *png, const sk_look_opts *o, sk_look_info *info)
{
    sk_canvas *c = NULL;
    int rc = sk_look_render(img, o, &c, info);
    rc = rc ? rc : sk_png_write(png, c);
    sk_canvas_free(c);
    return rc;
}

int sk_look_product(const char *product_path, const sk_look_opts *opts, char *png_path, size_t png_size)
{
    return sk_look_product_image(product_path, NULL, opts, png_path, png_size);
}

int sk_look_product_image(const char *product_path, const sk_image *img, const sk_look_opts *opts,
                          char *png_path, size_t png_size)
{
    char png[4200];
    int rc = sk_look_png_name(product_path, png, sizeof png);
    if (rc)
        return rc;
    if (png_path)
        snprintf(png_path, png_size, "%s", png);
    if (recorded(product_path, png))
        return SK_OK;
    sk_look_opts o;
    if (opts)
        o = *opts;
    else
        sk_look_opts_default(&o);
    sk_look_info info;
    if (img)
        rc = look_image_png(img, png, &o, &info);
    else
        rc = sk_look_file(product_path, NULL, png, &o, &info);
    char md5[33];
    rc = rc ? rc : sk_md5_file(png, md5);
    if (rc)
        return sk_error_context("quick-look of %s", product_path);
    const char *base = strrchr(png, '/');
    json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:b}", "path", base ? base + 1 : png, "md5", md5,
                          "stretch", sk_stretch_name(o.stretch), "bin", info.bin, "sources",
                          (json_int_t)info.nsources, "arrows", info.arrows);
    rc = sk_sidecar_set(product_path, "quicklook", j);
    if (rc == SK_ENOTFOUND) {
        sk_error_clear();
        sk_debug("%s: no sidecar to record its quick-look in", product_path);
        rc = SK_OK;
    }
    return rc;
}
