/* report_svg.c: the SVG plots of the report page: a quantity of inputs and products against time, and the products' footprints on the sky coloured by depth. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/atomic.h"
#include "skystack/error.h"
#include "report_priv.h"

#define PW 720.0   /* plot width, px */
#define PH 360.0   /* plot height */
#define ML 70.0    /* margins */
#define MR 90.0
#define MT 34.0
#define MB 50.0

const char *sk_filter_color(const char *filter)
{
    static const struct {
        const char *name, *color;
    } known[] = {{"u", "#7b3294"}, {"g", "#1a9850"}, {"r", "#d73027"}, {"i", "#f46d43"},
                 {"z", "#8c510a"}, {"y", "#4d4d4d"}, {"B", "#2166ac"}, {"V", "#5aae61"},
                 {"R", "#d73027"}, {"I", "#f46d43"}, {"H", "#762a83"}, {"J", "#9970ab"}, {"K", "#40004b"}};
    static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf", "#bcbd22"};
    if (!filter)
        return "#777777";
    for (size_t k = 0; k < sizeof known / sizeof *known; k++)
        if (strcmp(filter, known[k].name) == 0)
            return known[k].color;
    unsigned h = 5381;
    for (const char *p = filter; *p; p++)
        h = h * 33u + (unsigned char)*p;
    return palette[h % (sizeof palette / sizeof *palette)];
}

/* Round tick step for a range. */
static double tick_step(double range, int nticks)
{
    double raw = range / nticks, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

typedef struct axes {
    double x0, x1, y0, y1;   /* data ranges */
    int reverse_x;           /* 1: x grows to the left (RA), ticks shown modulo 360 */
} axes;

static double sx(const axes *a, double x)
{
    double t = (x - a->x0) / (a->x1 - a->x0);
    return ML + (a->reverse_x ? 1.0 - t : t) * (PW - ML - MR);
}
static double sy(const axes *a, double y) { return PH - MB - (y - a->y0) / (a->y1 - a->y0) * (PH - MT - MB); }

static void frame(FILE *f, const axes *a, const char *title, const char *xlabel, const char *ylabel)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            PW, PH, PW, PH);
    fprintf(f, "<text x=\"%.0f\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", ML);
    escape(f, title);
    fprintf(f, "</text>\n<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", ML,
            MT, PW - ML - MR, PH - MT - MB);
    double st = tick_step(a->x1 - a->x0, 6);
    for (double t = ceil(a->x0 / st) * st; t <= a->x1 + 1e-9 * st; t += st)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ccc\"/><text x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"middle\">%g</text>\n", sx(a, t), sx(a, t), MT, PH - MB, sx(a, t), PH - MB + 16,
                a->reverse_x ? fmod(t + 720.0, 360.0) : t);
    st = tick_step(a->y1 - a->y0, 5);
    for (double t = ceil(a->y0 / st) * st; t <= a->y1 + 1e-9 * st; t += st)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ccc\"/><text x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"end\">%g</text>\n", ML, PW - MR, sy(a, t), sy(a, t), ML - 6, sy(a, t) + 4, t);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", 0.5 * (ML + PW - MR), PH - 12);
    escape(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">", 0.5 * (MT + PH - MB));
    escape(f, ylabel);
    fputs("</text>\n", f);
}

/* Data ranges of the points and spans, padded; 0 when there is no finite value. */
static int ranges(const sk_plot_point *pts, long npts, const sk_plot_span *spans, long nspans, axes *a)
{
    a->x0 = a->y0 = INFINITY;
    a->reverse_x = 0;
    a->x1 = a->y1 = -INFINITY;
    for (long i = 0; i < npts + nspans; i++) {
        double x0 = i < npts ? pts[i].mjd : spans[i - npts].mjd0;
        double x1 = i < npts ? pts[i].mjd : spans[i - npts].mjd1;
        double y = i < npts ? pts[i].value : spans[i - npts].value;
        if (!isfinite(x0) || !isfinite(x1) || !isfinite(y))
            continue;
        a->x0 = fmin(a->x0, x0);
        a->x1 = fmax(a->x1, x1);
        a->y0 = fmin(a->y0, y);
        a->y1 = fmax(a->y1, y);
    }
    if (!isfinite(a->x0))
        return 0;
    double px = fmax(0.05 * (a->x1 - a->x0), 0.5), py = fmax(0.08 * (a->y1 - a->y0), 0.05);
    a->x0 -= px; a->x1 += px; a->y0 -= py; a->y1 += py;
    return 1;
}

