/* coadd_io.c: reading rectangles of a coadd input (science, noise, mask and background planes, from memory or from FITS files) ready for resampling. */
#include <fcntl.h>
#include <fitsio.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/bigbuf.h"
#include "direct_priv.h"
#include "io/fits_priv.h"
#include "skystack/error.h"

/* One plane of a file, open at its HDU. */
typedef struct plane {
    fitsfile *f;
    const char *path;
    char label[96];
    void *map;                  /* the file mapped (NULL: read through cfitsio) */
    size_t map_len;
    const unsigned char *data;  /* its pixels in the map, stored big-endian */
    size_t released;            /* bytes from the map's start given back */
    int null_check;             /* floats through cfitsio's null check (NaN) */
} plane;

struct sk_band_source {
    const sk_coadd_input *in;
    const char *name;
    long width, height;
    sk_header *header;       /* owned (file inputs) */
    const sk_header *hdr;    /* the header to use */
    int relative;            /* weights are relative */
    plane sci, noise, mask, bg;
    int noise_kind;          /* enum sk_noise_kind; -1: none (weight 1) */
    int mask_kind;           /* -1 none, 0 data-quality codes, 1 skystack flags */
    int has_saturate;
    double saturate;
    sk_bkg_mesh *mesh;       /* background as a mesh product */
    double noise_rms;        /* for relative weights */
    float *scr_wgt, *scr_bg; /* scratch kept between bands */
    double *scr_mask;
    size_t cap_wgt, cap_bg, cap_mask;
    int mask_u16;            /* flags plane of 16-bit unsigned integers */
};

static void plane_close(plane *p)
{
    if (p->map)
        munmap(p->map, p->map_len);
    p->map = NULL;
    p->data = NULL;
    int status = 0;
    if (p->f)
        fits_close_file(p->f, &status);
    fits_clear_errmsg();
    p->f = NULL;
}

/* The current HDU is a 2-D image: its size. */
static int image_size(fitsfile *f, const char *path, long *w, long *h)
{
    int status = 0, naxis = 0, type = 0;
    long naxes[9] = {0};
    if (fits_get_hdu_type(f, &type, &status) || type != IMAGE_HDU ||
        fits_get_img_dim(f, &naxis, &status) || naxis < 2 || naxis > 9 ||
        fits_get_img_size(f, naxis, naxes, &status) || naxes[0] <= 0 || naxes[1] <= 0) {
        fits_clear_errmsg();
        return sk_error(SK_EINPUT, "%s: not a 2-D image HDU", path);
    }
    for (int k = 2; k < naxis; k++)
        if (naxes[k] != 1)
            return sk_error(SK_EINPUT, "%s: image has more than two non-degenerate axes", path);
    *w = naxes[0];
    *h = naxes[1];
    return SK_OK;
}

/* Open `path` at `hdu` (NULL: `fallback` when the file has such a 2-D
 * image, else SCI or the first 2-D image) and check its size. */
static int plane_open(plane *p, const char *path, const char *hdu, const char *fallback, long w,
                      long h, const char *what)
{
    memset(p, 0, sizeof *p);
    p->path = path;
    snprintf(p->label, sizeof p->label, "%s", what);
    int rc = sk_fits_open_read(path, &p->f);
    if (rc)
        return rc;
    if (!hdu && fallback && *fallback) {
        int status = 0;
        long fw, fh;
        if (fits_movnam_hdu(p->f, ANY_HDU, (char *)fallback, 0, &status) == 0 &&
            image_size(p->f, path, &fw, &fh) == SK_OK)
            hdu = fallback;
        sk_error_clear();
        fits_clear_errmsg();
    }
    rc = sk_fits_goto_hdu(p->f, path, hdu, 0);
    long pw = 0, ph = 0;
    if (!rc)
        rc = image_size(p->f, path, &pw, &ph);
    if (!rc)
        rc = sk_fits_check_data_size(p->f, path, what);
    if (!rc && (pw != w || ph != h))
        rc = sk_error(SK_EINPUT, "%s: %s is %ld x %ld but the image is %ld x %ld", path, what, pw,
                      ph, w, h);
    if (rc)
        plane_close(p);
    return rc;
}

