/* combine.c: combining the resampled values of several inputs into one coadd pixel: weighted mean, kappa-sigma clipped mean and median, with their variances. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "skystack/coadd.h"
#include "skystack/error.h"
#include "coadd_internal.h"

int sk_combine_from_name(const char *name, int *method)
{
    static const struct {
        const char *name;
        int method;
    } names[] = {{"mean", SK_COMBINE_MEAN}, {"clipped", SK_COMBINE_CLIPPED}, {"median", SK_COMBINE_MEDIAN}};
    for (size_t k = 0; name && k < sizeof names / sizeof names[0]; k++)
        if (strcasecmp(name, names[k].name) == 0) {
            *method = names[k].method;
            return SK_OK;
        }
    if (name && (strcasecmp(name, "zogy") == 0 || strcasecmp(name, "psfmatch") == 0))
        return sk_error(SK_EINPUT, "method '%s' is not a direct combination (mean, clipped, median): "
                                   "it is a coaddx method (sk_coaddx_method_from_name, coaddx.h; "
                                   "coaddition.method of coadd(1))", name);
    return sk_error(SK_EINPUT, "method '%s': expected mean, clipped or median",
                    name ? name : "(null)");
}

const char *sk_combine_name(int method)
{
    switch (method) {
    case SK_COMBINE_MEAN: return "mean";
    case SK_COMBINE_CLIPPED: return "clipped";
    case SK_COMBINE_MEDIAN: return "median";
    default: return NULL;
    }
}

/* Variance of the median of n unit-variance Gaussian values times n:
 * exact values (numerical integration over the order-statistic densities)
 * for n <= 32; beyond, pi/2 (1 - 0.4314/n) for odd n, which meets the
 * exact values to 1e-4 from n = 31 to 127, and for even n the same minus
 * the even-odd gap at 32 falling as 1/n. */
static const double median_factor[32] = {
    1.00000, 1.00000, 1.34601, 1.19280, 1.43417, 1.28847, 1.47313, 1.34547,
    1.49491, 1.38330, 1.50879, 1.41025, 1.51839, 1.43043, 1.52542, 1.44611,
    1.53079, 1.45865, 1.53503, 1.46892, 1.53845, 1.47748, 1.54128, 1.48472,
    1.54366, 1.49095, 1.54568, 1.49635, 1.54742, 1.50108, 1.54893, 1.50527};

double sk_median_variance_factor(int n)
{
    if (n <= 0)
        return 1.0;
    if (n <= 32)
        return median_factor[n - 1];
    double odd = M_PI / 2.0 * (1.0 - 0.4314 / n);
    if (n % 2)
        return odd;
    return odd - 0.0443 * 32.0 / n;
}

typedef struct vw {
    double v, w;
} vw;

static int cmp_vw(const void *pa, const void *pb)
{
    const vw *a = pa, *b = pb;
    if (a->v < b->v)
        return -1;
    if (a->v > b->v)
        return 1;
    return (a->w > b->w) - (a->w < b->w);
}

/* Insertion: stable (pairs that compare equal keep their order). */
static void sort_vw_insertion(vw *p, int n)
{
    for (int i = 1; i < n; i++) {
        vw t = p[i];
        int j = i - 1;
        while (j >= 0 && cmp_vw(&p[j], &t) > 0) {
            p[j + 1] = p[j];
            j--;
        }
        p[j + 1] = t;
    }
}

/* Pairs placed by rank (up to RANKSORT_MAX, no NaN). */
#define RANKSORT_MAX 16

typedef long long v4di_r __attribute__((vector_size(32)));

/* An integer whose order is the order of the float f (no NaN; -0 as +0,
 * which compares equal to it). */
static inline long long float_key(float f)
{
    f += 0.0f; /* -0 + 0 = +0 */
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i >= 0 ? i : i ^ 0x7fffffff;
}

/* The place of each pair in the stable order of cmp_vw, by counting the
 * pairs before it: the (value, weight) keys that are smaller, and the
 * equal ones earlier in the array; four keys compared at a time. */
