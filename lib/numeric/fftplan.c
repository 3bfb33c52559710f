/* fftplan.c: FFTW single-precision plans made once per array shape under one lock and reused by every thread. */
#include <pthread.h>
#include <stdlib.h>
#include "fft_priv.h"
#include "skystack/error.h"

typedef struct plan_entry {
    int ny, nx, inverse;
    fftwf_plan plan;
    struct plan_entry *next;
} plan_entry;

static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;
static plan_entry *plans;

static fftwf_plan plan_get(int ny, int nx, int inverse)
{
    if (ny < 1 || nx < 1) {
        sk_error(SK_EINPUT, "fft: bad array shape %d x %d", ny, nx);
        return NULL;
    }
    pthread_mutex_lock(&plan_lock);
    for (plan_entry *e = plans; e; e = e->next)
        if (e->ny == ny && e->nx == nx && e->inverse == inverse) {
            fftwf_plan p = e->plan;
            pthread_mutex_unlock(&plan_lock);
            return p;
        }
    size_t nreal = (size_t)ny * (size_t)nx;
    size_t ncplx = (size_t)ny * (size_t)(nx / 2 + 1);
    float *r = fftwf_alloc_real(nreal);
    fftwf_complex *c = fftwf_alloc_complex(ncplx);
    plan_entry *e = malloc(sizeof *e);
    fftwf_plan p = NULL;
    if (r && c && e) {
        /* FFTW_ESTIMATE does not touch the arrays and always chooses the same
         * algorithm, so results do not depend on timing or thread count. */
        if (inverse)
            p = fftwf_plan_dft_c2r_2d(ny, nx, c, r, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
        else
            p = fftwf_plan_dft_r2c_2d(ny, nx, r, c, FFTW_ESTIMATE);
    }
    fftwf_free(r);
    fftwf_free(c);
    if (!p) {
        free(e);
        pthread_mutex_unlock(&plan_lock);
        sk_error(SK_EIO, "fft: cannot make a %d x %d plan (out of memory)", ny, nx);
        return NULL;
    }
    e->ny = ny;
    e->nx = nx;
    e->inverse = inverse;
    e->plan = p;
    e->next = plans;
    plans = e;
    pthread_mutex_unlock(&plan_lock);
    return p;
}

fftwf_plan sk_fft_plan_r2c(int ny, int nx) { return plan_get(ny, nx, 0); }
fftwf_plan sk_fft_plan_c2r(int ny, int nx) { return plan_get(ny, nx, 1); }

long sk_fft_good_size(long n)
{
    if (n < 2)
        n = 2;
    for (long m = n + (n & 1);; m += 2) {
        long k = m;
        while (k % 2 == 0) k /= 2;
        while (k % 3 == 0) k /= 3;
        while (k % 5 == 0) k /= 5;
        while (k % 7 == 0) k /= 7;
        if (k == 1)
            return m;
    }
}

void sk_fft_cleanup(void)
{
    pthread_mutex_lock(&plan_lock);
    while (plans) {
        plan_entry *e = plans;
        plans = e->next;
        fftwf_destroy_plan(e->plan);
        free(e);
    }
    pthread_mutex_unlock(&plan_lock);
}
