/* catalog_shards.c: the file-only copy of a reference catalogue: a folder of HEALPix (nested) shards, each a FITS table of canonical columns, with index.json naming the catalogue and its shards; written by catingest, read shard by shard for a cone. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "skystack/atomic.h"
#include "skystack/error.h"
#include "skystack/json.h"
#include "skystack/table.h"
#include "skystack/fits.h"
#include "catalog_internal.h"

#define SHARD_FORMAT "skystack-refcat-shards"

struct sk_catshards {
    char outdir[4096], tmp[4200];
    long nside, npix;
    long *count;            /* rows per pixel */
    int nbands;
    char band[SK_CAT_MAXBANDS][SK_CAT_BANDLEN];
    long *order;            /* block scratch */
    long ordercap;
    const long *sortpix;    /* qsort context */
};

int sk_catshards_begin(const char *outdir, long nside, int nbands, char band[][SK_CAT_BANDLEN],
                       sk_catshards **out)
{
    *out = NULL;
    if (nside < 1 || nside > 256 || (nside & (nside - 1)))
        return sk_error(SK_EINPUT, "--nside %ld: a power of 2 from 1 to 256", nside);
    struct stat sb;
    if (stat(outdir, &sb) == 0)
        return sk_error(SK_EINPUT, "%s: exists already (catingest writes a new folder)", outdir);
    sk_catshards *w = calloc(1, sizeof *w);
    if (!w)
        return sk_error(SK_EIO, "catingest: out of memory");
    snprintf(w->outdir, sizeof w->outdir, "%s", outdir);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp-%ld", outdir, (long)getpid());
    w->nside = nside;
    w->npix = 12 * nside * nside;
    w->nbands = nbands;
    memcpy(w->band, band, sizeof w->band[0] * (size_t)nbands);
    w->count = calloc((size_t)w->npix, sizeof *w->count);
    int st = w->count ? sk_mkdir_p(w->tmp) : sk_error(SK_EIO, "catingest: out of memory");
    if (st) {
        free(w->count);
        free(w);
        return st;
    }
    *out = w;
    return SK_OK;
}

static void shard_raw(const sk_catshards *w, long pix, char *out, size_t n)
{
    snprintf(out, n, "%s/p%06ld.raw", w->tmp, pix);
}

typedef struct pixrow { long pix, row; } pixrow;

static int cmp_pixrow(const void *a, const void *b)
{
    const pixrow *x = a, *y = b;
    if (x->pix != y->pix)
        return (x->pix > y->pix) - (x->pix < y->pix);
    return (x->row > y->row) - (x->row < y->row);
}

int sk_catshards_add(sk_catshards *w, const sk_catrows *r)
{
    pixrow *pr = malloc(sizeof *pr * (size_t)(r->n ? r->n : 1));
    size_t rs = sk_catrow_size(r->nbands);
    unsigned char *buf = malloc(rs * (size_t)(r->n ? r->n : 1));
    int st = pr && buf ? SK_OK : sk_error(SK_EIO, "catingest: out of memory");
    for (long k = 0; !st && k < r->n; k++)
        pr[k] = (pixrow){sk_healpix_nest(w->nside, r->ra_deg[k], r->dec_deg[k]), k};
    if (!st)
        qsort(pr, (size_t)r->n, sizeof *pr, cmp_pixrow);
    for (long a = 0; !st && a < r->n;) {
        long b = a;
        while (b < r->n && pr[b].pix == pr[a].pix)
            b++;
        for (long k = a; k < b; k++)
            sk_catrow_encode(r, pr[k].row, buf + rs * (size_t)(k - a));
        char path[4300];
        shard_raw(w, pr[a].pix, path, sizeof path);
        FILE *f = fopen(path, "ab");
        if (!f || fwrite(buf, rs, (size_t)(b - a), f) != (size_t)(b - a))
            st = sk_error(SK_EIO, "%s: cannot write: %s", path, strerror(errno));
        if (f && fclose(f) && !st)
            st = sk_error(SK_EIO, "%s: cannot write: %s", path, strerror(errno));
        w->count[pr[a].pix] += b - a;
        a = b;
    }
    free(pr);
    free(buf);
    return st;
}

