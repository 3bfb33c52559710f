/* test_fuzz_parsers.c: the parsers of external input fed mutated copies of
 * valid inputs (bad input is refused, skystack(7) EXIT STATUS): FITS images and headers with their WCS,
 * FITS tables and reference catalogs, PSFEx models, provenance sidecars,
 * configuration files and .head cards. Each mutation flips bits, writes
 * random bytes or a hostile token (huge or negative NAXIS, TFORM, CONTINUE,
 * unterminated quotes, deep JSON nesting...) on a card or at a random
 * place, duplicates or cuts the data. Every parser must return a status
 * (0, or 1-3 with a message); under make check-sanitize any memory error
 * ends the test. Deterministic (fixed seed); SK_FUZZ_ROUNDS=n runs n
 * mutations per parser instead of 150. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "../tap.h"
#include "coadd_fixture.h"
#include "skystack/skystack.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

/* Under AddressSanitizer (make check-sanitize): a damaged header can make
 * cfitsio ask for an absurd allocation while it walks the HDUs; it handles
 * a NULL answer (a memory-allocation error, reported), which is what the
 * C library gives outside the sanitizer too. */
const char *__asan_default_options(void) __attribute__((used));
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

typedef struct seed {
    unsigned char *data;
    size_t len;
} seed;

static int load(const char *path, seed *s)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s->data = malloc((size_t)n + 1);
    s->len = s->data ? fread(s->data, 1, (size_t)n, f) : 0;
    fclose(f);
    return !s->data || s->len != (size_t)n;
}

static int save(const char *path, const unsigned char *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    size_t w = fwrite(d, 1, n, f);
    return fclose(f) != 0 || w != n;
}

static const char *const fits_tokens[] = {
    "NAXIS1  =           2147483647", "NAXIS2  =                   -1",
    "BITPIX  =                  -13", "NAXIS   =                  999",
    "TFIELDS =                 9999", "TFORM1  = '99999999E'",
    "TFORM2  = 'PE(5) '", "TDIM1   = '(3,4,5,6,7,8,9)'",
    "CONTINUE  '", "CONTINUE  '&'", "EXTNAME = 'unterminated",
    "CTYPE1  = 'RA---ZPN-SIP'", "PV2_99  =                 1E308",
    "A_ORDER =                   99", "CD1_1   =                  NaN",
    "CRPIX1  = 1E400", "INHERIT =                    T", "END",
    "XTENSION= 'BINTABLE'", "ZIMAGE  =                    T",
    "ZBITPIX =                   64", "ZCMPTYPE= 'NOPE    '", "HIERARCH ESO A = '",
    "THEAP   =          -2147483647", "PCOUNT  =           9999999999"};

