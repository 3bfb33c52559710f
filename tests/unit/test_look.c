/* test_look.c: quick-looks and what they rest on: the stretches, the canvas and its font, PNG files, the orientation arrows and scale bar from a WCS, source circles, binning, the sidecar record; and the planes beside an image found under the names pipelines use. */
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/look.h"
#include "../tap.h"

static char *tmp_path(const char *name)
{
    static char buf[16][4200];
    static int k;
    char *b = buf[k++ & 15];
    snprintf(b, sizeof buf[0], "%s/%s", tap_tmpdir(), name);
    return b;
}

static uint64_t rng_state = 88172645463325252ULL;
static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double gauss(void)
{
    double u = uniform() + 1e-12, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static uint32_t pixel(const sk_canvas *c, long x, long y)
{
    const uint8_t *p = c->rgb + 3 * ((size_t)y * (size_t)c->width + (size_t)x);
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static void test_stretches(void)
{
    is_int(sk_stretch_from_name("zscale"), SK_STRETCH_ZSCALE, "stretch name zscale");
    is_int(sk_stretch_from_name("bogus"), -1, "an unknown stretch name is refused");
    is_str(sk_stretch_name(SK_STRETCH_ASINH), "asinh", "stretch name of asinh");
    long n = 40000;
    float *v = malloc(sizeof *v * (size_t)n);
    for (long i = 0; i < n; i++)
        v[i] = (float)(100.0 + 10.0 * gauss());
    for (long i = 0; i < n; i += 100)
        v[i] = 1e5f; /* 1 % bright outliers */
    sk_stretch_map m;
    ok(sk_stretch_fit(v, n, SK_STRETCH_ZSCALE, 3, 20000, &m) == SK_OK, "zscale fitted");
    ok(m.lo > 50 && m.lo < 100 && m.hi > 100 && m.hi < 200,
       "zscale limits bracket the sky of noise 10 and ignore the outliers (%.1f, %.1f)", m.lo, m.hi);
    ok(sk_stretch_fit(v, n, SK_STRETCH_ASINH, 3, 20000, &m) == SK_OK, "asinh fitted");
    is_near(m.sky, 100.0, 0.5, "asinh: the sky is the median");
    is_near(m.beta, 30.0, 1.5, "asinh: beta = 3 sigma (sigma from the MAD, not the outliers)");
    is_near(sk_stretch_apply(&m, m.sky), 0.0, 1e-12, "asinh: the sky is black");
    is_near(sk_stretch_apply(&m, m.hi), 1.0, 1e-9, "asinh: the 99.8th percentile is white");
    ok(sk_stretch_apply(&m, 130) > sk_stretch_apply(&m, 120) && sk_stretch_apply(&m, 50) == 0.0,
       "asinh: increasing, clipped at 0");
    for (long i = 0; i < n; i++)
        v[i] = (float)i / (float)(n - 1);
    ok(sk_stretch_fit(v, n, SK_STRETCH_LINEAR, 3, n, &m) == SK_OK, "linear fitted");
    ok(fabs(m.lo - 0.005) < 1e-3 && fabs(m.hi - 0.995) < 1e-3, "linear: the 0.5 and 99.5 percentiles (%g, %g)",
       m.lo, m.hi);
    for (long i = 0; i < n; i++)
        v[i] = NAN;
    ok(sk_stretch_fit(v, n, SK_STRETCH_ASINH, 3, 100, &m) == SK_EINPUT, "no finite value: SK_EINPUT");
    sk_error_clear();
    free(v);
}

/* Read a PNG back through libpng; its RGB bytes (malloc'd) or NULL. */
static uint8_t *read_png(const char *path, long *w, long *h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path))
        return NULL;
    im.format = PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(im));
    if (!buf || !png_image_finish_read(&im, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&im);
        return NULL;
    }
    *w = im.width;
    *h = im.height;
    return buf;
}

