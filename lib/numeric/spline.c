/* spline.c: natural cubic splines (second derivatives, evaluation rules, mesh knots) of the background mesh, shared by extract(1) and coadd(1) (see spline.h). */
#include "spline.h"

void sk_spline_deriv2(const double *t, const double *v, long n, double *y2, double *work)
{
    if (n < 3) {
        for (long i = 0; i < n; i++)
            y2[i] = 0;
        return;
    }
    y2[0] = work[0] = 0.0;
    for (long i = 1; i < n - 1; i++) {
        double sig = (t[i] - t[i - 1]) / (t[i + 1] - t[i - 1]);
        double p = sig * y2[i - 1] + 2.0;
        y2[i] = (sig - 1.0) / p;
        double d = (v[i + 1] - v[i]) / (t[i + 1] - t[i]) - (v[i] - v[i - 1]) / (t[i] - t[i - 1]);
        work[i] = (6.0 * d / (t[i + 1] - t[i - 1]) - sig * work[i - 1]) / p;
    }
    y2[n - 1] = 0.0;
    for (long i = n - 2; i >= 0; i--)
        y2[i] = y2[i] * y2[i + 1] + work[i];
}

sk_spline_at sk_spline_rule(const double *t, long n, double x)
{
    sk_spline_at r = { 0, 1, 0, 0, 0 };
    if (n < 2)
        return r;
    if (x <= t[0]) {
        double h = t[1] - t[0], u = x - t[0];
        r.k = 0;
        r.a = 1 - u / h;
        r.b = u / h;
        r.c = -u * h / 3;
        r.d = -u * h / 6;
        return r;
    }
    if (x >= t[n - 1]) {
        double h = t[n - 1] - t[n - 2], u = x - t[n - 1];
        r.k = n - 2;
        r.a = -u / h;
        r.b = 1 + u / h;
        r.c = u * h / 6;
        r.d = u * h / 3;
        return r;
    }
    long k = 0;
    while (k < n - 2 && x > t[k + 1])
        k++;
    double h = t[k + 1] - t[k];
    double A = (t[k + 1] - x) / h, B = 1 - A;
    r.k = k;
    r.a = A;
    r.b = B;
    r.c = (A * A * A - A) * h * h / 6;
    r.d = (B * B * B - B) * h * h / 6;
    return r;
}

double sk_spline_cell_knot(long i, long mesh_px, long size_px)
{
    long a = i * mesh_px, b = a + mesh_px < size_px ? a + mesh_px : size_px;
    return 0.5 * (double)(a + b - 1);
}