static const char *const text_tokens[] = {
    "\"", "{", "}", "[", "]", ":", ",", "\\u0000", "\\ud800", "1e999", "-0",
    "null", "true", "\"provenance\": []", "\"upstreams\": [{}]", "\"code_version\": 7",
    "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":[[[[[[[[[[", "'", "=", "END",
    "CTYPE1  = 'RA---TAN'", "CONTINUE  '&'", "\n", "\r\n"};

/* One mutated copy of s: 1 to 4 edits, biased to the first `hot` bytes
 * (the headers), and for FITS input tokens written on card boundaries. */
static size_t mutate(sk_rng *r, const seed *s, unsigned char *out, size_t cap, size_t hot,
                     int fits)
{
    size_t n = s->len;
    memcpy(out, s->data, n);
    int edits = 1 + (int)(sk_rng_uniform(r) * 4.0);
    for (int e = 0; e < edits && n > 0; e++) {
        size_t lim = sk_rng_uniform(r) < 0.8 && hot < n ? hot : n;
        size_t at = (size_t)(sk_rng_uniform(r) * (double)lim);
        if (at >= n)
            at = n - 1;
        double kind = sk_rng_uniform(r);
        if (kind < 0.3) {
            out[at] ^= (unsigned char)(1u << (int)(sk_rng_uniform(r) * 8.0));
        } else if (kind < 0.45) {
            out[at] = (unsigned char)(sk_rng_uniform(r) * 256.0);
        } else if (kind < 0.8) {
            const char *tok;
            if (fits) {
                tok = fits_tokens[(size_t)(sk_rng_uniform(r) * (double)(sizeof fits_tokens /
                                                                         sizeof fits_tokens[0]))];
                at -= at % 80;
            } else {
                tok = text_tokens[(size_t)(sk_rng_uniform(r) * (double)(sizeof text_tokens /
                                                                         sizeof text_tokens[0]))];
            }
            size_t tl = strlen(tok);
            if (fits && at + 80 <= n) {
                memset(out + at, ' ', 80);
                memcpy(out + at, tok, tl < 80 ? tl : 80);
            } else if (!fits && n + tl < cap) {
                memmove(out + at + tl, out + at, n - at);
                memcpy(out + at, tok, tl);
                n += tl;
            }
        } else if (kind < 0.9) {
            n = at; /* truncated */
        } else {
            size_t len = (size_t)(sk_rng_uniform(r) * 200.0);
            if (at + len > n)
                len = n - at;
            if (n + len < cap) { /* a chunk repeated */
                memmove(out + at + len, out + at, n - at);
                n += len;
            }
        }
    }
    return n;
}

typedef int (*parse_fn)(const char *path, const unsigned char *data, size_t len);

/* Standard output of the parsers goes to a file (a library must not write
 * there: it is the programs' product channel). */
static int out_fd = -1;
static const char *out_path;

static int parse_quietly(parse_fn fn, const char *path, const unsigned char *d, size_t n)
{
    fflush(stdout);
    int saved = dup(1);
    dup2(out_fd, 1);
    int rc = fn(path, d, n);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    return rc;
}

static int parse_image(const char *path, const unsigned char *d, size_t n)
{
    (void)d; (void)n;
    sk_image *img = NULL;
    int rc = sk_fits_read_image(path, NULL, &img);
    if (!rc && img && img->wcs) {
        double x = 3.0, y = 4.0, ra, dec, xi, yi;
        if (sk_wcs_pix2sky(img->wcs, 1, &x, &y, &ra, &dec) == SK_OK)
            sk_wcs_sky2pix(img->wcs, 1, &ra, &dec, &xi, &yi);
        sk_error_clear();
    }
    sk_image_free(img);
    return rc;
}

static int parse_header(const char *path, const unsigned char *d, size_t n)
{
    (void)d; (void)n;
    sk_header *h = NULL;
    int rc = sk_fits_read_header(path, NULL, &h);
    if (!rc) {
        sk_wcs *w = NULL;
        if (sk_wcs_from_header(h, &w) == SK_OK) {
            sk_footprint fp;
            sk_wcs_footprint(w, 24, 20, &fp);
        }
        sk_error_clear();
        sk_wcs_free(w);
    }
    sk_header_free(h);
    return rc;
}

static int parse_table(const char *path, const unsigned char *d, size_t n)
{
    (void)d; (void)n;
    sk_table *t = NULL;
    int rc = sk_fits_read_table(path, NULL, &t);
    sk_table_free(t);
    sk_refcat *c = NULL;
    int rc2 = sk_refcat_read(path, "ra", "dec", "mag", "mag_err", &c);
    sk_refcat_free(c);
    return rc ? rc : rc2;
}

static int parse_psf(const char *path, const unsigned char *d, size_t n)
{
    (void)d; (void)n;
    sk_psf *p = NULL;
    int rc = sk_psf_read(path, &p);
    if (!rc) {
        double st[121];
        sk_psf_image(p, 10.0, 10.0, 11, st);
        sk_error_clear();
    }
    sk_psf_free(p);
    return rc;
}

static const char *product_of_sidecar;

static int parse_sidecar(const char *path, const unsigned char *d, size_t n)
{
    (void)path; (void)d; (void)n;
    sk_prov *p = NULL;
    char type[64], md5[33];
    int rc = sk_sidecar_read(product_of_sidecar, &p, type, sizeof type, md5, NULL);
    sk_prov_free(p);
    return rc;
}

static int parse_config(const char *path, const unsigned char *d, size_t n)
{
    (void)d; (void)n;
    sk_config *c = NULL;
    int rc = sk_config_load(path, NULL, 0, &c);
    sk_config_free(c);
    return rc;
}

static int parse_head(const char *path, const unsigned char *d, size_t n)
{
    (void)path;
    char *text = malloc(n + 1);
    memcpy(text, d, n);
    text[n] = '\0';
    sk_header *h = NULL;
    int rc = sk_header_from_text(text, &h);
    if (!rc) {
        sk_wcs *w = NULL;
        sk_wcs_from_header(h, &w);
        sk_error_clear();
        sk_wcs_free(w);
    }
    sk_header_free(h);
    free(text);
    return rc;
}

static void fuzz(const char *label, const char *seed_path, const char *work_path, parse_fn fn,
                 int fits, size_t hot, int rounds, unsigned long stream)
{
    seed s;
    if (load(seed_path, &s)) {
        ok(0, "%s: seed %s", label, seed_path);
        return;
    }
    /* the seed itself parses */
    save(work_path, s.data, s.len);
    is_int(fn(work_path, s.data, s.len), 0, "%s: the valid input parses (%s)", label,
           sk_errmsg());
    size_t cap = 2 * s.len + 4096;
    unsigned char *buf = malloc(cap);
    sk_rng r;
    sk_rng_init(&r, 2026, stream, 0);
    int accepted = 0, refused = 0, bad_status = 0, silent = 0;
    for (int i = 0; i < rounds; i++) {
        size_t n = mutate(&r, &s, buf, cap, hot, fits);
        save(work_path, buf, n);
        sk_error_clear();
        int rc = parse_quietly(fn, work_path, buf, n);
        if (rc == 0) {
            accepted++;
        } else {
            refused++;
            if (rc < 0 || rc > 3)
                bad_status++;
            if (!sk_errmsg()[0])
                silent++;
        }
        sk_error_clear();
    }
    tap_diag("%s: %d mutations, %d accepted, %d refused", label, rounds, accepted, refused);
    ok(bad_status == 0, "%s: every refusal has a documented status (%d not)", label, bad_status);
    ok(silent == 0, "%s: every refusal says why (%d silent)", label, silent);
    free(buf);
    free(s.data);
}

int main(void)
{
    tap_plan(26);
    sk_log_set_level(SK_LOG_QUIET);
    int rounds = 150;
    if (getenv("SK_FUZZ_ROUNDS"))
        rounds = atoi(getenv("SK_FUZZ_ROUNDS"));
    const char *dir = tap_tmpdir();
    char seedp[4300], work[4300], prod[4200], outp[4300];
    snprintf(outp, sizeof outp, "%s/stdout", dir);
    out_path = outp;
    out_fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    /* what earlier rounds found, kept as regressions: a SIP coefficient
     * beyond its order (wcslib leaked on it), a WCS keyword without a value
     * (wcslib's scanner printed newlines on standard output) */
    {
        const char *base = "CTYPE1  = 'RA---TAN-SIP'\nCTYPE2  = 'DEC--TAN-SIP'\n"
                           "CRVAL1  = 150.0\nCRVAL2  = 2.0\nCRPIX1  = 10.0\nCRPIX2  = 10.0\n"
                           "CD1_1   = -7.2E-05\nCD2_2   = 7.2E-05\nA_ORDER = 3\nB_ORDER = 3\n";
        char text[1024];
        snprintf(text, sizeof text, "%sB_2_8   = -8.0E-06\nEND\n", base);
        sk_header *hh = NULL;
        sk_wcs *ww = NULL;
        sk_header_from_text(text, &hh);
        is_int(sk_wcs_from_header(hh, &ww), SK_EINPUT, "a SIP coefficient beyond its order: refused");
        ok(strstr(sk_errmsg(), "B_2_8") != NULL, "naming it (%s)", sk_errmsg());
        sk_header_free(hh);
        sk_wcs_free(ww);
        ww = NULL;
        snprintf(text, sizeof text, "%sLONPOLE =\nEND\n", base);
        sk_header_from_text(text, &hh);
        fflush(stdout);
        int saved = dup(1);
        int devnull = open(outp, O_WRONLY | O_TRUNC);
        dup2(devnull, 1);
        int rc = sk_wcs_from_header(hh, &ww);
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
        close(devnull);
        struct stat so0;
        stat(outp, &so0);
        is_int(rc, 0, "a WCS keyword without a value: the rest parses");
        ok(so0.st_size == 0, "and nothing is written on standard output (%ld bytes)",
           (long)so0.st_size);
        sk_header_free(hh);
        sk_wcs_free(ww);
        sk_error_clear();
    }

    /* a small image with a TAN-SIP WCS, PV cards, a long string */
    snprintf(seedp, sizeof seedp, "%s/seed-image.fits", dir);
    sk_image *img = sk_image_new(24, 20);
    for (long i = 0; i < 24 * 20; i++) {
        img->sci[i] = (float)i;
        img->weight[i] = 1.0f;
    }
    fx_wcs w = {150.0, 2.0, 12.5, 10.5, 0.26, 8.0, 2e-5};
    sk_header_free(img->header);
    img->header = fx_header(&w);
    sk_header_set_double(img->header, "PV2_1", 0.5, NULL);
    sk_header_set_str(img->header, "OBJECT",
                      "a long object name that needs the CONTINUE convention to fit in the "
                      "header of the file, and then some more words", NULL);
    sk_fits_write_image(seedp, img, NULL);
    sk_image_free(img);
    snprintf(work, sizeof work, "%s/fuzz-image.fits", dir);
    fuzz("FITS image", seedp, work, parse_image, 1, 8640, rounds, 1);
    fuzz("FITS header and WCS", seedp, work, parse_header, 1, 8640, rounds, 2);

    /* a reference catalog table */
    snprintf(seedp, sizeof seedp, "%s/seed-refcat.fits", dir);
    sk_table *t = sk_table_new("REFCAT", 12);
    sk_table_add_column(t, "ra", SK_COL_DOUBLE, 1, "deg");
    sk_table_add_column(t, "dec", SK_COL_DOUBLE, 1, "deg");
    sk_table_add_column(t, "mag", SK_COL_FLOAT, 1, "mag");
    sk_table_add_column(t, "mag_err", SK_COL_FLOAT, 1, "mag");
    sk_table_add_column(t, "name", SK_COL_STRING, 12, NULL);
    for (long k = 0; k < 12; k++) {
        sk_column_set(sk_table_column(t, "ra"), k, 0, 150.0 + 0.001 * k);
        sk_column_set(sk_table_column(t, "dec"), k, 0, 2.0 - 0.001 * k);
        sk_column_set(sk_table_column(t, "mag"), k, 0, 17.0 + 0.1 * k);
        sk_column_set(sk_table_column(t, "mag_err"), k, 0, 0.01);
        sk_column_set_str(sk_table_column(t, "name"), k, "star");
    }
    sk_fits_write_table(seedp, t);
    sk_table_free(t);
    snprintf(work, sizeof work, "%s/fuzz-refcat.fits", dir);
    fuzz("FITS table and catalog", seedp, work, parse_table, 1, 8640, rounds, 3);

    /* a PSFEx model */
    snprintf(seedp, sizeof seedp, "%s/seed.psf", dir);
    double st[15 * 15];
    for (int j = 0; j < 15; j++)
        for (int i = 0; i < 15; i++)
            st[j * 15 + i] = exp(-((i - 7) * (i - 7) + (j - 7) * (j - 7)) / 6.0);
    sk_psf *p = NULL;
    sk_psf_from_stamp(st, 15, 100, 100, &p);
    sk_psf_write(seedp, p);
    sk_psf_free(p);
    snprintf(work, sizeof work, "%s/fuzz.psf", dir);
    fuzz("PSFEx model", seedp, work, parse_psf, 1, 8640, rounds, 4);

    /* a provenance sidecar (with an upstream) */
    snprintf(prod, sizeof prod, "%s/product.dat", dir);
    save(prod, (const unsigned char *)"data", 4);
    json_t *par = json_pack("{s:s, s:f, s:[i,i]}", "method", "clipped", "sigma", 3.0, "k", 1, 2);
    sk_prov *up = NULL, *pr = NULL;
    sk_prov_new("preprocessing", "1.0.0", NULL, &up);
    sk_prov_new("coaddition", "1.1.0", par, &pr);
    sk_prov_add_upstream(pr, up);
    sk_input_file in = {"7", prod, NULL, "image"};
    sk_sidecar_write(prod, "coadd", pr, &in, 1);
    json_decref(par);
    sk_prov_free(up);
    sk_prov_free(pr);
    snprintf(seedp, sizeof seedp, "%s.json", prod);
    product_of_sidecar = prod;
    {
        /* the sidecar is mutated in place: keep the original aside */
        char orig[4400];
        snprintf(orig, sizeof orig, "%s/seed-sidecar.json", dir);
        seed s;
        load(seedp, &s);
        save(orig, s.data, s.len);
        free(s.data);
        fuzz("provenance sidecar", orig, seedp, parse_sidecar, 0, 4096, rounds, 5);
    }

    /* a configuration file */
    snprintf(seedp, sizeof seedp, "%s/seed-config.json", dir);
    const char *conf = "{\"extraction\": {\"detection\": {\"threshold_sigma\": 4.5}, "
                       "\"astrometry\": {\"refcat\": \"gaia.fits\"}}, "
                       "\"coaddition\": {\"method\": \"clipped\", \"kernel\": \"lanczos3\"}, "
                       "\"preprocessing\": {\"instruments\": {\"cam\": {\"gain\": \"GAINA\"}}}}\n";
    save(seedp, (const unsigned char *)conf, strlen(conf));
    snprintf(work, sizeof work, "%s/fuzz-config.json", dir);
    fuzz("configuration file", seedp, work, parse_config, 0, 4096, rounds, 6);

    /* .head cards */
    snprintf(seedp, sizeof seedp, "%s/seed.head", dir);
    sk_header *hh = fx_header(&w);
    FILE *f = fopen(seedp, "w");
    for (int i = 0; i < hh->ncards; i++)
        fprintf(f, "%.80s\n", hh->cards[i]);
    fprintf(f, "END\n");
    fclose(f);
    sk_header_free(hh);
    snprintf(work, sizeof work, "%s/fuzz.head", dir);
    fuzz(".head cards", seedp, work, parse_head, 0, 4096, rounds, 7);
    close(out_fd);
    struct stat so;
    memset(&so, 0, sizeof so);
    int sr = stat(out_path, &so);
    if (sr)
        tap_diag("stat %s: %s", out_path, strerror(errno));
    ok(sr == 0 && so.st_size == 0,
       "no parser wrote to standard output (%ld bytes)", (long)so.st_size);
    return tap_done();
}