static inline __attribute__((always_inline)) void rank_sort(vw *p, int n)
{
    v4di_r K[RANKSORT_MAX / 4];
    long long *k = (long long *)K;
    vw t[RANKSORT_MAX];
    int nb = (n + 3) / 4;
    for (int j = 0; j < 4 * nb; j++) {
        if (j < n) {
            t[j] = p[j];
            k[j] = (long long)((unsigned long long)float_key((float)p[j].v) << 32 |
                               (uint32_t)((int32_t)float_key((float)p[j].w) ^ INT32_MIN));
        } else {
            k[j] = LLONG_MAX; /* after every pair (no float has that key) */
        }
    }
    for (int i = 0; i < n; i++) {
        v4di_r ki = {k[i], k[i], k[i], k[i]}, ii = {i, i, i, i}, idx = {0, 1, 2, 3}, r = {0, 0, 0, 0};
        for (int b = 0; b < nb; b++, idx += 4)
            r -= (K[b] < ki) | ((K[b] == ki) & (idx < ii));
        p[(r[0] + r[1]) + (r[2] + r[3])] = t[i];
    }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SK_HAVE_AVX2_RANKSORT 1
__attribute__((target("avx2"))) static void rank_sort_avx2(vw *p, int n)
{
    rank_sort(p, n);
    __builtin_ia32_vzeroupper();
}
#endif

/* Pairs sorted by value, then weight, stably. floats: every value and
 * weight is a float and none is NaN (as the clipped mean's pairs mostly
 * are); the rank sort then gives the insertion sort's order (the same
 * pairs in the same places). Else the insertion sort, and qsort beyond 24
 * pairs. */
static void sort_vw(vw *p, int n, int floats)
{
    if (n > 24) {
        qsort(p, (size_t)n, sizeof *p, cmp_vw);
        return;
    }
#ifdef SK_HAVE_AVX2_RANKSORT
    if (floats && n <= RANKSORT_MAX && __builtin_cpu_supports("avx2")) {
        rank_sort_avx2(p, n);
        return;
    }
#endif
    if (floats && n <= RANKSORT_MAX) {
        rank_sort(p, n);
        return;
    }
    sort_vw_insertion(p, n);
}

void sk_combine_sort_pairs(double *pairs, int n, int plain)
{
    vw *p = (vw *)pairs;
    int floats = 1;
    for (int j = 0; j < n; j++)
        floats &= p[j].v == (double)(float)p[j].v && p[j].w == (double)(float)p[j].w;
    if (plain)
        sort_vw_insertion(p, n);
    else
        sort_vw(p, n, floats);
}

/* Inputs whose median is found by rank counting. */
#define RANK_MAX 24

/* The values of rank k0 and k1 (k0 <= k1) among the n inputs' values,
 * ranks counted as a stable sort orders them (by value, then place), four
 * comparisons at a time (the values padded with +inf, which no finite
 * value follows); n <= RANK_MAX. */
typedef float v4sf_c __attribute__((vector_size(16)));
typedef int v4si_c __attribute__((vector_size(16)));
static void ranked_values(const sk_combine_in *in, int n, int k0, int k1, double *v0, double *v1)
{
    v4sf_c v[RANK_MAX / 4];
    float *vf = (float *)v;
    int nb = (n + 3) / 4;
    for (int j = 0; j < 4 * nb; j++)
        vf[j] = j < n ? in[j].value : INFINITY;
    for (int j = 0; j < n; j++) {
        float x = vf[j];
        v4sf_c xj = {x, x, x, x};
        v4si_c jj = {j, j, j, j}, idx = {0, 1, 2, 3}, r = {0, 0, 0, 0};
        for (int b = 0; b < nb; b++, idx += 4)
            r -= (v[b] < xj) | ((v[b] == xj) & (idx < jj));
        int rank = (r[0] + r[1]) + (r[2] + r[3]);
        if (rank == k0)
            *v0 = x;
        if (rank == k1)
            *v1 = x;
    }
}

/* Weighted median of sorted pairs: the value where the cumulative weight
 * reaches half the total (the mean of two values when it lands exactly on
 * the boundary between them). */
static double weighted_median(const vw *p, int n)
{
    double total = 0.0;
    for (int i = 0; i < n; i++)
        total += p[i].w;
    double half = 0.5 * total, cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += p[i].w;
        if (cum == half && i + 1 < n)
            return 0.5 * (p[i].v + p[i + 1].v);
        if (cum > half)
            return p[i].v;
    }
    return p[n - 1].v;
}

