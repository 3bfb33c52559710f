/* fits_read.c: reading images, their noise and mask planes and headers from FITS files with cfitsio. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/bigbuf.h"
#include "core/parallel.h"
#include "fits_priv.h"
#include "image_internal.h"
#include "skystack/error.h"
#include "skystack/fits.h"
#include "skystack/wcs.h"

int sk_fits_status_error(int status, const char *path, const char *what)
{
    char text[FLEN_STATUS];
    fits_get_errstatus(status, text);
    fits_clear_errmsg();
    switch (status) {
    case END_OF_FILE:
        return sk_error(SK_EINPUT, "%s: %s: file is truncated (ends inside its data)", path, what);
    case UNKNOWN_REC:
    case NO_SIMPLE:
    case NO_XTENSION:
    case NOT_IMAGE:
    case READ_ERROR:
    case BAD_BITPIX:
    case BAD_NAXIS:
    case BAD_NAXES:
    case NO_END:
    case BAD_PCOUNT:
    case BAD_GCOUNT:
    case BAD_TFIELDS:
    case BAD_HEADER_FILL:
    case BAD_DATA_FILL:
    case DATA_DECOMPRESSION_ERR:
    case DATA_COMPRESSION_ERR:
        return sk_error(SK_EINPUT, "%s: %s: not a valid FITS file (%s)", path, what, text);
    case FILE_NOT_CREATED:
    case WRITE_ERROR:
    case FILE_NOT_CLOSED:
    case MEMORY_ALLOCATION:
        return sk_error(SK_EIO, "%s: %s: %s", path, what, text);
    default:
        return sk_error(SK_EINPUT, "%s: %s: %s (cfitsio status %d)", path, what, text, status);
    }
}

int sk_fits_open_read(const char *path, fitsfile **fptr)
{
    struct stat st;
    *fptr = NULL;
    if (stat(path, &st) != 0) {
        int e = errno;
        return sk_error(e == ENOENT || e == ENOTDIR ? SK_EINPUT : SK_EIO, "%s: cannot open: %s",
                        path, strerror(e));
    }
    if (S_ISDIR(st.st_mode))
        return sk_error(SK_EINPUT, "%s: is a directory, not a FITS file", path);
    if (access(path, R_OK) != 0)
        return sk_error(SK_EIO, "%s: cannot read: %s", path, strerror(errno));
    if (st.st_size == 0)
        return sk_error(SK_EINPUT, "%s: empty file, not FITS", path);
    int status = 0;
    if (fits_open_diskfile(fptr, path, READONLY, &status) != 0) {
        *fptr = NULL;
        if (status == FILE_NOT_OPENED || status == READ_ERROR || status == UNKNOWN_REC ||
            status == NO_SIMPLE || status == END_OF_FILE) {
            fits_clear_errmsg();
            return sk_error(SK_EINPUT, "%s: not a FITS file (or its first header is damaged)", path);
        }
        return sk_fits_status_error(status, path, "opening");
    }
    return SK_OK;
}

/* The current HDU is an image with two non-degenerate axes. */
static int is_2d_image(fitsfile *fptr)
{
    int status = 0, type = 0, naxis = 0;
    long naxes[9] = {0};
    if (fits_get_hdu_type(fptr, &type, &status) || type != IMAGE_HDU)
        return 0;
    if (fits_get_img_dim(fptr, &naxis, &status) || naxis < 2 || naxis > 9)
        return 0;
    if (fits_get_img_size(fptr, naxis, naxes, &status))
        return 0;
    if (naxes[0] <= 0 || naxes[1] <= 0)
        return 0;
    for (int k = 2; k < naxis; k++)
        if (naxes[k] != 1)
            return 0;
    return 1;
}

static int number_of(const char *s, long *n)
{
    char *end;
    if (!*s)
        return 0;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < 0)
        return 0;
    *n = v;
    return 1;
}

