/* parallel.c: the library's one parallel-for (see parallel.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "parallel.h"
#include "skystack/error.h"

typedef struct par_state {
    sk_worker_fn fn;
    void *user;
    long n, chunk, nchunks;
    pthread_mutex_t lock;
    long next;       /* the next chunk to hand out */
    long failed;     /* the first failing chunk so far; nchunks while none */
    int status;      /* its status */
    char msg[2048];  /* and its message */
} par_state;

typedef struct par_worker {
    par_state *s;
    int id;
} par_worker;

static int run_chunk(par_state *s, int worker, long c)
{
    long begin = c * s->chunk;
    long end = s->n - begin > s->chunk ? begin + s->chunk : s->n;
    return s->fn(worker, begin, end, s->user);
}

static void *par_worker_run(void *arg)
{
    par_worker *w = arg;
    par_state *s = w->s;
    for (;;) {
        /* Chunks go out in increasing order, so every chunk before a
         * failing one has been handed out and runs to its end: the first
         * failure in item order is always seen. */
        pthread_mutex_lock(&s->lock);
        long c = s->failed < s->nchunks ? s->nchunks : s->next++;
        pthread_mutex_unlock(&s->lock);
        if (c >= s->nchunks)
            return NULL;
        int st = run_chunk(s, w->id, c);
        if (st) {
            pthread_mutex_lock(&s->lock);
            if (c < s->failed) {
                s->failed = c;
                s->status = st;
                snprintf(s->msg, sizeof s->msg, "%s", sk_errmsg());
            }
            pthread_mutex_unlock(&s->lock);
        }
    }
}

int sk_parallel_workers(long n, long chunk, int threads)
{
    if (n <= 0)
        return 0;
    if (chunk < 1)
        chunk = 1;
    long nchunks = (n - 1) / chunk + 1;
    if (threads < 1)
        threads = 1;
    return nchunks < threads ? (int)nchunks : threads;
}

int sk_parallel_for_workers(long n, long chunk, int threads, sk_worker_fn fn, void *user)
{
    int nworkers = sk_parallel_workers(n, chunk, threads);
    if (nworkers == 0)
        return SK_OK;
    par_state s = {.fn = fn, .user = user, .n = n, .chunk = chunk < 1 ? 1 : chunk};
    s.nchunks = (n - 1) / s.chunk + 1;
    if (nworkers == 1) {
        for (long c = 0; c < s.nchunks; c++) {
            int st = run_chunk(&s, 0, c);
            if (st)
                return st;
        }
        return SK_OK;
    }
    s.failed = s.nchunks;
    pthread_mutex_init(&s.lock, NULL);
    pthread_t *tid = malloc(sizeof *tid * (size_t)nworkers);
    par_worker *w = malloc(sizeof *w * (size_t)nworkers);
    int started = 0;
    if (tid && w) {
        for (int t = 1; t < nworkers; t++) {
            w[t] = (par_worker){&s, t};
            if (pthread_create(&tid[t], NULL, par_worker_run, &w[t]) != 0)
                break;
            started++;
        }
    }
    par_worker self = {&s, 0};
    par_worker_run(&self); /* the caller is worker 0 (and all of them without threads) */
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    free(tid);
    free(w);
    pthread_mutex_destroy(&s.lock);
    if (s.status)
        return sk_error(s.status, "%s", s.msg);
    return SK_OK;
}

/* sk_parallel_for and sk_parallel_for_each: the same with the worker left out. */
typedef struct par_adapter {
    sk_range_fn range;
    sk_item_fn item;
    void *user;
} par_adapter;

static int adapt_range(int worker, long begin, long end, void *arg)
{
    par_adapter *a = arg;
    return a->range(begin, end, a->user);
}

static int adapt_item(int worker, long begin, long end, void *arg)
{
    par_adapter *a = arg;
    for (long k = begin; k < end; k++) {
        int st = a->item(k, a->user);
        if (st)
            return st;
    }
    return SK_OK;
}

int sk_parallel_for(long n, long chunk, int threads, sk_range_fn fn, void *user)
{
    par_adapter a = {.range = fn, .user = user};
    return sk_parallel_for_workers(n, chunk, threads, adapt_range, &a);
}

int sk_parallel_for_each(long n, int threads, sk_item_fn fn, void *user)
{
    par_adapter a = {.item = fn, .user = user};
    return sk_parallel_for_workers(n, 1, threads, adapt_item, &a);
}
