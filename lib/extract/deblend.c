/* deblend.c: multi-threshold deblending of one detection segment into objects, with the pixels below the splitting levels given to the object of highest Gaussian-profile likelihood. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skystack/error.h"
#include "skystack/extract.h"
#include "extract_internal.h"

typedef struct {
    long *pix;  /* ascending pixel indices */
    long n;
    double flux;
} comp_t;

typedef struct {
    const float *val;
    long width;
    double thresh, peak, total_flux;
    const sk_detect_params *p;
    comp_t *cores;
    long ncores, cap;
    const long *maxima;  /* the segment's local maxima (pixel indices) */
    long nmaxima;
    long min_branch_px;  /* smallest branch that counts */
} ctx_t;

static long uf_find(long *parent, long a)
{
    while (parent[a] != a) {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    return a;
}

static void uf_union(long *parent, long a, long b)
{
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a == b)
        return;
    if (a < b)
        parent[b] = a;
    else
        parent[a] = b;
}

/* Index of pixel q in the ascending array s[0..n-1], or -1. */
static long find_pix(const long *s, long n, long q)
{
    long lo = 0, hi = n - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (s[mid] == q)
            return mid;
        if (s[mid] < q)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Sort the pixel indices v[0..n-1] of a connected segment of a
 * width-wide image ascending: by rows (every row between the first and the
 * last holds some), then insertion within each row. */
static int sort_pixels(long *v, long n, long width)
{
    if (n < 2)
        return SK_OK;
    long ymin = v[0] / width, ymax = ymin;
    for (long i = 1; i < n; i++) {
        long y = v[i] / width;
        if (y < ymin)
            ymin = y;
        if (y > ymax)
            ymax = y;
    }
    long nrows = ymax - ymin + 1;
    long *start = calloc((size_t)nrows + 1, sizeof *start);
    long *tmp = malloc(sizeof *tmp * (size_t)n);
    if (!start || !tmp) {
        free(start);
        free(tmp);
        return sk_error(SK_EIO, "deblending: out of memory");
    }
    for (long i = 0; i < n; i++)
        start[v[i] / width - ymin + 1]++;
    for (long r = 0; r < nrows; r++)
        start[r + 1] += start[r];
    for (long i = 0; i < n; i++)
        tmp[start[v[i] / width - ymin]++] = v[i];
    /* start[r] is now the end of row r */
    for (long r = 0, b = 0; r < nrows; b = start[r], r++) {
        for (long i = b + 1; i < start[r]; i++) {
            long x = tmp[i], j = i - 1;
            while (j >= b && tmp[j] > x) {
                tmp[j + 1] = tmp[j];
                j--;
            }
            tmp[j + 1] = x;
        }
    }
    memcpy(v, tmp, sizeof *v * (size_t)n);
    free(start);
    free(tmp);
    return SK_OK;
}

static void free_comps(comp_t *c, long n)
{
    for (long i = 0; i < n; i++)
        free(c[i].pix);
    free(c);
}

/* 8-connected components of the pixels of `pix` whose value exceeds t,
 * keeping those of at least min_area pixels; ordered by first pixel. */
static int components(const ctx_t *C, const long *pix, long n, double t, comp_t **out, long *nout)
{
    *out = NULL;
    *nout = 0;
    long m = 0;
    for (long k = 0; k < n; k++)
        if (C->val[pix[k]] > t)
            m++;
    if (m < C->min_branch_px)
        return SK_OK;
    long *sp = malloc(sizeof *sp * (size_t)m);
    long *parent = malloc(sizeof *parent * (size_t)m);
    long *count = calloc((size_t)m, sizeof *count);
    if (!sp || !parent || !count) {
        free(sp); free(parent); free(count);
        return sk_error(SK_EIO, "deblending: out of memory");
    }
    m = 0;
    for (long k = 0; k < n; k++)
        if (C->val[pix[k]] > t)
            sp[m++] = pix[k];
    long w = C->width;
    long pp = 0;  /* first index that may hold a neighbour in the row above */
    for (long j = 0; j < m; j++) {
        parent[j] = j;
        long q = sp[j], x = q % w;
        if (x > 0 && j > 0 && sp[j - 1] == q - 1)
            uf_union(parent, j, j - 1);
        /* the row above: q-w-1, q-w, q-w+1, found by a pointer that only
           moves forward as q grows (sp is ascending) */
        long lo = q - w - (x > 0 ? 1 : 0), hi = q - w + (x < w - 1 ? 1 : 0);
        while (pp < j && sp[pp] < lo)
            pp++;
        for (long k = pp; k < j && sp[k] <= hi; k++)
            uf_union(parent, j, k);
    }
    long ncomp = 0;
    for (long j = 0; j < m; j++) {
        long r = uf_find(parent, j);
        if (count[r]++ == 0)
            ncomp++;
    }
    /* roots are the smallest member index, so components come out ordered
       by first pixel */
    comp_t *comps = calloc((size_t)ncomp, sizeof *comps);
    long *slot = malloc(sizeof *slot * (size_t)m);
    if (!comps || !slot) {
        free(comps); free(slot); free(sp); free(parent); free(count);
        return sk_error(SK_EIO, "deblending: out of memory");
    }
    long nc = 0;
    int st = SK_OK;
    for (long j = 0; j < m; j++) {
        long r = uf_find(parent, j);
        if (r == j) {
            slot[j] = -1;
            if (count[j] >= C->min_branch_px) {
                comps[nc].pix = malloc(sizeof(long) * (size_t)count[j]);
                if (!comps[nc].pix)
                    st = sk_error(SK_EIO, "deblending: out of memory");
                slot[j] = nc++;
            }
        }
        long s = slot[r];
        if (s >= 0 && comps[s].pix) {
            comps[s].pix[comps[s].n++] = sp[j];
            comps[s].flux += C->val[sp[j]];
        }
    }
    free(slot);
    free(sp);
    free(parent);
    free(count);
    if (st) {
        free_comps(comps, nc);
        return st;
    }
    *out = comps;
    *nout = nc;
    return SK_OK;
}

static int add_core(ctx_t *C, const long *pix, long n)
{
    if (C->ncores == C->cap) {
        long cap = C->cap ? 2 * C->cap : 4;
        comp_t *c = realloc(C->cores, sizeof *c * (size_t)cap);
        if (!c)
            return sk_error(SK_EIO, "deblending: out of memory");
        C->cores = c;
        C->cap = cap;
    }
    comp_t *c = &C->cores[C->ncores];
    c->pix = malloc(sizeof(long) * (size_t)n);
    if (!c->pix)
        return sk_error(SK_EIO, "deblending: out of memory");
    memcpy(c->pix, pix, sizeof(long) * (size_t)n);
    c->n = n;
    c->flux = 0;
    C->ncores++;
    return SK_OK;
}

/* The highest value of a component. */
static double branch_peak(const ctx_t *C, const comp_t *c)
{
    double pk = 0;
    for (long k = 0; k < c->n; k++)
        if (C->val[c->pix[k]] > pk)
            pk = C->val[c->pix[k]];
    return pk;
}

/* Look for a split of `pix` above level `from`: two or more branches each
 * with more than contrast * total flux or rising above it by the
 * detection threshold. Splits recurse; otherwise the
 * highest single branch becomes a core. */
static int split(ctx_t *C, const long *pix, long n, int from)
{
    int N = C->p->deblend_levels;
    const long *cur = pix;
    long ncur = n;
    comp_t *held = NULL;  /* owner of cur when it is a component */
    long nheld = 0;
    int st = SK_OK;
    double ratio = C->peak / C->thresh;
    int several = 1;  /* may two local maxima of the segment in cur exceed t? */
    for (int j = from + 1; j < N && ratio > 1; j++) {
        double t = C->thresh * pow(ratio, (double)j / N);
        long above = 0;
        for (long k = 0; k < ncur; k++)
            if (C->val[cur[k]] > t)
                above++;
        if (above < 2L * C->min_branch_px)
            break;
        /* Every component above t holds a local maximum of the segment
           (its highest pixel): with at most one of them above t in cur,
           the pixels above t are one component, found without the
           connectivity, and so are those above every higher level. */
        if (several) {
            long nabove = 0;
            for (long m = 0; m < C->nmaxima && nabove < 2; m++)
                if (C->val[C->maxima[m]] > t && find_pix(cur, ncur, C->maxima[m]) >= 0)
                    nabove++;
            several = nabove >= 2;
        }
        comp_t *comps = NULL;
        long nc = 0;
        if (several) {
            st = components(C, cur, ncur, t, &comps, &nc);
        } else {
            comps = calloc(1, sizeof *comps);
            long *px = comps ? malloc(sizeof *px * (size_t)above) : NULL;
            if (!px) {
                free(comps);
                comps = NULL;
                st = sk_error(SK_EIO, "deblending: out of memory");
            } else {
                comps[0].pix = px;
                for (long k = 0; k < ncur; k++)
                    if (C->val[cur[k]] > t) {
                        px[comps[0].n++] = cur[k];
                        comps[0].flux += C->val[cur[k]];
                    }
                nc = 1;
            }
        }
        if (st)
            break;
        /* a branch counts when it holds the contrast's share of the
           segment's flux, or when it rises above the level by the
           detection threshold (it would be detected on its own there: a
           star among many in a crowded segment whose summed flux dwarfs
           each of them) */
        long nsig = 0;
        for (long k = 0; k < nc; k++)
            if (comps[k].flux >= C->p->deblend_contrast * C->total_flux ||
                branch_peak(C, &comps[k]) - t >= C->thresh)
                comps[nsig++] = comps[k];
            else
                free(comps[k].pix);
        if (nsig >= 2) {
            for (long k = 0; k < nsig && !st; k++)
                st = split(C, comps[k].pix, comps[k].n, j);
            free_comps(comps, nsig);
            free_comps(held, nheld);
            return st;
        }
        if (nsig == 1) {
            free_comps(held, nheld);
            held = comps;
            nheld = 1;
            cur = held[0].pix;
            ncur = held[0].n;
        } else {
            free(comps);
            break;
        }
    }
    if (!st)
        st = add_core(C, cur, ncur);
    free_comps(held, nheld);
    return st;
}

/* The local maxima of the values over a segment (pixels sorted[0..n-1]),
 * ties going to the lower index: their count, stopping at `stop`, and with
 * `out` their pixel indices. Pixels outside the segment are below
 * threshold, hence below every pixel of it, so the image values can be
 * compared directly. */
static long local_maxima(const long *sorted, long n, const float *val, long width, long height,
                         long *out, long stop)
{
    long nmax = 0;
    for (long k = 0; k < n && nmax < stop; k++) {
        long q = sorted[k], x = q % width, y = q / width;
        float v = val[q];
        int is_max = 1;
        for (long dy = -1; dy <= 1 && is_max; dy++) {
            if (y + dy < 0 || y + dy >= height)
                continue;
            for (long dx = -1; dx <= 1; dx++) {
                if ((!dx && !dy) || x + dx < 0 || x + dx >= width)
                    continue;
                long nb = q + dy * width + dx;
                if (val[nb] > v || (val[nb] == v && nb < q)) {
                    is_max = 0;
                    break;
                }
            }
        }
        if (is_max && out)
            out[nmax] = q;
        nmax += is_max;
    }
    return nmax;
}

/* The Gaussian a core stands for, from its pixels' values: gm[0..1] the
 * mean position (px), gm[2..4] the inverse covariance (xx, yy, xy) of the
 * pixel-integrated, regularised second moments, gm[5] the log of the
 * peak value. */
static void core_gaussian(const comp_t *c, const float *val, long width, double *gm)
{
    double sw = 0, sx = 0, sy = 0, amp = 0;
    for (long k = 0; k < c->n; k++) {
        long q = c->pix[k];
        double v = val[q];
        sw += v;
        sx += v * (double)(q % width);
        sy += v * (double)(q / width);
        if (v > amp)
            amp = v;
    }
    double mx = sx / sw, my = sy / sw, sxx = 0, syy = 0, sxy = 0;
    for (long k = 0; k < c->n; k++) {
        long q = c->pix[k];
        double v = val[q], dx = (double)(q % width) - mx, dy = (double)(q / width) - my;
        sxx += v * dx * dx;
        syy += v * dy * dy;
        sxy += v * dx * dy;
    }
    sxx = sxx / sw + 1.0 / 12;
    syy = syy / sw + 1.0 / 12;
    sxy /= sw;
    double det = sxx * syy - sxy * sxy;
    if (det < 1e-6) {
        sxx += 0.1;
        syy += 0.1;
        det = sxx * syy - sxy * sxy;
    }
    gm[0] = mx;
    gm[1] = my;
    gm[2] = syy / det;   /* inverse covariance */
    gm[3] = sxx / det;
    gm[4] = -sxy / det;
    gm[5] = log(amp > 0 ? amp : 1e-30);
}

/* The object each pixel of the segment (sorted[0..n-1]) goes to: the core
 * it is in, else the core whose Gaussian is the most likely there. */
static int assign_pixels(const ctx_t *C, const long *sorted, long n, long nobj, long *owner)
{
    double *geom = malloc(sizeof *geom * (size_t)(6 * nobj));
    if (!geom)
        return sk_error(SK_EIO, "deblending: out of memory");
    for (long k = 0; k < n; k++)
        owner[k] = -1;
    for (long o = 0; o < nobj; o++) {
        const comp_t *c = &C->cores[o];
        core_gaussian(c, C->val, C->width, geom + 6 * o);
        for (long k = 0; k < c->n; k++) {
            long idx = find_pix(sorted, n, c->pix[k]);
            if (idx >= 0)
                owner[idx] = o;
        }
    }
    for (long k = 0; k < n; k++) {
        if (owner[k] >= 0)
            continue;
        double x = (double)(sorted[k] % C->width), y = (double)(sorted[k] / C->width);
        double best = -INFINITY;
        long bo = 0;
        for (long o = 0; o < nobj; o++) {
            const double *gm = geom + 6 * o;
            double dx = x - gm[0], dy = y - gm[1];
            double l = gm[5] - 0.5 * (gm[2] * dx * dx + gm[3] * dy * dy + 2 * gm[4] * dx * dy);
            if (l > best) {
                best = l;
                bo = o;
            }
        }
        owner[k] = bo;
    }
    free(geom);
    return SK_OK;
}

/* Room for `need` objects in *objs (capacity *cap, doubled as needed). */
static int reserve_objects(sk_object **objs, long *cap, long need)
{
    if (need <= *cap)
        return SK_OK;
    long nc = *cap ? *cap : 4;
    while (nc < need)
        nc *= 2;
    sk_object *a = realloc(*objs, sizeof *a * (size_t)nc);
    if (!a)
        return sk_error(SK_EIO, "deblending: out of memory");
    *objs = a;
    *cap = nc;
    return SK_OK;
}

/* Append the nobj objects the segment's pixels (sorted[0..n-1], in raster
 * order) are split into by owner[], each with its pixels in raster order. */
static int append_split(const long *sorted, long n, const long *owner, long nobj,
                        sk_object *objs, long *nobjs)
{
    long *cnt = calloc((size_t)nobj, sizeof *cnt);
    long base = *nobjs;
    if (!cnt)
        return sk_error(SK_EIO, "deblending: out of memory");
    for (long k = 0; k < n; k++)
        cnt[owner[k]]++;
    for (long o = 0; o < nobj; o++) {
        sk_object *ob = &objs[base + o];
        ob->pix = malloc(sizeof(long) * (size_t)(cnt[o] ? cnt[o] : 1));
        ob->npix = 0;
        ob->parent = 0;
        ob->nsiblings = (int)nobj;
        if (!ob->pix) {
            for (long q = 0; q < o; q++)
                free(objs[base + q].pix);
            free(cnt);
            return sk_error(SK_EIO, "deblending: out of memory");
        }
    }
    for (long k = 0; k < n; k++) {
        sk_object *ob = &objs[base + owner[k]];
        ob->pix[ob->npix++] = sorted[k];
    }
    *nobjs += nobj;
    free(cnt);
    return SK_OK;
}

/* Split the segment into cores (multi-threshold, as Source Extractor's
 * deblending): C.cores; nothing to do unless there are two local maxima. */
static int find_cores(ctx_t *C, const long *sorted, long n, long height)
{
    const sk_detect_params *p = C->p;
    /* A split needs two local maxima of the detection values inside the
       segment (every component above any level holds one); most segments
       (isolated stars) have a single one and need no further work. */
    if (!(p->deblend_levels > 1 && p->deblend_contrast < 1 &&
          local_maxima(sorted, n, C->val, C->width, height, NULL, 2) >= 2))
        return SK_OK;
    long *maxima = malloc(sizeof *maxima * (size_t)n);
    if (!maxima)
        return sk_error(SK_EIO, "deblending: out of memory");
    C->nmaxima = local_maxima(sorted, n, C->val, C->width, height, maxima, n);
    C->maxima = maxima;
    int st = split(C, sorted, n, 0);
    C->maxima = NULL;
    free(maxima);
    return st;
}

int sk_deblend_segment(const long *pix, long n, const float *val, long width, long height,
                       double thresh, const sk_detect_params *p,
                       sk_object **objs, long *nobjs, long *cap)
{
    /* a branch holds at least min_area_px pixels, or the core of an
       undersampled star: the disc of diameter FWHM */
    long core = p->fwhm_px > 0 ? lround(M_PI * 0.25 * p->fwhm_px * p->fwhm_px) : p->min_area_px;
    if (core < 1)
        core = 1;
    ctx_t C = { val, width, thresh, 0, 0, p, NULL, 0, 0, NULL, 0,
                core < p->min_area_px ? core : p->min_area_px };
    long *sorted = malloc(sizeof *sorted * (size_t)n);
    if (!sorted)
        return sk_error(SK_EIO, "deblending: out of memory");
    memcpy(sorted, pix, sizeof *sorted * (size_t)n);
    /* pixels arrive in flood-fill order; deblending wants raster order */
    int st = sort_pixels(sorted, n, width);
    if (st) {
        free(sorted);
        return st;
    }
    for (long k = 0; k < n; k++) {
        double v = val[sorted[k]];
        C.total_flux += v;
        if (v > C.peak)
            C.peak = v;
    }
    st = find_cores(&C, sorted, n, height);
    long nobj = st ? 0 : (C.ncores > 1 ? C.ncores : 1);
    long *owner = NULL;
    if (!st && nobj > 1) {
        owner = malloc(sizeof *owner * (size_t)n);
        st = owner ? assign_pixels(&C, sorted, n, nobj, owner)
                   : sk_error(SK_EIO, "deblending: out of memory");
    }
    if (!st)
        st = reserve_objects(objs, cap, *nobjs + nobj);
    if (!st && nobj == 1) {
        sk_object *o = &(*objs)[(*nobjs)++];
        o->pix = sorted;
        o->npix = n;
        o->parent = 0;
        o->nsiblings = 1;
        sorted = NULL;
    } else if (!st) {
        st = append_split(sorted, n, owner, nobj, *objs, nobjs);
    }
    free(owner);
    free(sorted);
    for (long o = 0; o < C.ncores; o++)
        free(C.cores[o].pix);
    free(C.cores);
    return st;
}
