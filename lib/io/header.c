/* header.c: FITS headers as ordered 80-character cards with typed keyword access through cfitsio's card parsing and formatting helpers, and cards read from text (.head files). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fitsio.h>
#include <fitsio2.h>
#include "skystack/atomic.h"
#include "skystack/error.h"
#include "skystack/header.h"

/* Longest string value a single card holds: 80 - 10 (key, "= ") - 2 quotes. */
#define CARD_STR_MAX 68

sk_header *sk_header_new(void)
{
    sk_header *h = calloc(1, sizeof *h);
    if (!h)
        sk_error(SK_EIO, "header: out of memory");
    return h;
}

void sk_header_free(sk_header *h)
{
    if (!h)
        return;
    free(h->cards);
    free(h);
}

static int reserve(sk_header *h, int ncards)
{
    if (ncards <= h->capacity)
        return SK_OK;
    int cap = h->capacity ? h->capacity : 36;
    while (cap < ncards)
        cap *= 2;
    void *p = realloc(h->cards, (size_t)cap * sizeof *h->cards);
    if (!p)
        return sk_error(SK_EIO, "header: out of memory for %d cards", ncards);
    h->cards = p;
    h->capacity = cap;
    return SK_OK;
}

sk_header *sk_header_copy(const sk_header *h)
{
    sk_header *c = sk_header_new();
    if (!c || !h)
        return c;
    if (reserve(c, h->ncards) != SK_OK) {
        sk_header_free(c);
        return NULL;
    }
    if (h->ncards)
        memcpy(c->cards, h->cards, (size_t)h->ncards * sizeof *h->cards);
    c->ncards = h->ncards;
    return c;
}

/* Store `text` (up to 80 characters) as a space-padded card. */
static void set_card(char *dst, const char *text)
{
    size_t n = strnlen(text, SK_CARD_LEN);
    memcpy(dst, text, n);
    memset(dst + n, ' ', SK_CARD_LEN - n);
    dst[SK_CARD_LEN] = '\0';
}

/* Insert `n` cards at index `at` (0 <= at <= ncards). */
static int insert_cards(sk_header *h, int at, char (*cards)[SK_CARD_LEN + 1], int n)
{
    int rc = reserve(h, h->ncards + n);
    if (rc)
        return rc;
    memmove(h->cards + at + n, h->cards + at, (size_t)(h->ncards - at) * sizeof *h->cards);
    memcpy(h->cards + at, cards, (size_t)n * sizeof *h->cards);
    h->ncards += n;
    return SK_OK;
}

static void remove_cards(sk_header *h, int at, int n)
{
    memmove(h->cards + at, h->cards + at + n, (size_t)(h->ncards - at - n) * sizeof *h->cards);
    h->ncards -= n;
}

/* Keyword of a card into `name` (size >= 81): HIERARCH keywords without the
 * HIERARCH prefix, blank keyword as "". */
static void card_keyword(const char *card, char *name)
{
    int len = 0, status = 0;
    char buf[SK_CARD_LEN + 1];
    memcpy(buf, card, SK_CARD_LEN + 1);
    if (ffgknm(buf, name, &len, &status) != 0) {
        /* Fall back to the first 8 columns. */
        memcpy(name, card, 8);
        name[8] = '\0';
    }
    for (int i = (int)strlen(name) - 1; i >= 0 && name[i] == ' '; i--)
        name[i] = '\0';
}

static int key_matches(const char *card, const char *key)
{
    char name[SK_CARD_LEN + 1];
    card_keyword(card, name);
    if (strcasecmp(name, key) == 0)
        return 1;
    /* "HIERARCH ESO X" asked for, card names "ESO X". */
    if (strncasecmp(key, "HIERARCH ", 9) == 0 && strncasecmp(card, "HIERARCH ", 9) == 0) {
        const char *k = key + 9;
        while (*k == ' ')
            k++;
        return strcasecmp(name, k) == 0;
    }
    return 0;
}

static int is_continue(const char *card)
{
    return strncmp(card, "CONTINUE  ", 10) == 0;
}

/* Number of CONTINUE cards that follow card `i`. */
static int continuation_count(const sk_header *h, int i)
{
    int n = 0;
    while (i + 1 + n < h->ncards && is_continue(h->cards[i + 1 + n]))
        n++;
    return n;
}

/* A string value whose closing quote is missing is read by cfitsio up to
 * column 80; close it there, so that no later parser (wcslib's lexer runs
 * on into the next cards) sees a quote left open. */