/* The FITS table of one shard from its raw rows. */
static int write_shard(const sk_catshards *w, long pix, const sk_catinfo *info, const char *fits)
{
    long n = w->count[pix];
    size_t rs = sk_catrow_size(w->nbands);
    char raw[4300];
    shard_raw(w, pix, raw, sizeof raw);
    unsigned char *buf = malloc(rs * (size_t)n);
    sk_catrows *r = sk_catrows_new(w->nbands, (char (*)[SK_CAT_BANDLEN])w->band);
    int st = buf && r ? sk_catrows_reserve(r, n) : sk_error(SK_EIO, "catingest: out of memory");
    FILE *f = st ? NULL : fopen(raw, "rb");
    if (!st && (!f || fread(buf, rs, (size_t)n, f) != (size_t)n))
        st = sk_error(SK_EIO, "%s: cannot read back: %s", raw, strerror(errno));
    if (f)
        fclose(f);
    for (long k = 0; !st && k < n; k++)
        sk_catrow_decode(buf + rs * (size_t)k, r, k);
    free(buf);
    sk_table *t = st ? NULL : sk_table_new("REFCAT", n);
    if (!st && !t)
        st = sk_error(SK_EIO, "catingest: out of memory");
    struct { const char *name; int type; const char *unit; void *data; } cols[3 + 5 + 2 * SK_CAT_MAXBANDS];
    char names[2 * SK_CAT_MAXBANDS][40];
    int nc = 0;
    if (!st) {
        cols[nc++] = (typeof(cols[0])){"ra", SK_COL_DOUBLE, "deg", r->ra_deg};
        cols[nc++] = (typeof(cols[0])){"dec", SK_COL_DOUBLE, "deg", r->dec_deg};
        cols[nc++] = (typeof(cols[0])){"epoch", SK_COL_DOUBLE, "yr", r->epoch_yr};
        cols[nc++] = (typeof(cols[0])){"ra_err", SK_COL_FLOAT, "mas", r->ra_err_mas};
        cols[nc++] = (typeof(cols[0])){"dec_err", SK_COL_FLOAT, "mas", r->dec_err_mas};
        cols[nc++] = (typeof(cols[0])){"pmra", SK_COL_FLOAT, "mas/yr", r->pmra_mas_yr};
        cols[nc++] = (typeof(cols[0])){"pmdec", SK_COL_FLOAT, "mas/yr", r->pmdec_mas_yr};
        cols[nc++] = (typeof(cols[0])){"parallax", SK_COL_FLOAT, "mas", r->parallax_mas};
        for (int b = 0; b < w->nbands; b++) {
            snprintf(names[2 * b], sizeof names[0], "mag_%s", w->band[b]);
            snprintf(names[2 * b + 1], sizeof names[0], "err_%s", w->band[b]);
            cols[nc++] = (typeof(cols[0])){names[2 * b], SK_COL_FLOAT, "mag", r->mag[b]};
            cols[nc++] = (typeof(cols[0])){names[2 * b + 1], SK_COL_FLOAT, "mag", r->mag_err[b]};
        }
    }
    for (int c = 0; !st && c < nc; c++) {
        sk_column *col = sk_table_add_column(t, cols[c].name, cols[c].type, 1, cols[c].unit);
        if (!col)
            st = sk_errstatus() ? sk_errstatus() : SK_EIO;
        else
            memcpy(col->data, cols[c].data, (cols[c].type == SK_COL_DOUBLE ? 8u : 4u) * (size_t)n);
    }
    if (!st) st = sk_header_set_str(t->header, "CATID", info->id, "reference catalogue id");
    if (!st) st = sk_header_set_long(t->header, "HPXNSIDE", w->nside, "HEALPix nside (nested)");
    if (!st) st = sk_header_set_long(t->header, "HPXPIXEL", pix, "HEALPix pixel of these rows");
    if (!st) st = sk_fits_write_table(fits, t);
    sk_table_free(t);
    sk_catrows_free(r);
    if (!st)
        unlink(raw);
    return st;
}

static json_t *info_json(const sk_catinfo *info)
{
    json_t *bands = json_array();
    for (int b = 0; bands && b < info->nbands; b++)
        json_array_append_new(bands, json_string(info->band[b]));
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:o}", "id", info->id, "name", info->name, "version",
                     info->version, "rows", (json_int_t)info->nrows, "content_sha256", info->content_sha256,
                     "columns", info->columns ? info->columns : "", "bands", bands);
}

