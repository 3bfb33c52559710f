/* sim_defects.c: what makes simulated exposures imperfect: cosmic rays,
 * bleed trails of saturated stars, dead and hot columns, hot pixels and
 * satellite trails. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "sim_priv.h"
#include "sim_internal.h"

/* Stream of the detector's fixed defects. */
enum { STREAM_DETECTOR = 7 };

void sim_hits_free(sim_hits *h)
{
    free(h->ray);
    free(h->x);
    free(h->y);
    free(h->electrons);
    memset(h, 0, sizeof *h);
}

static int hits_add(sim_hits *h, int32_t ray, int32_t x, int32_t y, float e)
{
    /* merge with the previous hit of the same ray on the same pixel */
    if (h->n > 0 && h->ray[h->n - 1] == ray && h->x[h->n - 1] == x && h->y[h->n - 1] == y) {
        h->electrons[h->n - 1] += e;
        return SK_OK;
    }
    if (h->n == h->cap) {
        long cap = h->cap ? 2 * h->cap : 256;
        int32_t *r = realloc(h->ray, (size_t)cap * sizeof *r);
        if (r) h->ray = r;
        int32_t *xs = realloc(h->x, (size_t)cap * sizeof *xs);
        if (xs) h->x = xs;
        int32_t *ys = realloc(h->y, (size_t)cap * sizeof *ys);
        if (ys) h->y = ys;
        float *es = realloc(h->electrons, (size_t)cap * sizeof *es);
        if (es) h->electrons = es;
        if (!r || !xs || !ys || !es)
            return sk_error(SK_EIO, "imsim: out of memory for cosmic rays");
        h->cap = cap;
    }
    h->ray[h->n] = ray;
    h->x[h->n] = x;
    h->y[h->n] = y;
    h->electrons[h->n] = e;
    h->n++;
    return SK_OK;
}

int sim_cosmics(const sk_sim_params *p, sk_rng *r, double *electrons, long width, long height,
                sim_hits *hits)
{
    double mean = p->cosmic_rate_per_mpix_s * (double)width * (double)height * 1e-6 * p->exptime_s;
    uint64_t n = sk_rng_poisson(r, mean);
    for (uint64_t k = 0; k < n; k++) {
        /* Most hits are short: track length exponential with a 1.5 px mean
         * (under a pixel: one pixel), 600-3000 electrons per pixel crossed. */
        double x = sk_rng_range(r, -0.5, (double)width - 0.5);
        double y = sk_rng_range(r, -0.5, (double)height - 0.5);
        double len = -1.5 * log(1.0 - sk_rng_uniform(r));
        double ang = sk_rng_range(r, 0.0, 2.0 * M_PI);
        double dedx = sk_rng_range(r, 600.0, 3000.0);
        long steps = len < 1.0 ? 1 : (long)ceil(len * 10.0);
        double step_e = dedx * (len < 1.0 ? 1.0 : len) / (double)steps;
        for (long s = 0; s < steps; s++) {
            double t = steps == 1 ? 0.0 : len * ((double)s + 0.5) / (double)steps;
            long px = lround(x + t * cos(ang)), py = lround(y + t * sin(ang));
            if (px < 0 || py < 0 || px >= width || py >= height)
                continue;
            electrons[py * width + px] += step_e;
            int rc = hits_add(hits, (int32_t)k, (int32_t)px, (int32_t)py, (float)step_e);
            if (rc)
                return rc;
        }
    }
    return SK_OK;
}

void sim_bleed(double *electrons, long width, long height, double full_well_e)
{
    for (long i = 0; i < width; i++) {
        for (long j = 0; j < height; j++) {
            double *e = &electrons[j * width + i];
            if (*e <= full_well_e)
                continue;
            double excess = *e - full_well_e;
            *e = full_well_e;
            for (int dir = -1; dir <= 1; dir += 2) {
                double left = 0.5 * excess;
                for (long k = j + dir; left > 0.0 && k >= 0 && k < height; k += dir) {
                    double *v = &electrons[k * width + i];
                    double room = full_well_e - *v;
                    if (room <= 0.0)
                        continue;
                    double take = room < left ? room : left;
                    *v += take;
                    left -= take;
                }
            }
        }
    }
}

int sim_defects(const sk_sim_params *p, double *electrons, uint8_t *bad, long width, long height)
{
    sk_rng r;
    sk_rng_init(&r, p->seed, STREAM_DETECTOR, 0);
    for (long c = 0; c < p->bad_columns; c++) {
        long x = (long)(sk_rng_uniform(&r) * (double)width);
        long y0 = (long)(sk_rng_uniform(&r) * 0.8 * (double)height);
        int hot = (c % 2) == 1;
        double dark = sk_rng_range(&r, 2000.0, 20000.0);
        for (long y = y0; y < height; y++) {
            bad[y * width + x] = 1;
            if (electrons)
                electrons[y * width + x] = hot ? electrons[y * width + x] + dark : 0.0;
        }
    }
    for (long k = 0; k < p->hot_pixels; k++) {
        long x = (long)(sk_rng_uniform(&r) * (double)width);
        long y = (long)(sk_rng_uniform(&r) * (double)height);
        double dark = 1000.0 * exp(sk_rng_uniform(&r) * log(100.0)); /* 1e3..1e5 e- */
        bad[y * width + x] = 1;
        if (electrons)
            electrons[y * width + x] += dark;
    }
    return SK_OK;
}

void sim_satellite(double *model, long width, long height, long row0, long row1, double x0,
                   double y0, double angle_deg, double fwhm_px, double e_per_px)
{
    double sigma = fwhm_px / (2.0 * sqrt(2.0 * M_LN2));
    double nx = -sin(angle_deg * M_PI / 180.0), ny = cos(angle_deg * M_PI / 180.0); /* normal */
    double amp = e_per_px / (sqrt(2.0 * M_PI) * sigma), reach = 6.0 * sigma;
    if (row1 > height)
        row1 = height;
    for (long j = row0 < 0 ? 0 : row0; j < row1; j++)
        for (long i = 0; i < width; i++) {
            double d = ((double)i - x0) * nx + ((double)j - y0) * ny;
            if (fabs(d) < reach)
                model[j * width + i] += amp * exp(-0.5 * d * d / (sigma * sigma));
        }
}
