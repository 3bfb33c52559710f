/* test_wcs.c: WCS parsing (TAN, TPV, SIP, DSS), pixel<->sky against astropy fixtures, round trips, footprints, pixel scale, writing back, errors and threads. */
#include <fitsio.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/header.h"
#include "skystack/wcs.h"
#include "../tap.h"

#define DECAM_N12 "tests/data/real/decam-legacysurvey/testcase3/c4d_140818_232043_ooi_z_ls9.N12.fits"
#define DECAM_S4 "tests/data/real/decam-legacysurvey/testcase6/c4d_150110_053718_ooi_z_ls9.S4.fits"
#define HORSEHEAD "tests/data/real/dss/HorseHead.fits.gz"
#define M13 "tests/data/real/m13-orion/M13_blue_0001.fits.gz"

/* Header of HDU `hdu` (0-based) read with cfitsio, merged with the primary
 * header when it says INHERIT = T. */
static sk_header *fits_header(const char *rel, int hdu)
{
    fitsfile *f = NULL;
    int status = 0, n = 0, inherit = 0;
    char *recs = NULL;
    sk_header *h = sk_header_new();
    fits_open_file(&f, tap_src(rel), READONLY, &status);
    fits_movabs_hdu(f, hdu + 1, NULL, &status);
    fits_hdr2str(f, 0, NULL, 0, &recs, &n, &status);
    if (status) {
        fits_report_error(stderr, status);
        exit(2);
    }
    sk_header_append_records(h, recs, n);
    fits_free_memory(recs, &status);
    if (hdu > 0 && sk_header_get_bool(h, "INHERIT", &inherit) == 1 && inherit) {
        sk_header *primary = sk_header_new();
        fits_movabs_hdu(f, 1, NULL, &status);
        fits_hdr2str(f, 0, NULL, 0, &recs, &n, &status);
        sk_header_append_records(primary, recs, n);
        fits_free_memory(recs, &status);
        sk_header_inherit(h, primary);
        sk_header_free(primary);
    }
    fits_close_file(f, &status);
    return h;
}

/* A header written one card per line (tests/data/wcs/<name>.hdr). */
static sk_header *text_header(const char *name)
{
    char rel[256], line[256];
    snprintf(rel, sizeof rel, "tests/data/wcs/%s.hdr", name);
    FILE *f = fopen(tap_src(rel), "r");
    if (!f) {
        perror(rel);
        exit(2);
    }
    sk_header *h = sk_header_new();
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char card[81];
        memset(card, ' ', 80);
        card[80] = '\0';
        memcpy(card, line, strnlen(line, 80));
        sk_header_append_records(h, card, 1);
    }
    fclose(f);
    return h;
}

typedef struct {
    const char *name; /* fixture name */
    sk_header *hdr;
    sk_wcs *wcs;
    long width, height;
} wcs_case;

/* Angular separation in milliarcseconds. */
static double sep_mas(double ra1, double dec1, double ra2, double dec2)
{
    double d2r = M_PI / 180.0;
    double sdd = sin((dec2 - dec1) * d2r / 2), sda = sin((ra2 - ra1) * d2r / 2);
    double a = sdd * sdd + cos(dec1 * d2r) * cos(dec2 * d2r) * sda * sda;
    return 2 * asin(sqrt(a)) / d2r * 3600e3;
}

/* pix2sky over the astropy points of <name>.pix2sky.csv: worst separation (mas). */
static double worst_vs_astropy(const wcs_case *c, int *npoints)
{
    char rel[256], line[512];
    snprintf(rel, sizeof rel, "tests/data/wcs/%s.pix2sky.csv", c->name);
    FILE *f = fopen(tap_src(rel), "r");
    if (!f) {
        perror(rel);
        exit(2);
    }
    double worst = 0;
    *npoints = 0;
    while (fgets(line, sizeof line, f)) {
        double x, y, ra, dec, gra, gdec;
        if (line[0] == '#' || sscanf(line, "%lf %lf %lf %lf", &x, &y, &ra, &dec) != 4)
            continue;
        if (sk_wcs_pix2sky(c->wcs, 1, &x, &y, &gra, &gdec) != SK_OK)
            return INFINITY;
        double s = sep_mas(ra, dec, gra, gdec);
        worst = s > worst ? s : worst;
        ++*npoints;
    }
    fclose(f);
    return worst;
}

