/* residual.c: the second detection pass of crowded fields: in rounds, every fitted PSF so far subtracted, detection again on the residual, the new sources that are not residuals of subtracted stars added, and every PSF flux re-fitted with the neighbours' models subtracted. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/log.h"
#include "core/parallel.h"
#include "numeric/stats.h"
#include "extract_internal.h"
#include "psf_internal.h"
#include "psf_scene_priv.h"

/* Sources of the first pass (crowding, stamps), per source. */
static int source_xy(const sk_source *s, double *x, double *y)
{
    int win = isfinite(s->xwin) && isfinite(s->ywin);
    *x = win ? s->xwin : s->x;
    *y = win ? s->ywin : s->y;
    return isfinite(*x) && isfinite(*y);
}

/* A candidate of the residual wider than this many image FWHMs is
 * structure the models leave (an extended source, nebulosity), not a
 * point source they hid. */
#define EXTENDED 1.6

/* The sources that tell crowding: point-like (clean, no wider than
 * EXTENDED times the image FWHM) and of SNR >= CROWDING_SNR. */
#define CROWDING_SNR 20

double sk_crowding(const sk_source_list *l, long *npoint, long *nblended)
{
    const unsigned unclean = SK_SRC_SATURATED | SK_SRC_ARTIFACT | SK_SRC_WIN_FAILED;
    long n = 0, blended = 0;
    for (long k = 0; k < l->n; k++) {
        const sk_source *s = &l->src[k];
        if ((s->flags & unclean) || !(s->snr >= CROWDING_SNR) || !(s->fwhm_px <= EXTENDED * l->fwhm_px))
            continue;
        n++;
        blended += (s->flags & SK_SRC_BLENDED) != 0;
    }
    if (npoint)
        *npoint = n;
    if (nblended)
        *nblended = blended;
    return n ? (double)blended / (double)n : 0.0;
}

/* The automatic second pass needs this many blended sources at least
 * (a share of a handful says nothing of crowding). */
#define MIN_BLENDED 20

int sk_crowded(const sk_source_list *l, double crowding_min)
{
    long n = 0, blended = 0;
    double c = sk_crowding(l, &n, &blended);
    return blended >= MIN_BLENDED && c - 2 * sqrt(c * (1 - c) / (double)n) >= crowding_min;
}

/* The image `img` with its science pixels replaced by sci (the same
 * weight, flags and header). */
static sk_image with_pixels(const sk_image *img, float *sci)
{
    sk_image r = *img;
    r.sci = sci;
    return r;
}

/* Whole-image maps made by rows on the threads: out = a - b (b NULL: a
 * copy of a); with fl, fl = img's flags, BAD added at the ends of
 * saturated columns (bleed_end). */
typedef struct pix_job {
    const sk_image *img;
    const float *a, *b;
    float *out;
    uint16_t *fl;
} pix_job;

static int bleed_end(const sk_image *img, long i);

static int pix_rows(long y0, long y1, void *user)
{
    const pix_job *J = user;
    long w = J->img->width, i0 = y0 * w, i1 = y1 * w;
    if (!J->b)
        memcpy(J->out + i0, J->a + i0, sizeof *J->out * (size_t)(i1 - i0));
    else
        for (long i = i0; i < i1; i++)
            J->out[i] = J->a[i] - J->b[i];
    for (long i = i0; J->fl && i < i1; i++)
        J->fl[i] = bleed_end(J->img, i) ? J->img->flags[i] | SK_FLAG_BAD : J->img->flags[i];
    return SK_OK;
}

static void pix_map(const sk_image *img, const float *a, const float *b, float *out, uint16_t *fl, int threads)
{
    pix_job J = {img, a, b, out, fl};
    (void)sk_parallel_for(img->height, 64, threads, pix_rows, &J); /* pix_rows cannot fail */
}

/* A copy of the science pixels, plus `sign` times the models of the
 * scene's sources with which[k] != 0. malloc'd; NULL: out of memory. */
static float *painted(const sk_image *img, const psf_scene *s, const uint8_t *which, double sign, int threads)
{
    long n = img->width * img->height;
    float *o = malloc(sizeof *o * (size_t)n);
    if (!o)
        return NULL;
    pix_map(img, img->sci, NULL, o, NULL, threads);
    if (psf_scene_paint(s, which, sign, o, img->width, img->height, threads)) {
        free(o);
        return NULL;
    }
    return o;
}

/* The model's fractional error per pixel, measured where the test of the
 * candidates applies it: at each PSF star, the PSF fit of the residual
 * (rimg) at four points 0.7 FWHM from its centre against that of the
 * models (mimg) there; eps^2 the median of (a^2 - noise^2) / A_M^2 over
 * them, scaled to a variance (/ 0.455, the median of chi^2 with one
 * degree of freedom); at least 1 %. */
