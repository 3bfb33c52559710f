/* table.c: in-memory binary tables of typed (vector) columns and their FITS I/O with cfitsio. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "fits_priv.h"
#include "skystack/error.h"
#include "skystack/fits.h"
#include "skystack/log.h"
#include "skystack/table.h"

static size_t elem_size(int type)
{
    switch (type) {
    case SK_COL_DOUBLE: return sizeof(double);
    case SK_COL_FLOAT: return sizeof(float);
    case SK_COL_INT64: return sizeof(int64_t);
    case SK_COL_INT32: return sizeof(int32_t);
    case SK_COL_INT16: return sizeof(int16_t);
    case SK_COL_UINT8: return sizeof(uint8_t);
    case SK_COL_LOGICAL: return sizeof(char);
    case SK_COL_STRING: return sizeof(char);
    default: return 0;
    }
}

/* Bytes one row of the column occupies in memory. */
static size_t row_bytes(const sk_column *c)
{
    if (c->type == SK_COL_STRING)
        return (size_t)c->repeat + 1;
    return (size_t)c->repeat * elem_size(c->type);
}

sk_table *sk_table_new(const char *extname, long nrows)
{
    if (nrows < 0) {
        sk_error(SK_EINPUT, "table: negative row count %ld", nrows);
        return NULL;
    }
    sk_table *t = calloc(1, sizeof *t);
    if (!t || !(t->header = sk_header_new())) {
        free(t);
        sk_error(SK_EIO, "table: out of memory");
        return NULL;
    }
    snprintf(t->extname, sizeof t->extname, "%s", extname ? extname : "");
    t->nrows = nrows;
    return t;
}

void sk_table_free(sk_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->ncols; i++)
        free(t->cols[i].data);
    free(t->cols);
    sk_header_free(t->header);
    free(t);
}

