/* bench_util.h: what the benchmark programs of bench/ share: a fatal
 * library error, allocation that cannot fail silently, and a monotonic
 * clock. Define BENCH_NAME (the program's name, for messages) first.
 * Header-only. */
#ifndef SK_BENCH_UTIL_H
#define SK_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "skystack/error.h"

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_util.h"
#endif

/* Print what failed with the library's message and exit with its status. */
static void die(const char *what) __attribute__((noreturn, unused));
static void die(const char *what)
{
    fprintf(stderr, BENCH_NAME ": %s: %s\n", what, sk_errmsg());
    int st = sk_errstatus();
    exit(st ? st : 1);
}

/* calloc, exiting with status 3 when out of memory. */
static void *xcalloc(size_t n, size_t size) __attribute__((unused));
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, BENCH_NAME ": out of memory\n");
        exit(3);
    }
    return p;
}

/* Seconds on a monotonic clock. */
static double now_s(void) __attribute__((unused));
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
