/* chi2-completeness.c: completeness of source lists against imsim truth
 * of several bands of one field, at a combined-band point-source SNR. Each
 * truth star's SNR in band b is 5 x 10^(-0.4 (m_b - LIMMAG_b)), m_b its
 * true magnitude in the band, LIMMAG_b the 5-sigma point-source limit the
 * band's coadd extraction measured; the combined SNR is their quadrature
 * sum. Stars blended in any band's truth, or within MARGIN px of the grid's
 * edge, are left out. A star is found when a source of the list lies within
 * 1 arcsec. Also counts the sources of each list that match no truth source
 * (of any type, at any SNR) within 1 arcsec. With CHI2_MISSES set in the
 * environment, each star the first list misses is listed.
 *
 * Usage: chi2-completeness GRID.fits MIN_SNR
 *          --band TRUTH.fits SOURCES.fits  (one per band)
 *          --list NAME SOURCES.fits        (one per list to score) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"

#define MAXB 8
#define MAXL 16
#define MARGIN_PX 10.0
#define MATCH_ARCSEC 1.0

typedef struct {
    long id;
    double ra, dec, snr2;
    int bands, blended, star;
} star;

typedef struct {
    const char *name;
    sk_table *t;
    sk_column *ra, *dec;
} srclist;

static int cmp_id(const void *a, const void *b)
{
    long x = ((const star *)a)->id, y = ((const star *)b)->id;
    return (x > y) - (x < y);
}

static double sep_arcsec(double ra1, double de1, double ra2, double de2)
{
    double dra = fmod(ra1 - ra2 + 540.0, 360.0) - 180.0;
    return 3600.0 * hypot(dra * cos(de1 * M_PI / 180.0), de1 - de2);
}

static long find(star *s, long n, long id)
{
    long lo = 0, hi = n - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        if (s[mid].id == id)
            return mid;
        if (s[mid].id < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Is there a source of l within MATCH_ARCSEC of (ra, dec)? (Lists of a
 * few thousand rows: a linear scan is quick enough for a benchmark.) */
static int matched(const srclist *l, double ra, double dec)
{
    for (long k = 0; k < l->t->nrows; k++)
        if (sep_arcsec(ra, dec, sk_column_get(l->ra, k, 0), sk_column_get(l->dec, k, 0)) < MATCH_ARCSEC)
            return 1;
    return 0;
}

static int die(const char *what)
{
    fprintf(stderr, "chi2-completeness: %s: %s\n", what, sk_errmsg());
    return 1;
}

/* CHI2_MISSES set: a star the first list misses, with its nearest source
 * of that list and its nearest other truth source (first band: separation,
 * magnitude difference, type 0 star / 1 galaxy). */