/* pixel -> sky -> pixel on an n x n grid spanning the outer pixel edges. */
static double worst_round_trip(const sk_wcs *w, long width, long height, int n)
{
    long np = (long)n * n;
    double *x = malloc(np * sizeof *x), *y = malloc(np * sizeof *y);
    double *ra = malloc(np * sizeof *ra), *dec = malloc(np * sizeof *dec);
    double *x2 = malloc(np * sizeof *x2), *y2 = malloc(np * sizeof *y2);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            x[(long)j * n + i] = -0.5 + width * (double)i / (n - 1);
            y[(long)j * n + i] = -0.5 + height * (double)j / (n - 1);
        }
    double worst = INFINITY;
    if (sk_wcs_pix2sky(w, np, x, y, ra, dec) == SK_OK &&
        sk_wcs_sky2pix(w, np, ra, dec, x2, y2) == SK_OK) {
        worst = 0;
        for (long k = 0; k < np; k++) {
            double e = hypot(x2[k] - x[k], y2[k] - y[k]);
            worst = e > worst || isnan(e) ? e : worst;
        }
    }
    free(x);
    free(y);
    free(ra);
    free(dec);
    free(x2);
    free(y2);
    return worst;
}

/* Sky of `a` mapped through `b` back to pixels: the worst pixel offset
 * between two WCS of the same image on a grid. */
static double worst_between(const sk_wcs *a, const sk_wcs *b, long width, long height)
{
    const int n = 25;
    double worst = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            double x = -0.5 + width * (double)i / (n - 1), y = -0.5 + height * (double)j / (n - 1);
            double ra, dec, x2, y2;
            if (sk_wcs_pix2sky(a, 1, &x, &y, &ra, &dec) != SK_OK ||
                sk_wcs_sky2pix(b, 1, &ra, &dec, &x2, &y2) != SK_OK)
                return INFINITY;
            double e = hypot(x2 - x, y2 - y);
            worst = e > worst || isnan(e) ? e : worst;
        }
    return worst;
}

static int count_key(const sk_header *h, const char *key)
{
    int n = 0;
    size_t len = strlen(key);
    for (int i = 0; i < h->ncards; i++)
        if (strncmp(h->cards[i], key, len) == 0 && (h->cards[i][len] == ' ' || h->cards[i][len] == '='))
            n++;
    return n;
}

