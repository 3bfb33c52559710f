/* sim_psf.c: the simulator's PSF calls (sim.h) on the analytic profiles of
 * numeric/psf_profile.c, which psfmatch's target PSF shares. */
#include "numeric/psf_profile.h"
#include "skystack/sim.h"
#include "sim_internal.h"

_Static_assert((int)SK_SIM_MOFFAT == (int)SK_PSF_MOFFAT && (int)SK_SIM_GAUSSIAN == (int)SK_PSF_GAUSSIAN,
               "the simulator's PSF models are the profile models");

static sk_psf_profile profile_of(const sk_sim_psf *psf)
{
    sk_psf_profile p = { psf->model, psf->fwhm_px, psf->beta, psf->ellipticity, psf->angle_deg,
                         psf->radius_fwhm };
    return p;
}

int sk_sim_psf_check(const sk_sim_psf *psf)
{
    sk_psf_profile p = profile_of(psf);
    return sk_psf_profile_check(&p);
}

double sk_sim_psf_extent_px(const sk_sim_psf *psf)
{
    sk_psf_profile p = profile_of(psf);
    return sk_psf_profile_extent_px(&p);
}

double sk_sim_psf_density(const sk_sim_psf *psf, double dx, double dy)
{
    sk_psf_profile p = profile_of(psf);
    return sk_psf_profile_density(&p, dx, dy);
}

void sk_sim_psf_sample(const sk_sim_psf *psf, long half, double *out)
{
    sk_psf_profile p = profile_of(psf);
    sk_psf_profile_sample(&p, half, out);
}

double sk_sim_psf_sigma2_px2(const sk_sim_psf *psf)
{
    sk_psf_profile p = profile_of(psf);
    return sk_psf_profile_sigma2_px2(&p);
}

void sk_sim_psf_add(const sk_sim_psf *psf, double flux, double x, double y,
                    double *image, long width, long height, long row0, long row1)
{
    sk_psf_profile p = profile_of(psf);
    sk_psf_profile_add(&p, flux, x, y, image, width, height, row0, row1);
}
