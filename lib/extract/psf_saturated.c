/* psf_saturated.c: the PSF flux and position of each saturated star of a scene fitted to its unsaturated pixels (its wings), its neighbours' models subtracted, for the second detection pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/log.h"
#include "core/parallel.h"
#include "psf_priv.h"
#include "psf_internal.h"
#include "psf_scene_priv.h"
#include "numeric/linsolve.h"

/* A wing fit is credible with at least this many pixels, a flux of at
 * least this many times its error, a reduced chi^2 of at most this, and a
 * position within this many pixels of where it started. */
#define WING_MIN_PIX 12
#define WING_MIN_SNR 20.0
#define WING_MAX_CHI2 4.0
#define WING_MAX_SHIFT_PX 1.5

/* The model's accuracy in the fit's weights (as PSFEx's PSF_ACCURACY):
 * bright wings are 1000 times the noise, where a model right to a percent
 * is not. */
#define WING_ACCURACY 0.02

/* A pixel this many sigmas above the first fit is an unfound neighbour's:
 * left out of the second. */
#define WING_CLIP_SIGMA 4.0

/* At most this many of its neighbours (live sources of the scene within
 * the fit radius) are fitted with a saturated star; a neighbour with less
 * than NB_MIN_USABLE of its model on the fit's pixels (its centre among
 * the saturated pixels: a fragment of the star) is taken for the star's
 * light. */
#define NB_MAX 24
#define NB_MIN_USABLE 0.3

typedef struct wing_job {
    psf_scene *s;
    const sk_psf *psf;
    const sk_image *img;
    const float *var, *resid;
    const uint8_t *saturated;
    double gain, rfit, fwhm;
    psf_satfit *out;
    double *fx, *fy, *ff; /* per source: the fitted position and flux */
    long *nbi;            /* per source, NB_MAX: its neighbours (-1: none) */
    double *nbf;          /* and their fitted fluxes (0: the star's light) */
} wing_job;

/* One star's pixels and data: pix[t], data d[t] (its own and its
 * neighbours' models added back to the residual), weight w[t], the star's
 * model p[t] and the neighbours' q[j * cap + t]. */
typedef struct wing_pix {
    long *pix;
    double *d, *w, *p, *q;
    long n, cap;
    int nb;
    long nbidx[NB_MAX], absidx[NB_MAX];
    int nabs;
    double sol[2 * (NB_MAX + 1)], ata[(NB_MAX + 1) * (NB_MAX + 1)];
    double *stamp; /* m*m */
} wing_pix;

/* The value of scene stamp k at image pixel (x, y). */
static double stamp_at(const psf_scene *s, long k, long x, long y)
{
    long m = s->m, i = x - (s->cx[k] - m / 2), j = y - (s->cy[k] - m / 2);
    return i >= 0 && j >= 0 && i < m && j < m ? s->stamp[(size_t)k * (size_t)(m * m) + (size_t)(j * m + i)] : 0.0;
}

/* The star's flux at (x, y) and its neighbours' fitted at once to the
 * pixels of P (t with use[t], NULL: all): P->sol[0..nb] the fluxes,
 * P->sol[nb + 1] the star's flux's variance factor; *chi the chi^2; 0 if
 * the model cannot be made or the fit is singular. */
static int wing_eval(const wing_job *J, wing_pix *P, const uint8_t *use, double x, double y, double *chi,
                     long *np)
{
    int m = J->s->m, nt = P->nb + 1;
    if (sk_psf_image(J->psf, x, y, m, P->stamp)) {
        sk_error_clear();
        return 0;
    }
    long w = J->img->width, ox = lround(x) - m / 2, oy = lround(y) - m / 2;
    memset(P->ata, 0, sizeof(double) * (size_t)(nt * nt));
    memset(P->sol, 0, sizeof(double) * (size_t)(2 * nt));
    double f[NB_MAX + 1], yy[2];
    for (long t = 0; t < P->n; t++) {
        long i = P->pix[t] % w - ox, j = P->pix[t] / w - oy;
        P->p[t] = i >= 0 && j >= 0 && i < m && j < m ? P->stamp[j * m + i] : 0.0;
        if (use && !use[t])
            continue;
        f[0] = P->p[t];
        for (int c = 0; c < P->nb; c++)
            f[c + 1] = P->q[c * P->cap + t];
        yy[0] = P->d[t];
        yy[1] = 0;
        sk_normal_add(P->ata, P->sol, nt, 2, f, P->w[t], yy);
    }
    P->sol[nt] = 1.0; /* the second right-hand side: e_0 */
    if (sk_cholesky_solve(P->ata, P->sol, nt, 2, 1e-12))
        return 0;
    *chi = 0;
    *np = 0;
    for (long t = 0; t < P->n; t++)
        if (!use || use[t]) {
            double r = P->d[t] - P->sol[0] * P->p[t];
            for (int c = 0; c < P->nb; c++)
                r -= P->sol[c + 1] * P->q[c * P->cap + t];
            *chi += P->w[t] * r * r;
            (*np)++;
        }
    return 1;
}