sk_column *sk_table_column(const sk_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (strcasecmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

sk_column *sk_table_add_column(sk_table *t, const char *name, int type, long repeat,
                               const char *unit)
{
    if (!name || !*name || strlen(name) >= sizeof t->cols[0].name) {
        sk_error(SK_EINPUT, "table %s: bad column name \"%s\"", t->extname, name ? name : "(null)");
        return NULL;
    }
    if (elem_size(type) == 0 || repeat < 1) {
        sk_error(SK_EINPUT, "table %s: column %s: bad type %d or repeat %ld", t->extname, name,
                 type, repeat);
        return NULL;
    }
    if (unit && strlen(unit) >= sizeof t->cols[0].unit) {
        sk_error(SK_EINPUT, "table %s: column %s: unit too long", t->extname, name);
        return NULL;
    }
    if (sk_table_column(t, name)) {
        sk_error(SK_EINPUT, "table %s: duplicate column %s", t->extname, name);
        return NULL;
    }
    sk_column c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    snprintf(c.unit, sizeof c.unit, "%s", unit ? unit : "");
    c.type = type;
    c.repeat = repeat;
    size_t rb = row_bytes(&c);
    if (t->nrows > 0 && rb > SIZE_MAX / (size_t)t->nrows) {
        sk_error(SK_EINPUT, "table %s: column %s too large", t->extname, name);
        return NULL;
    }
    size_t nbytes = rb * (size_t)t->nrows;
    c.data = calloc(nbytes ? nbytes : 1, 1);
    sk_column *cols = c.data ? realloc(t->cols, (size_t)(t->ncols + 1) * sizeof *cols) : NULL;
    if (!cols) {
        free(c.data);
        sk_error(SK_EIO, "table %s: out of memory for column %s", t->extname, name);
        return NULL;
    }
    t->cols = cols;
    t->cols[t->ncols] = c;
    return &t->cols[t->ncols++];
}

double sk_column_get(const sk_column *c, long row, long elem)
{
    size_t i = (size_t)row * (size_t)c->repeat + (size_t)elem;
    switch (c->type) {
    case SK_COL_DOUBLE: return ((const double *)c->data)[i];
    case SK_COL_FLOAT: return ((const float *)c->data)[i];
    case SK_COL_INT64: return (double)((const int64_t *)c->data)[i];
    case SK_COL_INT32: return ((const int32_t *)c->data)[i];
    case SK_COL_INT16: return ((const int16_t *)c->data)[i];
    case SK_COL_UINT8: return ((const uint8_t *)c->data)[i];
    case SK_COL_LOGICAL: return ((const char *)c->data)[i] ? 1.0 : 0.0;
    default: return NAN;
    }
}

void sk_column_set(sk_column *c, long row, long elem, double value)
{
    size_t i = (size_t)row * (size_t)c->repeat + (size_t)elem;
    switch (c->type) {
    case SK_COL_DOUBLE: ((double *)c->data)[i] = value; break;
    case SK_COL_FLOAT: ((float *)c->data)[i] = (float)value; break;
    case SK_COL_INT64: ((int64_t *)c->data)[i] = (int64_t)llround(value); break;
    case SK_COL_INT32: ((int32_t *)c->data)[i] = (int32_t)lround(value); break;
    case SK_COL_INT16: ((int16_t *)c->data)[i] = (int16_t)lround(value); break;
    case SK_COL_UINT8: ((uint8_t *)c->data)[i] = (uint8_t)lround(value); break;
    case SK_COL_LOGICAL: ((char *)c->data)[i] = value != 0.0; break;
    default: break;
    }
}

const char *sk_column_str(const sk_column *c, long row)
{
    if (c->type != SK_COL_STRING)
        return NULL;
    return (const char *)c->data + (size_t)row * (size_t)(c->repeat + 1);
}

void sk_column_set_str(sk_column *c, long row, const char *value)
{
    if (c->type != SK_COL_STRING)
        return;
    char *dst = (char *)c->data + (size_t)row * (size_t)(c->repeat + 1);
    memset(dst, 0, (size_t)c->repeat + 1);
    if (value)
        strncpy(dst, value, (size_t)c->repeat);
}

/* cfitsio datatype and TFORM letter of a column type. */
static int fits_datatype(int type, char *letter)
{
    switch (type) {
    case SK_COL_DOUBLE: *letter = 'D'; return TDOUBLE;
    case SK_COL_FLOAT: *letter = 'E'; return TFLOAT;
    case SK_COL_INT64: *letter = 'K'; return TLONGLONG;
    case SK_COL_INT32: *letter = 'J'; return TINT;
    case SK_COL_INT16: *letter = 'I'; return TSHORT;
    case SK_COL_UINT8: *letter = 'B'; return TBYTE;
    case SK_COL_LOGICAL: *letter = 'L'; return TLOGICAL;
    case SK_COL_STRING: *letter = 'A'; return TSTRING;
    default: return 0;
    }
}

/* Row pointers into a string column's storage, for cfitsio's TSTRING. */
static char **string_rows(const sk_column *c, long nrows)
{
    char **rows = malloc((size_t)(nrows ? nrows : 1) * sizeof *rows);
    if (!rows)
        return NULL;
    for (long r = 0; r < nrows; r++)
        rows[r] = (char *)c->data + (size_t)r * (size_t)(c->repeat + 1);
    return rows;
}

/* The rows of t into the table HDU just created, in groups of the rows
 * cfitsio's buffers hold (every column of a group before the next group:
 * column by column, a table larger than the buffers is read back and
 * rewritten once per column). */
static int write_rows(fitsfile *fptr, const sk_table *t, const char *path)
{
    int status = 0;
    long group = 0;
    if (fits_get_rowsize(fptr, &group, &status) || group < 1)
        group = 1;
    status = 0;
    char **rows = malloc((size_t)group * sizeof *rows); /* a string column's row pointers */
    if (!rows)
        return sk_error(SK_EIO, "%s: out of memory", path);
    int rc = SK_OK;
    for (long r0 = 0; r0 < t->nrows && !rc; r0 += group) {
        long nr = t->nrows - r0 < group ? t->nrows - r0 : group;
        for (int i = 0; i < t->ncols && !rc; i++) {
            const sk_column *c = &t->cols[i];
            char letter;
            int datatype = fits_datatype(c->type, &letter);
            if (c->type == SK_COL_STRING) {
                for (long r = 0; r < nr; r++)
                    rows[r] = (char *)c->data + (size_t)(r0 + r) * (size_t)(c->repeat + 1);
                fits_write_col(fptr, TSTRING, i + 1, r0 + 1, 1, nr, rows, &status);
            } else {
                const char *first = (const char *)c->data +
                                    (size_t)r0 * (size_t)c->repeat * elem_size(c->type);
                fits_write_col(fptr, datatype, i + 1, r0 + 1, 1, (LONGLONG)nr * c->repeat,
                               (void *)first, &status);
            }
            if (status) {
                char what[128];
                snprintf(what, sizeof what, "writing column %s", c->name);
                rc = sk_fits_status_error(status, path, what);
            }
        }
    }
    free(rows);
    return rc;
}

int sk_fits_table_write_hdu(fitsfile *fptr, const sk_table *t, const char *path)
{
    int ncols = t->ncols;
    char **ttype = calloc((size_t)(ncols ? ncols : 1), sizeof *ttype);
    char **tform = calloc((size_t)(ncols ? ncols : 1), sizeof *tform);
    char **tunit = calloc((size_t)(ncols ? ncols : 1), sizeof *tunit);
    char (*forms)[32] = calloc((size_t)(ncols ? ncols : 1), sizeof *forms);
    int rc = SK_OK, status = 0;
    if (!ttype || !tform || !tunit || !forms) {
        rc = sk_error(SK_EIO, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < ncols; i++) {
        const sk_column *c = &t->cols[i];
        char letter;
        if (!fits_datatype(c->type, &letter)) {
            rc = sk_error(SK_EINPUT, "%s: table %s: column %s has unknown type %d", path,
                          t->extname, c->name, c->type);
            goto done;
        }
        if (c->ndims < 0 || c->ndims > 4) {
            rc = sk_error(SK_EINPUT, "%s: table %s: column %s: %d dimensions (at most 4)", path,
                          t->extname, c->name, c->ndims);
            goto done;
        }
        if (c->ndims > 0) {
            long prod = 1;
            for (int k = 0; k < c->ndims; k++)
                prod *= c->dims[k];
            if (prod != c->repeat) {
                rc = sk_error(SK_EINPUT, "%s: table %s: column %s: TDIM product %ld != repeat %ld",
                              path, t->extname, c->name, prod, c->repeat);
                goto done;
            }
        }
        snprintf(forms[i], sizeof forms[i], "%ld%c", c->repeat, letter);
        ttype[i] = (char *)c->name;
        tform[i] = forms[i];
        tunit[i] = (char *)c->unit;
    }
    if (fits_create_tbl(fptr, BINARY_TBL, t->nrows, ncols, ttype, tform, tunit,
                        t->extname[0] ? t->extname : NULL, &status)) {
        rc = sk_fits_status_error(status, path, "creating a table HDU");
        goto done;
    }
    for (int i = 0; i < ncols && !rc; i++) {
        const sk_column *c = &t->cols[i];
        if (c->ndims > 0 && fits_write_tdim(fptr, i + 1, c->ndims, (long *)c->dims, &status))
            rc = sk_fits_status_error(status, path, "writing TDIM");
    }
    if (!rc)
        rc = sk_fits_write_cards(fptr, t->header, path);
    if (!rc && t->nrows > 0)
        rc = write_rows(fptr, t, path);
done:
    free(ttype);
    free(tform);
    free(tunit);
    free(forms);
    return rc;
}

int sk_fits_write_table(const char *path, const sk_table *t)
{
    sk_fits_writer *w;
    int rc = sk_fits_writer_open(path, 0, &w);
    if (rc)
        return rc;
    if ((rc = sk_fits_writer_add_table(w, t))) {
        sk_fits_writer_abort(w);
        return rc;
    }
    return sk_fits_writer_commit(w);
}

/* Our column type for a cfitsio (equivalent) column type; -1 unsupported. */
static int column_type(int typecode)
{
    switch (abs(typecode)) {
    case TDOUBLE: return SK_COL_DOUBLE;
    case TFLOAT: return SK_COL_FLOAT;
    case TLONGLONG: return SK_COL_INT64;
    case TULONG: return SK_COL_INT64;
    case TLONG: return SK_COL_INT32;
    case TINT: return SK_COL_INT32;
    case TUSHORT: return SK_COL_INT32;
    case TSHORT: return SK_COL_INT16;
    case TSBYTE: return SK_COL_INT16;
    case TBYTE: return SK_COL_UINT8;
    case TBIT: return SK_COL_UINT8;
    case TLOGICAL: return SK_COL_LOGICAL;
    case TSTRING: return SK_COL_STRING;
    default: return -1; /* complex, unsigned 64-bit */
    }
}

static int read_table_hdu(fitsfile *fptr, const char *path, sk_table **out)
{
    int status = 0, ncols = 0, rc = SK_OK;
    long nrows = 0;
    char extname[FLEN_VALUE] = "";
    *out = NULL;
    if (fits_get_num_rows(fptr, &nrows, &status) || fits_get_num_cols(fptr, &ncols, &status))
        return sk_fits_status_error(status, path, "reading the table size");
    if (fits_read_key(fptr, TSTRING, "EXTNAME", extname, NULL, &status)) {
        status = 0;
        extname[0] = '\0';
    }
    fits_clear_errmsg();
    char label[FLEN_VALUE + 16];
    snprintf(label, sizeof label, "table %s", extname);
    if ((rc = sk_fits_check_data_size(fptr, path, label)))
        return rc;
    sk_header *raw = NULL;
    char *records = NULL;
    int nkeys = 0;
    if (fits_hdr2str(fptr, 0, NULL, 0, &records, &nkeys, &status))
        return sk_fits_status_error(status, path, "reading the table header");
    raw = sk_header_new();
    rc = raw ? sk_header_append_records(raw, records, nkeys) : SK_EIO;
    status = 0;
    fits_free_memory(records, &status);
    sk_table *t = rc ? NULL : sk_table_new(extname, nrows);
    if (!t) {
        sk_header_free(raw);
        return rc ? rc : SK_EIO;
    }
    /* The extra keywords: everything not describing the HDU's layout. */
    for (int i = 0; i < raw->ncards && !rc; i++) {
        char name[FLEN_CARD];
        sk_fits_card_keyword(raw->cards[i], name);
        if (!sk_header_is_structural(name))
            rc = sk_header_append_records(t->header, raw->cards[i], 1);
    }

    for (int col = 1; col <= ncols && !rc; col++) {
        char key[FLEN_KEYWORD], name[FLEN_VALUE] = "", unit[FLEN_VALUE] = "";
        int typecode = 0;
        long repeat = 0, width = 0;
        snprintf(key, sizeof key, "TTYPE%d", col);
        if (sk_header_get_str(raw, key, name, sizeof name) != 1 || !name[0])
            snprintf(name, sizeof name, "COL%d", col);
        snprintf(key, sizeof key, "TUNIT%d", col);
        if (sk_header_get_str(raw, key, unit, sizeof unit) != 1)
            unit[0] = '\0';
        if (fits_get_eqcoltype(fptr, col, &typecode, &repeat, &width, &status)) {
            rc = sk_fits_status_error(status, path, "reading a column type");
            break;
        }
        int type = column_type(typecode);
        /* Integers scaled to non-integer values (TSCAL/TZERO) read as double. */
        int base_type = 0;
        long base_repeat, base_width;
        fits_get_coltype(fptr, col, &base_type, &base_repeat, &base_width, &status);
        if ((typecode == TFLOAT || typecode == TDOUBLE) && base_type != TFLOAT && base_type != TDOUBLE)
            type = SK_COL_DOUBLE;
        if (abs(typecode) == TBIT)
            repeat = (repeat + 7) / 8;
        if (type < 0 || typecode < 0) {
            sk_warn("%s: table %s: column %s skipped (%s)", path, extname, name,
                    typecode < 0 ? "variable-length array" : "unsupported type");
            continue;
        }
        if (type == SK_COL_STRING && width > 0 && repeat > width) {
            /* rAw: several strings per row, which one string per row cannot hold. */
            sk_warn("%s: table %s: column %s skipped (%ld strings per row)", path, extname, name,
                    repeat / width);
            continue;
        }
        if (repeat < 1) {
            sk_warn("%s: table %s: column %s skipped (no elements)", path, extname, name);
            continue;
        }
        sk_column *c = sk_table_add_column(t, name, type, repeat, unit);
        if (!c) {
            rc = sk_errstatus();
            break;
        }
        snprintf(key, sizeof key, "TDIM%d", col);
        if (sk_header_find(raw, key) >= 0 && type != SK_COL_STRING) {
            int naxis = 0;
            long naxes[4] = {0};
            if (fits_read_tdim(fptr, col, 4, &naxis, naxes, &status) == 0 && naxis > 0 && naxis <= 4) {
                c->ndims = naxis;
                for (int k = 0; k < naxis; k++)
                    c->dims[k] = naxes[k];
            }
            status = 0;
            fits_clear_errmsg();
        }
        if (nrows == 0)
            continue;
        int anynul = 0;
        if (type == SK_COL_STRING) {
            char **rows = string_rows(c, nrows);
            if (!rows) {
                rc = sk_error(SK_EIO, "%s: out of memory", path);
                break;
            }
            fits_read_col(fptr, TSTRING, col, 1, 1, nrows, "", rows, &anynul, &status);
            free(rows);
        } else {
            char letter;
            int datatype = fits_datatype(type, &letter);
            fits_read_col(fptr, datatype, col, 1, 1, (LONGLONG)nrows * repeat, NULL, c->data,
                          &anynul, &status);
        }
        if (status) {
            char what[FLEN_VALUE + 32];
            snprintf(what, sizeof what, "reading column %s", name);
            rc = sk_fits_status_error(status, path, what);
        }
    }
    sk_header_free(raw);
    if (rc) {
        sk_table_free(t);
        return rc;
    }
    *out = t;
    return SK_OK;
}

int sk_fits_read_table(const char *path, const char *hdu, sk_table **out)
{
    fitsfile *fptr;
    *out = NULL;
    int rc = sk_fits_open_read(path, &fptr);
    if (rc)
        return rc;
    rc = sk_fits_goto_hdu(fptr, path, hdu, 1);
    int status = 0, type = 0;
    if (!rc && (fits_get_hdu_type(fptr, &type, &status) || type != BINARY_TBL))
        rc = sk_error(SK_EINPUT, "%s: HDU %s is not a binary table", path, hdu ? hdu : "");
    if (!rc)
        rc = read_table_hdu(fptr, path, out);
    status = 0;
    fits_close_file(fptr, &status);
    fits_clear_errmsg();
    return rc;
}
