/* test_band_read.c: a coadd input's band made ready for resampling
 * (background subtracted, flux scaled, variance from the weight, flags of
 * non-finite values, bad backgrounds and zero or unusable weights), bit
 * for bit against the rule written out here, on rows whose widths leave
 * every remainder of the four-pixel blocks, with every special value;
 * from an image in memory and from a file's SCI, WGT and FLG planes
 * (read where they are stored, byte-swapped: zero exponents as +0,
 * weights below the smallest normal float as 0, SATURATE flagged). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "../tap.h"
#include "coadd/direct_priv.h"
#include "skystack/error.h"
#include "skystack/fits.h"
#include "skystack/header.h"
#include "skystack/image.h"

/* The rule for one pixel (value v, weight wt, level, input flags fl). */
static void expected(float v_in, float wt_in, float level_in, uint16_t fl, double rms2, double f,
                     float *sci, float *var, uint16_t *flags)
{
    double v = v_in, wt = wt_in, level = level_in;
    if (!isfinite(v)) {
        v = 0.0;
        wt = 0.0;
        fl |= SK_FLAG_NONFINITE | SK_FLAG_BAD;
    }
    if (!isfinite(level)) {
        level = 0.0;
        fl |= SK_FLAG_BAD;
    }
    if (!isfinite(wt) || !(wt > 0.0)) {
        wt = 0.0;
        if (!(fl & SK_FLAGS_UNUSABLE))
            fl |= SK_FLAG_ZEROWEIGHT;
    }
    float vr = wt > 0.0 ? (float)(rms2 * (f * f) / wt) : 0.0f;
    if (wt > 0.0 && !(vr > 0.0f && isfinite(vr))) {
        vr = 0.0f;
        fl |= SK_FLAG_ZEROWEIGHT;
    }
    *sci = (float)((v - level) * f);
    *var = vr;
    *flags = fl;
}

/* Every width from 1 to 11 (all remainders of blocks of four) with a
 * value cycling through ordinary and special values. */
static int check_widths(int with_background)
{
    static const float vals[] = {12.5f, -3.25f, NAN, INFINITY, -INFINITY, 0.0f, 1e30f, 7.0f, 1e-30f};
    static const float wgts[] = {2.0f, 0.0f, -1.0f, NAN, INFINITY, 1e-38f, 1e38f, 0.5f, 3e-45f, 4.0f, 1.0f};
    static const float lvls[] = {1.5f, NAN, -2.0f, INFINITY, 0.25f, 3.0f, 0.0f};
    static const uint16_t fls[] = {0, 0, SK_FLAG_BAD, 0, SK_FLAG_SATURATED, 0, SK_FLAG_COSMIC, 0};
    int bad = 0;
    for (long W = 1; W <= 11; W++) {
        long H = 3;
        sk_image *img = sk_image_new(W, H);
        float bgmap[33];
        for (long i = 0; i < W * H; i++) {
            img->sci[i] = vals[i % 9];
            img->weight[i] = wgts[(i * 7 + W) % 11];
            img->flags[i] = fls[(i + W) % 8];
            bgmap[i] = lvls[(i * 3 + W) % 7];
        }
        sk_coadd_input in;
        sk_coadd_input_init(&in);
        in.image = img;
        in.background = with_background ? bgmap : NULL;
        in.background_level = with_background ? 0.0 : 0.75;
        in.weight_scale = 0.8;
        sk_band_source *src = NULL;
        sk_band b;
        memset(&b, 0, sizeof b);
        double f = 1.7;
        if (sk_band_source_open(&in, &src) || sk_band_alloc(&b, 0, 0, W, H, W, H) ||
            sk_band_source_read(src, f, &b)) {
            bad++;
        } else {
            for (long i = 0; i < W * H; i++) {
                float es, ev;
                uint16_t ef;
                expected(img->sci[i], img->weight[i], with_background ? bgmap[i] : 0.75f, img->flags[i],
                         1.0 / 0.8, f, &es, &ev, &ef);
                if (memcmp(&es, &b.sci[i], sizeof es) || memcmp(&ev, &b.var[i], sizeof ev) ||
                    ef != b.flags[i]) {
                    if (!bad)
                        tap_diag("width %ld pixel %ld: got %g %g %#x, want %g %g %#x", W, i, b.sci[i],
                             b.var[i], b.flags[i], es, ev, ef);
                    bad++;
                }
            }
        }
        sk_band_free(&b);
        sk_band_source_close(src);
        sk_image_free(img);
    }
    return bad;
}

/* A file of SCI (SATURATE 1e29), WGT and FLG planes of W x H pixels from
 * img; 0 when written. */
static int write_planes(const char *path, const sk_image *img)
{
    sk_fits_writer *w = NULL;
    sk_header *h = sk_header_new();
    int rc = h ? sk_fits_writer_open(path, 0, &w) : SK_EIO;
    rc = rc ? rc : sk_header_set_double(h, "SATURATE", 1e29, "saturation level");
    rc = rc ? rc : sk_fits_writer_add_image(w, "SCI", -32, img->width, img->height, img->sci, h);
    rc = rc ? rc : sk_fits_writer_add_image(w, "WGT", -32, img->width, img->height, img->weight, NULL);
    rc = rc ? rc : sk_fits_writer_add_image(w, "FLG", 16, img->width, img->height, img->flags, NULL);
    sk_header_free(h);
    if (rc) {
        if (w)
            sk_fits_writer_abort(w);
        return rc;
    }
    return sk_fits_writer_commit(w);
}

