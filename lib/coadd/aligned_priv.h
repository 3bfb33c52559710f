/* aligned_priv.h: helpers shared by the aligned-input coadds (zogy.c,
 * psfmatch.c, bgmatch.c, artifact.c), implemented in aligned_util.c and
 * resample_noise.c. */
#ifndef SK_COADDX_PRIV_H
#define SK_COADDX_PRIV_H

#include <pthread.h>
#include <stdint.h>
#include <fftw3.h>
#include "core/parallel.h"
#include "skystack/coaddx.h"
#include "coaddx_internal.h"

/* 1 when input `in` holds output pixel (x, y) of a grid `width` wide,
 * its index in the planes into *i. */
static inline int sk_cx_held(const sk_aligned_input *in, long width, long x, long y, size_t *i)
{
    if (!in->sci || y < in->row0 || y >= in->row0 + in->nrows)
        return 0;
    if (in->ncols > 0) {
        if (x < in->col0 || x >= in->col0 + in->ncols)
            return 0;
        *i = (size_t)(y - in->row0) * (size_t)in->ncols + (size_t)(x - in->col0);
        return 1;
    }
    *i = (size_t)(y - in->row0) * (size_t)width + (size_t)x;
    return 1;
}

/* 1 when output pixel (x, y) of input `in` is usable (see coaddx.h), its
 * index in the planes into *i. */
static inline int sk_cx_usable_at(const sk_aligned_input *in, long width, long x, long y,
                                  unsigned mask_flags, size_t *i)
{
    if (!sk_cx_held(in, width, x, y, i))
        return 0;
    float w = in->weight[*i], v = in->sci[*i];
    if (!(w > 0.0f) || !__builtin_isfinite(w) || !__builtin_isfinite(v))
        return 0;
    return !(in->flags && (in->flags[*i] & mask_flags));
}

/* 1 when output pixel (x, y) of input `in` is usable (see coaddx.h). */
static inline int sk_cx_usable(const sk_aligned_input *in, long width, long x, long y,
                               unsigned mask_flags)
{
    size_t i;
    return sk_cx_usable_at(in, width, x, y, mask_flags, &i);
}

/* Flags of pixel (x, y) of an input (0 where it holds no such row). */
static inline uint16_t sk_cx_flags(const sk_aligned_input *in, long width, long x, long y)
{
    size_t i;
    if (!in->flags || !sk_cx_held(in, width, x, y, &i))
        return 0;
    return in->flags[i];
}

/* Fill the unusable pixels (valid[i] == 0) of an nx x ny array from their
 * neighbours by a multi-scale local mean (push-pull: masked 2x2 averages
 * up a pyramid, bilinear interpolation back down); valid pixels are kept
 * bit for bit. With no valid pixel the array becomes 0. SK_EIO when out
 * of memory. */
int sk_cx_inpaint(float *v, const uint8_t *valid, long nx, long ny);
/* The same for nv arrays v[0..nv-1] sharing one mask, in one pass (each
 * filled as sk_cx_inpaint would fill it alone). */
int sk_cx_inpaint_planes(float *const *v, int nv, const uint8_t *valid, long nx, long ny);

/* Dilate with a (2r+1)^2 square: out[i] = OR of in[] over the square
 * (bits), computed separably; `tmp` holds nx*ny values. */
void sk_cx_dilate_or(const uint16_t *in, uint16_t *out, uint16_t *tmp, long nx, long ny, long r);

/* Full width at half maximum (pixels) of a stamp from the area above half
 * its peak, refined on a 4x finer bilinear grid: 2 sqrt(area / pi). */
double sk_cx_stamp_fwhm(const float *stamp, long size);

/* Call a PSF callback, check the stamp (finite, positive sum), scale it to
 * unit sum, and shrink the noise of an empirical model in Fourier space
 * (see aligned_util.c). SK_EINPUT naming input `j` otherwise. */
int sk_cx_psf_stamp(const sk_aligned_input *in, int j, double x, double y, long size,
                    float *stamp);

/* sk_cx_psf_stamp with `lock` held (the PSF callbacks are not thread-safe). */
int sk_cx_psf_stamp_locked(pthread_mutex_t *lock, const sk_aligned_input *in, int j, double x,
                           double y, long size, float *stamp);

