/* test_fits.c: FITS image reading and writing: the SCI/WGT/FLG layout (plain and tile-compressed), the real DECam and M13 files, noise and mask conversions, and bad input. */
#include <dirent.h>
#include <fitsio.h>
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "skystack/skystack.h"
#include "io/fits_priv.h"
#include "../tap.h"
#include "../data/fits/real_fixtures.h"

static char *tmp_path(const char *name)
{
    static char buf[16][4200];
    static int k;
    char *b = buf[k++ & 15];
    snprintf(b, sizeof buf[0], "%s/%s", tap_tmpdir(), name);
    return b;
}

/* A small deterministic generator for test pixels. */
static uint64_t rng_state = 88172645463325252ULL;
static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int contains(const char *hay, const char *needle)
{
    return hay && needle && strstr(hay, needle) != NULL;
}

/* One float image as the primary HDU of a new file (or a named extension). */
static int write_plane(const char *path, const char *extname, long w, long h, const float *pix,
                       const sk_header *hdr)
{
    sk_fits_writer *wr;
    int rc = sk_fits_writer_open(path, 0, &wr);
    if (rc)
        return rc;
    if ((rc = sk_fits_writer_add_image(wr, extname, -32, w, h, pix, hdr))) {
        sk_fits_writer_abort(wr);
        return rc;
    }
    return sk_fits_writer_commit(wr);
}

static sk_image *make_test_image(long w, long h)
{
    sk_image *img = sk_image_new(w, h);
    for (long i = 0; i < w * h; i++) {
        img->sci[i] = (float)((uniform() - 0.3) * 1000.0 * (i % 7 == 0 ? 1e-6 : 1.0));
        img->weight[i] = (float)(uniform() * 0.01);
        img->flags[i] = (uint16_t)((uniform() < 0.1) ? (1u << (i % SK_FLAG_NBITS)) : 0);
    }
    img->sci[3] = 3.4e38f;
    img->sci[4] = -1.17549435e-38f;
    img->weight[5] = 0;
    img->flags[5] = 0; /* weight 0 without a flag must survive a round trip */
    img->flags[6] = 0x1ff;
    sk_header_set_str(img->header, "OBJECT", "round trip", "target");
    sk_header_set_double(img->header, "MJD-OBS", 58426.30880066, NULL);
    sk_header_set_long(img->header, "NCOMBINE", 7, NULL);
    sk_header_set_bool(img->header, "PHOTOK", 1, NULL);
    sk_header_set_str(img->header, "ESO OBS NAME", "hierarch value", NULL);
    char longval[200];
    for (int k = 0; k < 150; k++)
        longval[k] = (char)('A' + k % 26);
    longval[150] = '\0';
    sk_header_set_str(img->header, "LONGNOTE", longval, NULL);
    sk_header_set_long(img->header, "BITPIX", 8, NULL); /* structural: must be ignored */
    return img;
}

static void check_round_trip(const char *path, const sk_image *img, const char *label)
{
    sk_image *back = NULL;
    int rc = sk_fits_read_image(path, NULL, &back);
    ok(rc == SK_OK && back, "%s: read back (%s)", label, sk_errmsg());
    if (!back)
        return;
    size_t n = (size_t)img->width * (size_t)img->height;
    ok(back->width == img->width && back->height == img->height, "%s: size %ld x %ld", label,
       back->width, back->height);
    ok(memcmp(back->sci, img->sci, n * sizeof(float)) == 0, "%s: SCI bit-identical", label);
    ok(memcmp(back->weight, img->weight, n * sizeof(float)) == 0, "%s: WGT bit-identical", label);
    ok(memcmp(back->flags, img->flags, n * sizeof(uint16_t)) == 0, "%s: FLG identical", label);
    is_int(back->weight_is_relative, img->weight_is_relative, "%s: relative-weight mark kept", label);
    char s[256];
    double d = 0;
    long l = 0;
    int b = 0;
    sk_header_get_str(back->header, "OBJECT", s, sizeof s);
    is_str(s, "round trip", "%s: OBJECT kept", label);
    sk_header_get_double(back->header, "MJD-OBS", &d);
    ok(d == 58426.30880066, "%s: MJD-OBS exact", label);
    sk_header_get_long(back->header, "NCOMBINE", &l);
    is_int(l, 7, "%s: NCOMBINE kept", label);
    ok(sk_header_get_bool(back->header, "PHOTOK", &b) == 1 && b == 1, "%s: PHOTOK kept", label);
    sk_header_get_str(back->header, "ESO OBS NAME", s, sizeof s);
    is_str(s, "hierarch value", "%s: HIERARCH keyword kept", label);
    char want[200], got[256];
    sk_header_get_str(img->header, "LONGNOTE", want, sizeof want);
    sk_header_get_str(back->header, "LONGNOTE", got, sizeof got);
    is_str(got, want, "%s: long string kept", label);
    sk_header_get_long(back->header, "BITPIX", &l);
    is_int(l, -32, "%s: SCI is float32 whatever the header said", label);
    char extname[32];
    sk_header_get_str(back->header, "EXTNAME", extname, sizeof extname);
    is_str(extname, "SCI", "%s: science HDU is SCI", label);
    sk_image_free(back);

    sk_header *fh = NULL;
    ok(sk_fits_read_header(path, "FLG", &fh) == SK_OK, "%s: FLG header", label);
    if (fh) {
        sk_header_get_str(fh, "FLAGBIT2", s, sizeof s);
        is_str(s, "COSMIC", "%s: FLAGBIT2 names the bit", label);
        sk_header_get_long(fh, "BITPIX", &l);
        is_int(l, 16, "%s: FLG is 16-bit", label);
        sk_header_free(fh);
    }
}

