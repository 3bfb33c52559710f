/* fits_write.c: atomic writing of multi-HDU FITS files with cfitsio, and of the skystack SCI/WGT/FLG image layout. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include "core/parallel.h"
#include "fits_priv.h"
#include "skystack/atomic.h"
#include "skystack/error.h"
#include "skystack/fits.h"
#include "skystack/hash.h"
#include "skystack/wcs.h"

struct sk_fits_writer {
    sk_atomic *atomic;     /* temporary next to the target, renamed on commit */
    fitsfile *fptr;        /* cfitsio handle on atomic->tmp_path */
    int compress;          /* tile-compress image extensions */
    float quantize_level;  /* >0: lossy RICE for float planes */
    int nhdu;              /* HDUs written so far */
    char *path;            /* the target, for messages */
    /* the md5 of the file as it is written (sk_fits_writer_md5) */
    char *md5_out;         /* receives it at commit; NULL: not asked for */
    int md5_threads;
    sk_md5_stream *md5;
    long long hashed;      /* bytes of the file in md5 (once the task is joined) */
    long long hash_to;     /* the task hashes [hashed, hash_to) */
    sk_task *task;
    int md5_failed;        /* the file is hashed whole at commit instead */
};

int sk_fits_writer_md5(sk_fits_writer *w, int threads, char out[33])
{
    w->md5 = sk_md5_begin();
    if (!w->md5)
        return sk_error(SK_EIO, "%s: libcrypto cannot compute md5", w->path);
    w->md5_out = out;
    w->md5_threads = threads;
    return SK_OK;
}

/* The task: the bytes [hashed, hash_to) of the file into the md5. */
static int hash_part(void *arg)
{
    sk_fits_writer *w = arg;
    return sk_md5_update_file(w->md5, w->atomic->tmp_path, w->hashed, w->hash_to);
}

/* Wait for the part being hashed. */
static void hash_join(sk_fits_writer *w)
{
    if (!w->task)
        return;
    if (sk_task_join(w->task) == SK_OK)
        w->hashed = w->hash_to;
    else
        w->md5_failed = 1;
    sk_error_clear();
    w->task = NULL;
}

/* After an HDU: it is closed out and flushed, so that the file up to its
 * end is final (cfitsio touches only the current HDU), and that part is
 * hashed beside the writing of the next HDUs. */
static void hash_written(sk_fits_writer *w)
{
    if (!w->md5 || w->md5_failed)
        return;
    int status = 0;
    struct stat st;
    if (fits_flush_file(w->fptr, &status) || stat(w->atomic->tmp_path, &st) != 0) {
        fits_clear_errmsg();
        w->md5_failed = 1;
        return;
    }
    hash_join(w);
    if (w->md5_failed || (long long)st.st_size <= w->hashed)
        return;
    w->hash_to = (long long)st.st_size;
    if (sk_task_start(w->md5_threads, hash_part, w, &w->task) != SK_OK) {
        w->md5_failed = 1;
        sk_error_clear();
    }
}

/* At commit, the file closed: the rest hashed, the md5 given. */
static int hash_finish(sk_fits_writer *w)
{
    hash_join(w);
    struct stat st;
    int rc = stat(w->atomic->tmp_path, &st) == 0 ? SK_OK : sk_error(SK_EIO, "%s: cannot stat", w->path);
    if (!rc && !w->md5_failed)
        rc = sk_md5_update_file(w->md5, w->atomic->tmp_path, w->hashed, (long long)st.st_size);
    char hex[33];
    sk_md5_end(w->md5, hex);
    w->md5 = NULL;
    if (!rc && w->md5_failed)
        rc = sk_md5_file(w->atomic->tmp_path, hex);
    if (!rc)
        memcpy(w->md5_out, hex, 33);
    return rc;
}

int sk_fits_writer_open(const char *path, int compress, sk_fits_writer **out)
{
    *out = NULL;
    if (!path || !*path)
        return sk_error(SK_EINPUT, "no output path given");
    /* cfitsio's "!name" (overwrite) is what the rename gives anyway. */
    if (path[0] == '!')
        path++;
    sk_fits_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return sk_error(SK_EIO, "%s: out of memory", path);
    }
    w->compress = compress;
    int rc = sk_atomic_reserve(path, &w->atomic);
    if (rc) {
        free(w->path);
        free(w);
        return rc;
    }
    /* cfitsio creates only new files: free the reserved name for it, and
     * open it as a plain disk file so that no character of the name is
     * taken for cfitsio's extended-name syntax. */
    unlink(w->atomic->tmp_path);
    int status = 0;
    if (fits_create_diskfile(&w->fptr, w->atomic->tmp_path, &status)) {
        w->fptr = NULL;
        rc = sk_fits_status_error(status, path, "creating the file");
        sk_fits_writer_abort(w);
        return rc == SK_EINPUT ? SK_EIO : rc;
    }
    *out = w;
    return SK_OK;
}

