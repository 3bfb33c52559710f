/* catalog_source.c: an open reference catalogue for extraction: a file (or files), a catingest shard folder, a folder of HEALPix-chunked Gaia files or the database copy, with its id, and the rows of a cone from it. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <chealpix.h>

#include "skystack/error.h"
#include "skystack/hash.h"
#include "core/path_priv.h"
#include "catalog_internal.h"

enum { SRC_FILES, SRC_SHARDS, SRC_CHUNKS, SRC_DB };

/* HEALPix-chunked Gaia files as survey pipelines keep them: nside 32,
   named by the RING pixel number (the first row of chunk-04759.fits lies
   in ring pixel 4759, nested 7928) */
#define GAIA_CHUNK_NSIDE 32

struct sk_catsource {
    int kind;
    sk_catinfo info;
    sk_catmap map;             /* files and chunks */
    char **paths;              /* files; chunk files (sorted) */
    long *pixel;               /* chunks: their pixels */
    int npaths;
    sk_catrows *all;           /* files: every row, read once */
    sk_catshard_index *shards;
    sk_db *db;
    char table[64];
    int cell_nside;            /* database: the table's cells (0: a row per star) */
};

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int add_path(sk_catsource *s, const char *p, size_t n)
{
    char **v = realloc(s->paths, sizeof *v * (size_t)(s->npaths + 1));
    if (!v)
        return sk_error(SK_EIO, "out of memory");
    s->paths = v;
    s->paths[s->npaths] = strndup(p, n);
    return s->paths[s->npaths++] ? SK_OK : sk_error(SK_EIO, "out of memory");
}

static int cmp_base(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    int c = strcmp(sk_path_base_name(x), sk_path_base_name(y));
    return c ? c : strcmp(x, y);
}

/* Small files read whole; the id is that catingest would give them with
 * an empty name: their rows' content and the map. */
static int open_files(sk_catsource *s, const char *spec)
{
    for (const char *p = spec; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        int st = n ? add_path(s, p, n) : SK_OK;
        if (st)
            return st;
        p += n + (c ? 1 : 0);
    }
    qsort(s->paths, (size_t)s->npaths, sizeof *s->paths, cmp_base);
    s->all = sk_catrows_new(s->map.nbands, s->map.band);
    sk_sha256_stream *h = sk_sha256_begin();
    sk_catrows *blk = sk_catrows_new(s->map.nbands, s->map.band);
    unsigned char row[256];
    int st = s->all && h && blk ? SK_OK : sk_error(SK_EIO, "out of memory");
    for (int i = 0; !st && i < s->npaths; i++) {
        sk_catreader *rd = NULL;
        st = sk_catreader_open(s->paths[i], &s->map, &rd);
        do {
            st = st ? st : sk_catreader_next(rd, 50000, blk);
            for (long k = 0; !st && k < blk->n; k++) {
                sk_catrow_encode(blk, k, row);
                sk_sha256_update(h, row, sk_catrow_size(blk->nbands));
                st = sk_catrows_append(s->all, blk, k);
            }
        } while (!st && blk->n > 0);
        sk_catreader_close(rd);
    }
    sk_catrows_free(blk);
    if (h)
        sk_sha256_end(h, s->info.content_sha256);
    s->info.nrows = s->all ? s->all->n : 0;
    return st;
}

/* chunk-NNNNN.fits files; the id hashes the chunks' names and md5s. */
static int open_chunks(sk_catsource *s, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return sk_error(SK_EINPUT, "%s: cannot read: %s", dir, strerror(errno));
    struct dirent *e;
    int st = SK_OK;
    while (!st && (e = readdir(d))) {
        long pix;
        char tail[8];
        if (sscanf(e->d_name, "chunk-%ld.fit%7s", &pix, tail) != 2 || strcmp(tail, "s"))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        st = add_path(s, path, strlen(path));
    }
    closedir(d);
    if (!st && s->npaths == 0)
        st = sk_error(SK_EINPUT, "%s: neither a catingest folder (index.json) nor Gaia chunks "
                                 "(chunk-NNNNN.fits)", dir);
    if (st)
        return st;
    qsort(s->paths, (size_t)s->npaths, sizeof *s->paths, cmp_base);
    s->pixel = malloc(sizeof *s->pixel * (size_t)s->npaths);
    sk_sha256_stream *h = sk_sha256_begin();
    st = s->pixel && h ? SK_OK : sk_error(SK_EIO, "out of memory");
    for (int i = 0; !st && i < s->npaths; i++) {
        const char *b = sk_path_base_name(s->paths[i]);
        /* the chunks are numbered by RING pixel; the cones look up nested */
        long nest = 0;
        ring2nest(GAIA_CHUNK_NSIDE, atol(b + 6), &nest);
        s->pixel[i] = nest;
        char md5[33];
        st = sk_md5_file(s->paths[i], md5);
        sk_sha256_update(h, b, strlen(b) + 1);
        sk_sha256_update(h, md5, 33);
    }
    if (h)
        sk_sha256_end(h, s->info.content_sha256);
    s->info.nrows = -1;
    snprintf(s->info.name, sizeof s->info.name, "gaia-chunks");
    return st;
}