static void test_round_trip(void)
{
    sk_image *img = make_test_image(37, 23);
    const char *plain = tmp_path("rt.fits");
    ok(sk_fits_write_image(plain, img, NULL) == SK_OK, "write SCI/WGT/FLG (%s)", sk_errmsg());
    check_round_trip(plain, img, "plain");

    /* The md5 computed as the file is written, in the caller and beside
     * the writing: the md5 of the file made. */
    for (int t = 1; t <= 2; t++) {
        char md5[33] = "", whole[33] = "";
        sk_write_opts mo = {.md5 = md5, .threads = t, .compress = t == 2};
        const char *mp = tmp_path(t == 2 ? "md5.fits.fz" : "md5.fits");
        ok(sk_fits_write_image(mp, img, &mo) == SK_OK && sk_md5_file(mp, whole) == SK_OK &&
               strcmp(md5, whole) == 0,
           "md5 as written is the file's (%s, %d thread(s)): %s", t == 2 ? "compressed" : "plain", t,
           md5);
    }

    /* The layout as a FITS reader sees it. */
    fitsfile *f;
    int status = 0, nhdu = 0, bitpix = 0, naxis = -1;
    fits_open_diskfile(&f, plain, READONLY, &status);
    fits_get_num_hdus(f, &nhdu, &status);
    is_int(nhdu, 4, "four HDUs: primary, SCI, WGT, FLG");
    fits_get_img_dim(f, &naxis, &status);
    is_int(naxis, 0, "the primary HDU is empty");
    fits_movnam_hdu(f, IMAGE_HDU, "SCI", 0, &status);
    ok(!fits_is_compressed_image(f, &status), "plain SCI is not tile-compressed");
    fits_movnam_hdu(f, IMAGE_HDU, "WGT", 0, &status);
    fits_get_img_equivtype(f, &bitpix, &status);
    is_int(bitpix, FLOAT_IMG, "WGT is float32");
    fits_movnam_hdu(f, IMAGE_HDU, "FLG", 0, &status);
    fits_get_img_equivtype(f, &bitpix, &status);
    is_int(bitpix, USHORT_IMG, "FLG is uint16 (BZERO 32768)");
    fits_close_file(f, &status);
    is_int(status, 0, "cfitsio reads the layout");

    sk_write_opts zopts = {.compress = 1};
    const char *packed = tmp_path("rt.fits.fz");
    ok(sk_fits_write_image(packed, img, &zopts) == SK_OK, "write tile-compressed (%s)", sk_errmsg());
    check_round_trip(packed, img, "compressed");
    status = 0;
    int compressed = 0;
    fits_open_diskfile(&f, packed, READONLY, &status);
    fits_movnam_hdu(f, ANY_HDU, "SCI", 0, &status);
    compressed = fits_is_compressed_image(f, &status);
    fits_close_file(f, &status);
    ok(compressed, "SCI of the .fz is tile-compressed");

    /* Relative weights are marked and read back as such. */
    img->weight_is_relative = 1;
    ok(sk_fits_write_image(plain, img, NULL) == SK_OK, "overwrite with relative weights");
    sk_image *back = NULL;
    sk_fits_read_image(plain, NULL, &back);
    ok(back && back->weight_is_relative == 1, "relative weights read back as relative");
    sk_image_free(back);
    img->weight_is_relative = 0;

    /* Lossy quantization: close to, not equal to, the input. */
    sk_image *noisy = sk_image_new(64, 64);
    for (long i = 0; i < 64 * 64; i++) {
        double u1 = uniform(), u2 = uniform();
        noisy->sci[i] = (float)(100.0 + 10.0 * sqrt(-2 * log(u1 + 1e-300)) * cos(2 * M_PI * u2));
        noisy->weight[i] = 0.01f;
    }
    sk_write_opts qopts = {.compress = 1, .quantize_level = 4};
    const char *lossy = tmp_path("lossy.fits.fz");
    ok(sk_fits_write_image(lossy, noisy, &qopts) == SK_OK, "write lossy q=4");
    sk_image *lb = NULL;
    sk_fits_read_image(lossy, NULL, &lb);
    double maxdiff = 0;
    for (long i = 0; lb && i < 64 * 64; i++)
        maxdiff = fmax(maxdiff, fabs(lb->sci[i] - noisy->sci[i]));
    ok(lb && maxdiff > 0 && maxdiff < 10.0 / 4, "lossy: max error %.3g below sigma/q = 2.5", maxdiff);
    sk_image_free(lb);
    sk_image_free(noisy);
    sk_image_free(img);
}

