/* imsim.c: simulated exposures of one field with truth tables, a reference
 * catalog and provenance sidecars, fully determined by the seed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "skystack/skystack.h"

typedef struct imsim_opts {
    const char *outdir;
    int print_all;
    int separate;      /* --layout separate: SCI, weight and mask in three files */
} imsim_opts;

static const sk_opt options[] = {
    {"nexp", 'n', 1, "N", "number of exposures", "simulation.nexp"},
    {"size", 0, 1, "WxH", "image size in pixels (e.g. 2048x4096)", NULL},
    {"seed", 's', 1, "N", "random seed (a non-negative integer)", "simulation.seed"},
    {"noise-seed", 0, 1, "N", "seed of the exposures' conditions and noise (default: --seed); "
     "bands of one field: one --seed, a --noise-seed each", "simulation.noise_seed"},
    {"sed-mag", 0, 1, "MAG", "this band's magnitudes: mag + MAG * each source's SED slope in [-1, 1]",
     "simulation.sed_mag"},
    {"nstars", 0, 1, "N", "stars per exposure area down to simulation.mag_max", "simulation.nstars"},
    {"galaxies", 0, 1, "FRAC", "galaxies per star", "simulation.galaxy_fraction"},
    {"psf", 0, 1, "MODEL", "PSF model: moffat, gaussian or double-gaussian", "simulation.psf_model"},
    {"seeing", 0, 1, "ARCSEC", "median seeing FWHM", "simulation.seeing_arcsec"},
    {"seeing-max", 0, 1, "ARCSEC", "exposures' seeing evenly from --seeing to this",
     "simulation.seeing_max_arcsec"},
    {"zero-point", 0, 1, "MAG", "zero point of 1 ADU/s above the atmosphere", "simulation.zero_point"},
    {"zp-scatter", 0, 1, "MAG", "per-exposure transparency loss |N(0, MAG)|",
     "simulation.transparency_scatter_mag"},
    {"sky-adu", 0, 1, "ADU", "sky level in ADU (0: from simulation.sky_mag_arcsec2)", "simulation.sky_adu"},
    {"nebula", 0, 1, "FRAC", "peak of the nebular clouds in units of the sky (0: none)",
     "simulation.nebula_amplitude"},
    {"gain", 0, 1, "E/ADU", "detector gain", "simulation.gain"},
    {"read-noise", 0, 1, "E", "read noise in electrons", "simulation.read_noise_e"},
    {"dither", 0, 1, "ARCSEC", "pointings uniform within +-ARCSEC", "simulation.dither_arcsec"},
    {"rotation", 0, 1, "DEG", "rotation between exposures: N(0, DEG)", "simulation.rotation_scatter_deg"},
    {"cosmics", 0, 1, "RATE", "cosmic rays per million pixels per second (left unflagged)",
     "simulation.cosmic_rate_per_mpix_s"},
    {"layout", 0, 1, "KIND", "mef (SCI, WGT, FLG in one file) or separate (weight and mask files)", NULL},
    {"distortion", 0, 1, "KIND", "write the camera distortion as sip or tpv", "simulation.distortion"},
    {"wcs-offset", 0, 1, "ARCSEC", "shift the header WCS by this much (true WCS in the truth)",
     "simulation.wcs_offset_arcsec"},
    {"wcs-rotation", 0, 1, "DEG", "rotate the header WCS by this angle", "simulation.wcs_rotation_deg"},
    {"wcs-scale", 0, 1, "FRAC", "scale the header WCS by 1+FRAC", "simulation.wcs_scale_error"},
    {"noiseless", 0, 0, NULL, "no photon or read noise (the model itself)", NULL},
    {"no-defects", 0, 0, NULL, "no cosmic rays, bad columns, hot pixels or satellite trails", NULL},
    {"outdir", 'o', 1, "DIR", "directory for the products (default .)", NULL},
    {"print-all", 0, 0, NULL, "also print the truth and reference-catalog paths on stdout", NULL},
    {NULL, 0, 0, NULL, NULL, NULL},
};

