/* params_priv.h: reading the numbers of one section of the configuration
 * (man/man5/skystack.conf.5) with range checks, for the extraction and
 * calibration parameters (internal, not installed). */
#ifndef SK_PARAMS_PRIV_H
#define SK_PARAMS_PRIV_H

#include <jansson.h>

/* The configuration's section extraction.`name` (`name` of root itself
 * when root has no extraction section), or NULL. */
const json_t *sk_extraction_section(const json_t *root, const char *name);

/* *v = sec[key] when it is there and not null; SK_EINPUT when it is not a
 * number or outside [lo, hi], the key named by the section's path
 * (e.g. "extraction.psf") in the message, *v unchanged. */
int sk_section_num(const json_t *sec, const char *path, const char *key, double lo, double hi,
                   double *v);

/* sk_section_num for a whole number in [lo, hi]. */
int sk_section_long(const json_t *sec, const char *path, const char *key, long lo, long hi,
                    long *v);

#endif
