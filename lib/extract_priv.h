/* extract_priv.h: the small parallel-for shared by the extraction files:
 * items 0..n-1 handed out in fixed chunks to pthreads, so that each item is
 * computed the same way whatever the thread count. */
#ifndef SK_EXTRACT_PRIV_H
#define SK_EXTRACT_PRIV_H

#include <pthread.h>
#include <stdlib.h>

#include "skystack/image.h"

/* Input pixels that hold no usable value for detection and measurement
 * (saturated, interpolated and rejected pixels keep their values). */
#define SK_UNUSABLE_FLAGS                                                        \
    (SK_FLAG_BAD | SK_FLAG_COSMIC | SK_FLAG_EDGE | SK_FLAG_NONFINITE |           \
     SK_FLAG_SATELLITE | SK_FLAG_ZEROWEIGHT)

static inline int sk_pixel_usable(const sk_image *img, long i) __attribute__((unused));
static inline int sk_pixel_usable(const sk_image *img, long i)
{
    return img->weight[i] > 0 && !(img->flags[i] & SK_UNUSABLE_FLAGS);
}

/* Work on items [begin, end); returns 0 or a status (the first non-zero
 * status of any chunk is returned by sk_parallel_for). */
typedef int (*sk_range_fn)(long begin, long end, void *user);

struct sk_par_state {
    sk_range_fn fn;
    void *user;
    long n, chunk, next;
    int status;
    pthread_mutex_t lock;
};

static void *sk_par_worker(void *arg)
{
    struct sk_par_state *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        long b = s->next;
        s->next += s->chunk;
        int stop = s->status != 0;
        pthread_mutex_unlock(&s->lock);
        if (stop || b >= s->n)
            break;
        long e = b + s->chunk < s->n ? b + s->chunk : s->n;
        int st = s->fn(b, e, s->user);
        if (st) {
            pthread_mutex_lock(&s->lock);
            if (!s->status)
                s->status = st;
            pthread_mutex_unlock(&s->lock);
        }
    }
    return NULL;
}

static inline int sk_parallel_for(long n, long chunk, int threads, sk_range_fn fn, void *user)
    __attribute__((unused));
static inline int sk_parallel_for(long n, long chunk, int threads, sk_range_fn fn, void *user)
{
    if (n <= 0)
        return 0;
    if (chunk < 1)
        chunk = 1;
    long nchunks = (n + chunk - 1) / chunk;
    if (threads < 1)
        threads = 1;
    if (threads > nchunks)
        threads = (int)nchunks;
    if (threads == 1)
        return fn(0, n, user);
    struct sk_par_state s = { fn, user, n, chunk, 0, 0, PTHREAD_MUTEX_INITIALIZER };
    pthread_t *tid = malloc(sizeof *tid * (size_t)threads);
    int started = 0;
    if (tid)
        for (; started < threads - 1; started++)
            if (pthread_create(&tid[started], NULL, sk_par_worker, &s))
                break;
    sk_par_worker(&s);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    free(tid);
    return s.status;
}

#endif