/* Map the open plane's file when its pixels are stored plainly as
 * `bitpix` (sk_fits_plain_offset) on a little-endian host: its bands are
 * then read where the page cache holds them, byte-swapped as they are
 * made ready, with no copy through read(2) and cfitsio's buffers. Left
 * unmapped (read through cfitsio) otherwise or when mapping fails. */
static void plane_map(plane *p, int bitpix, long w, long h)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    long long off = 0;
    if (!sk_fits_plain_offset(p->f, p->path, bitpix, &off))
        return;
    int fd = open(p->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    size_t need = (size_t)off + (size_t)w * (size_t)h * (size_t)(bitpix == 16 ? 2 : 4);
    if (fstat(fd, &st) == 0 && (size_t)st.st_size >= need) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            p->map = m;
            p->map_len = (size_t)st.st_size;
            p->data = (const unsigned char *)m + off;
        }
    }
    close(fd);
#else
    (void)p;
    (void)bitpix;
    (void)w;
    (void)h;
#endif
}

/* Give back the pages of the mapped plane before byte `upto` of its
 * pixels: bands are read in rising rows, so the rows above a band are not
 * read again (if they are, they come back from the page cache). Without
 * this the pages read stay in the process's resident set until the input
 * is closed, and a coadd of many inputs would hold all of them. */
static void plane_release(plane *p, size_t upto)
{
    if (!p->map)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t end = ((size_t)(p->data - (const unsigned char *)p->map) + upto) / page * page;
    if (end > p->map_len)
        end = p->map_len / page * page;
    if (end > p->released) {
        (void)madvise((char *)p->map + p->released, end - p->released, MADV_DONTNEED);
        p->released = end;
    }
}

/* Read the rectangle of the open plane (`width` columns) as float or
 * double: whole rows as one run of pixels (one large read, straight into
 * buf), else as a subset. */
static int plane_read(plane *p, int datatype, long width, long x0, long y0, long w, long h, void *buf)
{
    long fpixel[9], lpixel[9], inc[9];
    for (int k = 0; k < 9; k++)
        fpixel[k] = lpixel[k] = inc[k] = 1;
    fpixel[0] = x0 + 1;
    fpixel[1] = y0 + 1;
    lpixel[0] = x0 + w;
    lpixel[1] = y0 + h;
    int status = 0, anynul = 0;
    /* floats of the science and noise planes without cfitsio's null check
     * (a null value of 0): the values as stored, which finish_row() and
     * to_weight() take as the check made them */
    float fnull = p->null_check ? NAN : 0.0f;
    double dnan = NAN;
    void *nulval = datatype == TFLOAT ? (void *)&fnull : datatype == TDOUBLE ? (void *)&dnan : NULL;
    int bad = x0 == 0 && w == width
                  ? fits_read_img(p->f, datatype, (LONGLONG)y0 * width + 1, (LONGLONG)w * h, nulval, buf,
                                  &anynul, &status)
                  : fits_read_subset(p->f, datatype, fpixel, lpixel, inc, nulval, buf, &anynul, &status);
    if (bad) {
        char what[160];
        snprintf(what, sizeof what, "reading rows %ld-%ld of the %s", y0 + 1, y0 + h, p->label);
        return sk_fits_status_error(status, p->path, what);
    }
    return SK_OK;
}

