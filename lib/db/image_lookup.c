/* image_lookup.c: finding the images row of an id or of a path in the data root, with the columns the product pipelines use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "core/path_priv.h"
#include "db_priv.h"
#include "pipeline_rows_priv.h"

static void copy_value(char *dst, size_t size, const PGresult *row, int col)
{
    const char *v = sk_db_value(row, 0, col);
    snprintf(dst, size, "%s", v ? v : "");
}

/* The path as stored: relative to the data root when it lies under it. */
static void stored_path(const char *root, const char *arg, char *rel, size_t relsz)
{
    char *real = realpath(arg, NULL), *rroot = realpath(root, NULL);
    size_t n = rroot ? strlen(rroot) : 0;
    if (real && rroot && strncmp(real, rroot, n) == 0 && real[n] == '/')
        snprintf(rel, relsz, "%s", real + n + 1);
    else
        snprintf(rel, relsz, "%s", arg);
    free(real);
    free(rroot);
}

static void fill_row(const PGresult *row, sk_registered_image *out)
{
    out->id = strtoll(sk_db_value(row, 0, 0), NULL, 10);
    copy_value(out->filepath, sizeof out->filepath, row, 1);
    copy_value(out->provenance_id, sizeof out->provenance_id, row, 2);
    copy_value(out->instrument, sizeof out->instrument, row, 3);
    copy_value(out->telescope, sizeof out->telescope, row, 4);
    copy_value(out->filter, sizeof out->filter, row, 5);
    copy_value(out->section, sizeof out->section, row, 6);
    copy_value(out->target, sizeof out->target, row, 7);
    copy_value(out->project, sizeof out->project, row, 8);
    out->mjd = sk_db_double(row, 0, 9);
    out->end_mjd = sk_db_double(row, 0, 10);
    out->exptime_s = sk_db_double(row, 0, 11);
    out->gain = sk_db_double(row, 0, 12);
    copy_value(out->md5, sizeof out->md5, row, 13);
    copy_value(out->type, sizeof out->type, row, 14);
}

int sk_db_find_image(sk_db *db, const char *root, const char *arg, sk_registered_image *out)
{
    static const char *cols =
        "SELECT id, filepath, provenance_id, instrument, telescope, filter, section_id, target, "
        "project, mjd, end_mjd, exp_time, gain, md5, type FROM images WHERE ";
    char sql[512];
    PGresult *row = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    if (sk_path_is_number(arg) && !sk_path_is_file(arg)) {
        snprintf(sql, sizeof sql, "%sid = $1", cols);
        const char *params[1] = {arg};
        rc = sk_db_exec_row(db, "finding the image", sql, 1, params, &row);
        if (rc == SK_ENOTFOUND)
            return sk_error(SK_ENOTFOUND, "image id %s: not in the database", arg);
    } else {
        char rel[4096];
        stored_path(root, arg, rel, sizeof rel);
        snprintf(sql, sizeof sql, "%sfilepath = $1", cols);
        const char *params[1] = {rel};
        rc = sk_db_exec_row(db, "finding the image", sql, 1, params, &row);
        if (rc == SK_ENOTFOUND)
            return sk_error(SK_ENOTFOUND, "%s: not registered in the database under %s "
                                          "(register it with imingest, or use --no-db)", arg, root);
    }
    if (rc)
        return rc;
    fill_row(row, out);
    PQclear(row);
    return SK_OK;
}
