/* spline.h: natural cubic splines through knots, evaluated by a per-position rule, for the background mesh (extract(1), coadd(1)); not installed. */
#ifndef SK_SPLINE_H
#define SK_SPLINE_H

/* Evaluation rule at one position: interval k and the coefficients of
 * v[k], v[k+1], y2[k], y2[k+1]. */
typedef struct {
    long k;
    double a, b, c, d;
} sk_spline_at;

/* Natural cubic spline second derivatives y2[0..n-1] of knots (t, v);
 * work holds n doubles. Fewer than three knots: all zero (linear). */
void sk_spline_deriv2(const double *t, const double *v, long n, double *y2, double *work);

/* The rule at x for knots t[0..n-1] (ascending). Outside the knots: linear
 * extrapolation with the end slope. */
sk_spline_at sk_spline_rule(const double *t, long n, double x);

/* The knot of mesh cell i: the centre of pixels [i*mesh_px, min((i+1)*mesh_px, size_px)). */
double sk_spline_cell_knot(long i, long mesh_px, long size_px);

/* The spline of values v with second derivatives y2 at the rule's position. */
static inline double sk_spline_eval(const sk_spline_at *r, const double *v, const double *y2, long n)
{
    if (n < 2)
        return v[0];
    return r->a * v[r->k] + r->b * v[r->k + 1] + r->c * y2[r->k] + r->d * y2[r->k + 1];
}

#endif
