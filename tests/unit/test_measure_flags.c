/* test_measure_flags.c: which FLG bits make a source FLAGGED: defects do,
 * the informational REJECTED bit of a coadd pixel does not. */
#include <math.h>
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/image.h"
#include "../tap.h"

/* A 128x128 image with one Gaussian star (sigma 1.5 px) at the centre, on a
 * flat noiseless sky of 100 with weight 1 (rms 1). */
static sk_image *star_image(void)
{
    sk_image *img = sk_image_new(128, 128);
    for (long y = 0; y < 128; y++)
        for (long x = 0; x < 128; x++) {
            double dx = x - 64.2, dy = y - 63.7;
            long i = y * 128 + x;
            img->sci[i] = (float)(100.0 + 5000.0 / (2 * M_PI * 2.25) * exp(-(dx * dx + dy * dy) / 4.5) +
                                  0.5 * sin(0.7 * x + 1.3 * y));
            img->weight[i] = 1.0f;
        }
    return img;
}

static unsigned flags_of_star(sk_image *img)
{
    sk_extract_params p;
    sk_extract_params_default(&p);
    sk_extract_result *r = NULL;
    unsigned flags = 0xffffffffu;
    if (sk_extract_run(img, &p, 1, &r) == SK_OK) {
        for (long k = 0; k < r->sources->n; k++) {
            const sk_source *s = &r->sources->src[k];
            if (fabs(s->xwin - 64.2) < 1 && fabs(s->ywin - 63.7) < 1)
                flags = s->flags;
        }
        sk_extract_result_free(r);
    }
    sk_extract_params_clear(&p);
    return flags;
}

int main(void)
{
    tap_plan(5);
    sk_image *img = star_image();
    unsigned f = flags_of_star(img);
    ok(f != 0xffffffffu, "the star is found");
    ok(!(f & SK_SRC_FLAGGED), "a clean star is not FLAGGED (flags %u)", f);

    for (long y = 62; y <= 66; y++)
        for (long x = 62; x <= 66; x++)
            img->flags[y * 128 + x] |= SK_FLAG_REJECTED;
    f = flags_of_star(img);
    ok(f != 0xffffffffu && !(f & SK_SRC_FLAGGED),
       "REJECTED pixels (a coadd's clipped inputs) in the core do not make it FLAGGED (flags %u)", f);

    img->flags[64 * 128 + 65] |= SK_FLAG_BAD;
    f = flags_of_star(img);
    ok(f != 0xffffffffu && (f & SK_SRC_FLAGGED), "a BAD pixel in the core makes it FLAGGED (flags %u)", f);
    img->flags[64 * 128 + 65] = SK_FLAG_COSMIC;
    f = flags_of_star(img);
    ok(f != 0xffffffffu && (f & SK_SRC_FLAGGED), "so does a COSMIC pixel (flags %u)", f);
    sk_image_free(img);
    return tap_done();
}
