/* fits_plain.c: reading image planes stored plainly (uncompressed 32-bit floats, or 16-bit unsigned integers) straight from the file, by rows on several threads. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/parallel.h"
#include "fits_priv.h"
#include "skystack/error.h"

/* Bytes of pixels per chunk (a chunk is one pread): 256 KiB. */
#define PLAIN_CHUNK_BYTES ((size_t)1 << 18)

typedef struct plain_job {
    int fd;
    const char *path;
    long long datastart;  /* byte offset of the first pixel */
    int bitpix;           /* -32 or 16 */
    size_t n;             /* pixels */
    void *buf;
} plain_job;

/* Big-endian IEEE float as fits_read_img gives it with a NaN null value:
 * NaN and +-inf (exponent all ones) become NaN, zeros and denormals
 * (exponent zero) +0. */
static inline float plain_float(uint32_t be)
{
    uint32_t u = __builtin_bswap32(be);
    uint32_t e = u & 0x7f800000u;
    float f;
    if (e == 0x7f800000u)
        u = 0x7fc00000u; /* NAN */
    else if (e == 0)
        u = 0;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int plain_range(long c0, long c1, void *user)
{
    const plain_job *J = user;
    size_t el = J->bitpix == -32 ? 4 : 2;
    size_t per = PLAIN_CHUNK_BYTES / el;
    size_t i0 = (size_t)c0 * per, i1 = (size_t)c1 * per < J->n ? (size_t)c1 * per : J->n;
    unsigned char *dst = (unsigned char *)J->buf + i0 * el;
    size_t want = (i1 - i0) * el, got = 0;
    while (got < want) {
        ssize_t r = pread(J->fd, dst + got, want - got, (off_t)(J->datastart + (long long)(i0 * el + got)));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? sk_error(SK_EIO, "%s: reading pixels: %s", J->path, strerror(errno))
                         : sk_error(SK_EINPUT, "%s: file is truncated (ends inside its data)", J->path);
        got += (size_t)r;
    }
    if (J->bitpix == -32) {
        uint32_t *p = (uint32_t *)dst;
        float *f = (float *)dst;
        for (size_t i = 0; i < i1 - i0; i++)
            f[i] = plain_float(p[i]);
    } else {
        uint16_t *p = (uint16_t *)dst;
        for (size_t i = 0; i < i1 - i0; i++) /* BZERO 32768: flip the sign bit */
            p[i] = (uint16_t)(__builtin_bswap16(p[i]) ^ 0x8000u);
    }
    return SK_OK;
}

/* 1 when the current HDU holds `bitpix` pixels stored plainly in the disk
 * file `path` itself: not tile-compressed, not a decompressed copy, and
 * for -32 no scaling, for 16 BZERO 32768, BSCALE 1 and no BLANK. */
static int plain_layout(fitsfile *fptr, const char *path, int bitpix, long long *datastart)
{
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return 0; /* the swaps below are for little-endian hosts */
#endif
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

int sk_fits_plain_read(fitsfile *fptr, const char *path, int threads, int bitpix, size_t n, void *buf,
                       int *done)
{
    *done = 0;
    plain_job J = {.path = path, .bitpix = bitpix, .n = n, .buf = buf};
    if ((bitpix != -32 && bitpix != 16) || !plain_layout(fptr, path, bitpix, &J.datastart))
        return SK_OK;
    J.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (J.fd < 0)
        return SK_OK; /* cfitsio has it open: let it read */
    size_t per = PLAIN_CHUNK_BYTES / (bitpix == -32 ? 4 : 2);
    long nchunks = (long)((n + per - 1) / per);
    int rc = sk_parallel_for(nchunks, 1, threads, plain_range, &J);
    close(J.fd);
    *done = rc == SK_OK;
    return rc;
}
