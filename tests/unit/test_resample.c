/* test_resample.c: kernels, output grids, the interpolated pixel mapping
 * against wcslib, and resampling of drawn exposures: flux and surface
 * brightness conserved under rotation and scale change, astrometry kept,
 * per-pixel noise matching the weight map; the resampling loop's
 * instruction-set variants against each other and the rule. */
#include "../tap.h"
#include "coadd_fixture.h"
#include "coadd/direct_priv.h"
#include "coadd/coadd_internal.h"

static void test_kernels(void)
{
    int k;
    ok(sk_kernel_from_name("Lanczos3", &k) == SK_OK && k == SK_KERNEL_LANCZOS3, "lanczos3 by name");
    ok(sk_kernel_from_name("bilinear", &k) == SK_OK && k == SK_KERNEL_BILINEAR, "bilinear by name");
    ok(sk_kernel_from_name("cubic", &k) == SK_EINPUT && strstr(sk_errmsg(), "lanczos2"),
       "unknown kernel refused, naming the known ones");
    is_int(sk_kernel_halfwidth(SK_KERNEL_LANCZOS3), 3, "lanczos3 reaches 3 px");
    is_near(sk_kernel_value(SK_KERNEL_LANCZOS3, 0.0), 1.0, 1e-15, "L3(0) = 1");
    is_near(sk_kernel_value(SK_KERNEL_LANCZOS3, 1.0), 0.0, 1e-15, "L3(1) = 0");
    is_near(sk_kernel_value(SK_KERNEL_LANCZOS3, 0.5), 3 * sin(M_PI / 2) * sin(M_PI / 6) / (M_PI * M_PI / 4),
            1e-12, "L3(0.5) = 3 sin(pi/2) sin(pi/6) / (pi/2)^2");
    is_near(sk_kernel_value(SK_KERNEL_LANCZOS2, 2.5), 0.0, 0.0, "L2 is zero beyond 2");
    sk_kernel_table kt;
    ok(sk_kernel_table_init(&kt, SK_KERNEL_LANCZOS3) == SK_OK, "kernel table");
    double worst_sum = 0, worst_centroid = 0;
    for (int p = 0; p <= SK_KERNEL_PHASES; p += 17) {
        double s = 0, m = 0, f = (double)p / SK_KERNEL_PHASES;
        for (int t = 0; t < kt.taps; t++) {
            s += kt.w[p * SK_KERNEL_STRIDE + t];
            m += kt.w[p * SK_KERNEL_STRIDE + t] * (t - kt.a + 1);
        }
        worst_sum = fmax(worst_sum, fabs(s - 1.0));
        worst_centroid = fmax(worst_centroid, fabs(m - f));
    }
    ok(worst_sum < 1e-6, "tabulated weights sum to 1 at every phase (worst %.2g)", worst_sum);
    ok(worst_centroid < 0.02, "tabulated weights centred on the point (worst %.3g px)", worst_centroid);
    is_near(kt.s2[0], 1.0, 1e-7, "sum of squares is 1 on a pixel");
    ok(kt.s2[SK_KERNEL_PHASES / 2] < 0.8, "sum of squares below 1 between pixels (%.3f)",
       kt.s2[SK_KERNEL_PHASES / 2]);
    sk_kernel_table_clear(&kt);
}

