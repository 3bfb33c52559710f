/* test_fits_update.c: sk_fits_replace_wcs: the new WCS read back and the
 * old one gone (SIP, TPV's PV cards), alternate descriptions, other
 * keywords, pixels, the other HDUs and the file's permissions kept, plain
 * and tile-compressed; refusals (no such HDU, a .gz file, not FITS) leave
 * the file byte for byte as it was and no temporary file behind. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../tap.h"
#include "coadd_fixture.h"
#include "skystack/fits.h"
#include "skystack/hash.h"
#include "skystack/header.h"
#include "skystack/image.h"

#define W 64
#define H 48

static long files_in(const char *dir)
{
    DIR *d = opendir(dir);
    long n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* An image with a TAN-SIP WCS, PV cards as TPV leaves them, an alternate
 * description and an observer keyword. */
static sk_image *make_image(void)
{
    sk_image *img = sk_image_new(W, H);
    for (long i = 0; i < W * H; i++) {
        img->sci[i] = (float)(i % 97) - 3.5f;
        img->weight[i] = 0.25f + (float)(i % 5);
        img->flags[i] = (uint16_t)(i % 7 == 0 ? SK_FLAG_BAD : 0);
    }
    fx_wcs w = {150.0, 2.0, 32.5, 24.5, 0.26, 12.0, 2e-5};
    sk_header *h = fx_header(&w);
    sk_header_set_double(h, "PV2_1", 1.0, "left by TPV");
    sk_header_set_str(h, "CTYPE1A", "LINEAR", "an alternate description");
    sk_header_set_str(h, "OBSERVER", "someone", NULL);
    sk_header_free(img->header);
    img->header = h;
    return img;
}

static sk_header *new_wcs(void)
{
    fx_wcs w = {150.001, 2.002, 30.0, 20.0, 0.25, -3.0, 0.0};
    return fx_header(&w);
}

static void check_file(const char *label, const char *path, const sk_image *orig)
{
    sk_header *before = NULL;
    sk_fits_read_header(path, "WGT", &before);
    char wgt_before[33] = "";
    if (before)
        snprintf(wgt_before, sizeof wgt_before, "%ld", (long)before->ncards);
    chmod(path, 0640);
    sk_header *nw = new_wcs();
    is_int(sk_fits_replace_wcs(path, NULL, nw, "WCS solved by a test"), 0, "%s: WCS replaced", label);
    sk_header *h = NULL;
    is_int(sk_fits_read_header(path, NULL, &h), 0, "%s: header reads back", label);
    double v = 0.0;
    char s[72] = "";
    ok(h && sk_header_get_double(h, "CRVAL1", &v) == 1 && fabs(v - 150.001) < 1e-12,
       "%s: the new CRVAL1 (%.6f)", label, v);
    ok(h && sk_header_get_double(h, "CRPIX2", &v) == 1 && fabs(v - 20.0) < 1e-12,
       "%s: the new CRPIX2", label);
    ok(h && sk_header_get_str(h, "CTYPE1", s, sizeof s) == 1 && strcmp(s, "RA---TAN") == 0,
       "%s: CTYPE1 of the new WCS (%s)", label, s);
    ok(h && sk_header_get_double(h, "A_ORDER", &v) != 1 && sk_header_get_double(h, "A_2_0", &v) != 1 &&
           sk_header_get_double(h, "PV2_1", &v) != 1,
       "%s: the old SIP and PV cards are gone", label);
    ok(h && sk_header_get_str(h, "CTYPE1A", s, sizeof s) == 1 && strcmp(s, "LINEAR") == 0,
       "%s: the alternate description is kept", label);
    ok(h && sk_header_get_str(h, "OBSERVER", s, sizeof s) == 1 && strcmp(s, "someone") == 0,
       "%s: other keywords are kept", label);
    int hist = 0;
    for (int i = 0; h && i < h->ncards; i++)
        hist |= strncmp(h->cards[i], "HISTORY WCS solved by a test", 28) == 0;
    ok(hist, "%s: HISTORY line", label);
    sk_image *img = NULL;
    is_int(sk_fits_read_image(path, NULL, &img), 0, "%s: image reads back", label);
    ok(img && memcmp(img->sci, orig->sci, sizeof(float) * W * H) == 0 &&
           memcmp(img->weight, orig->weight, sizeof(float) * W * H) == 0 &&
           memcmp(img->flags, orig->flags, sizeof(uint16_t) * W * H) == 0,
       "%s: pixels, weights and flags unchanged", label);
    ok(img && img->wcs, "%s: the new WCS parses", label);
    sk_header *after = NULL;
    sk_fits_read_header(path, "WGT", &after);
    char wgt_after[33] = "";
    if (after)
        snprintf(wgt_after, sizeof wgt_after, "%ld", (long)after->ncards);
    ok(before && after && strcmp(wgt_before, wgt_after) == 0, "%s: the WGT header is untouched",
       label);
    struct stat st;
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640, "%s: permissions kept (%o)", label,
       (unsigned)(st.st_mode & 0777));
    sk_image_free(img);
    sk_header_free(h);
    sk_header_free(nw);
    sk_header_free(before);
    sk_header_free(after);
}