static int handle(sk_cli *cli, const sk_opt *opt, const char *arg, void *user)
{
    imsim_opts *o = user;
    if (strcmp(opt->name, "outdir") == 0) {
        o->outdir = arg;
        return SK_OK;
    }
    if (strcmp(opt->name, "layout") == 0) {
        if (strcmp(arg, "mef") != 0 && strcmp(arg, "separate") != 0)
            return sk_error(SK_EINPUT, "--layout: '%s' is not mef or separate", arg);
        o->separate = strcmp(arg, "separate") == 0;
        return SK_OK;
    }
    if (strcmp(opt->name, "print-all") == 0) {
        o->print_all = 1;
        return SK_OK;
    }
    if (strcmp(opt->name, "noiseless") == 0)
        return sk_config_set(cli->config, "simulation.noise=false");
    if (strcmp(opt->name, "no-defects") == 0) {
        static const char *const sets[] = {"simulation.cosmic_rate_per_mpix_s=0",
                                           "simulation.bad_columns=0", "simulation.hot_pixels=0",
                                           "simulation.satellite_probability=0"};
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
            int rc = sk_config_set(cli->config, sets[i]);
            if (rc)
                return rc;
        }
        return SK_OK;
    }
    if (strcmp(opt->name, "size") == 0) {
        long w, h;
        char extra;
        if (sscanf(arg, "%ldx%ld%c", &w, &h, &extra) != 2 || w <= 0 || h <= 0)
            return sk_error(SK_EINPUT, "--size: expected WIDTHxHEIGHT in pixels, got '%s'", arg);
        char set[96];
        snprintf(set, sizeof set, "simulation.width_px=%ld", w);
        int rc = sk_config_set(cli->config, set);
        snprintf(set, sizeof set, "simulation.height_px=%ld", h);
        return rc ? rc : sk_config_set(cli->config, set);
    }
    return sk_error(SK_EINPUT, "--%s: not an imsim option", opt->name);
}

static int ensure_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? SK_OK
                                   : sk_error(SK_EINPUT, "--outdir %s: not a directory", dir);
    int rc = sk_mkdir_p(dir);
    return rc ? sk_error_context("--outdir %s", dir) : SK_OK;
}

/* The truth file: SOURCES then COSMICS. */
static int write_truth(const char *path, const sk_sim_exposure *e)
{
    sk_fits_writer *w = NULL;
    int rc = sk_fits_writer_open(path, 0, &w);
    rc = rc ? rc : sk_fits_writer_add_table(w, e->truth);
    rc = rc ? rc : sk_fits_writer_add_table(w, e->cosmics);
    if (rc) {
        sk_fits_writer_abort(w);
        return rc;
    }
    return sk_fits_writer_commit(w);
}

/* The separate layout: `path` holds SCI alone in its primary HDU (header
 * and WCS), `wpath` the weight (inverse variance) and `mpath` the flags
 * (0 = good), each in its primary HDU. */
