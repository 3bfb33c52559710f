/* path_priv.h: small helpers on file paths shared by the library's
 * pipelines (internal, not installed): bounded formatting, FITS
 * extensions, base names, and what an argument names (a file or an id). */
#ifndef SK_PATH_PRIV_H
#define SK_PATH_PRIV_H

#include <stddef.h>

/* snprintf into a path buffer; SK_EINPUT when the result would not fit. */
int sk_path_format(char *out, size_t outsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The path without its FITS extension (".fits.fz", ".fits.gz", ".fit.gz",
 * ".fits", ".fit", ".fts", ".fz" or ".gz"), its directory kept. */
void sk_path_strip_fits_ext(const char *path, char *out, size_t outsz);

/* The part after the last '/'. */
const char *sk_path_base_name(const char *path);

/* 1 when `path` is an existing regular file. */
int sk_path_is_file(const char *path);

/* 1 when `s` is a non-empty string of decimal digits (an image id). */
int sk_path_is_number(const char *s);

/* Remove a product and its provenance sidecar (PATH.json), ignoring
 * files that are not there. */
void sk_path_remove_product(const char *path);

/* Remove, in directory dir, the temporary files of atomic writes
 * (NAME.tmp-XXXXXX, see atomic.c) whose NAME is stem followed by a dot
 * and more (stem.sources.fits, stem.bkg.fits, ...): what a
 * worker that stopped mid-write left. Call it only under the claim or lock
 * that makes this process the one writing those products. Returns how many
 * were removed; each is logged. */
int sk_path_remove_temporaries(const char *dir, const char *stem);

#endif