static void close_open_string(char *card)
{
    int start;
    if (strncmp(card, "HIERARCH ", 9) == 0) {
        const char *eq = strchr(card + 9, '=');
        if (!eq)
            return;
        start = (int)(eq - card) + 1;
    } else if (card[8] == '=' && card[9] == ' ') {
        start = 10;
    } else {
        return;
    }
    while (start < SK_CARD_LEN && card[start] == ' ')
        start++;
    if (start >= SK_CARD_LEN || card[start] != '\'')
        return;
    int i = start + 1, last = i;
    while (i < SK_CARD_LEN) {
        last = i;
        if (card[i] == '\'') {
            if (i + 1 < SK_CARD_LEN && card[i + 1] == '\'') {
                i += 2; /* an escaped quote */
                continue;
            }
            return; /* closed */
        }
        i++;
    }
    if (last >= SK_CARD_LEN)
        return;
    card[last] = '\'';
    for (int k = last + 1; k < SK_CARD_LEN; k++)
        card[k] = ' ';
}

int sk_header_append_records(sk_header *h, const char *records, int ncards)
{
    if (ncards < 0)
        return sk_error(SK_EINPUT, "header: negative card count");
    int rc = reserve(h, h->ncards + ncards);
    if (rc)
        return rc;
    for (int i = 0; i < ncards; i++) {
        const char *rec = records + (size_t)i * SK_CARD_LEN;
        char card[SK_CARD_LEN + 1];
        size_t n = strnlen(rec, SK_CARD_LEN);
        memcpy(card, rec, n);
        memset(card + n, ' ', SK_CARD_LEN - n);
        card[SK_CARD_LEN] = '\0';
        /* Non-printable bytes would upset every later parser: blank them. */
        for (int k = 0; k < SK_CARD_LEN; k++)
            if ((unsigned char)card[k] < 32 || (unsigned char)card[k] > 126)
                card[k] = ' ';
        if (strncmp(card, "END     ", 8) == 0 && strspn(card + 8, " ") == SK_CARD_LEN - 8)
            continue;
        close_open_string(card);
        memcpy(h->cards[h->ncards++], card, SK_CARD_LEN + 1);
    }
    return SK_OK;
}