/* The same special values stored in files, widths 1 to 11. */
static int check_file_widths(void)
{
    static const float vals[] = {12.5f, -3.25f, NAN, INFINITY, -INFINITY, -0.0f, 1e30f, 1e-40f, -1e-42f, 7.0f};
    static const float wgts[] = {2.0f, 0.0f, -1.0f, NAN, INFINITY, 1e-38f, 1e38f, 0.5f, 3e-45f, -0.0f, 1.0f};
    static const uint16_t fls[] = {0, 0, SK_FLAG_BAD, 0, SK_FLAG_SATURATED, 0, SK_FLAG_COSMIC, 0x8001};
    char path[4200];
    snprintf(path, sizeof path, "%s/band_read.fits", tap_tmpdir());
    int bad = 0;
    for (long W = 1; W <= 11; W++) {
        long H = 3;
        sk_image *img = sk_image_new(W, H);
        for (long i = 0; i < W * H; i++) {
            img->sci[i] = vals[(i + W) % 10];
            img->weight[i] = wgts[(i * 7 + W) % 11];
            img->flags[i] = fls[(i + W) % 8];
        }
        sk_coadd_input in;
        sk_coadd_input_init(&in);
        in.path = path;
        in.background_level = 0.75;
        in.weight_scale = 0.8;
        sk_band_source *src = NULL;
        sk_band b;
        memset(&b, 0, sizeof b);
        double f = 1.7;
        if (write_planes(path, img) || sk_band_source_open(&in, &src) ||
            sk_band_alloc(&b, 0, 1, W, H - 1, W, H) || sk_band_source_read(src, f, &b)) {
            bad++;
        } else {
            for (long i = 0; i < W * (H - 1); i++) {
                long k = i + W; /* rows 1 and 2 of the file */
                float v = fabsf(img->sci[k]) < FLT_MIN ? 0.0f : img->sci[k];
                float wt = img->weight[k] >= FLT_MIN ? img->weight[k] : 0.0f;
                uint16_t fl = img->flags[k] | (isfinite(v) && v >= 1e29 ? SK_FLAG_SATURATED : 0);
                float es, ev;
                uint16_t ef;
                expected(v, wt, 0.75f, fl, 1.0 / 0.8, f, &es, &ev, &ef);
                if (memcmp(&es, &b.sci[i], sizeof es) || memcmp(&ev, &b.var[i], sizeof ev) ||
                    ef != b.flags[i]) {
                    if (!bad)
                        tap_diag("file, width %ld pixel %ld: got %g %g %#x, want %g %g %#x", W, i, b.sci[i],
                                 b.var[i], b.flags[i], es, ev, ef);
                    bad++;
                }
            }
        }
        sk_band_free(&b);
        sk_band_source_close(src);
        sk_image_free(img);
    }
    return bad;
}

/* A 256 x 256 file read in bands out of row order: the pages of the rows
 * above a band are given back after it is read (plane_release), and a
 * band that goes back over them reads them again from the file; every
 * band bit for bit as the rule. */
static int check_file_revisit(void)
{
    const long W = 256, H = 256;
    char path[4200];
    snprintf(path, sizeof path, "%s/band_revisit.fits", tap_tmpdir());
    sk_image *img = sk_image_new(W, H);
    for (long i = 0; i < W * H; i++) {
        img->sci[i] = (float)((i * 7919) % 1000) * 0.37f - 50.0f;
        img->weight[i] = 0.5f + (float)(i % 13) * 0.25f;
        img->flags[i] = (uint16_t)(i % 97 == 0 ? SK_FLAG_BAD : 0);
    }
    sk_coadd_input in;
    sk_coadd_input_init(&in);
    in.path = path;
    in.background_level = 0.75;
    in.weight_scale = 0.8;
    sk_band_source *src = NULL;
    sk_band b;
    memset(&b, 0, sizeof b);
    static const long starts[] = {200, 16, 0, 200, 100};
    int bad = write_planes(path, img) || sk_band_source_open(&in, &src);
    for (int r = 0; !bad && r < 5; r++) {
        long y0 = starts[r], rows = 40 < H - y0 ? 40 : H - y0;
        if (sk_band_alloc(&b, 0, y0, W, rows, W, H) || sk_band_source_read(src, 1.3, &b)) {
            bad++;
            break;
        }
        for (long i = 0; i < W * rows; i++) {
            long k = i + y0 * W;
            float es, ev;
            uint16_t ef;
            expected(img->sci[k], img->weight[k], 0.75f, img->flags[k], 1.0 / 0.8, 1.3, &es, &ev, &ef);
            if (memcmp(&es, &b.sci[i], sizeof es) || memcmp(&ev, &b.var[i], sizeof ev) || ef != b.flags[i]) {
                if (!bad)
                    tap_diag("band at row %ld, pixel %ld: got %g %g %#x, want %g %g %#x", y0, i, b.sci[i],
                             b.var[i], b.flags[i], es, ev, ef);
                bad++;
            }
        }
    }
    sk_band_free(&b);
    sk_band_source_close(src);
    sk_image_free(img);
    return bad;
}

int main(void)
{
    tap_plan(4);
    ok(check_widths(1) == 0, "band of an image with a background map: bit for bit as the rule, "
                             "widths 1-11, NaN/Inf values, zero/negative/NaN/Inf/huge/tiny weights, "
                             "NaN/Inf levels");
    ok(check_widths(0) == 0, "the same with one background level");
    ok(check_file_widths() == 0, "from a file's SCI, WGT and FLG planes: bit for bit as the rule, subnormal "
                                 "and -0 values as +0, weights below the smallest normal as 0, SATURATE");
    ok(check_file_revisit() == 0, "a file read in bands out of row order, the rows above each band given back: "
                                  "every band bit for bit as the rule");
    return tap_done();
}
