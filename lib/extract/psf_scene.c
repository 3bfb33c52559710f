/* psf_scene.c: many point sources at once: their PSF stamps, the image of their models, and their fluxes fitted together by Gauss-Seidel sweeps (each flux over the pixels within the fit radius of its source, every other model subtracted), on the threads in bands of rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/psf.h"
#include "core/parallel.h"
#include "core/vectorise.h"
#include "psf_priv.h"
#include "psf_internal.h"
#include "psf_scene_priv.h"

void psf_scene_free(psf_scene *s)
{
    free(s->stamp);
    free(s->cx);
    free(s->cy);
    free(s->x);
    free(s->y);
    free(s->flux);
    free(s->live);
    memset(s, 0, sizeof *s);
}

typedef struct {
    const sk_psf *psf;
    psf_scene *s;
    long first;
} stamp_job;

static int stamp_one(long i, void *u)
{
    stamp_job *J = u;
    psf_scene *s = J->s;
    long k = J->first + i, mm = (long)s->m * s->m;
    s->live[k] = 0;
    if (!isfinite(s->x[k]) || !isfinite(s->y[k]))
        return SK_OK;
    double *p = malloc(sizeof *p * (size_t)mm);
    if (!p)
        return sk_error(SK_EIO, "PSF scene: out of memory");
    int st = sk_psf_image(J->psf, s->x[k], s->y[k], s->m, p);
    if (st == SK_EINPUT) {
        /* a model that cannot be made there (sums to 0): no stamp */
        sk_error_clear();
        st = SK_OK;
    } else if (!st) {
        float *o = s->stamp + (size_t)k * (size_t)mm;
        for (long q = 0; q < mm; q++)
            o[q] = (float)p[q];
        s->cx[k] = lround(s->x[k]);
        s->cy[k] = lround(s->y[k]);
        s->live[k] = 1;
    }
    free(p);
    return st;
}

/* The arrays of s (s->n sources so far, s->stamp NULL or of s->cap
 * stamps) grown to n sources. The stamps' memory grows by a quarter
 * more than asked: the second pass adds sources to a scene of many
 * thousands, whose stamps would otherwise be copied at each addition.
 * On failure s is freed. */
static int scene_grow(psf_scene *s, long n)
{
    size_t nn = (size_t)(n ? n : 1), mm = (size_t)s->m * (size_t)s->m;
    float *ok = s->stamp;
    if (!ok || n > s->cap) {
        size_t cap = nn + nn / 4;
        ok = realloc(s->stamp, sizeof *ok * cap * mm);
        if (ok) {
            s->stamp = ok;
            s->cap = (long)cap;
        }
    }
#define GROW(f)                                                  \
    do {                                                         \
        void *q = ok ? realloc(s->f, sizeof *s->f * nn) : NULL;  \
        if (q)                                                   \
            s->f = q;                                            \
        else                                                     \
            ok = NULL;                                           \
    } while (0)
    GROW(cx);
    GROW(cy);
    GROW(x);
    GROW(y);
    GROW(flux);
    GROW(live);
#undef GROW
    if (!ok) {
        psf_scene_free(s);
        return sk_error(SK_EIO, "PSF scene: out of memory for %ld stamps", n);
    }
    return SK_OK;
}

typedef struct {
    stamp_job j;
    const long *k;
} todo_job;

static int stamp_todo(long i, void *u)
{
    todo_job *J = u;
    return stamp_one(J->k[i], &J->j);
}

int psf_scene_extend(psf_scene *s, const sk_psf *psf, long n, const double *x, const double *y,
                     const double *flux, int threads)
{
    long n0 = s->n;
    s->m = sk_psf_stamp_size(psf);
    int st = scene_grow(s, n0 + n);
    if (st)
        return st;
    s->n = n0 + n;
    for (long k = 0; k < n; k++) {
        s->x[n0 + k] = x[k];
        s->y[n0 + k] = y[k];
        s->flux[n0 + k] = flux && isfinite(flux[k]) ? flux[k] : 0.0;
    }
    stamp_job J = {psf, s, n0};
    st = sk_parallel_for_each(n, threads, stamp_one, &J);
    if (st)
        psf_scene_free(s);
    return st;
}

int psf_scene_make(const sk_psf *psf, long n, const double *x, const double *y, const double *flux,
                   int threads, float *reuse, psf_scene *s)
{
    memset(s, 0, sizeof *s);
    s->stamp = reuse;
    return psf_scene_extend(s, psf, n, x, y, flux, threads);
}