int sk_catshards_finish(sk_catshards *w, const sk_catinfo *info)
{
    json_t *shards = json_array();
    int st = shards ? SK_OK : sk_error(SK_EIO, "catingest: out of memory");
    for (long p = 0; !st && p < w->npix; p++) {
        if (!w->count[p])
            continue;
        char name[64], path[4400];
        snprintf(name, sizeof name, "shard-%06ld.fits", p);
        snprintf(path, sizeof path, "%s/%s", w->tmp, name);
        st = write_shard(w, p, info, path);
        if (!st)
            json_array_append_new(shards, json_pack("{s:I, s:s, s:I}", "pixel", (json_int_t)p, "file", name,
                                                    "rows", (json_int_t)w->count[p]));
    }
    json_t *doc = st ? NULL : json_pack("{s:s, s:i, s:o, s:{s:I, s:s}, s:o}", "format", SHARD_FORMAT,
                                        "format_version", 1, "catalog", info_json(info), "healpix", "nside",
                                        (json_int_t)w->nside, "order", "nested", "shards", shards);
    if (!doc)
        json_decref(shards);
    char *text = doc ? sk_json_pretty(doc) : NULL;
    json_decref(doc);
    char path[4400];
    snprintf(path, sizeof path, "%s/index.json", w->tmp);
    if (!st)
        st = text ? sk_atomic_write_file(path, text, strlen(text)) : sk_error(SK_EIO, "catingest: out of memory");
    free(text);
    if (!st && rename(w->tmp, w->outdir) != 0)
        st = sk_error(SK_EIO, "%s: cannot rename %s into place: %s", w->outdir, w->tmp, strerror(errno));
    if (st) {
        sk_catshards_abort(w);
        return st;
    }
    free(w->count);
    free(w);
    return SK_OK;
}

void sk_catshards_abort(sk_catshards *w)
{
    if (!w)
        return;
    DIR *d = opendir(w->tmp);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4500];
        snprintf(path, sizeof path, "%s/%s", w->tmp, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(w->tmp);
    free(w->count);
    free(w);
}

/* ---- reading ---- */

struct sk_catshard_index {
    char dir[4096];
    long nside;
    long nshards;
    long *pixel;
    char (*file)[64];
    sk_catmap map;
};

static int info_from_json(const json_t *c, sk_catinfo *info, const char *where)
{
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *version = json_string_value(json_object_get(c, "version"));
    const char *content = json_string_value(json_object_get(c, "content_sha256"));
    const char *columns = json_string_value(json_object_get(c, "columns"));
    json_t *rows = json_object_get(c, "rows"), *bands = json_object_get(c, "bands");
    if (!id || strlen(id) != 64 || !name || !version || !content || !columns || !json_is_integer(rows) ||
        !json_is_array(bands) || json_array_size(bands) > SK_CAT_MAXBANDS)
        return sk_error(SK_EINPUT, "%s: not a catalogue description (id, name, version, rows, "
                                   "content_sha256, columns, bands)", where);
    snprintf(info->id, sizeof info->id, "%s", id);
    snprintf(info->name, sizeof info->name, "%s", name);
    snprintf(info->version, sizeof info->version, "%s", version);
    snprintf(info->content_sha256, sizeof info->content_sha256, "%s", content);
    info->nrows = json_integer_value(rows);
    info->columns = strdup(columns);
    info->nbands = (int)json_array_size(bands);
    for (int b = 0; b < info->nbands; b++) {
        const char *s = json_string_value(json_array_get(bands, (size_t)b));
        if (!s || !s[0] || strlen(s) >= SK_CAT_BANDLEN)
            return sk_error(SK_EINPUT, "%s: band %d is not a band name", where, b + 1);
        snprintf(info->band[b], SK_CAT_BANDLEN, "%s", s);
    }
    return info->columns ? SK_OK : sk_error(SK_EIO, "out of memory");
}

/* The map that reads a shard's canonical columns. */
static int shard_map(const sk_catinfo *info, sk_catmap *m)
{
    char text[2048];
    int n = snprintf(text, sizeof text, "ra=ra,dec=dec,epoch=epoch,ra_err=ra_err,dec_err=dec_err,"
                                        "pmra=pmra,pmdec=pmdec,parallax=parallax");
    for (int b = 0; b < info->nbands; b++)
        n += snprintf(text + n, sizeof text - (size_t)n, ",mag:%s=mag_%s,err:%s=err_%s", info->band[b],
                      info->band[b], info->band[b], info->band[b]);
    return sk_catmap_parse(text, m);
}

