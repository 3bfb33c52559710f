/* measure.c: per-object measurement: isophotal barycentre and moments, windowed centroid and its error, FWHM, circular apertures with exact pixel overlap, Kron radius and AUTO flux, errors, SNR and flags. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "extract_priv.h"
#include "numeric/stats.h"
#include "extract_internal.h"

#define FWHM_PER_SIGMA 2.3548200450309493
#define WIN_CENTROID_MIN_SIGMA_PX 0.9  /* the centroid's window: at least this sigma */

/* ---- exact overlap of a circle and a rectangle ---- */

/* Area between a chord of the circle and its arc: with s the half chord
 * over r and theta = 2 asin(s), r^2 (theta - sin theta) / 2 =
 * r^2 (asin(s) - s sqrt(1 - s^2)). */
static double area_arc(double x1, double y1, double x2, double y2, double r)
{
    double a = sqrt((x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1));
    double s = 0.5 * a / r;
    if (s > 1)
        s = 1;
    return r * r * (asin(s) - s * sqrt(1.0 - s * s));
}

static double area_triangle(double x1, double y1, double x2, double y2, double x3, double y3)
{
    return 0.5 * fabs(x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2));
}

static double sq_root(double v)
{
    return v > 0 ? sqrt(v) : 0.0;
}

/* Rectangle in the first quadrant (0 <= x0 < x1, 0 <= y0 < y1). */
static double overlap_core(double x0, double y0, double x1, double y1, double r)
{
    double r2 = r * r;
    if (x0 * x0 + y0 * y0 >= r2)
        return 0.0;
    if (x1 * x1 + y1 * y1 <= r2)
        return (x1 - x0) * (y1 - y0);
    double d1 = x1 * x1 + y0 * y0, d2 = x0 * x0 + y1 * y1;
    if (d1 < r2 && d2 < r2) {
        double xa = sq_root(r2 - y1 * y1), ya = y1;
        double xb = x1, yb = sq_root(r2 - x1 * x1);
        return (x1 - x0) * (y1 - y0) - area_triangle(xa, ya, xb, yb, x1, y1) +
               area_arc(xa, ya, xb, yb, r);
    }
    if (d1 < r2) {
        double xa = x0, ya = sq_root(r2 - x0 * x0);
        double xb = x1, yb = sq_root(r2 - x1 * x1);
        return area_arc(xa, ya, xb, yb, r) + area_triangle(xa, ya, x0, y0, x1, y0) +
               area_triangle(xa, ya, xb, y0, xb, yb);
    }
    if (d2 < r2) {
        double xa = sq_root(r2 - y0 * y0), ya = y0;
        double xb = sq_root(r2 - y1 * y1), yb = y1;
        return area_arc(xa, ya, xb, yb, r) + area_triangle(xa, ya, x0, y0, x0, y1) +
               area_triangle(xa, ya, x0, yb, xb, yb);
    }
    double xa = sq_root(r2 - y0 * y0), ya = y0;
    double xb = x0, yb = sq_root(r2 - x0 * x0);
    return area_arc(xa, ya, xb, yb, r) + area_triangle(xa, ya, xb, yb, x0, y0);
}

double sk_circle_rect_overlap(double x0, double y0, double x1, double y1, double r)
{
    if (x0 >= 0) {
        if (y0 >= 0)
            return overlap_core(x0, y0, x1, y1, r);
        if (y1 <= 0)
            return overlap_core(-y1, x0, -y0, x1, r);
        return sk_circle_rect_overlap(x0, y0, x1, 0, r) + sk_circle_rect_overlap(x0, 0, x1, y1, r);
    }
    if (x1 <= 0) {
        if (y0 >= 0)
            return overlap_core(-x1, y0, -x0, y1, r);
        if (y1 <= 0)
            return overlap_core(-x1, -y1, -x0, -y0, r);
        return sk_circle_rect_overlap(x0, y0, x1, 0, r) + sk_circle_rect_overlap(x0, 0, x1, y1, r);
    }
    return sk_circle_rect_overlap(x0, y0, 0, y1, r) + sk_circle_rect_overlap(0, y0, x1, y1, r);
}

/* ---- measurement ---- */

typedef struct mctx {
    const sk_image *img;
    const sk_background *bg;
    const sk_detection *det;
    const sk_measure_params *p;
    const float *var;
    const long *which;
    sk_source *out;
    double *aper_flux, *aper_err; /* n*naper each */
    double *radii;   /* naper radii, then the SNR radius */
    const long *order; /* the order in which to measure them (cache locality) */
    /* the plane photometry is measured on: this one, or in dual-image
       mode the measurement image (its own img, bg, var and gain; the
       same objects, segmentation and radii) */
    const struct mctx *phot;
    double nf2;      /* sk_image_noise_factor(img)^2: the sky-noise sums' excess */
} mctx;

typedef struct {
    double val, var;
    unsigned flags;  /* SK_SRC_NEIGHBOURS / SK_SRC_TRUNCATED picked up */
    int present;     /* 0: no value at all (counts as 0) */
} pixval;

static inline int usable_at(const mctx *M, long x, long y)
{
    return x >= 0 && y >= 0 && x < M->img->width && y < M->img->height &&
           M->var[y * M->img->width + x] > 0;
}

static inline int other_at(const mctx *M, long x, long y, long self)
{
    int32_t s = M->det->segmap[y * M->img->width + x];
    return s != 0 && s != (int32_t)(self + 1);
}

/* The value of pixel (x, y) for measuring object `self` centred on (xc, yc):
 * pixels of other objects and pixels without data are replaced by the pixel
 * symmetric about the centre when that one is clean, else by 0. */
static inline pixval fetch(const mctx *M, long self, double xc, double yc, long x, long y)
{
    pixval pv = { 0, 0, 0, 1 };
    long w = M->img->width;
    int ok = usable_at(M, x, y);
    if (ok && !other_at(M, x, y, self)) {
        long i = y * w + x;
        pv.val = M->img->sci[i] - M->bg->level[i];
        pv.var = M->var[i];
        return pv;
    }
    pv.flags = ok ? SK_SRC_NEIGHBOURS : SK_SRC_TRUNCATED;
    long mx = lround(2 * xc - (double)x), my = lround(2 * yc - (double)y);
    if (usable_at(M, mx, my) && !other_at(M, mx, my, self)) {
        long i = my * w + mx;
        pv.val = M->img->sci[i] - M->bg->level[i];
        pv.var = M->var[i];
    } else {
        pv.present = 0;
    }
    return pv;
}

/* The pixels around one object as fetch() gives them, mirrored about its
 * barycentre, computed once and read by every measurement of the object;
 * pixels beyond it are fetched directly. */
typedef struct {
    long x0, y0, w, h, r;     /* a disc of radius r about (x0 + r, y0 + r) */
    double xm, ym;            /* mirror centre */
    /* w*h each (row by row): value and variance; present: 1 value, 0 no
       value (counts as 0), 2 not filled (outside the disc); flags:
       SK_SRC_NEIGHBOURS / SK_SRC_TRUNCATED picked up by fetch() */
    float *val, *var;
    uint8_t *present, *flags;
    size_t cap;
    /* per stamp row, running sums over the pixels before column i
       (w + 1 per row): value, variance and count of the present pixels,
       and the counts of pixels with SK_SRC_NEIGHBOURS and with
       SK_SRC_TRUNCATED (packed: CUM_NB + CUM_TR * count) */
    double *cum_val, *cum_var;
    int64_t *cum_n, *cum_fl;
    size_t cum_cap;
    int cum_ready;
} stamp;

#define CUM_NB 1
#define CUM_TR ((int64_t)1 << 32)

