/* sim_extract.h: one imsim exposure made from configuration settings and
 * extracted (2 threads) with the extraction settings of that configuration,
 * for unit tests on simulated fields. */
#ifndef SK_TEST_SIM_EXTRACT_H
#define SK_TEST_SIM_EXTRACT_H

#include "skystack/config.h"
#include "skystack/error.h"
#include "skystack/extract.h"
#include "skystack/sim.h"

/* The configuration `sets` (nsets "key=value"), its simulation parameters,
 * field and first exposure, and that exposure's extraction; every output
 * set (or NULL) whatever the status, for the caller to free. */
static inline int sim_extract(char **sets, int nsets, sk_config **c, sk_sim_params *sp, sk_sim_field **f,
                              sk_sim_exposure **e, sk_extract_params *p, sk_extract_result **r)
{
    *c = NULL;
    *f = NULL;
    *e = NULL;
    *r = NULL;
    sk_extract_params_default(p);
    int rc = sk_config_load(NULL, sets, nsets, c);
    rc = rc ? rc : sk_sim_params_from_config(*c, sp);
    rc = rc ? rc : sk_sim_field_make(sp, f);
    rc = rc ? rc : sk_sim_expose(sp, *f, 0, 2, e);
    rc = rc ? rc : sk_extract_params_from_json((*c)->root, p);
    rc = rc ? rc : sk_extract_run((*e)->image, p, 2, r);
    return rc;
}

#endif