/* Pattern search of the position of least chi^2 from (*x, *y), within
 * WING_MAX_SHIFT_PX of source k0's position, steps from `step` down to
 * 0.01 px; P->sol, *chi at the end. */
static int wing_search(const wing_job *J, long k0, wing_pix *P, const uint8_t *use, double *x, double *y,
                       double step, double *chi, long *np)
{
    if (!wing_eval(J, P, use, *x, *y, chi, np))
        return 0;
    for (int evals = 0; step >= 0.01 && evals < 300;) {
        double bx = *x, by = *y, bc = *chi;
        for (int dj = -1; dj <= 1; dj++)
            for (int di = -1; di <= 1; di++) {
                double tc, tx = *x + di * step - J->s->x[k0], ty = *y + dj * step - J->s->y[k0];
                long tn;
                if ((di || dj) && tx * tx + ty * ty <= WING_MAX_SHIFT_PX * WING_MAX_SHIFT_PX &&
                    wing_eval(J, P, use, *x + di * step, *y + dj * step, &tc, &tn) && tc < bc) {
                    bx = *x + di * step;
                    by = *y + dj * step;
                    bc = tc;
                }
                evals++;
            }
        if (bx == *x && by == *y)
            step *= 0.5;
        *x = bx;
        *y = by;
        *chi = bc;
    }
    return wing_eval(J, P, use, *x, *y, chi, np);
}

/* The pixels of the wing fit of source k: usable (not saturated), not
 * directly above or below a saturated pixel, with a variance, within the radius R of its position; its
 * neighbours within R (NB_MAX of them at most), those fitted with it in
 * P->nbidx, those taken for its light in P->absidx. */
static void wing_pixels(const wing_job *J, long k, double R, wing_pix *P)
{
    const sk_image *img = J->img;
    const psf_scene *s = J->s;
    long w = img->width, h = img->height, r = (long)ceil(R);
    P->nb = 0;
    for (long j = 0; j < s->n && P->nb < NB_MAX; j++) {
        double dx = s->x[j] - s->x[k], dy = s->y[j] - s->y[k];
        if (j != k && s->live[j] && dx * dx + dy * dy <= R * R)
            P->nbidx[P->nb++] = j;
    }
    P->n = 0;
    for (long y = lround(s->y[k]) - r; y <= lround(s->y[k]) + r; y++)
        for (long x = lround(s->x[k]) - r; x <= lround(s->x[k]) + r; x++) {
            double dx = (double)x - s->x[k], dy = (double)y - s->y[k];
            if (x < 0 || y < 0 || x >= w || y >= h || dx * dx + dy * dy > R * R)
                continue;
            long q = y * w + x;
            if (!psf_pixel_usable(img, q) || !(J->var[q] > 0))
                continue;
            /* the end of a bleed trail: charge spilled along the column */
            if ((y > 0 && (img->flags[q - w] & SK_FLAG_SATURATED)) ||
                (y + 1 < h && (img->flags[q + w] & SK_FLAG_SATURATED)))
                continue;
            double d = J->resid[q] + (s->live[k] ? s->flux[k] * stamp_at(s, k, x, y) : 0.0);
            for (int c = 0; c < P->nb; c++) {
                double v = stamp_at(s, P->nbidx[c], x, y);
                P->q[c * P->cap + P->n] = v;
                d += s->flux[P->nbidx[c]] * v;
            }
            P->pix[P->n] = q;
            P->d[P->n] = d;
            P->w[P->n] = 1.0 / (J->var[q] + (J->gain > 0 && d > 0 ? d / J->gain : 0.0) +
                                WING_ACCURACY * WING_ACCURACY * d * d);
            P->n++;
        }
    /* the neighbours with too little of their model on these pixels: the
       star's own light (their columns out of the fit, in P->absidx) */
    int nb = 0;
    P->nabs = 0;
    for (int c = 0; c < P->nb; c++) {
        double sum = 0;
        for (long t = 0; t < P->n; t++)
            sum += P->q[c * P->cap + t];
        if (sum < NB_MIN_USABLE) {
            P->absidx[P->nabs++] = P->nbidx[c];
            continue;
        }
        if (nb != c)
            memmove(P->q + nb * P->cap, P->q + c * P->cap, sizeof *P->q * (size_t)P->n);
        P->nbidx[nb++] = P->nbidx[c];
    }
    P->nb = nb;
}

