/* wcs.c: the celestial world coordinate system of an image through wcslib: parsing, pixel<->sky, footprint, pixel scale and writing back. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <wcslib/wcs.h>
#include <wcslib/wcsfix.h>
#include <wcslib/wcshdr.h>
#include <wcslib/wcsutil.h>
#include "skystack/error.h"
#include "skystack/wcs.h"

/* Thread safety. wcsp2s()/wcss2p() on a struct that wcsset() has prepared
 * still write to it: linprm keeps a scratch vector (lin.tmpcrd), disprm
 * another (tmpmem) for the distortion polynomials, and errors are recorded
 * in wcsprm::err. So no wcsprm is ever shared between concurrent calls:
 * `prm` is the parsed original, read only after construction (wcssub reads
 * it), and each transformation borrows a private deep copy from a pool
 * guarded by a mutex (one copy per concurrently transforming thread). */
struct wcs_pool {
    pthread_mutex_t lock;
    struct wcsprm **idle;
    int nidle, capacity;
};

struct sk_wcs {
    struct wcsprm *prm;     /* celestial axes only, wcsset() done */
    struct wcs_pool *pool;  /* private copies for transformations */
};

/* Points handed to wcslib per call (stack buffers of this many). */
#define CHUNK 256

/* wcspih() is a flex scanner; one parse at a time whatever the wcslib build. */
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;

static const double ARCSEC_PER_RAD = 180.0 / M_PI * 3600.0;

static void prm_free(struct wcsprm *p)
{
    if (p) {
        wcsfree(p);
        free(p);
    }
}

/* A deep copy made ready for transformations, or NULL (message set). */
static struct wcsprm *prm_clone(const struct wcsprm *src)
{
    struct wcsprm *dst = calloc(1, sizeof *dst);
    if (!dst) {
        sk_error(SK_EIO, "wcs: out of memory");
        return NULL;
    }
    dst->flag = -1;
    int status = wcssub(1, src, NULL, NULL, dst);
    if (status == 0)
        status = wcsset(dst);
    if (status) {
        sk_error(status == WCSERR_MEMORY ? SK_EIO : SK_EINPUT, "wcs: copying the WCS: %s",
                 wcs_errmsg[status]);
        prm_free(dst);
        return NULL;
    }
    return dst;
}

static sk_wcs *wcs_wrap(struct wcsprm *prm)
{
    sk_wcs *w = calloc(1, sizeof *w);
    struct wcs_pool *pool = calloc(1, sizeof *pool);
    if (!w || !pool || pthread_mutex_init(&pool->lock, NULL) != 0) {
        free(w);
        free(pool);
        sk_error(SK_EIO, "wcs: out of memory");
        return NULL;
    }
    w->prm = prm;
    w->pool = pool;
    return w;
}

static struct wcsprm *acquire(const sk_wcs *w)
{
    struct wcs_pool *pool = w->pool;
    struct wcsprm *p = NULL;
    pthread_mutex_lock(&pool->lock);
    if (pool->nidle > 0)
        p = pool->idle[--pool->nidle];
    pthread_mutex_unlock(&pool->lock);
    return p ? p : prm_clone(w->prm);
}

static void release(const sk_wcs *w, struct wcsprm *p)
{
    struct wcs_pool *pool = w->pool;
    pthread_mutex_lock(&pool->lock);
    if (pool->nidle == pool->capacity) {
        int cap = pool->capacity ? 2 * pool->capacity : 4;
        struct wcsprm **grown = realloc(pool->idle, (size_t)cap * sizeof *grown);
        if (grown) {
            pool->idle = grown;
            pool->capacity = cap;
        }
    }
    if (pool->nidle < pool->capacity) {
        pool->idle[pool->nidle++] = p;
        p = NULL;
    }
    pthread_mutex_unlock(&pool->lock);
    prm_free(p); /* only when the pool could not grow */
}

