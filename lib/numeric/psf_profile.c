/* psf_profile.c: elliptical Moffat, Gaussian and double-Gaussian PSF profiles, truncated and
 * normalised analytically, sampled at pixel centres or integrated over each
 * pixel by adaptive Gauss-Legendre quadrature (see psf_profile.h). */
#include <math.h>
#include <stddef.h>
#include "psf_profile.h"
#include "skystack/error.h"

/* Gauss-Legendre nodes and weights on [-1, 1] (positive half; symmetric). */
static const double gl2_x[] = {0.5773502691896257645};
static const double gl2_w[] = {1.0};
static const double gl4_x[] = {0.3399810435848562648, 0.8611363115940525752};
static const double gl4_w[] = {0.6521451548625461427, 0.3478548451374538573};
static const double gl6_x[] = {0.2386191860831969086, 0.6612093864662645136,
                               0.9324695142031520278};
static const double gl6_w[] = {0.4679139345726910473, 0.3607615730481386076,
                               0.1713244923791703451};
static const double gl10_x[] = {0.1488743389816312109, 0.4333953941292471908,
                                0.6794095682990244062, 0.8650633666889845107,
                                0.9739065285171717200};
static const double gl10_w[] = {0.2955242247147528702, 0.2692667193099963551,
                                0.2190863625159820440, 0.1494513491505805931,
                                0.0666713443086881376};

typedef struct rule {
    int n;               /* nodes per axis */
    double x[10], w[10]; /* on [-0.5, 0.5], weights summing to 1 */
} rule;

static void make_rule(rule *r, int n)
{
    const double *hx, *hw;
    switch (n) {
    case 2: hx = gl2_x; hw = gl2_w; break;
    case 4: hx = gl4_x; hw = gl4_w; break;
    case 6: hx = gl6_x; hw = gl6_w; break;
    default: n = 10; hx = gl10_x; hw = gl10_w; break;
    }
    r->n = n;
    for (int i = 0; i < n / 2; i++) {
        r->x[i] = -0.5 * hx[n / 2 - 1 - i];
        r->w[i] = 0.5 * hw[n / 2 - 1 - i];
        r->x[n - 1 - i] = 0.5 * hx[n / 2 - 1 - i];
        r->w[n - 1 - i] = 0.5 * hw[n / 2 - 1 - i];
    }
}

/* Derived constants of a PSF. */
typedef struct shape {
    int model;
    double scale2;       /* alpha^2 (Moffat) or 2 sigma^2 (Gaussian) */
    double beta;
    double r2max;        /* truncation radius squared */
    double norm;         /* 1 / (pi scale2 ... ) / enclosed fraction */
    double cq, sq, q;    /* rotation and axis ratio */
    double qa, qb, qc;   /* r^2 = qa dx^2 + qb dx dy + qc dy^2 */
    int beta_int;        /* >= 0: beta = beta_int + 0.5 * beta_half, */
    int beta_half;       /*   evaluated without exp and log */
} shape;

static void shape_of(const sk_sim_psf *psf, shape *s)
{
    double f = psf->fwhm_px, rmax = psf->radius_fwhm * f;
    s->model = psf->model;
    s->beta = psf->beta;
    s->r2max = rmax * rmax;
    s->q = 1.0 - psf->ellipticity;
    double th = psf->angle_deg * M_PI / 180.0;
    s->cq = cos(th);
    s->sq = sin(th);
    s->qa = s->q * s->cq * s->cq + s->sq * s->sq / s->q;
    s->qb = 2.0 * s->cq * s->sq * (s->q - 1.0 / s->q);
    s->qc = s->q * s->sq * s->sq + s->cq * s->cq / s->q;
    s->beta_int = -1;
    s->beta_half = 0;
    double twice = 2.0 * psf->beta;
    if (twice == floor(twice) && twice <= 40.0) {
        s->beta_int = (int)floor(psf->beta);
        s->beta_half = (int)twice % 2;
    }
    if (psf->model == SK_SIM_MOFFAT) {
        double alpha = f / (2.0 * sqrt(pow(2.0, 1.0 / psf->beta) - 1.0));
        s->scale2 = alpha * alpha;
        double enclosed = 1.0 - pow(1.0 + s->r2max / s->scale2, 1.0 - psf->beta);
        s->norm = (psf->beta - 1.0) / (M_PI * s->scale2) / enclosed;
    } else {
        double sigma = f / (2.0 * sqrt(2.0 * M_LN2));
        s->scale2 = 2.0 * sigma * sigma;
        double enclosed = 1.0 - exp(-s->r2max / s->scale2);
        s->norm = 1.0 / (M_PI * s->scale2) / enclosed;
    }
}

/* Elliptical radius squared of an offset (area-preserving: Jacobian 1). */
static inline double radius2(const shape *s, double dx, double dy)
{
    return s->qa * dx * dx + s->qb * dx * dy + s->qc * dy * dy;
}