static int write_separate(const char *path, const char *wpath, const char *mpath, const sk_image *im)
{
    const char *paths[3] = {path, wpath, mpath};
    for (int k = 0; k < 3; k++) {
        sk_fits_writer *w = NULL;
        int rc = sk_fits_writer_open(paths[k], 0, &w);
        if (!rc && k == 0)
            rc = sk_fits_writer_add_image(w, NULL, -32, im->width, im->height, im->sci, im->header);
        if (!rc && k == 1)
            rc = sk_fits_writer_add_image(w, NULL, -32, im->width, im->height, im->weight, NULL);
        if (!rc && k == 2)
            rc = sk_fits_writer_add_image(w, NULL, 16, im->width, im->height, im->flags, NULL);
        if (rc) {
            if (w)
                sk_fits_writer_abort(w);
            return rc;
        }
        rc = sk_fits_writer_commit(w);
        if (rc)
            return rc;
    }
    return SK_OK;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static int emit(const char *path, int on_stdout)
{
    if (on_stdout) {
        printf("%s\n", path);
        fflush(stdout);
    } else {
        sk_info("wrote %s", path);
    }
    return SK_OK;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

static int run(sk_cli *cli, const imsim_opts *o)
{
    if (cli->nargs > 0)
        return sk_error(SK_EINPUT, "unexpected argument '%s' (imsim takes options only)", cli->args[0]);
    sk_sim_params p;
    int rc = sk_sim_params_from_config(cli->config, &p);
    if (rc)
        return rc;
    int threads = cli->threads;
    if (!cli->threads_given) {
        long t = sk_config_long(cli->config, "simulation.threads", 0);
        if (t > 0)
            threads = (int)t;
    }
    const char *outdir = o->outdir ? o->outdir : ".";
    rc = ensure_dir(outdir);
    if (rc)
        return rc;

    /* One preprocessing provenance for everything this run makes: the
     * simulation is where the data come from. */
    json_t *crit = sk_config_critical(cli->config, "simulation");
    /* keys not set (null: noise_seed, sed_mag) are not part of it */
    const char *key;
    json_t *val;
    void *tmp;
    json_object_foreach_safe(crit, tmp, key, val)
        if (json_is_null(val))
            json_object_del(crit, key);
    json_t *params = crit ? json_pack("{s:o}", "simulation", crit) : NULL;
    if (!params)
        return sk_error(SK_EIO, "imsim: cannot build the provenance parameters");
    sk_prov *prov = NULL;
    rc = sk_prov_new("preprocessing", sk_code_version("preprocessing"), params, &prov);
    json_decref(params);
    if (rc)
        return rc;

    sk_sim_field *field = NULL;
    rc = sk_sim_field_make(&p, &field);
    if (!rc)
        sk_info("field of %ld sources around RA %.5f Dec %.5f, seed %llu", field->nsrc, p.ra_deg,
                p.dec_deg, (unsigned long long)p.seed);

    sk_table *refcat = NULL;
    char *path = NULL;
    if (!rc)
        rc = sk_sim_refcat(&p, field, &refcat);
    if (!rc) {
        path = join(outdir, "refcat.fits");
        rc = path ? sk_fits_write_table(path, refcat) : sk_error(SK_EIO, "imsim: out of memory");
        rc = rc ? rc : sk_sidecar_write(path, "refcat", prov, NULL, 0);
        rc = rc ? rc : emit(path, o->print_all);
        free(path);
    }
    sk_table_free(refcat);

    for (long i = 0; !rc && i < p.nexp; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sk_sim_exposure *e = NULL;
        rc = sk_sim_expose(&p, field, (int)i, threads, &e);
        if (rc)
            break;
        char name[64];
        snprintf(name, sizeof name, "exp_%03ld.fits", i);
        char *img_path = join(outdir, name);
        snprintf(name, sizeof name, "exp_%03ld.truth.fits", i);
        char *truth_path = join(outdir, name);
        snprintf(name, sizeof name, "exp_%03ld.weight.fits", i);
        char *wgt_path = join(outdir, name);
        snprintf(name, sizeof name, "exp_%03ld.mask.fits", i);
        char *msk_path = join(outdir, name);
        if (!img_path || !truth_path || !wgt_path || !msk_path)
            rc = sk_error(SK_EIO, "imsim: out of memory");
        /* The header's own WCS cards are written as they are (CD matrix and
         * SIP), not re-expressed. */
        sk_image written = *e->image;
        written.wcs = NULL;
        if (o->separate) {
            rc = rc ? rc : write_separate(img_path, wgt_path, msk_path, &written);
            rc = rc ? rc : sk_sidecar_write(wgt_path, "weight", prov, NULL, 0);
            rc = rc ? rc : sk_sidecar_write(msk_path, "mask", prov, NULL, 0);
        } else {
            rc = rc ? rc : sk_fits_write_image(img_path, &written, NULL);
        }
        rc = rc ? rc : write_truth(truth_path, e);
        rc = rc ? rc : sk_sidecar_write(img_path, "science", prov, NULL, 0);
        rc = rc ? rc : sk_sidecar_write(truth_path, "truth", prov, NULL, 0);
        if (!rc) {
            sk_info("exposure %ld: MJD %.5f seeing %.2f\" zp %.3f sky %.1f ADU, %ld sources, "
                    "%ld cosmic-ray pixels%s, %.2f s",
                    i, e->info.mjd, e->info.psf.fwhm_px * p.pixel_scale_arcsec, e->info.magzero,
                    e->info.sky_adu, e->truth->nrows, e->cosmics->nrows,
                    e->info.satellite ? ", satellite trail" : "", seconds_since(&t0));
            emit(img_path, 1);
            if (o->separate) {
                emit(wgt_path, o->print_all);
                emit(msk_path, o->print_all);
            }
            emit(truth_path, o->print_all);
        }
        free(img_path);
        free(truth_path);
        free(wgt_path);
        free(msk_path);
        sk_sim_exposure_free(e);
    }
    sk_sim_field_free(field);
    sk_prov_free(prov);
    return rc;
}

int main(int argc, char **argv)
{
    sk_cli cli = {.program = "imsim",
                  .usage = "imsim [OPTIONS]",
                  .summary = "simulate exposures of one field with truth tables and a reference catalog"};
    imsim_opts o = {NULL, 0, 0};
    int rc = sk_cli_parse(&cli, argc, argv, options, handle, &o);
    if (rc == SK_OK)
        rc = run(&cli, &o);
    return sk_cli_finish(&cli, rc);
}
