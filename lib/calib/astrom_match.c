/* astrom_match.c: matching point lists: least-squares similarity transforms, triangle pattern matching of the brightest points, and one-to-one nearest neighbours on a grid. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "astrom_priv.h"

int astrom_sim_fit(const double *x, const double *y, const double *X, const double *Y, long n,
                   const char *keep, astrom_sim *t)
{
    double mx = 0, my = 0, mX = 0, mY = 0;
    long m = 0;
    for (long k = 0; k < n; k++) {
        if (keep && !keep[k])
            continue;
        mx += x[k];
        my += y[k];
        mX += X[k];
        mY += Y[k];
        m++;
    }
    if (m < 2)
        return -1;
    mx /= (double)m;
    my /= (double)m;
    mX /= (double)m;
    mY /= (double)m;
    /* complex least squares: (X + iY) - mean = (a + ib) ((x + iy) - mean) */
    double sre = 0, sim = 0, s2 = 0;
    for (long k = 0; k < n; k++) {
        if (keep && !keep[k])
            continue;
        double u = x[k] - mx, v = y[k] - my, U = X[k] - mX, V = Y[k] - mY;
        sre += U * u + V * v;
        sim += V * u - U * v;
        s2 += u * u + v * v;
    }
    if (!(s2 > 0))
        return -1;
    t->a = sre / s2;
    t->b = sim / s2;
    t->tx = mX - (t->a * mx - t->b * my);
    t->ty = mY - (t->b * mx + t->a * my);
    return 0;
}

/* ---- a grid of points for radius queries ---- */

typedef struct pgrid {
    double x0, y0, cell;
    long nx, ny;
    long *start;   /* nx*ny + 1 */
    long *idx;     /* point indices by cell */
    const double *x, *y;
} pgrid;

static int pgrid_init(pgrid *g, const double *x, const double *y, long n, double cell)
{
    memset(g, 0, sizeof *g);
    g->x = x;
    g->y = y;
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    for (long k = 0; k < n; k++) {
        if (!isfinite(x[k]) || !isfinite(y[k]))
            continue;
        x0 = fmin(x0, x[k]);
        y0 = fmin(y0, y[k]);
        x1 = fmax(x1, x[k]);
        y1 = fmax(y1, y[k]);
    }
    if (!(x1 >= x0)) {
        x0 = y0 = 0;
        x1 = y1 = 1;
    }
    if (!(cell > 0))
        cell = 1;
    /* no more cells than about 4 per point */
    while (((x1 - x0) / cell + 1) * ((y1 - y0) / cell + 1) > 4.0 * (double)n + 1024)
        cell *= 2;
    g->x0 = x0;
    g->y0 = y0;
    g->cell = cell;
    g->nx = (long)((x1 - x0) / cell) + 1;
    g->ny = (long)((y1 - y0) / cell) + 1;
    g->start = calloc((size_t)(g->nx * g->ny + 1), sizeof *g->start);
    g->idx = malloc(sizeof *g->idx * (size_t)(n + 1));
    long *fill = calloc((size_t)(g->nx * g->ny + 1), sizeof *fill);
    if (!g->start || !g->idx || !fill) {
        free(fill);
        free(g->start);
        free(g->idx);
        return -1;
    }
    for (long k = 0; k < n; k++) {
        if (!isfinite(x[k]) || !isfinite(y[k]))
            continue;
        long cx = (long)((x[k] - x0) / cell), cy = (long)((y[k] - y0) / cell);
        g->start[cy * g->nx + cx + 1]++;
    }
    for (long c = 0; c < g->nx * g->ny; c++)
        g->start[c + 1] += g->start[c];
    for (long k = 0; k < n; k++) {
        if (!isfinite(x[k]) || !isfinite(y[k]))
            continue;
        long c = (long)((y[k] - y0) / cell) * g->nx + (long)((x[k] - x0) / cell);
        g->idx[g->start[c] + fill[c]++] = k;
    }
    free(fill);
    return 0;
}

static void pgrid_free(pgrid *g)
{
    free(g->start);
    free(g->idx);
}

