/* Tests of background matching (bgmatch.c): injected per-input offsets and
 * gradients on partly overlapping inputs with stars of different seeing
 * are recovered to < 0.1 sigma (relative to their mean), constants too;
 * an input that overlaps nothing gets nothing; bands; header keywords. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../coaddx_test.h"
#include "skystack/coaddx.h"
#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/image.h"
#include "../tap.h"
#include "coadd/coaddx_internal.h"

#define W 320
#define H 256
#define NIN 5
#define NPIX ((long)W * H)

static const double fwhms[NIN] = {2.5, 3.5, 4.5, 3.0, 5.0};
/* injected offsets: constant (sigma units) and gradients per pixel */
static const double off0[NIN] = {3.0, -2.0, 5.0, 0.5, -4.0};
static const double offx[NIN] = {0.010, -0.004, 0.0, 0.006, -0.008};
static const double offy[NIN] = {-0.005, 0.008, 0.003, 0.0, 0.002};
static const long foot_x0[NIN] = {0, 40, 80, 120, 0};
static const long foot_x1[NIN] = {200, 240, 280, 320, 320};

typedef struct inputs {
    float *sci[NIN], *wgt[NIN];
    uint16_t *flg[NIN];
    tpsf psf[NIN];
    sk_aligned_input in[NIN];
} inputs;

static double true_off(int j, double x, double y)
{
    return off0[j] + offx[j] * (x - 0.5 * (W - 1)) + offy[j] * (y - 0.5 * (H - 1));
}

static void make_inputs(inputs *s, int gradients, int isolate_last)
{
    for (int j = 0; j < NIN; j++) {
        s->sci[j] = calloc(NPIX, sizeof(float));
        s->wgt[j] = calloc(NPIX, sizeof(float));
        s->flg[j] = calloc(NPIX, sizeof(uint16_t));
        s->psf[j] = tpsf_moffat(fwhms[j], 3.0);
        for (int k = 0; k < 60; k++) {
            double x = 10.0 + (double)((k * 37) % 300) + 0.3, y = 12.0 + (double)((k * 53) % 230);
            double f = 300.0 * (1 + (k % 7) * (k % 7));
            add_star(&s->psf[j], f, x, y, s->sci[j], W, H);
        }
        add_noise(s->sci[j], NPIX, 1.0, 11, (uint64_t)j);
        long x0 = foot_x0[j], x1 = foot_x1[j], y0 = 0, y1 = H;
        if (j == 4) {
            /* a strip across the others */
            y0 = 100;
            y1 = 170;
            if (isolate_last) {
                y0 = 0;
                y1 = 0;
            }
        }
        for (long y = 0; y < H; y++)
            for (long x = 0; x < W; x++) {
                long i = y * W + x;
                if (x >= x0 && x < x1 && y >= y0 && y < y1) {
                    s->wgt[j][i] = 1.0f;
                    s->sci[j][i] += (float)(gradients ? true_off(j, x, y) : off0[j]);
                } else {
                    s->flg[j][i] = SK_FLAG_EDGE;
                    s->sci[j][i] = 0.0f;
                }
            }
        aligned_whole(&s->in[j], s->sci[j], s->wgt[j], s->flg[j], H, &s->psf[j]);
    }
    if (isolate_last) {
        /* input 4 alone on a region nobody else covers: give it one */
        for (long y = 0; y < 40; y++)
            for (long x = 280; x < W; x++) {
                s->wgt[4][y * W + x] = 1.0f;
                s->flg[4][y * W + x] = 0;
                s->sci[4][y * W + x] = 7.0f;
            }
        for (int j = 0; j < 4; j++)
            for (long y = 0; y < 40; y++)
                for (long x = 280; x < W; x++) {
                    s->wgt[j][y * W + x] = 0.0f;
                    s->flg[j][y * W + x] = SK_FLAG_EDGE;
                }
    }
}