/* The celestial subimage of one parsed WCS, set up; NULL when it has no
 * celestial axes (*why = 0) or is unusable (*why = SK_EINPUT/SK_EIO, message set). */
static struct wcsprm *celestial_of(const struct wcsprm *src, const sk_header *h, int *why)
{
    *why = 0;
    int nsub = 1;
    int *axes = calloc((size_t)(src->naxis > 2 ? src->naxis : 2), sizeof *axes);
    struct wcsprm *sub = calloc(1, sizeof *sub);
    if (!axes || !sub) {
        free(axes);
        free(sub);
        *why = sk_error(SK_EIO, "wcs: out of memory");
        return NULL;
    }
    axes[0] = WCSSUB_CELESTIAL;
    sub->flag = -1;
    int status = wcssub(1, src, &nsub, axes, sub);
    if (status || nsub != 2) {
        if (status)
            *why = sk_error(SK_EINPUT, "WCS '%c' (CTYPE1 '%s'): %s", src->alt[0],
                            src->naxis > 0 ? src->ctype[0] : "", wcs_errmsg[status]);
        free(axes);
        prm_free(sub);
        return NULL;
    }
    int a1 = axes[0] < axes[1] ? axes[0] : axes[1], a2 = axes[0] < axes[1] ? axes[1] : axes[0];
    free(axes);
    if (a1 != 1 || a2 != 2) {
        *why = sk_error(SK_EINPUT,
                        "the celestial WCS is on axes %d and %d; images need it on axes 1 and 2",
                        a1, a2);
        prm_free(sub);
        return NULL;
    }
    /* The repairs astropy also applies: units, dates, AIPS-style NCP/GLS
     * projections, cylindrical projections with an off-image reference. */
    long n1 = 0, n2 = 0;
    int naxis[2];
    int have_naxis = sk_header_get_long(h, "NAXIS1", &n1) == 1 &&
                     sk_header_get_long(h, "NAXIS2", &n2) == 1 && n1 > 0 && n2 > 0 &&
                     n1 <= 0x7fffffff && n2 <= 0x7fffffff;
    naxis[0] = (int)n1;
    naxis[1] = (int)n2;
    /* Each fix is optional (its status ignored). celfix() and cylfix() run
     * wcsset() themselves, and a repeated failing wcsset() leaks in wcslib
     * 7.12, so a singular matrix is caught first. */
    cdfix(sub);
    datfix(sub);
    obsfix(0, sub);
    unitfix(0, sub);
    /* Even one failing wcsset() leaks in linset() when the matrix is
     * singular and a distortion (SIP) is present: test the matrix here. */
    double m[4];
    for (int i = 0; i < 4; i++)
        m[i] = (sub->altlin & 2) ? sub->cd[i] : sub->pc[i] * sub->cdelt[i / 2];
    double det = m[0] * m[3] - m[1] * m[2];
    double mag = fabs(m[0]) + fabs(m[1]) + fabs(m[2]) + fabs(m[3]);
    if (!(fabs(det) > 1e-12 * mag * mag) || !isfinite(det)) {
        *why = sk_error(SK_EINPUT, "WCS (CTYPE '%s', '%s'): %s", sub->ctype[0], sub->ctype[1],
                        wcs_errmsg[WCSERR_SINGULAR_MTX]);
        prm_free(sub);
        return NULL;
    }
    status = wcsset(sub);
    if (status != WCSERR_SINGULAR_MTX) {
        celfix(sub);
        if (have_naxis)
            cylfix(naxis, sub);
        status = wcsset(sub);
    }
    if (status) {
        *why = sk_error(SK_EINPUT, "WCS (CTYPE '%s', '%s'): %s", sub->ctype[0], sub->ctype[1],
                        wcs_errmsg[status]);
        prm_free(sub);
        return NULL;
    }
    if (sub->lng < 0 || sub->lat < 0) {
        prm_free(sub);
        return NULL;
    }
    return sub;
}