/* Nearest point within r of (x, y), or -1; *d2 gets its squared distance. */
static long pgrid_nearest(const pgrid *g, double x, double y, double r, double *d2)
{
    long best = -1;
    double bd = r * r;
    long cx0 = (long)floor((x - r - g->x0) / g->cell), cx1 = (long)floor((x + r - g->x0) / g->cell);
    long cy0 = (long)floor((y - r - g->y0) / g->cell), cy1 = (long)floor((y + r - g->y0) / g->cell);
    if (cx0 < 0) cx0 = 0;
    if (cy0 < 0) cy0 = 0;
    if (cx1 >= g->nx) cx1 = g->nx - 1;
    if (cy1 >= g->ny) cy1 = g->ny - 1;
    for (long cy = cy0; cy <= cy1; cy++)
        for (long cx = cx0; cx <= cx1; cx++) {
            long c = cy * g->nx + cx;
            for (long q = g->start[c]; q < g->start[c + 1]; q++) {
                long k = g->idx[q];
                double dx = g->x[k] - x, dy = g->y[k] - y, d = dx * dx + dy * dy;
                if (d <= bd && (best < 0 || d < bd || k < best)) {
                    bd = d;
                    best = k;
                }
            }
        }
    if (d2)
        *d2 = bd;
    return best;
}

long astrom_nn_match(const double *sx, const double *sy, long ns, const double *rx,
                     const double *ry, long nr, double radius, long *src_idx, long *ref_idx)
{
    pgrid g;
    if (pgrid_init(&g, rx, ry, nr, radius) != 0)
        return -1;
    long *claim = malloc(sizeof *claim * (size_t)(nr + 1));
    double *cd = malloc(sizeof *cd * (size_t)(nr + 1));
    long *best = malloc(sizeof *best * (size_t)(ns + 1));
    if (!claim || !cd || !best) {
        free(claim);
        free(cd);
        free(best);
        pgrid_free(&g);
        return -1;
    }
    for (long k = 0; k < nr; k++) {
        claim[k] = -1;
        cd[k] = INFINITY;
    }
    for (long i = 0; i < ns; i++) {
        double d2 = 0;
        best[i] = isfinite(sx[i]) && isfinite(sy[i]) ? pgrid_nearest(&g, sx[i], sy[i], radius, &d2) : -1;
        if (best[i] >= 0 && (d2 < cd[best[i]] || (d2 == cd[best[i]] && i < claim[best[i]]))) {
            cd[best[i]] = d2;
            claim[best[i]] = i;
        }
    }
    long n = 0;
    for (long i = 0; i < ns; i++)
        if (best[i] >= 0 && claim[best[i]] == i) {
            src_idx[n] = i;
            ref_idx[n] = best[i];
            n++;
        }
    free(claim);
    free(cd);
    free(best);
    pgrid_free(&g);
    return n;
}

/* ---- triangles ---- */

typedef struct tri {
    double r1, r2;   /* middle / longest, shortest / longest side */
    double a;        /* longest side (px) */
    int v[3];        /* vertices opposite the longest, middle, shortest side */
    int orient;      /* sign of the turn v0 -> v1 -> v2 */
} tri;

static int cmp_tri(const void *p, const void *q)
{
    const tri *a = p, *b = q;
    if (a->r1 != b->r1)
        return (a->r1 > b->r1) - (a->r1 < b->r1);
    for (int i = 0; i < 3; i++)
        if (a->v[i] != b->v[i])
            return (a->v[i] > b->v[i]) - (a->v[i] < b->v[i]);
    return 0;
}

/* All triangles of the first n points whose longest side is at least
 * min_side and whose sides differ enough for their vertices to be named
 * without ambiguity. */
static long make_triangles(const double *x, const double *y, long n, double min_side, tri **out)
{
    long cap = n * (n - 1) * (n - 2) / 6 + 1;
    tri *t = malloc(sizeof *t * (size_t)cap);
    *out = t;
    if (!t)
        return -1;
    long m = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            for (int k = j + 1; k < n; k++) {
                double s[3] = {hypot(x[j] - x[k], y[j] - y[k]), hypot(x[i] - x[k], y[i] - y[k]),
                               hypot(x[i] - x[j], y[i] - y[j])};
                int o[3] = {i, j, k};
                /* sort sides descending, carrying the opposite vertices */
                for (int p = 0; p < 2; p++)
                    for (int q = 0; q < 2 - p; q++)
                        if (s[q] < s[q + 1]) {
                            double ts = s[q];
                            s[q] = s[q + 1];
                            s[q + 1] = ts;
                            int to = o[q];
                            o[q] = o[q + 1];
                            o[q + 1] = to;
                        }
                if (!(s[0] >= min_side) || (s[0] - s[1]) < 0.03 * s[0] || (s[1] - s[2]) < 0.03 * s[0] ||
                    s[2] < 0.1 * s[0])
                    continue;
                tri *r = &t[m++];
                r->a = s[0];
                r->r1 = s[1] / s[0];
                r->r2 = s[2] / s[0];
                r->v[0] = o[0];
                r->v[1] = o[1];
                r->v[2] = o[2];
                double cr = (x[o[1]] - x[o[0]]) * (y[o[2]] - y[o[0]]) -
                            (y[o[1]] - y[o[0]]) * (x[o[2]] - x[o[0]]);
                r->orient = cr > 0 ? 1 : -1;
            }
    return m;
}