static void test_writer_planes(void)
{
    const char *path = tmp_path("planes.fits");
    int32_t nimg[12];
    double dbl[12];
    uint16_t u16[12];
    for (int i = 0; i < 12; i++) {
        nimg[i] = i * 1000003 - 5;
        dbl[i] = 1.0 / (i + 3);
        u16[i] = (uint16_t)(65535 - i);
    }
    sk_fits_writer *w;
    char md5[33] = "", whole[33] = "";
    ok(sk_fits_writer_open(path, 0, &w) == SK_OK && sk_fits_writer_md5(w, 2, md5) == SK_OK,
       "writer open, md5 asked for");
    ok(sk_fits_writer_add_image(w, "NIMG", 32, 4, 3, nimg, NULL) == SK_OK, "add int32 plane");
    ok(sk_fits_writer_add_image(w, "DBL", -64, 4, 3, dbl, NULL) == SK_OK, "add double plane");
    ok(sk_fits_writer_add_image(w, "U16", 16, 4, 3, u16, NULL) == SK_OK, "add uint16 plane");
    ok(sk_fits_writer_add_image(w, NULL, -32, 4, 3, dbl, NULL) == SK_EINPUT,
       "unnamed HDU after the first refused");
    ok(sk_fits_writer_add_image(w, "BAD", 8, 4, 3, dbl, NULL) == SK_EINPUT, "BITPIX 8 refused");
    ok(!file_exists(path), "nothing at the target before commit");
    ok(sk_fits_writer_commit(w) == SK_OK, "commit");
    ok(file_exists(path), "file exists after commit");
    ok(sk_md5_file(path, whole) == SK_OK && strcmp(md5, whole) == 0,
       "md5 of the planes as written is the file's");
    float *pix = NULL;
    long pw = 0, ph = 0;
    sk_header *hh = NULL;
    ok(sk_fits_read_plane(path, "NIMG", &pix, &pw, &ph, &hh) == SK_OK, "read NIMG plane");
    ok(pw == 4 && ph == 3 && pix && pix[7] == (float)nimg[7] && pix[0] == -5.0f, "int32 values");
    free(pix);
    sk_header_free(hh);
    sk_fits_read_plane(path, "U16", &pix, &pw, &ph, NULL);
    ok(pix && pix[0] == 65535.0f && pix[11] == 65524.0f, "uint16 values with BZERO applied");
    free(pix);
    sk_fits_read_plane(path, "2", &pix, &pw, &ph, NULL);
    ok(pix && pix[1] == (float)(1.0 / 4), "HDU by number (2 = DBL)");
    free(pix);
    ok(sk_fits_has_hdu(path, "DBL") == 1 && sk_fits_has_hdu(path, "NOPE") == 0, "has_hdu");
    ok(sk_fits_has_hdu(tmp_path("missing.fits"), "DBL") == 0, "has_hdu of a missing file");

    /* Compressed writer: lossless for floats, RICE for integers. */
    const char *zpath = tmp_path("planes.fits.fz");
    float fl[12];
    for (int i = 0; i < 12; i++)
        fl[i] = (float)(uniform() * 1e5 - 3e4);
    ok(sk_fits_writer_open(zpath, 1, &w) == SK_OK, "compressed writer open");
    sk_fits_writer_add_image(w, "FL", -32, 4, 3, fl, NULL);
    sk_fits_writer_add_image(w, "NI", 32, 4, 3, nimg, NULL);
    ok(sk_fits_writer_commit(w) == SK_OK, "compressed commit");
    sk_fits_read_plane(zpath, "FL", &pix, &pw, &ph, NULL);
    ok(pix && memcmp(pix, fl, sizeof fl) == 0, "compressed float plane bit-identical");
    free(pix);
    sk_fits_read_plane(zpath, "NI", &pix, &pw, &ph, NULL);
    ok(pix && pix[5] == (float)nimg[5], "compressed int32 plane exact");
    free(pix);
}