static int model_eps(const sk_psf *psf, const sk_image *rimg, const sk_image *mimg, const float *level,
                     const float *var, int threads, double *eps)
{
    *eps = 0.01;
    long ns = psf->naccepted, n = 4 * ns;
    if (ns < 3 || !psf->star_x)
        return SK_OK;
    double *b = malloc(sizeof *b * 6 * (size_t)n);
    if (!b)
        return sk_error(SK_EIO, "second pass: out of memory");
    double *x = b, *y = b + n, *a = b + 2 * n, *ae = b + 3 * n, *am = b + 4 * n, *ame = b + 5 * n;
    double d = 0.7 * psf->fwhm_px;
    static const int dx[4] = {1, -1, 0, 0}, dy[4] = {0, 0, 1, -1};
    for (long k = 0; k < ns; k++)
        for (int j = 0; j < 4; j++) {
            x[4 * k + j] = psf->star_x[k] + d * dx[j];
            y[4 * k + j] = psf->star_y[k] + d * dy[j];
        }
    int st = sk_psf_photometry(psf, rimg, level, var, NULL, 0, n, x, y, threads, a, ae, NULL);
    st = st ? st : sk_psf_photometry(psf, mimg, NULL, var, NULL, 0, n, x, y, threads, am, ame, NULL);
    long m = 0;
    for (long i = 0; !st && i < n; i++)
        if (isfinite(a[i]) && isfinite(ae[i]) && am[i] > 0)
            x[m++] = fmax(0.0, a[i] * a[i] - ae[i] * ae[i]) / (am[i] * am[i]);
    if (!st && m >= 8)
        *eps = fmax(0.01, sqrt(sk_median_double(x, m) / 0.455));
    free(b);
    return st;
}

/* The first pass's sources not subtracted (no positive PSF flux): their
 * footprints' bounding boxes on a w*h mask, so that what the second pass
 * finds there (their own light) is not new. NULL: out of memory. */
static uint8_t *unsubtracted_boxes(const sk_source_list *l, const psf_scene *s, long w, long h)
{
    uint8_t *u = calloc((size_t)(w * h), 1);
    if (!u)
        return NULL;
    for (long k = 0; k < l->n; k++) {
        const sk_source *o = &l->src[k];
        if (s->live[k] && s->flux[k] > 0)
            continue;
        for (long y = o->ymin < 0 ? 0 : o->ymin; y <= o->ymax && y < h; y++)
            for (long x = o->xmin < 0 ? 0 : o->xmin; x <= o->xmax && x < w; x++)
                u[y * w + x] = 1;
    }
    return u;
}

/* Is pixel i saturated, or directly above or below a saturated pixel?
 * The latter end a bleed trail (charge spilled along the column, a
 * pixel partly filled) or border a core the model does not follow: on
 * the residual, their light left over joins a star beside them into one
 * object whose centroid is pulled away from the star. */
static int bleed_end(const sk_image *img, long i)
{
    long w = img->width, y = i / w;
    return (img->flags[i] & SK_FLAG_SATURATED) || (y > 0 && (img->flags[i - w] & SK_FLAG_SATURATED)) ||
           (y + 1 < img->height && (img->flags[i + w] & SK_FLAG_SATURATED));
}

/* Is there a saturated pixel within r_px of (x, y)? Then a candidate
 * there may be the light of a saturated star, whose model is fitted to
 * its unsaturated pixels only. */
static int near_saturated(const sk_image *img, double x, double y, double r_px)
{
    long w = img->width, h = img->height;
    for (long j = lround(floor(y - r_px)); j <= lround(ceil(y + r_px)); j++)
        for (long i = lround(floor(x - r_px)); i <= lround(ceil(x + r_px)); i++)
            if (i >= 0 && j >= 0 && i < w && j < h && bleed_end(img, j * w + i) &&
                (i - x) * (i - x) + (j - y) * (j - y) <= r_px * r_px)
                return 1;
    return 0;
}

static _Thread_local const double *sort_x;

static int cmp_by_x(const void *a, const void *b)
{
    double u = sort_x[*(const long *)a], v = sort_x[*(const long *)b];
    return (u > v) - (u < v);
}

/* The live sources of scene s in order of x (n of them in *ord,
 * malloc'd). */
static int scene_by_x(const psf_scene *s, long **ord, long *n)
{
    *n = 0;
    *ord = malloc(sizeof **ord * (size_t)(s->n ? s->n : 1));
    if (!*ord)
        return sk_error(SK_EIO, "second pass: out of memory");
    for (long k = 0; k < s->n; k++)
        if (s->live[k] && isfinite(s->x[k]) && isfinite(s->y[k]))
            (*ord)[(*n)++] = k;
    sort_x = s->x;
    qsort(*ord, (size_t)*n, sizeof **ord, cmp_by_x);
    return SK_OK;
}

