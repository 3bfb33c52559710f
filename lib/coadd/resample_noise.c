/* resample_noise.c: what resampling onto a grid did to a plane around a region: the covariance and power spectrum of its noise and the mean transfer function of its signal, from the kernel's own tabulated weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "direct_priv.h"
#include "aligned_priv.h"
#include "skystack/error.h"

/* Sample points per side of the region. */
#define SAMPLES_PER_SIDE 16
/* Spacing (radians per input pixel) of the per-axis transfer tables: the
 * taps reach a px, so A varies on scales of about 1/a; linear
 * interpolation then errs by about (a dk)^2 / 8 < 5e-4. */
#define TABLE_STEP 0.02

/* The resampler's tap base and tabulated phase of input coordinate u
 * (resample.c: sk_band_resample). */
static void tap_phase(double u, long *base, int *phase)
{
    double f = floor(u);
    long i = (long)f;
    int p = (int)((u - f) * SK_KERNEL_PHASES + 0.5);
    if (p == SK_KERNEL_PHASES) {
        p = 0;
        i++;
    }
    *base = i;
    *phase = p;
}

/* sum over shared input pixels of the weights of two tap sets whose bases
 * differ by delta (second minus first) */
static double overlap(const float *w1, const float *w2, int taps, long delta)
{
    double s = 0.0;
    for (int t2 = 0; t2 < taps; t2++) {
        long t1 = t2 + delta;
        if (t1 >= 0 && t1 < taps)
            s += (double)w1[t1] * w2[t2];
    }
    return s;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

/* Mean over the phases ph[0..n) of A(k'; f) = sum_t w_t(f) e^(i k' (d_t - f))
 * at the table's nodes, into tab (re, im per node). sorted and count hold
 * n ints each (scratch). */
static void axis_table(const sk_kernel_table *kt, const int *ph, int n, const sk_resample_noise *m,
                       int *sorted, int *count, double *tab)
{
    int nd = 0;
    memcpy(sorted, ph, sizeof(int) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(int), cmp_int);
    for (int s = 0; s < n; s++) {
        if (nd > 0 && sorted[nd - 1] == sorted[s]) {
            count[nd - 1]++;
            continue;
        }
        sorted[nd] = sorted[s];
        count[nd++] = 1;
    }
    const int taps = kt->taps, a = kt->a;
    /* e^(-i k' f) of each phase, advanced node by node by e^(-i dk f) */
    double *rot = malloc(sizeof(double) * 4 * (size_t)nd);
    if (!rot) {
        /* without the recurrence's storage: directly */
        for (long i = 0; i < m->nk; i++) {
            double kp = -m->kmax + (double)i * m->dk, sr = 0.0, si = 0.0;
            for (int q = 0; q < nd; q++)
                for (int t = 0; t < taps; t++) {
                    double w = kt->w[(size_t)sorted[q] * SK_KERNEL_STRIDE + t];
                    double arg = kp * ((double)(t - a + 1) - (double)sorted[q] / SK_KERNEL_PHASES);
                    sr += count[q] * w * cos(arg);
                    si += count[q] * w * sin(arg);
                }
            tab[2 * i] = sr / n;
            tab[2 * i + 1] = si / n;
        }
        return;
    }
    for (int q = 0; q < nd; q++) {
        double f = (double)sorted[q] / SK_KERNEL_PHASES;
        rot[4 * q] = cos(m->kmax * f); /* e^(-i k'_0 f), k'_0 = -kmax */
        rot[4 * q + 1] = sin(m->kmax * f);
        rot[4 * q + 2] = cos(m->dk * f); /* e^(-i dk f) */
        rot[4 * q + 3] = -sin(m->dk * f);
    }
    for (long i = 0; i < m->nk; i++) {
        double kp = -m->kmax + (double)i * m->dk;
        double er[SK_KERNEL_STRIDE], ei[SK_KERNEL_STRIDE];
        for (int t = 0; t < taps; t++) {
            double d = (double)(t - a + 1);
            er[t] = cos(kp * d);
            ei[t] = sin(kp * d);
        }
        double sr = 0.0, si = 0.0;
        for (int q = 0; q < nd; q++) {
            const float *w = kt->w + (size_t)sorted[q] * SK_KERNEL_STRIDE;
            double ar = 0.0, ai = 0.0;
            for (int t = 0; t < taps; t++) {
                ar += w[t] * er[t];
                ai += w[t] * ei[t];
            }
            double *e = rot + 4 * q, c = e[0], s = e[1], cnt = count[q];
            sr += cnt * (ar * c - ai * s);
            si += cnt * (ar * s + ai * c);
            e[0] = c * e[2] - s * e[3];
            e[1] = c * e[3] + s * e[2];
        }
        tab[2 * i] = sr / n;
        tab[2 * i + 1] = si / n;
    }
    free(rot);
}

void sk_resample_noise_clear(sk_resample_noise *m)
{
    free(m->cov);
    free(m->ax);
    free(m->ay);
    memset(m, 0, sizeof *m);
}

static void set_identity(sk_resample_noise *m)
{
    memset(m, 0, sizeof *m);
    m->identity = 1;
    m->rho = m->q0 = 1.0;
    m->jit[0] = m->jit[3] = 1.0;
}

int sk_resample_noise_at(sk_resample_noise *m, const sk_kernel_table *kt, sk_pixel_map_fn map,
                         void *ctx, long x0, long y0, long x1, long y1)
{
    set_identity(m);
    if (!map)
        return SK_OK;
    if (!kt || kt->taps < 1 || kt->taps > SK_KERNEL_STRIDE || x1 <= x0 || y1 <= y0)
        return sk_error(SK_EINPUT, "resampling noise: no kernel or an empty region");
    enum { NS = SAMPLES_PER_SIDE * SAMPLES_PER_SIDE };
    double sx[NS + 5], sy[NS + 5], ux[NS + 5], uy[NS + 5];
    for (int j = 0; j < SAMPLES_PER_SIDE; j++)
        for (int i = 0; i < SAMPLES_PER_SIDE; i++) {
            int s = j * SAMPLES_PER_SIDE + i;
            sx[s] = floor((double)x0 + (i + 0.5) * (double)(x1 - x0) / SAMPLES_PER_SIDE);
            sy[s] = floor((double)y0 + (j + 0.5) * (double)(y1 - y0) / SAMPLES_PER_SIDE);
        }
    /* the Jacobian at the centre, by central differences */
    double xc = 0.5 * (double)(x0 + x1 - 1), yc = 0.5 * (double)(y0 + y1 - 1);
    const double ddx[5] = {0.0, -0.5, 0.5, 0.0, 0.0}, ddy[5] = {0.0, 0.0, 0.0, -0.5, 0.5};
    for (int q = 0; q < 5; q++) {
        sx[NS + q] = xc + ddx[q];
        sy[NS + q] = yc + ddy[q];
    }
    /* Output pixels that the map cannot place (beyond an input's WCS
     * domain) are left out, one by one; without any, or without a Jacobian
     * anywhere, the plane counts as not resampled (white). */
    int nok = NS + 5;
    if (map(ctx, NS + 5, sx, sy, ux, uy) != SK_OK) {
        sk_error_clear();
        for (int q = 0; q < NS + 5; q++)
            if (map(ctx, 1, sx + q, sy + q, ux + q, uy + q) != SK_OK) {
                sk_error_clear();
                ux[q] = uy[q] = NAN;
            }
    }
    double jac[4] = {0.0, 0.0, 0.0, 0.0};
    int have_j = 0;
    for (int q = -1; q < NS && !have_j; q++) {
        double px[5], py[5], qx[5], qy[5];
        if (q >= 0 && !(isfinite(ux[q]) && isfinite(uy[q])))
            continue;
        for (int d = 0; d < 5; d++) {
            px[d] = (q < 0 ? xc : sx[q]) + ddx[d];
            py[d] = (q < 0 ? yc : sy[q]) + ddy[d];
        }
        if (q < 0) {
            memcpy(qx, ux + NS, sizeof qx);
            memcpy(qy, uy + NS, sizeof qy);
        } else if (map(ctx, 5, px, py, qx, qy) != SK_OK) {
            sk_error_clear();
            continue;
        }
        jac[0] = qx[2] - qx[1];
        jac[1] = qx[4] - qx[3];
        jac[2] = qy[2] - qy[1];
        jac[3] = qy[4] - qy[3];
        double dt = jac[0] * jac[3] - jac[1] * jac[2];
        have_j = fabs(dt) > 1e-12 && isfinite(dt);
    }
    nok = 0;
    for (int q = 0; q < NS; q++)
        if (isfinite(ux[q]) && isfinite(uy[q])) {
            sx[nok] = sx[q];
            sy[nok] = sy[q];
            ux[nok] = ux[q];
            uy[nok] = uy[q];
            nok++;
        }
    if (!have_j || nok == 0)
        return SK_OK;
    double j11 = jac[0], j12 = jac[1], j21 = jac[2], j22 = jac[3];
    double det = j11 * j22 - j12 * j21;
    /* J^-1 (output offsets of input offsets) and J^-T */
    double i11 = j22 / det, i12 = -j12 / det, i21 = -j21 / det, i22 = j11 / det;
    m->identity = 0;
    m->jit[0] = i11;
    m->jit[1] = i21;
    m->jit[2] = i12;
    m->jit[3] = i22;

    /* covariance over the lags whose taps can share an input pixel */
    const int taps = kt->taps;
    double reach = (double)taps + 1.0;
    double rx = reach * (fabs(i11) + fabs(i12)), ry = reach * (fabs(i21) + fabs(i22));
    long r = (long)ceil(rx > ry ? rx : ry);
    if (r < 1)
        r = 1;
    long nw = 2 * r + 1;
    m->r = r;
    m->cov = calloc((size_t)(nw * nw), sizeof(double));
    if (!m->cov) {
        sk_resample_noise_clear(m);
        set_identity(m);
        return sk_error(SK_EIO, "resampling noise: out of memory");
    }
    int phx[NS], phy[NS];
    for (int s = 0; s < nok; s++) {
        long bx, by, bx2, by2;
        int px, py, px2, py2;
        tap_phase(ux[s], &bx, &px);
        tap_phase(uy[s], &by, &py);
        phx[s] = px;
        phy[s] = py;
        const float *wx = kt->w + (size_t)px * SK_KERNEL_STRIDE;
        const float *wy = kt->w + (size_t)py * SK_KERNEL_STRIDE;
        for (long dy = -r; dy <= r; dy++)
            for (long dx = -r; dx <= r; dx++) {
                double vx = ux[s] + j11 * (double)dx + j12 * (double)dy;
                double vy = uy[s] + j21 * (double)dx + j22 * (double)dy;
                tap_phase(vx, &bx2, &px2);
                tap_phase(vy, &by2, &py2);
                if (labs(bx2 - bx) >= taps || labs(by2 - by) >= taps)
                    continue;
                double ox = overlap(wx, kt->w + (size_t)px2 * SK_KERNEL_STRIDE, taps, bx2 - bx);
                if (ox == 0.0)
                    continue;
                double oy = overlap(wy, kt->w + (size_t)py2 * SK_KERNEL_STRIDE, taps, by2 - by);
                m->cov[(dy + r) * nw + dx + r] += ox * oy;
            }
    }
    /* mean over the samples, symmetric (Cov(d) = Cov(-d) for the process) */
    double q0 = 0.0;
    for (long i = 0; i < nw * nw; i++) {
        if (i > nw * nw - 1 - i)
            break;
        double v = 0.5 * (m->cov[i] + m->cov[nw * nw - 1 - i]) / nok;
        m->cov[i] = m->cov[nw * nw - 1 - i] = v;
    }
    for (long i = 0; i < nw * nw; i++)
        q0 += m->cov[i];
    m->rho = m->cov[r * nw + r];
    m->q0 = q0;

    /* per-axis mean transfer, tabulated over the input frequencies that the
     * output's (|k| <= pi on each axis) reach */
    double kx = M_PI * (fabs(m->jit[0]) + fabs(m->jit[1]));
    double ky = M_PI * (fabs(m->jit[2]) + fabs(m->jit[3]));
    m->kmax = (kx > ky ? kx : ky) + 2.0 * TABLE_STEP;
    m->dk = TABLE_STEP;
    m->nk = (long)ceil(2.0 * m->kmax / m->dk) + 2;
    m->ax = malloc(sizeof(double) * 2 * (size_t)m->nk);
    m->ay = malloc(sizeof(double) * 2 * (size_t)m->nk);
    if (!m->ax || !m->ay) {
        sk_resample_noise_clear(m);
        set_identity(m);
        return sk_error(SK_EIO, "resampling noise: out of memory");
    }
    int sorted[NS], count[NS];
    axis_table(kt, phx, nok, m, sorted, count, m->ax);
    axis_table(kt, phy, nok, m, sorted, count, m->ay);
    return SK_OK;
}

/* Linear interpolation of a per-axis table at k'. */
static void table_at(const sk_resample_noise *m, const double *tab, double kp, double *re,
                     double *im)
{
    double u = (kp + m->kmax) / m->dk;
    long i = (long)floor(u);
    if (i < 0)
        i = 0;
    if (i > m->nk - 2)
        i = m->nk - 2;
    double f = u - (double)i;
    *re = tab[2 * i] * (1.0 - f) + tab[2 * i + 2] * f;
    *im = tab[2 * i + 1] * (1.0 - f) + tab[2 * i + 3] * f;
}

void sk_resample_noise_transfer(const sk_resample_noise *m, double kx, double ky, double *re,
                                double *im)
{
    if (m->identity) {
        *re = 1.0;
        *im = 0.0;
        return;
    }
    double kpx = m->jit[0] * kx + m->jit[1] * ky, kpy = m->jit[2] * kx + m->jit[3] * ky;
    double axr, axi, ayr, ayi;
    table_at(m, m->ax, kpx, &axr, &axi);
    table_at(m, m->ay, kpy, &ayr, &ayi);
    *re = axr * ayr - axi * ayi;
    *im = axr * ayi + axi * ayr;
}

/* The identity's filter and gain: 1 everywhere. */
static void spectrum_identity(long nc, fftwf_complex *filt, float *gain)
{
    for (long k = 0; k < nc; k++) {
        filt[k][0] = 1.0f;
        filt[k][1] = 0.0f;
        gain[k] = 1.0f;
    }
}

/* Q: the covariance wrapped onto the ny x nx grid r (aliases added: the
 * transform then samples Q exactly at the grid's frequencies). */
static void wrap_cov(const sk_resample_noise *m, long nx, long ny, float *r)
{
    memset(r, 0, sizeof(float) * (size_t)(nx * ny));
    const long rr = m->r, nw = 2 * rr + 1;
    for (long dy = -rr; dy <= rr; dy++)
        for (long dx = -rr; dx <= rr; dx++) {
            long yy = ((dy % ny) + ny) % ny, xx = ((dx % nx) + nx) % nx;
            r[yy * nx + xx] += (float)m->cov[(dy + rr) * nw + dx + rr];
        }
}

static void spectrum_from_q(const sk_resample_noise *m, long nx, long ny, const fftwf_complex *c,
                            fftwf_complex *filt, float *gain);

void sk_resample_noise_spectrum(const sk_resample_noise *m, long nx, long ny, fftwf_plan fwd,
                                float *r, fftwf_complex *c, fftwf_complex *filt, float *gain)
{
    if (m->identity) {
        spectrum_identity(ny * (nx / 2 + 1), filt, gain);
        return;
    }
    wrap_cov(m, nx, ny, r);
    fftwf_execute_dft_r2c(fwd, r, c);
    spectrum_from_q(m, nx, ny, c, filt, gain);
}

void sk_resample_noise_spectrum_sparse(const sk_resample_noise *m, const sk_cx_sparse_fft *sp,
                                       float *r, fftwf_complex *c, fftwf_complex *filt,
                                       float *gain)
{
    const long nx = sp->nx, ny = sp->ny;
    if (m->identity) {
        spectrum_identity(ny * (nx / 2 + 1), filt, gain);
        return;
    }
    wrap_cov(m, nx, ny, r);
    sk_cx_sparse_r2c(sp, r, m->r, c);
    spectrum_from_q(m, nx, ny, c, filt, gain);
}

/* filt and gain from Q's transform c (see sk_resample_noise_spectrum). */
static void spectrum_from_q(const sk_resample_noise *m, long nx, long ny, const fftwf_complex *c,
                            fftwf_complex *filt, float *gain)
{
    const long nh = nx / 2 + 1;
    const double floor_q = 1e-6 * m->rho;
    /* an output pixel spans |det J| input pixels: white input noise of unit
     * variance per input pixel has power |det J|^-1 per output pixel where
     * the signal passes whole, so |T|^2 <= |det J| Q (equality for a shift) */
    const double detj = 1.0 / fabs(m->jit[0] * m->jit[3] - m->jit[1] * m->jit[2]);
    for (long iy = 0; iy < ny; iy++) {
        double ky = 2.0 * M_PI * (double)(iy <= ny / 2 ? iy : iy - ny) / (double)ny;
        for (long ix = 0; ix < nh; ix++) {
            long k = iy * nh + ix;
            double kx = 2.0 * M_PI * (double)ix / (double)nx, tr, ti;
            sk_resample_noise_transfer(m, kx, ky, &tr, &ti);
            double q = c[k][0];
            if (!(q > floor_q))
                q = floor_q;
            double t2 = tr * tr + ti * ti;
            if (t2 > detj * q) {
                double s = sqrt(detj * q / t2);
                tr *= s;
                ti *= s;
                t2 = detj * q;
            }
            filt[k][0] = (float)(m->rho * tr / q);
            filt[k][1] = (float)(-m->rho * ti / q);
            gain[k] = (float)(m->rho * t2 / q);
        }
    }
}
