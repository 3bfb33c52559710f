/* fits_update.c: replace the world coordinate system in the header of one HDU of an existing FITS file, atomically (the file copied whole with the new header, then renamed over the original). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fits_priv.h"
#include "skystack/atomic.h"
#include "skystack/error.h"
#include "skystack/fits.h"

/* s is one or more digits and nothing else. */
static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* s is "<digits>_<digits>". */
static int digits_pair(const char *s)
{
    const char *u = strchr(s, '_');
    if (!u || u == s)
        return 0;
    char a[FLEN_KEYWORD];
    snprintf(a, sizeof a, "%.*s", (int)(u - s), s);
    return all_digits(a) && all_digits(u + 1);
}

/* A keyword of the primary world coordinate description (alternate
 * descriptions, with a letter suffix, are kept): the linear part, the
 * projection parameters (TPV's distortion among them) and SIP. */
static int is_primary_wcs_key(const char *k)
{
    static const char *const whole[] = {"WCSAXES", "LONPOLE", "LATPOLE", "RADESYS", "RADECSYS",
                                        "EQUINOX", "A_ORDER", "B_ORDER", "AP_ORDER",
                                        "BP_ORDER", "A_DMAX", "B_DMAX", "WCSNAME"};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        if (strcmp(k, whole[i]) == 0)
            return 1;
    static const char *const indexed[] = {"CTYPE", "CUNIT", "CRVAL", "CRPIX", "CDELT", "CROTA",
                                          "CRDER", "CSYER"};
    for (size_t i = 0; i < sizeof indexed / sizeof indexed[0]; i++) {
        size_t n = strlen(indexed[i]);
        if (strncmp(k, indexed[i], n) == 0 && all_digits(k + n))
            return 1;
    }
    static const char *const pairs[] = {"CD", "PC", "PV", "PS", "A_", "B_", "AP_", "BP_"};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t n = strlen(pairs[i]);
        if (strncmp(k, pairs[i], n) == 0 && digits_pair(k + n))
            return 1;
    }
    return 0;
}

static int compressed_name(const char *path)
{
    static const char *const ext[] = {".gz", ".Z", ".bz2", ".zip"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t m = strlen(ext[i]);
        if (n > m && strcasecmp(path + n - m, ext[i]) == 0)
            return 1;
    }
    return 0;
}

/* In the open output: drop the primary WCS keywords of the current HDU and
 * those the new cards set, write the new cards, a HISTORY line. */
static int rewrite_hdu(fitsfile *out, const char *path, const sk_header *wcs, const char *history)
{
    int status = 0, nkeys = 0;
    if (fits_get_hdrspace(out, &nkeys, NULL, &status))
        return sk_fits_status_error(status, path, "reading the header");
    for (int k = nkeys; k >= 1; k--) {
        char card[FLEN_CARD], name[FLEN_CARD];
        if (fits_read_record(out, k, card, &status))
            return sk_fits_status_error(status, path, "reading the header");
        sk_fits_card_keyword(card, name);
        /* the old WCS, and this HISTORY line from an earlier update (so
         * that updating again with it changes nothing) */
        int same_history = history && strcmp(name, "HISTORY") == 0 &&
                           strncmp(card + 8, history, strlen(history)) == 0 &&
                           strspn(card + 8 + strlen(history), " ") == strlen(card + 8 + strlen(history));
        /* and every keyword the new cards set, so that they are written
         * in their order whatever the header held */
        int in_new = name[0] && strcmp(name, "COMMENT") != 0 && strcmp(name, "HISTORY") != 0 &&
                     sk_header_find(wcs, name) >= 0;
        if ((is_primary_wcs_key(name) || same_history || in_new) &&
            fits_delete_record(out, k, &status))
            return sk_fits_status_error(status, path, "removing the old WCS");
    }
    for (int i = 0; i < wcs->ncards; i++) {
        char card[FLEN_CARD], name[FLEN_CARD];
        snprintf(card, sizeof card, "%.80s", wcs->cards[i]);
        sk_fits_card_keyword(card, name);
        if (!name[0] || strcmp(name, "END") == 0)
            continue;
        if (sk_header_is_structural(name))
            continue;
        if (fits_write_record(out, card, &status))
            return sk_fits_status_error(status, path, "writing the new WCS");
    }
    if (history && fits_write_history(out, history, &status))
        return sk_fits_status_error(status, path, "writing HISTORY");
    return SK_OK;
}

int sk_fits_replace_wcs(const char *path, const char *hdu, const sk_header *wcs,
                        const char *history)
{
    if (!path || !wcs || wcs->ncards == 0)
        return sk_error(SK_EINPUT, "%s: no WCS to write", path ? path : "(no file)");
    if (compressed_name(path))
        return sk_error(SK_EINPUT, "%s: a compressed file cannot be updated in place; "
                        "decompress it first", path);
    struct stat st;
    if (stat(path, &st) != 0)
        return sk_error(errno == ENOENT ? SK_EINPUT : SK_EIO, "%s: %s", path, strerror(errno));
    fitsfile *in = NULL, *out = NULL;
    int rc = sk_fits_open_read(path, &in);
    if (rc)
        return rc;
    int status = 0, hdunum = 0, type = 0;
    rc = sk_fits_goto_hdu(in, path, hdu, 0);
    if (!rc)
        fits_get_hdu_num(in, &hdunum);
    sk_atomic *a = NULL;
    if (!rc)
        rc = sk_atomic_reserve(path, &a);
    if (!rc) {
        /* cfitsio creates only new files, and takes no extended name here */
        unlink(a->tmp_path);
        if (fits_create_diskfile(&out, a->tmp_path, &status)) {
            out = NULL;
            rc = sk_fits_status_error(status, path, "creating the updated copy");
        }
    }
    if (!rc && (fits_movabs_hdu(in, 1, &type, &status) || fits_copy_file(in, out, 1, 1, 1, &status)))
        rc = sk_fits_status_error(status, path, "copying the file");
    if (!rc && fits_movabs_hdu(out, hdunum, &type, &status))
        rc = sk_fits_status_error(status, path, "moving to the HDU");
    if (!rc)
        rc = rewrite_hdu(out, path, wcs, history);
    if (out) {
        status = 0;
        if (fits_close_file(out, &status) && !rc)
            rc = sk_fits_status_error(status, path, "writing the updated copy");
    }
    status = 0;
    fits_close_file(in, &status);
    fits_clear_errmsg();
    if (!rc && chmod(a->tmp_path, st.st_mode & 07777) != 0)
        rc = sk_error(SK_EIO, "%s: %s", a->tmp_path, strerror(errno));
    if (rc) {
        sk_atomic_abort(a);
        return rc;
    }
    return sk_atomic_commit(a);
}