int sk_band_source_open(const sk_coadd_input *in, sk_band_source **out)
{
    *out = NULL;
    sk_band_source *s = calloc(1, sizeof *s);
    if (!s)
        return sk_error(SK_EIO, "coadd: out of memory");
    s->in = in;
    s->name = in->name ? in->name : in->path ? in->path : "(image in memory)";
    s->noise_kind = -1;
    s->mask_kind = -1;
    if (in->image) {
        s->width = in->image->width;
        s->height = in->image->height;
        s->hdr = in->image->header;
        s->relative = in->image->weight_is_relative;
    } else {
        if (!in->path) {
            free(s);
            return sk_error(SK_EINPUT, "coadd: an input has neither pixels nor a path");
        }
        const sk_read_opts *o = &in->read;
        const char *path = in->path;
        int rc = sk_fits_open_read(path, &s->sci.f);
        s->sci.path = path;
        snprintf(s->sci.label, sizeof s->sci.label, "science image");
        if (!rc)
            rc = sk_fits_goto_hdu(s->sci.f, path, o->hdu, 0);
        if (!rc)
            rc = image_size(s->sci.f, path, &s->width, &s->height);
        if (!rc)
            rc = sk_fits_check_data_size(s->sci.f, path, "science image");
        if (!rc)
            rc = sk_fits_current_header(s->sci.f, path, &s->header);
        int hdunum = 0;
        char extname[FLEN_VALUE] = "";
        sk_companions comp;
        memset(&comp, 0, sizeof comp);
        if (!rc) {
            fits_get_hdu_num(s->sci.f, &hdunum);
            if (hdunum > 1 && sk_header_get_str(s->header, "EXTNAME", extname, sizeof extname) != 1)
                extname[0] = '\0';
            /* the planes the file holds under the names pipelines use */
            rc = sk_fits_find_companions(s->sci.f, path, hdunum, s->width, s->height, &comp);
        }
        s->hdr = s->header;
        long w = s->width, h = s->height;
        if (!rc) {
            if (o->noise_path) {
                rc = plane_open(&s->noise, o->noise_path, o->noise_hdu, extname, w, h, "noise plane");
                s->noise_kind = o->noise_kind;
            } else if (o->noise_hdu) {
                rc = plane_open(&s->noise, path, o->noise_hdu, NULL, w, h, "noise plane");
                s->noise_kind = o->noise_kind;
            } else if (comp.noise_hdu[0]) {
                rc = plane_open(&s->noise, path, comp.noise_hdu, NULL, w, h,
                                strcmp(comp.noise_hdu, "WGT") ? "noise plane" : "weight plane");
                s->noise_kind = comp.noise_kind;
                s->relative = comp.noise_relative;
            } else {
                s->relative = 1;
            }
        }
        if (!rc) {
            if (o->mask_path) {
                rc = plane_open(&s->mask, o->mask_path, o->mask_hdu, extname, w, h, "mask");
                s->mask_kind = o->mask_is_flags ? 1 : 0;
            } else if (o->mask_hdu) {
                rc = plane_open(&s->mask, path, o->mask_hdu, NULL, w, h, "mask");
                s->mask_kind = o->mask_is_flags ? 1 : 0;
            } else if (comp.mask_hdu[0]) {
                rc = plane_open(&s->mask, path, comp.mask_hdu, NULL, w, h,
                                comp.mask_is_flags ? "flag plane" : "mask");
                s->mask_kind = comp.mask_is_flags;
            }
        }
        if (!rc && s->mask.f && s->mask_kind == 1) {
            int status = 0, bitpix = 0;
            fits_get_img_equivtype(s->mask.f, &bitpix, &status);
            s->mask_u16 = status == 0 && bitpix == USHORT_IMG;
            fits_clear_errmsg();
        }
        if (!rc) {
            plane_map(&s->sci, -32, w, h);
            if (s->noise.f && s->noise_kind == SK_NOISE_WEIGHT)
                plane_map(&s->noise, -32, w, h);
            if (s->mask.f && s->mask_u16)
                plane_map(&s->mask, 16, w, h);
        }
        if (!rc && !o->no_saturation) {
            const char *key = o->saturate_key ? o->saturate_key : "SATURATE";
            s->has_saturate = sk_header_get_double(s->header, key, &s->saturate) == 1;
        }
        if (rc) {
            sk_band_source_close(s);
            return rc;
        }
    }
    s->noise_rms = in->noise_rms;
    if (in->background_path && !in->background) {
        int rc;
        if (!in->background_hdu && sk_fits_has_hdu(in->background_path, "BKGMESH")) {
            rc = sk_bkg_mesh_read(in->background_path, &s->mesh);
            if (!rc && (sk_bkg_mesh_width(s->mesh) != s->width ||
                        sk_bkg_mesh_height(s->mesh) != s->height))
                rc = sk_error(SK_EINPUT, "%s: background of a %ld x %ld image, but %s is %ld x %ld",
                              in->background_path, sk_bkg_mesh_width(s->mesh),
                              sk_bkg_mesh_height(s->mesh), s->name, s->width, s->height);
            if (!rc && !(s->noise_rms > 0.0) && sk_bkg_mesh_rms(s->mesh) > 0.0)
                s->noise_rms = sk_bkg_mesh_rms(s->mesh);
        } else {
            rc = plane_open(&s->bg, in->background_path, in->background_hdu, NULL, s->width,
                            s->height, "background map");
            s->bg.null_check = 1;
        }
        if (rc) {
            sk_band_source_close(s);
            return rc;
        }
    }
    if (s->relative && !(s->noise_rms > 0.0)) {
        sk_band_source_close(s);
        return sk_error(SK_EINPUT, "%s: the weights are relative (no noise plane) and no "
                        "noise rms is known for it", s->name);
    }
    *out = s;
    return SK_OK;
}