char *sk_header_records(const sk_header *h, int *ncards)
{
    size_t n = (size_t)h->ncards;
    char *buf = malloc(n * SK_CARD_LEN + 1);
    if (!buf) {
        sk_error(SK_EIO, "header: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(buf + i * SK_CARD_LEN, h->cards[i], SK_CARD_LEN);
    buf[n * SK_CARD_LEN] = '\0';
    if (ncards)
        *ncards = h->ncards;
    return buf;
}

int sk_header_find(const sk_header *h, const char *key)
{
    if (!h || !key)
        return -1;
    for (int i = 0; i < h->ncards; i++) {
        if (is_continue(h->cards[i]))
            continue;
        if (key_matches(h->cards[i], key))
            return i;
    }
    return -1;
}

/* The value field of card `i` (cfitsio's fits_parse_value); 0 on success,
 * -1 when the card has no value or cannot be parsed. */
static int card_value(const sk_header *h, int i, char *value)
{
    char card[SK_CARD_LEN + 1], comment[SK_CARD_LEN + 1];
    int status = 0;
    memcpy(card, h->cards[i], SK_CARD_LEN + 1);
    if (ffpsvc(card, value, comment, &status) != 0)
        return -1;
    return value[0] ? 0 : -1;
}

/* Append the string of a quoted value to a growing buffer. */
static int unquote_append(const char *quoted, char **buf, size_t *len, size_t *cap)
{
    char tmp[SK_CARD_LEN + 1];
    int status = 0;
    size_t qlen = strlen(quoted);
    if (qlen < 2 || quoted[0] != '\'' || quoted[qlen - 1] != '\'')
        return -1;
    if (ffc2s(quoted, tmp, &status) != 0)
        return -1;
    size_t n = strlen(tmp);
    if (*len + n + 1 > *cap) {
        size_t c = (*cap ? *cap : 128);
        while (c < *len + n + 1)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p)
            return -1;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, tmp, n + 1);
    *len += n;
    return 0;
}

/* The full string value of card `i`, following the CONTINUE long-string
 * convention; malloc'd, NULL when the value is not a string. */
static char *long_string(const sk_header *h, int i)
{
    char value[SK_CARD_LEN + 1];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (card_value(h, i, value) != 0 || unquote_append(value, &buf, &len, &cap) != 0) {
        free(buf);
        return NULL;
    }
    for (int j = i + 1; j < h->ncards && len > 0 && buf[len - 1] == '&' && is_continue(h->cards[j]); j++) {
        char card[SK_CARD_LEN + 1], comment[SK_CARD_LEN + 1];
        int status = 0;
        /* Give the CONTINUE text a value indicator so that it parses. */
        snprintf(card, sizeof card, "CONTVAL = %.70s", h->cards[j] + 10);
        if (ffpsvc(card, value, comment, &status) != 0 || value[0] != '\'')
            break;
        buf[--len] = '\0';
        if (unquote_append(value, &buf, &len, &cap) != 0) {
            free(buf);
            return NULL;
        }
    }
    return buf;
}

/* The value of `key` as written (a string with its quotes) and its card:
 * 1, 0 when there is no such keyword, -1 when its card has no value. */
static int raw_value(const sk_header *h, const char *key, char raw[SK_CARD_LEN + 1], int *card)
{
    int i = sk_header_find(h, key);
    if (i < 0)
        return 0;
    if (card_value(h, i, raw) != 0)
        return -1;
    if (card)
        *card = i;
    return 1;
}

/* The value of `key` as a finite number, with raw_value's results; -1
 * also for a logical or a string. */
static int number_value(const sk_header *h, const char *key, char raw[SK_CARD_LEN + 1],
                        double *d)
{
    int found = raw_value(h, key, raw, NULL);
    if (found != 1)
        return found;
    int status = 0;
    if (raw[0] == 'T' || raw[0] == 'F' || ffc2d(raw, d, &status) != 0 || !isfinite(*d))
        return -1;
    return 1;
}

int sk_header_get_str(const sk_header *h, const char *key, char *value, size_t size)
{
    char raw[SK_CARD_LEN + 1];
    int i, found = raw_value(h, key, raw, &i);
    if (found != 1)
        return found;
    if (raw[0] != '\'') {
        /* A number or logical asked for as text: its literal form. */
        if (strlen(raw) + 1 > size)
            return -1;
        memcpy(value, raw, strlen(raw) + 1);
        return 1;
    }
    char *s = long_string(h, i);
    if (!s)
        return -1;
    size_t n = strlen(s);
    if (n + 1 > size) {
        free(s);
        return -1;
    }
    memcpy(value, s, n + 1);
    free(s);
    return 1;
}

int sk_header_get_double(const sk_header *h, const char *key, double *value)
{
    char raw[SK_CARD_LEN + 1];
    double d;
    int found = number_value(h, key, raw, &d);
    if (found == 1)
        *value = d;
    return found;
}

int sk_header_get_long(const sk_header *h, const char *key, long *value)
{
    char raw[SK_CARD_LEN + 1];
    double d;
    int found = number_value(h, key, raw, &d);
    if (found != 1)
        return found;
    /* An integer keyword holding a fraction is malformed, not truncated. */
    int status = 0;
    long l;
    if (d != floor(d) || ffc2i(raw, &l, &status) != 0)
        return -1;
    *value = l;
    return 1;
}

int sk_header_get_bool(const sk_header *h, const char *key, int *value)
{
    char raw[SK_CARD_LEN + 1];
    int found = raw_value(h, key, raw, NULL);
    if (found != 1)
        return found;
    if (strcmp(raw, "T") == 0)
        *value = 1;
    else if (strcmp(raw, "F") == 0)
        *value = 0;
    else
        return -1;
    return 1;
}

/* Replace keyword `key` (and its CONTINUE cards) by `cards`, or append. */
static int put_cards(sk_header *h, const char *key, char (*cards)[SK_CARD_LEN + 1], int n)
{
    int i = sk_header_find(h, key);
    if (i < 0)
        return insert_cards(h, h->ncards, cards, n);
    remove_cards(h, i, 1 + continuation_count(h, i));
    return insert_cards(h, i, cards, n);
}

static int check_key(const char *key)
{
    if (!key || !*key || strlen(key) > 70)
        return sk_error(SK_EINPUT, "header: bad keyword name \"%s\"", key ? key : "(null)");
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p < 32 || (unsigned char)*p > 126 || *p == '=' || *p == '\'')
            return sk_error(SK_EINPUT, "header: bad character in keyword name \"%s\"", key);
    return SK_OK;
}

