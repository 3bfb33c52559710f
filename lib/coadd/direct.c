/* direct.c: the coadd engine: inputs checked and scaled to one zero point, resampled onto the output grid band by band with threads, combined, and written with their header keywords. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/bigbuf.h"
#include "direct_priv.h"
#include "core/parallel.h"
#include "io/image_internal.h"
#include "skystack/error.h"
#include "skystack/log.h"
#include "coadd_internal.h"

/* Output pixels per row chunk handled at once by a thread. */
#define CHUNK_PX 256
/* Default output rows per band. */
#define DEFAULT_BAND_ROWS 256
#define BAND_INPUTS 32
#define MIN_BAND_ROWS 32

void sk_coadd_input_init(sk_coadd_input *in)
{
    memset(in, 0, sizeof *in);
    in->zero_point = NAN;
    in->mjd_start = NAN;
    in->mjd_end = NAN;
    in->exptime_s = NAN;
    in->weight_scale = 1.0;
}

void sk_coadd_params_default(sk_coadd_params *p)
{
    memset(p, 0, sizeof *p);
    p->combine.method = SK_COMBINE_CLIPPED;
    p->combine.clip_sigma = 3.0;
    p->combine.clip_iterations = 3;
    p->combine.clip_ampfrac = 0.3;
    p->kernel = SK_KERNEL_LANCZOS3;
    p->zero_point = NAN;
    p->reference = 0;
    p->tolerance_px = 0.001;
    p->threads = 1;
    p->band_rows = 0;
}

/* ---- per-input state ---- */

typedef struct input_state {
    const sk_coadd_input *in;
    const char *name;
    sk_band_source *src;     /* open while the input is being read */
    sk_wcs *wcs_owned;
    const sk_wcs *wcs;
    long width, height;
    sk_pixmap *map;
    long bx0, by0, bx1, by1; /* output box */
    double scale;            /* flux scale to the common zero point */
    double poisson_per_area;
    double noise_factor;     /* sk_kernel_noise_factor at the box centre */
    sk_noise_corr ncorr;     /* its resampled noise's covariance there */
    double zp, gain, mjd_start, mjd_end, exptime;
    char filter[72];
    long *rect;              /* per band of output rows: x0, y0, w, h of the
                                input rectangle it reads (w = 0: none) */
    size_t max_px;           /* the largest of these rectangles */
    sk_band band;
    int active;              /* band loaded for the current band of rows */
    long npixels;
} input_state;

typedef struct engine {
    const sk_coadd_params *p;
    const sk_grid *grid;
    sk_kernel_table kt;
    input_state *inputs;
    int n;
    /* output */
    sk_image *out;
    int32_t *nimg;
    /* per-row statistics, reduced in row order at the end */
    double *row_varcorr;     /* sum over pixels of var_large * weight */
    long *row_count;         /* pixels with data */
    long *row_rejected;
    double *row_cweight;     /* height * n: sum of combine weights per input */
    long band_rows;          /* output rows per band */
    /* current band */
    long band_y0, band_y1;
    int *act;                /* indices of the inputs active in this band */
    int nact;
    int threads;
} engine;

/* ---- phase 1: pixel mappings, one input per task ---- */

static int band_rects(const engine *e, input_state *s);

/* The large-scale noise factor of an input from the Jacobian of its
 * mapping at the centre of its box. */
static double input_noise_factor(const sk_kernel_table *kt, const input_state *s)
{
    long xc = (s->bx0 + s->bx1) / 2, yc = (s->by0 + s->by1) / 2;
    if (xc - 1 < s->bx0 || xc + 1 >= s->bx1 || yc - 1 < s->by0 || yc + 1 >= s->by1)
        return 1.0;
    double xi[3][3], yi[3][3], ar[3][3];
    for (int r = 0; r < 3; r++)
        if (sk_pixmap_row(s->map, yc - 1 + r, xc - 1, xc + 2, xi[r], yi[r], ar[r]) != SK_OK)
            return 1.0;
    double J[4] = {(xi[1][2] - xi[1][0]) / 2, (xi[2][1] - xi[0][1]) / 2,
                   (yi[1][2] - yi[1][0]) / 2, (yi[2][1] - yi[0][1]) / 2};
    for (int k = 0; k < 4; k++)
        if (!isfinite(J[k]))
            return 1.0;
    return sk_kernel_noise_factor(kt, J);
}

static int map_one(long k, void *arg)
{
    engine *e = arg;
    input_state *s = &e->inputs[k];
    int rc = sk_pixmap_new(e->grid, s->wcs, s->width, s->height, e->p->tolerance_px, &s->map);
    if (rc)
        return sk_error_context("%s", s->name);
    sk_pixmap_box(s->map, &s->bx0, &s->by0, &s->bx1, &s->by1);
    s->noise_factor = input_noise_factor(&e->kt, s);
    rc = sk_noise_corr_input(&e->kt, e->grid, s->wcs, s->bx0, s->by0, s->bx1, s->by1, &s->ncorr);
    rc = rc ? rc : band_rects(e, s);
    return rc ? sk_error_context("%s", s->name) : SK_OK;
}

/* ---- the input rectangle of each band of output rows ---- */

/* The rectangle of input s that output rows [y0, y1) read (r: x0, y0, w,
 * h; w = 0 when none). */
static int band_rect(const engine *e, const input_state *s, long y0, long y1, long *r)
{
    r[0] = r[1] = r[2] = r[3] = 0;
    if (s->by0 >= y1 || s->by1 <= y0)
        return SK_OK;
    double xmin, xmax, ymin, ymax;
    int rc = sk_pixmap_input_bounds(s->map, y0, y1, &xmin, &xmax, &ymin, &ymax);
    if (rc || !isfinite(xmin))
        return rc;
    int a = e->kt.a;
    /* taps of a point x: floor(x)-a+1 .. floor(x)+a; one more pixel on
     * each side covers the rounding of the phase to ix+1 and of the bounds */
    double lx = floor(xmin) - a, hx = floor(xmax) + a + 1;
    double ly = floor(ymin) - a, hy = floor(ymax) + a + 1;
    if (lx < 0)
        lx = 0;
    if (ly < 0)
        ly = 0;
    if (hx > s->width - 1)
        hx = (double)(s->width - 1);
    if (hy > s->height - 1)
        hy = (double)(s->height - 1);
    if (hx < lx || hy < ly)
        return SK_OK;
    r[0] = (long)lx;
    r[1] = (long)ly;
    r[2] = (long)(hx - lx) + 1;
    r[3] = (long)(hy - ly) + 1;
    return SK_OK;
}