static int open_db(sk_catsource *s, const char *spec, sk_db *db)
{
    if (!db)
        return sk_error(SK_EINPUT, "%s: a catalogue in the database needs the database (not --no-db)", spec);
    char name[256];
    snprintf(name, sizeof name, "%s", spec + 3);
    char *at = strchr(name, '@');
    if (at)
        *at++ = '\0';
    s->db = db;
    return sk_db_catalog_find(db, name, at, &s->info, s->table, &s->cell_nside);
}

static int finish_info(sk_catsource *s)
{
    s->info.columns = sk_catmap_text(&s->map);
    s->info.nbands = s->map.nbands;
    memcpy(s->info.band, s->map.band, sizeof s->info.band);
    return s->info.columns ? sk_catinfo_make_id(&s->info) : SK_EIO;
}

int sk_catsource_open(const char *spec, const sk_catmap *map, sk_db *db, sk_catsource **out)
{
    *out = NULL;
    sk_catsource *s = calloc(1, sizeof *s);
    if (!s)
        return sk_error(SK_EIO, "out of memory");
    char index[4200];
    snprintf(index, sizeof index, "%s/index.json", spec);
    int st = SK_OK;
    if (strncmp(spec, "db:", 3) == 0) {
        s->kind = SRC_DB;
        st = open_db(s, spec, db);
    } else if (is_dir(spec) && sk_path_is_file(index)) {
        s->kind = SRC_SHARDS;
        st = sk_catshard_index_read(spec, &s->info, &s->shards);
    } else if (is_dir(spec)) {
        s->kind = SRC_CHUNKS;
        st = sk_catmap_parse("gaia", &s->map);
        st = st ? st : open_chunks(s, spec);
        st = st ? st : finish_info(s);
    } else {
        s->kind = SRC_FILES;
        s->map = *map;
        st = open_files(s, spec);
        st = st ? st : finish_info(s);
    }
    if (st) {
        sk_catsource_close(s);
        return sk_error_context("reference catalogue %s", spec);
    }
    *out = s;
    return SK_OK;
}

const sk_catinfo *sk_catsource_info(const sk_catsource *s)
{
    return &s->info;
}

static int chunks_cone(const sk_catsource *s, double ra, double dec, double radius, sk_catrows *out)
{
    long *pix = NULL, np = 0;
    int st = sk_healpix_cone(GAIA_CHUNK_NSIDE, ra, dec, radius, &pix, &np);
    for (int i = 0; !st && i < s->npaths; i++) {
        int hit = 0;
        for (long j = 0; j < np && !hit; j++)
            hit = pix[j] == s->pixel[i];
        if (hit)
            st = sk_catfile_cone(s->paths[i], &s->map, ra, dec, radius, out);
    }
    free(pix);
    return st;
}

int sk_catsource_cone(sk_catsource *s, double ra_deg, double dec_deg, double radius_deg, sk_catrows **out)
{
    *out = sk_catrows_new(s->info.nbands, s->info.band);
    if (!*out)
        return SK_EIO;
    int st = SK_OK;
    switch (s->kind) {
    case SRC_FILES:
        for (long k = 0; !st && k < s->all->n; k++)
            if (sk_cat_sep_deg(ra_deg, dec_deg, s->all->ra_deg[k], s->all->dec_deg[k]) <= radius_deg)
                st = sk_catrows_append(*out, s->all, k);
        break;
    case SRC_SHARDS:
        st = sk_catshard_cone(s->shards, ra_deg, dec_deg, radius_deg, *out);
        break;
    case SRC_CHUNKS:
        st = chunks_cone(s, ra_deg, dec_deg, radius_deg, *out);
        break;
    default:
        st = sk_db_catalog_cone(s->db, s->table, s->cell_nside, ra_deg, dec_deg, radius_deg, *out);
    }
    if (st) {
        sk_catrows_free(*out);
        *out = NULL;
    }
    return st;
}

void sk_catsource_close(sk_catsource *s)
{
    if (!s)
        return;
    sk_catinfo_clear(&s->info);
    for (int i = 0; i < s->npaths; i++)
        free(s->paths[i]);
    free(s->paths);
    free(s->pixel);
    sk_catrows_free(s->all);
    sk_catshard_index_free(s->shards);
    free(s);
}
