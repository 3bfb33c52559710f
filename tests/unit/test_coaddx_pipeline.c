/* The coadd pipeline (sk_coadd_make, what the coadd program runs) with
 * coaddition.method zogy and psfmatch, background matching and artifact
 * masks: simulated exposures written as files with background maps and
 * PSF files beside them, coadded without a database; the header keywords,
 * the coadd PSF product beside the coadd, and refusals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "skystack/skystack.h"
#include "skystack/coadd.h"
#include "skystack/coaddx.h"
#include "skystack/psf.h"
#include "../tap.h"
#include "extract/psf_internal.h"
#include "sim/sim_internal.h"

#define NEXP 4

static char paths[NEXP][4200], bkgs[NEXP][4200], psfs[NEXP][4200];
static double zps[NEXP];

static int make_files(void)
{
    const char *sets[] = {"simulation.nexp=4", "simulation.width_px=200",
                          "simulation.height_px=200", "simulation.nstars=60",
                          "simulation.galaxy_fraction=0", "simulation.moving_sources=0",
                          "simulation.transients=0", "simulation.seeing_scatter=0.3",
                          "simulation.psf_variation=0", "simulation.dither_arcsec=4",
                          "simulation.satellite_probability=0", "simulation.seed=3"};
    sk_config *c = NULL;
    sk_sim_params p;
    sk_sim_field *f = NULL;
    int rc = sk_config_load(NULL, (char *const *)sets, (int)(sizeof sets / sizeof sets[0]), &c);
    rc = rc ? rc : sk_sim_params_from_config(c, &p);
    rc = rc ? rc : sk_sim_field_make(&p, &f);
    sk_config_free(c);
    for (int k = 0; k < NEXP && !rc; k++) {
        sk_sim_exposure *e = NULL;
        rc = sk_sim_expose(&p, f, k, 1, &e);
        if (rc)
            break;
        snprintf(paths[k], sizeof paths[k], "%s/exp_%d.fits", tap_tmpdir(), k);
        snprintf(bkgs[k], sizeof bkgs[k], "%s/exp_%d.sky.fits", tap_tmpdir(), k);
        snprintf(psfs[k], sizeof psfs[k], "%s/exp_%d.psf", tap_tmpdir(), k);
        rc = sk_fits_write_image(paths[k], e->image, NULL);
        zps[k] = e->info.magzero;
        long w = e->image->width, h = e->image->height;
        float *sky = malloc(sizeof(float) * (size_t)(w * h));
        for (long y = 0; y < h; y++)
            for (long x = 0; x < w; x++)
                sky[y * w + x] = (float)sk_sim_sky_adu(&e->info, x, y);
        sk_fits_writer *fw = NULL;
        rc = rc ? rc : sk_fits_writer_open(bkgs[k], 0, &fw);
        rc = rc ? rc : sk_fits_writer_add_image(fw, NULL, -32, w, h, sky, NULL);
        rc = rc ? rc : sk_fits_writer_commit(fw);
        free(sky);
        sk_sim_psf ps = e->info.psf;
        long size = 2 * (long)ceil(4.0 * ps.fwhm_px) + 1;
        double *st = calloc((size_t)(size * size), sizeof(double));
        sk_sim_psf_add(&ps, 1.0, size / 2, size / 2, st, size, size, 0, size);
        sk_psf *psf = NULL;
        rc = rc ? rc : sk_psf_from_stamp(st, (int)size, w, h, &psf);
        rc = rc ? rc : sk_psf_write(psfs[k], psf);
        sk_psf_free(psf);
        free(st);
        sk_sim_exposure_free(e);
    }
    sk_sim_field_free(f);
    if (rc)
        tap_diag("%s", sk_errmsg());
    return rc;
}

/* Coadd with the given settings into `out`; 0 or the status. */
static int coadd(const char *const *sets, int nsets, const char *out, int no_psf)
{
    sk_config *c = NULL;
    int rc = sk_config_load(NULL, (char *const *)sets, nsets, &c);
    if (rc)
        return rc;
    const char *in[NEXP], *bg[NEXP], *ps[NEXP];
    for (int k = 0; k < NEXP; k++) {
        in[k] = paths[k];
        bg[k] = bkgs[k];
        ps[k] = psfs[k];
    }
    sk_coadd_request rq;
    memset(&rq, 0, sizeof rq);
    rq.config = c;
    rq.inputs = in;
    rq.ninputs = NEXP;
    rq.backgrounds = bg;
    rq.psfs = ps;
    rq.zero_points = zps;
    rq.no_psf = no_psf;
    rq.output = out;
    rq.threads = 2;
    rq.extract = 0;
    sk_coadd_made made;
    memset(&made, 0, sizeof made);
    rc = sk_coadd_make(&rq, &made);
    sk_config_free(c);
    return rc;
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int main(void)
{
    tap_plan(27);
    if (make_files()) {
        ok(0, "simulated input files");
        return tap_done();
    }
    char out[4200], psf[4200], str[72] = "";
    sk_header *h = NULL;
    double v;

    /* zogy */
    snprintf(out, sizeof out, "%s/zogy.fits", tap_tmpdir());
    const char *z[] = {"coaddition.method=zogy"};
    is_int(coadd(z, 1, out, 0), 0, "coadd with coaddition.method zogy");
    ok(exists(out), "the coadd is written");
    snprintf(psf, sizeof psf, "%s/zogy.psf", tap_tmpdir());
    ok(exists(psf), "and its PSF beside it");
    is_int(sk_fits_read_header(out, "SCI", &h), 0, "its header");
    sk_header_get_str(h, "COMBINET", str, sizeof str);
    is_str(str, "ZOGY", "COMBINET = ZOGY");
    double fr = 0, mz = 0;
    ok(sk_header_get_double(h, "ZOGYFR", &fr) == 1 && fr > 0, "ZOGYFR = %g", fr);
    ok(sk_header_get_double(h, "MAGZERO", &mz) == 1, "MAGZERO");
    sk_header_free(h);
    /* MAGZERO of the proper coadd = the mean's + 2.5 log10 F_R */
    char outm[4200];
    snprintf(outm, sizeof outm, "%s/mean.fits", tap_tmpdir());
    const char *m[] = {"coaddition.method=mean"};
    is_int(coadd(m, 1, outm, 0), 0, "the mean coadd of the same inputs");
    double mzm = 0;
    sk_fits_read_header(outm, "SCI", &h);
    sk_header_get_double(h, "MAGZERO", &mzm);
    sk_header_free(h);
    is_near(mz, mzm + 2.5 * log10(fr), 1e-6, "MAGZERO(zogy) = MAGZERO(mean) + 2.5 log10 ZOGYFR");
    sk_psf *zp = NULL;
    is_int(sk_psf_read(psf, &zp), 0, "the zogy PSF file reads back");
    if (zp)
        tap_diag("zogy coadd PSF FWHM %.3f px", zp->fwhm_px);
    sk_psf_free(zp);

    /* psfmatch to a Gaussian of 1.6 arcsec */
    snprintf(out, sizeof out, "%s/pm.fits", tap_tmpdir());
    const char *pm[] = {"coaddition.method=psfmatch", "coaddition.target_fwhm_arcsec=1.6",
                        "coaddition.target_profile=gaussian"};
    is_int(coadd(pm, 3, out, 0), 0, "coadd with coaddition.method psfmatch, Gaussian target");
    sk_fits_read_header(out, "SCI", &h);
    sk_header_get_str(h, "COMBINET", str, sizeof str);
    is_str(str, "PSFMATCH", "COMBINET = PSFMATCH");
    sk_header_get_str(h, "COMBINEP", str, sizeof str);
    is_str(str, "CLIPPED", "matched inputs combined with the clipped mean");
    ok(sk_header_get_double(h, "PSFFWHM", &v) == 1, "PSFFWHM %.3f px", v);
    sk_header_free(h);
    snprintf(psf, sizeof psf, "%s/pm.psf", tap_tmpdir());
    sk_psf *pp = NULL;
    is_int(sk_psf_read(psf, &pp), 0, "the psfmatch PSF (the target) beside it");
    if (pp) {
        double scale = 0.26; /* imsim's default pixel scale, arcsec */
        is_near(pp->fwhm_px * scale, 1.6, 0.05, "its FWHM is the target's (%.3f arcsec)",
                pp->fwhm_px * scale);
    }
    sk_psf_free(pp);

    /* background matching and artifact masks with the clipped mean */
    snprintf(out, sizeof out, "%s/bg.fits", tap_tmpdir());
    const char *b[] = {"coaddition.method=clipped", "coaddition.background_match=true",
                       "coaddition.artifact_masks=true"};
    is_int(coadd(b, 3, out, 0), 0, "clipped coadd with background matching and artifact masks");
    sk_fits_read_header(out, "SCI", &h);
    int bv = 0;
    ok(sk_header_get_bool(h, "BGMATCH", &bv) == 1 && bv, "BGMATCH = T");
    ok(sk_header_get_double(h, "BGOFF1", &v) == 1, "BGOFF1 = %.4f", v);
    ok(sk_header_get_bool(h, "ARTMASK", &bv) == 1 && bv, "ARTMASK = T");
    ok(sk_header_get_double(h, "ARTPIX1", &v) == 1, "ARTPIX1 = %g", v);
    sk_header_get_str(h, "COMBINET", str, sizeof str);
    is_str(str, "CLIPPED", "COMBINET = CLIPPED");
    sk_header_free(h);

    /* refusals */
    snprintf(out, sizeof out, "%s/nopsf.fits", tap_tmpdir());
    is_int(coadd(z, 1, out, 1), SK_EINPUT, "zogy with --no-psf refused");
    ok(strstr(sk_errmsg(), "PSF") != NULL, "saying the PSFs are needed (%s)", sk_errmsg());
    ok(!exists(out), "and nothing written");
    const char *bad[] = {"coaddition.method=psfmatch", "coaddition.target_fwhm_arcsec=1.6",
                         "coaddition.target_profile=lorentz"};
    is_int(coadd(bad, 3, out, 0), SK_EINPUT, "an unknown target profile refused");
    const char *bad2[] = {"coaddition.background_match=true", "coaddition.background_match_degree=2"};
    is_int(coadd(bad2, 2, out, 0), SK_EINPUT, "background_match_degree 2 refused");
    return tap_done();
}