/* Every band's rectangle of input s, and the largest (its buffers are
 * made that large at once: grown band by band, each new buffer's pages
 * would be faulted in and zeroed anew). */
static int band_rects(const engine *e, input_state *s)
{
    long H = e->grid->height, nb = (H + e->band_rows - 1) / e->band_rows;
    s->rect = calloc((size_t)nb * 4, sizeof *s->rect);
    if (!s->rect)
        return sk_error(SK_EIO, "coadd: out of memory");
    s->max_px = 0;
    for (long b = 0; b < nb && s->bx1 > s->bx0; b++) {
        long y0 = b * e->band_rows, y1 = y0 + e->band_rows < H ? y0 + e->band_rows : H;
        long *r = s->rect + 4 * b;
        int rc = band_rect(e, s, y0, y1, r);
        if (rc)
            return rc;
        if (r[2] > 0 && (size_t)r[2] * (size_t)r[3] > s->max_px)
            s->max_px = (size_t)r[2] * (size_t)r[3];
    }
    return SK_OK;
}

/* ---- phase 2 (per band): load the input rectangles ---- */

static int load_band(engine *e, input_state *s)
{
    const long *r = s->rect + 4 * (e->band_y0 / e->band_rows);
    if (r[2] <= 0)
        return SK_OK;
    int rc = SK_OK;
    if (!s->src && (rc = sk_band_source_open(s->in, &s->src)))
        return rc;
    rc = sk_band_reserve(&s->band, s->max_px);
    rc = rc ? rc : sk_band_source_reserve(s->src, s->max_px);
    rc = rc ? rc : sk_band_alloc(&s->band, r[0], r[1], r[2], r[3], s->width, s->height);
    if (!rc)
        rc = sk_band_source_read(s->src, s->scale, &s->band);
    if (!rc)
        rc = sk_band_dilate(&s->band, e->kt.a);
    if (rc)
        return rc;
    s->band.poisson_per_area = s->poisson_per_area;
    s->band.noise_factor = s->noise_factor;
    s->active = 1;
    return SK_OK;
}

static int load_one(long k, void *arg)
{
    engine *e = arg;
    input_state *s = &e->inputs[e->act[k]];
    int rc = load_band(e, s);
    return rc ? sk_error_context("%s", s->name) : SK_OK;
}

/* ---- phase 3 (per band): resample and combine rows ---- */

typedef struct row_scratch {
    double *xi, *yi, *area;       /* CHUNK_PX each */
    sk_stack_entry *stack;        /* nact * CHUNK_PX */
    sk_combine_in *cin;           /* nact */
    double *cscratch;             /* 3 * nact */
    long *npixels;                /* n: this thread's counts, added to the inputs' at the end */
    sk_mean_row *mrow;            /* nact: this row's counts and sums of combine weights */
    sk_mean_acc *acc;             /* CHUNK_PX: the mean's sums */
} row_scratch;

/* A row's statistics, added pixel by pixel. */
typedef struct row_stats {
    double varcorr;
    long count, rejected;
} row_stats;

/* Output pixel i from its combined value co and its inputs' flags. */
static inline void put_pixel(engine *e, size_t i, const sk_combine_out *co, uint16_t used_flags,
                             uint16_t covered_flags, int covered, row_stats *st)
{
    uint16_t fl;
    if (co->nused > 0 && co->weight > 0.0f) {
        fl = used_flags | (covered_flags & SK_FLAG_SATURATED);
        if (co->nrejected > 0)
            fl |= SK_FLAG_REJECTED;
        e->out->sci[i] = co->value;
        e->out->weight[i] = co->weight;
        e->nimg[i] = co->nused;
        st->varcorr += co->var_large * co->weight;
        st->count++;
        st->rejected += co->nrejected;
    } else {
        fl = covered ? (uint16_t)(covered_flags | used_flags) : SK_FLAG_EDGE;
        if (!(fl & SK_FLAGS_UNUSABLE))
            fl |= SK_FLAG_ZEROWEIGHT;
        e->out->sci[i] = 0.0f;
        e->out->weight[i] = 0.0f;
        e->nimg[i] = 0;
    }
    e->out->flags[i] = fl;
}

/* The input positions of output pixels [lo, hi) of row y (within input
 * s's box and its active band: *lo, *hi; empty otherwise); 1 when any. */
static int chunk_positions(const input_state *s, row_scratch *rs, long y, long cx0, long cx1,
                           long *lo, long *hi, int *rc)
{
    *lo = cx0 > s->bx0 ? cx0 : s->bx0;
    *hi = cx1 < s->bx1 ? cx1 : s->bx1;
    *rc = SK_OK;
    if (!s->active || y < s->by0 || y >= s->by1 || *hi <= *lo) {
        *lo = *hi = cx0;
        return 0;
    }
    *rc = sk_pixmap_row(s->map, y, *lo, *hi, rs->xi, rs->yi, rs->area);
    if (*rc)
        *rc = sk_error_context("%s", s->name);
    return !*rc;
}

/* The weighted mean of a chunk of row y: every input's entries added to
 * the pixels' sums as they are resampled (in the order of the inputs, as
 * the combine step adds them), then the pixels written. */
