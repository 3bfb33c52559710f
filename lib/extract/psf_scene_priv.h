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
    long *cx, *cy;        /* stamp centre pixels */
    double *x, *y;        /* positions (0-based px) */
    double *flux;         /* fluxes (ADU) */
    uint8_t *live;        /* 1: the source has a stamp */
} psf_scene;

/* The stamps of n sources at (x[k], y[k]) with fluxes flux[k] (NULL or
 * not finite: 0), made on `threads` threads. */
int psf_scene_make(const sk_psf *psf, long n, const double *x, const double *y, const double *flux,
                   int threads, psf_scene *s);
void psf_scene_free(psf_scene *s);

/* img (w x h) += sign * the models of the sources k with which[k] != 0
 * (which NULL: all). */
void psf_scene_paint(const psf_scene *s, const uint8_t *which, double sign, float *img, long w, long h);

/* Fit every flux at once: least squares over the usable pixels (variance
 * var > 0) within rfit of any source, each model over its whole stamp,
 * weights 1 / var, by Gauss-Seidel sweeps from the current fluxes until at
 * most one in a thousand moves by 5 % of its noise error in a sweep (at
 * most max_sweeps). On entry
 * resid is the image less its background; on return, less every model
 * too. *sweeps: the number made. */
int psf_scene_fit(psf_scene *s, const sk_image *img, const float *var, double rfit, int max_sweeps,
                  float *resid, int *sweeps);

#endif