/* SIP's polynomial coefficients must stay within their order (at most 9):
 * wcslib's distortion setup fails on one beyond it and then leaks (7.12).
 * SK_EINPUT naming the card. */
static int check_sip(const sk_header *h)
{
    static const char *const poly[] = {"A", "B", "AP", "BP"};
    for (int k = 0; k < 4; k++) {
        char okey[16];
        snprintf(okey, sizeof okey, "%s_ORDER", poly[k]);
        long order = -1;
        int have = sk_header_get_long(h, okey, &order) == 1;
        size_t plen = strlen(poly[k]);
        for (int i = 0; i < h->ncards; i++) {
            const char *c = h->cards[i];
            if (strncmp(c, poly[k], plen) != 0 || c[plen] != '_')
                continue;
            /* KEY_p_q with digits only */
            int p = 0, q = 0, np = 0, nq = 0, j = (int)plen + 1;
            while (j < 8 && c[j] >= '0' && c[j] <= '9')
                p = 10 * p + (c[j++] - '0'), np++;
            if (j >= 8 || c[j] != '_' || np == 0)
                continue;
            j++;
            while (j < 8 && c[j] >= '0' && c[j] <= '9')
                q = 10 * q + (c[j++] - '0'), nq++;
            if (nq == 0 || (j < 8 && c[j] != ' '))
                continue;
            if (!have || order < 0 || order > 9 || p + q > order)
                return sk_error(SK_EINPUT, "WCS: SIP coefficient %.*s of degree %d with %s %s",
                                j, c, p + q, okey, have ? "beyond it (or above 9)" : "missing");
        }
    }
    return SK_OK;
}

int sk_wcs_from_header(const sk_header *h, sk_wcs **out)
{
    *out = NULL;
    int sip_rc = check_sip(h);
    if (sip_rc)
        return sip_rc;
    int ncards = 0;
    char *records = sk_header_records(h, &ncards);
    if (!records)
        return SK_EIO;
    /* wcspih's scanner echoes to standard output (the programs' product
     * channel) what it cannot match: a control byte of a damaged header, or
     * a WCS keyword with an undefined value ("CRPIX1  =" and nothing else).
     * Control bytes become blanks; cards with an undefined value, which
     * say nothing, become blank cards. */
    for (long c = 0; c < ncards; c++) {
        char *rec = records + c * 80;
        for (int i = 0; i < 80; i++)
            if ((unsigned char)rec[i] < 0x20 || (unsigned char)rec[i] > 0x7e)
                rec[i] = ' ';
        if (rec[8] == '=' && strspn(rec + 9, " ") >= 71)
            memset(rec, ' ', 80);
    }
    int nreject = 0, nwcs = 0;
    struct wcsprm *all = NULL;
    pthread_mutex_lock(&parse_lock);
    int status = wcspih(records, ncards, WCSHDR_all, 0, &nreject, &nwcs, &all);
    pthread_mutex_unlock(&parse_lock);
    free(records);
    if (status) {
        return sk_error(status == WCSHDRERR_MEMORY ? SK_EIO : SK_EINPUT,
                        "WCS: parsing the header: %s", wcshdr_errmsg[status]);
    }
    /* The primary description (alt ' ') first, then the alternates A..Z. */
    struct wcsprm *prm = NULL;
    int why = 0;
    for (int pass = 0; pass < 2 && !prm && !why; pass++)
        for (int i = 0; i < nwcs && !prm && !why; i++)
            if ((all[i].alt[0] == ' ') == (pass == 0))
                prm = celestial_of(&all[i], h, &why);
    wcsvfree(&nwcs, &all);
    if (why)
        return why;
    if (!prm) {
        char c1[72] = "", c2[72] = "";
        int has1 = sk_header_get_str(h, "CTYPE1", c1, sizeof c1) == 1;
        int has2 = sk_header_get_str(h, "CTYPE2", c2, sizeof c2) == 1;
        if (!has1 && !has2)
            return sk_error(SK_EINPUT, "no WCS: the header has no CTYPE1/CTYPE2 "
                                       "(celestial axes such as RA---TAN/DEC--TAN)");
        return sk_error(SK_EINPUT,
                        "no celestial WCS: CTYPE1 = '%s', CTYPE2 = '%s' name no "
                        "longitude/latitude pair with a projection",
                        c1, c2);
    }
    sk_wcs *w = wcs_wrap(prm);
    if (!w) {
        prm_free(prm);
        return SK_EIO;
    }
    *out = w;
    return SK_OK;
}