int psf_scene_remake(const sk_psf *psf, long n, const double *x, const double *y, const double *flux,
                     psf_scene *prev, const long *from, int threads, psf_scene *s)
{
    memset(s, 0, sizeof *s);
    s->m = sk_psf_stamp_size(psf);
    s->stamp = prev->stamp;
    s->cap = prev->cap;
    prev->stamp = NULL;
    prev->cap = 0;
    int st = prev->m == s->m ? scene_grow(s, n > prev->n ? n : prev->n) : SK_EINPUT;
    if (st == SK_EINPUT) {
        /* another stamp size: nothing to take */
        free(s->stamp);
        s->stamp = NULL;
        s->cap = 0;
        return psf_scene_make(psf, n, x, y, flux, threads, NULL, s);
    }
    if (st)
        return st;
    size_t mm = (size_t)s->m * (size_t)s->m;
    long *todo = malloc(sizeof *todo * (size_t)(n ? n : 1)), ntodo = 0;
    if (!todo) {
        psf_scene_free(s);
        return sk_error(SK_EIO, "PSF scene: out of memory for %ld stamps", n);
    }
    s->n = n;
    /* from the last to the first: a stamp moves up to its place over
       stamps already moved or not taken */
    for (long k = n - 1; k >= 0; k--) {
        long i = from ? from[k] : -1;
        s->x[k] = x[k];
        s->y[k] = y[k];
        s->flux[k] = flux && isfinite(flux[k]) ? flux[k] : 0.0;
        if (i >= 0 && i <= k && prev->live[i] && prev->x[i] == x[k] && prev->y[i] == y[k]) {
            if (i != k)
                memcpy(s->stamp + (size_t)k * mm, s->stamp + (size_t)i * mm, sizeof *s->stamp * mm);
            s->cx[k] = prev->cx[i];
            s->cy[k] = prev->cy[i];
            s->live[k] = 1;
        } else {
            todo[ntodo++] = k;
        }
    }
    st = sk_parallel_for_each(ntodo, threads, stamp_todo, &(todo_job){{psf, s, 0}, todo});
    free(todo);
    if (st)
        psf_scene_free(s);
    return st;
}

int psf_scene_take(psf_scene *from, psf_scene *to)
{
    memset(to, 0, sizeof *to);
    to->m = from->m;
    to->stamp = from->stamp;
    to->cap = from->cap;
    from->stamp = NULL;
    from->cap = 0;
    int st = scene_grow(to, from->n);
    if (st)
        return st;
    to->n = from->n;
    for (long k = 0; k < from->n; k++) {
        to->cx[k] = from->cx[k];
        to->cy[k] = from->cy[k];
        to->x[k] = from->x[k];
        to->y[k] = from->y[k];
        to->flux[k] = from->flux[k];
        to->live[k] = from->live[k];
    }
    return SK_OK;
}

/* The sources of a scene in bands of rows, for work on the threads that
 * does not depend on their count: band b holds the live sources whose
 * stamp centre row lies in [b h, (b + 1) h) (the first and the last band
 * also those beyond the image), in increasing index order. With h > m,
 * the stamps of two sources in bands two apart share no row: the even
 * bands can be worked on at once, then the odd ones. */
typedef struct scene_bands {
    long nb, h;
    long *first; /* nb + 1: band b's sources are idx[first[b] .. first[b + 1]) */
    long *idx;
} scene_bands;

static long band_of(const scene_bands *b, long cy)
{
    long i = cy < 0 ? 0 : cy / b->h;
    return i < b->nb ? i : b->nb - 1;
}

static void bands_free(scene_bands *b)
{
    free(b->first);
    free(b->idx);
    memset(b, 0, sizeof *b);
}

static int bands_make(const psf_scene *s, const uint8_t *which, long img_h, scene_bands *b)
{
    b->h = s->m + 1 > 32 ? s->m + 1 : 32;
    b->nb = img_h / b->h + 1;
    b->first = calloc((size_t)b->nb + 1, sizeof *b->first);
    b->idx = malloc(sizeof *b->idx * (size_t)(s->n ? s->n : 1));
    long *at = malloc(sizeof *at * (size_t)b->nb);
    if (!b->first || !b->idx || !at) {
        free(at);
        bands_free(b);
        return sk_error(SK_EIO, "PSF scene: out of memory for %ld sources", s->n);
    }
    for (long k = 0; k < s->n; k++)
        if (s->live[k] && (!which || which[k]))
            b->first[band_of(b, s->cy[k]) + 1]++;
    for (long i = 0; i < b->nb; i++)
        b->first[i + 1] += b->first[i];
    memcpy(at, b->first, sizeof *at * (size_t)b->nb);
    for (long k = 0; k < s->n; k++)
        if (s->live[k] && (!which || which[k]))
            b->idx[at[band_of(b, s->cy[k])]++] = k;
    free(at);
    return SK_OK;
}

/* Work on each band of one parity (0: even, 1: odd) on the threads, then
 * on those of the other. */
typedef int (*band_fn)(long band, void *user);