/* Is a source of s (ord, n: scene_by_x's) within r_px of (x, y)? */
static int scene_within(const psf_scene *s, const long *ord, long n, double x, double y, double r_px)
{
    long lo = 0, hi = n;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (s->x[ord[mid]] < x - r_px)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (long i = lo; i < n && s->x[ord[i]] <= x + r_px; i++) {
        double dx = s->x[ord[i]] - x, dy = s->y[ord[i]] - y;
        if (dx * dx + dy * dy <= r_px * r_px)
            return 1;
    }
    return 0;
}

/* The largest significance of the pixels of object o of d. */
static double peak_signif(const sk_detection *d, long o)
{
    const sk_object *ob = &d->objects[o];
    float m = 0;
    for (long i = 0; i < ob->npix; i++)
        if (d->signif[ob->pix[i]] > m)
            m = d->signif[ob->pix[i]];
    return m;
}

/* Rounds of the pass at most: detection on the residual of every source
 * found so far, until a round finds nothing new. */
#define MAX_ROUNDS 2


/* A candidate of the residual closer than this many image FWHMs to a
 * source of the first pass is not resolved from it. */
#define CLOSEST 1.0

typedef struct pass_ctx {
    const sk_image *img;
    const sk_extract_params *xp;
    const sk_psf *psf;
    int threads;
    sk_extract_result *r;
    const float *var;
    double rfit;
    double eps;                   /* the model's fractional error */
    int round;                    /* 0: on the first pass's residual */
    psf_scene *next;              /* the final fit's scene, with the final
                                     fluxes, for the next round's first */
    psf_scene first;              /* the first pass's sources */
    sk_detection *det2;           /* the detection on the residual */
    sk_source_list *cand;         /* its objects measured on the residual */
    long *keep;                   /* det2 object indices of the new sources */
    long *keep_scene;             /* their indices in the provisional scene */
    double *keep_x, *keep_y, *keep_flux, *keep_err;
    long nkeep;
} pass_ctx;

/* The candidates of the residual that are new sources: not in the box of
 * an unsubtracted source nor within 1 FWHM of a saturated pixel, not
 * saturated nor wider than EXTENDED FWHMs, not within CLOSEST FWHMs of a
 * source before them, and of PSF-fit flux on the residual above the
 * detection threshold times the noise and the model's error there (eps
 * times the fit of the models at that point) in quadrature. Sharpness
 * (ARTIFACT) does not reject them: beside over-subtracted neighbours and
 * saturated pixels a star's shape on the residual says little (a flag
 * then, as measured again); the residuals of the first pass's artifacts
 * lie within CLOSEST of them. */
static int choose_new(pass_ctx *C, const sk_image *rimg, const sk_image *mimg)
{
    const sk_source_list *L = C->cand;
    long n = L->n, w = C->img->width, h = C->img->height;
    double eps = C->eps;
    int st = SK_OK;
    uint8_t *box = st ? NULL : unsubtracted_boxes(C->r->sources, &C->first, w, h);
    double *b = malloc(sizeof *b * 6 * (size_t)(n ? n : 1));
    C->keep = malloc(sizeof *C->keep * (size_t)(n ? n : 1));
    if (!st && (!box || !b || !C->keep))
        st = sk_error(SK_EIO, "second pass: out of memory");
    double *x = b, *y = b + n, *a = b + 2 * n, *ae = b + 3 * n, *am = b + 4 * n, *ame = b + 5 * n;
    for (long k = 0; !st && k < n; k++)
        source_xy(&L->src[k], &x[k], &y[k]);
    if (!st)
        st = sk_psf_photometry(C->psf, rimg, C->r->background->level, C->var, NULL, 0, n, x, y, C->threads,
                               a, ae, NULL);
    if (!st)
        st = sk_psf_photometry(C->psf, mimg, NULL, C->var, NULL, 0, n, x, y, C->threads, am, ame, NULL);
    if (!st) {
        C->keep_x = malloc(sizeof *C->keep_x * 4 * (size_t)(n ? n : 1));
        if (!C->keep_x)
            st = sk_error(SK_EIO, "second pass: out of memory");
    }
    double T = C->xp->detect.threshold_sigma;
    long nbox = 0, nsharp = 0, nweak = 0, nclose = 0, *ord = NULL, nord = 0;
    st = st ? st : scene_by_x(&C->first, &ord, &nord);
    for (long k = 0; !st && k < n; k++) {
        const sk_source *s = &L->src[k];
        long ix = lround(x[k]), iy = lround(y[k]);
        if (!isfinite(x[k]) || ix < 0 || iy < 0 || ix >= w || iy >= h || !isfinite(a[k]))
            continue;
        if ((box[iy * w + ix] && C->r->detection->segmap[iy * w + ix]) ||
            near_saturated(C->img, x[k], y[k], C->r->fwhm_px)) {
            nbox++;
            continue;
        }
        if ((s->flags & SK_SRC_SATURATED) || !(s->fwhm_px <= EXTENDED * C->r->fwhm_px)) {
            nsharp++;
            continue;
        }
        if (scene_within(&C->first, ord, nord, x[k], y[k], CLOSEST * C->r->fwhm_px)) {
            nclose++;
            continue;
        }
        double model = isfinite(am[k]) && am[k] > 0 ? eps * am[k] : 0;
        double noise = a[k] / peak_signif(C->det2, L->object[k]);
        if (!(a[k] >= T * sqrt(noise * noise + model * model))) {
            nweak++;
            continue;
        }
        ae[k] = noise;
        C->keep_x[C->nkeep] = x[k];
        C->keep[C->nkeep++] = k;
    }
    if (!st) {
        C->keep_y = C->keep_x + n;
        C->keep_flux = C->keep_x + 2 * n;
        C->keep_err = C->keep_x + 3 * n;
        for (long i = 0; i < C->nkeep; i++) {
            C->keep_y[i] = y[C->keep[i]];
            C->keep_flux[i] = a[C->keep[i]];
            C->keep_err[i] = ae[C->keep[i]];
            C->keep[i] = L->object[C->keep[i]];
        }
        sk_debug("%s: second pass: %ld candidates, %ld new; %ld in unsubtracted sources, %ld sharp, "
                 "%ld unresolved from a first-pass source, %ld below the noise and the model's error (%.1f %%)",
                 C->img->path ? C->img->path : "image", n, C->nkeep, nbox, nsharp, nclose, nweak, 100 * eps);
    }
    free(ord);
    free(box);
    free(b);
    return st;
}