static void test_footprints(wcs_case *cases, int ncases)
{
    char line[1024];
    FILE *f = fopen(tap_src("tests/data/wcs/footprints.csv"), "r");
    if (!f) {
        perror("footprints.csv");
        exit(2);
    }
    while (fgets(line, sizeof line, f)) {
        char name[64];
        long w, h;
        double v[14];
        int pole;
        if (line[0] == '#' ||
            sscanf(line,
                   "%63s %ld %ld %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %d", name,
                   &w, &h, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
                   &v[10], &v[11], &v[12], &v[13], &pole) != 18)
            continue;
        const wcs_case *c = NULL;
        for (int i = 0; i < ncases; i++)
            if (strcmp(cases[i].name, name) == 0)
                c = &cases[i];
        if (!c)
            continue;
        sk_footprint fp;
        is_int(sk_wcs_footprint(c->wcs, w, h, &fp), SK_OK, "%s: footprint", name);
        double worst = sep_mas(fp.ra_deg, fp.dec_deg, v[0], v[1]);
        for (int k = 0; k < 4; k++) {
            double s = sep_mas(fp.corner_ra_deg[k], fp.corner_dec_deg[k], v[2 + 2 * k], v[3 + 2 * k]);
            worst = s > worst ? s : worst;
        }
        ok(worst < 0.01, "%s: centre and four corners within 0.01 mas of astropy (worst %.2g mas)",
           name, worst);
        is_int(fp.contains_pole, pole, "%s: contains_pole", name);
        /* Bounding box: astropy sampled each edge at 20000 points. */
        is_near(fp.minra_deg, v[10], 2e-11, "%s: minra", name);
        is_near(fp.maxra_deg, v[11], 2e-11, "%s: maxra", name);
        is_near(fp.mindec_deg, v[12], 2e-11, "%s: mindec", name);
        is_near(fp.maxdec_deg, v[13], 2e-11, "%s: maxdec", name);

        if (strcmp(name, "tan-ra0") == 0) {
            ok(fp.maxra_deg < fp.minra_deg, "tan-ra0 straddles RA=0: maxra %.6f < minra %.6f",
               fp.maxra_deg, fp.minra_deg);
            ok(fp.minra_deg > 359.9 && fp.maxra_deg < 0.2, "tan-ra0: RA range around 0");
            ok(fp.maxdec_deg > fmax(fp.corner_dec_deg[2], fp.corner_dec_deg[3]) + 1e-5,
               "tan-ra0: the top edge bulging north of its corners is inside the box");
        }
        if (strcmp(name, "tan-pole") == 0) {
            ok(fp.contains_pole == 1 && fp.minra_deg == 0 && fp.maxra_deg == 360 &&
                   fp.maxdec_deg == 90,
               "tan-pole: north pole inside, RA 0..360, maxdec 90");
            ok(fp.mindec_deg > 89.8 && fp.mindec_deg < 89.83, "tan-pole: mindec %.6f",
               fp.mindec_deg);
        }
        if (strcmp(name, "tan-rot45") == 0) {
            /* 300x200 px of 0.5" rotated 45 deg: the corners are at
             * (+-150, +-100) px from the reference point, turned by 45 deg
             * (CD matrix), then deprojected from the tangent plane. */
            const double d2r = M_PI / 180, s = 0.5 / 3600 * d2r, c45 = cos(M_PI / 4);
            const double ra0 = 120 * d2r, dec0 = -30 * d2r;
            const double dx[4] = {-150, 150, 150, -150}, dy[4] = {-100, -100, 100, 100};
            double worst_mas = 0;
            for (int k = 0; k < 4; k++) {
                double xi = -s * c45 * dx[k] + s * c45 * dy[k]; /* CD1_1 x + CD1_2 y */
                double eta = s * c45 * dx[k] + s * c45 * dy[k]; /* CD2_1 x + CD2_2 y */
                double den = cos(dec0) - eta * sin(dec0);
                double ra = (ra0 + atan2(xi, den)) / d2r;
                double dec = atan2(sin(dec0) + eta * cos(dec0), hypot(xi, den)) / d2r;
                worst_mas = fmax(worst_mas, sep_mas(ra, dec, fp.corner_ra_deg[k], fp.corner_dec_deg[k]));
            }
            ok(worst_mas < 0.01, "tan-rot45: corners where the rotation puts them (%.2g mas)",
               worst_mas);
            ok(fp.corner_dec_deg[2] > fp.corner_dec_deg[0] && fp.corner_ra_deg[1] < fp.corner_ra_deg[3],
               "tan-rot45: corner order (-.5,-.5) (w-.5,-.5) (w-.5,h-.5) (-.5,h-.5)");
        }
    }
    fclose(f);
}

static void test_scales(wcs_case *cases, int ncases)
{
    char line[512];
    FILE *f = fopen(tap_src("tests/data/wcs/scales.csv"), "r");
    if (!f) {
        perror("scales.csv");
        exit(2);
    }
    double worst = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64];
        double x, y, area, scale;
        if (line[0] == '#' || sscanf(line, "%63s %lf %lf %lf %lf", name, &x, &y, &area, &scale) != 5)
            continue;
        for (int i = 0; i < ncases; i++)
            if (strcmp(cases[i].name, name) == 0) {
                double a = sk_wcs_pixel_area_arcsec2(cases[i].wcs, x, y);
                double s = sk_wcs_pixel_scale_arcsec(cases[i].wcs, x, y);
                double e = fmax(fabs(a / area - 1), fabs(s / scale - 1));
                worst = e > worst || isnan(e) ? e : worst;
                n++;
            }
    }
    fclose(f);
    ok(n >= 15 && worst < 1e-6,
       "pixel area and scale at %d positions match the spherical pixel quads (worst relative %.2g)",
       n, worst);
    double decam = sk_wcs_pixel_scale_arcsec(cases[0].wcs, 20, 25);
    is_near(decam, 0.263278, 2e-6, "DECam N12 pixel scale %.6f arcsec", decam);
    ok(decam > 0.26 && decam < 0.267, "DECam pixel scale is about 0.263 arcsec");
}