static void test_canvas_png(void)
{
    sk_canvas *c = sk_canvas_new(40, 20);
    ok(c != NULL, "canvas made");
    is_int(sk_canvas_text_width("NE", 2), 22, "text width: 6 px a glyph less the last gap, scaled");
    sk_canvas_text(c, 1, 1, "N", 1, 0xff0000);
    ok(pixel(c, 1, 1) == 0xff0000 && pixel(c, 2, 1) == 0 && pixel(c, 5, 1) == 0xff0000,
       "the glyph N: top row lit at its two sides only");
    sk_canvas_line(c, 10, 15, 30, 15, 0x00ff00, 1);
    ok(pixel(c, 20, 15) == 0x00ff00 && pixel(c, 20, 14) == 0, "a one-pixel line");
    sk_canvas_line(c, -1e9, 0, 1e9, 0, 0x00ff00, 1); /* far outside: nothing, no endless loop */
    const char *p1 = tmp_path("c1.png"), *p2 = tmp_path("c2.png");
    ok(sk_png_write(p1, c) == SK_OK && sk_png_write(p2, c) == SK_OK, "PNG written twice");
    char m1[33], m2[33];
    ok(sk_md5_file(p1, m1) == SK_OK && sk_md5_file(p2, m2) == SK_OK && strcmp(m1, m2) == 0,
       "the same canvas gives the same file (no time stamp)");
    long w = 0, h = 0;
    ok(sk_png_size(p1, &w, &h) == SK_OK && w == 40 && h == 20, "sk_png_size reads 40 x 20");
    uint8_t *back = read_png(p1, &w, &h);
    ok(back && w == 40 && h == 20 && memcmp(back, c->rgb, 40 * 20 * 3) == 0,
       "libpng reads back every pixel of the canvas");
    free(back);
    ok(sk_png_size(tmp_path("nothing.png"), &w, &h) != SK_OK, "a missing PNG is an error");
    sk_error_clear();
    sk_canvas_free(c);
    char name[256];
    sk_look_png_name("a/b.fits.fz", name, sizeof name);
    is_str(name, "a/b.png", "quick-look name of a .fits.fz");
    sk_look_png_name("x.fit", name, sizeof name);
    is_str(name, "x.png", "quick-look name of a .fit");
    sk_look_png_name("plain", name, sizeof name);
    is_str(name, "plain.png", "quick-look name of a name without suffix");
}

/* A w x h image of sky 100 and noise 5, with a TAN WCS of 0.25"/px:
 * north up and east left (east_left), or east right. */
static sk_image *field(long w, long h, int east_left)
{
    sk_image *img = sk_image_new(w, h);
    for (long i = 0; i < w * h; i++) {
        img->sci[i] = (float)(100.0 + 5.0 * gauss());
        img->weight[i] = 0.04f;
    }
    sk_header *hd = sk_header_new();
    sk_header_set_str(hd, "CTYPE1", "RA---TAN", NULL);
    sk_header_set_str(hd, "CTYPE2", "DEC--TAN", NULL);
    sk_header_set_double(hd, "CRVAL1", 150.0, NULL);
    sk_header_set_double(hd, "CRVAL2", 2.0, NULL);
    sk_header_set_double(hd, "CRPIX1", 0.5 * (double)(w + 1), NULL);
    sk_header_set_double(hd, "CRPIX2", 0.5 * (double)(h + 1), NULL);
    sk_header_set_double(hd, "CD1_1", (east_left ? -1 : 1) * 0.25 / 3600, NULL);
    sk_header_set_double(hd, "CD1_2", 0.0, NULL);
    sk_header_set_double(hd, "CD2_1", 0.0, NULL);
    sk_header_set_double(hd, "CD2_2", 0.25 / 3600, NULL);
    sk_wcs_from_header(hd, &img->wcs);
    sk_header_free(img->header);
    img->header = hd;
    return img;
}

