/* test_psf_sextractor.c: interoperability of the PSFEx files skystack
 * writes: Source Extractor (PSF_NAME, FLUX_PSF) fits skystack's .psf to
 * the same imsim exposure, and its PSF fluxes agree with skystack's (the
 * median ratio within 2 %). Skipped, saying so, when source-extractor is
 * not installed (share/install-deps.sh installs it). */
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/fits.h"
#include "skystack/psf.h"
#include "skystack/sim.h"
#include "skystack/table.h"
#include "../tap.h"
#include "extract/psf_internal.h"

extern char **environ;

static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char buf[4096];
    while (*path) {
        const char *c = strchr(path, ':');
        size_t n = c ? (size_t)(c - path) : strlen(path);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        path += n + (c ? 1 : 0);
    }
    return 0;
}

/* Run argv with stdout to `out` (NULL: /dev/null); its exit status. */
static int run(char *const *argv, const char *out)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc)
        return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    if (!on_path("source-extractor")) {
        printf("1..0 # SKIP source-extractor is not installed (share/install-deps.sh installs it)\n");
        return 0;
    }
    tap_plan(3);
    const char *dir = tap_tmpdir();
    char img_path[4200], psf_path[4200], sex_path[4200], par_path[4200], cat_path[4200];
    char sci_arg[4300], wgt_arg[4300], gain_arg[64];
    snprintf(img_path, sizeof img_path, "%s/exp.fits", dir);
    snprintf(psf_path, sizeof psf_path, "%s/exp.psf", dir);
    snprintf(sex_path, sizeof sex_path, "%s/default.sex", dir);
    snprintf(par_path, sizeof par_path, "%s/psf.param", dir);
    snprintf(cat_path, sizeof cat_path, "%s/sex.cat", dir);

    char *sets[] = {"simulation.width_px=512", "simulation.height_px=512", "simulation.nstars=300",
                    "simulation.mag_min=16.5", "simulation.mag_max=21.5", "simulation.seed=31",
                    "simulation.galaxy_fraction=0.2", "simulation.satellite_probability=0",
                    "simulation.psf_variation=0.08"};
    sk_config *c = NULL;
    sk_sim_params sp;
    sk_sim_field *f = NULL;
    sk_sim_exposure *e = NULL;
    sk_extract_result *r = NULL;
    sk_psf *psf = NULL;
    int rc = sk_config_load(NULL, sets, 9, &c);
    rc = rc ? rc : sk_sim_params_from_config(c, &sp);
    rc = rc ? rc : sk_sim_field_make(&sp, &f);
    rc = rc ? rc : sk_sim_expose(&sp, f, 0, 2, &e);
    rc = rc ? rc : sk_fits_write_image(img_path, e->image, NULL);
    sk_extract_params ep;
    sk_extract_params_default(&ep);
    rc = rc ? rc : sk_extract_run(e->image, &ep, 2, &r);
    sk_extract_params_clear(&ep);
    sk_psf_params pp;
    sk_psf_params_default(&pp);
    pp.gain = r ? r->gain : 0;
    rc = rc ? rc : sk_psf_build(e->image, r->background, r->sources, r->detection->segmap, &pp, 2, &psf);
    rc = rc ? rc : sk_psf_write(psf_path, psf);
    long n = r ? r->sources->n : 0;
    double *fl = malloc(sizeof *fl * (size_t)(n + 1)), *fe = malloc(sizeof *fe * (size_t)(n + 1));
    rc = rc ? rc : sk_psf_photometry_sources(psf, e->image, r->background, r->detection->segmap,
                                             r->gain, r->sources, 2, fl, fe, NULL);
    ok(rc == SK_OK, "imsim exposure, extraction, PSF model written as %s (%s)", psf_path,
       rc ? sk_errmsg() : "ok");
    if (rc)
        goto done;

    /* Source Extractor with skystack's PSF on the same pixels */
    char *dd[] = {"source-extractor", "-dd", NULL};
    FILE *pf = fopen(par_path, "w");
    if (pf) {
        fputs("NUMBER\nXWIN_IMAGE\nYWIN_IMAGE\nFLUX_PSF\nFLUXERR_PSF\nFLAGS\n", pf);
        fclose(pf);
    }
    snprintf(sci_arg, sizeof sci_arg, "%s[1]", img_path);
    snprintf(wgt_arg, sizeof wgt_arg, "%s[2]", img_path);
    snprintf(gain_arg, sizeof gain_arg, "%g", r->gain);
    char *sx[] = {"source-extractor", sci_arg, "-c", sex_path, "-CATALOG_NAME", cat_path,
                  "-CATALOG_TYPE", "FITS_1.0", "-PARAMETERS_NAME", par_path, "-WEIGHT_TYPE",
                  "MAP_WEIGHT", "-WEIGHT_IMAGE", wgt_arg, "-PSF_NAME", psf_path, "-GAIN", gain_arg,
                  "-SATUR_LEVEL", "45000", "-FILTER", "N", "-VERBOSE_TYPE", "QUIET", NULL};
    int xrc = run(dd, sex_path);
    xrc = xrc ? xrc : run(sx, NULL);
    sk_table *t = NULL;
    rc = xrc ? SK_EIO : sk_fits_read_table(cat_path, NULL, &t);
    ok(xrc == 0 && rc == SK_OK && t->nrows > 100, "source-extractor read skystack's .psf and fitted it "
       "(PSF_NAME, FLUX_PSF): %ld sources", t ? t->nrows : 0);
    if (rc) {
        sk_table_free(t);
        goto done;
    }
    sk_column *cx = sk_table_column(t, "XWIN_IMAGE"), *cy = sk_table_column(t, "YWIN_IMAGE");
    sk_column *cf = sk_table_column(t, "FLUX_PSF"), *cg = sk_table_column(t, "FLAGS");
    double *ratio = malloc(sizeof *ratio * (size_t)(t->nrows + 1));
    long m = 0;
    for (long k = 0; k < t->nrows; k++) {
        double x = sk_column_get(cx, k, 0) - 1, y = sk_column_get(cy, k, 0) - 1;
        double sxf = sk_column_get(cf, k, 0);
        if (sk_column_get(cg, k, 0) != 0 || !(sxf > 0))
            continue;
        for (long q = 0; q < n; q++) {
            const sk_source *s = &r->sources->src[q];
            if (fabs(s->xwin - x) < 1 && fabs(s->ywin - y) < 1 && hypot(s->xwin - x, s->ywin - y) < 1 &&
                !(s->flags & ~(unsigned)SK_SRC_NEIGHBOURS) && fl[q] / fe[q] > 20) {
                ratio[m++] = sxf / fl[q];
                break;
            }
        }
    }
    qsort(ratio, (size_t)m, sizeof *ratio, cmp_d);
    double med = m ? (m % 2 ? ratio[m / 2] : 0.5 * (ratio[m / 2 - 1] + ratio[m / 2])) : NAN;
    ok(m >= 30 && fabs(med - 1) < 0.02,
       "Source Extractor's FLUX_PSF with skystack's PSF / skystack's PSF-fit flux, median over %ld "
       "clean sources with SNR > 20: %.4f (16-84 %%: %.4f-%.4f)", m, med,
       m ? ratio[(long)(0.16 * m)] : NAN, m ? ratio[(long)(0.84 * m)] : NAN);
    free(ratio);
    sk_table_free(t);
done:
    free(fl);
    free(fe);
    sk_psf_free(psf);
    sk_extract_result_free(r);
    sk_sim_exposure_free(e);
    sk_sim_field_free(f);
    sk_config_free(c);
    return tap_done();
}