static int stamp_fill(stamp *S, const mctx *M, long self, double xm, double ym, double radius)
{
    long r = (long)ceil(radius) + 1;
    S->xm = xm;
    S->ym = ym;
    S->r = r;
    S->x0 = lround(xm) - r;
    S->y0 = lround(ym) - r;
    S->w = S->h = 2 * r + 1;
    S->cum_ready = 0;
    size_t need = (size_t)(S->w * S->h);
    if (need > S->cap) {
        /* one block: val, var (floats), then present, flags (bytes) */
        float *n = realloc(S->val, need * (2 * sizeof(float) + 2));
        if (!n) {
            S->w = S->h = 0;  /* fall back to direct fetches */
            return 0;
        }
        S->val = n;
        S->cap = need;
    }
    S->var = S->val + S->cap;
    S->present = (uint8_t *)(S->var + S->cap);
    S->flags = S->present + S->cap;
    const long w = M->img->width, h = M->img->height;
    const float *restrict sci = M->img->sci, *restrict level = M->bg->level, *restrict var = M->var;
    const int32_t *restrict seg = M->det->segmap;
    const int32_t me = (int32_t)(self + 1);
    /* only the disc of the radius: corners are fetched if ever needed */
    for (long j = 0; j < S->h; j++) {
        long o = j * S->w, dy = j - r, y = S->y0 + j;
        long half = (long)floor(sqrt((double)(r * r - dy * dy)));
        float *restrict sv = S->val + o, *restrict sr = S->var + o;
        uint8_t *restrict sp = S->present + o, *restrict sf = S->flags + o;
        memset(sp, 2, (size_t)S->w);  /* not filled */
        long i0 = r - half, i1 = r + half;
        /* the part inside the image, without a branch per pixel; pixels
           without a value or of another object are mended below */
        long a = i0, b = i1;
        if (y >= 0 && y < h) {
            if (S->x0 + a < 0)
                a = -S->x0;
            if (S->x0 + b > w - 1)
                b = w - 1 - S->x0;
            const float *restrict ps = sci + y * w + S->x0, *restrict pl = level + y * w + S->x0;
            const float *restrict pv = var + y * w + S->x0;
            const int32_t *restrict pg = seg + y * w + S->x0;
            for (long i = a; i <= b; i++) {
                sv[i] = ps[i] - pl[i];
                sr[i] = pv[i];
                sp[i] = pv[i] > 0 && (pg[i] == 0) | (pg[i] == me);
                sf[i] = 0;
            }
        } else {
            a = i1 + 1;
            b = i1;
        }
        for (long i = i0; i <= i1; i++) {
            if (i >= a && i <= b && sp[i])
                continue;
            pixval q = fetch(M, self, xm, ym, S->x0 + i, y);
            sv[i] = (float)q.val;
            sr[i] = (float)q.var;
            sp[i] = (uint8_t)q.present;
            sf[i] = (uint8_t)q.flags;
        }
    }
    return 1;
}

/* The per-row running sums of the stamp (for the apertures). */
static int stamp_cumulate(stamp *S)
{
    if (S->cum_ready)
        return 1;
    size_t need = (size_t)((S->w + 1) * S->h);
    if (need > S->cum_cap) {
        double *a = realloc(S->cum_val, sizeof *a * 2 * need);
        if (a)
            S->cum_val = a;
        int64_t *b = a ? realloc(S->cum_n, sizeof *b * 2 * need) : NULL;
        if (!b)
            return 0;
        S->cum_n = b;
        S->cum_cap = need;
    }
    S->cum_var = S->cum_val + S->cum_cap;
    S->cum_fl = S->cum_n + S->cum_cap;
    for (long j = 0; j < S->h; j++) {
        const float *pv = S->val + j * S->w, *pr = S->var + j * S->w;
        const uint8_t *pp = S->present + j * S->w, *pf = S->flags + j * S->w;
        size_t o = (size_t)(j * (S->w + 1));
        double *cv = S->cum_val + o, *cr = S->cum_var + o;
        int64_t *cn = S->cum_n + o, *cf = S->cum_fl + o;
        double sv = 0, sr = 0;
        int64_t n = 0, fl = 0;
        cv[0] = cr[0] = 0;
        cn[0] = cf[0] = 0;
        for (long i = 0; i < S->w; i++) {
            if (pp[i] == 1) {
                sv += pv[i];
                sr += pr[i];
                n++;
            }
            if (pf[i] && pp[i] != 2)
                fl += (pf[i] & SK_SRC_NEIGHBOURS ? CUM_NB : 0) + (pf[i] & SK_SRC_TRUNCATED ? CUM_TR : 0);
            cv[i + 1] = sv;
            cr[i + 1] = sr;
            cn[i + 1] = n;
            cf[i + 1] = fl;
        }
    }
    S->cum_ready = 1;
    return 1;
}

static inline pixval sget(const stamp *S, const mctx *M, long self, long x, long y)
{
    long i = x - S->x0, j = y - S->y0;
    if (i >= 0 && j >= 0 && i < S->w && j < S->h) {
        long k = j * S->w + i;
        if (S->present[k] != 2) {
            pixval pv = { S->val[k], S->var[k], S->flags[k], S->present[k] };
            return pv;
        }
    }
    return fetch(M, self, S->xm, S->ym, x, y);
}

/* Pixel (x, y) for the windowed measurements: from the stamp directly
 * when the whole window lies in its disc (`inside`), else through sget.
 * Returns whether the pixel has a value. */
static inline int win_px(const stamp *S, const mctx *M, long self, int inside, long x, long y,
                         double *val, double *var)
{
    if (inside) {
        long k = (y - S->y0) * S->w + (x - S->x0);
        *val = S->val[k];
        *var = S->var[k];
        return S->present[k] == 1;
    }
    pixval pv = sget(S, M, self, x, y);
    *val = pv.val;
    *var = pv.var;
    return pv.present;
}

/* Does the circle of radius `rad` about (xc, yc) lie in the stamp's disc? */
static inline int in_stamp(const stamp *S, double xc, double yc, double rad)
{
    return S->w > 0 && hypot(xc - (double)(S->x0 + S->r), yc - (double)(S->y0 + S->r)) + rad <= (double)S->r;
}

/* The columns of row y that can be within rad of (xc, yc), inside [xa, xb]
 * (a pixel wider on each side: the caller tests the distance); 0 when none. */
static inline int circle_row(double xc, double yc, double rad, long y, long xa, long xb, long *x0, long *x1)
{
    double dy = (double)y - yc, rest = rad * rad - dy * dy;
    if (rest < 0)
        return 0;
    double half = sqrt(rest);
    *x0 = (long)floor(xc - half) - 1;
    *x1 = (long)ceil(xc + half) + 1;
    if (*x0 < xa)
        *x0 = xa;
    if (*x1 > xb)
        *x1 = xb;
    return *x1 >= *x0;
}

/* Gaussian window weights exp(-(i - c)^2 / 2 s^2) for i = a..b. */
static void window_weights(long a, long b, double c, double s, double *w)
{
    for (long i = a; i <= b; i++) {
        double d = (double)i - c;
        w[i - a] = exp(-0.5 * d * d / (s * s));
    }
}

/* The error of a flux summed over area_px pixels: the pixels' variances,
 * the background level's error over the area, and the source's photon
 * noise (gain in e-/ADU; none when 0). */
static double flux_error(double var_sum, double area_px, double level_err, double flux, double gain)
{
    return sqrt(var_sum + area_px * area_px * level_err * level_err +
                (gain > 0 && flux > 0 ? flux / gain : 0));
}

/* ---- isophotal quantities ---- */

/* Sums over an object's isophotal pixels with data. */
typedef struct {
    double pos_sum, pos_sum_x, pos_sum_y; /* of the positive values, and of value * x, value * y */
    double flux, flux_var;                /* of all values, and of their variances */
    double peak;                          /* the largest value (-inf when none) */
    long peak_i;                          /* its pixel's index in the image */
} iso_sums;

/* The flags isophotal pixel (x, y) (index i) brings: its own image flags,
 * the image edge, and neighbours without data (flagged or off the edge). */