static int mean_chunk(engine *e, row_scratch *rs, long y, long cx0, long cx1, row_stats *st)
{
    const long W = e->grid->width;
    sk_mean_acc *acc = rs->acc;
    memset(acc, 0, (size_t)(cx1 - cx0) * sizeof *acc);
    for (int k = 0; k < e->nact; k++) {
        input_state *s = &e->inputs[e->act[k]];
        long lo, hi;
        int rc;
        if (chunk_positions(s, rs, y, cx0, cx1, &lo, &hi, &rc))
            sk_band_resample_mean(&e->kt, &s->band, hi - lo, rs->xi, rs->yi, rs->area, acc + (lo - cx0),
                                  &rs->mrow[k]);
        if (rc)
            return rc;
    }
    for (long x = cx0; x < cx1; x++) {
        const sk_mean_acc *a = &acc[x - cx0];
        sk_combine_out co;
        sk_combine_mean_sums(a->sc, a->scv, a->scvar, a->nc, &co);
        put_pixel(e, (size_t)y * W + (size_t)x, &co, a->used_flags, a->covered_flags, a->covered, st);
    }
    return SK_OK;
}

/* A chunk of row y by the combine step: every input's entries resampled
 * into the stack, then each pixel's combined. */
static int stack_chunk(engine *e, row_scratch *rs, long y, long cx0, long cx1, row_stats *st)
{
    const long W = e->grid->width;
    const int nact = e->nact;
    for (int k = 0; k < nact; k++) {
        input_state *s = &e->inputs[e->act[k]];
        sk_stack_entry *stk = rs->stack + (size_t)k * CHUNK_PX;
        long lo, hi;
        int rc;
        if (chunk_positions(s, rs, y, cx0, cx1, &lo, &hi, &rc))
            sk_band_resample(&e->kt, &s->band, hi - lo, rs->xi, rs->yi, rs->area, stk + (lo - cx0), 1);
        if (rc)
            return rc;
        /* outside the input's range: entries that give nothing */
        memset(stk, 0, (size_t)(lo - cx0) * sizeof *stk);
        memset(stk + (hi - cx0), 0, (size_t)(cx1 - hi) * sizeof *stk);
    }
    const int clipped = e->p->combine.method == SK_COMBINE_CLIPPED;
    sk_combine_out quad[4];
    unsigned done = 0;
    for (long x = cx0; x < cx1; x++) {
        int nc = 0, covered = 0;
        uint16_t covered_flags = 0, used_flags = 0;
        /* the clipped mean without a sort, four pixels at once */
        if (clipped && (x - cx0) % 4 == 0)
            done = x + 4 <= cx1 ? sk_combine_clipped_screen4(&e->p->combine, rs->stack + (x - cx0),
                                                             CHUNK_PX * sizeof *rs->stack,
                                                             sizeof *rs->stack, nact, quad)
                                : 0;
        const int l = (int)((x - cx0) % 4), screened = clipped && (done >> l & 1);
        const int failed = clipped && (done >> (4 + l) & 1);
        for (int k = 0; k < nact; k++) {
            const sk_stack_entry *se = rs->stack + (size_t)k * CHUNK_PX + (size_t)(x - cx0);
            if (se->in.cweight > 0.0f) {
                if (!screened)
                    rs->cin[nc] = se->in;
                nc++;
                used_flags |= se->flags;
                covered = 1;
                /* per-input usage (which entries were kept is not
                 * tracked per input by the combine; count
                 * contributions before rejection) */
                rs->mrow[k].npixels++;
                rs->mrow[k].cweight += se->in.cweight;
            } else if (se->flags) {
                covered_flags |= se->flags;
                covered = 1;
            }
        }
        sk_combine_out co;
        if (screened)
            co = quad[l];
        else if (failed)
            sk_combine_clipped_unscreened(&e->p->combine, rs->cin, nc, rs->cscratch, &co);
        else
            sk_combine_pixel(&e->p->combine, rs->cin, nc, rs->cscratch, &co);
        put_pixel(e, (size_t)y * W + (size_t)x, &co, used_flags, covered_flags, covered, st);
    }
    return SK_OK;
}

static int process_row(engine *e, row_scratch *rs, long y)
{
    const long W = e->grid->width;
    const int mean = e->p->combine.method == SK_COMBINE_MEAN;
    row_stats st = {0.0, 0, 0};
    for (int k = 0; k < e->nact; k++)
        rs->mrow[k] = (sk_mean_row){0, 0.0};
    for (long cx0 = 0; cx0 < W; cx0 += CHUNK_PX) {
        long cx1 = cx0 + CHUNK_PX < W ? cx0 + CHUNK_PX : W;
        int rc = mean ? mean_chunk(e, rs, y, cx0, cx1, &st) : stack_chunk(e, rs, y, cx0, cx1, &st);
        if (rc)
            return rc;
    }
    double *cw_row = e->row_cweight + (size_t)y * e->n;
    for (int k = 0; k < e->nact; k++) {
        rs->npixels[e->act[k]] += rs->mrow[k].npixels;
        cw_row[e->act[k]] = rs->mrow[k].cweight;
    }
    e->row_varcorr[y] = st.varcorr;
    e->row_count[y] = st.count;
    e->row_rejected[y] = st.rejected;
    return SK_OK;
}

/* A thread's row buffers (its scratch of sk_parallel_for_scratch). */
static int row_scratch_init(void *scratch, void *arg)
{
    row_scratch *rs = scratch;
    const engine *e = arg;
    int nact = e->nact > 0 ? e->nact : 1;
    rs->xi = malloc(3 * CHUNK_PX * sizeof *rs->xi);
    rs->stack = malloc((size_t)nact * CHUNK_PX * sizeof *rs->stack);
    rs->cin = malloc((size_t)nact * sizeof *rs->cin);
    rs->cscratch = malloc(3 * (size_t)nact * sizeof *rs->cscratch);
    rs->mrow = malloc((size_t)nact * sizeof *rs->mrow);
    rs->acc = malloc(CHUNK_PX * sizeof *rs->acc);
    rs->npixels = calloc((size_t)e->n, sizeof *rs->npixels);
    if (!rs->xi || !rs->stack || !rs->cin || !rs->cscratch || !rs->mrow || !rs->acc || !rs->npixels)
        return sk_error(SK_EIO, "coadd: out of memory for a thread's row buffers");
    rs->yi = rs->xi + CHUNK_PX;
    rs->area = rs->yi + CHUNK_PX;
    return SK_OK;
}

