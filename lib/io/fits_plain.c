/* fits_plain.c: reading image planes stored plainly (uncompressed 32-bit floats, or 16-bit unsigned integers) by chunks of rows on several threads, each thread through its own cfitsio handle on the file. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/parallel.h"
#include "fits_priv.h"
#include "skystack/error.h"

/* Bytes of pixels per chunk (one read call): 256 KiB. */
#define PLAIN_CHUNK_BYTES ((size_t)1 << 18)

typedef struct plain_job {
    const char *path;
    int hdunum;           /* the HDU, 1-based */
    int datatype;         /* TFLOAT or TUSHORT */
    size_t el;            /* bytes per pixel in buf */
    size_t n;             /* pixels */
    void *buf;
} plain_job;

/* A thread's own handle on the file, at the job's HDU: cfitsio (built
 * reentrant) reads through separate handles at once. */
typedef struct plain_handle {
    fitsfile *f;
} plain_handle;

static int plain_open(void *scratch, void *user)
{
    const plain_job *J = user;
    plain_handle *h = scratch;
    int status = 0;
    if (fits_open_diskfile(&h->f, J->path, READONLY, &status) == 0)
        fits_movabs_hdu(h->f, J->hdunum, NULL, &status);
    return status ? sk_fits_status_error(status, J->path, "opening it again to read by threads") : SK_OK;
}

static void plain_close(void *scratch, void *user)
{
    plain_handle *h = scratch;
    int status = 0;
    if (h->f)
        fits_close_file(h->f, &status);
    h->f = NULL;
}

static int plain_range(void *scratch, long c0, long c1, void *user)
{
    const plain_job *J = user;
    plain_handle *h = scratch;
    size_t per = PLAIN_CHUNK_BYTES / J->el;
    size_t i0 = (size_t)c0 * per, i1 = (size_t)c1 * per < J->n ? (size_t)c1 * per : J->n;
    float nan_float = NAN;
    unsigned short no_null = 0; /* (no BLANK: never used) */
    int status = 0, anynul = 0;
    void *nulval = J->datatype == TFLOAT ? (void *)&nan_float : (void *)&no_null;
    if (fits_read_img(h->f, J->datatype, (LONGLONG)i0 + 1, (LONGLONG)(i1 - i0), nulval,
                      (unsigned char *)J->buf + i0 * J->el, &anynul, &status))
        return sk_fits_status_error(status, J->path, "reading its pixels");
    return SK_OK;
}

/* 1 when the current HDU holds `bitpix` pixels stored plainly in the disk
 * file `path` itself: not tile-compressed, not a decompressed copy, and
 * for -32 no scaling, for 16 BZERO 32768, BSCALE 1 and no BLANK. */
static int plain_layout(fitsfile *fptr, const char *path, int bitpix, long long *datastart)
{
    int status = 0, type = 0;
    char url[FLEN_FILENAME] = "", name[FLEN_FILENAME] = "";
    fits_url_type(fptr, url, &status);
    fits_file_name(fptr, name, &status);
    if (status || strcmp(url, "file://") || strcmp(name, path) || fits_is_compressed_image(fptr, &status))
        goto no;
    if (fits_get_img_type(fptr, &type, &status) || type != bitpix)
        goto no;
    double bzero = 0, bscale = 1;
    long blank = 0;
    int s1 = 0, s2 = 0, s3 = 0;
    fits_read_key(fptr, TDOUBLE, "BZERO", &bzero, NULL, &s1);
    fits_read_key(fptr, TDOUBLE, "BSCALE", &bscale, NULL, &s2);
    int has_blank = fits_read_key(fptr, TLONG, "BLANK", &blank, NULL, &s3) == 0;
    if (bscale != 1 || has_blank || bzero != (bitpix == 16 ? 32768.0 : 0.0))
        goto no;
    LONGLONG head = 0, data = 0, end = 0;
    if (fits_get_hduaddrll(fptr, &head, &data, &end, &status))
        goto no;
    *datastart = data;
    fits_clear_errmsg();
    return 1;
no:
    fits_clear_errmsg();
    return 0;
}

int sk_fits_plain_offset(fitsfile *fptr, const char *path, int bitpix, long long *datastart)
{
    return (bitpix == -32 || bitpix == 16) && plain_layout(fptr, path, bitpix, datastart);
}

int sk_fits_plain_read(fitsfile *fptr, const char *path, int threads, int bitpix, size_t n, void *buf,
                       int *done)
{
    *done = 0;
    long long datastart = 0;
    int hdunum = 0;
    if ((bitpix != -32 && bitpix != 16) || !plain_layout(fptr, path, bitpix, &datastart))
        return SK_OK;
    fits_get_hdu_num(fptr, &hdunum);
    plain_job J = {.path = path, .hdunum = hdunum, .datatype = bitpix == -32 ? TFLOAT : TUSHORT,
                   .el = bitpix == -32 ? sizeof(float) : sizeof(uint16_t), .n = n, .buf = buf};
    size_t per = PLAIN_CHUNK_BYTES / J.el;
    long nchunks = (long)((n + per - 1) / per);
    sk_scratch handles = {sizeof(plain_handle), plain_open, plain_close};
    int rc = sk_parallel_for_scratch(nchunks, 1, threads, &handles, plain_range, &J);
    *done = rc == SK_OK;
    return rc;
}