/* Detect on the image less the first pass's models and measure what is
 * found there; choose the new sources among it. */
static int detect_residual(pass_ctx *C)
{
    const sk_image *img = C->img;
    sk_extract_result *r = C->r;
    long npix = img->width * img->height;
    float *res = painted(img, &C->first, NULL, -1.0, C->threads);
    float *mod = malloc(sizeof *mod * (size_t)npix);
    if (!res || !mod) {
        free(res);
        free(mod);
        return sk_error(SK_EIO, "second pass: out of memory");
    }
    sk_image rimg = with_pixels(img, res), mimg = with_pixels(img, mod);
    /* saturated pixels (cores, bleed trails) hold no light a model can
       take away: no data on the residual, so that they join no star
       beside them into one object; nor do the pixels at either end of a
       column of them (bleed_end) */
    uint16_t *fl = malloc(sizeof *fl * (size_t)npix);
    if (!fl) {
        free(res);
        free(mod);
        return sk_error(SK_EIO, "second pass: out of memory");
    }
    pix_map(img, img->sci, res, mod, fl, C->threads);
    rimg.flags = fl;
    sk_detect_params dp = sk_extract_detect_params(img, C->xp, r->fwhm_px);
    int st = sk_detect(&rimg, r->background, &dp, C->threads, &C->det2);
    sk_measure_params mp = sk_extract_measure_params(C->xp, r);
    mp.residual = 1;
    /* choose_new reads the candidates' positions, FWHMs and flags only
       (the new sources are measured in full again, on the image less
       the models of the sources before them): no photometry */
    mp.shape_only = 1;
    st = st ? st : model_eps(C->psf, &rimg, &mimg, r->background->level, C->var, C->threads, &C->eps);
    if (!st && C->det2->nobjects > 0)
        st = sk_measure(&rimg, r->background, C->det2, &mp, C->threads, &C->cand);
    if (!st && C->cand)
        st = choose_new(C, &rimg, &mimg);
    free(res);
    free(mod);
    free(fl);
    return st;
}

/* A scene of the first pass's sources and the new ones (after them),
 * with fluxes and stamps: the first pass's taken from C->first (which
 * keeps their positions, fluxes and flags), the new ones made here. */
static int combined_scene(pass_ctx *C, psf_scene *s)
{
    psf_scene *f = &C->first;
    int st = psf_scene_take(f, s);
    for (long k = 0; !st && k < f->n; k++)
        s->live[k] = f->live[k] && f->flux[k] > 0;
    return st ? st : psf_scene_extend(s, C->psf, C->nkeep, C->keep_x, C->keep_y, C->keep_flux, C->threads);
}

/* The fluxes of the first pass's and the new sources fitted at once; the
 * new sources whose flux is not above the detection threshold times its
 * noise then are dropped (nkeep shrinks). s: the scene fitted. */