/* Put a size x size stamp centred on its middle pixel into an ny x nx
 * array (zeroed first) with the centre at (0, 0), wrapping around: the
 * layout whose Fourier transform is the stamp's centred transform. */
void sk_cx_embed(const float *stamp, long size, float *arr, long nx, long ny);

/* The half spectrum (FFTW's r2c layout) of an ny x nx array that is zero
 * outside rows -h .. h (wrapped: a stamp put by sk_cx_embed, h = size / 2):
 * a transform of only those rows along x, then every column along y, about
 * half the work of the whole 2-D transform (the same values within float
 * rounding). Plans made once (FFTW's planner is not thread-safe: make them
 * where no other thread plans), used by any thread. */
typedef struct sk_cx_sparse_fft {
    long nx, ny;
    fftwf_plan row, col;
} sk_cx_sparse_fft;

/* SK_EIO when FFTW cannot plan. */
int sk_cx_sparse_fft_init(sk_cx_sparse_fft *s, long nx, long ny);
void sk_cx_sparse_fft_free(sk_cx_sparse_fft *s);
/* The half spectrum of r (rows beyond -h .. h ignored) into c. */
void sk_cx_sparse_r2c(const sk_cx_sparse_fft *s, const float *r, long h, fftwf_complex *c);

/* 1/sqrt(median usable weight) of an input over the rows it holds, from at
 * most about 2 million sampled pixels; 0 when it has no usable pixel. */
double sk_cx_sigma_from_weight(const sk_aligned_input *in, long width, unsigned mask_flags);

/* Threads to use for `want` (0: every online core). */
int sk_cx_threads(int want);

/* The tiling of the Fourier-space coadds (zogy.c, psfmatch.c): cores of up
 * to tile_px on a fixed grid, each transformed with a margin of one PSF
 * size on every side in a buffer of FFT-friendly size; PSFs on a grid of
 * twice the PSF size. */
typedef struct sk_cx_tiling {
    long width, height;   /* the output */
    long margin;          /* px on every side of a core */
    long tcx, tcy;        /* core size */
    long lx, ly;          /* buffer size */
    long ntx, nty;        /* cores across and down */
    long g;               /* PSF grid size */
} sk_cx_tiling;

/* SK_EINPUT, the message starting with `who`, unless there are inputs, the
 * output has pixels, the PSF size is odd and at least 3 and the tile size
 * at least 16. */
int sk_cx_tiling_check(const char *who, int n, long width, long height, long psf_size,
                       long tile_px);

void sk_cx_tiling_init(sk_cx_tiling *t, long width, long height, long psf_size, long tile_px);

/* Input rows [*need0, *need1) that output rows [y0, y1) need. */
void sk_cx_tiling_rows_needed(const sk_cx_tiling *t, long y0, long y1, long *need0,
                              long *need1);

/* SK_EINPUT, the message starting with `who`, unless [y0, y1) are rows of
 * an output of `height` rows and sci and weight are given. */
int sk_cx_rows_check(const char *who, long height, long y0, long y1, const float *sci,
                     const float *weight);

/* SK_EINPUT, the message starting with `who`, when input `j` holds rows
 * but not all those output rows [y0, y1) need. */
int sk_cx_input_rows_check(const char *who, const sk_cx_tiling *t, const sk_aligned_input *in,
                           int j, long y0, long y1);

/* The output rows [y0, y1) a tiled coadd writes: science, weight and
 * optionally flags and input counts, (y1 - y0) rows of the output width. */
typedef struct sk_cx_band {
    long y0, y1;
    float *sci, *weight;
    uint16_t *flags, *nimg;
} sk_cx_band;

/* Work on tile (tx, ty) with the calling thread's workspace. */
typedef int (*sk_cx_tile_fn)(void *ws, long tx, long ty, void *user);

/* fn on each tile that covers output rows [y0, y1), one tile per chunk of
 * sk_parallel_for_scratch on sk_cx_threads(threads) threads, each thread
 * with the workspace of `ws` (its init and release called with `user`). */
int sk_cx_tiles_run(const sk_cx_tiling *t, long y0, long y1, int threads, const sk_scratch *ws,
                    sk_cx_tile_fn fn, void *user);
