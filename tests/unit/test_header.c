/* test_header.c: header cards, typed keyword access, long strings, HIERARCH, INHERIT merge and flag names. */
#include <stdio.h>
#include "skystack/skystack.h"
#include "../tap.h"

/* One 80-column card from text. */
static void card(char *dst, const char *text)
{
    snprintf(dst, 81, "%-80s", text);
}

int main(void)
{
    tap_plan(107);
    sk_header *h = sk_header_new();
    ok(h != NULL, "new header");

    /* Records as cfitsio's fits_hdr2str lays them out, END dropped. */
    char recs[7 * 80 + 1];
    card(recs + 0, "SIMPLE  =                    T / conforms");
    card(recs + 80, "EXPTIME =                 90.0 / exposure time [s]");
    card(recs + 160, "FILTER  = 'g DECam SDSS c0001 4720.0 1520.0' / filter");
    card(recs + 240, "NIGHT   =             20141010");
    card(recs + 320, "PHOTFLAG=                    T");
    card(recs + 400, "HIERARCH ESO DET CHIP NAME = 'CCD 2' / chip");
    card(recs + 480, "END");
    ok(sk_header_append_records(h, recs, 7) == SK_OK, "append records");
    is_int(h->ncards, 6, "END is dropped");
    is_int(sk_header_find(h, "exptime"), 1, "find is case-insensitive");
    is_int(sk_header_find(h, "NOPE"), -1, "absent keyword");

    double d = 0;
    is_int(sk_header_get_double(h, "EXPTIME", &d), 1, "EXPTIME parses as double");
    is_near(d, 90.0, 0, "EXPTIME value");
    long l = 0;
    is_int(sk_header_get_long(h, "NIGHT", &l), 1, "NIGHT parses as long");
    is_int(l, 20141010, "NIGHT value");
    is_int(sk_header_get_long(h, "FILTER", &l), -1, "a string is not a long");
    char s[100];
    is_int(sk_header_get_str(h, "FILTER", s, sizeof s), 1, "FILTER as string");
    is_str(s, "g DECam SDSS c0001 4720.0 1520.0", "FILTER value without quotes");
    is_int(sk_header_get_str(h, "FILTER", s, 5), -1, "too small a buffer is refused");
    int b = 0;
    is_int(sk_header_get_bool(h, "PHOTFLAG", &b), 1, "logical");
    is_int(b, 1, "PHOTFLAG = T");
    is_int(sk_header_get_bool(h, "EXPTIME", &b), -1, "a number is not a logical");
    is_int(sk_header_get_double(h, "PHOTFLAG", &d), -1, "a logical is not a number");
    is_int(sk_header_get_double(h, "MISSING", &d), 0, "absent returns 0");
    is_int(sk_header_get_str(h, "ESO DET CHIP NAME", s, sizeof s), 1, "HIERARCH keyword found");
    is_str(s, "CCD 2", "HIERARCH value");
    is_int(sk_header_get_str(h, "HIERARCH ESO DET CHIP NAME", s, sizeof s), 1,
           "HIERARCH keyword found with its prefix");

    /* Setters replace in place and keep order. */
    ok(sk_header_set_double(h, "EXPTIME", 45.5, "changed") == SK_OK, "set existing double");
    is_int(sk_header_find(h, "EXPTIME"), 1, "replaced in place");
    is_int(h->ncards, 6, "no card added by a replacement");
    sk_header_get_double(h, "EXPTIME", &d);
    is_near(d, 45.5, 0, "new value read back");
    ok(sk_header_set_double(h, "CRVAL1", 0.1, NULL) == SK_OK, "set new double");
    sk_header_get_double(h, "CRVAL1", &d);
    ok(d == 0.1, "0.1 round-trips exactly through the card");
    ok(sk_header_set_double(h, "PI", 3.141592653589793, NULL) == SK_OK, "set pi");
    sk_header_get_double(h, "PI", &d);
    ok(d == 3.141592653589793, "pi round-trips exactly");
    ok(sk_header_set_double(h, "TINY", -1.2345678901234567e-300, NULL) == SK_OK, "set tiny");
    sk_header_get_double(h, "TINY", &d);
    ok(d == -1.2345678901234567e-300, "tiny round-trips exactly");
    ok(sk_header_set_double(h, "BADVAL", NAN, NULL) == SK_EINPUT, "NaN refused");
    ok(sk_header_set_long(h, "NCOMBINE", -123456789012L, "n") == SK_OK, "set long");
    sk_header_get_long(h, "NCOMBINE", &l);
    is_int(l, -123456789012L, "long round-trips");
    ok(sk_header_set_bool(h, "FLAT", 0, NULL) == SK_OK, "set bool");
    b = 1;
    sk_header_get_bool(h, "FLAT", &b);
    is_int(b, 0, "bool round-trips");
    ok(sk_header_set_str(h, "OBJECT", "it's M13", "with a quote") == SK_OK, "set string with quote");
    sk_header_get_str(h, "OBJECT", s, sizeof s);
    is_str(s, "it's M13", "quote survives");
    int i = sk_header_find(h, "OBJECT");
    ok(i >= 0 && strncmp(h->cards[i], "OBJECT  = 'it''s M13'", 21) == 0, "card is FITS-formatted: %.40s",
       i >= 0 ? h->cards[i] : "");
    ok(strlen(h->cards[i]) == 80, "cards are 80 characters");
    double frac = 0;
    sk_header_set_double(h, "FRAC", 2.5, NULL);
    is_int(sk_header_get_long(h, "FRAC", &l), -1, "a fraction is not a long");
    (void)frac;

    /* Long strings: CONTINUE convention, read back whole. */
    char longval[301];
    for (int k = 0; k < 300; k++)
        longval[k] = (char)('a' + k % 26);
    longval[300] = '\0';
    longval[65] = '\'';
    int before = h->ncards;
    ok(sk_header_set_str(h, "LONGSTR", longval, "long") == SK_OK, "set 300-character string");
    ok(h->ncards > before + 1, "long string spans CONTINUE cards (%d)", h->ncards - before);
    char got[400];
    is_int(sk_header_get_str(h, "LONGSTR", got, sizeof got), 1, "long string read");
    is_str(got, longval, "long string read back whole");
    ok(sk_header_set_str(h, "LONGSTR", "short", NULL) == SK_OK, "replace long by short");
    is_int(h->ncards, before + 1, "its CONTINUE cards went with it");
    for (int k = 0; k < h->ncards; k++)
        ok(strlen(h->cards[k]) == 80, "card %d is 80 characters", k);

    /* HIERARCH setter. */
    ok(sk_header_set_str(h, "ESO INS FILT1 NAME", "R#642", NULL) == SK_OK, "set HIERARCH");
    sk_header_get_str(h, "ESO INS FILT1 NAME", s, sizeof s);
    is_str(s, "R#642", "HIERARCH round trip");
    i = sk_header_find(h, "ESO INS FILT1 NAME");
    ok(i >= 0 && strncmp(h->cards[i], "HIERARCH ESO INS FILT1 NAME", 27) == 0, "written with HIERARCH");
    ok(sk_header_set_str(h, "BAD=KEY", "x", NULL) == SK_EINPUT, "keyword with = refused");
    ok(sk_header_set_long(h, "gain", 4, NULL) == SK_OK, "lower-case keyword set");
    i = sk_header_find(h, "GAIN");
    ok(i >= 0 && strncmp(h->cards[i], "GAIN    =", 9) == 0, "written upper case");

    /* Comments, delete. */
    ok(sk_header_add_comment(h, "HISTORY", "made by a test") == SK_OK, "history");
    ok(sk_header_add_comment(h, "HISTORY", "second") == SK_OK, "history 2");
    ok(sk_header_add_comment(h, "EXPTIME", "x") == SK_EINPUT, "comment keyword checked");
    is_int(sk_header_delete(h, "HISTORY"), 2, "delete removes every HISTORY card");
    is_int(sk_header_delete(h, "HISTORY"), 0, "nothing left to delete");

    /* Records round trip. */
    int n = 0;
    char *all = sk_header_records(h, &n);
    ok(all && n == h->ncards && strlen(all) == (size_t)n * 80, "records buffer");
    sk_header *h2 = sk_header_new();
    sk_header_append_records(h2, all, n);
    free(all);
    ok(h2->ncards == h->ncards && memcmp(h2->cards, h->cards, (size_t)n * 81) == 0,
       "records round trip");
    sk_header *h3 = sk_header_copy(h2);
    ok(h3 && h3->ncards == h2->ncards && memcmp(h3->cards, h2->cards, (size_t)n * 81) == 0,
       "copy equals");
    sk_header_free(h2);
    sk_header_free(h3);

    /* Structural keywords. */
    ok(sk_header_is_structural("NAXIS2") && sk_header_is_structural("BZERO") &&
           sk_header_is_structural("TTYPE12") && sk_header_is_structural("ZCMPTYPE") &&
           sk_header_is_structural("ZTILE1") && sk_header_is_structural("EXTNAME") &&
           sk_header_is_structural("INHERIT"),
       "structural keywords recognised");
    ok(!sk_header_is_structural("NAXISX") && !sk_header_is_structural("EXPTIME") &&
           !sk_header_is_structural("ZD") && !sk_header_is_structural("CRPIX1") &&
           !sk_header_is_structural("TELESCOP"),
       "non-structural keywords recognised");

    /* INHERIT: the primary's keywords under the extension's, extension wins. */
    sk_header *prim = sk_header_new(), *ext = sk_header_new();
    sk_header_set_bool(prim, "SIMPLE", 1, NULL);
    sk_header_set_long(prim, "NAXIS", 0, NULL);
    sk_header_set_str(prim, "FILTER", "g", NULL);
    sk_header_set_double(prim, "MJD-OBS", 56940.2, NULL);
    sk_header_set_double(prim, "SATURATE", 1000, NULL);
    sk_header_add_comment(prim, "COMMENT", "primary note");
    sk_header_set_str(ext, "XTENSION", "IMAGE", NULL);
    sk_header_set_long(ext, "NAXIS", 2, NULL);
    sk_header_set_double(ext, "SATURATE", 45000, NULL);
    sk_header_set_bool(ext, "INHERIT", 1, NULL);
    ok(sk_header_inherit(ext, prim) == SK_OK, "inherit");
    sk_header_get_double(ext, "SATURATE", &d);
    is_near(d, 45000, 0, "extension keyword wins");
    sk_header_get_str(ext, "FILTER", s, sizeof s);
    is_str(s, "g", "primary keyword inherited");
    ok(sk_header_find(ext, "SIMPLE") < 0, "structural primary keyword not inherited");
    sk_header_get_long(ext, "NAXIS", &l);
    is_int(l, 2, "extension NAXIS kept");
    ok(sk_header_find(ext, "COMMENT") >= 0, "primary comment carried");
    int ncards = ext->ncards;
    sk_header_inherit(ext, prim);
    is_int(ext->ncards, ncards, "inherit twice adds nothing");
    sk_header_free(prim);
    sk_header_free(ext);

    /* Flag names and FLAGBITn cards. */
    is_str(sk_flag_name(0), "BAD", "bit 0");
    is_str(sk_flag_name(1), "SATURATED", "bit 1");
    is_str(sk_flag_name(6), "NONFINITE", "bit 6");
    ok(sk_flag_name(SK_FLAG_NBITS) == NULL && sk_flag_name(-1) == NULL, "out of range");
    ok((1u << 6) == SK_FLAG_NONFINITE && (1u << 8) == SK_FLAG_ZEROWEIGHT, "bit numbers match the enum");
    sk_header *fh = sk_header_new();
    ok(sk_flag_describe(fh) == SK_OK, "describe flags");
    is_int(fh->ncards, SK_FLAG_NBITS, "one card per bit");
    sk_header_get_str(fh, "FLAGBIT1", s, sizeof s);
    is_str(s, "SATURATED", "FLAGBIT1");
    sk_header_free(fh);

    /* Malformed cards do not crash the getters. */
    sk_header *m = sk_header_new();
    char bad[4 * 80 + 1];
    card(bad, "BROKEN  = 'unterminated");
    card(bad + 80, "NOVAL   =");
    card(bad + 160, "HIERARCH = nothing");
    card(bad + 240, "CONTINUE  'orphan'");
    sk_header_append_records(m, bad, 4);
    /* cfitsio reads an unterminated string up to column 80; so do we. */
    is_int(sk_header_get_str(m, "BROKEN", s, sizeof s), 1, "unterminated string read leniently");
    is_str(s, "unterminated", "as cfitsio reads it");
    is_int(sk_header_get_double(m, "NOVAL", &d), -1, "undefined value is malformed");
    sk_header_get_str(m, "HIERARCH", s, sizeof s);
    ok(sk_header_find(m, "CONTINUE") == -1, "orphan CONTINUE is not a keyword");
    i = sk_header_find(m, "BROKEN");
    ok(i >= 0 && m->cards[i][79] == '\'', "an open string is closed at column 80");
    /* An open string followed by quoted cards: wcslib must not run on. */
    char wcsrec[5 * 80 + 1];
    card(wcsrec, "CUNIT1  = 'deg                / Axis unit");
    card(wcsrec + 80, "CUNIT2  = 'deg     '           / Axis unit");
    card(wcsrec + 160, "CTYPE1  = 'RA---TAN'");
    card(wcsrec + 240, "CTYPE2  = 'DEC--TAN'");
    card(wcsrec + 320, "ODDQ    = 'it''s''");
    sk_header *wh = sk_header_new();
    sk_header_append_records(wh, wcsrec, 5);
    ok(wh->cards[0][79] == '\'' && wh->cards[1][79] == ' ', "only the open string was closed");
    is_int(sk_header_get_str(wh, "ODDQ", s, sizeof s), 1, "open string ending in an escaped quote");
    is_str(s, "it's'", "its value as cfitsio reads it");
    sk_wcs *w = NULL;
    sk_wcs_from_header(wh, &w); /* crashed inside wcslib before the cards were closed */
    sk_wcs_free(w);
    sk_error_clear();
    sk_header_free(wh);
    sk_header_free(m);

    /* Image basics. */
    sk_image *img = sk_image_new(4, 3);
    ok(img && img->width == 4 && img->height == 3 && img->sci[11] == 0 && img->weight[0] == 0,
       "zero-filled image");
    for (int k = 0; k < 12; k++)
        img->weight[k] = 1;
    img->sci[2] = NAN;
    img->sci[5] = INFINITY;
    img->weight[7] = -1;
    img->weight[8] = NAN;
    is_int(sk_image_sanitize(img), 4, "four pixels sanitized");
    ok(img->sci[2] == 0 && img->weight[2] == 0 && (img->flags[2] & SK_FLAG_NONFINITE) &&
           (img->flags[2] & SK_FLAG_BAD),
       "NaN pixel zeroed, flagged, weight 0");
    ok(img->sci[5] == 0 && img->weight[5] == 0 && img->flags[5] == (SK_FLAG_NONFINITE | SK_FLAG_BAD),
       "Inf pixel zeroed, flagged, weight 0");
    ok(img->weight[7] == 0 && img->weight[8] == 0 && img->flags[7] == 0, "bad weights zeroed");
    ok(img->weight[0] == 1 && img->flags[0] == 0, "good pixel untouched");
    sk_image_free(img);
    ok(sk_image_new(0, 5) == NULL && sk_errstatus() == SK_EINPUT, "zero size refused");

    sk_header_free(h);
    return tap_done();
}