static unsigned iso_pixel_flags(const mctx *M, long x, long y, long i)
{
    const sk_image *img = M->img;
    long w = img->width, h = img->height;
    unsigned flags = 0;
    uint16_t f = img->flags[i];
    if (f & SK_FLAG_SATURATED)
        flags |= SK_SRC_SATURATED;
    if (f & ~(SK_FLAG_SATURATED | SK_FLAGS_INFORMATIONAL))
        flags |= SK_SRC_FLAGGED;
    if (x == 0 || y == 0 || x == w - 1 || y == h - 1)
        flags |= SK_SRC_EDGE;
    for (int a = 0; a < 4; a++) {
        long xx = x + (a == 0) - (a == 1), yy = y + (a == 2) - (a == 3);
        if (xx < 0 || yy < 0 || xx >= w || yy >= h)
            continue;
        long ii = yy * w + xx;
        if (M->var[ii] > 0)
            continue;
        if (img->flags[ii] & ~(SK_FLAG_EDGE | SK_FLAG_ZEROWEIGHT | SK_FLAGS_INFORMATIONAL))
            flags |= SK_SRC_FLAGGED;
        else
            flags |= SK_SRC_EDGE;
    }
    return flags;
}

/* The object's bounding box (into s) and isophotal sums; returns the flags
 * its pixels bring. */
static unsigned iso_accumulate(const mctx *M, const sk_object *ob, sk_source *s, iso_sums *is)
{
    const sk_image *img = M->img;
    long w = img->width;
    unsigned flags = 0;
    double sw = 0, sx = 0, sy = 0, flux = 0, fvar = 0, peak = -INFINITY;
    long peak_i = ob->pix[0];
    s->xmin = w;
    s->ymin = img->height;
    s->xmax = -1;
    s->ymax = -1;
    for (long j = 0; j < ob->npix; j++) {
        long i = ob->pix[j], x = i % w, y = i / w;
        if (x < s->xmin) s->xmin = x;
        if (x > s->xmax) s->xmax = x;
        if (y < s->ymin) s->ymin = y;
        if (y > s->ymax) s->ymax = y;
        flags |= iso_pixel_flags(M, x, y, i);
        if (!(M->var[i] > 0))
            continue;
        double v = img->sci[i] - M->bg->level[i];
        flux += v;
        fvar += M->var[i];
        if (v > peak) {
            peak = v;
            peak_i = i;
        }
        if (v > 0) {
            sw += v;
            sx += v * (double)x;
            sy += v * (double)y;
        }
    }
    *is = (iso_sums){ sw, sx, sy, flux, fvar, peak, peak_i };
    return flags;
}

/* Barycentre, second moments (at least those of a uniform pixel), the
 * ellipse they describe, and the isophotal flux and its error. */
static void iso_shape(const mctx *M, const sk_object *ob, const iso_sums *is, sk_source *s)
{
    const sk_image *img = M->img;
    long w = img->width;
    double sw = is->pos_sum;
    s->npix = ob->npix;
    s->peak = isfinite(is->peak) ? is->peak : 0;
    if (sw > 0) {
        s->x = is->pos_sum_x / sw;
        s->y = is->pos_sum_y / sw;
    } else {
        s->x = 0.5 * (double)(s->xmin + s->xmax);
        s->y = 0.5 * (double)(s->ymin + s->ymax);
    }
    double x2 = 0, y2 = 0, xy = 0;
    if (sw > 0) {
        for (long j = 0; j < ob->npix; j++) {
            long i = ob->pix[j];
            if (!(M->var[i] > 0))
                continue;
            double v = img->sci[i] - M->bg->level[i];
            if (v <= 0)
                continue;
            double dx = (double)(i % w) - s->x, dy = (double)(i / w) - s->y;
            x2 += v * dx * dx;
            y2 += v * dy * dy;
            xy += v * dx * dy;
        }
        x2 /= sw;
        y2 /= sw;
        xy /= sw;
    }
    if (x2 * y2 - xy * xy < 1.0 / 144) {
        x2 += 1.0 / 12;
        y2 += 1.0 / 12;
    }
    s->x2 = x2;
    s->y2 = y2;
    s->xy = xy;
    double hsum = 0.5 * (x2 + y2), hdif = sqrt(0.25 * (x2 - y2) * (x2 - y2) + xy * xy);
    s->a_px = sqrt(hsum + hdif);
    s->b_px = sq_root(hsum - hdif);
    s->theta_deg = 0.5 * atan2(2 * xy, x2 - y2) * 180.0 / M_PI;
    s->flux_iso = is->flux;
    s->flux_iso_err = flux_error(M->nf2 * is->flux_var, (double)ob->npix, M->bg->level_err, is->flux, M->p->gain);
}

/* ---- windowed measurements (Source Extractor's XWIN, YWIN) ---- */

/* The Gaussian window: its sigma (from the image FWHM) and the radius it
 * is truncated at, both in pixels; returns the side of the square that
 * holds every window's pixels. */
static long window_size(const sk_measure_params *p, double *sigma_px, double *radius_px)
{
    *sigma_px = p->fwhm_px / FWHM_PER_SIGMA;
    *radius_px = 4.0 * *sigma_px + 1.0;
    double rc = 4.0 * fmax(*sigma_px, WIN_CENTROID_MIN_SIGMA_PX) + 1.0;
    return 2 * (long)ceil(fmax(*radius_px, rc)) + 3;
}

/* The window of the centroid: the image's, but at least
 * WIN_CENTROID_MIN_SIGMA_PX wide. A window much narrower than a pixel's
 * reach samples the light of an undersampled star too coarsely: its fixed
 * point is pulled towards the centre of the brightest pixel, by up to
 * 0.23 px for a Gaussian star of FWHM 1.2 px under a window as wide
 * (0.03 px under a window of sigma 0.9 px, 0.02 px at 1 px, whose greater
 * reach takes more of the neighbours' light in crowded fields). */
static void centroid_window(double sig_w, double *sigma_px, double *radius_px)
{
    *sigma_px = fmax(sig_w, WIN_CENTROID_MIN_SIGMA_PX);
    *radius_px = 4.0 * *sigma_px + 1.0;
}

/* The pixels with a value in the window about one centre, row by row:
 * offsets from the centre, window weight, value and variance. */
typedef struct {
    double *dx, *dy, *wt, *val, *var;
    long n;
    long x0, y0, nx, ny;  /* the columns and rows the window spans */
} winpix;

/* Walk the window of radius rwin and sigma sig_w about (xc, yc), row by
 * row: with W, collect its pixels (offsets, weight, value, variance);
 * without, only the centroid's sums into sums[3] (sum of w v, of w v dx
 * and of w v dy, in the same order as over W's pixels). */
static void window_walk(const mctx *M, long self, const stamp *stp, double xc, double yc,
                        double rwin, double sig_w, winpix *W, double *sums)
{
    long nwin = 2 * (long)ceil(rwin) + 3;
    double wx[nwin], wy[nwin];
    long xa = (long)floor(xc - rwin), xb = (long)ceil(xc + rwin);
    long ya = (long)floor(yc - rwin), yb = (long)ceil(yc + rwin);
    window_weights(xa, xb, xc, sig_w, wx);
    window_weights(ya, yb, yc, sig_w, wy);
    int inside = in_stamp(stp, xc, yc, rwin);
    long n = 0;
    double S = 0, sxw = 0, syw = 0;
    for (long y = ya; y <= yb; y++) {
        long x0, x1;
        if (!circle_row(xc, yc, rwin, y, xa, xb, &x0, &x1))
            continue;
        for (long x = x0; x <= x1; x++) {
            double dx = (double)x - xc, dy = (double)y - yc, r2 = dx * dx + dy * dy;
            if (r2 > rwin * rwin)
                continue;
            double val, var;
            if (!win_px(stp, M, self, inside, x, y, &val, &var))
                continue;
            double wt = wx[x - xa] * wy[y - ya];
            if (!W) {
                S += wt * val;
                sxw += wt * val * dx;
                syw += wt * val * dy;
                continue;
            }
            W->dx[n] = dx;
            W->dy[n] = dy;
            W->wt[n] = wt;
            W->val[n] = val;
            W->var[n] = var;
            n++;
        }
    }
    if (!W) {
        sums[0] = S;
        sums[1] = sxw;
        sums[2] = syw;
        return;
    }
    W->n = n;
    W->x0 = xa;
    W->y0 = ya;
    W->nx = xb - xa + 1;
    W->ny = yb - ya + 1;
}