/* The weighted mean from its sums: of the combine weights (sc), of the
 * weighted values (scv) and of the squared weights times the variances
 * (scvar), over `used` values. */
static void mean_out(double sc, double scv, double scvar, int used, sk_combine_out *out)
{
    if (used == 0 || !(sc > 0.0)) {
        out->value = 0.0f;
        out->weight = 0.0f;
        out->nused = 0;
        out->var_large = 0.0;
        return;
    }
    out->value = (float)(scv / sc);
    out->weight = scvar > 0.0 ? (float)(sc * sc / scvar) : 0.0f;
    out->nused = used;
    out->var_large = 1.0 / sc;
}

void sk_combine_mean_sums(double sc, double scv, double scvar, int used, sk_combine_out *out)
{
    out->nrejected = 0;
    mean_out(sc, scv, scvar, used, out);
}

static void mean_of(const sk_combine_in *in, int n, const double *keep, sk_combine_out *out)
{
    double sc = 0.0, scv = 0.0, scvar = 0.0;
    int used = 0;
    for (int j = 0; j < n; j++) {
        if (keep && keep[j] == 0.0)
            continue;
        double c = in[j].cweight;
        sc += c;
        scv += c * in[j].value;
        scvar += c * c * in[j].var;
        used++;
    }
    mean_out(sc, scv, scvar, used, out);
}

static void clipped_full(const sk_combine_params *p, const sk_combine_in *in, int n, double *scratch,
                         sk_combine_out *out);

void sk_combine_pixel(const sk_combine_params *p, const sk_combine_in *in, int n, double *scratch,
                      sk_combine_out *out)
{
    out->nrejected = 0;
    if (n <= 0) {
        out->value = out->weight = 0.0f;
        out->nused = 0;
        out->var_large = 0.0;
        return;
    }
    if (p->method == SK_COMBINE_MEDIAN) {
        double mvar = 0.0, mlarge = 0.0, med;
        for (int j = 0; j < n; j++) {
            mvar += in[j].var;
            mlarge += 1.0 / in[j].cweight;
        }
        if (n <= RANK_MAX) {
            double lo = 0.0, hi = 0.0;
            ranked_values(in, n, (n - 1) / 2, n / 2, &lo, &hi);
            med = n % 2 ? hi : 0.5 * (lo + hi);
        } else {
            vw *s = (vw *)scratch;
            for (int j = 0; j < n; j++) {
                s[j].v = in[j].value;
                s[j].w = 1.0;
            }
            sort_vw(s, n, 0);
            med = n % 2 ? s[n / 2].v : 0.5 * (s[n / 2 - 1].v + s[n / 2].v);
        }
        double f = sk_median_variance_factor(n) / ((double)n * n);
        out->value = (float)med;
        out->weight = mvar > 0.0 ? (float)(1.0 / (f * mvar)) : 0.0f;
        out->nused = n;
        out->var_large = f * mlarge;
        return;
    }
    if (p->method != SK_COMBINE_CLIPPED || n < 3) {
        mean_of(in, n, NULL, out);
        return;
    }
    /* clipped. A screen first: the weighted median lies within one
     * weighted standard deviation of the weighted mean, so when every
     * value passes its test for every centre in that interval (with the
     * spread at its least, 0) the first pass rejects nothing and the
     * result is the mean: the same result, without sorting. */
    {
        double sc = 0.0, scv = 0.0, scvv = 0.0;
        for (int j = 0; j < n; j++) {
            sc += in[j].cweight;
            scv += (double)in[j].cweight * in[j].value;
        }
        double m = scv / sc;
        for (int j = 0; j < n; j++) {
            double d = (double)in[j].value - m;
            scvv += (double)in[j].cweight * d * d;
        }
        double sd = sqrt(scvv / sc) * (1.0 + 1e-9) + 1e-12 * fabs(m);
        double lo = m - sd, hi = m + sd;
        double amin = lo <= 0.0 && hi >= 0.0 ? 0.0 : fmin(fabs(lo), fabs(hi));
        double signal = lo > 0.0 ? lo : 0.0, kappa2 = p->clip_sigma * p->clip_sigma;
        int pass = 1;
        double scvar = 0.0;
        for (int j = 0; j < n; j++) {
            double d = fabs((double)in[j].value - m) + sd - p->clip_ampfrac * amin;
            double var = (double)in[j].var + (double)in[j].poisson * signal;
            pass &= (d <= 0.0) | (d * d <= kappa2 * var);
            double c = in[j].cweight;
            scvar += c * c * in[j].var;
        }
        if (pass) { /* the mean of all, from the sums above (as mean_of adds them) */
            mean_out(sc, scv, scvar, n, out);
            return;
        }
    }
    clipped_full(p, in, n, scratch, out);
}