/* The same for the tiles of tile columns [tx0, tx1) only. */
int sk_cx_tiles_run_cols(const sk_cx_tiling *t, long y0, long y1, long tx0, long tx1,
                         int threads, const sk_scratch *ws, sk_cx_tile_fn fn, void *user);

/* The columns [*x0, *x1) of the grid that tile columns [tx0, tx1) read
 * (their cores and margins, clipped to the grid). */
void sk_cx_tiling_cols_needed(const sk_cx_tiling *t, long tx0, long tx1, long *x0, long *x1);

/* The core [*cx0, *cx1) x [*cy0, *cy1) of tile (tx, ty). */
void sk_cx_tiling_core(const sk_cx_tiling *t, long tx, long ty, long *cx0, long *cy0,
                       long *cx1, long *cy1);

/* ---- resample_noise.c: what resampling did to an input's noise and signal */

struct sk_kernel_table;

/* The noise and transfer model of a plane resampled with a kernel, around
 * a region of the output grid. Resampling output pixel p takes
 * sum_i w_p(i) g(i) over input pixels i, with the kernel's tabulated
 * weights at p's sub-pixel phase on the input. For input noise of unit
 * variance that is noise of covariance Cov(d) = <sum_i w_p(i) w_(p+d)(i)>
 * (averaged over the region's pixels p, with p+d mapped through the local
 * Jacobian J = d(input)/d(output)) and power spectrum Q(k) = sum_d Cov(d)
 * e^(-i k.d); for a signal it is the transfer T(k) = <A_x(kx') A_y(ky')>,
 * k' = J^-T k, A(k'; f) = sum_t w_t(f) e^(i k' (t - f)) over the taps t at
 * phase f, averaged per axis over the region's phases (exact for a shift,
 * and for phases spread evenly as with rotations). */
typedef struct sk_resample_noise {
    int identity;      /* not resampled: T = Q = rho = 1 */
    double jit[4];     /* J^-T, row-major: k' = jit k */
    double rho;        /* Cov(0): the per-pixel variance factor */
    double q0;         /* Q(0) = sum_d Cov(d): the large-scale factor */
    long r;            /* Cov holds lags -r .. r on both axes */
    double *cov;       /* (2r+1)^2, row-major, symmetric */
    long nk;           /* nodes of the per-axis transfer tables */
    double kmax, dk;   /* node i at -kmax + i dk */
    double *ax, *ay;   /* mean A per axis, (re, im) per node */
} sk_resample_noise;

/* The model of a plane mapped by `map` (NULL: not resampled) and resampled
 * with kernel table kt, over output pixels [x0, x1) x [y0, y1), from 256
 * pixels of the region (those the map cannot place are left out; with none,
 * or no Jacobian anywhere, the identity). SK_EINPUT without a kernel table
 * or with an empty region, SK_EIO when out of memory. */
int sk_resample_noise_at(sk_resample_noise *m, const struct sk_kernel_table *kt,
                         sk_pixel_map_fn map, void *ctx, long x0, long y0, long x1, long y1);
void sk_resample_noise_clear(sk_resample_noise *m);

/* The mean transfer T at output frequency (kx, ky) (radians per output
 * pixel): the response to e^(i k.q) is T e^(i k.p). */
void sk_resample_noise_transfer(const sk_resample_noise *m, double kx, double ky, double *re,
                                double *im);

/* On an ny x nx FFT grid (half spectrum ny x (nx/2+1), FFTW's sign
 * convention): filt = rho conj(T) / Q and gain = rho |T|^2 / Q, with T
 * limited so that |T|^2 <= |det J| Q (the bound the exact model obeys, an
 * equality for a shift: |det J| input pixels per output pixel) and Q
 * floored at 1e-6 rho. For an input plane D with noise power
 * sigma^2 Q / rho (sigma^2 its per-pixel variance) and PSF T P,
 * conj(P) filt D^ / sigma^2 has noise power and signal gain |P|^2 / sigma^2:
 * the white-noise formulas of the proper coadd hold with these factors.
 * fwd is an r2c plan of ny x nx; r (ny*nx floats) and c (half spectrum)
 * are scratch. The identity gives filt = 1, gain = 1. */