/* Collect the window of radius rwin and sigma sig_w about (xc, yc). */
static void window_gather(const mctx *M, long self, const stamp *stp, double xc, double yc,
                          double rwin, double sig_w, winpix *W)
{
    window_walk(M, self, stp, xc, yc, rwin, sig_w, W, NULL);
}

/* Iterate the windowed centroid from the barycentre; 1 with (xc, yc) where
 * it converged (to 0.01 px at worst), 0 when it did not or wandered off. */
static int windowed_centroid(const mctx *M, long self, const stamp *stp, const sk_source *s,
                             double rwin, double sig_w, double *xc_out, double *yc_out)
{
    double xc = s->x, yc = s->y, last = 1e30;
    for (int it = 0; it < 32; it++) {
        double sums[3];
        window_walk(M, self, stp, xc, yc, rwin, sig_w, NULL, sums);
        double S = sums[0], sxw = sums[1], syw = sums[2];
        if (!(S > 0))
            return 0;
        /* the full step of a Gaussian profile as wide as the window
           first; then half of it: a star much sharper than the window
           (undersampled) steps back and forth across its centre */
        double k = it < 16 ? 2.0 : 1.0, ddx = k * sxw / S, ddy = k * syw / S;
        xc += ddx;
        yc += ddy;
        if (hypot(xc - s->x, yc - s->y) > M->p->fwhm_px + 2 * s->a_px)
            return 0;
        last = ddx * ddx + ddy * ddy;
        if (last < 4e-8) {
            *xc_out = xc;
            *yc_out = yc;
            return 1;
        }
    }
    /* still moving, but by less than a hundredth of a pixel */
    if (last < 1e-4) {
        *xc_out = xc;
        *yc_out = yc;
        return 1;
    }
    return 0;
}

/* Weighted sums over the window at the final centroid. */
typedef struct {
    double flux, flux_var;   /* sum of w v, and its variance */
    double err_x, err_y;     /* variances of the centroid's numerators */
    double mxx, myy, mxy;    /* second moments (normalised by flux when flux > 0) */
} win_moments;

static void window_moments(const winpix *W, double gain, win_moments *m)
{
    double ex = 0, ey = 0, mxx = 0, myy = 0, mxy = 0, wsum = 0, wvar = 0;
    for (long q = 0; q < W->n; q++) {
        double dx = W->dx[q], dy = W->dy[q], wt = W->wt[q], val = W->val[q];
        double vv = W->var[q] + (gain > 0 && val > 0 ? val / gain : 0);
        wsum += wt * val;
        wvar += wt * wt * vv;
        ex += wt * wt * vv * dx * dx;
        ey += wt * wt * vv * dy * dy;
        mxx += wt * val * dx * dx;
        myy += wt * val * dy * dy;
        mxy += wt * val * dx * dy;
    }
    if (wsum > 0) {
        mxx /= wsum;
        myy /= wsum;
        mxy /= wsum;
    } else {
        mxx = myy = mxy = 0;
    }
    *m = (win_moments){ wsum, wvar, ex, ey, mxx, myy, mxy };
}

/* The sigma (px) of the PSF core the tests for objects sharper than the
 * PSF compare with: the image FWHM's, or the core's where the stars are
 * sharper than the image FWHM's lower limit. */
static double core_sigma(const sk_measure_params *p)
{
    double f = p->core_fwhm_px > 0 && p->core_fwhm_px < p->fwhm_px ? p->core_fwhm_px : p->fwhm_px;
    return f / FWHM_PER_SIGMA;
}

/* The windowed second moment along (ux, uy) that the image PSF (a
 * Gaussian of sigma sig_psf, integrated over the pixels) has when centred
 * at (xc, yc) and seen through the pixels of W: for an undersampled star
 * it depends on where the star falls within its pixel (a star centred on
 * a pixel of FWHM 1.2 px has less than half the moment of the continuous
 * profile), so it is computed at the object's own sub-pixel position. */
static double psf_window_moment(const winpix *W, double xc, double yc, double sig_psf,
                                double ux, double uy)
{
    if (W->n <= 0)
        return 0;
    long xa = W->x0, ya = W->y0, nx = W->nx, ny = W->ny;
    double gx[nx], gy[ny];
    sk_pix_gauss_row(xa, nx, xc, sig_psf, gx);
    sk_pix_gauss_row(ya, ny, yc, sig_psf, gy);
    double num = 0, den = 0;
    for (long q = 0; q < W->n; q++) {
        long ix = lround(W->dx[q] + xc) - xa, iy = lround(W->dy[q] + yc) - ya;
        double P = W->wt[q] * gx[ix] * gy[iy];
        double u = W->dx[q] * ux + W->dy[q] * uy;
        num += P * u * u;
        den += P;
    }
    return den > 0 ? num / den : 0;
}

/* Is the object sharper than the PSF along the minor axis of its windowed
 * moments, by more than twice the error of that moment (a cosmic ray, a
 * hot pixel)? lmin is the minor-axis moment; the PSF's is taken at the
 * object's position (xc, yc) through the same pixels and window. */
static int sharper_than_psf(const winpix *W, const win_moments *m, double lmin, double xc,
                            double yc, double sig_psf)
{
    double th = 0.5 * atan2(2 * m->mxy, m->mxx - m->myy) + 0.5 * M_PI;  /* minor axis */
    double ux = cos(th), uy = sin(th), ev = 0;
    for (long q = 0; q < W->n; q++) {
        double wt = W->wt[q];
        double u = W->dx[q] * ux + W->dy[q] * uy, t = u * u - lmin;
        ev += wt * wt * W->var[q] * t * t;
    }
    double lmin_err = sqrt(ev) / m->flux;
    return lmin + 2 * lmin_err < 0.4 * psf_window_moment(W, xc, yc, sig_psf, ux, uy);
}

/* Errors of the windowed centroid, the windowed SNR (shape_only: there are
 * no apertures), the FWHM from the windowed moments with the window
 * deconvolved, and the test for objects sharper than the PSF; returns the
 * flags it sets. */
static unsigned windowed_shape(const mctx *M, const winpix *W, double sig_psf, sk_source *s)
{
    win_moments m;
    window_moments(W, M->p->gain, &m);
    double wsum = m.flux;
    if (M->p->shape_only)
        s->snr = m.flux_var > 0 ? wsum / sqrt(m.flux_var) : 0;
    if (wsum > 0) {
        s->xwin_err = 2 * sqrt(m.err_x) / wsum;
        s->ywin_err = 2 * sqrt(m.err_y) / wsum;
    } else {
        s->xwin_err = s->ywin_err = sqrt(s->x2 / (s->npix > 0 ? s->npix : 1));
    }
    double ms = 0.5 * (m.mxx + m.myy), md = sqrt(0.25 * (m.mxx - m.myy) * (m.mxx - m.myy) + m.mxy * m.mxy);
    double lmax = ms + md, lmin = ms - md;
    double sw2 = sig_psf * sig_psf;
    if (wsum > 0 && lmax > 0 && lmax < 0.9 * sw2) {
        double s1 = lmax * sw2 / (sw2 - lmax) - 1.0 / 12;
        double s2 = lmin > 0 ? lmin * sw2 / (sw2 - lmin) - 1.0 / 12 : 0;
        double sm = 0.5 * (s1 + s2);
        s->fwhm_px = sm > 0 ? FWHM_PER_SIGMA * sqrt(sm) : 0;
    } else {
        s->fwhm_px = FWHM_PER_SIGMA * sqrt(0.5 * (s->x2 + s->y2));
    }
    if (wsum > 0 && md >= 0 && sharper_than_psf(W, &m, lmin, s->xwin, s->ywin, core_sigma(M->p)))
        return SK_SRC_ARTIFACT;
    return 0;
}