static void test_grids(void)
{
    sk_grid *g;
    ok(sk_grid_tan(150.0, 2.0, 201, 101, 0.25, 0.0, &g) == SK_OK, "TAN grid");
    double x = 100.0, y = 50.0, ra, dec;
    sk_wcs_pix2sky(g->wcs, 1, &x, &y, &ra, &dec);
    is_near(ra, 150.0, 1e-10, "TAN grid centre RA at the centre pixel");
    is_near(dec, 2.0, 1e-10, "TAN grid centre Dec");
    is_near(sk_wcs_pixel_scale_arcsec(g->wcs, x, y), 0.25, 1e-6, "TAN grid scale");
    double x1 = 101.0, ra1, dec1;
    sk_wcs_pix2sky(g->wcs, 1, &x1, &y, &ra1, &dec1);
    ok(ra1 < ra, "east is left (RA decreases along +x)");
    sk_grid_free(g);
    ok(sk_grid_tan(150.0, 95.0, 10, 10, 0.25, 0.0, &g) == SK_EINPUT, "Dec beyond the pole refused");
    ok(sk_grid_tan(150.0, 2.0, 10, 10, -1.0, 0.0, &g) == SK_EINPUT, "negative scale refused");

    /* union of two images offset by 60 arcsec in RA */
    fx_wcs a = {150.0, 2.0, 100.5, 100.5, 0.3, 0.0, 0.0};
    fx_wcs b = {150.0 + 60.0 / 3600.0 / cos(2.0 * M_PI / 180), 2.0, 100.5, 100.5, 0.3, 10.0, 0.0};
    sk_header *ha = fx_header(&a), *hb = fx_header(&b);
    sk_wcs *wa, *wb;
    sk_wcs_from_header(ha, &wa);
    sk_wcs_from_header(hb, &wb);
    const sk_wcs *ws[2] = {wa, wb};
    long wd[2] = {200, 200}, ht[2] = {200, 200};
    ok(sk_grid_union(2, ws, wd, ht, 0.0, &g) == SK_OK, "union grid");
    /* the union spans ~60 + 60 arcsec plus the rotated corners: about 400 x 230 px */
    ok(g->width > 390 && g->width < 430, "union width %ld px covers both (about 400)", g->width);
    ok(g->height > 200 && g->height < 250, "union height %ld px", g->height);
    is_near(sk_wcs_pixel_scale_arcsec(g->wcs, g->width / 2.0, g->height / 2.0), 0.3, 1e-6,
            "union scale = the finest input scale");
    /* every input corner lands inside the union grid */
    int inside = 1;
    for (int i = 0; i < 2; i++) {
        sk_footprint fp;
        sk_wcs_footprint(ws[i], 200, 200, &fp);
        for (int c = 0; c < 4; c++) {
            double cx, cy;
            sk_wcs_sky2pix(g->wcs, 1, &fp.corner_ra_deg[c], &fp.corner_dec_deg[c], &cx, &cy);
            inside &= cx >= -0.5 - 1e-6 && cx <= g->width - 0.5 + 1e-6 && cy >= -0.5 - 1e-6 &&
                      cy <= g->height - 0.5 + 1e-6;
        }
    }
    ok(inside, "every input corner inside the union grid");
    sk_grid_free(g);
    ok(sk_grid_from_wcs(wb, 200, 200, &g) == SK_OK, "grid of an input's WCS");
    double px = 37.0, py = 151.0, r1, d1, r2, d2;
    sk_wcs_pix2sky(g->wcs, 1, &px, &py, &r1, &d1);
    sk_wcs_pix2sky(wb, 1, &px, &py, &r2, &d2);
    ok(fabs(r1 - r2) < 1e-12 && fabs(d1 - d2) < 1e-12, "input grid has the input's WCS");
    sk_grid_free(g);
    sk_wcs_free(wa);
    sk_wcs_free(wb);
    sk_header_free(ha);
    sk_header_free(hb);
}

/* Exact input coordinates of output pixel (x, y) through wcslib. */
static void exact_map(const sk_grid *g, const sk_wcs *in, double x, double y, double *xi, double *yi)
{
    double ra, dec;
    sk_wcs_pix2sky(g->wcs, 1, &x, &y, &ra, &dec);
    sk_wcs_sky2pix(in, 1, &ra, &dec, xi, yi);
}

