/* catalog-lookup.c: the per-image catalogue lookup of extract, timed: the
 * rows of the cone that holds a SIDE x SIDE degree field (radius
 * SIDE/sqrt(2)), at NFIELD random places within BOX degrees of (RA, DEC),
 * from CATALOG (db:NAME, a catingest folder, files), through the library
 * call extract makes (sk_catsource_cone). Prints the median and 90th
 * percentile wall time (ms), the median rows and the mean CPU time (ms) of
 * this process and the database server process together (on a loaded
 * machine the wall time is mostly waiting for a core).
 * Usage: catalog-lookup CATALOG RA DEC BOX SIDE NFIELD */
#define BENCH_NAME "catalog-lookup"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "skystack/skystack.h"
#include "calib/catalog_internal.h"
#include "bench_util.h"

/* CPU seconds (user + system) of process pid so far, from /proc. */
static double proc_cpu_s(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return NAN;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return NAN;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: catalog-lookup CATALOG RA DEC BOX SIDE NFIELD\n");
        return 1;
    }
    double ra0 = atof(argv[2]), dec0 = atof(argv[3]), box = atof(argv[4]), side = atof(argv[5]);
    int nf = atoi(argv[6]);
    sk_config *cfg = NULL;
    if (sk_config_load(NULL, NULL, 0, &cfg))
        die("configuration");
    sk_db *db = NULL;
    if (argv[1][0] == 'd' && sk_db_connect(cfg, &db))
        die("database");
    sk_catmap m;
    sk_catmap_parse("ra=ra,dec=dec,mag:G=G", &m);
    sk_catsource *s = NULL;
    if (sk_catsource_open(argv[1], &m, db, &s))
        die(argv[1]);
    double *ms = xcalloc((size_t)nf, sizeof *ms), *rows = xcalloc((size_t)nf, sizeof *rows);
    long backend = sk_db_catalog_backend_pid(db);
    double cpu0 = self_cpu_s() + (backend > 0 ? proc_cpu_s(backend) : 0.0);
    srand(7);
    for (int i = 0; i < nf; i++) {
        double ra = ra0 + box * ((double)rand() / RAND_MAX - 0.5) / cos(dec0 * M_PI / 180);
        double dec = dec0 + box * ((double)rand() / RAND_MAX - 0.5);
        sk_catrows *r = NULL;
        double t0 = now_s();
        if (sk_catsource_cone(s, ra, dec, side / sqrt(2.0), &r))
            die("cone");
        ms[i] = 1e3 * (now_s() - t0);
        rows[i] = (double)r->n;
        sk_catrows_free(r);
    }
    double cpu_ms = 1e3 * (self_cpu_s() + (backend > 0 ? proc_cpu_s(backend) : 0.0) - cpu0) / nf;
    qsort(ms, (size_t)nf, sizeof *ms, cmpd);
    qsort(rows, (size_t)nf, sizeof *rows, cmpd);
    printf("%.2f %.2f %.0f %.2f\n", ms[nf / 2], ms[(nf * 9) / 10], rows[nf / 2], cpu_ms);
    sk_catsource_close(s);
    sk_db_close(db);
    sk_config_free(cfg);
    free(ms);
    free(rows);
    return 0;
}