typedef struct {
    long parity;
    band_fn fn;
    void *user;
} parity_job;

static int parity_one(long i, void *u)
{
    parity_job *J = u;
    return J->fn(2 * i + J->parity, J->user);
}

static int bands_run(const scene_bands *b, int threads, band_fn fn, void *user)
{
    int st = SK_OK;
    for (long parity = 0; parity < 2 && !st; parity++) {
        parity_job J = {parity, fn, user};
        st = sk_parallel_for_each((b->nb - parity + 1) / 2, threads, parity_one, &J);
    }
    return st;
}

/* The part of source k's stamp r_px at most from its centre pixel:
 * stamp columns [*i0, *i1), rows [*j0, *j1), clipped to the stamp and to
 * the w x h image; the image pixel of stamp pixel (i, j) is (ox + i,
 * oy + j). r_px >= m: the whole stamp. */
static void stamp_clip(const psf_scene *s, long k, long w, long h, int r_px, int *i0, int *i1, int *j0,
                       int *j1, long *ox, long *oy)
{
    int m = s->m, a = m / 2 - r_px > 0 ? m / 2 - r_px : 0, e = m / 2 + r_px + 1 < m ? m / 2 + r_px + 1 : m;
    *ox = s->cx[k] - m / 2;
    *oy = s->cy[k] - m / 2;
    *i0 = *ox + a < 0 ? (int)-*ox : a;
    *j0 = *oy + a < 0 ? (int)-*oy : a;
    *i1 = *ox + e > w ? (int)(w - *ox) : e;
    *j1 = *oy + e > h ? (int)(h - *oy) : e;
}

/* o[i] += f * q[i], i < n (element-wise: the same sums in every clone). */
SK_VECTORISE static void row_add(float *restrict o, const float *restrict q, float f, int n)
{
    for (int i = 0; i < n; i++)
        o[i] += f * q[i];
}

/* img += f * stamp k, over the stamp's part on the image. */
static void stamp_add(const psf_scene *s, long k, float f, float *img, long w, long h)
{
    int i0, i1, j0, j1;
    long ox, oy;
    stamp_clip(s, k, w, h, s->m, &i0, &i1, &j0, &j1, &ox, &oy);
    const float *p = s->stamp + (size_t)k * (size_t)s->m * (size_t)s->m;
    for (int j = j0; j < j1; j++)
        row_add(img + (oy + j) * w + ox + i0, p + (long)j * s->m + i0, f, i1 - i0);
}

typedef struct {
    const psf_scene *s;
    const scene_bands *b;
    double sign;
    float *img;
    long w, h;
} paint_job;

static int paint_band(long band, void *u)
{
    paint_job *J = u;
    const psf_scene *s = J->s;
    for (long t = J->b->first[band]; t < J->b->first[band + 1]; t++) {
        long k = J->b->idx[t];
        if (s->flux[k] != 0)
            stamp_add(s, k, (float)(J->sign * s->flux[k]), J->img, J->w, J->h);
    }
    return SK_OK;
}

int psf_scene_paint(const psf_scene *s, const uint8_t *which, double sign, float *img, long w, long h,
                    int threads)
{
    scene_bands b;
    int st = bands_make(s, which, h, &b);
    if (st)
        return st;
    paint_job J = {s, &b, sign, img, w, h};
    st = bands_run(&b, threads, paint_band, &J);
    bands_free(&b);
    return st;
}

/* The fit of the fluxes: each source's weights over the pixels of its
 * stamp within rfit of its position (the stamp's value over the
 * variance on usable pixels of positive variance, else 0), on a box of
 * side 2 r + 1 about its centre pixel. */
typedef struct {
    psf_scene *s;
    const sk_image *img;
    const float *var;
    double rfit;
    int r;          /* ceil(rfit), at most m / 2 */
    float *wt;      /* n boxes of (2 r + 1)^2 */
    double *den;    /* sum of the weights times the stamp: the normal matrix's diagonal */
    float *resid;
    const scene_bands *b;
    long *moving;   /* per band */
    double *pend;   /* flux changes not yet taken out of resid */
} fit_job;

/* A flux change below this fraction of the flux's noise error waits, and
 * adds to the next, before the model's stamp is taken out of the
 * residual (the fluxes stay exact; the residual lags by less than it). */
#define DEFER 0.01