/* In the caller's thread, once the band is done: the thread's counts
 * added to the inputs' (integer sums: the same whatever the order). */
static void row_scratch_release(void *scratch, void *arg)
{
    row_scratch *rs = scratch;
    engine *e = arg;
    for (int k = 0; rs->npixels && k < e->n; k++)
        e->inputs[k].npixels += rs->npixels[k];
    free(rs->xi);
    free(rs->stack);
    free(rs->cin);
    free(rs->cscratch);
    free(rs->mrow);
    free(rs->acc);
    free(rs->npixels);
}

static int process_rows(void *scratch, long r0, long r1, void *arg)
{
    engine *e = arg;
    for (long y = e->band_y0 + r0; y < e->band_y0 + r1; y++) {
        int rc = process_row(e, scratch, y);
        if (rc)
            return rc;
    }
    return SK_OK;
}

/* ---- inputs: metadata and checks ---- */

static int input_metadata(const sk_coadd_input *in, input_state *s)
{
    sk_band_source *src;
    int rc = sk_band_source_open(in, &src);
    if (rc)
        return rc;
    const sk_header *h = sk_band_source_header(src);
    s->width = sk_band_source_width(src);
    s->height = sk_band_source_height(src);
    if (in->wcs) {
        s->wcs = in->wcs;
    } else if (in->image && in->image->wcs) {
        s->wcs = in->image->wcs;
    } else {
        if (!h || sk_wcs_from_header(h, &s->wcs_owned) != SK_OK) {
            sk_band_source_close(src);
            return sk_error(SK_EINPUT, "%s: no usable WCS", s->name);
        }
        s->wcs = s->wcs_owned;
    }
    s->zp = in->zero_point;
    s->gain = in->gain;
    s->mjd_start = in->mjd_start;
    s->exptime = in->exptime_s;
    s->mjd_end = in->mjd_end;
    if (h) {
        if (!isfinite(s->mjd_start) && sk_header_get_double(h, "MJD-OBS", &s->mjd_start) != 1)
            s->mjd_start = NAN;
        if (!isfinite(s->exptime) && sk_header_get_double(h, "EXPTIME", &s->exptime) != 1)
            s->exptime = NAN;
        if (!isfinite(s->mjd_end) && sk_header_get_double(h, "MJD-END", &s->mjd_end) != 1)
            s->mjd_end = NAN;
    }
    if (!isfinite(s->mjd_end) && isfinite(s->mjd_start))
        s->mjd_end = s->mjd_start + (isfinite(s->exptime) ? s->exptime / 86400.0 : 0.0);
    s->filter[0] = '\0';
    if (in->filter)
        snprintf(s->filter, sizeof s->filter, "%s", in->filter);
    else if (h && sk_header_get_str(h, "FILTER", s->filter, sizeof s->filter) != 1)
        s->filter[0] = '\0';
    sk_band_source_close(src);
    return SK_OK;
}

/* "YYYY-MM-DDThh:mm:ss.sss" of an MJD. */
static void iso_of_mjd(double mjd, char *buf, size_t size)
{
    double secs = (mjd - 40587.0) * 86400.0;
    time_t t = (time_t)floor(secs);
    double frac = secs - floor(secs);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%06.3f", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec + frac);
}

static int write_keywords(engine *e, sk_coadd_result *r, int nused, double zp_out, int have_zp)
{
    sk_header *h = r->image->header;
    double mjd0 = INFINITY, mjd1 = -INFINITY, exptime = 0.0;
    int have_time = 0, have_exptime = 1;
    const char *filter = NULL;
    for (int k = 0; k < e->n; k++) {
        input_state *s = &e->inputs[k];
        if (s->npixels == 0)
            continue;
        if (isfinite(s->mjd_start)) {
            have_time = 1;
            mjd0 = fmin(mjd0, s->mjd_start);
            mjd1 = fmax(mjd1, s->mjd_end);
        }
        if (isfinite(s->exptime))
            exptime += s->exptime;
        else
            have_exptime = 0;
        if (s->filter[0])
            filter = s->filter;
    }
    int rc = SK_OK;
    for (int i = 0; i < e->grid->header->ncards && !rc; i++)
        rc = sk_header_append_records(h, e->grid->header->cards[i], 1);
    char method[32];
    snprintf(method, sizeof method, "%s", sk_combine_name(e->p->combine.method));
    for (char *c = method; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
    char kernel[32];
    snprintf(kernel, sizeof kernel, "%s", sk_kernel_name(e->p->kernel));
    for (char *c = kernel; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
    rc = rc ? rc : sk_header_set_str(h, "COMBINET", method, "combine method");
    if (!rc && e->p->combine.method == SK_COMBINE_CLIPPED) {
        rc = sk_header_set_double(h, "CLIPSIG", e->p->combine.clip_sigma, "clipping threshold (sigma)");
        rc = rc ? rc : sk_header_set_double(h, "CLIPAMP", e->p->combine.clip_ampfrac,
                                            "allowed fractional deviation");
        rc = rc ? rc : sk_header_set_long(h, "CLIPITER", e->p->combine.clip_iterations,
                                          "clipping passes at most");
    }
    rc = rc ? rc : sk_header_set_str(h, "RESAMPT", kernel, "resampling kernel");
    rc = rc ? rc : sk_header_set_long(h, "NCOMBINE", nused, "number of images combined");
    if (!rc && have_time) {
        char iso[40];
        iso_of_mjd(mjd0, iso, sizeof iso);
        rc = sk_header_set_double(h, "MJD-OBS", mjd0, "[d] start of the first exposure");
        rc = rc ? rc : sk_header_set_str(h, "DATE-OBS", iso, "UTC start of the first exposure");
        rc = rc ? rc : sk_header_set_double(h, "MJD-END", mjd1, "[d] end of the last exposure");
    }
    if (!rc && have_exptime)
        rc = sk_header_set_double(h, "EXPTIME", exptime, "[s] sum of the exposure times");
    if (!rc && filter)
        rc = sk_header_set_str(h, "FILTER", filter, NULL);
    if (!rc && have_zp)
        rc = sk_header_set_double(h, "MAGZERO", zp_out, "m = -2.5 log10(sum of pixels) + MAGZERO");
    if (!rc && r->gain > 0.0)
        rc = sk_header_set_double(h, "GAIN", r->gain, "[e-/count] effective, for source noise");
    rc = rc ? rc : sk_header_set_double(h, "VARCORR", r->varcorr,
                                        "large-aperture / per-pixel variance (mean)");
    if (!rc) {
        sk_noise_corr nc = {r->ncorr_r, 1.0, r->ncorr};
        rc = sk_header_set_double(h, "NOISEPSF", sk_noise_corr_factor(&nc, SK_NOISEPSF_FWHM_PX),
                                  "PSF-fit / per-pixel-variance noise (resampling)");
    }
    rc = rc ? rc : sk_header_set_long(h, "NREJECT", r->nrejected, "input pixels rejected");
    rc = rc ? rc : sk_header_set_str(h, "FLXSCALE", "VARIABLE", "flux x local pixel-area ratio");
    rc = rc ? rc : sk_header_set_str(h, "BUNIT", "counts", "flux per pixel at MAGZERO");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
        "Pixels hold flux per pixel: background-subtracted counts scaled to the");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
        "common zero point MAGZERO, times the output/input pixel-area ratio from");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
        "the local Jacobian, so surface brightness and total flux are conserved.");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
        "WGT is the inverse variance of each pixel; kernel-correlated noise makes");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
        "large-aperture variances VARCORR times the sum of per-pixel variances,");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
        "and PSF-fit fluxes and matched filters NOISEPSF times the noise that the");
    rc = rc ? rc : sk_header_add_comment(h, "COMMENT",
        "per-pixel variances predict (extract scales its errors and threshold by it).");
    return rc;
}