static void test_orientation(void)
{
    sk_look_opts o;
    sk_look_opts_default(&o);
    sk_image *img = field(300, 300, 1);
    sk_canvas *c = NULL;
    sk_look_info info;
    ok(sk_look_render(img, &o, &c, &info) == SK_OK, "render a 300 x 300 field");
    is_int(info.width_px, 300, "no binning below the size");
    ok(info.arrows == 1, "arrows drawn from the WCS");
    is_near(info.scale_bar_arcsec, 20.0, 1e-9, "scale bar: 20\" (at most 30 %% of 75\")");
    /* the arrows start at (236, 64), 36 px long (12 % of the side) */
    const uint32_t yellow = 0xffd020;
    ok(pixel(c, 236, 45) == yellow, "north up: the N arrow rises from its origin");
    ok(pixel(c, 218, 64) == yellow && pixel(c, 254, 64) != yellow, "east left: the E arrow points left");
    /* the scale bar: 80 px (20" at 0.25"/px) from x = 6 at the bottom */
    ok(pixel(c, 40, 293) == 0xffffff && pixel(c, 90, 293) != 0xffffff, "scale bar 80 px long");
    sk_canvas_free(c);
    sk_image_free(img);
    img = field(300, 300, 0);
    ok(sk_look_render(img, &o, &c, &info) == SK_OK && pixel(c, 254, 64) == yellow && pixel(c, 218, 64) != yellow,
       "east right on the sky: the E arrow points right");
    sk_canvas_free(c);
    sk_wcs_free(img->wcs);
    img->wcs = NULL;
    img->weight[0] = 0.0f; /* pixel (0, 0): the bottom-left corner of the picture */
    ok(sk_look_render(img, &o, &c, &info) == SK_OK && info.arrows == 0 && info.scale_bar_arcsec == 0,
       "without a WCS: no arrows, no scale bar");
    ok(pixel(c, 0, 299) == 0x000040, "a pixel of weight 0 is dark blue");
    sk_canvas_free(c);
    sk_image_free(img);
}

static void test_binning_sources(void)
{
    sk_look_opts o;
    sk_look_opts_default(&o);
    o.max_size_px = 256;
    sk_image *img = field(600, 400, 1);
    sk_canvas *c = NULL;
    sk_look_info info;
    ok(sk_look_render(img, &o, &c, &info) == SK_OK && info.bin == 3 && c->width == 200 && c->height == 134,
       "600 x 400 to at most 256 px: binned by 3 into 200 x 134");
    sk_canvas_free(c);
    sk_image_free(img);
    /* a source list with one source at (150.5, 100.5) (1-based), A = 2 */
    sk_table *t = sk_table_new("SOURCES", 1);
    sk_column_set(sk_table_add_column(t, "X_IMAGE", SK_COL_DOUBLE, 1, "pixel"), 0, 0, 150.5);
    sk_column_set(sk_table_add_column(t, "Y_IMAGE", SK_COL_DOUBLE, 1, "pixel"), 0, 0, 100.5);
    sk_column_set(sk_table_add_column(t, "A_IMAGE", SK_COL_FLOAT, 1, "pixel"), 0, 0, 2.0);
    const char *src = tmp_path("one.sources.fits");
    ok(sk_fits_write_table(src, t) == SK_OK, "source list written");
    sk_table_free(t);
    img = field(300, 300, 1);
    sk_look_opts_default(&o);
    o.sources = src;
    o.no_arrows = o.no_scale_bar = 1;
    ok(sk_look_render(img, &o, &c, &info) == SK_OK && info.nsources == 1, "one source drawn");
    /* centre (149.5, 299 - 99.5) on the canvas, radius 6 */
    ok(pixel(c, 156, 200) == 0x30ff30 && pixel(c, 150, 200) != 0x30ff30, "a circle of radius 3 A around it");
    sk_canvas_free(c);
    o.sources = tmp_path("absent.fits");
    ok(sk_look_render(img, &o, &c, &info) != SK_OK, "a missing source list is an error");
    sk_error_clear();
    sk_image_free(img);
}

/* A tile-compressed skystack image with a sidecar: its quick-look made,
 * recorded, and kept the second time. */
