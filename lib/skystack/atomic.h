/* atomic.h: atomic file creation: write a temporary file in the target's
 * directory, fsync it, rename it over the target and fsync the directory,
 * so readers see either the old file or the complete new one. */
#ifndef SKYSTACK_ATOMIC_H
#define SKYSTACK_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_atomic {
    char *final_path; /* where the file will appear on commit */
    char *tmp_path;   /* the temporary file being written (same directory);
                         NULL when path is a device or FIFO written
                         straight through (sk_atomic_open only) */
    FILE *fp;         /* open for writing on tmp_path (NULL for sk_atomic_reserve) */
} sk_atomic;

/* Create a temporary file next to `path` and open it for writing. */
int sk_atomic_open(const char *path, sk_atomic **out);

/* Reserve a temporary name next to `path` (the file exists, empty, and is
 * closed) for writers that open files themselves, such as cfitsio. */
int sk_atomic_reserve(const char *path, sk_atomic **out);

/* Flush, fsync, rename onto final_path, fsync the directory, free. On
 * failure the temporary is removed, the target untouched, SK_EIO returned. */
int sk_atomic_commit(sk_atomic *a);

/* Remove the temporary and free; the target is untouched. NULL is allowed. */
void sk_atomic_abort(sk_atomic *a);

/* Write a whole buffer atomically to `path`. */
int sk_atomic_write_file(const char *path, const void *data, size_t len);

/* Create a directory and its parents (mode 0777 & ~umask); existing is fine. */
int sk_mkdir_p(const char *path);

#ifdef __cplusplus
}
#endif
#endif
