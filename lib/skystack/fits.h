/* fits.h: reading and writing images with cfitsio: plain, multi-extension
 * (INHERIT), integer with BZERO/BSCALE and tile-compressed files, separate
 * weight/variance/rms/mask files, and the skystack layout SCI/WGT/FLG.
 * Every write is atomic (see atomic.h). HDU numbers are 0-based like
 * cfitsio's extension syntax: "0" is the primary HDU. */
#ifndef SKYSTACK_FITS_H
#define SKYSTACK_FITS_H

#include "image.h"
#include "header.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a separate (or in-file) noise plane holds. */
enum sk_noise_kind {
    SK_NOISE_WEIGHT = 0,   /* inverse variance (skystack WGT, DECam oow) */
    SK_NOISE_VARIANCE = 1, /* variance; converted to 1/variance */
    SK_NOISE_RMS = 2       /* standard deviation; converted to 1/rms^2 */
};

typedef struct sk_read_opts {
    const char *hdu;          /* science HDU: name ("SCI", "N12") or number
                                 ("1"); NULL = "SCI" if present, else the
                                 first HDU holding a 2-D image */
    const char *noise_path;   /* separate weight/variance/rms file, or NULL:
                                 then the WGT extension of the science file
                                 if present, else relative weight 1 */
    const char *noise_hdu;    /* HDU in noise_path (NULL: same name as the
                                 science HDU if present, else first image) */
    int noise_kind;           /* enum sk_noise_kind */
    const char *mask_path;    /* separate data-quality mask file, or NULL: then
                                 the FLG extension of the science file if present */
    const char *mask_hdu;     /* HDU in mask_path (NULL as for noise_hdu) */
    int mask_is_flags;        /* 1: mask values are skystack flag bits (FLG);
                                 0: data-quality codes, non-zero = SK_FLAG_BAD */
    int no_saturation;        /* 1: do not flag pixels >= SATURATE */
    const char *saturate_key; /* header keyword of the saturation level
                                 (NULL = "SATURATE") */
    int threads;              /* threads for reading and checking the pixels
                                 (below 1: one); the image does not depend
                                 on it */
} sk_read_opts;

/* Read an image. Non-finite pixels are flagged and get weight 0; masked
 * pixels get weight 0; pixels at or above the saturation level are flagged
 * SK_FLAG_SATURATED (weight kept). The WCS is parsed when the header has
 * one (img->wcs stays NULL otherwise; that is not an error here).
 * Errors: SK_EINPUT (not FITS, no such HDU, not 2-D, size mismatch between
 * science and noise/mask, negative variance...), SK_EIO (unreadable). */
int sk_fits_read_image(const char *path, const sk_read_opts *opts, sk_image **out);

/* Read only the header of an HDU (NULL = as for sk_read_opts.hdu), merged
 * with the primary header when the HDU says INHERIT = T. */
int sk_fits_read_header(const char *path, const char *hdu, sk_header **out);

typedef struct sk_write_opts {
    int compress;          /* 1: tile-compress (RICE for FLG; lossless GZIP_2
                              for float planes unless quantize_level > 0) */
    float quantize_level;  /* >0: lossy RICE with this q (fpack-like) */
    int no_weight;         /* 1: omit WGT */
    int no_flags;          /* 1: omit FLG */
    char *md5;             /* non-NULL: receives the file's md5 (32 hex digits
                              and NUL), computed as it is written
                              (sk_fits_writer_md5) */
    int threads;           /* > 1: that md5 beside the writing */
} sk_write_opts;

/* Write the skystack layout: empty primary HDU then SCI (float32, with
 * img->header's non-structural cards and the WCS), WGT (float32) and FLG
 * (uint16, with FLAGBITn cards) image extensions, atomically. `opts` may be
 * NULL. Extra planes (e.g. a coadd's NIMG) are added with sk_fits_writer. */
int sk_fits_write_image(const char *path, const sk_image *img, const sk_write_opts *opts);

/* A multi-HDU atomic writer for products with more than the three planes
 * (coadd NIMG, background + rms, PSFEx files): create, add HDUs, commit. */
typedef struct sk_fits_writer sk_fits_writer;

int sk_fits_writer_open(const char *path, int compress, sk_fits_writer **out);
/* Add a 2-D image HDU. bitpix: -32 (float*), 16 (uint16_t* written with
 * BZERO 32768), 32 (int32_t*), -64 (double*). `header` may be NULL; its
 * structural cards are ignored. extname may be NULL only for the first HDU
 * (then it becomes the primary HDU). */
int sk_fits_writer_add_image(sk_fits_writer *w, const char *extname, int bitpix,
                             long width, long height, const void *pixels,
                             const sk_header *header);
struct sk_table;
int sk_fits_writer_add_table(sk_fits_writer *w, const struct sk_table *t);
/* Ask for the md5 of the file (32 hex digits and NUL into out at a
 * successful commit), computed as it is written: each HDU once written is
 * hashed (re-read from the page cache) on a task beside the writing of the
 * next when threads > 1, the last one at commit. Call before any HDU. */
int sk_fits_writer_md5(sk_fits_writer *w, int threads, char out[33]);
int sk_fits_writer_commit(sk_fits_writer *w);  /* frees w */
void sk_fits_writer_abort(sk_fits_writer *w);  /* frees w; nothing left behind */

/* Read one 2-D image plane of any type as float (BZERO/BSCALE applied).
 * hdu as in sk_read_opts. *pixels is malloc'd. */
int sk_fits_read_plane(const char *path, const char *hdu, float **pixels,
                       long *width, long *height, sk_header **header);

/* Reading a 2-D plane a few rows at a time (for images larger than one
 * wants in memory): open at `hdu` (as sk_fits_read_plane), read rows
 * [y0, y0 + nrows) (0-based) as float into buf (nrows * width values;
 * BLANK and non-finite values become NaN), close. `header` may be NULL. */
typedef struct sk_plane_reader sk_plane_reader;
int sk_plane_reader_open(const char *path, const char *hdu, sk_plane_reader **out, long *width,
                         long *height, sk_header **header);
int sk_plane_reader_rows(sk_plane_reader *r, long y0, long nrows, float *buf);
void sk_plane_reader_close(sk_plane_reader *r);

/* 1 when `path` is a readable FITS file that has an HDU named `extname`. */
int sk_fits_has_hdu(const char *path, const char *extname);

/* Replace the world coordinate system in the header of HDU `hdu` (NULL: as
 * sk_read_opts.hdu) of the FITS file `path` (fits_update.c): the keywords
 * of its primary description (CTYPEn, CRVALn, CRPIXn, CDi_j, PCi_j, CDELTn,
 * PVi_m, SIP's A_/B_/AP_/BP_ ...; alternate descriptions are kept) are
 * removed, the cards of `wcs` written, and a HISTORY line added (NULL:
 * none; the same line from an earlier update is replaced, so updating
 * twice with the same cards gives the same file). The file is rewritten whole next to itself with the original's
 * permissions and renamed over it: readers see the old or the new file,
 * and on any error the file is untouched. SK_EINPUT: no such file or HDU,
 * not FITS, a compressed (.gz) file; SK_EIO: cannot write. */
int sk_fits_replace_wcs(const char *path, const char *hdu, const sk_header *wcs,
                        const char *history);

#ifdef __cplusplus
}
#endif
#endif
