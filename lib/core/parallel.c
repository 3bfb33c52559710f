/* parallel.c: the library's one parallel-for and its tasks beside the caller (see parallel.h). */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "parallel.h"
#include "skystack/error.h"

/* The engine: fn(worker, begin, end, arg) on the chunks, worker 0 being
 * the caller's thread and 1 .. par_workers() - 1 the others. */
typedef int (*par_fn)(int worker, long begin, long end, void *arg);

typedef struct par_state {
    par_fn fn;
    void *arg;
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
    return s->fn(worker, begin, end, s->arg);
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

/* Workers for n items in chunks on `threads` threads: no more than chunks. */
static int par_workers(long n, long chunk, int threads)
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

#ifdef SK_PARALLEL_TRACE
/* A build for bench/thread-schedule only (-DSK_PARALLEL_TRACE): at one
 * thread each chunk's thread CPU time is measured and the dynamic
 * schedule of the same chunks on SK_TRACE_WORKERS threads replayed (a
 * free thread takes the next chunk), so that the span of every region,
 * and from it the speedup that the schedule allows, is known without
 * timing a run on a busy machine. Printed to stderr at exit. */
#include <time.h>
#define SK_TRACE_WORKERS 2

static struct {
    double region_s, span_s, task_s;
    long regions;
    int depth; /* regions within a region's chunks run as they are */
} trace;

static double thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void trace_report(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    double total = (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
    double serial = total - trace.region_s - trace.task_s, t2 = serial + trace.span_s;
    fprintf(stderr,
            "thread-schedule: %.3f s CPU: %.3f s in %ld parallel regions (span at %d threads %.3f s), "
            "%.3f s in tasks beside the caller, %.3f s serial; at %d threads %.3f s with the tasks hidden "
            "(speedup %.3f), %.3f s with them serial (%.3f)\n",
            total, trace.region_s, trace.regions, SK_TRACE_WORKERS, trace.span_s, trace.task_s, serial,
            SK_TRACE_WORKERS, t2, total / t2, t2 + trace.task_s, total / (t2 + trace.task_s));
}

/* The chunks on the caller's thread, their CPU times replayed on
 * SK_TRACE_WORKERS threads. */
static int trace_run(par_state *s, int (*run)(par_state *, int, long))
{
    static int registered;
    if (!registered)
        registered = atexit(trace_report) == 0;
    double load[SK_TRACE_WORKERS] = {0}, sum = 0.0;
    int w = s->nchunks < SK_TRACE_WORKERS ? (int)s->nchunks : SK_TRACE_WORKERS;
    for (long c = 0; c < s->nchunks; c++) {
        if (trace.depth) {
            int st = run(s, 0, c);
            if (st)
                return st;
            continue;
        }
        double t0 = thread_cpu_s();
        trace.depth++;
        int st = run(s, 0, c);
        trace.depth--;
        double d = thread_cpu_s() - t0;
        int j = 0;
        for (int k = 1; k < w; k++)
            j = load[k] < load[j] ? k : j;
        load[j] += d;
        sum += d;
        if (st)
            return st;
    }
    if (trace.depth)
        return SK_OK;
    double span = 0.0;
    for (int k = 0; k < w; k++)
        span = load[k] > span ? load[k] : span;
    trace.region_s += sum;
    trace.span_s += span;
    trace.regions++;
    return SK_OK;
}
#endif

static int par_run(long n, long chunk, int threads, par_fn fn, void *arg)
{
    if (chunk < 1)
        chunk = 1;
    int nworkers = par_workers(n, chunk, threads);
    if (nworkers == 0)
        return SK_OK;
    par_state s = {.fn = fn, .arg = arg, .n = n, .chunk = chunk, .nchunks = (n - 1) / chunk + 1};
#ifdef SK_PARALLEL_TRACE
    if (nworkers == 1)
        return trace_run(&s, run_chunk);
#endif
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

/* ---- the three forms ---- */

typedef struct par_call {
    sk_range_fn range;
    sk_item_fn item;
    sk_scratch_fn with_scratch;
    const sk_scratch *scratch;
    void *user;
    unsigned char *mem;      /* the workers' scratch spaces */
    size_t stride;
    unsigned char *started;  /* per worker: its init was called */
    int *init_status;        /* and what it returned */
} par_call;

static int call_range(int worker, long begin, long end, void *arg)
{
    par_call *a = arg;
    return a->range(begin, end, a->user);
}

static int call_items(int worker, long begin, long end, void *arg)
{
    par_call *a = arg;
    for (long k = begin; k < end; k++) {
        int st = a->item(k, a->user);
        if (st)
            return st;
    }
    return SK_OK;
}

static int call_with_scratch(int worker, long begin, long end, void *arg)
{
    par_call *a = arg;
    void *scratch = a->mem ? a->mem + (size_t)worker * a->stride : NULL;
    if (!a->started[worker]) {
        a->started[worker] = 1;
        if (a->scratch->init)
            a->init_status[worker] = a->scratch->init(scratch, a->user);
    }
    if (a->init_status[worker])
        return a->init_status[worker];
    return a->with_scratch(scratch, begin, end, a->user);
}

int sk_parallel_for(long n, long chunk, int threads, sk_range_fn fn, void *user)
{
    par_call a = {.range = fn, .user = user};
    return par_run(n, chunk, threads, call_range, &a);
}

int sk_parallel_for_each(long n, int threads, sk_item_fn fn, void *user)
{
    par_call a = {.item = fn, .user = user};
    return par_run(n, 1, threads, call_items, &a);
}

int sk_parallel_for_scratch(long n, long chunk, int threads, const sk_scratch *scratch,
                            sk_scratch_fn fn, void *user)
{
    int nworkers = par_workers(n, chunk, threads);
    if (nworkers == 0)
        return SK_OK;
    const size_t align = _Alignof(max_align_t);
    par_call a = {.with_scratch = fn, .scratch = scratch, .user = user};
    a.stride = (scratch->size + align - 1) / align * align;
    a.mem = a.stride ? calloc((size_t)nworkers, a.stride) : NULL;
    a.started = calloc((size_t)nworkers, 1);
    a.init_status = calloc((size_t)nworkers, sizeof *a.init_status);
    int st;
    if ((a.stride && !a.mem) || !a.started || !a.init_status)
        st = sk_error(SK_EIO, "out of memory for the scratch space of %d threads", nworkers);
    else
        st = par_run(n, chunk, threads, call_with_scratch, &a);
    for (int w = 0; a.started && w < nworkers; w++)
        if (a.started[w] && scratch->release)
            scratch->release(a.mem ? a.mem + (size_t)w * a.stride : NULL, user);
    free(a.mem);
    free(a.started);
    free(a.init_status);
    return st;
}

/* ---- a task beside the caller ---- */

struct sk_task {
    sk_task_fn fn;
    void *user;
    pthread_t tid;
    int threaded;    /* tid runs fn */
    int status;      /* fn's status, once done */
    char msg[2048];  /* and its message */
};

static void *task_run(void *arg)
{
    sk_task *t = arg;
    t->status = t->fn(t->user);
    if (t->status)
        snprintf(t->msg, sizeof t->msg, "%s", sk_errmsg());
    return NULL;
}

int sk_task_start(int threads, sk_task_fn fn, void *user, sk_task **out)
{
    sk_task *t = calloc(1, sizeof *t);
    *out = t;
    if (!t)
        return fn(user);
    t->fn = fn;
    t->user = user;
    if (threads > 1 && pthread_create(&t->tid, NULL, task_run, t) == 0) {
        t->threaded = 1;
    } else {
#ifdef SK_PARALLEL_TRACE
        double t0 = thread_cpu_s();
        trace.depth++;
        task_run(t);
        trace.depth--;
        if (!trace.depth)
            trace.task_s += thread_cpu_s() - t0;
#else
        task_run(t);
#endif
    }
    return SK_OK;
}

int sk_task_join(sk_task *t)
{
    if (!t)
        return SK_OK;
    if (t->threaded)
        pthread_join(t->tid, NULL);
    int st = t->status;
    if (st)
        sk_error(st, "%s", t->msg);
    free(t);
    return st;
}
