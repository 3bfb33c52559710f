/* psf_scene_priv.h: many point sources fitted at once (psf_scene.c), for
 * the second detection pass of crowded fields (residual.c); internal. */
#ifndef SK_PSF_SCENE_PRIV_H
#define SK_PSF_SCENE_PRIV_H

#include <stdint.h>
#include "skystack/image.h"
#include "skystack/psf.h"

/* n point sources: the PSF at each position on a stamp of m x m pixels
 * centred on the nearest pixel (cx, cy), and their fluxes. */
typedef struct psf_scene {
    long n;
    int m;                /* stamp side (sk_psf_stamp_size) */
    float *stamp;         /* n * m * m, each of unit sum */
    long cap;             /* stamps the memory of `stamp` holds (>= n;
                             room left for sources added later, whose
                             pages are not touched until then) */
    long *cx, *cy;        /* stamp centre pixels */
    double *x, *y;        /* positions (0-based px) */
    double *flux;         /* fluxes (ADU) */
    uint8_t *live;        /* 1: the source has a stamp */
} psf_scene;

/* The stamps of n sources at (x[k], y[k]) with fluxes flux[k] (NULL or
 * not finite: 0), made on `threads` threads; in the memory of `reuse`
 * (NULL: none; taken over, its stamps overwritten) instead of new memory
 * (of which every page would be zeroed by the system first). On failure
 * s is freed. */
int psf_scene_make(const sk_psf *psf, long n, const double *x, const double *y, const double *flux,
                   int threads, float *reuse, psf_scene *s);

/* n sources more in s: their stamps made, after s's (s's memory grown).
 * On failure s is freed. */
int psf_scene_extend(psf_scene *s, const sk_psf *psf, long n, const double *x, const double *y,
                     const double *flux, int threads);

/* As psf_scene_make, in the memory of prev's stamps (taken over): source
 * k's stamp is prev's stamp from[k] when from[k] >= 0, prev has a stamp
 * there (live) and at the same position; from[k] <= k (from NULL: none
 * taken). */
int psf_scene_remake(const sk_psf *psf, long n, const double *x, const double *y, const double *flux,
                     psf_scene *prev, const long *from, int threads, psf_scene *s);

/* to: the sources of `from` with its stamps, taken over (from keeps its
 * positions, fluxes and live flags, no stamps). On failure to is freed. */
int psf_scene_take(psf_scene *from, psf_scene *to);
void psf_scene_free(psf_scene *s);

/* img (w x h) += sign * the models of the live sources k with
 * which[k] != 0 (which NULL: all), on `threads` threads (in bands of
 * rows, even then odd: the sums do not depend on the thread count). */
int psf_scene_paint(const psf_scene *s, const uint8_t *which, double sign, float *img, long w, long h,
                    int threads);

/* Fit every flux at once by Gauss-Seidel sweeps from the current fluxes:
 * each source's flux by least squares over the usable pixels (variance
 * var > 0) of its stamp within rfit of its position, weights 1 / var,
 * every other model (over its whole stamp) subtracted; the sources in
 * bands of rows, the even bands on the threads at once, then the odd
 * (the result does not depend on the thread count); until at most one
 * in a thousand moves by 5 % of its noise error in a sweep (at most
 * max_sweeps; a change below 1 % of it waits, added to the next, before
 * the model's stamp is taken out of resid). On entry resid is the image
 * less its background; on return, less every model too. *sweeps: the
 * number made. */
int psf_scene_fit(psf_scene *s, const sk_image *img, const float *var, double rfit, int max_sweeps,
                  int threads, float *resid, int *sweeps);

#endif