void sk_combine_clipped_unscreened(const sk_combine_params *p, const sk_combine_in *in, int n,
                                   double *scratch, sk_combine_out *out)
{
    out->nrejected = 0;
    clipped_full(p, in, n, scratch, out);
}

/* The clipped mean past the screen (n >= 3). */
static void clipped_full(const sk_combine_params *p, const sk_combine_in *in, int n, double *scratch,
                         sk_combine_out *out)
{
    /* centre on the weighted median, then on the mean of the kept */
    vw *s = (vw *)scratch;
    double *keep = scratch + 2 * n;
    int nonan = 1;
    for (int j = 0; j < n; j++) {
        s[j].v = in[j].value;
        s[j].w = in[j].cweight;
        nonan &= (s[j].v == s[j].v) & (s[j].w == s[j].w);
        keep[j] = 1.0; /* all kept, until a pass rejects one */
    }
    sort_vw(s, n, nonan);
    double centre = weighted_median(s, n);
    /* spread of the values beyond their noise (seeing and PSF differences
     * on sources): the mean squared deviation from the centre of all
     * values but the farthest, which one outlier therefore does not move,
     * less the mean noise variance */
    double mean_var = 0.0, dev2_sum = 0.0, dev2_max = -1.0;
    for (int j = 0; j < n; j++) {
        double d = (double)in[j].value - centre;
        dev2_sum += d * d;
        if (d * d > dev2_max)
            dev2_max = d * d;
        mean_var += in[j].var;
    }
    mean_var /= n;
    double spread2 = (dev2_sum - dev2_max) / (n - 1) - mean_var;
    if (!(spread2 > 0.0))
        spread2 = 0.0;
    int iters = p->clip_iterations > 0 ? p->clip_iterations : 1;
    for (int it = 0; it < iters; it++) {
        int changed = 0, nkeep = 0;
        double signal = centre > 0.0 ? centre : 0.0;
        double kappa2 = p->clip_sigma * p->clip_sigma, allowed = p->clip_ampfrac * fabs(centre);
        for (int j = 0; j < n; j++) {
            /* |value - centre| <= kappa sigma + allowed, without a root */
            double d = fabs((double)in[j].value - centre) - allowed;
            double var = (double)in[j].var + (double)in[j].poisson * signal + spread2;
            int kj = (d <= 0.0) | (d * d <= kappa2 * var);
            double k = (double)kj;
            changed |= k != keep[j];
            keep[j] = k;
            nkeep += kj;
        }
        if (nkeep == 0) { /* no value near the centre: keep them all */
            for (int j = 0; j < n; j++)
                keep[j] = 1.0;
            break;
        }
        if (!changed)
            break;
        double sc = 0.0, scv = 0.0;
        for (int j = 0; j < n; j++)
            if (keep[j] != 0.0) {
                sc += in[j].cweight;
                scv += (double)in[j].cweight * in[j].value;
            }
        centre = scv / sc;
    }
    mean_of(in, n, keep, out);
    out->nrejected = n - out->nused;
}

/* ---- the clipped mean's screen, four pixels at once */

typedef double v4df_s __attribute__((vector_size(32)));
typedef long long v4di_s __attribute__((vector_size(32)));