static int provisional_fit(pass_ctx *C, psf_scene *s)
{
    const sk_image *img = C->img;
    long npix = img->width * img->height, n1 = C->first.n;
    float *res = malloc(sizeof *res * (size_t)npix);
    memset(s, 0, sizeof *s);
    C->keep_scene = malloc(sizeof *C->keep_scene * (size_t)(C->nkeep ? C->nkeep : 1));
    int st = res && C->keep_scene ? combined_scene(C, s) : sk_error(SK_EIO, "second pass: out of memory");
    if (!st)
        pix_map(img, img->sci, C->r->background->level, res, NULL, C->threads);
    int sweeps = 0;
    st = st ? st : psf_scene_fit(s, img, C->var, C->rfit, 50, C->threads, res, &sweeps);
    free(res);
    if (st)
        return st;
    double T = C->xp->detect.threshold_sigma;
    long m = 0;
    for (long i = 0; i < C->nkeep; i++) {
        double f = s->flux[n1 + i];
        if (!(f >= T * C->keep_err[i])) {
            s->live[n1 + i] = 0;
            continue;
        }
        C->keep[m] = C->keep[i];
        C->keep_scene[m] = n1 + i;
        C->keep_x[m] = C->keep_x[i];
        C->keep_y[m] = C->keep_y[i];
        C->keep_flux[m] = f;
        C->keep_err[m] = C->keep_err[i];
        m++;
    }
    sk_debug("second pass: %d sweeps of the joint fit; %ld of %ld new sources significant", sweeps, m,
             C->nkeep);
    C->nkeep = m;
    return SK_OK;
}

static _Thread_local const sk_source *merge_src;

static int cmp_merge(const void *a, const void *b)
{
    const sk_source *s = &merge_src[*(const long *)a], *t = &merge_src[*(const long *)b];
    if (s->ywin != t->ywin)
        return s->ywin < t->ywin ? -1 : 1;
    if (s->xwin != t->xwin)
        return s->xwin < t->xwin ? -1 : 1;
    return (*(const long *)a > *(const long *)b) - (*(const long *)a < *(const long *)b);
}

/* One list of a's sources and b's (flagged SK_SRC_RESIDUAL), sorted by
 * (ywin, xwin) and numbered from 1; pos[k] gives the place in it of
 * a's source k (k < a->n) and of b's source k - a->n. */
static int merge_lists(const sk_source_list *a, const sk_source_list *b, sk_source_list **out, long **pos)
{
    long n = a->n + b->n;
    int na = a->naper;
    sk_source_list *l = calloc(1, sizeof *l);
    long *ord = malloc(sizeof *ord * 2 * (size_t)(n ? n : 1));
    sk_source *all = malloc(sizeof *all * (size_t)(n ? n : 1));
    if (l) {
        l->src = malloc(sizeof *l->src * (size_t)(n ? n : 1));
        l->aper_radius_px = malloc(sizeof(double) * (size_t)(na + 1));
        l->aper_store = calloc((size_t)(2 * n * na + 1), sizeof(double));
    }
    if (!l || !ord || !all || !l->src || !l->aper_radius_px || !l->aper_store) {
        sk_source_list_free(l);
        free(ord);
        free(all);
        return sk_error(SK_EIO, "second pass: out of memory for %ld sources", n);
    }
    l->n = n;
    l->naper = na;
    l->fwhm_px = a->fwhm_px;
    memcpy(l->aper_radius_px, a->aper_radius_px, sizeof(double) * (size_t)(na + 1));
    for (long k = 0; k < n; k++) {
        all[k] = k < a->n ? a->src[k] : b->src[k - a->n];
        if (k >= a->n)
            all[k].flags |= SK_SRC_RESIDUAL;
        ord[k] = k;
    }
    merge_src = all;
    qsort(ord, (size_t)n, sizeof *ord, cmp_merge);
    long *p = ord + n;
    for (long i = 0; i < n; i++) {
        sk_source *s = &l->src[i];
        *s = all[ord[i]];
        double *f = l->aper_store + (size_t)i * (size_t)na, *e = l->aper_store + (size_t)(n + i) * (size_t)na;
        for (int q = 0; q < na; q++) {
            f[q] = all[ord[i]].flux_aper[q];
            e[q] = all[ord[i]].flux_aper_err[q];
        }
        s->flux_aper = f;
        s->flux_aper_err = e;
        s->number = i + 1;
        p[ord[i]] = i;
    }
    memmove(ord, p, sizeof *ord * (size_t)n);
    free(all);
    *out = l;
    *pos = ord;
    return SK_OK;
}

/* The new sources (b) that, measured again, lie within CLOSEST image
 * FWHMs of a source before them (C->first): one star's light split in
 * two, not a star resolved; or within 1 FWHM of a saturated pixel or of
 * the end of a column of them (the light of a saturated star, whose
 * model is fitted to its unsaturated pixels); out of b and of the
 * scene s. */