/* The reference triangles by orientation and shortest-side ratio r2, in
 * buckets one tolerance wide; each bucket lists its triangles (their
 * ratios beside their index, read in sequence) in the r1-sorted order of
 * the array, so that the candidates of a triangle are visited in that
 * order whatever the buckets. */
typedef struct tri_key {
    double r1, r2, a;
    long j;       /* index in the r1-sorted array */
} tri_key;

typedef struct tri_buckets {
    long nb;      /* buckets of r2 per orientation */
    long *start;  /* 2 nb + 1 */
    tri_key *key; /* bucket by bucket */
} tri_buckets;

static int cmp_long(const void *p, const void *q)
{
    long a = *(const long *)p, b = *(const long *)q;
    return (a > b) - (a < b);
}

static long tri_bucket_of(double r2, double eps, long nb)
{
    long b = (long)floor(r2 / eps);
    return b < 0 ? 0 : b >= nb ? nb - 1 : b;
}

static int tri_buckets_init(tri_buckets *tb, const tri *t, long n, double eps)
{
    tb->nb = (long)(1.0 / eps) + 2;
    tb->start = calloc((size_t)(2 * tb->nb + 1), sizeof *tb->start);
    tb->key = malloc(sizeof *tb->key * (size_t)(n + 1));
    long *fill = calloc((size_t)(2 * tb->nb + 1), sizeof *fill);
    if (!tb->start || !tb->key || !fill) {
        free(fill);
        free(tb->start);
        free(tb->key);
        return -1;
    }
    for (long j = 0; j < n; j++)
        tb->start[(t[j].orient > 0) * tb->nb + tri_bucket_of(t[j].r2, eps, tb->nb) + 1]++;
    for (long c = 0; c < 2 * tb->nb; c++)
        tb->start[c + 1] += tb->start[c];
    for (long j = 0; j < n; j++) {
        long c = (t[j].orient > 0) * tb->nb + tri_bucket_of(t[j].r2, eps, tb->nb);
        tb->key[tb->start[c] + fill[c]++] = (tri_key){t[j].r1, t[j].r2, t[j].a, j};
    }
    free(fill);
    return 0;
}

/* The indices of the reference triangles of a's orientation whose r1 and
 * r2 are within eps of a's and whose longest side is sc_lo to sc_hi times
 * a's, ascending. Returns their number; *out (grown as needed) holds them. */
static long tri_candidates(const tri_buckets *tb, const tri *a, double eps, double sc_lo, double sc_hi,
                           long **out, long *cap)
{
    long b_lo = tri_bucket_of(a->r2 - eps, eps, tb->nb), b_hi = tri_bucket_of(a->r2 + eps, eps, tb->nb);
    const tri_key *pos[3], *end[3];
    int nl = 0;
    double r1_hi = a->r1 + eps;
    for (long b = b_lo; b <= b_hi && nl < 3; b++) {
        long c = (a->orient > 0) * tb->nb + b, lo = tb->start[c], hi = tb->start[c + 1];
        end[nl] = tb->key + hi;
        while (lo < hi) {
            long mid = (lo + hi) / 2;
            if (tb->key[mid].r1 < a->r1 - eps)
                lo = mid + 1;
            else
                hi = mid;
        }
        pos[nl++] = tb->key + lo;
    }
    long n = 0;
    for (int l = 0; l < nl; l++)
        for (const tri_key *k = pos[l]; k < end[l] && k->r1 <= r1_hi; k++) {
            double sc = k->a / a->a;
            if (fabs(k->r2 - a->r2) > eps || sc < sc_lo || sc > sc_hi)
                continue;
            if (n == *cap) {
                long ncap = *cap ? 2 * *cap : 256;
                long *g = realloc(*out, sizeof *g * (size_t)ncap);
                if (!g)
                    return -1;
                *out = g;
                *cap = ncap;
            }
            (*out)[n++] = k->j;
        }
    /* the buckets' lists, each ascending, into one */
    if (nl > 1)
        qsort(*out, (size_t)n, sizeof **out, cmp_long);
    return n;
}