int sk_fits_goto_hdu(fitsfile *fptr, const char *path, const char *hdu, int want_table)
{
    int status = 0, nhdu = 0, type = 0;
    if (fits_get_num_hdus(fptr, &nhdu, &status))
        return sk_fits_status_error(status, path, "counting HDUs");
    if (hdu && *hdu) {
        long n;
        if (number_of(hdu, &n)) {
            if (n >= nhdu)
                return sk_error(SK_EINPUT, "%s: no HDU number %ld (the file has %d, numbered from 0)",
                                path, n, nhdu);
            if (fits_movabs_hdu(fptr, (int)n + 1, &type, &status))
                return sk_fits_status_error(status, path, "moving to the HDU");
            return SK_OK;
        }
        if (fits_movnam_hdu(fptr, ANY_HDU, (char *)hdu, 0, &status)) {
            if (status == BAD_HDU_NUM) {
                fits_clear_errmsg();
                return sk_error(SK_EINPUT, "%s: no HDU named %s", path, hdu);
            }
            return sk_fits_status_error(status, path, "looking for the HDU");
        }
        return SK_OK;
    }
    if (!want_table) {
        if (fits_movnam_hdu(fptr, ANY_HDU, "SCI", 0, &status) == 0 && is_2d_image(fptr))
            return SK_OK;
        status = 0;
        fits_clear_errmsg();
    }
    for (int i = 1; i <= nhdu; i++) {
        if (fits_movabs_hdu(fptr, i, &type, &status))
            return sk_fits_status_error(status, path, "reading HDUs");
        if (want_table ? type == BINARY_TBL && !fits_is_compressed_image(fptr, &status)
                       : is_2d_image(fptr))
            return SK_OK;
    }
    return sk_error(SK_EINPUT, "%s: no %s HDU in the file", path,
                    want_table ? "binary table" : "2-D image");
}

/* The current HDU's cards as an sk_header (compressed images give the
 * header of the image they hold). */
static int hdu_header(fitsfile *fptr, const char *path, sk_header **out)
{
    char *records = NULL;
    int nkeys = 0, status = 0;
    *out = NULL;
    if (fits_convert_hdr2str(fptr, 0, NULL, 0, &records, &nkeys, &status)) {
        if (records)
            fits_free_memory(records, &status);
        return sk_fits_status_error(status, path, "reading the header");
    }
    sk_header *h = sk_header_new();
    int rc = h ? sk_header_append_records(h, records, nkeys) : SK_EIO;
    status = 0;
    fits_free_memory(records, &status);
    if (rc) {
        sk_header_free(h);
        return rc;
    }
    *out = h;
    return SK_OK;
}

/* When an exposure was taken belongs to each of its extensions: one that
 * does not inherit the primary header and does not say when (neither MJD-OBS
 * nor DATE-OBS) takes both from the primary header. */
static int observation_time(sk_header *ext, const sk_header *primary)
{
    double mjd = 0;
    char date[72];
    int rc = SK_OK;
    if (sk_header_get_double(primary, "MJD-OBS", &mjd) == 1)
        rc = sk_header_set_double(ext, "MJD-OBS", mjd, "[d] from the primary header");
    if (!rc && sk_header_get_str(primary, "DATE-OBS", date, sizeof date) == 1)
        rc = sk_header_set_str(ext, "DATE-OBS", date, "from the primary header");
    return rc;
}

int sk_fits_current_header(fitsfile *fptr, const char *path, sk_header **out)
{
    int rc = hdu_header(fptr, path, out);
    if (rc)
        return rc;
    int inherit = 0, hdunum = 0;
    fits_get_hdu_num(fptr, &hdunum);
    double mjd = 0;
    char date[72];
    if (hdunum > 1 && sk_header_get_bool(*out, "INHERIT", &inherit) == 1 && inherit)
        inherit = 1;
    else if (hdunum > 1 && sk_header_get_double(*out, "MJD-OBS", &mjd) != 1 &&
             sk_header_get_str(*out, "DATE-OBS", date, sizeof date) != 1)
        inherit = -1;
    if (inherit) {
        int status = 0, type = 0;
        sk_header *primary = NULL;
        if (fits_movabs_hdu(fptr, 1, &type, &status))
            rc = sk_fits_status_error(status, path, "reading the primary header");
        if (!rc)
            rc = hdu_header(fptr, path, &primary);
        if (!rc)
            rc = inherit > 0 ? sk_header_inherit(*out, primary) : observation_time(*out, primary);
        sk_header_free(primary);
        status = 0;
        if (fits_movabs_hdu(fptr, hdunum, &type, &status) && !rc)
            rc = sk_fits_status_error(status, path, "returning to the HDU");
        if (rc) {
            sk_header_free(*out);
            *out = NULL;
        }
    }
    return rc;
}