/* Is the peak pixel (index peak_i, value peak) much sharper than the PSF of
 * sigma sig_psf along a row, column or diagonal? Its two neighbours on it
 * are compared with what the PSF, integrated over the pixels and centred
 * where the object is (xc, yc), puts there relative to the peak pixel:
 * their mean against the model's mean, or on a residual image the larger
 * against the model's smaller. They must be below half of it by three
 * times their noise (a star much sharper than a pixel has neighbours too
 * faint to tell from a single hot pixel's). Then SK_SRC_ARTIFACT. */
static unsigned peak_sharpness_flags(const mctx *M, long peak_i, double peak, double sig_psf,
                                     double xc, double yc)
{
    const sk_image *img = M->img;
    long w = img->width, px = peak_i % w, py = peak_i / w;
    static const int dirs[4][2] = { { 1, 0 }, { 0, 1 }, { 1, 1 }, { 1, -1 } };
    double gx[3], gy[3];  /* the PSF's share in the columns px-1..px+1, rows py-1..py+1 */
    sk_pix_gauss_row(px - 1, 3, xc, sig_psf, gx);
    sk_pix_gauss_row(py - 1, 3, yc, sig_psf, gy);
    double varp = M->var[peak_i], gpeak = gx[1] * gy[1];
    unsigned flags = 0;
    for (int a = 0; a < 4 && varp > 0 && gpeak > 0; a++) {
        int ddx = dirs[a][0], ddy = dirs[a][1];
        long x1 = px + ddx, y1 = py + ddy;
        long x0 = px - ddx, y0 = py - ddy;
        if (!usable_at(M, x1, y1) || !usable_at(M, x0, y0))
            continue;
        long i1 = y1 * w + x1, i0 = y0 * w + x0;
        double v1 = img->sci[i1] - M->bg->level[i1], v0 = img->sci[i0] - M->bg->level[i0];
        double e1 = gx[1 + ddx] * gy[1 + ddy] / gpeak, e0 = gx[1 - ddx] * gy[1 - ddy] / gpeak;
        double m = M->p->residual ? fmax(v1, v0) : 0.5 * (v1 + v0);
        double expect = M->p->residual ? fmin(e1, e0) : 0.5 * (e1 + e0);
        double noise_m = M->p->residual ? sqrt(fmax(M->var[i1], M->var[i0]))
                                        : 0.5 * sqrt(M->var[i1] + M->var[i0]);
        double noise = sqrt(varp + noise_m * noise_m);
        if (0.5 * expect * peak - m > 3 * noise_m && peak - m > 5 * noise)
            flags |= SK_SRC_ARTIFACT;
    }
    return flags;
}

/* ---- circular apertures ---- */

/* The circular apertures of one object (the naper photometric ones, then
 * the 1-FWHM SNR aperture) and their sums with exact pixel overlap f:
 * sum f v, sum f^2 var and the area sum f of the pixels with a value. */
typedef struct {
    int nr;
    const double *radius_px;
    double *r2;          /* radius^2 */
    int *same_as;        /* an earlier aperture of the same radius, or -1 */
    double *flux, *var, *area;
    double rmax2;        /* the largest radius^2 */
    unsigned flags;      /* SK_SRC_NEIGHBOURS / SK_SRC_TRUNCATED picked up */
} aper_sums;

/* One image row of the apertures about (xc, yc): its edges' offsets from
 * yc, and the offsets of its nearest and farthest points (in y). */
typedef struct {
    long y;
    double ry0, ry1, near_dy, far_dy;
} aper_row;

/* Row r of aperture a from the stamp's running sums: the pixels wholly
 * inside from the sums, those the circle crosses one by one. */
static void aper_row_from_sums(const stamp *stp, double xc, const aper_row *r, int a, aper_sums *A)
{
    double near = A->r2[a] - r->near_dy * r->near_dy;
    if (near <= 0)
        return;
    long j = r->y - stp->y0;
    const long row = j * stp->w - stp->x0;
    size_t o = (size_t)(j * (stp->w + 1));
    /* pixels touched: |x - xc| - 1/2 < sqrt(near); wholly
       inside: |x - xc| + 1/2 <= sqrt(r^2 - fy^2) */
    double hn = sqrt(near), far = A->r2[a] - r->far_dy * r->far_dy;
    long xt0 = (long)floor(xc - 0.5 - hn) + 1, xt1 = (long)ceil(xc + 0.5 + hn) - 1;
    long xi0 = xt1 + 1, xi1 = xt1;
    if (far > 0) {
        double hf = sqrt(far);
        xi0 = (long)ceil(xc + 0.5 - hf);
        xi1 = (long)floor(xc - 0.5 + hf);
        if (xi0 < xt0)
            xi0 = xt0;
        if (xi1 > xt1)
            xi1 = xt1;
        if (xi1 < xi0)
            xi0 = xt1 + 1, xi1 = xt1;
    }
    if (xi1 >= xi0) {
        size_t i0 = o + (size_t)(xi0 - stp->x0), i1 = o + (size_t)(xi1 + 1 - stp->x0);
        A->flux[a] += stp->cum_val[i1] - stp->cum_val[i0];
        A->var[a] += stp->cum_var[i1] - stp->cum_var[i0];
        A->area[a] += (double)(stp->cum_n[i1] - stp->cum_n[i0]);
        int64_t fl = stp->cum_fl[i1] - stp->cum_fl[i0];
        if (fl % CUM_TR)
            A->flags |= SK_SRC_NEIGHBOURS;
        if (fl / CUM_TR)
            A->flags |= SK_SRC_TRUNCATED;
    }
    for (long x = xt0; x <= xt1; x++) {
        if (x == xi0 && xi1 >= xi0)
            x = xi1 + 1;
        if (x > xt1)
            break;
        double rx0 = (double)x - 0.5 - xc;
        double f = sk_circle_rect_overlap(rx0, r->ry0, rx0 + 1, r->ry1, A->radius_px[a]);
        if (f <= 0)
            continue;
        A->flags |= stp->flags[row + x];
        if (stp->present[row + x] != 1)
            continue;
        A->flux[a] += f * stp->val[row + x];
        A->var[a] += f * f * stp->var[row + x];
        A->area[a] += f;
    }
}

/* Row r of every aperture pixel by pixel (values through sget). */
static void aper_row_by_pixels(const mctx *M, long self, const stamp *stp, double xc,
                               const aper_row *r, aper_sums *A)
{
    /* pixels of this row that can touch the largest circle */
    double half = sqrt(A->rmax2 - r->near_dy * r->near_dy) + 0.5;
    long xa = (long)floor(xc - half), xb = (long)ceil(xc + half);
    for (long x = xa; x <= xb; x++) {
        double rx0 = (double)x - 0.5 - xc, rx1 = rx0 + 1;
        double nx = rx0 > 0 ? rx0 : (rx1 < 0 ? rx1 : 0);
        double fx = fabs(rx0) > fabs(rx1) ? rx0 : rx1;
        double dmin2 = nx * nx + r->near_dy * r->near_dy, dmax2 = fx * fx + r->far_dy * r->far_dy;
        if (dmin2 >= A->rmax2)
            continue;
        pixval pv = sget(stp, M, self, x, r->y);
        for (int a = 0; a < A->nr; a++) {
            if (A->same_as[a] >= 0)
                continue;
            double f;
            if (dmax2 <= A->r2[a])
                f = 1;
            else if (dmin2 >= A->r2[a])
                continue;
            else
                f = sk_circle_rect_overlap(rx0, r->ry0, rx1, r->ry1, A->radius_px[a]);
            if (f <= 0)
                continue;
            A->flags |= pv.flags;
            if (!pv.present)
                continue;
            A->flux[a] += f * pv.val;
            A->var[a] += f * f * pv.var;
            A->area[a] += f;
        }
    }
}