static void test_pixmap(void)
{
    sk_grid *g;
    sk_grid_tan(150.0, 2.0, 500, 480, 0.27, 0.0, &g);
    fx_wcs iw = {150.01, 2.005, 140.3, 180.7, 0.25, 33.0, 1.5e-5};
    sk_header *h = fx_header(&iw);
    sk_wcs *in;
    ok(sk_wcs_from_header(h, &in) == SK_OK, "SIP input WCS");
    const double tols[2] = {1e-3, 1e-4};
    int steps[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        sk_pixmap *m;
        ok(sk_pixmap_new(g, in, 300, 340, tols[t], &m) == SK_OK, "pixel mapping (tolerance %g)", tols[t]);
        long x0, y0, x1, y1;
        sk_pixmap_box(m, &x0, &y0, &x1, &y1);
        ok(x1 > x0 && y1 > y0 && x0 >= 0 && x1 <= 500 && y1 <= 480, "box [%ld,%ld)x[%ld,%ld)",
           x0, x1, y0, y1);
        steps[t] = sk_pixmap_step(m);
        ok(sk_pixmap_error_px(m) <= tols[t], "measured check-point error %.2g px <= %g (step %d)",
           sk_pixmap_error_px(m), tols[t], steps[t]);
        /* independent check on many pixels that map into the input */
        long w = x1 - x0;
        double *xi = malloc(3 * w * sizeof *xi), *yi = xi + w, *ar = yi + w;
        double worst = 0, worst_area = 0;
        long checked = 0;
        int row_ok = 1;
        for (long y = y0; y < y1; y += 3) {
            row_ok &= sk_pixmap_row(m, y, x0, x1, xi, yi, ar) == SK_OK;
            for (long x = x0; x < x1; x += 5) {
                double ex, ey;
                exact_map(g, in, (double)x, (double)y, &ex, &ey);
                if (ex < -3 || ex > 303 || ey < -3 || ey > 343)
                    continue;
                worst = fmax(worst, hypot(xi[x - x0] - ex, yi[x - x0] - ey));
                /* area ratio from a wide central difference of the exact map */
                double axp, ayp, axm, aym, bxp, byp, bxm, bym;
                exact_map(g, in, x + 0.5, (double)y, &axp, &ayp);
                exact_map(g, in, x - 0.5, (double)y, &axm, &aym);
                exact_map(g, in, (double)x, y + 0.5, &bxp, &byp);
                exact_map(g, in, (double)x, y - 0.5, &bxm, &bym);
                double det = fabs((axp - axm) * (byp - bym) - (bxp - bxm) * (ayp - aym));
                worst_area = fmax(worst_area, fabs(ar[x - x0] / det - 1.0));
                checked++;
            }
        }
        ok(row_ok, "rows mapped");
        ok(checked > 3000, "%ld pixels checked against wcslib", checked);
        ok(worst <= tols[t], "largest interpolation error %.2g px <= %g", worst, tols[t]);
        ok(worst_area < 2e-5, "area ratio within %.2g of the exact Jacobian", worst_area);
        /* (0.27/0.25)^2 = 1.1664 input pixels per output pixel, near the tangent point */
        sk_pixmap_row(m, (y0 + y1) / 2, (x0 + x1) / 2, (x0 + x1) / 2 + 1, xi, yi, ar);
        is_near(ar[0], 0.27 * 0.27 / (0.25 * 0.25), 0.01, "area ratio = (0.27/0.25)^2 near the centre");
        /* bounds of rows [y0+40, y0+90) hold every mapped coordinate */
        double bx0, bx1, by0, by1;
        ok(sk_pixmap_input_bounds(m, y0 + 40, y0 + 90, &bx0, &bx1, &by0, &by1) == SK_OK,
           "input bounds of a band");
        int inside = 1;
        for (long y = y0 + 40; y < y0 + 90; y++) {
            sk_pixmap_row(m, y, x0, x1, xi, yi, ar);
            for (long x = 0; x < w; x++)
                inside &= xi[x] >= bx0 - 1e-9 && xi[x] <= bx1 + 1e-9 && yi[x] >= by0 - 1e-9 &&
                          yi[x] <= by1 + 1e-9;
        }
        ok(inside, "band bounds [%.1f,%.1f]x[%.1f,%.1f] hold every mapped pixel", bx0, bx1, by0, by1);
        free(xi);
        sk_pixmap_free(m);
    }
    ok(steps[1] <= steps[0], "a tighter tolerance gives denser nodes (%d then %d px)", steps[0], steps[1]);

    /* an input on the other side of the sky does not overlap */
    fx_wcs far = {330.0, -2.0, 100, 100, 0.25, 0.0, 0.0};
    sk_header *hf = fx_header(&far);
    sk_wcs *wf;
    sk_wcs_from_header(hf, &wf);
    sk_pixmap *m;
    ok(sk_pixmap_new(g, wf, 200, 200, 1e-3, &m) == SK_OK, "mapping of a far input");
    long a0, b0, a1, b1;
    sk_pixmap_box(m, &a0, &b0, &a1, &b1);
    ok(a1 == a0, "far input: empty box");
    sk_pixmap_free(m);
    sk_wcs_free(wf);
    sk_header_free(hf);
    sk_wcs_free(in);
    sk_header_free(h);
    sk_grid_free(g);
}

/* Stars drawn on an input, resampled onto a rotated grid of another
 * scale: total fluxes and centroids against the truth. */
