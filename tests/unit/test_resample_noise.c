/* test_resample_noise.c: the model of what resampling does to an input's
 * noise and signal (resample_noise.c) against the resampler itself: white
 * noise resampled onto shifted, rotated and finer grids has the modelled
 * covariance; plane waves come out with the modelled transfer; for a pure
 * shift the covariance's spectrum and the transfer (two independent
 * computations) agree, |T|^2 = Q. */
#include "../tap.h"
#include "coadd_fixture.h"
#include "coadd/direct_priv.h"
#include "coadd/aligned_priv.h"
#include "numeric/fft_priv.h"
#include "skystack/coaddx.h"
#include "skystack/sim.h"
#include "coadd/coadd_internal.h"
#include "coadd/coaddx_internal.h"
#include "sim/sim_internal.h"

#define IN 400
#define OUT 300
#define R0 50   /* measured region [R0, OUT - R0) on both axes */

typedef struct setup {
    sk_wcs *in_wcs;
    sk_grid *grid;
    sk_grid_psf map;   /* only its WCS pair */
} setup;

static int setup_make(setup *s, double dx_px, double dy_px, double rot_deg, double scale)
{
    memset(s, 0, sizeof *s);
    fx_wcs iw = {150.0, 2.0, 200.5, 200.5, 0.26, 0.0, 0.0};
    /* the output: tangent point at input pixel (200 + dx, 200 + dy) */
    fx_wcs ow = {150.0, 2.0, 150.5 - dx_px / scale, 150.5 - dy_px / scale, 0.26 * scale,
                 rot_deg, 0.0};
    sk_header *hi = fx_header(&iw), *ho = fx_header(&ow);
    sk_wcs *wo = NULL;
    int rc = sk_wcs_from_header(hi, &s->in_wcs);
    if (!rc)
        rc = sk_wcs_from_header(ho, &wo);
    if (!rc)
        rc = sk_grid_from_wcs(wo, OUT, OUT, &s->grid);
    sk_wcs_free(wo);
    sk_header_free(hi);
    sk_header_free(ho);
    s->map.in_wcs = s->in_wcs;
    s->map.out_wcs = s->grid ? s->grid->wcs : NULL;
    return rc;
}

static void setup_free(setup *s)
{
    sk_grid_free(s->grid);
    sk_wcs_free(s->in_wcs);
}

/* An input of the given values, unit weight, resampled onto the grid. */
static sk_image *resampled(const setup *s, const float *values)
{
    sk_image *in = sk_image_new(IN, IN), *out = NULL;
    memcpy(in->sci, values, sizeof(float) * IN * IN);
    for (long i = 0; i < IN * IN; i++)
        in->weight[i] = 1.0f;
    in->wcs = s->in_wcs;
    int rc = sk_resample_image(in, NULL, 1.0, s->grid, SK_KERNEL_LANCZOS3, 0.001, 2, &out);
    in->wcs = NULL;
    sk_image_free(in);
    if (rc)
        tap_diag("resample: %s", sk_errmsg());
    return rc ? NULL : out;
}

/* Output-pixel area over input-pixel area (the resampler multiplies by it). */
static double area_ratio(const sk_resample_noise *m)
{
    double det = m->jit[0] * m->jit[3] - m->jit[1] * m->jit[2]; /* det J^-T */
    return 1.0 / fabs(det);
}