static int drop_close(pass_ctx *C, psf_scene *s, sk_source_list *b)
{
    long *ord = NULL, nord = 0, m = 0, n = b->n;
    int st = scene_by_x(&C->first, &ord, &nord);
    for (long k = 0; !st && k < n; k++) {
        double x, y;
        if (source_xy(&b->src[k], &x, &y) &&
            (scene_within(&C->first, ord, nord, x, y, CLOSEST * C->r->fwhm_px) ||
             near_saturated(C->img, x, y, C->r->fwhm_px))) {
            for (long i = 0; i < C->nkeep; i++)
                if (C->keep[i] == b->object[k])
                    s->live[C->keep_scene[i]] = 0;
            continue;
        }
        b->src[m] = b->src[k];
        b->object[m++] = b->object[k];
    }
    if (!st) {
        b->n = m;
        sk_debug("second pass: %ld of %ld new sources within %.1f FWHM of an earlier one or of a saturated pixel "
                 "once measured again",
                 n - m, n, CLOSEST);
    }
    free(ord);
    return st;
}

/* The new sources' objects measured with the models of the sources
 * before them subtracted (*b), those then unresolved from one of them
 * dropped (drop_close); in the first round, the first pass's
 * objects too, with the new sources' models subtracted (*a; later
 * rounds keep the sources before them as they are: *a NULL). */
static int remeasure(pass_ctx *C, psf_scene *s, sk_source_list **a, sk_source_list **b)
{
    const sk_image *img = C->img;
    sk_extract_result *r = C->r;
    long n1 = C->first.n;
    uint8_t *old = malloc((size_t)(s->n ? s->n : 1));
    if (!old)
        return sk_error(SK_EIO, "second pass: out of memory");
    for (long k = 0; k < s->n; k++)
        old[k] = k < n1;
    sk_measure_params mp = sk_extract_measure_params(C->xp, r);
    float *pix = painted(img, s, old, -1.0, C->threads);
    sk_image im = with_pixels(img, pix);
    mp.residual = 1;
    /* the segments of the first pass's objects count as other objects'
       pixels (where no object of the residual lies): a model's error
       there is not the new source's light */
    long npix = img->width * img->height;
    int32_t *seg2 = C->det2->segmap, *seg = malloc(sizeof *seg * (size_t)npix);
    for (long i = 0; seg && i < npix; i++)
        seg[i] = seg2[i] == 0 && r->detection->segmap[i] != 0 ? -1 : seg2[i];
    C->det2->segmap = seg;
    int st = pix && seg ? sk_measure_objects(&im, r->background, C->det2, &mp, C->threads, C->keep, C->nkeep, b)
                        : sk_error(SK_EIO, "second pass: out of memory");
    C->det2->segmap = seg2;
    free(seg);
    free(pix);
    mp.residual = 0;
    if (!st)
        st = drop_close(C, s, *b);
    for (long k = 0; k < s->n; k++)
        old[k] = !old[k];
    pix = st || C->round > 0 ? NULL : painted(img, s, old, -1.0, C->threads);
    im = with_pixels(img, pix);
    if (!st && C->round == 0)
        st = pix ? sk_measure(&im, r->background, r->detection, &mp, C->threads, a)
                 : sk_error(SK_EIO, "second pass: out of memory");
    free(pix);
    free(old);
    return st;
}

/* Where the sources of a (the sources before the round, measured again
 * in the first) are in C->r->sources, which the round's scenes follow:
 * through their detection objects in the first round, the same order in
 * later ones. malloc'd. */
static long *old_of_a(const pass_ctx *C, const sk_source_list *a)
{
    long n1o = C->r->detection->nobjects;
    const sk_source_list *old = C->r->sources;
    long *o = malloc(sizeof *o * (size_t)(a->n + n1o + 1)), *inv = o ? o + a->n : NULL;
    if (!o)
        return NULL;
    for (long k = 0; k < a->n; k++)
        o[k] = k;
    if (a == old)
        return o;
    for (long k = 0; k < old->n; k++)
        inv[old->object[k]] = k;
    for (long k = 0; k < a->n; k++)
        o[k] = inv[a->object[k]];
    return o;
}

/* Initial fluxes of the merged list's sources (pos: merge_lists') from the
 * provisional fit s (oa: old_of_a). */
static int initial_fluxes(const pass_ctx *C, const psf_scene *s, const sk_source_list *a,
                          const sk_source_list *b, const long *oa, const long *pos, double *flux)
{
    long n2o = C->det2->nobjects;
    long *map = malloc(sizeof *map * (size_t)(n2o + 1));
    if (!map)
        return sk_error(SK_EIO, "second pass: out of memory");
    for (long o = 0; o < n2o; o++)
        map[o] = -1;
    for (long i = 0; i < C->nkeep; i++)
        map[C->keep[i]] = C->keep_scene[i];
    for (long k = 0; k < a->n + b->n; k++) {
        long i = k < a->n ? oa[k] : map[b->object[k - a->n]];
        flux[pos[k]] = i >= 0 && s->live[i] ? s->flux[i] : 0.0;
    }
    free(map);
    return SK_OK;
}

/* The PSF stars' indices carried from the list before the round to the
 * merged one (oa: old_of_a; pos: merge_lists'). */