static void test_decam(void)
{
    sk_read_opts o = {.noise_path = tap_src(D6_PATH_OOW), .mask_path = tap_src(D6_PATH_OOD)};
    sk_image *img = NULL;
    int rc = sk_fits_read_image(tap_src(D6_PATH_OOI), &o, &img);
    ok(rc == SK_OK && img, "DECam ooi + oow + ood read (%s)", sk_errmsg());
    if (!img)
        return;
    is_int(img->width, D6_WIDTH, "DECam width");
    is_int(img->height, D6_HEIGHT, "DECam height");
    char s[100];
    sk_header_get_str(img->header, "EXTNAME", s, sizeof s);
    is_str(s, D6_EXTNAME, "the first image HDU was chosen");
    sk_header_get_str(img->header, "FILTER", s, sizeof s);
    is_str(s, D6_FILTER, "FILTER inherited from the primary");
    double d = 0;
    ok(sk_header_get_double(img->header, "MJD-OBS", &d) == 1 && d == D6_MJD_OBS, "MJD-OBS inherited");
    ok(sk_header_get_double(img->header, "EXPTIME", &d) == 1 && d == D6_EXPTIME, "EXPTIME inherited");
    ok(sk_header_get_double(img->header, "AIRMASS", &d) == 1 && d == D6_AIRMASS, "AIRMASS inherited");
    sk_header_get_str(img->header, "DATE", s, sizeof s);
    is_str(s, D6_DATE_EXT, "the extension's DATE wins over the primary's " D6_DATE_PRIMARY);
    is_int(img->weight_is_relative, 0, "true inverse variance from oow");
    ok(img->wcs != NULL, "TPV WCS parsed");

    long nbad = 0, nsat = 0, nzero = 0, n_bad_nonzero_weight = 0;
    double sum = 0, wsum = 0;
    for (long i = 0; i < img->width * img->height; i++) {
        nbad += (img->flags[i] & SK_FLAG_BAD) != 0;
        nsat += (img->flags[i] & SK_FLAG_SATURATED) != 0;
        nzero += img->weight[i] == 0;
        n_bad_nonzero_weight += (img->flags[i] & SK_FLAG_BAD) && img->weight[i] != 0;
        sum += img->sci[i];
        wsum += img->weight[i];
    }
    is_int(nbad, D6_N_MASKED, "mask non-zero pixels are BAD");
    is_int(n_bad_nonzero_weight, 0, "BAD pixels have weight 0");
    is_int(nzero, D6_N_WEIGHT_ZERO, "weight-0 pixels");
    is_int(nsat, D6_N_SATURATED, "pixels >= SATURATE flagged SATURATED");
    is_near(sum, D6_SUM_SCI, 1e-7 * fabs(D6_SUM_SCI), "sum of science pixels");
    is_near(wsum, D6_SUM_WGT_UNMASKED, 1e-9, "sum of weights of unmasked pixels");
    long g = D6_GOOD_Y * D6_WIDTH + D6_GOOD_X, m = D6_MASKED_Y * D6_WIDTH + D6_MASKED_X,
         t = D6_SAT_Y * D6_WIDTH + D6_SAT_X;
    ok(img->sci[g] == (float)D6_GOOD_SCI && img->weight[g] == (float)D6_GOOD_WGT && img->flags[g] == 0,
       "good pixel (%ld, %ld): value, weight, no flag", D6_GOOD_X, D6_GOOD_Y);
    ok(img->sci[m] == (float)D6_MASKED_SCI && img->weight[m] == 0 && img->flags[m] == SK_FLAG_BAD,
       "masked pixel (%ld, %ld): value kept, weight 0, BAD", D6_MASKED_X, D6_MASKED_Y);
    ok(img->sci[t] == (float)D6_SAT_SCI && img->weight[t] == 0 &&
           img->flags[t] == (SK_FLAG_BAD | SK_FLAG_SATURATED),
       "saturated pixel (%ld, %ld): BAD|SATURATED, weight 0", D6_SAT_X, D6_SAT_Y);

    /* The same HDU by name and by number. */
    sk_read_opts byname = {.hdu = D6_EXTNAME}, bynum = {.hdu = "1"};
    sk_image *a = NULL, *b = NULL;
    ok(sk_fits_read_image(tap_src(D6_PATH_OOI), &byname, &a) == SK_OK, "HDU by name");
    ok(sk_fits_read_image(tap_src(D6_PATH_OOI), &bynum, &b) == SK_OK, "HDU by number");
    ok(a && b && memcmp(a->sci, img->sci, sizeof(float) * D6_WIDTH * D6_HEIGHT) == 0 &&
           memcmp(b->sci, img->sci, sizeof(float) * D6_WIDTH * D6_HEIGHT) == 0,
       "same pixels either way");
    ok(a && a->weight_is_relative == 1 && a->weight[g] == 1.0f, "no noise given: relative weight 1");
    long asat = 0;
    for (long i = 0; a && i < a->width * a->height; i++)
        asat += a->flags[i] == SK_FLAG_SATURATED;
    is_int(asat, D6_N_SATURATED, "without mask, saturation alone flags");
    sk_image_free(a);
    sk_image_free(b);
    sk_read_opts nosat = {.no_saturation = 1};
    sk_fits_read_image(tap_src(D6_PATH_OOI), &nosat, &a);
    long nflag = 0;
    for (long i = 0; a && i < a->width * a->height; i++)
        nflag += a->flags[i] != 0;
    is_int(nflag, 0, "no_saturation: nothing flagged");
    sk_image_free(a);

    /* Header alone, with INHERIT. */
    sk_header *h = NULL;
    ok(sk_fits_read_header(tap_src(D6_PATH_OOI), D6_EXTNAME, &h) == SK_OK, "read header");
    ok(h && sk_header_get_double(h, "EXPTIME", &d) == 1 && d == D6_EXPTIME, "header has inherited EXPTIME");
    sk_header_free(h);

    /* Write in the skystack layout and read back: same pixels, weights, flags. */
    const char *out = tmp_path("decam.fits");
    ok(sk_fits_write_image(out, img, NULL) == SK_OK, "write the DECam image as SCI/WGT/FLG");
    sk_image *back = NULL;
    sk_fits_read_image(out, NULL, &back);
    size_t n = (size_t)D6_WIDTH * D6_HEIGHT;
    ok(back && memcmp(back->sci, img->sci, n * 4) == 0 && memcmp(back->weight, img->weight, n * 4) == 0 &&
           memcmp(back->flags, img->flags, n * 2) == 0,
       "DECam round trip identical");
    ok(back && back->wcs != NULL, "WCS read back from SCI");
    ok(back && sk_header_get_str(back->header, "FILTER", s, sizeof s) == 1 && strcmp(s, D6_FILTER) == 0,
       "inherited FILTER written into SCI");
    sk_image_free(back);
    sk_image_free(img);

    /* testcase3: 41 x 51. */
    sk_read_opts o3 = {.noise_path = tap_src(D3_PATH_OOW), .mask_path = tap_src(D3_PATH_OOD)};
    ok(sk_fits_read_image(tap_src(D3_PATH_OOI), &o3, &img) == SK_OK, "testcase3 read");
    ok(img && img->width == D3_WIDTH && img->height == D3_HEIGHT, "41 x 51");
    ok(img && img->sci[20 * D3_WIDTH + 10] == (float)D3_PIX_10_20, "pixel (10, 20)");
    sk_header_get_str(img->header, "FILTER", s, sizeof s);
    is_str(s, D3_FILTER, "testcase3 FILTER");
    /* the time of the exposure is in the primary header only (INHERIT = T) */
    ok(img && sk_header_get_double(img->header, "MJD-OBS", &d) == 1 && d == 56887.97073001,
       "testcase3 MJD-OBS from the primary header");
    sk_image_free(img);

    /* An extension without INHERIT that does not say when it was taken gets
       MJD-OBS and DATE-OBS from the primary header; one that does keeps its own. */
    {
        const char *mef = tmp_path("noinherit.fits");
        fitsfile *f = NULL;
        int fst = 0;
        long ax[2] = {4, 4};
        double mjd0 = 57110.35507997, mjd1 = 57111.5;
        char date0[] = "2015-03-29T08:31:18.91", n1[] = "A", n2[] = "B";
        remove(mef);
        fits_create_file(&f, mef, &fst);
        fits_create_img(f, FLOAT_IMG, 0, NULL, &fst);
        fits_write_key(f, TDOUBLE, "MJD-OBS", &mjd0, NULL, &fst);
        fits_write_key(f, TSTRING, "DATE-OBS", date0, NULL, &fst);
        fits_create_img(f, FLOAT_IMG, 2, ax, &fst);
        fits_write_key(f, TSTRING, "EXTNAME", n1, NULL, &fst);
        fits_create_img(f, FLOAT_IMG, 2, ax, &fst);
        fits_write_key(f, TSTRING, "EXTNAME", n2, NULL, &fst);
        fits_write_key(f, TDOUBLE, "MJD-OBS", &mjd1, NULL, &fst);
        fits_close_file(f, &fst);
        sk_header *ha = NULL, *hb = NULL;
        double da = 0, db = 0;
        sk_fits_read_header(mef, "A", &ha);
        sk_fits_read_header(mef, "B", &hb);
        ok(fst == 0 && ha && sk_header_get_double(ha, "MJD-OBS", &da) == 1 && da == mjd0 &&
               sk_header_get_str(ha, "DATE-OBS", s, sizeof s) == 1 && strcmp(s, date0) == 0,
           "no INHERIT, no time: MJD-OBS and DATE-OBS from the primary header");
        ok(hb && sk_header_get_double(hb, "MJD-OBS", &db) == 1 && db == mjd1 &&
               sk_header_get_str(hb, "DATE-OBS", s, sizeof s) != 1,
           "an extension's own MJD-OBS kept, nothing else taken");
        sk_header_free(ha);
        sk_header_free(hb);
    }

    /* Mismatched weight size: names the file. */
    sk_read_opts mism = {.noise_path = tap_src(D3_PATH_OOW)};
    img = NULL;
    rc = sk_fits_read_image(tap_src(D6_PATH_OOI), &mism, &img);
    is_int(rc, SK_EINPUT, "weight of another size refused");
    ok(img == NULL && contains(sk_errmsg(), "c4d_140818_232043_oow_z_ls9.N12.fits") &&
           contains(sk_errmsg(), "41 x 51"),
       "message names the weight file and its size: %s", sk_errmsg());
    sk_read_opts mism2 = {.mask_path = tap_src(D3_PATH_OOD)};
    is_int(sk_fits_read_image(tap_src(D6_PATH_OOI), &mism2, &img), SK_EINPUT, "mask of another size refused");
}