static void check_case(const char *label, double dx, double dy, double rot, double scale,
                       double tol_cov, double tol_t)
{
    setup s;
    if (setup_make(&s, dx, dy, rot, scale)) {
        ok(0, "%s: grids (%s)", label, sk_errmsg());
        return;
    }
    sk_kernel_table kt;
    sk_kernel_table_init(&kt, SK_KERNEL_LANCZOS3);
    sk_resample_noise m;
    is_int(sk_resample_noise_at(&m, &kt, sk_grid_map, &s.map, R0, R0, OUT - R0, OUT - R0), 0,
           "%s: model", label);
    double ar = area_ratio(&m);

    /* 1. white noise */
    float *v = malloc(sizeof(float) * IN * IN);
    sk_rng rng;
    sk_rng_init(&rng, 99, 1, 0);
    for (long i = 0; i < IN * IN; i++)
        v[i] = (float)sk_rng_gauss(&rng);
    sk_image *o = resampled(&s, v);
    double worst = 0.0, c00 = 0.0, m00 = m.rho;
    long nw = 2 * m.r + 1;
    for (int ly = -2; ly <= 2; ly++)
        for (int lx = -2; lx <= 2; lx++) {
            double sum = 0.0;
            long n = 0;
            for (long y = R0; y < OUT - R0; y++)
                for (long x = R0; x < OUT - R0; x++) {
                    sum += (double)o->sci[y * OUT + x] * o->sci[(y + ly) * OUT + x + lx];
                    n++;
                }
            double meas = sum / n / (ar * ar);
            double model = (labs(lx) <= m.r && labs(ly) <= m.r)
                               ? m.cov[(ly + m.r) * nw + lx + m.r] : 0.0;
            if (lx == 0 && ly == 0)
                c00 = meas;
            if (fabs(meas - model) > worst)
                worst = fabs(meas - model);
        }
    tap_diag("%s: per-pixel variance factor measured %.4f, model %.4f; large-scale factor "
             "Q(0)/rho %.3f", label, c00, m00, m.q0 / m.rho);
    ok(worst < tol_cov, "%s: noise covariance at lags |d| <= 2 as modelled (worst %.4f)", label,
       worst);

    /* 2. plane waves: amplitude and phase of each through the resampler */
    const double kin[][2] = {{0.6, 0.0}, {0.0, 1.2}, {1.5, 1.0}, {-2.2, 0.7}, {2.6, 0.0}};
    double worst_t = 0.0;
    for (size_t w = 0; w < sizeof kin / sizeof kin[0]; w++) {
        double kx_in = kin[w][0], ky_in = kin[w][1];
        for (long y = 0; y < IN; y++)
            for (long x = 0; x < IN; x++)
                v[y * IN + x] = (float)cos(kx_in * x + ky_in * y);
        sk_image *pw = resampled(&s, v);
        /* output frequency k = J^T k_in, phase from the input position of
         * output pixel (0, 0) */
        double jx[3] = {0.0, 1.0, 0.0}, jy[3] = {0.0, 0.0, 1.0}, ux[3], uy[3];
        sk_grid_map(&s.map, 3, jx, jy, ux, uy);
        double j11 = ux[1] - ux[0], j21 = uy[1] - uy[0], j12 = ux[2] - ux[0], j22 = uy[2] - uy[0];
        double kx = j11 * kx_in + j21 * ky_in, ky = j12 * kx_in + j22 * ky_in;
        double zr = 0.0, zi = 0.0;
        long n = 0;
        for (long y = R0; y < OUT - R0; y++)
            for (long x = R0; x < OUT - R0; x++) {
                double xi, yi, xo = (double)x, yo = (double)y;
                sk_grid_map(&s.map, 1, &xo, &yo, &xi, &yi);
                double ph = kx_in * xi + ky_in * yi;
                zr += pw->sci[y * OUT + x] * cos(ph);
                zi -= pw->sci[y * OUT + x] * sin(ph);
                n++;
            }
        zr *= 2.0 / n / ar;
        zi *= 2.0 / n / ar;
        double tr, ti;
        sk_resample_noise_transfer(&m, kx, ky, &tr, &ti);
        double d = hypot(zr - tr, zi - ti);
        tap_diag("%s: k_in (%.1f, %.1f): measured T %.4f%+.4fi, model %.4f%+.4fi", label, kx_in,
                 ky_in, zr, zi, tr, ti);
        if (d > worst_t)
            worst_t = d;
        sk_image_free(pw);
    }
    ok(worst_t < tol_t, "%s: plane waves come out with the modelled transfer (worst |dT| %.4f)",
       label, worst_t);

    /* 3. the filter and gain on an FFT grid */
    const long nx = 64, ny = 48, nh = nx / 2 + 1;
    float *r = fftwf_alloc_real((size_t)(nx * ny));
    fftwf_complex *c = fftwf_alloc_complex((size_t)(ny * nh)), *filt = fftwf_alloc_complex((size_t)(ny * nh));
    float *gain = malloc(sizeof(float) * (size_t)(ny * nh));
    sk_resample_noise_spectrum(&m, nx, ny, sk_fft_plan_r2c((int)ny, (int)nx), r, c, filt, gain);
    double gmax = 0.0, gmin = 1e9;
    for (long k = 0; k < ny * nh; k++) {
        long iy = k / nh, ix = k % nh;
        double tr, ti;
        sk_resample_noise_transfer(&m, 2.0 * M_PI * ix / nx,
                                   2.0 * M_PI * (iy <= ny / 2 ? iy : iy - ny) / ny, &tr, &ti);
        gmax = fmax(gmax, gain[k] / m.rho);
        if (tr * tr + ti * ti > 1e-2) /* where the shift leaves some signal */
            gmin = fmin(gmin, gain[k] / m.rho);
    }
    ok(gmax <= scale * scale + 1e-6, "%s: gain <= rho |det J| everywhere (max gain / rho %.6f, "
       "|det J| %.3f)", label, gmax, scale * scale);
    is_near(gain[0], m.rho / m.q0, 1e-3 * m.rho / m.q0, "%s: gain(0) = rho / Q(0)", label);
    if (rot == 0.0 && scale == 1.0)
        ok(gmin > 0.999, "%s: a pure shift: |T|^2 = Q at every frequency (min gain / rho %.5f)",
           label, gmin);
    fftwf_free(r);
    fftwf_free(c);
    fftwf_free(filt);
    free(gain);

    sk_image_free(o);
    free(v);
    sk_resample_noise_clear(&m);
    sk_kernel_table_clear(&kt);
    setup_free(&s);
}

