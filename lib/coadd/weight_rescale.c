/* weight_rescale.c: the factor that makes a coadd input's weight map predict the blank-sky noise measured on its own pixels (as Source Extractor and SWarp rescale weight maps), for every input, and its record in the coadd header. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "coadd_internal.h"
#include "core/bigbuf.h"
#include "core/parallel.h"
#include "direct_priv.h"
#include "numeric/select.h"
#include "skystack/error.h"
#include "skystack/log.h"

#define RESCALE_BAND_ROWS 32        /* rows read at a time */
#define RESCALE_MAX_PIXELS 2000000L /* at most about this many pixels sampled */
#define RESCALE_MIN_PIXELS 1000L    /* fewer usable ones: the weights are kept */

/* The pixel noise of a band over its weights' prediction, z = (value -
 * background) / sigma_weight of its usable pixels, appended to z[*n..]
 * (at most cap), each band's median taken out (a background left by the
 * map, or the whole level when there is none). */
static void band_residuals(const sk_band *b, float *z, long cap, long *n)
{
    long first = *n;
    long np = b->w * b->h;
    for (long i = 0; i < np && *n < cap; i++) {
        if (!(b->var[i] > 0.0f) || (b->flags[i] & (SK_FLAGS_UNUSABLE | SK_FLAG_SATURATED)))
            continue;
        z[(*n)++] = b->sci[i] / sqrtf(b->var[i]);
    }
    long m = *n - first;
    if (m < 3)
        return;
    float med = sk_select_kth_radix(z + first, m, m / 2);
    for (long i = first; i < *n; i++)
        z[i] -= med;
}

/* The noise of z: the distance between its 2.275th and 15.87th
 * percentiles (minus two and minus one sigma of a Gaussian), from the
 * lower tail alone. The light of sources, cosmic rays and other positive
 * outliers, a fraction e of the pixels, moves these percentiles by 0.42 e
 * and 0.66 e sigma (the median by 1.25 e): the estimate grows by 0.24 e,
 * not by the 0.6 e of the median's distance to the 15.87th percentile. */
static double lower_tail_sigma(float *z, long n)
{
    long k1 = (long)floor(0.158655 * (double)n), k2 = (long)floor(0.0227501 * (double)n);
    float p1 = sk_select_kth_radix(z, n, k1);
    float p2 = sk_select_kth_radix(z, n, k2);
    return (double)p1 - (double)p2;
}

/* The buffers of a measurement, kept between the inputs a thread
 * measures: the residuals and the band (their pages fault in once). */
typedef struct rescale_scratch {
    float *z;
    long zcap;
    sk_band b;
} rescale_scratch;

static void rescale_scratch_free(rescale_scratch *r)
{
    free(r->z);
    sk_band_free(&r->b);
    r->z = NULL;
    r->zcap = 0;
}

/* sk_coadd_weight_ratio with the buffers of r (grown when too small). */
static int weight_ratio(const sk_coadd_input *in, rescale_scratch *r, double *ratio, long *npix)
{
    *ratio = 1.0;
    *npix = 0;
    sk_band_source *src = NULL;
    int rc = sk_band_source_open(in, &src);
    if (rc)
        return rc;
    if (sk_band_source_relative(src)) {
        /* weights relative to the background rms: already on its scale */
        sk_band_source_close(src);
        return SK_OK;
    }
    long w = sk_band_source_width(src), h = sk_band_source_height(src);
    long nbands = (h + RESCALE_BAND_ROWS - 1) / RESCALE_BAND_ROWS;
    long per_band = w * RESCALE_BAND_ROWS;
    long every = per_band * nbands > RESCALE_MAX_PIXELS ? per_band * nbands / RESCALE_MAX_PIXELS + 1 : 1;
    long cap = per_band * (nbands / every + 1);
    if (cap > r->zcap) {
        free(r->z);
        r->z = sk_big_malloc((size_t)cap, sizeof *r->z);
        r->zcap = r->z ? cap : 0;
    }
    float *z = r->z;
    long n = 0;
    if (!z)
        rc = sk_error(SK_EIO, "coadd: out of memory measuring the noise of %s", in->name);
    for (long k = 0; !rc && k < nbands; k += every) {
        long y0 = k * RESCALE_BAND_ROWS, rows = h - y0 < RESCALE_BAND_ROWS ? h - y0 : RESCALE_BAND_ROWS;
        rc = sk_band_alloc(&r->b, 0, y0, w, rows, w, h);
        if (!rc)
            rc = sk_band_source_read(src, 1.0, &r->b);
        if (!rc)
            band_residuals(&r->b, z, cap, &n);
    }
    if (!rc && n >= RESCALE_MIN_PIXELS) {
        double s = lower_tail_sigma(z, n);
        if (s > 0 && isfinite(s)) {
            *ratio = s;
            *npix = n;
        }
    }
    if (!rc && !*npix)
        sk_warn("%s: only %ld usable pixels: its weights are kept as they are", in->name, n);
    sk_band_source_close(src);
    return rc;
}

int sk_coadd_weight_ratio(const sk_coadd_input *in, double *ratio, long *npix)
{
    rescale_scratch r = {0};
    int rc = weight_ratio(in, &r, ratio, npix);
    rescale_scratch_free(&r);
    return rc;
}

typedef struct rescale_job {
    sk_coadd_input *ins;
    long *npix;
    double *ratio;
} rescale_job;

static void rescale_release(void *scratch, void *u)
{
    (void)u;
    rescale_scratch_free(scratch);
}

static int rescale_range(void *scratch, long k0, long k1, void *u)
{
    rescale_job *j = u;
    for (long k = k0; k < k1; k++) {
        int rc = weight_ratio(&j->ins[k], scratch, &j->ratio[k], &j->npix[k]);
        if (rc)
            return rc;
    }
    return SK_OK;
}

int sk_coadd_rescale_weights(sk_coadd_input *ins, int n, int threads)
{
    double *ratio = malloc(sizeof *ratio * (size_t)(n + 1));
    long *npix = malloc(sizeof *npix * (size_t)(n + 1));
    if (!ratio || !npix) {
        free(ratio);
        free(npix);
        return sk_error(SK_EIO, "coadd: out of memory");
    }
    rescale_job j = {ins, npix, ratio};
    /* one input a chunk; each thread's buffers kept from input to input */
    const sk_scratch scratch = {sizeof(rescale_scratch), NULL, rescale_release};
    int rc = sk_parallel_for_scratch(n, 1, threads, &scratch, rescale_range, &j);
    for (int k = 0; !rc && k < n; k++) {
        ins[k].weight_scale = 1.0 / (ratio[k] * ratio[k]);
        if (npix[k])
            sk_info("%s: blank-sky noise %.4f x its weights' prediction (%ld pixels): weights x %.4f",
                    ins[k].name, ratio[k], npix[k], ins[k].weight_scale);
    }
    free(ratio);
    free(npix);
    return rc;
}

int sk_coadd_weight_scale_header(const sk_coadd_input *ins, int n, sk_header *h)
{
    int rc = sk_header_set_bool(h, "WRESCALE", 1, "input weights rescaled to their measured noise");
    for (int k = 0; !rc && k < n; k++) {
        char key[16];
        snprintf(key, sizeof key, "WSCL%d", k + 1);
        rc = sk_header_set_double(h, key, ins[k].weight_scale, "weight factor of input (measured noise)");
    }
    return rc;
}