static int write_empty_primary(sk_fits_writer *w)
{
    int status = 0;
    if (fits_create_img(w->fptr, BYTE_IMG, 0, NULL, &status))
        return sk_fits_status_error(status, w->path, "writing the primary HDU");
    w->nhdu = 1;
    return SK_OK;
}

/* The standard comment cfitsio writes into every primary header. */
static int is_cfitsio_boilerplate(const char *card)
{
    return strncmp(card, "COMMENT   FITS (Flexible Image Transport System) format is", 58) == 0 ||
           strncmp(card, "COMMENT   and Astrophysics', volume 376, page 359;", 50) == 0;
}

int sk_fits_write_cards(fitsfile *fptr, const sk_header *h, const char *path)
{
    if (!h)
        return SK_OK;
    for (int i = 0; i < h->ncards; i++) {
        const char *card = h->cards[i];
        char name[FLEN_CARD];
        if (strspn(card, " ") == SK_CARD_LEN || is_cfitsio_boilerplate(card))
            continue;
        sk_fits_card_keyword(card, name);
        if (sk_header_is_structural(name))
            continue;
        /* A CONTINUE card follows its keyword: drop it when that was dropped. */
        if (strcmp(name, "CONTINUE") == 0 && i > 0) {
            int k = i - 1;
            while (k > 0 && strncmp(h->cards[k], "CONTINUE", 8) == 0)
                k--;
            char parent[FLEN_CARD];
            sk_fits_card_keyword(h->cards[k], parent);
            if (sk_header_is_structural(parent))
                continue;
        }
        char buf[FLEN_CARD];
        int status = 0;
        snprintf(buf, sizeof buf, "%.80s", card);
        if (fits_write_record(fptr, buf, &status)) {
            char what[FLEN_CARD + 32];
            snprintf(what, sizeof what, "writing header card \"%.20s...\"", card);
            int rc = sk_fits_status_error(status, path, what);
            return rc;
        }
    }
    return SK_OK;
}

int sk_fits_writer_add_image(sk_fits_writer *w, const char *extname, int bitpix, long width,
                             long height, const void *pixels, const sk_header *header)
{
    int imgtype, datatype;
    switch (bitpix) {
    case -32: imgtype = FLOAT_IMG; datatype = TFLOAT; break;
    case -64: imgtype = DOUBLE_IMG; datatype = TDOUBLE; break;
    case 16: imgtype = USHORT_IMG; datatype = TUSHORT; break;
    case 32: imgtype = LONG_IMG; datatype = TINT; break;
    default:
        return sk_error(SK_EINPUT, "%s: unsupported BITPIX %d for HDU %s", w->path, bitpix,
                        extname ? extname : "PRIMARY");
    }
    if (width <= 0 || height <= 0 || !pixels)
        return sk_error(SK_EINPUT, "%s: HDU %s: bad image %ld x %ld", w->path,
                        extname ? extname : "PRIMARY", width, height);
    if (!extname && w->nhdu > 0)
        return sk_error(SK_EINPUT, "%s: only the first HDU may be written without a name", w->path);
    int rc;
    if (extname && w->nhdu == 0 && (rc = write_empty_primary(w)))
        return rc;

    int status = 0;
    if (extname && w->compress) {
        if (bitpix < 0 && w->quantize_level > 0) {
            fits_set_compression_type(w->fptr, RICE_1, &status);
            fits_set_quantize_level(w->fptr, w->quantize_level, &status);
            fits_set_quantize_method(w->fptr, SUBTRACTIVE_DITHER_1, &status);
        } else if (bitpix < 0) {
            fits_set_compression_type(w->fptr, GZIP_2, &status);
            fits_set_quantize_level(w->fptr, 0.0f, &status); /* lossless */
        } else {
            fits_set_compression_type(w->fptr, RICE_1, &status);
        }
    } else {
        /* 0, not NOCOMPRESS: the latter means tiled but uncompressed. */
        fits_set_compression_type(w->fptr, 0, &status);
    }
    long naxes[2] = {width, height};
    if (status || fits_create_img(w->fptr, imgtype, 2, naxes, &status))
        return sk_fits_status_error(status, w->path, "creating an image HDU");
    if (extname && fits_update_key(w->fptr, TSTRING, "EXTNAME", (char *)extname, "extension name", &status))
        return sk_fits_status_error(status, w->path, "writing EXTNAME");
    if ((rc = sk_fits_write_cards(w->fptr, header, w->path)))
        return rc;
    LONGLONG n = (LONGLONG)width * height;
    if (fits_write_img(w->fptr, datatype, 1, n, (void *)pixels, &status)) {
        char what[96];
        snprintf(what, sizeof what, "writing the pixels of %s", extname ? extname : "the primary HDU");
        return sk_fits_status_error(status, w->path, what);
    }
    w->nhdu++;
    hash_written(w);
    return SK_OK;
}