static void free_inputs(inputs *s)
{
    for (int j = 0; j < NIN; j++) {
        free(s->sci[j]);
        free(s->wgt[j]);
        free(s->flg[j]);
    }
}

/* Worst |fit - (truth - mean truth)| over each input's footprint. */
static double worst_error(const sk_bgmatch *bm, const inputs *s, int gradients, int nuse)
{
    double worst = 0.0;
    for (int j = 0; j < nuse; j++)
        for (long y = 0; y < H; y += 3)
            for (long x = 0; x < W; x += 3) {
                if (!(s->wgt[j][y * W + x] > 0.0f))
                    continue;
                double mean = 0.0;
                for (int k = 0; k < nuse; k++)
                    mean += gradients ? true_off(k, x, y) : off0[k];
                mean /= nuse;
                double want = (gradients ? true_off(j, x, y) : off0[j]) - mean;
                double e = fabs(sk_bgmatch_offset(bm, j, x, y) - want);
                if (e > worst) worst = e;
            }
    return worst;
}

int main(void)
{
    tap_plan(20);
    /* ---- planes ----------------------------------------------------------- */
    {
        inputs s;
        make_inputs(&s, 1, 0);
        sk_bgmatch *bm = NULL;
        is_int(sk_bgmatch_new(NIN, W, H, NULL, &bm), 0, "new");
        is_int(sk_bgmatch_add_rows(bm, s.in, 0, H), 0, "all rows at once");
        is_int(sk_bgmatch_solve(bm), 0, "solve");
        double worst = worst_error(bm, &s, 1, NIN);
        tap_diag("planes: worst error of the fitted offsets %.4f sigma", worst);
        ok(worst < 0.1, "injected offsets and gradients recovered to < 0.1 sigma (%.4f)", worst);
        double sum = 0.0, m0 = 0.0, mx = 0.0, my = 0.0;
        for (int j = 0; j < NIN; j++) {
            m0 += off0[j] / NIN;
            mx += offx[j] / NIN;
            my += offy[j] / NIN;
        }
        for (int j = 0; j < NIN; j++) {
            double c, dx, dy;
            sk_bgmatch_plane(bm, j, &c, &dx, &dy);
            sum += c;
            tap_diag("input %d: offset %.4f (true %.4f), gradient %.5f %.5f (true %.5f %.5f), "
                     "%ld cells", j + 1, c, off0[j] - m0, dx, dy, offx[j] - mx, offy[j] - my,
                     sk_bgmatch_ncells(bm, j));
        }
        is_near(sum, 0.0, 1e-6, "anchored: the offsets sum to zero");
        /* after subtraction the inputs agree where they overlap */
        float *row = malloc(sizeof(float) * W);
        double worst_pair = 0.0;
        for (int j = 0; j < NIN; j++) {
            for (long y = 0; y < H; y += 16) {
                memcpy(row, s.sci[j] + y * W, sizeof(float) * W);
                sk_bgmatch_apply_rows(bm, j, y, y + 1, row);
                double e = 0.0;
                for (long x = 0; x < W; x++)
                    e = fmax(e, fabs((double)(s.sci[j][y * W + x] - row[x]) -
                                     sk_bgmatch_offset(bm, j, x, y)));
                if (e > worst_pair) worst_pair = e;
            }
        }
        ok(worst_pair < 1e-4, "apply_rows subtracts the offset");
        free(row);
        sk_header *h = sk_header_new();
        is_int(sk_bgmatch_write_header(bm, h), 0, "header keywords");
        double v;
        int b = 0;
        ok(sk_header_get_bool(h, "BGMATCH", &b) == 1 && b, "BGMATCH = T");
        ok(sk_header_get_double(h, "BGOFF3", &v) == 1 && fabs(v - (off0[2] - 0.5)) < 0.1,
           "BGOFF3 = %.4f", v);
        ok(sk_header_get_double(h, "BGDX1", &v) == 1 && fabs(v - (offx[0] - 0.0008)) < 5e-4,
           "BGDX1 = %.5f", v);
        sk_header_free(h);
        sk_bgmatch_log(bm);

        /* the same fed in bands of 100 rows (not cell multiples) */
        sk_bgmatch *b2 = NULL;
        sk_bgmatch_new(NIN, W, H, NULL, &b2);
        int okb = 1;
        for (long y0 = 0; y0 < H; y0 += 100) {
            long y1 = y0 + 100 < H ? y0 + 100 : H;
            sk_aligned_input band[NIN];
            memcpy(band, s.in, sizeof band);
            for (int j = 0; j < NIN; j++) {
                band[j].sci = s.sci[j] + y0 * W;
                band[j].weight = s.wgt[j] + y0 * W;
                band[j].flags = s.flg[j] + y0 * W;
                band[j].row0 = y0;
                band[j].nrows = y1 - y0;
            }
            okb &= sk_bgmatch_add_rows(b2, band, y0, y1) == 0;
        }
        okb &= sk_bgmatch_solve(b2) == 0;
        double d = 0.0;
        for (int j = 0; j < NIN; j++)
            d = fmax(d, fabs(sk_bgmatch_offset(b2, j, 10, 10) - sk_bgmatch_offset(bm, j, 10, 10)));
        ok(okb && d == 0.0, "bands give the same fit (%.1e)", d);
        is_int(sk_bgmatch_add_rows(b2, s.in, 0, 10), SK_EINPUT, "rows after the end refused");
        sk_bgmatch_free(b2);
        sk_bgmatch_free(bm);
        free_inputs(&s);
    }

    /* ---- constants ------------------------------------------------------ */
    {
        inputs s;
        make_inputs(&s, 0, 0);
        sk_bgmatch_opts o;
        sk_bgmatch_opts_default(&o);
        o.degree = 0;
        sk_bgmatch *bm = NULL;
        sk_bgmatch_new(NIN, W, H, &o, &bm);
        sk_bgmatch_add_rows(bm, s.in, 0, H);
        is_int(sk_bgmatch_solve(bm), 0, "solve for constants");
        double worst = worst_error(bm, &s, 0, NIN);
        tap_diag("constants: worst error %.4f sigma", worst);
        ok(worst < 0.1, "injected constant offsets recovered to < 0.1 sigma (%.4f)", worst);
        sk_bgmatch_free(bm);
        free_inputs(&s);
    }

    /* ---- an input that overlaps nothing ---------------------------------- */
    {
        inputs s;
        make_inputs(&s, 1, 1);
        sk_bgmatch *bm = NULL;
        sk_bgmatch_new(NIN, W, H, NULL, &bm);
        sk_bgmatch_add_rows(bm, s.in, 0, H);
        is_int(sk_bgmatch_solve(bm), 0, "solve with an isolated input");
        is_int(sk_bgmatch_ncells(bm, 4), 0, "the isolated input uses no cell");
        is_near(sk_bgmatch_offset(bm, 4, 300, 20), 0.0, 1e-12, "and gets no offset");
        double worst = worst_error(bm, &s, 1, 4);
        ok(worst < 0.1, "the four others still match to < 0.1 sigma (%.4f)", worst);
        sk_bgmatch_free(bm);
        free_inputs(&s);
    }

    /* ---- bad arguments ---------------------------------------------------- */
    {
        sk_bgmatch *bm = NULL;
        sk_bgmatch_opts o;
        sk_bgmatch_opts_default(&o);
        o.degree = 2;
        is_int(sk_bgmatch_new(3, 10, 10, &o, &bm), SK_EINPUT, "degree 2 refused");
        sk_bgmatch_new(3, 10, 10, NULL, &bm);
        is_int(sk_bgmatch_solve(bm), SK_EINPUT, "solve before the rows refused");
        sk_bgmatch_free(bm);
    }
    return tap_done();
}
