/* fsck.c: the consistency check of the database against the data root: files with no row, rows with no file, checksums, claims of dead workers, coadds left pending, and the safe repairs (see skystack/lifecycle.h, skydb(1)). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "skystack/error.h"
#include "skystack/hash.h"
#include "skystack/lifecycle.h"
#include "core/parallel.h"
#include "db_priv.h"

/* One row with a file: its table, id, path relative to the root, md5. */
typedef struct frow {
    char *path;
    char md5[33];
    char table[24];
    long long id;
    int seen;            /* its file was found */
    int bad;             /* checksum mismatch */
    int marked_bad;      /* an image already marked bad */
    int exposure;        /* a registered exposure (not a coadd) */
} frow;

typedef struct fsck_state {
    const sk_fsck_opts *o;
    sk_fsck_counts *c;
    frow *rows;
    long nrows;
    char **claimed;      /* paths named by live claims, sorted */
    long nclaimed;
    int st;
} fsck_state;

static void say(const fsck_state *S, const char *kind, const char *what, int repaired)
{
    if (S->o->report)
        S->o->report(S->o->ctx, kind, what, repaired);
}

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const frow *)a)->path, ((const frow *)b)->path);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static frow *row_of(const fsck_state *S, const char *rel)
{
    frow key = {.path = (char *)rel};
    return bsearch(&key, S->rows, (size_t)S->nrows, sizeof key, cmp_row);
}

static int claimed(const fsck_state *S, const char *rel)
{
    const char *k = rel;
    return bsearch(&k, S->claimed, (size_t)S->nclaimed, sizeof k, cmp_str) != NULL;
}

/* Every row with a file, sorted by path. */
static int read_rows(sk_db *db, fsck_state *S)
{
    PGresult *r = NULL;
    int st = sk_db_exec(db, "reading the rows with files",
                        "SELECT 'images', id, filepath, md5, is_bad, type = 'science' FROM images "
                        "UNION ALL SELECT 'source_lists', id, filepath, md5, false, false FROM source_lists "
                        "UNION ALL SELECT 'psfs', id, filepath, md5, false, false FROM psfs "
                        "UNION ALL SELECT 'backgrounds', id, filepath, md5, false, false FROM backgrounds "
                        "UNION ALL SELECT 'world_coordinates', id, filepath, md5, false, false FROM "
                        "world_coordinates WHERE filepath IS NOT NULL",
                        0, NULL, &r);
    if (st)
        return st;
    long n = PQntuples(r);
    S->rows = calloc((size_t)n + 1, sizeof *S->rows);
    if (!S->rows) {
        PQclear(r);
        return sk_error(SK_EIO, "out of memory");
    }
    for (long i = 0; i < n; i++) {
        frow *f = &S->rows[i];
        snprintf(f->table, sizeof f->table, "%s", PQgetvalue(r, (int)i, 0));
        f->id = strtoll(PQgetvalue(r, (int)i, 1), NULL, 10);
        f->path = strdup(PQgetvalue(r, (int)i, 2));
        snprintf(f->md5, sizeof f->md5, "%s", PQgetvalue(r, (int)i, 3));
        f->marked_bad = PQgetvalue(r, (int)i, 4)[0] == 't';
        f->exposure = PQgetvalue(r, (int)i, 5)[0] == 't';
        if (!f->path) {
            PQclear(r);
            return sk_error(SK_EIO, "out of memory");
        }
        S->nrows++;
    }
    PQclear(r);
    qsort(S->rows, (size_t)S->nrows, sizeof *S->rows, cmp_row);
    S->c->rows = S->nrows;
    return SK_OK;
}

/* The claims: those whose lock nobody holds are dead (removed with
 * --repair); the paths of the live ones are left alone. */
static int read_claims(sk_db *db, fsck_state *S)
{
    PGresult *r = NULL;
    int st = sk_db_exec(
        db, "reading the claims",
        "SELECT c.name, EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = c.lock_key), "
        "c.host, c.pid, p FROM claims c LEFT JOIN LATERAL unnest(c.paths) p ON true ORDER BY c.name",
        0, NULL, &r);
    if (st)
        return st;
    int n = PQntuples(r);
    S->claimed = calloc((size_t)n + 1, sizeof *S->claimed);
    if (!S->claimed) {
        PQclear(r);
        return sk_error(SK_EIO, "out of memory");
    }
    for (int i = 0; i < n && !st; i++) {
        const char *name = PQgetvalue(r, i, 0), *path = sk_db_value(r, i, 4);
        int live = PQgetvalue(r, i, 1)[0] == 't';
        if (live && path)
            S->claimed[S->nclaimed++] = strdup(path);
        if (live || (i > 0 && !strcmp(name, PQgetvalue(r, i - 1, 0))))
            continue;
        char what[1024];
        snprintf(what, sizeof what, "%s (host %s, pid %s)", name, PQgetvalue(r, i, 2),
                 PQgetvalue(r, i, 3));
        S->c->dead_claims++;
        const char *p[1] = {name};
        int fixed = S->o->repair &&
                    !(st = sk_db_exec(db, "removing a dead claim", "DELETE FROM claims WHERE name = $1",
                                      1, p, NULL));
        S->c->repaired += fixed;
        say(S, "dead-claim", what, fixed);
    }
    PQclear(r);
    qsort(S->claimed, (size_t)S->nclaimed, sizeof *S->claimed, cmp_str);
    return st;
}