/* Close the memory stream (buf and len are set by fclose) and write its
 * text to `path`. */
static int finish(FILE *f, char **buf, size_t *len, const char *path)
{
    if (fclose(f) != 0 || !*buf) {
        free(*buf);
        return sk_error(SK_EIO, "%s: out of memory", path);
    }
    int rc = sk_atomic_write_file(path, *buf, *len);
    free(*buf);
    return rc;
}

/* The filters of the points and spans, each once, as a legend. */
static void legend(FILE *f, const sk_plot_point *pts, long npts, const sk_plot_span *spans, long nspans)
{
    const char *seen[16];
    int nseen = 0;
    for (long i = 0; i < npts + nspans && nseen < 16; i++) {
        const char *flt = i < npts ? pts[i].filter : spans[i - npts].filter;
        int k = 0;
        while (k < nseen && strcmp(seen[k], flt ? flt : "") != 0)
            k++;
        if (k == nseen)
            seen[nseen++] = flt ? flt : "";
    }
    for (int k = 0; k < nseen; k++) {
        double x = PW - MR + 14, y = MT + 14 + 16 * k;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">", x, y - 4,
                sk_filter_color(seen[k]), x + 8, y);
        escape(f, seen[k]);
        fputs("</text>\n", f);
    }
}

int sk_plot_time_svg(const char *path, const char *title, const char *ylabel, const sk_plot_point *pts,
                     long npts, const sk_plot_span *spans, long nspans)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return sk_error(SK_EIO, "%s: out of memory", path);
    axes a;
    if (!ranges(pts, npts, spans, nspans, &a)) {
        a = (axes){0, 1, 0, 1, 0};
        frame(f, &a, title, "MJD", ylabel);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">no values</text>\n", 0.5 * PW, 0.5 * PH);
    } else {
        frame(f, &a, title, "MJD", ylabel);
        for (long i = 0; i < nspans; i++)
            if (isfinite(spans[i].value) && isfinite(spans[i].mjd0) && isfinite(spans[i].mjd1))
                fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\" "
                           "opacity=\"0.6\"/>\n", sx(&a, spans[i].mjd0), sx(&a, spans[i].mjd1) + 1, sy(&a, spans[i].value),
                        sy(&a, spans[i].value), sk_filter_color(spans[i].filter));
        for (long i = 0; i < npts; i++)
            if (isfinite(pts[i].value) && isfinite(pts[i].mjd))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", sx(&a, pts[i].mjd),
                        sy(&a, pts[i].value), sk_filter_color(pts[i].filter));
        legend(f, pts, npts, spans, nspans);
    }
    fputs("</svg>\n", f);
    return finish(f, &buf, &len, path);
}

/* A colour for t in [0, 1] on a viridis-like scale. */
static void scale_color(double t, char out[8])
{
    static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double p = t * 4;
    int k = p >= 4 ? 3 : (int)p;
    double u = p - k;
    snprintf(out, 8, "#%02x%02x%02x", (int)lround(stops[k][0] + u * (stops[k + 1][0] - stops[k][0])),
             (int)lround(stops[k][1] + u * (stops[k + 1][1] - stops[k][1])),
             (int)lround(stops[k][2] + u * (stops[k + 1][2] - stops[k][2])));
}

/* RA unwrapped around ra0 (within +-180). */
static double unwrap(double ra, double ra0)
{
    double d = fmod(ra - ra0 + 540.0, 360.0) - 180.0;
    return ra0 + d;
}