sk_wcs *sk_wcs_copy(const sk_wcs *w)
{
    struct wcsprm *prm = prm_clone(w->prm);
    if (!prm)
        return NULL;
    sk_wcs *copy = wcs_wrap(prm);
    if (!copy)
        prm_free(prm);
    return copy;
}

void sk_wcs_free(sk_wcs *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->pool->nidle; i++)
        prm_free(w->pool->idle[i]);
    free(w->pool->idle);
    pthread_mutex_destroy(&w->pool->lock);
    free(w->pool);
    prm_free(w->prm);
    free(w);
}

const void *sk_wcs_wcsprm(const sk_wcs *w)
{
    return w->prm;
}

static double norm_ra(double ra)
{
    ra = fmod(ra, 360.0);
    if (ra < 0)
        ra += 360.0;
    return ra >= 360.0 ? 0.0 : ra;
}

/* One chunk pixel->sky through wcslib; returns the number of failed points. */
static long p2s_chunk(struct wcsprm *p, int m, const double *x, const double *y, double *ra,
                      double *dec)
{
    double pix[2 * CHUNK], img[2 * CHUNK], world[2 * CHUNK], phi[CHUNK], theta[CHUNK];
    int stat[CHUNK], finite[CHUNK];
    if (m <= 0 || m > CHUNK)
        return 0;
    for (int i = 0; i < m; i++) {
        finite[i] = isfinite(x[i]) && isfinite(y[i]);
        /* Non-finite input goes in as the reference pixel, comes out NaN. */
        pix[2 * i] = finite[i] ? x[i] + 1.0 : p->crpix[0];
        pix[2 * i + 1] = finite[i] ? y[i] + 1.0 : p->crpix[1];
    }
    int status = wcsp2s(p, m, 2, pix, img, phi, theta, world, stat);
    if (status != 0 && status != WCSERR_BAD_PIX) {
        if (m > 1) { /* e.g. a distortion failing: find the points that fail */
            long bad = 0;
            for (int i = 0; i < m; i++)
                bad += p2s_chunk(p, 1, x + i, y + i, ra + i, dec + i);
            return bad;
        }
        for (int i = 0; i < m; i++)
            stat[i] = 1;
    }
    long bad = 0;
    for (int i = 0; i < m; i++) {
        double r = world[2 * i + p->lng], d = world[2 * i + p->lat];
        if ((status == 0 || !stat[i]) && finite[i] && isfinite(r) && isfinite(d)) {
            ra[i] = norm_ra(r);
            dec[i] = d;
        } else {
            ra[i] = dec[i] = NAN;
            bad++;
        }
    }
    return bad;
}