void sk_band_source_close(sk_band_source *s)
{
    if (!s)
        return;
    plane_close(&s->sci);
    plane_close(&s->noise);
    plane_close(&s->mask);
    plane_close(&s->bg);
    sk_bkg_mesh_free(s->mesh);
    free(s->scr_wgt);
    free(s->scr_bg);
    free(s->scr_mask);
    sk_header_free(s->header);
    free(s);
}

long sk_band_source_width(const sk_band_source *s) { return s->width; }
long sk_band_source_height(const sk_band_source *s) { return s->height; }
const sk_header *sk_band_source_header(const sk_band_source *s) { return s->hdr; }
int sk_band_source_relative(const sk_band_source *s) { return s->relative; }

/* Make *p hold n elements of size el (kept when large enough); 0 when out of memory. */
static int grow(void **p, size_t *cap, size_t n, size_t el)
{
    if (n <= *cap)
        return 1;
    /* an eighth more, as sk_band_alloc: bands grow by a few rows */
    size_t c = n + n / 8;
    free(*p);
    *p = sk_big_malloc(c, el);
    *cap = *p ? c : 0;
    return *p != NULL;
}

/* Weight from a noise value of the given kind (as fits_read.c converts),
 * read without cfitsio's null check: zero exponents count as 0. */
static int to_weight(float v, int kind, const char *path, long x, long y, float *wgt)
{
    if (fabsf(v) < FLT_MIN)
        v = 0.0f;
    if (!isfinite(v)) {
        *wgt = 0.0f;
    } else if (kind == SK_NOISE_WEIGHT) {
        *wgt = v > 0.0f ? v : 0.0f;
    } else if (v < 0.0f) {
        return sk_error(SK_EINPUT, "%s: negative %s %g at pixel (%ld, %ld) (1-based)", path,
                        kind == SK_NOISE_VARIANCE ? "variance" : "rms", v, x + 1, y + 1);
    } else if (v == 0.0f) {
        *wgt = 0.0f;
    } else {
        double var = kind == SK_NOISE_VARIANCE ? (double)v : (double)v * (double)v;
        double inv = 1.0 / var;
        *wgt = inv < (double)HUGE_VALF && isfinite(inv) ? (float)inv : 0.0f;
    }
    return SK_OK;
}