/* ---- the run ---- */

static void engine_free(engine *e)
{
    if (e->inputs)
        for (int k = 0; k < e->n; k++) {
            input_state *s = &e->inputs[k];
            sk_band_free(&s->band);
            free(s->rect);
            sk_noise_corr_clear(&s->ncorr);
            sk_band_source_close(s->src);
            sk_pixmap_free(s->map);
            sk_wcs_free(s->wcs_owned);
        }
    free(e->inputs);
    free(e->act);
    free(e->row_varcorr);
    free(e->row_count);
    free(e->row_rejected);
    free(e->row_cweight);
    sk_kernel_table_clear(&e->kt);
}

static int check_params(const sk_coadd_params *p, int n, const sk_grid *grid)
{
    if (n <= 0)
        return sk_error(SK_ENOTFOUND, "coadd: no input images");
    if (!grid || !grid->wcs || grid->width <= 0 || grid->height <= 0)
        return sk_error(SK_EINPUT, "coadd: no output grid");
    if (!sk_combine_name(p->combine.method))
        return sk_error(SK_EINPUT, "coadd: unknown combine method %d", p->combine.method);
    if (!sk_kernel_name(p->kernel))
        return sk_error(SK_EINPUT, "coadd: unknown kernel %d", p->kernel);
    if (p->combine.method == SK_COMBINE_CLIPPED &&
        (!(p->combine.clip_sigma > 0.0) || !(p->combine.clip_ampfrac >= 0.0)))
        return sk_error(SK_EINPUT, "coadd: clip_sigma must be > 0 and clip_ampfrac >= 0");
    if (!(p->tolerance_px > 0.0))
        return sk_error(SK_EINPUT, "coadd: the mapping tolerance must be > 0 px");
    if (p->reference < 0 || p->reference >= n)
        return sk_error(SK_EINPUT, "coadd: reference input %d out of range (%d inputs)",
                        p->reference, n);
    return SK_OK;
}

/* The engine's per-run arrays. */
static int engine_alloc(engine *e, const sk_coadd_params *p, const sk_grid *grid, int n)
{
    e->p = p;
    e->grid = grid;
    e->n = n;
    e->threads = p->threads > 0 ? p->threads : 1;
    e->band_rows = p->band_rows > 0 ? p->band_rows : sk_coadd_default_band_rows(n);
    long H = grid->height;
    e->inputs = calloc((size_t)n, sizeof *e->inputs);
    e->act = calloc((size_t)n, sizeof *e->act);
    e->row_varcorr = calloc((size_t)H, sizeof *e->row_varcorr);
    e->row_count = calloc((size_t)H, sizeof *e->row_count);
    e->row_rejected = calloc((size_t)H, sizeof *e->row_rejected);
    e->row_cweight = calloc((size_t)H * (size_t)n, sizeof *e->row_cweight);
    if (!e->inputs || !e->act || !e->row_varcorr || !e->row_count || !e->row_rejected ||
        !e->row_cweight)
        return sk_error(SK_EIO, "coadd: out of memory");
    return sk_kernel_table_init(&e->kt, p->kernel);
}

/* Inputs: metadata, one filter, zero points and flux scales (forced, or
 * to the output zero point *zp_out when every input has one: *have_zp). */