static int wing_one(long k, void *u)
{
    wing_job *J = u;
    psf_scene *s = J->s;
    psf_satfit *F = J->out;
    F->r_px[k] = 0;
    F->ferr[k] = NAN;
    F->credible[k] = 0;
    if (!J->saturated[k] || !isfinite(s->x[k]) || !isfinite(s->y[k]))
        return SK_OK;
    const sk_image *img = J->img;
    long w = img->width, h = img->height, m = s->m, half = m / 2, nsat = 0;
    for (long y = lround(s->y[k]) - half; y <= lround(s->y[k]) + half; y++)
        for (long x = lround(s->x[k]) - half; x <= lround(s->x[k]) + half; x++)
            nsat += x >= 0 && y >= 0 && x < w && y < h && (img->flags[y * w + x] & SK_FLAG_SATURATED);
    double R = fmin((double)half - 1.0, fmax(J->rfit, sqrt((double)nsat / M_PI) + 2.0 * J->fwhm));
    long cap = (2 * (long)ceil(R) + 1) * (2 * (long)ceil(R) + 1);
    wing_pix *P = calloc(1, sizeof *P);
    uint8_t *use = malloc((size_t)cap);
    if (P) {
        P->cap = cap;
        P->pix = malloc(sizeof *P->pix * (size_t)cap);
        P->d = malloc(sizeof *P->d * (3 + NB_MAX) * (size_t)cap);
        P->stamp = malloc(sizeof *P->stamp * (size_t)(m * m));
    }
    if (!P || !P->pix || !P->d || !P->stamp || !use) {
        if (P) {
            free(P->pix);
            free(P->d);
            free(P->stamp);
        }
        free(P);
        free(use);
        return sk_error(SK_EIO, "saturated stars' wings: out of memory");
    }
    P->w = P->d + cap;
    P->p = P->d + 2 * cap;
    P->q = P->d + 3 * cap;
    wing_pixels(J, k, R, P);
    double x = s->x[k], y = s->y[k], chi = 0;
    long np = 0;
    int ok = P->n >= WING_MIN_PIX + P->nb && wing_search(J, k, P, NULL, &x, &y, 0.5, &chi, &np);
    if (ok) {
        /* an unfound neighbour's light in the wings: out of the fit */
        for (long t = 0; t < P->n; t++) {
            double r = P->d[t] - P->sol[0] * P->p[t];
            for (int c = 0; c < P->nb; c++)
                r -= P->sol[c + 1] * P->q[c * P->cap + t];
            use[t] = !(r > 0 && r * r * P->w[t] > WING_CLIP_SIGMA * WING_CLIP_SIGMA);
        }
        ok = wing_search(J, k, P, use, &x, &y, 0.1, &chi, &np);
    }
    int nt = P->nb + 1;
    if (ok && np >= WING_MIN_PIX + nt) {
        double a = P->sol[0], err = sqrt(P->sol[nt]);
        double chi2 = chi / (double)(np - 2 - nt), shift = hypot(x - s->x[k], y - s->y[k]);
        F->credible[k] = a >= WING_MIN_SNR * err && chi2 <= WING_MAX_CHI2 && shift < WING_MAX_SHIFT_PX - 0.05;
        F->ferr[k] = err / a * fmax(1.0, sqrt(chi2));
        F->r_px[k] = R;
        J->fx[k] = x;
        J->fy[k] = y;
        J->ff[k] = a;
        long *nbi = J->nbi + k * NB_MAX;
        double *nbf = J->nbf + k * NB_MAX;
        int e = 0;
        for (int c = 0; c < P->nb; c++, e++) {
            nbi[e] = P->nbidx[c];
            nbf[e] = P->sol[c + 1];
        }
        for (int c = 0; c < P->nabs && e < NB_MAX; c++, e++) {
            nbi[e] = P->absidx[c];
            nbf[e] = 0.0;
        }
    }
    free(P->pix);
    free(P->d);
    free(P->stamp);
    free(P);
    free(use);
    return SK_OK;
}

