/* look_stretch.c: display stretches of pixel values fitted to a sample of an image: asinh, IRAF's zscale and a percentile-linear one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "numeric/stats.h"
#include "skystack/error.h"
#include "skystack/look.h"

static const char *const names[] = {"asinh", "zscale", "linear"};

int sk_stretch_from_name(const char *name)
{
    for (int k = 0; name && k < 3; k++)
        if (strcmp(name, names[k]) == 0)
            return k;
    return -1;
}

const char *sk_stretch_name(int stretch)
{
    return stretch >= 0 && stretch < 3 ? names[stretch] : NULL;
}

/* Up to `nsample` finite values of v, evenly spaced, sorted; their count. */
static long sample(const float *v, long n, long nsample, double **out)
{
    if (nsample < 16)
        nsample = 16;
    long step = n > nsample ? n / nsample : 1;
    double *s = malloc(sizeof *s * (size_t)(n / step + 1));
    if (!s)
        return -1;
    long m = 0;
    for (long i = 0; i < n; i += step)
        if (isfinite(v[i]))
            s[m++] = v[i];
    qsort(s, (size_t)m, sizeof *s, sk_cmp_double);
    *out = s;
    return m;
}

static double percentile(const double *sorted, long m, double q)
{
    double pos = q * (double)(m - 1);
    long k = (long)floor(pos);
    if (k >= m - 1)
        return sorted[m - 1];
    return sorted[k] + (pos - (double)k) * (sorted[k + 1] - sorted[k]);
}

/* IRAF zscale on a sorted sample: a line fitted to value against rank,
 * rejecting points beyond 2.5 sigma (and their neighbours) for at most 5
 * rounds; the limits are median -/+ slope / contrast over the ranks. */
static void zscale(const double *s, long m, double *z1, double *z2)
{
    const double contrast = 0.25, krej = 2.5;
    double median = m % 2 ? s[m / 2] : 0.5 * (s[m / 2 - 1] + s[m / 2]);
    long center = m / 2;
    char *bad = calloc((size_t)m, 1);
    double slope = 0, icept = median;
    long ngood = m, minpix = m / 2 > 5 ? m / 2 : 5;
    for (int iter = 0; bad && iter < 5 && ngood >= minpix; iter++) {
        double sx = 0, sy = 0, sxx = 0, sxy = 0, cnt = 0;
        for (long i = 0; i < m; i++)
            if (!bad[i]) {
                double x = (double)(i - center);
                sx += x; sy += s[i]; sxx += x * x; sxy += x * s[i]; cnt += 1;
            }
        double det = cnt * sxx - sx * sx;
        if (cnt < 2 || det <= 0)
            break;
        slope = (cnt * sxy - sx * sy) / det;
        icept = (sy - slope * sx) / cnt;
        double ss = 0;
        for (long i = 0; i < m; i++)
            if (!bad[i]) {
                double r = s[i] - (icept + slope * (double)(i - center));
                ss += r * r;
            }
        double sigma = sqrt(ss / cnt), lim = krej * sigma;
        long before = ngood;
        for (long i = 0; i < m; i++) {
            double r = s[i] - (icept + slope * (double)(i - center));
            if (!bad[i] && fabs(r) > lim) {
                bad[i] = 1;
                if (i > 0) bad[i - 1] = 1;
                if (i + 1 < m) bad[i + 1] = 1;
            }
        }
        ngood = 0;
        for (long i = 0; i < m; i++)
            ngood += !bad[i];
        if (ngood == before)
            break;
    }
    free(bad);
    if (ngood < minpix) {
        *z1 = s[0];
        *z2 = s[m - 1];
        return;
    }
    slope /= contrast;
    *z1 = fmax(s[0], median - (double)center * slope);
    *z2 = fmin(s[m - 1], median + (double)(m - 1 - center) * slope);
}

int sk_stretch_fit(const float *v, long n, int kind, double soften_sigma, long nsample,
                   sk_stretch_map *out)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    if (kind < 0 || kind > SK_STRETCH_LINEAR)
        return sk_error(SK_EINPUT, "unknown stretch %d", kind);
    double *s = NULL;
    long m = sample(v, n, nsample, &s);
    if (m < 0)
        return sk_error(SK_EIO, "stretch: out of memory");
    if (m == 0) {
        free(s);
        return sk_error(SK_EINPUT, "stretch: the image has no finite pixel value");
    }
    if (kind == SK_STRETCH_ZSCALE) {
        zscale(s, m, &out->lo, &out->hi);
    } else if (kind == SK_STRETCH_LINEAR) {
        out->lo = percentile(s, m, 0.005);
        out->hi = percentile(s, m, 0.995);
    } else {
        out->hi = percentile(s, m, 0.998);
        double median, sigma;
        sk_median_mad(s, m, &median, &sigma); /* s is overwritten */
        out->sky = out->lo = median;
        out->beta = (soften_sigma > 0 ? soften_sigma : 3.0) * (sigma > 0 ? sigma : 1.0);
        double top = asinh((out->hi - out->sky) / out->beta);
        out->norm = top > 0 ? 1.0 / top : 1.0;
    }
    if (!(out->hi > out->lo))
        out->hi = out->lo + 1.0;
    free(s);
    return SK_OK;
}

double sk_stretch_apply(const sk_stretch_map *m, double v)
{
    double t;
    if (!isfinite(v))
        return 0.0;
    if (m->kind == SK_STRETCH_ASINH)
        t = asinh((v - m->sky) / m->beta) * m->norm;
    else
        t = (v - m->lo) / (m->hi - m->lo);
    return t < 0 ? 0 : t > 1 ? 1 : t;
}