static void check_identity(void)
{
    sk_resample_noise m;
    is_int(sk_resample_noise_at(&m, NULL, NULL, NULL, 0, 0, 10, 10), 0, "no map: the identity");
    ok(m.identity && m.rho == 1.0 && m.q0 == 1.0, "identity: rho = Q(0) = 1");
    double tr, ti;
    sk_resample_noise_transfer(&m, 1.0, 2.0, &tr, &ti);
    ok(tr == 1.0 && ti == 0.0, "identity: T = 1");
    sk_resample_noise_clear(&m);
    /* a grid equal to the input's: every pixel a copy */
    setup s;
    setup_make(&s, 0.0, 0.0, 0.0, 1.0);
    sk_kernel_table kt;
    sk_kernel_table_init(&kt, SK_KERNEL_LANCZOS3);
    is_int(sk_resample_noise_at(&m, &kt, sk_grid_map, &s.map, 0, 0, OUT, OUT), 0,
           "the input's own grid");
    is_near(m.rho, 1.0, 1e-6, "own grid: per-pixel factor 1");
    is_near(m.q0, 1.0, 1e-6, "own grid: white (Q(0) = 1)");
    sk_resample_noise_transfer(&m, 2.0, -1.0, &tr, &ti);
    ok(fabs(tr - 1.0) < 1e-4 && fabs(ti) < 1e-4, "own grid: T = 1 (%.6f%+.6fi)", tr, ti);
    sk_resample_noise_clear(&m);
    sk_kernel_table_clear(&kt);
    setup_free(&s);
}

/* A map that cannot place output pixels with x >= limit (a WCS domain). */
typedef struct partial_map {
    sk_grid_psf *pair;
    double limit;
} partial_map;

static int partial_map_fn(void *ctx, long n, const double *x, const double *y, double *xi,
                          double *yi)
{
    partial_map *pm = ctx;
    for (long k = 0; k < n; k++)
        if (x[k] >= pm->limit)
            return sk_error(SK_EINPUT, "map: (%.1f, %.1f) beyond the domain", x[k], y[k]);
    return sk_grid_map(pm->pair, n, x, y, xi, yi);
}

static void check_partial_domain(void)
{
    setup s;
    setup_make(&s, 0.3, 0.8, 0.0, 1.0);
    sk_kernel_table kt;
    sk_kernel_table_init(&kt, SK_KERNEL_LANCZOS3);
    sk_resample_noise whole, half, none;
    sk_resample_noise_at(&whole, &kt, sk_grid_map, &s.map, R0, R0, OUT - R0, OUT - R0);
    partial_map pm = {&s.map, 0.5 * OUT};
    is_int(sk_resample_noise_at(&half, &kt, partial_map_fn, &pm, R0, R0, OUT - R0, OUT - R0), 0,
           "a map that places only half the region: a model all the same");
    ok(!half.identity && fabs(half.rho - whole.rho) < 1e-6 && fabs(half.q0 - whole.q0) < 1e-6,
       "from the pixels it places (a shift: the same model, rho %.4f)", half.rho);
    pm.limit = -1.0;
    is_int(sk_resample_noise_at(&none, &kt, partial_map_fn, &pm, R0, R0, OUT - R0, OUT - R0), 0,
           "a map that places nothing: no error");
    ok(none.identity, "and the plane counts as not resampled");
    sk_resample_noise_clear(&whole);
    sk_resample_noise_clear(&half);
    sk_resample_noise_clear(&none);
    sk_kernel_table_clear(&kt);
    setup_free(&s);
}

int main(void)
{
    tap_plan(38);
    check_partial_domain();
    check_identity();
    check_case("half-pixel shift", 0.5, 0.5, 0.0, 1.0, 0.02, 0.01);
    check_case("shift (0.3, 0.8)", 0.3, 0.8, 0.0, 1.0, 0.02, 0.01);
    check_case("rotation 7 deg", 0.3, 0.8, 7.0, 1.0, 0.02, 0.02);
    check_case("finer grid, rotation 20 deg", 0.2, 0.1, 20.0, 0.8, 0.02, 0.02);
    check_case("coarser grid, rotation 10 deg", 0.4, 0.7, 10.0, 1.6, 0.02, 0.02);
    sk_fft_cleanup();
    return tap_done();
}
