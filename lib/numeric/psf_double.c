/* psf_double.c: a double-Gaussian PSF split into its two Gaussian
 * components, the core's FWHM chosen so that the sum has the asked FWHM. */
#include <math.h>
#include "psf_profile.h"

/* The half-maximum radius of the sum in units of the core's sigma: the
 * root u of (1-f) e^(-u^2/2) + (f/k^2) e^(-u^2/(2k^2)) = half the peak. */
static double half_max_u(double f, double k)
{
    double k2 = k * k, half = 0.5 * ((1.0 - f) + f / k2);
    double lo = 0.0, hi = 10.0 * k;
    for (int it = 0; it < 200 && hi - lo > 1e-13; it++) {
        double u = 0.5 * (lo + hi);
        double v = (1.0 - f) * exp(-0.5 * u * u) + f / k2 * exp(-0.5 * u * u / k2);
        if (v > half)
            lo = u;
        else
            hi = u;
    }
    return 0.5 * (lo + hi);
}

int sk_sim_psf_components(const sk_sim_psf *psf, sk_sim_psf comp[2], double frac[2])
{
    comp[0] = *psf;
    comp[0].wing_fraction = 0.0;
    comp[0].wing_ratio = 1.0;
    if (psf->model != SK_SIM_DOUBLE_GAUSSIAN) {
        frac[0] = 1.0;
        return 1;
    }
    double f = psf->wing_fraction, k = psf->wing_ratio;
    /* the sum's FWHM is 2 u sigma_core; the core's own is 2 sqrt(2 ln 2) sigma_core */
    double core_fwhm = psf->fwhm_px * sqrt(2.0 * M_LN2) / half_max_u(f, k);
    comp[0].model = SK_SIM_GAUSSIAN;
    comp[0].fwhm_px = core_fwhm;
    comp[1] = comp[0];
    comp[1].fwhm_px = core_fwhm * k;
    frac[0] = 1.0 - f;
    frac[1] = f;
    return f > 0.0 ? 2 : 1;
}