void sk_resample_noise_spectrum(const sk_resample_noise *m, long nx, long ny, fftwf_plan fwd,
                                float *r, fftwf_complex *c, fftwf_complex *filt, float *gain);
/* The same on the grid of sp, Q transformed by its rows -r .. r only. */
void sk_resample_noise_spectrum_sparse(const sk_resample_noise *m, const sk_cx_sparse_fft *sp,
                                       float *r, fftwf_complex *c, fftwf_complex *filt,
                                       float *gain);

/* ---- aligned_spill.c: the inputs' planes on the grid in a scratch file */

/* The planes kept per input: SCI, WGT (float), FLG (uint16), and the
 * artifact residual RES and its noise variance VN (float). */
enum { SK_CX_SCI, SK_CX_WGT, SK_CX_FLG, SK_CX_RES, SK_CX_VN, SK_CX_NPLANES };

typedef struct sk_cx_spill sk_cx_spill;

/* A scratch file for n inputs of width x height in $TMPDIR (else /tmp),
 * removed from the directory at once (its space is freed when it is
 * closed). SK_EIO naming the directory when it cannot be made. */
int sk_cx_spill_new(int n, long width, long height, sk_cx_spill **out);
void sk_cx_spill_free(sk_cx_spill *s);

/* Artifact masks (NULL: none) applied to the weight and flags of every
 * later sk_cx_planes_read(_box) of the inputs (the file keeps the planes
 * as written): one pass over the planes spared. */
struct sk_artifact_masks;
void sk_cx_spill_set_masks(sk_cx_spill *s, const struct sk_artifact_masks *m);

/* sk_artifact_apply_rows on the columns [x0, x0+ncols) of those rows only
 * (rows of ncols values). */
long sk_artifact_apply_box(const struct sk_artifact_masks *m, int j, long x0, long ncols,
                           long y0, long y1, float *weight, uint16_t *flags);

/* Write / read rows [y0, y0+nrows) of a plane of input k (full width). */
int sk_cx_spill_put(sk_cx_spill *s, int k, int plane, long y0, long nrows, const void *buf);
int sk_cx_spill_get(sk_cx_spill *s, int k, int plane, long y0, long nrows, void *buf);

/* Read the box [x0, x0+w) x [y0, y0+h) of a plane of input k (w values a row). */
int sk_cx_spill_get_box(sk_cx_spill *s, int k, int plane, long x0, long y0, long w, long h,
                        void *buf);

/* Buffers for rows of an input's SCI, WGT and FLG, grown as needed. */
typedef struct sk_cx_planes {
    float *sci, *weight;
    uint16_t *flags;
    size_t cap;
} sk_cx_planes;

/* Rows [y0, y0+nrows) of input k's SCI, WGT and FLG into p; with `view`,
 * its planes and rows set to them (its other fields are kept). */
int sk_cx_planes_read(sk_cx_spill *s, int k, long y0, long nrows, sk_cx_planes *p,
                      sk_aligned_input *view);
void sk_cx_planes_free(sk_cx_planes *p);
/* The same for the columns [x0, x0+ncols) of those rows only (rows of
 * ncols values; with `view`, its columns set to them). */
int sk_cx_planes_read_box(sk_cx_spill *s, int k, long x0, long ncols, long y0, long nrows,
                          sk_cx_planes *p, sk_aligned_input *view);

/* sk_artifact_detect on inputs whose planes are in a scratch file (in[]
 * gives the PSFs and the rest, no rows), sigma[j] each input's noise as
 * sk_cx_sigma_from_weight finds it: the reference is made band_rows rows
 * at a time (those rows of every input read at once), the residuals are
 * computed band by band, the reference matched to a group of inputs at a
 * time, and kept in the scratch file. The masks are those of
 * sk_artifact_detect. Memory: about 35 bytes per output pixel per thread,
 * whatever the number of inputs, and band_rows rows of every input. */
struct sk_artifact_masks;
struct sk_artifact_opts;
int sk_artifact_detect_spilled(const sk_aligned_input *in, int n, long width, long height,
                               sk_cx_spill *sp, const double *sigma, long band_rows,
                               const struct sk_artifact_opts *opts,
                               struct sk_artifact_masks **out);

#endif