/* Does the circle of radius rs about (xc, yc) cover an image pixel flagged
 * for more than saturation or information? */
static int circle_flagged(const mctx *M, double xc, double yc, double rs)
{
    const sk_image *img = M->img;
    long w = img->width, h = img->height;
    double rs2 = rs * rs;
    long sya = (long)floor(yc - rs - 0.5), syb = (long)ceil(yc + rs + 0.5);
    long sxa = (long)floor(xc - rs - 0.5), sxb = (long)ceil(xc + rs + 0.5);
    if (sya < 0)
        sya = 0;
    if (syb > h - 1)
        syb = h - 1;
    if (sxa < 0)
        sxa = 0;
    if (sxb > w - 1)
        sxb = w - 1;
    for (long y = sya; y <= syb; y++) {
        const uint16_t *frow = img->flags + y * w;
        for (long x = sxa; x <= sxb; x++) {
            if (!(frow[x] & ~(SK_FLAG_SATURATED | SK_FLAGS_INFORMATIONAL)))
                continue;
            double rx0 = (double)x - 0.5 - xc, ry0 = (double)y - 0.5 - yc;
            double nx = rx0 > 0 ? rx0 : (rx0 + 1 < 0 ? rx0 + 1 : 0);
            double ny = ry0 > 0 ? ry0 : (ry0 + 1 < 0 ? ry0 + 1 : 0);
            if (nx * nx + ny * ny < rs2 && sk_circle_rect_overlap(rx0, ry0, rx0 + 1, ry0 + 1, rs) > 0)
                return 1;
        }
    }
    return 0;
}

/* Sum every aperture about (xc, yc), row by row. Inside the stamp's disc,
 * per row and aperture, the pixels wholly inside come from the stamp's
 * running sums and only those the circle crosses are computed one by one;
 * elsewhere pixel by pixel. */
static void aper_accumulate(const mctx *M, long self, stamp *stp, double xc, double yc,
                            double rmax, aper_sums *A)
{
    long ya = (long)floor(yc - rmax - 0.5), yb = (long)ceil(yc + rmax + 0.5);
    int by_rows = stp->w > 0 &&
                  hypot(xc - (double)(stp->x0 + stp->r), yc - (double)(stp->y0 + stp->r)) + rmax + 0.75 <=
                      (double)stp->r &&
                  stamp_cumulate(stp);
    for (long y = ya; y <= yb; y++) {
        aper_row r;
        r.y = y;
        r.ry0 = (double)y - 0.5 - yc;
        r.ry1 = r.ry0 + 1;
        r.near_dy = r.ry0 > 0 ? r.ry0 : (r.ry1 < 0 ? r.ry1 : 0);
        r.far_dy = fabs(r.ry0) > fabs(r.ry1) ? r.ry0 : r.ry1;
        if (A->rmax2 - r.near_dy * r.near_dy <= 0)
            continue;
        if (!by_rows) {
            aper_row_by_pixels(M, self, stp, xc, &r, A);
            continue;
        }
        for (int a = 0; a < A->nr; a++)
            if (A->same_as[a] < 0)
                aper_row_from_sums(stp, xc, &r, a, A);
    }
}

/* Circular aperture fluxes and errors, and the SNR in the 1-FWHM aperture,
 * about (xc, yc) into s; returns the flags picked up. */
static unsigned aperture_photometry(const mctx *M, long self, stamp *stp, double xc, double yc,
                                    sk_source *s)
{
    int naper = M->p->naper, nr = naper + 1;
    double af[nr], av[nr], aa[nr], r2a[nr];
    int same_as[nr];
    const double *rad = M->radii;
    double rmax = 0;
    for (int a = 0; a < nr; a++) {
        af[a] = av[a] = aa[a] = 0;
        if (rad[a] > rmax)
            rmax = rad[a];
        same_as[a] = -1;
        for (int b = 0; b < a && same_as[a] < 0; b++)
            if (rad[b] == rad[a])
                same_as[a] = b;
    }
    for (int a = 0; a < nr; a++)
        r2a[a] = rad[a] * rad[a];
    aper_sums A = { nr, rad, r2a, same_as, af, av, aa, rmax * rmax, 0 };
    aper_accumulate(M, self, stp, xc, yc, rmax, &A);
    /* other objects' pixels in an aperture are corrected for (above);
       whether they are enough to flag is the AUTO ellipse's test */
    unsigned flags = A.flags & ~(unsigned)SK_SRC_NEIGHBOURS;
    if (circle_flagged(M, xc, yc, rad[naper]))
        flags |= SK_SRC_FLAGGED;
    for (int a = 0; a < nr; a++) {
        if (same_as[a] >= 0) {
            af[a] = af[same_as[a]];
            av[a] = av[same_as[a]];
            aa[a] = aa[same_as[a]];
        }
        double e = flux_error(M->nf2 * av[a], aa[a], M->bg->level_err, af[a], M->p->gain);
        if (a < naper) {
            s->flux_aper[a] = af[a];
            s->flux_aper_err[a] = e;
        } else {
            s->snr = e > 0 ? af[a] / e : 0;
        }
    }
    return flags;
}

/* ---- Kron radius and AUTO flux (Kron 1980; Source Extractor's AUTO) ---- */

/* The isophotal ellipse, its semi-axes floored at 0.3 px: r^2 = cxx dx^2 +
 * cyy dy^2 + cxy dx dy is the squared elliptical radius in units of them. */
typedef struct {
    double a_px, b_px;
    double cxx, cyy, cxy;
} ellipse;

static void kron_ellipse(const sk_source *s, ellipse *e)
{
    double aa = s->a_px > 0.3 ? s->a_px : 0.3, bb = s->b_px > 0.3 ? s->b_px : 0.3;
    double th = s->theta_deg * M_PI / 180.0, ct = cos(th), st = sin(th);
    e->a_px = aa;
    e->b_px = bb;
    e->cxx = ct * ct / (aa * aa) + st * st / (bb * bb);
    e->cyy = st * st / (aa * aa) + ct * ct / (bb * bb);
    e->cxy = 2 * ct * st * (1 / (aa * aa) - 1 / (bb * bb));
}

/* The first moment of the light's elliptical radius within 6 isophotal
 * radii of (xc, yc) (0 when the light there is not positive). */
static double kron_radius(const mctx *M, long self, const stamp *stp, double xc, double yc,
                          const ellipse *e)
{
    double rk = 6.0, ext = rk * e->a_px + 1;
    double sr = 0, sf = 0;
    long xa = (long)floor(xc - ext), xb = (long)ceil(xc + ext);
    long ya = (long)floor(yc - ext), yb = (long)ceil(yc + ext);
    for (long y = ya; y <= yb; y++)
        for (long x = xa; x <= xb; x++) {
            double dx = (double)x - xc, dy = (double)y - yc;
            double r2 = e->cxx * dx * dx + e->cyy * dy * dy + e->cxy * dx * dy;
            if (r2 > rk * rk)
                continue;
            pixval pv = sget(stp, M, self, x, y);
            if (!pv.present)
                continue;
            sr += sqrt(r2) * pv.val;
            sf += pv.val;
        }
    return (sf > 0 && sr > 0) ? sr / sf : 0;
}

/* NEIGHBOURS is set when other objects' pixels cover more than this share
 * of the AUTO ellipse's area: enough light replaced to bias FLUX_AUTO
 * (Source Extractor's CROWD_THRESHOLD and its flag bit 0 alike). */