/* |x| of four doubles (the sign bits cleared). */
#define VABS4(x) ((v4df_s)((v4di_s)(x) & (v4di_s){0x7fffffffffffffffLL, 0x7fffffffffffffffLL,       \
                                                   0x7fffffffffffffffLL, 0x7fffffffffffffffLL}))

/* Field f of the entries of input k at the four pixels, as doubles. */
#define LANES4(b, k, ks, ls, f)                                                                    \
    ((v4df_s){((const sk_combine_in *)((b) + (k) * (ks)))->f,                                      \
              ((const sk_combine_in *)((b) + (k) * (ks) + (ls)))->f,                               \
              ((const sk_combine_in *)((b) + (k) * (ks) + 2 * (ls)))->f,                           \
              ((const sk_combine_in *)((b) + (k) * (ks) + 3 * (ls)))->f})

/* Inputs screened four pixels at once (more: sk_combine_pixel). */
#define SCREEN_MAX 64

/* The screen again, four pixels at once, for those that failed it with
 * the weighted median anywhere within one weighted standard deviation sd
 * of the mean m (C, V, VAR, PO: the used entries' combine weights, values,
 * variances and Poisson terms, unused ones with weight 0; sc: the sum of
 * the weights): the median bracketed closer, by [lo, hi] = m -+ 0.4 sd
 * when the weight of the values below lo and that of the values above hi
 * are each less than half the total (by a margin far beyond the rounding
 * of sums taken in another order). The scan of weighted_median then stops
 * at a value within [lo, hi] (or at the mean of two such), so when every
 * value passes the first pass's test for every centre in [lo, hi] at the
 * least spread, the first pass rejects nothing and the result is the mean
 * of all. Lanes where that holds are set in *out. */
static inline __attribute__((always_inline)) void
screen_narrow4(const sk_combine_params *p, const v4df_s *C, const v4df_s *V, const v4df_s *VAR,
               const v4df_s *PO, int n, const v4df_s *m, const v4df_s *sd, const v4df_s *sc, v4di_s *out)
{
    const v4df_s zero = {0, 0, 0, 0};
    const v4df_s lo = *m - 0.4 * *sd, hi = *m + 0.4 * *sd, lim = 0.5 * *sc * (1.0 - 1e-9);
    v4df_s wlo = zero, whi = zero;
    for (int k = 0; k < n; k++) {
        wlo += (v4df_s)((v4di_s)C[k] & (V[k] < lo));
        whi += (v4df_s)((v4di_s)C[k] & (V[k] > hi));
    }
    v4di_s inside = (wlo < lim) & (whi < lim);
    v4df_s alo = VABS4(lo), ahi = VABS4(hi);
    v4di_s straddle = (lo <= zero) & (hi >= zero), lower = alo < ahi;
    v4df_s amin = (v4df_s)(~straddle & ((lower & (v4di_s)alo) | (~lower & (v4di_s)ahi)));
    v4df_s signal = (v4df_s)((v4di_s)lo & (lo > zero)), slack = 1e-12 * (alo + ahi);
    const double kappa2 = p->clip_sigma * p->clip_sigma, af = p->clip_ampfrac;
    v4di_s pass = inside;
    for (int k = 0; k < n; k++) {
        v4di_s ok = C[k] > zero;
        /* the farthest centre of [lo, hi] from the value, rounded up (NaN
         * when the value is: then no test passes) */
        v4df_s d1 = VABS4(V[k] - lo), d2 = VABS4(V[k] - hi);
        v4di_s first = d1 > d2;
        v4df_s d = (v4df_s)((first & (v4di_s)d1) | (~first & (v4di_s)d2));
        d = d * (1.0 + 1e-9) + slack - af * amin;
        v4df_s vv = VAR[k] + PO[k] * signal;
        pass &= ~ok | (d <= zero) | (d * d <= kappa2 * vv);
    }
    *out = pass;
}

/* sk_combine_pixel's screen and sums (clipped, above) in four lanes: each
 * lane does the operations of one pixel in the same order, the unused
 * entries adding exact zeros, so the same bits. */