/* Format one keyword card with cfitsio's fits_make_key. */
static int make_card(const char *key, const char *valstr, const char *comment,
                     char out[SK_CARD_LEN + 1])
{
    char card[FLEN_CARD];
    int status = 0;
    const char *k = key;
    if (strncasecmp(k, "HIERARCH ", 9) == 0)
        k += 9;
    while (*k == ' ')
        k++;
    /* Standard keywords are upper case; HIERARCH names keep theirs. */
    char upper[SK_CARD_LEN + 1];
    snprintf(upper, sizeof upper, "%s", k);
    if (strlen(upper) <= 8 && !strchr(upper, ' '))
        for (char *p = upper; *p; p++)
            *p = (char)toupper((unsigned char)*p);
    if (ffmkky(upper, (char *)valstr, comment ? comment : "", card, &status) != 0)
        return sk_error(SK_EINPUT, "header: cannot format keyword %s = %s (cfitsio status %d)",
                        key, valstr, status);
    set_card(out, card);
    return SK_OK;
}

/* Set `key` to the formatted value `valstr` on one card. */
static int put_value(sk_header *h, const char *key, const char *valstr, const char *comment)
{
    char card[SK_CARD_LEN + 1];
    int rc = make_card(key, valstr, comment, card);
    return rc ? rc : put_cards(h, key, &card, 1);
}

int sk_header_set_str(sk_header *h, const char *key, const char *value, const char *comment)
{
    int rc = check_key(key);
    if (rc)
        return rc;
    if (!value)
        value = "";
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
            return sk_error(SK_EINPUT, "header: keyword %s: non-printable character in value", key);
    /* Quotes are doubled inside FITS strings; count the quoted length. */
    size_t quoted_len = 0;
    for (const char *p = value; *p; p++)
        quoted_len += (*p == '\'') ? 2 : 1;
    size_t keyspace = strlen(key) > 8 ? strlen(key) + 12 : 10;
    if (quoted_len + 2 <= CARD_STR_MAX && quoted_len + 2 + keyspace <= SK_CARD_LEN) {
        char quoted[2 * SK_CARD_LEN + 3];
        int status = 0;
        if (ffs2c(value, quoted, &status) != 0)
            return sk_error(SK_EINPUT, "header: keyword %s: cannot quote value", key);
        return put_value(h, key, quoted, comment);
    }
    /* Long string: the CONTINUE convention, 'chunk&' on each card but the
     * last; chunks are cut so that each quoted chunk fits its card. */
    size_t len = strlen(value);
    int ncards = 0, capcards = 4;
    char (*cards)[SK_CARD_LEN + 1] = calloc((size_t)capcards, sizeof *cards);
    if (!cards)
        return sk_error(SK_EIO, "header: out of memory");
    size_t off = 0;
    while (off < len || ncards == 0) {
        size_t limit = ncards == 0 ? SK_CARD_LEN - keyspace - 2 : SK_CARD_LEN - 12;
        char quoted[SK_CARD_LEN + 1];
        size_t q = 0;
        quoted[q++] = '\'';
        while (off < len) {
            size_t need = value[off] == '\'' ? 2 : 1;
            /* room for this character, a closing '&' and the closing quote */
            if (q + need + 2 > limit)
                break;
            if (value[off] == '\'')
                quoted[q++] = '\'';
            quoted[q++] = value[off++];
        }
        if (off < len)
            quoted[q++] = '&';
        quoted[q++] = '\'';
        quoted[q] = '\0';
        if (ncards == capcards) {
            capcards *= 2;
            void *p = realloc(cards, (size_t)capcards * sizeof *cards);
            if (!p) {
                free(cards);
                return sk_error(SK_EIO, "header: out of memory");
            }
            cards = p;
        }
        if (ncards == 0) {
            if (q <= 2 && len > 0) {
                free(cards);
                return sk_error(SK_EINPUT, "header: keyword %s too long for a string value", key);
            }
            rc = make_card(key, quoted, off >= len ? comment : NULL, cards[ncards]);
            if (rc) {
                free(cards);
                return rc;
            }
        } else {
            char card[2 * SK_CARD_LEN];
            snprintf(card, sizeof card, "CONTINUE  %s", quoted);
            set_card(cards[ncards], card);
        }
        ncards++;
    }
    rc = put_cards(h, key, cards, ncards);
    free(cards);
    return rc;
}