static int input_scales(engine *e, const sk_coadd_input *in, const double *forced_scale,
                        int *have_zp, double *zp_out)
{
    const sk_coadd_params *p = e->p;
    const int n = e->n;
    int nzp = 0, rc;
    for (int k = 0; k < n; k++) {
        input_state *s = &e->inputs[k];
        s->in = &in[k];
        s->name = in[k].name ? in[k].name : in[k].path ? in[k].path : "(image in memory)";
        if ((rc = input_metadata(&in[k], s)))
            return rc;
        if (strcmp(s->filter, e->inputs[0].filter) != 0)
            return sk_error(SK_EINPUT, "%s: filter '%s' differs from '%s' of %s", s->name, s->filter,
                            e->inputs[0].filter, e->inputs[0].name);
        nzp += isfinite(s->zp);
    }
    *have_zp = 0;
    *zp_out = NAN;
    if (!forced_scale) {
        if (nzp > 0 && nzp < n) {
            for (int k = 0; k < n; k++)
                if (!isfinite(e->inputs[k].zp))
                    return sk_error(SK_EINPUT, "%s: no zero point (the other inputs have one)",
                                    e->inputs[k].name);
        }
        *have_zp = nzp == n;
        *zp_out = isfinite(p->zero_point) ? p->zero_point : e->inputs[p->reference].zp;
        if (!*have_zp && isfinite(p->zero_point))
            return sk_error(SK_EINPUT, "coadd: a zero point of %g was asked for but the inputs have none",
                            p->zero_point);
    }
    for (int k = 0; k < n; k++) {
        input_state *s = &e->inputs[k];
        s->scale = forced_scale ? forced_scale[k] : *have_zp ? pow(10.0, 0.4 * (*zp_out - s->zp)) : 1.0;
        if (!(s->scale > 0.0) || !isfinite(s->scale))
            return sk_error(SK_EINPUT, "%s: flux scale %g is not usable", s->name, s->scale);
        s->poisson_per_area = s->gain > 0.0 ? s->scale / s->gain : 0.0;
    }
    return SK_OK;
}

/* The pixel mapping of every input onto the grid, on the threads. */
static int map_inputs(engine *e)
{
    int rc = sk_parallel_for_each(e->n, e->threads, map_one, e);
    if (rc)
        return rc;
    for (int k = 0; k < e->n; k++) {
        input_state *s = &e->inputs[k];
        if (s->bx1 > s->bx0)
            sk_debug("%s: output box [%ld,%ld)x[%ld,%ld), mapping nodes every %d px, error %.2g px, "
                     "noise factor %.3f", s->name, s->bx0, s->bx1, s->by0, s->by1,
                     sk_pixmap_step(s->map), sk_pixmap_error_px(s->map), s->noise_factor);
    }
    return SK_OK;
}

/* Output rows [band_y0, band_y1): the inputs that reach them loaded, the
 * rows combined, the inputs finished with closed. */
static int run_band(engine *e)
{
    e->nact = 0;
    for (int k = 0; k < e->n; k++) {
        input_state *s = &e->inputs[k];
        if (s->bx1 > s->bx0 && s->by0 < e->band_y1 && s->by1 > e->band_y0)
            e->act[e->nact++] = k;
    }
    int rc = sk_parallel_for_each(e->nact, e->threads, load_one, e);
    if (!rc) {
        const sk_scratch rows = {sizeof(row_scratch), row_scratch_init, row_scratch_release};
        rc = sk_parallel_for_scratch(e->band_y1 - e->band_y0, 1, e->threads, &rows, process_rows,
                                     e);
    }
    for (int j = 0; j < e->nact; j++) {
        input_state *s = &e->inputs[e->act[j]];
        s->active = 0;
        if (s->by1 <= e->band_y1) { /* finished with this input */
            sk_band_free(&s->band);
            sk_band_source_close(s->src);
            s->src = NULL;
        }
    }
    return rc;
}

/* The result's statistics in a fixed order: variance correction, rejected
 * pixels, per-input info and the effective gain; *nused inputs overlap. */
static void result_statistics(engine *e, sk_coadd_result *r, int *nused)
{
    const long H = e->grid->height;
    const int n = e->n;
    double vsum = 0.0;
    long vcount = 0, rejected = 0;
    for (long y = 0; y < H; y++) {
        vsum += e->row_varcorr[y];
        vcount += e->row_count[y];
        rejected += e->row_rejected[y];
    }
    r->varcorr = vcount > 0 ? vsum / vcount : 1.0;
    r->nrejected = rejected;
    r->ninputs = n;
    int gain_known = 1;
    double sc = 0.0, sc2 = 0.0;
    *nused = 0;
    for (int k = 0; k < n; k++) {
        input_state *s = &e->inputs[k];
        double cw = 0.0;
        for (long y = 0; y < H; y++)
            cw += e->row_cweight[(size_t)y * n + k];
        sk_coadd_input_info *inf = &r->info[k];
        inf->flux_scale = s->scale;
        inf->npixels = s->npixels;
        inf->map_step = s->map ? sk_pixmap_step(s->map) : 0;
        inf->map_error_px = s->map ? sk_pixmap_error_px(s->map) : 0.0;
        inf->mjd_start = s->mjd_start;
        inf->mjd_end = s->mjd_end;
        inf->exptime_s = s->exptime;
        if (s->npixels == 0) {
            sk_warn("%s does not overlap the output grid", s->name);
            continue;
        }
        (*nused)++;
        double c = cw / (double)s->npixels; /* mean combine weight */
        inf->mean_cweight = c;
        if (s->gain > 0.0) {
            sc += c;
            sc2 += c * c * s->scale / s->gain;
        } else {
            gain_known = 0;
        }
    }
    r->gain = gain_known && sc2 > 0.0 ? sc * sc / sc2 : 0.0;
}

/* The coadd's pixel-noise correlation: the inputs' weighted by their
 * shares of its variance, c^2 v = c / (area nf) for combine weight
 * c = 1 / (area v nf) (the area ratio is common to the inputs). */
static int result_correlation(engine *e, sk_coadd_result *r)
{
    const sk_noise_corr **c = malloc(sizeof *c * (size_t)e->n);
    double *u = malloc(sizeof *u * (size_t)e->n);
    int rc = c && u ? SK_OK : sk_error(SK_EIO, "coadd: out of memory");
    for (int k = 0; !rc && k < e->n; k++) {
        c[k] = &e->inputs[k].ncorr;
        u[k] = e->inputs[k].npixels > 0 ? r->info[k].mean_cweight / e->inputs[k].noise_factor : 0.0;
    }
    sk_noise_corr out;
    rc = rc ? rc : sk_noise_corr_combine(c, u, e->n, &out);
    if (!rc) {
        r->ncorr = out.c;
        r->ncorr_r = out.r;
    }
    free(c);
    free(u);
    return rc;
}

