/* catalog_read.c: reading a reference catalogue file (FITS table through cfitsio, or CSV) block by block into canonical rows through a column map. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fitsio.h>

#include "skystack/error.h"
#include "catalog_internal.h"

/* One mapped value: the input column index (-1: none), or a constant. */
typedef struct src_col {
    int col;              /* FITS: 1-based column number; CSV: 0-based field */
    const sk_catmap_entry *e;
} src_col;

#define NSRC (SK_CAT_NFIELDS + 2 * SK_CAT_MAXBANDS)

struct sk_catreader {
    char path[4096];
    sk_catmap map;
    fitsfile *fp;          /* FITS, else CSV */
    long long nrows, next; /* FITS rows, next 1-based row */
    FILE *csv;
    char *line;
    size_t linecap;
    char **names;          /* CSV header fields */
    int nnames;
    src_col src[NSRC];
    double *buf[NSRC];     /* one block of each mapped column */
    long bufrows;
};

static const char *field_label(int i, const sk_catmap *m, char *tmp, size_t n)
{
    static const char *const names[SK_CAT_NFIELDS] = {"ra", "dec", "ra_err", "dec_err", "pmra",
                                                      "pmdec", "parallax", "epoch"};
    if (i < SK_CAT_NFIELDS)
        return names[i];
    int b = (i - SK_CAT_NFIELDS) / 2;
    snprintf(tmp, n, "%s:%s", (i - SK_CAT_NFIELDS) % 2 ? "err" : "mag", m->band[b]);
    return tmp;
}

static const sk_catmap_entry *entry_of(const sk_catmap *m, int i)
{
    if (i < SK_CAT_NFIELDS)
        return &m->f[i];
    int b = (i - SK_CAT_NFIELDS) / 2;
    if (b >= m->nbands)
        return NULL;
    return (i - SK_CAT_NFIELDS) % 2 ? &m->err[b] : &m->mag[b];
}

static int csv_split(char *line, char ***fields, int *n, int *cap)
{
    *n = 0;
    char *s = line;
    for (;;) {
        if (*n == *cap) {
            int c = *cap ? 2 * *cap : 32;
            char **f = realloc(*fields, sizeof *f * (size_t)c);
            if (!f)
                return sk_error(SK_EIO, "CSV: out of memory");
            *fields = f;
            *cap = c;
        }
        while (*s == ' ' || *s == '\t')
            s++;
        (*fields)[(*n)++] = s;
        char *c = strchr(s, ',');
        char *e = c ? c : s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (!c) {
            *e = '\0';
            return SK_OK;
        }
        *e = '\0';
        s = c + 1;
    }
}

static int resolve_columns(sk_catreader *r)
{
    char tmp[40];
    for (int i = 0; i < NSRC; i++) {
        const sk_catmap_entry *e = entry_of(&r->map, i);
        r->src[i] = (src_col){-1, e};
        if (!e || !e->column[0])
            continue;
        int col = -1;
        if (r->fp) {
            int status = 0, c = 0;
            char name[72];
            snprintf(name, sizeof name, "%s", e->column);
            if (fits_get_colnum(r->fp, CASEINSEN, name, &c, &status) == 0)
                col = c;
        } else {
            for (int k = 0; k < r->nnames; k++)
                if (strcasecmp(r->names[k], e->column) == 0)
                    col = k;
        }
        if (col < 0 && !e->optional)
            return sk_error(SK_EINPUT, "%s: no column '%s' for %s (column map; write '%s?' when it may be "
                                       "missing)", r->path, e->column, field_label(i, &r->map, tmp, sizeof tmp),
                            e->column);
        r->src[i].col = col;
    }
    return SK_OK;
}

static int open_csv(sk_catreader *r)
{
    r->csv = fopen(r->path, "r");
    if (!r->csv)
        return sk_error(SK_EIO, "%s: cannot open: %s", r->path, strerror(errno));
    if (getline(&r->line, &r->linecap, r->csv) < 0)
        return sk_error(SK_EINPUT, "%s: empty CSV file (no header line)", r->path);
    r->line[strcspn(r->line, "\r\n")] = '\0';
    int cap = 0;
    char **f = NULL;
    int st = csv_split(r->line, &f, &r->nnames, &cap);
    if (st) {
        free(f);
        return st;
    }
    r->names = calloc((size_t)r->nnames + 1, sizeof *r->names);
    for (int k = 0; r->names && k < r->nnames; k++)
        r->names[k] = strdup(f[k]);
    free(f);
    return r->names ? SK_OK : sk_error(SK_EIO, "CSV: out of memory");
}

int sk_catreader_open(const char *path, const sk_catmap *m, sk_catreader **out)
{
    *out = NULL;
    sk_catreader *r = calloc(1, sizeof *r);
    if (!r)
        return sk_error(SK_EIO, "catalogue: out of memory");
    snprintf(r->path, sizeof r->path, "%s", path);
    r->map = *m;
    size_t n = strlen(path);
    int st = SK_OK;
    if (n > 4 && strcasecmp(path + n - 4, ".csv") == 0) {
        st = open_csv(r);
    } else {
        int status = 0;
        if (fits_open_table(&r->fp, path, READONLY, &status)) {
            char msg[FLEN_STATUS];
            fits_get_errstatus(status, msg);
            r->fp = NULL;
            st = sk_error(SK_EINPUT, "%s: not a FITS table: %s", path, msg);
        } else {
            fits_get_num_rowsll(r->fp, &r->nrows, &status);
            r->next = 1;
        }
    }
    st = st ? st : resolve_columns(r);
    if (st) {
        sk_catreader_close(r);
        return st;
    }
    *out = r;
    return SK_OK;
}

