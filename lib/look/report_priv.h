/* report_priv.h: the SVG plots of the report page (report_svg.c), shared with report.c (not installed). */
#ifndef SK_REPORT_PRIV_H
#define SK_REPORT_PRIV_H

#include <stdio.h>

/* A series of points over time, one colour per filter. */
typedef struct sk_plot_point {
    double mjd, value;
    const char *filter;
} sk_plot_point;

/* A product over its time span (a horizontal segment at its value). */
typedef struct sk_plot_span {
    double mjd0, mjd1, value;
    const char *filter;
} sk_plot_span;

/* One product's footprint on the sky and its depth (NaN: unknown). */
typedef struct sk_sky_box {
    double ra_deg[4], dec_deg[4];
    double depth_mag;
    const char *label;
} sk_sky_box;

/* The colour (#rrggbb) of a filter: u g r i z y and the like by name,
 * others from a fixed palette by a hash of the name. */
const char *sk_filter_color(const char *filter);

/* Write an SVG plot of value against MJD: the points (inputs) as dots
 * and the spans (products) as lines, a legend of the filters; y grows
 * upward unless `invert` (magnitudes: deeper up is the default, seeing:
 * smaller down). Atomic. */
int sk_plot_time_svg(const char *path, const char *title, const char *ylabel, const sk_plot_point *pts,
                     long npts, const sk_plot_span *spans, long nspans);

/* Write an SVG map of the footprints on the sky (east left), each filled
 * by its depth on a colour scale shown beside it. Atomic. */
int sk_plot_sky_svg(const char *path, const char *title, const sk_sky_box *boxes, long n);

#endif