/* Write the WCS back into a copy of its header, read it again. */
static void test_to_header(const wcs_case *c)
{
    sk_header *h = sk_header_copy(c->hdr);
    int ndate = count_key(h, "DATE-OBS");
    is_int(sk_wcs_to_header(c->wcs, h), SK_OK, "%s: to_header", c->name);
    is_int(count_key(h, "CTYPE1"), 1, "%s: one CTYPE1 after writing", c->name);
    is_int(count_key(h, "CRVAL2"), 1, "%s: one CRVAL2 after writing", c->name);
    is_int(count_key(h, "DATE-OBS"), ndate, "%s: DATE-OBS left as it was", c->name);
    sk_wcs *again = NULL;
    is_int(sk_wcs_from_header(h, &again), SK_OK, "%s: the written header parses", c->name);
    if (again) {
        double e = worst_between(c->wcs, again, c->width, c->height);
        ok(e < 1e-6, "%s: written WCS gives the same transformation (worst %.2g px)", c->name, e);
    } else {
        ok(0, "%s: written WCS gives the same transformation", c->name);
    }
    if (strcmp(c->name, "decam-n12") == 0) {
        char s[80];
        ok(sk_header_get_str(h, "CTYPE1", s, sizeof s) == 1 && strcmp(s, "RA---TPV") == 0,
           "decam-n12: TPV written as TPV");
        ok(count_key(h, "PV1_7") == 1 && count_key(h, "PV2_10") == 1, "decam-n12: PV terms written");
        ok(count_key(h, "WAT1_001") == 0 && count_key(h, "WCSDIM") == 0,
           "decam-n12: IRAF WAT cards removed");
        ok(count_key(h, "LTV1") == 1 && count_key(h, "FILTER") == 1 && count_key(h, "GAINA") == 1,
           "decam-n12: other cards kept");
    }
    if (strcmp(c->name, "sip-2048x4096") == 0) {
        char s[80];
        ok(sk_header_get_str(h, "CTYPE2", s, sizeof s) == 1 && strcmp(s, "DEC--TAN-SIP") == 0,
           "sip: SIP written as SIP");
        is_int(count_key(h, "A_0_3"), 1, "sip: A_0_3 written once");
        is_int(count_key(h, "NAXIS1"), 1, "sip: NAXIS1 kept");
    }
    if (strcmp(c->name, "horsehead") == 0) {
        ok(count_key(h, "AMDX1") == 0 && count_key(h, "PLTRAH") == 0,
           "horsehead: DSS plate-solution cards replaced");
    }
    sk_wcs_free(again);
    sk_header_free(h);
}

static void test_errors(void)
{
    sk_wcs *w = NULL;
    sk_header *h = fits_header(M13, 0);
    is_int(sk_wcs_from_header(h, &w), SK_EINPUT, "M13 (no WCS): SK_EINPUT");
    ok(w == NULL, "M13: no sk_wcs returned");
    ok(strstr(sk_errmsg(), "no WCS") && strstr(sk_errmsg(), "CTYPE"),
       "M13: message says what is missing: %s", sk_errmsg());
    sk_header_free(h);

    h = sk_header_new();
    sk_header_set_str(h, "CTYPE1", "LINEAR", NULL);
    sk_header_set_str(h, "CTYPE2", "LINEAR", NULL);
    sk_header_set_double(h, "CDELT1", 1.0, NULL);
    sk_header_set_double(h, "CDELT2", 1.0, NULL);
    is_int(sk_wcs_from_header(h, &w), SK_EINPUT, "linear axes only: SK_EINPUT");
    ok(strstr(sk_errmsg(), "no celestial WCS") && strstr(sk_errmsg(), "LINEAR"),
       "linear axes: message names the CTYPEs: %s", sk_errmsg());
    sk_header_free(h);

    h = text_header("tan-rot45");
    sk_header_set_double(h, "CD1_1", 0.0, NULL);
    sk_header_set_double(h, "CD1_2", 0.0, NULL);
    is_int(sk_wcs_from_header(h, &w), SK_EINPUT, "singular CD matrix: SK_EINPUT");
    ok(strstr(sk_errmsg(), "singular") != NULL, "singular matrix: %s", sk_errmsg());
    sk_header_free(h);
}

/* Non-standard but common: AIPS NCP projection with CROTA2 and upper-case
 * units. wcslib's fixes make it the SIN projection it stands for. */