int sk_fits_writer_add_table(sk_fits_writer *w, const struct sk_table *t)
{
    int rc;
    if (w->nhdu == 0 && (rc = write_empty_primary(w)))
        return rc;
    if ((rc = sk_fits_table_write_hdu(w->fptr, t, w->path)))
        return rc;
    w->nhdu++;
    hash_written(w);
    return SK_OK;
}

static void free_writer(sk_fits_writer *w)
{
    hash_join(w);
    if (w->md5) {
        char hex[33];
        sk_md5_end(w->md5, hex);
    }
    free(w->path);
    free(w);
}

int sk_fits_writer_commit(sk_fits_writer *w)
{
    int rc = SK_OK, status = 0;
    if (w->nhdu == 0)
        rc = write_empty_primary(w);
    if (fits_close_file(w->fptr, &status) && rc == SK_OK)
        rc = sk_fits_status_error(status, w->path, "closing the file");
    w->fptr = NULL;
    fits_clear_errmsg();
    if (!rc && w->md5)
        rc = hash_finish(w);
    if (rc) {
        hash_join(w);
        sk_atomic_abort(w->atomic);
        free_writer(w);
        return rc == SK_EINPUT ? SK_EIO : rc;
    }
    rc = sk_atomic_commit(w->atomic);
    free_writer(w);
    return rc;
}

void sk_fits_writer_abort(sk_fits_writer *w)
{
    if (!w)
        return;
    hash_join(w);
    if (w->fptr) {
        int status = 0;
        fits_close_file(w->fptr, &status);
        fits_clear_errmsg();
    }
    sk_atomic_abort(w->atomic);
    free_writer(w);
}

int sk_fits_write_image(const char *path, const sk_image *img, const sk_write_opts *opts)
{
    sk_write_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    if (!img || !img->sci || img->width <= 0 || img->height <= 0)
        return sk_error(SK_EINPUT, "%s: no image to write", path ? path : "(null)");
    if ((!opts->no_weight && !img->weight) || (!opts->no_flags && !img->flags))
        return sk_error(SK_EINPUT, "%s: the image has no %s plane to write", path,
                        !img->weight ? "weight" : "flag");
    sk_header *sci_hdr = img->header ? sk_header_copy(img->header) : sk_header_new();
    if (!sci_hdr)
        return sk_errstatus() ? sk_errstatus() : SK_EIO;
    int rc = SK_OK;
    if (img->wcs)
        rc = sk_wcs_to_header(img->wcs, sci_hdr);
    sk_fits_writer *w = NULL;
    if (!rc)
        rc = sk_fits_writer_open(path, opts->compress, &w);
    if (!rc && opts->md5 && (rc = sk_fits_writer_md5(w, opts->threads, opts->md5))) {
        sk_fits_writer_abort(w);
        w = NULL;
    }
    if (!rc) {
        w->quantize_level = opts->quantize_level;
        rc = sk_fits_writer_add_image(w, "SCI", -32, img->width, img->height, img->sci, sci_hdr);
    }
    if (!rc && !opts->no_weight) {
        sk_header *wh = sk_header_new();
        rc = wh ? SK_OK : SK_EIO;
        if (!rc && img->weight_is_relative)
            rc = sk_header_set_bool(wh, "WGTREL", 1, "relative weights, not inverse variance");
        if (!rc)
            rc = sk_header_add_comment(wh, "COMMENT", "inverse variance of SCI; 0 = no data");
        if (!rc)
            rc = sk_fits_writer_add_image(w, "WGT", -32, img->width, img->height, img->weight, wh);
        sk_header_free(wh);
    }
    if (!rc && !opts->no_flags) {
        sk_header *fh = sk_header_new();
        rc = fh ? sk_flag_describe(fh) : SK_EIO;
        if (!rc)
            rc = sk_fits_writer_add_image(w, "FLG", 16, img->width, img->height, img->flags, fh);
        sk_header_free(fh);
    }
    sk_header_free(sci_hdr);
    if (rc) {
        sk_fits_writer_abort(w);
        return rc;
    }
    return sk_fits_writer_commit(w);
}