static int ensure_buf(sk_catreader *r, long rows)
{
    if (rows <= r->bufrows)
        return SK_OK;
    for (int i = 0; i < NSRC; i++) {
        double *b = realloc(r->buf[i], sizeof *b * (size_t)rows);
        if (!b)
            return sk_error(SK_EIO, "catalogue: out of memory");
        r->buf[i] = b;
    }
    r->bufrows = rows;
    return SK_OK;
}

/* Fill buf[] with up to max rows; *got rows read. */
static int read_fits_block(sk_catreader *r, long max, long *got)
{
    long long left = r->nrows - r->next + 1;
    long n = left < max ? (long)left : max;
    *got = n > 0 ? n : 0;
    if (n <= 0)
        return SK_OK;
    /* all columns of as many rows as cfitsio's buffers hold, then the next
       rows: the file is read once, not once per column */
    long opt = 0;
    int status = 0;
    if (fits_get_rowsize(r->fp, &opt, &status) || opt < 1)
        opt = n;
    for (long a = 0; a < n; a += opt) {
        long m = n - a < opt ? n - a : opt;
        for (int i = 0; i < NSRC; i++) {
            if (r->src[i].col < 0)
                continue;
            int anynul = 0;
            double nul = NAN;
            status = 0;
            if (fits_read_col(r->fp, TDOUBLE, r->src[i].col, r->next + a, 1, m, &nul, r->buf[i] + a, &anynul,
                              &status)) {
                char msg[FLEN_STATUS];
                fits_get_errstatus(status, msg);
                return sk_error(SK_EINPUT, "%s: rows %lld-%lld: %s", r->path, r->next + a, r->next + a + m - 1, msg);
            }
        }
    }
    r->next += n;
    return SK_OK;
}

static int read_csv_block(sk_catreader *r, long max, long *got)
{
    *got = 0;
    char **f = NULL;
    int nf = 0, cap = 0, st = SK_OK;
    while (*got < max && getline(&r->line, &r->linecap, r->csv) >= 0) {
        r->line[strcspn(r->line, "\r\n")] = '\0';
        if (!r->line[0] || r->line[0] == '#')
            continue;
        st = csv_split(r->line, &f, &nf, &cap);
        if (st)
            break;
        for (int i = 0; i < NSRC; i++) {
            int c = r->src[i].col;
            double v = NAN;
            if (c >= 0 && c < nf && f[c][0]) {
                char *end;
                v = strtod(f[c], &end);
                if (*end)
                    v = NAN;
            }
            r->buf[i][*got] = v;
        }
        (*got)++;
    }
    free(f);
    return st;
}

/* The canonical value of mapped column i at block row k. */
static double value(const sk_catreader *r, int i, long k)
{
    const src_col *s = &r->src[i];
    if (!s->e)
        return NAN;
    if (s->e->has_constant)
        return s->e->constant;
    if (s->col < 0)
        return NAN;
    double v = r->buf[i][k];
    if (s->e->snr)
        v = v > 0 ? 2.5 / M_LN10 / v : NAN;
    return v;
}

int sk_catreader_next(sk_catreader *r, long max_rows, sk_catrows *dst)
{
    dst->n = 0;
    long got = 0;
    int st = ensure_buf(r, max_rows);
    st = st ? st : r->fp ? read_fits_block(r, max_rows, &got) : read_csv_block(r, max_rows, &got);
    st = st ? st : sk_catrows_reserve(dst, got);
    for (long k = 0; !st && k < got; k++) {
        double ra = value(r, SK_CAT_RA, k), dec = value(r, SK_CAT_DEC, k);
        if (!isfinite(ra) || !isfinite(dec) || dec < -90 || dec > 90)
            continue;
        ra = fmod(ra, 360.0);
        if (ra < 0)
            ra += 360.0;
        long i = dst->n++;
        dst->ra_deg[i] = ra;
        dst->dec_deg[i] = dec;
        dst->ra_err_mas[i] = (float)value(r, SK_CAT_RA_ERR, k);
        dst->dec_err_mas[i] = (float)value(r, SK_CAT_DEC_ERR, k);
        dst->pmra_mas_yr[i] = (float)value(r, SK_CAT_PMRA, k);
        dst->pmdec_mas_yr[i] = (float)value(r, SK_CAT_PMDEC, k);
        dst->parallax_mas[i] = (float)value(r, SK_CAT_PARALLAX, k);
        dst->epoch_yr[i] = value(r, SK_CAT_EPOCH, k);
        for (int b = 0; b < dst->nbands; b++) {
            dst->mag[b][i] = (float)value(r, SK_CAT_NFIELDS + 2 * b, k);
            dst->mag_err[b][i] = (float)value(r, SK_CAT_NFIELDS + 2 * b + 1, k);
        }
    }
    return st;
}

void sk_catreader_close(sk_catreader *r)
{
    if (!r)
        return;
    if (r->fp) {
        int status = 0;
        fits_close_file(r->fp, &status);
    }
    if (r->csv)
        fclose(r->csv);
    free(r->line);
    for (int k = 0; r->names && k < r->nnames; k++)
        free(r->names[k]);
    free(r->names);
    for (int i = 0; i < NSRC; i++)
        free(r->buf[i]);
    free(r);
}