void sk_fits_card_keyword(const char *card, char *name)
{
    char buf[FLEN_CARD];
    int len = 0, status = 0;
    snprintf(buf, sizeof buf, "%.80s", card);
    if (fits_get_keyname(buf, name, &len, &status)) {
        memcpy(name, card, 8);
        name[8] = '\0';
    }
    for (int i = (int)strlen(name) - 1; i >= 0 && name[i] == ' '; i--)
        name[i] = '\0';
}

/* gzip/compress/bzip2 names: their size on disk says nothing of the FITS size. */
static int is_compressed_name(const char *path)
{
    size_t n = strlen(path);
    static const char *suffixes[] = {".gz", ".Z", ".z", ".bz2", ".zip"};
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && strcmp(path + n - k, suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

int sk_fits_check_data_size(fitsfile *fptr, const char *path, const char *label)
{
    LONGLONG head = 0, data = 0, end = 0;
    int status = 0;
    struct stat st;
    if (is_compressed_name(path) || stat(path, &st) != 0)
        return SK_OK;
    if (fits_get_hduaddrll(fptr, &head, &data, &end, &status)) {
        fits_clear_errmsg();
        return SK_OK;
    }
    /* `end` counts the padding of the last 2880-byte block, which some
     * writers leave out: only a file that stops before that block began is
     * short of data. */
    if (end > data && (LONGLONG)st.st_size <= end - 2880)
        return sk_error(SK_EINPUT, "%s: file is truncated: %lld bytes, but %s needs %lld", path,
                        (long long)st.st_size, label, (long long)end);
    return SK_OK;
}

/* Name of the current HDU for messages ("S4", or "HDU 1"). */
static void hdu_label(fitsfile *fptr, char *label, size_t size)
{
    char extname[FLEN_VALUE];
    int status = 0, hdunum = 0;
    fits_get_hdu_num(fptr, &hdunum);
    if (fits_read_key(fptr, TSTRING, "EXTNAME", extname, NULL, &status) == 0 && extname[0])
        snprintf(label, size, "HDU %s", extname);
    else
        snprintf(label, size, "HDU %d", hdunum - 1);
    fits_clear_errmsg();
}

/* Check that the current HDU is a 2-D image whose data the file holds;
 * its size in *width, *height and its label for messages. */
static int current_plane_size(fitsfile *fptr, const char *path, long *width, long *height,
                              char *label, size_t label_size)
{
    hdu_label(fptr, label, label_size);
    if (!is_2d_image(fptr))
        return sk_error(SK_EINPUT, "%s: %s is not a 2-D image", path, label);
    int status = 0, naxis = 0;
    long naxes[9] = {0};
    fits_get_img_dim(fptr, &naxis, &status);
    fits_get_img_size(fptr, naxis, naxes, &status);
    *width = naxes[0];
    *height = naxes[1];
    return sk_fits_check_data_size(fptr, path, label);
}

/* Read pixels [first, first + n) (0-based, row by row) of the current 2-D
 * HDU as `datatype` into buf; undefined integer pixels (BLANK) become NaN. */
static int read_pixels(fitsfile *fptr, const char *path, const char *label, int datatype,
                       LONGLONG first, LONGLONG n, void *buf)
{
    int status = 0, anynul = 0;
    float nan_float = NAN;
    double nan_double = NAN;
    void *nulval = datatype == TFLOAT ? (void *)&nan_float : (void *)&nan_double;
    if (fits_read_img(fptr, datatype, first + 1, n, nulval, buf, &anynul, &status) == 0)
        return SK_OK;
    char what[FLEN_VALUE + 32];
    snprintf(what, sizeof what, "reading the pixels of %s", label);
    return sk_fits_status_error(status, path, what);
}

/* Read the 2-D image of the current HDU as `datatype` (TFLOAT or TDOUBLE,
 * which holds every 32-bit integer exactly). Undefined integer pixels
 * (BLANK) become NaN. */
static int read_current_plane(fitsfile *fptr, const char *path, int datatype, int threads,
                              void **pixels, long *width, long *height)
{
    char label[FLEN_VALUE + 8];
    long w = 0, h = 0;
    *pixels = NULL;
    int rc = current_plane_size(fptr, path, &w, &h, label, sizeof label);
    if (rc)
        return rc;
    size_t elsize = datatype == TFLOAT ? sizeof(float) : sizeof(double);
    if ((unsigned long)w > SIZE_MAX / elsize / (unsigned long)h)
        return sk_error(SK_EINPUT, "%s: %s: image %ld x %ld too large", path, label, w, h);
    size_t n = (size_t)w * (size_t)h;
    void *buf = sk_big_malloc(n, elsize); /* huge pages: a fault per 2 MiB as the threads read */
    if (!buf)
        return sk_error(SK_EIO, "%s: %s: out of memory for %ld x %ld pixels", path, label, w, h);
    int done = 0;
    if (datatype == TFLOAT)
        rc = sk_fits_plain_read(fptr, path, threads, -32, n, buf, &done);
    if (!rc && !done)
        rc = read_pixels(fptr, path, label, datatype, 0, (LONGLONG)n, buf);
    if (rc) {
        free(buf);
        return rc;
    }
    *pixels = buf;
    *width = w;
    *height = h;
    return SK_OK;
}

/* Open `path` and move to `hdu` (NULL: `fallback_name` if the file has it,
 * else the first 2-D image). */
static int open_plane(const char *path, const char *hdu, const char *fallback_name, fitsfile **fptr)
{
    int rc = sk_fits_open_read(path, fptr);
    if (rc)
        return rc;
    int status = 0;
    if (!hdu && fallback_name && *fallback_name) {
        if (fits_movnam_hdu(*fptr, ANY_HDU, (char *)fallback_name, 0, &status) == 0 && is_2d_image(*fptr))
            hdu = fallback_name;
        status = 0;
        fits_clear_errmsg();
    }
    rc = sk_fits_goto_hdu(*fptr, path, hdu, 0);
    if (rc) {
        fits_close_file(*fptr, &status);
        fits_clear_errmsg();
        *fptr = NULL;
    }
    return rc;
}

static void close_plane(fitsfile *fptr)
{
    int status = 0;
    fits_close_file(fptr, &status);
    fits_clear_errmsg();
}

/* Open `path`, move to `hdu` (NULL: `fallback_name` if the file has it,
 * else the first 2-D image), read it. */
static int read_plane_at(const char *path, const char *hdu, const char *fallback_name, int datatype,
                         void **pixels, long *width, long *height, sk_header **header)
{
    fitsfile *fptr;
    int rc = open_plane(path, hdu, fallback_name, &fptr);
    if (rc)
        return rc;
    if (header)
        rc = sk_fits_current_header(fptr, path, header);
    if (!rc)
        rc = read_current_plane(fptr, path, datatype, 1, pixels, width, height);
    if (rc && header) {
        sk_header_free(*header);
        *header = NULL;
    }
    close_plane(fptr);
    return rc;
}

int sk_fits_read_plane(const char *path, const char *hdu, float **pixels, long *width,
                       long *height, sk_header **header)
{
    void *buf = NULL;
    int rc = read_plane_at(path, hdu, NULL, TFLOAT, &buf, width, height, header);
    *pixels = buf;
    return rc;
}

int sk_fits_read_header(const char *path, const char *hdu, sk_header **out)
{
    fitsfile *fptr;
    *out = NULL;
    int rc = sk_fits_open_read(path, &fptr);
    if (rc)
        return rc;
    rc = sk_fits_goto_hdu(fptr, path, hdu, 0);
    if (rc && hdu == NULL) {
        /* No image: a header-only or table file still has a primary header. */
        int status = 0, type = 0;
        sk_error_clear();
        rc = fits_movabs_hdu(fptr, 1, &type, &status) ? sk_fits_status_error(status, path, "reading")
                                                       : SK_OK;
    }
    if (!rc)
        rc = sk_fits_current_header(fptr, path, out);
    int status = 0;
    fits_close_file(fptr, &status);
    fits_clear_errmsg();
    return rc;
}

int sk_fits_has_hdu(const char *path, const char *extname)
{
    fitsfile *fptr;
    int status = 0;
    if (fits_open_diskfile(&fptr, path, READONLY, &status)) {
        fits_clear_errmsg();
        return 0;
    }
    int found = fits_movnam_hdu(fptr, ANY_HDU, (char *)extname, 0, &status) == 0;
    status = 0;
    fits_close_file(fptr, &status);
    fits_clear_errmsg();
    return found;
}

/* Extension name of the current science HDU ("" for none). */
static void science_extname(const sk_header *h, int hdunum, char *name, size_t size)
{
    name[0] = '\0';
    if (hdunum > 1 && sk_header_get_str(h, "EXTNAME", name, size) != 1)
        name[0] = '\0';
}

/* Extension names of noise and mask planes, in the order they are
 * looked for (skystack's own first). */
static const struct {
    const char *name;
    int kind;
} noise_names[] = {
    {"WGT", SK_NOISE_WEIGHT}, {"WEIGHT", SK_NOISE_WEIGHT}, {"WHT", SK_NOISE_WEIGHT},
    {"IVAR", SK_NOISE_WEIGHT}, {"INVVAR", SK_NOISE_WEIGHT}, {"VAR", SK_NOISE_VARIANCE},
    {"VARIANCE", SK_NOISE_VARIANCE}, {"ERR", SK_NOISE_RMS}, {"SIGMA", SK_NOISE_RMS},
    {"RMS", SK_NOISE_RMS},
};
static const struct {
    const char *name;
    int is_flags;
} mask_names[] = {{"FLG", 1}, {"DQ", 0}, {"MASK", 0}, {"BPM", 0}};

/* 1 when the file has a 2-D image HDU `name`, other than `sci_hdunum`, of
 * width x height (skystack's own WGT and FLG of any size: a wrong size is
 * then an error when they are read); the file is then at it. */
static int has_plane(fitsfile *fptr, const char *name, int sci_hdunum, long width, long height)
{
    int status = 0, hdunum = 0, naxis = 0;
    long naxes[9] = {0};
    if (fits_movnam_hdu(fptr, ANY_HDU, (char *)name, 0, &status)) {
        fits_clear_errmsg();
        return 0;
    }
    fits_get_hdu_num(fptr, &hdunum);
    if (hdunum == sci_hdunum)
        return 0;
    if (!strcmp(name, "WGT") || !strcmp(name, "FLG"))
        return 1;
    if (!is_2d_image(fptr))
        return 0;
    fits_get_img_dim(fptr, &naxis, &status);
    fits_get_img_size(fptr, naxis, naxes, &status);
    fits_clear_errmsg();
    return status == 0 && naxes[0] == width && naxes[1] == height;
}

int sk_fits_find_companions(fitsfile *fptr, const char *path, int sci_hdunum, long width, long height,
                            sk_companions *out)
{
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < sizeof noise_names / sizeof *noise_names && !out->noise_hdu[0]; k++)
        if (has_plane(fptr, noise_names[k].name, sci_hdunum, width, height)) {
            snprintf(out->noise_hdu, sizeof out->noise_hdu, "%s", noise_names[k].name);
            out->noise_kind = noise_names[k].kind;
            int rel = 0, status = 0;
            if (k == 0 && fits_read_key(fptr, TLOGICAL, "WGTREL", &rel, NULL, &status) == 0 && rel)
                out->noise_relative = 1;
            fits_clear_errmsg();
        }
    for (size_t k = 0; k < sizeof mask_names / sizeof *mask_names && !out->mask_hdu[0]; k++)
        if (has_plane(fptr, mask_names[k].name, sci_hdunum, width, height)) {
            snprintf(out->mask_hdu, sizeof out->mask_hdu, "%s", mask_names[k].name);
            out->mask_is_flags = mask_names[k].is_flags;
        }
    int status = 0, type = 0;
    if (fits_movabs_hdu(fptr, sci_hdunum, &type, &status))
        return sk_fits_status_error(status, path, "returning to the science HDU");
    return SK_OK;
}

/* Turning a noise plane into weights, a chunk of pixels at a time. */
typedef struct noise_job {
    sk_image *img;
    const char *path;
    int kind;
} noise_job;

#define PIXEL_CHUNK 65536L

static int noise_to_weight(long i0, long i1, void *user)
{
    const noise_job *J = user;
    float *wgt = J->img->weight;
    if (J->kind == SK_NOISE_WEIGHT) {
        for (long i = i0; i < i1; i++) {
            float v = wgt[i];
            wgt[i] = v > 0.0f && v <= FLT_MAX ? v : 0.0f;  /* NaN, inf, <= 0: no data */
        }
        return SK_OK;
    }
    for (long i = i0; i < i1; i++) {
        float v = wgt[i];
        float out;
        if (!isfinite(v)) {
            out = 0.0f;
        } else if (v < 0.0f) {
            long w = J->img->width, x = i % w, y = i / w;
            return sk_error(SK_EINPUT, "%s: negative %s %g at pixel (%ld, %ld) (1-based)", J->path,
                            J->kind == SK_NOISE_VARIANCE ? "variance" : "rms", v, x + 1, y + 1);
        } else if (v == 0.0f) {
            out = 0.0f; /* no noise estimate: no data */
        } else {
            double var = J->kind == SK_NOISE_VARIANCE ? (double)v : (double)v * (double)v;
            double inv = 1.0 / var;
            out = inv < (double)HUGE_VALF && isfinite(inv) ? (float)inv : 0.0f;
        }
        wgt[i] = out;
    }
    return SK_OK;
}

/* The noise plane, read straight into img->weight and turned into weights
 * there. */
static int read_noise(sk_image *img, const char *path, const char *hdu, const char *sci_extname,
                      int kind, int threads)
{
    fitsfile *fptr;
    int rc = open_plane(path, hdu, sci_extname, &fptr);
    if (rc)
        return rc;
    char label[FLEN_VALUE + 8];
    long w = 0, h = 0;
    rc = current_plane_size(fptr, path, &w, &h, label, sizeof label);
    if (!rc && (w != img->width || h != img->height))
        rc = sk_error(SK_EINPUT, "%s: noise plane is %ld x %ld but the image %s is %ld x %ld",
                      path, w, h, img->path, img->width, img->height);
    size_t n = (size_t)w * (size_t)h;
    int done = 0;
    if (!rc)
        rc = sk_fits_plain_read(fptr, path, threads, -32, n, img->weight, &done);
    if (!rc && !done)
        rc = read_pixels(fptr, path, label, TFLOAT, 0, (LONGLONG)n, img->weight);
    close_plane(fptr);
    if (rc)
        return rc;
    noise_job J = {img, path, kind};
    rc = sk_parallel_for((long)n, PIXEL_CHUNK, threads, noise_to_weight, &J);
    if (rc)
        return rc;
    img->weight_is_relative = 0;
    return SK_OK;
}

/* Merging mask values into the flags (flag bits) or into BAD pixels of
 * weight 0 (any non-zero value). */
typedef struct mask_job {
    sk_image *img;
    const uint16_t *plain;  /* the whole plane, or NULL: */
    const double *mask;     /* values of pixels [start, ..) */
    size_t start;
    int is_flags;
} mask_job;

static int mask_merge(long i0, long i1, void *user)
{
    const mask_job *J = user;
    uint16_t *fl = J->img->flags + J->start;
    float *wgt = J->img->weight + J->start;
    for (long i = i0; i < i1; i++) {
        double m = J->plain ? (double)J->plain[i] : J->mask[i];
        if (J->is_flags) {
            if (isfinite(m) && m >= 0)
                fl[i] |= (uint16_t)((uint64_t)m & 0xffff);
            else
                fl[i] |= SK_FLAG_BAD;
        } else if (m != 0) { /* NaN is non-zero too */
            fl[i] |= SK_FLAG_BAD;
            wgt[i] = 0.0f;
        }
    }
    return SK_OK;
}

/* The mask plane, read whole when stored plainly as 16-bit unsigned
 * integers, else in pieces (as double: every integer type fits), and
 * merged into img->flags (flag bits) or turned into BAD pixels of weight 0
 * (any non-zero value). */
static int read_mask(sk_image *img, const char *path, const char *hdu, const char *sci_extname,
                     int is_flags, int threads)
{
    fitsfile *fptr;
    int rc = open_plane(path, hdu, sci_extname, &fptr);
    if (rc)
        return rc;
    char label[FLEN_VALUE + 8];
    long w = 0, h = 0;
    rc = current_plane_size(fptr, path, &w, &h, label, sizeof label);
    if (!rc && (w != img->width || h != img->height))
        rc = sk_error(SK_EINPUT, "%s: mask is %ld x %ld but the image %s is %ld x %ld", path, w,
                      h, img->path, img->width, img->height);
    size_t n = (size_t)w * (size_t)h;
    uint16_t *plain = rc ? NULL : malloc(sizeof *plain * (n ? n : 1));
    int done = 0;
    if (plain)
        rc = sk_fits_plain_read(fptr, path, threads, 16, n, plain, &done);
    if (!rc && done) {
        mask_job J = {img, plain, NULL, 0, is_flags};
        rc = sk_parallel_for((long)n, PIXEL_CHUNK, threads, mask_merge, &J);
    }
    free(plain);
    enum { CHUNK = 1 << 15 };
    double *mask = rc || done ? NULL : malloc(sizeof *mask * CHUNK);
    if (!rc && !done && !mask)
        rc = sk_error(SK_EIO, "%s: out of memory", path);
    for (size_t start = 0; !rc && !done && start < n; start += CHUNK) {
        size_t m = n - start < CHUNK ? n - start : CHUNK;
        rc = read_pixels(fptr, path, label, TDOUBLE, (LONGLONG)start, (LONGLONG)m, mask);
        mask_job J = {img, NULL, mask, start, is_flags};
        rc = rc ? rc : mask_merge(0, (long)m, &J);
    }
    free(mask);
    close_plane(fptr);
    return rc;
}

/* Saturation, then non-finite values, then weights of 0 without reason:
 * pixel by pixel. */
typedef struct check_job {
    sk_image *img;
    int saturation;
    double saturate;
    int zero_weight_flag;
} check_job;

static int check_pixels(long i0, long i1, void *user)
{
    const check_job *J = user;
    sk_image *img = J->img;
    if (J->saturation)
        for (long i = i0; i < i1; i++)
            if (isfinite(img->sci[i]) && img->sci[i] >= J->saturate)
                img->flags[i] |= SK_FLAG_SATURATED;
    sk_image_sanitize_range(img, (size_t)i0, (size_t)i1);
    if (J->zero_weight_flag)
        for (long i = i0; i < i1; i++)
            if (img->weight[i] == 0.0f && img->flags[i] == 0)
                img->flags[i] = SK_FLAG_ZEROWEIGHT;
    return SK_OK;
}

static int read_image(const char *path, const sk_read_opts *o, sk_image **out)
{
    fitsfile *fptr;
    int rc = sk_fits_open_read(path, &fptr);
    if (rc)
        return rc;
    int status = 0, hdunum = 0;
    sk_header *header = NULL;
    void *buf = NULL;
    long w = 0, h = 0;
    rc = sk_fits_goto_hdu(fptr, path, o->hdu, 0);
    if (!rc)
        fits_get_hdu_num(fptr, &hdunum);
    if (!rc)
        rc = sk_fits_current_header(fptr, path, &header);
    if (!rc)
        rc = read_current_plane(fptr, path, TFLOAT, o->threads, &buf, &w, &h);
    /* Which companion planes does the file itself hold? */
    sk_companions comp;
    memset(&comp, 0, sizeof comp);
    if (!rc)
        rc = sk_fits_find_companions(fptr, path, hdunum, w, h, &comp);
    fits_close_file(fptr, &status);
    fits_clear_errmsg();
    if (rc) {
        sk_header_free(header);
        free(buf);
        return rc;
    }

    sk_image *img = calloc(1, sizeof *img);
    if (!img) {
        sk_header_free(header);
        free(buf);
        return sk_error(SK_EIO, "%s: out of memory", path);
    }
    size_t n = (size_t)w * (size_t)h;
    img->width = w;
    img->height = h;
    img->sci = buf;
    img->header = header;
    img->path = strdup(path);
    img->weight = sk_big_malloc(n, sizeof *img->weight);
    img->flags = calloc(n, sizeof *img->flags);
    if (!img->path || !img->weight || !img->flags) {
        sk_image_free(img);
        return sk_error(SK_EIO, "%s: out of memory for %ld x %ld pixels", path, w, h);
    }

    char extname[FLEN_VALUE];
    science_extname(header, hdunum, extname, sizeof extname);
    /* Noise: separate file, else a named HDU of this file, else WGT, else 1. */
    if (o->noise_path)
        rc = read_noise(img, o->noise_path, o->noise_hdu, extname, o->noise_kind, o->threads);
    else if (o->noise_hdu)
        rc = read_noise(img, path, o->noise_hdu, NULL, o->noise_kind, o->threads);
    else if (comp.noise_hdu[0]) {
        rc = read_noise(img, path, comp.noise_hdu, NULL, comp.noise_kind, o->threads);
        img->weight_is_relative = comp.noise_relative;
    } else {
        for (size_t i = 0; i < n; i++)
            img->weight[i] = 1.0f;
        img->weight_is_relative = 1;
    }
    /* Mask: separate file, else a named HDU of this file, else FLG. */
    int flags_from_flg = 0;
    if (!rc) {
        if (o->mask_path)
            rc = read_mask(img, o->mask_path, o->mask_hdu, extname, o->mask_is_flags, o->threads);
        else if (o->mask_hdu)
            rc = read_mask(img, path, o->mask_hdu, NULL, o->mask_is_flags, o->threads);
        else if (comp.mask_hdu[0]) {
            rc = read_mask(img, path, comp.mask_hdu, NULL, comp.mask_is_flags, o->threads);
            flags_from_flg = comp.mask_is_flags;
        }
        flags_from_flg = flags_from_flg || (o->mask_is_flags && (o->mask_path || o->mask_hdu));
    }
    if (rc) {
        sk_image_free(img);
        return rc;
    }

    /* Saturation, then non-finite values, then weights of 0 without reason. */
    check_job cj = {img, 0, 0, !flags_from_flg};
    const char *satkey = o->saturate_key ? o->saturate_key : "SATURATE";
    cj.saturation = !o->no_saturation && sk_header_get_double(header, satkey, &cj.saturate) == 1;
    (void)sk_parallel_for((long)n, PIXEL_CHUNK, o->threads, check_pixels, &cj);

    /* The WCS when the header has a usable one. */
    sk_wcs *wcs = NULL;
    if (sk_wcs_from_header(header, &wcs) == SK_OK)
        img->wcs = wcs;
    else
        sk_error_clear();
    *out = img;
    return SK_OK;
}

int sk_fits_read_image(const char *path, const sk_read_opts *opts, sk_image **out)
{
    sk_read_opts defaults = {0};
    *out = NULL;
    if (!path)
        return sk_error(SK_EINPUT, "no image path given");
    if (!opts)
        opts = &defaults;
    if (opts->noise_kind < SK_NOISE_WEIGHT || opts->noise_kind > SK_NOISE_RMS)
        return sk_error(SK_EINPUT, "%s: unknown noise kind %d", path, opts->noise_kind);
    return read_image(path, opts, out);
}

struct sk_plane_reader {
    fitsfile *fptr;
    char *path;
    char label[FLEN_VALUE + 8];
    long width, height;
};

int sk_plane_reader_open(const char *path, const char *hdu, sk_plane_reader **out, long *width,
                         long *height, sk_header **header)
{
    *out = NULL;
    if (header)
        *header = NULL;
    sk_plane_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return sk_error(SK_EIO, "%s: out of memory", path);
    }
    int rc = open_plane(path, hdu, NULL, &r->fptr);
    rc = rc ? rc : current_plane_size(r->fptr, path, &r->width, &r->height, r->label, sizeof r->label);
    if (!rc && header)
        rc = sk_fits_current_header(r->fptr, path, header);
    if (rc) {
        sk_plane_reader_close(r);
        return rc;
    }
    *width = r->width;
    *height = r->height;
    *out = r;
    return SK_OK;
}

int sk_plane_reader_rows(sk_plane_reader *r, long y0, long nrows, float *buf)
{
    if (y0 < 0 || nrows < 0 || y0 + nrows > r->height)
        return sk_error(SK_EINPUT, "%s: %s: rows %ld..%ld outside the image of %ld rows", r->path, r->label,
                        y0 + 1, y0 + nrows, r->height);
    return read_pixels(r->fptr, r->path, r->label, TFLOAT, (LONGLONG)y0 * r->width,
                       (LONGLONG)nrows * r->width, buf);
}

void sk_plane_reader_close(sk_plane_reader *r)
{
    if (!r)
        return;
    if (r->fptr)
        close_plane(r->fptr);
    free(r->path);
    free(r);
}
