/* query_internal.h: the library's own part of skystack/query.h, used
 * inside lib/, by the tests and by the benchmarks (not installed). */
#ifndef SK_QUERY_INTERNAL_H
#define SK_QUERY_INTERNAL_H

#include "skystack/query.h"

#ifdef __cplusplus
extern "C" {
#endif

/* column is one of values (n >= 1). */
int sk_query_text_any(sk_query *q, int field, const char *const *values, int n);

#ifdef __cplusplus
}
#endif
#endif