/* One chunk sky->pixel through wcslib; returns the number of failed points. */
static long s2p_chunk(struct wcsprm *p, int m, const double *ra, const double *dec, double *x,
                      double *y)
{
    double pix[2 * CHUNK], img[2 * CHUNK], world[2 * CHUNK], phi[CHUNK], theta[CHUNK];
    int stat[CHUNK], finite[CHUNK];
    if (m <= 0 || m > CHUNK)
        return 0;
    for (int i = 0; i < m; i++) {
        finite[i] = isfinite(ra[i]) && isfinite(dec[i]) && fabs(dec[i]) <= 90.0;
        world[2 * i + p->lng] = finite[i] ? ra[i] : p->crval[p->lng];
        world[2 * i + p->lat] = finite[i] ? dec[i] : p->crval[p->lat];
    }
    int status = wcss2p(p, m, 2, world, phi, theta, img, pix, stat);
    if (status != 0 && status != WCSERR_BAD_WORLD) {
        if (m > 1) {
            long bad = 0;
            for (int i = 0; i < m; i++)
                bad += s2p_chunk(p, 1, ra + i, dec + i, x + i, y + i);
            return bad;
        }
        for (int i = 0; i < m; i++)
            stat[i] = 1;
    }
    long bad = 0;
    for (int i = 0; i < m; i++) {
        if ((status == 0 || !stat[i]) && finite[i] && isfinite(pix[2 * i]) &&
            isfinite(pix[2 * i + 1])) {
            x[i] = pix[2 * i] - 1.0;
            y[i] = pix[2 * i + 1] - 1.0;
        } else {
            x[i] = y[i] = NAN;
            bad++;
        }
    }
    return bad;
}

/* n points (a, b) -> (u, v), pixel to sky (to_sky) or sky to pixel, chunk
 * by chunk with a private copy of the WCS; SK_EINPUT when some fail. */
static int transform(const sk_wcs *w, int to_sky, long n, const double *a, const double *b,
                     double *u, double *v)
{
    if (n <= 0)
        return SK_OK;
    struct wcsprm *p = acquire(w);
    if (!p)
        return sk_errstatus();
    long bad = 0;
    for (long k = 0; k < n; k += CHUNK) {
        int m = (int)(n - k < CHUNK ? n - k : CHUNK);
        bad += to_sky ? p2s_chunk(p, m, a + k, b + k, u + k, v + k)
                      : s2p_chunk(p, m, a + k, b + k, u + k, v + k);
    }
    release(w, p);
    if (bad)
        return sk_error(SK_EINPUT, "wcs: %ld of %ld %s positions have no %s coordinates", bad, n,
                        to_sky ? "pixel" : "sky", to_sky ? "sky" : "pixel");
    return SK_OK;
}

int sk_wcs_pix2sky(const sk_wcs *w, long n, const double *x, const double *y, double *ra_deg,
                   double *dec_deg)
{
    return transform(w, 1, n, x, y, ra_deg, dec_deg);
}

int sk_wcs_sky2pix(const sk_wcs *w, long n, const double *ra_deg, const double *dec_deg,
                   double *x, double *y)
{
    return transform(w, 0, n, ra_deg, dec_deg, x, y);
}

/* ---- pixel area from the local Jacobian on the sphere ---- */

static void unit_vector(double ra_deg, double dec_deg, double v[3])
{
    double a = ra_deg * (M_PI / 180.0), d = dec_deg * (M_PI / 180.0);
    v[0] = cos(d) * cos(a);
    v[1] = cos(d) * sin(a);
    v[2] = sin(d);
}

double sk_wcs_pixel_area_arcsec2(const sk_wcs *w, double x, double y)
{
    /* Central differences of the unit vector along x and y (half a pixel
     * either side); the area is |d/dx x d/dy| in steradian per pixel. */
    const double step = 0.5;
    double px[4] = {x - step, x + step, x, x}, py[4] = {y, y, y - step, y + step};
    double ra[4], dec[4], v[4][3];
    if (sk_wcs_pix2sky(w, 4, px, py, ra, dec) != SK_OK)
        return NAN;
    for (int i = 0; i < 4; i++)
        unit_vector(ra[i], dec[i], v[i]);
    double dx[3], dy[3];
    for (int k = 0; k < 3; k++) {
        dx[k] = (v[1][k] - v[0][k]) / (2 * step);
        dy[k] = (v[3][k] - v[2][k]) / (2 * step);
    }
    double c0 = dx[1] * dy[2] - dx[2] * dy[1];
    double c1 = dx[2] * dy[0] - dx[0] * dy[2];
    double c2 = dx[0] * dy[1] - dx[1] * dy[0];
    return sqrt(c0 * c0 + c1 * c1 + c2 * c2) * ARCSEC_PER_RAD * ARCSEC_PER_RAD;
}