int sk_header_set_double(sk_header *h, const char *key, double value, const char *comment)
{
    int rc = check_key(key);
    if (rc)
        return rc;
    if (!isfinite(value))
        return sk_error(SK_EINPUT, "header: keyword %s: value is not finite", key);
    /* Shortest of 15..17 significant digits that reads back exactly. */
    char valstr[FLEN_VALUE];
    for (int digits = 15; digits <= 17; digits++) {
        int status = 0;
        if (ffd2e(value, -digits, valstr, &status) != 0)
            return sk_error(SK_EINPUT, "header: keyword %s: cannot format %g", key, value);
        double back;
        status = 0;
        if (ffc2d(valstr, &back, &status) == 0 && back == value)
            break;
    }
    return put_value(h, key, valstr, comment);
}

int sk_header_set_long(sk_header *h, const char *key, long value, const char *comment)
{
    int rc = check_key(key);
    if (rc)
        return rc;
    char valstr[FLEN_VALUE];
    int status = 0;
    if (ffi2c(value, valstr, &status) != 0)
        return sk_error(SK_EINPUT, "header: keyword %s: cannot format %ld", key, value);
    return put_value(h, key, valstr, comment);
}

int sk_header_set_bool(sk_header *h, const char *key, int value, const char *comment)
{
    int rc = check_key(key);
    if (rc)
        return rc;
    char valstr[FLEN_VALUE];
    int status = 0;
    if (ffl2c(value ? 1 : 0, valstr, &status) != 0)
        return sk_error(SK_EINPUT, "header: keyword %s: cannot format logical", key);
    return put_value(h, key, valstr, comment);
}

