/* params.c: the numbers of a configuration section read with range checks (see params_priv.h). */
#include <math.h>

#include "skystack/error.h"
#include "params_priv.h"

const json_t *sk_extraction_section(const json_t *root, const char *name)
{
    const json_t *ex = json_object_get(root, "extraction");
    return json_object_get(ex ? ex : root, name);
}

int sk_section_num(const json_t *sec, const char *path, const char *key, double lo, double hi,
                   double *v)
{
    json_t *j = json_object_get(sec, key);
    if (!j || json_is_null(j))
        return SK_OK;
    if (!json_is_number(j))
        return sk_error(SK_EINPUT, "%s.%s: not a number", path, key);
    double d = json_number_value(j);
    if (!(d >= lo && d <= hi))
        return sk_error(SK_EINPUT, "%s.%s: %g is outside [%g, %g]", path, key, d, lo, hi);
    *v = d;
    return SK_OK;
}

int sk_section_long(const json_t *sec, const char *path, const char *key, long lo, long hi,
                    long *v)
{
    double d = (double)*v;
    int st = sk_section_num(sec, path, key, (double)lo, (double)hi, &d);
    if (st)
        return st;
    if (d != floor(d))
        return sk_error(SK_EINPUT, "%s.%s: %g is not an integer", path, key, d);
    *v = (long)d;
    return SK_OK;
}
