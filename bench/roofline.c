/* roofline.c: measures this machine's physical limits for the benchmarks:
 * memory bandwidth (streaming read, copy and triad over arrays far larger
 * than the caches) and single-precision arithmetic throughput (independent
 * multiply-adds on data in L1), on 1 and on N threads, compiled with the
 * project's own flags so that the figure is what the library's loops can
 * reach. Prints "key value" lines:
 *   read_gbs_T copy_gbs_T triad_gbs_T gflops_T   for T = 1 and N threads
 * Usage: roofline [THREADS] [MB_PER_ARRAY]   (defaults: all cores, 256)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum kernel { K_READ, K_COPY, K_TRIAD, K_FLOPS };

typedef struct {
    enum kernel k;
    float *a, *b, *c;
    size_t n;
    double sink;
    pthread_barrier_t *bar;
    double t0, t1;
} job;

#define FLOP_ITERS 20000000L

static void run_kernel(job *j)
{
    float *restrict a = j->a, *restrict b = j->b, *restrict c = j->c;
    size_t n = j->n;
    double s = 0;
    switch (j->k) {
    case K_READ: {
        float acc[8] = {0};
        for (size_t i = 0; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += b[i + l];
        for (int l = 0; l < 8; l++)
            s += acc[l];
        break;
    }
    case K_COPY:
        memcpy(a, b, n * sizeof *a);
        s = a[n / 2];
        break;
    case K_TRIAD:
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + 0.5f * c[i];
        s = a[n / 3];
        break;
    case K_FLOPS: {
        /* 32 independent multiply-add chains on floats held in registers */
        float x[32], m = 0.999999f, d = 1e-7f;
        for (int l = 0; l < 32; l++)
            x[l] = b[l];
        for (long it = 0; it < FLOP_ITERS; it++)
            for (int l = 0; l < 32; l++)
                x[l] = x[l] * m + d;
        for (int l = 0; l < 32; l++)
            s += x[l];
        break;
    }
    }
    j->sink = s;
}

static void *worker(void *arg)
{
    job *j = arg;
    pthread_barrier_wait(j->bar);
    j->t0 = now_s();
    run_kernel(j);
    j->t1 = now_s();
    pthread_barrier_wait(j->bar);
    return NULL;
}

/* Best of five runs of kernel k over nthreads slices; returns the rate in
 * GB/s (memory kernels) or GFLOP/s (K_FLOPS). */
static double measure(enum kernel k, int nthreads, float *a, float *b, float *c, size_t n)
{
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)nthreads + 1);
        job *jobs = calloc((size_t)nthreads, sizeof *jobs);
        pthread_t *th = calloc((size_t)nthreads, sizeof *th);
        size_t per = n / (size_t)nthreads;
        for (int t = 0; t < nthreads; t++) {
            size_t off = (size_t)t * per;
            jobs[t] = (job){k, a + off, b + off, c + off, per, 0, &bar, 0, 0};
            pthread_create(&th[t], NULL, worker, &jobs[t]);
        }
        pthread_barrier_wait(&bar);
        double t0 = now_s();
        pthread_barrier_wait(&bar);
        double dt = now_s() - t0;
        for (int t = 0; t < nthreads; t++)
            pthread_join(th[t], NULL);
        double volume;
        if (k == K_FLOPS)
            volume = 2.0 * 32 * FLOP_ITERS * nthreads / 1e9;
        else
            volume = (k == K_READ ? 1.0 : k == K_COPY ? 2.0 : 3.0) * (double)(per * (size_t)nthreads) * sizeof(float) / 1e9;
        if (volume / dt > best)
            best = volume / dt;
        pthread_barrier_destroy(&bar);
        free(jobs);
        free(th);
    }
    return best;
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = argc > 1 ? atoi(argv[1]) : (int)ncpu;
    long mb = argc > 2 ? atol(argv[2]) : 256;
    if (nthreads < 1 || mb < 16) {
        fprintf(stderr, "usage: roofline [THREADS>=1] [MB_PER_ARRAY>=16]\n");
        return 1;
    }
    size_t n = (size_t)mb * 1024 * 1024 / sizeof(float);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "roofline: cannot allocate 3 x %ld MB\n", mb);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = 0;
        b[i] = (float)(i % 1000) * 1e-3f;
        c[i] = 1;
    }
    int counts[2] = {1, nthreads};
    for (int q = 0; q < (nthreads > 1 ? 2 : 1); q++) {
        int t = counts[q];
        printf("read_gbs_%d %.2f\n", t, measure(K_READ, t, a, b, c, n));
        printf("copy_gbs_%d %.2f\n", t, measure(K_COPY, t, a, b, c, n));
        printf("triad_gbs_%d %.2f\n", t, measure(K_TRIAD, t, a, b, c, n));
        printf("gflops_%d %.2f\n", t, measure(K_FLOPS, t, a, b, c, n));
        fflush(stdout);
    }
    free(a);
    free(b);
    free(c);
    return 0;
}