static void test_m13(void)
{
    sk_image *img = NULL;
    int rc = sk_fits_read_image(tap_src(M13_PATH), NULL, &img);
    ok(rc == SK_OK && img, "M13 int16 gzipped read (%s)", sk_errmsg());
    if (!img)
        return;
    is_int(img->width, M13_WIDTH, "M13 width");
    is_int(img->height, M13_HEIGHT, "M13 height");
    ok(img->sci[M13_Y0 * M13_WIDTH + M13_X0] == M13_V0, "pixel (%ld, %ld) = %g", M13_X0, M13_Y0, (double)M13_V0);
    ok(img->sci[M13_Y1 * M13_WIDTH + M13_X1] == M13_V1, "pixel (%ld, %ld) = %g", M13_X1, M13_Y1, (double)M13_V1);
    ok(img->sci[M13_Y2 * M13_WIDTH + M13_X2] == M13_V2, "pixel (%ld, %ld) = %g", M13_X2, M13_Y2, (double)M13_V2);
    ok(img->sci[M13_Y3 * M13_WIDTH + M13_X3] == M13_V3, "pixel (%ld, %ld) = %g", M13_X3, M13_Y3, (double)M13_V3);
    double sum = 0, maxv = -1e30;
    for (long i = 0; i < img->width * img->height; i++) {
        sum += img->sci[i];
        maxv = fmax(maxv, img->sci[i]);
    }
    is_near(sum, M13_SUM, 0, "sum of BZERO-applied pixels");
    is_near(maxv, M13_MAX, 0, "maximum");
    ok(img->wcs == NULL, "no WCS");
    is_int(sk_errstatus(), SK_OK, "the failed WCS parse left no error behind");
    ok(img->weight_is_relative == 1 && img->weight[0] == 1.0f && img->flags[0] == 0,
       "relative weight 1, no flags");
    sk_image_free(img);
}