static inline double density_r2(const shape *s, double r2)
{
    if (r2 >= s->r2max)
        return 0.0;
    if (s->model == SK_SIM_MOFFAT) {
        double t = 1.0 + r2 / s->scale2;
        if (s->beta_int < 0)
            return s->norm * exp(-s->beta * log(t));
        double pw = 1.0;
        for (int k = 0; k < s->beta_int; k++)
            pw *= t;
        if (s->beta_half)
            pw *= sqrt(t);
        return s->norm / pw;
    }
    return s->norm * exp(-r2 / s->scale2);
}

/* The integral over the unit pixel centred at offset (dx, dy) from the
 * midpoint value plus the Laplacian term: f + (f_xx + f_yy)/24, exact to
 * fourth order; used where the profile is smooth on the pixel scale. */
static inline double pixel_midpoint(const shape *s, double dx, double dy)
{
    double r2 = radius2(s, dx, dy);
    if (r2 >= s->r2max)
        return 0.0;
    double g = density_r2(s, r2), g1, g2;
    if (s->model == SK_SIM_MOFFAT) {
        double t = 1.0 / (s->scale2 + r2); /* 1 / (a^2 (1 + r2/a^2)) */
        g1 = -s->beta * t * g;
        g2 = s->beta * (s->beta + 1.0) * t * t * g;
    } else {
        g1 = -g / s->scale2;
        g2 = g / (s->scale2 * s->scale2);
    }
    double sx = 2.0 * s->qa * dx + s->qb * dy, sy = 2.0 * s->qc * dy + s->qb * dx;
    double lap = g2 * (sx * sx + sy * sy) + g1 * 2.0 * (s->qa + s->qc);
    return g + lap / 24.0;
}

int sk_sim_psf_check(const sk_sim_psf *psf)
{
    if (psf->model != SK_SIM_MOFFAT && psf->model != SK_SIM_GAUSSIAN &&
        psf->model != SK_SIM_DOUBLE_GAUSSIAN)
        return sk_error(SK_EINPUT, "PSF model %d: not moffat, gaussian or double-gaussian", psf->model);
    if (psf->model == SK_SIM_DOUBLE_GAUSSIAN &&
        !(psf->wing_fraction >= 0.0 && psf->wing_fraction < 1.0 && psf->wing_ratio >= 1.0 &&
          psf->wing_ratio <= 20.0))
        return sk_error(SK_EINPUT, "double-Gaussian PSF: wing fraction %g must be in [0, 1) and "
                        "wing ratio %g in [1, 20]", psf->wing_fraction, psf->wing_ratio);
    if (!(psf->fwhm_px > 0.1 && psf->fwhm_px < 1e4))
        return sk_error(SK_EINPUT, "PSF FWHM %g px: must be in (0.1, 10000)", psf->fwhm_px);
    if (psf->model == SK_SIM_MOFFAT && !(psf->beta > 1.0 && psf->beta < 100.0))
        return sk_error(SK_EINPUT, "Moffat beta %g: must be in (1, 100)", psf->beta);
    if (!(psf->ellipticity >= 0.0 && psf->ellipticity < 0.9))
        return sk_error(SK_EINPUT, "PSF ellipticity %g: must be in [0, 0.9)", psf->ellipticity);
    if (!(psf->radius_fwhm >= 1.5 && psf->radius_fwhm <= 50.0))
        return sk_error(SK_EINPUT, "PSF truncation radius %g FWHM: must be in [1.5, 50]",
                        psf->radius_fwhm);
    return SK_OK;
}

double sk_sim_psf_extent_px(const sk_sim_psf *psf)
{
    sk_sim_psf c[2];
    double fr[2];
    int n = sk_sim_psf_components(psf, c, fr);
    double q = 1.0 - psf->ellipticity;
    return psf->radius_fwhm * c[n - 1].fwhm_px / sqrt(q);
}

double sk_sim_psf_density(const sk_sim_psf *psf, double dx, double dy)
{
    sk_sim_psf c[2];
    double fr[2], v = 0.0;
    int nc = sk_sim_psf_components(psf, c, fr);
    for (int k = 0; k < nc; k++) {
        shape s;
        shape_of(&c[k], &s);
        v += fr[k] * density_r2(&s, radius2(&s, dx, dy));
    }
    return v;
}

void sk_sim_psf_sample(const sk_sim_psf *psf, long half, double *out)
{
    sk_sim_psf c[2];
    double fr[2];
    int nc = sk_sim_psf_components(psf, c, fr);
    long n = 2 * half + 1;
    for (long q = 0; q < n * n; q++)
        out[q] = 0.0;
    for (int k = 0; k < nc; k++) {
        shape s;
        shape_of(&c[k], &s);
        for (long j = 0; j < n; j++)
            for (long i = 0; i < n; i++)
                out[j * n + i] += fr[k] * density_r2(&s, radius2(&s, (double)(i - half), (double)(j - half)));
    }
}