static void flux_case(const char *label, double out_scale, double rotation, double sip, int kernel)
{
    fx_star stars[25];
    int ns = fx_star_grid(150.0, 2.0, 5, 14.0, 1e4, stars);
    fx_wcs iw = {150.0, 2.0, 160.5, 160.5, 0.26, 4.0, sip};
    sk_image *img = fx_exposure(320, 320, &iw, stars, ns, 0.45, 0.0, 1, 60000.0);
    long gw = (long)(90.0 / out_scale), gh = gw;
    sk_grid *g;
    sk_grid_tan(150.0 + 0.3 / 3600, 2.0 - 0.2 / 3600, gw, gh, out_scale, rotation, &g);
    sk_image *out;
    int rc = sk_resample_image(img, NULL, 1.0, g, kernel, 1e-3, 2, &out);
    ok(rc == SK_OK, "%s: resampled (%s)", label, rc ? sk_errmsg() : "");
    if (rc) {
        sk_image_free(img);
        sk_grid_free(g);
        return;
    }
    double worst_flux = 0, worst_pos = 0;
    int measured = 0;
    double r_ap = 7.0 * 0.45 / out_scale;
    for (int k = 0; k < ns; k++) {
        double x, y;
        sk_wcs_sky2pix(g->wcs, 1, &stars[k].ra_deg, &stars[k].dec_deg, &x, &y);
        int complete;
        double f = fx_aperture(out->sci, out->weight, gw, gh, x, y, r_ap, &complete);
        if (!complete)
            continue;
        double cx, cy;
        fx_centroid(out->sci, gw, gh, x, y, r_ap, &cx, &cy);
        worst_flux = fmax(worst_flux, fabs(f / stars[k].flux - 1.0));
        worst_pos = fmax(worst_pos, hypot(cx - x, cy - y));
        measured++;
    }
    ok(measured >= 9, "%s: %d stars measured", label, measured);
    ok(worst_flux < 0.005, "%s: total fluxes within %.2g%% of truth (< 0.5%%)", label, 100 * worst_flux);
    ok(worst_pos < 0.05, "%s: centroids within %.3f px of the true positions (< 0.05)", label, worst_pos);
    sk_image_free(out);
    sk_image_free(img);
    sk_grid_free(g);
}

static void test_flux(void)
{
    flux_case("smaller pixels, 30 deg", 0.2, 30.0, 0.0, SK_KERNEL_LANCZOS3);
    flux_case("larger pixels, -50 deg, SIP", 0.33, -50.0, 1e-5, SK_KERNEL_LANCZOS3);
    flux_case("lanczos2, 12 deg", 0.24, 12.0, 1e-5, SK_KERNEL_LANCZOS2);
    flux_case("bilinear, 75 deg", 0.22, 75.0, 0.0, SK_KERNEL_BILINEAR);

    /* surface brightness: a flat field of 100 ADU per input pixel */
    fx_wcs iw = {150.0, 2.0, 100.5, 100.5, 0.26, 0.0, 1e-5};
    sk_image *img = fx_exposure(200, 200, &iw, NULL, 0, 0.5, 0.0, 1, 60000.0);
    for (long i = 0; i < 200 * 200; i++)
        img->sci[i] = 100.0f;
    sk_grid *g;
    sk_grid_tan(150.0, 2.0, 150, 150, 0.3, 20.0, &g);
    sk_image *out;
    ok(sk_resample_image(img, NULL, 1.0, g, SK_KERNEL_LANCZOS3, 1e-3, 1, &out) == SK_OK,
       "flat field resampled");
    sk_pixmap *m;
    sk_pixmap_new(g, img->wcs, 200, 200, 1e-3, &m);
    double worst = 0;
    long n = 0;
    double xi[150], yi[150], ar[150];
    long bx0, by0, bx1, by1;
    sk_pixmap_box(m, &bx0, &by0, &bx1, &by1);
    for (long y = by0; y < by1; y++) {
        sk_pixmap_row(m, y, bx0, bx1, xi, yi, ar);
        for (long x = bx0; x < bx1; x++) {
            if (!(out->weight[y * 150 + x] > 0))
                continue;
            worst = fmax(worst, fabs(out->sci[y * 150 + x] / (100.0 * ar[x - bx0]) - 1.0));
            n++;
        }
    }
    ok(n > 15000, "%ld flat-field pixels", n);
    ok(worst < 1e-5, "flat field: value = level x pixel-area ratio (worst %.2g)", worst);
    sk_pixmap_free(m);
    sk_image_free(out);
    sk_image_free(img);
    sk_grid_free(g);
}

