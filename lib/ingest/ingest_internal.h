/* ingest_internal.h: the library's own part of skystack/ingest.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_INGEST_INTERNAL_H
#define SK_INGEST_INTERNAL_H

#include "skystack/ingest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The preprocessing provenance that ingesting with `instrument` (NULL:
 * preprocessing.instrument) implies: parameters {instrument, keywords (the
 * resolved keyword map)}. */
int sk_ingest_provenance(const sk_config *cfg, const char *instrument, sk_prov **out);

#ifdef __cplusplus
}
#endif
#endif