static void test_product(void)
{
    sk_image *img = field(128, 96, 1);
    sk_write_opts wo = {0};
    wo.compress = 1;
    const char *path = tmp_path("prod.fits.fz");
    ok(sk_fits_write_image(path, img, &wo) == SK_OK, "tile-compressed product written");
    sk_image_free(img);
    sk_prov *prov = NULL;
    sk_prov_new("coaddition", "1.0.0", NULL, &prov);
    ok(sk_sidecar_write(path, "coadd", prov, NULL, 0) == SK_OK, "its sidecar");
    sk_prov_free(prov);
    char png[4200];
    ok(sk_look_product(path, NULL, png, sizeof png) == SK_OK, "quick-look of the product");
    is_str(png, tmp_path("prod.png"), "beside it, named PRODUCT.png");
    long w = 0, h = 0;
    ok(sk_png_size(png, &w, &h) == SK_OK && w == 256 && h == 192, "small images enlarged: 256 x 192");
    json_t *doc = NULL;
    char md5[33];
    sk_md5_file(png, md5);
    ok(sk_sidecar_read(path, NULL, NULL, 0, NULL, &doc) == SK_OK, "the sidecar reads back");
    const json_t *q = json_object_get(doc, "quicklook");
    is_str(json_string_value(json_object_get(q, "md5")), md5, "the sidecar records the PNG's md5");
    is_str(json_string_value(json_object_get(q, "path")), "prod.png", "and its name");
    json_decref(doc);
    ok(sk_sidecar_verify(path) == SK_OK, "the product still matches its sidecar");
    ok(sk_sidecar_set(path, "md5", json_string("x")) == SK_EINPUT, "the sidecar's own keys cannot be set");
    sk_error_clear();
}

/* A science image with a noise plane `nname` holding `value` and a
 * data-quality plane `mname` with one bad pixel. */
static int write_mef(const char *path, const char *nname, float value, const char *mname)
{
    enum { W = 16, H = 12 };
    float sci[W * H], noise[W * H];
    int32_t dq[W * H] = {0};
    for (int i = 0; i < W * H; i++) {
        sci[i] = 10.0f;
        noise[i] = value;
    }
    dq[5 * W + 7] = 4;
    sk_fits_writer *w = NULL;
    int rc = sk_fits_writer_open(path, 0, &w);
    rc = rc ? rc : sk_fits_writer_add_image(w, "IMAGE", -32, W, H, sci, NULL);
    rc = rc ? rc : sk_fits_writer_add_image(w, nname, -32, W, H, noise, NULL);
    rc = rc ? rc : sk_fits_writer_add_image(w, mname, 32, W, H, dq, NULL);
    if (rc) {
        sk_fits_writer_abort(w);
        return rc;
    }
    return sk_fits_writer_commit(w);
}

static void test_companions(void)
{
    static const struct {
        const char *noise, *mask;
        float value, weight;
    } cases[] = {{"VARIANCE", "DQ", 4.0f, 0.25f}, {"ERR", "MASK", 2.0f, 0.25f}, {"IVAR", "BPM", 0.5f, 0.5f},
                 {"WHT", "DQ", 3.0f, 3.0f}, {"SIGMA", "BPM", 0.5f, 4.0f}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char name[64];
        snprintf(name, sizeof name, "mef%zu.fits", k);
        const char *p = tmp_path(name);
        sk_image *img = NULL;
        int rc = write_mef(p, cases[k].noise, cases[k].value, cases[k].mask);
        rc = rc ? rc : sk_fits_read_image(p, NULL, &img);
        ok(rc == SK_OK && img && !img->weight_is_relative && fabsf(img->weight[0] - cases[k].weight) < 1e-6f,
           "%s %g read as inverse variance %g", cases[k].noise, cases[k].value, cases[k].weight);
        ok(rc == SK_OK && img && img->weight[5 * 16 + 7] == 0.0f && (img->flags[5 * 16 + 7] & SK_FLAG_BAD) &&
               img->flags[0] == 0,
           "%s: the pixel of code 4 is bad, the others good", cases[k].mask);
        sk_image_free(img);
        sk_error_clear();
    }
}

int main(void)
{
    tap_plan(61);
    test_stretches();
    test_canvas_png();
    test_orientation();
    test_binning_sources();
    test_product();
    test_companions();
    return tap_done();
}