/* Coadds left pending with no live claim on them (discarded with
 * --repair: their rows go, their files are then orphans). */
static int pending_coadds(sk_db *db, fsck_state *S)
{
    PGresult *r = NULL;
    int st = sk_db_exec(db, "looking for pending coadds",
                        "SELECT i.id, i.filepath FROM images i WHERE i.pending AND NOT EXISTS ("
                        "SELECT 1 FROM claims c JOIN pg_locks l ON l.locktype = 'advisory' AND "
                        "l.granted AND l.objsubid = 1 AND ((l.classid::bigint << 32) | "
                        "l.objid::bigint) = c.lock_key WHERE c.name = 'coadd|' || i.provenance_id "
                        "|| '|' || i.input_set_hash) ORDER BY i.id",
                        0, NULL, &r);
    for (int i = 0; !st && i < PQntuples(r); i++) {
        char what[4200];
        snprintf(what, sizeof what, "coadd %s %s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        S->c->pending_coadds++;
        const char *p[1] = {PQgetvalue(r, i, 0)};
        int fixed = S->o->repair &&
                    !(st = sk_db_exec(db, "discarding a pending coadd",
                                      "DELETE FROM images WHERE id = $1::bigint AND pending", 1, p,
                                      NULL));
        S->c->repaired += fixed;
        say(S, "pending-coadd", what, fixed);
    }
    PQclear(r);
    return st;
}

/* "x.fits.tmp-AB12CD" -> the product it was to become ("x.fits"), or
 * NULL when `rel` is not a temporary file of an atomic write. */
static const char *temporary_of(const char *rel, char *final, size_t size)
{
    const char *t = strstr(rel, ".tmp-");
    if (!t || strlen(t) != 11)
        return NULL;
    snprintf(final, size, "%.*s", (int)(t - rel), rel);
    return final;
}

/* 1 when `rel` ("x.png") is the quick-look of a registered product
 * ("x.fits" or "x.fits.fz", the name quicklook.c gives it). */
static int quicklook_of(fsck_state *S, const char *rel)
{
    size_t n = strlen(rel);
    if (n < 5 || strcmp(rel + n - 4, ".png") != 0)
        return 0;
    static const char *const suffixes[] = {".fits", ".fits.fz"};
    char name[4200];
    for (size_t k = 0; k < sizeof suffixes / sizeof *suffixes; k++) {
        snprintf(name, sizeof name, "%.*s%s", (int)(n - 4), rel, suffixes[k]);
        if (row_of(S, name))
            return 1;
    }
    return 0;
}

/* One file under the root (`rel` relative to it). */
static void check_file(fsck_state *S, const char *abs, const char *rel)
{
    S->c->files++;
    char final[4096];
    const char *tmp = temporary_of(rel, final, sizeof final);
    const char *product = tmp ? final : rel;
    char base[4096];
    size_t n = strlen(product);
    if (n > 5 && !strcmp(product + n - 5, ".json")) { /* a sidecar: its product's row */
        snprintf(base, sizeof base, "%.*s", (int)(n - 5), product);
        product = base;
    }
    frow *f = row_of(S, product);
    if (!f && !tmp && quicklook_of(S, product))
        return; /* the quick-look PNG of a registered product */
    if (f && !tmp) {
        if (product == rel)
            f->seen = 1;
        return;
    }
    if (claimed(S, product))
        return; /* a live worker's */
    int fixed = S->o->repair && unlink(abs) == 0;
    if (tmp)
        S->c->temporary_files++;
    else
        S->c->orphan_files++;
    S->c->repaired += fixed;
    say(S, tmp ? "temporary-file" : "orphan-file", abs, fixed);
}

/* Walk the directory `rel` (relative to the root) depth first. */
static int walk(fsck_state *S, char *abs, size_t rootlen, size_t len)
{
    DIR *d = opendir(abs);
    if (!d)
        return sk_error(SK_EIO, "%s: cannot read: %s", abs, strerror(errno));
    struct dirent *e;
    int st = SK_OK;
    while (!st && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t m = strlen(e->d_name);
        if (len + 1 + m + 1 > 4096) {
            st = sk_error(SK_EIO, "%s/%s: path too long", abs, e->d_name);
            break;
        }
        abs[len] = '/';
        memcpy(abs + len + 1, e->d_name, m + 1);
        int type = e->d_type;
        if (type == DT_UNKNOWN || type == DT_LNK) {
            struct stat sb;
            type = lstat(abs, &sb) ? DT_UNKNOWN : S_ISDIR(sb.st_mode) ? DT_DIR
                                                : S_ISREG(sb.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (type == DT_DIR)
            st = walk(S, abs, rootlen, len + 1 + m);
        else if (type == DT_REG)
            check_file(S, abs, abs + rootlen + 1);
        abs[len] = '\0';
    }
    closedir(d);
    return st;
}

static int md5_one(long k, void *user)
{
    fsck_state *S = user;
    frow *f = &S->rows[k];
    if (!f->seen)
        return SK_OK;
    char path[8192], md5[33];
    snprintf(path, sizeof path, "%s/%s", S->o->data_root, f->path);
    if (sk_md5_file(path, md5) == SK_OK)
        f->bad = strcmp(md5, f->md5) != 0;
    else
        f->bad = 1;
    return SK_OK;
}

/* Rows whose file is missing; with --checksums those whose md5 differs
 * (with --repair their image or extraction is marked bad). */
static int check_rows(sk_db *db, fsck_state *S)
{
    if (S->o->checksums)
        sk_parallel_for_each(S->nrows, S->o->threads > 0 ? S->o->threads : 1, md5_one, S);
    int st = SK_OK;
    for (long i = 0; i < S->nrows && !st; i++) {
        frow *f = &S->rows[i];
        char what[4400];
        snprintf(what, sizeof what, "%s %lld: %s/%s", f->table, f->id, S->o->data_root, f->path);
        if (!f->seen) {
            if (claimed(S, f->path))
                continue;
            S->c->missing_files++;
            /* an image whose file is gone cannot be used: --repair marks
               it bad (skybad unmark undoes it once imingest restored the
               file); one marked bad already counts as handled */
            int handled = f->exposure && f->marked_bad;
            if (!handled && S->o->repair && f->exposure) {
                int changed = 0;
                st = sk_bad_mark(db, SK_BAD_IMAGE, f->id, 1, "file missing (skydb fsck)", "skydb fsck",
                                 &changed);
                handled = changed;
            }
            S->c->repaired += handled;
            say(S, "missing-file", what, handled);
            continue;
        }
        if (!f->bad)
            continue;
        S->c->checksum_mismatches++;
        int fixed = 0;
        if (S->o->repair) {
            char id[32], sql[512];
            snprintf(id, sizeof id, "%lld", f->id);
            const char *p[1] = {id};
            snprintf(sql, sizeof sql,
                     !strcmp(f->table, "images")
                         ? "UPDATE images SET is_bad = true, bad_comment = 'checksum mismatch "
                           "(skydb fsck)', bad_by = 'skydb fsck', bad_at = now() WHERE id = $1::bigint"
                         : "UPDATE source_lists s SET is_bad = true, bad_comment = 'checksum "
                           "mismatch of a product (skydb fsck)', bad_by = 'skydb fsck', bad_at = now() "
                           "FROM %s x WHERE x.id = $1::bigint AND s.image_id = x.image_id AND "
                           "s.provenance_id = x.provenance_id",
                     f->table);
            fixed = !(st = sk_db_exec(db, "marking a changed product bad", sql, 1, p, NULL));
        }
        S->c->repaired += fixed;
        say(S, "checksum", what, fixed);
    }
    return st;
}

int sk_fsck(sk_db *db, const sk_fsck_opts *o, sk_fsck_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!o->data_root || !*o->data_root)
        return sk_error(SK_EINPUT, "fsck: no data root");
    fsck_state S = {.o = o, .c = out};
    char abs[4096];
    snprintf(abs, sizeof abs, "%s", o->data_root);
    size_t len = strlen(abs);
    while (len > 1 && abs[len - 1] == '/')
        abs[--len] = '\0';
    int st = read_claims(db, &S);
    st = st ? st : pending_coadds(db, &S);
    st = st ? st : read_rows(db, &S);
    struct stat sb;
    if (!st && stat(abs, &sb) == 0)
        st = walk(&S, abs, len, len);
    else if (!st && errno != ENOENT)
        st = sk_error(SK_EIO, "%s: %s", abs, strerror(errno));
    st = st ? st : check_rows(db, &S);
    for (long i = 0; i < S.nrows; i++)
        free(S.rows[i].path);
    free(S.rows);
    for (long i = 0; i < S.nclaimed; i++)
        free(S.claimed[i]);
    free(S.claimed);
    return st;
}
