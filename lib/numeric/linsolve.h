/* linsolve.h: linear least squares through the normal equations and their Cholesky solve, for the library (not installed). */
#ifndef SK_LINSOLVE_H
#define SK_LINSOLVE_H

/* Add one observation of weight w to the normal equations of an n-term
 * linear model: ata (n x n, row-major) += w f f^T on and below the
 * diagonal only, and for each right-hand side c < nrhs,
 * atb[c * n + i] += w f[i] y[c]. The upper triangle of ata is not used
 * by sk_cholesky_solve and is left as it is. */
void sk_normal_add(double *ata, double *atb, int n, int nrhs, const double *f, double w,
                   const double *y);

/* Solve a x = b for nrhs right-hand sides stored one after the other in
 * b (b[c * n + i]), with a symmetric positive definite n x n (row-major),
 * of which only the lower triangle is read. a is overwritten by its
 * Cholesky factor L (a = L L^T, lower triangle), b by the solutions.
 * Returns 0, or -1 (a and b partly overwritten) when a diagonal of the
 * factorisation before its square root is not above min_pivot: a matrix
 * that is not positive definite, or too close to singular for the
 * caller's purpose. */
int sk_cholesky_solve(double *a, double *b, int n, int nrhs, double min_pivot);

#endif
