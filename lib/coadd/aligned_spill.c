/* aligned_spill.c: a scratch file that holds the aligned inputs' planes on the output grid (science, weight, flags, artifact residuals) so that the aligned-input coadds read them back band by band instead of holding every input in memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "aligned_priv.h"
#include "skystack/error.h"

struct sk_cx_spill {
    int fd;
    int n;
    long width, height;
    char dir[512];
    const struct sk_artifact_masks *masks; /* applied on reading */
};

/* Bytes per pixel of each plane, and its offset (in pixels' worth of
 * bytes) inside an input's block. */
static const int plane_bytes[SK_CX_NPLANES] = {4, 4, 2, 4, 4};

static off_t plane_offset(const sk_cx_spill *s, int k, int plane)
{
    off_t npix = (off_t)s->width * (off_t)s->height;
    off_t per_px = 0, before = 0;
    for (int p = 0; p < SK_CX_NPLANES; p++) {
        if (p < plane)
            before += plane_bytes[p];
        per_px += plane_bytes[p];
    }
    return (off_t)k * per_px * npix + before * npix;
}

int sk_cx_spill_new(int n, long width, long height, sk_cx_spill **out)
{
    *out = NULL;
    if (n < 1 || width < 1 || height < 1)
        return sk_error(SK_EINPUT, "coadd: no planes for the scratch file");
    sk_cx_spill *s = calloc(1, sizeof *s);
    if (!s)
        return sk_error(SK_EIO, "coadd: out of memory");
    const char *dir = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s", dir && *dir ? dir : "/tmp");
    char path[600];
    snprintf(path, sizeof path, "%s/skystack-coadd-XXXXXX", s->dir);
    s->fd = mkstemp(path);
    if (s->fd < 0) {
        int e = errno;
        free(s);
        return sk_error(SK_EIO, "coadd: cannot create a scratch file in %s (TMPDIR): %s",
                        dir && *dir ? dir : "/tmp", strerror(e));
    }
    /* nobody else needs its name: the space is freed when it is closed */
    unlink(path);
    s->n = n;
    s->width = width;
    s->height = height;
    *out = s;
    return SK_OK;
}

void sk_cx_spill_free(sk_cx_spill *s)
{
    if (!s)
        return;
    close(s->fd);
    free(s);
}

static int check_rows(const sk_cx_spill *s, int k, int plane, long x0, long y0, long w, long h)
{
    if (k < 0 || k >= s->n || plane < 0 || plane >= SK_CX_NPLANES || x0 < 0 || y0 < 0 ||
        w < 0 || h < 0 || x0 + w > s->width || y0 + h > s->height)
        return sk_error(SK_EINPUT, "coadd: scratch plane %d of input %d: bad region", plane, k);
    return SK_OK;
}

/* All of len bytes at off, read or written. */
static int io_all(const sk_cx_spill *s, int writing, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = writing ? pwrite(s->fd, p, len, off) : pread(s->fd, p, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return sk_error(SK_EIO, "coadd: scratch file in %s: cannot %s: %s", s->dir,
                            writing ? "write" : "read", r < 0 ? strerror(errno) : "short read");
        p += r;
        len -= (size_t)r;
        off += r;
    }
    return SK_OK;
}

int sk_cx_spill_put(sk_cx_spill *s, int k, int plane, long y0, long nrows, const void *buf)
{
    int rc = check_rows(s, k, plane, 0, y0, s->width, nrows);
    if (rc)
        return rc;
    size_t row = (size_t)s->width * (size_t)plane_bytes[plane];
    return io_all(s, 1, (void *)buf, row * (size_t)nrows,
                  plane_offset(s, k, plane) + (off_t)row * y0);
}

int sk_cx_spill_get(sk_cx_spill *s, int k, int plane, long y0, long nrows, void *buf)
{
    return sk_cx_spill_get_box(s, k, plane, 0, y0, s->width, nrows, buf);
}

int sk_cx_spill_get_box(sk_cx_spill *s, int k, int plane, long x0, long y0, long w, long h,
                        void *buf)
{
    int rc = check_rows(s, k, plane, x0, y0, w, h);
    if (rc)
        return rc;
    size_t bpp = (size_t)plane_bytes[plane], row = (size_t)s->width * bpp;
    off_t base = plane_offset(s, k, plane) + (off_t)row * y0;
    if (x0 == 0 && w == s->width)
        return io_all(s, 0, buf, row * (size_t)h, base);
    for (long y = 0; y < h && !rc; y++)
        rc = io_all(s, 0, (char *)buf + (size_t)y * (size_t)w * bpp, (size_t)w * bpp,
                    base + (off_t)row * y + (off_t)((size_t)x0 * bpp));
    return rc;
}

void sk_cx_spill_set_masks(sk_cx_spill *s, const struct sk_artifact_masks *m)
{
    s->masks = m;
}

void sk_cx_planes_free(sk_cx_planes *p)
{
    free(p->sci);
    free(p->weight);
    free(p->flags);
    memset(p, 0, sizeof *p);
}

int sk_cx_planes_read(sk_cx_spill *s, int k, long y0, long nrows, sk_cx_planes *p,
                      sk_aligned_input *view)
{
    int rc = sk_cx_planes_read_box(s, k, 0, s->width, y0, nrows, p, view);
    if (!rc && view)
        view->col0 = view->ncols = 0;
    return rc;
}

int sk_cx_planes_read_box(sk_cx_spill *s, int k, long x0, long ncols, long y0, long nrows,
                          sk_cx_planes *p, sk_aligned_input *view)
{
    size_t npix = (size_t)ncols * (size_t)nrows;
    if (p->cap < npix) {
        sk_cx_planes_free(p);
        p->sci = malloc(sizeof(float) * (npix ? npix : 1));
        p->weight = malloc(sizeof(float) * (npix ? npix : 1));
        p->flags = malloc(sizeof(uint16_t) * (npix ? npix : 1));
        if (!p->sci || !p->weight || !p->flags) {
            sk_cx_planes_free(p);
            return sk_error(SK_EIO, "coadd: out of memory for %ld rows of an input", nrows);
        }
        p->cap = npix;
    }
    int rc = sk_cx_spill_get_box(s, k, SK_CX_SCI, x0, y0, ncols, nrows, p->sci);
    rc = rc ? rc : sk_cx_spill_get_box(s, k, SK_CX_WGT, x0, y0, ncols, nrows, p->weight);
    rc = rc ? rc : sk_cx_spill_get_box(s, k, SK_CX_FLG, x0, y0, ncols, nrows, p->flags);
    if (!rc && s->masks)
        sk_artifact_apply_box(s->masks, k, x0, ncols, y0, y0 + nrows, p->weight, p->flags);
    if (!rc && view) {
        view->sci = p->sci;
        view->weight = p->weight;
        view->flags = p->flags;
        view->row0 = y0;
        view->nrows = nrows;
        view->col0 = x0;
        view->ncols = ncols;
    }
    return rc;
}
