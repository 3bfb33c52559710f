/* refchain_priv.h: the selection criteria of a referencing provenance, as
 * refmake applies them (lib/ref only, not installed). */
#ifndef SK_REFCHAIN_PRIV_H
#define SK_REFCHAIN_PRIV_H

#include <jansson.h>

/* One set of referencing.criteria (see skystack.conf(5)). */
typedef struct ref_criteria {
    double date_range, min_mjd, max_mjd, min_seeing, max_seeing, min_lim_mag, max_lim_mag,
        max_airmass, min_bkg, max_bkg, min_exptime, max_exptime, min_overlap; /* NAN: none */
    long min_images, max_images; /* max 0: none */
    const char **instruments;    /* borrowed from the JSON */
    int ninstruments;
    int order;                   /* enum sk_query_order */
} ref_criteria;

/* "quality", "earliest" or "latest" as enum sk_query_order; -1 otherwise. */
int ref_order_of(const char *name, int *order);

/* Criteria from provenance parameters (the configuration's, normalised, or
 * a stored provenance's); missing keys restrict nothing. `c` borrows from
 * `params`; clear it with ref_criteria_clear. */
int ref_criteria_from_json(const json_t *params, ref_criteria *c);
void ref_criteria_clear(ref_criteria *c);

/* The time window of the criteria: [*lo, *hi], NAN where open; a
 * date_range without bounds ends at `now_mjd`. */
void ref_criteria_time_window(const ref_criteria *c, double now_mjd, double *lo, double *hi);

#endif