static void print_miss(const srclist *l, const sk_table *t, const star *st, double x, double y, double snr)
{
    double best = 1e30, nb = 1e30, dmag = NAN, mine = NAN;
    int ntype = -1;
    for (long k = 0; k < l->t->nrows; k++)
        best = fmin(best, sep_arcsec(st->ra, st->dec, sk_column_get(l->ra, k, 0), sk_column_get(l->dec, k, 0)));
    sk_column *id = sk_table_column(t, "id"), *ra = sk_table_column(t, "ra"), *de = sk_table_column(t, "dec");
    sk_column *mag = sk_table_column(t, "mag"), *ty = sk_table_column(t, "type");
    for (long k = 0; k < t->nrows; k++)
        if ((long)sk_column_get(id, k, 0) == st->id)
            mine = sk_column_get(mag, k, 0);
    for (long k = 0; k < t->nrows; k++) {
        if ((long)sk_column_get(id, k, 0) == st->id)
            continue;
        double d = sep_arcsec(st->ra, st->dec, sk_column_get(ra, k, 0), sk_column_get(de, k, 0));
        if (d < nb) {
            nb = d;
            dmag = sk_column_get(mag, k, 0) - mine;
            ntype = (int)sk_column_get(ty, k, 0);
        }
    }
    printf("miss %-10s x %6.1f y %6.1f SNR %5.1f nearest source %5.2f\" nearest truth %5.2f\" dmag %+5.1f type %d\n",
           l->name, x, y, snr, best, nb, dmag, ntype);
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return fprintf(stderr, "usage: chi2-completeness GRID.fits MIN_SNR --band TRUTH SOURCES ... "
                               "--list NAME SOURCES ...\n"), 2;
    sk_header *gh = NULL;
    sk_wcs *gw = NULL;
    if (sk_fits_read_header(argv[1], NULL, &gh) || sk_wcs_from_header(gh, &gw))
        return die(argv[1]);
    long gw_px = 0, gh_px = 0;
    sk_header_get_long(gh, "NAXIS1", &gw_px);
    sk_header_get_long(gh, "NAXIS2", &gh_px);
    double min_snr = atof(argv[2]);
    sk_table *truth[MAXB];
    double limmag[MAXB];
    srclist lists[MAXL];
    int nb = 0, nl = 0;
    for (int a = 3; a < argc; a++) {
        if (!strcmp(argv[a], "--band") && a + 2 < argc && nb < MAXB) {
            sk_table *s = NULL;
            if (sk_fits_read_table(argv[a + 1], "SOURCES", &truth[nb]))
                return die(argv[a + 1]);
            if (sk_fits_read_table(argv[a + 2], "SOURCES", &s))
                return die(argv[a + 2]);
            if (sk_header_get_double(s->header, "LIMMAG", &limmag[nb]) != 1)
                return fprintf(stderr, "chi2-completeness: %s: no LIMMAG\n", argv[a + 2]), 1;
            sk_table_free(s);
            nb++;
            a += 2;
        } else if (!strcmp(argv[a], "--list") && a + 2 < argc && nl < MAXL) {
            srclist *l = &lists[nl++];
            l->name = argv[a + 1];
            if (sk_fits_read_table(argv[a + 2], "SOURCES", &l->t))
                return die(argv[a + 2]);
            l->ra = sk_table_column(l->t, "RA");
            l->dec = sk_table_column(l->t, "DEC");
            if (!l->ra || !l->dec)
                return fprintf(stderr, "chi2-completeness: %s: no RA/DEC\n", argv[a + 2]), 1;
            a += 2;
        } else {
            return fprintf(stderr, "chi2-completeness: bad argument %s\n", argv[a]), 2;
        }
    }
    /* the truth of every band, by id: SNR^2 summed over the bands */
    long cap = truth[0]->nrows, n = 0;
    star *s = calloc((size_t)cap + 1, sizeof *s);
    for (long k = 0; k < truth[0]->nrows; k++) {
        const sk_table *t = truth[0];
        s[n].id = (long)sk_column_get(sk_table_column(t, "id"), k, 0);
        s[n].ra = sk_column_get(sk_table_column(t, "ra"), k, 0);
        s[n].dec = sk_column_get(sk_table_column(t, "dec"), k, 0);
        s[n].star = sk_column_get(sk_table_column(t, "type"), k, 0) == 0;
        n++;
    }
    qsort(s, (size_t)n, sizeof *s, cmp_id);
    for (int b = 0; b < nb; b++) {
        sk_column *id = sk_table_column(truth[b], "id"), *mag = sk_table_column(truth[b], "mag");
        sk_column *bl = sk_table_column(truth[b], "blended");
        for (long k = 0; k < truth[b]->nrows; k++) {
            long q = find(s, n, (long)sk_column_get(id, k, 0));
            if (q < 0)
                continue;
            double snr = 5.0 * pow(10.0, -0.4 * (sk_column_get(mag, k, 0) - limmag[b]));
            s[q].snr2 += snr * snr;
            s[q].bands++;
            s[q].blended |= sk_column_get(bl, k, 0) != 0;
        }
    }
    int misses = getenv("CHI2_MISSES") != NULL;
    long nsel = 0, nblend = 0, found[MAXL] = {0}, bins[3] = {0}, found_bin[MAXL][3];
    memset(found_bin, 0, sizeof found_bin);
    for (long k = 0; k < n; k++) {
        double x, y;
        if (!s[k].star || s[k].bands != nb || sqrt(s[k].snr2) < min_snr)
            continue;
        if (sk_wcs_sky2pix(gw, 1, &s[k].ra, &s[k].dec, &x, &y) || x < MARGIN_PX || y < MARGIN_PX ||
            x > (double)gw_px - 1 - MARGIN_PX || y > (double)gh_px - 1 - MARGIN_PX) {
            sk_error_clear();
            continue;
        }
        if (s[k].blended) {
            nblend++;
            continue;
        }
        double snr = sqrt(s[k].snr2);
        int bin = snr < 7 ? 0 : snr < 10 ? 1 : 2;
        nsel++;
        bins[bin]++;
        for (int l = 0; l < nl; l++)
            if (matched(&lists[l], s[k].ra, s[k].dec)) {
                found[l]++;
                found_bin[l][bin]++;
            } else if (l == 0 && misses) {
                print_miss(&lists[0], truth[0], &s[k], x, y, snr);
            }
    }
    printf("bands: %d (LIMMAG", nb);
    for (int b = 0; b < nb; b++)
        printf(" %.2f", limmag[b]);
    printf("); truth stars at combined SNR >= %g inside the grid: %ld (%ld blended ones left out)\n", min_snr,
           nsel, nblend);
    printf("%-14s %9s %8s %8s %8s %8s %9s\n", "list", "found", "compl.", "SNR5-7", "SNR7-10", "SNR>=10",
           "unmatched");
    for (int l = 0; l < nl; l++) {
        /* sources matching no truth source of the first band's truth */
        long unmatched = 0;
        sk_column *tra = sk_table_column(truth[0], "ra"), *tde = sk_table_column(truth[0], "dec");
        for (long k = 0; k < lists[l].t->nrows; k++) {
            double ra = sk_column_get(lists[l].ra, k, 0), de = sk_column_get(lists[l].dec, k, 0), x, y;
            if (sk_wcs_sky2pix(gw, 1, &ra, &de, &x, &y) || x < MARGIN_PX || y < MARGIN_PX ||
                x > (double)gw_px - 1 - MARGIN_PX || y > (double)gh_px - 1 - MARGIN_PX) {
                sk_error_clear();
                continue;
            }
            int any = 0;
            for (long q = 0; q < truth[0]->nrows && !any; q++)
                any = sep_arcsec(ra, de, sk_column_get(tra, q, 0), sk_column_get(tde, q, 0)) < MATCH_ARCSEC;
            unmatched += !any;
        }
        printf("%-14s %9ld %7.1f%% %7.1f%% %7.1f%% %7.1f%% %9ld\n", lists[l].name, found[l],
               nsel ? 100.0 * (double)found[l] / (double)nsel : 0.0,
               bins[0] ? 100.0 * (double)found_bin[l][0] / (double)bins[0] : 0.0,
               bins[1] ? 100.0 * (double)found_bin[l][1] / (double)bins[1] : 0.0,
               bins[2] ? 100.0 * (double)found_bin[l][2] / (double)bins[2] : 0.0, unmatched);
    }
    return 0;
}