static inline __attribute__((always_inline)) unsigned
screen4(const sk_combine_params *p, const char *b, size_t ks, size_t ls, int n, sk_combine_out *out)
{
    const v4df_s zero = {0, 0, 0, 0};
    v4df_s sc = zero, scv = zero, scvar = zero, scvv = zero;
    v4df_s C[SCREEN_MAX], V[SCREEN_MAX], VAR[SCREEN_MAX], PO[SCREEN_MAX];
    v4di_s cnt = {0, 0, 0, 0};
    if (n > SCREEN_MAX)
        return 0;
    for (int k = 0; k < n; k++) {
        v4df_s c = LANES4(b, k, ks, ls, cweight), v = LANES4(b, k, ks, ls, value);
        v4df_s var = LANES4(b, k, ks, ls, var);
        v4di_s ok = c > zero;
        c = (v4df_s)((v4di_s)c & ok);
        v = (v4df_s)((v4di_s)v & ok);
        var = (v4df_s)((v4di_s)var & ok);
        C[k] = c;
        V[k] = v;
        VAR[k] = var;
        PO[k] = LANES4(b, k, ks, ls, poisson);
        sc += c;
        scv += c * v;
        scvar += c * c * var;
        cnt -= ok;
    }
    v4df_s m = scv / sc;
    for (int k = 0; k < n; k++) {
        v4df_s d = V[k] - m;
        scvv += C[k] * d * d;
    }
    v4df_s t = scvv / sc, r = zero;
    for (int l = 0; l < 4; l++)
        r[l] = sqrt(t[l]);
    v4df_s sd = r * (1.0 + 1e-9) + 1e-12 * VABS4(m);
    v4df_s lo = m - sd, hi = m + sd, alo = VABS4(lo), ahi = VABS4(hi);
    v4di_s straddle = (lo <= zero) & (hi >= zero);
    v4di_s lower = alo < ahi;
    v4df_s amin = (v4df_s)(~straddle & ((lower & (v4di_s)alo) | (~lower & (v4di_s)ahi)));
    v4df_s signal = (v4df_s)((v4di_s)lo & (lo > zero));
    const double kappa2 = p->clip_sigma * p->clip_sigma, af = p->clip_ampfrac;
    v4di_s pass = ~(v4di_s){0, 0, 0, 0};
    for (int k = 0; k < n; k++) {
        v4di_s ok = C[k] > zero;
        v4df_s d = VABS4(V[k] - m) + sd - af * amin;
        v4df_s vv = VAR[k] + PO[k] * signal;
        pass &= ~ok | (d <= zero) | (d * d <= kappa2 * vv);
    }
    v4di_s three = {3, 3, 3, 3}, fail = (cnt >= three) & ~pass;
    if (fail[0] | fail[1] | fail[2] | fail[3]) {
        v4di_s narrow;
        screen_narrow4(p, C, V, VAR, PO, n, &m, &sd, &sc, &narrow);
        pass |= narrow;
    }
    unsigned done = 0;
    for (int l = 0; l < 4; l++) {
        if (cnt[l] >= 3 && !pass[l]) {
            done |= 16u << l; /* failed: sorted and clipped */
            continue;
        }
        out[l].nrejected = 0;
        mean_out(sc[l], scv[l], scvar[l], (int)cnt[l], &out[l]);
        done |= 1u << l;
    }
    return done;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SK_HAVE_AVX2_SCREEN 1
/* AVX2 without FMA (whose fused rounding would change the sums). */
__attribute__((target("avx2"))) static unsigned screen4_avx2(const sk_combine_params *p, const char *b,
                                                              size_t ks, size_t ls, int n,
                                                              sk_combine_out *out)
{
    unsigned done = screen4(p, b, ks, ls, n, out);
    __builtin_ia32_vzeroupper();
    return done;
}
#endif

unsigned sk_combine_clipped_screen4(const sk_combine_params *p, const void *in, size_t kstride,
                                    size_t lstride, int n, sk_combine_out out[4])
{
#ifdef SK_HAVE_AVX2_SCREEN
    if (__builtin_cpu_supports("avx2"))
        return screen4_avx2(p, in, kstride, lstride, n, out);
#endif
    return screen4(p, in, kstride, lstride, n, out);
}
