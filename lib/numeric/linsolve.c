/* linsolve.c: weighted normal equations and their Cholesky solve (see linsolve.h). */
#include <math.h>

#include "linsolve.h"

void sk_normal_add(double *ata, double *atb, int n, int nrhs, const double *f, double w,
                   const double *y)
{
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < nrhs; c++)
            atb[c * n + i] += w * f[i] * y[c];
        for (int j = 0; j <= i; j++)
            ata[i * n + j] += w * f[i] * f[j];
    }
}

/* a = L L^T in place (lower triangle); -1 at a pivot not above min_pivot. */
static int cholesky_factor(double *a, int n, double min_pivot)
{
    for (int j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int k = 0; k < j; k++)
            d -= a[j * n + k] * a[j * n + k];
        if (!(d > min_pivot))
            return -1;
        d = sqrt(d);
        a[j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double v = a[i * n + j];
            for (int k = 0; k < j; k++)
                v -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = v / d;
        }
    }
    return 0;
}

/* b = (L L^T)^-1 b by forward then backward substitution. */
static void cholesky_substitute(const double *l, double *b, int n)
{
    for (int i = 0; i < n; i++) {
        double v = b[i];
        for (int k = 0; k < i; k++)
            v -= l[i * n + k] * b[k];
        b[i] = v / l[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double v = b[i];
        for (int k = i + 1; k < n; k++)
            v -= l[k * n + i] * b[k];
        b[i] = v / l[i * n + i];
    }
}

int sk_cholesky_solve(double *a, double *b, int n, int nrhs, double min_pivot)
{
    if (cholesky_factor(a, n, min_pivot) != 0)
        return -1;
    for (int c = 0; c < nrhs; c++)
        cholesky_substitute(a, b + c * n, n);
    return 0;
}