static int fit_weights(long k, void *u)
{
    fit_job *J = u;
    psf_scene *s = J->s;
    long w = J->img->width, h = J->img->height, side = 2 * J->r + 1;
    float *o = J->wt + (size_t)k * (size_t)(side * side);
    memset(o, 0, sizeof *o * (size_t)(side * side));
    J->den[k] = 0;
    if (!s->live[k])
        return SK_OK;
    int i0, i1, j0, j1;
    long ox, oy;
    stamp_clip(s, k, w, h, J->r, &i0, &i1, &j0, &j1, &ox, &oy);
    const float *p = s->stamp + (size_t)k * (size_t)s->m * (size_t)s->m;
    int a = s->m / 2 - J->r;
    double sum = 0, r2 = J->rfit * J->rfit;
    for (int j = j0; j < j1; j++)
        for (int i = i0; i < i1; i++) {
            long q = (oy + j) * w + ox + i;
            double dx = (double)(ox + i) - s->x[k], dy = (double)(oy + j) - s->y[k];
            if (dx * dx + dy * dy > r2 || !(J->var[q] > 0) || !psf_pixel_usable(J->img, q))
                continue;
            double pp = p[(long)j * s->m + i];
            float wq = (float)(pp / J->var[q]);
            o[(long)(j - a) * side + (i - a)] = wq;
            sum += (double)wq * pp;
        }
    J->den[k] = sum;
    return SK_OK;
}

/* One Gauss-Seidel step of the sources of a band, in index order. */
static int fit_band(long band, void *u)
{
    fit_job *J = u;
    psf_scene *s = J->s;
    long w = J->img->width, h = J->img->height, side = 2 * J->r + 1, moving = 0;
    int a = s->m / 2 - J->r;
    for (long t = J->b->first[band]; t < J->b->first[band + 1]; t++) {
        long k = J->b->idx[t];
        if (!(J->den[k] > 0))
            continue;
        int i0, i1, j0, j1;
        long ox, oy;
        stamp_clip(s, k, w, h, J->r, &i0, &i1, &j0, &j1, &ox, &oy);
        const float *wk = J->wt + (size_t)k * (size_t)(side * side);
        double sum = 0;
        for (int j = j0; j < j1; j++) {
            const float *rr = J->resid + (oy + j) * w + ox, *ww = wk + (long)(j - a) * side - a;
            for (int i = i0; i < i1; i++)
                sum += (double)(ww[i] * rr[i]);
        }
        /* the residual still holds the change waiting */
        double d = sum / J->den[k] - J->pend[k];
        if (d == 0 || !isfinite(d))
            continue;
        s->flux[k] += d;
        double e = sqrt(J->den[k]), pk = J->pend[k] + d;
        moving += fabs(d) * e > 0.05;
        if (fabs(pk) * e >= DEFER) {
            stamp_add(s, k, (float)-pk, J->resid, w, h);
            pk = 0;
        }
        J->pend[k] = pk;
    }
    J->moving[band] = moving;
    return SK_OK;
}

/* The changes still waiting taken out of the residual. */
static int flush_band(long band, void *u)
{
    fit_job *J = u;
    for (long t = J->b->first[band]; t < J->b->first[band + 1]; t++) {
        long k = J->b->idx[t];
        if (J->pend[k] != 0)
            stamp_add(J->s, k, (float)-J->pend[k], J->resid, J->img->width, J->img->height);
    }
    return SK_OK;
}

int psf_scene_fit(psf_scene *s, const sk_image *img, const float *var, double rfit, int max_sweeps,
                  int threads, float *resid, int *sweeps)
{
    long w = img->width, h = img->height;
    *sweeps = 0;
    int r = (int)ceil(rfit);
    if (r > s->m / 2)
        r = s->m / 2;
    size_t side = 2 * (size_t)r + 1, nn = (size_t)(s->n ? s->n : 1);
    scene_bands b;
    int st = bands_make(s, NULL, h, &b);
    if (st)
        return st;
    fit_job J = {s, img, var, rfit, r, malloc(sizeof(float) * nn * side * side), malloc(sizeof(double) * nn),
                 resid, &b, calloc((size_t)b.nb, sizeof(long)), calloc(nn, sizeof(double))};
    if (!J.wt || !J.den || !J.moving || !J.pend)
        st = sk_error(SK_EIO, "PSF scene: out of memory for the fit of %ld sources", s->n);
    st = st ? st : sk_parallel_for_each(s->n, threads, fit_weights, &J);
    for (long k = 0; !st && k < s->n; k++)
        if (!(J.den[k] > 0))
            s->flux[k] = 0;
    st = st ? st : psf_scene_paint(s, NULL, -1.0, resid, w, h, threads);
    for (int it = 0; !st && it < max_sweeps; it++) {
        /* the sources whose flux changes by more than 5 % of its noise */
        st = bands_run(&b, threads, fit_band, &J);
        long moving = 0;
        for (long i = 0; i < b.nb; i++)
            moving += J.moving[i];
        *sweeps = it + 1;
        if (moving <= s->n / 1000)
            break;
    }
    st = st ? st : bands_run(&b, threads, flush_band, &J);
    bands_free(&b);
    free(J.wt);
    free(J.den);
    free(J.moving);
    free(J.pend);
    return st;
}