/* Output rows per band when none are asked for: DEFAULT_BAND_ROWS, and
 * beyond BAND_INPUTS inputs fewer in proportion (at least MIN_BAND_ROWS),
 * so that the bands of every input held at once stay about as large as
 * those of BAND_INPUTS inputs (the result does not depend on them). */
long sk_coadd_default_band_rows(int n)
{
    if (n <= BAND_INPUTS)
        return DEFAULT_BAND_ROWS;
    long rows = DEFAULT_BAND_ROWS * BAND_INPUTS / n;
    return rows > MIN_BAND_ROWS ? rows : MIN_BAND_ROWS;
}

/* The output planes of a run: new, or those of an earlier run of the same
 * grid handed back (every pixel is written by process_row). */
static int result_planes(sk_coadd_result *r, long W, long H, sk_image *image, int32_t *nimg)
{
    if (image && image->width == W && image->height == H && nimg) {
        sk_header_free(image->header);
        sk_wcs_free(image->wcs);
        image->wcs = NULL;
        image->header = sk_header_new();
        r->image = image;
        r->nimg = nimg;
        return image->header ? SK_OK : SK_EIO;
    }
    sk_image_free(image);
    free(nimg);
    r->image = sk_image_new_unset(W, H);
    r->nimg = r->image ? sk_big_malloc((size_t)W * (size_t)H, sizeof *r->nimg) : NULL;
    return r->image && r->nimg ? SK_OK : SK_EIO;
}

static int coadd_run(const sk_coadd_input *in, int n, const sk_grid *grid,
                     const sk_coadd_params *p, const double *forced_scale, sk_image *image,
                     int32_t *nimg, sk_coadd_result **out)
{
    *out = NULL;
    int rc = check_params(p, n, grid);
    if (rc) {
        sk_image_free(image);
        free(nimg);
        return rc;
    }
    engine E = {0}, *e = &E;
    long H = grid->height, W = grid->width;
    sk_coadd_result *r = NULL;
    int have_zp = 0, nused = 0;
    double zp_out = NAN;
    rc = engine_alloc(e, p, grid, n);
    rc = rc ? rc : input_scales(e, in, forced_scale, &have_zp, &zp_out);
    rc = rc ? rc : map_inputs(e);
    if (rc)
        goto fail;

    /* output */
    r = calloc(1, sizeof *r);
    if (!r) {
        rc = sk_error(SK_EIO, "coadd: out of memory");
        goto fail;
    }
    /* every pixel is written by process_row: not cleared here, so that
     * the threads filling the bands first-touch (fault in) the pages */
    int planes = result_planes(r, W, H, image, nimg);
    image = NULL;
    nimg = NULL;
    r->info = calloc((size_t)n, sizeof *r->info);
    if (planes || !r->info) {
        rc = sk_error(SK_EIO, "coadd: out of memory for a %ld x %ld output", W, H);
        goto fail;
    }
    e->out = r->image;
    e->nimg = r->nimg;

    for (long y0 = 0; y0 < H; y0 += e->band_rows) {
        e->band_y0 = y0;
        e->band_y1 = y0 + e->band_rows < H ? y0 + e->band_rows : H;
        if ((rc = run_band(e)))
            goto fail;
        if (p->progress)
            p->progress(p->progress_ctx, e->band_y1, H);
    }

    result_statistics(e, r, &nused);
    if ((rc = result_correlation(e, r)))
        goto fail;
    r->zero_point = have_zp ? zp_out : NAN;
    if (nused == 0) {
        rc = sk_error(SK_ENOTFOUND, "coadd: no input overlaps the output grid");
        goto fail;
    }
    if ((rc = write_keywords(e, r, nused, zp_out, have_zp)))
        goto fail;
    if ((rc = sk_wcs_from_header(r->image->header, &r->image->wcs)))
        goto fail;
    engine_free(e);
    *out = r;
    return SK_OK;
fail:
    engine_free(e);
    sk_coadd_result_free(r);
    sk_image_free(image);
    free(nimg);
    return rc;
}

int sk_coadd_run(const sk_coadd_input *in, int n, const sk_grid *grid, const sk_coadd_params *p,
                 sk_coadd_result **out)
{
    return coadd_run(in, n, grid, p, NULL, NULL, NULL, out);
}

void sk_coadd_result_free(sk_coadd_result *r)
{
    if (!r)
        return;
    sk_image_free(r->image);
    free(r->nimg);
    free(r->score);
    free(r->info);
    free(r->ncorr);
    free(r);
}

/* The SCORE HDU of a proper coadd, with its normalisation. */
static int write_score(sk_fits_writer *w, long W, long H, const float *score)
{
    sk_header *sh = sk_header_new();
    int rc = sh ? SK_OK : sk_error(SK_EIO, "score image: out of memory");
    rc = rc ? rc : sk_header_set_str(sh, "SCORENRM", "SNR", "S = (R corr P_R)/(sigma_R sqrt(sum P_R^2))");
    rc = rc ? rc : sk_header_add_comment(sh, "COMMENT", "score image S of the proper coadd: SCI correlated "
                                         "with its PSF, in units of the noise");
    rc = rc ? rc : sk_header_add_comment(sh, "COMMENT", "that filter leaves (sigma_R = 1/sqrt(WGT)): a point "
                                         "source's matched-filter SNR at its");
    rc = rc ? rc : sk_header_add_comment(sh, "COMMENT", "position; unit variance on blank sky; 0 without data");
    rc = rc ? rc : sk_fits_writer_add_image(w, "SCORE", -32, W, H, score, sh);
    sk_header_free(sh);
    return rc;
}

