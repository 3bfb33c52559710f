/* catalog_ingest.c: ingesting a reference catalogue: its files read in order of base name, every row hashed in canonical form, written to a HEALPix shard folder and/or loaded into the database, under the id of its content and column map. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <chealpix.h>

#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/log.h"
#include "core/path_priv.h"
#include "catalog_internal.h"

/* ---- canonical encoding ---- */

size_t sk_catrow_size(int nbands)
{
    return 3 * 8 + 5 * 4 + (size_t)nbands * 8;
}

static void put_le(unsigned char *o, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        o[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)in[i] << (8 * i);
    return v;
}

static void put_d(unsigned char **o, double d)
{
    uint64_t u;
    if (isnan(d))
        u = 0x7ff8000000000000ull;
    else
        memcpy(&u, &d, 8);
    put_le(*o, u, 8);
    *o += 8;
}

static void put_f(unsigned char **o, float f)
{
    uint32_t u;
    if (isnan(f))
        u = 0x7fc00000u;
    else
        memcpy(&u, &f, 4);
    put_le(*o, u, 4);
    *o += 4;
}

static double get_d(const unsigned char **in)
{
    uint64_t u = get_le(*in, 8);
    double d;
    memcpy(&d, &u, 8);
    *in += 8;
    return d;
}

static float get_f(const unsigned char **in)
{
    uint32_t u = (uint32_t)get_le(*in, 4);
    float f;
    memcpy(&f, &u, 4);
    *in += 4;
    return f;
}

void sk_catrow_encode(const sk_catrows *r, long k, unsigned char *o)
{
    put_d(&o, r->ra_deg[k]);
    put_d(&o, r->dec_deg[k]);
    put_d(&o, r->epoch_yr[k]);
    put_f(&o, r->ra_err_mas[k]);
    put_f(&o, r->dec_err_mas[k]);
    put_f(&o, r->pmra_mas_yr[k]);
    put_f(&o, r->pmdec_mas_yr[k]);
    put_f(&o, r->parallax_mas[k]);
    for (int b = 0; b < r->nbands; b++) {
        put_f(&o, r->mag[b][k]);
        put_f(&o, r->mag_err[b][k]);
    }
}

void sk_catrow_decode(const unsigned char *in, sk_catrows *r, long k)
{
    r->ra_deg[k] = get_d(&in);
    r->dec_deg[k] = get_d(&in);
    r->epoch_yr[k] = get_d(&in);
    r->ra_err_mas[k] = get_f(&in);
    r->dec_err_mas[k] = get_f(&in);
    r->pmra_mas_yr[k] = get_f(&in);
    r->pmdec_mas_yr[k] = get_f(&in);
    r->parallax_mas[k] = get_f(&in);
    for (int b = 0; b < r->nbands; b++) {
        r->mag[b][k] = get_f(&in);
        r->mag_err[b][k] = get_f(&in);
    }
}

int sk_catrows_decode_cone(const unsigned char *in, long n, double ra_deg, double dec_deg, double radius_deg,
                           sk_catrows *out)
{
    size_t rs = sk_catrow_size(out->nbands);
    for (long k = 0; k < n; k++, in += rs) {
        const unsigned char *p = in;
        double ra = get_d(&p), dec = get_d(&p);
        if (fabs(dec - dec_deg) > radius_deg || sk_cat_sep_deg(ra_deg, dec_deg, ra, dec) > radius_deg)
            continue;
        if (out->n == out->cap) {
            int st = sk_catrows_reserve(out, out->cap ? 2 * out->cap : 4096);
            if (st)
                return st;
        }
        sk_catrow_decode(in, out, out->n++);
    }
    return SK_OK;
}

/* ---- HEALPix ---- */

long sk_healpix_nest(long nside, double ra_deg, double dec_deg)
{
    long pix = 0;
    ang2pix_nest(nside, (90.0 - dec_deg) * M_PI / 180.0, ra_deg * M_PI / 180.0, &pix);
    return pix;
}

