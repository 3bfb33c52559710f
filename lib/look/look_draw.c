/* look_draw.c: an RGB canvas with clipped lines, circles, rectangles and text in a built-in 5x7 bitmap font. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/look.h"

sk_canvas *sk_canvas_new(long width, long height)
{
    if (width <= 0 || height <= 0 || (unsigned long)width > SIZE_MAX / 3 / (unsigned long)height) {
        sk_error(SK_EINPUT, "canvas: bad size %ld x %ld", width, height);
        return NULL;
    }
    sk_canvas *c = calloc(1, sizeof *c);
    if (c)
        c->rgb = calloc((size_t)width * (size_t)height * 3, 1);
    if (!c || !c->rgb) {
        free(c);
        sk_error(SK_EIO, "canvas: out of memory for %ld x %ld pixels", width, height);
        return NULL;
    }
    c->width = width;
    c->height = height;
    return c;
}

void sk_canvas_free(sk_canvas *c)
{
    if (!c)
        return;
    free(c->rgb);
    free(c);
}

static void put(sk_canvas *c, long x, long y, uint32_t rgb)
{
    if (x < 0 || y < 0 || x >= c->width || y >= c->height)
        return;
    uint8_t *p = c->rgb + 3 * ((size_t)y * (size_t)c->width + (size_t)x);
    p[0] = (uint8_t)(rgb >> 16);
    p[1] = (uint8_t)(rgb >> 8);
    p[2] = (uint8_t)rgb;
}

void sk_canvas_fill_rect(sk_canvas *c, long x0, long y0, long x1, long y1, uint32_t rgb)
{
    if (x0 > x1) {
        long t = x0; x0 = x1; x1 = t;
    }
    if (y0 > y1) {
        long t = y0; y0 = y1; y1 = t;
    }
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 >= c->width ? c->width - 1 : x1;
    y1 = y1 >= c->height ? c->height - 1 : y1;
    for (long y = y0; y <= y1; y++)
        for (long x = x0; x <= x1; x++)
            put(c, x, y, rgb);
}

void sk_canvas_line(sk_canvas *c, double x0, double y0, double x1, double y1, uint32_t rgb, int thick_px)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1))
        return;
    double dx = x1 - x0, dy = y1 - y0;
    double len = fabs(dx) > fabs(dy) ? fabs(dx) : fabs(dy);
    /* far outside: nothing to see, and no endless loop */
    if (len > 4.0 * (double)(c->width + c->height))
        return;
    long steps = (long)ceil(len);
    int h = thick_px > 1 ? thick_px / 2 : 0;
    for (long i = 0; i <= steps; i++) {
        double t = steps ? (double)i / (double)steps : 0.0;
        long x = lround(x0 + t * dx), y = lround(y0 + t * dy);
        for (int a = -h; a <= h; a++)
            for (int b = -h; b <= h; b++)
                put(c, x + a, y + b, rgb);
    }
}

void sk_canvas_circle(sk_canvas *c, double xc, double yc, double radius_px, uint32_t rgb)
{
    if (!isfinite(xc) || !isfinite(yc) || !isfinite(radius_px) || radius_px <= 0)
        return;
    if (xc + radius_px < 0 || yc + radius_px < 0 || xc - radius_px >= (double)c->width ||
        yc - radius_px >= (double)c->height)
        return;
    int n = (int)ceil(2.0 * M_PI * radius_px) + 8;
    for (int k = 0; k < n; k++) {
        double a = 2.0 * M_PI * k / n;
        put(c, lround(xc + radius_px * cos(a)), lround(yc + radius_px * sin(a)), rgb);
    }
}

/* The 5x7 font: 7 rows per glyph, the 5 low bits of each row, bit 4 at
 * the left. */
static const struct {
    char ch;
    uint8_t rows[7];
} font[] = {
    {' ', {0, 0, 0, 0, 0, 0, 0}},
    {'0', {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}},
    {'1', {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'2', {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}},
    {'3', {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}},
    {'4', {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}},
    {'5', {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}},
    {'6', {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}},
    {'7', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}},
    {'9', {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}},
    {'A', {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}},
    {'B', {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}},
    {'C', {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}},
    {'D', {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}},
    {'E', {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}},
    {'F', {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}},
    {'G', {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}},
    {'H', {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}},
    {'I', {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}},
    {'M', {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}},
    {'P', {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}},
    {'Q', {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}},
    {'R', {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}},
    {'S', {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}},
    {'T', {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}},
    {'X', {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04}},
    {'Z', {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}},
    {'.', {0, 0, 0, 0, 0, 0x0c, 0x0c}},
    {',', {0, 0, 0, 0, 0x0c, 0x04, 0x08}},
    {':', {0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0}},
    {'-', {0, 0, 0, 0x1f, 0, 0, 0}},
    {'+', {0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0}},
    {'/', {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0}},
    {'\'', {0x04, 0x04, 0x08, 0, 0, 0, 0}},
    {'"', {0x0a, 0x0a, 0x14, 0, 0, 0, 0}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
};

static const uint8_t *glyph(char ch)
{
    static const uint8_t box[7] = {0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f};
    if (ch >= 'a' && ch <= 'z')
        ch = (char)(ch - 'a' + 'A');
    for (size_t i = 0; i < sizeof font / sizeof *font; i++)
        if (font[i].ch == ch)
            return font[i].rows;
    return box;
}

long sk_canvas_text_width(const char *text, int scale)
{
    size_t n = strlen(text);
    if (scale < 1)
        scale = 1;
    return n ? (long)(6 * n - 1) * scale : 0;
}

long sk_canvas_text(sk_canvas *c, long x, long y, const char *text, int scale, uint32_t rgb)
{
    if (scale < 1)
        scale = 1;
    long x0 = x;
    for (const char *p = text; *p; p++) {
        const uint8_t *g = glyph(*p);
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (g[r] & (0x10 >> b))
                    sk_canvas_fill_rect(c, x + b * scale, y + r * scale, x + (b + 1) * scale - 1,
                                        y + (r + 1) * scale - 1, rgb);
        x += 6 * scale;
    }
    return x > x0 ? x - x0 - scale : 0;
}
