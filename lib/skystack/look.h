/* look.h: seeing the products: quick-look PNG images of FITS images (a
 * stretch, the sources of an extraction, north/east arrows from the WCS, a
 * scale bar) and the static HTML report page of a refset or of the coadds
 * built since a date (imlook(1), refset(1) report). */
#ifndef SKYSTACK_LOOK_H
#define SKYSTACK_LOOK_H

#include <stdint.h>
#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sk_db;
struct sk_config;

/* ---- the canvas (look_draw.c) ---------------------------------------- */

/* An 8-bit RGB picture, row 0 at the top. */
typedef struct sk_canvas {
    long width, height;
    uint8_t *rgb;              /* 3 bytes per pixel, row-major */
} sk_canvas;

sk_canvas *sk_canvas_new(long width, long height);
void sk_canvas_free(sk_canvas *c);
/* Drawing clips at the edges; colours are 0xRRGGBB. */
void sk_canvas_line(sk_canvas *c, double x0, double y0, double x1, double y1, uint32_t rgb, int thick_px);
void sk_canvas_circle(sk_canvas *c, double xc, double yc, double radius_px, uint32_t rgb);
void sk_canvas_fill_rect(sk_canvas *c, long x0, long y0, long x1, long y1, uint32_t rgb);
/* Text in the built-in 5x7 bitmap font scaled by `scale` (>= 1), top-left
 * corner at (x, y). The font holds the digits, the letters A-Z (capitals;
 * small letters are drawn as capitals), space and . , : - + / ' " ( ) %;
 * any other character is drawn as an empty box. Returns the width drawn. */
long sk_canvas_text(sk_canvas *c, long x, long y, const char *text, int scale, uint32_t rgb);
/* Width in pixels of `text` drawn at `scale`. */
long sk_canvas_text_width(const char *text, int scale);

/* Write the canvas as an 8-bit RGB PNG through libpng, atomically
 * (look_png.c). No time stamp is written: the same canvas gives the same
 * file. SK_EIO when the file cannot be written. */
int sk_png_write(const char *path, const sk_canvas *c);
/* Read the size of a PNG file (SK_EINPUT when it is not a PNG). */
int sk_png_size(const char *path, long *width, long *height);

/* ---- stretches (look_stretch.c) -------------------------------------- */

enum sk_stretch {
    SK_STRETCH_ASINH = 0,      /* asinh of the sky-subtracted value */
    SK_STRETCH_ZSCALE = 1,     /* linear between IRAF's zscale limits */
    SK_STRETCH_LINEAR = 2      /* linear between the 0.5 and 99.5 percentiles */
};
/* "asinh", "zscale", "linear" <-> enum; -1 / NULL when unknown. */
int sk_stretch_from_name(const char *name);
const char *sk_stretch_name(int stretch);

/* A stretch fitted to the pixel values: display value in [0, 1] of a
 * pixel value v. */
typedef struct sk_stretch_map {
    int kind;
    double lo, hi;             /* values shown black and white (linear, zscale) */
    double sky, beta;          /* asinh: sky level and softening (counts) */
    double norm;               /* asinh: 1 / asinh((hi - sky) / beta) */
} sk_stretch_map;

/* Fit the stretch to the finite values v[0..n-1] (v is not changed): at
 * most `nsample` of them, evenly spaced, are used. asinh: sky = median of
 * the sample, sigma = 1.4826 MAD, display asinh((v - sky) / beta) /
 * asinh((hi - sky) / beta) with beta = soften_sigma * sigma and hi the
 * 99.8th percentile (the sky and below are black); zscale: IRAF's
 * algorithm (sorted sample, a line fitted with 2.5-sigma rejection,
 * contrast 0.25); linear: the 0.5 and 99.5 percentiles. SK_EINPUT when no
 * value is finite. */
int sk_stretch_fit(const float *v, long n, int kind, double soften_sigma, long nsample,
                   sk_stretch_map *out);
/* The display value (0..1, clipped) of v. */
double sk_stretch_apply(const sk_stretch_map *m, double v);