static void test_nonstandard(void)
{
    const double dec0 = 60.0;
    sk_header *ncp = sk_header_new(), *sin_ = sk_header_new();
    sk_header *both[2] = {ncp, sin_};
    for (int k = 0; k < 2; k++) {
        sk_header *h = both[k];
        sk_header_set_long(h, "NAXIS", 2, NULL);
        sk_header_set_long(h, "NAXIS1", 300, NULL);
        sk_header_set_long(h, "NAXIS2", 300, NULL);
        sk_header_set_str(h, "CTYPE1", k ? "RA---SIN" : "RA---NCP", NULL);
        sk_header_set_str(h, "CTYPE2", k ? "DEC--SIN" : "DEC--NCP", NULL);
        sk_header_set_str(h, "CUNIT1", k ? "deg" : "DEG", NULL);
        sk_header_set_str(h, "CUNIT2", k ? "deg" : "DEG", NULL);
        sk_header_set_double(h, "CRPIX1", 150.5, NULL);
        sk_header_set_double(h, "CRPIX2", 150.5, NULL);
        sk_header_set_double(h, "CRVAL1", 201.0, NULL);
        sk_header_set_double(h, "CRVAL2", dec0, NULL);
        sk_header_set_double(h, "CDELT1", -0.01, NULL);
        sk_header_set_double(h, "CDELT2", 0.01, NULL);
        sk_header_set_double(h, "CROTA2", 12.0, NULL);
        if (k) {
            sk_header_set_double(h, "PV2_1", 0.0, NULL);
            sk_header_set_double(h, "PV2_2", 1.0 / tan(dec0 * M_PI / 180), NULL);
        }
    }
    sk_wcs *a = NULL, *b = NULL;
    is_int(sk_wcs_from_header(ncp, &a), SK_OK, "AIPS NCP with CROTA2 and unit 'DEG' parses");
    is_int(sk_wcs_from_header(sin_, &b), SK_OK, "its SIN equivalent parses");
    if (a && b) {
        double e = worst_between(a, b, 300, 300);
        ok(e < 1e-9, "NCP is SIN with PV2_2 = cot(dec0) (worst %.2g px)", e);
    }
    sk_wcs_free(a);
    sk_wcs_free(b);
    sk_header_free(ncp);
    sk_header_free(sin_);
}

/* A linear primary description and the celestial one as alternate 'A':
 * the celestial one is used, and written back as the primary. */
static void test_alternate(const sk_wcs *rot45)
{
    sk_header *h = text_header("tan-rot45");
    static const char *const keys[] = {"CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1",
                                       "CRVAL2", "CD1_1",  "CD1_2",  "CD2_1",  "CD2_2"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        int at = sk_header_find(h, keys[i]);
        char alt[16];
        snprintf(alt, sizeof alt, "%sA", keys[i]);
        memcpy(h->cards[at], alt, strlen(alt)); /* the keywords are at most 6 characters */
    }
    sk_header_set_str(h, "CTYPE1", "LINEAR", NULL);
    sk_header_set_str(h, "CTYPE2", "LINEAR", NULL);
    sk_header_set_double(h, "CDELT1", 1.0, NULL);
    sk_header_set_double(h, "CDELT2", 1.0, NULL);
    sk_wcs *w = NULL, *again = NULL;
    is_int(sk_wcs_from_header(h, &w), SK_OK, "celestial WCS found as alternate A");
    if (w) {
        ok(worst_between(w, rot45, 300, 200) < 1e-9, "alternate A is the celestial one");
        is_int(sk_wcs_to_header(w, h), SK_OK, "written back");
        ok(count_key(h, "CTYPE1A") == 0 && count_key(h, "CTYPE1") == 1,
           "as the primary description, the alternates removed");
        is_int(sk_wcs_from_header(h, &again), SK_OK, "and read again");
        if (again)
            ok(worst_between(again, rot45, 300, 200) < 1e-9, "with the same transformation");
    }
    sk_wcs_free(w);
    sk_wcs_free(again);
    sk_header_free(h);
}

static void test_invalid_points(const sk_wcs *tan)
{
    double x[3] = {10, NAN, 20}, y[3] = {10, 5, INFINITY}, ra[3], dec[3];
    is_int(sk_wcs_pix2sky(tan, 3, x, y, ra, dec), SK_EINPUT, "non-finite pixels: SK_EINPUT");
    ok(isfinite(ra[0]) && isfinite(dec[0]) && isnan(ra[1]) && isnan(dec[1]) && isnan(ra[2]),
       "non-finite pixels give NaN, the others are transformed");
    /* The antipode of a TAN tangent point has no pixel. */
    double sra[3] = {120.0, 300.0, 120.001}, sdec[3] = {-30.0, 30.0, -30.0}, px[3], py[3];
    is_int(sk_wcs_sky2pix(tan, 3, sra, sdec, px, py), SK_EINPUT, "point behind a TAN: SK_EINPUT");
    ok(isfinite(px[0]) && isnan(px[1]) && isnan(py[1]) && isfinite(px[2]),
       "the point behind the projection gets NaN, the others not");
    is_near(px[0], 149.5, 1e-9, "the tangent point is the reference pixel (0-based x)");
    is_near(py[0], 99.5, 1e-9, "the tangent point is the reference pixel (0-based y)");
}