static int carry_stars(const pass_ctx *C, sk_psf *psf, const sk_source_list *a, const long *oa,
                       const long *pos)
{
    long n = C->r->sources->n;
    long *inv = malloc(sizeof *inv * (size_t)(n + 1));
    if (!inv)
        return sk_error(SK_EIO, "second pass: out of memory");
    for (long k = 0; k < n; k++)
        inv[k] = -1;
    for (long k = 0; k < a->n; k++)
        inv[oa[k]] = k;
    for (long i = 0; psf->stars && i < psf->naccepted; i++) {
        long k = psf->stars[i];
        psf->stars[i] = k >= 0 && k < n && inv[k] >= 0 ? pos[inv[k]] : -1;
    }
    free(inv);
    return SK_OK;
}

/* The merged list's PSF fluxes: fitted at once (the saturated and the
 * first pass's sources without a positive flux left out of the models),
 * then each source's flux, error and chi^2 with every other model
 * subtracted. The stamps are made in the memory of the provisional
 * scene's (prov), whose stamp from[k] source k takes when it is at the
 * same position (psf_scene_remake). */
static int final_fit(pass_ctx *C, const sk_source_list *l, psf_scene *prov, const long *from, double *init,
                     double *flux, double *err, double *chi2)
{
    const sk_image *img = C->img;
    long n = l->n, npix = img->width * img->height;
    double *xy = malloc(sizeof *xy * 2 * (size_t)(n ? n : 1));
    float *res = malloc(sizeof *res * (size_t)npix);
    if (!xy || !res) {
        free(xy);
        free(res);
        return sk_error(SK_EIO, "second pass: out of memory");
    }
    for (long k = 0; k < n; k++)
        source_xy(&l->src[k], &xy[k], &xy[n + k]);
    psf_scene s;
    int st = psf_scene_remake(C->psf, n, xy, xy + n, init, prov, from, C->threads, &s);
    uint8_t *made = st ? NULL : malloc((size_t)(n ? n : 1));
    if (!st && !made)
        st = sk_error(SK_EIO, "second pass: out of memory");
    for (long k = 0; !st && k < n; k++) {
        made[k] = s.live[k];
        if (!(init[k] > 0))
            s.live[k] = 0;
    }
    if (!st)
        pix_map(img, img->sci, C->r->background->level, res, NULL, C->threads);
    int sweeps = 0;
    st = st ? st : psf_scene_fit(&s, img, C->var, C->rfit, 50, C->threads, res, &sweeps);
    for (long k = 0; !st && k < n; k++)
        init[k] = s.live[k] ? s.flux[k] : 0.0;
    if (!st)
        st = sk_psf_photometry_subtracted(C->psf, img, C->r->background, res, init, C->r->gain, l,
                                          C->threads, flux, err, chi2);
    if (!st)
        sk_debug("second pass: %d sweeps of the final joint fit of %ld sources", sweeps, n);
    if (!st && C->next) {
        /* the stamps at the merged list's positions: the next round's
           models of the sources before it, with their final fluxes */
        for (long k = 0; k < n; k++) {
            s.flux[k] = isfinite(flux[k]) ? flux[k] : 0.0;
            s.live[k] = made[k] && s.flux[k] > 0;
        }
        *C->next = s;
        memset(&s, 0, sizeof s);
    }
    free(made);
    if (s.n)
        psf_scene_free(&s);
    free(xy);
    free(res);
    return st;
}

/* After the new sources are chosen: the joint fits, the measurements
 * again, the merged list into C->r with its fluxes. */
static int add_new(pass_ctx *C, sk_psf *psf, double **flux, double **err, double **chi2)
{
    psf_scene s;
    sk_source_list *a = NULL, *b = NULL, *m = NULL;
    long *pos = NULL;
    int st = provisional_fit(C, &s);
    if (st) {
        psf_scene_free(&s);
        return st;
    }
    const sk_source_list *before = C->r->sources;
    if (C->nkeep > 0) {
        st = remeasure(C, &s, &a, &b);
        before = a ? a : C->r->sources;
        st = st ? st : merge_lists(before, b, &m, &pos);
    }
    double *nf = NULL, *init = NULL;
    long *oa = NULL;
    if (!st && m) {
        init = malloc(sizeof *init * (size_t)m->n);
        nf = malloc(sizeof *nf * 3 * (size_t)m->n);
        oa = old_of_a(C, before);
        st = init && nf && oa ? initial_fluxes(C, &s, before, b, oa, pos, init)
                              : sk_error(SK_EIO, "second pass: out of memory");
        st = st ? st : carry_stars(C, psf, before, oa, pos);
        /* the stamps of the sources before the round, where they stay */
        long *from = st ? NULL : malloc(sizeof *from * (size_t)m->n);
        if (!st && !from)
            st = sk_error(SK_EIO, "second pass: out of memory");
        for (long k = 0; !st && k < m->n; k++)
            from[pos[k]] = k < before->n ? oa[k] : -1;
        st = st ? st : final_fit(C, m, &s, from, init, nf, nf + m->n, nf + 2 * m->n);
        free(from);
    }
    free(oa);
    psf_scene_free(&s);
    if (!st && m) {
        sk_info("%s: second pass, round %d: %ld sources added to %ld", C->img->path ? C->img->path : "image",
                C->round + 1, b->n, before->n);
        double *f = realloc(*flux, sizeof *f * (size_t)m->n), *e = NULL, *c = NULL;
        if (f)
            *flux = f;
        e = f ? realloc(*err, sizeof *e * (size_t)m->n) : NULL;
        if (e)
            *err = e;
        c = e ? realloc(*chi2, sizeof *c * (size_t)m->n) : NULL;
        if (c)
            *chi2 = c;
        if (!c)
            st = sk_error(SK_EIO, "second pass: out of memory");
        for (long k = 0; !st && k < m->n; k++) {
            f[k] = nf[k];
            e[k] = nf[m->n + k];
            c[k] = nf[2 * m->n + k];
        }
    }
    if (!st && m) {
        sk_source_list_free(C->r->sources);
        C->r->sources = m;
        m = NULL;
    }
    sk_source_list_free(a);
    sk_source_list_free(b);
    sk_source_list_free(m);
    free(pos);
    free(init);
    free(nf);
    return st;
}