/* ---- quick-look images (quicklook.c) ---------------------------------- */

typedef struct sk_look_opts {
    int stretch;               /* enum sk_stretch */
    double soften_sigma;       /* asinh softening in units of the sky noise (> 0) */
    long max_size_px;          /* longest side of the PNG: the image is binned
                                  by the smallest integer factor that fits
                                  (0: no binning) */
    const char *sources;       /* source list (extract(1) FITS table with
                                  X_IMAGE, Y_IMAGE, A_IMAGE) to circle, or NULL */
    int no_arrows;             /* 1: no north/east arrows */
    int no_scale_bar;          /* 1: no scale bar */
    int threads;               /* binning an image in memory on this many
                                  threads (below 2: one; the same picture) */
} sk_look_opts;

/* Defaults: asinh, soften 3, 1024 px, arrows and scale bar on. */
void sk_look_opts_default(sk_look_opts *o);

/* What a quick-look shows, as the sidecar records it. */
typedef struct sk_look_info {
    long width_px, height_px;  /* of the PNG */
    int bin;                   /* binning factor */
    long nsources;             /* sources drawn */
    int arrows;                /* 1: arrows drawn (the image has a WCS) */
    double scale_bar_arcsec;   /* length of the scale bar (0: none) */
    double lo, hi;             /* the values shown black and white */
} sk_look_info;

/* Render an image (science plane; pixels of weight 0 are drawn dark blue).
 * `img` needs sci; weight and wcs may be NULL. */
int sk_look_render(const sk_image *img, const sk_look_opts *o, sk_canvas **out, sk_look_info *info);

/* Read the FITS image `fits_path` (any HDU the readers of fits.h take;
 * `hdu` may be NULL), render it and write `png_path` atomically. */
int sk_look_file(const char *fits_path, const char *hdu, const char *png_path, const sk_look_opts *o,
                 sk_look_info *info);

/* The quick-look of a product: PRODUCT.png beside it (the .fits or
 * .fits.fz suffix replaced), written with `o` (NULL: the defaults) and
 * recorded in the product's sidecar, when it has one, under "quicklook"
 * ({path, md5, stretch, bin, sources, arrows}). An existing PNG whose md5
 * the sidecar records is kept. The PNG's path goes to png_path (may be
 * NULL). */
int sk_look_product(const char *product_path, const sk_look_opts *o, char *png_path, size_t png_size);

/* sk_look_product() from `img`, the product's science plane (with its
 * weights and WCS) still in memory, instead of reading the file back:
 * the same PNG as from the file img was written to (NULL: read it). */
int sk_look_product_image(const char *product_path, const sk_image *img, const sk_look_opts *o,
                          char *png_path, size_t png_size);

/* The quick-look file name of a product path (suffix .fits, .fit, .fts,
 * .fits.fz, .fz or none replaced by .png). */
int sk_look_png_name(const char *product_path, char *out, size_t outsz);

/* ---- the report page (report.c) --------------------------------------- */

typedef struct sk_report_opts {
    const char *refset;        /* the refset's references, or NULL: */
    int has_since;             /* the coadds made since since_mjd */
    double since_mjd;
    const char *outdir;        /* where index.html and its images go (made
                                  when missing) */
    const char *data_root;     /* the data root (relative paths of rows) */
    int threads;
} sk_report_opts;

/* Write the report (refset(1) report): OUTDIR/index.html with a table of
 * the products (thumbnail, place, filter, time span, inputs, seeing, 5
 * sigma depth, zero point, provenance id and its chain), SVG plots of the
 * seeing and depth of every input over time and a map of the products on
 * the sky coloured by depth, and the thumbnails copied into OUTDIR/img
 * (a product without a quick-look gets one made from its file).
 * The path of the page goes to page (size pagesz). SK_ENOTFOUND when the
 * refset does not exist or nothing was made since the date. */
int sk_report_write(struct sk_db *db, const sk_report_opts *o, char *page, size_t pagesz);

#ifdef __cplusplus
}
#endif
#endif
