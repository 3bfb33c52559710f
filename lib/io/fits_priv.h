/* fits_priv.h: helpers shared by the cfitsio readers and writers of images and tables (not installed). */
#ifndef SKYSTACK_FITS_PRIV_H
#define SKYSTACK_FITS_PRIV_H

#include <fitsio.h>
#include "skystack/header.h"
#include "skystack/table.h"

/* Turn a cfitsio status into an sk_error naming the file and what failed
 * (not FITS, truncated, ... ) and clear cfitsio's message stack. Returns
 * SK_EINPUT for bad content, SK_EIO for system failures. */
int sk_fits_status_error(int status, const char *path, const char *what);

/* Open an existing file read-only without extended-name parsing (gzip and
 * other compressed files are decompressed by cfitsio). */
int sk_fits_open_read(const char *path, fitsfile **fptr);

/* Read the n pixels of the current HDU of fptr (opened from the disk file
 * `path`) on `threads` threads (below 2: one), each with its own cfitsio
 * handle on the file, when they are stored plainly as `bitpix`: -32
 * (unscaled floats, read into float buf as fits_read_img gives them with
 * a NaN null value) or 16 with BZERO 32768, BSCALE 1 and no BLANK (read
 * into uint16_t buf). The same chunks whatever the thread count. *done
 * is 0, and nothing read, when the plane is stored otherwise
 * (fits_plain.c). */
/* 1 when the current HDU of `fptr` (opened from the disk file `path`)
 * holds `bitpix` pixels stored plainly in that file (-32 unscaled, or 16
 * as unsigned: BZERO 32768, BSCALE 1, no BLANK; not compressed), big-endian
 * from byte *datastart of the file; else 0. */
int sk_fits_plain_offset(fitsfile *fptr, const char *path, int bitpix, long long *datastart);

int sk_fits_plain_read(fitsfile *fptr, const char *path, int threads, int bitpix, size_t n, void *buf,
                       int *done);

/* Move to the HDU named or numbered `hdu` ("0" = primary). NULL: "SCI" if
 * present, else the first 2-D image HDU (want_table = 0) or the first
 * binary table (want_table = 1). */
int sk_fits_goto_hdu(fitsfile *fptr, const char *path, const char *hdu, int want_table);

/* SK_EINPUT when the file is too short to hold the current HDU's data (a
 * truncated file, or a damaged NAXISn); checked before allocating. */
int sk_fits_check_data_size(fitsfile *fptr, const char *path, const char *label);

/* The current HDU's header (INHERIT = T merged with the primary's). */
int sk_fits_current_header(fitsfile *fptr, const char *path, sk_header **out);

/* Keyword of an 80-character card ("" for blank, HIERARCH without prefix). */
void sk_fits_card_keyword(const char *card, char *name);

/* Write the non-structural cards of `h` into the current HDU. */
int sk_fits_write_cards(fitsfile *fptr, const sk_header *h, const char *path);

/* The planes beside a science image in its own file, found under the
 * extension names pipelines give them (fits.h, sk_fits_companions). */
typedef struct sk_companions {
    char noise_hdu[72];    /* "" when none */
    int noise_kind;        /* enum sk_noise_kind */
    int noise_relative;    /* WGT with WGTREL = T */
    char mask_hdu[72];     /* "" when none */
    int mask_is_flags;     /* 1: FLG (skystack flag bits); 0: data-quality codes */
} sk_companions;

/* Look in the open file for the planes of the science HDU number
 * `sci_hdunum` (1-based, as cfitsio counts) of width x height: 2-D images
 * of that size under the names of sk_fits_companions; the file is left at
 * the science HDU. */
int sk_fits_find_companions(fitsfile *fptr, const char *path, int sci_hdunum, long width, long height,
                            sk_companions *out);

/* Create a binary table HDU holding `t` in an open file. */
int sk_fits_table_write_hdu(fitsfile *fptr, const sk_table *t, const char *path);

#endif
