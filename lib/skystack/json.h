/* json.h: skystack's JSON text form: canonical (hashed) and pretty (for
 * people and sidecars) serialisations of jansson trees, with keys sorted at
 * every depth and numbers in shortest round-trip form. */
#ifndef SKYSTACK_JSON_H
#define SKYSTACK_JSON_H

#include <stdio.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Canonical JSON, the text the provenance id is hashed over:
 * - object keys sorted by their UTF-8 bytes (= by code point) at every depth;
 * - no insignificant whitespace: "," and ":" separators only;
 * - strings in UTF-8 as they are (no \u escapes for non-ASCII); '"' and '\'
 *   escaped, the control characters U+0000..U+001F written as \b \f \n \r \t
 *   or \u00xx (lower-case hex); '/' and U+007F are not escaped;
 * - integers (jansson integers) as decimal integers;
 * - reals (jansson reals; JSON text with '.', 'e' or 'E') in the shortest
 *   form that reads back to the same double: the first precision 1..17 of
 *   "%.{p}e" that round-trips gives the digits, which are written like
 *   Python's repr(float): plain decimal notation when 1e-4 <= |x| < 1e16,
 *   with ".0" appended to an integral value (2.0 -> "2.0", 1e15 ->
 *   "1000000000000000.0"), otherwise d[.ddd]e-XX / e+XX with a signed
 *   exponent of at least two digits (1e-07, 2.5e-05, 1e+16); 0.0 is "0.0"
 *   and -0.0 is "-0.0". A real therefore stays a real and an integer an
 *   integer: 2 and 2.0 are different canonical texts.
 * This is exactly Python's json.dumps(x, sort_keys=True,
 * separators=(",", ":"), ensure_ascii=False) encoded as UTF-8.
 * Malloc'd string, NULL when `j` is NULL or holds a non-finite real. */
char *sk_json_canonical(const json_t *j);

/* Print j canonically on one line of fp (JSON Lines); nothing when out of
 * memory. */
void sk_json_print_line(FILE *fp, const json_t *j);

/* The same strings and numbers as the canonical form, keys sorted, two-space
 * indentation and one member per line, ending with a newline; for
 * --dump-config and the sidecars. Malloc'd string, NULL on error. */
char *sk_json_pretty(const json_t *j);

/* The canonical text of one real number (see above) into `out` (32 bytes
 * suffice); returns the length, or -1 for a non-finite value. */
int sk_json_real_text(double value, char *out, size_t outsz);

#ifdef __cplusplus
}
#endif
#endif