typedef struct {
    const sk_wcs *wcs;
    long n;
    const double *x, *y;
    double *ra, *dec, *x2, *y2;
} thread_job;

static void *thread_run(void *arg)
{
    thread_job *j = arg;
    for (int rep = 0; rep < 5; rep++) {
        sk_wcs_pix2sky(j->wcs, j->n, j->x, j->y, j->ra, j->dec);
        sk_wcs_sky2pix(j->wcs, j->n, j->ra, j->dec, j->x2, j->y2);
    }
    return NULL;
}

/* Several threads on one sk_wcs give exactly the single-thread answers. */
static void test_threads(const sk_wcs *w, long width, long height)
{
    enum { NT = 4, N = 4000 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    double *ra = malloc(N * sizeof *ra), *dec = malloc(N * sizeof *dec);
    for (long k = 0; k < N; k++) {
        x[k] = fmod(k * 37.31, width);
        y[k] = fmod(k * 91.7, height);
    }
    sk_wcs_pix2sky(w, N, x, y, ra, dec);
    thread_job jobs[NT];
    pthread_t tid[NT];
    for (int t = 0; t < NT; t++) {
        jobs[t] = (thread_job){w, N, x, y, malloc(N * sizeof(double)), malloc(N * sizeof(double)),
                               malloc(N * sizeof(double)), malloc(N * sizeof(double))};
        pthread_create(&tid[t], NULL, thread_run, &jobs[t]);
    }
    int same = 1;
    double worst = 0;
    for (int t = 0; t < NT; t++) {
        pthread_join(tid[t], NULL);
        for (long k = 0; k < N; k++) {
            same &= jobs[t].ra[k] == ra[k] && jobs[t].dec[k] == dec[k];
            worst = fmax(worst, hypot(jobs[t].x2[k] - x[k], jobs[t].y2[k] - y[k]));
        }
        free(jobs[t].ra);
        free(jobs[t].dec);
        free(jobs[t].x2);
        free(jobs[t].y2);
    }
    ok(same, "%d threads on one sk_wcs: pix2sky identical to one thread", NT);
    ok(worst < 1e-6, "%d threads on one sk_wcs: round trips below 1e-6 px (%.2g)", NT, worst);
    free(x);
    free(y);
    free(ra);
    free(dec);
}

int main(void)
{
    tap_plan(150);
    wcs_case cases[] = {
        {"decam-n12", fits_header(DECAM_N12, 1), NULL, 0, 0},
        {"decam-s4", fits_header(DECAM_S4, 1), NULL, 0, 0},
        {"horsehead", fits_header(HORSEHEAD, 0), NULL, 0, 0},
        {"sip-2048x4096", text_header("sip-2048x4096"), NULL, 0, 0},
        {"tan-ra0", text_header("tan-ra0"), NULL, 0, 0},
        {"tan-pole", text_header("tan-pole"), NULL, 0, 0},
        {"tan-rot45", text_header("tan-rot45"), NULL, 0, 0},
    };
    const int ncases = (int)(sizeof cases / sizeof *cases);
    for (int i = 0; i < ncases; i++) {
        wcs_case *c = &cases[i];
        sk_header_get_long(c->hdr, "NAXIS1", &c->width);
        sk_header_get_long(c->hdr, "NAXIS2", &c->height);
        int rc = sk_wcs_from_header(c->hdr, &c->wcs);
        if (!ok(rc == SK_OK && c->wcs, "%s: WCS parsed", c->name)) {
            tap_diag("%s", sk_errmsg());
            return tap_done();
        }
    }

    /* Against astropy (all_pix2world, origin 0) to 1 mas. */
    for (int i = 0; i < ncases; i++) {
        int n = 0;
        double worst = worst_vs_astropy(&cases[i], &n);
        ok(n >= 49 && worst < 1.0, "%s: pixel->sky matches astropy at %d points to 1 mas (worst %.3g mas)",
           cases[i].name, n, worst);
    }

    /* Round trips over the whole image, distortions included. */
    for (int i = 0; i < ncases; i++) {
        double e = worst_round_trip(cases[i].wcs, cases[i].width, cases[i].height, 65);
        ok(e < 1e-6, "%s: pixel->sky->pixel below 1e-6 px on a 65x65 grid (worst %.2g px)",
           cases[i].name, e);
    }
    /* The SIP's worst distortion is a few pixels: a real test of its inversion. */
    {
        const sk_wcs *sip = cases[3].wcs;
        double x = -0.5, y = -0.5, ra, dec, lin_x, lin_y;
        sk_header *lin = text_header("sip-2048x4096");
        sk_header_set_str(lin, "CTYPE1", "RA---TAN", NULL);
        sk_header_set_str(lin, "CTYPE2", "DEC--TAN", NULL);
        for (int i = 0; i < lin->ncards;) { /* the SIP terms, or they would still apply */
            char key[9];
            memcpy(key, lin->cards[i], 8);
            key[8] = '\0';
            key[strcspn(key, " ")] = '\0';
            if (strncmp(key, "A_", 2) == 0 || strncmp(key, "B_", 2) == 0 ||
                strncmp(key, "AP_", 3) == 0 || strncmp(key, "BP_", 3) == 0)
                sk_header_delete(lin, key);
            else
                i++;
        }
        sk_wcs *tan = NULL;
        sk_wcs_from_header(lin, &tan);
        sk_wcs_pix2sky(sip, 1, &x, &y, &ra, &dec);
        sk_wcs_sky2pix(tan, 1, &ra, &dec, &lin_x, &lin_y);
        double d = hypot(lin_x - x, lin_y - y);
        ok(d > 1.0 && d < 10.0, "sip: the distortion at a corner is a few pixels (%.2f px)", d);
        sk_wcs_free(tan);
        sk_header_free(lin);
    }

    test_footprints(cases, ncases);
    {
        /* The same field mirrored to the south pole. */
        sk_header *south = text_header("tan-pole");
        sk_header_set_double(south, "CRVAL2", -89.95, NULL);
        sk_wcs *w = NULL;
        sk_footprint fp;
        sk_wcs_from_header(south, &w);
        ok(w && sk_wcs_footprint(w, 200, 200, &fp) == SK_OK && fp.contains_pole == -1 &&
               fp.mindec_deg == -90 && fp.minra_deg == 0 && fp.maxra_deg == 360,
           "south pole: contains_pole -1, mindec -90, RA 0..360");
        if (w)
            is_near(fp.maxdec_deg, -89.819722724885, 1e-8, "south pole: maxdec mirrors the north one");
        sk_wcs_free(w);
        sk_header_free(south);
    }
    test_scales(cases, ncases);
    for (int i = 0; i < ncases; i++)
        if (strcmp(cases[i].name, "decam-s4") != 0 && strcmp(cases[i].name, "tan-pole") != 0)
            test_to_header(&cases[i]);
    {
        /* Into a header that had no WCS at all. */
        sk_header *blank = sk_header_new();
        sk_wcs *again = NULL;
        is_int(sk_wcs_to_header(cases[0].wcs, blank), SK_OK, "to_header into an empty header");
        is_int(sk_wcs_from_header(blank, &again), SK_OK, "and it parses");
        if (again)
            ok(worst_between(cases[0].wcs, again, 41, 51) < 1e-6, "with the same transformation");
        sk_wcs_free(again);
        sk_header_free(blank);
    }

    sk_wcs *copy = sk_wcs_copy(cases[3].wcs);
    ok(copy && worst_between(cases[3].wcs, copy, 2048, 4096) < 1e-9, "sk_wcs_copy transforms the same");
    ok(sk_wcs_wcsprm(copy) != NULL && sk_wcs_wcsprm(copy) != sk_wcs_wcsprm(cases[3].wcs),
       "the copy owns its wcsprm");
    sk_wcs_free(copy);

    test_errors();
    test_nonstandard();
    test_alternate(cases[6].wcs);
    test_invalid_points(cases[6].wcs);
    test_threads(cases[3].wcs, 2048, 4096);

    for (int i = 0; i < ncases; i++) {
        sk_wcs_free(cases[i].wcs);
        sk_header_free(cases[i].hdr);
    }
    return tap_done();
}