#define NEIGHBOUR_AREA_SHARE 0.1

/* The flux and its error in the ellipse of elliptical radius R about
 * (xc, yc), pixels on its edge weighted by the fraction of 5 x 5 sub-pixel
 * points inside; returns the flags picked up. */
static unsigned auto_flux(const mctx *M, long self, const stamp *stp, double xc, double yc,
                          const ellipse *e, double R, sk_source *s)
{
    unsigned flags = 0;
    double area_all = 0, area_others = 0;
    double delta = 0.7072 / e->b_px;  /* largest change of r over half a pixel diagonal */
    double ext = R * e->a_px + 1;
    long xa = (long)floor(xc - ext), xb = (long)ceil(xc + ext);
    long ya = (long)floor(yc - ext), yb = (long)ceil(yc + ext);
    double fa = 0, va = 0, area = 0;
    for (long y = ya; y <= yb; y++)
        for (long x = xa; x <= xb; x++) {
            double dx = (double)x - xc, dy = (double)y - yc;
            double r = sqrt(e->cxx * dx * dx + e->cyy * dy * dy + e->cxy * dx * dy);
            if (r > R + delta)
                continue;
            double f = 1;
            if (r > R - delta) {
                int in = 0;
                for (int sy2 = 0; sy2 < 5; sy2++)
                    for (int sx2 = 0; sx2 < 5; sx2++) {
                        double ux = dx - 0.4 + 0.2 * sx2, uy = dy - 0.4 + 0.2 * sy2;
                        if (e->cxx * ux * ux + e->cyy * uy * uy + e->cxy * ux * uy <= R * R)
                            in++;
                    }
                f = in / 25.0;
                if (in == 0)
                    continue;
            }
            pixval pv = sget(stp, M, self, x, y);
            flags |= pv.flags & ~(unsigned)SK_SRC_NEIGHBOURS;
            area_all += f;
            if (pv.flags & SK_SRC_NEIGHBOURS)
                area_others += f;
            if (!pv.present)
                continue;
            fa += f * pv.val;
            va += f * f * pv.var;
            area += f;
        }
    if (area_others > NEIGHBOUR_AREA_SHARE * area_all)
        flags |= SK_SRC_NEIGHBOURS;
    s->flux_auto = fa;
    s->flux_auto_err = flux_error(M->nf2 * va, area, M->bg->level_err, fa, M->p->gain);
    return flags;
}

/* ---- one object ---- */

/* Dual-image mode: the isophotal flux, its error and the peak from the
 * measurement image P over the detection footprint; returns the flags its
 * pixels bring. */
static unsigned iso_photometry(const mctx *P, const sk_object *ob, sk_source *s)
{
    sk_source box;
    iso_sums ip;
    unsigned flags = iso_accumulate(P, ob, &box, &ip);
    s->peak = isfinite(ip.peak) ? ip.peak : 0;
    s->flux_iso = ip.flux;
    s->flux_iso_err = flux_error(P->nf2 * ip.flux_var, (double)ob->npix, P->bg->level_err, ip.flux, P->p->gain);
    return flags;
}

/* One object: position, shape, Kron radius and flags on M's image;
 * fluxes, errors, peak and background on M->phot's (the same image but in
 * dual-image mode), whose stamp is pst. */
static void measure_one(const mctx *M, long k, stamp *stp, stamp *pst, winpix *W)
{
    const mctx *P = M->phot;
    const sk_image *img = M->img;
    const sk_measure_params *p = M->p;
    long self = M->which ? M->which[k] : k;
    const sk_object *ob = &M->det->objects[self];
    sk_source *s = &M->out[k];
    long w = img->width, h = img->height;
    memset(s, 0, sizeof *s);
    s->flux_aper = M->aper_flux + (size_t)k * (size_t)p->naper;
    s->flux_aper_err = M->aper_err + (size_t)k * (size_t)p->naper;
    unsigned flags = ob->nsiblings > 1 ? SK_SRC_BLENDED : 0;

    iso_sums is;
    flags |= iso_accumulate(M, ob, s, &is);
    iso_shape(M, ob, &is, s);
    if (P != M)
        flags |= iso_photometry(P, ob, s);

    double sig_w, rwin, sig_c, rc;
    window_size(p, &sig_w, &rwin);
    centroid_window(sig_w, &sig_c, &rc);
    double reach = fmax(rwin, rc) + 2;
    for (int a = 0; !p->shape_only && a <= p->naper; a++)
        if (M->radii[a] + 2 > reach)
            reach = M->radii[a] + 2;
    stamp_fill(stp, M, self, s->x, s->y, reach);
    double xc = s->x, yc = s->y;
    if (!windowed_centroid(M, self, stp, s, rc, sig_c, &xc, &yc)) {
        flags |= SK_SRC_WIN_FAILED;
        xc = s->x;
        yc = s->y;
    }
    s->xwin = xc;
    s->ywin = yc;
    window_gather(M, self, stp, xc, yc, rwin, sig_w, W);
    flags |= windowed_shape(M, W, sig_w, s);
    flags |= peak_sharpness_flags(M, is.peak_i, s->peak, core_sigma(p), xc, yc);
    s->background = P->bg->level[lround(yc < 0 ? 0 : yc >= h ? h - 1 : yc) * w +
                                  lround(xc < 0 ? 0 : xc >= w ? w - 1 : xc)];

    if (!p->shape_only) {
        if (P != M)
            stamp_fill(pst, P, self, s->x, s->y, reach);
        else
            pst = stp;
        flags |= aperture_photometry(P, self, pst, xc, yc, s);
        ellipse e;
        kron_ellipse(s, &e);
        s->kron_radius = kron_radius(M, self, stp, xc, yc, &e);
        double R = p->kron_factor * s->kron_radius;
        if (R < p->kron_min_radius)
            R = p->kron_min_radius;
        flags |= auto_flux(P, self, pst, xc, yc, &e, R, s);
    }
    s->flags = flags;
}

static int measure_range(long begin, long end, void *user)
{
    const mctx *M = user;
    stamp S, SP;
    memset(&S, 0, sizeof S);
    memset(&SP, 0, sizeof SP);
    double sig_w, rwin;
    long nwin = window_size(M->p, &sig_w, &rwin);
    size_t cap = (size_t)nwin * (size_t)nwin;
    double *wbuf = malloc(sizeof *wbuf * 5 * cap);
    if (!wbuf)
        return sk_error(SK_EIO, "measurement: out of memory");
    winpix W = { wbuf, wbuf + cap, wbuf + 2 * cap, wbuf + 3 * cap, wbuf + 4 * cap, 0, 0, 0, 0, 0 };
    for (long k = begin; k < end; k++)
        measure_one(M, M->order ? M->order[k] : k, &S, &SP, &W);
    free(wbuf);
    free(S.val);
    free(S.cum_val);
    free(S.cum_n);
    free(SP.val);
    free(SP.cum_val);
    free(SP.cum_n);
    return SK_OK;
}

/* qsort by key[], ties by index (the keys of the one call running). */
static _Thread_local const long *sort_key;