static double sigma2_one(const sk_sim_psf *psf);

double sk_sim_psf_sigma2_px2(const sk_sim_psf *psf)
{
    sk_sim_psf c[2];
    double fr[2], v = 0.0;
    int nc = sk_sim_psf_components(psf, c, fr);
    for (int k = 0; k < nc; k++)
        v += fr[k] * sigma2_one(&c[k]);
    return v;
}

static double sigma2_one(const sk_sim_psf *psf)
{
    shape s;
    shape_of(psf, &s);
    double r2mean;
    if (psf->model == SK_SIM_MOFFAT) {
        double b = psf->beta, U = s.r2max / s.scale2;
        double i0 = (1.0 - pow(1.0 + U, 1.0 - b)) / (b - 1.0);
        double i1a = fabs(b - 2.0) < 1e-12 ? log1p(U) : (1.0 - pow(1.0 + U, 2.0 - b)) / (b - 2.0);
        r2mean = s.scale2 * (i1a - i0) / i0;
    } else {
        double T = s.r2max / s.scale2;
        r2mean = s.scale2 * (1.0 - (1.0 + T) * exp(-T)) / (1.0 - exp(-T));
    }
    return 0.5 * r2mean;
}

static void psf_add_one(const sk_sim_psf *psf, double flux, double x, double y,
                        double *image, long width, long height, long row0, long row1);

void sk_sim_psf_add(const sk_sim_psf *psf, double flux, double x, double y,
                    double *image, long width, long height, long row0, long row1)
{
    sk_sim_psf c[2];
    double fr[2];
    int nc = sk_sim_psf_components(psf, c, fr);
    for (int k = 0; k < nc; k++)
        psf_add_one(&c[k], flux * fr[k], x, y, image, width, height, row0, row1);
}

static void psf_add_one(const sk_sim_psf *psf, double flux, double x, double y,
                        double *image, long width, long height, long row0, long row1)
{
    shape s;
    shape_of(psf, &s);
    static __thread int rules_ready;
    static __thread rule r2, r4, r6, r10;
    if (!rules_ready) {
        make_rule(&r2, 2);
        make_rule(&r4, 4);
        make_rule(&r6, 6);
        make_rule(&r10, 10);
        rules_ready = 1;
    }
    double ext = sk_sim_psf_extent_px(psf) + 1.0;
    long xa = (long)floor(x - ext), xb = (long)ceil(x + ext);
    long ya = (long)floor(y - ext), yb = (long)ceil(y + ext);
    if (xa < 0) xa = 0;
    if (xb > width - 1) xb = width - 1;
    if (ya < row0) ya = row0;
    if (yb > row1 - 1) yb = row1 - 1;
    if (ya < 0) ya = 0;
    if (yb > height - 1) yb = height - 1;
    if (xa > xb || ya > yb)
        return;

    /* Quadrature order from the local curvature scale: the core (where the
     * profile bends on the scale of the FWHM) gets the most nodes, the
     * wings few. Pixels wholly beyond the truncation are skipped. */
    double f = psf->fwhm_px, sq = sqrt(s.q);
    double fmin = f * sq;                     /* minor-axis FWHM */
    double rmax = sqrt(s.r2max);
    double slack = 0.7072 / sq;               /* half-diagonal, elliptical */
    double core_r = 1.0 * f, mid_r = 2.0 * f;
    const rule *core = fmin < 1.5 ? &r10 : fmin < 3.0 ? &r6 : &r4;
    const rule *mid = fmin < 1.5 ? &r6 : fmin < 3.0 ? &r4 : &r2;
    for (long j = ya; j <= yb; j++) {
        double dy = (double)j - y;
        double *row = image + j * width;
        for (long i = xa; i <= xb; i++) {
            double dx = (double)i - x;
            double rc = sqrt(radius2(&s, dx, dy));
            if (rc - slack >= rmax)
                continue;
            const rule *r = rc - slack < core_r ? core : rc - slack < mid_r ? mid : NULL;
            if (rc + slack > rmax)
                r = &r10; /* the pixel straddles the truncation edge */
            if (!r) {
                row[i] += flux * pixel_midpoint(&s, dx, dy);
                continue;
            }
            double sum = 0.0;
            for (int b = 0; b < r->n; b++) {
                double yy = dy + r->x[b], acc = 0.0;
                for (int a = 0; a < r->n; a++)
                    acc += r->w[a] * density_r2(&s, radius2(&s, dx + r->x[a], yy));
                sum += r->w[b] * acc;
            }
            row[i] += flux * sum;
        }
    }
}