/* How a row is made ready: the flux scale f, rms2 the variance of unit
 * weight, level0 the background without a map, sat the saturation level
 * (+inf: none); flush: the row's values and weights come straight from a
 * file's -32 plane, so that those with a zero exponent (zeros and
 * subnormals) count as +0 and non-positive or non-finite weights as 0, as
 * cfitsio's null check made them. */
typedef struct finish_par {
    double level0, rms2, f, sat;
    int flush_sci, flush_wgt;
} finish_par;

/* A row's planes: the band's science (made ready in place), variance and
 * flags; the weights and background (bg NULL: the level level0); where
 * the planes are mapped from their files, the stored big-endian science,
 * weights (SK_NOISE_WEIGHT) and flags (16-bit unsigned), read instead of
 * sci, wgt and flags. */
typedef struct finish_rowp {
    float *sci, *var;
    uint16_t *flags;
    const float *wgt, *bg;
    const unsigned char *sci_be, *wgt_be, *mask_be;
} finish_rowp;

/* A stored big-endian float; a stored 16-bit value with BZERO 32768. */
static inline float be_float(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static inline uint16_t be_ushort(const unsigned char *p)
{
    return (uint16_t)(((unsigned)p[0] << 8 | p[1]) ^ 0x8000u);
}

/* Pixels [x0, w) of a row made ready: value - background times the
 * flux scale, variance rms2 f^2 / weight, flags for non-finite values,
 * backgrounds and zero weights, saturated values (before the scale). */
static void finish_tail(long x0, long w, const finish_rowp *R, const finish_par *P)
{
    double f = P->f, f2 = f * f, rms2 = P->rms2;
    for (long x = x0; x < w; x++) {
        double v = R->sci_be ? be_float(R->sci_be + 4 * x) : R->sci[x];
        double wt = R->wgt_be ? be_float(R->wgt_be + 4 * x) : R->wgt[x];
        double level = R->bg ? (double)R->bg[x] : P->level0;
        uint16_t fl = R->mask_be ? be_ushort(R->mask_be + 2 * x) : R->flags[x];
        if (P->flush_sci && fabs(v) < FLT_MIN)
            v = 0.0;
        if (P->flush_wgt && !(wt >= FLT_MIN))
            wt = 0.0;
        if (isfinite(v) && v >= P->sat)
            fl |= SK_FLAG_SATURATED;
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
        float vr = wt > 0.0 ? (float)(rms2 * f2 / wt) : 0.0f;
        if (wt > 0.0 && !(vr > 0.0f && isfinite(vr))) {
            vr = 0.0f; /* a weight so large or small that float loses it */
            fl |= SK_FLAG_ZEROWEIGHT;
        }
        R->flags[x] = fl;
        R->sci[x] = (float)((v - level) * f);
        R->var[x] = vr;
    }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SK_HAVE_AVX2_FINISH 1
typedef double v4df __attribute__((vector_size(32)));
typedef long long v4di __attribute__((vector_size(32)));
typedef float v4sf __attribute__((vector_size(16)));
typedef int v4si __attribute__((vector_size(16)));
typedef uint16_t v4hu __attribute__((vector_size(8)));
typedef unsigned char v16qu __attribute__((vector_size(16)));

/* Four stored big-endian floats. */
__attribute__((target("avx2"))) static inline v4sf load_be4(const unsigned char *p)
{
    const v16qu rev = {3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12};
    v16qu b;
    memcpy(&b, p, sizeof b);
    return (v4sf)__builtin_shuffle(b, rev);
}

/* finish_tail() four pixels at a time in AVX2 (without FMA): the same
 * operations on doubles, so the same results; the flags by the same
 * rules as lane masks. Returns the pixels done (a multiple of 4); the
 * upper halves of the vector registers are cleared before returning, so
 * that the SSE code that follows pays no transition. */
__attribute__((target("avx2"))) static long finish_avx2(long w, const finish_rowp *R, const finish_par *P)
{
    const double f = P->f, c = P->rms2 * (f * f); /* rms2 * f2, as finish_tail() groups it */
    const v4df big = {DBL_MAX, DBL_MAX, DBL_MAX, DBL_MAX}, one = {1.0, 1.0, 1.0, 1.0};
    const v4df zero = {0.0, 0.0, 0.0, 0.0}, vf = {f, f, f, f}, vc = {c, c, c, c};
    const v4df tiny = {FLT_MIN, FLT_MIN, FLT_MIN, FLT_MIN};
    const v4df vsat = {P->sat, P->sat, P->sat, P->sat};
    const v4df l0 = {P->level0, P->level0, P->level0, P->level0};
    const v4di sign = {LLONG_MAX, LLONG_MAX, LLONG_MAX, LLONG_MAX};
    const v4di fs = {-(long long)P->flush_sci, -(long long)P->flush_sci, -(long long)P->flush_sci,
                     -(long long)P->flush_sci};
    const v4di fw = {-(long long)P->flush_wgt, -(long long)P->flush_wgt, -(long long)P->flush_wgt,
                     -(long long)P->flush_wgt};
    const v4sf fzero = {0.0f, 0.0f, 0.0f, 0.0f}, fbig = {FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX};
    const v4si bad = {SK_FLAG_BAD, SK_FLAG_BAD, SK_FLAG_BAD, SK_FLAG_BAD};
    const v4si nonfin = bad | SK_FLAG_NONFINITE, satf = bad * 0 + SK_FLAG_SATURATED;
    const v4si unusable = bad * 0 + SK_FLAGS_UNUSABLE, zw = bad * 0 + SK_FLAG_ZEROWEIGHT;
    const v4hu bzero = {0x8000, 0x8000, 0x8000, 0x8000};
    float *sci = R->sci;
    long x = 0;
    for (; x + 4 <= w; x += 4) {
        v4sf s4, w4, b4;
        v4hu h4;
        if (R->sci_be)
            s4 = load_be4(R->sci_be + 4 * x);
        else
            memcpy(&s4, sci + x, sizeof s4);
        if (R->wgt_be)
            w4 = load_be4(R->wgt_be + 4 * x);
        else
            memcpy(&w4, R->wgt + x, sizeof w4);
        if (R->mask_be) {
            memcpy(&h4, R->mask_be + 2 * x, sizeof h4);
            h4 = ((h4 >> 8) | (h4 << 8)) ^ bzero;
        } else {
            memcpy(&h4, R->flags + x, sizeof h4);
        }
        v4df v = __builtin_convertvector(s4, v4df), wt = __builtin_convertvector(w4, v4df);
        v4df lev = l0;
        if (R->bg) {
            memcpy(&b4, R->bg + x, sizeof b4);
            lev = __builtin_convertvector(b4, v4df);
        }
        /* zero exponents to +0, weights below the smallest normal to 0 */
        v = (v4df)((v4di)v & ~(fs & ((v4df)((v4di)v & sign) < tiny)));
        wt = (v4df)((v4di)wt & ~(fw & ~(wt >= tiny)));
        v4di vbad = ~((v4df)((v4di)v & sign) <= big), lbad = ~((v4df)((v4di)lev & sign) <= big);
        v4di sat = (v >= vsat) & ~vbad;
        v = (v4df)((v4di)v & ~vbad);
        wt = (v4df)((v4di)wt & ~vbad);
        lev = (v4df)((v4di)lev & ~lbad);
        v4di wok = (wt > zero) & (wt <= big);
        v4df den = (v4df)(((v4di)wt & wok) | ((v4di)one & ~wok));
        v4sf q = __builtin_convertvector(vc / den, v4sf);
        v4sf out = __builtin_convertvector((v - lev) * vf, v4sf);
        memcpy(sci + x, &out, sizeof out);
        v4si fl = __builtin_convertvector(h4, v4si);
        v4si wok4 = __builtin_convertvector(wok, v4si);
        fl |= (__builtin_convertvector(vbad, v4si) & nonfin) | (__builtin_convertvector(lbad, v4si) & bad) |
              (__builtin_convertvector(sat, v4si) & satf);
        v4si unus = (fl & unusable) != 0;
        v4si qok = (q > fzero) & (q <= fbig);
        v4sf vr = (v4sf)((v4si)q & wok4 & qok);
        fl |= ((~wok4 & ~unus) | (wok4 & ~qok)) & zw;
        h4 = __builtin_convertvector(fl, v4hu);
        memcpy(R->var + x, &vr, sizeof vr);
        memcpy(R->flags + x, &h4, sizeof h4);
    }
    __builtin_ia32_vzeroupper();
    return x;
}
#endif

static void finish_row(long w, const finish_rowp *R, const finish_par *P)
{
#ifdef SK_HAVE_AVX2_FINISH
    long done = __builtin_cpu_supports("avx2") ? finish_avx2(w, R, P) : 0;
#else
    long done = 0;
#endif
    finish_tail(done, w, R, P);
}

/* The band's planes read from the files: into b->sci, wgt and b->flags,
 * except the planes mapped from their files (plane.data), which
 * finish_row() reads where they are stored (*sci_be, *wgt_be, *mask_be:
 * 1 for each plane left there). */
static int read_file_planes(sk_band_source *s, sk_band *b, float *wgt, int *sci_be, int *wgt_be,
                            int *mask_be)
{
    long x0 = b->x0, y0 = b->y0, w = b->w, h = b->h;
    size_t n = (size_t)w * (size_t)h;
    int rc = SK_OK;
    *sci_be = s->sci.data != NULL;
    *wgt_be = s->noise.data && s->noise_kind == SK_NOISE_WEIGHT;
    *mask_be = s->mask.data && s->mask_u16;
    if (!*mask_be)
        memset(b->flags, 0, n * sizeof *b->flags);
    if (!*sci_be)
        rc = plane_read(&s->sci, TFLOAT, s->width, x0, y0, w, h, b->sci);
    if (!rc && s->noise.f && !*wgt_be) {
        rc = plane_read(&s->noise, TFLOAT, s->width, x0, y0, w, h, wgt);
        /* weights: to_weight() in finish_row() */
        for (size_t i = 0; !rc && s->noise_kind != SK_NOISE_WEIGHT && i < n; i++)
            rc = to_weight(wgt[i], s->noise_kind, s->noise.path, x0 + (long)(i % (size_t)w),
                           y0 + (long)(i / (size_t)w), &wgt[i]);
    } else if (!rc && !s->noise.f) {
        for (size_t i = 0; i < n; i++)
            wgt[i] = 1.0f;
    }
    if (!rc && s->mask.f && s->mask_u16 && !*mask_be) {
        /* skystack flags stored as 16-bit unsigned: read as they are */
        rc = plane_read(&s->mask, TUSHORT, s->width, x0, y0, w, h, b->flags);
    } else if (!rc && s->mask.f && !s->mask_u16) {
        double *mask = s->scr_mask;
        rc = plane_read(&s->mask, TDOUBLE, s->width, x0, y0, w, h, mask);
        for (size_t i = 0; !rc && i < n; i++) {
            if (s->mask_kind == 1) {
                if (isfinite(mask[i]) && mask[i] >= 0)
                    b->flags[i] |= (uint16_t)((uint64_t)mask[i] & 0xffff);
                else
                    b->flags[i] |= SK_FLAG_BAD;
            } else if (mask[i] != 0) {
                b->flags[i] |= SK_FLAG_BAD;
                wgt[i] = 0.0f;
            }
        }
    }
    return rc;
}

int sk_band_source_reserve(sk_band_source *s, size_t npx)
{
    if (!grow((void **)&s->scr_wgt, &s->cap_wgt, npx, sizeof *s->scr_wgt) ||
        (s->mask.f && !s->mask_u16 && !grow((void **)&s->scr_mask, &s->cap_mask, npx, sizeof *s->scr_mask)))
        return sk_error(SK_EIO, "coadd: out of memory reading %s", s->name);
    return SK_OK;
}

int sk_band_source_read(sk_band_source *s, double flux_scale, sk_band *b)
{
    const sk_coadd_input *in = s->in;
    long x0 = b->x0, y0 = b->y0, w = b->w, h = b->h;
    size_t n = (size_t)w * (size_t)h;
    if (x0 < 0 || y0 < 0 || x0 + w > s->width || y0 + h > s->height)
        return sk_error(SK_EINPUT, "coadd: band outside %s", s->name);
    /* the background from a mesh: a row at a time, as the row is made ready */
    size_t nbg = s->mesh ? (size_t)w : n;
    if (sk_band_source_reserve(s, n) ||
        ((s->bg.f || s->mesh) && !in->background &&
         !grow((void **)&s->scr_bg, &s->cap_bg, nbg, sizeof *s->scr_bg)))
        return sk_error(SK_EIO, "coadd: out of memory reading %s", s->name);
    float *wgt = s->scr_wgt, *bg = NULL;
    sk_bkg_rows *bgrows = NULL;
    int rc = SK_OK, sci_be = 0, wgt_be = 0, mask_be = 0;
    if (in->image) {
        const sk_image *img = in->image;
        for (long y = 0; y < h; y++) {
            size_t src = (size_t)(y0 + y) * img->width + (size_t)x0, dst = (size_t)y * w;
            memcpy(b->sci + dst, img->sci + src, (size_t)w * sizeof *b->sci);
            memcpy(wgt + dst, img->weight + src, (size_t)w * sizeof *wgt);
            memcpy(b->flags + dst, img->flags + src, (size_t)w * sizeof *b->flags);
        }
    } else {
        rc = read_file_planes(s, b, wgt, &sci_be, &wgt_be, &mask_be);
    }
    if (!rc && !in->background && (s->bg.f || s->mesh)) {
        bg = s->scr_bg;
        rc = s->mesh ? sk_bkg_rows_begin(s->mesh, x0, w, &bgrows)
                     : plane_read(&s->bg, TFLOAT, s->width, x0, y0, w, h, bg);
    }
    if (rc)
        return rc;
    finish_par P = {.level0 = in->background_level, .f = flux_scale, .sat = INFINITY};
    P.rms2 = s->relative ? s->noise_rms * s->noise_rms
             : in->weight_scale > 0 && isfinite(in->weight_scale) ? 1.0 / in->weight_scale : 1.0;
    if (!in->image) {
        P.flush_sci = 1;
        P.flush_wgt = s->noise.f && s->noise_kind == SK_NOISE_WEIGHT;
        if (s->has_saturate)
            P.sat = s->saturate;
    }
    for (long y = 0; y < h; y++) {
        size_t i = (size_t)y * w, at = (size_t)(y0 + y) * (size_t)s->width + (size_t)x0;
        finish_rowp R = {b->sci + i, b->var + i, b->flags + i, wgt + i, NULL, NULL, NULL, NULL};
        if (bgrows)
            sk_bkg_rows_row(bgrows, y0 + y, bg);
        R.bg = in->background ? in->background + at : bgrows ? bg : bg ? bg + i : NULL;
        R.sci_be = sci_be ? s->sci.data + 4 * at : NULL;
        R.wgt_be = wgt_be ? s->noise.data + 4 * at : NULL;
        R.mask_be = mask_be ? s->mask.data + 2 * at : NULL;
        finish_row(w, &R, &P);
    }
    sk_bkg_rows_end(bgrows);
    size_t first = (size_t)y0 * (size_t)s->width;
    if (sci_be)
        plane_release(&s->sci, 4 * first);
    if (wgt_be)
        plane_release(&s->noise, 4 * first);
    if (mask_be)
        plane_release(&s->mask, 2 * first);
    return SK_OK;
}