double sk_wcs_pixel_scale_arcsec(const sk_wcs *w, double x, double y)
{
    return sqrt(sk_wcs_pixel_area_arcsec2(w, x, y));
}

double sk_wcs_grid_offset_arcsec(const sk_wcs *a, const sk_wcs *b, long width, long height)
{
    double x[5] = {0, (double)width - 1, 0, (double)width - 1, 0.5 * (double)(width - 1)};
    double y[5] = {0, 0, (double)height - 1, (double)height - 1, 0.5 * (double)(height - 1)};
    double ra1[5], de1[5], ra2[5], de2[5];
    if (sk_wcs_pix2sky(a, 5, x, y, ra1, de1) || sk_wcs_pix2sky(b, 5, x, y, ra2, de2)) {
        sk_error_clear();
        return NAN;
    }
    double worst = 0;
    for (int k = 0; k < 5; k++) {
        double dra = fmod(ra1[k] - ra2[k] + 540.0, 360.0) - 180.0;
        double d = 3600.0 * hypot(dra * cos(de1[k] * M_PI / 180.0), de1[k] - de2[k]);
        if (!(d <= worst))
            worst = d;
    }
    return worst;
}

/* ---- footprint ---- */

/* Sample k of the closed outline of the image: `per_edge` samples on each
 * of the four outer edges, sample 0 of edge e at corner e, corners in the
 * order of sk_footprint. */
static void outline_point(long width, long height, int per_edge, long k, double *x, double *y)
{
    const double cx[4] = {-0.5, width - 0.5, width - 0.5, -0.5};
    const double cy[4] = {-0.5, -0.5, height - 0.5, height - 0.5};
    int e = (int)(k / per_edge) % 4, f = (e + 1) % 4;
    double t = (double)(k % per_edge) / per_edge;
    *x = cx[e] + (cx[f] - cx[e]) * t;
    *y = cy[e] + (cy[f] - cy[e]) * t;
}

/* The smallest and largest of v[0 .. n-1], n >= 1. */
static void min_max(const double *v, long n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (long k = 1; k < n; k++) {
        if (v[k] < *lo)
            *lo = v[k];
        if (v[k] > *hi)
            *hi = v[k];
    }
}