double sk_cat_sep_deg(double ra1, double dec1, double ra2, double dec2)
{
    double d2r = M_PI / 180.0;
    double sd = sin(0.5 * (dec2 - dec1) * d2r), sr = sin(0.5 * (ra2 - ra1) * d2r);
    double a = sd * sd + cos(dec1 * d2r) * cos(dec2 * d2r) * sr * sr;
    return 2.0 * asin(sqrt(fmin(1.0, a))) / d2r;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The largest angle (degrees) from a pixel's centre to any point of it at
 * nside: the centre-to-corner distance of the most distorted pixel, where the
 * polar caps meet the equatorial belt (Gorski et al. 2005), plus 1%. */
double sk_healpix_max_radius_deg(long nside)
{
    double za = 2.0 / 3.0, pa = M_PI / (4.0 * (double)nside);
    double t = 1.0 - 1.0 / (double)nside, zb = 1.0 - t * t / 3.0;
    double sa = sqrt(1.0 - za * za), sb = sqrt(1.0 - zb * zb);
    double c = sa * sb * cos(pa) + za * zb;
    return 1.01 * acos(fmax(-1.0, fmin(1.0, c))) * 180.0 / M_PI;
}

/* Points on a grid over the cone grown by two pixel radii, finer than a
 * third of the smallest pixel: every pixel that touches the cone holds one
 * of them. Pixels whose centre lies farther than the cone's radius plus the
 * largest pixel radius cannot touch it and are left out. */
int sk_healpix_cone(long nside, double ra_deg, double dec_deg, double radius_deg, long **out, long *n)
{
    *out = NULL;
    *n = 0;
    double pix_deg = sqrt(4.0 * M_PI / (12.0 * (double)nside * (double)nside)) * 180.0 / M_PI;
    double R = radius_deg + 2.0 * pix_deg, step = pix_deg / 3.0;
    long m = (long)ceil(R / step);
    long cap = (2 * m + 1) * (2 * m + 1), got = 0;
    long *pix = malloc(sizeof *pix * (size_t)cap);
    if (!pix)
        return sk_error(SK_EIO, "HEALPix cone: out of memory");
    /* a local tangent frame: (e, n) offsets in degrees from the centre */
    double a0 = ra_deg * M_PI / 180.0, d0 = dec_deg * M_PI / 180.0;
    for (long i = -m; i <= m; i++)
        for (long j = -m; j <= m; j++) {
            double xe = (double)i * step * M_PI / 180.0, yn = (double)j * step * M_PI / 180.0;
            if (xe * xe + yn * yn > (R * M_PI / 180.0) * (R * M_PI / 180.0))
                continue;
            double rho = sqrt(xe * xe + yn * yn), c = atan(rho);
            double dec = rho > 0 ? asin(cos(c) * sin(d0) + yn * sin(c) * cos(d0) / rho) : d0;
            double ra = a0 + atan2(xe * sin(c), rho * cos(d0) * cos(c) - yn * sin(d0) * sin(c));
            long p = 0;
            ang2pix_nest(nside, M_PI / 2 - dec, fmod(ra + 4 * M_PI, 2 * M_PI), &p);
            pix[got++] = p;
        }
    qsort(pix, (size_t)got, sizeof *pix, cmp_long);
    long u = 0;
    double keep_deg = radius_deg + sk_healpix_max_radius_deg(nside);
    for (long k = 0; k < got; k++) {
        if (u > 0 && pix[u - 1] == pix[k])
            continue;
        double th = 0, ph = 0;
        pix2ang_nest(nside, pix[k], &th, &ph);
        if (sk_cat_sep_deg(ra_deg, dec_deg, ph * 180.0 / M_PI, 90.0 - th * 180.0 / M_PI) <= keep_deg)
            pix[u++] = pix[k];
    }
    *out = pix;
    *n = u;
    return SK_OK;
}

/* ---- ingest ---- */

static int cmp_base(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int c = strcmp(sk_path_base_name(x), sk_path_base_name(y));
    return c ? c : strcmp(x, y);
}

typedef struct ingest_run {
    const sk_catingest_opts *o;
    sk_catmap map;
    sk_catshards *shards;
    sk_catload *load;
    sk_sha256_stream *hash;
    unsigned char *rowbuf;
    long long nrows;
} ingest_run;

static int ingest_block(ingest_run *R, const sk_catrows *rows)
{
    size_t rs = sk_catrow_size(rows->nbands);
    unsigned char *p = R->rowbuf;
    for (long k = 0; k < rows->n; k++) {
        sk_catrow_encode(rows, k, p);
        p += rs;
    }
    sk_sha256_update(R->hash, R->rowbuf, rs * (size_t)rows->n);
    R->nrows += rows->n;
    int st = R->shards ? sk_catshards_add(R->shards, rows) : SK_OK;
    return st ? st : R->load ? sk_db_catalog_load_rows(R->load, rows) : SK_OK;
}

static int ingest_files(ingest_run *R, const char **sorted, int n)
{
    long block = R->o->block_rows > 0 ? R->o->block_rows : 100000;
    sk_catrows *rows = sk_catrows_new(R->map.nbands, R->map.band);
    R->rowbuf = rows ? malloc(sk_catrow_size(R->map.nbands) * (size_t)block) : NULL;
    int st = rows && R->rowbuf ? SK_OK : sk_error(SK_EIO, "catingest: out of memory");
    for (int i = 0; !st && i < n; i++) {
        sk_catreader *rd = NULL;
        st = sk_catreader_open(sorted[i], &R->map, &rd);
        long long before = R->nrows;
        do {
            st = st ? st : sk_catreader_next(rd, block, rows);
            st = st ? st : ingest_block(R, rows);
        } while (!st && rows->n > 0);
        sk_catreader_close(rd);
        if (!st)
            sk_info("%s: %lld rows", sorted[i], R->nrows - before);
    }
    sk_catrows_free(rows);
    free(R->rowbuf);
    R->rowbuf = NULL;
    return st;
}

static int ingest_finish(ingest_run *R, sk_catinfo *info)
{
    const sk_catingest_opts *o = R->o;
    snprintf(info->name, sizeof info->name, "%s", o->name);
    snprintf(info->version, sizeof info->version, "%s", o->version ? o->version : "");
    info->nrows = R->nrows;
    sk_sha256_end(R->hash, info->content_sha256);
    R->hash = NULL;
    info->columns = sk_catmap_text(&R->map);
    info->nbands = R->map.nbands;
    memcpy(info->band, R->map.band, sizeof info->band);
    int st = info->columns ? sk_catinfo_make_id(info) : SK_EIO;
    if (!st && R->shards) {
        st = sk_catshards_finish(R->shards, info);
        R->shards = NULL;
    }
    if (!st && R->load) {
        int existed = 0;
        st = sk_db_catalog_load_end(R->load, info, &existed);
        R->load = NULL;
        if (!st && existed)
            sk_info("catalogue %s is in the database already", info->id);
    }
    return st;
}

int sk_catalog_ingest(const char *const *paths, int npaths, const sk_catingest_opts *o, sk_catinfo *info)
{
    memset(info, 0, sizeof *info);
    if (!o->name || !o->name[0])
        return sk_error(SK_EINPUT, "catingest: the catalogue needs a name (--name)");
    if (!o->outdir && !o->db)
        return sk_error(SK_EINPUT, "catingest: nowhere to put the catalogue (--outdir or the database)");
    if (npaths <= 0)
        return sk_error(SK_EINPUT, "catingest: no catalogue file given");
    ingest_run R = {.o = o};
    int st = sk_catmap_parse(o->columns ? o->columns : "gaia", &R.map);
    if (st)
        return sk_error_context("--columns");
    const char **sorted = malloc(sizeof *sorted * (size_t)npaths);
    if (!sorted)
        return sk_error(SK_EIO, "catingest: out of memory");
    memcpy(sorted, paths, sizeof *sorted * (size_t)npaths);
    qsort(sorted, (size_t)npaths, sizeof *sorted, cmp_base);
    R.hash = sk_sha256_begin();
    st = R.hash ? SK_OK : sk_error(SK_EIO, "catingest: out of memory");
    if (!st && o->outdir)
        st = sk_catshards_begin(o->outdir, o->nside > 0 ? o->nside : 64, R.map.nbands, R.map.band, &R.shards);
    if (!st && o->db)
        st = sk_db_catalog_load_begin(o->db, R.map.nbands, &R.load);
    st = st ? st : ingest_files(&R, sorted, npaths);
    st = st ? st : ingest_finish(&R, info);
    if (st) {
        if (R.hash)
            sk_sha256_end(R.hash, info->content_sha256);
        sk_catshards_abort(R.shards);
        sk_db_catalog_load_abort(R.load);
        sk_catinfo_clear(info);
    }
    free(sorted);
    return st;
}