static int index_parse(const json_t *doc, const char *path, sk_catinfo *info, sk_catshard_index *x)
{
    const char *fmt = json_string_value(json_object_get(doc, "format"));
    if (!fmt || strcmp(fmt, SHARD_FORMAT) != 0)
        return sk_error(SK_EINPUT, "%s: not a catingest index (format is not %s)", path, SHARD_FORMAT);
    json_t *hp = json_object_get(doc, "healpix"), *shards = json_object_get(doc, "shards");
    x->nside = (long)json_integer_value(json_object_get(hp, "nside"));
    const char *order = json_string_value(json_object_get(hp, "order"));
    if (x->nside < 1 || !order || strcmp(order, "nested") || !json_is_array(shards))
        return sk_error(SK_EINPUT, "%s: no healpix nside/nested order or no shards", path);
    int st = info_from_json(json_object_get(doc, "catalog"), info, path);
    x->nshards = (long)json_array_size(shards);
    x->pixel = calloc((size_t)x->nshards + 1, sizeof *x->pixel);
    x->file = calloc((size_t)x->nshards + 1, sizeof *x->file);
    if (!st && (!x->pixel || !x->file))
        st = sk_error(SK_EIO, "out of memory");
    for (long k = 0; !st && k < x->nshards; k++) {
        json_t *s = json_array_get(shards, (size_t)k);
        const char *f = json_string_value(json_object_get(s, "file"));
        if (!f || strchr(f, '/') || strlen(f) >= sizeof x->file[0] || !json_is_integer(json_object_get(s, "pixel")))
            return sk_error(SK_EINPUT, "%s: shard %ld has no pixel or file", path, k + 1);
        x->pixel[k] = (long)json_integer_value(json_object_get(s, "pixel"));
        snprintf(x->file[k], sizeof x->file[0], "%s", f);
    }
    return st ? st : shard_map(info, &x->map);
}

int sk_catshard_index_read(const char *dir, sk_catinfo *info, sk_catshard_index **out)
{
    *out = NULL;
    memset(info, 0, sizeof *info);
    char path[4200];
    snprintf(path, sizeof path, "%s/index.json", dir);
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return sk_error(SK_EINPUT, "%s: %s", path, jerr.text);
    sk_catshard_index *x = calloc(1, sizeof *x);
    int st = x ? SK_OK : sk_error(SK_EIO, "out of memory");
    if (!st) {
        snprintf(x->dir, sizeof x->dir, "%s", dir);
        st = index_parse(doc, path, info, x);
    }
    json_decref(doc);
    if (st) {
        sk_catshard_index_free(x);
        sk_catinfo_clear(info);
        return st;
    }
    *out = x;
    return SK_OK;
}

int sk_catfile_cone(const char *path, const sk_catmap *m, double ra_deg, double dec_deg, double radius_deg,
                    sk_catrows *out)
{
    sk_catreader *rd = NULL;
    int st = sk_catreader_open(path, m, &rd);
    sk_catrows *blk = st ? NULL : sk_catrows_new(out->nbands, out->band);
    if (!st && !blk)
        st = SK_EIO;
    /* small blocks: the buffers stay in the cache, and are not mapped
       afresh for every shard */
    do {
        st = st ? st : sk_catreader_next(rd, 4096, blk);
        for (long k = 0; !st && k < blk->n; k++)
            if (fabs(blk->dec_deg[k] - dec_deg) <= radius_deg &&
                sk_cat_sep_deg(ra_deg, dec_deg, blk->ra_deg[k], blk->dec_deg[k]) <= radius_deg)
                st = sk_catrows_append(out, blk, k);
    } while (!st && blk->n > 0);
    sk_catrows_free(blk);
    sk_catreader_close(rd);
    return st;
}

static int in_sorted(const long *v, long n, long key)
{
    long lo = 0, hi = n;
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (v[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo] == key;
}

int sk_catshard_cone(const sk_catshard_index *x, double ra_deg, double dec_deg, double radius_deg,
                     sk_catrows *out)
{
    long *pix = NULL, np = 0;
    int st = sk_healpix_cone(x->nside, ra_deg, dec_deg, radius_deg, &pix, &np);
    for (long k = 0; !st && k < x->nshards; k++) {
        if (!in_sorted(pix, np, x->pixel[k]))
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", x->dir, x->file[k]);
        st = sk_catfile_cone(path, &x->map, ra_deg, dec_deg, radius_deg, out);
    }
    free(pix);
    return st;
}

void sk_catshard_index_free(sk_catshard_index *x)
{
    if (!x)
        return;
    free(x->pixel);
    free(x->file);
    free(x);
}