int astrom_pattern_match(const double *sx, const double *sy, long ns, const double *rx,
                         const double *ry, long nr, double cx, double cy, double max_rot_deg,
                         double max_scale, double max_shift_px, double tol_px, astrom_sim *best,
                         long *support)
{
    *support = 0;
    if (ns < 3 || nr < 3)
        return -1;
    tri *ts = NULL, *tr = NULL;
    long nts = make_triangles(sx, sy, ns, 8.0 * tol_px, &ts);
    long ntr = make_triangles(rx, ry, nr, 8.0 * tol_px, &tr);
    pgrid g;
    int grid_ok = pgrid_init(&g, rx, ry, nr, tol_px) == 0;
    if (nts < 0 || ntr < 0 || !grid_ok) {
        free(ts);
        free(tr);
        if (grid_ok)
            pgrid_free(&g);
        return -1;
    }
    qsort(tr, (size_t)ntr, sizeof *tr, cmp_tri);
    const double eps = 0.02;
    tri_buckets tb;
    long *cand = NULL, cand_cap = 0;
    if (tri_buckets_init(&tb, tr, ntr, eps) != 0) {
        free(ts);
        free(tr);
        pgrid_free(&g);
        return -1;
    }
    double rot_lim = (max_rot_deg + 0.5) * M_PI / 180.0;
    double sc_lo = 1.0 / (1.0 + max_scale + 0.01), sc_hi = 1.0 + max_scale + 0.01;
    long best_n = 0;
    double best_res = INFINITY;
    for (long i = 0; i < nts; i++) {
        const tri *a = &ts[i];
        long nc = tri_candidates(&tb, a, eps, sc_lo, sc_hi, &cand, &cand_cap);
        if (nc < 0) {
            best_n = 0;
            break;
        }
        for (long q = 0; q < nc; q++) {
            const tri *b = &tr[cand[q]];
            /* rotation of the longest side's opposite-vertex chord */
            double ax = sx[a->v[1]] - sx[a->v[0]], ay = sy[a->v[1]] - sy[a->v[0]];
            double bx = rx[b->v[1]] - rx[b->v[0]], by = ry[b->v[1]] - ry[b->v[0]];
            double rot = atan2(ax * by - ay * bx, ax * bx + ay * by);
            if (fabs(rot) > rot_lim)
                continue;
            double x3[3], y3[3], X3[3], Y3[3];
            for (int v = 0; v < 3; v++) {
                x3[v] = sx[a->v[v]];
                y3[v] = sy[a->v[v]];
                X3[v] = rx[b->v[v]];
                Y3[v] = ry[b->v[v]];
            }
            astrom_sim t;
            if (astrom_sim_fit(x3, y3, X3, Y3, 3, NULL, &t) != 0)
                continue;
            double X, Y;
            astrom_sim_apply(&t, cx, cy, &X, &Y);
            if (hypot(X - cx, Y - cy) > max_shift_px)
                continue;
            long n = 0;
            double res = 0;
            /* stop once the points left cannot bring it level with the best */
            for (long k = 0; k < ns && n + (ns - k) >= best_n; k++) {
                double d2;
                astrom_sim_apply(&t, sx[k], sy[k], &X, &Y);
                if (pgrid_nearest(&g, X, Y, tol_px, &d2) >= 0) {
                    n++;
                    res += d2;
                }
            }
            if (n > best_n || (n == best_n && n > 0 && res < best_res)) {
                best_n = n;
                best_res = res;
                *best = t;
            }
        }
    }
    free(cand);
    free(tb.start);
    free(tb.key);
    free(ts);
    free(tr);
    pgrid_free(&g);
    *support = best_n;
    return best_n >= 3 ? 0 : -1;
}