/* One round of the pass: the models of the sources of r->sources (PSF
 * fluxes *flux) subtracted, detection on the residual, the new sources
 * added (*added: how many). */
static int residual_round(const sk_image *img, const sk_extract_params *xp, sk_psf *psf, int threads,
                          sk_extract_result *r, int round, psf_scene *carry, double **flux, double **err,
                          double **chi2, long *added)
{
    const sk_source_list *l = r->sources;
    long n0 = l->n;
    pass_ctx C = {.img = img, .xp = xp, .psf = psf, .threads = threads, .r = r, .round = round,
                  .var = r->detection->variance, .rfit = fmax(2.0, 2.0 * psf->fwhm_px)};
    int st = SK_OK;
    if (carry->n == l->n && carry->stamp) {
        /* the previous round's final scene: the same positions and fluxes */
        C.first = *carry;
        memset(carry, 0, sizeof *carry);
    } else {
        double *xy = malloc(sizeof *xy * 2 * (size_t)l->n);
        if (!xy)
            return sk_error(SK_EIO, "second pass: out of memory");
        for (long k = 0; k < l->n; k++)
            if (!source_xy(&l->src[k], &xy[k], &xy[l->n + k]))
                xy[k] = xy[l->n + k] = NAN;
        st = psf_scene_make(psf, l->n, xy, xy + l->n, *flux, threads, NULL, &C.first);
        free(xy);
        for (long k = 0; !st && k < l->n; k++)
            if (!(C.first.flux[k] > 0))
                C.first.live[k] = 0;
    }
    if (carry->n)
        psf_scene_free(carry);
    C.next = round + 1 < MAX_ROUNDS ? carry : NULL;
    st = st ? st : detect_residual(&C);
    if (!st && C.nkeep > 0)
        st = add_new(&C, psf, flux, err, chi2);
    *added = st ? 0 : r->sources->n - n0;
    if (C.first.n)
        psf_scene_free(&C.first);
    sk_detection_free(C.det2);
    sk_source_list_free(C.cand);
    free(C.keep);
    free(C.keep_scene);
    free(C.keep_x);
    return st;
}

int sk_residual_pass(const sk_image *img, const sk_extract_params *xp, sk_psf *psf, int threads,
                     sk_extract_result *r, double **flux, double **err, double **chi2)
{
    const sk_source_list *l = r->sources;
    if (xp->second_pass == 0 || l->n == 0 || !r->detection || !l->object)
        return SK_OK;
    long npoint = 0, nblended = 0;
    double crowd = sk_crowding(l, &npoint, &nblended);
    if (xp->second_pass < 0 && !sk_crowded(l, xp->crowding_min)) {
        sk_debug("%s: crowding %.3f (%ld of %ld point sources of SNR >= %d blended) not above %.3f by twice "
                 "its error, or fewer than %d blended: no second pass", img->path ? img->path : "image", crowd,
                 nblended, npoint, CROWDING_SNR, xp->crowding_min, MIN_BLENDED);
        return SK_OK;
    }
    int st = SK_OK, round = 0;
    long added = 1;
    psf_scene carry;
    memset(&carry, 0, sizeof carry);
    for (; !st && added > 0 && round < MAX_ROUNDS; round++)
        st = residual_round(img, xp, psf, threads, r, round, &carry, flux, err, chi2, &added);
    if (carry.n)
        psf_scene_free(&carry);
    sk_debug("%s: crowding %.3f, second pass done in %d rounds", img->path ? img->path : "image", crowd, round);
    return st;
}
