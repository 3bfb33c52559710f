/* tap.h: a small Test Anything Protocol emitter for the C unit tests, run
 * by prove (make check). Header-only; each test file is one program. Each
 * main declares first how many tests it runs, tap_plan(N), printed at once
 * as the TAP plan: a program that stops early (a crash, an early return)
 * falls short of it and fails, and tap_done fails when the count differs
 * or no plan was declared. */
#ifndef SK_TAP_H
#define SK_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed, tap_planned = -1;

static inline int tap_ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), unused));
static inline int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond)
        tap_failed++;
    return cond;
}

#define ok(cond, ...) tap_ok((cond) ? 1 : 0, __VA_ARGS__)

/* |got - want| <= tol, with the numbers in the diagnostic on failure. */
#define is_near(got, want, tol, ...)                                              \
    do {                                                                          \
        double g_ = (got), w_ = (want), t_ = (tol);                               \
        if (!tap_ok(fabs(g_ - w_) <= t_, __VA_ARGS__))                            \
            printf("#   got %.12g, want %.12g, tolerance %.3g (%s:%d)\n", g_, w_, t_, \
                   __FILE__, __LINE__);                                           \
    } while (0)

#define is_int(got, want, ...)                                                    \
    do {                                                                          \
        long long g_ = (long long)(got), w_ = (long long)(want);                  \
        if (!tap_ok(g_ == w_, __VA_ARGS__))                                       \
            printf("#   got %lld, want %lld (%s:%d)\n", g_, w_, __FILE__, __LINE__); \
    } while (0)

#define is_str(got, want, ...)                                                    \
    do {                                                                          \
        const char *g_ = (got), *w_ = (want);                                     \
        if (!tap_ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__))                \
            printf("#   got \"%s\", want \"%s\" (%s:%d)\n", g_ ? g_ : "(null)",    \
                   w_ ? w_ : "(null)", __FILE__, __LINE__);                       \
    } while (0)

static inline void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static inline void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* The number of tests this program runs, before the first. */
static inline void tap_plan(int n) __attribute__((unused));
static inline void tap_plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

/* The exit status: 1 when a test failed, the count differs from the plan,
 * or no plan was declared. */
static inline int tap_done(void)
{
    if (tap_planned < 0) {
        printf("1..%d\n", tap_n);
        printf("# no plan declared: declare it first with tap_plan(%d)\n", tap_n);
        return 1;
    }
    if (tap_n != tap_planned) {
        printf("# planned %d tests, ran %d\n", tap_planned, tap_n);
        return 1;
    }
    return tap_failed ? 1 : 0;
}

/* Path of a file in the source tree ($SK_SRCDIR, default "."). */
static inline const char *tap_src(const char *rel) __attribute__((unused));
static inline const char *tap_src(const char *rel)
{
    static char buf[8][4096];
    static int k;
    const char *root = getenv("SK_SRCDIR");
    char *b = buf[k++ & 7];
    snprintf(b, 4096, "%s/%s", root && *root ? root : ".", rel);
    return b;
}

/* A fresh scratch directory under $TMPDIR for this test. */
static inline const char *tap_tmpdir(void) __attribute__((unused));
static inline const char *tap_tmpdir(void)
{
    static char dir[4096];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/sktest-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

#endif
