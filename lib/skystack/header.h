/* header.h: a FITS header held as an ordered list of 80-character cards,
 * with typed keyword access; the form cfitsio and wcslib both speak. */
#ifndef SKYSTACK_HEADER_H
#define SKYSTACK_HEADER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SK_CARD_LEN 80

typedef struct sk_header {
    char (*cards)[SK_CARD_LEN + 1]; /* NUL-terminated, space-padded to 80 */
    int ncards;
    int capacity;
} sk_header;

sk_header *sk_header_new(void);
sk_header *sk_header_copy(const sk_header *h);
void sk_header_free(sk_header *h);

/* Append raw cards from a buffer of `ncards` 80-character records (the
 * layout of cfitsio's fits_hdr2str). END is dropped. */
int sk_header_append_records(sk_header *h, const char *records, int ncards);

/* All cards as one malloc'd buffer of ncards*80 characters plus NUL, the
 * input wcspih() expects. *ncards receives the count. */
char *sk_header_records(const sk_header *h, int *ncards);

/* Index of the first card with keyword `key` (case-insensitive), or -1. */
int sk_header_find(const sk_header *h, const char *key);

/* Typed getters: return 1 and fill *value when the keyword exists and
 * parses as that type, 0 when it is absent, -1 when present but malformed. */
int sk_header_get_str(const sk_header *h, const char *key, char *value, size_t size);
int sk_header_get_double(const sk_header *h, const char *key, double *value);
int sk_header_get_long(const sk_header *h, const char *key, long *value);
int sk_header_get_bool(const sk_header *h, const char *key, int *value);

/* Setters replace the first card with that keyword in place or append one.
 * `comment` may be NULL. */
int sk_header_set_str(sk_header *h, const char *key, const char *value, const char *comment);
int sk_header_set_double(sk_header *h, const char *key, double value, const char *comment);
int sk_header_set_long(sk_header *h, const char *key, long value, const char *comment);
int sk_header_set_bool(sk_header *h, const char *key, int value, const char *comment);
/* Append a COMMENT or HISTORY card. */
int sk_header_add_comment(sk_header *h, const char *key, const char *text);

/* Delete every card with keyword `key`; returns how many were removed. */
int sk_header_delete(sk_header *h, const char *key);

/* Keywords that describe the HDU's structure (SIMPLE, BITPIX, NAXISn,
 * EXTEND, XTENSION, PCOUNT, GCOUNT, TFIELDS, TTYPEn..., BZERO, BSCALE,
 * EXTNAME, INHERIT, Z* of compression, CHECKSUM, DATASUM, END). */
int sk_header_is_structural(const char *key);

/* Cards from text: one card per line (a ".head" file, SCAMP's and SWarp's
 * form), or 80-character records end to end; END and what follows it are
 * left out. */
int sk_header_from_text(const char *text, sk_header **out);
/* The same from a file (SK_EIO when it cannot be read). */
int sk_header_read_cards_file(const char *path, sk_header **out);

/* Write the cards as a ".head" file (one 80-character card a line, END
 * last; blank cards left out), atomically. */
int sk_header_write_cards_file(const char *path, const sk_header *h);

/* INHERIT = T merge: append the non-structural cards of `primary` whose
 * keyword `ext` does not already hold (the extension's value wins). */
int sk_header_inherit(sk_header *ext, const sk_header *primary);

#ifdef __cplusplus
}
#endif
#endif