static int cmp_by_key(const void *a, const void *b)
{
    long i = *(const long *)a, j = *(const long *)b;
    if (sort_key[i] != sort_key[j])
        return sort_key[i] < sort_key[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static int cmp_source(const void *a, const void *b)
{
    const sk_source *s = a, *t = b;
    if (s->ywin != t->ywin)
        return s->ywin < t->ywin ? -1 : 1;
    if (s->xwin != t->xwin)
        return s->xwin < t->xwin ? -1 : 1;
    if (s->npix != t->npix)
        return s->npix < t->npix ? -1 : 1;
    return (s->number > t->number) - (s->number < t->number);
}

void sk_source_list_free(sk_source_list *l)
{
    if (!l)
        return;
    free(l->src);
    free(l->aper_radius_px);
    free(l->aper_store);
    free(l->object);
    free(l);
}

/* The measurement image of dual-image mode (NULL img: none). */
typedef struct phot_plane {
    const sk_image *img;
    const sk_background *bg;
    double gain;
} phot_plane;

static int measure_core(const sk_image *img, const sk_background *bg, const sk_detection *det,
                        const sk_measure_params *p, const phot_plane *pp, int threads,
                        const long *which, long nwhich, sk_source_list **out)
{
    *out = NULL;
    if (!(p->fwhm_px > 0))
        return sk_error(SK_EINPUT, "measurement: the image FWHM must be positive (got %g)", p->fwhm_px);
    if (p->naper < 0)
        return sk_error(SK_EINPUT, "extraction.photometry.aperture_fwhm: negative count");
    for (int a = 0; a < p->naper; a++)
        if (!(p->aperture_fwhm[a] > 0))
            return sk_error(SK_EINPUT, "extraction.photometry.aperture_fwhm: radius %g is not positive",
                            p->aperture_fwhm[a]);
    if (!(p->kron_factor > 0) || !(p->kron_min_radius >= 0))
        return sk_error(SK_EINPUT, "extraction.photometry: kron_factor must be positive and "
                                   "kron_min_radius non-negative");
    long n = which ? nwhich : det->nobjects;
    sk_source_list *l = calloc(1, sizeof *l);
    if (!l)
        return sk_error(SK_EIO, "measurement: out of memory");
    l->n = n;
    l->naper = p->naper;
    l->fwhm_px = p->fwhm_px;
    l->src = calloc((size_t)(n ? n : 1), sizeof *l->src);
    l->aper_radius_px = calloc((size_t)p->naper + 1, sizeof(double));
    l->aper_store = calloc((size_t)(2 * n * p->naper + 1), sizeof(double));
    /* the detection's variance map when it has one (same background) */
    float *own_var = det->variance ? NULL : sk_pixel_variance(img, bg);
    const float *var = det->variance ? det->variance : own_var;
    float *phot_var = pp->img ? sk_pixel_variance(pp->img, pp->bg) : NULL;
    if (!l->src || !l->aper_radius_px || !l->aper_store || !var || (pp->img && !phot_var)) {
        free(own_var);
        free(phot_var);
        sk_source_list_free(l);
        return sk_error(SK_EIO, "measurement: out of memory for %ld sources", n);
    }
    for (int a = 0; a < p->naper; a++)
        l->aper_radius_px[a] = p->aperture_fwhm[a] * p->fwhm_px;
    l->aper_radius_px[p->naper] = p->fwhm_px;
    /* Objects come in the order of their first pixel, across the whole
       width; measured band by band of 64 rows, left to right, neighbours
       follow each other and share the image rows they read. (Each result
       goes to its own slot: the order changes no value.) */
    long *order = malloc(sizeof *order * (size_t)(2 * n + 1));
    if (order) {
        long *key = order + n;
        for (long k = 0; k < n; k++) {
            long first = det->objects[which ? which[k] : k].pix[0];
            key[k] = (first / img->width / 64) * img->width + first % img->width;
            order[k] = k;
        }
        sort_key = key;
        qsort(order, (size_t)n, sizeof *order, cmp_by_key);
    }
    mctx M = { img, bg, det, p, var, which, l->src, l->aper_store,
               l->aper_store + (size_t)n * (size_t)p->naper, l->aper_radius_px, order, NULL, 1.0 };
    M.nf2 = sk_image_noise_factor(img) * sk_image_noise_factor(img);
    sk_measure_params php = *p;
    php.gain = pp->gain;
    mctx MP = M;
    MP.img = pp->img;
    MP.bg = pp->bg;
    MP.var = phot_var;
    MP.nf2 = pp->img ? sk_image_noise_factor(pp->img) * sk_image_noise_factor(pp->img) : M.nf2;
    MP.p = &php;
    MP.phot = &MP;
    M.phot = pp->img ? &MP : &M;
    int st = sk_parallel_for(n, 64, threads, measure_range, &M);
    free(order);
    free(own_var);
    free(phot_var);
    if (st) {
        sk_source_list_free(l);
        return st;
    }
    for (long k = 0; k < n; k++)
        l->src[k].number = which ? which[k] : k;  /* object index: tie-break */
    l->object = malloc(sizeof *l->object * (size_t)(n ? n : 1));
    if (!l->object) {
        sk_source_list_free(l);
        return sk_error(SK_EIO, "measurement: out of memory");
    }
    /* the aperture arrays travel with the sources through the sort */
    qsort(l->src, (size_t)n, sizeof *l->src, cmp_source);
    double *store = calloc((size_t)(2 * n * p->naper + 1), sizeof(double));
    if (!store) {
        sk_source_list_free(l);
        return sk_error(SK_EIO, "measurement: out of memory");
    }
    for (long k = 0; k < n; k++) {
        sk_source *s = &l->src[k];
        double *f = store + (size_t)k * (size_t)p->naper;
        double *e = store + ((size_t)n + (size_t)k) * (size_t)p->naper;
        for (int a = 0; a < p->naper; a++) {
            f[a] = s->flux_aper[a];
            e[a] = s->flux_aper_err[a];
        }
        s->flux_aper = f;
        s->flux_aper_err = e;
        l->object[k] = s->number;
        s->number = k + 1;
    }
    free(l->aper_store);
    l->aper_store = store;
    *out = l;
    return SK_OK;
}

int sk_measure_objects(const sk_image *img, const sk_background *bg, const sk_detection *det,
                       const sk_measure_params *p, int threads, const long *which,
                       long nwhich, sk_source_list **out)
{
    phot_plane none = { NULL, NULL, 0 };
    return measure_core(img, bg, det, p, &none, threads, which, nwhich, out);
}

int sk_measure(const sk_image *img, const sk_background *bg, const sk_detection *det,
               const sk_measure_params *p, int threads, sk_source_list **out)
{
    return sk_measure_objects(img, bg, det, p, threads, NULL, 0, out);
}

int sk_measure_dual(const sk_image *img, const sk_background *bg, const sk_detection *det,
                    const sk_measure_params *p, const sk_image *phot, const sk_background *phot_bg,
                    double phot_gain, int threads, sk_source_list **out)
{
    *out = NULL;
    if (!phot || !phot_bg || phot->width != img->width || phot->height != img->height)
        return sk_error(SK_EINPUT, "measurement: the measurement image is not the detection image's size");
    phot_plane pp = { phot, phot_bg, phot_gain };
    return measure_core(img, bg, det, p, &pp, threads, NULL, 0, out);
}

double sk_image_fwhm(const sk_source_list *l)
{
    const unsigned bad = SK_SRC_BLENDED | SK_SRC_SATURATED | SK_SRC_EDGE | SK_SRC_TRUNCATED |
                         SK_SRC_FLAGGED | SK_SRC_ARTIFACT | SK_SRC_WIN_FAILED;
    double *v = malloc(sizeof *v * (size_t)(l->n ? l->n : 1));
    if (!v)
        return 0;
    long n = 0;
    for (long k = 0; k < l->n; k++) {
        const sk_source *s = &l->src[k];
        if (!(s->flags & bad) && s->snr >= 20 && s->fwhm_px > 0 && isfinite(s->fwhm_px))
            v[n++] = s->fwhm_px;
    }
    double result = 0;
    if (n >= 5) {
        qsort(v, (size_t)n, sizeof *v, sk_cmp_double);
        /* the densest +-10 % window is the stellar locus */
        long best = 0, bi = sk_densest_window(v, n, SK_WINDOW_RATIO, 1.2, &best);
        double centre = v[bi + best / 2];
        long m = 0;
        for (long i = 0; i < n; i++)
            if (fabs(v[i] - centre) <= 0.15 * centre)
                v[m++] = v[i];
        result = sk_median_sorted(v, m);
    }
    free(v);
    return result;
}