int sk_wcs_footprint(const sk_wcs *w, long width, long height, sk_footprint *fp)
{
    memset(fp, 0, sizeof *fp);
    if (width <= 0 || height <= 0)
        return sk_error(SK_EINPUT, "wcs footprint: image size %ldx%ld", width, height);
    double x = (width - 1) / 2.0, y = (height - 1) / 2.0;
    if (sk_wcs_pix2sky(w, 1, &x, &y, &fp->ra_deg, &fp->dec_deg) != SK_OK)
        return sk_error(SK_EINPUT, "wcs footprint: the image centre has no sky position");

    long longest = width > height ? width : height;
    /* One sample per 32 px, 64 to 1024 per edge. An extreme RA or dec
     * between two samples of a curved edge is missed by curvature x
     * (spacing/2)^2: about 1 mas along a 6-degree plate, far less on a CCD. */
    int per_edge = (int)(64 + (longest < 32L * 960 ? longest / 32 : 960));
    long nsamp = 4L * per_edge;
    double *buf = malloc((size_t)nsamp * 4 * sizeof *buf);
    if (!buf)
        return sk_error(SK_EIO, "wcs footprint: out of memory");
    double *px = buf, *py = buf + nsamp, *ra = buf + 2 * nsamp, *dec = buf + 3 * nsamp;
    for (long k = 0; k < nsamp; k++)
        outline_point(width, height, per_edge, k, &px[k], &py[k]);
    if (sk_wcs_pix2sky(w, nsamp, px, py, ra, dec) != SK_OK) {
        free(buf);
        return sk_error(SK_EINPUT,
                        "wcs footprint: parts of the %ldx%ld image edge have no sky position",
                        width, height);
    }
    for (int c = 0; c < 4; c++) {
        fp->corner_ra_deg[c] = ra[(long)c * per_edge];
        fp->corner_dec_deg[c] = dec[(long)c * per_edge];
    }

    /* RA unwrapped along the closed outline: its winding says whether a
     * pole is inside, its extent gives the RA range otherwise. */
    double *unwrapped = px; /* pixel positions are no longer needed */
    unwrapped[0] = ra[0];
    for (long k = 1; k < nsamp; k++) {
        double step = ra[k] - ra[k - 1];
        step -= 360.0 * round(step / 360.0);
        unwrapped[k] = unwrapped[k - 1] + step;
    }
    double closing = ra[0] - ra[nsamp - 1];
    closing -= 360.0 * round(closing / 360.0);
    double winding = unwrapped[nsamp - 1] + closing - unwrapped[0];

    /* A pole inside the outer pixel edges (sky2pix), or an outline winding around one. */
    for (int s = 1; s >= -1; s -= 2) {
        double pra = 0.0, pdec = 90.0 * s, pxx, pyy;
        if (sk_wcs_sky2pix(w, 1, &pra, &pdec, &pxx, &pyy) == SK_OK && pxx >= -0.5 &&
            pxx <= width - 0.5 && pyy >= -0.5 && pyy <= height - 0.5) {
            fp->contains_pole = s;
            break;
        }
    }
    if (!fp->contains_pole && fabs(winding) > 180.0)
        fp->contains_pole = fp->dec_deg >= 0 ? 1 : -1;

    min_max(dec, nsamp, &fp->mindec_deg, &fp->maxdec_deg);
    if (fp->contains_pole) {
        fp->minra_deg = 0.0;
        fp->maxra_deg = 360.0;
        if (fp->contains_pole > 0)
            fp->maxdec_deg = 90.0;
        else
            fp->mindec_deg = -90.0;
    } else {
        double lo, hi;
        min_max(unwrapped, nsamp, &lo, &hi);
        fp->minra_deg = norm_ra(lo);
        fp->maxra_deg = fp->minra_deg + (hi - lo);
        if (fp->maxra_deg > 360.0)
            fp->maxra_deg -= 360.0;
    }
    free(buf);
    sk_error_clear(); /* the pole look-ups may have failed, harmlessly */
    return SK_OK;
}

/* ---- writing back ---- */

/* What follows "PREFIX" and one or more digits at the start of s, or NULL. */
static const char *after_digits(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0)
        return NULL;
    s += n;
    if (!isdigit((unsigned char)*s))
        return NULL;
    while (isdigit((unsigned char)*s))
        s++;
    return s;
}

/* The end of a keyword: nothing, or an alternate letter where allowed. */
static int alt_end(const char *s, int allow_alt)
{
    if (allow_alt && *s >= 'A' && *s <= 'Z')
        s++;
    return *s == '\0';
}

/* "PREFIX" then 1+ digits then an optional alternate letter. */
static int digits_alt(const char *s, const char *prefix, int allow_alt)
{
    s = after_digits(s, prefix);
    return s && alt_end(s, allow_alt);
}

/* "PREFIX" i "_" j then an optional alternate letter. */
static int pair_alt(const char *s, const char *prefix, int allow_alt)
{
    s = after_digits(s, prefix);
    return s && digits_alt(s, "_", allow_alt);
}

/* Keyword name with an optional alternate letter. */
static int word_alt(const char *s, const char *word)
{
    size_t n = strlen(word);
    return strncmp(s, word, n) == 0 && alt_end(s + n, 1);
}

/* Does this keyword describe a celestial WCS in any convention wcslib reads
 * (standard and alternate descriptions, distortions, SIP, TPV, DSS plate
 * solutions, IRAF WAT)? Those are all replaced by sk_wcs_to_header. */