static void test_nonfinite_and_noise(void)
{
    const long w = 6, h = 4;
    float sci[24], var[24], rms[24];
    for (int i = 0; i < 24; i++) {
        sci[i] = (float)(i + 1);
        var[i] = 4.0f;
        rms[i] = 0.5f;
    }
    sci[2] = NAN;
    sci[9] = INFINITY;
    sci[10] = -INFINITY;
    var[5] = 0.0f;
    var[6] = NAN;
    var[7] = 1e-3f;
    rms[5] = 0.0f;
    rms[8] = 3.0f;
    sk_header *hdr = sk_header_new();
    sk_header_set_double(hdr, "SATURATE", 20.0, NULL);
    const char *sp = tmp_path("nf.fits"), *vp = tmp_path("var.fits"), *rp = tmp_path("rms.fits");
    ok(write_plane(sp, NULL, w, h, sci, hdr) == SK_OK, "write science with NaN/Inf");
    write_plane(vp, NULL, w, h, var, NULL);
    write_plane(rp, NULL, w, h, rms, NULL);
    sk_header_free(hdr);

    sk_read_opts ov = {.noise_path = vp, .noise_kind = SK_NOISE_VARIANCE};
    sk_image *img = NULL;
    ok(sk_fits_read_image(sp, &ov, &img) == SK_OK, "read with a variance file");
    if (img) {
        uint16_t nf = SK_FLAG_NONFINITE | SK_FLAG_BAD;
        ok(img->sci[2] == 0 && img->weight[2] == 0 && img->flags[2] == nf, "NaN: 0, weight 0, NONFINITE|BAD");
        ok(img->sci[9] == 0 && img->weight[9] == 0 && img->flags[9] == nf, "+Inf: 0, weight 0, NONFINITE|BAD");
        ok(img->sci[10] == 0 && img->weight[10] == 0 && img->flags[10] == nf, "-Inf flagged");
        long nonfinite = 0;
        for (int i = 0; i < 24; i++)
            nonfinite += !isfinite(img->sci[i]) || !isfinite(img->weight[i]);
        is_int(nonfinite, 0, "no non-finite value survives");
        is_near(img->weight[0], 0.25, 0, "variance 4 -> weight 0.25");
        is_near(img->weight[7], 1000.0, 1e-3, "variance 1e-3 -> weight 1000");
        ok(img->weight[5] == 0 && img->flags[5] == SK_FLAG_ZEROWEIGHT, "variance 0 -> weight 0, ZEROWEIGHT");
        ok(img->weight[6] == 0 && img->flags[6] == SK_FLAG_ZEROWEIGHT, "NaN variance -> weight 0");
        ok(img->flags[18] == 0 && img->flags[19] == SK_FLAG_SATURATED &&
               img->flags[20] == SK_FLAG_SATURATED && img->weight[20] == 0.25f,
           "SATURATE 20: values 20 and 21 flagged, weight kept; 19 not");
        is_int(img->weight_is_relative, 0, "variance gives true weights");
    }
    sk_image_free(img);

    sk_read_opts orr = {.noise_path = rp, .noise_kind = SK_NOISE_RMS, .saturate_key = "NOSUCHKEY"};
    ok(sk_fits_read_image(sp, &orr, &img) == SK_OK, "read with an rms file");
    if (img) {
        is_near(img->weight[0], 4.0, 0, "rms 0.5 -> weight 4");
        is_near(img->weight[8], 1.0 / 9.0, 1e-7, "rms 3 -> weight 1/9");
        ok(img->weight[5] == 0, "rms 0 -> weight 0");
        ok(img->flags[20] == 0, "saturation keyword named: absent, nothing flagged");
    }
    sk_image_free(img);

    /* Negative variance is bad input. */
    var[11] = -1.0f;
    write_plane(vp, NULL, w, h, var, NULL);
    is_int(sk_fits_read_image(sp, &ov, &img), SK_EINPUT, "negative variance refused");
    ok(contains(sk_errmsg(), "var.fits") && contains(sk_errmsg(), "negative"), "message: %s", sk_errmsg());

    /* Noise and DQ planes as extensions of the science file. */
    const char *mef = tmp_path("mef.fits");
    int32_t dq[24] = {0};
    dq[4] = 512;
    var[11] = 4.0f;
    sk_fits_writer *wr;
    sk_fits_writer_open(mef, 0, &wr);
    sk_fits_writer_add_image(wr, "IMG", -32, w, h, sci, NULL);
    sk_fits_writer_add_image(wr, "ERR", -32, w, h, rms, NULL);
    sk_fits_writer_add_image(wr, "DQ", 32, w, h, dq, NULL);
    ok(sk_fits_writer_commit(wr) == SK_OK, "write an IMG/ERR/DQ file");
    sk_read_opts oe = {.hdu = "IMG", .noise_hdu = "ERR", .noise_kind = SK_NOISE_RMS, .mask_hdu = "DQ"};
    ok(sk_fits_read_image(mef, &oe, &img) == SK_OK, "read with in-file ERR and DQ (%s)", sk_errmsg());
    if (img) {
        ok(img->weight[0] == 4.0f && img->flags[0] == 0, "ERR converted");
        ok(img->weight[4] == 0 && img->flags[4] == SK_FLAG_BAD, "DQ 512 -> BAD, weight 0");
    }
    sk_image_free(img);

    /* sk_image_sanitize counts what it changed. */
    img = sk_image_new(3, 1);
    img->sci[1] = NAN;
    img->weight[2] = INFINITY;
    is_int(sk_image_sanitize(img), 2, "sanitize reports 2 pixels");
    sk_image_free(img);
}

/* Planes stored plainly are read by chunks of rows on
 * several threads, each through its own cfitsio handle (fits_plain.c): the pixels must be what cfitsio gives,
 * special float values included, and the image what a tile-compressed
 * copy (read by cfitsio) gives, whatever the thread count. */
