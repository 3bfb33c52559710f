/* psf_neighbours.c: the light of PSF stars' neighbours taken out of the stars' stamps: the neighbours found among the sources, their fluxes fitted with the current model, their model images subtracted. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/psf.h"
#include "psf_priv.h"
#include "extract_internal.h"
#include "psf_internal.h"

typedef struct {
    long idx;
    double x, y;
} npos;

static int cmp_npos_y(const void *a, const void *b)
{
    const npos *p = a, *q = b;
    if (p->y != q->y)
        return (p->y > q->y) - (p->y < q->y);
    return (p->idx > q->idx) - (p->idx < q->idx);
}

/* A source's position: its windowed centroid, else its isophotal one. */
static int source_pos(const sk_source *s, double *x, double *y)
{
    *x = s->xwin;
    *y = s->ywin;
    if (!isfinite(*x) || !isfinite(*y)) {
        *x = s->x;
        *y = s->y;
    }
    return isfinite(*x) && isfinite(*y);
}

void psf_nbrs_free(psf_nbrs *nb)
{
    free(nb->first);
    free(nb->x);
    free(nb->y);
    free(nb->flux);
    memset(nb, 0, sizeof *nb);
}

int psf_nbrs_find(const sk_source_list *l, const long *star, long nstar, double reach_px,
                  psf_nbrs *nb)
{
    memset(nb, 0, sizeof *nb);
    npos *all = malloc(sizeof *all * (size_t)(l->n + 1));
    nb->first = malloc(sizeof *nb->first * (size_t)(nstar + 1));
    if (!all || !nb->first) {
        free(all);
        psf_nbrs_free(nb);
        return sk_error(SK_EIO, "PSF: out of memory for the stars' neighbours");
    }
    long na = 0;
    for (long k = 0; k < l->n; k++)
        if (source_pos(&l->src[k], &all[na].x, &all[na].y))
            all[na++].idx = k;
    qsort(all, (size_t)na, sizeof *all, cmp_npos_y);
    long cap = 0, n = 0;
    int st = SK_OK;
    for (long k = 0; k < nstar && !st; k++) {
        nb->first[k] = n;
        double sx, sy;
        if (!source_pos(&l->src[star[k]], &sx, &sy))
            continue;
        long lo = 0, hi = na;
        while (lo < hi) {
            long mid = (lo + hi) / 2;
            if (all[mid].y < sy - reach_px)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (long q = lo; q < na && all[q].y <= sy + reach_px; q++) {
            if (all[q].idx == star[k] || fabs(all[q].x - sx) > reach_px)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                double *nx = realloc(nb->x, sizeof *nx * (size_t)cap);
                if (nx)
                    nb->x = nx;
                double *ny = nx ? realloc(nb->y, sizeof *ny * (size_t)cap) : NULL;
                if (ny)
                    nb->y = ny;
                if (!nx || !ny) {
                    st = sk_error(SK_EIO, "PSF: out of memory for the stars' neighbours");
                    break;
                }
            }
            nb->x[n] = all[q].x;
            nb->y[n] = all[q].y;
            n++;
        }
    }
    free(all);
    nb->first[nstar] = n;
    nb->nstar = nstar;
    nb->n = n;
    nb->flux = st ? NULL : calloc((size_t)(n + 1), sizeof *nb->flux);
    if (!st && !nb->flux)
        st = sk_error(SK_EIO, "PSF: out of memory for the stars' neighbours");
    if (st)
        psf_nbrs_free(nb);
    return st;
}

int psf_nbrs_fit(psf_nbrs *nb, const sk_psf *model, const sk_image *img, const float *level,
                 const float *var, const int32_t *segmap, double gain, int threads)
{
    if (!nb->n)
        return SK_OK;
    double *err = malloc(sizeof *err * (size_t)nb->n);
    if (!err)
        return sk_error(SK_EIO, "PSF: out of memory for the neighbours' fluxes");
    int st = sk_psf_photometry(model, img, level, var, segmap, gain, nb->n, nb->x, nb->y, threads,
                               nb->flux, err, NULL);
    /* a neighbour the model cannot fit (no pixels, a negative flux: a
       noise peak or a defect) is left as it is */
    for (long t = 0; !st && t < nb->n; t++)
        if (!(nb->flux[t] > 0) || !isfinite(nb->flux[t]))
            nb->flux[t] = 0;
    free(err);
    return st;
}

int psf_nbrs_subtract(const psf_nbrs *nb, long k, const sk_psf *model, int m, long ix, long iy,
                      const float *d0, const float *vb, float *d)
{
    long mm = (long)m * m;
    memcpy(d, d0, sizeof *d * (size_t)mm);
    if (nb->first[k] == nb->first[k + 1])
        return SK_OK;
    double *p = malloc(sizeof *p * (size_t)mm);
    if (!p)
        return sk_error(SK_EIO, "PSF: out of memory for the neighbours' images");
    int st = SK_OK;
    for (long t = nb->first[k]; t < nb->first[k + 1] && !st; t++) {
        if (!(nb->flux[t] > 0))
            continue;
        /* the neighbour's image is centred on its nearest pixel: only the
           part of it on the star's stamp is made */
        long ox = lround(nb->x[t]) - ix, oy = lround(nb->y[t]) - iy;
        if (labs(ox) >= m || labs(oy) >= m)
            continue;
        int i0 = ox < 0 ? (int)-ox : 0, j0 = oy < 0 ? (int)-oy : 0;
        int nw = m - (int)labs(ox), nh = m - (int)labs(oy);
        st = psf_image_window(model, nb->x[t], nb->y[t], m, i0, j0, nw, nh, p);
        if (st)
            break;
        for (int j = j0; j < j0 + nh; j++) {
            long sj = j + oy;
            for (int i = i0; i < i0 + nw; i++) {
                long si = i + ox, q = sj * m + si;
                if (!(vb[q] > 0))
                    continue;
                d[q] -= (float)(nb->flux[t] * p[(long)(j - j0) * nw + (i - i0)]);
            }
        }
    }
    free(p);
    return st;
}