/* Pure noise: the per-pixel scatter matches the weight map, and sums over
 * smooth windows much wider than the kernel have VARCORR times the summed
 * per-pixel variance (four noise realisations per geometry). */
static void test_noise(void)
{
    fx_wcs iw = {150.0, 2.0, 400.5, 400.5, 0.26, 0.0, 0.0};
    const double scales[3] = {0.26, 0.2, 0.35};
    const double rots[3] = {17.0, 0.0, 41.0};
    const double sig = 6.0;
    const long R = 24;
    for (int c = 0; c < 3; c++) {
        sk_grid *g;
        sk_grid_tan(150.0 + 0.13 / 3600, 2.0 + 0.07 / 3600, (long)(190 / scales[c]),
                    (long)(190 / scales[c]), scales[c], rots[c], &g);
        double s2 = 0, w_sum2 = 0, w_var = 0, varcorr = 0;
        long n = 0, nwin = 0;
        int all_ok = 1;
        for (int seed = 1; seed <= 4; seed++) {
            sk_image *img = fx_exposure(800, 800, &iw, NULL, 0, 0.5, 5.0, (uint64_t)seed, 60000.0);
            sk_image *out;
            if (sk_resample_image(img, NULL, 1.0, g, SK_KERNEL_LANCZOS3, 1e-3, 2, &out) != SK_OK) {
                all_ok = 0;
                sk_image_free(img);
                continue;
            }
            for (long i = 0; i < g->width * g->height; i++)
                if (out->weight[i] > 0) {
                    s2 += (double)out->sci[i] * out->sci[i] * out->weight[i];
                    n++;
                }
            all_ok &= sk_header_get_double(out->header, "VARCORR", &varcorr) == 1;
            for (long cy = R; cy + R < g->height; cy += R)
                for (long cx = R; cx + R < g->width; cx += R) {
                    double sum = 0.0, var = 0.0;
                    int full = 1;
                    for (long y = cy - R; y <= cy + R && full; y++)
                        for (long x = cx - R; x <= cx + R; x++) {
                            float wv = out->weight[y * g->width + x];
                            if (!(wv > 0)) {
                                full = 0;
                                break;
                            }
                            double gw = exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (2 * sig * sig));
                            sum += gw * out->sci[y * g->width + x];
                            var += gw * gw / wv;
                        }
                    if (!full)
                        continue;
                    w_sum2 += sum * sum;
                    w_var += var;
                    nwin++;
                }
            sk_image_free(out);
            sk_image_free(img);
        }
        ok(all_ok, "noise resampled (scale %.2f, %.0f deg), VARCORR %.3f", scales[c], rots[c], varcorr);
        double chi = sqrt(s2 / n);
        ok(n > 800000 && fabs(chi - 1.0) < 0.03,
           "scale %.2f: rms of value*sqrt(weight) = %.4f over %ld px (1 within 3%%)", scales[c], chi, n);
        double ratio = w_sum2 / w_var;
        ok(nwin > 1000 && fabs(ratio / varcorr - 1.0) < 0.1,
           "scale %.2f: window-sum variance / summed pixel variances = %.3f over %ld windows, "
           "VARCORR %.3f (within 10%%)", scales[c], ratio, nwin, varcorr);
        if (c == 1)
            ok(varcorr > 1.5, "finer output pixels: strongly correlated (VARCORR %.2f)", varcorr);
        if (c == 2)
            ok(varcorr < 1.0, "coarser output pixels: anti-correlated (VARCORR %.2f)", varcorr);
        sk_grid_free(g);
    }
}

/* sk_band_resample against its plain C loop bit for bit, and both against
 * the rule, at positions of every kind (random, on input pixels, with a
 * phase that rounds up to the next pixel, NaN, off the input, area 0):
 * uncovered positions give empty entries without flags, an input pixel's
 * position its value times the area ratio, others the kernel sum of the
 * taps (within float rounding) when no flagged pixel is under them. */
