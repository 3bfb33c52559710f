/* fft_priv.h: FFTW single-precision plans shared by the library (fftplan.c).
 * fftw's planner is not thread-safe and its execution is: plans are made
 * once per shape under one lock and executed by any thread with the
 * new-array interface (fftwf_execute_dft_r2c / _c2r) on arrays from
 * fftwf_malloc, out of place. */
#ifndef SK_FFT_PRIV_H
#define SK_FFT_PRIV_H

#include <fftw3.h>

/* A cached out-of-place real-to-complex plan for an ny x nx real array
 * (output ny x (nx/2+1) complex), or NULL with SK_EIO set. */
fftwf_plan sk_fft_plan_r2c(int ny, int nx);
/* The inverse (complex-to-real, unnormalised: the result is ny*nx times the
 * input of the forward transform). It overwrites its input. */
fftwf_plan sk_fft_plan_c2r(int ny, int nx);
/* Smallest n' >= n whose prime factors are 2, 3, 5 and 7, and even. */
long sk_fft_good_size(long n);
/* Destroy the cached plans (at the end of a program; plans made by other
 * code are left alone, so fftwf_cleanup is not called). */
void sk_fft_cleanup(void);

#endif