/* NIMG as 16-bit values, on the threads: the largest count of each
 * chunk of rows, and the counts copied when every one fits. */
typedef struct nimg16_job {
    const int32_t *nimg;
    uint16_t *n16;
    long W;
    int32_t *chunk_max;
} nimg16_job;

#define NIMG_CHUNK_ROWS 64

static int nimg_max_rows(long r0, long r1, void *u)
{
    nimg16_job *j = u;
    int32_t m = 0;
    for (size_t i = (size_t)r0 * j->W; i < (size_t)r1 * j->W; i++)
        m = j->nimg[i] > m ? j->nimg[i] : m;
    j->chunk_max[r0 / NIMG_CHUNK_ROWS] = m;
    return SK_OK;
}

static int nimg_copy_rows(long r0, long r1, void *u)
{
    nimg16_job *j = u;
    for (size_t i = (size_t)r0 * j->W; i < (size_t)r1 * j->W; i++)
        j->n16[i] = (uint16_t)j->nimg[i];
    return SK_OK;
}

/* The largest count of NIMG (W x H) on up to `threads` threads. */
static int32_t nimg_max(const int32_t *nimg, long W, long H, int threads)
{
    long nch = (H + NIMG_CHUNK_ROWS - 1) / NIMG_CHUNK_ROWS;
    int32_t *cm = calloc((size_t)(nch > 0 ? nch : 1), sizeof *cm), maxn = 0;
    nimg16_job j = {nimg, NULL, W, cm};
    if (cm && sk_parallel_for(H, NIMG_CHUNK_ROWS, threads, nimg_max_rows, &j) == SK_OK) {
        for (long c = 0; c < nch; c++)
            maxn = cm[c] > maxn ? cm[c] : maxn;
    } else {
        for (size_t i = 0; i < (size_t)W * (size_t)H; i++)
            maxn = nimg[i] > maxn ? nimg[i] : maxn;
    }
    free(cm);
    return maxn;
}

int sk_coadd_write(const char *path, const sk_coadd_result *r, const sk_write_opts *opts)
{
    sk_write_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    const sk_image *img = r->image;
    long W = img->width, H = img->height;
    size_t npx = (size_t)W * (size_t)H;
    int32_t maxn = nimg_max(r->nimg, W, H, opts->threads);
    sk_fits_writer *w = NULL;
    int rc = sk_fits_writer_open(path, opts->compress, &w);
    if (rc)
        return rc;
    if (opts->md5 && (rc = sk_fits_writer_md5(w, opts->threads, opts->md5))) {
        sk_fits_writer_abort(w);
        return rc;
    }
    sk_header *wh = sk_header_new(), *fh = sk_header_new(), *nh = sk_header_new();
    rc = wh && fh && nh ? SK_OK : sk_error(SK_EIO, "%s: out of memory", path);
    rc = rc ? rc : sk_fits_writer_add_image(w, "SCI", -32, W, H, img->sci, img->header);
    rc = rc ? rc : sk_header_add_comment(wh, "COMMENT", "inverse variance of each SCI pixel; 0 = no data");
    rc = rc ? rc : sk_fits_writer_add_image(w, "WGT", -32, W, H, img->weight, wh);
    rc = rc ? rc : sk_flag_describe(fh);
    rc = rc ? rc : sk_fits_writer_add_image(w, "FLG", 16, W, H, img->flags, fh);
    rc = rc ? rc : sk_header_add_comment(nh, "COMMENT", "number of inputs combined in each pixel");
    if (!rc) {
        if (maxn <= 65535) {
            uint16_t *n16 = sk_big_malloc(npx, sizeof *n16);
            if (!n16) {
                rc = sk_error(SK_EIO, "%s: out of memory", path);
            } else {
                nimg16_job j = {r->nimg, n16, W, NULL};
                (void)sk_parallel_for(H, NIMG_CHUNK_ROWS, opts->threads, nimg_copy_rows, &j);
                rc = sk_fits_writer_add_image(w, "NIMG", 16, W, H, n16, nh);
                free(n16);
            }
        } else {
            rc = sk_fits_writer_add_image(w, "NIMG", 32, W, H, r->nimg, nh);
        }
    }
    if (!rc && r->score)
        rc = write_score(w, W, H, r->score);
    sk_header_free(wh);
    sk_header_free(fh);
    sk_header_free(nh);
    if (rc) {
        sk_fits_writer_abort(w);
        return rc;
    }
    return sk_fits_writer_commit(w);
}

int sk_resample_image(const sk_image *img, const float *background, double flux_scale,
                      const sk_grid *grid, int kernel, double tolerance_px, int threads,
                      sk_image **out)
{
    *out = NULL;
    int32_t *nimg = NULL;
    int rc = sk_resample_image_again(img, background, flux_scale, grid, kernel, tolerance_px, threads,
                                     out, &nimg);
    free(nimg);
    return rc;
}

int sk_resample_image_again(const sk_image *img, const float *background, double flux_scale,
                            const sk_grid *grid, int kernel, double tolerance_px, int threads,
                            sk_image **out, int32_t **nimg)
{
    sk_image *image = *out;
    int32_t *counts = *nimg;
    *out = NULL;
    *nimg = NULL;
    if (!img) {
        sk_image_free(image);
        free(counts);
        return sk_error(SK_EINPUT, "resample: no image");
    }
    sk_coadd_input in;
    sk_coadd_input_init(&in);
    in.image = img;
    in.background = background;
    in.name = img->path;
    sk_coadd_params p;
    sk_coadd_params_default(&p);
    p.combine.method = SK_COMBINE_MEAN;
    p.kernel = kernel;
    p.tolerance_px = tolerance_px;
    p.threads = threads;
    sk_coadd_result *r;
    int rc = coadd_run(&in, 1, grid, &p, &flux_scale, image, counts, &r);
    if (rc)
        return rc;
    *out = r->image;
    *nimg = r->nimg;
    r->image = NULL;
    r->nimg = NULL;
    sk_coadd_result_free(r);
    return SK_OK;
}