static void test_plain_read(void)
{
    const long w = 512, h = 300;
    const size_t n = (size_t)w * (size_t)h;
    float *sci = malloc(n * sizeof *sci), *wgt = malloc(n * sizeof *wgt);
    uint16_t *flg = malloc(n * sizeof *flg);
    const float special[] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-40f, -1e-42f, FLT_MAX, -FLT_MAX,
                             FLT_MIN, 1.0f, -3.5f};
    const int nsp = (int)(sizeof special / sizeof *special);
    for (size_t i = 0; i < n; i++) {
        sci[i] = i % 97 < (size_t)nsp ? special[i % 97] : (float)(100.0 * uniform() - 10.0);
        wgt[i] = i % 89 < (size_t)nsp ? special[i % 89] : (float)uniform();
        flg[i] = i % 13 == 0 ? (uint16_t)(uniform() * 65535.0) : i % 7 == 0 ? 0x8000 : 0;
    }
    sk_header *hdr = sk_header_new();
    sk_header_set_double(hdr, "SATURATE", 85.0, NULL);
    const char *plain = tmp_path("plain.fits"), *packed = tmp_path("plain_fz.fits");
    for (int c = 0; c < 2; c++) {
        if (c) /* cfitsio reads plain zeros and denormals as +0, compressed ones as they are */
            for (size_t i = 0; i < n; i++) {
                sci[i] = fpclassify(sci[i]) == FP_SUBNORMAL || sci[i] == 0 ? 0.0f : sci[i];
                wgt[i] = fpclassify(wgt[i]) == FP_SUBNORMAL || wgt[i] == 0 ? 0.0f : wgt[i];
            }
        sk_fits_writer *wr;
        sk_fits_writer_open(c ? packed : plain, c, &wr);
        sk_fits_writer_add_image(wr, "SCI", -32, w, h, sci, hdr);
        sk_fits_writer_add_image(wr, "WGT", -32, w, h, wgt, NULL);
        sk_fits_writer_add_image(wr, "FLG", 16, w, h, flg, NULL);
        ok(sk_fits_writer_commit(wr) == SK_OK, "write the %s SCI/WGT/FLG file", c ? "compressed" : "plain");
    }
    sk_header_free(hdr);

    /* pixel by pixel against fits_read_img */
    fitsfile *f = NULL;
    int status = 0, anynul = 0, done = 0;
    float nanf = NAN, *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    uint16_t *ua = malloc(n * sizeof *ua), *ub = malloc(n * sizeof *ub), zero16 = 0;
    fits_open_diskfile(&f, plain, READONLY, &status);
    const char *planes[] = {"SCI", "WGT"};
    for (int k = 0; k < 2; k++) {
        fits_movnam_hdu(f, IMAGE_HDU, (char *)planes[k], 0, &status);
        fits_read_img(f, TFLOAT, 1, (LONGLONG)n, &nanf, a, &anynul, &status);
        ok(sk_fits_plain_read(f, plain, 2, -32, n, b, &done) == SK_OK && done, "%s read plainly", planes[k]);
        ok(status == 0 && !memcmp(a, b, n * sizeof *a), "%s: every bit as cfitsio reads it", planes[k]);
    }
    fits_movnam_hdu(f, IMAGE_HDU, "FLG", 0, &status);
    fits_read_img(f, TUSHORT, 1, (LONGLONG)n, &zero16, ua, &anynul, &status);
    ok(sk_fits_plain_read(f, plain, 2, 16, n, ub, &done) == SK_OK && done, "FLG read plainly");
    ok(status == 0 && !memcmp(ua, ub, n * sizeof *ua), "FLG: every value as cfitsio reads it");
    ok(sk_fits_plain_read(f, plain, 2, -32, n, b, &done) == SK_OK && !done, "FLG is not a float plane");
    fits_close_file(f, &status);
    free(a), free(b), free(ua), free(ub);

    /* whole images: plain on 1 and 3 threads against the compressed copy */
    sk_image *ref = NULL, *img = NULL;
    ok(sk_fits_read_image(packed, NULL, &ref) == SK_OK, "read the compressed copy");
    for (int t = 1; t <= 3 && ref; t += 2) {
        sk_read_opts o = {.threads = t};
        ok(sk_fits_read_image(plain, &o, &img) == SK_OK, "read the plain file on %d threads", t);
        ok(img && !memcmp(img->sci, ref->sci, n * sizeof *sci) && !memcmp(img->weight, ref->weight, n * sizeof *wgt) &&
               !memcmp(img->flags, ref->flags, n * sizeof *flg),
           "%d threads: science, weights and flags as from the compressed copy", t);
        sk_image_free(img);
        img = NULL;
    }
    sk_image_free(ref);
    free(sci), free(wgt), free(flg);
}