void psf_satfit_free(psf_satfit *f)
{
    free(f->credible);
    free(f->r_px);
    memset(f, 0, sizeof *f);
}

int psf_scene_fit_saturated(psf_scene *s, const sk_psf *psf, const sk_image *img, const float *level,
                            const float *var, double gain, const uint8_t *saturated, double rfit, int threads,
                            psf_satfit *out)
{
    long n = s->n, npix = img->width * img->height;
    memset(out, 0, sizeof *out);
    out->n = n;
    out->credible = calloc((size_t)(n ? n : 1), 1);
    out->r_px = malloc(sizeof *out->r_px * 5 * (size_t)(n ? n : 1));
    float *res = malloc(sizeof *res * (size_t)npix);
    if (!out->credible || !out->r_px || !res) {
        free(res);
        psf_satfit_free(out);
        return sk_error(SK_EIO, "saturated stars' wings: out of memory");
    }
    out->ferr = out->r_px + n;
    for (long i = 0; i < npix; i++)
        res[i] = img->sci[i] - (level ? level[i] : 0.0f);
    psf_scene_paint(s, NULL, -1.0, res, img->width, img->height);
    wing_job J = {.s = s, .psf = psf, .img = img, .var = var, .resid = res, .saturated = saturated,
                  .gain = gain, .rfit = rfit, .fwhm = psf->fwhm_px, .out = out,
                  .fx = out->r_px + 2 * n, .fy = out->r_px + 3 * n, .ff = out->r_px + 4 * n};
    J.nbi = malloc(sizeof *J.nbi * NB_MAX * (size_t)(n ? n : 1));
    J.nbf = malloc(sizeof *J.nbf * NB_MAX * (size_t)(n ? n : 1));
    for (long i = 0; J.nbi && i < NB_MAX * n; i++)
        J.nbi[i] = -1;
    int st = J.nbi && J.nbf ? sk_parallel_for_each(n, threads, wing_one, &J)
                            : sk_error(SK_EIO, "saturated stars' wings: out of memory");
    free(res);
    long m = s->m;
    double *p = st ? NULL : malloc(sizeof *p * (size_t)(m * m));
    if (!st && !p)
        st = sk_error(SK_EIO, "saturated stars' wings: out of memory");
    for (long k = 0; !st && k < n; k++) {
        out->nsat += saturated[k] != 0;
        if (!out->credible[k])
            continue;
        if (sk_psf_image(psf, J.fx[k], J.fy[k], (int)m, p)) {
            sk_error_clear();
            out->credible[k] = 0;
            continue;
        }
        float *o = s->stamp + (size_t)k * (size_t)(m * m);
        for (long i = 0; i < m * m; i++)
            o[i] = (float)p[i];
        s->x[k] = J.fx[k];
        s->y[k] = J.fy[k];
        s->cx[k] = lround(J.fx[k]);
        s->cy[k] = lround(J.fy[k]);
        s->flux[k] = J.ff[k];
        s->live[k] = 1;
        out->ncred++;
        for (int c = 0; c < NB_MAX; c++)
            if (J.nbi[k * NB_MAX + c] >= 0)
                s->flux[J.nbi[k * NB_MAX + c]] = fmax(0.0, J.nbf[k * NB_MAX + c]);
    }
    free(p);
    free(J.nbi);
    free(J.nbf);
    if (st)
        psf_satfit_free(out);
    return st;
}