int sk_header_add_comment(sk_header *h, const char *key, const char *text)
{
    if (!key || (strcasecmp(key, "COMMENT") != 0 && strcasecmp(key, "HISTORY") != 0 && key[0] != '\0'))
        return sk_error(SK_EINPUT, "header: \"%s\" is not COMMENT, HISTORY or blank",
                        key ? key : "(null)");
    if (!text)
        text = "";
    size_t len = strlen(text);
    size_t off = 0;
    do {
        size_t n = len - off < 72 ? len - off : 72;
        char card[SK_CARD_LEN + 1], kw[9];
        snprintf(kw, sizeof kw, "%s", key);
        for (char *p = kw; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        snprintf(card, sizeof card, "%-8s  %.*s", kw, (int)n, text + off);
        for (char *p = card; *p; p++)
            if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
                *p = ' ';
        char stored[1][SK_CARD_LEN + 1];
        set_card(stored[0], card);
        int rc = insert_cards(h, h->ncards, stored, 1);
        if (rc)
            return rc;
        off += n;
    } while (off < len);
    return SK_OK;
}

int sk_header_delete(sk_header *h, const char *key)
{
    int removed = 0;
    for (int i = sk_header_find(h, key); i >= 0; i = sk_header_find(h, key)) {
        remove_cards(h, i, 1 + continuation_count(h, i));
        removed++;
    }
    return removed;
}

/* `key` is `prefix` followed by one or more digits only. */
static int prefix_digits(const char *key, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncasecmp(key, prefix, n) != 0 || !key[n])
        return 0;
    for (const char *p = key + n; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

int sk_header_is_structural(const char *key)
{
    static const char *exact[] = {
        "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT",
        "TFIELDS", "THEAP", "BZERO", "BSCALE", "BLANK", "EXTNAME", "EXTVER",
        "EXTLEVEL", "INHERIT", "CHECKSUM", "DATASUM", "END", "GROUPS",
        /* tile compression */
        "ZIMAGE", "ZCMPTYPE", "ZBITPIX", "ZNAXIS", "ZMASKCMP", "ZSIMPLE",
        "ZTENSION", "ZEXTEND", "ZBLOCKED", "ZPCOUNT", "ZGCOUNT", "ZHECKSUM",
        "ZDATASUM", "ZQUANTIZ", "ZDITHER0", "ZBLANK", "ZSCALE", "ZZERO",
        "ZTHEAP", "ZTABLE", "ZTILELEN",
    };
    static const char *indexed[] = {
        "NAXIS", "TTYPE", "TFORM", "TUNIT", "TDIM", "TSCAL", "TZERO", "TNULL",
        "TDISP", "TBCOL", "TDMIN", "TDMAX", "TLMIN", "TLMAX",
        "ZNAXIS", "ZTILE", "ZNAME", "ZVAL", "ZFORM", "ZCTYP",
    };
    if (!key)
        return 0;
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (strcasecmp(key, exact[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof indexed / sizeof *indexed; i++)
        if (prefix_digits(key, indexed[i]))
            return 1;
    return 0;
}

/* The card holds a keyword = value (HIERARCH included). */
static int has_value(const char *card)
{
    if (strncasecmp(card, "HIERARCH ", 9) == 0)
        return strchr(card, '=') != NULL;
    return card[8] == '=' && card[9] == ' ';
}

/* Same 80 characters (used for COMMENT/HISTORY de-duplication). */
static int has_card(const sk_header *h, const char *card)
{
    for (int i = 0; i < h->ncards; i++)
        if (memcmp(h->cards[i], card, SK_CARD_LEN) == 0)
            return 1;
    return 0;
}

int sk_header_inherit(sk_header *ext, const sk_header *primary)
{
    /* A keyword repeated in the primary is carried once (its first card). */
    for (int i = 0; i < primary->ncards; i++) {
        const char *card = primary->cards[i];
        if (is_continue(card))
            continue; /* travels with its keyword below */
        char name[SK_CARD_LEN + 1];
        card_keyword(card, name);
        if (sk_header_is_structural(name))
            continue;
        int ncont = continuation_count(primary, i);
        int commentary = (name[0] == '\0' || strcasecmp(name, "COMMENT") == 0 ||
                          strcasecmp(name, "HISTORY") == 0 || !has_value(card));
        if (commentary) {
            if (name[0] == '\0' && strspn(card, " ") == SK_CARD_LEN)
                continue; /* blank padding card */
            if (has_card(ext, card))
                continue;
        } else {
            if (sk_header_find(ext, name) >= 0)
                continue;
        }
        int rc = insert_cards(ext, ext->ncards, (char(*)[SK_CARD_LEN + 1])primary->cards[i], 1 + ncont);
        if (rc)
            return rc;
    }
    return SK_OK;
}

int sk_header_from_text(const char *text, sk_header **out)
{
    sk_header *h = sk_header_new();
    if (!h)
        return sk_error(SK_EIO, "out of memory");
    int rc = SK_OK;
    for (const char *c = text; !rc && c && *c;) {
        const char *nl = strchr(c, '\n');
        size_t len = nl ? (size_t)(nl - c) : strlen(c);
        if (len > 0 && c[len - 1] == '\r')
            len--;
        if (!nl && len > SK_CARD_LEN && len % SK_CARD_LEN == 0) { /* concatenated records */
            for (size_t k = 0; !rc && k < len; k += SK_CARD_LEN) {
                if (strncmp(c + k, "END     ", 8) == 0 || strncmp(c + k, "END\0", 4) == 0)
                    break;
                rc = sk_header_append_records(h, c + k, 1);
            }
            break;
        }
        if (len >= 3 && strncmp(c, "END", 3) == 0 && (len == 3 || c[3] == ' '))
            break;
        char card[SK_CARD_LEN + 1];
        snprintf(card, sizeof card, "%-80.*s", (int)(len < SK_CARD_LEN ? len : SK_CARD_LEN), c);
        if (len > 0)
            rc = sk_header_append_records(h, card, 1);
        c = nl ? nl + 1 : c + len;
    }
    if (rc) {
        sk_header_free(h);
        return rc;
    }
    *out = h;
    return SK_OK;
}

/* A whole small text file (malloc'd). */
static int read_text(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sk_error(SK_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return sk_error(SK_EIO, "%s: out of memory", path);
    buf[n] = '\0';
    *out = buf;
    return SK_OK;
}

int sk_header_read_cards_file(const char *path, sk_header **out)
{
    *out = NULL;
    char *text = NULL;
    int rc = read_text(path, &text);
    if (!rc)
        rc = sk_header_from_text(text, out);
    free(text);
    return rc;
}

int sk_header_write_cards_file(const char *path, const sk_header *h)
{
    sk_atomic *a = NULL;
    int rc = sk_atomic_open(path, &a);
    if (rc)
        return rc;
    for (int i = 0; i < h->ncards; i++) {
        char card[SK_CARD_LEN + 1];
        snprintf(card, sizeof card, "%-80.80s", h->cards[i]);
        if (strspn(card, " ") == SK_CARD_LEN)
            continue;
        fprintf(a->fp, "%s\n", card);
    }
    fprintf(a->fp, "%-80s\n", "END");
    return sk_atomic_commit(a);
}