static int is_wcs_keyword(const char *key)
{
    static const char *const words[] = {"WCSAXES", "WCSNAME", "LONPOLE", "LATPOLE", "RADESYS",
                                        "EQUINOX", "DVERR"};
    static const char *const exact[] = {"RADECSYS", "EPOCH",    "WCSDIM",   "A_ORDER",
                                        "B_ORDER",  "AP_ORDER", "BP_ORDER", "A_DMAX",
                                        "B_DMAX",   "PLTRAH",   "PLTRAM",   "PLTRAS",
                                        "PLTDECSN", "PLTDECD",  "PLTDECM",  "PLTDECS",
                                        "CNPIX1",   "CNPIX2",   "PLTSCALE", "XPIXELSZ",
                                        "YPIXELSZ"};
    static const char *const indexed[] = {"CRPIX", "CRVAL", "CDELT", "CTYPE", "CUNIT",
                                          "CROTA", "CNAME", "CRDER", "CSYER", "CPDIS",
                                          "CQDIS", "CPERR", "CQERR", "DP",    "DQ"};
    static const char *const pairs[] = {"PC", "CD", "PV", "PS"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (word_alt(key, words[i]))
            return 1;
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strcmp(key, exact[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof indexed / sizeof *indexed; i++)
        if (digits_alt(key, indexed[i], 1))
            return 1;
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
        if (pair_alt(key, pairs[i], 1))
            return 1;
    /* Old forms PC001001/CD001001, PROJPn; DSS AMDXn/AMDYn/PPOn; SIP; WAT. */
    if ((strncmp(key, "PC", 2) == 0 || strncmp(key, "CD", 2) == 0) && strlen(key) == 8 &&
        strspn(key + 2, "0123456789") == 6)
        return 1;
    if (digits_alt(key, "PROJP", 0) || digits_alt(key, "AMDX", 0) ||
        digits_alt(key, "AMDY", 0) || digits_alt(key, "PPO", 0))
        return 1;
    if (pair_alt(key, "A_", 0) || pair_alt(key, "B_", 0) || pair_alt(key, "AP_", 0) ||
        pair_alt(key, "BP_", 0))
        return 1;
    if (pair_alt(key, "WAT", 0))
        return 1;
    return 0;
}

/* The keyword of a card (first 8 columns, blanks trimmed). */
static void card_key(const char *card, char key[9])
{
    memcpy(key, card, 8);
    key[8] = '\0';
    for (int i = 7; i >= 0 && key[i] == ' '; i--)
        key[i] = '\0';
}

int sk_wcs_to_header(const sk_wcs *w, sk_header *h)
{
    struct wcsprm *p = prm_clone(w->prm);
    if (!p)
        return sk_errstatus();
    /* Written as the primary description of an image header. */
    p->alt[0] = ' ';
    p->alt[1] = '\0';
    p->colnum = 0;
    for (int i = 0; i < p->naxis; i++)
        p->colax[i] = 0;
    int nkey = 0;
    char *records = NULL;
    int status = wcshdo(WCSHDO_safe | WCSHDO_P17, p, &nkey, &records);
    prm_free(p);
    if (status) {
        wcsdealloc(records);
        return sk_error(SK_EINPUT, "wcs: writing the header: %s", wcs_errmsg[status]);
    }
    for (int i = 0; i < h->ncards;) {
        char key[9];
        card_key(h->cards[i], key);
        if (h->cards[i][8] == '=' && is_wcs_keyword(key) && sk_header_delete(h, key) > 0)
            continue;
        i++;
    }
    /* Only WCS cards: wcshdo also writes DATE-OBS, MJD-OBS... from what it
     * parsed, which the header already holds in its own words. */
    int rc = SK_OK;
    for (int i = 0; i < nkey && rc == SK_OK; i++) {
        const char *card = records + (size_t)i * 80;
        char key[9];
        card_key(card, key);
        if (card[8] == '=' && is_wcs_keyword(key))
            rc = sk_header_append_records(h, card, 1);
    }
    wcsdealloc(records);
    return rc;
}
