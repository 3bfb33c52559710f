/* psf_priv.h: helpers shared by the PSF files: a deterministic parallel-for,
 * Lanczos-3 interpolation taps, and which pixels a PSF fit may use. */
#ifndef SK_PSF_PRIV_H
#define SK_PSF_PRIV_H

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "skystack/image.h"

/* Pixels a PSF fit leaves out: no value, or a value that is not the sky's
 * (saturated pixels included, unlike aperture photometry). */
#define SK_PSF_BAD_FLAGS                                                          \
    (SK_FLAG_BAD | SK_FLAG_SATURATED | SK_FLAG_COSMIC | SK_FLAG_EDGE |           \
     SK_FLAG_NONFINITE | SK_FLAG_SATELLITE | SK_FLAG_ZEROWEIGHT)

static inline int psf_pixel_usable(const sk_image *img, long i) __attribute__((unused));
static inline int psf_pixel_usable(const sk_image *img, long i)
{
    return img->weight[i] > 0 && !(img->flags[i] & SK_PSF_BAD_FLAGS) && isfinite(img->sci[i]);
}

/* Lanczos-3 taps for interpolating at grid coordinate u: the six grid
 * points first, first+1, .. first+5 with weights w[0..5], normalised to
 * unit sum (so a constant is reproduced exactly). */
static inline void psf_lanczos3(double u, long *first, double w[6]) __attribute__((unused));
static inline void psf_lanczos3(double u, long *first, double w[6])
{
    double fl = floor(u);
    *first = (long)fl - 2;
    double sum = 0;
    for (int t = 0; t < 6; t++) {
        double d = u - (fl - 2 + t);
        double v;
        if (fabs(d) < 1e-12)
            v = 1.0;
        else if (fabs(d) >= 3.0)
            v = 0.0;
        else {
            double pd = M_PI * d;
            v = 3.0 * sin(pd) * sin(pd / 3.0) / (pd * pd);
        }
        w[t] = v;
        sum += v;
    }
    for (int t = 0; t < 6; t++)
        w[t] /= sum;
}

/* Run fn(k, user) for k in [0, n) on up to `threads` threads; each k must
 * write only its own outputs, so the result does not depend on the thread
 * count. Returns the first non-zero status in k order. */
typedef int (*psf_task_fn)(long k, void *user);

struct psf_par {
    psf_task_fn fn;
    void *user;
    long n, next;
    int *status;
    pthread_mutex_t lock;
};

static void *psf_par_worker(void *arg) __attribute__((unused));
static void *psf_par_worker(void *arg)
{
    struct psf_par *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        long k = s->next++;
        pthread_mutex_unlock(&s->lock);
        if (k >= s->n)
            return NULL;
        s->status[k] = s->fn(k, s->user);
    }
}

static inline int psf_parallel_for(long n, int threads, psf_task_fn fn, void *user)
    __attribute__((unused));
static inline int psf_parallel_for(long n, int threads, psf_task_fn fn, void *user)
{
    if (n <= 0)
        return 0;
    int *status = calloc((size_t)n, sizeof *status);
    if (!status) {
        int st = 0;
        for (long k = 0; k < n && !st; k++)
            st = fn(k, user);
        return st;
    }
    struct psf_par s = {fn, user, n, 0, status, PTHREAD_MUTEX_INITIALIZER};
    if (threads > n)
        threads = (int)n;
    int started = 0;
    pthread_t *tid = threads > 1 ? malloc(sizeof *tid * (size_t)threads) : NULL;
    for (int t = 0; tid && t < threads; t++)
        if (pthread_create(&tid[t], NULL, psf_par_worker, &s) == 0)
            started++;
    if (!started)
        psf_par_worker(&s);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    free(tid);
    pthread_mutex_destroy(&s.lock);
    int st = 0;
    for (long k = 0; k < n && !st; k++)
        st = status[k];
    free(status);
    return st;
}

#endif