static void test_band_variants(void)
{
    enum { W = 203, H = 97, N = 6000 };
    sk_kernel_table kt;
    sk_band b;
    memset(&b, 0, sizeof b);
    if (sk_kernel_table_init(&kt, SK_KERNEL_LANCZOS3) || sk_band_alloc(&b, 0, 0, W, H, W, H)) {
        ok(0, "band and kernel table");
        ok(0, "band and kernel table");
        return;
    }
    unsigned seed = 4242;
#define RND() (seed = seed * 1103515245u + 12345u, (double)(seed >> 8) / 16777216.0)
    for (long i = 0; i < W * H; i++) {
        b.sci[i] = (float)(100.0 * RND() - 20.0);
        b.var[i] = (float)(0.5 + RND());
        b.flags[i] = RND() < 0.002 ? SK_FLAG_COSMIC : 0;
    }
    sk_band_dilate(&b, 3);
    b.noise_factor = 1.1;
    b.poisson_per_area = 0.5;
    static double xi[N], yi[N], ar[N];
    for (long k = 0; k < N; k++) {
        xi[k] = -4.0 + (W + 7.0) * RND();
        yi[k] = -4.0 + (H + 7.0) * RND();
        ar[k] = 0.8 + 0.4 * RND();
        if (k % 7 == 0) { /* on an input pixel */
            xi[k] = floor(xi[k]);
            yi[k] = floor(yi[k]);
        }
        if (k % 11 == 0) /* the phase rounds to the next pixel */
            xi[k] = floor(xi[k]) + 1.0 - 0.3 / SK_KERNEL_PHASES;
        if (k % 13 == 0)
            ar[k] = 0.0;
        if (k % 17 == 0)
            yi[k] = NAN;
    }
    static sk_stack_entry e1[N], e2[N];
    long n1 = sk_band_resample(&kt, &b, N, xi, yi, ar, e1, 1);
    long n2 = sk_band_resample_plain(&kt, &b, N, xi, yi, ar, e2, 1);
    int same = n1 == n2, rule = 1;
    long ntaps = 0, ncopy = 0;
    for (long k = 0; k < N; k++) {
        same &= memcmp(&e1[k].in, &e2[k].in, sizeof e1[k].in) == 0 && e1[k].flags == e2[k].flags;
        double x = xi[k], y = yi[k];
        int cov = x >= -0.5 && x < W - 0.5 && y >= -0.5 && y < H - 0.5 && ar[k] > 0.0;
        if (!cov) {
            rule &= e1[k].in.cweight == 0.0f && e1[k].flags == 0;
            continue;
        }
        long ix = (long)floor(x), iy = (long)floor(y);
        int px = (int)((x - ix) * SK_KERNEL_PHASES + 0.5), py = (int)((y - iy) * SK_KERNEL_PHASES + 0.5);
        if (px == SK_KERNEL_PHASES)
            px = 0, ix++;
        if (py == SK_KERNEL_PHASES)
            py = 0, iy++;
        if (px == 0 && py == 0) {
            long i = iy * W + ix;
            if (!b.flags[i]) {
                rule &= e1[k].in.value == (float)(b.sci[i] * ar[k]) && e1[k].in.cweight > 0.0f;
                ncopy++;
            }
            continue;
        }
        if (ix < 2 || ix > W - 4 || iy < 2 || iy > H - 4) {
            rule &= e1[k].in.cweight == 0.0f && (e1[k].flags & SK_FLAG_EDGE);
            continue;
        }
        double sum = 0.0, mag = 0.0;
        uint16_t fl = 0;
        for (int r = 0; r < 6; r++)
            for (int c = 0; c < 6; c++) {
                long i = (iy - 2 + r) * W + (ix - 2 + c);
                double t = (double)kt.w[(size_t)px * SK_KERNEL_STRIDE + c] *
                           kt.w[(size_t)py * SK_KERNEL_STRIDE + r] * b.sci[i];
                sum += t;
                mag += fabs(t);
                fl |= b.flags[i];
            }
        if (fl) {
            rule &= e1[k].in.cweight == 0.0f && (e1[k].flags & SK_FLAG_COSMIC);
            continue;
        }
        rule &= fabs(e1[k].in.value - sum * ar[k]) <= 1e-5 * mag * ar[k] + 1e-6 && e1[k].in.cweight > 0.0f;
        ntaps++;
    }
#undef RND
    ok(same, "resampling: the dispatched loop (AVX2 where the CPU has it) equals the plain one bit "
       "for bit at %d positions of every kind", N);
    ok(rule && ntaps > 2000 && ncopy > 300, "resampling follows the rule: empty where not covered, "
       "%ld copies of input pixels, %ld kernel sums within float rounding", ncopy, ntaps);
    sk_band_free(&b);
    sk_kernel_table_clear(&kt);
}

int main(void)
{
    tap_plan(83);
    test_kernels();
    test_grids();
    test_pixmap();
    test_flux();
    test_noise();
    test_band_variants();
    return tap_done();
}
