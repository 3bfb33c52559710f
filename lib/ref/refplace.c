/* refplace.c: the places a reference serves: checking them and their canonical keys (see skystack/ref.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/error.h"
#include "skystack/json.h"
#include "skystack/ref.h"
#include "ref_internal.h"

int sk_place_check(const sk_place *p)
{
    if (!p)
        return sk_error(SK_EINPUT, "no place: give --ra and --dec, or --target and --section");
    int field = p->target || p->section;
    if (field && p->has_position)
        return sk_error(SK_EINPUT, "--ra/--dec and --target/--section: give one place, not both");
    if (!field && !p->has_position)
        return sk_error(SK_EINPUT, "no place: give --ra and --dec, or --target and --section");
    if (field) {
        if (!p->target || !*p->target)
            return sk_error(SK_EINPUT, "--target: a field needs its target name (with --section)");
        if (!p->section || !*p->section)
            return sk_error(SK_EINPUT, "--section: a field needs its section id (with --target)");
        return SK_OK;
    }
    if (!isfinite(p->ra_deg) || p->ra_deg < 0 || p->ra_deg >= 360)
        return sk_error(SK_EINPUT, "--ra: %g is outside [0, 360) degrees", p->ra_deg);
    if (!isfinite(p->dec_deg) || p->dec_deg < -90 || p->dec_deg > 90)
        return sk_error(SK_EINPUT, "--dec: %g is outside [-90, 90] degrees", p->dec_deg);
    return SK_OK;
}

/* Round to 1e-6 degree so that the same position typed twice is one key. */
static double micro_deg(double v)
{
    double r = round(v * 1e6) / 1e6;
    return r == 0 ? 0.0 : r; /* no "-0.0" */
}

char *sk_place_key(const sk_place *p)
{
    if (sk_place_check(p))
        return NULL;
    json_t *o;
    if (p->has_position) {
        double ra = micro_deg(p->ra_deg);
        if (ra >= 360)
            ra -= 360;
        o = json_pack("{s:f, s:f}", "ra", ra, "dec", micro_deg(p->dec_deg));
    } else {
        o = json_pack("{s:s, s:s}", "target", p->target, "section", p->section);
    }
    char *key = o ? sk_json_canonical(o) : NULL;
    json_decref(o);
    if (!key)
        sk_error(SK_EINPUT, "place: the names are not valid UTF-8");
    return key;
}