static void color_bar(FILE *f, double dmin, double dmax)
{
    double x = PW - MR + 10, y0 = MT, h = PH - MT - MB;
    for (int k = 0; k < 20; k++) {
        char c[8];
        scale_color(1.0 - (k + 0.5) / 20.0, c);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"%.1f\" fill=\"%s\"/>\n", x, y0 + h * k / 20.0,
                h / 20.0 + 0.5, c);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%.2f</text><text x=\"%.1f\" y=\"%.1f\">%.2f</text>\n"
               "<text x=\"%.1f\" y=\"%.1f\">5&#963; mag</text>\n", x + 18, y0 + 10, dmax, x + 18, y0 + h, dmin, x - 10,
            y0 - 6);
}

/* Polygons of the boxes, RA increasing to the left. */
static void boxes_svg(FILE *f, const sk_sky_box *b, long n, double ra0, axes *a, double dmin, double dmax)
{
    for (long i = 0; i < n; i++) {
        char c[8] = "#bbbbbb";
        if (isfinite(b[i].depth_mag))
            scale_color(dmax > dmin ? (b[i].depth_mag - dmin) / (dmax - dmin) : 0.5, c);
        fputs("<polygon points=\"", f);
        for (int k = 0; k < 4; k++)
            fprintf(f, "%.1f,%.1f ", sx(a, unwrap(b[i].ra_deg[k], ra0)), sy(a, b[i].dec_deg[k]));
        fprintf(f, "\" fill=\"%s\" fill-opacity=\"0.75\" stroke=\"#333\" stroke-width=\"0.5\"><title>", c);
        escape(f, b[i].label);
        if (isfinite(b[i].depth_mag))
            fprintf(f, ": %.2f mag", b[i].depth_mag);
        fputs("</title></polygon>\n", f);
    }
}

int sk_plot_sky_svg(const char *path, const char *title, const sk_sky_box *b, long n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return sk_error(SK_EIO, "%s: out of memory", path);
    double ra0 = n > 0 ? b[0].ra_deg[0] : 0, dmin = INFINITY, dmax = -INFINITY;
    axes a = {INFINITY, -INFINITY, INFINITY, -INFINITY, 1};
    for (long i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) {
            double r = unwrap(b[i].ra_deg[k], ra0);
            a.x0 = fmin(a.x0, r); a.x1 = fmax(a.x1, r);
            a.y0 = fmin(a.y0, b[i].dec_deg[k]); a.y1 = fmax(a.y1, b[i].dec_deg[k]);
        }
        if (isfinite(b[i].depth_mag)) {
            dmin = fmin(dmin, b[i].depth_mag);
            dmax = fmax(dmax, b[i].depth_mag);
        }
    }
    if (!(a.x1 > a.x0) || !(a.y1 > a.y0))
        a = (axes){ra0 - 0.5, ra0 + 0.5, -0.5, 0.5, 1};
    /* the same angular scale on both axes at the mean declination */
    double cosd = cos(0.5 * (a.y0 + a.y1) * M_PI / 180.0), wx = (a.x1 - a.x0) * cosd, wy = a.y1 - a.y0;
    double aspect = (PW - ML - MR) / (PH - MT - MB), pad = 0.05 * fmax(wx, wy);
    double half_w = 0.5 * fmax(wx, wy * aspect) + pad, half_h = half_w / aspect;
    double xc = 0.5 * (a.x0 + a.x1), yc = 0.5 * (a.y0 + a.y1);
    a = (axes){xc - half_w / cosd, xc + half_w / cosd, yc - half_h, yc + half_h, 1};
    frame(f, &a, title, "RA (deg, east to the left)", "Dec (deg)");
    boxes_svg(f, b, n, ra0, &a, dmin, dmax);
    if (isfinite(dmin))
        color_bar(f, dmin, dmax);
    fputs("</svg>\n", f);
    return finish(f, &buf, &len, path);
}