static void test_bad_input(void)
{
    sk_image *img = NULL;
    /* Not FITS. */
    const char *txt = tmp_path("notfits.fits");
    FILE *f = fopen(txt, "w");
    fprintf(f, "this is not a FITS file, it is plain text\n");
    fclose(f);
    is_int(sk_fits_read_image(txt, NULL, &img), SK_EINPUT, "not-FITS refused");
    ok(contains(sk_errmsg(), "notfits.fits") && contains(sk_errmsg(), "not a FITS"), "message: %s", sk_errmsg());
    ok(img == NULL, "no image returned");
    /* Missing file. */
    is_int(sk_fits_read_image(tmp_path("absent.fits"), NULL, &img), SK_EINPUT, "missing file refused");
    ok(contains(sk_errmsg(), "absent.fits"), "message: %s", sk_errmsg());
    /* Missing HDU. */
    sk_read_opts o = {.hdu = "N99"};
    is_int(sk_fits_read_image(tap_src(D6_PATH_OOI), &o, &img), SK_EINPUT, "missing HDU refused");
    ok(contains(sk_errmsg(), "c4d_181104_072440_ooi_g_ls9.S4.fits") && contains(sk_errmsg(), "N99"),
       "message names file and HDU: %s", sk_errmsg());
    sk_read_opts o9 = {.hdu = "9"};
    is_int(sk_fits_read_image(tap_src(D6_PATH_OOI), &o9, &img), SK_EINPUT, "HDU number out of range");
    sk_read_opts o0 = {.hdu = "0"};
    is_int(sk_fits_read_image(tap_src(D6_PATH_OOI), &o0, &img), SK_EINPUT, "empty primary is not an image");
    ok(contains(sk_errmsg(), "not a 2-D image"), "message: %s", sk_errmsg());

    /* Truncated: a valid file cut inside its data, and inside its header. */
    sk_image *big = sk_image_new(64, 64);
    for (long i = 0; i < 64 * 64; i++)
        big->weight[i] = 1;
    const char *tr = tmp_path("trunc.fits");
    sk_fits_write_image(tr, big, NULL);
    sk_image_free(big);
    ok(truncate(tr, 2880 * 3 + 1000) == 0, "truncate inside SCI data");
    is_int(sk_fits_read_image(tr, NULL, &img), SK_EINPUT, "truncated file refused");
    ok(contains(sk_errmsg(), "trunc.fits") && contains(sk_errmsg(), "truncated"), "message: %s", sk_errmsg());
    ok(img == NULL, "no image from a truncated file");
    ok(truncate(tr, 1500) == 0, "truncate inside the primary header");
    is_int(sk_fits_read_image(tr, NULL, &img), SK_EINPUT, "file cut in its header refused");
    ok(contains(sk_errmsg(), "trunc.fits"), "message: %s", sk_errmsg());
    /* Garbage after a valid primary header card. */
    f = fopen(tr, "w");
    fprintf(f, "%-80s", "SIMPLE  =                    T");
    for (int i = 0; i < 35; i++)
        fprintf(f, "%-80s", "GARBAGE !!! not a card");
    fclose(f);
    is_int(sk_fits_read_image(tr, NULL, &img), SK_EINPUT, "corrupt header refused");
    const char *empty = tmp_path("empty.fits");
    f = fopen(empty, "w");
    fclose(f);
    is_int(sk_fits_read_image(empty, NULL, &img), SK_EINPUT, "empty file refused");
    ok(contains(sk_errmsg(), "empty.fits"), "message: %s", sk_errmsg());
    is_int(sk_fits_read_image(tap_tmpdir(), NULL, &img), SK_EINPUT, "a directory refused");
}

static void test_atomic_failures(void)
{
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/atomic", tap_tmpdir());
    mkdir(dir, 0777);
    sk_image *img = sk_image_new(8, 8);
    char path[4400];

    /* Nonexistent directory. */
    snprintf(path, sizeof path, "%s/no/such/dir/x.fits", dir);
    int rc = sk_fits_write_image(path, img, NULL);
    ok(rc != SK_OK, "write into a missing directory fails (%d)", rc);
    ok(contains(sk_errmsg(), "x.fits"), "message names the file: %s", sk_errmsg());
    /* Parent is a regular file. */
    char blocker[4400];
    snprintf(blocker, sizeof blocker, "%s/blocker", dir);
    FILE *f = fopen(blocker, "w");
    fclose(f);
    snprintf(path, sizeof path, "%s/blocker/x.fits", dir);
    ok(sk_fits_write_image(path, img, NULL) != SK_OK, "write below a regular file fails");
    unlink(blocker);
    is_int(dir_entries(dir), 0, "nothing left behind");

    /* An aborted writer leaves nothing; a failed write leaves the old file. */
    snprintf(path, sizeof path, "%s/keep.fits", dir);
    img->sci[0] = 42;
    ok(sk_fits_write_image(path, img, NULL) == SK_OK, "first version written");
    sk_fits_writer *w;
    ok(sk_fits_writer_open(path, 0, &w) == SK_OK, "second writer open");
    is_int(dir_entries(dir), 2, "a temporary exists while writing");
    float px[4] = {1, 2, 3, 4};
    sk_fits_writer_add_image(w, "SCI", -32, 2, 2, px, NULL);
    ok(sk_fits_writer_add_image(w, "X", 99, 2, 2, px, NULL) == SK_EINPUT, "bad plane refused mid-write");
    sk_fits_writer_abort(w);
    is_int(dir_entries(dir), 1, "abort removed the temporary");
    sk_image *back = NULL;
    ok(sk_fits_read_image(path, NULL, &back) == SK_OK && back->width == 8 && back->sci[0] == 42,
       "the previous file is intact");
    sk_image_free(back);
    /* A table with an inconsistent TDIM fails and leaves the old file. */
    sk_table *t = sk_table_new("T", 2);
    sk_column *c = sk_table_add_column(t, "V", SK_COL_FLOAT, 6, NULL);
    c->ndims = 2;
    c->dims[0] = 4;
    c->dims[1] = 4;
    ok(sk_fits_write_table(path, t) == SK_EINPUT, "TDIM inconsistent with repeat refused");
    sk_table_free(t);
    is_int(dir_entries(dir), 1, "failed table write left no temporary");
    ok(sk_fits_read_image(path, NULL, &back) == SK_OK && back->sci[0] == 42, "old file still intact");
    sk_image_free(back);
    /* "!" prefix: overwrite, as cfitsio users write it. */
    char bang[4500];
    snprintf(bang, sizeof bang, "!%s", path);
    img->sci[0] = 7;
    ok(sk_fits_write_image(bang, img, NULL) == SK_OK, "\"!path\" overwrites");
    ok(sk_fits_read_image(path, NULL, &back) == SK_OK && back->sci[0] == 7, "new content in place");
    sk_image_free(back);
    is_int(dir_entries(dir), 1, "one file, no temporaries");
    sk_image_free(img);
}

int main(void)
{
    tap_plan(198);
    test_round_trip();
    test_writer_planes();
    test_decam();
    test_m13();
    test_nonfinite_and_noise();
    test_plain_read();
    test_bad_input();
    test_atomic_failures();
    return tap_done();
}