int main(void)
{
    tap_plan(40);
    const char *dir = tap_tmpdir();
    char path[4200], fz[4200], gz[4200], bad[4200];
    snprintf(path, sizeof path, "%s/img.fits", dir);
    snprintf(fz, sizeof fz, "%s/img.fits.fz", dir);
    snprintf(gz, sizeof gz, "%s/img.fits.gz", dir);
    snprintf(bad, sizeof bad, "%s/notfits.fits", dir);
    sk_image *img = make_image();
    is_int(sk_fits_write_image(path, img, NULL), 0, "plain image written");
    sk_write_opts wo;
    memset(&wo, 0, sizeof wo);
    wo.compress = 1;
    is_int(sk_fits_write_image(fz, img, &wo), 0, "tile-compressed image written");
    check_file("plain", path, img);
    check_file("tile-compressed", fz, img);

    /* the same update again: the same file (one HISTORY line) */
    {
        char m1[33], m2[33];
        sk_header *again = new_wcs();
        sk_md5_file(path, m1);
        is_int(sk_fits_replace_wcs(path, NULL, again, "WCS solved by a test"), 0, "updated again");
        sk_md5_file(path, m2);
        ok(strcmp(m1, m2) == 0, "with the same cards: the same file");
        sk_header_free(again);
    }

    /* refusals change nothing */
    char md5a[33], md5b[33];
    sk_md5_file(path, md5a);
    long nfiles = files_in(dir);
    sk_header *nw = new_wcs();
    is_int(sk_fits_replace_wcs(path, "NOPE", nw, NULL), SK_EINPUT, "no such HDU: refused");
    ok(strstr(sk_errmsg(), "NOPE") != NULL, "naming the HDU (%s)", sk_errmsg());
    sk_md5_file(path, md5b);
    ok(strcmp(md5a, md5b) == 0 && files_in(dir) == nfiles, "the file unchanged, nothing left behind");
    FILE *f = fopen(gz, "w");
    fputs("not really gzip", f);
    fclose(f);
    is_int(sk_fits_replace_wcs(gz, NULL, nw, NULL), SK_EINPUT, "a .gz file: refused");
    ok(strstr(sk_errmsg(), "decompress") != NULL, "saying why (%s)", sk_errmsg());
    f = fopen(bad, "w");
    fputs("SIMPLE  = this is not FITS at all\n", f);
    fclose(f);
    sk_md5_file(bad, md5a);
    nfiles = files_in(dir);
    is_int(sk_fits_replace_wcs(bad, NULL, nw, NULL), SK_EINPUT, "not FITS: refused");
    sk_md5_file(bad, md5b);
    ok(strcmp(md5a, md5b) == 0 && files_in(dir) == nfiles, "the file unchanged, nothing left behind");
    is_int(sk_fits_replace_wcs(path, NULL, NULL, NULL), SK_EINPUT, "no WCS: refused");
    sk_header_free(nw);
    sk_image_free(img);
    return tap_done();
}
