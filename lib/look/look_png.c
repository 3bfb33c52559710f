/* look_png.c: writing a canvas as an RGB PNG file with libpng (atomically, no time stamp) and reading a PNG's size. */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include "skystack/atomic.h"
#include "skystack/error.h"
#include "skystack/look.h"

/* libpng reports errors by longjmp; its message is kept for ours. */
typedef struct png_err {
    jmp_buf jmp;
    char message[256];
} png_err;

static void on_error(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->message, sizeof e->message, "%s", msg);
    longjmp(e->jmp, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Encode the canvas into the open file `fp`; SK_EIO with libpng's reason. */
static int encode(FILE *fp, const sk_canvas *c, const char *path)
{
    /* volatile: kept across the longjmp of an error */
    png_err *volatile err = NULL;
    png_err e;
    memset(&e, 0, sizeof e);
    err = &e;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        return sk_error(SK_EIO, "%s: out of memory for the PNG encoder", path);
    }
    if (setjmp(err->jmp)) {
        png_destroy_write_struct(&png, &info);
        return sk_error(SK_EIO, "%s: writing the PNG: %s", path, err->message);
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)c->width, (png_uint_32)c->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* speed over size: a quick-look is read by eye, not archived */
    png_set_compression_level(png, 3);
    png_set_filter(png, 0, PNG_FILTER_SUB);
    png_write_info(png, info);
    for (long y = 0; y < c->height; y++)
        png_write_row(png, c->rgb + 3 * (size_t)y * (size_t)c->width);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return SK_OK;
}

int sk_png_write(const char *path, const sk_canvas *c)
{
    if (!c || c->width <= 0 || c->height <= 0 || c->width > 0x7fffffffL || c->height > 0x7fffffffL)
        return sk_error(SK_EINPUT, "%s: no picture to write", path);
    sk_atomic *a = NULL;
    int rc = sk_atomic_open(path, &a);
    if (rc)
        return rc;
    rc = encode(a->fp, c, path);
    if (rc) {
        sk_atomic_abort(a);
        return rc;
    }
    return sk_atomic_commit(a);
}

int sk_png_size(const char *path, long *width, long *height)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sk_error(errno == ENOENT ? SK_EINPUT : SK_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char b[24];
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    /* signature, then the IHDR chunk: length, "IHDR", width, height */
    if (got < sizeof b || png_sig_cmp(b, 0, 8) != 0 || memcmp(b + 12, "IHDR", 4) != 0)
        return sk_error(SK_EINPUT, "%s: not a PNG file", path);
    *width = (long)b[16] << 24 | (long)b[17] << 16 | (long)b[18] << 8 | (long)b[19];
    *height = (long)b[20] << 24 | (long)b[21] << 16 | (long)b[22] << 8 | (long)b[23];
    return SK_OK;
}
